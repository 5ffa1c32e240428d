"""The simulator's SURREAL-style clips read back through the real decoder: what the files say equals what the
simulator used, the files agree with themselves (camera, body, segmentation, depth), and one seed gives the same
bytes. References are float64 numpy (tests/sim/references.py) and the body model."""
import cv2
import numpy as np
import pytest
import scipy.io

from mhr_tf.body import joints as joint_sets
from mhr_tf.data import provenance, surreal, surreal_manifest
from mhr_tf.geometry import SURREAL_IMAGE_HW
from mhr_tf.sim import cameras, preview, scene, sets, surreal_set, threedpw_set
from tests.sim import references

SEED = 3
FRAMES = 8
MAT_HEADER_TEXT = 116  # MATLAB 5 header: 116 bytes of text (with a creation time), then the data's bytes
PARENTS = joint_sets.SMPL_PARENTS


@pytest.fixture(scope="session")
def surreal_clips(tmp_path_factory):
    """Two clips written once per session, and the simulator's in-memory truth for them."""
    root = tmp_path_factory.mktemp("surreal_sim")
    paths = surreal_set.write_surreal_set(root, 2, FRAMES, SEED, workers=1, progress=False)
    truth = [surreal_set.make_surreal_sequence(SEED, i, FRAMES) for i in range(2)]
    return root, paths, truth


def test_surreal_set_is_in_surreal_layout_and_says_it_is_simulated(surreal_clips):
    root, paths, truth = surreal_clips
    assert [p.relative_to(root).as_posix() for p in paths] == [
        "train/run0/sim00001/sim00001_c0001.mp4", "train/run0/sim00002/sim00002_c0001.mp4"]
    for mp4 in paths:
        for kind in ("info", "segm", "depth"):
            assert surreal.companion_path(mp4, kind).is_file()
        info = scipy.io.loadmat(surreal.companion_path(mp4, "info"))
        assert str(info["source"][0]) == provenance.SURREAL_SIMULATED_SOURCE
        assert str(info["sequence"][0]) == mp4.stem
        assert str(info["bg"][0, 0][0]).startswith("simulated:")
    assert [e.path.resolve() for e in surreal_manifest.build_manifest(root, "train", rebuild=True)] == [
        p.resolve() for p in paths]
    assert sets.read_set_record(root)["kind"] == "surreal"


def test_surreal_round_trip_gives_back_pose_betas_and_joints(surreal_clips):
    _, paths, truth = surreal_clips
    for mp4, seq in zip(paths, truth):
        clip = surreal.load_clip(mp4)
        assert clip.gender == seq.gender
        np.testing.assert_allclose(clip.betas, seq.betas, atol=1e-6)
        # Axis-angle is not unique: compare the joint rotations.
        np.testing.assert_allclose(references.rotations(clip.pose_cam), references.rotations(seq.pose_cam), atol=2e-5)
        np.testing.assert_allclose(clip.joints3d_cam, seq.joints3d_cam, atol=2e-5)
        np.testing.assert_array_equal(clip.segm, seq.segm)
        assert clip.frames.shape == (FRAMES,) + SURREAL_IMAGE_HW + (3,)
        # The video is lossy: compare the decoded frames with the rendered ones on average.
        assert np.abs(clip.frames.astype(float) - seq.frames).mean() < 6.0


def test_surreal_joints2d_are_the_projection_of_joints3d_cam(surreal_clips):
    _, paths, _ = surreal_clips
    for mp4 in paths:
        clip = surreal.load_clip(mp4, load_segm=False, load_depth=False)
        # SURREAL's f = 600 px, principal point (160, 120)
        uv = references.project(clip.joints3d_cam, 600.0, 600.0, 160.0, 120.0)
        assert np.abs(uv - clip.joints2d).max() <= 0.5 + 1e-3  # SURREAL rounds joints2D to whole pixels


def test_surreal_body_driven_by_pose_cam_reproduces_joints3d_cam_up_to_translation(surreal_clips):
    _, paths, _ = surreal_clips
    for mp4 in paths:
        clip = surreal.load_clip(mp4, load_segm=False, load_depth=False)
        _, joints = references.forward(references.body(clip.gender), clip.betas, clip.pose_cam)
        offset = clip.joints3d_cam - joints  # [T, 24, 3]: one translation per frame
        assert np.abs(offset - offset[:, :1]).max() < 1e-4


def test_surreal_segm_depth_and_body_agree(surreal_clips):
    _, paths, _ = surreal_clips
    for mp4 in paths:
        clip = surreal.load_clip(mp4)
        body = clip.segm > 0
        assert body.any(axis=(1, 2)).all()
        assert np.all(clip.depth[~body] == 1e10)
        assert np.all(np.isfinite(clip.depth[body])) and np.all(clip.depth[body] < 100.0)
        # Depth is the distance along each pixel's ray: within the range of the body's distances from the camera.
        vertices, joints = references.forward(references.body(clip.gender), clip.betas, clip.pose_cam)
        vertices += (clip.joints3d_cam - joints)[:, :1]
        distance = np.linalg.norm(vertices, axis=-1)  # [T, V]
        for t in range(FRAMES):
            ray = clip.depth[t][body[t]]
            assert ray.min() >= distance[t].min() - 0.02 and ray.max() <= distance[t].max() + 0.02


