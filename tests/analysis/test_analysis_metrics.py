"""kdistill.analysis.metrics: each number against a hand computation."""

import numpy as np
import pytest

from kdistill import analysis

CLASSES = 15


def peaked(top_class, confidence, classes=CLASSES):
    """A probability row whose top class holds `confidence`, the rest shared equally."""
    row = np.full(classes, (1.0 - confidence) / (classes - 1))
    row[top_class] = confidence
    return row


def test_ece_of_15_bins_equals_a_hand_computation_with_edges_closed_on_the_right():
    probs = np.stack(
        [
            np.full(CLASSES, 1 / 15),  # confidence exactly 1/15, argmax 0: right
            peaked(1, 0.1),  # bin (1/15, 2/15]: wrong
            peaked(2, 0.95),  # the last bin (14/15, 1]: right
            peaked(3, 0.95),  # the last bin: wrong (label 4)
            peaked(5, 0.5),  # bin (7/15, 8/15]: right
            np.eye(CLASSES)[6],  # confidence exactly 1: the last bin, right
        ]
    )
    labels = np.array([0, 0, 2, 4, 5, 6])
    bins = analysis.reliability(probs, labels)
    assert bins.edges[1] == 1 / 15
    # 1/15 sits alone in the first bin: with bins closed on the left it would share
    # (1/15, 2/15] with the 0.1 sample, and the ECE would be (0.8333 + 1.4) / 6.
    assert bins.counts.tolist() == [1, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3]
    last_bin_gap = abs(2 / 3 - (0.95 + 0.95 + 1.0) / 3)
    hand = (1 * (1 - 1 / 15) + 1 * 0.1 + 1 * 0.5 + 3 * last_bin_gap) / 6
    assert bins.ece == pytest.approx(hand, abs=1e-12)
    assert analysis.expected_calibration_error(probs, labels) == pytest.approx(0.4055556, abs=1e-6)
    assert bins.accuracy[14] == pytest.approx(2 / 3) and np.isnan(bins.accuracy[3])
    assert bins.confidence[7] == pytest.approx(0.5)


def test_ece_is_zero_when_confidence_matches_accuracy_in_every_bin():
    # Four samples at confidence 0.75, three of them right: calibrated.
    probs = np.array([[0.75, 0.25]] * 4)
    assert analysis.expected_calibration_error(probs, [0, 0, 0, 1]) == pytest.approx(0.0)
    assert analysis.expected_calibration_error(probs, [1, 1, 1, 1]) == pytest.approx(0.75)


def test_bins_must_be_a_positive_integer():
    with pytest.raises(ValueError, match=r"argument `bins`\. Expected an integer >= 1\. .*bins=0"):
        analysis.reliability(np.array([[0.5, 0.5]]), [0], bins=0)


def test_probabilities_softmax_logits_and_keep_probabilities():
    logits = np.array([[0.0, np.log(3.0)], [2.0, 2.0]])
    np.testing.assert_allclose(analysis.probabilities(logits), [[0.25, 0.75], [0.5, 0.5]])
    probs = np.array([[0.2, 0.8], [1.0, 0.0]])
    np.testing.assert_allclose(analysis.probabilities(probs), probs)
    # Rows that sum to 1 are read as logits when told so.
    np.testing.assert_allclose(
        analysis.probabilities(probs, from_logits=True)[0],
        np.exp([0.2, 0.8]) / np.exp([0.2, 0.8]).sum(),
    )


def test_per_class_accuracy_agreement_and_disagreements_by_hand():
    labels = np.array([0, 0, 1, 1, 1, 2])
    teacher = np.array([0, 0, 1, 1, 2, 2])
    student = np.array([0, 1, 1, 2, 2, 0])
    np.testing.assert_allclose(analysis.per_class_accuracy(teacher, labels, 4)[:3], [1, 2 / 3, 1])
    np.testing.assert_allclose(analysis.per_class_accuracy(student, labels, 4)[:3], [0.5, 1 / 3, 0])
    assert np.isnan(analysis.per_class_accuracy(student, labels, 4)[3])  # no samples of class 3
    np.testing.assert_allclose(
        analysis.per_class_agreement(teacher, student, labels, 3), [0.5, 2 / 3, 0.0]
    )
    expected = np.zeros((3, 3), int)
    expected[0, 1] = expected[1, 2] = expected[2, 0] = 1  # samples 1, 3 and 5
    np.testing.assert_array_equal(analysis.disagreement_matrix(teacher, student, 3), expected)


