"""Export Motion HMR as a SavedModel that TF Serving loads, and restore a trained model from its run directory.

Layout (TF Serving watches `<export_dir>` and serves the highest numbered version):
```
<export_dir>/<version>/saved_model.pb, variables/, assets/      the SavedModel
<export_dir>/<version>/assets.extra/preprocessing.json            the preprocessing contract it was trained with
<export_dir>/<version>/assets.extra/model.json                    the network's settings
<export_dir>/<version>/assets.extra/mhr_tf.json                   what it serves: signature, shapes, source, step
<export_dir>/<version>/assets.extra/faces.npy                     [F, 3] int32 triangles of its body model
```
Signature `serving_default`:
  input  `inputs`: float32 `[B, T-1, S, S, C]`, the paired-box inputs of one T-frame window as the contract makes
         them (`mhr_tf.data.pipeline.network_inputs`; channel groups in `preprocessing.json`'s order).
  outputs, T frames assembled as App. B says (the T-1 "current" predictions, then the last pair's "future" one):
         `pose` [B, T, 72] SMPL axis-angle, root in the camera frame; `betas` [B, T, 10];
         `camera` [B, T, 3] HMR weak perspective (s, tx, ty) in the normalized coordinates of box min(t, T-2);
         `joints3d` [B, T, 14, 3] LSP_14 and `smpl_joints3d` [B, T, 24, 3] SMPL_24, metres, body frame (root joint at
         its rest position, camera-frame orientation); `keypoints2d` [B, T, 14, 2] normalized crop coordinates;
         `vertices` [B, T, V, 3] metres, body frame.
The serving input is the preprocessed pairs, not raw frames: boxes, flow and keypoint heatmaps are computed outside
the graph by the contract (`mhr_tf.predict` does it for a video), exactly as at training time.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import tensorflow as tf

from mhr_tf.data.preprocessing import ContractError, Preprocessing
from mhr_tf.model import motion_hmr
from mhr_tf.training import run_dir

# The outputs a served model returns, per frame of the window (see the module docstring).
SERVING_OUTPUTS = ("pose", "betas", "camera", "joints3d", "smpl_joints3d", "keypoints2d", "vertices")
SIGNATURE = "serving_default"
INPUT_NAME = "inputs"
# TF Serving ignores `assets.extra/` (it holds warm-up requests there); our metadata rides along in it.
METADATA_DIR = "assets.extra"
SERVING_FILE = "mhr_tf.json"
FACES_FILE = "faces.npy"
SERVING_FORMAT = "mhr_tf.serving/2"


class ExportError(ValueError):
    """A model directory, checkpoint or export directory that cannot serve the request."""


@dataclasses.dataclass
class RestoredModel:
    """A trained Motion HMR rebuilt from its run directory, with a checkpoint's weights."""
    model: object                 # keras.Model, built with vertices
    pre: Preprocessing            # the contract it was trained with
    config: motion_hmr.ModelConfig
    faces: np.ndarray             # [F, 3] int32, the body model's triangles
    source: str                   # the checkpoint
    step: int


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


def input_spec(pre: Preprocessing) -> tf.TensorSpec:
    """What the serving signature takes: the contract's wire (`pre.wire_channels`; with flow in the model the pair
    crops, which the model's first layer turns into flow, else the network's channel groups)."""
    return tf.TensorSpec([None, pre.num_pairs, pre.crop_size, pre.crop_size, pre.wire_channels], tf.float32,
                         name=INPUT_NAME)


# --------------------------------------------------------------------------------------------------------------------
# Restoring a trained model from its run directory (preprocessing.json, model.json, checkpoints)

def checkpoint_channels(checkpoint: str) -> int | None:
    """C of the first convolution's kernel stored in a checkpoint (None if it has no such variable)."""
    for name, shape in tf.train.list_variables(checkpoint):
        if name.startswith("model/") and len(shape) == 4 and shape[:2] == [7, 7]:
            return int(shape[2])
    return None


