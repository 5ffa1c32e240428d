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

import dataclasses
import functools
import io
import pathlib
import zipfile

import numpy as np
import scipy.interpolate
import scipy.sparse
import scipy.sparse.csgraph
import scipy.sparse.linalg
from skimage import measure

from mhr_tf.body import joints as joint_sets

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

# SMPL's neutral rest T-pose joints for a ~1.7 m adult (J_regressor @ v_template of the official neutral model,
# to ~1-2 cm: symmetrised, rounded, and cross-checked against public SMPL-derived skeletons, e.g. the male bone
# offsets in PHC's smpl_humanoid.xml). Left side only; the right is the mirror image x -> -x. Metres, y up, face +z.
SMPL_NEUTRAL_REST_JOINTS = {
    "pelvis": (0.0, -0.22, 0.03), "left_hip": (0.07, -0.31, 0.02), "spine1": (0.0, -0.11, 0.0),
    "left_knee": (0.11, -0.70, 0.03), "spine2": (0.0, 0.02, 0.03), "left_ankle": (0.09, -1.09, -0.01),
    "spine3": (0.0, 0.07, 0.03), "left_foot": (0.12, -1.14, 0.12), "neck": (0.0, 0.29, -0.01),
    "left_collar": (0.08, 0.20, -0.01), "head": (0.0, 0.35, 0.05), "left_shoulder": (0.17, 0.23, -0.02),
    "left_elbow": (0.43, 0.21, -0.04), "left_wrist": (0.68, 0.22, -0.05), "left_hand": (0.76, 0.21, -0.06),
}
SOLE_Y = -1.16  # the neutral template's soles, metres
HEAD_TOP_Y = 0.55  # the neutral template's crown, metres

# Meshing: voxel edge for marching cubes (gives ~6-7k vertices, SMPL has 6890) and the tangential relaxation.
VOXEL_M = 0.019
_GRID_Z_M = (-0.20, 0.22)  # the body's depth range (back of the buttocks to the toes), before the margin
_GRID_MARGIN_M = 0.06
RELAX_ITERATIONS = 8
RELAX_STEP = 0.35
# Skinning: heat-diffusion time of the one-hot part labels, in squared voxels; both sides of a joint then keep
# over 20% weight across a band ~3 cm wide. Weights below WEIGHT_FLOOR are dropped (SMPL's are sparse too).
SKIN_DIFFUSION_TIME = 6.0
WEIGHT_FLOOR = 1e-3


@dataclasses.dataclass(frozen=True)
class Proportions:
    """How one gender's body differs from the neutral one (multipliers on the neutral numbers)."""
    scale: float  # all lengths, about the pelvis
    shoulder_dx: float  # metres added to each shoulder's distance from the midline
    hip_dx: float  # metres added to each hip's distance from the midline
    chest: float  # multiplies the chest's width and depth
    waist: float  # multiplies the waist's width
    hips: float  # multiplies the pelvis's width
    bust: float  # size of the breasts (0 = none, 1 = female)
    limb: float  # multiplies limb radii


PROPORTIONS = {
    "neutral": Proportions(scale=1.0, shoulder_dx=0.0, hip_dx=0.0, chest=1.0, waist=1.0, hips=1.0, bust=0.35,
                           limb=1.0),
    # SMPL's male template is ~4% longer-limbed and broader at the shoulders; the female ~5% smaller with a
    # narrower waist and wider hips.
    "male": Proportions(scale=1.04, shoulder_dx=0.012, hip_dx=-0.006, chest=1.06, waist=1.02, hips=0.95, bust=0.0,
                        limb=1.06),
    "female": Proportions(scale=0.95, shoulder_dx=-0.012, hip_dx=0.006, chest=0.95, waist=0.88, hips=1.07,
                          bust=1.0, limb=0.93),
}

# The lofted torso: cross-sections (superellipses) from the crotch to the base of the neck, neutral body.
# Columns: y (m), half-width along x (m), half-depth along z (m), centre z (m).
_TORSO_SECTIONS = np.array([
    [-0.420, 0.055, 0.060, 0.000],
    [-0.370, 0.140, 0.095, -0.005],
    [-0.300, 0.172, 0.108, -0.008],
    [-0.220, 0.166, 0.104, 0.000],
    [-0.130, 0.146, 0.097, 0.012],
    [-0.050, 0.142, 0.098, 0.018],
    [0.040, 0.150, 0.104, 0.020],
    [0.120, 0.160, 0.110, 0.018],
    [0.190, 0.162, 0.102, 0.004],
    [0.245, 0.135, 0.080, -0.012],
    [0.290, 0.062, 0.055, -0.015],
])
_TORSO_EXPONENT = 2.5  # superellipse: torso sections are boxier than ellipses

