/* The CLBlast calls, with their first use serialised across threads.
 *
 * CLBlast compiles a routine's kernels on its first call per (context, device). Before 1.6.1
 * (Debian 12 ships 1.5.3), two threads compiling at once could crash it: seen here as a segfault
 * when two workers ran their first SGEMM together on two PoCL 'basic' devices. So each worker's
 * first call of each routine runs under one process-wide lock; later calls run in parallel. */
#include "internal.h"

#include <clblast_c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { BLAS_SGEMM = 1u << 0, BLAS_SGEMM_STRIDED_BATCHED = 1u << 1 };

static pthread_mutex_t first_use_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *blas_status_name(CLBlastStatusCode s)
{
    switch (s) {
    case CLBlastNotImplemented: return "CLBlastNotImplemented";
    case CLBlastInvalidMatrixA: return "CLBlastInvalidMatrixA";
    case CLBlastInvalidMatrixB: return "CLBlastInvalidMatrixB";
    case CLBlastInvalidMatrixC: return "CLBlastInvalidMatrixC";
    case CLBlastInvalidDimension: return "CLBlastInvalidDimension";
    case CLBlastInvalidLeadDimA: return "CLBlastInvalidLeadDimA";
    case CLBlastInvalidLeadDimB: return "CLBlastInvalidLeadDimB";
    case CLBlastInvalidLeadDimC: return "CLBlastInvalidLeadDimC";
    case CLBlastInsufficientMemoryA: return "CLBlastInsufficientMemoryA";
    case CLBlastInsufficientMemoryB: return "CLBlastInsufficientMemoryB";
    case CLBlastInsufficientMemoryC: return "CLBlastInsufficientMemoryC";
    case CLBlastInsufficientMemoryTemp: return "CLBlastInsufficientMemoryTemp";
    case CLBlastInvalidBatchCount: return "CLBlastInvalidBatchCount";
    case CLBlastInvalidLocalMemUsage: return "CLBlastInvalidLocalMemUsage";
    case CLBlastDatabaseError: return "CLBlastDatabaseError";
    case CLBlastUnknownError: return "CLBlastUnknownError";
    case CLBlastUnexpectedError: return "CLBlastUnexpectedError";
    case CLBlastInvalidOverrideKernel: return "CLBlastInvalidOverrideKernel";
    case CLBlastMissingOverrideParameter: return "CLBlastMissingOverrideParameter";
    default: return clt_cl_error_name((cl_int)s);   /* the codes shared with OpenCL */
    }
}

static clt_status blas_fail(clt__worker *w, const char *routine, CLBlastStatusCode s, size_t m,
                            size_t n, size_t k)
{
    /* Codes shared with OpenCL keep their meaning (out of memory stays out of memory). */
    clt_status st = (s > -1000) ? clt__status_from_cl((cl_int)s) : CLT_ERR_BLAS;
    if (st == CLT_ERR_OPENCL) st = CLT_ERR_BLAS;
    return clt__fail(st, "CLBlast %s (M=%zu N=%zu K=%zu) on device %d '%s': %s (%d)", routine, m,
                     n, k, w->index, clt__worker_name(w), blas_status_name(s), (int)s);
}

/* Takes the first-use lock when this worker has not run `routine` yet. */
static bool first_use_begin(clt__worker *w, unsigned routine)
{
    if (w->blas_warm & routine) return false;
    pthread_mutex_lock(&first_use_lock);
    return true;
}

static void first_use_end(clt__worker *w, unsigned routine, bool locked, CLBlastStatusCode s)
{
    if (!locked) return;
    if (s == CLBlastSuccess) {
        /* Wait for the kernels to finish too: on PoCL 'basic' devices they run (and may be
         * compiled further) on this thread at clFinish. */
        clFinish(w->queue);
        w->blas_warm |= routine;
    }
    pthread_mutex_unlock(&first_use_lock);
}

static CLBlastTranspose tr(clt__trans t) { return t == CLT__TRANS ? CLBlastTransposeYes : CLBlastTransposeNo; }

/* ---- cltrain's own SGEMM (cl/gemm.cl) ------------------------------------------------------
 * Used on CPU devices for the shapes it covers (M a multiple of GEMM_RM, N of 16, not both
 * operands transposed): on PoCL it runs at about OpenBLAS's speed where CLBlast reaches 5-10
 * GFLOPS untuned and ~55 tuned (docs/PERFORMANCE.md, "GEMM"). CLT_GEMM_KERNEL=clblast or
 * cltrain forces the choice (cltrain: still only for the shapes it covers). */
#define GEMM_RM 8
#define GEMM_NV 1

