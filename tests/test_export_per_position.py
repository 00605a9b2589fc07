"""Models with an output per position (language models, token classifiers) export
and are measured per position, padding left out (issue #29).

Two students of a causal language model: keras-hub's `GPT2CausalLM` (token_ids
and padding_mask in, logits per position out; Keras 3 only) and a plain
functional one (Embedding -> causal Conv1D -> Dense per position). Each learns a
next-token rule on padded sequences, converts to `.tflite`, and LiteRT's file
must pick the same next token as Keras on >= 99% of the real positions.
"""

import numpy as np
import pytest

from kdistill import backend, export, tflite
from kdistill.backend import keras, tf

VOCABULARY, LENGTH, N = 64, 16, 256


def _next_token_data(seed=0):
    # Token t is followed by 1 + (5t + 3) mod 63; sequences are cut at a random
    # length and padded with 0 (label 0, weight 0).
    rng = np.random.default_rng(seed)
    ids = np.zeros((N, LENGTH + 1), "int32")
    ids[:, 0] = rng.integers(1, VOCABULARY, N)
    for i in range(LENGTH):
        ids[:, i + 1] = 1 + (5 * ids[:, i] + 3) % (VOCABULARY - 1)
    lengths = rng.integers(6, LENGTH + 1, N)
    mask = (np.arange(LENGTH)[None, :] < lengths[:, None]).astype("int32")
    x = {"token_ids": ids[:, :LENGTH] * mask, "padding_mask": mask}
    return x, ids[:, 1:] * mask, mask


def _fit(model, x, y, mask, epochs):
    model.compile(
        optimizer=keras.optimizers.Adam(0.02),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(x, y, sample_weight=mask.astype("float32"), epochs=epochs, batch_size=32, verbose=0)
    return model


def _functional_lm():
    token_ids = keras.Input((None,), dtype="int32", name="token_ids")
    padding_mask = keras.Input((None,), dtype="int32", name="padding_mask")
    h = keras.layers.Embedding(VOCABULARY, 16)(token_ids)
    # `[..., None]` on a sequence of unknown length is a StridedSlice TFLite
    # lowers to builtins only once the length is fixed.
    weight = keras.layers.Lambda(lambda m: tf.cast(m, "float32")[..., None])(padding_mask)
    h = keras.layers.Multiply()([h, weight])
    h = keras.layers.Conv1D(16, 3, padding="causal", activation="relu")(h)
    logits = keras.layers.Dense(VOCABULARY)(h)
    return keras.Model({"token_ids": token_ids, "padding_mask": padding_mask}, logits)


def _gpt2_lm():
    import keras_hub

    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=VOCABULARY,
        num_layers=1,
        num_heads=2,
        hidden_dim=16,
        intermediate_dim=32,
        max_sequence_length=LENGTH,
        dropout=0.0,
    )
    return keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=None)


def _skip_without_keras_hub():
    if backend.LEGACY_KERAS:
        pytest.skip("keras-hub needs Keras 3; tf_keras has no GPT2CausalLM")
    pytest.importorskip("keras_hub", reason="keras-hub is not installed (pip install -e .[test])")


@pytest.fixture(scope="module")
def functional_lm():
    keras.utils.set_random_seed(0)
    x, y, mask = _next_token_data()
    model = _fit(_functional_lm(), x, y, mask, epochs=20)
    return model, x, y, mask


@pytest.fixture(scope="module")
def gpt2_lm():
    _skip_without_keras_hub()
    keras.utils.set_random_seed(0)
    x, y, mask = _next_token_data()
    model = _fit(_gpt2_lm(), x, y, mask, epochs=8)
    return model, x, y, mask


def _check_file_agrees(path, model, x, y, mask):
    reference = model.predict(x, verbose=0)
    keras_accuracy = np.sum((reference.argmax(-1) == y) * mask) / mask.sum()
    assert keras_accuracy > 0.95  # learned: the margins the quantized files rely on
    report = tflite.evaluate_tflite(
        path, x, y, reference_logits=reference, sample_weight=mask, latency_samples=0
    )
    assert report["agreement"] >= 0.99, report
    assert report["accuracy"] >= keras_accuracy - 0.01, report


