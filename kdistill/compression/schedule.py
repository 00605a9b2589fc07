"""Pruning schedules with tensorflow-model-optimization's semantics.

A schedule says, at each training step, whether to recompute the masks and
at which sparsity. Masks are recomputed when ``begin_step <= step <= end_step``
(``end_step=-1``: no end) and ``(step - begin_step) % frequency == 0``.

* constant: `target_sparsity` at every pruning step (tfmot's
  `ConstantSparsity`).
* polynomial: from `initial_sparsity` at `begin_step` to `target_sparsity` at
  `end_step`, ``s = final + (initial - final) * (1 - progress) ** power``
  (tfmot's `PolynomialDecay`).
"""

from __future__ import annotations

import dataclasses

from kdistill import validation
from kdistill.backend import tf

SCHEDULES = ("polynomial", "constant")


@dataclasses.dataclass(frozen=True)
class PruningSchedule:
    """Validated pruning schedule settings.

    Attributes:
        target_sparsity: Final share of zero weights in [0, 1).
        begin_step: First step that prunes.
        end_step: Last step that prunes (-1: none, constant schedule only).
        frequency: Steps between mask updates.
        schedule: "polynomial" or "constant".
        initial_sparsity: Start of the polynomial decay.
        power: Exponent of the polynomial decay.
    """

    target_sparsity: float
    begin_step: int = 0
    end_step: int = 1000
    frequency: int = 100
    schedule: str = "polynomial"
    initial_sparsity: float = 0.0
    power: float = 3.0

    def __post_init__(self):
        for name in ("target_sparsity", "initial_sparsity"):
            value = validation.check_number(getattr(self, name), name)
            if not 0.0 <= value < 1.0:
                raise ValueError(
                    f"Invalid value for argument `{name}`. Expected a share of "
                    f"weights in [0, 1). Received: {name}={value}"
                )
        validation.check_choice(self.schedule, "schedule", SCHEDULES)
        validation.check_integer(self.begin_step, "begin_step")
        validation.check_integer(self.frequency, "frequency", minimum=1)
        open_ended = self.schedule == "constant" and self.end_step == -1
        if not open_ended and self.end_step <= self.begin_step:
            raise ValueError(
                f"Invalid value for argument `end_step`: it must come after "
                f"begin_step ({self.begin_step}). Received: end_step={self.end_step}. "
                "Pruning ramps up between the two steps."
            )

    def sparsity(self, step):
        """Target sparsity at `step` (a tensor or number)."""
        step = tf.cast(step, tf.float32)
        if self.schedule == "constant":
            return tf.constant(self.target_sparsity, tf.float32)
        progress = (step - self.begin_step) / float(self.end_step - self.begin_step)
        progress = tf.clip_by_value(progress, 0.0, 1.0)
        final, initial = self.target_sparsity, self.initial_sparsity
        return final + (initial - final) * tf.pow(1.0 - progress, self.power)

    def should_prune(self, step):
        """Whether masks are recomputed at `step` (a boolean tensor)."""
        step = tf.cast(step, tf.int64)
        in_range = step >= self.begin_step
        if self.end_step != -1:
            in_range = tf.logical_and(in_range, step <= self.end_step)
        turn = tf.equal(tf.math.floormod(step - self.begin_step, self.frequency), 0)
        return tf.logical_and(in_range, turn)

    def to_tfmot(self):
        """The equivalent tfmot schedule object (imports tfmot)."""
        import tensorflow_model_optimization as tfmot

        if self.schedule == "constant":
            return tfmot.sparsity.keras.ConstantSparsity(
                self.target_sparsity, self.begin_step, self.end_step, self.frequency
            )
        return tfmot.sparsity.keras.PolynomialDecay(
            self.initial_sparsity,
            self.target_sparsity,
            self.begin_step,
            self.end_step,
            self.power,
            self.frequency,
        )
