"""Occlusions (paper §3.1, App. A): 4-D SLIC superpixels that follow the camera, its fast mode against the paper's
settings, the occluder's discard rule at the 7-joint boundary, and total occlusions."""
from __future__ import annotations

import numpy as np
import pytest
import skimage.data
import tensorflow as tf

from mhr_tf.body import joints as joint_sets
from mhr_tf.data import camera_motion, composite, keypoints, occlusion
from mhr_tf.data.preprocessing import MAX_TOTAL_OCCLUSION_FRAMES, MIN_VISIBLE_JOINTS, Augmentation


def in_dataset(step, example: dict, seed) -> tuple[dict, dict]:
    """`step` run inside `Dataset.map`: (element_spec, the single element as numpy)."""
    ds = tf.data.Dataset.from_tensors(example).map(lambda ex: step(ex, tf.constant(seed, tf.int64)))
    return ds.element_spec, next(iter(ds.as_numpy_iterator()))


def best_match_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Area-weighted mean over the superpixels of `a` of their best IoU with any superpixel of `b`."""
    na, nb = a.max() + 1, b.max() + 1
    joint = np.bincount(a.ravel() * nb + b.ravel(), minlength=na * nb).reshape(na, nb).astype(np.float64)
    area_a, area_b = joint.sum(1), joint.sum(0)
    iou = joint / (area_a[:, None] + area_b[None, :] - joint)
    return float((iou.max(1) * area_a).sum() / area_a.sum())


def label_agreement_with_centre(labels: np.ndarray, shift: np.ndarray) -> float:
    """Worst frame's fraction of pixels whose label equals the centre frame's label at the same scene point
    (pixel p of the centre frame is pixel p + shift[t] - shift[centre] of frame t), over the pixels both show."""
    num_frames, height, width = labels.shape
    centre = num_frames // 2
    worst = 1.0
    for t, (dx, dy) in enumerate(np.round(shift - shift[centre]).astype(int)):
        at_centre = labels[centre, max(0, -dy):height - max(0, dy), max(0, -dx):width - max(0, dx)]
        at_t = labels[t, max(0, dy):height + min(0, dy), max(0, dx):width + min(0, dx)]
        worst = min(worst, float(np.mean(at_centre == at_t)))
    return worst


# --------------------------------------------------------------------------------------------------------------------
# 4-D SLIC

def test_fast_slic_masks_agree_with_the_paper_settings_on_a_panning_natural_clip():
    """The paper's settings (skimage SLIC on the full 240x320xT volume) against downsample=2, on 8 frames of a
    photograph panned by (4, -3) px per frame. SLIC at compactness 0.01 is itself unstable (paper settings against
    paper settings on the same clip moved by 1 px score 0.6-0.95), so the bound is well below 1 and well above what
    an unrelated partition (a regular grid with as many cells) scores."""
    photo = skimage.data.astronaut()
    step, num_frames = (4, -3), 8
    clip = np.stack([photo[150 - t * step[1]:390 - t * step[1], 100 - t * step[0]:420 - t * step[0]]
                     for t in range(num_frames)])
    shift = camera_motion.integrate_relative_to_centre(np.tile(np.float32(step), (num_frames - 1, 1)))
    paper = occlusion.slic_4d(clip, shift, 20, 5e-4)
    fast = occlusion.slic_4d(clip, shift, 20, 5e-4, downsample=2)
    count = paper.max() + 1
    rows, cols = int(round(np.sqrt(count * 0.75))), int(round(count / np.sqrt(count * 0.75)))
    grid = np.broadcast_to((np.arange(240)[:, None] * rows // 240) * cols + np.arange(320) * cols // 320, paper.shape)
    agreement = best_match_iou(fast, paper)
    print(f"SLIC fast vs paper settings: best-match IoU {agreement:.3f} (reverse {best_match_iou(paper, fast):.3f}); "
          f"grid vs paper {best_match_iou(grid, paper):.3f}; {count} superpixels")
    assert agreement >= 0.6
    assert best_match_iou(paper, fast) >= 0.6
    assert agreement >= best_match_iou(grid, paper) + 0.2


def flat_clip(num_frames=8, height=60, width=80) -> np.ndarray:
    """A grey clip with faint noise: colour says nothing, so SLIC's partition is decided by the (x, y) channels."""
    noise = np.random.default_rng(0).integers(0, 3, (num_frames, height, width, 3))
    return (126 + noise).astype(np.uint8)


