"""Keypoint sources: hand-written files in each real layout (OpenPose, 3DPW, COCO results, mmpose's three
prediction files), read through one interface and mapped by joint name into COCO-18."""
import json
import pickle

import numpy as np
import pytest

from mhr_tf.body import joints
from mhr_tf.data import keypoint_sources as ks

# COCO-18 index of each COCO-17 keypoint, written out from OpenPose's COCO-18 order (nose, neck, r-arm, l-arm, r-leg,
# l-leg, r-eye, l-eye, r-ear, l-ear) and COCO's (nose, l-eye, r-eye, l-ear, r-ear, l/r shoulder ... l/r ankle).
COCO18_OF_COCO17 = [0, 15, 14, 17, 16, 5, 2, 6, 3, 7, 4, 11, 8, 12, 9, 13, 10]
COCO18_NECK = 1


def coco17_person(x0: float, y0: float, confidence: float = 0.9) -> np.ndarray:
    """[17, 3]: keypoint k at (x0 + 10 k, y0 + k)."""
    k = np.arange(17, dtype=np.float32)
    return np.stack([x0 + 10 * k, y0 + k, np.full(17, confidence, np.float32)], axis=1)


def test_coco17_to_coco18_by_name_with_neck_synthesised_from_shoulders():
    person = coco17_person(100.0, 50.0)
    person[5] = [100.0, 50.0, 0.8]  # left shoulder
    person[6] = [60.0, 54.0, 0.6]   # right shoulder
    out = ks.convert_keypoints(person, joints.COCO_17, joints.COCO_18)
    for coco17_index, coco18_index in enumerate(COCO18_OF_COCO17):
        np.testing.assert_array_equal(out[coco18_index], person[coco17_index])
    # OpenPose's neck: the shoulders' midpoint, with the smaller confidence.
    np.testing.assert_allclose(out[COCO18_NECK], [80.0, 52.0, 0.6])


def test_no_neck_when_a_shoulder_is_undetected_or_synthesis_is_off():
    person = coco17_person(0.0, 0.0)
    person[6] = 0.0  # right shoulder not detected
    np.testing.assert_array_equal(ks.convert_keypoints(person, joints.COCO_17, joints.COCO_18)[COCO18_NECK], 0.0)
    np.testing.assert_array_equal(
        ks.convert_keypoints(coco17_person(0.0, 0.0), joints.COCO_17, joints.COCO_18, synthesise=False)[1], 0.0)


def test_mid_hip_synthesised_for_body25_and_taken_as_is_from_halpe26():
    person = coco17_person(0.0, 0.0)
    person[11], person[12] = [10.0, 20.0, 0.5], [30.0, 40.0, 0.7]  # left, right hip
    body25 = ks.convert_keypoints(person, joints.COCO_17, joints.BODY_25)
    np.testing.assert_allclose(body25[joints.BODY_25.index("mid_hip")], [20.0, 30.0, 0.5])
    halpe = np.zeros((26, 3), np.float32)
    halpe[19] = [1.0, 2.0, 0.9]  # Halpe's own "hip" point (index 19)
    halpe[11], halpe[12] = [10.0, 20.0, 0.5], [30.0, 40.0, 0.7]
    np.testing.assert_allclose(ks.convert_keypoints(halpe, joints.HALPE_26, joints.BODY_25)[8], [1.0, 2.0, 0.9])


def write_openpose(path, people, key="pose_keypoints_2d"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"version": 1.3, "people": [{key: np.asarray(p).reshape(-1).tolist()}
                                                           for p in people]}))
    return path


def test_openpose_directory_keeps_every_person_with_keypoint_boxes(tmp_path):
    first = np.zeros((25, 3), np.float32)
    first[[2, 5, 9]] = [[10, 20, 0.9], [30, 25, 0.8], [15, 60, 0.05]]  # the third is below 0.1: not in the box
    second = np.zeros((25, 3), np.float32)
    second[[0, 1]] = [[200, 100, 0.5], [210, 140, 0.6]]
    write_openpose(tmp_path / "clip_000000000004_keypoints.json", [first, second])
    write_openpose(tmp_path / "clip_000000000002_keypoints.json", [])
    sequence = ks.open_keypoints(tmp_path)
    assert sequence.layout == "body_25" and sequence.joint_names == joints.BODY_25
    assert sequence.frame_numbers.tolist() == [2, 4]
    assert sequence.frames[0].num_people == 0
    frame = sequence.frames[1]
    np.testing.assert_array_equal(frame.keypoints, np.stack([first, second]))
    np.testing.assert_allclose(frame.boxes, [[10, 20, 30, 25], [200, 100, 210, 140]])
    np.testing.assert_array_equal(frame.ids, [-1, -1])
    dense = sequence.dense(6)
    assert [f.num_people for f in dense] == [0, 0, 0, 0, 2, 0]


