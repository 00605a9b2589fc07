"""Pairing a teacher with a student: pair checks, feature views, adapters, ensembles."""

import numpy as np
import pytest
from conftest import frozen_sgd, make_distiller, sparse_ce, tiny_mlp, toy_data, two_heads

from kdistill import Distiller, cache_teacher_outputs, models, offline_targets, pairing
from kdistill.backend import keras
from kdistill.losses import HintLoss, PerOutput, SoftTargetKD


def test_output_shapes_that_differ_are_rejected():
    with pytest.raises(ValueError, match=r"teacher \(None, 3\) and student \(None, 5\)"):
        make_distiller(student=tiny_mlp(name="student", classes=5))


def test_input_shapes_that_differ_are_rejected():
    with pytest.raises(ValueError, match="inputs of different shapes"):
        make_distiller(student=tiny_mlp(name="student", inputs=6))


def test_student_that_is_the_teacher_is_rejected():
    model = tiny_mlp()
    with pytest.raises(ValueError, match="same object as `teacher`"):
        Distiller(model, model)


def test_student_sharing_layers_with_teacher_is_rejected():
    teacher = tiny_mlp(name="teacher")
    student = keras.Sequential(
        [keras.Input((4,)), teacher.get_layer("teacher_hidden"), keras.layers.Dense(3)]
    )
    with pytest.raises(ValueError, match="shares layers with `teacher`"):
        Distiller(teacher, student)


def test_missing_hint_layer_lists_the_layer_names():
    with pytest.raises(
        ValueError, match="no layer named 'nope'. Its layers are: .*student_hidden, student_out"
    ):
        make_distiller(distillation_loss=HintLoss("teacher_hidden", "nope"))


def test_hint_adapter_trains_but_stays_out_of_the_student():
    x, y = toy_data()
    student = tiny_mlp(name="student", units=4)
    params = student.count_params()
    distiller = make_distiller(
        student=student,
        distillation_loss=[SoftTargetKD(), HintLoss("teacher_hidden", "student_hidden")],
    )
    assert len(distiller.adapters) == 1
    trainable = {id(v) for v in distiller.trainable_variables}
    assert all(id(v) in trainable for v in distiller.adapters[0].trainable_variables)
    distiller.compile(optimizer=keras.optimizers.Adam(0.01), loss=sparse_ce())
    history = distiller.fit(x, y, epochs=10, verbose=0).history
    assert history["hint_loss"][-1] < history["hint_loss"][0]
    assert distiller.student.count_params() == params


@pytest.mark.parametrize("distance", ["mae", "cosine"])
def test_hint_distance_other_than_mse_decreases_in_training(distance):
    x, y = toy_data()
    distiller = make_distiller(
        student=tiny_mlp(name="student", units=4),
        distillation_loss=HintLoss("teacher_hidden", "student_hidden", distance=distance),
        alpha=0.0,
    )
    distiller.compile(optimizer=keras.optimizers.Adam(0.01), loss=sparse_ce())
    history = distiller.fit(x, y, epochs=10, verbose=0).history["distillation_loss"]
    assert history[-1] < 0.7 * history[0], history


def test_attention_transfer_trains_between_conv_maps_of_different_widths():
    from kdistill.losses import AttentionTransfer

    rng = np.random.default_rng(0)
    x = rng.random((32, 8, 8, 1)).astype("float32")
    y = rng.integers(0, 3, 32)
    teacher = models.small_cnn((8, 8, 1), 3, filters=(8, 16), dense_units=16, name="teacher")
    student = models.small_cnn((8, 8, 1), 3, filters=(2, 4), dense_units=8, name="student")
    distiller = Distiller(
        teacher,
        student,
        [
            SoftTargetKD(),
            AttentionTransfer(
                ["teacher_conv0", "teacher_conv1"], ["student_conv0", "student_conv1"]
            ),
        ],
    )
    distiller.compile(optimizer=keras.optimizers.Adam(0.01), loss=sparse_ce())
    history = distiller.fit(x, y, epochs=8, batch_size=8, verbose=0).history
    assert history["attention_loss"][-1] < history["attention_loss"][0]
    assert distiller.adapters == [None, None]


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_ensemble_distils_the_weighted_average_of_softened_distributions():
    x, y = toy_data()
    t1, t2 = tiny_mlp(name="t1", units=16), tiny_mlp(name="t2", units=16)
    student = tiny_mlp(name="student", units=4)
    distiller = Distiller([t1, t2], student, SoftTargetKD(2.0), teacher_weights=[1.0, 3.0])
    distiller.compile(optimizer=frozen_sgd(), loss=sparse_ce())
    logs = distiller.evaluate(x, y, batch_size=64, verbose=0, return_dict=True)
    z1, z2, zs = t1(x).numpy(), t2(x).numpy(), student(x).numpy()
    target = 0.25 * softmax(z1 / 2.0) + 0.75 * softmax(z2 / 2.0)
    ps = softmax(zs / 2.0)
    expected = np.mean(4.0 * np.sum(target * (np.log(target) - np.log(ps)), axis=-1))
    assert logs["distillation_loss"] == pytest.approx(expected, rel=1e-4)
    cached = cache_teacher_outputs([t1, t2], x)
    assert cached.shape == (len(x), 2, 3)
    offline = Distiller(None, student, SoftTargetKD(2.0), teacher_weights=[1.0, 3.0])
    offline.compile(optimizer=frozen_sgd(), loss=sparse_ce())
    got = offline.evaluate(
        x, offline_targets(y, cached), batch_size=64, verbose=0, return_dict=True
    )
    assert got["distillation_loss"] == pytest.approx(expected, rel=1e-4)


