"""The command-line half of the bad-input catalogue (docs/bad_inputs.md).

Each bad command line fails with exactly one line on stderr,
`kdistill <command>: error: <what and how to fix>`, no traceback, and exit
code 2 (misuse) or 1 (a failure during work). Flag checks run before
TensorFlow loads, so most cases take a fraction of a second; the cases that
reach kdistill's own checks load it once each.
"""

import json
import os
import re
import subprocess
import sys

import pytest

from kdistill import cli

# (argv, exit code, regex of the message after "kdistill <command>: error: ").
# "{tmp}" is a directory holding: dir/ (empty), file (a file), run/ (an earlier
# run), other/ (an empty directory), not_a_list/ (a results.json holding a dict),
# bad.npz (not an npz file).
FLAG_CASES = {
    "compare --epochs 0": (
        "compare --epochs 0",
        2,
        r"Invalid value for --epochs\. Expected an integer >= 1\. Received: --epochs=0$",
    ),
    "compare negative --epochs": ("compare --epochs -3", 2, r"--epochs.*Received: --epochs=-3"),
    "distill --epochs 0": ("distill --epochs 0", 2, r"--epochs\. Expected an integer >= 1"),
    "--teacher_epochs 0": ("compare --teacher_epochs 0", 2, r"--teacher_epochs\. Expected"),
    "--batch_size 0": (
        "compare --batch_size 0",
        2,
        r"--batch_size\. Expected an integer >= 1\. Received: --batch_size=0",
    ),
    "--learning_rate 0": (
        "distill --learning_rate 0",
        2,
        r"--learning_rate\. Expected a positive finite number\. Received: --learning_rate=0",
    ),
    "negative --learning_rate": ("compare --learning_rate -0.1", 2, r"--learning_rate=-0\.1"),
    "--learning_rate nan": ("distill --learning_rate nan", 2, r"--learning_rate=nan$"),
    "--learning_rate inf": ("distill --learning_rate inf", 2, r"--learning_rate=inf$"),
    "--representative_samples 0 with int8": (
        "export --model m.keras --quantization int8 --representative_samples 0",
        2,
        r"--representative_samples\. Expected an integer >= 1",
    ),
    "--repeats 0": ("compare --repeats 0", 2, r"--repeats\. Expected an integer >= 1"),
    "--workers 0": ("compare --workers 0", 2, r"--workers\. Expected an integer >= 1"),
    "--latency_samples 0": ("compare --latency_samples 0", 2, r"--latency_samples\. Expected"),
    "--student_widths with 0": (
        "compare --student_widths 16,0",
        2,
        r"--student_widths\. Expected positive integers .*Received: --student_widths=16,0",
    ),
    "--student_widths not integers": ("compare --student_widths 16,x", 2, r"--student_widths=16,x"),
    "--max_size_kb 0": ("compare --max_size_kb 0", 2, r"--max_size_kb\. Expected a positive"),
    "negative --max_latency_ms": ("compare --max_latency_ms -1", 2, r"--max_latency_ms=-1"),
    "--min_accuracy above 1": (
        "compare --min_accuracy 1.5",
        2,
        r"--min_accuracy\. Expected a number in \[0, 1\]",
    ),
    "--max_train 0": ("compare --max_train 0", 2, r"--max_train\. Expected an integer >= 1"),
    "negative --seed": ("distill --seed -1", 2, r"--seed\. Expected an integer >= 0"),
    "--temperature 0": ("distill --temperature 0", 2, r"--temperature\. Expected a positive"),
    "--alpha above 1": ("distill --alpha 2", 2, r"--alpha\. Expected a number in \[0, 1\]"),
    "--student_width 0": ("distill --student_width 0", 2, r"--student_width\. Expected"),
    "--epochs not a number": ("compare --epochs abc", 2, r"flag --epochs=abc: invalid literal"),
    "misspelled flag": ("compare --epoch 3", 2, r"Unknown command line flag 'epoch'"),
    "unknown --dataset": ("distill --dataset imagenet", 2, r"flag --dataset=imagenet"),
    "export without --model": ("export", 2, r"--model is required for this command"),
    "evaluate without --tflite": ("evaluate", 2, r"--tflite is required for this command"),
    "--tflite a directory": (
        "evaluate --tflite {tmp}/dir",
        2,
        r"--tflite: '.*/dir' is a directory\. Pass the path of a \.tflite file",
    ),
    "--model a directory": ("export --model {tmp}/dir", 2, r"--model: '.*/dir' is a directory"),
    "--output a directory": (
        "export --model m.keras --output {tmp}/dir",
        2,
        r"--output: '.*/dir' is a directory\. Pass a \.tflite file path, e\.g\. '.*/dir/model",
    ),
    "--output under a file": (
        "export --model m.keras --output {tmp}/file/m.tflite",
        2,
        r"--output: '.*/file/m\.tflite' lies under '.*/file', which is a file",
    ),
    "--data_path a directory": (
        "evaluate --tflite m.tflite --data_path {tmp}/dir",
        2,
        r"--data_path: '.*/dir' is a directory\. Pass the path of an \.npz file",
    ),
    "--teacher a directory": ("compare --teacher {tmp}/dir", 2, r"--teacher: '.*' is a directory"),
    "missing --student file": (
        "compare --student {tmp}/none.keras",
        2,
        r"--student: no file at '.*/none\.keras'\. Pass the path of a \.keras file",
    ),
    "--output_dir a file": ("compare --output_dir {tmp}/file", 2, r"--output_dir: '.*' is a file"),
    "--output_dir under a file": (
        "compare --output_dir {tmp}/file/run",
        2,
        r"--output_dir: '.*/file/run' lies under '.*/file', which is a file",
    ),
    "--resume not a directory": (
        "compare --resume {tmp}/missing",
        2,
        r"--resume: '.*/missing' is not a directory of an earlier run",
    ),
    "--resume A --output_dir B": (
        "compare --resume {tmp}/run --output_dir {tmp}/other",
        2,
        r"--resume .*/run and --output_dir .*/other name different directories",
    ),
    "--resume with --overwrite": (
        "compare --resume {tmp}/run --overwrite",
        2,
        r"--resume and --overwrite exclude each other",
    ),
}

