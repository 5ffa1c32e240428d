"""One training example as pictures, made by the real pipeline: every rule of §3.1, App. A and App. B at work.

    contract (a run's preprocessing.json, or gin) ─► FileSource.raw(key) ─► pipeline.process(raw, key, pre)
        ─► panels per pair: SURREAL person (camera-tracked) | background with SLIC edges and the applied occluder |
           composite with the box and the keypoints (visible / hidden) | the pair's crop | flow | heatmaps
        ─► example_<index>.png (a contact sheet) and example_<index>.mp4 (composite | flow | heatmaps, pair by pair)

Example `index` of seed `seed` is the one `pipeline.make_dataset(source, pre, ..., seed)` makes from the key
`sources.example_key(seed, index)`; the channels are read from the network inputs where the contract puts them
(`trunk.channel_layout(pre.channels.names)`).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from mhr_tf.data.preprocessing import Channels, Preprocessing

DEFAULT_GIN = "gin/demo.gin"  # the contract of the simulator data `make demo` prepares windows for
# Heatmap panel: the crop in grey at (1 - HEAT_WEIGHT), the heatmaps' maximum over joints in yellow at HEAT_WEIGHT,
# so a pixel's red minus blue is HEAT_WEIGHT * 255 * heat: the picture's yellow peaks where the heatmaps peak.
HEAT_WEIGHT = 0.6
MOVIE_HEIGHT = 240  # the movie's panels are scaled (nearest) to at least this height
MOVIE_FPS = 10
BOX_COLOUR = (255, 0, 255)
VISIBLE_COLOUR = (0, 255, 0)
HIDDEN_COLOUR = (255, 0, 0)
OCCLUDER_TINT = (150, 0, 0)


class RejectedExampleError(ValueError):
    """The pipeline rejects the example (training skips it): another index will do."""


@dataclasses.dataclass
class Example:
    """One training example after every pipeline step, as numpy arrays (`pipeline.process`'s fields)."""
    pre: Preprocessing
    index: int
    seed: int
    values: dict[str, np.ndarray]

    @property
    def num_pairs(self) -> int:
        return self.pre.num_pairs


def contract(model_dir=None, gin_files=(), gin_params=(), all_channels: bool = False) -> Preprocessing:
    """The contract to draw with: a run's `preprocessing.json` (`model_dir`), else gin's (`gin_files`, default
    gin/demo.gin, and `gin_params`); `all_channels` switches every input group on, to see them all."""
    if model_dir is not None:
        if gin_files or gin_params:
            raise ValueError(f"{model_dir}: a run directory carries its own contract; give it or gin, not both")
        from mhr_tf.training import run_dir
        pre, _ = run_dir.read_run(model_dir)
    else:
        import gin

        from mhr_tf import gin_config
        from mhr_tf.training import loop  # noqa: F401  (registers train, ModelConfig: the row files bind them)
        gin.clear_config()
        gin_config.parse(list(gin_files) or [DEFAULT_GIN], gin_params)
        pre = Preprocessing()
    return dataclasses.replace(pre, channels=Channels(True, True, True)) if all_channels else pre


def make_example(pre: Preprocessing, surreal_root=None, background_root=None, index: int = 0, seed: int = 0,
                 split: str = "train") -> Example:
    """Example `index` of the training stream of `seed`, through `pipeline.process` (roots default to the
    simulator's). A sample the pipeline rejects is an error naming the reason: pick another index."""
    import tensorflow as tf

    from mhr_tf.data import pipeline, sources
    from mhr_tf.training import inputs
    source = inputs.make_source("files", pre, surreal_root=surreal_root, background_root=background_root,
                                split=split)
    key = sources.example_key(seed, index)
    raw = source.raw(key)
    if int(raw["status"]) != sources.STATUS_OK:
        raise ValueError(f"example {index} (seed {seed}) could not be read: {source.bad_samples.report()}")
    from mhr_tf.model import flow_input
    processed = pipeline.process(raw, key, pre)
    processed["inputs"] = flow_input.network_inputs(processed["inputs"], pre)  # the network's channel groups
    values = {k: v.numpy() if isinstance(v, tf.Tensor) else np.asarray(v) for k, v in processed.items()}
    status = int(values["status"])
    if status != sources.STATUS_OK:
        raise RejectedExampleError(f"example {index} (seed {seed}; clip {values['clip'].decode()} from frame "
                         f"{int(values['start'])}) is rejected by the pipeline: {sources.REASONS[status - 1]}; "
                         f"training skips it — try another --index")
    return Example(pre, index, seed, values)


# ---- panels ---------------------------------------------------------------------------------------------------------

def flow_to_rgb(flow: np.ndarray, max_magnitude: float | None = None) -> np.ndarray:
    """[H, W, 2] pixels -> [H, W, 3] uint8, Middlebury-style: hue = direction, brightness = magnitude."""
    import cv2
    magnitude, angle = cv2.cartToPolar(flow[..., 0].astype(np.float32), flow[..., 1].astype(np.float32))
    scale = max_magnitude or max(float(np.percentile(magnitude, 99)), 1e-3)
    hsv = np.zeros(flow.shape[:2] + (3,), np.uint8)
    hsv[..., 0] = (angle * 90 / np.pi).astype(np.uint8)
    hsv[..., 1] = 255
    hsv[..., 2] = np.clip(magnitude / scale * 255, 0, 255).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def heatmap_panel(crop: np.ndarray, heatmaps: np.ndarray) -> np.ndarray:
    """[S, S, 3] uint8: the crop `[S, S, 3]` (0-255) in grey, the heatmaps `[S, S, K]` (their maximum) in yellow."""
    grey = np.asarray(crop, np.float32).mean(axis=-1, keepdims=True) * (1.0 - HEAT_WEIGHT)
    heat = np.asarray(heatmaps, np.float32).max(axis=-1, keepdims=True)
    yellow = HEAT_WEIGHT * 255.0 * heat * np.array([1.0, 1.0, 0.0], np.float32)
    return np.clip(np.rint(grey + yellow), 0, 255).astype(np.uint8)


def _composite(ex: dict, i: int) -> np.ndarray:
    """Frame i of the composite with its box and its 12 heatmap keypoints (green visible, red hidden)."""
    import cv2
    image = np.ascontiguousarray(ex["frames"][i])
    centre, size = ex["box_centre"][i], float(ex["box_size"][i])
    x0, y0 = (centre - size / 2).astype(int)
    x1, y1 = (centre + size / 2).astype(int)
    cv2.rectangle(image, (int(x0), int(y0)), (int(x1), int(y1)), BOX_COLOUR, 1)
    visible = ex["keypoints_visible"][i]
    for (u, v), shown in zip(ex["joints14_2d"][i, :len(visible)], visible):
        cv2.circle(image, (int(round(u)), int(round(v))), 3, VISIBLE_COLOUR if shown else HIDDEN_COLOUR, -1)
    if ex["occluded"][i] > 0.5:
        cv2.putText(image, "TOTAL OCCLUSION", (5, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 0), 1)
    return image


def _background(ex: dict, i: int) -> np.ndarray:
    """Frame i of the cropped background with the SLIC superpixels' edges and the applied occluder tinted red."""
    image = ex["background"][i].copy()
    labels = ex["superpixels"][i]
    edges = np.zeros(labels.shape, bool)
    edges[:-1] |= labels[:-1] != labels[1:]
    edges[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    image[edges] = 255
    occluder = ex["occluder"][i]
    image[occluder] = (image[occluder] * 0.4 + OCCLUDER_TINT).astype(np.uint8)
    return image


def crops_of(example: Example) -> np.ndarray:
    """[P, S, S, 3] uint8: pair p's crop of frame p, from the RGB input channels when the contract has them, else
    cut from the composite with the same boxes (`crops.paired_crops`)."""
    from mhr_tf.data import crops
    from mhr_tf.model import trunk
    ex, pre = example.values, example.pre
    layout = trunk.channel_layout(pre.channels.names)
    if "rgb" in layout:
        rgb = (ex["inputs"][..., layout["rgb"]] + 1.0) * 127.5
    else:
        rgb = crops.paired_crops(ex["frames"], ex["box_centre"], ex["box_size"], pre.crop_size)[:, 0].numpy()
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def panels(example: Example) -> dict[str, np.ndarray]:
    """Column title -> `[P, h, w, 3]` uint8 pictures, one per pair; flow and heatmaps only when the contract has
    them, read where `trunk.channel_layout` puts them."""
    from mhr_tf.model import trunk
    ex, pre = example.values, example.pre
    layout = trunk.channel_layout(pre.channels.names)
    pairs = range(example.num_pairs)
    crop = crops_of(example)
    out = {"SURREAL person (camera-tracked)": ex["person_rgb"][:example.num_pairs],
           "background: SLIC edges, applied occluder red": np.stack([_background(ex, i) for i in pairs]),
           "composite: box, keypoints (green visible, red hidden)": np.stack([_composite(ex, i) for i in pairs]),
           "crop (pair box)" + (" = RGB channels" if "rgb" in layout else ""): crop}
    if "flow" in layout:
        flow_px = ex["inputs"][..., layout["flow"]][..., :2] * pre.flow.divisor
        out[f"flow channels (colour-coded, {pre.flow.backend})"] = np.stack([flow_to_rgb(f) for f in flow_px])
    if "heatmaps" in layout:
        heat = ex["inputs"][..., layout["heatmaps"]]
        out[f"heatmap channels (σ {pre.sigma_px:.1f} px) over the crop"] = np.stack(
            [heatmap_panel(c, h) for c, h in zip(crop, heat)])
    return out


def heatmap_key(columns: dict) -> str | None:
    return next((k for k in columns if k.startswith("heatmap")), None)


def _title(example: Example) -> str:
    ex = example.values
    return (f"example {example.index} (seed {example.seed}): {ex['clip'].decode()} from frame {int(ex['start'])}, "
            f"background {ex['video'].decode()} from frame {int(ex['video_start'])}; SLIC occluder "
            f"{'applied' if ex['occluded_by_slic'] else 'discarded'}, {int(ex['occluded'].sum())} totally occluded "
            f"frames, {ex['keypoints_visible'].mean():.0%} keypoints visible; inputs: "
            f"{' + '.join(example.pre.channels.names)}, {example.pre.num_frames} frames, {example.pre.crop_size}-px "
            f"crops")


def write_sheet(example: Example, png) -> Path:
    """The contact sheet: a row per shown pair (first, thirds, last), a column per panel."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    columns = panels(example)
    p = example.num_pairs
    shown = sorted({0, p // 3, (2 * p) // 3, p - 1})
    figure, axes = plt.subplots(len(shown), len(columns), figsize=(3.2 * len(columns), 2.6 * len(shown)),
                                squeeze=False)
    for r, pair in enumerate(shown):
        for c, (title, pictures) in enumerate(columns.items()):
            axis = axes[r, c]
            axis.imshow(pictures[pair], interpolation="nearest")
            axis.set_xticks([])
            axis.set_yticks([])
            if r == 0:
                axis.set_title(title, fontsize=8)
            if c == 0:
                axis.set_ylabel(f"pair {pair} (frames {pair}, {pair + 1})", fontsize=8)
    figure.suptitle(_title(example), fontsize=8, wrap=True)
    figure.tight_layout()
    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(png, dpi=90)
    plt.close(figure)
    return png


def write_movie(example: Example, mp4) -> Path:
    """Composite | flow | heatmaps (what the contract has), pair by pair, at MOVIE_FPS."""
    import cv2

    from mhr_tf.data import videos
    columns = panels(example)
    wanted = [k for k in columns if k.startswith(("composite", "flow", "heatmap"))]
    height = max(MOVIE_HEIGHT, example.pre.crop_size) // 2 * 2
    frames = []
    for pair in range(example.num_pairs):
        tiles = []
        for key in wanted:
            tile = columns[key][pair]
            width = int(round(tile.shape[1] * height / tile.shape[0]))
            tiles.append(cv2.resize(tile, (width, height), interpolation=cv2.INTER_NEAREST))
        row = np.concatenate(tiles, axis=1)
        frames.append(row[:, :row.shape[1] // 2 * 2])
    return videos.write_video(mp4, np.stack(frames), fps=MOVIE_FPS)


def run(out_dir, *, model_dir=None, gin_files=(), gin_params=(), surreal_root=None, background_root=None,
        index: int = 0, seed: int = 0, all_channels: bool = False, movie: bool = True) -> dict[str, Path]:
    """What `scripts/show_example.py` does: `example_<index>.png` (and `.mp4`) in `out_dir`; returns the paths."""
    pre = contract(model_dir, gin_files, gin_params, all_channels)
    example = make_example(pre, surreal_root, background_root, index, seed)
    out_dir = Path(out_dir)
    written = {"png": write_sheet(example, out_dir / f"example_{index}.png")}
    if movie:
        written["mp4"] = write_movie(example, out_dir / f"example_{index}.mp4")
    return written
