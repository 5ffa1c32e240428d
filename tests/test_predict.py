"""Prediction on a user's video: a small video of two stick figures who cross (one hidden for two frames after they
cross) and OpenPose JSON made from their bodies' projected joints, through a tiny network (or a stub predictor with
known jitter), into the documented files: one folder per person, exports, smoothing."""
import json

import bvhio
import cv2
import numpy as np
import pytest

from mhr_tf import evaluate, geometry, predict
from mhr_tf.body import bvh
from mhr_tf.body import joints as joint_sets
from mhr_tf.body import smpl
from mhr_tf.data import videos
from mhr_tf.data.preprocessing import Channels, Preprocessing
from mhr_tf.sim import writers
from tests.test_evaluate import IMAGE_HW, body_truth, motion, project_coco
from tests.test_export import CHANNELS, CROP, PRE, TINY, WINDOW, perturb

NUM_FRAMES = 12
A_MISSING = (4,)            # OpenPose file 4 holds only person B
NO_FILE = (11,)             # no OpenPose file at all: nobody
A_FEW_KEYPOINTS = (9,)      # person A with 5 confident keypoints (< 7: a total occlusion)
FEW_KEYPOINTS_KEPT = ("neck", "right_hip", "left_hip", "right_ankle", "left_ankle")
B_HIDDEN = (6, 7)           # person B behind A just after they cross
STATUS_A = [predict.STATUS_NO_PERSON if t in A_MISSING + NO_FILE else predict.STATUS_FEW_KEYPOINTS
            if t in A_FEW_KEYPOINTS else predict.STATUS_OK for t in range(NUM_FRAMES)]
STATUS_B = [predict.STATUS_NO_PERSON if t in B_HIDDEN + NO_FILE else predict.STATUS_OK for t in range(NUM_FRAMES)]


@pytest.fixture(scope="module")
def tiny_predictor():
    model = TINY.build(CROP, CHANNELS, with_vertices=True)
    perturb(model, seed=5)
    return evaluate.keras_predictor(model, PRE, source="test")


@pytest.fixture(scope="module")
def jitter_predictor():
    """Ignores its input: the mean pose plus fresh noise on every frame of every window (rotations 0.15 rad, shape
    0.3, camera scale 0.05 and offsets 0.02), posed with the open neutral body, so its outputs are consistent."""
    body = smpl.load_body_model(None, "neutral")
    rng = np.random.default_rng(0)
    pre = Preprocessing(num_frames=WINDOW, crop_size=CROP, channels=Channels(False, False, False))

    def fn(inputs):
        n = int(inputs.shape[0]) * WINDOW
        pose = rng.normal(0, 0.15, (n, 72))
        pose[:, 0] += np.pi  # facing the camera, y down
        betas = rng.normal(0, 0.3, (n, 10))
        camera = np.stack([1.2 + rng.normal(0, 0.05, n), rng.normal(0, 0.02, n), rng.normal(0, 0.02, n)], -1)
        vertices, joints24 = smpl.forward_numpy(body, betas, pose)
        joints14 = np.einsum("kv,nvc->nkc", body.lsp_regressor, vertices)
        out = {"pose": pose, "betas": betas, "camera": camera, "joints3d": joints14, "smpl_joints3d": joints24,
               "vertices": vertices, "keypoints2d": geometry.weak_perspective_project(joints14, camera)}
        return {k: np.asarray(v, np.float32).reshape((-1, WINDOW) + np.shape(v)[1:]) for k, v in out.items()}
    return evaluate.Predictor(fn, pre, body.faces, "jitter", body_model=body)