def test_disagreements_come_most_confident_teacher_first():
    teacher = np.array([[0.6, 0.4], [0.99, 0.01], [0.2, 0.8], [0.9, 0.1]])
    student = np.array([1, 1, 1, 1])  # disagrees on samples 0, 1 and 3
    assert analysis.confident_disagreements(teacher, student).tolist() == [1, 3, 0]
    assert analysis.confident_disagreements(teacher, student, 0.8).tolist() == [1, 3]


def test_explain_outputs_collects_everything_and_names_the_classes_lost():
    labels = np.array([0, 0, 1, 1, 2, 2])
    teacher_logits = 5.0 * np.eye(3)[[0, 0, 1, 1, 2, 2]]  # always right
    student_logits = 5.0 * np.eye(3)[[0, 0, 1, 0, 2, 1]]  # loses a 1 and a 2
    result = analysis.explain_outputs(teacher_logits, student_logits, labels, ["a", "b", "c"])
    assert (result.teacher_accuracy, result.student_accuracy) == (1.0, pytest.approx(4 / 6))
    assert result.agreement == pytest.approx(4 / 6)
    np.testing.assert_allclose(result.per_class_agreement, [1.0, 0.5, 0.5])
    assert [c["class"] for c in result.classes_lost()] == ["b", "c"]
    confidence = np.exp(5) / (np.exp(5) + 2)  # every softmax row's top probability
    assert result.teacher_ece == pytest.approx(1 - confidence)
    assert result.student_ece == pytest.approx(abs(4 / 6 - confidence))
    summary = result.summary()
    assert summary["disagreement_matrix"][1][0] == 1 and summary["disagreement_matrix"][2][1] == 1
    assert summary["per_class"][1] == {
        "class": "b",
        "samples": 2,
        "teacher_accuracy": 1.0,
        "student_accuracy": 0.5,
        "agreement": 0.5,
    }


def test_bad_outputs_and_labels_say_what_to_pass():
    with pytest.raises(ValueError, match=r"teacher gives 3 class scores .* student 2"):
        analysis.explain_outputs(np.zeros((4, 3)), np.zeros((4, 2)), [0, 1, 2, 0])
    with pytest.raises(ValueError, match=r"`labels`: labels must lie in \[0, 3\)"):
        analysis.explain_outputs(np.zeros((2, 3)), np.zeros((2, 3)), [0, 5])
    with pytest.raises(ValueError, match=r"`class_names`: 2 names for 3 classes"):
        analysis.explain_outputs(np.zeros((2, 3)), np.zeros((2, 3)), [0, 1], ["a", "b"])
    with pytest.raises(ValueError, match=r"`student_outputs`: expected class scores of shape"):
        analysis.explain_outputs(np.zeros((2, 3)), np.zeros(2), [0, 1])


def test_classes_lost_skip_classes_without_samples_and_gains():
    labels = np.array([0, 0, 2, 2])  # no sample of class 1
    teacher = 3.0 * np.eye(3)[[0, 1, 2, 2]]  # wrong once on class 0
    student = 3.0 * np.eye(3)[[0, 0, 0, 2]]  # right twice on class 0, wrong once on class 2
    result = analysis.explain_outputs(teacher, student, labels)
    assert np.isnan(result.per_class_student_accuracy[1])
    assert result.classes_lost(1) == [
        {"class": "2", "teacher_accuracy": 1.0, "student_accuracy": 0.5, "drop": 0.5}
    ]
    assert result.summary()["per_class"][1]["teacher_accuracy"] is None  # JSON null
