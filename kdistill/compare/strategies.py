"""Compression strategies by name, for `kdistill compare` and the CLI.

A strategy name joins up to three stages with "+":

* training (first, required): ``labels`` (student alone), ``kd`` /
  ``kd_t{T}_a{alpha}`` (Hinton soft targets, default T=4, alpha=0.1),
  ``mse`` / ``mse_l{lambda}`` (logit matching; with lambda, the seed
  objective CE + lambda * ||z_t - z_s||^2), ``hint`` (FitNets hint on the
  last hidden layer plus soft targets), ``dkd`` (decoupled KD);
* pruning (optional): ``prune{P}``, P percent of Dense/Conv weights zeroed
  while distilling (e.g. ``prune80``);
* quantization (optional): ``dynamic``, ``float16``, ``int8`` (post-
  training), or ``qat8`` (quantization-aware training, tf_keras only; after
  ``prune{P}`` it fine-tunes the pruned student and keeps its zeros).

Examples: ``labels``, ``kd_t8_a0.1``, ``kd+prune80+int8``, ``mse_l0.1``.
"""

from __future__ import annotations

import dataclasses
import re

from kdistill import backend, losses

TRAINING_RE = re.compile(
    r"^(labels|kd(?:_t(?P<t>[0-9.]+))?(?:_a(?P<a>[0-9.]+))?|mse(?:_l(?P<l>[0-9.]+))?|hint|dkd)$"
)
PRUNE_RE = re.compile(r"^prune(?P<p>[0-9]{1,2})$")
QUANTIZATIONS = ("dynamic", "float16", "int8", "qat8")

DEFAULT_STRATEGIES = (
    "labels",
    "kd_t2_a0.5",
    "kd_t4_a0.1",
    "kd_t8_a0.1",
    "mse_l0.1",
    "hint",
    "kd+prune50",
    "kd+prune80",
    "kd+prune90",
    "kd+dynamic",
    "kd+float16",
    "kd+int8",
    "kd+prune80+int8",
)


@dataclasses.dataclass(frozen=True)
class Strategy:
    """A parsed strategy name.

    Attributes:
        name: The name as given.
        training: "labels", "kd", "mse", "hint" or "dkd".
        temperature: Soft-target temperature (kd, hint, dkd).
        alpha: Hard-label weight.
        mse_lambda: Lambda of the seed objective (mse), or None for plain
            logit MSE with alpha 0.5.
        sparsity: Share of weights pruned, or 0.
        quantization: TFLite mode: "none", "dynamic", "float16", "int8"; QAT
            strategies export "int8" too.
        qat: Whether the student trains quantization-aware.
    """

    name: str
    training: str
    temperature: float = 4.0
    alpha: float = 0.1
    mse_lambda: float | None = None
    sparsity: float = 0.0
    quantization: str = "none"
    qat: bool = False

    @property
    def training_key(self) -> tuple:
        """Strategies with the same key train the same student (PTQ reuses it)."""
        return (
            self.training,
            self.temperature,
            self.alpha,
            self.mse_lambda,
            self.sparsity,
            self.qat,
        )

    def distillation_loss(self, teacher, student):
        """The distillation loss(es) this strategy trains `student` with.

        Args:
            teacher: The teacher model (a hint reads its last hidden layer).
            student: The student model as it is trained (pruning and QAT wrap
                and rename its layers, so the hint layer is looked up here).

        Returns:
            None for "labels" (the student trains alone), else a
            `kdistill.losses.DistillationLoss` or a list of them.

        Example:
            >>> parse("labels").distillation_loss(teacher, student) is None
            True
        """
        if self.training == "labels":
            return None
        if self.training == "kd":
            return losses.SoftTargetKD(self.temperature)
        if self.training == "mse":
            # The seed objective CE + lambda * ||z_t - z_s||^2 sums over logits.
            return losses.LogitMSE(reduction="mean" if self.mse_lambda is None else "sum")
        if self.training == "dkd":
            return losses.DecoupledKD()
        return [  # "hint"
            losses.SoftTargetKD(self.temperature),
            losses.HintLoss(_last_hidden_layer(teacher), _last_hidden_layer(student)),
        ]


def parse(name: str) -> Strategy:
    """Parses a strategy name, with an error that lists the valid forms.

    Example:
        >>> parse("kd_t8_a0.1+prune80+int8").sparsity
        0.8
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(_unknown(name))
    stages = name.strip().split("+")
    match = TRAINING_RE.match(stages[0])
    if not match:
        raise ValueError(_unknown(name))
    training = re.match(r"[a-z]+", stages[0]).group(0)
    fields = {"name": name.strip(), "training": training}
    if training == "kd":
        fields["temperature"] = float(match.group("t") or 4.0)
        fields["alpha"] = float(match.group("a") or 0.1)
    elif training == "mse":
        fields["mse_lambda"] = float(match.group("l")) if match.group("l") else None
        fields["alpha"] = 1.0 / (1.0 + fields["mse_lambda"]) if match.group("l") else 0.5
    elif training == "labels":
        fields["alpha"] = 1.0
    for stage in stages[1:]:
        prune = PRUNE_RE.match(stage)
        if prune and "sparsity" not in fields:
            fields["sparsity"] = int(prune.group("p")) / 100.0
        elif stage in QUANTIZATIONS and "quantization" not in fields:
            fields["quantization"] = "int8" if stage == "qat8" else stage
            fields["qat"] = stage == "qat8"
        else:
            raise ValueError(_unknown(name))
    if not 0.0 <= fields.get("alpha", 0.1) <= 1.0:
        raise ValueError(
            f"Invalid strategy {name!r}: its alpha must lie in [0, 1] (e.g. kd_t4_a0.1)."
        )
    return Strategy(**fields)


def default_names() -> tuple:
    """The default strategy set (with QAT when running on tf_keras)."""
    extra = ("kd+qat8",) if backend.LEGACY_KERAS else ()
    return DEFAULT_STRATEGIES + extra


def _last_hidden_layer(model) -> str:
    # The layer before the logits: the last hidden representation.
    return model.layers[-2].name


def _unknown(name) -> str:
    return (
        f"Unknown strategy {name!r}. A strategy is a training stage, optionally "
        "followed by +prune{P} and/or +dynamic|+float16|+int8|+qat8. Training "
        "stages: labels, kd, kd_t{T}_a{alpha} (e.g. kd_t4_a0.1), mse, "
        "mse_l{lambda}, hint, dkd. Examples: kd+prune80+int8, labels+int8."
    )
