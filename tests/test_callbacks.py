import csv
import glob

import numpy as np
import pytest
from conftest import tiny_mlp, toy_data

from kdistill import Distiller, models, schedules, training
from kdistill.backend import keras, tf
from kdistill.callbacks import AlphaScheduler, HintStage, TeacherAgreement, TemperatureScheduler
from kdistill.losses import HintLoss, LogitMSE, SoftTargetKD


def sparse_ce():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def frozen(distiller):
    distiller.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0), loss=sparse_ce())
    return distiller


def pair(**kwargs):
    return Distiller(
        tiny_mlp(name="teacher", units=16), tiny_mlp(name="student", units=4), **kwargs
    )


def test_temperature_schedule_reaches_the_compiled_step_and_the_logs():
    x, y = toy_data()
    distiller = frozen(pair(distillation_loss=SoftTargetKD(9.0)))
    history = distiller.fit(
        x,
        y,
        epochs=3,
        batch_size=16,
        verbose=0,
        callbacks=[TemperatureScheduler(schedules.linear(4.0, 1.0, steps=2))],
    ).history
    t, s = distiller.teacher(x), distiller.student(x)
    assert history["temperature"] == pytest.approx([4.0, 2.5, 1.0])
    for value, temperature in zip(history["distillation_loss"], (4.0, 2.5, 1.0)):
        assert value == pytest.approx(float(SoftTargetKD(temperature)(t, s)), rel=1e-5)


def test_alpha_schedule_per_step_applies_from_that_step():
    x, y = toy_data()  # 64 samples, 4 batches of 16 per epoch
    distiller = frozen(pair(alpha=0.5))
    history = distiller.fit(
        x,
        y,
        epochs=2,
        batch_size=16,
        verbose=0,
        callbacks=[AlphaScheduler(lambda step: 0.0 if step < 4 else 1.0, per="step")],
    ).history
    assert history["loss"][0] == pytest.approx(history["distillation_loss"][0], rel=1e-6)
    assert history["loss"][1] == pytest.approx(history["student_loss"][1], rel=1e-6)
    assert history["alpha"] == [0.0, 1.0]


def test_alpha_schedule_per_step_continues_in_a_resumed_fit():
    x, y = toy_data()  # 4 steps per epoch
    distiller = frozen(pair(alpha=0.5))
    scheduler = AlphaScheduler(lambda step: 0.0 if step < 4 else 1.0, per="step")
    first = distiller.fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=[scheduler])
    resumed = distiller.fit(
        x, y, epochs=2, initial_epoch=1, batch_size=16, verbose=0, callbacks=[scheduler]
    )
    assert first.history["alpha"] == [0.0]
    # Steps 4-7 belong to the second epoch, whichever fit runs them.
    assert resumed.history["alpha"] == [1.0]
    assert resumed.history["loss"][0] == pytest.approx(resumed.history["student_loss"][0], rel=1e-6)


def test_scheduled_values_reach_csv_logger(tmp_path):
    x, y = toy_data()
    path = tmp_path / "log.csv"
    distiller = frozen(pair())
    distiller.fit(
        x,
        y,
        epochs=2,
        verbose=0,
        callbacks=[
            AlphaScheduler(schedules.piecewise([1], [0.2, 0.6])),
            TemperatureScheduler(schedules.constant(3.0)),
            keras.callbacks.CSVLogger(str(path)),
        ],
    )
    rows = list(csv.DictReader(path.open()))
    assert [float(r["alpha"]) for r in rows] == pytest.approx([0.2, 0.6])
    assert [float(r["temperature"]) for r in rows] == [3.0, 3.0]


def test_alpha_schedule_outside_unit_interval_names_alpha():
    x, y = toy_data()
    distiller = frozen(pair())
    with pytest.raises(ValueError, match="argument `alpha`. Expected a number in"):
        distiller.fit(x, y, epochs=1, verbose=0, callbacks=[AlphaScheduler(lambda e: 2.0)])


def test_temperature_scheduler_without_temperature_says_so():
    x, y = toy_data()
    distiller = frozen(pair(distillation_loss=LogitMSE()))
    with pytest.raises(ValueError, match="no temperature to set"):
        distiller.fit(x, y, epochs=1, verbose=0, callbacks=[TemperatureScheduler(lambda e: 2.0)])


def test_scheduler_on_a_plain_model_is_a_clear_error():
    x, y = toy_data()
    model = tiny_mlp()
    model.compile("adam", sparse_ce())
    with pytest.raises(TypeError, match="works with a kdistill.Distiller"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[AlphaScheduler(lambda e: 0.5)])


# -- teacher agreement --------------------------------------------------------------


def test_agreement_is_exactly_one_for_a_clone_of_the_teacher():
    x, y = toy_data(n=128, classes=3)
    teacher = tiny_mlp(name="teacher", units=16)
    clone = keras.models.clone_model(teacher)
    clone.set_weights(teacher.get_weights())
    distiller = frozen(Distiller(teacher, clone))
    history = distiller.fit(
        x, y, epochs=1, validation_data=(x, y), verbose=0, callbacks=[TeacherAgreement()]
    ).history
    assert history["teacher_agreement"] == [1.0]
    assert history["val_teacher_agreement"] == [1.0]
    assert history["teacher_kl"][0] == pytest.approx(0.0, abs=1e-6)


