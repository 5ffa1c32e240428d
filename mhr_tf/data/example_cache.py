"""Examples made once and read many times: the pipeline's outputs with every channel group, in TFRecord shards.

An ablation over input channels (paper Table 1) trains the same data with different channels. Running the pipeline
once per row costs far more than the rows' models on a CPU, so the examples are made once with all channel groups
(RGB, flow, heatmaps, occlusion) and every row reads the groups its contract uses:

    make_dataset(source, contract with every channel) ─► write_training_cache ─► <dir>/train-*.tfrecord
    read_training_cache(<dir>, row's contract) ─► (features with the row's channels, labels)

The cache records its contract (`preprocessing.json`); a row whose contract differs in anything but the channels is
refused. Inputs are stored as float16 (the reads equal the live pipeline's inputs to float16 rounding); labels as
they are. Test windows (`write_window_cache`, `read_window_cache`) work the same way for evaluation.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import tensorflow as tf

from mhr_tf.data.preprocessing import CHANNEL_GROUPS, Channels, ContractError, Preprocessing

ALL_CHANNELS = Channels(use_rgb=True, use_flow=True, use_keypoints=True)
SHARD_EXAMPLES = 256
INDEX_FILE = "cache.json"


def full_contract(pre: Preprocessing) -> Preprocessing:
    """The contract a cache is made with: `pre` with every channel group."""
    return dataclasses.replace(pre, channels=ALL_CHANNELS)


def _check(cache_dir: Path, pre: Preprocessing) -> dict:
    index_path = cache_dir / INDEX_FILE
    try:
        index = json.loads(index_path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{index_path}: no example cache here (written last by write_*_cache)") from None
    cached = Preprocessing.from_json(index["preprocessing"], str(index_path))
    if cached != full_contract(pre):
        ours, theirs = full_contract(pre).to_json(), cached.to_json()
        changed = sorted(k for k in ours if ours[k] != theirs.get(k))
        raise ContractError(f"{index_path}: the cache was made with another contract (differs in {changed}); "
                            "make a cache for this one")
    return index


def channel_indices(channels: Channels) -> list[int]:
    """Where a contract's channel groups sit in a cached all-channel input."""
    start, where = 0, {}
    for name, width in CHANNEL_GROUPS:
        where[name] = list(range(start, start + width))
        start += width
    return [i for name in channels.names for i in where[name]]


def _feature(value: np.ndarray) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[tf.io.serialize_tensor(value).numpy()]))