def test_openpose_old_key_single_file_coco18(tmp_path):
    person = np.arange(54, dtype=np.float32).reshape(18, 3) / 100.0
    path = write_openpose(tmp_path / "img_000000000007_keypoints.json", [person], key="pose_keypoints")
    sequence = ks.open_keypoints(path)
    assert sequence.layout == "coco_18" and sequence.frame_numbers.tolist() == [7]
    np.testing.assert_allclose(sequence.frames[0].keypoints[0], person)


def write_threedpw(path, keypoints_per_person):
    """A 3DPW sequence pickle with the keys the decoder reads; `keypoints_per_person` [P][N, 18, 3]."""
    num_frames = len(keypoints_per_person[0])
    pose = np.zeros((num_frames, 72))
    content = {
        "sequence": "hand_built_00", "cam_poses": np.tile(np.eye(4), (num_frames, 1, 1)),
        "cam_intrinsics": np.eye(3), "img_frame_ids": np.arange(num_frames) * 2,
        "betas": [np.zeros(10)] * len(keypoints_per_person), "poses": [pose] * len(keypoints_per_person),
        "trans": [np.zeros((num_frames, 3))] * len(keypoints_per_person),
        "genders": ["m", "f"][:len(keypoints_per_person)],
        "poses2d": [np.transpose(k, (0, 2, 1)) for k in keypoints_per_person],
        "jointPositions": [np.zeros((num_frames, 72))] * len(keypoints_per_person),
        "campose_valid": [np.ones(num_frames, np.uint8)] * len(keypoints_per_person),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(content, protocol=2))
    return path


def test_threedpw_frames_hold_the_detected_people_with_their_index_as_id(tmp_path):
    a = np.full((3, 18, 3), 1.0, np.float32)
    b = np.full((3, 18, 3), 2.0, np.float32)
    a[1] = 0.0  # person 0 not detected in frame 1
    path = write_threedpw(tmp_path / "sequenceFiles" / "test" / "hand_built_00.pkl", [a, b])
    sequence = ks.open_keypoints(path)
    assert sequence.layout == "coco_18" and len(sequence) == 3
    assert [f.ids.tolist() for f in sequence] == [[0, 1], [1], [0, 1]]
    np.testing.assert_array_equal(sequence.frames[1].keypoints[0], b[1])


def test_coco_results_numbered_by_the_image_list_in_natural_order(tmp_path):
    person = coco17_person(5.0, 6.0, 0.7)
    results = [
        {"image_id": 7, "category_id": 1, "keypoints": person.reshape(-1).tolist(), "score": 0.95,
         "bbox": [10.0, 20.0, 30.0, 40.0]},  # COCO boxes are (x, y, width, height)
        {"image_id": 3, "category_id": 1, "keypoints": (person + 1).reshape(-1).tolist(), "score": 0.5},
        {"image_id": 3, "category_id": 2, "keypoints": person.reshape(-1).tolist(), "score": 0.9},  # not a person
    ]
    (tmp_path / "results.keypoints.json").write_text(json.dumps(results))
    images = {"images": [{"id": 7, "file_name": "frames/frame_10.jpg"}, {"id": 3, "file_name": "frames/frame_2.jpg"},
                         {"id": 9, "file_name": "frames/frame_11.jpg"}]}
    (tmp_path / "images.json").write_text(json.dumps(images))
    sequence = ks.read_keypoint_json(tmp_path / "results.keypoints.json", images=tmp_path / "images.json")
    assert sequence.layout == "coco_17"
    # frame_2 -> 0, frame_10 -> 1, frame_11 -> 2 (an image with no person is an empty frame).
    assert sequence.frame_numbers.tolist() == [0, 1, 2]
    assert [f.num_people for f in sequence] == [1, 1, 0]
    np.testing.assert_allclose(sequence.frames[0].keypoints[0], person + 1)
    np.testing.assert_allclose(sequence.frames[1].boxes[0], [10.0, 20.0, 40.0, 60.0])
    np.testing.assert_allclose(sequence.frames[1].scores, [0.95])
    # Without the image list the image ids are the frame numbers.
    assert ks.read_keypoint_json(tmp_path / "results.keypoints.json").frame_numbers.tolist() == [3, 7]


