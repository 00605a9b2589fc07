import os
import re
import subprocess
import sys

import pytest


def run_cli(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [sys.executable, "-m", "kdistill.cli", *args], capture_output=True, text=True, env=env
    )


def run_cli_with_default_log_level(*args):
    # A user's shell: TensorFlow's log level unset, so the command chooses it.
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run(
        [sys.executable, "-m", "kdistill.cli", *args], capture_output=True, text=True, env=env
    )


def test_help_prints_only_the_help_without_starting_tensorflow():
    result = run_cli_with_default_log_level("--help")
    assert result.returncode == 0
    for chatter in ("oneDNN", "cuInit", "absl", "cuda", "I0000"):
        assert chatter not in result.stdout + result.stderr
    assert result.stderr == ""
    assert "kdistill <command>" in result.stdout


def test_epochs_help_states_the_default_each_command_uses():
    result = run_cli("--help")
    assert "Training epochs of each student (default: 30 for compare, 40 for" in result.stdout


def test_a_failing_command_prints_its_error_and_no_tensorflow_start_up_lines(tmp_path):
    result = run_cli_with_default_log_level("evaluate", "--tflite", str(tmp_path / "none.tflite"))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"kdistill evaluate: error: No TFLite file at '{tmp_path / 'none.tflite'}'. "
        "Export one with kdistill.export.to_tflite(student, path)."
    ]


STARTUP = (
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
    "I0000 00:00:1796034372.808231   28174 port.cc:153] oneDNN custom operations are on.\n"
    "I0000 00:00:1796034372.808748   28174 cudart_stub.cc:31] Could not find cuda drivers on "
    "your machine, GPU will not be used.\n"
    "I0000 00:00:1796034372.895958   28174 cpu_feature_guard.cc:227] This TensorFlow binary is "
    "optimized to use available CPU instructions in performance-critical operations.\n"
    "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow.\n"
    "W0000 00:00:1796034378.162958   28174 some.cc:1] a warning\n"
    "E0000 00:00:1796034378.162958   28174 cuda_platform.cc:52] failed call to cuInit: INTERNAL\n"
    "E0000 00:00:1796034378.162958   28174 other.cc:9] a real error\n"
)


def test_tensorflow_start_up_lines_are_filtered_by_the_log_level():
    from kdistill.quiet import startup_lines_to_show

    assert startup_lines_to_show(STARTUP, "2") == (
        "E0000 00:00:1796034378.162958   28174 other.cc:9] a real error\n"
    )
    kept = startup_lines_to_show(STARTUP, "1").splitlines()
    assert [line.split("] ")[-1] for line in kept] == ["a warning", "a real error"]
    everything = startup_lines_to_show(STARTUP, "0")
    assert "To enable the following instructions" in everything and "absl" not in everything
    # With a CUDA driver installed, a failed cuInit is something to act on.
    with_driver = STARTUP.replace("Could not find cuda drivers", "Found cuda drivers")
    assert "failed call to cuInit" in startup_lines_to_show(with_driver, "2")


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


def two_input_data(path, n=120):
    """An .npz stored per input name: an 8x8 image and integer ids (kept integer)."""
    import numpy as np

    rng = np.random.default_rng(0)
    arrays = {}
    for part, size in (("train", n), ("test", n // 2)):
        image = rng.random((size, 8, 8)).astype("float32")
        ids = rng.integers(0, 5, (size, 3)).astype("int32")
        arrays[f"x_{part}:image"] = image
        arrays[f"x_{part}:ids"] = ids
        arrays[f"y_{part}"] = (image.mean((1, 2)) > 0.5).astype("int64") + 2 * (ids[:, 0] > 2)
    np.savez(path, **arrays)


def test_export_and_evaluate_a_student_with_two_named_inputs(tmp_path):
    from kdistill.backend import keras

    image = keras.Input((8, 8, 1), name="image")
    ids = keras.Input((3,), dtype="int32", name="ids")
    embedded = keras.layers.Flatten()(keras.layers.Embedding(5, 2)(ids))
    hidden = keras.layers.Concatenate()([keras.layers.Flatten()(image), embedded])
    model = keras.Model([image, ids], keras.layers.Dense(4)(hidden))
    model.save(str(tmp_path / "student.keras"))
    two_input_data(tmp_path / "data.npz")
    out = str(tmp_path / "student.tflite")
    data_flags = ("--data_path", str(tmp_path / "data.npz"))
    result = run_cli(
        "export", "--model", str(tmp_path / "student.keras"), "--output", out, *data_flags
    )
    assert result.returncode == 0, result.stderr[-2000:]
    # The float file computes what the Keras model computes, input by input.
    assert re.search(r"agreement\W+1\.0", result.stdout), result.stdout
    result = run_cli("evaluate", "--tflite", out, *data_flags)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "(60 test samples)" in result.stdout and "accuracy" in result.stdout


def test_compare_refuses_data_with_several_inputs_in_one_line(tmp_path):
    two_input_data(tmp_path / "data.npz")
    result = run_cli(
        "compare", "--data_path", str(tmp_path / "data.npz"), "--output_dir", str(tmp_path / "run")
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert re.match(r"kdistill compare: error: .*holds several inputs \(ids, image\)", lines[0])


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
    assert re.search(r"^\[teacher\] epoch 2/2: .*; \d+s elapsed, ~\d+s left$", result.stdout, re.M)
    assert "No strategy meets the budget (size <= 0.5 KB)" in result.stdout
    assert os.path.exists(os.path.join(out, "pareto.png"))


def test_compare_with_an_unknown_strategy_is_an_error_without_traceback():
    result = run_cli("compare", "--strategies", "labels,distill_everything")
    assert result.returncode == 2
    assert (
        "Unknown strategy 'distill_everything'" in result.stderr
        and "Traceback" not in result.stderr
    )


def test_compare_keeps_its_teacher_in_the_cache_and_the_next_run_reuses_it(tmp_path):
    cache = str(tmp_path / "teachers")
    tiny = ["compare", "--strategies", "labels", "--student_widths", "4", "--epochs", "1"]
    tiny += ["--teacher_epochs", "1", "--max_train", "100", "--latency_samples", "2"]
    tiny += ["--teacher_cache", cache]
    first = run_cli(*tiny, "--output_dir", str(tmp_path / "a"))
    assert first.returncode == 0, first.stderr[-2000:]
    assert f"it is kept in {cache} for later runs on the same data" in first.stdout
    second = run_cli(*tiny, "--output_dir", str(tmp_path / "b"))
    assert second.returncode == 0, second.stderr[-2000:]
    assert "Reusing the built-in teacher an earlier run trained on the same data" in second.stdout
    assert "Pass --retrain_teacher to train it again." in second.stdout
    assert "[teacher] epoch" not in second.stdout


def test_compare_help_lists_the_search_and_the_teacher_cache():
    result = run_cli("compare", "--helpfull")
    for flag in ("--search", "--patience", "--teacher_cache", "--[no]retrain_teacher"):
        assert flag in result.stdout
