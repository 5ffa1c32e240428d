"""3DPW evaluation of Motion HMR (paper §4, App. A) under the paper's protocol and the official 3DPW one.

    tracks (mhr_tf.data.threedpw; one split, or all three as the official evaluation pools them)
        ─► pipeline.make_target_dataset (App. A's test inputs, by the model's contract)
        ─► predictor ([B, T-1, S, S, C] -> T assembled frames) ─► one prediction per frame (WINDOW_RULE)
        ─► optional One-Euro smoothing (of the joints, or of the SMPL parameters as `predict --smooth` does)
        ─► ground truth (gendered body) ─► per-frame errors ─► the protocols' frame selection and pooling
        ─► mhr_tf.report (tables, plots, TensorBoard)

A predictor (`mhr_tf.predictors`) is anything that maps the batch contract's inputs to the SavedModel's outputs: a
Keras model, a checkpoint, a SavedModel, or the mean-pose baseline — all evaluated by the same code.

The protocols and poolings are defined in `mhr_tf.protocols`; the official protocol also scores 3DPW's PCK, AUC,
MPJAE and PA-MPJAE. A user's joint regressor (`load_joint_regressor`: HMR's cocoplus or VIBE's J_regressor_h36m)
replaces the paper protocol's LSP-14 joints by joints regressed from both meshes, which needs both bodies on SMPL's
6890-vertex mesh. In both protocols PA-MPJPE aligns each frame by a similarity (Procrustes); PVE compares the vertices
of the two bodies, each centred on its protocol root; the acceleration error is VIBE's, over frames whose two
neighbours are scored too.
"""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import tensorflow as tf

from mhr_tf import exports, geometry, metrics, smoothing
from mhr_tf.body import smpl
from mhr_tf.data import pipeline, threedpw
# Callers read the predictors, the protocols and the report's writers as evaluate.X.
from mhr_tf.predictors import (Predictor, checkpoint_predictor, keras_predictor, load_predictor,  # noqa: F401
                               mean_pose_predictor, saved_model_predictor)
from mhr_tf.protocols import (METRIC_TITLES, METRICS, OFFICIAL, OFFICIAL_METRICS, OFFICIAL_SCALE, PAPER,  # noqa: F401
                              PROTOCOLS, Protocol, configured)
from mhr_tf.report import (EvaluationResult, comparison_table, markdown_table, plot_track, write_report,  # noqa: F401
                           write_summaries)

log = logging.getLogger(__name__)

# How overlapping windows are combined. Windows start every `window_stride(T)` <= T/2 frames (`pipeline.window_starts`,
# the last one moved back to end on the track's last frame), so every frame but the track's last lies in a window
# at a "current" position. App. B: "at test time, we throw out all 'future' predictions except the final one".
WINDOW_RULE = ("windows every floor(T/2) frames; each frame takes the prediction of the window in which it is most "
               "central (smallest distance to the window's middle position (T-1)/2; ties go to the earlier window), "
               "never a window's last ('future' head) prediction except for the track's last frame; padding frames "
               "never count")
SPLIT = "test"  # paper §4: "we evaluate only on sequences in the test set"
ALL_SPLITS = "all"  # train + validation + test, as 3DPW's official evaluation pools them
# aymenmir1/3dpw-eval's NUM_SEQS: person-sequences over the three splits (it scores nothing unless all are there).
OFFICIAL_NUM_TRACKS = 87
THREEDPW_FPS = 30.0
# The per-frame outputs a predictor must return ("vertices" is optional: without it PVE is not reported).
REQUIRED_OUTPUTS = ("pose", "betas", "camera", "joints3d", "smpl_joints3d", "keypoints2d")
SMPL_NUM_VERTICES = 6890
# VIBE/SPIN's H36M_TO_J14 (VIBE lib/models/smpl.py): the 17 rows of J_regressor_h36m.npy -> the 14 evaluation joints.
H36M_TO_LSP14 = (6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10)
SMOOTHINGS = {"none": "", "joints": " + One-Euro on joints", "parameters": " + One-Euro on SMPL parameters"}
# Joint positions are metres: a 1 Hz floor removes frame-to-frame jitter, beta lets fast limbs through.
POSITION_FILTER = smoothing.OneEuro(min_cutoff=1.0, beta=1.0, d_cutoff=1.0)


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


# --------------------------------------------------------------------------------------------------------------------
# Smoothing (optional, reported apart: the paper's numbers are unsmoothed)

