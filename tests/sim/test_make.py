"""The simulator's datasets read back through the real decoders: what the files say equals what the simulator used,
the files agree with themselves (camera, body, segmentation, depth), detections behave like a detector's, and one
seed gives the same bytes. References are float64 numpy written here, the body model, and hand-built inputs."""
import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io

from mhr_tf.body import joints as joint_sets
from mhr_tf.body import smpl
from mhr_tf.data import surreal, threedpw, videos
from mhr_tf.geometry import SURREAL_IMAGE_HW
from mhr_tf.sim import make

SEED = 3
FRAMES = 8
MAT_HEADER_TEXT = 116  # MATLAB 5 header: 116 bytes of text (with a creation time), then the data's bytes
PARENTS = joint_sets.SMPL_PARENTS


def _rotations(pose):
    from scipy.spatial.transform import Rotation
    return Rotation.from_rotvec(np.asarray(pose, np.float64).reshape(-1, 3)).as_matrix().reshape(
        np.shape(pose)[:-1] + (24, 3, 3))


def _body(gender):
    return smpl.load_body_model(None, gender)


def _forward(model, betas, pose, trans=None):
    n = len(pose)
    v, j = smpl.forward_numpy(model, np.tile(np.asarray(betas, np.float64), (n, 1)), np.asarray(pose, np.float64),
                              None if trans is None else np.asarray(trans, np.float64))
    return v.astype(np.float64), j.astype(np.float64)


def _project(points, fx, fy, cx, cy):
    points = np.asarray(points, np.float64)
    return np.stack([fx * points[..., 0] / points[..., 2] + cx, fy * points[..., 1] / points[..., 2] + cy], -1)


# ---- fixtures: each set written once per session -----------------------------------------------------------------

@pytest.fixture(scope="session")
def surreal_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("surreal_sim")
    paths = make.write_surreal_set(root, 2, FRAMES, SEED, workers=1, progress=False)
    truth = [make.make_surreal_sequence(SEED, i, FRAMES) for i in range(2)]
    return root, paths, truth


@pytest.fixture(scope="session")
def threedpw_set(tmp_path_factory):
    """Sequence 0: two people, a passing object and a run of invalid camera poses for sure; sequence 1: one person,
    everything else as drawn."""
    root = tmp_path_factory.mktemp("threedpw_sim")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(make, "INVALID_CAMPOSE_PROBABILITY", 1.0)
        patch.setattr(make, "OCCLUDER_PROBABILITY", 1.0)
        pair = make.write_threedpw_sequence(root, SEED, 0, FRAMES, split="test", num_people=2)
        pair_truth = make.make_threedpw_sequence(SEED, 0, FRAMES, num_people=2)
    single = make.write_threedpw_sequence(root, SEED, 1, FRAMES, split="train", num_people=1)
    single_truth = make.make_threedpw_sequence(SEED, 1, FRAMES, num_people=1)
    return root, [(pair, pair_truth), (single, single_truth)]


# ---- SURREAL -----------------------------------------------------------------------------------------------------

def test_surreal_set_is_in_surreal_layout_and_says_it_is_simulated(surreal_set):
    root, paths, truth = surreal_set
    assert [p.relative_to(root).as_posix() for p in paths] == [
        "train/run0/sim00001/sim00001_c0001.mp4", "train/run0/sim00002/sim00002_c0001.mp4"]
    for mp4 in paths:
        for kind in ("info", "segm", "depth"):
            assert surreal.companion_path(mp4, kind).is_file()
        info = scipy.io.loadmat(surreal.companion_path(mp4, "info"))
        assert str(info["source"][0]) == make.SIM_SOURCE
        assert str(info["sequence"][0]) == mp4.stem
        assert str(info["bg"][0, 0][0]).startswith("simulated:")
    assert [e.path.resolve() for e in surreal.build_manifest(root, "train", rebuild=True)] == [
        p.resolve() for p in paths]
    assert make.read_set_record(root)["kind"] == "surreal"


