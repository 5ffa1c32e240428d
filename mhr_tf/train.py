"""Training Motion HMR (paper §3.2, App. B): a plain custom loop under a tf.distribute strategy.

`train()` builds the datasets and the model, restores the last checkpoint of `model_dir` if there is one (step,
weights, optimizer state and the data position), and trains with `GradientTape` inside `strategy.run`, each replica's
loss scaled to the global batch. It writes TensorBoard summaries (losses, learning rate, steps/s, validation PA-MPJPE,
example inputs with the predicted skeleton), checkpoints, and `operative_config.gin`.
"""
from __future__ import annotations

import logging
import math
import shutil
import tempfile
import time
from pathlib import Path

import gin
import keras
import numpy as np
import tensorflow as tf

from mhr_tf import losses, metrics, paths
from mhr_tf.data import pipeline
from mhr_tf.model import motion_hmr

log = logging.getLogger(__name__)


# The model module stays free of gin (its layers take plain arguments); its builder is configured here, at the edge.
build_model = gin.external_configurable(motion_hmr.build_model, "build_model")
GIN_DIR = Path(__file__).resolve().parent.parent / "gin"


def parse_gin(files, bindings=()) -> None:
    """Loads gin files (paths, or names inside the repository's gin/ folder) and bindings; `include 'gin/x.gin'`
    lines resolve against the repository root whatever the working directory."""
    gin.add_config_file_search_path(str(GIN_DIR.parent))
    resolved = [f if Path(f).exists() or Path(f).is_absolute() else str(GIN_DIR.parent / f) for f in files]
    gin.parse_config_files_and_bindings(resolved, list(bindings))


class NonFiniteLossError(RuntimeError):
    """Training stopped because the loss became NaN or infinite; the last good checkpoint is kept."""


def simulator_root(kind: str) -> Path:
    """Where `scripts/make_synthetic.py` puts the simulator's data by default (`$MHR_TF_HOME/sim/<kind>`)."""
    return paths.home() / "sim" / kind


@gin.configurable
def make_strategy(kind: str = "mirrored") -> tf.distribute.Strategy:
    """"mirrored" (all local devices; one replica on a CPU-only machine), "multi_worker" (from TF_CONFIG) or
    "default" (no distribution).

    "multi_worker": every machine runs the same `scripts/train.py` command with its own TF_CONFIG, e.g. on the chief
    `TF_CONFIG='{"cluster": {"worker": ["host0:12345", "host1:12345"]}, "task": {"type": "worker", "index": 0}}'`
    and `"index": 1` on the other; `--model_dir` must be one filesystem all workers see (NFS, GCS), because every
    worker resumes from the chief's checkpoints there.
    """
    if kind == "mirrored":
        return tf.distribute.MirroredStrategy()
    if kind == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if kind == "default":
        return tf.distribute.get_strategy()
    raise ValueError(f"make_strategy: kind {kind!r}, expected 'mirrored', 'multi_worker' or 'default'")


@gin.configurable
def learning_rate_schedule(base: float = 1e-4, decay_steps: int | None = None,
                           final_fraction: float = 0.1) -> keras.optimizers.schedules.LearningRateSchedule | float:
    """Adam's learning rate: constant, or cosine-decayed over `decay_steps` to `final_fraction` of `base`."""
    if not decay_steps:
        return base
    return keras.optimizers.schedules.CosineDecay(base, decay_steps, alpha=final_fraction)


def _target_labels_like(labels: dict, batch: int) -> dict:
    """Zero labels for target-domain rows (they carry no supervision; `losses` masks them by `domain`)."""
    out = {k: tf.zeros(tf.concat([[batch], tf.shape(v)[1:]], 0), v.dtype) for k, v in labels.items()}
    out["domain"] = tf.ones([batch], tf.int32)
    return out


def _join_domains(source, target):
    """Source batch + target batch -> one batch, target rows last (DANN, App. B)."""
    (features, labels), target_features = source, target
    batch = tf.shape(target_features["inputs"])[0]
    joined_labels = {k: tf.concat([v, _target_labels_like(labels, batch)[k]], 0) for k, v in labels.items()}
    return {"inputs": tf.concat([features["inputs"], target_features["inputs"]], 0)}, joined_labels


