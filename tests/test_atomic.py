import os
import stat

import pytest

from kdistill import atomic


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_new_file_gets_the_mode_a_plain_open_gives(tmp_path, umask_022):
    path = tmp_path / "model.tflite"
    atomic.write_bytes(str(path), b"flatbuffer")
    assert path.read_bytes() == b"flatbuffer"
    assert mode(path) == 0o644  # not mkstemp's private 0600


def test_replaced_file_keeps_its_mode(tmp_path, umask_022):
    path = tmp_path / "results.json"
    path.write_text("{}")
    os.chmod(path, 0o640)
    atomic.write_text(str(path), '{"accuracy": 0.9}')
    assert path.read_text() == '{"accuracy": 0.9}'
    assert mode(path) == 0o640


def test_new_directory_gets_the_mode_a_plain_mkdir_gives(tmp_path, umask_022):
    path = tmp_path / "savedmodel"
    with atomic.directory(str(path)) as tmp:
        with open(os.path.join(tmp, "saved_model.pb"), "wb") as f:
            f.write(b"graph")
    assert (path / "saved_model.pb").read_bytes() == b"graph"
    assert mode(path) == 0o755  # not mkdtemp's private 0700


def test_failed_directory_write_keeps_the_old_directory(tmp_path):
    path = tmp_path / "savedmodel"
    path.mkdir()
    (path / "saved_model.pb").write_bytes(b"old graph")
    with pytest.raises(RuntimeError), atomic.directory(str(path)) as tmp:
        with open(os.path.join(tmp, "saved_model.pb"), "wb") as f:
            f.write(b"half a")
        raise RuntimeError("export failed")
    assert (path / "saved_model.pb").read_bytes() == b"old graph"
    assert [p.name for p in tmp_path.iterdir()] == ["savedmodel"]


def test_failed_directory_swap_puts_the_old_directory_back(tmp_path, monkeypatch):
    path = tmp_path / "savedmodel"
    path.mkdir()
    (path / "saved_model.pb").write_bytes(b"old graph")
    real_replace = os.replace

    def replace_fails_for_the_new_directory(src, dst):
        if os.path.basename(src).startswith(".tmp-"):
            raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", replace_fails_for_the_new_directory)
    with pytest.raises(OSError, match="disk full"), atomic.directory(str(path)) as tmp:
        with open(os.path.join(tmp, "saved_model.pb"), "wb") as f:
            f.write(b"new graph")
    assert (path / "saved_model.pb").read_bytes() == b"old graph"
    assert [p.name for p in tmp_path.iterdir()] == ["savedmodel"]


def test_unwritable_directory_is_named_in_the_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(PermissionError, match="Choose a path"):
        atomic.write_bytes(str(blocker / "model.tflite"), b"x")


HOLD_LOCK = """
import sys, time
from kdistill import atomic
with atomic.run_directory_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(60)
"""


@pytest.fixture
def lock_holder(tmp_path):
    """A second process that holds the lock of tmp_path/run until the test ends."""
    import subprocess
    import sys

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(run_dir)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline() == "locked\n"
        yield run_dir, holder.pid
    finally:
        holder.kill()
        holder.wait()


def test_a_second_writer_is_refused_with_the_running_process_named(lock_holder):
    run_dir, pid = lock_holder
    with pytest.raises(
        atomic.DirectoryLockedError,
        match=rf"'{run_dir}' is being written by process {pid} \(started 20\d\d-.*\)\. "
        r"Wait for it to finish, or choose another --output_dir\.",
    ):
        with atomic.run_directory_lock(str(run_dir)):
            pass
    assert (run_dir / ".lock").exists()  # still the other process's


def test_a_stale_lock_of_a_dead_process_is_replaced_with_a_note(tmp_path):
    import json
    import socket
    import subprocess
    import sys

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock = tmp_path / ".lock"
    lock.write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "started": "x"}))
    notes = []
    with atomic.run_directory_lock(str(tmp_path), note=notes.append):
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert notes == [
        f"replaced a stale lock in {tmp_path} (of process {dead.pid}, which no longer runs)."
    ]
    assert not lock.exists()


def test_the_lock_is_removed_when_the_run_fails(tmp_path):
    with pytest.raises(RuntimeError, match="training failed"):
        with atomic.run_directory_lock(str(tmp_path)):
            assert (tmp_path / ".lock").exists()
            raise RuntimeError("training failed")
    assert not (tmp_path / ".lock").exists()
    with atomic.run_directory_lock(str(tmp_path)):  # free again
        pass
