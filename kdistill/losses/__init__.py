"""Distillation losses: pure functions underneath, small classes on top.

Every function here takes teacher and student tensors and returns one value per
sample (shape ``(batch,)``), so the `Distiller` can weight samples and reduce
over the global batch. Each class wraps one function with its configuration,
is serializable, and is callable as ``loss(teacher_outputs, student_outputs)``
returning the mean over the batch.

| name          | class              | paper                                   |
|---------------|--------------------|-----------------------------------------|
| soft_target   | `SoftTargetKD`     | Hinton, Vinyals & Dean 2015             |
| logit_mse     | `LogitMSE`         | Ba & Caruana 2014                       |
| hint          | `HintLoss`         | Romero et al. 2015 (FitNets)            |
| dkd           | `DecoupledKD`      | Zhao et al. 2022 (CVPR)                 |
| attention     | `AttentionTransfer`| Zagoruyko & Komodakis 2017              |
| reverse_kl    | `ReverseKL`        | Gu et al. 2024 (MiniLLM)                |
| generalized_jsd | `GeneralizedJSD` | Agarwal et al. 2024 (GKD)               |
| per_output    | `PerOutput`        | (one of the above per model output)     |

Modules: `functional` (the pure functions), `base` (`DistillationLoss` and
the registry), `top_k` (losses from a top-k cache), `logits`, `features`,
`language`, `per_output` (the classes).
"""

from kdistill.losses import functional, top_k
from kdistill.losses.base import (
    DistillationLoss,
    get,
    names,
)
from kdistill.losses.features import (
    AttentionTransfer,
    FeatureLoss,
    HintLoss,
)
from kdistill.losses.functional import (
    HINT_DISTANCES,
    attention_map,
    attention_transfer,
    average_distribution_logits,
    average_logits,
    decoupled_kd,
    generalized_jsd,
    hint_cosine,
    hint_mae,
    hint_mse,
    logit_mse,
    reverse_kl,
    soft_target_kd,
)
from kdistill.losses.language import (
    GeneralizedJSD,
    ReverseKL,
)
from kdistill.losses.logits import (
    DecoupledKD,
    LogitMSE,
    SoftTargetKD,
)
from kdistill.losses.per_output import PerOutput
from kdistill.losses.top_k import top_k_divergence

__all__ = [
    "HINT_DISTANCES",
    "AttentionTransfer",
    "DecoupledKD",
    "DistillationLoss",
    "FeatureLoss",
    "GeneralizedJSD",
    "HintLoss",
    "LogitMSE",
    "PerOutput",
    "ReverseKL",
    "SoftTargetKD",
    "attention_map",
    "attention_transfer",
    "average_distribution_logits",
    "average_logits",
    "decoupled_kd",
    "functional",
    "generalized_jsd",
    "get",
    "hint_cosine",
    "hint_mae",
    "hint_mse",
    "logit_mse",
    "names",
    "reverse_kl",
    "soft_target_kd",
    "top_k",
    "top_k_divergence",
]
