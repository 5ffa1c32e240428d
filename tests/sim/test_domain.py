"""The evaluation set's domain knobs: the in-domain set is rendered like the training clips, the in-domain and
shifted sets differ exactly in their knobs, a knob at 0 removes its effect, and each knob changes what it claims and
nothing else. References are float64 numpy (tests/sim/references.py), the body model, and the real 3DPW decoder."""
import functools

import cv2
import numpy as np
import pytest

from mhr_tf.body import joints as joint_sets
from mhr_tf.data import threedpw
from mhr_tf.geometry import SURREAL_IMAGE_HW, SURREAL_INTRINSICS
from mhr_tf import render
from mhr_tf.sim import cameras, make, threedpw_set
from mhr_tf.sim.domain import IN_DOMAIN, KNOBS, SHIFTED, Domain, domain_from_record
from tests.sim import references

SEED = 5
FRAMES = 3
HIDDEN_BEHIND_M = 0.20  # App. B: a keypoint at least 20 cm behind the rendered depth is hidden


@functools.lru_cache(maxsize=None)
def _sequence(domain: Domain, index: int = 0, num_people: int | None = None):
    return threedpw_set.make_threedpw_sequence(SEED, index, FRAMES, num_people, domain=domain)


def _camera_centres(cam_poses):
    """[N, 3] camera centres in the world: C = -R^T t."""
    return -np.einsum("nji,nj->ni", cam_poses[:, :3, :3], cam_poses[:, :3, 3])


def _outputs(seq) -> dict:
    """What a sequence hands to its files and to the evaluation, by the knob family that may change it."""
    return {
        "images": seq.images,
        "poses2d": [p.detections.keypoints for p in seq.people],
        "cameras": (seq.cam_poses_true, seq.cam_intrinsics),
        "stored_cameras": (seq.cam_poses, seq.campose_valid),
        "people": [(p.betas, p.pose_world, p.trans_world) for p in seq.people],
        "occluders": seq.occluder_mask,
        "jpeg": seq.jpeg_quality,
    }


def _same(a, b) -> bool:
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and np.array_equal(a, b)


def _changed(base, varied) -> set[str]:
    one, other = _outputs(base), _outputs(varied)
    return {name for name in one if not _same(one[name], other[name])}


def _recoloured_people_only(base, varied):
    """Only the people's pixels changed: every pixel off them is unchanged."""
    off_people = base.depth >= render.BACKGROUND_DEPTH
    assert np.array_equal(base.images[off_people], varied.images[off_people])
    assert not np.array_equal(base.images[~off_people], varied.images[~off_people])


def _dressed_in_shifted_styles(base, varied):
    _recoloured_people_only(base, varied)
    assert [p.clothing_style for p in base.people] == ["train"]
    assert [p.clothing_style for p in varied.people] == ["shifted"]


def _filmed_by_a_phone(base, varied):
    assert (base.framing, varied.framing) == ("surreal", "phone")
    assert varied.images.shape[1:3] == cameras.PHONE_FRAMING.image_hw


def _floor_height(seq):
    """The lowest point of any person's body over the sequence (the floor they stand on), from the body model."""
    return min(references.forward(references.body(p.gender), p.betas, p.pose_world, p.trans_world)[0][..., 1].min()
               for p in seq.people)


def _held_by_an_operator(base, varied):
    """SURREAL's camera stands at the pelvis's height; an operator holds the phone at chest height."""
    assert not base.hand_held and varied.hand_held
    assert np.ptp(_camera_centres(base.cam_poses_true), axis=0).max() < 1e-9
    for seq, (low, high) in ((base, (0.6, 1.2)), (varied, cameras.CAMERA_HEIGHT_M)):
        height = _camera_centres(seq.cam_poses_true)[:, 1] - _floor_height(seq)
        assert np.all((height >= low) & (height <= high)), height


def _second_person(base, varied):
    assert (len(base.people), len(varied.people)) == (1, 2)


def _something_passes_in_front(base, varied):
    assert not base.occluder_mask.any() and varied.occluder_mask.any()
    outside = ~varied.occluder_mask
    assert np.array_equal(base.images[outside], varied.images[outside])


def _frames_changed(base, varied):
    assert not np.array_equal(base.images, varied.images)  # what changed is checked by the tests below


def _lossier_jpeg(base, varied):
    assert base.jpeg_quality == 95
    assert threedpw_set.JPEG_QUALITY[0] <= varied.jpeg_quality <= threedpw_set.JPEG_QUALITY[1]


