"""3DPW evaluation: both protocols' frame selection and weighting, window combination, reports.

The fixture is a hand-built 3DPW-format split (3 sequences, 4 person tracks) written with the simulator's writer,
whose keypoints, zeroed detections and invalid camera poses are placed by hand so that the frames each protocol scores
are known in advance (EXPECTED_*). Predictions are the ground truth computed here in float64 from the body model,
edited by closed-form offsets whose errors are known.
"""
import json

import numpy as np
import pytest
import tensorflow as tf
from scipy.spatial.transform import Rotation

from mhr_tf import evaluate, geometry
from mhr_tf.body import joints as joint_sets
from mhr_tf.body import smpl
from mhr_tf.data import threedpw
from mhr_tf.data.preprocessing import Channels, Preprocessing
from mhr_tf.model import regressor
from mhr_tf.sim import writers

WINDOW, CROP = 8, 64  # tiny windows and crops
IMAGE_HW = (48, 64)
INTRINSICS = geometry.Intrinsics(60.0, 60.0, 32.0, 24.0)
DEPTH_M = 3.5
CONFIDENT, FAINT = 0.9, 0.05
# The evaluation's ground truth is float32 metres at DEPTH_M (~0.2 µm per coordinate), which a second difference
# multiplies by up to 4: the acceleration error of a perfect prediction is ~1e-3 mm, not 0.
FLOAT32_MM = 5e-3
# sequence -> people (gender code, frames); per-person edits are in `person_edits`.
SEQUENCES = {"seqA": (("f", 12), ("m", 12)), "seqB": (("m", 10),), "seqC": (("f", 5),)}
# Frames each protocol scores, per track (sequence, person), worked out by hand from `person_edits`:
# paper: >= 7 LSP keypoints above 0.1 and campose_valid; official: campose_valid and poses2d not all zero.
EXPECTED_PAPER = {("seqA", 0): 9, ("seqA", 1): 3, ("seqB", 0): 6, ("seqC", 0): 5}
EXPECTED_OFFICIAL = {("seqA", 0): 10, ("seqA", 1): 3, ("seqB", 0): 10, ("seqC", 0): 5}


def person_edits(sequence, person, keypoints, campose_valid):
    """Hand-placed detections and camera validity (keypoints [N, 18, 3] COCO-18, campose_valid [N])."""
    visible = np.flatnonzero(keypoints[0, :, 2] > 0)  # the 13 COCO joints SMPL has (not nose, eyes, ears)
    if (sequence, person) == ("seqA", 0):
        keypoints[2, visible[6:], 2] = FAINT      # 6 confident keypoints: a total occlusion, still a detection
        keypoints[3] = 0.0                        # no detection at all
        campose_valid[5] = 0
        keypoints[7, visible[7:], 2] = FAINT      # exactly 7 confident keypoints: scored by the paper's rule ...
        keypoints[7, visible[7], 2] = 0.1         # ... and one at exactly 0.1, which is not "above 0.1"
    elif (sequence, person) == ("seqA", 1):
        campose_valid[3:] = 0
    elif (sequence, person) == ("seqB", 0):
        keypoints[:4] = 0.0
        keypoints[:4, joint_sets.COCO_18.index("nose")] = (30.0, 10.0, CONFIDENT)  # a detection, but no LSP joint


def motion(num_frames, rng):
    """A person facing the camera (root turned by pi about x: y down), swinging arms and legs, DEPTH_M away."""
    pose = np.zeros((num_frames, 72))
    pose[:, :3] = (np.pi, 0.0, 0.0)
    phase = np.linspace(0, np.pi, num_frames)[:, None]
    for name, amplitude in (("left_shoulder", 0.6), ("right_shoulder", -0.6), ("left_hip", 0.4),
                            ("right_hip", -0.4), ("left_elbow", 0.5)):
        j = joint_sets.SMPL_24.index(name)
        pose[:, 3 * j:3 * j + 3] = amplitude * np.sin(phase + rng.uniform(0, 1)) * rng.normal(size=3)
    trans = np.stack([rng.normal(0, 0.05, num_frames), np.zeros(num_frames), np.full(num_frames, DEPTH_M)], -1)
    return pose, trans


