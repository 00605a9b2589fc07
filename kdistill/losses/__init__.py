"""Distillation losses: pure functions underneath, small classes on top.

Every function here takes teacher and student tensors and returns one value per
sample (shape ``(batch,)``), so the `Distiller` can weight samples and reduce
over the global batch. Each class wraps one function with its configuration,
is serializable, and is callable as ``loss(teacher_outputs, student_outputs)``
returning the mean over the batch.

| name          | class              | paper                                   |
|---------------|--------------------|-----------------------------------------|
| soft_target   | `SoftTargetKD`     | Hinton, Vinyals & Dean 2015             |
| logit_mse     | `LogitMSE`         | Ba & Caruana 2014                       |
| hint          | `HintLoss`         | Romero et al. 2015 (FitNets)            |
| dkd           | `DecoupledKD`      | Zhao et al. 2022 (CVPR)                 |
| attention     | `AttentionTransfer`| Zagoruyko & Komodakis 2017              |
"""

from __future__ import annotations

from collections.abc import Sequence

from kdistill import outputs, validation
from kdistill.backend import keras, register_serializable, scalar_variable, tf

# ---------------------------------------------------------------------------
# Pure functions: (teacher, student[, labels]) -> per-sample loss of shape (B,)
# ---------------------------------------------------------------------------


def soft_target_kd(teacher_logits, student_logits, temperature):
    """Hinton soft-target loss per sample: T^2 * KL(p_t^T || p_s^T).

    Computed from logits with log-softmax, so it stays finite for logits of
    magnitude 1e4. The T^2 factor keeps gradient magnitudes comparable across
    temperatures: d/dz_s = T * (softmax(z_s/T) - softmax(z_t/T)).

    The gradient is written out (with respect to both logits and the
    temperature, and itself differentiable) from the forward pass's own
    log-probabilities: without XLA, a training step runs 6 fewer kernels than
    with TensorFlow's derived gradient and takes about 1% less time for a
    small MLP student (`benchmarks/step_profile.py`); with XLA it is the same.

    Args:
        teacher_logits: Tensor (batch, classes).
        student_logits: Tensor (batch, classes).
        temperature: Positive scalar (float or tensor).

    Returns:
        Tensor (batch,).

    Example:
        >>> soft_target_kd([[2., -1., .5]], [[.1, .3, -.2]], 3.0)  # ~[0.791]
    """
    return _soft_target_kd(
        _as_float32(teacher_logits), _as_float32(student_logits), tf.cast(temperature, tf.float32)
    )


@tf.custom_gradient
def _soft_target_kd(teacher_logits, student_logits, t):
    inverse_t = tf.math.reciprocal(t)
    teacher_log_p = tf.nn.log_softmax(teacher_logits * inverse_t, axis=-1)
    student_log_p = tf.nn.log_softmax(student_logits * inverse_t, axis=-1)
    teacher_p = tf.exp(teacher_log_p)
    log_ratio = teacher_log_p - student_log_p
    kl = tf.reduce_sum(teacher_p * log_ratio, axis=-1)

    def gradient(upstream):
        # With a = z_t/T, s = z_s/T, p = softmax(a), q = softmax(s):
        #   dKL/ds = q - p and dKL/da = p * (log p - log q - KL),
        # so d(T^2 KL)/dz = T * dKL/d(z/T). The temperature enters through
        # T^2 (2T KL) and through both z/T (each dz * z, times -1/T).
        scale = tf.expand_dims(upstream * t, -1)
        d_student = scale * (tf.exp(student_log_p) - teacher_p)
        d_teacher = scale * teacher_p * (log_ratio - tf.expand_dims(kl, -1))
        d_t = 2.0 * tf.reduce_sum(upstream * t * kl) - inverse_t * tf.reduce_sum(
            d_teacher * teacher_logits + d_student * student_logits
        )
        return d_teacher, d_student, d_t

    return tf.square(t) * kl, gradient


