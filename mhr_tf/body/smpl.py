"""The SMPL body model: loaders for SMPL model files, a numpy forward pass and the TensorFlow/Keras layer.

SMPL (Loper et al. 2015) maps shape `betas [10]` and pose (24 joint rotations, axis-angle) to a mesh by linear blend
skinning with shape and pose blend shapes:

    v_shaped = v_template + shapedirs . betas                       # rest pose, this person's shape
    J        = J_regressor @ v_shaped                               # rest-pose joints
    v_posed  = v_shaped + posedirs . concat_{j=1..23} vec(R_j - I)  # pose blend shapes (SMPL's 'lrotmin')
    vertices = sum_j weights[:, j] * G_j(pose, J) [v_posed; 1]      # skinning with rest-relative joint transforms

One loader reads the official files (`.pkl`, chumpy-free), `.npz` files with the same keys, and directories of them;
the default (`None`) is the open body model of `mhr_tf.body.open_body`, in the same layout. Official SMPL files come
from https://smpl.is.tue.mpg.de under the SMPL licence: users download them themselves; they are never committed.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping

import keras
import numpy as np
import tensorflow as tf
from tensorflow_graphics.geometry.transformation import rotation_matrix_3d

from mhr_tf import paths
from mhr_tf.body import joints
from mhr_tf.body.model_files import (REQUIRED_KEYS, BodyModelError,  # noqa: F401 (callers name them smpl.*)
                                    BodyModelNotFoundError, as_array, read_arrays, read_pickle)

NUM_JOINTS = len(joints.SMPL_24)  # 24: SMPL's kinematic tree
NUM_BETAS = 10  # shape components used (SMPL-X-era SMPL files hold 300; we keep the first 10, as SMPL's 10)
NUM_POSE_FEATURES = 9 * (NUM_JOINTS - 1)  # 207: vec(R_j - I) for joints 1..23 drive `posedirs`
GENDERS = ("neutral", "male", "female")
# The official files store the root's parent in `kintree_table[0]` as uint32 -1.
KINTREE_ROOT_PARENT = 2 ** 32 - 1
# SMPL's 6890-vertex mesh: vertex 411 is the top of the head (the head-top vertex public HMR-family code reads off
# SMPL meshes for the LSP 'head_top' joint). Used only when a 6890-vertex file brings no 14-joint regressor.
SMPL_NUM_VERTICES = 6890
SMPL_HEAD_TOP_VERTEX = 411
# Below this rotation angle (radians) the rotation matrix is taken from its 2nd-order Taylor series, where the
# axis r/|r| is undefined; the series' error (|r|^3/6 ~ 2e-13) is far below float32 resolution.
SMALL_ANGLE_RAD = 1e-4

# `gender` -> file names accepted in a model directory, in order of preference (matched case-insensitively).
MODEL_FILE_NAMES = {
    "neutral": ("SMPL_NEUTRAL.npz", "SMPL_NEUTRAL.pkl", "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl",
                "basicmodel_neutral_lbs_10_207_0_v1.1.0.pkl"),
    "male": ("SMPL_MALE.npz", "SMPL_MALE.pkl", "basicmodel_m_lbs_10_207_0_v1.0.0.pkl",
             "basicmodel_m_lbs_10_207_0_v1.1.0.pkl"),
    "female": ("SMPL_FEMALE.npz", "SMPL_FEMALE.pkl", "basicModel_f_lbs_10_207_0_v1.0.0.pkl",
               "basicmodel_f_lbs_10_207_0_v1.1.0.pkl"),
}
# Keys only the open body model has (see the body-model contract); official files get derived fallbacks.
PART_IDS_KEY = "part_ids"
LSP_REGRESSOR_KEY = "J_regressor_lsp14"
# HMR's `neutral_smpl_with_cocoplus_reg.pkl` keeps its 19-joint regressor (first 14 = LSP order) under this key.
COCOPLUS_REGRESSOR_KEY = "cocoplus_regressor"


@dataclasses.dataclass(frozen=True, eq=False)
class BodyModel:
    """An SMPL-layout body model in numpy; arrays are read-only. V vertices, F faces, SMPL's 24 joints."""
    v_template: np.ndarray  # [V, 3] float32, metres, rest T-pose (y up, facing +z, the person's left at +x)
    shapedirs: np.ndarray  # [V, 3, 10] float32, metres per unit beta
    posedirs: np.ndarray  # [V, 3, 207] float32, metres per unit of vec(R_j - I), joints 1..23
    J_regressor: np.ndarray  # [24, V] float32, dense: rest joints = J_regressor @ vertices
    weights: np.ndarray  # [V, 24] float32, skinning weights, rows sum to 1
    parents: np.ndarray  # [24] int64, parent joint, -1 for the root (joints.SMPL_PARENTS)
    faces: np.ndarray  # [F, 3] int32, vertex indices
    lsp_regressor: np.ndarray  # [14, V] float32: joints.LSP_14 = lsp_regressor @ posed vertices
    part_ids: np.ndarray  # [V] int32, SMPL part 0..23 of each vertex (SURREAL segmentation stores part + 1)
    gender: str  # one of GENDERS
    source: str  # the file it came from

    @property
    def num_vertices(self) -> int:
        return self.v_template.shape[0]


