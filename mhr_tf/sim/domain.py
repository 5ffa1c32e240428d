"""The domain of the simulator's 3DPW-format evaluation sets, as named knobs: one strength per real cause of the gap
between synthetic training data (SURREAL) and real test video (3DPW). `DOMAIN_SHIFT.md` beside this module says
which real causes the knobs model, how, and which they leave out.

Every knob is a strength in [0, 1]; 0 renders that aspect exactly as the training data is rendered. Knobs are
independent: each draws from its own random stream of the sequence (`threedpw_set`), so changing one knob changes
only what it acts on, and the rest of a sequence of the same `(seed, index)` stays bit for bit the same.

`IN_DOMAIN` (every knob at 0) renders the evaluation set like the training clips as the training pipeline composites
them (paper §3.1, App. A), minus the pipeline's own random augmentations. Precisely:
- one person: random gender, betas ~ N(0, 1) clipped to +-2.5, a `motion.sample_motion` motion (as `surreal_set`);
- SURREAL's camera (`cameras.SURREAL_FRAMING`): a 320x240 frame, f = 600 px, principal point (160, 120); a level
  camera at SURREAL's distance (camDist ~ N(8, 1) m clipped to 5.5-10.5 m, minus 1 m) from the middle of the pelvis
  path, aimed at it with SURREAL's jitter and backed off until the pelvis stays within (140, 95) px of the centre
  (`cameras.fixed_camera`, the placement `surreal_set.surreal_camera` uses);
- the training clothing (`render.clothing_colors(style="train")`) and training lighting (`render.random_lighting`
  "train": from above, on the camera's side, soft ambient), the light fixed in the world;
- composited over one of the simulator's moving background videos at the frame size
  (`backgrounds.make_background_video`: a random camera kind among pan, zoom, shake, pan-zoom and static, with moving
  objects), the camera turning so that the person follows the background's content at the image centre, relative to
  the centre frame. That is the pipeline's `follow_camera` with tracking on (App. A: the person translated by the
  integrated median flow, centre frame as reference), made here by a true camera rotation so that the 3DPW-format
  ground truth stays exact (the pipeline moves the person by whole pixels; a background's zoom moves neither);
- no passing objects, no colour cast, no blur, no sensor noise; JPEG quality 95 (3DPW's layout stores JPEGs; 95 is
  the writer's default, the least lossy setting we write); every camera pose valid;
- `poses2d`: the exact projections of the COCO-18 body points (`detections.coco_keypoints`) at confidence 1 on the
  keypoints the training-time visibility rules of App. B (`mhr_tf.data.keypoints.keypoint_visibility`) show: the
  rounded pixel inside the frame, and the point less than 0.20 m (`detections.JOINT_HIDDEN_BEHIND_M`) behind the
  rendered depth along its own ray; all zero elsewhere (rules 2 and 3, SLIC occluders and total occlusions, have
  nothing to hide). App. B's random hiding and unhiding (rules 5 and 6), the SLIC occluders and the total occlusions
  are training-time augmentations, not rendering, and are not baked into the set.

`SHIFTED` is the shifted-domain set as the simulator wrote it before it had knobs; each value says why.
"""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Domain:
    """Strengths in [0, 1] of the sim2real causes the evaluation set models; 0 renders like the training data."""
    # Clothing textures and their statistics: the share of people dressed in the shifted styles (neon and pastel
    # palettes; checks, dots, camouflage, diagonal stripes, gradients; one-piece suits) instead of the training ones.
    clothing: float = 0.0
    # Lighting: how far the light's ranges move from the training ones (elevation 10-70 deg, azimuth within 80 deg
    # of the camera axis, ambient 0.3-0.6) towards outdoor daylight (-20-80 deg, any azimuth, ambient 0.12-0.35).
    lighting: float = 0.0
    # Image format and distance: the share of sequences filmed as a phone's portrait video (270x480, f = 490 px,
    # 2.5-4.5 m away) instead of SURREAL's 320x240 frame at SURREAL's distance.
    framing: float = 0.0
    # Camera and background motion: the share of sequences filmed by an operator who walks along with the people and
    # aims at them with a lag (the background turning with the camera) instead of the training composites' camera
    # motion (a background video's pan, zoom or shake, which the person follows).
    hand_held: float = 0.0
    # Camera shake: the scale of a hand-held operator's rotation jitter (std 0.15-0.8 deg per axis at 1) and step
    # bob (5-20 mm at 1). Acts on hand-held sequences only.
    camera_shake: float = 0.0
    # Several people: the probability that a second person walks beside the first (both rendered, both tracked).
    people: float = 0.0
    # Occlusion by objects: the probability that one or two objects pass in front of the people.
    occluders: float = 0.0
    # Colour casts: the scale of a white-balance gain (0.85-1.15 per channel at 1) and gamma (0.8-1.25 at 1).
    colour_cast: float = 0.0
    # Blur: the scale of the defocus blur (sigma 0.3-1.2 px at 1) and of the shutter time that smears the camera's
    # image motion (half the frame interval at 1).
    blur: float = 0.0
    # Sensor noise: the scale of its standard deviation (2-7 grey levels at 1).
    noise: float = 0.0
    # Compression: how far the JPEG quality moves from 95 towards a phone video's frames (70-92 at 1).
    compression: float = 0.0
    # Detector noise in `poses2d`: the scale of a 2D detector's errors (jitter, missed keypoints, guessed hidden
    # ones, outliers, left/right swaps, frames with too few keypoints dropped) and of the spread of its confidences
    # below 1, and how strictly face keypoints need a clear line of sight; 0 gives exact projections at confidence 1.
    detector_noise: float = 0.0
    # Ground-truth camera errors: the probability that a run of frames has a camera pose that is off by a few
    # degrees and flagged `campose_valid` 0, as 3DPW flags such frames.
    campose_errors: float = 0.0

    def __post_init__(self):
        bad = {name: value for name, value in self.knobs().items()
               if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0}
        if bad:
            raise ValueError(f"Domain: knobs {bad} — expected numbers in [0, 1]")

    def knobs(self) -> dict[str, float]:
        """Every knob's value, by name (what a set record stores)."""
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}

    def replace(self, **knobs: float) -> Domain:
        """This domain with some knobs changed; unknown names are an error that lists the knobs."""
        unknown = sorted(set(knobs) - set(KNOBS))
        if unknown:
            raise ValueError(f"Domain: unknown knobs {unknown} — expected some of {list(KNOBS)}")
        return dataclasses.replace(self, **{name: float(value) for name, value in knobs.items()})


