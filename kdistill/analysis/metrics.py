"""What a compressed student lost, as pure functions over numpy arrays.

Given the teacher's and a student's outputs on the same samples (logits or
probabilities) and the labels: per-class accuracy of both and per-class
agreement, the confusion matrix of their disagreements, expected calibration
error with its reliability bins, and the samples on which the student
disagrees with a confident teacher. `kdistill.analysis.explanation` gathers
them into one `Explanation`.

Nothing here loads TensorFlow or matplotlib.

Example:
    >>> from kdistill import analysis
    >>> probs = analysis.probabilities(student_logits)
    >>> analysis.expected_calibration_error(probs, y_test)
"""

from __future__ import annotations

import dataclasses

import numpy as np

ECE_BINS = 15
"""Equal-width confidence bins of the expected calibration error (Guo et al., 2017)."""


def probabilities(outputs, from_logits: bool | None = None) -> np.ndarray:
    """Class probabilities from a model's outputs (logits or probabilities).

    Args:
        outputs: Array of shape `(n, classes)`.
        from_logits: True for logits (a softmax is applied), False for
            probabilities (returned as they are, renormalised). None decides:
            rows of non-negative values summing to 1 (within 1e-3, what a
            softmax layer or an int8 file's dequantized softmax gives) are
            probabilities, anything else logits.

    Returns:
        A float64 array of shape `(n, classes)` whose rows sum to 1.

    Example:
        >>> probabilities(np.array([[0.0, np.log(3.0)]]))
        array([[0.25, 0.75]])
    """
    outputs = check_outputs(outputs, "outputs")
    if from_logits is None:
        from_logits = not _look_like_probabilities(outputs)
    if not from_logits:
        clipped = np.clip(outputs, 0.0, None)
        totals = clipped.sum(-1, keepdims=True)
        return clipped / np.where(totals > 0, totals, 1.0)
    shifted = outputs - outputs.max(-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(-1, keepdims=True)


def _look_like_probabilities(outputs: np.ndarray) -> bool:
    return bool(
        outputs.size and outputs.min() >= 0.0 and np.allclose(outputs.sum(-1), 1.0, atol=1e-3)
    )


def per_class_accuracy(predictions, labels, num_classes: int) -> np.ndarray:
    """Accuracy on the samples of each true class.

    Args:
        predictions: Predicted class ids, shape `(n,)`.
        labels: True class ids, shape `(n,)`.
        num_classes: The number of classes.

    Returns:
        Shape `(num_classes,)`; NaN for a class with no samples.

    Example:
        >>> per_class_accuracy([0, 1, 1], [0, 1, 0], 3)
        array([0.5, 1. , nan])
    """
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    return _mean_per_class(predictions == labels, labels, num_classes)


def per_class_agreement(teacher_predictions, student_predictions, labels, num_classes: int):
    """How often the student predicts the teacher's class, on the samples of each true class.

    Grouped by the true label, like `per_class_accuracy`, so the three
    numbers of a class describe the same samples.

    Args:
        teacher_predictions: The teacher's class ids, shape `(n,)`.
        student_predictions: The student's class ids, shape `(n,)`.
        labels: True class ids, shape `(n,)`.
        num_classes: The number of classes.

    Returns:
        Shape `(num_classes,)`; NaN for a class with no samples.

    Example:
        >>> per_class_agreement([0, 1, 1], [0, 1, 0], [0, 1, 1], 2)
        array([1. , 0.5])
    """
    same = np.asarray(teacher_predictions) == np.asarray(student_predictions)
    return _mean_per_class(same, np.asarray(labels), num_classes)


def _mean_per_class(hits: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    counts = np.bincount(labels, minlength=num_classes)[:num_classes].astype(np.float64)
    sums = np.bincount(labels, weights=hits.astype(np.float64), minlength=num_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums[:num_classes] / counts, np.nan)


def disagreement_matrix(teacher_predictions, student_predictions, num_classes: int) -> np.ndarray:
    """Counts of samples by (teacher's class, student's class), where they differ.

    Args:
        teacher_predictions: The teacher's class ids, shape `(n,)`.
        student_predictions: The student's class ids, shape `(n,)`.
        num_classes: The number of classes.

    Returns:
        An int64 matrix `m` of shape `(num_classes, num_classes)`: `m[t, s]`
        samples the teacher calls `t` and the student `s`; the diagonal (the
        agreements) is 0.

    Example:
        >>> disagreement_matrix([0, 0, 1], [0, 1, 0], 2)
        array([[0, 1],
               [1, 0]])
    """
    teacher = np.asarray(teacher_predictions, np.int64)
    student = np.asarray(student_predictions, np.int64)
    differ = teacher != student
    matrix = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(matrix, (teacher[differ], student[differ]), 1)
    return matrix


@dataclasses.dataclass
class Reliability:
    """Accuracy against confidence in equal-width bins: the reliability diagram's data.

    Attributes:
        edges: The `bins + 1` bin edges, 0 to 1.
        counts: Samples per bin.
        accuracy: Accuracy of each bin's samples (NaN for an empty bin).
        confidence: Mean top-1 probability of each bin's samples (NaN if empty).
        ece: The expected calibration error.
    """

    edges: np.ndarray
    counts: np.ndarray
    accuracy: np.ndarray
    confidence: np.ndarray
    ece: float


def reliability(probs, labels, bins: int = ECE_BINS) -> Reliability:
    """Bins samples by top-1 confidence; the expected calibration error.

    Bin k holds the confidences in `(k / bins, (k + 1) / bins]` (the first bin
    also holds 0): each bin is closed on the right, as in Guo et al.'s code,
    so a confidence of exactly 1/15 falls in the first of 15 bins and exactly
    1 in the last. Edges are compared in float64.

    ECE = sum over bins of |bin| / n * |accuracy(bin) - mean confidence(bin)|
    (Naeini et al., 2015; Guo et al., *On Calibration of Modern Neural
    Networks*, ICML 2017).

    Args:
        probs: Class probabilities, shape `(n, classes)` (see `probabilities`).
        labels: True class ids, shape `(n,)`.
        bins: The number of equal-width bins.

    Returns:
        A `Reliability`.

    Example:
        >>> reliability(np.array([[0.9, 0.1], [0.6, 0.4]]), np.array([0, 1]), bins=2).ece
        0.25
    """
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise ValueError(
            f"Invalid value for argument `bins`. Expected an integer >= 1. Received: bins={bins!r}"
        )
    probs = np.asarray(probs, np.float64)
    labels = np.asarray(labels).reshape(-1)
    confidence = probs.max(-1)
    correct = (probs.argmax(-1) == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    # side="left" puts a confidence equal to an inner edge in the bin below it.
    index = np.searchsorted(edges[1:-1], confidence, side="left")
    counts = np.bincount(index, minlength=bins)
    sums_correct = np.bincount(index, weights=correct, minlength=bins)
    sums_confidence = np.bincount(index, weights=confidence, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.where(counts > 0, sums_correct / counts, np.nan)
        mean_confidence = np.where(counts > 0, sums_confidence / counts, np.nan)
    gaps = np.abs(sums_correct - sums_confidence)  # = |bin| * |accuracy - confidence|
    ece = float(gaps.sum() / max(len(labels), 1))
    return Reliability(edges, counts, accuracy, mean_confidence, ece)


def expected_calibration_error(probs, labels, bins: int = ECE_BINS) -> float:
    """The expected calibration error with `bins` equal-width bins (see `reliability`).

    Example:
        >>> expected_calibration_error(np.array([[0.9, 0.1], [0.6, 0.4]]), [0, 1], bins=2)
        0.25
    """
    return reliability(probs, labels, bins).ece


def confident_disagreements(teacher_probs, student_predictions, min_confidence: float = 0.0):
    """The samples where the student disagrees with the teacher, most confident teacher first.

    Args:
        teacher_probs: The teacher's class probabilities, shape `(n, classes)`.
        student_predictions: The student's class ids, shape `(n,)`.
        min_confidence: Keep only samples whose teacher's top-1 probability
            is at least this.

    Returns:
        Sample indices (int64), sorted by the teacher's confidence, highest
        first (ties in sample order).

    Example:
        >>> confident_disagreements(np.array([[.6, .4], [.9, .1], [.8, .2]]), [1, 1, 0])
        array([1, 0])
    """
    teacher_probs = np.asarray(teacher_probs, np.float64)
    confidence = teacher_probs.max(-1)
    differ = teacher_probs.argmax(-1) != np.asarray(student_predictions)
    chosen = np.flatnonzero(differ & (confidence >= min_confidence))
    return chosen[np.argsort(-confidence[chosen], kind="stable")]


def check_outputs(values, name: str) -> np.ndarray:
    """`values` as a float64 `(samples, classes)` array; raises naming `name` otherwise."""
    array = np.asarray(values, np.float64)
    if array.ndim != 2 or array.shape[-1] < 2:
        raise ValueError(
            f"Invalid value for argument `{name}`: expected class scores of shape "
            f"(samples, classes) with at least 2 classes. Received shape {array.shape}."
        )
    return array
