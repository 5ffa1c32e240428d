"""A 2D keypoint detector's output for simulated people: COCO-18 points on the body (as 3DPW's `poses2d` holds
OpenPose's), which of them a camera could see, and the errors a detector makes (jitter, misses, guesses, outliers,
left/right swaps, confidences)."""
from __future__ import annotations

import dataclasses

import numpy as np

from mhr_tf import geometry
from mhr_tf.body import joints as joint_sets

_HEAD_PART = joint_sets.SMPL_PARTS.index("head")

# What a camera can see: App. B's rule (`mhr_tf.data.keypoints`), a point at least this far behind the rendered depth
# along its ray is hidden (a limb behind the body).
JOINT_HIDDEN_BEHIND_M = 0.2
# The 2D detector (OpenPose COCO-18 as 3DPW's poses2d) at `noise` 1: what it sees, how precisely, and how it fails.
SURFACE_HIDDEN_BEHIND_M = 0.04  # face keypoints are on the surface: a detector needs a clear line of sight to them
DETECTION_JITTER = 0.008  # std of a detected keypoint's error, as a fraction of the person's height in pixels
GUESS_PROBABILITY = 0.5  # a hidden keypoint is still guessed (low confidence) rather than left out
GUESS_JITTER = 0.04
GUESS_CONFIDENCE = (0.05, 0.3)
DROP_PROBABILITY = 0.03  # a visible keypoint is missed
OUTLIER_PROBABILITY = 0.01  # a visible keypoint lands far off, with low confidence
OUTLIER_DISTANCE = (0.08, 0.2)  # fraction of the person's height
OUTLIER_CONFIDENCE = (0.1, 0.45)
SWAP_PROBABILITY = 0.04  # a frame's left and right limbs are swapped (arms, legs or all)
CONFIDENCE_MEAN = 0.75
CONFIDENCE_STD = 0.1
CONFIDENCE_RANGE = (0.3, 0.98)
MIN_DETECTED = 6  # 3DPW's readme: poses2d only where at least 6 joints were detected; else the frame is all zero
# Codes of `Detections.error`
DETECTED, MISSING, GUESSED, OUTLIER, SWAPPED = 0, 1, 2, 3, 4
_FACE_KEYPOINTS = ("nose", "right_eye", "left_eye", "right_ear", "left_ear")
# Offsets from the nose tip (metres, rest pose: x = the person's left, y up, z forward) where the eyes are looked for.
_EYE_OFFSET = np.array([0.032, 0.035, -0.025])
_EAR_ABOVE_NOSE_M = 0.02


@dataclasses.dataclass(frozen=True)
class Detections:
    """A simulated detector's COCO-18 output for one person, and what went wrong where."""
    keypoints: np.ndarray  # [N, 18, 3] float32 (x px, y px, confidence), all zero where not detected
    error: np.ndarray      # [N, 18] int8: DETECTED, MISSING, GUESSED, OUTLIER or SWAPPED
    visible: np.ndarray    # [N, 18] bool, in the image and not hidden (by a body or a passing object)
    sigma_px: np.ndarray   # [N] float32, std of the jitter of DETECTED keypoints


def face_keypoint_vertices(model) -> dict[str, int]:
    """Vertex ids of the nose tip, eyes and ears on any SMPL-layout body, found from its rest template: the nose is the
    head's most forward vertex, the eyes the head vertices nearest to fixed offsets from it, the ears the head's
    outermost vertices at about the nose's height."""
    vertices = np.asarray(model.v_template, np.float64)
    head = np.flatnonzero(np.asarray(model.part_ids) == _HEAD_PART)
    if head.size == 0:
        raise ValueError(f"{model.source}: no vertex has the head's part id {_HEAD_PART} — cannot place the face "
                         f"keypoints")
    points = vertices[head]
    nose = int(np.argmax(points[:, 2]))
    ids = {"nose": int(head[nose])}
    for side, sign in (("left", 1.0), ("right", -1.0)):
        target = points[nose] + _EYE_OFFSET * np.array([sign, 1.0, 1.0])
        ids[f"{side}_eye"] = int(head[np.argmin(np.linalg.norm(points - target, axis=1))])
    level = np.abs(points[:, 1] - (points[nose, 1] + _EAR_ABOVE_NOSE_M))
    band = level <= np.quantile(level, 0.1)  # the head's slice at ear height
    band_ids = np.flatnonzero(band)
    ids["left_ear"] = int(head[band_ids[np.argmax(points[band, 0])]])  # the person's left is +x
    ids["right_ear"] = int(head[band_ids[np.argmin(points[band, 0])]])
    return ids


