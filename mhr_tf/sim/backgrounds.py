"""Moving background videos: the simulator's stand-in for Kinetics (paper §3.1, App. A).

Each video looks at a photograph from `skimage.data` (shipped with scikit-image, no download) or a procedural
texture through a camera that pans, zooms or shakes along a smooth path, with independently moving textured
shapes in front, so that camera-motion estimation (median flow) and SLIC occluders have real work to do.
Videos are larger than SURREAL's 320x240 (e.g. 340x256, 426x240) so the decoder's crop/resize has work too.

`write_background_set` writes a Kinetics-style folder `<root>/sim_<kind>/<id>.mp4`, every id starting with
"simulated_", and beside each video a `<id>.json` with the ground-truth camera path and object tracks.

Camera model (all in pixels): frame t's pixel p = (x, y) sees the world point X = offset[t] + scale[t] * p, where
world units are frame-0 pixels (offset[0] = 0, scale[0] = 1). Panning right makes offset.x grow and the content
slide left; zooming in makes scale shrink.
"""
from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter1d

from mhr_tf.data import provenance
from mhr_tf.data.videos import DEFAULT_FPS, write_video

# Frame sizes (H, W) of the simulated videos: Kinetics' common 340x256 and 426x240, and a 4:3 one.
BACKGROUND_HW_CHOICES = ((256, 340), (240, 426), (288, 384))
CAMERA_KINDS = ("pan", "zoom", "shake", "pan_zoom", "static")
LABEL_PREFIX = provenance.BACKGROUND_SIMULATED_LABEL_PREFIX  # folder labels say the videos are simulated: sim_pan, ...
ID_PREFIX = provenance.BACKGROUND_SIMULATED_ID_PREFIX  # and so do the ids: simulated_<seed>_<index>
# Colour photographs and grey textures bundled inside scikit-image (its legacy data, no download).
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "motorcycle")
GREY_TEXTURES = ("brick", "grass", "gravel", "camera", "coins", "moon", "page")
PROCEDURAL_TEXTURES = ("noise", "tiles", "gratings")
# Pan speeds (px/frame), zoom rates (log-scale per frame), shake amplitude (px): chosen so that a 31-frame clip
# moves by a few to ~100 px, as hand-held and panning Kinetics clips do.
PAN_SPEED_PX = (0.5, 4.0)
ZOOM_RATE = (0.003, 0.012)
SHAKE_AMPLITUDE_PX = (1.0, 4.0)
SHAKE_SMOOTHING_FRAMES = 1.5
OBJECTS_PER_VIDEO = (1, 4)
# Magnify small photos at most this much (source px per frame px >= this) before letting the borders reflect.
_MIN_SOURCE_SCALE = 0.4


@dataclasses.dataclass(frozen=True)
class CameraPath:
    """Frame t's pixel p sees world point offset[t] + scale[t] * p (world units: frame-0 pixels)."""
    offset_px: np.ndarray       # [T, 2] float64, (x, y)
    scale: np.ndarray           # [T] float64, world px per frame px; 1 at frame 0, < 1 once zoomed in
    frame_hw: tuple[int, int]   # the video's frame size

    def image_shift_px(self, at_xy=None) -> np.ndarray:
        """[T, 2] displacement of the background content at frame point `at_xy` from frame t-1 to t; row 0 is 0.

        This is the per-frame camera translation that median optical flow measures (App. A). `at_xy` defaults to
        the frame centre; under a pure pan the shift is the same everywhere, -(offset[t] - offset[t-1]).
        """
        height, width = self.frame_hw
        at = np.array([(width - 1) / 2, (height - 1) / 2]) if at_xy is None else np.asarray(at_xy, np.float64)
        world = self.offset_px[:-1] + self.scale[:-1, None] * at
        moved = (world - self.offset_px[1:]) / self.scale[1:, None]
        return np.concatenate([np.zeros((1, 2)), moved - at])

    def frame_to_frame(self) -> np.ndarray:
        """[T-1, 2, 3] affine maps taking a pixel of frame t to the pixel of frame t+1 showing the same content."""
        ratio = self.scale[:-1] / self.scale[1:]
        shift = (self.offset_px[:-1] - self.offset_px[1:]) / self.scale[1:, None]
        out = np.zeros((len(ratio), 2, 3))
        out[:, 0, 0] = out[:, 1, 1] = ratio
        out[:, :, 2] = shift
        return out