# ---------------------------------------------------------------------------------------------------------------
# Building and checking a BodyModel.

def _checked(array: np.ndarray, source: Any, key: str, shape: tuple, what: str) -> np.ndarray:
    """`array` if its shape matches `shape` (None = any size) and it is finite, else a BodyModelError."""
    if array.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, array.shape)):
        expected = "(" + ", ".join("any" if s is None else str(s) for s in shape) + ")"
        raise BodyModelError(source, f"key '{key}' has shape {array.shape}, expected {expected}: {what}")
    if not np.issubdtype(array.dtype, np.number) and array.dtype != bool:
        raise BodyModelError(source, f"key '{key}' has dtype {array.dtype}, expected a numeric array: {what}")
    if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
        raise BodyModelError(source, f"key '{key}' has non-finite values, expected finite numbers: {what}")
    return array


def _frozen(array: np.ndarray, dtype) -> np.ndarray:
    array = np.ascontiguousarray(array, dtype=dtype)
    array.setflags(write=False)
    return array


def _default_part_ids(weights: np.ndarray) -> np.ndarray:
    """Each vertex's part = the joint that skins it most (SMPL's part segmentation follows its skinning)."""
    return np.argmax(weights, axis=1)


def _default_lsp_regressor(J_regressor: np.ndarray, v_template: np.ndarray, part_ids: np.ndarray) -> np.ndarray:
    """LSP-14 from a file without its own regressor: the 13 skeleton joints from `J_regressor`, head top a vertex.

    HMR's cocoplus regressor (pass it as `lsp_regressor_path`) gives the exact HMR/HMMR evaluation joints instead.
    """
    num_vertices = v_template.shape[0]
    smpl_index = joints.lsp_from_smpl_indices()  # [14], -1 for head_top
    regressor = np.zeros((len(joints.LSP_14), num_vertices), np.float64)
    has_joint = smpl_index >= 0
    regressor[has_joint] = J_regressor[smpl_index[has_joint]]
    if num_vertices == SMPL_NUM_VERTICES:
        head_top = SMPL_HEAD_TOP_VERTEX
    else:
        head = np.flatnonzero(part_ids == joints.SMPL_PARTS.index("head"))
        candidates = head if head.size else np.arange(num_vertices)
        head_top = candidates[np.argmax(v_template[candidates, 1])]  # y is up in SMPL's rest pose
    regressor[joints.LSP_14.index("head_top"), head_top] = 1.0
    return regressor


