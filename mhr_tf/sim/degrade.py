"""What comes between a rendered scene and the stored frame of the 3DPW-format evaluation set: objects passing in
front of the people, and a phone camera's degradations (colour cast, motion and defocus blur, sensor noise)."""
from __future__ import annotations

import cv2
import numpy as np

from mhr_tf import geometry

# What strength 1 of each degradation knob (`Domain.colour_cast`, `.blur`, `.noise`) draws from.
GAIN = (0.85, 1.15)  # white balance: a gain per channel
GAMMA = (0.8, 1.25)  # tone curve
BLUR_SIGMA_PX = (0.3, 1.2)  # defocus
EXPOSURE = 0.5  # share of the frame interval the shutter is open: motion blur is half the inter-frame motion
MAX_STREAK_PX = 15.0
NOISE_STD = (2.0, 7.0)  # sensor noise, 0..255 units


def passing_occluders(rng: np.random.Generator, people_uv: np.ndarray, image_hw: tuple[int, int],
                      probability: float) -> list[dict]:
    """Objects passing in front of the people, with `probability` (none otherwise): each a shape, colours, and a
    path crossing the people's position `people_uv [N, 2]` (pixels) at a random frame."""
    height, width = image_hw
    num_frames = len(people_uv)
    out = []
    if rng.uniform() >= probability:
        return out
    for _ in range(int(rng.integers(1, 3))):
        crossing = int(rng.integers(0, num_frames))
        speed = rng.uniform(width / 40.0, width / 12.0) * rng.choice([-1.0, 1.0])  # px per frame
        round_shape = bool(rng.uniform() < 0.4)  # a ball or a bag rather than a pole or a passer-by
        size = (np.full(2, rng.uniform(0.15, 0.35) * width) if round_shape
                else np.array([rng.uniform(0.12, 0.35) * width, rng.uniform(0.3, 1.2) * height]))
        start = people_uv[crossing] + np.array([0.0, rng.normal(0.0, 0.15 * height)])
        out.append({"crossing": crossing, "speed": speed, "size": size, "start": start,
                    "round": round_shape, "colour": rng.uniform(20, 235, 3),
                    "stripes": rng.uniform(0, 255, 3) if rng.uniform() < 0.5 else None,
                    "period": rng.uniform(6, 20)})
    return out


def draw_occluders(image: np.ndarray, t: int, occluders: list[dict]) -> np.ndarray:
    """Draws the objects of frame `t` into `image` (in place); returns their mask [H, W] bool."""
    height, width = image.shape[:2]
    mask = np.zeros((height, width), np.uint8)
    for item in occluders:
        centre = item["start"] + np.array([item["speed"] * (t - item["crossing"]), 0.0])
        half = item["size"] / 2.0
        one = np.zeros_like(mask)
        if item["round"]:
            cv2.circle(one, (int(round(centre[0])), int(round(centre[1]))), int(round(half[0])), 1, -1)
        else:
            corners = np.round([centre - half, centre + half]).astype(int)
            cv2.rectangle(one, tuple(int(c) for c in corners[0]), tuple(int(c) for c in corners[1]), 1, -1)
        covered = one.astype(bool)
        if not covered.any():
            continue
        v, u = np.nonzero(covered)
        shade = 0.75 + 0.25 * (u - u.min()) / max(np.ptp(u), 1)  # lit from one side
        colour = np.tile(item["colour"], (len(u), 1))
        if item["stripes"] is not None:
            band = ((v + u * 0.3) // item["period"]) % 2 == 1
            colour[band] = item["stripes"]
        image[v, u] = np.clip(colour * shade[:, None], 0, 255).astype(np.uint8)
        mask |= one
    return mask.astype(bool)


def degrade(images: np.ndarray, cam_poses: np.ndarray, intrinsics: geometry.Intrinsics, *, colour_cast: float,
            blur: float, noise: float, colour_rng: np.random.Generator, blur_rng: np.random.Generator,
            noise_rng: np.random.Generator) -> np.ndarray:
    """A phone camera's look, each part scaled by its strength in [0, 1] and drawn from its own generator: a colour
    cast and gamma (`colour_cast`), motion blur along the camera's image motion and defocus blur (`blur`), sensor
    noise (`noise`). [N, H, W, 3] uint8 -> same; all three at 0 returns the images unchanged."""
    gain = 1.0 + colour_cast * (colour_rng.uniform(*GAIN, 3) - 1.0)
    gamma = np.exp(colour_cast * np.log(colour_rng.uniform(*GAMMA)))
    sigma = blur * blur_rng.uniform(*BLUR_SIGMA_PX)
    noise_std = noise * noise_rng.uniform(*NOISE_STD)
    levels = np.arange(256, dtype=np.float64)[:, None] / 255.0
    grading = np.clip(np.rint(levels ** gamma * gain * 255.0), 0, 255).astype(np.uint8)[:, None, :]  # [256, 1, 3]
    k = intrinsics
    out = np.empty_like(images)
    for t, image in enumerate(images):
        x = np.ascontiguousarray(image)
        if colour_cast > 0:
            x = cv2.LUT(x, grading)
        # Image motion of the scene at the centre since the previous frame (the camera's turn), smeared over the
        # exposure.
        previous_axis = cam_poses[max(t - 1, 0), 2, :3]
        direction = cam_poses[t, :3, :3] @ previous_axis
        streak = blur * EXPOSURE * np.array([k.fx * direction[0] / direction[2], k.fy * direction[1] / direction[2]])
        length = float(np.linalg.norm(streak))
        if length >= 2.0:
            streak *= min(length, MAX_STREAK_PX) / length
            half = int(np.ceil(np.abs(streak).max() / 2.0))
            kernel = np.zeros((2 * half + 1, 2 * half + 1), np.float32)
            a, b = half - streak / 2.0, half + streak / 2.0
            cv2.line(kernel, tuple(int(round(c)) for c in a), tuple(int(round(c)) for c in b), 1.0, 1)
            x = cv2.filter2D(x, -1, kernel / kernel.sum())
        if sigma > 0:
            x = cv2.GaussianBlur(x, (0, 0), sigma)
        # OpenCV's generator, seeded from ours (deterministic), draws the noise several times faster than numpy.
        seed = int(noise_rng.integers(2 ** 31))
        if noise_std > 0:
            cv2.setRNGSeed(seed)
            grain = np.empty(x.shape, np.int16)
            cv2.randn(grain, 0.0, noise_std)
            x = cv2.add(x, grain, dtype=cv2.CV_8U)  # saturating
        out[t] = x
    return out