def _skeleton_image(inputs: tf.Tensor, keypoints2d: tf.Tensor, crop_size: int) -> np.ndarray:
    """A picture per example [N, S, S, 3] uint8: the input channels made visible, the predicted joints on top."""
    x = np.asarray(inputs, np.float32)
    base = np.clip(np.abs(x[..., :3]), 0, 1) if x.shape[-1] >= 3 else np.repeat(x[..., :1], 3, -1)
    if x.shape[-1] > 4:  # heatmaps: their sum, in red, over the first channels
        base[..., 0] = np.clip(base[..., 0] + x[..., -13:-1].sum(-1), 0, 1)
    images = (base * 255).astype(np.uint8)
    points = np.clip((np.asarray(keypoints2d) + 1.0) * crop_size / 2.0, 0, crop_size - 1).astype(int)
    for image, joints in zip(images, points):
        for u, v in joints:
            image[max(v - 1, 0):v + 2, max(u - 1, 0):u + 2] = (0, 255, 0)
    return images


@gin.configurable
def train(model_dir, surreal_root=None, background_root=None, threedpw_root=None, num_steps: int = 100_000,
          batch_size: int = pipeline.BATCH_SIZE, num_frames: int = pipeline.NUM_FRAMES, crop_size: int = 224,
          seed: int = 0, dann: bool = False, checkpoint_every: int = 500, summary_every: int = 20,
          image_summary_every: int = 200, validate_every: int = 1000, validation_examples: int = 24,
          mixed_precision: bool = False, data_service: str | None = None, progress: bool = True,
          keep_checkpoints: int = 5, tfds_data_dir=None) -> dict:
    """Trains Motion HMR into `model_dir`; returns the last logged values (a dict of floats).

    Data roots default to the simulator's (`simulator_root`). With `data_service` ("grpc://HOST:PORT"), training
    data comes from that tf.data service instead, built from the TFDS datasets in `tfds_data_dir` (TFDS's default
    when None) by `mhr_tf.data.service.make_service_dataset`, which does not resume at the data position. A run
    that is stopped and started again continues from its last checkpoint: step, weights, optimizer state and the
    data position.
    """
    # MultiWorkerMirroredStrategy configures the process's collective ops, which must precede every other TF op.
    strategy = make_strategy()
    # tf.distribute's chief (task 0) alone writes model_dir: checkpoints, TensorBoard, operative_config.gin.
    chief = strategy.extended.should_checkpoint
    model_dir = Path(model_dir)
    if chief:
        model_dir.mkdir(parents=True, exist_ok=True)
    surreal_root = Path(surreal_root or simulator_root("surreal"))
    background_root = Path(background_root or simulator_root("backgrounds"))
    if mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    keras.utils.set_random_seed(seed)  # the same seed gives the same initial weights
    channels = pipeline.Channels()
    global_batch = batch_size  # clips per step over all replicas
    if global_batch % strategy.num_replicas_in_sync:
        raise ValueError(f"train: batch_size {global_batch} (the global batch) — expected a multiple of the "
                         f"{strategy.num_replicas_in_sync} replicas in sync")
    replica_batch = global_batch // strategy.num_replicas_in_sync
    num_shards, shard_index = _input_shard(strategy)

    with strategy.scope():
        model = build_model(crop_size=crop_size, channels=channels.names,
                                       num_pairs=num_frames - 1)
        if strategy.num_replicas_in_sync > 1:
            _synchronize_batch_norm(model)
        optimizer = keras.optimizers.Adam(learning_rate_schedule())
        step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        next_example = tf.Variable(0, dtype=tf.int64, trainable=False, name="next_example")
        # Dropout's random state lives in Keras seed generators, which the model's checkpoint does not hold; saving
        # them too makes a resumed run draw the same dropout masks as an uninterrupted one.
        seed_states = [v.value for v in model.non_trainable_variables if "seed_generator" in v.path]
        checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, step=step, next_example=next_example,
                                         seed_states=seed_states)
    # Saving is collective, so every worker saves; the others into a temporary directory (TF's multi-worker guide),
    # and every worker resumes from the chief's checkpoint.
    write_dir = model_dir if chief else Path(tempfile.mkdtemp(prefix=f"mhr_tf_worker{shard_index}_"))
    manager = tf.train.CheckpointManager(checkpoint, write_dir / "checkpoints", max_to_keep=keep_checkpoints)
    latest = tf.train.latest_checkpoint(str(model_dir / "checkpoints"))
    if latest:
        checkpoint.restore(latest).expect_partial()
        log.info("resumed from %s at step %d", latest, int(step.numpy()))
        print(f"resuming from {latest} (step {int(step.numpy())})")

    bad_samples = pipeline.BadSamples()
    if data_service:  # the TF-only graph over the TFDS builders in `tfds_data_dir`, run by the service's workers
        from mhr_tf.data import service
        dataset = service.make_service_dataset(tfds_data_dir, num_frames, replica_batch, crop_size, seed, channels,
                                               data_service=data_service)
    else:
        dataset = pipeline.make_dataset(surreal_root, background_root, "train", num_frames=num_frames,
                                        batch_size=replica_batch, crop_size=crop_size, seed=seed, channels=channels,
                                        start_index=int(next_example.numpy()), bad_samples=bad_samples,
                                        num_shards=num_shards, shard_index=shard_index)
    if dann:
        target = pipeline.make_target_dataset(threedpw_root or simulator_root("threedpw"), "train",
                                              num_frames=num_frames, batch_size=replica_batch, crop_size=crop_size,
                                              channels=channels, windows="random", seed=seed + shard_index,
                                              repeat=True)
        dataset = tf.data.Dataset.zip(dataset, target.map(lambda f: {"inputs": f["inputs"]})).map(_join_domains)
    distributed = iter(strategy.distribute_datasets_from_function(
        lambda context: _checked_input(dataset, context, num_shards, shard_index)))

    @tf.function
    def train_step(features, labels):
        def replica_step(features, labels):
            with tf.GradientTape() as tape:
                outputs = model(features, training=True)
                terms = losses.motion_hmr_losses(labels, outputs)
                loss = tf.nn.compute_average_loss(terms["total"], global_batch_size=global_batch)
            gradients = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(gradients, model.trainable_variables))
            logged = {k: tf.nn.compute_average_loss(v, global_batch_size=global_batch) for k, v in terms.items()}
            logged["pa_mpjpe_mm"] = metrics.pa_mpjpe_tf(outputs["current/joints3d"], labels["joints3d_current"]) / \
                strategy.num_replicas_in_sync
            logged["last_example"] = tf.reduce_max(labels["index"], keepdims=True)  # [1]
            return logged
        per_replica = strategy.run(replica_step, args=(features, labels))
        # Over all workers: the chief's checkpoint must resume past every worker's examples.
        last_example = tf.reduce_max(strategy.gather(per_replica.pop("last_example"), axis=0))
        reduced = {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in per_replica.items()}
        return reduced, last_example

    validation = _validation_fn(model, surreal_root, background_root, num_frames, crop_size, channels,
                                validation_examples, seed)
    writer = tf.summary.create_file_writer(str(model_dir / "train")) if chief else tf.summary.create_noop_writer()
    if chief:
        _write_operative_config(model_dir)

    from tqdm import tqdm
    last = {}
    began, began_step = time.time(), int(step.numpy())
    bar = tqdm(total=num_steps, initial=int(step.numpy()), desc="training", unit="step",
               disable=not (progress and chief), dynamic_ncols=True)
    last_good = latest
    with writer.as_default():
        while int(step.numpy()) < num_steps:
            features, labels = next(distributed)
            values, last_example = train_step(features, labels)
            loss = float(values["total"])
            if not math.isfinite(loss):
                bar.close()
                raise NonFiniteLossError(
                    f"loss became {loss} at step {int(step.numpy()) + 1}; stopped without saving. The last good checkpoint "
                    f"is {last_good or '(none yet)'}; lower the learning rate or check the data, then rerun to "
                    f"resume from it.")
            step.assign_add(1)
            next_example.assign(int(last_example) + 1)
            current = int(step.numpy())
            last = {k: float(v) for k, v in values.items()}
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}", pa_mpjpe=f"{last['pa_mpjpe_mm']:.0f}mm")
            if current % summary_every == 0 or current == num_steps:
                rate = (current - began_step) / max(time.time() - began, 1e-9)
                for k, v in last.items():
                    tf.summary.scalar(f"loss/{k}" if k != "pa_mpjpe_mm" else "train/pa_mpjpe_mm", v, step=current)
                tf.summary.scalar("train/learning_rate", _current_lr(optimizer), step=current)
                tf.summary.scalar("train/steps_per_second", rate, step=current)
                tf.summary.scalar("data/bad_samples", bad_samples.count, step=current)
            if chief and image_summary_every and current % image_summary_every == 0:
                _image_summary(model, features, strategy, crop_size, current)
            if chief and validate_every and (current % validate_every == 0 or current == num_steps):
                last["val_pa_mpjpe_mm"] = validation()
                tf.summary.scalar("validation/pa_mpjpe_mm", last["val_pa_mpjpe_mm"], step=current)
            if current % checkpoint_every == 0 or current == num_steps:
                saved = manager.save(checkpoint_number=current)
                last_good = saved if chief else str(model_dir / "checkpoints" / Path(saved).name)
    bar.close()
    if not chief:
        shutil.rmtree(write_dir, ignore_errors=True)
    writer.flush()
    if bad_samples.count:
        print(bad_samples.report())
    last["bad_samples"] = bad_samples.count
    return last


