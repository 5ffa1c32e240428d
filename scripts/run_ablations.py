"""The paper's ablations as one command: train and evaluate every row of Tables 1-3 (one gin file per row).

    python scripts/run_ablations.py --preset demo                  # demo size, on the simulator data of `make demo`
    python scripts/run_ablations.py --preset paper --surreal_root SURREAL/cmu --background_root kinetics/ \
        --threedpw_root 3DPW/ [--rows rgb,flow,kp] [--out runs/ablations]

--preset demo  every row at demo size on the simulator's data ($MHR_TF_HOME/sim/<kind>, as `make demo` writes it):
               the bindings of gin/demo.gin (tiny trunk, 64-px crops) over the row's file, clip lengths scaled by
               DEMO_CLIP_SCALE, --num_steps steps (default 150). A demonstration of the machinery: a few minutes of
               training per row cannot rank the rows as the paper does.
--preset paper every row at full size (the row's gin file as it is) on your SURREAL, Kinetics-style and 3DPW folders.

Each row trains into <out>/<run>/ (TensorBoard logs, checkpoints) and is evaluated on the 3DPW-format test split
(paper §4); its numbers go to <out>/<run>/result.json. Resumable row by row: a run whose result.json matches the
preset and step count is skipped, and an interrupted run resumes from its last checkpoint. Rows that are the same
recipe (Table 1 "Flow + Keypoints", Table 2 "Full Model", Table 3 "31 frames" are all gin/full.gin) share one run.
Writes <out>/ablations.md (our numbers beside the paper's published ones on real 3DPW), <out>/ablations.json and
<out>/ablations.png (a bar chart).
"""
import argparse
import dataclasses
import json
import math
import os
import re
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parent.parent
PRESETS = ("demo", "paper")
RESULT_FILE = "result.json"
RESULT_VERSION = 1
DEMO_GIN = REPO / "gin" / "demo.gin"
DEMO_STEPS = 150
# Demo size: clip lengths scaled so the full model's 31 frames become demo.gin's 8 (Table 3's 8/16/31/56 become
# 3/4/8/14; the shortest clip with a flow pair and a neighbour is 3 frames).
DEMO_CLIP_SCALE = 8 / 31
DEMO_MIN_FRAMES = 3
# The row's own knobs: demo size never overrides these (everything else demo.gin binds, it does).
ROW_KNOBS = ("train.num_frames", "train.batch_size")
PAPER_LABEL = "paper, real 3DPW"
# A row's gin file states its published number in its first line: "... : 74.7 mm PA-MPJPE on 3DPW ...".
PAPER_NUMBER = re.compile(r"([0-9]+(?:\.[0-9]+)?) mm PA-MPJPE on 3DPW")


@dataclasses.dataclass(frozen=True)
class Row:
    table: str   # "Table 1" | "Table 2" | "Table 3"
    label: str   # the paper's row name
    run: str     # the gin file (gin/<run>.gin) and run folder; rows with one recipe share it


ROWS = (
    Row("Table 1", "RGB Only", "rgb"),
    Row("Table 1", "RGB + DANN", "rgb_dann"),
    Row("Table 1", "Flow Only", "flow"),
    Row("Table 1", "RGB + Keypoints", "rgb_kp"),
    Row("Table 1", "Keypoints Only", "kp"),
    Row("Table 1", "Flow + Keypoints", "full"),
    Row("Table 2", "Full Model", "full"),
    Row("Table 2", "No occlusions", "no_occlusion"),
    Row("Table 2", "No background tracking, no occlusions", "no_tracking_no_occlusion"),
    Row("Table 2", "Static background, no occlusions", "static_bg_no_occlusion"),
    Row("Table 3", "Clip length 8", "clip8"),
    Row("Table 3", "Clip length 16", "clip16"),
    Row("Table 3", "Clip length 31", "full"),
    Row("Table 3", "Clip length 56", "clip56"),
)
TABLE_TITLES = {"Table 1": "Table 1: input channels", "Table 2": "Table 2: dataset construction",
                "Table 3": "Table 3: clip length"}