def test_superpixels_follow_the_camera():
    clip = flat_clip()
    shift = camera_motion.integrate_relative_to_centre(np.tile(np.float32([2, -1]), (7, 1)))  # ±8 px over the clip
    labels = occlusion.slic_4d(clip, shift, 20, 5e-4)
    assert label_agreement_with_centre(labels, shift) >= 0.93
    # Without the camera compensation the same clip gives superpixels fixed in the image, which the camera leaves.
    fixed = occlusion.slic_4d(clip, np.zeros_like(shift), 20, 5e-4)
    assert label_agreement_with_centre(fixed, shift) <= 0.8
    # Each superpixel that stays clear of the image border sits still in camera-compensated coordinates.
    yy, xx = np.mgrid[:60, :80]
    checked = 0
    for label in range(labels.max() + 1):
        where = labels == label
        if where[:, [0, -1]].any() or where[:, :, [0, -1]].any():
            continue
        centroids = np.array([[xx[where[t]].mean() - shift[t, 0], yy[where[t]].mean() - shift[t, 1]]
                              for t in range(8)])
        assert np.abs(centroids - centroids.mean(0)).max() <= 1.0, label
        checked += 1
    assert checked >= 2


def test_slic_labels_are_consecutive_and_the_fast_mode_labels_whole_blocks():
    clip = flat_clip(num_frames=3, height=21, width=27)  # sizes that 2 and 3 do not divide
    shift = np.zeros((3, 2), np.float32)
    for downsample in (1, 2, 3):
        labels = occlusion.slic_4d(clip, shift, 6, 5e-4, downsample=downsample)
        assert labels.shape == (3, 21, 27) and labels.dtype == np.int32
        assert set(np.unique(labels)) == set(range(labels.max() + 1))
        d = downsample
        blocks = labels[:, :21 // d * d, :27 // d * d].reshape(3, 21 // d, d, 27 // d, d)
        assert (blocks == blocks[:, :, :1, :, :1]).all()


def test_slic_4d_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match=r"camera_shift must be \[T, 2\]"):
        occlusion.slic_4d(flat_clip(3, 8, 8), np.zeros((2, 2)), 10, 5e-4)
    with pytest.raises(ValueError, match=r"\[T, H, W, 3\]"):
        occlusion.slic_4d(np.zeros((3, 8, 8), np.uint8), np.zeros((3, 2)), 10, 5e-4)


def test_slic_positions_are_in_240_row_pixels_on_both_axes():
    """A 120x200 frame (wider than the paper's 4:3) has its positions doubled on both axes: pixels stay square, so a
    superpixel's shape does not depend on the frame's aspect ratio. Camera shifts are in full-resolution pixels."""
    rows, cols = np.array([1, 3, 119]), np.array([0, 5, 199])
    frames = np.full((2, 3, 3, 3), 255, np.uint8)
    shift = np.array([[1.5, -2.0], [0.0, 4.0]])
    features = occlusion._slic_features(frames, rows, cols, shift, 5e-4, full_hw=(120, 200))
    assert features.shape == (2, 3, 3, 5) and features.dtype == np.float32
    np.testing.assert_array_equal(features[..., :3], 1.0)
    x = (cols[None, None, :] - shift[:, 0, None, None]) * 2.0 * 5e-4  # float64 reference, 240 / 120 = 2 on x too
    y = (rows[None, :, None] - shift[:, 1, None, None]) * 2.0 * 5e-4
    np.testing.assert_allclose(features[..., 3], np.broadcast_to(x, (2, 3, 3)), rtol=1e-6)
    np.testing.assert_allclose(features[..., 4], np.broadcast_to(y, (2, 3, 3)), rtol=1e-6)


