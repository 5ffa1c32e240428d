"""The whole tf.data graph at tiny size (6 frames, 64-px crops) on simulator data in the real formats."""
import dataclasses
import shutil

import cv2
import numpy as np
import pytest
import tensorflow as tf

from mhr_tf.body import joints as joint_sets
from mhr_tf.data import pipeline, sources, threedpw
from mhr_tf.data.preprocessing import Augmentation, Channels, Preprocessing
from tests.helpers import background_windows_for

FRAMES, CROP = 6, 64
PRE = Preprocessing(num_frames=FRAMES, crop_size=CROP)


@pytest.fixture(scope="module")
def source(sim_data):
    background_windows_for(sim_data["backgrounds"], FRAMES)
    return sources.FileSource(sim_data["surreal"], sim_data["backgrounds"], FRAMES)


def _batches(source, count=1, pre=PRE, **options):
    options = {"batch_size": 2, "seed": 0, **options}
    ds = pipeline.make_dataset(source, pre, options.pop("batch_size"), options.pop("seed"), **options)
    return [(f, l) for f, l in ds.take(count)], ds


LAYOUTS = {
    "flow_kp": (Channels(False, True, True), {"flow": slice(0, 3), "heatmaps": slice(3, 15)}),
    "rgb": (Channels(True, False, False), {"rgb": slice(0, 3)}),
    "kp": (Channels(False, False, True), {"heatmaps": slice(0, 12)}),
    "rgb_flow_kp": (Channels(True, True, True), {"rgb": slice(0, 3), "flow": slice(3, 6), "heatmaps": slice(6, 18)}),
}


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_channel_groups_sit_where_the_layout_says_with_their_values(source, name):
    channels, layout = LAYOUTS[name]
    pre = dataclasses.replace(PRE, channels=channels,
                              augmentation=Augmentation(total_occlusion_probability=1.0))  # every clip has a run
    [(features, labels)], _ = _batches(source, pre=pre)
    x = features["inputs"].numpy()
    assert x.shape == (2, FRAMES - 1, CROP, CROP, 3 * channels.use_rgb + 3 * channels.use_flow
                       + 12 * channels.use_keypoints + 1)
    occluded = labels["occluded"].numpy()[:, :-1].astype(bool)  # per pair: frame p
    assert occluded.any() and (~occluded).any()
    # The indicator is the last channel, 1 on totally occluded frames, where every other channel is 0.
    np.testing.assert_array_equal(x[..., -1], np.broadcast_to(occluded[:, :, None, None], x.shape[:-1]))
    assert np.all(x[occluded][..., :-1] == 0)
    shown = x[~occluded]
    if "rgb" in layout:
        rgb = shown[..., layout["rgb"]]
        assert rgb.min() >= -1.0 and rgb.max() <= 1.0 and rgb.std() > 0.05
    if "flow" in layout:
        flow = shown[..., layout["flow"]]
        np.testing.assert_allclose(flow[..., 2], np.hypot(flow[..., 0], flow[..., 1]), atol=1e-5)
        assert np.abs(flow[..., :2]).max() > 0.01
    if "heatmaps" in layout:
        heat = shown[..., layout["heatmaps"]]
        assert heat.min() >= 0.0 and heat.max() <= 1.0 + 1e-6 and heat.max() > 0.9


def test_heatmap_peaks_sit_on_the_keypoint_labels(source):
    pre = dataclasses.replace(PRE, channels=Channels(False, False, True), augmentation=Augmentation(
        total_occlusion_probability=0.0, flip_probability=0.0))
    [(features, labels)], _ = _batches(source, pre=pre)
    heat = features["inputs"].numpy()[..., :12]  # [B, P, S, S, 12]
    target = (labels["keypoints2d_current"].numpy()[..., :12, :] + 1.0) * CROP / 2.0  # HMR normalized -> pixels
    checked = 0
    for b, p, k in np.ndindex(heat.shape[0], heat.shape[1], 12):
        channel = heat[b, p, :, :, k]
        u, v = target[b, p, k]
        if channel.max() < 0.5 or not (3 <= u < CROP - 3 and 3 <= v < CROP - 3):
            continue  # hidden, or too near the crop's edge for a whole peak
        row, col = np.unravel_index(np.argmax(channel), channel.shape)
        # HMR's normalized coordinates put pixel centres half a pixel off ours (geometry.py); allow 1 px.
        assert abs(col - u) <= 1.0 and abs(row - v) <= 1.0, (b, p, k, (col, row), (u, v))
        checked += 1
    assert checked > 20


