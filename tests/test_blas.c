/* The CLBlast wrapper: SGEMM in every transpose combination and strided batched SGEMM,
 * checked against a CPU loop, on all devices at once (first use included), plus its errors. */
#include "internal.h"
#include "tap.h"

/* Tolerance for float32 GEMM with K up to 300 against a double-precision loop. */
#define ATOL 1e-4
#define RTOL 1e-4

typedef struct {
    clt__trans ta, tb;
    size_t m, n, k, batch;
    float alpha, beta;
} gemm_case;

static const gemm_case cases[] = {
    {CLT__NOTRANS, CLT__NOTRANS, 37, 53, 19, 1, 1.0f, 0.0f},
    {CLT__TRANS, CLT__NOTRANS, 64, 10, 128, 1, 1.0f, 1.0f},
    {CLT__NOTRANS, CLT__TRANS, 256, 128, 300, 1, 0.5f, 0.0f},
    {CLT__TRANS, CLT__TRANS, 5, 7, 3, 1, 2.0f, -1.0f},
    {CLT__NOTRANS, CLT__NOTRANS, 1, 1, 1, 1, 1.0f, 0.0f},
    {CLT__NOTRANS, CLT__TRANS, 16, 24, 8, 5, 1.0f, 0.5f},   /* strided batched */
    /* shapes cltrain's own kernel covers on CPU devices (M % 8, N % 16), beta 0 and not */
    {CLT__NOTRANS, CLT__NOTRANS, 64, 48, 33, 1, 1.0f, 0.5f},
    {CLT__TRANS, CLT__NOTRANS, 16, 32, 70, 1, 2.0f, 1.0f},
    {CLT__NOTRANS, CLT__TRANS, 24, 16, 5, 1, 1.0f, 0.0f},
    /* B transposed and few rows: computed as C^T = B A^T, then transposed back (blas.c) */
    {CLT__NOTRANS, CLT__TRANS, 32, 512, 256, 1, 1.0f, 0.5f},
    {CLT__NOTRANS, CLT__TRANS, 48, 1024, 300, 1, 2.0f, -1.0f},
    /* packed operands spanning several 16x16 tiles and 64-row strips, with ragged edges: the
     * pack kernel's vector path for whole tiles and its element loop at the edges */
    {CLT__NOTRANS, CLT__TRANS, 20, 100, 200, 1, 1.0f, 0.0f},
    {CLT__TRANS, CLT__NOTRANS, 20, 40, 90, 1, 1.0f, 1.0f},
};
#define NCASES (sizeof cases / sizeof cases[0])

static void fill(float *v, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        v[i] = (float)((seed >> 8) & 0xffff) / 32768.0f - 1.0f;
    }
}

/* Row-major reference; A stored (M,K) or (K,M) when transposed, likewise B. */
static void ref_gemm(const gemm_case *c, const float *a, const float *b, float *cm)
{
    for (size_t s = 0; s < c->batch; s++) {
        const float *A = a + s * c->m * c->k, *B = b + s * c->k * c->n;
        float *C = cm + s * c->m * c->n;
        for (size_t i = 0; i < c->m; i++)
            for (size_t j = 0; j < c->n; j++) {
                double acc = 0;
                for (size_t p = 0; p < c->k; p++) {
                    double av = c->ta ? A[p * c->m + i] : A[i * c->k + p];
                    double bv = c->tb ? B[j * c->k + p] : B[p * c->n + j];
                    acc += av * bv;
                }
                C[i * c->n + j] = (float)(c->alpha * acc + c->beta * C[i * c->n + j]);
            }
    }
}

typedef struct {
    const gemm_case *c;
    float *a, *b, *cin, *cout;
    clt_status st;
} gemm_job;

