"""The one place the tf.data graph is assembled (paper §3.1, App. A, App. B).

    index ─► source (Python: decode SURREAL + background, camera motion, SLIC; the only Python step)
          ─► follow_camera ─► slic_occluder ─► composite ─► total_occlusion ─► keypoint_visibility
          ─► paired crops ─► flow (OpenCV backends are Python; a SavedModel backend is not) ─► heatmaps
          ─► channels + labels ─► batch ─► prefetch

Every example gets its own seed, derived from (seed, index): the same seed gives the same batches, bit for bit,
whatever the parallelism. A bad sample (an unreadable file, a broken .mat, a person who leaves the frame) is skipped,
counted and logged with its file by `BadSamples`; a run never dies on one file and never trains on garbage.
A second branch (`make_target_dataset`) reads 3DPW-format data for evaluation and for DANN's target domain.
"""
from __future__ import annotations

import dataclasses
import logging
import threading
from pathlib import Path

import gin
import numpy as np
import tensorflow as tf

from mhr_tf import geometry
from mhr_tf.body import joints as joint_sets
from mhr_tf.body import smpl
from mhr_tf.data import camera_motion, composite, crops, flow, keypoints, occlusion, surreal, threedpw, videos

log = logging.getLogger(__name__)

# Paper §4 / App. A: 31-frame clips; Table 3 varies it (8, 16, 31, 56).
NUM_FRAMES = 31
# Paper Table 3 caption: 31 frames uses batch size 3.
BATCH_SIZE = 3
# App. A: total occlusions happen in "some clips"; the paper gives no rate, this is ours.
TOTAL_OCCLUSION_PROBABILITY = 0.3
# App. A: evaluation frames with "fewer than 7 keypoints" visible become total occlusions; 3DPW's detections count
# as visible above this OpenPose confidence.
KEYPOINT_CONFIDENCE = 0.1
MIN_KEYPOINTS = 7
IMAGE_HW = geometry.SURREAL_IMAGE_HW


@gin.configurable
@dataclasses.dataclass(frozen=True)
class Channels:
    """Which inputs the network sees (paper Table 1); the occlusion indicator channel is always there."""
    use_rgb: bool = False
    use_flow: bool = True
    use_keypoints: bool = True

    @property
    def names(self) -> tuple[str, ...]:
        """The channel groups present, in the model's order (`mhr_tf.model.trunk.CHANNEL_GROUPS`)."""
        return tuple(name for name, on in (("rgb", self.use_rgb), ("flow", self.use_flow),
                                            ("heatmaps", self.use_keypoints), ("occlusion", True)) if on)

    @property
    def count(self) -> int:
        return (3 * self.use_rgb + flow.FLOW_CHANNELS * self.use_flow
                + keypoints.NUM_HEATMAPS * self.use_keypoints + 1)


@gin.configurable
@dataclasses.dataclass(frozen=True)
class Augmentation:
    """The dataset-construction switches of paper Table 2, and App. B's keypoint randomization."""
    track_camera: bool = True
    static_background: bool = False
    slic_occluders: bool = True
    total_occlusion_probability: float = TOTAL_OCCLUSION_PROBABILITY
    leg_unhide_probability: float = keypoints.LEG_UNHIDE_PROBABILITY
    flip_probability: float = keypoints.FLIP_PROBABILITY
    # 1 = skimage SLIC at the paper's settings (~2.2 s CPU per clip); 2 = the same on every 2nd pixel (~0.5 s;
    # occlusion.slic_4d and its test measure the agreement).
    slic_downsample: int = 2