# These pass the flag checks and fail in kdistill's own checks (TensorFlow loads).
WORK_CASES = {
    "--output_dir holding a run, without --resume": (
        "compare --output_dir {tmp}/run --strategies labels",
        2,
        r"'.*/run' holds an earlier run \(results\.json\)\. Pass --resume .*/run to continue "
        r"it, or --overwrite to replace it",
    ),
    "--resume of a results.json that is not a list": (
        "compare --resume {tmp}/not_a_list --strategies labels --max_train 50",
        2,
        r"results\.json' is not a list of kdistill compare records",
    ),
    "unknown strategy": (
        "compare --strategies labels,distill_everything --output_dir {tmp}/other",
        2,
        r"Unknown strategy 'distill_everything'",
    ),
    "missing .tflite file": ("evaluate --tflite {tmp}/none.tflite", 2, r"No TFLite file at"),
    "--data_path not an npz file": (
        "evaluate --tflite m.tflite --data_path {tmp}/bad.npz",
        2,
        r"data_path.*'.*/bad\.npz' is not a readable \.npz file",
    ),
}


@pytest.fixture
def tmp(tmp_path):
    (tmp_path / "dir").mkdir()
    (tmp_path / "other").mkdir()
    (tmp_path / "file").write_text("a file")
    (tmp_path / "bad.npz").write_text("not an npz file")
    (tmp_path / "run" / "models").mkdir(parents=True)
    records = [{"strategy": "kd", "student": "w8", "status": "ok", "accuracy": 0.9}]
    (tmp_path / "run" / "results.json").write_text(json.dumps(records))
    (tmp_path / "not_a_list").mkdir()
    (tmp_path / "not_a_list" / "results.json").write_text('{"records": []}')
    return tmp_path


