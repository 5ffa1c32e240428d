"""Show one training example as pictures: every rule of the paper's pipeline at work.

    python scripts/show_example.py [--surreal_root DIR] [--background_root DIR] [--index 0] [--out DIR]
        [--num_frames 31] [--crop_size 224] [--gin_file gin/full.gin]

Writes <out>/example_<index>.png (a contact sheet: SURREAL person, background with the SLIC occluder, composite with
the box and visible/hidden keypoints, the RGB crop, colour-coded flow, heatmaps over the crop) and
<out>/example_<index>.mp4 (composite | flow | heatmaps, frame by frame). Data roots default to the simulator's.
"""
import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def flow_to_rgb(flow, max_magnitude=None):
    """Middlebury-style colour coding: hue = direction, brightness = magnitude."""
    import cv2
    import numpy as np
    magnitude, angle = cv2.cartToPolar(flow[..., 0].astype(np.float32), flow[..., 1].astype(np.float32))
    scale = max_magnitude or max(float(np.percentile(magnitude, 99)), 1e-3)
    hsv = np.zeros(flow.shape[:2] + (3,), np.uint8)
    hsv[..., 0] = (angle * 90 / np.pi).astype(np.uint8)
    hsv[..., 1] = 255
    hsv[..., 2] = np.clip(magnitude / scale * 255, 0, 255).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--surreal_root", default=None)
    parser.add_argument("--background_root", default=None)
    parser.add_argument("--index", type=int, default=0, help="example index (its seed is derived from it)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num_frames", type=int, default=31)
    parser.add_argument("--crop_size", type=int, default=224)
    parser.add_argument("--gin_file", action="append", default=[], help="gin files for Augmentation settings")
    parser.add_argument("--out", default="show_example")
    args = parser.parse_args(argv)

    import cv2
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import tensorflow as tf
    from mhr_tf import train
    from mhr_tf.data import keypoints, pipeline, videos

    train.parse_gin(args.gin_file)
    augmentation = pipeline.Augmentation()
    channels = pipeline.Channels(use_rgb=True, use_flow=True, use_keypoints=True)  # show every channel
    source = pipeline.SyntheticSource(args.surreal_root or train.simulator_root("surreal"),
                                      args.background_root or train.simulator_root("backgrounds"), "train",
                                      args.num_frames, args.seed, augmentation=augmentation)
    raw = source(args.index)
    if source.bad_samples.count:
        sys.exit(f"example {args.index} is a bad sample: {source.bad_samples.report()}")
    ex = pipeline.process_synthetic({k: tf.constant(v) for k, v in raw.items()}, tf.constant(args.index, tf.int64),
                                    seed=args.seed, channels=channels, augmentation=augmentation,
                                    crop_size=args.crop_size, flow_backend="dis")
    ex = {k: np.asarray(v) for k, v in ex.items()}
    s = args.crop_size
    inputs = ex["inputs"]  # [T-1, S, S, 3 + 3 + 12 + 1]
    crop_rgb = ((inputs[..., :3] + 1) * 127.5).clip(0, 255).astype(np.uint8)
    flow_px = inputs[..., 3:5] * 20.0
    heat = inputs[..., 6:18].max(-1)
    t = len(ex["frames"])
    shown = sorted({0, t // 3, (2 * t) // 3, t - 2})

    def annotate(frame_index):
        image = ex["frames"][frame_index].copy()
        c, size = ex["box_centre"][frame_index], ex["box_size"][frame_index]
        x0, y0 = (c - size / 2).astype(int)
        x1, y1 = (c + size / 2).astype(int)
        cv2.rectangle(image, (x0, y0), (x1, y1), (255, 0, 255), 1)
        for (u, v), vis in zip(ex["joints14_2d"][frame_index, :keypoints.NUM_HEATMAPS],
                               ex["keypoints_visible"][frame_index]):
            cv2.circle(image, (int(round(u)), int(round(v))), 3, (0, 255, 0) if vis else (255, 0, 0), -1)
        if ex["occluded"][frame_index]:
            cv2.putText(image, "TOTAL OCCLUSION", (5, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 0), 1)
        return image

    def background_with_occluder(frame_index):
        image = ex["background"][frame_index].copy()
        labels = ex["superpixels"][frame_index]
        edges = np.zeros(labels.shape, bool)
        edges[:-1] |= labels[:-1] != labels[1:]
        edges[:, :-1] |= labels[:, :-1] != labels[:, 1:]
        image[edges] = (255, 255, 255)
        image[ex["occluder"][frame_index]] = (image[ex["occluder"][frame_index]] * 0.4 + [150, 0, 0]).astype(np.uint8)
        return image

    columns = [("SURREAL person (tracked)", lambda i: ex["person_rgb"][i]),
               ("background, SLIC (applied occluder red)", background_with_occluder),
               ("composite: box, keypoints (green visible, red hidden)", annotate),
               ("RGB crop (pair box)", lambda i: crop_rgb[i]),
               ("flow (colour-coded)", lambda i: flow_to_rgb(flow_px[i])),
               ("heatmaps over crop", lambda i: (0.5 * crop_rgb[i] + 0.5 * 255 * heat[i][..., None] * [1, 1, 0])
                .clip(0, 255).astype(np.uint8))]
    figure, axes = plt.subplots(len(shown), len(columns), figsize=(3.2 * len(columns), 2.6 * len(shown)))
    for r, frame_index in enumerate(shown):
        for c, (title, make) in enumerate(columns):
            ax = axes[r, c]
            ax.imshow(make(frame_index))
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(title, fontsize=8)
            if c == 0:
                ax.set_ylabel(f"frame {frame_index}", fontsize=8)
    figure.suptitle(f"example {args.index}: SLIC occluder {'applied' if ex['occluded_by_slic'] else 'discarded'}, "
                    f"{int(ex['occluded'].sum())} totally occluded frames, "
                    f"{ex['keypoints_visible'].mean():.0%} keypoints visible", fontsize=10)
    figure.tight_layout()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    png = out / f"example_{args.index}.png"
    figure.savefig(png, dpi=90)
    plt.close(figure)

    movie = []
    for i in range(t - 1):
        composite_frame = cv2.resize(annotate(i), (s * 320 // 240, s))
        heat_frame = (0.5 * crop_rgb[i] + 0.5 * 255 * heat[i][..., None] * [1, 1, 0]).clip(0, 255).astype(np.uint8)
        row = np.concatenate([composite_frame, flow_to_rgb(flow_px[i]), heat_frame], axis=1)
        movie.append(row[:, : row.shape[1] // 2 * 2])
    mp4 = videos.write_video(out / f"example_{args.index}.mp4", np.stack(movie)[:, : s // 2 * 2], fps=10)
    print(f"wrote {png} and {mp4}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