def project_coco(joints24):
    """COCO-18 keypoints (x, y, CONFIDENT) of SMPL joints [N, 24, 3] in the camera; joints SMPL lacks are zero."""
    have = joint_sets.indices(joint_sets.SMPL_24, joint_sets.COCO_18) >= 0
    coco = joint_sets.convert(joints24, joint_sets.SMPL_24, joint_sets.COCO_18)
    coco[:, ~have] = (0.0, 0.0, 1.0)  # placeholder depth, zeroed below
    keypoints = np.concatenate([geometry.project(coco.astype(np.float64), INTRINSICS),
                                np.full(coco.shape[:2] + (1,), CONFIDENT)], axis=-1)
    keypoints[:, ~have] = 0.0
    return keypoints


def body_truth(gender, betas, pose, trans):
    """float64 ground truth of one person: vertices, SMPL joints and LSP-14 joints from the vertices."""
    body = smpl.load_body_model(None, gender)
    vertices, joints24 = smpl.forward_numpy(body, np.tile(betas, (len(pose), 1)), pose, trans)
    joints14 = np.einsum("kv,nvc->nkc", body.lsp_regressor.astype(np.float64), vertices.astype(np.float64))
    return {"vertices": vertices.astype(np.float64), "joints24": joints24.astype(np.float64),
            "joints14": joints14}


def write_split(root):
    """Write SEQUENCES into `root` (test split); returns the ground truth per (sequence, person)."""
    rng = np.random.default_rng(7)
    truth = {}
    for name, people in SEQUENCES.items():
        num_frames = people[0][1]
        entries = []
        for person, (gender, _) in enumerate(people):
            betas = rng.normal(0, 0.5, 10)
            pose, trans = motion(num_frames, rng)
            trans[:, 0] += 0.6 * person - 0.3 * (len(people) - 1)
            gt = body_truth({"f": "female", "m": "male"}[gender], betas, pose, trans)
            keypoints, campose_valid = project_coco(gt["joints24"]), np.ones(num_frames, np.uint8)
            person_edits(name, person, keypoints, campose_valid)
            entries.append({"betas": betas, "poses": pose, "trans": trans, "gender": gender,
                            "joints3d": gt["joints24"], "keypoints2d": keypoints, "campose_valid": campose_valid})
            truth[(name, person)] = gt
        images = rng.integers(60, 200, size=(num_frames,) + IMAGE_HW + (3,)).astype(np.uint8)
        writers.write_threedpw_sequence(root, "test", name, entries, np.tile(np.eye(4), (num_frames, 1, 1)),
                                        geometry.intrinsics_matrix(INTRINSICS), images)
    return truth


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    """The split on disk, its tracks, their ground truth, and the pipeline's per-frame predictions of the mean-pose
    predictor (whose occlusion flags, boxes and windows every test reuses)."""
    root = tmp_path_factory.mktemp("threedpw")
    truth = write_split(root)
    tracks = threedpw.load_split(root, "test")
    predictor = evaluate.mean_pose_predictor(Preprocessing(num_frames=WINDOW, crop_size=CROP))
    predictions = dict(evaluate.predict_tracks(predictor, tracks))
    return {"root": root, "tracks": tracks, "truth": truth, "predictions": predictions, "predictor": predictor}


def oracle(split, edit=lambda key, joints, joint_names, kind: joints):
    """Predictions equal to the ground truth, each array passed through `edit(track key, array, joint names, kind)`
    with kind "joints" or "vertices"."""
    out = []
    for index, track in enumerate(split["tracks"]):
        key, gt = (track.sequence, track.person), split["truth"][(track.sequence, track.person)]
        base = split["predictions"][index]
        out.append((index, evaluate.TrackPrediction(**{
            **{f: getattr(base, f) for f in ("pose", "betas", "camera", "keypoints2d", "occluded", "box_centre",
                                             "box_size", "window_start")},
            "joints3d": edit(key, gt["joints14"], joint_sets.LSP_14, "joints"),
            "smpl_joints3d": edit(key, gt["joints24"], joint_sets.SMPL_24, "joints"),
            "vertices": edit(key, gt["vertices"], None, "vertices")})))
    return out


def scored(split, predictions):
    return evaluate.score_predictions(split["tracks"], predictions)