def smoothed(predictions, fps: float, params: smoothing.OneEuro = POSITION_FILTER
             ) -> list[tuple[int, TrackPrediction]]:
    """The per-frame predictions with their 3D joints and vertices One-Euro filtered over each track's frames that
    were not totally occluded (the others keep their values; no protocol scores them)."""
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


def _posed(body: smpl.BodyModel, betas, pose, chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Vertices `[N, V, 3]` and SMPL joints `[N, 24, 3]` of `body` in the body frame (no translation)."""
    parts = [smpl.forward_numpy(body, betas[i:i + chunk], pose[i:i + chunk]) for i in range(0, len(pose), chunk)]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def smooth_prediction(prediction: TrackPrediction, fps: float, body: smpl.BodyModel, image_hw: tuple[int, int],
                      crop_size: int, pose_filter: smoothing.OneEuro = smoothing.POSE_FILTER,
                      camera_filter: smoothing.OneEuro = smoothing.CAMERA_FILTER) -> TrackPrediction:
    """`predict --smooth` on one track: `smoothing.smooth_track` over the frames that were not totally occluded
    (rotations One-Euro filtered in 6D, one betas for the track, and the camera as the translation of a pinhole
    camera over the whole image, `exports.camera_translation`, so the box's own jitter does not enter), the camera
    brought back into each frame's box (`exports.weak_perspective_from_translation`), and the joints, vertices and 2D
    keypoints re-posed from the smoothed parameters with `body`. Occluded frames keep their values."""
    valid = ~np.asarray(prediction.occluded, bool)
    if not valid.any():
        return prediction
    camera = np.asarray(prediction.camera, np.float64)
    box_centre, box_size = prediction.box_centre, prediction.box_size
    with np.errstate(divide="ignore", invalid="ignore"):  # s <= 0 (an untrained model) has no translation
        trans = exports.camera_translation(camera, box_centre, box_size, image_hw, crop_size)
    trans[camera[:, 0] <= 0] = np.nan
    out = smoothing.smooth_track(prediction.pose, prediction.betas, trans, valid, fps, pose_filter, camera_filter)
    placed = valid & np.isfinite(out["camera"]).all(axis=1)
    smoothed_camera = camera.copy()
    smoothed_camera[placed] = exports.weak_perspective_from_translation(
        out["camera"][placed], box_centre[placed], box_size[placed], image_hw, crop_size)
    vertices, joints24 = _posed(body, out["betas"][valid], out["pose"][valid])
    joints14 = np.einsum("kv,nvc->nkc", body.lsp_regressor, vertices)
    fields = {"pose": out["pose"][valid], "betas": out["betas"][valid], "camera": smoothed_camera[valid],
              "joints3d": joints14, "smpl_joints3d": joints24,
              "keypoints2d": geometry.weak_perspective_project(joints14.astype(np.float64), smoothed_camera[valid])}
    if prediction.vertices is not None:
        fields["vertices"] = vertices
    replaced = {}
    for name, value in fields.items():
        array = np.array(getattr(prediction, name), np.float32)
        array[valid] = value
        replaced[name] = array
    return dataclasses.replace(prediction, **replaced)


def smoothed_parameters(predictions, tracks, fps: float, body: smpl.BodyModel, crop_size: int
                        ) -> list[tuple[int, TrackPrediction]]:
    """`smooth_prediction` on every track's predictions (`tracks` give the frame size)."""
    return [(index, smooth_prediction(prediction, fps, body,
                                      threedpw.read_image(tracks[index].image_paths[0]).shape[:2], crop_size))
            for index, prediction in predictions]


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
    official: dict = dataclasses.field(default_factory=dict)  # "pck", "auc", "mpjae", "pa_mpjae" -> [N]

    def values(self, metric: str) -> tuple[np.ndarray, np.ndarray]:
        if metric == "accel":
            return self.accel, self.accel_mask
        return (self.official[metric] if metric in OFFICIAL_METRICS else getattr(self, metric)), self.mask


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


@dataclasses.dataclass(frozen=True)
class JointRegressor:
    """A user's regressor of the paper protocol's LSP-14 joints from SMPL's mesh."""
    matrix: np.ndarray  # [14, 6890] float64
    source: str         # the file, and which of its rows were taken

    def joints(self, vertices, what: str) -> np.ndarray:
        if vertices is None or np.shape(vertices)[-2] != self.matrix.shape[1]:
            count = "no vertices" if vertices is None else f"{np.shape(vertices)[-2]} vertices"
            raise ValueError(f"joint regressor {self.source}: {what} has {count} — the regressor needs SMPL's "
                             f"{SMPL_NUM_VERTICES}-vertex mesh for both prediction and ground truth (official SMPL "
                             "files for the model and for --body_model)")
        return metrics.regress_joints(self.matrix, vertices)


def load_joint_regressor(path) -> JointRegressor:
    """A regressor file (`metrics.load_joint_regressor`: .npy / .npz / HMR's pickle) as LSP-14 rows: 14 rows as they
    are, HMR's 19-joint cocoplus its first 14 (LSP order), H36M's 17 (VIBE's J_regressor_h36m.npy) through
    `H36M_TO_LSP14`. It must be [J, 6890]: joints are regressed from SMPL's mesh."""
    matrix = metrics.load_joint_regressor(path, SMPL_NUM_VERTICES)
    rows = {14: (slice(None), "14 rows, LSP order"), 19: (slice(0, 14), "HMR cocoplus, its first 14 rows"),
            17: (list(H36M_TO_LSP14), "H36M-17 rows through VIBE's H36M_TO_J14")}
    if len(matrix) not in rows:
        raise ValueError(f"{path}: {len(matrix)} joints — expected 14 (LSP), 17 (H36M, VIBE's J_regressor_h36m.npy) "
                         "or 19 (HMR's cocoplus regressor); other joint sets have no LSP-14 order to score")
    take, how = rows[len(matrix)]
    return JointRegressor(matrix[take], f"{Path(path).name} ({how})")


def score_track(track, prediction: TrackPrediction, truth: GroundTruth, protocols: tuple[Protocol, ...] = PROTOCOLS,
                joint_regressor: JointRegressor | None = None) -> dict[str, TrackErrors]:
    """Per-frame errors of one track under every protocol."""
    out = {}
    for protocol in protocols:
        if protocol.name == PAPER.name and joint_regressor is not None:
            pred = joint_regressor.joints(prediction.vertices, "the predicted body")
            gt = joint_regressor.joints(truth.vertices, f"the {track.gender} ground-truth body")
        elif protocol.name == PAPER.name:
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
        official = metrics.official_3dpw_per_frame(prediction.pose, pred, track.pose_cam, gt) \
            if protocol.name == OFFICIAL.name else {}
        out[protocol.name] = TrackErrors(
            pa_mpjpe=metrics.pa_mpjpe_per_frame(pred, gt),
            mpjpe=metrics.mpjpe_per_frame(pred, gt, protocol.joint_names, protocol.root),
            pve=pve, accel=accel, mask=mask, accel_mask=accel_mask, official=official)
    return out


def comparable_meshes(prediction: TrackPrediction, truth: GroundTruth) -> bool:
    """PVE needs both bodies on one mesh: SMPL's genders share it; the open body model meshes each gender apart."""
    return prediction.vertices is not None and prediction.vertices.shape[1:] == truth.vertices.shape[1:]


def aggregate(protocol: Protocol, scored: list[tuple[object, TrackErrors]]) -> dict:
    """The protocol's numbers pooled by its pooling (`metrics.pooled_mean`; NaN errors, e.g. PVE without comparable
    meshes, left out), and the frames, person-sequences and sequence files it scored."""
    used = [(track, e) for track, e in scored if e.mask.any()]
    keys = {metric: (f"{metric}_mm", 1.0) for metric in METRICS}
    if protocol.name == OFFICIAL.name:
        keys.update({metric: (key, OFFICIAL_SCALE[metric]) for metric, key in OFFICIAL_METRICS.items()})
    summary = {}
    for metric, (key, scale) in keys.items():
        pairs = [e.values(metric) for _, e in used]
        summary[key] = scale * metrics.pooled_mean([v for v, _ in pairs], [m & np.isfinite(v) for v, m in pairs],
                                                   [track.sequence for track, _ in used], protocol.pooling)
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


class Scorer:
    """Collects per-track errors of one predictor's predictions, one track at a time, into an `EvaluationResult`."""

    def __init__(self, tracks, body_model_path=None, name: str = "", meta: dict | None = None,
                 pooling: str | None = None, joint_regressor: JointRegressor | None = None, bodies=None):
        self.tracks, self.name, self.meta = tracks, name, dict(meta or {})
        self.protocols = configured(pooling, joint_regressor.source if joint_regressor is not None else None)
        self.joint_regressor = joint_regressor
        self.bodies = bodies or _Bodies(body_model_path)
        self.scored = {p.name: [] for p in self.protocols}
        self.rows, self.curves, self.mesh_notes = [], [], set()

    def truth(self, index: int) -> GroundTruth:
        track = self.tracks[index]
        return GroundTruth.of(track, self.bodies(track.gender))

    def add(self, index: int, prediction: TrackPrediction, truth: GroundTruth | None = None) -> None:
        track = self.tracks[index]
        truth = truth if truth is not None else self.truth(index)
        if not comparable_meshes(prediction, truth):
            self.mesh_notes.add("PVE not reported for some tracks: " + (
                "the predictor gives no vertices" if prediction.vertices is None else
                f"the predicted body has {prediction.vertices.shape[1]} vertices, the {track.gender} ground truth "
                f"{truth.vertices.shape[1]} (PVE needs one mesh for both, as SMPL's genders share)"))
        errors = score_track(track, prediction, truth, self.protocols, self.joint_regressor)
        row = {"sequence": track.sequence, "person": int(track.person), "gender": track.gender,
               "frames": int(track.num_frames)}
        for protocol in self.protocols:
            self.scored[protocol.name].append((track, errors[protocol.name]))
            row[protocol.name] = aggregate(protocol, [(track, errors[protocol.name])])
            for key in ("sequences", "tracks", "tracks_total", "frames_total"):
                row[protocol.name].pop(key)
        self.rows.append(row)
        self.curves.append({"sequence": track.sequence, "person": int(track.person), "errors": errors,
                            "occluded": np.asarray(prediction.occluded, bool),
                            "campose_valid": np.asarray(track.campose_valid, bool)})

    def result(self) -> EvaluationResult:
        summary = {p.name: aggregate(p, self.scored[p.name]) for p in self.protocols}
        meta = {**self.meta, "ground_truth_bodies": sorted(body.source for body in self.bodies.cache.values()),
                "protocol_settings": {p.name: p.to_json() for p in self.protocols}}
        if self.mesh_notes:
            meta["pve_note"] = "; ".join(sorted(self.mesh_notes))
            log.info("%s", meta["pve_note"])
        return EvaluationResult(name=self.name, summary=summary, tracks=self.rows, curves=self.curves, meta=meta)


def score_predictions(tracks, predictions: Iterable[tuple[int, TrackPrediction]], body_model_path=None,
                      name: str = "", meta: dict | None = None, pooling: str | None = None,
                      joint_regressor: JointRegressor | None = None) -> EvaluationResult:
    """Errors of per-frame predictions `(track index, TrackPrediction)` against the tracks' ground truth, pooled by
    each protocol's own pooling or `pooling` ("track", "sequence", "frame")."""
    scorer = Scorer(tracks, body_model_path, name, meta, pooling, joint_regressor)
    for index, prediction in predictions:
        scorer.add(index, prediction)
    return scorer.result()


# --------------------------------------------------------------------------------------------------------------------
# Evaluations

def track_count_note(count: int) -> str | None:
    """Why a pooled train + validation + test evaluation is not the official one, or None when it has 87 tracks."""
    if count == OFFICIAL_NUM_TRACKS:
        return None
    return (f"{count} person-sequences in train + validation + test, not the {OFFICIAL_NUM_TRACKS} of 3DPW's official "
            "evaluation (aymenmir1/3dpw-eval NUM_SEQS): a partial copy or simulator data, not the official scope")


def load_tracks(threedpw_root, split: str = SPLIT) -> list:
    """The person tracks of one split, or with `split="all"` of train, validation and test in that order (the
    official evaluation's scope), warning when they are not the official 87."""
    if split != ALL_SPLITS:
        return threedpw.load_split(threedpw_root, split)
    tracks = [track for name in threedpw.SPLITS for track in threedpw.load_split(threedpw_root, name)]
    note = track_count_note(len(tracks))
    if note:
        log.warning("%s: %s", threedpw_root, note)
    return tracks


def check_regressor_meshes(body_model_path, predictor: Predictor | None = None) -> None:
    """Refuse a joint regressor before any prediction when a body is not on SMPL's 6890-vertex mesh."""
    body = smpl.load_body_model(body_model_path, "neutral")
    bodies = [("the ground-truth body model " + body.source, body.num_vertices)]
    if predictor is not None and len(predictor.faces):
        bodies.append((f"{predictor.name}'s body", int(np.max(predictor.faces)) + 1))
    for what, count in bodies:
        if count != SMPL_NUM_VERTICES:
            raise ValueError(f"--joint_regressor regresses joints from SMPL's {SMPL_NUM_VERTICES}-vertex mesh, but "
                             f"{what} has {count} vertices; give official SMPL files (--body_model, and a model "
                             "trained with them), or leave the regressor out")


def evaluate_variants(predictor: Predictor, tracks, meta: dict, batch_size: int = 1, body_model_path=None,
                      progress: bool = False, pooling: str | None = None,
                      joint_regressor: JointRegressor | None = None, smoothings=("none",),
                      fps: float = THREEDPW_FPS) -> list[EvaluationResult]:
    """One pass of `predictor` over `tracks`, scored as predicted and after each of `smoothings` (SMOOTHINGS)."""
    bodies = _Bodies(body_model_path)
    scorers = {kind: Scorer(tracks, body_model_path, predictor.name + SMOOTHINGS[kind],
                            {**meta, "smoothing": kind}, pooling, joint_regressor, bodies) for kind in smoothings}
    for index, prediction in predict_tracks(predictor, tracks, batch_size, progress):
        truth = scorers[smoothings[0]].truth(index)
        for kind, scorer in scorers.items():
            if kind == "joints":
                ((_, variant),) = smoothed([(index, prediction)], fps)
            elif kind == "parameters":
                ((_, variant),) = smoothed_parameters([(index, prediction)], tracks, fps, predictor.body(),
                                                      predictor.pre.crop_size)
            else:
                variant = prediction
            scorer.add(index, variant, truth)
    return [scorer.result() for scorer in scorers.values()]


def evaluate(predictor: Predictor, threedpw_root=None, split: str = SPLIT, tracks=None, batch_size: int = 1,
             body_model_path=None, progress: bool = False, pooling: str | None = None,
             joint_regressor: JointRegressor | None = None) -> EvaluationResult:
    """Evaluate `predictor` on every person track of a 3DPW-format split ("all": the three pooled) or on `tracks`."""
    tracks = tracks if tracks is not None else load_tracks(threedpw_root, split)
    return evaluate_variants(predictor, tracks, evaluation_meta(predictor, threedpw_root, split, tracks), batch_size,
                             body_model_path, progress, pooling, joint_regressor)[0]


def evaluation_meta(predictor: Predictor, threedpw_root, split: str, tracks) -> dict:
    if not tracks:
        raise ValueError(f"{threedpw_root}: the '{split}' split has no sequence files")
    meta = {"data": str(threedpw_root) if threedpw_root is not None else "(given tracks)", "split": split,
            "preprocessing": predictor.pre.to_json(), "channels": list(predictor.pre.channels.names),
            "source": predictor.source, "step": predictor.step, "window_rule": WINDOW_RULE}
    if split == ALL_SPLITS:
        meta["splits"] = list(threedpw.SPLITS)
        if track_count_note(len(tracks)):
            meta["track_count_note"] = track_count_note(len(tracks))
    return meta


def run(out_dir, threedpw_root, split: str = SPLIT, model_dir=None, saved_model=None, checkpoint=None,
        baseline: bool = False, compare: bool = False, body_model_path=None, batch_size: int = 1,
        plots: bool = True, sequences=None, progress: bool = True, pooling: str | None = None,
        joint_regressor=None, smooth: bool = False) -> tuple[list[EvaluationResult], dict]:
    """What `scripts/evaluate.py` does: evaluate a checkpoint or a SavedModel (and with `baseline` the mean pose,
    through the same code; with `smooth` the model also after One-Euro smoothing of its joints and of its SMPL
    parameters),
    write the report, and with `model_dir` TensorBoard summaries in `<model_dir>/eval_<split>`."""
    tracks = load_tracks(threedpw_root, split)
    if sequences:
        tracks = [t for t in tracks if t.sequence in set(sequences)]
        if not tracks:
            raise ValueError(f"{threedpw_root}: none of the sequences {sorted(sequences)} is in the '{split}' split")
    user_regressor = load_joint_regressor(joint_regressor) if joint_regressor is not None else None
    predictors = []
    if model_dir is not None or saved_model is not None:
        predictors.append(load_predictor(model_dir, saved_model, checkpoint))
    if baseline or not predictors:
        predictors.append(mean_pose_predictor(predictors[0].pre if predictors else None, body_model_path))
    results = []
    for predictor in predictors:
        if user_regressor is not None:
            check_regressor_meshes(body_model_path, predictor)
        smoothings = tuple(SMOOTHINGS) if smooth and predictor.source != "mean pose" else ("none",)
        results += evaluate_variants(predictor, tracks, evaluation_meta(predictor, threedpw_root, split, tracks),
                                     batch_size, body_model_path, progress, pooling, user_regressor, smoothings)
    written = write_report(results, out_dir, compare, plots)
    if model_dir is not None:
        written["tensorboard"] = write_summaries(results[0], Path(model_dir) / f"eval_{split}",
                                                 int(results[0].meta.get("step") or 0))
    return results, written
