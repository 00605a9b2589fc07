"""The one place that packs and unpacks what `fit` takes as targets.

A batch's targets are the true labels, optionally packed with the teacher's
cached outputs for offline distillation (Keras reads a third tuple element
as sample weights, so the cached outputs travel inside the targets)::

    y = {"labels": labels, "teacher_outputs": cached_outputs}

For a student with several outputs, labels (and cached outputs) hold one
entry per output: a list in output order, or a dict keyed by output name.
`pack` builds offline targets, `split` takes a batch's targets apart once per
step, and `per_output` lines labels up with the student's outputs.
"""

from __future__ import annotations

import numpy as np

from kdistill import outputs
from kdistill.backend import tf

LABELS_KEY = "labels"
TEACHER_OUTPUTS_KEY = "teacher_outputs"

# A top-k cache (`kdistill.cache_teacher_outputs(..., top_k=k)`): per position,
# the k largest logits, their class indices, and the log-sum-exp of the rest.
TOP_K_KEYS = ("top_k_logits", "top_k_indices", "tail_logsumexp")


def is_top_k(teacher_outputs) -> bool:
    """Whether cached teacher outputs are a top-k cache (a dict of `TOP_K_KEYS`).

    Example:
        >>> is_top_k(np.zeros((4, 10)))
        False
    """
    return isinstance(teacher_outputs, dict) and set(teacher_outputs) == set(TOP_K_KEYS)


def top_k_parts(top_k: dict) -> tuple:
    """Returns a top-k cache's (logits, indices, tail log-sum-exp)."""
    return tuple(top_k[key] for key in TOP_K_KEYS)


def check_top_k(top_k: dict) -> None:
    """Raises unless a top-k cache's parts have matching shapes.

    Args:
        top_k: A dict of `TOP_K_KEYS`: logits (n, positions..., k), indices
            of the same shape, tail log-sum-exp (n, positions...).
    """
    logits, indices, tail = (np.shape(v) for v in top_k_parts(top_k))
    if logits != indices or logits[:-1] != tail:
        raise ValueError(
            "Invalid value for argument `teacher_outputs`: a top-k cache holds "
            "top_k_logits and top_k_indices of one shape (n, positions..., k) and "
            f"tail_logsumexp of shape (n, positions...); received {logits}, {indices} "
            "and {tail}. Build it with kdistill.cache_teacher_outputs(..., top_k=k)."
        )


def dense_from_top_k(top_k: dict, classes) -> tf.Tensor:
    """Full-width logits standing in for a top-k cache, for teacher agreement.

    The kept logits keep their classes (so the argmax is the teacher's); the
    tail's mass is spread evenly over the other classes.

    Args:
        top_k: A top-k cache's tensors (a dict of `TOP_K_KEYS`).
        classes: The number of classes (an int or a scalar tensor).

    Returns:
        A float32 tensor (..., classes).
    """
    logits, indices, tail = (tf.convert_to_tensor(v) for v in top_k_parts(top_k))
    logits = tf.cast(logits, tf.float32)
    k = tf.shape(logits)[-1]
    flat_logits = tf.reshape(logits, [-1, k])
    flat_indices = tf.reshape(tf.cast(indices, tf.int32), [-1, k])
    rows = tf.shape(flat_logits)[0]
    rest = tf.cast(classes - k, tf.float32)
    spread = tf.reshape(tf.cast(tail, tf.float32), [-1, 1]) - tf.math.log(tf.maximum(rest, 1.0))
    row_ids = tf.broadcast_to(tf.range(rows)[:, None], tf.shape(flat_indices))
    dense = tf.tensor_scatter_nd_update(
        tf.broadcast_to(spread, [rows, classes]),
        tf.stack([row_ids, flat_indices], -1),
        flat_logits,
    )
    return tf.reshape(dense, tf.concat([tf.shape(logits)[:-1], [classes]], 0))


