"""Explaining a teacher/student pair: run both models, write pictures and a summary.

`model_outputs` runs a Keras model, a `.keras` file or a `.tflite` file
(through `kdistill.tflite`) on inputs; `explain_models` runs a pair on
labelled data and writes everything into a folder; `write_explanation`
writes an `Explanation` computed from outputs you already have. The folder
gets, each written atomically:

- `per_class.png`: teacher and student accuracy and their agreement per class;
- `disagreements.png`: teacher's class against the student's, where they differ;
- `reliability.png`: reliability diagrams and ECE of teacher and student;
- `gallery.png` (image inputs only): the disagreements, most confident teacher first;
- `explain.json` (the numbers) and `explain.md` (a page that shows the pictures).

Example:
    >>> from kdistill import analysis
    >>> analysis.explain_models("teacher.keras", "student.tflite", x_test, y_test, "explain/")
"""

from __future__ import annotations

import json
import os

import numpy as np

from kdistill import atomic
from kdistill.analysis import explanation as explained
from kdistill.analysis import plots

PICTURES = {
    "per_class.png": "Per-class accuracy of teacher and student, and their agreement",
    "disagreements.png": "Where the student disagrees with the teacher",
    "reliability.png": "Calibration (reliability diagrams and ECE)",
    "gallery.png": "The disagreements, most confident teacher first",
}


def model_outputs(model, x, role: str = "student", unsafe_load: bool = False) -> np.ndarray:
    """A model's outputs on `x`: a Keras model, a `.keras` file or a `.tflite` file.

    Args:
        model: A Keras model, or the path of a `.keras` or `.tflite` file.
        x: The inputs (an array, or what the model takes).
        role: "teacher" or "student", for messages.
        unsafe_load: Allow `.keras` files that run stored code when loaded.

    Returns:
        A float array of shape `(samples, classes)`.

    Raises:
        ValueError: The file is neither `.keras` nor `.tflite`, or `x` does
            not fit the model's input (the message names the role and shapes).

    Example:
        >>> model_outputs("student_int8.tflite", x_test).shape
        (10000, 10)
    """
    from kdistill import data_contract, saving, tflite

    label = _describe(model)
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if path.endswith(".tflite"):
            runner = tflite.TFLiteModel(path)
            with data_contract.rewritten_errors(
                lambda m: f"The {role} {label!r} cannot run x: {m}"
            ):
                arrays = runner.arrange(x)
            return _classes(runner.predict(arrays), role)
        if not path.endswith(".keras"):
            raise ValueError(
                f"Invalid value for argument `{role}`: {path!r} is neither a .keras nor a "
                ".tflite file. Pass a model saved with model.save('model.keras') or exported "
                "with kdistill.export.to_tflite."
            )
        model = saving.load_model(path, unsafe=unsafe_load)
    inputs = getattr(model, "inputs", None) or []
    if len(inputs) == 1 and not isinstance(x, (dict, list, tuple)):
        with data_contract.rewritten_errors(lambda m: f"The {role} {label!r} cannot run x: {m}"):
            data_contract.check_input_shape(x, tuple(inputs[0].shape), "x", role)
    return _classes(np.asarray(model.predict(x, batch_size=256, verbose=0)), role)


def _classes(outputs: np.ndarray, role: str) -> np.ndarray:
    if outputs.ndim != 2:
        raise ValueError(
            f"The {role} gives outputs of shape {outputs.shape[1:]} per sample; explaining "
            "a pair needs one vector of class scores per sample (a classifier)."
        )
    return outputs


