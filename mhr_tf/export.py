"""Export Motion HMR as a SavedModel that TF Serving loads, and restore a trained model from its model directory.

Layout (TF Serving watches `<export_dir>` and serves the highest numbered version):
```
<export_dir>/<version>/saved_model.pb, variables/, assets/     the SavedModel
<export_dir>/<version>/assets.extra/mhr_tf.json                  the preprocessing it expects (ServingConfig)
<export_dir>/<version>/assets.extra/faces.npy                    [F, 3] int32 triangles of its body model
```
Signature `serving_default`:
  input  `inputs`: float32 `[B, T-1, S, S, C]`, the batch contract's paired-box inputs of one T-frame window, as
         `mhr_tf.data.pipeline.network_inputs` makes them (channels in the order of `mhr_tf.json`'s "channels").
  outputs, T frames assembled as App. B says (the T-1 "current" predictions, then the last pair's "future" one):
         `pose` [B, T, 72] SMPL axis-angle, root in the camera frame; `betas` [B, T, 10];
         `camera` [B, T, 3] HMR weak perspective (s, tx, ty) in the normalized coordinates of box min(t, T-2);
         `joints3d` [B, T, 14, 3] LSP_14 and `smpl_joints3d` [B, T, 24, 3] SMPL_24, metres, body frame (root joint at
         its rest position, camera-frame orientation); `keypoints2d` [B, T, 14, 2] normalized crop coordinates;
         `vertices` [B, T, V, 3] metres, body frame.
The serving input is the preprocessed pairs, not raw frames: flow and keypoint heatmaps are computed outside the
graph (OpenCV flow, OpenPose keypoints), exactly as at training time.
"""
from __future__ import annotations

import dataclasses
import inspect
import json
import shutil
from pathlib import Path

import gin
import numpy as np
import tensorflow as tf

from mhr_tf import train
from mhr_tf.data import pipeline
from mhr_tf.model import motion_hmr, trunk

# The outputs a served model returns, per frame of the window (see the module docstring).
SERVING_OUTPUTS = ("pose", "betas", "camera", "joints3d", "smpl_joints3d", "keypoints2d", "vertices")
SIGNATURE = "serving_default"
INPUT_NAME = "inputs"
# TF Serving ignores `assets.extra/` (it holds warm-up requests there); our metadata rides along in it.
METADATA_DIR = "assets.extra"
CONFIG_FILE = "mhr_tf.json"
FACES_FILE = "faces.npy"
CONFIG_FORMAT = "mhr_tf.serving/1"
CHECKPOINT_DIR = "checkpoints"  # where mhr_tf.train keeps its CheckpointManager files
OPERATIVE_CONFIG = "operative_config.gin"  # what mhr_tf.train writes into the model directory


class ExportError(ValueError):
    """A model directory, checkpoint or export directory that cannot serve the request."""


@dataclasses.dataclass(frozen=True)
class ServingConfig:
    """The preprocessing a model expects: the same for the Keras model, its checkpoint and its SavedModel."""
    num_frames: int               # T, frames per window (paper §4: 31)
    crop_size: int                # S, pixels (App. A: 224)
    channels: tuple[str, ...]     # input groups, `mhr_tf.model.trunk.CHANNEL_GROUPS` order
    flow_backend: str             # mhr_tf.data.flow backend the model was trained with
    source: str = ""              # what it came from (checkpoint path, "mean pose", ...)
    step: int | None = None       # training step of the checkpoint

    @property
    def num_pairs(self) -> int:
        return self.num_frames - 1

    @property
    def num_channels(self) -> int:
        return trunk.num_channels(self.channels)

    def to_json(self) -> dict:
        return {"format": CONFIG_FORMAT, "num_frames": self.num_frames, "crop_size": self.crop_size,
                "channels": list(self.channels), "flow_backend": self.flow_backend, "source": self.source,
                "step": self.step, "signature": SIGNATURE, "input": INPUT_NAME,
                "input_shape": [None, self.num_pairs, self.crop_size, self.crop_size, self.num_channels],
                "outputs": list(SERVING_OUTPUTS)}

    @classmethod
    def from_json(cls, content: dict, path) -> "ServingConfig":
        try:
            return cls(num_frames=int(content["num_frames"]), crop_size=int(content["crop_size"]),
                       channels=tuple(content["channels"]), flow_backend=str(content["flow_backend"]),
                       source=str(content.get("source", "")), step=content.get("step"))
        except (KeyError, TypeError, ValueError) as error:
            raise ExportError(f"{path}: not an mhr_tf serving config ({type(error).__name__}: {error}) — expected "
                              f"keys num_frames, crop_size, channels, flow_backend") from None


