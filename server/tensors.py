"""genserve.v1's tensors <-> numpy, with every check a tensor must pass first (and
the value checks both APIs share). Each error names the field and the limit it broke."""

from __future__ import annotations

import numpy as np

from genserve.codec import DTYPES, to_tensor
from genserve.v1 import generative_pb2 as pb

from .errors import InvalidArgument
from .pixels import Images

DTYPE_NAMES = {pb.DATA_TYPE_UINT8: "uint8", pb.DATA_TYPE_FLOAT32: "float32"}
MAX_LATENT = 1e4  # far outside the prior N(0, I); larger values only overflow the decoder
MAX_RANK = 4  # no tensor of the API has more axes; checked before the shape is read


def _array(tensor: pb.Tensor, field: str, max_batch: int, allowed: tuple[int, ...],
           item_shapes: tuple[tuple[int, ...], ...], expected: str) -> np.ndarray:
    if not tensor.ListFields():
        raise InvalidArgument(f"{field}: required")
    if tensor.dtype not in allowed:
        names = " or ".join(DTYPE_NAMES[d] for d in allowed)
        got = pb.DataType.Name(tensor.dtype) if tensor.dtype in pb.DataType.values() else tensor.dtype
        raise InvalidArgument(f"{field}.dtype: must be {names}, got {got}")
    if len(tensor.shape) > MAX_RANK:
        raise InvalidArgument(f"{field}.shape: {len(tensor.shape):,} axes; at most {MAX_RANK}")
    shape = tuple(tensor.shape)
    if not shape:
        raise InvalidArgument(f"{field}.shape: required")
    if any(d < 1 for d in shape):
        raise InvalidArgument(f"{field}.shape: every dimension must be >= 1, got {list(shape)}")
    if shape[1:] not in item_shapes:
        raise InvalidArgument(f"{field}.shape: must be {expected}, got {list(shape)}")
    if shape[0] > max_batch:
        raise InvalidArgument(f"{field}.shape: batch of {shape[0]} exceeds the maximum of {max_batch}")
    dtype = DTYPES[tensor.dtype]
    size = int(np.prod(shape)) * dtype.itemsize  # item shapes are fixed and the batch bounded: no overflow
    if len(tensor.data) != size:
        raise InvalidArgument(f"{field}.data: {len(tensor.data)} bytes, but shape {list(shape)} of "
                              f"{DTYPE_NAMES[tensor.dtype]} needs {size}")
    return np.frombuffer(tensor.data, dtype).reshape(shape)


def images_from_proto(tensor: pb.Tensor, field: str, max_batch: int) -> np.ndarray:
    """uint8 [N,28,28] (0..255) or float32 [N,28,28] / [N,1,28,28] (0..1) -> float32 [N,1,28,28]."""
    array = _array(tensor, field, max_batch, (pb.DATA_TYPE_UINT8, pb.DATA_TYPE_FLOAT32),
                   ((28, 28), (1, 28, 28)), "[N,28,28] or [N,1,28,28]")
    if array.dtype == np.uint8:
        return _unit(array)
    check_pixels(array, f"{field}.data")
    return np.ascontiguousarray(array.reshape(-1, 1, 28, 28), np.float32)


def images_from_pixels(pixels: np.ndarray, field: str, max_batch: int) -> np.ndarray:
    """uint8 [N,28,28] (a decoded picture's tiles) -> float32 [N,1,28,28], within the batch maximum."""
    if len(pixels) > max_batch:
        raise InvalidArgument(f"{field}: {len(pixels)} digits exceed the maximum of {max_batch} per request")
    return _unit(pixels)


def _unit(pixels: np.ndarray) -> np.ndarray:
    return np.divide(pixels.reshape(-1, 1, 28, 28), np.float32(255), dtype=np.float32)


def latents_from_proto(tensor: pb.Tensor, field: str, max_batch: int) -> np.ndarray:
    """float32 [N,2] -> float32 [N,2], finite and within +-MAX_LATENT."""
    array = _array(tensor, field, max_batch, (pb.DATA_TYPE_FLOAT32,), ((2,),), "[N,2]")
    check_latents(array, f"{field}.data")
    return np.ascontiguousarray(array, np.float32)


def image_from_proto(tensor: pb.Tensor, field: str) -> np.ndarray:
    """One image, uint8 [28,28] or float32 [28,28] / [1,28,28] -> float32 [1,1,28,28]."""
    if not tensor.ListFields():
        raise InvalidArgument(f"{field}: required")
    if tuple(tensor.shape) not in ((28, 28), (1, 28, 28)):
        shape = list(tensor.shape)[:MAX_RANK + 1]
        raise InvalidArgument(f"{field}.shape: one image is [28,28] or [1,28,28], got {shape}")
    batch = pb.Tensor(dtype=tensor.dtype, shape=[1, *tensor.shape], data=tensor.data)
    return images_from_proto(batch, field, 1)


def latent_from_proto(tensor: pb.Tensor, field: str, size: int) -> np.ndarray:
    """One latent vector: float32 [size], finite and within +-MAX_LATENT."""
    if not tensor.ListFields():
        raise InvalidArgument(f"{field}: required")
    if tuple(tensor.shape) != (size,):
        raise InvalidArgument(f"{field}.shape: must be [{size}], got {list(tensor.shape)[:MAX_RANK + 1]}")
    batch = pb.Tensor(dtype=tensor.dtype, shape=[1, size], data=tensor.data)
    array = _array(batch, field, 1, (pb.DATA_TYPE_FLOAT32,), ((size,),), f"[{size}]")
    check_latents(array, f"{field}.data")
    return np.ascontiguousarray(array[0], np.float32)


def check_pixels(array: np.ndarray, where: str) -> None:
    """float32 pixels: finite and in [0, 1]. Both APIs' image inputs pass through here."""
    if not array.size:
        return
    low, high = array.min(), array.max()
    if low >= 0 and high <= 1:  # False for NaN too, which min and max pass on
        return
    if not np.isfinite(array).all():
        raise InvalidArgument(f"{where}: NaN or infinite pixel values")
    raise InvalidArgument(f"{where}: float32 pixels must lie in [0, 1], got [{low:.4g}, {high:.4g}]")


def check_latents(array: np.ndarray, where: str) -> None:
    """Latents or noise: finite and within +-MAX_LATENT."""
    if not array.size or -MAX_LATENT <= array.min() and array.max() <= MAX_LATENT:  # False for NaN too
        return
    if not np.isfinite(array).all():
        raise InvalidArgument(f"{where}: NaN or infinite values")
    raise InvalidArgument(f"{where}: values must lie in [-{MAX_LATENT:g}, {MAX_LATENT:g}], got "
                          f"{np.abs(array).max():.4g}")


def image_format(value: int, field: str = "image_format") -> int:
    if value not in (pb.IMAGE_FORMAT_UNSPECIFIED, pb.IMAGE_FORMAT_UINT8, pb.IMAGE_FORMAT_FLOAT32):
        raise InvalidArgument(f"{field}: unknown value {value}; use IMAGE_FORMAT_UINT8 or IMAGE_FORMAT_FLOAT32")
    return value


def images_to_proto(images: Images, fmt: int) -> pb.Tensor:
    """A model's images as the caller asked: uint8 or float32 [N,28,28]."""
    if fmt == pb.IMAGE_FORMAT_FLOAT32:
        return to_tensor(np.clip(images.floats.reshape(-1, 28, 28), 0, 1).astype(np.float32))
    # Converted with the whole batch (engine.py): per call only the bytes are taken, since
    # a handful of numpy calls per request costs more than the model's share of the run.
    return to_tensor(images.pixels)