def pack(labels, teacher_outputs) -> dict:
    """Packs labels and cached teacher outputs into the targets `fit` takes.

    Args:
        labels: The true labels (sparse or one-hot; a list or dict of them
            for a student with several outputs).
        teacher_outputs: The teacher's outputs for the same samples.

    Returns:
        A dict ``{"labels": labels, "teacher_outputs": teacher_outputs}``.

    Raises:
        ValueError: The two hold different numbers of rows.

    Example:
        >>> pack(np.zeros(4), np.zeros((4, 10)))["teacher_outputs"].shape
        (4, 10)
    """
    label_rows, teacher_rows = _rows(labels), _rows(teacher_outputs)
    mismatched = [r for r in teacher_rows if label_rows and r != label_rows[0]]
    if mismatched:
        raise ValueError(
            "Invalid value for argument `teacher_outputs`: it has "
            f"{mismatched[0]} rows but `labels` has {label_rows[0]}. "
            "Cache the teacher outputs from the same samples, in the same "
            "order, as the labels."
        )
    return {LABELS_KEY: labels, TEACHER_OUTPUTS_KEY: teacher_outputs}


def _rows(values) -> list:
    """Row counts of an array, or of each array in a list or dict of them
    (one per output of a model with several)."""
    if isinstance(values, dict):
        return [r for v in values.values() for r in _rows(v)]
    if isinstance(values, (list, tuple)) and values:
        if all(isinstance(v, (np.ndarray, tf.Tensor)) for v in values):
            return [r for v in values for r in _rows(v)]
    return [len(values)] if hasattr(values, "__len__") else []


def split(y, sample_weight=None) -> tuple:
    """Splits targets into labels, cached teacher outputs and sample weights.

    Keras spreads sample weights over the structure of the targets, so with
    offline targets they may arrive as a dict too; the labels' entry is kept.

    Args:
        y: A batch's targets (or a whole array's), packed or plain labels.
        sample_weight: The sample weights that came with them, or None.

    Returns:
        ``(labels, teacher_outputs or None, sample_weight)``.

    Example:
        >>> labels, cached, weights = split(pack(y, t))
    """
    if isinstance(y, dict) and TEACHER_OUTPUTS_KEY in y:
        if isinstance(sample_weight, dict):
            sample_weight = sample_weight.get(LABELS_KEY)
        return y[LABELS_KEY], y[TEACHER_OUTPUTS_KEY], sample_weight
    return y, None, sample_weight


def per_output(labels, output_names) -> list:
    """Returns the labels of a student with several outputs, one per output.

    Args:
        labels: A list (or tuple) of label arrays in output order, a dict
            keyed by output name, or None.
        output_names: The student's output names (`kdistill.outputs.names`).

    Returns:
        A list in output order; None for an output a dict leaves out (it
        trains on the teacher alone), or for every output when `labels` is
        None.

    Raises:
        ValueError: A dict names no output or cannot tell outputs apart, or
            `labels` is not one entry per output.

    Example:
        >>> per_output({"box": b}, ["box", "cls"])
        [b, None]
    """
    if labels is None:
        return [None] * len(output_names)
    if isinstance(labels, dict):
        return outputs.by_name(labels, output_names, "y")
    if isinstance(labels, (list, tuple)) and len(labels) == len(output_names):
        if all(isinstance(v, (np.ndarray, list, tf.Tensor)) for v in labels):
            return list(labels)
    raise ValueError(
        f"Invalid value for argument `y`: the student has {len(output_names)} "
        f"outputs ({', '.join(output_names)}), so pass one array of labels per "
        "output: a list in that order, or a dict keyed by output name."
    )


def teacher_outputs_per_output(teacher_outputs, count: int) -> list:
    """Returns cached (or online) teacher outputs as a list, one per output.

    A dict is taken in the order of `kdistill.outputs.names` (sorted keys).

    Args:
        teacher_outputs: One array for a single output, else a list or dict.
        count: How many outputs the student has.
    """
    if count > 1 and teacher_outputs is not None:
        return outputs.flat(teacher_outputs)
    return [teacher_outputs]


def label_for(labels, key):
    """Returns one output's labels from labels in output order or by name.

    Args:
        labels: A list in output order, a dict keyed by output name, or None.
        key: The output's position (for a list) or name (for a dict).

    Returns:
        The labels, or None when there are none for that output.

    Example:
        >>> label_for({"cls": c}, "box") is None
        True
    """
    if labels is None:
        return None
    if isinstance(labels, dict):
        return labels.get(key)
    return labels[key]


