"""Keeps TensorFlow's native logging off the terminal around a C++ call.

The TFLite converter and the LiteRT interpreter write their progress from C++
straight to file descriptor 2 ("Ignored output_format", "fully_quantize: 0",
"Created TensorFlow Lite XNNPACK delegate"), past Python's `sys.stderr` and
past TF_CPP_MIN_LOG_LEVEL when it is set after TensorFlow starts. Nothing
there asks the user to act: the converter's real errors come back in its
exception, which this module lets through untouched.

TensorFlow's own start-up lines (oneDNN, CUDA drivers, CPU instructions) come
before it reads TF_CPP_MIN_LOG_LEVEL: `load_tensorflow` captures them and
shows only those at the log level. TensorFlow is imported only inside it, so
importing this module (and the command line) does not start TensorFlow.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import warnings

# Python warnings the converter raises on every int8 conversion; they ask
# nothing of the user (kdistill passes float inputs and calibrates them).
_CHATTER = ("Statistics for quantized inputs were expected",)


@contextlib.contextmanager
def native_logs():
    """Hides native stderr output and absl logging below ERROR for the block.

    File descriptor 2 points at the null device for the duration and is
    restored afterwards, also when the block raises; the exception and its
    message reach the caller unchanged. Python warnings raised in the block
    are issued again after it (through the filters in force), except the
    converter's known chatter.

    Example:
        >>> with native_logs():
        ...     flatbuffer = converter.convert()
    """
    from absl import logging as absl_logging

    previous = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.ERROR)
    saved = _silence_fd(2)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")
            yield
    finally:
        _restore_fd(2, saved)
        absl_logging.set_verbosity(previous)
    for warning in caught:
        if not any(text in str(warning.message) for text in _CHATTER):
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )


def _silence_fd(fd: int) -> int | None:
    _flush()
    try:
        saved = os.dup(fd)
    except OSError:  # no such descriptor (a detached process): nothing to hide
        return None
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, fd)
    os.close(null)
    return saved


def _restore_fd(fd: int, saved: int | None) -> None:
    if saved is None:
        return
    _flush()
    os.dup2(saved, fd)
    os.close(saved)


def _flush() -> None:
    # Text buffered before the switch belongs to the terminal, after it to nothing.
    with contextlib.suppress(Exception):  # a closed or replaced sys.stderr
        sys.stderr.flush()


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
