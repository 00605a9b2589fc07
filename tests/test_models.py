"""The built-in models: the image teacher's shifts, the separable student, the shared recipes."""

import numpy as np
import pytest

from kdistill import export, models, tflite, training
from kdistill.backend import keras


def test_image_teacher_shifts_only_while_training_and_exports_the_plain_cnn():
    keras.utils.set_random_seed(0)
    teacher = models.teacher_for((16, 16, 1), 10)
    assert teacher.layers[1].name == "teacher_shift"
    images = np.random.default_rng(0).random((4, 16, 16, 1)).astype("float32")
    inference = np.asarray(teacher(images, training=False))
    assert not np.allclose(np.asarray(teacher(images, training=True)), inference)
    # The file computes the CNN without the shift layer.
    interpreter = tflite.TFLiteModel(export.convert(teacher, "none"))
    np.testing.assert_allclose(interpreter.predict(images), inference, atol=1e-5)


def test_separable_cnn_has_the_hand_counted_parameters_and_exports_to_int8():
    model = models.separable_cnn((28, 28, 1), 10, width=16)
    # conv0 9*4 + dw1 9*4 + pw1 4*8 + dw2 9*8 + pw2 8*16 (no biases), 4 values per
    # batch-norm channel (4 + 4 + 8 + 8 + 16 channels), logits 16*10 + 10.
    assert model.count_params() == 36 + 36 + 32 + 72 + 128 + 4 * 40 + 170
    images = np.random.default_rng(0).random((8, 28, 28, 1)).astype("float32")
    float_file = export.convert(model, "none")
    np.testing.assert_allclose(
        tflite.TFLiteModel(float_file).predict(images), model(images), atol=1e-4
    )
    int8_file = export.convert(model, "int8", representative_data=images)
    quantized = tflite.TFLiteModel(int8_file).predict(images)
    assert quantized.shape == (8, 10)
    assert np.corrcoef(quantized.ravel(), np.asarray(model(images)).ravel())[0, 1] > 0.95


def test_separable_cnn_refuses_a_width_below_four():
    with pytest.raises(ValueError, match=r"argument `width`. Expected an integer >= 4"):
        models.separable_cnn((28, 28, 1), 10, width=3)


def test_large_datasets_get_fewer_epochs():
    assert training.default_epochs(1437) == 30
    assert training.default_epochs(1437, teacher=True) == 40
    assert training.default_epochs(54000) == 10
    assert training.default_epochs(54000, teacher=True) == 15
    assert training.student_schedule(1437) == "constant"
    assert training.student_schedule(54000) == "cosine"


def test_cosine_schedule_decays_the_rate_to_zero_over_the_run():
    settings = training.FitSettings(
        epochs=2, batch_size=10, learning_rate=1.0, lr_schedule="cosine"
    )
    schedule = training.learning_rate(settings, train_samples=100)
    assert training.learning_rate(training.FitSettings(learning_rate=0.1), 100) == 0.1
    assert float(schedule(0)) == pytest.approx(1.0)
    assert float(schedule(10)) == pytest.approx(0.5)  # halfway through 20 steps
    assert float(schedule(20)) == pytest.approx(0.0, abs=1e-7)


def test_an_unknown_schedule_names_the_choices():
    with pytest.raises(ValueError, match=r"argument `lr_schedule`. Expected 'constant' or"):
        training.optimizer(training.FitSettings(lr_schedule="step"), 100)
