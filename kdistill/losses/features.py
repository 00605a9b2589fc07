"""Losses on intermediate features named by layer: FitNets hints, attention transfer."""

from __future__ import annotations

from collections.abc import Sequence

from kdistill import validation
from kdistill.backend import keras, tf
from kdistill.losses.base import DistillationLoss, _register
from kdistill.losses.functional import HINT_DISTANCES, attention_transfer


class FeatureLoss(DistillationLoss):
    """Base for losses on intermediate features named by layer.

    The `Distiller` builds feature-extraction views of both models so that
    each model still runs once per step, and passes lists of feature tensors
    (one per layer pair) to `per_sample`.
    """

    uses_features = True
    takes_structures = True  # one feature tensor per layer pair, or a list of them

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
        student_layer: Name of the student layer being guided. A layer inside
            a nested model is named by its path of layer names,
            "backbone/conv" (that nested model's layers up to it then run
            twice per step, with the same weights: Keras keeps no tensor
            for a layer inside a nested call).
        adapter: "auto" (Dense or 1x1 Conv chosen by rank), "none" (shapes
            must already match), or a Keras layer to use as the adapter.
        distance: How the adapted student feature is compared with the
            teacher's: "mse" (the paper's squared error, default), "mae", or
            "cosine" (1 - cosine similarity, insensitive to scale).

    Example:
        >>> HintLoss("teacher_hidden", "student_hidden")
        >>> HintLoss("teacher_conv", "student_conv", distance="cosine")
        >>> HintLoss("teacher_conv", "backbone/conv")  # inside a nested model
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
        """The name of the teacher layer."""
        return self.teacher_layers[0]

    @property
    def student_layer(self) -> str:
        """The name of the student layer."""
        return self.student_layers[0]

    def per_sample(self, teacher_outputs, student_outputs, y_true=None):
        distance = HINT_DISTANCES[self.distance]
        return distance(
            _single(teacher_outputs, "teacher_outputs"), _single(student_outputs, "student_outputs")
        )

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
            return [keras.layers.Dense(width, name=_adapter_name(self.student_layer))]
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
        return [conv[len(teacher_shape)](width, 1, name=_adapter_name(self.student_layer))]

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
        if len(teacher_outputs) != len(student_outputs) or len(teacher_outputs) != len(
            self.teacher_layers
        ):
            raise ValueError(
                "Invalid value for arguments `teacher_outputs` and `student_outputs` of "
                f"AttentionTransfer. Expected one feature map per layer pair "
                f"({len(self.teacher_layers)}) in each. Received: "
                f"{len(teacher_outputs)} teacher and {len(student_outputs)} student maps."
            )
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


def _adapter_name(student_layer: str) -> str:
    # A layer inside a nested model is named by a path; Keras names hold no "/".
    return "adapter_" + student_layer.replace("/", "_")


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


def _single(value, argument: str):
    if not isinstance(value, (list, tuple)):
        return value
    if len(value) != 1 or isinstance(value[0], (list, tuple, dict)):
        raise ValueError(
            f"Invalid value for argument `{argument}` of HintLoss. Expected one "
            "feature tensor (or a list holding one). Received: a "
            f"{type(value).__name__} of {len(value)}. HintLoss compares one layer "
            "pair; for several, pass one HintLoss per pair."
        )
    return value[0]
