"""The inputs an exported model takes, and user arrays matched to them.

A model may take one array, a list of arrays or a dict of them (an image and
a table; keras-hub's `token_ids`/`padding_mask`). `InputSpec` names one
input: its name, shape and dtype, read from a Keras model (`of_model`) or
from a `.tflite` file. `arrange` turns what a user passes (an array, a list in
the model's input order, a dict keyed by input name, or Python lists) into
one checked numpy array per input, so that the converter and LiteRT never see
data that does not fit: every problem is one line naming the argument, the
input, the offending index or shape, and the fix.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from kdistill import data_contract, validation
from kdistill.backend import tf


@dataclasses.dataclass(frozen=True)
class InputSpec:
    """One model input: `shape` starts with the batch size (None: any)."""

    name: str
    shape: tuple
    dtype: np.dtype

    @property
    def is_float(self) -> bool:
        return np.issubdtype(self.dtype, np.floating)


def of_model(model, sample=None) -> tuple[list[InputSpec], object]:
    """The inputs of a Keras model and the structure it is called with.

    Functional and Sequential models give their own input specs (name, shape,
    dtype: integer token ids stay integer). A subclassed model has none, so
    they are read from `sample` (typical inputs: array, list or dict).

    Returns:
        `(specs, structure)`: the specs in the model's input order, and a
        nest to `tf.nest.pack_sequence_as` the inputs into before calling.
    """
    structure = _model_inputs(model)
    if structure is not None:
        flat = tf.nest.flatten(structure)
        # A dict-input model is called with its keys, which may differ from
        # the Input layers' names: the file's inputs take the keys.
        names = (
            sorted(structure)  # tf.nest's order
            if isinstance(structure, dict)
            else [_tensor_name(t, i) for i, t in enumerate(flat)]
        )
        specs = [
            InputSpec(
                name, (None, *tuple(t.shape)[1:]), np.dtype(tf.as_dtype(t.dtype).as_numpy_dtype)
            )
            for name, t in zip(names, flat)
        ]
        return specs, structure
    if sample is None:
        raise ValueError(
            f"Cannot tell the input shape of the subclassed model {model.name!r}. "
            "Build it as a functional or Sequential model with an Input layer, or "
            "pass `representative_data`."
        )
    if isinstance(sample, dict):
        names = sorted(sample)
        structure = {name: name for name in names}
        arrays = [sample[name] for name in names]
    elif isinstance(sample, (list, tuple)) and all(isinstance(a, np.ndarray) for a in sample):
        names = [f"input_{i}" for i in range(len(sample))]
        structure, arrays = list(names), list(sample)
    else:
        names, structure, arrays = ["input"], "input", [sample]
    specs = []
    for name, array in zip(names, arrays):
        label = "representative_data" if len(names) == 1 else f"representative_data[{name!r}]"
        array = _as_array(array, label)
        dtype = np.dtype("float32") if array.dtype.kind == "f" else array.dtype
        specs.append(InputSpec(name, (None, *array.shape[1:]), dtype))
    return specs, structure


def arrange(x, specs: list[InputSpec], argument: str) -> list[np.ndarray]:
    """Returns one checked array per spec, in the specs' order.

    Args:
        x: An array (one input), a list or tuple in the specs' order, or a
            dict keyed by input name; Python lists are read as arrays.
        specs: The inputs to match.
        argument: The argument's name, for messages ("x", "representative_data").

    Raises:
        ValueError: For a missing or unknown input name, a ragged or
            non-numeric list, no samples, a shape that does not fit the input,
            a non-integer value for an integer input, a non-finite value, or
            inputs with different numbers of samples.
    """
    names = [spec.name for spec in specs]
    if isinstance(x, dict):
        unknown = [k for k in x if k not in names]
        missing = [n for n in names if n not in x]
        if unknown or missing:
            raise ValueError(
                f"Invalid value for argument `{argument}`: its keys do not match the "
                f"model's inputs. Expected a dict with the keys {names}. Received keys: "
                f"{sorted(map(str, x))} (missing {missing}, unknown {unknown})."
            )
        given = [(f"{argument}[{n!r}]", x[n]) for n in names]
    elif len(specs) == 1:
        if isinstance(x, (list, tuple)) and len(x) == 1 and _is_batch(x[0], specs[0]):
            x = x[0]
        given = [(argument, x)]
    elif isinstance(x, (list, tuple)) and len(x) == len(specs):
        given = [(f"{argument}[{i}] ({n!r})", a) for i, (n, a) in enumerate(zip(names, x))]
    else:
        received = f"a list of {len(x)}" if isinstance(x, (list, tuple)) else type(x).__name__
        raise ValueError(
            f"Invalid value for argument `{argument}`: the model takes {len(specs)} inputs "
            f"{names}. Expected a list of {len(specs)} arrays in this order, or a dict "
            f"keyed by these names. Received: {received}."
        )
    arrays = [_checked(_as_array(a, label), spec, label) for (label, a), spec in zip(given, specs)]
    counts = {len(a) for a in arrays}
    if len(counts) > 1:
        raise ValueError(
            f"Invalid value for argument `{argument}`: its inputs hold different numbers "
            f"of samples ({', '.join(f'{n}: {len(a)}' for n, a in zip(names, arrays))}). "
            "Pass the same samples to every input."
        )
    return arrays


def with_sequence_length(specs: list[InputSpec], sequence_length: int) -> list[InputSpec]:
    """The specs with every input of unknown length fixed to `sequence_length`.

    A sequence model (token ids, a padding mask) usually takes inputs of
    shape `(batch, None)`; a file for a phone, a GPU delegate or int8 wants
    them fixed. Every input whose second dimension is unknown gets
    `sequence_length`; inputs of a known shape keep it.

    Args:
        specs: The model's inputs (`of_model`).
        sequence_length: The positions per sample in the file (>= 1).

    Returns:
        The new specs, in the same order.

    Raises:
        ValueError: For a length that is not a positive integer, or a model
            none of whose inputs has an unknown length.

    Example:
        >>> spec = InputSpec("token_ids", (None, None), np.dtype("int32"))
        >>> with_sequence_length([spec], 16)[0].shape
        (None, 16)
    """
    validation.check_integer(sequence_length, "sequence_length", minimum=1)
    open_length = [len(s.shape) >= 2 and s.shape[1] is None for s in specs]
    if not any(open_length):
        shapes = ", ".join(f"{s.name!r}: {format_shape(s.shape)}" for s in specs)
        raise ValueError(
            f"Invalid value for argument `sequence_length`: the model's inputs have a "
            f"fixed length already ({shapes}); sequence_length fixes inputs of unknown "
            f"length, shape (None, None). Leave sequence_length=None. Received: "
            f"sequence_length={sequence_length}"
        )
    return [
        dataclasses.replace(s, shape=(None, sequence_length, *s.shape[2:])) if is_open else s
        for s, is_open in zip(specs, open_length)
    ]


def format_shape(shape) -> str:
    """`(None, 8, 8, 1)`, the way Keras prints shapes."""
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


# ---------------------------------------------------------------------------


def _model_inputs(model):
    try:
        inputs = getattr(model, "inputs", None)
    except (AttributeError, ValueError):  # a subclassed Keras 3 model
        return None
    if not inputs:
        return None
    try:
        return model.input  # keeps a dict of inputs a dict
    except (AttributeError, ValueError):  # a Keras 3 Sequential never called
        return inputs[0] if len(inputs) == 1 else list(inputs)


def _tensor_name(tensor, index: int) -> str:
    name = getattr(tensor, "name", None) or f"input_{index}"
    return name.split(":")[0]


def _is_batch(value, spec: InputSpec) -> bool:
    return isinstance(value, np.ndarray) and value.ndim == len(spec.shape)


def _as_array(value, label: str) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, tf.data.Dataset):
        raise ValueError(
            f"Invalid value for argument `{label}`: it is a tf.data.Dataset. Expected "
            "arrays: gather a few hundred samples into one, e.g. "
            "np.concatenate([x for x, _ in dataset.take(8).as_numpy_iterator()])."
        )
    return data_contract.as_array(value, label)


def _checked(array: np.ndarray, spec: InputSpec, label: str) -> np.ndarray:
    if array.dtype.kind not in "biuf":
        raise ValueError(
            f"Invalid value for argument `{label}`: it holds {array.dtype} values. "
            f"Expected numbers ({spec.dtype}) for the model input {spec.name!r}; convert "
            "the data to numbers first (e.g. with a tokenizer)."
        )
    if array.ndim == 0 or len(array) == 0:
        raise ValueError(
            f"Invalid value for argument `{label}`: it holds no samples (shape "
            f"{format_shape(array.shape)}). Pass at least one sample per input."
        )
    expected = spec.shape
    fits = len(array.shape) == len(expected) and all(
        e is None or e == r for e, r in zip(expected[1:], array.shape[1:])
    )
    if not fits:
        raise ValueError(
            f"Invalid value for argument `{label}`: the model input {spec.name!r} "
            f"expects arrays of shape {format_shape(expected)} (None: any size), but it "
            f"received shape {format_shape(array.shape)}. Pass data of the kind the model "
            "was built for (resize or reshape it to that shape)."
        )
    if spec.is_float:
        array = array.astype(spec.dtype, copy=False)
        data_contract.check_finite(array, label)
        return array
    if array.dtype.kind == "f":
        fractional = array != np.round(array)
        if fractional.any():
            index = tuple(int(i) for i in np.argwhere(fractional)[0])
            raise ValueError(
                f"Invalid value for argument `{label}`: the model input {spec.name!r} takes "
                f"integer values ({spec.dtype}), but it holds {array[index]} at index "
                f"{index}. Pass the integer ids (e.g. token ids) the model was built for."
            )
    return array.astype(spec.dtype, copy=False)
