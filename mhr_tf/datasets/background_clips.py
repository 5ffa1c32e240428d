"""`background_clips`: Kinetics-style background videos cut into windows of T frames, with everything App. A computes
from a background: the 240x320 crop, the camera motion and the 4-D SLIC superpixels.

One example = one window of one video (`crops_per_window` examples per window if more than one crop is asked for):
- App. A's resize + random crop is done here, once per example, from a generator seeded by (config seed, video,
  window start, crop number) — `mhr_tf.data.videos.crop_params` and `apply_crop`, as the Python pipeline does. So the
  online pipeline needs no resize, no crop and no SLIC: the superpixels must be computed on the very pixels that are
  shown, at the pixel scale App. A's coordinates are in (a wider, uncropped window would need another SLIC set-up).
  The price is one fixed crop per example instead of a new one per epoch; Kinetics' ~300k videos times their windows
  give more backgrounds than a training run sees, and `crops_per_window` adds more.
- `median_flow [T-1, 2]`: the per-step median flow of the video (App. A, TV-L1), from the cache
  `scripts/preprocess_backgrounds.py` leaves beside the video when there is one, else computed here over the whole
  video (`flow_method`, `flow_scale`); scaled by the crop's resize (x and y), as `pipeline.clip_median_flow` does.
  `camera_shift [T, 2]` = `camera_motion.integrate_relative_to_centre(median_flow)`.
- `superpixels [T, 240, 320]`: `occlusion.slic_4d` on the cropped frames with that shift, its parameters
  (`slic_segments`, `slic_xy_scale`) drawn by `occlusion.sample_slic_parameters` from the same generator after the
  crop; `slic_downsample` 1 is the paper's setting (default here: it runs once per example, offline), 2 the fast one.

Encodings: `frames` JPEG q95 (~30 KB/frame, ~1.2 ms/frame to decode; against the decoder's frames PSNR 36-43 dB,
mean error 1.1-3.1 levels on the simulator's backgrounds, on top of the source video's own compression; PNG would be
~140 KB/frame); `superpixels` uint16, zlib, lossless (~1 KB/frame).
`source_fields(example)` (TF ops) gives the fields of `mhr_tf.data.pipeline.SyntheticSource` from one example.
"""
from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from mhr_tf import datasets
from mhr_tf.data import camera_motion, occlusion, videos
from mhr_tf.geometry import SURREAL_IMAGE_HW
from mhr_tf.sim.backgrounds import ID_PREFIX as SIMULATED_ID_PREFIX  # the simulator's video ids

IMAGE_HW = SURREAL_IMAGE_HW  # App. A: backgrounds are cropped to SURREAL's 240x320
JPEG_QUALITY = 95
SPLIT = "train"  # Kinetics' class folders hold no split the paper uses: backgrounds are one training pool

MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Kinetics (real): get the Kinetics-400/600/700 video list (CSV of YouTube ids and times) from the Kinetics page
(https://github.com/cvdfoundation/kinetics-dataset or DeepMind's Kinetics page), download the clips with a
downloader such as the `kinetics-dataset` scripts or `yt-dlp` (respecting the videos' terms), and arrange them
as `<manual_dir>/kinetics/<label>/<id>.mp4` (any container OpenCV reads). Optionally run
`python scripts/preprocess_backgrounds.py --root <manual_dir>/kinetics` first: the builder then reuses the cached
camera motion instead of computing it. Simulated (configs `sim_*`): run
`python scripts/make_synthetic.py backgrounds --out <manual_dir>/sim_backgrounds --num_sequences N --frames F`.
"""


@dataclasses.dataclass
class BackgroundClipsConfig(tfds.core.BuilderConfig):
    """num_frames: T; stride: frames between window starts (None = T); crops_per_window: examples (random crops)
    per window; slic_downsample: `occlusion.slic_4d`'s (1 = the paper's setting); flow_method / flow_scale: the
    median flow when a video has no cache (`camera_motion.median_flow`); seed: of every crop and SLIC draw;
    simulated: build `<manual_dir>/sim_backgrounds` instead of `<manual_dir>/kinetics`."""
    num_frames: int = datasets.DEFAULT_NUM_FRAMES
    stride: int | None = None
    crops_per_window: int = 1
    slic_downsample: int = 1
    flow_method: str = "tvl1"
    flow_scale: float = 0.5
    seed: int = 0
    simulated: bool = False

    @property
    def window_stride(self) -> int:
        return self.stride or self.num_frames


def _configs() -> list[BackgroundClipsConfig]:
    configs = []
    for simulated in (False, True):
        for t in datasets.WINDOW_LENGTHS:
            prefix = datasets.SIM_PREFIX if simulated else ""
            what = "the simulator's background videos" if simulated else "Kinetics-style videos"
            configs.append(BackgroundClipsConfig(
                name=f"{prefix}t{t}", num_frames=t, simulated=simulated,
                description=f"{what}, windows of {t} frames side by side, paper-setting SLIC"))
    return configs


class BackgroundClips(tfds.core.GeneratorBasedBuilder):
    """Background video windows at 240x320 with camera motion and 4-D SLIC superpixels (paper App. A)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}
    BUILDER_CONFIGS = _configs()
    MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS

    def __init__(self, *, use_beam: bool | None = None, skip_bad_files: bool = True, **kwargs):
        """`use_beam`: None = when apache_beam is installed."""
        self.use_beam = datasets.beam_available() if use_beam is None else use_beam
        self.skip_bad_files = skip_bad_files
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        t, (h, w) = self.builder_config.num_frames, IMAGE_HW
        return self.dataset_info_from_configs(
            description=__doc__,
            features=tfds.features.FeaturesDict({
                "frames": tfds.features.Video((t, h, w, 3), encoding_format="jpeg", doc="uint8 RGB"),
                "median_flow": tfds.features.Tensor(shape=(t - 1, 2), dtype=np.float32,
                                                    doc="per-step median (x, y) flow, frame t -> t+1, pixels"),
                "camera_shift": tfds.features.Tensor(shape=(t, 2), dtype=np.float32,
                                                     doc="integrated flow relative to the centre frame, pixels"),
                "superpixels": tfds.features.Tensor(shape=(t, h, w), dtype=np.uint16, encoding="zlib",
                                                    doc="4-D SLIC labels 0..n-1"),
                "slic_segments": tfds.features.Scalar(dtype=np.int32, doc="superpixels per frame asked of SLIC"),
                "slic_xy_scale": tfds.features.Scalar(dtype=np.float32, doc="SLIC's position scale"),
                "video": tfds.features.Text(doc="the video, relative to the background root"),
                "label": tfds.features.Text(doc="its class folder"),
                "start": tfds.features.Scalar(dtype=np.int32, doc="first frame of the window in the video"),
                "crop_index": tfds.features.Scalar(dtype=np.int32),
                "crop_top": tfds.features.Scalar(dtype=np.int32, doc="crop offset in the resized frame, pixels"),
                "crop_left": tfds.features.Scalar(dtype=np.int32),
                "resized_hw": tfds.features.Tensor(shape=(2,), dtype=np.int32, doc="frame size after resizing"),
                "source_hw": tfds.features.Tensor(shape=(2,), dtype=np.int32, doc="the video's frame size"),
                "flow_method": tfds.features.Text(doc="how median_flow was computed"),
            }),
            homepage="https://github.com/cvdfoundation/kinetics-dataset",
            citation="Kay et al., The Kinetics Human Action Video Dataset, arXiv:1705.06950, 2017.",
        )

    def _split_generators(self, dl_manager):
        folder = "sim_backgrounds" if self.builder_config.simulated else "kinetics"
        root = datasets.source_root(dl_manager.manual_dir, folder, _has_videos, MANUAL_DOWNLOAD_INSTRUCTIONS)
        items = [str(entry.path.relative_to(root)) for entry in videos.list_videos(root)]
        return {SPLIT: self._generate_examples(root=root, items=items)}

    def _generate_examples(self, root, items):
        config = self.builder_config
        process = functools.partial(video_examples, root=str(root), config=_Settings.of(config))
        return datasets.generate(items, process, self.use_beam, "backgrounds", (videos.VideoError,),
                                 self.skip_bad_files)


@dataclasses.dataclass(frozen=True)
class _Settings:
    """The config's values a worker needs (plain and picklable, unlike the TFDS config object)."""
    num_frames: int
    stride: int
    crops_per_window: int
    slic_downsample: int
    flow_method: str
    flow_scale: float
    seed: int
    simulated: bool

    @classmethod
    def of(cls, config: BackgroundClipsConfig) -> "_Settings":
        return cls(config.num_frames, config.window_stride, config.crops_per_window, config.slic_downsample,
                   config.flow_method, config.flow_scale, config.seed, config.simulated)


def _has_videos(path: Path) -> bool:
    return any(p.suffix.lower() in videos.VIDEO_EXTENSIONS for p in path.glob("*/*"))


