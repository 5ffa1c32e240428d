"""The TF-only training graph (`make_dataset` of the TFDS source, flow "tf_tvl1") in this process and on a local
tf.data service: a dispatcher and 1, then 2, worker processes, all addressed on 127.0.0.1; with the flow computed in
the pipeline and in the model (`FlowSettings.placement`: then the workers send the pair crops and compute no flow).

Without `data`, tiny simulator data (4 SURREAL-format clips, 3 background videos) is written and built with the
TFDS builders into a temporary folder. Every run reads `warmup` batches first (graph tracing, XLA compiling on each
worker), then times `batches`. Recorded: wall clips/s, and the CPU seconds per clip of the processes doing the work
(this one locally; on the service, the workers, from /proc, and apart the client's own: receiving and decoding the
batches). The machine is shared, so the CPU cost is the number that carries over; with more workers it should stay
the same per clip (the workers scale linearly), which `scaling` checks: CPU seconds per clip with 2 workers over 1.
"""
from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mhr_tf.bench import common, sim_data
from mhr_tf.data import pipeline, sources
from mhr_tf.data.preprocessing import FlowSettings, Preprocessing

HOST = "127.0.0.1"
STARTUP_TIMEOUT_S = 120
# A dispatcher or a worker: TensorFlow only, as `scripts/data_service.py` runs them (the graph comes from the
# client). Arguments: role, port (0: any free one), the dispatcher's HOST:PORT (workers).
SERVER = """\
import sys
from tensorflow.data.experimental import service
role, port = sys.argv[1], int(sys.argv[2])
if role == "dispatcher":
    server = service.DispatchServer(service.DispatcherConfig(port=port))
else:
    server = service.WorkerServer(service.WorkerConfig(dispatcher_address=sys.argv[3], port=port,
                                                       worker_address="127.0.0.1:%port%"))
print("serving", flush=True)
server.join()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def start_server(*args: str) -> subprocess.Popen:
    """A dispatcher or worker process, returned once it serves."""
    process = subprocess.Popen([sys.executable, "-c", SERVER, *args], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    ready, _, _ = select.select([process.stdout], [], [], STARTUP_TIMEOUT_S)
    if not ready or process.stdout.readline().strip() != "serving":
        process.kill()
        process.wait(timeout=30)
        raise RuntimeError(f"tf.data service {args[0]} did not start within {STARTUP_TIMEOUT_S} s (exit code "
                           f"{process.returncode})")
    return process


def time_batches(dataset, warmup: int, batches: int, worker_pids: list[int]) -> dict:
    """Clips/s over `batches` batches after `warmup`; CPU seconds of this process and of `worker_pids`."""
    iterator = iter(dataset)
    for _ in range(warmup):
        next(iterator)
    workers0, client0, began = sum(map(common.process_cpu_s, worker_pids)), common.cpu_s(), time.perf_counter()
    clips = 0
    for _ in range(batches):
        features, _ = next(iterator)
        clips += int(features["inputs"].shape[0])
    wall = time.perf_counter() - began
    client = common.cpu_s() - client0
    workers = sum(map(common.process_cpu_s, worker_pids)) - workers0
    row = {"clips": clips, "wall_s": wall, "clips_per_s": clips / wall, "client_cpu_s_per_clip": client / clips}
    if worker_pids:
        row.update(workers=len(worker_pids), worker_cpu_s_per_clip=workers / clips)
    row["cpu_s_per_clip"] = (workers if worker_pids else client) / clips  # the processes running the graph
    row["clips_per_cpu_s"] = 1.0 / row["cpu_s_per_clip"] if row["cpu_s_per_clip"] > 0 else None  # per core, CPU time
    row["clips_per_s_per_core"] = row["clips_per_s"] / max(len(worker_pids), 1)  # wall clock
    return row


PLACEMENTS = ("pipeline", "model")
# The service's CPU seconds per clip may grow by this much from 1 to 2 workers and still count as linear scaling.
LINEAR_WITHIN = 0.15


def run(out=None, data=None, num_frames: int = 8, crop: int = 64, batch: int = 2, warmup: int = 3,
        batches: int = 30, workers: tuple[int, ...] = (1, 2), seed: int = 0,
        placements: tuple[str, ...] = PLACEMENTS, compression: str | None = "AUTO") -> dict:
    """Per flow placement: local, then one service per worker count; prints each run and writes the report to `out`
    (JSON) when given. `data`: a TFDS data_dir with `surreal_clips` and `background_clips` for `num_frames`-frame
    clips built. `compression`: of the batches the workers send (`make_dataset`'s `data_service_compression`)."""
    unknown = [p for p in placements if p not in PLACEMENTS]
    if unknown:
        raise ValueError(f"data service benchmark: unknown placements {unknown}; expected from {PLACEMENTS}")
    report = {
        "benchmark": "tf.data service (mhr_tf.bench.data_service)",
        "what": "clips/s of pipeline.make_dataset with the TFDS source and flow 'tf_tvl1' (TF ops only; flow + "
                "keypoint channels), the flow in the pipeline or in the model, in this process and on tf.data service "
                "workers on this machine; CPU s per clip of the processes running the graph",
        "settings": {"num_frames": num_frames, "crop_size": crop, "batch_size": batch, "warmup_batches": warmup,
                     "timed_batches": batches, "workers": list(workers), "placements": list(placements),
                     "compression": compression},
        "machine": common.machine(), "preprocessing": {}, "runs": {}, "scaling": {},
    }
    with tempfile.TemporaryDirectory(prefix="mhr_tf_bench_service_") as scratch:
        if data is None:
            made = sim_data.make_sim_data(scratch, num_frames, surreal_clips=4, background_videos=3,
                                          video_frames=num_frames + 4, slic_downsample=2)
            source = sources.TFDSSource(made.tfds, num_frames, surreal_config=made.surreal_config,
                                        background_config=made.background_config)
        else:
            source = sources.TFDSSource(Path(data), num_frames)
        for placement in placements:
            pre = Preprocessing(num_frames=num_frames, crop_size=crop,
                                flow=FlowSettings(backend="tf_tvl1", placement=placement))
            report["preprocessing"][placement] = pre.to_json()
            name = f"{placement}/local"
            report["runs"][name] = {"placement": placement, **time_batches(
                pipeline.make_dataset(source, pre, batch, seed), warmup, batches, [])}
            print(name, report["runs"][name], flush=True)
            for count in workers:
                port = free_port()
                processes = [start_server("dispatcher", str(port))]
                try:
                    processes += [start_server("worker", "0", f"{HOST}:{port}") for _ in range(count)]
                    dataset = pipeline.make_dataset(source, pre, batch, seed, data_service=f"grpc://{HOST}:{port}",
                                                    job_name=f"benchmark_{placement}_{count}",
                                                    data_service_compression=compression)
                    name = f"{placement}/service_{count}_worker{'s' * (count > 1)}"
                    report["runs"][name] = {"placement": placement, **time_batches(
                        dataset, warmup, batches, [p.pid for p in processes[1:]])}
                    print(name, report["runs"][name], flush=True)
                finally:
                    for process in processes:
                        process.kill()
                        process.wait(timeout=30)
            report["scaling"][placement] = scaling(report["runs"], placement, workers)
            if out is not None:  # after every placement: a long run that is stopped keeps what it measured
                common.write_json(out, report)
    report["machine"]["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    if out is not None:
        print(f"wrote {common.write_json(out, report)}")
    return report


def scaling(runs: dict, placement: str, workers: tuple[int, ...]) -> dict:
    """CPU seconds per clip of the most workers over the fewest: 1.0 is perfectly linear scaling."""
    measured = [(n, runs[f"{placement}/service_{n}_worker{'s' * (n > 1)}"]) for n in sorted(workers)]
    if len(measured) < 2 or not measured[0][1]["cpu_s_per_clip"]:
        return {}
    (low, first), (high, last) = measured[0], measured[-1]
    ratio = last["cpu_s_per_clip"] / first["cpu_s_per_clip"]
    return {"workers": [low, high], "cpu_s_per_clip_ratio": ratio, "linear_within": LINEAR_WITHIN,
            "linear": abs(ratio - 1.0) <= LINEAR_WITHIN,
            "clips_per_s_ratio": last["clips_per_s"] / first["clips_per_s"]}
