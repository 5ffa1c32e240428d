"""`surreal_clips`: SURREAL clips (Varol et al. 2017), whole, ready for the online pipeline's TFDS source.

One example = one clip, decoded by `mhr_tf.data.surreal.load_clip` (camera frame, unmirrored), plus the body's 14
evaluation joints computed at build time (`mhr_tf.data.sources.person_labels`, the open body model by default).
Whole clips, so that the pipeline draws a T-frame clip's start uniformly per example, for any T, as the file source
does (`mhr_tf.data.sources.draw_choices`); every per-frame image is encoded on its own, so only the drawn T frames
are decoded.

Encodings (measured on simulator clips; SURREAL's own are alike: a ~100-200 px person in a 320x240 frame):
- `frames`: the person only — pixels off the person (segm 0) are set to 0 — as PNG: lossless on every pixel the
  pipeline uses (App. A composites with the hard segmentation mask, so SURREAL's own background is never shown),
  ~7 KB/frame, ~1.7 ms/frame to decode.
- `segm`: uint8 part ids, one PNG per frame: lossless, ~1 KB/frame.
- `depth_mm`: uint16 millimetres along each pixel's ray (SURREAL's convention), one 16-bit PNG per frame,
  DEPTH_MM_BACKGROUND off the body: error <= 0.5 mm up to 65.534 m (far below App. B's 20 cm rule).
- joints, pose, betas: float32 as the decoder returns them (exact).
"""
from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from mhr_tf import datasets
from mhr_tf.data import provenance, sources, surreal
from mhr_tf.geometry import SURREAL_IMAGE_HW

GENDERS = surreal.GENDERS  # the ClassLabel's order is SURREAL's `gender` codes: 0 female, 1 male
DEPTH_MM_PER_METRE = sources.DEPTH_MM_PER_METRE
DEPTH_MM_BACKGROUND = sources.DEPTH_MM_BACKGROUND  # stands for SURREAL's 1e10 "no surface"
DEPTH_MM_MAX = DEPTH_MM_BACKGROUND - 1  # 65.534 m: deeper surfaces are clipped (SURREAL's are 3-12 m away)
PNG_COMPRESSION = 6  # cv2's zlib level for the person frames: 3x smaller than level 1, decode cost unchanged

MANUAL_DOWNLOAD_INSTRUCTIONS = """\
SURREAL (real): request access on the SURREAL project page (https://www.di.ens.fr/willow/research/surreal/data/),
accept its licence, download SURREAL_v1.tar.gz with the script you are sent, unpack it and put (or link) its
`data/cmu` folder as `<manual_dir>/surreal`, so that `<manual_dir>/surreal/train/run0/<seq>/<seq>_c0001.mp4` exists
with its _info.mat, _segm.mat and _depth.mat. Simulated (configs `sim_*`): run
`python scripts/make_synthetic.py surreal --out <manual_dir>/sim_surreal --num_sequences N --frames F`.
"""


@dataclasses.dataclass
class SurrealClipsConfig(tfds.core.BuilderConfig):
    """simulated: build the simulator's files (`<manual_dir>/sim_surreal`) rather than SURREAL's
    (`<manual_dir>/surreal`)."""
    simulated: bool = False


def _configs() -> list[SurrealClipsConfig]:
    return [SurrealClipsConfig(name="clips", simulated=False, description="SURREAL's clips, whole"),
            SurrealClipsConfig(name=f"{datasets.SIM_PREFIX}clips", simulated=True,
                               description="the simulator's SURREAL-format clips, whole")]


