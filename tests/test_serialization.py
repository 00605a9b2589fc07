"""Every serializable kdistill class round-trips through its config and Keras saving."""

import pytest
from conftest import make_distiller, tiny_mlp, two_head_pair
from roundtrip import assert_round_trips

from kdistill import Distiller, backend, losses
from kdistill.backend import keras
from kdistill.trackers import LossMeans

# Constructor arguments for the registered losses that need some; the others
# are built with their defaults and again with a non-default setting.
LOSS_ARGUMENTS = {
    "attention": [{"teacher_layers": ["a1", "a2"], "student_layers": ["b1", "b2"], "beta": 10.0}],
    "dkd": [{}, {"alpha": 0.5, "beta": 4.0, "temperature": 3.0}],
    "hint": [
        {"teacher_layer": "a", "student_layer": "b", "adapter": "none"},
        {"teacher_layer": "a", "student_layer": "b", "distance": "cosine"},
    ],
    "logit_mse": [{}, {"reduction": "sum"}],
    "per_output": [
        {"losses": [losses.SoftTargetKD(3.0), None]},
        {"losses": {"box": losses.LogitMSE("sum")}},
    ],
    "soft_target": [{}, {"temperature": 2.5}],
    "reverse_kl": [{}, {"temperature": 2.0}],
    "generalized_jsd": [{}, {"beta": 0.1, "temperature": 2.0}],
}


def registered_losses():
    return [
        pytest.param(name, kwargs, id=f"{name}-{i}")
        for name in losses.names()
        for i, kwargs in enumerate(LOSS_ARGUMENTS.get(name, [{}]))
    ]


@pytest.mark.parametrize("name, kwargs", registered_losses())
def test_every_registered_loss_round_trips(name, kwargs):
    assert_round_trips(losses.get(name, **kwargs))


def test_loss_means_round_trip_keeps_names_and_name():
    clone = assert_round_trips(LossMeans(["loss", "kd"], name="tracked"))
    assert clone.names == ("loss", "kd") and clone.name == "tracked"


@pytest.mark.parametrize(
    "build",
    [
        lambda: make_distiller(alpha=0.25, distillation_loss=losses.SoftTargetKD(2.0)),
        lambda: make_distiller(
            distillation_loss=[
                losses.SoftTargetKD(),
                losses.HintLoss("teacher_hidden", "student_hidden"),
            ],
            distillation_loss_weights=[1.0, 0.3],
        ),
        lambda: Distiller(
            [tiny_mlp(name="t1"), tiny_mlp(name="t2")],
            tiny_mlp(name="student"),
            teacher_weights=[1.0, 3.0],
        ),
        lambda: Distiller(None, tiny_mlp(name="student"), "logit_mse", alpha=0.0),
        lambda: Distiller(*two_head_pair(as_dict=True), losses.PerOutput({"cls": "soft_target"})),
    ],
    ids=["one_teacher", "with_hints", "ensemble", "offline", "per_output"],
)
def test_distiller_round_trips_through_config_and_keras_file(build, tmp_path):
    assert_round_trips(build(), tmp_path)


@pytest.mark.skipif(backend.LEGACY_KERAS, reason="tf_keras prunes with tfmot's own wrappers")
def test_masked_layer_round_trips_with_its_schedule():
    from kdistill.compression.keras3_pruning import MaskedLayer
    from kdistill.compression.schedule import PruningSchedule

    schedule = PruningSchedule(0.5, begin_step=2, end_step=20, frequency=4)
    clone = assert_round_trips(MaskedLayer(keras.layers.Dense(3, name="dense"), schedule))
    assert clone.schedule == schedule
