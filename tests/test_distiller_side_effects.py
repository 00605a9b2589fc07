"""What evaluation leaves behind and what the objective includes, by hand.

Each test builds models whose weights are set by hand, so the expected logs
are written out below rather than recomputed by the code under test.
"""

import math

import numpy as np
import pytest

from kdistill import Distiller
from kdistill.backend import keras, tf
from kdistill.callbacks import TeacherAgreement
from kdistill.losses import SoftTargetKD

EPSILON = 1e-3  # BatchNormalization's default


def sparse_ce():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def frozen_sgd():
    return keras.optimizers.SGD(learning_rate=0.0)


def bn_dropout_student():
    """Identity Dense -> BatchNorm (moving mean 1, variance 4) -> Dropout(0.5).

    In inference mode the logits are (x - 1) / 2; in training mode BatchNorm
    uses the batch's statistics and dropout zeroes half the logits.
    """
    x_in = keras.Input((2,))
    h = keras.layers.Dense(2, name="student_dense")(x_in)
    h = keras.layers.BatchNormalization(momentum=0.5, name="student_bn")(h)
    out = keras.layers.Dropout(0.5, name="student_dropout")(h)
    student = keras.Model(x_in, out, name="student")
    student.get_layer("student_dense").set_weights([np.eye(2), np.zeros(2)])
    bn = student.get_layer("student_bn")
    # gamma, beta, moving mean, moving variance: sqrt(4 - eps + eps) = 2 exactly.
    bn.set_weights([np.ones(2), np.zeros(2), np.ones(2), np.full(2, 4.0 - EPSILON)])
    return student


def affine_teacher():
    """The student's inference-mode function, (x - 1) / 2, without BatchNorm."""
    x_in = keras.Input((2,))
    teacher = keras.Model(x_in, keras.layers.Dense(2, name="teacher_dense")(x_in))
    teacher.get_layer("teacher_dense").set_weights([np.eye(2) / 2, np.full(2, -0.5)])
    return teacher


# Inference-mode logits (x - 1) / 2: [0, 0], [1, 0], [0, 1], [1, 1].
X = np.array([[1, 1], [3, 1], [1, 3], [3, 3]], "float32")
Y = np.array([0, 0, 1, 0])
# Cross-entropy: ln 2 for [0, 0] and [1, 1]; ln(1 + e^-1) for the right class
# ahead by 1. Mean: (2 ln 2 + 2 ln(1 + e^-1)) / 4.
CE = (2 * math.log(2) + 2 * math.log1p(math.exp(-1))) / 4  # 0.503204


def test_evaluate_runs_the_student_in_inference_mode_and_leaves_it_unchanged():
    student = bn_dropout_student()
    distiller = Distiller(affine_teacher(), student, SoftTargetKD(1.0), alpha=0.5)
    distiller.compile(optimizer=frozen_sgd(), loss=sparse_ce())
    before = [w.copy() for w in student.get_weights()]
    logs = distiller.evaluate(X, Y, batch_size=4, verbose=0, return_dict=True)
    # The student equals the teacher in inference mode: no distillation loss.
    assert logs["distillation_loss"] == pytest.approx(0.0, abs=1e-6)
    assert logs["student_loss"] == pytest.approx(CE, rel=1e-5)
    assert logs["loss"] == pytest.approx(0.5 * CE, rel=1e-5)
    for a, b in zip(before, student.get_weights()):
        np.testing.assert_array_equal(a, b)  # BatchNorm's moving statistics too


def test_validation_runs_in_inference_mode_and_updates_nothing():
    student = bn_dropout_student()
    distiller = Distiller(affine_teacher(), student, SoftTargetKD(1.0), alpha=0.5)
    distiller.compile(optimizer=frozen_sgd(), loss=sparse_ce())
    history = distiller.fit(X, Y, batch_size=4, epochs=1, validation_data=(X, Y), verbose=0).history
    # One training step moves the moving mean halfway (momentum 0.5) from 1 to the
    # batch mean 2: 1.5. A validation pass in training mode would move it on to 1.75.
    bn = student.get_layer("student_bn")
    np.testing.assert_allclose(bn.moving_mean.numpy(), [1.5, 1.5], rtol=1e-6)
    # Validation reads the student after that step, in inference mode.
    logits = student(X, training=False)
    expected = keras.losses.sparse_categorical_crossentropy(Y, logits, from_logits=True)
    assert history["val_student_loss"][0] == pytest.approx(float(np.mean(expected)), rel=1e-5)
    np.testing.assert_allclose(bn.moving_mean.numpy(), [1.5, 1.5], rtol=1e-6)


class AddsInputEnergy(keras.layers.Layer):
    """Passes its input through and adds 0.25 * mean squared norm as a loss."""

    def call(self, x):
        self.add_loss(0.25 * tf.reduce_mean(tf.reduce_sum(tf.square(x), axis=-1)))
        return x


