"""torch (about 1.4 s to import) is imported only by code that computes with it (sgdlab/_lazy.py).

Each check runs in a fresh interpreter: this one imported torch long ago.
"""

import json
import os
import subprocess
import sys

import pytest

from sgdlab._lazy import LazyModule


def _python(code: str, **env) -> dict:
    """Run code in a fresh interpreter; it prints one JSON object, returned here."""
    environ = {k: v for k, v in os.environ.items() if k != "SGDLAB_NO_CACHE"} | env
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environ, check=True)
    return json.loads(out.stdout.splitlines()[-1])


def test_importing_every_module_of_the_package_does_not_import_torch():
    found = _python("""
import json, pkgutil, sys, sgdlab, sgdlab.cli
names = [m.name for m in pkgutil.walk_packages(sgdlab.__path__, "sgdlab.") if not m.name.endswith("__main__")]
for name in names:
    __import__(name)
print(json.dumps({"modules": names, "torch": "torch" in sys.modules}))
""")
    assert {"sgdlab.engine", "sgdlab.kernels", "sgdlab.serial", "sgdlab.plots.steepest", "sgdlab._kernels",
            "sgdlab.render.execute"} <= set(found["modules"])
    assert found["torch"] is False


# Cheap runs whose results held tensors or whose code paths touch torch the most directly.
_RUNS = """
import json, sys
from sgdlab import cache, registry
summaries = {name: registry.run(name, **kw).summary() for name, kw in
             [("toy-clean", {"epochs": 3}), ("floor-replay", {}), ("floor-precision", {}), ("steepest-piecewise", {})]}
stats = cache.stats()
print(json.dumps({"summaries": summaries, "hits": stats.hits, "misses": stats.misses, "torch": "torch" in sys.modules},
                 default=str))
"""


def test_a_cache_hit_does_not_import_torch(tmp_path):
    cold = _python(_RUNS, SGDLAB_CACHE_DIR=str(tmp_path))
    assert cold["hits"] == 0 and cold["torch"] is True  # computing does import it
    warm = _python(_RUNS, SGDLAB_CACHE_DIR=str(tmp_path))
    assert (warm["hits"], warm["misses"]) == (4, cold["misses"])  # (the counts are since the cache was new)
    assert warm["torch"] is False
    assert warm["summaries"] == cold["summaries"]


def test_the_lazy_module_imports_on_first_use_then_holds_each_attribute():
    lazy = LazyModule("fractions")
    assert "Fraction" not in vars(lazy)
    from fractions import Fraction

    assert lazy.Fraction is Fraction
    assert vars(lazy)["Fraction"] is Fraction  # later reads are plain module-attribute lookups
    with pytest.raises(AttributeError):
        _ = lazy.no_such_name
