"""The training loop: `train()`, the gin edge of a run.

It builds the contract (`Preprocessing`) and the network (`ModelConfig`) from gin, writes both beside the
checkpoints, restores the newest checkpoint of `model_dir` if there is one (step, weights, optimizer state, dropout
state and the data position), and trains with `step.make_train_step` under a tf.distribute strategy. It writes
TensorBoard summaries (losses, learning rate, steps/s, rejected samples by reason, validation PA-MPJPE, example inputs
with the predicted skeleton), checkpoints and `operative_config.gin`.

Faults end in one message, never a traceback from deep inside TensorFlow: a loss that turns NaN, a bad-sample budget
exceeded (every file broken), a full disk before a save, an unwritable model directory; Ctrl-C saves a checkpoint at
the current step (keeping the data position) and stops.
"""
from __future__ import annotations

import dataclasses
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

from mhr_tf import metrics
from mhr_tf.data import pipeline, sources
from mhr_tf.data.preprocessing import Preprocessing
from mhr_tf.model import motion_hmr, trunk
from mhr_tf.training import inputs, run_dir, step as train_step_lib

log = logging.getLogger(__name__)

# Paper Table 3 caption: 31 frames uses batch size 3.
BATCH_SIZE = 3
# The network's settings: configured here, at the edge (the model module stays free of gin).
ModelConfig = gin.external_configurable(motion_hmr.ModelConfig, "ModelConfig")


class NonFiniteLossError(RuntimeError):
    """Training stopped because the loss became NaN or infinite; the last good checkpoint is kept."""


class BadSampleBudgetError(RuntimeError):
    """Training stopped because too many samples could not be used (see `pipeline.BadSampleBudget`)."""


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


@dataclasses.dataclass
class _Run:
    """What one process of a run holds while it trains."""
    model: keras.Model
    optimizer: keras.optimizers.Optimizer
    step: tf.Variable
    next_example: tf.Variable
    manager: tf.train.CheckpointManager
    last_good: str | None


