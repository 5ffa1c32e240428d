"""mhr_tf.experiments.demo: what a rerun reuses (the make demo run itself is the end-to-end test)."""
import numpy as np
import pytest

from mhr_tf import evaluate
from mhr_tf.experiments import demo
from mhr_tf.sim import make

THREEDPW = next(spec for spec in demo.DEMO_DATA if spec.kind == "threedpw")


def _record(domain, **changes):
    record = {"version": 1, "kind": "threedpw", "seed": demo.SEED, "num_sequences": THREEDPW.num_sequences,
              "num_frames": THREEDPW.num_frames, "split": None, "domain": domain.knobs()}
    return {**record, **changes}


def test_only_a_shifted_domain_evaluation_set_of_the_demos_size_is_reused():
    assert demo.record_matches(_record(make.SHIFTED), THREEDPW)
    assert not demo.record_matches(_record(make.IN_DOMAIN), THREEDPW)
    assert not demo.record_matches(_record(make.SHIFTED, num_frames=THREEDPW.num_frames + 1), THREEDPW)
    assert not demo.record_matches(_record(make.SHIFTED, split="test"), THREEDPW)
    assert not demo.record_matches(None, THREEDPW)


def test_a_reused_evaluation_reads_back_the_numbers_it_wrote(tmp_path):
    summary = {p.name: {"pa_mpjpe_mm": 81.5, "mpjpe_mm": 97.25, "pve_mm": float("nan"), "accel_mm": 3.0,
                        "frames": 10, "tracks": 1, "sequences": 1} for p in evaluate.PROTOCOLS}
    result = evaluate.EvaluationResult("checkpoint ckpt-3 (step 3)", summary, [{"sequence": "s", "person": 0}],
                                       meta={"step": 3, "split": "test"})
    evaluate.write_report([result], tmp_path, plots=False)
    key = {"checkpoint": "ckpt-3", "written_ns": 1}
    demo._stamp(tmp_path, key)
    (back,), plots = demo._reused_report(demo.Stages(), "evaluation", tmp_path, key)
    assert (back.name, back.meta, back.tracks, plots) == (result.name, result.meta, result.tracks, [])
    assert back.summary["paper"]["pa_mpjpe_mm"] == 81.5 and np.isnan(back.summary["official"]["pve_mm"])
    assert demo._reused_report(demo.Stages(), "evaluation", tmp_path, {**key, "written_ns": 2}) is None


def test_prediction_stage_names_the_files_predict_wrote_then_reuses_them(tmp_path, monkeypatch):
    """The demo's prediction stage runs the real `predict_video` (person 0 of the first sequence) and returns the
    three files its summary links, each existing; a rerun with the same model and data reuses them."""
    from mhr_tf import predict
    from tests.test_export import PRE, TINY, perturb
    root = tmp_path / "threedpw"
    make.write_set("threedpw", root, 1, 8, seed=0, split=evaluate.SPLIT, progress=False)
    model = TINY.build(PRE.crop_size, PRE.channels.names, with_vertices=True)
    perturb(model, seed=1)
    saved_model = tmp_path / "saved_model"
    monkeypatch.setattr(demo, "saved_model_key", lambda path: {"saved_model": str(path), "written_ns": 1})
    monkeypatch.setattr(evaluate, "load_predictor", lambda saved_model: evaluate.keras_predictor(model, PRE, source="test"))
    files = demo.prediction_stage(demo.Stages(), tmp_path / "predict", saved_model, root)
    assert set(files) == {"npz", "json", "overlay"} and all(path.is_file() for path in files.values())
    assert files["npz"].parent.name == "person_0"
    assert np.load(files["npz"])["pose"].shape[0] == 8
    monkeypatch.setattr(predict, "predict_video", lambda *a, **k: pytest.fail("predicted again"))
    assert demo.prediction_stage(demo.Stages(), tmp_path / "predict", saved_model, root) == files
