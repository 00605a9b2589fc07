"""Every kind's student prunes while it distils (or is refused clearly)."""

import pytest
from kinds import CHEAP, build, compiled

from kdistill import backend, compression

# Pruning wraps layers of a layer graph; what it says where there is none.
PRUNE_REFUSALS = {"subclassed": "subclassed model. Build the student as a Sequential"}
# tensorflow-model-optimization wraps built layers only.
LEGACY_PRUNE_REFUSALS = {"sequential_bare": "has not been built.*keras.Input"}


def _refusals():
    return {**PRUNE_REFUSALS, **(LEGACY_PRUNE_REFUSALS if backend.LEGACY_KERAS else {})}


@pytest.mark.parametrize("name", CHEAP)
def test_pruned_student_distils_to_the_target_sparsity(name):
    kind = build(name)
    if name in _refusals():
        with pytest.raises(ValueError, match=_refusals()[name]):
            compression.prune(kind.student, 0.5, end_step=4, frequency=1)
        return
    kind.student = compression.prune(kind.student, 0.5, begin_step=0, end_step=4, frequency=1)
    distiller = compiled(kind, kind.distiller())
    history = distiller.fit(
        kind.x,
        kind.y,
        batch_size=16,
        epochs=4,
        verbose=0,
        callbacks=compression.callbacks(kind.student),
    ).history
    assert history["loss"][-1] < history["loss"][0]
    sparsity = compression.sparsity(compression.strip(distiller.student))
    assert sparsity["overall"] >= 0.45