def gin_file(run: str) -> Path:
    return REPO / "gin" / f"{run}.gin"


def paper_number(run: str) -> float:
    """The published PA-MPJPE (mm, real 3DPW test set) the row's gin file cites in its header."""
    path = gin_file(run)
    match = PAPER_NUMBER.search(path.read_text().split("\n", 1)[0])
    if not match:
        raise ValueError(f"{path}: first line should cite the paper's number as '<x> mm PA-MPJPE on 3DPW'")
    return float(match.group(1))


def demo_bindings() -> list[str]:
    """gin/demo.gin's own bindings (its include and the row knobs left out): demo size over any row file."""
    bindings = []
    for line in DEMO_GIN.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or line.startswith("include"):
            continue
        if line.split("=")[0].strip() not in ROW_KNOBS:
            bindings.append(line)
    return bindings


def demo_frames(frames: int) -> int:
    return max(DEMO_MIN_FRAMES, round(frames * DEMO_CLIP_SCALE))


def configure(run: str, preset: str, num_steps: int | None, gin_params=()) -> dict:
    """Parse the row's gin file (+ demo size for the demo preset, + `gin_params`); returns the settings that
    identify the run (for resuming)."""
    import gin
    from mhr_tf import train
    bindings = []
    if preset == "demo":
        with gin.unlock_config():  # a first parse only to read the row's clip length
            gin.clear_config()
            train.parse_gin([str(gin_file(run))])
        frames = demo_frames(int(gin.query_parameter("train.num_frames")))
        steps = num_steps or DEMO_STEPS
        bindings = demo_bindings() + [f"train.num_frames = {frames}", f"train.num_steps = {steps}",
                                      f"learning_rate_schedule.decay_steps = {steps}",
                                      f"train.checkpoint_every = {max(1, steps // 3)}"]
    elif num_steps:
        bindings = [f"train.num_steps = {num_steps}"]
    with gin.unlock_config():
        gin.clear_config()
        train.parse_gin([str(gin_file(run))], bindings + list(gin_params))
    return {"preset": preset, "num_steps": int(gin.query_parameter("train.num_steps")),
            "num_frames": int(gin.query_parameter("train.num_frames")),
            "batch_size": int(gin.query_parameter("train.batch_size")),
            "crop_size": int(gin.query_parameter("train.crop_size")), "gin_params": list(gin_params)}


def read_result(path: Path, settings: dict) -> dict | None:
    """The row's finished result if it was made with these settings, else None."""
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return result if result.get("version") == RESULT_VERSION and result.get("settings") == settings else None


def run_row(run: str, out: Path, roots: dict, settings: dict, progress: bool = True) -> dict:
    """Train (resuming) and evaluate one run; writes and returns its result."""
    import keras
    from mhr_tf import evaluate, train
    model_dir = out / run
    began = time.time()
    train.train(model_dir, surreal_root=roots["surreal"], background_root=roots["background"],
                threedpw_root=roots["threedpw"], progress=progress)
    trained = time.time() - began
    predictor = evaluate.checkpoint_predictor(model_dir)
    result = evaluate.evaluate(predictor, roots["threedpw"], evaluate.SPLIT, progress=progress)
    evaluate.write_report([result], model_dir / "eval_test", plots=False)
    keras.backend.clear_session()
    content = {"version": RESULT_VERSION, "run": run, "gin_file": str(gin_file(run).relative_to(REPO)),
               "settings": settings, "data": {k: str(v) for k, v in roots.items()},
               "protocols": result.summary, "step": predictor.config.step,
               "train_seconds": trained, "total_seconds": time.time() - began}
    path = model_dir / RESULT_FILE
    path.write_text(json.dumps(content, indent=1) + "\n")
    return content


