"""The simulated 2D detector: which keypoints it can see, where the face keypoints are, and what it gets wrong.
References are hand-built depth maps and the body model's rest template."""
import numpy as np
import pytest

from mhr_tf import geometry
from mhr_tf.body import joints as joint_sets
from mhr_tf.sim import detections
from tests.sim import references


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
    intrinsics = geometry.Intrinsics(fx, fx, w / 2, h / 2)
    with pytest.MonkeyPatch.context() as patch:
        for name in ("SWAP_PROBABILITY", "OUTLIER_PROBABILITY", "DROP_PROBABILITY"):
            patch.setattr(detections, name, 0.0)
        patch.setattr(detections, "MIN_DETECTED", 0)
        out = detections.simulate_detections(points, intrinsics, depth, occluder, np.random.default_rng(1))
    face = np.isin(joint_sets.COCO_18, ("nose", "right_eye", "left_eye", "right_ear", "left_ear"))
    expected = (u >= 40) & (v < 45) & ~face
    np.testing.assert_array_equal(out.visible, np.broadcast_to(expected, (4, 18)))
    assert np.all(out.error[:, expected] == detections.DETECTED)
    assert set(np.unique(out.error[:, ~expected])) <= {detections.MISSING, detections.GUESSED}
    assert (out.error[:, ~expected] == detections.GUESSED).any()  # some hidden keypoints are guessed...
    guessed = out.error == detections.GUESSED
    assert np.all(out.keypoints[..., 2][guessed] <= detections.GUESS_CONFIDENCE[1])  # ...with a low confidence


def test_detector_at_noise_zero_reports_exact_points_at_confidence_one_where_training_rules_show_them():
    """Training's rules only (App. B): face points 0.1 m behind a surface count as visible, as joints do; everything
    visible is the exact projection at confidence 1, everything else all zero."""
    h, w, fx = 60, 80, 100.0
    u = np.tile(np.linspace(5, 75, 6), 3)
    v = np.repeat([10.0, 30.0, 50.0], 6)
    z = np.full(18, 5.0)
    points = np.stack([(u - w / 2) * z / fx, (v - h / 2) * z / fx, z], axis=-1)[None].repeat(3, axis=0)
    points[:, 0, 0] = -10.0  # the nose far outside the image
    depth = np.full((3, h, w), 4.9, np.float32)  # a surface 0.1 m in front of the right half...
    depth[:, :, :40] = 4.5  # ...and 0.5 m in front of the left half
    occluder = np.zeros((3, h, w), bool)
    occluder[:, 45:] = True
    out = detections.simulate_detections(points, geometry.Intrinsics(fx, fx, w / 2, h / 2), depth, occluder,
                                         np.random.default_rng(0), noise=0.0)
    expected = (u >= 40) & (v < 45)
    expected[0] = False
    np.testing.assert_array_equal(out.visible, np.broadcast_to(expected, (3, 18)))
    uv = references.project(points, fx, fx, w / 2, h / 2)
    np.testing.assert_allclose(out.keypoints[:, expected, :2], uv[:, expected], atol=1e-4)
    assert np.all(out.keypoints[:, expected, 2] == 1.0) and np.all(out.keypoints[:, ~expected] == 0.0)


def test_face_keypoints_sit_where_a_face_is():
    model = references.body("female")
    ids = detections.face_keypoint_vertices(model)
    p = {name: np.asarray(model.v_template[i], np.float64) for name, i in ids.items()}
    head = model.v_template[model.part_ids == joint_sets.SMPL_PARTS.index("head")]
    # Rest pose: the body faces +z, its left is +x.
    assert p["nose"][2] >= head[:, 2].max() - 1e-6
    assert p["left_eye"][0] > p["nose"][0] > p["right_eye"][0]
    assert p["left_ear"][0] > p["left_eye"][0] and p["right_ear"][0] < p["right_eye"][0]
    assert p["nose"][2] > p["left_eye"][2] > p["left_ear"][2]
    assert abs(p["left_ear"][0] + p["right_ear"][0]) < 0.02  # symmetric