def logit_mse(teacher_logits, student_logits, reduction="mean"):
    """Squared error between logits per sample (Ba & Caruana 2014).

    Args:
        teacher_logits: Tensor (batch, ...).
        student_logits: Tensor of the same shape.
        reduction: "mean" averages the squared error over the non-batch axes;
            "sum" sums it, giving the squared L2 norm ||z_t - z_s||^2.

    Returns:
        Tensor (batch,).
    """
    squared = tf.square(_as_float32(teacher_logits) - _as_float32(student_logits))
    return _reduce_per_sample(squared, reduction)


def hint_mse(teacher_features, student_features):
    """FitNets hint loss per sample: mean squared error between features.

    Args:
        teacher_features: Tensor (batch, ...), the teacher's hint.
        student_features: Tensor of the same shape, the student's guided layer
            after the adapter.

    Returns:
        Tensor (batch,).
    """
    squared = tf.square(_as_float32(teacher_features) - _as_float32(student_features))
    return _reduce_per_sample(squared, "mean")


def hint_mae(teacher_features, student_features):
    """Mean absolute error between features, per sample.

    Args:
        teacher_features: Tensor (batch, ...).
        student_features: Tensor of the same shape.

    Returns:
        Tensor (batch,).

    Example:
        >>> hint_mae([[1.0, -1.0]], [[0.0, 1.0]])  # [1.5]
    """
    absolute = tf.abs(_as_float32(teacher_features) - _as_float32(student_features))
    return _reduce_per_sample(absolute, "mean")


def hint_cosine(teacher_features, student_features):
    """Cosine distance (1 - cosine similarity) between flattened features.

    Insensitive to the features' scale, so a teacher with large activations
    does not dominate the objective. In [0, 2]; 0 when the features point the
    same way (a zero feature counts as orthogonal to every other).

    Args:
        teacher_features: Tensor (batch, ...).
        student_features: Tensor of the same shape.

    Returns:
        Tensor (batch,).

    Example:
        >>> hint_cosine([[1.0, 0.0]], [[0.0, 2.0]])  # [1.0]
    """

    def unit_rows(features):
        features = _as_float32(features)
        flat = tf.reshape(features, (tf.shape(features)[0], -1))
        return tf.math.l2_normalize(flat, axis=-1)

    similarity = tf.reduce_sum(unit_rows(teacher_features) * unit_rows(student_features), -1)
    return 1.0 - similarity


# The per-sample feature distances `HintLoss` can use, by name.
HINT_DISTANCES = {"mse": hint_mse, "mae": hint_mae, "cosine": hint_cosine}


def decoupled_kd(teacher_logits, student_logits, labels, alpha, beta, temperature):
    """Decoupled knowledge distillation per sample (Zhao et al., CVPR 2022).

    DKD = alpha * TCKD + beta * NCKD, each scaled by T^2, where TCKD is the KL
    between the binary (target, non-target) distributions and NCKD the KL
    between the distributions over non-target classes.

    Args:
        teacher_logits: Tensor (batch, classes).
        student_logits: Tensor (batch, classes).
        labels: Sparse labels (batch,) or (batch, 1), or one-hot (batch,
            classes).
        alpha: Weight of the target-class term.
        beta: Weight of the non-target-class term.
        temperature: Positive scalar.

    Returns:
        Tensor (batch,).
    """
    t = tf.cast(temperature, tf.float32)
    teacher = _as_float32(teacher_logits) / t
    student = _as_float32(student_logits) / t
    target = _one_hot_like(labels, teacher)
    tckd = _binary_kl(teacher, student, target)
    # Mask the target class out of the softmax with a large negative offset.
    masked_teacher = tf.nn.log_softmax(teacher - 1e4 * target, axis=-1)
    masked_student = tf.nn.log_softmax(student - 1e4 * target, axis=-1)
    nckd = tf.reduce_sum(tf.exp(masked_teacher) * (masked_teacher - masked_student), axis=-1)
    return t * t * (alpha * tckd + beta * nckd)


