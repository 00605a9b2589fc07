"""Every benchmark runs in --smoke mode, so none of them rots."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from kdistill import backend

BENCHMARKS = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.slow
@pytest.mark.skipif(backend.LEGACY_KERAS, reason="one smoke pass (Keras 3) keeps the scripts alive")
@pytest.mark.parametrize(
    "name", ["throughput", "tflite_latency", "hinton_mnist", "compression_frontier"]
)
def test_benchmark_smoke_run_writes_its_results(name, tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KDISTILL_BENCHMARK_RESULTS=str(tmp_path))
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / f"{name}.py"), "--smoke"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    payload = json.loads((tmp_path / f"{name}.smoke.json").read_text())
    assert payload["benchmark"] == name and payload["smoke"] is True
    assert payload["machine"]["tensorflow"]