def root_relative_shift(offset_m):
    """Every joint moved by `offset_m` along z, except that the hips move by +/- it, so the hip midpoint (the paper's
    root) and the SMPL pelvis stay put: after centring, each LSP joint is exactly |offset| from the truth."""
    def edit(key, array, joint_names, kind):
        d = offset_m[key] if isinstance(offset_m, dict) else offset_m
        shifted = array + np.array([0.0, 0.0, d])
        if kind == "joints":
            if joint_names == joint_sets.LSP_14:
                shifted[:, joint_names.index("right_hip"), 2] = array[:, joint_names.index("right_hip"), 2] - d
            else:
                shifted[:, joint_names.index("pelvis")] = array[:, joint_names.index("pelvis")]
        return shifted
    return edit


def test_protocols_score_the_hand_counted_frames(split):
    result = scored(split, oracle(split))
    for protocol, expected in (("paper", EXPECTED_PAPER), ("official", EXPECTED_OFFICIAL)):
        summary = result.summary[protocol]
        assert summary["frames"] == sum(expected.values())
        assert (summary["tracks"], summary["sequences"]) == (4, 3)
        assert {(row["sequence"], row["person"]): row[protocol]["frames"] for row in result.tracks} == expected


def test_ground_truth_as_prediction_scores_zero(split):
    result = scored(split, oracle(split))
    for protocol in ("paper", "official"):
        for metric in ("pa_mpjpe_mm", "mpjpe_mm", "pve_mm", "accel_mm"):
            assert result.summary[protocol][metric] == pytest.approx(0.0, abs=FLOAT32_MM), (protocol, metric)


def test_whole_body_translated_by_10mm_scores_zero_after_root_alignment(split):
    result = scored(split, oracle(split, lambda key, a, names, kind: a + np.array([0.01, -0.01, 0.01]) / np.sqrt(3)))
    for protocol in ("paper", "official"):
        for metric in ("pa_mpjpe_mm", "mpjpe_mm", "pve_mm", "accel_mm"):
            assert result.summary[protocol][metric] == pytest.approx(0.0, abs=FLOAT32_MM), (protocol, metric)


def test_root_relative_10mm_offset_gives_mpjpe_and_pve_of_10mm(split):
    result = scored(split, oracle(split, root_relative_shift(0.010)))
    assert result.summary["paper"]["mpjpe_mm"] == pytest.approx(10.0, abs=1e-3)
    assert result.summary["paper"]["pve_mm"] == pytest.approx(10.0, abs=1e-3)
    # The official root is SMPL's pelvis joint, which cannot move relative to itself: 23 of 24 joints are off.
    assert result.summary["official"]["mpjpe_mm"] == pytest.approx(10.0 * 23 / 24, abs=1e-3)
    assert result.summary["official"]["pve_mm"] == pytest.approx(10.0, abs=1e-3)
    assert result.summary["paper"]["accel_mm"] == pytest.approx(0.0, abs=FLOAT32_MM)  # constant in time


def test_paper_averages_per_sequence_official_per_frame(split):
    offsets_mm = {("seqA", 0): 10.0, ("seqA", 1): 10.0, ("seqB", 0): 70.0, ("seqC", 0): 30.0}
    result = scored(split, oracle(split, root_relative_shift({k: v / 1000 for k, v in offsets_mm.items()})))
    paper = np.mean(list(offsets_mm.values()))  # 30: each person-sequence counts once
    official = sum(EXPECTED_OFFICIAL[k] * v for k, v in offsets_mm.items()) / sum(EXPECTED_OFFICIAL.values())  # 35
    assert result.summary["paper"]["mpjpe_mm"] == pytest.approx(paper, abs=1e-3)
    assert result.summary["paper"]["pve_mm"] == pytest.approx(paper, abs=1e-3)
    assert result.summary["official"]["mpjpe_mm"] == pytest.approx(official * 23 / 24, abs=1e-3)
    assert result.summary["official"]["pve_mm"] == pytest.approx(official, abs=1e-3)


