"""One round-trip check for every serializable kdistill class."""

import copy

from kdistill.backend import keras


def assert_round_trips(obj, tmp_path=None):
    """Checks that `obj` survives `get_config`/`from_config`, Keras
    serialization, and (for a model, given `tmp_path`) a `.keras` file.

    Each time the restored object must be of the same class with an equal
    config (tuples and lists count as equal: a `.keras` file stores JSON).

    Args:
        obj: A serializable kdistill object (a loss, a metric, a model).
        tmp_path: A folder for the `.keras` file; models only.

    Returns:
        The object restored last, for checks of its own.
    """
    config = obj.get_config()
    # Keras's own `Wrapper.from_config` consumes the config it is given.
    clone = type(obj).from_config(copy.deepcopy(config))
    assert type(clone) is type(obj)
    assert _plain(clone.get_config()) == _plain(config)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(obj))
    assert type(restored) is type(obj)
    assert _plain(restored.get_config()) == _plain(config)
    if isinstance(obj, keras.Model) and tmp_path is not None:
        path = str(tmp_path / "round_trip.keras")
        obj.save(path)
        restored = keras.models.load_model(path)
        assert type(restored) is type(obj)
        assert _plain(restored.get_config()) == _plain(config)
    return restored


def _plain(value):
    """`value` with every tuple turned into a list, as JSON stores it."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
