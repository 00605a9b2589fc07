"""Every benchmark runs in --smoke mode, so none of them rots."""

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


@pytest.mark.slow
@pytest.mark.skipif(backend.LEGACY_KERAS, reason="one smoke pass (Keras 3) keeps the scripts alive")
@pytest.mark.parametrize(
    "script, flags, name",
    [
        ("throughput", [], "throughput"),
        ("throughput", ["--focus=offline"], "throughput_offline"),
        ("throughput", ["--focus=online", "--shuffle_order"], "throughput_online"),
        ("tflite_latency", [], "tflite_latency"),
        ("hinton_mnist", [], "hinton_mnist"),
        ("step_profile", [], "step_profile"),
        (
            "compression_frontier",
            ["--seeds=0,1", "--results_name=frontier_seeds"],
            "frontier_seeds",
        ),
        ("explain_mnist", [], "explain_mnist"),
        ("main_job_mnist", [], "main_job_mnist"),
    ],
)
def test_benchmark_smoke_run_writes_its_results(script, flags, name, tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KDISTILL_BENCHMARK_RESULTS=str(tmp_path))
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / f"{script}.py"), "--smoke", *flags],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    payload = json.loads((tmp_path / f"{name}.smoke.json").read_text())
    assert payload["benchmark"] == name and payload["smoke"] is True
    assert payload["machine"]["tensorflow"]
    judged = {  # the paired ratios each throughput run reports, by both clocks
        "throughput": ["offline_over_floor", "online_over_ideal"],
        "throughput_offline": ["offline_over_floor", "offline_over_handwritten"],
        "throughput_online": ["online_over_ideal", "online_over_keras"],
    }
    if script == "main_job_mnist":  # the wall time split, and the 100x answer
        assert set(payload["timings_s"]) >= {"teacher", "students", "export", "total"}
        assert payload["hundredfold"]["reached"] in (True, False)
        assert payload["hundredfold"]["message"]
    if script == "compression_frontier":  # one point per size and strategy, over both seeds
        students = [p for p in payload["points"] if p["strategy"] != "teacher"]
        assert students and len(payload["rows"]) - 1 == 2 * len(students)  # 2 seeds a point
        assert all(p["seeds"] == 2 and 0 < p["accuracy_mean"] <= 1 for p in students)
        assert (tmp_path / "frontier_seeds.smoke.png").stat().st_size > 0
        merged = subprocess.run(
            [sys.executable, str(BENCHMARKS / f"{script}.py"), "--smoke"]
            + ["--merge=frontier_seeds,frontier_seeds", "--results_name=merged"],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
        )
        assert merged.returncode == 0, merged.stderr[-3000:]
        merged = json.loads((tmp_path / "merged.smoke.json").read_text())
        assert len(merged["rows"]) == 2 * len(payload["rows"]) - 1  # one teacher row
        assert all(p["seeds"] == 4 for p in merged["points"] if p["strategy"] != "teacher")
    if script == "explain_mnist":  # both students, both files, each with its pictures
        rows = [(r["strategy"], r["tflite"]) for r in payload["rows"]]
        assert rows == [(s, t) for s in ("alone", "distilled") for t in ("float32", "int8")]
        assert all(0 <= r["ece"] <= 1 for r in payload["rows"])
        for strategy in ("alone", "distilled"):
            assert (tmp_path / "explain_mnist.smoke" / strategy / "reliability.png").exists()
    if script == "step_profile":  # every variant timed and profiled; the floor's ratio is 1
        assert 0 < payload["timing"]["written_over_derived_gradient"]["median"]
        assert payload["timing"]["student_floor"]["over_floor"] == 1.0
        for variant, profile in payload["profile"].items():
            assert payload["timing"][variant]["step_cpu_us_median"] > 0
            assert profile["kernels_per_step"] > 0
            assert any("MatMul" in op for op in profile["by_op_type"])  # oneDNN: _MklMatMul
        profile = payload["profile"]
        assert "LogSoftmax" in profile["kdistill_offline"]["added_to_floor_by_op_type"]
        # The written gradient runs fewer kernels than TensorFlow's derived one.
        derived = profile["kdistill_offline_derived_gradient"]["kernels_per_step"]
        assert profile["kdistill_offline"]["kernels_per_step"] < derived
        # Cached log-probabilities spare the hand-written step the teacher's softmax.
        kernels = {name: profile[name]["kernels_per_step"] for name in profile}
        assert kernels["handwritten_offline_prepared"] < kernels["handwritten_offline"]
        assert "LogSoftmax" in profile["handwritten_offline"]["added_to_floor_by_op_type"]
        assert payload["timing"]["kdistill_over_handwritten"]["median"] > 0
    for ratio in judged.get(name, []):
        assert payload["speed"] and all(
            s[ratio] > 0 and s[f"{ratio}_cpu"] > 0 and len(s[f"{ratio}_ci90"]) == 2
            for s in payload["speed"]
        ), ratio


