"""A callback that reports how closely the student follows the teacher."""

from __future__ import annotations

from kdistill.backend import keras
from kdistill.callbacks._distiller_check import require_distiller


class TeacherAgreement(keras.callbacks.Callback):
    """Adds `teacher_agreement` and `teacher_kl` to the training logs.

    `teacher_agreement` is the top-1 match rate between student and teacher,
    `teacher_kl` the mean KL(teacher || student) at temperature 1. Both are
    metrics computed inside the compiled step (no extra forward pass), and
    appear as `val_teacher_agreement` / `val_teacher_kl` when `fit` has
    validation data, so `EarlyStopping` and `ModelCheckpoint` can monitor
    them. They are computed only during the `fit` that has this callback.

    For a student with outputs (batch, positions..., classes) (a language
    model, a token classifier) every position is one prediction, weighted by
    its `sample_weight`: padded positions (weight 0) are left out. From a
    top-k cache the teacher's top-1 class is exact; `teacher_kl` then spreads
    the tail's mass evenly over the classes outside the top k.

    Example:
        >>> distiller.fit(x, y, validation_data=(xv, yv), callbacks=[
        ...     TeacherAgreement(),
        ...     keras.callbacks.EarlyStopping("val_teacher_agreement", mode="max")])
    """

    def on_train_begin(self, logs=None):
        distiller = require_distiller(self.model, self)
        distiller.track_teacher_agreement(True)
        distiller.make_train_function(force=True)
        distiller.make_test_function(force=True)
        # `Distiller.fit` turns tracking off again when this fit ends or raises.
