"""The open body model: a procedurally generated humanoid in SMPL's file layout and kinematics.

Anyone may use it (it is built here from a handful of numbers, no scan data). It has SMPL's 24 joints in
SMPL's kinematic tree and order, 72 pose parameters, 10 shape components, smooth skinning weights, a closed
(watertight, outward-oriented) triangle surface, a `J_regressor`, SMPL's 24 part ids per vertex and a regressor
for the 14 LSP evaluation joints. Files are written with SMPL's `.npz` keys, so the loader in `smpl.py` reads it
exactly like the official files.

How it is built (deterministic, no randomness at all; a few seconds for three genders):
1. A skeleton: SMPL's neutral rest T-pose joint template (y up, the body faces +z, the person's left is +x),
   rescaled and widened per gender.
2. A smooth implicit surface around it (soft union of round cones and ellipsoids along the bones, a lofted
   torso, hands, feet and a head), meshed with marching cubes, then relaxed tangentially and projected back
   onto the implicit surface so the triangles are even.
3. Skinning weights: each vertex is labelled with the part whose bone it is nearest to, and the one-hot labels
   are diffused over the surface (heat diffusion), so weights blend smoothly across every joint and never leak
   between parts that are close in space but far along the surface (the two thighs).
4. `J_regressor`: each joint is a weighted average of the vertices around it; the Gaussian weights are tilted
   (maximum entropy) so that the rest-pose average is exactly the designed joint. Shape changes move that
   patch of surface and so move the joint with it.
5. Shape blend shapes: ten smooth displacement fields named in `SHAPE_COMPONENTS` (bones stretched, parts
   swollen radially, weighted by the skinning weights), orthogonalised in order like a PCA basis.
6. Pose blend shapes (`posedirs`) are zero: plain linear blend skinning, no correctives.
"""
from __future__ import annotations

import io
import pathlib
import zipfile

import numpy as np
import scipy.interpolate
import scipy.sparse
import scipy.sparse.csgraph
import scipy.sparse.linalg

from mhr_tf.body import joints as joint_sets
from mhr_tf.body.open_body_surface import (HEAD_TOP_Y, PROPORTIONS, SMPL_NEUTRAL_REST_JOINTS, SOLE_Y,  # noqa: F401
                                          VOXEL_M, _BodyShape, _mesh_surface, _norm,
                                          _vertex_adjacency)

GENDERS = ("neutral", "male", "female")
MODEL_FILE_NAMES = {"neutral": "SMPL_NEUTRAL.npz", "male": "SMPL_MALE.npz", "female": "SMPL_FEMALE.npz"}

NUM_JOINTS = len(joint_sets.SMPL_24)
NUM_BETAS = 10  # SMPL's shapedirs [V, 3, 10]
NUM_POSE_BLEND = 9 * (NUM_JOINTS - 1)  # SMPL posedirs: flattened (R_j - I) of joints 1..23 -> 207
ROOT_PARENT = 2**32 - 1  # kintree_table[0, 0] in the official SMPL files (uint32 -1)

# The ten shape components, in the order of the betas, each orthogonalised against the ones before it like a PCA
# basis. Per unit beta (about one standard deviation of adults), before orthogonalisation: height: every length
# +4% (~7 cm taller); girth: torso +10% and limbs +5-8% in radius; leg_length: legs +5% (after removing height:
# longer legs and a shorter torso at the same stature, so -leg_length is the torso-length axis); arm_length: arms
# +5%; shoulder_width: shoulders 1.5 cm further out each side and a broader upper torso; hip_width: hips 1.2 cm
# further out and a 10% wider pelvis; head_size: head +7%; belly: the abdomen 3 cm forward; limb_girth: arms and
# legs +8-10% in radius; chest: chest depth +8% and breadth +4% (after removing girth: chest against waist).
SHAPE_COMPONENTS = ("height", "girth", "leg_length", "arm_length", "shoulder_width", "hip_width", "head_size",
                    "belly", "limb_girth", "chest")

# Skinning: heat-diffusion time of the one-hot part labels, in squared voxels; both sides of a joint then keep
# over 20% weight across a band ~3 cm wide. Weights below WEIGHT_FLOOR are dropped (SMPL's are sparse too).
SKIN_DIFFUSION_TIME = 6.0
WEIGHT_FLOOR = 1e-3


def _mirror(name: str) -> str:
    return "right_" + name[5:] if name.startswith("left_") else name


# --------------------------------------------------------------------------------------------------------------
# Skeleton
# --------------------------------------------------------------------------------------------------------------

