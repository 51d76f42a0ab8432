"""The client's operations, one row each: its parameters, the request it builds, the
stub method it calls, how it decodes the answer, its return types and its docstring.
Both clients are generated from this table (``python client/operations.py`` writes
``client/_generated.py``; a test checks that the file is what this makes), so that
the blocking and the asyncio client cannot drift apart and every method carries
precise overloads: on ``return_info`` (a ``Result`` or the bare output) and on the
flags that change what comes back (``as_float``, ``return_latents``, ``with_z``).
"""

from __future__ import annotations

import itertools
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

U8, F32, I64 = "NDArray[np.uint8]", "NDArray[np.float32]", "NDArray[np.int64]"
IMAGES = "ArrayLike"  # uint8 (0..255) or float (0..1) images, [N,28,28] or [N,1,28,28]
KW = "*"  # the parameters after it are keyword-only


@dataclass(frozen=True)
class Param:
    name: str
    type: str
    default: str | None = None  # Python source; None: required


@dataclass(frozen=True)
class Operation:
    name: str
    params: tuple[Param | str, ...]  # in order; KW marks where keyword-only ones start
    request: str  # Python source building the request from the parameters
    stub: str  # the GenerativeService method
    output: str  # Python source decoding ``response``
    # What comes back: by the values of ``flags`` (all False first), the output's type.
    returns: dict[tuple[bool, ...], str]
    doc: str
    flags: tuple[str, ...] = ()
    seed: str = "None"  # the seed a Result reports where the response carries none
    common: tuple[Param, ...] = field(default=(
        Param("timeout", "float | None", "None"), Param("return_info", "bool", "False")))


OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "sample_digits",
        (Param("n", "int", "16"), Param("model", "str", '"gan"'), Param("seed", "int | None", "None"), KW,
         Param("digit", "int | Sequence[int] | None", "None"), Param("return_latents", "bool", "False"),
         Param("as_float", "bool", "False"), Param("version", "int", "0"),
         Param("truncation", "float | None", "None"), Param("min_confidence", "float | None", "None")),
        "_calls.sample_request(n, model, seed, as_float, version, digit, return_latents, truncation, min_confidence)",
        "Sample",
        "_calls.sampled(response, return_latents)",
        {(False, False): U8, (True, False): F32, (False, True): f"tuple[{U8}, {F32}]",
         (True, True): f"tuple[{F32}, {F32}]"},
        """``n`` new digits from the ``"gan"`` or the ``"vae"``: uint8 [n,28,28] (float32 in
        [0,1] with ``as_float``). The same seed, model and version give the same bytes.
        ``digit`` (one for all, or n of them) draws those digits through the conditional
        twin (cGAN, cVAE); ``return_latents`` returns (images, the latents behind them).
        ``truncation``: the GAN's noise kept within +-truncation (the VAE's prior scaled by
        it); ``min_confidence``: images the digit classifier reads as another digit, or
        below this probability, redrawn from the seed's next draws.

        >>> digits = client.sample_digits(n=16, seed=1)                # doctest: +SKIP
        >>> drawn = client.sample_digits(n=4, return_info=True)        # doctest: +SKIP
        >>> drawn.output.shape, drawn.model, drawn.seed                # doctest: +SKIP
        ((4, 28, 28), 'gan_generator', 8123612)""",
        ("as_float", "return_latents")),
    Operation(
        "interpolate",
        (Param("start", "int | ArrayLike"), Param("end", "int | ArrayLike"), Param("steps", "int", "8"), KW,
         Param("model", "str", '"vae"'), Param("digit", "int | None", "None"), Param("as_float", "bool", "False"),
         Param("version", "int", "0")),
        "_calls.interpolate_request(start, end, steps, model, digit, as_float, version)", "Interpolate",
        "_calls.images(response)", {(False,): U8, (True,): F32},
        """``steps`` images from ``start`` to ``end``, both included: uint8 [steps,28,28].
        Each end is an int seed (the frame is that seed's ``sample_digits(n=1)``), an image
        [28,28] (its VAE posterior mean) or a latent vector ([2] VAE, [100] GAN). Linear in
        the VAE's z, spherical in the GAN's noise; ``digit`` goes through the conditional twin.""",
        ("as_float",)),
    Operation(
        "latent_grid",
        (Param("size", "int", "15"), Param("span", "float", "3.0"), KW, Param("digit", "int | None", "None"),
         Param("as_float", "bool", "False"), Param("version", "int", "0")),
        "_calls.latent_grid_request(size, span, digit, as_float, version)", "LatentGrid",
        "_calls.grid_images(response, size)", {(False,): U8, (True,): F32},
        """The VAE decoder over a size x size grid of z in [-span, span]^2 (z1 rising left
        to right, z2 top to bottom): uint8 [size,size,28,28]; with ``digit``, the cVAE's styles.""",
        ("as_float",)),
    Operation(
        "reconstruct", (Param("images", IMAGES), KW, Param("as_float", "bool", "False"), Param("version", "int", "0")),
        "_calls.reconstruct_request(images, as_float, version)", "Reconstruct", "_calls.images(response)",
        {(False,): U8, (True,): F32},
        """Images -> the VAE's decoding of their posterior means, uint8 [N,28,28].""", ("as_float",)),
    Operation(
        "restyle",
        (Param("images", IMAGES), Param("digit", "int"), KW, Param("source_digits", "Sequence[int] | None", "None"),
         Param("as_float", "bool", "False"), Param("version", "int", "0")),
        "_calls.restyle_request(images, digit, source_digits, as_float, version)", "Restyle",
        "_calls.images(response)", {(False,): U8, (True,): F32},
        """The same handwriting written as ``digit``, uint8 [N,28,28]. ``source_digits``: what
        each image shows; default the digit classifier's reading.""", ("as_float",)),
    Operation(
        "classify", (Param("images", IMAGES), KW, Param("version", "int", "0")),
        "_calls.classify_request(images, version)", "Classify", "_calls.classified(response)",
        {(): f"tuple[{I64}, {F32}]"},
        """The digit classifier's reading of images: (digits int64 [N], probabilities float32 [N,10])."""),
    Operation(
        "encode",
        (Param("images", IMAGES), Param("seed", "int | None", "None"), KW, Param("with_z", "bool", "False"),
         Param("version", "int", "0")),
        "_calls.encode_request(images, seed, version)", "Encode", "_calls.encoded(response, with_z)",
        {(False,): f"tuple[{F32}, {F32}]", (True,): f"tuple[{F32}, {F32}, {F32}]"},
        """VAE posterior of images (uint8 0..255 or float 0..1, [N,28,28]): returns
        (z_mean, z_log_var), each float32 [N,2]; with ``with_z`` also a z drawn from it.""",
        ("with_z",), seed="seed"),
    Operation(
        "decode", (Param("z", "ArrayLike"), KW, Param("as_float", "bool", "False"), Param("version", "int", "0")),
        "_calls.decode_request(z, as_float, version)", "Decode", "_calls.images(response)",
        {(False,): U8, (True,): F32}, """Latent points float [N,2] -> uint8 images [N,28,28].""", ("as_float",)),
    Operation(
        "denoise", (Param("images", IMAGES), KW, Param("as_float", "bool", "False"), Param("version", "int", "0")),
        "_calls.denoise_request(images, as_float, version)", "Denoise", "_calls.images(response)",
        {(False,): U8, (True,): F32}, """Images with salt noise -> cleaned uint8 images [N,28,28].""",
        ("as_float",)),
)