def test_slic_parameters_cover_the_paper_ranges():
    rng = np.random.default_rng(1)
    draws = [occlusion.sample_slic_parameters(rng) for _ in range(2000)]
    counts, scales = np.array([d[0] for d in draws]), np.array([d[1] for d in draws])
    assert counts.min() == 10 and counts.max() == 30  # App. A: "between 10 and 30 superpixels per image"
    assert 4e-4 <= scales.min() < 4.1e-4 and 5.9e-4 < scales.max() <= 6e-4  # "between 4e-4 and 6e-4"


# --------------------------------------------------------------------------------------------------------------------
# The occluder and its discard rule

T, H, W = 4, 30, 24
# The 14 evaluation joints on a 7 x 2 grid over the person: the 6 leg joints (LSP's first six) on the bottom rows.
GRID_ROWS, GRID_COLS = (4, 7, 10, 13, 16, 19, 22), (8, 15)
ORDER = [i for i, name in enumerate(joint_sets.LSP_14) if name not in joint_sets.LEG_JOINTS] + \
        [i for i, name in enumerate(joint_sets.LSP_14) if name in joint_sets.LEG_JOINTS]
JOINT_PIXELS = np.zeros((14, 2), np.float32)
JOINT_PIXELS[ORDER] = [(c, r) for r in GRID_ROWS for c in GRID_COLS]  # (x, y)
IS_LEG_14 = np.array([name in joint_sets.LEG_JOINTS for name in joint_sets.LSP_14])


def occluder_example(labels: np.ndarray) -> dict:
    segm = np.zeros((T, H, W), np.uint8)
    segm[:, 2:28, 4:20] = 1
    joints = np.tile(JOINT_PIXELS, (T, 1, 1))
    return {"superpixels": labels.astype(np.int32), "segm": segm, "joints14_2d": joints,
            "joints14_cam": np.concatenate([joints * 0.01, np.full((T, 14, 1), 5.0, np.float32)], -1),
            "depth": np.full((T, H, W), 1e10, np.float32),
            "person_rgb": np.full((T, H, W, 3), 200, np.uint8), "background": np.full((T, H, W, 3), 7, np.uint8)}


def covering(per_frame_joints: list[list[int]]) -> np.ndarray:
    """Labels [T, H, W]: 0 on a 3x3 block around each listed joint of each frame, 1 elsewhere."""
    labels = np.ones((T, H, W), np.int32)
    for t, chosen in enumerate(per_frame_joints):
        for j in chosen:
            x, y = JOINT_PIXELS[j].astype(int)
            labels[t, y - 1:y + 2, x - 1:x + 2] = 0
    return labels


def occluder_outcomes(example: dict, num_seeds: int = 40) -> list[tuple[bool, np.ndarray]]:
    """(kept, occluder mask) of `slic_occluder` for seeds 0..num_seeds-1."""
    step = tf.function(lambda seed: occlusion.slic_occluder(example, seed))
    results = [step(tf.constant([s, 1], tf.int64)) for s in range(num_seeds)]
    return [(bool(r["occluded_by_slic"]), np.asarray(r["occluder"])) for r in results]


def test_an_occluder_over_the_legs_is_kept_and_hides_the_leg_keypoints():
    legs = np.flatnonzero(IS_LEG_14).tolist()
    labels = covering([legs] * T)  # label 1, the rest, covers the 8 other joints: 6 left, discarded
    example = occluder_example(labels)
    outcomes = occluder_outcomes(example)
    assert 8 <= sum(kept for kept, _ in outcomes) <= 32  # label 0 of 2, drawn at random
    for kept, mask in outcomes:
        np.testing.assert_array_equal(mask, (labels == 0) & kept)

    seed = next(s for s, (kept, _) in enumerate(outcomes) if kept)
    occluded = occlusion.slic_occluder(example, tf.constant([seed, 1], tf.int64))
    shown = composite.composite(occluded)["frames"].numpy()
    np.testing.assert_array_equal(shown[..., 0], np.where((example["segm"] > 0) & (labels != 0), 200, 7))
    rules = Augmentation(leg_unhide_probability=0.0, flip_probability=0.0)
    visible = keypoints.keypoint_visibility(occluded, tf.constant([0, 0], tf.int64), rules)["keypoints_visible"].numpy()
    np.testing.assert_array_equal(visible, np.tile(~IS_LEG_14[:keypoints.NUM_HEATMAPS], (T, 1)))


