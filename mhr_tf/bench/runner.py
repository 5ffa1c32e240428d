"""Every benchmark, each in its own process, then `results.json` and `README.md` (the table the README shows).

Each benchmark runs `mhr_tf.bench.<name>.run(**settings)` in a fresh Python (they set thread pools, oneDNN switches
and dtype policies process-wide) and writes its JSON: quick mode (each benchmark's small/short settings, minutes)
into `<out_dir>/<name>_small.json`, full mode (the paper's sizes; long on a CPU) into `<out_dir>/<name>.json`. The
table reads those files; `no_run` only re-reads them. The machine is often shared: every JSON records the load
average, and the table repeats it.
"""
from __future__ import annotations

import dataclasses
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

# This module imports nothing heavy: a child pins its thread pools before numpy, OpenCV or TensorFlow load.
from mhr_tf.bench import pin_threads

Row = tuple[str, str, str]  # what, result, setting


def _f(value, digits: int = 1) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) else "n/a"


# ---- table rows, one reader per benchmark's JSON (a missing key gives "n/a": a benchmark may have stopped early) ---

def body_rows(data: dict) -> list[Row]:
    rows = []
    for r in data.get("results", []):
        if r.get("mode") in ("forward", "forward+backward"):
            rows.append((f"body layer {r['mode']} ({r['model']}, {r['vertices']} vertices)",
                         f"{_f(r.get('median_ms'))} ms median ({_f(r.get('min_ms'))} best)",
                         f"batch {r.get('batch')} bodies"))
    return rows


def sim_rows(data: dict) -> list[Row]:
    rows = []
    renderer = data.get("renderer") or {}
    for distance in sorted({r["distance_m"] for r in renderer.get("rows", [])}, reverse=True):
        best = max((r for r in renderer["rows"] if r["distance_m"] == distance), key=lambda r: r["frames_per_s"])
        rows.append((f"renderer, person at {distance:.0f} m", f"{_f(best['frames_per_s'])} frames/s on one core",
                     f"{renderer.get('image_hw')} px, {renderer.get('vertices')} vertices, "
                     f"{'back faces culled' if best['cull_back_faces'] else 'no culling'}; budget "
                     f"{renderer.get('budget_s_per_31_frames')} s per 31 frames: "
                     f"{'met' if best.get('within_budget') else 'missed'}"))
    bg = data.get("backgrounds")
    if bg:
        rows.append(("background videos", f"{_f(bg.get('videos_per_min'))} videos/min",
                     f"{bg.get('frames')} frames each ({_f(bg.get('frames_per_s'))} frames/s)"))
    for kind, r in (data.get("make_synthetic") or {}).items():
        rows.append((f"simulator sequences ({kind})", f"{_f(r.get('sequences_per_min_per_core'))} sequences/min "
                     "per core (CPU time)", f"{r.get('frames')} frames each"))
    return rows


def pipeline_stage_shares(run: dict) -> list[tuple[str, float]]:
    """(stage, share of the CPU time per clip) over the source's stages and the online steps (not their whole)."""
    stages = [(r["stage"], r["cpu_ms_per_clip"]) for r in run.get("source_stages", [])]
    stages += [(r["stage"], r["cpu_ms_per_clip"]) for r in run.get("tf_stages", []) if r.get("cpu_share") is not None]
    total = sum(max(ms, 0.0) for _, ms in stages)
    return [(name, max(ms, 0.0) / total) for name, ms in stages] if total > 0 else []


def pipeline_rows(data: dict) -> list[Row]:
    if "runs" not in data:
        raise ValueError("an older benchmark's layout (no 'runs'): rerun the pipeline benchmark")
    size = data.get("size", {})
    setting = f"{size.get('frames', '?')} frames, {size.get('crop', '?')}-px crops, {data.get('mode', '?')} mode"
    rows = []
    for run in data["runs"].values():
        s = run.get("summary", {})
        shares = sorted(pipeline_stage_shares(run), key=lambda x: -x[1])
        top = ", ".join(f"{name} {share:.0%}" for name, share in shares if share >= 0.02)
        goal = (f"; goal >= {_f(s['goal_clips_per_cpu_s'], 0)}: {'met' if s.get('goal_met') else 'missed'}"
                if "goal_clips_per_cpu_s" in s else "")
        placement = run.get("placement", "pipeline")
        rows.append((f"training pipeline ({run.get('source')} source, {run.get('backend')} flow in the {placement})",
                     f"{_f(s.get('clips_per_cpu_s_end_to_end'), 2)} clips/s per core (CPU time; "
                     f"{_f(s.get('cpu_s_per_clip_end_to_end'), 3)} CPU s per clip){goal}; "
                     f"{_f(s.get('clips_per_s_per_core_wall'), 2)} per core wall clock",
                     f"{setting}; CPU share per stage: {top or 'n/a'}"))
    return rows


