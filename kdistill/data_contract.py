"""The checks of the data every entry point receives.

`Distiller.fit`/`evaluate`, `cache_teacher_outputs`, `offline_targets` and
the command line's `.npz` loader call these before anything is trained,
cached or saved (the public checks are there for the export side too), so
bad data stops the run with one paragraph that names the array, the first
offending index or value, and the fix, instead of a TensorFlow traceback
halfway through an epoch. Each check runs once, on numpy arrays, outside any
traced step. The label and sample-weight checks are in
`kdistill.label_checks`; `check` calls them (importing them when it runs,
since `label_checks` builds on the array checks here).

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
    >>> data_contract.check_finite([1.0, float("nan")], "x")
    Traceback (most recent call last):
    ValueError: Invalid value for argument `x`: sample 1 contains NaN or inf ...
"""

from __future__ import annotations

import contextlib
import re

import numpy as np

from kdistill import targets, validation
from kdistill.backend import tf

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
            as class indices or one-hot rows against it
            (`kdistill.label_checks.looks_one_hot`).
    """
    # Imported here: label_checks imports this module's array checks.
    from kdistill.label_checks import _check_labels, check_sample_weight, check_weight_shape

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


def _kind(array) -> str:
    return "strings" if array.dtype.kind in "US" else "Python objects"


def _first(array):
    flat = array.reshape(-1)
    value = flat[0] if flat.size else None
    return str(value)[:40] if value is not None else None
