"""Person crops (paper App. A, B): HMR's keypoint boxes (bounding-box diagonal -> 150 px of a 224 crop, centred),
paired boxes (box t applied to frames t and t+1) and keypoints moved to crop pixels."""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from mhr_tf.data import crops


def crop_position(points: np.ndarray, centre, size: float, crop_size: int) -> np.ndarray:
    """float64 reference: the box [c - size/2, c + size/2]^2 tiled by crop_size pixels, centres at integers."""
    return (np.asarray(points, np.float64) - np.asarray(centre, np.float64) + size / 2.0) * crop_size / size - 0.5


def test_hmr_box_puts_the_keypoint_bbox_diagonal_at_150_px_of_a_224_crop_centred():
    points = np.array([[[10, 20], [40, 100], [25, 60], [300, 300]],   # the last keypoint is not valid
                       [[10, 20], [40, 100], [25, 60], [300, 300]],   # a single valid keypoint: no box
                       [[50, 50], [50, 50], [0, 0], [0, 0]]], np.float32)  # two valid ones, on the same pixel
    valid = np.array([[True, True, True, False], [False, True, False, False], [True, True, False, False]])
    centre, size, ok = (x.numpy() for x in crops.hmr_boxes(points, valid))
    np.testing.assert_array_equal(ok, [True, False, False])
    np.testing.assert_allclose(centre[0], [25.0, 60.0], atol=1e-5)
    np.testing.assert_allclose(size[0], np.hypot(30, 80) * 224 / 150, rtol=1e-6)
    corners = crop_position(np.array([[10, 20], [40, 100]]), centre[0], size[0], 224)
    assert abs(np.linalg.norm(corners[1] - corners[0]) - 150.0) < 1e-3  # "roughly 150 pixels tall"
    np.testing.assert_allclose(corners.mean(0), [111.5, 111.5], atol=1e-3)  # centred in the crop


def test_missing_boxes_take_the_nearest_earlier_box_or_else_the_first_later_one():
    ok = np.array([False, True, False, False, True, False])
    centre = np.arange(12, dtype=np.float32).reshape(6, 2)
    size = np.arange(6, dtype=np.float32) + 10
    filled_centre, filled_size = crops.fill_missing_boxes(centre, size, ok)
    source = [1, 1, 1, 1, 4, 4]
    np.testing.assert_array_equal(filled_centre, centre[source])
    np.testing.assert_array_equal(filled_size, size[source])


# Four 32x40 frames, one bright pixel each; boxes of 16 px (zoom 1) centred on half pixels, so every pixel lands on a
# whole crop pixel. Box t moves with t, so frame t+1 cut with box t+1 instead of box t would put the pixel elsewhere.
BRIGHT = np.array([[12, 9], [15, 11], [14, 16], [20, 18]])  # (x, y) of frame t's bright pixel
CENTRES = np.array([[10.5, 10.5], [13.5, 12.5], [16.5, 14.5], [19.5, 16.5]], np.float32)


def bright_frames() -> np.ndarray:
    frames = np.zeros((4, 32, 40, 3), np.uint8)
    for t, (x, y) in enumerate(BRIGHT):
        frames[t, y, x] = 255
    return frames


def test_crop_t_of_frame_t_plus_1_uses_box_t():
    pairs = crops.paired_crops(bright_frames(), CENTRES, np.full(4, 16.0, np.float32), 16).numpy()
    assert pairs.shape == (3, 2, 16, 16, 3) and pairs.dtype == np.float32
    for t in range(3):
        for k, frame in ((0, t), (1, t + 1)):  # current and future frame, both in box t
            expected = crop_position(BRIGHT[frame], CENTRES[t], 16.0, 16)
            np.testing.assert_array_equal(expected, np.round(expected))
            brightest = np.unravel_index(pairs[t, k, :, :, 0].argmax(), (16, 16))
            assert brightest == (int(expected[1]), int(expected[0])), (t, k)
            assert pairs[t, k, :, :, 0].max() > 254.9 and np.sort(pairs[t, k, :, :, 0].ravel())[-2] < 0.1