@dataclasses.dataclass(frozen=True)
class ObjectTracks:
    """Independently moving shapes in front of the background."""
    centers_px: np.ndarray  # [T, K, 2] float64, frame pixels (x, y)
    radii_px: np.ndarray    # [T, K] float64, mean radius in frame pixels
    anchored: np.ndarray    # [K] bool: True if the object drifts in the world (moves with the camera's scene)


@dataclasses.dataclass(frozen=True)
class BackgroundVideo:
    frames: np.ndarray      # [T, H, W, 3] uint8 RGB
    camera: CameraPath
    objects: ObjectTracks
    kind: str               # one of CAMERA_KINDS
    source: str             # the photograph or texture seen


@dataclasses.dataclass(frozen=True)
class BackgroundRecord:
    """One written video: where it is and what motion it contains."""
    path: Path
    json_path: Path
    label: str
    video_id: str
    camera: CameraPath


# ---- Sources -------------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _skimage_image(name: str) -> np.ndarray:
    import skimage.data
    image = skimage.data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(skimage.data, name)()
    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = (image * 255).astype(np.uint8) if image.dtype == bool else image.astype(np.uint8)
    image.setflags(write=False)
    return image


@functools.lru_cache(maxsize=None)
def available_sources() -> tuple[str, ...]:
    """The photographs and textures that load here without a download, then the procedural ones."""
    ok = []
    for name in PHOTOS + GREY_TEXTURES:
        try:
            _skimage_image(name)
            ok.append(name)
        except Exception:  # a scikit-image without this bundled file would try to download it: skip it
            continue
    return tuple(ok) + PROCEDURAL_TEXTURES