def coco_keypoints(model, vertices: np.ndarray) -> np.ndarray:
    """COCO-18 points `[T, 18, 3]` of posed `vertices [T, V, 3]`: neck and limb joints from the body's 14-joint
    evaluation regressor (the joints the training heatmaps are drawn at), face points from surface vertices."""
    lsp = np.einsum("kv,tvc->tkc", np.asarray(model.lsp_regressor, np.float64), vertices)
    out = joint_sets.convert(lsp, joint_sets.LSP_14, joint_sets.COCO_18)
    for name, vertex in face_keypoint_vertices(model).items():
        out[:, joint_sets.COCO_18.index(name)] = vertices[:, vertex]
    return out


def _at_pixels(maps: np.ndarray, uv: np.ndarray, outside) -> np.ndarray:
    """`maps [N, H, W]` at the nearest pixel of `uv [N, K, 2]`: [N, K], `outside` where that pixel is off the map."""
    height, width = maps.shape[-2:]
    col, row = np.rint(uv[..., 0]).astype(np.int64), np.rint(uv[..., 1]).astype(np.int64)
    inside = (col >= 0) & (col < width) & (row >= 0) & (row < height)
    flat = maps.reshape(maps.shape[:-2] + (-1,))
    picked = np.take_along_axis(flat, np.where(inside, row * width + col, 0), axis=-1)
    return np.where(inside, picked, outside)


