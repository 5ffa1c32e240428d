"""Human motion for the simulator: procedural 30 fps pose sequences for SMPL's 24-joint skeleton (walk, run, turn,
jump, squat, wave, and `sample_motion`'s random combinations of them).

Every procedural kind is built the same way: a pelvis trajectory, world targets for both ankles (footprints that
stay put while a foot is on the ground), and upper-body angles; the leg IK (`legs.solve_legs`) turns the ankle
targets into hip, knee and ankle angles; all angles are then kept inside `skeleton.JOINT_LIMITS_DEG`. Conventions
and the reference skeleton are `skeleton`'s. BVH files (import and export) are `mhr_tf.body.bvh`'s.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import numpy as np

from mhr_tf.body.joints import SMPL_24
from mhr_tf.sim.curves import Keys, smootherstep, softplus
from mhr_tf.sim.legs import pelvis_height_limit, limit_pelvis_height, root_matrices, solve_legs, pivot_offset
from mhr_tf.sim.skeleton import (ANKLE_HEIGHT, FPS, JOINT_INDEX, REST_JOINTS, STANDING_PELVIS_HEIGHT, Motion,
                                 angle_slot, pose_from_angles, soft_limits)

GRAVITY = 9.81  # m/s², for the flight phase of jumps
KINDS = ("walk", "run", "jump", "wave", "squat", "turn")


# ---- tracks: what every kind produces before it becomes a Motion --------------------------------------------------

@dataclasses.dataclass
class _Track:
    angles: np.ndarray  # [T, 24, 3] radians, per-joint Euler orders; root row = (yaw, pitch, roll)
    pelvis: np.ndarray  # [T, 3] metres, world pelvis position (floor at y = 0)
    kind: np.ndarray    # [T] str


def _to_motion(track: _Track, fps: float) -> Motion:
    pose = pose_from_angles(track.angles)
    trans = track.pelvis - REST_JOINTS[JOINT_INDEX["pelvis"]]  # the floor is y = 0 in the world
    return Motion(pose.astype(np.float32), trans.astype(np.float32), float(fps), track.kind)


def _set(angles: np.ndarray, name: str, axis: str, values) -> None:
    j, k = angle_slot(name, axis)
    angles[:, j, k] = values


def _arms_down(angles: np.ndarray, lower: float, elbow: float) -> None:
    """Natural hanging arms: the T-pose arms lowered by `lower` rad (left about -z, right about +z), elbows bent."""
    for side, sign in (("left", 1.0), ("right", -1.0)):
        _set(angles, f"{side}_shoulder", "Z", -sign * lower)
        _set(angles, f"{side}_elbow", "Y", -sign * elbow)


def _finish(angles: np.ndarray, pelvis: np.ndarray, ankles: np.ndarray, foot_yaw: np.ndarray,
            foot_pitch: np.ndarray, kind: str, load: np.ndarray | None = None) -> _Track:
    solve_legs(angles, pelvis, ankles, foot_yaw, foot_pitch, load)
    angles = soft_limits(angles)
    return _Track(angles, pelvis, np.full(len(angles), kind))


def _planted_feet(num_frames: int, heading: float, half_width: float, toe_out: float):
    """Both feet flat on the floor either side of the origin: (ankles [T, 2, 3], yaw [T, 2], pitch [T, 2])."""
    left = np.array([np.cos(heading), 0.0, -np.sin(heading)])
    ankles = np.stack([left * half_width, -left * half_width]) + (0.0, ANKLE_HEIGHT, 0.0)
    ankles = np.broadcast_to(ankles, (num_frames, 2, 3)).copy()
    yaw = np.broadcast_to([heading + toe_out, heading - toe_out], (num_frames, 2)).copy()
    return ankles, yaw, np.zeros((num_frames, 2))


def _neck_compensation(angles: np.ndarray, trunk_pitch: np.ndarray, trunk_yaw: np.ndarray) -> None:
    """Keep the gaze roughly level and ahead: the neck and head undo part of the trunk's pitch and yaw."""
    _set(angles, "neck", "X", -0.6 * trunk_pitch)
    _set(angles, "head", "X", -0.2 * trunk_pitch)
    _set(angles, "neck", "Y", -0.6 * trunk_yaw)
    _set(angles, "head", "Y", -0.3 * trunk_yaw)


# ---- locomotion: walk, run, turn ----------------------------------------------------------------------------------

