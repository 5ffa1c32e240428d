"""No module of the package imports tensorflow-addons (end-of-life; it fails under Keras 3)."""
import pkgutil
import subprocess
import sys

import mhr_tf


def test_no_module_imports_tensorflow_addons():
    modules = sorted(m.name for m in pkgutil.walk_packages(mhr_tf.__path__, "mhr_tf."))
    assert len(modules) > 30
    code = ("import importlib, sys\n"
            f"for name in {modules!r}:\n"
            "    importlib.import_module(name)\n"
            "print('tensorflow_addons' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "False"
