"""Training speed: kdistill against the student-only floor and Keras's distiller.

Measures per-epoch time of, on the same data, models and batch size, in
interleaved rounds (median after a warm-up round):

  student_floor     the student trained on labels alone (the floor of any method)
  teacher_forward   one teacher forward pass over the data
  kdistill_online   kdistill's Distiller, teacher running every step
  kdistill_offline  kdistill's Distiller from cached teacher outputs
  keras_distiller   keras.distillation.Distiller + LogitsDistillation (Keras 3.15)

for an MLP pair and a small CNN pair, with jit_compile and steps_per_execution
on and off, plus peak memory of each variant (each in its own process), and a
whole 10-epoch job with kdistill's recommended settings against Keras's
distiller at its defaults (time and student accuracy, 3 seeds). kdistill's
variants compile with step_logs="loss" (--step_logs), so each of their steps
returns one log to `fit`, as the floor's steps do.

Ratios are paired: each round runs every variant once, back to back, and a
ratio is the median over rounds of that round's ratio, so slow drifts of the
machine cancel. On a virtual machine the hypervisor may hand the CPUs to other
guests ("steal" time in /proc/stat); a round in which it took more than
--max_steal of any variant's CPU time is run again (up to --rounds extra
times), and the results record how many rounds were repeated and the share
stolen in each kept one.

    python benchmarks/throughput.py --data_path path/to/mnist.npz
    python benchmarks/throughput.py --smoke        # seconds; what CI runs

Two focused modes rerun a subset of the variants for more rounds, to resolve
one ratio more finely: --focus=offline (the floor against kdistill offline,
against kdistill offline with a distillation loss that does no work: the
step's own cost, apart from the soft-target loss's arithmetic, and against
the leanest offline step one would write by hand for the same loss,
`common.HandWrittenOffline`) and
--focus=online (the floor, the teacher's forward pass, kdistill online and
Keras's distiller). --shuffle_order runs the variants of each round in a new
random order, so no variant always follows the same one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import common  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from kdistill import Distiller, backend, cache_teacher_outputs, offline_targets  # noqa: E402
from kdistill.backend import keras, tf  # noqa: E402
from kdistill.losses import SoftTargetKD  # noqa: E402

flags.DEFINE_string("data_path", None, "MNIST-layout .npz (default: synthetic 28x28 inputs).")
flags.DEFINE_boolean("smoke", False, "Tiny sizes: checks the script runs.")
flags.DEFINE_integer("samples", 60000, "Training samples per epoch (MLP pair, and the job).")
flags.DEFINE_integer("cnn_samples", 12800, "Training samples per epoch of the CNN pair.")
flags.DEFINE_integer("batch_size", 128, "Batch size of every variant.")
flags.DEFINE_integer("rounds", 6, "Timed rounds (one epoch per variant each).")
flags.DEFINE_float(
    "max_steal",
    0.02,
    "A round in which the hypervisor took more than this share of any variant's "
    "CPU time is repeated (1 turns this off).",
)
flags.DEFINE_string("only", None, "Internal: run one variant for the memory measurement.")
flags.DEFINE_string("pair", "mlp", "Internal: the model pair for --only.")
flags.DEFINE_list("pairs", ["mlp", "cnn"], "Model pairs to measure.")
flags.DEFINE_string(
    "results_name",
    None,
    "Name of the results file, to keep a repeated run apart "
    "(default: throughput, or throughput_<focus>).",
)
flags.DEFINE_boolean("job", True, "Also time the whole 10-epoch job against Keras's distiller.")
flags.DEFINE_enum(
    "focus",
    "all",
    ["all", "offline", "online"],
    "all: every variant, memory and the job (results in throughput.json). offline: only "
    "the floor, kdistill offline and kdistill offline with a loss that does no work, "
    "alternated for --rounds rounds, to resolve their ratios more finely than the full "
    "run can (results in throughput_offline.json). "
    "online: the floor, the teacher's forward pass, kdistill online and Keras's "
    "distiller (results in throughput_online.json).",
)
flags.DEFINE_list(
    "settings",
    ["off-1", "on-1", "off-16", "on-16"],
    "jit_compile (on/off) and steps_per_execution of each setting to measure, as JIT-STEPS.",
)
flags.DEFINE_enum(
    "step_logs",
    "loss",
    ["loss", "all"],
    "What kdistill's steps return to fit each step (Distiller.compile's step_logs). "
    '"loss", the default here, returns what the floor returns: the loss only.',
)
flags.DEFINE_boolean(
    "shuffle_order", False, "Run each round's variants in a new random order (seeded)."
)
FLAGS = flags.FLAGS

VARIANTS = (
    "student_floor",
    "teacher_forward",
    "kdistill_online",
    "kdistill_offline",
    "keras_distiller",
)


class EpochTimer(keras.callbacks.Callback):
    """Wall and CPU time from the start to the end of each epoch, inside `fit`.

    `fit`'s own set-up (data adapters, callbacks) is left out: what is
    timed is the training loop that the variants differ in. The CPU time is
    this process's (all threads); time the hypervisor steals from the
    virtual CPUs is largely left out of it, so it moves less than the wall
    time between rounds (it still shows neighbours that slow the CPUs).
    """

    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self.started = (time.perf_counter(), time.process_time())

    def on_epoch_end(self, epoch, logs=None):
        wall, cpu = self.started
        self.seconds.append((time.perf_counter() - wall, time.process_time() - cpu))


def batched(*arrays):
    """The arrays as a batched, cached tf.data pipeline, the same for every variant."""
    dataset = tf.data.Dataset.from_tensor_slices(arrays).batch(FLAGS.batch_size)
    return dataset.cache().prefetch(tf.data.AUTOTUNE)


def build(name, teacher, make_student, x, y, cached, jit, spe):
    """Returns a function that runs one epoch of variant `name` and returns its
    (wall seconds, CPU seconds)."""
    options = dict(jit_compile=jit, steps_per_execution=spe)
    if name == "teacher_forward":
        return forward_epoch(teacher, batched(x, y), jit, spe)
    timer = EpochTimer()
    dataset = batched(x, y)
    if name == "student_floor":
        model = make_student()
        model.compile(keras.optimizers.Adam(1e-3), common.sparse_ce(), **options)
    elif name == "handwritten_offline":
        model = common.HandWrittenOffline(make_student(), alpha=0.1, temperature=4.0)
        model.compile(keras.optimizers.Adam(1e-3), **options)
        dataset = batched(x, offline_targets(y, cached))
    elif name == "keras_distiller":
        if backend.LEGACY_KERAS:
            return None
        model = keras.distillation.Distiller(
            teacher=teacher,
            student=make_student(),
            distillation_losses=keras.distillation.LogitsDistillation(temperature=4.0),
            student_loss_weight=0.1,
        )
        model.compile(keras.optimizers.Adam(1e-3), loss=common.sparse_ce(), **options)
    else:
        online = name == "kdistill_online"
        loss = common.NoWorkLoss() if name == "kdistill_offline_no_work_loss" else SoftTargetKD(4.0)
        model = Distiller(teacher if online else None, make_student(), loss, alpha=0.1)
        model.compile(
            keras.optimizers.Adam(1e-3), common.sparse_ce(), step_logs=FLAGS.step_logs, **options
        )
        if not online:
            dataset = batched(x, offline_targets(y, cached))

    def epoch():
        model.fit(dataset, epochs=1, verbose=0, callbacks=[timer])
        return timer.seconds[-1]

    return epoch


def forward_epoch(teacher, dataset, jit, spe):
    """One teacher forward pass per batch, run the way `fit` runs steps.

    With steps_per_execution=1, a Python loop calls one compiled forward
    pass per batch (as `fit` calls one compiled step); with more, one
    compiled function runs the whole epoch's forward passes.
    """
    forward = tf.function(lambda x: teacher(x, training=False), jit_compile=jit)

    @tf.function
    def all_batches():
        total = tf.zeros(())
        for x, _ in dataset:
            total += tf.reduce_sum(forward(x))
        return total

    def epoch():
        wall, cpu = time.perf_counter(), time.process_time()
        if spe > 1:
            all_batches().numpy()
        else:
            for x, _ in dataset:
                out = forward(x)
            out.numpy()
        return time.perf_counter() - wall, time.process_time() - cpu

    return epoch


def stolen_seconds():
    """CPU seconds the hypervisor gave to other guests so far, summed over CPUs.

    The "steal" column of /proc/stat (Linux); None where it cannot be read.
    """
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def stolen_share(since, seconds):
    """Share of the CPUs stolen in the `seconds` since `stolen_seconds()` read `since`."""
    now = stolen_seconds()
    if since is None or now is None:
        return 0.0
    return (now - since) / (seconds * (os.cpu_count() or 1))


def timed_epoch(run):
    """Runs one epoch; returns (wall seconds, CPU seconds, share of the CPUs stolen meanwhile)."""
    since = stolen_seconds()
    seconds, cpu_seconds = run()
    return seconds, cpu_seconds, stolen_share(since, seconds)


def timed_rounds(kind, x, y, jit, spe, rounds, variants):
    teacher, make_student = common.model_pair(kind, x.shape[1:], 10)
    cached = cache_teacher_outputs(teacher, x, batch_size=1024)
    runs = {n: build(n, teacher, make_student, x, y, cached, jit, spe) for n in variants}
    runs = {n: f for n, f in runs.items() if f is not None}
    for run in runs.values():  # warm-up: tracing, XLA compilation, caches
        run()
    times = {n: [] for n in runs}
    cpu_times = {n: [] for n in runs}
    stolen, repeated = [], 0
    order = np.random.default_rng(0)
    while len(stolen) < rounds:
        names = list(runs)
        if FLAGS.shuffle_order:
            order.shuffle(names)
        measured = {name: timed_epoch(runs[name]) for name in names}
        worst = max(share for _, _, share in measured.values())
        if worst > FLAGS.max_steal and repeated < rounds:
            repeated += 1
            continue
        for name, (seconds, cpu_seconds, _) in measured.items():
            times[name].append(seconds)
            cpu_times[name].append(cpu_seconds)
        stolen.append(worst)
    result = {
        "teacher_params": int(teacher.count_params()),
        "student_params": int(make_student().count_params()),
        "samples": len(x),
        "stolen_share_per_round": stolen,
        "rounds_repeated_for_steal": repeated,
    }
    for clock, suffix in ((times, ""), (cpu_times, "_cpu")):
        result.update(ratios(clock, suffix))
    return result


def ratios(times, suffix):
    """Per-epoch seconds and the paired ratios of one clock (wall or CPU)."""
    result = {
        f"epoch_seconds_median{suffix}": {n: float(np.median(t)) for n, t in times.items()},
        f"epoch_seconds_all{suffix}": times,
        f"relative_to_floor{suffix}": {
            n: float(np.median(np.divide(t, times["student_floor"]))) for n, t in times.items()
        },
    }
    per_round = {  # ratio name -> that ratio in each round, where its variants ran
        "offline_over_floor": ("kdistill_offline", ("student_floor",)),
        "no_work_loss_over_floor": ("kdistill_offline_no_work_loss", ("student_floor",)),
        "handwritten_over_floor": ("handwritten_offline", ("student_floor",)),
        "offline_over_handwritten": ("kdistill_offline", ("handwritten_offline",)),
        "online_over_ideal": ("kdistill_online", ("student_floor", "teacher_forward")),
        "online_over_keras": ("kdistill_online", ("keras_distiller",)),
    }
    for name, (numerator, parts) in per_round.items():
        if numerator in times and all(p in times for p in parts):
            values = np.divide(times[numerator], np.sum([times[p] for p in parts], axis=0))
            result[f"{name}{suffix}"] = float(np.median(values))
            result[f"{name}_ci90{suffix}"] = common.median_interval(values)
    return result


def memory(kind, jit, spe):
    """Peak RSS during a training epoch of each variant, each in a fresh process
    (the kernel's peak mark is reset after data loading and the first epoch)."""
    result = {}
    for name in VARIANTS[:1] if FLAGS.smoke else VARIANTS:
        if name == "keras_distiller" and backend.LEGACY_KERAS:
            continue
        args = [
            sys.executable,
            os.path.abspath(__file__),
            f"--only={name}",
            f"--pair={kind}",
            f"--samples={FLAGS.cnn_samples if kind == 'cnn' else FLAGS.samples}",
            f"--batch_size={FLAGS.batch_size}",
            f"--step_logs={FLAGS.step_logs}",
        ]
        if FLAGS.data_path:
            args.append(f"--data_path={FLAGS.data_path}")
        if FLAGS.smoke:
            args.append("--smoke")
        out = subprocess.run(
            args,
            capture_output=True,
            text=True,
            env=dict(os.environ, KD_JIT=str(jit), KD_SPE=str(spe)),
        )
        lines = [l for l in out.stdout.splitlines() if l.startswith("PEAK_RSS_MB")]
        result[name] = float(lines[-1].split()[1]) if lines else None
    return result


def job(x, y, x_test, y_test, recommended, seed, epochs):
    """A whole distillation job; returns (wall seconds, CPU seconds, student test
    accuracy, share stolen)."""
    keras.utils.set_random_seed(seed)
    teacher, make_student = common.model_pair("mlp", x.shape[1:], 10)
    teacher.set_weights(TRAINED_TEACHER.get_weights())
    since = stolen_seconds()
    start, cpu_start = time.perf_counter(), time.process_time()
    if recommended:
        cached = cache_teacher_outputs(teacher, x, batch_size=1024)
        model = Distiller(None, make_student(), SoftTargetKD(4.0), alpha=0.1)
        model.compile(
            keras.optimizers.Adam(1e-3),
            common.sparse_ce(),
            jit_compile=True,
            steps_per_execution=16,
            step_logs="loss",
        )
        model.fit(
            x, offline_targets(y, cached), batch_size=FLAGS.batch_size, epochs=epochs, verbose=0
        )
    else:
        model = keras.distillation.Distiller(
            teacher=teacher,
            student=make_student(),
            distillation_losses=keras.distillation.LogitsDistillation(temperature=4.0),
            student_loss_weight=0.1,
        )
        model.compile(keras.optimizers.Adam(1e-3), loss=common.sparse_ce())
        model.fit(x, y, batch_size=FLAGS.batch_size, epochs=epochs, verbose=0)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    share = stolen_share(since, seconds)
    logits = np.asarray(model.student.predict(x_test, verbose=0))
    return seconds, cpu_seconds, float(np.mean(np.argmax(logits, -1) == y_test)), share


TRAINED_TEACHER = None


def data():
    if FLAGS.data_path:
        split = common.load(FLAGS.data_path, FLAGS.smoke)
        x, y = split.x_train[: FLAGS.samples], split.y_train[: FLAGS.samples]
        return x, y, split
    rng = np.random.default_rng(0)
    n = 256 if FLAGS.smoke else FLAGS.samples
    return rng.random((n, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, n), None


def run_settings(samples):
    """The settings every throughput results file records."""
    return {
        "samples": samples,
        "cnn_samples": FLAGS.cnn_samples,
        "batch_size": FLAGS.batch_size,
        "rounds": FLAGS.rounds,
        "max_steal": FLAGS.max_steal,
        "kdistill_step_logs": FLAGS.step_logs,
        "variant_order": "shuffled per round" if FLAGS.shuffle_order else "fixed",
        "ratios": "median over rounds of each round's ratio; ci90: bootstrap 90% interval "
        "of that median",
        "data": FLAGS.data_path or "synthetic 28x28x1",
    }


def measure(kind, x, y, jit, spe, variants):
    """`timed_rounds` for one pair and setting, labelled with them."""
    n = FLAGS.cnn_samples if kind == "cnn" else len(x)
    measured = timed_rounds(kind, x[:n], y[:n], jit, spe, FLAGS.rounds, variants)
    measured.update(pair=kind, jit_compile=jit, steps_per_execution=spe)
    return measured


FOCUSED = {  # --focus -> (variants, ratios printed)
    "offline": (
        (
            "student_floor",
            "kdistill_offline",
            "kdistill_offline_no_work_loss",
            "handwritten_offline",
        ),
        (
            "offline_over_floor",
            "no_work_loss_over_floor",
            "handwritten_over_floor",
            "offline_over_handwritten",
        ),
    ),
    "online": (
        ("student_floor", "teacher_forward", "kdistill_online", "keras_distiller"),
        ("online_over_ideal", "online_over_keras"),
    ),
}


def focused(x, y, configs):
    """A subset of the variants for many rounds (--focus=offline or online)."""
    variants, printed = FOCUSED[FLAGS.focus]
    results = {"settings": run_settings(len(x)), "speed": []}
    for kind in FLAGS.pairs:
        for jit, spe in configs:
            measured = measure(kind, x, y, jit, spe, variants)
            results["speed"].append(measured)
            summary = "; ".join(
                f"{r} {measured[r]:.3f} {interval_text(measured[r + '_ci90'])}, CPU "
                f"{measured[r + '_cpu']:.3f} {interval_text(measured[r + '_ci90_cpu'])}"
                for r in printed
                if r in measured
            )
            print(f"{kind} jit={jit} spe={spe}: {summary}", flush=True)
    common.write(FLAGS.results_name or f"throughput_{FLAGS.focus}", results, FLAGS.smoke)


def interval_text(interval):
    return f"({interval[0]:.3f}-{interval[1]:.3f})"


def parse_settings(settings):
    """["on-16", ...] -> [(True, 16), ...]; a clear error for anything else."""
    configs = []
    for setting in settings:
        jit, _, spe = setting.partition("-")
        if jit not in ("on", "off") or not spe.isdigit() or int(spe) < 1:
            raise app.UsageError(
                f"Invalid value in --settings: {setting!r}. Write each setting as "
                "JIT-STEPS with JIT on or off and STEPS a positive integer, e.g. on-16."
            )
        configs.append((jit == "on", int(spe)))
    return configs


def main(argv):
    global TRAINED_TEACHER
    configs = parse_settings(FLAGS.settings)
    x, y, split = data()
    if FLAGS.smoke:
        FLAGS.rounds = 1
    if FLAGS.only:  # memory probe in a fresh process
        jit = os.environ.get("KD_JIT") == "True"
        spe = int(os.environ.get("KD_SPE", "1"))
        teacher, make_student = common.model_pair(FLAGS.pair, x.shape[1:], 10)
        cached = cache_teacher_outputs(teacher, x, batch_size=1024)
        run = build(FLAGS.only, teacher, make_student, x, y, cached, jit, spe)
        run()  # tracing and first-epoch allocations
        baseline = common.peak_rss_mb() if not common.reset_peak_rss() else None
        run()
        if baseline is not None:
            print("PEAK_RSS_NOT_RESETTABLE", baseline)
        print(f"PEAK_RSS_MB {common.peak_rss_mb():.1f}")
        return
    if FLAGS.smoke:
        configs = configs[:1]
    if FLAGS.focus != "all":
        focused(x, y, configs)
        return
    results = {"settings": run_settings(len(x)), "speed": [], "memory": {}}
    for kind in FLAGS.pairs:
        for jit, spe in configs:
            measured = measure(kind, x, y, jit, spe, VARIANTS)
            results["speed"].append(measured)
            rel = measured["relative_to_floor"]
            print(
                f"{kind} jit={jit} spe={spe}: "
                + ", ".join(f"{k} {v:.2f}x" for k, v in rel.items())
                + f"; online/ideal {measured['online_over_ideal']:.2f}"
                + f"; CPU: offline/floor {measured['offline_over_floor_cpu']:.2f}"
                + f", online/ideal {measured['online_over_ideal_cpu']:.2f}",
                flush=True,
            )
        results["memory"][kind] = memory(kind, False, 1)
        print(f"{kind} peak RSS MiB: {results['memory'][kind]}", flush=True)
    if FLAGS.job and (split is not None or FLAGS.smoke):
        if split is None:
            split = common.load(None, True)
            split.x_train = np.resize(split.x_train, (len(x),) + split.x_train.shape[1:])
        epochs = 1 if FLAGS.smoke else 10
        seeds = (0,) if FLAGS.smoke else (0, 1, 2)
        xt, yt = split.x_train[: len(x)], split.y_train[: len(x)]
        shape = xt.shape[1:]
        TRAINED_TEACHER = common.model_pair("mlp", shape, 10)[0]
        TRAINED_TEACHER.compile(
            keras.optimizers.Adam(1e-3), common.sparse_ce(), metrics=["accuracy"]
        )
        TRAINED_TEACHER.fit(xt, yt, batch_size=FLAGS.batch_size, epochs=epochs, verbose=0)
        fields = ("seconds", "cpu_seconds", "accuracy", "stolen_share")
        jobs = {
            n: {f: [] for f in fields} for n in ("kdistill_recommended", "keras_distiller_defaults")
        }
        if not backend.LEGACY_KERAS:
            for seed in seeds:
                for name, record in jobs.items():
                    recommended = name.startswith("kdistill")
                    measured = job(xt, yt, split.x_test, split.y_test, recommended, seed, epochs)
                    for field, value in zip(fields, measured):
                        record[field].append(value)
            k, b = jobs["kdistill_recommended"], jobs["keras_distiller_defaults"]
            results["job"] = {
                "epochs": epochs,
                "seeds": list(seeds),
                **jobs,
                "speedup": float(np.mean(b["seconds"]) / np.mean(k["seconds"])),
                "speedup_cpu": float(np.mean(b["cpu_seconds"]) / np.mean(k["cpu_seconds"])),
                "settings": "kdistill: offline cached teacher outputs (cache time included), "
                "jit_compile=True, steps_per_execution=16, step_logs='loss'; Keras: defaults",
            }
            print(
                f"job speedup {results['job']['speedup']:.2f}x; accuracy kdistill "
                f"{common.mean_std(k['accuracy'])} vs keras {common.mean_std(b['accuracy'])}"
            )
    common.write(FLAGS.results_name or "throughput", results, FLAGS.smoke)


if __name__ == "__main__":
    app.run(main)
