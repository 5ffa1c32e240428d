"""TensorFlow Datasets builders for the training sources, built with Apache Beam.

    surreal_clips     SURREAL clips, whole, with the body's 14 evaluation joints
    background_clips  Kinetics-style videos as stored windows (resized, uncropped) with camera motion and SLIC labels

Each example holds everything the online pipeline needs, so the pipeline (`mhr_tf.data.sources.TFDSSource`) is TF
ops only and runs on tf.data service: it draws a clip's start and crop per example and decodes only those frames
(`tf.io.decode_png`/`decode_jpeg`), giving the same raw example as the Python decoders of the files.

Licensed data is never downloaded: it comes through TFDS's manual-download directory (`--manual_dir`, default
`~/tensorflow_datasets/downloads/manual`), one folder per source (each builder's MANUAL_DOWNLOAD_INSTRUCTIONS says
where to get it):

    <manual_dir>/surreal/         SURREAL's data/cmu (train/, val/, test/)  | sim_surreal/      the simulator's
    <manual_dir>/kinetics/        <label>/<id>.mp4                          | sim_backgrounds/  the simulator's

The simulator (`python scripts/make_synthetic.py {surreal,backgrounds} --out <manual_dir>/sim_...`) writes
the same formats and builds through the same builders, under the `sim_*` configs: a `sim_*` config refuses a file
that is not simulated and a real config refuses one that is, so simulated data never passes for real data.

Build with `python scripts/build_datasets.py NAME[/CONFIG] --data_dir D --manual_dir M` (Beam's DirectRunner by
default; any Beam runner through pass-through pipeline options). Without apache_beam installed, the builders fall
back to a plain Python generator (the same examples, one process).
"""
from __future__ import annotations

import functools
import importlib
import importlib.resources.abc
import logging
import sys
from pathlib import Path
from typing import Callable, Iterable


from mhr_tf.body import joints as joint_sets

log = logging.getLogger(__name__)

try:
    import importlib_resources  # noqa: F401
except ImportError:
    # tensorflow-datasets 4.9.10 imports the `importlib_resources` backport when a builder lives in a package but
    # declares it only for Python < 3.9 (tensorflow/datasets issue #11212). The standard library's
    # `importlib.resources` has everything it uses (`abc.Traversable`) on Python >= 3.11.
    sys.modules["importlib_resources"] = importlib.resources

# The dataset names TFDS registers (its snake_case of the builder classes), and the modules defining them.
BUILDER_MODULES = {
    "surreal_clips": "mhr_tf.datasets.surreal_clips",
    "background_clips": "mhr_tf.datasets.background_clips",
}
# Paper §4 / App. A: 31-frame clips by default; Table 3 also trains with 8, 16 and 56.
WINDOW_LENGTHS = (31, 8, 16, 56)
DEFAULT_NUM_FRAMES = 31
NUM_EVALUATION_JOINTS = len(joint_sets.LSP_14)  # HMR's 14 evaluation joints
SIM_PREFIX = "sim_"  # config names and manual-dir folders of the simulator's data
BEAM_NAMESPACE = "mhr_tf"  # Beam counters (skipped files, windows) are reported under this namespace


def builder_class(dataset: str):
    """The builder class of `dataset` ("surreal_clips", ...); importing its module registers it with TFDS."""
    if dataset not in BUILDER_MODULES:
        raise ValueError(f"dataset {dataset!r}: expected one of {sorted(BUILDER_MODULES)}")
    return importlib.import_module(BUILDER_MODULES[dataset]).BUILDER


def builder(name: str, config_overrides: dict[str, str] | None = None, **kwargs):
    """The TFDS builder for `name` ("surreal_clips", or with a config "surreal_clips/sim_t31"; the first config by
    default). `config_overrides` changes settings of that config (e.g. {"slic_downsample": "2"}) under a config name
    that says so. `kwargs` go to the builder (`data_dir`, `body_model_path`, `use_beam`, `skip_bad_files`)."""
    dataset, _, config_name = name.partition("/")
    cls = builder_class(dataset)
    configs = {c.name: c for c in cls.BUILDER_CONFIGS}
    config = configs.get(config_name or cls.BUILDER_CONFIGS[0].name)
    if config is None:
        raise ValueError(f"{dataset}: no config {config_name!r}; expected one of {sorted(configs)}")
    return cls(config=_override_config(config, dict(config_overrides or {})), **kwargs)


# --------------------------------------------------------------------------------------------------------------------
# Beam or a plain generator: the same per-item function either way.

def beam_available() -> bool:
    try:
        import apache_beam  # noqa: F401
    except ImportError:
        return False
    return True


