"""The GPU decoder's CUDA kernels run on the CPU: built by g++, one thread per CUDA thread.

A short prelude maps what the kernels use (``threadIdx``, ``blockIdx``,
``blockDim``, ``__syncthreads``, ``atomicXor``, ``atomicAdd``, ``__shared__``)
onto C++20 threads and a ``std::barrier`` per block; blocks run one after the
other. It is slow and only for small inputs, but it executes the very source
the GPU compiles, so the kernels' arithmetic, indexing and barriers are tested
where no GPU is (the GPU tests compare the real thing with libpng).
"""

from __future__ import annotations

import ctypes
import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

COMPILER = shutil.which("g++")

_PRELUDE = r"""
#include <algorithm>
#include <barrier>
#include <cstdlib>
#include <functional>
#include <thread>
#include <vector>
using std::min;
struct dim3_ { unsigned x, y, z; };
thread_local dim3_ threadIdx, blockIdx;
static dim3_ blockDim, gridDim;
static std::barrier<>* block_barrier;
#define __global__
#define __device__
#define __launch_bounds__(n)
#define __shared__ static
static void __syncthreads() { block_barrier->arrive_and_wait(); }
static unsigned int atomicXor(unsigned int* p, unsigned int v) {
    return __atomic_fetch_xor(p, v, __ATOMIC_SEQ_CST);
}
static unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) {
    return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST);
}
"""

_LAUNCHERS = r"""
template <typename F> static void launch(dim3_ grid, dim3_ block, F body) {
    blockDim = block;
    gridDim = grid;
    for (unsigned by = 0; by < grid.y; ++by)
        for (unsigned bx = 0; bx < grid.x; ++bx) {
            std::barrier<> barrier(block.x);
            block_barrier = &barrier;
            std::vector<std::thread> threads;
            for (unsigned t = 0; t < block.x; ++t)
                threads.emplace_back([&, t, bx, by] {
                    threadIdx = {t, 0, 0};
                    blockIdx = {bx, by, 0};
                    body();
                });
            for (auto& thread : threads) thread.join();
        }
}

extern "C" void run_crc_pieces(unsigned gx, unsigned bx, const unsigned char* buffer,
        const long long* chunk_start, const long long* chunk_length, const long long* chunk_seed,
        const long long* piece_chunk, const long long* piece_first, long long pieces,
        int piece_size, const long long* table, const long long* x2n, unsigned int* sums) {
    launch({gx, 1, 1}, {bx, 1, 1}, [=] {
        crc_pieces(buffer, chunk_start, chunk_length, chunk_seed, piece_chunk, piece_first,
                   pieces, piece_size, table, x2n, sums);
    });
}

extern "C" void run_adler_pieces(unsigned gx, unsigned gy, unsigned bx, const unsigned char* raw,
        const long long* raw_start, long long n, int piece, long long pieces,
        unsigned long long* sums) {
    launch({gx, gy, 1}, {bx, 1, 1}, [=] { adler_pieces(raw, raw_start, n, piece, pieces, sums); });
}

extern "C" void run_unfilter(unsigned gx, unsigned bx, unsigned char* raw,
        const long long* raw_start, int height, int width, int bpp, void* out,
        const long long* out_index, int out_itemsize, int* bad) {
    launch({gx, 1, 1}, {bx, 1, 1}, [=] {
        unfilter(raw, raw_start, height, width, bpp, out, out_index, out_itemsize, bad);
    });
}
"""


def build(source: str) -> ctypes.CDLL:
    """Compile ``source`` (png_kernels.SOURCE) for the CPU; the library is cached by content."""
    code = _PRELUDE + source + _LAUNCHERS
    digest = hashlib.sha256(code.encode()).hexdigest()[:16]
    folder = Path(tempfile.gettempdir()) / "xray_scale_cuda_on_cpu"
    folder.mkdir(exist_ok=True)
    library = folder / f"kernels-{digest}.so"
    if not library.exists():
        cpp = folder / f"kernels-{digest}.cpp"
        cpp.write_text(code)
        partial = folder / f"kernels-{digest}.{id(code)}.so"
        subprocess.run(
            [COMPILER, "-std=c++20", "-O1", "-shared", "-fPIC", "-pthread", "-o", partial, cpp],
            check=True,
            capture_output=True,
        )
        partial.replace(library)
    kernels = ctypes.CDLL(str(library))
    p, i32, i64, u32 = ctypes.c_void_p, ctypes.c_int, ctypes.c_longlong, ctypes.c_uint
    kernels.run_crc_pieces.argtypes = [u32, u32, p, p, p, p, p, p, i64, i32, p, p, p]
    kernels.run_adler_pieces.argtypes = [u32, u32, u32, p, p, i64, i32, i64, p]
    kernels.run_unfilter.argtypes = [u32, u32, p, p, i32, i32, i32, p, p, i32, p]
    return kernels


def pointer(array: np.ndarray) -> ctypes.c_void_p:
    """The address of a C-contiguous array's data, for a kernel argument."""
    assert array.flags.c_contiguous
    return ctypes.c_void_p(array.ctypes.data)