@dataclasses.dataclass
class _Gait:
    speed: Callable[[np.ndarray], np.ndarray]    # m/s along the heading, as a function of time (s)
    heading: Callable[[np.ndarray], np.ndarray]  # rad about +y (0 faces +z), as a function of time (s)
    cadence: float        # steps per second (two steps per gait cycle)
    stance: float         # fraction of the cycle each foot is on the floor (> 0.5 walking, < 0.5 running)
    lift: float           # m, swing-foot clearance for a full stride
    swing_peak: float     # where in the swing the clearance peaks (0..1)
    step_offset: float    # m, footprint ahead (+) or behind (-) the pelvis at mid-stance
    half_width: float     # m, footprint distance from the path's centre line
    toe_out: float        # rad, feet turned outwards
    toe_off: float        # rad, foot pitch (toes down) when it leaves the floor
    heel_strike: float    # rad, toes-up pitch when it lands
    crouch: float         # m, pelvis below standing height on average
    bob: float            # m, vertical pelvis oscillation; > 0 highest at mid-stance (walk), < 0 lowest (run)
    sway: float           # m, side-to-side pelvis shift towards the stance foot
    lean: float           # rad, forward lean of the pelvis (trunk leans twice as much)
    pelvis_yaw: float     # rad, pelvis rotation with the stepping leg
    pelvis_roll: float    # rad, pelvic drop on the swing side
    arm_lower: float      # rad, arms lowered from the T-pose
    arm_swing: float      # rad, arm swing amplitude about the shoulder's x axis
    elbow: float          # rad, elbow flexion with the arm back
    elbow_swing: float    # rad, extra elbow flexion with the arm forward


def _swing_bump(u: np.ndarray, peak: float) -> np.ndarray:
    """Clearance profile over the swing, 0 at both ends with zero slope, maximum 1 at u = peak."""
    a = 2.0  # zero vertical velocity at both ends, finite acceleration
    b = a * (1.0 - peak) / peak
    u = np.clip(u, 0.0, 1.0)
    return (u ** a * (1.0 - u) ** b) / (peak ** a * (1.0 - peak) ** b)


