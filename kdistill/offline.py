"""Offline distillation: run the teacher once, train from its cached outputs.

Keras reads a third tuple element as sample weights, so cached teacher outputs
travel inside the targets instead, as a dict::

    y = {"labels": labels, "teacher_outputs": cached_outputs}

`offline_targets` builds that dict; `Distiller(teacher=None, ...)` reads it.
Sample weights still go in the usual place: ``fit(x, y, sample_weight=w)`` or
the third element of a dataset's tuples.
"""

from __future__ import annotations

import numpy as np

from kdistill import data_contract, outputs, targets, validation
from kdistill import losses as losses_lib
from kdistill.backend import keras, tf


def offline_targets(labels, teacher_outputs) -> dict:
    """Packs labels and cached teacher outputs into the targets `fit` takes.

    Args:
        labels: The true labels (sparse or one-hot).
        teacher_outputs: The teacher's outputs for the same samples, from
            `cache_teacher_outputs` (full logits, or a top-k cache).

    Returns:
        A dict ``{"labels": labels, "teacher_outputs": teacher_outputs}``
        (see `kdistill.targets.pack`).

    Raises:
        ValueError: The cached outputs hold NaN or inf, or the two hold
            different numbers of rows.
        TypeError: The labels are strings.

    Example:
        >>> t = cache_teacher_outputs(teacher, x_train)
        >>> distiller.fit(x_train, offline_targets(y_train, t), epochs=5)
    """
    if targets.is_top_k(teacher_outputs):
        targets.check_top_k(teacher_outputs)
    for values in _arrays(teacher_outputs):
        data_contract.check_finite(values, "teacher_outputs")
    for values in _arrays(labels):
        data_contract.check_not_strings(data_contract.as_array(values, "labels"), "labels")
    return targets.pack(labels, teacher_outputs)


def _arrays(values) -> list:
    """The numpy arrays (or lists) in `values`, or in its list or dict of them."""
    if isinstance(values, dict):
        values = list(values.values())
    if isinstance(values, (list, tuple)) and not data_contract.is_list_of_values(values):
        return [v for v in values if isinstance(v, (np.ndarray, list))]
    return [values] if isinstance(values, (np.ndarray, list)) else []


def cache_teacher_outputs(teacher, data, batch_size: int = 256, top_k: int | None = None):
    """Runs the teacher once over `data` and returns its outputs.

    With `top_k=k`, only a compact form is kept, per sample (or per position
    of outputs (batch, positions..., classes)): the k largest logits, their
    class indices, and the log-sum-exp of all the other logits (the tail's
    mass), as a dict of `kdistill.targets.TOP_K_KEYS`. Bytes per position:
    4 * classes for full float32 logits against 8 * k + 4 for top-k (k
    float32 logits, k int32 indices, one float32 tail): for a vocabulary of
    256,000 and k=32, 1,024,000 against 260. `SoftTargetKD`, `ReverseKL` and
    `GeneralizedJSD` train from it over k + 1 buckets
    (`kdistill.losses.top_k.top_k_buckets`), exactly at temperature 1
    and k = classes; other losses need full logits.

    Args:
        teacher: A Keras model, or a list of models (an ensemble): their
            outputs are stacked on axis 1, shape (samples, teachers, ...).
        data: Inputs as a numpy array (or a structure of arrays the teacher
            takes), or a `tf.data.Dataset` of ``(x, y)`` or ``(x, y,
            sample_weight)`` batches.
        batch_size: Batch size for arrays (ignored for datasets).
        top_k: Keep the k largest logits per position (and the tail's
            log-sum-exp) instead of all of them; None keeps all. A teacher
            with one output only.

    Returns:
        Teacher logits (a teacher ending in softmax gives log-probabilities;
        a teacher with several outputs gives a list, one array per output in
        output order). For arrays: a float32 numpy array, to pass to
        `offline_targets`. For a dataset: a new, in-memory dataset with the
        same batches whose targets are already packed with `offline_targets`
        (iterate a deterministic dataset; shuffle the result with
        ``.unbatch().shuffle(n).batch(b)`` if needed).

    Raises:
        ValueError: The data (arrays) or the teacher's outputs hold NaN or
            inf; nothing is returned for a teacher that would poison training.

    Example:
        >>> t = cache_teacher_outputs(teacher, x_train, batch_size=512)
        >>> compact = cache_teacher_outputs(lm_teacher, token_ids, top_k=32)
    """
    teachers = teacher if isinstance(teacher, (list, tuple)) else [teacher]
    if top_k is not None:
        top_k = validation.check_integer(top_k, "top_k", minimum=1)
        if len(teachers) > 1 or outputs.count(teachers[0]) > 1:
            raise ValueError(
                "Invalid value for argument `top_k`: a top-k cache holds one teacher's "
                "one output. Cache full logits (top_k=None) for an ensemble or a model "
                "with several outputs."
            )

    probabilities = [outputs.probability_outputs(m) for m in teachers]
    several = outputs.count(teachers[0]) > 1
    if several and len(teachers) > 1:
        raise ValueError(
            "Invalid value for argument `teacher`: an ensemble's outputs are "
            "cached for models with one output; these teachers have "
            f"{outputs.count(teachers[0])}. Cache a single teacher."
        )

    def run(x):
        if several:  # one teacher, a list of logits in output order
            values = outputs.flat(teachers[0](x, training=False))
            return [np.asarray(outputs.as_logits(v, p)) for v, p in zip(values, probabilities[0])]
        logits = [
            np.asarray(outputs.as_logits(m(x, training=False), p[0]))
            for m, p in zip(teachers, probabilities)
        ]
        if top_k is not None:
            return _top_k(logits[0], top_k)
        return logits[0] if len(logits) == 1 else np.stack(logits, axis=1)

    if isinstance(data, tf.data.Dataset):
        data_contract.check_dataset(data)
        return _cache_dataset(run, data)
    validation.check_integer(batch_size, "batch_size", minimum=1)
    if data_contract.is_list_of_values(data):
        data = data_contract.as_array(data, "data")
    first = tf.nest.flatten(data)[0]
    n = len(first)
    if n == 0:
        raise ValueError("Invalid value for argument `data`: it holds no samples.")
    for array in tf.nest.flatten(data):
        array = data_contract.as_array(array, "data")
        data_contract.check_not_strings(array, "data")
        data_contract.check_finite(array, "data", batch_size)
    if len(tf.nest.flatten(data)) == 1:
        expected = validation.static_shape(teachers[0], "inputs")
        data_contract.check_input_shape(tf.nest.flatten(data)[0], expected, "data", "teacher")
    chunks = []
    for start in range(0, n, batch_size):
        batch = tf.nest.map_structure(lambda a, i=start: a[i : i + batch_size], data)
        chunks.append(run(batch))
    return _check_teacher_outputs(_concatenate(chunks))