static clt_status gemm_task(clt__worker *w, void *arg)
{
    gemm_job *j = arg;
    const gemm_case *c = j->c;
    size_t na = c->m * c->k * c->batch, nb = c->k * c->n * c->batch, nc = c->m * c->n * c->batch;
    cl_int e1, e2, e3;
    cl_mem a = clCreateBuffer(w->context, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, na * 4, j->a, &e1);
    cl_mem b = clCreateBuffer(w->context, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, nb * 4, j->b, &e2);
    cl_mem cm = clCreateBuffer(w->context, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, nc * 4, j->cin, &e3);
    clt_status st = CLT_OK;
    if (e1 || e2 || e3) st = clt__fail_cl(e1 ? e1 : e2 ? e2 : e3, clt__worker_name(w), "clCreateBuffer");
    size_t lda = c->ta ? c->m : c->k, ldb = c->tb ? c->k : c->n;
    if (st == CLT_OK && c->batch == 1)
        st = clt__sgemm(w, c->ta, c->tb, c->m, c->n, c->k, c->alpha, a, 0, lda, b, 0, ldb, c->beta,
                        cm, 0, c->n);
    else if (st == CLT_OK)
        st = clt__sgemm_strided_batched(w, c->ta, c->tb, c->m, c->n, c->k, c->alpha, a, 0, lda,
                                        c->m * c->k, b, 0, ldb, c->k * c->n, c->beta, cm, 0, c->n,
                                        c->m * c->n, c->batch);
    if (st == CLT_OK) {
        cl_int err = clEnqueueReadBuffer(w->queue, cm, CL_TRUE, 0, nc * 4, j->cout, 0, NULL, NULL);
        if (err) st = clt__fail_cl(err, clt__worker_name(w), "clEnqueueReadBuffer");
    }
    if (a) clReleaseMemObject(a);
    if (b) clReleaseMemObject(b);
    if (cm) clReleaseMemObject(cm);
    return st;
}

static clt_status bad_ld_task(clt__worker *w, void *arg)
{
    (void)arg;
    cl_int err;
    cl_mem m = clCreateBuffer(w->context, CL_MEM_READ_WRITE, 64 * 4, NULL, &err);
    if (err) return clt__fail_cl(err, clt__worker_name(w), "clCreateBuffer");
    /* lda smaller than K: CLBlast refuses, and the wrapper says so. */
    clt_status st = clt__sgemm(w, CLT__NOTRANS, CLT__NOTRANS, 8, 8, 8, 1.0f, m, 0, 2, m, 0, 8, 0.0f, m, 0, 8);
    clReleaseMemObject(m);
    return st;
}

static clt_status too_small_task(clt__worker *w, void *arg)
{
    (void)arg;
    cl_int err;
    cl_mem m = clCreateBuffer(w->context, CL_MEM_READ_WRITE, 16 * 4, NULL, &err);
    if (err) return clt__fail_cl(err, clt__worker_name(w), "clCreateBuffer");
    clt_status st = clt__sgemm(w, CLT__NOTRANS, CLT__NOTRANS, 64, 64, 64, 1.0f, m, 0, 64, m, 0, 64, 0.0f, m, 0, 64);
    clReleaseMemObject(m);
    return st;
}

static clt_status covers_task(clt__worker *w, void *arg)
{
    int *out = arg;
    out[0] = clt__own_gemm_covers(w, CLT__NOTRANS, CLT__NOTRANS, 64, 48, 33);
    out[1] = clt__own_gemm_covers(w, CLT__NOTRANS, CLT__NOTRANS, 37, 53, 19);
    out[2] = clt__own_gemm_covers(w, CLT__TRANS, CLT__TRANS, 64, 48, 33);
    out[3] = (w->dev->info.type & CLT_DEVICE_CPU) != 0;
    return CLT_OK;
}

/* Linear + bias + ReLU, x (M, K) W^T with W (N, K): at 64 rows the own kernel computes the
 * swapped product C^T = W x^T and stores it transposed from its epilogue; 16-row blocks take
 * the direct product. out[0]: the swapped C and R, out[1]: the direct ones. */
#define SW_M 64
#define SW_N 128
#define SW_K 96
typedef struct {
    float x[SW_M * SW_K], wt[SW_N * SW_K], bias[SW_N];
    float c[2][SW_M * SW_N], r[2][SW_M * SW_N];
    int fused[2];
} swap_job;