@gin.configurable(denylist=["model_dir"])
def train(model_dir, *, source: str = "files", surreal_root=None, background_root=None, tfds_data_dir=None,
          cache_dir=None, data_service: str | None = None, threedpw_root=None, body_model_path=None, batch_size: int = BATCH_SIZE,
          num_steps: int = 100_000, seed: int = 0, dann_weight: float | None = None, checkpoint_every: int = 500,
          summary_every: int = 20, image_summary_every: int = 200, validate_every: int = 1000,
          validation_examples: int = 24, mixed_precision: bool = False, progress: bool = True,
          keep_checkpoints: int = 5) -> dict:
    """Trains Motion HMR into `model_dir`; returns the last logged values (a dict of floats).

    `source` "files": SURREAL and background folders (default: the simulator's); "tfds": the prepared TFDS records in
    `tfds_data_dir`, which tf.data service (`data_service="grpc://HOST:PORT"`) can run; "cache": examples made
    beforehand with every channel group (`mhr_tf.data.example_cache`, `cache_dir`). `dann_weight`: with a value,
    App. B's DANN with that adversary weight, the target domain from the 3DPW-format `threedpw_root`'s train split
    (with a cache: its "target" windows).
    `batch_size` is the global batch (labelled clips per step over all replicas). A run that is stopped and started
    again continues from its last checkpoint: step, weights, optimizer state and (with the files source) the data
    position.
    """
    # MultiWorkerMirroredStrategy configures the process's collective ops, which must precede every other TF op.
    strategy = make_strategy()
    chief = strategy.extended.should_checkpoint  # tf.distribute's chief (task 0) alone writes model_dir
    model_dir = Path(model_dir)
    pre = Preprocessing()
    model_config = ModelConfig()
    if chief:
        run_dir.check_writable(model_dir)
        for stale in run_dir.remove_stale_temporaries(model_dir):
            print(f"removed {stale}, left by an interrupted save")
        run_dir.write_run(model_dir, pre, model_config)
    if mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    keras.utils.set_random_seed(seed)  # the same seed gives the same initial weights
    if batch_size % strategy.num_replicas_in_sync:
        raise ValueError(f"train: batch_size {batch_size} (the global batch) — expected a multiple of the "
                         f"{strategy.num_replicas_in_sync} replicas in sync")
    replica_batch = batch_size // strategy.num_replicas_in_sync
    num_shards, shard_index = _input_shard(strategy)
    run = _restore(strategy, model_dir, pre, model_config, dann_weight, chief, shard_index, keep_checkpoints)

    bad_samples = sources.BadSamples()
    roots = dict(surreal_root=surreal_root, background_root=background_root, tfds_data_dir=tfds_data_dir,
                 cache_dir=cache_dir, body_model_path=body_model_path)
    data = inputs.make_source(source, pre, bad_samples=bad_samples, **roots)
    dataset = inputs.training_batches(
        data, pre, replica_batch, seed, start_index=int(run.next_example.numpy()), num_shards=num_shards,
        shard_index=shard_index, data_service=data_service, budget=pipeline.BadSampleBudget(),
        target_tracks=(None if dann_weight is None else () if source == "cache" else
                       inputs.target_tracks(threedpw_root)),
        target_start=int(run.step.numpy()) * replica_batch)
    iterator = iter(strategy.distribute_datasets_from_function(
        lambda context: _checked_input(dataset, context, num_shards, shard_index)))
    step_fn = train_step_lib.make_train_step(run.model, run.optimizer, strategy, batch_size,
                                             dann=dann_weight is not None)
    validation = _validation_fn(run.model, source, pre, validation_examples, seed, roots)
    writer = tf.summary.create_file_writer(str(model_dir / "train")) if chief else tf.summary.create_noop_writer()
    if chief:
        run_dir.write_atomically(model_dir / run_dir.OPERATIVE_CONFIG, gin.operative_config_str())

    from tqdm import tqdm
    last = {}
    began, began_step = time.time(), int(run.step.numpy())
    bar = tqdm(total=num_steps, initial=began_step, desc="training", unit="step", disable=not (progress and chief),
               dynamic_ncols=True)
    rejected = np.zeros(len(sources.REASONS), np.int64)
    try:
        with writer.as_default():
            while int(run.step.numpy()) < num_steps:
                try:
                    features, labels = next(iterator)
                except tf.errors.InvalidArgumentError as error:
                    if pipeline.BadSampleBudget.MESSAGE in str(error):
                        raise BadSampleBudgetError(_budget_message(error, bad_samples)) from None
                    raise
                values, last_example = step_fn(features, labels)
                loss = float(values["total"])
                if not math.isfinite(loss):
                    raise NonFiniteLossError(
                        f"loss became {loss} at step {int(run.step.numpy()) + 1}; stopped without saving. The last "
                        f"good checkpoint is {run.last_good or '(none yet)'}; lower the learning rate or check the "
                        "data, then rerun to resume from it.")
                run.step.assign_add(1)
                run.next_example.assign(int(last_example) + 1)
                current = int(run.step.numpy())
                last = {k: float(v) for k, v in values.items()}
                rejected = np.maximum(rejected, _local_rejected(strategy, labels))
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4f}", pa_mpjpe=f"{last['pa_mpjpe_mm']:.0f}mm")
                if current % summary_every == 0 or current == num_steps:
                    _scalar_summaries(last, run.optimizer, rejected, current, began, began_step)
                if chief and image_summary_every and current % image_summary_every == 0:
                    _image_summary(run.model, features, strategy, pre, current)
                if chief and validate_every and (current % validate_every == 0 or current == num_steps):
                    last["val_pa_mpjpe_mm"] = validation()
                    tf.summary.scalar("validation/pa_mpjpe_mm", last["val_pa_mpjpe_mm"], step=current)
                if current % checkpoint_every == 0 or current == num_steps:
                    _save(run, model_dir, chief)
    except KeyboardInterrupt:
        bar.close()
        current = int(run.step.numpy())
        if run.last_good is None or not run.last_good.endswith(f"ckpt-{current}"):
            _save(run, model_dir, chief)
        print(f"\ninterrupted at step {current}: saved {run.last_good}; rerun the same command to resume")
        last["interrupted"] = 1.0
    finally:
        bar.close()
        writer.flush()
        if not chief:
            shutil.rmtree(run.manager.directory, ignore_errors=True)
    if bad_samples.count:
        print(bad_samples.report())
    last["rejected"] = float(rejected.sum())
    return last


def _restore(strategy, model_dir: Path, pre: Preprocessing, model_config, dann_weight, chief: bool, shard_index: int,
             keep_checkpoints: int) -> _Run:
    """The model, optimizer and counters, restored from the newest checkpoint of `model_dir` when there is one."""
    with strategy.scope():
        model = model_config.build(pre.crop_size, pre.channels.names, num_pairs=pre.num_pairs,
                                   dann_weight=dann_weight)
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
    manager = tf.train.CheckpointManager(checkpoint, write_dir / run_dir.CHECKPOINT_DIR, max_to_keep=keep_checkpoints)
    latest = tf.train.latest_checkpoint(str(model_dir / run_dir.CHECKPOINT_DIR))
    if latest:
        checkpoint.restore(latest).expect_partial()
        log.info("resumed from %s at step %d", latest, int(step.numpy()))
        print(f"resuming from {latest} (step {int(step.numpy())})")
    return _Run(model, optimizer, step, next_example, manager, latest)


