"""Results as data: a JSON tree plus named numpy arrays, and back, bit for bit. No pickle anywhere.

What can be stored (the result contract of HELPERS.md): None, bool, int, float, str, Fraction,
numpy scalars and arrays (not of dtype object), torch tensors, pandas DataFrame / Series / Index
(numeric, bool, datetime, object, string and categorical columns), lists, tuples, sets and
dicts of those, and dataclasses defined in the sgdlab package. Anything else raises TypeError.

Every container and special value is a JSON object tagged by "t"; plain JSON values stand for
themselves. Floats in JSON are written with repr (exact round trip); arrays go to the .npz.
Decoding rebuilds a dataclass only from a class defined in the sgdlab package, found by name,
without calling its __init__: reading an entry imports nothing else and runs no stored code.

torch is imported only to decode an entry that holds a tensor or a torch dtype: encoding asks
whether a value is a tensor only once torch is in sys.modules (before that, none can be), so a
cache hit on a tensor-free result, and the key of a tensor-free config, never import it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import re
import sys
from fractions import Fraction

import numpy as np
import pandas as pd

from ._lazy import torch

_MODULE = re.compile(r"sgdlab(\.[a-z_][a-z0-9_]*)*")
_QUALNAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def array_digest(array: np.ndarray) -> str:
    """SHA-256 of an array's dtype, shape and bytes."""
    head = f"{array.dtype.str}{array.shape}".encode()
    return hashlib.sha256(head + np.ascontiguousarray(array).tobytes()).hexdigest()


def encode(obj) -> tuple[object, dict[str, np.ndarray]]:
    """(JSON-ready tree, arrays by name) for obj; TypeError names the first value that cannot be stored."""
    arrays: dict[str, np.ndarray] = {}
    return _Encoder(arrays).node(obj, "result"), arrays


def fingerprint(obj) -> tuple[object, dict[str, str]]:
    """(JSON-ready tree, SHA-256 of each array by name): obj written down without its array bytes,
    for keys and digests; TypeError as for `encode`."""
    tree, arrays = encode(obj)
    return tree, {k: array_digest(a) for k, a in arrays.items()}


def decode(tree, arrays: dict[str, np.ndarray]):
    """The object `encode` wrote down."""
    return _node(tree, arrays)


# --------------------------------------------------------------------------- encoding


