"""Camera motion (paper App. A): median flow of a background that pans by a known amount, its integration relative to
the centre frame, and the person following the camera; plus the offline cache beside each video."""
from __future__ import annotations

import numpy as np
import pytest
import skimage.data
import tensorflow as tf

from mhr_tf.data import camera_motion
from mhr_tf.data.surreal import DEPTH_BACKGROUND

STEP = (3, -2)  # the background motion: (x, y) pixels per frame


def panning_clip(num_frames: int, height: int, width: int, step=STEP, origin=(200, 200)) -> np.ndarray:
    """[T, h, w, 3] uint8 windows of skimage's astronaut whose content moves by exactly `step` px per frame: frame t
    shows the photograph from (origin - t * step), so a scene point at p in frame 0 is at p + t * step in frame t."""
    photo = skimage.data.astronaut()
    ox, oy = origin
    return np.stack([photo[oy - t * step[1]:oy - t * step[1] + height, ox - t * step[0]:ox - t * step[0] + width]
                     for t in range(num_frames)])


def shift_numpy(images: np.ndarray, shift: np.ndarray, fill) -> np.ndarray:
    """Reference translation: out[t, y + sy, x + sx] = images[t, y, x], `fill` where nothing lands."""
    out = np.full_like(images, fill)
    height, width = images.shape[1:3]
    for t, (sx, sy) in enumerate(np.round(shift).astype(int)):
        for y in range(height):
            for x in range(width):
                if 0 <= y + sy < height and 0 <= x + sx < width:
                    out[t, y + sy, x + sx] = images[t, y, x]
    return out


def in_dataset(step, example: dict) -> tuple[dict, dict]:
    """`step` (deterministic: no seed) run inside `Dataset.map`: (element_spec, the single element as numpy)."""
    ds = tf.data.Dataset.from_tensors(example).map(step)
    return ds.element_spec, next(iter(ds.as_numpy_iterator()))


@pytest.mark.parametrize("method, tolerance", [("tvl1", 0.05), ("dis", 0.25)])
def test_median_flow_finds_a_background_translated_by_3_minus_2_px_per_frame(method, tolerance):
    median = camera_motion.median_flow(panning_clip(4, 48, 64), method=method)
    assert median.shape == (3, 2) and median.dtype == np.float32
    np.testing.assert_allclose(median, np.tile(STEP, (3, 1)), atol=tolerance)


def test_median_flow_on_downscaled_frames_is_in_input_pixels():
    median = camera_motion.median_flow(panning_clip(3, 96, 128, step=(4, -2)), method="dis", scale=0.5)
    np.testing.assert_allclose(median, [[4, -2], [4, -2]], atol=0.3)


def test_median_flow_rejects_an_unknown_method_and_a_single_frame():
    with pytest.raises(ValueError, match="raft"):
        camera_motion.median_flow(panning_clip(2, 16, 16), method="raft")
    with pytest.raises(ValueError, match=r"N>=2"):
        camera_motion.median_flow(panning_clip(1, 16, 16))


def test_integration_is_relative_to_the_centre_frame():
    steps = np.random.default_rng(0).normal(0, 3, (8, 2)).astype(np.float32)  # 9 frames, centre frame 4
    expected = np.zeros((9, 2))
    for t in range(9):  # sum of the steps between the centre frame and frame t, signed
        expected[t] = steps[4:t].sum(0) if t >= 4 else -steps[t:4].sum(0)
    np.testing.assert_allclose(camera_motion.integrate_relative_to_centre(steps), expected, atol=1e-5)
    np.testing.assert_allclose(camera_motion.integrate_relative_to_centre_tf(steps), expected, atol=1e-5)
    constant = camera_motion.integrate_relative_to_centre(np.tile(np.float32(STEP), (30, 1)))  # 31 frames
    np.testing.assert_allclose(constant, (np.arange(31)[:, None] - 15) * np.array(STEP), atol=1e-4)


def person_example(num_frames=5, height=12, width=14, shift=None) -> dict:
    """A hand-built SURREAL person: a 3x2 block of parts with its own colours and depths, two joints on it."""
    segm = np.zeros((num_frames, height, width), np.uint8)
    segm[:, 5:8, 6:8] = np.arange(1, 7, dtype=np.uint8).reshape(3, 2)
    rgb = np.zeros((num_frames, height, width, 3), np.uint8)
    rgb[segm > 0] = [200, 100, 50]
    rgb[:, 5, 6] = [255, 0, 0]
    depth = np.where(segm > 0, 5.0 + 0.1 * segm, DEPTH_BACKGROUND).astype(np.float32)
    joints = np.tile(np.float32([[6.0, 5.0], [7.0, 7.0]]), (num_frames, 1, 1))
    if shift is None:
        shift = camera_motion.integrate_relative_to_centre(np.tile(np.float32(STEP), (num_frames - 1, 1)))
    return {"person_rgb": rgb, "segm": segm, "depth": depth, "joints2d": joints, "joints14_2d": joints + 1.0,
            "camera_shift": np.asarray(shift, np.float32)}


