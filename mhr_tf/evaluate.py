"""3DPW evaluation of Motion HMR (paper §4, App. A) under the paper's protocol and the official 3DPW one.

    tracks (mhr_tf.data.threedpw) ─► pipeline.make_target_dataset (App. A's test inputs, by the model's contract)
        ─► predictor ([B, T-1, S, S, C] -> T assembled frames) ─► one prediction per frame (WINDOW_RULE)
        ─► ground truth (gendered body) ─► per-frame errors ─► the two protocols' frame selection and averaging

A predictor is anything that maps the batch contract's inputs to the SavedModel's outputs (`export.SERVING_OUTPUTS`
for T frames): a Keras model, a checkpoint rebuilt from its run directory, a SavedModel, or the mean-pose baseline —
all evaluated by the same code.

Protocols (each reports the frames and person-sequences it scored, because published numbers differ by protocol):
- "paper" (the HMR/HMMR family the paper compares with): the 14 LSP joints regressed from the vertices (the
  gendered ground-truth body vs the neutral predicted body), MPJPE after centring both on the midpoint of the hips,
  frames that are not totally occluded (>= 7 keypoints above OpenPose confidence 0.1, App. A) and have a valid camera
  pose, averaged per person-sequence, then over person-sequences.
- "official" (3DPW's evaluation code): the 24 SMPL joints (3DPW's jointPositions vs the predicted body's joints),
  MPJPE after centring both on the pelvis joint, frames where `campose_valid` holds and `poses2d` is not all zero,
  averaged over all frames of the split.
In both, PA-MPJPE aligns each frame by a similarity (Procrustes); PVE compares the vertices of the two bodies, each
centred on its protocol root; the acceleration error is VIBE's, over frames whose two neighbours are scored too.
"""
from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import tensorflow as tf

from mhr_tf import export, geometry, metrics, paper, smoothing
from mhr_tf.body import joints as joint_sets
from mhr_tf.body import smpl
from mhr_tf.data import pipeline, threedpw
from mhr_tf.data.preprocessing import Channels, Preprocessing
from mhr_tf.model import regressor

log = logging.getLogger(__name__)

# How overlapping windows are combined. Windows start every `window_stride(T)` <= T/2 frames (`pipeline.window_starts`,
# the last one moved back to end on the track's last frame), so every frame but the track's last lies in a window
# at a "current" position. App. B: "at test time, we throw out all 'future' predictions except the final one".
WINDOW_RULE = ("windows every floor(T/2) frames; each frame takes the prediction of the window in which it is most "
               "central (smallest distance to the window's middle position (T-1)/2; ties go to the earlier window), "
               "never a window's last ('future' head) prediction except for the track's last frame; padding frames "
               "never count")
SPLIT = "test"  # paper §4: "we evaluate only on sequences in the test set"
# The per-frame outputs a predictor must return ("vertices" is optional: without it PVE is not reported).
REQUIRED_OUTPUTS = ("pose", "betas", "camera", "joints3d", "smpl_joints3d", "keypoints2d")
METRICS = ("pa_mpjpe", "mpjpe", "pve", "accel")
METRIC_TITLES = {"pa_mpjpe": "PA-MPJPE (mm)", "mpjpe": "MPJPE (mm)", "pve": "PVE (mm)",
                 "accel": "Accel (mm/frame²)"}
@dataclasses.dataclass(frozen=True)
class Protocol:
    name: str
    title: str
    joint_names: tuple[str, ...]  # the joints scored
    root: tuple[str, ...]         # MPJPE, PVE and acceleration centre on the mean of these joints
    weighting: str                # "sequence": mean per person-sequence, then over them; "frame": over all frames
    frames: str                   # which frames count, in words


PAPER = Protocol("paper", "paper (HMR/HMMR family)", joint_sets.LSP_14, metrics.PELVIS_HIP_MIDPOINT, "sequence",
                 ">= 7 keypoints with confidence > 0.1 and campose_valid")
OFFICIAL = Protocol("official", "official 3DPW", joint_sets.SMPL_24, ("pelvis",), "frame",
                    "campose_valid and poses2d not all zero")
PROTOCOLS = (PAPER, OFFICIAL)


# --------------------------------------------------------------------------------------------------------------------
# Predictors

