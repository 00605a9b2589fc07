"""Train a tiny character-level language model, export it, and generate text from the .tflite file.

The model (an Embedding, causal dilated Conv1D layers and a Dense layer giving
next-character logits at every position) learns The Zen of Python, which ships
with Python as the `this` module. It is exported with a fixed window of
`--window` characters (`sequence_length`), and LiteRT runs the file to
generate greedily: the window's last logits give the next character, which is
appended while the window shifts left by one.

    python examples/generate_with_tflite.py
    python examples/generate_with_tflite.py --prompt "Simple is" --tokens 60
"""

import contextlib
import io
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from kdistill import export, tflite  # noqa: E402
from kdistill.backend import keras  # noqa: E402

flags.DEFINE_string("prompt", "Beautiful is", "Text the generation starts from.")
flags.DEFINE_integer("tokens", 40, "Characters to generate.")
flags.DEFINE_integer("window", 32, "Characters the exported model sees at once.")
flags.DEFINE_integer("epochs", 40, "Training epochs.")
flags.DEFINE_string("output_dir", "exported", "Where the .tflite file goes.")
FLAGS = flags.FLAGS

PAD = "\n"  # the text before the first line reads as blank lines


def zen_of_python() -> str:
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        import this  # noqa: F401 - prints the Zen when first imported

    text = printed.getvalue()
    if not text:  # imported before: decode its rot13 text instead
        import codecs

        text = codecs.decode(this.s, "rot13") + "\n"
    return text


def windows(ids: np.ndarray, window: int):
    """Every `window`-long slice of `ids` and the next id at each of its positions."""
    starts = np.arange(len(ids) - window)
    x = ids[starts[:, None] + np.arange(window)]
    return x, ids[starts[:, None] + np.arange(1, window + 1)]


def char_model(vocabulary: int, width: int = 96):
    # Dilations 1..16 with kernel 2: each position sees the 32 characters before it.
    token_ids = keras.Input((None,), dtype="int32", name="token_ids")
    h = keras.layers.Embedding(vocabulary, width)(token_ids)
    for dilation in (1, 2, 4, 8, 16):
        conv = keras.layers.Conv1D(
            width, 2, padding="causal", dilation_rate=dilation, activation="relu"
        )
        h = keras.layers.Add()([h, conv(h)])
    return keras.Model(token_ids, keras.layers.Dense(vocabulary)(h), name="char_lm")


def generate(runner, prompt_ids, steps: int, window: int, pad_id: int) -> list:
    """Greedy decoding from a .tflite file of a fixed `window`."""
    ids = [pad_id] * window + list(prompt_ids)
    for _ in range(steps):
        logits = runner.predict(np.asarray([ids[-window:]], "int32"))
        ids.append(int(np.argmax(logits[0, -1])))
    return ids[window + len(prompt_ids) :]


def main(argv):
    keras.utils.set_random_seed(0)
    text = PAD * FLAGS.window + zen_of_python()
    characters = sorted(set(text))
    index = {c: i for i, c in enumerate(characters)}
    unknown = sorted(set(FLAGS.prompt) - set(characters))
    if unknown:
        raise app.UsageError(f"--prompt uses characters the text never has: {unknown}")
    x, y = windows(np.array([index[c] for c in text], "int32"), FLAGS.window)
    model = char_model(len(characters))
    model.compile(
        keras.optimizers.Adam(3e-3),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    history = model.fit(x, y, batch_size=32, epochs=FLAGS.epochs, verbose=0).history
    accuracy = history["accuracy"][-1]
    print(f"trained on {len(text)} characters: next-character accuracy {accuracy:.3f}")

    path = os.path.join(FLAGS.output_dir, "char_lm.tflite")
    info = export.to_tflite(model, path, "dynamic", sequence_length=FLAGS.window)
    report = tflite.evaluate_tflite(
        path, x, y, reference_logits=model.predict(x, verbose=0), latency_samples=50
    )
    print(
        f"{path}: {info['size_bytes'] / 1024:.1f} KB, next-character accuracy "
        f"{report['accuracy']:.3f}, agrees with Keras on {report['agreement']:.1%} of "
        f"positions, {report['latency_ms_median']:.3f} ms per window"
    )
    runner = tflite.TFLiteModel(path)
    prompt_ids = [index[c] for c in FLAGS.prompt]
    generated = generate(runner, prompt_ids, FLAGS.tokens, FLAGS.window, index[PAD])
    print("generated from the .tflite file:")
    print(FLAGS.prompt + "".join(characters[i] for i in generated))


if __name__ == "__main__":
    app.run(main)
