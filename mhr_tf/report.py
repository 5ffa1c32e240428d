"""What a 3DPW evaluation writes: the results table (every number with its protocol and pooling), the paper's Table 1
beside ours, per person-sequence error plots, `results.json`, and TensorBoard summaries.

    mhr_tf.evaluate (predict, score) ─► EvaluationResult ─► write_report: results.md, results.json, plots/*.png
                                                          └► write_summaries: TensorBoard scalars and text
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from mhr_tf import paper
from mhr_tf.protocols import (METRIC_TITLES, METRICS, OFFICIAL, OFFICIAL_METRICS, OFFICIAL_TITLES, PAPER,
                              POOLING_TITLES, PROTOCOLS, Protocol)


@dataclasses.dataclass
class EvaluationResult:
    name: str                                # the predictor
    summary: dict[str, dict]                 # protocol name -> evaluate.aggregate()
    tracks: list[dict]                       # per person-sequence: sequence, person, gender, frames, per protocol
    curves: list[dict] = dataclasses.field(default_factory=list, repr=False)  # per-frame errors for the plots
    meta: dict = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict:
        return {"predictor": self.name, **self.meta, "protocols": self.summary, "per_track": self.tracks}

    def protocols(self) -> tuple[Protocol, ...]:
        """The protocols as this evaluation ran them (pooling, joint source), from `meta["protocol_settings"]`."""
        settings = self.meta.get("protocol_settings", {})
        return tuple(dataclasses.replace(p, **{k: v for k, v in settings.get(p.name, {}).items()
                                               if k in ("pooling", "joints_from")}) for p in PROTOCOLS)


def _number(value, digits: int = 1) -> str:
    return f"{value:.{digits}f}" if value is not None and np.isfinite(value) else "n/a"


def markdown_table(results: list[EvaluationResult]) -> str:
    """One row per predictor and protocol, with the pooling each row's numbers use. The official scope's PCK, AUC,
    MPJAE and PA-MPJAE exist for the official protocol only ("—" on the paper's rows)."""
    header = ["predictor", "protocol", "pooling", *METRIC_TITLES.values(), *OFFICIAL_TITLES.values(), "frames",
              "person-sequences", "sequences"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for result in results:
        for protocol in result.protocols():
            s = result.summary[protocol.name]
            extra = [_number(s.get(key), 3 if name == "auc" else 1) if protocol.name == OFFICIAL.name else "—"
                     for name, key in OFFICIAL_METRICS.items()]
            cells = [result.name, protocol.title, protocol.pooling, *(_number(s[f"{m}_mm"]) for m in METRICS),
                     *extra, str(s["frames"]), str(s["tracks"]), str(s["sequences"])]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def comparison_table(results: list[EvaluationResult]) -> str:
    """Our paper-protocol PA-MPJPE beside the paper's Table 1 (published numbers on real 3DPW)."""
    lines = ["| method | PA-MPJPE (mm) | source |", "|---|---|---|"]
    for result in results:
        s = result.summary[PAPER.name]
        pooling = result.protocols()[0].pooling
        lines.append(f"| ours: {result.name} | {_number(s['pa_mpjpe_mm'])} | this run: {result.meta.get('data')} "
                     f"({result.meta.get('split')}, {s['frames']} frames, {s['tracks']} person-sequences, "
                     f"{pooling} pooling) |")
    ours = {tuple(c for c in r.meta.get("channels", ()) if c != "occlusion") for r in results}
    for row in paper.TABLE_1:
        mark = " (our configuration's row)" if row.channels is not None and row.channels in ours else ""
        note = f" ({row.note})" if row.note else ""
        lines.append(f"| paper: {row.label}{mark}{note} | {row.pa_mpjpe_mm:.1f} | published, paper Table 1, real "
                     f"3DPW test set, paper protocol (track pooling) |")
    return "\n".join(lines)


def protocol_notes(result: EvaluationResult) -> str:
    """The protocols and the data scope of `result`, in words."""
    text = "Protocols: " + "; ".join(p.describe() for p in result.protocols()) + "."
    text += "\nPoolings: " + "; ".join(f"{name}: mean {title}" for name, title in POOLING_TITLES.items()) + "."
    if result.meta.get("split"):
        text += f"\nData: {result.meta.get('data')}, split {result.meta['split']}"
        if result.meta.get("splits"):
            text += f" ({' + '.join(result.meta['splits'])})"
        text += "."
    if result.meta.get("track_count_note"):
        text += f"\nNote: {result.meta['track_count_note']}."
    if result.meta.get("window_rule"):
        text += f"\nWindows: {result.meta['window_rule']}."
    return text


def plot_track(curve: dict, path, others: list[dict] = (), names: list[str] = ()) -> Path:
    """PNG of one person-sequence's per-frame errors (paper protocol) over time; unscored frames left out."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    errors = curve["errors"][PAPER.name]
    frames = np.arange(len(errors.mask))
    figure, axis = plt.subplots(figsize=(9, 3.2))
    for start, stop in _runs(curve["occluded"]):
        axis.axvspan(start - 0.5, stop - 0.5, color="0.85", lw=0)
    for start, stop in _runs(~curve["campose_valid"]):
        axis.axvspan(start - 0.5, stop - 0.5, color="#f4cccc", lw=0)
    axis.plot(frames, np.where(errors.mask, errors.mpjpe, np.nan), color="tab:blue", lw=1, ls="--",
              label=f"MPJPE ({names[0] if names else 'model'})")
    for other, name, colour in zip([curve, *others], names or ["model"], ["tab:blue", "tab:orange", "tab:green"]):
        e = other["errors"][PAPER.name]
        axis.plot(frames, np.where(e.mask, e.pa_mpjpe, np.nan), color=colour, lw=1.3, label=f"PA-MPJPE ({name})")
    axis.set_xlabel("frame")
    axis.set_ylabel("error (mm)")
    axis.set_title(f"{curve['sequence']} person {curve['person']} — paper protocol; grey: total occlusion "
                   f"(< 7 keypoints), red: invalid camera pose (not scored)", fontsize=8)
    axis.legend(fontsize=7, loc="upper right")
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of every run of True."""
    flags = np.concatenate([[False], np.asarray(flags, bool), [False]])
    edges = np.flatnonzero(np.diff(flags.astype(np.int8)))
    return list(zip(edges[::2], edges[1::2]))


def write_report(results: list[EvaluationResult], out_dir, compare: bool = False, plots: bool = True) -> dict:
    """`results.md` (the table, the protocols in words, and with `compare` the paper's Table 1 beside ours),
    `results.json`, and one PNG per person-sequence under `plots/`. Returns the paths written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    text = "# 3DPW evaluation\n\n" + markdown_table(results) + "\n"
    if results:
        text += "\n" + protocol_notes(results[0]) + "\n"
    if compare:
        text += ("\n## Beside the paper's Table 1\n\nThe paper's rows are its published numbers on the real 3DPW "
                 "test set; ours come from the data named in the row.\n\n" + comparison_table(results) + "\n")
    written = {"markdown": out_dir / "results.md", "json": out_dir / "results.json", "plots": []}
    written["markdown"].write_text(text)
    written["json"].write_text(json.dumps([r.to_json() for r in results], indent=2, default=_json_default) + "\n")
    if plots and results:
        for i, curve in enumerate(results[0].curves):
            others = [r.curves[i] for r in results[1:] if len(r.curves) > i]
            name = f"{curve['sequence']}_person{curve['person']}.png"
            written["plots"].append(plot_track(curve, out_dir / "plots" / name, others, [r.name for r in results]))
    return written


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def write_summaries(result: EvaluationResult, log_dir, step: int) -> Path:
    """TensorBoard scalars `<protocol>/<metric>` and the frame counts, and the table as text, at `step`.

    Written with `tf.summary.write` and TensorBoard's plugin names ("scalars", "text"), which is what
    `tf.summary.scalar`/`text` write, but without needing the tensorboard package installed.
    """
    import tensorflow as tf
    from tensorflow.core.framework import summary_pb2

    def metadata(plugin: str) -> bytes:
        return summary_pb2.SummaryMetadata(
            plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name=plugin)).SerializeToString()
    log_dir = Path(log_dir)
    writer = tf.summary.create_file_writer(str(log_dir))
    with writer.as_default():
        for protocol, summary in result.summary.items():
            for key, value in summary.items():
                if np.isfinite(value):
                    tf.summary.write(f"{protocol}/{key}", tf.constant(value, tf.float32), step=step,
                                     metadata=metadata("scalars"))
        tf.summary.write("evaluation", tf.constant(markdown_table([result])), step=step, metadata=metadata("text"))
    writer.flush()
    writer.close()
    return log_dir