def test_throughput_rejects_a_malformed_setting_with_the_fix(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KDISTILL_BENCHMARK_RESULTS=str(tmp_path))
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "throughput.py"), "--smoke", "--settings=fast-16"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode != 0
    assert "--settings" in result.stderr and "on-16" in result.stderr
    assert not list(tmp_path.glob("*.json"))


def _load_common():
    spec = importlib.util.spec_from_file_location("benchmark_common", BENCHMARKS / "common.py")
    common = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(common)
    return common


@pytest.mark.parametrize(
    "cpuinfo, expected",
    [
        (
            "flags\t\t: fpu sse2 avx2 fma avx512f avx512_vnni\n",
            ["avx2", "fma", "avx512f", "avx512_vnni"],
        ),
        (
            "Features\t: fp asimd evtstrm asimddp sve i8mm bf16\n",
            ["asimd", "asimddp", "sve", "i8mm", "bf16"],
        ),
        ("processor\t: 0\n", []),
    ],
    ids=["x86", "arm", "neither"],
)
def test_machine_records_the_cpus_vector_features_on_x86_and_arm(cpuinfo, expected, tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(cpuinfo)
    common = _load_common()
    assert common.simd_features(str(path)) == expected
    assert common.simd_features(str(tmp_path / "missing")) == []


def test_hand_written_step_loss_from_cached_log_probs_matches_soft_target_kd():
    from kdistill.backend import tf
    from kdistill.losses import soft_target_kd

    common = _load_common()
    rng = np.random.default_rng(0)
    teacher_logits = 3 * rng.normal(size=(8, 5)).astype("float32")
    student_logits = tf.constant(rng.normal(size=(8, 5)).astype("float32"))
    log_probs = common.tempered_log_probs(teacher_logits, 4.0)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(student_logits)
        from_logits = soft_target_kd(teacher_logits, student_logits, 4.0)
        from_log_probs = common._kd_from_log_probs(log_probs, student_logits, 4.0)
    np.testing.assert_allclose(from_log_probs, from_logits, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        tape.gradient(from_log_probs, student_logits),
        tape.gradient(from_logits, student_logits),
        rtol=1e-5,
        atol=1e-6,
    )


@pytest.mark.parametrize("prepared", [False, True], ids=["logits", "log_probs"])
def test_hand_written_offline_step_learns_the_teachers_rule(prepared):
    from kdistill import offline_targets
    from kdistill.backend import keras

    common = _load_common()
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(512, 8)).astype("float32")
    labels = np.argmax(x[:, :4], axis=1)
    teacher_logits = 5 * np.eye(4, dtype="float32")[labels]
    cached = common.tempered_log_probs(teacher_logits, 4.0) if prepared else teacher_logits
    student = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
    model = common.HandWrittenOffline(student, alpha=0.1, temperature=4.0, prepared=prepared)
    model.compile(keras.optimizers.Adam(0.05))
    history = model.fit(x, offline_targets(labels, cached), batch_size=64, epochs=8, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    accuracy = np.mean(np.argmax(student.predict(x, verbose=0), axis=1) == labels)
    assert accuracy > 0.9
