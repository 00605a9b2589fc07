"""The `kdistill` command line's flag checks and one-line errors.

Every flag a command uses is checked here before any work starts (and before
TensorFlow loads), so a wrong value costs the user a second, not a training
run. Errors are one line on stderr, `kdistill <command>: error: <what and how
to fix>`: exit 2 when what was given is wrong, 1 when the work failed.

The flags themselves are defined in `kdistill.cli`; absl's `flags.FLAGS` is
one global object, read here when a check runs.
"""

from __future__ import annotations

import math
import os
import sys

from absl import flags

from kdistill import atomic

FLAGS = flags.FLAGS


class UsageError(ValueError):
    """The command line is wrong (a flag's value, a missing flag): exit 2."""


class WorkFailed(RuntimeError):
    """The work ran but failed (a strategy, a worker process): exit 1."""


# What the user gave is wrong (kdistill's own checks raise these): exit 2. Everything
# else failed during the work: exit 1.
_MISUSE = (
    ValueError,
    TypeError,
    FileNotFoundError,
    FileExistsError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
)


def one_line(message: str) -> str:
    """`message` with its lines joined by spaces, for a one-line error."""
    return " ".join(line.strip() for line in str(message).splitlines() if line.strip())


def _error(command: str | None, message: str, code: int) -> int:
    prefix = f"kdistill {command}" if command else "kdistill"
    print(f"{prefix}: error: {one_line(message)}", file=sys.stderr, flush=True)
    return code


def _invalid(flag: str, expected: str, value=None) -> UsageError:
    shown = getattr(FLAGS, flag) if value is None else value
    if isinstance(shown, list):
        shown = ",".join(shown)
    return UsageError(
        f"Invalid value for --{flag}. Expected {expected}. Received: --{flag}={shown}"
    )


def _check_integer(flag: str, minimum: int) -> None:
    value = getattr(FLAGS, flag)
    if value is not None and value < minimum:
        raise _invalid(flag, f"an integer >= {minimum}")


def _check_number(flag: str, low: float, high: float | None = None, low_inclusive=False) -> None:
    value = getattr(FLAGS, flag)
    if value is None:
        return
    if high is not None:
        ok = math.isfinite(value) and low <= value <= high
        expected = f"a number in [{low:g}, {high:g}]"
    else:
        ok = math.isfinite(value) and (value >= low if low_inclusive else value > low)
        expected = "a positive finite number" if low == 0 else f"a finite number > {low:g}"
    if not ok:
        raise _invalid(flag, expected)


def _student_widths() -> list:
    try:
        widths = [int(w) for w in FLAGS.student_widths]
    except ValueError:
        widths = []
    if not widths or min(widths) < 1:
        raise _invalid("student_widths", "positive integers separated by commas, e.g. 16,64")
    return widths


def _file_under_a_file(path: str) -> str | None:
    """The existing file among `path`'s parent directories, if any."""
    parent = os.path.dirname(os.path.abspath(path))
    while parent and not os.path.exists(parent):
        parent = os.path.dirname(parent)
    return parent if parent and not os.path.isdir(parent) else None


def _check_input_file(flag: str, what: str, must_exist: bool = False) -> None:
    path = getattr(FLAGS, flag)
    if path and os.path.isdir(path):
        raise UsageError(
            f"Invalid value for --{flag}: {path!r} is a directory. Pass the path of {what}."
        )
    if path and must_exist and not os.path.exists(path):
        raise UsageError(
            f"Invalid value for --{flag}: no file at {path!r}. Pass the path of {what}."
        )


def _check_output_path(flag: str, path: str | None, what: str) -> None:
    if not path:
        return
    blocker = _file_under_a_file(path)
    if blocker:
        raise UsageError(
            f"Invalid value for --{flag}: {path!r} lies under {blocker!r}, which is a file, "
            f"not a directory. Choose another path for {what}."
        )
    if what.startswith("a directory"):
        if os.path.exists(path) and not os.path.isdir(path):
            raise UsageError(
                f"Invalid value for --{flag}: {path!r} is a file. Pass {what} (a new one "
                "or an earlier run's)."
            )
    elif os.path.isdir(path):
        raise UsageError(
            f"Invalid value for --{flag}: {path!r} is a directory. Pass {what}, e.g. "
            f"{os.path.join(path, 'model.tflite')!r}."
        )


def _require(flag_name: str) -> str:
    value = getattr(FLAGS, flag_name)
    if not value:
        raise UsageError(f"--{flag_name} is required for this command.")
    return value


def _export_output() -> str:
    return FLAGS.output or f"{os.path.splitext(FLAGS.model)[0]}_{FLAGS.quantization}.tflite"


def check_flags(command: str) -> None:
    """Checks the flags `command` uses before any work (and before TensorFlow loads).

    Raises:
        UsageError: A flag's value is invalid; the message names the flag.
    """
    _check_integer("seed", 0)
    _check_integer("max_train", 1)
    _check_input_file("data_path", "an .npz file with x_train, y_train, x_test, y_test")
    if command in ("compare", "distill"):
        _check_integer("epochs", 1)
        _check_integer("teacher_epochs", 1)
        _check_integer("batch_size", 1)
        _check_number("learning_rate", 0)
    if command == "distill":
        _check_integer("student_width", 1)
        _check_number("temperature", 0)
        _check_number("alpha", 0.0, 1.0)
    if command == "compare":
        _student_widths()
        for flag in ("repeats", "workers", "latency_samples", "patience"):
            _check_integer(flag, 1)
        _check_number("max_size_kb", 0)
        _check_number("max_latency_ms", 0)
        _check_number("min_accuracy", 0.0, 1.0)
        for flag in ("teacher", "student"):
            _check_input_file(flag, "a .keras file", must_exist=True)
        _check_run_flags()
    if command == "export":
        _require("model")
        _check_input_file("model", "a .keras file")
        if FLAGS.quantization == "int8":
            _check_integer("representative_samples", 1)
        _check_output_path("output", _export_output(), "a .tflite file path")
    if command == "evaluate":
        _require("tflite")
        _check_input_file("tflite", "a .tflite file")
    if command == "explain":
        from kdistill.cli_explain import check_explain_flags

        check_explain_flags()


def _check_run_flags() -> None:
    resume, output_dir = FLAGS.resume, FLAGS.output_dir
    try:
        atomic.check_run_arguments(resume, output_dir, FLAGS.overwrite)
    except ValueError as error:
        raise UsageError(str(error)) from None
    _check_output_path("output_dir", output_dir, "a directory for the run")