# Parts of the implicit surface are evaluated only near their bones (see _BodyShape._culled).
_CULL_MARGIN_M = 0.16
_FAR_M = 1.0


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
# Implicit surface: signed distance-like fields, negative inside
# --------------------------------------------------------------------------------------------------------------

def _norm(x: np.ndarray) -> np.ndarray:
    """Row norms of [N, 3] (einsum: several times faster than np.linalg.norm(axis=1) here)."""
    return np.sqrt(np.einsum("ij,ij->i", x, x))


def _round_cone(p: np.ndarray, a, b, ra: float, rb: float, squash=(1.0, 1.0, 1.0)) -> np.ndarray:
    """Capsule from a to b whose radius goes linearly from ra to rb; `squash` scales space per axis first."""
    s = np.asarray(squash)
    a, b = np.asarray(a) / s, np.asarray(b) / s
    q = p / s
    ab = b - a
    t = np.clip(np.einsum("ij,j->i", q - a, ab) / ab.dot(ab), 0.0, 1.0)
    return _norm(q - (a + t[:, None] * ab)) - (ra + t * (rb - ra))


def _ellipsoid(p: np.ndarray, centre, radii) -> np.ndarray:
    """Ellipsoid distance bound (k0 (k0 - 1) / k1): exact sign, close to the distance near the surface."""
    q = p - np.asarray(centre)
    r = np.asarray(radii, dtype=np.float64)
    k0 = _norm(q / r)
    k1 = np.maximum(_norm(q / (r * r)), 1e-12)
    return k0 * (k0 - 1.0) / k1


def _round_box(p: np.ndarray, centre, half, rounding: float) -> np.ndarray:
    q = np.abs(p - np.asarray(centre)) - (np.asarray(half) - rounding)
    return (_norm(np.maximum(q, 0.0)) + np.minimum(q.max(axis=1), 0.0) - rounding)


