"""The one place the tf.data graph is assembled (paper §3.1, App. A, App. B).

Training (`make_dataset`):

    source: FileSource (Python decoders) | TFDSSource (TFDS records, TF ops)          mhr_tf.data.sources
      ─► raw example: T person frames + T background-window frames, the drawn start and crop
      ─► crop the background ─► camera shift ─► [static background] ─► follow_camera ─► person-in-frame rule
      ─► rejection accounting (reasons counted, the bad-sample budget) ─► filter
      ─► slic_occluder ─► composite ─► total_occlusion ─► keypoint_visibility ─► boxes ─► network_inputs ─► labels
      ─► batch ─► prefetch [─► tf.data service]

Test (`make_target_dataset` for evaluation and prediction, `make_domain_dataset` for DANN's target domain):

    3DPW-format tracks ─► windows ─► decode JPEGs ─► boxes from detections ─► network_inputs

Every step after the source is TF ops. Boxes (`crops.person_boxes`), heatmaps and flow (`network_inputs`) are the
same functions in both branches with the same `Preprocessing`, so a test crop is made exactly as a training crop.
With the flow in the model (`FlowSettings.placement` "model") `network_inputs` sends the pair crops in its place and
the network's first layer computes it (`mhr_tf.model.flow_input`): no per-example step left here is expensive
(`mhr_tf.bench.pipeline` times each).
Every random choice of example i comes from the key (seed, i) (`sources.example_key`): the same seed gives the same
batches bit for bit, whatever the parallelism.
"""
from __future__ import annotations

import dataclasses
import functools

import gin
import numpy as np
import tensorflow as tf

from mhr_tf import geometry
from mhr_tf.body import joints as joint_sets
from mhr_tf.data import camera_motion, composite, crops, flow, keypoints, occlusion, sources
from mhr_tf.data.preprocessing import RGB_HALF_RANGE, ContractError, Preprocessing
from mhr_tf.data.surreal import DEPTH_BACKGROUND

IMAGE_HW = sources.IMAGE_HW
# Offsets a stream's example indices so streams (tf.data service workers) never share a key.
STREAM_STRIDE = 2 ** 32
JOB_NAME = "mhr_tf_train"


@gin.configurable
@dataclasses.dataclass(frozen=True)
class BadSampleBudget:
    """When a run stops instead of skipping: more than `max_fraction` of the last `window` samples bad, or
    `max_consecutive` bad samples in a row (e.g. every file broken). The pipeline then raises an error whose message
    starts with `MESSAGE` and holds the counts per reason."""
    max_fraction: float = 0.5
    window: int = 500
    max_consecutive: int = 200

    MESSAGE = "bad-sample budget exceeded"


# --------------------------------------------------------------------------------------------------------------------
# The training steps (TF ops only)

def _step_keys(key: tf.Tensor, count: int) -> tf.Tensor:
    return tf.random.experimental.stateless_split(tf.random.experimental.stateless_fold_in(key, 3), count)


def in_frame(points: tf.Tensor) -> tf.Tensor:
    """`[..., K]` bool: points `[..., K, 2]` inside the 240x320 composite."""
    h, w = IMAGE_HW
    return (points[..., 0] >= 0) & (points[..., 0] < w) & (points[..., 1] >= 0) & (points[..., 1] < h)


