"""Every kind distils: online, offline, with feature losses, from an
ensemble, and with class and sample weights (or a clear refusal)."""

import numpy as np
import pytest
from kinds import CHEAP, KINDS, build, compiled, trained

from kdistill import cache_teacher_outputs, offline_targets
from kdistill.backend import keras
from kdistill.losses import AttentionTransfer, HintLoss


@pytest.mark.parametrize("name", KINDS)
def test_online_fit_lowers_the_loss(name):
    _, _, history = trained(name)
    assert history["loss"][-1] < history["loss"][0]


@pytest.mark.parametrize("name", CHEAP)
def test_offline_fit_from_cached_teacher_outputs_lowers_the_loss(name):
    kind = build(name)
    cached = cache_teacher_outputs(kind.teacher, kind.x)
    distiller = compiled(kind, kind.distiller(teacher=None))
    history = distiller.fit(
        kind.x, offline_targets(kind.y, cached), batch_size=16, epochs=4, verbose=0
    ).history
    assert history["loss"][-1] < history["loss"][0]


# Kinds without a layer graph to read features from, and the message they get.
FEATURE_REFUSALS = {
    "sequential_bare": "Sequential model 'teacher' that has not been built.*keras.Input",
    "subclassed": "subclassed model 'teacher', without a layer graph",
}


@pytest.mark.parametrize("name", CHEAP)
def test_feature_loss_lowers_its_term_or_is_refused(name):
    kind = build(name)
    if name in FEATURE_REFUSALS:
        with pytest.raises(ValueError, match=FEATURE_REFUSALS[name]):
            kind.distiller(distillation_loss=HintLoss("teacher_hidden", "student_hidden"))
        return
    teacher_layer, student_layer = kind.hint
    loss = (
        AttentionTransfer(teacher_layer, student_layer)
        if kind.hint_loss == "attention"
        else HintLoss(teacher_layer, student_layer, distance=kind.hint_distance)
    )
    distiller = compiled(kind, kind.distiller(distillation_loss=[kind.distillation_loss, loss]))
    history = distiller.fit(kind.x, kind.y, batch_size=16, epochs=4, verbose=0).history
    term = f"{loss.registry_name}_loss"
    assert history[term][-1] < history[term][0]


@pytest.mark.parametrize("name", CHEAP)
def test_two_teacher_ensemble_lowers_the_loss(name):
    second = build(name).teacher
    kind = build(name)  # the same architecture, other weights: build() seeds alike
    second_weights = [w + 0.1 for w in second.get_weights()] if second.built else None
    if second_weights:
        second.set_weights(second_weights)
    distiller = compiled(kind, kind.distiller(teacher=[kind.teacher, second]))
    history = distiller.fit(kind.x, kind.y, batch_size=16, epochs=4, verbose=0).history
    assert history["loss"][-1] < history["loss"][0]


def _first_epoch_loss(kind, offline, **weights):
    """The loss of one epoch in one batch at learning rate 0."""
    teacher = None if offline else "same"
    y = offline_targets(kind.y, cache_teacher_outputs(kind.teacher, kind.x)) if offline else kind.y
    distiller = kind.distiller(teacher=teacher)
    distiller.compile(optimizer=keras.optimizers.SGD(0.0), loss=kind.hard_loss)
    return distiller.fit(
        kind.x, y, batch_size=len(kind.y), epochs=1, shuffle=False, verbose=0, **weights
    ).history["loss"][0]


# Offline weights take another path (the labels packed with cached outputs):
# a one-input and a dict-input kind show it.
WEIGHT_CELLS = [(name, False) for name in CHEAP] + [
    ("functional", True),
    ("two_inputs_dict", True),
    ("regression", True),
]


@pytest.mark.parametrize("name,offline", WEIGHT_CELLS)
def test_class_and_sample_weights_scale_the_loss(name, offline):
    kind = build(name)
    plain = _first_epoch_loss(kind, offline)
    doubled = _first_epoch_loss(kind, offline, sample_weight=np.full(len(kind.y), 2.0))
    assert doubled == pytest.approx(2 * plain, rel=1e-4)
    if kind.regression:
        return  # class weights need classes
    by_class = _first_epoch_loss(kind, offline, class_weight={0: 2.0, 1: 2.0, 2: 2.0})
    assert by_class == pytest.approx(2 * plain, rel=1e-4)
