"""`LossMeans`: running means of a step's losses, kept in one variable.

A distillation step logs several losses (the total, the student's hard-label
loss, the distillation loss, one per term). One `keras.metrics.Mean` per loss
costs two variable updates and a handful of casts and reductions each, every
step; on a small student trained without XLA these extra operations are a
measurable share of the step. `LossMeans` keeps every sum and the shared count
in one vector, updated with a single `assign_add`, and its `result()` is a
dict, which Keras (3 and tf_keras) puts into the logs as separate entries.
The `Distiller` keeps its teacher-agreement values (`teacher_agreement`,
`teacher_kl`) in a second one.

The functions after it are the `Distiller`'s log plumbing: which metrics it
lists, and what `step_logs="loss"` leaves out of a step's logs and puts back
into the epoch's.
"""

from __future__ import annotations

from kdistill import losses as losses_lib
from kdistill.backend import keras, register_serializable, tf


@register_serializable
class LossMeans(keras.metrics.Metric):
    """Weighted running means of several scalar losses sharing one weight.

    Args:
        names: The log name of each loss, in the order `update_state` gets
            their values.
        name: Name of the metric itself. It is not a log entry, but Keras
            lists first the log whose name equals it when `evaluate` returns
            a list.

    Example:
        >>> means = LossMeans(["loss", "student_loss"])
        >>> means.update_state([0.5, 0.25], sample_weight=32.0)
        >>> means.update_state([1.5, 0.75], sample_weight=32.0)
        >>> {k: float(v) for k, v in means.result().items()}
        {'loss': 1.0, 'student_loss': 0.5}
    """

    def __init__(self, names, name: str = "loss_means", **kwargs):
        super().__init__(name=name, **kwargs)
        self.names = tuple(names)
        if not self.names or len(set(self.names)) != len(self.names):
            raise ValueError(
                f"Invalid value for argument `names`: {list(self.names)}. Give "
                "one distinct log name per loss."
            )
        # Sums of the weighted losses, then the sum of the weights.
        self.sums = self.add_weight(
            name="sums", shape=(len(self.names) + 1,), initializer="zeros", dtype="float32"
        )

    def update_state(self, values, sample_weight=1.0):
        """Adds one step's losses.

        Args:
            values: One scalar per name: the step's mean of each loss.
            sample_weight: The step's weight (its batch size), shared by all.
        """
        if len(values) != len(self.names):
            raise ValueError(
                f"LossMeans got {len(values)} values for {len(self.names)} names "
                f"{list(self.names)}; pass one value per name."
            )
        weight = tf.cast(sample_weight, tf.float32)
        row = tf.stack([tf.cast(v, tf.float32) for v in values] + [tf.ones((), tf.float32)])
        self.sums.assign_add(row * weight)

    def result(self):
        sums = tf.convert_to_tensor(self.sums)
        means = tf.math.divide_no_nan(sums[:-1], sums[-1])
        return {name: means[i] for i, name in enumerate(self.names)}

    def reset_state(self):
        self.sums.assign(tf.zeros_like(self.sums))

    def get_config(self):
        return {**super().get_config(), "names": list(self.names)}


def agreement(teacher_logits, student_logits) -> list:
    """Returns [top-1 agreement, KL(teacher || student)], each a batch mean.

    The KL divergence is taken at temperature 1. These are the values of the
    `teacher_agreement` and `teacher_kl` logs.

    Example:
        >>> match, kl = agreement(tf.constant([[2.0, 0.0]]), tf.constant([[1.0, 0.0]]))
        >>> float(match)
        1.0
    """
    match = tf.cast(
        tf.equal(tf.argmax(teacher_logits, -1), tf.argmax(student_logits, -1)), tf.float32
    )
    kl = losses_lib.soft_target_kd(teacher_logits, student_logits, 1.0)
    return [tf.reduce_mean(match), tf.reduce_mean(kl)]


def agreement_per_position(teacher_logits, student_logits, weights=None) -> tuple:
    """Teacher agreement of per-position outputs (batch, positions..., classes).

    Each position counts as one prediction, weighted by its weight: padded
    positions (weight 0) are left out.

    Args:
        teacher_logits: Tensor (batch, positions..., classes).
        student_logits: Tensor of the same shape.
        weights: Weights that broadcast against (batch, positions...)
            (`kdistill.objective.sample_weights`), or None (all 1).

    Returns:
        ``([top-1 agreement, KL(teacher || student)], total weight)``: the
        weighted means over the positions, and the weight of this batch for
        the running means.

    Example:
        >>> (match, kl), weight = agreement_per_position(t, s, tf.constant([[1., 0.]]))
    """
    match = tf.cast(
        tf.equal(tf.argmax(teacher_logits, -1), tf.argmax(student_logits, -1)), tf.float32
    )
    kl = losses_lib.soft_target_kd(teacher_logits, student_logits, 1.0)
    if weights is None:
        weights = tf.ones_like(match)
    weights = tf.broadcast_to(weights, tf.shape(match))
    total = tf.reduce_sum(weights)
    means = [tf.math.divide_no_nan(tf.reduce_sum(v * weights), total) for v in (match, kl)]
    return means, total


# What a training step may return to `fit`'s per-batch callbacks (see `Distiller.compile`).
STEP_LOGS = ("all", "loss")


def check_step_logs(step_logs: str) -> str:
    """Returns `step_logs` if it is one of `STEP_LOGS`; raises otherwise."""
    if step_logs not in STEP_LOGS:
        raise ValueError(
            f"Invalid value for argument `step_logs`: {step_logs!r}. Pass "
            '"all" (every loss each step) or "loss" (only the total loss and '
            "compiled metrics each step; every loss still in the epoch logs)."
        )
    return step_logs


def metrics(loss_means, agreement_means, tracking_agreement: bool, keras_metrics) -> list:
    """The loss means (and agreement while tracked), then the compiled metrics.

    Args:
        keras_metrics: `keras.Model.metrics` of the distiller. Keras 3's own
            "loss" tracker, which a distillation step does not feed, is left out.
    """
    mine = [loss_means, agreement_means]
    own = mine if tracking_agreement else mine[:1]
    rest = [m for m in keras_metrics if m.name != "loss" and not _contains(mine, m)]
    return own + rest


def epoch_only_log_names(loss_means, agreement_means, tracking_agreement: bool) -> set:
    """The logs that `step_logs="loss"` leaves out of each step."""
    names = set(loss_means.names[1:])
    if tracking_agreement:
        names.update(agreement_means.names)
    return names


def without(logs: dict, names: set) -> dict:
    """`logs` less the entries named in `names`."""
    return {k: v for k, v in logs.items() if k not in names}


def with_epoch_only_logs(logs, step_logs: str, metrics_result):
    """A step's logs plus the tracked values the step left out.

    With `step_logs="loss"`, a step's logs hold fewer keys than the
    model's metrics, and Keras (3 and tf_keras) then uses the last step's
    logs as the epoch's. Given every key, it reads the epoch's values from
    the metrics as usual.

    Args:
        metrics_result: A function returning every metric's result (the
            model's `get_metrics_result`), called only when keys are missing.
    """
    if step_logs == "loss" and isinstance(logs, dict):
        return {**metrics_result(), **logs}
    return logs


def _contains(items, item) -> bool:
    return any(item is other for other in items)
