"""Compression that trains inside the Distiller: pruning, QAT, clustering.

Under tf_keras (`TF_USE_LEGACY_KERAS=1`) these wrap tensorflow-model-
optimization (tfmot). Under Keras 3, where tfmot does not work, `prune` and
`strip` use kdistill's own magnitude pruning with tfmot's schedule semantics;
`quantize_aware` and `cluster` explain the switch.

Example:
    >>> pruned = compression.prune(student, target_sparsity=0.8, end_step=2000)
    >>> distiller = Distiller(teacher, pruned, SoftTargetKD(4.0))
    >>> distiller.compile(...)
    >>> distiller.fit(..., callbacks=compression.callbacks(pruned))
    >>> final = compression.strip(distiller.student)
"""

from __future__ import annotations

import warnings

import numpy as np

from kdistill import backend, validation
from kdistill.backend import keras
from kdistill.compression import keras3_pruning
from kdistill.compression.schedule import PruningSchedule

_NEEDS_TF_KERAS = (
    "{what} uses tensorflow-model-optimization, which works only on tf_keras "
    "models. Set TF_USE_LEGACY_KERAS=1 in the environment before TensorFlow is "
    "imported (e.g. TF_USE_LEGACY_KERAS=1 python train.py) and build the model "
    "with tf_keras."
)

# A model with at least this share of zero kernel weights counts as pruned:
# `quantize_aware` then warns unless told to preserve the zeros.
SPARSE_MODEL_SHARE = 0.3


def prune(
    model,
    target_sparsity: float,
    begin_step: int = 0,
    end_step: int = 1000,
    frequency: int = 100,
    schedule: str = "polynomial",
    initial_sparsity: float = 0.0,
    power: float = 3.0,
):
    """Returns a copy of `model` that prunes its Dense/Conv kernels while training.

    Args:
        model: A Sequential or functional model of the Keras in use.
        target_sparsity: Final share of zero weights per layer, in [0, 1).
        begin_step: Training step at which pruning starts.
        end_step: Step at which `target_sparsity` is reached (-1 with
            `schedule="constant"`: prune until training ends).
        frequency: Steps between mask updates.
        schedule: "polynomial" (tfmot's PolynomialDecay) or "constant"
            (ConstantSparsity).
        initial_sparsity: Sparsity at `begin_step` for "polynomial".
        power: Exponent of the polynomial decay.

    Returns:
        The model to train (pass it to the Distiller as the student).
    """
    validation.check_model(model, "model")
    settings = PruningSchedule(
        target_sparsity, begin_step, end_step, frequency, schedule, initial_sparsity, power
    )
    keras3_pruning._check_graph_model(model, "prune")
    if backend.LEGACY_KERAS:
        _check_prunable(model)
        if not model.built:
            raise ValueError(
                "Invalid value for argument `model`. Expected a built model "
                "(tensorflow-model-optimization prunes built layers only). Received: "
                f"the Sequential model {model.name!r}, which has not been built. Start "
                "it with keras.Input(shape), or call it once on a batch (model(x[:1])), "
                "before pruning."
            )
        from kdistill.compression import tfmot_backend

        return tfmot_backend.prune(model, settings)
    return keras3_pruning.prune(model, settings)


