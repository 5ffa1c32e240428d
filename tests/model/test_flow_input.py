"""Flow as the model's frozen first layer (`FlowSettings.placement` "model"): the same flow as the pipeline's backend
on the same crops, the network's channel groups assembled from the contract's wire, nothing trained, a flow
SavedModel inside the layer, and the Keras model built around it."""
import numpy as np
import pytest
import skimage.data
import tensorflow as tf

from mhr_tf.data import flow, keypoints
from mhr_tf.data.preprocessing import ContractError, FlowSettings
from mhr_tf.model import flow_input, motion_hmr

SIZE = 32
# TV-L1 from the wire's pixels ((x / 127.5 - 1 + 1) * 127.5: within ~2e-5 of the crops) against TV-L1 from the
# crops, in the network's /20 units: 0.002 px at most (its median filter can turn a tie the other way), far below
# the backend's own error (0.69 px, benchmarks/flow.json); on average 100x less.
FLOW_TOLERANCE, FLOW_MEAN_TOLERANCE = 1e-4, 1e-6


def textured_pairs(count=3, size=SIZE) -> np.ndarray:
    """[count, 2, size, size, 3] float32 0..255: windows of a photograph, the second moved by a whole-pixel shift."""
    photo = skimage.data.astronaut().astype(np.float32)
    out = []
    for i in range(count):
        x, y, dx, dy = 150 + 30 * i, 180, 1 + i, -1
        out.append([photo[y:y + size, x:x + size], photo[y - dy:y - dy + size, x - dx:x - dx + size]])
    return np.array(out)


def wire_of(pairs: np.ndarray, occluded: np.ndarray, heatmaps: np.ndarray | None = None) -> np.ndarray:
    """The contract's wire for pairs [P, 2, S, S, 3] 0..255: pairs (6), [heatmaps (12)], indicator (1), zeroed on
    the occluded pairs — as `pipeline.network_inputs` sends it."""
    shown = 1.0 - occluded[:, None, None, None]
    groups = [np.concatenate([pairs[:, 0], pairs[:, 1]], axis=-1) / 127.5 - 1.0]
    if heatmaps is not None:
        groups.append(heatmaps)
    groups = [g * shown for g in groups] + [np.broadcast_to(occluded[:, None, None, None], pairs.shape[:1] + (SIZE, SIZE, 1))]
    return np.concatenate(groups, axis=-1).astype(np.float32)


def test_flow_layer_gives_the_pipeline_backends_flow_on_the_same_crops():
    pairs = textured_pairs()
    settings = FlowSettings(backend="tf_tvl1", tvl1=(("warps", 2),))
    expected = flow.flow_channels(flow.compute_flow(pairs, settings), settings.divisor).numpy()  # the pipeline's
    layer = flow_input.PairFlow(("flow", "occlusion"), "tf_tvl1", settings.divisor, settings.tvl1)
    out = layer(wire_of(pairs, np.zeros(3, np.float32))[None]).numpy()[0]  # [1, P, S, S, 7] -> [P, S, S, 4]
    assert out.shape == (3, SIZE, SIZE, 4)
    np.testing.assert_allclose(out[..., :3], expected, rtol=0, atol=FLOW_TOLERANCE)
    assert np.abs(out[..., :3] - expected).mean() < FLOW_MEAN_TOLERANCE
    assert np.abs(expected[..., :2]).max() > 0.04  # there is motion to find (> 0.8 px)
    np.testing.assert_array_equal(out[..., 3], 0.0)


def test_flow_layer_assembles_the_network_groups_and_zeroes_flow_on_total_occlusions():
    pairs = textured_pairs()
    occluded = np.array([0.0, 1.0, 0.0], np.float32)
    points = np.random.default_rng(0).uniform(0, SIZE, (3, 12, 2)).astype(np.float32)
    heatmaps = keypoints.gaussian_heatmaps(points, np.ones((3, 12), bool), SIZE, 3.0).numpy()
    wire = wire_of(pairs, occluded, heatmaps)
    out = flow_input.PairFlow(("rgb", "flow", "heatmaps", "occlusion"))(wire[None]).numpy()[0]
    assert out.shape == (3, SIZE, SIZE, 19)
    np.testing.assert_array_equal(out[..., 0:3], wire[..., 0:3])  # rgb: the pair's first crop, as sent
    np.testing.assert_array_equal(out[..., 6:], wire[..., 6:])  # heatmaps and indicator, as sent
    assert not out[1, ..., :-1].any() and (out[1, ..., -1] == 1).all()  # the occluded pair: only the indicator
    flow3 = out[[0, 2], ..., 3:6]
    np.testing.assert_allclose(flow3[..., 2], np.hypot(flow3[..., 0], flow3[..., 1]), atol=1e-6)  # magnitude
    assert np.abs(flow3[..., :2]).max() > 0.04


