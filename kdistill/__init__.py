"""kdistill: knowledge distillation and model compression for Keras."""

from kdistill import backend, losses
from kdistill.distiller import Distiller
from kdistill.offline import cache_teacher_outputs, offline_targets

__version__ = "0.1.0"

__all__ = [
    "Distiller",
    "backend",
    "cache_teacher_outputs",
    "losses",
    "offline_targets",
]