def test_rotated_and_scaled_copy_has_zero_pa_mpjpe(split):
    rotation = Rotation.from_rotvec([0.3, -0.5, 0.2]).as_matrix()
    scale, shift = 1.3, np.array([0.2, -0.1, 0.5])
    result = scored(split, oracle(split, lambda key, a, names, kind: scale * a @ rotation.T + shift))
    assert result.summary["paper"]["pa_mpjpe_mm"] == pytest.approx(0.0, abs=1e-3)
    assert result.summary["official"]["pa_mpjpe_mm"] == pytest.approx(0.0, abs=1e-3)
    # MPJPE after centring on the hip midpoint, in float64 here: mean over joints of |(s R - I)(x - root)|.
    per_track = []
    for track in split["tracks"]:
        gt = split["truth"][(track.sequence, track.person)]["joints14"]
        hips = [joint_sets.LSP_14.index("left_hip"), joint_sets.LSP_14.index("right_hip")]
        centred = gt - gt[:, hips].mean(axis=1, keepdims=True)
        frame_errors = np.linalg.norm(scale * centred @ rotation.T - centred, axis=-1).mean(-1) * 1000
        mask = evaluate.protocol_mask(evaluate.PAPER, track, split["predictions"][split["tracks"].index(track)])
        per_track.append(frame_errors[mask].mean())
    assert result.summary["paper"]["mpjpe_mm"] == pytest.approx(np.mean(per_track), rel=1e-6)


def test_quadratic_drift_gives_the_closed_form_acceleration_error(split):
    c = 0.002  # metres / frame²: offset c t², whose second difference is 2c at every frame

    def drift(key, array, names, kind):
        t = np.arange(len(array))[:, None, None]
        moved = root_relative_shift(1.0)(key, np.zeros_like(array), names, kind)  # unit root-relative direction
        return array + c * t ** 2 * moved
    result = scored(split, oracle(split, drift))
    assert result.summary["paper"]["accel_mm"] == pytest.approx(2 * c * 1000, abs=FLOAT32_MM)
    assert result.summary["official"]["accel_mm"] == pytest.approx(2 * c * 1000 * 23 / 24, abs=FLOAT32_MM)


def counting_predictor(channels=("occlusion",)):
    """A predictor whose pose says which call row (window, in order) and which window position made each frame."""
    calls = {"windows": 0}

    def fn(inputs):
        batch = int(inputs.shape[0])
        pose = np.zeros((batch, WINDOW, 72), np.float32)
        pose[..., 0] = calls["windows"] + np.arange(batch)[:, None]
        pose[..., 1] = np.arange(WINDOW)
        calls["windows"] += batch
        zeros = {"betas": 10, "camera": 3}
        out = {"pose": pose, **{k: np.zeros((batch, WINDOW, n), np.float32) for k, n in zeros.items()}}
        out.update(joints3d=np.zeros((batch, WINDOW, 14, 3), np.float32),
                   smpl_joints3d=np.zeros((batch, WINDOW, 24, 3), np.float32),
                   keypoints2d=np.zeros((batch, WINDOW, 14, 2), np.float32))
        return out
    pre = Preprocessing(num_frames=WINDOW, crop_size=CROP, channels=Channels.from_names(channels))
    return evaluate.Predictor(fn, pre, np.zeros((0, 3), np.int32), "counting")


def test_each_frame_takes_the_window_where_it_is_most_central(split):
    tracks = split["tracks"]
    got = dict(evaluate.predict_tracks(counting_predictor(), tracks, batch_size=3, stride=WINDOW))
    # Windows in order: seqA p0 starts (0, 4) -> rows 0, 1; seqA p1 (0, 4) -> 2, 3; seqB (0, 2) -> 4, 5; seqC (0) -> 6.
    # 12 frames, starts 0 and 4: frames 0-5 are nearer the middle (3.5) of the first window, 6-11 of the second.
    # 10 frames, starts 0 and 2: frames 0-4 from the first, 5-9 from the second. 5 frames: one padded window.
    expected_rows = [[0] * 6 + [1] * 6, [2] * 6 + [3] * 6, [4] * 5 + [5] * 5, [6] * 5]
    expected_starts = [[0] * 6 + [4] * 6, [0] * 6 + [4] * 6, [0] * 5 + [2] * 5, [0] * 5]
    for index in range(len(tracks)):
        np.testing.assert_array_equal(got[index].pose[:, 0], expected_rows[index])
        np.testing.assert_array_equal(got[index].window_start, expected_starts[index])
        np.testing.assert_array_equal(got[index].pose[:, 1], np.arange(len(expected_rows[index])) -
                                      np.array(expected_starts[index]))