def test_agreement_is_logged_only_while_the_callback_asks():
    x, y = toy_data()
    distiller = pair()
    distiller.compile(optimizer="adam", loss=sparse_ce())
    plain = distiller.fit(x, y, epochs=1, verbose=0).history
    tracked = distiller.fit(x, y, epochs=1, verbose=0, callbacks=[TeacherAgreement()]).history
    after = distiller.fit(x, y, epochs=1, verbose=0).history
    for history in (plain, after):
        assert "teacher_agreement" not in history and "teacher_kl" not in history
    assert 0.0 <= tracked["teacher_agreement"][0] <= 1.0
    assert tracked["teacher_kl"][0] >= 0.0


def test_agreement_stops_when_a_fit_with_the_callback_raises():
    x, y = toy_data()
    distiller = pair()
    distiller.compile(optimizer="adam", loss=sparse_ce())

    class Interrupt(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        distiller.fit(x, y, epochs=1, verbose=0, callbacks=[TeacherAgreement(), Interrupt()])
    after = distiller.fit(x, y, epochs=1, verbose=0).history
    assert "teacher_agreement" not in after and "teacher_kl" not in after
    assert "teacher_agreement" not in distiller.evaluate(x, y, verbose=0, return_dict=True)


def test_agreement_is_near_chance_for_a_random_student():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 4)).astype("float32")
    y = rng.integers(0, 10, size=2000)
    teacher = tiny_mlp(name="teacher", units=32, classes=10)
    student = tiny_mlp(name="student", units=32, classes=10)
    distiller = frozen(Distiller(teacher, student))
    history = distiller.fit(
        x, y, epochs=1, batch_size=200, verbose=0, callbacks=[TeacherAgreement()]
    ).history
    assert 0.0 < history["teacher_agreement"][0] < 0.3
    assert history["teacher_kl"][0] > 0.0


def test_early_stopping_can_monitor_validation_agreement():
    x, y = toy_data()
    distiller = pair()
    distiller.compile(optimizer="adam", loss=sparse_ce())
    stop = keras.callbacks.EarlyStopping("val_teacher_agreement", mode="max", patience=100)
    history = distiller.fit(
        x, y, epochs=2, validation_data=(x, y), verbose=0, callbacks=[TeacherAgreement(), stop]
    ).history
    assert len(history["val_teacher_agreement"]) == 2
    assert stop.best is not None and 0.0 <= stop.best <= 1.0


def test_tensorboard_records_every_component_loss(tmp_path):
    x, y = toy_data()
    distiller = pair(
        distillation_loss=[SoftTargetKD(), HintLoss("teacher_hidden", "student_hidden")]
    )
    distiller.compile(optimizer="adam", loss=sparse_ce())
    distiller.fit(
        x,
        y,
        epochs=1,
        validation_data=(x, y),
        verbose=0,
        callbacks=[keras.callbacks.TensorBoard(str(tmp_path))],
    )
    tags = set()
    for path in glob.glob(str(tmp_path / "**" / "events.out.tfevents.*"), recursive=True):
        for event in tf.compat.v1.train.summary_iterator(path):
            tags.update(value.tag for value in event.summary.value)
    for name in ("loss", "student_loss", "distillation_loss", "soft_target_loss", "hint_loss"):
        assert f"epoch_{name}" in tags, sorted(tags)


# -- two-stage FitNets --------------------------------------------------------------


@pytest.mark.slow
def test_two_stage_fitnets_lowers_the_hint_loss_and_trains_a_student(digits, digits_teacher):
    student = models.student_for(digits.input_shape, 10, 32)
    distiller = Distiller(
        digits_teacher,
        student,
        distillation_loss=[SoftTargetKD(4.0), HintLoss("teacher_hidden0", "student_hidden0")],
        distillation_loss_weights=[1.0, 0.1],
    )
    distiller.compile(optimizer=keras.optimizers.Adam(2e-3), loss=sparse_ce(), metrics=["accuracy"])
    logits_before = student.get_layer("student_logits").get_weights()[0].copy()

    class CheckStageOne(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 4:  # the last hint epoch: the logits layer got no gradient
                np.testing.assert_array_equal(
                    student.get_layer("student_logits").get_weights()[0], logits_before
                )

    history = distiller.fit(
        digits.x_train,
        digits.y_train,
        epochs=25,
        batch_size=64,
        verbose=0,
        callbacks=[HintStage(hint_epochs=5), CheckStageOne()],
    ).history
    assert history["hint_stage"][:5] == [1.0] * 5 and history["hint_stage"][5] == 0.0
    assert history["hint_loss"][-1] < history["hint_loss"][0]
    assert float(distiller.alpha.numpy()) == pytest.approx(0.1)
    logits = training.predict_logits(distiller.student, digits.x_test)
    assert training.accuracy(logits, digits.y_test) > 0.9
