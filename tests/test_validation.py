"""The shared argument checks: what each accepts, returns and says."""

import math

import pytest

from kdistill import validation


def message(argument, expected, received):
    return (
        f"Invalid value for argument `{argument}`. Expected {expected}. "
        f"Received: {argument}={received}"
    )


def test_check_number_returns_a_float_and_names_the_argument():
    assert validation.check_number(3, "x") == 3.0
    assert type(validation.check_number(3, "x")) is float
    with pytest.raises(TypeError) as error:
        validation.check_number("3", "x")
    assert str(error.value) == message("x", "a number", "'3'")
    with pytest.raises(TypeError, match="Expected a number. Received: x=True"):
        validation.check_number(True, "x")
    with pytest.raises(ValueError) as error:
        validation.check_number(math.inf, "x")
    assert str(error.value) == message("x", "a finite number", "inf")


def test_check_positive_refuses_zero():
    assert validation.check_positive(4, "temperature") == 4.0
    assert validation.check_positive(1e-9, "temperature") == 1e-9
    with pytest.raises(ValueError) as error:
        validation.check_positive(0, "temperature")
    assert str(error.value) == message("temperature", "a positive number", "0.0")


def test_check_non_negative_accepts_zero():
    assert validation.check_non_negative(0, "weight") == 0.0
    with pytest.raises(ValueError) as error:
        validation.check_non_negative(-1e-9, "weight")
    assert str(error.value) == message("weight", "a number >= 0", "-1e-09")


def test_check_unit_interval_accepts_both_ends():
    assert [validation.check_unit_interval(v, "alpha") for v in (0, 0.5, 1)] == [0.0, 0.5, 1.0]
    for bad in (-0.01, 1.01):
        with pytest.raises(ValueError) as error:
            validation.check_unit_interval(bad, "alpha")
        assert str(error.value) == message("alpha", "a number in [0, 1]", bad)


def test_check_choice_lists_the_valid_ones():
    assert validation.check_choice("b", "mode", ("a", "b")) == "b"
    with pytest.raises(ValueError) as error:
        validation.check_choice("c", "mode", ("a", "b"))
    assert str(error.value) == message("mode", "one of 'a', 'b'", "'c'")


def test_shapes_compare_where_both_are_known():
    assert validation.shapes_compatible((None, 10), (32, 10))
    assert validation.shapes_compatible((4, None), (4, 7))
    assert not validation.shapes_compatible((None, 10), (None, 5))
    assert not validation.shapes_compatible((None, 10), (None, 10, 1))


def test_different_shapes_say_both_and_what_to_do():
    validation.check_same_shape((None, 10), (None, 10), "outputs")
    with pytest.raises(ValueError) as error:
        validation.check_same_shape((None, 10), (None, 5), "outputs")
    assert str(error.value) == (
        "Teacher and student outputs have different shapes: teacher (None, 10) and "
        "student (None, 5). Distillation compares them element by element, so give the "
        "student the same output layer size as the teacher (the same number of classes)."
    )


@pytest.mark.parametrize(
    "check",
    [validation.check_positive, validation.check_non_negative, validation.check_unit_interval],
)
def test_every_check_names_the_argument_of_a_non_number(check):
    with pytest.raises(TypeError) as error:
        check("1", "alpha")
    assert str(error.value) == message("alpha", "a number", "'1'")


def test_check_integer_takes_zero_by_default_and_refuses_below_its_minimum():
    assert validation.check_integer(0, "epochs") == 0
    assert validation.check_integer(3, "epochs", minimum=3) == 3
    with pytest.raises(ValueError) as error:
        validation.check_integer(2, "epochs", minimum=3)
    assert str(error.value) == (
        "Invalid value for argument `epochs`. Expected an integer >= 3. Received: epochs=2"
    )
    with pytest.raises(ValueError, match=r"Expected an integer >= 0\. Received: epochs=True"):
        validation.check_integer(True, "epochs")
