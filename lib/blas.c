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
 * Used on CPU devices for every call but both operands transposed: shapes off its 8x16 block
 * are padded with zeros through a per-worker scratch buffer, and a transposed B is packed there
 * too. On PoCL it runs at 0.9x OpenBLAS's single-thread speed over the seed MLP's GEMMs, where
 * CLBlast reaches 0.08x untuned and 0.5-0.6x tuned (docs/PERFORMANCE.md, "GEMM").
 * CLT_GEMM_KERNEL=clblast or cltrain forces the choice (cltrain: still never for TT). */
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
    /* below 2^28 each, so the padded sizes and products of two stay far from 2^32 */
    return !(ta == CLT__TRANS && tb == CLT__TRANS) && m < (1u << 28) && n < (1u << 28) &&
           k < (1u << 28);
}

/* w's scratch of at least n floats (the packed operands and the padded product). */
static clt_status scratch(clt__worker *w, size_t n, cl_mem *out)
{
    if (w->gemm_scratch_floats < n) {
        if (w->gemm_scratch) clReleaseMemObject(w->gemm_scratch);
        w->gemm_scratch = NULL;
        w->gemm_scratch_floats = 0;
        clt_status st = clt__alloc(w, n, "the GEMM scratch (packed operands)", &w->gemm_scratch);
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
    clt__kernel_launched(w, kern, 2, global, local);
    return CLT_OK;
}

/* Whether the leading dimensions and buffer sizes hold the matrices. When not, CLBlast gets
 * the call and reports what is wrong in its own terms. */
static bool mat_fits(cl_mem buf, size_t off, size_t rows, size_t cols, size_t ld)
{
    size_t bytes = 0;
    if (ld < cols || ld > UINT32_MAX ||
        clGetMemObjectInfo(buf, CL_MEM_SIZE, sizeof bytes, &bytes, NULL) != CL_SUCCESS)
        return false;
    size_t need = off + (rows - 1) * ld + cols;   /* rows, cols in 1..2^28, ld < 2^32 */
    return off <= bytes / sizeof(float) && need <= bytes / sizeof(float);
}

static bool own_args_fit(clt__trans ta, clt__trans tb, size_t m, size_t n, size_t k, cl_mem a,
                         size_t a_off, size_t lda, cl_mem b, size_t b_off, size_t ldb, cl_mem c,
                         size_t c_off, size_t ldc)
{
    return mat_fits(a, a_off, ta == CLT__TRANS ? k : m, ta == CLT__TRANS ? m : k, lda) &&
           mat_fits(b, b_off, tb == CLT__TRANS ? n : k, tb == CLT__TRANS ? k : n, ldb) &&
           mat_fits(c, c_off, m, n, ldc);
}

static size_t round_up(size_t v, size_t to) { return (v + to - 1) / to * to; }

/* Rows per work-item for m: GEMM_RM, or for a few rows that it does not divide, the largest of
 * 4, 2, 1 that does (no padded rows: M = 10 ran at 0.49x OpenBLAS padded to 16, 0.56x with 2).
 * With A transposed (the weight gradient dy^T x) 16 when m allows: A is read a row of RM floats
 * per step of k, and 8 used half of each cache line (1024 x 1024 x 512: 61 -> 88-97 GFLOPS);
 * untransposed A reads RM rows at once, and 16 streams ran at half the speed of 8. */
static size_t rows_per_item(size_t m, clt__trans ta)
{
    if (ta == CLT__TRANS && m % (2 * GEMM_RM) == 0) return 2 * GEMM_RM;
    if (m % GEMM_RM == 0 || m >= 64) return GEMM_RM;
    return m % 4 == 0 ? 4 : m % 2 == 0 ? 2 : 1;
}

/* Enqueues pack: out (R, Cc) from in (rows_in, cols_in) stored with ld, transposed or not. A
 * work-item moves a strip of 16 columns by 64 rows (PACK_TILES in cl/gemm.cl). */
static clt_status pack(clt__worker *w, cl_mem in, cl_ulong io, size_t ld, size_t rows_in,
                       size_t cols_in, int trans, size_t R, size_t Cc, cl_mem out, cl_ulong oo)
{
    cl_kernel k;
    clt_status st = clt__kernel_get(w, "gemm", NULL, "pack", &k);
    if (st != CLT_OK) return st;
    cl_uint r = (cl_uint)R, cc = (cl_uint)Cc, l = (cl_uint)ld, ri = (cl_uint)rows_in,
            ci = (cl_uint)cols_in;
    cl_int t = trans;
    return enqueue_2d(w, k, "pack", (Cc + 15) / 16, (R + 63) / 64, false,
                      (clt__arg[]){CLT_ARG(r), CLT_ARG(cc), CLT_ARG(in), CLT_ARG(io), CLT_ARG(l),
                                   CLT_ARG(ri), CLT_ARG(ci), CLT_ARG(t), CLT_ARG(out), CLT_ARG(oo)}, 10);
}

/* B transposed (the weight of a Linear's forward, x W^T): the direct product packs B^T, k * n
 * floats per call, which costs as much as the product itself when m is small (a 64-row
 * micro-batch through a 1024 x 1024 layer) and is paid again by every data-parallel replica.
 * Computing C^T = B A^T instead packs A^T (k * m) and stores the product transposed from the
 * kernel's epilogue (TC in cl/gemm.cl), so it pays when m < n. B must then fill gemm_rb's rows
 * exactly (n a multiple of GEMM_RM) and A^T its columns (m a multiple of 16), or an operand would
 * be padded after all. Only from 32 rows up: with the few-row shapes of data-parallel shares (5,
 * 6 rows) PoCL 3.1's CPU driver aborted (pocl_release_dlhandle_cache) in 1 of 3
 * ThreadSanitizer runs of test_data_parallel, and never without this path. */
static bool swap_pays(clt__trans ta, clt__trans tb, size_t m, size_t n)
{
    size_t np = round_up(n, 16 * GEMM_NV);
    return ta == CLT__NOTRANS && tb == CLT__TRANS && n % GEMM_RM == 0 && m >= 32 &&
           m % (16 * GEMM_NV) == 0 && m < np;
}

/* Whether w's scratch holds what own_sgemm needs for this call, growing it if not; false (and
 * no error left) when the device cannot give that much: CLBlast takes the call then. */
static bool scratch_ready(clt__worker *w, clt__trans ta, clt__trans tb, size_t m, size_t n, size_t k)
{
    size_t mp = round_up(m, rows_per_item(m, ta)), np = round_up(n, 16 * GEMM_NV);
    size_t need = (mp != m ? mp * k : 0) + (np != n || tb == CLT__TRANS ? k * np : 0) +
                  (mp != m || np != n ? mp * np : 0);
    if (swap_pays(ta, tb, m, n)) need = k * m;   /* only A^T packed */
    cl_mem unused;
    if (need == 0 || scratch(w, need, &unused) == CLT_OK) return true;
    clt__log(CLT_LOG_INFO, "device %d: no room for the own SGEMM's scratch (%zu floats): CLBlast "
             "runs M=%zu N=%zu K=%zu", w->index, need, m, n, k);
    clt__error_clear();
    return false;
}

static clt_status gemm_core(clt__worker *w, clt__trans ta, clt__trans tb, size_t m, size_t n,
                            size_t k, float alpha, cl_mem a, size_t a_off, size_t lda, cl_mem b,
                            size_t b_off, size_t ldb, float beta, cl_mem c, size_t c_off, size_t ldc,
                            const clt__view *bias, const clt__view *relu, bool trans_c);

/* gemm_rb over (mp, np) = (m, n) rounded up to its block; the operands packed with zeros when
 * they do not fill it (or B is transposed), the result copied back from a padded one. bias and
 * relu only for shapes that need no padding (clt__sgemm_fused checks). With B transposed and
 * few rows, the swapped product (swap_pays). */
static clt_status own_sgemm(clt__worker *w, clt__trans ta, clt__trans tb, size_t m, size_t n,
                            size_t k, float alpha, cl_mem a, size_t a_off, size_t lda, cl_mem b,
                            size_t b_off, size_t ldb, float beta, cl_mem c, size_t c_off, size_t ldc,
                            const clt__view *bias, const clt__view *relu)
{
    /* C = alpha A B^T + beta C as C^T = alpha B A^T, stored transposed: each element is the
     * same chain of fma as the direct product (a * b = b * a exactly), then the same epilogue,
     * so the same bits */
    if (swap_pays(ta, tb, m, n))
        return gemm_core(w, CLT__NOTRANS, CLT__TRANS, n, m, k, alpha, b, b_off, ldb, a, a_off, lda,
                         beta, c, c_off, ldc, bias, relu, true);
    return gemm_core(w, ta, tb, m, n, k, alpha, a, a_off, lda, b, b_off, ldb, beta, c, c_off, ldc,
                     bias, relu, false);
}

/* trans_c: the product is C^T (m, n here are C's n, m), written to C (ldc) transposed, the bias
 * per row; it must fill gemm_rb's block exactly. */
static clt_status gemm_core(clt__worker *w, clt__trans ta, clt__trans tb, size_t m, size_t n,
                            size_t k, float alpha, cl_mem a, size_t a_off, size_t lda, cl_mem b,
                            size_t b_off, size_t ldb, float beta, cl_mem c, size_t c_off, size_t ldc,
                            const clt__view *bias, const clt__view *relu, bool trans_c)
{
    size_t rm_ = rows_per_item(m, ta);
    char opts[96];
    snprintf(opts, sizeof opts, "-DRM=%zu -DNV=%d -DTA=%d -DTC=%d", rm_, GEMM_NV, ta == CLT__TRANS,
             trans_c);
    cl_kernel kern;
    clt_status st = clt__kernel_get(w, "gemm", opts, "gemm_rb", &kern);
    if (st != CLT_OK) return st;
    size_t mp = round_up(m, rm_), np = round_up(n, 16 * GEMM_NV);
    bool pad_a = mp != m, pad_b = np != n || tb == CLT__TRANS, pad_c = mp != m || np != n;
    CLT_ASSERT(!pad_c || (!bias && !relu && !trans_c), CLT_ERR_STATE);
    size_t a_floats = pad_a ? mp * k : 0, b_floats = pad_b ? k * np : 0;
    cl_mem sc = NULL;
    if (pad_a || pad_b || pad_c) {
        st = scratch(w, a_floats + b_floats + (pad_c ? mp * np : 0), &sc);
        if (st != CLT_OK) return st;
    }
    clt__worker_mark(w);
    cl_ulong ao = a_off, bo = b_off, co = c_off;
    size_t LDA = lda, LDB = ldb, LDC = ldc;
    if (pad_a) {   /* (M, K) -> (mp, K), or stored (K, M) -> (K, mp) */
        st = ta == CLT__TRANS ? pack(w, a, ao, lda, k, m, 0, k, mp, sc, 0)
                              : pack(w, a, ao, lda, m, k, 0, mp, k, sc, 0);
        if (st != CLT_OK) return st;
        a = sc, ao = 0, LDA = ta == CLT__TRANS ? mp : k;
    }
    if (pad_b) {   /* (K, np), from (K, N) or from B stored (N, K) */
        st = tb == CLT__TRANS ? pack(w, b, bo, ldb, k, n, 1, k, np, sc, a_floats)
                              : pack(w, b, bo, ldb, k, n, 0, k, np, sc, a_floats);
        if (st != CLT_OK) return st;
        b = sc, bo = a_floats, LDB = np;
    }
    cl_mem target = c;
    cl_ulong to = co;
    float tbeta = beta;
    if (pad_c) target = sc, to = a_floats + b_floats, LDC = np, tbeta = 0.0f;
    cl_uint M = (cl_uint)mp, N = (cl_uint)np, K = (cl_uint)k, la = (cl_uint)LDA,
            lb = (cl_uint)LDB, lc = (cl_uint)LDC;
    /* unused epilogue pointers get C (a valid buffer); the flags keep the kernel off them */
    cl_mem bm = bias ? bias->mem : c, rm = relu ? relu->mem : c;
    cl_ulong bio = bias ? bias->off : 0, ro = relu ? relu->off : 0;
    cl_int has_bias = bias != NULL, has_relu = relu != NULL;
    st = enqueue_2d(w, kern, "gemm_rb", mp / rm_, np / (16 * GEMM_NV), !pad_c,
                    (clt__arg[]){CLT_ARG(M), CLT_ARG(N), CLT_ARG(K), CLT_ARG(alpha), CLT_ARG(tbeta),
                                 CLT_ARG(a), CLT_ARG(ao), CLT_ARG(la), CLT_ARG(b), CLT_ARG(bo),
                                 CLT_ARG(lb), CLT_ARG(target), CLT_ARG(to), CLT_ARG(lc), CLT_ARG(bm),
                                 CLT_ARG(bio), CLT_ARG(has_bias), CLT_ARG(rm), CLT_ARG(ro),
                                 CLT_ARG(has_relu)}, 20);
    if (st != CLT_OK || !pad_c) return st;
    cl_kernel uk;
    st = clt__kernel_get(w, "gemm", NULL, "unpad", &uk);
    if (st != CLT_OK) return st;
    cl_uint um = (cl_uint)m, un = (cl_uint)n, ul = (cl_uint)ldc;
    return enqueue_2d(w, uk, "unpad", (n + 15) / 16, m, true,
                      (clt__arg[]){CLT_ARG(um), CLT_ARG(un), CLT_ARG(sc), CLT_ARG(to), CLT_ARG(lc),
                                   CLT_ARG(beta), CLT_ARG(c), CLT_ARG(co), CLT_ARG(ul)}, 9);
}

clt_status clt__sgemm(clt__worker *w, clt__trans ta, clt__trans tb, size_t m, size_t n, size_t k,
                      float alpha, cl_mem a, size_t a_off, size_t lda, cl_mem b, size_t b_off,
                      size_t ldb, float beta, cl_mem c, size_t c_off, size_t ldc)
{
    CLT_ASSERT(clt__worker_self() == w, CLT_ERR_STATE);
    if (m == 0 || n == 0) return CLT_OK;
    if (k == 0) return clt__fail(CLT_ERR_INVALID_ARG, "SGEMM with K = 0 is not supported");
    if (clt__own_gemm_covers(w, ta, tb, m, n, k) &&
        own_args_fit(ta, tb, m, n, k, a, a_off, lda, b, b_off, ldb, c, c_off, ldc) &&
        scratch_ready(w, ta, tb, m, n, k))
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
    if ((ta == CLT__TRANS && tb == CLT__TRANS) || k == 0 || m == 0 || n == 0 ||
        m >= (1u << 28) || n >= (1u << 28) || k >= (1u << 28) ||
        !own_args_fit(ta, tb, m, n, k, a, a_off, lda, b, b_off, ldb, c, c_off, ldc))
        return clt__fail(CLT_ERR_INVALID_ARG, "cltrain's own SGEMM does not cover %s%s M=%zu N=%zu "
                         "K=%zu (not both transposed, sizes 1..2^28, matrices within their "
                         "buffers)", ta ? "T" : "N", tb ? "T" : "N", m, n, k);
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
    if (m == 0 || n == 0 || k == 0 || m % GEMM_RM || n % (16 * GEMM_NV) ||
        !clt__own_gemm_covers(w, ta, tb, m, n, k) || !scratch_ready(w, ta, tb, m, n, k) ||
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
