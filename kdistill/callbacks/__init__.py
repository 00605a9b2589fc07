"""Keras callbacks for distillation: schedules, teacher agreement, stages, export."""

from kdistill.callbacks.export_tflite import ExportTFLite
from kdistill.callbacks.hint_stage import HintStage
from kdistill.callbacks.schedulers import AlphaScheduler, TemperatureScheduler
from kdistill.callbacks.teacher_agreement import TeacherAgreement

__all__ = [
    "AlphaScheduler",
    "ExportTFLite",
    "HintStage",
    "TeacherAgreement",
    "TemperatureScheduler",
]
