"""`Distiller`: a Keras model that trains a student from a teacher.

The objective of each step is::

    alpha * hard_loss + (1 - alpha) * sum_i(w_i * distillation_loss_i)

where `hard_loss` is the loss given to `compile` on the true labels. Every
term is computed per sample, weighted by the sample weights, and divided by the
global batch size, so `tf.distribute` strategies reduce it correctly. For a
student with one output (batch, positions..., classes), a language model say,
every term is computed per position, weighted by a `sample_weight` of shape
(batch, positions...) (0 at padding), and divided by the global number of
positions (see `kdistill.objective`).
"""

from __future__ import annotations

from kdistill import (
    backend,
    distiller_config,
    fit_arguments,
    objective,
    outputs,
    pairing,
    step_objective,
    targets,
    trackers,
    validation,
)
from kdistill.backend import keras, tf

# What a training step may return to `fit`'s per-batch callbacks (see `compile`).
STEP_LOGS = trackers.STEP_LOGS


@backend.register_serializable
class Distiller(keras.Model):
    """Trains `student` to match `teacher` while fitting the true labels.

    `call()` runs the student only, so `predict`, `evaluate` and compiled
    metrics describe the student. The teacher is frozen, runs with
    `training=False` outside the gradient tape, and each model runs once per
    step even when feature losses read intermediate layers.

    Args:
        teacher: A Keras model; a list of models (an ensemble, whose
            averaged knowledge is distilled); or None to train from cached
            teacher outputs (see `kdistill.offline`). Teachers are set to
            `trainable=False`.
        student: The Keras model to train.
        distillation_loss: A `kdistill.losses.DistillationLoss`, a registry
            name ("soft_target", "logit_mse", ...), or a list of them.
            Defaults to `SoftTargetKD(temperature=4.0)`.
        alpha: Weight of the hard-label loss in [0, 1]; the distillation
            losses get `1 - alpha`. Stored in a variable, so callbacks may
            change it during `fit`.
        distillation_loss_weights: Optional weights `w_i`, one per
            distillation loss (default 1.0 each). Stored in variables.
        teacher_weights: For an ensemble, one weight per teacher (default
            equal); they are normalised to sum to 1.
        name: Model name.

    Example:
        >>> distiller = Distiller(teacher, student,
        ...                       distillation_loss=SoftTargetKD(4.0), alpha=0.1)
        >>> distiller.compile(optimizer="adam",
        ...     loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        ...     metrics=["accuracy"])
        >>> distiller.fit(x, y, epochs=5)
        >>> student = distiller.student
    """

    def __init__(
        self,
        teacher,
        student,
        distillation_loss=None,
        alpha: float = 0.1,
        distillation_loss_weights=None,
        teacher_weights=None,
        name: str = "distiller",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        validation.check_model(student, "student")
        teachers = pairing.as_teacher_list(teacher)
        for i, model in enumerate(teachers):
            argument = "teacher" if len(teachers) == 1 else f"teacher[{i}]"
            validation.check_model(model, argument)
            validation.check_pair(model, student)
            model.trainable = False
        self.teacher = teacher
        self.student = student
        self.teacher_weights = pairing.teacher_weights(teacher_weights, len(teachers))

        self.distillation_losses = objective.distillation_losses(distillation_loss)
        self._output_names = outputs.names(student)
        self._student_outputs = outputs.structure(student)
        pairing.bind_output_losses(self.distillation_losses, self._output_names, len(teachers))
        objective.check_class_axis(
            self.distillation_losses, outputs.widths(student), self._output_names
        )
        self.distillation_loss_weights = [
            backend.scalar_variable(w, f"distillation_loss_weight_{i}")
            for i, w in enumerate(
                objective.loss_weights(distillation_loss_weights, len(self.distillation_losses))
            )
        ]
        self.alpha = backend.scalar_variable(
            validation.check_unit_interval(alpha, "alpha"), "alpha"
        )

        self._teacher_view, self._student_view = pairing.feature_views(
            teachers, student, self.distillation_losses
        )
        self.adapters = pairing.build_adapters(
            self.distillation_losses,
            self._teacher_view,
            self._student_view,
            len(self._output_names),
        )
        self._teachers_return_probabilities = [outputs.probability_outputs(t) for t in teachers]
        self._student_returns_probabilities = outputs.probability_outputs(student)

        # One variable for every logged loss: a Mean each would add two
        # variable updates per loss to every step. Named "loss" so that
        # `evaluate(return_dict=False)` still lists the total loss first.
        self._term_names = (
            objective.term_names(self.distillation_losses)
            if len(self.distillation_losses) > 1
            else []
        )
        self.loss_means = trackers.LossMeans(
            ["loss", "student_loss", "distillation_loss", *self._term_names], name="loss"
        )
        # Filled only while a TeacherAgreement callback asks for them.
        self.agreement_means = trackers.LossMeans(
            ["teacher_agreement", "teacher_kl"], name="agreement_means"
        )
        self._track_teacher_agreement = False
        self._student_losses = []  # the compiled hard-label loss (or None) per output
        self.step_logs = "all"
        # Both models are built (or build on first call); nothing to create.
        self.built = bool(getattr(student, "built", False))
        # The inputs' shapes, kept at the first step for `get_build_config`:
        # a student built by its first batch (subclassed, Sequential without
        # an Input) is rebuilt from them when loaded, before its weights and
        # the optimizer's state are read.
        self._input_shapes = None

    # -- configuration -----------------------------------------------------

    @property
    def teachers(self) -> list:
        """The teacher models as a list (empty for offline distillation)."""
        return pairing.as_teacher_list(self.teacher)

    def track_teacher_agreement(self, enabled: bool = True) -> None:
        """Adds `teacher_agreement` and `teacher_kl` to the logs.

        `teacher_agreement` is the top-1 match rate between student and
        teacher (the ensemble's averaged distribution for several teachers)
        and `teacher_kl` the mean KL(teacher || student) at temperature 1.
        The `TeacherAgreement` callback calls this when training begins.
        Train and test functions are rebuilt so the change takes effect.
        """
        if self._track_teacher_agreement == enabled:
            return
        self._track_teacher_agreement = enabled
        self._forget_traced_steps()

    def _forget_traced_steps(self) -> None:
        """Makes the next `fit`/`evaluate` trace its steps afresh."""
        self.train_function = None
        self.test_function = None

    @property
    def temperatures(self) -> list:
        """The temperature variables of all distillation losses."""
        return [v for l in self.distillation_losses for v in l.temperature_variables]

    def compile(self, optimizer="adam", loss=None, metrics=None, step_logs="all", **kwargs):
        """Configures training; `loss` is the student's hard-label loss.

        Args:
            optimizer: Optimizer for the student (and adapters).
            loss: Loss on the true labels: a Keras loss, its name, or a
                function `(y_true, y_pred) -> per-sample values`. Required
                unless `alpha` is 0. For a student with several outputs, a
                list with one loss per output (in output order) or a dict
                keyed by output name; None, or an output left out of the
                dict, trains that output on the teacher alone.
            metrics: Metrics of the student's outputs against the labels.
            step_logs: What each training step returns to `fit`'s per-batch
                callbacks (the progress bar, batch-level TensorBoard).
                "all" (default): every loss (`loss`, `student_loss`,
                `distillation_loss`, one per term) and metric. "loss": only
                `loss` and the compiled metrics, as a plain Keras model
                returns; the other losses are still tracked every step and
                appear in the epoch logs and `History` as usual. Keras 3
                turns each value a step returns into a Python float, so on
                small students with `steps_per_execution=1` "loss" makes
                epochs measurably faster (see the README's benchmarks).
            **kwargs: Passed to `keras.Model.compile` (for example
                `jit_compile`, `steps_per_execution`).

        Example:
            >>> distiller.compile("adam", loss=ce, step_logs="loss",
            ...                   steps_per_execution=16)
        """
        self.step_logs = trackers.check_step_logs(step_logs)
        self._student_losses = objective.hard_losses(
            loss, self._output_names, float(self.alpha.numpy())
        )
        self._student_loss_config = loss
        super().compile(optimizer=optimizer, loss=None, metrics=metrics, **kwargs)

    def fit(self, x=None, y=None, batch_size=None, *args, **kwargs):
        """`keras.Model.fit`, after `kdistill.data_contract` checks of the data.

        Python lists are taken as arrays. Training stops with a
        `kdistill.callbacks.NonFiniteLossError` at the first step whose loss
        is NaN or inf (`StopOnNonFiniteLoss` is added to the callbacks).
        Teacher-agreement tracking is back to its state before the call when
        `fit` returns or raises (a `TeacherAgreement` callback turns it on for
        one fit only, and Keras skips `on_train_end` when training raises).
        `class_weight` also works with offline targets (Keras refuses it for
        targets in a dict): it weighs each sample by its label's class.
        When `fit` raises, the next call traces its steps afresh: a step whose
        first trace failed (on bad data, say) would otherwise refuse to create
        the optimizer's variables when called again with good data.
        """
        x, y, kwargs = fit_arguments.for_fit(self, x, y, batch_size, args, kwargs)
        tracking = self._track_teacher_agreement
        try:
            return super().fit(x, y, batch_size, **kwargs)
        except Exception:
            self._forget_traced_steps()
            raise
        finally:
            self.track_teacher_agreement(tracking)

    def evaluate(self, x=None, y=None, batch_size=None, *args, **kwargs):
        """`keras.Model.evaluate`, after the same checks as `fit`."""
        x, y, weights = fit_arguments.for_evaluate(
            self, x, y, batch_size, kwargs.get("sample_weight")
        )
        if weights is not None:
            kwargs["sample_weight"] = weights
        try:
            return super().evaluate(x, y, batch_size, *args, **kwargs)
        except Exception:
            self._forget_traced_steps()
            raise

    @property
    def metrics(self):
        """The loss means (and agreement while tracked), then compiled metrics."""
        return trackers.metrics(
            self.loss_means, self.agreement_means, self._track_teacher_agreement, super().metrics
        )

    # -- forward passes ----------------------------------------------------

    def call(self, inputs, training=None):
        """Runs the student only."""
        return self.student(inputs, training=training)

    # -- steps -------------------------------------------------------------

    def _update_trackers(self, logs):
        values = [logs["total"], logs["student"], logs["distillation"], *logs["terms"]]
        self.loss_means.update_state(values, sample_weight=logs["batch"])

    def _unpack(self, data):
        """Returns x, labels, sample weights and (teacher outputs, features).

        The teacher runs here, before any gradient tape opens, so no
        activation is kept for it.
        """
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if self._input_shapes is None:
            self._input_shapes = tf.nest.map_structure(lambda t: [None, *list(t.shape)[1:]], x)
            self.built = True
        y, cached, sample_weight = targets.split(y, sample_weight)
        teacher = step_objective.teacher_pass(self, x, cached)
        return x, y, sample_weight, teacher

    def train_step(self, data):
        """One step: targets, teacher (outside the tape), student and objective."""
        x, y, sample_weight, teacher = self._unpack(data)
        with tf.GradientTape() as tape:
            loss, y_pred, logs = step_objective.compute(self, x, y, teacher, sample_weight, True)
            scaled = backend.scale_loss(self.optimizer, loss)
        backend.minimize(self.optimizer, tape, scaled, self.trainable_variables)
        self._update_trackers(logs)
        step_logs = self._student_metrics(x, y, y_pred, sample_weight)
        if self.step_logs == "loss":
            step_logs = trackers.without(step_logs, self._epoch_only_log_names())
        return backend.step_logs(step_logs)

    def test_step(self, data):
        """The training step's objective and metrics, without an update."""
        x, y, sample_weight, teacher = self._unpack(data)
        _, y_pred, logs = step_objective.compute(self, x, y, teacher, sample_weight, False)
        self._update_trackers(logs)
        return backend.step_logs(self._student_metrics(x, y, y_pred, sample_weight))

    # -- epoch logs ----------------------------------------------------------

    def _epoch_only_log_names(self) -> set:
        """The logs that `step_logs="loss"` leaves out of each step."""
        return trackers.epoch_only_log_names(
            self.loss_means, self.agreement_means, self._track_teacher_agreement
        )

    def _with_epoch_only_logs(self, logs):
        """A step's logs plus the tracked values the step left out."""
        return trackers.with_epoch_only_logs(logs, self.step_logs, self.get_metrics_result)

    def _get_metrics_result_or_logs(self, logs):  # Keras 3's end-of-epoch logs
        return super()._get_metrics_result_or_logs(self._with_epoch_only_logs(logs))

    def _validate_and_get_metrics_result(self, logs):  # tf_keras's
        return super()._validate_and_get_metrics_result(self._with_epoch_only_logs(logs))

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras 3 builds the model from the first distributed batch, averaged
        # over replicas with strategy.reduce, which fails under a multi-worker
        # strategy (keras-team/keras#20585). The build needs only shapes: give
        # it the first local replica's batch instead. tf_keras has no such step.
        if iterator is not None and backend.multi_worker(self.distribute_strategy):
            for _, _, batches in iterator:
                with self.distribute_strategy.scope():
                    data_batch = backend.first_local_batch(next(batches))
                break
            iterator = None
        return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        """Compiled metrics of the student; `y` may still pack cached outputs.

        Keras 3 builds the metrics from a raw batch, before any step runs.
        """
        y, _, sample_weight = targets.split(y, sample_weight)
        return self._student_metrics(x, y, y_pred, sample_weight)

    def _student_metrics(self, x, y, y_pred, sample_weight):
        """Compiled metrics on labels already split from cached outputs."""
        if isinstance(y, dict) and isinstance(y_pred, dict):
            # Outputs without labels (trained on the teacher alone) have no metrics.
            y_pred = {name: value for name, value in y_pred.items() if name in y}
        return super().compute_metrics(x, y, y_pred, sample_weight)

    # -- serialization -----------------------------------------------------

    def get_build_config(self):
        """The inputs' shapes seen at the first step (None before any)."""
        if self._input_shapes is None:
            return super().get_build_config()
        return {"input_shape": self._input_shapes}

    def build_from_config(self, config):
        """Builds models that build on their first batch, from the saved shapes."""
        shapes = (config or {}).get("input_shape")
        if shapes is None:
            return super().build_from_config(config)
        distiller_config.build_models([self.student, *self.teachers], shapes)
        self._input_shapes = shapes
        self.built = True

    def get_config(self):
        """Models, losses, alpha and weights: all `from_config` needs."""
        return distiller_config.config(self)

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """Builds a Distiller from `get_config`'s dict (left unchanged)."""
        return cls(**distiller_config.constructor_arguments(config, custom_objects))

    def get_compile_config(self):
        config = super().get_compile_config() or {}
        if getattr(self, "_student_loss_config", None) is not None and config:
            config["loss"] = keras.saving.serialize_keras_object(self._student_loss_config)
        if config and self.step_logs != "all":
            config["step_logs"] = self.step_logs
        return config

    def compile_from_config(self, config):
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if getattr(self, "optimizer", None) is not None and self.built:
            self.optimizer.build(self.trainable_variables)