def baseline_result(out: Path, roots: dict, settings: dict) -> dict:
    """The mean-pose baseline on the same split (cached like a row)."""
    from mhr_tf import evaluate
    path = out / "mean_pose" / RESULT_FILE
    key = {"threedpw": str(roots["threedpw"]), "num_frames": settings["num_frames"],
           "crop_size": settings["crop_size"]}
    cached = read_result(path, key)
    if cached:
        return cached
    result = evaluate.evaluate(evaluate.mean_pose_predictor(settings["num_frames"], settings["crop_size"]),
                               roots["threedpw"], evaluate.SPLIT)
    content = {"version": RESULT_VERSION, "run": "mean_pose", "settings": key, "protocols": result.summary}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=1) + "\n")
    return content


def _mm(value) -> str:
    return f"{value:.1f}" if value is not None and math.isfinite(value) else "n/a"


def write_table(out: Path, rows, results: dict, baseline: dict | None, preset: str) -> Path:
    """ablations.md: per table, our PA-MPJPE/MPJPE (paper protocol) beside the paper's published PA-MPJPE."""
    from mhr_tf import evaluate
    protocol = evaluate.PAPER.name
    if preset == "demo":
        intro = ("Demo preset: every row at demo size (gin/demo.gin's tiny trunk and 64-px crops, clip lengths "
                 f"scaled by {DEMO_CLIP_SCALE:.2f}, a few minutes of training each) on the simulator's data, "
                 "evaluated on the simulated shifted-domain test split. A demonstration of the machinery: these "
                 "numbers cannot reproduce or rank the paper's rows. The paper's numbers are its published ones "
                 "on the real 3DPW test set.")
    else:
        intro = ("Paper preset: every row's gin file at full size on the data below, evaluated on its 3DPW-format "
                 "test split. The paper's numbers are its published ones on the real 3DPW test set.")
    lines = ["# Ablations (paper Tables 1-3)", "", intro, ""]
    for table in dict.fromkeys(r.table for r in rows):
        lines += [f"## {TABLE_TITLES[table]}", "",
                  f"| row | gin file | steps | ours PA-MPJPE (mm) | ours MPJPE (mm) | {PAPER_LABEL}: PA-MPJPE (mm) |",
                  "|---|---|---|---|---|---|"]
        for row in (r for r in rows if r.table == table):
            result = results.get(row.run)
            s = result["protocols"][protocol] if result else {}
            lines.append(f"| {row.label} | gin/{row.run}.gin | {result['step'] if result else 'not run'} | "
                         f"{_mm(s.get('pa_mpjpe_mm'))} | {_mm(s.get('mpjpe_mm'))} | {paper_number(row.run):.1f} |")
        lines.append("")
    if baseline:
        s = baseline["protocols"][protocol]
        lines += [f"Mean-pose baseline on the same split: PA-MPJPE {_mm(s['pa_mpjpe_mm'])} mm, MPJPE "
                  f"{_mm(s['mpjpe_mm'])} mm.", ""]
    first = next(iter(results.values()), None)
    if first:
        data = ", ".join(f"{k}: `{v}`" for k, v in first["data"].items())
        lines += [f"Ours: paper protocol ({evaluate.PAPER.title}), test split of {data}.", ""]
    path = out / "ablations.md"
    path.write_text("\n".join(lines))
    (out / "ablations.json").write_text(json.dumps(
        {"preset": preset, "paper_label": PAPER_LABEL,
         "rows": [{"table": r.table, "row": r.label, "run": r.run, "paper_pa_mpjpe_mm": paper_number(r.run),
                   "ours": results[r.run]["protocols"][protocol] if r.run in results else None} for r in rows],
         "mean_pose": baseline["protocols"][protocol] if baseline else None}, indent=1) + "\n")
    return path


