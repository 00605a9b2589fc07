"""The checks of labels and sample weights, for `kdistill.data_contract`
and the entry points that take labels directly (export, analysis, callbacks).

Labels are integer class indices or one-hot rows, one per sample or, for a
per-position output (batch, positions..., classes), one per position; which
form is meant is decided against the model's output rank (`looks_one_hot`)
and the compiled loss. Class indices must be numbers, finite, whole and in
[0, classes). Sample weights must be numbers, finite, non-negative and not
all zero, with one weight per sample or one per label position (the labels'
shape).

Errors are `ValueError` (a bad value) or `TypeError` (strings where numbers
belong), in Keras's form, as in `kdistill.data_contract`.

Example:
    >>> from kdistill import label_checks
    >>> label_checks.check_sample_weight([1.0, -1.0], 2)
    Traceback (most recent call last):
    ValueError: Invalid value for argument `sample_weight`: sample 1 is -1. ...
"""

from __future__ import annotations

import numpy as np

from kdistill.backend import keras
from kdistill.data_contract import as_array, check_finite, check_not_strings


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


def _number(value):
    """A numpy scalar as a plain Python number (2.0 as 2) for messages."""
    value = value.item() if hasattr(value, "item") else value
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return int(value)
    return value
