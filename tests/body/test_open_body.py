"""The open body model: file layout, closed surface, joints, weights, shape components and bending.

References are independent of mhr_tf: SMPL's published neutral rest joints typed below, a float64 numpy linear
blend skinning written here, winding numbers, edge counts and measurements taken straight off the vertices.
"""
import pathlib
import runpy
import sys

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from mhr_tf.body import joints as joint_sets
from mhr_tf.body import open_body

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "scripts" / "make_body_model.py"

# SMPL's neutral model in its rest T-pose (J_regressor @ v_template of the official file, to ~1 cm; y up, the
# body faces +z, the person's left is +x). Typed here, not imported, so the test does not check code against itself.
SMPL_NEUTRAL_JOINTS_LEFT = {
    "pelvis": (0.0, -0.22, 0.03), "left_hip": (0.07, -0.31, 0.02), "spine1": (0.0, -0.11, 0.0),
    "left_knee": (0.11, -0.70, 0.03), "spine2": (0.0, 0.02, 0.03), "left_ankle": (0.09, -1.09, -0.01),
    "spine3": (0.0, 0.07, 0.03), "left_foot": (0.12, -1.14, 0.12), "neck": (0.0, 0.29, -0.01),
    "left_collar": (0.08, 0.20, -0.01), "head": (0.0, 0.35, 0.05), "left_shoulder": (0.17, 0.23, -0.02),
    "left_elbow": (0.43, 0.21, -0.04), "left_wrist": (0.68, 0.22, -0.05), "left_hand": (0.76, 0.21, -0.06),
}
SMPL_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]


def smpl_template_joints() -> np.ndarray:
    table = dict(SMPL_NEUTRAL_JOINTS_LEFT)
    for name, xyz in SMPL_NEUTRAL_JOINTS_LEFT.items():
        if name.startswith("left_"):
            table["right_" + name[5:]] = (-xyz[0], xyz[1], xyz[2])
    return np.array([table[name] for name in joint_sets.SMPL_24])


@pytest.fixture(scope="module")
def models():
    return {gender: open_body.build_open_body_model(gender) for gender in ("neutral", "male", "female")}


@pytest.fixture(scope="module")
def neutral(models):
    return models["neutral"]


# ---- independent float64 helpers ------------------------------------------------------------------------------

def lbs(model, betas=None, pose=None):
    """Plain SMPL linear blend skinning in float64: returns (vertices [V,3], joints [24,3], world rotations)."""
    betas = np.zeros(10) if betas is None else np.asarray(betas, dtype=np.float64)
    pose = np.zeros((24, 3)) if pose is None else np.asarray(pose, dtype=np.float64).reshape(24, 3)
    shaped = model["v_template"] + np.einsum("vck,k->vc", model["shapedirs"], betas)
    rest_joints = model["J_regressor"] @ shaped
    local = Rotation.from_rotvec(pose).as_matrix()
    world = np.zeros((24, 4, 4))
    for j, parent in enumerate(SMPL_PARENTS):
        step = np.eye(4)
        step[:3, :3] = local[j]
        step[:3, 3] = rest_joints[j] - (rest_joints[parent] if parent >= 0 else 0.0)
        world[j] = step if parent < 0 else world[parent] @ step
    skinning = world.copy()
    skinning[:, :3, 3] -= np.einsum("jab,jb->ja", world[:, :3, :3], rest_joints)
    blended = np.einsum("vj,jab->vab", model["weights"], skinning)
    vertices = np.einsum("vab,vb->va", blended[:, :3, :3], shaped) + blended[:, :3, 3]
    return vertices, world[:, :3, 3], world[:, :3, :3]


def face_normals(vertices, faces):
    tri = vertices[faces]
    return np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # length = 2 x area


def signed_volume(vertices, faces):
    tri = vertices[faces]
    return np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6.0