def place_person(raw: dict, pre: Preprocessing) -> dict:
    """Background crop, camera motion and the person following it (App. A), and the rule that rejects a clip whose
    person leaves the frame (fewer than 2 of the 14 joints inside some frame): `status` becomes STATUS_OFF_FRAME."""
    ex = dict(raw)
    top, left = raw["crop"][0], raw["crop"][1]
    h, w = IMAGE_HW
    ex["background"] = tf.ensure_shape(raw["background"][:, top:top + h, left:left + w], [None, h, w, 3])
    ex["superpixels"] = tf.ensure_shape(raw["superpixels"][:, top:top + h, left:left + w], [None, h, w])
    # App. A tracks relative to the clip's centre frame.
    ex["camera_shift"] = camera_motion.integrate_relative_to_centre_tf(raw["median_flow"])
    rules = pre.augmentation
    if rules.static_background:
        ex = composite.freeze_background(ex)
    if rules.track_camera and not rules.static_background:
        ex = follow_camera(ex)
    inside = tf.reduce_sum(tf.cast(in_frame(ex["joints14_2d"]), tf.int32), axis=1)
    off_frame = tf.logical_not(tf.reduce_all(inside >= 2))
    ex["status"] = tf.where((raw["status"] == sources.STATUS_OK) & off_frame, sources.STATUS_OFF_FRAME,
                            raw["status"])
    return ex


def follow_camera(example: dict) -> dict:
    """`camera_motion.follow_camera` (the person's pixels, segmentation, depth and 2D joints moved by the rounded
    camera shift), its three whole-pixel translations each one XLA gather over every frame (`translate_frames`)."""
    shift = tf.round(tf.convert_to_tensor(example["camera_shift"], tf.float32))
    out = dict(example)
    out["person_rgb"] = translate_frames(example["person_rgb"], shift, 0)
    out["segm"] = translate_frames(example["segm"], shift, 0)
    # Depth outside the rendered person is SURREAL's background value, so uncovered pixels get it too.
    out["depth"] = translate_frames(example["depth"], shift, DEPTH_BACKGROUND)
    for key in ("joints2d", "joints14_2d"):
        out[key] = tf.convert_to_tensor(example[key], tf.float32) + shift[:, None, :]
    return out


@functools.partial(tf.function, jit_compile=True, autograph=False)
def translate_frames(images: tf.Tensor, shift: tf.Tensor, fill_value) -> tf.Tensor:
    """`camera_motion.translate_frames` for every frame at once: images `[T, H, W, ...]` moved by `shift [T, 2]`
    (x, y) whole pixels (rounded), uncovered pixels `fill_value`. Each target pixel reads its source pixel (one
    gather per axis, fused with the fill by XLA): the same values as the loop over frames at ~half its CPU time."""
    images = tf.convert_to_tensor(images)
    height, width = images.shape[1], images.shape[2]
    shift = tf.cast(tf.round(tf.convert_to_tensor(shift, tf.float32)), tf.int32)
    rows = tf.range(height)[None, :] - shift[:, 1:2]  # [T, H]: the source row of each target row
    cols = tf.range(width)[None, :] - shift[:, 0:1]   # [T, W]
    moved = tf.gather(images, tf.clip_by_value(rows, 0, height - 1), axis=1, batch_dims=1)
    moved = tf.gather(moved, tf.clip_by_value(cols, 0, width - 1), axis=2, batch_dims=1)
    covered = ((rows >= 0) & (rows < height))[:, :, None] & ((cols >= 0) & (cols < width))[:, None, :]
    covered = tf.reshape(covered, tf.concat([tf.shape(covered), tf.ones([images.shape.rank - 3], tf.int32)], 0))
    return tf.where(covered, moved, tf.cast(fill_value, images.dtype))


def occlude_and_crop(ex: dict, key: tf.Tensor, pre: Preprocessing) -> dict:
    """The rest of App. A and B on a placed example: SLIC occluder, composite, total occlusion, keypoint
    visibility, the boxes, and the network inputs."""
    rules = pre.augmentation
    keys = _step_keys(key, 3)
    ex = occlusion.slic_occluder(ex, keys[0], enabled=rules.slic_occluders,
                                 min_visible_joints=rules.min_visible_joints)
    ex = dict(ex, frames=composite_frames(ex["segm"], ex["occluder"], ex["person_rgb"], ex["background"]))
    ex = occlusion.total_occlusion(ex, keys[1], probability=rules.total_occlusion_probability,
                                   max_frames=pre.max_total_occlusion)
    ex = keypoints.keypoint_visibility(ex, keys[2], rules)
    ex["in_frame"] = in_frame(ex["joints14_2d"])
    # Training frames the person from the ground-truth joints inside the frame (a detector sees those, occluded or
    # not), by the contract's rule.
    ex["box_centre"], ex["box_size"] = crops.person_boxes(ex["joints14_2d"], ex["in_frame"], pre.box, IMAGE_HW)
    ex["inputs"] = network_inputs(ex["frames"], ex["box_centre"], ex["box_size"],
                                  ex["joints14_2d"][:, :keypoints.NUM_HEATMAPS], ex["keypoints_visible"],
                                  ex["occluded"], pre)
    return ex


