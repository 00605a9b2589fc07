"""`kdistill explain`: the files it writes, their numbers, and its one-line errors."""

import json
import os
import re

import numpy as np
import pytest
from test_bad_inputs_cli import assert_one_line_error, run_cli

from kdistill import analysis, cli, export, models
from kdistill.backend import keras


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A 3-class npz of 8x8 images with class names; a teacher, students (.keras, .tflite)."""
    root = tmp_path_factory.mktemp("explain")
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(90, 8, 8)).astype("float32")
    y = rng.integers(0, 3, size=90)
    np.savez(
        root / "data.npz",
        x_train=x[:60],
        y_train=y[:60],
        x_test=x[60:],
        y_test=y[60:],
        class_names=np.array(["ant", "bee", "cat"]),
    )
    keras.utils.set_random_seed(0)
    teacher = models.mlp((8, 8, 1), 3, (16,), name="teacher")
    student = models.mlp((8, 8, 1), 3, (4,), name="student")
    teacher.save(root / "teacher.keras")
    student.save(root / "student.keras")
    export.to_tflite(student, str(root / "student.tflite"))
    models.mlp((8, 8, 1), 5, (4,), name="five").save(root / "five_classes.keras")
    flat = models.mlp((64,), 3, (4,), name="flat")
    flat.save(root / "flat.keras")
    export.to_tflite(flat, str(root / "flat.tflite"))
    return root


@pytest.fixture
def parsed_flags():
    def parse(line):
        return cli.FLAGS(["kdistill", *line.split()])

    yield parse
    cli.FLAGS.unparse_flags()


def test_explain_writes_the_pictures_and_the_numbers_of_a_tflite_student(
    files, parsed_flags, capsys
):
    out = files / "out"
    argv = parsed_flags(
        f"explain --teacher {files}/teacher.keras --student {files}/student.tflite "
        f"--data_path {files}/data.npz --output_dir {out}"
    )
    assert cli.main(argv) == 0
    for name in ("per_class.png", "disagreements.png", "reliability.png", "gallery.png"):
        assert (out / name).stat().st_size > 5_000, name
    summary = json.loads((out / "explain.json").read_text())
    x_test = np.load(files / "data.npz")["x_test"][..., None]
    y_test = np.load(files / "data.npz")["y_test"]
    expected = analysis.explain_outputs(
        keras.models.load_model(files / "teacher.keras").predict(x_test, verbose=0),
        analysis.model_outputs(str(files / "student.tflite"), x_test),
        y_test,
    )
    assert summary["samples"] == 30 and summary["teacher"].endswith("teacher.keras")
    for key in ("teacher_accuracy", "student_accuracy", "agreement", "student_ece", "teacher_ece"):
        assert summary[key] == pytest.approx(getattr(expected, key), abs=1e-6), key
    assert [c["class"] for c in summary["per_class"]] == ["ant", "bee", "cat"]
    page = (out / "explain.md").read_text()
    assert "![Calibration (reliability diagrams and ECE)](reliability.png)" in page
    assert (
        f"| accuracy | {expected.teacher_accuracy:.4f} | {expected.student_accuracy:.4f} |" in page
    )
    assert f"Wrote {out}/explain.md" in capsys.readouterr().out


BEFORE_WORK = {
    "missing student file": (
        "explain --teacher {tmp}/teacher.keras --student {tmp}/none.tflite",
        r"--student: no file at '.*/none\.tflite'\. Pass the path of a \.keras file or a "
        r"\.tflite file\.$",
    ),
    "teacher not a .keras file": (
        "explain --teacher {tmp}/student.tflite --student {tmp}/student.tflite",
        r"--teacher: '.*/student\.tflite' is not a \.keras file\. Pass a \.keras file\.$",
    ),
    "no --student": ("explain --teacher {tmp}/teacher.keras", r"--student is required"),
}


@pytest.mark.parametrize("case", BEFORE_WORK.values(), ids=list(BEFORE_WORK))
def test_bad_explain_flags_are_one_line_before_any_work(files, case):
    line, pattern = case
    result = run_cli(line.replace("{tmp}", str(files)).split(), cwd=files)
    assert_one_line_error(result, "explain", 2, pattern)
    assert result.stdout == ""


IN_WORK = {
    "a .keras student for other inputs": (
        "flat.keras",
        r"The student '.*flat\.keras' cannot run x: Invalid value for argument `x`: its samples have "
        r"shape \(8, 8, 1\), but the student "
        r"takes samples of shape \(64,\)",
    ),
    "a .tflite student for other inputs": (
        "flat.tflite",
        r"The student '.*flat\.tflite' cannot run x: .* expects arrays of shape \(None, 64\)",
    ),
    "a student of 5 classes for a teacher of 3": (
        "five_classes.keras",
        r"The teacher gives 3 class scores per sample and the student 5",
    ),
}


@pytest.mark.parametrize("case", IN_WORK.values(), ids=list(IN_WORK))
def test_a_student_that_does_not_fit_the_data_or_teacher_is_one_line(
    files, parsed_flags, capsys, case
):
    student, pattern = case
    argv = parsed_flags(
        f"explain --teacher {files}/teacher.keras --student {files}/{student} "
        f"--data_path {files}/data.npz --output_dir {files}/bad"
    )
    assert cli.main(argv) == 2
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith("kdistill explain: error: ") and re.search(pattern, last)
    assert not os.path.exists(files / "bad" / "explain.json")
