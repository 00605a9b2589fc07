"""A callback that exports the student to TFLite when training ends."""

from __future__ import annotations

import numpy as np

from kdistill import validation
from kdistill.backend import keras


class ExportTFLite(keras.callbacks.Callback):
    """Writes the student as a `.tflite` file at the end of training.

    With `monitor`, the weights of the best epoch (by that logged value) are
    exported instead of the last ones; the student keeps its final weights.
    Works on a `Distiller` (exports `distiller.student`) and on a plain
    Keras model.

    Args:
        path: Target `.tflite` path (written atomically).
        quantization: "none", "dynamic", "float16" or "int8".
        representative_data: Typical inputs (an array, a list in the model's
            input order, or a dict keyed by input name); required for "int8".
        monitor: Optional log key, e.g. "val_accuracy" or "val_loss".
        mode: "min", "max" or "auto" (max for accuracy/agreement, else min).
        **convert_kwargs: More `kdistill.export.convert` arguments.

    Attributes:
        info: What `kdistill.export.to_tflite` returned, after training.
        best_epoch: The exported epoch (0-based) when `monitor` is set.

    Example:
        >>> distiller.fit(x, y, validation_data=(xv, yv), callbacks=[
        ...     ExportTFLite("student.tflite", quantization="int8",
        ...                  representative_data=x[:500], monitor="val_accuracy")])
    """

    def __init__(
        self,
        path,
        quantization="none",
        representative_data=None,
        monitor=None,
        mode="auto",
        **convert_kwargs,
    ):
        super().__init__()
        from kdistill import export

        # Fail now, not after hours of training.
        export.check_quantization(quantization, representative_data)
        export.check_output_path(path, "path")
        self.path = path
        self.quantization = quantization
        self.representative_data = representative_data
        self.monitor = monitor
        self.mode = validation.check_choice(mode, "mode", ("auto", "min", "max"))
        self.convert_kwargs = convert_kwargs
        self.info = None
        self.best_epoch = None
        self._best_value = None
        self._best_weights = None

    def on_train_begin(self, logs=None):
        from kdistill import export

        # Data that does not fit the student stops the run before its first
        # epoch, not at its end.
        export.check_representative_data(self._student(), self.representative_data)

    def _student(self):
        return getattr(self.model, "student", self.model)

    def _better(self, value) -> bool:
        if self._best_value is None:
            return True
        maximize = self.mode == "max" or (
            self.mode == "auto" and ("acc" in self.monitor or "agreement" in self.monitor)
        )
        return value > self._best_value if maximize else value < self._best_value

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor is None:
            return
        logs = logs or {}
        if self.monitor not in logs:
            raise ValueError(
                f"ExportTFLite monitors {self.monitor!r}, which is not in the logs "
                f"(available: {', '.join(sorted(logs))}). Pass one of those as `monitor`."
            )
        value = float(np.asarray(logs[self.monitor]))
        if self._better(value):
            self._best_value = value
            self.best_epoch = epoch
            self._best_weights = [np.array(w) for w in self._student().get_weights()]

    def on_train_end(self, logs=None):
        from kdistill import export

        student = self._student()
        final_weights = None
        if self._best_weights is not None:
            final_weights = student.get_weights()
            student.set_weights(self._best_weights)
        try:
            self.info = export.to_tflite(
                student,
                self.path,
                self.quantization,
                self.representative_data,
                **self.convert_kwargs,
            )
        finally:
            if final_weights is not None:
                student.set_weights(final_weights)
