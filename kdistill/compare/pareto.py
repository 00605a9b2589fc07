"""The accuracy/size Pareto front and the recommendation under budgets."""

from __future__ import annotations

import dataclasses

from kdistill import validation


@dataclasses.dataclass(frozen=True)
class Budget:
    """What the user can ship: any limit may be None (no limit).

    Attributes:
        max_size_kb: Largest acceptable `.tflite` file, in KiB (1024 bytes).
        max_latency_ms: Largest acceptable median per-sample latency.
        min_accuracy: Lowest acceptable test accuracy, in [0, 1].
    """

    max_size_kb: float | None = None
    max_latency_ms: float | None = None
    min_accuracy: float | None = None

    def __post_init__(self):
        for name in ("max_size_kb", "max_latency_ms"):
            if getattr(self, name) is not None:
                validation.check_positive(getattr(self, name), name)
        if self.min_accuracy is not None:
            validation.check_unit_interval(self.min_accuracy, "min_accuracy")

    def violations(self, record: dict) -> dict:
        """How far `record` misses each limit, as a share of the limit (0: met)."""
        misses = {}
        if self.max_size_kb is not None:
            size_kb = record["tflite_size_bytes"] / 1024
            misses["size"] = max(0.0, size_kb / self.max_size_kb - 1.0)
        if self.max_latency_ms is not None:
            misses["latency"] = max(0.0, record["latency_ms"] / self.max_latency_ms - 1.0)
        if self.min_accuracy is not None:
            # min_accuracy=0 is met by every record (and must not divide by zero).
            shortfall = self.min_accuracy - record["accuracy"]
            misses["accuracy"] = shortfall / self.min_accuracy if shortfall > 0 else 0.0
        return misses

    def describe(self) -> str:
        """The limits in words, e.g. "size <= 5 KB, accuracy >= 0.95"."""
        parts = []
        if self.max_size_kb is not None:
            parts.append(f"size <= {self.max_size_kb:g} KB")
        if self.max_latency_ms is not None:
            parts.append(f"latency <= {self.max_latency_ms:g} ms")
        if self.min_accuracy is not None:
            parts.append(f"accuracy >= {self.min_accuracy:g}")
        return ", ".join(parts) if parts else "no budget"


def _ok(records):
    return [r for r in records if r.get("status") == "ok"]


def dominates(a: dict, b: dict) -> bool:
    """Whether `a` is at least as accurate and as small as `b`, and better in one."""
    return (
        a["accuracy"] >= b["accuracy"]
        and a["tflite_size_bytes"] <= b["tflite_size_bytes"]
        and (a["accuracy"] > b["accuracy"] or a["tflite_size_bytes"] < b["tflite_size_bytes"])
    )


def mark_pareto(records: list) -> list:
    """Sets `pareto` on each record: True when no other record dominates it.

    Failed records are never on the front.

    Example:
        >>> mark_pareto([{"status": "ok", "accuracy": .9, "tflite_size_bytes": 10},
        ...              {"status": "ok", "accuracy": .8, "tflite_size_bytes": 20}])
    """
    ok = _ok(records)
    for record in records:
        record["pareto"] = record.get("status") == "ok" and not any(
            dominates(other, record) for other in ok if other is not record
        )
    return records


