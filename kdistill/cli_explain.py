"""`kdistill explain`: what compression cost, for any teacher/student pair.

    kdistill explain --teacher teacher.keras --student student.tflite \\
        --data_path path/to/data.npz [--output_dir explain/]

Runs both models on the data's test split and writes into `--output_dir`
(default: beside the student, `<student>_explain/`) the pictures of
`kdistill.analysis` (per-class accuracy and agreement, the disagreement
matrix, reliability diagrams, and for images a gallery of the disagreements)
with `explain.md` and `explain.json`. The student may be a `.keras` or a
`.tflite` file; the teacher is a `.keras` file. An `.npz` may hold a
`class_names` array (one string per class) to name the classes.

The flags are defined in `kdistill.cli` (shared with `compare`); they are
checked here before TensorFlow loads (`check_explain_flags`, called by
`kdistill.cli_checks.check_flags`).
"""

from __future__ import annotations

import os

import numpy as np
from absl import flags

from kdistill.cli_checks import UsageError, _check_input_file, _check_output_path, _require

FLAGS = flags.FLAGS

STUDENT_FILES = (".keras", ".tflite")


def output_dir() -> str:
    """`--output_dir`, or `<student path without extension>_explain`."""
    return FLAGS.output_dir or f"{os.path.splitext(FLAGS.student)[0]}_explain"


def check_explain_flags() -> None:
    """Checks explain's flags before any work.

    Raises:
        UsageError: A flag is missing or names the wrong kind of file.
    """
    for flag, kinds in (("teacher", (".keras",)), ("student", STUDENT_FILES)):
        path = _require(flag)
        what = " or ".join(f"a {kind} file" for kind in kinds)
        _check_input_file(flag, what, must_exist=True)
        if not path.endswith(kinds):
            raise UsageError(f"Invalid value for --{flag}: {path!r} is not {what}. Pass {what}.")
    _check_input_file("data_path", "an .npz file with x_train, y_train, x_test, y_test")
    _check_output_path("output_dir", output_dir(), "a directory for the pictures")


def class_names(data_path: str | None):
    """The `class_names` array of an `.npz` file, if it holds one (else None)."""
    if not data_path:
        return None
    with np.load(data_path, allow_pickle=False) as stored:
        if "class_names" not in stored.files:
            return None
        return [str(name) for name in stored["class_names"].reshape(-1)]


def explain(argv) -> int:
    """Runs `kdistill explain` (flags parsed and checked); returns the exit code."""
    from kdistill import analysis, data

    split = data.load(FLAGS.dataset, FLAGS.data_path, seed=FLAGS.seed, several_inputs=True)
    out = output_dir()
    result = analysis.explain_models(
        FLAGS.teacher,
        FLAGS.student,
        split.x_test,
        split.y_test,
        out,
        class_names=class_names(FLAGS.data_path),
        unsafe_load=FLAGS.unsafe_load,
    )
    samples = len(result.labels)
    print(f"{FLAGS.student} against {FLAGS.teacher} on {split.name} ({samples} test samples):")
    print(f"  {'':<10}{'accuracy':>10}{'ECE':>10}")
    print(f"  {'teacher':<10}{result.teacher_accuracy:>10.4f}{result.teacher_ece:>10.4f}")
    print(f"  {'student':<10}{result.student_accuracy:>10.4f}{result.student_ece:>10.4f}")
    lost = ", ".join(
        f"{c['class']} ({c['teacher_accuracy']:.3f} -> {c['student_accuracy']:.3f})"
        for c in result.classes_lost()
    )
    print(f"  agreement {result.agreement:.4f}; classes lost most: {lost or 'none'}")
    print(f"Wrote {out}/explain.md, explain.json and the pictures it shows.")
    return 0