def _skeleton(gender: str) -> dict[str, np.ndarray]:
    """Named points of one gender's rest skeleton: the 24 SMPL joints plus landmarks (tips, heel, crotch)."""
    props = PROPORTIONS[gender]
    neutral = {}
    for name, xyz in SMPL_NEUTRAL_REST_JOINTS.items():
        neutral[name] = np.array(xyz, dtype=np.float64)
        if name.startswith("left_"):
            neutral[_mirror(name)] = np.array(xyz, dtype=np.float64) * (-1.0, 1.0, 1.0)
    landmarks_left = {  # neutral, left side; x of the tip follows the bone it ends
        "left_finger_tip": (0.865, 0.205, -0.06), "left_toe_tip": (0.125, -1.14, 0.175),
        "left_heel": (0.09, SOLE_Y + 0.036, -0.045),
    }
    for name, xyz in landmarks_left.items():
        neutral[name] = np.array(xyz, dtype=np.float64)
        neutral[_mirror(name)] = np.array(xyz, dtype=np.float64) * (-1.0, 1.0, 1.0)
    neutral["head_top"] = np.array((0.0, HEAD_TOP_Y, 0.025))
    neutral["crotch"] = np.array((0.0, -0.40, 0.01))

    origin = neutral["pelvis"]
    points = {name: origin + props.scale * (p - origin) for name, p in neutral.items()}
    for side, sign in (("left_", 1.0), ("right_", -1.0)):
        for part in ("shoulder", "elbow", "wrist", "hand", "finger_tip"):
            points[side + part] = points[side + part] + (sign * props.shoulder_dx, 0.0, 0.0)
        for part in ("hip", "knee", "ankle", "foot", "toe_tip", "heel"):
            points[side + part] = points[side + part] + (sign * props.hip_dx, 0.0, 0.0)
    return points


def _joint_array(points: dict[str, np.ndarray]) -> np.ndarray:
    return np.stack([points[n] for n in joint_sets.SMPL_24])  # [24, 3] metres


# --------------------------------------------------------------------------------------------------------------
# Skinning weights and parts
# --------------------------------------------------------------------------------------------------------------

# Where each joint's body part ends: its child joint, or a tip of the skeleton (see _skeleton).
_TRUNK_PART_END = {"pelvis": "crotch", "spine1": "spine2", "spine2": "spine3", "spine3": "neck", "neck": "head",
                   "head": "head_top"}
_LIMB_PART_END = {"hip": "knee", "knee": "ankle", "ankle": "foot", "foot": "toe_tip", "collar": "shoulder",
                  "shoulder": "elbow", "elbow": "wrist", "wrist": "hand", "hand": "finger_tip"}
# A limb's part starts at its joint: distance behind the joint counts this much extra when labelling vertices.
_BEHIND_JOINT_PENALTY = 1.5


def _part_end(name: str) -> str:
    if name in _TRUNK_PART_END:
        return _TRUNK_PART_END[name]
    side, part = name.split("_", 1)
    return f"{side}_{_LIMB_PART_END[part]}"


def _labelling_segment(name: str, points: dict) -> tuple[np.ndarray, np.ndarray, float]:
    """(start, end, penalty behind the start) of the segment whose nearest vertices belong to joint `name`."""
    if name in _TRUNK_PART_END or name.endswith("_collar"):
        return points[name], points[_part_end(name)], 0.0
    start = points[name.replace("ankle", "heel")]  # the heel, behind the ankle, turns with the foot
    return start, points[_part_end(name)], _BEHIND_JOINT_PENALTY


def _segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray, behind_penalty: float) -> np.ndarray:
    ab = b - a
    length2 = ab.dot(ab)
    t = np.einsum("ij,j->i", p - a, ab) / length2
    closest = a + np.clip(t, 0.0, 1.0)[:, None] * ab
    return np.hypot(_norm(p - closest), behind_penalty * np.sqrt(length2) * np.maximum(-t, 0.0))


def _uniform_laplacian(faces: np.ndarray, num_vertices: int) -> scipy.sparse.csc_matrix:
    adjacency = _vertex_adjacency(faces, num_vertices)
    degree = np.asarray(adjacency.sum(axis=1)).ravel()
    return (scipy.sparse.diags(degree) - adjacency).tocsc()


