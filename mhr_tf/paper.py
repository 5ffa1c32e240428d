"""The paper's published numbers, once (Doersch & Zisserman, NeurIPS 2019): PA-MPJPE in mm on the real 3DPW test set,
under the paper's protocol (§4). The README, the gin row files' headers, the ablation runner, the reports and the
tests all read this table; nothing else states a published number.
"""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Row:
    table: str                # "Table 1" | "Table 2" | "Table 3"
    label: str                # the paper's row name
    pa_mpjpe_mm: float        # published, real 3DPW test set
    run: str | None = None    # our gin file (gin/<run>.gin) for the row; None: another method, no config of ours
    channels: tuple[str, ...] | None = None  # the input groups the row uses (without the occlusion indicator)
    note: str = ""


TABLE_1 = (
    Row("Table 1", "Martinez et al. (from [35])", 157.0, note="2D keypoints lifted, single frames"),
    Row("Table 1", "RGB Only", 105.6, "rgb", ("rgb",)),
    Row("Table 1", "RGB + DANN", 103.0, "rgb_dann", ("rgb",), note="best of 5 seeds; mean 107.5"),
    Row("Table 1", "Flow Only", 100.1, "flow", ("flow",)),
    Row("Table 1", "RGB + Keypoints", 82.4, "rgb_kp", ("rgb", "heatmaps")),
    Row("Table 1", "Keypoints Only", 77.6, "kp", ("heatmaps",)),
    Row("Table 1", "Flow + Keypoints", 74.7, "full", ("flow", "heatmaps"), note="the full model"),
    Row("Table 1", "HMR (from [6])", 77.2, note="trained on real 3D data"),
    Row("Table 1", "Temporal HMR [35]", 80.1, note="trained on real 3D data"),
    Row("Table 1", "Temporal HMR + InstaVariety [35]", 72.4, note="trained on real 3D data"),
    Row("Table 1", "HMR + Kinetics [6]", 72.2, note="trained on real 3D data"),
)
# Table 1 caption: "For DANN, we ran 5 seeds with varying weight for the DANN loss, and report the best seed with the
# mean in parentheses."
DANN_MEAN_MM = 107.5
TABLE_2 = (
    Row("Table 2", "Full Model", 74.7, "full"),
    Row("Table 2", "No occlusions", 77.2, "no_occlusion"),
    Row("Table 2", "No background tracking, no occlusions", 80.3, "no_tracking_no_occlusion"),
    Row("Table 2", "Static background, no occlusions", 88.9, "static_bg_no_occlusion"),
)
TABLE_3 = (
    Row("Table 3", "Clip length 8", 79.0, "clip8", note="batch size 6"),
    Row("Table 3", "Clip length 16", 77.8, "clip16", note="batch size 6"),
    Row("Table 3", "Clip length 31", 74.7, "full", note="batch size 3"),
    Row("Table 3", "Clip length 56", 76.2, "clip56", note="batch size 2"),
)
ROWS = TABLE_1 + TABLE_2 + TABLE_3
TABLE_TITLES = {"Table 1": "Table 1: input channels", "Table 2": "Table 2: dataset construction",
                "Table 3": "Table 3: clip length"}


def rows_of(run: str) -> list[Row]:
    """Every row whose recipe is `gin/<run>.gin` (the full model is a row of all three tables)."""
    return [row for row in ROWS if row.run == run]


def runs() -> list[str]:
    """The gin row files, once each, in table order."""
    return list(dict.fromkeys(row.run for row in ROWS if row.run is not None))


def markdown_table() -> str:
    """The gin row files beside the paper's published numbers (the README's table, generated from here)."""
    lines = ["| gin file | paper row | paper PA-MPJPE (mm, real 3DPW) |", "|---|---|---|"]
    for run in runs():
        rows = rows_of(run)
        names = "; ".join(f"{row.table}, {row.label}" + (f" ({row.note})" if row.note else "") for row in rows)
        values = " / ".join(f"{row.pa_mpjpe_mm:.1f}" for row in rows)
        lines.append(f"| `gin/{run}.gin` | {names} | {values} |")
    return "\n".join(lines)
