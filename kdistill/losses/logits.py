"""Losses on the models' outputs (logits): soft targets, logit matching, DKD."""

from __future__ import annotations

from kdistill import targets, validation
from kdistill.backend import scalar_variable
from kdistill.losses.base import DistillationLoss, _register
from kdistill.losses.functional import (
    average_distribution_logits,
    decoupled_kd,
    logit_mse,
    soft_target_kd,
)
from kdistill.losses.top_k import top_k_divergence


@_register("soft_target")
class SoftTargetKD(DistillationLoss):
    """Hinton soft targets: T^2 * KL(softmax(z_t/T) || softmax(z_s/T)).

    Hinton, Vinyals & Dean, "Distilling the Knowledge in a Neural Network",
    2015. The temperature is a non-trainable variable, so a callback can
    schedule it during a compiled `fit()`.

    Forward KL per position for outputs (batch, positions..., classes). From
    a top-k cache (`cache_teacher_outputs(..., top_k=k)`) it is the KL over
    k + 1 buckets, the k classes the teacher ranks highest and a tail bucket
    for the rest (`kdistill.losses.top_k.top_k_buckets`).

    Args:
        temperature: Softening temperature (the paper's T), in
            `kdistill.validation.TEMPERATURE_RANGE`, [0.01, 1e4]: above it
            soft targets are uniform and the loss is logit matching (use
            `LogitMSE`); below it they are hard labels.

    Example:
        >>> loss = SoftTargetKD(temperature=3.0)
        >>> float(loss([[2., -1., .5]], [[.1, .3, -.2]]))  # ~0.791
    """

    takes_top_k = True

    def __init__(self, temperature: float = 4.0):
        temperature = validation.check_temperature(temperature)
        self.temperature = scalar_variable(temperature, "temperature")

    def per_sample(self, teacher_outputs, student_outputs, y_true=None):
        if targets.is_top_k(teacher_outputs):
            return top_k_divergence(
                *targets.top_k_parts(teacher_outputs), student_outputs, self.temperature
            )
        return soft_target_kd(teacher_outputs, student_outputs, self.temperature)

    def combine_teachers(self, teacher_logits, weights):
        return average_distribution_logits(teacher_logits, weights, self.temperature)

    def get_config(self):
        return {"temperature": float(self.temperature.numpy())}


@_register("logit_mse")
class LogitMSE(DistillationLoss):
    """Logit matching by squared error (Ba & Caruana, "Do Deep Nets Really
    Need to be Deep?", 2014).

    Args:
        reduction: "mean" (default) averages the squared error over classes;
            "sum" gives the squared L2 norm ||z_t - z_s||^2 of the seed
            objective CE + lambda * ||z_t - z_s||^2.

    Example:
        >>> float(LogitMSE(reduction="sum")([[1., 2.]], [[0., 0.]]))
        5.0
    """

    def __init__(self, reduction: str = "mean"):
        self.reduction = validation.check_choice(reduction, "reduction", ("mean", "sum"))

    def per_sample(self, teacher_outputs, student_outputs, y_true=None):
        return logit_mse(teacher_outputs, student_outputs, self.reduction)

    def get_config(self):
        return {"reduction": self.reduction}


@_register("dkd")
class DecoupledKD(DistillationLoss):
    """Decoupled knowledge distillation (Zhao et al., "Decoupled Knowledge
    Distillation", CVPR 2022).

    Splits Hinton's KL into a target-class term (TCKD) and a non-target-class
    term (NCKD) weighted separately; both are scaled by T^2. Needs labels:
    call it as ``loss(teacher_outputs, student_outputs, y_true)``; the
    `Distiller` passes them.

    Args:
        alpha: Weight of TCKD (paper default 1.0).
        beta: Weight of NCKD (paper default 8.0).
        temperature: Softening temperature (paper default 4.0), in
            `kdistill.validation.TEMPERATURE_RANGE`.
    """

    needs_labels = True

    def __init__(self, alpha: float = 1.0, beta: float = 8.0, temperature: float = 4.0):
        self.alpha = validation.check_non_negative(alpha, "alpha")
        self.beta = validation.check_non_negative(beta, "beta")
        temperature = validation.check_temperature(temperature)
        self.temperature = scalar_variable(temperature, "temperature")

    def per_sample(self, teacher_outputs, student_outputs, y_true=None):
        return decoupled_kd(
            teacher_outputs,
            student_outputs,
            y_true,
            self.alpha,
            self.beta,
            self.temperature,
        )

    def combine_teachers(self, teacher_logits, weights):
        return average_distribution_logits(teacher_logits, weights, self.temperature)

    def get_config(self):
        return {
            "alpha": self.alpha,
            "beta": self.beta,
            "temperature": float(self.temperature.numpy()),
        }
