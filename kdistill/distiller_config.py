"""What a saved `Distiller` holds: its config and the shapes it builds from.

Plain functions behind `Distiller.get_config`, `from_config`,
`get_build_config` and `build_from_config`, which stay thin overrides.
"""

from __future__ import annotations

import copy

from kdistill.backend import keras, tf


def config(distiller) -> dict:
    """Models, losses, alpha and weights: all `from_config` needs."""
    serialize = keras.saving.serialize_keras_object
    return {
        "name": distiller.name,
        "teacher": _each_teacher(_teacher_config, distiller.teacher),
        "teacher_weights": list(distiller.teacher_weights) or None,
        "student": _model_config(distiller.student),
        "distillation_loss": [serialize(l) for l in distiller.distillation_losses],
        "alpha": float(distiller.alpha.numpy()),
        "distillation_loss_weights": [
            float(w.numpy()) for w in distiller.distillation_loss_weights
        ],
    }


def constructor_arguments(config, custom_objects=None) -> dict:
    """`config`'s models and losses deserialized; `config` is left unchanged."""
    # Deserializing a model consumes parts of its config: keep the caller's.
    config = copy.deepcopy(config)
    deserialize = keras.saving.deserialize_keras_object
    config["teacher"] = _each_teacher(
        lambda t: deserialize(t, custom_objects=custom_objects), config.get("teacher")
    )
    config["student"] = deserialize(config["student"], custom_objects=custom_objects)
    config["distillation_loss"] = [
        deserialize(l, custom_objects=custom_objects) for l in config["distillation_loss"]
    ]
    return config


def build_models(models, shapes) -> None:
    """Builds each model not built yet on one zero batch of the saved `shapes`."""
    batch = _zeros(shapes)
    for model in models:
        if not model.built:
            model(batch, training=False)


def _each_teacher(function, teacher):
    """`function` applied to the teacher, or to each of an ensemble (None: None)."""
    if teacher is None:
        return None
    if isinstance(teacher, (list, tuple)):
        return [function(t) for t in teacher]
    return function(teacher)


def _model_config(model) -> dict:
    # The sub-models' own compile state (their optimizers) is not part of the
    # distillation run: the Distiller's optimizer trains the student.
    config = keras.saving.serialize_keras_object(model)
    config.pop("compile_config", None)
    return config


def _zeros(shapes):
    """A batch of one zero sample per input, from shapes as `get_build_config` saves them."""
    if isinstance(shapes, dict):
        return {key: _zeros(value) for key, value in shapes.items()}
    if all(d is None or isinstance(d, int) for d in shapes):
        return tf.zeros([1 if d is None else d for d in shapes])
    return [_zeros(value) for value in shapes]


def _teacher_config(model) -> dict:
    # Without its trainable=False: a subclassed teacher rebuilt frozen would
    # make its layers afterwards, trainable, and the Distiller's freezing it
    # again would not reach them (Keras skips an unchanged flag).
    config = _model_config(model)
    config.get("config", {}).pop("trainable", None)
    return config
