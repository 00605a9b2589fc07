"""Shared helpers of the benchmarks: results files, machine info, data."""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from kdistill import atomic, backend, data, models  # noqa: E402
from kdistill.backend import keras, tf  # noqa: E402
from kdistill.losses import DistillationLoss, SoftTargetKD, soft_target_kd  # noqa: E402

RESULTS = os.environ.get(
    "KDISTILL_BENCHMARK_RESULTS",
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"),
)


def machine() -> dict:
    """What the numbers were measured on."""
    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": f"{backend.KERAS_NAME} {getattr(keras, '__version__', '')}".strip(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "processor": cpu_model() or platform.processor() or platform.machine(),
        "simd": simd_features(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo ('' where there is none)."""
    return _cpuinfo_field("model name")


# Vector instructions that decide float and int8 kernel speed: x86's (VNNI and
# AMX are the integer dot-product units int8 inference profits from) and Arm's
# (asimddp and i8mm are its int8 dot products), as /proc/cpuinfo spells them.
_SIMD = (
    *("avx2", "fma", "f16c", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8"),
    *("asimd", "asimddp", "sve", "sve2", "i8mm", "bf16"),
)


def simd_features(cpuinfo: str = "/proc/cpuinfo") -> list:
    """Which of `_SIMD` the CPU has: x86 lists them as "flags", Arm as
    "Features" (empty where the file is missing).

    Example:
        >>> simd_features()  # on an AMD EPYC with AVX-512
        ['avx2', 'fma', 'f16c', 'avx512f', 'avx512_vnni', 'avx512_bf16']
    """
    flags = set(_cpuinfo_field("flags", cpuinfo).split())
    flags |= set(_cpuinfo_field("features", cpuinfo).split())
    return [name for name in _SIMD if name in flags]


def _cpuinfo_field(field: str, cpuinfo: str = "/proc/cpuinfo") -> str:
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.lower().startswith(field):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def write(name: str, payload: dict, smoke: bool) -> str:
    """Writes benchmarks/results/<name>.json (<name>.smoke.json in smoke mode)."""
    payload = {"benchmark": name, "smoke": smoke, "machine": machine(), **payload}
    path = os.path.join(RESULTS, f"{name}{'.smoke' if smoke else ''}.json")
    atomic.write_text(path, json.dumps(payload, indent=2, default=float))
    print(f"wrote {path}")
    return path


def reset_peak_rss() -> bool:
    """Resets the kernel's peak-RSS mark (Linux >= 4.0); False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """Peak resident memory in MiB since the last `reset_peak_rss` (or start)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load(data_path, smoke, max_train=None):
    """MNIST from `data_path`, else digits; smoke mode keeps it tiny."""
    split = data.load("digits" if not data_path else "mnist", data_path, max_train=max_train)
    if smoke:
        split.x_train, split.y_train = split.x_train[:256], split.y_train[:256]
        split.x_test, split.y_test = split.x_test[:128], split.y_test[:128]
    return split


def mean_std(values) -> str:
    return f"{np.mean(values):.4f} ± {np.std(values):.4f}"


def student_width_for_ratio(shape, classes, teacher_params, ratio) -> int:
    """The width of the built-in student closest to a parameter ratio.

    Args:
        shape: Input shape of one sample.
        classes: Number of classes.
        teacher_params: The teacher's parameter count.
        ratio: How many times fewer parameters the student should have.

    Returns:
        The even width (2 to 512) for `models.student_for` whose parameter
        count is closest to ``teacher_params / ratio``.
    """
    target = teacher_params / ratio
    best = None
    for width in range(2, 513, 2):
        params = models.student_for(shape, classes, width).count_params()
        if best is None or abs(params - target) < abs(best[1] - target):
            best = (width, params)
    return best[0]


def model_pair(kind, shape, classes):
    """Teacher and student factory: about 10x parameters apart."""
    if kind == "mlp":
        teacher = models.mlp(shape, classes, (600, 600), name="teacher")
        return teacher, lambda: models.mlp(shape, classes, (100, 64), name="student")
    teacher = models.small_cnn(shape, classes, (32, 64), 256, name="teacher")
    return teacher, lambda: models.small_cnn(shape, classes, (8, 16), 64, name="student")


class NoWorkLoss(DistillationLoss):
    """A distillation loss of zero for every sample, with no gradient: the
    offline step with it is kdistill's step without the soft-target loss's
    arithmetic (the control of throughput.py --focus=offline and of step_profile.py)."""

    def per_sample(self, teacher_outputs, student_outputs, y_true=None):
        return tf.zeros(tf.shape(student_outputs)[:1])


class DerivedGradientKD(SoftTargetKD):
    """SoftTargetKD as plain operations, its gradient derived by TensorFlow:
    the control for the gradient `losses.soft_target_kd` writes out."""

    def per_sample(self, teacher_outputs, student_outputs, y_true=None):
        t = tf.convert_to_tensor(self.temperature)
        teacher_log_p = tf.nn.log_softmax(teacher_outputs / t)
        student_log_p = tf.nn.log_softmax(student_outputs / t)
        kl = tf.reduce_sum(tf.exp(teacher_log_p) * (teacher_log_p - student_log_p), -1)
        return t * t * kl


class HandWrittenOffline(keras.Model):
    """The leanest offline distillation step one would write by hand: the
    yardstick for how much of the offline step's cost is the soft-target
    loss's own arithmetic, which no framework can skip.

    One student, labels by TensorFlow's fused sparse cross-entropy, the
    soft-target loss at a fixed (constant) temperature, one mean, one logged
    loss: none of the Distiller's generality (sample weights, several losses
    or outputs, schedulable temperature and alpha, replicas, the logged parts).

    Args:
        student: The model trained.
        alpha: Weight of the label loss; the soft-target loss gets 1 - alpha.
        temperature: The soft-target temperature (a Python float).
        prepared: Whether the cached teacher outputs are the teacher's
            log-probabilities at `temperature`, computed once before training
            (see `tempered_log_probs`), instead of its logits: the step then
            skips the teacher's softmax, at the price of a cache tied to one
            temperature.

    Example:
        >>> model = HandWrittenOffline(student, alpha=0.1, temperature=4.0)
        >>> model.compile(keras.optimizers.Adam(1e-3))
        >>> model.fit(x, offline_targets(y, cached_logits), batch_size=128)
    """

    def __init__(self, student, alpha, temperature, prepared=False):
        super().__init__()
        self.student = student
        self.alpha, self.temperature, self.prepared = alpha, temperature, prepared
        self.loss_mean = keras.metrics.Mean(name="loss")

    def call(self, x, training=False):
        return self.student(x, training=training)

    @property
    def metrics(self):
        return [self.loss_mean]

    def train_step(self, data):
        x, targets = data
        labels, teacher = targets["labels"], targets["teacher_outputs"]
        with tf.GradientTape() as tape:
            logits = self.student(x, training=True)
            hard = tf.nn.sparse_softmax_cross_entropy_with_logits(tf.cast(labels, tf.int32), logits)
            if self.prepared:
                soft = _kd_from_log_probs(teacher, logits, self.temperature)
            else:
                soft = soft_target_kd(teacher, logits, self.temperature)
            loss = tf.reduce_mean(self.alpha * hard + (1.0 - self.alpha) * soft)
        backend.minimize(self.optimizer, tape, loss, self.student.trainable_variables)
        self.loss_mean.update_state(loss)
        return {"loss": self.loss_mean.result()}


def tempered_log_probs(teacher_logits, temperature):
    """The teacher's log-probabilities at `temperature`: what
    `HandWrittenOffline(prepared=True)` takes as cached outputs."""
    return tf.nn.log_softmax(tf.cast(teacher_logits, tf.float32) / temperature).numpy()


def _kd_from_log_probs(teacher_log_p, student_logits, temperature):
    """T^2 * KL(p_t || p_s) per sample from the teacher's log-probabilities
    at T, with the gradient for the student's logits written out."""

    @tf.custom_gradient
    def kd(student_logits):
        student_log_p = tf.nn.log_softmax(student_logits * (1.0 / temperature))
        teacher_p = tf.exp(teacher_log_p)
        kl = tf.reduce_sum(teacher_p * (teacher_log_p - student_log_p), -1)

        def gradient(upstream):
            scale = tf.expand_dims(upstream * temperature, -1)
            return scale * (tf.exp(student_log_p) - teacher_p)

        return (temperature * temperature) * kl, gradient

    return kd(student_logits)


def sparse_ce():
    """The hard-label loss of every benchmark: sparse cross-entropy on logits."""
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def median_interval(values, level=0.9, resamples=2000):
    """Bootstrap interval of the median of `values` (seeded, so reproducible)."""
    rng = np.random.default_rng(0)
    medians = np.median(rng.choice(values, (resamples, len(values))), axis=1)
    tail = (1 - level) / 2 * 100
    return [float(np.percentile(medians, tail)), float(np.percentile(medians, 100 - tail))]
