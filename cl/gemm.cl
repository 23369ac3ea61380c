/* cltrain's own SGEMM for CPU devices (PoCL): C (M, N) = alpha op(A) (M, K) B (K, N) + beta C,
 * row-major. Each work-item keeps an RM x (16 NV) block of C in registers (RM * NV float16
 * accumulators) and walks K: per step one row of B's block (NV vector loads) and RM broadcasts of
 * A. The loops over the block are unrolled so the accumulators stay in registers; without the
 * unrolling PoCL's compiler keeps them on the stack (3x slower). M must be a multiple of RM and
 * N of 16 NV (blas.c checks); K is free. TA: A stored (K, M). B transposed is made (K, N) first
 * by transpose16. Measured on PoCL 3.1's AVX-512 CPU device: about OpenBLAS's speed on one core
 * (docs/PERFORMANCE.md, "GEMM"). */
#ifndef RM
#define RM 8
#endif
#ifndef NV
#define NV 1
#endif
#ifndef TA
#define TA 0
#endif

/* The epilogue can add a bias per column (bias != 0: Linear's b) and write ReLU of the result to
 * a second matrix R (relu != 0, same leading dimension): Linear + ReLU in one pass, the same
 * bits as the separate kernels (the sum is rounded, then the bias added, then max(0, .)). */
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
            if (has_relu) vstore16(fmax(r, (float16)(0.0f)), v, R + ro + (m0 + i) * ldc + n0);
        }
    }
}

/* out (cols, rows) = in (rows, cols)^T, in with leading dimension ld; a 16x16 tile per
 * work-item, read along rows. */
__kernel void transpose16(const uint rows, const uint cols, __global const float *in,
                          const ulong io, const uint ld, __global float *out, const ulong oo)
{
    const size_t c0 = get_global_id(0) * 16, r0 = get_global_id(1) * 16;
    if (r0 >= rows || c0 >= cols) return;
    const size_t rn = min((size_t)16, rows - r0), cn = min((size_t)16, cols - c0);
    for (size_t r = 0; r < rn; r++)
        for (size_t c = 0; c < cn; c++) out[oo + (c0 + c) * rows + r0 + r] = in[io + (r0 + r) * ld + c0 + c];
}