def model_rows(data: dict) -> list[Row]:
    size = data.get("size", {})
    setting = (f"{size.get('architecture', '?')}, {size.get('clips', '?')} clips × {size.get('pairs', '?')} pairs, "
               f"{size.get('crop', '?')}-px, {data.get('mode', '?')} mode, CPU")
    rows = []
    for v in data.get("variants", []):  # the table keeps the baseline and the flow layer; every variant is in the JSON
        if v.get("variant") not in ("baseline", "flow_in_model") or "step_s_best" not in v:
            continue
        if v["variant"] == "baseline":
            rows.append(("training step (make_train_step, baseline)",
                         f"{_f(v['step_s_best'], 2)} s best ({_f(v.get('step_s_median'), 2)} median), "
                         f"{_f(v.get('step_cpu_s_best'), 2)} CPU s", setting))
            if "inference_frames_per_s" in v:
                rows.append(("inference (serving function, baseline)",
                             f"{_f(v['inference_frames_per_s'])} frames/s", setting))
            continue
        flow = (f"; the flow layer alone {_f(v.get('flow_layer_s_best'), 2)} s "
                f"({_f(v.get('flow_layer_cpu_s_best'), 2)} CPU s) for {v.get('flow_layer_pairs')} pairs"
                if "flow_layer_s_best" in v else "")
        rows.append(("training step with flow in the model (make_train_step, flow_in_model: TF TV-L1 first layer)",
                     f"{_f(v['step_s_best'], 2)} s best ({_f(v.get('step_s_median'), 2)} median), "
                     f"{_f(v.get('step_cpu_s_best'), 2)} CPU s{flow}", f"{setting}; {v.get('wire_channels')} input "
                     "channels (the pair crops)"))
        if "inference_frames_per_s" in v:
            rows.append(("inference with flow in the model (serving function)",
                         f"{_f(v['inference_frames_per_s'])} frames/s", setting))
    if data.get("variants"):
        gpus = data.get("gpus")
        rows.append(("training step on a GPU", f"not measured: {'no GPU on this machine' if not gpus else gpus}",
                     "the figures above are CPU figures; none is a GPU estimate"))
    return rows


def flow_rows(data: dict) -> list[Row]:
    rows = []
    for r in data.get("rows", []):
        if r.get("method") == "zero_flow":
            continue
        rows.append((f"flow: {r.get('description', r.get('method'))}",
                     f"{_f(r.get('cpu_s_per_clip'), 2)} CPU s per 30-pair clip; EPE {_f(r.get('epe_all_px'), 2)} px",
                     f"{data.get('size_px', '?')}-px pairs, {data.get('pairs', '?')} pairs, one thread"))
    return rows


def data_service_rows(data: dict) -> list[Row]:
    s = data.get("settings", {})
    setting = (f"{s.get('num_frames', '?')} frames, {s.get('crop_size', '?')}-px crops, "
               f"batch {s.get('batch_size', '?')}, TFDS source, tf_tvl1 flow")
    rows = []
    for name, r in data.get("runs", {}).items():
        placement, _, where = name.rpartition("/")
        rows.append((f"tf.data graph ({where.replace('_', ' ')}{', flow in the ' + placement if placement else ''})",
                     f"{_f(r.get('clips_per_s'))} clips/s; {_f(r.get('cpu_s_per_clip'), 3)} CPU s per clip "
                     f"({_f(r.get('clips_per_cpu_s'), 2)} clips/s per core, CPU time)", setting))
    for placement, sc in data.get("scaling", {}).items():
        if sc:
            rows.append((f"tf.data service scaling, flow in the {placement}",
                         f"CPU s per clip x{_f(sc['cpu_s_per_clip_ratio'], 2)} from {sc['workers'][0]} to "
                         f"{sc['workers'][1]} workers ({'linear' if sc['linear'] else 'not linear'} within "
                         f"{sc['linear_within']:.0%}); clips/s x{_f(sc['clips_per_s_ratio'], 2)}", setting))
    return rows