class _Encoder:
    def __init__(self, arrays: dict):
        self.arrays = arrays

    def array(self, a: np.ndarray, where: str) -> str:
        if a.dtype.hasobject:
            raise TypeError(f"{where}: an array of Python objects cannot be stored as data")
        name = f"a{len(self.arrays)}"
        self.arrays[name] = a
        return name

    def node(self, obj, where: str):
        if obj is None or isinstance(obj, (bool, str)):
            return obj
        if isinstance(obj, (int, float)) and type(obj) in (int, float):
            return obj
        if isinstance(obj, np.generic):
            if obj.dtype.hasobject or obj.dtype.kind in "mMSUV":
                raise TypeError(f"{where}: numpy scalar of dtype {obj.dtype} cannot be stored")
            value = [obj.real.item(), obj.imag.item()] if obj.dtype.kind == "c" else obj.item()
            return {"t": "np", "dtype": obj.dtype.str, "v": value}
        if isinstance(obj, Fraction):
            return {"t": "fraction", "v": str(obj)}
        if isinstance(obj, list):
            return [self.node(v, f"{where}[{i}]") for i, v in enumerate(obj)]
        if isinstance(obj, (tuple, set, frozenset)) and type(obj) in (tuple, set, frozenset):
            return {"t": type(obj).__name__, "items": [self.node(v, f"{where}[{i}]") for i, v in enumerate(obj)]}
        if isinstance(obj, dict) and type(obj) is dict:
            return {"t": "dict", "items": [[self.node(k, f"{where} key"), self.node(v, f"{where}[{k!r}]")]
                                           for k, v in obj.items()]}
        if isinstance(obj, np.ndarray) and type(obj) is np.ndarray:
            return {"t": "ndarray", "ref": self.array(obj, where)}
        if "torch" in sys.modules:  # else obj cannot be a tensor, and asking would import torch
            if isinstance(obj, torch.Tensor):
                return self.tensor(obj, where)
            if isinstance(obj, torch.dtype):
                return {"t": "torch_dtype", "v": str(obj).removeprefix("torch.")}
        if isinstance(obj, pd.DataFrame):
            return {"t": "frame", "index": self.index(obj.index, f"{where}.index"),
                    "columns": self.index(obj.columns, f"{where}.columns"),
                    "data": [self.values(obj.iloc[:, i], f"{where}[{c!r}]") for i, c in enumerate(obj.columns)],
                    "attrs": self.node(dict(obj.attrs), f"{where}.attrs")}
        if isinstance(obj, pd.Series):
            return {"t": "series", "values": self.values(obj, where), "index": self.index(obj.index, f"{where}.index"),
                    "name": self.node(obj.name, f"{where}.name"), "attrs": self.node(dict(obj.attrs), where)}
        if isinstance(obj, pd.Index):
            return self.index(obj, where)
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            return self.dataclass(obj, where)
        raise TypeError(f"{where}: a {type(obj).__module__}.{type(obj).__qualname__} cannot be stored as data")

    def tensor(self, t: torch.Tensor, where: str) -> dict:
        t = t.detach()
        try:
            a = t.cpu().numpy()
        except TypeError:
            raise TypeError(f"{where}: a tensor of dtype {t.dtype} cannot be stored") from None
        return {"t": "tensor", "ref": self.array(a, where), "dtype": str(t.dtype).removeprefix("torch."),
                "device": str(t.device), "requires_grad": t.requires_grad}

    def values(self, column, where: str) -> dict:
        """A Series' or an Index's values, with their exact dtype."""
        dtype = column.dtype
        if isinstance(dtype, pd.CategoricalDtype):
            return {"t": "categorical", "codes": self.array(np.asarray(column.cat.codes if isinstance(column, pd.Series)
                                                                          else column.codes), where),
                    "categories": self.index(dtype.categories, where), "ordered": bool(dtype.ordered)}
        if isinstance(dtype, np.dtype) and not dtype.hasobject:
            return {"t": "array", "ref": self.array(column.to_numpy(), where)}
        items = [None if (v is pd.NA or v is pd.NaT) and not isinstance(dtype, np.dtype) else v
                 for v in column.to_numpy(dtype=object)]
        return {"t": "objects", "dtype": str(dtype), "items": [self.node(v, f"{where}[{i}]") for i, v in
                                                              enumerate(items)]}

    def index(self, index: pd.Index, where: str) -> dict:
        if isinstance(index, pd.RangeIndex):
            return {"t": "range", "start": index.start, "stop": index.stop, "step": index.step,
                    "name": self.node(index.name, where)}
        if isinstance(index, pd.MultiIndex):
            return {"t": "multiindex", "levels": [self.index(index.get_level_values(i), where)
                                                  for i in range(index.nlevels)],
                    "names": [self.node(n, where) for n in index.names]}
        return {"t": "index", "values": self.values(index, where), "name": self.node(index.name, where)}

    def dataclass(self, obj, where: str) -> dict:
        cls = type(obj)
        if not (_MODULE.fullmatch(cls.__module__) and _QUALNAME.fullmatch(cls.__qualname__)):
            raise TypeError(f"{where}: {cls.__module__}.{cls.__qualname__} is not a dataclass of the sgdlab package")
        return {"t": "dataclass", "module": cls.__module__, "class": cls.__qualname__,
                "fields": {f.name: self.node(getattr(obj, f.name), f"{where}.{f.name}")
                           for f in dataclasses.fields(obj)}}


# --------------------------------------------------------------------------- decoding


def _array(arrays: dict, ref: str) -> np.ndarray:
    a = arrays[ref]
    return a if a.flags.writeable else a.copy()  # as writable as a fresh result's


