"""The label and sample-weight checks (`kdistill.label_checks`)."""

import numpy as np
import pytest

from kdistill import label_checks


def test_check_class_labels_returns_good_labels_and_names_the_bad_one():
    assert label_checks.check_class_labels([0.0, 2.0, 1.0], 3).tolist() == [0.0, 2.0, 1.0]
    with pytest.raises(ValueError, match=r"lie in \[0, 3\).*range from 0 to 9 \(label 2 is 7\)"):
        label_checks.check_class_labels(np.array([0, 1, 7, 9]), 3, "labels")
    with pytest.raises(
        ValueError,
        match=r"`labels`: class labels must be whole numbers, but "
        r"label 1 is 1.25",
    ):
        label_checks.check_class_labels([1.0, 1.25], None, "labels")
    with pytest.raises(TypeError, match=r"`labels`. Expected numbers. .*first value 'cat'"):
        label_checks.check_class_labels(["cat", "dog"], 3, "labels")


def test_check_class_labels_refuses_one_hot_rows_with_the_fix():
    label_checks.check_class_labels(np.array([[0], [2]]), 3)  # a column of indices is fine
    with pytest.raises(
        ValueError,
        match=r"`y_test`: the labels look one-hot \(shape \(4, 3\)\)"
        r", but class indices are expected. Pass y_test.argmax\(-1\).",
    ):
        label_checks.check_class_labels(np.eye(3)[[0, 1, 2, 0]], 3, "y_test")


def test_check_sample_weight_accepts_zeros_among_positive_weights():
    weights = label_checks.check_sample_weight([0.0, 1.0, 2.5], 3)
    assert weights.tolist() == [0.0, 1.0, 2.5]
    with pytest.raises(ValueError, match="it has 3 rows but `x` has 4 samples"):
        label_checks.check_sample_weight([1.0, 1.0, 1.0], 4)
