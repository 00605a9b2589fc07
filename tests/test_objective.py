"""The per-sample objective (kdistill.objective), checked by hand without `fit`."""

import numpy as np
import pytest

from kdistill import objective
from kdistill.backend import keras, tf


def test_alpha_mix_of_sample_weighted_means_matches_the_hand_computed_value():
    # alpha=0.25, two samples, weights [1, 3]:
    #   hard per sample [2, 4]  -> (2*1 + 4*3) / 2 = 7
    #   distillation    [1, 5]  -> (1*1 + 5*3) / 2 = 8
    #   total = 0.25 * 7 + 0.75 * 8 = 7.75
    weights = objective.sample_weights(tf.constant([[1.0], [3.0]]), 2)
    hard = objective.batch_mean(tf.constant([2.0, 4.0]), weights, tf.constant(2.0))
    distill = objective.batch_mean(tf.constant([1.0, 5.0]), weights, tf.constant(2.0))
    total = objective.mix(0.25, hard, distill)
    assert float(hard) == pytest.approx(7.0)
    assert float(distill) == pytest.approx(8.0)
    assert float(total) == pytest.approx(7.75)


def test_batch_mean_divides_by_samples_not_by_the_sum_of_weights():
    # A zero weight drops a sample's loss without raising the other's share.
    weights = objective.sample_weights(tf.constant([0.0, 1.0]), 2)
    assert float(objective.batch_mean(tf.constant([10.0, 4.0]), weights, 2.0)) == 2.0
    assert float(objective.batch_mean(tf.constant([10.0, 4.0]), None, 2.0)) == 7.0


def test_weighted_sum_weights_each_distillation_term():
    terms = [tf.constant([1.0, 2.0]), tf.constant([10.0, 20.0])]
    np.testing.assert_allclose(objective.weighted_sum([0.5, 2.0], terms), [20.5, 41.0])


def test_mix_adds_regularization_as_it_is():
    # 0.5 * 2 + 0.5 * 4 + (0.25 + 0.5) = 3.75
    total = objective.mix(0.5, 2.0, 4.0, [tf.constant(0.25), tf.constant(0.5)])
    assert float(total) == pytest.approx(3.75)


def test_each_of_two_replicas_takes_half_of_the_mean():
    assert float(objective.replica_share(tf.constant(3.0), 2)) == 1.5
    assert float(objective.replica_share(tf.constant(3.0), 1)) == 3.0


def test_hard_loss_sums_the_outputs_and_skips_those_without_a_loss():
    mse = keras.losses.MeanSquaredError()
    labels = [tf.constant([[1.0, 1.0], [0.0, 0.0]]), None, tf.constant([[2.0], [0.0]])]
    predictions = [tf.constant([[0.0, 1.0], [0.0, 2.0]]), tf.zeros((2, 3)), tf.zeros((2, 1))]
    # Output 1: per-sample MSE [0.5, 2]; output 2 has no loss; output 3: [4, 0].
    hard = objective.hard_loss_per_sample([mse, None, mse], labels, predictions, ["a", "b", "c"])
    np.testing.assert_allclose(hard, [4.5, 2.0])


def test_hard_loss_without_any_compiled_loss_is_none():
    assert objective.hard_loss_per_sample([None], [None], [tf.zeros((2, 3))], ["out"]) is None


def test_hard_loss_without_labels_for_a_trained_output_names_it():
    mse = keras.losses.MeanSquaredError()
    with pytest.raises(ValueError, match="no labels for the output 'box'"):
        objective.hard_loss_per_sample([mse], [None], [tf.zeros((2, 2))], ["box"])