@dataclasses.dataclass(frozen=True)
class Benchmark:
    name: str                # mhr_tf.bench.<name>
    reader: Callable[[dict], list[Row]]
    quick: dict              # run() keyword arguments of the quick mode
    full: dict = dataclasses.field(default_factory=dict)
    one_core: bool = False   # pin BLAS/OpenMP pools to one thread (the benchmark's unit of cost)


BENCHMARKS = (
    Benchmark("body", body_rows, {"repeats": 5}),
    Benchmark("sim", sim_rows, {"repeats": 1}, one_core=True),
    Benchmark("pipeline", pipeline_rows, {"small": True}, one_core=True),
    Benchmark("model", model_rows, {"small": True, "variants": ["baseline", "flow_in_model"]}),
    Benchmark("flow", flow_rows, {"pairs": 6, "repeats": 1, "graph": False}, {"sweep": True}, one_core=True),
    Benchmark("data_service", data_service_rows, {"warmup": 1, "batches": 4},
              {"num_frames": 31, "crop": 224, "batch": 1, "warmup": 2, "batches": 12}),
)
NAMES = tuple(b.name for b in BENCHMARKS)


def json_path(name: str, full: bool, out_dir: Path) -> Path:
    return Path(out_dir) / (f"{name}.json" if full else f"{name}_small.json")


def child(name: str, settings: str) -> int:
    """Inside a benchmark's own process: `mhr_tf.bench.<name>.run(**settings)`."""
    import importlib
    bench = next(b for b in BENCHMARKS if b.name == name)
    if bench.one_core:
        pin_threads()
    importlib.import_module(f"mhr_tf.bench.{name}").run(**json.loads(settings))
    return 0


def run_benchmark(bench: Benchmark, full: bool, out_dir: Path) -> dict:
    """Runs one benchmark in a fresh process (its output streamed); returns what happened."""
    settings = {**(bench.full if full else bench.quick), "out": str(json_path(bench.name, full, out_dir))}
    code = "import sys; from mhr_tf.bench import runner; sys.exit(runner.child(sys.argv[1], sys.argv[2]))"
    call = f"mhr_tf.bench.{bench.name}.run(**{settings})"
    print(f"\n== {bench.name}: {call}", flush=True)
    began = time.time()
    completed = subprocess.run([sys.executable, "-c", code, bench.name, json.dumps(settings)])
    return {"call": call, "returncode": completed.returncode, "seconds": round(time.time() - began, 1)}


def pick_json(name: str, full: bool, out_dir: Path) -> Path | None:
    """The JSON this mode writes; failing that, the other mode's (so `no_run` shows whatever exists)."""
    for path in (json_path(name, full, out_dir), json_path(name, not full, out_dir)):
        if path.exists():
            return path
    return None


def markdown(results: dict) -> str:
    machine = results["machine"]
    lines = ["# Benchmarks", "",
             f"Written by `python scripts/benchmark.py{' --full' if results['mode'] == 'full' else ''}` on "
             f"{machine['cpus']} logical CPUs ({machine['processor']}), load average {machine['load_average_end']} "
             "at the end. The machine is shared: times are pessimistic.",
             "", "| what | result | setting | source |", "|---|---|---|---|"]
    for name, entry in results["benchmarks"].items():
        source = f"`{Path(entry['json']).name}`" if entry.get("json") else ""
        for what, value, setting in entry.get("rows", []):
            lines.append(f"| {what} | {value} | {setting} | {source} |")
        if not entry.get("rows"):
            lines.append(f"| {name} | not measured ({entry.get('status', 'no JSON')}) | | {source} |")
    lines += goal_lines(results["benchmarks"]) + stage_lines(results["benchmarks"].get("pipeline", {}).get("data"))
    return "\n".join(lines) + "\n"


