"""What `fit` accepts as data: label forms and datasets with sample weights."""

import numpy as np
from conftest import make_distiller, sparse_ce, toy_data

from kdistill.backend import keras, tf


def test_one_hot_labels_with_categorical_loss():
    x, y = toy_data()
    distiller = make_distiller()
    distiller.compile(optimizer="adam", loss=keras.losses.CategoricalCrossentropy(from_logits=True))
    history = distiller.fit(x, np.eye(3)[y], epochs=3, verbose=0).history
    assert history["student_loss"][-1] < history["student_loss"][0]


def test_tf_data_with_sample_weights_trains():
    x, y = toy_data()
    ds = tf.data.Dataset.from_tensor_slices((x, y, np.ones(len(x), "float32"))).batch(16)
    distiller = make_distiller()
    distiller.compile(optimizer="adam", loss=sparse_ce())
    history = distiller.fit(ds, epochs=3, verbose=0).history
    assert history["loss"][-1] < history["loss"][0]
