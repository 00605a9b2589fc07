"""What compression cost: per-class agreement, calibration and the disagreements, in pictures.

Four modules: `metrics` (pure functions over numpy arrays: per-class
accuracy and agreement, the disagreement matrix, expected calibration error
and reliability bins), `explanation` (all of them for one pair, checked),
`plots` (matplotlib pictures of an `Explanation`) and
`report` (runs a teacher and a student, `.keras` or `.tflite`, and writes
pictures, `explain.json` and `explain.md`). Importing this package loads
neither TensorFlow nor matplotlib; running models or drawing does.

Example:
    >>> from kdistill import analysis
    >>> result = analysis.explain_outputs(teacher_logits, student_logits, y_test)
    >>> result.student_ece, result.classes_lost()
    >>> analysis.explain_models("teacher.keras", "student.tflite", x_test, y_test, "explain/")
"""

from kdistill.analysis.explanation import Explanation, explain_outputs
from kdistill.analysis.metrics import (
    ECE_BINS,
    Reliability,
    confident_disagreements,
    disagreement_matrix,
    expected_calibration_error,
    per_class_accuracy,
    per_class_agreement,
    probabilities,
    reliability,
)
from kdistill.analysis.plots import (
    plot_disagreements,
    plot_gallery,
    plot_per_class,
    plot_reliability,
)
from kdistill.analysis.report import explain_models, model_outputs, write_explanation

__all__ = [
    "ECE_BINS",
    "Explanation",
    "Reliability",
    "confident_disagreements",
    "disagreement_matrix",
    "expected_calibration_error",
    "explain_models",
    "explain_outputs",
    "model_outputs",
    "per_class_accuracy",
    "per_class_agreement",
    "plot_disagreements",
    "plot_gallery",
    "plot_per_class",
    "plot_reliability",
    "probabilities",
    "reliability",
    "write_explanation",
]
