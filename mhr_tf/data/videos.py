"""Background videos in a Kinetics-style folder: decode, count, write, list, and sample a training clip.

Decoder only (file -> numpy), no TensorFlow. Frames are RGB uint8 `[T, H, W, 3]` everywhere in mhr_tf; OpenCV's
BGR order stays inside this module.

Folder layout, as Kinetics is usually stored: `<root>/<label>/<id>.<ext>`, any container this OpenCV build reads.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np

from mhr_tf.geometry import SURREAL_IMAGE_HW

# Containers `list_videos` picks up (OpenCV's FFmpeg backend reads all of them).
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".ogv", ".flv", ".wmv")
# FourCC per container for writing, each checked to write AND read back with the OpenCV here (5.0, FFmpeg):
# MPEG-4 Part 2 in .mp4 (H.264 encoders are absent from opencv-python wheels); lossless FFV1 in .avi/.mkv.
WRITE_FOURCC = {".mp4": "mp4v", ".avi": "FFV1", ".mkv": "FFV1"}
DEFAULT_FPS = 30.0  # SURREAL and most Kinetics videos


class VideoError(ValueError):
    """A video file that cannot serve the request; the message names the file."""


class UnreadableVideoError(VideoError):
    """OpenCV cannot open or decode the file (missing, not a video, or cut before its index)."""


class TruncatedVideoError(VideoError):
    """The container promises frames that do not decode (a file cut short)."""


class VideoTooShortError(VideoError):
    """The video has fewer frames than asked for."""


@dataclasses.dataclass(frozen=True)
class VideoEntry:
    """One video of a Kinetics-style folder."""
    path: Path
    label: str     # the class folder, e.g. "sim_pan" or "abseiling"
    video_id: str  # the file name without extension


@dataclasses.dataclass(frozen=True)
class ClipCrop:
    """Where a sampled clip came from (paper App. A: random crop to 240x320 after resizing so one side matches).

    Output pixel (x, y) is resized-frame pixel (x + left, y + top), which is source pixel
    ((x + left + 0.5) * source_w / resized_w - 0.5, (y + top + 0.5) * source_h / resized_h - 0.5).
    """
    start: int                     # index of the clip's first frame in the video
    source_hw: tuple[int, int]     # decoded frame size
    resized_hw: tuple[int, int]    # after resizing; one side equals out_hw's, the other is at least as large
    top: int                       # crop offset in the resized frame, pixels
    left: int
    out_hw: tuple[int, int]


def _open(path: Path) -> cv2.VideoCapture:
    if not path.is_file():
        raise UnreadableVideoError(f"{path}: no such video file")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise UnreadableVideoError(f"{path}: OpenCV cannot open it as a video (not a video, or truncated before "
                                   f"its index)")
    return capture


def _header_frame_count(capture: cv2.VideoCapture) -> int:
    return int(capture.get(cv2.CAP_PROP_FRAME_COUNT))


def count_frames(path, exact: bool = False) -> int:
    """Number of frames: the container's count, or (exact=True, or when the container has none) by decoding.

    The container's count is what a truncated file still claims; `read_video` detects the difference.
    """
    path = Path(path)
    capture = _open(path)
    try:
        count = _header_frame_count(capture)
        if exact or count <= 0:
            count = 0
            while capture.grab():
                count += 1
        return count
    finally:
        capture.release()


def read_video(path, start: int = 0, num_frames: int | None = None) -> np.ndarray:
    """Frames `[start, start + num_frames)` (all from `start` when None): uint8 [T, H, W, 3] RGB.

    Raises UnreadableVideoError (cannot open, or nothing decodes), VideoTooShortError (the video has fewer frames
    than asked), TruncatedVideoError (the container counts the frames but they do not decode).
    """
    path = Path(path)
    if start < 0 or (num_frames is not None and num_frames < 1):
        raise ValueError(f"{path}: read_video(start={start}, num_frames={num_frames}) — expected start >= 0 and "
                         f"num_frames >= 1 or None")
    capture = _open(path)
    try:
        header = _header_frame_count(capture)
        decoded = 0
        # Sequential grabbing rather than seeking: FFmpeg seeks land on key frames in some containers.
        while decoded < start and capture.grab():
            decoded += 1
        frames = []
        while num_frames is None or len(frames) < num_frames:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(frame)
        decoded += len(frames)
    finally:
        capture.release()

    wanted = None if num_frames is None else start + num_frames
    if wanted is not None and len(frames) < num_frames:
        if header >= wanted:
            raise TruncatedVideoError(f"{path}: the container counts {header} frames but decoding stopped after "
                                      f"{decoded}; frames [{start}, {wanted}) were asked for (file cut short?)")
        raise VideoTooShortError(f"{path}: has {decoded} frames, frames [{start}, {wanted}) were asked for")
    if not frames:
        if 0 < decoded <= start and header <= start:
            raise VideoTooShortError(f"{path}: has {decoded} frames, frames from {start} on were asked for")
        raise UnreadableVideoError(f"{path}: no frame decodes from frame {start} on (container counts {header})")
    return np.stack(frames)[..., ::-1].copy()  # BGR -> RGB


def write_video(path, frames: np.ndarray, fps: float = DEFAULT_FPS) -> Path:
    """Write uint8 [T, H, W, 3] RGB frames; the codec follows the extension (WRITE_FOURCC). Returns the path."""
    path = Path(path)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise ValueError(f"{path}: frames have shape {frames.shape} dtype {frames.dtype} — expected uint8 "
                         f"[T >= 1, H, W, 3] RGB")
    suffix = path.suffix.lower()
    if suffix not in WRITE_FOURCC:
        raise ValueError(f"{path}: cannot write '{suffix}' — expected one of {sorted(WRITE_FOURCC)}")
    height, width = frames.shape[1:3]
    if height % 2 or width % 2:  # both codecs here silently drop an odd last row/column
        raise ValueError(f"{path}: frame size {height}x{width} — '{WRITE_FOURCC[suffix]}' needs even sizes")
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*WRITE_FOURCC[suffix]), float(fps), (width, height))
    if not writer.isOpened():
        raise VideoError(f"{path}: OpenCV cannot open a '{WRITE_FOURCC[suffix]}' writer for {width}x{height}")
    try:
        for frame in frames:
            writer.write(np.ascontiguousarray(frame[..., ::-1]))
    finally:
        writer.release()
    return path


def list_videos(root) -> list[VideoEntry]:
    """Every `<root>/<label>/<id>.<ext>` with a video extension, sorted by label then id."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such background-video folder (expected <root>/<label>/<id>.mp4)")
    entries = [VideoEntry(path=p, label=p.parent.name, video_id=p.stem)
               for p in sorted(root.glob("*/*")) if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS]
    if not entries:
        raise FileNotFoundError(f"{root}: no videos found as <root>/<label>/<id>.<ext> with ext in "
                                f"{VIDEO_EXTENSIONS}")
    return entries


