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
from mhr_tf.data import camera_motion, occlusion, surreal, threedpw, videos
from mhr_tf.datasets import background_clips, surreal_clips, threedpw_tracks

# conftest's `sim_data`: SURREAL-format clips of 10 frames, background videos of 12, 3DPW-format tracks of 10.
SURREAL_T, SURREAL_STRIDE, SURREAL_STARTS = 4, 5, [0, 5, 6]  # the last window ends on the clip's last frame
BACKGROUND_T, BACKGROUND_STARTS = 6, [0, 6]
THREEDPW_T, THREEDPW_STARTS = 8, [0, 2]
DEPTH_TOLERANCE_M = 0.5e-3  # uint16 millimetres
JPEG_MIN_PSNR_DB = 34.0  # background frames, JPEG q95 (36-43 dB measured on simulator backgrounds)


def _pinhole(points: np.ndarray, fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    points = np.asarray(points, np.float64)
    return np.stack([fx * points[..., 0] / points[..., 2] + cx, fy * points[..., 1] / points[..., 2] + cy], -1)


def _examples(builder, split, decoders=None) -> list[dict]:
    return list(tfds.as_numpy(builder.as_dataset(split=split, decoders=decoders)))


@pytest.fixture(scope="module")
def manual_dir(sim_data, tmp_path_factory):
    """A manual-download directory holding the simulator's three kinds of data (conftest's tiny `sim_data`, whose
    background videos have their camera-motion cache, which the builder must reuse)."""
    root = tmp_path_factory.mktemp("manual")
    for folder, kind in (("sim_surreal", "surreal"), ("sim_backgrounds", "backgrounds"), ("sim_3dpw", "threedpw")):
        (root / folder).symlink_to(sim_data[kind], target_is_directory=True)
    return root


@pytest.fixture(scope="module")
def built(manual_dir, tmp_path_factory):
    """The three datasets built from `manual_dir` with the DirectRunner (apache_beam is in install_requires)."""
    data_dir = tmp_path_factory.mktemp("tfds")
    return {
        "surreal": datasets.build("surreal_clips/sim_t8", data_dir, manual_dir, config_overrides={
            "num_frames": str(SURREAL_T), "stride": str(SURREAL_STRIDE)}),
        "background": datasets.build("background_clips/sim_t8", data_dir, manual_dir, config_overrides={
            "num_frames": str(BACKGROUND_T), "slic_downsample": "2"}),
        "threedpw": datasets.build("threedpw_tracks/sim_t8", data_dir, manual_dir, config_overrides={
            "num_frames": str(THREEDPW_T)}),
    }


# ---- SURREAL --------------------------------------------------------------------------------------------------------

def test_surreal_windows_cover_every_clip_at_the_configured_stride(built, manual_dir):
    examples = _examples(built["surreal"], "train")
    clips = sorted(p.relative_to(manual_dir / "sim_surreal").as_posix()
                   for p in (manual_dir / "sim_surreal").glob("train/run0/*/*.mp4"))
    assert len(clips) == 4
    assert sorted((e["clip"].decode(), int(e["start"])) for e in examples) == [
        (c, s) for c in clips for s in SURREAL_STARTS]


def test_surreal_examples_equal_the_decoder(built, manual_dir):
    for example in _examples(built["surreal"], "train"):
        start = int(example["start"])
        clip = surreal.load_clip(manual_dir / "sim_surreal" / example["clip"].decode(),
                                 slice(start, start + SURREAL_T))
        person = clip.segm > 0
        assert person.any()
        np.testing.assert_array_equal(example["frames"], np.where(person[..., None], clip.frames, 0))
        np.testing.assert_array_equal(example["segm"], clip.segm)
        for key in ("joints3d_cam", "pose_cam", "betas"):
            np.testing.assert_array_equal(example[key], getattr(clip, key))
        assert surreal_clips.GENDERS[example["gender"]] == clip.gender
        depth = surreal_clips.depth_metres(example["depth_mm"]).numpy()
        np.testing.assert_allclose(depth[person], clip.depth[person], atol=DEPTH_TOLERANCE_M + 1e-6)
        assert np.all(depth[~person] == surreal.DEPTH_BACKGROUND)
        k = clip.intrinsics
        np.testing.assert_allclose(example["joints2d"], _pinhole(clip.joints3d_cam, k.fx, k.fy, k.cx, k.cy),
                                   atol=1e-3)
        np.testing.assert_allclose(example["joints14_2d"], _pinhole(example["joints14_cam"], k.fx, k.fy, k.cx, k.cy),
                                   atol=1e-3)


def test_surreal_evaluation_joints_match_the_tf_body_layer_on_the_files_pelvis(built, manual_dir):
    from mhr_tf.body import smpl
    for example in _examples(built["surreal"], "train"):
        body = smpl.load_body_model(None, surreal_clips.GENDERS[example["gender"]])
        out = smpl.smpl_forward(smpl.body_constants(body), np.tile(example["betas"], (SURREAL_T, 1)),
                                example["pose_cam"])
        pelvis = joint_sets.SMPL_24.index("pelvis")
        offset = example["joints3d_cam"][:, pelvis:pelvis + 1] - out["joints"].numpy()[:, pelvis:pelvis + 1]
        np.testing.assert_allclose(example["joints14_cam"], out["joints14"].numpy() + offset, atol=1e-4)


def test_surreal_python_build_gives_the_beam_build_examples(built, manual_dir, tmp_path):
    python_built = datasets.build("surreal_clips/sim_t8", tmp_path, manual_dir, use_beam=False, config_overrides={
        "num_frames": str(SURREAL_T), "stride": str(SURREAL_STRIDE)})
    key = lambda e: (e["clip"], int(e["start"]))  # noqa: E731
    beam_examples = sorted(_examples(built["surreal"], "train"), key=key)
    python_examples = sorted(_examples(python_built, "train"), key=key)
    assert len(beam_examples) == len(python_examples) == 4 * len(SURREAL_STARTS)
    for a, b in zip(beam_examples, python_examples):
        for name in a:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_surreal_source_fields_inside_dataset_map(built):
    ds = built["surreal"].as_dataset(split="train").map(surreal_clips.source_fields)
    spec = ds.element_spec
    assert spec["person_rgb"].dtype == tf.uint8 and spec["person_rgb"].shape == (SURREAL_T, 240, 320, 3)
    assert spec["depth"].dtype == tf.float32 and spec["segm"].dtype == tf.uint8
    fields = next(iter(ds))
    off_body = fields["segm"].numpy() == 0
    assert np.all(fields["depth"].numpy()[off_body] == surreal.DEPTH_BACKGROUND)
    assert np.all(fields["person_rgb"].numpy()[off_body] == 0)


def test_depth_quantization_error_is_within_half_a_millimetre():
    rng = np.random.default_rng(0)
    depth = rng.uniform(0.5, 60.0, size=(2, 5, 7))
    depth[0, 0, :3] = surreal.DEPTH_BACKGROUND
    back = surreal_clips.depth_metres(surreal_clips.quantize_depth(depth)).numpy().astype(np.float64)
    body = depth < surreal.DEPTH_BACKGROUND
    assert np.abs(back[body] - depth[body]).max() <= 0.5e-3 + 4e-6  # + float32 rounding at 60 m
    assert np.all(back[~body] == surreal.DEPTH_BACKGROUND)


# ---- backgrounds ----------------------------------------------------------------------------------------------------

def test_background_windows_equal_the_decoders_crop_within_jpeg_tolerance(built, manual_dir):
    examples = _examples(built["background"], "train")
    assert sorted(int(e["start"]) for e in examples) == sorted(BACKGROUND_STARTS * 3)  # 3 videos
    for example in examples:
        path = manual_dir / "sim_backgrounds" / example["video"].decode()
        source = videos.read_video(path, int(example["start"]), BACKGROUND_T)
        (src_h, src_w), (res_h, res_w) = source.shape[1:3], tuple(example["resized_hw"])
        scale = max(240 / src_h, 320 / src_w)  # App. A: the smallest resize covering 240x320
        assert (res_h, res_w) == (max(240, round(src_h * scale)), max(320, round(src_w * scale)))
        assert 0 <= example["crop_top"] <= res_h - 240 and 0 <= example["crop_left"] <= res_w - 320
        crop = videos.ClipCrop(start=int(example["start"]), source_hw=(src_h, src_w), resized_hw=(res_h, res_w),
                               top=int(example["crop_top"]), left=int(example["crop_left"]), out_hw=(240, 320))
        expected = videos.apply_crop(source, crop).astype(np.float64)
        psnr = 10.0 * np.log10(255.0 ** 2 / np.mean((example["frames"] - expected) ** 2))
        assert psnr >= JPEG_MIN_PSNR_DB


def test_background_camera_motion_is_the_cached_flow_scaled_and_integrated(built, manual_dir):
    for example in _examples(built["background"], "train"):
        path = manual_dir / "sim_backgrounds" / example["video"].decode()
        with np.load(camera_motion.cache_path(path)) as cache:
            median = cache["median_flow"].astype(np.float64)
        assert example["flow_method"].decode() == "cache:dis"
        start = int(example["start"])
        zoom = example["resized_hw"][::-1] / example["source_hw"][::-1]  # (x, y)
        expected = median[start:start + BACKGROUND_T - 1] * zoom
        np.testing.assert_allclose(example["median_flow"], expected, rtol=1e-5, atol=1e-5)
        cumulative = np.concatenate([np.zeros((1, 2)), np.cumsum(expected, axis=0)])
        np.testing.assert_allclose(example["camera_shift"], cumulative - cumulative[BACKGROUND_T // 2], atol=1e-4)


def test_background_superpixels_are_slic_4d_of_the_decoded_crop(built, manual_dir):
    for example in _examples(built["background"], "train"):
        low, high = occlusion.SUPERPIXELS_PER_FRAME
        assert low <= example["slic_segments"] <= high
        assert occlusion.SLIC_XY_SCALE[0] <= example["slic_xy_scale"] <= occlusion.SLIC_XY_SCALE[1]
        path = manual_dir / "sim_backgrounds" / example["video"].decode()
        source = videos.read_video(path, int(example["start"]), BACKGROUND_T)
        crop = videos.ClipCrop(int(example["start"]), source.shape[1:3], tuple(example["resized_hw"]),
                               int(example["crop_top"]), int(example["crop_left"]), (240, 320))
        labels = occlusion.slic_4d(videos.apply_crop(source, crop), example["camera_shift"],
                                   int(example["slic_segments"]), float(example["slic_xy_scale"]), downsample=2)
        np.testing.assert_array_equal(example["superpixels"], labels)


def test_background_source_fields_inside_dataset_map(built):
    ds = built["background"].as_dataset(split="train").map(background_clips.source_fields)
    assert ds.element_spec["superpixels"].dtype == tf.int32
    assert ds.element_spec["background"].shape == (BACKGROUND_T, 240, 320, 3)
    assert ds.element_spec["camera_shift"].shape == (BACKGROUND_T, 2)
    fields = next(iter(ds))
    assert fields["camera_shift"].numpy()[BACKGROUND_T // 2].tolist() == [0.0, 0.0]  # the centre is the reference


# ---- 3DPW -----------------------------------------------------------------------------------------------------------

def test_threedpw_windows_equal_the_decoder_and_keep_the_jpeg_bytes(built, manual_dir):
    tracks = threedpw.load_split(manual_dir / "sim_3dpw", "test")
    examples = _examples(built["threedpw"], "test", decoders={"images": tfds.decode.SkipDecoding()})
    by_name = {(t.sequence, t.person): t for t in tracks}
    assert sorted((e["sequence"].decode(), int(e["person"]), int(e["start"])) for e in examples) == sorted(
        (t.sequence, t.person, s) for t in tracks for s in THREEDPW_STARTS)
    for example in examples:
        track = by_name[example["sequence"].decode(), int(example["person"])]
        frames = np.arange(int(example["start"]), int(example["start"]) + THREEDPW_T)
        assert [bytes(b) for b in example["images"]] == [open(track.image_paths[i], "rb").read() for i in frames]
        for key in ("joints3d_cam", "pose_cam", "trans_cam", "campose_valid", "keypoints_valid"):
            np.testing.assert_array_equal(example[key], getattr(track, key)[frames], err_msg=key)
        np.testing.assert_array_equal(example["keypoints_coco"], track.keypoints2d[frames])
        assert not example["padding"].any()
        assert tuple(example["image_hw"]) == threedpw.read_image(track.image_paths[0]).shape[:2]


def test_threedpw_keypoints14_are_the_coco_keypoints_by_joint_name(built, manual_dir):
    coco = {name: i for i, name in enumerate(joint_sets.COCO_18)}
    for example in _examples(built["threedpw"], "test", decoders={"images": tfds.decode.SkipDecoding()}):
        for j, name in enumerate(joint_sets.LSP_14):
            expected = example["keypoints_coco"][:, coco[name]] if name in coco else np.zeros((THREEDPW_T, 3))
            np.testing.assert_array_equal(example["keypoints14"][:, j], expected, err_msg=name)


def test_short_track_gives_one_window_padded_with_its_last_frame():
    (start, index, padding), = threedpw_tracks.track_windows(6, 8)
    assert start == 0
    assert index.tolist() == [0, 1, 2, 3, 4, 5, 5, 5]
    assert padding.tolist() == [False] * 6 + [True] * 2


# ---- shared rules ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("length, window, stride, expected", [
    (7, 4, 3, [0, 3]), (9, 4, 4, [0, 4, 5]), (8, 4, 4, [0, 4]), (3, 4, 4, []), (100, 31, 31, [0, 31, 62, 69])])
def test_window_starts_step_by_the_stride_and_end_on_the_last_frame(length, window, stride, expected):
    assert datasets.window_starts(length, window, stride) == expected


def test_real_config_refuses_simulated_files(manual_dir, tmp_path):
    mixed = tmp_path / "manual"
    mixed.mkdir()
    (mixed / "surreal").symlink_to(manual_dir / "sim_surreal")  # simulator output where SURREAL should be
    with pytest.raises(datasets.ProvenanceError, match="simulator file in the real-data config"):
        datasets.build("surreal_clips/t8", tmp_path / "data", mixed, use_beam=False)


def test_missing_manual_data_names_where_to_get_it(tmp_path):
    with pytest.raises(AssertionError, match="make_synthetic.py threedpw"):
        datasets.build("threedpw_tracks/sim_t8", tmp_path / "data", tmp_path / "empty", use_beam=False)


def test_config_override_renames_the_config_and_parses_values():
    builder = datasets.builder("background_clips/sim_t8", {"slic_downsample": "2", "flow_scale": "0.25"},
                               use_beam=False)
    config = builder.builder_config
    assert (config.name, config.slic_downsample, config.flow_scale, config.num_frames) == (
        "sim_t8_flow_scale0.25_slic_downsample2", 2, 0.25, 8)
    with pytest.raises(ValueError, match="no such setting"):
        datasets.builder("background_clips/sim_t8", {"slic_segments": "9"})

