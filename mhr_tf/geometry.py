"""Cameras, projection, crops and Procrustes alignment, in numpy (float64, for evaluation) and TF (training).

Camera frame everywhere: x right, y down, z forward (OpenCV), metres; pixel (u, v) with pixel centres at integers.
"""
from __future__ import annotations

from typing import NamedTuple


class Intrinsics(NamedTuple):
    """A pinhole camera: focal lengths and principal point, in pixels."""
    fx: float
    fy: float
    cx: float
    cy: float


# SURREAL's Blender camera (Varol et al. 2017): f = 600 px, principal point at the centre of 320x240 frames.
SURREAL_INTRINSICS = Intrinsics(600.0, 600.0, 160.0, 120.0)
SURREAL_IMAGE_HW = (240, 320)
