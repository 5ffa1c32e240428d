"""The training loop: `train()`, the gin edge of a run.

It builds the contract (`Preprocessing`) and the network (`ModelConfig`) from gin, writes both beside the
checkpoints, restores the newest checkpoint of `model_dir` if there is one (step, weights, optimizer state, dropout
state and the data position), and trains with `step.make_train_step` under a tf.distribute strategy. It writes
TensorBoard summaries (losses, learning rate, steps/s, rejected samples by reason, validation PA-MPJPE, example inputs
with the predicted skeleton), checkpoints and `operative_config.gin`.

Faults end in one message, never a traceback from deep inside TensorFlow: a loss that turns NaN, a bad-sample budget
exceeded (every file broken), a full disk before or during a save (the previous checkpoint stays the newest), an
unwritable model directory, a wrong data root (reported before the model is built). Bad samples are logged in full
only for the first few, then as a summary line now and then. Ctrl-C (SIGINT) stops after the current step — or at once
while waiting for data — saving a checkpoint at the last finished step with its data position; a second Ctrl-C stops
the process at once without saving. A run killed at any point (even `kill -9` during a save) resumes bit for bit from
its newest checkpoint.
"""
from __future__ import annotations

import dataclasses
import gc
import logging
import math
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import gin
import keras
import numpy as np
import tensorflow as tf
# Cancels a pending `next(iterator)` (a tf.function call) from the main thread; TF has no public API for that.
from tensorflow.python.eager import cancellation

from mhr_tf import metrics
from mhr_tf.data import pipeline, sources
from mhr_tf.data.preprocessing import Preprocessing
from mhr_tf.model import flow_input, motion_hmr, trunk
from mhr_tf.training import inputs, run_dir, step as train_step_lib

log = logging.getLogger(__name__)

# Paper Table 3 caption: 31 frames uses batch size 3.
BATCH_SIZE = 3
# Bad samples logged in full, then one summary line per this many more (a run whose every file was broken once
# logged 77,007 warnings in ten minutes).
BAD_SAMPLE_LOG_FIRST = 5
BAD_SAMPLE_LOG_EVERY = 1000
# The network's settings: configured here, at the edge (the model module stays free of gin).
ModelConfig = gin.external_configurable(motion_hmr.ModelConfig, "ModelConfig")


class NonFiniteLossError(RuntimeError):
    """Training stopped because the loss became NaN or infinite; the last good checkpoint is kept."""