def test_flow_layer_is_frozen_passes_no_gradient_and_round_trips_its_config():
    layer = flow_input.PairFlow(("flow", "heatmaps", "occlusion"), "tf_tvl1", 10.0, {"warps": 2}, name="flow")
    wire = tf.constant(wire_of(textured_pairs(1), np.zeros(1, np.float32),
                               np.zeros((1, SIZE, SIZE, 12), np.float32))[None])
    with tf.GradientTape() as tape:
        tape.watch(wire)
        out = layer(wire)
    assert layer.weights == [] and not layer.trainable
    assert tape.gradient(out[..., :3], wire) is None  # no gradient into (or through) the flow
    rebuilt = flow_input.PairFlow.from_config(layer.get_config())
    assert rebuilt.settings == layer.settings == FlowSettings("tf_tvl1", "model", 10.0, (("warps", 2),))
    assert rebuilt.channels == layer.channels and not rebuilt.trainable
    np.testing.assert_array_equal(rebuilt(wire).numpy(), out.numpy())


class DifferenceFlow(tf.Module):
    """A stand-in for a converted FlowNet/RAFT: flow x = mean colour of image2 - image1, flow y = a constant 1.5."""

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)] * 2)
    def __call__(self, image1, image2):
        x = tf.reduce_mean(image2 - image1, axis=-1)
        return tf.stack([x, tf.fill(tf.shape(x), 1.5)], axis=-1)


def test_flow_layer_runs_a_flow_saved_model_on_the_first_and_second_crops(tmp_path):
    tf.saved_model.save(DifferenceFlow(), str(tmp_path / "difference"))
    pairs = np.zeros((2, 2, SIZE, SIZE, 3), np.float32)
    pairs[:, 1] = 30.0
    pairs[1, 0] = 10.0
    layer = flow_input.PairFlow(("flow", "occlusion"), f"saved_model:{tmp_path / 'difference'}", 20.0)
    out = layer(wire_of(pairs, np.zeros(2, np.float32))[None]).numpy()[0]
    np.testing.assert_allclose(out[0, ..., :2], np.broadcast_to([30.0 / 20, 1.5 / 20], (SIZE, SIZE, 2)), atol=1e-5)
    np.testing.assert_allclose(out[1, ..., :2], np.broadcast_to([20.0 / 20, 1.5 / 20], (SIZE, SIZE, 2)), atol=1e-5)


@pytest.mark.parametrize("backend", ["dis", "tvl1"])
def test_an_opencv_backend_cannot_be_the_models_flow_layer(backend):
    with pytest.raises(ContractError, match="OpenCV"):
        flow_input.PairFlow(("flow", "occlusion"), backend)


def test_model_with_flow_in_the_model_takes_the_wire_and_its_trunk_the_network_groups():
    config = motion_hmr.ModelConfig(architecture="resnet_tiny", lstm_units=8, head_units=8, regressor_units=8)
    channels = ("rgb", "flow", "heatmaps", "occlusion")
    model = config.build(SIZE, channels, num_pairs=2, flow=FlowSettings(backend="tf_tvl1", placement="model"))
    assert tuple(model.inputs[0].shape) == (None, 2, SIZE, SIZE, 19)  # pairs 6 + heatmaps 12 + indicator
    assert model.layers[1].name == "flow" and isinstance(model.layers[1], flow_input.PairFlow)
    assert model.get_layer("trunk").num_channels == 19  # rgb 3 + flow 3 + heatmaps 12 + indicator
    # The same network (the same weights) as with flow in the pipeline: the flow layer adds none.
    in_pipeline = config.build(SIZE, channels, num_pairs=2, flow=FlowSettings(backend="tf_tvl1"))
    assert [w.shape for w in model.weights] == [w.shape for w in in_pipeline.weights]
    assert "flow" not in [layer.name for layer in in_pipeline.layers]
    wire = np.random.default_rng(0).uniform(-1, 1, (1, 2, SIZE, SIZE, 19)).astype(np.float32)
    wire[..., -1] = 0.0
    in_pipeline.set_weights(model.get_weights())
    network_inputs = model.get_layer("flow")(wire)
    for name in ("current/pose", "future/joints3d"):
        np.testing.assert_allclose(model({"inputs": wire})[name], in_pipeline({"inputs": network_inputs})[name],
                                   atol=1e-5)
