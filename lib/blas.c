/* The CLBlast calls, with their first use serialised across threads.
 *
 * CLBlast compiles a routine's kernels on its first call per (context, device). Before 1.6.1
 * (Debian 12 ships 1.5.3), two threads compiling at once could crash it: seen here as a segfault
 * when two workers ran their first SGEMM together on two PoCL 'basic' devices. So each worker's
 * first call of each routine runs under one process-wide lock; later calls run in parallel. */
#include "internal.h"

#include <clblast_c.h>

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

clt_status clt__sgemm(clt__worker *w, clt__trans ta, clt__trans tb, size_t m, size_t n, size_t k,
                      float alpha, cl_mem a, size_t a_off, size_t lda, cl_mem b, size_t b_off,
                      size_t ldb, float beta, cl_mem c, size_t c_off, size_t ldc)
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
