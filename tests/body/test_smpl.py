"""SMPL loaders, numpy forward and TF layer, against an independent float64 LBS written here.

The hand-built model files follow the official SMPL pickle layout: a protocol-2 pickle of a dict whose `shapedirs`
(and here also `posedirs`) are chumpy `Ch` objects (a stand-in class registered as `chumpy.ch.Ch` only while
pickling) and whose `J_regressor` is a scipy.sparse csc matrix; loading runs with no chumpy module at all.
"""
import contextlib
import functools
import importlib.util
import os
import pickle
import sys
import types

import keras
import numpy as np
import scipy.sparse
import tensorflow as tf
from absl.testing import parameterized
from scipy.spatial.transform import Rotation

from mhr_tf.body import joints, smpl

NUM_VERTICES = 48  # tiny: two vertices per SMPL part
OFFICIAL_ROOT_PARENT = 4294967295  # kintree_table[0][0] of the official files (uint32 -1)
TOLERANCE_M = 1e-4  # the bar: vertices agree to 0.1 mm


# --------------------------------------------------------------------------------------------------------------
# Reference: SMPL's LBS in float64 with 4x4 homogeneous transforms, one body at a time.

def reference_lbs(arrays, betas, pose, trans=None):
    """vertices [B, V, 3], joints [B, 24, 3] from raw SMPL-layout arrays; pose [B, 24, 3] axis-angle."""
    shapedirs = np.asarray(arrays["shapedirs"], np.float64)[:, :, :10]
    posedirs = np.asarray(arrays["posedirs"], np.float64)
    J_regressor = arrays["J_regressor"]
    J_regressor = J_regressor.toarray() if scipy.sparse.issparse(J_regressor) else np.asarray(J_regressor)
    weights = np.asarray(arrays["weights"], np.float64)
    parents = [-1 if p == OFFICIAL_ROOT_PARENT else int(p) for p in arrays["kintree_table"][0]]
    all_vertices, all_joints = [], []
    for b in range(len(betas)):
        v_shaped = arrays["v_template"] + shapedirs @ betas[b]
        rest = J_regressor @ v_shaped
        rotations = Rotation.from_rotvec(pose[b]).as_matrix()
        lrotmin = np.concatenate([(rotations[j] - np.eye(3)).ravel() for j in range(1, 24)])
        v_posed = v_shaped + posedirs @ lrotmin
        local = np.tile(np.eye(4), (24, 1, 1))  # joint frame in its parent's frame
        local[:, :3, :3] = rotations
        local[:, :3, 3] = rest - np.where(np.array(parents)[:, None] >= 0, rest[parents], 0.0)
        # World transform of joint j: the product of the local transforms along the path root -> j.
        world = np.stack([functools.reduce(np.matmul, [local[k] for k in path_from_root(j, parents)])
                          for j in range(24)])
        unpose = np.tile(np.eye(4), (24, 1, 1))
        unpose[:, :3, 3] = -rest
        skinning = np.einsum("vj,jab->vab", weights, world @ unpose)
        homogeneous = np.concatenate([v_posed, np.ones((len(v_posed), 1))], axis=1)
        offset = 0.0 if trans is None else trans[b]
        all_vertices.append(np.einsum("vab,vb->va", skinning, homogeneous)[:, :3] + offset)
        all_joints.append(world[:, :3, 3] + offset)
    return np.stack(all_vertices), np.stack(all_joints)


def path_from_root(joint, parents):
    return path_from_root(parents[joint], parents) + [joint] if joint >= 0 else []


def subtree(joint):
    """`joint` and all its descendants in SMPL's tree."""
    members = {joint}
    for j, parent in enumerate(joints.SMPL_PARENTS):  # parents precede children
        if parent in members:
            members.add(j)
    return sorted(members)


def expected_lsp_regressor(arrays):
    """LSP-14 fallback for a file without one: named SMPL joints' J_regressor rows; head top = top head vertex."""
    J_regressor = arrays["J_regressor"].toarray()
    regressor = np.zeros((14, len(arrays["v_template"])))
    for row, name in enumerate(joints.LSP_14[:13]):
        regressor[row] = J_regressor[joints.SMPL_24.index(name)]
    head = np.flatnonzero(np.argmax(arrays["weights"], axis=1) == joints.SMPL_24.index("head"))
    regressor[13, head[np.argmax(arrays["v_template"][head, 1])]] = 1.0
    return regressor


