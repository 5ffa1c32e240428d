"""The whole tf.data graph at tiny size (6 frames, 64-px crops) on simulator data in the real formats."""
import dataclasses
import shutil

import cv2
import numpy as np
import pytest
import tensorflow as tf

from mhr_tf.body import joints as joint_sets
from mhr_tf.data import camera_motion, composite, crops, flow, keypoints, pipeline, sources, threedpw
from mhr_tf.data.preprocessing import Augmentation, Channels, FlowSettings, Preprocessing
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


def test_domain_windows_are_drawn_afresh_for_every_example(sim_data):
    """DANN's target domain: every example is one (track, start) window of the target tracks (its inputs are
    `test_inputs` of that window) chosen anew per example from the key, so some dozens of examples reach nearly every
    window (windows drawn once at build time would repeat a few), the same seed gives the same sequence, and a
    resumed stream continues it."""
    tracks = threedpw.load_split(sim_data["threedpw"], "test")
    pre = Preprocessing(num_frames=4, crop_size=32, channels=Channels(False, False, True))  # detections only
    height, width = cv2.imread(str(tracks[0].image_paths[0])).shape[:2]
    windows = {}
    for k, track in enumerate(tracks):
        lsp = pipeline.coco_to_lsp_keypoints(track.keypoints2d).astype(np.float32)
        for start in range(len(track.image_paths) - pre.num_frames + 1):
            windows[k, start] = pipeline.test_inputs(
                tf.zeros([pre.num_frames, height, width, 3], tf.uint8), lsp[start:start + pre.num_frames],
                tf.zeros([pre.num_frames], tf.bool), pre)["inputs"].numpy()
    assert len(windows) >= 12

    def drawn(seed, start_index=0, count=80):
        out = []
        for features in pipeline.make_domain_dataset(tracks, pre, 8, seed, start_index).take(count // 8):
            for example in features["inputs"].numpy():
                matches = [w for w, inputs in windows.items() if np.allclose(example, inputs, atol=1e-6)]
                assert len(matches) == 1, matches
                out.append(matches[0])
        return out

    first = drawn(seed=3)
    assert len(set(first)) >= 0.8 * len(windows)
    assert drawn(seed=3) == first
    assert drawn(seed=3, start_index=40, count=40) == first[40:]
    assert drawn(seed=4) != first


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


# ---- the network inputs' one-pass writer, and the wire with flow in the model ---------------------------------------

def _clip(t=5, seed=0):
    """A random clip: frames [T, 48, 64, 3] uint8, boxes, keypoints, visibility and a total occlusion at frame 1."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (t, 48, 64, 3)).astype(np.uint8)
    centre = (rng.normal(0, 4, (t, 2)) + [32, 24]).astype(np.float32)
    size = rng.uniform(30, 60, t).astype(np.float32)
    points = rng.uniform(0, 64, (t, 12, 2)).astype(np.float32)
    visible = rng.random((t, 12)) < 0.7
    occluded = np.zeros(t, np.float32)
    occluded[1] = 1.0
    return frames, centre, size, points, visible, occluded


def _separate_ops(frames, centre, size, points, visible, occluded, pre):
    """The network inputs as the pipeline computed them before the one-pass writer: each group, zeroed, then concat."""
    s, channels = pre.crop_size, pre.channels
    pairs = crops.paired_crops(frames, centre, size, s)
    parts = []
    if channels.use_rgb:
        parts.append(pairs[:, 0] / 127.5 - 1.0)
    if channels.use_flow:
        parts.append(flow.flow_channels(flow.compute_flow(pairs, pre.flow), pre.flow.divisor))
    if channels.use_keypoints:
        current, _ = crops.keypoints_in_pair_boxes(points, centre, size, s)
        parts.append(keypoints.gaussian_heatmaps(current, visible[:-1], s, pre.sigma_px))
    shown = 1.0 - occluded[:-1, None, None, None]
    indicator = tf.broadcast_to(occluded[:-1, None, None, None], [len(occluded) - 1, s, s, 1])
    return tf.concat([p * shown for p in parts] + [indicator], axis=-1).numpy()


@pytest.mark.parametrize("channels", [Channels(True, True, True), Channels(False, True, True), Channels(True, False, True),
                                      Channels(True, False, False), Channels(False, False, True),
                                      Channels(False, False, False)])
def test_one_pass_writer_gives_the_separate_ops_values(channels):
    pre = Preprocessing(num_frames=5, crop_size=24, channels=channels, flow=FlowSettings(backend="dis"))
    clip = _clip()
    written = pipeline.network_inputs(*clip, pre).numpy()
    expected = _separate_ops(*clip, pre)
    assert written.shape == expected.shape == (4, 24, 24, channels.count)
    # XLA may fuse a multiply and an add (one rounding instead of two): float32 rounding of values in [-1, 1]
    np.testing.assert_allclose(written, expected, rtol=0, atol=3e-7)
    assert not written[1, ..., :-1].any() and (written[1, ..., -1] == 1).all()  # frame 1: totally occluded


def test_flow_in_the_model_sends_the_pair_crops_scaled_like_rgb_and_the_same_other_groups():
    clip = _clip(seed=1)
    base = Preprocessing(num_frames=5, crop_size=24, channels=Channels(False, True, True))
    sent = pipeline.network_inputs(*clip, dataclasses.replace(
        base, flow=FlowSettings(backend="tf_tvl1", placement="model"))).numpy()
    assert sent.shape == (4, 24, 24, 19)
    pairs = crops.paired_crops(*clip[:3], 24).numpy()  # [P, 2, S, S, 3] 0..255
    shown = 1.0 - clip[5][:-1, None, None, None]
    np.testing.assert_allclose(sent[..., 0:3], (pairs[:, 0] / 127.5 - 1.0) * shown, atol=3e-7)  # frame t in box t
    np.testing.assert_allclose(sent[..., 3:6], (pairs[:, 1] / 127.5 - 1.0) * shown, atol=3e-7)  # frame t+1 in box t
    assert not sent[1, ..., :-1].any() and (sent[1, ..., -1] == 1).all()  # frame 1: totally occluded
    # heatmaps and the indicator as with flow in the pipeline (whatever the flow backend there)
    in_pipeline = pipeline.network_inputs(*clip, dataclasses.replace(base, flow=FlowSettings(backend="dis"))).numpy()
    np.testing.assert_array_equal(sent[..., 6:], in_pipeline[..., 3:])


def test_wire_with_flow_in_the_model_keeps_shapes_inside_dataset_map(source):
    pre = dataclasses.replace(PRE, flow=FlowSettings(backend="tf_tvl1", placement="model"))
    [(features, _)], ds = _batches(source, pre=pre)
    assert ds.element_spec[0]["inputs"].shape.as_list() == [2, FRAMES - 1, CROP, CROP, 19]
    pairs = features["inputs"].numpy()[..., :6]
    assert pairs.min() >= -1.0 and pairs.max() <= 1.0 and pairs.std() > 0.05


def test_follow_camera_moves_everything_as_camera_motion_does_in_one_gather():
    rng = np.random.default_rng(4)
    t, h, w = 5, 24, 32
    example = {"person_rgb": rng.integers(0, 256, (t, h, w, 3)).astype(np.uint8),
               "segm": rng.integers(0, 25, (t, h, w)).astype(np.uint8),
               "depth": rng.uniform(1, 9, (t, h, w)).astype(np.float32),
               "joints2d": rng.uniform(0, 32, (t, 24, 2)).astype(np.float32),
               "joints14_2d": rng.uniform(0, 32, (t, 14, 2)).astype(np.float32),
               # whole and fractional shifts both ways, one beyond the frame, one a rounding tie
               "camera_shift": np.array([[0, 0], [3.4, -2.6], [-7, 5], [40, -1], [0.5, 1.5]], np.float32)}
    expected = camera_motion.follow_camera(example)
    moved = pipeline.follow_camera(example)
    for key in ("person_rgb", "segm", "depth", "joints2d", "joints14_2d"):
        assert moved[key].dtype == expected[key].dtype, key
        np.testing.assert_array_equal(moved[key], expected[key], err_msg=key)
    assert (np.asarray(moved["depth"])[3] == camera_motion.DEPTH_BACKGROUND).all()  # moved out of the frame


def test_composite_in_one_xla_pass_is_composite_composite():
    rng = np.random.default_rng(5)
    example = {"segm": rng.integers(0, 3, (4, 12, 16)).astype(np.uint8), "occluder": rng.random((4, 12, 16)) < 0.2,
               "person_rgb": rng.integers(0, 256, (4, 12, 16, 3)).astype(np.uint8),
               "background": rng.integers(0, 256, (4, 12, 16, 3)).astype(np.uint8)}
    fused = pipeline.composite_frames(example["segm"], example["occluder"], example["person_rgb"],
                                      example["background"])
    np.testing.assert_array_equal(fused, composite.composite(example)["frames"])