class BadSampleBudgetError(RuntimeError):
    """Training stopped because too many samples could not be used (see `pipeline.BadSampleBudget`)."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C stopped training; the message says which checkpoint holds the last finished step. A KeyboardInterrupt,
    so that a caller running more after training (an evaluation, a sweep) stops too."""


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
    position. Ctrl-C saves a checkpoint and raises `Interrupted` (a KeyboardInterrupt) naming it.
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
    bad_samples = sources.BadSamples()
    roots = dict(surreal_root=surreal_root, background_root=background_root, tfds_data_dir=tfds_data_dir,
                 cache_dir=cache_dir, body_model_path=body_model_path)
    # The source before the model: a wrong data root is reported in seconds, not after the model is built.
    data = inputs.make_source(source, pre, bad_samples=bad_samples, **roots)
    if mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    keras.utils.set_random_seed(seed)  # the same seed gives the same initial weights
    if batch_size % strategy.num_replicas_in_sync:
        raise ValueError(f"train: batch_size {batch_size} (the global batch) — expected a multiple of the "
                         f"{strategy.num_replicas_in_sync} replicas in sync")
    replica_batch = batch_size // strategy.num_replicas_in_sync
    num_shards, shard_index = _input_shard(strategy)
    run = _restore(strategy, model_dir, pre, model_config, dann_weight, chief, shard_index, keep_checkpoints)
    if chief:  # before any step: a disk that cannot hold one checkpoint would lose the first `checkpoint_every`
        run_dir.check_free_space(model_dir, run_dir.checkpoint_bytes(run.last_good, run.model.variables),
                                 newest=run.last_good)

    budget = pipeline.BadSampleBudget()
    bad_log = _BadSampleLog(bad_samples)
    sources.log.addFilter(bad_log)
    batches = None
    last = {}
    rejected = np.zeros(len(sources.REASONS), np.int64)
    writer = tf.summary.create_noop_writer()
    from tqdm import tqdm
    bar = tqdm(total=num_steps, initial=int(run.step.numpy()), desc="training", unit="step",
               disable=not (progress and chief), dynamic_ncols=True)
    try:
        dataset = inputs.training_batches(
            data, pre, replica_batch, seed, start_index=int(run.next_example.numpy()), num_shards=num_shards,
            shard_index=shard_index, data_service=data_service, budget=budget,
            target_tracks=(None if dann_weight is None else () if source == "cache" else
                           inputs.target_tracks(threedpw_root)),
            target_start=int(run.step.numpy()) * replica_batch)
        batches = _Batches(iter(strategy.distribute_datasets_from_function(
            lambda context: _checked_input(dataset, context, num_shards, shard_index))))
        step_fn = train_step_lib.make_train_step(run.model, run.optimizer, strategy, batch_size,
                                                 dann=dann_weight is not None)
        validation = _validation_fn(run.model, source, pre, validation_examples, seed, roots)
        if chief:
            writer = tf.summary.create_file_writer(str(model_dir / "train"))
            run_dir.write_atomically(model_dir / run_dir.OPERATIVE_CONFIG, gin.operative_config_str())

        began, began_step = time.time(), int(run.step.numpy())
        stop = _StopRequest()
        with writer.as_default(), stop:
            while int(run.step.numpy()) < num_steps and not stop.requested:
                try:
                    features, labels = batches.next(stop)
                except _Stopped:
                    break
                except tf.errors.InvalidArgumentError as error:
                    if pipeline.BadSampleBudget.MESSAGE in str(error):
                        raise BadSampleBudgetError(_budget_message(error, bad_samples, budget,
                                                                   int(run.step.numpy()))) from None
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
            if stop.requested:
                bar.close()
                raise Interrupted(_stop_and_save(run, model_dir, chief))
    except Interrupted:
        raise
    except KeyboardInterrupt:  # a Ctrl-C before the handler was in place, or off the main thread
        bar.close()
        raise Interrupted(_stop_and_save(run, model_dir, chief)) from None
    finally:
        bar.close()
        if batches is not None:
            batches.close()
        sources.log.removeFilter(bad_log)
        writer.flush()
        if not chief:
            shutil.rmtree(run.manager.directory, ignore_errors=True)
    if bad_samples.count:
        print(_bad_sample_summary(bad_samples), file=sys.stderr)
    last["rejected"] = float(rejected.sum())
    return last


def _restore(strategy, model_dir: Path, pre: Preprocessing, model_config, dann_weight, chief: bool, shard_index: int,
             keep_checkpoints: int) -> _Run:
    """The model, optimizer and counters, restored from the newest checkpoint of `model_dir` when there is one."""
    with strategy.scope():
        model = model_config.build(pre.crop_size, pre.channels.names, num_pairs=pre.num_pairs,
                                   dann_weight=dann_weight, flow=pre.flow)
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
    checkpoint as the newest (TF writes a `ckpt-N_temp` folder, then the files, then the `checkpoint` index), removes
    what it half wrote and says so."""
    directory = Path(run.manager.directory)
    step = int(run.step.numpy())
    try:
        directory.mkdir(parents=True, exist_ok=True)
        run_dir.check_free_space(directory, run_dir.checkpoint_bytes(run.last_good, run.model.variables),
                                 newest=run.last_good)
        saved = run.manager.save(checkpoint_number=step)
    except run_dir.RunDirError:
        raise
    except (tf.errors.OpError, OSError) as error:  # ENOSPC is ResourceExhausted, EFBIG OutOfRange, EIO Unknown...
        run_dir.remove_stale_temporaries(directory.parent)
        raise run_dir.RunDirError(
            f"{directory}: saving step {step} failed ({_write_failure(error)}); the newest good checkpoint is still "
            f"{run.last_good or '(none yet)'} — free some space (or fix the disk) and rerun the same command to "
            f"resume from it") from None
    run.last_good = saved if chief else str(model_dir / run_dir.CHECKPOINT_DIR / Path(saved).name)


def _write_failure(error: Exception) -> str:
    """What failed, from TF's "{{function_node ...}} <file>; No space left on device [Op:SaveV2]" or an OSError."""
    text = error.message if isinstance(error, tf.errors.OpError) else str(error)
    text = re.sub(r"\s*\[Op:[^\]]*\]", "", re.sub(r"\{\{[^}]*\}\}\s*", "", text)).strip()
    first = text.splitlines()[0] if text else type(error).__name__
    file, _, why = first.rpartition("; ")
    return f"{why}: {file}" if file else first


