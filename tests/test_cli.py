import os
import subprocess
import sys

import pytest


def run_cli(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [sys.executable, "-m", "kdistill.cli", *args], capture_output=True, text=True, env=env
    )


def test_help_lists_the_commands():
    result = run_cli("--help")
    assert result.returncode == 0
    assert "kdistill <command>" in result.stdout and "distill" in result.stdout


def test_unknown_command_is_a_usage_error():
    result = run_cli("distil")
    assert result.returncode != 0
    assert (
        "Unknown or missing command distil. Commands: compare, distill"
        in result.stdout + result.stderr
    )


def test_bad_flag_value_is_a_usage_error():
    result = run_cli("distill", "--dataset", "imagenet")
    assert result.returncode != 0
    assert "dataset" in result.stderr


@pytest.mark.slow
def test_distill_prints_teacher_alone_and_distilled_accuracy():
    result = run_cli("distill", "--epochs", "3", "--teacher_epochs", "3", "--max_train", "400")
    assert result.returncode == 0, result.stderr[-2000:]
    lines = {
        line.split("  ")[0]: line.split() for line in result.stdout.splitlines() if line.strip()
    }
    for name in ("teacher", "student alone", "student distilled"):
        assert name in lines
        accuracy = float(lines[name][-2])
        assert 0.1 < accuracy <= 1.0


@pytest.mark.slow
def test_export_then_evaluate_a_saved_student(tmp_path):
    from conftest import tiny_mlp  # noqa: F401 - keeps the import style of the suite

    from kdistill import models

    model = models.mlp((8, 8, 1), 10, (16,), name="student")
    model.save(str(tmp_path / "student.keras"))
    out = str(tmp_path / "student_int8.tflite")
    result = run_cli(
        "export",
        "--model",
        str(tmp_path / "student.keras"),
        "--quantization",
        "int8",
        "--output",
        out,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "agreement" in result.stdout and (tmp_path / "student_int8.tflite").exists()
    result = run_cli("evaluate", "--tflite", out)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "latency_ms_median" in result.stdout and "accuracy" in result.stdout


def test_export_without_model_is_a_usage_error():
    result = run_cli("export")
    assert result.returncode != 0
    assert "--model is required" in result.stdout + result.stderr


def test_evaluate_of_a_corrupt_file_says_so_without_a_traceback(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"junk")
    result = run_cli("evaluate", "--tflite", str(bad))
    assert result.returncode == 2
    assert "corrupt or truncated" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_compare_command_runs_a_reduced_grid(tmp_path):
    out = str(tmp_path / "run")
    result = run_cli(
        "compare",
        "--strategies",
        "labels,kd+int8",
        "--student_widths",
        "8",
        "--epochs",
        "2",
        "--teacher_epochs",
        "2",
        "--max_train",
        "200",
        "--output_dir",
        out,
        "--max_size_kb",
        "0.5",
        "--workers",
        "2",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Running 2 strategies in 2 worker processes" in result.stdout
    assert "kd+int8 (w8): accuracy" in result.stdout
    assert "No strategy meets the budget (size <= 0.5 KB)" in result.stdout
    assert os.path.exists(os.path.join(out, "pareto.png"))


def test_compare_with_an_unknown_strategy_is_an_error_without_traceback():
    result = run_cli("compare", "--strategies", "labels,distill_everything")
    assert result.returncode == 2
    assert (
        "Unknown strategy 'distill_everything'" in result.stderr
        and "Traceback" not in result.stderr
    )
