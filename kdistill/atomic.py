"""Atomic file writes: a temporary file beside the target, then a rename.

An interrupted write never leaves a truncated file at the target path: the
target holds either its old content or the complete new one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile


def ensure_directory(directory: str) -> str:
    """Creates `directory` if needed; raises a clear error if it is not writable.

    Raises:
        PermissionError: The directory cannot be created or written to.
    """
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as error:
        raise PermissionError(
            f"Cannot create the output directory {directory!r} ({error.strerror}). "
            "Choose a path in a directory you can write to."
        ) from error
    if not os.access(directory, os.W_OK):
        raise PermissionError(
            f"The output directory {directory!r} is not writable. Choose a path in "
            "a directory you can write to."
        )
    return directory


def _check_directory(path: str) -> str:
    return ensure_directory(os.path.dirname(os.path.abspath(path)))


def _umask() -> int:
    """The process's file-creation mask (read without changing it where possible)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere the only portable read is a set-and-restore
    os.umask(mask)
    return mask


def _plain_mode(path: str, default: int) -> int:
    """The mode a plain open/mkdir would leave at `path`: the old file's mode if
    one is there, otherwise `default` less the umask. (mkstemp and mkdtemp
    create their files private, 0600 and 0700.)"""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        return default & ~_umask()


def write_bytes(path: str, data: bytes) -> str:
    """Writes `data` to `path` atomically and returns the path.

    Example:
        >>> write_bytes("model.tflite", flatbuffer)
    """
    directory = _check_directory(path)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _plain_mode(path, 0o666))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    return path


def write_text(path: str, text: str) -> str:
    """Writes `text` (UTF-8) to `path` atomically and returns the path."""
    return write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def directory(path: str):
    """Yields a temporary directory that replaces `path` when the block ends.

    If the block raises, `path` keeps its old content and the temporary
    directory is removed.

    Example:
        >>> with directory("student_savedmodel") as tmp:
        ...     tf.saved_model.save(model, tmp)
    """
    parent = _check_directory(path)
    tmp = tempfile.mkdtemp(dir=parent, prefix=".tmp-")
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    try:
        os.chmod(tmp, _plain_mode(path, 0o777))
        if os.path.exists(path):
            old = tempfile.mkdtemp(dir=parent, prefix=".old-")
            os.rmdir(old)
            os.replace(path, old)
        os.replace(tmp, path)
    except BaseException:
        if old is not None and not os.path.exists(path):
            os.replace(old, path)  # the old content goes back where it was
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
