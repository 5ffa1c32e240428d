"""Throughput of the TF-only online pipeline (issue 9 §2): in this process, and on tf.data service with 1 and 2 workers.

    python scripts/benchmark_data_service.py [--data TFDS_DIR] [--num_frames 8] [--crop 64] [--batches 8]
                                             [--workers 1,2] [--out benchmarks/data_service.json]

Without --data, tiny simulator data (4 SURREAL-format clips, 3 background videos) is written and built with the TFDS
builders into a temporary folder. Every run reads `--warmup` batches first (graph tracing, XLA compiling the TF
TV-L1 on each worker), then times `--batches`. Wall clips/s and the CPU seconds per clip of the processes doing the
work (this one locally; the workers, from /proc, on the service) are both recorded: the machine is shared, so the
CPU cost is the number that carries over.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
REPO = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def build_tiny_data(root: Path, num_frames: int) -> Path:
    from mhr_tf import datasets
    from mhr_tf.data import camera_motion, videos
    from mhr_tf.sim import make
    manual, out = root / "manual", root / "tfds"
    make.write_set("surreal", manual / "sim_surreal", 4, num_frames + 4, seed=0, split="train", progress=False)
    make.write_set("backgrounds", manual / "sim_backgrounds", 3, num_frames + 4, seed=0, progress=False)
    for entry in videos.list_videos(manual / "sim_backgrounds"):
        camera_motion.preprocess_video(entry.path, method="dis", scale=1.0)
    datasets.build("surreal_clips/sim_t8", out, manual, use_beam=False,
                   config_overrides={"num_frames": str(num_frames)})
    datasets.build("background_clips/sim_t8", out, manual, use_beam=False,
                   config_overrides={"num_frames": str(num_frames), "slic_downsample": "2"})
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process (and its waited-for children), from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(v) for v in fields[11:15]) / CLOCK_TICKS


def time_batches(dataset, warmup: int, batches: int, pids: list[int]) -> dict:
    iterator = iter(dataset)
    for _ in range(warmup):
        next(iterator)
    cpu0, began = sum(cpu_seconds(p) for p in pids), time.time()
    clips = 0
    for _ in range(batches):
        features, _ = next(iterator)
        clips += int(features["inputs"].shape[0])
    wall, cpu = time.time() - began, sum(cpu_seconds(p) for p in pids) - cpu0
    return {"clips": clips, "wall_s": round(wall, 2), "clips_per_s": round(clips / wall, 3),
            "cpu_s_per_clip": round(cpu / clips, 3)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(REPO / "scripts" / "data_service.py"), *args], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=None, help="TFDS data_dir with surreal_clips and background_clips built")
    parser.add_argument("--num_frames", type=int, default=8)
    parser.add_argument("--crop", type=int, default=64)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "data_service.json"))
    args = parser.parse_args(argv)

    from mhr_tf.data import pipeline, service
    data = Path(args.data) if args.data else build_tiny_data(Path(tempfile.mkdtemp(prefix="mhr_tf_bench_")),
                                                             args.num_frames)
    options = dict(num_frames=args.num_frames, batch_size=args.batch, crop_size=args.crop, seed=0,
                   channels=pipeline.Channels(), flow_backend=service.DEFAULT_FLOW_BACKEND)
    runs = {"local": time_batches(service.make_service_dataset(data, **options), args.warmup, args.batches,
                                  [os.getpid()])}
    print("local", runs["local"], flush=True)
    for count in (int(c) for c in args.workers.split(",")):
        port = free_port()
        processes = [start("dispatcher", "--port", str(port))]
        try:
            processes += [start("worker", "--dispatcher", f"127.0.0.1:{port}", "--host", "127.0.0.1")
                          for _ in range(count)]
            dataset = service.make_service_dataset(data, **options, data_service=f"grpc://127.0.0.1:{port}",
                                                   job_name=f"benchmark_{count}")
            name = f"service_{count}_worker{'s' * (count > 1)}"
            runs[name] = time_batches(dataset, args.warmup, args.batches, [p.pid for p in processes[1:]])
            print(name, runs[name], flush=True)
        finally:
            for process in processes:
                process.kill()
                process.wait(timeout=10)
    result = {
        "what": "clips/s of mhr_tf.data.service.make_service_dataset (TF ops only, flow backend "
                f"'{service.DEFAULT_FLOW_BACKEND}', flow + keypoint channels), here and on tf.data service workers "
                "on this machine; CPU s per clip of the working processes",
        "settings": {"num_frames": args.num_frames, "crop_size": args.crop, "batch_size": args.batch,
                     "warmup_batches": args.warmup, "timed_batches": args.batches},
        "machine": {"cores": os.cpu_count(), "load_average_1min_at_end": round(os.getloadavg()[0], 2),
                    "python": platform.python_version()},
        "runs": runs,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