def make_clip(directory):
    """A video of two stick figures crossing (A left to right, B right to left, a little farther away) and their
    OpenPose BODY_25 JSON with the edits above. Returns the video, the JSON directory and both people's keypoints."""
    rng = np.random.default_rng(3)
    people = []
    for start, depth_offset in ((-0.9, 0.0), (0.9, 0.4)):
        pose, trans = motion(NUM_FRAMES, rng)
        trans[:, 0] = np.linspace(start, -start, NUM_FRAMES)
        trans[:, 2] += depth_offset
        people.append(project_coco(body_truth("male", np.zeros(10), pose, trans)["joints24"]))  # [N, 18, 3]
    frames = np.full((NUM_FRAMES,) + IMAGE_HW + (3,), 90, np.uint8)
    for t, frame in enumerate(frames):
        for keypoints, colour in zip(people, ((230, 200, 160), (160, 230, 200))):
            for a, b in ((2, 4), (5, 7), (8, 10), (11, 13), (1, 8), (1, 11), (2, 5)):  # COCO limbs
                cv2.line(frame, tuple(int(v) for v in keypoints[t, a, :2]), tuple(int(v) for v in keypoints[t, b, :2]),
                         colour, 2)
    video = videos.write_video(directory / "clip.avi", frames)
    detections = []
    for t in range(NUM_FRAMES):
        a, b = people[0][t].copy(), people[1][t]
        if t in A_FEW_KEYPOINTS:  # 5 keypoints spread over the body, so that its box still frames it
            a[[i for i in range(18) if joint_sets.COCO_18[i] not in FEW_KEYPOINTS_KEPT]] = 0.0
        present = ([a] if t not in A_MISSING else []) + ([b] if t not in B_HIDDEN else [])
        detections.append(joint_sets.convert(np.stack(present), joint_sets.COCO_18, joint_sets.BODY_25))
    json_dir = directory / "openpose"
    paths = writers.write_openpose_dir(json_dir, detections, layout="body_25", name="clip")
    for t in NO_FILE:
        paths[t].unlink()
    return video, json_dir, people


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("clip"))


def test_two_people_who_cross_keep_their_ids_and_get_one_folder_each(tiny_predictor, clip, tmp_path):
    video, json_dir, people = clip
    written = predict.predict_video(tiny_predictor, tmp_path / "out", video=video, keypoints=json_dir)
    assert sorted(written["people"]) == [0, 1]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["overlay.mp4", "people.json", "person_0",
                                                                    "person_1"]  # the frames are cleaned up
    index = json.loads(written["json"].read_text())
    assert index["format"] == predict.INDEX_FORMAT and index["num_frames"] == NUM_FRAMES
    assert [(p["id"], p["first_frame"], p["last_frame"], p["missing_frames"]) for p in index["people"]] == [
        (0, 0, 10, list(A_MISSING)), (1, 0, 10, list(B_HIDDEN))]
    assert index["preprocessing"] == PRE.to_json() and index["keypoint_confidence"]["source_threshold"] is None

    for person, status, keypoints in ((0, STATUS_A, people[0]), (1, STATUS_B, people[1])):
        npz = np.load(written["people"][person]["npz"])
        np.testing.assert_array_equal(npz["status"], status)
        valid = npz["valid"]
        np.testing.assert_array_equal(valid, np.array(status) == predict.STATUS_OK)
        shapes = {"pose": (72,), "betas": (10,), "camera": (3,), "box_centre": (2,), "box_size": (),
                  "joints3d": (14, 3), "smpl_joints3d": (24, 3), "keypoints2d": (14, 2)}
        for name, shape in shapes.items():
            assert npz[name].shape == (NUM_FRAMES,) + shape, name
            assert np.isfinite(npz[name][valid]).all() and np.isnan(npz[name][~valid]).all(), name
        assert tuple(npz["image_size"]) == IMAGE_HW
        # Each valid frame's box is HMR's box around this person's own confident keypoints (App. A: 150 px tall in
        # 224): after the crossing, a swapped id would put the other person's box here. (A track's last frame, 10,
        # takes the last pair's box: evaluate.WINDOW_RULE.)
        lsp = joint_sets.convert(keypoints, joint_sets.COCO_18, joint_sets.LSP_14)
        for t in np.flatnonzero(valid[:10]):
            points = lsp[t, lsp[t, :, 2] > 0.1, :2]
            np.testing.assert_allclose(npz["box_centre"][t], (points.min(0) + points.max(0)) / 2, atol=1e-3)
            np.testing.assert_allclose(npz["box_size"][t], np.linalg.norm(np.ptp(points, axis=0)) * 224 / 150,
                                       rtol=1e-5)
        # The documented camera: x_box = s (X + tx), y_box = s (Y + ty) in [-1, 1] over the box, box pixel
        # u = (x_box + 1) S / 2, image pixel = centre - size / 2 + (u + 0.5) size / S.
        s, t_xy = npz["camera"][valid, 0, None, None], npz["camera"][valid, None, 1:]
        centre, size = npz["box_centre"][valid, None, :], npz["box_size"][valid, None, None]
        box_pixels = (s * (npz["joints3d"][valid, :, :2].astype(np.float64) + t_xy) + 1.0) * CROP / 2.0
        np.testing.assert_allclose(npz["keypoints2d"][valid], centre - size / 2 + (box_pixels + 0.5) * size / CROP,
                                   rtol=1e-4, atol=1e-3)
        content = json.loads(written["people"][person]["json"].read_text())
        assert content["format"] == predict.FORMAT and content["person"]["id"] == person
        assert content["frames_without_person"] == [t for t in range(NUM_FRAMES) if status[t] == "no_person"]
        for t, frame in enumerate(content["frames"]):
            assert frame["status"] == status[t]
            if valid[t]:
                np.testing.assert_allclose(frame["pose"], npz["pose"][t], atol=1e-6)
            else:
                assert "pose" not in frame
    assert np.load(written["people"][0]["npz"])["num_keypoints"][A_FEW_KEYPOINTS[0]] == 5

    overlay = videos.read_video(written["overlay"])
    side = int(round(predict.SIDE_VIEW_PANEL * IMAGE_HW[0] / 2)) * 2
    assert overlay.shape == (NUM_FRAMES, IMAGE_HW[0], IMAGE_HW[1] + side, 3)