# --------------------------------------------------------------------------------------------------------------
# A tiny model in the official pickle layout.

class FakeCh:
    """Pickles like chumpy's plain `Ch`: its `__dict__` (minus weak caches), value under 'x'."""

    def __init__(self, x):
        self.x = x
        self._dirty_vars = set()
        self._itr = None
        self._depends_on_deps = {}
        self._make_dense = False
        self._make_sparse = False


class FakeSelect:
    """A chumpy expression (no stored 'x'): only chumpy could evaluate it."""

    def __init__(self, a):
        self.a = a
        self.idxs = np.arange(3)


# Pickled under chumpy's own module and class names.
FakeCh.__module__, FakeCh.__name__, FakeCh.__qualname__ = "chumpy.ch", "Ch", "Ch"
FakeSelect.__module__, FakeSelect.__name__, FakeSelect.__qualname__ = "chumpy.reordering", "Select", "Select"


@contextlib.contextmanager
def fake_chumpy_modules():
    """Register `chumpy.ch.Ch` / `chumpy.reordering.Select` only while pickling."""
    package, ch_module, reordering = (types.ModuleType(n) for n in ("chumpy", "chumpy.ch", "chumpy.reordering"))
    ch_module.Ch, reordering.Select = FakeCh, FakeSelect
    sys.modules.update({"chumpy": package, "chumpy.ch": ch_module, "chumpy.reordering": reordering})
    try:
        yield
    finally:
        for name in ("chumpy", "chumpy.ch", "chumpy.reordering"):
            del sys.modules[name]


def tiny_arrays(seed=0, num_shape_components=300):
    """SMPL-layout float64 arrays: vertex v in part v // 2, skinned 0.7 to its part and 0.3 to the part's parent.

    Pose blend shapes of joint j touch only vertices skinned to j, so a joint's rotation moves only its subtree.
    300 shape components, as SMPL-X-era SMPL files have (the loader keeps the first 10).
    """
    rng = np.random.default_rng(seed)
    part = np.arange(NUM_VERTICES) // 2
    v_template = rng.uniform(-0.5, 0.5, (NUM_VERTICES, 3))
    weights = np.zeros((NUM_VERTICES, 24))
    for v, p in enumerate(part):
        parent = joints.SMPL_PARENTS[p]
        weights[v, p] = 1.0 if parent < 0 else 0.7
        if parent >= 0:
            weights[v, parent] = 0.3
    posedirs = rng.normal(0.0, 0.02, (NUM_VERTICES, 3, 207))
    for j in range(1, 24):
        posedirs[weights[:, j] == 0, :, 9 * (j - 1):9 * j] = 0.0
    J_regressor = np.zeros((24, NUM_VERTICES))
    J_regressor[part, np.arange(NUM_VERTICES)] = 0.5
    faces = np.stack([np.arange(NUM_VERTICES), np.roll(np.arange(NUM_VERTICES), 1),
                      np.roll(np.arange(NUM_VERTICES), 2)], axis=1).astype(np.uint32)
    return {
        "v_template": v_template,
        "shapedirs": rng.normal(0.0, 0.01, (NUM_VERTICES, 3, num_shape_components)),
        "posedirs": posedirs,
        "J_regressor": scipy.sparse.csc_matrix(J_regressor),
        "weights": weights,
        "kintree_table": np.stack([np.where(joints.SMPL_PARENTS < 0, OFFICIAL_ROOT_PARENT, joints.SMPL_PARENTS),
                                   np.arange(24)]).astype(np.int64),
        "f": faces,
    }


