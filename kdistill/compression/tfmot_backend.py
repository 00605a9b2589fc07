"""tensorflow-model-optimization (tfmot) for tf_keras models.

tfmot is imported inside each function, never at kdistill's import time:
importing it sets TF_USE_LEGACY_KERAS=1 for the whole process.
"""

from __future__ import annotations

import contextlib

from kdistill.compression.schedule import PruningSchedule

# The layer classes tfmot wraps a model's layers in (pruning, clustering, QAT).
WRAPPER_CLASS_NAMES = frozenset(
    {"PruneLowMagnitude", "ClusterWeights", "QuantizeWrapperV2", "QuantizeWrapper"}
)


def _tfmot():
    import tensorflow_model_optimization as tfmot

    return tfmot


def prune(model, schedule: PruningSchedule):
    """tfmot's `prune_low_magnitude` with the equivalent schedule."""
    return _tfmot().sparsity.keras.prune_low_magnitude(model, pruning_schedule=schedule.to_tfmot())


def quantize_aware(model, preserve_sparsity: bool = False):
    """tfmot's `quantize_model`: fake-quantization for int8 training.

    With `preserve_sparsity`, tfmot's prune-preserving scheme (PQAT) instead:
    weights that are zero stay zero while the others train.
    """
    tfmot = _tfmot()
    if not preserve_sparsity:
        return tfmot.quantization.keras.quantize_model(model)
    annotated = tfmot.quantization.keras.quantize_annotate_model(model)
    scheme = tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme()
    return tfmot.quantization.keras.quantize_apply(annotated, scheme)


def cluster(model, n_clusters: int, preserve_sparsity: bool = False):
    """tfmot's `cluster_weights` with k-means++ initialised centroids.

    With `preserve_sparsity`, tfmot's sparsity-preserving clustering: zero
    weights stay zero and the others share the centroids.
    """
    tfmot = _tfmot()
    init = tfmot.clustering.keras.CentroidInitialization.KMEANS_PLUS_PLUS
    return tfmot.clustering.keras.cluster_weights(
        model,
        number_of_clusters=n_clusters,
        cluster_centroids_init=init,
        preserve_sparsity=preserve_sparsity,
    )


def strip(model):
    """Removes tfmot's pruning and clustering wrappers (QAT models stay)."""
    tfmot = _tfmot()
    model = tfmot.sparsity.keras.strip_pruning(model)
    return tfmot.clustering.keras.strip_clustering(model)


def callbacks() -> list:
    """The callbacks tfmot's pruning needs in `fit`."""
    return [_tfmot().sparsity.keras.UpdatePruningStep()]


def is_wrapped(model) -> bool:
    """Whether `model` holds tfmot pruning, clustering or QAT wrappers."""
    names = {type(l).__name__ for l in getattr(model, "layers", [])}
    return bool(names & WRAPPER_CLASS_NAMES)


def load_scope() -> contextlib.ExitStack:
    """A context in which tf_keras can deserialize every tfmot wrapper.

    tfmot's wrappers are not registered with Keras; tfmot instead offers one
    scope per technique. This opens all three.
    """
    tfmot = _tfmot()
    stack = contextlib.ExitStack()
    stack.enter_context(tfmot.sparsity.keras.prune_scope())
    stack.enter_context(tfmot.clustering.keras.cluster_scope())
    stack.enter_context(tfmot.quantization.keras.quantize_scope())
    return stack