def goal_lines(benchmarks: dict) -> list[str]:
    """The goals of the TF-only path (the pipeline's GOALS, the service's linear scaling): met or missed."""
    lines = []
    pipeline = (benchmarks.get("pipeline") or {}).get("data") or {}
    for name, run in pipeline.get("runs", {}).items():
        s = run.get("summary", {})
        if "goal_clips_per_cpu_s" in s:
            where = "on the accelerator (in the model)" if run.get("placement") == "model" else "in the pipeline"
            lines.append(f"- TF-only pipeline, flow {where}: {_f(s.get('clips_per_cpu_s_end_to_end'), 2)} clips/s "
                         f"per core (CPU time) against >= {_f(s['goal_clips_per_cpu_s'], 0)}: "
                         f"**{'met' if s.get('goal_met') else 'missed'}** (`{name}`, {pipeline.get('mode')} mode)")
    service = (benchmarks.get("data_service") or {}).get("data") or {}
    for placement, sc in service.get("scaling", {}).items():
        if sc:
            lines.append(f"- tf.data service, flow in the {placement}: CPU s per clip x"
                         f"{_f(sc['cpu_s_per_clip_ratio'], 2)} from {sc['workers'][0]} to {sc['workers'][1]} workers "
                         f"against within {sc['linear_within']:.0%}: **{'met' if sc['linear'] else 'missed'}** "
                         f"({service.get('settings', {}).get('num_frames')} frames, "
                         f"{service.get('settings', {}).get('crop_size')}-px crops)")
    return ["", "## Goals", ""] + lines if lines else []


def stage_lines(pipeline: dict | None) -> list[str]:
    """CPU ms per clip of every stage of the TFDS-source runs (the TF-only path), with its share."""
    runs = {name: run for name, run in ((pipeline or {}).get("runs") or {}).items() if run.get("source") == "tfds"}
    if not runs:
        return []
    stages = []
    for run in runs.values():
        for row in run.get("source_stages", []) + run.get("tf_stages", []):
            if row["stage"] not in stages:
                stages.append(row["stage"])
    lines = ["", f"## The TF-only pipeline per stage ({pipeline.get('mode')} mode: "
             f"{pipeline.get('size', {}).get('frames')} frames, {pipeline.get('size', {}).get('crop')}-px crops)", "",
             "CPU ms per clip (share of the stages' sum); `whole_tf_part` is every online step in one graph, as "
             "`make_dataset` maps them.", "", "| stage | " + " | ".join(f"`{name}`" for name in runs) + " |",
             "|---|" + "---|" * len(runs)]
    for stage in stages:
        cells = []
        for run in runs.values():
            row = next((r for r in run.get("source_stages", []) + run.get("tf_stages", []) if r["stage"] == stage),
                       None)
            share = dict(pipeline_stage_shares(run)).get(stage)
            cells.append("" if row is None else f"{_f(row['cpu_ms_per_clip'])}"
                         + (f" ({share:.0%})" if share is not None and stage != "whole_tf_part" else ""))
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    return lines


def run(out_dir, full: bool = False, only=None, no_run: bool = False) -> dict:
    """Runs the chosen benchmarks (`only`: names, default all) unless `no_run`, reads every benchmark's JSON, writes
    `results.json` and `README.md` into `out_dir`, prints the table; returns the results ("failed": the
    benchmarks whose process failed)."""
    out_dir = Path(out_dir)
    chosen = list(only or NAMES)
    unknown = [name for name in chosen if name not in NAMES]
    if unknown:
        raise ValueError(f"benchmarks {unknown}: expected names from {list(NAMES)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    results = {"mode": "full" if full else "quick", "benchmarks": {}, "failed": []}
    for bench in BENCHMARKS:
        entry = {}
        if bench.name in chosen and not no_run:
            entry = run_benchmark(bench, full, out_dir)
            if entry["returncode"] != 0:
                results["failed"].append(bench.name)
        path = pick_json(bench.name, full, out_dir)
        try:
            data = json.loads(path.read_text()) if path else None
        except (OSError, ValueError):
            data = None
        if data is None:
            entry["status"] = "failed" if bench.name in results["failed"] else "no JSON: not run yet"
        else:
            try:
                entry.update(json=str(path), rows=bench.reader(data), data=data)
            except (KeyError, TypeError, ValueError) as error:
                entry.update(json=str(path), status=f"unreadable: {error}")
        results["benchmarks"][bench.name] = entry
    results["machine"] = {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                          "python": platform.python_version(),
                          "load_average_end": [round(v, 2) for v in os.getloadavg()]}
    (out_dir / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    table = markdown(results)
    (out_dir / "README.md").write_text(table)
    print("\n" + table)
    print(f"wrote {out_dir / 'results.json'} and {out_dir / 'README.md'}")
    if results["failed"]:
        print(f"FAILED: {', '.join(results['failed'])}", file=sys.stderr)
    return results
