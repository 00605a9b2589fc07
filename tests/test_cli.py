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
    assert "Unknown or missing command distil. Commands: distill" in result.stdout + result.stderr


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
