"""assert_identical: two results equal field by field, type by type, dtype by dtype, float bit by float bit."""

import dataclasses
import math
import struct
from fractions import Fraction

import numpy as np
import pandas as pd
import torch


def _bits(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a).view(np.uint8).tobytes() if a.dtype.kind in "biufcmM" else a.tolist()


def assert_identical(a, b, where: str = "result") -> None:
    assert type(a) is type(b), f"{where}: {type(a)} != {type(b)}"
    if isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a, b, check_exact=True, check_index_type=True, check_column_type=True,
                                      check_frame_type=True, check_names=True, check_flags=True)
        assert list(a.dtypes) == list(b.dtypes), where
        for i in range(a.shape[1]):
            assert_identical(a.iloc[:, i], b.iloc[:, i], f"{where}[{a.columns[i]!r}]")
        assert_identical(a.index, b.index, f"{where}.index")
    elif isinstance(a, pd.Series):
        pd.testing.assert_series_equal(a, b, check_exact=True, check_index_type=True)
        values = a.to_numpy()
        if values.dtype.kind in "biufc":
            assert _bits(values) == _bits(b.to_numpy()), f"{where}: float bits differ"
        else:
            assert [type(v) for v in values] == [type(v) for v in b.to_numpy()], f"{where}: element types"
    elif isinstance(a, pd.Index):
        pd.testing.assert_index_equal(a, b, exact=True, check_exact=True, check_names=True)
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape and _bits(a) == _bits(b), where
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and a.device == b.device, where
        assert a.requires_grad == b.requires_grad, where
        assert _bits(a.detach().cpu().numpy()) == _bits(b.detach().cpu().numpy()), f"{where}: tensor bits differ"
    elif isinstance(a, np.generic):
        assert a.dtype == b.dtype and _bits(np.asarray(a)) == _bits(np.asarray(b)), where
    elif isinstance(a, float):
        assert struct.pack("<d", a) == struct.pack("<d", b) or (math.isnan(a) and math.isnan(b)), where
    elif dataclasses.is_dataclass(a):
        for f in dataclasses.fields(a):
            assert_identical(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for k in a:
            assert_identical(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (u, v) in enumerate(zip(a, b, strict=True)):
            assert_identical(u, v, f"{where}[{i}]")
    else:
        assert isinstance(a, (int, str, bool, type(None), Fraction, set, frozenset, torch.dtype)), where
        assert a == b, where