def attention_map(features, p=2.0):
    """Spatial attention map of a feature map (Zagoruyko & Komodakis 2017).

    Args:
        features: Tensor (batch, height, width, channels) or (batch, steps,
            channels).
        p: Exponent applied to absolute activations.

    Returns:
        Tensor (batch, positions), L2-normalised per sample.
    """
    features = _as_float32(features)
    energy = tf.reduce_mean(tf.pow(tf.abs(features), p), axis=-1)
    flat = tf.reshape(energy, (tf.shape(energy)[0], -1))
    return tf.math.l2_normalize(flat, axis=-1)


def attention_transfer(teacher_features, student_features, beta=1000.0, p=2.0):
    """Attention transfer per sample: beta/2 * mean((a_t - a_s)^2).

    Channel counts may differ; spatial sizes must match.

    Args:
        teacher_features: Tensor (batch, H, W, C_t).
        student_features: Tensor (batch, H, W, C_s).
        beta: Weight (the paper uses 1000).
        p: Exponent of the attention map.

    Returns:
        Tensor (batch,).
    """
    difference = attention_map(teacher_features, p) - attention_map(student_features, p)
    return beta / 2.0 * tf.reduce_mean(tf.square(difference), axis=-1)


def average_logits(teacher_logits, weights):
    """Weighted mean of an ensemble's logits.

    Args:
        teacher_logits: Tensor (batch, teachers, classes).
        weights: One weight per teacher, summing to 1.

    Returns:
        Tensor (batch, classes).
    """
    w = tf.reshape(tf.constant(weights, tf.float32), (1, -1, 1))
    return tf.reduce_sum(_as_float32(teacher_logits) * w, axis=1)


def average_distribution_logits(teacher_logits, weights, temperature):
    """Logits whose softmax at `temperature` is the ensemble's mean distribution.

    Hinton et al. 2015 distil the (weighted) average of the teachers'
    softened distributions; ``T * log(sum_i w_i softmax(z_i / T))`` gives it
    back exactly through ``softmax(. / T)``.

    Args:
        teacher_logits: Tensor (batch, teachers, classes).
        weights: One weight per teacher, summing to 1.
        temperature: The softening temperature.

    Returns:
        Tensor (batch, classes).
    """
    t = tf.cast(temperature, tf.float32)
    log_w = tf.math.log(tf.reshape(tf.constant(weights, tf.float32), (1, -1, 1)))
    log_p = tf.nn.log_softmax(_as_float32(teacher_logits) / t, axis=-1)
    return t * tf.reduce_logsumexp(log_p + log_w, axis=1)


def _as_float32(x):
    # Softened distributions underflow in half precision: losses run in fp32.
    return tf.cast(x, tf.float32)


def _reduce_per_sample(values, reduction):
    axes = tf.range(1, tf.rank(values))
    if reduction == "sum":
        return tf.reduce_sum(values, axis=axes)
    return tf.reduce_mean(values, axis=axes)


def _one_hot_like(labels, logits):
    labels = tf.convert_to_tensor(labels)
    classes = tf.shape(logits)[-1]
    if labels.shape.rank == logits.shape.rank and labels.shape[-1] not in (
        None,
        1,
    ):
        return tf.cast(labels, tf.float32)
    labels = tf.reshape(tf.cast(labels, tf.int32), (-1,))
    return tf.one_hot(labels, classes, dtype=tf.float32)


def _binary_kl(teacher, student, target):
    def binary_log_probs(logits):
        log_p = tf.nn.log_softmax(logits, axis=-1)
        log_target = tf.reduce_sum(log_p * target, axis=-1)
        # log(1 - p_target) = logsumexp over the non-target classes.
        log_rest = tf.reduce_logsumexp(log_p - 1e4 * target, axis=-1)
        return tf.stack([log_target, log_rest], axis=-1)

    log_t = binary_log_probs(teacher)
    log_s = binary_log_probs(student)
    return tf.reduce_sum(tf.exp(log_t) * (log_t - log_s), axis=-1)


