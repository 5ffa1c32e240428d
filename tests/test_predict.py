"""Prediction on a user's video: a small video of a body and OpenPose JSON made from its ground truth, through a tiny
network, into the documented files."""
import json

import cv2
import numpy as np
import pytest

from mhr_tf import evaluate, predict
from mhr_tf.body import joints as joint_sets
from mhr_tf.data import openpose, videos
from mhr_tf.sim import writers
from tests.test_evaluate import IMAGE_HW, body_truth, motion, project_coco
from tests.test_export import CHANNELS, CROP, PRE, TINY, WINDOW, perturb

NUM_FRAMES = 12
NO_PERSON_FRAMES = (4,)         # an OpenPose file with nobody in it
MISSING_FILE_FRAMES = (11,)     # no OpenPose file at all
FEW_KEYPOINTS_FRAMES = (9,)     # the person, with 5 confident keypoints (< 7: a total occlusion)


@pytest.fixture(scope="module")
def tiny_predictor():
    model = TINY.build(CROP, CHANNELS, with_vertices=True)
    perturb(model, seed=5)
    return evaluate.keras_predictor(model, PRE, source="test")


def make_clip(directory):
    """A video of a stick figure and OpenPose BODY_25 JSON from the body's projected joints, plus a smaller second
    person far to the side that the follower must ignore. Returns the video path, JSON directory and keypoints."""
    pose, trans = motion(NUM_FRAMES, np.random.default_rng(3))
    keypoints = project_coco(body_truth("male", np.zeros(10), pose, trans)["joints24"])  # [N, 18, 3]
    frames = np.full((NUM_FRAMES,) + IMAGE_HW + (3,), 90, np.uint8)
    for frame, points in zip(frames, keypoints):
        for a, b in ((2, 4), (5, 7), (8, 10), (11, 13), (1, 8), (1, 11), (2, 5)):  # COCO limbs
            cv2.line(frame, tuple(int(v) for v in points[a, :2]), tuple(int(v) for v in points[b, :2]),
                     (230, 200, 160), 2)
    video = videos.write_video(directory / "clip.avi", frames)
    distractor = keypoints.copy()
    distractor[..., :2] = (keypoints[..., :2] - keypoints[:1, 1:2, :2]) * 0.3 + (6.0, 8.0)
    distractor[keypoints[..., 2] == 0] = 0.0
    people = []
    for t in range(NUM_FRAMES):
        person = keypoints[t].copy()
        if t in FEW_KEYPOINTS_FRAMES:
            person[np.flatnonzero(person[:, 2] > 0)[5:]] = 0.0
        both = np.stack([person, distractor[t]])
        people.append(both[:0] if t in NO_PERSON_FRAMES else both)
    body25 = [joint_sets.convert(p, joint_sets.COCO_18, joint_sets.BODY_25) for p in people]
    json_dir = directory / "openpose"
    paths = writers.write_openpose_dir(json_dir, body25, layout="body_25", name="clip")
    for t in MISSING_FILE_FRAMES:
        paths[t].unlink()
    return video, json_dir, keypoints