def test_follow_camera_moves_segm_rgb_depth_and_joints_by_the_integrated_shift():
    example = person_example()
    shift = example["camera_shift"]  # (t - 2) * (3, -2)
    out = camera_motion.follow_camera(example)
    np.testing.assert_array_equal(out["segm"], shift_numpy(example["segm"], shift, 0))
    np.testing.assert_array_equal(out["person_rgb"], shift_numpy(example["person_rgb"], shift, 0))
    np.testing.assert_array_equal(out["depth"], shift_numpy(example["depth"], shift, DEPTH_BACKGROUND))
    np.testing.assert_allclose(out["joints2d"], example["joints2d"] + shift[:, None], atol=0)
    np.testing.assert_allclose(out["joints14_2d"], example["joints14_2d"] + shift[:, None], atol=0)
    # The centre frame is the reference: it does not move; frame 0 moved by -2 * (3, -2) = (-6, +4).
    np.testing.assert_array_equal(out["segm"][2], example["segm"][2])
    assert np.asarray(out["segm"])[0, 9, 0] == 1 and np.asarray(out["joints2d"])[0, 0].tolist() == [0.0, 9.0]


def test_follow_camera_rounds_a_fractional_shift_for_pixels_and_joints_alike():
    example = person_example(num_frames=3, shift=[[-1.4, 0.6], [0.0, 0.0], [2.6, -1.2]])
    out = camera_motion.follow_camera(example)
    whole = np.array([[-1, 1], [0, 0], [3, -1]])
    np.testing.assert_array_equal(out["segm"], shift_numpy(example["segm"], whole, 0))
    np.testing.assert_allclose(out["joints2d"], example["joints2d"] + whole[:, None], atol=0)


def test_without_tracking_the_person_stays_put():
    example = person_example()
    out = camera_motion.follow_camera(example, track=False)
    for key in ("segm", "person_rgb", "depth", "joints2d"):
        np.testing.assert_array_equal(out[key], example[key])


def test_the_person_follows_the_background_found_by_tvl1():
    """End to end: the estimated camera motion keeps the person over the same piece of scene in every frame."""
    background = panning_clip(5, 48, 64)
    shift = camera_motion.integrate_relative_to_centre(camera_motion.median_flow(background, "tvl1"))
    example = person_example(num_frames=5, height=48, width=64, shift=shift)
    example["segm"][:, 20:30, 25:33] = 3  # a larger person near the middle
    out = camera_motion.follow_camera(example)
    body = np.asarray(out["segm"]).astype(bool)
    under_person = [background[t][body[t]] for t in range(5)]
    for t in range(5):
        np.testing.assert_array_equal(under_person[t], under_person[2])


def test_follow_camera_in_dataset_map_keeps_dtypes_shapes_and_values():
    example = person_example()
    eager = camera_motion.follow_camera(example)
    spec, graph = in_dataset(camera_motion.follow_camera, example)
    for key, value in example.items():
        assert spec[key].dtype.as_numpy_dtype == np.asarray(value).dtype, key
        assert spec[key].shape.as_list() == list(np.shape(value)), key
        np.testing.assert_array_equal(graph[key], np.asarray(eager[key]), err_msg=key)


def test_clip_median_flow_slices_the_clip_and_scales_by_its_zoom():
    median = np.arange(20, dtype=np.float32).reshape(10, 2)  # an 11-frame video
    np.testing.assert_array_equal(camera_motion.clip_median_flow(median, 3, 4, zoom=0.5), median[3:6] * 0.5)
    np.testing.assert_array_equal(camera_motion.clip_median_flow(median, 0, 11), median)
    with pytest.raises(ValueError, match="10 steps"):
        camera_motion.clip_median_flow(median, 1, 11)


def test_preprocess_video_caches_the_median_flow_beside_the_video_and_resumes(tmp_path):
    video = tmp_path / "abseiling" / "clip01.mp4"
    video.parent.mkdir()
    video.write_bytes(b"")  # the reader below stands in for the decoder
    frames = panning_clip(4, 48, 64)
    target = camera_motion.preprocess_video(video, method="tvl1", scale=1.0, reader=lambda path: frames)
    assert target == tmp_path / "abseiling" / "clip01.mp4.motion.npz" and target.exists()
    np.testing.assert_allclose(camera_motion.load_median_flow(video), np.tile(STEP, (3, 1)), atol=0.05)

    def must_not_decode(path):
        raise AssertionError("a valid cache must be reused, not recomputed")

    assert camera_motion.preprocess_video(video, reader=must_not_decode) == target
    assert not list(tmp_path.rglob("*.tmp.npz"))


def test_load_median_flow_names_the_missing_or_broken_cache(tmp_path):
    video = tmp_path / "v.mp4"
    with pytest.raises(FileNotFoundError, match=r"v\.mp4\.motion\.npz.*preprocess_backgrounds\.py"):
        camera_motion.load_median_flow(video)
    camera_motion.cache_path(video).write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"v\.mp4\.motion\.npz.*'median_flow'"):
        camera_motion.load_median_flow(video)
    np.savez(camera_motion.cache_path(video), version=np.int64(1), median_flow=np.zeros((4, 3), np.float32))
    with pytest.raises(ValueError, match=r"'median_flow' has shape \(4, 3\)"):
        camera_motion.load_median_flow(video)