# ---------------------------------------------------------------------------
# Classes
# ---------------------------------------------------------------------------

_REGISTRY: dict[str, type] = {}


def _register(name: str):
    def decorate(cls):
        cls.registry_name = name
        _REGISTRY[name] = cls
        return register_serializable(cls)

    return decorate


class DistillationLoss:
    """Base class: a configured distillation loss over a pure function.

    Subclasses implement `per_sample`. Class attributes tell the `Distiller`
    what a loss needs:

    * `needs_labels`: the loss takes the true labels as a third argument.
    * `uses_features`: the loss compares intermediate layers named by
      `teacher_layers` and `student_layers` instead of the models' outputs.
    """

    registry_name = "custom"
    needs_labels = False
    uses_features = False

    def per_sample(self, teacher_outputs, student_outputs, y_true=None):
        """Returns the loss of each sample, shape (batch,)."""
        raise NotImplementedError

    def __call__(self, teacher_outputs, student_outputs, y_true=None):
        """Returns the mean loss over the batch (a scalar tensor)."""
        if self.needs_labels and y_true is None:
            raise ValueError(
                f"{type(self).__name__} needs the true labels: call it as "
                "loss(teacher_outputs, student_outputs, y_true)."
            )
        return tf.reduce_mean(self.per_sample(teacher_outputs, student_outputs, y_true))

    def combine_teachers(self, teacher_logits, weights):
        """Returns the target logits of a teacher ensemble.

        Args:
            teacher_logits: Tensor (batch, teachers, classes).
            weights: One weight per teacher, summing to 1.

        Returns:
            Tensor (batch, classes). By default the weighted mean of the
            logits; losses with a temperature average the softened
            distributions instead.
        """
        return average_logits(teacher_logits, weights)

    @property
    def temperature_variables(self) -> list:
        """Temperature variables a scheduler may assign (none by default)."""
        temperature = getattr(self, "temperature", None)
        return [temperature] if isinstance(temperature, tf.Variable) else []

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


@_register("soft_target")
class SoftTargetKD(DistillationLoss):
    """Hinton soft targets: T^2 * KL(softmax(z_t/T) || softmax(z_s/T)).

    Hinton, Vinyals & Dean, "Distilling the Knowledge in a Neural Network",
    2015. The temperature is a non-trainable variable, so a callback can
    schedule it during a compiled `fit()`.

    Args:
        temperature: Positive softening temperature (the paper's T).

    Example:
        >>> loss = SoftTargetKD(temperature=3.0)
        >>> float(loss([[2., -1., .5]], [[.1, .3, -.2]]))  # ~0.791
    """

    def __init__(self, temperature: float = 4.0):
        temperature = validation.check_positive(temperature, "temperature")
        self.temperature = scalar_variable(temperature, "temperature")

    def per_sample(self, teacher_outputs, student_outputs, y_true=None):
        return soft_target_kd(teacher_outputs, student_outputs, self.temperature)

    def combine_teachers(self, teacher_logits, weights):
        return average_distribution_logits(teacher_logits, weights, self.temperature)

    def get_config(self):
        return {"temperature": float(self.temperature.numpy())}


@_register("logit_mse")
class LogitMSE(DistillationLoss):
    """Logit matching by squared error (Ba & Caruana, "Do Deep Nets Really
    Need to be Deep?", 2014).

    Args:
        reduction: "mean" (default) averages the squared error over classes;
            "sum" gives the squared L2 norm ||z_t - z_s||^2 of the seed
            objective CE + lambda * ||z_t - z_s||^2.

    Example:
        >>> float(LogitMSE(reduction="sum")([[1., 2.]], [[0., 0.]]))
        5.0
    """

    def __init__(self, reduction: str = "mean"):
        self.reduction = validation.check_choice(reduction, "reduction", ("mean", "sum"))

    def per_sample(self, teacher_outputs, student_outputs, y_true=None):
        return logit_mse(teacher_outputs, student_outputs, self.reduction)

    def get_config(self):
        return {"reduction": self.reduction}


