"""Offline distillation: caching teacher outputs and training from them."""

import numpy as np
import pytest
from conftest import frozen_sgd, sparse_ce, tiny_mlp, toy_data, two_head_data, two_head_pair

from kdistill import Distiller, cache_teacher_outputs, models, offline_targets, outputs, training
from kdistill.backend import keras, tf
from kdistill.losses import LogitMSE, PerOutput, SoftTargetKD


def test_offline_training_matches_online_losses_and_keeps_sample_weights():
    x, y = toy_data()
    w = np.linspace(0.5, 1.5, len(x)).astype("float32")
    teacher = tiny_mlp(name="teacher", units=16, softmax=True)
    student = tiny_mlp(name="student", units=4)
    online = Distiller(teacher, student, alpha=0.4)
    online.compile(optimizer=frozen_sgd(), loss=sparse_ce())
    expected = online.evaluate(x, y, sample_weight=w, batch_size=16, verbose=0, return_dict=True)
    cached = cache_teacher_outputs(teacher, x, batch_size=10)
    offline = Distiller(None, student, alpha=0.4)
    offline.compile(optimizer=frozen_sgd(), loss=sparse_ce())
    got = offline.evaluate(
        x, offline_targets(y, cached), sample_weight=w, batch_size=16, verbose=0, return_dict=True
    )
    for key in ("loss", "student_loss", "distillation_loss"):
        assert got[key] == pytest.approx(expected[key], rel=1e-5)
    offline.compile(optimizer="adam", loss=sparse_ce())
    history = offline.fit(
        x, offline_targets(y, cached), sample_weight=w, epochs=3, verbose=0
    ).history
    assert history["loss"][-1] < history["loss"][0]


def test_offline_fit_distilled_validates_against_the_teacher(digits, digits_teacher):
    settings = training.FitSettings(epochs=2, batch_size=64, learning_rate=1e-3, seed=0)
    cached = cache_teacher_outputs(digits_teacher, digits.x_train)
    student = models.student_for(digits.input_shape, 10, 16)
    distiller = training.fit_distilled(
        digits_teacher, student, digits, settings, teacher_outputs=cached
    )
    assert distiller.teacher is None  # trained offline
    history = distiller.history.history
    online = Distiller(digits_teacher, distiller.student, SoftTargetKD(4.0), alpha=0.1)
    online.compile(optimizer=frozen_sgd(), loss=training.hard_label_loss())
    expected = online.evaluate(digits.x_val, digits.y_val, verbose=0, return_dict=True)
    for key in ("loss", "student_loss", "distillation_loss"):
        assert history[f"val_{key}"][-1] == pytest.approx(expected[key], rel=1e-4)


def test_offline_fit_distilled_without_a_teacher_asks_for_one_to_validate(digits):
    settings = training.FitSettings(epochs=1, batch_size=64, seed=0)
    cached = np.zeros((len(digits.x_train), 10), "float32")
    student = models.student_for(digits.input_shape, 10, 16)
    with pytest.raises(ValueError, match="validate=False"):
        training.fit_distilled(None, student, digits, settings, teacher_outputs=cached)


def test_offline_dataset_cache_keeps_batches_and_weights():
    x, y = toy_data()
    ds = tf.data.Dataset.from_tensor_slices((x, y, np.ones(len(x), "float32"))).batch(16)
    teacher = tiny_mlp(name="teacher", units=16)
    cached = cache_teacher_outputs(teacher, ds)
    first = next(iter(cached))
    assert len(first) == 3 and first[0].shape[0] == 16
    np.testing.assert_allclose(
        first[1]["teacher_outputs"], teacher(x[:16]).numpy(), rtol=1e-5, atol=1e-6
    )
    distiller = Distiller(None, tiny_mlp(name="student", units=4))
    distiller.compile(optimizer="adam", loss=sparse_ce())
    history = distiller.fit(cached, epochs=3, verbose=0).history
    assert history["loss"][-1] < history["loss"][0]


def test_offline_distiller_without_cached_outputs_says_what_to_pass():
    x, y = toy_data()
    distiller = Distiller(None, tiny_mlp(name="student"))
    distiller.compile(optimizer="adam", loss=sparse_ce())
    with pytest.raises(ValueError, match="offline_targets"):
        distiller.fit(x, y, epochs=1, verbose=0)


@pytest.mark.slow
def test_dict_outputs_distil_offline_as_online_and_train():
    x, cls, box = two_head_data(64)
    y = {"cls": cls, "box": box}
    teacher, student = two_head_pair(as_dict=True)
    loss = {"cls": SoftTargetKD(2.0), "box": LogitMSE()}
    hard = {"cls": sparse_ce(), "box": "mse"}
    online = Distiller(teacher, student, PerOutput(loss), alpha=0.4)
    online.compile(frozen_sgd(), hard)
    expected = online.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
    cached = cache_teacher_outputs(teacher, x, batch_size=10)
    assert [c.shape for c in cached] == [(64, 2), (64, 3)]  # box, cls: the keys sorted
    offline = Distiller(None, student, PerOutput(loss), alpha=0.4)
    offline.compile(frozen_sgd(), hard)
    got = offline.evaluate(
        x, offline_targets(y, cached), batch_size=16, verbose=0, return_dict=True
    )
    for key in ("loss", "student_loss", "distillation_loss"):
        assert got[key] == pytest.approx(expected[key], rel=1e-5)
    offline.compile("adam", hard)
    history = offline.fit(x, offline_targets(y, cached), epochs=5, verbose=0).history
    assert history["loss"][-1] < history["loss"][0]


def test_dict_heads_mixing_softmax_and_logits_are_each_cached_as_logits():
    # The keys sort the other way round from the layer names, so a lookup by
    # layer name in sorted order would judge each head by the other's layer.
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(8, activation="relu")(inputs)
    logits = keras.layers.Dense(2, name="z_head")(hidden)
    probabilities = keras.layers.Dense(3, activation="softmax", name="a_head")(hidden)
    teacher = keras.Model(inputs, {"alpha": logits, "zeta": probabilities})
    x = np.random.default_rng(0).normal(size=(6, 4)).astype("float32")
    assert outputs.names(teacher) == ["alpha", "zeta"]
    assert outputs.probability_outputs(teacher) == [False, True]
    cached_alpha, cached_zeta = cache_teacher_outputs(teacher, x)
    predicted = teacher(x)
    np.testing.assert_allclose(cached_alpha, predicted["alpha"], rtol=1e-6)
    np.testing.assert_allclose(cached_zeta, np.log(predicted["zeta"]), rtol=1e-5)


@pytest.mark.parametrize("batch_size", [0, 2.5])
def test_caching_with_a_batch_size_that_is_not_a_positive_integer_is_refused(batch_size):
    x, _ = toy_data(n=8)
    with pytest.raises(
        ValueError, match=rf"Expected an integer >= 1. Received: batch_size={batch_size}"
    ):
        cache_teacher_outputs(tiny_mlp(name="teacher"), x, batch_size=batch_size)
