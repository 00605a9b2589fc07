"""Losses for language models (reverse KL, generalised JSD) and the top-k
form of the teacher's distribution, against their closed forms."""

import numpy as np
import pytest

from kdistill import losses
from kdistill.backend import tf
from kdistill.losses import functional, top_k
from kdistill.offline import _top_k


def log_softmax(z):
    z = np.asarray(z, "float64")
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def test_reverse_kl_is_kl_of_the_student_from_the_teacher():
    # Teacher (1/2, 1/2), student (3/4, 1/4):
    #   KL(q || p) = 3/4 log(3/2) + 1/4 log(1/2) = 0.130812
    #   KL(p || q) = 1/2 log(2/3) + 1/2 log(2)   = 0.143841 (forward: SoftTargetKD)
    teacher, student = np.zeros((1, 2)), np.array([[np.log(3.0), 0.0]])
    assert float(losses.ReverseKL()(teacher, student)) == pytest.approx(0.130812, abs=1e-5)
    assert float(losses.SoftTargetKD(1.0)(teacher, student)) == pytest.approx(0.143841, abs=1e-5)


def test_reverse_kl_at_a_temperature_is_t_squared_times_kl_of_softened_logits():
    rng = np.random.default_rng(0)
    t, s = rng.normal(size=(3, 5)) * 3, rng.normal(size=(3, 5))
    lt, ls = log_softmax(t / 2.0), log_softmax(s / 2.0)
    expected = 4.0 * np.sum(np.exp(ls) * (ls - lt), -1)
    np.testing.assert_allclose(losses.ReverseKL(2.0).per_sample(t, s), expected, rtol=1e-5)


@pytest.mark.parametrize("beta", [0.2, 0.5, 0.9])
def test_generalized_jsd_of_disjoint_distributions_is_the_binary_entropy_of_beta(beta):
    # p = (1, 0), q = (0, 1): m = (beta, 1 - beta), KL(p||m) = -log beta,
    # KL(q||m) = -log(1 - beta), so JSD = -beta log beta - (1-beta) log(1-beta).
    entropy = -beta * np.log(beta) - (1 - beta) * np.log(1 - beta)
    value = float(losses.GeneralizedJSD(beta)([[40.0, 0.0]], [[0.0, 40.0]]))
    assert value == pytest.approx(entropy, abs=1e-6)


def test_generalized_jsd_matches_its_definition_and_weighs_the_teacher_by_beta():
    rng = np.random.default_rng(1)
    t, s = rng.normal(size=(2, 4, 6)) * 2, rng.normal(size=(2, 4, 6))
    beta = 0.3
    p, q = np.exp(log_softmax(t)), np.exp(log_softmax(s))
    m = beta * p + (1 - beta) * q
    expected = beta * np.sum(p * np.log(p / m), -1) + (1 - beta) * np.sum(q * np.log(q / m), -1)
    np.testing.assert_allclose(losses.GeneralizedJSD(beta).per_sample(t, s), expected, rtol=1e-5)
    swapped = losses.GeneralizedJSD(1 - beta).per_sample(s, t)  # JSD_b(P, Q) = JSD_1-b(Q, P)
    np.testing.assert_allclose(swapped, expected, rtol=1e-5)


def test_generalized_jsd_refuses_a_beta_of_zero_or_one_naming_the_kl_losses():
    with pytest.raises(
        ValueError, match=r"argument `beta`. Expected a number in \(0, 1\).*SoftTargetKD"
    ):
        losses.GeneralizedJSD(beta=1.0)


def test_new_losses_are_registered_by_name():
    assert isinstance(losses.get("reverse_kl", temperature=2.0), losses.ReverseKL)
    jsd = losses.get("generalized_jsd", beta=0.25)
    assert isinstance(jsd, losses.GeneralizedJSD) and jsd.beta == 0.25


DIVERGENCES = {
    "forward_kl": lambda t, s: functional.soft_target_kd(t, s, 1.0),
    "reverse_kl": lambda t, s: functional.reverse_kl(t, s, 1.0),
    "generalized_jsd": lambda t, s: functional.generalized_jsd(t, s, 0.5, 1.0),
}


@pytest.mark.parametrize("divergence", top_k.TOP_K_DIVERGENCES)
def test_top_k_with_every_class_kept_equals_the_full_loss_and_gradient(divergence):
    rng = np.random.default_rng(2)
    t = tf.constant(rng.normal(size=(2, 3, 7)) * 2, tf.float32)
    s = tf.Variable(rng.normal(size=(2, 3, 7)), dtype=tf.float32)
    cache = _top_k(t.numpy(), 7)
    with tf.GradientTape(persistent=True) as tape:
        full = DIVERGENCES[divergence](t, s)
        top = top_k.top_k_divergence(
            cache["top_k_logits"],
            cache["top_k_indices"],
            cache["tail_logsumexp"],
            s,
            1.0,
            divergence,
        )
    np.testing.assert_allclose(top, full, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(tape.gradient(top, s), tape.gradient(full, s), atol=1e-5)


@pytest.mark.parametrize("divergence", top_k.TOP_K_DIVERGENCES)
def test_top_k_loss_is_at_most_the_full_loss_and_grows_with_k(divergence):
    # Merging the classes outside the top k never increases an f-divergence.
    rng = np.random.default_rng(3)
    t, s = rng.normal(size=(4, 9)) * 2, rng.normal(size=(4, 9))
    full = DIVERGENCES[divergence](t, s).numpy()
    values = []
    for k in range(1, 10):
        cache = _top_k(t.astype("float32"), k)
        values.append(top_k.top_k_divergence(*cache.values(), s, 1.0, divergence).numpy())
    values = np.array(values)
    assert np.all(values <= full + 1e-6)
    assert np.all(np.diff(values, axis=0) >= -1e-6)
    assert np.all(values[0] < full - 1e-3)  # k=1 loses something here


def test_top_k_buckets_hold_the_teachers_kept_probabilities_and_tail_mass():
    logits = np.array([[3.0, 1.0, 0.0, -1.0]], "float32")
    cache = _top_k(logits, 2)
    np.testing.assert_array_equal(cache["top_k_indices"], [[0, 1]])
    # The tail is log(e^0 + e^-1).
    np.testing.assert_allclose(cache["tail_logsumexp"], [np.log(1.0 + np.exp(-1.0))], rtol=1e-6)
    teacher_log_p, student_log_p = top_k.top_k_buckets(*cache.values(), [[0.0, 0.0, 0.0, 0.0]], 1.0)
    p = np.exp(log_softmax(logits[0]))
    np.testing.assert_allclose(np.exp(teacher_log_p[0]), [p[0], p[1], p[2] + p[3]], rtol=1e-5)
    np.testing.assert_allclose(np.exp(student_log_p[0]), [0.25, 0.25, 0.5], rtol=1e-5)