def halpe_meta() -> dict:
    """mmpose's dataset_meta for halpe26 as JSON writes it (integer keys become strings)."""
    names = list(joints.COCO_17) + ["head", "neck", "hip", "left_big_toe", "right_big_toe", "left_small_toe",
                                    "right_small_toe", "left_heel", "right_heel"]
    return {"dataset_name": "halpe26", "num_keypoints": 26,
            "keypoint_id2name": {str(i): name for i, name in enumerate(names)}}


def instance(points: np.ndarray, box=None, box_score=None) -> dict:
    entry = {"keypoints": points[:, :2].tolist(), "keypoint_scores": points[:, 2].tolist()}
    if box is not None:
        entry["bbox"] = [list(box)]  # split_instances wraps the box in a one-element tuple
        entry["bbox_score"] = box_score
    return entry


def test_mmpose_demo_predictions_count_frames_from_one_and_name_the_layout(tmp_path):
    halpe = np.zeros((26, 3), np.float32)
    halpe[18] = [50.0, 40.0, 0.9]  # Halpe's neck
    halpe[17] = [50.0, 10.0, 0.8]  # Halpe's head
    content = {"meta_info": halpe_meta(), "instance_info": [
        {"frame_id": 1, "instances": [instance(halpe, (1.0, 2.0, 3.0, 4.0), 0.75)]},
        {"frame_id": 2, "instances": []},
        {"frame_id": 3, "instances": [instance(halpe), instance(halpe)]}]}
    (tmp_path / "results_clip.json").write_text(json.dumps(content))
    sequence = ks.open_keypoints(tmp_path / "results_clip.json")
    assert sequence.layout == "halpe_26"
    assert sequence.frame_numbers.tolist() == [0, 1, 2] and [f.num_people for f in sequence] == [1, 0, 2]
    np.testing.assert_allclose(sequence.frames[0].boxes[0], [1.0, 2.0, 3.0, 4.0])
    np.testing.assert_allclose(sequence.frames[0].scores, [0.75])
    coco18 = ks.to_coco18(sequence).frames[0].keypoints[0]
    np.testing.assert_allclose(coco18[COCO18_NECK], [50.0, 40.0, 0.9])  # Halpe's neck, not a synthesised one
    lsp = ks.convert_keypoints(sequence.frames[0].keypoints, joints.HALPE_26, joints.LSP_14)[0]
    np.testing.assert_allclose(lsp[joints.LSP_14.index("head_top")], [50.0, 10.0, 0.8])


def test_mmpose_inferencer_video_and_image_files(tmp_path):
    video = [{"frame_id": 0, "instances": [instance(coco17_person(1.0, 2.0))]},
             {"frame_id": 1, "instances": [instance(coco17_person(3.0, 4.0))]}]
    (tmp_path / "clip.json").write_text(json.dumps(video))
    sequence = ks.open_keypoints(tmp_path / "clip.json")
    assert sequence.layout == "coco_17" and sequence.frame_numbers.tolist() == [0, 1]
    np.testing.assert_allclose(sequence.frames[1].keypoints[0], coco17_person(3.0, 4.0))

    images = tmp_path / "predictions"
    images.mkdir()
    (images / "image_00012.json").write_text(json.dumps([instance(coco17_person(7.0, 8.0))]))
    (images / "image_00003.json").write_text(json.dumps([]))
    sequence = ks.open_keypoints(images)
    assert sequence.frame_numbers.tolist() == [3, 12] and [f.num_people for f in sequence] == [0, 1]


def test_wrong_keypoint_count_names_the_file(tmp_path):
    (tmp_path / "bad.json").write_text(json.dumps([{"image_id": 1, "keypoints": [1.0, 2.0, 0.5] * 5}]))
    with pytest.raises(ks.KeypointFormatError, match="bad.json.*5 keypoints"):
        ks.open_keypoints(tmp_path / "bad.json")
