"""SURREAL's clips of one split as a manifest: (clip, frame count, gender), scanned once from the `_info.mat` files
and cached as JSON beside the data (or under MHR_TF_HOME), rescanned when the folder changes; unreadable clips are
skipped and counted by reason instead of ending the scan."""
from __future__ import annotations

import collections
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import NamedTuple

from tqdm import tqdm

from mhr_tf import paths
from mhr_tf.data import surreal

log = logging.getLogger(__name__)

class ManifestEntry(NamedTuple):
    """One readable clip."""
    path: Path  # the clip's .mp4
    frames: int
    gender: str



MANIFEST_VERSION = 2  # 2: records skipped clips and the signature of the folder it was scanned from
MANIFEST_PROGRESS_MIN_CLIPS = 200  # show a progress bar for scans at least this long
MANIFEST_SUMMARY_REASONS = 3  # how many of the commonest reasons for skipped clips the summary line names


class SkippedClip(NamedTuple):
    """A clip the manifest scan left out, and why."""
    path: Path  # the clip's .mp4
    reason: str  # without the file, what skipped clips are counted by: "non-finite joints3D"
    message: str  # the decoder's error, naming the file and the field


class Manifest(NamedTuple):
    """One split as scanned: the clips the decoder can read and the ones it cannot."""
    clips: list[ManifestEntry]  # sorted by path
    skipped: list[SkippedClip]  # sorted by path
    signature: str  # `folder_signature` of the split when it was scanned: a different one means scan again


def _split_dir(root: Path, split: str) -> Path:
    if split not in surreal.SPLITS:
        raise ValueError(f"SURREAL split {split!r} — expected one of {surreal.SPLITS}")
    for candidate in (root / split, root / "cmu" / split):
        if candidate.is_dir():
            return candidate
    raise surreal.SurrealFormatError(f"{root}: no '{split}' folder — expected <root>/{{train,val,test}}/run{{0,1,2}}/<seq>/")


def manifest_cache_paths(root, split: str) -> tuple[Path, Path]:
    """Where the manifest is cached: beside the data, or under MHR_TF_HOME when the data is read-only."""
    root = Path(root).resolve()
    key = hashlib.sha1(str(root).encode()).hexdigest()[:16]
    return (root / f"mhr_tf_manifest_{split}.json",
            paths.home() / "manifests" / f"surreal_{key}_{split}.json")


def _list_clips(split_dir: Path) -> list[Path]:
    return sorted(p for p in split_dir.glob("run*/*/*.mp4") if surreal._CLIP_RE.match(p.stem))


def folder_signature(root, clips) -> str:
    """A hash of what the manifest is made from: each clip's .mp4 and `_info.mat`, as (path relative to `root`, size,
    mtime in ns), a missing file as (path, None, None). Adding, removing, rewriting or touching a clip changes it;
    moving the whole root with its times kept (`cp -a`, `rsync -a`) does not."""
    root = Path(root)
    digest = hashlib.sha1()
    for mp4 in clips:
        for path in (mp4, surreal.companion_path(mp4, "info")):
            try:
                stat = path.stat()
                size, mtime = stat.st_size, stat.st_mtime_ns
            except FileNotFoundError:
                size = mtime = None
            digest.update(json.dumps([path.relative_to(root).as_posix(), size, mtime]).encode() + b"\n")
    return digest.hexdigest()


def _scan(root: Path, split: str, clips: list[Path], signature: str) -> Manifest:
    """Reads every clip's `_info.mat` as the decoder does (`surreal.read_info`); a clip it cannot read is skipped, with the
    reason, instead of ending the scan: one bad file among SURREAL's ~68k must not stop a run."""
    entries, skipped = [], []
    for mp4 in tqdm(clips, desc=f"SURREAL {split} manifest", unit="clip",
                    disable=len(clips) < MANIFEST_PROGRESS_MIN_CLIPS):
        try:
            info = surreal.read_info(surreal.companion_path(mp4, "info"))
        except surreal.SurrealFormatError as err:
            skipped.append(SkippedClip(mp4, err.reason, str(err)))
            continue
        entries.append(ManifestEntry(mp4, info.num_frames, info.genders[0]))
    return Manifest(entries, skipped, signature)