def winding_number(points, vertices, faces):
    """Generalised winding number (van Oosterom & Strackee solid angles): 1 inside a closed surface, 0 outside."""
    out = []
    for p in points:
        a, b, c = (vertices[faces[:, k]] - p for k in range(3))
        la, lb, lc = (np.linalg.norm(x, axis=1) for x in (a, b, c))
        numerator = np.einsum("ij,ij->i", a, np.cross(b, c))
        denominator = (la * lb * lc + np.einsum("ij,ij->i", a, b) * lc + np.einsum("ij,ij->i", b, c) * la
                       + np.einsum("ij,ij->i", c, a) * lb)
        out.append(2.0 * np.arctan2(numerator, denominator).sum() / (4.0 * np.pi))
    return np.array(out)


def undirected_edges(faces):
    return np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)


def part_mask(model, *names):
    return np.isin(model["part_ids"], [joint_sets.SMPL_24.index(n) for n in names])


# ---- the file layout ------------------------------------------------------------------------------------------

def test_model_has_smpl_keys_shapes_and_kinematic_tree(neutral):
    num_vertices = neutral["v_template"].shape[0]
    assert 4000 <= num_vertices <= 9000
    expected = {"v_template": (num_vertices, 3), "shapedirs": (num_vertices, 3, 10),
                "posedirs": (num_vertices, 3, 207), "J_regressor": (24, num_vertices), "weights": (num_vertices, 24),
                "kintree_table": (2, 24), "part_ids": (num_vertices,), "J_regressor_lsp14": (14, num_vertices)}
    for key, shape in expected.items():
        assert neutral[key].shape == shape, key
    assert neutral["f"].shape[1] == 3 and neutral["f"].min() == 0 and neutral["f"].max() == num_vertices - 1
    assert neutral["kintree_table"][0, 0] == 2**32 - 1  # the official files' root marker
    assert list(neutral["kintree_table"][0, 1:]) == SMPL_PARENTS[1:]
    assert list(neutral["kintree_table"][1]) == list(range(24))
    assert not np.any(neutral["posedirs"])  # plain LBS: no pose correctives


def test_unknown_gender_is_refused():
    with pytest.raises(ValueError, match="gender 'child'"):
        open_body.build_open_body_model("child")


def test_script_and_library_write_byte_identical_files(tmp_path, monkeypatch, neutral):
    """Determinism: two builds (one through scripts/make_body_model.py) give the same bytes, and the file holds
    exactly the arrays built in memory."""
    paths = open_body.write_open_body_models(tmp_path / "a")
    monkeypatch.setattr(sys, "argv", ["make_body_model.py", "--out", str(tmp_path / "b")])
    runpy.run_path(str(SCRIPT), run_name="__main__")
    for gender, name in (("neutral", "SMPL_NEUTRAL.npz"), ("male", "SMPL_MALE.npz"), ("female", "SMPL_FEMALE.npz")):
        assert paths[gender].name == name
        assert paths[gender].read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    with np.load(paths["neutral"], allow_pickle=False) as stored:
        assert set(stored.files) == set(neutral)
        for key, value in neutral.items():
            np.testing.assert_array_equal(stored[key], value, err_msg=key)


# ---- the surface ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("gender", ["neutral", "male", "female"])
def test_surface_is_closed_outward_and_genus_zero(models, gender):
    model = models[gender]
    vertices, faces = model["v_template"], model["f"].astype(np.int64)
    _, counts = np.unique(undirected_edges(faces), axis=0, return_counts=True)
    assert np.all(counts == 2)  # watertight, no boundary, no fins
    directed = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    assert len(np.unique(directed, axis=0)) == len(directed)  # each edge used once per direction: consistent
    euler = len(vertices) - len(counts) + len(faces)
    assert euler == 2
    assert signed_volume(vertices, faces) > 0.04  # outward normals; an adult is ~0.06-0.08 m^3
    areas = 0.5 * np.linalg.norm(face_normals(vertices, faces), axis=1)
    assert areas.min() > 1e-3 * areas.mean()  # no degenerate triangles