class FeatureLoss(DistillationLoss):
    """Base for losses on intermediate features named by layer.

    The `Distiller` builds feature-extraction views of both models so that
    each model still runs once per step, and passes lists of feature tensors
    (one per layer pair) to `per_sample`.
    """

    uses_features = True

    def __init__(self, teacher_layers, student_layers):
        self.teacher_layers = _as_names(teacher_layers, "teacher_layer")
        self.student_layers = _as_names(student_layers, "student_layer")
        if len(self.teacher_layers) != len(self.student_layers):
            raise ValueError(
                "Invalid value for arguments `teacher_layers` and "
                "`student_layers`: they must pair up one to one. Received "
                f"{len(self.teacher_layers)} teacher layers and "
                f"{len(self.student_layers)} student layers."
            )

    def make_adapters(self, teacher_shapes, student_shapes) -> list:
        """Returns one layer (or None) per pair, mapping student to teacher.

        Args:
            teacher_shapes: Static shapes of the teacher features.
            student_shapes: Static shapes of the student features.
        """
        return [None] * len(teacher_shapes)


@_register("hint")
class HintLoss(FeatureLoss):
    """FitNets hint loss: squared error between a teacher feature and an
    adapted student feature.

    Romero et al., "FitNets: Hints for Thin Deep Nets", ICLR 2015. The
    adapter (the paper's regressor) is a learned Dense layer for vector
    features or a 1x1 convolution for feature maps, so widths may differ. It
    trains with the student but is not part of `distiller.student`.

    Args:
        teacher_layer: Name of the teacher layer giving the hint.
        student_layer: Name of the student layer being guided.
        adapter: "auto" (Dense or 1x1 Conv chosen by rank), "none" (shapes
            must already match), or a Keras layer to use as the adapter.
        distance: How the adapted student feature is compared with the
            teacher's: "mse" (the paper's squared error, default), "mae", or
            "cosine" (1 - cosine similarity, insensitive to scale).

    Example:
        >>> HintLoss("teacher_hidden", "student_hidden")
        >>> HintLoss("teacher_conv", "student_conv", distance="cosine")
    """

    def __init__(self, teacher_layer: str, student_layer: str, adapter="auto", distance="mse"):
        super().__init__(teacher_layer, student_layer)
        self.distance = validation.check_choice(distance, "distance", tuple(HINT_DISTANCES))
        if isinstance(adapter, str):
            validation.check_choice(adapter, "adapter", ("auto", "none"))
        elif not isinstance(adapter, keras.layers.Layer):
            raise TypeError(
                "Invalid value for argument `adapter`. Expected 'auto', "
                f"'none' or a Keras layer. Received: adapter={adapter!r}"
            )
        self.adapter = adapter

    @property
    def teacher_layer(self) -> str:
        return self.teacher_layers[0]

    @property
    def student_layer(self) -> str:
        return self.student_layers[0]

    def per_sample(self, teacher_outputs, student_outputs, y_true=None):
        distance = HINT_DISTANCES[self.distance]
        return distance(_single(teacher_outputs), _single(student_outputs))

    def make_adapters(self, teacher_shapes, student_shapes):
        teacher_shape, student_shape = tuple(teacher_shapes[0]), tuple(student_shapes[0])
        if isinstance(self.adapter, keras.layers.Layer):
            return [self.adapter]
        if self.adapter == "none":
            validation.check_same_shape(teacher_shape, student_shape, "hint features")
            return [None]
        if len(teacher_shape) != len(student_shape):
            raise ValueError(
                f"HintLoss cannot map the student feature of shape "
                f"{student_shape} (layer {self.student_layer!r}) to the teacher "
                f"feature of shape {teacher_shape} (layer "
                f"{self.teacher_layer!r}): their ranks differ. Choose layers of "
                "the same rank or pass your own `adapter` layer."
            )
        width = teacher_shape[-1]
        if len(teacher_shape) == 2:
            return [keras.layers.Dense(width, name=f"adapter_{self.student_layer}")]
        if teacher_shape[1:-1] != student_shape[1:-1]:
            raise ValueError(
                f"HintLoss cannot map the student feature of shape "
                f"{student_shape} to the teacher feature of shape "
                f"{teacher_shape}: a 1x1 convolution keeps the spatial size. "
                "Choose layers with the same spatial size or pass your own "
                "`adapter` layer (for example with pooling or strides)."
            )
        conv = {3: keras.layers.Conv1D, 4: keras.layers.Conv2D, 5: keras.layers.Conv3D}
        if len(teacher_shape) not in conv:
            raise ValueError(
                f"HintLoss has no automatic adapter for features of rank "
                f"{len(teacher_shape)}; pass your own `adapter` layer."
            )
        return [conv[len(teacher_shape)](width, 1, name=f"adapter_{self.student_layer}")]

    def get_config(self):
        adapter = self.adapter
        if isinstance(adapter, keras.layers.Layer):
            adapter = keras.layers.serialize(adapter)
        return {
            "teacher_layer": self.teacher_layer,
            "student_layer": self.student_layer,
            "adapter": adapter,
            "distance": self.distance,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("adapter"), dict):
            config["adapter"] = keras.layers.deserialize(config["adapter"])
        return cls(**config)


