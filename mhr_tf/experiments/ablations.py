"""The paper's ablations (Tables 1-3) as one resumable run: train and evaluate every row that has a gin file.

    mhr_tf.paper's rows (label, table, published PA-MPJPE, gin/<run>.gin)
        ─► per run, once (rows with one recipe share it: the full model is a row of all three tables):
           gin (the row's file; demo size: + gin/demo.gin's bindings, clip length scaled)
           ─► the background windows for its clip length ─► loop.train ─► evaluate.run on the test split
           ─► <out>/<run>/result.json
        ─► the mean-pose baseline on the same split ─► <out>/ablations.md, ablations.json, ablations.png

Presets: "demo" sizes every row like gin/demo.gin (tiny trunk, small crops, few steps) on the simulator's data, a
demonstration of the machinery that cannot rank the rows; "paper" trains every row's file as it is on the user's
SURREAL, background and 3DPW folders. A run whose result.json was made with the same settings is skipped; an
interrupted run resumes from its last checkpoint.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import math
import time
from pathlib import Path

from mhr_tf import paper
from mhr_tf.data import background_windows

PRESETS = ("demo", "paper")
RESULT_FILE = "result.json"
RESULT_VERSION = 2
DEMO_GIN = "gin/demo.gin"
DEMO_STEPS = 150
# Demo size: clip lengths scaled so the full model's 31 frames become demo.gin's 8 (Table 3's 8/16/31/56 become
# 3/4/8/14; the shortest clip with a flow pair and a neighbour is 3 frames).
FULL_FRAMES = 31
DEMO_MIN_FRAMES = 3
# The row's own knobs (Table 3 varies them together): demo size keeps the row's values of these.
ROW_KNOBS = ("Preprocessing.num_frames", "train.batch_size")
PAPER_LABEL = "paper, real 3DPW"
# The background windows' camera motion: App. A's TV-L1 for the paper preset; DIS for the demo preset, as `make
# demo` (the same median flow on the simulator's smooth camera paths, at a fraction of the cost).
FLOW_METHODS = {"demo": "dis", "paper": "tvl1"}


@dataclasses.dataclass(frozen=True)
class Run:
    """One recipe, gin/<name>.gin, and the paper's rows it stands for."""
    name: str
    rows: tuple[paper.Row, ...]

    @property
    def gin_file(self) -> str:
        return f"gin/{self.name}.gin"


def all_runs() -> tuple[Run, ...]:
    """Every recipe of the paper's tables, in table order (from `mhr_tf.paper`)."""
    return tuple(Run(name, tuple(paper.rows_of(name))) for name in paper.runs())


def select_runs(names=None) -> tuple[Run, ...]:
    """The runs named (gin file stems, in any order; default all), in table order."""
    runs = all_runs()
    if not names:
        return runs
    wanted = list(dict.fromkeys(n.strip() for n in names if n.strip()))
    unknown = [n for n in wanted if n not in {r.name for r in runs}]
    if unknown:
        raise ValueError(f"rows {unknown}: unknown; expected gin file names among {[r.name for r in runs]}")
    return tuple(r for r in runs if r.name in wanted)


# ---- configuration --------------------------------------------------------------------------------------------------

def demo_bindings() -> list[str]:
    """gin/demo.gin's own bindings (not its include, not the row knobs): demo size over any row file."""
    from mhr_tf import gin_config
    bindings = []
    for line in (gin_config.REPO / DEMO_GIN).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "include")) and line.split("=")[0].strip() not in ROW_KNOBS:
            bindings.append(line)
    return bindings


def demo_frames(frames: int) -> int:
    """A row's clip length at demo size: scaled so 31 frames become gin/demo.gin's."""
    return max(DEMO_MIN_FRAMES, round(frames * demo_clip_length() / FULL_FRAMES))


@functools.lru_cache(maxsize=None)
def demo_clip_length() -> int:
    return _parsed(DEMO_GIN, "Preprocessing.num_frames")


def _parsed(gin_file: str, parameter: str):
    """One parameter's value after parsing `gin_file` alone."""
    import gin

    from mhr_tf import gin_config
    from mhr_tf.training import loop  # noqa: F401  (registers train and ModelConfig, which the files bind)
    with gin.unlock_config():
        gin.clear_config()
        gin_config.parse([gin_file])
        value = gin.query_parameter(parameter)
        gin.clear_config()
    return value


