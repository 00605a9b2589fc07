"""The data contract's public checks, and what `fit` accepts because of them."""

import numpy as np
import pytest
from conftest import make_distiller, sparse_ce, toy_data

from kdistill import data_contract
from kdistill.backend import keras, tf
from kdistill.callbacks import NonFiniteLossError, StopOnNonFiniteLoss


def test_as_array_takes_nested_lists_and_refuses_ragged_ones_in_one_line():
    assert data_contract.as_array([[1, 2], [3, 4]], "x").shape == (2, 2)
    with pytest.raises(ValueError) as error:
        data_contract.as_array([[1.0] * 50, [2.0]], "x")
    assert "ragged Python list" in str(error.value)
    assert "1.0, 1.0" not in str(error.value)  # the array is not dumped
    assert "\n" not in str(error.value)


def test_check_finite_names_the_first_bad_sample_and_its_value():
    values = np.ones((6, 3))
    values[4, 2], values[5, 0] = np.inf, np.nan
    with pytest.raises(ValueError, match=r"`scores`: sample 4 contains NaN or inf, a value of inf"):
        data_contract.check_finite(values, "scores")
    data_contract.check_finite(np.arange(4), "counts")  # integers are always finite


def test_check_same_scale_allows_up_to_ten_times_and_names_both_arrays():
    data_contract.check_same_scale(np.full(3, 9.0), np.ones(3), ("a", "b"))
    with pytest.raises(
        ValueError,
        match=r"`x_train` and `x_test` are on different scales "
        r"\(largest absolute values 255 and 1",
    ):
        data_contract.check_same_scale(np.full(3, 255.0), np.ones(3), ("x_train", "x_test"))


def test_fit_takes_python_lists_as_arrays_and_learns():
    x, y = toy_data()
    distiller = make_distiller()
    distiller.compile(optimizer=keras.optimizers.Adam(0.05), loss=sparse_ce())
    history = distiller.fit(
        x.tolist(), y.tolist(), sample_weight=[1.0] * len(x), epochs=5, verbose=0
    ).history
    assert history["loss"][-1] < history["loss"][0]


def test_fit_after_a_non_finite_loss_stops_at_that_step_and_keeps_nothing():
    x, y = toy_data()
    distiller = make_distiller()
    distiller.compile(optimizer=keras.optimizers.SGD(1e30), loss=sparse_ce())
    seen = []
    record = keras.callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: seen.append(b))
    with pytest.raises(NonFiniteLossError, match=r"epoch 1, step (\d+)") as error:
        distiller.fit(x * 1e3, y, batch_size=8, epochs=3, verbose=0, callbacks=[record])
    step = int(error.value.args[0].split("step ")[1].split(",")[0])
    assert step == len(seen) < 8  # stopped at once, in the first epoch
    assert isinstance(error.value, ValueError)  # the command line prints it as one line


def test_stop_on_non_finite_loss_passes_finite_losses_through():
    callback = StopOnNonFiniteLoss()
    callback.on_epoch_begin(0)
    callback.on_train_batch_end(0, {"loss": tf.constant(1.5)})
    with pytest.raises(NonFiniteLossError, match="became inf at epoch 1, step 3"):
        callback.on_train_batch_end(2, {"loss": float("inf")})


def test_dataset_of_numbers_passes_the_element_spec_check():
    x, y = toy_data()
    data_contract.check_dataset(tf.data.Dataset.from_tensor_slices((x, y)).batch(8))
    with pytest.raises(TypeError, match="the dataset's x are strings"):
        data_contract.check_dataset(tf.data.Dataset.from_tensor_slices((["a"], [0])))
