"""`torch`, imported on first use: `from ._lazy import torch` in every module of the package.

Why: importing torch costs about 1.4 s, and most processes that import sgdlab never compute with
it. A warm chapter reads its results from the cache (numpy and pandas only), `sgdlab list` and
`sgdlab --help` only read the registry. So `import sgdlab.<anything>` must not import torch; the
first attribute read on this proxy (`torch.tensor`, `torch.float64`, ...) does.

How: a module object whose `__getattr__` (called only for names missing from its `__dict__`)
imports torch, then copies the attribute into its own `__dict__`. Every later read of that name
is an ordinary module-attribute lookup, as fast as on torch itself: the engine's loops pay nothing.
Chosen over `importlib.util.LazyLoader` because that one swaps the real module into sys.modules
on first use, so `isinstance` checks and `'torch' in sys.modules` (what tests assert) would mean
something else; and over `import torch` inside each function, which would scatter the imports
through ~30 modules and make forgetting one silent.

Code that only needs to know whether a value IS a tensor (serial.py) should not touch the proxy:
if torch is not in sys.modules, no value can be a tensor.
"""

from __future__ import annotations

import importlib
import types


class LazyModule(types.ModuleType):
    """A stand-in for the module `name`, imported the first time one of its attributes is read."""

    def __getattr__(self, attr: str):
        value = getattr(importlib.import_module(self.__name__), attr)
        self.__dict__[attr] = value  # the next read of attr never reaches __getattr__
        return value

    def __repr__(self) -> str:
        return f"<lazy module {self.__name__!r}>"


torch = LazyModule("torch")
