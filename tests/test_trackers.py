import numpy as np
import pytest

from kdistill.backend import tf
from kdistill.trackers import LossMeans, agreement


def test_means_are_weighted_by_each_steps_weight():
    means = LossMeans(["loss", "student_loss"])
    means.update_state([1.0, 10.0], sample_weight=1.0)
    means.update_state([4.0, 40.0], sample_weight=3.0)
    result = {k: float(v) for k, v in means.result().items()}
    assert result == pytest.approx({"loss": 13.0 / 4.0, "student_loss": 130.0 / 4.0})


def test_reset_starts_the_means_over_and_empty_means_are_zero():
    means = LossMeans(["a", "b", "c"])
    means.update_state([1.0, 2.0, 3.0], sample_weight=2.0)
    means.reset_state()
    assert [float(v) for v in means.result().values()] == [0.0, 0.0, 0.0]
    means.update_state([5.0, 6.0, 7.0], sample_weight=1.0)
    assert [float(v) for v in means.result().values()] == [5.0, 6.0, 7.0]


def test_updates_inside_a_compiled_function_accumulate():
    means = LossMeans(["x"])

    @tf.function(jit_compile=True)
    def step(value):
        means.update_state([value], sample_weight=tf.constant(2.0))

    for value in (1.0, 2.0, 6.0):
        step(tf.constant(value))
    assert float(means.result()["x"]) == pytest.approx(3.0)
    np.testing.assert_allclose(means.sums.numpy(), [18.0, 6.0])


@pytest.mark.parametrize("names", [[], ["loss", "loss"]])
def test_names_must_be_distinct_and_present(names):
    with pytest.raises(ValueError, match="`names`"):
        LossMeans(names)


def test_wrong_number_of_values_names_the_fix():
    means = LossMeans(["loss", "kd"])
    with pytest.raises(ValueError, match="one value per name"):
        means.update_state([1.0], sample_weight=1.0)


def test_agreement_is_the_top1_match_rate_and_the_mean_kl():
    teacher = np.array([[2.0, 0.0], [0.0, 1.0]], "float32")
    student = np.array([[1.0, 0.0], [1.0, 0.0]], "float32")
    match, kl = agreement(tf.constant(teacher), tf.constant(student))
    p = np.exp(teacher) / np.exp(teacher).sum(-1, keepdims=True)
    q = np.exp(student) / np.exp(student).sum(-1, keepdims=True)
    assert float(match) == 0.5  # the first sample agrees, the second does not
    assert float(kl) == pytest.approx(np.mean(np.sum(p * np.log(p / q), -1)), rel=1e-5)
