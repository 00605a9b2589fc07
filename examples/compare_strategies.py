"""Compare compression strategies from Python, with a size budget.

    python examples/compare_strategies.py                     # digits, about 1 minute
    python examples/compare_strategies.py --data_path path/to/mnist.npz --max_train 10000

Prints the table and the recommendation, and leaves results.json, report.md
and pareto.png in --output_dir.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from kdistill import compare  # noqa: E402
from kdistill.compare import pareto  # noqa: E402

flags.DEFINE_string("data_path", None, "An MNIST-layout .npz file; digits when unset.")
flags.DEFINE_string("output_dir", "kdistill_runs/example", "Where results go.")
flags.DEFINE_bool("overwrite", False, "Replace an earlier run in --output_dir.")
flags.DEFINE_integer("epochs", 20, "Student epochs.")
flags.DEFINE_integer("max_train", None, "Use at most this many training samples.")
flags.DEFINE_float("max_size_kb", 8.0, "Size budget of the shipped .tflite file.")
FLAGS = flags.FLAGS


def main(argv):
    result = compare.run(
        data_path=FLAGS.data_path,
        student_widths=[16, 64],
        strategy_names=["labels", "kd_t4_a0.1", "kd+int8", "kd+prune80+int8"],
        budget=pareto.Budget(max_size_kb=FLAGS.max_size_kb),
        epochs=FLAGS.epochs,
        teacher_epochs=FLAGS.epochs,
        max_train=FLAGS.max_train,
        output_dir=FLAGS.output_dir,
        overwrite=FLAGS.overwrite,
        verbose=False,
    )
    front = [r for r in result.records if r["pareto"]]
    print(f"{len(result.records)} runs, {len(front)} on the Pareto front:")
    for r in sorted(front, key=lambda r: r["tflite_size_bytes"]):
        print(
            f"  {r['strategy']:<18} {r['student']:<4} {r['tflite_size_bytes'] / 1024:6.1f} KB  "
            f"accuracy {r['accuracy']:.4f}"
        )
    print(result.recommendation["message"])


if __name__ == "__main__":
    app.run(main)
