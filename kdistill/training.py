"""Ready-made training runs: a teacher, a student alone, a distilled student.

The command line, the strategy comparison and the examples share these so a
result means the same thing everywhere.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from kdistill import losses as losses_lib
from kdistill.backend import keras
from kdistill.data import Split
from kdistill.distiller import Distiller
from kdistill.offline import cache_teacher_outputs, offline_targets


@dataclasses.dataclass
class FitSettings:
    """How long and how fast to train.

    Attributes:
        epochs: Training epochs.
        batch_size: Batch size.
        learning_rate: Adam learning rate.
        seed: Seed for weights and shuffling.
        verbose: Keras verbosity (0 silent).
        lr_schedule: "constant", or "cosine" (decayed to 0 over the epochs).
        schedule_epochs: The epochs the cosine decay spans (default
            `epochs`): more than `epochs` trains the first epochs of a
            longer run (the probe of `kdistill.compare.search`).
    """

    epochs: int = 20
    batch_size: int = 64
    learning_rate: float = 2e-3
    seed: int = 0
    verbose: int = 0
    lr_schedule: str = "constant"
    schedule_epochs: int | None = None


LARGE_DATASET = 10_000
"""Training sets of at least this many samples get the shorter defaults of
`default_epochs` (each epoch is that many more steps)."""


def default_epochs(train_samples: int, teacher: bool = False) -> int:
    """The built-in number of epochs for a training set of this size.

    Small sets (digits: 1,437 samples) take 30 student and 40 teacher epochs;
    large ones (MNIST: 54,000) 10 student epochs (with `student_schedule`'s
    cosine decay) and 15 teacher epochs (with `teacher_settings`): each
    MNIST epoch is as many steps as 38 digits epochs, and there MNIST's
    students and teacher have stopped gaining (benchmarks/main_job_mnist.py,
    benchmarks/compression_frontier.py).

    Example:
        >>> default_epochs(1437), default_epochs(54000), default_epochs(54000, teacher=True)
        (30, 10, 15)
    """
    if train_samples >= LARGE_DATASET:
        return 15 if teacher else 10
    return 40 if teacher else 30


def student_schedule(train_samples: int) -> str:
    """The learning-rate schedule of `kdistill compare`'s students.

    "cosine" (decayed to 0 over the run) for large datasets, whose few
    epochs end at a rate too high to settle otherwise; "constant" for small
    ones (digits keeps its measured defaults).

    Example:
        >>> student_schedule(1437), student_schedule(54000)
        ('constant', 'cosine')
    """
    return "cosine" if train_samples >= LARGE_DATASET else "constant"


def teacher_settings(split: Split, epochs: int, seed: int) -> FitSettings:
    """How the built-in teacher trains: images with a cosine-decayed learning rate.

    The image teacher (see `kdistill.models.teacher_for`) decays its
    learning rate from 2e-3 to 0 (99.5% on MNIST in 15 epochs, against
    99.18% in 40 at a constant rate); the MLP teacher keeps a constant rate.
    """
    from kdistill import models  # models imports nothing from here

    schedule = "cosine" if models.is_image(split.input_shape) else "constant"
    return FitSettings(epochs=epochs, seed=seed, lr_schedule=schedule)


def optimizer(settings: FitSettings, train_samples: int):
    """Adam at `settings.learning_rate`, decayed as `settings.lr_schedule` says."""
    return keras.optimizers.Adam(learning_rate(settings, train_samples))


def learning_rate(settings: FitSettings, train_samples: int):
    """The learning rate of a run: a number, or a schedule of the step ("cosine").

    Example:
        >>> float(learning_rate(FitSettings(epochs=2, batch_size=10, lr_schedule="cosine",
        ...                                 learning_rate=1.0), 100)(10))
        0.5
    """
    rate = settings.learning_rate
    if settings.lr_schedule == "cosine":
        epochs = settings.schedule_epochs or settings.epochs
        steps = -(-train_samples // settings.batch_size) * epochs
        rate = keras.optimizers.schedules.CosineDecay(rate, decay_steps=max(steps, 1))
    elif settings.lr_schedule != "constant":
        raise ValueError(
            "Invalid value for argument `lr_schedule`. Expected 'constant' or 'cosine'. "
            f"Received: lr_schedule={settings.lr_schedule!r}"
        )
    return rate


def fine_tuning(settings: FitSettings) -> FitSettings:
    """Settings for a fine-tuning stage after `settings` (QAT after pruning).

    A third of the epochs (at least one) at a fifth of the learning rate, so
    the model adapts without leaving the optimum it was trained to.

    Example:
        >>> fine_tuning(FitSettings(epochs=30, learning_rate=1e-2)).epochs
        10
    """
    return dataclasses.replace(
        settings, epochs=max(settings.epochs // 3, 1), learning_rate=settings.learning_rate / 5
    )


def hard_label_loss():
    """The hard-label loss used everywhere: sparse CE on logits."""
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def fit_supervised(model, split: Split, settings: FitSettings, callbacks=None):
    """Trains `model` on the labels alone and returns it.

    Example:
        >>> fit_supervised(mlp((8, 8, 1), 10), load("digits"), FitSettings(epochs=2))
    """
    keras.utils.set_random_seed(settings.seed)
    model.compile(
        optimizer=optimizer(settings, len(split.y_train)),
        loss=hard_label_loss(),
        metrics=["accuracy"],
    )
    model.fit(
        split.x_train,
        split.y_train,
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        validation_data=(split.x_val, split.y_val),
        callbacks=callbacks,
        verbose=settings.verbose,
    )
    return model


def fit_distilled(
    teacher,
    student,
    split: Split,
    settings: FitSettings,
    distillation_loss=None,
    alpha: float = 0.1,
    callbacks=None,
    teacher_outputs=None,
    validate: bool = True,
) -> Distiller:
    """Distils `teacher` into `student` on `split` and returns the Distiller.

    Args:
        teacher: The trained teacher.
        student: The student to train (trained in place).
        split: The data.
        settings: Epochs, batch size, learning rate, seed.
        distillation_loss: Loss or registry name; default SoftTargetKD(4).
        alpha: Weight of the hard-label loss.
        callbacks: Keras callbacks for `fit`.
        teacher_outputs: Cached teacher logits for `split.x_train` (from
            `cache_teacher_outputs`): train offline, without a teacher pass
            per step. Feature losses still run the teacher.
        validate: Evaluate on the validation split after each epoch (when
            training offline, on the teacher's outputs for the validation
            split, computed once here).

    Returns:
        The trained `Distiller`; `distiller.student` is the student.
    """
    keras.utils.set_random_seed(settings.seed)
    loss = distillation_loss or losses_lib.SoftTargetKD(4.0)
    offline = trains_offline(loss, teacher_outputs)
    distiller = Distiller(
        teacher=None if offline else teacher,
        student=student,
        distillation_loss=loss,
        alpha=alpha,
    )
    distiller.compile(
        optimizer=optimizer(settings, len(split.y_train)),
        loss=hard_label_loss(),
        metrics=["accuracy"],
        # Only a progress bar shows every loss each step; fewer per-step logs are faster.
        step_logs="all" if settings.verbose == 1 else "loss",
    )
    targets = offline_targets(split.y_train, teacher_outputs) if offline else split.y_train
    validation_data = None
    if validate:
        validation_data = (split.x_val, split.y_val)
        if offline:  # a teacher-less Distiller reads the teacher's outputs from the targets
            if teacher is None:
                raise ValueError(
                    "fit_distilled needs the teacher to validate offline training: pass "
                    "`teacher`, or validate=False."
                )
            val_outputs = cache_teacher_outputs(teacher, split.x_val, settings.batch_size)
            validation_data = (split.x_val, offline_targets(split.y_val, val_outputs))
    distiller.fit(
        split.x_train,
        targets,
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        validation_data=validation_data,
        callbacks=callbacks,
        verbose=settings.verbose,
    )
    return distiller


def trains_offline(distillation_loss, teacher_outputs) -> bool:
    """Whether distillation runs offline, on cached teacher outputs.

    The one place that decides: offline when the teacher's outputs are cached
    and no loss reads the teacher's features (a feature loss needs the
    teacher's hidden layers, so the teacher runs every step).

    Args:
        distillation_loss: A loss, a registry name, or a list of them.
        teacher_outputs: Cached teacher logits, or None.

    Returns:
        True when training needs no teacher pass per step.

    Example:
        >>> trains_offline("soft_target", cached), trains_offline("soft_target", None)
        (True, False)
    """
    if teacher_outputs is None:
        return False
    loss = distillation_loss
    items = loss if isinstance(loss, (list, tuple)) else [loss]
    return not any(losses_lib.get(item).uses_features for item in items)


def fit_student(
    teacher,
    student,
    split: Split,
    settings: FitSettings,
    strategy,
    callbacks=None,
    teacher_outputs=None,
):
    """Trains `student` the way `strategy` says and returns it.

    The one place that chooses how a strategy trains: on the labels alone
    when it has no distillation loss; else distilled (`fit_distilled`
    without a validation pass), offline on cached teacher outputs when
    `trains_offline` says so, with the teacher online otherwise.

    Args:
        teacher: The trained teacher (unused when training on labels alone).
        student: The student to train (trained in place).
        split: The data.
        settings: Epochs, batch size, learning rate, seed.
        strategy: A `kdistill.compare.strategies.Strategy` (anything with
            `distillation_loss(teacher, student)` and `alpha`).
        callbacks: Keras callbacks for `fit`.
        teacher_outputs: Cached teacher logits for `split.x_train` (ignored
            on labels alone).

    Returns:
        The trained student.

    Example:
        >>> fit_student(teacher, student, split, FitSettings(epochs=2), parse("kd"))
    """
    loss = strategy.distillation_loss(teacher, student)
    if loss is None:
        return fit_supervised(student, split, settings, callbacks=callbacks)
    return fit_distilled(
        teacher,
        student,
        split,
        settings,
        distillation_loss=loss,
        alpha=strategy.alpha,
        callbacks=callbacks,
        teacher_outputs=teacher_outputs,
        validate=False,
    ).student


def predict_logits(model, x, batch_size: int = 512) -> np.ndarray:
    """Returns `model`'s outputs on `x` as a numpy array."""
    return np.asarray(model.predict(x, batch_size=batch_size, verbose=0))


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy of `logits` (or probabilities) against sparse labels."""
    return float(np.mean(np.argmax(logits, axis=-1) == np.asarray(labels).reshape(-1)))


def agreement(logits_a: np.ndarray, logits_b: np.ndarray) -> float:
    """Share of samples on which two models predict the same top-1 class."""
    return float(np.mean(np.argmax(logits_a, axis=-1) == np.argmax(logits_b, axis=-1)))
