"""Motion HMR (paper §3.2, Fig. 3, App. B): trunk per paired box -> BiLSTM over pairs -> current and future heads.

Inputs and outputs follow the batch contract: `{"inputs": [B, P, S, S, C]}` (with flow in the model, the contract's
wire `[B, P, S, S, W]`, and `flow_input.PairFlow` first) -> for head in ("current", "future"):
f"{head}/pose" [B, P, 72], f"{head}/betas" [B, P, 10], f"{head}/camera" [B, P, 3], f"{head}/joints3d" [B, P, 14, 3]
(LSP_14, metres, body frame: root joint at its rest position, no translation), f"{head}/smpl_joints3d"
[B, P, 24, 3], f"{head}/keypoints2d" [B, P, 14, 2] (HMR's normalized crop coordinates), optionally f"{head}/vertices"
[B, P, V, 3]; "features" [B, P, D] (trunk output); "domain/logits" [B, P] with a DANN adversary.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import keras
import tensorflow as tf
from keras import ops

from mhr_tf import geometry
from mhr_tf.body import joints as joint_sets
from mhr_tf.body import smpl
from mhr_tf.data.preprocessing import FlowSettings, group_width, wire_groups
from mhr_tf.model import dann, flow_input, regressor, temporal, trunk

HEADS = ("current", "future")
# App. B: "we add another layer of 1024 units on top of this for each of the prediction heads".
HEAD_UNITS = 1024
# The paper's best model (Table 1, "flow + keypoints"), plus the total-occlusion indicator of the batch contract.
DEFAULT_CHANNELS = ("flow", "heatmaps", "occlusion")
FULL_CROP_SIZE = 224  # App. A


@keras.saving.register_keras_serializable(package="mhr_tf")
class BodyModelHead(keras.layers.Layer):
    """theta `[B, P, 85]` -> the parameters, the SMPL layer's joints (and vertices) and their 2D projection.

    Projection: HMR's weak perspective, x = s (X[:2] + (tx, ty)), into the normalized crop coordinates of the
    pair's box.
    """

    def __init__(self, model_path: str | None = None, gender: str = "neutral", with_vertices: bool = False,
                 **kwargs):
        super().__init__(**kwargs)
        self.model_path = None if model_path is None else str(model_path)
        self.gender = gender
        self.with_vertices = bool(with_vertices)
        self.smpl = smpl.SMPLLayer(self.model_path, gender, name="smpl")
        self.num_vertices = self.smpl.body_model.num_vertices

    def build(self, input_shape):
        self.smpl.build((None, regressor.BETAS_DIM))  # no weights: the body model's arrays are constants
        super().build(input_shape)

    def call(self, theta):
        shape = ops.shape(theta)
        pose, betas, camera = regressor.split_parameters(theta)
        body = self.smpl(ops.reshape(betas, (-1, regressor.BETAS_DIM)), ops.reshape(pose, (-1, regressor.POSE_DIM)))

        def unfold(x):  # [B * P, ...] -> [B, P, ...]
            return ops.reshape(x, (shape[0], shape[1]) + tuple(x.shape[1:]))

        joints14 = unfold(body["joints14"])  # [B, P, 14, 3]
        outputs = {"pose": pose, "betas": betas, "camera": camera, "joints3d": joints14,
                   "smpl_joints3d": unfold(body["joints"]),
                   "keypoints2d": geometry.weak_perspective_project(joints14, camera)}
        if self.with_vertices:
            outputs["vertices"] = unfold(body["vertices"])
        return outputs

    def compute_output_shape(self, input_shape):
        leading = tuple(input_shape[:-1])
        shapes = {"pose": leading + (regressor.POSE_DIM,), "betas": leading + (regressor.BETAS_DIM,),
                  "camera": leading + (regressor.CAMERA_DIM,), "joints3d": leading + (len(joint_sets.LSP_14), 3),
                  "smpl_joints3d": leading + (len(joint_sets.SMPL_24), 3),
                  "keypoints2d": leading + (len(joint_sets.LSP_14), 2)}
        if self.with_vertices:
            shapes["vertices"] = leading + (self.num_vertices, 3)
        return shapes

    def get_config(self):
        return {**super().get_config(), "model_path": self.model_path, "gender": self.gender,
                "with_vertices": self.with_vertices}


def build_model(crop_size: int = FULL_CROP_SIZE, channels=DEFAULT_CHANNELS, architecture: str = "resnet50",
                lstm_units: int = temporal.LSTM_UNITS, head_units: int = HEAD_UNITS,
                regressor_units: int = regressor.IEF_HIDDEN_UNITS, iterations: int = regressor.IEF_ITERATIONS,
                dropout: float = regressor.IEF_DROPOUT, num_pairs: int | None = None,
                body_model_path: str | Path | None = None, gender: str = "neutral",
                pretrained_weights: str | Path | None = None, dann_weight: float | None = None,
                adversary_units: int = dann.ADVERSARY_UNITS, with_vertices: bool = False,
                fused_batch_norm: bool = False, flow: FlowSettings | None = None) -> keras.Model:
    """Motion HMR as a Keras functional model, `{"inputs": [B, P, S, S, W]}` -> the batch contract's outputs.

    `channels`: the input groups present, in `trunk.CHANNEL_GROUPS` order. `architecture`: a `trunk.ARCHITECTURES`
    key ("resnet50" for the paper, "resnet_tiny" for tests and the demo). `num_pairs`: P, or None for any clip length
    (no weight depends on it). `body_model_path`: an SMPL file or directory, None for the open body model.
    `pretrained_weights`: a 3-channel weights file for the trunk (`trunk.load_pretrained`), None or missing = from
    scratch. `dann_weight`: with a value, a domain adversary behind gradient reversal of that weight (App. B) adds
    "domain/logits". `fused_batch_norm`: the trunk's BatchNormalization by TensorFlow's fused op (same weights and
    results; a full-size training step takes ~20-30% less CPU, `benchmarks/model.json`).
    `flow`: the contract's flow settings; with placement "model" (and a flow group in `channels`) the inputs are the
    contract's wire groups (`preprocessing.wire_groups`: the pair crops in place of rgb and flow, W channels) and a
    frozen first layer computes the flow (`flow_input.PairFlow`); otherwise (None, or placement "pipeline") the inputs
    are the network's channel groups, W = C.
    """
    pair_trunk = trunk.PairTrunk(crop_size, channels, architecture, fused_batch_norm, name="trunk")
    wire = wire_groups(pair_trunk.channels, flow.placement if flow is not None else "pipeline")
    inputs = keras.Input((num_pairs, crop_size, crop_size, sum(map(group_width, wire))), name="inputs")
    network_inputs = inputs
    if wire != pair_trunk.channels:
        network_inputs = flow_input.PairFlow(pair_trunk.channels, flow.backend, flow.divisor, flow.tvl1,
                                             name="flow")(inputs)  # [B, P, S, S, C]
    features = pair_trunk(network_inputs)  # [B, P, D]
    if pretrained_weights is not False:  # False: a checkpoint's weights will replace them, nothing to load or say
        trunk.load_pretrained(pair_trunk, pretrained_weights)
    context = temporal.bidirectional_lstm(lstm_units)(features)  # [B, P, 2 * lstm_units]
    body = BodyModelHead(body_model_path, gender, with_vertices, name="body_model")
    outputs = {}
    for head in HEADS:
        hidden = keras.layers.Dense(head_units, activation="relu", name=f"{head}_fc")(context)
        theta = regressor.IterativeRegressor(regressor_units, iterations, dropout, name=f"{head}_regressor")(hidden)
        outputs.update({f"{head}/{key}": value for key, value in body(theta).items()})
    outputs["features"] = features
    if dann_weight is not None:
        outputs["domain/logits"] = dann.DomainAdversary(dann_weight, adversary_units, name="domain_adversary")(
            features)
    return keras.Model({"inputs": inputs}, outputs, name="motion_hmr")


MODEL_CONFIG_FORMAT = "mhr_tf.model/1"
MODEL_CONFIG_FILE = "model.json"


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The network's own settings (`build_model`'s), saved as JSON beside every checkpoint and SavedModel so that a
    trained model is rebuilt from its run directory alone. What the inputs look like (crop, channels, clip length)
    is the preprocessing contract's, not this; DANN's weight is the training run's."""
    architecture: str = "resnet50"
    lstm_units: int = temporal.LSTM_UNITS
    head_units: int = HEAD_UNITS
    regressor_units: int = regressor.IEF_HIDDEN_UNITS
    iterations: int = regressor.IEF_ITERATIONS
    dropout: float = regressor.IEF_DROPOUT
    body_model_path: str | None = None
    gender: str = "neutral"
    pretrained_weights: str | None = None
    adversary_units: int = dann.ADVERSARY_UNITS
    fused_batch_norm: bool = False

    def build(self, crop_size: int, channels, num_pairs: int | None = None, with_vertices: bool = False,
              dann_weight: float | None = None, pretrained: bool = True, flow: FlowSettings | None = None
              ) -> keras.Model:
        """`build_model` with these settings for inputs of `crop_size` and `channels`, with the contract's `flow`
        settings (placement "model": the frozen flow layer first); `pretrained=False` skips the ImageNet weights
        file (a checkpoint's weights replace them anyway)."""
        kwargs = dataclasses.asdict(self)
        if not pretrained:
            kwargs["pretrained_weights"] = False
        return build_model(crop_size=crop_size, channels=channels, num_pairs=num_pairs, with_vertices=with_vertices,
                           dann_weight=dann_weight, flow=flow, **kwargs)

    def to_json(self) -> dict:
        return {"format": MODEL_CONFIG_FORMAT, **dataclasses.asdict(self)}

    @classmethod
    def from_json(cls, content: dict, where: str = "model config") -> "ModelConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in content.items() if k != "format"}
        if content.get("format") != MODEL_CONFIG_FORMAT or set(values) != names:
            raise ValueError(f"{where}: format {content.get('format')!r} with keys {sorted(values)} — expected "
                             f"{MODEL_CONFIG_FORMAT!r} with {sorted(names)}")
        return cls(**values)

    def save(self, directory) -> Path:
        path = Path(directory) / MODEL_CONFIG_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, directory) -> "ModelConfig":
        path = Path(directory) / MODEL_CONFIG_FILE
        try:
            return cls.from_json(json.loads(path.read_text()), str(path))
        except FileNotFoundError:
            raise ValueError(f"{path}: missing — training writes the model's settings there") from None


def assemble_sequence(outputs: dict) -> dict[str, tf.Tensor]:
    """App. B's inference assembly: P pairs x (current, future) -> T = P + 1 frames.

    Frame t < P takes pair t's current prediction; the last frame takes the last pair's future prediction.
    `outputs`: the model's dict (`[B, P, ...]` values); returns `{name: [B, P + 1, ...]}` for every name with both a
    "current/name" and a "future/name" entry.
    """
    names = [key.split("/", 1)[1] for key in outputs if key.startswith("current/")]
    missing = [name for name in names if f"future/{name}" not in outputs]
    if not names or missing:
        raise ValueError(f"assemble_sequence: expected 'current/<name>' and 'future/<name>' pairs, got keys "
                         f"{sorted(outputs)}")
    return {name: tf.concat([outputs[f"current/{name}"], outputs[f"future/{name}"][:, -1:]], axis=1)
            for name in names}
