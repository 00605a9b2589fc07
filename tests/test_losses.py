import numpy as np
import pytest

from kdistill import backend, losses
from kdistill.backend import keras, tf

TEACHER = np.array([[2.0, -1.0, 0.5]], dtype="float32")
STUDENT = np.array([[0.1, 0.3, -0.2]], dtype="float32")


def softmax(z):
    z = np.asarray(z, dtype="float64")
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def kl(p, q):
    return np.sum(p * (np.log(p) - np.log(q)), axis=-1)


def test_soft_targets_match_closed_form():
    value = float(losses.SoftTargetKD(temperature=3.0)(TEACHER, STUDENT))
    expected = 9.0 * kl(softmax(TEACHER / 3.0), softmax(STUDENT / 3.0))[0]
    assert value == pytest.approx(expected, rel=1e-5)
    assert value == pytest.approx(0.791, abs=5e-4)  # the reference value


def test_soft_targets_match_hinton_gradient_scale():
    rng = np.random.default_rng(0)
    teacher = rng.normal(size=(5, 4)).astype("float32") * 3
    student = tf.Variable(rng.normal(size=(5, 4)).astype("float32"))
    t = 2.5
    with tf.GradientTape() as tape:
        value = losses.SoftTargetKD(t)(teacher, student)
    gradient = tape.gradient(value, student).numpy()
    expected = t * (softmax(student.numpy() / t) - softmax(teacher / t)) / 5
    np.testing.assert_allclose(gradient, expected, atol=1e-6)


def soft_target_kd_by_autodiff(teacher, student, t):
    """The loss as plain operations, for TensorFlow to differentiate."""
    teacher_log_p = tf.nn.log_softmax(teacher / t)
    student_log_p = tf.nn.log_softmax(student / t)
    return t * t * tf.reduce_sum(tf.exp(teacher_log_p) * (teacher_log_p - student_log_p), -1)


def first_and_second_gradients(loss, teacher, student, t, direction):
    """Gradients of a weighted sum of the loss with respect to the teacher's
    logits, the student's and the temperature, and the student logits'
    Hessian and mixed teacher-student second derivative along `direction`."""
    with tf.GradientTape(persistent=True) as outer:
        outer.watch([teacher, student, t])
        with tf.GradientTape() as inner:
            inner.watch([teacher, student, t])
            total = tf.reduce_sum(loss(teacher, student, t) * tf.range(1.0, 6.0))
        grads = inner.gradient(total, [teacher, student, t])
        along = tf.reduce_sum(grads[1] * direction)
    second = outer.gradient(along, [student, teacher])
    return grads + second


@pytest.mark.parametrize("mode", ["eager", "function", "xla"])
def test_soft_targets_written_gradient_matches_automatic_differentiation(mode):
    rng = np.random.default_rng(1)
    teacher, student, direction = (
        tf.constant(rng.normal(size=(5, 7)) * scale, tf.float32) for scale in (3, 1, 1)
    )
    t = tf.constant(2.5)

    gradients = first_and_second_gradients
    if mode != "eager":
        gradients = tf.function(first_and_second_gradients, jit_compile=mode == "xla")
    got = gradients(losses.soft_target_kd, teacher, student, t, direction)
    expected = first_and_second_gradients(
        soft_target_kd_by_autodiff, teacher, student, t, direction
    )
    for name, g, e in zip(["teacher", "student", "T", "d2 student", "d2 teacher"], got, expected):
        np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-4, atol=1e-5, err_msg=name)


def soft_target_kd_float64(teacher, student, t):
    """The closed form in numpy float64: T^2 * KL(softmax(z_t/T) || softmax(z_s/T))."""

    def log_softmax(z):
        z = np.asarray(z, "float64") / t
        z = z - z.max(axis=-1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))

    log_p, log_q = log_softmax(teacher), log_softmax(student)
    return t * t * np.sum(np.exp(log_p) * (log_p - log_q), axis=-1)


LARGE_T_LOGITS = [
    np.random.default_rng(3).normal(size=(8, 10)).astype("float32") * scale for scale in (5, 3)
]


