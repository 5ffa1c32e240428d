"""Predictors: anything that maps the batch contract's inputs `[B, T-1, S, S, C]` to the SavedModel's outputs
(`export.SERVING_OUTPUTS` for T frames), evaluated and run on videos by the same code (`mhr_tf.evaluate`,
`mhr_tf.predict`): a Keras model, a checkpoint rebuilt from its run directory, a SavedModel, or the mean-pose
baseline. Each knows its preprocessing contract, its body's faces and its body model (to re-pose smoothed
parameters).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

import numpy as np
import tensorflow as tf

from mhr_tf import export, geometry
from mhr_tf.body import smpl
from mhr_tf.data.preprocessing import Channels, Preprocessing
from mhr_tf.model import regressor



@dataclasses.dataclass
class Predictor:
    """inputs `[B, T-1, S, S, C]` float32 -> `{name: [B, T, ...]}` numpy, names from `export.SERVING_OUTPUTS`."""
    fn: Callable[[object], dict]
    pre: Preprocessing            # the contract its inputs are made with
    faces: np.ndarray             # [F, 3] int32 triangles of the predicted body (for drawing)
    name: str
    source: str = ""              # what it came from (checkpoint, SavedModel, "mean pose")
    step: int | None = None       # training step of its weights
    body_model: object = None     # the smpl.BodyModel its outputs are posed with, or a function loading it

    def __call__(self, inputs) -> dict[str, np.ndarray]:
        return self.fn(inputs)

    def body(self) -> smpl.BodyModel:
        """The body model of its predictions (re-posing smoothed parameters needs it)."""
        if callable(self.body_model):
            self.body_model = self.body_model()
        if self.body_model is None:
            raise ValueError(f"{self.name}: its body model is unknown — give Predictor(body_model=...)")
        return self.body_model


def keras_predictor(model, pre: Preprocessing, faces: np.ndarray | None = None, name: str | None = None,
                    source: str = "", step: int | None = None) -> Predictor:
    """A Motion HMR Keras model (built with vertices) as a predictor, through `export.assembled_outputs`."""
    @tf.function(input_signature=[export.input_spec(pre)])
    def call(inputs):
        return export.assembled_outputs(model({"inputs": inputs}, training=False))

    def fn(inputs):
        return {k: v.numpy() for k, v in call(tf.convert_to_tensor(inputs, tf.float32)).items()}
    faces = export.body_faces(model) if faces is None else faces
    return Predictor(fn, pre, faces, name or f"Keras model {model.name}", source, step,
                     model.get_layer("body_model").smpl.body_model)


def checkpoint_predictor(model_dir, checkpoint=None) -> Predictor:
    """The newest (or the given) checkpoint of a training run, rebuilt from its run directory."""
    restored = export.restore_model(model_dir, checkpoint)
    name = f"checkpoint {Path(restored.source).name} (step {restored.step})"
    return keras_predictor(restored.model, restored.pre, restored.faces, name, restored.source, restored.step)


def saved_model_predictor(path) -> Predictor:
    """A SavedModel written by `export.export_saved_model` (`path`: the export directory or one version of it)."""
    version = export.resolve_version(path)
    metadata = export.load_metadata(version)
    loaded = tf.saved_model.load(str(version))
    signature = loaded.signatures[export.SIGNATURE]

    def fn(inputs, _keep_alive=loaded):  # the signature's variables live as long as the loaded object
        outputs = signature(**{export.INPUT_NAME: tf.convert_to_tensor(inputs, tf.float32)})
        return {k: v.numpy() for k, v in outputs.items()}
    config = metadata.config
    return Predictor(fn, metadata.pre, metadata.faces, f"SavedModel {version}", str(version), metadata.step,
                     lambda: smpl.load_body_model(config.body_model_path, config.gender))


def mean_pose_predictor(pre: Preprocessing | None = None, body_model_path=None) -> Predictor:
    """The baseline that ignores its input: HMR's mean parameters (`regressor.mean_parameters`) on every frame,
    through the neutral body of `body_model_path`. Its inputs are made by `pre` (default: the paper's) with no
    channel but the occlusion indicator, so its frames and boxes are those of a model with that contract."""
    pre = dataclasses.replace(pre or Preprocessing(), channels=Channels(False, False, False))
    body = smpl.load_body_model(body_model_path, "neutral")
    theta = regressor.mean_parameters()
    pose, betas, camera = (np.asarray(x, np.float32) for x in regressor.split_parameters(theta))
    vertices, joints24 = smpl.forward_numpy(body, betas[None], pose[None])
    joints14 = np.einsum("kv,vc->kc", body.lsp_regressor, vertices[0]).astype(np.float32)
    frame = {"pose": pose, "betas": betas, "camera": camera, "joints3d": joints14, "smpl_joints3d": joints24[0],
             "keypoints2d": geometry.weak_perspective_project(joints14, camera).astype(np.float32),
             "vertices": vertices[0]}

    def fn(inputs):
        batch = int(inputs.shape[0])
        return {k: np.broadcast_to(v, (batch, pre.num_frames) + v.shape) for k, v in frame.items()}
    return Predictor(fn, pre, body.faces, "mean pose (baseline)", "mean pose", body_model=body)


def load_predictor(model_dir=None, saved_model=None, checkpoint=None) -> Predictor:
    """A checkpoint's predictor (`model_dir`, optionally `checkpoint`) or a SavedModel's."""
    if (model_dir is None) == (saved_model is None):
        raise ValueError("give exactly one of a model directory (checkpoints) and a SavedModel directory")
    if saved_model is not None:
        return saved_model_predictor(saved_model)
    return checkpoint_predictor(model_dir, checkpoint)
