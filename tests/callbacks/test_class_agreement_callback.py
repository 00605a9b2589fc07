"""ClassAgreementAndCalibration: its CSVLogger columns equal the pure functions' values."""

import csv

import numpy as np
import pytest
from conftest import sparse_ce, tiny_mlp, toy_data

from kdistill import Distiller, analysis
from kdistill.backend import keras
from kdistill.callbacks import ClassAgreementAndCalibration
from kdistill.losses import SoftTargetKD

COLUMNS = ["val_agreement_class_0", "val_agreement_class_1", "val_agreement_class_2"]


def expected_values(teacher, student, x_val, y_val):
    """What the last epoch's row must hold, from kdistill.analysis on the final models."""
    teacher_pred = np.argmax(teacher.predict(x_val, verbose=0), -1)
    student_probs = analysis.probabilities(student.predict(x_val, verbose=0))
    agreement = analysis.per_class_agreement(teacher_pred, student_probs.argmax(-1), y_val, 3)
    ece = analysis.expected_calibration_error(student_probs, y_val)
    return [*agreement, ece]


def csv_rows(path):
    with open(path) as f:
        rows = list(csv.DictReader(f))
    return rows


def test_distiller_fit_logs_per_class_agreement_and_ece_to_csv(tmp_path):
    x, y = toy_data(n=96)
    x_val, y_val = toy_data(n=48, seed=1)
    teacher, student = tiny_mlp(name="teacher", units=16), tiny_mlp(name="student", units=4)
    distiller = Distiller(teacher, student, distillation_loss=SoftTargetKD(2.0), alpha=0.5)
    distiller.compile(keras.optimizers.Adam(0.05), loss=sparse_ce())
    path = tmp_path / "log.csv"
    distiller.fit(
        x,
        y,
        epochs=3,
        batch_size=32,
        verbose=0,
        callbacks=[
            ClassAgreementAndCalibration(validation_data=(x_val, y_val)),  # the distiller's teacher
            keras.callbacks.CSVLogger(str(path)),
        ],
    )
    rows = csv_rows(path)
    assert len(rows) == 3 and set(COLUMNS + ["val_student_ece"]) <= set(rows[0])
    got = [float(rows[-1][c]) for c in COLUMNS + ["val_student_ece"]]
    assert got == pytest.approx(expected_values(teacher, student, x_val, y_val), abs=1e-6)
    # Adam at 0.05 moves the student: the epochs' values are measured each epoch.
    assert len({rows[i]["val_student_ece"] for i in range(3)}) == 3


def test_plain_model_with_class_names_logs_named_columns(tmp_path):
    x, y = toy_data(n=96)
    x_val, y_val = toy_data(n=48, seed=1)
    teacher, student = tiny_mlp(name="teacher", units=16), tiny_mlp(name="student", units=4)
    student.compile(keras.optimizers.Adam(0.05), loss=sparse_ce())
    path = tmp_path / "log.csv"
    callback = ClassAgreementAndCalibration(
        teacher, (x_val, y_val), class_names=["cat", "dog", "sea lion"]
    )
    student.fit(
        x, y, epochs=2, verbose=0, callbacks=[callback, keras.callbacks.CSVLogger(str(path))]
    )
    row = csv_rows(path)[-1]
    names = ["val_agreement_class_cat", "val_agreement_class_dog", "val_agreement_class_sea_lion"]
    got = [float(row[c]) for c in names + ["val_student_ece"]]
    assert got == pytest.approx(expected_values(teacher, student, x_val, y_val), abs=1e-6)


def test_a_plain_model_without_a_teacher_is_told_to_pass_one():
    x, y = toy_data()
    student = tiny_mlp(name="student")
    student.compile("adam", loss=sparse_ce())
    callback = ClassAgreementAndCalibration(validation_data=(x, y))
    with pytest.raises(ValueError, match=r"needs a teacher: pass `teacher`"):
        student.fit(x, y, epochs=1, verbose=0, callbacks=[callback])
    with pytest.raises(ValueError, match=r"`validation_data`: expected a tuple \(x, y\)"):
        ClassAgreementAndCalibration(tiny_mlp(), x)
