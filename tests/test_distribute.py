"""tf.distribute, mixed precision, XLA and interruption (issue: scale out)."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from kdistill import backend

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def script(*parts):
    """Joins code parts, each dedented on its own."""
    return "\n".join(textwrap.dedent(p) for p in parts)


def run_script(code, tmp_path, name="script.py", check=True):
    path = tmp_path / name
    path.write_text(code)
    env = dict(
        os.environ,
        TF_CPP_MIN_LOG_LEVEL="3",
        PYTHONPATH=REPO + os.pathsep + os.path.join(REPO, "tests"),
    )
    result = subprocess.run(
        [sys.executable, str(path)], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


MODELS = """
import numpy as np, tensorflow as tf
from kdistill import Distiller
from kdistill.backend import keras
from kdistill.losses import SoftTargetKD

def make_models():
    keras.utils.set_random_seed(7)
    t_in = keras.Input((6,))
    teacher = keras.Model(t_in, keras.layers.Dense(4, name="t_out")(keras.layers.Dense(32, activation="relu")(t_in)))
    s_in = keras.Input((6,))
    student = keras.Model(s_in, keras.layers.Dense(4, name="s_out")(keras.layers.Dense(8, activation="relu")(s_in)))
    return teacher, student

rng = np.random.default_rng(0)
x = rng.normal(size=(64, 6)).astype("float32")
y = rng.integers(0, 4, size=64)
"""


@pytest.mark.slow
def test_mirrored_strategy_on_two_cpus_matches_single_device(tmp_path):
    code = script(
        """
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    """,
        MODELS,
        """
    def train(strategy):
        with strategy.scope():
            teacher, student = make_models()
            distiller = Distiller(teacher, student, SoftTargetKD(2.0), alpha=0.3)
            distiller.compile(optimizer=keras.optimizers.SGD(0.1),
                              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        distiller.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0)
        return student.get_weights()

    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert mirrored.num_replicas_in_sync == 2
    single = train(tf.distribute.get_strategy())
    multi = train(mirrored)
    diff = max(float(np.max(np.abs(a - b))) for a, b in zip(single, multi))
    print("MAX_DIFF", diff)
    assert diff < 1e-5, diff
    """,
    )
    result = run_script(code, tmp_path)
    assert "MAX_DIFF" in result.stdout


@pytest.mark.slow
def test_mirrored_strategy_distils_a_student_with_two_heads_as_one_device(tmp_path):
    code = script(
        """
    import numpy as np, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from conftest import two_head_data, two_heads
    from kdistill import Distiller
    from kdistill.backend import keras
    from kdistill.losses import LogitMSE, PerOutput, SoftTargetKD
    x, cls, box = two_head_data(64)

    def train(strategy):
        with strategy.scope():
            keras.utils.set_random_seed(7)
            teacher, student = two_heads(16, name="teacher"), two_heads(name="student")
            distiller = Distiller(teacher, student, PerOutput([SoftTargetKD(2.0), LogitMSE()]))
            ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
            distiller.compile(optimizer=keras.optimizers.SGD(0.1), loss=[ce, "mse"])
        distiller.fit(x, [cls, box], batch_size=16, epochs=3, shuffle=False, verbose=0)
        return student.get_weights()

    single = train(tf.distribute.get_strategy())
    multi = train(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
    diff = max(float(np.max(np.abs(a - b))) for a, b in zip(single, multi))
    print("MAX_DIFF", diff)
    assert diff < 1e-5, diff
    """
    )
    result = run_script(code, tmp_path)
    assert "MAX_DIFF" in result.stdout


@pytest.mark.slow
@pytest.mark.skipif(backend.LEGACY_KERAS, reason="Keras 3 dtype policy API")
def test_mixed_bfloat16_trains_as_well_as_float32(tmp_path):
    code = textwrap.dedent("""
    import numpy as np
    from kdistill import data, models, training
    from kdistill.backend import keras
    split = data.load("digits")
    teacher = training.fit_supervised(models.teacher_for(split.input_shape, 10), split, training.FitSettings(epochs=15))
    scores = {}
    for policy in ("float32", "mixed_bfloat16"):
        keras.mixed_precision.set_global_policy(policy)
        student = models.student_for(split.input_shape, 10, 32)
        settings = training.FitSettings(epochs=15, batch_size=32, learning_rate=1e-2)
        d = training.fit_distilled(teacher, student, split, settings)
        assert d.student.layers[-1].compute_dtype == ("bfloat16" if policy != "float32" else "float32")
        logits = np.asarray(d.student.predict(split.x_test, verbose=0), dtype="float32")
        scores[policy] = training.accuracy(logits, split.y_test)
    print("SCORES", scores)
    assert scores["mixed_bfloat16"] >= scores["float32"] - 0.02, scores
    """)
    result = run_script(code, tmp_path)
    assert "SCORES" in result.stdout


def test_jit_compiled_step_matches_the_graph_step(tmp_path):
    from conftest import tiny_mlp, toy_data

    from kdistill import Distiller
    from kdistill.backend import keras

    x, y = toy_data()
    results = []
    for jit in (False, True):
        keras.utils.set_random_seed(3)
        distiller = Distiller(tiny_mlp(name="teacher", units=16), tiny_mlp(name="student"))
        distiller.compile(
            optimizer=keras.optimizers.SGD(0.05),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=jit,
        )
        distiller.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
        results.append(distiller.student.get_weights())
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.slow
def test_training_killed_mid_epoch_resumes_to_the_same_weights(tmp_path):
    code = script(
        MODELS,
        """
    import os, sys
    backup = sys.argv[1] if len(sys.argv) > 1 else None
    kill_at = int(os.environ.get("KILL_AT", "-1"))

    class Kill(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.step = 0
        def on_train_batch_end(self, batch, logs=None):
            self.step += 1
            if self.step == kill_at:
                os._exit(3)   # a crash: no clean-up, no saving

    teacher, student = make_models()
    distiller = Distiller(teacher, student, SoftTargetKD(2.0), alpha=0.3)
    distiller.compile(optimizer=keras.optimizers.Adam(0.01),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    callbacks = [Kill()]
    if backup:
        callbacks.insert(0, keras.callbacks.BackupAndRestore(backup))
    distiller.fit(x, y, batch_size=16, epochs=4, shuffle=False, verbose=0, callbacks=callbacks)
    np.savez(os.environ["OUT"], *student.get_weights())
    """,
    )
    path = tmp_path / "train.py"
    path.write_text(code)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO)

    def run(*args, **extra):
        return subprocess.run(
            [sys.executable, str(path), *args],
            capture_output=True,
            text=True,
            env=dict(env, **extra),
            cwd=tmp_path,
        )

    assert run(OUT=str(tmp_path / "straight.npz")).returncode == 0
    backup = str(tmp_path / "backup")
    killed = run(backup, OUT=str(tmp_path / "resumed.npz"), KILL_AT="10")  # epoch 3, batch 2 of 4
    assert killed.returncode == 3, killed.stderr[-2000:]
    resumed = run(backup, OUT=str(tmp_path / "resumed.npz"))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    straight = np.load(tmp_path / "straight.npz")
    again = np.load(tmp_path / "resumed.npz")
    for key in straight.files:
        np.testing.assert_allclose(straight[key], again[key], atol=1e-5)


def free_ports(count):
    import socket

    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
def test_two_worker_processes_distill_together_to_identical_weights(tmp_path):
    code = script(
        """
    import json, os, sys
    role = sys.argv[1]
    if role != "single":
        os.environ["TF_CONFIG"] = json.dumps({
            "cluster": {"worker": [f"127.0.0.1:{p}" for p in sys.argv[2].split(",")]},
            "task": {"type": "worker", "index": int(role)},
        })
    """,
        MODELS,
        """
    strategy = (tf.distribute.get_strategy() if role == "single"
                else tf.distribute.MultiWorkerMirroredStrategy())
    if role != "single":
        from kdistill import backend
        assert strategy.num_replicas_in_sync == 2 and backend.multi_worker(strategy)
    with strategy.scope():
        teacher, student = make_models()
        distiller = Distiller(teacher, student, SoftTargetKD(2.0), alpha=0.3)
        distiller.compile(optimizer=keras.optimizers.SGD(0.1),
                          loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(16).with_options(options)
    history = distiller.fit(dataset, validation_data=dataset, epochs=3, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0], history.history
    np.savez(f"weights_{role}.npz", *student.get_weights())
    print("VAL_LOSS", history.history["val_loss"][-1])
    """,
    )
    path = tmp_path / "worker.py"
    path.write_text(code)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO)
    env.pop("TF_CONFIG", None)
    ports = ",".join(str(p) for p in free_ports(2))
    workers = [
        subprocess.Popen(
            [sys.executable, str(path), str(index), ports],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=tmp_path,
        )
        for index in range(2)
    ]
    try:
        outputs = [w.communicate(timeout=240) for w in workers]
    finally:
        for w in workers:
            w.kill()
    for w, (_, err) in zip(workers, outputs):
        assert w.returncode == 0, err[-3000:]
    single = subprocess.run(
        [sys.executable, str(path), "single"], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert single.returncode == 0, single.stderr[-3000:]

    first, second, alone = (np.load(tmp_path / f"weights_{r}.npz") for r in ("0", "1", "single"))
    for key in first.files:
        np.testing.assert_array_equal(first[key], second[key])  # one model, two copies
        np.testing.assert_allclose(first[key], alone[key], atol=1e-5)  # global-batch losses
    assert outputs[0][0].split("VAL_LOSS")[1] == outputs[1][0].split("VAL_LOSS")[1]
