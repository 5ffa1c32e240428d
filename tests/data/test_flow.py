"""Flow on the paired boxes (paper App. B): the network's 3 flow channels, the OpenCV backends on a translated
textured pair, and a user's SavedModel backend (a tiny one written by the test)."""
from __future__ import annotations

import threading

import numpy as np
import pytest
import skimage.data
import tensorflow as tf

from mhr_tf.data import flow, tf_flow
from mhr_tf.data.preprocessing import FLOW_DIVISOR, ContractError, FlowSettings


def translated_pairs(shift=(2, -1), size=64, count=2) -> np.ndarray:
    """[count, 2, size, size, 3] float32: windows of a photograph, the second moved by `shift` (x, y) pixels."""
    photo = skimage.data.astronaut().astype(np.float32)
    out = []
    for i in range(count):
        x, y = 150 + 40 * i, 180
        out.append([photo[y:y + size, x:x + size], photo[y - shift[1]:y - shift[1] + size,
                                                          x - shift[0]:x - shift[0] + size]])
    return np.array(out)


def test_flow_channels_are_flow_over_20_and_its_magnitude():
    assert FLOW_DIVISOR == 20.0 and FlowSettings().divisor == FLOW_DIVISOR  # App. B: "divided by 20"
    pixels = np.array([[3.0, 4.0], [-20.0, 0.0], [0.0, 0.0]], np.float32)
    np.testing.assert_allclose(flow.flow_channels(pixels, FLOW_DIVISOR),
                               [[0.15, 0.2, 0.25], [-1.0, 0.0, 1.0], [0.0, 0.0, 0.0]], atol=1e-7)


def test_flow_channels_divide_by_the_given_divisor():
    pixels = np.random.default_rng(0).normal(0, 8, (2, 5, 5, 2)).astype(np.float32)
    for divisor in (4.0, 10.0, 37.5):
        channels = flow.flow_channels(pixels, divisor).numpy()
        scaled = pixels.astype(np.float64) / divisor
        assert channels.shape == (2, 5, 5, 3) and channels.dtype == np.float32
        np.testing.assert_allclose(channels[..., :2], scaled, rtol=1e-6)
        np.testing.assert_allclose(channels[..., 2], np.hypot(scaled[..., 0], scaled[..., 1]), rtol=1e-6)


@pytest.mark.parametrize("backend, size, tolerance", [("dis", 64, 0.25), ("tvl1", 32, 0.1)])
def test_opencv_backend_recovers_the_translation_of_a_textured_pair(backend, size, tolerance):
    result = flow.compute_flow(translated_pairs(size=size), FlowSettings(backend=backend)).numpy()
    assert result.shape == (2, size, size, 2) and result.dtype == np.float32
    inner = result[:, 4:-4, 4:-4].reshape(2, -1, 2)  # away from the border, where content leaves the window
    np.testing.assert_allclose(np.median(inner, axis=1), [[2, -1], [2, -1]], atol=tolerance)


def test_compute_flow_in_dataset_map_keeps_dtypes_shapes_and_values():
    pairs, settings = translated_pairs(), FlowSettings(backend="dis")

    def step(p):
        return flow.flow_channels(flow.compute_flow(p, settings), settings.divisor)

    ds = tf.data.Dataset.from_tensors(pairs).map(step)
    assert ds.element_spec.shape.as_list() == [2, 64, 64, 3] and ds.element_spec.dtype == tf.float32
    np.testing.assert_allclose(next(iter(ds)).numpy(), step(pairs).numpy(), atol=1e-6)


class DifferenceFlow(tf.Module):
    """A stand-in for a converted FlowNet/RAFT: flow x = mean colour of image2 - image1, flow y = a constant 1.5."""

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)] * 2)
    def __call__(self, image1, image2):
        x = tf.reduce_mean(image2 - image1, axis=-1)
        return tf.stack([x, tf.fill(tf.shape(x), 1.5)], axis=-1)


@pytest.fixture(scope="module")
def saved_model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("flow_model") / "difference"
    tf.saved_model.save(DifferenceFlow(), str(path))
    return str(path)


def test_saved_model_backend_calls_the_model_on_first_and_second_frames(saved_model_dir):
    pairs = np.zeros((2, 2, 8, 8, 3), np.float32)
    pairs[:, 1] = 30.0  # the second frame is brighter: positive x flow from the model above
    pairs[1, 0] = 10.0
    settings = FlowSettings(backend=f"saved_model:{saved_model_dir}")
    result = flow.compute_flow(pairs, settings).numpy()
    assert result.shape == (2, 8, 8, 2)
    np.testing.assert_allclose(result[0], np.broadcast_to([30.0, 1.5], (8, 8, 2)))
    np.testing.assert_allclose(result[1], np.broadcast_to([20.0, 1.5], (8, 8, 2)))
    ds = tf.data.Dataset.from_tensors(pairs).map(lambda p: flow.compute_flow(p, settings))
    assert ds.element_spec.shape.as_list() == [2, 8, 8, 2]
    np.testing.assert_array_equal(next(iter(ds)).numpy(), result)


def test_unknown_backends_and_unreadable_saved_models_are_named(tmp_path):
    # The contract refuses an unknown backend when it is built; the OpenCV guard compute_flow calls names it too.
    with pytest.raises(ContractError, match="'raft'"):
        FlowSettings(backend="raft")
    with pytest.raises(ValueError, match="'raft'"):
        flow.opencv_estimator("raft")
    with pytest.raises(ValueError, match="missing_model.*not a readable SavedModel"):
        flow.compute_flow(np.zeros((1, 2, 8, 8, 3), np.float32),
                          FlowSettings(backend=f"saved_model:{tmp_path / 'missing_model'}"))


def test_tf_tvl1_backend_passes_the_contract_overrides_to_the_estimator():
    settings = FlowSettings(backend="tf_tvl1", tvl1=(("warps", 2),))
    assert flow.tf_tvl1(settings.tvl1).params == tf_flow.TVL1Params(warps=2)
    assert flow.tf_tvl1(()).params == tf_flow.TVL1Params()
    assert flow.tf_tvl1(settings.tvl1) is flow.tf_tvl1((("warps", 2),))  # built once per setting
    pairs = translated_pairs(shift=(3, -2), size=16)  # one pyramid level: quick to compile
    result = flow.compute_flow(pairs, settings).numpy()
    assert result.shape == (2, 16, 16, 2) and result.dtype == np.float32
    # The same flow as an estimator built independently with warps=2, and not the default estimator's (4 warps).
    two_warps = tf_flow.TVL1Flow(warps=2)(pairs[:, 0], pairs[:, 1]).numpy()
    np.testing.assert_allclose(result, two_warps, atol=1e-5)
    default = flow.compute_flow(pairs, FlowSettings(backend="tf_tvl1")).numpy()
    assert np.abs(default - two_warps).max() > 0.1


def test_each_thread_gets_its_own_opencv_estimator():
    """tf.data's parallel map calls the OpenCV backends from several threads, and OpenCV releases the GIL in calc."""
    found = {}

    def grab(name):
        found[name] = (flow.opencv_estimator("dis"), flow.opencv_estimator("dis"))

    threads = [threading.Thread(target=grab, args=(n,)) for n in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert found["a"][0] is found["a"][1]  # reused within a thread
    assert found["a"][0] is not found["b"][0]
