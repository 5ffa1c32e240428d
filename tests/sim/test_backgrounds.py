"""Moving backgrounds: the camera motion they claim is the motion in their pixels (checked with OpenCV's phase
correlation and a registration residual), determinism, and the Kinetics-style folder they write."""
import json

import cv2
import numpy as np
import pytest

from mhr_tf.data import videos
from mhr_tf.sim import backgrounds


def _grey(frame):
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float64)


@pytest.mark.parametrize("source", ["chelsea", "brick", "tiles"])
def test_phase_correlation_of_a_pure_pan_recovers_the_known_shift(source):
    video = backgrounds.make_background_video(6, np.random.default_rng(2), hw=(240, 426), kind="pan",
                                              source=source, num_objects=0)
    shift = video.camera.image_shift_px()  # [T, 2] content displacement from frame t-1 to t, (x, y)
    assert np.all(np.linalg.norm(shift[1:], axis=1) >= backgrounds.PAN_SPEED_PX[0] * 0.7 - 1e-9)
    window = cv2.createHanningWindow((426, 240), cv2.CV_64F)
    for t in range(1, 6):
        (dx, dy), _ = cv2.phaseCorrelate(_grey(video.frames[t - 1]), _grey(video.frames[t]), window)
        np.testing.assert_allclose([dx, dy], shift[t], atol=0.5)


@pytest.mark.parametrize("kind", ["zoom", "pan_zoom", "shake"])
def test_composed_frame_to_frame_affines_register_frames_across_the_clip(kind):
    video = backgrounds.make_background_video(12, np.random.default_rng(4), hw=(96, 128), kind=kind,
                                              source="astronaut", num_objects=0)
    composed, total = [], np.eye(3)
    for affine in video.camera.frame_to_frame():  # pixel of frame t -> pixel of frame t+1, composed from 0
        total = np.vstack([affine, [0, 0, 1]]) @ total
        composed.append(total[:2])
    corners = np.array([[0, 0, 1], [127, 0, 1], [0, 95, 1], [127, 95, 1]], float)
    motion = [np.abs(corners @ a.T - corners[:, :2]).max() for a in composed]
    t = int(np.argmax(motion)) + 1
    assert motion[t - 1] > 1.5  # the camera did move
    # Pull frame t back onto frame 0's grid: pixel p of frame 0 shows what frame t shows at A p.
    registered = cv2.warpAffine(video.frames[t], composed[t - 1], (128, 96),
                                flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    interior = (slice(12, -12), slice(12, -12))
    residual = np.abs(registered[interior].astype(float) - video.frames[0][interior]).mean()
    unregistered = np.abs(video.frames[t][interior].astype(float) - video.frames[0][interior]).mean()
    assert residual < 4.0 and unregistered > 2.5 * residual, (residual, unregistered)


def test_static_camera_changes_pixels_only_where_objects_move():
    video = backgrounds.make_background_video(8, np.random.default_rng(9), hw=(96, 128), kind="static",
                                              source="coffee", num_objects=2)
    np.testing.assert_array_equal(video.camera.image_shift_px(), 0.0)
    changed = np.any(video.frames[0] != video.frames[-1], axis=-1)
    assert changed.sum() > 50
    v, u = np.nonzero(changed)
    near = np.zeros(len(u), dtype=bool)
    for t in (0, -1):
        for (cx, cy), r in zip(video.objects.centers_px[t], video.objects.radii_px[t]):
            near |= np.hypot(u - cx, v - cy) < 2.0 * r + 2  # outlines wobble up to +100% of the mean radius
    assert near.all()


def test_same_seed_same_video_and_different_seed_different_video():
    a = backgrounds.make_background_video(4, np.random.default_rng(5), hw=(64, 96))
    b = backgrounds.make_background_video(4, np.random.default_rng(5), hw=(64, 96))
    c = backgrounds.make_background_video(4, np.random.default_rng(6), hw=(64, 96))
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.camera.offset_px, b.camera.offset_px)
    assert a.frames.shape != c.frames.shape or np.abs(a.frames.astype(int) - c.frames).mean() > 5


def test_written_set_is_a_kinetics_folder_with_camera_ground_truth(tmp_path):
    records = backgrounds.write_background_set(tmp_path / "bg", num_videos=3, num_frames=4, seed=7,
                                               hw_choices=((64, 96), (48, 80)))
    entries = videos.list_videos(tmp_path / "bg")
    assert [(e.label, e.video_id) for e in entries] == sorted((r.label, r.video_id) for r in records)
    assert [r.label for r in records] == ["sim_pan", "sim_zoom", "sim_shake"]
    assert all(r.video_id.startswith("simulated_7_") for r in records)
    for record in records:
        assert record.path == tmp_path / "bg" / record.label / f"{record.video_id}.mp4"
        frames = videos.read_video(record.path)
        assert frames.shape[0] == 4 and frames.shape[1:3] in ((64, 96), (48, 80))
        sidecar = json.loads(record.json_path.read_text())
        assert sidecar["simulated"] is True and sidecar["num_frames"] == 4
        camera = backgrounds.read_camera_motion(record.json_path)
        np.testing.assert_allclose(camera.offset_px, record.camera.offset_px)
        np.testing.assert_allclose(sidecar["camera"]["image_shift_px"], record.camera.image_shift_px())
    # Deterministic given the seed: a second run writes the same videos and ground truth.
    again = backgrounds.write_background_set(tmp_path / "again", num_videos=3, num_frames=4, seed=7,
                                             hw_choices=((64, 96), (48, 80)))
    for first, second in zip(records, again):
        assert first.json_path.read_text() == second.json_path.read_text()
        np.testing.assert_array_equal(videos.read_video(first.path), videos.read_video(second.path))


def test_default_video_sizes_leave_the_decoder_cropping_to_do():
    for height, width in backgrounds.BACKGROUND_HW_CHOICES:
        assert height >= 240 and width >= 320 and (height, width) != (240, 320)
        assert height % 2 == 0 and width % 2 == 0  # the video codecs need even sizes


def test_bad_sidecar_raises_naming_file_and_keys(tmp_path):
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"camera": {"scale": [1.0]}}))
    with pytest.raises(ValueError, match=r"x\.json.*offset_px"):
        backgrounds.read_camera_motion(path)