def simulate_detections(keypoints_cam: np.ndarray, intrinsics: geometry.Intrinsics, depth: np.ndarray,
                        occluder: np.ndarray, rng: np.random.Generator, noise: float = 1.0) -> Detections:
    """COCO-18 detections of one person as a 2D detector gives them, from the true points `keypoints_cam [N, 18, 3]`
    (camera frame), the scene's rendered planar `depth [N, H, W]` (all people; metres along z) and the passing
    objects' mask `occluder [N, H, W]`. `noise` in [0, 1] is the detector's strength (`Domain.detector_noise`).

    A keypoint is visible when its rounded pixel is in the image, it is not covered by a passing object, and it is
    less than JOINT_HIDDEN_BEHIND_M behind the rendered depth along its own ray (App. B's rules, as the training
    pipeline applies them); as `noise` goes to 1, face points need a clearer line of sight (SURFACE_HIDDEN_BEHIND_M
    at 1). At `noise` 0 the visible keypoints are the exact projections at confidence 1 and the others all zero.
    Above 0, visible keypoints are detected with jitter (std DETECTION_JITTER of the person's height in pixels, at
    least 0.5 px, times `noise`) and a confidence (CONFIDENCE_* moved from 1 by `noise`), except a few dropped
    (MISSING) or thrown far off with a low confidence (OUTLIER); hidden ones in the image are sometimes guessed with
    a low confidence (GUESSED), else missing. Some frames swap the left and right arms, legs or both (SWAPPED: the
    positions and confidences of the pair are exchanged). Every such rate is its constant times `noise`. Frames with
    fewer than MIN_DETECTED keypoints are all zero, as in 3DPW.
    """
    if not 0.0 <= noise <= 1.0:
        raise ValueError(f"simulate_detections: noise={noise}, expected a value in [0, 1]")
    num_frames, num_keypoints = keypoints_cam.shape[:2]
    height, width = depth.shape[-2:]
    uv = geometry.project(keypoints_cam, intrinsics)  # [N, 18, 2]
    col, row = np.rint(uv[..., 0]), np.rint(uv[..., 1])
    in_image = (col >= 0) & (col < width) & (row >= 0) & (row < height)
    is_face = np.isin(np.array(joint_sets.COCO_18), _FACE_KEYPOINTS)
    slack = np.where(is_face, JOINT_HIDDEN_BEHIND_M + noise * (SURFACE_HIDDEN_BEHIND_M - JOINT_HIDDEN_BEHIND_M),
                     JOINT_HIDDEN_BEHIND_M)
    # Like with like along each ray: the point's distance from the camera centre, and the rendered surface's distance
    # along the ray of the pixel the point falls in.
    pixel_ray = np.linalg.norm(np.stack([(col - intrinsics.cx) / intrinsics.fx, (row - intrinsics.cy) / intrinsics.fy,
                                         np.ones_like(col)], axis=-1), axis=-1)
    surface = _at_pixels(depth, uv, np.inf) * pixel_ray
    unhidden = np.linalg.norm(keypoints_cam, axis=-1) - surface < slack
    covered = _at_pixels(occluder, uv, False)
    visible = in_image & unhidden & ~covered

    person_px = np.ptp(uv[..., 1], axis=1) * 1.15  # the body's height in pixels (head top and soles beyond the points)
    sigma = noise * np.maximum(DETECTION_JITTER * person_px, 0.5)  # [N]
    confidence = np.clip(rng.normal(1.0 + noise * (CONFIDENCE_MEAN - 1.0), noise * CONFIDENCE_STD,
                                    (num_frames, num_keypoints)),
                         *(1.0 + noise * (np.array(CONFIDENCE_RANGE) - 1.0)))
    xy = uv + rng.normal(size=uv.shape) * sigma[:, None, None]
    error = np.where(visible, DETECTED, MISSING).astype(np.int8)

    guess = ~visible & in_image & (rng.uniform(size=visible.shape) < noise * GUESS_PROBABILITY)
    xy = np.where(guess[..., None], uv + rng.normal(size=uv.shape) * (GUESS_JITTER * person_px)[:, None, None], xy)
    confidence = np.where(guess, rng.uniform(*GUESS_CONFIDENCE, visible.shape), confidence)
    error[guess] = GUESSED

    outlier = visible & (rng.uniform(size=visible.shape) < noise * OUTLIER_PROBABILITY)
    angle = rng.uniform(0.0, 2.0 * np.pi, visible.shape)
    reach = rng.uniform(*OUTLIER_DISTANCE, visible.shape) * person_px[:, None]
    far = uv + np.stack([np.cos(angle), np.sin(angle)], axis=-1) * reach[..., None]
    xy = np.where(outlier[..., None], far, xy)
    confidence = np.where(outlier, rng.uniform(*OUTLIER_CONFIDENCE, visible.shape), confidence)
    error[outlier] = OUTLIER

    dropped = visible & ~outlier & (rng.uniform(size=visible.shape) < noise * DROP_PROBABILITY)
    error[dropped] = MISSING

    detected = error != MISSING
    keypoints = np.concatenate([xy, confidence[..., None]], axis=-1) * detected[..., None]
    flip = joint_sets.flip_permutation(joint_sets.COCO_18)
    limbs = {"arms": ("shoulder", "elbow", "wrist"), "legs": ("hip", "knee", "ankle")}
    for t in np.flatnonzero(rng.uniform(size=num_frames) < noise * SWAP_PROBABILITY):
        which = rng.choice(["arms", "legs", "all"])
        parts = limbs["arms"] + limbs["legs"] if which == "all" else limbs[which]
        names = [f"{side}_{part}" for part in parts for side in ("left", "right")]
        swap = np.array([joint_sets.COCO_18.index(n) for n in names])
        mirror = flip[swap]
        keypoints[t, swap] = keypoints[t, mirror]
        changed = detected[t, swap] | detected[t, mirror]  # a pair missing on both sides stays missing
        error[t, swap] = np.where(changed, np.where(detected[t, mirror], SWAPPED, MISSING), error[t, swap])
        detected[t, swap] = detected[t, mirror]
    # A frame with too few detections has none (3DPW's readme): a rule of the detector's output, not of what a camera
    # sees, so it goes with the detector.
    too_few = (keypoints[..., 2] > 0).sum(axis=1) < (MIN_DETECTED if noise > 0 else 0)
    keypoints[too_few] = 0.0
    error[too_few] = MISSING
    return Detections(keypoints=keypoints.astype(np.float32), error=error, visible=visible,
                      sigma_px=sigma.astype(np.float32))