def test_surreal_visible_joints_land_on_their_own_body_parts(surreal_clips):
    _, paths, _ = surreal_clips
    children = {j: {int(c) for c in np.flatnonzero(PARENTS == j)} for j in range(24)}
    hits = on_body = visible = 0
    for mp4 in paths:
        clip = surreal.load_clip(mp4)
        for t in range(FRAMES):
            for j in range(24):
                u, v = np.rint(clip.joints2d[t, j]).astype(int)
                if not (0 <= u < 320 and 0 <= v < 240):
                    continue
                # A joint more than 20 cm behind the surface seen at its pixel is hidden by the body (App. B).
                if clip.depth[t, v, u] < np.linalg.norm(clip.joints3d_cam[t, j]) - 0.2:
                    continue
                visible += 1
                part = int(clip.segm[t, v, u]) - 1
                on_body += part >= 0
                # SMPL's part j is the limb segment driven by joint j: a joint sits between its own part, its
                # parent's and its children's. A mirrored image or swapped sides would put it elsewhere.
                hits += part in {j, int(PARENTS[j])} | children[j]
    assert visible > 0.6 * 2 * FRAMES * 24
    assert on_body / visible > 0.97
    assert hits / visible > 0.85


def test_surreal_preview_shows_the_decoded_segmentation(surreal_clips, tmp_path):
    root, paths, _ = surreal_clips
    sheet = cv2.imread(str(preview.preview_surreal(root, tmp_path / "preview.png")))
    assert sheet.shape == (2 * (240 + 240 + 6), 6 * 320 + 5 * 4, 3)
    clip = surreal.load_clip(paths[0], load_depth=False)
    tile = sheet[240:480, :320]  # the first clip's segmentation of frame 0, joints drawn over the body
    assert abs((tile.max(axis=-1) == 0).mean() - (clip.segm[0] == 0).mean()) < 0.01


def test_surreal_same_seed_writes_the_same_bytes(surreal_clips, tmp_path):
    root, paths, _ = surreal_clips
    again = surreal_set.write_surreal_sequence(tmp_path, SEED, 0, FRAMES)
    assert again.read_bytes() == paths[0].read_bytes()
    for kind in ("info", "segm", "depth"):
        first, second = (surreal.companion_path(p, kind).read_bytes() for p in (paths[0], again))
        assert first.startswith(b"MATLAB 5.0 MAT-file") and first[MAT_HEADER_TEXT:] == second[MAT_HEADER_TEXT:]
    other = surreal_set.write_surreal_sequence(tmp_path / "other", SEED + 1, 0, FRAMES)
    assert surreal.companion_path(other, "info").read_bytes()[MAT_HEADER_TEXT:] != \
        surreal.companion_path(paths[0], "info").read_bytes()[MAT_HEADER_TEXT:]


def test_surreal_camera_keeps_a_running_person_in_frame_at_surreal_distances():
    rng = np.random.default_rng(0)
    # Standing still: the camera stands camDist - 1 m from the pelvis, camDist ~ N(8, 1) as main_part1.py draws it.
    still = np.zeros((10, 3))
    draws = [surreal_set.surreal_camera(still, rng) for _ in range(300)]
    cam_dist = np.array([d[2] for d in draws])
    assert abs(cam_dist.mean() - 8.0) < 0.2 and 0.8 < cam_dist.std() < 1.1
    distance = np.array([np.linalg.norm(centre) for _, centre, _ in draws])
    assert np.abs(distance - (cam_dist - 1.0)).max() < 0.4  # plus the aim jitter
    # Running 5 m straight across the view: the pelvis stays within the frame on every frame.
    run = np.stack([np.linspace(-2.5, 2.5, 40), np.zeros(40), np.zeros(40)], axis=1)
    for _ in range(20):
        rotation, centre, _ = surreal_set.surreal_camera(run, rng)
        uv = references.project((run - centre) @ rotation.T, 600.0, 600.0, 160.0, 120.0)
        assert np.all((uv[:, 0] > 0) & (uv[:, 0] < 320) & (uv[:, 1] > 0) & (uv[:, 1] < 240))
        assert np.allclose(rotation[1], [0.0, -1.0, 0.0])  # level camera: image down is world down


def test_look_at_puts_the_target_on_the_optical_axis_with_level_image_rows():
    rng = np.random.default_rng(2)
    eye, target = rng.normal(size=(50, 3)) * 3.0, rng.normal(size=(50, 3)) * 3.0
    rotation = cameras.look_at(eye, target)
    np.testing.assert_allclose(rotation @ np.swapaxes(rotation, -1, -2), np.broadcast_to(np.eye(3), (50, 3, 3)),
                               atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(rotation), 1.0, atol=1e-12)
    seen = np.einsum("nij,nj->ni", rotation, target - eye)  # the target in the camera frame
    np.testing.assert_allclose(seen[:, :2], 0.0, atol=1e-9)
    assert np.all(seen[:, 2] > 0)
    np.testing.assert_allclose(rotation[:, 0, 1], 0.0, atol=1e-12)  # image rows are level: x has no world-up part
    assert np.all(rotation[:, 1, 1] < 0)  # image down points to world down


def test_split_cycles_put_one_in_ten_surreal_sequences_in_val_and_one_in_test():
    splits = [scene.split_for_index(i, surreal_set.SURREAL_SPLIT_CYCLE) for i in range(20)]
    assert splits.count("train") == 16 and splits[8] == splits[18] == "val" and splits[9] == splits[19] == "test"
    assert [scene.split_for_index(i, threedpw_set.THREEDPW_SPLIT_CYCLE) for i in range(4)] == [
        "train", "validation", "test", "train"]