def configure(run: Run, preset: str, num_steps: int | None = None, gin_params=()) -> dict:
    """Parses the run's gin file (+ demo size for the "demo" preset, + `gin_params` last) into gin's global config
    and returns the settings that identify the run (what a finished result must match to be reused)."""
    import gin

    from mhr_tf import gin_config
    from mhr_tf.data.preprocessing import Preprocessing
    from mhr_tf.training import loop
    if preset not in PRESETS:
        raise ValueError(f"preset {preset!r}: expected one of {PRESETS}")
    bindings = []
    if preset == "demo":
        frames = demo_frames(int(_parsed(run.gin_file, "Preprocessing.num_frames")))
        steps = num_steps or DEMO_STEPS
        bindings = demo_bindings() + [f"Preprocessing.num_frames = {frames}", f"train.num_steps = {steps}",
                                      f"learning_rate_schedule.decay_steps = {steps}",
                                      f"train.checkpoint_every = {max(1, steps // 3)}"]
    elif num_steps:
        bindings = [f"train.num_steps = {num_steps}"]
    with gin.unlock_config():
        gin.clear_config()
        gin_config.parse([run.gin_file], bindings + list(gin_params))
    return {"preset": preset, "num_steps": int(gin.query_parameter("train.num_steps")),
            "batch_size": int(gin.query_parameter("train.batch_size")), "gin_params": list(gin_params),
            "preprocessing": Preprocessing().to_json(), "model": loop.ModelConfig().to_json()}


def read_result(path: Path, settings: dict) -> dict | None:
    """The finished result at `path` if it was made with these settings, else None."""
    try:
        result = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return result if result.get("version") == RESULT_VERSION and result.get("settings") == settings else None


def _write_json(path: Path, content: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(content, indent=1) + "\n")
    tmp.replace(path)


# ---- one run --------------------------------------------------------------------------------------------------------

def run_row(run: Run, out: Path, roots: dict, settings: dict, *, workers: int = 1, flow_method: str = "tvl1",
            slic_downsample: int = background_windows.SLIC_DOWNSAMPLE, body_model_path=None,
            progress: bool = True) -> dict:
    """Background windows for the run's clip length, training (resuming) under the parsed gin config, evaluation
    of the newest checkpoint on the test split; writes and returns `<out>/<run>/result.json`."""
    import keras

    from mhr_tf import evaluate, gin_config
    from mhr_tf.training import loop
    model_dir = out / run.name
    num_frames = settings["preprocessing"]["num_frames"]
    failed = background_windows.preprocess_folder(roots["background"], num_frames, workers, progress=progress,
                                                  flow_method=flow_method, slic_downsample=slic_downsample)
    for video, error in failed:
        print(f"  background window cache failed, video left out: {video}: {error}")
    began = time.time()
    gin_config.call(functools.partial(loop.train, model_dir), "train", surreal_root=roots["surreal"],
                    background_root=roots["background"], threedpw_root=roots["threedpw"], progress=progress)
    trained = time.time() - began
    results, _ = evaluate.run(model_dir / f"eval_{evaluate.SPLIT}", roots["threedpw"], evaluate.SPLIT,
                              model_dir=model_dir, body_model_path=body_model_path, plots=False, progress=progress)
    keras.backend.clear_session()
    content = {"version": RESULT_VERSION, "run": run.name, "gin_file": run.gin_file, "settings": settings,
               "data": {k: str(v) for k, v in roots.items()}, "protocols": results[0].summary,
               "step": results[0].meta.get("step"), "train_seconds": trained, "total_seconds": time.time() - began}
    _write_json(model_dir / RESULT_FILE, content)
    return content


def baseline_result(out: Path, roots: dict, settings: dict, body_model_path=None) -> dict:
    """The mean-pose baseline on the same split, framed by the first run's contract (cached like a run)."""
    from mhr_tf import evaluate
    from mhr_tf.data.preprocessing import Preprocessing
    pre = Preprocessing.from_json(settings["preprocessing"])
    key = {"threedpw": str(roots["threedpw"]), "num_frames": pre.num_frames, "crop_size": pre.crop_size,
           "body_model": None if body_model_path is None else str(body_model_path)}
    path = out / "mean_pose" / RESULT_FILE
    cached = read_result(path, key)
    if cached:
        return cached
    result = evaluate.evaluate(evaluate.mean_pose_predictor(pre, body_model_path), roots["threedpw"], evaluate.SPLIT,
                               body_model_path=body_model_path)
    content = {"version": RESULT_VERSION, "run": "mean_pose", "settings": key, "protocols": result.summary}
    _write_json(path, content)
    return content


