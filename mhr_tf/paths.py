"""Where mhr_tf keeps what it builds (the open body model, simulator data, caches)."""
from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """`$MHR_TF_HOME`, default `~/.cache/mhr_tf`; created on first use."""
    root = Path(os.environ.get("MHR_TF_HOME", Path.home() / ".cache" / "mhr_tf")).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root


def body_model_dir() -> Path:
    """The directory holding the open body model's `SMPL_{NEUTRAL,MALE,FEMALE}.npz`."""
    return home() / "body_models" / "open"
