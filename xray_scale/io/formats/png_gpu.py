"""PNG decoding on an NVIDIA GPU: the CPU walks the chunks, the GPU does the rest.

For a batch of K files, read by the caller (:mod:`xray_scale.io.gpu_decode`): the
CPU walks each file's chunks
(:func:`xray_scale.io.formats.png_chunks.walk_png`: no inflate, no unfilter), and packs
every covered file's zlib stream, the data of its other chunks and the tables
the kernels need into one page-locked buffer, copied to the GPU in one go.
There, on the caller's CUDA stream:

1. every chunk's CRC-32 is checked (``crc_pieces``: one thread per 1 KiB piece
   of a chunk, the pieces' CRCs shifted into place and XORed together; the
   same arithmetic as :func:`xray_scale.io.formats.png_chunks.crc32_by_pieces`);
2. the zlib streams are inflated by nvCOMP's batched Deflate decoder (given
   each stream without its 2-byte header and 4-byte Adler-32);
3. each inflated stream's Adler-32 is checked against the file's
   (``adler_pieces``, as :func:`xray_scale.io.formats.png_unfilter.adler32_by_pieces`);
4. the row filters are undone by a wavefront, one thread block per image
   (``unfilter``, as :func:`xray_scale.io.formats.png_unfilter.unfilter`), which writes
   the pixels straight into the ``(K, H, W)`` output.

A handful of bytes per image comes back (which chunk CRCs failed, whether the
Adler-32 matched, whether a filter type was unknown). The pixels stay on the
GPU. Files the GPU path does not cover (palette, colour, interlaced, padded,
``synth:`` phantoms, files of another registered format or of none...) and
files that fail a GPU check other than a chunk CRC (a stream that ends early
or does not inflate, an Adler-32 mismatch, an unknown filter type) are decoded by the CPU decoder
(:func:`xray_scale.io.decode.decode_image`) in the same call, so every image gets
the CPU decoder's status, message and pixels; a bad chunk CRC gets its
message from the GPU's check. If nvCOMP refuses the batch as a whole, its
covered files are decoded on the CPU too.

CuPy and nvCOMP (``nvidia-nvcomp-cu12``, module ``nvidia.nvcomp``) are imported
only when a batch is decoded; :func:`check_usable` says why they cannot be.
"""

from __future__ import annotations

import logging
import threading
import zlib
from collections.abc import Callable
from dataclasses import replace
from functools import cache

import numpy as np

from ...errors import DecodeError, EngineError
from .image import DEFAULT_MAX_PIXELS, DecodedImage
from .png import SIGNATURE, parse_png_header
from .png_chunks import CRC_PIECE, X2N, PngLayout, walk_png
from .png_kernels import SOURCE, crc_table
from .png_unfilter import ADLER_PIECE

__all__ = ["GpuDecoderUnavailable", "check_usable", "decode_batch_gpu"]

log = logging.getLogger(__name__)

_ALIGN = 16
"""Byte alignment of every stream and output nvCOMP is given (its Deflate needs <= 16)."""
_UNFILTER_THREADS = 1024
"""Rows per band of the unfilter wavefront (threads per block; png_unfilter's block_rows)."""


class GpuDecoderUnavailable(EngineError):
    """The GPU decoder cannot run here; the message says why in one line."""


# ------------------------------------------------------------- lazy imports


def _import():
    try:
        import cupy
        from nvidia import nvcomp
    except ImportError as error:
        raise GpuDecoderUnavailable(
            f"the GPU decoder needs CuPy and nvCOMP ({error}): pip install 'xray-scale[gpu]'"
        ) from None
    return cupy, nvcomp


@cache
def check_usable() -> None:
    """Raise GpuDecoderUnavailable, saying why, unless CuPy and nvCOMP can decode on a GPU here."""
    cupy, _ = _import()
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            raise GpuDecoderUnavailable("the GPU decoder needs a CUDA device; none is visible")
        _kernels()
        _probe()
    except GpuDecoderUnavailable:
        raise
    except Exception as exc:  # CUDARuntimeError, CompileException, nvCOMP errors...
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise GpuDecoderUnavailable(f"the GPU decoder cannot run here: {reason}") from None


