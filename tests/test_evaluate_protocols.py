"""3DPW evaluation scope and protocols: `--split all`, the official PCK / AUC / MPJAE / PA-MPJAE, a user's joint
regressor, and the three poolings — each against a hand computation on the hand-built split of tests/test_evaluate.py
(EXPECTED_* there say which frames each protocol scores)."""
import logging

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from mhr_tf import evaluate, geometry, metrics
from mhr_tf.body import joints as joint_sets
from mhr_tf.body import smpl
from mhr_tf.data.preprocessing import Preprocessing
from mhr_tf.sim import writers
from tests.test_evaluate import (EXPECTED_OFFICIAL, EXPECTED_PAPER, IMAGE_HW, INTRINSICS, body_truth, motion,  # noqa
                                 oracle, project_coco, root_relative_shift, split)


def official_masks(split):
    return [evaluate.protocol_mask(evaluate.OFFICIAL, t, split["predictions"][i]) for i, t in enumerate(split["tracks"])]


def with_pose(split, pose_of, joints_of):
    """Ground-truth predictions whose `pose` is `pose_of(track)` and SMPL joints `joints_of(key, joints24)`."""
    out = []
    for index, prediction in oracle(split):
        track = split["tracks"][index]
        key = (track.sequence, track.person)
        out.append((index, evaluate.TrackPrediction(**{
            **prediction.__dict__, "pose": pose_of(track),
            "smpl_joints3d": joints_of(key, split["truth"][key]["joints24"])})))
    return out


# --------------------------------------------------------------------------------------------------------------------
# Scope

def write_three_splits(root):
    """Sequences tr (2 people), va and te (1 each), 6 frames, every frame scored by the official protocol."""
    rng = np.random.default_rng(11)
    for split_name, name, count in (("train", "tr", 2), ("validation", "va", 1), ("test", "te", 1)):
        entries = []
        for person in range(count):
            pose, trans = motion(6, rng)
            trans[:, 0] += 0.5 * person
            gt = body_truth("male", np.zeros(10), pose, trans)
            entries.append({"betas": np.zeros(10), "poses": pose, "trans": trans, "gender": "m",
                            "joints3d": gt["joints24"], "keypoints2d": project_coco(gt["joints24"])})
        writers.write_threedpw_sequence(root, split_name, name, entries, np.tile(np.eye(4), (6, 1, 1)),
                                        geometry.intrinsics_matrix(INTRINSICS),
                                        rng.integers(60, 200, (6,) + IMAGE_HW + (3,)).astype(np.uint8))


def test_split_all_pools_train_validation_and_test_and_warns_off_the_official_count(tmp_path, caplog):
    write_three_splits(tmp_path / "3dpw")
    with caplog.at_level(logging.WARNING, logger="mhr_tf.evaluate"):
        tracks = evaluate.load_tracks(tmp_path / "3dpw", "all")
    assert [(t.sequence, t.person) for t in tracks] == [("tr", 0), ("tr", 1), ("va", 0), ("te", 0)]
    assert "4 person-sequences" in caplog.text and "87" in caplog.text
    assert evaluate.track_count_note(evaluate.OFFICIAL_NUM_TRACKS) is None

    pre = Preprocessing(num_frames=4, crop_size=32)
    result = evaluate.evaluate(evaluate.mean_pose_predictor(pre), tmp_path / "3dpw", "all")
    assert (result.meta["split"], result.meta["splits"]) == ("all", ["train", "validation", "test"])
    assert "87" in result.meta["track_count_note"]
    official = result.summary["official"]
    assert (official["frames"], official["tracks"], official["sequences"]) == (24, 4, 3)
    written = evaluate.write_report([result], tmp_path / "report", plots=False)
    text = written["markdown"].read_text()
    assert "split all (train + validation + test)" in text and "not the 87" in text


# --------------------------------------------------------------------------------------------------------------------
# The official scope's other metrics

def test_a_global_rotation_gives_its_angle_as_mpjae_and_zero_pa_mpjae(split):
    rotation = Rotation.from_rotvec([0.0, 0.0, np.radians(5.0)])

    def turned_pose(track):
        pose = np.array(track.pose_cam, np.float64)
        pose[:, :3] = (rotation * Rotation.from_rotvec(pose[:, :3])).as_rotvec()
        return pose
    result = evaluate.score_predictions(split["tracks"], with_pose(
        split, turned_pose, lambda key, joints: joints @ rotation.as_matrix().T))
    official = result.summary["official"]
    assert official["mpjae_deg"] == pytest.approx(5.0, abs=1e-3)
    assert official["pa_mpjae_deg"] == pytest.approx(0.0, abs=1e-2)
    # By hand: after centring on the pelvis each joint is off by |(R - I)(x - pelvis)|; PCK counts the 12 major
    # joints within 50 mm, pooled over every official frame; AUC is the trapezoid area of the pooled curve.
    major = [joint_sets.SMPL_24.index(n) for n in metrics.PCK_JOINTS]
    errors = []
    for track, mask in zip(split["tracks"], official_masks(split)):
        gt = split["truth"][(track.sequence, track.person)]["joints24"][mask].astype(np.float64)
        centred = gt - gt[:, :1]
        errors.append(np.linalg.norm(centred @ rotation.as_matrix().T - centred, axis=-1)[:, major] * 1000)
    errors = np.concatenate(errors)
    assert 0.2 < (errors <= 50).mean() < 0.9  # some joints in, some out
    assert official["pck_pct"] == pytest.approx(100 * (errors <= 50).mean(), abs=1e-6)
    curve = [(errors <= t).mean() for t in range(200)]
    assert official["auc"] == pytest.approx(np.trapezoid(curve, np.arange(200) / 199), abs=1e-6)


