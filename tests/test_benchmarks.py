"""Every benchmark runs at a tiny size through its script's `main` (in a process of its own where the benchmark pins
process-wide thread pools) and reports values that agree with the code it claims to measure and with themselves.
Speed is never asserted: the machine is shared."""
import importlib.util
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from mhr_tf.bench import model as model_bench
from mhr_tf.bench import pipeline as pipeline_bench
from mhr_tf.bench import runner
from mhr_tf.training.step import make_train_step

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = REPO / "scripts"
SUBPROCESS_TIMEOUT_S = 900


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run_script(name: str, *args) -> None:
    """The script as a user runs it, in its own process (it pins thread pools, which only a fresh process allows)."""
    completed = subprocess.run([sys.executable, str(SCRIPTS / f"{name}.py"), *map(str, args)], capture_output=True,
                               text=True, timeout=SUBPROCESS_TIMEOUT_S)
    assert completed.returncode == 0, completed.stderr[-3000:]


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


# ---- model -----------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def model_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("model") / "model.json"
    assert _script("benchmark_model").main(["--small", "--repeats", "1", "--out", str(out)]) == 0
    return json.loads(out.read_text())


def _direct_step(seed: int = 0):
    """A step made here with `make_train_step`, as the training loop makes it, on the benchmark's small batch."""
    size = model_bench.SMALL
    pre = size.preprocessing()
    features, labels = model_bench.random_batch(size, seed)
    strategy = tf.distribute.MirroredStrategy()
    keras.utils.set_random_seed(seed)
    with strategy.scope():
        model = size.model_config().build(pre.crop_size, pre.channels.names, num_pairs=pre.num_pairs,
                                          pretrained=False)
        optimizer = keras.optimizers.Adam(1e-4)  # gin/base.gin: learning_rate_schedule.base
    step = make_train_step(model, optimizer, strategy, global_batch=size.clips)
    before = [v.numpy().astype(np.float64) for v in model.trainable_variables]
    logged, _ = step(features, labels)
    delta = [v.numpy().astype(np.float64) - b for v, b in zip(model.trainable_variables, before)]
    return {k: float(v) for k, v in logged.items()}, delta


def test_model_benchmark_reports_the_first_step_of_make_train_step(model_report):
    (row,) = model_report["variants"]
    logged, delta = _direct_step()
    first = row["first_step"]
    assert set(first["logged"]) == set(logged)  # the loop's logged terms, PA-MPJPE included
    for name, value in logged.items():
        assert first["logged"][name] == pytest.approx(value, rel=1e-5), name
    flat = np.concatenate([np.ravel(d) for d in delta])
    assert first["trainable_weights"] == flat.size
    assert first["weight_delta_l1"] == pytest.approx(np.abs(flat).sum(), rel=1e-5)
    assert first["weights_changed_fraction"] == pytest.approx(np.mean(flat != 0), abs=1e-3)


def test_model_benchmark_step_changes_the_weights_as_make_train_step_does():
    under_test = model_bench.prepare(model_bench.VARIANTS["baseline"], model_bench.SMALL, seed=0)
    before = [v.numpy().astype(np.float64) for v in under_test.model.trainable_variables]
    under_test.step(under_test.features, under_test.labels)
    _, expected = _direct_step()
    assert len(expected) == len(before)
    for variable, start, want in zip(under_test.model.trainable_variables, before, expected):
        np.testing.assert_allclose(variable.numpy().astype(np.float64) - start, want, rtol=1e-5, atol=1e-10,
                                   err_msg=variable.path)


def test_model_benchmark_small_report_has_its_rates_and_flops(model_report):
    assert model_report["mode"] == "small" and model_report["size"]["architecture"] == "resnet_tiny"
    flops = model_report["flops"]
    assert _positive(flops["train_step_gflop"]) and _positive(flops["forward_gflop"])
    assert flops["train_step_gflop"] > flops["forward_gflop"]  # backward adds ~2x forward
    (row,) = model_report["variants"]
    assert row["variant"] == "baseline" and "error" not in row
    for key in ("step_s_best", "step_cpu_s_best", "gflops", "matmul_gflops", "pct_of_matmul",
                "pct_of_matmul_cpu_time", "inference_frames_per_s", "inference_gflops"):
        assert _positive(row[key]), (key, row.get(key))
    assert row["gflops"] == pytest.approx(flops["train_step_gflop"] / row["step_s_best"])
    size = model_report["size"]
    assert row["inference_frames_per_s"] == pytest.approx(size["clips"] * (size["pairs"] + 1) / row["inference_s_best"])


