"""One teacher/student pair's losses gathered: the `Explanation` of `explain_outputs`.

`explain_outputs` checks both models' outputs and the labels, then computes
every number of `kdistill.analysis.metrics` into an `Explanation`, which
`kdistill.analysis.plots` draws and `summary()` turns into JSON.

Example:
    >>> from kdistill import analysis
    >>> result = analysis.explain_outputs(teacher_logits, student_logits, y_test)
    >>> result.student_ece, result.classes_lost()
"""

from __future__ import annotations

import dataclasses

import numpy as np

from kdistill.analysis.metrics import (
    ECE_BINS,
    Reliability,
    check_outputs,
    confident_disagreements,
    disagreement_matrix,
    per_class_accuracy,
    per_class_agreement,
    probabilities,
    reliability,
)


@dataclasses.dataclass
class Explanation:
    """What a student lost against its teacher on one labelled set.

    Attributes:
        class_names: One name per class.
        labels: True class ids.
        teacher_probs, student_probs: Class probabilities of each model.
        per_class_teacher_accuracy, per_class_student_accuracy: Accuracy of
            each model on the samples of each true class.
        per_class_agreement: Share of each class's samples on which the
            student predicts the teacher's class.
        class_counts: Samples per true class.
        disagreements: `disagreement_matrix` (teacher's class by student's).
        teacher_reliability, student_reliability: `Reliability` of each.
        disagreement_order: Indices where they disagree, most confident
            teacher first (`confident_disagreements`).
    """

    class_names: list
    labels: np.ndarray
    teacher_probs: np.ndarray
    student_probs: np.ndarray
    per_class_teacher_accuracy: np.ndarray
    per_class_student_accuracy: np.ndarray
    per_class_agreement: np.ndarray
    class_counts: np.ndarray
    disagreements: np.ndarray
    teacher_reliability: Reliability
    student_reliability: Reliability
    disagreement_order: np.ndarray

    @property
    def teacher_accuracy(self) -> float:
        """The teacher's top-1 accuracy."""
        return float(np.mean(self.teacher_probs.argmax(-1) == self.labels))

    @property
    def student_accuracy(self) -> float:
        """The student's top-1 accuracy."""
        return float(np.mean(self.student_probs.argmax(-1) == self.labels))

    @property
    def agreement(self) -> float:
        """The share of samples on which the student predicts the teacher's class."""
        return float(np.mean(self.teacher_probs.argmax(-1) == self.student_probs.argmax(-1)))

    @property
    def teacher_ece(self) -> float:
        """The teacher's expected calibration error."""
        return self.teacher_reliability.ece

    @property
    def student_ece(self) -> float:
        """The student's expected calibration error."""
        return self.student_reliability.ece

    def classes_lost(self, count: int = 3) -> list:
        """The classes whose accuracy dropped most from teacher to student.

        Returns:
            Up to `count` dicts `{"class", "teacher_accuracy",
            "student_accuracy", "drop"}`, largest drop first; only classes
            with a positive drop.
        """
        drop = self.per_class_teacher_accuracy - self.per_class_student_accuracy
        # Largest drop first; classes without samples (NaN) never count as lost.
        order = np.argsort(np.where(np.isnan(drop), np.inf, -drop), kind="stable")
        lost = [i for i in order if drop[i] > 0][:count]
        return [
            {
                "class": self.class_names[i],
                "teacher_accuracy": float(self.per_class_teacher_accuracy[i]),
                "student_accuracy": float(self.per_class_student_accuracy[i]),
                "drop": float(drop[i]),
            }
            for i in lost
        ]

    def summary(self) -> dict:
        """The numbers as plain Python values (for JSON): no per-sample arrays."""

        def listed(values):
            return [None if np.isnan(v) else float(v) for v in values]

        return {
            "samples": int(len(self.labels)),
            "teacher_accuracy": self.teacher_accuracy,
            "student_accuracy": self.student_accuracy,
            "agreement": self.agreement,
            "teacher_ece": self.teacher_ece,
            "student_ece": self.student_ece,
            "ece_bins": int(len(self.student_reliability.counts)),
            "disagreements": int(self.disagreements.sum()),
            "classes_lost": self.classes_lost(),
            "per_class": [
                {
                    "class": name,
                    "samples": int(count),
                    "teacher_accuracy": teacher,
                    "student_accuracy": student,
                    "agreement": agreement,
                }
                for name, count, teacher, student, agreement in zip(
                    self.class_names,
                    self.class_counts,
                    listed(self.per_class_teacher_accuracy),
                    listed(self.per_class_student_accuracy),
                    listed(self.per_class_agreement),
                )
            ],
            "disagreement_matrix": self.disagreements.tolist(),
        }


