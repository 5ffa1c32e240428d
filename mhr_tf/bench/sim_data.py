"""The simulator's data for the pipeline benchmarks, in the layouts both training sources read: SURREAL-format clips
and background videos under a TFDS manual directory (`<root>/manual/sim_surreal`, `<root>/manual/sim_backgrounds`),
the background window caches the file source needs, and optionally the TFDS records the TFDS source needs
(`<root>/tfds`). Everything is made once and reused by a later run on the same `root`."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from mhr_tf import datasets
from mhr_tf.data import background_windows
from mhr_tf.sim import make

# The camera motion of the simulator's backgrounds: OpenCV DIS at full resolution (the background-window caches'
# own default is TV-L1 at half size, ~60x the cost for what the benchmarks do not measure).
FLOW_METHOD, FLOW_SCALE = "dis", 1.0


@dataclasses.dataclass(frozen=True)
class SimData:
    manual: Path                           # the TFDS manual directory holding both simulator folders
    tfds: Path | None = None               # the TFDS data_dir, when the records were built
    surreal_config: str | None = None      # the built configs' names (a data_dir may hold several)
    background_config: str | None = None

    @property
    def surreal(self) -> Path:
        return self.manual / "sim_surreal"

    @property
    def backgrounds(self) -> Path:
        return self.manual / "sim_backgrounds"


def make_sim_data(root, num_frames: int, surreal_clips: int, background_videos: int, video_frames: int,
                  slic_downsample: int = background_windows.SLIC_DOWNSAMPLE, tfds: bool = True) -> SimData:
    """`surreal_clips` SURREAL-format clips and `background_videos` background videos of `video_frames` frames,
    their window caches for `num_frames`-frame clips (SLIC on every `slic_downsample`-th pixel), and with `tfds` the
    `surreal_clips` and `background_clips` records built from them (without Beam, in this process)."""
    root = Path(root)
    data = SimData(manual=root / "manual")
    if not data.surreal.exists():
        make.write_set("surreal", data.surreal, surreal_clips, video_frames, seed=0, split="train", progress=False)
    if not data.backgrounds.exists():
        make.write_set("backgrounds", data.backgrounds, background_videos, video_frames, seed=0, progress=False)
    failed = background_windows.preprocess_folder(data.backgrounds, num_frames, workers=1, progress=False,
                                                  slic_downsample=slic_downsample, flow_method=FLOW_METHOD,
                                                  flow_scale=FLOW_SCALE)
    if failed:
        raise RuntimeError(f"{data.backgrounds}: background windows failed for {failed}")
    if not tfds:
        return data
    out = root / "tfds"
    surreal = datasets.build("surreal_clips/sim_clips", out, data.manual, use_beam=False)
    backgrounds = datasets.build("background_clips/sim_t8", out, data.manual, use_beam=False, config_overrides={
        "num_frames": str(num_frames), "slic_downsample": str(slic_downsample), "flow_method": FLOW_METHOD,
        "flow_scale": str(FLOW_SCALE)})
    return dataclasses.replace(data, tfds=out, surreal_config=surreal.builder_config.name,
                               background_config=backgrounds.builder_config.name)