@pytest.mark.parametrize("t", [1.0, 10.0, 100.0, 1e3, 1e4])
def test_soft_targets_stay_within_a_thousandth_of_float64_up_to_t_1e4(t):
    teacher, student = LARGE_T_LOGITS
    got = losses.soft_target_kd(teacher, student, t).numpy()
    expected = soft_target_kd_float64(teacher, student, t)
    np.testing.assert_allclose(got, expected, rtol=1e-3)
    # As T grows the loss tends to the centred logits' squared distance / 2C.
    if t == 1e4:
        centred = (teacher - teacher.mean(-1, keepdims=True)) - (
            student - student.mean(-1, keepdims=True)
        )
        limit = np.sum(np.square(centred.astype("float64")), -1) / (2 * 10)
        np.testing.assert_allclose(got, limit, rtol=1e-3)


def test_soft_targets_choose_float32_only_where_a_tpu_is_seen(monkeypatch):
    from kdistill.losses import functional

    assert functional._precise_dtype() == tf.float64  # CPU here
    monkeypatch.setattr(tf.config, "list_logical_devices", lambda kind=None: ["TPU:0"])
    assert functional._precise_dtype() == tf.float32


@pytest.mark.parametrize("t", [1.0, 4.0, 20.0])
def test_soft_targets_in_float32_where_there_is_no_float64_match_usual_temperatures(t, monkeypatch):
    # A TPU has no float64: the same arithmetic then runs in float32, still exact
    # to float32's precision at the temperatures people use.
    from kdistill.losses import functional

    monkeypatch.setattr(functional, "_precise_dtype", lambda: tf.float32)
    teacher, student = LARGE_T_LOGITS
    got = losses.soft_target_kd(teacher, student, t).numpy()
    np.testing.assert_allclose(got, soft_target_kd_float64(teacher, student, t), rtol=1e-4)


@pytest.mark.parametrize("t", [1.0, 100.0, 1e4])
def test_soft_targets_gradient_matches_float64_autodiff_at_large_temperatures(t):
    teacher, student = (tf.constant(z) for z in LARGE_T_LOGITS)
    temperature = tf.constant(t, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch([teacher, student, temperature])
        value = tf.reduce_sum(losses.soft_target_kd(teacher, student, temperature))
    got = tape.gradient(value, [teacher, student, temperature])
    wide = [tf.cast(v, tf.float64) for v in (teacher, student, temperature)]
    with tf.GradientTape() as tape:
        tape.watch(wide)
        value = tf.reduce_sum(soft_target_kd_by_autodiff(*wide))
    expected = tape.gradient(value, wide)
    for name, g, e in zip(["teacher", "student", "T"], got, expected):
        np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-3, atol=1e-9, err_msg=name)


@pytest.mark.parametrize("t", [0.001, 2e4, 1e6])
def test_temperatures_outside_the_supported_range_are_refused(t):
    message = r"Expected a number in \[0.01, 10000.0\]. Received: temperature="
    with pytest.raises(ValueError, match=message):
        losses.SoftTargetKD(t)
    with pytest.raises(ValueError, match=message):
        losses.DecoupledKD(temperature=t)
    with pytest.raises(ValueError, match=message):
        losses.soft_target_kd(*LARGE_T_LOGITS, t)


def test_soft_targets_gradient_stays_finite_for_huge_logits():
    teacher = tf.constant([[1e4, -1e4, 0.0]])
    student = tf.constant([[-1e4, 1e4, 0.0]])
    with tf.GradientTape() as tape:
        tape.watch([teacher, student])
        value = losses.soft_target_kd(teacher, student, 1.0)
    d_teacher, d_student = tape.gradient(value, [teacher, student])
    assert np.all(np.isfinite(d_teacher.numpy()))
    # d/dz_s = T * (softmax(z_s) - softmax(z_t)): the student is one-hot on
    # class 1, the teacher on class 0.
    np.testing.assert_allclose(d_student.numpy(), [[-1.0, 1.0, 0.0]], atol=1e-6)


def test_soft_targets_stay_finite_for_huge_logits():
    teacher = np.array([[1e4, -1e4, 0.0]], dtype="float32")
    student = np.array([[-1e4, 1e4, 0.0]], dtype="float32")
    value = float(losses.SoftTargetKD(1.0)(teacher, student))
    # p_t is one-hot on class 0, log p_s(0) = -2e4: KL = 2e4.
    assert np.isfinite(value)
    assert value == pytest.approx(2e4, rel=1e-5)


