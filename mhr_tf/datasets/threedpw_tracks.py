"""`threedpw_tracks`: 3DPW person tracks (von Marcard et al. 2018) cut into windows of T frames, for evaluation and
for DANN's unlabeled target domain (paper §3.3, App. A).

One example = one window of one person's track, as `mhr_tf.data.threedpw.load_sequence` decodes it (camera frame):
windows side by side from frame 0, the last one moved back to end on the track's last frame so every frame is in
one (the "cover" windows of `mhr_tf.data.pipeline.target_windows`); a track shorter than T gives one window whose
frames past its end repeat the last one and are marked `padding`.
- `images`: the sequence's own JPEG bytes, copied unchanged (no re-encoding, no loss); the configs `*_paths` store
  the absolute image paths instead (small, but every reader of the dataset must see the files there).
- `keypoints14 [T, 14, 3]`: `poses2d` (OpenPose COCO-18) in LSP-14 order with confidences (head top, which
  OpenPose lacks, has confidence 0), as the pipeline's `coco_to_lsp_keypoints`; `keypoints_coco` as in the file.
- labels: SMPL pose, betas, translation and joints in the camera frame, and the 14 evaluation joints from the
  gendered body model (`body_model_path`, the open model by default) placed on the file's pelvis.
- masks: `campose_valid`, `keypoints_valid` (the frame has a detection), `padding`.
"""
from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from mhr_tf import datasets
from mhr_tf.body import joints as joint_sets
from mhr_tf.data import threedpw

NUM_POSE = 3 * threedpw.NUM_SMPL_JOINTS  # SMPL axis-angle
GENDERS = tuple(sorted(threedpw.GENDERS.values()))  # ("female", "male")

MANUAL_DOWNLOAD_INSTRUCTIONS = """\
3DPW (real): register on the 3DPW website (https://virtualhumans.mpi-inf.mpg.de/3DPW/), accept its licence,
download sequenceFiles.zip and imageFiles.zip and unpack both into `<manual_dir>/3dpw`, so that
`<manual_dir>/3dpw/sequenceFiles/{train,validation,test}/<seq>.pkl` and `<manual_dir>/3dpw/imageFiles/<seq>/
image_00000.jpg` exist. Simulated shifted-domain set (configs `sim_*`; never 3DPW): run
`python scripts/make_synthetic.py threedpw --out <manual_dir>/sim_3dpw --num_sequences N --frames F`.
"""


@dataclasses.dataclass
class ThreedpwTracksConfig(tfds.core.BuilderConfig):
    """num_frames: T; embed_images: store the JPEG bytes (True) or their absolute paths; simulated: build
    `<manual_dir>/sim_3dpw` (the simulator's shifted-domain set) instead of `<manual_dir>/3dpw`."""
    num_frames: int = datasets.DEFAULT_NUM_FRAMES
    embed_images: bool = True
    simulated: bool = False


def _configs() -> list[ThreedpwTracksConfig]:
    configs = []
    for simulated in (False, True):
        for embed in (True, False):
            for t in datasets.WINDOW_LENGTHS:
                prefix = datasets.SIM_PREFIX if simulated else ""
                what = "the simulator's shifted-domain set (3DPW layout)" if simulated else "3DPW"
                configs.append(ThreedpwTracksConfig(
                    name=f"{prefix}t{t}" + ("" if embed else "_paths"), num_frames=t, embed_images=embed,
                    simulated=simulated,
                    description=f"{what}, person-track windows of {t} frames, "
                                + ("JPEG bytes" if embed else "image paths")))
    return configs


