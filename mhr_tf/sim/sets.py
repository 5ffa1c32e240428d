"""Writing whole sets: worker processes over sequence indices, and the record each set leaves in its root."""
from __future__ import annotations

import functools
import json
import multiprocessing
import os
from pathlib import Path
from typing import Callable

from mhr_tf.sim import backgrounds

SET_RECORD = "mhr_tf_sim.json"  # written last into a set's root: what was generated, with which arguments
SET_RECORD_VERSION = 1


def run_parallel(job: Callable[[int], object], indices, workers: int, description: str,
                 progress: bool = True) -> list:
    """`[job(i) for i in indices]`, in order, over `workers` processes, with a tqdm progress bar.

    Workers are forked where the platform allows it, so they share the modules (TensorFlow, with the body layer)
    and body models the parent has loaded; results depend only on the indices, never on the worker.
    """
    from tqdm import tqdm
    indices = list(indices)
    workers = max(1, min(int(workers), len(indices)))
    bar = tqdm(total=len(indices), desc=description, unit="seq", disable=not progress)
    try:
        if workers == 1:
            results = []
            for i in indices:
                results.append(job(i))
                bar.update()
            return results
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        with multiprocessing.get_context(method).Pool(workers) as pool:
            results = []
            for result in pool.imap(job, indices):
                results.append(result)
                bar.update()
            return results
    finally:
        bar.close()


def write_set_record(root: Path, kind: str, **arguments) -> Path:
    """`<root>/mhr_tf_sim.json`: what the simulator wrote here and with which arguments. Written last, so its presence
    says the set is complete (a caller may compare the arguments to reuse a set)."""
    record = {"version": SET_RECORD_VERSION, "simulated": True, "generator": "mhr_tf.sim.make", "kind": kind,
              **arguments}
    path = root / SET_RECORD
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(record, indent=1))
    os.replace(partial, path)
    return path


def read_set_record(root) -> dict | None:
    """The record `write_*_set` left in `root`, or None when there is none (an unfinished or foreign set)."""
    path = Path(root) / SET_RECORD
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_background_set(root, num_videos: int, num_frames: int, seed: int, workers: int = 1,
                         progress: bool = True) -> list[Path]:
    """`backgrounds.write_background_set` with worker processes and a progress bar: the same files (each video is a
    function of `(seed, index)`); returns the video paths."""
    root = Path(root)
    job = functools.partial(_background_video, root, seed=seed, num_frames=num_frames)
    paths = run_parallel(job, range(num_videos), workers, "background videos", progress)
    write_set_record(root, "backgrounds", seed=seed, num_sequences=num_videos, num_frames=num_frames,
                     files=[str(p.relative_to(root)) for p in paths])
    return paths


def _background_video(root: Path, index: int, seed: int, num_frames: int) -> Path:
    return backgrounds.write_background_video(root, index, num_frames, seed).path