def explain_models(
    teacher,
    student,
    x,
    y,
    output_dir: str,
    class_names=None,
    unsafe_load: bool = False,
    gallery_size: int = 16,
) -> explained.Explanation:
    """Runs teacher and student on labelled data and writes the pictures and summary.

    Args:
        teacher: A Keras model or a `.keras` / `.tflite` path.
        student: A Keras model or a `.keras` / `.tflite` path.
        x: Test inputs.
        y: True class ids, one per sample.
        output_dir: The folder to write into (made if missing).
        class_names: One name per class (default: the class ids).
        unsafe_load: Allow `.keras` files that run stored code when loaded.
        gallery_size: At most this many images in `gallery.png`.

    Returns:
        The `Explanation`.

    Example:
        >>> result = explain_models("teacher.keras", "student.tflite", x_test, y_test, "out")
        >>> result.student_ece
    """
    teacher_outputs = model_outputs(teacher, x, "teacher", unsafe_load)
    student_outputs = model_outputs(student, x, "student", unsafe_load)
    explanation = explained.explain_outputs(teacher_outputs, student_outputs, y, class_names)
    details = {"teacher": _describe(teacher), "student": _describe(student)}
    write_explanation(explanation, output_dir, x, details, gallery_size)
    return explanation


def _describe(model) -> str:
    if isinstance(model, (str, os.PathLike)):
        return os.fspath(model)
    return getattr(model, "name", None) or type(model).__name__


def write_explanation(
    explanation: explained.Explanation,
    output_dir: str,
    images=None,
    details: dict | None = None,
    gallery_size: int = 16,
) -> dict:
    """Writes the pictures, `explain.json` and `explain.md` of an `Explanation`.

    Args:
        explanation: What `explain_outputs` returned.
        output_dir: The folder to write into (made if missing).
        images: The inputs, for the gallery; skipped unless they are images.
        details: What was compared (model names, data), shown in both files.
        gallery_size: At most this many images in the gallery.

    Returns:
        `{file name: path}` of the files written.
    """
    atomic.ensure_directory(output_dir)
    written = {}
    drawers = {
        "per_class.png": plots.plot_per_class,
        "disagreements.png": plots.plot_disagreements,
        "reliability.png": plots.plot_reliability,
    }
    for name, draw in drawers.items():
        written[name] = os.path.join(output_dir, name)
        draw(explanation, written[name])
    if images is not None and plots.is_image_batch(images):
        written["gallery.png"] = os.path.join(output_dir, "gallery.png")
        plots.plot_gallery(explanation, images, written["gallery.png"], gallery_size)
    summary = {**(details or {}), **explanation.summary()}
    written["explain.json"] = atomic.write_text(
        os.path.join(output_dir, "explain.json"), json.dumps(summary, indent=2)
    )
    written["explain.md"] = atomic.write_text(
        os.path.join(output_dir, "explain.md"),
        markdown(summary, [n for n in written if n.endswith(".png")]),
    )
    return written


def markdown(summary: dict, pictures: list) -> str:
    """The explain.md page: the headline numbers, the classes lost, the pictures."""
    lines = ["# What compression cost", ""]
    details = [f"- {k}: {summary[k]}" for k in ("teacher", "student", "data") if k in summary]
    lines += [*details, ""] if details else []
    lines += [
        "| | teacher | student |",
        "|---|---:|---:|",
        f"| accuracy | {summary['teacher_accuracy']:.4f} | {summary['student_accuracy']:.4f} |",
        f"| expected calibration error ({summary['ece_bins']} bins) | "
        f"{summary['teacher_ece']:.4f} | {summary['student_ece']:.4f} |",
        "",
        f"The student agrees with the teacher on {summary['agreement']:.2%} of "
        f"{summary['samples']} test samples ({summary['disagreements']} disagreements).",
        "",
    ]
    lost = summary["classes_lost"]
    if lost:
        lines += ["Classes the student loses most (accuracy, teacher → student):", ""]
        lines += [
            f"- {c['class']}: {c['teacher_accuracy']:.4f} → {c['student_accuracy']:.4f} "
            f"(−{c['drop']:.4f})"
            for c in lost
        ]
    else:
        lines.append("The student is at least as accurate as the teacher on every class.")
    lines.append("")
    for name in pictures:
        lines += [f"## {PICTURES[name]}", "", f"![{PICTURES[name]}]({name})", ""]
    return "\n".join(lines)