@_register("dkd")
class DecoupledKD(DistillationLoss):
    """Decoupled knowledge distillation (Zhao et al., "Decoupled Knowledge
    Distillation", CVPR 2022).

    Splits Hinton's KL into a target-class term (TCKD) and a non-target-class
    term (NCKD) weighted separately; both are scaled by T^2. Needs labels:
    call it as ``loss(teacher_outputs, student_outputs, y_true)``; the
    `Distiller` passes them.

    Args:
        alpha: Weight of TCKD (paper default 1.0).
        beta: Weight of NCKD (paper default 8.0).
        temperature: Softening temperature (paper default 4.0).
    """

    needs_labels = True

    def __init__(self, alpha: float = 1.0, beta: float = 8.0, temperature: float = 4.0):
        self.alpha = validation.check_non_negative(alpha, "alpha")
        self.beta = validation.check_non_negative(beta, "beta")
        temperature = validation.check_positive(temperature, "temperature")
        self.temperature = scalar_variable(temperature, "temperature")

    def per_sample(self, teacher_outputs, student_outputs, y_true=None):
        return decoupled_kd(
            teacher_outputs,
            student_outputs,
            y_true,
            self.alpha,
            self.beta,
            self.temperature,
        )

    def combine_teachers(self, teacher_logits, weights):
        return average_distribution_logits(teacher_logits, weights, self.temperature)

    def get_config(self):
        return {
            "alpha": self.alpha,
            "beta": self.beta,
            "temperature": float(self.temperature.numpy()),
        }


