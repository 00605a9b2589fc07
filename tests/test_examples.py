"""The examples run end to end in a small mode."""

import os
import pathlib
import subprocess
import sys

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


def run_example(name, *args, cwd):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
    )


@pytest.mark.slow
def test_distill_and_export_prints_a_row_per_quantization_mode(tmp_path):
    result = run_example(
        "distill_and_export.py",
        "--epochs",
        "3",
        "--max_train",
        "400",
        "--output_dir",
        str(tmp_path),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line.split() for line in result.stdout.splitlines() if line.startswith("student ")]
    assert [row[1] for row in rows] == ["none", "dynamic", "float16", "int8"]
    for row in rows:
        assert 0.3 < float(row[2]) <= 1.0
    assert sorted(p.name for p in tmp_path.glob("*.tflite")) == [
        "student_dynamic.tflite",
        "student_float16.tflite",
        "student_int8.tflite",
        "student_none.tflite",
    ]


@pytest.mark.slow
def test_prune_quantize_distill_prints_every_stage(tmp_path):
    result = run_example(
        "prune_quantize_distill.py", "--epochs", "2", "--max_train", "300", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    stages = [line for line in result.stdout.splitlines() if "tflite" in line or "student" in line]
    assert any(line.startswith("pruned int8 .tflite") for line in stages)
    assert "Sparsity after pruning: 0.8" in result.stdout
    from kdistill import backend

    assert any(line.startswith("pruned + QAT int8") for line in stages) == backend.LEGACY_KERAS
    assert ("Sparsity after QAT (int8 file): 0.8" in result.stdout) == backend.LEGACY_KERAS


@pytest.mark.slow
def test_compare_strategies_example_prints_the_front_and_a_recommendation(tmp_path):
    result = run_example(
        "compare_strategies.py",
        "--epochs",
        "2",
        "--max_train",
        "300",
        "--output_dir",
        str(tmp_path / "run"),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "on the Pareto front" in result.stdout
    assert ("Ship " in result.stdout) or ("No strategy meets the budget" in result.stdout)
    assert (tmp_path / "run" / "report.md").exists()


@pytest.mark.slow
def test_generate_with_tflite_continues_the_zen_of_python_from_the_file(tmp_path):
    result = run_example("generate_with_tflite.py", "--output_dir", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    agreement = next(line for line in lines if "agrees with Keras on" in line)
    assert float(agreement.split("agrees with Keras on ")[1].split("%")[0]) >= 99.0
    # The model learned the text: the file continues the first line as Tim Peters wrote it.
    generated = lines[lines.index("generated from the .tflite file:") + 1]
    assert generated == "Beautiful is better than ugly."
    assert (tmp_path / "char_lm.tflite").stat().st_size > 0