def _locomotion(rng: np.random.Generator, num_frames: int, fps: float, gait: _Gait, kind: str) -> _Track:
    t = np.arange(num_frames) / fps
    cycle_hz = gait.cadence / 2.0
    phase0 = rng.uniform()
    phase = phase0 + cycle_hz * t  # gait cycles; the left foot lands at integer phases, the right at half-integers

    # The pelvis path on a fine grid wide enough for every footprint we may need (one beyond each end).
    t_grid = np.arange(-3.0 / cycle_hz, t[-1] + 3.0 / cycle_hz, 0.25 / fps)
    heading_grid = gait.heading(t_grid)
    velocity = gait.speed(t_grid)[:, None] * np.stack([np.sin(heading_grid), np.cos(heading_grid)], axis=1)
    path_grid = np.concatenate([[[0.0, 0.0]], np.cumsum(0.5 * (velocity[1:] + velocity[:-1]) * 0.25 / fps, axis=0)])
    path_grid -= [np.interp(0.0, t_grid, path_grid[:, i]) for i in range(2)]

    def path(tq):
        return np.stack([np.interp(tq, t_grid, path_grid[:, i]) for i in range(2)], axis=-1)

    ankles = np.zeros((num_frames, 2, 3))
    foot_yaw = np.zeros((num_frames, 2))
    foot_pitch = np.zeros((num_frames, 2))
    load = np.zeros((num_frames, 2))
    beta = gait.stance
    for f, side_sign in enumerate((1.0, -1.0)):  # left (+x), right
        q = phase - 0.5 * f
        step = np.floor(q)
        p = q - step  # 0 = this foot lands, beta = it leaves the floor

        def footprint(k):
            t_mid = (k + 0.5 * f + 0.5 * beta - phase0) / cycle_hz
            psi = gait.heading(t_mid)
            centre = path(t_mid)
            xz = centre + side_sign * gait.half_width * np.stack([np.cos(psi), -np.sin(psi)], axis=-1) \
                + gait.step_offset * np.stack([np.sin(psi), np.cos(psi)], axis=-1)
            return xz, psi + side_sign * gait.toe_out

        xz0, yaw0 = footprint(step)
        xz1, yaw1 = footprint(step + 1)
        in_stance = p < beta
        u = np.clip((p - beta) / (1.0 - beta), 0.0, 1.0)
        # The swing foot leaves with zero velocity but at once accelerating (a cubic, not quintic, ease).
        blend = np.where(in_stance, 0.0, u * u * (3.0 - 2.0 * u))
        xz = xz0 + (xz1 - xz0) * blend[:, None]
        distance = np.linalg.norm(xz1 - xz0, axis=1)
        turned = np.abs(yaw1 - yaw0)
        # Short steps (turning on the spot, standing) lift the foot less; no step, no lift.
        clearance = gait.lift * np.minimum(1.0, distance / 0.5 + turned / 0.6)
        height = np.where(in_stance, 0.0, clearance * _swing_bump(u, gait.swing_peak))

        # Foot pitch over the cycle: the heel rocker rolls the foot flat over the first fifth of the stance; the heel
        # rises over the last 30% and keeps rising just past toe-off, so the foot leaves the floor moving forwards;
        # then the swing brings the toes up for the next heel strike.
        heel_end = 0.2 * beta
        heel_off = 0.7 * beta
        pitch_peak = beta + 0.1 * (1.0 - beta)
        pitch = (-gait.heel_strike * (1.0 - smootherstep(p / heel_end))
                 + gait.toe_off * smootherstep((p - heel_off) / (pitch_peak - heel_off))
                 + (-gait.heel_strike - gait.toe_off) * np.where(in_stance, 0.0, smootherstep((u - 0.1) / 0.7)))
        # Feet that barely step (standing, small turns) stay flat.
        pitch = pitch * np.minimum(1.0, distance / 0.3)
        yaw = yaw0 + (yaw1 - yaw0) * blend

        ankles[:, f, [0, 2]] = xz
        ankles[:, f, 1] = ANKLE_HEIGHT + height
        ankles[:, f] += pivot_offset(pitch, yaw)
        foot_yaw[:, f], foot_pitch[:, f] = yaw, pitch
        # The leg must reach its target on the floor, just after toe-off and, increasingly, late in the swing.
        swing_load = np.maximum(1.0 - smootherstep(u / 0.25), smootherstep((u - 0.5) / 0.5))
        load[:, f] = np.where(in_stance, 1.0, swing_load)

    # Root orientation: heading, with the pelvis turning towards the forward leg and dropping on the swing side.
    mid_stance = phase - 0.5 * beta
    angles = np.zeros((num_frames, len(SMPL_24), 3))
    yaw_osc = -gait.pelvis_yaw * np.cos(2 * np.pi * phase)  # left leg forward at integer phases
    angles[:, 0, 0] = gait.heading(t) + yaw_osc
    angles[:, 0, 1] = gait.lean
    angles[:, 0, 2] = gait.pelvis_roll * np.cos(2 * np.pi * mid_stance)

    psi = gait.heading(t)
    centre = path(t)
    sway = gait.sway * np.cos(2 * np.pi * mid_stance)  # towards the left foot at its mid-stance
    pelvis = np.zeros((num_frames, 3))
    pelvis[:, 0] = centre[:, 0] + sway * np.cos(psi)
    pelvis[:, 2] = centre[:, 1] - sway * np.sin(psi)
    desired = STANDING_PELVIS_HEIGHT - gait.crouch + gait.bob * np.cos(4 * np.pi * mid_stance)
    pelvis[:, 1] = limit_pelvis_height(desired, pelvis[:, [0, 2]], root_matrices(angles), ankles, load, fps)

    # Trunk: leans forward, counter-rotates against the pelvis, stays upright against its roll.
    for name in ("spine1", "spine2", "spine3"):
        _set(angles, name, "X", gait.lean / 3.0)
        _set(angles, name, "Y", -1.5 * yaw_osc / 3.0)
        _set(angles, name, "Z", -angles[:, 0, 2] / 3.0)
    _neck_compensation(angles, 2.0 * gait.lean, -0.5 * yaw_osc)

    # Arms swing against the legs: the left arm is forward when the right leg is (half-integer phases).
    swing = gait.arm_swing * np.cos(2 * np.pi * (phase - 0.05))
    _arms_down(angles, gait.arm_lower, gait.elbow)
    for side, sign in (("left", 1.0), ("right", -1.0)):
        forward = -sign * np.cos(2 * np.pi * (phase - 0.05))  # +1 when this arm is fully forward
        _set(angles, f"{side}_shoulder", "X", sign * swing)
        _set(angles, f"{side}_elbow", "Y", -sign * (gait.elbow + gait.elbow_swing * 0.5 * (1.0 + forward)))
    return _finish(angles, pelvis, ankles, foot_yaw, foot_pitch, kind, load)


def _check_length(where: str, num_frames: int, fps: float) -> None:
    if int(num_frames) < 1 or not fps > 0:
        raise ValueError(f"{where}: num_frames={num_frames}, fps={fps} — expected at least 1 frame and fps > 0")