static clt_status swap_task(clt__worker *w, void *arg)
{
    swap_job *j = arg;
    cl_int e[5];
    cl_mem x = clCreateBuffer(w->context, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, sizeof j->x, j->x, &e[0]);
    cl_mem wt = clCreateBuffer(w->context, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, sizeof j->wt, j->wt, &e[1]);
    cl_mem b = clCreateBuffer(w->context, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, sizeof j->bias, j->bias, &e[2]);
    cl_mem c = clCreateBuffer(w->context, CL_MEM_READ_WRITE, sizeof j->c[0], NULL, &e[3]);
    cl_mem r = clCreateBuffer(w->context, CL_MEM_READ_WRITE, sizeof j->r[0], NULL, &e[4]);
    clt_status st = CLT_OK;
    for (int i = 0; i < 5 && st == CLT_OK; i++)
        if (e[i]) st = clt__fail_cl(e[i], clt__worker_name(w), "clCreateBuffer");
    for (int way = 0; way < 2 && st == CLT_OK; way++) {
        size_t rows = way ? 16 : SW_M;   /* 16 rows: below the swapped path's 32 */
        bool all = true;
        for (size_t r0 = 0; r0 < SW_M && st == CLT_OK; r0 += rows) {
            bool done = false;
            clt__view bias = {b, 0}, relu = {r, r0 * SW_N};
            st = clt__sgemm_fused(w, CLT__NOTRANS, CLT__TRANS, rows, SW_N, SW_K, x, r0 * SW_K, SW_K,
                                  wt, 0, SW_K, c, r0 * SW_N, SW_N, &bias, &relu, &done);
            all &= done;
        }
        j->fused[way] = all;
        if (st == CLT_OK && (clEnqueueReadBuffer(w->queue, c, CL_TRUE, 0, sizeof j->c[way], j->c[way], 0, NULL, NULL) ||
                             clEnqueueReadBuffer(w->queue, r, CL_TRUE, 0, sizeof j->r[way], j->r[way], 0, NULL, NULL)))
            st = clt__fail(CLT_ERR_OPENCL, "reading the products back");
    }
    cl_mem all[] = {x, wt, b, c, r};
    for (int i = 0; i < 5; i++)
        if (all[i]) clReleaseMemObject(all[i]);
    return st;
}

/* Equal bits, or NaN in both (a NaN's payload may depend on the operand order). */
static bool same_bits_or_nan(const float *a, const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof a[i]) && !(isnan(a[i]) && isnan(b[i]))) return false;
    return true;
}

/* With a NaN in row 3 of x and in bias 7: C is NaN in that row and that column, and so is its
 * ReLU output, as torch.relu keeps NaN (max(C, 0) would make it 0). Every device. */
static void check_swapped(clt_runtime *rt, const char *what)
{
    swap_job *j = calloc(1, sizeof *j);
    fill(j->x, SW_M * SW_K, 3), fill(j->wt, SW_N * SW_K, 5), fill(j->bias, SW_N, 9);
    j->x[3 * SW_K + 5] = NAN;
    j->bias[7] = NAN;
    float ref[SW_M * SW_N];
    gemm_case lin = {CLT__NOTRANS, CLT__TRANS, SW_M, SW_N, SW_K, 1, 1.0f, 0.0f};
    memset(ref, 0, sizeof ref);
    ref_gemm(&lin, j->x, j->wt, ref);
    for (size_t i = 0; i < SW_M * SW_N; i++) ref[i] += j->bias[i % SW_N];
    static const char *const way_name[2] = {"the swapped product", "the direct product"};
    for (int d = 0; d < clt_runtime_device_count(rt); d++) {
        if (!ok_status(clt__worker_call(&rt->workers[d], swap_task, j),
                       "%s, device %d: Linear + bias + ReLU at %d rows, then in blocks of 16", what, d, SW_M))
            continue;
        /* Where cltrain's kernel does not run, clt__sgemm_fused declines and writes nothing (the
         * layers then take CLBlast, which the cases above test): nothing here to compare. */
        for (int way = 0; way < 2; way++) {
            char desc[200];
            snprintf(desc, sizeof desc, "%s, device %d: %s with its bias matches the CPU loop", what, d, way_name[way]);
            if (!j->fused[way]) {
                skip("cltrain's GEMM kernel does not run on this device (clt__sgemm_fused declined)", "%s", desc);
                skip("cltrain's GEMM kernel does not run on this device", "%s, device %d: its ReLU output", what, d);
                continue;
            }
            ok_close_nan(j->c[way], ref, SW_M * SW_N, ATOL, RTOL, desc);
            bool relu_ok = true;
            for (size_t i = 0; i < SW_M * SW_N; i++) {
                float c = j->c[way][i], want = c > 0.0f || isnan(c) ? c : 0.0f;
                relu_ok &= !memcmp(&j->r[way][i], &want, sizeof want);
            }
            ok(relu_ok, "%s, device %d: %s's ReLU output is C where C > 0 or NaN, else 0", what, d, way_name[way]);
        }
        if (j->fused[0] && j->fused[1])
            ok(same_bits_or_nan(j->c[0], j->c[1], SW_M * SW_N) && same_bits_or_nan(j->r[0], j->r[1], SW_M * SW_N),
               "%s, device %d: the swapped product (stored transposed) gives the direct product's bits, bias "
               "and ReLU included", what, d);
        else
            skip("cltrain's GEMM kernel did not run both ways", "%s, device %d: the swapped and the direct product's bits", what, d);
    }
    free(j);
}