def _read_lsp_regressor(path: Path, num_vertices: int) -> np.ndarray:
    """A 14-joint (LSP order) or HMR 19-joint cocoplus regressor from `.npy` or `.pkl`, as [14, V]."""
    if not path.is_file():
        raise BodyModelNotFoundError(path, "no such joint regressor file")
    key = COCOPLUS_REGRESSOR_KEY
    if path.suffix.lower() == ".npy":
        try:
            value = np.load(path, allow_pickle=False)
        except ValueError as error:
            raise BodyModelError(path, f"is not a plain numeric .npy array ({error})") from error
        key = "array"
    else:
        value = read_pickle(path)
        if isinstance(value, dict):
            if COCOPLUS_REGRESSOR_KEY not in value:
                raise BodyModelError(path, f"has no key '{COCOPLUS_REGRESSOR_KEY}', expected HMR's cocoplus "
                                           f"regressor [19, {num_vertices}] (or a bare [14, {num_vertices}] array)")
            value = value[COCOPLUS_REGRESSOR_KEY]
    regressor = as_array(value, path, key)
    if regressor.ndim == 2 and regressor.shape[0] == num_vertices and regressor.shape[1] != num_vertices:
        regressor = regressor.T
    n_lsp = len(joints.LSP_14)
    if regressor.ndim != 2 or regressor.shape[1] != num_vertices or regressor.shape[0] < n_lsp:
        raise BodyModelError(path, f"key '{key}' has shape {regressor.shape}, expected ({n_lsp} or more, "
                                   f"{num_vertices}): a joint regressor whose first {n_lsp} rows are LSP-14")
    return _checked(regressor[:n_lsp], path, key, (n_lsp, num_vertices), "the LSP-14 joint regressor")


def body_model_from_arrays(arrays: Mapping[str, Any], source: str = "<arrays>", gender: str = "neutral",
                           lsp_regressor: np.ndarray | None = None) -> BodyModel:
    """Check SMPL-layout arrays (the model files' keys) and build a BodyModel, deriving what the file lacks.

    `arrays` may hold numpy arrays or the loader's chumpy / sparse stand-ins. `lsp_regressor [14, V]` overrides
    the file's `J_regressor_lsp14` and the derived fallback.
    """
    if gender not in GENDERS:
        raise BodyModelError(source, f"gender '{gender}' is not one of {GENDERS}")
    missing = [key for key in REQUIRED_KEYS if key not in arrays]
    if missing:
        raise BodyModelError(source, f"missing key '{missing[0]}' (all missing: {missing}); expected an SMPL model "
                                     f"with keys {', '.join(REQUIRED_KEYS)}")
    value = {key: as_array(arrays[key], source, key) for key in REQUIRED_KEYS}
    v_template = _checked(value["v_template"], source, "v_template", (None, 3), "rest-pose vertices in metres")
    num_vertices = v_template.shape[0]
    shapedirs = value["shapedirs"]
    if shapedirs.ndim == 3 and shapedirs.shape[2] > NUM_BETAS:
        shapedirs = shapedirs[:, :, :NUM_BETAS]
    shapedirs = _checked(shapedirs, source, "shapedirs", (num_vertices, 3, NUM_BETAS),
                         f"shape blend shapes (at least {NUM_BETAS} components)")
    posedirs = _checked(value["posedirs"], source, "posedirs", (num_vertices, 3, NUM_POSE_FEATURES),
                        "pose blend shapes driven by vec(R_j - I), joints 1..23")
    J_regressor = _checked(value["J_regressor"], source, "J_regressor", (NUM_JOINTS, num_vertices),
                           "the rest-joint regressor")
    weights = _checked(value["weights"], source, "weights", (num_vertices, NUM_JOINTS), "skinning weights")
    kintree = _checked(value["kintree_table"], source, "kintree_table", (2, NUM_JOINTS),
                       "row 0 = parent of each joint")
    parents = np.where(kintree[0] == KINTREE_ROOT_PARENT, -1, kintree[0]).astype(np.int64)
    if not np.array_equal(parents, joints.SMPL_PARENTS):
        raise BodyModelError(source, f"key 'kintree_table' row 0 is {parents.tolist()}, expected SMPL's parents "
                                     f"{joints.SMPL_PARENTS.tolist()} (root as -1 or {KINTREE_ROOT_PARENT})")
    faces = _checked(value["f"], source, "f", (None, 3), "triangle vertex indices")
    if faces.size and (not np.issubdtype(faces.dtype, np.integer) or faces.min() < 0 or faces.max() >= num_vertices):
        raise BodyModelError(source, f"key 'f' must hold integer vertex indices in [0, {num_vertices})")

    if PART_IDS_KEY in arrays:
        part_ids = _checked(as_array(arrays[PART_IDS_KEY], source, PART_IDS_KEY), source, PART_IDS_KEY,
                            (num_vertices,), "SMPL part id of each vertex")
        if part_ids.min() < 0 or part_ids.max() >= NUM_JOINTS:
            raise BodyModelError(source, f"key '{PART_IDS_KEY}' must hold part ids in [0, {NUM_JOINTS})")
    else:
        part_ids = _default_part_ids(weights)
    if lsp_regressor is None and LSP_REGRESSOR_KEY in arrays:
        lsp_regressor = as_array(arrays[LSP_REGRESSOR_KEY], source, LSP_REGRESSOR_KEY)
    if lsp_regressor is None:
        lsp_regressor = _default_lsp_regressor(J_regressor, v_template, part_ids)
    lsp_regressor = _checked(np.asarray(lsp_regressor), source, LSP_REGRESSOR_KEY, (len(joints.LSP_14), num_vertices),
                             "the LSP-14 joint regressor")
    return BodyModel(
        v_template=_frozen(v_template, np.float32), shapedirs=_frozen(shapedirs, np.float32),
        posedirs=_frozen(posedirs, np.float32), J_regressor=_frozen(J_regressor, np.float32),
        weights=_frozen(weights, np.float32), parents=_frozen(parents, np.int64), faces=_frozen(faces, np.int32),
        lsp_regressor=_frozen(lsp_regressor, np.float32), part_ids=_frozen(part_ids, np.int32), gender=gender,
        source=str(source))


