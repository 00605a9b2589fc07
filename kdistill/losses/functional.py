"""The distillation losses as pure functions of tensors.

Each loss takes teacher and student tensors (and labels where it needs them)
and returns one value per sample, shape ``(batch,)``, so the `Distiller` can
weight samples and reduce over the global batch. Losses run in float32
whatever the models' precision. The classes in `kdistill.losses` wrap these
with their configuration.

Example:
    >>> from kdistill.losses import functional
    >>> functional.soft_target_kd([[2., -1., .5]], [[.1, .3, -.2]], 3.0)  # ~[0.791]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from kdistill import validation
from kdistill.backend import tf

# Whatever tf.convert_to_tensor takes: a tensor or variable, an array, nested lists, a number.
TensorLike = tf.Tensor | tf.Variable | np.ndarray | Sequence | float


def soft_target_kd(
    teacher_logits: TensorLike, student_logits: TensorLike, temperature: TensorLike
) -> tf.Tensor:
    """Hinton soft-target loss per sample: T^2 * KL(p_t^T || p_s^T).

    Computed from logits with log-softmax, so it stays finite for logits of
    magnitude 1e4. The T^2 factor keeps gradient magnitudes comparable across
    temperatures: d/dz_s = T * (softmax(z_s/T) - softmax(z_t/T)).

    The loss and its gradient are computed in float64 (inputs and results
    stay float32): at large T both distributions are nearly uniform, and the
    KL between them, of order (z/T)^2, drowns in float32's rounding of the
    log-probabilities (T=1e4 gave 11.2 instead of 9.09). In float64 it stays
    within 1e-6 of the exact value up to T=1e4 (`validation.TEMPERATURE_RANGE`
    is the accepted range). Where TensorFlow sees a TPU, which has no float64,
    the same arithmetic runs in float32 (exact for usual temperatures, less so
    as T grows towards 1e4).

    The gradient is written out (with respect to both logits and the
    temperature, and itself differentiable) from the forward pass's own
    log-probabilities: without XLA a training step runs fewer kernels than
    with TensorFlow's derived gradient of the float32 loss
    (`benchmarks/step_profile.py`, MLP pair: 238 per step against 241; the
    float64 casts added 3 to the float32 form's 235, and in two 40-round runs
    on a busy shared CPU the step went from 1.03-1.05x the student-only floor
    to 1.06-1.07x).

    Args:
        teacher_logits: Tensor (batch, classes).
        student_logits: Tensor (batch, classes).
        temperature: Scalar (float or tensor) in
            `kdistill.validation.TEMPERATURE_RANGE`, [0.01, 1e4]; a Python
            number outside it is refused.

    Returns:
        Tensor (batch,), float32.

    Example:
        >>> soft_target_kd([[2., -1., .5]], [[.1, .3, -.2]], 3.0)  # ~[0.791]
    """
    if isinstance(temperature, (int, float, np.floating, np.integer)):
        validation.check_temperature(temperature)
    return _soft_target_kd(
        _as_float32(teacher_logits), _as_float32(student_logits), tf.cast(temperature, tf.float32)
    )


def _precise_dtype() -> tf.DType:
    # Read when the step is traced: TPUs have no float64.
    return tf.float32 if tf.config.list_logical_devices("TPU") else tf.float64


@tf.custom_gradient
def _soft_target_kd(teacher_logits, student_logits, t):
    # z/T in float32 is exact to float32's relative precision; what float32
    # cannot hold is the tiny difference of two nearly uniform
    # log-probabilities, so everything from the log-softmax on is float64.
    a = tf.cast(teacher_logits / t, _precise_dtype())
    s = tf.cast(student_logits / t, _precise_dtype())
    teacher_log_p = tf.nn.log_softmax(a, axis=-1)
    student_log_p = tf.nn.log_softmax(s, axis=-1)
    teacher_p = tf.exp(teacher_log_p)
    log_ratio = teacher_log_p - student_log_p
    kl = tf.reduce_sum(teacher_p * log_ratio, axis=-1)

    def gradient(upstream):
        # With a = z_t/T, s = z_s/T, p = softmax(a), q = softmax(s):
        #   dKL/ds = q - p and dKL/da = p * (log p - log q - KL),
        # so d(T^2 KL)/dz = T * dKL/d(z/T). The temperature enters through
        # T^2 (2T KL) and through both z/T (each dz * z, times -1/T), which
        # per sample is T * (2 KL - sum(dKL/da * a + dKL/ds * s)): formed in
        # float64, where its two nearly equal terms still differ at large T.
        d_s = tf.exp(student_log_p) - teacher_p
        d_a = teacher_p * (log_ratio - tf.expand_dims(kl, -1))
        d_t = 2.0 * kl - tf.reduce_sum(d_a * a + d_s * s, axis=-1)
        scale = upstream * t
        d_teacher = tf.expand_dims(scale, -1) * tf.cast(d_a, tf.float32)
        d_student = tf.expand_dims(scale, -1) * tf.cast(d_s, tf.float32)
        return d_teacher, d_student, tf.reduce_sum(scale * tf.cast(d_t, tf.float32))

    return tf.square(t) * tf.cast(kl, tf.float32), gradient


def logit_mse(
    teacher_logits: TensorLike, student_logits: TensorLike, reduction: str = "mean"
) -> tf.Tensor:
    """Squared error between logits per sample (Ba & Caruana 2014).

    Args:
        teacher_logits: Tensor (batch, classes), or (batch, positions...,
            classes) for per-position outputs.
        student_logits: Tensor of the same shape.
        reduction: "mean" averages the squared error over the last (class)
            axis; "sum" sums it, giving the squared L2 norm ||z_t - z_s||^2.

    Returns:
        Tensor (batch,), or (batch, positions...): one value per position.

    Example:
        >>> logit_mse([[1., 2.]], [[0., 0.]], "sum")  # [5.0]
    """
    squared = tf.square(_as_float32(teacher_logits) - _as_float32(student_logits))
    if squared.shape.rank == 1:  # one value per sample already
        return squared
    if reduction == "sum":
        return tf.reduce_sum(squared, axis=-1)
    return tf.reduce_mean(squared, axis=-1)


def hint_mse(teacher_features: TensorLike, student_features: TensorLike) -> tf.Tensor:
    """FitNets hint loss per sample: mean squared error between features.

    Args:
        teacher_features: Tensor (batch, ...), the teacher's hint.
        student_features: Tensor of the same shape, the student's guided layer
            after the adapter.

    Returns:
        Tensor (batch,).
    """
    squared = tf.square(_as_float32(teacher_features) - _as_float32(student_features))
    return _reduce_per_sample(squared, "mean")


def hint_mae(teacher_features: TensorLike, student_features: TensorLike) -> tf.Tensor:
    """Mean absolute error between features, per sample.

    Args:
        teacher_features: Tensor (batch, ...).
        student_features: Tensor of the same shape.

    Returns:
        Tensor (batch,).

    Example:
        >>> hint_mae([[1.0, -1.0]], [[0.0, 1.0]])  # [1.5]
    """
    absolute = tf.abs(_as_float32(teacher_features) - _as_float32(student_features))
    return _reduce_per_sample(absolute, "mean")


def hint_cosine(teacher_features: TensorLike, student_features: TensorLike) -> tf.Tensor:
    """Cosine distance (1 - cosine similarity) between flattened features.

    Insensitive to the features' scale, so a teacher with large activations
    does not dominate the objective. In [0, 2]; 0 when the features point the
    same way (a zero feature counts as orthogonal to every other).

    Args:
        teacher_features: Tensor (batch, ...).
        student_features: Tensor of the same shape.

    Returns:
        Tensor (batch,).

    Example:
        >>> hint_cosine([[1.0, 0.0]], [[0.0, 2.0]])  # [1.0]
    """

    def unit_rows(features):
        features = _as_float32(features)
        flat = tf.reshape(features, (tf.shape(features)[0], -1))
        return tf.math.l2_normalize(flat, axis=-1)

    similarity = tf.reduce_sum(unit_rows(teacher_features) * unit_rows(student_features), -1)
    return 1.0 - similarity


# The per-sample feature distances `HintLoss` can use, by name.
HINT_DISTANCES: dict[str, Callable[[TensorLike, TensorLike], tf.Tensor]] = {
    "mse": hint_mse,
    "mae": hint_mae,
    "cosine": hint_cosine,
}


def decoupled_kd(
    teacher_logits: TensorLike,
    student_logits: TensorLike,
    labels: TensorLike,
    alpha: float,
    beta: float,
    temperature: TensorLike,
) -> tf.Tensor:
    """Decoupled knowledge distillation per sample (Zhao et al., CVPR 2022).

    DKD = alpha * TCKD + beta * NCKD, each scaled by T^2, where TCKD is the KL
    between the binary (target, non-target) distributions and NCKD the KL
    between the distributions over non-target classes.

    Args:
        teacher_logits: Tensor (batch, classes), or (batch, positions...,
            classes) for per-position outputs.
        student_logits: Tensor of the same shape.
        labels: Sparse labels (batch,) or (batch, 1) (per position:
            (batch, positions...)), or one-hot labels of the logits' shape.
        alpha: Weight of the target-class term.
        beta: Weight of the non-target-class term.
        temperature: Positive scalar.

    Returns:
        Tensor (batch,), or (batch, positions...).
    """
    t = tf.cast(temperature, tf.float32)
    teacher = _as_float32(teacher_logits) / t
    student = _as_float32(student_logits) / t
    target = _one_hot_like(labels, teacher)
    tckd = _binary_kl(teacher, student, target)
    masked_teacher = tf.nn.log_softmax(_mask_out(teacher, target), axis=-1)
    masked_student = tf.nn.log_softmax(_mask_out(student, target), axis=-1)
    nckd = tf.reduce_sum(tf.exp(masked_teacher) * (masked_teacher - masked_student), axis=-1)
    return t * t * (alpha * tckd + beta * nckd)


def attention_map(features: TensorLike, p: float = 2.0) -> tf.Tensor:
    """Spatial attention map of a feature map (Zagoruyko & Komodakis 2017).

    Args:
        features: Tensor (batch, height, width, channels) or (batch, steps,
            channels).
        p: Exponent applied to absolute activations.

    Returns:
        Tensor (batch, positions), L2-normalised per sample.
    """
    features = _as_float32(features)
    energy = tf.reduce_mean(tf.pow(tf.abs(features), p), axis=-1)
    flat = tf.reshape(energy, (tf.shape(energy)[0], -1))
    return tf.math.l2_normalize(flat, axis=-1)


def attention_transfer(
    teacher_features: TensorLike,
    student_features: TensorLike,
    beta: float = 1000.0,
    p: float = 2.0,
) -> tf.Tensor:
    """Attention transfer per sample: beta/2 * mean((a_t - a_s)^2).

    Channel counts may differ; spatial sizes must match.

    Args:
        teacher_features: Tensor (batch, H, W, C_t).
        student_features: Tensor (batch, H, W, C_s).
        beta: Weight (the paper uses 1000).
        p: Exponent of the attention map.

    Returns:
        Tensor (batch,).
    """
    difference = attention_map(teacher_features, p) - attention_map(student_features, p)
    return beta / 2.0 * tf.reduce_mean(tf.square(difference), axis=-1)


def average_logits(teacher_logits: TensorLike, weights: Sequence[float]) -> tf.Tensor:
    """Weighted mean of an ensemble's logits.

    Args:
        teacher_logits: Tensor (batch, teachers, classes), or (batch,
            teachers, positions..., classes).
        weights: One weight per teacher, summing to 1.

    Returns:
        Tensor (batch, classes), or (batch, positions..., classes).
    """
    teacher_logits = _as_float32(teacher_logits)
    return tf.reduce_sum(teacher_logits * _teacher_axis(weights, teacher_logits), axis=1)


def average_distribution_logits(
    teacher_logits: TensorLike, weights: Sequence[float], temperature: TensorLike
) -> tf.Tensor:
    """Logits whose softmax at `temperature` is the ensemble's mean distribution.

    Hinton et al. 2015 distil the (weighted) average of the teachers'
    softened distributions; ``T * log(sum_i w_i softmax(z_i / T))`` gives it
    back exactly through ``softmax(. / T)``.

    Args:
        teacher_logits: Tensor (batch, teachers, classes), or (batch,
            teachers, positions..., classes).
        weights: One weight per teacher, summing to 1.
        temperature: The softening temperature.

    Returns:
        Tensor (batch, classes), or (batch, positions..., classes).
    """
    t = tf.cast(temperature, tf.float32)
    teacher_logits = _as_float32(teacher_logits)
    log_w = tf.math.log(_teacher_axis(weights, teacher_logits))
    log_p = tf.nn.log_softmax(teacher_logits / t, axis=-1)
    return t * tf.reduce_logsumexp(log_p + log_w, axis=1)


def _teacher_axis(weights, teacher_logits):
    """The teacher weights shaped to broadcast along axis 1 of `teacher_logits`."""
    rank = teacher_logits.shape.rank or 3
    return tf.reshape(tf.constant(weights, tf.float32), [1, -1] + [1] * (rank - 2))


def _as_float32(x):
    # Softened distributions underflow in half precision: losses run in fp32.
    return tf.cast(x, tf.float32)


def _reduce_per_sample(values, reduction):
    axes = tf.range(1, tf.rank(values))
    if reduction == "sum":
        return tf.reduce_sum(values, axis=axes)
    return tf.reduce_mean(values, axis=axes)


def _one_hot_like(labels, logits):
    labels = tf.convert_to_tensor(labels)
    classes = tf.shape(logits)[-1]
    if labels.shape.rank == logits.shape.rank and labels.shape[-1] not in (
        None,
        1,
    ):
        return tf.cast(labels, tf.float32)
    # Per position, labels (batch, positions...); per sample, one column.
    shape = (-1,) if logits.shape.rank == 2 else tf.shape(logits)[:-1]
    labels = tf.reshape(tf.cast(labels, tf.int32), shape)
    return tf.one_hot(labels, classes, dtype=tf.float32)


def _mask_out(logits, target):
    # Takes the target class out of the softmax with a negative offset beyond the row's
    # whole range, so its exp() is 0 at any scale: a fixed 1e4 did not mask logits/T of
    # 1e4 (logits of 100 at T=0.01), nor log-probabilities of -2e4. The offset is a
    # constant to the gradient.
    spread = tf.reduce_max(tf.abs(logits), axis=-1, keepdims=True)
    return logits - target * tf.stop_gradient(2.0 * spread + 1e4)


def _binary_kl(teacher, student, target):
    def binary_log_probs(logits):
        log_p = tf.nn.log_softmax(logits, axis=-1)
        log_target = tf.reduce_sum(log_p * target, axis=-1)
        # log(1 - p_target) = logsumexp over the non-target classes.
        log_rest = tf.reduce_logsumexp(_mask_out(log_p, target), axis=-1)
        return tf.stack([log_target, log_rest], axis=-1)

    log_t = binary_log_probs(teacher)
    log_s = binary_log_probs(student)
    return tf.reduce_sum(tf.exp(log_t) * (log_t - log_s), axis=-1)


def reverse_kl(
    teacher_logits: TensorLike, student_logits: TensorLike, temperature: TensorLike = 1.0
) -> tf.Tensor:
    """Reverse KL per sample or position: T^2 * KL(p_s^T || p_t^T).

    Gu, Dong, Wei & Huang, "MiniLLM: Knowledge Distillation of Large
    Language Models", ICLR 2024: the student's own distribution weighs the
    log-ratio, so the student seeks the teacher's modes instead of covering
    every class the teacher gives mass (forward KL, `soft_target_kd`).
    Scaled by T^2 like Hinton's loss; at T=1 (the paper's) it is the plain
    KL. Computed in float32 from log-softmax.

    Args:
        teacher_logits: Tensor (batch, classes) or (batch, positions...,
            classes).
        student_logits: Tensor of the same shape.
        temperature: Scalar in `kdistill.validation.TEMPERATURE_RANGE`.

    Returns:
        Tensor (batch,) or (batch, positions...), float32.

    Example:
        >>> reverse_kl([[0., 0.]], [[0., 0.]])  # identical: [0.0]
    """
    t, teacher_log_p, student_log_p = _log_probs(teacher_logits, student_logits, temperature)
    return tf.square(t) * kl_divergence(student_log_p, teacher_log_p)


def generalized_jsd(
    teacher_logits: TensorLike,
    student_logits: TensorLike,
    beta: float = 0.5,
    temperature: TensorLike = 1.0,
) -> tf.Tensor:
    """Generalised Jensen-Shannon divergence per sample or position.

    Agarwal et al., "On-Policy Distillation of Language Models: Learning from
    Self-Generated Mistakes" (GKD), ICLR 2024, with P the teacher and Q the
    student as in the paper (and TRL's `GKDTrainer`)::

        JSD(beta) = beta * KL(p_t || m) + (1 - beta) * KL(p_s || m),
        m = beta * p_t + (1 - beta) * p_s

    At beta=0.5 it is the symmetric Jensen-Shannon divergence (at most
    log 2). Its gradient behaves like forward KL's as beta -> 0 and reverse
    KL's as beta -> 1, but its value vanishes at both ends, so beta lies in
    (0, 1): use `soft_target_kd` or `reverse_kl` for the end points. Scaled
    by T^2 like the other losses (T=1 is the paper's).

    Args:
        teacher_logits: Tensor (batch, classes) or (batch, positions...,
            classes).
        student_logits: Tensor of the same shape.
        beta: The mixture's weight on the teacher, in (0, 1).
        temperature: Scalar in `kdistill.validation.TEMPERATURE_RANGE`.

    Returns:
        Tensor (batch,) or (batch, positions...), float32.

    Example:
        >>> generalized_jsd([[30., 0.]], [[0., 30.]])  # ~[log 2] = [0.693]
    """
    t, teacher_log_p, student_log_p = _log_probs(teacher_logits, student_logits, temperature)
    return tf.square(t) * jsd_from_log_probs(teacher_log_p, student_log_p, beta)


def kl_divergence(log_p: TensorLike, log_q: TensorLike) -> tf.Tensor:
    """KL(p || q) over the last axis, from log-probabilities.

    Args:
        log_p: Log-probabilities (..., classes).
        log_q: Log-probabilities of the same shape.

    Returns:
        Tensor (...): the last axis summed.
    """
    log_p = _as_float32(log_p)
    return tf.reduce_sum(tf.exp(log_p) * (log_p - _as_float32(log_q)), axis=-1)


def jsd_from_log_probs(teacher_log_p: TensorLike, student_log_p: TensorLike, beta: float):
    """`generalized_jsd` of two distributions given as log-probabilities."""
    teacher_log_p, student_log_p = _as_float32(teacher_log_p), _as_float32(student_log_p)
    log_m = tf.reduce_logsumexp(
        tf.stack([teacher_log_p + np.log(beta), student_log_p + np.log1p(-beta)]), axis=0
    )
    return beta * kl_divergence(teacher_log_p, log_m) + (1.0 - beta) * kl_divergence(
        student_log_p, log_m
    )


def _log_probs(teacher_logits, student_logits, temperature):
    if isinstance(temperature, (int, float, np.floating, np.integer)):
        validation.check_temperature(temperature)
    t = tf.cast(temperature, tf.float32)
    return (
        t,
        tf.nn.log_softmax(_as_float32(teacher_logits) / t, axis=-1),
        tf.nn.log_softmax(_as_float32(student_logits) / t, axis=-1),
    )
