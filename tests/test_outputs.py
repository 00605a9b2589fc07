"""Students and teachers with several outputs (kdistill.outputs, PerOutput)."""

import numpy as np
import pytest
from conftest import frozen_sgd, sparse_ce, tiny_mlp, two_head_data, two_head_pair, two_heads

from kdistill import Distiller, backend, cache_teacher_outputs, losses
from kdistill.backend import keras, tf
from kdistill.losses import HintLoss, LogitMSE, PerOutput, SoftTargetKD


def two_head_losses():
    return [sparse_ce(), keras.losses.MeanSquaredError()]


def test_student_with_two_heads_learns_both_from_its_teacher():
    x, cls, box = two_head_data(512)
    x_test, cls_test, box_test = two_head_data(256, seed=1)
    teacher = two_heads(units=32, name="teacher")
    teacher.compile(keras.optimizers.Adam(0.01), two_head_losses())
    teacher.fit(x, [cls, box], epochs=40, batch_size=64, verbose=0)
    distiller = Distiller(
        teacher,
        two_heads(units=16, name="student"),
        PerOutput([SoftTargetKD(2.0), LogitMSE()]),
        alpha=0.2,
    )
    distiller.compile(keras.optimizers.Adam(0.01), two_head_losses())
    history = distiller.fit(x, [cls, box], epochs=40, batch_size=64, verbose=0).history
    assert history["distillation_loss"][-1] < 0.5 * history["distillation_loss"][0]
    cls_pred, box_pred = distiller.predict(x_test, verbose=0)
    assert np.mean(np.argmax(cls_pred, -1) == cls_test) > 0.85
    assert np.mean((box_pred - box_test) ** 2) < 0.5 * np.mean((box_test - box_test.mean(0)) ** 2)


def test_losses_of_several_outputs_match_the_pure_functions():
    x, cls, box = two_head_data(64)
    teacher, student = two_head_pair()
    distiller = Distiller(teacher, student, PerOutput([SoftTargetKD(2.0), "logit_mse"]), alpha=0.3)
    distiller.compile(frozen_sgd(), [sparse_ce(), None])
    logs = distiller.evaluate(x, [cls, box], batch_size=64, verbose=0, return_dict=True)
    (t_cls, t_box), (s_cls, s_box) = teacher(x), student(x)
    distill = np.mean(losses.soft_target_kd(t_cls, s_cls, 2.0) + losses.logit_mse(t_box, s_box))
    hard = np.mean(keras.losses.sparse_categorical_crossentropy(cls, s_cls, from_logits=True))
    assert logs["distillation_loss"] == pytest.approx(distill, rel=1e-5)
    assert logs["student_loss"] == pytest.approx(hard, rel=1e-5)
    assert logs["loss"] == pytest.approx(0.3 * hard + 0.7 * distill, rel=1e-5)


def test_hints_and_per_output_losses_train_together():
    x, cls, box = two_head_data(128)
    distiller = Distiller(
        *two_head_pair(),
        [PerOutput([SoftTargetKD(2.0), None]), HintLoss("teacher_hidden", "student_hidden")],
    )
    distiller.compile("adam", two_head_losses())
    history = distiller.fit(x, [cls, box], epochs=5, verbose=0).history
    assert history["hint_loss"][-1] < history["hint_loss"][0]
    assert history["per_output_loss"][-1] < history["per_output_loss"][0]


def test_two_heads_with_alpha_zero_train_on_the_teacher_alone():
    x, cls, box = two_head_data(128)
    distiller = Distiller(*two_head_pair(), PerOutput([SoftTargetKD(2.0), LogitMSE()]), alpha=0.0)
    distiller.compile("adam", [None, None])
    history = distiller.fit(x, [cls, box], epochs=5, verbose=0).history
    assert history["student_loss"] == [0.0] * 5
    assert history["loss"][-1] < history["loss"][0]


def test_an_output_without_labels_learns_from_the_teacher_alone():
    x, cls, box = two_head_data(256)
    teacher = two_heads(units=32, name="teacher", as_dict=True)
    teacher.compile(keras.optimizers.Adam(0.01), {"cls": sparse_ce(), "box": "mse"})
    teacher.fit(x, {"cls": cls, "box": box}, epochs=30, batch_size=64, verbose=0)
    distiller = Distiller(
        teacher,
        two_heads(units=16, name="student", as_dict=True),
        PerOutput({"cls": SoftTargetKD(2.0), "box": LogitMSE()}),
    )
    distiller.compile(
        keras.optimizers.Adam(0.01), {"cls": sparse_ce()}, metrics={"cls": ["accuracy"]}
    )
    history = distiller.fit(x, {"cls": cls}, epochs=30, batch_size=64, verbose=0).history
    assert history["accuracy"][-1] > 0.8
    box_pred = distiller.predict(x, verbose=0)["box"]  # no box labels: learned from the teacher
    assert np.mean((box_pred - box) ** 2) < 0.5 * np.mean((box - box.mean(0)) ** 2)


def test_a_fit_that_fails_while_tracing_leaves_the_next_fit_working():
    x, cls, box = two_head_data(256)
    distiller = Distiller(*two_head_pair(), PerOutput(["soft_target", "logit_mse"]))
    distiller.compile(keras.optimizers.Adam(0.01), [sparse_ce(), "mse"])
    no_box_labels = tf.data.Dataset.from_tensor_slices((x, {"student_cls": cls})).batch(32)
    with pytest.raises(ValueError, match="no labels for the output 'student_box'"):
        distiller.fit(no_box_labels, verbose=0)
    with pytest.raises(ValueError, match="no labels for the output 'student_box'"):
        distiller.evaluate(no_box_labels, verbose=0)
    all_labels = tf.data.Dataset.from_tensor_slices((x, (cls, box))).batch(32)
    losses = distiller.fit(all_labels, epochs=8, verbose=0).history["loss"]
    assert losses[-1] < 0.7 * losses[0]
    assert np.isfinite(distiller.evaluate(all_labels, verbose=0)[0])


