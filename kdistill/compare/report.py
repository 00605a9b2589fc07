"""Writing a comparison's results: JSON, CSV, Markdown report and plot.

Every file is written atomically, so a run interrupted at any moment leaves
the previous complete version of each file.
"""

from __future__ import annotations

import csv
import io
import json
import os

from kdistill import atomic

COLUMNS = (
    "strategy",
    "student",
    "params",
    "tflite_size_bytes",
    "gzip_size_bytes",
    "accuracy",
    "accuracy_std",
    "teacher_agreement",
    "latency_ms",
    "latency_ms_p95",
    "compression_ratio",
    "pareto",
    "status",
    "seeds",
    "elapsed_s",
    "error",
)


def load_results(output_dir: str) -> list:
    """Returns the records of an earlier run's results.json ([] if none)."""
    path = os.path.join(output_dir, "results.json")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        try:
            records = json.load(f)
        except json.JSONDecodeError as error:
            raise ValueError(
                f"{path!r} is not valid JSON ({error}); it cannot be resumed. Remove it "
                "or start a new --output_dir."
            ) from error
    if not isinstance(records, list) or not all(_is_record(r) for r in records):
        raise ValueError(
            f"{path!r} is not a list of kdistill compare records (each a dict with "
            f"`strategy`, `student` and `status`; it holds {_describe_json(records)}), so it "
            "cannot be resumed. Restore the file, or start a new --output_dir."
        )
    return records


def _is_record(value) -> bool:
    return isinstance(value, dict) and {"strategy", "student", "status"} <= set(value)


def _describe_json(value) -> str:
    if isinstance(value, list):
        bad = next(r for r in value if not _is_record(r))
        return f"a list with the entry {json.dumps(bad)[:80]}"
    return f"a {type(value).__name__}: {json.dumps(value)[:80]}"


def write_results(output_dir: str, records: list) -> None:
    """Writes results.json and results.csv."""
    atomic.write_text(os.path.join(output_dir, "results.json"), json.dumps(records, indent=2))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for record in records:
        writer.writerow({k: record.get(k, "") for k in COLUMNS})
    atomic.write_text(os.path.join(output_dir, "results.csv"), buffer.getvalue())


def table(records: list, teacher: dict | None = None) -> str:
    """A Markdown table of the records, most accurate first."""
    head = (
        "| strategy | student | params | TFLite KB | gzip KB | accuracy (TFLite) | "
        "teacher agreement | latency ms | compression | Pareto |\n"
        "|---|---|---:|---:|---:|---:|---:|---:|---:|:---:|\n"
    )
    rows = []
    if teacher:
        rows.append(
            f"| teacher (reference) | {teacher['student']} | {teacher['params']} | "
            f"{teacher['tflite_size_bytes'] / 1024:.1f} | "
            f"{teacher['gzip_size_bytes'] / 1024:.1f} | "
            f"{teacher['accuracy']:.4f} | 1.0000 | {teacher['latency_ms']:.4f} | 1.0x | |"
        )
    ok = sorted((r for r in records if r["status"] == "ok"), key=lambda r: -r["accuracy"])
    for r in ok:
        accuracy = f"{r['accuracy']:.4f}"
        if r.get("accuracy_std"):
            accuracy += f" ± {r['accuracy_std']:.4f}"
        rows.append(
            f"| {r['strategy']} | {r['student']} | {r['params']} | "
            f"{r['tflite_size_bytes'] / 1024:.1f} | "
            f"{r['gzip_size_bytes'] / 1024:.1f} | {accuracy} | "
            f"{r['teacher_agreement']:.4f} | {r['latency_ms']:.4f} | "
            f"{r['compression_ratio']:.1f}x | {'*' if r['pareto'] else ''} |"
        )
    for r in records:
        if r["status"] == "dropped":
            probe = r.get("search", {})
            rows.append(
                f"| {r['strategy']} | {r['student']} | dropped after a "
                f"{probe.get('probe_epochs', '?')}-epoch probe (validation accuracy "
                f"{_number(probe.get('probe_val_accuracy'))}) |"
            )
        elif r["status"] != "ok":
            rows.append(
                f"| {r['strategy']} | {r['student']} | failed: {r.get('error', '')[:120]} |"
            )
    return head + "\n".join(rows) + "\n"


def write_report(
    output_dir: str,
    records: list,
    teacher: dict,
    recommendation: dict,
    settings: dict,
    hundredfold: dict | None = None,
) -> None:
    """Writes report.md: the table, the recommendation and why it won, the search, settings."""
    lines = [
        "# kdistill compare",
        "",
        "Accuracy, teacher agreement and latency are measured on the exported `.tflite` files "
        "(latency: median per sample, batch 1, one thread). Compression is the teacher's float32 "
        "TFLite size over the student's. `*` marks the accuracy/size Pareto front.",
        "",
        table(records, teacher),
        "## Recommendation",
        "",
        recommendation["message"],
        "",
        *why_it_won(records, recommendation),
        *([f"100x question: {hundredfold['message']}", ""] if hundredfold else []),
        *explanation_links(output_dir),
        *search_section(records),
        "## Settings",
        "",
    ]
    lines += [f"- {k}: {v}" for k, v in settings.items()]
    atomic.write_text(os.path.join(output_dir, "report.md"), "\n".join(lines) + "\n")


def explanation_links(output_dir: str) -> list[str]:
    """Report lines linking explain/ (see `kdistill.compare.explanation`), if it was written."""
    if not os.path.exists(os.path.join(output_dir, "explain", "explain.md")):
        return []
    return [
        "## What compression cost",
        "",
        "Per-class accuracy and agreement, disagreements and calibration of the recommended "
        "student against the teacher: [explain/explain.md](explain/explain.md).",
        "",
        "![calibration of teacher and student](explain/reliability.png)",
        "",
    ]


