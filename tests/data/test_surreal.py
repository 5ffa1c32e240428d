"""SURREAL decoder and writer, checked against clips built by hand in SURREAL's real layout and against the numbers
SURREAL's authors published (gulvarol/surreal datageneration/misc/3Dto2D/main.m and the sample 01_01_c0001_info.mat).

SURREAL's published camera is a mirror (det -1): the stored images and joints2D are mirror images of the SMPL bodies.
The decoder returns the unmirrored view, in the proper camera R_CAM = diag(-1, 1, 1) @ published (DecoMR's `RBody`).
"""
from __future__ import annotations

import os
import re

import cv2
import numpy as np
import pytest
import scipy.io
from scipy.spatial.transform import Rotation

from mhr_tf.data import surreal, surreal_manifest

T = 3
H, W = 240, 320
K = np.array([[600.0, 0.0, 160.0], [0.0, 600.0, 120.0], [0.0, 0.0, 1.0]])  # getIntrinsicBlender.m
# main.m prints this extrinsic for camLoc = [6.7456; -0.9839; -1.9293]:
PUBLISHED_CAM_LOC = np.array([6.7456, -0.9839, -1.9293])
PUBLISHED_EXTRINSIC = np.array([[0.0, 0.0, -1.0, -1.9293], [0.0, 1.0, 0.0, 0.9839], [-1.0, 0.0, 0.0, 6.7456]])
R_PUBLISHED = PUBLISHED_EXTRINSIC[:, :3]
R_CAM = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])  # DecoMR datasets/preprocess/surreal.py RBody
# Shapes and dtypes of the fields of SURREAL's sample 01_01_c0001_info.mat (T = 100 there), as scipy.io.loadmat
# returns them; "T" stands for the frame count. Strings come back as (1,) unicode arrays, cells as (1, T) objects.
REAL_INFO_LAYOUT = {
    "bg": ((1, "T"), "O"), "camDist": ((1, 1), "float32"), "camLoc": ((3, 1), "float32"),
    "clipNo": ((1, 1), "uint8"), "cloth": ((1, "T"), "O"), "gender": (("T", 1), "uint8"),
    "joints2D": ((2, 24, "T"), "float32"), "joints3D": ((3, 24, "T"), "float32"), "light": ((9, "T"), "float32"),
    "pose": ((72, "T"), "float32"), "sequence": ((1,), "U"), "shape": ((10, "T"), "float32"),
    "source": ((1,), "U"), "stride": ((1, 1), "uint8"), "zrot": (("T", 1), "float32"),
}
GREYS = (40, 120, 200)  # flat greys survive lossy mp4 coding to within a few levels


def _cam_to_world(points_cam, cam_loc):
    """x_world = R^T (x_cam - t) with t = -R camLoc, in the unmirrored camera."""
    return (points_cam + R_CAM @ cam_loc) @ R_CAM


def _stored_joints2d(points_world, cam_loc):
    """joints2D as SURREAL computes them: the published extrinsic, K, rounding (main.m)."""
    return np.round(_project(points_world @ R_PUBLISHED.T - R_PUBLISHED @ cam_loc))


def _project(points_cam):
    p = points_cam @ K.T
    return p[..., :2] / p[..., 2:]