def test_surreal_round_trip_gives_back_pose_betas_and_joints(surreal_set):
    _, paths, truth = surreal_set
    for mp4, seq in zip(paths, truth):
        clip = surreal.load_clip(mp4)
        assert clip.gender == seq.gender
        np.testing.assert_allclose(clip.betas, seq.betas, atol=1e-6)
        # Axis-angle is not unique: compare the joint rotations.
        np.testing.assert_allclose(_rotations(clip.pose_cam), _rotations(seq.pose_cam), atol=2e-5)
        np.testing.assert_allclose(clip.joints3d_cam, seq.joints3d_cam, atol=2e-5)
        np.testing.assert_array_equal(clip.segm, seq.segm)
        assert clip.frames.shape == (FRAMES,) + SURREAL_IMAGE_HW + (3,)
        # The video is lossy: compare the decoded frames with the rendered ones on average.
        assert np.abs(clip.frames.astype(float) - seq.frames).mean() < 6.0


def test_surreal_joints2d_are_the_projection_of_joints3d_cam(surreal_set):
    _, paths, _ = surreal_set
    for mp4 in paths:
        clip = surreal.load_clip(mp4, load_segm=False, load_depth=False)
        uv = _project(clip.joints3d_cam, 600.0, 600.0, 160.0, 120.0)  # SURREAL's f = 600 px, centre (160, 120)
        assert np.abs(uv - clip.joints2d).max() <= 0.5 + 1e-3  # SURREAL rounds joints2D to whole pixels


def test_surreal_body_driven_by_pose_cam_reproduces_joints3d_cam_up_to_translation(surreal_set):
    _, paths, _ = surreal_set
    for mp4 in paths:
        clip = surreal.load_clip(mp4, load_segm=False, load_depth=False)
        _, joints = _forward(_body(clip.gender), clip.betas, clip.pose_cam)
        offset = clip.joints3d_cam - joints  # [T, 24, 3]: one translation per frame
        assert np.abs(offset - offset[:, :1]).max() < 1e-4


def test_surreal_segm_depth_and_body_agree(surreal_set):
    _, paths, _ = surreal_set
    for mp4 in paths:
        clip = surreal.load_clip(mp4)
        body = clip.segm > 0
        assert body.any(axis=(1, 2)).all()
        assert np.all(clip.depth[~body] == 1e10)
        assert np.all(np.isfinite(clip.depth[body])) and np.all(clip.depth[body] < 100.0)
        # Depth is the distance along each pixel's ray: within the range of the body's distances from the camera.
        vertices, joints = _forward(_body(clip.gender), clip.betas, clip.pose_cam)
        vertices += (clip.joints3d_cam - joints)[:, :1]
        distance = np.linalg.norm(vertices, axis=-1)  # [T, V]
        for t in range(FRAMES):
            ray = clip.depth[t][body[t]]
            assert ray.min() >= distance[t].min() - 0.02 and ray.max() <= distance[t].max() + 0.02


def test_surreal_visible_joints_land_on_their_own_body_parts(surreal_set):
    _, paths, _ = surreal_set
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


def test_surreal_preview_shows_the_decoded_segmentation(surreal_set, tmp_path):
    root, paths, _ = surreal_set
    sheet = cv2.imread(str(make.preview_surreal(root, tmp_path / "preview.png")))
    assert sheet.shape == (2 * (240 + 240 + 6), 6 * 320 + 5 * 4, 3)
    clip = surreal.load_clip(paths[0], load_depth=False)
    tile = sheet[240:480, :320]  # the first clip's segmentation of frame 0, joints drawn over the body
    assert abs((tile.max(axis=-1) == 0).mean() - (clip.segm[0] == 0).mean()) < 0.01


def test_surreal_same_seed_writes_the_same_bytes(surreal_set, tmp_path):
    root, paths, _ = surreal_set
    again = make.write_surreal_sequence(tmp_path, SEED, 0, FRAMES)
    assert again.read_bytes() == paths[0].read_bytes()
    for kind in ("info", "segm", "depth"):
        first, second = (surreal.companion_path(p, kind).read_bytes() for p in (paths[0], again))
        assert first.startswith(b"MATLAB 5.0 MAT-file") and first[MAT_HEADER_TEXT:] == second[MAT_HEADER_TEXT:]
    other = make.write_surreal_sequence(tmp_path / "other", SEED + 1, 0, FRAMES)
    assert surreal.companion_path(other, "info").read_bytes()[MAT_HEADER_TEXT:] != \
        surreal.companion_path(paths[0], "info").read_bytes()[MAT_HEADER_TEXT:]


