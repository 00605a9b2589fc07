"""What a model's outputs are: how many, their names, logits or probabilities.

Distillation losses need logits. A model whose last layer applies softmax
returns probabilities; kdistill converts them to log-probabilities, which are
logits up to a per-sample constant (softmax gives back the same distribution),
instead of silently treating probabilities as logits.

A model with several outputs (a list or a dict of them) is handled output by
output, in `tf.nest.flatten` order (a dict's keys sorted).
"""

from __future__ import annotations

from collections import Counter

from kdistill.backend import keras, tf

_PROBABILITY_FLOOR = 1e-12


def names(model) -> list:
    """Returns the names of `model`'s outputs, in flat order.

    A model built with a dict of outputs is named by the dict's keys; one
    with a list (or one output) by its output layers. A subclassed model
    without a layer graph counts as one output named "output".

    Example:
        >>> names(two_head_model)  # keras.Model(x, [cls, box])
        ['cls', 'box']
    """
    outputs = structure(model)
    if isinstance(outputs, dict):
        return sorted(outputs)
    layer_names = list(getattr(model, "output_names", None) or [])
    how_many = len(tf.nest.flatten(outputs)) if outputs is not None else 1
    return layer_names if len(layer_names) == how_many else ["output"] * how_many


def count(model) -> int:
    """Returns how many outputs `model` has (1 when it cannot tell)."""
    return len(names(model))


def widths(model) -> list:
    """Returns the last dimension of each output of `model` in flat order
    (None where unknown: a model without a layer graph)."""
    tensors = flat(structure(model)) if structure(model) is not None else []
    if len(tensors) != count(model):
        return [None] * count(model)
    return [t.shape[-1] for t in tensors]


def probability_outputs(model) -> list:
    """Returns, for each output of `model` in flat order, whether it is
    probabilities (its layer applies softmax). A model with one output is
    judged by its last layer, so subclassed and Sequential models work too.

    Args:
        model: A Keras model, or None (one output of logits).

    Example:
        >>> probability_outputs(keras.Model(x, [logits, probabilities]))
        [False, True]
    """
    if count(model) == 1:
        layers = getattr(model, "layers", None) if model is not None else None
        return [bool(layers) and _applies_softmax(layers[-1])]
    return [_applies_softmax(model.get_layer(name)) for name in model.output_names]


def by_name(values: dict, output_names, argument: str) -> list:
    """Lines a dict keyed by output name up with the outputs.

    Args:
        values: A dict from output names to anything (losses, labels).
        output_names: The model's output names in flat order (`names`).
        argument: The argument `values` came from, for the error message.

    Returns:
        One entry per output, None where `values` leaves the output out.

    Raises:
        ValueError: A key names no output, or two outputs share a name.

    Example:
        >>> by_name({"box": "mse"}, ["box", "cls"], "loss")
        ['mse', None]
    """
    check_distinct(output_names, argument)
    unknown = sorted(set(values) - set(output_names))
    if unknown:
        raise ValueError(
            f"Invalid value for argument `{argument}`: the model has no output named "
            f"{', '.join(map(repr, unknown))}. Its outputs are: {', '.join(output_names)}."
        )
    return [values.get(name) for name in output_names]


def check_distinct(output_names, argument: str) -> None:
    """Raises a clear error when a dict keyed by output name cannot tell two
    outputs apart: Keras 3 names a layer's outputs by the layer, so a layer
    returning two tensors gives two outputs one name.

    Args:
        output_names: The model's output names in flat order (`names`).
        argument: The argument that came as a dict, for the error message.
    """
    shared = sorted(name for name, times in Counter(output_names).items() if times > 1)
    if shared:
        raise ValueError(
            f"Invalid value for argument `{argument}`: a dict keyed by output name "
            f"cannot tell apart the outputs named {', '.join(map(repr, shared))} (one "
            "layer returns several of them, and Keras names them all after it). Pass a "
            f"list instead, one entry per output in order ({', '.join(output_names)})."
        )


def flat(values) -> list:
    """Returns a model's outputs (a tensor, a list or a dict) as a flat list."""
    return tf.nest.flatten(values)


def structure(model):
    """Returns `model.output` (a tensor, list or dict), or None for a model
    without a layer graph (or None)."""
    if model is None:
        return None
    try:
        return model.output if getattr(model, "outputs", None) else None
    except (AttributeError, ValueError):  # a subclassed model not yet called
        return None


def _applies_softmax(layer) -> bool:
    if isinstance(layer, keras.layers.Softmax):
        return True
    activation = getattr(layer, "activation", None)
    return getattr(activation, "__name__", "") == "softmax"


def as_logits(outputs, are_probabilities: bool):
    """Returns float32 logits: `outputs` itself, or log(probabilities)."""
    outputs = tf.cast(outputs, tf.float32)
    if not are_probabilities:
        return outputs
    return tf.math.log(tf.maximum(outputs, _PROBABILITY_FLOOR))
