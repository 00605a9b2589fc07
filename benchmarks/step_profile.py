"""Where an offline distillation step's time goes: kernels counted and timed.

`throughput.py --focus=offline` measures how much longer kdistill's offline
step takes than the student-only floor. This script says why, for the MLP
pair of that benchmark and one setting (jit_compile, steps_per_execution):

* Step CPU time of six variants, run in short interleaved bursts (a few
  dozen steps each, in a new random order every round), which pairs them
  far more closely than whole epochs do: the floor, kdistill offline with a
  distillation loss that does no work (the step's own machinery), kdistill
  offline with SoftTargetKD (T=4, alpha=0.1), the same with the loss
  written as plain operations whose gradient TensorFlow derives (the control
  for the gradient kdistill writes out), and the leanest offline step one
  would write by hand for the same loss (`common.HandWrittenOffline`), once
  from cached logits and once from the teacher's log-probabilities at T
  computed before training: what is left between that and the floor is the
  loss's own arithmetic. Ratios are medians over rounds of each round's
  ratio to the floor (and of kdistill's to the hand-written step's), with
  bootstrap intervals.
* Under TensorFlow's profiler, the kernels each variant's compiled step runs:
  how many per step and their summed time, by op type, and what the
  other variants add to the floor. The profile is taken right after the
  warm-up: after some thousands of steps TensorFlow's executor runs the
  kernels it has learnt are cheap inline, without tracing them (a host
  tracer level of 3 did not change that here), so a later profile would
  leave them out.

    python benchmarks/step_profile.py --data_path path/to/mnist.npz
    python benchmarks/step_profile.py --smoke        # seconds; what CI runs

Kernel times come from the profiler's host trace, which itself costs time;
read them as shares and counts, and the step times (measured without the
profiler) as the cost.
"""

from __future__ import annotations

import collections
import glob
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import common  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from kdistill import Distiller, cache_teacher_outputs, offline_targets  # noqa: E402
from kdistill.backend import keras, tf  # noqa: E402
from kdistill.losses import SoftTargetKD  # noqa: E402

flags.DEFINE_string("data_path", None, "MNIST-layout .npz (default: synthetic 28x28 inputs).")
flags.DEFINE_boolean("smoke", False, "Tiny sizes: checks the script runs.")
flags.DEFINE_integer("samples", 8192, "Training samples cycled through (cached, repeated).")
flags.DEFINE_integer("batch_size", 128, "Batch size of every variant.")
flags.DEFINE_boolean("jit_compile", False, "Compile every variant's step with XLA.")
flags.DEFINE_integer("steps_per_execution", 1, "Steps per compiled call, for every variant.")
flags.DEFINE_integer("rounds", 200, "Timed rounds: one burst of each variant per round.")
flags.DEFINE_integer("burst_steps", 48, "Training steps per variant per round.")
flags.DEFINE_integer("profile_steps", 300, "Training steps of each variant under the profiler.")
flags.DEFINE_string("results_name", "step_profile", "Name of the results file.")
FLAGS = flags.FLAGS

VARIANTS = (
    "student_floor",
    "kdistill_offline_no_work_loss",
    "kdistill_offline_derived_gradient",
    "kdistill_offline",
    "handwritten_offline",
    "handwritten_offline_prepared",
)
TEMPERATURE, ALPHA = 4.0, 0.1


