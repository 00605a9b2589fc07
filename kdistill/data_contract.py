"""The checks of the data every entry point receives.

`Distiller.fit`/`evaluate`, `cache_teacher_outputs`, `offline_targets` and
the command line's `.npz` loader call these before anything is trained,
cached or saved (the public checks are there for the export side too), so
bad data stops the run with one paragraph that names the array, the first
offending index or value, and the fix, instead of a TensorFlow traceback
halfway through an epoch. Each check runs once, on numpy arrays, outside any
traced step.

Errors are `ValueError` (a bad value) or `TypeError` (a bad kind: strings
where numbers belong), in Keras's form::

    Invalid value for argument `sample_weight`: sample 3 is -1. ...

For a `tf.data.Dataset` only what its element spec shows is checked (string
dtypes, an empty dataset): its values are not read, since that would consume
it. NaN, inf, labels out of range and negative weights inside a dataset are
not caught here; a non-finite loss still stops `fit`
(`kdistill.callbacks.StopOnNonFiniteLoss`).

Example:
    >>> from kdistill import data_contract
    >>> data_contract.check_sample_weight([1.0, -1.0], 2)
    Traceback (most recent call last):
    ValueError: Invalid value for argument `sample_weight`: sample 1 is -1. ...
"""

from __future__ import annotations

import contextlib
import re

import numpy as np

from kdistill import targets, validation
from kdistill.backend import keras, tf

# Two splits whose largest absolute values differ by more than this factor are
# taken to be on different scales (pixels 0-255 against 0-1, say).
SCALE_FACTOR = 10.0


def as_array(value, name: str) -> np.ndarray:
    """Returns `value` (an array, tensor or Python list) as a numpy array.

    Args:
        value: An array, a tensor, or a (nested) Python list or tuple of
            numbers.
        name: The argument's name, for the message.

    Returns:
        A numpy array.

    Raises:
        ValueError: A ragged list (rows of different lengths).

    Example:
        >>> as_array([[1, 2], [3, 4]], "x").shape
        (2, 2)
    """
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, (tf.Tensor, tf.Variable)):
        return value.numpy()
    try:
        return np.asarray(value)
    except ValueError:
        raise ValueError(
            f"Invalid value for argument `{name}`: it is a ragged Python list (its rows "
            "have different lengths), so it is not one array. Pad the rows to one "
            "length, or pass a numpy array."
        ) from None


def is_list_of_values(value) -> bool:
    """Whether `value` is a Python list of numbers or nested lists (one array),
    rather than a list of arrays (one per model input or output)."""
    if not isinstance(value, (list, tuple)) or not value:
        return False
    return not any(isinstance(v, (np.ndarray, tf.Tensor, dict)) for v in value)


def check_not_strings(array: np.ndarray, name: str) -> None:
    """Raises TypeError if `array` holds strings (or other Python objects)."""
    if array.dtype.kind in "USO":
        raise TypeError(
            f"Invalid value for argument `{name}`. Expected numbers. Received: an array "
            f"of {_kind(array)} (dtype {array.dtype}, first value {_first(array)!r}). "
            + (
                "Map class names to integer indices, e.g. "
                "`classes, y = numpy.unique(y, return_inverse=True)`."
                if name in ("y", "labels") or name.startswith("y_")
                else "Convert it to a numeric array (numpy.asarray(x, 'float32'))."
            )
        )


def check_finite(array, name: str, batch_size: int | None = None) -> None:
    """Raises ValueError naming the first sample of `array` holding NaN or inf.

    Args:
        array: An array (or list) whose first axis indexes samples.
        name: The argument's name, for the message.
        batch_size: If given, the message also names the batch.

    Example:
        >>> check_finite(np.array([1.0, np.nan]), "x")
        Traceback (most recent call last):
        ValueError: Invalid value for argument `x`: sample 1 contains NaN or inf ...
    """
    array = as_array(array, name)
    if array.dtype.kind not in "fc" or not array.size:
        return
    # A finite sum proves every value finite in one cheap pass.
    if np.isfinite(np.sum(array)) or np.all(np.isfinite(array)):
        return
    rows = array.reshape(len(array), -1) if array.ndim else array.reshape(1, 1)
    index = int(np.argmin(np.all(np.isfinite(rows), axis=1)))
    value = rows[index][~np.isfinite(rows[index])][0]
    where = f" (batch {index // batch_size} at batch_size {batch_size})" if batch_size else ""
    raise ValueError(
        f"Invalid value for argument `{name}`: sample {index} contains NaN or inf"
        f"{where}, a value of {value}. Nothing was trained or saved. Clean or drop the "
        "non-finite samples (numpy.isfinite finds them)."
    )