@dataclasses.dataclass
class Predictor:
    """inputs `[B, T-1, S, S, C]` float32 -> `{name: [B, T, ...]}` numpy, names from `export.SERVING_OUTPUTS`."""
    fn: Callable[[object], dict]
    pre: Preprocessing            # the contract its inputs are made with
    faces: np.ndarray             # [F, 3] int32 triangles of the predicted body (for drawing)
    name: str
    source: str = ""              # what it came from (checkpoint, SavedModel, "mean pose")
    step: int | None = None       # training step of its weights

    def __call__(self, inputs) -> dict[str, np.ndarray]:
        return self.fn(inputs)


def keras_predictor(model, pre: Preprocessing, faces: np.ndarray | None = None, name: str | None = None,
                    source: str = "", step: int | None = None) -> Predictor:
    """A Motion HMR Keras model (built with vertices) as a predictor, through `export.assembled_outputs`."""
    @tf.function(input_signature=[export.input_spec(pre)])
    def call(inputs):
        return export.assembled_outputs(model({"inputs": inputs}, training=False))

    def fn(inputs):
        return {k: v.numpy() for k, v in call(tf.convert_to_tensor(inputs, tf.float32)).items()}
    faces = export.body_faces(model) if faces is None else faces
    return Predictor(fn, pre, faces, name or f"Keras model {model.name}", source, step)


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
    return Predictor(fn, metadata.pre, metadata.faces, f"SavedModel {version}", str(version), metadata.step)


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
    return Predictor(fn, pre, body.faces, "mean pose (baseline)", "mean pose")


def load_predictor(model_dir=None, saved_model=None, checkpoint=None) -> Predictor:
    """A checkpoint's predictor (`model_dir`, optionally `checkpoint`) or a SavedModel's."""
    if (model_dir is None) == (saved_model is None):
        raise ValueError("give exactly one of a model directory (checkpoints) and a SavedModel directory")
    if saved_model is not None:
        return saved_model_predictor(saved_model)
    return checkpoint_predictor(model_dir, checkpoint)


# --------------------------------------------------------------------------------------------------------------------
# Running a predictor over tracks

@dataclasses.dataclass
class TrackPrediction:
    """One prediction per frame of a track (N frames), chosen among the windows by `WINDOW_RULE`."""
    pose: np.ndarray           # [N, 72] SMPL axis-angle, root in the camera frame
    betas: np.ndarray          # [N, 10]
    camera: np.ndarray         # [N, 3] HMR weak perspective (s, tx, ty) in the box below
    joints3d: np.ndarray       # [N, 14, 3] LSP_14, metres, body frame (camera-frame orientation)
    smpl_joints3d: np.ndarray  # [N, 24, 3] SMPL_24, metres, body frame
    keypoints2d: np.ndarray    # [N, 14, 2] normalized crop coordinates of the box below
    vertices: np.ndarray | None  # [N, V, 3] metres, body frame; None when the predictor gives none
    occluded: np.ndarray       # [N] bool: the network saw a total occlusion (App. A: < 7 keypoints)
    box_centre: np.ndarray     # [N, 2] px: centre of the square box `camera` and `keypoints2d` refer to
    box_size: np.ndarray       # [N] px: its side
    window_start: np.ndarray   # [N] int: first frame of the window each frame's prediction came from