@pytest.mark.parametrize("gender", ["neutral", "male", "female"])
def test_rest_joints_lie_inside_the_body(models, gender):
    model = models[gender]
    joints = model["J_regressor"] @ model["v_template"]
    winding = winding_number(joints, model["v_template"], model["f"].astype(np.int64))
    np.testing.assert_allclose(winding, 1.0, atol=1e-6)


def test_neutral_rest_joints_match_smpl_template(neutral):
    joints = neutral["J_regressor"] @ neutral["v_template"]
    error = np.linalg.norm(joints - smpl_template_joints(), axis=1)
    assert error.max() < 0.04, dict(zip(joint_sets.SMPL_24, error.round(3)))


def test_stature_and_gender_proportions(models):
    stature = {g: np.ptp(m["v_template"][:, 1]) for g, m in models.items()}
    sole = models["neutral"]["v_template"][:, 1].min()
    top = models["neutral"]["v_template"][:, 1].max()
    assert abs(sole - (-1.16)) < 0.02 and abs(top - 0.55) < 0.02
    assert stature["female"] + 0.08 < stature["neutral"] < stature["male"] - 0.04
    for gender in ("male", "female"):  # same skeleton family: every joint within 8 cm of SMPL's neutral
        joints = models[gender]["J_regressor"] @ models[gender]["v_template"]
        assert np.linalg.norm(joints - smpl_template_joints(), axis=1).max() < 0.08

    def shoulder_to_hip_ratio(model):
        v = model["v_template"]
        hips = np.ptp(v[(v[:, 1] > -0.36) & (v[:, 1] < -0.26), 0])
        return (model["J_regressor"] @ v)[16, 0] * 2 / hips

    assert shoulder_to_hip_ratio(models["male"]) > shoulder_to_hip_ratio(models["female"]) + 0.1


def test_left_side_is_plus_x_and_feet_point_forward(neutral):
    v = neutral["v_template"]
    assert v[part_mask(neutral, "left_hand"), 0].min() > 0.6
    assert v[part_mask(neutral, "right_hand"), 0].max() < -0.6
    toes = v[part_mask(neutral, "left_foot", "right_foot")]
    heels = v[part_mask(neutral, "left_ankle", "right_ankle") & (v[:, 1] < -1.1)]
    assert toes[:, 2].mean() > heels[:, 2].mean() + 0.1
    nose_z = v[(np.abs(v[:, 0]) < 0.02) & (np.abs(v[:, 1] - 0.43) < 0.03), 2].max()
    back_z = v[(np.abs(v[:, 0]) < 0.02) & (np.abs(v[:, 1] - 0.43) < 0.03), 2].min()
    assert nose_z > 0.1 > -back_z  # the face is on +z


# ---- weights, parts and regressors -------------------------------------------------------------------------------

@pytest.mark.parametrize("gender", ["neutral", "male", "female"])
def test_weights_and_regressors_are_convex_combinations(models, gender):
    model = models[gender]
    for key in ("weights", "J_regressor", "J_regressor_lsp14"):
        rows = model[key]
        assert rows.min() >= 0.0, key
        np.testing.assert_allclose(rows.sum(axis=1), 1.0, atol=1e-9, err_msg=key)
    np.testing.assert_array_equal(model["part_ids"], model["weights"].argmax(axis=1))
    assert np.all(np.bincount(model["part_ids"], minlength=24) >= 15)  # every SMPL part is on the body


def test_weights_blend_smoothly_across_joints(neutral):
    w, faces = neutral["weights"], neutral["f"]
    edges = undirected_edges(faces)
    assert np.abs(w[edges[:, 0]] - w[edges[:, 1]]).max() < 0.3  # no hard seams
    v = neutral["v_template"]
    joints = neutral["J_regressor"] @ v
    for child in ("left_knee", "right_elbow", "left_shoulder", "right_hip"):
        j = joint_sets.SMPL_24.index(child)
        parent = SMPL_PARENTS[j]
        near = np.linalg.norm(v - joints[j], axis=1) < 0.2
        mixed = near & (w[:, j] > 0.2) & (w[:, parent] > 0.2)
        assert mixed.sum() >= 20, child  # a band of shared weights around the joint


