"""Writing whole sets: the same files whatever the number of workers, the command-line entry point, and the set
record."""
import importlib.util
from pathlib import Path

import cv2
import numpy as np

from mhr_tf.data import videos
from mhr_tf.sim import sets

SEED = 3


def test_background_set_is_the_same_with_two_workers(tmp_path):
    serial = sets.write_background_set(tmp_path / "a", 3, 5, SEED, workers=1, progress=False)
    parallel = sets.write_background_set(tmp_path / "b", 3, 5, SEED, workers=2, progress=False)
    assert [p.relative_to(tmp_path / "a") for p in serial] == [p.relative_to(tmp_path / "b") for p in parallel]
    for a, b in zip(serial, parallel):
        assert a.with_suffix(".json").read_text() == b.with_suffix(".json").read_text()
        np.testing.assert_array_equal(videos.read_video(a), videos.read_video(b))
    assert len(videos.list_videos(tmp_path / "a")) == 3


def test_cli_writes_backgrounds_and_a_preview(tmp_path):
    spec = importlib.util.spec_from_file_location(
        "make_synthetic", Path(__file__).resolve().parents[2] / "scripts" / "make_synthetic.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main(["backgrounds", "--out", str(tmp_path), "--num_sequences", "2", "--frames", "4",
                        "--workers", "1", "--seed", "5", "--preview"]) == 0
    entries = videos.list_videos(tmp_path)
    assert len(entries) == 2 and all(videos.count_frames(e.path, exact=True) == 4 for e in entries)
    sheet = cv2.imread(str(tmp_path / "preview.png"))
    first = videos.read_video(entries[0].path)[0]
    # The sheet's first tile is the first video's first frame at half size.
    tile = cv2.resize(first, (first.shape[1] // 2, first.shape[0] // 2), interpolation=cv2.INTER_AREA)
    region = sheet[20:tile.shape[0], :tile.shape[1], ::-1].astype(float)  # below the label
    assert np.abs(region - tile[20:]).mean() < 2.0
