"""Atomic file writes, and a lock that gives a run directory one writer.

An interrupted write never leaves a truncated file at the target path: the
target holds either its old content or the complete new one.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import shutil
import socket
import sys
import tempfile
import time

LOCK_FILE = ".lock"
"""The lock file `run_directory_lock` creates in a run directory."""


class DirectoryLockedError(FileExistsError):
    """Another live process holds a run directory's lock."""


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


def check_run_arguments(resume: str | None, output_dir: str | None, overwrite: bool) -> None:
    """Refuses `resume`/`output_dir`/`overwrite` combinations that cannot mean one run.

    Shared by `kdistill.compare.run` and the command line (which checks before
    TensorFlow loads).

    Raises:
        ValueError: `resume` with `overwrite`; `resume` that is not a
            directory; `resume` and `output_dir` naming different directories.

    Example:
        >>> check_run_arguments(None, "runs/a", overwrite=False)
    """
    if resume and overwrite:
        raise ValueError(
            f"--resume and --overwrite exclude each other: --resume {resume} continues that "
            "run, --overwrite replaces it. Give one of them."
        )
    if resume and not os.path.isdir(resume):
        raise ValueError(
            f"Invalid value for --resume: {resume!r} is not a directory of an earlier run. "
            "Pass the --output_dir of the run to continue."
        )
    if resume and output_dir and os.path.realpath(resume) != os.path.realpath(output_dir):
        raise ValueError(
            f"--resume {resume} and --output_dir {output_dir} name different directories. "
            f"A resumed run writes into the run it continues: give --resume {resume} alone, "
            f"or --output_dir {output_dir} alone for a new run."
        )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, owned by another user
    return True


def _read_lock(path: str) -> dict | None:
    """The lock's holder, or None if the file is unreadable (for a moment after its
    creation it is empty: the holder writes it just after creating it)."""
    for _ in range(20):
        try:
            with open(path) as f:
                holder = json.load(f)
            if isinstance(holder, dict) and isinstance(holder.get("pid"), int):
                return holder
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    return None


def _note(message: str) -> None:
    print(f"kdistill: note: {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def run_directory_lock(directory: str, note=_note):
    """Holds `<directory>/.lock` while the block runs: one writer per run directory.

    The lock file is created with O_CREAT|O_EXCL and holds this process's id,
    host name and start time; it is removed when the block ends, also on an
    exception. A lock left by a process that is no longer running (same host,
    pid not alive), or one that cannot be read, is stale: it is replaced, with
    a one-line note.

    Args:
        directory: An existing directory.
        note: Called with the one-line note about a stale lock.

    Raises:
        DirectoryLockedError: A running process holds the lock; the message
            names it.

    Example:
        >>> with run_directory_lock("runs/digits"):
        ...     write_text("runs/digits/results.json", "[]")
    """
    path = os.path.join(directory, LOCK_FILE)
    host = socket.gethostname()
    started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    mine = {"pid": os.getpid(), "host": host, "started": started}
    while True:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _read_lock(path)
            if holder == {}:
                continue  # removed in between: try again
            if holder is not None and (holder.get("host") != host or _pid_alive(holder["pid"])):
                where = "" if holder.get("host") == host else f" on host {holder.get('host')}"
                raise DirectoryLockedError(
                    f"{directory!r} is being written by process {holder['pid']}{where} "
                    f"(started {holder.get('started', 'at an unknown time')}). Wait for it to "
                    f"finish, or choose another --output_dir. If no such process runs, "
                    f"delete {path!r}."
                ) from None
            what = (
                "unreadable"
                if holder is None
                else f"of process {holder['pid']}, which no longer runs"
            )
            note(f"replaced a stale lock in {directory} ({what}).")
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(mine, f)
        break
    try:
        yield path
    finally:
        # Remove only our own lock (never one a later run took over as stale).
        with contextlib.suppress(OSError, ValueError):
            with open(path) as f:
                if json.load(f).get("pid") == os.getpid():
                    os.remove(path)
