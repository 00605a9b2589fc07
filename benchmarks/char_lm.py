"""Distilling a byte-level language model on real text: Python's own standard library.

The corpus is a fixed list of the standard library's `.py` files, found next to
`os.__file__` on any Python install (no download): eight files to train on, two
others to validate on, each read as bytes (a vocabulary of 256; the files are
ASCII, so a byte is a character). Their size and sha256 are recorded, since
they change with the Python version.

A teacher (dilated causal convolutions, WaveNet-style, 6 residual blocks of
width 128) is trained on the labels; a student with the same receptive field
and about a tenth of its parameters (width 32) is trained from the same
initial weights in several ways:

- labels alone (next-byte cross-entropy);
- forward KL online (`SoftTargetKD`, Hinton), reverse KL online (`ReverseKL`,
  MiniLLM), generalised JSD online (`GeneralizedJSD`, GKD), all at T=1 mixed
  with the labels by `--alpha`;
- forward KL offline from the teacher's cached logits: the full cache, and the
  top-k cache (`cache_teacher_outputs(top_k=k)`) for each of `--top_k`, with
  the cache's memory reported.

Each row gives validation bits per character (cross-entropy in bits per byte
over every validation position), next-byte accuracy, training seconds, and the
load average of the machine around it. The teacher and the labels-only
student are exported to `.tflite` (float32 and dynamic-range, a fixed window of
`--length` bytes) and measured by `kdistill.tflite`: size, latency per window
(batch 1, one thread) and the file's own bits per character.

    python benchmarks/char_lm.py            # about 20 minutes on 2 CPU cores
    python benchmarks/char_lm.py --smoke    # seconds: checks the script runs
"""

from __future__ import annotations

import hashlib
import inspect
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import common  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

import kdistill  # noqa: E402
from kdistill import export, losses, tflite  # noqa: E402
from kdistill.backend import keras, tf  # noqa: E402

TRAIN_FILES = (
    "argparse.py",
    "dataclasses.py",
    "inspect.py",
    "typing.py",
    "difflib.py",
    "configparser.py",
    "subprocess.py",
    "threading.py",
)
VALIDATION_FILES = ("shutil.py", "textwrap.py")
VOCABULARY = 256
DILATIONS = (1, 2, 4, 8, 16, 32)  # kernel 2: each position sees the 64 bytes before it

FLAGS = flags.FLAGS


def define_flags():
    """Defines the flags; only when run as a script, so tests can import the measures."""
    flags.DEFINE_boolean("smoke", False, "Tiny sizes: checks the script runs.")
    flags.DEFINE_integer("length", 64, "Positions per training sequence (and the exported window).")
    flags.DEFINE_integer("train_bytes", 0, "Bytes of the training files used (0: all).")
    flags.DEFINE_integer("validation_bytes", 0, "Bytes of the validation files used (0: all).")
    flags.DEFINE_integer("teacher_width", 128, "Width of the teacher's blocks.")
    flags.DEFINE_integer("student_width", 32, "Width of the student's blocks.")
    flags.DEFINE_integer("teacher_epochs", 8, "Teacher training epochs.")
    flags.DEFINE_integer("student_epochs", 5, "Epochs of every student row.")
    flags.DEFINE_integer("batch_size", 64, "Sequences per batch.")
    flags.DEFINE_float("learning_rate", 3e-3, "Adam learning rate.")
    flags.DEFINE_float("alpha", 0.5, "Weight of the label loss in the distilled rows.")
    flags.DEFINE_list("top_k", ["8", "32"], "k of the top-k offline rows.")
    flags.DEFINE_list("seeds", ["1", "2"], "Student seeds: every row is trained once per seed.")
    flags.DEFINE_list("rows", None, "Only these student rows (default: all).")