def _stop_and_save(run: _Run, model_dir: Path, chief: bool) -> str:
    """After a Ctrl-C: a checkpoint at the last finished step (unless the newest one is it); says where it is."""
    current = int(run.step.numpy())
    if current == 0 and run.last_good is None:
        message = "interrupted before the first step: nothing to save; rerun the same command to start"
    else:
        if run.last_good is None or not run.last_good.endswith(f"ckpt-{current}"):
            _save(run, model_dir, chief)
        message = (f"interrupted at step {current}: saved {run.last_good} (the data position too: next example "
                   f"{int(run.next_example.numpy())}); rerun the same command to resume")
    return message


class _Stopped(Exception):
    """A Ctrl-C arrived while the loop waited for a batch."""


class _StopRequest:
    """Ctrl-C (SIGINT) while training: the first asks the loop to stop — after the step it is in, or at once while it
    waits for data — and save; it also restores SIGINT's default action, so a second Ctrl-C ends the process at once,
    even inside TensorFlow, without saving (the newest checkpoint stays; a kill at any point is safe to resume from).

    Python runs a signal handler only between bytecodes of the main thread, so the loop never blocks inside
    TensorFlow for long: batches come through `_Batches`. Off the main thread (no handler can be set there) Ctrl-C
    stays a KeyboardInterrupt, which the loop also catches.
    """

    def __init__(self):
        self.requested = False
        self._installed = False
        self._previous = None

    def __enter__(self):
        # An ignored SIGINT (`nohup`, a background job of a script) stays ignored.
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is not signal.SIG_IGN):
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def _handle(self, signum, frame):
        self.requested = True
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        # os.write, not print: the handler may run while the main thread is inside a print to stderr.
        os.write(sys.stderr.fileno(), b"\nCtrl-C: stopping and saving a checkpoint at the last finished step "
                                      b"(Ctrl-C again stops at once, without saving)\n")

    def __exit__(self, *exc):
        if self._installed:  # None: a handler set from C, which Python cannot put back
            signal.signal(signal.SIGINT, self._previous if self._previous is not None else signal.default_int_handler)
        return False


class _Batches:
    """The training batches, each fetched on a helper thread while the main thread waits in Python.

    `next(iterator)` can block inside tf.data for as long as no sample is usable (every file broken, a stalled disk
    or data service), and a Ctrl-C is only seen when the main thread runs Python. Waiting here in short slices, the
    loop sees it at once; the fetch is a cancellable function, so the stop cancels it instead of leaving a thread
    inside TensorFlow. The values are the iterator's own, in its order.
    """

    POLL_SECONDS = 0.1
    CANCEL_WAIT_SECONDS = 30.0

    def __init__(self, iterator):
        self._iterator = iterator
        self._cancel = cancellation.CancellationManager()
        self._function = tf.function(lambda: next(iterator), autograph=False)
        self._fetch = self._cancel.get_cancelable_function(self._function.get_concrete_function())

    def next(self, stop: _StopRequest):
        done, box = threading.Event(), {}

        def fetch():
            try:
                box["batch"] = self._fetch()
            except BaseException as error:  # raised again in the main thread
                box["error"] = _without_frames(error)
            finally:
                done.set()

        threading.Thread(target=fetch, name="mhr_tf_batches", daemon=True).start()
        while not done.wait(self.POLL_SECONDS):
            if stop.requested:
                self._cancel.start_cancel()
                done.wait(self.CANCEL_WAIT_SECONDS)
                raise _Stopped()
        if "error" in box:
            raise box.pop("error")
        return box.pop("batch")

    def close(self) -> None:
        """Cancels a pending fetch and destroys the iterator now, which stops tf.data's threads.

        Left alive, a failed run's iterator (held through the traceback: gin re-raises a proxy of the exception that
        sits in a reference cycle) kept calling the Python decoders on tf.data threads while the interpreter shut
        down, and the process aborted with "FATAL: exception not rethrown" instead of exiting with the error."""
        self._cancel.start_cancel()
        self._fetch = self._function = self._iterator = None
        gc.collect()


