"""Every kind of student a Keras user brings exports, and the file agrees with Keras.

Each kind is a tiny model trained for a moment on a task it can learn (so its
outputs have margins that quantization does not flip), converted in every
quantization mode and run by LiteRT on the same inputs: the file must pick the
same class as the Keras model on >= 99% of them (issue #25).
"""

import numpy as np
import pytest

from kdistill import convertible, export, tflite
from kdistill.backend import keras, tf

N = 200
CLASSES = 3


def _image_data(side=8, channels=1, seed=0):
    # The class is the brightest of three horizontal bands.
    rng = np.random.default_rng(seed)
    y = rng.integers(0, CLASSES, N)
    x = rng.uniform(0, 0.5, (N, side, side, channels)).astype("float32")
    band = side // CLASSES
    for i, c in enumerate(y):
        x[i, c * band : (c + 1) * band] += 0.5
    return x, y


def _table_data(features=6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, features)).astype("float32")
    return x, np.argmax(x[:, :CLASSES], axis=1)


def _token_data(length=10, seed=0):
    # Class c draws its tokens from ids 1 + 4c ... 4 + 4c; 0 pads the end.
    rng = np.random.default_rng(seed)
    y = rng.integers(0, CLASSES, N)
    ids = 1 + 4 * y[:, None] + rng.integers(0, 4, (N, length))
    lengths = rng.integers(3, length + 1, N)
    ids[np.arange(length)[None, :] >= lengths[:, None]] = 0
    return ids.astype("int32"), y


def _mlp_layers(units=16):
    return [keras.layers.Dense(units, activation="relu"), keras.layers.Dense(CLASSES)]


def sequential_with_input():
    x, y = _table_data()
    return keras.Sequential([keras.Input((6,)), *_mlp_layers()]), x, y


def sequential_without_input():
    x, y = _table_data()
    model = keras.Sequential(_mlp_layers())
    model(x[:1])
    return model, x, y


def functional_cnn():
    x, y = _image_data()
    inputs = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    h = keras.layers.Flatten()(keras.layers.MaxPooling2D()(h))
    return keras.Model(inputs, keras.layers.Dense(CLASSES)(h)), x, y


def _two_input_data():
    image, y = _image_data()
    table = np.random.default_rng(1).normal(size=(N, 5)).astype("float32")
    return {"image": image, "table": table}, y


def _two_input_graph():
    image = keras.Input((8, 8, 1), name="image")
    table = keras.Input((5,), name="table")
    h = keras.layers.Conv2D(4, 3, activation="relu")(image)
    h = keras.layers.Flatten()(keras.layers.MaxPooling2D()(h))
    h = keras.layers.Concatenate()([h, keras.layers.Dense(4)(table)])
    return image, table, keras.layers.Dense(CLASSES)(keras.layers.Dense(16, "relu")(h))


def two_inputs_list():
    x, y = _two_input_data()
    image, table, outputs = _two_input_graph()
    return keras.Model([image, table], outputs), [x["image"], x["table"]], y


def two_inputs_dict():
    x, y = _two_input_data()
    image, table, outputs = _two_input_graph()
    return keras.Model({"image": image, "table": table}, outputs), x, y


def nested():
    x, y = _table_data()
    inner = keras.Sequential([keras.Input((6,)), keras.layers.Dense(16, "relu")], name="inner")
    inputs = keras.Input((6,))
    return keras.Model(inputs, keras.layers.Dense(CLASSES)(inner(inputs))), x, y


class TwoLayers(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden = keras.layers.Dense(16, activation="relu")
        self.out = keras.layers.Dense(CLASSES)

    def call(self, x):
        return self.out(self.hidden(x))


def subclassed():
    x, y = _table_data()
    model = TwoLayers()
    model(x[:1])
    return model, x, y


def text_pooling():
    x, y = _token_data()
    inputs = keras.Input((10,), dtype="int32")
    h = keras.layers.Embedding(16, 8, mask_zero=True)(inputs)
    h = keras.layers.GlobalAveragePooling1D()(h)
    return keras.Model(inputs, keras.layers.Dense(CLASSES)(h)), x, y


def text_lstm():
    x, y = _token_data()
    inputs = keras.Input((10,), dtype="int32")
    h = keras.layers.Embedding(16, 8, mask_zero=True)(inputs)
    h = keras.layers.LSTM(8)(h)
    return keras.Model(inputs, keras.layers.Dense(CLASSES)(h)), x, y


def _sequence_data(length=10, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, length, 4)).astype("float32")
    return x, np.argmax(x[:, :, :CLASSES].mean(axis=1), axis=1)


