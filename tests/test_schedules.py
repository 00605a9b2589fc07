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


def test_each_schedule_describes_itself():
    assert repr(schedules.constant(3)) == "constant(3.0)"
    assert repr(schedules.linear(8, 2, steps=6)) == "linear(8.0, 2.0, steps=6)"
    assert repr(schedules.cosine(1, 0, steps=10)) == "cosine(1.0, 0.0, steps=10)"
    assert repr(schedules.piecewise([2, 4], [1, 0.5, 0.1])) == "piecewise([2, 4], [1.0, 0.5, 0.1])"
    assert repr(schedules.linear_warmup(0, 1, 4)) == "linear_warmup(0, 1, warmup_steps=4)"


def test_cosine_between_two_nonzero_values():
    # end + (start - end) * (1 + cos(pi * t)) / 2: 3 at t=0, 2 at t=1/2, 1 at t=1.
    s = schedules.cosine(3.0, 1.0, steps=10)
    assert [s(i) for i in (0, 5, 10)] == pytest.approx([3.0, 2.0, 1.0])


def test_one_step_is_enough():
    assert [schedules.linear(0.0, 1.0, steps=1)(i) for i in (0, 1, 2)] == [0.0, 1.0, 1.0]


@pytest.mark.parametrize(
    "make,argument",
    [
        (lambda: schedules.constant("3"), "value"),
        (lambda: schedules.linear("8", 2.0, 6), "start"),
        (lambda: schedules.linear(8.0, None, 6), "end"),
        (lambda: schedules.cosine("1", 0.0, 10), "start"),
        (lambda: schedules.cosine(1.0, "0", 10), "end"),
        (lambda: schedules.piecewise([2], [1.0, "0.5"]), "values"),
    ],
)
def test_non_numbers_name_their_argument(make, argument):
    with pytest.raises(TypeError, match=f"argument `{argument}`. Expected a number"):
        make()


@pytest.mark.parametrize("steps", [0, 2.0, True])
def test_steps_must_be_an_integer_of_at_least_one_for_every_schedule(steps):
    for make in (schedules.linear, schedules.cosine):
        with pytest.raises(ValueError) as error:
            make(1.0, 0.0, steps)
        assert str(error.value) == (
            "Invalid value for argument `steps`. Expected an integer >= 1. "
            f"Received: steps={steps!r}"
        )


def test_piecewise_errors_say_what_was_expected_and_received():
    with pytest.raises(ValueError) as error:
        schedules.piecewise([2, 4], [1.0, 0.5])
    assert str(error.value) == (
        "Invalid value for argument `values`: expected one more value than "
        "boundaries (3), received 2."
    )
    with pytest.raises(ValueError) as error:
        schedules.piecewise([4, 2], [1.0, 0.5, 0.1])
    assert str(error.value) == (
        "Invalid value for argument `boundaries`: expected strictly increasing counts. "
        "Received: boundaries=[4, 2]"
    )