def test_keypoints_land_where_their_pixel_lands():
    points = np.tile(BRIGHT[:, None].astype(np.float32), (1, 2, 1))  # [4, 2, 2]: the bright pixel, twice
    current, future = crops.keypoints_in_pair_boxes(points, CENTRES, np.full(4, 16.0, np.float32), 16)
    pairs = crops.paired_crops(bright_frames(), CENTRES, np.full(4, 16.0, np.float32), 16).numpy()
    assert current.shape == (3, 2, 2) and future.shape == (3, 2, 2)
    for t in range(3):
        for k, keypoint in ((0, current[t, 0]), (1, future[t, 0])):
            row, col = np.unravel_index(pairs[t, k, :, :, 0].argmax(), (16, 16))
            np.testing.assert_allclose(keypoint, [col, row], atol=1e-4)


def test_zoomed_crops_sample_the_image_where_the_box_says():
    """A linear ramp image is reproduced exactly by bilinear sampling, so every crop pixel's value says where in the
    image it was taken from; outside the image the crop is 0."""
    height, width, crop_size = 20, 30, 12
    yy, xx = np.mgrid[:height, :width].astype(np.float64)
    frames = np.stack([np.stack([2 * xx + 3 * yy + 5 + 100 * t, xx, yy], -1) for t in range(3)]).astype(np.float32)
    centres = np.array([[12.3, 8.7], [25.0, 15.2], [5.0, 5.0]], np.float32)  # box 1 runs off the image
    sizes = np.array([9.4, 14.0, 30.0], np.float32)
    pairs = crops.paired_crops(frames, centres, sizes, crop_size).numpy()
    for t in range(2):
        for k in range(2):
            u = crop_position(np.zeros(2), centres[t], sizes[t], crop_size)  # crop position of image (0, 0)
            step = sizes[t] / crop_size
            q = np.arange(crop_size)
            x = (q - u[0]) * step  # image x of crop column q
            y = (q - u[1]) * step
            inside = (((x >= 0) & (x <= width - 1))[None, :] & ((y >= 0) & (y <= height - 1))[:, None])
            ramp = 2 * x[None, :] + 3 * y[:, None] + 5 + 100 * (t + k)
            np.testing.assert_allclose(pairs[t, k, :, :, 0], np.where(inside, ramp, 0.0), atol=2e-3)
    assert not (pairs[1, :, :, :, 0] > 0).all()  # the box that runs off the image has zeros


def test_crop_steps_in_dataset_map_keep_dtypes_shapes_and_values():
    frames, sizes = bright_frames(), np.full(4, 16.0, np.float32)
    points = BRIGHT[:, None].astype(np.float32).repeat(3, 1)
    valid = np.ones((4, 3), bool)

    def step(frames, points, valid):
        centre, size, ok = crops.hmr_boxes(points + [[[-2, -2], [0, 0], [2, 2]]], valid)
        centre, size = crops.fill_missing_boxes(centre, size, ok)
        return crops.paired_crops(frames, CENTRES, sizes, 16), crops.keypoints_in_pair_boxes(points, centre, size, 16)

    ds = tf.data.Dataset.from_tensors((frames, points, valid)).map(step)
    pairs_spec, (current_spec, future_spec) = ds.element_spec
    assert pairs_spec.shape.as_list() == [3, 2, 16, 16, 3] and pairs_spec.dtype == tf.float32
    assert current_spec.shape.as_list() == [3, 3, 2] and future_spec.shape.as_list() == [3, 3, 2]
    graph_pairs, (graph_current, graph_future) = next(iter(ds.as_numpy_iterator()))
    eager_pairs, (eager_current, eager_future) = step(frames, points, valid)
    np.testing.assert_array_equal(graph_pairs, eager_pairs.numpy())
    np.testing.assert_allclose(graph_current, eager_current.numpy(), atol=1e-5)
    np.testing.assert_allclose(graph_future, eager_future.numpy(), atol=1e-5)
    # The boxes around the keypoints: the points' own box puts the middle point at the crop centre.
    np.testing.assert_allclose(graph_current[:, 1], np.full((3, 2), 7.5), atol=1e-4)