def test_model_benchmark_times_the_step_with_the_flow_layer_inside():
    """The flow_in_model variant: make_train_step on a model whose first layer computes the flow (TF TV-L1) from the
    pair crops, fed the contract's wire; its first step is the loop's (the same logged values as a step made here)."""
    variant, size = model_bench.VARIANTS["flow_in_model"], model_bench.SMALL
    row = model_bench.run_variant(variant, size, "small", warmup=0, repeats=1, infer=False, count=False)
    pre = size.preprocessing(flow_in_model=True)
    assert row["wire_channels"] == pre.wire_channels == 19 and pre.flow_in_model
    for key in ("step_s_best", "step_cpu_s_best", "flow_layer_s_best", "flow_layer_cpu_s_best"):
        assert _positive(row[key]), key
    assert row["flow_layer_pairs"] == size.clips * size.pairs
    features, labels = model_bench.random_batch(size, 0, flow_in_model=True)
    strategy = tf.distribute.MirroredStrategy()
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = size.model_config().build(pre.crop_size, pre.channels.names, num_pairs=pre.num_pairs,
                                          pretrained=False, flow=pre.flow)
        optimizer = keras.optimizers.Adam(1e-4)
    assert model.get_layer("flow").settings == pre.flow
    logged, _ = make_train_step(model, optimizer, strategy, global_batch=size.clips)(features, labels)
    for name, value in logged.items():
        assert row["first_step"]["logged"][name] == pytest.approx(float(value), rel=1e-5), name


def test_resnet50_flop_count_matches_he_et_al():
    # He et al. 2016, Table 1: ResNet-50 is 3.8 x 10^9 multiply-adds at 224 px, RGB (their "FLOPs"); Keras' ResNet50
    # is that network (stride in the first 1x1 of a block). Our count is 2 FLOPs per multiply-add, no classifier.
    multiply_adds = model_bench.resnet50_forward_flops(224, 3) / 2
    assert abs(multiply_adds / 3.8e9 - 1) < 0.03


# ---- pipeline and tf.data service -----------------------------------------------------------------------------------

