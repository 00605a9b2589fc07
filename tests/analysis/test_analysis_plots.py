"""kdistill.analysis.plots: each picture drawn from fixed numbers, checked as a file and a figure."""

import struct

import numpy as np
import pytest

from kdistill import analysis


def png_size(path):
    """(width, height) from a PNG file's header."""
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", head[16:24])


@pytest.fixture(scope="module")
def fixed():
    """Teacher always right; the student misses one 1 (as 0) and one 2 (as 1)."""
    labels = np.array([0, 0, 1, 1, 2, 2])
    teacher = 4.0 * np.eye(3)[labels]
    student = 2.0 * np.eye(3)[[0, 0, 1, 0, 2, 1]]
    return analysis.explain_outputs(teacher, student, labels, ["zero", "one", "two"])


def texts(figure):
    return [t.get_text() for ax in figure.axes for t in ax.texts]


def test_per_class_plot_labels_the_comparison(fixed, tmp_path):
    path = tmp_path / "per_class.png"
    figure = analysis.plot_per_class(fixed, str(path))
    assert png_size(path) == (600, 420) and path.stat().st_size > 10_000
    ax = figure.axes[0]
    assert ax.get_title().startswith("Per class: teacher vs student accuracy, and agreement")
    assert "(overall 1.000 / 0.667 / 0.667)" in ax.get_title()
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("true class", "share of the class's test samples")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["zero", "one", "two"]
    heights = [round(p.get_height(), 4) for p in ax.patches]
    assert heights == [1, 1, 1, 1, 0.5, 0.5, 1, 0.5, 0.5]  # teacher, student, agreement


def test_disagreement_plot_counts_teacher_rows_against_student_columns(fixed, tmp_path):
    path = tmp_path / "disagreements.png"
    figure = analysis.plot_disagreements(fixed, str(path))
    width, height = png_size(path)
    assert width > height > 400 and path.stat().st_size > 10_000
    ax = figure.axes[0]
    assert ax.get_title() == "Where the student disagrees with the teacher (2 of 6 test samples)"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("student's class", "teacher's class")
    # One count drawn in each cell that has one: (teacher one, student zero), (two, one).
    cells = sorted((t.get_position(), t.get_text()) for t in ax.texts)
    assert cells == [((0, 1), "1"), ((1, 2), "1")]


def test_reliability_plot_shows_both_eces(fixed, tmp_path):
    path = tmp_path / "reliability.png"
    figure = analysis.plot_reliability(fixed, str(path))
    assert png_size(path) == (900, 480) and path.stat().st_size > 10_000
    teacher_ax, student_ax = figure.axes
    assert teacher_ax.get_title() == f"teacher: ECE {fixed.teacher_ece:.4f}"
    assert student_ax.get_title() == f"student: ECE {fixed.student_ece:.4f}"
    assert teacher_ax.get_xlabel() == "confidence (top-1 probability)"
    assert student_ax.get_ylabel() == "accuracy"
    assert figure._suptitle.get_text().startswith("Calibration, teacher vs student (15 ")
    # Every student confidence is one value: one accuracy bar of 4/6, over its 6 samples.
    assert [round(p.get_height(), 4) for p in student_ax.patches] == [round(4 / 6, 4)]
    assert [t.get_text() for t in student_ax.texts] == ["6"]


def test_gallery_captions_both_predictions_most_confident_teacher_first(tmp_path):
    labels = np.array([0, 1, 1, 0])
    teacher = np.array([[3.0, 0.0], [0.0, 1.0], [0.0, 5.0], [2.0, 0.0]])
    student = np.array([[-0.5, 0.5], [-0.5, 0.5], [0.5, -0.5], [0.5, -0.5]])  # disagree on 0, 2
    result = analysis.explain_outputs(teacher, student, labels, ["cat", "dog"])
    images = np.random.default_rng(0).uniform(size=(4, 8, 8, 1))
    path = tmp_path / "gallery.png"
    figure = analysis.plot_gallery(result, images, str(path))
    assert path.stat().st_size > 5_000
    titles = [ax.get_title() for ax in figure.axes]
    p2, p0 = 1 / (1 + np.exp(-5)), 1 / (1 + np.exp(-3))
    assert titles == [
        f"teacher: dog ({p2:.2f})\nstudent: cat (0.73)\ntrue: dog",
        f"teacher: cat ({p0:.2f})\nstudent: dog (0.73)\ntrue: cat",
    ]
    assert "2 of 2 disagreements, most confident teacher first" in figure._suptitle.get_text()
    with pytest.raises(
        ValueError, match=r"`images`: expected 4 images .* Received shape \(4, 64\)"
    ):
        analysis.plot_gallery(result, images.reshape(4, 64), str(path))


def test_importing_kdistill_analysis_loads_neither_tensorflow_nor_matplotlib():
    import subprocess
    import sys

    code = (
        "import sys, kdistill.analysis; "
        "print('tensorflow' in sys.modules, 'matplotlib' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.split() == ["False", "False"], result.stderr
