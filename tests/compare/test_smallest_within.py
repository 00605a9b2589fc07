"""The 100x question on hand-built records: the smallest file within 1 point, or the closest."""

import pytest

from kdistill.compare import pareto

TEACHER = {"accuracy": 0.9953, "tflite_size_bytes": 1_690_726}  # 16,907 bytes is 1/100


def record(name, size, accuracy, status="ok"):
    return {
        "strategy": name,
        "student": "w16",
        "status": status,
        "tflite_size_bytes": size,
        "accuracy": accuracy,
    }


def test_the_smallest_file_within_one_point_answers_yes():
    records = [
        record("kd+int8", 12_800, 0.9881),  # 132x, 0.72 points below: qualifies
        record("mse+int8", 12_900, 0.9853),  # exactly 1 point below: qualifies, larger
        record("kd+prune80+int8", 12_700, 0.9850),  # smaller, 1.03 points below: not
        record("labels+int8", 16_907, 0.9900),  # exactly 100x: qualifies, larger
        record("kd", 31_000, 0.9950),  # too large
        record("dkd+int8", 9_000, 0.9990, status="dropped"),  # never counts
    ]
    answer = pareto.smallest_within(records, TEACHER, ratio=100, points=1.0)
    assert answer["reached"] is True and answer["record"]["strategy"] == "kd+int8"
    assert answer["max_size_bytes"] == pytest.approx(16_907.26)
    assert answer["min_accuracy"] == pytest.approx(0.9853)
    assert answer["message"].startswith("Yes: kd+int8 (w16) is 100x smaller")
    assert "12.5 KB (132x smaller), accuracy 0.9881." in answer["message"]


def test_exactly_one_point_below_qualifies():
    records = [record("mse+int8", 12_900, 0.9853), record("kd+int8", 13_000, 0.9900)]
    assert pareto.smallest_within(records, TEACHER)["record"]["strategy"] == "mse+int8"


def test_when_none_qualifies_it_names_the_most_accurate_small_enough_and_the_shortfall():
    records = [record("kd+prune80+int8", 12_700, 0.9820), record("kd+int8", 12_800, 0.9840)]
    answer = pareto.smallest_within(records, TEACHER)
    assert answer["reached"] is False and answer["record"] is None
    assert answer["closest"]["strategy"] == "kd+int8"
    assert "(0.13 points short)" in answer["message"]


def test_when_nothing_is_small_enough_it_says_so():
    answer = pareto.smallest_within([record("kd", 31_000, 0.995)], TEACHER)
    assert answer["reached"] is False and answer["closest"] is None
    assert answer["message"].endswith("none is that small.")