@dataclasses.dataclass
class RestoredModel:
    """A trained Motion HMR rebuilt from its gin config, with its checkpoint's weights."""
    model: object            # keras.Model, built with vertices
    config: ServingConfig
    faces: np.ndarray        # [F, 3] int32, the body model's triangles


def assembled_outputs(outputs: dict) -> dict:
    """The model's per-pair outputs `[B, T-1, ...]` -> `SERVING_OUTPUTS` for all T frames (App. B's assembly).

    Drops what serving does not return ("features", "domain/logits"); "vertices" only when the model has them.
    """
    heads = {k: v for k, v in outputs.items()
             if k.startswith(("current/", "future/")) and k.split("/", 1)[1] in SERVING_OUTPUTS}
    frames = motion_hmr.assemble_sequence(heads)
    return {name: frames[name] for name in SERVING_OUTPUTS if name in frames}


def body_faces(model) -> np.ndarray:
    """[F, 3] int32 triangles of the body model inside a Motion HMR Keras model."""
    return np.asarray(model.get_layer("body_model").smpl.body_model.faces, np.int32)


# --------------------------------------------------------------------------------------------------------------------
# Restoring a trained model from <model_dir> (checkpoints + operative_config.gin)

def _gin_value(name: str, default):
    try:
        return gin.query_parameter(name)
    except ValueError:  # not bound: the function's default applies, as it did at training time
        return default


def training_config(model_dir=None, gin_files=(), gin_params=()) -> ServingConfig:
    """Parse the gin config a model was trained with and return its preprocessing settings.

    `gin_files` default to `<model_dir>/operative_config.gin` (what `train()` wrote). The parsed bindings stay
    active, so that `mhr_tf.train.build_model()` then builds the same network.
    """


    files = list(gin_files)
    if not files:
        if model_dir is None:
            raise ExportError("training_config: give a model directory or gin files")
        operative = Path(model_dir) / OPERATIVE_CONFIG
        if not operative.is_file():
            raise ExportError(f"{operative}: missing — expected the gin config train() writes into the model "
                              "directory; pass the run's gin files with --gin_file instead")
        files = [str(operative)]
    with gin.unlock_config():
        gin.clear_config()
        train.parse_gin(files, gin_params)
    defaults = inspect.signature(train.train).parameters
    dataset_defaults = inspect.signature(pipeline.make_dataset).parameters
    return ServingConfig(
        num_frames=int(_gin_value("train.num_frames", defaults["num_frames"].default)),
        crop_size=int(_gin_value("train.crop_size", defaults["crop_size"].default)),
        channels=pipeline.Channels().names,
        flow_backend=str(_gin_value("make_dataset.flow_backend", dataset_defaults["flow_backend"].default)))


def latest_checkpoint(model_dir) -> str:
    """The newest checkpoint prefix in `<model_dir>/checkpoints`."""
    directory = Path(model_dir) / CHECKPOINT_DIR
    path = tf.train.latest_checkpoint(str(directory))
    if path is None:
        raise ExportError(f"{directory}: no checkpoint — expected the ckpt-<step> files train() writes")
    return path


def restore_model(model_dir=None, gin_files=(), gin_params=(), checkpoint=None) -> RestoredModel:
    """Rebuild the network from the run's gin config and load a checkpoint (default: the newest in `model_dir`).

    Fails if the checkpoint does not fit the network the config builds (e.g. the wrong gin file was given).
    """
    config = training_config(model_dir, gin_files, gin_params)
    checkpoint = str(checkpoint) if checkpoint is not None else latest_checkpoint(model_dir)
    model = train.build_model(crop_size=config.crop_size, channels=config.channels, num_pairs=config.num_pairs,
                              with_vertices=True)
    step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    root = tf.train.Checkpoint(model=model, step=step)
    # A variable the checkpoint's object graph cannot reach was never saved: it would keep its random initial value
    # and the "trained" model would differ at every restore. Refuse rather than evaluate such a model.
    reachable = {id(obj) for obj in tf.train.TrackableView(root).descendants()}
    untracked = [v.path for v in model.variables if id(v) not in reachable and "seed_generator" not in v.path]
    if untracked:
        raise ExportError(f"{checkpoint}: the model's variables {untracked[:6]}{' ...' if len(untracked) > 6 else ''}"
                          f" ({len(untracked)} in all) are not tracked by tf.train.Checkpoint, so no checkpoint "
                          "holds them and they would be random after every restore; the layer that owns them must "
                          "track them (e.g. as attributes, not in a plain list), and the model retrained")
    status = root.restore(checkpoint).expect_partial()
    try:
        status.assert_existing_objects_matched()
    except AssertionError as error:
        raise ExportError(f"{checkpoint}: the checkpoint does not fit the network built from the gin config "
                          f"({str(error).splitlines()[0][:200]}) — evaluate with the gin files the run was trained "
                          "with") from None
    config = dataclasses.replace(config, source=checkpoint, step=int(step.numpy()))
    return RestoredModel(model=model, config=config, faces=body_faces(model))