def generate(items: list, process: Callable[[object], Iterable[tuple[str, dict]]], use_beam: bool, stage: str,
             errors: tuple[type[Exception], ...] = (), skip_bad_files: bool = True):
    """What a builder's `_generate_examples` returns: `process(item)` yields `(key, example)` for each item.

    With Beam, a PTransform (Create -> Reshuffle -> FlatMap) that TFDS runs on the configured runner: the reshuffle
    spreads the items over workers (a runner would otherwise keep Create's single bundle on one worker). Without it,
    a generator in this process. `process` must be picklable (a module-level function or a partial of one).
    An item failing with one of the decoders' format `errors` is skipped (see `Guarded`).
    """
    guarded = Guarded(process, errors, stage, skip_bad_files)
    if not use_beam:
        return (pair for item in items for pair in guarded(item))
    import apache_beam as beam
    return (f"{stage}Items" >> beam.Create(items) | f"{stage}Spread" >> beam.Reshuffle()
            | f"{stage}Examples" >> beam.FlatMap(guarded))


def count(name: str, value: int = 1) -> None:
    """A Beam counter when running inside a Beam worker (reported with the pipeline's result); a no-op otherwise."""
    try:
        from apache_beam.metrics import Metrics
    except ImportError:
        return
    Metrics.counter(BEAM_NAMESPACE, name).inc(value)


class Guarded:
    """`process(item)`'s examples as a list; an item failing with one of the decoders' format `errors` is logged with
    its reason and counted (`<stage>_bad_files`) and gives none, so one broken download does not stop a day-long
    build. With `skip_bad_files=False`, it raises. Picklable when `process` is."""

    def __init__(self, process: Callable, errors: tuple[type[Exception], ...], stage: str, skip_bad_files: bool):
        self.process, self.errors, self.stage, self.skip_bad_files = process, tuple(errors), stage, skip_bad_files

    def __call__(self, item) -> list[tuple[str, dict]]:
        try:
            return list(self.process(item))
        except ProvenanceError:
            raise  # a real file among simulated ones (or the reverse) is a set-up error, never a bad file
        except self.errors as error:
            if not self.skip_bad_files:
                raise
            log.warning("%s: skipping %s: %s: %s", self.stage, item, type(error).__name__, error)
            count(f"{self.stage}_bad_files")
            return []


# --------------------------------------------------------------------------------------------------------------------
# Windows, seeds, manual-dir folders, simulated vs real

def source_root(manual_dir, folder: str, looks_right: Callable[[Path], bool], instructions: str) -> Path:
    """The folder holding one source's files: `<manual_dir>/<folder>`, or `manual_dir` itself when it has the
    source's layout (`looks_right`)."""
    manual_dir = Path(manual_dir)
    for candidate in (manual_dir / folder, manual_dir):
        if candidate.is_dir() and looks_right(candidate):
            return candidate
    raise FileNotFoundError(f"{manual_dir / folder}: not found or not in the expected layout (nor is {manual_dir} "
                            f"itself).\n{instructions}")


class ProvenanceError(RuntimeError):
    """A simulator file where real data is built, or a real file where simulated data is built."""


def check_provenance(path, is_simulated: bool, simulated: bool, dataset: str) -> None:
    """A file must be simulated in a `sim_*` config and real otherwise: simulated data never passes for real."""
    if is_simulated == simulated:
        return
    if is_simulated:
        raise ProvenanceError(f"{path}: a simulator file in the real-data config of {dataset} — build it with a "
                         f"'{SIM_PREFIX}*' config from <manual_dir>/{SIM_PREFIX}... instead")
    raise ProvenanceError(f"{path}: not a simulator file, but the config of {dataset} is a simulated one "
                     f"('{SIM_PREFIX}*') — real data builds under the configs without the prefix")


# --------------------------------------------------------------------------------------------------------------------
# The body model, loaded once per worker process

@functools.lru_cache(maxsize=None)
def body_model(path: str | None, gender: str):
    """The joints of `mhr_tf.body.smpl.load_body_model(path, gender)` (`smpl.joint_model`: the same 24 and 14
    joints, ~10x faster than the whole mesh), loaded once per process (a Beam worker loads each once)."""
    from mhr_tf.body import smpl
    return smpl.joint_model(smpl.load_body_model(path, gender))


def body_model_metadata(body_model_path) -> str:
    """What the builder records as the body model its 14 evaluation joints come from."""
    return "open body model (mhr_tf.body.open_body)" if body_model_path is None else str(body_model_path)