def regularized_student(kernel):
    x_in = keras.Input((2,))
    h = AddsInputEnergy()(x_in)
    dense = keras.layers.Dense(2, kernel_regularizer=keras.regularizers.L2(0.5), name="student_out")
    student = keras.Model(x_in, dense(h), name="student")
    dense.set_weights([np.asarray(kernel, "float32"), np.zeros(2, "float32")])
    return student


def test_regularization_losses_are_part_of_the_logged_total():
    # Identity kernel, x = [1, 0] and [0, 1], labels 0: logits x, so cross-entropy
    # ln(1 + e^-1) and ln(1 + e), mean 0.813262. L2: 0.5 * (1 + 1) = 1. add_loss:
    # 0.25 * mean(|x|^2) = 0.25. alpha = 1, so the total is 0.813262 + 1 + 0.25.
    x = np.eye(2, dtype="float32")
    y = np.array([0, 0])
    ce = (math.log1p(math.exp(-1)) + math.log1p(math.exp(1))) / 2
    distiller = Distiller(affine_teacher(), regularized_student(np.eye(2)), alpha=1.0)
    distiller.compile(optimizer=frozen_sgd(), loss=sparse_ce())
    logs = distiller.evaluate(x, y, batch_size=2, verbose=0, return_dict=True)
    assert logs["student_loss"] == pytest.approx(ce, rel=1e-5)
    assert logs["loss"] == pytest.approx(ce + 1.0 + 0.25, rel=1e-5)
    history = distiller.fit(x, y, batch_size=2, epochs=1, verbose=0).history
    assert history["loss"][0] == pytest.approx(ce + 1.0 + 0.25, rel=1e-5)


def test_regularization_losses_are_minimised():
    # With x = 0 the data loss does not reach the kernel: its only gradient is the
    # L2 term's, 2 * 0.5 * k = k, so one SGD step at rate 0.1 leaves 0.9 * k.
    kernel = np.array([[1.0, 2.0], [0.0, -1.0]], "float32")
    student = regularized_student(kernel)
    distiller = Distiller(affine_teacher(), student, alpha=1.0)
    distiller.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss=sparse_ce())
    x, y = np.zeros((2, 2), "float32"), np.array([0, 1])
    history = distiller.fit(x, y, batch_size=2, epochs=1, verbose=0).history
    np.testing.assert_allclose(student.get_layer("student_out").kernel.numpy(), 0.9 * kernel)
    # Logged before the step: ln 2 (zero logits) + 0.5 * (1 + 4 + 0 + 1) + 0.
    assert history["loss"][0] == pytest.approx(math.log(2) + 3.0, rel=1e-5)


def constant_logits(logits, name):
    """A model whose logits are `logits` whatever the input (zero kernel)."""
    x_in = keras.Input((2,))
    dense = keras.layers.Dense(2, kernel_initializer="zeros", name=f"{name}_out")
    model = keras.Model(x_in, dense(x_in), name=name)
    dense.set_weights([np.zeros((2, 2), "float32"), np.asarray(logits, "float32")])
    return model


def test_teacher_kl_is_kl_of_teacher_to_student_by_hand():
    # Teacher p = softmax([0, ln 3]) = [1/4, 3/4]; student q = softmax([ln 2, 0]) =
    # [2/3, 1/3]. KL(p || q) = 1/4 ln(3/8) + 3/4 ln(9/4) = 0.362990; the reverse,
    # KL(q || p) = 2/3 ln(8/3) + 1/3 ln(4/9) = 0.383576. The argmaxes differ (1, 0).
    kl = 0.25 * math.log(3 / 8) + 0.75 * math.log(9 / 4)
    reverse = 2 / 3 * math.log(8 / 3) + 1 / 3 * math.log(4 / 9)
    assert abs(kl - reverse) > 0.02
    teacher = constant_logits([0.0, math.log(3)], "teacher")
    student = constant_logits([math.log(2), 0.0], "student")
    distiller = Distiller(teacher, student, SoftTargetKD(2.0), alpha=0.5)
    distiller.compile(optimizer=frozen_sgd(), loss=sparse_ce())
    x, y = np.ones((4, 2), "float32"), np.array([0, 1, 0, 1])
    history = distiller.fit(
        x,
        y,
        batch_size=4,
        epochs=1,
        validation_data=(x, y),
        verbose=0,
        callbacks=[TeacherAgreement()],
    ).history
    assert history["teacher_kl"][0] == pytest.approx(kl, rel=1e-5)
    assert history["val_teacher_kl"][0] == pytest.approx(kl, rel=1e-5)
    assert history["teacher_agreement"] == [0.0]
