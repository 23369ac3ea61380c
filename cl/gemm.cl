/* cltrain's own SGEMM for CPU devices (PoCL): C (M, N) = alpha op(A) (M, K) B (K, N) + beta C,
 * row-major. Each work-item keeps an RM x (16 NV) block of C in registers (RM * NV float16
 * accumulators) and walks K: per step one row of B's block (NV vector loads) and RM broadcasts of
 * A. The loops over the block are unrolled so the accumulators stay in registers; without the
 * unrolling PoCL's compiler keeps them on the stack (3x slower). M must be a multiple of RM and
 * N of 16 NV; K is free. TA: A stored (K, M). Other shapes, and B transposed, go through pack
 * (zero padding) and unpad (blas.c). Measured on PoCL 3.1's AVX-512 CPU device: about OpenBLAS's speed on one core
 * (docs/PERFORMANCE.md, "GEMM"). */
#pragma OPENCL FP_CONTRACT OFF   /* the same bits on every vendor; fma() where fusing is meant */
#ifndef RM
#define RM 8
#endif
#ifndef NV
#define NV 1
#endif
#ifndef TA
#define TA 0
#endif
#ifndef TC
#define TC 0
#endif

/* The epilogue can add a bias per column (bias != 0: Linear's b) and write ReLU of the result to
 * a second matrix R (relu != 0, same leading dimension): Linear + ReLU in one pass, the same
 * bits as the separate kernels (the sum is rounded, then the bias added, then activation.cl's
 * ReLU, r <= 0 ? 0 : r: NaN stays NaN, as PyTorch's relu; fmax would make it 0). */
__kernel void gemm_rb(const uint M, const uint N, const uint K, const float alpha, const float beta,
                      __global const float *A, const ulong ao, const uint lda,
                      __global const float *B, const ulong bo, const uint ldb,
                      __global float *C, const ulong co, const uint ldc,
                      __global const float *bias, const ulong bio, const int has_bias,
                      __global float *R, const ulong ro, const int has_relu)
{
    const size_t m0 = get_global_id(0) * RM, n0 = get_global_id(1) * (16 * NV);
    if (m0 >= M || n0 >= N) return;
    __global const float *a = A + ao, *b = B + bo + n0;
    float16 c[RM][NV];
    _Pragma("unroll") for (int i = 0; i < RM; i++)
        _Pragma("unroll") for (int v = 0; v < NV; v++) c[i][v] = (float16)(0.0f);
    for (size_t k = 0; k < K; k++) {
        float16 bv[NV];
        _Pragma("unroll") for (int v = 0; v < NV; v++) bv[v] = vload16(v, b + k * ldb);
        _Pragma("unroll") for (int i = 0; i < RM; i++) {
#if TA
            const float av = a[k * lda + m0 + i];
#else
            const float av = a[(m0 + i) * lda + k];
#endif
            _Pragma("unroll") for (int v = 0; v < NV; v++) c[i][v] = fma((float16)(av), bv[v], c[i][v]);
        }
    }
#if TC
    /* The block is of C^T (blas.c's swapped product): row m0 + i of it is column m0 + i of C,
     * (ldc, R alike), and the bias is per row here. The same operations in the same order as
     * below, element by element, so the same bits as the direct product. */
    _Pragma("unroll") for (int i = 0; i < RM; i++) {
        const float bi = has_bias ? bias[bio + m0 + i] : 0.0f;
        _Pragma("unroll") for (int v = 0; v < NV; v++) {
            float t[16];
            vstore16(alpha * c[i][v], 0, t);
            for (int l = 0; l < 16; l++) {
                const size_t at = (n0 + 16 * v + l) * ldc + m0 + i;
                float r = t[l];
                if (beta != 0.0f) r += beta * C[co + at];   /* beta 0: C may hold NaN */
                if (has_bias) r += bi;
                C[co + at] = r;
                if (has_relu) R[ro + at] = r <= 0.0f ? 0.0f : r;
            }
        }
    }
#else
    float16 bv[NV];
    _Pragma("unroll") for (int v = 0; v < NV; v++)
        bv[v] = has_bias ? vload16(v, bias + bio + n0) : (float16)(0.0f);
    _Pragma("unroll") for (int i = 0; i < RM; i++) {
        __global float *crow = C + co + (m0 + i) * ldc + n0;
        _Pragma("unroll") for (int v = 0; v < NV; v++) {
            float16 r = alpha * c[i][v];
            if (beta != 0.0f) r += beta * vload16(v, crow);   /* beta 0: C may hold NaN */
            if (has_bias) r += bv[v];
            vstore16(r, v, crow);
            if (has_relu)
                vstore16(select(r, (float16)(0.0f), r <= 0.0f), v, R + ro + (m0 + i) * ldc + n0);
        }
    }
#endif
}