@pytest.mark.parametrize("mode", export.QUANTIZATIONS)
def test_functional_lm_exports_at_a_fixed_length_in_every_mode_and_agrees(
    functional_lm, mode, tmp_path
):
    model, x, y, mask = functional_lm
    path = str(tmp_path / f"lm_{mode}.tflite")
    export.to_tflite(
        model, path, mode, representative_data=x if mode == "int8" else None, sequence_length=16
    )
    runner = tflite.TFLiteModel(path)
    assert [(s.name, s.shape, s.dtype) for s in runner.input_specs] == [
        ("padding_mask", (None, 16), np.int32),
        ("token_ids", (None, 16), np.int32),
    ]
    _check_file_agrees(path, model, x, y, mask)


@pytest.mark.parametrize("mode", ["none", "dynamic", "float16"])
def test_gpt2_causal_lm_exports_and_agrees_with_keras_per_position(gpt2_lm, mode, tmp_path):
    model, x, y, mask = gpt2_lm
    path = str(tmp_path / f"gpt2_{mode}.tflite")
    # The float32 file keeps the length open; the quantized ones fix it.
    export.to_tflite(model, path, mode, sequence_length=None if mode == "none" else LENGTH)
    _check_file_agrees(path, model, x, y, mask)
    if mode == "none":  # LiteRT resizes an open length: 8 positions run too
        short = {name: value[:, :8] for name, value in x.items()}
        got = tflite.TFLiteModel(path).predict(short)
        np.testing.assert_allclose(got, model.predict(short, verbose=0), atol=1e-4)


def test_gpt2_int8_is_refused_naming_the_layer_norm_and_the_modes_that_work(gpt2_lm, tmp_path):
    model, x, _, _ = gpt2_lm
    path = tmp_path / "gpt2_int8.tflite"
    with pytest.raises(
        ValueError,
        match=r'"int8" conversion left the NEG op on float tensors \(in \S*layer_norm\S*\), '
        r'.*not written.*then choose quantization="dynamic" or "float16"',
    ):
        export.to_tflite(model, str(path), "int8", representative_data=x, sequence_length=16)
    assert not path.exists()


def test_gpt2_longer_than_its_position_embedding_is_one_line_before_conversion(gpt2_lm):
    model, _, _, _ = gpt2_lm
    with pytest.raises(
        ValueError,
        match=r"`sequence_length`: the model does not run on 32 positions \(\w+: .*"
        r"PositionEmbedding.*at most the positions it can embed \(a keras-hub model's "
        r"max_sequence_length\)",
    ):
        export.convert(model, sequence_length=2 * LENGTH)


def test_open_length_input_that_needs_tensorflow_ops_says_to_fix_the_length(functional_lm):
    model, _, _, _ = functional_lm
    with pytest.raises(
        ValueError,
        match=r"builtins: StridedSlice\. The inputs \['padding_mask', 'token_ids'\] have an "
        r"unknown length: first try a fixed one, sequence_length=N",
    ):
        export.convert(model)


def test_file_with_tensorflow_ops_is_refused_with_the_fix_where_no_flex_delegate_runs_it(
    functional_lm,
):
    model, x, _, _ = functional_lm
    flatbuffer = export.convert(model, select_tf_ops=True)
    try:
        runner = tflite.TFLiteModel(flatbuffer)
    except ValueError as error:
        message = str(error)
        assert "Flex ops: StridedSlice" in message
        assert "sequence_length=" in message
        return
    # A TensorFlow build with the Flex delegate linked in runs it instead.
    np.testing.assert_allclose(runner.predict(x), model.predict(x, verbose=0), atol=1e-4)


def test_sequence_length_fixes_the_data_the_file_takes(functional_lm, tmp_path):
    model, x, _, _ = functional_lm
    short = {name: value[:, :12] for name, value in x.items()}
    with pytest.raises(
        ValueError,
        match=r"representative_data\['padding_mask'\]`: the model input 'padding_mask' "
        r"expects arrays of shape \(None, 16\).*received shape \(256, 12\)",
    ):
        export.to_tflite(model, str(tmp_path / "m.tflite"), "int8", short, sequence_length=16)
    with pytest.raises(ValueError, match=r"`sequence_length`. Expected an integer >= 1"):
        export.convert(model, sequence_length=0)
    fixed = keras.Sequential([keras.Input((16,), dtype="int32"), keras.layers.Embedding(4, 2)])
    with pytest.raises(
        ValueError, match=r"inputs have a fixed length already \('\w+': \(None, 16\)\)"
    ):
        export.convert(fixed, sequence_length=16)


