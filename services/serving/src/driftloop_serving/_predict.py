"""XGBoost's dense prediction with its arguments made once, not per call.

``Booster.inplace_predict`` costs about 150 µs for one row here, of which the prediction
itself is about 40: per call the Python wrapper checks the input's type against a dozen
libraries, writes the array interface and the configuration as JSON, and wraps the
output in two arrays. :class:`DensePredictor` calls the same C entry point
(``XGBoosterPredictFromDense``, XGBoost's documented C API in ``c_api.h``, which
``inplace_predict`` calls for a numpy array) with the configuration ``inplace_predict``
sends by default, written when the model loads, and the array interface of each
(buffer, rows) it is given, kept. It also hands XGBoost a proxy matrix of its own, made
once (``XGProxyDMatrixCreate``), where ``inplace_predict`` passes none: XGBoost then
makes one per call, and with it a context that reads the cgroup's CPU quota from files
and compiles a regular expression, about 26 µs of the call. ``tests/unit/
test_dense_predictor.py`` checks that both give the same scores.
"""

from __future__ import annotations

import ctypes
import json
import math
from typing import Any

import numpy as np

_CONFIG = json.dumps(
    {  # what inplace_predict sends for a numpy array with its defaults (XGBoost 3.x)
        "type": 0,  # values, not margins
        "training": False,
        "iteration_begin": 0,
        "iteration_end": 0,  # every tree
        "missing": math.nan,  # XGBoost's JSON reader takes NaN
        "strict_shape": False,
        "cache_id": 0,
    }
).encode()


def _library() -> ctypes.CDLL:
    """XGBoost's shared library: the one the ``xgboost`` package loaded (the same
    file opened again is the same library in the process)."""
    import xgboost  # the package loads the library and initialises it
    from xgboost.libpath import find_lib_path

    lib = ctypes.cdll.LoadLibrary(find_lib_path()[0])
    lib.XGBGetLastError.restype = ctypes.c_char_p
    lib.XGProxyDMatrixCreate.restype = ctypes.c_int
    lib.XGProxyDMatrixCreate.argtypes = [ctypes.POINTER(ctypes.c_void_p)]
    lib.XGDMatrixFree.restype = ctypes.c_int
    lib.XGDMatrixFree.argtypes = [ctypes.c_void_p]
    lib.XGBoosterPredictFromDense.restype = ctypes.c_int
    lib.XGBoosterPredictFromDense.argtypes = [
        ctypes.c_void_p,  # booster
        ctypes.c_char_p,  # array interface (JSON)
        ctypes.c_char_p,  # config (JSON)
        ctypes.c_void_p,  # a proxy DMatrix, which takes the array (and any base margin)
        ctypes.POINTER(ctypes.POINTER(ctypes.c_uint64)),  # out: shape
        ctypes.POINTER(ctypes.c_uint64),  # out: dimensions
        ctypes.POINTER(ctypes.POINTER(ctypes.c_float)),  # out: predictions
    ]
    del xgboost
    return lib


class DensePredictor:
    """Scores of a float32, C-ordered matrix of a binary model's inputs (one per row).

    Not for concurrent use: XGBoost writes the output into a buffer of the booster's that
    the next call on the same thread reuses, and this copies it out before returning;
    callers take turns (``ScoringPlan`` holds its lock)."""

    def __init__(self, booster: Any) -> None:
        self._booster = booster  # keeps the handle alive
        self._handle = booster.handle
        self._lib = _library()
        self._proxy = ctypes.c_void_p()
        self._check(self._lib.XGProxyDMatrixCreate(ctypes.byref(self._proxy)))
        self._interfaces: dict[tuple[int, int, int], bytes] = {}
        self._shape = ctypes.POINTER(ctypes.c_uint64)()
        self._dims = ctypes.c_uint64()
        self._out = ctypes.POINTER(ctypes.c_float)()

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        """One score per row of ``matrix`` (float32, C-contiguous, 2-d), as float64."""
        if matrix.dtype != np.float32 or matrix.ndim != 2 or not matrix.flags.c_contiguous:
            raise ValueError("a DensePredictor takes a 2-d, C-ordered float32 matrix")
        rows, columns = matrix.shape
        address = matrix.ctypes.data
        key = (address, rows, columns)
        interface = self._interfaces.get(key)
        if interface is None:
            if len(self._interfaces) > 1024:  # buffers replaced: forget the old ones
                self._interfaces.clear()
            interface = json.dumps(
                {
                    "data": [address, False],  # (pointer, read-only)
                    "shape": [rows, columns],
                    "strides": None,
                    "typestr": "<f4",
                    "version": 3,
                }
            ).encode()
            self._interfaces[key] = interface
        self._check(
            self._lib.XGBoosterPredictFromDense(
                self._handle,
                interface,
                _CONFIG,
                self._proxy,
                ctypes.byref(self._shape),
                ctypes.byref(self._dims),
                ctypes.byref(self._out),
            )
        )
        size = 1
        for i in range(self._dims.value):
            size *= self._shape[i]
        if size != rows:
            raise ValueError(f"the model gives {size} outputs for {rows} rows: not a binary model")
        scores = np.empty(rows, dtype=np.float64)
        scores[:] = np.ctypeslib.as_array(self._out, shape=(rows,))
        return scores

    def _check(self, code: int) -> None:
        if code != 0:
            raise RuntimeError(f"XGBoost: {self._lib.XGBGetLastError().decode(errors='replace')}")

    def __del__(self) -> None:
        if getattr(self, "_proxy", None) is not None and self._proxy.value is not None:
            self._lib.XGDMatrixFree(self._proxy)
            self._proxy = ctypes.c_void_p()