def prune_over_training(model, target_sparsity: float, epochs: int, samples: int, batch_size: int):
    """`prune` with a schedule sized to a training run.

    Sparsity ramps up (polynomial decay) over the first half of the run's
    steps, with about 40 mask updates, and holds for the second half so the
    remaining weights recover.

    Args:
        model: The model to prune.
        target_sparsity: Final share of zero weights, in [0, 1).
        epochs: Epochs of the run.
        samples: Training samples per epoch.
        batch_size: Batch size of the run.

    Returns:
        The model to train, as `prune` returns it.
    """
    steps = epochs * -(-samples // batch_size)
    return prune(
        model,
        target_sparsity,
        begin_step=0,
        end_step=max(steps // 2, 2),
        frequency=max(steps // 40, 1),
    )


def quantize_aware(model, preserve_sparsity: bool = False):
    """Returns a copy of `model` with fake quantization for int8 (QAT).

    tf_keras only (tfmot's `quantize_model`). Export the trained model with
    `kdistill.export.to_tflite(model, path, quantization="dynamic")` or
    "int8": the converter uses the ranges learned during training.

    Args:
        model: A tf_keras model (for a pruned one, the `strip`ped model).
        preserve_sparsity: Keep the zeros of a pruned model through QAT
            (tfmot's prune-preserving scheme). Plain QAT trains every weight,
            so a model pruned to 80% comes out nearly dense; a warning says
            so when a model at least `SPARSE_MODEL_SHARE` sparse is passed
            without it.

    Returns:
        The model wrapped for quantization-aware training.

    Example:
        >>> pruned = strip(pruned_and_trained)
        >>> aware = quantize_aware(pruned, preserve_sparsity=True)
    """
    validation.check_model(model, "model")
    if not backend.LEGACY_KERAS:
        raise ValueError(_NEEDS_TF_KERAS.format(what="Quantization-aware training"))
    if not preserve_sparsity:
        _warn_if_sparse(model, "quantize_aware", "plain QAT trains its zero weights again")
    from kdistill.compression import tfmot_backend

    return tfmot_backend.quantize_aware(model, preserve_sparsity)


def cluster(model, n_clusters: int, preserve_sparsity: bool = False):
    """Returns a copy of `model` whose weights share `n_clusters` values.

    tf_keras only (tfmot's `cluster_weights`, k-means++ initialisation).

    Args:
        model: A tf_keras model (for a pruned one, the `strip`ped model).
        n_clusters: Distinct values per weight tensor, at least 2.
        preserve_sparsity: Keep the zeros of a pruned model as their own
            cluster (tfmot's sparsity-preserving clustering). Without it the
            zeros join the nearest centroid; a warning says so when a model
            at least `SPARSE_MODEL_SHARE` sparse is passed.

    Returns:
        The model wrapped for clustering during training.

    Example:
        >>> clustered = cluster(strip(pruned), 16, preserve_sparsity=True)
    """
    validation.check_model(model, "model")
    if not backend.LEGACY_KERAS:
        raise ValueError(_NEEDS_TF_KERAS.format(what="Weight clustering"))
    validation.check_integer(n_clusters, "n_clusters", minimum=2)
    if not preserve_sparsity:
        _warn_if_sparse(model, "cluster", "clustering moves its zero weights to centroids")
    from kdistill.compression import tfmot_backend

    return tfmot_backend.cluster(model, n_clusters, preserve_sparsity)


def strip(model):
    """Returns a plain model ready for export: wrappers removed, zeros kept."""
    validation.check_model(model, "model")
    if backend.LEGACY_KERAS:
        from kdistill.compression import tfmot_backend

        return tfmot_backend.strip(model)
    return keras3_pruning.strip(model)


def callbacks(model) -> list:
    """The callbacks a compressed model needs in `fit` (tfmot's pruning step).

    Returns an empty list where none is needed, so it is always safe to pass.
    """
    if backend.LEGACY_KERAS:
        names = {type(l).__name__ for l in getattr(model, "layers", [])}
        if "PruneLowMagnitude" in names:
            from kdistill.compression import tfmot_backend

            return tfmot_backend.callbacks()
    return []


def sparsity(model) -> dict:
    """Share of exactly-zero kernel weights, per Dense/Conv layer and overall.

    Returns:
        ``{"layers": {name: share}, "overall": share}`` over the kernels of
        the model's Dense and Conv layers (after `strip`).
    """
    layers, zeros, total = {}, 0, 0
    for layer in model.layers:
        if isinstance(layer, keras3_pruning.PRUNABLE) or type(layer).__name__ in (
            "Dense",
            "Conv1D",
            "Conv2D",
            "Conv3D",
        ):
            kernel = np.asarray(layer.get_weights()[0])
            layers[layer.name] = float(np.mean(kernel == 0))
            zeros += int(np.sum(kernel == 0))
            total += kernel.size
    return {"layers": layers, "overall": zeros / total if total else 0.0}


def _warn_if_sparse(model, function: str, consequence: str):
    share = sparsity(model)["overall"]
    if share >= SPARSE_MODEL_SHARE:
        warnings.warn(
            f"The model passed to {function} is {share:.0%} sparse, and {consequence}. "
            "Pass preserve_sparsity=True to keep the zeros.",
            stacklevel=3,
        )


def _check_prunable(model):
    prunable = (keras.layers.Dense, keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)
    if not any(isinstance(l, prunable) for l in getattr(model, "layers", [])):
        raise ValueError(
            f"The model {model.name!r} has no prunable layer (Dense, Conv1D, Conv2D "
            "or Conv3D). Pruning needs at least one of them."
        )


__all__ = [
    "PruningSchedule",
    "callbacks",
    "cluster",
    "prune",
    "prune_over_training",
    "quantize_aware",
    "sparsity",
    "strip",
]
