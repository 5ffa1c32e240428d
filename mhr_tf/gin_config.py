"""gin at the edges: parsing a run's config files, and refusing a binding that cannot take effect.

Only the few builders are configurable (`train`, `Preprocessing` and its parts, `ModelConfig`, `BadSampleBudget`,
`learning_rate_schedule`, `make_strategy`); everything below them takes plain arguments. A binding of a parameter
that the caller also passes explicitly would be silently overridden: `call` refuses it.
"""
from __future__ import annotations

from pathlib import Path

import gin

REPO = Path(__file__).resolve().parent.parent
GIN_DIR = REPO / "gin"


class DeadBindingError(ValueError):
    """A gin binding that the caller overrides, so it could never take effect."""


def parse(files, bindings=()) -> None:
    """Loads gin files (paths, or names inside the repository such as "gin/full.gin") and bindings;
    `include 'gin/x.gin'` lines resolve against the repository root whatever the working directory."""
    from mhr_tf.training import loop  # noqa: F401  (registers train, ModelConfig, ... which the files bind)
    gin.add_config_file_search_path(str(REPO))
    resolved = [f if Path(f).exists() or Path(f).is_absolute() else str(REPO / f) for f in files]
    gin.parse_config_files_and_bindings(resolved, list(bindings))


def bound(name: str) -> bool:
    """Whether `scope.parameter` has a gin binding."""
    try:
        gin.query_parameter(name)
    except ValueError:
        return False
    return True


def call(function, name: str, **explicit):
    """`function(**explicit)`, refusing when one of `explicit`'s parameters also has a gin binding `name.param`."""
    dead = [key for key in explicit if bound(f"{name}.{key}")]
    if dead:
        raise DeadBindingError(
            "; ".join(f"gin binding {name}.{key} = {gin.query_parameter(f'{name}.{key}')!r} cannot take effect: "
                      f"the caller passes {key}={explicit[key]!r}" for key in dead)
            + " — remove the binding or the command-line flag")
    return function(**explicit)
