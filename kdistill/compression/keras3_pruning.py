"""Magnitude pruning for Keras 3 models, where tfmot does not work.

`MaskedLayer` wraps a Dense or Conv layer. While training, at each pruning
step of its schedule it recomputes a 0/1 mask that zeroes the smallest-
magnitude share of the kernel, and before every forward pass it multiplies
the kernel by the mask, so the weights the optimizer updated are pruned again
before they are used. The mask and the step counter are non-trainable
variables saved with the model. `strip` removes the wrappers and keeps the
zeros.
"""

from __future__ import annotations

import numpy as np

from kdistill import backend
from kdistill.backend import keras, tf
from kdistill.compression.schedule import PruningSchedule

PRUNABLE = (keras.layers.Dense, keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)


@backend.register_serializable
class MaskedLayer(keras.layers.Wrapper):
    """Wraps a Dense/Conv layer with a magnitude-pruning mask.

    Args:
        layer: The layer to prune.
        schedule: A `PruningSchedule` or its dict form.
    """

    def __init__(self, layer, schedule, **kwargs):
        kwargs.setdefault("name", f"pruned_{layer.name}")
        super().__init__(layer, **kwargs)
        if isinstance(schedule, dict):
            schedule = PruningSchedule(**schedule)
        self.schedule = schedule

    def build(self, input_shape=None):
        if not self.layer.built:
            self.layer.build(input_shape)
        kernel = self.layer.kernel
        self.mask = self.add_weight(
            name="mask", shape=kernel.shape, initializer="ones", trainable=False
        )
        self.pruning_step = self.add_weight(
            name="pruning_step", shape=(), initializer="zeros", trainable=False
        )
        self.built = True

    def _update_mask(self):
        kernel = self.layer.kernel
        magnitudes = tf.reshape(tf.abs(kernel), [-1])
        count = tf.size(magnitudes)
        sparsity = self.schedule.sparsity(self.pruning_step)
        k = tf.cast(tf.round(sparsity * tf.cast(count, tf.float32)), tf.int32)
        threshold = tf.cond(
            k > 0,
            lambda: tf.sort(magnitudes)[tf.maximum(k - 1, 0)],
            lambda: tf.constant(-1.0, magnitudes.dtype),
        )
        self.mask.assign(tf.cast(tf.abs(kernel) > threshold, self.mask.dtype))
        return tf.constant(True)

    def call(self, inputs, training=None):
        if training:
            tf.cond(
                self.schedule.should_prune(self.pruning_step),
                self._update_mask,
                lambda: tf.constant(False),
            )
            kernel = self.layer.kernel
            kernel.assign(kernel * tf.cast(self.mask, kernel.dtype))
            self.pruning_step.assign_add(1.0)
        return self.layer(inputs)

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        config["schedule"] = dict(vars(self.schedule))
        return config


def prune(model, schedule: PruningSchedule):
    """Returns a copy of `model` with every Dense/Conv layer wrapped."""
    _check_graph_model(model, "prune")
    if not any(isinstance(l, PRUNABLE) for l in model.layers):
        raise ValueError(
            f"The model {model.name!r} has no prunable layer (Dense, Conv1D, "
            f"Conv2D or Conv3D); its layers are: {', '.join(l.name for l in model.layers)}. "
            "Pruning needs at least one of them."
        )

    def wrap(layer):
        fresh = layer.__class__.from_config(layer.get_config())
        if isinstance(layer, PRUNABLE):
            return MaskedLayer(fresh, schedule)
        return fresh

    pruned = keras.models.clone_model(model, clone_function=wrap)
    for old, new in zip(model.layers, pruned.layers):
        target = new.layer if isinstance(new, MaskedLayer) else new
        target.set_weights(old.get_weights())
    return pruned


def strip(model):
    """Returns a copy of `model` without `MaskedLayer`s, zeros kept."""
    if not any(isinstance(l, MaskedLayer) for l in model.layers):
        return model
    _check_graph_model(model, "strip")

    def unwrap(layer):
        inner = layer.layer if isinstance(layer, MaskedLayer) else layer
        return inner.__class__.from_config(inner.get_config())

    stripped = keras.models.clone_model(model, clone_function=unwrap)
    for old, new in zip(model.layers, stripped.layers):
        if isinstance(old, MaskedLayer):
            weights = old.layer.get_weights()
            weights[0] = weights[0] * np.asarray(old.mask.numpy(), weights[0].dtype)
            new.set_weights(weights)
        else:
            new.set_weights(old.get_weights())
    return stripped


def _check_graph_model(model, what):
    if isinstance(model, keras.Sequential):
        return  # a list of layers, built or not, clones as one
    if not getattr(model, "inputs", None) or not hasattr(model, "layers"):
        raise ValueError(
            f"{what} works on Sequential and functional models (it rebuilds the "
            f"layer graph); {model.name!r} is a subclassed model. Build the student "
            "as a Sequential or functional model."
        )