def video_median_flow(path: Path, frames: np.ndarray, method: str, scale: float) -> tuple[np.ndarray, str]:
    """`(median [N-1, 2] in video pixels, how it was made)`: the video's camera-motion cache when it has one that
    covers it, else `camera_motion.median_flow` over its frames."""
    cache = camera_motion.cache_path(path)
    if cache.exists():
        try:
            median = camera_motion.load_median_flow(path)
            with np.load(cache) as cached:
                method = str(cached["method"])
        except (ValueError, KeyError):  # a broken or foreign cache: computed afresh below
            median = None
        if median is not None and len(median) == len(frames) - 1:
            return median, f"cache:{method}"
    return camera_motion.median_flow(frames, method=method, scale=scale), method


def encode_jpeg(frames: np.ndarray, quality: int = JPEG_QUALITY) -> list[bytes]:
    """[T, H, W, 3] uint8 RGB -> T JPEG byte strings."""
    import cv2
    out = []
    for frame in frames:
        ok, jpeg = cv2.imencode(".jpg", np.ascontiguousarray(frame[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise ValueError("OpenCV could not encode a background frame as JPEG")
        out.append(jpeg.tobytes())
    return out


def window_example(video_frames: np.ndarray, median: np.ndarray, start: int, rng: np.random.Generator,
                   num_frames: int, slic_downsample: int) -> dict:
    """One window of a decoded video -> its crop, camera motion and superpixels, with every random draw from `rng`
    in a fixed order: crop (top, left), then the SLIC parameters.

    video_frames [N, H, W, 3] uint8 RGB; median [N-1, 2] the video's per-step median flow in its own pixels.
    """
    crop = videos.crop_params(video_frames.shape[1:3], rng, IMAGE_HW, start=start)
    frames = videos.apply_crop(video_frames[start:start + num_frames], crop)
    # Resizing scales the flow per axis (the resized size is rounded); cropping does not change it.
    zoom = np.array([crop.resized_hw[1] / crop.source_hw[1], crop.resized_hw[0] / crop.source_hw[0]], np.float32)
    median_flow = (median[start:start + num_frames - 1] * zoom).astype(np.float32)
    shift = camera_motion.integrate_relative_to_centre(median_flow)
    segments, xy_scale = occlusion.sample_slic_parameters(rng)
    superpixels = occlusion.slic_4d(frames, shift, segments, xy_scale, downsample=slic_downsample)
    if superpixels.max() > np.iinfo(np.uint16).max:
        raise ValueError(f"slic_4d gave {superpixels.max() + 1} superpixels; the uint16 labels hold 65536")
    return {"frames": frames, "median_flow": median_flow, "camera_shift": shift.astype(np.float32),
            "superpixels": superpixels.astype(np.uint16), "slic_segments": np.int32(segments),
            "slic_xy_scale": np.float32(xy_scale), "crop_top": np.int32(crop.top), "crop_left": np.int32(crop.left),
            "resized_hw": np.array(crop.resized_hw, np.int32), "source_hw": np.array(crop.source_hw, np.int32)}


def window_rng(seed: int, video: str, start: int, crop_index: int) -> np.random.Generator:
    """The generator of one example: a function of (config seed, video path relative to the root, start, crop)."""
    return np.random.default_rng(datasets.stable_seed(seed, video, start, crop_index))


def video_examples(relative_path: str, *, root: str, config: _Settings):
    """Every window (and crop) of one video as `(key, example)`: the video is decoded once."""
    path = Path(root) / relative_path
    datasets.check_provenance(path, path.stem.startswith(SIMULATED_ID_PREFIX), config.simulated, "background_clips")
    video_frames = videos.read_video(path)
    starts = datasets.window_starts(len(video_frames), config.num_frames, config.stride)
    if not starts:
        datasets.count("background_videos_too_short")
        return
    median, flow_method = video_median_flow(path, video_frames, config.flow_method, config.flow_scale)
    for start in starts:
        for crop_index in range(config.crops_per_window):
            rng = window_rng(config.seed, relative_path, start, crop_index)
            example = window_example(video_frames, median, start, rng, config.num_frames, config.slic_downsample)
            example["frames"] = encode_jpeg(example["frames"])
            example.update(video=relative_path, label=path.parent.name, start=np.int32(start),
                           crop_index=np.int32(crop_index), flow_method=flow_method)
            datasets.count("background_windows")
            yield f"{relative_path}:{start:05d}:{crop_index}", example


def source_fields(example: dict) -> dict:
    """One decoded example -> the background fields of `mhr_tf.data.pipeline.SyntheticSource` (TF ops only):
    background uint8 [T, 240, 320, 3], camera_shift float32 [T, 2], superpixels int32 [T, 240, 320]."""
    return {"background": example["frames"], "camera_shift": example["camera_shift"],
            "superpixels": tf.cast(example["superpixels"], tf.int32)}


BUILDER = BackgroundClips