def recommend(records: list, budget: Budget) -> dict:
    """Picks the most accurate record within `budget`.

    Returns:
        A dict with `record` (the pick or None), `within_budget` and a
        `message` for people; when nothing fits, `closest` is the record that
        misses the budget by the least (sum of relative misses).
    """
    ok = _ok(records)
    if not ok:
        return {
            "record": None,
            "within_budget": False,
            "closest": None,
            "message": "No strategy finished, so there is nothing to recommend.",
        }
    fitting = [r for r in ok if not any(budget.violations(r).values())]
    if fitting:
        best = max(fitting, key=lambda r: (r["accuracy"], -r["tflite_size_bytes"]))
        return {
            "record": best,
            "within_budget": True,
            "closest": None,
            "message": (
                f"Ship {_label(best)}: the most accurate within budget ({budget.describe()}): "
                f"accuracy {best['accuracy']:.4f}, {best['tflite_size_bytes'] / 1024:.1f} KB, "
                f"{best['latency_ms']:.4f} ms per sample."
            ),
        }
    closest = min(ok, key=lambda r: (sum(budget.violations(r).values()), -r["accuracy"]))
    misses = ", ".join(f"{k} by {v:.0%}" for k, v in budget.violations(closest).items() if v)
    return {
        "record": None,
        "within_budget": False,
        "closest": closest,
        "message": (
            f"No strategy meets the budget ({budget.describe()}). Closest: {_label(closest)} "
            f"(accuracy {closest['accuracy']:.4f}, {closest['tflite_size_bytes'] / 1024:.1f} KB, "
            f"{closest['latency_ms']:.4f} ms), which misses {misses}."
        ),
    }


def smallest_within(
    records: list, teacher: dict, ratio: float = 100.0, points: float = 1.0
) -> dict:
    """Answers "is a student `ratio`x smaller than the teacher within `points` of it?".

    Sizes are `.tflite` file sizes: a student qualifies when its file is at
    most the teacher's float32 file divided by `ratio`, and its accuracy (of
    the file, on the test split) at least the teacher's minus `points`
    percentage points.

    Args:
        records: The run's records (only status "ok" counts).
        teacher: The teacher's record (`tflite_size_bytes`, `accuracy`).
        ratio: How many times smaller.
        points: Accuracy allowed below the teacher, in percentage points.

    Returns:
        A dict: `reached` (bool), `record` (the smallest qualifying record,
        or None), `closest` (when none qualifies: the most accurate record of
        at most the size), `max_size_bytes`, `min_accuracy` and a `message`.

    Example:
        >>> smallest_within([{"status": "ok", "accuracy": .985, "tflite_size_bytes": 9000,
        ...                   "strategy": "kd+int8", "student": "w16"}],
        ...                 {"accuracy": .993, "tflite_size_bytes": 1_000_000})["reached"]
        True
    """
    max_size = teacher["tflite_size_bytes"] / ratio
    min_accuracy = teacher["accuracy"] - points / 100.0
    small = [r for r in _ok(records) if r["tflite_size_bytes"] <= max_size]
    qualifying = [r for r in small if r["accuracy"] >= min_accuracy - 1e-9]
    question = (
        f"{ratio:g}x smaller than the teacher's float32 file (<= {max_size / 1024:.1f} KB) and "
        f"within {points:g} point of its accuracy {teacher['accuracy']:.4f} (>= {min_accuracy:.4f})"
    )
    answer = {
        "ratio": ratio,
        "points": points,
        "max_size_bytes": max_size,
        "min_accuracy": min_accuracy,
        "teacher_accuracy": teacher["accuracy"],
        "reached": bool(qualifying),
        "record": None,
        "closest": None,
    }
    if qualifying:
        best = min(qualifying, key=lambda r: (r["tflite_size_bytes"], -r["accuracy"]))
        answer["record"] = best
        answer["message"] = (
            f"Yes: {_label(best)} is {question}: {best['tflite_size_bytes'] / 1024:.1f} KB "
            f"({teacher['tflite_size_bytes'] / best['tflite_size_bytes']:.0f}x smaller), "
            f"accuracy {best['accuracy']:.4f}."
        )
    elif small:
        closest = max(small, key=lambda r: (r["accuracy"], -r["tflite_size_bytes"]))
        answer["closest"] = closest
        answer["message"] = (
            f"No student is {question}. The most accurate of that size: {_label(closest)}, "
            f"{closest['tflite_size_bytes'] / 1024:.1f} KB, accuracy {closest['accuracy']:.4f} "
            f"({(answer['min_accuracy'] - closest['accuracy']) * 100:.2f} points short)."
        )
    else:
        answer["message"] = f"No student is {question}: none is that small."
    return answer


def _label(record) -> str:
    return f"{record['strategy']} ({record['student']})"
