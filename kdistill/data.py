"""Data for kdistill's jobs: built-in, offline digits, npz files, keras.datasets.

Every loader returns a `Split` with float32 inputs scaled to [0, 1] and
integer labels. The validation split comes from the training data; the test
split is kept for final numbers only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re

import numpy as np

DATASETS = ("digits", "mnist", "fashion_mnist", "cifar10")
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


@dataclasses.dataclass
class Split:
    """Train, validation and test arrays of one dataset.

    Attributes:
        x_train, y_train: Training inputs and sparse labels. Inputs are one
            array, or a dict of arrays keyed by input name for a model with
            several inputs (an `.npz` with keys `x_train:<name>`).
        x_val, y_val: Validation inputs and labels, taken from training data.
        x_test, y_test: Test inputs and labels.
        name: Where the data came from.
    """

    x_train: np.ndarray | dict
    y_train: np.ndarray
    x_val: np.ndarray | dict
    y_val: np.ndarray
    x_test: np.ndarray | dict
    y_test: np.ndarray
    name: str = "data"

    @property
    def input_shape(self) -> tuple | dict:
        """The shape of one input sample (a dict of shapes for several inputs)."""
        if isinstance(self.x_train, dict):
            return {name: tuple(x.shape[1:]) for name, x in self.x_train.items()}
        return tuple(self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        """The number of classes: the largest label (train or test) plus one."""
        return int(max(self.y_train.max(), self.y_test.max())) + 1


def load(
    dataset: str = "digits",
    data_path: str | None = None,
    validation_fraction: float = 0.1,
    seed: int = 0,
    max_train: int | None = None,
    several_inputs: bool = False,
) -> Split:
    """Loads a dataset by name or from an npz file.

    Args:
        dataset: One of "digits" (scikit-learn, offline), "mnist",
            "fashion_mnist", "cifar10" (downloaded by keras.datasets).
        data_path: Path of an `.npz` file with keys x_train, y_train, x_test,
            y_test; overrides `dataset`.
        validation_fraction: Share of the training data held out for
            validation.
        seed: Seed of the validation split (and of the digits test split).
        max_train: Keep at most this many training samples (for quick runs).
        several_inputs: Accept an `.npz` whose inputs are stored per input
            name (`x_train:<name>`, `x_test:<name>`): the split's inputs are
            then dicts. Refused otherwise (the built-in models take one input).

    Returns:
        A `Split`.

    Example:
        >>> split = load("digits")
        >>> split.x_train.shape[1:]
        (8, 8, 1)
    """
    if data_path:
        x_train, y_train, x_test, y_test = _load_npz(data_path)
        name = os.path.basename(data_path)
        if isinstance(x_train, dict) and not several_inputs:
            raise ValueError(
                f"Invalid data in {data_path}: it holds several inputs "
                f"({', '.join(sorted(x_train))}), and this job trains kdistill's built-in "
                "one-input models. Store one x_train/x_test array, or export and evaluate "
                "your own several-input model (`kdistill export`, `kdistill evaluate`)."
            )
    elif dataset == "digits":
        x_train, y_train, x_test, y_test = _load_digits(seed)
        name = "digits"
    elif dataset in DATASETS:
        x_train, y_train, x_test, y_test = _load_keras_dataset(dataset)
        name = dataset
    else:
        raise ValueError(
            f"Invalid value for argument `dataset`. Expected one of "
            f"{', '.join(DATASETS)}, or pass `data_path` to an npz file. "
            f"Received: dataset={dataset!r}"
        )
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(
            "Invalid value for argument `validation_fraction`. Expected a "
            f"number in (0, 1). Received: validation_fraction={validation_fraction}"
        )
    order = np.random.default_rng(seed).permutation(count(x_train))
    n_val = max(1, int(round(len(x_train) * validation_fraction)))
    val, train = order[:n_val], order[n_val:]
    if max_train is not None:
        train = train[:max_train]
    return Split(
        x_train=take(x_train, train),
        y_train=y_train[train],
        x_val=take(x_train, val),
        y_val=y_train[val],
        x_test=x_test,
        y_test=y_test,
        name=name,
    )


def _load_digits(seed):
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype("float32")[..., None]
    y = digits.target.astype("int64")
    order = np.random.default_rng(seed + 1).permutation(len(x))
    n_test = len(x) // 5
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]


def _load_npz(path):
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"Invalid value for argument `data_path`: no file at {path!r}. "
            "Pass the path of an .npz file with keys x_train, y_train, x_test, "
            "y_test."
        )
    try:
        # allow_pickle=False: a data file never executes code.
        with np.load(path, allow_pickle=False) as data:
            inputs = {part: _named_inputs(data, part) for part in ("x_train", "x_test")}
            missing = [k for k in NPZ_KEYS if k not in data.files and not inputs.get(k)]
            if missing:
                raise ValueError(
                    f"Invalid value for argument `data_path`: {path!r} lacks "
                    f"the keys {missing} (it has {sorted(data.files)}). kdistill "
                    "expects x_train, y_train, x_test, y_test as in "
                    "keras.datasets.mnist.load_data()."
                )
            arrays = [inputs.get(k) or data[k] for k in NPZ_KEYS]
    except (OSError, EOFError, ValueError) as error:
        if "lacks the keys" in str(error):
            raise
        raise ValueError(
            f"Invalid value for argument `data_path`: {path!r} is not a "
            f"readable .npz file ({error}). Save one with numpy.savez."
        ) from error
    x_train, y_train, x_test, y_test = arrays
    if isinstance(x_train, dict) or isinstance(x_test, dict):
        return _several_inputs(path, x_train, y_train, x_test, y_test)
    for xs, ys, part in ((x_train, y_train, "train"), (x_test, y_test, "test")):
        if len(xs) != len(ys):
            raise ValueError(
                f"Invalid data in {path!r}: x_{part} has {len(xs)} samples but "
                f"y_{part} has {len(ys)}. Inputs and labels must pair up."
            )
    _check_npz(path, dict(zip(NPZ_KEYS, arrays)))
    x_train, x_test = _images(x_train, x_test)
    return x_train, _labels(y_train), x_test, _labels(y_test)


def _named_inputs(data, part: str) -> dict:
    """The arrays stored as `<part>:<input name>` in an open .npz, by name."""
    prefix = f"{part}:"
    return {k[len(prefix) :]: data[k] for k in data.files if k.startswith(prefix)}


def _several_inputs(path, x_train, y_train, x_test, y_test):
    """Checks and scales an .npz stored per input name (`x_train:<name>`)."""
    if not (isinstance(x_train, dict) and isinstance(x_test, dict)) or set(x_train) != set(x_test):
        names = [sorted(x) if isinstance(x, dict) else "one array" for x in (x_train, x_test)]
        raise ValueError(
            f"Invalid data in {path}: x_train holds {names[0]} but x_test holds {names[1]}. "
            "Store the same inputs for both splits, as x_train:<name> and x_test:<name>."
        )
    for name in sorted(x_train):
        for xs, ys, part in ((x_train, y_train, "train"), (x_test, y_test, "test")):
            if len(xs[name]) != len(ys):
                raise ValueError(
                    f"Invalid data in {path!r}: x_{part}:{name} has {len(xs[name])} samples "
                    f"but y_{part} has {len(ys)}. Inputs and labels must pair up."
                )
        _check_npz(
            path,
            {
                "x_train": x_train[name],
                "y_train": y_train,
                "x_test": x_test[name],
                "y_test": y_test,
            },
        )
        if np.issubdtype(x_train[name].dtype, np.integer) and x_train[name].dtype != np.uint8:
            continue  # integer ids (tokens, categories) stay integer
        x_train[name], x_test[name] = _images(x_train[name], x_test[name])
    return x_train, _labels(y_train), x_test, _labels(y_test)


def count(x) -> int:
    """The number of samples in `x`: an array, or a dict of arrays by input name."""
    return len(next(iter(x.values()))) if isinstance(x, dict) else len(x)


def take(x, index):
    """`x[index]` for an array, or for each array of a dict by input name.

    Example:
        >>> take({"a": np.arange(4), "b": np.arange(4) * 2}, slice(0, 2))
        {'a': array([0, 1]), 'b': array([0, 2])}
    """
    if isinstance(x, dict):
        return {name: array[index] for name, array in x.items()}
    return x[index]


def _check_npz(path, arrays):
    """The data contract on an .npz's arrays; each message names file and key."""
    from kdistill import data_contract, label_checks  # imports TensorFlow: only when a file is read

    with _naming(path):
        for key in ("x_train", "x_test"):
            data_contract.check_not_strings(arrays[key], key)
            data_contract.check_finite(arrays[key], key)
        for key in ("y_train", "y_test"):
            labels = arrays[key]
            if labels.ndim == 2 and labels.shape[1] > 1:
                raise ValueError(
                    f"Invalid value for argument `{key}`: the labels look one-hot (shape "
                    f"{labels.shape}). Save class indices instead: {key}.argmax(-1)."
                )
            label_checks.check_class_labels(labels, None, key)
            if labels.size and labels.min() < 0:
                label_checks.check_class_labels(labels, int(labels.max()) + 1, key)
        classes = int(arrays["y_train"].max()) + 1 if arrays["y_train"].size else 0
        test = arrays["y_test"].reshape(-1)
        unseen = np.flatnonzero(test >= classes)
        if unseen.size:
            index = int(unseen[0])
            raise ValueError(
                f"Invalid value for argument `y_test`: label {index} is "
                f"{test[index].item()}, a class y_train never has "
                f"(y_train's labels run from 0 to {classes - 1}). A model trained on "
                "y_train cannot predict it: fix the labels, or add samples of that "
                "class to the training split."
            )
        data_contract.check_same_scale(arrays["x_train"], arrays["x_test"], ("x_train", "x_test"))


