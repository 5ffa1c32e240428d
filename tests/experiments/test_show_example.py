"""mhr_tf.experiments.show_example (scripts/show_example.py): one training example through the real pipeline, drawn
with the contract's channel layout."""
import importlib.util
from pathlib import Path

import cv2
import gin
import numpy as np
import pytest

from mhr_tf.data.preprocessing import Augmentation, Channels, FlowSettings, Preprocessing
from mhr_tf.experiments import show_example
from tests.helpers import background_windows_for

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "show_example.py"
FRAMES, CROP = 5, 32


@pytest.fixture(scope="module")
def windows(sim_data):
    return background_windows_for(sim_data["backgrounds"], FRAMES)


@pytest.fixture(autouse=True)
def _clear_gin():
    gin.clear_config()
    yield
    gin.clear_config()


def _crop_pixels(points, centre, size):
    """Frame pixels [K, 2] -> crop pixels of the box (centre [2], side `size`), pixel centres at integers."""
    points, centre = np.asarray(points, np.float64), np.asarray(centre, np.float64)
    return (points - centre + size / 2.0) * CROP / float(size) - 0.5


# Heatmaps after RGB (channels 3:15) and after flow (channels 3:15 too, but flow is not RGB): the picture must read
# them where each contract puts them, and the crop from the RGB channels or the frames accordingly.
# With the flow computed in the model the pipeline sends the pair crops in its place; the picture shows the network's
# groups all the same.
@pytest.mark.parametrize("channels, placement", [(Channels(False, True, True), "pipeline"),
                                                 (Channels(True, False, True), "pipeline"),
                                                 (Channels(False, True, True), "model")],
                         ids=["flow_heatmaps", "rgb_heatmaps", "flow_in_model_heatmaps"])
def test_drawn_heatmap_peaks_sit_on_the_visible_keypoints(sim_data, windows, channels, placement):
    flow = FlowSettings(backend="tf_tvl1", placement=placement) if placement == "model" else FlowSettings()
    pre = Preprocessing(num_frames=FRAMES, crop_size=CROP, channels=channels, augmentation=Augmentation.none(),
                        flow=flow)
    example = show_example.make_example(pre, sim_data["surreal"], windows, index=0)
    columns = show_example.panels(example)
    drawn = columns[show_example.heatmap_key(columns)].astype(np.int32)  # [P, S, S, 3]
    assert drawn.shape == (pre.num_pairs, CROP, CROP, 3)
    ex = example.values
    full = show_example.HEAT_WEIGHT * 255.0
    sigma = pre.sigma_px
    checked = 0
    for pair in range(pre.num_pairs):
        yellow = drawn[pair, ..., 0] - drawn[pair, ..., 2]  # red minus blue: the heatmaps only (grey cancels)
        points = _crop_pixels(ex["joints14_2d"][pair, :12], ex["box_centre"][pair], ex["box_size"][pair])
        visible = ex["keypoints_visible"][pair]
        inside = visible & np.all((points >= 1) & (points <= CROP - 2), axis=-1)
        for u, v in points[inside]:
            # At the keypoint's nearest pixel (at most 0.71 px away), the drawn heat is a Gaussian's peak.
            assert yellow[int(round(v)), int(round(u))] >= full * np.exp(-0.5 / (2 * sigma ** 2)) - 1
            checked += 1
        # The brightest yellow is on a keypoint, and where no visible keypoint is near there is none.
        peak = np.array(np.unravel_index(np.argmax(yellow), yellow.shape))[::-1]
        assert np.min(np.linalg.norm(points[visible] - peak, axis=-1)) <= 1.0
        rows, cols = np.mgrid[:CROP, :CROP]
        far = np.min(np.hypot(cols[..., None] - points[visible, 0], rows[..., None] - points[visible, 1]), -1) \
            > 4 * sigma
        assert yellow[far].max(initial=0) <= 1
    assert checked >= 10


def test_a_contract_without_keypoints_draws_its_flow_and_no_heatmaps(sim_data, windows):
    pre = Preprocessing(num_frames=FRAMES, crop_size=CROP, channels=Channels(False, True, False),
                        augmentation=Augmentation.none())
    example = show_example.make_example(pre, sim_data["surreal"], windows, index=0)
    columns = show_example.panels(example)
    assert show_example.heatmap_key(columns) is None
    flow = next(v for k, v in columns.items() if k.startswith("flow"))
    assert flow.shape == (pre.num_pairs, CROP, CROP, 3) and flow.max() > 0


def test_script_draws_the_sheet_and_movie_of_the_gin_contract(sim_data, windows, tmp_path):
    spec = importlib.util.spec_from_file_location("show_example_script", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    argv = ["--surreal_root", str(sim_data["surreal"]), "--background_root", str(windows), "--index", "1",
            "--gin_param", f"Preprocessing.num_frames = {FRAMES}", "--gin_param", f"Preprocessing.crop_size = {CROP}",
            "--out", str(tmp_path)]
    assert script.main(argv) == 0
    sheet = cv2.imread(str(tmp_path / "example_1.png"))
    assert sheet is not None and sheet.shape[0] > 200 and sheet.shape[1] > sheet.shape[0]
    movie = cv2.VideoCapture(str(tmp_path / "example_1.mp4"))
    assert int(movie.get(cv2.CAP_PROP_FRAME_COUNT)) == FRAMES - 1
    movie.release()


def test_a_run_directory_and_gin_together_are_refused(tmp_path):
    with pytest.raises(ValueError, match="not both"):
        show_example.contract(tmp_path, gin_params=["Preprocessing.num_frames = 8"])
