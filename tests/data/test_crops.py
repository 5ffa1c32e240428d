"""Person crops (paper App. A, B): HMR's keypoint boxes (bounding-box diagonal -> 150 px of a 224 crop, centred),
paired boxes (box t applied to frames t and t+1) and keypoints moved to crop pixels."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from mhr_tf.body import joints as joint_sets
from mhr_tf.data import crops
from mhr_tf.data.preprocessing import PERSON_HEIGHT_PX, BoxRule


def crop_position(points: np.ndarray, centre, size: float, crop_size: int) -> np.ndarray:
    """float64 reference: the box [c - size/2, c + size/2]^2 tiled by crop_size pixels, centres at integers."""
    return (np.asarray(points, np.float64) - np.asarray(centre, np.float64) + size / 2.0) * crop_size / size - 0.5


def test_hmr_box_puts_the_keypoint_bbox_diagonal_at_150_px_of_a_224_crop_centred():
    points = np.array([[[10, 20], [40, 100], [25, 60], [300, 300]],   # the last keypoint is not valid
                       [[10, 20], [40, 100], [25, 60], [300, 300]],   # a single valid keypoint: no box
                       [[50, 50], [50, 50], [0, 0], [0, 0]]], np.float32)  # two valid ones, on the same pixel
    valid = np.array([[True, True, True, False], [False, True, False, False], [True, True, False, False]])
    assert PERSON_HEIGHT_PX == 150.0  # App. A: "roughly 150 pixels tall"
    centre, size, ok = (x.numpy() for x in crops.hmr_boxes(points, valid, PERSON_HEIGHT_PX))
    np.testing.assert_array_equal(ok, [True, False, False])
    np.testing.assert_allclose(centre[0], [25.0, 60.0], atol=1e-5)
    np.testing.assert_allclose(size[0], np.hypot(30, 80) * 224 / 150, rtol=1e-6)
    corners = crop_position(np.array([[10, 20], [40, 100]]), centre[0], size[0], 224)
    assert abs(np.linalg.norm(corners[1] - corners[0]) - 150.0) < 1e-3  # "roughly 150 pixels tall"
    np.testing.assert_allclose(corners.mean(0), [111.5, 111.5], atol=1e-3)  # centred in the crop


def test_hmr_box_side_is_inversely_proportional_to_the_person_height():
    points = np.array([[[10, 20], [40, 100]]], np.float32)
    valid = np.ones((1, 2), bool)
    for person_px in (100.0, 150.0, 200.0):
        centre, size, ok = (x.numpy() for x in crops.hmr_boxes(points, valid, person_px))
        assert ok.all()
        np.testing.assert_allclose(centre[0], [25.0, 60.0], atol=1e-5)
        np.testing.assert_allclose(size[0], np.hypot(30, 80) * 224 / person_px, rtol=1e-6)
        corners = crop_position(points[0], centre[0], size[0], 224)
        assert abs(np.linalg.norm(corners[1] - corners[0]) - person_px) < 1e-3


def test_missing_boxes_take_the_nearest_earlier_box_or_else_the_first_later_one():
    ok = np.array([False, True, False, False, True, False])
    centre = np.arange(12, dtype=np.float32).reshape(6, 2)
    size = np.arange(6, dtype=np.float32) + 10
    filled_centre, filled_size = crops.fill_missing_boxes(centre, size, ok)
    source = [1, 1, 1, 1, 4, 4]
    np.testing.assert_array_equal(filled_centre, centre[source])
    np.testing.assert_array_equal(filled_size, size[source])


# --------------------------------------------------------------------------------------------------------------------
# The contract's boxes: BoxRule's joints, boxless frames filled in time, the whole image when nothing is seen

HEAD_TOP = joint_sets.LSP_14.index("head_top")


def lsp14_clip(num_frames: int = 5, seed: int = 0) -> np.ndarray:
    """[T, 14, 2] float32 LSP-14 points (image pixels) of a person drifting right, head top included."""
    points = np.random.default_rng(seed).uniform([20.0, 30.0], [60.0, 110.0], (num_frames, 14, 2))
    drift = np.arange(num_frames)[:, None, None] * np.array([3.0, 0.0])
    return (points + drift).astype(np.float32)


def reference_box(points: np.ndarray, person_px: float = 150.0) -> tuple[np.ndarray, float]:
    """float64 HMR box of the points [K, 2]: centre of their bounding box, side = diagonal * 224 / person_px."""
    points = np.asarray(points, np.float64)
    lo, hi = points.min(0), points.max(0)
    return (lo + hi) / 2.0, float(np.linalg.norm(hi - lo)) * 224.0 / person_px


def test_default_box_joints_are_lsp14_without_head_top():
    """A COCO-style detector (3DPW's OpenPose poses2d) has no head top, so training frames the person without it."""
    rule = BoxRule()
    assert rule.joints == tuple(name for name in joint_sets.LSP_14 if name != "head_top")
    assert rule.lsp_indices == tuple(range(13)) and rule.person_px == PERSON_HEIGHT_PX


def test_person_boxes_use_only_the_joints_of_the_rule():
    joints = lsp14_clip()
    valid = np.ones((5, 14), bool)
    far = joints.copy()
    far[:, HEAD_TOP] = [900.0, -500.0]  # a head top far outside the body
    centre, size = (x.numpy() for x in crops.person_boxes(far, valid, BoxRule()))
    for t in range(5):
        expected_centre, expected_size = reference_box(joints[t, :HEAD_TOP])
        np.testing.assert_allclose(centre[t], expected_centre, atol=1e-4)
        np.testing.assert_allclose(size[t], expected_size, rtol=1e-6)
    near = crops.person_boxes(joints, valid, BoxRule())  # the head top back on the body: the same boxes
    np.testing.assert_array_equal(near[0].numpy(), centre)
    np.testing.assert_array_equal(near[1].numpy(), size)
    # A rule with the head top does follow it, and a two-joint rule with another person height frames those two.
    with_head = crops.person_boxes(far, valid, BoxRule(joints=joint_sets.LSP_14))[1].numpy()
    assert (with_head > 2 * size).all()
    pair = BoxRule(joints=("left_ankle", "neck"), person_px=100.0)
    centre, size = (x.numpy() for x in crops.person_boxes(far, valid, pair))
    ends = [joint_sets.LSP_14.index("left_ankle"), joint_sets.LSP_14.index("neck")]
    for t in range(5):
        expected_centre, expected_size = reference_box(joints[t, ends], person_px=100.0)
        np.testing.assert_allclose(centre[t], expected_centre, atol=1e-4)
        np.testing.assert_allclose(size[t], expected_size, rtol=1e-6)


def test_person_boxes_fill_frames_without_a_box_from_their_neighbours():
    joints = lsp14_clip(6)
    valid = np.ones((6, 14), bool)
    valid[0] = False
    valid[0, [2, HEAD_TOP]] = True  # two valid joints, but only one of the rule's: no box of its own
    valid[3] = False
    valid[4, 1:] = False  # one valid joint: no box
    valid[5, ::2] = False  # half of them: a box of its own, from those
    centre, size = (x.numpy() for x in crops.person_boxes(joints, valid, BoxRule()))
    source = [1, 1, 2, 2, 2, 5]  # the nearest earlier box, else the first later one
    for t, s in enumerate(source):
        rule_valid = valid[s, :HEAD_TOP]
        expected_centre, expected_size = reference_box(joints[s, :HEAD_TOP][rule_valid])
        np.testing.assert_allclose(centre[t], expected_centre, atol=1e-4, err_msg=str(t))
        np.testing.assert_allclose(size[t], expected_size, rtol=1e-6, err_msg=str(t))


def test_a_clip_without_any_box_gets_the_whole_image_when_given_its_size():
    joints = lsp14_clip(4)
    valid = np.zeros((4, 14), bool)
    valid[:, HEAD_TOP] = valid[2, 0] = True  # never two of the rule's joints in one frame
    centre, size = (x.numpy() for x in crops.person_boxes(joints, valid, BoxRule(), image_hw=(48, 64)))
    assert centre.shape == (4, 2) and size.shape == (4,)
    np.testing.assert_array_equal(size, np.full(4, 48.0))  # the largest square in the frame: its shorter side
    np.testing.assert_array_equal(centre, np.broadcast_to(centre[0], (4, 2)))
    # In the middle of the frame, whose pixel centres run 0..63 x 0..47.
    np.testing.assert_allclose(centre[0], [31.5, 23.5])
    # With boxes in the clip, the image size changes nothing.
    valid[1, :4] = True
    given = crops.person_boxes(joints, valid, BoxRule(), image_hw=(48, 64))
    without = crops.person_boxes(joints, valid, BoxRule())
    np.testing.assert_array_equal(given[0].numpy(), without[0].numpy())
    np.testing.assert_array_equal(given[1].numpy(), without[1].numpy())
    expected_centre, expected_size = reference_box(joints[1, :4])
    np.testing.assert_allclose(given[0].numpy(), np.broadcast_to(expected_centre, (4, 2)), atol=1e-4)
    np.testing.assert_allclose(given[1].numpy(), np.full(4, expected_size), rtol=1e-6)


def test_a_clip_without_any_box_and_no_image_size_is_an_error():
    with pytest.raises(tf.errors.InvalidArgumentError, match="no frame of the clip has a box"):
        crops.person_boxes(lsp14_clip(3), np.zeros((3, 14), bool), BoxRule())


def test_the_whole_image_box_crops_exactly_the_image():
    """A square 16x16 frame cut by its whole-image box into a 16-px crop is the frame itself, pixel for pixel."""
    frames = np.random.default_rng(0).uniform(0, 255, (2, 16, 16, 1)).astype(np.float32)
    centre, size = crops.person_boxes(lsp14_clip(2), np.zeros((2, 14), bool), BoxRule(), image_hw=(16, 16))
    pairs = crops.paired_crops(frames, centre, size, 16).numpy()
    np.testing.assert_allclose(pairs[0], frames, atol=1e-3)


def test_person_boxes_in_dataset_map_keep_dtypes_shapes_and_values():
    joints = lsp14_clip(4)
    frames = np.zeros((4, 48, 64, 3), np.uint8)
    some, none = np.ones((4, 14), bool), np.zeros((4, 14), bool)
    some[1:3] = False
    for valid in (some, none):
        ds = tf.data.Dataset.from_tensors((frames, joints, valid)).map(
            lambda f, j, v: crops.person_boxes(j, v, BoxRule(), tf.shape(f)[1:3]))
        centre_spec, size_spec = ds.element_spec
        assert centre_spec.shape.as_list() == [4, 2] and centre_spec.dtype == tf.float32
        assert size_spec.shape.as_list() == [4] and size_spec.dtype == tf.float32
        graph_centre, graph_size = next(iter(ds.as_numpy_iterator()))
        eager_centre, eager_size = crops.person_boxes(joints, valid, BoxRule(), (48, 64))
        np.testing.assert_allclose(graph_centre, eager_centre.numpy(), atol=1e-5)
        np.testing.assert_allclose(graph_size, eager_size.numpy(), rtol=1e-6)


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
        centre, size, ok = crops.hmr_boxes(points + [[[-2, -2], [0, 0], [2, 2]]], valid, PERSON_HEIGHT_PX)
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


def test_current_crops_are_the_first_crops_of_the_pairs():
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (5, 40, 60, 3)).astype(np.uint8)
    centre = (rng.normal(0, 8, (5, 2)) + [30, 20]).astype(np.float32)
    size = rng.uniform(20, 70, 5).astype(np.float32)
    current = crops.current_crops(images, centre, size, 16).numpy()
    assert current.shape == (4, 16, 16, 3) and current.dtype == np.float32
    np.testing.assert_array_equal(current, crops.paired_crops(images, centre, size, 16)[:, 0].numpy())
