"""The simulator's appearance model: procedural clothing (colours and patterns per SMPL part, training and shifted
styles) and random lighting (training and shifted ranges). The shifted styles are one of the evaluation set's domain
knobs (`mhr_tf.sim.domain`: clothing, lighting)."""
from __future__ import annotations

import numpy as np

from mhr_tf.body.joints import SMPL_PARTS

LIGHTING_STYLES = ("train", "shifted")
# Ranges the lights are drawn from (degrees, and the ambient share). "train": from above, on the camera's side, soft;
# "shifted" (the shifted-domain evaluation set, outdoor daylight): any azimuth including back light, low sun to
# overhead, deep shadows.
LIGHT_ELEVATION_DEG = {"train": (10.0, 70.0), "shifted": (-20.0, 80.0)}
LIGHT_AZIMUTH_DEG = {"train": (-80.0, 80.0), "shifted": (-180.0, 180.0)}
LIGHT_AMBIENT = {"train": (0.3, 0.6), "shifted": (0.12, 0.35)}


def random_lighting(rng: np.random.Generator, style: str = "train",
                    harshness: float | None = None) -> tuple[np.ndarray, float]:
    """A random light direction (camera frame, surface -> light, unit) and ambient level.

    "train": light from above, on the camera's side (elevation 10-70 deg, azimuth within 80 deg of the camera
    axis), soft ambient 0.3-0.6. "shifted" (the shifted-domain evaluation set): any azimuth including back light,
    elevation -20-80 deg, harsher ambient 0.12-0.35. `harshness` in [0, 1], when given, replaces `style`: every range
    bound moves linearly from "train" (0) to "shifted" (1), and the same generator state draws the same quantiles, so
    0 gives exactly the "train" light and 1 exactly the "shifted" one.
    """
    if harshness is None:
        if style not in LIGHTING_STYLES:
            raise ValueError(f"random_lighting: style {style!r}, expected one of {LIGHTING_STYLES}")
        harshness = 0.0 if style == "train" else 1.0
    if not 0.0 <= harshness <= 1.0:
        raise ValueError(f"random_lighting: harshness={harshness}, expected a value in [0, 1]")

    def between(ranges):
        (lo0, hi0), (lo1, hi1) = ranges["train"], ranges["shifted"]
        return lo0 + harshness * (lo1 - lo0), hi0 + harshness * (hi1 - hi0)

    elevation = rng.uniform(*between(LIGHT_ELEVATION_DEG))
    azimuth = rng.uniform(*between(LIGHT_AZIMUTH_DEG))
    ambient = rng.uniform(*between(LIGHT_AMBIENT))
    el, az = np.radians(elevation), np.radians(azimuth)
    # Camera frame: up is -y, towards the camera is -z.
    light_dir = np.array([np.cos(el) * np.sin(az), -np.sin(el), -np.cos(el) * np.cos(az)])
    return light_dir, float(ambient)


# ---- Procedural clothing ---------------------------------------------------------------------------------------

CLOTHING_STYLES = ("train", "shifted")

_PART = {name: i for i, name in enumerate(SMPL_PARTS)}
_ARM_PARTS = [_PART[f"{side}_{p}"] for side in ("left", "right") for p in ("shoulder", "elbow", "wrist", "hand")]
# SMPL's "wrist" part is the hand and its "hand" part the fingers: sleeves end before them.
_SLEEVE_PARTS = [_PART[f"{side}_{p}"] for side in ("left", "right") for p in ("shoulder", "elbow")]
_LEG_PARTS = [_PART[f"{side}_{p}"] for side in ("left", "right") for p in ("hip", "knee", "ankle", "foot")]
_TORSO_PARTS = [_PART[p] for p in ("spine1", "spine2", "spine3", "left_collar", "right_collar")]
# SMPL's "ankle" part is the foot and its "foot" part the toes: both are inside the shoes.
_SHOE_PARTS = [_PART[f"{side}_{p}"] for side in ("left", "right") for p in ("ankle", "foot")]

# Skin tones from light to dark (sRGB, 0..1); a person's tone is interpolated between neighbours.
_SKIN_TONES = np.array([[0.97, 0.83, 0.72], [0.92, 0.74, 0.60], [0.80, 0.60, 0.46], [0.66, 0.46, 0.33],
                        [0.48, 0.32, 0.22], [0.32, 0.21, 0.15], [0.22, 0.15, 0.11]])