def looks_one_hot(labels, output_rank: int | None = None) -> bool:
    """Whether `labels` are one-hot rows rather than class indices.

    Decided against the model's output rank, not by the labels' rank alone:
    labels of shape (batch, 16) are one-hot for an output (batch, 16) but
    class indices for a per-position output (batch, 16, classes). One-hot
    labels have the output's rank and more than one column.

    Args:
        labels: A numpy array of labels.
        output_rank: The rank of the model's output (batch axis included),
            or None when unknown (taken as 2: (batch, classes)).

    Example:
        >>> looks_one_hot(np.zeros((4, 16)), output_rank=3)
        False
    """
    rank = output_rank or 2
    return labels.ndim == rank and labels.ndim >= 2 and labels.shape[-1] > 1


def check_class_labels(
    labels, num_classes: int | None, name: str = "y", output_rank: int | None = None
) -> np.ndarray:
    """Checks sparse class labels: numbers, finite, whole, in [0, num_classes).

    One-hot rows (the output's shape, (n, classes)) are refused with the fix.

    Args:
        labels: Class indices, shape (n,) or (n, 1); for an output of shape
            (n, positions..., classes), shape (n, positions...).
        num_classes: The number of classes, or None to skip the range check.
        name: The argument's name, for the message.
        output_rank: The rank of the model's output, or None (2).

    Returns:
        The labels as a numpy array.

    Example:
        >>> check_class_labels([0, 2, 3], 3)
        Traceback (most recent call last):
        ValueError: Invalid value for argument `y`: labels must lie in [0, 3) ...
    """
    labels = as_array(labels, name)
    check_not_strings(labels, name)
    if looks_one_hot(labels, output_rank):
        raise ValueError(
            f"Invalid value for argument `{name}`: the labels look one-hot (shape "
            f"{labels.shape}), but class indices are expected. Pass {name}.argmax(-1)."
        )
    if not labels.size:
        return labels
    check_finite(labels, name)
    if labels.dtype.kind == "f":
        flat = labels.reshape(-1)
        fractional = np.flatnonzero(flat != np.round(flat))
        if fractional.size:
            index = int(fractional[0])
            raise ValueError(
                f"Invalid value for argument `{name}`: class labels must be whole "
                f"numbers, but label {index} is {flat[index]}. Pass integer class "
                "indices (soft or smoothed targets belong in a distillation loss, "
                "not in the labels)."
            )
    if num_classes:
        low, high = labels.min(), labels.max()
        if low < 0 or high >= num_classes:
            bad = labels.reshape(-1)
            index = int(np.flatnonzero((bad < 0) | (bad >= num_classes))[0])
            raise ValueError(
                f"Invalid value for argument `{name}`: labels must lie in [0, "
                f"{num_classes}) for a model with {num_classes} classes, but they range "
                f"from {_number(low)} to {_number(high)} (label {index} is "
                f"{_number(bad[index])}). Fix the labels or the model's output size."
            )
    return labels


