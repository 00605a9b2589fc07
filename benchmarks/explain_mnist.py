"""What does compression to 1/100 cost on MNIST, per class and in calibration?

The frontier's teacher (`compression_frontier.train_teacher`: a small CNN,
inputs shifted by up to 2 pixels, cosine-decayed learning rate) and its 1/100
student (the built-in student whose parameter count is closest to 1/100 of
the teacher's), trained on labels alone and distilled (offline, SoftTargetKD
T=4, alpha 0.1), each exported to float32 and int8 `.tflite`. For each file
`kdistill.analysis` measures on the 10,000 test images: accuracy, the expected
calibration error (15 bins), agreement with the teacher, and the per-class
accuracy drop against the teacher. The pictures of the float32 students go to
benchmarks/results/explain_mnist/{alone,distilled}/.

Flags are compression_frontier.py's (imported, so both use one teacher
recipe): --data_path, --teacher_epochs, --epochs, --smoke and --seeds (one
pair of students per seed; the pictures are of the first seed's). The teacher
always uses seed 0.

    python benchmarks/explain_mnist.py --data_path path/to/mnist.npz \
        --teacher_epochs 8 --epochs 12 --seeds 0,1,2
    python benchmarks/explain_mnist.py --smoke
"""

from __future__ import annotations

import itertools
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import common  # noqa: E402
import compression_frontier  # noqa: E402  (defines the flags used here)
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from kdistill import analysis, cache_teacher_outputs, export, models, training  # noqa: E402
from kdistill.backend import keras  # noqa: E402
from kdistill.losses import SoftTargetKD  # noqa: E402

FLAGS = flags.FLAGS
RATIO = 100.0
NAME = "explain_mnist"


def load_average() -> list:
    """The 1, 5 and 15 minute load averages (what `uptime` prints)."""
    with open("/proc/loadavg") as f:
        return [float(v) for v in f.read().split()[:3]]


def main(argv):
    started, load_before = time.perf_counter(), load_average()
    split = common.load(FLAGS.data_path, FLAGS.smoke)
    teacher_epochs = 1 if FLAGS.smoke else FLAGS.teacher_epochs
    epochs = 1 if FLAGS.smoke else FLAGS.epochs
    seeds = [int(seed) for seed in FLAGS.seeds]
    shape, classes = split.input_shape, split.num_classes
    keras.utils.set_random_seed(0)
    teacher = compression_frontier.train_teacher(split, teacher_epochs)
    teacher_test = training.predict_logits(teacher, split.x_test)
    print(f"teacher trained: {time.perf_counter() - started:.0f}s", flush=True)
    cached = cache_teacher_outputs(teacher, split.x_train, batch_size=1000)
    width = common.student_width_for_ratio(shape, classes, teacher.count_params(), RATIO)
    pictures = os.path.join(common.RESULTS, NAME + (".smoke" if FLAGS.smoke else ""))
    rows, teacher_row = [], None
    for seed, strategy in itertools.product(seeds, ("alone", "distilled")):
        keras.utils.set_random_seed(seed)
        student = models.student_for(shape, classes, width)
        settings = training.FitSettings(epochs=epochs, batch_size=32, learning_rate=3e-3, seed=seed)
        if strategy == "alone":
            training.fit_supervised(student, split, settings)
        else:
            training.fit_distilled(
                teacher, student, split, settings, SoftTargetKD(4.0), 0.1,
                teacher_outputs=cached, validate=False,
            )  # fmt: skip
        for mode in ("none", "int8"):
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "student.tflite")
                export.to_tflite(student, path, mode, representative_data=split.x_train[:500])
                outputs = analysis.model_outputs(path, split.x_test)
            result = analysis.explain_outputs(teacher_test, outputs, split.y_test)
            if mode == "none" and seed == seeds[0]:
                analysis.write_explanation(
                    result,
                    os.path.join(pictures, strategy),
                    split.x_test,
                    {"teacher": "compression_frontier teacher", "student": f"1/100 {strategy}"},
                )
            summary = result.summary()
            teacher_row = {
                "params": int(teacher.count_params()),
                "accuracy": summary["teacher_accuracy"],
                "ece": summary["teacher_ece"],
            }
            drops = {
                c["class"]: c["teacher_accuracy"] - c["student_accuracy"]
                for c in summary["per_class"]
            }
            rows.append(
                {
                    "student": f"1/{RATIO:g} (width {width})",
                    "params": int(student.count_params()),
                    "strategy": strategy,
                    "seed": seed,
                    "tflite": "float32" if mode == "none" else "int8",
                    "accuracy": summary["student_accuracy"],
                    "ece": summary["student_ece"],
                    "agreement": summary["agreement"],
                    "classes_lost": result.classes_lost(3),
                    "per_class_accuracy_drop": drops,
                }
            )
            shown = ("strategy", "seed", "tflite", "accuracy", "ece")
            print({k: rows[-1][k] for k in shown}, flush=True)
    common.write(
        NAME,
        {
            "teacher": teacher_row,
            "rows": rows,
            "means": mean_over_seeds(rows),
            "settings": {
                "teacher": "compression_frontier.train_teacher, seed 0",
                "teacher_epochs": teacher_epochs,
                "epochs": epochs,
                "seeds": seeds,
                "pictures_seed": seeds[0],
                "ratio": RATIO,
                "distillation": "offline SoftTargetKD T=4, alpha 0.1",
                "ece_bins": analysis.ECE_BINS,
                "pictures": os.path.relpath(pictures, common.RESULTS),
            },
            "load_average_before": load_before,
            "load_average_after": load_average(),
            "wall_seconds": time.perf_counter() - started,
        },
        FLAGS.smoke,
    )


def mean_over_seeds(rows) -> list:
    """One entry per (strategy, file): means and stds over seeds, classes lost by mean drop.

    Returns:
        Dicts with `strategy`, `tflite`, `seeds`, `accuracy_mean`/`_std`,
        `ece_mean`/`_std`, `agreement_mean`, `per_class_accuracy_drop_mean` and
        `classes_lost` (the 3 largest mean drops, in points).
    """
    groups = {}
    for row in rows:
        groups.setdefault((row["strategy"], row["tflite"]), []).append(row)
    means = []
    for (strategy, tflite_kind), group in groups.items():
        drops = {
            name: float(np.mean([r["per_class_accuracy_drop"][name] for r in group]))
            for name in group[0]["per_class_accuracy_drop"]
        }
        means.append(
            {
                "strategy": strategy,
                "tflite": tflite_kind,
                "seeds": len(group),
                **{
                    f"{key}_{stat}": float(fn([r[key] for r in group]))
                    for key in ("accuracy", "ece")
                    for stat, fn in (("mean", np.mean), ("std", np.std))
                },
                "agreement_mean": float(np.mean([r["agreement"] for r in group])),
                "per_class_accuracy_drop_mean": drops,
                "classes_lost": sorted(drops, key=lambda name: -drops[name])[:3],
            }
        )
    return means


if __name__ == "__main__":
    app.run(main)