@cache
def _kernels():
    cupy, _ = _import()
    module = cupy.RawModule(code=SOURCE, options=("-std=c++14",))
    return {name: module.get_function(name) for name in ("crc_pieces", "adler_pieces", "unfilter")}


@cache
def _constants(device: int):
    """The CRC byte table and x^(2^k) powers, on ``device`` (png_chunks.X2N)."""
    cupy, _ = _import()
    with cupy.cuda.Device(device):
        return cupy.asarray(crc_table()), cupy.asarray(np.array(X2N, dtype=np.int64))


_thread = threading.local()


def _pinned(nbytes: int) -> np.ndarray:
    """This thread's page-locked staging buffer of at least ``nbytes``, grown when needed.

    Reuse is safe: every call waits for its copy to finish before returning.
    """
    cupy, _ = _import()
    buffer = getattr(_thread, "pinned", None)
    if buffer is None or buffer.size < nbytes:
        import cupyx

        buffer = cupyx.empty_pinned(max(nbytes, 1 << 20), dtype=np.uint8)
        _thread.pinned = buffer
    return buffer


def _own_stream():
    """This thread's non-blocking stream, for a caller that gives none (nvCOMP wants a real one)."""
    cupy, _ = _import()
    if not hasattr(_thread, "stream"):
        _thread.stream = cupy.cuda.Stream(non_blocking=True)
    return _thread.stream


def _codec(stream):
    """This thread's nvCOMP Deflate codec on ``stream`` (a Codec is not thread-safe)."""
    _, nvcomp = _import()
    codecs = _thread.__dict__.setdefault("codecs", {})
    if stream.ptr not in codecs:
        codecs[stream.ptr] = nvcomp.Codec(
            algorithm="Deflate", bitstream_kind=nvcomp.BitstreamKind.RAW, cuda_stream=stream.ptr
        )
    return codecs[stream.ptr]


def _inflate(sources, targets, stream) -> list[int]:
    """Inflate raw deflate streams (CuPy views) into ``targets`` with nvCOMP; their sizes."""
    _, nvcomp = _import()
    decoded = _codec(stream).decode(
        nvcomp.as_arrays(sources, cuda_stream=stream.ptr),
        out=nvcomp.as_arrays(targets, cuda_stream=stream.ptr),
    )
    return [int(size) for size in decoded.buffer_sizes]


def _probe() -> None:
    """Inflate one small stream on the GPU as a batch is inflated; raise if it comes out wrong."""
    cupy, _ = _import()
    expected = bytes(range(256)) * 64
    deflate = zlib.compressobj(wbits=-15)
    compressed = deflate.compress(expected) + deflate.flush()
    stream = cupy.cuda.Stream(non_blocking=True)
    with stream:
        source = cupy.asarray(np.frombuffer(compressed, dtype=np.uint8))
        target = cupy.zeros(len(expected), dtype=np.uint8)
        sizes = _inflate([source], [target], stream)
        if sizes != [len(expected)] or target.get(stream=stream).tobytes() != expected:
            raise GpuDecoderUnavailable(
                f"the GPU decoder's test inflate came out wrong (sizes {sizes}); "
                "nvCOMP's version may not match: pip install 'nvidia-nvcomp-cu12>=6'"
            )


# ------------------------------------------------------------------ packing