def _skinning_weights(verts: np.ndarray, faces: np.ndarray, points: dict) -> np.ndarray:
    """weights [V, 24]: nearest-bone labels diffused over the surface, floored and renormalised."""
    distance = np.stack([_segment_distance(verts, *_labelling_segment(name, points))
                         for name in joint_sets.SMPL_24], axis=1)
    # Consecutive trunk segments share an end point, so some vertices are exactly as far from both; a nanometre
    # bias gives such ties to the earlier joint instead of to the last bit of rounding.
    labels = (distance + 1e-9 * np.arange(NUM_JOINTS)).argmin(axis=1)
    onehot = np.zeros((len(verts), NUM_JOINTS))
    onehot[np.arange(len(verts)), labels] = 1.0
    laplacian = _uniform_laplacian(faces, len(verts))
    # One implicit heat step (I + t L) W = W0 (unconditionally stable); t is rescaled from voxels to edges so
    # the blend width is set in metres, whatever the triangle size.
    edges = verts[faces] - verts[np.roll(faces, 1, axis=1)]
    mean_edge = np.linalg.norm(edges, axis=2).mean()
    time = SKIN_DIFFUSION_TIME * (VOXEL_M / mean_edge) ** 2
    solve = scipy.sparse.linalg.splu((scipy.sparse.identity(len(verts), format="csc") + time * laplacian).tocsc())
    weights = solve.solve(onehot)
    weights[weights < WEIGHT_FLOOR] = 0.0
    return weights / weights.sum(axis=1, keepdims=True)


# --------------------------------------------------------------------------------------------------------------
# Joint regressors
# --------------------------------------------------------------------------------------------------------------

def _tilted_average_weights(verts: np.ndarray, target: np.ndarray, radius: float) -> np.ndarray:
    """Non-negative weights summing to 1 over the vertices within `radius` of `target`, Gaussian in distance,
    exponentially tilted (maximum entropy) so their weighted mean is exactly `target`. Empty if `target` is not
    inside the patch's convex hull."""
    offset = verts - target
    dist2 = (offset * offset).sum(axis=1)
    near = np.flatnonzero(dist2 < radius * radius)
    if len(near) < 4:
        return np.zeros(0)
    prior = np.exp(-dist2[near] / (2.0 * (0.5 * radius) ** 2))
    x = offset[near]
    tilt = np.zeros(3)
    for _ in range(60):
        logits = np.log(prior) + np.einsum("ij,j->i", x, tilt)
        w = np.exp(logits - logits.max())
        w /= w.sum()
        mean = np.einsum("i,ij->j", w, x)
        if np.abs(mean).max() < 1e-10:
            out = np.zeros(len(verts))
            out[near] = w
            return out
        cov = np.einsum("i,ij,ik->jk", w, x, x) - np.outer(mean, mean)
        step = np.linalg.solve(cov + 1e-12 * np.eye(3), mean)
        # Damped Newton on the convex log-partition function: no weight's logit moves by more than ~30 a step.
        scale = min(1.0, 30.0 / max(np.abs(step).max() * radius, 1e-12))
        tilt -= scale * step
    return np.zeros(0)


def _joint_regressor(verts: np.ndarray, joints_rest: np.ndarray) -> np.ndarray:
    """J_regressor [24, V]: each row is a patch of vertices around the joint whose weighted mean is the joint."""
    rows = []
    for name, target in zip(joint_sets.SMPL_24, joints_rest):
        for radius in (0.06, 0.08, 0.10, 0.13, 0.17, 0.22):
            row = _tilted_average_weights(verts, target, radius)
            if len(row):
                break
        else:
            raise RuntimeError(f"open body model: joint {name!r} at {target} is not surrounded by the surface")
        rows.append(row)
    return np.stack(rows)


def _head_top_weights(verts: np.ndarray, part_ids: np.ndarray) -> np.ndarray:
    """The LSP head top: a small Gaussian patch at the crown of the head part."""
    head = part_ids == joint_sets.SMPL_24.index("head")
    top = verts[head, 1].max()
    depth = top - verts[:, 1]
    row = np.where(head & (depth < 0.02), np.exp(-(depth / 0.01) ** 2), 0.0)
    return row / row.sum()


# --------------------------------------------------------------------------------------------------------------
# Shape blend shapes
# --------------------------------------------------------------------------------------------------------------

def _chain(points: dict, names: list[str], stretch: float, delta: dict) -> None:
    """Lengthen every bone along `names` by `stretch` (relative); later points move with earlier ones."""
    carried = delta[names[0]].copy()
    for parent, name in zip(names[:-1], names[1:]):
        carried = carried + stretch * (points[name] - points[parent])
        delta[name] = delta[name] + carried


def _descendants(name: str) -> list[str]:
    idx = joint_sets.SMPL_24.index(name)
    out, frontier = [], [idx]
    while frontier:
        kids = [int(k) for k in np.flatnonzero(np.isin(joint_sets.SMPL_PARENTS, frontier))]
        out.extend(joint_sets.SMPL_24[k] for k in kids)
        frontier = kids
    return out


