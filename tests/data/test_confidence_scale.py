"""A keypoint source's confidences on the contract's (OpenPose's) scale: the monotone map through the source's own
threshold, exact at the threshold in float32, and a pose model file mapped by its kind's threshold."""
import cv2
import numpy as np
import pytest

from mhr_tf.data import keypoint_sources
from mhr_tf.sim import writers
from tests.data.test_keypoint_models import movenet_multipose


def test_rescaling_keeps_which_side_of_the_threshold_every_score_lies_on():
    np.testing.assert_allclose(keypoint_sources.rescale_confidence([0.0, 0.3, 1.0, 1.2], 0.3, 0.1),
                               [0.0, 0.1, 1.0, 1.0 + 0.2 * 0.9 / 0.7], rtol=1e-6)
    np.testing.assert_allclose(keypoint_sources.rescale_confidence([0.15, 0.65], 0.3, 0.1), [0.05, 0.55], rtol=1e-6)
    # Every float32 score within a few ulps of the source threshold lands on the same side of float32(0.1), the
    # comparison the pipeline makes (`confidence > pre.confidence`).
    around = np.float32(0.3) + np.arange(-50, 51, dtype=np.float32) * np.float32(3e-9)
    mapped = keypoint_sources.rescale_confidence(around, 0.3, 0.1)
    np.testing.assert_array_equal(mapped > np.float32(0.1), around.astype(np.float64) > 0.3)
    assert np.all(np.diff(mapped) >= 0)
    with pytest.raises(ValueError, match="must lie in"):
        keypoint_sources.rescale_confidence([0.5], 1.0, 0.1)


def test_a_model_file_is_mapped_by_its_kinds_threshold(tmp_path):
    model = movenet_multipose(tmp_path / "multipose.tflite")
    image = tmp_path / "frame.png"
    cv2.imwrite(str(image), np.full((48, 64, 3), 128, np.uint8))
    sequence, threshold = keypoint_sources.open_for_contract(model, [str(image)], contract_confidence=0.1)
    assert threshold == keypoint_sources.MODEL_CONFIDENCE_THRESHOLDS["movenet_multipose"] == 0.11
    (person,) = sequence.frames[0].keypoints
    # The tiny model scores keypoint 0 as input height / 1000 (192 px: the 48 x 64 frame scaled to 256 on its long
    # side), keypoint 1 as input width / 1000 (256), the others 0.9; each mapped as 0.1 + (c - 0.11) 0.9 / 0.89.
    expected = 0.1 + (np.array([0.192, 0.256, 0.9]) - 0.11) * 0.9 / 0.89
    np.testing.assert_allclose(person[[0, 1, 2], 2], expected, rtol=1e-5)


def test_json_sources_stay_on_their_scale_unless_a_threshold_is_given(tmp_path):
    keypoints = np.zeros((1, 25, 3), np.float32)
    keypoints[0, :, :2], keypoints[0, :, 2] = 10.0, 0.2
    writers.write_openpose_dir(tmp_path, [keypoints], layout="body_25", name="clip")
    same, threshold = keypoint_sources.open_for_contract(tmp_path, None, 0.1)
    assert threshold is None and np.allclose(same.frames[0].keypoints[..., 2], 0.2)
    mapped, threshold = keypoint_sources.open_for_contract(tmp_path, None, 0.1, threshold=0.4)
    assert threshold == 0.4 and np.allclose(mapped.frames[0].keypoints[..., 2], 0.05)  # below 0.4 -> below 0.1
