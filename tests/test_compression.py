import dataclasses

import numpy as np
import pytest
from conftest import tiny_mlp, toy_data

from kdistill import Distiller, backend, compression, export, models, tflite, training
from kdistill.backend import keras

legacy_only = pytest.mark.skipif(not backend.LEGACY_KERAS, reason="tfmot needs tf_keras")
keras3_only = pytest.mark.skipif(backend.LEGACY_KERAS, reason="Keras 3 behaviour")


def sparse_ce():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def prune_and_train(model, sparsity=0.8, epochs=12, schedule="polynomial"):
    x, y = toy_data(n=64, inputs=4, classes=3)
    pruned = compression.prune(
        model, sparsity, begin_step=0, end_step=8, frequency=1, schedule=schedule
    )
    distiller = Distiller(tiny_mlp(name="teacher", units=32), pruned)
    distiller.compile(optimizer="adam", loss=sparse_ce())
    distiller.fit(
        x, y, epochs=epochs, batch_size=16, verbose=0, callbacks=compression.callbacks(pruned)
    )
    return compression.strip(distiller.student)


@pytest.mark.parametrize("schedule", ["polynomial", "constant"])
def test_stripped_student_reaches_target_sparsity_per_layer_and_overall(schedule):
    stripped = prune_and_train(tiny_mlp(name="student", units=64), 0.8, schedule=schedule)
    result = compression.sparsity(stripped)
    assert set(result["layers"]) == {"student_hidden", "student_out"}
    for share in result["layers"].values():
        assert share == pytest.approx(0.8, abs=0.01)
    assert result["overall"] == pytest.approx(0.8, abs=0.01)
    assert not any(
        "prune" in type(l).__name__.lower() or "masked" in type(l).__name__.lower()
        for l in stripped.layers
    )


def test_zeros_survive_tflite_export_and_shrink_the_gzipped_file(tmp_path):
    dense = tiny_mlp(name="dense", units=256)
    stripped = prune_and_train(tiny_mlp(name="student", units=256), 0.8)
    pruned_file = export.convert(stripped)
    dense_file = export.convert(dense)
    assert tflite.weight_sparsity(pruned_file)["overall"] == pytest.approx(0.8, abs=0.01)
    ratio = export.gzip_size(pruned_file) / export.gzip_size(dense_file)
    assert ratio < 0.6, f"gzip ratio pruned/dense = {ratio:.2f}"


@keras3_only
def test_keras3_pruning_state_is_saved_with_the_model(tmp_path):
    x, y = toy_data()
    pruned = compression.prune(tiny_mlp(name="student", units=32), 0.5, 0, 4, 1)
    pruned.compile("adam", sparse_ce())
    pruned.fit(x, y, epochs=2, batch_size=16, verbose=0)
    path = str(tmp_path / "pruned.keras")
    pruned.save(path)
    restored = keras.models.load_model(path)
    for old, new in zip(pruned.layers, restored.layers):
        if hasattr(old, "mask"):
            np.testing.assert_array_equal(old.mask.numpy(), new.mask.numpy())
            assert float(new.pruning_step.numpy()) == float(old.pruning_step.numpy()) == 8.0


@pytest.mark.slow
def test_pruning_80_percent_while_distilling_costs_at_most_two_points(digits, digits_teacher):
    settings = training.FitSettings(epochs=30, batch_size=32, learning_rate=1e-2, seed=0)
    shape = digits.input_shape
    dense = training.fit_distilled(
        digits_teacher, models.student_for(shape, 10, 64), digits, settings
    )
    steps = settings.epochs * int(np.ceil(len(digits.x_train) / settings.batch_size))
    pruned = compression.prune(models.student_for(shape, 10, 64), 0.8, 0, steps // 2, 50)
    distiller = training.fit_distilled(
        digits_teacher, pruned, digits, settings, callbacks=compression.callbacks(pruned)
    )
    stripped = compression.strip(distiller.student)
    assert compression.sparsity(stripped)["overall"] == pytest.approx(0.8, abs=0.01)
    dense_accuracy = training.accuracy(
        training.predict_logits(dense.student, digits.x_test), digits.y_test
    )
    pruned_accuracy = training.accuracy(
        training.predict_logits(stripped, digits.x_test), digits.y_test
    )
    assert pruned_accuracy >= dense_accuracy - 0.02


# -- errors ------------------------------------------------------------------------


def test_model_without_prunable_layer_is_rejected():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Activation("relu")], name="plain")
    with pytest.raises(ValueError, match="'plain' has no prunable layer"):
        compression.prune(model, 0.5)


@pytest.mark.parametrize("sparsity", [1.0, -0.1])
def test_sparsity_outside_zero_one_is_rejected(sparsity):
    with pytest.raises(
        ValueError, match=r"argument `target_sparsity`. Expected a share of weights in \[0, 1\)"
    ):
        compression.prune(tiny_mlp(), sparsity)


def test_end_step_before_begin_step_is_rejected():
    with pytest.raises(ValueError, match="argument `end_step`: it must come after begin_step"):
        compression.prune(tiny_mlp(), 0.5, begin_step=100, end_step=50)


def test_model_of_the_other_keras_is_rejected():
    if backend.LEGACY_KERAS:
        import keras as other
    else:
        import tf_keras as other
    model = other.Sequential([other.Input((4,)), other.layers.Dense(3)])
    with pytest.raises(TypeError, match="other Keras.*TF_USE_LEGACY_KERAS"):
        compression.prune(model, 0.5)


@keras3_only
@pytest.mark.parametrize("call", [compression.quantize_aware, lambda m: compression.cluster(m, 8)])
def test_qat_and_clustering_on_keras3_explain_the_switch(call):
    with pytest.raises(
        ValueError, match="works only on tf_keras models. Set TF_USE_LEGACY_KERAS=1"
    ):
        call(tiny_mlp())


