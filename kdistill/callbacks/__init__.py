"""Keras callbacks for distillation: schedules, teacher agreement, stages, export, progress."""

from kdistill.callbacks.class_agreement import ClassAgreementAndCalibration
from kdistill.callbacks.early_stopping import ValidationAccuracyStopping
from kdistill.callbacks.export_tflite import ExportTFLite
from kdistill.callbacks.hint_stage import HintStage
from kdistill.callbacks.non_finite_loss import NonFiniteLossError, StopOnNonFiniteLoss
from kdistill.callbacks.progress import EpochProgress
from kdistill.callbacks.schedulers import AlphaScheduler, TemperatureScheduler
from kdistill.callbacks.teacher_agreement import TeacherAgreement

__all__ = [
    "AlphaScheduler",
    "ClassAgreementAndCalibration",
    "EpochProgress",
    "ExportTFLite",
    "HintStage",
    "NonFiniteLossError",
    "StopOnNonFiniteLoss",
    "TeacherAgreement",
    "TemperatureScheduler",
    "ValidationAccuracyStopping",
]
