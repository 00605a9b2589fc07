"""ValidationAccuracyStopping: the epoch it stops at, the weights it keeps, what it records."""

import numpy as np
import pytest

from kdistill import models, training
from kdistill.backend import keras
from kdistill.callbacks import ValidationAccuracyStopping

Y_VAL = np.array([0, 1, 2, 3])


class CurveModel:
    """A stand-in model whose validation accuracy follows a given curve.

    Epoch i predicts round(curve[i] * 4) of the 4 labels right; its "weights"
    are the epoch number, so restored weights say which epoch was kept.
    """

    def __init__(self, curve):
        self.curve, self.epoch, self.stop_training = curve, 0, False

    def predict(self, x, batch_size=None, verbose=0):
        right = int(round(self.curve[self.epoch] * 4))
        predicted = np.where(np.arange(4) < right, Y_VAL, (Y_VAL + 1) % 4)
        return np.eye(4)[predicted]

    def get_weights(self):
        return [np.array(self.epoch)]

    def set_weights(self, weights):
        self.epoch = int(weights[0])


def fit_curve(curve, patience, min_delta=0.0):
    model, stopping = (
        CurveModel(curve),
        ValidationAccuracyStopping(np.zeros((4, 1)), Y_VAL, patience=patience, min_delta=min_delta),
    )
    stopping.set_model(model)
    stopping.on_train_begin()
    for epoch in range(len(curve)):
        model.epoch = epoch
        stopping.on_epoch_end(epoch, {})
        if model.stop_training:
            break
    stopping.on_train_end()
    return model, stopping


def test_stops_after_patience_epochs_without_gain_and_restores_the_best_epoch():
    model, stopping = fit_curve([0.25, 0.5, 0.75, 0.5, 0.75, 0.5, 1.0], patience=3)
    # Best 0.75 at epoch 3; epochs 4, 5, 6 do not beat it: stop after epoch 6.
    assert stopping.stopped_epoch == 6 and stopping.best_epoch == 3
    assert model.epoch == 2  # the weights of (1-based) epoch 3
    assert stopping.summary() == {
        "epochs_run": 6,
        "stopped_early": True,
        "best_epoch": 3,
        "val_accuracy": 0.75,
        "val_history": [0.25, 0.5, 0.75, 0.5, 0.75, 0.5],
    }


def test_a_run_that_reaches_its_last_epoch_keeps_its_final_weights():
    model, stopping = fit_curve([0.5, 0.75, 0.5], patience=3)
    assert stopping.stopped_epoch is None and model.epoch == 2
    assert stopping.summary()["val_accuracy"] == 0.5 and stopping.summary()["best_epoch"] == 2


def test_without_patience_it_only_records():
    model, stopping = fit_curve([1.0, 0.25, 0.25, 0.25, 0.25], patience=None)
    assert stopping.stopped_epoch is None and model.epoch == 4
    assert stopping.summary()["val_history"] == [1.0, 0.25, 0.25, 0.25, 0.25]


def test_gains_below_min_delta_do_not_count():
    _, stopping = fit_curve([0.5, 0.75, 1.0, 1.0], patience=1, min_delta=0.3)
    assert stopping.best_epoch == 1 and stopping.stopped_epoch == 2


def test_patience_must_be_a_positive_integer():
    with pytest.raises(ValueError, match="argument `patience`. Expected an integer >= 1"):
        ValidationAccuracyStopping(np.zeros((1, 1)), [0], patience=0)


def test_measures_the_student_of_a_distiller_on_real_training(digits, digits_teacher):
    stopping = ValidationAccuracyStopping(digits.x_val, digits.y_val, patience=None)
    student = models.mlp(digits.input_shape, 10, (16,))
    distiller = training.fit_distilled(
        digits_teacher,
        student,
        digits,
        training.FitSettings(epochs=4, batch_size=32, learning_rate=1e-2),
        callbacks=[stopping],
    )
    logits = distiller.student.predict(digits.x_val, verbose=0)
    assert stopping.history[-1] == pytest.approx(training.accuracy(logits, digits.y_val))
    assert stopping.history[-1] > 0.85  # it learned: 4 epochs on digits


def test_a_keras_model_records_like_fit_does(digits):
    keras.utils.set_random_seed(0)
    stopping = ValidationAccuracyStopping(digits.x_val, digits.y_val, patience=None)
    model = training.fit_supervised(
        models.mlp(digits.input_shape, 10, (16,)),
        digits,
        training.FitSettings(epochs=2),
        callbacks=[stopping],
    )
    assert stopping.history == pytest.approx(model.history.history["val_accuracy"], abs=1e-6)


def test_from_logs_reads_fit_s_validation_accuracy_without_predicting():
    model, stopping = (
        CurveModel([1.0]),
        ValidationAccuracyStopping(np.zeros((4, 1)), Y_VAL, patience=None, from_logs=True),
    )
    stopping.set_model(model)
    stopping.on_train_begin()
    stopping.on_epoch_end(0, {"val_accuracy": 0.625})  # the model would predict 1.0
    assert stopping.history == [0.625]
    with pytest.raises(ValueError, match=r"found no `val_accuracy` in the epoch's logs"):
        stopping.on_epoch_end(1, {"loss": 0.1})
