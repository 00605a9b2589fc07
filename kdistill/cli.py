"""The `kdistill` command line.

Usage:
  kdistill <command> [--flags]

Commands:
  compare   The main job: train students with several compression
            strategies, export each to TFLite, and report accuracy, size and
            latency side by side with the Pareto front and a recommendation.
  distill   Train a teacher, a student alone and a distilled student on a
            dataset, and print their test accuracy and teacher agreement.
  export    Convert a .keras model to TFLite (--model, --quantization,
            --output) and evaluate the file on the test data.
  evaluate  Evaluate a .tflite file (--tflite) on the test data: accuracy,
            size, gzip size and per-sample latency.

Run `kdistill <command> --helpfull` for every flag. The data flags
(--dataset, --data_path) are shared by all commands.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import sys
import tempfile

# TensorFlow reads its C++ log level once, when it loads: set it first (the user's
# own setting wins), so the terminal holds only what a user must act on. Importing
# kdistill does not load TensorFlow: `--help` never starts it, and a command loads it
# with `load_tensorflow`.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS

flags.DEFINE_enum(
    "dataset",
    "digits",
    ["digits", "mnist", "fashion_mnist", "cifar10"],
    "Built-in dataset; digits ships with scikit-learn and needs no download.",
)
flags.DEFINE_string(
    "data_path", None, "An .npz file with x_train, y_train, x_test, y_test; overrides --dataset."
)
flags.DEFINE_integer("seed", 0, "Random seed.")
flags.DEFINE_integer("teacher_epochs", 40, "Training epochs of the teacher.")
DEFAULT_EPOCHS = {"compare": 30, "distill": 40}
flags.DEFINE_integer(
    "epochs",
    None,
    "Training epochs of each student (default: "
    + ", ".join(f"{n} for {command}" for command, n in DEFAULT_EPOCHS.items())
    + ").",
)
flags.DEFINE_integer("batch_size", 32, "Batch size of the students.")
flags.DEFINE_float("learning_rate", 1e-2, "Adam learning rate of the students.")
flags.DEFINE_integer("student_width", 16, "Hidden width of the built-in student.")
flags.DEFINE_float("temperature", 4.0, "Soft-target temperature.")
flags.DEFINE_float("alpha", 0.1, "Weight of the hard-label loss in [0, 1].")
flags.DEFINE_integer("max_train", None, "Use at most this many training samples.")
flags.DEFINE_string("model", None, "export: the .keras model to convert.")
flags.DEFINE_enum(
    "quantization",
    "none",
    ["none", "dynamic", "float16", "int8"],
    "export: TFLite quantization mode.",
)
flags.DEFINE_string("output", None, "export: the .tflite path (default: beside --model).")
flags.DEFINE_integer(
    "representative_samples", 500, "export: training samples used to calibrate int8 quantization."
)
flags.DEFINE_string("teacher", None, "compare: a .keras teacher (default: train the built-in one).")
flags.DEFINE_string("student", None, "compare: a .keras student architecture (re-initialised).")
flags.DEFINE_list("student_widths", ["16", "64"], "compare: widths of the built-in students.")
flags.DEFINE_list(
    "strategies",
    None,
    "compare: strategy names (default: the standard set; "
    "see kdistill.compare.strategies), e.g. labels,kd_t4_a0.1,kd+prune80+int8.",
)
flags.DEFINE_integer(
    "workers", 1, "compare: worker processes running strategies in parallel (same results)."
)
flags.DEFINE_integer("repeats", 1, "compare: seeds per strategy (mean ± std).")
flags.DEFINE_float("max_size_kb", None, "compare: budget, largest .tflite size in KB.")
flags.DEFINE_float("max_latency_ms", None, "compare: budget, largest median latency per sample.")
flags.DEFINE_float("min_accuracy", None, "compare: budget, lowest test accuracy in [0, 1].")
flags.DEFINE_string("output_dir", None, "compare: output directory (default kdistill_runs/<time>).")
flags.DEFINE_string(
    "resume", None, "compare: an earlier run's directory; finished strategies are kept."
)
flags.DEFINE_string("tflite", None, "evaluate: the .tflite file to evaluate.")
flags.DEFINE_boolean(
    "unsafe_load",
    False,
    "Allow .keras files that run stored code (lambda layers) when loaded. "
    "This executes that code: use only for files you trust.",
)


_SEVERITY = {"I": 0, "W": 1, "E": 2, "F": 3}
_LOG_LINE = re.compile(r"^([IWEF])\d{4} ")


def load_tensorflow() -> None:
    """Imports TensorFlow and finds its devices, showing only lines at the log level.

    TensorFlow (2.20 and later) writes its start-up lines (oneDNN, CUDA
    drivers, CPU instructions) before it reads ``TF_CPP_MIN_LOG_LEVEL``. They
    are captured here and replayed filtered by that level; a failed cuInit
    is dropped too when TensorFlow found no CUDA driver to start with.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            from kdistill.backend import tf

            tf.config.list_physical_devices()
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            sys.stderr.write(startup_lines_to_show(captured.read().decode(errors="replace")))
            sys.stderr.flush()


