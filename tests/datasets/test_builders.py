"""The TFDS builders on tiny simulator data, built with Beam's DirectRunner and read back against the decoders.

Every stored value is compared with what `mhr_tf.data`'s decoders give for the same frames (exactly, or within the
encoding's stated tolerance), and derived values with independent float64 references written here.
"""
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from mhr_tf import datasets
from mhr_tf.body import joints as joint_sets
from mhr_tf.data import background_windows, camera_motion, occlusion, sources, surreal, videos
from mhr_tf.datasets import surreal_clips

# conftest's `sim_data`: SURREAL-format clips of 10 frames, background videos of 12.
SURREAL_FRAMES = 10
BACKGROUND_T = 5  # windows of 2T - 1 = 9 frames, every 5: starts 0 and 3 in a 12-frame video
BACKGROUND_STARTS = [0, 3]
DEPTH_TOLERANCE_M = 0.5e-3  # uint16 millimetres
JPEG_MIN_PSNR_DB = 34.0  # background frames, JPEG q95 (36-43 dB measured on simulator backgrounds)


def _pinhole(points: np.ndarray, fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    points = np.asarray(points, np.float64)
    return np.stack([fx * points[..., 0] / points[..., 2] + cx, fy * points[..., 1] / points[..., 2] + cy], -1)


def _examples(builder, split, decoders=None) -> list[dict]:
    return list(tfds.as_numpy(builder.as_dataset(split=split, decoders=decoders)))


@pytest.fixture(scope="module")
def manual_dir(sim_data, tmp_path_factory):
    """A manual-download directory holding the simulator's training data (conftest's tiny `sim_data`, whose
    background videos have their camera-motion cache, which the builder must reuse)."""
    root = tmp_path_factory.mktemp("manual")
    for folder, kind in (("sim_surreal", "surreal"), ("sim_backgrounds", "backgrounds")):
        (root / folder).symlink_to(sim_data[kind], target_is_directory=True)
    return root


@pytest.fixture(scope="module")
def built(manual_dir, tmp_path_factory):
    """Both datasets built from `manual_dir` with the DirectRunner."""
    data_dir = tmp_path_factory.mktemp("tfds")
    return {
        "surreal": datasets.build("surreal_clips/sim_clips", data_dir, manual_dir),
        "background": datasets.build("background_clips/sim_t8", data_dir, manual_dir, config_overrides={
            "num_frames": str(BACKGROUND_T), "slic_downsample": "2"}),
    }


ENCODED = {"frames": tfds.decode.SkipDecoding(), "segm": tfds.decode.SkipDecoding(),
           "depth_mm": tfds.decode.SkipDecoding()}


def _decoded(example) -> dict:
    """A `surreal_clips` example read with its per-frame images left encoded, decoded here with OpenCV."""
    import cv2
    out = dict(example)
    out["frames"] = np.stack([cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
                              for b in example["frames"]])
    for name in ("segm", "depth_mm"):
        out[name] = np.stack([cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_UNCHANGED)
                              for b in example[name]])
    return out


# ---- SURREAL --------------------------------------------------------------------------------------------------------

def test_surreal_examples_are_the_whole_clips(built, manual_dir):
    clips = sorted(p.relative_to(manual_dir / "sim_surreal").as_posix()
                   for p in (manual_dir / "sim_surreal").glob("train/run0/*/*.mp4"))
    examples = _examples(built["surreal"], "train", ENCODED)
    assert len(clips) == 4 and sorted(e["clip"].decode() for e in examples) == clips
    assert all(len(e["frames"]) == len(e["segm"]) == len(e["pose_cam"]) == SURREAL_FRAMES for e in examples)


