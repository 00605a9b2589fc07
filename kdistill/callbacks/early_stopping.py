"""Early stopping on the validation accuracy of the model being trained (or its student)."""

from __future__ import annotations

import numpy as np

from kdistill import validation
from kdistill.backend import keras


class ValidationAccuracyStopping(keras.callbacks.Callback):
    """Records validation accuracy each epoch and stops once it stops rising.

    Works the same for a plain model and for a `Distiller` (it measures
    `model.student`), whether or not `fit` was given validation data: the
    accuracy is computed here from `x_val`, `y_val`, so offline distillation
    needs no cached teacher outputs for the validation split. When it stops
    early (no gain above `min_delta` for `patience` epochs) it restores the
    weights of the best epoch; a run that reaches its last epoch keeps its
    final weights, as it would without this callback.

    Args:
        x_val: Validation inputs.
        y_val: Validation labels (sparse).
        patience: Epochs without gain before stopping; None only records.
        min_delta: The smallest gain that counts.
        batch_size: Batch size of the validation pass.
        from_logs: Read `val_accuracy` from the epoch's logs instead of
            predicting: for a `fit` given `validation_data=(x_val, y_val)`
            with an "accuracy" metric (no second validation pass).

    Attributes:
        history: Validation accuracy after each epoch.
        best_epoch: The (1-based) epoch of the best accuracy.
        stopped_epoch: The (1-based) epoch training stopped after, or None.

    Example:
        >>> stop = ValidationAccuracyStopping(x_val, y_val, patience=3)
        >>> model.fit(x, y, epochs=30, callbacks=[stop], verbose=0)
        >>> stop.summary()["stopped_early"]
    """

    def __init__(
        self,
        x_val,
        y_val,
        patience: int | None = 3,
        min_delta: float = 0.0,
        batch_size: int = 512,
        from_logs: bool = False,
    ):
        super().__init__()
        if patience is not None:
            validation.check_integer(patience, "patience", minimum=1)
        validation.check_non_negative(min_delta, "min_delta")
        self.x_val, self.y_val = x_val, np.asarray(y_val).reshape(-1)
        self.patience, self.min_delta, self.batch_size = patience, float(min_delta), batch_size
        self.from_logs = from_logs
        self.history: list = []
        self.best_epoch = 0
        self.stopped_epoch = None
        self._best_weights = None

    def _measured(self):
        student = getattr(self.model, "student", None)
        return self.model if student is None else student

    def on_train_begin(self, logs=None):
        self.history, self.best_epoch, self.stopped_epoch = [], 0, None
        self._best_weights = None

    def on_epoch_end(self, epoch, logs=None):
        model = self._measured()
        if self.from_logs:
            if "val_accuracy" not in (logs or {}):
                raise ValueError(
                    "ValidationAccuracyStopping(from_logs=True) found no `val_accuracy` in the "
                    "epoch's logs: pass `validation_data` and an 'accuracy' metric to fit, or "
                    "from_logs=False."
                )
            accuracy = float(logs["val_accuracy"])
        else:
            logits = np.asarray(model.predict(self.x_val, batch_size=self.batch_size, verbose=0))
            accuracy = float(np.mean(np.argmax(logits, axis=-1) == self.y_val))
            if logs is not None:
                logs["val_accuracy"] = accuracy
        self.history.append(accuracy)
        if not self.best_epoch or accuracy > self.history[self.best_epoch - 1] + self.min_delta:
            self.best_epoch = epoch + 1
            if self.patience is not None:
                self._best_weights = model.get_weights()
        elif self.patience is not None and epoch + 1 - self.best_epoch >= self.patience:
            self.stopped_epoch = epoch + 1
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch is not None and self._best_weights is not None:
            self._measured().set_weights(self._best_weights)
        self._best_weights = None

    def summary(self) -> dict:
        """What happened, for results.json.

        Returns:
            A dict: `epochs_run`, `stopped_early`, `best_epoch`,
            `val_accuracy` (of the weights kept) and `val_history`.
        """
        stopped = self.stopped_epoch is not None
        kept = self.history[self.best_epoch - 1] if stopped else self.history[-1]
        return {
            "epochs_run": len(self.history),
            "stopped_early": stopped,
            "best_epoch": self.best_epoch,
            "val_accuracy": round(kept, 5) if self.history else None,
            "val_history": [round(a, 5) for a in self.history],
        }
