"""The Distiller: training, logs, variables callbacks change, saving, arguments."""

import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import frozen_sgd, make_distiller, sparse_ce, tiny_mlp, toy_data

from kdistill import Distiller, backend, models, training
from kdistill.backend import keras
from kdistill.callbacks import TeacherAgreement
from kdistill.losses import HintLoss, LogitMSE, SoftTargetKD


@pytest.mark.slow
def test_distilled_student_beats_label_only_student_on_few_labels(digits, digits_teacher):
    # Hinton et al.'s setting in small: the student sees 150 labelled digits,
    # the teacher's soft targets carry what the labels do not.
    few = dataclasses.replace(digits, x_train=digits.x_train[:150], y_train=digits.y_train[:150])
    settings = training.FitSettings(epochs=100, batch_size=32, learning_rate=1e-2, seed=1)
    shape = digits.input_shape
    alone = training.fit_supervised(models.student_for(shape, 10, 16), few, settings)
    distiller = training.fit_distilled(
        digits_teacher,
        models.student_for(shape, 10, 16),
        few,
        settings,
        distillation_loss=SoftTargetKD(4.0),
        alpha=0.1,
    )
    teacher_logits = training.predict_logits(digits_teacher, digits.x_test)
    alone_logits = training.predict_logits(alone, digits.x_test)
    distilled_logits = training.predict_logits(distiller.student, digits.x_test)
    assert training.accuracy(teacher_logits, digits.y_test) >= 0.96
    distilled_accuracy = training.accuracy(distilled_logits, digits.y_test)
    assert distilled_accuracy >= 0.94
    assert distilled_accuracy > training.accuracy(alone_logits, digits.y_test)
    assert training.agreement(distilled_logits, teacher_logits) > training.agreement(
        alone_logits, teacher_logits
    )


def test_logs_carry_component_losses_for_training_and_validation():
    x, y = toy_data()
    distiller = make_distiller()
    distiller.compile(optimizer="adam", loss=sparse_ce(), metrics=["accuracy"])
    history = distiller.fit(x, y, epochs=3, validation_data=(x, y), verbose=0).history
    for key in ("loss", "student_loss", "distillation_loss", "accuracy"):
        assert key in history and f"val_{key}" in history
    assert history["loss"][-1] < history["loss"][0]


def test_evaluate_without_a_dict_lists_the_total_loss_first():
    x, y = toy_data()
    distiller = make_distiller()
    distiller.compile(optimizer=frozen_sgd(), loss=sparse_ce(), metrics=["accuracy"])
    as_dict = distiller.evaluate(x, y, verbose=0, return_dict=True)
    as_list = distiller.evaluate(x, y, verbose=0)
    assert len(as_list) == len(as_dict) == 4
    assert as_list[0] == pytest.approx(as_dict["loss"])
    assert sorted(as_list) == pytest.approx(sorted(as_dict.values()))


def test_several_losses_log_one_term_each():
    x, y = toy_data()
    distiller = make_distiller(
        distillation_loss=[SoftTargetKD(2.0), LogitMSE()], distillation_loss_weights=[1.0, 0.5]
    )
    distiller.compile(optimizer=frozen_sgd(), loss=sparse_ce())
    logs = distiller.evaluate(x, y, batch_size=64, verbose=0, return_dict=True)
    assert logs["distillation_loss"] == pytest.approx(
        logs["soft_target_loss"] + 0.5 * logs["logit_mse_loss"], rel=1e-5
    )


class BatchLogKeys(keras.callbacks.Callback):
    """Records the keys of every training step's logs."""

    def __init__(self):
        super().__init__()
        self.keys = set()

    def on_train_batch_end(self, batch, logs=None):
        self.keys.update(logs or {})


def fit_with_agreement(step_logs):
    """Returns (History.history, keys of the per-step logs) of a two-epoch fit."""
    keras.utils.set_random_seed(3)
    x, y = toy_data()
    distiller = make_distiller()
    distiller.compile(frozen_sgd(), sparse_ce(), metrics=["accuracy"], step_logs=step_logs)
    batch_logs = BatchLogKeys()
    history = distiller.fit(
        x,
        y,
        batch_size=32,
        epochs=2,
        validation_data=(x, y),
        callbacks=[batch_logs, TeacherAgreement()],
        verbose=0,
    )
    return history.history, batch_logs.keys