def check_sample_weight(weights, n: int | None, name: str = "sample_weight") -> np.ndarray:
    """Checks sample weights: numbers, one per sample, finite and >= 0, not all 0.

    Args:
        weights: One weight per sample, shape (n,) (or (n, 1)), or one per
            position, (n, positions...).
        n: The number of samples, or None to skip the length check.
        name: The argument's name, for the message.

    Returns:
        The weights as a numpy array.
    """
    weights = as_array(weights, name)
    check_not_strings(weights, name)
    if n is not None and weights.ndim and len(weights) != n:
        raise ValueError(
            f"Invalid value for argument `{name}`: it has {len(weights)} rows but `x` "
            f"has {n} samples. Pass one weight per input sample."
        )
    check_finite(weights, name)
    flat = weights.reshape(-1)
    negative = np.flatnonzero(flat < 0)
    if negative.size:
        index = int(negative[0])
        raise ValueError(
            f"Invalid value for argument `{name}`: {_where(weights.shape, index)} is "
            f"{_number(flat[index])}. Sample weights must be >= 0 (a negative weight "
            "rewards the model for getting that sample wrong). Clip or drop them."
        )
    if flat.size and not np.any(flat):
        raise ValueError(
            f"Invalid value for argument `{name}`: every weight is 0, so the loss is 0 "
            "and nothing would be learned. Give the samples to train on a positive weight."
        )
    return weights


def check_same_scale(a, b, names: tuple, factor: float = SCALE_FACTOR) -> None:
    """Raises if two splits' value ranges differ by more than `factor`.

    A train split in 0-255 and a test split in 0-1 would be normalised (or
    not) differently, and the model would meet data it never saw.

    Args:
        a: The first array (e.g. the training inputs).
        b: The second array (e.g. the test inputs).
        names: Their names for the message, e.g. ("x_train", "x_test").
        factor: The largest allowed ratio of their largest absolute values.
    """
    a_max = float(np.max(np.abs(a))) if np.size(a) else 0.0
    b_max = float(np.max(np.abs(b))) if np.size(b) else 0.0
    low, high = sorted((a_max, b_max))
    if high == 0.0 or high <= factor * low:
        return
    raise ValueError(
        f"Invalid data: `{names[0]}` and `{names[1]}` are on different scales (largest "
        f"absolute values {a_max:g} and {b_max:g}, more than {factor:g}x apart), so a "
        "model trained on one would be tested on data it never saw. Scale both splits "
        "the same way (e.g. divide both by 255) before saving them."
    )


def check_input_shape(array, expected, name: str = "x", model: str = "model") -> None:
    """Raises if samples of `array` cannot be a model input of shape `expected`.

    Args:
        array: The inputs, first axis the samples.
        expected: The model's static input shape, batch axis first (None
            entries are unknown), e.g. `model.inputs[0].shape`; None skips.
        name: The argument's name, for the message.
        model: What takes the inputs, for the message ("student", ...).

    Example:
        >>> check_input_shape(np.zeros((5, 28, 28)), (None, 8, 8, 1))
        Traceback (most recent call last):
        ValueError: Invalid value for argument `x`: its samples have shape (28, 28) ...
    """
    if expected is None or not hasattr(array, "shape"):
        return
    sample, wanted = tuple(array.shape[1:]), tuple(expected)[1:]
    if validation.shapes_compatible(sample, wanted):
        return
    # Keras adds a trailing axis of 1 to inputs one rank short (labels-like columns).
    if len(sample) + 1 == len(wanted) and wanted[-1] == 1:
        if validation.shapes_compatible(sample, wanted[:-1]):
            return
    raise ValueError(
        f"Invalid value for argument `{name}`: its samples have shape {sample}, but the "
        f"{model} takes samples of shape {wanted} (batch axis left out). Is this the data "
        "the model was built for? Resize or reshape the inputs to that shape, or use a "
        "model built for this data."
    )


def check_fit_arguments(batch_size, epochs) -> None:
    """Refuses a `batch_size` or `epochs` that would train nothing (or fail late)."""
    if batch_size is not None:
        validation.check_integer(batch_size, "batch_size", minimum=1)
    if epochs is not None:
        validation.check_integer(epochs, "epochs", minimum=1)