@contextlib.contextmanager
def _naming(path):
    """Rewrites data_contract's "argument `key`" as the file and key."""
    from kdistill import data_contract

    def rewrite(message: str) -> str:
        message = re.sub(
            r"Invalid value for argument `(\w+)`",
            lambda match: f"Invalid data in {path}, key {match.group(1)}",
            message,
            count=1,
        )
        return message.replace("Invalid data:", f"Invalid data in {path}:", 1)

    with data_contract.rewritten_errors(rewrite):
        yield


def _load_keras_dataset(name):
    from kdistill.backend import keras

    loader = getattr(keras.datasets, name)
    try:
        (x_train, y_train), (x_test, y_test) = loader.load_data()
    except Exception as error:  # noqa: BLE001 - any download failure
        raise RuntimeError(
            f"Could not load the {name!r} dataset through keras.datasets "
            f"({type(error).__name__}: {error}). It is downloaded on first "
            "use; offline, save it as an .npz file with keys x_train, y_train, "
            "x_test, y_test and pass --data_path, or use --dataset digits."
        ) from error
    x_train, x_test = _images(x_train, x_test)
    return x_train, _labels(y_train), x_test, _labels(y_test)


def _images(*splits):
    """Scales every split by one rule, chosen from all of them: uint8 data,
    or values above 1, are divided by 255."""
    splits = [np.asarray(x) for x in splits]
    largest = max(float(x.max()) if x.size else 0.0 for x in splits)
    uint8 = any(x.dtype == np.uint8 for x in splits)
    scale = 255.0 if uint8 or largest > 1.0 else 1.0
    scaled = []
    for x in splits:
        x = (x / scale).astype("float32")
        if x.ndim == 3:  # (N, H, W) grey images get a channel axis
            x = x[..., None]
        scaled.append(x)
    return scaled if len(scaled) > 1 else scaled[0]


def _labels(y):
    return np.asarray(y).reshape(-1).astype("int64")
