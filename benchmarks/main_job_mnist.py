"""The main job on real data: `kdistill compare` on MNIST with its defaults, timed.

Runs `kdistill.compare.run` with the command's defaults on an MNIST-layout
.npz (teacher, students at widths 16 and 64, the 13 default strategies, the
epochs chosen for a large dataset), in one of two modes:

* ``--mode exhaustive``: every strategy trains for all epochs (no halving,
  no early stopping): the reference. Writes <output>_exhaustive.json.
* ``--mode fast``: the default run (successive halving, early stopping).
  Writes <output>.json with the wall time split into teacher, students and
  export, the recommendation against the exhaustive run's (read from
  <output>_exhaustive.json when it exists), and the 100x answer.

Both use the same teacher: the first run trains it and stores it in
``--teacher_cache``; the second loads it, and its total adds the first run's
teacher training time, so the fast run's time includes a teacher.

    python benchmarks/main_job_mnist.py --data_path path/to/mnist.npz --mode exhaustive
    python benchmarks/main_job_mnist.py --data_path path/to/mnist.npz --mode fast
    python benchmarks/main_job_mnist.py --smoke   # digits, tiny: checks the script runs
"""

from __future__ import annotations

import json
import os
import resource
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import common  # noqa: E402
from absl import app, flags  # noqa: E402

from kdistill import atomic, compare  # noqa: E402

flags.DEFINE_string("data_path", None, "MNIST-layout .npz (required unless --smoke).")
flags.DEFINE_enum(
    "mode",
    "fast",
    ["fast", "exhaustive"],
    "fast: the default run; exhaustive: every strategy for all epochs.",
)
flags.DEFINE_string("output", "main_job_mnist", "Results name in benchmarks/results/.")
flags.DEFINE_string(
    "teacher_cache",
    None,
    "Teacher cache folder shared by both modes "
    "(default: a folder in the system's temporary directory).",
)
flags.DEFINE_string("run_dir", None, "Where the compare run writes (default: a temporary folder).")
flags.DEFINE_boolean("smoke", False, "Digits, 2 strategies, few epochs: checks the script runs.")
FLAGS = flags.FLAGS


def load_average() -> list:
    """The 1, 5 and 15-minute load averages (other processes slow the run)."""
    return [round(x, 2) for x in os.getloadavg()]


def cpu_seconds() -> float:
    """CPU time (user + system) of this process so far, all threads.

    On a machine shared with other jobs, wall time is an upper bound; CPU time
    says how much work the run was, whatever else ran.
    """
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def summarize(result, seconds: float) -> dict:
    """The numbers one run adds to the results file."""
    recommended = result.recommendation.get("record") or {}
    hundredfold = dict(result.hundredfold)
    for key in ("record", "closest"):
        if hundredfold.get(key):
            hundredfold[key] = _brief(hundredfold[key])
    teacher = result.teacher
    return {
        "wall_s": round(seconds, 1),
        "timings_s": result.timings,
        "teacher": {
            "accuracy": teacher["accuracy"],
            "tflite_size_bytes": teacher["tflite_size_bytes"],
            "params": teacher["params"],
            "training": teacher.get("training"),
        },
        "recommendation": _brief(recommended) if recommended else None,
        "recommendation_message": result.recommendation["message"],
        "hundredfold": hundredfold,
        "records": [_brief(r) for r in result.records],
        "run_dir": result.output_dir,
    }


def _brief(record: dict) -> dict:
    keys = (
        "strategy",
        "student",
        "status",
        "params",
        "tflite_size_bytes",
        "accuracy",
        "compression_ratio",
        "pareto",
        "elapsed_s",
        "export_s",
    )
    brief = {k: record[k] for k in keys if k in record}
    if "search" in record:
        brief["search"] = {k: v for k, v in record["search"].items() if k != "probe_val_history"}
    if "training" in record:
        brief["training"] = {k: v for k, v in record["training"].items() if k != "val_history"}
    return brief