def check_dataset(dataset) -> None:
    """Checks what a `tf.data.Dataset` shows without being read: not empty,
    and no strings among its inputs, labels or weights."""
    if int(dataset.cardinality()) == 0:
        raise ValueError(
            "Invalid value for argument `x`: the dataset is empty, so there is "
            "nothing to train on. Check the dataset's filtering and batching."
        )
    spec = dataset.element_spec
    parts = list(spec) if isinstance(spec, tuple) else [spec]
    for name, part in zip(("x", "y", "sample_weight"), parts):
        for leaf in tf.nest.flatten(part):
            if getattr(leaf, "dtype", None) == tf.string:
                raise TypeError(
                    f"Invalid value for argument `{name}`: the dataset's {name} are "
                    "strings (tf.string). Expected numbers. Map them to numbers in the "
                    "dataset (e.g. with tf.keras.layers.StringLookup, or class indices "
                    "for labels)."
                )


def check_weight_shape(weights, labels, name: str = "sample_weight") -> None:
    """Refuses per-position weights whose shape is not the labels' shape.

    Weights of shape (n,) or (n, 1) weight whole samples; any other shape
    weights positions and must equal the labels' shape, (n, positions...).

    Example:
        >>> check_weight_shape(np.ones((4, 8)), np.zeros((4, 16)))
        Traceback (most recent call last):
        ValueError: Invalid value for argument `sample_weight`: its shape (4, 8) ...
    """
    if weights.ndim < 2 or all(d == 1 for d in weights.shape[1:]):
        return
    if labels is None or weights.shape == labels.shape:
        return
    raise ValueError(
        f"Invalid value for argument `{name}`: its shape {weights.shape} is neither one "
        f"weight per sample ({weights.shape[0]},) nor one per label position "
        f"{labels.shape} (the labels' shape). Pass weights of the labels' shape, with "
        "0 at padded positions, or one weight per sample."
    )


def check(
    x,
    y,
    sample_weight,
    batch_size,
    num_classes,
    loss,
    output_names=None,
    input_shape=None,
    output_ranks=None,
) -> None:
    """Checks the data given to `Distiller.fit`/`evaluate`.

    Raises a clear error for empty, mismatched, non-finite, string or
    mislabelled data, and for bad sample weights.

    Args:
        x: Inputs given to `fit`/`evaluate`.
        y: Targets (labels, or offline targets). For a student with several
            outputs, a list of labels in output order or a dict keyed by
            output name.
        sample_weight: Sample weights or None.
        batch_size: Batch size (for naming the failing batch).
        num_classes: The size of the student's output (None if unknown), or
            a list with one per output.
        loss: The compiled hard-label loss (or None), or a list with one per
            output.
        output_names: The student's output names (`kdistill.outputs.names`);
            None for one output.
        input_shape: The student's static input shape (one input), or None.
        output_ranks: The rank of each student output (batch axis
            included; None where unknown), or None: labels are told apart
            as class indices or one-hot rows against it (`looks_one_hot`).
    """
    if isinstance(x, tf.data.Dataset):
        check_dataset(x)
        return
    arrays = [a for a in tf.nest.flatten(x) if isinstance(a, (np.ndarray, list))]
    if not arrays:
        return
    n = len(arrays[0])
    if n == 0:
        raise ValueError(
            "Invalid value for argument `x`: it holds no samples, so there is nothing to train on."
        )
    labels, cached, _ = targets.split(y)
    count = len(output_names) if output_names else 1
    per_output_labels = targets.per_output(labels, output_names) if count > 1 else [labels]
    per_output_cached = targets.teacher_outputs_per_output(cached, count)
    named = (
        [("y", v) for v in per_output_labels]
        + [("teacher_outputs", v) for v in per_output_cached]
        + [("sample_weight", sample_weight)]
    )
    for name, value in named:
        if isinstance(value, (np.ndarray, list)) and len(value) != n:
            raise ValueError(
                f"Invalid value for argument `{name}`: it has {len(value)} rows but `x` "
                f"has {n} samples. Pass one row per input sample."
            )
    for array in arrays:
        array = as_array(array, "x")
        check_not_strings(array, "x")
        check_finite(array, "x", batch_size or 32)
    if len(arrays) == 1:
        check_input_shape(as_array(arrays[0], "x"), input_shape, "x", "student")
    for values in per_output_cached:
        if isinstance(values, (np.ndarray, list)):
            check_finite(values, "teacher_outputs")
    if isinstance(sample_weight, (np.ndarray, list)):
        weights = check_sample_weight(sample_weight, n)
        if count == 1 and isinstance(per_output_labels[0], (np.ndarray, list)):
            check_weight_shape(weights, as_array(per_output_labels[0], "y"))
    classes = num_classes if isinstance(num_classes, list) else [num_classes]
    losses = loss if isinstance(loss, list) else [loss]
    ranks = output_ranks or [None] * len(classes)
    for values, size, output_loss, rank in zip(per_output_labels, classes, losses, ranks):
        if isinstance(values, (np.ndarray, list)):
            _check_labels(as_array(values, "y"), size, output_loss, rank)