def test_step_logs_loss_leaves_steps_lean_and_epoch_logs_whole():
    all_history, all_keys = fit_with_agreement("all")
    lean_history, lean_keys = fit_with_agreement("loss")
    assert {"student_loss", "distillation_loss", "teacher_agreement"} <= all_keys
    assert lean_keys == {"loss", "accuracy"}
    # Frozen weights: the epoch means of both runs are the same numbers.
    assert set(lean_history) == set(all_history)
    for key in ("student_loss", "distillation_loss", "teacher_agreement", "val_student_loss"):
        assert lean_history[key] == pytest.approx(all_history[key], rel=1e-6)


def test_step_logs_survive_save_and_load(tmp_path):
    x, y = toy_data()
    distiller = make_distiller()
    distiller.compile("adam", sparse_ce(), step_logs="loss")
    distiller.fit(x, y, epochs=1, verbose=0)
    path = str(tmp_path / "lean.keras")
    distiller.save(path)
    assert keras.models.load_model(path).step_logs == "loss"


def test_unknown_step_logs_names_the_choices():
    with pytest.raises(ValueError, match=r"step_logs.*\"all\".*\"loss\""):
        make_distiller().compile("adam", sparse_ce(), step_logs="none")


def test_loss_is_alpha_weighted_and_sample_weighted():
    x, y = toy_data()
    w = np.linspace(0.0, 2.0, len(x)).astype("float32")
    distiller = make_distiller(distillation_loss=SoftTargetKD(3.0), alpha=0.3)
    distiller.compile(optimizer=frozen_sgd(), loss=sparse_ce())
    logs = distiller.evaluate(x, y, sample_weight=w, batch_size=64, verbose=0, return_dict=True)
    t, s = distiller.teacher(x), distiller.student(x)
    hard = keras.losses.sparse_categorical_crossentropy(y, s, from_logits=True).numpy()
    soft = SoftTargetKD(3.0).per_sample(t, s).numpy()
    assert logs["loss"] == pytest.approx(np.mean(w * (0.3 * hard + 0.7 * soft)), rel=1e-5)
    assert logs["student_loss"] == pytest.approx(np.mean(w * hard), rel=1e-5)
    assert logs["distillation_loss"] == pytest.approx(np.mean(w * soft), rel=1e-5)


def test_seed_objective_ce_plus_lambda_squared_logit_distance_is_expressible():
    # CE + lam * ||z_t - z_s||^2 == (1 + lam) * loss with alpha = 1 / (1 + lam).
    lam = 0.25
    x, y = toy_data()
    distiller = make_distiller(distillation_loss=LogitMSE(reduction="sum"), alpha=1.0 / (1.0 + lam))
    distiller.compile(optimizer=frozen_sgd(), loss=sparse_ce())
    logs = distiller.evaluate(x, y, batch_size=64, verbose=0, return_dict=True)
    t, s = distiller.teacher(x).numpy(), distiller.student(x).numpy()
    ce = keras.losses.sparse_categorical_crossentropy(y, s, from_logits=True).numpy()
    seed = np.mean(ce + lam * np.sum((t - s) ** 2, axis=-1))
    assert (1 + lam) * logs["loss"] == pytest.approx(seed, rel=1e-5)