# ---- the table and the chart ----------------------------------------------------------------------------------------

def _mm(value) -> str:
    return f"{value:.1f}" if value is not None and math.isfinite(value) else "n/a"


def _rows(runs) -> list[tuple[paper.Row, Run]]:
    """Every paper row of `runs`, in the paper's table order."""
    chosen = {r.name: r for r in runs}
    return [(row, chosen[row.run]) for row in paper.ROWS if row.run in chosen]


def write_table(out: Path, runs, results: dict, baseline: dict | None, preset: str) -> Path:
    """ablations.md (our PA-MPJPE and MPJPE, paper protocol, beside the paper's published PA-MPJPE) and
    ablations.json."""
    from mhr_tf import evaluate
    protocol = evaluate.PAPER.name
    if preset == "demo":
        intro = (f"Demo preset: every row at demo size ({DEMO_GIN}'s bindings over the row's file, clip lengths "
                 f"scaled so {FULL_FRAMES} frames become {demo_clip_length()}, a few minutes of training each) on "
                 "the simulator's data, evaluated on the simulated shifted-domain test split. A demonstration of "
                 "the machinery: these numbers cannot reproduce or rank the paper's rows.")
    else:
        intro = ("Paper preset: every row's gin file at full size on the data below, evaluated on its 3DPW-format "
                 "test split.")
    lines = ["# Ablations (paper Tables 1-3)", "", intro + " The paper's numbers are its published ones on the real "
             "3DPW test set (mhr_tf/paper.py).", ""]
    rows = _rows(runs)
    for table in dict.fromkeys(row.table for row, _ in rows):
        lines += [f"## {paper.TABLE_TITLES[table]}", "",
                  f"| row | gin file | steps | ours PA-MPJPE (mm) | ours MPJPE (mm) | {PAPER_LABEL}: PA-MPJPE (mm) |",
                  "|---|---|---|---|---|---|"]
        notes = []
        for row, run in ((row, run) for row, run in rows if row.table == table):
            result = results.get(run.name)
            s = result["protocols"][protocol] if result else {}
            lines.append(f"| {row.label} | {run.gin_file} | {result['step'] if result else 'not run'} | "
                         f"{_mm(s.get('pa_mpjpe_mm'))} | {_mm(s.get('mpjpe_mm'))} | {row.pa_mpjpe_mm:.1f} |")
            if row.note:
                notes.append(f"{row.label}: {row.note} (paper).")
        lines += [""] + ([" ".join(notes), ""] if notes else [])
    if baseline:
        s = baseline["protocols"][protocol]
        lines += [f"Mean-pose baseline on the same split: PA-MPJPE {_mm(s['pa_mpjpe_mm'])} mm, MPJPE "
                  f"{_mm(s['mpjpe_mm'])} mm.", ""]
    first = next(iter(results.values()), None)
    if first:
        data = ", ".join(f"{k}: `{v}`" for k, v in first["data"].items())
        lines += [f"Ours: paper protocol ({evaluate.PAPER.title}), test split; data {data}.", ""]
    path = out / "ablations.md"
    path.write_text("\n".join(lines))
    _write_json(out / "ablations.json", {
        "preset": preset, "paper_label": PAPER_LABEL,
        "rows": [{"table": row.table, "row": row.label, "run": run.name, "gin_file": run.gin_file,
                  "paper_pa_mpjpe_mm": row.pa_mpjpe_mm,
                  "ours": results[run.name]["protocols"][protocol] if run.name in results else None}
                 for row, run in rows],
        "mean_pose": baseline["protocols"][protocol] if baseline else None})
    return path


