"""The benchmark scripts run end to end at their small sizes and write the JSON they promise."""
import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def _load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the script is being executed
    spec.loader.exec_module(module)
    return module


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def test_benchmark_model_small_runs(tmp_path):
    benchmark = _load_script("benchmark_model")
    out = tmp_path / "model.json"
    assert benchmark.main(["--small", "--repeats", "1", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["mode"] == "small"
    assert _positive(report["flops"]["train_step_gflop"]) and _positive(report["flops"]["forward_gflop"])
    assert report["flops"]["train_step_gflop"] > report["flops"]["forward_gflop"]  # backward adds ~2x forward
    assert _positive(report["matmul"]["gflops"])
    (row,) = report["variants"]
    assert row["variant"] == "baseline" and "error" not in row
    for key in ("step_s_best", "gflops", "matmul_gflops", "pct_of_matmul", "pct_of_matmul_cpu_time",
                "inference_frames_per_s", "inference_gflops"):
        assert _positive(row[key]), (key, row.get(key))


def test_resnet50_flop_count_matches_he_et_al():
    # He et al. 2016, Table 1: ResNet-50 is 3.8 x 10^9 multiply-adds at 224 px, RGB (their "FLOPs"); Keras' ResNet50
    # is that network (stride in the first 1x1 of a block). Our count is 2 FLOPs per multiply-add, no classifier.
    benchmark = _load_script("benchmark_model")
    multiply_adds = benchmark.resnet50_forward_flops(224, 3) / 2
    assert abs(multiply_adds / 3.8e9 - 1) < 0.03


def test_benchmark_pipeline_small_runs(tmp_path):
    benchmark = _load_script("benchmark_pipeline")
    out = tmp_path / "pipeline.json"
    # A process of its own, as a user runs it: the script pins TF's thread pools, which only a fresh process allows.
    subprocess.run([sys.executable, str(SCRIPTS / "benchmark_pipeline.py"), "--small", "--backends", "dis",
                    "--parallel", "1", "--data", str(tmp_path / "data"), "--out", str(out)], check=True,
                   timeout=900)
    report = json.loads(out.read_text())
    assert report["mode"] == "small" and report["size"]["frames"] == 8 and report["size"]["crop"] == 64
    assert [row["stage"] for row in report["source_stages"]][:5] == list(benchmark.SOURCE_STAGES)
    assert [row["stage"] for row in report["tf_stages"]["dis"]][:4] == list(benchmark.TF_STAGES)
    for row in report["source_stages"][:5] + report["tf_stages"]["dis"]:
        assert _positive(row["wall_ms_per_clip"]) and _positive(row["cpu_ms_per_clip"]), row
    (run,) = report["end_to_end"]
    assert run["clips"] == 2 and run["bad_samples"] == 0
    for key in ("clips_per_s", "clips_per_s_per_core", "clips_per_cpu_s"):
        assert _positive(run[key]), (key, run)
    assert _positive(report["summary"]["dis"]["clips_per_cpu_s_from_stages"])