def run_cli(args, cwd):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run(
        [sys.executable, "-m", "kdistill.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
    )


def assert_one_line_error(result, command, code, pattern):
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    match = re.match(rf"^kdistill {command}: error: (.*)$", lines[0])
    assert match, lines[0]
    assert re.search(pattern, match.group(1)), lines[0]
    assert result.returncode == code, result.stderr


def check_case(tmp, argv, code, pattern):
    args = [a.replace("{tmp}", str(tmp)) for a in argv.split()]
    result = run_cli(args, cwd=tmp)
    assert_one_line_error(result, args[0], code, pattern)
    return result


@pytest.mark.parametrize("case", FLAG_CASES.values(), ids=list(FLAG_CASES))
def test_a_bad_flag_is_one_line_before_any_work(tmp, case):
    result = check_case(tmp, *case)
    assert result.stdout == ""  # nothing ran


@pytest.mark.parametrize("case", WORK_CASES.values(), ids=list(WORK_CASES))
def test_bad_input_found_by_kdistill_is_one_line(tmp, case):
    check_case(tmp, *case)


def test_an_earlier_run_is_left_as_it_was(tmp):
    before = (tmp / "run" / "results.json").read_text()
    check_case(tmp, *WORK_CASES["--output_dir holding a run, without --resume"])
    assert (tmp / "run" / "results.json").read_text() == before
    assert sorted(os.listdir(tmp / "run")) == ["models", "results.json"]


HOLD_LOCK = """
import sys, time
from kdistill import atomic
with atomic.run_directory_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(120)
"""


def test_a_second_compare_into_a_directory_being_written_is_refused(tmp):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(tmp / "other")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline() == "locked\n"
        result = check_case(
            tmp,
            "compare --output_dir {tmp}/other --strategies labels",
            2,
            rf"'.*/other' is being written by process {holder.pid} \(started .*\)\. Wait for "
            r"it to finish, or choose another --output_dir",
        )
        assert result.stdout == ""
    finally:
        holder.kill()
        holder.wait()


def test_unknown_command_is_one_line():
    result = run_cli(["distil"], cwd=None)
    assert result.stderr.splitlines() == [
        "kdistill: error: Unknown or missing command distil. Commands: compare, distill, "
        "export, evaluate, explain. Run `kdistill --help` for what each does."
    ]
    assert result.returncode == 2


@pytest.fixture
def parsed_flags():
    """Parses a command line into cli.FLAGS for an in-process run, then resets them."""

    def parse(argv):
        return cli.FLAGS(["kdistill", *argv])

    yield parse
    cli.FLAGS.unparse_flags()


def test_a_failed_strategy_makes_compare_exit_1_and_say_so_last(
    tmp, parsed_flags, monkeypatch, capsys
):
    from kdistill.compare import jobs

    original = jobs.training.fit_student

    def fit_student(teacher, model, split, settings, strategy, **kwargs):
        if strategy.name == "kd":
            raise FloatingPointError("The loss became NaN at epoch 1, batch 3.")
        return original(teacher, model, split, settings, strategy, **kwargs)

    monkeypatch.setattr(jobs.training, "fit_student", fit_student)
    out = str(tmp / "other")
    argv = parsed_flags(
        f"compare --strategies labels,kd --student_widths 8 --epochs 1 --teacher_epochs 1 "
        f"--max_train 100 --latency_samples 2 --output_dir {out}".split()
    )
    assert cli.main(argv) == 1
    captured = capsys.readouterr()
    # The last line says so (before it, in-process, TensorFlow's start-up may log).
    assert captured.err.splitlines()[-1:] == [
        "kdistill compare: error: 1 of 2 strategies failed: kd (w8); the first: "
        "FloatingPointError: The loss became NaN at epoch 1, batch 3.. They are recorded as "
        f"failed in {out}/results.json and never recommended; fix the cause and rerun with "
        f"--resume {out} to retry them."
    ]
    assert "Ship labels (w8)" in captured.out
    records = json.load(open(os.path.join(out, "results.json")))
    assert [(r["strategy"], r["status"], r["pareto"]) for r in records] == [
        ("labels", "ok", True),
        ("kd", "failed", False),
    ]