def packs_teacher_outputs(x, y) -> bool:
    """Whether `fit`'s data carries offline targets: in `y`, or in the
    targets a `tf.data.Dataset` given as `x` yields."""
    if isinstance(x, tf.data.Dataset):
        spec = x.element_spec
        y = spec[1] if isinstance(spec, tuple) and len(spec) > 1 else None
    return isinstance(y, dict) and TEACHER_OUTPUTS_KEY in y


def class_weights(labels, class_weight: dict, per_position: bool = False):
    """Returns each sample's class weight, from its label, as Keras does for
    one output: sparse labels as they are, one-hot labels by their argmax,
    classes `class_weight` leaves out weighted 1.

    Args:
        labels: The true labels, (n,), (n, 1) or one-hot (n, classes): an
            array or a tensor; with `per_position`, class indices
            (n, positions...).
        class_weight: A dict from class index to weight.
        per_position: The labels are one class index per position (an
            output (n, positions..., classes)): one weight per position.

    Returns:
        A float32 tensor of shape (n,), or the labels' shape per position.

    Example:
        >>> class_weights(np.array([0, 1, 1]), {1: 3.0}).numpy()
        array([1., 3., 3.], dtype=float32)
    """
    if not isinstance(class_weight, dict) or not class_weight:
        raise ValueError(
            "Invalid value for argument `class_weight`. Expected a dict from class "
            f"index to weight, e.g. {{0: 1.0, 1: 5.0}}. Received: class_weight={class_weight!r}"
        )
    labels = tf.convert_to_tensor(labels)
    if labels.shape.rank and labels.shape.rank > 1 and not per_position:
        labels = tf.argmax(labels, axis=-1) if labels.shape[-1] != 1 else labels[..., 0]
    labels = tf.cast(tf.round(tf.cast(labels, tf.float32)), tf.int32)
    size = max(int(k) for k in class_weight) + 1
    table = np.ones(size, "float32")
    for key, weight in class_weight.items():
        table[int(key)] = float(weight)
    known = (labels >= 0) & (labels < size)
    looked_up = tf.gather(tf.constant(table), tf.clip_by_value(labels, 0, size - 1))
    return tf.where(known, looked_up, tf.ones_like(looked_up))


def with_class_weight(x, y, sample_weight, class_weight, per_position: bool = False):
    """Returns `(x, y, sample_weight)` for `fit` with `class_weight` applied to
    the labels packed in offline targets, multiplying any sample weights.

    Keras refuses `class_weight` for targets that are a dict, as offline
    targets are; weighting the labels' samples here does what Keras does for
    one output. Keras would also read labels (n, positions) as one-hot rows
    and weight each sample by the argmax of its positions; with
    `per_position` each position is weighted by its own label, for offline
    targets and plain labels alike.

    Args:
        x: `fit`'s inputs, or a `tf.data.Dataset` of (x, targets[, weights]).
        y: Offline targets (`pack`) or, with `per_position`, plain labels;
            None for a dataset.
        sample_weight: `fit`'s sample weights, or None.
        class_weight: A dict from class index to weight.
        per_position: The student's output is (n, positions..., classes).
    """

    def labels_of(targets):
        return targets[LABELS_KEY] if isinstance(targets, dict) else targets

    if isinstance(x, tf.data.Dataset):

        def weigh(*batch):
            inputs, packed = batch[0], batch[1]
            weights = class_weights(labels_of(packed), class_weight, per_position)
            if len(batch) > 2 and batch[2] is not None:
                weights = weights * _broadcastable(tf.cast(batch[2], tf.float32), weights)
            return inputs, packed, weights

        return x.map(weigh), y, sample_weight
    weights = class_weights(labels_of(y), class_weight, per_position)
    if sample_weight is not None:
        given = tf.convert_to_tensor(np.asarray(sample_weight, "float32"))
        weights = weights * _broadcastable(given, weights)
    return x, y, weights.numpy()


def _broadcastable(sample_weight, weights):
    """Sample weights (n,), (n, 1) or the labels' shape, shaped to multiply
    class weights of shape `weights`."""
    if sample_weight.shape.rank == weights.shape.rank and sample_weight.shape[-1] != 1:
        return sample_weight
    rows = tf.reshape(sample_weight, [-1])[: tf.shape(weights)[0]]
    return tf.reshape(
        rows, tf.concat([tf.shape(weights)[:1], tf.ones_like(tf.shape(weights)[1:])], 0)
    )