def write_chart(out: Path, rows, results: dict, preset: str) -> Path:
    """ablations.png: per row, our PA-MPJPE beside the paper's (published, real 3DPW)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from mhr_tf import evaluate
    labels = [f"{r.table[-1]}: {r.label}" for r in rows]
    ours = [results[r.run]["protocols"][evaluate.PAPER.name]["pa_mpjpe_mm"] if r.run in results else np.nan
            for r in rows]
    paper = [paper_number(r.run) for r in rows]
    x = np.arange(len(rows))
    figure, axis = plt.subplots(figsize=(max(6.0, 0.8 * len(rows) + 2), 4.2))
    axis.bar(x - 0.2, ours, 0.4, label=f"ours ({preset} preset)", color="tab:blue")
    axis.bar(x + 0.2, paper, 0.4, label=f"{PAPER_LABEL} (published)", color="tab:gray")
    axis.set_xticks(x, labels, rotation=35, ha="right", fontsize=7)
    axis.set_ylabel("PA-MPJPE (mm), paper protocol")
    axis.set_title("Ablations: paper Tables 1-3" + (" — demo size on simulated data" if preset == "demo" else ""),
                   fontsize=9)
    axis.legend(fontsize=7)
    figure.tight_layout()
    path = out / "ablations.png"
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def select_rows(names: str | None):
    if not names:
        return ROWS
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    known = {r.run for r in ROWS}
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise SystemExit(f"--rows: unknown {unknown}; expected some of {sorted(known)}")
    return tuple(r for r in ROWS if r.run in wanted)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=PRESETS, required=True)
    parser.add_argument("--out", type=Path, default=None, help="default: $MHR_TF_HOME/ablations/<preset>")
    parser.add_argument("--rows", default=None, help="comma-separated runs (gin file names), default: all")
    parser.add_argument("--num_steps", type=int, default=None,
                        help=f"training steps per row (demo default {DEMO_STEPS}; paper default: the gin files')")
    parser.add_argument("--surreal_root", type=Path, default=None)
    parser.add_argument("--background_root", type=Path, default=None)
    parser.add_argument("--threedpw_root", type=Path, default=None)
    parser.add_argument("--gin_param", action="append", default=[], help="extra binding for every row (last)")
    parser.add_argument("--no_progress", action="store_true")
    args = parser.parse_args(argv)

    from mhr_tf import paths, train
    roots = {"surreal": args.surreal_root, "background": args.background_root, "threedpw": args.threedpw_root}
    if args.preset == "paper":
        missing = [f"--{k}_root" for k, v in roots.items() if v is None]
        if missing:
            raise SystemExit(f"--preset paper trains on your data: give {', '.join(missing)}")
    else:
        roots = {k: v or train.simulator_root("backgrounds" if k == "background" else k) for k, v in roots.items()}
    for name, root in roots.items():
        if not Path(root).is_dir():
            raise SystemExit(f"{root}: no such {name} folder" + (" — run `make demo` first to write the simulator's "
                                                                  "data" if args.preset == "demo" else ""))
    out = args.out or paths.home() / "ablations" / args.preset
    out.mkdir(parents=True, exist_ok=True)
    rows = select_rows(args.rows)
    results, settings = {}, None
    for run in dict.fromkeys(r.run for r in rows):
        settings = configure(run, args.preset, args.num_steps, args.gin_param)
        cached = read_result(out / run / RESULT_FILE, settings)
        if cached:
            print(f"{run}: finished earlier, skipped ({out / run / RESULT_FILE})")
            results[run] = cached
            continue
        print(f"{run}: training gin/{run}.gin ({settings['num_steps']} steps, {settings['num_frames']} frames, "
              f"batch {settings['batch_size']}, {settings['crop_size']}-px crops)", flush=True)
        results[run] = run_row(run, out, roots, settings, progress=not args.no_progress)
        pa = results[run]["protocols"]["paper"]["pa_mpjpe_mm"]
        print(f"{run}: PA-MPJPE {pa:.1f} mm (paper protocol), {results[run]['total_seconds']:.0f} s")
    baseline = baseline_result(out, roots, settings) if settings else None
    table = write_table(out, rows, results, baseline, args.preset)
    chart = write_chart(out, rows, results, args.preset)
    print(table.read_text())
    print(f"wrote {table}, {out / 'ablations.json'} and {chart}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