def skipped_summary(manifest: Manifest) -> str:
    """"N of M clips skipped: <the commonest reasons, with counts>; e.g. <one such file's error>"."""
    counts = collections.Counter(s.reason for s in manifest.skipped)
    top = counts.most_common(MANIFEST_SUMMARY_REASONS)
    reasons = ", ".join(f"{reason} ({n})" for reason, n in top)
    if len(counts) > len(top):
        reasons += f", {len(counts) - len(top)} other reason(s)"
    example = next(s.message for s in manifest.skipped if s.reason == top[0][0])
    total = len(manifest.clips) + len(manifest.skipped)
    return f"{len(manifest.skipped)} of {total} clips skipped: {reasons}; e.g. {example}"


def _read_manifest(cache: Path, root: Path, signature: str) -> Manifest | None:
    try:
        data = json.loads(cache.read_text())
        if data["version"] != MANIFEST_VERSION or data["signature"] != signature:
            return None  # from an older layout, or the folder changed since: scan again
        return Manifest([ManifestEntry(root / rel, int(n), gender) for rel, n, gender in data["clips"]],
                        [SkippedClip(root / rel, reason, message) for rel, reason, message in data["skipped"]],
                        signature)
    except (OSError, ValueError, KeyError, TypeError):  # unreadable or from another layout: scan again
        return None


def _write_manifest(manifest: Manifest, root: Path, split: str) -> None:
    payload = json.dumps({
        "version": MANIFEST_VERSION, "split": split, "signature": manifest.signature,
        "clips": [[e.path.relative_to(root).as_posix(), e.frames, e.gender] for e in manifest.clips],
        "skipped": [[s.path.relative_to(root).as_posix(), s.reason, s.message] for s in manifest.skipped]})
    for cache in manifest_cache_paths(root, split):
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_name(f".{cache.name}.{os.getpid()}.tmp")
            tmp.write_text(payload)
            tmp.replace(cache)  # atomic: concurrent readers see the old or the new manifest, never half of one
            return
        except OSError:
            continue


def load_manifest(root, split: str, rebuild: bool = False) -> Manifest:
    """The clips of `<root>/<split>` the decoder can read, and those it cannot (each with its reason).

    The first call scans the `_info.mat` files and caches the result as JSON beside the data (or under
    MHR_TF_HOME/manifests when the root is read-only); later calls read the cache as long as the folder's
    `folder_signature` is the one it was scanned with, and scan again when clips were added, removed or changed.
    `rebuild=True` always rescans. Skipped clips are logged in one line (a warning when scanned). Raises
    `surreal.SurrealFormatError` naming the root if the split holds no readable clip.
    """
    root = Path(root).resolve()
    split_dir = _split_dir(root, split)
    clips = _list_clips(split_dir)
    signature = folder_signature(root, clips)
    manifest = None
    if not rebuild:
        for cache in manifest_cache_paths(root, split):
            if cache.is_file() and (manifest := _read_manifest(cache, root, signature)) is not None:
                break
    scanned = manifest is None
    if scanned:
        manifest = _scan(root, split, clips, signature)
    if not manifest.clips:
        found = (skipped_summary(manifest) if manifest.skipped else
                 "no clip found — expected run{0,1,2}/<seq>/<seq>_c%04d.mp4 with <seq>_c%04d_info.mat beside each")
        raise surreal.SurrealFormatError(f"{root}: no readable SURREAL clip in '{split}' ({split_dir}): {found}",
                                 reason="no readable clip")
    if scanned:
        _write_manifest(manifest, root, split)
    if manifest.skipped:
        (log.warning if scanned else log.info)("SURREAL %s (%s): %s", split, split_dir, skipped_summary(manifest))
    return manifest


def build_manifest(root, split: str, rebuild: bool = False) -> list[ManifestEntry]:
    """Every readable clip of `<root>/<split>` as `(mp4 path, frame count, gender)`, sorted by path; unreadable
    clips are skipped and logged (see `load_manifest`)."""
    return load_manifest(root, split, rebuild).clips