def test_an_occluder_leaving_exactly_7_joints_visible_on_average_is_kept():
    assert MIN_VISIBLE_JOINTS == 7  # App. A: "an average of less than 7 keypoints" discards the superpixel
    # Frames 0-1: label 0 covers 6 joints (8 left), frames 2-3: 8 joints (6 left): an average of exactly 7 left.
    # Label 1 covers the complement: 6, 6, 8, 8 left, also 7 on average. So every draw is kept.
    six, eight = list(range(6)), list(range(8))
    labels = covering([six, six, eight, eight])
    outcomes = occluder_outcomes(occluder_example(labels))
    assert all(kept for kept, _ in outcomes)
    seen = {int(mask.any() and labels[mask][0]) for _, mask in outcomes}
    assert seen == {0, 1}
    for _, mask in outcomes:
        assert np.array_equal(mask, labels == 0) or np.array_equal(mask, labels == 1)


def test_occluder_discarded_when_fewer_than_7_joints_visible_on_average():
    # Label 0 covers 7, 7, 7, 8 joints: 6.75 left on average -> discarded. Label 1 (the rest) leaves 7.25 -> kept.
    seven, eight = list(range(7)), list(range(8))
    labels = covering([seven, seven, seven, eight])
    outcomes = occluder_outcomes(occluder_example(labels))
    assert 8 <= sum(kept for kept, _ in outcomes) <= 32
    for kept, mask in outcomes:
        np.testing.assert_array_equal(mask, (labels == 1) & kept)
        assert kept == mask.any()


def test_occluder_not_touching_the_person_is_discarded():
    labels = np.full((T, H, W), 2, np.int32)  # label 2 covers 13 joints: discarded
    labels[:, :, :3] = 0  # a strip left of the person (columns 4..19): covers no joint, touches nothing
    x, y = JOINT_PIXELS[0].astype(int)
    labels[:, y - 1:y + 2, x - 1:x + 2] = 1  # one joint's block: kept
    outcomes = occluder_outcomes(occluder_example(labels), num_seeds=60)
    assert 8 <= sum(kept for kept, _ in outcomes) <= 35
    for kept, mask in outcomes:
        np.testing.assert_array_equal(mask, (labels == 1) & kept)


def test_the_occluder_is_drawn_among_the_labels_present_in_the_clip():
    """A background window cropped from a larger video keeps only some of its superpixel ids: here 5 and 9 of 0..9.
    Both leave exactly 7 joints per frame on average (as above), so every draw of a present label is kept: a draw of
    an absent id would show as an empty, discarded occluder."""
    six, eight = list(range(6)), list(range(8))
    labels = np.where(covering([six, six, eight, eight]) == 0, 5, 9).astype(np.int32)
    outcomes = occluder_outcomes(occluder_example(labels), num_seeds=200)
    assert all(kept for kept, _ in outcomes)
    chosen = []
    for _, mask in outcomes:
        assert mask.any()
        (label,) = np.unique(labels[mask])
        np.testing.assert_array_equal(mask, labels == label)
        chosen.append(int(label))
    assert set(chosen) == {5, 9}
    rate = np.mean(np.array(chosen) == 5)  # uniform among the present labels
    assert abs(rate - 0.5) < 4.5 * np.sqrt(0.25 / 200), rate


def test_occluder_disabled_masks_nothing():
    out = occlusion.slic_occluder(occluder_example(covering([[0]] * T)), tf.constant([0, 0], tf.int64),
                                  enabled=False)
    assert not out["occluder"].numpy().any() and not bool(out["occluded_by_slic"])