class SurrealClips(tfds.core.GeneratorBasedBuilder):
    """SURREAL clips, whole (person frames, segmentation, depth, joints, pose, shape)."""

    VERSION = tfds.core.Version("2.0.0")
    RELEASE_NOTES = {"1.0.0": "First release: fixed windows of T frames.",
                     "2.0.0": "Whole clips, one encoded image per frame and field."}
    BUILDER_CONFIGS = _configs()
    MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS

    def __init__(self, *, body_model_path=None, use_beam: bool | None = None, skip_bad_files: bool = True,
                 **kwargs):
        """`body_model_path`: the SMPL-layout model (file or folder, `mhr_tf.body.smpl.load_body_model`) the 14
        evaluation joints come from, None = the open body model. `use_beam`: None = when apache_beam is installed."""
        self.body_model_path = None if body_model_path is None else str(body_model_path)
        self.use_beam = datasets.beam_available() if use_beam is None else use_beam
        self.skip_bad_files = skip_bad_files
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        h, w = SURREAL_IMAGE_HW
        smpl_joints, lsp_joints = surreal.NUM_JOINTS, datasets.NUM_EVALUATION_JOINTS
        floats = functools.partial(tfds.features.Tensor, dtype=np.float32)
        frame_image = functools.partial(tfds.features.Image, shape=(h, w, 1), encoding_format="png")
        return self.dataset_info_from_configs(
            description=__doc__,
            features=tfds.features.FeaturesDict({
                "frames": tfds.features.Video((None, h, w, 3), encoding_format="png",
                                              doc="uint8 RGB, unmirrored; 0 off the person (segm 0)"),
                "segm": tfds.features.Sequence(frame_image(dtype=np.uint8), doc="0 background, 1 + SMPL part"),
                "depth_mm": tfds.features.Sequence(frame_image(dtype=np.uint16),
                                                   doc="mm along the ray; 65535 = no surface"),
                "joints2d": floats(shape=(None, smpl_joints, 2), doc="SMPL_24, pixels: projection of joints3d_cam"),
                "joints3d_cam": floats(shape=(None, smpl_joints, 3), doc="SMPL_24, metres, camera frame"),
                "joints14_2d": floats(shape=(None, lsp_joints, 2), doc="LSP_14, pixels"),
                "joints14_cam": floats(shape=(None, lsp_joints, 3), doc="LSP_14, body model, metres, camera frame"),
                "pose_cam": floats(shape=(None, surreal.NUM_POSE), doc="SMPL axis-angle, root in the camera frame"),
                "betas": floats(shape=(surreal.NUM_BETAS,)),
                "gender": tfds.features.ClassLabel(names=GENDERS),
                "clip": tfds.features.Text(doc="the clip's .mp4, relative to the SURREAL root"),
            }),
            homepage="https://www.di.ens.fr/willow/research/surreal/",
            citation="Varol et al., Learning from Synthetic Humans, CVPR 2017.",
            metadata=tfds.core.MetadataDict(body_model=datasets.body_model_metadata(self.body_model_path)),
        )

    def _split_generators(self, dl_manager):
        folder = ("sim_" if self.builder_config.simulated else "") + "surreal"
        root = datasets.source_root(dl_manager.manual_dir, folder, _has_surreal_layout,
                                    MANUAL_DOWNLOAD_INSTRUCTIONS)
        splits = {}
        for split in surreal.SPLITS:
            clips = _list_clips(root, split)
            if clips:
                splits[split] = self._generate_examples(root=root, clips=clips, split=split)
        if not splits:
            raise FileNotFoundError(f"{root}: no clip in any of {surreal.SPLITS} "
                                    f"(<split>/run<r>/<seq>/<seq>_c%04d.mp4)\n{MANUAL_DOWNLOAD_INSTRUCTIONS}")
        return splits

    def _generate_examples(self, root, clips, split):
        config = self.builder_config
        process = functools.partial(clip_examples, root=str(root), simulated=config.simulated,
                                    body_model_path=self.body_model_path)
        return datasets.generate(clips, process, self.use_beam, f"surreal_{split}", (surreal.SurrealFormatError,),
                                 self.skip_bad_files)


def _has_surreal_layout(path: Path) -> bool:
    return any((path / split).is_dir() or (path / "cmu" / split).is_dir() for split in ("train", "val", "test"))


def _list_clips(root: Path, split: str) -> list[str]:
    """The clips of a split as paths relative to `root`, sorted."""
    for base in (root, root / "cmu"):
        if (base / split).is_dir():
            return sorted(str(p.relative_to(root)) for p in (base / split).glob("run*/*/*_c[0-9][0-9][0-9][0-9].mp4"))
    return []


def is_simulated_clip(mp4_path) -> bool:
    """Whether a clip's `_info.mat` says the simulator wrote it (`source` = 'mhr_tf_sim')."""
    import scipy.io
    info_path = surreal.companion_path(mp4_path, "info")
    source = scipy.io.loadmat(info_path, variable_names=["source"]).get("source") if info_path.is_file() else None
    return source is not None and provenance.is_simulated_surreal_source(np.asarray(source).reshape(-1)[0])


def encode_person_frames(frames: np.ndarray, segm: np.ndarray) -> list[bytes]:
    """PNG bytes of each frame with the pixels off the person (segm 0) set to 0: [T, H, W, 3] RGB -> T PNGs."""
    import cv2
    out = []
    for frame, part in zip(frames, segm):
        person = np.where(part[..., None] > 0, frame, 0).astype(np.uint8)
        ok, png = cv2.imencode(".png", np.ascontiguousarray(person[..., ::-1]),
                               [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION])
        if not ok:
            raise ValueError("OpenCV could not encode a SURREAL frame as PNG")
        out.append(png.tobytes())
    return out


def quantize_depth(depth: np.ndarray) -> np.ndarray:
    """SURREAL depth (metres, 1e10 = no surface) -> uint16 millimetres, DEPTH_MM_BACKGROUND = no surface."""
    depth = np.asarray(depth, np.float64)
    millimetres = np.clip(np.round(depth * DEPTH_MM_PER_METRE), 0, DEPTH_MM_MAX)
    return np.where(depth >= surreal.DEPTH_BACKGROUND, DEPTH_MM_BACKGROUND, millimetres).astype(np.uint16)


def clip_examples(relative_path: str, *, root: str, simulated: bool, body_model_path: str | None):
    """One clip as `(key, example)`: decoded once, the body run once over all frames."""
    mp4 = Path(root) / relative_path
    datasets.check_provenance(mp4, is_simulated_clip(mp4), simulated, "surreal_clips")
    clip = surreal.load_clip(mp4)
    labels = sources.person_labels(clip, datasets.body_model(body_model_path, clip.gender))
    datasets.count("surreal_clips")
    yield relative_path, {
        "frames": encode_person_frames(clip.frames, clip.segm),
        "segm": clip.segm[..., None],
        "depth_mm": quantize_depth(clip.depth)[..., None],
        "joints3d_cam": clip.joints3d_cam, "pose_cam": clip.pose_cam, **labels, "betas": clip.betas,
        "gender": clip.gender, "clip": relative_path,
    }


BUILDER = SurrealClips