def why_it_won(records: list, recommendation: dict) -> list:
    """Lines that say why the recommendation won: the runners-up and their accuracy."""
    best = recommendation.get("record")
    ok = sorted((r for r in records if r["status"] == "ok"), key=lambda r: -r["accuracy"])
    if not best or len(ok) < 2:
        return []
    others = [r for r in ok if r is not best][:3]
    lines = ["Why: on the test split it is the most accurate within budget; the runners-up:", ""]
    for r in others:
        lines.append(
            f"- {r['strategy']} ({r['student']}): accuracy {r['accuracy']:.4f} "
            f"({(r['accuracy'] - best['accuracy']) * 100:+.2f} points), "
            f"{r['tflite_size_bytes'] / 1024:.1f} KB"
        )
    dropped = [r for r in records if r["status"] == "dropped"]
    if dropped:
        lines.append(
            f"- {len(dropped)} strategies were dropped after the probe (below): another "
            "student of at most their size was clearly ahead on validation accuracy."
        )
    return lines + [""]


def search_section(records: list) -> list:
    """The search's choices: each strategy's probe, whether it went on, and where it stopped."""
    searched = [r for r in records if "search" in r or "training" in r]
    if not searched:
        return []
    lines = [
        "## The search",
        "",
        "| strategy | student | probe val. accuracy | went on | epochs run | stopped early | "
        "best epoch | val. accuracy | why |",
        "|---|---|---:|:---:|---:|:---:|---:|---:|---|",
    ]
    for r in searched:
        choice, trained = r.get("search", {}), r.get("training", {})
        cells = [
            r["strategy"],
            r["student"],
            _number(choice.get("probe_val_accuracy")),
            "yes" if choice.get("kept", True) else "no",
            trained.get("epochs_run", ""),
            "yes" if trained.get("stopped_early") else "",
            trained.get("best_epoch", ""),
            _number(trained.get("val_accuracy")),
            choice.get("reason", ""),
        ]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return lines + [""]


def _number(value) -> str:
    return "" if value is None else f"{value:.4f}"


def plot(output_dir: str, records: list, teacher: dict | None) -> str | None:
    """Writes pareto.png: accuracy against TFLite size, latency as marker size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in records if r["status"] == "ok"]
    if not ok:
        return None
    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=110)
    latencies = [r["latency_ms"] for r in ok] + ([teacher["latency_ms"]] if teacher else [])
    top = max(latencies) or 1.0

    def marker(latency):
        return 30 + 300 * latency / top

    for r in ok:
        ax.scatter(
            r["tflite_size_bytes"] / 1024,
            r["accuracy"],
            s=marker(r["latency_ms"]),
            c="tab:red" if r["pareto"] else "tab:blue",
            alpha=0.7,
            edgecolors="k",
            linewidths=0.5,
        )
    front = sorted((r for r in ok if r["pareto"]), key=lambda r: r["tflite_size_bytes"])
    if front:
        ax.plot(
            [r["tflite_size_bytes"] / 1024 for r in front],
            [r["accuracy"] for r in front],
            "--",
            c="tab:red",
            label="Pareto front",
        )
    labels = [
        ax.annotate(
            text,
            point,
            fontsize=7,
            xytext=(4, -10),
            textcoords="offset points",
            verticalalignment="top",
        )
        for point, text in point_labels(front)
    ]
    if teacher:
        ax.scatter(
            teacher["tflite_size_bytes"] / 1024,
            teacher["accuracy"],
            marker="*",
            s=marker(teacher["latency_ms"]) * 1.5,
            c="gold",
            edgecolors="k",
            label="teacher",
        )
    ax.set_xscale("log")
    ax.set_xlabel("TFLite size (KB, log scale)")
    ax.set_ylabel("test accuracy of the .tflite file")
    ax.set_title("Accuracy against size (marker area: latency per sample)")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    _separate(labels, fig.canvas.get_renderer())
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    path = os.path.join(output_dir, "pareto.png")
    atomic.write_bytes(path, buffer.getvalue())
    return path


def point_labels(records: list) -> list[tuple[tuple[float, float], str]]:
    """One label per plotted point: records at one (size, accuracy) share it.

    Records whose TFLite size (KB, to 0.1) and accuracy (to 4 decimals)
    coincide are drawn at one point, so their names form one label, one
    name per line.

    Args:
        records: Records with "strategy", "student", "tflite_size_bytes" and
            "accuracy".

    Returns:
        `((size_kb, accuracy), label)` pairs, smallest size first.

    Example:
        >>> point_labels([{"strategy": "kd", "student": "w8", "tflite_size_bytes": 2048,
        ...                "accuracy": 0.9}])
        [((2.0, 0.9), 'kd w8')]
    """
    groups: dict = {}
    for r in records:
        key = (round(r["tflite_size_bytes"] / 1024, 1), round(r["accuracy"], 4))
        groups.setdefault(key, []).append(f"{r['strategy']} {r['student']}")
    return [(point, "\n".join(names)) for point, names in sorted(groups.items())]


def _separate(labels: list, renderer, step: float = 4.0, tries: int = 200) -> None:
    # Points close on the front would print their labels over each other: move each
    # label down (in points, below its point) until it overlaps none placed before it.
    placed = []
    for label in labels:
        for _ in range(tries):
            box = label.get_window_extent(renderer)
            if not any(box.overlaps(other) for other in placed):
                break
            x, y = label.xyann
            label.xyann = (x, y - step)
        placed.append(label.get_window_extent(renderer))