def keras_hub_style_dict():
    # keras-hub's text models take token_ids, padding_mask and segment_ids.
    token_ids, y = _token_data()
    x = {
        "token_ids": token_ids,
        "padding_mask": (token_ids != 0).astype("int32"),
        "segment_ids": np.zeros_like(token_ids),
    }
    inputs = {name: keras.Input((10,), dtype="int32", name=name) for name in x}
    h = keras.layers.Embedding(16, 8)(inputs["token_ids"])
    h = h + keras.layers.Embedding(2, 8)(inputs["segment_ids"])
    mask = keras.layers.Reshape((10, 1))(inputs["padding_mask"])
    h = keras.layers.Multiply()([h, keras.layers.Lambda(lambda m: tf.cast(m, "float32"))(mask)])
    h = keras.layers.GlobalAveragePooling1D()(h)
    return keras.Model(inputs, keras.layers.Dense(CLASSES)(h)), x, y


def recurrent_lstm():
    x, y = _sequence_data()
    inputs = keras.Input((10, 4))
    h = keras.layers.LSTM(8)(inputs)
    return keras.Model(inputs, keras.layers.Dense(CLASSES)(h)), x, y


def recurrent_bidirectional_gru():
    x, y = _sequence_data()
    model = keras.Sequential(
        [
            keras.Input((10, 4)),
            keras.layers.Bidirectional(keras.layers.GRU(6)),
            keras.layers.Dense(CLASSES),
        ]
    )
    return model, x, y


def mobilenet():
    x, y = _image_data(side=32, channels=3)
    model = keras.applications.MobileNetV3Small(
        input_shape=(32, 32, 3),
        weights=None,
        classes=CLASSES,
        include_top=True,
        classifier_activation=None,
        minimalistic=True,
        alpha=0.75,
    )
    return model, x * 255.0, y


KINDS = {
    "sequential with Input": sequential_with_input,
    "sequential without Input": sequential_without_input,
    "functional": functional_cnn,
    "two inputs as a list": two_inputs_list,
    "two inputs as a dict": two_inputs_dict,
    "nested": nested,
    "subclassed": subclassed,
    "text, pooling": text_pooling,
    "keras-hub style dict of integer inputs": keras_hub_style_dict,
    "recurrent, LSTM": recurrent_lstm,
    "recurrent, bidirectional GRU": pytest.param(
        recurrent_bidirectional_gru, marks=pytest.mark.slow
    ),
    "MobileNetV3Small": pytest.param(mobilenet, marks=pytest.mark.slow),
}