def write_official_pickle(path, arrays, drop=(), **replace):
    """`arrays` in the official layout: chumpy Ch for shapedirs/posedirs, sparse regressors, SMPL's extra keys."""
    contents = {
        "J_regressor_prior": arrays["J_regressor"], "f": arrays["f"], "J_regressor": arrays["J_regressor"],
        "kintree_table": arrays["kintree_table"], "J": arrays["J_regressor"] @ arrays["v_template"],
        "weights_prior": arrays["weights"], "weights": arrays["weights"],
        "vert_sym_idxs": np.arange(len(arrays["v_template"])), "posedirs": FakeCh(arrays["posedirs"]),
        "pose_training_info": {"num_subjects": 2, "num_poses": 3}, "bs_style": "lbs",
        "v_template": arrays["v_template"], "shapedirs": FakeCh(arrays["shapedirs"]), "bs_type": "lrotmin",
    }
    contents.update(replace)
    for key in drop:
        del contents[key]
    with fake_chumpy_modules(), open(path, "wb") as file:
        pickle.dump(contents, file, protocol=2)
    return path


def write_npz(path, arrays, **extra):
    dense = dict(arrays, J_regressor=arrays["J_regressor"].toarray(), **extra)
    np.savez(path, **dense)
    return path


def random_inputs(batch, seed=1, angle_scale=0.6):
    rng = np.random.default_rng(seed)
    betas = rng.normal(0.0, 1.0, (batch, 10))
    pose = rng.normal(0.0, angle_scale, (batch, 24, 3))
    trans = rng.normal(0.0, 0.5, (batch, 3))
    return betas, pose, trans


def run_tf(model, betas, pose, trans=None):
    outputs = smpl.smpl_forward(smpl.body_constants(model), np.float32(betas), np.float32(pose),
                                None if trans is None else np.float32(trans))
    return {key: value.numpy() for key, value in outputs.items()}


