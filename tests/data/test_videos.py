"""Background-video decoder: write -> read round trips, a Kinetics-style folder, App. A's crop/resize geometry on a
hand-built video, and the named errors for truncated, too-short and unreadable files."""
import numpy as np
import pytest

from mhr_tf.data import videos


def _smooth_frames(num_frames, hw):
    """Frames a lossy codec keeps well: smooth gradients drifting over time."""
    v, u = np.mgrid[0:hw[0], 0:hw[1]].astype(float)
    frames = [np.stack([128 + 100 * np.sin((u + 3 * t) / 17), 128 + 100 * np.cos((v - 2 * t) / 13),
                        128 + 60 * np.sin((u + v) / 23)], -1) for t in range(num_frames)]
    return np.clip(np.rint(frames), 0, 255).astype(np.uint8)


def _indexed_frames(num_frames, hw, square):
    """Frame t: uniform grey level 10 + 20 t, with a white square (top, left, size)."""
    frames = np.empty((num_frames, *hw, 3), np.uint8)
    top, left, size = square
    for t in range(num_frames):
        frames[t] = 10 + 20 * t
        frames[t, top:top + size, left:left + size] = 255
    return frames


def test_mp4_round_trip_keeps_frame_count_and_content_within_codec_loss(tmp_path):
    frames = _smooth_frames(12, (64, 96))
    path = videos.write_video(tmp_path / "clip.mp4", frames)
    back = videos.read_video(path)
    assert back.shape == frames.shape and back.dtype == np.uint8
    assert videos.count_frames(path) == 12 and videos.count_frames(path, exact=True) == 12
    assert np.abs(back.astype(int) - frames).mean() < 4.0
    # Colour order survives (RGB in, RGB out): a red frame stays red.
    red = np.zeros((2, 32, 32, 3), np.uint8)
    red[..., 0] = 220
    back_red = videos.read_video(videos.write_video(tmp_path / "red.mp4", red))
    assert back_red[..., 0].mean() > 180 and back_red[..., 2].mean() < 40


@pytest.mark.parametrize("ext", [".avi", ".mkv"])
def test_ffv1_round_trip_is_lossless(tmp_path, ext):
    frames = np.random.default_rng(0).integers(0, 256, (5, 30, 40, 3), dtype=np.uint8)
    back = videos.read_video(videos.write_video(tmp_path / f"clip{ext}", frames))
    np.testing.assert_array_equal(back, frames)


def test_read_video_returns_exactly_the_frames_asked_for(tmp_path):
    frames = _indexed_frames(10, (24, 32), (4, 4, 8))
    path = videos.write_video(tmp_path / "indexed.avi", frames)
    np.testing.assert_array_equal(videos.read_video(path, start=3, num_frames=4), frames[3:7])
    np.testing.assert_array_equal(videos.read_video(path, start=7), frames[7:])


def test_list_videos_walks_label_folders_and_skips_other_files(tmp_path):
    tiny = _smooth_frames(2, (16, 16))
    videos.write_video(tmp_path / "abseiling" / "x1_000010_000020.mp4", tiny)
    videos.write_video(tmp_path / "sim_pan" / "simulated_0_000001.avi", tiny)
    (tmp_path / "sim_pan" / "simulated_0_000001.json").write_text("{}")
    (tmp_path / "README.txt").write_text("not a video")
    entries = videos.list_videos(tmp_path)
    assert [(e.label, e.video_id, e.path.suffix) for e in entries] == [
        ("abseiling", "x1_000010_000020", ".mp4"), ("sim_pan", "simulated_0_000001", ".avi")]
    with pytest.raises(FileNotFoundError, match="no videos"):
        videos.list_videos(tmp_path / "sim_pan")


@pytest.mark.parametrize("source_hw, resized_hw", [((256, 340), (241, 320)), ((240, 426), (240, 426)),
                                                   ((120, 160), (240, 320)), ((300, 300), (320, 320))])
