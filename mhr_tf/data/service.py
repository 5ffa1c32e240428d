"""The online pipeline as TF ops only, read from the TFDS builders, run locally or on tf.data service (issue 9 §2).

    surreal_clips (shuffled, repeated) ─┐
                                        zip ─► enumerate ─► random sub-window of T frames (both sources) ─► raw fields
    background_clips (shuffled, repeated) ─┘   (pipeline._source_spec) ─► person-in-frame check ─► the steps of
    pipeline.synthetic_example (follow_camera … heatmaps, labels) ─► batch ─► prefetch [─► tf.data service]

Nothing here is Python at run time (no `tf.numpy_function`: the flow backend must be a TF one, `flow.TF_TVL1` or
`saved_model:<dir>`), so the graph serializes and runs on `tf.data.experimental.service` workers. One flag chooses:
`data_service=None` iterates in this process; `data_service="grpc://HOST:PORT"` sends the same graph to that
dispatcher's workers (`scripts/data_service.py`) in "parallel_epochs" mode, every worker producing its own stream.

Randomness: locally, stream 0, and the seed alone fixes every batch. Distributed, every worker draws a random stream
key when it starts the job (a seed-less stateful op, evaluated on the worker), which offsets the shuffles and every
example's seed: without it, all workers would produce the same examples. Each label dict carries `stream` (the key)
so a consumer can tell the workers' batches apart.
"""
from __future__ import annotations

import json
from pathlib import Path

import gin
import numpy as np
import tensorflow as tf

from mhr_tf.data import camera_motion, crops, flow, pipeline

SURREAL_DATASET = "surreal_clips"
BACKGROUND_DATASET = "background_clips"
SPLIT = "train"
# Examples held by each source's shuffle buffer: a stored example is T frames of decoded-on-read PNG/JPEG, so the
# buffer holds the encoded bytes (~0.2-1 MB per 31-frame example), not decoded frames.
SHUFFLE_BUFFER = 1024
JOB_NAME = "mhr_tf_train"
# Offsets a stream's example indices so streams never share a per-example seed (indices stay below 2**32).
_STREAM_STRIDE = 2 ** 32
_STREAM_KEYS = 2 ** 31 - 1
DEFAULT_FLOW_BACKEND = flow.TF_TVL1


def find_config(data_dir, dataset: str, num_frames: int, config: str | None = None) -> Path:
    """The prepared builder directory `<data_dir>/<dataset>/<config>/<version>` to read windows of `num_frames` from.

    `config` None: the one config built there whose windows are shortest among those of at least `num_frames`
    frames (an error if two such configs tie, e.g. a real and a simulated one: name it then).
    """
    root = Path(data_dir) / dataset
    candidates = []
    for info_path in sorted(root.glob("*/*/dataset_info.json")):
        if config is not None and info_path.parent.parent.name != config:
            continue
        length = _window_length(info_path)
        if length >= num_frames:
            candidates.append((length, info_path.parent))
    if not candidates:
        built = sorted(p.parent.parent.name for p in root.glob("*/*/dataset_info.json"))
        raise FileNotFoundError(f"{root}: no prepared {dataset} config{'' if config is None else ' ' + repr(config)} "
                                f"with windows of >= {num_frames} frames (built there: {built or 'none'}); build one "
                                f"with `python scripts/build_datasets.py {dataset}/<config> --data_dir {data_dir}`")
    shortest = min(length for length, _ in candidates)
    best = [path for length, path in candidates if length == shortest]
    if len(best) > 1:
        raise ValueError(f"{root}: {len(best)} configs hold {shortest}-frame windows "
                         f"({[p.parent.name + '/' + p.name for p in best]}); name one")
    return best[0]


def _window_length(info_path: Path) -> int:
    """T of a prepared config, from its features.json (`frames` is a Video feature of shape [T, H, W, 3])."""
    features = json.loads((info_path.parent / "features.json").read_text())
    try:
        frames = features["featuresDict"]["features"]["frames"]
        return int(frames["video"]["shape"]["dimensions"][0])
    except (KeyError, IndexError, TypeError, ValueError) as error:
        raise ValueError(f"{info_path.parent / 'features.json'}: field 'frames' — expected a Video feature with a "
                         f"[T, H, W, 3] shape ({type(error).__name__}: {error})") from None


def read_source(builder_dir: Path, seed: tf.Tensor, shuffle_buffer: int = SHUFFLE_BUFFER) -> tf.data.Dataset:
    """One prepared TFDS config's training examples, shuffled with `seed` and repeated forever."""
    import tensorflow_datasets as tfds
    builder = tfds.builder_from_directory(str(builder_dir))
    ds = builder.as_dataset(split=SPLIT, shuffle_files=False, read_config=tfds.ReadConfig(
        shuffle_seed=None, add_tfds_id=False, try_autocache=False))
    return ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True).repeat()


def _sub_window(length: tf.Tensor | int, num_frames: int, seed: tf.Tensor) -> tf.Tensor:
    """A uniform start in [0, length - num_frames]."""
    return tf.random.stateless_uniform([], seed, 0, length - num_frames + 1, dtype=tf.int32)


