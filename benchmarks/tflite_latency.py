"""Export speed: per-sample latency and size of teacher and students.

Keras models called on one sample, eagerly (`model(x)`) and as one compiled
XLA function, against their float32, float16, dynamic-range and int8 TFLite
files (LiteRT interpreter, batch 1): median and p95 latency per sample, file
size and gzip size. TensorFlow and the interpreter both run on `--threads`
threads (default 1), set before TensorFlow starts, so training runs on them too.

    python benchmarks/tflite_latency.py --data_path path/to/mnist.npz
    python benchmarks/tflite_latency.py --smoke
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import common  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from kdistill import export, models, tflite, training  # noqa: E402
from kdistill.backend import tf  # noqa: E402

flags.DEFINE_string("data_path", None, "MNIST-layout .npz (default: digits).")
flags.DEFINE_boolean("smoke", False, "Tiny sizes: checks the script runs.")
flags.DEFINE_integer("samples", 500, "Samples timed per model.")
flags.DEFINE_integer("epochs", 3, "Training epochs (latency does not depend on them).")
flags.DEFINE_list("ratios", ["3", "10", "100"], "Teacher/student parameter ratios of the students.")
flags.DEFINE_integer("threads", 1, "TensorFlow and TFLite interpreter threads.")
FLAGS = flags.FLAGS


def keras_latency(model, x, samples, compiled=False):
    """Median and p95 ms of one call on one sample: eager, or one XLA function."""

    def fn(sample):
        return model(sample, training=False)

    if compiled:
        fn = tf.function(fn, jit_compile=True)
    timings = []
    for i in range(samples + 10):
        sample = x[i % len(x)][None, ...]
        start = time.perf_counter()
        np.asarray(fn(sample))
        if i >= 10:
            timings.append((time.perf_counter() - start) * 1e3)
    return float(np.median(timings)), float(np.percentile(timings, 95))


def main(argv):
    # Before any TensorFlow operation runs; fixed for the process afterwards.
    tf.config.threading.set_intra_op_parallelism_threads(FLAGS.threads)
    tf.config.threading.set_inter_op_parallelism_threads(FLAGS.threads)
    started = time.perf_counter()
    split = common.load(FLAGS.data_path, FLAGS.smoke, max_train=None if not FLAGS.smoke else 256)
    samples = 20 if FLAGS.smoke else FLAGS.samples
    settings = training.FitSettings(epochs=1 if FLAGS.smoke else FLAGS.epochs)
    shape, classes = split.input_shape, split.num_classes
    teacher = models.teacher_for(shape, classes)
    candidates = {"teacher": teacher}
    ratios = [float(r) for r in (FLAGS.ratios[:2] if FLAGS.smoke else FLAGS.ratios)]
    for ratio in ratios:
        width = common.student_width_for_ratio(shape, classes, teacher.count_params(), ratio)
        candidates[f"student 1/{ratio:g}"] = models.student_for(shape, classes, width)
    rows = []
    for name, model in candidates.items():
        training.fit_supervised(model, split, settings)
        for compiled in (False, True):
            median, p95 = keras_latency(model, split.x_test, samples, compiled)
            rows.append(
                {
                    "model": name,
                    "format": "keras xla" if compiled else "keras",
                    "params": int(model.count_params()),
                    "latency_ms_median": median,
                    "latency_ms_p95": p95,
                }
            )
        for mode in export.QUANTIZATIONS:
            flatbuffer = export.convert(model, mode, representative_data=split.x_train[:300])
            report = tflite.evaluate_tflite(
                flatbuffer,
                split.x_test,
                split.y_test,
                latency_samples=samples,
                num_threads=FLAGS.threads,
            )
            rows.append(
                {
                    "model": name,
                    "format": f"tflite {mode}",
                    "params": int(model.count_params()),
                    **report,
                }
            )
    print(
        f"{'model':<14}{'format':<16}{'params':>9}{'KB':>9}{'gzip KB':>9}"
        f"{'accuracy':>9}{'median ms':>11}{'p95 ms':>9}"
    )
    for r in rows:
        kb = f"{r['size_bytes'] / 1024:.1f}" if "size_bytes" in r else "-"
        gz = f"{r['gzip_size_bytes'] / 1024:.1f}" if "gzip_size_bytes" in r else "-"
        accuracy = f"{r['accuracy']:.4f}" if "accuracy" in r else "-"
        print(
            f"{r['model']:<14}{r['format']:<16}{r['params']:>9}{kb:>9}{gz:>9}{accuracy:>9}"
            f"{r['latency_ms_median']:>11.4f}{r['latency_ms_p95']:>9.4f}"
        )
    common.write(
        "tflite_latency",
        {
            "data": split.name,
            "samples_timed": samples,
            "ratios": ratios,
            "threads": FLAGS.threads,
            "rows": rows,
            "wall_seconds": time.perf_counter() - started,
        },
        FLAGS.smoke,
    )


if __name__ == "__main__":
    app.run(main)
