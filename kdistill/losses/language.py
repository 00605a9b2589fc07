"""Losses used to distil language models: reverse KL and generalised JSD.

Forward KL, Hinton's soft targets, is `SoftTargetKD`. All three compare the
distributions at every position of outputs (batch, positions..., classes),
and all three train from a top-k cache (`cache_teacher_outputs(...,
top_k=k)`) over k + 1 buckets (`top_k.top_k_buckets`).
"""

from __future__ import annotations

from kdistill import targets, validation
from kdistill.backend import scalar_variable
from kdistill.losses.base import DistillationLoss, _register
from kdistill.losses.functional import (
    average_distribution_logits,
    generalized_jsd,
    reverse_kl,
)
from kdistill.losses.top_k import top_k_divergence


@_register("reverse_kl")
class ReverseKL(DistillationLoss):
    """Reverse KL, T^2 * KL(p_s^T || p_t^T): the student seeks the teacher's modes.

    Gu, Dong, Wei & Huang, "MiniLLM: Knowledge Distillation of Large Language
    Models", ICLR 2024. Forward KL (`SoftTargetKD`) makes a small student
    spread mass over every class the teacher gives some; reverse KL lets it
    concentrate on the teacher's most likely ones. (MiniLLM also samples
    from the student and optimises the sequence-level objective with policy
    gradients; this is the per-token divergence.)

    Args:
        temperature: Softening temperature (the paper uses 1), in
            `kdistill.validation.TEMPERATURE_RANGE`.

    Example:
        >>> float(ReverseKL()([[2., -1., .5]], [[.1, .3, -.2]]))  # ~0.775
    """

    takes_top_k = True

    def __init__(self, temperature: float = 1.0):
        temperature = validation.check_temperature(temperature)
        self.temperature = scalar_variable(temperature, "temperature")

    def per_sample(self, teacher_outputs, student_outputs, y_true=None):
        if targets.is_top_k(teacher_outputs):
            return top_k_divergence(
                *targets.top_k_parts(teacher_outputs),
                student_outputs,
                self.temperature,
                "reverse_kl",
            )
        return reverse_kl(teacher_outputs, student_outputs, self.temperature)

    def combine_teachers(self, teacher_logits, weights):
        return average_distribution_logits(teacher_logits, weights, self.temperature)

    def get_config(self):
        return {"temperature": float(self.temperature.numpy())}


@_register("generalized_jsd")
class GeneralizedJSD(DistillationLoss):
    """Generalised Jensen-Shannon divergence with its beta (GKD).

    Agarwal et al., "On-Policy Distillation of Language Models: Learning
    from Self-Generated Mistakes", ICLR 2024. With p_t the teacher's and p_s
    the student's distribution at temperature T::

        T^2 * (beta * KL(p_t || m) + (1 - beta) * KL(p_s || m)),
        m = beta * p_t + (1 - beta) * p_s

    beta=0.5 is the symmetric JSD; small beta behaves like forward KL, beta
    near 1 like reverse KL (the paper's convention, and TRL's). (GKD also
    trains on sequences the student generates; this is the per-token
    divergence.)

    Args:
        beta: The mixture's weight on the teacher, in (0, 1) (the value
            vanishes at 0 and 1: use `SoftTargetKD` or `ReverseKL` there).
        temperature: Softening temperature (the paper uses 1), in
            `kdistill.validation.TEMPERATURE_RANGE`.

    Example:
        >>> float(GeneralizedJSD(beta=0.5)([[30., 0.]], [[0., 30.]]))  # ~log 2
    """

    takes_top_k = True

    def __init__(self, beta: float = 0.5, temperature: float = 1.0):
        beta = validation.check_number(beta, "beta")
        if not 0.0 < beta < 1.0:
            raise ValueError(
                "Invalid value for argument `beta`. Expected a number in (0, 1) (at 0 "
                "and 1 the divergence is 0 whatever the models: use SoftTargetKD for "
                f"forward KL or ReverseKL for reverse KL). Received: beta={beta}"
            )
        self.beta = beta
        temperature = validation.check_temperature(temperature)
        self.temperature = scalar_variable(temperature, "temperature")

    def per_sample(self, teacher_outputs, student_outputs, y_true=None):
        if targets.is_top_k(teacher_outputs):
            return top_k_divergence(
                *targets.top_k_parts(teacher_outputs),
                student_outputs,
                self.temperature,
                "generalized_jsd",
                self.beta,
            )
        return generalized_jsd(teacher_outputs, student_outputs, self.beta, self.temperature)

    def combine_teachers(self, teacher_logits, weights):
        return average_distribution_logits(teacher_logits, weights, self.temperature)

    def get_config(self):
        return {"beta": self.beta, "temperature": float(self.temperature.numpy())}
