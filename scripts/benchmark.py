"""Run the benchmark scripts and write benchmarks/results.json and benchmarks/README.md (the table the README shows).

    python scripts/benchmark.py                 # quick: each script's small/short mode (minutes)
    python scripts/benchmark.py --full          # each script's full settings (the paper's sizes; long on a CPU)
    python scripts/benchmark.py --no_run        # only re-read the JSONs already in benchmarks/ and rewrite the table
    python scripts/benchmark.py --only body,sim # some of them

Each script runs in its own process (they set thread counts and TF options process-wide) and writes its JSON:
quick mode into benchmarks/<name>_small.json, full mode into benchmarks/<name>.json. The table reads them:
body layer (scripts/benchmark_body.py), renderer and background videos (benchmark_sim.py), the training pipeline's
clips/s per core with each stage's share of its CPU time (benchmark_pipeline.py), the training step and inference
frames/s (benchmark_model.py), optical flow (benchmark_flow.py). The machine is often shared: every JSON records the
load average, and the table repeats it.
"""
import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT_DIR = REPO / "benchmarks"


@dataclasses.dataclass(frozen=True)
class Benchmark:
    name: str
    script: str
    quick: tuple[str, ...]  # arguments of the quick mode (the script's small/short settings)
    full: tuple[str, ...] = ()


BENCHMARKS = (
    Benchmark("body", "benchmark_body.py", ("--repeats", "5")),
    Benchmark("sim", "benchmark_sim.py", ("--repeats", "1")),
    Benchmark("pipeline", "benchmark_pipeline.py", ("--small", "--backends", "dis")),
    Benchmark("model", "benchmark_model.py", ("--small",)),
    Benchmark("flow", "benchmark_flow.py", ("--pairs", "6", "--repeats", "1", "--no_graph")),
)


def json_path(name: str, full: bool, out_dir: Path = OUT_DIR) -> Path:
    return out_dir / (f"{name}.json" if full else f"{name}_small.json")


def run_benchmark(bench: Benchmark, full: bool, out_dir: Path) -> dict:
    """Run one script (its output streamed), return what happened."""
    out = json_path(bench.name, full, out_dir)
    command = [sys.executable, str(REPO / "scripts" / bench.script), *(bench.full if full else bench.quick),
               "--out", str(out)]
    print(f"\n== {bench.name}: {' '.join(command[1:])}", flush=True)
    began = time.time()
    completed = subprocess.run(command, cwd=REPO)
    return {"command": " ".join(Path(c).name if i < 2 else c for i, c in enumerate(command)),
            "returncode": completed.returncode, "seconds": round(time.time() - began, 1), "json": str(out)}


def load(path: Path) -> dict | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


# ---- table rows, one reader per script's JSON (missing keys give "n/a": a script may not have run) ----------------

def _f(value, digits: int = 1) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) else "n/a"


def body_rows(data: dict) -> list[tuple[str, str, str]]:
    rows = []
    for r in data.get("results", []):
        if r.get("mode") in ("forward", "forward+backward"):
            rows.append((f"body layer {r['mode']} ({r['model']}, {r['vertices']} vertices)",
                         f"{_f(r.get('median_ms'))} ms median ({_f(r.get('min_ms'))} best)",
                         f"batch {r.get('batch')} bodies"))
    return rows


def sim_rows(data: dict) -> list[tuple[str, str, str]]:
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
    return rows


def pipeline_stage_shares(data: dict, backend: str) -> list[tuple[str, float]]:
    """(stage, share of the CPU time per clip) over the source stages and the online TF steps of `backend`."""
    stages = [(r["stage"], r["cpu_ms_per_clip"]) for r in data.get("source_stages", [])]
    stages += [(r["stage"], r["cpu_ms_per_clip"]) for r in (data.get("tf_stages") or {}).get(backend, [])
               if not r["stage"].startswith("whole")]
    total = sum(ms for _, ms in stages)
    return [(name, ms / total) for name, ms in stages] if total > 0 else []


def pipeline_rows(data: dict) -> list[tuple[str, str, str]]:
    rows = []
    size = data.get("size", {})
    setting = (f"{size.get('frames', '?')} frames, {size.get('crop', size.get('crop_size', '?'))}-px crops, "
               f"{data.get('mode', '?')} mode")
    for backend, s in (data.get("summary") or {}).items():
        if not isinstance(s, dict):
            continue
        shares = pipeline_stage_shares(data, backend)
        top = ", ".join(f"{name} {share:.0%}" for name, share in sorted(shares, key=lambda x: -x[1]) if share >= 0.02)
        rows.append((f"training pipeline ({backend} flow)",
                     f"{_f(s.get('clips_per_cpu_s_end_to_end'), 2)} clips/s per core (CPU time); "
                     f"{_f(s.get('clips_per_s_per_core_wall'), 2)} per core wall clock",
                     f"{setting}; CPU share per stage: {top or 'n/a'}"))
    return rows