def _input_shard(strategy) -> tuple[int, int]:
    """(number of input pipelines, this one's index): one pipeline per worker of TF_CONFIG's cluster, chief first,
    in tf.distribute's order (`multi_worker_util.id_in_cluster`); (1, 0) without a cluster."""
    resolver = strategy.cluster_resolver
    spec = resolver.cluster_spec().as_dict() if resolver is not None else {}
    tasks = [(job, i) for job in ("chief", "worker") for i in range(len(spec.get(job, ())))]
    if not tasks:
        return 1, 0
    return len(tasks), tasks.index((resolver.task_type, resolver.task_id))


def _checked_input(dataset: tf.data.Dataset, context: tf.distribute.InputContext, num_shards: int,
                   shard_index: int) -> tf.data.Dataset:
    """The worker's dataset, already sharded by example index, after checking tf.distribute agrees on the shard."""
    if (context.num_input_pipelines, context.input_pipeline_id) != (num_shards, shard_index):
        raise RuntimeError(f"input pipeline {context.input_pipeline_id} of {context.num_input_pipelines} per "
                           f"tf.distribute, but the dataset was sharded as {shard_index} of {num_shards}")
    return dataset


def _synchronize_batch_norm(model: keras.Model) -> None:
    """BatchNorm statistics over the global batch, all-reduced across replicas: the trunk's BN then normalizes over
    all B * P crops of a step as in one process (§3.2), and every replica keeps the same moving statistics."""
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = True


