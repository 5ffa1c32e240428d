"""Background videos as stored windows with their camera motion and SLIC superpixels (paper App. A), computed once.

App. A resizes a Kinetics video "so that one dimension exactly matches the SURREAL resolution", crops it at random
to 240x320, cuts a random 31-frame clip, and runs a 4-D SLIC on it whose positions follow the camera. SLIC costs
~2 s of CPU per clip, so it is computed offline, per *stored window*, on the resized but uncropped frames; the
random start and crop are still drawn per example, in the online graph (`mhr_tf.data.sources.draw_choices`):

    video (N frames) ─► resize (one side matches 240x320) ─► windows of L = 2T - 1 frames every T frames
        ─► per window: median flow (App. A's camera motion, TV-L1), SLIC labels [L, Hr, Wr] (App. A's settings,
           drawn from a seed that depends on the video and the window only)

Any T consecutive frames of the video lie inside one window (the stride is T and a window is 2T - 1 long), so a
uniform window then a uniform start within it reaches every clip of the video. The same windows are what the
file source caches beside each video (`<video>.windows_t<T>.npz`, `preprocess_video`) and what the TFDS builder
`background_clips` stores; both call `window_record`.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
from pathlib import Path

import numpy as np

from mhr_tf.data import camera_motion, occlusion, videos
from mhr_tf.geometry import SURREAL_IMAGE_HW

OUT_HW = SURREAL_IMAGE_HW  # App. A: backgrounds are cropped to SURREAL's 240x320
CACHE_VERSION = 1
# SLIC at the paper's settings on every pixel (1); 2 runs it on every 2nd pixel (`occlusion.slic_4d`).
SLIC_DOWNSAMPLE = 1


def window_length(num_frames: int) -> int:
    """L = 2T - 1: with windows every T frames, every T-frame clip of the video lies inside one window."""
    return 2 * num_frames - 1


def window_starts(num_video_frames: int, num_frames: int) -> list[tuple[int, int]]:
    """`(start, length)` of the stored windows of a video: every T frames, L = 2T - 1 long, the last one moved back
    to end on the video's last frame; a video shorter than L but at least T long is one window. [] below T."""
    if num_video_frames < num_frames:
        return []
    length = min(window_length(num_frames), num_video_frames)
    last = num_video_frames - length
    starts = list(range(0, last + 1, num_frames))
    if starts[-1] != last:
        starts.append(last)
    return [(start, length) for start in starts]


def resized_hw(source_hw: tuple[int, int], out_hw: tuple[int, int] = OUT_HW) -> tuple[int, int]:
    """App. A: the frame size after resizing so one side matches `out_hw` and the other covers it."""
    crop = videos.crop_params(source_hw, np.random.default_rng(0), out_hw)
    return crop.resized_hw