def test_lsp_regressor_uses_smpl_joints_and_crown(neutral):
    v = neutral["v_template"]
    lsp = neutral["J_regressor_lsp14"] @ v
    smpl = neutral["J_regressor"] @ v
    for i, name in enumerate(joint_sets.LSP_14):
        if name == "head_top":
            assert abs(lsp[i, 1] - v[:, 1].max()) < 0.015 and abs(lsp[i, 0]) < 0.02
        else:
            np.testing.assert_allclose(lsp[i], smpl[joint_sets.SMPL_24.index(name)], atol=1e-12, err_msg=name)


# ---- shape components -------------------------------------------------------------------------------------------

def stature(v, model):
    return np.ptp(v[:, 1])


def waist_radius(v, model):
    band = v[part_mask(model, "spine1")]
    return np.hypot(band[:, 0], band[:, 2] - band[:, 2].mean()).mean()


def inseam_fraction(v, model):
    crotch = v[np.abs(v[:, 0]) < 0.015, 1].min()  # lowest point of the body's midline
    return (crotch - v[:, 1].min()) / np.ptp(v[:, 1])


def arm_span_fraction(v, model):
    return np.ptp(v[:, 0]) / np.ptp(v[:, 1])


def shoulder_breadth(v, model):
    return v[part_mask(model, "left_collar"), 0].mean() - v[part_mask(model, "right_collar"), 0].mean()


def hip_breadth(v, model):
    return np.ptp(v[part_mask(model, "pelvis", "left_hip", "right_hip") & (v[:, 1] > -0.45), 0])


def head_volume(v, model):
    return np.prod(np.ptp(v[part_mask(model, "head")], axis=0))


def belly_front(v, model):
    return v[part_mask(model, "pelvis", "spine1") & (v[:, 1] > -0.25), 2].max()


def shin_radius(v, model):
    shin = v[part_mask(model, "left_knee") & (v[:, 1] > -0.95) & (v[:, 1] < -0.8)]
    return np.hypot(shin[:, 0] - shin[:, 0].mean(), shin[:, 2] - shin[:, 2].mean()).mean()


def chest_to_waist_depth(v, model):
    chest = v[part_mask(model, "spine3", "spine2") & (np.abs(v[:, 0]) < 0.12)]
    waist = v[part_mask(model, "spine1") & (np.abs(v[:, 0]) < 0.12)]
    return np.ptp(chest[:, 2]) / np.ptp(waist[:, 2])


# (component, measurement, smallest increase for beta 0 -> +1)
SHAPE_CLAIMS = [
    ("height", stature, 0.05),
    ("girth", waist_radius, 0.008),
    ("leg_length", inseam_fraction, 0.005),
    ("arm_length", arm_span_fraction, 0.015),
    ("shoulder_width", shoulder_breadth, 0.01),
    ("hip_width", hip_breadth, 0.015),
    ("head_size", head_volume, 0.0003),
    ("belly", belly_front, 0.01),
    ("limb_girth", shin_radius, 0.002),
    ("chest", chest_to_waist_depth, 0.03),
]


@pytest.mark.parametrize("component,measure,increase", SHAPE_CLAIMS, ids=[c[0] for c in SHAPE_CLAIMS])
def test_each_shape_component_changes_what_it_claims(neutral, component, measure, increase):
    k = open_body.SHAPE_COMPONENTS.index(component)
    betas = np.zeros(10)
    betas[k] = 1.0
    rest, _, _ = lbs(neutral)
    plus, _, _ = lbs(neutral, betas)
    minus, _, _ = lbs(neutral, -betas)
    assert measure(plus, neutral) - measure(rest, neutral) > increase
    assert measure(rest, neutral) - measure(minus, neutral) > 0.5 * increase


