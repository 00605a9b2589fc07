"""Distil a student on digits (or an MNIST-layout .npz) and export it four ways.

Trains a teacher and a distilled student, writes the student as TFLite in every
quantization mode, and prints a table of accuracy (measured on the .tflite
files), size and per-sample latency.

    python examples/distill_and_export.py                      # digits, offline
    python examples/distill_and_export.py --data_path path/to/mnist.npz
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from kdistill import data, export, models, tflite, training  # noqa: E402
from kdistill.losses import SoftTargetKD  # noqa: E402

flags.DEFINE_string("data_path", None, "An MNIST-layout .npz file; digits when unset.")
flags.DEFINE_string("output_dir", "exported", "Where the .tflite files go.")
flags.DEFINE_integer("epochs", 30, "Epochs for the teacher and the student.")
flags.DEFINE_integer("student_width", 32, "Hidden width of the student.")
flags.DEFINE_integer("max_train", None, "Use at most this many training samples.")
FLAGS = flags.FLAGS


def main(argv):
    split = data.load("digits", FLAGS.data_path, max_train=FLAGS.max_train)
    shape, classes = split.input_shape, split.num_classes
    teacher = training.fit_supervised(
        models.teacher_for(shape, classes), split, training.FitSettings(epochs=FLAGS.epochs)
    )
    distiller = training.fit_distilled(
        teacher,
        models.student_for(shape, classes, FLAGS.student_width),
        split,
        training.FitSettings(epochs=FLAGS.epochs, batch_size=32, learning_rate=1e-2),
        distillation_loss=SoftTargetKD(4.0),
        alpha=0.1,
    )
    student = distiller.student
    reference = training.predict_logits(student, split.x_test)
    header = f"{'model':<22}{'accuracy':>10}{'size KB':>10}{'gzip KB':>10}"
    print(f"\n{header}{'median ms':>11}{'p95 ms':>9}")
    for mode in export.QUANTIZATIONS:
        path = os.path.join(FLAGS.output_dir, f"student_{mode}.tflite")
        export.to_tflite(student, path, mode, representative_data=split.x_train[:500])
        r = tflite.evaluate_tflite(path, split.x_test, split.y_test, reference_logits=reference)
        print(
            f"{'student ' + mode:<22}{r['accuracy']:>10.4f}{r['size_bytes'] / 1024:>10.1f}"
            f"{r['gzip_size_bytes'] / 1024:>10.1f}{r['latency_ms_median']:>11.4f}"
            f"{r['latency_ms_p95']:>9.4f}"
        )


if __name__ == "__main__":
    app.run(main)