class BadSamples:
    """Counts and logs the samples a run skipped, with their files and reasons (thread-safe)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.count = 0
        self.examples: list[str] = []

    def record(self, what: str, reason: str) -> None:
        with self._lock:
            self.count += 1
            if len(self.examples) < 100:
                self.examples.append(f"{what}: {reason}")
        log.warning("skipping bad sample %s: %s", what, reason)

    def report(self) -> str:
        return f"{self.count} bad samples skipped" + "".join(f"\n  {e}" for e in self.examples[:10])


# --------------------------------------------------------------------------------------------------------------------
# Source: the only Python step. Decoders, camera motion and SLIC; everything after it is TF ops.

def _source_spec(num_frames: int) -> dict[str, tuple[tf.DType, tuple]]:
    t, (h, w) = num_frames, IMAGE_HW
    return {
        "person_rgb": (tf.uint8, (t, h, w, 3)),      # SURREAL frames
        "segm": (tf.uint8, (t, h, w)),               # 0 background, 1 + SMPL part
        "depth": (tf.float32, (t, h, w)),            # metres, 1e10 off the body
        "joints2d": (tf.float32, (t, 24, 2)),        # SMPL_24, frame pixels
        "joints3d_cam": (tf.float32, (t, 24, 3)),    # SMPL_24, metres, camera frame
        "joints14_2d": (tf.float32, (t, 14, 2)),     # LSP_14, frame pixels
        "joints14_cam": (tf.float32, (t, 14, 3)),    # LSP_14, metres, camera frame
        "pose_cam": (tf.float32, (t, 72)),
        "betas": (tf.float32, (10,)),
        "background": (tf.uint8, (t, h, w, 3)),
        "camera_shift": (tf.float32, (t, 2)),        # camera_motion.integrate_relative_to_centre
        "superpixels": (tf.int32, (t, h, w)),
        "ok": (tf.bool, ()),
    }


class SyntheticSource:
    """Index -> one raw training example (numpy): a SURREAL clip and an independent background clip (App. A).

    SURREAL clips come from the cached manifest; background videos from a Kinetics-style folder whose camera motion
    `scripts/preprocess_backgrounds.py` has cached beside each video.
    """

    def __init__(self, surreal_root, background_root, split: str = "train", num_frames: int = NUM_FRAMES,
                 seed: int = 0, body_model_path=None, augmentation: Augmentation | None = None,
                 bad_samples: BadSamples | None = None):
        self.num_frames = num_frames
        self.seed = seed
        self.augmentation = augmentation or Augmentation()
        self.bad_samples = bad_samples or BadSamples()
        self.clips = [e for e in surreal.build_manifest(surreal_root, split) if e.frames >= num_frames]
        if not self.clips:
            raise ValueError(f"{surreal_root}: no SURREAL clip of the '{split}' split has {num_frames} frames or more")
        self.backgrounds = [entry.path for entry in videos.list_videos(background_root)]
        if not self.backgrounds:
            raise ValueError(f"{background_root}: no background videos (expected <root>/<label>/<id>.mp4)")
        missing = [p for p in self.backgrounds if not camera_motion.cache_path(p).exists()]
        if len(missing) == len(self.backgrounds):
            raise FileNotFoundError(f"{background_root}: no background video has its camera-motion cache yet; run "
                                    f"`python scripts/preprocess_backgrounds.py --root {background_root}`")
        self._body_model_path = body_model_path
        self._bodies: dict[str, object] = {}
        self._lock = threading.Lock()

    def _body(self, gender: str):
        with self._lock:
            if gender not in self._bodies:
                # Only joints are needed here, not the mesh.
                self._bodies[gender] = smpl.joint_model(smpl.load_body_model(self._body_model_path, gender))
            return self._bodies[gender]

    def spec(self) -> dict[str, tuple[tf.DType, tuple]]:
        return _source_spec(self.num_frames)

    def empty(self) -> dict[str, np.ndarray]:
        return {k: np.zeros(shape, dtype.as_numpy_dtype) for k, (dtype, shape) in self.spec().items()}

    def __call__(self, index: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng([self.seed, int(index)])
        entry = self.clips[rng.integers(len(self.clips))]
        background = self.backgrounds[rng.integers(len(self.backgrounds))]
        try:
            example = self._load(entry, background, rng)
        except Exception as error:  # a long run skips a bad sample, counts it and says which file
            self.bad_samples.record(f"{entry.path} + {background}", f"{type(error).__name__}: {error}")
            return self.empty()
        return example

    def _load(self, entry, background_path, rng: np.random.Generator) -> dict[str, np.ndarray]:
        t = self.num_frames
        start = int(rng.integers(entry.frames - t + 1))
        clip = surreal.load_clip(entry.path, slice(start, start + t))
        body = self._body(clip.gender)
        vertices, model_joints = smpl.forward_numpy(body, np.broadcast_to(clip.betas, (t, 10)), clip.pose_cam)
        # The file's joints are the body's joints placed in the camera: the same offset places the 14 evaluation
        # joints, which the body regresses from its vertices.
        offset = clip.joints3d_cam[:, :1] - model_joints[:, :1]
        joints14_cam = np.einsum("kv,tvc->tkc", body.lsp_regressor, vertices) + offset
        joints14_2d = geometry.project(joints14_cam.astype(np.float64), clip.intrinsics)
        joints2d = geometry.project(clip.joints3d_cam.astype(np.float64), clip.intrinsics)

        bg_frames, crop = videos.sample_background_clip(background_path, t, rng, out_hw=IMAGE_HW)
        zoom = crop.resized_hw[0] / crop.source_hw[0]  # the resize keeps the aspect ratio (App. A)
        shift = camera_motion.integrate_relative_to_centre(camera_motion.clip_median_flow(
            camera_motion.load_median_flow(background_path), crop.start, t, zoom))
        k, xy_scale = occlusion.sample_slic_parameters(rng)
        superpixels = occlusion.slic_4d(bg_frames, shift, k, xy_scale, downsample=self.augmentation.slic_downsample)

        tracked = joints14_2d + (np.round(shift)[:, None, :] if self.augmentation.track_camera else 0.0)
        inside = ((tracked[..., 0] >= 0) & (tracked[..., 0] < IMAGE_HW[1]) &
                  (tracked[..., 1] >= 0) & (tracked[..., 1] < IMAGE_HW[0]))
        if (inside.sum(axis=1) < 2).any():
            raise ValueError(f"the person leaves the frame (frame {int(np.argmin(inside.sum(axis=1)))} of the "
                             f"clip starting at {start} has fewer than 2 joints inside)")
        return {
            "person_rgb": clip.frames, "segm": clip.segm, "depth": clip.depth.astype(np.float32, copy=False),
            "joints2d": joints2d.astype(np.float32), "joints3d_cam": clip.joints3d_cam.astype(np.float32),
            "joints14_2d": joints14_2d.astype(np.float32), "joints14_cam": joints14_cam.astype(np.float32),
            "pose_cam": clip.pose_cam.astype(np.float32), "betas": clip.betas.astype(np.float32),
            "background": bg_frames, "camera_shift": shift.astype(np.float32),
            "superpixels": superpixels.astype(np.int32, copy=False), "ok": np.array(True),
        }


def _python_source(source, index: tf.Tensor) -> dict[str, tf.Tensor]:
    spec = source.spec()
    keys = list(spec)

    def call(i):
        example = source(int(i))
        return tuple(np.asarray(example[k], spec[k][0].as_numpy_dtype) for k in keys)

    values = tf.numpy_function(call, [index], [spec[k][0] for k in keys], stateful=False)
    return {k: tf.ensure_shape(v, spec[k][1]) for k, v in zip(keys, values)}


# --------------------------------------------------------------------------------------------------------------------
# The online part: TF ops only (plus the flow backend).

def _step_seeds(seed: int, index: tf.Tensor, count: int) -> tf.Tensor:
    base = tf.random.experimental.stateless_fold_in(tf.constant([seed, 0x6D68], tf.int64), tf.cast(index, tf.int64))
    return tf.random.experimental.stateless_split(base, count)


def network_inputs(frames: tf.Tensor, centre: tf.Tensor, size: tf.Tensor, points: tf.Tensor, visible: tf.Tensor,
                   occluded: tf.Tensor, channels: Channels, crop_size: int, flow_backend: str) -> tf.Tensor:
    """`[T-1, S, S, C]` float32 network inputs of one clip, channels as the batch contract orders them.

    frames [T, H, W, 3] uint8; boxes centre [T, 2], size [T]; points [T, 12, 2] heatmap keypoints (frame pixels) with
    visible [T, 12] bool; occluded [T] float32 (1 on totally occluded frames: every channel 0, indicator 1).
    """
    parts = []
    pairs = crops.paired_crops(frames, centre, size, crop_size) if (channels.use_rgb or channels.use_flow) else None
    if channels.use_rgb:
        parts.append(pairs[:, 0] / 127.5 - 1.0)
    if channels.use_flow:
        parts.append(flow.flow_channels(flow.compute_flow(pairs, flow_backend)))
    if channels.use_keypoints:
        current, _ = crops.keypoints_in_pair_boxes(points, centre, size, crop_size)
        parts.append(keypoints.gaussian_heatmaps(current, visible[:-1], crop_size, keypoints.heatmap_sigma(crop_size)))
    shown = 1.0 - occluded[:-1, None, None, None]
    indicator = tf.broadcast_to(occluded[:-1, None, None, None], [tf.shape(occluded)[0] - 1, crop_size, crop_size, 1])
    inputs = tf.concat([p * shown for p in parts] + [indicator], axis=-1)
    return tf.ensure_shape(inputs, [None, crop_size, crop_size, channels.count])


def _in_frame(points: tf.Tensor) -> tf.Tensor:
    h, w = IMAGE_HW
    return (points[..., 0] >= 0) & (points[..., 0] < w) & (points[..., 1] >= 0) & (points[..., 1] < h)


def process_synthetic(raw: dict, index: tf.Tensor, *, seed: int, channels: Channels, augmentation: Augmentation,
                      crop_size: int, flow_backend: str) -> dict:
    """The paper's steps in order on one raw source example; returns the example with every intermediate
    (`frames`, `occluder`, `occluded`, `keypoints_visible`, boxes `box_centre`/`box_size`) and the network `inputs`."""
    s = _step_seeds(seed, index, 4)
    ex = dict(raw)
    if augmentation.static_background:
        ex = composite.freeze_background(ex, s[0])
    ex = camera_motion.follow_camera(ex, s[0], track=augmentation.track_camera)
    ex = occlusion.slic_occluder(ex, s[1], enabled=augmentation.slic_occluders)
    ex = composite.composite(ex, s[1])
    # App. A's runs are "up to 15 frames long" in 31-frame clips; shorter clips (Table 3) keep at least half their
    # frames in view.
    num_frames = raw["joints2d"].shape[0]
    max_run = occlusion.MAX_TOTAL_OCCLUSION_FRAMES if num_frames is None else min(
        occlusion.MAX_TOTAL_OCCLUSION_FRAMES, num_frames // 2)
    ex = occlusion.total_occlusion(ex, s[2], probability=augmentation.total_occlusion_probability,
                                   max_frames=max_run)
    ex = keypoints.keypoint_visibility(ex, s[3], leg_unhide_probability=augmentation.leg_unhide_probability,
                                       flip_probability=augmentation.flip_probability)
    ex["in_frame"] = _in_frame(ex["joints14_2d"])
    centre, size, ok = crops.hmr_boxes(ex["joints14_2d"], ex["in_frame"])
    ex["box_centre"], ex["box_size"] = crops.fill_missing_boxes(centre, size, ok)
    ex["inputs"] = network_inputs(ex["frames"], ex["box_centre"], ex["box_size"],
                                  ex["joints14_2d"][:, :keypoints.NUM_HEATMAPS], ex["keypoints_visible"],
                                  ex["occluded"], channels, crop_size, flow_backend)
    return ex


def synthetic_example(raw: dict, index: tf.Tensor, **options) -> tuple[dict, dict]:
    """One raw source example -> (features, labels) of the batch contract."""
    ex = process_synthetic(raw, index, **options)
    crop_size = options["crop_size"]
    current, future = crops.keypoints_in_pair_boxes(ex["joints14_2d"], ex["box_centre"], ex["box_size"], crop_size)
    valid = tf.cast(ex["in_frame"], tf.float32)
    labels = {
        "joints3d_current": ex["joints14_cam"][:-1], "joints3d_future": ex["joints14_cam"][1:],
        "smpl_joints3d_current": ex["joints3d_cam"][:-1], "smpl_joints3d_future": ex["joints3d_cam"][1:],
        "keypoints2d_current": geometry.crop_pixels_to_normalized(current, crop_size),
        "keypoints2d_future": geometry.crop_pixels_to_normalized(future, crop_size),
        "keypoints2d_valid_current": valid[:-1], "keypoints2d_valid_future": valid[1:],
        "pose_current": ex["pose_cam"][:-1], "pose_future": ex["pose_cam"][1:], "betas": ex["betas"],
        "occluded": ex["occluded"], "domain": tf.constant(0, tf.int32),
        "occluded_by_slic": tf.cast(ex["occluded_by_slic"], tf.float32),
        "index": tf.cast(index, tf.int64),  # the example's position in the stream, for resuming
    }
    return {"inputs": ex["inputs"]}, labels


@gin.configurable
def make_dataset(surreal_root, background_root, split: str = "train", num_frames: int = NUM_FRAMES,
                 batch_size: int = BATCH_SIZE, crop_size: int = crops.CROP_SIZE, seed: int = 0,
                 channels: Channels | None = None, augmentation: Augmentation | None = None,
                 flow_backend: str = "dis", body_model_path=None, start_index: int = 0,
                 num_examples: int | None = None, bad_samples: BadSamples | None = None,
                 drop_remainder: bool = True, num_shards: int = 1, shard_index: int = 0) -> tf.data.Dataset:
    """The training dataset of (features, labels) batches (paper §3.1, App. A and B).

    Example i (counted from `start_index`, so a resumed run continues where it stopped) uses its own seed derived from
    (`seed`, i). `num_examples=None` streams forever. Bad samples are skipped and counted in `bad_samples`.
    Shard `shard_index` of `num_shards` (one per worker of a multi-worker run) takes examples start_index +
    shard_index, + num_shards, ...: with `batch_size` = global batch / num_shards, the shards' step-s batches together
    are the single-process step-s batch, and each worker decodes only its own examples (tf.distribute's DATA
    auto-sharding would have every worker decode every example and drop the others').
    """
    channels = channels or Channels()
    augmentation = augmentation or Augmentation()
    source = SyntheticSource(surreal_root, background_root, split, num_frames, seed, body_model_path, augmentation,
                             bad_samples)
    if not 0 <= shard_index < num_shards:
        raise ValueError(f"make_dataset: shard_index {shard_index} — expected 0 <= shard_index < num_shards "
                         f"({num_shards})")
    stop = None if num_examples is None else start_index + num_examples
    indices = tf.data.Dataset.range(start_index + shard_index, stop if stop is not None else np.iinfo(np.int64).max,
                                    num_shards)
    ds = indices.map(lambda i: (i, _python_source(source, i)), num_parallel_calls=tf.data.AUTOTUNE,
                     deterministic=True)
    ds = ds.filter(lambda i, raw: raw["ok"])
    ds = ds.map(lambda i, raw: synthetic_example(raw, i, seed=seed, channels=channels, augmentation=augmentation,
                                                 crop_size=crop_size, flow_backend=flow_backend),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    ds = ds.prefetch(tf.data.AUTOTUNE)
    ds.bad_samples = source.bad_samples  # the caller reports what was skipped
    return ds


# --------------------------------------------------------------------------------------------------------------------
# The target-domain branch: 3DPW-format sequences (real 3DPW, or the simulator's shifted-domain set).

# COCO-18 (3DPW's `poses2d`) has 13 of the 14 evaluation joints; head top is not among OpenPose's keypoints.
_COCO_TO_LSP = joint_sets.indices(joint_sets.COCO_18, joint_sets.LSP_14)


def coco_to_lsp_keypoints(keypoints_coco: np.ndarray) -> np.ndarray:
    """[..., 18, 3] COCO-18 (x, y, confidence) -> [..., 14, 3] in LSP-14 order; head top gets confidence 0."""
    return joint_sets.convert(np.asarray(keypoints_coco, np.float32), joint_sets.COCO_18, joint_sets.LSP_14)


def window_starts(num_frames_track: int, num_frames: int, mode: str, rng: np.random.Generator | None = None,
                  count: int = 1) -> list[int]:
    """Window starts over a track of `num_frames_track` frames.

    "cover": consecutive windows from frame 0, the last one moved back to end at the track's last frame, so every frame
    is in a window (tracks shorter than a window get one window, padded); "random": `count` random starts.
    """
    last = max(num_frames_track - num_frames, 0)
    if mode == "cover":
        starts = list(range(0, last + 1, num_frames))
        if starts[-1] != last:
            starts.append(last)
        return starts
    if mode == "random":
        return [int(s) for s in rng.integers(0, last + 1, size=count)]
    raise ValueError(f"window mode {mode!r}: expected 'cover' or 'random'")


def target_windows(tracks, num_frames: int, mode: str = "cover", seed: int = 0) -> dict[str, np.ndarray]:
    """Every window of every track as arrays for `tf.data.Dataset.from_tensor_slices`.

    Frames past a track's end repeat its last frame and are marked `padding`. `frame_index` is the track frame each
    window frame shows.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for track_index, track in enumerate(tracks):
        n = len(track.image_paths)
        for start in window_starts(n, num_frames, mode, rng):
            index = np.minimum(np.arange(start, start + num_frames), n - 1)
            rows.append((track_index, start, index, np.arange(start, start + num_frames) >= n, track))
    if not rows:
        raise ValueError("no 3DPW-format tracks to make windows from")
    return {
        "track": np.array([r[0] for r in rows], np.int32),
        "start": np.array([r[1] for r in rows], np.int32),
        "frame_index": np.stack([r[2] for r in rows]).astype(np.int32),
        "padding": np.stack([r[3] for r in rows]),
        "image_paths": np.stack([np.array(r[4].image_paths, dtype=object)[r[2]] for r in rows]).astype(bytes),
        "keypoints": np.stack([coco_to_lsp_keypoints(r[4].keypoints2d[r[2]]) for r in rows]),
    }


def target_example(window: dict, *, channels: Channels, crop_size: int, flow_backend: str,
                   confidence: float = KEYPOINT_CONFIDENCE, min_keypoints: int = MIN_KEYPOINTS) -> dict:
    """One window of a 3DPW-format track -> features (App. A's evaluation rules), TF ops only.

    Keypoints above `confidence` are visible and drawn as heatmaps; frames with fewer than `min_keypoints` visible
    keypoints (and padding frames) become total occlusions, which the evaluation does not score.
    """
    frames = tf.map_fn(lambda p: tf.io.decode_jpeg(tf.io.read_file(p), channels=3), window["image_paths"],
                       fn_output_signature=tf.TensorSpec([None, None, 3], tf.uint8))
    kp = window["keypoints"]
    visible = kp[..., 2] > confidence  # [T, 14]
    occluded = (tf.reduce_sum(tf.cast(visible, tf.int32), axis=1) < min_keypoints) | window["padding"]
    centre, size, ok = crops.hmr_boxes(kp[..., :2], visible)
    any_box = tf.reduce_any(ok)
    hw = tf.cast(tf.shape(frames)[1:3], tf.float32)
    centre, size = tf.cond(any_box, lambda: crops.fill_missing_boxes(centre, size, ok),
                           lambda: (tf.broadcast_to(hw[::-1] / 2.0, tf.shape(centre)),
                                    tf.broadcast_to(tf.reduce_min(hw), tf.shape(size))))
    occluded_f = tf.cast(occluded, tf.float32)
    inputs = network_inputs(frames, centre, size, kp[:, :keypoints.NUM_HEATMAPS, :2],
                            visible[:, :keypoints.NUM_HEATMAPS] & ~occluded[:, None], occluded_f, channels,
                            crop_size, flow_backend)
    return {"inputs": inputs, "occluded": occluded_f, "box_centre": centre, "box_size": size,
            "track": window["track"], "start": window["start"], "frame_index": window["frame_index"],
            "padding": window["padding"]}


@gin.configurable
def make_target_dataset(threedpw_root, split: str = "test", num_frames: int = NUM_FRAMES, batch_size: int = 1,
                        crop_size: int = crops.CROP_SIZE, channels: Channels | None = None,
                        flow_backend: str = "dis", windows: str = "cover", seed: int = 0,
                        repeat: bool = False, tracks=None) -> tf.data.Dataset:
    """3DPW-format windows as `features` dicts (App. A): for evaluation (`windows="cover"`, in order, every frame)
    and for DANN's unlabeled target domain (`windows="random"`, `repeat=True`). `ds.tracks` holds the tracks."""
    channels = channels or Channels()
    tracks = tracks if tracks is not None else threedpw.load_split(threedpw_root, split)
    table = target_windows(tracks, num_frames, windows, seed)
    ds = tf.data.Dataset.from_tensor_slices(table)
    if repeat:
        ds = ds.shuffle(len(table["track"]), seed=seed, reshuffle_each_iteration=True).repeat()
    ds = ds.map(lambda w: target_example(w, channels=channels, crop_size=crop_size, flow_backend=flow_backend),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(batch_size, drop_remainder=repeat).prefetch(tf.data.AUTOTUNE)
    ds.tracks = tracks
    return ds

