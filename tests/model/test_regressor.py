"""HMR's iterative error feedback regressor and its mean parameters."""
import keras
import numpy as np
import pytest

from mhr_tf.model import regressor


def test_mean_root_rotation_turns_smpl_rest_body_to_face_the_camera():
    theta = regressor.mean_parameters()
    pose, betas, camera = regressor.split_parameters(theta)
    # Rodrigues in float64 for the root axis-angle.
    r = pose[:3].astype(np.float64)
    angle = np.linalg.norm(r)
    k = r / angle
    skew = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    rotation = np.eye(3) + np.sin(angle) * skew + (1 - np.cos(angle)) * skew @ skew
    up_rest, facing_rest = np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, 1.0])  # SMPL rest: y up, faces +z
    np.testing.assert_allclose(rotation @ up_rest, [0, -1, 0], atol=1e-6)  # up in the image (camera y down)
    np.testing.assert_allclose(rotation @ facing_rest, [0, 0, -1], atol=1e-6)  # towards a camera looking along +z
    np.testing.assert_array_equal(pose[3:], 0.0)
    np.testing.assert_array_equal(betas, 0.0)
    np.testing.assert_allclose(camera, [0.9, 0.0, 0.0])


def _regressor(**kwargs):
    layer = regressor.IterativeRegressor(hidden_units=8, **kwargs)
    layer.build((None, None, 5))
    return layer


def test_zero_updates_return_the_mean_parameters_exactly():
    layer = _regressor()
    layer.update.set_weights([np.zeros_like(w) for w in layer.update.get_weights()])
    features = np.random.default_rng(0).normal(size=(2, 3, 5)).astype(np.float32)
    for training in (False, True):
        theta = layer(features, training=training).numpy()
        assert theta.shape == (2, 3, regressor.PARAMS_DIM)
        np.testing.assert_array_equal(theta, np.broadcast_to(regressor.mean_parameters(), theta.shape))


def test_each_iteration_adds_one_update():
    # A constant update c (zero kernel, bias c): theta = mean + iterations * c.
    update = np.linspace(-1.0, 1.0, regressor.PARAMS_DIM).astype(np.float32)
    for iterations in (1, 3):
        layer = _regressor(iterations=iterations)
        kernel, _ = layer.update.get_weights()
        layer.update.set_weights([np.zeros_like(kernel), update])
        theta = layer(np.ones((4, 5), np.float32)).numpy()
        np.testing.assert_allclose(theta, np.broadcast_to(regressor.mean_parameters() + iterations * update,
                                                          theta.shape), rtol=1e-6, atol=1e-6)


def test_updates_read_the_current_parameters():
    # One iteration reads concat(features, mean theta): compare with a float64 hand computation of HMR's MLP.
    layer = _regressor(iterations=1, dropout=0.0)
    rng = np.random.default_rng(2)
    features = rng.normal(size=(3, 5))
    x = np.concatenate([features, np.broadcast_to(regressor.mean_parameters(), (3, regressor.PARAMS_DIM))], axis=1)
    (w1, b1), (w2, b2) = (d.get_weights() for d in (layer.fc1, layer.fc2))
    w3, b3 = layer.update.get_weights()
    hidden = np.maximum(np.maximum(x @ w1 + b1, 0) @ w2 + b2, 0)
    expected = regressor.mean_parameters() + hidden @ w3 + b3
    np.testing.assert_allclose(layer(features.astype(np.float32)).numpy(), expected, rtol=1e-4, atol=1e-5)


def test_mean_parameters_are_a_saved_non_trainable_weight():
    layer = _regressor()
    assert [w.name for w in layer.non_trainable_weights] == ["mean_theta"]
    np.testing.assert_array_equal(layer.non_trainable_weights[0].numpy(), regressor.mean_parameters())


def test_regressor_round_trips_its_config():
    mean = regressor.mean_parameters(camera=(1.1, 0.1, -0.2))
    layer = regressor.IterativeRegressor(hidden_units=8, iterations=2, dropout=0.25, mean_theta=mean, name="ief")
    features = np.random.default_rng(3).normal(size=(2, 5)).astype(np.float32)
    expected = layer(features).numpy()
    clone = regressor.IterativeRegressor.from_config(layer.get_config())
    clone(features)
    clone.set_weights(layer.get_weights())
    assert clone.get_config() == layer.get_config()
    np.testing.assert_array_equal(clone(features).numpy(), expected)


def test_wrong_mean_size_is_rejected():
    with pytest.raises(ValueError, match=r"expected \(85,\)"):
        regressor.IterativeRegressor(mean_theta=np.zeros(82))
