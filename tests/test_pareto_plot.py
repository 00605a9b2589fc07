"""The Pareto plot's labels: one per point, none over another."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from kdistill.compare import report  # noqa: E402


def record(name, accuracy, size_bytes, student="w16"):
    return {
        "strategy": name,
        "student": student,
        "accuracy": accuracy,
        "tflite_size_bytes": size_bytes,
        "latency_ms": 0.01,
        "pareto": True,
        "status": "ok",
    }


# kd and kd+prune50 export the same size and reach the same accuracy: one point.
# The next three points lie so close on a log axis that their labels would collide.
RECORDS = [
    record("kd", 0.9512, 4000),
    record("kd+prune50", 0.9512, 4010),
    record("kd+int8", 0.9401, 1500),
    record("kd+dynamic", 0.9402, 1560),
    record("kd+float16", 0.9403, 1620),
]


def test_records_at_one_point_share_one_label():
    labels = report.point_labels(RECORDS)
    assert [text for _, text in labels] == [
        "kd+int8 w16",
        "kd+dynamic w16",
        "kd+float16 w16",
        "kd w16\nkd+prune50 w16",
    ]
    assert labels[-1][0] == (3.9, 0.9512)


def test_rendered_labels_are_merged_and_do_not_overlap(tmp_path, monkeypatch):
    figures = []
    monkeypatch.setattr(plt, "close", figures.append)  # keep the figure to read it back
    report.plot(str(tmp_path), RECORDS, None)
    (ax,) = figures[0].axes
    texts = [t.get_text() for t in ax.texts]
    assert texts == [text for _, text in report.point_labels(RECORDS)]
    assert sum("kd+prune50" in text for text in texts) == 1
    renderer = figures[0].canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in ax.texts]
    for i, box in enumerate(boxes):
        for other in boxes[i + 1 :]:
            assert not box.overlaps(other)
    assert (tmp_path / "pareto.png").read_bytes()[:4] == b"\x89PNG"
