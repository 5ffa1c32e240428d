"""Small smooth curves the procedural motions are built from: C2 easings, soft minima, and keyframed quintic
splines."""
from __future__ import annotations

import numpy as np


def smootherstep(u: np.ndarray) -> np.ndarray:
    """0 -> 1 with zero velocity and acceleration at both ends (C2)."""
    u = np.clip(u, 0.0, 1.0)
    return u * u * u * (u * (6.0 * u - 15.0) + 10.0)


def softmin(values: np.ndarray, axis: int, tau: float) -> np.ndarray:
    """A smooth minimum that never exceeds the true minimum (log-sum-exp)."""
    m = np.min(values, axis=axis, keepdims=True)
    return np.squeeze(m - tau * np.log(np.sum(np.exp(-(values - m) / tau), axis=axis, keepdims=True)), axis)


def softplus(x: np.ndarray, scale: float) -> np.ndarray:
    return scale * np.logaddexp(0.0, x / scale)


def quintic_spline(knot_t: np.ndarray, pos: np.ndarray, vel: np.ndarray, acc: np.ndarray,
                   t: np.ndarray) -> np.ndarray:
    """C2 piecewise-quintic Hermite curve through knots (time [K], pos/vel/acc [K, D]) sampled at t [T] -> [T, D];
    before the first and after the last knot it moves on at that knot's velocity."""
    knot_t = np.asarray(knot_t, np.float64)
    pos, vel, acc = (np.asarray(a, np.float64).reshape(len(knot_t), -1) for a in (pos, vel, acc))
    if len(knot_t) == 1:
        return np.broadcast_to(pos[0], (len(t), pos.shape[1])) + (np.asarray(t) - knot_t[0])[:, None] * vel[0]
    tq = np.clip(t, knot_t[0], knot_t[-1])
    seg = np.clip(np.searchsorted(knot_t, tq, side="right") - 1, 0, len(knot_t) - 2)
    h = (knot_t[seg + 1] - knot_t[seg])[:, None]
    s = ((tq - knot_t[seg]) / h[:, 0])[:, None]
    s2, s3 = s * s, s * s * s
    s4, s5 = s3 * s, s3 * s2
    basis = (1 - 10 * s3 + 15 * s4 - 6 * s5, s - 6 * s3 + 8 * s4 - 3 * s5, 0.5 * s2 - 1.5 * s3 + 1.5 * s4 - 0.5 * s5,
             0.5 * s3 - s4 + 0.5 * s5, -4 * s3 + 7 * s4 - 3 * s5, 10 * s3 - 15 * s4 + 6 * s5)
    out = (basis[0] * pos[seg] + basis[1] * h * vel[seg] + basis[2] * h * h * acc[seg]
           + basis[3] * h * h * acc[seg + 1] + basis[4] * h * vel[seg + 1] + basis[5] * pos[seg + 1])
    # Outside the knots, continue with the end velocity (a moving end keeps moving, a still one stays).
    out = out + (np.minimum(t - knot_t[0], 0.0)[:, None] * vel[0] + np.maximum(t - knot_t[-1], 0.0)[:, None] * vel[-1])
    return out


class Keys:
    """Keyframed channels for the keyframe-driven kinds (jump, squat, wave): every channel is a C2 quintic spline."""

    def __init__(self):
        self.times: list[float] = []
        self.values: list[dict[str, float]] = []
        self.velocities: list[dict[str, float]] = []
        self.accelerations: list[dict[str, float]] = []

    def add(self, time: float, vel: dict[str, float] | None = None, acc: dict[str, float] | None = None,
            **values: float):
        """A knot at `time`; channels not given keep their previous value; velocity and acceleration default to 0."""
        previous = dict(self.values[-1]) if self.values else {}
        previous.update(values)
        self.times.append(time)
        self.values.append(previous)
        self.velocities.append(vel or {})
        self.accelerations.append(acc or {})

    def sample(self, t: np.ndarray) -> dict[str, np.ndarray]:
        names = sorted(self.values[-1])
        pos = np.array([[v[n] for n in names] for v in self._filled()])
        vel = np.array([[v.get(n, 0.0) for n in names] for v in self.velocities])
        acc = np.array([[a.get(n, 0.0) for n in names] for a in self.accelerations])
        curves = quintic_spline(np.array(self.times), pos, vel, acc, t)
        return {n: curves[:, i] for i, n in enumerate(names)}

    def _filled(self) -> list[dict[str, float]]:
        """Knot values with channels first set late back-filled from their first value."""
        first: dict[str, float] = {}
        for v in self.values:
            for n, x in v.items():
                first.setdefault(n, x)
        return [{**first, **v} for v in self.values]