def test_slic_occluder_in_dataset_map_keeps_dtypes_shapes_and_values():
    example = occluder_example(covering([list(range(6))] * T))
    for seed in ([3, 1], [4, 1]):
        eager = occlusion.slic_occluder(example, tf.constant(seed, tf.int64))
        spec, graph = in_dataset(occlusion.slic_occluder, example, seed)
        assert spec["occluder"].dtype == tf.bool and spec["occluder"].shape.as_list() == [T, H, W]
        assert spec["occluded_by_slic"].dtype == tf.bool and spec["occluded_by_slic"].shape.rank == 0
        np.testing.assert_array_equal(graph["occluder"], eager["occluder"].numpy())
        assert graph["occluded_by_slic"] == bool(eager["occluded_by_slic"])


# --------------------------------------------------------------------------------------------------------------------
# Total occlusions

def total_occlusion_draws(num_frames: int, probability: float, num_seeds: int,
                          max_frames: int = MAX_TOTAL_OCCLUSION_FRAMES) -> np.ndarray:
    example = {"joints2d": tf.zeros([num_frames, 24, 2])}
    step = tf.function(lambda seed: occlusion.total_occlusion(example, seed, probability=probability,
                                                              max_frames=max_frames)["occluded"])
    return np.stack([step(tf.constant([s, 7], tf.int64)).numpy() for s in range(num_seeds)])


def test_total_occlusions_are_one_run_of_at_most_15_frames_at_the_given_rate():
    assert MAX_TOTAL_OCCLUSION_FRAMES == 15  # App. A: "up to 15 frames long in our training set"
    draws = total_occlusion_draws(31, 0.3, 1500)  # [seeds, T] float32 indicator
    assert set(np.unique(draws)) <= {0.0, 1.0}
    occluded = draws.any(axis=1)
    rate = occluded.mean()
    assert abs(rate - 0.3) < 4.5 * np.sqrt(0.3 * 0.7 / 1500), rate
    lengths = draws.sum(axis=1)[occluded]
    assert lengths.min() == 1 and lengths.max() == 15  # App. A: "up to 15 frames long"
    assert abs(lengths.mean() - 8.0) < 0.6  # uniform on 1..15
    for row in draws[occluded]:  # one contiguous run: the indicator rises once and falls once
        edges = np.diff(np.concatenate([[0.0], row, [0.0]]))
        assert (edges == 1).sum() == 1 and (edges == -1).sum() == 1
    starts = np.argmax(draws[occluded] > 0, axis=1)
    assert starts.min() == 0 and (starts + lengths).max() == 31  # runs reach both ends of the clip


def test_total_occlusion_fits_a_clip_shorter_than_15_frames():
    draws = total_occlusion_draws(8, 1.0, 300)
    assert draws.any(axis=1).all() and draws.sum(axis=1).max() == 8


def test_total_occlusion_runs_are_at_most_max_frames_long():
    draws = total_occlusion_draws(31, 1.0, 300, max_frames=4)
    lengths = draws.sum(axis=1)
    assert draws.any(axis=1).all() and lengths.min() == 1 and lengths.max() == 4


def test_total_occlusion_in_dataset_map_keeps_dtypes_shapes_and_values():
    example = {"joints2d": np.zeros((31, 24, 2), np.float32)}
    eager = occlusion.total_occlusion(example, tf.constant([5, 5], tf.int64), probability=1.0,
                                      max_frames=MAX_TOTAL_OCCLUSION_FRAMES)
    spec, graph = in_dataset(lambda ex, s: occlusion.total_occlusion(ex, s, probability=1.0,
                                                                     max_frames=MAX_TOTAL_OCCLUSION_FRAMES),
                             example, [5, 5])
    assert spec["occluded"].dtype == tf.float32 and spec["occluded"].shape.as_list() == [31]
    np.testing.assert_array_equal(graph["occluded"], eager["occluded"].numpy())
    assert graph["occluded"].sum() >= 1
