"""Shared pieces of the tests that are not fixtures."""
from pathlib import Path

from mhr_tf.data import background_windows


def background_windows_for(background_root: Path, num_frames: int) -> Path:
    """The window caches of every simulated background video for `num_frames`-frame clips (made once, then reused:
    `preprocess_video` keeps a valid cache). SLIC on every 2nd pixel keeps the tests fast."""
    background_windows.preprocess_folder(background_root, num_frames, workers=1, progress=False, slic_downsample=2,
                                         flow_method="dis", flow_scale=1.0)
    return background_root