static int own_gemm_mode(void)   /* 0: by device type, 1: always, -1: never */
{
    const char *e = getenv("CLT_GEMM_KERNEL");
    if (e && !strcmp(e, "clblast")) return -1;
    if (e && !strcmp(e, "cltrain")) return 1;
    return 0;
}

bool clt__own_gemm_covers(const clt__worker *w, clt__trans ta, clt__trans tb, size_t m, size_t n,
                          size_t k)
{
    int mode = own_gemm_mode();
    if (mode < 0 || (mode == 0 && !(w->dev->info.type & CLT_DEVICE_CPU))) return false;
    return m % GEMM_RM == 0 && n % (16 * GEMM_NV) == 0 && !(ta == CLT__TRANS && tb == CLT__TRANS) &&
           m <= UINT32_MAX && n <= UINT32_MAX && k <= UINT32_MAX;
}

/* w's scratch of at least n floats (B transposed). */
static clt_status scratch(clt__worker *w, size_t n, cl_mem *out)
{
    if (w->gemm_scratch_floats < n) {
        if (w->gemm_scratch) clReleaseMemObject(w->gemm_scratch);
        w->gemm_scratch = NULL;
        w->gemm_scratch_floats = 0;
        clt_status st = clt__alloc(w, n, "the GEMM scratch (B transposed)", &w->gemm_scratch);
        if (st != CLT_OK) return st;
        w->gemm_scratch_floats = n;
    }
    *out = w->gemm_scratch;
    return CLT_OK;
}

static clt_status enqueue_2d(clt__worker *w, cl_kernel kern, const char *name, size_t g0, size_t g1,
                             bool record, const clt__arg *args, int nargs)
{
    for (int i = 0; i < nargs; i++) {
        cl_int err = clSetKernelArg(kern, (cl_uint)i, args[i].size, args[i].value);
        if (err != CL_SUCCESS) return clt__fail_cl(err, clt__worker_name(w), name);
    }
    size_t global[2] = {g0, g1}, local[2] = {1, 1};
    cl_int err = clEnqueueNDRangeKernel(w->queue, kern, 2, NULL, global, local, 0, NULL,
                                        record ? clt__worker_event(w) : NULL);
    if (err != CL_SUCCESS)
        return clt__fail(clt__status_from_cl(err), "launching %s (%zu x %zu) on device %d '%s': %s",
                         name, g0, g1, w->index, clt__worker_name(w), clt_cl_error_name(err));
    if (record) clt__worker_record_named(w, CLT__EV_KERNEL, "sgemm");
    return CLT_OK;
}

/* Whether the leading dimensions and buffer sizes hold the matrices. When not, CLBlast gets
 * the call and reports what is wrong in its own terms. */
static bool mat_fits(cl_mem buf, size_t off, size_t rows, size_t cols, size_t ld)
{
    size_t bytes = 0;
    if (ld < cols || clGetMemObjectInfo(buf, CL_MEM_SIZE, sizeof bytes, &bytes, NULL) != CL_SUCCESS)
        return false;
    size_t need = off + (rows - 1) * ld + cols;   /* rows, cols >= 1; < 2^32 each */
    return need <= bytes / sizeof(float) && ld <= UINT32_MAX;
}

static bool own_args_fit(clt__trans ta, clt__trans tb, size_t m, size_t n, size_t k, cl_mem a,
                         size_t a_off, size_t lda, cl_mem b, size_t b_off, size_t ldb, cl_mem c,
                         size_t c_off, size_t ldc)
{
    return mat_fits(a, a_off, ta == CLT__TRANS ? k : m, ta == CLT__TRANS ? m : k, lda) &&
           mat_fits(b, b_off, tb == CLT__TRANS ? n : k, tb == CLT__TRANS ? k : n, ldb) &&
           mat_fits(c, c_off, m, n, ldc);
}

