"""numpy arrays <-> ``genserve.v1.Tensor``: packed little-endian bytes, row-major,
with the dtype and shape beside them."""

from __future__ import annotations

import numpy as np

from genserve.v1 import generative_pb2 as pb

DTYPES: dict[int, np.dtype] = {pb.DATA_TYPE_UINT8: np.dtype("<u1"), pb.DATA_TYPE_FLOAT32: np.dtype("<f4")}
_BY_NUMPY = {np.dtype("uint8"): pb.DATA_TYPE_UINT8, np.dtype("float32"): pb.DATA_TYPE_FLOAT32}


def to_tensor(array: np.ndarray) -> pb.Tensor:
    array = np.asarray(array)
    try:
        dtype = _BY_NUMPY[array.dtype.newbyteorder("=")]
    except KeyError:
        raise TypeError(f"tensors are uint8 or float32, not {array.dtype}") from None
    little_endian = np.ascontiguousarray(array, array.dtype.newbyteorder("<"))
    return pb.Tensor(dtype=dtype, shape=array.shape, data=little_endian.tobytes())


def from_tensor(tensor: pb.Tensor) -> np.ndarray:
    """The array a well-formed tensor holds (the server checks untrusted ones first)."""
    array: np.ndarray = np.frombuffer(tensor.data, dtype=DTYPES[tensor.dtype]).reshape(tuple(tensor.shape))
    return array
