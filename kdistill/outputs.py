"""What a model's outputs are: logits or probabilities.

Distillation losses need logits. A model whose last layer applies softmax
returns probabilities; kdistill converts them to log-probabilities, which are
logits up to a per-sample constant (softmax gives back the same distribution),
instead of silently treating probabilities as logits.
"""

from __future__ import annotations

from kdistill.backend import keras, tf

_PROBABILITY_FLOOR = 1e-12


def returns_probabilities(model) -> bool:
    """Returns True if `model`'s last layer applies softmax.

    Args:
        model: A Keras model, or None.

    Example:
        >>> m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
        >>> returns_probabilities(m)
        True
    """
    if model is None or not getattr(model, "layers", None):
        return False
    last = model.layers[-1]
    if isinstance(last, keras.layers.Softmax):
        return True
    activation = getattr(last, "activation", None)
    return getattr(activation, "__name__", "") == "softmax"


def as_logits(outputs, are_probabilities: bool):
    """Returns float32 logits: `outputs` itself, or log(probabilities)."""
    outputs = tf.cast(outputs, tf.float32)
    if not are_probabilities:
        return outputs
    return tf.math.log(tf.maximum(outputs, _PROBABILITY_FLOOR))
