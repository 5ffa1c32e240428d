"""The sim2real lab's machinery: the example cache against the live pipeline, the report's statistics against hand
computation, and a tiny lab end to end (two rows, two seeds), resumed."""
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from mhr_tf import paper
from mhr_tf.data import example_cache, pipeline, sources
from mhr_tf.data.preprocessing import Channels, ContractError, Preprocessing
from mhr_tf.experiments import lab, lab_report
from tests.helpers import background_windows_for

FRAMES, CROP = 5, 32
PRE = Preprocessing(num_frames=FRAMES, crop_size=CROP)


@pytest.fixture(scope="module")
def cache(sim_data, tmp_path_factory):
    background_windows_for(sim_data["backgrounds"], FRAMES)
    source = sources.FileSource(sim_data["surreal"], sim_data["backgrounds"], FRAMES)
    full = example_cache.full_contract(PRE)
    directory = tmp_path_factory.mktemp("cache")
    example_cache.write_training_cache(directory, pipeline.make_dataset(source, full, 1, seed=7).unbatch(), PRE, 6,
                                       progress=False)
    return directory, source


@pytest.mark.parametrize("channels", [Channels(True, True, True), Channels(False, False, True),
                                      Channels(True, False, False), Channels(False, True, True)])
def test_cached_examples_are_the_live_pipelines_with_the_rows_channels(cache, channels):
    directory, source = cache
    pre = dataclasses.replace(PRE, channels=channels)
    live = list(pipeline.make_dataset(source, pre, 1, seed=7).unbatch().take(6))
    cached = {int(labels["index"]): (features, labels)
              for features, labels in example_cache.read_examples(directory, pre, "train").unbatch()}
    assert len(cached) == 6
    for i, (features, labels) in enumerate(live):
        got_features, got_labels = cached[i]
        expected = features["inputs"].numpy()
        np.testing.assert_allclose(got_features["inputs"], expected, atol=1e-3 * max(1.0, np.abs(expected).max()),
                                   rtol=1e-3)  # float16 storage
        for key in ("joints3d_current", "keypoints2d_future", "occluded", "betas"):
            np.testing.assert_array_equal(got_labels[key], labels[key], err_msg=key)


def test_a_cache_made_with_another_contract_is_refused(cache):
    directory, _ = cache
    with pytest.raises(ContractError, match="crop_size"):
        example_cache.read_training_cache(directory, dataclasses.replace(PRE, crop_size=48), 2, seed=0)


def test_training_reads_reshuffle_every_epoch_and_resume_at_an_index(cache):
    directory, _ = cache
    read = lambda start: [int(i) for _, labels in example_cache.read_training_cache(  # noqa: E731
        directory, PRE, 2, seed=3, start_index=start).take(6) for i in labels["index"]]
    assert read(0) == list(range(12))
    first = [f["inputs"].numpy() for f, _ in example_cache.read_training_cache(directory, PRE, 2, seed=3).take(6)]
    resumed = [f["inputs"].numpy() for f, _ in example_cache.read_training_cache(directory, PRE, 2, seed=3,
                                                                               start_index=4).take(4)]
    for a, b in zip(first[2:], resumed):
        np.testing.assert_array_equal(a, b)
    epochs = np.concatenate(first).reshape(12, -1)
    # Two epochs of 6: every example twice, in another order the second time.
    assert any(not np.array_equal(epochs[i], epochs[6 + i]) for i in range(6))
    assert sorted(map(bytes, epochs[:6])) == sorted(map(bytes, epochs[6:]))


# ---- the report ------------------------------------------------------------------------------------------------------

def _result(run, seed, in_domain, shifted, curve=None):
    score = lambda v: {"pa_mpjpe_mm": v, "mpjpe_mm": v, "accel_mm": 20.0 + seed,  # noqa: E731
                       "accel_smoothed_mm": 10.0, "pa_mpjpe_smoothed_mm": v, "frames": 10, "tracks": 1}
    return {"run": run, "seed": seed, "scores": {"in_domain": score(in_domain), "shifted": score(shifted)},
            "curve": curve or {}, "train_seconds": 1.0}


