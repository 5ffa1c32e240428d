"""Where training examples come from: the pluggable source at the head of the one pipeline (paper §3.1, App. A).

Both sources give the same *raw example* (`raw_spec`): T frames of a SURREAL person and T frames of a background
window (resized, not yet cropped) with its camera motion and SLIC labels, plus the crop drawn for it. Both draw
every random choice with the same TF function from the example's key (`draw_choices`): the clip's start, the
background window's start and the crop. They differ only in how the person clip and the background window are
chosen and read:

- `FileSource`: the user's files through the Python decoders (SURREAL's .mp4/.mat via `mhr_tf.data.surreal`, the
  background windows cached beside each video by `scripts/preprocess_backgrounds.py`). The clip and the window are
  drawn uniformly from the example's key; the decoders run in one `tf.numpy_function` told exactly which frames to
  read. A file that fails to decode gives a raw example with a bad `status`, recorded with its file in
  `BadSamples`.
- `TFDSSource`: the prepared TFDS records (`surreal_clips`, `background_clips`), TF ops only, so the graph runs on
  tf.data service workers. Clips and windows come from shuffled, repeated record streams; only the T chosen frames
  of a record are decoded.

Differences by design: TFDS records hold depth quantized to 1 mm, and background frames as JPEG by default (the
`frames_encoding="png"` config of `background_clips` is lossless); the file source reads the decoders' values.
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np
import tensorflow as tf

from mhr_tf import geometry
from mhr_tf.body import smpl
from mhr_tf.data import background_windows, surreal, surreal_manifest, videos

log = logging.getLogger(__name__)

IMAGE_HW = geometry.SURREAL_IMAGE_HW
# Why a raw example is unusable (`status`); 0 is a good example. The pipeline counts each reason.
STATUS_OK, STATUS_UNREADABLE, STATUS_NON_FINITE, STATUS_OFF_FRAME = 0, 1, 2, 3
REASONS = ("unreadable file", "non-finite values", "the person leaves the frame")
SURREAL_DATASET = "surreal_clips"
BACKGROUND_DATASET = "background_clips"
SHUFFLE_BUFFER = 1024  # examples per source's shuffle buffer (encoded frames: ~0.2-2 MB each)


def raw_spec(num_frames: int) -> dict[str, tuple[tf.DType, list]]:
    """The raw example both sources give: name -> (dtype, shape); None dims vary (the resized background)."""
    t, (h, w) = num_frames, IMAGE_HW
    return {
        "person_rgb": (tf.uint8, [t, h, w, 3]),       # SURREAL frames, unmirrored
        "segm": (tf.uint8, [t, h, w]),                # 0 background, 1 + SMPL part
        "depth": (tf.float32, [t, h, w]),             # metres along each pixel's ray, 1e10 off the body
        "joints2d": (tf.float32, [t, 24, 2]),         # SMPL_24, frame pixels
        "joints3d_cam": (tf.float32, [t, 24, 3]),     # SMPL_24, metres, camera frame
        "joints14_2d": (tf.float32, [t, 14, 2]),      # LSP_14, frame pixels
        "joints14_cam": (tf.float32, [t, 14, 3]),     # LSP_14, metres, camera frame
        "pose_cam": (tf.float32, [t, 72]),            # SMPL axis-angle, root in the camera frame
        "betas": (tf.float32, [10]),
        "background": (tf.uint8, [t, None, None, 3]),  # resized (one side 240x320), not cropped
        "superpixels": (tf.int32, [t, None, None]),    # the window's SLIC labels, same size
        "median_flow": (tf.float32, [t - 1, 2]),       # per-step camera motion, resized pixels
        "crop": (tf.int32, [2]),                       # (top, left) of the 240x320 crop, drawn
        "status": (tf.int32, []),                      # STATUS_*
        "clip": (tf.string, []),                       # which SURREAL clip (relative to the root), its first frame
        "start": (tf.int32, []),
        "video": (tf.string, []),                      # which background video (<label>/<id>), the clip's first
                                                       # frame in it
        "video_start": (tf.int32, []),
    }


# --------------------------------------------------------------------------------------------------------------------
# The draws, shared by both sources

def example_key(seed, index) -> tf.Tensor:
    """`[2]` int64: the stateless key of one example, from the run's seed and the example's index in its stream."""
    return tf.random.experimental.stateless_fold_in(tf.stack([tf.cast(seed, tf.int64), tf.constant(0x6D68, tf.int64)]),
                                                    tf.cast(index, tf.int64))


def uniform_int(key, count) -> tf.Tensor:
    """A uniform int32 in [0, count)."""
    return tf.random.stateless_uniform([], key, minval=0, maxval=tf.cast(count, tf.int32), dtype=tf.int32)


def draw_choices(key, clip_frames, window_frames, window_hw, num_frames: int) -> dict[str, tf.Tensor]:
    """App. A's per-example draws: a T-frame clip's `start` in the person clip, its `offset` in the background
    window, and the 240x320 crop `(top, left)` in the resized window — each uniform over what fits."""
    keys = tf.random.experimental.stateless_split(tf.random.experimental.stateless_fold_in(key, 1), 4)
    window_hw = tf.cast(window_hw, tf.int32)
    return {"start": uniform_int(keys[0], tf.cast(clip_frames, tf.int32) - num_frames + 1),
            "offset": uniform_int(keys[1], tf.cast(window_frames, tf.int32) - num_frames + 1),
            "crop": tf.stack([uniform_int(keys[2], window_hw[0] - IMAGE_HW[0] + 1),
                              uniform_int(keys[3], window_hw[1] - IMAGE_HW[1] + 1)])}


def person_labels(clip: surreal.SurrealClip, body) -> dict[str, np.ndarray]:
    """The joints a training example needs from a decoded SURREAL clip: the file's 24 joints projected, and the 14
    evaluation joints the body model regresses from its vertices, placed by the offset that puts the body's pelvis
    on the file's (`body`: `smpl.joint_model` of the clip's gender)."""
    t = len(clip.pose_cam)
    vertices, model_joints = smpl.forward_numpy(body, np.broadcast_to(clip.betas, (t, len(clip.betas))),
                                                clip.pose_cam)
    offset = clip.joints3d_cam[:, :1] - model_joints[:, :1]
    joints14_cam = np.einsum("kv,tvc->tkc", body.lsp_regressor, vertices) + offset
    return {"joints2d": geometry.project(clip.joints3d_cam.astype(np.float64), clip.intrinsics).astype(np.float32),
            "joints14_cam": joints14_cam.astype(np.float32),
            "joints14_2d": geometry.project(joints14_cam.astype(np.float64), clip.intrinsics).astype(np.float32)}


class BadSamples:
    """The samples a run could not read, with their files and reasons (thread-safe; the Python source's side of the
    pipeline's rejection accounting)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.count = 0
        self.by_reason: dict[str, int] = {}
        self.examples: dict[str, list[str]] = {}

    def record(self, what: str, reason: str, detail: str) -> None:
        with self._lock:
            self.count += 1
            self.by_reason[reason] = self.by_reason.get(reason, 0) + 1
            examples = self.examples.setdefault(reason, [])
            if len(examples) < 5:
                examples.append(f"{what}: {detail}")
        log.warning("skipping bad sample %s: %s", what, detail)

    def report(self) -> str:
        lines = [f"{self.count} unreadable samples skipped"]
        for reason, n in sorted(self.by_reason.items(), key=lambda kv: -kv[1]):
            lines.append(f"  {n} × {reason}, e.g. " + "; ".join(self.examples[reason][:2]))
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------------------------------
# The user's files, through the Python decoders

class FileSource:
    """SURREAL clips (the split's manifest) and background windows (each video's window cache) read by the Python
    decoders: one `tf.numpy_function` per example, told which frames to read (`raw`)."""

    python = True  # a Python step: cannot run on tf.data service

    def __init__(self, surreal_root, background_root, num_frames: int, split: str = "train", body_model_path=None,
                 bad_samples: BadSamples | None = None):
        self.num_frames = num_frames
        self.bad_samples = bad_samples or BadSamples()
        self.surreal_root = Path(surreal_root).resolve()
        self.clips = [e for e in surreal_manifest.build_manifest(surreal_root, split) if e.frames >= num_frames]
        if not self.clips:
            raise ValueError(f"{surreal_root}: no SURREAL clip of the '{split}' split has {num_frames} frames or more")
        self.windows = self._windows(background_root, num_frames)
        self._body_model_path = body_model_path
        self._bodies: dict[str, object] = {}
        self._lock = threading.Lock()
        self.clip_frames = tf.constant([e.frames for e in self.clips], tf.int32)
        self.window_frames = tf.constant([int(c.lengths[k]) for c, k in self.windows], tf.int32)
        self.window_hw = tf.constant([c.resized_hw for c, _ in self.windows], tf.int32)

    @staticmethod
    def _windows(background_root, num_frames: int) -> list[tuple[background_windows.CachedWindows, int]]:
        entries = videos.list_videos(background_root)
        cached = [e for e in entries if background_windows.cache_path(e.path, num_frames).exists()]
        if not cached:
            raise FileNotFoundError(
                f"{background_root}: no background video has its window cache for {num_frames}-frame clips yet; run "
                f"`python scripts/preprocess_backgrounds.py --root {background_root} --num_frames {num_frames}`")
        if len(cached) < len(entries):
            log.warning("%s: %d of %d background videos have no window cache for %d-frame clips and are not used",
                        background_root, len(entries) - len(cached), len(entries), num_frames)
        caches = [background_windows.load_cache(e.path, num_frames) for e in cached]
        return [(cache, k) for cache in caches for k in range(len(cache.starts))]

    def _body(self, gender: str):
        with self._lock:
            if gender not in self._bodies:  # only joints are needed here, not the mesh
                self._bodies[gender] = smpl.joint_model(smpl.load_body_model(self._body_model_path, gender))
            return self._bodies[gender]

    def raw(self, key: tf.Tensor) -> dict[str, tf.Tensor]:
        """The raw example of `key` (`example_key`), TF ops around one Python decode."""
        item_keys = tf.random.experimental.stateless_split(tf.random.experimental.stateless_fold_in(key, 2), 2)
        clip = uniform_int(item_keys[0], len(self.clips))
        window = uniform_int(item_keys[1], len(self.windows))
        choices = draw_choices(key, tf.gather(self.clip_frames, clip), tf.gather(self.window_frames, window),
                               tf.gather(self.window_hw, window), self.num_frames)
        spec = raw_spec(self.num_frames)
        names = [k for k in spec if k != "crop"]
        values = tf.numpy_function(self.decode, [clip, choices["start"], window, choices["offset"]],
                                   [spec[k][0] for k in names], stateful=False)
        raw = {k: tf.ensure_shape(v, spec[k][1]) for k, v in zip(names, values)}
        raw["crop"] = choices["crop"]
        return raw

    def decode(self, clip: int, start: int, window: int, offset: int) -> tuple:
        """Python: frames [start, start + T) of clip `clip` and [offset, offset + T) of window `window`, in
        `raw_spec` order (without the crop). A failure is recorded in `bad_samples` and gives a raw example of the
        right shapes with a bad status."""
        t = self.num_frames
        entry = self.clips[int(clip)]
        cache, k = self.windows[int(window)]
        start, offset = int(start), int(offset)
        video_start = int(cache.starts[k]) + offset
        status = STATUS_OK
        try:
            person = surreal.load_clip(entry.path, slice(start, start + t))
            labels = person_labels(person, self._body(person.gender))
            frames, labels_bg, median = background_windows.read_window(cache, k, offset, t)
            values = {"person_rgb": person.frames, "segm": person.segm, "depth": person.depth,
                      "joints3d_cam": person.joints3d_cam, "pose_cam": person.pose_cam, "betas": person.betas,
                      **labels, "background": frames, "superpixels": labels_bg, "median_flow": median}
            bad = [name for name, v in values.items() if v.dtype.kind == "f" and not np.isfinite(v).all()]
            if bad:
                status = STATUS_NON_FINITE
                self.bad_samples.record(str(entry.path), REASONS[status - 1],
                                        f"non-finite {', '.join(bad)} in frames [{start}, {start + t})")
        except Exception as error:  # a long run skips a bad sample, counts it and says which file
            status = STATUS_NON_FINITE if "non-finite" in str(error) else STATUS_UNREADABLE
            self.bad_samples.record(f"{entry.path} + {cache.video}", REASONS[status - 1],
                                    f"{type(error).__name__}: {error}")
        spec = raw_spec(t)
        if status != STATUS_OK:  # zeros of the right shapes: the window's size, so the drawn crop still fits
            full = (t,) + tuple(cache.resized_hw) + (3,)
            values = {name: np.zeros([d if d is not None else n for d, n in zip(shape, full)], dtype.as_numpy_dtype)
                      for name, (dtype, shape) in spec.items() if dtype != tf.string}
        values.update(status=np.int32(status), clip=str(entry.path.relative_to(self.surreal_root)).encode(),
                      start=np.int32(start), video=background_windows.video_key(cache.video).encode(),
                      video_start=np.int32(video_start))
        return tuple(np.asarray(values[name], spec[name][0].as_numpy_dtype) for name in spec if name != "crop")


# --------------------------------------------------------------------------------------------------------------------
# The prepared TFDS records, TF ops only

def find_config(data_dir, dataset: str, config: str | None = None, accept=lambda name: True) -> Path:
    """The prepared builder directory `<data_dir>/<dataset>/<config>/<version>` (its newest version). `config` None:
    the one built config that `accept`s its name (an error naming them when there are several, e.g. a real and a
    simulated one)."""
    root = Path(data_dir) / dataset
    built = sorted({p.parent.parent.name for p in root.glob("*/*/dataset_info.json")})
    candidates = [config] if config is not None else [name for name in built if accept(name)]
    if len(candidates) > 1:
        raise ValueError(f"{root}: {len(candidates)} configs fit ({candidates}); name one")
    versions = sorted(root.glob(f"{candidates[0]}/*/dataset_info.json")) if candidates else []
    if not versions:
        raise FileNotFoundError(f"{root}: no prepared {dataset} config{'' if config is None else ' ' + repr(config)} "
                                f"that fits (built there: {built or 'none'}); build one with "
                                f"`python scripts/build_datasets.py {dataset}/<config> --data_dir {data_dir}`")
    return versions[-1].parent


# Fields decoded by us, only for the chosen frames (the others TFDS decodes).
_ENCODED = ("frames", "segm", "depth_mm", "superpixels")


class TFDSSource:
    """`surreal_clips` and `background_clips` records, shuffled and repeated, read with TF ops only."""

    python = False

    def __init__(self, data_dir, num_frames: int, split: str = "train", surreal_config: str | None = None,
                 background_config: str | None = None, shuffle_buffer: int = SHUFFLE_BUFFER):
        if data_dir is None:
            import tensorflow_datasets as tfds
            data_dir = tfds.core.constants.DATA_DIR  # $TFDS_DATA_DIR or ~/tensorflow_datasets
        self.num_frames = num_frames
        self.split = split
        self.shuffle_buffer = shuffle_buffer
        self.surreal_dir = find_config(data_dir, SURREAL_DATASET, surreal_config)
        # background_clips' configs are per clip length: t31, sim_t31, ...
        self.background_dir = find_config(data_dir, BACKGROUND_DATASET, background_config,
                                          accept=lambda name: name.removeprefix("sim_").split("_")[0] == f"t{num_frames}")

    def _records(self, builder_dir: Path, split: str, seed: tf.Tensor) -> tf.data.Dataset:
        import tensorflow_datasets as tfds
        builder = tfds.builder_from_directory(str(builder_dir))
        decoders = {name: tfds.decode.SkipDecoding() for name in _ENCODED if name in builder.info.features}
        ds = builder.as_dataset(split=split, shuffle_files=False, decoders=decoders, read_config=tfds.ReadConfig(
            shuffle_seed=None, add_tfds_id=False, try_autocache=False))
        return ds.shuffle(self.shuffle_buffer, seed=seed, reshuffle_each_iteration=True).repeat()

    def pairs(self, seed: tf.Tensor) -> tf.data.Dataset:
        """(surreal record, background record) forever, each stream shuffled with its own seed."""
        return tf.data.Dataset.zip(self._records(self.surreal_dir, self.split, seed),
                                   self._records(self.background_dir, "train", seed + 1))

    def raw(self, key: tf.Tensor, pair) -> dict[str, tf.Tensor]:
        """The raw example of `key` from one pair of records: draws, then decodes only the chosen frames."""
        person, scene = pair
        t = self.num_frames
        choices = draw_choices(key, tf.shape(person["frames"])[0], tf.shape(scene["frames"])[0],
                               scene["resized_hw"], t)
        frames = slice(choices["start"], choices["start"] + t)
        window = slice(choices["offset"], choices["offset"] + t)
        decode = lambda encoded, dtype, channels: tf.map_fn(  # noqa: E731
            lambda png: tf.io.decode_image(png, channels=channels, dtype=dtype, expand_animations=False), encoded,
            fn_output_signature=tf.TensorSpec([None, None, channels], dtype))
        raw = {"person_rgb": decode(person["frames"][frames], tf.uint8, 3),
               "segm": decode(person["segm"][frames], tf.uint8, 1)[..., 0],
               "depth": _depth_metres_xla(decode(person["depth_mm"][frames], tf.uint16, 1)[..., 0]),
               **{name: person[name][frames] for name in ("joints2d", "joints3d_cam", "joints14_2d", "joints14_cam",
                                                          "pose_cam")},
               "betas": person["betas"],
               "background": decode(scene["frames"][window], tf.uint8, 3),
               "superpixels": tf.cast(decode(scene["superpixels"][window], tf.uint16, 1)[..., 0], tf.int32),
               "median_flow": scene["median_flow"][choices["offset"]:choices["offset"] + t - 1],
               "crop": choices["crop"], "status": tf.constant(STATUS_OK, tf.int32),
               "clip": person["clip"], "start": choices["start"], "video": scene["video"],
               "video_start": scene["start"] + choices["offset"]}
        spec = raw_spec(t)
        return {k: tf.ensure_shape(tf.cast(v, spec[k][0]), spec[k][1]) for k, v in raw.items()}


# The TFDS encoding of SURREAL's depth (`mhr_tf.datasets.surreal_clips`): uint16 mm, 65535 = no surface.
DEPTH_MM_PER_METRE = 1000.0
DEPTH_MM_BACKGROUND = np.iinfo(np.uint16).max


def depth_metres(depth_mm: tf.Tensor) -> tf.Tensor:
    """uint16 millimetres -> float32 metres along the ray, SURREAL's 1e10 where there is no surface."""
    metres = tf.cast(depth_mm, tf.float32) / DEPTH_MM_PER_METRE
    return tf.where(tf.equal(depth_mm, DEPTH_MM_BACKGROUND), tf.constant(surreal.DEPTH_BACKGROUND, tf.float32), metres)


# The same in one XLA pass over the clip's depth (TF's three passes took ~2.5x the CPU time; the same values as TF's
# graph, which multiplies by 1/1000 too).
_depth_metres_xla = tf.function(depth_metres, jit_compile=True, autograph=False)