def _without_frames(error: BaseException) -> BaseException:
    """`error` and the exceptions chained to it, without tracebacks: the helper thread's frames hold the fetch
    function, which holds the iterator, and a failed run's exception lives on (gin re-raises a proxy of it, which sits
    in a reference cycle)."""
    pending, seen = [error], set()
    while pending:
        chained = pending.pop()
        if chained is not None and id(chained) not in seen:
            seen.add(id(chained))
            chained.__traceback__ = None
            pending += [chained.__cause__, chained.__context__]
    return error


class _BadSampleLog(logging.Filter):
    """Rate-limits `sources.BadSamples`' "skipping bad sample" warnings: the first `first` in full, then one summary
    line (count by reason, the latest sample) per `every` more. Every sample is still counted (TensorBoard's
    data/rejected/*, the run's last line)."""

    def __init__(self, bad_samples: sources.BadSamples, first: int = BAD_SAMPLE_LOG_FIRST,
                 every: int = BAD_SAMPLE_LOG_EVERY):
        super().__init__()
        self.bad_samples, self.first, self.every = bad_samples, first, every
        self._seen = 0
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.WARNING or not str(record.msg).startswith("skipping bad sample"):
            return True
        with self._lock:
            self._seen += 1
            seen = self._seen
        if seen < self.first:
            return True
        if seen == self.first:
            record.msg = f"{record.msg} (from now on one line per {self.every} bad samples)"
            return True
        if (seen - self.first) % self.every:
            return False
        record.msg = "%d bad samples skipped so far (%s); the latest: %s: %s"
        record.args = (seen, _by_reason(self.bad_samples), *record.args)
        return True


def _by_reason(bad_samples: sources.BadSamples) -> str:
    return ", ".join(f"{n} × {reason}" for reason, n in sorted(dict(bad_samples.by_reason).items(),
                                                               key=lambda kv: -kv[1]))


def _bad_sample_summary(bad_samples: sources.BadSamples) -> str:
    """One line for the end of a run: how many samples were skipped, why, and one of them."""
    reason = max(bad_samples.by_reason, key=bad_samples.by_reason.get)
    return (f"skipped {bad_samples.count} bad samples ({_by_reason(bad_samples)}); e.g. "
            f"{bad_samples.examples[reason][0]}")


# tf.debugging.Assert's rendering of the budget's data (`pipeline._account`): counts by reason, then the run of bad
# samples and the recent fraction.
_BUDGET_DATA = re.compile(r"\[([\d\s]+)\]\s*\[consecutive:\]\s*\[(\d+)\]\s*\[recent fraction:\]\s*\[([^\]]+)\]")


def _budget_message(error: Exception, bad_samples: sources.BadSamples, budget: pipeline.BadSampleBudget,
                    step: int) -> str:
    """One line: why the budget stopped the run, the rejections by reason, one broken file, and what to do."""
    data = _BUDGET_DATA.search(str(error))
    if data:
        counts = [int(n) for n in data.group(1).split()]
        consecutive, fraction = int(data.group(2)), float(data.group(3))
        why = (f"{consecutive} bad samples in a row (BadSampleBudget.max_consecutive = {budget.max_consecutive})"
               if consecutive > budget.max_consecutive else
               f"{fraction:.0%} of the last {budget.window} samples bad (BadSampleBudget.max_fraction = "
               f"{budget.max_fraction})")
        rejected = ", ".join(f"{n} × {reason}" for reason, n in zip(sources.REASONS, counts) if n)
    else:
        why, rejected = "too many bad samples", _by_reason(bad_samples)
    if bad_samples.count:
        reason = max(bad_samples.by_reason, key=bad_samples.by_reason.get)
        example = bad_samples.examples[reason][0]
        todo = ("fix or remove the broken files, or point train.surreal_root / train.background_root at readable "
                "data")
    else:
        example = None
        todo = "the rejections are by the contract's rules: check the data roots hold the data the contract expects"
    return (f"bad-sample budget exceeded at step {step}: {why}; rejected so far: {rejected or 'none counted'}"
            f"{f'; e.g. {example}' if example else ''} — {todo} (a looser BadSampleBudget lets a run skip more)")


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
    x = np.asarray(flow_input.network_inputs(inputs, pre), np.float32)  # the wire -> the network's groups
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