def test_same_seed_gives_the_same_batches_bit_for_bit(source):
    first, _ = _batches(source, count=2, seed=3)
    second, _ = _batches(source, count=2, seed=3)
    other, _ = _batches(source, count=1, seed=4)
    for (f1, l1), (f2, l2) in zip(first, second):
        np.testing.assert_array_equal(f1["inputs"].numpy(), f2["inputs"].numpy())
        for key in l1:
            np.testing.assert_array_equal(l1[key].numpy(), l2[key].numpy())
    assert not np.array_equal(first[0][0]["inputs"].numpy(), other[0][0]["inputs"].numpy())


def test_resuming_at_an_example_index_continues_the_same_stream(source):
    stream, _ = _batches(source, count=2, seed=1)
    resumed, _ = _batches(source, count=1, seed=1, start_index=2)
    np.testing.assert_array_equal(stream[1][0]["inputs"].numpy(), resumed[0][0]["inputs"].numpy())
    np.testing.assert_array_equal(resumed[0][1]["index"].numpy(), [2, 3])


def test_clip_start_and_crop_are_drawn_per_example_over_everything_that_fits(source):
    """Over many examples every start of every clip, and every window offset, is drawn: nothing is fixed per stored
    clip or window."""
    ds = pipeline.make_dataset(source, dataclasses.replace(PRE, channels=Channels(False, False, True)), 16, seed=0,
                               num_examples=160, with_meta=True)
    starts = {}
    for _, labels in ds:
        for clip, start in zip(labels["clip"].numpy(), labels["start"].numpy()):
            starts.setdefault(clip, set()).add(int(start))
    frames = {str(e.path.relative_to(source.surreal_root)).encode(): e.frames for e in source.clips}
    assert set(starts) == set(frames)
    for clip, seen in starts.items():
        assert seen == set(range(frames[clip] - FRAMES + 1)), clip


def test_unreadable_file_is_skipped_counted_and_named(sim_data, tmp_path):
    root = tmp_path / "surreal"
    shutil.copytree(sim_data["surreal"], root)
    broken = sorted(root.glob("train/run0/*/*_segm.mat"))[0]
    broken.write_bytes(broken.read_bytes()[:200])  # a truncated download
    bad = sources.BadSamples()
    source = sources.FileSource(root, background_windows_for(sim_data["backgrounds"], FRAMES), FRAMES,
                                bad_samples=bad)
    ds = pipeline.make_dataset(source, dataclasses.replace(PRE, channels=Channels(False, False, True)), 1,
                               num_examples=12)
    kept = [labels for _, labels in ds]
    assert bad.count > 0 and len(kept) + int(kept[-1]["rejected"].numpy().sum()) <= 12
    assert int(kept[-1]["rejected"].numpy()[0, sources.STATUS_UNREADABLE - 1]) >= 1
    assert bad.by_reason == {sources.REASONS[0]: bad.count}
    assert all(broken.name.replace("_segm.mat", "") in e for e in bad.examples[sources.REASONS[0]])
    assert "unreadable samples skipped" in bad.report()


def test_every_file_broken_stops_with_the_budget_message(sim_data, tmp_path):
    root = tmp_path / "surreal"
    shutil.copytree(sim_data["surreal"], root)
    for path in root.glob("train/run0/*/*_depth.mat"):
        path.write_bytes(b"not a mat file")
    source = sources.FileSource(root, background_windows_for(sim_data["backgrounds"], FRAMES), FRAMES)
    ds = pipeline.make_dataset(source, dataclasses.replace(PRE, channels=Channels(False, False, True)), 1,
                               budget=pipeline.BadSampleBudget(max_fraction=0.5, window=8, max_consecutive=5))
    with pytest.raises(tf.errors.InvalidArgumentError, match=pipeline.BadSampleBudget.MESSAGE):
        next(iter(ds))