KNOBS = tuple(field.name for field in dataclasses.fields(Domain))

IN_DOMAIN = Domain()

# Today's shifted-domain set, knob by knob. Each value says whether and how often 3DPW shows the cause; what
# strength 1 means (the ranges) is set where the knob acts (render, cameras, degrade, detections) and is what the
# simulator used before it had knobs. No value was tuned against a model's results.
SHIFTED = Domain(
    # Every real person's clothes differ from SURREAL's scanned textures in palette and pattern: not a share of the
    # people but all of them are dressed in the shifted styles.
    clothing=1.0,
    # 3DPW is filmed outdoors in daylight (sun from any side, back light, deep shade): the whole shifted range.
    lighting=1.0,
    # Every 3DPW sequence is a portrait phone video with the people a few metres away.
    framing=1.0,
    # Every 3DPW sequence is filmed by an operator walking with the people.
    hand_held=1.0,
    # Every hand-held sequence shakes and bobs with the operator's steps.
    camera_shake=1.0,
    # A minority of 3DPW's sequences track two people (pairs walking, dancing, shaking hands), most track one; about
    # a third, as before.
    people=0.35,
    # Streets and courtyards: passers-by, poles and vehicles cross in front of the people in many sequences, not in
    # all; 0.6, as before.
    occluders=0.6,
    # Every phone video has its automatic white balance and tone curve.
    colour_cast=1.0,
    # Every phone video at walking pace has some defocus and motion blur.
    blur=1.0,
    # Every frame of a small phone sensor is noisy.
    noise=1.0,
    # 3DPW's images are JPEGs of compressed phone video, all of them.
    compression=1.0,
    # 3DPW's `poses2d` are OpenPose's detections, on every frame.
    detector_noise=1.0,
    # 3DPW flags frames whose camera pose does not match the image in some sequences; about a third of ours have a
    # run of them, as before.
    campose_errors=0.3,
)

DOMAINS = {"in": IN_DOMAIN, "shifted": SHIFTED}


def named(name: str | None, knob_settings=()) -> Domain:
    """The domain called `name` ("in" or "shifted"; None: shifted) with knobs set from "NAME=VALUE" texts (a
    command line's `--knob`); a malformed setting or an unknown knob is a ValueError naming it."""
    knobs = {}
    for text in knob_settings:
        key, _, value = text.partition("=")
        try:
            knobs[key.strip()] = float(value)
        except ValueError:
            raise ValueError(f"--knob {text!r}: expected NAME=VALUE, VALUE a number in [0, 1]") from None
    return DOMAINS[name or "shifted"].replace(**knobs)


def domain_from_record(record: dict | None) -> Domain | None:
    """The domain a set record (`sets.read_set_record`) stores, or None when it stores none."""
    knobs = (record or {}).get("domain")
    return None if knobs is None else Domain(**knobs)
