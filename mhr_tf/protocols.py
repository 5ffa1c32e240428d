"""The 3DPW evaluation protocols: which joints, which root, which frames and how per-frame errors are pooled.

Published 3DPW numbers differ by protocol (docs/protocols.md says which anchor uses which), so every number the
evaluation reports names its protocol and pooling:
- "paper" (the HMR/HMMR family the paper compares with, paper §4 and App. A): the 14 LSP joints regressed from the
  vertices (the gendered ground-truth body vs the neutral predicted body), MPJPE after centring both on the midpoint
  of the hips, frames that are not totally occluded (>= 7 keypoints above OpenPose confidence 0.1) and have a valid
  camera pose; "we average across each individual person before finally averaging across the entire dataset".
- "official" (aymenmir1/3dpw-eval, the ECCV 2020 challenge's code): the 24 SMPL joints, centred on the pelvis joint,
  frames where `campose_valid` holds and `poses2d` is not all zero, pooled over every frame; besides MPJPE and
  PA-MPJPE it reports PCK@50 mm, AUC (0-200 mm) and the joint-angle errors MPJAE and PA-MPJAE.
Poolings (`metrics.pooled_mean`): "track" (each person-sequence's mean, then the mean over them: the paper),
"sequence" (the frames of all people of a sequence pooled, then the mean over sequences: HMMR's released evaluation,
akanazawa/human_dynamics src/evaluation/eval.py), "frame" (every frame counts once: the official code and VIBE).
"""
from __future__ import annotations

import dataclasses

from mhr_tf import metrics
from mhr_tf.body import joints as joint_sets

METRICS = ("pa_mpjpe", "mpjpe", "pve", "accel")  # every protocol; summary keys f"{metric}_mm"
METRIC_TITLES = {"pa_mpjpe": "PA-MPJPE (mm)", "mpjpe": "MPJPE (mm)", "pve": "PVE (mm)",
                 "accel": "Accel (mm/frame²)"}
# The official scope's other metrics (metrics.official_3dpw_per_frame) -> summary key, on the official code's scales:
# PCK in percent (its printout multiplies by 100), AUC as the fraction 0..1 it prints, angles in degrees.
OFFICIAL_METRICS = {"pck": "pck_pct", "auc": "auc", "mpjae": "mpjae_deg", "pa_mpjae": "pa_mpjae_deg"}
OFFICIAL_TITLES = {"pck": f"PCK@{metrics.PCK_THRESHOLD_MM:g}mm (%)", "auc": "AUC 0-200mm", "mpjae": "MPJAE (°)",
                   "pa_mpjae": "PA-MPJAE (°)"}
# The official metrics' per-frame values, scaled to their summary units.
OFFICIAL_SCALE = {"pck": 100.0, "auc": 1.0, "mpjae": 1.0, "pa_mpjae": 1.0}
POOLING_TITLES = {"track": "per person-sequence, then over them (paper)",
                  "sequence": "per sequence (its people's frames pooled), then over sequences (HMMR)",
                  "frame": "over all frames (official 3DPW, VIBE)"}


@dataclasses.dataclass(frozen=True)
class Protocol:
    name: str
    title: str
    joint_names: tuple[str, ...]  # the joints scored
    root: tuple[str, ...]         # MPJPE, PVE and acceleration centre on the mean of these joints
    pooling: str                  # metrics.POOLINGS: "track", "sequence" or "frame"
    frames: str                   # which frames count, in words
    joints_from: str = ""         # where the scored joints come from, in words

    def __post_init__(self):
        if self.pooling not in metrics.POOLINGS:
            raise ValueError(f"protocol {self.name}: pooling {self.pooling!r} is not one of {metrics.POOLINGS}")

    def describe(self) -> str:
        return (f"**{self.title}**: {len(self.joint_names)} joints ({self.joints_from}), centred on "
                f"{'+'.join(self.root)}, frames with {self.frames}, mean {POOLING_TITLES[self.pooling]}")

    def to_json(self) -> dict:
        return {"joints": len(self.joint_names), "joints_from": self.joints_from, "root": list(self.root),
                "pooling": self.pooling, "frames": self.frames}


PAPER = Protocol("paper", "paper (HMR/HMMR family)", joint_sets.LSP_14, metrics.PELVIS_HIP_MIDPOINT, "track",
                 ">= 7 keypoints with confidence > 0.1 and campose_valid",
                 "LSP-14 regressed from each body's vertices")
OFFICIAL = Protocol("official", "official 3DPW", joint_sets.SMPL_24, ("pelvis",), "frame",
                    "campose_valid and poses2d not all zero", "SMPL's 24 joints")
PROTOCOLS = (PAPER, OFFICIAL)


def configured(pooling: str | None = None, joints_from: str | None = None) -> tuple[Protocol, ...]:
    """The protocols as one evaluation runs them: `pooling` (None: each its own) for both, and `joints_from` naming
    a user's joint regressor for the paper protocol's LSP-14 joints."""
    paper, official = PAPER, OFFICIAL
    if joints_from is not None:
        paper = dataclasses.replace(paper, joints_from=joints_from)
    if pooling is not None:
        paper, official = (dataclasses.replace(p, pooling=pooling) for p in (paper, official))
    return paper, official
