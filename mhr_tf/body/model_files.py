"""Reading SMPL-layout model files: the official pickles without chumpy (a restricted unpickler whose stand-ins take
the place of chumpy and scipy.sparse classes), and `.npz` files with the same keys. `mhr_tf.body.smpl` checks what
they hold and builds the body model."""
from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

LICENCE_NOTE = ("Official SMPL model files come from https://smpl.is.tue.mpg.de under the SMPL licence: download "
                "them there yourself and never commit them; without them, load_body_model(None) gives the open "
                "body model.")

REQUIRED_KEYS = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f")


class BodyModelError(ValueError):
    """A body model file is missing, unreadable or not in SMPL's layout."""

    def __init__(self, source: Any, message: str):
        super().__init__(f"{source}: {message}. {LICENCE_NOTE}")


class BodyModelNotFoundError(BodyModelError, FileNotFoundError):
    """No body model file where one was asked for."""


class _ChumpyStandIn:
    """Takes the place of any chumpy class while unpickling.

    chumpy's `Ch.__getstate__` pickles the instance `__dict__` (minus its weak caches); a plain `Ch` keeps its value
    under 'x'. Other chumpy classes (expressions) have no 'x' and need chumpy itself to evaluate.
    """
    chumpy_class = "chumpy.ch.Ch"

    def __setstate__(self, state):
        self.state = state

    def value(self, source: Any, key: str) -> np.ndarray:
        state = getattr(self, "state", None)
        if not isinstance(state, dict) or "x" not in state:
            raise BodyModelError(source, f"key '{key}' holds a chumpy '{self.chumpy_class}' object without a stored "
                                         "value 'x' (an unevaluated chumpy expression); expected a plain chumpy Ch "
                                         "or a numpy array")
        return as_array(state["x"], source, key)


class _SparseStandIn:
    """Takes the place of a scipy.sparse matrix class while unpickling, so any scipy version reads the state.

    scipy pickles its sparse matrices as their `__dict__`: `data, indices, indptr` (csc/csr) or `data, row, col`
    (coo), and the shape under '_shape' (older releases: 'shape').
    """
    sparse_format = "csc"

    def __setstate__(self, state):
        self.state = state

    def value(self, source: Any, key: str) -> np.ndarray:
        import scipy.sparse  # only official pickles need scipy
        state = getattr(self, "state", None)
        shape = None
        if isinstance(state, dict):
            shape = state.get("_shape", state.get("shape"))
        try:
            if self.sparse_format == "coo":
                matrix = scipy.sparse.coo_matrix((state["data"], (state["row"], state["col"])), shape=shape)
            else:
                build = scipy.sparse.csc_matrix if self.sparse_format == "csc" else scipy.sparse.csr_matrix
                matrix = build((state["data"], state["indices"], state["indptr"]), shape=shape)
        except (KeyError, TypeError, ValueError) as error:
            raise BodyModelError(source, f"key '{key}' holds a scipy.sparse {self.sparse_format} matrix whose "
                                         f"pickled state is unreadable ({error})") from error
        return np.asarray(matrix.toarray())


def _sparse_stand_in(name: str) -> type:
    for sparse_format in ("csc", "csr", "coo"):
        if name.startswith(sparse_format + "_"):
            return type(name, (_SparseStandIn,), {"sparse_format": sparse_format})
    raise pickle.UnpicklingError(f"scipy.sparse class {name} is not a csc, csr or coo matrix")


# The only globals an SMPL model pickle needs; anything else is refused, so a hostile pickle cannot call arbitrary
# functions. Python 2 names (`__builtin__`, `copy_reg`) are listed as written in the file: `find_class` sees them
# before the base class maps them to Python 3's.
_SAFE_BUILTINS = {"object", "dict", "list", "tuple", "set", "frozenset", "str", "bytes", "bytearray", "int", "float",
                  "complex", "bool", "slice", "range"}
_SAFE_GLOBALS = {
    "builtins": _SAFE_BUILTINS,
    "__builtin__": _SAFE_BUILTINS | {"unicode", "long", "xrange", "basestring"},
    "copyreg": {"_reconstructor", "__newobj__"},
    "copy_reg": {"_reconstructor", "__newobj__"},
    "_codecs": {"encode"},
    "collections": {"OrderedDict"},
    "numpy": {"ndarray", "dtype"},
    "numpy.core.multiarray": {"_reconstruct", "scalar"},
    "numpy._core.multiarray": {"_reconstruct", "scalar"},
    "numpy.core.numeric": {"_frombuffer"},
    "numpy._core.numeric": {"_frombuffer"},
}


class _SMPLUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if module == "chumpy" or module.startswith("chumpy."):
            return type(name, (_ChumpyStandIn,), {"chumpy_class": f"{module}.{name}"})
        if module.startswith("scipy.sparse"):
            return _sparse_stand_in(name)
        if name in _SAFE_GLOBALS.get(module, ()) or (module == "numpy.dtypes" and name.endswith("DType")):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global '{module}.{name}' is not part of an SMPL model file")


def as_array(value: Any, source: Any, key: str) -> np.ndarray:
    if isinstance(value, (_ChumpyStandIn, _SparseStandIn)):
        return value.value(source, key)
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as error:
        raise BodyModelError(source, f"key '{key}' is not an array ({error})") from error
    if array.dtype == object:
        raise BodyModelError(source, f"key '{key}' holds a {type(value).__name__}, expected a numeric array")
    return array


def read_pickle(path: Path) -> Any:
    try:
        with open(path, "rb") as file:
            # latin1: the official files are Python 2 pickles whose numpy buffers are byte strings.
            return _SMPLUnpickler(file, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError, TypeError,
            ValueError) as error:
        raise BodyModelError(path, f"is not a readable SMPL model pickle ({type(error).__name__}: {error})") from error


def read_arrays(path: Path) -> dict[str, Any]:
    """The raw key -> value mapping of a `.pkl` or `.npz` model file (values still chumpy/sparse stand-ins)."""
    if not path.is_file():
        raise BodyModelNotFoundError(path, "no such body model file")
    if path.suffix.lower() == ".npz":
        try:
            with np.load(path, allow_pickle=False) as npz:
                contents = {}
                for key in npz.files:
                    try:
                        contents[key] = npz[key]
                    except ValueError as error:  # object arrays need pickle, which .npz models never do
                        raise BodyModelError(path, f"key '{key}' is not a plain numeric array ({error})") from error
                return contents
        except BodyModelError:
            raise
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
            raise BodyModelError(path, f"is not a readable .npz file ({type(error).__name__}: {error})") from error
    if path.suffix.lower() == ".pkl":
        contents = read_pickle(path)
        if not isinstance(contents, dict):
            raise BodyModelError(path, f"holds a pickled {type(contents).__name__}, expected a dict with SMPL's "
                                       f"keys {', '.join(REQUIRED_KEYS)}")
        return contents
    raise BodyModelError(path, "has an unknown extension, expected an SMPL model '.pkl' or '.npz'")