@functools.partial(tf.function, jit_compile=True, autograph=False)
def composite_frames(segm: tf.Tensor, occluder: tf.Tensor, person_rgb: tf.Tensor, background: tf.Tensor
                      ) -> tf.Tensor:
    """`composite.composite`'s frames, compiled by XLA: TF's select broadcasting the [T, H, W] mask over RGB took
    ~4x the CPU time (the same values: a select)."""
    return composite.composite({"segm": segm, "occluder": occluder, "person_rgb": person_rgb,
                                "background": background})["frames"]


def network_inputs(frames: tf.Tensor, centre: tf.Tensor, size: tf.Tensor, points: tf.Tensor, visible: tf.Tensor,
                   occluded: tf.Tensor, pre: Preprocessing) -> tf.Tensor:
    """`[T-1, S, S, W]` float32: what the pipeline sends for one clip, the contract's wire groups in order
    (`pre.wire_names`, W = `pre.wire_channels`).

    With flow in the pipeline (placement "pipeline", the default) these are the network inputs, channel groups in
    the batch contract's order (rgb, flow, heatmaps, occlusion, those the contract uses). With flow in the model
    (placement "model") the pair's two RGB crops (group "pairs", `preprocessing.PAIRS_GROUP`) replace the rgb and
    flow groups; the model's first layer (`mhr_tf.model.flow_input`) makes the network inputs from them.

    frames [T, H, W, 3] uint8; boxes centre [T, 2], size [T]; points [T, 12, 2] heatmap keypoints (frame pixels) with
    visible [T, 12] bool; occluded [T] float32 (1 on totally occluded frames: every channel 0, indicator 1).
    """
    channels, s = pre.channels, pre.crop_size
    occluded = tf.convert_to_tensor(occluded, tf.float32)
    if pre.flow_in_model:
        pixels, sent, flow3 = crops.paired_crops(frames, centre, size, s), 2, None
    else:
        pixels, sent, flow3 = None, 0, None
        if channels.use_flow:
            pixels = crops.paired_crops(frames, centre, size, s)
            flow3 = flow.flow_channels(flow.compute_flow(pixels, pre.flow), pre.flow.divisor)
        elif channels.use_rgb:
            pixels = crops.current_crops(frames, centre, size, s)[:, None]  # [P, 1, S, S, 3]
        sent = int(channels.use_rgb)
    profiles = None
    if channels.use_keypoints:
        current, _ = crops.keypoints_in_pair_boxes(points, centre, size, s)
        profiles = keypoints.gaussian_profiles(current, visible[:-1], s, pre.sigma_px)
    inputs = write_inputs(pixels if sent else None, sent, flow3, profiles, occluded, s)
    return tf.ensure_shape(inputs, [None, s, s, pre.wire_channels])


