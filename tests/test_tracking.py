"""Tracking: a hand-built two-person sequence (a crossing, a gap, detections listed in changing order) keeps its
ids; longer gaps end a track; `select_track` picks what --person names."""
import numpy as np
import pytest

from mhr_tf import tracking
from mhr_tf.body import joints
from mhr_tf.data import keypoint_sources as ks

# A standing figure in COCO-17 as fractions of its height (x from the body's centre line, y down from the head top).
FIGURE = np.array([
    [0.0, 0.05], [-0.03, 0.03], [0.03, 0.03], [-0.06, 0.05], [0.06, 0.05],   # nose, eyes, ears
    [-0.12, 0.18], [0.12, 0.18], [-0.15, 0.35], [0.15, 0.35], [-0.16, 0.5], [0.16, 0.5],  # arms
    [-0.08, 0.52], [0.08, 0.52], [-0.09, 0.75], [0.09, 0.75], [-0.1, 1.0], [0.1, 1.0],  # legs
])
NUM_FRAMES = 30


def figure(centre_x: float, height: float, feet_y: float = 400.0) -> np.ndarray:
    """[17, 3] keypoints of a figure `height` px tall standing on `feet_y`, confidence 0.9."""
    xy = FIGURE * height + np.array([centre_x, feet_y - height])
    return np.concatenate([xy, np.full((17, 1), 0.9)], axis=1).astype(np.float32)


def crossing_sequence(gap=(18, 19, 20)) -> tuple[ks.KeypointSequence, np.ndarray, np.ndarray]:
    """A (200 px tall) walks right from x 100, B (160 px) left from x 400, 10 px a frame: they cross at frame 15.
    B is not detected in the `gap` frames. Odd frames list B first."""
    a = np.stack([figure(100 + 10 * t, 200) for t in range(NUM_FRAMES)])
    b = np.stack([figure(400 - 10 * t, 160) for t in range(NUM_FRAMES)])
    frames = []
    for t in range(NUM_FRAMES):
        people = [a[t]] + ([] if t in gap else [b[t]])
        if t % 2:
            people = people[::-1]
        frames.append(ks.make_frame(t, np.stack(people)))
    return ks.KeypointSequence("hand-built", "coco_17", joints.COCO_17, frames), a, b


def test_ids_survive_a_crossing_and_a_gap():
    sequence, a, b = crossing_sequence()
    tracks = tracking.track_people(sequence, max_gap=5)
    assert [t.id for t in tracks] == [0, 1]
    first, second = tracks
    np.testing.assert_array_equal(first.keypoints, a)
    assert first.present.all() and first.missing_frames.size == 0
    assert second.missing_frames.tolist() == [18, 19, 20]
    seen = second.present
    np.testing.assert_array_equal(second.keypoints[seen], b[seen])
    np.testing.assert_array_equal(second.keypoints[~seen], 0.0)
    assert np.isnan(second.boxes[~seen]).all() and np.isnan(second.scores[~seen]).all()


def test_identical_people_crossing_are_told_apart_by_their_motion():
    # Same size and height: at frame 15 the two detections coincide and at 16 each is as close to either track's
    # last box; only the tracks' velocities say who went where.
    a = np.stack([figure(100 + 10 * t, 200) for t in range(NUM_FRAMES)])
    b = np.stack([figure(400 - 10 * t, 200) for t in range(NUM_FRAMES)])
    frames = [ks.make_frame(t, np.stack([b[t], a[t]] if t % 3 else [a[t], b[t]])) for t in range(NUM_FRAMES)]
    tracks = tracking.track_people(ks.KeypointSequence("twins", "coco_17", joints.COCO_17, frames))
    assert len(tracks) == 2
    np.testing.assert_array_equal(tracks[0].keypoints, a)
    np.testing.assert_array_equal(tracks[1].keypoints, b)


def test_a_gap_longer_than_max_gap_starts_a_new_id():
    sequence, _, b = crossing_sequence(gap=tuple(range(18, 25)))
    tracks = tracking.track_people(sequence, max_gap=5)
    assert [t.id for t in tracks] == [0, 1, 2]
    assert tracks[1].frames.tolist() == list(range(18))
    assert tracks[2].frames.tolist() == list(range(25, NUM_FRAMES))
    np.testing.assert_array_equal(tracks[2].keypoints[25:], b[25:])


def test_people_far_apart_are_never_paired():
    frames = [ks.make_frame(0, figure(100, 200)[None]), ks.make_frame(1, figure(900, 200)[None])]
    sequence = ks.KeypointSequence("two", "coco_17", joints.COCO_17, frames)
    assert [t.frames.tolist() for t in tracking.track_people(sequence)] == [[0], [1]]


def test_box_iou_and_keypoint_distance_by_hand():
    assert tracking.box_iou(np.array([0, 0, 2, 2]), np.array([1, 1, 3, 3])) == pytest.approx(1 / 7)
    a = np.array([[0, 0, 0.9], [10, 0, 0.9], [5, 5, 0.05]])
    b = np.array([[3, 4, 0.9], [10, 0, 0.9], [0, 0, 0.9]])  # distances 5 and 0; the third is not confident in a
    assert tracking.keypoint_distance(a, b, np.array([0, 0, 30, 40])) == pytest.approx(2.5 / 50)


def test_select_track_by_id_longest_and_largest():
    sequence, _, _ = crossing_sequence()
    tracks = tracking.track_people(sequence, max_gap=5)
    assert tracking.select_track(tracks).id == 0          # A is present in all 30 frames, B in 27
    assert tracking.select_track(tracks, "1").id == 1
    assert tracking.select_track(tracks, 1).id == 1
    assert tracking.select_track(tracks, "largest").id == 0  # A is the taller
    with pytest.raises(ValueError, match="no such track"):
        tracking.select_track(tracks, 7)


def test_tracks_from_source_ids_and_coco18_view():
    frames = [ks.make_frame(0, np.stack([figure(100, 200), figure(300, 200)]), ids=[1, 0]),
              ks.make_frame(1, figure(305, 200)[None], ids=[0])]
    sequence = ks.KeypointSequence("3dpw-like", "coco_17", joints.COCO_17, frames)
    tracks = tracking.tracks_from_ids(sequence)
    assert [t.id for t in tracks] == [0, 1]
    assert tracks[0].frames.tolist() == [0, 1] and tracks[1].frames.tolist() == [0]
    coco18 = tracks[1].converted(joints.COCO_18)
    assert coco18.shape == (2, 18, 3)
    np.testing.assert_allclose(coco18[0, 1, :2], figure(100, 200)[[5, 6], :2].mean(axis=0))  # neck
    np.testing.assert_array_equal(coco18[1], 0.0)


def test_person_track_uses_source_ids_when_every_person_has_one():
    a, b = figure(100, 200), figure(300, 160)
    with_ids = [ks.make_frame(0, np.stack([a, b]), ids=[4, 2]), ks.make_frame(1, b[None], ids=[2])]
    sequence = ks.KeypointSequence("3dpw-like", "coco_17", joints.COCO_17, with_ids)
    assert tracking.person_track(sequence, 3).id == 2 and tracking.person_track(sequence, 3, "4").frames.tolist() \
        == [0]
    without_ids = [ks.make_frame(0, np.stack([a, b])), ks.make_frame(1, b[None])]
    track = tracking.person_track(ks.KeypointSequence("video", "coco_17", joints.COCO_17, without_ids), 3)
    assert track.id == 1 and track.present.tolist() == [True, True, False]