def test_recurrent_model_of_unknown_length_exports_once_the_length_is_fixed(tmp_path):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((None,), dtype="int32")
    h = keras.layers.LSTM(4)(keras.layers.Embedding(8, 4)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3)(h))
    x = np.random.default_rng(0).integers(0, 8, (20, 10)).astype("int32")
    path = str(tmp_path / "lstm.tflite")
    export.to_tflite(model, path, sequence_length=10)
    np.testing.assert_allclose(
        tflite.TFLiteModel(path).predict(x), model.predict(x, verbose=0), atol=1e-5
    )


# -- per-position scores, by hand -------------------------------------------------


@pytest.fixture(scope="module")
def echo_file():
    # Logits 10 * one_hot(token): the file predicts each position's own token.
    inputs = keras.Input((4,), dtype="int32", name="token_ids")
    embedding = keras.layers.Embedding(10, 10, name="echo")
    model = keras.Model(inputs, embedding(inputs))
    embedding.set_weights([10.0 * np.eye(10, dtype="float32")])
    return export.convert(model)


ECHO_X = np.array([[1, 2, 3, 4], [5, 6, 7, 8]], "int32")
ECHO_Y = np.array([[1, 2, 3, 0], [5, 0, 0, 0]])  # right at 3 + 1 of 8 positions
ECHO_MASK = np.array([[1, 1, 1, 0], [1, 1, 0, 0]])


@pytest.mark.parametrize(
    "sample_weight, expected",
    [
        (None, 4 / 8),
        (ECHO_MASK, (3 + 1) / (3 + 2)),  # the padded positions count for nothing
        (np.array([1.0, 3.0]), (3 * 1 + 1 * 3) / (4 * 1 + 4 * 3)),  # one weight per sample
        (ECHO_MASK[..., None], (3 + 1) / (3 + 2)),
    ],
    ids=["unweighted", "padding mask", "per sample", "mask with a trailing 1"],
)
def test_per_position_accuracy_and_agreement_are_weighted_means_over_positions(
    echo_file, sample_weight, expected
):
    reference = 10.0 * np.eye(10)[ECHO_Y]  # a reference that predicts the labels
    report = tflite.evaluate_tflite(
        echo_file,
        ECHO_X,
        ECHO_Y,
        reference_logits=reference,
        sample_weight=sample_weight,
        latency_samples=2,
    )
    assert report["accuracy"] == pytest.approx(expected)
    assert report["agreement"] == pytest.approx(expected)
    assert report["latency_ms_median"] > 0


def test_per_position_labels_and_weights_of_the_wrong_shape_name_both_shapes(echo_file):
    with pytest.raises(
        ValueError,
        match=r"`y`: it has shape \(2, 3\) for outputs of shape \(2, 4, 10\)\. Expected one "
        r"integer class id per position, shape \(2, 4\)",
    ):
        tflite.evaluate_tflite(echo_file, ECHO_X, ECHO_Y[:, :3], latency_samples=0)
    with pytest.raises(ValueError, match=r"`y`: the labels look one-hot \(shape \(2, 4, 10\)\)"):
        tflite.evaluate_tflite(echo_file, ECHO_X, np.eye(10)[ECHO_Y], latency_samples=0)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 10\)"):
        tflite.evaluate_tflite(echo_file, ECHO_X, ECHO_Y + 9, latency_samples=0)
    with pytest.raises(
        ValueError,
        match=r"`sample_weight`: it has shape \(2, 3\) for outputs of shape \(2, 4, 10\)\. "
        r"Expected one weight per sample, shape \(2,\), or one per position, shape \(2, 4\)",
    ):
        tflite.evaluate_tflite(
            echo_file, ECHO_X, ECHO_Y, sample_weight=ECHO_MASK[:, :3], latency_samples=0
        )
