"""Checks of the data handed to `Distiller.fit` and `evaluate`.

Cheap checks on in-memory arrays, run before training starts, so that a bad
input stops the run with a message naming the argument and the fix instead of
a TensorFlow traceback halfway through an epoch (and before any callback has
saved anything).
"""

from __future__ import annotations

import numpy as np

from kdistill import targets
from kdistill.backend import keras, tf


def check(x, y, sample_weight, batch_size, num_classes, loss, output_names=None) -> None:
    """Raises a clear error for empty, mismatched, non-finite or mislabelled data.

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
    """
    if isinstance(x, tf.data.Dataset):
        if int(x.cardinality()) == 0:
            raise ValueError(
                "Invalid value for argument `x`: the dataset is empty, so there is "
                "nothing to train on. Check the dataset's filtering and batching."
            )
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
        array = np.asarray(array)
        # A finite sum proves every value finite in one cheap pass.
        finite = array.dtype.kind != "f" or np.isfinite(np.sum(array)) or np.all(np.isfinite(array))
        if not finite:
            index = int(np.argmin(np.all(np.isfinite(array.reshape(n, -1)), axis=1)))
            batch = index // (batch_size or 32)
            raise ValueError(
                f"Invalid value for argument `x`: sample {index} contains NaN or inf "
                f"(batch {batch} at batch_size {batch_size or 32}). Training did not "
                "start and nothing was saved. Clean or drop the non-finite samples."
            )
    classes = num_classes if isinstance(num_classes, list) else [num_classes]
    losses = loss if isinstance(loss, list) else [loss]
    for values, size, output_loss in zip(per_output_labels, classes, losses):
        if isinstance(values, (np.ndarray, list)):
            _check_labels(np.asarray(values), size, output_loss)


def _check_labels(labels, num_classes, loss):
    form = _loss_label_form(loss)
    one_hot = labels.ndim == 2 and labels.shape[1] > 1
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
    if num_classes and not one_hot and labels.dtype.kind in "iu" and labels.size:
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or high >= num_classes:
            raise ValueError(
                f"Invalid value for argument `y`: labels must lie in [0, {num_classes}) "
                f"for a student with {num_classes} outputs, but they range from {low} "
                f"to {high}. Fix the labels or the student's output size."
            )


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
