"""Named joint sets and the mappings between them.

Every joint list in the project comes from here, by name. Index lists are derived, never typed twice.
"""
from __future__ import annotations

import numpy as np

# SMPL's 24 joints, in the order of the model files' `J_regressor` rows and `kintree_table`.
SMPL_24 = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle",
    "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hand", "right_hand",
)
# kintree_table[0] of the official files: parent of each joint, -1 for the root.
SMPL_PARENTS = np.array(
    [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21], dtype=np.int64)

# SMPL's 24 body parts for segmentation share the joint names (part i is skinned mostly to joint i);
# SURREAL's `_segm.mat` stores part i as i + 1 and background as 0.
SMPL_PARTS = SMPL_24

# The 14 evaluation joints, in the LSP order HMR/HMMR use (the first 14 of HMR's cocoplus set).
LSP_14 = (
    "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle", "right_wrist",
    "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist", "neck", "head_top",
)

# Paper §3.2: "the ankles, knees, hips, shoulders, elbows, and wrists". Kept in LSP order.
HEATMAP_12 = LSP_14[:12]

# OpenPose's COCO-18 layout: 3DPW's `poses2d` and OpenPose's default JSON before BODY_25.
COCO_18 = (
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
    "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
    "right_eye", "left_eye", "right_ear", "left_ear",
)

# OpenPose BODY_25.
BODY_25 = (
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
    "left_wrist", "mid_hip", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee",
    "left_ankle", "right_eye", "left_eye", "right_ear", "left_ear", "left_big_toe", "left_small_toe",
    "left_heel", "right_big_toe", "right_small_toe", "right_heel",
)

# COCO's 17 person keypoints (the COCO keypoint challenge; MoveNet, RTMPose/RTMO on COCO, ViTPose, mmpose's `coco`).
COCO_17 = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
    "right_ankle",
)

# Halpe's 26 body keypoints (AlphaPose; mmpose's `halpe26`, RTMPose/RTMO "body7" models): COCO-17, then Halpe's
# "head" (the top of the head, named here as LSP's head_top), "neck", "hip" (the midpoint of the hips, BODY_25's
# mid_hip) and six foot points.
HALPE_26 = COCO_17 + (
    "head_top", "neck", "mid_hip", "left_big_toe", "right_big_toe", "left_small_toe", "right_small_toe",
    "left_heel", "right_heel",
)

LEG_JOINTS = frozenset({"right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle"})

JOINT_SETS = {"smpl_24": SMPL_24, "lsp_14": LSP_14, "heatmap_12": HEATMAP_12, "coco_18": COCO_18,
              "body_25": BODY_25, "coco_17": COCO_17, "halpe_26": HALPE_26}


def indices(source: tuple[str, ...], target: tuple[str, ...]) -> np.ndarray:
    """Index into `source` for every name of `target`; -1 where `source` lacks the joint.

    `keypoints_target = keypoints_source[indices(source, target)]` (after masking the -1s).
    """
    where = {name: i for i, name in enumerate(source)}
    return np.array([where.get(name, -1) for name in target], dtype=np.int64)


def convert(values: np.ndarray, source: tuple[str, ...], target: tuple[str, ...],
            fill: float = 0.0) -> np.ndarray:
    """Re-order the joint axis (axis -2) of `values [..., len(source), D]` into `target`'s order.

    Joints `source` does not have are set to `fill`.
    """
    values = np.asarray(values)
    if values.shape[-2] != len(source):
        raise ValueError(f"joint axis has {values.shape[-2]} entries, expected {len(source)}")
    idx = indices(source, target)
    out = np.take(values, np.maximum(idx, 0), axis=-2)
    out[..., idx < 0, :] = fill
    return out


def lsp_from_smpl_indices() -> np.ndarray:
    """SMPL-24 index of every LSP-14 joint the skeleton shares (-1 for head top, which is a vertex)."""
    return indices(SMPL_24, LSP_14)


def mirror_name(name: str) -> str:
    """The joint on the other side: left_knee <-> right_knee; a centre joint is its own mirror."""
    if name.startswith("left_"):
        return "right_" + name[5:]
    if name.startswith("right_"):
        return "left_" + name[6:]
    return name


def flip_permutation(names: tuple[str, ...]) -> np.ndarray:
    """Index permutation that swaps left and right joints of `names` (for mirroring and detector swaps)."""
    return indices(names, tuple(mirror_name(n) for n in names))