@_register("attention")
class AttentionTransfer(FeatureLoss):
    """Attention transfer between convolutional feature maps.

    Zagoruyko & Komodakis, "Paying More Attention to Attention", ICLR 2017.
    Attention maps average |feature|^p over channels, so teacher and student
    may have different channel counts; spatial sizes must match. Summed over
    the layer pairs.

    Args:
        teacher_layers: Teacher layer names (one or several).
        student_layers: Student layer names, paired with `teacher_layers`.
        beta: Weight (the paper uses 1000).
        p: Exponent of the attention map (the paper uses 2).
    """

    def __init__(self, teacher_layers, student_layers, beta: float = 1000.0, p: float = 2.0):
        super().__init__(teacher_layers, student_layers)
        self.beta = validation.check_non_negative(beta, "beta")
        self.p = validation.check_positive(p, "p")

    def per_sample(self, teacher_outputs, student_outputs, y_true=None):
        teacher_outputs = _as_list(teacher_outputs)
        student_outputs = _as_list(student_outputs)
        return tf.add_n(
            [
                attention_transfer(t, s, self.beta, self.p)
                for t, s in zip(teacher_outputs, student_outputs)
            ]
        )

    def make_adapters(self, teacher_shapes, student_shapes):
        for name_t, name_s, t, s in zip(
            self.teacher_layers, self.student_layers, teacher_shapes, student_shapes
        ):
            if tuple(t)[1:-1] != tuple(s)[1:-1]:
                raise ValueError(
                    f"AttentionTransfer needs feature maps of the same spatial "
                    f"size: teacher layer {name_t!r} has shape {tuple(t)} and "
                    f"student layer {name_s!r} has shape {tuple(s)}. Pick layers "
                    "at the same resolution."
                )
        return super().make_adapters(teacher_shapes, student_shapes)

    def get_config(self):
        return {
            "teacher_layers": list(self.teacher_layers),
            "student_layers": list(self.student_layers),
            "beta": self.beta,
            "p": self.p,
        }


@_register("per_output")
class PerOutput(DistillationLoss):
    """One logit loss per output, for teachers and students with several
    outputs (a classification head and a box head, say).

    The per-sample losses of the distilled outputs are summed. A model with
    several outputs needs this wrapper: a plain loss would not say which
    outputs to match.

    Args:
        losses: A list with one loss per output, in the model's output order,
            or a dict from output names to losses (a model built with a dict
            of outputs is named by its keys; one with a list, by its output
            layers). None, or an output left out of the dict, leaves that
            output undistilled. Each loss is a `DistillationLoss` on outputs
            (not a feature loss) or its registry name.

    Example:
        >>> loss = PerOutput({"cls": SoftTargetKD(4.0), "box": LogitMSE()})
        >>> Distiller(teacher, student, loss)  # both models output cls and box
    """

    def __init__(self, losses):
        if isinstance(losses, dict):
            self.losses = {name: _output_loss(l, name) for name, l in losses.items()}
            chosen = list(self.losses.values())
        elif isinstance(losses, (list, tuple)):
            self.losses = [_output_loss(l, i) for i, l in enumerate(losses)]
            chosen = self.losses
        else:
            raise TypeError(
                "Invalid value for argument `losses`: expected a list (one loss "
                "per output) or a dict from output names to losses. Received: "
                f"losses={losses!r}"
            )
        if all(l is None for l in chosen):
            raise ValueError(
                "Invalid value for argument `losses`: every output is None, so "
                "nothing would be distilled. Give at least one output a loss."
            )
        self.needs_labels = any(l.needs_labels for l in chosen if l is not None)
        self._by_position = self.losses if isinstance(self.losses, list) else None

    def bind(self, output_names) -> None:
        """Lines the losses up with a model's outputs.

        Args:
            output_names: The model's output names in flat order
                (`kdistill.outputs.names`).

        Raises:
            ValueError: The losses do not match the outputs.
        """
        output_names = list(output_names)
        if isinstance(self.losses, list):
            if len(self.losses) != len(output_names):
                raise ValueError(
                    f"Invalid value for argument `losses` of PerOutput: "
                    f"{len(self.losses)} losses for a model with "
                    f"{len(output_names)} outputs ({', '.join(output_names)}). Pass "
                    "one loss (or None) per output, or a dict keyed by output name."
                )
            return
        self._by_position = outputs.by_name(self.losses, output_names, "losses")

    def per_sample(self, teacher_outputs, student_outputs, y_true=None):
        """Sums the chosen losses over the outputs, per sample.

        Args:
            teacher_outputs: The teacher's logits per output: a list in output
                order, or a dict keyed by output name.
            student_outputs: The student's, in the same structure.
            y_true: The labels in the same structure (for losses that need
                them), or None.
        """
        if isinstance(student_outputs, dict):
            if not isinstance(self.losses, dict):
                raise ValueError(
                    "PerOutput built from a list takes outputs as a list; for "
                    "outputs in a dict, key the losses by output name."
                )
            chosen = list(self.losses.items())
        else:
            if self._by_position is None:
                raise ValueError(
                    "PerOutput built from a dict takes outputs in a dict keyed by "
                    "name, unless a Distiller has lined it up with a model's outputs."
                )
            chosen = list(enumerate(self._by_position))
        terms = []
        for key, loss in chosen:
            if loss is None:
                continue
            labels = None if y_true is None else y_true[key]
            if loss.needs_labels and labels is None:
                raise ValueError(
                    f"{type(loss).__name__} on output {key!r} needs that output's true "
                    "labels: pass them in y (in output order, or keyed by output name)."
                )
            terms.append(loss.per_sample(teacher_outputs[key], student_outputs[key], labels))
        return tf.add_n(terms)

    def combine_teachers(self, teacher_logits, weights):
        raise ValueError(
            "PerOutput does not combine a teacher ensemble: distil a model with "
            "several outputs from one teacher."
        )

    @property
    def temperature_variables(self) -> list:
        chosen = self.losses.values() if isinstance(self.losses, dict) else self.losses
        return [v for l in chosen if l is not None for v in l.temperature_variables]

    def get_config(self):
        serialize = keras.saving.serialize_keras_object
        if isinstance(self.losses, dict):
            return {"losses": {k: serialize(l) for k, l in self.losses.items()}}
        return {"losses": [serialize(l) for l in self.losses]}

    @classmethod
    def from_config(cls, config):
        deserialize = keras.saving.deserialize_keras_object
        losses = config["losses"]
        if isinstance(losses, dict):
            return cls({k: deserialize(l) for k, l in losses.items()})
        return cls([deserialize(l) for l in losses])


