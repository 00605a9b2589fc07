"""benchmarks/char_lm.py: its measures by hand, and a smoke run end to end."""

import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from kdistill import backend

BENCHMARKS = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"


def _char_lm():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec = importlib.util.spec_from_file_location("char_lm", BENCHMARKS / "char_lm.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCHMARKS))
    return module


def test_bits_per_char_and_next_byte_windows_by_hand():
    char_lm = _char_lm()
    x, y = char_lm.sequences(b"abcdefg", 3)  # two windows; the 7th byte is only a label
    np.testing.assert_array_equal(x, [[97, 98, 99], [100, 101, 102]])
    np.testing.assert_array_equal(y, [[98, 99, 100], [101, 102, 103]])
    # Uniform over 256 bytes: 8 bits. Half the mass on the label: 1 bit.
    bits, _ = char_lm.bits_per_char(np.zeros((2, 3, 256), "float32"), y)
    assert bits == pytest.approx(8.0, abs=1e-5)
    logits = np.full((2, 3, 256), -1e4, "float32")
    np.put_along_axis(logits, y[..., None], 0.0, -1)
    logits[..., 0] = 0.0  # byte 0 as likely as the label
    bits, accuracy = char_lm.bits_per_char(logits, y)
    assert bits == pytest.approx(1.0, abs=1e-5)
    assert accuracy == 0.0  # argmax picks byte 0 (the first of the tie)


@pytest.mark.slow
@pytest.mark.skipif(backend.LEGACY_KERAS, reason="one smoke pass (Keras 3) keeps the script alive")
def test_char_lm_smoke_run_writes_every_row_and_the_exported_files(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KDISTILL_BENCHMARK_RESULTS=str(tmp_path))
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "char_lm.py"), "--smoke"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    payload = json.loads((tmp_path / "char_lm.smoke.json").read_text())
    assert payload["corpus"]["train"]["bytes"] == 20_000
    assert len(payload["corpus"]["train"]["sha256"]) == 64
    rows = {row["trained_with"]: row for row in payload["rows"] if row["model"] == "student"}
    assert "labels" in rows and "offline forward KL (full cache)" in rows
    for row in rows.values():
        if "missing" not in row:  # every row that ran learned something
            assert 0 < row["val_bits_per_char"] < 8.0
    teacher = payload["rows"][0]
    assert teacher["params"] > 2 * rows["labels"]["params"]
    files = payload["tflite"]["teacher"]
    assert files["dynamic"]["size_bytes"] < files["none"]["size_bytes"]
    assert files["none"]["bits_per_char"] == pytest.approx(teacher["val_bits_per_char"], abs=1e-3)
    assert payload["teacher_cache"]["full"]["bytes"] > 0