def test_a_turned_knee_and_a_moved_wrist_give_the_hand_computed_official_metrics(split):
    knee, wrist = joint_sets.SMPL_24.index("left_knee"), joint_sets.SMPL_24.index("left_wrist")

    def twisted_knee(track):
        pose = np.array(track.pose_cam, np.float64)
        pose[:, 3 * knee:3 * knee + 3] = (Rotation.from_rotvec(pose[:, 3 * knee:3 * knee + 3])
                                          * Rotation.from_rotvec([np.radians(30.0), 0, 0])).as_rotvec()
        return pose

    def moved_wrist(key, joints):
        joints = joints.copy()
        joints[:, wrist, 2] += 0.0605  # 60.5 mm: outside 50 mm and every threshold up to 60, inside from 61
        return joints
    official = evaluate.score_predictions(split["tracks"], with_pose(split, twisted_knee, moved_wrist)).summary[
        "official"]
    assert official["mpjae_deg"] == pytest.approx(30.0 / 9, abs=1e-3)  # one of the 9 MPJAE joints is 30° off
    assert official["pck_pct"] == pytest.approx(100 * 11 / 12, abs=1e-6)
    # Curve: 11/12 for thresholds 0..60 mm, 1 from 61 to 199; trapezoids on x = t / 199.
    assert official["auc"] == pytest.approx((60 * 11 / 12 + (11 / 12 + 1) / 2 + 138) / 199, abs=1e-6)
    assert official["frames"] == sum(EXPECTED_OFFICIAL.values())
    assert np.isnan(evaluate.score_predictions(split["tracks"], oracle(split)).summary["paper"].get("pck_pct",
                                                                                                   np.nan))


# --------------------------------------------------------------------------------------------------------------------
# Poolings

OFFSETS_MM = {("seqA", 0): 10.0, ("seqA", 1): 40.0, ("seqB", 0): 70.0, ("seqC", 0): 30.0}


def pooled_by_hand(frames: dict, pooling: str) -> float:
    if pooling == "track":
        return np.mean(list(OFFSETS_MM.values()))
    if pooling == "frame":
        return sum(frames[k] * v for k, v in OFFSETS_MM.items()) / sum(frames.values())
    by_sequence = {}
    for (sequence, _), value in OFFSETS_MM.items():
        by_sequence.setdefault(sequence, []).append((frames[(sequence, _)], value))
    return np.mean([sum(n * v for n, v in pairs) / sum(n for n, _ in pairs) for pairs in by_sequence.values()])


@pytest.mark.parametrize("pooling", ["track", "sequence", "frame"])
def test_each_pooling_matches_the_hand_computation(split, pooling):
    predictions = oracle(split, root_relative_shift({k: v / 1000 for k, v in OFFSETS_MM.items()}))
    result = evaluate.score_predictions(split["tracks"], predictions, pooling=pooling)
    paper, official = result.summary["paper"], result.summary["official"]
    assert paper["mpjpe_mm"] == pytest.approx(pooled_by_hand(EXPECTED_PAPER, pooling), abs=1e-3)
    assert paper["pve_mm"] == pytest.approx(pooled_by_hand(EXPECTED_PAPER, pooling), abs=1e-3)
    # The official root is SMPL's pelvis, which does not move: 23 of 24 joints are off.
    assert official["mpjpe_mm"] == pytest.approx(pooled_by_hand(EXPECTED_OFFICIAL, pooling) * 23 / 24, abs=1e-3)
    assert result.meta["protocol_settings"]["paper"]["pooling"] == pooling
    row = next(line for line in evaluate.markdown_table([result]).splitlines() if "| paper (" in line)
    assert f"| {pooling} |" in row


def test_each_protocol_keeps_its_own_pooling_by_default(split):
    predictions = oracle(split, root_relative_shift({k: v / 1000 for k, v in OFFSETS_MM.items()}))
    summary = evaluate.score_predictions(split["tracks"], predictions).summary
    assert summary["paper"]["mpjpe_mm"] == pytest.approx(pooled_by_hand(EXPECTED_PAPER, "track"), abs=1e-3)
    assert summary["official"]["pve_mm"] == pytest.approx(pooled_by_hand(EXPECTED_OFFICIAL, "frame"), abs=1e-3)


