"""Keras callbacks for distillation: schedules, teacher agreement, stages."""

from kdistill.callbacks.hint_stage import HintStage
from kdistill.callbacks.schedulers import AlphaScheduler, TemperatureScheduler
from kdistill.callbacks.teacher_agreement import TeacherAgreement

__all__ = [
    "AlphaScheduler",
    "HintStage",
    "TeacherAgreement",
    "TemperatureScheduler",
]
