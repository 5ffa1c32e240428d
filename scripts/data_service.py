"""Run a tf.data service dispatcher or worker for training from many machines.

    python scripts/data_service.py dispatcher --port 5050
    python scripts/data_service.py worker --dispatcher HOST:5050 [--port 5051] [--host THIS_HOST]   # on every machine
    python scripts/train.py --gin_file gin/full.gin --model_dir runs/full --data_service grpc://HOST:5050 \\
        --gin_param "train.source='tfds'" --gin_param "train.tfds_data_dir='/data/tensorflow_datasets'" \\
        --gin_param "FlowSettings.backend='tf_tvl1'"

Both block until killed. Workers run the training job's graph (`mhr_tf.data.pipeline.make_dataset` over the TFDS
source, `mhr_tf.data.sources.TFDSSource`), which the trainer sends them: TF ops only, so a worker needs TensorFlow
(the same version) but not mhr_tf, and the TFDS data_dir at the same path the trainer names.
"""
import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    roles = parser.add_subparsers(dest="role", required=True)
    dispatch = roles.add_parser("dispatcher", help="the job coordinator (one per training job)")
    dispatch.add_argument("--port", type=int, required=True)
    dispatch.add_argument("--worker_timeout_ms", type=int, default=None,
                          help="drop a worker silent this long (TF's default when unset)")
    work = roles.add_parser("worker", help="runs the dataset graph and serves its batches")
    work.add_argument("--dispatcher", required=True, help="HOST:PORT (or grpc://HOST:PORT) of the dispatcher")
    work.add_argument("--port", type=int, default=0, help="0 = any free port")
    work.add_argument("--host", default="localhost", help="the name other machines reach this worker by")
    work.add_argument("--heartbeat_interval_ms", type=int, default=None)
    args = parser.parse_args(argv)

    # TensorFlow only (no mhr_tf import): the graph comes from the trainer, and a worker starts in seconds.
    from tensorflow.data.experimental import service
    if args.role == "dispatcher":
        server = service.DispatchServer(service.DispatcherConfig(port=args.port,
                                                                 worker_timeout_ms=args.worker_timeout_ms))
        print(f"dispatcher serving on port {args.port}", flush=True)
    else:
        server = service.WorkerServer(service.WorkerConfig(
            dispatcher_address=args.dispatcher.removeprefix("grpc://"), worker_address=f"{args.host}:%port%",
            port=args.port, heartbeat_interval_ms=args.heartbeat_interval_ms))
        print(f"worker of {args.dispatcher} serving on port {server._address.rsplit(':', 1)[-1]}", flush=True)
    server.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
