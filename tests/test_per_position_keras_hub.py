"""A keras-hub GPT2CausalLM pair distilled per token (Keras 3 only): the
issue's example, fed by keras-hub's own preprocessor in a tf.data pipeline."""

import numpy as np
import pytest

from kdistill import Distiller, backend, cache_teacher_outputs
from kdistill.backend import keras, tf
from kdistill.losses import ReverseKL, SoftTargetKD

if backend.LEGACY_KERAS:
    pytest.skip("keras-hub needs Keras 3; tf_keras has no GPT2CausalLM", allow_module_level=True)
keras_hub = pytest.importorskip("keras_hub")

LETTERS = "abcdefghijklmnopqrstuvwxyz"
CE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def preprocessor():
    """GPT-2's preprocessor over a tiny byte-pair vocabulary (no download):
    one token per letter, 54 in all."""
    tokens = ["<|endoftext|>", *LETTERS, "Ġ", *("Ġ" + c for c in LETTERS)]
    tokenizer = keras_hub.models.GPT2Tokenizer(
        vocabulary={t: i for i, t in enumerate(tokens)}, merges=["Ġ " + c for c in LETTERS]
    )
    return keras_hub.models.GPT2CausalLMPreprocessor(tokenizer, sequence_length=16)


def causal_lm(layers, hidden, name, seed):
    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=64,
        num_layers=layers,
        num_heads=2,
        hidden_dim=hidden,
        intermediate_dim=2 * hidden,
        max_sequence_length=16,
        name=f"{name}_backbone",
    )
    return keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=None, name=name)


def alphabet_runs(count=128, seed=0):
    """Runs of consecutive letters, 6 to 14 long: the next letter is learnable."""
    rng = np.random.default_rng(seed)
    starts, lengths = rng.integers(0, 26, count), rng.integers(6, 15, count)
    return ["".join(LETTERS[(s + i) % 26] for i in range(n)) for s, n in zip(starts, lengths)]


def accuracy(model, x, y, weights):
    predicted = model.predict(x, verbose=0).argmax(-1)
    return float(np.mean(predicted[weights > 0] == y[weights > 0]))


def test_gpt2_causal_lm_distils_per_token_online_and_from_a_top_k_cache():
    # keras-hub's preprocessor yields (x, y, sample_weight) batches: next-token
    # labels (batch, 16) and 0 weights at padding.
    dataset = (
        tf.data.Dataset.from_tensor_slices(alphabet_runs()).batch(32).map(preprocessor()).cache()
    )
    x, y, weights = (
        tf.nest.map_structure(lambda *parts: np.concatenate(parts), *parts)
        for parts in zip(*[tuple(b) for b in dataset.as_numpy_iterator()])
    )
    weights = weights.astype("float32")
    teacher = causal_lm(1, 32, "teacher", 0)
    teacher.compile(optimizer=keras.optimizers.Adam(0.03), loss=CE)
    teacher.fit(dataset, epochs=8, verbose=0)
    assert accuracy(teacher, x, y, weights) > 0.7  # chance: 1 / 54

    # Online, from arrays: the {"token_ids", "padding_mask"} dict of the issue.
    student = causal_lm(1, 16, "student", 1)
    distiller = Distiller(teacher, student, SoftTargetKD(1.0), alpha=0.5)
    distiller.compile(keras.optimizers.Adam(0.03), loss=CE)
    history = distiller.fit(x, y, sample_weight=weights, epochs=8, batch_size=32, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    assert accuracy(student, x, y, weights) > 0.7

    # Offline, from the pipeline: the teacher's top 8 of 64 logits per token.
    cached = cache_teacher_outputs(teacher, dataset, top_k=8)
    student = causal_lm(1, 16, "student", 2)
    distiller = Distiller(None, student, ReverseKL(), alpha=0.5)
    distiller.compile(keras.optimizers.Adam(0.03), loss=CE)
    history = distiller.fit(cached, epochs=8, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    assert accuracy(student, x, y, weights) > 0.7