def _value_noise(hw: tuple[int, int], rng: np.random.Generator, octaves: int = 6) -> np.ndarray:
    """[H, W, 3] float in 0..1: colour noise with detail at every scale (octaves of upsampled random grids)."""
    height, width = hw
    out = np.zeros((height, width, 3))
    for octave in range(octaves):
        cells = 2 ** (octave + 2)
        grid = rng.uniform(size=(cells, max(2, cells * width // height), 3))
        out += cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC) * 0.75 ** octave
    out -= out.min()
    return out / max(out.max(), 1e-9)


def _procedural(name: str, hw: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    height, width = hw
    base = _value_noise(hw, rng)
    if name == "tiles":  # bricks or tiles with mortar lines and per-tile colour
        tile_h, tile_w = rng.integers(12, 40), rng.integers(20, 70)
        v, u = np.mgrid[0:height, 0:width]
        row = v // tile_h
        shifted = u + (row % 2) * (tile_w // 2)
        tile_colour = rng.uniform(0.2, 0.9, size=(height // tile_h + 2, width // tile_w + 3, 3))
        image = tile_colour[row, shifted // tile_w] * (0.7 + 0.3 * base)
        mortar = (v % tile_h < 2) | (shifted % tile_w < 2)
        image[mortar] = rng.uniform(0.1, 0.9)
    elif name == "gratings":  # a few oriented sinusoids over noise
        v, u = np.mgrid[0:height, 0:width].astype(np.float64)
        image = 0.5 * base
        for _ in range(3):
            angle, period = rng.uniform(0, np.pi), rng.uniform(8, 60)
            wave = np.sin((u * np.cos(angle) + v * np.sin(angle)) * 2 * np.pi / period + rng.uniform(0, 6.3))
            image += 0.18 * wave[..., None] * rng.uniform(0.2, 1.0, size=3)
    else:
        image = base
    return (np.clip(image, 0, 1) * 255).astype(np.uint8)


def _source_image(name: str, min_hw: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """The source as uint8 RGB; procedural textures are made at least `min_hw` large."""
    if name in PROCEDURAL_TEXTURES:
        return _procedural(name, min_hw, rng)
    image = _skimage_image(name)
    if image.ndim == 2:  # tint a grey texture between two random colours
        grey = image.astype(np.float64)[..., None] / 255.0
        dark, light = rng.uniform(0.0, 0.5, 3), rng.uniform(0.5, 1.0, 3)
        image = ((dark + grey * (light - dark)) * 255).astype(np.uint8)
    image = image[..., :3]
    return np.ascontiguousarray(image[:, ::-1] if rng.uniform() < 0.5 else image)


# ---- Camera paths ----------------------------------------------------------------------------------------------

def random_camera_path(kind: str, num_frames: int, hw: tuple[int, int], rng: np.random.Generator) -> CameraPath:
    """A smooth camera path of the given kind ("pan", "zoom", "shake", "pan_zoom", "static")."""
    if kind not in CAMERA_KINDS:
        raise ValueError(f"random_camera_path: kind {kind!r}, expected one of {CAMERA_KINDS}")
    height, width = hw
    t = np.arange(num_frames, dtype=np.float64)
    offset = np.zeros((num_frames, 2))
    log_scale = np.zeros(num_frames)
    if kind in ("pan", "pan_zoom"):
        # Mostly horizontal pans, as with a tripod or a person turning; sometimes any direction.
        angle = rng.normal(0.0, 0.25) + (np.pi if rng.uniform() < 0.5 else 0.0)
        if rng.uniform() < 0.3:
            angle = rng.uniform(0, 2 * np.pi)
        speed = rng.uniform(*PAN_SPEED_PX) * (1 + 0.3 * np.sin(2 * np.pi * t / max(num_frames, 8)
                                                              + rng.uniform(0, 2 * np.pi)))
        step = speed[:, None] * np.array([np.cos(angle), np.sin(angle)])
        offset = np.concatenate([np.zeros((1, 2)), np.cumsum(step[:-1], axis=0)])
    if kind in ("zoom", "pan_zoom"):
        log_scale = -rng.uniform(*ZOOM_RATE) * (1 if rng.uniform() < 0.5 else -1) * t
    if kind == "shake":
        noise = gaussian_filter1d(rng.normal(size=(num_frames, 2)), SHAKE_SMOOTHING_FRAMES, axis=0, mode="nearest")
        noise -= noise[0]
        offset = noise * rng.uniform(*SHAKE_AMPLITUDE_PX) / max(np.abs(noise).max(), 1e-9)
    scale = np.exp(log_scale)
    if kind in ("zoom", "pan_zoom"):
        # Zoom about a fixed frame point near the centre: it keeps seeing the same world point (plus the pan).
        fixed = np.array([width, height]) * (0.5 + rng.uniform(-0.2, 0.2, 2))
        offset = offset + fixed * (1.0 - scale[:, None])
    return CameraPath(offset_px=offset, scale=scale, frame_hw=(height, width))


# ---- Moving objects --------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class _Shape:
    radius: float            # frame-0 pixels
    harmonics: np.ndarray    # [M] relative amplitudes of cos(k * angle), k = 2..M+1 (0 for an ellipse-ish blob)
    phases: np.ndarray       # [M]
    phase_rates: np.ndarray  # [M] radians/frame: the outline wobbles (internal motion)
    squash: float            # aspect ratio of the base ellipse
    angle0: float
    spin: float              # radians/frame
    texture: np.ndarray      # [S, S, 3] uint8, S covers the shape
    start: np.ndarray        # [2] frame-0 pixels (anchored: world px)
    velocity: np.ndarray     # [2] px/frame
    sway: np.ndarray         # [2] px amplitude of a sinusoidal sway
    sway_rate: float
    sway_phase: float
    anchored: bool


def _random_shape(hw: tuple[int, int], num_frames: int, rng: np.random.Generator) -> _Shape:
    height, width = hw
    radius = rng.uniform(0.06, 0.18) * min(height, width)
    harmonics = rng.uniform(0, 0.25, size=4) * (rng.uniform() < 0.7)
    size = int(np.ceil(radius * 2 * 1.6)) + 4
    source = rng.choice(available_sources())
    texture = _source_image(source, (size, size), rng)
    top = rng.integers(0, max(1, texture.shape[0] - size))
    left = rng.integers(0, max(1, texture.shape[1] - size))
    texture = np.ascontiguousarray(texture[top:top + size, left:left + size])
    if texture.shape[:2] != (size, size):
        texture = cv2.resize(texture, (size, size))
    if rng.uniform() < 0.3:  # some objects are flat-coloured, like a passing car or a shirt
        texture = np.clip(rng.uniform(0, 255, 3) + rng.normal(0, 8, texture.shape), 0, 255).astype(np.uint8)
    # Cross the frame (or part of it) over the clip.
    start = np.array([rng.uniform(0, width), rng.uniform(0, height)])
    velocity = rng.normal(0, 1.5, 2) + (np.array([width, height]) / 2 - start) / max(num_frames, 1) * rng.uniform(0, 1)
    return _Shape(radius=radius, harmonics=harmonics, phases=rng.uniform(0, 2 * np.pi, 4),
                  phase_rates=rng.normal(0, 0.08, 4), squash=rng.uniform(0.5, 1.0), angle0=rng.uniform(0, 2 * np.pi),
                  spin=rng.normal(0, 0.03), texture=texture, start=start, velocity=velocity,
                  sway=rng.uniform(0, 6, 2), sway_rate=rng.uniform(0.05, 0.3), sway_phase=rng.uniform(0, 2 * np.pi),
                  anchored=bool(rng.uniform() < 0.5))


def _shape_pose(shape: _Shape, t: int, camera: CameraPath) -> tuple[np.ndarray, float]:
    """Frame-t centre (frame px) and size factor (frame px per object px)."""
    position = shape.start + shape.velocity * t + shape.sway * np.sin(shape.sway_rate * t + shape.sway_phase)
    if not shape.anchored:
        return position, 1.0
    return (position - camera.offset_px[t]) / camera.scale[t], 1.0 / camera.scale[t]


def _draw_shape(frame: np.ndarray, shape: _Shape, t: int, centre: np.ndarray, size: float) -> None:
    """Composite the shape onto `frame` in place, with a one-pixel anti-aliased outline."""
    height, width = frame.shape[:2]
    reach = shape.radius * size * (1 + shape.harmonics.sum()) + 2
    x0, x1 = int(max(0, np.floor(centre[0] - reach))), int(min(width, np.ceil(centre[0] + reach) + 1))
    y0, y1 = int(max(0, np.floor(centre[1] - reach))), int(min(height, np.ceil(centre[1] + reach) + 1))
    if x0 >= x1 or y0 >= y1:
        return
    v, u = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    angle = shape.angle0 + shape.spin * t
    c, s = np.cos(angle), np.sin(angle)
    # Object-local coordinates in object pixels (rotating with the object).
    lx = (c * (u - centre[0]) + s * (v - centre[1])) / size
    ly = (-s * (u - centre[0]) + c * (v - centre[1])) / size
    r = np.hypot(lx, ly / shape.squash)
    theta = np.arctan2(ly / shape.squash, lx)
    k = np.arange(2, 2 + len(shape.harmonics))
    wobble = (shape.harmonics[:, None, None] * np.cos(k[:, None, None] * theta
              + (shape.phases + shape.phase_rates * t)[:, None, None])).sum(axis=0)
    outline = shape.radius * (1 + wobble)
    alpha = np.clip(0.5 + (outline - r) * size * shape.squash, 0.0, 1.0)[..., None]
    half = shape.texture.shape[0] / 2.0
    texture = cv2.remap(shape.texture, (lx + half).astype(np.float32), (ly + half).astype(np.float32),
                        cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    region = frame[y0:y1, x0:x1].astype(np.float64)
    frame[y0:y1, x0:x1] = np.rint(region * (1 - alpha) + texture * alpha).astype(np.uint8)


# ---- Videos ----------------------------------------------------------------------------------------------------

def make_background_video(num_frames: int, rng: np.random.Generator, hw: tuple[int, int] | None = None,
                          kind: str | None = None, source: str | None = None,
                          num_objects: int | None = None) -> BackgroundVideo:
    """One moving background video in memory. Unset choices are drawn from `rng` (deterministic given it)."""
    if num_frames < 1:
        raise ValueError(f"make_background_video: num_frames={num_frames}, expected >= 1")
    hw = tuple(BACKGROUND_HW_CHOICES[rng.integers(len(BACKGROUND_HW_CHOICES))]) if hw is None else tuple(hw)
    kind = CAMERA_KINDS[rng.integers(len(CAMERA_KINDS))] if kind is None else kind
    sources = available_sources()
    source = sources[rng.integers(len(sources))] if source is None else source
    if source not in sources:
        raise ValueError(f"make_background_video: source {source!r}, expected one of {sources}")
    num_objects = int(rng.integers(OBJECTS_PER_VIDEO[0], OBJECTS_PER_VIDEO[1] + 1)) if num_objects is None \
        else num_objects
    height, width = hw
    camera = random_camera_path(kind, num_frames, hw, rng)

    # World region seen over the whole clip, in frame-0 pixels.
    corners = np.array([[0, 0], [width - 1, 0], [0, height - 1], [width - 1, height - 1]], dtype=np.float64)
    seen = camera.offset_px[:, None] + camera.scale[:, None, None] * corners  # [T, 4, 2]
    low, high = seen.reshape(-1, 2).min(0), seen.reshape(-1, 2).max(0)
    image = _source_image(source, (int(np.ceil(high[1] - low[1])) + 2, int(np.ceil(high[0] - low[0])) + 2), rng)
    # Source px per world px: as large as fits (at most 1: never shrink the photo, which would alias).
    fit = min((image.shape[1] - 1) / max(high[0] - low[0], 1e-9), (image.shape[0] - 1) / max(high[1] - low[1], 1e-9))
    source_scale = max(min(1.0, fit * rng.uniform(0.85, 1.0)), _MIN_SOURCE_SCALE)
    slack = np.array([image.shape[1] - 1, image.shape[0] - 1]) - source_scale * (high - low)
    origin = -source_scale * low + rng.uniform(0, 1, 2) * np.maximum(slack, 0)

    shapes = [_random_shape(hw, num_frames, rng) for _ in range(num_objects)]
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    centers = np.zeros((num_frames, num_objects, 2))
    radii = np.zeros((num_frames, num_objects))
    for t in range(num_frames):
        m = source_scale * camera.scale[t]
        warp = np.array([[m, 0, origin[0] + source_scale * camera.offset_px[t, 0]],
                         [0, m, origin[1] + source_scale * camera.offset_px[t, 1]]])
        frames[t] = cv2.warpAffine(image, warp, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                   borderMode=cv2.BORDER_REFLECT_101)
        for k, shape in enumerate(shapes):
            centre, size = _shape_pose(shape, t, camera)
            _draw_shape(frames[t], shape, t, centre, size)
            centers[t, k], radii[t, k] = centre, shape.radius * size
    objects = ObjectTracks(centers_px=centers, radii_px=radii,
                           anchored=np.array([s.anchored for s in shapes], dtype=bool))
    return BackgroundVideo(frames=frames, camera=camera, objects=objects, kind=kind, source=source)


def _sidecar(video: BackgroundVideo, seed: int, index: int, fps: float) -> dict:
    return {
        "simulated": True, "generator": "mhr_tf.sim.backgrounds", "seed": seed, "index": index,
        "kind": video.kind, "source": video.source, "fps": fps, "num_frames": int(len(video.frames)),
        "height": int(video.frames.shape[1]), "width": int(video.frames.shape[2]),
        "camera_model": "frame t pixel p sees world point offset_px[t] + scale[t] * p (world: frame-0 pixels)",
        "camera": {"offset_px": video.camera.offset_px.tolist(), "scale": video.camera.scale.tolist(),
                   "image_shift_px": video.camera.image_shift_px().tolist()},
        "objects": {"centers_px": video.objects.centers_px.tolist(), "radii_px": video.objects.radii_px.tolist(),
                    "anchored": video.objects.anchored.tolist()},
    }


def read_camera_motion(json_path) -> CameraPath:
    """The ground-truth camera path from a video's sidecar JSON (keys camera.offset_px, camera.scale, height,
    width)."""
    json_path = Path(json_path)
    try:
        sidecar = json.loads(json_path.read_text())
        camera = sidecar["camera"]
        return CameraPath(offset_px=np.asarray(camera["offset_px"], dtype=np.float64).reshape(-1, 2),
                          scale=np.asarray(camera["scale"], dtype=np.float64).reshape(-1),
                          frame_hw=(int(sidecar["height"]), int(sidecar["width"])))
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{json_path}: expected keys camera.offset_px [T, 2], camera.scale [T], height, width "
                         f"({type(error).__name__}: {error})") from None


def write_background_video(out_root, index: int, num_frames: int, seed: int,
                           hw_choices=BACKGROUND_HW_CHOICES, kinds=CAMERA_KINDS, fps: float = DEFAULT_FPS,
                           ext: str = ".mp4") -> BackgroundRecord:
    """Video number `index` of the set for `seed`: independent of the others, so workers can split a set."""
    rng = np.random.default_rng([seed, index])
    kind = kinds[index % len(kinds)]  # cycling keeps every label populated
    hw = tuple(hw_choices[rng.integers(len(hw_choices))])
    video = make_background_video(num_frames, rng, hw=hw, kind=kind)
    label, video_id = f"{LABEL_PREFIX}{kind}", f"{ID_PREFIX}{seed}_{index:06d}"
    path = write_video(Path(out_root) / label / f"{video_id}{ext}", video.frames, fps)
    json_path = path.with_suffix(".json")
    json_path.write_text(json.dumps(_sidecar(video, seed, index, fps)))
    return BackgroundRecord(path=path, json_path=json_path, label=label, video_id=video_id, camera=video.camera)


def write_background_set(out_root, num_videos: int, num_frames: int, seed: int,
                         hw_choices=BACKGROUND_HW_CHOICES, kinds=CAMERA_KINDS, fps: float = DEFAULT_FPS,
                         ext: str = ".mp4") -> list[BackgroundRecord]:
    """Write `num_videos` videos as `<out_root>/sim_<kind>/simulated_<seed>_<index>.mp4` (+ `.json`)."""
    return [write_background_video(out_root, i, num_frames, seed, hw_choices, kinds, fps, ext)
            for i in range(num_videos)]
