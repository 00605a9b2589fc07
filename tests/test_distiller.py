import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import tiny_mlp, toy_data, two_head_data, two_heads

from kdistill import (
    Distiller,
    backend,
    cache_teacher_outputs,
    losses,
    models,
    offline_targets,
    outputs,
    training,
)
from kdistill.backend import keras, tf
from kdistill.callbacks import TeacherAgreement
from kdistill.losses import HintLoss, LogitMSE, PerOutput, SoftTargetKD


def sparse_ce():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def frozen_sgd():
    # lr=0 keeps the weights fixed, so logged values can be checked by hand.
    return keras.optimizers.SGD(learning_rate=0.0)


def make(teacher=None, student=None, **kwargs):
    teacher = teacher or tiny_mlp(name="teacher", units=16)
    student = student or tiny_mlp(name="student", units=4)
    return Distiller(teacher=teacher, student=student, **kwargs)


# -- learning ---------------------------------------------------------------


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
    distiller = make()
    distiller.compile(optimizer="adam", loss=sparse_ce(), metrics=["accuracy"])
    history = distiller.fit(x, y, epochs=3, validation_data=(x, y), verbose=0).history
    for key in ("loss", "student_loss", "distillation_loss", "accuracy"):
        assert key in history and f"val_{key}" in history
    assert history["loss"][-1] < history["loss"][0]


def test_evaluate_without_a_dict_lists_the_total_loss_first():
    x, y = toy_data()
    distiller = make()
    distiller.compile(optimizer=frozen_sgd(), loss=sparse_ce(), metrics=["accuracy"])
    as_dict = distiller.evaluate(x, y, verbose=0, return_dict=True)
    as_list = distiller.evaluate(x, y, verbose=0)
    assert len(as_list) == len(as_dict) == 4
    assert as_list[0] == pytest.approx(as_dict["loss"])
    assert sorted(as_list) == pytest.approx(sorted(as_dict.values()))