def _save(run: _Run, model_dir: Path, chief: bool) -> None:
    """A checkpoint at the current step, after checking the disk can hold it; a failed save leaves the previous
    checkpoint as the newest and says so."""
    directory = Path(run.manager.directory)
    directory.mkdir(parents=True, exist_ok=True)
    run_dir.check_free_space(directory, run_dir.checkpoint_bytes(run.last_good, run.model.variables))
    try:
        saved = run.manager.save(checkpoint_number=int(run.step.numpy()))
    except (tf.errors.ResourceExhaustedError, tf.errors.UnknownError, OSError) as error:
        raise run_dir.RunDirError(
            f"{directory}: saving step {int(run.step.numpy())} failed ({str(error).splitlines()[0][:160]}); the "
            f"newest good checkpoint is still {run.last_good or '(none)'} — free space and rerun to resume") from None
    run.last_good = saved if chief else str(model_dir / run_dir.CHECKPOINT_DIR / Path(saved).name)


def _budget_message(error: Exception, bad_samples: sources.BadSamples) -> str:
    text = str(error)
    start = text.find(pipeline.BadSampleBudget.MESSAGE)
    summary = text[start:].splitlines()[0] if start >= 0 else text.splitlines()[0]
    report = bad_samples.report() if bad_samples.count else "(no unreadable file: the rejections are by rule)"
    return f"stopped: {summary}\n{report}\nCheck the data roots; the budget is BadSampleBudget's to change."


def _local_rejected(strategy, labels) -> np.ndarray:
    """The rejected-sample counts by reason, as of this replica's last example (cumulative in the stream)."""
    local = strategy.experimental_local_results(labels)[0]
    return np.asarray(local["rejected"]).max(axis=0)


def _scalar_summaries(values: dict, optimizer, rejected: np.ndarray, current: int, began: float,
                      began_step: int) -> None:
    rate = (current - began_step) / max(time.time() - began, 1e-9)
    for k, v in values.items():
        tf.summary.scalar(f"loss/{k}" if k != "pa_mpjpe_mm" else "train/pa_mpjpe_mm", v, step=current)
    tf.summary.scalar("train/learning_rate", _current_lr(optimizer), step=current)
    tf.summary.scalar("train/steps_per_second", rate, step=current)
    for reason, count in zip(sources.REASONS, rejected):
        tf.summary.scalar(f"data/rejected/{reason.replace(' ', '_')}", int(count), step=current)


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


def skeleton_image(inputs, keypoints2d, pre: Preprocessing) -> np.ndarray:
    """A picture per example `[N, S, S, 3]` uint8: the input channels made visible (RGB, or flow, or the first
    channel), the keypoint heatmaps' sum in red, and the predicted joints (normalized crop coordinates) in green."""
    x = np.asarray(inputs, np.float32)
    layout = trunk.channel_layout(pre.channels.names)
    first = layout.get("rgb", layout.get("flow"))
    base = np.clip(np.abs(x[..., first]), 0, 1) if first is not None else np.zeros(x.shape[:-1] + (3,), np.float32)
    if "heatmaps" in layout:
        base[..., 0] = np.clip(base[..., 0] + x[..., layout["heatmaps"]].sum(-1), 0, 1)
    images = (base * 255).astype(np.uint8)
    s = pre.crop_size
    points = np.clip((np.asarray(keypoints2d) + 1.0) * s / 2.0, 0, s - 1).astype(int)
    for image, joints in zip(images, points):
        for u, v in joints:
            image[max(v - 1, 0):v + 2, max(u - 1, 0):u + 2] = (0, 255, 0)
    return images


def _image_summary(model, features, strategy, pre: Preprocessing, current: int) -> None:
    local = strategy.experimental_local_results(features)[0]
    outputs = model(local, training=False)
    pairs = local["inputs"][0]  # [P, S, S, C]: the first clip's pairs
    chosen = list(range(0, pairs.shape[0], max(1, pairs.shape[0] // 4)))[:4]
    pictures = skeleton_image(tf.gather(pairs, chosen), tf.gather(outputs["current/keypoints2d"][0], chosen), pre)
    tf.summary.image("examples/inputs_and_prediction", pictures, step=current, max_outputs=4)


def _validation_fn(model, source_kind: str, pre: Preprocessing, examples: int, seed: int, roots: dict):
    """PA-MPJPE (mm, current head) on a fixed held-out set (`inputs.validation_batches`), built on first use."""
    cache = {}

    def run() -> float:
        if "ds" not in cache:
            cache["ds"] = inputs.validation_batches(source_kind, pre, examples, seed, **roots)
        errors = [float(metrics.pa_mpjpe_tf(model(features, training=False)["current/joints3d"],
                                            labels["joints3d_current"])) for features, labels in cache["ds"]]
        return float(np.mean(errors)) if errors else float("nan")
    return run