def test_predict_video_writes_the_documented_files(tiny_predictor, tmp_path):
    video, json_dir, keypoints = make_clip(tmp_path)
    written = predict.predict_video(tiny_predictor, tmp_path / "out", video=video, keypoints_dir=json_dir)
    assert sorted(p.name for p in written.values()) == ["overlay.mp4", "predictions.json", "predictions.npz"]
    assert not list((tmp_path / "out").glob(".frames-*"))  # the decoded frames are cleaned up

    npz = np.load(written["npz"])
    status = np.array([predict.STATUS_NO_PERSON if t in NO_PERSON_FRAMES + MISSING_FILE_FRAMES else
                       predict.STATUS_FEW_KEYPOINTS if t in FEW_KEYPOINTS_FRAMES else predict.STATUS_OK
                       for t in range(NUM_FRAMES)])
    np.testing.assert_array_equal(npz["status"], status)
    np.testing.assert_array_equal(npz["valid"], status == predict.STATUS_OK)
    np.testing.assert_array_equal(npz["frame"], np.arange(NUM_FRAMES))
    assert npz["num_keypoints"][FEW_KEYPOINTS_FRAMES[0]] == 5 and npz["num_keypoints"][0] == 13
    shapes = {"pose": (72,), "betas": (10,), "camera": (3,), "box_centre": (2,), "box_size": (),
              "joints3d": (14, 3), "smpl_joints3d": (24, 3), "keypoints2d": (14, 2)}
    valid = npz["valid"]
    for name, shape in shapes.items():
        assert npz[name].shape == (NUM_FRAMES,) + shape, name
        assert np.isfinite(npz[name][valid]).all() and np.isnan(npz[name][~valid]).all(), name
    assert tuple(npz["image_size"]) == IMAGE_HW

    # The documented camera: x_box = s (X + tx), y_box = s (Y + ty) in [-1, 1] over the box, box pixel
    # u = (x_box + 1) S / 2, image pixel = centre - size / 2 + (u + 0.5) size / S.
    s, t_xy = npz["camera"][valid, 0, None, None], npz["camera"][valid, None, 1:]
    centre, size = npz["box_centre"][valid, None, :], npz["box_size"][valid, None, None]
    box_pixels = (s * (npz["joints3d"][valid, :, :2].astype(np.float64) + t_xy) + 1.0) * CROP / 2.0
    np.testing.assert_allclose(npz["keypoints2d"][valid], centre - size / 2 + (box_pixels + 0.5) * size / CROP,
                               rtol=1e-4, atol=1e-3)
    # Each valid frame's box is HMR's box around its own confident keypoints (App. A: 150 px tall in 224).
    lsp = joint_sets.convert(keypoints, joint_sets.COCO_18, joint_sets.LSP_14)
    for t in np.flatnonzero(valid):
        points = lsp[t, lsp[t, :, 2] > 0.1, :2]
        np.testing.assert_allclose(npz["box_centre"][t], (points.min(0) + points.max(0)) / 2, atol=1e-3)
        np.testing.assert_allclose(npz["box_size"][t], np.linalg.norm(np.ptp(points, axis=0)) * 224 / 150,
                                   rtol=1e-5)

    content = json.loads(written["json"].read_text())
    assert content["format"] == predict.FORMAT and content["num_frames"] == NUM_FRAMES
    assert content["frames_without_person"] == sorted(NO_PERSON_FRAMES + MISSING_FILE_FRAMES)
    assert content["frames_too_few_keypoints"] == list(FEW_KEYPOINTS_FRAMES)
    assert content["joint_sets"]["joints3d"] == list(joint_sets.LSP_14)
    for t, frame in enumerate(content["frames"]):
        assert frame["status"] == status[t]
        if valid[t]:
            np.testing.assert_allclose(frame["pose"], npz["pose"][t], atol=1e-6)
            np.testing.assert_allclose(frame["keypoints2d"], npz["keypoints2d"][t], atol=1e-5)
        else:
            assert "pose" not in frame

    overlay = videos.read_video(written["overlay"])
    side = int(round(predict.SIDE_VIEW_PANEL * IMAGE_HW[0] / 2)) * 2
    assert overlay.shape == (NUM_FRAMES, IMAGE_HW[0], IMAGE_HW[1] + side, 3)


def test_a_missing_keypoint_source_says_which_inputs_are_needed(tmp_path):
    with pytest.raises(ValueError, match="OpenPose"):
        predict.video_track(tmp_path, video=tmp_path / "clip.mp4")


def test_openpose_file_past_the_video_is_named(tmp_path):
    writers.write_openpose_dir(tmp_path, [np.zeros((0, 25, 3))] * 3, name="clip")
    with pytest.raises(openpose.OpenPoseFormatError, match="clip_000000000002_keypoints.json"):
        predict.openpose_keypoints(tmp_path, num_frames=2)


def test_threedpw_sequence_supplies_frames_and_keypoints(tmp_path):
    keypoints = np.zeros((3, 18, 3))
    keypoints[1, 1] = (10.0, 12.0, 0.8)
    people = [{"betas": np.zeros(10), "poses": np.zeros((3, 72)), "trans": np.zeros((3, 3)), "gender": "f",
               "joints3d": np.zeros((3, 24, 3)), "keypoints2d": keypoints}]
    path = writers.write_threedpw_sequence(tmp_path, "test", "walk", people, np.tile(np.eye(4), (3, 1, 1)),
                                           np.eye(3), np.zeros((3, 8, 8, 3), np.uint8))
    track, fps = predict.video_track(tmp_path / "frames", threedpw_sequence=path)
    assert track.image_paths[2].endswith("imageFiles/walk/image_00002.jpg") and fps == predict.DEFAULT_FPS
    np.testing.assert_array_equal(track.present, [False, True, False])
    np.testing.assert_allclose(track.keypoints2d[1, 1], (10.0, 12.0, 0.8))
