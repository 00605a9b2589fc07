"""Packing and unpacking targets (kdistill.targets)."""

import numpy as np
import pytest

from kdistill import targets


def test_split_takes_packed_targets_apart_and_keeps_the_labels_weights():
    labels, cached = np.arange(4), np.zeros((4, 3))
    weights = {"labels": np.ones(4), "teacher_outputs": np.full(4, 9.0)}
    y, t, w = targets.split(targets.pack(labels, cached), weights)
    assert y is labels
    assert t is cached
    np.testing.assert_array_equal(w, np.ones(4))


def test_split_leaves_plain_labels_as_they_are():
    labels = {"cls": np.arange(4)}
    assert targets.split(labels, None) == (labels, None, None)


def test_pack_refuses_teacher_outputs_from_other_samples():
    with pytest.raises(ValueError, match="it has 3 rows but `labels` has 4"):
        targets.pack(np.arange(4), np.zeros((3, 10)))


def test_pack_checks_each_output_of_a_model_with_several():
    with pytest.raises(ValueError, match="it has 2 rows but `labels` has 4"):
        targets.pack([np.arange(4), np.zeros(4)], [np.zeros((4, 3)), np.zeros((2, 2))])


def test_per_output_lines_a_dict_up_with_the_outputs_and_leaves_gaps_none():
    box = np.zeros((4, 2))
    labels = targets.per_output({"box": box}, ["box", "cls"])
    assert labels[0] is box
    assert labels[1] is None


def test_per_output_takes_a_list_in_output_order_and_none_for_no_labels():
    cls, box = np.arange(4), np.zeros((4, 2))
    assert targets.per_output([cls, box], ["cls", "box"]) == [cls, box]
    assert targets.per_output(None, ["cls", "box"]) == [None, None]


def test_per_output_refuses_one_array_for_several_outputs():
    with pytest.raises(ValueError, match="pass one array of labels per output"):
        targets.per_output(np.arange(4), ["cls", "box"])


def test_per_output_refuses_a_key_that_names_no_output():
    with pytest.raises(ValueError, match="no output named 'size'"):
        targets.per_output({"size": np.arange(4)}, ["cls", "box"])


def test_teacher_outputs_per_output_flattens_only_for_several_outputs():
    one = np.zeros((4, 3))
    assert targets.teacher_outputs_per_output(one, 1) == [one]
    two = {"cls": np.zeros((4, 3)), "box": np.zeros((4, 2))}
    flat = targets.teacher_outputs_per_output(two, 2)
    assert [a.shape for a in flat] == [(4, 2), (4, 3)]  # sorted keys: box, cls


def test_label_for_reads_by_position_or_name_and_none_when_missing():
    cls = np.arange(4)
    assert targets.label_for([cls, None], 0) is cls
    assert targets.label_for({"cls": cls}, "cls") is cls
    assert targets.label_for({"cls": cls}, "box") is None
    assert targets.label_for(None, 0) is None


@pytest.mark.parametrize(
    "labels",
    [np.array([0, 1, 2, 1]), np.array([[0], [1], [2], [1]]), np.eye(3)[[0, 1, 2, 1]]],
    ids=["sparse", "column", "one-hot"],
)
def test_class_weights_weigh_each_sample_by_its_label_and_default_to_one(labels):
    weights = targets.class_weights(labels, {1: 3.0, 0: 0.5})
    np.testing.assert_allclose(weights.numpy(), [0.5, 3.0, 1.0, 3.0])


def test_class_weights_refuse_anything_but_a_dict():
    with pytest.raises(ValueError, match="Expected a dict from class index to weight"):
        targets.class_weights(np.arange(3), [1.0, 2.0])
