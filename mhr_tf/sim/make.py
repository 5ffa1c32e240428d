"""The simulator's datasets, written in the real file formats: SURREAL-style training clips (`surreal_set`),
Kinetics-style background videos (`backgrounds`), and evaluation sequences in 3DPW's layout (`threedpw_set`, always
named as simulated, never as 3DPW) in a chosen domain (`domain`: the shifted one by default, or the training one).
`write_set` is the one entry point `scripts/make_synthetic.py` calls; the names callers use are re-exported here.

Every sequence is a pure function of `(seed, index)` (`scene.sequence_rng`), so a set is the same bytes whatever the
number of worker processes. The parts come from the other simulator modules: bodies (`mhr_tf.body.smpl`, the open
body model by default), motion (`motion.sample_motion`), the z-buffer renderer and its procedural clothing and
lighting (`render`), moving backgrounds (`backgrounds`), cameras (`cameras`), detections (`detections`), and the
writers (`writers`), whose files the decoders in `mhr_tf.data` read back.
"""
from __future__ import annotations

from pathlib import Path

from mhr_tf.sim.domain import DOMAINS, IN_DOMAIN, SHIFTED, Domain, domain_from_record
from mhr_tf.sim.preview import preview
from mhr_tf.sim.scene import preload_bodies
from mhr_tf.sim.sets import SET_RECORD, read_set_record, write_background_set
from mhr_tf.sim.surreal_set import SURREAL_SPLIT_CYCLE, write_surreal_sequence, write_surreal_set
from mhr_tf.sim.threedpw_set import THREEDPW_NAME_PREFIX, write_threedpw_sequence, write_threedpw_set

# What scripts and the dataset builders import from here.
__all__ = ["DOMAINS", "IN_DOMAIN", "KINDS", "SET_RECORD", "SHIFTED", "SURREAL_SPLIT_CYCLE", "THREEDPW_NAME_PREFIX",
           "Domain", "domain_from_record", "preload_bodies", "preview", "read_set_record", "write_background_set",
           "write_set", "write_surreal_sequence", "write_surreal_set", "write_threedpw_sequence", "write_threedpw_set"]

KINDS = ("surreal", "backgrounds", "threedpw")


def write_set(kind: str, root, num_sequences: int, num_frames: int, seed: int, workers: int = 1,
              split: str | None = None, body_model_path: str | None = None, progress: bool = True,
              domain: Domain | None = None) -> list[Path]:
    """One entry point for the three kinds ("surreal", "backgrounds", "threedpw"). `domain` is the evaluation set's
    (`threedpw` only; None: `domain.SHIFTED`, the shifted domain; `domain.IN_DOMAIN` renders it like the training
    data)."""
    if domain is not None and kind != "threedpw":
        raise ValueError(f"write_set: kind {kind!r} takes no domain (only 'threedpw' does)")
    if kind == "surreal":
        return write_surreal_set(root, num_sequences, num_frames, seed, workers, split, body_model_path, progress)
    if kind == "threedpw":
        return write_threedpw_set(root, num_sequences, num_frames, seed, workers, split, body_model_path, progress,
                                  domain=SHIFTED if domain is None else domain)
    if kind == "backgrounds":
        if split is not None or body_model_path is not None:
            raise ValueError("write_set: background videos take neither a split nor a body model")
        return write_background_set(root, num_sequences, num_frames, seed, workers, progress)
    raise ValueError(f"write_set: kind {kind!r}, expected one of {KINDS}")