def _top_k(logits, k: int) -> dict:
    """One batch's top-k cache: the k largest logits per position, their
    indices and the log-sum-exp of the others."""
    classes = logits.shape[-1]
    if k > classes:
        raise ValueError(
            f"Invalid value for argument `top_k`: {k} is more than the teacher's "
            f"{classes} classes. Pass top_k <= {classes}, or top_k=None for every logit."
        )
    values, indices = tf.math.top_k(tf.convert_to_tensor(logits, tf.float32), k)
    tail = losses_lib.top_k.logsumexp_excluding(logits, indices)
    return dict(zip(targets.TOP_K_KEYS, (values.numpy(), indices.numpy(), tail.numpy())))


def _check_teacher_outputs(cached):
    """Refuses NaN or inf in what the teacher returned, naming the sample."""
    checked = cached if isinstance(cached, list) else [cached]
    if targets.is_top_k(cached):
        checked = [cached["top_k_logits"], cached["tail_logsumexp"]]
    for values in checked:
        rows = values.reshape(len(values), -1)
        finite = np.all(np.isfinite(rows), axis=1)
        if not np.all(finite):
            index = int(np.argmin(finite))
            raise ValueError(
                f"Invalid value for argument `teacher`: the teacher's outputs are NaN or "
                f"inf for sample {index} (of {len(values)}), though the data is finite. "
                "Cached, they would turn the student's loss NaN. Check the teacher (a "
                "training run that diverged, or weights loaded wrongly) before caching."
            )
    return cached


def _concatenate(chunks):
    """Joins per-batch teacher logits: arrays, lists of arrays (one per
    output) or top-k caches."""
    if isinstance(chunks[0], dict):
        return {key: np.concatenate([c[key] for c in chunks], axis=0) for key in chunks[0]}
    if isinstance(chunks[0], list):
        return [np.concatenate(parts, axis=0) for parts in zip(*chunks)]
    return np.concatenate(chunks, axis=0)


def _cache_dataset(run, dataset):
    xs, ys, ts, ws = [], [], [], []
    batch_size = None
    for element in dataset:
        x, y, w = keras.utils.unpack_x_y_sample_weight(element)
        batch_size = batch_size or int(tf.nest.flatten(x)[0].shape[0])
        xs.append(x)
        ys.append(y)
        ts.append(run(x))
        ws.append(w)
    if not xs:
        raise ValueError(
            "Invalid value for argument `data`: the dataset is empty, so there is nothing to cache."
        )

    def concat(parts):
        return tf.nest.map_structure(lambda *p: np.concatenate(p, axis=0), *parts)

    targets = offline_targets(concat(ys), _check_teacher_outputs(_concatenate(ts)))
    if ws[0] is None:
        elements = (concat(xs), targets)
    else:
        elements = (concat(xs), targets, concat(ws))
    return tf.data.Dataset.from_tensor_slices(elements).batch(batch_size)
