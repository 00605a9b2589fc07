"""How far can a model shrink? Accuracy against TFLite size on MNIST.

One small-CNN teacher (trained on inputs shifted by up to 2 pixels, learning
rate cosine-decayed to 0); students from about 1/3 to 1/100 of its parameters,
each trained alone and distilled (offline, SoftTargetKD T=4), then exported
float32 and int8. Writes a table, a plot, and for each strategy the smallest
size whose accuracy (the mean over seeds) stays within 1 point of the teacher.
Every model is built and trained after seeding with its own seed, so each row
is reproducible on its own, whatever else the run trains.

    python benchmarks/compression_frontier.py --data_path path/to/mnist.npz
    # The sizes near the 1-point line, over three seeds, in a second results file:
    python benchmarks/compression_frontier.py --data_path path/to/mnist.npz \
        --ratios 10,30 --seeds 0,1,2 --results_name compression_frontier_seeds
    python benchmarks/compression_frontier.py --data_path path/to/mnist.npz \
        --ratios 3,100 --seeds 0,1,2 --results_name compression_frontier_seeds_ends
    # One table and plot of both (same seeded teacher):
    python benchmarks/compression_frontier.py \
        --merge compression_frontier_seeds,compression_frontier_seeds_ends \
        --results_name compression_frontier_3_seeds
    python benchmarks/compression_frontier.py --smoke
"""

from __future__ import annotations

import itertools
import json
import math
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import common  # noqa: E402
from absl import app, flags  # noqa: E402

from kdistill import atomic, cache_teacher_outputs, export, models, tflite, training  # noqa: E402
from kdistill.backend import keras  # noqa: E402
from kdistill.losses import SoftTargetKD  # noqa: E402

flags.DEFINE_string("data_path", None, "MNIST-layout .npz (default: digits).")
flags.DEFINE_boolean("smoke", False, "Tiny sizes: checks the script runs.")
flags.DEFINE_integer("teacher_epochs", 15, "Epochs of the teacher.")
flags.DEFINE_integer("epochs", 12, "Epochs of each student.")
flags.DEFINE_list("ratios", ["3", "10", "30", "100"], "Teacher/student parameter ratios to aim at.")
flags.DEFINE_list("seeds", ["0"], "Seeds of each student (the teacher always uses seed 0).")
flags.DEFINE_list(
    "merge",
    None,
    "Train nothing: merge these earlier results (runs of the same teacher, e.g. one per group "
    "of ratios) into <results_name>.json and .png.",
)
flags.DEFINE_string(
    "results_name",
    "compression_frontier",
    "Writes benchmarks/results/<results_name>.json and <results_name>.png.",
)
FLAGS = flags.FLAGS


def train_teacher(split, epochs):
    """The reference teacher: a small CNN for images (a regularised MLP else).

    Images are shifted by up to 2 pixels in training (the shift layer passes
    inputs through unchanged at inference, so the exported file computes the
    plain CNN), and the learning rate decays from 2e-3 to 0 over the epochs
    (cosine).

    Returns:
        The trained teacher.
    """
    shape, classes = split.input_shape, split.num_classes
    if len(shape) == 3 and shape[0] >= 16:
        inputs = keras.Input(shape)
        shifted = keras.layers.RandomTranslation(2 / shape[0], 2 / shape[1], fill_mode="constant")(
            inputs
        )
        cnn = models.small_cnn(shape, classes, (32, 64), 128, dropout=0.3, name="teacher_cnn")
        teacher = keras.Model(inputs, cnn(shifted), name="teacher")
    else:
        teacher = models.teacher_for(shape, classes)
    rate = 2e-3
    cosine = keras.callbacks.LearningRateScheduler(
        lambda epoch: rate * 0.5 * (1 + math.cos(math.pi * epoch / epochs))
    )
    settings = training.FitSettings(epochs=epochs, batch_size=64, learning_rate=rate)
    return training.fit_supervised(teacher, split, settings, callbacks=[cosine])


def main(argv):
    if FLAGS.merge:
        merge(FLAGS.merge)
        return
    started = time.perf_counter()
    split = common.load(FLAGS.data_path, FLAGS.smoke)
    epochs = 1 if FLAGS.smoke else FLAGS.epochs
    shape, classes = split.input_shape, split.num_classes
    seeds = [int(seed) for seed in FLAGS.seeds]
    keras.utils.set_random_seed(0)
    teacher = train_teacher(split, 1 if FLAGS.smoke else FLAGS.teacher_epochs)
    teacher_file = export.convert(teacher)
    teacher_acc = tflite.evaluate_tflite(
        teacher_file, split.x_test, split.y_test, latency_samples=0
    )["accuracy"]
    cached = cache_teacher_outputs(teacher, split.x_train, batch_size=1000)
    rows = [
        {
            "model": "teacher",
            "params": int(teacher.count_params()),
            "strategy": "teacher",
            "seed": 0,
            "size_bytes": len(teacher_file),
            "accuracy": teacher_acc,
        }
    ]
    ratios = [float(r) for r in (FLAGS.ratios[:2] if FLAGS.smoke else FLAGS.ratios)]
    for ratio in ratios:
        width = common.student_width_for_ratio(shape, classes, teacher.count_params(), ratio)
        for strategy, seed in itertools.product(("alone", "distilled"), seeds):
            keras.utils.set_random_seed(seed)
            student = models.student_for(shape, classes, width)
            settings = training.FitSettings(
                epochs=epochs, batch_size=32, learning_rate=3e-3, seed=seed
            )
            if strategy == "alone":
                training.fit_supervised(student, split, settings)
            else:
                training.fit_distilled(
                    teacher,
                    student,
                    split,
                    settings,
                    SoftTargetKD(4.0),
                    0.1,
                    teacher_outputs=cached,
                    validate=False,
                )
            for mode in ("none", "int8"):
                flatbuffer = export.convert(student, mode, representative_data=split.x_train[:500])
                report = tflite.evaluate_tflite(
                    flatbuffer, split.x_test, split.y_test, latency_samples=0
                )
                rows.append(
                    {
                        "model": f"1/{ratio:g} (width {width})",
                        "params": int(student.count_params()),
                        "strategy": f"{strategy} {'int8' if mode == 'int8' else 'float32'}",
                        "seed": seed,
                        "size_bytes": len(flatbuffer),
                        "accuracy": report["accuracy"],
                    }
                )
            print(rows[-2], rows[-1], flush=True)
    write_results(
        rows,
        teacher_acc,
        {
            "teacher_epochs": 1 if FLAGS.smoke else FLAGS.teacher_epochs,
            "teacher_training": "2-pixel random shifts, Adam 2e-3 cosine-decayed to 0, "
            "batch 64, dropout 0.3",
            "epochs": epochs,
            "ratios": ratios,
            "seeds": seeds,
        },
        time.perf_counter() - started,
    )