def data():
    n = 256 if FLAGS.smoke else FLAGS.samples
    if FLAGS.data_path:
        split = common.load(FLAGS.data_path, FLAGS.smoke)
        return split.x_train[:n], split.y_train[:n]
    rng = np.random.default_rng(0)
    return rng.random((n, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, n)


def repeated(*arrays):
    """The arrays as an endless, cached, prefetched pipeline of batches."""
    dataset = tf.data.Dataset.from_tensor_slices(arrays).batch(FLAGS.batch_size)
    return dataset.cache().repeat().prefetch(tf.data.AUTOTUNE)


def build(name, make_student, x, y, cached):
    """Returns (compiled model, its endless dataset) for variant `name`."""
    options = dict(jit_compile=FLAGS.jit_compile, steps_per_execution=FLAGS.steps_per_execution)
    if name == "student_floor":
        model = make_student()
        model.compile(keras.optimizers.Adam(1e-3), common.sparse_ce(), **options)
        return model, repeated(x, y)
    if name.startswith("handwritten"):
        prepared = name.endswith("prepared")
        model = common.HandWrittenOffline(make_student(), ALPHA, TEMPERATURE, prepared)
        model.compile(keras.optimizers.Adam(1e-3), **options)
        if prepared:
            cached = common.tempered_log_probs(cached, TEMPERATURE)
        return model, repeated(x, offline_targets(y, cached))
    loss = {
        "kdistill_offline_no_work_loss": common.NoWorkLoss(),
        "kdistill_offline_derived_gradient": common.DerivedGradientKD(TEMPERATURE),
        "kdistill_offline": SoftTargetKD(TEMPERATURE),
    }[name]
    model = Distiller(None, make_student(), loss, alpha=ALPHA)
    model.compile(keras.optimizers.Adam(1e-3), common.sparse_ce(), step_logs="loss", **options)
    return model, repeated(x, offline_targets(y, cached))


class CompiledStep:
    """A variant's compiled training function and its own iterator, called
    directly: `fit`'s per-epoch set-up stays out of the timings."""

    def __init__(self, model, dataset):
        spe = FLAGS.steps_per_execution
        model.fit(dataset, steps_per_epoch=2 * spe, epochs=1, verbose=0)  # builds everything
        self.function = model.make_train_function()
        self.iterator = iter(dataset)
        self.run(max(1, 20 // spe))  # warm-up: tracing, XLA compilation

    def run(self, calls):
        for _ in range(calls):
            logs = self.function(self.iterator)
        float(logs["loss"])  # wait for the last step


def timed_rounds(steps, rounds, calls):
    """Step CPU microseconds of each variant, one burst per variant per round."""
    micros = {name: [] for name in steps}
    order = np.random.default_rng(0)
    step_count = calls * FLAGS.steps_per_execution
    for _ in range(rounds):
        names = list(steps)
        order.shuffle(names)
        for name in names:
            started = time.process_time()
            steps[name].run(calls)
            micros[name].append((time.process_time() - started) / step_count * 1e6)
    return micros


def profiled_kernels(step, calls, log_dir):
    """Runs `calls` compiled calls under the profiler; returns ({op type:
    [kernels, microseconds]}, [executor tasks, microseconds]), summed over them."""
    try:
        from tensorflow.tsl.profiler.protobuf import xplane_pb2
    except ImportError as error:
        raise SystemExit(
            "step_profile.py reads the profiler's trace with "
            "tensorflow.tsl.profiler.protobuf.xplane_pb2, which this TensorFlow "
            f"({tf.__version__}) does not ship. Run it with the TensorFlow that "
            "setup.cfg installs."
        ) from error

    tf.profiler.experimental.start(log_dir)
    try:
        step.run(calls)
    finally:
        tf.profiler.experimental.stop()
    (path,) = glob.glob(os.path.join(log_dir, "**", "*.xplane.pb"), recursive=True)
    space = xplane_pb2.XSpace()
    with open(path, "rb") as f:
        space.ParseFromString(f.read())
    kernels = collections.defaultdict(lambda: [0, 0.0])
    tasks = [0, 0.0]
    for plane in space.planes:
        names = {key: meta.name for key, meta in plane.event_metadata.items()}
        for line in plane.lines:
            if not line.name.startswith(("tf_Compute", "tf_numa")):
                continue  # executor threads only: kernels, not Python or tf.data
            for event in line.events:
                name = names.get(event.metadata_id, "")
                op = name.rsplit(":", 1)[1] if ":" in name else ""
                if name == "ExecutorState::Process":  # one task of the executor's threads
                    entry = tasks
                elif "::" in name or not op.isidentifier():
                    continue  # "node:OpType" is a kernel; "Class::Method" the runtime
                else:
                    entry = kernels[op]
                entry[0] += 1
                entry[1] += event.duration_ps / 1e6
    return dict(kernels), tasks


def per_step(kernels, steps):
    """{op type: [kernels, microseconds]} per training step, rounded."""
    return {
        op: [round(count / steps, 2), round(micros / steps, 2)]
        for op, (count, micros) in sorted(kernels.items(), key=lambda kv: -kv[1][1])
    }


def added(variant, floor):
    """Op types whose kernels per step or time per step differ from the floor's."""
    rows = {}
    for op in set(variant) | set(floor):
        count, micros = variant.get(op, [0, 0.0])
        floor_count, floor_micros = floor.get(op, [0, 0.0])
        if count != floor_count:
            rows[op] = [round(count - floor_count, 2), round(micros - floor_micros, 2)]
    return dict(sorted(rows.items(), key=lambda kv: -kv[1][1]))


def main(argv):
    del argv
    started = time.time()
    x, y = data()
    keras.utils.set_random_seed(0)
    teacher, make_student = common.model_pair("mlp", x.shape[1:], 10)
    cached = cache_teacher_outputs(teacher, x, batch_size=1024)
    steps = {name: CompiledStep(*build(name, make_student, x, y, cached)) for name in VARIANTS}

    spe = FLAGS.steps_per_execution
    profile_calls = max(1, (5 if FLAGS.smoke else FLAGS.profile_steps) // spe)
    steps_profiled = profile_calls * spe
    profile = {}
    for name, step in steps.items():
        with tempfile.TemporaryDirectory() as log_dir:
            counted, (tasks, task_micros) = profiled_kernels(step, profile_calls, log_dir)
        by_op = per_step(counted, steps_profiled)
        profile[name] = {
            "kernels_per_step": round(sum(c for c, _ in by_op.values()), 1),
            "kernel_us_per_step": round(sum(m for _, m in by_op.values()), 1),
            "executor_tasks_per_step": round(tasks / steps_profiled, 2),
            "executor_task_us_per_step": round(task_micros / steps_profiled, 2),
            "by_op_type": by_op,
        }
    floor_kernels = profile["student_floor"]["by_op_type"]
    for name in VARIANTS[1:]:
        profile[name]["added_to_floor_by_op_type"] = added(
            profile[name]["by_op_type"], floor_kernels
        )

    rounds = 2 if FLAGS.smoke else FLAGS.rounds
    micros = timed_rounds(steps, rounds, max(1, (4 if FLAGS.smoke else FLAGS.burst_steps) // spe))
    floor = np.array(micros["student_floor"])
    timing = {}
    for name, values in micros.items():
        ratios = np.array(values) / floor
        timing[name] = {
            "step_cpu_us_median": float(np.median(values)),
            "over_floor": float(np.median(ratios)),
            "over_floor_ci90": common.median_interval(ratios),
        }

    pairs = {
        "written_over_derived_gradient": ("kdistill_offline", "kdistill_offline_derived_gradient"),
        "kdistill_over_handwritten": ("kdistill_offline", "handwritten_offline"),
        "prepared_over_handwritten": ("handwritten_offline_prepared", "handwritten_offline"),
    }
    for key, (numerator, denominator) in pairs.items():
        ratios = np.array(micros[numerator]) / np.array(micros[denominator])
        timing[key] = {"median": float(np.median(ratios)), "ci90": common.median_interval(ratios)}
    for name in VARIANTS:
        t, p = timing[name], profile[name]
        low, high = t["over_floor_ci90"]
        print(
            f"{name:34s} step {t['step_cpu_us_median']:7.0f} us CPU, {t['over_floor']:.3f}x the "
            f"floor [{low:.3f}, {high:.3f}]; per step (profiled) {p['kernels_per_step']:.0f} "
            f"kernels, {p['kernel_us_per_step']:.0f} us in them, "
            f"{p['executor_tasks_per_step']:.0f} executor tasks"
        )
    for key, (numerator, denominator) in pairs.items():
        low, high = timing[key]["ci90"]
        print(f"{numerator} / {denominator}: {timing[key]['median']:.3f} [{low:.3f}, {high:.3f}]")
    common.write(
        FLAGS.results_name,
        {
            "settings": {
                "pair": "mlp",
                "samples": len(x),
                "batch_size": FLAGS.batch_size,
                "jit_compile": FLAGS.jit_compile,
                "steps_per_execution": spe,
                "rounds": rounds,
                "burst_steps": FLAGS.burst_steps,
                "profile_steps": profile_calls * spe,
                "kdistill_step_logs": "loss",
                "distillation": f"SoftTargetKD({TEMPERATURE}), alpha {ALPHA}, offline "
                "(derived_gradient: the same loss as plain operations; handwritten: "
                "benchmarks/common.HandWrittenOffline, its prepared variant caching the "
                "teacher's log-probabilities at T instead of its logits)",
                "clock": "process CPU time (all threads) per training step",
                "ratios": "median over rounds of each round's ratio to the floor; ci90: "
                "bootstrap 90% interval of that median",
                "data": FLAGS.data_path or "synthetic 28x28x1",
            },
            "timing": timing,
            "profile": profile,
            "wall_seconds": time.time() - started,
        },
        FLAGS.smoke,
    )


if __name__ == "__main__":
    app.run(main)
