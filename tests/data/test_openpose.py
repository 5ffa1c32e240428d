"""OpenPose JSON decoder and writer: hand-written files in OpenPose's layout, layouts, missing people, following."""
import json

import numpy as np
import pytest

from mhr_tf.body import joints
from mhr_tf.data import openpose
from mhr_tf.sim import writers

# OpenPose's doc: BODY_25 index of each COCO-18 keypoint (BODY_25 inserts MidHip at 8 and adds 6 foot points).
BODY25_OF_COCO18 = [0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18]


def person_values(num_joints, x0, y0, confidence=0.9, step=10.0):
    """Flat x, y, c list: joint j at (x0 + step * j, y0 + j)."""
    return [v for j in range(num_joints) for v in (x0 + step * j, y0 + j, confidence)]


def write_json(path, people, key="pose_keypoints_2d", version=1.3):
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"version": version, "people": [{"person_id": [-1], key: values, "face_keypoints_2d": []}
                                           for values in people]}
    path.write_text(json.dumps(body))
    return path


def test_coco18_frame_reads_values(tmp_path):
    path = tmp_path / "clip_000000000007_keypoints.json"
    path.write_text('{"version":1.1,"people":[{"pose_keypoints_2d":[' + ",".join(
        f"{10.5 + j},{200.25 - j},0.{j + 1:02d}" for j in range(18)) + '],"face_keypoints_2d":[]}]}')
    frame = openpose.load_openpose_frame(path)
    assert frame.layout == "coco_18" and frame.frame == 7 and frame.people.shape == (1, 18, 3)
    np.testing.assert_allclose(frame.people[0, 17], [27.5, 183.25, 0.18], rtol=1e-6)
    np.testing.assert_allclose(frame.people[0, 0], [10.5, 200.25, 0.01], rtol=1e-6)


def test_body25_converted_to_coco18_by_name(tmp_path):
    write_json(tmp_path / "v_000000000000_keypoints.json", [person_values(25, 100.0, 50.0)])
    track = openpose.load_openpose_dir(tmp_path)
    assert track.layout == "body_25" and track.keypoints.shape == (1, 18, 3)
    np.testing.assert_allclose(track.keypoints[0, :, 0], 100.0 + 10.0 * np.array(BODY25_OF_COCO18))
    # The other way, COCO-18 → BODY_25: MidHip (8) and the feet (19-24) are not in COCO and come back as zeros.
    back = openpose.load_openpose_dir(tmp_path, joint_names=joints.BODY_25).keypoints[0]
    np.testing.assert_allclose(back[:, 0], 100.0 + 10.0 * np.arange(25))


def test_old_pose_keypoints_key_reads(tmp_path):
    path = write_json(tmp_path / "a_000000000003_keypoints.json", [person_values(18, 5.0, 6.0)],
                      key="pose_keypoints", version=0.1)
    np.testing.assert_allclose(openpose.load_openpose_frame(path).people[0, 2], [25.0, 8.0, 0.9], rtol=1e-6)


def test_frame_without_people_is_missing_unless_a_person_is_required(tmp_path):
    write_json(tmp_path / "v_000000000000_keypoints.json", [person_values(25, 100.0, 50.0)])
    empty = write_json(tmp_path / "v_000000000001_keypoints.json", [])
    write_json(tmp_path / "v_000000000002_keypoints.json", [person_values(25, 104.0, 52.0)])
    frame = openpose.load_openpose_frame(empty)
    assert frame.layout is None and frame.people.shape[0] == 0
    track = openpose.load_openpose_dir(tmp_path)
    assert track.present.tolist() == [True, False, True]
    assert track.num_people.tolist() == [1, 0, 1]
    assert np.all(track.keypoints[1] == 0) and np.all(np.isnan(track.boxes[1]))
    with pytest.raises(openpose.NoPersonError, match=r"v_000000000001_keypoints.json: field 'people' is empty"):
        openpose.load_openpose_frame(empty, require_person=True)
    with pytest.raises(openpose.NoPersonError, match="v_000000000001"):
        openpose.load_openpose_dir(tmp_path, require_person=True)


def test_follows_the_same_person_across_frames(tmp_path):
    near = person_values(18, 100.0, 100.0, step=10.0)   # box 170 x 17, the larger one
    far = person_values(18, 600.0, 100.0, step=5.0)     # box 85 x 17
    moved = person_values(18, 112.0, 103.0, step=10.0)
    frames = [[near, far], [far, moved], [far], [moved, far], [far, near]]
    for t, people in enumerate(frames):
        write_json(tmp_path / f"v_{t}_keypoints.json", people)
    track = openpose.load_openpose_dir(tmp_path)
    # Frame 2 has only the other person, far away: reported missing, not swapped.
    assert track.present.tolist() == [True, True, False, True, True]
    np.testing.assert_allclose(track.keypoints[:, 0, 0], [100.0, 112.0, 0.0, 112.0, 100.0])
    np.testing.assert_allclose(track.boxes[0], [100.0, 100.0, 270.0, 117.0])
    np.testing.assert_array_equal(openpose.follow_person(
        [np.asarray(p, np.float32).reshape(len(p), 18, 3) for p in frames]), [0, 1, -1, 0, 1])
    # A starting point picks the other person instead.
    other = openpose.load_openpose_dir(tmp_path, initial_centre=(640.0, 108.0))
    np.testing.assert_allclose(other.keypoints[:, 0, 0], [600.0] * 5)


