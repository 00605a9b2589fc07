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
  explain   What compression cost: per-class agreement, calibration and
            the disagreements of --student (.keras or .tflite) against
            --teacher (.keras) on the test data, in pictures (--output_dir).

Run `kdistill <command> --helpfull` for every flag. The data flags
(--dataset, --data_path) are shared by all commands.
"""

from __future__ import annotations

import multiprocessing
import os
import sys

# TensorFlow reads its C++ log level once, when it loads: set it first (the user's
# own setting wins), so the terminal holds only what a user must act on. Importing
# kdistill does not load TensorFlow: `--help` never starts it, and a command loads it
# with `load_tensorflow`.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from kdistill.cli_checks import (  # noqa: E402
    _MISUSE,
    UsageError,
    WorkFailed,
    _error,
    _export_output,
    _student_widths,
    check_flags,
)
from kdistill.cli_explain import explain as _explain  # noqa: E402
from kdistill.quiet import load_tensorflow  # noqa: E402

FLAGS = flags.FLAGS

flags.DEFINE_enum(
    "dataset",
    "digits",
    ["digits", "mnist", "fashion_mnist", "cifar10"],
    "Built-in dataset; digits ships with scikit-learn and needs no download.",
)
flags.DEFINE_string(
    "data_path",
    None,
    "An .npz file with x_train, y_train, x_test, y_test; overrides --dataset. For a model "
    "with several inputs (export, evaluate), store x_train:<input name> and x_test:<input name>.",
)
flags.DEFINE_integer("seed", 0, "Random seed.")
flags.DEFINE_integer(
    "teacher_epochs",
    None,
    "Training epochs of the teacher (default: 40; compare: 15 for 10,000 training samples "
    "and more).",
)
DEFAULT_EPOCHS = {"compare": 30, "distill": 40}
flags.DEFINE_integer(
    "epochs",
    None,
    "Training epochs of each student (default: "
    + ", ".join(f"{n} for {command}" for command, n in DEFAULT_EPOCHS.items())
    + "; compare: 15 for 10,000 training samples and more).",
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
flags.DEFINE_string(
    "teacher",
    None,
    "compare, explain: a .keras teacher (compare's default: train the built-in one).",
)
flags.DEFINE_string(
    "student",
    None,
    "compare: a .keras student architecture (re-initialised); explain: a .keras or .tflite file.",
)
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
flags.DEFINE_integer(
    "latency_samples", 100, "compare: test samples timed for each model's latency."
)
flags.DEFINE_float("max_size_kb", None, "compare: budget, largest .tflite size in KB.")
flags.DEFINE_float("max_latency_ms", None, "compare: budget, largest median latency per sample.")
flags.DEFINE_float("min_accuracy", None, "compare: budget, lowest test accuracy in [0, 1].")
flags.DEFINE_string(
    "output_dir",
    None,
    "compare: output directory (default kdistill_runs/<time>); explain: default <student>_explain.",
)
flags.DEFINE_string(
    "resume",
    None,
    "compare: an earlier run's directory; finished strategies are kept. The settings "
    "that define the run (data, teacher, students, epochs, seed, ...) must be the same.",
)
flags.DEFINE_boolean(
    "overwrite",
    False,
    "compare: replace the run in --output_dir (its results and models are deleted).",
)
flags.DEFINE_enum(
    "search",
    "auto",
    ["auto", "halving", "exhaustive"],
    "compare: halving trains every strategy for a quarter of the epochs, continues those that "
    "can still reach the Pareto front on validation accuracy and stops each student early; "
    "exhaustive trains every strategy for all epochs; auto halves for 10,000 training samples "
    "and more.",
)
flags.DEFINE_integer(
    "patience", 3, "compare: epochs without a validation gain before a student stops (halving)."
)
flags.DEFINE_string(
    "teacher_cache",
    None,
    "compare: folder of built-in teachers from earlier runs, reused on the same data, "
    "architecture, epochs and seed (default: $KDISTILL_CACHE_DIR/teachers, else "
    "~/.cache/kdistill/teachers); 'none' turns the cache off.",
)
flags.DEFINE_boolean(
    "retrain_teacher", False, "compare: train the built-in teacher even if the cache holds it."
)
flags.DEFINE_string("tflite", None, "evaluate: the .tflite file to evaluate.")
flags.DEFINE_boolean(
    "unsafe_load",
    False,
    "Allow .keras files that run stored code (lambda layers) when loaded. "
    "This executes that code: use only for files you trust.",
)
flags.DEFINE_boolean(
    "debug", False, "Show the traceback of an unexpected error instead of one line."
)


def _distill(argv) -> int:
    from kdistill import data, models, training
    from kdistill.callbacks import EpochProgress
    from kdistill.losses import SoftTargetKD

    split = data.load(FLAGS.dataset, FLAGS.data_path, seed=FLAGS.seed, max_train=FLAGS.max_train)
    teacher_settings = training.FitSettings(epochs=FLAGS.teacher_epochs or 40, seed=FLAGS.seed)
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

    budget = pareto.Budget(FLAGS.max_size_kb, FLAGS.max_latency_ms, FLAGS.min_accuracy)
    result = compare.run(
        dataset=FLAGS.dataset,
        data_path=FLAGS.data_path,
        teacher=FLAGS.teacher,
        student=FLAGS.student,
        student_widths=_student_widths(),
        strategy_names=FLAGS.strategies,
        repeats=FLAGS.repeats,
        budget=budget,
        output_dir=FLAGS.output_dir,
        resume=FLAGS.resume,
        overwrite=FLAGS.overwrite,
        epochs=FLAGS.epochs,
        teacher_epochs=FLAGS.teacher_epochs,
        search_mode=FLAGS.search,
        patience=FLAGS.patience,
        teacher_cache_dir=_teacher_cache(),
        retrain_teacher=FLAGS.retrain_teacher,
        batch_size=FLAGS.batch_size,
        learning_rate=FLAGS.learning_rate,
        seed=FLAGS.seed,
        max_train=FLAGS.max_train,
        latency_samples=FLAGS.latency_samples,
        unsafe_load=FLAGS.unsafe_load,
        workers=FLAGS.workers,
    )
    failed = [r for r in result.records if r["status"] == "failed"]
    if failed:
        names = ", ".join(f"{r['strategy']} ({r['student']})" for r in failed)
        raise WorkFailed(
            f"{len(failed)} of {len(result.records)} strategies failed: {names}; the first: "
            f"{failed[0].get('error', '')[:300]}. They are recorded as failed in "
            f"{result.output_dir}/results.json and never recommended; fix the cause and rerun "
            f"with --resume {result.output_dir} to retry them."
        )
    return 0


def _teacher_cache() -> str | None:
    from kdistill.compare import teacher_cache

    if FLAGS.teacher_cache and FLAGS.teacher_cache.lower() == "none":
        return None
    return FLAGS.teacher_cache or teacher_cache.default_directory()


def _epochs(command: str) -> int:
    return DEFAULT_EPOCHS[command] if FLAGS.epochs is None else FLAGS.epochs


def _print_report(report: dict) -> None:
    for key, value in report.items():
        shown = f"{value:.4f}" if isinstance(value, float) else value
        print(f"  {key:<20}{shown}")


def _export(argv) -> int:
    from kdistill import data, export, saving, tflite

    model_path = FLAGS.model
    model = saving.load_model(model_path, unsafe=FLAGS.unsafe_load)
    split = data.load(FLAGS.dataset, FLAGS.data_path, seed=FLAGS.seed, several_inputs=True)
    output = _export_output()
    info = export.to_tflite(
        model,
        output,
        FLAGS.quantization,
        representative_data=data.take(split.x_train, slice(FLAGS.representative_samples)),
    )
    print(f"Wrote {output} ({info['size_bytes']} bytes, {info['gzip_size_bytes']} gzipped)")
    reference = model.predict(split.x_test, verbose=0)
    _print_report(
        tflite.evaluate_tflite(output, split.x_test, split.y_test, reference_logits=reference)
    )
    return 0


def _evaluate(argv) -> int:
    from kdistill import data, tflite

    path = FLAGS.tflite
    split = data.load(FLAGS.dataset, FLAGS.data_path, seed=FLAGS.seed, several_inputs=True)
    print(f"{path} on {split.name} ({data.count(split.x_test)} test samples):")
    _print_report(tflite.evaluate_tflite(path, split.x_test, split.y_test))
    return 0


COMMANDS = {
    "compare": _compare,
    "distill": _distill,
    "export": _export,
    "evaluate": _evaluate,
    "explain": _explain,
}


def _command_in(argv) -> str | None:
    """The command word of `argv` (flags may come before it), if there is one."""
    for arg in argv[1:]:
        if arg in COMMANDS:
            return arg
    return argv[1] if len(argv) > 1 and not argv[1].startswith("-") else None


def parse_flags(argv) -> list:
    """absl's flag parsing, with a bad flag reported as one line and exit 2."""
    try:
        return FLAGS(argv)
    except flags.Error as error:
        command = _command_in(argv)
        sys.exit(
            _error(
                command,
                f"{error}. Run `kdistill {command or '<command>'} --helpfull` for every flag.",
                2,
            )
        )