def test_person_leaving_the_frame_is_rejected_for_that_reason(source):
    raw = source.raw(sources.example_key(0, 0))
    raw = dict(raw, median_flow=tf.fill(tf.shape(raw["median_flow"]), 400.0))  # the camera flies away
    placed = pipeline.place_person(raw, PRE)
    assert int(placed["status"]) == sources.STATUS_OFF_FRAME
    still = pipeline.place_person(dict(raw, median_flow=tf.zeros_like(raw["median_flow"])), PRE)
    assert int(still["status"]) == sources.STATUS_OK


def test_background_is_the_drawn_crop_and_the_person_follows_the_camera_about_the_centre_frame(source):
    raw = {k: v.numpy() for k, v in source.raw(sources.example_key(5, 11)).items()}
    raw["crop"] = np.array([0, 0], np.int32)
    step = np.array([3.0, -2.0], np.float32)
    raw["median_flow"] = np.tile(step, (FRAMES - 1, 1))
    placed = {k: np.asarray(v) for k, v in pipeline.place_person(raw, PRE).items()}
    np.testing.assert_array_equal(placed["background"], raw["background"][:, :240, :320])
    centre = FRAMES // 2
    expected_shift = (np.arange(FRAMES) - centre)[:, None] * step  # float64 reference
    np.testing.assert_allclose(placed["camera_shift"], expected_shift, atol=1e-5)
    np.testing.assert_allclose(placed["joints14_2d"], raw["joints14_2d"] + np.round(expected_shift)[:, None],
                               atol=1e-4)


def test_steps_keep_shapes_inside_dataset_map(source):
    _, ds = _batches(source)
    spec = ds.element_spec
    assert spec[0]["inputs"].shape.as_list() == [2, FRAMES - 1, CROP, CROP, 16]
    assert spec[1]["joints3d_current"].shape.as_list() == [2, FRAMES - 1, 14, 3]
    assert spec[1]["keypoints2d_valid_future"].dtype == tf.float32


# ---- the test branch -------------------------------------------------------------------------------------------------

def test_window_starts_cover_every_frame():
    assert pipeline.window_starts(10, 8) == [0, 2]
    assert pipeline.window_starts(16, 8) == [0, 8]
    assert pipeline.window_starts(5, 8) == [0]
    for n in range(1, 40):
        covered = set()
        for s in pipeline.window_starts(n, 8):
            covered |= set(range(s, min(s + 8, n)))
        assert covered == set(range(n))


def test_target_branch_occludes_frames_with_fewer_than_7_confident_keypoints(sim_data):
    tracks = threedpw.load_split(sim_data["threedpw"], "test")
    pre = dataclasses.replace(PRE, channels=Channels(False, False, True))
    coco_lsp = [joint_sets.COCO_18.index(n) for n in joint_sets.LSP_14 if n in joint_sets.COCO_18]
    windows = 0
    for features in pipeline.make_target_dataset(tracks, pre):
        track = tracks[int(features["track"][0])]
        frames = features["frame_index"].numpy()[0]
        confident = (track.keypoints2d[frames][:, coco_lsp, 2] > 0.1).sum(axis=1)
        expected = (confident < 7) | features["padding"].numpy()[0]
        np.testing.assert_array_equal(features["occluded"].numpy()[0], expected.astype(np.float32))
        x = features["inputs"].numpy()[0]
        assert x.shape == (FRAMES - 1, CROP, CROP, 13)
        np.testing.assert_array_equal(x[..., -1].max(axis=(1, 2)), expected[:-1].astype(np.float32))
        windows += 1
    assert windows == sum(len(pipeline.window_starts(len(t.image_paths), FRAMES)) for t in tracks)