def _aligned(n: int, to: int = _ALIGN) -> int:
    return -(-n // to) * to


class _Batch:
    """The covered files of one batch packed for the GPU: bytes, then int64 tables.

    Per file: the zlib stream (its IDAT chunks' data, back to back), placed so
    that the deflate data after its 2-byte header is 16-byte aligned, then the
    data of its other chunks. After every file: the tables, as one int64 array.
    """

    def __init__(self, files: list[tuple[bytes, PngLayout]]):
        self.copies = []  # (destination, file bytes, offset in the file, length)
        self.chunks = []  # (owner file, Chunk), in the order packed
        chunk_start = []
        self.streams = []  # (start, length) of each deflate stream (no header, no Adler)
        self.adler = []  # each stream's Adler-32, as stored
        position = 0
        for owner, (data, layout) in enumerate(files):
            position = _aligned(position + 2) - 2
            self.streams.append((position + 2, layout.stream_length - 6))
            self.adler.append(int.from_bytes(data[_last_bytes(layout, 4)], "big"))
            idat = [layout.chunks[i] for i in layout.idat]
            others = [c for i, c in enumerate(layout.chunks) if i > 0 and i not in layout.idat]
            for chunk in idat + others:  # IHDR's CRC was checked with the header
                self.copies.append((position, data, chunk.data_start, chunk.length))
                self.chunks.append((owner, chunk))
                chunk_start.append(position)
                position += chunk.length
        self.chunk_owner = np.array([owner for owner, _ in self.chunks], dtype=np.int64)
        self.chunk_crc = np.array([chunk.crc for _, chunk in self.chunks], dtype=np.int64)
        length = np.array([chunk.length for _, chunk in self.chunks], dtype=np.int64)
        pieces = np.maximum(1, -(-length // CRC_PIECE))  # one piece at least (IEND has none)
        first_piece = np.repeat(np.cumsum(pieces) - pieces, pieces)
        tables = {
            "chunk_start": np.array(chunk_start, dtype=np.int64),
            "chunk_length": length,
            "chunk_seed": np.array([zlib.crc32(c.kind) for _, c in self.chunks], dtype=np.int64),
            "piece_chunk": np.repeat(np.arange(len(length), dtype=np.int64), pieces),
            "piece_first": (np.arange(pieces.sum(), dtype=np.int64) - first_piece) * CRC_PIECE,
        }
        self.offsets = {}
        at = 0
        for name, values in tables.items():
            self.offsets[name] = (at, len(values))
            at += len(values)
        self.tables = np.concatenate(list(tables.values()))
        self.table_at = _aligned(position, 8)
        self.nbytes = self.table_at + self.tables.nbytes

    def first_bad_chunk(self, owner: int, bad: np.ndarray):
        """The chunk of file ``owner`` first in the file among the ``bad`` ones, or None."""
        found = [chunk for (o, chunk), b in zip(self.chunks, bad, strict=True) if o == owner and b]
        return min(found, key=lambda chunk: chunk.position) if found else None

    def fill(self, pinned: np.ndarray) -> None:
        """Write the files' bytes and the tables into ``pinned``."""
        for destination, data, start, length in self.copies:
            pinned[destination : destination + length] = np.frombuffer(
                data, dtype=np.uint8, count=length, offset=start
            )
        pinned[self.table_at : self.nbytes] = self.tables.view(np.uint8)

    def table(self, device_tables, name: str):
        at, n = self.offsets[name]
        return device_tables[at : at + n]


def _last_bytes(layout: PngLayout, n: int) -> slice:
    """Where the last ``n`` bytes of the zlib stream (its Adler-32) are in the file."""
    last = layout.chunks[layout.idat[-1]]
    end = last.data_start + last.length
    return slice(end - n, end)


# ------------------------------------------------------------------ decoding


def decode_batch_gpu(
    paths: list[str],
    *,
    shape: tuple[int, int],
    dtype: np.dtype | str = np.uint8,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    size_policy: str = "fail",
    cpu_decode: Callable[..., DecodedImage],
    contents: list[bytes | DecodeError | None],
    stream=None,
):
    """Decode K PNG files into a ``(K, H, W)`` CuPy array on the GPU.

    Called through :func:`xray_scale.io.gpu_decode.decode_batch_gpu`, which
    reads the files and passes the format-independent CPU decoder: this
    module reads nothing itself.

    Parameters
    ----------
    paths : list of str
        The files.
    shape, dtype, max_pixels, size_policy
        The run's, as for :func:`xray_scale.io.decode.decode_image`.
    cpu_decode : callable
        :func:`xray_scale.io.decode.decode_image`: decodes, on the CPU, every
        file the GPU path does not cover (and any file not a PNG, whose
        format the registry then names).
    contents : list
        Per path: the file's bytes; the DecodeError reading it gave (the
        image fails with its message); or None for an input that is not a
        file (a ``synth:`` phantom), which ``cpu_decode`` decodes.
    stream : cupy.cuda.Stream, optional
        Where the copies and kernels run (not the null stream); default: a
        non-blocking stream of this thread's own.

    Returns
    -------
    block : cupy.ndarray
        ``(K, H, W)`` of ``dtype`` on the current device; failed images are zeros.
    images : list of DecodedImage
        One per path, as :func:`xray_scale.io.decode.decode_batch` returns them
        (``pixels`` None): the CPU decoder's status, message, mode, bit depth,
        padding and checksum for every file.

    Raises
    ------
    GpuDecoderUnavailable
        When CuPy, nvCOMP or a CUDA device is missing.
    """
    check_usable()
    cupy, _ = _import()
    dtype = np.dtype(dtype)
    stream = stream or _own_stream()
    run = {"shape": shape, "dtype": dtype, "max_pixels": max_pixels, "size_policy": size_policy}
    images: list[DecodedImage | None] = [None] * len(paths)
    covered: list[tuple[int, bytes, PngLayout]] = []
    on_cpu: list[int] = []
    for k in range(len(paths)):
        data = contents[k]
        if data is None:
            on_cpu.append(k)
            continue
        if isinstance(data, DecodeError):
            images[k] = DecodedImage(None, "", 0, str(data))
            continue
        if not data.startswith(SIGNATURE):  # another format, or none: the CPU says which
            on_cpu.append(k)
            continue
        try:
            layout = walk_png(data, **run)
        except DecodeError as error:
            bit_depth = _header_depth(data)
            images[k] = DecodedImage(None, "", bit_depth, str(error))
            continue
        if layout.gpu_reason:
            on_cpu.append(k)
        else:
            covered.append((k, data, layout))
    with stream:
        block = cupy.zeros((len(paths), *shape), dtype=dtype)
        if covered:
            on_cpu += _decode_on_gpu(covered, block, images, stream)
        for k in sorted(on_cpu):
            image = cpu_decode(paths[k], **run)
            if image.ok:
                block[k].set(np.ascontiguousarray(image.pixels), stream=stream)
            images[k] = replace(image, pixels=None)
        stream.synchronize()
    return block, images


def _header_depth(data: bytes) -> int:
    """The bit depth the CPU decoder records for a refused file: its header's, once read."""
    try:
        return parse_png_header(data[:33]).bit_depth
    except DecodeError:
        return 0


def _decode_on_gpu(covered, block, images, stream) -> list[int]:
    """Decode the covered files into ``block``; fill ``images``; return those for the CPU."""
    cupy, _ = _import()
    kernels = _kernels()
    table, x2n = _constants(block.device.id)
    batch = _Batch([(data, layout) for _, data, layout in covered])
    pinned = _pinned(batch.nbytes)
    batch.fill(pinned)
    device = cupy.empty(batch.nbytes, dtype=np.uint8)
    device.set(pinned[: batch.nbytes], stream=stream)  # the batch's one copy to the GPU
    tables = device[batch.table_at :].view(np.int64)

    # 1. every chunk's CRC (png_chunks.crc32_by_pieces)
    chunks = len(batch.chunk_crc)
    pieces = batch.offsets["piece_chunk"][1]
    sums = cupy.zeros(chunks, dtype=np.uint32)
    kernels["crc_pieces"](
        ((pieces + 255) // 256,),
        (256,),
        (
            device,
            batch.table(tables, "chunk_start"),
            batch.table(tables, "chunk_length"),
            batch.table(tables, "chunk_seed"),
            batch.table(tables, "piece_chunk"),
            batch.table(tables, "piece_first"),
            np.int64(pieces),
            np.int32(CRC_PIECE),
            table,
            x2n,
            sums,
        ),
    )
    crc_bad = sums.astype(np.int64) != cupy.asarray(batch.chunk_crc)

    # 2. inflate (png_unfilter.inflate_batch), into 16-byte aligned slots of zeros
    height, width = block.shape[1:]
    depths = {layout.header.bit_depth for _, _, layout in covered}
    groups = [[i for i, c in enumerate(covered) if c[2].header.bit_depth == d] for d in depths]
    adler_ok = np.zeros(len(covered), dtype=bool)
    filter_bad = np.zeros(len(covered), dtype=bool)
    inflated = np.zeros(len(covered), dtype=bool)
    for group in groups:
        bpp = covered[group[0]][2].header.bit_depth // 8
        raw_size = height * (1 + width * bpp)
        slot = _aligned(raw_size)
        raw = cupy.zeros(len(group) * slot, dtype=np.uint8)
        sources = [device[batch.streams[i][0] : sum(batch.streams[i])] for i in group]
        targets = [raw[g * slot : g * slot + raw_size] for g in range(len(group))]
        try:
            sizes = _inflate(sources, targets, stream)
        except Exception as exc:  # nvCOMP refused the batch: these files go to the CPU
            log.warning("nvCOMP could not inflate a batch (%s); decoding it on the CPU", exc)
            continue
        starts = cupy.asarray(np.arange(len(group), dtype=np.int64) * slot)

        # 3. Adler-32 of the inflated bytes (png_unfilter.adler32_by_pieces)
        adler_pieces = -(-raw_size // ADLER_PIECE)
        adler_sums = cupy.zeros(2 * len(group), dtype=np.uint64)
        kernels["adler_pieces"](
            ((adler_pieces + 255) // 256, len(group)),
            (256,),
            (
                raw,
                starts,
                np.int64(raw_size),
                np.int32(ADLER_PIECE),
                np.int64(adler_pieces),
                adler_sums,
            ),
        )
        a = (1 + adler_sums[0::2]) % 65521
        b = (raw_size % 65521 + adler_sums[1::2]) % 65521
        adler = (b << 16) | a

        # 4. the row filters (png_unfilter.unfilter), straight into the output block
        bad = cupy.zeros(len(group), dtype=np.int32)
        out_index = cupy.asarray(np.array([covered[i][0] for i in group], dtype=np.int64))
        kernels["unfilter"](
            (len(group),),
            (min(_UNFILTER_THREADS, height),),
            (
                raw,
                starts,
                np.int32(height),
                np.int32(width),
                np.int32(bpp),
                block,
                out_index,
                np.int32(block.dtype.itemsize),
                bad,
            ),
        )
        expected = np.array([batch.adler[i] for i in group], dtype=np.uint64)
        flags = cupy.stack([adler == cupy.asarray(expected), bad != 0]).get(stream=stream)
        for g, i in enumerate(group):
            inflated[i] = sizes[g] == raw_size
            adler_ok[i], filter_bad[i] = flags[0, g], flags[1, g]

    crc_bad = crc_bad.get(stream=stream)  # waits for everything above
    to_cpu = []
    for i, (k, _, layout) in enumerate(covered):
        bad_chunk = batch.first_bad_chunk(i, crc_bad)
        if bad_chunk is not None:  # the CPU decoder checks the CRCs first, in file order
            images[k] = DecodedImage(None, "", layout.header.bit_depth, bad_chunk.bad_crc_message())
            block[k] = 0
        elif inflated[i] and adler_ok[i] and not filter_bad[i]:
            mode = "L" if layout.header.bit_depth == 8 else "I;16"
            images[k] = DecodedImage(None, mode, layout.header.bit_depth, "", None, layout.checksum)
        else:  # the stream ends early, does not inflate or check: the CPU decoder decides
            block[k] = 0
            to_cpu.append(k)
    return to_cpu