# -- tf_keras: tfmot inside the Distiller ------------------------------------------------


@legacy_only
def test_clustered_student_keeps_at_most_n_distinct_weights_per_kernel():
    x, y = toy_data()
    clustered = compression.cluster(tiny_mlp(name="student", units=32), 8)
    distiller = Distiller(tiny_mlp(name="teacher", units=32), clustered)
    distiller.compile(optimizer="adam", loss=sparse_ce())
    history = distiller.fit(x, y, epochs=3, verbose=0).history
    assert history["loss"][-1] < history["loss"][0]
    stripped = compression.strip(distiller.student)
    for layer in stripped.layers:
        if isinstance(layer, keras.layers.Dense):
            assert len(np.unique(layer.get_weights()[0])) <= 8


@legacy_only
@pytest.mark.parametrize("technique", ["qat", "clustering"])
def test_qat_and_clustering_keep_a_pruned_students_zeros_only_when_told_to(technique):
    keras.utils.set_random_seed(0)
    stripped = prune_and_train(tiny_mlp(name="student", units=64), 0.8)
    x, y = toy_data(n=64, inputs=4, classes=3)

    def wrap(model, preserve):
        if technique == "qat":
            return compression.quantize_aware(model, preserve_sparsity=preserve)
        return compression.cluster(model, 8, preserve_sparsity=preserve)

    shares = {}
    for preserve in (False, True):
        copy = keras.models.clone_model(stripped)
        copy.set_weights(stripped.get_weights())
        if preserve:
            wrapped = wrap(copy, True)
        else:
            with pytest.warns(UserWarning, match="80% sparse.*preserve_sparsity=True"):
                wrapped = wrap(copy, False)
        wrapped.compile(keras.optimizers.Adam(1e-2), sparse_ce())
        history = wrapped.fit(x, y, epochs=5, batch_size=16, verbose=0).history
        assert history["loss"][-1] < history["loss"][0]
        if technique == "qat":  # the zeros that reach the int8 file
            flatbuffer = export.convert(wrapped, "int8", representative_data=x)
            shares[preserve] = tflite.weight_sparsity(flatbuffer)["overall"]
        else:
            shares[preserve] = compression.sparsity(compression.strip(wrapped))["overall"]
    assert shares[True] == pytest.approx(0.8, abs=0.01)
    assert shares[False] < 0.5, shares  # the zeros were trained (or clustered) away


@legacy_only
@pytest.mark.slow
def test_qat_distilled_int8_is_as_accurate_as_post_training_int8(digits, digits_teacher):
    ptq, qat = [], []
    for seed in (0, 1, 2):
        settings = training.FitSettings(epochs=20, batch_size=32, learning_rate=1e-2, seed=seed)
        shape = digits.input_shape
        keras.utils.set_random_seed(seed)  # the student's weights, whatever ran before
        float_student = training.fit_distilled(
            digits_teacher, models.student_for(shape, 10, 32), digits, settings
        ).student
        rep = digits.x_train[:300]
        ptq.append(
            tflite.evaluate_tflite(
                export.convert(float_student, "int8", rep),
                digits.x_test,
                digits.y_test,
                latency_samples=0,
            )["accuracy"]
        )
        copy = keras.models.clone_model(float_student)
        copy.set_weights(float_student.get_weights())
        aware = compression.quantize_aware(copy)
        # QAT fine-tunes a trained model: a small step (1/20 of training's) keeps it near
        # the float optimum while the weights adapt to int8.
        fine_tune = dataclasses.replace(settings, epochs=5, learning_rate=5e-4)
        tuned = training.fit_distilled(digits_teacher, aware, digits, fine_tune).student
        qat.append(
            tflite.evaluate_tflite(
                export.convert(tuned, "int8", rep), digits.x_test, digits.y_test, latency_samples=0
            )["accuracy"]
        )
    assert np.mean(qat) >= np.mean(ptq) - 0.005, (qat, ptq)


@pytest.mark.parametrize("schedule", ["polynomial", "constant"])
def test_pruning_zeroes_the_exact_number_of_weights(schedule):
    # 80% of a 4x64 kernel is 204.8 weights, rounded to 205 zeros (51 kept); of a
    # 64x3 kernel 153.6, rounded to 154 (38 kept). One weight more or less would
    # still pass a 1% tolerance.
    stripped = prune_and_train(tiny_mlp(name="student", units=64), 0.8, schedule=schedule)
    zeros = {
        name: int(np.sum(stripped.get_layer(name).get_weights()[0] == 0))
        for name in ("student_hidden", "student_out")
    }
    assert zeros == {"student_hidden": 205, "student_out": 154}
    assert compression.sparsity(stripped)["overall"] == (205 + 154) / (256 + 192)


def test_prune_refuses_a_subclassed_model_with_kdistills_message():
    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.out = keras.layers.Dense(3)

        def call(self, inputs):
            return self.out(inputs)

    with pytest.raises(ValueError, match="subclassed model. Build the student as a Sequential"):
        compression.prune(Subclassed(), 0.5)


def test_prune_of_a_sequential_never_called_prunes_or_says_to_build_it():
    model = keras.Sequential([keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)])
    if backend.LEGACY_KERAS:
        with pytest.raises(ValueError, match="has not been built.*keras.Input"):
            compression.prune(model, 0.5)
        return
    pruned = compression.prune(model, 0.5, begin_step=0, end_step=1, frequency=1)
    x = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")
    pruned.compile("sgd", "mse")
    pruned.fit(x, np.zeros((16, 3)), epochs=2, verbose=0)
    assert compression.sparsity(compression.strip(pruned))["overall"] >= 0.45