def test_surreal_camera_keeps_a_running_person_in_frame_at_surreal_distances():
    rng = np.random.default_rng(0)
    # Standing still: the camera stands camDist - 1 m from the pelvis, camDist ~ N(8, 1) as main_part1.py draws it.
    still = np.zeros((10, 3))
    draws = [make.surreal_camera(still, rng) for _ in range(300)]
    cam_dist = np.array([d[2] for d in draws])
    assert abs(cam_dist.mean() - 8.0) < 0.2 and 0.8 < cam_dist.std() < 1.1
    distance = np.array([np.linalg.norm(centre) for _, centre, _ in draws])
    assert np.abs(distance - (cam_dist - 1.0)).max() < 0.4  # plus the aim jitter
    # Running 5 m straight across the view: the pelvis stays within the frame on every frame.
    run = np.stack([np.linspace(-2.5, 2.5, 40), np.zeros(40), np.zeros(40)], axis=1)
    for _ in range(20):
        rotation, centre, _ = make.surreal_camera(run, rng)
        uv = _project((run - centre) @ rotation.T, 600.0, 600.0, 160.0, 120.0)
        assert np.all((uv[:, 0] > 0) & (uv[:, 0] < 320) & (uv[:, 1] > 0) & (uv[:, 1] < 240))
        assert np.allclose(rotation[1], [0.0, -1.0, 0.0])  # level camera: image down is world down


def test_look_at_puts_the_target_on_the_optical_axis_with_level_image_rows():
    rng = np.random.default_rng(2)
    eye, target = rng.normal(size=(50, 3)) * 3.0, rng.normal(size=(50, 3)) * 3.0
    rotation = make.look_at(eye, target)
    np.testing.assert_allclose(rotation @ np.swapaxes(rotation, -1, -2), np.broadcast_to(np.eye(3), (50, 3, 3)),
                               atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(rotation), 1.0, atol=1e-12)
    seen = np.einsum("nij,nj->ni", rotation, target - eye)  # the target in the camera frame
    np.testing.assert_allclose(seen[:, :2], 0.0, atol=1e-9)
    assert np.all(seen[:, 2] > 0)
    np.testing.assert_allclose(rotation[:, 0, 1], 0.0, atol=1e-12)  # image rows are level: x has no world-up part
    assert np.all(rotation[:, 1, 1] < 0)  # image down points to world down


def test_split_cycles_put_one_in_ten_surreal_sequences_in_val_and_one_in_test():
    splits = [make.split_for_index(i, make.SURREAL_SPLIT_CYCLE) for i in range(20)]
    assert splits.count("train") == 16 and splits[8] == splits[18] == "val" and splits[9] == splits[19] == "test"
    assert [make.split_for_index(i, make.THREEDPW_SPLIT_CYCLE) for i in range(4)] == [
        "train", "validation", "test", "train"]


# ---- background videos ----------------------------------------------------------------------------------------------

def test_background_set_is_the_same_with_two_workers(tmp_path):
    serial = make.write_background_set(tmp_path / "a", 3, 5, SEED, workers=1, progress=False)
    parallel = make.write_background_set(tmp_path / "b", 3, 5, SEED, workers=2, progress=False)
    assert [p.relative_to(tmp_path / "a") for p in serial] == [p.relative_to(tmp_path / "b") for p in parallel]
    for a, b in zip(serial, parallel):
        assert a.with_suffix(".json").read_text() == b.with_suffix(".json").read_text()
        np.testing.assert_array_equal(videos.read_video(a), videos.read_video(b))
    assert len(videos.list_videos(tmp_path / "a")) == 3