static clt_status own_sgemm(clt__worker *w, clt__trans ta, clt__trans tb, size_t m, size_t n,
                            size_t k, float alpha, cl_mem a, size_t a_off, size_t lda, cl_mem b,
                            size_t b_off, size_t ldb, float beta, cl_mem c, size_t c_off, size_t ldc,
                            const clt__view *bias, const clt__view *relu)
{
    char opts[96];
    snprintf(opts, sizeof opts, "-DRM=%d -DNV=%d -DTA=%d", GEMM_RM, GEMM_NV, ta == CLT__TRANS);
    cl_kernel kern, tk;
    clt_status st = clt__kernel_get(w, "gemm", opts, "gemm_rb", &kern);
    if (st != CLT_OK) return st;
    clt__worker_mark(w);
    cl_ulong ao = a_off, bo = b_off, co = c_off;
    cl_uint M = (cl_uint)m, N = (cl_uint)n, K = (cl_uint)k, LDA = (cl_uint)lda, LDB = (cl_uint)ldb,
            LDC = (cl_uint)ldc;
    if (tb == CLT__TRANS) {
        /* B is stored (N, K): make it (K, N) in the scratch */
        cl_mem t;
        st = clt__kernel_get(w, "gemm", NULL, "transpose16", &tk);
        if (st == CLT_OK) st = scratch(w, n * k, &t);
        if (st != CLT_OK) return st;
        cl_ulong zero = 0;
        st = enqueue_2d(w, tk, "transpose16", (k + 15) / 16, (n + 15) / 16, false,
                        (clt__arg[]){CLT_ARG(N), CLT_ARG(K), CLT_ARG(b), CLT_ARG(bo), CLT_ARG(LDB),
                                     CLT_ARG(t), CLT_ARG(zero)}, 7);
        if (st != CLT_OK) return st;
        b = t, bo = 0, LDB = N;
    }
    /* unused epilogue pointers get C (a valid buffer); the flags keep the kernel off them */
    cl_mem bm = bias ? bias->mem : c, rm = relu ? relu->mem : c;
    cl_ulong bio = bias ? bias->off : 0, ro = relu ? relu->off : 0;
    cl_int has_bias = bias != NULL, has_relu = relu != NULL;
    return enqueue_2d(w, kern, "gemm_rb", m / GEMM_RM, n / (16 * GEMM_NV), true,
                      (clt__arg[]){CLT_ARG(M), CLT_ARG(N), CLT_ARG(K), CLT_ARG(alpha), CLT_ARG(beta),
                                   CLT_ARG(a), CLT_ARG(ao), CLT_ARG(LDA), CLT_ARG(b), CLT_ARG(bo),
                                   CLT_ARG(LDB), CLT_ARG(c), CLT_ARG(co), CLT_ARG(LDC), CLT_ARG(bm),
                                   CLT_ARG(bio), CLT_ARG(has_bias), CLT_ARG(rm), CLT_ARG(ro),
                                   CLT_ARG(has_relu)}, 20);
}

clt_status clt__sgemm(clt__worker *w, clt__trans ta, clt__trans tb, size_t m, size_t n, size_t k,
                      float alpha, cl_mem a, size_t a_off, size_t lda, cl_mem b, size_t b_off,
                      size_t ldb, float beta, cl_mem c, size_t c_off, size_t ldc)
{
    CLT_ASSERT(clt__worker_self() == w, CLT_ERR_STATE);
    if (m == 0 || n == 0) return CLT_OK;
    if (k == 0) return clt__fail(CLT_ERR_INVALID_ARG, "SGEMM with K = 0 is not supported");
    if (clt__own_gemm_covers(w, ta, tb, m, n, k) && own_args_fit(ta, tb, m, n, k, a, a_off, lda, b,
                                                                b_off, ldb, c, c_off, ldc))
        return own_sgemm(w, ta, tb, m, n, k, alpha, a, a_off, lda, b, b_off, ldb, beta, c, c_off, ldc,
                         NULL, NULL);
    return clt__sgemm_clblast(w, ta, tb, m, n, k, alpha, a, a_off, lda, b, b_off, ldb, beta, c,
                              c_off, ldc);
}

clt_status clt__sgemm_own(clt__worker *w, clt__trans ta, clt__trans tb, size_t m, size_t n,
                          size_t k, float alpha, cl_mem a, size_t a_off, size_t lda, cl_mem b,
                          size_t b_off, size_t ldb, float beta, cl_mem c, size_t c_off, size_t ldc)
{
    CLT_ASSERT(clt__worker_self() == w, CLT_ERR_STATE);
    if (m % GEMM_RM || n % (16 * GEMM_NV) || (ta == CLT__TRANS && tb == CLT__TRANS) || k == 0 ||
        !own_args_fit(ta, tb, m, n, k, a, a_off, lda, b, b_off, ldb, c, c_off, ldc))
        return clt__fail(CLT_ERR_INVALID_ARG, "cltrain's own SGEMM does not cover %s%s M=%zu N=%zu "
                         "K=%zu (M a multiple of %d, N of %d, not both transposed, matrices within "
                         "their buffers)", ta ? "T" : "N", tb ? "T" : "N", m, n, k, GEMM_RM,
                         16 * GEMM_NV);
    return own_sgemm(w, ta, tb, m, n, k, alpha, a, a_off, lda, b, b_off, ldb, beta, c, c_off, ldc,
                     NULL, NULL);
}