def compare_with_exhaustive(fast: dict, exhaustive: dict) -> dict:
    """The fast recommendation against the exhaustive one, in accuracy points."""
    mine, reference = fast["recommendation"], exhaustive["recommendation"]
    gap = (reference["accuracy"] - mine["accuracy"]) * 100

    def named(record):
        return f"{record['strategy']} ({record['student']}), accuracy {record['accuracy']:.4f}"

    return {
        "fast": named(mine),
        "exhaustive": named(reference),
        "same_strategy": (mine["strategy"], mine["student"])
        == (reference["strategy"], reference["student"]),
        "points_below_exhaustive": round(gap, 3),
        "within_0.2_points": gap <= 0.2 + 1e-9,
        "speed_up": round(exhaustive["total_with_teacher_s"] / fast["total_with_teacher_s"], 2),
    }


def main(argv):
    del argv
    if not FLAGS.smoke and not FLAGS.data_path:
        raise app.UsageError("--data_path is required (an MNIST-layout .npz), or pass --smoke.")
    if FLAGS.smoke:  # everything in the working directory, which the smoke test owns
        cache = FLAGS.teacher_cache or os.path.abspath("main_job_smoke_cache")
        run_dir = FLAGS.run_dir or os.path.abspath("main_job_smoke_run")
    else:
        cache = FLAGS.teacher_cache or os.path.join(tempfile.gettempdir(), "kdistill_teachers")
        run_dir = FLAGS.run_dir or tempfile.mkdtemp(prefix=f"main_job_{FLAGS.mode}_")
    settings = dict(
        dataset="digits" if FLAGS.smoke else "mnist",
        data_path=None if FLAGS.smoke else FLAGS.data_path,
        output_dir=run_dir,
        overwrite=True,
        teacher_cache_dir=cache,
        search_mode="halving" if FLAGS.mode == "fast" else "exhaustive",
    )
    if FLAGS.smoke:
        settings.update(
            strategy_names=["labels", "kd+int8"],
            student_widths=[8],
            epochs=2,
            teacher_epochs=2,
            max_train=200,
            latency_samples=5,
        )
    load_before = load_average()
    started, cpu_started = time.perf_counter(), cpu_seconds()
    result = compare.run(**settings)
    seconds = time.perf_counter() - started
    run = summarize(result, seconds)
    training = result.teacher.get("training") or {}
    run["teacher_train_s"] = training.get("train_s", 0.0)
    run["total_with_teacher_s"] = round(
        seconds + (run["teacher_train_s"] if training.get("source") == "cache" else 0.0), 1
    )
    run["load_average_before_after"] = [load_before, load_average()]
    run["cpu_s"] = round(cpu_seconds() - cpu_started, 1)
    suffix = "_exhaustive" if FLAGS.mode == "exhaustive" else ""
    payload = {
        "benchmark": FLAGS.output + suffix,
        "smoke": FLAGS.smoke,
        "machine": common.machine(),
        "mode": FLAGS.mode,
        "command": "kdistill compare --data_path path/to/mnist.npz"
        + (" --search exhaustive" if FLAGS.mode == "exhaustive" else ""),
        "note": "Wall times on a 2-core machine shared with other jobs: upper bounds (see the "
        "load averages).",
        **run,
    }
    common.write(FLAGS.output + suffix, payload, FLAGS.smoke)
    print(json.dumps({k: payload[k] for k in ("timings_s", "total_with_teacher_s")}, indent=1))
    print(result.hundredfold["message"])
    if not FLAGS.smoke:
        add_comparison(FLAGS.output)


def add_comparison(name: str) -> None:
    """Once both runs are recorded (in either order), adds the comparison to <name>.json."""
    fast_path = os.path.join(common.RESULTS, name + ".json")
    reference_path = os.path.join(common.RESULTS, name + "_exhaustive.json")
    if not (os.path.exists(fast_path) and os.path.exists(reference_path)):
        return
    with open(fast_path) as f:
        fast = json.load(f)
    with open(reference_path) as f:
        reference = json.load(f)
    fast["against_exhaustive"] = compare_with_exhaustive(fast, reference)
    atomic.write_text(fast_path, json.dumps(fast, indent=2, default=float))
    print(json.dumps(fast["against_exhaustive"], indent=1))


if __name__ == "__main__":
    app.run(main)
