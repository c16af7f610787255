"""Exact JSON encoding of arrays, and checkpoint features to and from npz-ready arrays.

Weights go into the probe's JSON state as base64 of their raw little-endian bytes, so a reload is
bit for bit. Feature arrays are too big for JSON: the monitor keeps them per checkpoint in the run
store (``RunStore.save_arrays(step, "probe_features", features_to_arrays(f))``) and hands them back
on resume (:meth:`evalcast.probe.ProbeTrainer.load_state_dict`).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import numpy as np

from evalcast.stats.features import CheckpointFeatures


def encode_array(array: np.ndarray) -> dict[str, Any]:
    """``{"dtype", "shape", "data"}`` with the raw little-endian bytes in base64."""
    array = np.asarray(array)
    little = array.astype(array.dtype.newbyteorder("<"), copy=False)
    return {"dtype": little.dtype.str, "shape": list(array.shape),
            "data": base64.b64encode(np.ascontiguousarray(little).tobytes()).decode("ascii")}


def decode_array(state: Mapping[str, Any]) -> np.ndarray:
    raw = base64.b64decode(state["data"])
    return np.frombuffer(raw, dtype=np.dtype(state["dtype"])).reshape(state["shape"]).copy()


def features_to_arrays(features: CheckpointFeatures) -> dict[str, np.ndarray]:
    """Plain arrays (no pickles) for ``np.savez``; token features are concatenated with their lengths."""
    arrays = {"ids": np.array(features.ids, dtype=str), "layers": np.array(features.layers, dtype=np.int64),
              "last": features.last, "mean": features.mean}
    if features.proxies is not None:
        arrays["proxies"] = features.proxies
        arrays["proxy_names"] = np.array(features.proxy_names, dtype=str)
    if features.tokens is not None:
        arrays["token_lengths"] = np.array([len(t) for t in features.tokens], dtype=np.int64)
        dim = features.tokens[0].shape[1] if features.tokens else 0
        arrays["tokens"] = (np.concatenate(features.tokens) if features.tokens
                            else np.zeros((0, dim), np.float16))
    return arrays


def features_from_arrays(arrays: Mapping[str, np.ndarray]) -> CheckpointFeatures:
    """Inverse of :func:`features_to_arrays`."""
    tokens = None
    if "tokens" in arrays:
        bounds = np.cumsum(arrays["token_lengths"])[:-1]
        tokens = list(np.split(arrays["tokens"], bounds)) if len(arrays["token_lengths"]) else []
    return CheckpointFeatures(ids=[str(q) for q in arrays["ids"]], layers=tuple(int(x) for x in arrays["layers"]),
                              last=arrays["last"], mean=arrays["mean"], tokens=tokens,
                              proxies=arrays.get("proxies"),
                              proxy_names=tuple(str(n) for n in arrays.get("proxy_names", ())))