def window_stride(num_frames: int) -> int:
    """The evaluation windows' stride: half a window, so windows overlap and `WINDOW_RULE` never needs a future-head
    prediction inside a track."""
    return max(1, num_frames // 2)


class _TrackAssembler:
    """Collects the windows of one track and keeps, for each frame, the window where it is most central, never a
    window's future-head position except for the track's last frame (`WINDOW_RULE`)."""

    def __init__(self, index: int, num_frames_track: int, window: int):
        self.index, self.n, self.window = index, num_frames_track, window
        self.distance = np.full(num_frames_track, np.inf)
        self.values: dict[str, np.ndarray] = {}

    def _store(self, name: str, frames: np.ndarray, value: np.ndarray) -> None:
        if name not in self.values:
            fill = np.nan if value.dtype.kind == "f" else 0
            self.values[name] = np.full((self.n,) + value.shape[1:], fill, value.dtype)
        self.values[name][frames] = value

    def add(self, start: int, outputs: dict, occluded, padding, box_centre, box_size) -> None:
        positions = np.arange(self.window)
        frames = start + positions
        distance = np.abs(positions - (self.window - 1) / 2.0)
        future = (positions == self.window - 1) & (frames != self.n - 1)
        distance[future] = np.inf  # App. B: the future head's prediction only for the track's last frame
        take = ~np.asarray(padding, bool) & (frames < self.n)
        take[take] = distance[take] < self.distance[frames[take]]
        frames, positions = frames[take], positions[take]
        box = np.minimum(positions, self.window - 2)  # frame t uses pair t's box; the last frame, the last pair's
        for name, value in outputs.items():
            self._store(name, frames, np.asarray(value)[positions])
        self._store("occluded", frames, np.asarray(occluded)[positions] > 0.5)
        self._store("box_centre", frames, np.asarray(box_centre)[box])
        self._store("box_size", frames, np.asarray(box_size)[box])
        self._store("window_start", frames, np.full(len(frames), start, np.int64))
        self.distance[frames] = distance[positions]

    def finish(self) -> TrackPrediction:
        missing = np.flatnonzero(~np.isfinite(self.distance))
        if missing.size:
            raise RuntimeError(f"track {self.index}: frames {missing[:10].tolist()} are in no window")
        values = dict(self.values)
        values.setdefault("vertices", None)
        return TrackPrediction(**{f.name: values[f.name] for f in dataclasses.fields(TrackPrediction)})


def count_windows(tracks, num_frames: int, stride: int | None = None) -> int:
    stride = stride or window_stride(num_frames)
    return sum(len(pipeline.window_starts(len(t.image_paths), num_frames, stride)) for t in tracks)


def predict_tracks(predictor: Predictor, tracks, batch_size: int = 1, progress: bool = False,
                   stride: int | None = None, windows: tf.data.Dataset | None = None
                   ) -> Iterator[tuple[int, TrackPrediction]]:
    """(track index, its per-frame predictions) for every track, in order, as soon as its last window is done.

    `tracks`: objects with `image_paths` and `keypoints2d` (COCO-18), like `threedpw.PersonTrack`. Inputs are made
    by the pipeline's test branch (`pipeline.make_target_dataset`) with the predictor's contract, windows every
    `stride` frames (default `window_stride(T)`), combined by `WINDOW_RULE`. `windows`: the same features made
    beforehand (e.g. read from an input cache), batched, in `pipeline.target_windows` order.
    """
    from tqdm import tqdm
    pre = predictor.pre
    stride = stride or window_stride(pre.num_frames)
    dataset = windows if windows is not None else pipeline.make_target_dataset(tracks, pre, batch_size, stride)
    bar = tqdm(total=count_windows(tracks, pre.num_frames, stride), desc=predictor.name, unit="window",
               disable=not progress, dynamic_ncols=True)
    current = None
    for features in dataset:
        outputs = predictor(features["inputs"])
        missing = [name for name in REQUIRED_OUTPUTS if name not in outputs]
        if missing:
            raise ValueError(f"{predictor.name}: outputs {sorted(outputs)} lack {missing}")
        features = {k: v.numpy() for k, v in features.items() if k != "inputs"}
        for b, index in enumerate(features["track"]):
            if current is None or current.index != index:
                if current is not None:
                    yield current.index, current.finish()
                current = _TrackAssembler(int(index), len(tracks[index].image_paths), pre.num_frames)
            current.add(int(features["start"][b]), {k: v[b] for k, v in outputs.items()}, features["occluded"][b],
                        features["padding"][b], features["box_centre"][b], features["box_size"][b])
            bar.update(1)
    bar.close()
    if current is not None:
        yield current.index, current.finish()


# Joint positions are metres: a 1 Hz floor removes frame-to-frame jitter, beta lets fast limbs through.
POSITION_FILTER = smoothing.OneEuro(min_cutoff=1.0, beta=1.0, d_cutoff=1.0)


def smoothed(predictions, fps: float, params: smoothing.OneEuro = POSITION_FILTER
             ) -> list[tuple[int, TrackPrediction]]:
    """The per-frame predictions with their 3D joints and vertices One-Euro filtered over each track's frames that
    were not totally occluded (the others keep their values; no protocol scores them). Optional, reported apart: the
    paper's numbers are unsmoothed."""
    out = []
    for index, prediction in predictions:
        valid = ~np.asarray(prediction.occluded, bool)
        fields = {}
        for name in ("joints3d", "smpl_joints3d", "vertices"):
            value = getattr(prediction, name)
            if value is not None and valid.any():
                filtered = smoothing.one_euro(value, fps, valid=valid, params=params)
                fields[name] = np.where(valid.reshape((-1,) + (1,) * (value.ndim - 1)), filtered, value).astype(
                    np.float32)
        out.append((index, dataclasses.replace(prediction, **fields)))
    return out


# --------------------------------------------------------------------------------------------------------------------
# Ground truth and errors

@dataclasses.dataclass
class GroundTruth:
    """One person track's ground truth in the camera frame (metres)."""
    joints14: np.ndarray   # [N, 14, 3] LSP_14 from the gendered body's vertices (lsp_regressor)
    joints24: np.ndarray   # [N, 24, 3] SMPL_24, the file's jointPositions
    vertices: np.ndarray   # [N, V, 3] the gendered body with the file's pose, shape and translation

    @classmethod
    def of(cls, track, body, chunk: int = 256) -> "GroundTruth":
        n = track.num_frames
        betas = np.broadcast_to(track.betas, (n, len(track.betas)))
        vertices = np.concatenate([smpl.forward_numpy(body, betas[i:i + chunk], track.pose_cam[i:i + chunk],
                                                      track.trans_cam[i:i + chunk])[0]
                                   for i in range(0, n, chunk)])
        joints14 = np.einsum("kv,nvc->nkc", body.lsp_regressor, vertices).astype(np.float32)
        return cls(joints14=joints14, joints24=np.asarray(track.joints3d_cam, np.float32), vertices=vertices)


@dataclasses.dataclass
class TrackErrors:
    """Per-frame errors of one track under one protocol (mm); `mask` says which frames the protocol scores."""
    pa_mpjpe: np.ndarray   # [N]
    mpjpe: np.ndarray      # [N]
    pve: np.ndarray        # [N], NaN without predicted vertices
    accel: np.ndarray      # [max(N - 2, 0)], entry t centred on frame t + 1
    mask: np.ndarray       # [N] bool
    accel_mask: np.ndarray  # [max(N - 2, 0)] bool

    def values(self, metric: str) -> tuple[np.ndarray, np.ndarray]:
        return (self.accel, self.accel_mask) if metric == "accel" else (getattr(self, metric), self.mask)


def protocol_mask(protocol: Protocol, track, prediction: TrackPrediction) -> np.ndarray:
    """[N] bool: the frames `protocol` scores."""
    valid = np.asarray(track.campose_valid, bool)
    if protocol.name == PAPER.name:
        return valid & ~np.asarray(prediction.occluded, bool)
    return valid & np.asarray(track.keypoints_valid, bool)


def _root(joints: np.ndarray, protocol: Protocol) -> np.ndarray:
    """[N, 1, 3] mean of the protocol's root joints."""
    index = [protocol.joint_names.index(name) for name in protocol.root]
    return np.asarray(joints, np.float64)[:, index].mean(axis=1, keepdims=True)


def score_track(track, prediction: TrackPrediction, truth: GroundTruth) -> dict[str, TrackErrors]:
    """Per-frame errors of one track under every protocol."""
    out = {}
    for protocol in PROTOCOLS:
        if protocol.name == PAPER.name:
            pred, gt = prediction.joints3d, truth.joints14
        else:
            pred, gt = prediction.smpl_joints3d, truth.joints24
        mask = protocol_mask(protocol, track, prediction)
        n = len(mask)
        if comparable_meshes(prediction, truth):
            pve = metrics.pve_per_frame(prediction.vertices - _root(pred, protocol),
                                        truth.vertices - _root(gt, protocol))
        else:
            pve = np.full(n, np.nan)
        if n >= 3:
            accel = metrics.accel_error_per_frame(pred, gt, protocol.joint_names, protocol.root)
            accel_mask = metrics.accel_mask(mask)
        else:
            accel, accel_mask = np.zeros(0), np.zeros(0, bool)
        out[protocol.name] = TrackErrors(
            pa_mpjpe=metrics.pa_mpjpe_per_frame(pred, gt),
            mpjpe=metrics.mpjpe_per_frame(pred, gt, protocol.joint_names, protocol.root),
            pve=pve, accel=accel, mask=mask, accel_mask=accel_mask)
    return out


def comparable_meshes(prediction: TrackPrediction, truth: GroundTruth) -> bool:
    """PVE needs both bodies on one mesh: SMPL's genders share it; the open body model meshes each gender apart."""
    return prediction.vertices is not None and prediction.vertices.shape[1:] == truth.vertices.shape[1:]


def aggregate(protocol: Protocol, scored: list[tuple[object, TrackErrors]]) -> dict:
    """The protocol's averages (mm) and the frames, person-sequences and sequence files it scored."""
    used = [(track, e) for track, e in scored if e.mask.any()]
    summary = {}
    for metric in METRICS:
        pairs = [e.values(metric) for _, e in used]
        if protocol.weighting == "sequence":
            means = [metrics.masked_mean(v, m) for v, m in pairs if m.any()]
            means = [x for x in means if np.isfinite(x)]
            summary[f"{metric}_mm"] = float(np.mean(means)) if means else float("nan")
        else:
            values = np.concatenate([v for v, _ in pairs]) if pairs else np.zeros(0)
            mask = np.concatenate([m for _, m in pairs]) if pairs else np.zeros(0, bool)
            summary[f"{metric}_mm"] = metrics.masked_mean(values, mask) if mask.any() else float("nan")
    summary.update(frames=int(sum(e.mask.sum() for _, e in used)), tracks=len(used),
                   sequences=len({track.sequence for track, _ in used}),
                   frames_total=int(sum(len(e.mask) for _, e in scored)), tracks_total=len(scored))
    return summary


class _Bodies:
    """Ground-truth body models by gender, loaded once."""

    def __init__(self, path):
        self.path, self.cache = path, {}

    def __call__(self, gender: str):
        if gender not in self.cache:
            self.cache[gender] = smpl.load_body_model(self.path, gender)
        return self.cache[gender]


# --------------------------------------------------------------------------------------------------------------------
# Results

@dataclasses.dataclass
class EvaluationResult:
    name: str                                # the predictor
    summary: dict[str, dict]                 # protocol name -> aggregate()
    tracks: list[dict]                       # per person-sequence: sequence, person, gender, frames, per protocol
    curves: list[dict] = dataclasses.field(default_factory=list, repr=False)  # per-frame errors for the plots
    meta: dict = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict:
        return {"predictor": self.name, **self.meta, "protocols": self.summary, "per_track": self.tracks}


def score_predictions(tracks, predictions: Iterable[tuple[int, TrackPrediction]], body_model_path=None,
                      name: str = "", meta: dict | None = None) -> EvaluationResult:
    """Errors of per-frame predictions `(track index, TrackPrediction)` against the tracks' ground truth."""
    bodies = _Bodies(body_model_path)
    scored: dict[str, list] = {p.name: [] for p in PROTOCOLS}
    rows, curves, mesh_notes = [], [], set()
    for index, prediction in predictions:
        track = tracks[index]
        truth = GroundTruth.of(track, bodies(track.gender))
        if not comparable_meshes(prediction, truth):
            mesh_notes.add("PVE not reported for some tracks: " + (
                "the predictor gives no vertices" if prediction.vertices is None else
                f"the predicted body has {prediction.vertices.shape[1]} vertices, the {track.gender} ground truth "
                f"{truth.vertices.shape[1]} (PVE needs one mesh for both, as SMPL's genders share)"))
        errors = score_track(track, prediction, truth)
        row = {"sequence": track.sequence, "person": int(track.person), "gender": track.gender,
               "frames": int(track.num_frames)}
        for protocol in PROTOCOLS:
            scored[protocol.name].append((track, errors[protocol.name]))
            row[protocol.name] = aggregate(protocol, [(track, errors[protocol.name])])
            for key in ("sequences", "tracks", "tracks_total", "frames_total"):
                row[protocol.name].pop(key)
        rows.append(row)
        curves.append({"sequence": track.sequence, "person": int(track.person), "errors": errors,
                       "occluded": np.asarray(prediction.occluded, bool),
                       "campose_valid": np.asarray(track.campose_valid, bool)})
    summary = {p.name: aggregate(p, scored[p.name]) for p in PROTOCOLS}
    meta = {**(meta or {}), "ground_truth_bodies": sorted(body.source for body in bodies.cache.values())}
    if mesh_notes:
        meta["pve_note"] = "; ".join(sorted(mesh_notes))
        log.info("%s", meta["pve_note"])
    return EvaluationResult(name=name, summary=summary, tracks=rows, curves=curves, meta=meta)


def evaluate(predictor: Predictor, threedpw_root=None, split: str = SPLIT, tracks=None, batch_size: int = 1,
             body_model_path=None, progress: bool = False) -> EvaluationResult:
    """Evaluate `predictor` on every person track of a 3DPW-format split (or on `tracks`)."""
    tracks = tracks if tracks is not None else threedpw.load_split(threedpw_root, split)
    if not tracks:
        raise ValueError(f"{threedpw_root}: the '{split}' split has no sequence files")
    meta = {"data": str(threedpw_root) if threedpw_root is not None else "(given tracks)", "split": split,
            "preprocessing": predictor.pre.to_json(), "channels": list(predictor.pre.channels.names),
            "source": predictor.source, "step": predictor.step,
            "window_rule": WINDOW_RULE,
            "protocols_defined": {p.name: {"joints": len(p.joint_names), "root": list(p.root),
                                           "weighting": p.weighting, "frames": p.frames} for p in PROTOCOLS}}
    return score_predictions(tracks, predict_tracks(predictor, tracks, batch_size, progress), body_model_path,
                             predictor.name, meta)


def _number(value: float) -> str:
    return f"{value:.1f}" if np.isfinite(value) else "n/a"


def markdown_table(results: list[EvaluationResult]) -> str:
    """One row per predictor and protocol."""
    header = ["predictor", "protocol", *METRIC_TITLES.values(), "frames", "person-sequences", "sequences"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for result in results:
        for protocol in PROTOCOLS:
            s = result.summary[protocol.name]
            cells = [result.name, protocol.title, *(_number(s[f"{m}_mm"]) for m in METRICS),
                     str(s["frames"]), str(s["tracks"]), str(s["sequences"])]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def comparison_table(results: list[EvaluationResult]) -> str:
    """Our paper-protocol PA-MPJPE beside the paper's Table 1 (published numbers on real 3DPW)."""
    lines = ["| method | PA-MPJPE (mm) | source |", "|---|---|---|"]
    for result in results:
        s = result.summary[PAPER.name]
        lines.append(f"| ours: {result.name} | {_number(s['pa_mpjpe_mm'])} | this run: {result.meta.get('data')} "
                     f"({result.meta.get('split')}, {s['frames']} frames, {s['tracks']} person-sequences) |")
    ours = {tuple(c for c in r.meta.get("channels", ()) if c != "occlusion") for r in results}
    for row in paper.TABLE_1:
        mark = " (our configuration's row)" if row.channels is not None and row.channels in ours else ""
        note = f" ({row.note})" if row.note else ""
        lines.append(f"| paper: {row.label}{mark}{note} | {row.pa_mpjpe_mm:.1f} | published, paper Table 1, real "
                     f"3DPW test set |")
    return "\n".join(lines)


def plot_track(curve: dict, path, others: list[dict] = (), names: list[str] = ()) -> Path:
    """PNG of one person-sequence's per-frame errors (paper protocol) over time; unscored frames left out."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    errors = curve["errors"][PAPER.name]
    frames = np.arange(len(errors.mask))
    figure, axis = plt.subplots(figsize=(9, 3.2))
    for start, stop in _runs(curve["occluded"]):
        axis.axvspan(start - 0.5, stop - 0.5, color="0.85", lw=0)
    for start, stop in _runs(~curve["campose_valid"]):
        axis.axvspan(start - 0.5, stop - 0.5, color="#f4cccc", lw=0)
    axis.plot(frames, np.where(errors.mask, errors.mpjpe, np.nan), color="tab:blue", lw=1, ls="--",
              label=f"MPJPE ({names[0] if names else 'model'})")
    for other, name, colour in zip([curve, *others], names or ["model"], ["tab:blue", "tab:orange", "tab:green"]):
        e = other["errors"][PAPER.name]
        axis.plot(frames, np.where(e.mask, e.pa_mpjpe, np.nan), color=colour, lw=1.3, label=f"PA-MPJPE ({name})")
    axis.set_xlabel("frame")
    axis.set_ylabel("error (mm)")
    axis.set_title(f"{curve['sequence']} person {curve['person']} — paper protocol; grey: total occlusion "
                   f"(< 7 keypoints), red: invalid camera pose (not scored)", fontsize=8)
    axis.legend(fontsize=7, loc="upper right")
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of every run of True."""
    flags = np.concatenate([[False], np.asarray(flags, bool), [False]])
    edges = np.flatnonzero(np.diff(flags.astype(np.int8)))
    return list(zip(edges[::2], edges[1::2]))


def write_report(results: list[EvaluationResult], out_dir, compare: bool = False, plots: bool = True) -> dict:
    """`results.md` (the table, and with `compare` the paper's Table 1 beside ours), `results.json`, and one PNG per
    person-sequence under `plots/`. Returns the paths written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    text = "# 3DPW evaluation\n\n" + markdown_table(results) + "\n"
    text += "\nProtocols: " + "; ".join(
        f"**{p.title}**: {len(p.joint_names)} joints, centred on {'+'.join(p.root)}, frames with {p.frames}, "
        f"{'mean per person-sequence then over them' if p.weighting == 'sequence' else 'mean over all frames'}"
        for p in PROTOCOLS) + f".\nWindows: {WINDOW_RULE}.\n"
    if compare:
        text += ("\n## Beside the paper's Table 1\n\nThe paper's rows are its published numbers on the real 3DPW "
                 "test set; ours come from the data named in the row.\n\n" + comparison_table(results) + "\n")
    written = {"markdown": out_dir / "results.md", "json": out_dir / "results.json", "plots": []}
    written["markdown"].write_text(text)
    written["json"].write_text(json.dumps([r.to_json() for r in results], indent=2, default=_json_default) + "\n")
    if plots and results:
        for i, curve in enumerate(results[0].curves):
            others = [r.curves[i] for r in results[1:] if len(r.curves) > i]
            name = f"{curve['sequence']}_person{curve['person']}.png"
            written["plots"].append(plot_track(curve, out_dir / "plots" / name, others, [r.name for r in results]))
    return written


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def write_summaries(result: EvaluationResult, log_dir, step: int) -> Path:
    """TensorBoard scalars `<protocol>/<metric>_mm` and the frame counts, and the table as text, at `step`.

    Written with `tf.summary.write` and TensorBoard's plugin names ("scalars", "text"), which is what
    `tf.summary.scalar`/`text` write, but without needing the tensorboard package installed.
    """
    from tensorflow.core.framework import summary_pb2

    def metadata(plugin: str) -> bytes:
        return summary_pb2.SummaryMetadata(
            plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name=plugin)).SerializeToString()
    log_dir = Path(log_dir)
    writer = tf.summary.create_file_writer(str(log_dir))
    with writer.as_default():
        for protocol, summary in result.summary.items():
            for key, value in summary.items():
                if np.isfinite(value):
                    tf.summary.write(f"{protocol}/{key}", tf.constant(value, tf.float32), step=step,
                                     metadata=metadata("scalars"))
        tf.summary.write("evaluation", tf.constant(markdown_table([result])), step=step, metadata=metadata("text"))
    writer.flush()
    writer.close()
    return log_dir


def run(out_dir, threedpw_root, split: str = SPLIT, model_dir=None, saved_model=None, checkpoint=None,
        baseline: bool = False, compare: bool = False, body_model_path=None, batch_size: int = 1,
        plots: bool = True, sequences=None, progress: bool = True) -> tuple[list[EvaluationResult], dict]:
    """What `scripts/evaluate.py` does: evaluate a checkpoint or a SavedModel (and with `baseline` the mean pose,
    through the same code), write the report, and with `model_dir` TensorBoard summaries in `<model_dir>/eval_<split>`.
    """
    tracks = threedpw.load_split(threedpw_root, split)
    if sequences:
        tracks = [t for t in tracks if t.sequence in set(sequences)]
        if not tracks:
            raise ValueError(f"{threedpw_root}: none of the sequences {sorted(sequences)} is in the '{split}' split")
    predictors = []
    if model_dir is not None or saved_model is not None:
        predictors.append(load_predictor(model_dir, saved_model, checkpoint))
    if baseline or not predictors:
        predictors.append(mean_pose_predictor(predictors[0].pre if predictors else None, body_model_path))
    results = [evaluate(p, threedpw_root, split, tracks, batch_size, body_model_path, progress) for p in predictors]
    written = write_report(results, out_dir, compare, plots)
    if model_dir is not None:
        written["tensorboard"] = write_summaries(results[0], Path(model_dir) / f"eval_{split}",
                                                 int(results[0].meta.get("step") or 0))
    return results, written