def test_ensemble_with_feature_loss_is_rejected():
    with pytest.raises(ValueError, match="single `teacher` model, not an ensemble"):
        Distiller(
            [tiny_mlp(name="t1"), tiny_mlp(name="t2")],
            tiny_mlp(name="student"),
            HintLoss("t1_hidden", "student_hidden"),
        )


def test_teacher_weights_are_normalised_to_sum_to_one():
    assert pairing.teacher_weights([1.0, 3.0], 2) == [0.25, 0.75]
    assert pairing.teacher_weights(None, 4) == [0.25] * 4
    assert pairing.teacher_weights(None, 1) == []


def test_teacher_weights_that_sum_to_zero_are_refused():
    with pytest.raises(ValueError, match="they sum to 0. Give at least one teacher"):
        pairing.teacher_weights([0.0, 0.0], 2)


def test_feature_view_returns_the_outputs_then_the_named_layers():
    model = tiny_mlp(units=8, classes=3)
    x = np.zeros((2, 4), "float32")
    logits, hidden = pairing.feature_view(model, ["mlp_hidden"], "student")(x)
    assert tuple(logits.shape) == (2, 3) and tuple(hidden.shape) == (2, 8)
    assert pairing.feature_view(model, [], "student") is model


def test_dict_outputs_keyed_differently_are_rejected():
    x_in = keras.Input((4,))
    student = keras.Model(
        x_in, {"cls": keras.layers.Dense(3)(x_in), "size": keras.layers.Dense(2)(x_in)}
    )
    with pytest.raises(
        ValueError, match=r"Expected outputs keyed as the teacher's, \['box', 'cls'\]"
    ):
        Distiller(
            two_heads(name="teacher", as_dict=True), student, PerOutput(["soft_target", None])
        )


def _sequential(name, start="input", units=8):
    """A Sequential MLP (layers f"{name}_hidden", f"{name}_out"), started with
    an Input ("input"), built by one call ("called"), or neither ("bare")."""
    layers = [
        keras.layers.Dense(units, activation="relu", name=f"{name}_hidden"),
        keras.layers.Dense(3, name=f"{name}_out"),
    ]
    model = keras.Sequential(([keras.Input((4,))] if start == "input" else []) + layers, name=name)
    if start == "called":
        model(np.zeros((1, 4), "float32"))
    return model


@pytest.mark.parametrize("start", ["input", "called"])
def test_hint_between_sequential_models_trains(start):
    x, y = toy_data()
    distiller = Distiller(
        _sequential("teacher", start, units=16),
        _sequential("student", start, units=4),
        distillation_loss=HintLoss("teacher_hidden", "student_hidden"),
    )
    distiller.compile(optimizer=keras.optimizers.Adam(0.01), loss=sparse_ce())
    history = distiller.fit(x, y, epochs=8, verbose=0).history
    assert history["distillation_loss"][-1] < history["distillation_loss"][0]


def test_hint_on_a_sequential_never_called_says_to_start_it_with_an_input():
    with pytest.raises(
        ValueError, match=r"Sequential model 'teacher' that has not been built.*keras\.Input"
    ):
        Distiller(
            _sequential("teacher", "bare"),
            _sequential("student", "bare"),
            distillation_loss=HintLoss("teacher_hidden", "student_hidden"),
        )


def _nested_student():
    """A student whose hidden layers sit in a sub-model named "backbone"."""
    inner_in = keras.Input((4,))
    hidden = keras.layers.Dense(6, activation="relu", name="inner_hidden")(inner_in)
    backbone = keras.Model(inner_in, hidden, name="backbone")
    x_in = keras.Input((4,))
    return keras.Model(x_in, keras.layers.Dense(3, name="head")(backbone(x_in)), name="student")


@pytest.mark.parametrize("path", ["backbone/inner_hidden", "backbone"])
def test_hint_on_a_nested_model_layer_named_by_its_path_trains(path):
    x, y = toy_data()
    distiller = Distiller(
        tiny_mlp(name="teacher", units=16),
        _nested_student(),
        distillation_loss=HintLoss("teacher_hidden", path),
    )
    distiller.compile(optimizer=keras.optimizers.Adam(0.01), loss=sparse_ce())
    history = distiller.fit(x, y, epochs=8, verbose=0).history
    assert history["distillation_loss"][-1] < history["distillation_loss"][0]


def test_hint_on_a_nested_layer_by_its_bare_name_shows_the_path():
    with pytest.raises(ValueError, match="named by its path.*'backbone/inner_hidden'"):
        Distiller(
            tiny_mlp(name="teacher"),
            _nested_student(),
            distillation_loss=HintLoss("teacher_hidden", "inner_hidden"),
        )


def test_hint_path_through_a_layer_that_is_not_a_model_is_refused():
    with pytest.raises(ValueError, match="'head' is not a model with a layer graph"):
        Distiller(
            tiny_mlp(name="teacher"),
            _nested_student(),
            distillation_loss=HintLoss("teacher_hidden", "head/kernel"),
        )


def test_teacher_and_student_built_on_one_input_are_a_pair():
    x_in = keras.Input((4,))
    teacher = keras.Model(x_in, keras.layers.Dense(3)(x_in), name="teacher")
    student = keras.Model(x_in, keras.layers.Dense(3)(x_in), name="student")
    distiller = Distiller(teacher, student)
    assert distiller.student is student