def raw_example(surreal_example: dict, background_example: dict, index: tf.Tensor, seed: int,
                num_frames: int, track_camera: bool = True) -> dict:
    """A stored SURREAL window and background window -> the raw fields of `pipeline._source_spec(num_frames)`, TF ops
    only: a random `num_frames` sub-window of each (drawn from (seed, index)), the camera shift re-integrated about
    the sub-window's centre frame, and `ok` False when the tracked person has fewer than 2 of the 14 joints inside
    some frame (`pipeline.SyntheticSource._load`'s rule)."""
    from mhr_tf.datasets import background_clips, surreal_clips
    person = surreal_clips.source_fields(surreal_example)
    scene = background_clips.source_fields(background_example)
    seeds = tf.random.experimental.stateless_split(
        tf.random.experimental.stateless_fold_in(tf.constant([seed, 0x5e7e], tf.int64), tf.cast(index, tf.int64)), 2)
    start = _sub_window(tf.shape(person["joints2d"])[0], num_frames, seeds[0])
    out = {key: value[start:start + num_frames] for key, value in person.items() if key != "betas"}
    out["betas"] = person["betas"]
    bg_start = _sub_window(tf.shape(scene["background"])[0], num_frames, seeds[1])
    out["background"] = scene["background"][bg_start:bg_start + num_frames]
    out["superpixels"] = scene["superpixels"][bg_start:bg_start + num_frames]
    # App. A tracks about the clip's centre frame: the stored shift is about the stored window's centre.
    median = background_example["median_flow"][bg_start:bg_start + num_frames - 1]
    out["camera_shift"] = camera_motion.integrate_relative_to_centre_tf(median)
    tracked = out["joints14_2d"] + (tf.round(out["camera_shift"])[:, None, :] if track_camera else 0.0)
    inside = tf.reduce_sum(tf.cast(pipeline._in_frame(tracked), tf.int32), axis=1)
    out["ok"] = tf.reduce_all(inside >= 2)
    spec = pipeline._source_spec(num_frames)
    return {key: tf.ensure_shape(tf.cast(out[key], dtype), shape) for key, (dtype, shape) in spec.items()}


def _stream_key(distributed: bool) -> tf.data.Dataset:
    """One int64 element: 0 locally; distributed, a random key drawn on the worker when its iterator starts (op seeds
    0/0 = seeded from the OS, whatever the global seed: every worker gets its own)."""
    if not distributed:
        return tf.data.Dataset.from_tensors(tf.constant(0, tf.int64))
    draw = lambda _: tf.raw_ops.RandomUniformInt(  # noqa: E731
        shape=tf.constant([], tf.int32), minval=tf.constant(1, tf.int64), maxval=tf.constant(_STREAM_KEYS, tf.int64),
        seed=0, seed2=0)
    return tf.data.Dataset.from_tensors(0).map(draw)


@gin.configurable
def make_service_dataset(data_dir, num_frames: int = pipeline.NUM_FRAMES, batch_size: int = pipeline.BATCH_SIZE,
                         crop_size: int = crops.CROP_SIZE, seed: int = 0, channels: pipeline.Channels | None = None,
                         augmentation: pipeline.Augmentation | None = None,
                         flow_backend: str = DEFAULT_FLOW_BACKEND, *, data_service: str | None = None,
                         job_name: str = JOB_NAME, surreal_config: str | None = None,
                         background_config: str | None = None,
                         shuffle_buffer: int = SHUFFLE_BUFFER) -> tf.data.Dataset:
    """The training dataset of (features, labels) batches (pipeline.make_dataset's contract, plus `stream`), TF ops
    only, from the prepared `surreal_clips` and `background_clips` in `data_dir` (TFDS's data_dir; None = its
    default).

    `data_service` None: runs here. "grpc://HOST:PORT": the same graph runs on that dispatcher's workers
    (`processing_mode="parallel_epochs"`, job `job_name`: consumers with the same name share the workers' output).
    `surreal_config`/`background_config`: which prepared configs (default: see `find_config`).
    """
    channels = channels or pipeline.Channels()
    augmentation = augmentation or pipeline.Augmentation()
    if flow_backend in flow.OPENCV_METHODS and channels.use_flow:
        raise ValueError(f"flow backend {flow_backend!r} is a Python (OpenCV) step, which tf.data service cannot run; "
                         f"use '{flow.TF_TVL1}' or '{flow.SAVED_MODEL_PREFIX}<dir>'")
    if data_dir is None:
        import tensorflow_datasets as tfds
        data_dir = tfds.core.constants.DATA_DIR  # $TFDS_DATA_DIR or ~/tensorflow_datasets
    surreal_dir = find_config(data_dir, SURREAL_DATASET, num_frames, surreal_config)
    background_dir = find_config(data_dir, BACKGROUND_DATASET, num_frames, background_config)
    distributed = data_service is not None

    def with_stream(key):
        # The shuffle seeds are explicit (seed + stream key). TF compares a seed pair with (0, 0) in Python, which
        # fails on a tensor seed when the global seed is 0, so this function's graph drops the global seed.
        tf.compat.v1.get_default_graph().seed = None
        shuffle_seed = tf.constant(seed, tf.int64) + key
        pairs = tf.data.Dataset.zip(read_source(surreal_dir, shuffle_seed, shuffle_buffer),
                                    read_source(background_dir, shuffle_seed + 1, shuffle_buffer))
        return pairs.enumerate().map(lambda i, pair: (key, i, pair))

    ds = _stream_key(distributed).flat_map(with_stream)
    ds = ds.map(lambda key, i, pair: (key, i, raw_example(*pair, i + key * _STREAM_STRIDE, seed, num_frames,
                                                          augmentation.track_camera)),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.filter(lambda key, i, raw: raw["ok"])

    def example(key, i, raw):
        features, labels = pipeline.synthetic_example(
            raw, i + key * _STREAM_STRIDE, seed=seed, channels=channels, augmentation=augmentation,
            crop_size=crop_size, flow_backend=flow_backend)
        labels["index"], labels["stream"] = i, key
        return features, labels

    ds = ds.map(example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
    if distributed:
        ds = ds.apply(tf.data.experimental.service.distribute(processing_mode="parallel_epochs",
                                                              service=data_service, job_name=job_name))
    return ds
