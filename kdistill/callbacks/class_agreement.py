"""A callback that logs per-class teacher agreement and the student's calibration error."""

from __future__ import annotations

import re

import numpy as np

from kdistill import label_checks, validation
from kdistill.analysis import explanation, metrics
from kdistill.backend import keras


class ClassAgreementAndCalibration(keras.callbacks.Callback):
    """Adds per-class teacher agreement and the student's ECE to the epoch logs.

    At the end of each epoch the student (`distiller.student` when fitting a
    `Distiller`, else the model being fitted) predicts `validation_data`;
    the callback adds to the logs, so `CSVLogger`, `TensorBoard`, `History`
    and `EarlyStopping` listed after it see them:

    - `val_agreement_class_<name>`: the share of that class's validation
      samples (by true label) on which the student predicts the teacher's
      class (NaN for a class with no samples);
    - `val_student_ece`: the student's expected calibration error
      (`kdistill.analysis.expected_calibration_error`, `bins` equal-width bins).

    The teacher predicts the validation inputs once, when training begins.
    The values are those of `kdistill.analysis.per_class_agreement` and
    `expected_calibration_error` on the same outputs.

    Args:
        teacher: The teacher: a Keras model, or its outputs on the
            validation inputs (logits or probabilities, `(n, classes)`).
            None takes `distiller.teacher` when fitting a `Distiller`.
        validation_data: `(x, y)`: inputs and integer class ids.
        class_names: One name per class, used in the log keys (default the
            class ids); characters other than letters, digits, `.`, `-`
            become `_`.
        bins: Equal-width confidence bins of the ECE.
        batch_size: Batch size of the predictions.
        prefix: Prefix of the log keys ("val_" marks validation numbers, as
            Keras does).

    Example:
        >>> distiller.fit(x, y, epochs=10, callbacks=[
        ...     ClassAgreementAndCalibration(teacher, (x_val, y_val)),
        ...     keras.callbacks.CSVLogger("log.csv")])
    """

    def __init__(
        self,
        teacher=None,
        validation_data=None,
        class_names=None,
        bins: int = metrics.ECE_BINS,
        batch_size: int = 256,
        prefix: str = "val_",
    ):
        super().__init__()
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ValueError(
                "Invalid value for argument `validation_data`: expected a tuple (x, y) of "
                "inputs and integer class ids. Received: "
                f"{type(validation_data).__name__}."
            )
        self.x, labels = validation_data
        self.labels = label_checks.check_class_labels(labels, None, "validation_data").reshape(-1)
        self.teacher = teacher
        self.class_names = class_names
        self.bins = validation.check_integer(bins, "bins", minimum=1)
        self.batch_size = validation.check_integer(batch_size, "batch_size", minimum=1)
        self.prefix = prefix
        self._teacher_predictions = None
        self._keys = None

    def _student(self):
        return getattr(self.model, "student", self.model)

    def on_train_begin(self, logs=None):
        teacher = self.teacher
        if teacher is None:
            teacher = getattr(self.model, "teacher", None)
            if teacher is None or isinstance(teacher, (list, tuple)):
                raise ValueError(
                    "ClassAgreementAndCalibration needs a teacher: pass `teacher` (a Keras "
                    "model or its outputs on the validation inputs); only a Distiller with "
                    "one teacher provides it."
                )
        if isinstance(teacher, np.ndarray):
            outputs = teacher
        else:
            outputs = np.asarray(teacher.predict(self.x, batch_size=self.batch_size, verbose=0))
        outputs = metrics.check_outputs(outputs, "teacher")
        if len(outputs) != len(self.labels):
            raise ValueError(
                f"Invalid value for argument `teacher`: {len(outputs)} outputs for the "
                f"{len(self.labels)} validation samples. Pass the teacher's outputs on "
                "validation_data's inputs."
            )
        classes = outputs.shape[-1]
        label_checks.check_class_labels(self.labels, classes, "validation_data")
        self._teacher_predictions = outputs.argmax(-1)
        names = explanation.check_class_names(self.class_names, classes)
        self._keys = [
            f"{self.prefix}agreement_class_{re.sub(r'[^0-9A-Za-z.-]', '_', n)}" for n in names
        ]

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        outputs = np.asarray(self._student().predict(self.x, batch_size=self.batch_size, verbose=0))
        if outputs.shape != (len(self.labels), len(self._keys)):
            raise ValueError(
                f"The student gives outputs of shape {outputs.shape} on the validation "
                f"inputs, the teacher {(len(self.labels), len(self._keys))}: they must "
                "classify the same classes."
            )
        probs = metrics.probabilities(outputs)
        agreement = metrics.per_class_agreement(
            self._teacher_predictions, probs.argmax(-1), self.labels, len(self._keys)
        )
        logs.update({key: float(value) for key, value in zip(self._keys, agreement)})
        logs[f"{self.prefix}student_ece"] = metrics.expected_calibration_error(
            probs, self.labels, self.bins
        )
