"""Motion HMR end to end: outputs of the batch contract, mean start, assembly, config round trip, overfitting."""
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from mhr_tf import losses
from mhr_tf.body import joints as joint_sets
from mhr_tf.body import smpl
from mhr_tf.model import motion_hmr, regressor, trunk

CROP = 64
PAIRS = 7  # 8-frame clips
TINY = dict(crop_size=CROP, architecture="resnet_tiny", lstm_units=8, head_units=16, regressor_units=16)


@pytest.fixture(scope="module", name="toy_body_path")
def fixture_toy_body_path(tmp_path_factory):
    """A hand-built TOY body model in SMPL's .npz layout (not a human body): 4 vertices around each of 24 joints."""
    rng = np.random.default_rng(0)
    rest_joints = rng.normal(size=(24, 3)) * 0.3
    vertices = (rest_joints[:, None, :] + rng.normal(size=(24, 4, 3)) * 0.05).reshape(-1, 3)
    num_vertices = vertices.shape[0]
    owner = np.repeat(np.arange(24), 4)
    J_regressor = (owner[None, :] == np.arange(24)[:, None]) / 4.0  # each joint = mean of its 4 vertices
    weights = (owner[:, None] == np.arange(24)[None, :]).astype(np.float64)
    faces = np.concatenate([np.stack([4 * owner[::4], 4 * owner[::4] + 1, 4 * owner[::4] + 2], 1),
                            np.stack([4 * owner[::4] + 1, 4 * owner[::4] + 2, 4 * owner[::4] + 3], 1)])
    path = tmp_path_factory.mktemp("toy_body") / "TOY_SMPL_NEUTRAL.npz"
    np.savez(path, v_template=vertices, shapedirs=rng.normal(size=(num_vertices, 3, 10)) * 0.01,
             posedirs=rng.normal(size=(num_vertices, 3, 207)) * 0.001, J_regressor=J_regressor, weights=weights,
             kintree_table=np.stack([joint_sets.SMPL_PARENTS, np.arange(24)]), f=faces)
    return str(path)


def _inputs(channels, batch=2, seed=0):
    width = trunk.num_channels(channels)
    return {"inputs": np.random.default_rng(seed).uniform(-1, 1, (batch, PAIRS, CROP, CROP, width)).astype(np.float32)}


def test_outputs_are_the_body_model_of_the_regressed_parameters(toy_body_path):
    channels = ("rgb", "flow", "heatmaps", "occlusion")
    model = motion_hmr.build_model(channels=channels, body_model_path=toy_body_path, with_vertices=True, **TINY)
    outputs = {k: v.numpy().astype(np.float64) for k, v in model(_inputs(channels), training=False).items()}
    body = smpl.load_body_model(toy_body_path)
    expected_keys = {f"{h}/{k}" for h in motion_hmr.HEADS
                     for k in ("pose", "betas", "camera", "joints3d", "smpl_joints3d", "keypoints2d", "vertices")}
    assert set(outputs) == expected_keys | {"features"}
    assert outputs["features"].shape == (2, PAIRS, trunk.feature_dim("resnet_tiny"))
    for head in motion_hmr.HEADS:
        pose, betas, camera = (outputs[f"{head}/{k}"] for k in ("pose", "betas", "camera"))
        assert pose.shape == (2, PAIRS, 72) and betas.shape == (2, PAIRS, 10) and camera.shape == (2, PAIRS, 3)
        vertices, joints24 = smpl.forward_numpy(body, betas.reshape(-1, 10), pose.reshape(-1, 72))
        np.testing.assert_allclose(outputs[f"{head}/vertices"], vertices.reshape(2, PAIRS, -1, 3), atol=1e-5)
        np.testing.assert_allclose(outputs[f"{head}/smpl_joints3d"], joints24.reshape(2, PAIRS, 24, 3), atol=1e-5)
        joints14 = np.einsum("lv,bpvc->bplc", body.lsp_regressor, outputs[f"{head}/vertices"])
        np.testing.assert_allclose(outputs[f"{head}/joints3d"], joints14, atol=1e-5)
        # HMR's weak perspective: s * (X[:2] + (tx, ty)).
        keypoints = camera[..., None, :1] * (joints14[..., :2] + camera[..., None, 1:])
        np.testing.assert_allclose(outputs[f"{head}/keypoints2d"], keypoints, atol=1e-5)


def test_zero_updates_start_every_pair_at_the_mean_parameters(toy_body_path):
    model = motion_hmr.build_model(channels=("flow",), body_model_path=toy_body_path, **TINY)
    for head in motion_hmr.HEADS:
        update = model.get_layer(f"{head}_regressor").update
        update.set_weights([np.zeros_like(w) for w in update.get_weights()])
    outputs = model(_inputs(("flow",)), training=True)
    mean_pose, mean_betas, mean_camera = regressor.split_parameters(regressor.mean_parameters())
    for head in motion_hmr.HEADS:
        for key, mean in (("pose", mean_pose), ("betas", mean_betas), ("camera", mean_camera)):
            got = outputs[f"{head}/{key}"].numpy()
            np.testing.assert_array_equal(got, np.broadcast_to(mean, got.shape))