@pytest.mark.slow
def test_pipeline_benchmark_reports_consistent_rates_for_both_sources_and_backends(tmp_path):
    out = tmp_path / "pipeline.json"
    _run_script("benchmark_pipeline", "--small", "--parallel", "1", "--data", tmp_path / "data", "--out", out)
    report = json.loads(out.read_text())
    assert report["mode"] == "small" and report["size"]["frames"] == 8 and report["size"]["crop"] == 64
    assert set(report["runs"]) == {"files/dis/pipeline", "files/tf_tvl1/pipeline", "files/tf_tvl1/model",
                                   "tfds/dis/pipeline", "tfds/tf_tvl1/pipeline", "tfds/tf_tvl1/model"}
    assert _positive(report["offline_background_windows"]["cpu_s_per_window"])
    for name, run in report["runs"].items():
        stages = pipeline_bench.FILE_STAGES if run["source"] == "files" else pipeline_bench.TFDS_STAGES
        assert [r["stage"] for r in run["source_stages"]] == list(stages), name
        pre = pipeline_bench.contract(pipeline_bench.SMALL, run["backend"], run["placement"])
        assert [r["stage"] for r in run["tf_stages"]] == [*pipeline_bench.tf_stages(pre), pipeline_bench.WHOLE]
        assert ("flow" in [r["stage"] for r in run["tf_stages"]]) == (run["placement"] == "pipeline"), name
        assert run["wire_channels"] == (19 if run["placement"] == "model" else 16), name  # pairs 6, or flow 3
        for row in run["source_stages"] + run["tf_stages"]:
            assert _positive(row["cpu_ms_per_clip"]) and _positive(row["wall_ms_per_clip"]), (name, row)
        assert run["python_free"] == name.startswith("tfds/tf_tvl1")
        (e2e,) = run["end_to_end"]
        assert e2e["examples_drawn"] == report["size"]["clips"] + report["size"]["warmup"]
        assert 1 <= e2e["clips"] and e2e["warmup_clips"] + e2e["clips"] <= e2e["examples_drawn"]
        assert e2e["clips_per_cpu_s"] == pytest.approx(e2e["clips"] / e2e["cpu_s"])
        assert e2e["cpu_s_per_clip"] == pytest.approx(e2e["cpu_s"] / e2e["clips"])
        assert e2e["clips_per_s_per_core"] == pytest.approx(e2e["clips"] / e2e["wall_s"] / e2e["threads"])
        assert _positive(e2e["start"]["cpu_s"]) and e2e["start"]["clips"] == e2e["warmup_clips"]
        summary = run["summary"]
        assert summary["clips_per_cpu_s_end_to_end"] == pytest.approx(e2e["clips_per_cpu_s"])
        whole = run["tf_stages"][-1]["cpu_ms_per_clip"]
        assert summary["cpu_ms_per_clip_stages"] == pytest.approx(
            sum(r["cpu_ms_per_clip"] for r in run["source_stages"]) + whole)
        assert summary["clips_per_cpu_s_from_stages"] == pytest.approx(1e3 / summary["cpu_ms_per_clip_stages"])
        goal = pipeline_bench.GOALS.get(name)
        assert summary.get("goal_clips_per_cpu_s") == goal
        if goal is not None:
            assert summary["goal_met"] == (summary["clips_per_cpu_s_end_to_end"] >= goal)


@pytest.mark.slow
def test_data_service_benchmark_runs_local_and_on_one_and_two_workers(tmp_path):
    out = tmp_path / "data_service.json"
    _run_script("benchmark_data_service", "--num_frames", 4, "--crop", 32, "--batch", 1, "--warmup", 1,
                "--batches", 2, "--out", out)
    report = json.loads(out.read_text())
    runs = report["runs"]
    assert list(runs) == [f"{placement}/{where}" for placement in ("pipeline", "model")
                          for where in ("local", "service_1_worker", "service_2_workers")]
    for placement in ("pipeline", "model"):
        flow = report["preprocessing"][placement]["flow"]
        assert (flow["backend"], flow["placement"]) == ("tf_tvl1", placement)
        assert runs[f"{placement}/local"]["cpu_s_per_clip"] == runs[f"{placement}/local"]["client_cpu_s_per_clip"]
        for where, workers in (("service_1_worker", 1), ("service_2_workers", 2)):
            run = runs[f"{placement}/{where}"]
            assert run["workers"] == workers and run["cpu_s_per_clip"] == run["worker_cpu_s_per_clip"]
        scaling = report["scaling"][placement]
        if scaling:  # the workers' CPU clock ticks every 10 ms: a tiny run may see none
            ratio = (runs[f"{placement}/service_2_workers"]["cpu_s_per_clip"]
                     / runs[f"{placement}/service_1_worker"]["cpu_s_per_clip"])
            assert scaling["cpu_s_per_clip_ratio"] == pytest.approx(ratio)
            assert scaling["linear"] == (abs(ratio - 1) <= scaling["linear_within"])
    for name, run in runs.items():
        assert run["clips"] == 2, name
        assert run["clips_per_s"] == pytest.approx(run["clips"] / run["wall_s"])
        assert run["cpu_s_per_clip"] >= 0 and _positive(run["client_cpu_s_per_clip"])


# ---- flow, body, simulator ------------------------------------------------------------------------------------------