@contextlib.contextmanager
def renamed(container: str):
    """Makes the checks inside name `x`, `y`, ... as parts of `container`.

    Example:
        >>> with renamed("validation_data"):
        ...     check_finite([np.nan], "x")
        Traceback (most recent call last):
        ValueError: Invalid value for argument `validation_data` (its x): sample 0 ...
    """
    with rewritten_errors(
        lambda message: re.sub(
            r"argument `(\w+)`",
            lambda match: f"argument `{container}` (its {match.group(1)})",
            message,
            count=1,
        )
    ):
        yield


@contextlib.contextmanager
def rewritten_errors(rewrite):
    """Re-raises a ValueError or TypeError from the block with `rewrite(message)`.

    Example:
        >>> with rewritten_errors(str.upper):
        ...     raise ValueError("bad")
        Traceback (most recent call last):
        ValueError: BAD
    """
    try:
        yield
    except (ValueError, TypeError) as error:
        raise type(error)(rewrite(str(error))) from None


def _check_labels(labels, num_classes, loss, output_rank=None):
    check_not_strings(labels, "y")
    check_finite(labels, "y")
    form = _loss_label_form(loss)
    one_hot = looks_one_hot(labels, output_rank)
    if form == "sparse" and one_hot:
        raise ValueError(
            f"Invalid value for argument `y`: the labels look one-hot (shape "
            f"{labels.shape}) but the loss expects integer class indices. Pass "
            "y.argmax(-1), or compile with keras.losses.CategoricalCrossentropy."
        )
    if form == "categorical" and not one_hot:
        raise ValueError(
            f"Invalid value for argument `y`: the labels are class indices (shape "
            f"{labels.shape}) but the loss expects one-hot rows. Compile with "
            "keras.losses.SparseCategoricalCrossentropy, or one-hot encode y."
        )
    if form == "sparse" or (not one_hot and labels.dtype.kind in "iu"):
        check_class_labels(labels, num_classes, "y", output_rank)


def _loss_label_form(loss):
    """'sparse', 'categorical' or None, from the compiled loss."""
    if loss is None:
        return None
    name = getattr(loss, "name", None) or getattr(loss, "__name__", "") or ""
    fn = getattr(loss, "fn", None)
    name = (getattr(fn, "__name__", "") or name).lower()
    if isinstance(loss, keras.losses.SparseCategoricalCrossentropy) or "sparse_categorical" in name:
        return "sparse"
    if isinstance(loss, keras.losses.CategoricalCrossentropy) or name.startswith("categorical"):
        return "categorical"
    return None


def _where(shape, index: int) -> str:
    """'sample 3', or 'sample 3 at position (5,)' for a flat index into an
    array of per-position values."""
    if len(shape) < 2 or all(d == 1 for d in shape[1:]):
        return f"sample {index}"
    place = np.unravel_index(index, shape)
    return f"sample {place[0]} at position {tuple(int(i) for i in place[1:])}"


def _kind(array) -> str:
    return "strings" if array.dtype.kind in "US" else "Python objects"


def _first(array):
    flat = array.reshape(-1)
    value = flat[0] if flat.size else None
    return str(value)[:40] if value is not None else None


def _number(value):
    """A numpy scalar as a plain Python number (2.0 as 2) for messages."""
    value = value.item() if hasattr(value, "item") else value
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return int(value)
    return value
