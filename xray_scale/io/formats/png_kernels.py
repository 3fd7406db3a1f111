"""The GPU PNG decoder's CUDA kernels, each the NumPy reference named beside it, step for step.

- ``crc_pieces``: every chunk's CRC-32, one thread per piece of its data
  (:func:`xray_scale.io.formats.png_chunks.crc32_by_pieces`);
- ``adler_pieces``: each inflated stream's Adler-32, one thread per piece
  (:func:`xray_scale.io.formats.png_unfilter.adler32_by_pieces`);
- ``unfilter``: the row filters undone by a wavefront, one block per image,
  the pixels written into the batch (:func:`xray_scale.io.formats.png_unfilter.unfilter`).

:mod:`xray_scale.io.formats.png_gpu` compiles :data:`SOURCE` with CuPy and launches
them; the tests also compile it for the CPU with g++ and run it against libpng.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SOURCE", "crc_table"]

SOURCE = r"""
// CRC-32 by pieces: png_chunks.crc32_by_pieces / _multiply / crc32_shift.
__device__ unsigned int multiply_mod_p(unsigned int a, unsigned int b) {  // _multiply
    unsigned int m = 1u << 31, product = 0;
    for (;;) {
        if (a & m) {
            product ^= b;
            if ((a & (m - 1)) == 0) return product;
        }
        m >>= 1;
        b = (b & 1) ? (b >> 1) ^ 0xEDB88320u : b >> 1;
    }
}

__device__ unsigned int shift_crc(unsigned int crc, long long length,
                                  const long long* x2n) {  // crc32_shift
    unsigned int power = 1u << 31;  // x^0
    int k = 3;
    unsigned long long n = (unsigned long long)length;
    while (n) {
        if (n & 1) power = multiply_mod_p((unsigned int)x2n[k & 31], power);
        n >>= 1;
        ++k;
    }
    return multiply_mod_p(power, crc);
}

// One thread per piece of a chunk's data (every chunk has at least one piece).
extern "C" __global__ void crc_pieces(
        const unsigned char* buffer, const long long* chunk_start,
        const long long* chunk_length, const long long* chunk_seed,
        const long long* piece_chunk, const long long* piece_first, long long pieces,
        int piece_size, const long long* table, const long long* x2n,
        unsigned int* sums) {
    __shared__ unsigned int crc_table[256];
    for (int i = threadIdx.x; i < 256; i += blockDim.x) crc_table[i] = (unsigned int)table[i];
    __syncthreads();
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= pieces) return;
    long long chunk = piece_chunk[i];
    long long first = piece_first[i];
    long long length = chunk_length[chunk];
    unsigned int total = 0;
    if (first == 0) total = shift_crc((unsigned int)chunk_seed[chunk], length, x2n);
    long long size = min((long long)piece_size, length - first);
    if (size > 0) {  // zlib.crc32 of the piece
        const unsigned char* data = buffer + chunk_start[chunk] + first;
        unsigned int crc = 0xFFFFFFFFu;
        for (long long j = 0; j < size; ++j) crc = crc_table[(crc ^ data[j]) & 0xFF] ^ (crc >> 8);
        total ^= shift_crc(crc ^ 0xFFFFFFFFu, length - first - size, x2n);
    }
    atomicXor(&sums[chunk], total);
}

// Adler-32 by pieces: png_unfilter.adler32_by_pieces. Grid (pieces, images).
extern "C" __global__ void adler_pieces(
        const unsigned char* raw, const long long* raw_start, long long n, int piece,
        long long pieces, unsigned long long* sums) {
    int image = blockIdx.y;
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= pieces) return;
    const unsigned char* d = raw + raw_start[image];
    long long start = i * piece, end = min(start + piece, n);
    unsigned long long first_sum = 0, second_sum = 0;
    for (long long j = start; j < end; ++j) {
        first_sum += d[j];
        second_sum += (unsigned long long)(n - j) * d[j];
    }
    atomicAdd(&sums[2 * image], first_sum % 65521ull);
    atomicAdd(&sums[2 * image + 1], second_sum % 65521ull);
}

// Unfilter wavefront: png_unfilter.unfilter. One block per image, thread i owns
// row band + i and undoes pixel t - i of it at step t; one barrier per step.
__device__ int paeth(int a, int b, int c) {  // _paeth
    int p = a + b - c;
    int pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
    if (pa <= pb && pa <= pc) return a;
    return pb <= pc ? b : c;
}

extern "C" __global__ void __launch_bounds__(1024) unfilter(
        unsigned char* raw, const long long* raw_start, int height, int width, int bpp,
        void* out, const long long* out_index, int out_itemsize, int* bad) {
    int image = blockIdx.x;
    unsigned char* lines = raw + raw_start[image];
    long long stride = 1 + (long long)width * bpp;
    long long out_base = out_index[image] * (long long)height * width;
    for (int band = 0; band < height; band += blockDim.x) {
        int r = band + threadIdx.x;
        bool active = r < height;
        int f = active ? lines[r * stride] : 0;
        if (active && f > 4) bad[image] = 1;  // the CPU decoder then decides
        int rows_in_band = min((int)blockDim.x, height - band);
        for (int t = 0; t < rows_in_band + width - 1; ++t) {  // one step per barrier
            int p = t - (int)threadIdx.x;
            if (active && p >= 0 && p < width) {
                unsigned char* line = lines + r * stride;  // line[0]: the filter type
                unsigned char* prior = line - stride;
                unsigned int value = 0;
                for (int j = 0; j < bpp; ++j) {
                    int x = 1 + p * bpp + j;  // +1: past the row's filter-type byte
                    bool has_left = x - bpp >= 1, has_above = r >= 1;
                    int a = has_left ? line[x - bpp] : 0;
                    int b = has_above ? prior[x] : 0;
                    int c = (has_left && has_above) ? prior[x - bpp] : 0;
                    int filtered = line[x];
                    int v;
                    switch (f) {
                        case 1: v = filtered + a; break;
                        case 2: v = filtered + b; break;
                        case 3: v = filtered + ((a + b) >> 1); break;
                        case 4: v = filtered + paeth(a, b, c); break;
                        default: v = filtered;  // None, and an unknown type (flagged)
                    }
                    line[x] = (unsigned char)(v & 0xFF);
                    value = (value << 8) | (unsigned int)(v & 0xFF);  // big-endian samples
                }
                long long o = out_base + (long long)r * width + p;  // pixels_from_rows
                if (out_itemsize == 1) ((unsigned char*)out)[o] = (unsigned char)value;
                else ((unsigned short*)out)[o] = (unsigned short)value;
            }
            __syncthreads();
        }
    }
}
"""
"""CUDA C++ of the three kernels (``extern "C"``, so CuPy finds them by name)."""


def crc_table() -> np.ndarray:
    """zlib's CRC-32 byte table (reflected polynomial 0xEDB88320)."""
    table = np.arange(256, dtype=np.uint64)
    for _ in range(8):
        table = np.where(table & 1, (table >> np.uint64(1)) ^ np.uint64(0xEDB88320), table >> 1)
    return table.astype(np.int64)
