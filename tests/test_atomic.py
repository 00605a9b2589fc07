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