def test_cli_writes_backgrounds_and_a_preview(tmp_path):
    spec = importlib.util.spec_from_file_location(
        "make_synthetic", Path(__file__).resolve().parents[2] / "scripts" / "make_synthetic.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main(["backgrounds", "--out", str(tmp_path), "--num_sequences", "2", "--frames", "4",
                        "--workers", "1", "--seed", "5", "--preview"]) == 0
    entries = videos.list_videos(tmp_path)
    assert len(entries) == 2 and all(videos.count_frames(e.path, exact=True) == 4 for e in entries)
    sheet = cv2.imread(str(tmp_path / "preview.png"))
    first = videos.read_video(entries[0].path)[0]
    # The sheet's first tile is the first video's first frame at half size.
    tile = cv2.resize(first, (first.shape[1] // 2, first.shape[0] // 2), interpolation=cv2.INTER_AREA)
    region = sheet[20:tile.shape[0], :tile.shape[1], ::-1].astype(float)  # below the label
    assert np.abs(region - tile[20:]).mean() < 2.0


# ---- the shifted-domain set in 3DPW's layout -----------------------------------------------------------------------

def test_threedpw_round_trip_with_two_people(threedpw_set):
    root, sequences = threedpw_set
    (pair_path, truth), _ = sequences
    assert pair_path == root / "sequenceFiles" / "test" / "simulated_00001.pkl"
    tracks = threedpw.load_sequence(pair_path)
    assert len(tracks) == 2 and tracks[0].sequence == "simulated_00001"
    valid = truth.campose_valid
    assert valid.any() and not valid.all()  # the fixture forces a run of invalid frames
    for track, person in zip(tracks, truth.people):
        assert track.gender == person.gender
        np.testing.assert_allclose(track.betas, person.betas, atol=1e-6)
        np.testing.assert_allclose(track.pose_world, person.pose_world, atol=1e-6)
        np.testing.assert_allclose(track.trans_world, person.trans_world, atol=1e-6)
        np.testing.assert_array_equal(track.campose_valid, valid)
        # On valid frames the stored camera is the one that rendered the images.
        np.testing.assert_allclose(track.joints3d_cam[valid], person.joints3d_cam[valid], atol=1e-4)
        # On invalid ones it is off by a turn of a few degrees about the camera centre.
        off = np.linalg.norm(track.joints3d_cam[~valid] - person.joints3d_cam[~valid], axis=-1)
        distance = np.linalg.norm(person.joints3d_cam[~valid], axis=-1)
        assert np.all(off / distance > np.sin(np.radians(1.0)))
        # The file's world joints are the body's joints with its world pose, shape and translation (SMPL's trans).
        model = _body(person.gender)
        _, joints = _forward(model, track.betas, track.pose_world, track.trans_world)
        np.testing.assert_allclose(joints, track.joints3d_world, atol=1e-4)
        _, joints_cam = _forward(model, track.betas, track.pose_cam, track.trans_cam)
        np.testing.assert_allclose(joints_cam, track.joints3d_cam, atol=1e-4)
        template, _ = _forward(model, track.betas, np.zeros((1, 72)))
        np.testing.assert_allclose(person.v_template, template[0], atol=1e-5)
    for i, image_path in enumerate(tracks[0].image_paths):
        image = threedpw.read_image(image_path)
        assert image.shape == make.THREEDPW_IMAGE_HW + (3,)
        assert np.abs(image.astype(float) - truth.images[i]).mean() < 8.0  # JPEG of the simulated image


def test_threedpw_poses2d_are_near_the_projected_ground_truth_except_injected_errors(threedpw_set):
    _, sequences = threedpw_set
    coco_from_lsp = joint_sets.indices(joint_sets.LSP_14, joint_sets.COCO_18)
    counts = dict.fromkeys(("detected", "swapped"), 0)
    for path, truth in sequences:
        for track, person in zip(threedpw.load_sequence(path), truth.people):
            valid = track.campose_valid
            model = _body(track.gender)
            vertices, _ = _forward(model, track.betas, track.pose_cam, track.trans_cam)
            lsp = np.einsum("kv,tvc->tkc", np.asarray(model.lsp_regressor, np.float64), vertices)
            k = track.cam_intrinsics
            reference = _project(lsp, k[0, 0], k[1, 1], k[0, 2], k[1, 2])  # [T, 14, 2]
            shared = coco_from_lsp >= 0  # the 13 COCO keypoints that are evaluation joints (no face points)
            kp = track.keypoints2d[valid][:, shared]  # [T', 13, 3]
            expected = reference[valid][:, coco_from_lsp[shared]]
            error = person.detections.error[valid][:, shared]
            sigma = person.detections.sigma_px[valid][:, None]
            detected = error == make.DETECTED
            distance = np.linalg.norm(kp[..., :2] - expected, axis=-1)
            assert np.all(distance[detected] < 5.0 * np.broadcast_to(sigma, distance.shape)[detected] + 0.5)
            assert np.all((kp[..., 2][detected] >= 0.3) & (kp[..., 2][detected] <= 0.98))
            assert np.all(kp[error == make.MISSING] == 0.0)
            assert np.all(kp[..., 2][(error == make.GUESSED) | (error == make.OUTLIER)] <= 0.45)
            counts["detected"] += int(detected.sum())
            # A swapped keypoint sits where its mirror twin is.
            flip = joint_sets.flip_permutation(joint_sets.COCO_18)
            full_kp, full_error = track.keypoints2d[valid], person.detections.error[valid]
            full_reference = np.full(full_kp.shape[:2] + (2,), np.nan)
            full_reference[:, shared] = expected
            twin_visible = person.detections.visible[valid][:, flip]
            for t, i in zip(*np.nonzero((full_error == make.SWAPPED) & twin_visible & shared[flip])):
                counts["swapped"] += 1
                assert np.linalg.norm(full_kp[t, i, :2] - full_reference[t, flip[i]]) < 5.0 * sigma[t, 0] + 0.5
    assert counts["detected"] > 50


def test_detector_hides_keypoints_behind_surfaces_and_passing_objects():
    h, w = 60, 80
    # 18 keypoints at depth 5 m on a grid; the rendered surface is 0.5 m in front of the left half (hiding
    # joints, 0.2 m rule) and 0.1 m in front of the right half (hiding only face points, 0.04 m rule); an object
    # covers the bottom rows.
    u = np.tile(np.linspace(5, 75, 6), 3)
    v = np.repeat([10.0, 30.0, 50.0], 6)
    z = np.full(18, 5.0)
    fx = 100.0
    points = np.stack([(u - w / 2) * z / fx, (v - h / 2) * z / fx, z], axis=-1)[None].repeat(4, axis=0)
    depth = np.full((4, h, w), 4.9, np.float32)
    depth[:, :, :40] = 4.5
    occluder = np.zeros((4, h, w), bool)
    occluder[:, 45:] = True
    intrinsics = make.geometry.Intrinsics(fx, fx, w / 2, h / 2)
    with pytest.MonkeyPatch.context() as patch:
        for name in ("SWAP_PROBABILITY", "OUTLIER_PROBABILITY", "DROP_PROBABILITY"):
            patch.setattr(make, name, 0.0)
        patch.setattr(make, "MIN_DETECTED", 0)
        out = make.simulate_detections(points, intrinsics, depth, occluder, np.random.default_rng(1))
    face = np.isin(joint_sets.COCO_18, ("nose", "right_eye", "left_eye", "right_ear", "left_ear"))
    expected = (u >= 40) & (v < 45) & ~face
    np.testing.assert_array_equal(out.visible, np.broadcast_to(expected, (4, 18)))
    assert np.all(out.error[:, expected] == make.DETECTED)
    assert set(np.unique(out.error[:, ~expected])) <= {make.MISSING, make.GUESSED}
    assert (out.error[:, ~expected] == make.GUESSED).any()  # some hidden keypoints are guessed...
    guessed = out.error == make.GUESSED
    assert np.all(out.keypoints[..., 2][guessed] <= make.GUESS_CONFIDENCE[1])  # ...with a low confidence


def test_face_keypoints_sit_where_a_face_is():
    model = _body("female")
    ids = make.face_keypoint_vertices(model)
    p = {name: np.asarray(model.v_template[i], np.float64) for name, i in ids.items()}
    head = model.v_template[model.part_ids == joint_sets.SMPL_PARTS.index("head")]
    # Rest pose: the body faces +z, its left is +x.
    assert p["nose"][2] >= head[:, 2].max() - 1e-6
    assert p["left_eye"][0] > p["nose"][0] > p["right_eye"][0]
    assert p["left_ear"][0] > p["left_eye"][0] and p["right_ear"][0] < p["right_eye"][0]
    assert p["nose"][2] > p["left_eye"][2] > p["left_ear"][2]
    assert abs(p["left_ear"][0] + p["right_ear"][0]) < 0.02  # symmetric


def test_threedpw_preview_draws_every_sequence(threedpw_set, tmp_path):
    root, sequences = threedpw_set
    sheet = cv2.imread(str(make.preview_threedpw(root, tmp_path / "preview.png")))
    height, width = make.THREEDPW_IMAGE_HW
    assert sheet.shape == (len(sequences) * (height + 6), 6 * width + 5 * 4, 3)


def test_threedpw_same_seed_writes_the_same_pickle(threedpw_set, tmp_path):
    _, sequences = threedpw_set
    path, _ = sequences[1]
    again = make.write_threedpw_sequence(tmp_path, SEED, 1, FRAMES, split="train", num_people=1)
    assert again.read_bytes() == path.read_bytes()
    first = sorted((path.parents[2] / "imageFiles" / "simulated_00002").glob("*.jpg"))
    second = sorted((tmp_path / "imageFiles" / "simulated_00002").glob("*.jpg"))
    assert len(first) == FRAMES and [f.read_bytes() for f in first] == [f.read_bytes() for f in second]