@functools.partial(tf.function, jit_compile=True, autograph=False)
def write_inputs(pixels, sent: int, flow3, profiles, occluded, crop_size: int):
    """The groups of `network_inputs`, scaled, zeroed on totally occluded frames and interleaved along the channels:
    `pixels [P, n, S, S, 3]` crops 0..255 whose first `sent` frames are sent (rgb: 1, pairs: 2), `flow3 [P, S, S, 3]`,
    heatmap `profiles` (gx, gy), `occluded [T]` -> `[P, S, S, W]`, S = `crop_size`.

    One XLA fusion writes every value once, channel-major then transposed: XLA's concatenate along the (minor) channel
    axis costs ~4x as much, TF's broadcast multiplies and concat ~4.5x (the values agree to float rounding)."""
    def channels_first(x):  # [P, S, S, c] -> [P, c, S, S]
        return tf.transpose(x, [0, 3, 1, 2])

    parts = []
    if pixels is not None:
        parts += [channels_first(pixels[:, k] / RGB_HALF_RANGE - 1.0) for k in range(sent)]
    if flow3 is not None:
        parts.append(channels_first(flow3))
    if profiles is not None:
        gx, gy = profiles  # [P, S, K]: heatmap k is gy[:, :, k] x gx[:, :, k]
        parts.append(tf.transpose(gy, [0, 2, 1])[:, :, :, None] * tf.transpose(gx, [0, 2, 1])[:, :, None, :])
    shown = 1.0 - occluded[:-1, None, None, None]
    indicator = tf.broadcast_to(occluded[:-1, None, None, None], [tf.shape(occluded)[0] - 1, 1, crop_size, crop_size])
    return tf.transpose(tf.concat([p * shown for p in parts] + [indicator], axis=1), [0, 2, 3, 1])


def labels_of(ex: dict, pre: Preprocessing) -> dict:
    """The batch contract's labels of one finished example (pair p: its current frame p and future frame p + 1)."""
    current, future = crops.keypoints_in_pair_boxes(ex["joints14_2d"], ex["box_centre"], ex["box_size"],
                                                    pre.crop_size)
    valid = tf.cast(ex["in_frame"], tf.float32)
    return {
        "joints3d_current": ex["joints14_cam"][:-1], "joints3d_future": ex["joints14_cam"][1:],
        "smpl_joints3d_current": ex["joints3d_cam"][:-1], "smpl_joints3d_future": ex["joints3d_cam"][1:],
        "keypoints2d_current": geometry.crop_pixels_to_normalized(current, pre.crop_size),
        "keypoints2d_future": geometry.crop_pixels_to_normalized(future, pre.crop_size),
        "keypoints2d_valid_current": valid[:-1], "keypoints2d_valid_future": valid[1:],
        "pose_current": ex["pose_cam"][:-1], "pose_future": ex["pose_cam"][1:], "betas": ex["betas"],
        "occluded": ex["occluded"], "domain": tf.constant(0, tf.int32),
        "occluded_by_slic": tf.cast(ex["occluded_by_slic"], tf.float32),
    }


META = ("clip", "start", "video", "video_start", "crop")  # what `with_meta` adds to the labels


def process(raw: dict, key: tf.Tensor, pre: Preprocessing) -> dict:
    """Every training step on one raw example (for inspection and tests; `make_dataset` runs the same two halves
    with the rejection accounting between them)."""
    return occlude_and_crop(place_person(raw, pre), key, pre)


# --------------------------------------------------------------------------------------------------------------------
# Rejection accounting

def _account(ds: tf.data.Dataset, budget: BadSampleBudget) -> tf.data.Dataset:
    """Counts the rejected examples by reason (`labels["rejected"]` [len(REASONS)] int64: the counts up to each kept
    example) and stops the stream when the budget is exceeded."""
    reasons = len(sources.REASONS)
    state = (tf.zeros([reasons], tf.int64), tf.constant(0, tf.int64), tf.zeros([budget.window], tf.bool),
             tf.constant(0, tf.int64))

    def step(state, element):
        counts, consecutive, recent, seen = state
        stream, index, ex = element
        bad = ex["status"] != sources.STATUS_OK
        counts += tf.one_hot(ex["status"] - 1, reasons, dtype=tf.int64)  # status 0 is all zeros
        consecutive = tf.where(bad, consecutive + 1, 0)
        recent = tf.tensor_scatter_nd_update(recent, [[seen % budget.window]], [bad])
        seen += 1
        fraction = tf.reduce_mean(tf.cast(recent, tf.float32))
        over = (consecutive > budget.max_consecutive) | ((seen >= budget.window) & (fraction > budget.max_fraction))
        check = tf.debugging.Assert(tf.logical_not(over), [
            f"{BadSampleBudget.MESSAGE}: {consecutive} bad samples in a row (limit {budget.max_consecutive}) or a "
            f"bad fraction over the last {budget.window} of {budget.max_fraction}; bad so far by reason "
            f"{list(sources.REASONS)}:", counts, "consecutive:", consecutive, "recent fraction:", fraction],
            summarize=reasons)
        with tf.control_dependencies([check]):
            ex = dict(ex, rejected=tf.identity(counts))
        return (counts, consecutive, recent, seen), (stream, index, ex)

    return ds.scan(state, step)


