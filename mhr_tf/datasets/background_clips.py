"""`background_clips`: Kinetics-style background videos as the stored windows of `mhr_tf.data.background_windows`.

One example = one window of L = 2T - 1 frames of one video, resized so one side matches 240x320 (App. A) but not
cropped, with its camera motion (per-step median flow, App. A's TV-L1) and its 4-D SLIC labels (App. A's settings,
`slic_downsample` 1 = the paper's). The online pipeline draws a T-frame clip inside the window and a 240x320 crop
per example (`mhr_tf.data.sources.draw_choices`), as the file source does from the same windows cached beside each
video: both call `background_windows.window_record`, so a window here equals the file source's window.

Encodings: `frames` one image per frame, JPEG q95 by default (~30 KB/frame, ~1.2 ms to decode; against the decoded
video PSNR 36-43 dB on the simulator's backgrounds, on top of the video's own compression) or PNG
(`frames_encoding="png"`, lossless, ~140 KB/frame); `superpixels` one 16-bit PNG per frame (lossless, ~1 KB).
"""
from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from mhr_tf import datasets
from mhr_tf.data import background_windows, provenance, videos

SPLIT = "train"  # Kinetics' class folders hold no split the paper uses: backgrounds are one training pool
FRAME_ENCODINGS = ("jpeg", "png")

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
    """num_frames: T, the clip length the windows serve (windows are 2T - 1 long, every T frames); frames_encoding:
    "jpeg" or "png"; slic_downsample: `occlusion.slic_4d`'s (1 = the paper's setting); flow_method / flow_scale: the
    median flow when a video has no camera-motion cache (`camera_motion.median_flow`); seed: of every SLIC draw;
    simulated: build `<manual_dir>/sim_backgrounds` instead of `<manual_dir>/kinetics`."""
    num_frames: int = datasets.DEFAULT_NUM_FRAMES
    frames_encoding: str = "jpeg"
    slic_downsample: int = background_windows.SLIC_DOWNSAMPLE
    flow_method: str = "tvl1"
    flow_scale: float = 0.5
    seed: int = 0
    simulated: bool = False


def _configs() -> list[BackgroundClipsConfig]:
    configs = []
    for simulated in (False, True):
        for t in datasets.WINDOW_LENGTHS:
            prefix = datasets.SIM_PREFIX if simulated else ""
            what = "the simulator's background videos" if simulated else "Kinetics-style videos"
            configs.append(BackgroundClipsConfig(
                name=f"{prefix}t{t}", num_frames=t, simulated=simulated,
                description=f"{what}, windows for {t}-frame clips, paper-setting SLIC"))
    return configs


class BackgroundClips(tfds.core.GeneratorBasedBuilder):
    """Background video windows, resized, with camera motion and 4-D SLIC superpixels (paper App. A)."""

    VERSION = tfds.core.Version("2.0.0")
    RELEASE_NOTES = {"1.0.0": "First release: one 240x320 crop per window.",
                     "2.0.0": "Uncropped windows of 2T - 1 frames: the crop and start are drawn per example."}
    BUILDER_CONFIGS = _configs()
    MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS

    def __init__(self, *, use_beam: bool | None = None, skip_bad_files: bool = True, **kwargs):
        """`use_beam`: None = when apache_beam is installed."""
        self.use_beam = datasets.beam_available() if use_beam is None else use_beam
        self.skip_bad_files = skip_bad_files
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        config = self.builder_config
        if config.frames_encoding not in FRAME_ENCODINGS:
            raise ValueError(f"background_clips: frames_encoding {config.frames_encoding!r}, expected one of "
                             f"{FRAME_ENCODINGS}")
        return self.dataset_info_from_configs(
            description=__doc__,
            features=tfds.features.FeaturesDict({
                "frames": tfds.features.Video((None, None, None, 3), encoding_format=config.frames_encoding,
                                              doc="uint8 RGB, resized, not cropped"),
                "superpixels": tfds.features.Sequence(tfds.features.Image(
                    shape=(None, None, 1), dtype=np.uint16, encoding_format="png"), doc="4-D SLIC labels 0..n-1"),
                "median_flow": tfds.features.Tensor(shape=(None, 2), dtype=np.float32,
                                                    doc="per-step median (x, y) flow, frame t -> t+1, resized px"),
                "resized_hw": tfds.features.Tensor(shape=(2,), dtype=np.int32, doc="frame size after resizing"),
                "slic_segments": tfds.features.Scalar(dtype=np.int32, doc="superpixels per frame asked of SLIC"),
                "slic_xy_scale": tfds.features.Scalar(dtype=np.float32, doc="SLIC's position scale"),
                "video": tfds.features.Text(doc="<label>/<id> of the video"),
                "start": tfds.features.Scalar(dtype=np.int32, doc="first frame of the window in the video"),
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
        process = functools.partial(video_examples, root=str(root), config=_Settings.of(self.builder_config))
        return datasets.generate(items, process, self.use_beam, "backgrounds", (videos.VideoError,),
                                 self.skip_bad_files)


@dataclasses.dataclass(frozen=True)
class _Settings:
    """The config's values a worker needs (plain and picklable, unlike the TFDS config object)."""
    num_frames: int
    slic_downsample: int
    flow_method: str
    flow_scale: float
    seed: int
    simulated: bool

    @classmethod
    def of(cls, config: BackgroundClipsConfig) -> "_Settings":
        return cls(config.num_frames, config.slic_downsample, config.flow_method, config.flow_scale, config.seed,
                   config.simulated)


def _has_videos(path: Path) -> bool:
    return any(p.suffix.lower() in videos.VIDEO_EXTENSIONS for p in path.glob("*/*"))


def video_examples(relative_path: str, *, root: str, config: _Settings):
    """Every window of one video as `(key, example)`: the video is decoded once."""
    path = Path(root) / relative_path
    datasets.check_provenance(path, provenance.is_simulated_background_id(path.stem), config.simulated,
                              "background_clips")
    records, _, _ = background_windows.video_windows(path, config.num_frames, config.seed, config.slic_downsample,
                                                     config.flow_method, config.flow_scale)
    if not records:
        datasets.count("background_videos_too_short")
        return
    key = background_windows.video_key(path)
    for record in records:
        datasets.count("background_windows")
        yield f"{key}:{record.start:05d}", {
            "frames": record.frames, "superpixels": record.superpixels[..., None],
            "median_flow": record.median_flow, "resized_hw": np.array(record.frames.shape[1:3], np.int32),
            "slic_segments": np.int32(record.slic_segments), "slic_xy_scale": np.float32(record.slic_xy_scale),
            "video": key, "start": np.int32(record.start)}


BUILDER = BackgroundClips