def test_several_losses_log_one_term_each():
    x, y = toy_data()
    distiller = make(
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
    distiller = make()
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
    distiller = make()
    distiller.compile("adam", sparse_ce(), step_logs="loss")
    distiller.fit(x, y, epochs=1, verbose=0)
    path = str(tmp_path / "lean.keras")
    distiller.save(path)
    assert keras.models.load_model(path).step_logs == "loss"


def test_unknown_step_logs_names_the_choices():
    with pytest.raises(ValueError, match=r"step_logs.*\"all\".*\"loss\""):
        make().compile("adam", sparse_ce(), step_logs="none")


# -- the objective -------------------------------------------------------------


def test_loss_is_alpha_weighted_and_sample_weighted():
    x, y = toy_data()
    w = np.linspace(0.0, 2.0, len(x)).astype("float32")
    distiller = make(distillation_loss=SoftTargetKD(3.0), alpha=0.3)
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
    distiller = make(distillation_loss=LogitMSE(reduction="sum"), alpha=1.0 / (1.0 + lam))
    distiller.compile(optimizer=frozen_sgd(), loss=sparse_ce())
    logs = distiller.evaluate(x, y, batch_size=64, verbose=0, return_dict=True)
    t, s = distiller.teacher(x).numpy(), distiller.student(x).numpy()
    ce = keras.losses.sparse_categorical_crossentropy(y, s, from_logits=True).numpy()
    seed = np.mean(ce + lam * np.sum((t - s) ** 2, axis=-1))
    assert (1 + lam) * logs["loss"] == pytest.approx(seed, rel=1e-5)


def test_one_hot_labels_with_categorical_loss():
    x, y = toy_data()
    distiller = make()
    distiller.compile(optimizer="adam", loss=keras.losses.CategoricalCrossentropy(from_logits=True))
    history = distiller.fit(x, np.eye(3)[y], epochs=3, verbose=0).history
    assert history["student_loss"][-1] < history["student_loss"][0]


def test_tf_data_with_sample_weights_trains():
    x, y = toy_data()
    ds = tf.data.Dataset.from_tensor_slices((x, y, np.ones(len(x), "float32"))).batch(16)
    distiller = make()
    distiller.compile(optimizer="adam", loss=sparse_ce())
    history = distiller.fit(ds, epochs=3, verbose=0).history
    assert history["loss"][-1] < history["loss"][0]


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


# -- variables a callback can change -----------------------------------------------


class SetAt(keras.callbacks.Callback):
    def __init__(self, variable, epoch, value):
        super().__init__()
        self.variable, self.epoch, self.value = variable, epoch, value

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            self.variable.assign(self.value)


def test_alpha_assigned_by_a_callback_changes_the_compiled_step():
    x, y = toy_data()
    distiller = make(alpha=0.1)
    distiller.compile(optimizer=frozen_sgd(), loss=sparse_ce())
    history = distiller.fit(
        x, y, epochs=2, batch_size=16, verbose=0, callbacks=[SetAt(distiller.alpha, 1, 1.0)]
    ).history
    assert history["loss"][0] != pytest.approx(history["student_loss"][0])
    assert history["loss"][1] == pytest.approx(history["student_loss"][1], rel=1e-6)


def test_temperature_assigned_by_a_callback_changes_the_compiled_step():
    x, y = toy_data()
    loss = SoftTargetKD(4.0)
    distiller = make(distillation_loss=loss)
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


# -- teacher handling ----------------------------------------------------------


def test_teacher_is_frozen_and_unchanged_by_training():
    x, y = toy_data()
    distiller = make()
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


def test_hint_adapter_trains_but_stays_out_of_the_student():
    x, y = toy_data()
    student = tiny_mlp(name="student", units=4)
    params = student.count_params()
    distiller = make(
        student=student,
        distillation_loss=[SoftTargetKD(), HintLoss("teacher_hidden", "student_hidden")],
    )
    assert len(distiller.adapters) == 1
    trainable = {id(v) for v in distiller.trainable_variables}
    assert all(id(v) in trainable for v in distiller.adapters[0].trainable_variables)
    distiller.compile(optimizer=keras.optimizers.Adam(0.01), loss=sparse_ce())
    history = distiller.fit(x, y, epochs=10, verbose=0).history
    assert history["hint_loss"][-1] < history["hint_loss"][0]
    assert distiller.student.count_params() == params


@pytest.mark.parametrize("distance", ["mae", "cosine"])
def test_hint_distance_other_than_mse_decreases_in_training(distance):
    x, y = toy_data()
    distiller = make(
        student=tiny_mlp(name="student", units=4),
        distillation_loss=HintLoss("teacher_hidden", "student_hidden", distance=distance),
        alpha=0.0,
    )
    distiller.compile(optimizer=keras.optimizers.Adam(0.01), loss=sparse_ce())
    history = distiller.fit(x, y, epochs=10, verbose=0).history["distillation_loss"]
    assert history[-1] < 0.7 * history[0], history


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


# -- offline distillation ---------------------------------------------------------


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


# -- saving ------------------------------------------------------------------------


def test_save_and_load_round_trip_the_whole_configuration(tmp_path):
    x, y = toy_data()
    distiller = make(
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
    distiller = make(
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


# -- bad arguments -------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [-0.1, 1.5])
def test_alpha_outside_unit_interval_is_rejected(alpha):
    with pytest.raises(ValueError, match=r"argument `alpha`. Expected a number in \[0, 1\]"):
        make(alpha=alpha)


def test_output_shapes_that_differ_are_rejected():
    with pytest.raises(ValueError, match=r"teacher \(None, 3\) and student \(None, 5\)"):
        make(student=tiny_mlp(name="student", classes=5))


def test_input_shapes_that_differ_are_rejected():
    with pytest.raises(ValueError, match="inputs of different shapes"):
        make(student=tiny_mlp(name="student", inputs=6))


def test_missing_hint_layer_lists_the_layer_names():
    with pytest.raises(
        ValueError, match="no layer named 'nope'. Its layers are: .*student_hidden, student_out"
    ):
        make(distillation_loss=HintLoss("teacher_hidden", "nope"))


def test_student_that_is_the_teacher_is_rejected():
    model = tiny_mlp()
    with pytest.raises(ValueError, match="same object as `teacher`"):
        Distiller(model, model)


def test_student_sharing_layers_with_teacher_is_rejected():
    teacher = tiny_mlp(name="teacher")
    student = keras.Sequential(
        [keras.Input((4,)), teacher.get_layer("teacher_hidden"), keras.layers.Dense(3)]
    )
    with pytest.raises(ValueError, match="shares layers with `teacher`"):
        Distiller(teacher, student)


def test_compile_without_hard_loss_explains_alpha():
    distiller = make(alpha=0.5)
    with pytest.raises(ValueError, match="argument `loss`.*alpha=0.5"):
        distiller.compile(optimizer="adam")


def test_non_model_student_is_rejected():
    with pytest.raises(TypeError, match="argument `student`"):
        Distiller(tiny_mlp(), "student.keras")


# -- teacher ensembles --------------------------------------------------------------


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_ensemble_distils_the_weighted_average_of_softened_distributions():
    x, y = toy_data()
    t1, t2 = tiny_mlp(name="t1", units=16), tiny_mlp(name="t2", units=16)
    student = tiny_mlp(name="student", units=4)
    distiller = Distiller([t1, t2], student, SoftTargetKD(2.0), teacher_weights=[1.0, 3.0])
    distiller.compile(optimizer=frozen_sgd(), loss=sparse_ce())
    logs = distiller.evaluate(x, y, batch_size=64, verbose=0, return_dict=True)
    z1, z2, zs = t1(x).numpy(), t2(x).numpy(), student(x).numpy()
    target = 0.25 * softmax(z1 / 2.0) + 0.75 * softmax(z2 / 2.0)
    ps = softmax(zs / 2.0)
    expected = np.mean(4.0 * np.sum(target * (np.log(target) - np.log(ps)), axis=-1))
    assert logs["distillation_loss"] == pytest.approx(expected, rel=1e-4)
    cached = cache_teacher_outputs([t1, t2], x)
    assert cached.shape == (len(x), 2, 3)
    offline = Distiller(None, student, SoftTargetKD(2.0), teacher_weights=[1.0, 3.0])
    offline.compile(optimizer=frozen_sgd(), loss=sparse_ce())
    got = offline.evaluate(
        x, offline_targets(y, cached), batch_size=64, verbose=0, return_dict=True
    )
    assert got["distillation_loss"] == pytest.approx(expected, rel=1e-4)


def test_ensemble_with_feature_loss_is_rejected():
    with pytest.raises(ValueError, match="single `teacher` model, not an ensemble"):
        Distiller(
            [tiny_mlp(name="t1"), tiny_mlp(name="t2")],
            tiny_mlp(name="student"),
            HintLoss("t1_hidden", "student_hidden"),
        )


def test_dkd_receives_the_labels_from_the_distiller():
    from kdistill.losses import DecoupledKD

    x, y = toy_data()
    distiller = make(distillation_loss=DecoupledKD(1.0, 8.0, 4.0))
    distiller.compile(optimizer=frozen_sgd(), loss=sparse_ce())
    logs = distiller.evaluate(x, y, batch_size=64, verbose=0, return_dict=True)
    expected = float(DecoupledKD(1.0, 8.0, 4.0)(distiller.teacher(x), distiller.student(x), y))
    assert logs["distillation_loss"] == pytest.approx(expected, rel=1e-5)


def test_attention_transfer_trains_between_conv_maps_of_different_widths():
    from kdistill.losses import AttentionTransfer

    rng = np.random.default_rng(0)
    x = rng.random((32, 8, 8, 1)).astype("float32")
    y = rng.integers(0, 3, 32)
    teacher = models.small_cnn((8, 8, 1), 3, filters=(8, 16), dense_units=16, name="teacher")
    student = models.small_cnn((8, 8, 1), 3, filters=(2, 4), dense_units=8, name="student")
    distiller = Distiller(
        teacher,
        student,
        [
            SoftTargetKD(),
            AttentionTransfer(
                ["teacher_conv0", "teacher_conv1"], ["student_conv0", "student_conv1"]
            ),
        ],
    )
    distiller.compile(optimizer=keras.optimizers.Adam(0.01), loss=sparse_ce())
    history = distiller.fit(x, y, epochs=8, batch_size=8, verbose=0).history
    assert history["attention_loss"][-1] < history["attention_loss"][0]
    assert distiller.adapters == [None, None]


# -- several outputs ------------------------------------------------------------


def two_head_losses():
    return [sparse_ce(), keras.losses.MeanSquaredError()]


def two_head_pair(as_dict=False):
    """An untrained teacher (16 units) and student (8) with "cls" and "box" heads."""
    return (
        two_heads(units=16, name="teacher", as_dict=as_dict),
        two_heads(name="student", as_dict=as_dict),
    )


def test_student_with_two_heads_learns_both_from_its_teacher():
    x, cls, box = two_head_data(512)
    x_test, cls_test, box_test = two_head_data(256, seed=1)
    teacher = two_heads(units=32, name="teacher")
    teacher.compile(keras.optimizers.Adam(0.01), two_head_losses())
    teacher.fit(x, [cls, box], epochs=40, batch_size=64, verbose=0)
    distiller = Distiller(
        teacher,
        two_heads(units=16, name="student"),
        PerOutput([SoftTargetKD(2.0), LogitMSE()]),
        alpha=0.2,
    )
    distiller.compile(keras.optimizers.Adam(0.01), two_head_losses())
    history = distiller.fit(x, [cls, box], epochs=40, batch_size=64, verbose=0).history
    assert history["distillation_loss"][-1] < 0.5 * history["distillation_loss"][0]
    cls_pred, box_pred = distiller.predict(x_test, verbose=0)
    assert np.mean(np.argmax(cls_pred, -1) == cls_test) > 0.85
    assert np.mean((box_pred - box_test) ** 2) < 0.5 * np.mean((box_test - box_test.mean(0)) ** 2)


def test_losses_of_several_outputs_match_the_pure_functions():
    x, cls, box = two_head_data(64)
    teacher, student = two_head_pair()
    distiller = Distiller(teacher, student, PerOutput([SoftTargetKD(2.0), "logit_mse"]), alpha=0.3)
    distiller.compile(frozen_sgd(), [sparse_ce(), None])
    logs = distiller.evaluate(x, [cls, box], batch_size=64, verbose=0, return_dict=True)
    (t_cls, t_box), (s_cls, s_box) = teacher(x), student(x)
    distill = np.mean(losses.soft_target_kd(t_cls, s_cls, 2.0) + losses.logit_mse(t_box, s_box))
    hard = np.mean(keras.losses.sparse_categorical_crossentropy(cls, s_cls, from_logits=True))
    assert logs["distillation_loss"] == pytest.approx(distill, rel=1e-5)
    assert logs["student_loss"] == pytest.approx(hard, rel=1e-5)
    assert logs["loss"] == pytest.approx(0.3 * hard + 0.7 * distill, rel=1e-5)


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


def test_hints_and_per_output_losses_train_together():
    x, cls, box = two_head_data(128)
    distiller = Distiller(
        *two_head_pair(),
        [PerOutput([SoftTargetKD(2.0), None]), HintLoss("teacher_hidden", "student_hidden")],
    )
    distiller.compile("adam", two_head_losses())
    history = distiller.fit(x, [cls, box], epochs=5, verbose=0).history
    assert history["hint_loss"][-1] < history["hint_loss"][0]
    assert history["per_output_loss"][-1] < history["per_output_loss"][0]


def test_two_heads_with_alpha_zero_train_on_the_teacher_alone():
    x, cls, box = two_head_data(128)
    distiller = Distiller(*two_head_pair(), PerOutput([SoftTargetKD(2.0), LogitMSE()]), alpha=0.0)
    distiller.compile("adam", [None, None])
    history = distiller.fit(x, [cls, box], epochs=5, verbose=0).history
    assert history["student_loss"] == [0.0] * 5
    assert history["loss"][-1] < history["loss"][0]


def test_an_output_without_labels_learns_from_the_teacher_alone():
    x, cls, box = two_head_data(256)
    teacher = two_heads(units=32, name="teacher", as_dict=True)
    teacher.compile(keras.optimizers.Adam(0.01), {"cls": sparse_ce(), "box": "mse"})
    teacher.fit(x, {"cls": cls, "box": box}, epochs=30, batch_size=64, verbose=0)
    distiller = Distiller(
        teacher,
        two_heads(units=16, name="student", as_dict=True),
        PerOutput({"cls": SoftTargetKD(2.0), "box": LogitMSE()}),
    )
    distiller.compile(
        keras.optimizers.Adam(0.01), {"cls": sparse_ce()}, metrics={"cls": ["accuracy"]}
    )
    history = distiller.fit(x, {"cls": cls}, epochs=30, batch_size=64, verbose=0).history
    assert history["accuracy"][-1] > 0.8
    box_pred = distiller.predict(x, verbose=0)["box"]  # no box labels: learned from the teacher
    assert np.mean((box_pred - box) ** 2) < 0.5 * np.mean((box - box.mean(0)) ** 2)


def test_a_fit_that_fails_while_tracing_leaves_the_next_fit_working():
    x, cls, box = two_head_data(256)
    distiller = Distiller(*two_head_pair(), PerOutput(["soft_target", "logit_mse"]))
    distiller.compile(keras.optimizers.Adam(0.01), [sparse_ce(), "mse"])
    no_box_labels = tf.data.Dataset.from_tensor_slices((x, {"student_cls": cls})).batch(32)
    with pytest.raises(ValueError, match="no labels for the output 'student_box'"):
        distiller.fit(no_box_labels, verbose=0)
    with pytest.raises(ValueError, match="no labels for the output 'student_box'"):
        distiller.evaluate(no_box_labels, verbose=0)
    all_labels = tf.data.Dataset.from_tensor_slices((x, (cls, box))).batch(32)
    losses = distiller.fit(all_labels, epochs=8, verbose=0).history["loss"]
    assert losses[-1] < 0.7 * losses[0]
    assert np.isfinite(distiller.evaluate(all_labels, verbose=0)[0])


def test_save_and_load_keep_the_per_output_losses(tmp_path):
    x, cls, box = two_head_data(64)
    distiller = Distiller(*two_head_pair(as_dict=True), PerOutput({"cls": SoftTargetKD(3.0)}))
    distiller.compile("adam", {"cls": sparse_ce(), "box": "mse"})
    distiller.fit(x, {"cls": cls, "box": box}, epochs=1, verbose=0)
    path = str(tmp_path / "two_heads.keras")
    distiller.save(path)
    restored = keras.models.load_model(path)
    (loss,) = restored.distillation_losses
    assert isinstance(loss, PerOutput) and float(loss.losses["cls"].temperature.numpy()) == 3.0
    before, after = distiller.predict(x, verbose=0), restored.predict(x, verbose=0)
    np.testing.assert_allclose(after["box"], before["box"], atol=1e-6)
    restored.fit(x, {"cls": cls, "box": box}, epochs=1, verbose=0)


def one_head_teacher(_):
    return Distiller(tiny_mlp(name="teacher"), two_heads(name="student"), PerOutput(["dkd", None]))


def plain_loss(_):
    return Distiller(*two_head_pair(), SoftTargetKD())


def ensemble(_):
    teachers = [two_heads(name="t1"), two_heads(name="t2")]
    return Distiller(teachers, two_heads(name="student"), PerOutput(["soft_target", None]))


def one_compiled_loss(_):
    distiller = Distiller(*two_head_pair(), PerOutput(["soft_target", None]))
    distiller.compile("adam", sparse_ce())


def labels_of_an_unknown_output(_):
    x, cls, box = two_head_data(32)
    distiller = Distiller(*two_head_pair(as_dict=True), PerOutput({"cls": "soft_target"}))
    distiller.compile("adam", {"cls": sparse_ce()})
    distiller.fit(x, {"cls": cls, "boxes": box}, verbose=0)


def one_label_array(_):
    x, cls, _ = two_head_data(32)
    distiller = Distiller(*two_head_pair(), PerOutput(["soft_target", None]))
    distiller.compile("adam", [sparse_ce(), None])
    distiller.fit(x, cls, verbose=0)


class SubclassedTwoHeads(keras.Model):
    def __init__(self):
        super().__init__()
        self.cls, self.box = keras.layers.Dense(3), keras.layers.Dense(2)

    def call(self, x):
        return [self.cls(x), self.box(x)]


def subclassed_two_heads(_):
    x, cls, _ = two_head_data(32)
    distiller = Distiller(tiny_mlp(inputs=4), SubclassedTwoHeads())
    distiller.compile("adam", sparse_ce())
    distiller.fit(x, cls, verbose=0)


def caching_an_ensemble(_):
    cache_teacher_outputs([two_heads(name="t1"), two_heads(name="t2")], two_head_data(8)[0])


class TwoSlices(keras.layers.Layer):
    """One layer returning two outputs: Keras 3 names both after the layer."""

    def call(self, h):
        return [h[:, :3], h[:, 3:]]


def one_layer_two_heads(name, units=8):
    x_in = keras.Input((4,))
    h = keras.layers.Dense(units, activation="relu", name=f"{name}_hidden")(x_in)
    h = keras.layers.Dense(5, name=f"{name}_logits")(h)
    return keras.Model(x_in, TwoSlices(name=f"{name}_heads")(h), name=name)


@pytest.mark.skipif(backend.LEGACY_KERAS, reason="tf_keras names each output of a layer apart")
def test_outputs_sharing_a_name_take_lists_and_refuse_dicts():
    x, cls, box = two_head_data(256)
    distiller = Distiller(
        one_layer_two_heads("teacher", units=16),
        one_layer_two_heads("student"),
        PerOutput(["soft_target", "logit_mse"]),
        alpha=0.5,
    )
    with pytest.raises(ValueError, match="cannot tell apart the outputs named 'student_heads'"):
        distiller.compile("adam", {"student_heads": sparse_ce()})
    distiller.compile(keras.optimizers.Adam(0.01), [sparse_ce(), "mse"])
    dict_labels = {"student_heads": cls}
    with pytest.raises(ValueError, match="`y`: a dict keyed by output name cannot tell"):
        distiller.fit(x, dict_labels, verbose=0)
    with pytest.raises(ValueError, match="`y`: a dict keyed by output name cannot tell"):
        distiller.fit(tf.data.Dataset.from_tensor_slices((x, dict_labels)).batch(32), verbose=0)
    losses = distiller.fit(x, [cls, box], epochs=8, batch_size=32, verbose=0).history["loss"]
    assert losses[-1] < 0.7 * losses[0]


@pytest.mark.parametrize(
    "make_it, message",
    [
        (one_head_teacher, "different numbers of outputs: teacher 1"),
        (plain_loss, r"2 outputs \(student_cls, student_box\), so SoftTargetKD must say"),
        (ensemble, "a teacher ensemble distils models with one output"),
        (one_compiled_loss, "pass a list with one loss per output"),
        (one_label_array, "pass one array of labels per output"),
        (labels_of_an_unknown_output, "`y`: the model has no output named 'boxes'. Its outputs"),
        (caching_an_ensemble, "Cache a single teacher"),
        (subclassed_two_heads, "student returned 2 outputs, but kdistill expected 1"),
    ],
    ids=lambda v: getattr(v, "__name__", ""),
)
def test_several_outputs_misused_get_a_clear_error(make_it, message):
    with pytest.raises(ValueError, match=message):
        make_it(None)
