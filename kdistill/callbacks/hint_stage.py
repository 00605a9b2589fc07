"""Two-stage FitNets: hint pre-training, then distillation."""

from __future__ import annotations

from kdistill import validation
from kdistill.backend import keras
from kdistill.callbacks._distiller_check import require_distiller


class HintStage(keras.callbacks.Callback):
    """Trains on the hint losses alone for the first `hint_epochs` epochs.

    FitNets (Romero et al. 2015) first pre-trains the student's layers up to
    the guided layer through the adapter on the hint loss, then trains the
    whole student with knowledge distillation. With this callback one `fit`
    does both: during the hint stage `alpha` and the weights of every
    non-feature loss are 0, so only the layers below the guided layer and
    the adapter receive gradients; at epoch `hint_epochs` the original
    values come back.

    Args:
        hint_epochs: Number of epochs of the hint stage.

    Example:
        >>> distiller = Distiller(teacher, student, distillation_loss=[
        ...     SoftTargetKD(4.0), HintLoss("teacher_hidden0", "student_hidden0")])
        >>> distiller.fit(x, y, epochs=30, callbacks=[HintStage(hint_epochs=10)])
    """

    def __init__(self, hint_epochs: int):
        super().__init__()
        self.hint_epochs = validation.check_integer(hint_epochs, "hint_epochs")
        self._saved = None

    def on_train_begin(self, logs=None):
        distiller = require_distiller(self.model, self)
        if not any(loss.uses_features for loss in distiller.distillation_losses):
            raise ValueError(
                "HintStage needs a feature loss (HintLoss or AttentionTransfer) "
                "among the Distiller's distillation losses: the hint stage "
                "trains on those alone."
            )

    def on_epoch_begin(self, epoch, logs=None):
        distiller = self.model
        if epoch < self.hint_epochs and self._saved is None:
            variables = [distiller.alpha] + [
                w
                for w, loss in zip(
                    distiller.distillation_loss_weights, distiller.distillation_losses
                )
                if not loss.uses_features
            ]
            self._saved = [(v, float(v.numpy())) for v in variables]
            for v in variables:
                v.assign(0.0)
        elif epoch >= self.hint_epochs and self._saved is not None:
            self._restore()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["hint_stage"] = float(epoch < self.hint_epochs)

    def on_train_end(self, logs=None):
        if self._saved is not None:
            self._restore()

    def _restore(self):
        for variable, value in self._saved:
            variable.assign(value)
        self._saved = None