def model_rows(data: dict) -> list[tuple[str, str, str]]:
    rows = []
    size = data.get("size", {})
    setting = (f"{size.get('architecture', '?')}, {size.get('clips', '?')} clips × {size.get('pairs', '?')} pairs, "
               f"{size.get('crop', '?')}-px, "
               f"{data.get('mode', '?')} mode")
    for v in data.get("variants", []):
        if "step_s_best" not in v:
            continue
        if v.get("variant") not in ("baseline", None) and len(rows) >= 2:
            continue  # the table keeps the baseline; every variant is in the JSON
        rows.append((f"training step ({v.get('variant')})", f"{_f(v['step_s_best'], 2)} s best "
                     f"({_f(v.get('step_s_median'), 2)} median)", setting))
        if "inference_frames_per_s" in v:
            rows.append((f"inference ({v.get('variant')})", f"{_f(v['inference_frames_per_s'])} frames/s", setting))
    return rows


def flow_rows(data: dict) -> list[tuple[str, str, str]]:
    rows = []
    for r in data.get("rows", []):
        if r.get("method") == "zero_flow":
            continue
        rows.append((f"flow: {r.get('description', r.get('method'))}",
                     f"{_f(r.get('cpu_s_per_clip'), 2)} CPU s per 30-pair clip; EPE {_f(r.get('epe_all_px'), 2)} px",
                     f"{data.get('size_px', '?')}-px pairs, {data.get('pairs', '?')} pairs, one thread"))
    return rows


READERS = {"body": body_rows, "sim": sim_rows, "pipeline": pipeline_rows, "model": model_rows, "flow": flow_rows}


def pick_json(name: str, full: bool, out_dir: Path) -> Path | None:
    """The JSON this mode writes; failing that, the other mode's (so --no_run shows whatever exists)."""
    for path in (json_path(name, full, out_dir), json_path(name, not full, out_dir)):
        if path.exists():
            return path
    return None


def markdown(results: dict) -> str:
    lines = ["# Benchmarks", "",
             f"Written by `python scripts/benchmark.py{' --full' if results['mode'] == 'full' else ''}` on "
             f"{results['machine']['cpus']} logical CPUs ({results['machine']['processor']}), load average "
             f"{results['machine']['load_average_end']} at the end. The machine is shared: times are pessimistic.",
             "", "| what | result | setting | source |", "|---|---|---|---|"]
    for name, entry in results["benchmarks"].items():
        for what, value, setting in entry.get("rows", []):
            lines.append(f"| {what} | {value} | {setting} | `{Path(entry['json']).name}` |" if entry.get("json")
                         else f"| {what} | {value} | {setting} | |")
        if not entry.get("rows"):
            lines.append(f"| {name} | not measured ({entry.get('status', 'no JSON')}) | | |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="full settings (default: quick/small modes)")
    parser.add_argument("--only", default=None, help=f"comma-separated, from {', '.join(b.name for b in BENCHMARKS)}")
    parser.add_argument("--no_run", action="store_true", help="only read the existing JSONs and write the table")
    parser.add_argument("--out_dir", type=Path, default=OUT_DIR)
    args = parser.parse_args(argv)

    chosen = [b for b in BENCHMARKS if not args.only or b.name in args.only.split(",")]
    if args.only and len(chosen) != len(args.only.split(",")):
        raise SystemExit(f"--only {args.only}: expected names from {[b.name for b in BENCHMARKS]}")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    results = {"mode": "full" if args.full else "quick", "benchmarks": {}}
    failed = []
    for bench in BENCHMARKS:
        entry = {}
        if bench in chosen and not args.no_run:
            entry = run_benchmark(bench, args.full, args.out_dir)
            if entry["returncode"] != 0:
                failed.append(bench.name)
        path = pick_json(bench.name, args.full, args.out_dir)
        data = load(path) if path else None
        if data is None:
            entry["status"] = "failed" if bench.name in failed else "no JSON: not run yet"
        else:
            entry.update(json=str(path), rows=READERS[bench.name](data), data=data)
        results["benchmarks"][bench.name] = entry
    results["machine"] = {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                          "python": platform.python_version(),
                          "load_average_end": [round(v, 2) for v in os.getloadavg()]}
    (args.out_dir / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    table = markdown(results)
    (args.out_dir / "README.md").write_text(table)
    print("\n" + table)
    print(f"wrote {args.out_dir / 'results.json'} and {args.out_dir / 'README.md'}")
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