/* Runs every case on every device of rt at once (all devices' first uses race each other). */
static void run_cases(clt_runtime *rt, const char *what)
{
    int nd = clt_runtime_device_count(rt);
    for (size_t ci = 0; ci < NCASES; ci++) {
        const gemm_case *c = &cases[ci];
        size_t na = c->m * c->k * c->batch, nb = c->k * c->n * c->batch, nc = c->m * c->n * c->batch;
        gemm_job *jobs = calloc((size_t)nd, sizeof *jobs);
        float *ref = malloc(nc * sizeof *ref);
        for (int d = 0; d < nd; d++) {
            jobs[d].c = c;
            jobs[d].a = malloc(na * 4), jobs[d].b = malloc(nb * 4);
            jobs[d].cin = malloc(nc * 4), jobs[d].cout = calloc(nc, 4);
            fill(jobs[d].a, na, 1 + (unsigned)d), fill(jobs[d].b, nb, 100 + (unsigned)d);
            fill(jobs[d].cin, nc, 7);
        }
        ok_status(clt__runtime_parallel(rt, gemm_task, jobs, sizeof *jobs),
                  "%s: case %zu (%s%s M=%zu N=%zu K=%zu batch=%zu) on %d devices at once", what, ci,
                  c->ta ? "T" : "N", c->tb ? "T" : "N", c->m, c->n, c->k, c->batch, nd);
        for (int d = 0; d < nd; d++) {
            memcpy(ref, jobs[d].cin, nc * 4);
            ref_gemm(c, jobs[d].a, jobs[d].b, ref);
            char name[160];
            snprintf(name, sizeof name, "%s: case %zu on device %d matches the CPU loop", what, ci, d);
            ok_close(jobs[d].cout, ref, nc, ATOL, RTOL, name);
            free(jobs[d].a), free(jobs[d].b), free(jobs[d].cin), free(jobs[d].cout);
        }
        free(jobs);
        free(ref);
    }
}

int main(void)
{
    tap_require_device();
    clt_runtime *rt = NULL;
    if (!ok_status(clt_runtime_create(&rt, test_spec_all()), "runtime on all devices")) return tap_done();
    run_cases(rt, "all devices");
    check_swapped(rt, "the default kernel");
    int cov[4] = {0};
    ok_status(clt__worker_call(&rt->workers[0], covers_task, cov), "asking which SGEMM runs");
    ok(cov[0] == cov[3] && cov[1] == cov[3] && !cov[2], "cltrain's kernel is picked on CPU devices, padded "
       "shapes included, never for both operands transposed (%d %d %d, CPU %d)", cov[0], cov[1], cov[2], cov[3]);
    setenv("CLT_GEMM_KERNEL", "clblast", 1);
    ok_status(clt__worker_call(&rt->workers[0], covers_task, cov), "asking again");
    ok(!cov[0], "CLT_GEMM_KERNEL=clblast: never");
    run_cases(rt, "CLBlast forced");
    setenv("CLT_GEMM_KERNEL", "cltrain", 1);
    ok_status(clt__worker_call(&rt->workers[0], covers_task, cov), "asking again");
    ok(cov[0] && cov[1] && !cov[2], "CLT_GEMM_KERNEL=cltrain: for the shapes it covers");
    run_cases(rt, "cltrain's kernel where it applies");
    check_swapped(rt, "CLT_GEMM_KERNEL=cltrain");
    unsetenv("CLT_GEMM_KERNEL");
    ok_error(clt__worker_call(&rt->workers[0], bad_ld_task, NULL), CLT_ERR_BLAS,
             "CLBlastInvalidLeadDimA", "an invalid leading dimension is a CLBlast error, named");
    ok_error(clt__worker_call(&rt->workers[0], too_small_task, NULL), CLT_ERR_BLAS,
             "CLBlastInsufficientMemory", "a buffer too small for the matrices is refused, not overrun");
    clt_runtime_destroy(rt);

    /* One device opened three times in one context: three workers share CLBlast's caches. */
    if (!test_repeat_ok(3))
        skip(TEST_NO_PARALLEL, "one device opened three times");
    else if (ok_status(clt_runtime_create(&rt, test_spec_repeat(3)), "runtime with %s", test_spec_repeat(3))) {
        run_cases(rt, "one device three times");
        clt_runtime_destroy(rt);
    }
    return tap_done();
}
