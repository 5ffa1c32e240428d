"""Every person of a video, with ids: per-frame detections (a `keypoint_sources.KeypointSequence`) associated
across frames into one track per person. No TensorFlow.

    per frame: people [P, K, 3] + boxes ─► cost to every live track ─► Hungarian assignment ─► tracks
                                           (1 - IoU with the track's predicted box
                                            + KEYPOINT_WEIGHT x keypoint distance / box diagonal)

A live track predicts where its person is at frame t from its last box moved at its last velocity (the centre's
displacement per frame between its last two observations), so two people who cross keep their ids; a person
missing for up to `max_gap` frames (occluded, or not detected) keeps its id and is matched again by that
prediction; after longer it is ended, and whoever appears there later starts a new track. A pairing counts only
where the boxes overlap (IoU >= `min_iou`) or the keypoints are close (distance <= `max_keypoint_distance` box
diagonals): otherwise the detection starts a new track.

A source that already knows who is who (3DPW's per-person poses2d: `FramePeople.ids` >= 0) is grouped by those ids
with `tracks_from_ids` instead.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from mhr_tf.data import keypoint_sources

MAX_GAP_FRAMES = 15       # half a second at 30 fps: longer absences end the track
MIN_IOU = 0.1
MAX_KEYPOINT_DISTANCE = 0.5  # box diagonals
KEYPOINT_WEIGHT = 1.0
KEYPOINT_MIN_CONFIDENCE = keypoint_sources.BOX_MIN_CONFIDENCE
_NO_MATCH = 1e6


@dataclasses.dataclass
class Track:
    """One person over the N frames of a video: values where `present`, (0, 0, 0) keypoints / NaN boxes elsewhere
    (3DPW's and OpenPose's "not detected", which the pipeline reads)."""
    id: int
    joint_names: tuple[str, ...]
    keypoints: np.ndarray  # [N, K, 3] float32 (x px, y px, confidence)
    boxes: np.ndarray      # [N, 4] float32 (x0, y0, x1, y1) px
    scores: np.ndarray     # [N] float32, NaN where missing
    present: np.ndarray    # [N] bool

    @property
    def frames(self) -> np.ndarray:
        """[F] int64: the frames where the person is detected."""
        return np.flatnonzero(self.present)

    @property
    def missing_frames(self) -> np.ndarray:
        """Frames between the track's first and last detection where it is not detected (its gaps)."""
        frames = self.frames
        if not len(frames):
            return frames
        span = np.arange(frames[0], frames[-1] + 1)
        return span[~self.present[span]]

    def converted(self, joint_names: tuple[str, ...]) -> np.ndarray:
        """Keypoints `[N, len(joint_names), 3]` by joint name (`keypoint_sources.convert_keypoints`; missing frames
        stay zero)."""
        out = keypoint_sources.convert_keypoints(self.keypoints, self.joint_names, tuple(joint_names))
        out[~self.present] = 0.0
        return out


@dataclasses.dataclass
class _Live:
    id: int
    box: np.ndarray        # last detected box
    keypoints: np.ndarray  # last detected keypoints [K, 3]
    last: int              # frame of the last detection
    velocity: np.ndarray   # [2] px per frame

    def predicted(self, frame: int) -> tuple[np.ndarray, np.ndarray]:
        shift = self.velocity * (frame - self.last)
        keypoints = self.keypoints.copy()
        keypoints[:, :2] += shift
        return self.box + np.tile(shift, 2), keypoints


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes; 0 for an empty union."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(width, 0.0) * max(height, 0.0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def keypoint_distance(a: np.ndarray, b: np.ndarray, box: np.ndarray,
                      min_confidence: float = KEYPOINT_MIN_CONFIDENCE) -> float:
    """Mean distance between the keypoints `[K, 3]` confident in both, in diagonals of `box`; inf when none are."""
    both = (a[:, 2] > min_confidence) & (b[:, 2] > min_confidence)
    diagonal = float(np.hypot(box[2] - box[0], box[3] - box[1]))
    if not both.any() or diagonal <= 0:
        return float("inf")
    return float(np.linalg.norm(a[both, :2] - b[both, :2], axis=1).mean() / diagonal)


def _centre(box: np.ndarray) -> np.ndarray:
    return (box[:2] + box[2:]) / 2