def stdlib_corpus(files, limit: int) -> tuple[bytes, dict]:
    """The named standard-library files as one byte string, and what it is."""
    folder = os.path.dirname(os.__file__)
    text = b"".join(_read(os.path.join(folder, name)) for name in files)
    if limit:
        text = text[:limit]
    return text, {
        "files": list(files),
        "bytes": len(text),
        "sha256": hashlib.sha256(text).hexdigest(),
        "non_ascii_bytes": int(np.sum(np.frombuffer(text, np.uint8) > 127)),
    }


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def sequences(text: bytes, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Non-overlapping windows of `length` bytes and the byte after each position."""
    ids = np.frombuffer(text, np.uint8).astype("int32")
    count = (len(ids) - 1) // length
    x = ids[: count * length].reshape(count, length)
    y = ids[1 : count * length + 1].reshape(count, length)
    return x, y


def byte_lm(width: int, name: str):
    """Embedding, residual blocks of dilated causal convolutions, logits per position."""
    token_ids = keras.Input((None,), dtype="int32", name="token_ids")
    h = keras.layers.Embedding(VOCABULARY, width, name=f"{name}_embedding")(token_ids)
    for dilation in DILATIONS:
        conv = keras.layers.Conv1D(
            2 * width, 2, padding="causal", dilation_rate=dilation, activation="relu"
        )
        h = keras.layers.Add()([h, keras.layers.Dense(width)(conv(h))])
    logits = keras.layers.Dense(VOCABULARY, name=f"{name}_logits")(h)
    return keras.Model(token_ids, logits, name=name)


def bits_per_char(logits: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Mean cross-entropy in bits per position, and the next-byte accuracy."""
    log_p = tf.nn.log_softmax(tf.constant(logits, tf.float32)).numpy()
    picked = np.take_along_axis(log_p, y[..., None], -1)[..., 0]
    return float(-picked.mean() / np.log(2)), float(np.mean(logits.argmax(-1) == y))


def _compile(model, loss=None):
    model.compile(
        optimizer=keras.optimizers.Adam(FLAGS.learning_rate),
        loss=loss or keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def _fit(model, x, y, epochs):
    model.fit(x, y, batch_size=FLAGS.batch_size, epochs=epochs, shuffle=True, verbose=0)


def _cache_bytes(cached) -> int:
    return int(sum(np.asarray(a).nbytes for a in tf.nest.flatten(cached)))


def _has_top_k() -> bool:
    return "top_k" in inspect.signature(kdistill.cache_teacher_outputs).parameters


def student_rows(k_values) -> dict:
    """Each student row: what it trains with, or why it cannot run here."""
    rows = {"labels": {"kind": "labels"}}
    for name, loss_name in (
        ("forward KL", "SoftTargetKD"),
        ("reverse KL", "ReverseKL"),
        ("generalized JSD b=0.5", "GeneralizedJSD"),
    ):
        rows[name] = {"kind": "online", "loss": loss_name}
    rows["offline forward KL (full cache)"] = {"kind": "offline", "top_k": None}
    for k in k_values:
        rows[f"offline forward KL (top-{k})"] = {"kind": "offline", "top_k": k}
    for row in rows.values():
        loss_name = row.get("loss")
        if loss_name and not hasattr(losses, loss_name):
            row["missing"] = f"kdistill.losses.{loss_name} does not exist in this checkout"
        if row.get("top_k") and not _has_top_k():
            row["missing"] = "kdistill.cache_teacher_outputs has no top_k in this checkout"
    return rows


def _distillation_loss(loss_name):
    if loss_name == "GeneralizedJSD":
        return losses.GeneralizedJSD(beta=0.5, temperature=1.0)
    return getattr(losses, loss_name)(temperature=1.0)


def train_student(row, teacher, data, cache, seed):
    """Trains a fresh student (the same initial weights in every row for a
    seed); returns it and the wall seconds."""
    keras.utils.set_random_seed(seed)
    student = byte_lm(FLAGS.student_width, "student")
    x, y = data
    started = time.perf_counter()
    if row["kind"] == "labels":
        _fit(_compile(student), x, y, FLAGS.student_epochs)
        return student, time.perf_counter() - started
    if row["kind"] == "online":
        distiller = kdistill.Distiller(
            teacher=teacher,
            student=student,
            distillation_loss=_distillation_loss(row["loss"]),
            alpha=FLAGS.alpha,
        )
        _fit(_compile(distiller), x, y, FLAGS.student_epochs)
        return student, time.perf_counter() - started
    targets = kdistill.offline_targets(y, cache[row["top_k"]])
    distiller = kdistill.Distiller(
        teacher=None,
        student=student,
        distillation_loss=losses.SoftTargetKD(temperature=1.0),
        alpha=FLAGS.alpha,
    )
    _fit(_compile(distiller), x, targets, FLAGS.student_epochs)
    return student, time.perf_counter() - started


def teacher_caches(teacher, x, rows) -> tuple[dict, dict]:
    """The teacher's cached outputs for each offline row's k, and their sizes."""
    caches, report = {}, {}
    for row in rows.values():
        if row["kind"] != "offline" or "missing" in row or row["top_k"] in caches:
            continue
        k = row["top_k"]
        started = time.perf_counter()
        if k is None:
            caches[k] = kdistill.cache_teacher_outputs(teacher, x, batch_size=256)
        else:
            caches[k] = kdistill.cache_teacher_outputs(teacher, x, batch_size=256, top_k=k)
        report["full" if k is None else f"top-{k}"] = {
            "bytes": _cache_bytes(caches[k]),
            "seconds": time.perf_counter() - started,
        }
    return caches, report


def exported(model, x_val, y_val, samples) -> dict:
    """Size, latency and bits per character of the model's .tflite files."""
    files = {}
    for mode in ("none", "dynamic"):
        flatbuffer = export.convert(model, mode, sequence_length=FLAGS.length)
        report = tflite.evaluate_tflite(
            flatbuffer, x_val, y_val, latency_samples=samples, num_threads=1
        )
        bits, _ = bits_per_char(tflite.TFLiteModel(flatbuffer).predict(x_val), y_val)
        files[mode] = {**report, "bits_per_char": bits}
    return files


_SETTINGS = (
    "length",
    "train_bytes",
    "validation_bytes",
    "teacher_width",
    "student_width",
    "teacher_epochs",
    "student_epochs",
    "batch_size",
    "learning_rate",
    "alpha",
    "top_k",
    "seeds",
)


def main(argv):
    started = time.perf_counter()
    tf.get_logger().setLevel("ERROR")  # each new model's first predict is a retrace
    if FLAGS.smoke:
        FLAGS.train_bytes, FLAGS.validation_bytes = 20_000, 4_000
        FLAGS.teacher_width, FLAGS.student_width = 16, 8
        FLAGS.teacher_epochs = FLAGS.student_epochs = 1
        FLAGS.top_k, FLAGS.seeds = ["4"], ["1"]
    train_text, train_info = stdlib_corpus(TRAIN_FILES, FLAGS.train_bytes)
    val_text, val_info = stdlib_corpus(VALIDATION_FILES, FLAGS.validation_bytes)
    x_train, y_train = sequences(train_text, FLAGS.length)
    x_val, y_val = sequences(val_text, FLAGS.length)
    print(f"train {train_info['bytes']} bytes, validation {val_info['bytes']} bytes")

    load_before = os.getloadavg()
    keras.utils.set_random_seed(0)
    teacher = _compile(byte_lm(FLAGS.teacher_width, "teacher"))
    teacher_started, teacher_cpu = time.perf_counter(), time.process_time()
    _fit(teacher, x_train, y_train, FLAGS.teacher_epochs)
    teacher_seconds = time.perf_counter() - teacher_started
    teacher_cpu = time.process_time() - teacher_cpu
    bits, accuracy = bits_per_char(teacher.predict(x_val, verbose=0), y_val)
    results = [
        {
            "model": "teacher",
            "trained_with": "labels",
            "params": int(teacher.count_params()),
            "val_bits_per_char": bits,
            "val_accuracy": accuracy,
            "train_seconds": teacher_seconds,
            "process_cpu_seconds": teacher_cpu,
            "load_average_1min": [load_before[0], os.getloadavg()[0]],
        }
    ]
    print(f"teacher: {bits:.3f} bits/char ({teacher_seconds:.0f} s)")
    payload = {
        "corpus": {
            "train": train_info,
            "validation": val_info,
            "python": common.machine()["python"],
        },
        "settings": {name: FLAGS[name].value for name in _SETTINGS},
        "sequences": {"train": int(len(x_train)), "validation": int(len(x_val))},
        "rows": results,
        "complete": False,  # written after every row; True once the files are measured
    }

    def save():
        payload.update(uptime=_uptime(), wall_seconds=time.perf_counter() - started)
        common.write("char_lm", payload, FLAGS.smoke)

    save()

    rows = student_rows([int(k) for k in FLAGS.top_k])
    if FLAGS.rows:
        unknown = sorted(set(FLAGS.rows) - set(rows))
        if unknown:
            raise app.UsageError(f"--rows: unknown {unknown}; the rows are {list(rows)}")
        rows = {name: row for name, row in rows.items() if name in FLAGS.rows}
    caches, cache_report = teacher_caches(teacher, x_train, rows)
    payload["teacher_cache"] = cache_report
    students, seeds = {}, [int(seed) for seed in FLAGS.seeds]
    for name, row in rows.items():
        if "missing" in row:
            print(f"{name}: not run ({row['missing']})")
            results.append({"model": "student", "trained_with": name, "missing": row["missing"]})
            continue
        load_before, cpu_before = os.getloadavg(), time.process_time()
        per_seed = []
        for seed in seeds:
            student, seconds = train_student(row, teacher, (x_train, y_train), caches, seed)
            students.setdefault(name, student)
            bits, accuracy = bits_per_char(student.predict(x_val, verbose=0), y_val)
            per_seed.append((bits, accuracy, seconds))
            print(f"{name}, seed {seed}: {bits:.3f} bits/char ({seconds:.0f} s)")
        bits, accuracy, seconds = np.asarray(per_seed).T
        results.append(
            {
                "model": "student",
                "trained_with": name,
                "params": int(student.count_params()),
                "seeds": seeds,
                "val_bits_per_char": float(bits.mean()),
                "val_bits_per_char_std": float(bits.std()),
                "val_bits_per_char_per_seed": bits.tolist(),
                "val_accuracy": float(accuracy.mean()),
                "train_seconds": float(seconds.mean()),
                "process_cpu_seconds": (time.process_time() - cpu_before) / len(seeds),
                "load_average_1min": [load_before[0], os.getloadavg()[0]],
            }
        )
        save()

    samples = 20 if FLAGS.smoke else 200
    files = {"teacher": exported(teacher, x_val, y_val, samples)}
    if "labels" in students:
        files["student (labels)"] = exported(students["labels"], x_val, y_val, samples)
    for model, by_mode in files.items():
        for mode, report in by_mode.items():
            print(
                f"{model} .tflite {mode}: {report['size_bytes'] / 1024:.1f} KB, "
                f"{report['latency_ms_median']:.3f} ms per {FLAGS.length}-byte window, "
                f"{report['bits_per_char']:.3f} bits/char"
            )
    payload.update(tflite=files, complete=True)
    save()


def _uptime() -> str:
    try:
        with open("/proc/loadavg") as f:
            return f.read().strip()
    except OSError:
        return ""


if __name__ == "__main__":
    define_flags()
    app.run(main)
