"""Writing whole sets: the same files whatever the number of workers, the command-line entry point, and the set
record."""
import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest

from mhr_tf.data import provenance, threedpw, videos
from mhr_tf.sim import sets
from mhr_tf.sim.domain import IN_DOMAIN, domain_from_record

SEED = 3


def _script():
    spec = importlib.util.spec_from_file_location(
        "make_synthetic", Path(__file__).resolve().parents[2] / "scripts" / "make_synthetic.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def test_background_set_is_the_same_with_two_workers(tmp_path):
    serial = sets.write_background_set(tmp_path / "a", 3, 5, SEED, workers=1, progress=False)
    parallel = sets.write_background_set(tmp_path / "b", 3, 5, SEED, workers=2, progress=False)
    assert [p.relative_to(tmp_path / "a") for p in serial] == [p.relative_to(tmp_path / "b") for p in parallel]
    for a, b in zip(serial, parallel):
        assert a.with_suffix(".json").read_text() == b.with_suffix(".json").read_text()
        np.testing.assert_array_equal(videos.read_video(a), videos.read_video(b))
    assert len(videos.list_videos(tmp_path / "a")) == 3


def test_cli_writes_backgrounds_and_a_preview(tmp_path):
    assert _script().main(["backgrounds", "--out", str(tmp_path), "--num_sequences", "2", "--frames", "4",
                           "--workers", "1", "--seed", "5", "--preview"]) == 0
    entries = videos.list_videos(tmp_path)
    assert len(entries) == 2 and all(videos.count_frames(e.path, exact=True) == 4 for e in entries)
    sheet = cv2.imread(str(tmp_path / "preview.png"))
    first = videos.read_video(entries[0].path)[0]
    # The sheet's first tile is the first video's first frame at half size.
    tile = cv2.resize(first, (first.shape[1] // 2, first.shape[0] // 2), interpolation=cv2.INTER_AREA)
    region = sheet[20:tile.shape[0], :tile.shape[1], ::-1].astype(float)  # below the label
    assert np.abs(region - tile[20:]).mean() < 2.0
    assert all(provenance.is_simulated_background_id(e.video_id) for e in entries)


def test_cli_writes_an_in_domain_set_with_one_knob_turned(tmp_path):
    assert _script().main(["threedpw", "--out", str(tmp_path), "--num_sequences", "1", "--frames", "2",
                           "--workers", "1", "--split", "test", "--domain", "in", "--knob", "detector_noise=0.5"]) == 0
    assert domain_from_record(sets.read_set_record(tmp_path)) == IN_DOMAIN.replace(detector_noise=0.5)
    tracks = threedpw.load_split(tmp_path, "test")
    assert len(tracks) == 1 and provenance.is_simulated_threedpw_sequence(tracks[0].sequence)


@pytest.mark.parametrize("arguments", [["threedpw", "--knob", "sharpness=1"], ["threedpw", "--knob", "blur"],
                                       ["threedpw", "--knob", "blur=2"], ["surreal", "--domain", "in"]])
def test_cli_rejects_unknown_or_misplaced_domain_knobs(tmp_path, arguments):
    with pytest.raises(SystemExit):
        _script().main(arguments + ["--out", str(tmp_path), "--num_sequences", "1", "--frames", "2"])
    assert not sets.read_set_record(tmp_path)