def _node(node, arrays: dict):
    if node is None or isinstance(node, (bool, int, float, str)):
        return node
    if isinstance(node, list):
        return [_node(v, arrays) for v in node]
    kind = node["t"]
    if kind == "np":
        dtype = _plain_dtype(node["dtype"])
        v = node["v"]
        return dtype.type(complex(*v) if dtype.kind == "c" else v)
    if kind == "fraction":
        return Fraction(node["v"])
    if kind in ("tuple", "set", "frozenset"):
        return {"tuple": tuple, "set": set, "frozenset": frozenset}[kind](_node(v, arrays) for v in node["items"])
    if kind == "dict":
        return {_node(k, arrays): _node(v, arrays) for k, v in node["items"]}
    if kind == "ndarray":
        return _array(arrays, node["ref"])
    if kind == "tensor":
        t = torch.from_numpy(_array(arrays, node["ref"]))
        if str(t.dtype).removeprefix("torch.") != node["dtype"]:
            raise ValueError("tensor dtype mismatch")
        if node["device"] != "cpu":
            t = t.to(node["device"])
        return t.requires_grad_(node["requires_grad"])
    if kind == "torch_dtype":
        dtype = getattr(torch, node["v"])
        if not isinstance(dtype, torch.dtype):
            raise ValueError(f"not a torch dtype: {node['v']}")
        return dtype
    if kind == "frame":
        index, columns = _index(node["index"], arrays), _index(node["columns"], arrays)
        frame = pd.DataFrame({i: _values(v, arrays) for i, v in enumerate(node["data"])}, index=index)
        frame.columns = columns
        frame.attrs.update(_node(node["attrs"], arrays))
        return frame
    if kind == "series":
        series = pd.Series(_values(node["values"], arrays), index=_index(node["index"], arrays),
                           name=_node(node["name"], arrays))
        series.attrs.update(_node(node["attrs"], arrays))
        return series
    if kind in ("range", "multiindex", "index"):
        return _index(node, arrays)
    if kind == "dataclass":
        return _dataclass(node, arrays)
    raise ValueError(f"unknown node type {kind!r}")


def _plain_dtype(text: str) -> np.dtype:
    dtype = np.dtype(text)
    if dtype.hasobject:
        raise ValueError("object dtype")
    return dtype


def _values(node: dict, arrays: dict):
    """The values of a column or an index, as an array of exactly the stored dtype."""
    if node["t"] == "array":
        return _array(arrays, node["ref"])
    if node["t"] == "categorical":
        return pd.Categorical.from_codes(_array(arrays, node["codes"]), dtype=pd.CategoricalDtype(
            _index(node["categories"], arrays), ordered=node["ordered"]))
    items = [_node(v, arrays) for v in node["items"]]
    if node["dtype"] == "object":
        out = np.empty(len(items), dtype=object)
        out[:] = items
        return out
    return pd.array(items, dtype=pd.api.types.pandas_dtype(node["dtype"]))


def _index(node: dict, arrays: dict) -> pd.Index:
    if node["t"] == "range":
        return pd.RangeIndex(node["start"], node["stop"], node["step"], name=_node(node["name"], arrays))
    if node["t"] == "multiindex":
        return pd.MultiIndex.from_arrays([_index(level, arrays) for level in node["levels"]],
                                         names=[_node(n, arrays) for n in node["names"]])
    values = _values(node["values"], arrays)
    return pd.Index(values, dtype=values.dtype, name=_node(node["name"], arrays), copy=False)


def _dataclass(node: dict, arrays: dict):
    """Rebuild a dataclass of the sgdlab package by name; never any other class, never its __init__."""
    module, qualname = node["module"], node["class"]
    if not (_MODULE.fullmatch(module) and _QUALNAME.fullmatch(qualname)):
        raise ValueError(f"refusing class {module}.{qualname}: not in the sgdlab package")
    cls = importlib.import_module(module)  # one of sgdlab's own modules (the pattern admits nothing else)
    for part in qualname.split("."):
        cls = getattr(cls, part)
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls) and cls.__module__ == module):
        raise ValueError(f"{module}.{qualname} is not a dataclass of that module")
    names = {f.name for f in dataclasses.fields(cls)}
    if set(node["fields"]) != names:
        raise ValueError(f"{module}.{qualname}: stored fields differ from the class's")
    obj = object.__new__(cls)
    for name, value in node["fields"].items():
        object.__setattr__(obj, name, _node(value, arrays))
    return obj