def joint_model(model: BodyModel) -> BodyModel:
    """A small BodyModel whose `forward_numpy` gives the same 24 joints and the same LSP-14 joints as `model`, ~10x
    faster, for pipelines that need joints but not the mesh.

    Its vertices are only those the LSP regressor reads, plus 24 extra vertices that carry the rest joints as a
    function of betas (`J_regressor @ (v_template + shapedirs @ betas)` is linear in betas, so it is a template plus
    blend shapes of its own); its J_regressor picks those 24. Its faces are empty.
    """
    support = np.flatnonzero(np.abs(model.lsp_regressor).sum(axis=0) > 0)
    num = len(support)
    j_template = model.J_regressor @ model.v_template  # [24, 3]
    j_shapedirs = np.einsum("jv,vck->jck", model.J_regressor, model.shapedirs)  # [24, 3, 10]
    weights = np.zeros((NUM_JOINTS, NUM_JOINTS), np.float32)
    weights[:, 0] = 1.0  # the joint-carrying vertices are never read after skinning
    return BodyModel(
        v_template=_frozen(np.concatenate([model.v_template[support], j_template]), np.float32),
        shapedirs=_frozen(np.concatenate([model.shapedirs[support], j_shapedirs]), np.float32),
        posedirs=_frozen(np.concatenate([model.posedirs[support],
                                         np.zeros((NUM_JOINTS, 3, NUM_POSE_FEATURES), np.float32)]), np.float32),
        J_regressor=_frozen(np.concatenate([np.zeros((NUM_JOINTS, num), np.float32), np.eye(NUM_JOINTS)], 1),
                            np.float32),
        weights=_frozen(np.concatenate([model.weights[support], weights]), np.float32),
        parents=model.parents, faces=_frozen(np.zeros((0, 3), np.int32), np.int32),
        lsp_regressor=_frozen(np.concatenate([model.lsp_regressor[:, support],
                                              np.zeros((len(joints.LSP_14), NUM_JOINTS), np.float32)], 1),
                              np.float32),
        part_ids=_frozen(np.concatenate([model.part_ids[support], np.zeros(NUM_JOINTS, np.int32)]), np.int32),
        gender=model.gender, source=f"{model.source} (joints only)")


def _model_file_in(directory: Path, gender: str) -> Path:
    """The file for `gender` in `directory` (or its `smpl/` subfolder, as SMPL-X-style model folders have)."""
    for folder in (directory, directory / "smpl"):
        if not folder.is_dir():
            continue
        by_lower_name = {p.name.lower(): p for p in folder.iterdir() if p.is_file()}
        for name in MODEL_FILE_NAMES[gender]:
            if name.lower() in by_lower_name:
                return by_lower_name[name.lower()]
    raise BodyModelNotFoundError(directory, f"no {gender} body model file, expected one of "
                                            f"{', '.join(MODEL_FILE_NAMES[gender])}")