def startup_lines_to_show(text: str, level: str | None = None) -> str:
    """The lines of TensorFlow's start-up output a user should see.

    Args:
        text: What TensorFlow wrote to stderr while loading.
        level: ``TF_CPP_MIN_LOG_LEVEL`` (default: the environment's): lines
            of lower severity (0 info, 1 warning, 2 error, 3 fatal) are
            dropped, with the lines that continue them.

    Returns:
        The lines kept, as one string.

    Example:
        >>> startup_lines_to_show("I0000 00:00:17.1 port.cc:153] oneDNN ...\n", "2")
        ''
    """
    level = os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") if level is None else level
    minimum = int(level) if level.strip().isdigit() else 0
    no_driver = "Could not find cuda drivers" in text
    kept, keep = [], True
    for line in text.splitlines(keepends=True):
        if line.startswith("WARNING: All log messages before absl::InitializeLog()"):
            continue  # absl's note on its own set-up, not a message
        match = _LOG_LINE.match(line)
        if match:
            keep = _SEVERITY[match.group(1)] >= minimum and not (
                no_driver and "failed call to cuInit" in line
            )
        if keep:
            kept.append(line)
    return "".join(kept)


def _distill(argv) -> int:
    from kdistill import data, models, training
    from kdistill.callbacks import EpochProgress
    from kdistill.losses import SoftTargetKD

    split = data.load(FLAGS.dataset, FLAGS.data_path, seed=FLAGS.seed, max_train=FLAGS.max_train)
    teacher_settings = training.FitSettings(epochs=FLAGS.teacher_epochs, seed=FLAGS.seed)
    settings = training.FitSettings(
        epochs=_epochs("distill"),
        batch_size=FLAGS.batch_size,
        learning_rate=FLAGS.learning_rate,
        seed=FLAGS.seed,
    )
    print(
        f"Data: {split.name}, {len(split.x_train)} train / {len(split.x_val)} val / "
        f"{len(split.x_test)} test samples, input {split.input_shape}"
    )
    teacher = training.fit_supervised(
        models.teacher_for(split.input_shape, split.num_classes),
        split,
        teacher_settings,
        callbacks=[EpochProgress("teacher")],
    )
    alone = training.fit_supervised(
        models.student_for(split.input_shape, split.num_classes, FLAGS.student_width),
        split,
        settings,
    )
    distiller = training.fit_distilled(
        teacher,
        models.student_for(split.input_shape, split.num_classes, FLAGS.student_width),
        split,
        settings,
        distillation_loss=SoftTargetKD(FLAGS.temperature),
        alpha=FLAGS.alpha,
    )
    teacher_logits = training.predict_logits(teacher, split.x_test)
    rows = [
        ("teacher", teacher),
        ("student alone", alone),
        ("student distilled", distiller.student),
    ]
    print(f"\n{'model':<20}{'params':>10}{'test accuracy':>16}{'teacher agreement':>20}")
    for name, model in rows:
        logits = training.predict_logits(model, split.x_test)
        print(
            f"{name:<20}{model.count_params():>10}{training.accuracy(logits, split.y_test):>16.4f}"
            f"{training.agreement(logits, teacher_logits):>20.4f}"
        )
    return 0