def write_chart(out: Path, runs, results: dict, preset: str) -> Path:
    """ablations.png: per row, our PA-MPJPE beside the paper's published one."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from mhr_tf import evaluate
    rows = _rows(runs)
    ours = [results[run.name]["protocols"][evaluate.PAPER.name]["pa_mpjpe_mm"] if run.name in results else np.nan
            for _, run in rows]
    x = np.arange(len(rows))
    figure, axis = plt.subplots(figsize=(max(6.0, 0.8 * len(rows) + 2), 4.2))
    axis.bar(x - 0.2, ours, 0.4, label=f"ours ({preset} preset)", color="tab:blue")
    axis.bar(x + 0.2, [row.pa_mpjpe_mm for row, _ in rows], 0.4, label=f"{PAPER_LABEL} (published)",
             color="tab:gray")
    axis.set_xticks(x, [f"{row.table[-1]}: {row.label}" for row, _ in rows], rotation=35, ha="right", fontsize=7)
    axis.set_ylabel("PA-MPJPE (mm), paper protocol")
    axis.set_title("Ablations: paper Tables 1-3" + (" — demo size on simulated data" if preset == "demo" else ""),
                   fontsize=9)
    axis.legend(fontsize=7)
    figure.tight_layout()
    path = out / "ablations.png"
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


# ---- the whole runner -----------------------------------------------------------------------------------------------

def data_roots(preset: str, surreal_root=None, background_root=None, threedpw_root=None) -> dict[str, Path]:
    """The preset's data: the user's three folders ("paper"), or the simulator's by default ("demo")."""
    from mhr_tf.training import inputs
    roots = {"surreal": surreal_root, "background": background_root, "threedpw": threedpw_root}
    if preset == "paper":
        missing = [f"--{k}_root" for k, v in roots.items() if v is None]
        if missing:
            raise ValueError(f"--preset paper trains on your data: give {', '.join(missing)}")
    else:
        kinds = {"surreal": "surreal", "background": "backgrounds", "threedpw": "threedpw"}
        roots = {k: v or inputs.simulator_root(kinds[k]) for k, v in roots.items()}
    for name, root in roots.items():
        if not Path(root).is_dir():
            raise FileNotFoundError(f"{root}: no such {name} folder" + (
                " — run `make demo` first, it writes the simulator's data" if preset == "demo" else ""))
    return {k: Path(v) for k, v in roots.items()}


def run(preset: str, out=None, rows=None, num_steps: int | None = None, surreal_root=None, background_root=None,
        threedpw_root=None, gin_params=(), workers: int = 1, flow_method: str | None = None,
        slic_downsample: int = background_windows.SLIC_DOWNSAMPLE, body_model_path=None, progress: bool = True
        ) -> Path:
    """What `scripts/run_ablations.py` does; returns the path of ablations.md."""
    from mhr_tf import paths
    roots = data_roots(preset, surreal_root, background_root, threedpw_root)
    out = Path(out) if out else paths.home() / "ablations" / preset
    out.mkdir(parents=True, exist_ok=True)
    runs = select_runs(rows)
    results, first_settings = {}, None
    for item in runs:
        settings = configure(item, preset, num_steps, gin_params)
        first_settings = first_settings or settings
        cached = read_result(out / item.name / RESULT_FILE, settings)
        if cached:
            print(f"{item.name}: finished earlier, skipped ({out / item.name / RESULT_FILE})")
            results[item.name] = cached
            continue
        pre = settings["preprocessing"]
        print(f"{item.name}: training {item.gin_file} ({settings['num_steps']} steps, {pre['num_frames']} frames, "
              f"batch {settings['batch_size']}, {pre['crop_size']}-px crops)", flush=True)
        results[item.name] = run_row(item, out, roots, settings, workers=workers,
                                     flow_method=flow_method or FLOW_METHODS[preset], slic_downsample=slic_downsample,
                                     body_model_path=body_model_path, progress=progress)
        print(f"{item.name}: PA-MPJPE {_mm(results[item.name]['protocols']['paper']['pa_mpjpe_mm'])} mm (paper "
              f"protocol), {results[item.name]['total_seconds']:.0f} s", flush=True)
    baseline = baseline_result(out, roots, first_settings, body_model_path) if first_settings else None
    table = write_table(out, runs, results, baseline, preset)
    chart = write_chart(out, runs, results, preset)
    print(table.read_text())
    print(f"wrote {table}, {out / 'ablations.json'} and {chart}")
    return table
