"""Keeps TensorFlow's native logging off the terminal around a C++ call.

The TFLite converter and the LiteRT interpreter write their progress from C++
straight to file descriptor 2 ("Ignored output_format", "fully_quantize: 0",
"Created TensorFlow Lite XNNPACK delegate"), past Python's `sys.stderr` and
past TF_CPP_MIN_LOG_LEVEL when it is set after TensorFlow starts. Nothing
there asks the user to act: the converter's real errors come back in its
exception, which this module lets through untouched.
"""

from __future__ import annotations

import contextlib
import os
import sys
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
