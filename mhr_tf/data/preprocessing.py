"""The preprocessing contract: every decision that turns frames and 2D keypoints into the network's inputs.

One frozen `Preprocessing` object holds them all (paper §3, App. A, App. B):

    channels        which input groups the network sees (Table 1)            Channels
                    (the pipeline sends `wire_names`: the same, or with flow in the model the pair crops in place
                    of rgb and flow, `PAIRS_GROUP`)
    num_frames      clip length T (§4: 31; Table 3: 8, 16, 31, 56)
    crop_size       S, the square crop in pixels (App. A: 224)
    box             where the person's box goes, from 2D keypoints            BoxRule
    heatmap_sigma   σ of the keypoint heatmaps at a 224-px crop (§3.2: 10 px)
    flow            backend, its settings, where it runs, and the /20 scale   FlowSettings
    augmentation    the training-time occlusion and visibility rules          Augmentation
    confidence, min_keypoints   App. A's test-time rule: a detection counts above `confidence`; a frame with fewer
                    than `min_keypoints` counted keypoints is a total occlusion

Training builds it (gin binds its fields: `Preprocessing.num_frames = 16`, `Channels.use_rgb = True`, ...) and writes
it as JSON beside every checkpoint and into every SavedModel; evaluation, export and predict read it back from there
and never from gin. The training steps and the test-time branch call the same box, heatmap and flow functions with
it (`mhr_tf.data.pipeline`), so a test crop is framed and drawn exactly as a training crop.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import gin

from mhr_tf.body import joints as joint_sets

FORMAT = "mhr_tf.preprocessing/1"
FILE_NAME = "preprocessing.json"

# Paper §4 / App. A: 31-frame clips; Table 3 varies the length.
NUM_FRAMES = 31
# App. A: "Bounding boxes are cropped at a 224x224 resolution".
CROP_SIZE = 224
# App. A: HMR's procedure makes the person "roughly 150 pixels tall" in the 224-px crop.
PERSON_HEIGHT_PX = 150.0
# §3.2: heatmaps "fall off with a Gaussian distribution with a standard deviation of 10 pixels" (in a 224-px crop).
HEATMAP_SIGMA_PX = 10.0
HEATMAP_REFERENCE_CROP = CROP_SIZE
# App. B: "Optical flow estimates are divided by 20".
FLOW_DIVISOR = 20.0
# App. A: frames "where fewer than 7 keypoints are visible" are total occlusions at evaluation time; a detection is
# visible above OpenPose's confidence 0.1.
KEYPOINT_CONFIDENCE = 0.1
MIN_KEYPOINTS = 7
# App. A: total occlusions happen in "some videos"; the paper gives no rate, this is ours.
TOTAL_OCCLUSION_PROBABILITY = 0.3
# App. A: "The 'total occlusions' are up to 15 frames long in our training set."
MAX_TOTAL_OCCLUSION_FRAMES = 15
# App. A: the superpixel is discarded if it leaves "an average of less than 7 keypoints (out of the 14 ...) per frame".
MIN_VISIBLE_JOINTS = 7
# App. B: keypoints "at least 20cm behind the depth map of the mesh" are hidden.
DEPTH_HIDE_MARGIN_M = 0.20
# App. B: "unhide all leg keypoints with a 50% probability"; "unhide ... and hide ... with a 5% probability".
LEG_UNHIDE_PROBABILITY = 0.5
FLIP_PROBABILITY = 0.05

# The box joints: HMR frames a person from the keypoints it has, so training (ground truth) and test (a COCO-style
# detector, e.g. 3DPW's OpenPose `poses2d`) must frame from the same joints. These are the evaluation joints a COCO
# detector also gives: LSP-14 without head top.
BOX_JOINTS = tuple(name for name in joint_sets.LSP_14 if name in joint_sets.COCO_18)

# The input channel groups of the batch contract, in their fixed order, with their widths: RGB; flow / 20 and its
# magnitude (App. B); the 12 keypoint heatmaps (§3.2); the total-occlusion indicator (§3.1).
CHANNEL_GROUPS = (("rgb", 3), ("flow", 3), ("heatmaps", len(joint_sets.HEATMAP_12)), ("occlusion", 1))
# The RGB group: pixel / 127.5 - 1, in [-1, 1] (the pair crops of the "pairs" group below alike).
RGB_HALF_RANGE = 127.5
# With flow on the accelerator (`FlowSettings.placement` "model") the pipeline sends, in place of the flow group, the
# pair's two RGB crops (frame t then frame t+1 in box t, each scaled like the RGB group: pixel / 127.5 - 1, and zeroed
# on totally occluded frames like every group); the model's first layer turns them into the flow group. The RGB group
# is not sent as well: it is the pair's first crop, which the layer hands on when the contract uses RGB.
PAIRS_GROUP = ("pairs", 6)
FLOW_BACKENDS = ("dis", "tvl1", "tf_tvl1")  # and "saved_model:<dir>"
FLOW_PLACEMENTS = ("pipeline", "model")


class ContractError(ValueError):
    """A preprocessing contract that is malformed, or does not fit the model or data it is used with."""


@gin.configurable
@dataclasses.dataclass(frozen=True)
class Channels:
    """Which inputs the network sees (paper Table 1); the total-occlusion indicator channel is always there."""
    use_rgb: bool = False
    use_flow: bool = True
    use_keypoints: bool = True

    @property
    def names(self) -> tuple[str, ...]:
        """The channel groups present, in the batch contract's order (`mhr_tf.model.trunk.CHANNEL_GROUPS`)."""
        return tuple(name for name, on in (("rgb", self.use_rgb), ("flow", self.use_flow),
                                            ("heatmaps", self.use_keypoints), ("occlusion", True)) if on)

    @property
    def count(self) -> int:
        """C, the input width."""
        widths = dict(CHANNEL_GROUPS)
        return sum(widths[name] for name in self.names)

    @classmethod
    def from_names(cls, names) -> "Channels":
        names = tuple(names)
        channels = cls(use_rgb="rgb" in names, use_flow="flow" in names, use_keypoints="heatmaps" in names)
        if channels.names != names:
            raise ContractError(f"channel groups {names}: expected a subset of ('rgb', 'flow', 'heatmaps') followed "
                                f"by 'occlusion', in that order")
        return channels