def main(argv) -> int:
    """Runs the command named in `argv[1]` (absl's flags already parsed); returns the exit code.

    Errors are one line on stderr, `kdistill <command>: error: <message>`:
    exit 2 when what was given is wrong (a flag, a file, the data, settings a
    resumed run does not match), 1 when the work failed (a strategy, a worker
    process, the disk). An unexpected error also gets one line, unless
    --debug asks for its traceback.
    """
    if len(argv) < 2 or argv[1] not in COMMANDS:
        given = argv[1] if len(argv) > 1 else "(none)"
        return _error(
            None,
            f"Unknown or missing command {given}. Commands: {', '.join(COMMANDS)}. "
            "Run `kdistill --help` for what each does.",
            2,
        )
    command = argv[1]
    try:
        check_flags(command)
    except UsageError as error:
        return _error(command, str(error), 2)
    load_tensorflow()
    try:
        return COMMANDS[command](argv[2:])
    except _MISUSE as error:
        # kdistill's errors say what to do; a traceback would bury that.
        return _error(command, str(error), 2)
    except (WorkFailed, RuntimeError, ArithmeticError, OSError) as error:
        return _error(command, str(error), 1)
    except Exception as error:
        if FLAGS.debug:
            raise
        return _error(
            command,
            f"{type(error).__name__}: {error} (an unexpected error; rerun with --debug for "
            "the traceback, and please report it)",
            1,
        )


def run() -> None:
    """Console-script entry point."""
    # absl prints the __main__ module's docstring as the usage text.
    sys.modules["__main__"].__doc__ = __doc__
    # absl exits with status 1 after --help; asking for help is a success.
    for arg in sys.argv[1:]:
        if arg in ("-h", "--help", "-?", "--helpshort", "--helpfull"):
            app.usage(shorthelp=arg != "--helpfull", writeto_stdout=True, exitcode=0)
    app.run(main, flags_parser=parse_flags)


if multiprocessing.current_process().name != "MainProcess":
    # A worker process of `compare --workers N` runs the command's main module (this
    # one) before its job imports TensorFlow: load it quietly here too.
    load_tensorflow()

if __name__ == "__main__":
    run()