def _smooth_union(d1: np.ndarray, d2: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth minimum: the two surfaces blend within distance ~k of each other."""
    h = np.clip(0.5 + 0.5 * (d2 - d1) / k, 0.0, 1.0)
    return d2 + (d1 - d2) * h - k * h * (1.0 - h)


def _smooth_max(d1: np.ndarray, d2: np.ndarray, k: float) -> np.ndarray:
    return -_smooth_union(-d1, -d2, k)


@dataclasses.dataclass(frozen=True)
class _BodyShape:
    """The implicit surface of one gender's body."""
    points: dict
    props: Proportions

    @functools.cached_property
    def torso_profile(self) -> tuple[np.ndarray, scipy.interpolate.PchipInterpolator]:
        """Section heights [S] and an interpolator y -> (half-width, half-depth, centre z) [N, 3], metres."""
        props, scale = self.props, self.props.scale
        y0 = SMPL_NEUTRAL_REST_JOINTS["pelvis"][1]
        y = _TORSO_SECTIONS[:, 0]
        # Per-gender widths: chest above the waist, waist around the navel, hips below.
        width = np.interp(y, [-0.42, -0.30, -0.13, 0.0, 0.12, 0.29],
                          [props.hips, props.hips, props.waist, 0.5 * (props.waist + props.chest), props.chest,
                           props.chest])
        depth = np.interp(y, [-0.42, 0.0, 0.12, 0.29], [1.0, 1.0, props.chest, 1.0])
        ys = y0 + scale * (y - y0)
        sections = scale * np.stack([_TORSO_SECTIONS[:, 1] * width, _TORSO_SECTIONS[:, 2] * depth,
                                     _TORSO_SECTIONS[:, 3]], axis=1)
        # Monotone cubic: smooth, and never overshoots between sections (no bulges the table does not ask for).
        return ys, scipy.interpolate.PchipInterpolator(ys, sections, axis=0)

    def __call__(self, p: np.ndarray) -> np.ndarray:
        """Field at points `p [N, 3]` (metres): negative inside the body."""
        pt, s = self.points, self.props.scale
        body = _smooth_union(self._torso(p), self._culled(self._head, p, ("neck", "head", "head_top")), 0.04)
        # Each limb is one field; the two sides meet through a hard minimum so the thighs never web together.
        legs = [self._culled(self._leg, p, [side + n for n in ("hip", "knee", "ankle", "heel", "toe_tip")], side)
                for side in ("left_", "right_")]
        body = _smooth_union(body, np.minimum(*legs), 0.035)
        for side, sign in (("left_", 1.0), ("right_", -1.0)):  # trapezius: the slope from neck to shoulder
            body = _smooth_union(body, _round_cone(p, pt["neck"] + s * np.array((sign * 0.03, -0.04, -0.025)),
                                                   pt[side + "shoulder"] + s * np.array((-sign * 0.03, 0.01, -0.005)),
                                                   0.042 * s, 0.05 * s), 0.03)
        arms = [self._culled(self._arm, p, [side + n for n in ("shoulder", "elbow", "wrist", "finger_tip")], side)
                for side in ("left_", "right_")]
        return _smooth_union(body, np.minimum(*arms), 0.03)

    def _culled(self, part, p: np.ndarray, names, *args) -> np.ndarray:
        """`part(p, *args)` evaluated only inside the box around the named skeleton points (grown by
        _CULL_MARGIN_M); elsewhere _FAR_M. Far from a part its exact value never matters: blends reach only
        ~4 cm and meshing only needs exact values within a few voxels of the surface."""
        corners = np.stack([self.points[n] for n in names])
        lo, hi = corners.min(axis=0) - _CULL_MARGIN_M, corners.max(axis=0) + _CULL_MARGIN_M
        inside = np.flatnonzero(((p >= lo) & (p <= hi)).all(axis=1))
        out = np.full(len(p), _FAR_M)
        out[inside] = part(p[inside], *args)
        return out

    def _torso(self, p: np.ndarray) -> np.ndarray:
        """The lofted superellipse torso from crotch to neck, with buttocks, pectorals and breasts."""
        pt, props = self.points, self.props
        s = props.scale
        ys, profile = self.torso_profile
        a, b, zc = profile(np.clip(p[:, 1], ys[0], ys[-1])).T
        n = _TORSO_EXPONENT
        k0 = (np.abs(p[:, 0] / a) ** n + np.abs((p[:, 2] - zc) / b) ** n) ** (1.0 / n)
        torso = np.maximum((k0 - 1.0) * np.minimum(a, b), np.maximum(ys[0] - p[:, 1], p[:, 1] - ys[-1]))
        for sign in (1.0, -1.0):
            torso = _smooth_union(torso, _ellipsoid(p, pt["pelvis"] + s * np.array((sign * 0.065, -0.10, -0.075)),
                                                    s * np.array((0.085, 0.095, 0.065)) * props.hips), 0.03)
            torso = _smooth_union(torso, _ellipsoid(p, pt["spine3"] + s * np.array((sign * 0.08, 0.05, 0.045)),
                                                    s * np.array((0.075, 0.06, 0.05)) * props.chest), 0.03)
            if props.bust > 0:
                centre = pt["spine3"] + s * np.array((sign * 0.085, 0.025, 0.07 + 0.01 * props.bust))
                torso = _smooth_union(torso, _ellipsoid(p, centre, s * np.array((0.06, 0.055, 0.045))
                                                        * (0.6 + 0.4 * props.bust)), 0.025)
        return torso

    def _head(self, p: np.ndarray) -> np.ndarray:
        """Neck, cranium, face and jaw, nose and ears."""
        pt, s = self.points, self.props.scale
        neck = _round_cone(p, pt["neck"] + s * np.array((0.0, -0.04, -0.01)),
                           pt["head"] + s * np.array((0.0, 0.02, -0.02)), 0.056 * s, 0.05 * s)
        centre = pt["head_top"] + s * np.array((0.0, -0.105, 0.0))
        head = _ellipsoid(p, centre, s * np.array((0.078, 0.105, 0.098)))
        head = _smooth_union(head, _ellipsoid(p, centre + s * np.array((0.0, -0.055, 0.03)),
                                              s * np.array((0.058, 0.068, 0.07))), 0.03)
        head = _smooth_union(head, _ellipsoid(p, centre + s * np.array((0.0, -0.02, 0.098)),
                                              s * np.array((0.014, 0.026, 0.022))), 0.012)
        for sign in (1.0, -1.0):
            head = _smooth_union(head, _ellipsoid(p, centre + s * np.array((sign * 0.074, -0.01, -0.005)),
                                                  s * np.array((0.014, 0.030, 0.020))), 0.01)
        return _smooth_union(neck, head, 0.03)

    def _leg(self, p: np.ndarray, side: str) -> np.ndarray:
        """Thigh, shin with its calf, and a foot from heel to toes with a flat sole."""
        j = {k[len(side):]: v for k, v in self.points.items() if k.startswith(side)}
        s, limb = self.props.scale, self.props.scale * self.props.limb
        thigh = _round_cone(p, j["hip"], j["knee"], 0.080 * limb, 0.052 * limb)
        calf = j["knee"] + 0.32 * (j["ankle"] - j["knee"]) + s * np.array((0.0, 0.0, -0.018))
        shin = _round_cone(p, j["knee"], j["ankle"], 0.050 * limb, 0.033 * limb)
        shin = _smooth_union(shin, _ellipsoid(p, calf, np.array((0.048, 0.12, 0.05)) * limb), 0.03)
        foot = _round_cone(p, j["heel"], j["toe_tip"] + s * np.array((0.0, 0.002, -0.02)), 0.036 * s, 0.022 * s,
                           squash=(1.25, 1.0, 1.0))
        instep = _round_cone(p, j["ankle"], j["foot"] + s * np.array((0.0, 0.005, -0.01)), 0.036 * s, 0.026 * s,
                             squash=(1.3, 1.0, 1.0))
        sole_y = self.points["pelvis"][1] + s * (SOLE_Y - SMPL_NEUTRAL_REST_JOINTS["pelvis"][1])
        foot = _smooth_max(_smooth_union(foot, instep, 0.02), sole_y - p[:, 1], 0.008)
        return _smooth_union(_smooth_union(thigh, shin, 0.03), foot, 0.03)

    def _arm(self, p: np.ndarray, side: str) -> np.ndarray:
        """Deltoid, upper arm, forearm with its muscle, and a mitten hand (palm, fingers, thumb), palm down."""
        j = {k[len(side):]: v for k, v in self.points.items() if k.startswith(side)}
        s, limb = self.props.scale, self.props.scale * self.props.limb
        out = np.sign(j["shoulder"][0])
        upper = _round_cone(p, j["shoulder"], j["elbow"], 0.050 * limb, 0.039 * limb)
        upper = _smooth_union(upper, _ellipsoid(p, j["shoulder"] + s * np.array((0.005 * out, 0.005, 0.0)),
                                                np.array((0.072, 0.060, 0.058)) * limb), 0.03)
        fore = _round_cone(p, j["elbow"], j["wrist"], 0.038 * limb, 0.026 * limb, squash=(1.0, 0.8, 1.0))
        fore = _smooth_union(fore, _ellipsoid(p, j["elbow"] + 0.28 * (j["wrist"] - j["elbow"]),
                                              np.array((0.085, 0.036, 0.042)) * limb), 0.02)
        palm_c = 0.5 * (j["wrist"] + j["hand"]) + s * np.array((0.01 * out, -0.005, 0.002))
        palm = _round_box(p, palm_c, s * np.array((0.052, 0.016, 0.043)), 0.012 * s)
        fingers_c = 0.5 * (j["hand"] + j["finger_tip"]) + s * np.array((0.0, -0.004, 0.002))
        fingers_half = np.array((0.5 * abs(j["finger_tip"][0] - j["hand"][0]) + 0.008 * s, 0.0135 * s, 0.038 * s))
        fingers = _round_box(p, fingers_c, fingers_half, 0.0125 * s)
        thumb = _round_cone(p, j["wrist"] + s * np.array((0.025 * out, -0.008, 0.035)),
                            j["wrist"] + s * np.array((0.085 * out, -0.012, 0.06)), 0.015 * s, 0.0125 * s)
        hand = _smooth_union(_smooth_union(palm, fingers, 0.012), thumb, 0.012)
        return _smooth_union(_smooth_union(upper, fore, 0.03), hand, 0.02)


# --------------------------------------------------------------------------------------------------------------
# Meshing
# --------------------------------------------------------------------------------------------------------------

def _vertex_adjacency(faces: np.ndarray, num_vertices: int) -> scipy.sparse.csr_matrix:
    i = np.concatenate([faces[:, 0], faces[:, 1], faces[:, 2], faces[:, 1], faces[:, 2], faces[:, 0]])
    j = np.concatenate([faces[:, 1], faces[:, 2], faces[:, 0], faces[:, 0], faces[:, 1], faces[:, 2]])
    adjacency = scipy.sparse.coo_matrix((np.ones(len(i)), (i, j)), shape=(num_vertices, num_vertices)).tocsr()
    adjacency.data[:] = 1.0
    return adjacency


def _vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    tri = vertices[faces]
    face_n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # area-weighted
    normals = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(normals, faces[:, k], face_n)
    return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)