# --------------------------------------------------------------------------------------------------------------------
# The training dataset

def make_dataset(source, pre: Preprocessing, batch_size: int, seed: int = 0, *, start_index: int = 0,
                 num_examples: int | None = None, num_shards: int = 1, shard_index: int = 0,
                 data_service: str | None = None, job_name: str = JOB_NAME, budget: BadSampleBudget | None = None,
                 with_meta: bool = False, drop_remainder: bool = True,
                 data_service_compression: str | None = "AUTO") -> tf.data.Dataset:
    """The training dataset of (features, labels) batches from `source` under the contract `pre`.

    FileSource: example i (from `start_index`, so a resumed run continues where it stopped; `num_examples=None`
    streams forever) has the key (seed, i). Shard `shard_index` of `num_shards` (one per worker of a multi-worker run)
    takes examples start_index + shard_index, + num_shards, ...: with `batch_size` = global batch / num_shards, the
    shards' step-s batches together are the single-process step-s batch.
    TFDSSource: streams of shuffled records; stream 0 locally (shard k: stream k), and on tf.data service
    (`data_service="grpc://HOST:PORT"`, "parallel_epochs", job `job_name`) each worker draws a random stream key when
    it starts, so workers never produce the same examples. Not resumable at a data position.
    `with_meta` adds to the labels which clip, start, video and crop each example took.
    `data_service_compression`: how the workers compress the batches they send ("AUTO": snappy, TF's default; None:
    not at all, which saves the workers that CPU time where the network is not the limit).
    """
    budget = budget or BadSampleBudget()
    if source.num_frames != pre.num_frames:
        raise ContractError(f"make_dataset: the source reads {source.num_frames}-frame clips, the contract asks for "
                            f"{pre.num_frames}")
    if not 0 <= shard_index < num_shards:
        raise ValueError(f"make_dataset: shard_index {shard_index} — expected 0 <= shard_index < num_shards "
                         f"({num_shards})")
    if data_service is not None:
        python = [what for what, is_python in (("the source (Python decoders)", source.python),
                                               (f"the flow backend {pre.flow.backend!r}",
                                                pre.channels.use_flow and pre.flow.python)) if is_python]
        if python:
            raise ContractError(f"tf.data service runs TF ops only, but {' and '.join(python)} is a Python step; use "
                                f"the TFDS source and flow 'tf_tvl1' or 'saved_model:<dir>'")
    if source.python:
        stop = np.iinfo(np.int64).max if num_examples is None else start_index + num_examples
        indices = tf.data.Dataset.range(start_index + shard_index, stop, num_shards)
        ds = indices.map(lambda i: (tf.constant(0, tf.int64), i, source.raw(sources.example_key(seed, i))),
                         num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    else:
        ds = _stream_key(data_service is not None, shard_index).flat_map(
            lambda stream: _tfds_stream(source, seed, stream))
        if num_examples is not None:
            ds = ds.take(num_examples)
    ds = ds.map(lambda stream, i, raw: (stream, i, place_person(raw, pre)), num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=True)
    ds = _account(ds, budget).filter(lambda stream, i, ex: ex["status"] == sources.STATUS_OK)

    def finish(stream, i, ex):
        ex = occlude_and_crop(ex, sources.example_key(seed, i + stream * STREAM_STRIDE), pre)
        labels = labels_of(ex, pre)
        labels.update(index=i, stream=stream, rejected=ex["rejected"])
        if with_meta:
            labels.update({name: ex[name] for name in META})
        return {"inputs": ex["inputs"]}, labels

    ds = ds.map(finish, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)
    if data_service is not None:
        ds = ds.apply(tf.data.experimental.service.distribute(processing_mode="parallel_epochs",
                                                              service=data_service, job_name=job_name,
                                                              compression=data_service_compression))
    return ds


def _tfds_stream(source, seed: int, stream: tf.Tensor) -> tf.data.Dataset:
    """(stream, index, raw) of one stream of record pairs. The shuffle seeds are explicit (seed + stream); TF compares
    a seed pair with (0, 0) in Python, which fails on a tensor seed when the global seed is 0, so this function's
    graph drops the global seed."""
    tf.compat.v1.get_default_graph().seed = None
    pairs = source.pairs(tf.constant(seed, tf.int64) + stream)
    return pairs.enumerate().map(
        lambda i, pair: (stream, i, source.raw(sources.example_key(seed, i + stream * STREAM_STRIDE), pair)),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _stream_key(distributed: bool, shard_index: int) -> tf.data.Dataset:
    """One int64 element: the shard's index locally; distributed, a random key drawn on the worker when its iterator
    starts (op seeds 0/0 = seeded from the OS, whatever the global seed: every worker gets its own)."""
    if not distributed:
        return tf.data.Dataset.from_tensors(tf.constant(shard_index, tf.int64))
    draw = lambda _: tf.raw_ops.RandomUniformInt(  # noqa: E731
        shape=tf.constant([], tf.int32), minval=tf.constant(1, tf.int64), maxval=tf.constant(2 ** 31 - 1, tf.int64),
        seed=0, seed2=0)
    return tf.data.Dataset.from_tensors(0).map(draw)


# --------------------------------------------------------------------------------------------------------------------
# The test branch: 3DPW-format tracks (real 3DPW, the simulator's evaluation sets, a user's video)

def coco_to_lsp_keypoints(keypoints_coco: np.ndarray) -> np.ndarray:
    """[..., 18, 3] COCO-18 (x, y, confidence) -> [..., 14, 3] in LSP-14 order; head top gets confidence 0 (OpenPose
    has none)."""
    return joint_sets.convert(np.asarray(keypoints_coco, np.float32), joint_sets.COCO_18, joint_sets.LSP_14)


def window_starts(num_frames_track: int, num_frames: int, stride: int | None = None) -> list[int]:
    """Starts of the evaluation windows over a track: every `stride` frames (default T: side by side) from 0, and one
    ending on the track's last frame; a track shorter than a window gets one window, padded."""
    stride = stride or num_frames
    last = max(num_frames_track - num_frames, 0)
    starts = list(range(0, last + 1, stride))
    if starts[-1] != last:
        starts.append(last)
    return starts


def target_windows(tracks, num_frames: int, stride: int | None = None) -> dict[str, np.ndarray]:
    """Every window of every track as arrays for `tf.data.Dataset.from_tensor_slices`. Frames past a track's end
    repeat its last frame and are marked `padding`; `frame_index` is the track frame each window frame shows."""
    rows = []
    for track_index, track in enumerate(tracks):
        n = len(track.image_paths)
        for start in window_starts(n, num_frames, stride):
            rows.append((track_index, start, np.minimum(np.arange(start, start + num_frames), n - 1),
                         np.arange(start, start + num_frames) >= n, track))
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


def test_inputs(frames: tf.Tensor, keypoints14: tf.Tensor, padding: tf.Tensor, pre: Preprocessing) -> dict:
    """One window's frames `[T, H, W, 3]` and detections `[T, 14, 3]` (x, y, confidence; LSP-14) -> App. A's test
    inputs: keypoints above the contract's confidence are visible; frames with fewer than `min_keypoints` of them
    (and padding frames) are total occlusions, which the evaluation does not score."""
    visible = keypoints14[..., 2] > pre.confidence  # [T, 14]
    occluded = (tf.reduce_sum(tf.cast(visible, tf.int32), axis=1) < pre.min_keypoints) | padding
    centre, size = crops.person_boxes(keypoints14[..., :2], visible, pre.box, tf.shape(frames)[1:3])
    occluded_f = tf.cast(occluded, tf.float32)
    inputs = network_inputs(frames, centre, size, keypoints14[:, :keypoints.NUM_HEATMAPS, :2],
                            visible[:, :keypoints.NUM_HEATMAPS] & ~occluded[:, None], occluded_f, pre)
    return {"inputs": inputs, "occluded": occluded_f, "box_centre": centre, "box_size": size}


def _decode_frames(paths: tf.Tensor) -> tf.Tensor:
    """`[T, H, W, 3]` uint8 RGB frames from image files (JPEG as 3DPW's imageFiles, or PNG/BMP/GIF)."""
    return tf.map_fn(lambda p: tf.io.decode_image(tf.io.read_file(p), channels=3, expand_animations=False), paths,
                     fn_output_signature=tf.TensorSpec([None, None, 3], tf.uint8))


def target_example(window: dict, pre: Preprocessing) -> dict:
    """One window of a 3DPW-format track -> features and where they came from, TF ops only."""
    out = test_inputs(_decode_frames(window["image_paths"]), window["keypoints"], window["padding"], pre)
    out.update({k: window[k] for k in ("track", "start", "frame_index", "padding")})
    return out


def make_target_dataset(tracks, pre: Preprocessing, batch_size: int = 1, stride: int | None = None
                        ) -> tf.data.Dataset:
    """Every window of `tracks` (objects with `image_paths` and COCO-18 `keypoints2d`, like `threedpw.PersonTrack`),
    in order, as `features` dicts (App. A's test inputs) for evaluation and prediction."""
    ds = tf.data.Dataset.from_tensor_slices(target_windows(tracks, pre.num_frames, stride))
    ds = ds.map(lambda w: target_example(w, pre), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def make_domain_dataset(tracks, pre: Preprocessing, batch_size: int, seed: int = 0,
                        start_index: int = 0) -> tf.data.Dataset:
    """DANN's unlabeled target domain (App. B): forever, windows of `tracks` drawn afresh for every example from the
    key (seed, i): a uniform track, then a uniform start in it. Features only."""
    if not tracks:
        raise ValueError("make_domain_dataset: no target-domain tracks")
    t = pre.num_frames
    lengths = np.array([len(track.image_paths) for track in tracks], np.int32)
    longest = int(max(lengths.max(), t))
    paths = np.array([[p.encode() for p in track.image_paths] + [b""] * (longest - len(track.image_paths))
                      for track in tracks], dtype=object).astype(bytes)
    detections = np.stack([np.pad(coco_to_lsp_keypoints(track.keypoints2d),
                                  ((0, longest - len(track.image_paths)), (0, 0), (0, 0))) for track in tracks])
    paths, detections, lengths_tf = tf.constant(paths), tf.constant(detections), tf.constant(lengths)

    def window(i):
        keys = tf.random.experimental.stateless_split(sources.example_key(seed + 7919, i), 2)
        track = sources.uniform_int(keys[0], len(tracks))
        n = lengths_tf[track]
        start = sources.uniform_int(keys[1], tf.maximum(n - t, 0) + 1)
        index = tf.minimum(start + tf.range(t), n - 1)
        frames = _decode_frames(tf.gather(paths[track], index))
        return {"inputs": test_inputs(frames, tf.gather(detections[track], index), start + tf.range(t) >= n,
                                      pre)["inputs"]}

    ds = tf.data.Dataset.range(start_index, np.iinfo(np.int64).max).map(
        window, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