def explain_outputs(
    teacher_outputs,
    student_outputs,
    labels,
    class_names=None,
    bins: int = ECE_BINS,
    from_logits: bool | None = None,
) -> Explanation:
    """Everything `kdistill explain` reports, from the two models' outputs.

    Args:
        teacher_outputs: The teacher's logits or probabilities, `(n, classes)`.
        student_outputs: The student's, on the same samples, same shape.
        labels: True class ids, shape `(n,)` or `(n, 1)`.
        class_names: One name per class (default "0", "1", ...).
        bins: Equal-width bins of the calibration error.
        from_logits: See `probabilities` (None: decided per model).

    Returns:
        An `Explanation`.

    Raises:
        ValueError: The outputs differ in shape (the class counts differ),
            are not finite, or the labels do not match them.

    Example:
        >>> result = explain_outputs(teacher_logits, student_logits, y_test)
        >>> result.summary()["classes_lost"]
    """
    from kdistill import data_contract, label_checks  # loads TensorFlow: only when called

    teacher = check_outputs(teacher_outputs, "teacher_outputs")
    student = check_outputs(student_outputs, "student_outputs")
    if teacher.shape[-1] != student.shape[-1]:
        raise ValueError(
            f"The teacher gives {teacher.shape[-1]} class scores per sample and the student "
            f"{student.shape[-1]}: they must classify the same classes. Pass a student "
            "trained for the teacher's classes."
        )
    if len(teacher) != len(student):
        raise ValueError(
            f"Invalid value for argument `student_outputs`: {len(student)} samples, but "
            f"`teacher_outputs` has {len(teacher)}. Pass both models' outputs on the same inputs."
        )
    for array, name in ((teacher, "teacher_outputs"), (student, "student_outputs")):
        data_contract.check_finite(array, name)
    classes = teacher.shape[-1]
    labels = label_checks.check_class_labels(labels, classes, "labels").reshape(-1)
    if len(labels) != len(teacher):
        raise ValueError(
            f"Invalid value for argument `labels`: {len(labels)} labels for {len(teacher)} "
            "samples. Pass one class id per sample."
        )
    labels = labels.astype(np.int64)
    names = check_class_names(class_names, classes)
    teacher_probs = probabilities(teacher, from_logits)
    student_probs = probabilities(student, from_logits)
    teacher_pred, student_pred = teacher_probs.argmax(-1), student_probs.argmax(-1)
    return Explanation(
        class_names=names,
        labels=labels,
        teacher_probs=teacher_probs,
        student_probs=student_probs,
        per_class_teacher_accuracy=per_class_accuracy(teacher_pred, labels, classes),
        per_class_student_accuracy=per_class_accuracy(student_pred, labels, classes),
        per_class_agreement=per_class_agreement(teacher_pred, student_pred, labels, classes),
        class_counts=np.bincount(labels, minlength=classes),
        disagreements=disagreement_matrix(teacher_pred, student_pred, classes),
        teacher_reliability=reliability(teacher_probs, labels, bins),
        student_reliability=reliability(student_probs, labels, bins),
        disagreement_order=confident_disagreements(teacher_probs, student_pred),
    )


def check_class_names(class_names, classes: int) -> list:
    """One name per class as strings (default "0", "1", ...); raises if the count differs."""
    if class_names is None:
        return [str(i) for i in range(classes)]
    names = [str(n) for n in class_names]
    if len(names) != classes:
        raise ValueError(
            f"Invalid value for argument `class_names`: {len(names)} names for {classes} "
            "classes. Pass one name per class, in class-id order."
        )
    return names