class SubclassedStudent(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden = keras.layers.Dense(8, activation="relu")
        self.out = keras.layers.Dense(3)

    def call(self, inputs):
        return self.out(self.hidden(inputs))


@pytest.mark.parametrize("kind", ["sequential", "subclassed"])
def test_sequential_and_subclassed_models_train(kind):
    x, y = toy_data()
    if kind == "sequential":
        student = keras.Sequential(
            [keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)]
        )
        teacher = keras.Sequential(
            [keras.Input((4,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(3)]
        )
    else:
        student, teacher = SubclassedStudent(), SubclassedStudent()
    distiller = Distiller(teacher=teacher, student=student)
    distiller.compile(optimizer="adam", loss=sparse_ce())
    history = distiller.fit(x, y, epochs=4, verbose=0).history
    assert history["loss"][-1] < history["loss"][0]


def test_sequential_models_never_called_build_on_the_first_batch():
    x, y = toy_data()
    teacher = keras.Sequential([keras.layers.Dense(16, activation="relu"), keras.layers.Dense(3)])
    student = keras.Sequential([keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)])
    distiller = Distiller(teacher=teacher, student=student)
    distiller.compile(optimizer="adam", loss=sparse_ce())
    history = distiller.fit(x, y, epochs=4, verbose=0).history
    assert history["loss"][-1] < history["loss"][0]
    assert student.built and student.count_params() == 4 * 8 + 8 + 8 * 3 + 3


class SetAt(keras.callbacks.Callback):
    def __init__(self, variable, epoch, value):
        super().__init__()
        self.variable, self.epoch, self.value = variable, epoch, value

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            self.variable.assign(self.value)


def test_alpha_assigned_by_a_callback_changes_the_compiled_step():
    x, y = toy_data()
    distiller = make_distiller(alpha=0.1)
    distiller.compile(optimizer=frozen_sgd(), loss=sparse_ce())
    history = distiller.fit(
        x, y, epochs=2, batch_size=16, verbose=0, callbacks=[SetAt(distiller.alpha, 1, 1.0)]
    ).history
    assert history["loss"][0] != pytest.approx(history["student_loss"][0])
    assert history["loss"][1] == pytest.approx(history["student_loss"][1], rel=1e-6)


def test_temperature_assigned_by_a_callback_changes_the_compiled_step():
    x, y = toy_data()
    loss = SoftTargetKD(4.0)
    distiller = make_distiller(distillation_loss=loss)
    distiller.compile(optimizer=frozen_sgd(), loss=sparse_ce())
    history = distiller.fit(
        x, y, epochs=2, batch_size=16, verbose=0, callbacks=[SetAt(loss.temperature, 1, 1.0)]
    ).history
    t, s = distiller.teacher(x), distiller.student(x)
    assert history["distillation_loss"][0] == pytest.approx(
        float(SoftTargetKD(4.0)(t, s)), rel=1e-5
    )
    assert history["distillation_loss"][1] == pytest.approx(
        float(SoftTargetKD(1.0)(t, s)), rel=1e-5
    )


def test_teacher_is_frozen_and_unchanged_by_training():
    x, y = toy_data()
    distiller = make_distiller()
    before = [w.copy() for w in distiller.teacher.get_weights()]
    distiller.compile(optimizer="adam", loss=sparse_ce())
    distiller.fit(x, y, epochs=2, verbose=0)
    assert not distiller.teacher.trainable
    for a, b in zip(before, distiller.teacher.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_each_model_runs_once_per_step_even_with_hints():
    x, y = toy_data(n=32)
    teacher = tiny_mlp(name="teacher", units=6, batch_norm=True)
    student = tiny_mlp(name="student", units=5, batch_norm=True)
    distiller = Distiller(
        teacher, student, distillation_loss=[SoftTargetKD(), HintLoss("teacher_bn", "student_bn")]
    )
    distiller.compile(optimizer=frozen_sgd(), loss=sparse_ce())
    hidden = keras.Model(student.input, student.get_layer("student_hidden").output)
    batch_mean = np.mean(hidden(x).numpy(), axis=0)
    teacher_bn_before = teacher.get_layer("teacher_bn").moving_mean.numpy().copy()
    distiller.fit(x, y, epochs=1, batch_size=32, verbose=0)
    moving = student.get_layer("student_bn").moving_mean.numpy()
    # momentum 0.5 from zero: one update gives 0.5 * mean, two would give 0.75 * mean.
    np.testing.assert_allclose(moving, 0.5 * batch_mean, rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(
        teacher.get_layer("teacher_bn").moving_mean.numpy(), teacher_bn_before
    )


def test_softmax_teacher_is_distilled_from_log_probabilities():
    x, y = toy_data()
    logits_teacher = tiny_mlp(name="teacher", units=16)
    softmax_teacher = tiny_mlp(name="teacher_sm", units=16, softmax=True)
    softmax_teacher.set_weights(logits_teacher.get_weights())
    student = tiny_mlp(name="student", units=4)
    values = []
    for teacher in (logits_teacher, softmax_teacher):
        distiller = Distiller(teacher, student, distillation_loss=SoftTargetKD(3.0))
        distiller.compile(optimizer=frozen_sgd(), loss=sparse_ce())
        values.append(
            distiller.evaluate(x, y, batch_size=64, verbose=0, return_dict=True)[
                "distillation_loss"
            ]
        )
    assert values[1] == pytest.approx(values[0], rel=1e-4)


def test_save_and_load_round_trip_the_whole_configuration(tmp_path):
    x, y = toy_data()
    distiller = make_distiller(
        distillation_loss=[SoftTargetKD(2.5), HintLoss("teacher_hidden", "student_hidden")],
        alpha=0.25,
        distillation_loss_weights=[1.0, 0.3],
    )
    distiller.compile(optimizer="adam", loss=sparse_ce(), metrics=["accuracy"])
    distiller.fit(x, y, epochs=1, verbose=0)
    path = str(tmp_path / "run.keras")
    distiller.save(path)
    restored = keras.models.load_model(path)
    assert isinstance(restored, Distiller)
    assert restored.get_config()["distillation_loss_weights"] == pytest.approx([1.0, 0.3])
    assert float(restored.alpha.numpy()) == pytest.approx(0.25)
    assert float(restored.distillation_losses[0].temperature.numpy()) == pytest.approx(2.5)
    np.testing.assert_allclose(
        restored.predict(x, verbose=0), distiller.predict(x, verbose=0), atol=1e-6
    )
    np.testing.assert_allclose(
        restored.adapters[0].get_weights()[0], distiller.adapters[0].get_weights()[0]
    )
    restored.fit(x, y, epochs=1, verbose=0)  # compiled again from the saved compile config


def test_student_saves_alone_and_loads_without_kdistill(tmp_path):
    x, y = toy_data()
    distiller = make_distiller(
        distillation_loss=[SoftTargetKD(), HintLoss("teacher_hidden", "student_hidden")]
    )
    distiller.compile(optimizer="adam", loss=sparse_ce())
    distiller.fit(x, y, epochs=1, verbose=0)
    path = str(tmp_path / "student.keras")
    distiller.student.save(path)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "expected.npy", distiller.student.predict(x, verbose=0))
    package = "tf_keras" if backend.LEGACY_KERAS else "keras"
    code = (
        f"import sys, numpy as np, {package} as k\n"
        f"m = k.models.load_model({path!r})\n"
        f"np.testing.assert_allclose(m.predict(np.load({str(tmp_path / 'x.npy')!r}), verbose=0),"
        f" np.load({str(tmp_path / 'expected.npy')!r}), atol=1e-6)\n"
        "assert not any(n.startswith('kdistill') for n in sys.modules)\n"
        "assert not any('adapter' in l.name for l in m.layers)\n"
        "print('ok')\n"
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("ok")


@pytest.mark.parametrize("alpha", [-0.1, 1.5])
def test_alpha_outside_unit_interval_is_rejected(alpha):
    with pytest.raises(ValueError, match=r"argument `alpha`. Expected a number in \[0, 1\]"):
        make_distiller(alpha=alpha)


def test_compile_without_hard_loss_explains_alpha():
    distiller = make_distiller(alpha=0.5)
    with pytest.raises(ValueError, match="argument `loss`.*alpha=0.5"):
        distiller.compile(optimizer="adam")


def test_non_model_student_is_rejected():
    with pytest.raises(TypeError, match="argument `student`"):
        Distiller(tiny_mlp(), "student.keras")


def test_dkd_receives_the_labels_from_the_distiller():
    from kdistill.losses import DecoupledKD

    x, y = toy_data()
    distiller = make_distiller(distillation_loss=DecoupledKD(1.0, 8.0, 4.0))
    distiller.compile(optimizer=frozen_sgd(), loss=sparse_ce())
    logs = distiller.evaluate(x, y, batch_size=64, verbose=0, return_dict=True)
    expected = float(DecoupledKD(1.0, 8.0, 4.0)(distiller.teacher(x), distiller.student(x), y))
    assert logs["distillation_loss"] == pytest.approx(expected, rel=1e-5)


def _regressor(name, units):
    x_in = keras.Input((4,))
    hidden = keras.layers.Dense(units, activation="relu")(x_in)
    return keras.Model(x_in, keras.layers.Dense(1)(hidden), name=name)


def test_soft_targets_on_a_regression_output_are_refused_naming_logit_mse():
    with pytest.raises(ValueError, match=r"one unit \(a regression output\).*LogitMSE\(\)"):
        Distiller(_regressor("teacher", 16), _regressor("student", 4))


def test_soft_targets_on_a_subclassed_regressor_are_refused_at_the_first_step():
    class Regressor(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.out = keras.layers.Dense(1)

        def call(self, inputs):
            return self.out(inputs)

    x, _ = toy_data()
    distiller = Distiller(Regressor(), Regressor(), alpha=0.0)
    distiller.compile(optimizer="adam")
    with pytest.raises(ValueError, match=r"LogitMSE\(\). Received: distillation_loss=SoftTargetKD"):
        distiller.fit(x, x[:, :1], epochs=1, verbose=0)


def test_regression_student_learns_its_teacher_with_logit_mse():
    x, _ = toy_data()
    distiller = Distiller(
        _regressor("teacher", 16), _regressor("student", 4), LogitMSE(), alpha=0.0
    )
    distiller.compile(optimizer=keras.optimizers.Adam(0.01))
    history = distiller.fit(x, x[:, :1], epochs=10, verbose=0).history
    assert history["distillation_loss"][-1] < 0.5 * history["distillation_loss"][0]


@pytest.mark.parametrize("as_dataset", [False, True], ids=["arrays", "dataset"])
def test_class_weight_with_offline_targets_weighs_the_labels_samples(as_dataset):
    from kdistill import offline_targets

    x, y = toy_data(n=32)
    teacher = tiny_mlp(name="teacher", units=16)
    packed = offline_targets(y, teacher.predict(x, verbose=0))
    class_weight = {0: 0.0, 1: 2.0, 2: 1.0}
    per_sample = np.array([class_weight[int(c)] for c in y], "float32")

    def first_loss(**kwargs):
        keras.utils.set_random_seed(0)
        distiller = Distiller(None, tiny_mlp(name="student", units=4), alpha=0.5)
        distiller.compile(optimizer=frozen_sgd(), loss=sparse_ce())
        data = {"x": x, "y": packed}
        if as_dataset and "sample_weight" not in kwargs:
            data = {"x": keras_dataset(x, packed)}
        return distiller.fit(
            **data,
            batch_size=None if as_dataset else 8,
            epochs=1,
            verbose=0,
            shuffle=False,
            **kwargs,
        ).history["loss"][0]

    weighted = first_loss(class_weight=class_weight)
    assert weighted == pytest.approx(first_loss(sample_weight=per_sample), rel=1e-5)
    assert weighted != pytest.approx(first_loss(), rel=1e-3)


def keras_dataset(x, packed):
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices((x, packed)).batch(8)


@backend.register_serializable
class RegisteredSubclassedMLP(keras.Model):
    """A subclassed model that saves: it builds on its first batch."""

    def __init__(self, units=8, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.hidden = keras.layers.Dense(units, activation="relu")
        self.out = keras.layers.Dense(3)

    def call(self, inputs):
        return self.out(self.hidden(inputs))

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def test_subclassed_pair_reloads_with_its_optimizer_state_and_a_frozen_teacher(tmp_path):
    import warnings

    x, y = toy_data()
    distiller = Distiller(RegisteredSubclassedMLP(16), RegisteredSubclassedMLP(4))
    distiller.compile(optimizer="adam", loss=sparse_ce())
    distiller.fit(x, y, batch_size=32, epochs=3, verbose=0)
    path = str(tmp_path / "subclassed.keras")
    distiller.save(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        restored = keras.models.load_model(path)
    assert not [w for w in caught if "Skipping variable loading" in str(w.message)]
    assert int(restored.optimizer.iterations.numpy()) == 6  # 3 epochs of 2 batches
    assert len(restored.trainable_variables) == len(distiller.student.trainable_variables) == 4
    np.testing.assert_allclose(
        restored.predict(x, verbose=0), distiller.predict(x, verbose=0), atol=1e-6
    )