def _detector_errs_on_what_it_sees(base, varied):
    """The detector sees the same limb keypoints (only face points need a clearer line of sight), and reports them
    with errors and confidences below 1."""
    limbs = ~np.isin(joint_sets.COCO_18, ("nose", "right_eye", "left_eye", "right_ear", "left_ear"))
    assert np.array_equal(base.people[0].detections.visible[:, limbs], varied.people[0].detections.visible[:, limbs])
    assert not np.all(np.isin(varied.people[0].detections.keypoints[..., 2], (0.0, 1.0)))


def _some_camera_poses_off(base, varied):
    assert base.campose_valid.all() and not varied.campose_valid.all()
    np.testing.assert_array_equal(base.cam_poses_true, varied.cam_poses_true)


# knob -> (outputs it must change at 1, outputs it may also change, its specific claim)
CLAIMS = {
    "clothing": ({"images"}, set(), _dressed_in_shifted_styles),
    "lighting": ({"images"}, set(), _recoloured_people_only),
    "framing": ({"images", "poses2d", "cameras", "stored_cameras", "occluders"}, set(), _filmed_by_a_phone),
    "hand_held": ({"images", "poses2d", "cameras", "stored_cameras"}, set(), _held_by_an_operator),
    "people": ({"images", "poses2d", "cameras", "stored_cameras", "people"}, set(), _second_person),
    "occluders": ({"images", "occluders"}, {"poses2d"}, _something_passes_in_front),
    "colour_cast": ({"images"}, set(), _frames_changed),
    "blur": ({"images"}, set(), _frames_changed),
    "noise": ({"images"}, set(), _frames_changed),
    "compression": ({"jpeg"}, set(), _lossier_jpeg),
    "detector_noise": ({"poses2d"}, set(), _detector_errs_on_what_it_sees),
    "campose_errors": ({"stored_cameras"}, set(), _some_camera_poses_off),
}


def test_every_knob_has_a_claim():
    assert set(CLAIMS) | {"camera_shake"} == set(KNOBS)  # camera_shake needs a hand-held camera: its own test


@pytest.mark.parametrize("knob", sorted(CLAIMS))
def test_each_knob_at_one_changes_what_it_claims_and_nothing_else(knob):
    must, may, claim = CLAIMS[knob]
    base, varied = _sequence(IN_DOMAIN), _sequence(IN_DOMAIN.replace(**{knob: 1.0}))
    changed = _changed(base, varied)
    assert must <= changed <= must | may, (knob, changed)
    claim(base, varied)


def test_camera_shake_bobs_and_jitters_a_hand_held_camera_and_nothing_else():
    steady = _sequence(IN_DOMAIN.replace(hand_held=1.0))
    shaky = _sequence(IN_DOMAIN.replace(hand_held=1.0, camera_shake=1.0))
    assert _changed(steady, shaky) == {"images", "poses2d", "cameras", "stored_cameras"}
    # A steady operator holds the camera at one height; a shaking one bobs with their steps.
    assert np.ptp(_camera_centres(steady.cam_poses_true)[:, 1]) < 1e-9
    assert np.ptp(_camera_centres(shaky.cam_poses_true)[:, 1]) > 1e-4
    # Without a hand-held camera there is nothing to shake.
    assert not _changed(_sequence(IN_DOMAIN), _sequence(IN_DOMAIN.replace(camera_shake=1.0)))