def test_flow_benchmark_runs_the_pipeline_backends_and_beats_zero_flow(tmp_path):
    out = tmp_path / "flow.json"
    _run_script("benchmark_flow", "--pairs", 2, "--repeats", 1, "--size", 64, "--no_graph", "--out", out)
    report = json.loads(out.read_text())
    rows = {r["method"]: r for r in report["rows"]}
    assert {m for m, r in rows.items() if r["pipeline_path"]} == {"dis", "tvl1", "tf_tvl1"}
    for method in ("dis", "tvl1", "tf_tvl1"):
        assert rows[method]["epe_all_px"] < rows["zero_flow"]["epe_all_px"], method
        assert rows[method]["cpu_s_per_clip"] == pytest.approx(rows[method]["cpu_s_per_pair"] * 30)
    # compute_flow("tf_tvl1") is TVL1Flow at its defaults: the same flow, one call per clip or per pair.
    assert rows["tf_tvl1"]["epe_all_px"] == pytest.approx(rows["tf_tvl1_xla_batch1"]["epe_all_px"], rel=1e-4)


def test_body_benchmark_times_both_models_in_every_mode(tmp_path):
    out = tmp_path / "body.json"
    assert _script("benchmark_body").main(["--batch", "2", "--repeats", "1", "--out", str(out)]) == 0
    results = json.loads(out.read_text())["results"]
    assert {(r["model"], r["vertices"]) for r in results} == {("open (neutral)", 6338), ("random SMPL-sized", 6890)}
    assert len(results) == 10 and all(r["batch"] == 2 for r in results)
    for row in results:
        assert "error" not in row and _positive(row["min_ms"]) and row["min_ms"] <= row["median_ms"], row


def test_sim_benchmark_merges_into_its_json(tmp_path):
    out = tmp_path / "sim.json"
    out.write_text(json.dumps({"kept": 1}))
    _run_script("benchmark_sim", "--frames", 3, "--repeats", 1, "--videos", 1, "--sequences", 1, "--out", out)
    report = json.loads(out.read_text())
    assert report["kept"] == 1
    rows = report["renderer"]["rows"]
    assert [(r["distance_m"], r["cull_back_faces"]) for r in rows] == [(6.0, False), (6.0, True), (3.0, False),
                                                                      (3.0, True)]
    for row in rows:
        assert row["frames_per_s"] == pytest.approx(3 / row["seconds"], rel=0.02)
        assert row["within_budget"] == (row["seconds"] * 31 / 3 < 2.0)
        assert row["max_body_pixels"] > 0
    assert set(report["make_synthetic"]) == {"surreal", "threedpw"}


# ---- the runner -----------------------------------------------------------------------------------------------------

def test_runner_runs_one_benchmark_and_tables_every_json(tmp_path):
    # The committed full-size JSONs: the model's and the pipeline's are read.
    for name in ("model", "pipeline"):
        shutil.copy(REPO / "benchmarks" / f"{name}.json", tmp_path / f"{name}.json")
    assert _script("benchmark").main(["--only", "sim", "--out_dir", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["mode"] == "quick" and results["failed"] == []
    assert list(results["benchmarks"]) == list(runner.NAMES)
    sim = results["benchmarks"]["sim"]
    assert sim["returncode"] == 0 and Path(sim["json"]).name == "sim_small.json"
    # two distances, the background videos, two kinds of simulator sequences
    assert [what for what, _, _ in sim["rows"]] == [
        "renderer, person at 6 m", "renderer, person at 3 m", "background videos", "simulator sequences (surreal)",
        "simulator sequences (threedpw)"]
    model_rows = [what for what, _, _ in results["benchmarks"]["model"]["rows"]]
    assert model_rows[0] == "training step (make_train_step, baseline)" and model_rows[-1] == "training step on a GPU"
    pipeline_rows = [what for what, _, _ in results["benchmarks"]["pipeline"]["rows"]]
    assert "training pipeline (tfds source, tf_tvl1 flow in the model)" in pipeline_rows
    assert results["benchmarks"]["flow"]["status"] == "no JSON: not run yet"
    table = (tmp_path / "README.md").read_text()
    assert "| renderer, person at 6 m |" in table and "`sim_small.json` |" in table
    assert "| flow | not measured (no JSON: not run yet) |" in table
