"""mhr_tf.experiments.ablations (scripts/run_ablations.py): the rows and their published numbers, demo sizing, and a
tiny two-row run that trains, evaluates, tabulates and resumes."""
import importlib.util
import json
from pathlib import Path

import cv2
import gin
import numpy as np
import pytest

from mhr_tf import gin_config, paper
from mhr_tf.experiments import ablations

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "run_ablations.py"
# The paper's Tables 1-3 (PA-MPJPE, mm, real 3DPW test set), typed from /work/shared/paper.txt: the rows we have a
# gin file for.
PUBLISHED = {("Table 1", "RGB Only"): 105.6, ("Table 1", "RGB + DANN"): 103.0, ("Table 1", "Flow Only"): 100.1,
             ("Table 1", "RGB + Keypoints"): 82.4, ("Table 1", "Keypoints Only"): 77.6,
             ("Table 1", "Flow + Keypoints"): 74.7, ("Table 2", "Full Model"): 74.7,
             ("Table 2", "No occlusions"): 77.2, ("Table 2", "No background tracking, no occlusions"): 80.3,
             ("Table 2", "Static background, no occlusions"): 88.9, ("Table 3", "Clip length 8"): 79.0,
             ("Table 3", "Clip length 16"): 77.8, ("Table 3", "Clip length 31"): 74.7,
             ("Table 3", "Clip length 56"): 76.2}
# Smaller than demo size, so two rows train and evaluate in seconds; SLIC on every 2nd pixel as tests/helpers.py.
TINY = ["ModelConfig.lstm_units = 8", "ModelConfig.head_units = 8", "ModelConfig.regressor_units = 8",
        "Preprocessing.crop_size = 32", "Preprocessing.num_frames = 5", "train.batch_size = 2",
        "train.validate_every = 0", "train.image_summary_every = 0"]


@pytest.fixture(autouse=True)
def _clear_gin():
    gin.clear_config()
    yield
    gin.clear_config()


def test_every_row_with_a_gin_file_is_run_with_the_papers_published_number():
    rows = {(row.table, row.label): row.pa_mpjpe_mm for run in ablations.all_runs() for row in run.rows}
    assert rows == PUBLISHED
    assert all((gin_config.REPO / run.gin_file).is_file() for run in ablations.all_runs())
    # The full model is one run for its three rows.
    assert [row.table for row in next(r for r in ablations.all_runs() if r.name == "full").rows] == \
        ["Table 1", "Table 2", "Table 3"]


def test_demo_clip_lengths_scale_the_full_models_31_frames_to_demo_gins():
    gin_config.parse(["gin/demo.gin"])
    demo = gin.query_parameter("Preprocessing.num_frames")
    assert [ablations.demo_frames(n) for n in (8, 16, 31, 56)] == [3, 4, demo, 14]


def test_demo_preset_keeps_the_rows_clip_length_and_batch_under_demo_size():
    clip16 = next(r for r in ablations.all_runs() if r.name == "clip16")
    settings = ablations.configure(clip16, "demo", 7)
    assert (settings["preprocessing"]["num_frames"], settings["batch_size"], settings["num_steps"]) == (4, 6, 7)
    assert settings["preprocessing"]["crop_size"] == 64 and settings["model"]["architecture"] == "resnet_tiny"
    assert gin.query_parameter("learning_rate_schedule.decay_steps") == 7


def test_unknown_row_is_one_line_and_exit_2(sim_data, capsys):
    spec = importlib.util.spec_from_file_location("run_ablations", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    argv = ["--preset", "demo", "--rows", "flow,nope", "--surreal_root", str(sim_data["surreal"]),
            "--background_root", str(sim_data["backgrounds"]), "--threedpw_root", str(sim_data["threedpw"])]
    assert script.main(argv) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "'nope'" in error


def _run(sim_data, out, num_steps=2):
    return ablations.run("demo", out, ["kp", "flow"], num_steps, sim_data["surreal"], sim_data["backgrounds"],
                         sim_data["threedpw"], TINY, workers=1, slic_downsample=2, progress=False)


def test_two_rows_train_evaluate_tabulate_and_resume(sim_data, tmp_path, monkeypatch, capsys):
    out = tmp_path / "ablations"
    _run(sim_data, out)
    results = {run: json.loads((out / run / "result.json").read_text()) for run in ("flow", "kp")}
    table = (out / "ablations.md").read_text()
    for run in ("flow", "kp"):
        (row,) = paper.rows_of(run)
        assert results[run]["step"] == 2
        ours = results[run]["protocols"]["paper"]
        assert np.isfinite(ours["pa_mpjpe_mm"]) and ours["pa_mpjpe_mm"] > 0
        line = next(x for x in table.splitlines() if x.startswith(f"| {row.label} |"))
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[1:] == [f"gin/{run}.gin", "2", f"{ours['pa_mpjpe_mm']:.1f}", f"{ours['mpjpe_mm']:.1f}",
                             f"{row.pa_mpjpe_mm:.1f}"]
    assert "paper, real 3DPW" in table and "Table 2" not in table and "Mean-pose baseline" in table
    summary = json.loads((out / "ablations.json").read_text())
    assert [r["run"] for r in summary["rows"]] == ["flow", "kp"]  # table order, whatever order they were asked in
    assert [r["paper_pa_mpjpe_mm"] for r in summary["rows"]] == [paper.rows_of("flow")[0].pa_mpjpe_mm,
                                                                 paper.rows_of("kp")[0].pa_mpjpe_mm]
    chart = cv2.imread(str(out / "ablations.png"))
    assert chart is not None and chart.shape[0] > 100

    # A second run skips both finished rows; a row whose result is gone is the only one run again; other settings
    # (more steps) run both again.
    trained = []
    monkeypatch.setattr(ablations, "run_row", lambda run, *a, **k: trained.append(run.name) or results[run.name])
    capsys.readouterr()
    _run(sim_data, out)
    assert trained == [] and capsys.readouterr().out.count("finished earlier, skipped") == 2
    (out / "kp" / "result.json").unlink()
    _run(sim_data, out)
    assert trained == ["kp"]
    _run(sim_data, out, num_steps=3)
    assert trained == ["kp", "flow", "kp"]