/* Packs a matrix into a (R, Cc) buffer, zero-filled past the source's rows_in x cols_in: the
 * operands of a shape gemm_rb does not cover exactly (M not a multiple of RM, N of 16 NV, B
 * transposed). trans: out (r, c) = in (c, r), the source stored (cols_out, rows_out). One 16x16
 * tile, read along the source's rows: a tile inside the source moves as 16 vector loads and 16
 * vector stores (transposed through private memory), edge tiles element by element. The
 * element loop alone took 2.5 ns per float: 2 ms of a seed-MLP step, the largest fixed cost
 * every data-parallel replica paid again. */
static void pack_tile(const uint R, const uint Cc, __global const float *in, const ulong io,
                      const uint ld, const uint rows_in, const uint cols_in, const int trans,
                      __global float *out, const ulong oo, const size_t r0, const size_t c0)
{
    const size_t rn = min((size_t)16, R - r0), cn = min((size_t)16, Cc - c0);
    const bool full = rn == 16 && cn == 16 && r0 + 16 <= rows_in && c0 + 16 <= cols_in;
    if (!trans) {
        if (full) {
            for (size_t r = r0; r < r0 + 16; r++)
                vstore16(vload16(0, in + io + r * ld + c0), 0, out + oo + r * Cc + c0);
            return;
        }
        for (size_t r = r0; r < r0 + rn; r++)
            for (size_t c = c0; c < c0 + cn; c++)
                out[oo + r * Cc + c] = r < rows_in && c < cols_in ? in[io + r * ld + c] : 0.0f;
    } else {
        if (full) {
            float16 t[16];
            _Pragma("unroll") for (int i = 0; i < 16; i++) t[i] = vload16(0, in + io + (c0 + i) * ld + r0);
            float *tf = (float *)t;
            _Pragma("unroll") for (int j = 0; j < 16; j++) {
                float16 v = (float16)(tf[j], tf[16 + j], tf[32 + j], tf[48 + j], tf[64 + j], tf[80 + j],
                                      tf[96 + j], tf[112 + j], tf[128 + j], tf[144 + j], tf[160 + j],
                                      tf[176 + j], tf[192 + j], tf[208 + j], tf[224 + j], tf[240 + j]);
                vstore16(v, 0, out + oo + (r0 + j) * Cc + c0);
            }
            return;
        }
        for (size_t c = c0; c < c0 + cn; c++)
            for (size_t r = r0; r < r0 + rn; r++)
                out[oo + r * Cc + c] = c < cols_in && r < rows_in ? in[io + c * ld + r] : 0.0f;
    }
}

/* A strip of PACK_TILES tiles down the rows per work-item (blas.c launches R / 64 of them). */
#define PACK_TILES 4
__kernel void pack(const uint R, const uint Cc, __global const float *in, const ulong io,
                   const uint ld, const uint rows_in, const uint cols_in, const int trans,
                   __global float *out, const ulong oo)
{
    const size_t c0 = get_global_id(0) * 16;
    const size_t r_begin = get_global_id(1) * (16 * PACK_TILES);
    const size_t r_end = min((size_t)R, r_begin + 16 * PACK_TILES);
    if (c0 >= Cc) return;
    for (size_t r0 = r_begin; r0 < r_end; r0 += 16)
        pack_tile(R, Cc, in, io, ld, rows_in, cols_in, trans, out, oo, r0, c0);
}

/* C (M, N) = P[:M, :N] + beta C, P (.., ldp): the padded product back into place. 16 columns
 * per work-item. */
__kernel void unpad(const uint M, const uint N, __global const float *P, const ulong po,
                    const uint ldp, const float beta, __global float *C, const ulong co,
                    const uint ldc)
{
    const size_t c0 = get_global_id(0) * 16, r = get_global_id(1);
    if (r >= M || c0 >= N) return;
    const size_t cn = min((size_t)16, N - c0);
    for (size_t c = c0; c < c0 + cn; c++) {
        const float v = P[po + r * ldp + c];
        C[co + r * ldc + c] = beta != 0.0f ? v + beta * C[co + r * ldc + c] : v;
    }
}