# --------------------------------------------------------------------------------------------------------------------
# SavedModel

def next_version(export_dir) -> int:
    """One more than the highest numbered version in `export_dir` (1 for a new directory)."""
    export_dir = Path(export_dir)
    versions = [int(p.name) for p in export_dir.iterdir() if p.is_dir() and p.name.isdigit()] \
        if export_dir.is_dir() else []
    return max(versions, default=0) + 1


class Servable(tf.Module):
    """The Keras model's variables and one `tf.function` with a fixed input signature: what TF Serving calls."""

    def __init__(self, model, spec: tf.TensorSpec):
        super().__init__(name="motion_hmr")
        self.model = model
        self.serve = tf.function(lambda inputs: assembled_outputs(model({"inputs": inputs}, training=False)),
                                 input_signature=[spec], autograph=False)


def export_saved_model(model, config: ServingConfig, export_dir, version: int | None = None,
                       faces: np.ndarray | None = None) -> Path:
    """Write `model` as `<export_dir>/<version>/` (default: the next version); returns that directory.

    The version directory appears at once, fully written (written under a temporary name, then renamed), because
    TF Serving loads a new version as soon as it sees it.
    """
    export_dir = Path(export_dir)
    version = next_version(export_dir) if version is None else int(version)
    target = export_dir / str(version)
    if target.exists():
        raise ExportError(f"{target}: version {version} exists already — TF Serving would not reload it; choose "
                          "another --version or leave it out for the next one")
    partial = export_dir / f".partial-{version}"  # not a number: TF Serving ignores it
    if partial.exists():
        shutil.rmtree(partial)

    servable = Servable(model, tf.TensorSpec(
        [None, config.num_pairs, config.crop_size, config.crop_size, config.num_channels], tf.float32,
        name=INPUT_NAME))
    export_dir.mkdir(parents=True, exist_ok=True)
    tf.saved_model.save(servable, str(partial), signatures={SIGNATURE: servable.serve})
    metadata = partial / METADATA_DIR
    metadata.mkdir(exist_ok=True)
    (metadata / CONFIG_FILE).write_text(json.dumps(config.to_json(), indent=2) + "\n")
    np.save(metadata / FACES_FILE, np.asarray(body_faces(model) if faces is None else faces, np.int32))
    partial.rename(target)
    return target


def export_checkpoint(model_dir, export_dir, version: int | None = None, gin_files=(), gin_params=(),
                      checkpoint=None) -> Path:
    """Restore a trained model from its model directory and export it (see `export_saved_model`)."""
    restored = restore_model(model_dir, gin_files, gin_params, checkpoint)
    return export_saved_model(restored.model, restored.config, export_dir, version, restored.faces)


def resolve_version(path) -> Path:
    """`path` itself when it holds a saved_model.pb, else its highest numbered version directory that does."""
    path = Path(path)
    if (path / "saved_model.pb").is_file():
        return path
    versions = sorted((int(p.name), p) for p in path.iterdir() if p.name.isdigit() and
                      (p / "saved_model.pb").is_file()) if path.is_dir() else []
    if not versions:
        raise ExportError(f"{path}: no saved_model.pb here nor in a numbered version directory — expected "
                          "<export_dir>/<version>/saved_model.pb as export.py writes it")
    return versions[-1][1]


def load_metadata(version_dir) -> tuple[ServingConfig, np.ndarray]:
    """The serving config and the body model's faces stored beside a SavedModel."""
    metadata = Path(version_dir) / METADATA_DIR
    config_path = metadata / CONFIG_FILE
    try:
        content = json.loads(config_path.read_text())
    except FileNotFoundError:
        raise ExportError(f"{config_path}: missing — not a SavedModel exported by mhr_tf.export") from None
    except json.JSONDecodeError as error:
        raise ExportError(f"{config_path}: not valid JSON ({error})") from None
    faces = np.load(metadata / FACES_FILE)
    return ServingConfig.from_json(content, config_path), faces.astype(np.int32)