def heads_predictor(window_frames):
    """Stands for a model whose current head says 1 and whose future head says 2 (App. B's assembly: a window's
    last frame is the last pair's future prediction), with each window's ground truth joints: `window_frames` lists
    the (track, frames) of every window in the order the pipeline makes them."""
    calls = {"row": 0}

    def fn(inputs):
        batch = int(inputs.shape[0])
        out = {k: np.zeros((batch, WINDOW) + shape, np.float32) for k, shape in (
            ("pose", (72,)), ("betas", (10,)), ("camera", (3,)), ("joints3d", (14, 3)), ("smpl_joints3d", (24, 3)),
            ("keypoints2d", (14, 2)))}
        out["betas"][:, :-1, 0], out["betas"][:, -1, 0] = 1.0, 2.0
        for b in range(batch):
            joints, frames = window_frames[calls["row"] + b]
            out["joints3d"][b] = joints[frames]
        calls["row"] += batch
        return out
    return evaluate.Predictor(fn, Preprocessing(num_frames=WINDOW, crop_size=CROP,
                                                channels=Channels(False, False, False)),
                              np.zeros((0, 3), np.int32), "heads")


def test_only_a_tracks_last_frame_takes_a_future_head_prediction(split):
    tracks = split["tracks"]
    table = evaluate.pipeline.target_windows(tracks, WINDOW, evaluate.window_stride(WINDOW))
    rows = [(split["truth"][(tracks[t].sequence, tracks[t].person)]["joints14"].astype(np.float32), frames)
            for t, frames in zip(table["track"], table["frame_index"])]
    got = dict(evaluate.predict_tracks(heads_predictor(rows), tracks, batch_size=2))
    for index, track in enumerate(tracks):
        future = got[index].betas[:, 0] == 2.0
        # Tracks of 12 and 10 frames end on a window's last position; the 5-frame one is a padded window.
        expected = np.arange(track.num_frames) == track.num_frames - 1 if track.num_frames >= WINDOW else \
            np.zeros(track.num_frames, bool)
        np.testing.assert_array_equal(future, expected, err_msg=track.sequence)
        assert len(set(got[index].window_start)) >= (2 if track.num_frames > WINDOW else 1)  # windows do overlap


def test_windowing_a_perfect_predictor_adds_no_acceleration_error(split):
    """Ground truth per window, stitched by the overlapping windows: any frame taken from the wrong window position
    would show as a jump."""
    tracks = split["tracks"]
    table = evaluate.pipeline.target_windows(tracks, WINDOW, evaluate.window_stride(WINDOW))
    truths = [split["truth"][(track.sequence, track.person)] for track in tracks]
    rows = [(truths[t]["joints14"].astype(np.float32), frames) for t, frames in zip(table["track"],
                                                                                   table["frame_index"])]
    got = dict(evaluate.predict_tracks(heads_predictor(rows), tracks, batch_size=3))
    for index, truth in enumerate(truths):
        np.testing.assert_allclose(got[index].joints3d, truth["joints14"], atol=1e-6)
        from mhr_tf import metrics
        accel = metrics.accel_error_per_frame(got[index].joints3d.astype(np.float64), truth["joints14"],
                                              joint_sets.LSP_14, metrics.PELVIS_HIP_MIDPOINT)
        assert np.abs(accel).max() <= FLOAT32_MM


def test_landscape_and_portrait_sequences_keep_their_order_with_image_channels(tmp_path):
    # 3DPW mixes 1920x1080 and 1080x1920 sequences; the paired crops need each one's frame size.
    rng = np.random.default_rng(0)
    for name, hw, n in (("a_landscape", (48, 64), 10), ("b_portrait", (64, 48), 9), ("c_landscape", (48, 64), 8)):
        keypoints = np.zeros((n, 18, 3))
        keypoints[:, 1:14] = np.concatenate([rng.uniform(10, 40, (n, 13, 2)), np.full((n, 13, 1), 0.9)], -1)
        person = {"betas": np.zeros(10), "poses": np.zeros((n, 72)), "trans": np.zeros((n, 3)), "gender": "m",
                  "joints3d": np.zeros((n, 24, 3)), "keypoints2d": keypoints}
        writers.write_threedpw_sequence(tmp_path, "test", name, [person], np.tile(np.eye(4), (n, 1, 1)), np.eye(3),
                                        rng.integers(0, 255, (n,) + hw + (3,)).astype(np.uint8))
    tracks = threedpw.load_split(tmp_path, "test")
    got = dict(evaluate.predict_tracks(counting_predictor(("flow", "occlusion")), tracks, batch_size=2, stride=WINDOW))
    np.testing.assert_array_equal(got[0].window_start, [0] * 5 + [2] * 5)
    np.testing.assert_array_equal(got[1].window_start, [0] * 5 + [1] * 4)
    np.testing.assert_array_equal(np.concatenate([got[i].pose[:, 0] for i in range(3)]),
                                  [0] * 5 + [1] * 5 + [2] * 5 + [3] * 4 + [4] * 8)


