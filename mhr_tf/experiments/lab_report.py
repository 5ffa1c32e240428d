"""The sim2real lab's statistics and report: mean ± σ over seeds, the gap between the test sets, which of the paper's
claims the σ resolves, a bar chart with error bars and the learning curves."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

# A difference of means is a result only when it exceeds this many seed-σ (the larger of the two rows' σ).
RESOLVE_SIGMAS = 2.0
ACCEL_GOAL_MM = 30.0  # VIBE reports 28 mm/frame² on real 3DPW


def _stats(values) -> dict:
    values = np.asarray([v for v in values if np.isfinite(v)], np.float64)
    sigma = float(values.std(ddof=1)) if len(values) > 1 else float("nan")
    return {"mean": float(values.mean()) if len(values) else float("nan"), "sigma": sigma, "n": int(len(values)),
            "values": values.tolist()}


def _compare(a: dict, b: dict) -> dict:
    """`a` - `b` (mm) and whether it exceeds RESOLVE_SIGMAS seed-σ."""
    difference = a["mean"] - b["mean"]
    sigma = max(a["sigma"], b["sigma"])
    return {"difference_mm": difference, "sigma_mm": sigma, "resolved": bool(abs(difference) > RESOLVE_SIGMAS * sigma)}


def summarize(results: list[dict], mean_pose: dict, size, rows) -> dict:
    """Per row: in-domain, shifted and gap (shifted - in-domain, per seed) as mean ± σ; the claims; the curves."""
    by_run = {row.run: [r for r in results if r["run"] == row.run] for row in rows}
    table = {}
    for row in rows:
        runs = sorted(by_run[row.run], key=lambda r: r["seed"])
        score = lambda split, key="pa_mpjpe_mm": [r["scores"][split][key] for r in runs]  # noqa: E731
        table[row.run] = {
            "label": row.label, "paper_mm": row.pa_mpjpe_mm, "seeds": [r["seed"] for r in runs],
            "in_domain": _stats(score("in_domain")), "shifted": _stats(score("shifted")),
            "gap": _stats(np.subtract(score("shifted"), score("in_domain"))),
            "accel_in_domain": _stats(score("in_domain", "accel_mm")), "accel_shifted": _stats(score("shifted", "accel_mm")),
            "accel_smoothed_shifted": _stats(score("shifted", "accel_smoothed_mm")),
            "pa_mpjpe_smoothed_shifted": _stats(score("shifted", "pa_mpjpe_smoothed_mm")),
            "train_seconds": _stats([r["train_seconds"] for r in runs])}
    shifted = {run: entry["shifted"] for run, entry in table.items()}
    order = sorted(shifted, key=lambda run: shifted[run]["mean"])
    adjacent = [{"better": a, "worse": b, **_compare(shifted[b], shifted[a])} for a, b in zip(order, order[1:])]
    has = lambda *runs: all(run in table for run in runs)  # noqa: E731  (a lab limited to some rows)
    claims = [claim for claim in (
        has("rgb") and _claim("RGB is the worst input (shifted domain)",
                              [_compare(shifted["rgb"], shifted[run]) for run in shifted
                               if run not in ("rgb", "rgb_dann")]),
        has("rgb", "kp") and _claim("keypoints are clearly better than RGB (shifted domain)",
                                    [_compare(shifted["rgb"], shifted["kp"])]),
        has("full") and _claim("flow + keypoints is the best input (shifted domain)",
                               [_compare(shifted[run], shifted["full"]) for run in shifted if run != "full"]),
        has("rgb") and _claim("the motion inputs lose less than RGB when the domain shifts (gap)",
                              [_compare(table["rgb"]["gap"], table[run]["gap"]) for run in ("flow", "kp", "full")
                               if run in table]),
    ) if claim]
    accel = table["full"]["accel_shifted"]["mean"] if has("full") else float("nan")
    curves = {}
    for run in ("rgb", "full"):
        steps = sorted({int(s) for r in by_run.get(run, []) for s in r["curve"]})
        if not steps:
            continue
        curves[run] = {step: _stats([r["curve"][str(step)] if str(step) in r["curve"] else r["curve"].get(step)
                                     for r in by_run[run] if (str(step) in r["curve"] or step in r["curve"])])
                       for step in steps}
    return {"size": dataclasses.asdict(size), "table": table, "order_shifted": order, "adjacent": adjacent,
            "claims": claims, "mean_pose_mm": mean_pose, "accel_goal": {
                "full_model_accel_mm": accel, "goal_mm": ACCEL_GOAL_MM, "met": bool(accel < ACCEL_GOAL_MM)},
            "curves": curves, "resolve_sigmas": RESOLVE_SIGMAS}


def _claim(text: str, comparisons: list[dict]) -> dict:
    """A claim holds when every comparison's difference is positive and resolved; it is contradicted when one is
    resolved the other way; otherwise (some difference inside the noise) it is unresolved, whichever its sign."""
    if all(c["difference_mm"] > 0 and c["resolved"] for c in comparisons):
        verdict = "holds"
    elif any(c["difference_mm"] < 0 and c["resolved"] for c in comparisons):
        verdict = "contradicted"
    elif all(c["difference_mm"] > 0 for c in comparisons):
        verdict = "same direction, unresolved"
    else:
        verdict = "unresolved"
    return {"claim": text, "verdict": verdict, "comparisons": comparisons}


def _cell(stats: dict) -> str:
    if not np.isfinite(stats["mean"]):
        return "n/a"
    return f"{stats['mean']:.1f} ± {stats['sigma']:.1f}" if np.isfinite(stats["sigma"]) else f"{stats['mean']:.1f}"


def table_markdown(summary: dict) -> str:
    """The table of rows (mean ± σ over seeds) and the mean-pose baseline; the README shows it as generated."""
    lines = ["| row | in-domain | shifted | gap | accel shifted (mm/frame²) | paper, real 3DPW |",
             "|---|---|---|---|---|---|"]
    for run, entry in summary["table"].items():
        lines.append(f"| {entry['label']} (`gin/{run}.gin`) | {_cell(entry['in_domain'])} | {_cell(entry['shifted'])} "
                     f"| {_cell(entry['gap'])} | {_cell(entry['accel_shifted'])} | {entry['paper_mm']:.1f} |")
    mean_pose = summary["mean_pose_mm"]
    lines.append(f"| mean pose (baseline) | {mean_pose['in_domain']:.1f} | {mean_pose['shifted']:.1f} | "
                 f"{mean_pose['shifted'] - mean_pose['in_domain']:.1f} | 0 | |")
    return "\n".join(lines)


def markdown(summary: dict) -> str:
    size = summary["size"]
    lines = [
        "# Sim2real lab: the paper's Table 1 on the built-in simulator",
        "",
        "**Simulator results**, not 3DPW: PA-MPJPE (mm, paper protocol) on two simulated 3DPW-format test sets of the "
        "same people and motions, one rendered like the training data (in-domain) and one shifted by "
        "`mhr_tf.sim.domain.SHIFTED` (see `mhr_tf/sim/DOMAIN_SHIFT.md`). Mean ± σ over seeds "
        f"{size['seeds']}; gap = shifted − in-domain per seed. The paper's column is its published number on real "
        "3DPW, for orientation only.",
        "",
        table_markdown(summary), "",
    ]
    lines += [f"## What the numbers resolve (a difference counts when it exceeds {summary['resolve_sigmas']:g} seed-σ)",
              ""]
    for claim in summary["claims"]:
        details = "; ".join(f"{c['difference_mm']:+.1f} mm vs σ {c['sigma_mm']:.1f}" for c in claim["comparisons"])
        lines.append(f"- **{claim['claim']}**: {claim['verdict']} ({details})")
    lines.append("- Adjacent rows in the shifted ordering (best first): " + "; ".join(
        f"{a['better']} < {a['worse']} by {a['difference_mm']:.1f} mm ({'resolved' if a['resolved'] else 'unresolved'},"
        f" σ {a['sigma_mm']:.1f})" for a in summary["adjacent"]))
    goal = summary["accel_goal"]
    smoothed = summary["table"].get("full", {}).get("accel_smoothed_shifted", {"mean": float("nan")})
    lines += ["", f"Acceleration error of the full model (shifted, unsmoothed): {goal['full_model_accel_mm']:.1f} "
                  f"mm/frame² (goal < {goal['goal_mm']:g}: {'met' if goal['met'] else 'not met'}); with One-Euro "
                  f"smoothing, reported apart: {_cell(smoothed)}.", "",
              f"Size: {size['examples']} cached training examples from {size['surreal_sequences']} simulated clips; "
              f"T = {size['num_frames']}, {size['crop_size']}-px crops, {size['steps']} steps of batch "
              f"{size['batch_size']}, tiny ResNet + {size['units']}-unit LSTM; test sets of {size['test_sequences']} "
              f"sequences. ![bars](lab.png) ![curve](lab_curve.png)"]
    return "\n".join(lines) + "\n"


def plot(summary: dict, out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    runs = list(summary["table"])
    x = np.arange(len(runs))
    figure, axis = plt.subplots(figsize=(8, 3.6))
    for offset, split, colour in ((-0.18, "in_domain", "tab:blue"), (0.18, "shifted", "tab:orange")):
        means = [summary["table"][r][split]["mean"] for r in runs]
        sigmas = [np.nan_to_num(summary["table"][r][split]["sigma"]) for r in runs]
        axis.bar(x + offset, means, 0.36, yerr=sigmas, capsize=3, color=colour, label=split.replace("_", "-"))
    axis.axhline(summary["mean_pose_mm"]["shifted"], color="0.4", ls="--", lw=1, label="mean pose (shifted)")
    axis.set_xticks(x, [summary["table"][r]["label"] for r in runs], rotation=15, fontsize=8)
    axis.set_ylabel("PA-MPJPE (mm), simulator")
    axis.set_title("Sim2real lab (simulator results): mean ± σ over seeds", fontsize=9)
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(out / "lab.png", dpi=110)
    plt.close(figure)
    figure, axis = plt.subplots(figsize=(6, 3.4))
    for run, colour in (("rgb", "tab:red"), ("full", "tab:green")):
        curve = summary["curves"].get(run, {})
        steps = sorted(curve)
        if not steps:
            continue
        means = np.array([curve[s]["mean"] for s in steps])
        sigmas = np.nan_to_num([curve[s]["sigma"] for s in steps])
        axis.plot(steps, means, color=colour, label=summary["table"][run]["label"])
        axis.fill_between(steps, means - sigmas, means + sigmas, color=colour, alpha=0.2)
    axis.set_xlabel("training step")
    axis.set_ylabel("shifted PA-MPJPE (mm)")
    axis.set_title("Learning curves on the shifted test set (simulator)", fontsize=9)
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(out / "lab_curve.png", dpi=110)
    plt.close(figure)


def write(summary: dict, out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    (out / "lab.md").write_text(markdown(summary))
    (out / "lab.json").write_text(json.dumps(summary, indent=1, default=float) + "\n")
    plot(summary, out)
    return {"markdown": out / "lab.md", "json": out / "lab.json", "bars": out / "lab.png",
            "curve": out / "lab_curve.png"}


def summarize_sweep(results: list[dict], rgb: list[dict | None]) -> dict:
    """The DANN sweep: shifted PA-MPJPE per weight (mean ± σ over seeds), the best run and the mean over all runs (the
    paper's "best seed with the mean in parentheses"), and plain RGB's for reference."""
    shifted = lambda rs: [r["scores"]["shifted"]["pa_mpjpe_mm"] for r in rs]  # noqa: E731
    weights = sorted({r["dann_weight"] for r in results})
    per_weight = {str(w): _stats(shifted([r for r in results if r["dann_weight"] == w])) for w in weights}
    best = min(results, key=lambda r: r["scores"]["shifted"]["pa_mpjpe_mm"])
    reference = [r for r in rgb if r is not None]
    return {"per_weight": per_weight, "all": _stats(shifted(results)),
            "best": {"weight": best["dann_weight"], "seed": best["seed"],
                     "pa_mpjpe_mm": best["scores"]["shifted"]["pa_mpjpe_mm"]},
            "rgb": _stats(shifted(reference)) if reference else None}


def write_sweep(summary: dict, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    lines = ["# DANN sweep (simulator results: shifted test set, PA-MPJPE mm)", "",
             "The paper's protocol (App. B): 5 seeds, weights 0.2-5; reported as the best run with the mean over all "
             "runs in parentheses (the paper: 103.0 (107.5) on real 3DPW).", "",
             "| DANN weight | shifted, mean ± σ over seeds |", "|---|---|"]
    lines += [f"| {w} | {_cell(stats)} |" for w, stats in summary["per_weight"].items()]
    best = summary["best"]
    lines += ["", f"Best: {best['pa_mpjpe_mm']:.1f} (mean over all runs {summary['all']['mean']:.1f}); the best run is "
                  f"weight {best['weight']:g}, seed {best['seed']}."]
    if summary["rgb"]:
        lines.append(f"RGB without DANN (the lab's seeds): {_cell(summary['rgb'])}.")
    (out / "dann_sweep.md").write_text("\n".join(lines) + "\n")
    (out / "dann_sweep.json").write_text(json.dumps(summary, indent=1) + "\n")
    return out / "dann_sweep.md"