def test_people_without_confident_keypoints_are_not_followed(tmp_path):
    faint = person_values(18, 100.0, 100.0, confidence=0.05)
    write_json(tmp_path / "v_0_keypoints.json", [faint])
    track = openpose.load_openpose_dir(tmp_path)
    assert track.present.tolist() == [False] and track.num_people.tolist() == [1]


def test_files_ordered_by_frame_number_not_name(tmp_path):
    for t in [10, 2, 1]:
        write_json(tmp_path / f"frame_{t}_keypoints.json", [person_values(18, float(t), 0.0)])
    track = openpose.load_openpose_dir(tmp_path)
    assert track.frame_numbers.tolist() == [1, 2, 10]
    np.testing.assert_allclose(track.keypoints[:, 0, 0], [1.0, 2.0, 10.0])


@pytest.mark.parametrize("text, message", [
    ("{not json", r"not valid JSON"),
    ('{"version": 1.3}', r"field 'people' missing"),
    ('{"people": [{"face_keypoints_2d": []}]}', r"people\[0\] has no list 'pose_keypoints_2d'"),
    ('{"people": [{"pose_keypoints_2d": ' + json.dumps([0.5] * 45) + '}]}',
     r"people\[0\].pose_keypoints_2d has 45 values — expected 54 \(coco_18\) or 75 \(body_25\)"),
    ('{"people": [{"pose_keypoints_2d": ' + json.dumps(["x"] * 54) + '}]}', r"is not all numbers"),
])
def test_bad_file_raises_named_error(tmp_path, text, message):
    path = tmp_path / "v_000000000000_keypoints.json"
    path.write_text(text)
    with pytest.raises(openpose.OpenPoseFormatError, match=message) as error:
        openpose.load_openpose_frame(path)
    assert str(path) in str(error.value)


def test_layout_mismatch_raises_named_error(tmp_path):
    write_json(tmp_path / "v_0_keypoints.json", [person_values(18, 0.0, 0.0)])
    bad = write_json(tmp_path / "v_1_keypoints.json", [person_values(25, 0.0, 0.0)])
    with pytest.raises(openpose.OpenPoseFormatError, match=str(bad) + r": people in the body_25 layout"):
        openpose.load_openpose_dir(tmp_path)
    with pytest.raises(openpose.OpenPoseFormatError, match=r"has 54 pose values \(coco_18\) — expected 75"):
        openpose.load_openpose_frame(tmp_path / "v_0_keypoints.json", layout="body_25")


def test_empty_directory_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no \*_keypoints.json files"):
        openpose.load_openpose_dir(tmp_path)


def test_writer_reader_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    people = [rng.uniform(0, 300, size=(2, 25, 3)).astype(np.float32), np.zeros((0, 25, 3), np.float32),
              rng.uniform(0, 300, size=(1, 25, 3)).astype(np.float32)]
    for p in (people[0], people[2]):
        p[..., 2] = 0.8
    paths = writers.write_openpose_dir(tmp_path, people, layout="body_25", name="clip", first_frame=4)
    assert [p.name for p in paths] == [f"clip_00000000000{t}_keypoints.json" for t in (4, 5, 6)]
    raw = json.loads(paths[0].read_text())
    assert raw["version"] == 1.3 and raw["people"][1]["person_id"] == [-1]
    assert len(raw["people"][1]["pose_keypoints_2d"]) == 75 and raw["people"][1]["hand_left_keypoints_2d"] == []
    for path, expected in zip(paths, people):
        frame = openpose.load_openpose_frame(path, layout="body_25")  # the layout also shapes an empty frame
        np.testing.assert_array_equal(frame.people, expected)
    track = openpose.load_openpose_dir(tmp_path, joint_names=joints.BODY_25)
    assert track.frame_numbers.tolist() == [4, 5, 6] and track.present.tolist() == [True, False, True]


def test_writer_rejects_wrong_joint_count(tmp_path):
    with pytest.raises(ValueError, match=r"expected \(P, 18, 3\) for coco_18"):
        writers.write_openpose_json(tmp_path / "x_keypoints.json", np.zeros((1, 25, 3)), layout="coco_18")