def test_report_statistics_and_verdicts_follow_the_hand_computation():
    rows = tuple(row for row in lab.ROWS if row.run in ("rgb", "kp", "full"))
    results = [_result("rgb", 0, 100, 150, {"2": 160, "4": 150}), _result("rgb", 1, 102, 154, {"2": 170, "4": 154}),
               _result("rgb", 2, 98, 146, {"2": 165, "4": 146}),
               _result("kp", 0, 90, 100), _result("kp", 1, 91, 110), _result("kp", 2, 92, 90),
               _result("full", 0, 80, 95), _result("full", 1, 81, 97), _result("full", 2, 79, 99)]
    summary = lab_report.summarize(results, {"in_domain": 160.0, "shifted": 170.0}, lab.SIZES["tiny"], rows)
    rgb = summary["table"]["rgb"]
    assert rgb["shifted"]["mean"] == pytest.approx(150.0) and rgb["shifted"]["sigma"] == pytest.approx(4.0)
    assert rgb["gap"]["mean"] == pytest.approx(50.0) and rgb["gap"]["sigma"] == pytest.approx(2.0)
    assert summary["table"]["kp"]["shifted"]["sigma"] == pytest.approx(10.0)
    claims = {c["claim"].split(" (")[0]: c["verdict"] for c in summary["claims"]}
    # rgb - kp = 50 > 2 x 10; rgb - full = 53 > 2 x 4: RGB is worst, resolved.
    assert claims["RGB is the worst input"] == "holds"
    # kp - full = 3 < 2 x 10: the same direction, not resolved.
    assert claims["flow + keypoints is the best input"] == "same direction, unresolved"
    # gaps: rgb 50 ± 2, kp 9 ± 10.5, full 17 ± 4: rgb - kp = 41 > 2 x 10.5 and rgb - full = 33 > 2 x 4.
    assert claims["the motion inputs lose less than RGB when the domain shifts"] == "holds"
    flipped = [dict(r, scores={"in_domain": r["scores"]["in_domain"], "shifted": dict(
        r["scores"]["shifted"], pa_mpjpe_mm=r["scores"]["shifted"]["pa_mpjpe_mm"] - (100 if r["run"] == "rgb" else 0))})
        for r in results]
    claims = {c["claim"].split(" (")[0]: c["verdict"] for c in lab_report.summarize(
        flipped, {"in_domain": 160.0, "shifted": 170.0}, lab.SIZES["tiny"], rows)["claims"]}
    # rgb now 50 shifted: better than kp (100) and full (97) by far more than 2 σ.
    assert claims["RGB is the worst input"] == "contradicted"
    assert summary["order_shifted"] == ["full", "kp", "rgb"]
    assert summary["accel_goal"]["full_model_accel_mm"] == pytest.approx(21.0)
    assert summary["curves"]["rgb"][2]["mean"] == pytest.approx(165.0)
    text = lab_report.markdown(summary)
    # gaps 10, 19, -2: mean 9, σ = sqrt((1 + 100 + 121) / 2) = 10.5
    assert "| Keypoints Only (`gin/kp.gin`) | 91.0 ± 1.0 | 100.0 ± 10.0 | 9.0 ± 10.5 |" in text
    assert "Simulator results" in text and "not 3DPW" in text


def test_lab_rows_are_the_papers_table_1_with_its_gin_files():
    assert [row.run for row in lab.ROWS] == ["rgb", "rgb_dann", "flow", "rgb_kp", "kp", "full"]
    assert all(row in paper.TABLE_1 for row in lab.ROWS)
    assert all((lab.REPO_GIN / f"{row.run}.gin").is_file() for row in lab.ROWS)


# ---- end to end --------------------------------------------------------------------------------------------------------

def test_tiny_lab_trains_evaluates_both_test_sets_and_resumes(tmp_path):
    summary = lab.run_lab("tiny", tmp_path, workers=1, runs=("rgb", "full"))
    table = summary["table"]
    assert set(table) == {"rgb", "full"}
    for entry in table.values():
        assert entry["seeds"] == list(lab.SIZES["tiny"].seeds)
        assert all(np.isfinite(entry[split]["mean"]) for split in ("in_domain", "shifted"))
    report = json.loads((tmp_path / "lab.json").read_text())
    assert report["table"]["full"]["paper_mm"] == 74.7
    assert (tmp_path / "lab.png").read_bytes()[:4] == b"\x89PNG" and (tmp_path / "lab_curve.png").is_file()
    # Both test sets have the same people and frames; only the rendering differs.
    frames = {split: json.loads((lab.run_dir(tmp_path, "rgb", 0) / lab.RESULT_FILE).read_text())["scores"][split]
              ["frames"] for split in lab.SPLITS}
    assert frames["in_domain"] > 0 and frames["shifted"] > 0
    # The rgb and full rows have their learning curve at every checkpoint.
    steps = lab.SIZES["tiny"].steps
    assert sorted(summary["curves"]["full"]) == list(range(lab.SIZES["tiny"].curve_every, steps + 1,
                                                           lab.SIZES["tiny"].curve_every))
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.glob("runs/*/*/result.json")}
    again = lab.run_lab("tiny", tmp_path, workers=1, runs=("rgb", "full"))
    assert {p: p.stat().st_mtime_ns for p in tmp_path.glob("runs/*/*/result.json")} == stamps  # reused
    assert again["table"]["rgb"]["shifted"] == table["rgb"]["shifted"]
    # The DANN sweep on the same data: one run folder per weight, the best and the mean reported.
    sweep = lab.dann_sweep("tiny", tmp_path, workers=1, weights=(0.5, 2.0), seeds=(0,))
    assert sorted(sweep["per_weight"]) == ["0.5", "2.0"]
    assert (lab.run_dir(tmp_path, "rgb_dann_w0.5", 0) / "model.json").is_file()
    assert sweep["best"]["pa_mpjpe_mm"] == min(s["mean"] for s in sweep["per_weight"].values())
    assert "best run" in (tmp_path / "dann_sweep.md").read_text()


def test_sweep_report_gives_the_best_run_and_the_mean_over_all_runs():
    results = [{"dann_weight": w, "seed": s, "scores": {"shifted": {"pa_mpjpe_mm": v}}}
               for w, s, v in ((0.2, 0, 120.0), (0.2, 1, 110.0), (5.0, 0, 100.0), (5.0, 1, 130.0))]
    summary = lab_report.summarize_sweep(results, [None])
    assert summary["best"] == {"weight": 5.0, "seed": 0, "pa_mpjpe_mm": 100.0}
    assert summary["all"]["mean"] == pytest.approx(115.0)
    assert summary["per_weight"]["0.2"]["mean"] == pytest.approx(115.0)
    assert summary["per_weight"]["5.0"]["sigma"] == pytest.approx(np.std([100.0, 130.0], ddof=1))
    assert summary["rgb"] is None


def test_readme_lab_table_is_the_one_generated_from_the_committed_results():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    start, end = readme.index("<!-- lab-table:start -->\n"), readme.index("<!-- lab-table:end -->")
    summary = json.loads((Path(__file__).resolve().parent.parent / "benchmarks" / "lab" / "lab.json").read_text())
    assert readme[start + len("<!-- lab-table:start -->\n"):end].strip() == lab_report.table_markdown(summary)