clt_status clt__sgemm_fused(clt__worker *w, clt__trans ta, clt__trans tb, size_t m, size_t n,
                            size_t k, cl_mem a, size_t a_off, size_t lda, cl_mem b, size_t b_off,
                            size_t ldb, cl_mem c, size_t c_off, size_t ldc, const clt__view *bias,
                            const clt__view *relu, bool *done)
{
    CLT_ASSERT(clt__worker_self() == w, CLT_ERR_STATE);
    *done = false;
    if (m == 0 || n == 0 || k == 0 || !clt__own_gemm_covers(w, ta, tb, m, n, k) ||
        !own_args_fit(ta, tb, m, n, k, a, a_off, lda, b, b_off, ldb, c, c_off, ldc) ||
        (bias && !mat_fits(bias->mem, bias->off, 1, n, n)) ||
        (relu && !mat_fits(relu->mem, relu->off, m, n, ldc)))
        return CLT_OK;
    *done = true;
    return own_sgemm(w, ta, tb, m, n, k, 1.0f, a, a_off, lda, b, b_off, ldb, 0.0f, c, c_off, ldc,
                     bias, relu);
}

clt_status clt__sgemm_clblast(clt__worker *w, clt__trans ta, clt__trans tb, size_t m, size_t n,
                              size_t k, float alpha, cl_mem a, size_t a_off, size_t lda, cl_mem b,
                              size_t b_off, size_t ldb, float beta, cl_mem c, size_t c_off, size_t ldc)
{
    CLT_ASSERT(clt__worker_self() == w, CLT_ERR_STATE);
    if (m == 0 || n == 0) return CLT_OK;
    if (k == 0) return clt__fail(CLT_ERR_INVALID_ARG, "SGEMM with K = 0 is not supported");
    bool locked = first_use_begin(w, BLAS_SGEMM);
    clt__worker_mark(w);
    CLBlastStatusCode s = CLBlastSgemm(CLBlastLayoutRowMajor, tr(ta), tr(tb), m, n, k, alpha, a,
                                       a_off, lda, b, b_off, ldb, beta, c, c_off, ldc, &w->queue,
                                       clt__worker_event(w));
    if (s == CLBlastSuccess) clt__worker_record_named(w, CLT__EV_KERNEL, "sgemm");
    first_use_end(w, BLAS_SGEMM, locked, s);
    return s == CLBlastSuccess ? CLT_OK : blas_fail(w, "SGEMM", s, m, n, k);
}

clt_status clt__sgemm_strided_batched(clt__worker *w, clt__trans ta, clt__trans tb, size_t m,
                                      size_t n, size_t k, float alpha, cl_mem a, size_t a_off,
                                      size_t lda, size_t a_stride, cl_mem b, size_t b_off,
                                      size_t ldb, size_t b_stride, float beta, cl_mem c,
                                      size_t c_off, size_t ldc, size_t c_stride, size_t batch)
{
    CLT_ASSERT(clt__worker_self() == w, CLT_ERR_STATE);
    if (m == 0 || n == 0 || batch == 0) return CLT_OK;
    if (k == 0) return clt__fail(CLT_ERR_INVALID_ARG, "batched SGEMM with K = 0 is not supported");
    bool locked = first_use_begin(w, BLAS_SGEMM_STRIDED_BATCHED);
    clt__worker_mark(w);
    CLBlastStatusCode s = CLBlastSgemmStridedBatched(
        CLBlastLayoutRowMajor, tr(ta), tr(tb), m, n, k, alpha, a, a_off, lda, a_stride, b, b_off,
        ldb, b_stride, beta, c, c_off, ldc, c_stride, batch, &w->queue, clt__worker_event(w));
    if (s == CLBlastSuccess) clt__worker_record_named(w, CLT__EV_KERNEL, "sgemm_batched");
    first_use_end(w, BLAS_SGEMM_STRIDED_BATCHED, locked, s);
    return s == CLBlastSuccess ? CLT_OK : blas_fail(w, "strided batched SGEMM", s, m, n, k);
}

clt_status clt__blas_override(clt__worker *w, const char *kernel, size_t n, const char *const *names,
                              const size_t *values)
{
    pthread_mutex_lock(&first_use_lock);
    CLBlastStatusCode s = CLBlastOverrideParameters(w->dev->device, kernel, CLBlastPrecisionSingle,
                                                    n, (const char **)names, values);
    pthread_mutex_unlock(&first_use_lock);
    if (s == CLBlastSuccess) return CLT_OK;
    return clt__fail(CLT_ERR_BLAS, "CLBlastOverrideParameters(%s) on device %d '%s': %s (%d)",
                     kernel, w->index, clt__worker_name(w), blas_status_name(s), (int)s);
}