@pytest.mark.parametrize("person, expected", [("longest", 0), ("1", 1), (1, 1)])
def test_person_selects_one_folder(jitter_predictor, clip, tmp_path, person, expected):
    video, json_dir, _ = clip
    written = predict.predict_video(jitter_predictor, tmp_path, video=video, keypoints=json_dir, person=person,
                                    overlay=False)
    assert list(written["people"]) == [expected]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["people.json", f"person_{expected}"]


def test_exports_write_files_that_read_back(jitter_predictor, clip, tmp_path):
    video, json_dir, _ = clip
    written = predict.predict_video(jitter_predictor, tmp_path, video=video, keypoints=json_dir, person=1,
                                    overlay=False, export=("amass", "bvh", "obj"))
    files = written["people"][1]
    valid = np.load(files["npz"])["valid"]
    fps = float(np.load(files["npz"])["fps"])
    amass = np.load(files["amass"])
    assert amass["poses"].shape == (NUM_FRAMES, 156) and amass["trans"].shape == (NUM_FRAMES, 3)
    assert amass["betas"].shape == (16,) and str(amass["gender"]) == "neutral"
    assert float(amass["mocap_framerate"]) == pytest.approx(fps)
    np.testing.assert_array_equal(amass["valid"], valid)
    assert np.isfinite(amass["poses"]).all() and np.isfinite(amass["trans"]).all()  # gaps filled for the file
    skeleton = bvh.read_bvh(files["bvh"])
    assert sorted(skeleton.names) == sorted(joint_sets.SMPL_24) and skeleton.values.shape[0] == NUM_FRAMES
    read_by_bvhio = bvhio.readAsBvh(str(files["bvh"]))  # an independent reader
    assert read_by_bvhio.FrameCount == NUM_FRAMES and read_by_bvhio.FrameTime == pytest.approx(1.0 / fps)
    meshes = sorted(files["obj"].glob("*.obj"))
    assert [m.name for m in meshes] == [f"frame_{t:05d}.obj" for t in np.flatnonzero(valid)]
    lines = meshes[0].read_text().splitlines()
    num_vertices = len(jitter_predictor.body().v_template)
    assert sum(line.startswith("v ") for line in lines) == num_vertices
    assert sum(line.startswith("f ") for line in lines) == len(jitter_predictor.faces)
    index = json.loads(written["json"].read_text())
    assert set(index["people"][0]["files"]) == {"npz", "json", "amass", "bvh", "obj"}