def test_save_and_load_keep_the_per_output_losses(tmp_path):
    x, cls, box = two_head_data(64)
    distiller = Distiller(*two_head_pair(as_dict=True), PerOutput({"cls": SoftTargetKD(3.0)}))
    distiller.compile("adam", {"cls": sparse_ce(), "box": "mse"})
    distiller.fit(x, {"cls": cls, "box": box}, epochs=1, verbose=0)
    path = str(tmp_path / "two_heads.keras")
    distiller.save(path)
    restored = keras.models.load_model(path)
    (loss,) = restored.distillation_losses
    assert isinstance(loss, PerOutput) and float(loss.losses["cls"].temperature.numpy()) == 3.0
    before, after = distiller.predict(x, verbose=0), restored.predict(x, verbose=0)
    np.testing.assert_allclose(after["box"], before["box"], atol=1e-6)
    restored.fit(x, {"cls": cls, "box": box}, epochs=1, verbose=0)


def one_head_teacher(_):
    return Distiller(tiny_mlp(name="teacher"), two_heads(name="student"), PerOutput(["dkd", None]))


def plain_loss(_):
    return Distiller(*two_head_pair(), SoftTargetKD())


def ensemble(_):
    teachers = [two_heads(name="t1"), two_heads(name="t2")]
    return Distiller(teachers, two_heads(name="student"), PerOutput(["soft_target", None]))


def one_compiled_loss(_):
    distiller = Distiller(*two_head_pair(), PerOutput(["soft_target", None]))
    distiller.compile("adam", sparse_ce())


def labels_of_an_unknown_output(_):
    x, cls, box = two_head_data(32)
    distiller = Distiller(*two_head_pair(as_dict=True), PerOutput({"cls": "soft_target"}))
    distiller.compile("adam", {"cls": sparse_ce()})
    distiller.fit(x, {"cls": cls, "boxes": box}, verbose=0)


def one_label_array(_):
    x, cls, _ = two_head_data(32)
    distiller = Distiller(*two_head_pair(), PerOutput(["soft_target", None]))
    distiller.compile("adam", [sparse_ce(), None])
    distiller.fit(x, cls, verbose=0)


class SubclassedTwoHeads(keras.Model):
    def __init__(self):
        super().__init__()
        self.cls, self.box = keras.layers.Dense(3), keras.layers.Dense(2)

    def call(self, x):
        return [self.cls(x), self.box(x)]


def subclassed_two_heads(_):
    x, cls, _ = two_head_data(32)
    distiller = Distiller(tiny_mlp(inputs=4), SubclassedTwoHeads())
    distiller.compile("adam", sparse_ce())
    distiller.fit(x, cls, verbose=0)


def caching_an_ensemble(_):
    cache_teacher_outputs([two_heads(name="t1"), two_heads(name="t2")], two_head_data(8)[0])


class TwoSlices(keras.layers.Layer):
    """One layer returning two outputs: Keras 3 names both after the layer."""

    def call(self, h):
        return [h[:, :3], h[:, 3:]]


def one_layer_two_heads(name, units=8):
    x_in = keras.Input((4,))
    h = keras.layers.Dense(units, activation="relu", name=f"{name}_hidden")(x_in)
    h = keras.layers.Dense(5, name=f"{name}_logits")(h)
    return keras.Model(x_in, TwoSlices(name=f"{name}_heads")(h), name=name)


@pytest.mark.skipif(backend.LEGACY_KERAS, reason="tf_keras names each output of a layer apart")
def test_outputs_sharing_a_name_take_lists_and_refuse_dicts():
    x, cls, box = two_head_data(256)
    distiller = Distiller(
        one_layer_two_heads("teacher", units=16),
        one_layer_two_heads("student"),
        PerOutput(["soft_target", "logit_mse"]),
        alpha=0.5,
    )
    with pytest.raises(ValueError, match="cannot tell apart the outputs named 'student_heads'"):
        distiller.compile("adam", {"student_heads": sparse_ce()})
    distiller.compile(keras.optimizers.Adam(0.01), [sparse_ce(), "mse"])
    dict_labels = {"student_heads": cls}
    with pytest.raises(ValueError, match="`y`: a dict keyed by output name cannot tell"):
        distiller.fit(x, dict_labels, verbose=0)
    with pytest.raises(ValueError, match="`y`: a dict keyed by output name cannot tell"):
        distiller.fit(tf.data.Dataset.from_tensor_slices((x, dict_labels)).batch(32), verbose=0)
    losses = distiller.fit(x, [cls, box], epochs=8, batch_size=32, verbose=0).history["loss"]
    assert losses[-1] < 0.7 * losses[0]


@pytest.mark.parametrize(
    "make_it, message",
    [
        (one_head_teacher, "different numbers of outputs: teacher 1"),
        (plain_loss, r"2 outputs \(student_cls, student_box\), so SoftTargetKD must say"),
        (ensemble, "a teacher ensemble distils models with one output"),
        (one_compiled_loss, "pass a list with one loss per output"),
        (one_label_array, "pass one array of labels per output"),
        (labels_of_an_unknown_output, "`y`: the model has no output named 'boxes'. Its outputs"),
        (caching_an_ensemble, "Cache a single teacher"),
        (subclassed_two_heads, "student returned 2 outputs, but kdistill expected 1"),
    ],
    ids=lambda v: getattr(v, "__name__", ""),
)
def test_several_outputs_misused_get_a_clear_error(make_it, message):
    with pytest.raises(ValueError, match=message):
        make_it(None)