_TIPS = {"left_hand": "left_finger_tip", "right_hand": "right_finger_tip", "left_foot": "left_toe_tip",
         "right_foot": "right_toe_tip", "head": "head_top"}


def _translate_subtree(root: str, shift, delta: dict) -> None:
    for name in [root] + _descendants(root):
        delta[name] = delta[name] + shift
        if name in _TIPS:
            delta[_TIPS[name]] = delta[_TIPS[name]] + shift
        if name.endswith("_ankle"):
            delta[name.replace("ankle", "heel")] = delta[name.replace("ankle", "heel")] + shift


def _component_skeleton(component: str, points: dict) -> tuple[dict, dict]:
    """Per unit beta of `component`: displacement of every named skeleton point (metres) and per-part radial
    scaling (relative, per axis, of the offset from the bone)."""
    delta = {name: np.zeros(3) for name in points}
    radial = {name: np.zeros(3) for name in joint_sets.SMPL_24}
    torso = ("pelvis", "spine1", "spine2", "spine3")
    sides = (("left_", 1.0), ("right_", -1.0))
    if component == "height":
        for name, p in points.items():
            delta[name] = 0.04 * (p - points["pelvis"])
        for name in radial:
            radial[name][:] = 0.015
    elif component == "girth":
        for name in torso:
            radial[name][:] = 0.10
        for side, _ in sides:
            for part, g in (("hip", 0.08), ("knee", 0.05), ("collar", 0.07), ("shoulder", 0.07), ("elbow", 0.045)):
                radial[side + part][:] = g
        radial["neck"][:] = 0.05
    elif component == "leg_length":
        for side, _ in sides:
            _chain(points, [side + "hip", side + "knee", side + "ankle"], 0.05, delta)
            for name in ("foot", "toe_tip", "heel"):
                delta[side + name] = delta[side + "ankle"].copy()
    elif component == "arm_length":
        for side, _ in sides:
            _chain(points, [side + n for n in ("shoulder", "elbow", "wrist", "hand", "finger_tip")], 0.05, delta)
    elif component == "shoulder_width":
        for side, sign in sides:
            _translate_subtree(side + "shoulder", np.array((sign * 0.015, 0.0, 0.0)), delta)
            delta[side + "collar"] = delta[side + "collar"] + (sign * 0.008, 0.0, 0.0)
            radial[side + "collar"][:] = (0.0, 0.03, 0.03)
        radial["spine3"][:] = (0.09, 0.0, 0.0)
        radial["spine2"][:] = (0.04, 0.0, 0.0)
    elif component == "hip_width":
        for side, sign in sides:
            _translate_subtree(side + "hip", np.array((sign * 0.012, 0.0, 0.0)), delta)
            radial[side + "hip"][:] = (0.04, 0.0, 0.02)
        radial["pelvis"][:] = (0.10, 0.0, 0.03)
        radial["spine1"][:] = (0.04, 0.0, 0.0)
    elif component == "head_size":
        delta["head_top"] = 0.07 * (points["head_top"] - points["head"])
        radial["head"][:] = 0.07
        radial["neck"][:] = 0.02
    elif component == "limb_girth":
        for side, _ in sides:
            for part, g in (("hip", 0.09), ("knee", 0.08), ("shoulder", 0.10), ("elbow", 0.08)):
                radial[side + part][:] = g
    elif component == "chest":
        for name, g in (("spine2", (0.02, 0.0, 0.04)), ("spine3", (0.04, 0.0, 0.08))):
            radial[name][:] = g
        for side, _ in sides:
            radial[side + "collar"][:] = (0.0, 0.03, 0.06)
    elif component != "belly":
        raise ValueError(f"unknown shape component {component!r}; expected one of {SHAPE_COMPONENTS}")
    return delta, radial


def _shape_direction(component: str, verts: np.ndarray, weights: np.ndarray, points: dict) -> np.ndarray:
    """Displacement [V, 3] (metres per unit beta) of one shape component before orthogonalisation."""
    if component == "belly":
        # Push the front of the abdomen forward: a smooth bump centred below the navel, on the front half only.
        centre = points["spine1"] + np.array((0.0, 0.01, 0.0))
        rel = verts - centre
        profile = np.exp(-(rel[:, 1] / 0.11) ** 2 - (rel[:, 0] / 0.12) ** 2)
        front = 1.0 / (1.0 + np.exp(-(rel[:, 2] - 0.02) / 0.03))
        torso = weights[:, [joint_sets.SMPL_24.index(n) for n in ("pelvis", "spine1", "spine2")]].sum(axis=1)
        amount = 0.03 * profile * front * torso
        return np.stack([0.25 * amount * np.tanh(rel[:, 0] / 0.05), np.zeros_like(amount), amount], axis=1)
    delta, radial = _component_skeleton(component, points)
    direction = np.zeros_like(verts)
    for j, name in enumerate(joint_sets.SMPL_24):
        w = weights[:, j]
        active = w > 0
        end = _part_end(name)
        a, b = points[name], points[end]
        ab = b - a
        rel = verts[active] - a
        t = np.einsum("ij,j->i", rel, ab) / ab.dot(ab)
        along = delta[name] + np.clip(t, 0.0, 1.0)[:, None] * (delta[end] - delta[name])
        perp = rel - t[:, None] * ab
        direction[active] += w[active, None] * (along + radial[name] * perp)
    return direction