class ThreedpwTracks(tfds.core.GeneratorBasedBuilder):
    """3DPW person-track windows: images, 2D detections, 3D labels in the camera frame, validity masks."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}
    BUILDER_CONFIGS = _configs()
    MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS

    def __init__(self, *, body_model_path=None, use_beam: bool | None = None, skip_bad_files: bool = True,
                 **kwargs):
        """`body_model_path`: SMPL-layout model file or folder for the 14 evaluation joints (None = the open body
        model). `use_beam`: None = when apache_beam is installed."""
        self.body_model_path = None if body_model_path is None else str(body_model_path)
        self.use_beam = datasets.beam_available() if use_beam is None else use_beam
        self.skip_bad_files = skip_bad_files
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        config = self.builder_config
        t = config.num_frames
        smpl_joints, lsp_joints, keypoints = threedpw.NUM_SMPL_JOINTS, datasets.NUM_EVALUATION_JOINTS, \
            threedpw.NUM_KEYPOINTS
        floats = functools.partial(tfds.features.Tensor, dtype=np.float32)
        flags = functools.partial(tfds.features.Tensor, shape=(t,), dtype=np.bool_)
        if config.embed_images:
            images = {"images": tfds.features.Video((t, None, None, 3), encoding_format="jpeg",
                                                    doc="the sequence's JPEGs, unchanged")}
        else:
            images = {"image_paths": tfds.features.Tensor(shape=(t,), dtype=np.str_, doc="absolute JPEG paths")}
        return self.dataset_info_from_configs(
            description=__doc__,
            features=tfds.features.FeaturesDict({
                **images,
                "image_hw": tfds.features.Tensor(shape=(2,), dtype=np.int32, doc="the frames' (H, W)"),
                "keypoints_coco": floats(shape=(t, keypoints, 3), doc="poses2d: COCO_18 (x px, y px, confidence)"),
                "keypoints14": floats(shape=(t, lsp_joints, 3), doc="LSP_14 (x px, y px, confidence); head top 0"),
                "keypoints_valid": flags(doc="the frame has a detection"),
                "campose_valid": flags(doc="the camera pose fits the image for this person"),
                "padding": flags(doc="past the track's end: repeats its last frame"),
                "frame_index": tfds.features.Tensor(shape=(t,), dtype=np.int32, doc="track frame shown"),
                "joints3d_cam": floats(shape=(t, smpl_joints, 3), doc="SMPL_24, metres, camera frame"),
                "joints14_cam": floats(shape=(t, lsp_joints, 3), doc="LSP_14, body model, metres, camera frame"),
                "pose_cam": floats(shape=(t, NUM_POSE), doc="SMPL axis-angle, root in the camera frame"),
                "trans_cam": floats(shape=(t, 3), doc="SMPL translation placing the pelvis, metres"),
                "betas": floats(shape=(threedpw.NUM_BETAS,)),
                "gender": tfds.features.ClassLabel(names=GENDERS),
                "cam_intrinsics": floats(shape=(3, 3), doc="K, pixels"),
                "sequence": tfds.features.Text(),
                "person": tfds.features.Scalar(dtype=np.int32, doc="index in the sequence's people"),
                "start": tfds.features.Scalar(dtype=np.int32, doc="track frame of the window's first frame"),
                "track_frames": tfds.features.Scalar(dtype=np.int32, doc="length of the whole track"),
            }),
            homepage="https://virtualhumans.mpi-inf.mpg.de/3DPW/",
            citation="von Marcard et al., Recovering Accurate 3D Human Pose in the Wild Using IMUs and a Moving "
                     "Camera, ECCV 2018.",
            metadata=tfds.core.MetadataDict(body_model=datasets.body_model_metadata(self.body_model_path)),
        )

    def _split_generators(self, dl_manager):
        folder = "sim_3dpw" if self.builder_config.simulated else "3dpw"
        root = datasets.source_root(dl_manager.manual_dir, folder, lambda p: (p / threedpw.SEQUENCE_DIR).is_dir(),
                                    MANUAL_DOWNLOAD_INSTRUCTIONS)
        splits = {}
        for split in threedpw.SPLITS:
            directory = root / threedpw.SEQUENCE_DIR / split
            items = sorted(str(p.relative_to(root)) for p in directory.glob("*.pkl")) if directory.is_dir() else []
            if items:
                splits[split] = self._generate_examples(root=root, items=items, split=split)
        if not splits:
            raise FileNotFoundError(f"{root}: no sequence in {threedpw.SEQUENCE_DIR}/{{{','.join(threedpw.SPLITS)}}}"
                                    f"/*.pkl\n{MANUAL_DOWNLOAD_INSTRUCTIONS}")
        return splits

    def _generate_examples(self, root, items, split):
        config = self.builder_config
        process = functools.partial(sequence_examples, root=str(root), num_frames=config.num_frames,
                                    embed_images=config.embed_images, simulated=config.simulated,
                                    body_model_path=self.body_model_path)
        return datasets.generate(items, process, self.use_beam, f"threedpw_{split}",
                                 (threedpw.ThreeDPWFormatError, FileNotFoundError), self.skip_bad_files)


def is_simulated_sequence(name: str) -> bool:
    """The simulator names its shifted-domain sequences `simulated_%05d` (never a 3DPW name)."""
    from mhr_tf.sim.make import THREEDPW_NAME_PREFIX
    return name.startswith(THREEDPW_NAME_PREFIX)


def track_windows(num_track_frames: int, num_frames: int) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """`(start, frame_index [T], padding [T])` of each window of a track: side by side from 0, the last one ending
    on the track's last frame; one padded window (last frame repeated) when the track is shorter than T."""
    starts = datasets.window_starts(num_track_frames, num_frames, num_frames) or [0]
    out = []
    for start in starts:
        wanted = np.arange(start, start + num_frames)
        out.append((start, np.minimum(wanted, num_track_frames - 1).astype(np.int32), wanted >= num_track_frames))
    return out


def sequence_examples(relative_path: str, *, root: str, num_frames: int, embed_images: bool, simulated: bool,
                      body_model_path: str | None):
    """Every window of every person of one sequence as `(key, example)`."""
    path = Path(root) / relative_path
    tracks = threedpw.load_sequence(path)
    datasets.check_provenance(path, is_simulated_sequence(tracks[0].sequence), simulated, "threedpw_tracks")
    image_hw = np.array(threedpw.read_image(tracks[0].image_paths[0]).shape[:2], np.int32)
    for track in tracks:
        body = datasets.body_model(body_model_path, track.gender)
        joints14_cam = datasets.evaluation_joints(body, track.betas, track.pose_cam, track.joints3d_cam)
        keypoints14 = joint_sets.convert(track.keypoints2d, joint_sets.COCO_18, joint_sets.LSP_14)
        for start, index, padding in track_windows(track.num_frames, num_frames):
            paths = [track.image_paths[i] for i in index]
            images = ({"images": [Path(p).read_bytes() for p in paths]} if embed_images
                      else {"image_paths": np.array(paths, dtype=object)})
            datasets.count("threedpw_windows")
            yield f"{track.sequence}/{track.person}/{start:05d}", {
                **images, "image_hw": image_hw,
                "keypoints_coco": track.keypoints2d[index], "keypoints14": keypoints14[index].astype(np.float32),
                "keypoints_valid": track.keypoints_valid[index], "campose_valid": track.campose_valid[index],
                "padding": padding, "frame_index": index,
                "joints3d_cam": track.joints3d_cam[index], "joints14_cam": joints14_cam[index],
                "pose_cam": track.pose_cam[index], "trans_cam": track.trans_cam[index], "betas": track.betas,
                "gender": track.gender, "cam_intrinsics": track.cam_intrinsics.astype(np.float32),
                "sequence": track.sequence, "person": np.int32(track.person), "start": np.int32(start),
                "track_frames": np.int32(track.num_frames),
            }


BUILDER = ThreedpwTracks