def trained(build, epochs=30):
    keras.utils.set_random_seed(0)
    model, x, y = build()
    model.compile(
        optimizer=keras.optimizers.Adam(0.02),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(x, y, epochs=epochs, batch_size=32, verbose=0)
    _settle_batch_norm(model, x)
    accuracy = float(np.mean(np.argmax(model.predict(x, verbose=0), -1) == y))
    return model, x, y, accuracy


def _settle_batch_norm(model, x):
    # MobileNet's BatchNormalization (momentum 0.999) has not caught up with a
    # short fit: set its moving statistics to those of the data in one pass.
    norms = [l for l in convertible.layers(model) if isinstance(l, keras.layers.BatchNormalization)]
    for layer in norms:
        layer.momentum, layer.saved_momentum = 0.0, layer.momentum
    if norms:
        model(x, training=True)
    for layer in norms:
        layer.momentum = layer.saved_momentum


@pytest.mark.parametrize("build", KINDS.values(), ids=KINDS.keys())
def test_every_kind_exports_in_every_mode_and_agrees_with_keras(build, tmp_path):
    model, x, y, accuracy = trained(build)
    assert accuracy > 0.9  # the margins the int8 check relies on are there
    reference = model.predict(x, verbose=0)
    for mode in export.QUANTIZATIONS:
        info = export.to_tflite(model, str(tmp_path / f"{mode}.tflite"), mode, x)
        report = tflite.evaluate_tflite(
            info["path"], x, y, reference_logits=reference, latency_samples=0
        )
        assert report["agreement"] >= 0.99, (mode, report)
        assert report["accuracy"] >= accuracy - 0.02, (mode, report)


# -- several inputs ----------------------------------------------------------------


def _ids_and_image_model():
    image = keras.Input((4,), name="image")
    ids = keras.Input((3,), name="token_ids", dtype="int32")
    h = keras.layers.Flatten()(keras.layers.Embedding(10, 2)(ids))
    outputs = keras.layers.Dense(CLASSES)(keras.layers.Concatenate()([image, h]))
    return keras.Model({"image": image, "token_ids": ids}, outputs)


def _ids_and_image_data(n=40):
    rng = np.random.default_rng(0)
    return {
        "image": rng.normal(size=(n, 4)).astype("float32"),
        "token_ids": rng.integers(0, 10, (n, 3)).astype("int32"),
    }


@pytest.mark.parametrize("mode", ["none", "int8"])
def test_each_input_keeps_its_name_shape_and_dtype_in_the_file(mode):
    x = _ids_and_image_data()
    runner = tflite.TFLiteModel(export.convert(_ids_and_image_model(), mode, x))
    specs = {spec.name: spec for spec in runner.input_specs}
    assert sorted(specs) == ["image", "token_ids"]
    assert specs["token_ids"].dtype == np.int32  # integer ids stay integer, also in int8
    assert specs["token_ids"].shape == (None, 3)
    assert specs["image"].dtype == np.float32
    assert specs["image"].shape == (None, 4)


def test_inputs_are_matched_by_name_whatever_the_order_given():
    model = _ids_and_image_model()
    x = _ids_and_image_data()
    reference = model.predict(x, verbose=0)
    runner = tflite.TFLiteModel(export.convert(model))
    reordered = {"token_ids": x["token_ids"], "image": x["image"]}
    in_order = [x[name] for name in runner.input_names]
    for given in (x, reordered, in_order):
        np.testing.assert_allclose(runner.predict(given), reference, atol=1e-5)


@pytest.mark.filterwarnings("ignore:When providing `inputs` as a dict")  # Keras 3 warns; allowed
def test_a_dict_input_model_is_fed_by_its_keys_even_when_its_inputs_are_named_otherwise():
    image = keras.Input((4,), name="pixels")
    ids = keras.Input((3,), name="ids", dtype="int32")
    h = keras.layers.Flatten()(keras.layers.Embedding(10, 2)(ids))
    outputs = keras.layers.Dense(CLASSES)(keras.layers.Concatenate()([image, h]))
    model = keras.Model({"image": image, "token_ids": ids}, outputs)
    x = _ids_and_image_data()
    runner = tflite.TFLiteModel(export.convert(model, "int8", x))
    assert runner.input_names == ["image", "token_ids"]
    reference = model.predict(x, verbose=0)
    assert np.mean(np.argmax(runner.predict(x), -1) == np.argmax(reference, -1)) >= 0.95


def test_a_missing_or_unknown_input_name_lists_the_expected_names():
    model = _ids_and_image_model()
    x = _ids_and_image_data()
    flatbuffer = export.convert(model)
    with pytest.raises(
        ValueError,
        match=r"Expected a dict with the keys \['image', 'token_ids'\]\. Received keys: "
        r"\['image', 'tokens'\] \(missing \['token_ids'\], unknown \['tokens'\]\)",
    ):
        tflite.evaluate_tflite(flatbuffer, {"image": x["image"], "tokens": x["token_ids"]})
    with pytest.raises(ValueError, match=r"argument `x`: the model takes 2 inputs .*Received: "):
        tflite.evaluate_tflite(flatbuffer, x["image"])
    with pytest.raises(ValueError, match=r"argument `representative_data`: its keys do not"):
        export.convert(model, "int8", {"image": x["image"]})


def test_int8_io_quantizes_the_float_input_and_passes_integer_ids_as_they_are():
    model = _ids_and_image_model()
    x = _ids_and_image_data()
    runner = tflite.TFLiteModel(export.convert(model, "int8", x, int8_io=True))
    dtypes = {d["name"]: d["dtype"] for d in runner._interpreter.get_input_details()}
    assert dtypes == {"image": np.int8, "token_ids": np.int32}
    reference = model.predict(x, verbose=0)
    assert np.mean(np.argmax(runner.predict(x), -1) == np.argmax(reference, -1)) >= 0.95


def test_saved_model_serves_every_input_by_name(tmp_path):
    model = _ids_and_image_model()
    x = _ids_and_image_data()
    path = export.to_saved_model(model, str(tmp_path / "saved"))
    serve = tf.saved_model.load(path).signatures["serving_default"]
    served = serve(**{name: tf.constant(value) for name, value in x.items()})["output"]
    np.testing.assert_allclose(served.numpy(), model.predict(x, verbose=0), atol=1e-5)


def test_export_callback_exports_a_two_input_student(tmp_path):
    from kdistill.callbacks import ExportTFLite

    model = _ids_and_image_model()
    x = _ids_and_image_data()
    y = np.argmax(x["image"][:, :CLASSES], axis=1)
    model.compile(
        optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    callback = ExportTFLite(str(tmp_path / "s.tflite"), "int8", representative_data=x)
    model.fit(x, y, epochs=1, verbose=0, callbacks=[callback])
    report = tflite.evaluate_tflite(
        callback.info["path"], x, y, reference_logits=model.predict(x, verbose=0)
    )
    assert report["agreement"] >= 0.95
    assert callback.info["quantization"] == "int8"


# -- recurrent students ------------------------------------------------------------


def test_masked_lstm_text_student_exports_except_as_int8_which_says_why(tmp_path):
    model, x, y, accuracy = trained(text_lstm)
    reference = model.predict(x, verbose=0)
    for mode in ("none", "dynamic", "float16"):
        info = export.to_tflite(model, str(tmp_path / f"{mode}.tflite"), mode)
        runner = tflite.TFLiteModel(info["path"])
        assert runner.input_specs[0].dtype == np.int32
        assert runner.fixed_batch == 1  # the loop needs static shapes
        report = tflite.evaluate_tflite(
            info["path"], x, y, reference_logits=reference, latency_samples=3
        )
        assert report["agreement"] >= 0.99, (mode, report)
    # The unrolled masked LSTM keeps a float op that TFLite has no int8 kernel for.
    with pytest.raises(ValueError, match=r'"int8" conversion left the \w+ op on float tensors'):
        export.to_tflite(model, str(tmp_path / "int8.tflite"), "int8", x)
    assert not (tmp_path / "int8.tflite").exists()


@pytest.mark.parametrize("layer", ["LSTM", "GRU"])
def test_recurrent_layer_over_sequences_of_unknown_length_names_the_layer_and_the_fix(
    layer, tmp_path
):
    inputs = keras.Input((None,), dtype="int32", name="tokens")
    h = keras.layers.Embedding(16, 4)(inputs)
    h = getattr(keras.layers, layer)(4, name="recurrent")(h)
    model = keras.Model(inputs, keras.layers.Dense(CLASSES)(h))
    with pytest.raises(
        ValueError,
        match=rf"The {layer} layer 'recurrent' runs over sequences of unknown length \(the "
        r"model input 'tokens' has shape \(None, None\)\).*keras.Input\(\(64,\)\)",
    ):
        export.to_tflite(model, str(tmp_path / "m.tflite"))
    assert not (tmp_path / "m.tflite").exists()


# -- mixed precision -------------------------------------------------------------


def _under_policy(policy, build):
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        return build()
    finally:
        keras.mixed_precision.set_global_policy(previous)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_cnn_exports_a_float32_copy_that_agrees_with_keras(policy, tmp_path):
    float_model, x, y, _ = trained(functional_cnn)
    model, _, _ = _under_policy(policy, functional_cnn)
    assert model.layers[1].compute_dtype == policy.removeprefix("mixed_")
    model.set_weights(float_model.get_weights())
    reference = model.predict(x, verbose=0)
    for mode in export.QUANTIZATIONS:
        # Exported while the mixed policy is in force: it is in force afterwards too.
        info = _under_policy(
            policy,
            lambda mode=mode: export.to_tflite(model, str(tmp_path / "m.tflite"), mode, x),
        )
        report = tflite.evaluate_tflite(
            info["path"], x, y, reference_logits=reference, latency_samples=0
        )
        assert report["agreement"] >= 0.99, (mode, report)
    assert keras.mixed_precision.global_policy().name == "float32"
    assert model.layers[1].compute_dtype == policy.removeprefix("mixed_")  # left as it was


class HalfPrecisionBlock(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(CLASSES)

    def call(self, x):
        return self.dense(x)

    def get_config(self):
        raise NotImplementedError("no config")


def test_mixed_precision_model_that_cannot_be_rebuilt_says_what_to_do_and_keeps_the_policy():
    x, _ = _table_data()
    model = _under_policy("mixed_float16", HalfPrecisionBlock)
    model(x[:1])
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        with pytest.raises(
            ValueError,
            match=r"computes in half precision, so kdistill exports a copy of it .*could "
            r"not rebuild it .*set_global_policy\(\"float32\"\)",
        ):
            export.convert(model, representative_data=x)
        assert keras.mixed_precision.global_policy().name == "mixed_float16"
    finally:
        keras.mixed_precision.set_global_policy("float32")


# -- a regression student ----------------------------------------------------------


def test_regression_student_exports_in_every_mode_with_outputs_close_to_keras(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, 6)).astype("float32")
    target = (x[:, :2] @ np.array([[1.5], [-2.0]], "float32")) + 0.5
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(16, "relu"), keras.layers.Dense(1)]
    )
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss="mse")
    model.fit(x, target, epochs=40, batch_size=32, verbose=0)
    reference = model.predict(x, verbose=0)
    assert np.mean((reference - target) ** 2) < 0.1 * np.var(target)  # it learned the map
    spread = float(np.ptp(reference))
    tolerance = {"none": 1e-5, "dynamic": 0.02, "float16": 0.01, "int8": 0.03}
    for mode, share in tolerance.items():
        info = export.to_tflite(model, str(tmp_path / f"{mode}.tflite"), mode, x)
        outputs = tflite.TFLiteModel(info["path"]).predict(x)
        assert outputs.shape == (N, 1)
        assert np.max(np.abs(outputs - reference)) <= share * spread + 1e-5, mode
