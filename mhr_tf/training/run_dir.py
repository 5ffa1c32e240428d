"""A training run's directory: what the run trained with, and its checkpoints.

    <model_dir>/preprocessing.json    the preprocessing contract (`mhr_tf.data.preprocessing.Preprocessing`)
    <model_dir>/model.json            the network's settings (`mhr_tf.model.motion_hmr.ModelConfig`)
    <model_dir>/operative_config.gin  what gin bound, for people to read (never read back)
    <model_dir>/checkpoints/ckpt-<step>.*
    <model_dir>/train/                TensorBoard

Evaluation, export and prediction rebuild a model from the two JSON files and a checkpoint; gin is not involved.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf

from mhr_tf.data.preprocessing import FILE_NAME as PREPROCESSING_FILE
from mhr_tf.data.preprocessing import Preprocessing
from mhr_tf.model.motion_hmr import MODEL_CONFIG_FILE, ModelConfig

CHECKPOINT_DIR = "checkpoints"
OPERATIVE_CONFIG = "operative_config.gin"
# Free space a checkpoint save needs beyond the newest checkpoint's size, for the files that are not weights.
SAVE_HEADROOM_BYTES = 16 * 2 ** 20


class RunDirError(OSError):
    """A model directory that cannot be used as asked: not writable, full, or trained with other settings."""


def check_writable(model_dir: Path) -> None:
    """Creates `model_dir` if needed and proves it writable, or says what to do."""
    try:
        model_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=model_dir, prefix=".write_check_"):
            pass
    except OSError as error:
        blocker = next((p for p in (model_dir, *model_dir.parents) if p.exists() and not p.is_dir()), None)
        why = f"{blocker} is a file" if blocker else error.strerror or str(error)
        raise RunDirError(f"{model_dir}: the model directory is not writable ({why}); choose another --model_dir "
                          f"or fix its permissions") from None


def write_run(model_dir: Path, pre: Preprocessing, model: ModelConfig) -> None:
    """Writes the run's contract and model settings; a run directory that holds other ones (a resumed run whose
    configs changed) is refused, naming what differs."""
    for name, new, load in ((PREPROCESSING_FILE, pre, Preprocessing.load),
                            (MODEL_CONFIG_FILE, model, ModelConfig.load)):
        path = model_dir / name
        if path.exists():
            old = load(model_dir)
            if old != new:
                changed = _differences(old.to_json(), new.to_json())
                raise RunDirError(f"{path}: this run was trained with other settings ({'; '.join(changed)}); "
                                  f"resume it with its own configs, or train into a new --model_dir")
    pre.save(model_dir)
    model.save(model_dir)


def _differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return out


def read_run(model_dir) -> tuple[Preprocessing, ModelConfig]:
    """The contract and model settings a run trained with."""
    model_dir = Path(model_dir)
    return Preprocessing.load(model_dir), ModelConfig.load(model_dir)


def latest_checkpoint(model_dir) -> str:
    """The newest checkpoint prefix in `<model_dir>/checkpoints`."""
    directory = Path(model_dir) / CHECKPOINT_DIR
    path = tf.train.latest_checkpoint(str(directory))
    if path is None:
        raise RunDirError(f"{directory}: no checkpoint — expected the ckpt-<step> files training writes")
    return path


def remove_stale_temporaries(model_dir: Path) -> list[Path]:
    """Deletes the `*_temp*` folders a killed save leaves in the checkpoint directory; returns them."""
    stale = sorted(p for p in (model_dir / CHECKPOINT_DIR).glob("*_temp*")) if model_dir.is_dir() else []
    for path in stale:
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    return stale


def checkpoint_bytes(prefix: str | None, variables) -> int:
    """Bytes a save writes: the newest checkpoint's files when there is one, else three times the model's variables
    (the weights and Adam's two moments)."""
    if prefix:
        files = list(Path(prefix).parent.glob(Path(prefix).name + ".*"))
        if files:
            return sum(f.stat().st_size for f in files)
    return 3 * sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in variables)


def check_free_space(directory: Path, needed: int, newest: str | None = None) -> None:
    """Refuses a save that would not fit, before it starts (a failed save can leave a half-written checkpoint);
    `newest`, the checkpoint a rerun resumes from, for the message."""
    free = shutil.disk_usage(directory).free
    if free < needed + SAVE_HEADROOM_BYTES:
        resume = f"resume from {newest}" if newest else "start"
        raise RunDirError(f"{directory}: {free / 2 ** 20:.1f} MiB free, a checkpoint needs about "
                          f"{(needed + SAVE_HEADROOM_BYTES) / 2 ** 20:.1f} MiB; free some space and rerun the same "
                          f"command to {resume}")


def write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)