_HAIR = np.array([[0.05, 0.04, 0.04], [0.18, 0.11, 0.07], [0.38, 0.24, 0.13], [0.78, 0.64, 0.40],
                  [0.52, 0.22, 0.10], [0.62, 0.62, 0.62]])
_TROUSERS = np.array([[0.14, 0.20, 0.38], [0.08, 0.08, 0.09], [0.60, 0.54, 0.40], [0.42, 0.42, 0.44],
                      [0.10, 0.12, 0.25], [0.35, 0.25, 0.17], [0.30, 0.36, 0.24]])
_SHOES = np.array([[0.05, 0.05, 0.05], [0.92, 0.92, 0.92], [0.35, 0.22, 0.12], [0.45, 0.45, 0.48]])


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    """One HSV colour (all in 0..1) as RGB."""
    k = (np.array([5.0, 3.0, 1.0]) + h * 6.0) % 6.0
    return v - v * s * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)


def _smooth_noise(points: np.ndarray, rng: np.random.Generator, wavelength_m: float, waves: int = 8) -> np.ndarray:
    """Band-limited noise on the rest-pose surface, roughly in [-1, 1]: a sum of random plane waves."""
    direction = rng.normal(size=(waves, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    k = direction * (2 * np.pi / wavelength_m) * rng.uniform(0.7, 1.3, size=(waves, 1))
    phase = rng.uniform(0, 2 * np.pi, size=waves)
    return np.cos(points @ k.T + phase).sum(axis=1) * np.sqrt(2.0 / waves)


def _garment_colour(rng: np.random.Generator, style: str) -> np.ndarray:
    if style == "train":  # everyday colours: muted to medium saturation, with whites, greys and blacks
        return _hsv(rng.uniform(), rng.uniform(0.0, 0.7), rng.uniform(0.15, 0.95))
    if rng.uniform() < 0.5:  # shifted: neon
        return _hsv(rng.uniform(), rng.uniform(0.85, 1.0), rng.uniform(0.85, 1.0))
    return _hsv(rng.uniform(), rng.uniform(0.15, 0.35), rng.uniform(0.85, 1.0))  # shifted: pastel


def _pattern(points: np.ndarray, rng: np.random.Generator, style: str) -> np.ndarray:
    """Where the second colour of a garment goes: [N] weights in 0..1 over the rest-pose points."""
    n = len(points)
    if style == "train":
        kind = rng.choice(["plain", "plain", "hstripes", "vstripes", "mottled"])
    else:
        kind = rng.choice(["checker", "dots", "camo", "diagonal", "gradient"])
    if kind == "plain":
        return np.zeros(n)
    if kind in ("hstripes", "vstripes", "diagonal"):
        axis = {"hstripes": [0, 1, 0], "vstripes": [1, 0, 0], "diagonal": [0.707, 0.707, 0]}[kind]
        period = rng.uniform(0.03, 0.12)
        return ((points @ np.array(axis) / period + rng.uniform()) % 1.0 < rng.uniform(0.3, 0.6)).astype(float)
    if kind == "mottled":
        return np.clip(0.5 + 0.35 * _smooth_noise(points, rng, rng.uniform(0.08, 0.2)), 0, 1)
    if kind == "checker":
        cell = np.floor(points / rng.uniform(0.04, 0.1)).astype(np.int64)
        return (cell.sum(axis=1) % 2).astype(float)
    if kind == "dots":
        spacing = rng.uniform(0.04, 0.08)
        offset = (points / spacing) % 1.0 - 0.5
        return (np.linalg.norm(offset, axis=1) < rng.uniform(0.2, 0.35)).astype(float)
    if kind == "camo":
        return (_smooth_noise(points, rng, rng.uniform(0.1, 0.25)) > 0.2).astype(float)
    # gradient: a ramp along the body's height
    y = points[:, 1]
    return (y - y.min()) / max(np.ptp(y), 1e-6)


def clothing_colors(vertices_rest: np.ndarray, part_ids: np.ndarray, rng: np.random.Generator,
                    style: str = "train") -> np.ndarray:
    """Procedural clothing as per-vertex albedo: [V, 3] float32 in 0..1.

    vertices_rest: [V, 3] metres, SMPL's rest T-pose (y up, facing +z, the person's left is +x), so patterns stay
    attached to the body as it moves. part_ids: [V] SMPL part 0..23.
    Skin tone, hair (length and colour, sometimes none), a shirt (sleeveless, short or long sleeves), trousers
    (shorts to full length), shoes; garments get a second colour in a pattern and fine per-vertex noise.
    style "train": everyday palettes, plain/striped/mottled shirts. "shifted" (the shifted-domain evaluation set):
    neon and pastel palettes, checks, dots, camouflage, diagonal stripes and gradients, sometimes one-piece suits.
    """
    if style not in CLOTHING_STYLES:
        raise ValueError(f"clothing_colors: style {style!r}, expected one of {CLOTHING_STYLES}")
    points = np.asarray(vertices_rest, dtype=np.float64)
    part_ids = np.asarray(part_ids)
    if points.ndim != 2 or points.shape[1] != 3 or part_ids.shape != (len(points),):
        raise ValueError(f"clothing_colors: vertices_rest {points.shape} and part_ids {part_ids.shape}, "
                         f"expected [V, 3] and [V]")
    x, y = points[:, 0], points[:, 1]
    is_arm, is_leg = np.isin(part_ids, _ARM_PARTS), np.isin(part_ids, _LEG_PARTS)

    # Position along the limb, 0 at the shoulder / top of the thigh, 1 at the fingertips / soles.
    t_arm = np.zeros(len(points))
    if is_arm.any():
        ax = np.abs(x[is_arm])
        t_arm[is_arm] = (ax - ax.min()) / max(np.ptp(ax), 1e-6)
    t_leg = np.zeros(len(points))
    if is_leg.any():
        ly = y[is_leg]
        t_leg[is_leg] = (ly.max() - ly) / max(np.ptp(ly), 1e-6)

    colors = np.empty((len(points), 3))
    tone = rng.uniform(0, len(_SKIN_TONES) - 1)
    lo = int(np.floor(tone))
    hi = min(lo + 1, len(_SKIN_TONES) - 1)
    skin = _SKIN_TONES[lo] + (tone - lo) * (_SKIN_TONES[hi] - _SKIN_TONES[lo])
    colors[:] = skin

    sleeve = rng.choice([0.0, rng.uniform(0.15, 0.3), rng.uniform(0.6, 0.85)])
    trouser = rng.choice([rng.uniform(0.3, 0.45), rng.uniform(0.85, 0.93), rng.uniform(0.85, 0.93)])
    # A level waistline rather than the pelvis/spine1 part border, which zigzags on the mesh.
    pelvis = part_ids == _PART["pelvis"]
    waist = (y[pelvis].max() if pelvis.any() else 0.0) + rng.uniform(-0.03, 0.05)
    below_waist = np.isin(part_ids, [_PART["pelvis"], _PART["spine1"]]) & (y < waist)
    shirt = (np.isin(part_ids, _TORSO_PARTS) & ~below_waist) | (np.isin(part_ids, _SLEEVE_PARTS) & (t_arm < sleeve))
    trousers = below_waist | (is_leg & (t_leg < trouser) & ~np.isin(part_ids, _SHOE_PARTS))
    shoes = np.isin(part_ids, _SHOE_PARTS)

    suit = style == "shifted" and rng.uniform() < 0.3
    shirt_colors = (_garment_colour(rng, style), _garment_colour(rng, style))
    trouser_colors = shirt_colors if suit else (
        (_TROUSERS[rng.integers(len(_TROUSERS))] if style == "train" else _garment_colour(rng, style)),
        _garment_colour(rng, style))
    for region, (first, second) in ((shirt, shirt_colors), (trousers, trouser_colors)):
        weight = _pattern(points[region], rng, style)[:, None]
        colors[region] = first + weight * (second - first)
    colors[shoes] = _SHOES[rng.integers(len(_SHOES))]

    head = part_ids == _PART["head"]
    if head.any() and rng.uniform() > 0.08:  # a few people are bald
        head_pts = points[head]
        centre, extent = head_pts.mean(axis=0), np.ptp(head_pts, axis=0)
        top = head_pts[:, 1] > centre[1] + extent[1] * rng.uniform(0.05, 0.25)
        back = (head_pts[:, 2] < centre[2] - extent[2] * 0.15) & (head_pts[:, 1] > centre[1] - extent[1]
                                                                  * rng.uniform(0.1, 0.45))
        hair = np.zeros(len(points), dtype=bool)
        hair[np.flatnonzero(head)[top | back]] = True
        colors[hair] = _HAIR[rng.integers(len(_HAIR))]

    # Fabric and skin are never perfectly flat: low-frequency shading plus per-vertex grain.
    colors *= 1.0 + 0.06 * _smooth_noise(points, rng, 0.25)[:, None]
    colors *= 1.0 + rng.normal(0.0, 0.03, size=(len(points), 1))
    return np.clip(colors, 0.0, 1.0).astype(np.float32)