def _open_model_file(gender: str) -> Path:
    """The open body model's file for `gender`, written into the cache on first use."""
    directory = paths.body_model_dir()
    path = directory / MODEL_FILE_NAMES[gender][0]
    if not path.is_file():
        from mhr_tf.body import open_body  # the generator is only needed once per cache
        open_body.write_open_body_models(directory)
        if not path.is_file():
            raise BodyModelNotFoundError(path, "open_body.write_open_body_models did not write this file")
    return path


def load_body_model(path_or_dir: str | Path | None = None, gender: str = "neutral",
                    lsp_regressor_path: str | Path | None = None) -> BodyModel:
    """Load an SMPL-layout body model.

    `path_or_dir`: an official SMPL `.pkl` (read without chumpy), an `.npz` with the same keys, a directory with
    `SMPL_{NEUTRAL,MALE,FEMALE}.{npz,pkl}` or the official `basicModel_*_lbs_10_207_0_v1.*.pkl` names (chosen by
    `gender`), or None for the open body model (built into `mhr_tf.paths.body_model_dir()` on first use).
    `lsp_regressor_path`: a `.npy`/`.pkl` 14-joint LSP regressor or HMR's 19-joint cocoplus regressor (e.g. HMR's
    `neutral_smpl_with_cocoplus_reg.pkl`) to use for the 14 evaluation joints.
    """
    gender = str(gender).lower()
    if gender not in GENDERS:
        raise BodyModelError(path_or_dir or "open body model", f"gender '{gender}' is not one of {GENDERS}")
    if path_or_dir is None:
        path = _open_model_file(gender)
    else:
        path = Path(path_or_dir).expanduser()
        if path.is_dir():
            path = _model_file_in(path, gender)
    model = body_model_from_arrays(read_arrays(path), source=str(path), gender=gender)
    if lsp_regressor_path is not None:
        lsp_regressor = _read_lsp_regressor(Path(lsp_regressor_path).expanduser(), model.num_vertices)
        model = dataclasses.replace(model, lsp_regressor=_frozen(lsp_regressor, np.float32))
    return model


# ---------------------------------------------------------------------------------------------------------------
# numpy forward pass (float64 inside), for the simulator.

def _rodrigues_numpy(axis_angle: np.ndarray) -> np.ndarray:
    """[..., 3] axis-angle -> [..., 3, 3] rotation matrices, float64."""
    r = np.asarray(axis_angle, np.float64)
    angle = np.linalg.norm(r, axis=-1)[..., None, None]
    skew = np.zeros(r.shape[:-1] + (3, 3))
    skew[..., 0, 1], skew[..., 0, 2], skew[..., 1, 2] = -r[..., 2], r[..., 1], -r[..., 0]
    skew = skew - np.swapaxes(skew, -1, -2)
    safe = np.where(angle < SMALL_ANGLE_RAD, 1.0, angle)
    # sin(a)/a and (1 - cos a)/a^2, with their Taylor limits near 0.
    a = np.where(angle < SMALL_ANGLE_RAD, 1.0 - angle ** 2 / 6, np.sin(safe) / safe)
    b = np.where(angle < SMALL_ANGLE_RAD, 0.5 - angle ** 2 / 24, (1 - np.cos(safe)) / safe ** 2)
    return np.eye(3) + a * skew + b * skew @ skew


def _numpy_rotations(pose: np.ndarray) -> np.ndarray:
    pose = np.asarray(pose, np.float64)
    if pose.ndim == 4 and pose.shape[1:] == (NUM_JOINTS, 3, 3):
        return pose
    if pose.ndim == 2 and pose.shape[1] == 3 * NUM_JOINTS:
        pose = pose.reshape(-1, NUM_JOINTS, 3)
    if pose.ndim != 3 or pose.shape[1:] != (NUM_JOINTS, 3):
        raise ValueError(f"pose has shape {pose.shape}, expected [B, 72] or [B, 24, 3] axis-angle or "
                         "[B, 24, 3, 3] rotation matrices")
    return _rodrigues_numpy(pose)