def _output_loss(loss, where):
    if loss is None:
        return None
    loss = get(loss)
    if loss.uses_features or isinstance(loss, PerOutput):
        raise ValueError(
            f"Invalid value for argument `losses` of PerOutput at {where!r}: "
            f"{type(loss).__name__} is not a loss on one output. Pass feature "
            "losses to the Distiller beside the PerOutput loss."
        )
    return loss


def names() -> list[str]:
    """Returns the registry names of the built-in losses."""
    return sorted(_REGISTRY)


def get(identifier, **kwargs) -> DistillationLoss:
    """Returns a distillation loss from a registry name or an instance.

    Args:
        identifier: A `DistillationLoss`, or a registry name such as
            "soft_target" (see `names()`).
        **kwargs: Constructor arguments when `identifier` is a name.

    Returns:
        A `DistillationLoss`.

    Example:
        >>> get("soft_target", temperature=2.0)
        SoftTargetKD(temperature=2.0)
    """
    if isinstance(identifier, DistillationLoss):
        return identifier
    if isinstance(identifier, str) and identifier in _REGISTRY:
        return _REGISTRY[identifier](**kwargs)
    raise ValueError(
        f"Unknown distillation loss {identifier!r}. Valid names: "
        f"{', '.join(names())}; or pass a kdistill.losses.DistillationLoss."
    )


def _as_names(value, argument) -> tuple:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Sequence) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise TypeError(
        f"Invalid value for argument `{argument}`. Expected a layer name or a "
        f"list of layer names. Received: {argument}={value!r}"
    )


def _as_list(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _single(value):
    return value[0] if isinstance(value, (list, tuple)) else value