def test_surreal_examples_equal_the_decoder(built, manual_dir):
    for example in map(_decoded, _examples(built["surreal"], "train", ENCODED)):
        clip = surreal.load_clip(manual_dir / "sim_surreal" / example["clip"].decode())
        person = clip.segm > 0
        assert person.any()
        np.testing.assert_array_equal(example["frames"], np.where(person[..., None], clip.frames, 0))
        np.testing.assert_array_equal(example["segm"], clip.segm)
        for key in ("joints3d_cam", "pose_cam", "betas"):
            np.testing.assert_array_equal(example[key], getattr(clip, key))
        assert surreal_clips.GENDERS[example["gender"]] == clip.gender
        depth = sources.depth_metres(example["depth_mm"]).numpy()
        np.testing.assert_allclose(depth[person], clip.depth[person], atol=DEPTH_TOLERANCE_M + 1e-6)
        assert np.all(depth[~person] == surreal.DEPTH_BACKGROUND)
        k = clip.intrinsics
        np.testing.assert_allclose(example["joints2d"], _pinhole(clip.joints3d_cam, k.fx, k.fy, k.cx, k.cy),
                                   atol=1e-3)
        np.testing.assert_allclose(example["joints14_2d"], _pinhole(example["joints14_cam"], k.fx, k.fy, k.cx, k.cy),
                                   atol=1e-3)


def test_surreal_evaluation_joints_match_the_tf_body_layer_on_the_files_pelvis(built, manual_dir):
    from mhr_tf.body import smpl
    for example in _examples(built["surreal"], "train", ENCODED):
        body = smpl.load_body_model(None, surreal_clips.GENDERS[example["gender"]])
        out = smpl.smpl_forward(smpl.body_constants(body), np.tile(example["betas"], (SURREAL_FRAMES, 1)),
                                example["pose_cam"])
        pelvis = joint_sets.SMPL_24.index("pelvis")
        offset = example["joints3d_cam"][:, pelvis:pelvis + 1] - out["joints"].numpy()[:, pelvis:pelvis + 1]
        np.testing.assert_allclose(example["joints14_cam"], out["joints14"].numpy() + offset, atol=1e-4)


def test_surreal_python_build_gives_the_beam_build_examples(built, manual_dir, tmp_path):
    python_built = datasets.build("surreal_clips/sim_clips", tmp_path, manual_dir, use_beam=False)
    key = lambda e: e["clip"]  # noqa: E731
    beam_examples = sorted(_examples(built["surreal"], "train", ENCODED), key=key)
    python_examples = sorted(_examples(python_built, "train", ENCODED), key=key)
    assert len(beam_examples) == len(python_examples) == 4
    for a, b in zip(beam_examples, python_examples):
        for name in a:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_depth_quantization_error_is_within_half_a_millimetre():
    rng = np.random.default_rng(0)
    depth = rng.uniform(0.5, 60.0, size=(2, 5, 7))
    depth[0, 0, :3] = surreal.DEPTH_BACKGROUND
    back = sources.depth_metres(surreal_clips.quantize_depth(depth)).numpy().astype(np.float64)
    body = depth < surreal.DEPTH_BACKGROUND
    assert np.abs(back[body] - depth[body]).max() <= 0.5e-3 + 4e-6  # + float32 rounding at 60 m
    assert np.all(back[~body] == surreal.DEPTH_BACKGROUND)


# ---- backgrounds ----------------------------------------------------------------------------------------------------

def _background_examples(built):
    return _examples(built["background"], "train", {"frames": tfds.decode.SkipDecoding()})


def test_background_windows_are_the_resized_video_within_jpeg_tolerance(built, manual_dir):
    import cv2
    examples = _background_examples(built)
    assert sorted(int(e["start"]) for e in examples) == sorted(BACKGROUND_STARTS * 3)  # 3 videos
    for example in examples:
        path = manual_dir / "sim_backgrounds" / (example["video"].decode() + ".mp4")
        source = videos.read_video(path, int(example["start"]), 2 * BACKGROUND_T - 1)
        (src_h, src_w), (res_h, res_w) = source.shape[1:3], tuple(example["resized_hw"])
        scale = max(240 / src_h, 320 / src_w)  # App. A: the smallest resize covering 240x320
        assert (res_h, res_w) == (max(240, round(src_h * scale)), max(320, round(src_w * scale)))
        expected = np.stack([cv2.resize(f, (res_w, res_h), interpolation=cv2.INTER_AREA if scale < 1
                                        else cv2.INTER_LINEAR) for f in source]).astype(np.float64)
        frames = np.stack([cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
                           for b in example["frames"]])
        psnr = 10.0 * np.log10(255.0 ** 2 / np.mean((frames - expected) ** 2))
        assert psnr >= JPEG_MIN_PSNR_DB