def _constant(value: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda tq: np.full(np.shape(tq), float(value))


def walk(rng: np.random.Generator, num_frames: int, fps: float = FPS, speed: float | None = None,
         heading: float = 0.0) -> Motion:
    """Walking straight along `heading` (rad about +y; 0 faces +z) at `speed` m/s (random 0.8-1.6 if None)."""
    _check_length("walk", num_frames, fps)
    return _to_motion(_walk_track(rng, num_frames, fps, speed, heading), fps)


def _walk_track(rng, num_frames, fps, speed=None, heading=0.0) -> _Track:
    speed = rng.uniform(0.8, 1.6) if speed is None else float(speed)
    gait = _Gait(
        speed=_constant(speed), heading=_constant(heading),
        # Faster walkers take quicker steps and spend less of the cycle on each foot (1.85 steps/s, 0.7 m steps,
        # 60% stance at 1.3 m/s), which keeps every footprint within reach of the hip.
        cadence=(1.2 + 0.5 * speed) * rng.uniform(0.96, 1.04),
        stance=0.62 - 0.05 * (speed - 0.8) + rng.uniform(-0.01, 0.01),
        lift=rng.uniform(0.08, 0.12), swing_peak=0.3, step_offset=-rng.uniform(0.03, 0.07),
        half_width=rng.uniform(0.05, 0.09), toe_out=np.radians(rng.uniform(0.0, 10.0)),
        toe_off=np.radians(rng.uniform(45.0, 60.0)), heel_strike=np.radians(rng.uniform(8.0, 15.0)),
        crouch=rng.uniform(0.0, 0.02), bob=rng.uniform(0.01, 0.025), sway=rng.uniform(0.01, 0.03),
        lean=np.radians(rng.uniform(0.0, 5.0)), pelvis_yaw=np.radians(rng.uniform(2.0, 6.0)) * min(speed, 1.5),
        pelvis_roll=np.radians(rng.uniform(1.0, 4.0)), arm_lower=np.radians(rng.uniform(70.0, 80.0)),
        arm_swing=np.radians(rng.uniform(8.0, 18.0)) * min(speed, 1.5), elbow=np.radians(rng.uniform(5.0, 20.0)),
        elbow_swing=np.radians(rng.uniform(5.0, 20.0)))
    return _locomotion(rng, num_frames, fps, gait, "walk")


def run(rng: np.random.Generator, num_frames: int, fps: float = FPS, speed: float | None = None,
        heading: float = 0.0) -> Motion:
    """Running straight along `heading` at `speed` m/s (random 2.2-4.0 if None), with a flight phase each step."""
    _check_length("run", num_frames, fps)
    return _to_motion(_run_track(rng, num_frames, fps, speed, heading), fps)


def _run_track(rng, num_frames, fps, speed=None, heading=0.0) -> _Track:
    speed = rng.uniform(2.2, 4.0) if speed is None else float(speed)
    gait = _Gait(
        speed=_constant(speed), heading=_constant(heading),
        # Contact shortens and steps quicken with speed, so each footprint stays within about 0.9 m of travel.
        cadence=(2.4 + 0.15 * speed) * rng.uniform(0.96, 1.04),
        stance=0.36 - 0.025 * (speed - 2.2) + rng.uniform(-0.01, 0.01),
        lift=rng.uniform(0.25, 0.4), swing_peak=0.4, step_offset=-rng.uniform(0.08, 0.12),
        half_width=rng.uniform(0.02, 0.05), toe_out=np.radians(rng.uniform(0.0, 8.0)),
        toe_off=np.radians(rng.uniform(35.0, 50.0)), heel_strike=np.radians(rng.uniform(0.0, 8.0)),
        crouch=rng.uniform(0.03, 0.06), bob=-rng.uniform(0.03, 0.05), sway=rng.uniform(0.0, 0.015),
        lean=np.radians(rng.uniform(4.0, 10.0)), pelvis_yaw=np.radians(rng.uniform(4.0, 8.0)),
        pelvis_roll=np.radians(rng.uniform(2.0, 5.0)), arm_lower=np.radians(rng.uniform(65.0, 75.0)),
        arm_swing=np.radians(rng.uniform(30.0, 45.0)), elbow=np.radians(rng.uniform(70.0, 90.0)),
        elbow_swing=np.radians(rng.uniform(0.0, 20.0)))
    return _locomotion(rng, num_frames, fps, gait, "run")


TURN_RATE_DEG_S = (45.0, 110.0)  # how fast people turn on the spot


def turn(rng: np.random.Generator, num_frames: int, fps: float = FPS, angle: float | None = None,
         heading: float = 0.0, speed: float | None = None) -> Motion:
    """Turning by `angle` rad from `heading`, stepping on the spot or slowly forwards (`speed` m/s, random 0-0.3).

    angle: random ±45-180 deg if None, as far as the clip allows at 45-110 deg/s; a given angle too large for the clip
    at 110 deg/s is still being turned when the clip ends."""
    _check_length("turn", num_frames, fps)
    return _to_motion(_turn_track(rng, num_frames, fps, angle, heading, speed), fps)


def _turn_track(rng, num_frames, fps, angle=None, heading=0.0, speed=None) -> _Track:
    duration = num_frames / fps
    rate = np.radians(rng.uniform(*TURN_RATE_DEG_S))
    if angle is None:
        # As much of a 45-180 deg turn as fits in 80% of the clip at this rate.
        largest = min(np.pi, 0.8 * duration * rate)
        angle = rng.choice([-1.0, 1.0]) * rng.uniform(min(np.radians(45.0), largest), largest)
    speed = rng.uniform(0.0, 0.3) if speed is None else float(speed)
    # A turn never outpaces the fastest rate; one too large for the clip is still under way at its end.
    turn_time = max(min(abs(angle) / rate, 0.8 * duration), abs(angle) / np.radians(TURN_RATE_DEG_S[1]), 1e-3)
    start = rng.uniform(0.0, 0.9 * duration - turn_time) if 0.9 * duration > turn_time else 0.0

    def heading_fn(tq):
        return heading + angle * smootherstep((np.asarray(tq) - start) / turn_time)

    gait = _Gait(
        speed=_constant(speed), heading=heading_fn, cadence=rng.uniform(1.8, 2.3), stance=rng.uniform(0.6, 0.66),
        lift=rng.uniform(0.05, 0.08), swing_peak=0.5, step_offset=0.0, half_width=rng.uniform(0.07, 0.11),
        toe_out=np.radians(rng.uniform(0.0, 10.0)), toe_off=np.radians(rng.uniform(10.0, 20.0)),
        heel_strike=np.radians(rng.uniform(0.0, 5.0)), crouch=rng.uniform(0.01, 0.03), bob=0.005,
        sway=rng.uniform(0.01, 0.025), lean=np.radians(rng.uniform(0.0, 3.0)), pelvis_yaw=0.0,
        pelvis_roll=np.radians(rng.uniform(1.0, 3.0)), arm_lower=np.radians(rng.uniform(70.0, 80.0)),
        arm_swing=np.radians(rng.uniform(0.0, 8.0)), elbow=np.radians(rng.uniform(5.0, 20.0)),
        elbow_swing=np.radians(rng.uniform(0.0, 10.0)))
    return _locomotion(rng, num_frames, fps, gait, "turn")


# ---- keyframed kinds: jump, squat, wave ------------------------------------------------------------------------

def _idle_angles(rng: np.random.Generator, num_frames: int, heading: float) -> np.ndarray:
    angles = np.zeros((num_frames, len(SMPL_24), 3))
    angles[:, 0, 0] = heading
    _arms_down(angles, np.radians(rng.uniform(70.0, 80.0)), np.radians(rng.uniform(5.0, 20.0)))
    return angles


def _forward(heading: float) -> np.ndarray:
    return np.array([np.sin(heading), 0.0, np.cos(heading)])


def jump(rng: np.random.Generator, num_frames: int, fps: float = FPS, height: float | None = None,
         heading: float = 0.0) -> Motion:
    """Repeated two-footed jumps: crouch, push off, a ballistic flight `height` m high (random 0.08-0.35 if None),
    land, recover; each may hop up to 0.4 m forwards."""
    _check_length("jump", num_frames, fps)
    return _to_motion(_jump_track(rng, num_frames, fps, height, heading), fps)


def _jump_track(rng, num_frames, fps, height=None, heading=0.0) -> _Track:
    t = np.arange(num_frames) / fps
    duration = t[-1] + 1.0 / fps
    stand = STANDING_PELVIS_HEIGHT - 0.01
    keys, arm_keys = Keys(), Keys()  # the arms swing on their own, slower schedule
    now = rng.uniform(0.0, 0.5)
    keys.add(now, y=stand, fwd=0.0, lean=0.0)
    arm_keys.add(now, arm=0.0)
    hops: list[tuple[float, float, float]] = []  # (takeoff time, landing time, distance along the heading)
    feet = 0.0  # where the feet stand along the heading
    while now < duration:
        flight_height = rng.uniform(0.08, 0.35) if height is None else float(height)
        v0 = np.sqrt(2.0 * GRAVITY * flight_height)  # take-off speed for that apex
        flight = 2.0 * v0 / GRAVITY
        low = stand - rng.uniform(0.12, 0.3)
        takeoff_y = stand + 0.05  # legs straight, heels up
        land_y = stand - rng.uniform(0.08, 0.2)
        hop = rng.uniform(0.0, 0.4)
        # The pelvis leaves ahead of the feet and lands behind them; in between it flies at constant speed.
        lead = 0.15 * hop
        t_crouch = now + rng.uniform(0.35, 0.6)
        # Push-off and landing last 1.7x as long as covering their height at half the take-off speed would: the
        # quintic path then accelerates without overshooting.
        t_takeoff = t_crouch + 1.7 * (takeoff_y - low) / v0
        t_land = t_takeoff + flight
        t_landed = t_land + 1.7 * (takeoff_y - land_y) / v0
        drift = (hop - 2 * lead) / flight
        keys.add(t_crouch, y=low, lean=np.radians(rng.uniform(20.0, 35.0)))
        keys.add(t_takeoff, vel={"y": v0, "fwd": drift}, acc={"y": -GRAVITY}, y=takeoff_y, fwd=feet + lead,
                 lean=np.radians(5.0))
        keys.add(t_land, vel={"y": -v0, "fwd": drift}, acc={"y": -GRAVITY}, y=takeoff_y, fwd=feet + hop - lead)
        keys.add(t_landed, y=land_y, fwd=feet + hop, lean=np.radians(rng.uniform(10.0, 25.0)))
        # Arms: back during the crouch, forwards and up through take-off, down again after landing.
        arm_keys.add(t_crouch, arm=np.radians(rng.uniform(20.0, 45.0)))
        arm_keys.add(0.5 * (t_takeoff + t_land), arm=-np.radians(rng.uniform(60.0, 110.0)))
        arm_keys.add(t_landed + 0.2, arm=-np.radians(rng.uniform(0.0, 30.0)))
        now = t_landed + rng.uniform(0.3, 0.6)
        keys.add(now, y=stand, lean=0.0)
        now += rng.uniform(0.1, 0.8)
        keys.add(now)
        arm_keys.add(max(now, t_landed + 0.5), arm=0.0)
        hops.append((t_takeoff, t_land, hop))
        feet += hop
    curves = {**keys.sample(t), **arm_keys.sample(t)}

    angles = _idle_angles(rng, num_frames, heading)
    half_width, toe_out = rng.uniform(0.08, 0.13), np.radians(rng.uniform(0.0, 12.0))
    ankles, foot_yaw, foot_pitch = _planted_feet(num_frames, heading, half_width, toe_out)
    # Feet stay put except in flight, where they follow the hop (starting and ending at rest).
    feet_fwd = np.zeros(num_frames)
    tuck = np.zeros(num_frames)
    for t_takeoff, t_land, hop in hops:
        u = (t - t_takeoff) / (t_land - t_takeoff)
        feet_fwd += hop * smootherstep(u)
        tuck += rng.uniform(0.05, 0.2) * _swing_bump(u, 0.5)  # knees pull up in flight
    ankles += feet_fwd[:, None, None] * _forward(heading)
    pelvis = curves["fwd"][:, None] * _forward(heading)
    pelvis[:, 1] = curves["y"]
    angles[:, 0, 1] = 0.5 * curves["lean"]
    root_rot = root_matrices(angles)
    # Heels rise (toes down) whenever the pelvis is higher than flat feet allow.
    rise = np.zeros((num_frames, 2))
    for f, side in enumerate(("left", "right")):
        limit = pelvis_height_limit(pelvis[:, [0, 2]], root_rot, ankles[:, f], side, slack=0.97)
        rise[:, f] = softplus(pelvis[:, 1] - limit, 0.01)
    ankles[:, :, 1] += rise + tuck[:, None]
    foot_pitch = np.radians(40.0) * np.tanh(rise / 0.06)
    for name in ("spine1", "spine2", "spine3"):
        _set(angles, name, "X", 0.5 * curves["lean"] / 3.0)
    _neck_compensation(angles, curves["lean"], np.zeros(num_frames))
    for side in ("left", "right"):
        _set(angles, f"{side}_shoulder", "X", curves["arm"])
    return _finish(angles, pelvis, ankles, foot_yaw, foot_pitch, "jump")


def squat(rng: np.random.Generator, num_frames: int, fps: float = FPS, depth: float | None = None,
          heading: float = 0.0) -> Motion:
    """Repeated squats: the pelvis lowers by `depth` m (random 0.2-0.45 if None) with the hips back, the trunk
    leaning and the arms reaching forward, then rises; feet stay planted."""
    _check_length("squat", num_frames, fps)
    return _to_motion(_squat_track(rng, num_frames, fps, depth, heading), fps)


def _squat_track(rng, num_frames, fps, depth=None, heading=0.0) -> _Track:
    t = np.arange(num_frames) / fps
    duration = t[-1] + 1.0 / fps
    stand = STANDING_PELVIS_HEIGHT - 0.01
    keys = Keys()
    now = rng.uniform(0.0, 0.4)
    keys.add(now, y=stand, back=0.0, tilt=0.0, trunk=0.0, arm=0.0)
    arms_forward = rng.uniform() < 0.7
    while now < duration:
        d = rng.uniform(0.2, 0.45) if depth is None else float(depth)
        now += rng.uniform(0.6, 1.2)
        keys.add(now, y=stand - d, back=-rng.uniform(0.25, 0.45) * d,
                 tilt=np.radians(rng.uniform(40.0, 70.0)) * d, trunk=np.radians(rng.uniform(10.0, 25.0)),
                 arm=-np.radians(rng.uniform(60.0, 85.0)) if arms_forward else -np.radians(rng.uniform(0.0, 20.0)))
        now += rng.uniform(0.1, 0.5)
        keys.add(now)
        now += rng.uniform(0.6, 1.2)
        keys.add(now, y=stand, back=0.0, tilt=0.0, trunk=0.0, arm=0.0)
        now += rng.uniform(0.1, 0.6)
        keys.add(now)
    curves = keys.sample(t)
    angles = _idle_angles(rng, num_frames, heading)
    half_width, toe_out = rng.uniform(0.1, 0.17), np.radians(rng.uniform(5.0, 20.0))
    ankles, foot_yaw, foot_pitch = _planted_feet(num_frames, heading, half_width, toe_out)
    pelvis = curves["back"][:, None] * _forward(heading)
    pelvis[:, 1] = curves["y"]
    angles[:, 0, 1] = curves["tilt"]
    for name in ("spine1", "spine2", "spine3"):
        _set(angles, name, "X", curves["trunk"] / 3.0)
    _neck_compensation(angles, curves["tilt"] + curves["trunk"], np.zeros(num_frames))
    for side in ("left", "right"):
        _set(angles, f"{side}_shoulder", "X", curves["arm"])
    return _finish(angles, pelvis, ankles, foot_yaw, foot_pitch, "squat")


def wave(rng: np.random.Generator, num_frames: int, fps: float = FPS, side: str | None = None,
         frequency: float | None = None, heading: float = 0.0) -> Motion:
    """Standing and waving one hand (`side` "left"/"right", random if None) at `frequency` Hz (random 1.5-3):
    the upper arm out to the side, the forearm up, the hand swinging side to side by flexing the elbow."""
    _check_length("wave", num_frames, fps)
    return _to_motion(_wave_track(rng, num_frames, fps, side, frequency, heading), fps)


def _wave_track(rng, num_frames, fps, side=None, frequency=None, heading=0.0) -> _Track:
    side = side or str(rng.choice(["left", "right"]))
    if side not in ("left", "right"):
        raise ValueError(f"wave: side={side!r} — expected 'left' or 'right'")
    sign = 1.0 if side == "left" else -1.0
    frequency = rng.uniform(1.5, 3.0) if frequency is None else float(frequency)
    t = np.arange(num_frames) / fps
    duration = t[-1] + 1.0 / fps
    keys = Keys()
    now = rng.uniform(0.0, 0.3)
    down = {"sx": 0.0, "sy": 0.0, "sz": -np.radians(75.0), "el": np.radians(10.0), "amp": 0.0}
    keys.add(now, **down)
    while now < duration:
        now += rng.uniform(0.4, 0.7)
        # Upper arm out to the side and a little raised, twisted so that the bent elbow points the forearm up.
        keys.add(now, sx=-np.radians(rng.uniform(80.0, 95.0)), sy=-np.radians(rng.uniform(10.0, 30.0)),
                 sz=-np.radians(rng.uniform(0.0, 20.0)), el=np.radians(rng.uniform(70.0, 90.0)), amp=0.0)
        now += 0.3
        keys.add(now, amp=np.radians(rng.uniform(20.0, 35.0)))
        now += rng.uniform(1.5, 4.0)
        keys.add(now)
        now += 0.3
        keys.add(now, amp=0.0)
        now += rng.uniform(0.4, 0.7)
        keys.add(now, **down)
        now += rng.uniform(0.3, 1.5)
        keys.add(now)
    curves = keys.sample(t)
    angles = _idle_angles(rng, num_frames, heading)
    oscillation = curves["amp"] * np.sin(2 * np.pi * frequency * t + rng.uniform(0, 2 * np.pi))
    _set(angles, f"{side}_shoulder", "X", curves["sx"])
    _set(angles, f"{side}_shoulder", "Y", sign * curves["sy"])
    _set(angles, f"{side}_shoulder", "Z", sign * curves["sz"])
    _set(angles, f"{side}_elbow", "Y", -sign * (curves["el"] + oscillation))
    _set(angles, f"{side}_wrist", "Z", 0.3 * sign * oscillation)
    _set(angles, f"{side}_collar", "Z", sign * 0.15 * (curves["sz"] + np.radians(75.0)))
    half_width, toe_out = rng.uniform(0.07, 0.12), np.radians(rng.uniform(0.0, 12.0))
    ankles, foot_yaw, foot_pitch = _planted_feet(num_frames, heading, half_width, toe_out)
    # Idle standing: a slow weight shift from foot to foot.
    shift = rng.uniform(0.005, 0.02) * np.sin(2 * np.pi * rng.uniform(0.1, 0.3) * t + rng.uniform(0, 2 * np.pi))
    pelvis = np.zeros((num_frames, 3))
    pelvis[:, 0], pelvis[:, 2] = shift * np.cos(heading), -shift * np.sin(heading)
    pelvis[:, 1] = STANDING_PELVIS_HEIGHT - rng.uniform(0.01, 0.02)
    angles[:, 0, 2] = -2.0 * shift  # hips tilt a little with the shift
    return _finish(angles, pelvis, ankles, foot_yaw, foot_pitch, "wave")


# ---- combinations --------------------------------------------------------------------------------------------

_TRACKS = {"walk": _walk_track, "run": _run_track, "jump": _jump_track, "wave": _wave_track,
           "squat": _squat_track, "turn": _turn_track}
MIN_SEGMENT_S = 1.0  # s, shortest stretch of one kind inside a combination
TRANSITION_S = 0.5   # s, cross-fade between two kinds


def _join(first: _Track, second: _Track, start: int) -> _Track:
    """`second` takes over from `first` at frame `start`, cross-fading where both exist.

    `second` is turned and moved so it starts where and how `first` is at `start`. Joint angles and pelvis height are
    blended; horizontal pelvis velocity is blended and integrated, so the root never jumps or runs backwards.
    """
    second_angles = second.angles.copy()
    yaw_shift = first.angles[start, 0, 0] - second_angles[0, 0, 0]
    second_angles[:, 0, 0] += yaw_shift
    c, s = np.cos(yaw_shift), np.sin(yaw_shift)
    rel = second.pelvis[:, [0, 2]] - second.pelvis[0, [0, 2]]
    second_xz = np.stack([c * rel[:, 0] + s * rel[:, 1], -s * rel[:, 0] + c * rel[:, 1]], axis=1)

    total = start + len(second_angles)
    overlap = len(first.angles) - start
    w = np.ones(len(second_angles))
    w[:overlap] = smootherstep((np.arange(overlap) + 1.0) / (overlap + 1.0))
    first_part = slice(start, start + overlap)

    angles = np.concatenate([first.angles[:start], second_angles])
    angles[first_part] = (1 - w[:overlap, None, None]) * first.angles[start:] + w[:overlap, None, None] * \
        second_angles[:overlap]
    pelvis = np.zeros((total, 3))
    pelvis[:start] = first.pelvis[:start]
    pelvis[start:, 1] = second.pelvis[:, 1]
    pelvis[first_part, 1] = (1 - w[:overlap]) * first.pelvis[start:, 1] + w[:overlap] * second.pelvis[:overlap, 1]
    velocity = np.diff(second_xz, axis=0)
    first_velocity = np.diff(first.pelvis[start:, [0, 2]], axis=0)
    n = min(len(first_velocity), len(velocity))
    velocity[:n] = (1 - w[1:n + 1, None]) * first_velocity[:n] + w[1:n + 1, None] * velocity[:n]
    pelvis[start:, [0, 2]] = first.pelvis[start, [0, 2]] + np.concatenate([[[0.0, 0.0]], np.cumsum(velocity, 0)])
    kind = np.concatenate([first.kind[:start], second.kind])
    kind[first_part] = np.where(w[:overlap] < 0.5, first.kind[start:], second.kind[:overlap])
    return _Track(angles, pelvis, kind)


def sample_motion(rng: np.random.Generator, num_frames: int, fps: float = FPS,
                  kinds: Sequence[str] | None = None) -> Motion:
    """A random motion: one kind, or (when there is room) two or three kinds joined by cross-fades.

    kinds: the kinds to draw from (default all of KINDS). The heading and every kind's speed, phase and amplitudes
    are random; the same generator state gives the same motion.
    """
    _check_length("sample_motion", num_frames, fps)
    kinds = tuple(KINDS if kinds is None else kinds)
    unknown = [k for k in kinds if k not in _TRACKS]
    if unknown or not kinds:
        raise ValueError(f"sample_motion: kinds={kinds} — expected a non-empty subset of {KINDS}")
    min_segment = max(1, int(round(MIN_SEGMENT_S * fps)))
    overlap = max(1, int(round(TRANSITION_S * fps)))
    max_segments = min(3, num_frames // (min_segment + overlap))
    num_segments = 1 if max_segments < 2 or rng.uniform() < 0.4 else int(rng.integers(2, max_segments + 1))
    # Split points, each segment at least `min_segment` long.
    spare = num_frames - num_segments * min_segment
    cuts = np.sort(rng.integers(0, spare + 1, size=num_segments - 1))
    lengths = np.diff(np.concatenate([[0], cuts, [spare]])) + min_segment
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    heading = rng.uniform(-np.pi, np.pi)
    track = None
    for i, (begin, length) in enumerate(zip(starts, lengths)):
        kind = str(rng.choice(kinds))
        # Each segment reaches half an overlap into its neighbours, where the cross-fade happens.
        lead = overlap // 2 if i > 0 else 0
        tail = overlap - overlap // 2 if i < num_segments - 1 else 0
        segment = _TRACKS[kind](rng, int(length + lead + tail), fps, heading=heading)
        track = segment if track is None else _join(track, segment, int(begin - lead))
    return _to_motion(track, fps)