def _current_lr(optimizer) -> float:
    # Keras 3 evaluates a schedule at the current iteration here; under a strategy the value is a distributed
    # variable, so go through a tensor.
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))


def _image_summary(model, features, strategy, crop_size: int, step: int) -> None:
    local = strategy.experimental_local_results(features)[0]
    outputs = model(local, training=False)
    inputs = local["inputs"][0]  # [P, S, S, C]: the first clip's pairs
    frames = list(range(0, inputs.shape[0], max(1, inputs.shape[0] // 4)))[:4]
    pictures = _skeleton_image(tf.gather(inputs, frames), tf.gather(outputs["current/keypoints2d"][0], frames),
                               crop_size)
    tf.summary.image("examples/inputs_and_prediction", pictures, step=step, max_outputs=4)


def _validation_fn(model, surreal_root, background_root, num_frames, crop_size, channels, examples, seed):
    """PA-MPJPE (mm, current head) on a fixed held-out set: SURREAL's 'val' split when present, else a fixed slice
    of training-style examples with another seed."""
    split = "val" if (Path(surreal_root) / "val").is_dir() else "train"
    cache = {}

    def run() -> float:
        if "ds" not in cache:
            cache["ds"] = pipeline.make_dataset(surreal_root, background_root, split, num_frames=num_frames,
                                                batch_size=1, crop_size=crop_size, seed=seed + 10_007,
                                                channels=channels, num_examples=examples,
                                                drop_remainder=False).cache()
        errors = []
        for features, labels in cache["ds"]:
            outputs = model(features, training=False)
            errors.append(float(metrics.pa_mpjpe_tf(outputs["current/joints3d"], labels["joints3d_current"])))
        return float(np.mean(errors)) if errors else float("nan")
    return run


def _write_operative_config(model_dir: Path) -> None:
    (model_dir / "operative_config.gin").write_text(gin.operative_config_str())