def crop_params(source_hw: tuple[int, int], rng: np.random.Generator, out_hw: tuple[int, int] = SURREAL_IMAGE_HW,
                start: int = 0) -> ClipCrop:
    """Paper App. A: resize so one side exactly matches `out_hw` and the other covers it, then crop at random."""
    (src_h, src_w), (out_h, out_w) = source_hw, out_hw
    scale = max(out_h / src_h, out_w / src_w)
    resized = (max(out_h, round(src_h * scale)), max(out_w, round(src_w * scale)))
    top = int(rng.integers(0, resized[0] - out_h + 1))
    left = int(rng.integers(0, resized[1] - out_w + 1))
    return ClipCrop(start=start, source_hw=(src_h, src_w), resized_hw=resized, top=top, left=left,
                    out_hw=(out_h, out_w))


def apply_crop(frames: np.ndarray, crop: ClipCrop) -> np.ndarray:
    """Resize [T, H, W, 3] frames to crop.resized_hw and cut the crop: [T, out_h, out_w, 3]."""
    (res_h, res_w), (out_h, out_w) = crop.resized_hw, crop.out_hw
    if (res_h, res_w) != tuple(frames.shape[1:3]):
        shrink = res_h * res_w < frames.shape[1] * frames.shape[2]
        # Area averaging when shrinking avoids aliasing; bilinear when enlarging.
        interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
        frames = np.stack([cv2.resize(f, (res_w, res_h), interpolation=interpolation) for f in frames])
    return np.ascontiguousarray(frames[:, crop.top:crop.top + out_h, crop.left:crop.left + out_w])


def sample_background_clip(path, num_frames: int, rng: np.random.Generator,
                           out_hw: tuple[int, int] = SURREAL_IMAGE_HW) -> tuple[np.ndarray, ClipCrop]:
    """A clip of `num_frames` frames at a random start, resized and randomly cropped to `out_hw` (App. A).

    Returns (frames uint8 [T, out_h, out_w, 3] RGB, ClipCrop). Randomness: start, then top, then left, all from
    `rng`. Raises VideoTooShortError naming the file if it has fewer than `num_frames` frames.
    """
    path = Path(path)
    total = count_frames(path)
    if total < num_frames:
        raise VideoTooShortError(f"{path}: has {total} frames, a clip of {num_frames} was asked for")
    start = int(rng.integers(0, total - num_frames + 1))
    frames = read_video(path, start, num_frames)
    crop = crop_params(frames.shape[1:3], rng, out_hw, start=start)
    return apply_crop(frames, crop), crop
