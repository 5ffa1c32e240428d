"""The training run's inputs: its source, its batches (with DANN's target rows), and its validation set."""
from __future__ import annotations

from pathlib import Path

import tensorflow as tf

from mhr_tf import paths
from mhr_tf.data import example_cache, pipeline, sources, threedpw
from mhr_tf.data.preprocessing import Preprocessing

SOURCES = ("files", "tfds", "cache")
VALIDATION_SEED_OFFSET = 10_007


def simulator_root(kind: str) -> Path:
    """Where `scripts/make_synthetic.py` puts the simulator's data by default (`$MHR_TF_HOME/sim/<kind>`)."""
    return paths.home() / "sim" / kind


class CacheSource:
    """Examples made beforehand with every channel group (`mhr_tf.data.example_cache`), read with the contract's."""
    python = False

    def __init__(self, cache_dir, pre: Preprocessing):
        self.cache_dir = Path(cache_dir)
        example_cache._check(self.cache_dir, pre)  # a cache made with another contract is refused here
        self.num_frames = pre.num_frames


def make_source(kind: str, pre: Preprocessing, *, surreal_root=None, background_root=None, tfds_data_dir=None,
                cache_dir=None, body_model_path=None, split: str = "train",
                bad_samples: sources.BadSamples | None = None):
    """The source of training examples: "files" (the Python decoders; roots default to the simulator's), "tfds"
    (the prepared TFDS records in `tfds_data_dir`) or "cache" (`example_cache`'s examples in `cache_dir`)."""
    if kind == "cache":
        if cache_dir is None:
            raise ValueError("training source 'cache' needs train.cache_dir (a directory example_cache wrote)")
        return CacheSource(cache_dir, pre)
    if kind == "files":
        surreal_root = _existing_root(surreal_root, "surreal", "train.surreal_root",
                                      "SURREAL's folder (the one holding train/run0/...)")
        background_root = _existing_root(background_root, "backgrounds", "train.background_root",
                                         "the background videos' folder")
        return sources.FileSource(surreal_root, background_root, pre.num_frames, split, body_model_path, bad_samples)
    if kind == "tfds":
        return sources.TFDSSource(tfds_data_dir, pre.num_frames, split)
    raise ValueError(f"training source {kind!r}: expected one of {SOURCES}")


def _existing_root(root, kind: str, binding: str, what: str) -> Path:
    """`root` (default: the simulator's `kind` folder), or an error naming the gin binding to set when it is not a
    directory."""
    default = root is None
    root = simulator_root(kind) if default else Path(root)
    if not root.is_dir():
        make = f", or make the simulator's: python scripts/make_synthetic.py {kind} --out {root}" if default else ""
        raise FileNotFoundError(f"{root}: no such directory — set {binding} to {what}{make}")
    return root


def join_domains(source, target_features):
    """Labelled batch + unlabelled target-domain features -> one batch, the target rows last with zero labels and
    `domain` 1 (App. B's DANN)."""
    features, labels = source
    rows = tf.shape(target_features["inputs"])[0]

    def zeros_like_rows(value):
        return tf.zeros(tf.concat([[rows], tf.shape(value)[1:]], 0), value.dtype)

    joined = {k: tf.concat([v, zeros_like_rows(v)], 0) for k, v in labels.items()}
    joined["domain"] = tf.concat([labels["domain"], tf.ones([rows], tf.int32)], 0)
    joined["index"] = tf.concat([labels["index"], tf.fill([rows], tf.constant(-1, tf.int64))], 0)
    return {"inputs": tf.concat([features["inputs"], target_features["inputs"]], 0)}, joined


def training_batches(source, pre: Preprocessing, replica_batch: int, seed: int, *, start_index: int = 0,
                     num_shards: int = 1, shard_index: int = 0, data_service: str | None = None,
                     budget: pipeline.BadSampleBudget | None = None, target_tracks=None,
                     target_start: int = 0) -> tf.data.Dataset:
    """The run's batches: `pipeline.make_dataset` of the source (or the cached examples), plus as many target-domain
    rows per batch when `target_tracks` are given (DANN), drawn afresh per example from (seed, shard,
    `target_start` + i) — or, with a cache, its shuffled "target" windows."""
    if isinstance(source, CacheSource):
        if num_shards > 1 or data_service is not None:
            raise ValueError("the example cache is read by one process: no multi-worker sharding, no data service")
        ds = example_cache.read_training_cache(source.cache_dir, pre, replica_batch, seed, start_index)
        if target_tracks is None:
            return ds
        target = example_cache.read_window_cache(source.cache_dir, "target", pre, replica_batch, repeat=True,
                                                 seed=seed + target_start)
        return tf.data.Dataset.zip(ds, target.map(lambda f: {"inputs": f["inputs"]})).map(join_domains)
    ds = pipeline.make_dataset(source, pre, replica_batch, seed, start_index=start_index, num_shards=num_shards,
                               shard_index=shard_index, data_service=data_service, budget=budget)
    if target_tracks is None:
        return ds
    target = pipeline.make_domain_dataset(target_tracks, pre, replica_batch, seed + 7 * shard_index,
                                          start_index=target_start)
    return tf.data.Dataset.zip(ds, target).map(join_domains)


def target_tracks(threedpw_root, split: str = "train"):
    """DANN's unlabelled target domain: the person tracks of a 3DPW-format split (default: the simulator's)."""
    return threedpw.load_split(threedpw_root or simulator_root("threedpw"), split)


def validation_batches(source_kind: str, pre: Preprocessing, examples: int, seed: int, **roots) -> tf.data.Dataset:
    """A fixed held-out set of `examples` training-style clips (SURREAL's 'val' split when it has one, else the
    training split with another seed; with a cache, its "val" examples), cached after the first pass."""
    if source_kind == "cache":
        return example_cache.read_examples(roots["cache_dir"], pre, "val").take(examples)
    for split in ("val", "train"):
        try:
            source = make_source(source_kind, pre, split=split, **roots)
            break
        except (FileNotFoundError, ValueError):
            if split == "train":
                raise
    return pipeline.make_dataset(source, pre, 1, seed + VALIDATION_SEED_OFFSET, num_examples=examples,
                                 drop_remainder=False).cache()