def _write(cache_dir: Path, prefix: str, examples, pre: Preprocessing, extra: dict) -> int:
    """Writes dicts of numpy arrays as shards; returns the count. The index is written last."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    count, writer, specs = 0, None, None
    try:
        for example in examples:
            if count % SHARD_EXAMPLES == 0:
                if writer is not None:
                    writer.close()
                writer = tf.io.TFRecordWriter(str(cache_dir / f"{prefix}-{count // SHARD_EXAMPLES:05d}.tfrecord"))
            specs = specs or {k: (str(v.dtype), list(v.shape)) for k, v in example.items()}
            record = tf.train.Example(features=tf.train.Features(feature={k: _feature(v) for k, v in example.items()}))
            writer.write(record.SerializeToString())
            count += 1
    finally:
        if writer is not None:
            writer.close()
    index_path = cache_dir / INDEX_FILE
    index = json.loads(index_path.read_text()) if index_path.exists() else {}
    index.update({"preprocessing": full_contract(pre).to_json(), f"{prefix}_examples": count,
                  f"{prefix}_specs": specs, **extra})
    index_path.write_text(json.dumps(index, indent=1) + "\n")
    return count


def _read(cache_dir: Path, prefix: str, index: dict) -> tf.data.Dataset:
    specs = index[f"{prefix}_specs"]
    files = sorted(str(p) for p in cache_dir.glob(f"{prefix}-*.tfrecord"))
    description = {k: tf.io.FixedLenFeature([], tf.string) for k in specs}

    def parse(record):
        raw = tf.io.parse_single_example(record, description)
        return {k: tf.ensure_shape(tf.io.parse_tensor(raw[k], tf.as_dtype(dtype)), shape)
                for k, (dtype, shape) in specs.items()}
    return tf.data.TFRecordDataset(files).map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


# --------------------------------------------------------------------------------------------------------------------
# Training examples

def write_training_cache(cache_dir, dataset: tf.data.Dataset, pre: Preprocessing, count: int,
                         progress: bool = True, prefix: str = "train") -> int:
    """The first `count` examples of `dataset` (unbatched (features, labels) of `pipeline.make_dataset` with
    `full_contract(pre)`) into `cache_dir` under `prefix` ("train", or "val" for a held-out set)."""
    from tqdm import tqdm

    def examples():
        for features, labels in tqdm(dataset.take(count), total=count, desc="example cache", unit="example",
                                     disable=not progress):
            out = {"inputs": features["inputs"].numpy().astype(np.float16)}
            out.update({f"label/{k}": v.numpy() for k, v in labels.items()})
            yield out
    return _write(Path(cache_dir), prefix, examples(), pre, {})


def _split_example(channels: tf.Tensor):
    def split(i, example):
        labels = {k[len("label/"):]: v for k, v in example.items() if k.startswith("label/")}
        labels["index"] = i
        return {"inputs": tf.gather(tf.cast(example["inputs"], tf.float32), channels, axis=-1)}, labels
    return split


def read_training_cache(cache_dir, pre: Preprocessing, batch_size: int, seed: int, start_index: int = 0,
                        shuffle_buffer: int = 4096) -> tf.data.Dataset:
    """The cached examples forever, reshuffled every epoch from `seed`, with `pre`'s channel groups: batches of
    (features, labels) as `pipeline.make_dataset` gives them. `labels["index"]` counts examples read, so a run
    resumes at `start_index`."""
    cache_dir = Path(cache_dir)
    index = _check(cache_dir, pre)
    split = _split_example(tf.constant(channel_indices(pre.channels), tf.int32))
    # Shuffled, then repeated: every epoch holds every example once, in a new order.
    ds = _read(cache_dir, "train", index).shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True).repeat()
    ds = tf.data.Dataset.zip(tf.data.Dataset.range(np.iinfo(np.int64).max), ds).skip(start_index)
    return ds.map(split, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).batch(
        batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def read_examples(cache_dir, pre: Preprocessing, prefix: str, batch_size: int = 1) -> tf.data.Dataset:
    """Cached examples under `prefix` once, in order, with `pre`'s channel groups (e.g. a held-out "val" set)."""
    cache_dir = Path(cache_dir)
    index = _check(cache_dir, pre)
    split = _split_example(tf.constant(channel_indices(pre.channels), tf.int32))
    ds = tf.data.Dataset.zip(tf.data.Dataset.range(np.iinfo(np.int64).max), _read(cache_dir, prefix, index))
    return ds.map(split).batch(batch_size)


# --------------------------------------------------------------------------------------------------------------------
# Test windows (evaluation) and unlabelled target-domain windows (DANN)

def write_window_cache(cache_dir, prefix: str, dataset: tf.data.Dataset, pre: Preprocessing,
                       progress: bool = True, total: int | None = None) -> int:
    """Every element of `dataset` (unbatched feature dicts of the test branch with `full_contract(pre)`, e.g.
    `pipeline.make_target_dataset(...).unbatch()`) into `cache_dir` under `prefix`."""
    from tqdm import tqdm

    def examples():
        for features in tqdm(dataset, total=total, desc=f"{prefix} cache", unit="window", disable=not progress):
            out = {k: v.numpy() for k, v in features.items()}
            out["inputs"] = out["inputs"].astype(np.float16)
            yield out
    return _write(Path(cache_dir), prefix, examples(), pre, {})


def read_window_cache(cache_dir, prefix: str, pre: Preprocessing, batch_size: int = 1,
                      repeat: bool = False, seed: int = 0) -> tf.data.Dataset:
    """The cached windows with `pre`'s channel groups, batched: in order (evaluation), or shuffled forever with
    `repeat` (DANN's target rows)."""
    cache_dir = Path(cache_dir)
    index = _check(cache_dir, pre)
    channels = tf.constant(channel_indices(pre.channels), tf.int32)
    ds = _read(cache_dir, prefix, index)
    if repeat:
        ds = ds.shuffle(4096, seed=seed, reshuffle_each_iteration=True).repeat()
    ds = ds.map(lambda f: dict(f, inputs=tf.gather(tf.cast(f["inputs"], tf.float32), channels, axis=-1)),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(batch_size, drop_remainder=repeat).prefetch(tf.data.AUTOTUNE)