def _shape_blend_shapes(verts: np.ndarray, weights: np.ndarray, points: dict) -> np.ndarray:
    """shapedirs [V, 3, 10]: the components orthogonalised in order (Gram-Schmidt over the flattened
    displacements), each keeping its own size, like SMPL's PCA basis scaled by its standard deviations."""
    def dot(a, b):  # einsum, not BLAS: a fixed summation order whatever the thread count (same bytes)
        return float(np.einsum("i,i->", a, b))

    units, columns = [], []
    for component in SHAPE_COMPONENTS:
        d = _shape_direction(component, verts, weights, points).ravel()
        size = np.sqrt(dot(d, d))
        for q in units:
            d = d - dot(d, q) * q
        units.append(d / np.sqrt(dot(d, d)))
        columns.append(size * units[-1])
    return np.stack(columns, axis=1).reshape(len(verts), 3, NUM_BETAS)


# --------------------------------------------------------------------------------------------------------------
# The model and its files
# --------------------------------------------------------------------------------------------------------------

def build_open_body_model(gender: str = "neutral") -> dict[str, np.ndarray]:
    """The open body model of `gender` as a dict with SMPL's keys (see the module docstring).

    v_template [V,3] float64 metres; shapedirs [V,3,10]; posedirs [V,3,207] (zeros); J_regressor [24,V];
    weights [V,24]; kintree_table [2,24] int64 (root parent 2**32-1); f [F,3] int32; part_ids [V] int32;
    J_regressor_lsp14 [14,V].
    """
    if gender not in GENDERS:
        raise ValueError(f"open body model: gender {gender!r} is not one of {GENDERS}")
    points = _skeleton(gender)
    field = _BodyShape(points=points, props=PROPORTIONS[gender])
    verts, faces = _mesh_surface(field)
    weights = _skinning_weights(verts, faces, points)
    part_ids = weights.argmax(axis=1).astype(np.int32)
    joints_rest = _joint_array(points)
    j_regressor = _joint_regressor(verts, joints_rest)
    lsp_rows = []
    for name, smpl_index in zip(joint_sets.LSP_14, joint_sets.lsp_from_smpl_indices()):
        lsp_rows.append(_head_top_weights(verts, part_ids) if name == "head_top" else j_regressor[smpl_index])
    kintree = np.stack([joint_sets.SMPL_PARENTS, np.arange(NUM_JOINTS)]).astype(np.int64)
    kintree[0, 0] = ROOT_PARENT
    return {
        "v_template": verts,
        "shapedirs": _shape_blend_shapes(verts, weights, points),
        "posedirs": np.zeros((len(verts), 3, NUM_POSE_BLEND)),
        "J_regressor": j_regressor,
        "weights": weights,
        "kintree_table": kintree,
        "f": faces.astype(np.int32),
        "part_ids": part_ids,
        "J_regressor_lsp14": np.stack(lsp_rows),
    }


def save_npz_deterministic(path: pathlib.Path, arrays: dict[str, np.ndarray]) -> None:
    """Like np.savez_compressed, but byte-identical for identical arrays: np.savez stamps every zip member with
    the current time, so members here carry a fixed date (1980-01-01, the zip epoch)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for key in sorted(arrays):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(arrays[key]), allow_pickle=False)
            info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, buffer.getvalue())


def write_open_body_models(directory) -> dict[str, pathlib.Path]:
    """Build the three genders and write `SMPL_{NEUTRAL,MALE,FEMALE}.npz` into `directory`; returns the paths."""
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for gender in GENDERS:
        path = directory / MODEL_FILE_NAMES[gender]
        # Write then rename, so a reader never sees a half-written model.
        partial = path.with_name(path.name + ".partial")
        save_npz_deterministic(partial, build_open_body_model(gender))
        partial.replace(path)
        paths[gender] = path
    return paths