# --------------------------------------------------------------------------------------------------------------------
# Building (what scripts/build_datasets.py calls)

RUNNER_HELP = """\
Beam runners (every argument the script does not know goes to Beam's PipelineOptions):

  Local, one process (default):  --beam_runner DirectRunner
  Local, all cores:              --beam_runner DirectRunner --direct_num_workers=0 \\
                                 --direct_running_mode=multi_processing
  Apache Flink:                  --beam_runner FlinkRunner --flink_master=HOST:8081 --sdk_container_image=IMAGE
  Apache Spark:                  --beam_runner SparkRunner --spark_master_url=spark://HOST:7077 \\
                                 --sdk_container_image=IMAGE
  Google Cloud Dataflow:         --beam_runner DataflowRunner --project=P --region=R \\
                                 --temp_location=gs://BUCKET/tmp --sdk_container_image=IMAGE

IMAGE: Beam's Python SDK image of the installed version (apache/beam_python3.11_sdk:<beam version>) with
`pip install mhr_tf` added, so every worker runs the builders' code (Dataflow also takes
--extra_package=<mhr_tf wheel> --requirements_file=<file> instead; Flink and Spark also take
--environment_type=PROCESS with a venv on every node, see Beam's portability docs). Flink and Spark run through
Beam's Java job server (a jar; --flink_job_server_jar / --spark_job_server_jar point at a local copy).
Workers read the licensed files with OpenCV and scipy, so --manual_dir must be a POSIX path every worker sees
(NFS, Lustre, a GCS FUSE mount); --data_dir may be any path TensorFlow writes to (local, NFS, gs://).
"""


def _override_config(base, overrides: dict[str, str]):
    """`base` with some fields replaced (values parsed by the field's type); its name lists the changes (a clip length
    `num_frames` replaces the `t<T>` of the name, which is how a source finds the config for its clips)."""
    import dataclasses
    import re
    if not overrides:
        return base
    fields = {f.name: f for f in dataclasses.fields(base)}
    values = {}
    for key, text in overrides.items():
        if key not in fields or key in ("name", "version", "release_notes", "supported_versions", "tags"):
            raise ValueError(f"config override {key!r}: {type(base).__name__} has no such setting (expected one of "
                             f"{sorted(k for k in fields if k not in ('name', 'version', 'release_notes'))})")
        current = getattr(base, key)
        if isinstance(current, bool):
            values[key] = text.lower() in ("1", "true", "yes")
        elif isinstance(current, int):
            values[key] = int(text)
        elif isinstance(current, float):
            values[key] = float(text)
        else:
            values[key] = text
    name = base.name + "".join(f"_{k}{text}" for k, text in sorted(overrides.items()) if k != "num_frames")
    if "num_frames" in overrides:
        name = re.sub(r"(^|_)t\d+", rf"\g<1>t{values['num_frames']}", name, count=1)
    return dataclasses.replace(base, name=name, description=f"{base.description} ({overrides})", **values)


def build(name: str, data_dir=None, manual_dir=None, *, beam_runner: str | None = "DirectRunner",
          pipeline_args: list[str] | tuple = (), body_model_path=None, use_beam: bool | None = None,
          config_overrides: dict[str, str] | None = None, max_examples_per_split: int | None = None):
    """Build dataset `name` ("surreal_clips/sim_t31", ...) into `data_dir` from `manual_dir`; returns the builder.

    `beam_runner` and `pipeline_args` (Beam's command-line options, e.g. ["--direct_num_workers=2"]) choose where
    Beam runs; `use_beam=False` (or apache_beam missing) builds in this process without Beam. `config_overrides`
    changes settings of the named config (e.g. {"slic_downsample": "2"}), under a config name that says so.
    """
    import tensorflow_datasets as tfds
    kwargs = {"data_dir": data_dir, "use_beam": use_beam}
    if body_model_path is not None:
        if name.startswith("background_clips"):
            raise ValueError("background_clips takes no body model (only surreal_clips does)")
        kwargs["body_model_path"] = body_model_path
    target = builder(name, config_overrides, **kwargs)
    beam_options = None
    if target.use_beam:
        from apache_beam.options.pipeline_options import PipelineOptions
        beam_options = PipelineOptions(list(pipeline_args))
    elif pipeline_args:
        raise ValueError(f"Beam pipeline options {list(pipeline_args)} given, but the build does not use Beam "
                         f"(apache_beam installed: {beam_available()})")
    target.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=None if manual_dir is None else str(manual_dir),
        beam_runner=beam_runner if target.use_beam else None, beam_options=beam_options,
        max_examples_per_split=max_examples_per_split))
    return target