def test_clip_is_resized_so_one_side_matches_then_cropped_where_it_says(tmp_path, source_hw, resized_hw):
    # A square at the source's centre: every crop these sizes allow keeps it whole.
    size = min(source_hw) // 6
    square = (source_hw[0] // 2 - size // 2, source_hw[1] // 2 - size // 2, size)
    frames = _indexed_frames(9, source_hw, square)
    path = videos.write_video(tmp_path / "hand_built.avi", frames)  # FFV1: lossless, so levels are exact
    clip, crop = videos.sample_background_clip(path, 4, np.random.default_rng(3))
    assert clip.shape == (4, 240, 320, 3)
    assert crop.source_hw == source_hw and crop.resized_hw == resized_hw  # App. A: one side exactly matches
    assert 0 <= crop.top <= resized_hw[0] - 240 and 0 <= crop.left <= resized_hw[1] - 320
    # The clip holds the video's frames start..start+3: the background grey level encodes the index.
    np.testing.assert_array_equal(clip[:, -1, -1, 0], 10 + 20 * np.arange(crop.start, crop.start + 4))
    # The square lands where the parameters put it. With pixel centres at integers, the source square spans
    # [top - 0.5, top + size - 0.5]; resizing by s maps x to (x + 0.5) * s - 0.5; cropping subtracts the offset.
    top, left, _ = square
    sy, sx = resized_hw[0] / source_hw[0], resized_hw[1] / source_hw[1]
    expected = np.array([(top + size / 2) * sy - 0.5 - crop.top, (left + size / 2) * sx - 0.5 - crop.left])
    level = 10 + 20 * crop.start
    rows, cols = np.nonzero(clip[0, ..., 0] > (level + 255) / 2)
    assert rows.size > 0.8 * (size * sy) * (size * sx)
    np.testing.assert_allclose([rows.mean(), cols.mean()], expected, atol=0.6)


def test_clip_sampling_is_deterministic_given_the_generator(tmp_path):
    path = videos.write_video(tmp_path / "v.avi", _indexed_frames(12, (128, 176), (10, 10, 30)))
    a = videos.sample_background_clip(path, 5, np.random.default_rng(11))
    b = videos.sample_background_clip(path, 5, np.random.default_rng(11))
    assert a[1] == b[1]
    np.testing.assert_array_equal(a[0], b[0])
    starts = {videos.sample_background_clip(path, 5, np.random.default_rng(s))[1].start for s in range(60)}
    assert starts == set(range(8))  # every start 0..12-5 is reachable


def test_truncated_mp4_is_unreadable_and_the_error_names_the_file(tmp_path):
    path = videos.write_video(tmp_path / "cut.mp4", _smooth_frames(10, (32, 32)))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # OpenCV's mp4 keeps its index at the end: cut, it is gone
    with pytest.raises(videos.UnreadableVideoError, match="cut.mp4"):
        videos.read_video(path)
    with pytest.raises(videos.UnreadableVideoError, match="cut.mp4"):
        videos.sample_background_clip(path, 4, np.random.default_rng(0))


def test_truncated_avi_promising_more_frames_raises_truncated_naming_the_file(tmp_path):
    path = videos.write_video(tmp_path / "cut.avi", np.random.default_rng(0).integers(0, 256, (30, 32, 40, 3),
                                                                                    dtype=np.uint8))
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.6)])
    assert videos.count_frames(path) == 30 and videos.count_frames(path, exact=True) < 30
    with pytest.raises(videos.TruncatedVideoError, match=r"cut\.avi.*30 frames"):
        videos.read_video(path, start=0, num_frames=30)


def test_too_short_video_raises_naming_the_file(tmp_path):
    path = videos.write_video(tmp_path / "short.mp4", _smooth_frames(5, (32, 32)))
    with pytest.raises(videos.VideoTooShortError, match=r"short\.mp4.*5 frames.*31"):
        videos.sample_background_clip(path, 31, np.random.default_rng(0))
    with pytest.raises(videos.VideoTooShortError, match=r"short\.mp4"):
        videos.read_video(path, start=3, num_frames=4)


def test_missing_file_and_bad_frames_raise_clear_errors(tmp_path):
    with pytest.raises(videos.UnreadableVideoError, match="nowhere.mp4"):
        videos.read_video(tmp_path / "nowhere.mp4")
    (tmp_path / "text.mp4").write_text("not a video at all")
    with pytest.raises(videos.UnreadableVideoError, match="text.mp4"):
        videos.count_frames(tmp_path / "text.mp4")
    with pytest.raises(ValueError, match="uint8"):
        videos.write_video(tmp_path / "f.mp4", np.zeros((2, 16, 16, 3), np.float32))
    with pytest.raises(ValueError, match="even"):
        videos.write_video(tmp_path / "odd.mp4", np.zeros((2, 15, 16, 3), np.uint8))
    with pytest.raises(ValueError, match=".webm"):
        videos.write_video(tmp_path / "x.webm", np.zeros((2, 16, 16, 3), np.uint8))