def test_soft_targets_are_zero_when_student_equals_teacher():
    assert float(losses.SoftTargetKD(2.0)(TEACHER, TEACHER)) == pytest.approx(0.0, abs=1e-7)


def test_logit_mse_mean_and_sum_reductions():
    t = np.array([[1.0, 2.0, 3.0]], dtype="float32")
    s = np.array([[0.0, 0.0, 0.0]], dtype="float32")
    assert float(losses.LogitMSE()(t, s)) == pytest.approx(14.0 / 3.0)
    assert float(losses.LogitMSE(reduction="sum")(t, s)) == pytest.approx(14.0)


def test_hint_mse_averages_over_feature_axes():
    t = np.ones((2, 4, 4, 3), dtype="float32")
    s = np.zeros((2, 4, 4, 3), dtype="float32")
    per_sample = losses.hint_mse(t, s).numpy()
    np.testing.assert_allclose(per_sample, [1.0, 1.0])


def test_hint_mae_and_cosine_match_numpy_per_sample():
    rng = np.random.default_rng(3)
    t = rng.normal(size=(2, 3, 3, 4)).astype("float32")
    s = rng.normal(size=(2, 3, 3, 4)).astype("float32")
    mae = np.abs(t - s).reshape(2, -1).mean(axis=-1)
    tf_, sf = t.reshape(2, -1), s.reshape(2, -1)
    cosine = 1 - (tf_ * sf).sum(-1) / (np.linalg.norm(tf_, axis=-1) * np.linalg.norm(sf, axis=-1))
    np.testing.assert_allclose(
        losses.HintLoss("t", "s", distance="mae").per_sample([t], [s]), mae, rtol=1e-5
    )
    np.testing.assert_allclose(
        losses.HintLoss("t", "s", distance="cosine").per_sample([t], [s]), cosine, rtol=1e-5
    )