def test_in_domain_sequence_is_rendered_like_the_training_clips():
    seq = _sequence(IN_DOMAIN)
    assert len(seq.people) == 1 and seq.people[0].clothing_style == "train"
    assert seq.framing == "surreal" and not seq.hand_held
    assert seq.images.shape[1:3] == SURREAL_IMAGE_HW
    k = SURREAL_INTRINSICS
    np.testing.assert_array_equal(seq.cam_intrinsics, [[k.fx, 0, k.cx], [0, k.fy, k.cy], [0, 0, 1]])
    # SURREAL's camera stands still, level at the centre frame (image rows parallel to the floor).
    assert np.ptp(_camera_centres(seq.cam_poses_true), axis=0).max() < 1e-9
    assert abs(seq.cam_poses_true[FRAMES // 2, 0, 1]) < 1e-12
    distance = np.linalg.norm(_camera_centres(seq.cam_poses_true)[0] - seq.people[0].joints_world[:, 0].mean(0))
    assert 4.0 < distance < 11.5
    # Nothing passes in front, nothing degrades the frames: off the person they are the background exactly.
    assert not seq.occluder_mask.any() and seq.campose_valid.all() and seq.jpeg_quality == 95
    off_person = seq.depth >= render.BACKGROUND_DEPTH
    np.testing.assert_array_equal(seq.images[off_person], seq.background[off_person])


def test_in_domain_camera_turns_so_the_person_follows_the_background():
    """The training pipeline moves the person with the background's content at the image centre, relative to the
    centre frame; here the camera turns so that whatever it showed at the principal point of the centre frame is
    where the background's content went."""
    moving = [s for s in (_sequence(IN_DOMAIN, i) for i in range(4)) if np.abs(s.background_shift_px).max() > 1.0]
    assert moving, "no moving background among the first sequences"
    for seq in moving:
        poses = seq.cam_poses_true
        centre = FRAMES // 2
        ahead = _camera_centres(poses)[centre] + 10.0 * poses[centre, 2, :3]  # 10 m down the centre frame's axis
        in_camera = np.einsum("nij,j->ni", poses[:, :3, :3], ahead) + poses[:, :3, 3]
        k = seq.cam_intrinsics
        uv = references.project(in_camera, k[0, 0], k[1, 1], k[0, 2], k[1, 2])
        np.testing.assert_allclose(uv - [k[0, 2], k[1, 2]], seq.background_shift_px, atol=1e-6)


def _training_visibility(keypoints_cam, depth, occluder, k):
    """App. B's rules in float64: the rounded pixel inside the frame, not under a passing object, and the point less
    than 20 cm behind the rendered surface along its ray."""
    uv = references.project(keypoints_cam, k[0, 0], k[1, 1], k[0, 2], k[1, 2])
    col, row = np.rint(uv[..., 0]).astype(int), np.rint(uv[..., 1]).astype(int)
    height, width = depth.shape[1:]
    inside = (col >= 0) & (col < width) & (row >= 0) & (row < height)
    frame = np.broadcast_to(np.arange(len(depth))[:, None], col.shape)
    c, r = np.clip(col, 0, width - 1), np.clip(row, 0, height - 1)
    ray = np.sqrt(((c - k[0, 2]) / k[0, 0]) ** 2 + ((r - k[1, 2]) / k[1, 1]) ** 2 + 1.0)
    surface = depth[frame, r, c].astype(np.float64) * ray
    behind = np.linalg.norm(keypoints_cam, axis=-1) >= surface + HIDDEN_BEHIND_M
    return uv, inside & ~occluder[frame, r, c] & ~behind


def test_detector_noise_zero_gives_exact_keypoints_at_confidence_one_where_training_would_show_them(tmp_path):
    """Everything else shifted (two people, a passing object): the written `poses2d` of the limb keypoints equal the
    projections of the body's own evaluation joints, at confidence 1, exactly where App. B's rules show them."""
    domain = SHIFTED.replace(detector_noise=0.0, occluders=1.0)
    path = threedpw_set.write_threedpw_sequence(tmp_path, SEED, 0, FRAMES, split="test", num_people=2, domain=domain)
    seq = threedpw_set.make_threedpw_sequence(SEED, 0, FRAMES, num_people=2, domain=domain)
    coco_from_lsp = joint_sets.indices(joint_sets.LSP_14, joint_sets.COCO_18)
    shared = coco_from_lsp >= 0  # the 13 COCO keypoints that are evaluation joints
    counts = np.zeros(2, int)
    for track, person in zip(threedpw.load_sequence(path), seq.people):
        valid = track.campose_valid  # the stored camera is the one that rendered these frames
        model = references.body(track.gender)
        vertices, _ = references.forward(model, track.betas, track.pose_cam, track.trans_cam)
        lsp = np.einsum("kv,tvc->tkc", np.asarray(model.lsp_regressor, np.float64), vertices)
        joints = lsp[:, coco_from_lsp[shared]]  # [N, 13, 3], camera frame
        uv, visible = _training_visibility(joints, seq.depth, seq.occluder_mask, track.cam_intrinsics)
        kp = track.keypoints2d[:, shared].astype(np.float64)
        shown, hidden = visible & valid[:, None], ~visible & valid[:, None]
        np.testing.assert_allclose(kp[shown][:, :2], uv[shown], atol=1e-3)
        assert np.all(kp[shown][:, 2] == 1.0)
        assert np.all(kp[hidden] == 0.0)
        counts += shown.sum(), hidden.sum()
    assert counts[0] > 20 and counts[1] > 0  # both cases happen


def test_degradation_knobs_at_zero_leave_the_rendered_frames_untouched():
    """Everything else shifted: with no colour cast, blur or noise, every pixel off the people and the passing objects
    is the moving background exactly; with them, it is not."""
    for domain, untouched in ((SHIFTED.replace(colour_cast=0.0, blur=0.0, noise=0.0), True), (SHIFTED, False)):
        seq = _sequence(domain)
        scenery = (seq.depth >= render.BACKGROUND_DEPTH) & ~seq.occluder_mask
        assert np.array_equal(seq.images[scenery], seq.background[scenery]) == untouched


def test_sensor_noise_is_zero_mean_grain_of_the_drawn_strength():
    clean, noisy = _sequence(IN_DOMAIN), _sequence(IN_DOMAIN.replace(noise=1.0))
    grain = noisy.images.astype(float) - clean.images.astype(float)
    unclipped = (clean.images > 30) & (clean.images < 225)
    assert abs(grain[unclipped].mean()) < 0.3
    assert 0.9 * 2.0 < grain[unclipped].std() < 1.1 * 7.0  # degrade.NOISE_STD at strength 1


def test_blur_removes_fine_detail_and_keeps_the_brightness():
    sharp, blurred = _sequence(IN_DOMAIN), _sequence(IN_DOMAIN.replace(blur=1.0))

    def detail(images):
        return np.mean([cv2.Laplacian(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var() for f in images])

    assert detail(blurred.images) < 0.8 * detail(sharp.images)
    assert abs(blurred.images.mean() - sharp.images.mean()) < 1.0


def test_colour_cast_is_one_tone_curve_per_channel():
    plain, cast = _sequence(IN_DOMAIN), _sequence(IN_DOMAIN.replace(colour_cast=1.0))
    for channel in range(3):
        source = plain.images[..., channel].ravel()
        graded = cast.images[..., channel].ravel()
        curve = np.full(256, -1)
        curve[source] = graded  # a tone curve maps each input level to one output level
        assert np.array_equal(curve[source], graded)
    assert not np.array_equal(plain.images, cast.images)


def test_same_seed_and_domain_give_the_same_sequence_and_records_say_the_domain():
    again = threedpw_set.make_threedpw_sequence(SEED, 0, FRAMES, domain=IN_DOMAIN)
    assert np.array_equal(again.images, _sequence(IN_DOMAIN).images)
    assert domain_from_record({"domain": SHIFTED.knobs()}) == SHIFTED and domain_from_record({}) is None


def test_records_of_in_domain_and_shifted_sets_differ_only_in_their_knobs(tmp_path):
    records = {}
    for name, domain in (("in", IN_DOMAIN), ("shifted", SHIFTED)):
        paths = make.write_set("threedpw", tmp_path / name, 1, 2, SEED, split="test", progress=False, domain=domain)
        assert [p.stem for p in paths] == ["simulated_00001"]
        records[name] = make.read_set_record(tmp_path / name)
    inside, shifted = records["in"], records["shifted"]
    assert inside.keys() == shifted.keys()
    assert {key for key in inside if inside[key] != shifted[key]} == {"domain"}
    differing = {knob for knob in KNOBS if inside["domain"][knob] != shifted["domain"][knob]}
    assert differing == {knob for knob in KNOBS if getattr(IN_DOMAIN, knob) != getattr(SHIFTED, knob)}
    assert domain_from_record(inside) == IN_DOMAIN and domain_from_record(shifted) == SHIFTED


def test_write_set_defaults_to_the_shifted_domain(tmp_path):
    make.write_set("threedpw", tmp_path, 1, 2, SEED, split="test", progress=False)
    assert domain_from_record(make.read_set_record(tmp_path)) == SHIFTED
    with pytest.raises(ValueError, match="domain"):
        make.write_set("surreal", tmp_path / "s", 1, 2, SEED, progress=False, domain=IN_DOMAIN)


def test_knobs_outside_zero_to_one_and_unknown_knobs_are_errors():
    with pytest.raises(ValueError, match="blur"):
        Domain(blur=1.5)
    with pytest.raises(ValueError, match="sharpness"):
        IN_DOMAIN.replace(sharpness=1.0)