def restore_model(model_dir, checkpoint=None) -> RestoredModel:
    """Rebuild the network from the run's `preprocessing.json` and `model.json` and load a checkpoint (default: the
    newest in `model_dir`). Fails if the checkpoint does not fit the contract or the network."""
    try:
        pre, config = run_dir.read_run(model_dir)
    except (ContractError, ValueError) as error:
        raise ExportError(str(error)) from None
    checkpoint = str(checkpoint) if checkpoint is not None else run_dir.latest_checkpoint(model_dir)
    stored = checkpoint_channels(checkpoint)
    if stored is not None and stored != pre.channels.count:
        raise ContractError(f"{checkpoint}: the checkpoint's first convolution reads {stored} input channels, the "
                            f"contract {Path(model_dir) / 'preprocessing.json'} gives {pre.channels.count} "
                            f"({' + '.join(pre.channels.names)}); they come from different runs")
    model = config.build(pre.crop_size, pre.channels.names, num_pairs=pre.num_pairs, with_vertices=True,
                         pretrained=False, flow=pre.flow)
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
        raise ExportError(f"{checkpoint}: the checkpoint does not fit the network of {Path(model_dir) / 'model.json'}"
                          f" ({str(error).splitlines()[0][:200]})") from None
    return RestoredModel(model, pre, config, body_faces(model), checkpoint, int(step.numpy()))


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


def export_saved_model(model, pre: Preprocessing, config: motion_hmr.ModelConfig, export_dir,
                       version: int | None = None, faces: np.ndarray | None = None, source: str = "",
                       step: int | None = None) -> Path:
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

    spec = input_spec(pre)
    servable = Servable(model, spec)
    export_dir.mkdir(parents=True, exist_ok=True)
    tf.saved_model.save(servable, str(partial), signatures={SIGNATURE: servable.serve})
    metadata = partial / METADATA_DIR
    metadata.mkdir(exist_ok=True)
    pre.save(metadata)
    config.save(metadata)
    (metadata / SERVING_FILE).write_text(json.dumps({
        "format": SERVING_FORMAT, "signature": SIGNATURE, "input": INPUT_NAME, "input_shape": spec.shape.as_list(),
        "outputs": list(SERVING_OUTPUTS), "source": source, "step": step}, indent=2) + "\n")
    np.save(metadata / FACES_FILE, np.asarray(body_faces(model) if faces is None else faces, np.int32))
    partial.rename(target)
    return target


def export_checkpoint(model_dir, export_dir, version: int | None = None, checkpoint=None) -> Path:
    """Restore a trained model from its run directory and export it (see `export_saved_model`)."""
    restored = restore_model(model_dir, checkpoint)
    return export_saved_model(restored.model, restored.pre, restored.config, export_dir, version, restored.faces,
                              restored.source, restored.step)


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


@dataclasses.dataclass
class Metadata:
    """What an exported SavedModel carries beside its graph."""
    pre: Preprocessing
    config: motion_hmr.ModelConfig
    faces: np.ndarray
    source: str
    step: int | None


def load_metadata(version_dir) -> Metadata:
    """The contract, model settings, serving record and body faces stored beside a SavedModel."""
    metadata = Path(version_dir) / METADATA_DIR
    serving_path = metadata / SERVING_FILE
    try:
        serving = json.loads(serving_path.read_text())
        pre = Preprocessing.load(metadata)
        config = motion_hmr.ModelConfig.load(metadata)
    except FileNotFoundError:
        raise ExportError(f"{serving_path}: missing — not a SavedModel exported by mhr_tf.export") from None
    except (json.JSONDecodeError, ValueError) as error:
        raise ExportError(f"{metadata}: unreadable metadata ({error})") from None
    if serving.get("format") != SERVING_FORMAT:
        raise ExportError(f"{serving_path}: format {serving.get('format')!r} — expected {SERVING_FORMAT!r} "
                          "(re-export the model with this version)")
    expected = input_spec(pre).shape.as_list()
    if serving.get("input_shape") != expected:
        raise ContractError(f"{serving_path}: the SavedModel takes inputs {serving.get('input_shape')}, its contract "
                            f"{metadata / 'preprocessing.json'} makes {expected}")
    return Metadata(pre, config, np.load(metadata / FACES_FILE).astype(np.int32), str(serving.get("source", "")),
                    serving.get("step"))