def test_cosine_hint_ignores_the_scale_of_the_features():
    rng = np.random.default_rng(4)
    t = rng.normal(size=(3, 8)).astype("float32")
    s = rng.normal(size=(3, 8)).astype("float32")
    np.testing.assert_allclose(
        losses.hint_cosine(t, s), losses.hint_cosine(100.0 * t, 0.01 * s), rtol=1e-5
    )
    np.testing.assert_allclose(losses.hint_cosine(t, 5.0 * t), [0.0, 0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(losses.hint_cosine(t, -t), [2.0, 2.0, 2.0], rtol=1e-6)


def test_unknown_hint_distance_lists_the_valid_ones():
    with pytest.raises(ValueError, match="argument `distance`.*'mse', 'mae', 'cosine'"):
        losses.HintLoss("t", "s", distance="l2")


def test_decoupled_kd_matches_hand_computation():
    t, s, label, temp, a, b = TEACHER[0], STUDENT[0], 0, 2.0, 1.0, 8.0
    pt, ps = softmax(t / temp), softmax(s / temp)
    bt = np.array([pt[label], 1 - pt[label]])
    bs = np.array([ps[label], 1 - ps[label]])
    tckd = kl(bt, bs)
    mask = np.arange(3) != label
    nckd = kl(softmax(t[mask] / temp), softmax(s[mask] / temp))
    expected = temp**2 * (a * tckd + b * nckd)
    loss = losses.DecoupledKD(alpha=a, beta=b, temperature=temp)
    assert float(loss(TEACHER, STUDENT, np.array([label]))) == pytest.approx(expected, rel=1e-5)
    one_hot = np.eye(3, dtype="float32")[[label]]
    assert float(loss(TEACHER, STUDENT, one_hot)) == pytest.approx(expected, rel=1e-5)


def test_decoupled_kd_without_labels_says_how_to_call_it():
    with pytest.raises(ValueError, match="needs the true labels"):
        losses.DecoupledKD()(TEACHER, STUDENT)


def test_attention_transfer_matches_closed_form():
    rng = np.random.default_rng(1)
    ft = rng.normal(size=(2, 3, 3, 5)).astype("float32")
    fs = rng.normal(size=(2, 3, 3, 2)).astype("float32")

    def attention(f):
        a = (f**2).mean(axis=-1).reshape(2, -1)
        return a / np.linalg.norm(a, axis=-1, keepdims=True)

    expected = 1000.0 / 2 * ((attention(ft) - attention(fs)) ** 2).mean(axis=-1)
    got = losses.AttentionTransfer("t", "s").per_sample([ft], [fs]).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_registry_builds_losses_by_name():
    loss = losses.get("soft_target", temperature=2.0)
    assert isinstance(loss, losses.SoftTargetKD)
    assert float(loss.temperature.numpy()) == 2.0
    assert set(losses.names()) >= {"soft_target", "logit_mse", "hint", "dkd", "attention"}


def test_unknown_loss_name_lists_valid_names():
    with pytest.raises(
        ValueError, match="Unknown distillation loss 'kl'. Valid names: attention, dkd"
    ):
        losses.get("kl")


@pytest.mark.parametrize("bad", [0, -1.0, float("nan")])
def test_temperature_must_be_positive(bad):
    with pytest.raises(ValueError, match="argument `temperature`"):
        losses.SoftTargetKD(temperature=bad)


def test_temperature_must_be_a_number():
    with pytest.raises(TypeError, match="Expected a number. Received: temperature='hot'"):
        losses.SoftTargetKD(temperature="hot")


def test_temperature_is_a_variable_a_callback_can_assign():
    loss = losses.SoftTargetKD(3.0)
    before = float(loss(TEACHER, STUDENT))
    loss.temperature.assign(1.0)
    after = float(loss(TEACHER, STUDENT))
    assert after == pytest.approx(kl(softmax(TEACHER), softmax(STUDENT))[0], rel=1e-5)
    assert before != pytest.approx(after)


@pytest.mark.skipif(backend.LEGACY_KERAS, reason="keras.distillation exists in Keras 3 only")
def test_keras_builtin_logits_distillation_is_not_the_closed_form_but_ours_is():
    # The README's comparison: Keras 3.15's default LogitsDistillation gives 4.385 here.
    closed_form = 9.0 * kl(softmax(TEACHER / 3.0), softmax(STUDENT / 3.0))[0]
    builtin = float(
        keras.distillation.LogitsDistillation(temperature=3.0).compute_loss(TEACHER, STUDENT)
    )
    assert builtin != pytest.approx(closed_form, rel=0.1)
    assert float(losses.SoftTargetKD(3.0)(TEACHER, STUDENT)) == pytest.approx(closed_form, rel=1e-5)


# -- several outputs ----------------------------------------------------------


def test_per_output_sums_the_chosen_losses_and_skips_none():
    rng = np.random.default_rng(0)
    t_cls, s_cls = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    t_box, s_box = rng.normal(size=(5, 4)), rng.normal(size=(5, 4))
    t_aux, s_aux = rng.normal(size=(5, 2)), rng.normal(size=(5, 2))
    expected = losses.soft_target_kd(t_cls, s_cls, 2.0) + np.mean((t_box - s_box) ** 2, axis=-1)
    listed = losses.PerOutput([losses.SoftTargetKD(2.0), "logit_mse", None])
    got = listed.per_sample([t_cls, t_box, t_aux], [s_cls, s_box, s_aux])
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    keyed = losses.PerOutput({"cls": losses.SoftTargetKD(2.0), "box": losses.LogitMSE()})
    teacher = {"cls": t_cls, "box": t_box, "aux": t_aux}
    student = {"cls": s_cls, "box": s_box, "aux": s_aux}
    np.testing.assert_allclose(keyed.per_sample(teacher, student), expected, rtol=1e-5)
    keyed.bind(["aux", "box", "cls"])  # a model's flat order: the dict's keys sorted
    got = keyed.per_sample([t_aux, t_box, t_cls], [s_aux, s_box, s_cls])
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_per_output_passes_each_output_its_own_labels():
    rng = np.random.default_rng(1)
    teacher, student = rng.normal(size=(2, 6, 4)), rng.normal(size=(2, 6, 4))
    labels = rng.integers(0, 4, size=(2, 6))
    dkd = losses.DecoupledKD(1.0, 2.0, 3.0)
    loss = losses.PerOutput([None, dkd])
    assert loss.needs_labels
    got = loss.per_sample(list(teacher), list(student), list(labels))
    np.testing.assert_allclose(got, dkd.per_sample(teacher[1], student[1], labels[1]), rtol=1e-5)


def test_per_output_without_the_labels_a_loss_needs_says_which_output():
    loss = losses.PerOutput({"cls": losses.DecoupledKD()})
    logits = {"cls": np.zeros((2, 3), "float32")}
    with pytest.raises(ValueError, match="DecoupledKD on output 'cls' needs that output's true"):
        loss.per_sample(logits, logits)


def test_per_output_that_does_not_fit_the_outputs_names_them():
    with pytest.raises(ValueError, match=r"2 losses for a model with 3 outputs \(a, b, c\)"):
        losses.PerOutput(["soft_target", None]).bind(["a", "b", "c"])
    with pytest.raises(ValueError, match="no output named 'bx'. Its outputs are: box, cls"):
        losses.PerOutput({"bx": "logit_mse"}).bind(["box", "cls"])


@pytest.mark.parametrize(
    "spec, message",
    [
        ([None, None], "every output is None"),
        ([losses.HintLoss("a", "b")], "HintLoss is not a loss on one output"),
        ("soft_target", "expected a list"),
    ],
)
def test_per_output_rejects_what_it_cannot_distil(spec, message):
    with pytest.raises((ValueError, TypeError), match=message):
        losses.PerOutput(spec)


def test_per_output_exposes_its_temperatures_to_schedules():
    soft = losses.SoftTargetKD(4.0)
    assert losses.PerOutput([soft, losses.LogitMSE()]).temperature_variables == [soft.temperature]


def test_losses_saved_when_they_lived_in_one_module_still_load():
    # What kdistill wrote before `kdistill.losses` became a package: the module
    # named here no longer holds the classes; the registered names find them.
    def saved(class_name, config):
        return {
            "module": "kdistill.losses",
            "class_name": class_name,
            "config": config,
            "registered_name": f"kdistill>{class_name}",
        }

    old = saved(
        "PerOutput",
        {
            "losses": [
                saved("SoftTargetKD", {"temperature": 3.0}),
                saved("DecoupledKD", {"alpha": 0.5, "beta": 4.0, "temperature": 3.0}),
            ]
        },
    )
    restored = keras.saving.deserialize_keras_object(old)
    assert isinstance(restored, losses.PerOutput)
    assert [type(l) for l in restored.losses] == [losses.SoftTargetKD, losses.DecoupledKD]
    assert float(restored.losses[0].temperature.numpy()) == 3.0
    for class_name, config in [
        ("LogitMSE", {"reduction": "sum"}),
        (
            "HintLoss",
            {"teacher_layer": "a", "student_layer": "b", "adapter": "auto", "distance": "cosine"},
        ),
        (
            "AttentionTransfer",
            {"teacher_layers": ["a1"], "student_layers": ["b1"], "beta": 10.0, "p": 2.0},
        ),
    ]:
        loss = keras.saving.deserialize_keras_object(saved(class_name, config))
        assert type(loss) is getattr(losses, class_name)
        assert loss.get_config() == config


def dkd_by_hand(t, s, label, temp, a, b):
    # Zhao et al.'s two terms from their definitions: the binary (target, rest) KL
    # and the KL over the non-target classes alone, both times T^2.
    pt, ps = softmax(t / temp), softmax(s / temp)
    tckd = kl(np.array([pt[label], 1 - pt[label]]), np.array([ps[label], 1 - ps[label]]))
    mask = np.arange(len(t)) != label
    nckd = kl(softmax(t[mask] / temp), softmax(s[mask] / temp))
    return temp**2 * (a * tckd + b * nckd)


def test_decoupled_kd_is_per_sample_for_labels_of_shape_batch_by_one():
    teacher = np.array([[2.0, -1.0, 0.5], [0.3, 1.2, -0.7]], dtype="float32")
    student = np.array([[0.1, 0.3, -0.2], [-0.5, 0.4, 1.1]], dtype="float32")
    labels = np.array([[0], [2]])  # sparse, (batch, 1): not a one-hot over one class
    expected = [dkd_by_hand(teacher[i], student[i], [0, 2][i], 2.0, 1.0, 8.0) for i in (0, 1)]
    got = losses.functional.decoupled_kd(teacher, student, labels, 1.0, 8.0, 2.0).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    one_hot = np.eye(3, dtype="float32")[[0, 2]]
    got = losses.functional.decoupled_kd(teacher, student, one_hot, 1.0, 8.0, 2.0).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_average_logits_weights_each_teacher_for_every_sample():
    logits = np.array(
        [[[1.0, 2.0, 3.0], [5.0, -2.0, 0.0]], [[0.0, 4.0, -4.0], [2.0, 2.0, 2.0]]], "float32"
    )
    # numpy float64 weights (a float subclass, as a normalisation with numpy gives them).
    weights = [np.float64(0.25), np.float64(0.75)]
    got = losses.average_logits(logits, weights)
    # By hand: 0.25 * [1, 2, 3] + 0.75 * [5, -2, 0] = [4, -1, 0.75];
    #          0.25 * [0, 4, -4] + 0.75 * [2, 2, 2] = [1.5, 2.5, 0.5].
    assert got.dtype == tf.float32
    np.testing.assert_array_equal(got.numpy(), [[4.0, -1.0, 0.75], [1.5, 2.5, 0.5]])


def test_average_distribution_logits_soften_to_the_weighted_mean_distribution():
    # At T=2, logits 2*log([1, 1, 2]) soften to [1/4, 1/4, 1/2] and 2*log([2, 1, 1]) to
    # [1/2, 1/4, 1/4]; weighted 1/4 and 3/4 their mean is [7/16, 4/16, 5/16], which the
    # combined logits give back as 2 * log(mean).
    first, second = 2 * np.log([1.0, 1.0, 2.0]), 2 * np.log([2.0, 1.0, 1.0])
    logits = np.array([[first, second], [second, first]], "float32")
    weights = [np.float64(0.25), np.float64(0.75)]
    got = losses.average_distribution_logits(logits, weights, 2.0)
    assert got.dtype == tf.float32
    mean = np.array([[7.0, 4.0, 5.0], [5.0, 4.0, 7.0]]) / 16
    np.testing.assert_allclose(got.numpy(), 2 * np.log(mean), rtol=1e-5)
    np.testing.assert_allclose(softmax(got.numpy() / 2.0), mean, rtol=1e-5)


def test_attention_map_squares_by_default():
    # Positions with channels [1, 3] and [2, 2]: mean squares 5 and 4 (cubes would
    # give 14 and 8), normalised by sqrt(5^2 + 4^2) = sqrt(41).
    features = np.array([[[[1.0, 3.0], [2.0, 2.0]]]], "float32")
    got = losses.functional.attention_map(features).numpy()
    np.testing.assert_allclose(got, [[5 / np.sqrt(41), 4 / np.sqrt(41)]], rtol=1e-6)


def test_decoupled_kd_masks_the_target_class_at_the_lowest_temperature():
    # At T=0.01 logits of 100 are 1e4 after softening: the mask must still remove the
    # target class. By hand (beta only): the teacher's non-target logits [0, 0] give
    # [1/2, 1/2], the student's [0, 1] / 0.01 give [e^-100, 1] (to 1e-43), so NCKD is
    # 1/2 log(1/2 / e^-100) + 1/2 log(1/2) = 50 - log 2, times T^2 = 1e-4.
    teacher = np.array([[100.0, 0.0, 0.0]], dtype="float32")
    student = np.array([[100.0, 0.0, 1.0]], dtype="float32")
    got = losses.functional.decoupled_kd(teacher, student, [0], 0.0, 1.0, 0.01).numpy()
    np.testing.assert_allclose(got, [1e-4 * (50 - np.log(2))], rtol=1e-4)


def test_decoupled_kd_binary_term_at_the_lowest_temperature():
    # alpha only. The teacher's equal logits give (target, rest) = (1/3, 2/3); the
    # student's [100, -100, -100] / 0.01 = [1e4, -1e4, -1e4] give log p_target = 0 and
    # log p_rest = log 2 - 2e4 (to 1e-8000). By hand TCKD = 1/3 log(1/3) +
    # 2/3 (log(2/3) - log 2 + 2e4) = log(1/3) + 4e4/3, times T^2 = 1e-4.
    teacher = np.zeros((1, 3), dtype="float32")
    student = np.array([[100.0, -100.0, -100.0]], dtype="float32")
    got = losses.functional.decoupled_kd(teacher, student, [0], 1.0, 0.0, 0.01).numpy()
    np.testing.assert_allclose(got, [1e-4 * (4e4 / 3 - np.log(3))], rtol=1e-4)