def forward_numpy(model: BodyModel, betas: np.ndarray, pose: np.ndarray,
                  trans: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """SMPL in numpy: betas [B, 10], pose [B, 72] / [B, 24, 3] axis-angle (or [B, 24, 3, 3]), trans [B, 3] metres.

    Returns vertices [B, V, 3] and joints [B, 24, 3], float32, metres, in the model's frame (+ trans). The
    kinematic chain runs in float64; per-vertex work runs in the model's float32 as 2-D BLAS matmuls on a
    batch-last [V, 3, B] layout, which needs no copies of the model's arrays.
    """
    betas = np.asarray(betas, np.float64)
    if betas.ndim != 2 or betas.shape[1] != NUM_BETAS:
        raise ValueError(f"betas has shape {betas.shape}, expected [B, {NUM_BETAS}]")
    rotations = _numpy_rotations(pose)  # [B, 24, 3, 3] float64
    num_batch, num_vertices = betas.shape[0], model.num_vertices
    pose_feature = (rotations[:, 1:] - np.eye(3)).reshape(num_batch, NUM_POSE_FEATURES)
    v_posed = (model.v_template[:, :, None]
               + (model.shapedirs.reshape(-1, NUM_BETAS) @ betas.T.astype(np.float32)).reshape(num_vertices, 3, -1)
               + (model.posedirs.reshape(-1, NUM_POSE_FEATURES) @ pose_feature.T.astype(np.float32))
               .reshape(num_vertices, 3, -1))  # [V, 3, B]
    # Rest joints are linear in betas, as in body_constants.
    J_regressor = model.J_regressor.astype(np.float64)
    J_shapedirs = (J_regressor @ model.shapedirs.reshape(num_vertices, 3 * NUM_BETAS)).reshape(-1, 3, NUM_BETAS)
    rest_joints = J_regressor @ model.v_template + np.einsum("jck,bk->bjc", J_shapedirs, betas)  # [B, 24, 3]
    world_rot = np.empty_like(rotations)
    world_joints = np.empty_like(rest_joints)
    for j, parent in enumerate(model.parents):
        if parent < 0:
            world_rot[:, j], world_joints[:, j] = rotations[:, j], rest_joints[:, j]
        else:
            world_rot[:, j] = world_rot[:, parent] @ rotations[:, j]
            offset = rest_joints[:, j] - rest_joints[:, parent]
            world_joints[:, j] = world_joints[:, parent] + np.einsum("bik,bk->bi", world_rot[:, parent], offset)
    skin_translation = world_joints - np.einsum("bjik,bjk->bji", world_rot, rest_joints)
    transforms = np.concatenate([world_rot.reshape(num_batch, NUM_JOINTS, 9), skin_translation], axis=-1)
    transforms = transforms.transpose(1, 2, 0).reshape(NUM_JOINTS, 12 * num_batch).astype(np.float32)
    blended = (model.weights @ transforms).reshape(num_vertices, 12, num_batch)  # [V, 12, B]
    vertices = blended[:, 9:] + sum(blended[:, k:9:3] * v_posed[:, k:k + 1] for k in range(3))  # [V, 3, B]
    vertices = vertices.transpose(2, 0, 1)
    if trans is not None:
        trans = np.asarray(trans, np.float64)[:, None, :]
        vertices, world_joints = vertices + trans, world_joints + trans
    return vertices.astype(np.float32), world_joints.astype(np.float32)


# ---------------------------------------------------------------------------------------------------------------
# TensorFlow forward pass.

def body_constants(model: BodyModel) -> dict[str, Any]:
    """The tensors `smpl_forward` needs; products of fixed arrays are folded in float64.

    Per-vertex tensors are stored vertex-last ([.., 3, V]) so that the batched work is one large matmul per stage
    and elementwise ops run along contiguous vertices (about 2x faster on CPU than [V, 3] at SMPL's size).
    Rest joints are linear in betas, so `J_regressor @ v_shaped` is folded into `J_template + betas @ J_shapedirs`.
    `parents` stays a Python tuple: the kinematic chain is unrolled when the graph is built.
    """
    num_vertices = model.num_vertices
    J_regressor = model.J_regressor.astype(np.float64)
    J_template = J_regressor @ model.v_template  # [24, 3]
    J_shapedirs = np.einsum("jv,vck->kjc", J_regressor, model.shapedirs)  # [10, 24, 3]
    return {
        "v_template": tf.constant(model.v_template.T, tf.float32),  # [3, V]
        "shapedirs": tf.constant(model.shapedirs.transpose(2, 1, 0).reshape(NUM_BETAS, 3 * num_vertices),
                                 tf.float32),  # [10, 3 * V], (xyz, vertex) flattened
        "posedirs": tf.constant(model.posedirs.transpose(2, 1, 0).reshape(NUM_POSE_FEATURES, 3 * num_vertices),
                                tf.float32),  # [207, 3 * V]
        "J_template": tf.constant(J_template, tf.float32),  # [24, 3]
        "J_shapedirs": tf.constant(J_shapedirs.reshape(NUM_BETAS, NUM_JOINTS * 3), tf.float32),  # [10, 72]
        "weights": tf.constant(model.weights.T, tf.float32),  # [24, V]
        "lsp_regressor": tf.constant(model.lsp_regressor.T, tf.float32),  # [V, 14]
        "parents": tuple(int(p) for p in model.parents),
    }


def axis_angle_to_rotation_matrix(axis_angle: tf.Tensor) -> tf.Tensor:
    """[..., 3] axis-angle (radians) -> [..., 3, 3] rotation matrices, differentiable at the zero rotation.

    tensorflow-graphics needs a unit axis, undefined at angle 0; there the Taylor series I + K + K^2/2 (K = [r]x)
    takes over, and the other branch gets a harmless dummy input so neither branch's gradient is NaN.
    """
    axis_angle = tf.cast(axis_angle, tf.float32)
    squared_angle = tf.reduce_sum(tf.square(axis_angle), axis=-1, keepdims=True)  # [..., 1]
    small = squared_angle < SMALL_ANGLE_RAD ** 2
    angle = tf.sqrt(tf.where(small, tf.ones_like(squared_angle), squared_angle))
    unit_x = tf.constant([1.0, 0.0, 0.0], tf.float32)
    axis = tf.where(small, unit_x, axis_angle / angle)
    exact = rotation_matrix_3d.from_axis_angle(axis, angle)
    rx, ry, rz = tf.unstack(axis_angle, axis=-1)
    zero = tf.zeros_like(rx)
    skew = tf.reshape(tf.stack([zero, -rz, ry, rz, zero, -rx, -ry, rx, zero], axis=-1),
                      tf.concat([tf.shape(axis_angle)[:-1], [3, 3]], axis=0))
    series = tf.eye(3) + skew + 0.5 * tf.matmul(skew, skew)
    return tf.where(small[..., None], series, exact)


def _pose_to_rotations(pose: tf.Tensor) -> tf.Tensor:
    """pose [B, 72] / [B, 24, 3] axis-angle or [B, 24, 3, 3] rotation matrices -> [B, 24, 3, 3]."""
    pose = tf.cast(pose, tf.float32)
    shape = pose.shape
    if shape.rank == 4 and shape[1:] == (NUM_JOINTS, 3, 3):
        return pose
    if shape.rank == 2 and shape[1] == 3 * NUM_JOINTS:
        pose = tf.reshape(pose, [-1, NUM_JOINTS, 3])
    elif not (shape.rank == 3 and shape[1:] == (NUM_JOINTS, 3)):
        raise ValueError(f"pose has shape {shape}, expected [B, 72] or [B, 24, 3] axis-angle or [B, 24, 3, 3] "
                         "rotation matrices")
    return axis_angle_to_rotation_matrix(pose)


def smpl_forward(params: Mapping[str, Any], betas: tf.Tensor, pose: tf.Tensor,
                 trans: tf.Tensor | None = None) -> dict[str, tf.Tensor]:
    """SMPL's linear blend skinning in TF (float32). `params` is `body_constants(model)`.

    betas [B, 10]; pose [B, 24, 3] or [B, 72] axis-angle (radians) or [B, 24, 3, 3] rotation matrices;
    trans [B, 3] metres or None. B is any batch, e.g. clips x frames. Returns
    vertices [B, V, 3], joints [B, 24, 3] (SMPL_24) and joints14 [B, 14, 3] (LSP_14, from the vertices), metres.
    """
    betas = tf.cast(betas, tf.float32)
    rotations = _pose_to_rotations(pose)  # [B, 24, 3, 3]
    num_batch = tf.shape(betas)[0]
    num_vertices = params["v_template"].shape[1]
    v_shaped = params["v_template"] + tf.reshape(tf.matmul(betas, params["shapedirs"]),
                                                 [num_batch, 3, num_vertices])  # [B, 3, V]
    rest_joints = params["J_template"] + tf.reshape(tf.matmul(betas, params["J_shapedirs"]),
                                                    [num_batch, NUM_JOINTS, 3])  # [B, 24, 3]
    pose_feature = tf.reshape(rotations[:, 1:] - tf.eye(3), [num_batch, NUM_POSE_FEATURES])
    v_posed = v_shaped + tf.reshape(tf.matmul(pose_feature, params["posedirs"]), [num_batch, 3, num_vertices])

    # Kinematic chain: world rotation and position of each joint (parents come before children in SMPL's order).
    joint_rotations = tf.unstack(rotations, NUM_JOINTS, axis=1)
    joint_rest = tf.unstack(rest_joints, NUM_JOINTS, axis=1)
    world_rot, world_pos = [], []
    for j, parent in enumerate(params["parents"]):
        if parent < 0:
            world_rot.append(joint_rotations[j])
            world_pos.append(joint_rest[j])
        else:
            offset = joint_rest[j] - joint_rest[parent]  # [B, 3], the bone in the rest pose
            world_rot.append(tf.matmul(world_rot[parent], joint_rotations[j]))
            world_pos.append(world_pos[parent] + tf.linalg.matvec(world_rot[parent], offset))
    world_rot = tf.stack(world_rot, axis=1)  # [B, 24, 3, 3]
    posed_joints = tf.stack(world_pos, axis=1)  # [B, 24, 3]

    # Skinning transforms map rest-pose points to posed points: x -> R x + (joint - R rest_joint); each vertex
    # blends the 12 numbers of its joints' transforms: [B * 12, 24] @ [24, V].
    skin_translation = posed_joints - tf.linalg.matvec(world_rot, rest_joints)  # [B, 24, 3]
    transforms = tf.concat([tf.reshape(world_rot, [num_batch, NUM_JOINTS, 9]), skin_translation], axis=-1)
    transforms = tf.reshape(tf.transpose(transforms, [0, 2, 1]), [num_batch * 12, NUM_JOINTS])
    blended = tf.reshape(tf.matmul(transforms, params["weights"]), [num_batch, 12, num_vertices])
    # tf.split, not slicing: StridedSlice's gradient on [B, 12, V] costs ~5x the whole forward pass on CPU.
    blend_rot, blend_translation = tf.split(blended, [9, 3], axis=1)
    blend_rot = tf.reshape(blend_rot, [num_batch, 3, 3, num_vertices])  # [B, row, col, V]
    vertices = tf.reduce_sum(blend_rot * v_posed[:, None], axis=2) + blend_translation  # [B, 3, V]
    if trans is not None:
        trans = tf.cast(trans, tf.float32)
        vertices, posed_joints = vertices + trans[:, :, None], posed_joints + trans[:, None, :]
    joints14 = tf.reshape(tf.matmul(tf.reshape(vertices, [num_batch * 3, num_vertices]), params["lsp_regressor"]),
                          [num_batch, 3, len(joints.LSP_14)])
    return {"vertices": tf.transpose(vertices, [0, 2, 1]), "joints": posed_joints,
            "joints14": tf.transpose(joints14, [0, 2, 1])}


@keras.saving.register_keras_serializable(package="mhr_tf")
class SMPLLayer(keras.layers.Layer):
    """SMPL as a Keras layer: `layer(betas, pose, trans=None)` -> dict(vertices, joints, joints14).

    The body model's arrays are graph constants, not weights: nothing to train or checkpoint; the config names the
    model file, so `from_config` rebuilds the same layer.
    """

    def __init__(self, model_path: str | None = None, gender: str = "neutral", **kwargs):
        super().__init__(**kwargs)
        self.model_path = None if model_path is None else str(model_path)
        self.gender = gender
        self.body_model = load_body_model(self.model_path, gender)
        self._constants = body_constants(self.body_model)

    def call(self, betas, pose, trans=None):
        return smpl_forward(self._constants, betas, pose, trans)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"model_path": self.model_path, "gender": self.gender})
        return config