def _signed_volume(vertices: np.ndarray, faces: np.ndarray) -> float:
    tri = vertices[faces]
    return float(np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6.0)


def _project_to_surface(field: _BodyShape, verts: np.ndarray, steps: int = 2) -> np.ndarray:
    """Newton steps along the field's (forward-difference) gradient onto its zero level."""
    eps = 1e-5
    for _ in range(steps):
        probes = np.concatenate([verts] + [verts + eps * e for e in np.eye(3)])  # one field call: 4 x [V, 3]
        value, *shifted = np.split(field(probes), 4)
        grad = np.stack([(d - value) / eps for d in shifted], axis=1)
        verts = verts - (value / np.maximum((grad * grad).sum(axis=1), 1e-6))[:, None] * grad
    return verts


def _mesh_surface(field: _BodyShape) -> tuple[np.ndarray, np.ndarray]:
    """Marching cubes on the field, largest component, outward faces, relaxed onto the surface."""
    pt = field.points
    tips = np.stack([pt["left_finger_tip"], pt["right_finger_tip"], pt["head_top"], pt["left_heel"],
                     pt["left_toe_tip"]])
    lo = np.array((tips[:, 0].min(), tips[:, 1].min() - 0.04, _GRID_Z_M[0])) - _GRID_MARGIN_M
    hi = np.array((tips[:, 0].max(), tips[:, 1].max(), _GRID_Z_M[1])) + _GRID_MARGIN_M
    counts = 2 * np.ceil((hi - lo) / (2 * VOXEL_M)).astype(int) + 1  # odd: every other sample is a coarse one
    axes = [lo[k] + VOXEL_M * np.arange(counts[k]) for k in range(3)]
    # Coarse to fine: the field is roughly a distance (slope <~ 1.3), so only fine samples whose coarse neighbour
    # lies within a few voxels of the surface need evaluating; the rest keep the coarse value (right sign).
    coarse_axes = [a[::2] for a in axes]
    coarse = field(np.stack(np.meshgrid(*coarse_axes, indexing="ij"), axis=-1).reshape(-1, 3))
    coarse = coarse.reshape([len(a) for a in coarse_axes])
    volume = coarse.repeat(2, axis=0).repeat(2, axis=1).repeat(2, axis=2)[:counts[0], :counts[1], :counts[2]]
    near = np.abs(volume) < 3.0 * VOXEL_M
    idx = np.nonzero(near)
    volume[idx] = field(np.stack([axes[k][idx[k]] for k in range(3)], axis=1))
    verts, faces, _, _ = measure.marching_cubes(volume, level=0.0, spacing=(VOXEL_M,) * 3)
    verts = verts.astype(np.float64) + lo
    faces = faces.astype(np.int64)

    # Keep the largest connected piece (marching cubes can leave specks where the field grazes zero).
    adjacency = _vertex_adjacency(faces, len(verts))
    _, labels = scipy.sparse.csgraph.connected_components(adjacency, directed=False)
    keep = labels == np.bincount(labels).argmax()
    remap = -np.ones(len(verts), dtype=np.int64)
    remap[keep] = np.arange(keep.sum())
    faces = remap[faces]
    faces = faces[(faces >= 0).all(axis=1)]
    verts = verts[keep]
    if _signed_volume(verts, faces) < 0:
        faces = faces[:, ::-1]

    # Relax: move each vertex tangentially toward its neighbours' mean, then project back onto the surface
    # (Newton steps along the numerical gradient), which evens out marching cubes' slivers.
    adjacency = _vertex_adjacency(faces, len(verts))
    degree = np.asarray(adjacency.sum(axis=1)).ravel()
    for _ in range(RELAX_ITERATIONS):
        normals = _vertex_normals(verts, faces)
        delta = (adjacency @ verts) / degree[:, None] - verts
        delta -= np.einsum("ij,ij->i", delta, normals)[:, None] * normals
        verts = _project_to_surface(field, verts + RELAX_STEP * delta, steps=1)
    return _project_to_surface(field, verts, steps=2), faces


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
