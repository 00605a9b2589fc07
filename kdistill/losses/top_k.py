"""Distillation from a top-k cache of the teacher's outputs, as pure functions.

A top-k cache (`kdistill.cache_teacher_outputs(..., top_k=k)`) keeps, per
position, the teacher's k largest logits, their class indices and the
log-sum-exp of its other logits (the tail). The functions here compare it
with the student's full logits over k + 1 buckets: the k kept classes and
one tail bucket holding every other class.

Example:
    >>> from kdistill.losses import top_k
    >>> cache = {"top_k_logits": [[3., 1.]], "top_k_indices": [[0, 1]],
    ...          "tail_logsumexp": [0.313]}
    >>> top_k.top_k_divergence(*cache.values(), [[0., 0., 0., 0.]])  # (1,)
"""

from __future__ import annotations

from kdistill import validation
from kdistill.backend import tf
from kdistill.losses.functional import (
    TensorLike,
    _as_float32,
    jsd_from_log_probs,
    kl_divergence,
)

# A log-probability (or logit) that stands for "no mass": exp() is 0 in
# float32 and float64, yet it stays finite, so 0 * (log p - log q) is 0.
NO_MASS = -1e30

# The divergences `top_k_divergence` computes over its k + 1 buckets.
TOP_K_DIVERGENCES = ("forward_kl", "reverse_kl", "generalized_jsd")


def top_k_buckets(
    top_k_logits: TensorLike,
    top_k_indices: TensorLike,
    tail_logsumexp: TensorLike,
    student_logits: TensorLike,
    temperature: TensorLike = 1.0,
) -> tuple:
    """Teacher and student log-probabilities over k + 1 buckets.

    A top-k cache (`kdistill.cache_teacher_outputs(..., top_k=k)`) keeps,
    per position, the teacher's k largest logits, their class indices and
    the log-sum-exp of all its other logits (the tail). The buckets are the
    k kept classes plus one "tail" bucket holding every other class:

    * teacher: ``log_softmax([z_kept / T, tail / T])``, the k kept
      probabilities and the tail's mass. At T=1 these are exactly the
      teacher's probabilities of the kept classes and of the rest; at other
      temperatures the tail is treated as one class whose logit is its
      log-sum-exp (an approximation: softening the tail's classes one by
      one would need them all).
    * student: its own ``log_softmax(z / T)`` over every class, gathered at
      the k indices, plus its own tail mass, the log-sum-exp of its other
      log-probabilities.

    With k equal to the number of classes the tail is empty (`NO_MASS`) and
    the buckets are the full distributions.

    Args:
        top_k_logits: Tensor (..., k), float32.
        top_k_indices: Integer tensor (..., k): the kept classes.
        tail_logsumexp: Tensor (...): log-sum-exp of the other logits.
        student_logits: Tensor (..., classes).
        temperature: Positive scalar.

    Returns:
        ``(teacher_log_p, student_log_p)``, each (..., k + 1).
    """
    t = tf.cast(temperature, tf.float32)
    teacher = tf.concat(
        [_as_float32(top_k_logits), tf.expand_dims(_as_float32(tail_logsumexp), -1)], -1
    )
    teacher_log_p = tf.nn.log_softmax(teacher / t, axis=-1)
    student_log_p = tf.nn.log_softmax(_as_float32(student_logits) / t, axis=-1)
    kept = tf.gather(student_log_p, tf.cast(top_k_indices, tf.int32), batch_dims=-1)
    tail = logsumexp_excluding(student_log_p, top_k_indices)
    return teacher_log_p, tf.concat([kept, tf.expand_dims(tail, -1)], -1)


def logsumexp_excluding(values: TensorLike, indices: TensorLike) -> tf.Tensor:
    """log(sum(exp(values))) over the last axis, leaving out `indices`.

    The left-out entries are replaced (not subtracted, which would cancel
    catastrophically when they hold nearly all the mass). With every entry
    left out the result is about `NO_MASS`: no mass, but finite.

    Args:
        values: Tensor (..., classes).
        indices: Integer tensor (..., k): the classes to leave out.

    Returns:
        Tensor (...).

    Example:
        >>> logsumexp_excluding([[0., 5., 0.]], [[1]])  # [log 2]
    """
    values = _as_float32(values)
    classes = tf.shape(values)[-1]
    rows = tf.reshape(values, [-1, classes])
    flat_indices = tf.reshape(tf.cast(indices, tf.int32), [tf.shape(rows)[0], -1])
    row_ids = tf.broadcast_to(tf.range(tf.shape(rows)[0])[:, None], tf.shape(flat_indices))
    others = tf.tensor_scatter_nd_update(
        rows,
        tf.stack([row_ids, flat_indices], -1),
        tf.fill(tf.shape(flat_indices), tf.constant(NO_MASS, tf.float32)),
    )
    return tf.reshape(tf.reduce_logsumexp(others, axis=-1), tf.shape(values)[:-1])


def top_k_divergence(
    top_k_logits: TensorLike,
    top_k_indices: TensorLike,
    tail_logsumexp: TensorLike,
    student_logits: TensorLike,
    temperature: TensorLike = 1.0,
    divergence: str = "forward_kl",
    beta: float = 0.5,
) -> tf.Tensor:
    """A divergence between a top-k cached teacher and the student, T^2-scaled.

    Computed over the k + 1 buckets of `top_k_buckets` (the k classes the
    teacher ranks highest and one tail bucket for the rest): a KL over k + 1
    buckets instead of the whole vocabulary. It equals the full loss when k
    is the number of classes; with fewer it ignores how either model spreads
    mass inside the tail, so at T=1 it is at most the full divergence
    (merging classes never increases an f-divergence: KL either way, JSD)
    and reaches it as the tail's mass goes to 0.

    Args:
        top_k_logits: Tensor (..., k).
        top_k_indices: Integer tensor (..., k).
        tail_logsumexp: Tensor (...).
        student_logits: Tensor (..., classes).
        temperature: Positive scalar.
        divergence: "forward_kl" (`soft_target_kd`), "reverse_kl"
            (`reverse_kl`) or "generalized_jsd" (`generalized_jsd`).
        beta: The generalised JSD's beta.

    Returns:
        Tensor (...), float32.
    """
    divergence = validation.check_choice(divergence, "divergence", TOP_K_DIVERGENCES)
    teacher_log_p, student_log_p = top_k_buckets(
        top_k_logits, top_k_indices, tail_logsumexp, student_logits, temperature
    )
    t = tf.cast(temperature, tf.float32)
    if divergence == "forward_kl":
        value = kl_divergence(teacher_log_p, student_log_p)
    elif divergence == "reverse_kl":
        value = kl_divergence(student_log_p, teacher_log_p)
    else:
        value = jsd_from_log_probs(teacher_log_p, student_log_p, beta)
    return tf.square(t) * value
