"""The open body model's surface: the gender proportions, the implicit body (round cones, ellipsoids and a lofted
torso around the skeleton) and its meshing (marching cubes, tangential relaxation, projection back onto the surface).
`mhr_tf.body.open_body` builds the rest of the model (skinning, regressors, blend shapes) on this mesh."""
from __future__ import annotations

import dataclasses
import functools

import numpy as np
import scipy.interpolate
import scipy.sparse
from skimage import measure

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