@gin.configurable
@dataclasses.dataclass(frozen=True)
class BoxRule:
    """HMR's box (App. A; HMR's OpenPose path): the centre of the bounding box of the valid `joints`, and a side
    such that that bounding box's diagonal spans `person_px` of a 224-px crop (whatever the crop size). Frames with
    fewer than two valid joints take the nearest box in time, as a tracker holding its last detection would.

    Training passes the in-frame ground-truth joints, test the detections above the contract's confidence; both
    from `joints`, which every kind of input has (`BOX_JOINTS`).
    """
    joints: tuple[str, ...] = BOX_JOINTS
    person_px: float = PERSON_HEIGHT_PX

    def __post_init__(self):
        object.__setattr__(self, "joints", tuple(self.joints))
        unknown = [name for name in self.joints if name not in joint_sets.LSP_14]
        if unknown or len(self.joints) < 2:
            raise ContractError(f"BoxRule.joints {self.joints}: expected at least two LSP-14 joint names "
                                f"(unknown: {unknown})")

    @property
    def lsp_indices(self) -> tuple[int, ...]:
        return tuple(joint_sets.LSP_14.index(name) for name in self.joints)


@gin.configurable
@dataclasses.dataclass(frozen=True)
class FlowSettings:
    """Optical flow on the paired boxes (§3.2, App. B): `backend` "dis" | "tvl1" (OpenCV, a Python step), "tf_tvl1"
    (TensorFlow ops) or "saved_model:<dir>" (a converted FlowNet/RAFT); `placement` "pipeline" (computed in tf.data)
    or "model" (a frozen first layer of the network, on the accelerator, `mhr_tf.model.flow_input`; TF backends only:
    the pipeline then sends the pair crops, `PAIRS_GROUP`); `divisor`: App. B's /20; `tvl1`: overrides of
    `mhr_tf.data.tf_flow.TVL1Params` fields for "tf_tvl1", as (name, value) pairs."""
    backend: str = "dis"
    placement: str = "pipeline"
    divisor: float = FLOW_DIVISOR
    tvl1: tuple[tuple[str, float], ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "tvl1", tuple((str(k), v) for k, v in dict(self.tvl1).items()))
        if self.backend not in FLOW_BACKENDS and not self.backend.startswith("saved_model:"):
            raise ContractError(f"FlowSettings.backend {self.backend!r}: expected one of {FLOW_BACKENDS} or "
                                f"'saved_model:<dir>'")
        if self.placement not in FLOW_PLACEMENTS:
            raise ContractError(f"FlowSettings.placement {self.placement!r}: expected one of {FLOW_PLACEMENTS}")
        if self.placement == "model" and self.backend in ("dis", "tvl1"):
            raise ContractError(f"FlowSettings: backend {self.backend!r} is OpenCV (Python), which cannot run inside "
                                f"the model; use 'tf_tvl1' or 'saved_model:<dir>' with placement 'model'")
        if self.tvl1 and self.backend != "tf_tvl1":
            raise ContractError(f"FlowSettings.tvl1 {dict(self.tvl1)} set, but the backend is {self.backend!r}: "
                                f"those settings only take effect with 'tf_tvl1'")

    @property
    def python(self) -> bool:
        """Whether the backend is a Python (OpenCV) step, which tf.data service cannot run."""
        return self.backend in ("dis", "tvl1")