def _two_tone(num_frames):
    """Frame t: the left half GREYS[t], the right half 255 - GREYS[t], so a left-right flip is visible."""
    frames = np.empty((num_frames, H, W, 3), np.uint8)
    for t in range(num_frames):
        frames[t, :, :W // 2], frames[t, :, W // 2:] = GREYS[t % 3], 255 - GREYS[t % 3]
    return frames


def _halves(frames):
    """Mean of the left and right halves of each frame (away from the edge, which coding blurs): [T, 2]."""
    return np.stack([frames[:, :, 20:W // 2 - 20].mean((1, 2, 3)), frames[:, :, W // 2 + 20:-20].mean((1, 2, 3))], 1)


def _write_mp4(path, num_frames):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, (W, H))
    for frame in _two_tone(num_frames):
        writer.write(frame)
    writer.release()


def _random_truth(rng, num_frames=T):
    cam_loc = np.array([7.0, -1.0, -2.0]) + rng.normal(0, 0.3, 3)
    joints_cam = np.array([0.0, 0.0, 6.0]) + rng.uniform(-0.6, 0.6, (num_frames, 24, 3))
    segm = rng.integers(0, 25, (num_frames, H, W)).astype(np.uint8)
    depth = np.where(segm > 0, rng.uniform(5, 7, (num_frames, H, W)), 1e10).astype(np.float32)
    return dict(cam_loc=cam_loc, joints_cam=joints_cam, pose=rng.normal(0, 0.5, (num_frames, 72)),
                betas=rng.normal(0, 1, 10), zrot=rng.uniform(0, 2 * np.pi), gender_code=1, segm=segm, depth=depth)


def _info_dict(truth, num_frames=T):
    """`_info.mat` fields in the layout of SURREAL's released files (REAL_INFO_LAYOUT)."""
    world = _cam_to_world(truth["joints_cam"], truth["cam_loc"])
    cell = np.empty((1, num_frames), dtype=object)
    cell[0, :] = ["LSUN/img/kitchen_tr_img/x.jpg"] * num_frames
    return {
        "bg": cell, "camDist": np.array([[7.7]], np.float32),
        "camLoc": truth["cam_loc"].reshape(3, 1).astype(np.float32), "clipNo": np.array([[1]], np.uint8),
        "cloth": cell, "gender": np.full((num_frames, 1), truth["gender_code"], np.uint8),
        "joints2D": _stored_joints2d(world, truth["cam_loc"]).transpose(2, 1, 0).astype(np.float32),
        "joints3D": world.transpose(2, 1, 0).astype(np.float32), "light": np.ones((9, num_frames), np.float32),
        "pose": truth["pose"].T.astype(np.float32), "sequence": "01_01_c0001",
        "shape": np.repeat(truth["betas"][:, None], num_frames, 1).astype(np.float32), "source": "cmu",
        "stride": np.array([[50]], np.uint8), "zrot": np.full((num_frames, 1), truth["zrot"], np.float32),
    }


def _write_hand_built_clip(root, truth, num_frames=T, info=None, segm=None, depth=None, video_frames=None):
    """One clip in the real layout, written with scipy.io.savemat and OpenCV only."""
    folder = root / "train" / "run0" / "01_01"
    folder.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(folder / "01_01_c0001_info.mat", _info_dict(truth, num_frames) if info is None else info,
                     do_compression=True)
    scipy.io.savemat(folder / "01_01_c0001_segm.mat", segm if segm is not None else
                     {f"segm_{t + 1}": truth["segm"][t] for t in range(num_frames)}, do_compression=True)
    scipy.io.savemat(folder / "01_01_c0001_depth.mat", depth if depth is not None else
                     {f"depth_{t + 1}": truth["depth"][t] for t in range(num_frames)}, do_compression=True)
    _write_mp4(folder / "01_01_c0001.mp4", num_frames if video_frames is None else video_frames)
    return folder / "01_01_c0001.mp4"


@pytest.fixture
def hand_built(tmp_path):
    truth = _random_truth(np.random.default_rng(0))
    return _write_hand_built_clip(tmp_path, truth), truth


def _expected_root_cam(root_rotvec, zrot):
    """The published composition, in float64 with scipy: extrinsic · R90 (euler2mat(pi/2,0,0)) · Rz(zrot) · R(pose)."""
    return (Rotation.from_matrix(R_CAM) * Rotation.from_euler("x", np.pi / 2) * Rotation.from_euler("z", zrot)
            * Rotation.from_rotvec(root_rotvec)).as_matrix()


def test_extrinsics_reproduce_the_published_example():
    R, t = surreal.surreal_extrinsics(PUBLISHED_CAM_LOC)
    np.testing.assert_allclose(np.c_[R, t], PUBLISHED_EXTRINSIC, atol=1e-12)
    # main.m: J3D = [-0.8645; -1.0915; -1.0260] projects to J2D = [89; 112].
    np.testing.assert_array_equal(surreal.project_joints(np.array([[-0.8645, -1.0915, -1.0260]]), PUBLISHED_CAM_LOC),
                                  [[89, 112]])


def test_published_camera_is_a_mirror_and_the_decoder_camera_is_proper():
    assert np.linalg.det(R_PUBLISHED) == pytest.approx(-1.0)
    R, t = surreal.camera_extrinsics(PUBLISHED_CAM_LOC)
    np.testing.assert_allclose(R, R_CAM, atol=1e-12)
    np.testing.assert_allclose(t, -R_CAM @ PUBLISHED_CAM_LOC, atol=1e-12)


def test_hand_built_clip_reads_as_written(hand_built):
    mp4, truth = hand_built
    clip = surreal.load_clip(mp4)
    np.testing.assert_allclose(clip.joints3d_cam, truth["joints_cam"], atol=1e-5)
    stored = _stored_joints2d(_cam_to_world(truth["joints_cam"], truth["cam_loc"]), truth["cam_loc"])
    np.testing.assert_array_equal(clip.joints2d[..., 0], 2 * 160.0 - stored[..., 0])  # mirrored about cx
    np.testing.assert_array_equal(clip.joints2d[..., 1], stored[..., 1])
    np.testing.assert_allclose(clip.pose, truth["pose"], atol=1e-6)
    np.testing.assert_allclose(clip.betas, truth["betas"], atol=1e-6)
    np.testing.assert_allclose(clip.zrot, truth["zrot"], atol=1e-6)
    np.testing.assert_array_equal(clip.segm, truth["segm"][:, :, ::-1])
    np.testing.assert_array_equal(clip.depth, truth["depth"][:, :, ::-1])
    assert clip.gender == "male"
    assert clip.frames.shape == (T, H, W, 3) and clip.frames.dtype == np.uint8
    np.testing.assert_allclose(_halves(clip.frames), _halves(_two_tone(T))[:, ::-1], atol=6)
    np.testing.assert_array_equal(clip.frame_indices, np.arange(T))
    np.testing.assert_allclose(clip.cam_loc, truth["cam_loc"], atol=1e-6)


def test_pose_cam_root_is_extrinsic_r90_zrot_pose_composition(hand_built):
    mp4, truth = hand_built
    clip = surreal.load_clip(mp4, load_segm=False, load_depth=False)
    for t in range(T):
        expected = _expected_root_cam(clip.pose[t, :3].astype(np.float64), float(clip.zrot[t]))
        np.testing.assert_allclose(Rotation.from_rotvec(clip.pose_cam[t, :3]).as_matrix(), expected, atol=1e-5)
    np.testing.assert_array_equal(clip.pose_cam[:, 3:], clip.pose[:, 3:])


def test_projected_joints3d_cam_within_half_pixel_of_joints2d(hand_built):
    clip = surreal.load_clip(hand_built[0], load_segm=False, load_depth=False)
    uv = _project(clip.joints3d_cam.astype(np.float64))
    assert np.abs(uv - clip.joints2d).max() <= 0.5 + 1e-4


def test_frame_slice_reads_only_those_frames(hand_built):
    mp4, truth = hand_built
    clip = surreal.load_clip(mp4, frames=slice(1, 3))
    np.testing.assert_array_equal(clip.frame_indices, [1, 2])
    np.testing.assert_array_equal(clip.segm, truth["segm"][1:3, :, ::-1])
    np.testing.assert_allclose(clip.joints3d_cam, truth["joints_cam"][1:3], atol=1e-5)
    np.testing.assert_allclose(_halves(clip.frames), _halves(_two_tone(T))[1:3, ::-1], atol=6)


def test_one_frame_clip_as_matlab_saves_it(tmp_path):
    """MATLAB drops trailing singleton dimensions: joints3D (3,24), joints2D (2,24); zrot and gender (1,1)."""
    truth = _random_truth(np.random.default_rng(1), num_frames=1)
    info = _info_dict(truth, num_frames=1)
    info["joints3D"], info["joints2D"] = info["joints3D"][..., 0], info["joints2D"][..., 0]
    mp4 = _write_hand_built_clip(tmp_path, truth, num_frames=1, info=info)
    clip = surreal.load_clip(mp4)
    np.testing.assert_allclose(clip.joints3d_cam, truth["joints_cam"], atol=1e-5)
    assert clip.joints2d.shape == (1, 24, 2)


def _corrupt(name):
    """(writer overrides, expected error pattern) for each way a clip can be broken."""
    def info_without(field):
        def make(truth):
            info = _info_dict(truth)
            del info[field]
            return dict(info=info)
        return make

    def info_with(field, value):
        def make(truth):
            info = _info_dict(truth)
            info[field] = value(info[field])
            return dict(info=info)
        return make

    return {
        "missing_joints3D": (info_without("joints3D"), r"01_01_c0001_info\.mat: no field 'joints3D'"),
        "joints3D_without_T": (info_with("joints3D", lambda v: v[..., 0]),
                               r"_info\.mat: field 'joints3D' has shape \(3, 24\) — expected \(3, 24, T\)"),
        "pose_70_rows": (info_with("pose", lambda v: v[:70]), r"_info\.mat: field 'pose' has shape \(70, 3\)"),
        "gender_code_2": (info_with("gender", lambda v: v * 0 + 2), r"_info\.mat: field 'gender' holds \[2\]"),
        "zrot_two_columns": (info_with("zrot", lambda v: np.ones((3, 2), np.float32)),
                             r"_info\.mat: field 'zrot' has shape \(3, 2\)"),
        "segm_frame_missing": (lambda truth: dict(segm={f"segm_{t + 1}": truth["segm"][t] for t in range(2)}),
                               r"01_01_c0001_segm\.mat: no field 'segm_3'"),
        "depth_extra_frame": (lambda truth: dict(depth={f"depth_{t + 1}": truth["depth"][0] for t in range(4)}),
                              r"01_01_c0001_depth\.mat: holds 4 'depth_<t>' frames — expected depth_1\.\.depth_3"),
        "segm_part_id_30": (lambda truth: dict(segm={f"segm_{t + 1}": np.full((H, W), 30, np.uint8)
                                                     for t in range(T)}), r"_segm\.mat: part ids span 30\.\.30"),
        "video_two_frames": (lambda truth: dict(video_frames=2),
                             r"01_01_c0001\.mp4: has 2 frames — expected T = 3 as in 01_01_c0001_info\.mat"),
    }[name]


@pytest.mark.parametrize("name", ["missing_joints3D", "joints3D_without_T", "pose_70_rows", "gender_code_2",
                                  "zrot_two_columns", "segm_frame_missing", "depth_extra_frame", "segm_part_id_30",
                                  "video_two_frames"])
def test_corrupted_clip_raises_error_naming_file_and_field(tmp_path, name):
    make, pattern = _corrupt(name)
    truth = _random_truth(np.random.default_rng(2))
    mp4 = _write_hand_built_clip(tmp_path, truth, **make(truth))
    with pytest.raises(surreal.SurrealFormatError, match=pattern):
        surreal.load_clip(mp4)


def test_slice_past_a_short_video_names_the_mismatch(tmp_path):
    truth = _random_truth(np.random.default_rng(9))
    mp4 = _write_hand_built_clip(tmp_path, truth, video_frames=2)
    with pytest.raises(surreal.SurrealFormatError, match=r"01_01_c0001\.mp4: has 2 frames.*expected T = 3"):
        surreal.load_clip(mp4, frames=slice(1, 3))


def test_missing_companion_file_is_named(hand_built):
    mp4, _ = hand_built
    surreal.companion_path(mp4, "depth").unlink()
    with pytest.raises(surreal.SurrealFormatError, match=r"01_01_c0001_depth\.mat: missing"):
        surreal.load_clip(mp4)
    assert surreal.load_clip(mp4, load_depth=False).depth is None


def test_info_that_is_not_a_mat_file_is_named(hand_built):
    mp4, _ = hand_built
    surreal.companion_path(mp4, "info").write_bytes(b"this is not a MATLAB file at all" * 8)
    with pytest.raises(surreal.SurrealFormatError, match=r"01_01_c0001_info\.mat: not a readable MATLAB v5 file"):
        surreal.load_clip(mp4)


def test_camera_to_surreal_world_inverts_the_published_composition():
    rng = np.random.default_rng(3)
    pose_cam = rng.normal(0, 0.8, (4, 72))
    joints_cam = rng.normal(0, 1, (4, 24, 3)) + [0, 0, 5]
    zrot, cam_loc = 2.6675, PUBLISHED_CAM_LOC
    pose, joints_world = surreal.camera_to_surreal_world(pose_cam, joints_cam, cam_loc, zrot)
    for t in range(4):
        # stored root = (extrinsic · R90 · Rz)^-1 · R_cam, so that the reader's composition gives R_cam back
        expected = (Rotation.from_euler("z", zrot).inv() * Rotation.from_euler("x", np.pi / 2).inv()
                    * Rotation.from_matrix(R_CAM).inv() * Rotation.from_rotvec(pose_cam[t, :3])).as_matrix()
        np.testing.assert_allclose(Rotation.from_rotvec(pose[t, :3]).as_matrix(), expected, atol=1e-12)
    np.testing.assert_array_equal(pose[:, 3:], pose_cam[:, 3:])
    np.testing.assert_allclose(joints_world, _cam_to_world(joints_cam, cam_loc), atol=1e-12)


def test_ray_distance_and_planar_depth_are_inverse_closed_form():
    z = np.full((H, W), 4.0)
    z[0, 0] = 1e10
    ray = surreal.ray_distance_from_planar_depth(z)
    # Blender traces pixel (row 10, column 300) through raster point (300.5, 10.5): the surface point is
    # z * ((300.5 - cx) / f, (10.5 - cy) / f, 1), at this distance from the camera centre
    np.testing.assert_allclose(ray[10, 300], np.linalg.norm(4.0 * np.array([140.5 / 600, -109.5 / 600, 1.0])))
    assert ray[0, 0] == 1e10
    np.testing.assert_allclose(ray[1:], ray[1:, ::-1], rtol=1e-12)  # unchanged by the decoder's left-right flip
    np.testing.assert_allclose(surreal.planar_depth_from_ray_distance(ray), z)


def _written_clip(tmp_path, rng, num_frames=T, pose_cam=None, joints_cam=None, betas=None, gender="female"):
    """A clip written by the simulator's writer from a body and images in the unmirrored camera frame."""
    from mhr_tf.sim import writers

    pose_cam = rng.normal(0, 0.6, (num_frames, 72)) if pose_cam is None else pose_cam
    joints_cam = rng.normal(0, 0.4, (num_frames, 24, 3)) + [0, 0, 6] if joints_cam is None else joints_cam
    betas = rng.normal(0, 1, 10) if betas is None else betas
    segm = rng.integers(0, 25, (num_frames, H, W)).astype(np.uint8)
    depth = np.where(segm > 0, rng.uniform(5, 7, segm.shape), 1e10).astype(np.float32)
    mp4 = writers.write_surreal_clip_from_camera(
        tmp_path, "test", 2, "07_03", 12, _two_tone(num_frames), segm, depth, joints_cam, pose_cam, betas, gender,
        cam_loc=np.array([6.7, -1.0, -1.9]), zrot=1.234)
    return mp4, dict(pose_cam=pose_cam, joints_cam=joints_cam, betas=betas, segm=segm, depth=depth)


def test_writer_reader_round_trip(tmp_path):
    mp4, truth = _written_clip(tmp_path, np.random.default_rng(4))
    assert mp4 == tmp_path / "test" / "run2" / "07_03" / "07_03_c0012.mp4"
    clip = surreal.load_clip(mp4)
    for t in range(T):
        np.testing.assert_allclose(Rotation.from_rotvec(clip.pose_cam[t, :3]).as_matrix(),
                                   Rotation.from_rotvec(truth["pose_cam"][t, :3]).as_matrix(), atol=1e-5)
    np.testing.assert_allclose(clip.pose_cam[:, 3:], truth["pose_cam"][:, 3:], atol=1e-6)
    np.testing.assert_allclose(clip.betas, truth["betas"], atol=1e-6)
    np.testing.assert_allclose(clip.joints3d_cam, truth["joints_cam"], atol=1e-5)
    assert np.abs(_project(truth["joints_cam"]) - clip.joints2d).max() <= 0.5 + 1e-4
    np.testing.assert_array_equal(clip.segm, truth["segm"])
    np.testing.assert_array_equal(clip.depth, truth["depth"])
    assert clip.gender == "female"
    np.testing.assert_allclose(_halves(clip.frames), _halves(_two_tone(T)), atol=6)


def test_written_files_have_the_real_layout_and_are_mirrored(tmp_path):
    mp4, truth = _written_clip(tmp_path, np.random.default_rng(5))
    info = scipy.io.loadmat(surreal.companion_path(mp4, "info"))
    assert {k for k in info if not k.startswith("__")} == set(REAL_INFO_LAYOUT)
    for name, (shape, dtype) in REAL_INFO_LAYOUT.items():
        assert info[name].shape == tuple(T if d == "T" else d for d in shape), name
        assert info[name].dtype.kind == "U" if dtype == "U" else info[name].dtype == np.dtype(dtype), name
    assert info["sequence"][0] == "07_03_c0012" and int(info["clipNo"][0, 0]) == 12
    world = info["joints3D"].transpose(2, 1, 0).astype(np.float64)
    np.testing.assert_array_equal(info["joints2D"].transpose(2, 1, 0), _stored_joints2d(world, info["camLoc"][:, 0]))
    segm = scipy.io.loadmat(surreal.companion_path(mp4, "segm"))
    assert sorted(k for k in segm if not k.startswith("__")) == ["segm_1", "segm_2", "segm_3"]
    assert segm["segm_1"].dtype == np.uint8
    np.testing.assert_array_equal(segm["segm_2"], truth["segm"][1, :, ::-1])  # stored mirrored, as SURREAL's
    depth = scipy.io.loadmat(surreal.companion_path(mp4, "depth"))["depth_2"]
    assert depth.dtype == np.float32
    np.testing.assert_array_equal(depth, truth["depth"][1, :, ::-1])


def test_manifest_is_scanned_once_and_cached(tmp_path, monkeypatch):
    truth = _random_truth(np.random.default_rng(6))
    mp4 = _write_hand_built_clip(tmp_path, truth)
    other = tmp_path / "train" / "run1" / "02_05" / "02_05_c0003.mp4"
    other.parent.mkdir(parents=True)
    info = _info_dict(truth)
    info["gender"][:] = 0
    scipy.io.savemat(surreal.companion_path(other, "info"), info)
    other.write_bytes(b"")  # the manifest reads only _info.mat

    loads = []
    real_loadmat = scipy.io.loadmat
    monkeypatch.setattr(scipy.io, "loadmat", lambda *a, **k: loads.append(a[0]) or real_loadmat(*a, **k))
    first = surreal_manifest.build_manifest(tmp_path, "train")
    assert first == [(mp4, T, "male"), (other, T, "female")]
    assert len(loads) == 2 and (tmp_path / "mhr_tf_manifest_train.json").is_file()
    assert surreal_manifest.build_manifest(tmp_path, "train") == first
    assert len(loads) == 2  # read from the cache
    surreal_manifest.build_manifest(tmp_path, "train", rebuild=True)
    assert len(loads) == 4


def test_manifest_cache_falls_back_to_mhr_tf_home_when_root_unwritable(tmp_path, monkeypatch):
    _write_hand_built_clip(tmp_path, _random_truth(np.random.default_rng(7)))
    (tmp_path / "mhr_tf_manifest_train.json").mkdir()  # unwritable as a file, whatever the user's permissions
    first = surreal_manifest.build_manifest(tmp_path, "train")
    home_cache = surreal_manifest.manifest_cache_paths(tmp_path, "train")[1]
    assert home_cache.is_file()
    monkeypatch.setattr(surreal_manifest, "_scan", lambda *a: pytest.fail("rescanned despite the cache"))
    assert surreal_manifest.build_manifest(tmp_path, "train") == first


def test_manifest_names_missing_split_folder(tmp_path):
    with pytest.raises(surreal.SurrealFormatError, match=r"no 'val' folder"):
        surreal_manifest.build_manifest(tmp_path, "val")


def _info_only_clip(root, seq, truth, info=None, gender_code=1):
    """A clip of the train split with only its `_info.mat` (what the manifest reads) and an empty .mp4."""
    mp4 = root / "train" / "run0" / seq / f"{seq}_c0001.mp4"
    mp4.parent.mkdir(parents=True, exist_ok=True)
    if info is None:
        info = _info_dict(truth)
        info["gender"][:] = gender_code
    scipy.io.savemat(surreal.companion_path(mp4, "info"), info)  # uncompressed: same fields, same size
    mp4.write_bytes(b"")
    return mp4


def _broken_info_set(root):
    """Four clips: two good, one whose `_info.mat` is a short text file, one whose `_info.mat` is cut in half."""
    truth = _random_truth(np.random.default_rng(10))
    good = [_info_only_clip(root, "01_01", truth), _info_only_clip(root, "01_04", truth, gender_code=0)]
    text = _info_only_clip(root, "01_02", truth)
    surreal.companion_path(text, "info").write_text("not a MATLAB file\n")  # < 128 bytes: scipy's MatReadError
    cut = _info_only_clip(root, "01_03", truth)
    whole = surreal.companion_path(cut, "info").read_bytes()
    surreal.companion_path(cut, "info").write_bytes(whole[:len(whole) // 2])
    return good, text, cut


def test_manifest_skips_and_counts_unreadable_info_files(tmp_path, caplog):
    (good_male, good_female), text, cut = _broken_info_set(tmp_path)
    with caplog.at_level("INFO", logger="mhr_tf.data.surreal"):
        manifest = surreal_manifest.load_manifest(tmp_path, "train")
    assert manifest.clips == [(good_male, T, "male"), (good_female, T, "female")]
    assert [(s.path, s.reason) for s in manifest.skipped] == [(text, "not a readable MATLAB v5 file"),
                                                              (cut, "not a readable MATLAB v5 file")]
    assert all(str(surreal.companion_path(s.path, "info")) in s.message for s in manifest.skipped)
    assert "MatReadError" in manifest.skipped[0].message
    (record,) = caplog.records  # one summary line, not one per file
    assert record.levelname == "WARNING"
    assert re.search(r"2 of 4 clips skipped: not a readable MATLAB v5 file \(2\); e\.g\. .*01_02_c0001_info\.mat: "
                     r"not a readable MATLAB v5 file", record.getMessage())


def test_manifest_skips_a_clip_with_a_non_finite_label_and_names_it(tmp_path, caplog):
    truth = _random_truth(np.random.default_rng(11))
    good = _info_only_clip(tmp_path, "01_01", truth)
    info = _info_dict(truth)
    info["joints3D"][1, 5, 2] = np.nan  # y of joint 5 in frame 2
    bad = _info_only_clip(tmp_path, "01_02", truth, info=info)
    manifest = surreal_manifest.load_manifest(tmp_path, "train")
    assert manifest.clips == [(good, T, "male")]
    assert [(s.path, s.reason) for s in manifest.skipped] == [(bad, "non-finite joints3D")]
    assert "1 of 2 clips skipped: non-finite joints3D (1); e.g. " in caplog.text
    assert "01_02_c0001_info.mat: non-finite joints3D (frame 2)" in caplog.text


def test_skipped_clips_are_kept_in_the_cached_manifest(tmp_path, monkeypatch, caplog):
    _broken_info_set(tmp_path)
    first = surreal_manifest.load_manifest(tmp_path, "train")
    monkeypatch.setattr(surreal_manifest, "_scan", lambda *a: pytest.fail("rescanned an unchanged folder"))
    with caplog.at_level("INFO", logger="mhr_tf.data.surreal"):
        assert surreal_manifest.load_manifest(tmp_path, "train") == first
    assert "2 of 4 clips skipped" in caplog.text  # still said, as information, when read from the cache


def test_manifest_without_a_readable_clip_raises_one_error_naming_the_root(tmp_path):
    _, text, cut = _broken_info_set(tmp_path)
    for mp4 in sorted((tmp_path / "train").glob("run0/*/*.mp4")):
        if mp4 not in (text, cut):
            surreal.companion_path(mp4, "info").write_bytes(b"")
    with pytest.raises(surreal.SurrealFormatError, match=rf"^{re.escape(str(tmp_path.resolve()))}: no readable "
                       r"SURREAL clip in 'train' .*4 of 4 clips skipped: not a readable MATLAB v5 file \(4\)"):
        surreal_manifest.build_manifest(tmp_path, "train")
    assert not (tmp_path / "mhr_tf_manifest_train.json").exists()


def _bump_mtime(path):
    """Moves a file's mtime a second on: a rewrite within the file system's mtime resolution would not show."""
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


@pytest.mark.parametrize("change", ["clip_added", "clip_removed", "bad_info_fixed", "info_rewritten"])
def test_manifest_is_rescanned_when_the_folder_changed(tmp_path, change):
    (male, female), text, _ = _broken_info_set(tmp_path)
    first = surreal_manifest.load_manifest(tmp_path, "train")
    truth = _random_truth(np.random.default_rng(12))
    if change == "clip_added":
        added = _info_only_clip(tmp_path, "01_00", truth)
        expected_clips, expected_skipped = [added, male, female], 2
    elif change == "clip_removed":
        female.unlink()
        expected_clips, expected_skipped = [male], 2
    elif change == "bad_info_fixed":
        info_path = surreal.companion_path(text, "info")
        scipy.io.savemat(info_path, _info_dict(truth))
        _bump_mtime(info_path)
        expected_clips, expected_skipped = [male, text, female], 1
    else:  # same size, new content: the male clip's file now says female
        info_path = surreal.companion_path(male, "info")
        size = info_path.stat().st_size
        info = _info_dict(_random_truth(np.random.default_rng(10)))
        info["gender"][:] = 0
        scipy.io.savemat(info_path, info)
        assert info_path.stat().st_size == size
        _bump_mtime(info_path)
        expected_clips, expected_skipped = [male, female], 2
    again = surreal_manifest.load_manifest(tmp_path, "train")
    assert again.signature != first.signature
    assert [e.path for e in again.clips] == expected_clips
    assert len(again.skipped) == expected_skipped
    if change == "info_rewritten":
        assert [e.gender for e in again.clips] == ["female", "female"]


@pytest.mark.parametrize("field, index, pattern", [
    ("joints3D", (1, 5, 2), r"01_01_c0001_info\.mat: non-finite joints3D \(frame 2\)$"),
    ("joints2D", (0, 3, 1), r"01_01_c0001_info\.mat: non-finite joints2D \(frame 1\)$"),
    ("pose", (40, 0), r"01_01_c0001_info\.mat: non-finite pose \(frame 0\)$"),
    ("shape", (3, 2), r"01_01_c0001_info\.mat: non-finite shape \(frame 2\)$"),
    ("zrot", (1, 0), r"01_01_c0001_info\.mat: non-finite zrot \(frame 1\)$"),
    ("camLoc", (2, 0), r"01_01_c0001_info\.mat: non-finite camLoc \(1 of 3 values\)$"),
])
def test_non_finite_info_field_raises_naming_file_field_and_frame(tmp_path, field, index, pattern):
    truth = _random_truth(np.random.default_rng(13))
    info = _info_dict(truth)
    info[field][index] = np.nan
    mp4 = _write_hand_built_clip(tmp_path, truth, info=info)
    with pytest.raises(ValueError, match=pattern):
        surreal.load_clip(mp4, load_segm=False, load_depth=False)


def test_inf_in_several_frames_names_the_first_and_counts_the_rest(tmp_path):
    truth = _random_truth(np.random.default_rng(14))
    info = _info_dict(truth)
    info["joints3D"][0, 0, 1:] = np.inf
    mp4 = _write_hand_built_clip(tmp_path, truth, info=info)
    with pytest.raises(surreal.SurrealFormatError, match=r"non-finite joints3D \(frame 1 and 1 more of 3\)$"):
        surreal.load_clip(mp4, load_segm=False, load_depth=False)


@pytest.mark.parametrize("kind", ["depth", "segm"])
def test_non_finite_depth_or_segm_frame_is_named_before_any_cast(tmp_path, kind):
    truth = _random_truth(np.random.default_rng(15))
    frames = {f"{kind}_{t + 1}": truth[kind][t].astype(np.float32) for t in range(T)}
    frames[f"{kind}_3"][100, 100] = np.nan
    mp4 = _write_hand_built_clip(tmp_path, truth, **{kind: frames})
    with pytest.raises(surreal.SurrealFormatError,
                       match=rf"01_01_c0001_{kind}\.mat: non-finite {kind} \(frame 2, field '{kind}_3'\)$"):
        surreal.load_clip(mp4)
    # a slice without the bad frame reads it neither
    assert surreal.load_clip(mp4, frames=slice(0, 2)).frame_indices.tolist() == [0, 1]


def _tiny_body_model(smpl, rng, num_vertices=48):
    """An SMPL-layout model with few vertices (the property below holds for any such model; the open model takes
    seconds to build)."""
    from mhr_tf.body.joints import SMPL_PARENTS

    weights = rng.uniform(0, 1, (num_vertices, 24)) ** 4
    regressor = rng.uniform(0, 1, (24, num_vertices)) ** 4
    kintree = np.stack([np.where(SMPL_PARENTS < 0, 2**32 - 1, SMPL_PARENTS), np.arange(24)])
    return smpl.body_model_from_arrays(dict(
        v_template=rng.normal(0, 0.3, (num_vertices, 3)), shapedirs=rng.normal(0, 0.01, (num_vertices, 3, 10)),
        posedirs=rng.normal(0, 0.001, (num_vertices, 3, 207)), J_regressor=regressor / regressor.sum(1, keepdims=True),
        weights=weights / weights.sum(1, keepdims=True), kintree_table=kintree, f=np.array([[0, 1, 2]])),
        source="tiny", gender="male")


def test_body_driven_by_pose_cam_reproduces_joints3d_cam_up_to_translation(tmp_path):
    from mhr_tf.body import smpl
    rng = np.random.default_rng(8)
    model = _tiny_body_model(smpl, rng)
    pose_cam = rng.normal(0, 0.3, (T, 72))
    pose_cam[:, :3] = Rotation.from_euler("x", np.pi).as_rotvec()  # upright in the camera frame (y down)
    betas = rng.normal(0, 1, 10)
    _, joints = smpl.forward_numpy(model, np.tile(betas, (T, 1)), pose_cam, np.tile([0.1, 0.2, 6.0], (T, 1)))
    mp4, _ = _written_clip(tmp_path, rng, pose_cam=pose_cam, joints_cam=joints, betas=betas, gender="male")
    clip = surreal.load_clip(mp4, load_segm=False, load_depth=False)
    _, joints_again = smpl.forward_numpy(model, np.tile(clip.betas, (T, 1)), clip.pose_cam, None)
    offset = clip.joints3d_cam - joints_again
    np.testing.assert_allclose(offset, np.broadcast_to(offset[:, :1], offset.shape), atol=1e-5)
    assert np.abs(offset[:, 0] - [0.1, 0.2, 6.0]).max() < 1e-4