def test_boxes_follow_the_keypoints_and_the_last_frame_uses_the_last_pair_box(split):
    track = split["tracks"][0]  # seqA person 0: frame 11 is position 7 (the "future" prediction) of its window
    prediction = split["predictions"][0]
    lsp = joint_sets.convert(track.keypoints2d, joint_sets.COCO_18, joint_sets.LSP_14)
    for t in (0, 6, 10):
        points = lsp[t, lsp[t, :, 2] > 0.1, :2]
        lo, hi = points.min(0), points.max(0)
        np.testing.assert_allclose(prediction.box_centre[t], (lo + hi) / 2, atol=1e-3)
        np.testing.assert_allclose(prediction.box_size[t], np.linalg.norm(hi - lo) * 224 / 150, rtol=1e-5)
    np.testing.assert_array_equal(prediction.box_centre[11], prediction.box_centre[10])
    np.testing.assert_array_equal(prediction.occluded, np.isin(np.arange(12), [2, 3]))


def test_mean_pose_baseline_predicts_the_regressor_mean(split):
    out = split["predictor"](np.zeros((2, WINDOW - 1, CROP, CROP, 1), np.float32))
    theta = regressor.mean_parameters()
    np.testing.assert_allclose(out["pose"], np.broadcast_to(theta[:72], (2, WINDOW, 72)))
    np.testing.assert_allclose(out["camera"][0, 0], theta[-3:])
    s, tx, ty = theta[-3:]
    joints = out["joints3d"][0, 0].astype(np.float64)
    np.testing.assert_allclose(out["keypoints2d"][0, 0], s * (joints[:, :2] + [tx, ty]), atol=1e-6)
    # The mean pose faces the camera upright: the head is above (smaller y than) the ankles.
    assert joints[joint_sets.LSP_14.index("head_top"), 1] < joints[joint_sets.LSP_14.index("left_ankle"), 1] - 1.0


def test_report_json_markdown_plots_and_summaries(split, tmp_path):
    result = scored(split, oracle(split, root_relative_shift(0.010)))
    result.meta.update(channels=["flow", "heatmaps", "occlusion"], data="hand-built", split="test")
    written = evaluate.write_report([result], tmp_path, compare=True)
    content = json.loads(written["json"].read_text())
    assert content[0]["protocols"]["paper"]["mpjpe_mm"] == pytest.approx(10.0, abs=1e-3)
    assert content[0]["protocols"]["official"]["frames"] == sum(EXPECTED_OFFICIAL.values())
    text = written["markdown"].read_text()
    assert "| 10.0 |" in text and "published, paper Table 1, real 3DPW test set" in text
    [row] = [line for line in text.splitlines() if "paper: Flow + Keypoints (our configuration's row)" in line]
    assert "| 74.7 |" in row
    assert sorted(p.name for p in written["plots"]) == ["seqA_person0.png", "seqA_person1.png",
                                                        "seqB_person0.png", "seqC_person0.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in written["plots"])

    log_dir = evaluate.write_summaries(result, tmp_path / "tb", step=42)
    values = {}
    for event_file in log_dir.glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(event_file)):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "scalars":
                    values[value.tag] = (event.step, float(tf.make_ndarray(value.tensor)))
    assert values["paper/mpjpe_mm"] == (42, pytest.approx(10.0, abs=1e-3))
    assert values["official/frames"] == (42, sum(EXPECTED_OFFICIAL.values()))