def track_people(sequence: keypoint_sources.KeypointSequence, num_frames: int | None = None,
                 max_gap: int = MAX_GAP_FRAMES, min_iou: float = MIN_IOU,
                 max_keypoint_distance: float = MAX_KEYPOINT_DISTANCE,
                 keypoint_weight: float = KEYPOINT_WEIGHT) -> list[Track]:
    """One `Track` per person of `sequence` over `num_frames` frames (default: its last frame + 1), ids 0, 1, ... in
    order of first appearance. People without a box (fewer than 2 confident keypoints) are not tracked."""
    frames = sequence.dense(num_frames)
    num_frames, num_joints = len(frames), len(sequence.joint_names)
    live: list[_Live] = []
    found: dict[int, list[tuple[int, np.ndarray, np.ndarray, float]]] = {}
    for t, people in enumerate(frames):
        live = [track for track in live if t - track.last - 1 <= max_gap]
        detections = [p for p in range(people.num_people) if np.isfinite(people.boxes[p]).all()]
        cost = np.full((len(live), len(detections)), _NO_MATCH)
        for i, track in enumerate(live):
            box, keypoints = track.predicted(t)
            for j, p in enumerate(detections):
                iou = box_iou(box, people.boxes[p])
                distance = keypoint_distance(keypoints, people.keypoints[p], box)
                if iou >= min_iou or distance <= max_keypoint_distance:
                    cost[i, j] = (1.0 - iou) + keypoint_weight * min(distance, 1.0)
        rows, cols = linear_sum_assignment(cost) if cost.size else (np.zeros(0, int), np.zeros(0, int))
        matched = {j: live[i] for i, j in zip(rows, cols) if cost[i, j] < _NO_MATCH}
        for j, p in enumerate(detections):
            box, keypoints = people.boxes[p].astype(np.float64), people.keypoints[p]
            track = matched.get(j)
            if track is None:
                track = _Live(id=len(found), box=box, keypoints=keypoints.astype(np.float64), last=t,
                              velocity=np.zeros(2))
                live.append(track)
            else:
                track.velocity = (_centre(box) - _centre(track.box)) / (t - track.last)
                track.box, track.keypoints, track.last = box, keypoints.astype(np.float64), t
            found.setdefault(track.id, []).append((t, people.keypoints[p], people.boxes[p],
                                                   float(people.scores[p])))
    return [_assemble(track_id, found[track_id], num_frames, sequence.joint_names) for track_id in sorted(found)]


def tracks_from_ids(sequence: keypoint_sources.KeypointSequence, num_frames: int | None = None) -> list[Track]:
    """Tracks from the identities the source gives (`FramePeople.ids` >= 0, e.g. 3DPW's person index)."""
    frames = sequence.dense(num_frames)
    found: dict[int, list] = {}
    for t, people in enumerate(frames):
        for p in range(people.num_people):
            if people.ids[p] < 0:
                raise ValueError(f"{sequence.source}: frame {t} has a person without an id — use track_people")
            found.setdefault(int(people.ids[p]), []).append((t, people.keypoints[p], people.boxes[p],
                                                             float(people.scores[p])))
    return [_assemble(track_id, found[track_id], len(frames), sequence.joint_names) for track_id in sorted(found)]


def _assemble(track_id: int, entries: list, num_frames: int, joint_names: tuple[str, ...]) -> Track:
    keypoints = np.zeros((num_frames, len(joint_names), 3), np.float32)
    boxes = np.full((num_frames, 4), np.nan, np.float32)
    scores = np.full(num_frames, np.nan, np.float32)
    present = np.zeros(num_frames, bool)
    for t, person_keypoints, box, score in entries:
        keypoints[t], boxes[t], scores[t], present[t] = person_keypoints, box, score, True
    return Track(id=track_id, joint_names=tuple(joint_names), keypoints=keypoints, boxes=boxes, scores=scores,
                 present=present)


def select_track(tracks: Sequence[Track], person: int | str | None = None) -> Track:
    """The track `--person` names: an id (int, or a string of digits), "longest" (default: most frames detected,
    the earlier id on a tie) or "largest" (largest median box area over its frames)."""
    if not tracks:
        raise ValueError("no person was tracked in any frame — check the keypoint source")
    if person is None or person == "longest":
        return max(tracks, key=lambda track: (int(track.present.sum()), -track.id))
    if person == "largest":
        def area(track):
            boxes = track.boxes[track.present]
            return float(np.median((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])))
        return max(tracks, key=lambda track: (area(track), -track.id))
    if isinstance(person, str) and not person.isdigit():
        raise ValueError(f"--person {person!r}: expected a track id, 'longest' or 'largest'")
    by_id = {track.id: track for track in tracks}
    if int(person) not in by_id:
        raise ValueError(f"--person {person}: no such track — the tracks are {sorted(by_id)}")
    return by_id[int(person)]


def people_tracks(sequence: keypoint_sources.KeypointSequence, num_frames: int | None = None,
                  max_gap: int = MAX_GAP_FRAMES) -> list[Track]:
    """Every person's track over `num_frames` video frames: grouped by the source's own ids when every detected
    person has one (3DPW), else associated by `track_people`."""
    known = all((f.ids >= 0).all() for f in sequence) and any(f.num_people for f in sequence)
    return tracks_from_ids(sequence, num_frames) if known else track_people(sequence, num_frames, max_gap)


def person_track(sequence: keypoint_sources.KeypointSequence, num_frames: int | None = None,
                 person: int | str | None = None, max_gap: int = MAX_GAP_FRAMES) -> Track:
    """The one track `--person` names (see `select_track`) among `people_tracks`. Its `converted(joints.COCO_18)`
    and `present` are what the pipeline's test branch reads."""
    return select_track(people_tracks(sequence, num_frames, max_gap), person)