@gin.configurable
@dataclasses.dataclass(frozen=True)
class Augmentation:
    """The training-time rules: Table 2's dataset-construction switches, App. A's occlusions and App. B's keypoint
    visibility. Test inputs never go through these (they have real occlusions and a real detector)."""
    track_camera: bool = True
    static_background: bool = False
    slic_occluders: bool = True
    min_visible_joints: float = MIN_VISIBLE_JOINTS
    total_occlusion_probability: float = TOTAL_OCCLUSION_PROBABILITY
    max_total_occlusion_frames: int = MAX_TOTAL_OCCLUSION_FRAMES
    depth_margin_m: float = DEPTH_HIDE_MARGIN_M
    leg_unhide_probability: float = LEG_UNHIDE_PROBABILITY
    flip_probability: float = FLIP_PROBABILITY

    @classmethod
    def none(cls) -> "Augmentation":
        """Every random rule off and the person not moved: a clip as it was rendered, keypoints visible unless
        outside the frame or behind the body."""
        return cls(track_camera=False, static_background=False, slic_occluders=False,
                   total_occlusion_probability=0.0, leg_unhide_probability=0.0, flip_probability=0.0)


def wire_groups(network_groups, flow_placement: str) -> tuple[str, ...]:
    """The groups the pipeline sends (what a SavedModel's signature takes), in order, for a network that sees
    `network_groups` (`Channels.names`) with flow computed in `flow_placement`: the network's own groups, except that
    with flow in the model "pairs" replaces "rgb" and "flow" (see `PAIRS_GROUP`)."""
    network_groups = tuple(network_groups)
    if flow_placement != "model" or "flow" not in network_groups:
        return network_groups
    return (PAIRS_GROUP[0],) + tuple(name for name in network_groups if name not in ("rgb", "flow"))


def group_width(name: str) -> int:
    """Channels of one network or wire group."""
    return dict(CHANNEL_GROUPS + (PAIRS_GROUP,))[name]


def group_slices(groups) -> dict[str, slice]:
    """Where each network or wire group sits along the channel axis, in the given order."""
    out, start = {}, 0
    for name in groups:
        out[name] = slice(start, start + group_width(name))
        start += group_width(name)
    return out


def _default(factory):
    return dataclasses.field(default_factory=factory)