def resize(frames: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """[T, H, W, 3] uint8 -> [T, h, w, 3] uint8 (area averaging when shrinking, bilinear when enlarging)."""
    crop = videos.ClipCrop(start=0, source_hw=tuple(frames.shape[1:3]), resized_hw=tuple(hw), top=0, left=0,
                           out_hw=tuple(hw))
    return videos.apply_crop(frames, crop)


def window_seed(seed: int, video_key: str, start: int) -> list[int]:
    """Entropy of one window's SLIC draw: a function of (seed, `label/id` of the video, window start) only, the same
    on every machine and process (unlike `hash()`)."""
    digest = int.from_bytes(hashlib.sha256(video_key.encode()).digest()[:8], "little")
    return [int(seed), digest, int(start)]


def video_key(path) -> str:
    """`<label>/<id>` of a Kinetics-style video: what identifies it whatever folder holds the dataset."""
    path = Path(path)
    return f"{path.parent.name}/{path.stem}"


@dataclasses.dataclass(frozen=True)
class WindowRecord:
    """One stored window: frames resized (not cropped), and what App. A computes from them."""
    start: int                 # first frame of the window in the video
    frames: np.ndarray         # [L, Hr, Wr, 3] uint8 RGB, resized
    median_flow: np.ndarray    # [L-1, 2] float32, per-step median (x, y) flow in resized pixels
    superpixels: np.ndarray    # [L, Hr, Wr] uint16, 4-D SLIC labels 0..n-1 following the camera
    slic_segments: int         # SLIC's superpixels per frame (App. A: 10-30)
    slic_xy_scale: float       # SLIC's position scale (App. A: 4e-4 - 6e-4)


def window_record(video_frames: np.ndarray, median: np.ndarray, start: int, length: int, rng: np.random.Generator,
                  slic_downsample: int = SLIC_DOWNSAMPLE, out_hw: tuple[int, int] = OUT_HW) -> WindowRecord:
    """The window `[start, start + length)` of a decoded video, resized, with its camera motion and SLIC labels.

    video_frames [N, H, W, 3] uint8 RGB; median [N-1, 2] the video's per-step median flow in its own pixels
    (`camera_motion.median_flow`). SLIC's parameters come from `rng` (`occlusion.sample_slic_parameters`).
    """
    hw = resized_hw(video_frames.shape[1:3], out_hw)
    frames = resize(video_frames[start:start + length], hw)
    # Resizing scales the flow per axis (the resized size is rounded); the crop drawn later does not change it.
    zoom = np.array([hw[1] / video_frames.shape[2], hw[0] / video_frames.shape[1]], np.float32)
    median_flow = (np.asarray(median[start:start + length - 1], np.float32) * zoom).astype(np.float32)
    shift = camera_motion.integrate_relative_to_centre(median_flow)
    segments, xy_scale = occlusion.sample_slic_parameters(rng)
    labels = occlusion.slic_4d(frames, shift, segments, xy_scale, downsample=slic_downsample)
    if labels.max() > np.iinfo(np.uint16).max:
        raise ValueError(f"slic_4d gave {labels.max() + 1} superpixels; the uint16 labels hold 65536")
    return WindowRecord(start, frames, median_flow, labels.astype(np.uint16), segments, xy_scale)


def video_windows(path, num_frames: int, seed: int = 0, slic_downsample: int = SLIC_DOWNSAMPLE,
                  flow_method: str = "tvl1", flow_scale: float = 0.5, write_cache: bool = False):
    """Every stored window of one video (`WindowRecord`s, in order), the video's median flow `[N-1, 2]` in its own
    pixels and its frame size, decoding it once. The median flow comes from the camera-motion cache beside the video
    when it covers the video, else it is computed (`flow_method`, `flow_scale`), and cached there with
    `write_cache`."""
    path = Path(path)
    frames = videos.read_video(path)
    median = video_median_flow(path, frames, flow_method, flow_scale, write_cache)
    key = video_key(path)
    records = [window_record(frames, median, start, length, np.random.default_rng(window_seed(seed, key, start)),
                             slic_downsample) for start, length in window_starts(len(frames), num_frames)]
    return records, median, tuple(frames.shape[1:3])


def video_median_flow(path: Path, frames: np.ndarray, method: str, scale: float, write_cache: bool) -> np.ndarray:
    """`[N-1, 2]` median flow in video pixels: the camera-motion cache beside the video when it covers it, else
    computed (App. A: "computed offline"), and cached with `write_cache`."""
    cache = camera_motion.cache_path(path)
    if cache.exists():
        try:
            median = camera_motion.load_median_flow(path)
        except ValueError:  # a broken or foreign cache: computed afresh below
            median = None
        if median is not None and len(median) == len(frames) - 1:
            return median
    if not write_cache:
        return camera_motion.median_flow(frames, method=method, scale=scale)
    camera_motion.preprocess_video(path, method=method, scale=scale, overwrite=True, reader=lambda _: frames)
    return camera_motion.load_median_flow(path)


# --------------------------------------------------------------------------------------------------------------------
# The file source's cache beside each video: `<video>.windows_t<T>.npz`

def cache_path(video_path, num_frames: int) -> Path:
    video_path = Path(video_path)
    return video_path.with_name(f"{video_path.name}.windows_t{num_frames}.npz")


@dataclasses.dataclass(frozen=True)
class CachedWindows:
    """What the file source needs of one video's cache, without the labels (read per example)."""
    path: Path                   # the cache file
    video: Path
    starts: np.ndarray           # [W] int64
    lengths: np.ndarray          # [W] int64
    resized_hw: tuple[int, int]
    median_flow: np.ndarray      # [N-1, 2] float32, resized pixels


def preprocess_video(path, num_frames: int, seed: int = 0, slic_downsample: int = SLIC_DOWNSAMPLE,
                     flow_method: str = "tvl1", flow_scale: float = 0.5, overwrite: bool = False) -> Path:
    """Cache one video's windows for clips of `num_frames` (and its camera motion) beside it; resumable: a valid
    cache with the same settings is kept. Written atomically. Returns the cache path."""
    target = cache_path(path, num_frames)
    settings = {"seed": int(seed), "slic_downsample": int(slic_downsample)}
    if target.exists() and not overwrite:
        try:
            with np.load(target) as cached:
                if int(cached["version"]) == CACHE_VERSION and all(int(cached[k]) == v for k, v in settings.items()):
                    return target
        except Exception:  # a broken cache from an interrupted run is recomputed
            pass
    records, median, (source_h, source_w) = video_windows(path, num_frames, seed, slic_downsample, flow_method,
                                                          flow_scale, write_cache=True)
    if not records:
        raise videos.VideoTooShortError(f"{path}: fewer than {num_frames} frames, no window of a {num_frames}-frame "
                                        "clip fits")
    hw = records[0].frames.shape[1:3]
    zoom = np.array([hw[1] / source_w, hw[0] / source_h], np.float32)  # as window_record scales it
    arrays = {f"labels_{k}": r.superpixels for k, r in enumerate(records)}
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp.npz")
    np.savez_compressed(tmp, version=np.int64(CACHE_VERSION), num_frames=np.int64(num_frames),
                        starts=np.array([r.start for r in records], np.int64),
                        lengths=np.array([len(r.frames) for r in records], np.int64),
                        resized_hw=np.array(hw, np.int64), median_flow=(median * zoom).astype(np.float32),
                        slic_segments=np.array([r.slic_segments for r in records], np.int64),
                        slic_xy_scale=np.array([r.slic_xy_scale for r in records], np.float64), **settings, **arrays)
    os.replace(tmp, target)
    return target


def load_cache(video_path, num_frames: int) -> CachedWindows:
    """The layout of one video's window cache. Names the script to run when it is missing or stale."""
    target = cache_path(video_path, num_frames)
    if not target.exists():
        raise FileNotFoundError(f"{target}: no background-window cache for {num_frames}-frame clips; run "
                                f"`python scripts/preprocess_backgrounds.py --root <background root> "
                                f"--num_frames {num_frames}` first")
    try:
        with np.load(target) as cached:
            if int(cached["version"]) != CACHE_VERSION:
                raise ValueError(f"version {int(cached['version'])}, expected {CACHE_VERSION}")
            return CachedWindows(target, Path(video_path), np.asarray(cached["starts"]),
                                 np.asarray(cached["lengths"]), tuple(int(v) for v in cached["resized_hw"]),
                                 np.asarray(cached["median_flow"], np.float32))
    except Exception as error:  # zip, key or version errors from a truncated or foreign file
        raise ValueError(f"{target}: unreadable background-window cache ({type(error).__name__}: {error}); rerun "
                         f"scripts/preprocess_backgrounds.py with --overwrite") from None


def read_window(cache: CachedWindows, window: int, offset: int, num_frames: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clip `[offset, offset + T)` of stored window `window`: frames `[T, Hr, Wr, 3]` uint8 (decoded and resized as
    `window_record` resizes), superpixels `[T, Hr, Wr]` int32, median flow `[T-1, 2]` float32 (resized pixels)."""
    first = int(cache.starts[window]) + int(offset)
    frames = resize(videos.read_video(cache.video, first, num_frames), cache.resized_hw)
    with np.load(cache.path) as cached:
        labels = cached[f"labels_{window}"][offset:offset + num_frames]
    return frames, labels.astype(np.int32), cache.median_flow[first:first + num_frames - 1]


def _preprocess_job(job) -> tuple[str, str | None]:
    path, kwargs = job
    try:
        preprocess_video(path, **kwargs)
        return path, None
    except Exception as error:  # reported at the end; one broken video does not stop the rest
        return path, f"{type(error).__name__}: {error}"


def preprocess_folder(root, num_frames: int, workers: int = 1, progress: bool = True,
                      **settings) -> list[tuple[str, str]]:
    """`preprocess_video` for every video of a Kinetics-style folder, in `workers` processes; resumable. Returns the
    `(video, error)` of the videos that failed (they are skipped, not fatal)."""
    import multiprocessing

    from tqdm import tqdm
    jobs = [(str(entry.path), dict(num_frames=num_frames, **settings)) for entry in videos.list_videos(root)]
    bar = functools.partial(tqdm, total=len(jobs), unit="video", desc=f"background windows (T={num_frames})",
                            disable=not progress)
    if workers <= 1:
        return [(path, error) for path, error in bar(map(_preprocess_job, jobs)) if error]
    # fork shares the parent's modules (no second TensorFlow import); spawn where fork does not exist.
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    with multiprocessing.get_context(method).Pool(min(workers, len(jobs))) as pool:
        return [(path, error) for path, error in bar(pool.imap_unordered(_preprocess_job, jobs)) if error]