def test_assemble_sequence_keeps_every_current_and_the_last_future():
    outputs = {"current/pose": tf.constant([[[0.0, 0.5], [1.0, 1.5], [2.0, 2.5]]]),   # [1, 3, 2]
               "future/pose": tf.constant([[[10.0, 10.5], [11.0, 11.5], [12.0, 12.5]]]),
               "current/camera": tf.constant([[[0.0], [1.0], [2.0]], [[3.0], [4.0], [5.0]]]),  # [2, 3, 1]
               "future/camera": tf.constant([[[7.0], [8.0], [9.0]], [[6.0], [6.5], [-1.0]]]),
               "features": tf.zeros((1, 3, 4))}
    sequence = motion_hmr.assemble_sequence(outputs)
    assert set(sequence) == {"pose", "camera"}
    np.testing.assert_array_equal(sequence["pose"].numpy(), [[[0.0, 0.5], [1.0, 1.5], [2.0, 2.5], [12.0, 12.5]]])
    np.testing.assert_array_equal(sequence["camera"].numpy()[..., 0], [[0, 1, 2, 9], [3, 4, 5, -1]])


def test_thirty_pairs_assemble_to_thirty_one_frames():
    current = tf.reshape(tf.range(30.0), (1, 30, 1))
    sequence = motion_hmr.assemble_sequence({"current/pose": current, "future/pose": current + 100.0})
    np.testing.assert_array_equal(sequence["pose"].numpy()[0, :, 0], list(range(30)) + [129.0])


def test_assemble_sequence_needs_both_heads():
    with pytest.raises(ValueError, match="future"):
        motion_hmr.assemble_sequence({"current/pose": tf.zeros((1, 2, 72))})


def test_model_round_trips_get_config(toy_body_path):
    channels = ("rgb", "heatmaps")
    model = motion_hmr.build_model(channels=channels, body_model_path=toy_body_path, dann_weight=0.5,
                                   adversary_units=8, **TINY)
    inputs = _inputs(channels, batch=1)
    expected = model(inputs, training=False)
    clone = keras.Model.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    got = clone(inputs, training=False)
    assert set(got) == set(expected) and "domain/logits" in got
    for key in expected:
        np.testing.assert_allclose(got[key].numpy(), expected[key].numpy(), rtol=1e-5, atol=1e-6)
    assert clone.get_layer("domain_adversary").weight == 0.5


def test_pretrained_weights_reach_the_model_trunk(toy_body_path, tmp_path):
    keras.utils.set_random_seed(5)
    rgb_net = trunk.build_backbone("resnet_tiny", (CROP, CROP, 3))  # FAKE "pretrained" weights, random
    path = tmp_path / "FAKE_pretrained_resnet_tiny.weights.h5"
    rgb_net.save_weights(path)
    model = motion_hmr.build_model(channels=("rgb", "flow"), body_model_path=toy_body_path, pretrained_weights=path,
                                   **TINY)
    kernel = model.get_layer("trunk").backbone.get_layer(trunk.CONV1_NAME).get_weights()[0]
    source = rgb_net.get_layer(trunk.CONV1_NAME).get_weights()[0].astype(np.float64)
    # Default: Keras' ImageNet (Caffe, BGR) convention, folded for our [-1, 1] RGB.
    np.testing.assert_allclose(kernel[:, :, :3], 127.5 * source[:, :, ::-1], rtol=1e-6)
    np.testing.assert_allclose(kernel[:, :, 3:], 127.5 * source[:, :, ::-1], rtol=1e-6)


OVERFIT_STEPS = 150
OVERFIT_FACTOR = 5.0


def test_one_fixed_batch_overfits():
    """Total loss on one fixed random batch falls >= 5x within OVERFIT_STEPS Adam steps (tiny model, open body)."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    batch, frames = 2, PAIRS + 1
    body = smpl.load_body_model(None)
    # Consistent labels: SMPL bodies in random poses, weak-perspective keypoints, some hidden.
    pose = regressor.mean_parameters()[:72] + rng.normal(scale=0.3, size=(batch, frames, 72)) * (np.arange(72) >= 3)
    betas = np.repeat(rng.normal(size=(batch, 1, 10)), frames, axis=1)
    vertices, joints24 = smpl.forward_numpy(body, betas.reshape(-1, 10), pose.reshape(-1, 72))
    joints14 = np.einsum("lv,nvc->nlc", body.lsp_regressor, vertices).reshape(batch, frames, 14, 3)
    camera = np.stack([rng.uniform(0.7, 1.1, (batch, frames)), rng.normal(0, 0.1, (batch, frames)),
                       rng.normal(0, 0.1, (batch, frames))], axis=-1)
    keypoints = camera[..., None, :1] * (joints14[..., :2] + camera[..., None, 1:])
    labels = {}
    for head, frame in (("current", slice(0, PAIRS)), ("future", slice(1, frames))):
        labels[f"joints3d_{head}"] = joints14[:, frame] + np.array([0.0, 0.0, 4.0])  # in front of the camera
        labels[f"keypoints2d_{head}"] = keypoints[:, frame]
        labels[f"keypoints2d_valid_{head}"] = (rng.uniform(size=(batch, PAIRS, 14)) > 0.2).astype(np.float32)
    labels = {key: tf.constant(value, tf.float32) for key, value in labels.items()}
    inputs = {"inputs": tf.constant(rng.uniform(-1, 1, (batch, PAIRS, CROP, CROP, 3)), tf.float32)}

    model = motion_hmr.build_model(channels=("rgb",), dropout=0.0, **TINY)
    optimizer = keras.optimizers.Adam(3e-3)

    @tf.function
    def train_step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(losses.motion_hmr_losses(labels, model(inputs, training=True))["total"])
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss

    start = time.monotonic()
    first = last = float(train_step())
    for _ in range(OVERFIT_STEPS - 1):
        last = float(train_step())
        if first / last >= OVERFIT_FACTOR:
            break
    assert first / last >= OVERFIT_FACTOR, f"loss {first:.4g} -> {last:.4g} in {OVERFIT_STEPS} steps"
    assert time.monotonic() - start < 120