@gin.configurable
@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """The contract (see the module docstring). Build it with gin at training time; read it back with `load`."""
    num_frames: int = NUM_FRAMES
    crop_size: int = CROP_SIZE
    channels: Channels = _default(Channels)
    box: BoxRule = _default(BoxRule)
    heatmap_sigma: float = HEATMAP_SIGMA_PX
    flow: FlowSettings = _default(FlowSettings)
    augmentation: Augmentation = _default(Augmentation)
    confidence: float = KEYPOINT_CONFIDENCE
    min_keypoints: int = MIN_KEYPOINTS

    def __post_init__(self):
        if self.num_frames < 2:
            raise ContractError(f"Preprocessing.num_frames {self.num_frames}: a clip needs at least 2 frames "
                                f"(one flow pair)")
        if self.crop_size < 8:
            raise ContractError(f"Preprocessing.crop_size {self.crop_size}: expected at least 8 pixels")

    @property
    def num_pairs(self) -> int:
        """P = T - 1 paired boxes per clip (App. B)."""
        return self.num_frames - 1

    @property
    def sigma_px(self) -> float:
        """The heatmap σ in pixels of this crop size: the paper's 10 px at 224, scaled with the crop."""
        return self.heatmap_sigma * self.crop_size / HEATMAP_REFERENCE_CROP

    @property
    def flow_in_model(self) -> bool:
        """Whether the network computes its flow group itself, from the paired crops the pipeline sends."""
        return self.channels.use_flow and self.flow.placement == "model"

    @property
    def wire_names(self) -> tuple[str, ...]:
        """The groups the pipeline sends and a SavedModel takes (`wire_groups`); the network's are `channels.names`."""
        return wire_groups(self.channels.names, self.flow.placement)

    @property
    def wire_channels(self) -> int:
        """The width of what the pipeline sends and a SavedModel's signature takes; the trunk sees `channels.count`."""
        return sum(group_width(name) for name in self.wire_names)

    @property
    def max_total_occlusion(self) -> int:
        """App. A's runs are "up to 15 frames long" in 31-frame clips; shorter clips keep at least half in view."""
        return min(self.augmentation.max_total_occlusion_frames, self.num_frames // 2)

    # ---- JSON ------------------------------------------------------------------------------------------------------

    def to_json(self) -> dict:
        content = dataclasses.asdict(self)
        content["box"]["joints"] = list(self.box.joints)
        content["flow"]["tvl1"] = dict(self.flow.tvl1)
        content["channel_groups"] = list(self.channels.names)  # for readers: what `channels` means
        content["wire_groups"] = list(self.wire_names)  # and what the pipeline sends (the SavedModel's input)
        return {"format": FORMAT, **content}

    @classmethod
    def from_json(cls, content: dict, where: str = "preprocessing") -> "Preprocessing":
        if content.get("format") != FORMAT:
            raise ContractError(f"{where}: format {content.get('format')!r} — expected {FORMAT!r}")
        try:
            return cls(num_frames=int(content["num_frames"]), crop_size=int(content["crop_size"]),
                       channels=_exactly(Channels, content["channels"], where, "channels"),
                       box=_exactly(BoxRule, content["box"], where, "box"),
                       heatmap_sigma=float(content["heatmap_sigma"]),
                       flow=_exactly(FlowSettings, {**content["flow"], "tvl1": tuple(content["flow"]["tvl1"].items())},
                                     where, "flow"),
                       augmentation=_exactly(Augmentation, content["augmentation"], where, "augmentation"),
                       confidence=float(content["confidence"]), min_keypoints=int(content["min_keypoints"]))
        except (KeyError, TypeError, AttributeError) as error:
            raise ContractError(f"{where}: not a complete preprocessing contract ({type(error).__name__}: {error})"
                                ) from None

    def save(self, directory, name: str = FILE_NAME) -> Path:
        path = Path(directory) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, directory_or_file) -> "Preprocessing":
        path = Path(directory_or_file)
        if path.is_dir():
            path = path / FILE_NAME
        try:
            content = json.loads(path.read_text())
        except FileNotFoundError:
            raise ContractError(f"{path}: missing — training writes the preprocessing contract there; a model "
                                "directory or SavedModel without it was not made by this version of mhr_tf") from None
        except json.JSONDecodeError as error:
            raise ContractError(f"{path}: not valid JSON ({error})") from None
        return cls.from_json(content, str(path))

    def describe(self) -> str:
        """A markdown table of the contract, for summaries and reports."""
        a, f = self.augmentation, self.flow
        rows = [
            ("channels", " + ".join(self.channels.names)
             + (f" (the pipeline sends {' + '.join(self.wire_names)})" if self.flow_in_model else "")),
            ("clip length T", self.num_frames),
            ("crop", f"{self.crop_size} px"),
            ("box", f"{len(self.box.joints)} joints ({', '.join(self.box.joints)}), diagonal = "
                    f"{self.box.person_px:g} px of 224"),
            ("heatmap σ", f"{self.heatmap_sigma:g} px at 224 ({self.sigma_px:.2f} px here)"),
            ("flow", f"{f.backend} in the {f.placement}, / {f.divisor:g}, magnitude channel"
                     + (f", TV-L1 {dict(f.tvl1)}" if f.tvl1 else "")),
            ("training rules", f"track camera {a.track_camera}, static background {a.static_background}, SLIC "
                               f"occluders {a.slic_occluders} (kept if >= {a.min_visible_joints:g} joints remain), "
                               f"total occlusion p={a.total_occlusion_probability:g} up to "
                               f"{self.max_total_occlusion} frames, hidden {a.depth_margin_m:g} m behind the body, "
                               f"legs unhidden p={a.leg_unhide_probability:g}, flips p={a.flip_probability:g}"),
            ("test rule", f"keypoints with confidence > {self.confidence:g}; < {self.min_keypoints} keypoints = total "
                          f"occlusion"),
        ]
        return "| setting | value |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)


def _exactly(cls, values: dict, where: str, field: str):
    """`cls(**values)`, refusing unknown or missing keys: a contract written by another version is an error, not a
    silent default."""
    names = {f.name for f in dataclasses.fields(cls)}
    if set(values) != names:
        raise ContractError(f"{where}: field {field!r} has keys {sorted(values)} — expected {sorted(names)}")
    return cls(**values)