class OfficialLayoutTest(tf.test.TestCase, parameterized.TestCase):

    def setUp(self):
        super().setUp()
        self.arrays = tiny_arrays()
        self.path = write_official_pickle(os.path.join(self.get_temp_dir(), "basicModel_f_lbs_10_207_0_v1.0.0.pkl"),
                                          self.arrays)

    def test_pickle_loads_without_chumpy_installed(self):
        self.assertIsNone(importlib.util.find_spec("chumpy"))
        model = smpl.load_body_model(self.path, "female")
        self.assertNotIn("chumpy", sys.modules)
        self.assertAllClose(model.v_template, self.arrays["v_template"], atol=1e-7)
        self.assertAllClose(model.posedirs, self.arrays["posedirs"], atol=1e-7)  # a Ch in this file
        self.assertAllClose(model.J_regressor, self.arrays["J_regressor"].toarray(), atol=1e-7)  # sparse
        self.assertAllEqual(model.parents, joints.SMPL_PARENTS)  # root 2**32-1 -> -1
        self.assertAllEqual(model.faces, self.arrays["f"])
        self.assertEqual(model.gender, "female")

    def test_first_10_of_300_shape_components_kept(self):
        model = smpl.load_body_model(self.path)
        self.assertEqual(model.shapedirs.shape, (NUM_VERTICES, 3, 10))
        self.assertAllClose(model.shapedirs, self.arrays["shapedirs"][:, :, :10], atol=1e-7)

    @parameterized.named_parameters(("one_body", 1, False), ("batch_with_trans", 7, True))
    def test_tf_layer_matches_reference_lbs(self, batch, with_trans):
        betas, pose, trans = random_inputs(batch)
        trans = trans if with_trans else None
        outputs = run_tf(smpl.load_body_model(self.path), betas, pose, trans)
        vertices, joints24 = reference_lbs(self.arrays, betas, pose, trans)
        self.assertAllClose(outputs["vertices"], vertices, atol=TOLERANCE_M, rtol=0)
        self.assertAllClose(outputs["joints"], joints24, atol=TOLERANCE_M, rtol=0)
        joints14 = np.einsum("lv,bvc->blc", expected_lsp_regressor(self.arrays), vertices)
        self.assertAllClose(outputs["joints14"], joints14, atol=TOLERANCE_M, rtol=0)

    def test_numpy_forward_matches_reference_lbs(self):
        betas, pose, trans = random_inputs(5, seed=3, angle_scale=1.0)
        vertices, joints24 = smpl.forward_numpy(smpl.load_body_model(self.path), betas, pose.reshape(5, 72), trans)
        want_vertices, want_joints = reference_lbs(self.arrays, betas, pose, trans)
        self.assertAllClose(vertices, want_vertices, atol=1e-5, rtol=0)
        self.assertAllClose(joints24, want_joints, atol=1e-5, rtol=0)

    def test_npz_with_same_keys_loads_the_same_model(self):
        npz = write_npz(os.path.join(self.get_temp_dir(), "model.npz"), self.arrays)
        betas, pose, trans = random_inputs(3)
        from_npz = run_tf(smpl.load_body_model(npz), betas, pose, trans)
        vertices, _ = reference_lbs(self.arrays, betas, pose, trans)
        self.assertAllClose(from_npz["vertices"], vertices, atol=TOLERANCE_M, rtol=0)

    def test_fallback_part_ids_and_lsp_regressor(self):
        model = smpl.load_body_model(self.path)
        self.assertAllEqual(model.part_ids, np.arange(NUM_VERTICES) // 2)  # argmax of the 0.7/0.3 weights
        self.assertAllClose(model.lsp_regressor, expected_lsp_regressor(self.arrays), atol=1e-7)

    def test_file_part_ids_and_lsp_regressor_are_used(self):
        rng = np.random.default_rng(5)
        part_ids = rng.integers(0, 24, NUM_VERTICES)
        lsp = rng.random((14, NUM_VERTICES))
        npz = write_npz(os.path.join(self.get_temp_dir(), "open.npz"), self.arrays, part_ids=part_ids,
                        J_regressor_lsp14=lsp)
        model = smpl.load_body_model(npz)
        self.assertAllEqual(model.part_ids, part_ids)
        self.assertAllClose(model.lsp_regressor, lsp, atol=1e-6)

    @parameterized.named_parameters(("hmr_pickle", ".pkl"), ("npy", ".npy"))
    def test_cocoplus_regressor_overrides_lsp14(self, extension):
        cocoplus = np.random.default_rng(6).random((19, NUM_VERTICES))  # HMR: 19 joints, first 14 in LSP order
        path = os.path.join(self.get_temp_dir(), "cocoplus" + extension)
        if extension == ".npy":
            np.save(path, cocoplus)
        else:
            with open(path, "wb") as file:
                pickle.dump({"cocoplus_regressor": scipy.sparse.csc_matrix(cocoplus)}, file, protocol=2)
        model = smpl.load_body_model(self.path, lsp_regressor_path=path)
        self.assertAllClose(model.lsp_regressor, cocoplus[:14], atol=1e-6)

    def test_smpl_sized_model_head_top_is_vertex_411(self):
        v = smpl.SMPL_NUM_VERTICES
        weights = np.zeros((v, 24))
        weights[:, 0] = 1.0
        arrays = {"v_template": np.zeros((v, 3)), "shapedirs": np.zeros((v, 3, 10)),
                  "posedirs": np.zeros((v, 3, 207), np.float32), "J_regressor": np.full((24, v), 1.0 / v),
                  "weights": weights, "kintree_table": np.stack([joints.SMPL_PARENTS, np.arange(24)]),
                  "f": np.zeros((1, 3), np.int64)}
        model = smpl.body_model_from_arrays(arrays)
        head_top = model.lsp_regressor[joints.LSP_14.index("head_top")]
        self.assertEqual(head_top[411], 1.0)
        self.assertEqual(head_top.sum(), 1.0)

    def test_directory_chooses_file_by_gender(self):
        directory = self.get_temp_dir()
        male = tiny_arrays(seed=10)
        neutral = tiny_arrays(seed=11)
        write_npz(os.path.join(directory, "SMPL_MALE.npz"), male)
        write_official_pickle(os.path.join(directory, "SMPL_NEUTRAL.pkl"), neutral)
        for gender, file_name, arrays in (("male", "SMPL_MALE.npz", male), ("neutral", "SMPL_NEUTRAL.pkl", neutral),
                                          ("female", "basicModel_f_lbs_10_207_0_v1.0.0.pkl", self.arrays)):
            model = smpl.load_body_model(directory, gender)
            self.assertEqual(os.path.basename(model.source), file_name)
            self.assertEqual(model.gender, gender)
            self.assertAllClose(model.v_template, arrays["v_template"], atol=1e-7)


class MalformedFileTest(tf.test.TestCase, parameterized.TestCase):

    def setUp(self):
        super().setUp()
        self.arrays = tiny_arrays()
        self.path = os.path.join(self.get_temp_dir(), "SMPL_NEUTRAL.pkl")

    def assert_named_error(self, path, *fragments, error=smpl.BodyModelError, **kwargs):
        with self.assertRaises(error) as raised:
            smpl.load_body_model(path, **kwargs)
        message = str(raised.exception)
        for fragment in (str(path), "smpl.is.tue.mpg.de", "licence") + fragments:
            self.assertIn(fragment, message)

    @parameterized.parameters(*smpl.REQUIRED_KEYS)
    def test_missing_key(self, key):
        write_official_pickle(self.path, self.arrays, drop=(key,))
        self.assert_named_error(self.path, f"'{key}'")

    @parameterized.named_parameters(
        ("posedirs", "posedirs", np.zeros((NUM_VERTICES, 3, 200)), f"({NUM_VERTICES}, 3, 207)"),
        ("weights", "weights", np.zeros((NUM_VERTICES, 23)), f"({NUM_VERTICES}, 24)"),
        ("J_regressor", "J_regressor", scipy.sparse.csc_matrix(np.zeros((23, NUM_VERTICES))),
         f"(24, {NUM_VERTICES})"),
        ("v_template", "v_template", np.zeros((NUM_VERTICES, 2)), "(any, 3)"),
        ("too_few_betas", "shapedirs", np.zeros((NUM_VERTICES, 3, 8)), f"({NUM_VERTICES}, 3, 10)"),
        ("kintree_table", "kintree_table", np.zeros((2, 24), np.int64), "SMPL's parents"),
        ("faces_out_of_range", "f", np.full((2, 3), NUM_VERTICES), "vertex indices"))
    def test_wrong_shape_or_content(self, key, value, expected):
        write_official_pickle(self.path, self.arrays, **{key: value})
        self.assert_named_error(self.path, f"'{key}'", expected)

    def test_pickle_of_another_layout(self):
        with open(self.path, "wb") as file:  # a 3DPW-like sequence file is not a body model
            pickle.dump({"sequence": "courtyard", "poses": [np.zeros((5, 72))], "betas": [np.zeros(10)]}, file,
                        protocol=2)
        self.assert_named_error(self.path, "'v_template'")

    def test_pickle_of_a_list(self):
        with open(self.path, "wb") as file:
            pickle.dump([np.zeros(3)], file, protocol=2)
        self.assert_named_error(self.path, "list")

    def test_unevaluated_chumpy_expression(self):
        write_official_pickle(self.path, self.arrays, shapedirs=FakeSelect(FakeCh(np.zeros(3))))
        self.assert_named_error(self.path, "'shapedirs'", "chumpy.reordering.Select")

    def test_truncated_pickle(self):
        write_official_pickle(self.path, self.arrays)
        with open(self.path, "rb") as file:
            data = file.read()
        with open(self.path, "wb") as file:
            file.write(data[:len(data) // 2])
        self.assert_named_error(self.path, "not a readable")

    def test_truncated_npz(self):
        npz = write_npz(os.path.join(self.get_temp_dir(), "SMPL_NEUTRAL.npz"), self.arrays)
        with open(npz, "rb") as file:
            data = file.read()
        with open(npz, "wb") as file:
            file.write(data[:len(data) // 2])
        self.assert_named_error(npz, "not a readable .npz")

    def test_pickle_cannot_run_code(self):
        marker = os.path.join(self.get_temp_dir(), "created_by_pickle")

        class Hostile:
            def __reduce__(self):
                return os.mkdir, (marker,)

        with open(self.path, "wb") as file:
            pickle.dump({"v_template": Hostile()}, file, protocol=2)
        self.assert_named_error(self.path, "posix.mkdir")
        self.assertFalse(os.path.exists(marker))

    def test_missing_file(self):
        self.assert_named_error(os.path.join(self.get_temp_dir(), "nope.pkl"), "no such",
                                error=smpl.BodyModelNotFoundError)

    def test_missing_error_is_also_file_not_found(self):
        with self.assertRaises(FileNotFoundError):
            smpl.load_body_model(os.path.join(self.get_temp_dir(), "nope.npz"))

    def test_directory_without_the_gender(self):
        write_npz(os.path.join(self.get_temp_dir(), "SMPL_MALE.npz"), self.arrays)
        self.assert_named_error(self.get_temp_dir(), "SMPL_FEMALE.npz", "basicModel_f_lbs_10_207_0_v1.0.0.pkl",
                                error=smpl.BodyModelNotFoundError, gender="female")

    def test_unknown_gender(self):
        write_official_pickle(self.path, self.arrays)
        self.assert_named_error(self.path, "'other'", gender="other")


class ForwardTest(tf.test.TestCase, parameterized.TestCase):
    """Properties of the forward pass on the tiny official-layout model."""

    def setUp(self):
        super().setUp()
        self.arrays = tiny_arrays()
        self.path = write_official_pickle(os.path.join(self.get_temp_dir(), "SMPL_NEUTRAL.pkl"), self.arrays)
        self.model = smpl.load_body_model(self.path)

    def test_zero_pose_and_betas_give_the_template(self):
        outputs = run_tf(self.model, np.zeros((2, 10)), np.zeros((2, 72)))
        vertices, joints24 = smpl.forward_numpy(self.model, np.zeros((2, 10)), np.zeros((2, 72)))
        for got in (outputs["vertices"], vertices):
            self.assertAllClose(got, np.broadcast_to(self.arrays["v_template"], got.shape), atol=1e-6, rtol=0)
        rest = self.arrays["J_regressor"] @ self.arrays["v_template"]
        for got in (outputs["joints"], joints24):
            self.assertAllClose(got, np.broadcast_to(rest, got.shape), atol=1e-6, rtol=0)

    @parameterized.parameters("left_knee", "right_elbow", "spine3", "head")
    def test_rotating_one_joint_moves_only_its_subtree(self, joint_name):
        joint = joints.SMPL_24.index(joint_name)
        betas = random_inputs(1)[0]
        pose = np.zeros((1, 24, 3))
        pose[0, joint] = [0.5, -0.7, 0.3]
        moved = np.linalg.norm(run_tf(self.model, betas, pose)["vertices"][0]
                               - run_tf(self.model, betas, np.zeros((1, 24, 3)))["vertices"][0], axis=-1)
        skinned = self.arrays["weights"][:, subtree(joint)].sum(axis=1)
        self.assertAllLess(moved[skinned == 0], 1e-6)
        self.assertAllGreater(moved[skinned > 0], 1e-3)

    def test_rotation_matrices_equal_axis_angle(self):
        betas, pose, trans = random_inputs(4, angle_scale=1.2)
        from_axis_angle = run_tf(self.model, betas, pose, trans)
        from_matrices = run_tf(self.model, betas, Rotation.from_rotvec(pose.reshape(-1, 3)).as_matrix()
                               .reshape(4, 24, 3, 3), trans)
        for key in from_axis_angle:
            self.assertAllClose(from_matrices[key], from_axis_angle[key], atol=1e-5, rtol=0)

    @parameterized.named_parameters(("zero", 0.0), ("tiny", 1e-7), ("at_switch", smpl.SMALL_ANGLE_RAD),
                                    ("large", 2.5))
    def test_axis_angle_to_rotation_matrix_matches_scipy(self, scale):
        rotvecs = np.random.default_rng(7).normal(size=(16, 3))
        rotvecs *= scale / np.linalg.norm(rotvecs, axis=1, keepdims=True)
        got = smpl.axis_angle_to_rotation_matrix(np.float32(rotvecs)).numpy()
        self.assertAllClose(got, Rotation.from_rotvec(rotvecs).as_matrix(), atol=1e-6, rtol=0)

    def test_gradient_at_zero_pose_is_finite_and_matches_finite_differences(self):
        betas = random_inputs(1)[0]
        probe = np.random.default_rng(8).normal(size=(1, NUM_VERTICES, 3))
        pose = tf.Variable(tf.zeros((1, 24, 3)))
        with tf.GradientTape() as tape:
            vertices = smpl.smpl_forward(smpl.body_constants(self.model), np.float32(betas), pose)["vertices"]
            objective = tf.reduce_sum(vertices * np.float32(probe))
        gradient = tape.gradient(objective, pose).numpy()[0]
        self.assertTrue(np.all(np.isfinite(gradient)))
        step = 1e-6
        numeric = np.zeros((24, 3))
        for j in range(24):
            for k in range(3):
                plus, minus = np.zeros((1, 24, 3)), np.zeros((1, 24, 3))
                plus[0, j, k], minus[0, j, k] = step, -step
                numeric[j, k] = np.sum(probe * (reference_lbs(self.arrays, betas, plus)[0]
                                                - reference_lbs(self.arrays, betas, minus)[0])) / (2 * step)
        self.assertAllClose(gradient, numeric, atol=1e-3, rtol=1e-3)


class SMPLLayerTest(tf.test.TestCase):

    def setUp(self):
        super().setUp()
        self.arrays = tiny_arrays()
        self.path = write_official_pickle(os.path.join(self.get_temp_dir(), "SMPL_MALE.pkl"), self.arrays)
        self.betas, self.pose, self.trans = (np.float32(x) for x in random_inputs(3))
        self.want_vertices = reference_lbs(self.arrays, self.betas, self.pose, self.trans)[0]

    def test_config_round_trip(self):
        layer = smpl.SMPLLayer(model_path=self.path, gender="male")
        config = layer.get_config()
        self.assertEqual((config["model_path"], config["gender"]), (self.path, "male"))
        for rebuilt in (smpl.SMPLLayer.from_config(config),
                        keras.layers.deserialize(keras.layers.serialize(layer))):
            self.assertIsInstance(rebuilt, smpl.SMPLLayer)
            self.assertEqual(rebuilt.body_model.source, self.path)
            self.assertAllClose(rebuilt(self.betas, self.pose, self.trans)["vertices"], self.want_vertices,
                                atol=TOLERANCE_M, rtol=0)

    def test_model_arrays_are_constants_not_weights(self):
        layer = smpl.SMPLLayer(model_path=self.path, gender="male")
        layer(self.betas, self.pose)
        self.assertEmpty(layer.weights)

    def test_functional_model_and_tf_function(self):
        layer = smpl.SMPLLayer(model_path=self.path, gender="male")
        betas_in, pose_in, trans_in = keras.Input((10,)), keras.Input((24, 3)), keras.Input((3,))
        model = keras.Model([betas_in, pose_in, trans_in], layer(betas_in, pose_in, trans_in))
        self.assertAllClose(model([self.betas, self.pose, self.trans])["vertices"], self.want_vertices,
                            atol=TOLERANCE_M, rtol=0)
        graph_fn = tf.function(lambda b, p, t: layer(b, p, t)["vertices"], input_signature=[
            tf.TensorSpec([None, 10]), tf.TensorSpec([None, 72]), tf.TensorSpec([None, 3])])
        self.assertAllClose(graph_fn(self.betas, self.pose.reshape(3, 72), self.trans), self.want_vertices,
                            atol=TOLERANCE_M, rtol=0)

    def test_saved_model_round_trip(self):
        module = tf.Module()
        module.layer = smpl.SMPLLayer(model_path=self.path, gender="male")
        module.forward = tf.function(lambda b, p, t: module.layer(b, p, t), input_signature=[
            tf.TensorSpec([None, 10]), tf.TensorSpec([None, 24, 3]), tf.TensorSpec([None, 3])])
        export_dir = os.path.join(self.get_temp_dir(), "smpl_saved_model")
        tf.saved_model.save(module, export_dir)
        reloaded = tf.saved_model.load(export_dir)
        self.assertAllClose(reloaded.forward(self.betas, self.pose, self.trans)["vertices"], self.want_vertices,
                            atol=TOLERANCE_M, rtol=0)


class OpenModelTest(tf.test.TestCase, parameterized.TestCase):
    """The default model (built by `mhr_tf.body.open_body` on first use), through the same loader."""

    def open_model(self, gender="neutral"):
        model = smpl.load_body_model(None, gender)
        with np.load(model.source) as npz:
            arrays = dict(npz)
        arrays["J_regressor"] = scipy.sparse.csc_matrix(arrays["J_regressor"])
        return model, arrays

    @parameterized.parameters(*smpl.GENDERS)
    def test_matches_reference_lbs(self, gender):
        model, arrays = self.open_model(gender)
        self.assertEqual(model.gender, gender)
        betas, pose, trans = random_inputs(4, seed=9, angle_scale=0.5)
        outputs = run_tf(model, betas, pose, trans)
        vertices, joints24 = reference_lbs(arrays, betas, pose, trans)
        self.assertAllClose(outputs["vertices"], vertices, atol=TOLERANCE_M, rtol=0)
        self.assertAllClose(outputs["joints"], joints24, atol=TOLERANCE_M, rtol=0)
        joints14 = np.einsum("lv,bvc->blc", arrays["J_regressor_lsp14"], vertices)
        self.assertAllClose(outputs["joints14"], joints14, atol=TOLERANCE_M, rtol=0)

    def test_zero_pose_and_betas_give_the_template(self):
        model, arrays = self.open_model()
        outputs = run_tf(model, np.zeros((1, 10)), np.zeros((1, 24, 3)))
        self.assertAllClose(outputs["vertices"][0], arrays["v_template"], atol=1e-5, rtol=0)

    @parameterized.parameters("left_knee", "right_elbow", "head")
    def test_rotating_one_joint_moves_only_skinned_vertices(self, joint_name):
        model, arrays = self.open_model()
        joint = joints.SMPL_24.index(joint_name)
        pose = np.zeros((1, 24, 3))
        pose[0, joint] = [0.6, 0.2, -0.4]
        moved = np.linalg.norm(run_tf(model, np.zeros((1, 10)), pose)["vertices"][0] - arrays["v_template"], axis=-1)
        skinned = arrays["weights"][:, subtree(joint)].sum(axis=1)
        blend_shaped = np.any(arrays["posedirs"][:, :, 9 * (joint - 1):9 * joint] != 0, axis=(1, 2))
        self.assertAllLess(moved[(skinned == 0) & ~blend_shaped], 1e-5)
        self.assertAllGreater(moved[skinned > 0.5], 1e-4)

    def test_gradient_at_zero_pose_is_finite(self):
        model, _ = self.open_model()
        pose = tf.Variable(tf.zeros((2, 72)))
        betas = tf.Variable(tf.zeros((2, 10)))
        with tf.GradientTape() as tape:
            outputs = smpl.smpl_forward(smpl.body_constants(model), betas, pose)
            objective = tf.reduce_sum(tf.square(outputs["vertices"])) + tf.reduce_sum(outputs["joints14"])
        pose_gradient, betas_gradient = tape.gradient(objective, [pose, betas])
        self.assertTrue(np.all(np.isfinite(pose_gradient.numpy())))
        self.assertTrue(np.all(np.isfinite(betas_gradient.numpy())))
        self.assertGreater(np.abs(pose_gradient.numpy()).max(), 0.0)


def test_joint_model_gives_the_full_models_joints():
    """The joints-only model used by the pipeline reproduces the full model's 24 and LSP-14 joints."""
    model = smpl.load_body_model(None, "female")
    small = smpl.joint_model(model)
    rng = np.random.default_rng(5)
    betas = rng.normal(size=(4, 10))
    pose = rng.normal(scale=0.4, size=(4, 72))
    vertices, joints = smpl.forward_numpy(model, betas, pose)
    small_vertices, small_joints = smpl.forward_numpy(small, betas, pose)
    np.testing.assert_allclose(small_joints, joints, atol=1e-5)
    np.testing.assert_allclose(np.einsum("kv,bvc->bkc", small.lsp_regressor, small_vertices),
                               np.einsum("kv,bvc->bkc", model.lsp_regressor, vertices), atol=1e-5)
    assert small.num_vertices < model.num_vertices // 2