def merge(names):
    """Writes one results file (and plot) from runs that share the teacher.

    The teacher is trained with seed 0 in every run, so runs on one machine
    share it; runs whose teachers' test accuracies differ are refused.

    Args:
        names: Results names of earlier runs (their files in the results
            folder), for example one per group of ratios.
    """
    payloads = []
    for name in names:
        path = os.path.join(common.RESULTS, f"{name}{'.smoke' if FLAGS.smoke else ''}.json")
        if not os.path.exists(path):
            raise app.UsageError(f"--merge: no results file {path}; run that benchmark first.")
        with open(path) as f:
            payloads.append(json.load(f))
    teacher_acc = payloads[0]["teacher_accuracy"]
    if any(p["teacher_accuracy"] != teacher_acc for p in payloads):
        raise app.UsageError(
            "--merge: the runs had different teachers (test accuracies "
            f"{[p['teacher_accuracy'] for p in payloads]}); merge only runs of one teacher."
        )
    rows = [r for r in payloads[0]["rows"] if r["strategy"] == "teacher"]
    rows += [r for p in payloads for r in p["rows"] if r["strategy"] != "teacher"]
    settings = {"merged": list(names), **payloads[0]["settings"]}
    settings["ratios"] = [r for p in payloads for r in p["settings"]["ratios"]]
    write_results(rows, teacher_acc, settings, sum(p["wall_seconds"] for p in payloads))


def write_results(rows, teacher_acc, settings, wall_seconds):
    """Writes the rows, their means over seeds, the 1-point answer and the plot."""
    points = mean_over_seeds(rows)
    smallest = {}
    for strategy in sorted({p["strategy"] for p in points} - {"teacher"}):
        within = [
            p
            for p in points
            if p["strategy"] == strategy and p["accuracy_mean"] >= teacher_acc - 0.01
        ]
        smallest[strategy] = min((p["size_bytes"] for p in within), default=None)
    _plot(points, teacher_acc)
    common.write(
        FLAGS.results_name,
        {
            "rows": rows,
            "points": points,
            "teacher_accuracy": teacher_acc,
            "smallest_size_within_1_point": smallest,
            "settings": settings,
            "wall_seconds": wall_seconds,
        },
        FLAGS.smoke,
    )


def mean_over_seeds(rows):
    """One point per (model, strategy): accuracy mean and std over its seeds.

    Returns:
        A list of dicts with the row's model, params, strategy and size, plus
        `accuracy_mean`, `accuracy_std` (population std; 0 for one seed) and
        `seeds` (how many rows were averaged).
    """
    groups = {}
    for row in rows:
        groups.setdefault((row["model"], row["strategy"]), []).append(row)
    points = []
    for (model, strategy), group in groups.items():
        accuracies = [r["accuracy"] for r in group]
        mean = sum(accuracies) / len(accuracies)
        std = math.sqrt(sum((a - mean) ** 2 for a in accuracies) / len(accuracies))
        points.append(
            {
                "model": model,
                "params": group[0]["params"],
                "strategy": strategy,
                "size_bytes": group[0]["size_bytes"],
                "accuracy_mean": mean,
                "accuracy_std": std,
                "seeds": len(group),
            }
        )
    return points


def _plot(points, teacher_acc):
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
    for strategy in sorted({p["strategy"] for p in points} - {"teacher"}):
        line = sorted(
            (p["size_bytes"] / 1024, p["accuracy_mean"], p["accuracy_std"])
            for p in points
            if p["strategy"] == strategy
        )
        sizes, means, stds = zip(*line)
        ax.errorbar(sizes, means, yerr=stds, fmt="o-", capsize=3, label=strategy)
    teacher = next(p for p in points if p["strategy"] == "teacher")
    ax.scatter(
        [teacher["size_bytes"] / 1024],
        [teacher_acc],
        marker="*",
        s=200,
        c="gold",
        edgecolors="k",
        label="teacher",
    )
    ax.axhline(teacher_acc - 0.01, ls=":", c="gray", label="teacher - 1 point")
    ax.set_xscale("log")
    ax.set_xlabel("TFLite size (KB)")
    ax.set_ylabel("test accuracy")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    name = f"{FLAGS.results_name}{'.smoke' if FLAGS.smoke else ''}.png"
    atomic.write_bytes(os.path.join(common.RESULTS, name), buffer.getvalue())


if __name__ == "__main__":
    app.run(main)
