import pytest

from kdistill import schedules


def test_linear_moves_then_holds():
    s = schedules.linear(8.0, 2.0, steps=6)
    assert [s(i) for i in (0, 3, 6, 10)] == [8.0, 5.0, 2.0, 2.0]


def test_cosine_starts_ends_and_passes_the_midpoint():
    s = schedules.cosine(1.0, 0.0, steps=10)
    assert s(0) == pytest.approx(1.0)
    assert s(5) == pytest.approx(0.5)
    assert s(10) == pytest.approx(0.0)
    assert s(20) == pytest.approx(0.0)


def test_piecewise_changes_at_boundaries():
    s = schedules.piecewise([2, 4], [1.0, 0.5, 0.1])
    assert [s(i) for i in range(6)] == [1.0, 1.0, 0.5, 0.5, 0.1, 0.1]


def test_linear_warmup_and_constant():
    assert [schedules.linear_warmup(0.0, 1.0, 4)(i) for i in (0, 2, 4, 9)] == [0.0, 0.5, 1.0, 1.0]
    assert schedules.constant(3.0)(100) == 3.0


def test_piecewise_needs_one_more_value_than_boundaries():
    with pytest.raises(ValueError, match="one more value than boundaries"):
        schedules.piecewise([2, 4], [1.0, 0.5])


def test_steps_must_be_positive():
    with pytest.raises(ValueError, match="argument `steps`. Expected an integer >= 1"):
        schedules.linear(1.0, 0.0, steps=0)