def second_difference(values, valid):
    """Mean |x[t] - 2 x[t+1] + x[t+2]| over triples of valid frames, per coordinate."""
    values = values.reshape(len(values), -1).astype(np.float64)
    keep = valid[:-2] & valid[1:-1] & valid[2:]
    return np.abs(values[:-2] - 2 * values[1:-1] + values[2:])[keep].mean()


def test_smoothing_changes_the_outputs_and_lowers_their_acceleration(jitter_predictor, clip, tmp_path):
    video, json_dir, _ = clip
    runs = {}
    for smooth in (False, True):
        written = predict.predict_video(jitter_predictor, tmp_path / str(smooth), video=video, keypoints=json_dir,
                                        person=1, overlay=False, smooth=smooth)
        runs[smooth] = (np.load(written["people"][1]["npz"]), json.loads(written["json"].read_text()))
    (raw, _), (smoothed, header) = runs[False], runs[True]
    valid = raw["valid"]
    np.testing.assert_array_equal(smoothed["valid"], valid)
    assert header["smoothing"]["rotations"] == "6D"
    for name in ("pose", "camera", "joints3d", "keypoints2d"):
        assert not np.allclose(smoothed[name][valid], raw[name][valid]), name
        assert second_difference(smoothed[name], valid) < 0.7 * second_difference(raw[name], valid), name
    np.testing.assert_allclose(smoothed["betas"][valid], np.broadcast_to(smoothed["betas"][valid][0],
                                                                         (valid.sum(), 10)))
    # The smoothed joints are the body's: re-posing the smoothed parameters reproduces them.
    body = jitter_predictor.body()
    vertices, _ = smpl.forward_numpy(body, smoothed["betas"][valid], smoothed["pose"][valid])
    np.testing.assert_allclose(smoothed["joints3d"][valid], np.einsum("kv,nvc->nkc", body.lsp_regressor, vertices),
                               atol=1e-5)


def test_a_keypoint_file_past_the_video_is_named(tmp_path):
    video = videos.write_video(tmp_path / "clip.avi", np.zeros((2, 16, 16, 3), np.uint8))
    writers.write_openpose_dir(tmp_path / "json", [np.zeros((0, 25, 3))] * 3, name="clip")
    with pytest.raises(ValueError, match="frame 2 is outside the video's 2 frames"):
        predict.predict_video(evaluate.mean_pose_predictor(PRE), tmp_path / "out", video=video,
                              keypoints=tmp_path / "json")


def test_a_missing_keypoint_source_says_which_inputs_are_needed(tmp_path):
    with pytest.raises(ValueError, match="OpenPose"):
        predict.people_keypoints(["a.jpg"], PRE)


def test_threedpw_sequence_supplies_frames_and_people_by_index(tmp_path):
    keypoints = np.zeros((3, 18, 3))
    keypoints[1, 1:14] = np.concatenate([np.random.default_rng(0).uniform(2, 6, (13, 2)), np.full((13, 1), 0.8)], 1)
    people = [{"betas": np.zeros(10), "poses": np.zeros((3, 72)), "trans": np.zeros((3, 3)), "gender": "f",
               "joints3d": np.zeros((3, 24, 3)), "keypoints2d": keypoints}]
    path = writers.write_threedpw_sequence(tmp_path, "test", "walk", people, np.tile(np.eye(4), (3, 1, 1)),
                                           np.eye(3), np.zeros((3, 8, 8, 3), np.uint8))
    paths, fps, name = predict.video_frames(tmp_path / "frames", threedpw_sequence=path)
    assert paths[2].endswith("imageFiles/walk/image_00002.jpg") and fps == predict.DEFAULT_FPS and name == "walk"
    sequence, threshold = predict.people_keypoints(paths, PRE, threedpw_sequence=path)
    (track,) = predict.selected_tracks(sequence, len(paths), person=0)
    np.testing.assert_array_equal(track.present, [False, True, False])
    assert threshold is None and track.id == 0
    np.testing.assert_allclose(track.converted(joint_sets.COCO_18)[1], keypoints[1])
