"""`torch`, imported on first use: `from ._lazy import torch` in every module of the package.

Why: importing torch costs about 1.4 s, and most processes that import sgdlab never compute with
it. A warm chapter reads its results from the cache (numpy and pandas only), `sgdlab list` and
`sgdlab --help` only read the registry. So `import sgdlab.<anything>` must not import torch; the
first attribute read on this proxy (`torch.tensor`, `torch.float64`, ...) does.

How: a module object with a module-level `__getattr__` (PEP 562) in its `__dict__`, called only
for names missing from that `__dict__`: it imports torch, then copies the attribute into the
`__dict__`. Every later read of that name is an ordinary module-attribute lookup, as fast as on
torch itself (a `__getattr__` method on the class instead would route every read through Python
and double its cost), so the engine's loops pay nothing.
Chosen over `importlib.util.LazyLoader`, which puts a lazy "torch" into sys.modules for the whole
process (every other `import torch` would get it, and `'torch' in sys.modules`, what the tests
check, would be true at once); and over `import torch` inside each function, which would scatter
the import through ~30 modules and make forgetting one silent.

Code that only needs to know whether a value IS a tensor (serial.py) should not touch the proxy:
if torch is not in sys.modules, no value can be a tensor.
"""

from __future__ import annotations

import importlib
import types


class LazyModule(types.ModuleType):
    """A stand-in for the module `name`, imported the first time one of its attributes is read."""

    def __init__(self, name: str):
        super().__init__(name)

        def __getattr__(attr: str):  # the module-level hook of PEP 562
            value = getattr(importlib.import_module(name), attr)
            setattr(self, attr, value)  # the next read of attr never gets here
            return value

        self.__getattr__ = __getattr__

    def __repr__(self) -> str:
        return f"<lazy module {self.__name__!r}>"


torch = LazyModule("torch")