def test_background_camera_motion_is_the_cached_flow_scaled(built, manual_dir):
    for example in _background_examples(built):
        path = manual_dir / "sim_backgrounds" / (example["video"].decode() + ".mp4")
        with np.load(camera_motion.cache_path(path)) as cache:
            median = cache["median_flow"].astype(np.float64)
        source_hw = videos.read_video(path, 0, 1).shape[1:3]
        start = int(example["start"])
        zoom = example["resized_hw"][::-1] / np.array(source_hw[::-1])  # (x, y)
        expected = median[start:start + 2 * BACKGROUND_T - 2] * zoom
        np.testing.assert_allclose(example["median_flow"], expected, rtol=1e-5, atol=1e-5)


def test_background_superpixels_are_the_file_sources_cached_labels(built, manual_dir):
    """The builder and the file source's cache store the same windows: the same SLIC labels for the same frames."""
    for example in _background_examples(built):
        low, high = occlusion.SUPERPIXELS_PER_FRAME
        assert low <= example["slic_segments"] <= high
        assert occlusion.SLIC_XY_SCALE[0] <= example["slic_xy_scale"] <= occlusion.SLIC_XY_SCALE[1]
        path = manual_dir / "sim_backgrounds" / (example["video"].decode() + ".mp4")
        background_windows.preprocess_video(path, BACKGROUND_T, slic_downsample=2)
        cache = background_windows.load_cache(path, BACKGROUND_T)
        window = list(cache.starts).index(int(example["start"]))
        _, labels, _ = background_windows.read_window(cache, window, 0, int(cache.lengths[window]))
        np.testing.assert_array_equal(example["superpixels"][..., 0], labels)
        assert len(np.unique(labels)) > 1


def test_window_starts_reach_every_clip_of_the_video():
    for frames in range(5, 60):
        windows = background_windows.window_starts(frames, 5)
        clips = {start + offset for start, length in windows for offset in range(length - 5 + 1)}
        assert clips == set(range(frames - 5 + 1)), frames
        assert all(length == min(9, frames) for _, length in windows)
    assert background_windows.window_starts(4, 5) == []


# ---- shared rules ---------------------------------------------------------------------------------------------------

def test_real_config_refuses_simulated_files(manual_dir, tmp_path):
    mixed = tmp_path / "manual"
    mixed.mkdir()
    (mixed / "surreal").symlink_to(manual_dir / "sim_surreal")  # simulator output where SURREAL should be
    with pytest.raises(datasets.ProvenanceError, match="simulator file in the real-data config"):
        datasets.build("surreal_clips/clips", tmp_path / "data", mixed, use_beam=False)


def test_missing_manual_data_names_where_to_get_it(tmp_path):
    with pytest.raises(AssertionError, match="make_synthetic.py backgrounds"):
        datasets.build("background_clips/sim_t8", tmp_path / "data", tmp_path / "empty", use_beam=False)


def test_config_override_renames_the_config_and_parses_values():
    builder = datasets.builder("background_clips/sim_t8", {"slic_downsample": "2", "flow_scale": "0.25",
                                                           "num_frames": "6"}, use_beam=False)
    config = builder.builder_config
    assert (config.name, config.slic_downsample, config.flow_scale, config.num_frames) == (
        "sim_t6_flow_scale0.25_slic_downsample2", 2, 0.25, 6)
    with pytest.raises(ValueError, match="no such setting"):
        datasets.builder("background_clips/sim_t8", {"slic_segments": "9"})