def test_shape_components_are_orthogonal_and_ordered_like_a_pca(neutral):
    basis = neutral["shapedirs"].reshape(-1, 10)
    gram = basis.T @ basis
    norms = np.sqrt(np.diag(gram))
    cosines = gram / np.outer(norms, norms)
    np.testing.assert_allclose(cosines, np.eye(10), atol=1e-9)
    assert norms[0] == norms.max()  # height first, the largest


@pytest.mark.parametrize("component", range(10))
def test_three_sigma_betas_give_plausible_well_formed_adults(neutral, component):
    faces = neutral["f"].astype(np.int64)
    rest_normals = face_normals(neutral["v_template"], faces)
    for sign in (-3.0, 3.0):
        betas = np.zeros(10)
        betas[component] = sign
        v, _, _ = lbs(neutral, betas)
        assert 1.45 < np.ptp(v[:, 1]) < 1.95
        normals = face_normals(v, faces)
        flipped = np.einsum("ij,ij->i", normals, rest_normals) <= 0
        assert flipped.mean() < 0.002
        assert signed_volume(v, faces) > 0.03
        joints = neutral["J_regressor"] @ v  # shape moves the joints with the surface: still inside
        np.testing.assert_allclose(winding_number(joints, v, faces), 1.0, atol=1e-6)


# ---- bending --------------------------------------------------------------------------------------------------

BENDS = [(joint, axis, angle) for joint, axis in (("left_knee", 0), ("right_elbow", 1), ("left_elbow", 2),
                                                   ("left_hip", 0), ("right_hip", 2), ("left_shoulder", 2),
                                                   ("right_shoulder", 1), ("neck", 0), ("spine2", 2))
         for angle in (np.pi / 2, -np.pi / 2)]


@pytest.mark.parametrize("joint,axis,angle", BENDS, ids=[f"{j}-{'xyz'[a]}{a_:+.0f}" for j, a, a_ in
                                                          [(j, a, np.degrees(t)) for j, a, t in BENDS]])
def test_ninety_degree_bends_keep_the_mesh_well_formed(neutral, joint, axis, angle):
    faces = neutral["f"].astype(np.int64)
    pose = np.zeros((24, 3))
    j = joint_sets.SMPL_24.index(joint)
    pose[j, axis] = angle
    v, posed_joints, world = lbs(neutral, pose=pose)
    rest = neutral["v_template"]
    rest_normals = face_normals(rest, faces)
    normals = face_normals(v, faces)
    # Each face compared with its rest self carried rigidly by the part that dominates it.
    dominant = neutral["weights"][faces].sum(axis=1).argmax(axis=1)
    expected = np.einsum("fab,fb->fa", world[dominant], rest_normals)
    area_ratio = np.linalg.norm(normals, axis=1) / np.linalg.norm(rest_normals, axis=1)
    flipped = np.einsum("ij,ij->i", normals, expected) < 0
    assert np.mean(area_ratio < 0.1) < 0.002  # no collapse
    assert flipped.mean() < 0.01  # no inversion beyond a few crease triangles
    edges = undirected_edges(faces)
    stretch = np.linalg.norm(v[edges[:, 0]] - v[edges[:, 1]], axis=1) / np.linalg.norm(
        rest[edges[:, 0]] - rest[edges[:, 1]], axis=1)
    assert stretch.max() < 3.0  # the limb stays attached: no torn-out edges
    assert 0.9 < signed_volume(v, faces) / signed_volume(rest, faces) < 1.05
    # The bent limb really turned: the child part's vertices moved with the joint's rotation.
    children = [i for i, p in enumerate(SMPL_PARENTS) if p == j]
    moved = part_mask(neutral, *(joint_sets.SMPL_24[c] for c in children))
    rigid = np.einsum("ab,vb->va", world[j], rest[moved] - posed_joints[j]) + posed_joints[j]
    np.testing.assert_allclose(np.median(np.linalg.norm(v[moved] - rigid, axis=1)), 0.0, atol=0.01)
