"""scripts/run_ablations.py: the rows' published numbers, demo sizing, and a tiny two-row run that resumes."""
import importlib.util
import json
import re
from pathlib import Path

import cv2
import gin
import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "run_ablations.py"
# The paper's Tables 1-3 (PA-MPJPE, mm, real 3DPW test set), typed from /work/shared/paper.txt.
PAPER = {("Table 1", "RGB Only"): 105.6, ("Table 1", "RGB + DANN"): 103.0, ("Table 1", "Flow Only"): 100.1,
         ("Table 1", "RGB + Keypoints"): 82.4, ("Table 1", "Keypoints Only"): 77.6,
         ("Table 1", "Flow + Keypoints"): 74.7, ("Table 2", "Full Model"): 74.7, ("Table 2", "No occlusions"): 77.2,
         ("Table 2", "No background tracking, no occlusions"): 80.3,
         ("Table 2", "Static background, no occlusions"): 88.9, ("Table 3", "Clip length 8"): 79.0,
         ("Table 3", "Clip length 16"): 77.8, ("Table 3", "Clip length 31"): 74.7, ("Table 3", "Clip length 56"): 76.2}
# Smaller than demo size, so two rows train and evaluate in seconds.
TINY = ["build_model.lstm_units = 8", "build_model.head_units = 8", "build_model.regressor_units = 8",
        "train.crop_size = 32", "train.num_frames = 5", "train.batch_size = 2", "train.validate_every = 0",
        "train.image_summary_every = 0"]


@pytest.fixture(scope="module")
def ablations():
    spec = importlib.util.spec_from_file_location("run_ablations", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def _clear_gin():
    gin.clear_config()
    yield
    gin.clear_config()


def test_every_row_carries_the_papers_published_number(ablations):
    assert {(r.table, r.label): ablations.paper_number(r.run) for r in ablations.ROWS} == PAPER


def test_demo_clip_lengths_scale_the_full_models_31_frames_to_demo_gins_8(ablations):
    demo_frames = int(re.search(r"train\.num_frames = (\d+)", ablations.DEMO_GIN.read_text()).group(1))
    assert [ablations.demo_frames(n) for n in (8, 16, 31, 56)] == [3, 4, demo_frames, 14]


def test_demo_preset_keeps_the_rows_knobs_under_demo_size(ablations):
    settings = ablations.configure("clip16", "demo", 7)
    assert (settings["num_frames"], settings["batch_size"], settings["num_steps"]) == (4, 6, 7)
    assert gin.query_parameter("build_model.architecture") == "resnet_tiny"
    assert gin.query_parameter("learning_rate_schedule.decay_steps") == 7


def _argv(sim_data, out):
    argv = ["--preset", "demo", "--out", str(out), "--rows", "flow,kp", "--num_steps", "2", "--no_progress",
            "--surreal_root", str(sim_data["surreal"]), "--background_root", str(sim_data["backgrounds"]),
            "--threedpw_root", str(sim_data["threedpw"])]
    return argv + [x for binding in TINY for x in ("--gin_param", binding)]


def test_two_rows_train_evaluate_tabulate_and_resume(ablations, sim_data, tmp_path, monkeypatch, capsys):
    out = tmp_path / "ablations"
    assert ablations.main(_argv(sim_data, out)) == 0
    results = {run: json.loads((out / run / "result.json").read_text()) for run in ("flow", "kp")}
    table = (out / "ablations.md").read_text()
    for run, label, paper in (("flow", "Flow Only", 100.1), ("kp", "Keypoints Only", 77.6)):
        assert results[run]["step"] == 2
        ours = results[run]["protocols"]["paper"]["pa_mpjpe_mm"]
        assert np.isfinite(ours) and ours > 0
        line = next(x for x in table.splitlines() if x.startswith(f"| {label} |"))
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[1:] == [f"gin/{run}.gin", "2", f"{ours:.1f}",
                             f"{results[run]['protocols']['paper']['mpjpe_mm']:.1f}", f"{paper:.1f}"]
    assert "paper, real 3DPW" in table and "Table 2" not in table
    summary = json.loads((out / "ablations.json").read_text())
    assert [r["run"] for r in summary["rows"]] == ["flow", "kp"]
    chart = cv2.imread(str(out / "ablations.png"))
    assert chart is not None and chart.shape[0] > 100

    # A second run skips both finished rows; a row whose result is gone is the only one run again.
    trained = []
    monkeypatch.setattr(ablations, "run_row", lambda run, *a, **k: trained.append(run) or results[run])
    assert ablations.main(_argv(sim_data, out)) == 0
    assert trained == []
    assert capsys.readouterr().out.count("finished earlier, skipped") == 2
    (out / "kp" / "result.json").unlink()
    assert ablations.main(_argv(sim_data, out)) == 0
    assert trained == ["kp"]