HEADER = '''"""The blocking and the asyncio client's operations. Generated by ``python
client/operations.py`` from its table: do not edit; change the table and regenerate."""

# ruff: noqa
from __future__ import annotations

from typing import Literal, Sequence, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _calls
from ._calls import Result
from .async_client import AsyncConnection
from .sync_client import SyncConnection
'''


def _signature(op: Operation, flags: dict[str, bool] | None = None, info: bool | None = None) -> str:
    """The method's parameters as source: as written (``flags`` None), or for an overload
    whose ``flags`` (and ``return_info``, unless ``info`` is None) are Literal types."""
    parts = ["self"]
    literals = {} if flags is None else {**flags, **({} if info is None else {"return_info": info})}
    for p in (*op.params, *op.common):
        if isinstance(p, str):
            parts.append(p)
        elif p.name in literals:
            parts.append(f"{p.name}: Literal[{literals[p.name]}]" + ("" if literals[p.name] else " = ..."))
        else:
            default = "..." if flags is not None else p.default
            parts.append(f"{p.name}: {p.type}" + (f" = {default}" if p.default is not None else ""))
    return ", ".join(parts)


def _method(op: Operation, asynchronous: bool) -> str:
    define = "async def" if asynchronous else "def"
    lines = []
    union = " | ".join(dict.fromkeys(op.returns.values()))
    for values in itertools.product((False, True), repeat=len(op.flags)):
        output = op.returns[values]
        for info in (False, True):
            lines += ["    @overload", f"    {define} {op.name}({_signature(op, dict(zip(op.flags, values)), info)}"
                      f") -> {f'Result[{output}]' if info else output}: ...", ""]
    # flags and return_info from variables rather than literals
    lines += ["    @overload", f"    {define} {op.name}({_signature(op, {})}) -> {union} | Result[{union}]: ...", ""]
    doc = textwrap.indent(textwrap.dedent("        " + op.doc.strip()).strip(), "        ")
    wait = "await " if asynchronous else ""
    lines += [f"    {define} {op.name}({_signature(op)}) -> {union} | Result[{union}]:",
              f'        """{doc.strip()}"""',
              f"        request = {op.request}",
              f"        response = {wait}self._call(self._stub.{op.stub}, request, timeout)",
              f"        return _calls.answer({op.output}, response, return_info, {op.seed})", ""]
    return "\n".join(lines)


def render() -> str:
    body = [HEADER]
    for name, base, asynchronous, doc in (
            ("GenerativeClient", "SyncConnection", False,
             'Talks to a genserve server over gRPC: numpy in, numpy out.\n\n'
             '    >>> from client import GenerativeClient\n'
             '    >>> with GenerativeClient("localhost:50051") as client:      # doctest: +SKIP\n'
             '    ...     digits = client.sample_digits(n=16, seed=1)           # uint8 [16, 28, 28]\n\n'
             '    Every method takes ``timeout`` (seconds for the call, retries included; default the\n'
             '    client\'s) and ``return_info`` (a Result with the model, version and seed that\n'
             '    answered); those of one model take ``version`` (a served version to pin; 0, the\n'
             '    newest). Arguments: see :class:`client.connection.Connection`.\n    '),
            ("AsyncGenerativeClient", "AsyncConnection", True,
             'The asyncio twin of :class:`GenerativeClient`: the same methods, as coroutines.\n\n'
             '    >>> async with AsyncGenerativeClient("localhost:50051") as client:   # doctest: +SKIP\n'
             '    ...     digits = await client.sample_digits(n=16)\n    ')):
        body += ["", "", f"class {name}({base}):", f'    """{doc}"""', ""]
        body += [_method(op, asynchronous) for op in OPERATIONS]
    return "\n".join(body).rstrip() + "\n"


TARGET = Path(__file__).with_name("_generated.py")

if __name__ == "__main__":
    (Path(sys.argv[1]) if len(sys.argv) > 1 else TARGET).write_text(render())