def _compare(argv) -> int:
    from kdistill import compare
    from kdistill.compare import pareto

    try:
        widths = [int(w) for w in FLAGS.student_widths]
    except ValueError as error:
        raise ValueError(f"--student_widths takes integers, e.g. 16,64 ({error}).") from error
    budget = pareto.Budget(FLAGS.max_size_kb, FLAGS.max_latency_ms, FLAGS.min_accuracy)
    compare.run(
        dataset=FLAGS.dataset,
        data_path=FLAGS.data_path,
        teacher=FLAGS.teacher,
        student=FLAGS.student,
        student_widths=widths,
        strategy_names=FLAGS.strategies,
        repeats=FLAGS.repeats,
        budget=budget,
        output_dir=FLAGS.output_dir,
        resume=FLAGS.resume,
        epochs=_epochs("compare"),
        teacher_epochs=FLAGS.teacher_epochs,
        seed=FLAGS.seed,
        max_train=FLAGS.max_train,
        unsafe_load=FLAGS.unsafe_load,
        workers=FLAGS.workers,
    )
    return 0


def _epochs(command: str) -> int:
    return DEFAULT_EPOCHS[command] if FLAGS.epochs is None else FLAGS.epochs


def _require(flag_name: str) -> str:
    value = getattr(FLAGS, flag_name)
    if not value:
        raise app.UsageError(f"--{flag_name} is required for this command.")
    return value


def _print_report(report: dict) -> None:
    for key, value in report.items():
        shown = f"{value:.4f}" if isinstance(value, float) else value
        print(f"  {key:<20}{shown}")


def _export(argv) -> int:
    from kdistill import data, export, saving, tflite

    model_path = _require("model")
    model = saving.load_model(model_path, unsafe=FLAGS.unsafe_load)
    split = data.load(FLAGS.dataset, FLAGS.data_path, seed=FLAGS.seed)
    output = FLAGS.output or f"{os.path.splitext(model_path)[0]}_{FLAGS.quantization}.tflite"
    info = export.to_tflite(
        model,
        output,
        FLAGS.quantization,
        representative_data=split.x_train[: FLAGS.representative_samples],
    )
    print(f"Wrote {output} ({info['size_bytes']} bytes, {info['gzip_size_bytes']} gzipped)")
    reference = model.predict(split.x_test, verbose=0)
    _print_report(
        tflite.evaluate_tflite(output, split.x_test, split.y_test, reference_logits=reference)
    )
    return 0


def _evaluate(argv) -> int:
    from kdistill import data, tflite

    path = _require("tflite")
    split = data.load(FLAGS.dataset, FLAGS.data_path, seed=FLAGS.seed)
    print(f"{path} on {split.name} ({len(split.x_test)} test samples):")
    _print_report(tflite.evaluate_tflite(path, split.x_test, split.y_test))
    return 0


COMMANDS = {"compare": _compare, "distill": _distill, "export": _export, "evaluate": _evaluate}


def main(argv) -> int:
    """Runs the command named in `argv[1]` (absl's flags already parsed); returns the exit code."""
    if len(argv) < 2 or argv[1] not in COMMANDS:
        given = argv[1] if len(argv) > 1 else "(none)"
        raise app.UsageError(
            f"Unknown or missing command {given}. Commands: {', '.join(COMMANDS)}."
        )
    load_tensorflow()
    try:
        return COMMANDS[argv[1]](argv[2:])
    except (ValueError, TypeError, FileNotFoundError, PermissionError) as error:
        # kdistill's errors say what to do; a traceback would bury that.
        print(f"kdistill {argv[1]}: error: {error}", file=sys.stderr)
        return 2


def run() -> None:
    """Console-script entry point."""
    # absl prints the __main__ module's docstring as the usage text.
    sys.modules["__main__"].__doc__ = __doc__
    # absl exits with status 1 after --help; asking for help is a success.
    for arg in sys.argv[1:]:
        if arg in ("-h", "--help", "-?", "--helpshort", "--helpfull"):
            app.usage(shorthelp=arg != "--helpfull", writeto_stdout=True, exitcode=0)
    app.run(main)


if multiprocessing.current_process().name != "MainProcess":
    # A worker process of `compare --workers N` runs the command's main module (this
    # one) before its job imports TensorFlow: load it quietly here too.
    load_tensorflow()

if __name__ == "__main__":
    run()
