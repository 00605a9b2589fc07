"""The whole compression chain, with the teacher guiding every stage.

teacher -> distilled student -> pruned while distilled -> quantization-aware
training while distilled (tf_keras only) -> TFLite int8, with a table of size
and accuracy at each stage (accuracies of .tflite rows are measured on the
files).

    python examples/prune_quantize_distill.py                         # Keras 3: no QAT stage
    TF_USE_LEGACY_KERAS=1 python examples/prune_quantize_distill.py   # tf_keras: with QAT
"""

import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from kdistill import backend, compression, data, export, models, tflite, training  # noqa: E402

flags.DEFINE_string("data_path", None, "An MNIST-layout .npz file; digits when unset.")
flags.DEFINE_integer("epochs", 30, "Epochs of each training stage.")
flags.DEFINE_integer("student_width", 64, "Hidden width of the student.")
flags.DEFINE_float("sparsity", 0.8, "Target sparsity of the pruning stage.")
flags.DEFINE_integer("max_train", None, "Use at most this many training samples.")
FLAGS = flags.FLAGS


def main(argv):
    split = data.load("digits", FLAGS.data_path, max_train=FLAGS.max_train)
    shape, classes = split.input_shape, split.num_classes
    settings = training.FitSettings(epochs=FLAGS.epochs, batch_size=32, learning_rate=1e-2)
    rows = []

    def keras_row(stage, model):
        logits = training.predict_logits(model, split.x_test)
        rows.append(
            (stage, model.count_params(), None, None, training.accuracy(logits, split.y_test))
        )

    def tflite_row(stage, model, mode):
        flatbuffer = export.convert(model, mode, representative_data=split.x_train[:500])
        report = tflite.evaluate_tflite(flatbuffer, split.x_test, split.y_test, latency_samples=0)
        rows.append(
            (
                stage,
                model.count_params(),
                len(flatbuffer),
                export.gzip_size(flatbuffer),
                report["accuracy"],
            )
        )
        return flatbuffer

    teacher = training.fit_supervised(
        models.teacher_for(shape, classes), split, training.FitSettings(epochs=FLAGS.epochs)
    )
    keras_row("teacher", teacher)
    tflite_row("teacher float32 .tflite", teacher, "none")

    distilled = training.fit_distilled(
        teacher, models.student_for(shape, classes, FLAGS.student_width), split, settings
    ).student
    keras_row("distilled student", distilled)
    tflite_row("distilled float32 .tflite", distilled, "none")

    pruned = compression.prune_over_training(
        distilled, FLAGS.sparsity, FLAGS.epochs, len(split.x_train), settings.batch_size
    )
    pruned = training.fit_distilled(
        teacher, pruned, split, settings, callbacks=compression.callbacks(pruned)
    ).student
    stripped = compression.strip(pruned)
    print(f"Sparsity after pruning: {compression.sparsity(stripped)['overall']:.3f}")
    keras_row(f"pruned {FLAGS.sparsity:.0%} + distilled", stripped)
    tflite_row("pruned int8 .tflite (PTQ)", stripped, "int8")

    if backend.LEGACY_KERAS:
        # Prune-preserving QAT: plain QAT would train the pruned zeros back in.
        aware = compression.quantize_aware(stripped, preserve_sparsity=True)
        fine_tune = training.fine_tuning(settings)  # a third of the epochs, lr / 5
        aware = training.fit_distilled(teacher, aware, split, fine_tune).student
        qat_file = tflite_row("pruned + QAT int8 .tflite", aware, "int8")
        print(f"Sparsity after QAT (int8 file): {tflite.weight_sparsity(qat_file)['overall']:.3f}")
    else:
        print(
            "QAT stage skipped: quantization-aware training needs tf_keras (TF_USE_LEGACY_KERAS=1)."
        )

    with tempfile.TemporaryDirectory() as folder:  # the final artefact, as a user would ship it
        export.to_tflite(
            stripped, os.path.join(folder, "student.tflite"), "int8", split.x_train[:500]
        )

    print(f"\n{'stage':<30}{'params':>9}{'tflite KB':>11}{'gzip KB':>9}{'accuracy':>10}")
    for stage, params, size, gz, accuracy in rows:
        kb = f"{size / 1024:.1f}" if size else "-"
        gkb = f"{gz / 1024:.1f}" if gz else "-"
        print(f"{stage:<30}{params:>9}{kb:>11}{gkb:>9}{accuracy:>10.4f}")
    print(f"(Keras: {backend.KERAS_NAME})")


if __name__ == "__main__":
    app.run(main)
