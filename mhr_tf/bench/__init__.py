"""Benchmarks of mhr_tf's own code on this machine, one module each; `scripts/benchmark*.py` are their entry points.

    body          the SMPL-layout body layer, forward and forward+backward           benchmarks/body.json
    sim           the renderer, background videos, the simulator's sequences         benchmarks/sim.json
    flow          the flow backends' error and CPU cost on pairs with known motion    benchmarks/flow.json
    pipeline      the training pipeline (`make_dataset`), both sources, per stage     benchmarks/pipeline.json
    data_service  the TFDS-source graph here and on a local tf.data service           benchmarks/data_service.json
    model         the training loop's step (`make_train_step`) and serving            benchmarks/model.json
                  (`model_accuracy`: what mixed_bfloat16 does to the loss, gradients and fit)
    runner        all of them, each in its own process, and the table                 benchmarks/results.json, README.md

`common` holds the clocks, tables and JSON they share; `sim_data` makes the simulator data the pipeline ones read.

The machine is usually shared, so every benchmark records CPU seconds (`time.process_time`, or /proc for worker
processes) beside wall time, and the load average.

This module imports nothing heavy: `pin_threads` must run before numpy, OpenCV or TensorFlow load their pools.
"""
import os

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def pin_threads(threads: int = 1) -> None:
    """BLAS/OpenMP pools of `threads` threads (unless the user set them): the one-core benchmarks' unit of cost.
    Only effective before numpy and OpenCV are imported; TensorFlow's and OpenCV's own pools are set at run time."""
    for name in THREAD_VARIABLES:
        os.environ.setdefault(name, str(threads))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