def test_training_and_test_branches_frame_draw_and_flow_the_same_frames_alike(sim_data, tmp_path):
    """One simulated 3DPW-format sequence with exact keypoints (confidence 1), resized to SURREAL's frame size, through
    the training steps (every random rule off) and through the test branch: the same boxes, heatmaps and flow."""
    track = threedpw.load_split(sim_data["threedpw"], "test")[0]
    (h, w), t = sources.IMAGE_HW, FRAMES
    images = np.stack([cv2.resize(threedpw.read_image(p), (w, h), interpolation=cv2.INTER_AREA)
                       for p in track.image_paths[:t]])
    zoom = np.array([w / 270.0, h / 480.0])  # the simulator's 3DPW-format frames are 270x480 (w x h)
    # Exact keypoints: the ground-truth joints projected, by name, in LSP-14 order (head top, which no COCO detector
    # has, at the neck: it frames nothing and draws no heatmap).
    k = track.cam_intrinsics
    cam = track.joints3d_cam[:t].astype(np.float64)
    smpl2d = np.stack([k[0, 0] * cam[..., 0] / cam[..., 2] + k[0, 2], k[1, 1] * cam[..., 1] / cam[..., 2] + k[1, 2]],
                      -1) * zoom
    names = [n if n in joint_sets.SMPL_24 else "neck" for n in joint_sets.LSP_14]
    points14 = smpl2d[:, [joint_sets.SMPL_24.index(n) for n in names]].astype(np.float32)
    inside = (points14[..., 0] >= 0) & (points14[..., 0] < w) & (points14[..., 1] >= 0) & (points14[..., 1] < h)
    assert inside[:, :13].all(), "the test needs every joint in view"
    pre = dataclasses.replace(PRE, channels=Channels(False, True, True), augmentation=Augmentation.none())

    # Training: the frames as a person covering the whole frame over an empty background, nothing hidden by depth.
    zeros = lambda *shape: np.zeros(shape, np.float32)  # noqa: E731
    raw = {"person_rgb": images, "segm": np.ones((t, h, w), np.uint8), "depth": np.full((t, h, w), 1e10, np.float32),
           "joints2d": zeros(t, 24, 2), "joints3d_cam": zeros(t, 24, 3), "joints14_2d": points14,
           "joints14_cam": np.ones((t, 14, 3), np.float32), "pose_cam": zeros(t, 72), "betas": zeros(10),
           "background": np.zeros((t, h, w, 3), np.uint8), "superpixels": np.zeros((t, h, w), np.int32),
           "median_flow": zeros(t - 1, 2), "crop": np.zeros(2, np.int32), "status": np.int32(0)}
    trained = pipeline.process(raw, sources.example_key(0, 0), pre)

    # Test: the same frames as lossless files, the keypoints as a detector's with confidence 1.
    paths = []
    for i, image in enumerate(images):
        paths.append(str(tmp_path / f"image_{i:05d}.png"))
        cv2.imwrite(paths[-1], image[..., ::-1])
    coco = np.zeros((t, 18, 3), np.float32)
    for name in joint_sets.COCO_18:
        if name in joint_sets.LSP_14 and name != "head_top":
            coco[:, joint_sets.COCO_18.index(name)] = np.c_[points14[:, joint_sets.LSP_14.index(name)], np.ones(t)]
    window = {key: value[0] for key, value in pipeline.target_windows(
        [dataclasses.replace(track, image_paths=tuple(paths), keypoints2d=coco)], t).items()}
    tested = pipeline.target_example(window, pre)

    np.testing.assert_allclose(tested["box_centre"], trained["box_centre"], atol=0.5)
    np.testing.assert_allclose(tested["box_size"], trained["box_size"], atol=0.5)
    np.testing.assert_allclose(tested["inputs"][..., 3:15], trained["inputs"][..., 3:15], atol=1e-5)  # heatmaps
    np.testing.assert_allclose(tested["inputs"][..., :3], trained["inputs"][..., :3], atol=1e-5)  # flow
    assert float(tf.reduce_max(tested["inputs"][..., 3:15])) > 0.9  # the heatmaps are there
    # The box joints are what both kinds of input have: LSP-14 without head top.
    assert pre.box.joints == tuple(n for n in joint_sets.LSP_14 if n != "head_top")
