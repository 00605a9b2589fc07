"""The files a comparison writes, checked against hand-written text."""

import csv
import json
import os

import pytest

from kdistill.compare import report


def record(name, accuracy, size, pareto=True, **extra):
    base = {
        "strategy": name,
        "student": "w8",
        "params": 100,
        "tflite_size_bytes": size,
        "gzip_size_bytes": size // 2,
        "accuracy": accuracy,
        "teacher_agreement": 0.5,
        "latency_ms": 0.02,
        "compression_ratio": 4.0,
        "pareto": pareto,
        "status": "ok",
    }
    return {**base, **extra}


TEACHER = {
    "student": "teacher",
    "params": 1000,
    "tflite_size_bytes": 204800,
    "gzip_size_bytes": 102400,
    "accuracy": 0.99,
    "latency_ms": 0.1,
}


def test_results_round_trip_and_the_csv_keeps_the_columns_in_order(tmp_path):
    records = [record("kd", 0.9, 2048, extra_field=1)]
    report.write_results(str(tmp_path), records)
    assert report.load_results(str(tmp_path)) == records
    with open(tmp_path / "results.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0] == list(report.COLUMNS)
    assert rows[0][:3] == ["strategy", "student", "params"] and rows[0][-1] == "error"
    assert dict(zip(rows[0], rows[1])) == {
        **{k: "" for k in report.COLUMNS},
        "strategy": "kd",
        "student": "w8",
        "params": "100",
        "tflite_size_bytes": "2048",
        "gzip_size_bytes": "1024",
        "accuracy": "0.9",
        "teacher_agreement": "0.5",
        "latency_ms": "0.02",
        "compression_ratio": "4.0",
        "pareto": "True",
        "status": "ok",
    }
    assert json.loads((tmp_path / "results.json").read_text()) == records
    assert (tmp_path / "results.json").read_text().startswith('[\n  {\n    "strategy"')


def test_missing_results_are_empty_and_broken_ones_say_what_to_do(tmp_path):
    assert report.load_results(str(tmp_path)) == []
    (tmp_path / "results.json").write_text("{not json")
    with pytest.raises(
        ValueError, match=r"is not valid JSON .*Remove it or start a new --output_dir"
    ):
        report.load_results(str(tmp_path))


def test_table_lists_the_teacher_then_the_most_accurate_first_then_failures():
    records = [
        record("small", 0.8, 1024, pareto=True),
        record("big", 0.9, 204800, pareto=False, accuracy_std=0.0125),
        {"strategy": "qat", "student": "w8", "status": "failed", "error": "E" * 130},
        {"strategy": "odd", "student": "w8", "status": "failed"},
    ]
    assert report.table(records, TEACHER) == (
        "| strategy | student | params | TFLite KB | gzip KB | accuracy (TFLite) | "
        "teacher agreement | latency ms | compression | Pareto |\n"
        "|---|---|---:|---:|---:|---:|---:|---:|---:|:---:|\n"
        "| teacher (reference) | teacher | 1000 | 200.0 | 100.0 | 0.9900 | 1.0000 | 0.1000 | 1.0x | |\n"
        "| big | w8 | 100 | 200.0 | 100.0 | 0.9000 ± 0.0125 | 0.5000 | 0.0200 | 4.0x |  |\n"
        "| small | w8 | 100 | 1.0 | 0.5 | 0.8000 | 0.5000 | 0.0200 | 4.0x | * |\n"
        f"| qat | w8 | failed: {'E' * 120} |\n"
        "| odd | w8 | failed:  |\n"
    )
    assert report.table([record("x", 0.5, 1024)]).count("\n") == 3


def test_report_holds_the_table_the_recommendation_and_the_settings(tmp_path):
    records = [record("kd", 0.9, 2048)]
    report.write_report(
        str(tmp_path), records, TEACHER, {"message": "Ship kd (w8)."}, {"epochs": 3, "seed": 0}
    )
    text = (tmp_path / "report.md").read_text()
    assert text.startswith(
        "# kdistill compare\n\nAccuracy, teacher agreement and latency are measured on the "
        "exported `.tflite` files (latency: median per sample, batch 1, one thread). "
        "Compression is the teacher's float32 TFLite size over the student's. `*` marks the "
        "accuracy/size Pareto front.\n\n| strategy |"
    )
    assert text.endswith(
        report.table(records, TEACHER) + "\n## Recommendation\n\nShip kd (w8).\n\n"
        "## Settings\n\n- epochs: 3\n- seed: 0\n"
    )


def test_plot_draws_each_record_and_the_front_by_size(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    figures = []
    monkeypatch.setattr(plt, "close", figures.append)  # keep the figure to read it back
    records = [
        record("a", 0.8, 1024, latency_ms=0.5),
        record("b", 0.9, 4096, latency_ms=1.0),
        record("c", 0.7, 8192, pareto=False, latency_ms=0.25),
        {"strategy": "f", "student": "w8", "status": "failed"},
    ]
    teacher = {**TEACHER, "tflite_size_bytes": 16384, "latency_ms": 2.0}
    path = report.plot(str(tmp_path), records, teacher)
    assert path == os.path.join(str(tmp_path), "pareto.png")
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    (ax,) = figures[0].axes
    points = [c.get_offsets().tolist() for c in ax.collections]
    assert points == [[[1.0, 0.8]], [[4.0, 0.9]], [[8.0, 0.7]], [[16.0, 0.99]]]
    # Marker area 30 + 300 * latency / slowest (the teacher, 2 ms): 105, 180, 67.5;
    # the teacher's star is 1.5 times its own (30 + 300) = 495.
    sizes = [c.get_sizes().tolist() for c in ax.collections]
    assert sizes == [[105.0], [180.0], [67.5], [495.0]]
    red, blue, gold = (0.839, 0.153, 0.157), (0.122, 0.467, 0.706), (1.0, 0.843, 0.0)
    colors = [tuple(round(v, 3) for v in c.get_facecolor()[0][:3]) for c in ax.collections]
    assert colors == [red, red, blue, gold]
    (front,) = ax.lines
    assert front.get_xydata().tolist() == [[1.0, 0.8], [4.0, 0.9]]
    assert front.get_linestyle() == "--"
    assert tuple(round(v, 3) for v in plt.matplotlib.colors.to_rgb(front.get_color())) == red
    assert [(t.get_text(), t.xy) for t in ax.texts] == [("a w8", (1.0, 0.8)), ("b w8", (4.0, 0.9))]
    assert ax.get_xscale() == "log"
    assert ax.get_xlabel() == "TFLite size (KB, log scale)"
    assert ax.get_ylabel() == "test accuracy of the .tflite file"
    assert ax.get_title() == "Accuracy against size (marker area: latency per sample)"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["Pareto front", "teacher"]


def test_plot_without_latencies_or_teacher_draws_equal_markers(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    figures = []
    monkeypatch.setattr(plt, "close", figures.append)
    records = [record("a", 0.8, 1024, latency_ms=0.0), record("b", 0.7, 2048, latency_ms=0.0)]
    report.plot(str(tmp_path), records, None)
    (ax,) = figures[0].axes
    assert [c.get_sizes().tolist() for c in ax.collections] == [[30.0], [30.0]]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["Pareto front"]
    failed = [{"strategy": "f", "student": "w8", "status": "failed"}]
    assert report.plot(str(tmp_path / "none"), failed, None) is None
    assert not os.path.exists(tmp_path / "none")


def test_results_that_are_not_records_name_the_bad_entry(tmp_path):
    # A record needs exactly these three keys; anything more is allowed.
    minimal = [{"strategy": "kd", "student": "w8", "status": "failed"}]
    report.write_results(str(tmp_path), minimal)
    assert report.load_results(str(tmp_path)) == minimal
    path = tmp_path / "results.json"
    bad = {"strategy": "kd", "student": "w8", "note": "x" * 100}  # no `status`
    path.write_text(json.dumps(minimal + [bad]))
    with pytest.raises(ValueError) as error:
        report.load_results(str(tmp_path))
    # The entry is cut to its first 80 characters of JSON: 45 before the note's x's.
    entry = '{"strategy": "kd", "student": "w8", "note": "' + "x" * 35
    assert str(error.value) == (
        f"{str(path)!r} is not a list of kdistill compare records (each a dict with "
        f"`strategy`, `student` and `status`; it holds a list with the entry {entry}), so "
        "it cannot be resumed. Restore the file, or start a new --output_dir."
    )
    path.write_text(json.dumps({"records": ["y" * 100]}))
    # '{"records": ["' is 14 characters, so 66 y's follow.
    with pytest.raises(ValueError, match=r"it holds a dict: \{\"records\": \[\"y{66}\), so"):
        report.load_results(str(tmp_path))


def test_point_labels_group_records_at_one_rounded_point():
    records = [
        # 1100 and 1110 bytes are 1.07 and 1.08 KB, both 1.1 to 0.1 KB; accuracies
        # 0.91231 and 0.91234 are both 0.9123 to 4 decimals: one point, two names.
        {"strategy": "kd", "student": "w8", "tflite_size_bytes": 1100, "accuracy": 0.91231},
        {"strategy": "dkd", "student": "w8", "tflite_size_bytes": 1110, "accuracy": 0.91234},
        # 102400 bytes are exactly 100.0 KB.
        {"strategy": "labels", "student": "w4", "tflite_size_bytes": 102400, "accuracy": 0.5},
    ]
    assert report.point_labels(records) == [
        ((1.1, 0.9123), "kd w8\ndkd w8"),
        ((100.0, 0.5), "labels w4"),
    ]


def test_plot_labels_hang_below_their_points(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    figures = []
    monkeypatch.setattr(plt, "close", figures.append)
    report.plot(str(tmp_path), [record("a", 0.8, 1024)], None)
    # Top-aligned, so a label of several names grows downwards, away from its point.
    assert [t.get_verticalalignment() for t in figures[0].axes[0].texts] == ["top"]


class _Label:
    """A stand-in annotation: a 20 x 10 box whose top edge is at its offset."""

    def __init__(self, height=10.0):
        self.xyann = (4.0, -10.0)
        self.height = height

    def get_window_extent(self, renderer):
        from matplotlib.transforms import Bbox

        x, y = self.xyann
        return Bbox.from_bounds(x, y - self.height, 20.0, self.height)


def test_separate_moves_each_label_down_in_steps_until_it_overlaps_none():
    first, second, third = _Label(), _Label(), _Label()
    report._separate([first, second, third], renderer=None)
    # The first stays at y=-10 (box -20..-10). Boxes that only touch do not overlap,
    # so the second moves 3 steps of 4 to y=-22 (box -32..-22) and the third 3
    # more past it to y=-34 (box -44..-34).
    assert [label.xyann for label in (first, second, third)] == [
        (4.0, -10.0),
        (4.0, -22.0),
        (4.0, -34.0),
    ]


def test_separate_gives_up_on_a_label_after_200_steps():
    first, tall = _Label(height=1e6), _Label(height=1e6)
    report._separate([first, tall], renderer=None)
    # The second box always overlaps the first: 200 steps of 4 below y=-10.
    assert tall.xyann == (4.0, -810.0)