# --------------------------------------------------------------------------------------------------------------------
# A user's joint regressor

@pytest.fixture(scope="module")
def smpl_sized_body(tmp_path_factory):
    """The open neutral body padded to SMPL's 6890 vertices (copies of vertex 0 that no joint uses), written as the
    three gendered files of a model directory."""
    body = smpl.load_body_model(None, "neutral")
    extra = evaluate.SMPL_NUM_VERTICES - body.num_vertices
    index = np.concatenate([np.arange(body.num_vertices), np.zeros(extra, np.int64)])
    parents = np.where(body.parents < 0, smpl.KINTREE_ROOT_PARENT, body.parents)
    arrays = {"v_template": body.v_template[index], "shapedirs": body.shapedirs[index],
              "posedirs": body.posedirs[index], "J_regressor": np.pad(body.J_regressor, ((0, 0), (0, extra))),
              "weights": body.weights[index], "kintree_table": np.stack([parents, np.arange(24)]), "f": body.faces,
              "J_regressor_lsp14": np.pad(body.lsp_regressor, ((0, 0), (0, extra))),
              "part_ids": body.part_ids[index]}
    directory = tmp_path_factory.mktemp("smpl_sized")
    for name in ("SMPL_NEUTRAL.npz", "SMPL_MALE.npz", "SMPL_FEMALE.npz"):
        np.savez(directory / name, **arrays)
    return directory


def test_a_hand_built_h36m_regressor_moves_the_paper_joints_as_predicted(split, smpl_sized_body, tmp_path):
    # H36M row k = the mean of vertices 100 k + 7 and 100 k + 50; the prediction moves vertex 100 k + 7 by
    # 10 (k + 1) mm along z, so regressed H36M joint k moves by 5 (k + 1) mm, and LSP joint j by that of
    # H36M_TO_LSP14[j].
    rows = np.zeros((17, evaluate.SMPL_NUM_VERTICES))
    offsets = np.zeros((evaluate.SMPL_NUM_VERTICES, 3))
    for k in range(17):
        rows[k, [100 * k + 7, 100 * k + 50]] = 0.5
        offsets[100 * k + 7, 2] = 0.010 * (k + 1)
    np.save(tmp_path / "J_regressor_h36m.npy", rows)
    regressor = evaluate.load_joint_regressor(tmp_path / "J_regressor_h36m.npy")
    moved = np.array([0.005 * (evaluate.H36M_TO_LSP14[j] + 1) for j in range(14)])
    hips = [joint_sets.LSP_14.index("left_hip"), joint_sets.LSP_14.index("right_hip")]
    expected_mm = np.abs(moved - moved[hips].mean()).mean() * 1000

    predictions = []
    for index, prediction in oracle(split):
        track = split["tracks"][index]
        truth = evaluate.GroundTruth.of(track, smpl.load_body_model(smpl_sized_body, track.gender))
        predictions.append((index, evaluate.TrackPrediction(**{
            **prediction.__dict__, "vertices": truth.vertices + offsets, "joints3d": truth.joints14,
            "smpl_joints3d": truth.joints24})))
    with_regressor = evaluate.score_predictions(split["tracks"], predictions, smpl_sized_body,
                                                joint_regressor=regressor)
    assert with_regressor.summary["paper"]["mpjpe_mm"] == pytest.approx(expected_mm, abs=1e-3)
    assert with_regressor.summary["official"]["mpjpe_mm"] == pytest.approx(0.0, abs=1e-3)  # SMPL joints as given
    assert "J_regressor_h36m.npy" in with_regressor.meta["protocol_settings"]["paper"]["joints_from"]
    without = evaluate.score_predictions(split["tracks"], predictions, smpl_sized_body)
    assert without.summary["paper"]["mpjpe_mm"] == pytest.approx(0.0, abs=1e-3)  # the predictor's own joints


def test_a_joint_regressor_is_refused_off_smpls_mesh_or_joint_sets(split, tmp_path):
    np.save(tmp_path / "extra.npy", np.zeros((9, evaluate.SMPL_NUM_VERTICES)))
    with pytest.raises(ValueError, match="9 joints"):
        evaluate.load_joint_regressor(tmp_path / "extra.npy")
    np.save(tmp_path / "small.npy", np.zeros((17, 5000)))
    with pytest.raises(ValueError, match="6890"):
        evaluate.load_joint_regressor(tmp_path / "small.npy")
    with pytest.raises(ValueError, match="6890-vertex mesh, but the ground-truth body model .* has 6338 vertices"):
        evaluate.check_regressor_meshes(None)
    regressor = evaluate.JointRegressor(np.zeros((14, evaluate.SMPL_NUM_VERTICES)), "hand-built")
    with pytest.raises(ValueError, match="the predicted body has 5646 vertices"):
        evaluate.score_predictions(split["tracks"], oracle(split), joint_regressor=regressor)
