/* The GEMM tuning search, above the runtime: CLBlast's Xgemm parameters timed on the seed MLP's
 * GEMM shapes on one runtime device (clt_gemm_tune), the best stored in the file lib/tuning.c
 * reads; and the public calls that load a tuning and time one shape through the runtime. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int clt_gemm_seed_shapes(size_t batch, clt_gemm_shape *out, int cap)
{
    static const size_t dims[] = {1024, 512, 256, 128, 10};
    int n = 0;
    for (int l = 0; l < 4; l++) {
        size_t in = dims[l], out_ = dims[l + 1];
        clt_gemm_shape s[3] = {
            {"forward", l, 0, 1, batch, out_, in},   /* y = x W^T */
            {"grad_w", l, 1, 0, out_, in, batch},    /* dW = dy^T x */
            {"grad_x", l, 0, 0, batch, in, out_},    /* dx = dy W */
        };
        for (int i = 0; i < 3; i++) {
            if (out && n < cap) out[n] = s[i];
            n++;
        }
    }
    return n;
}

typedef struct {
    cl_mem a, b, c;
    const clt_gemm_shape *shapes;
    int nshapes;
    clt_gemm_kernel kernel;
} bench_bufs;

static clt_status bufs_make(clt__worker *w, bench_bufs *bb, const clt_gemm_shape *s, int n)
{
    size_t na = 1, nb = 1, nc = 1;
    for (int i = 0; i < n; i++) {
        if (s[i].m * s[i].k > na) na = s[i].m * s[i].k;
        if (s[i].k * s[i].n > nb) nb = s[i].k * s[i].n;
        if (s[i].m * s[i].n > nc) nc = s[i].m * s[i].n;
    }
    bb->shapes = s;
    bb->nshapes = n;
    clt_status st = clt__alloc(w, na, "GEMM benchmark A", &bb->a);
    if (st == CLT_OK) st = clt__alloc(w, nb, "GEMM benchmark B", &bb->b);
    if (st == CLT_OK) st = clt__alloc(w, nc, "GEMM benchmark C", &bb->c);
    float v = 0.5f;
    if (st == CLT_OK && bb->a)
        CLT_CL_TRY(clt__worker_name(w), clEnqueueFillBuffer(w->queue, bb->a, &v, sizeof v, 0, na * sizeof v, 0, NULL, NULL));
    if (st == CLT_OK && bb->b)
        CLT_CL_TRY(clt__worker_name(w), clEnqueueFillBuffer(w->queue, bb->b, &v, sizeof v, 0, nb * sizeof v, 0, NULL, NULL));
    return st;
}

static void bufs_free(bench_bufs *bb)
{
    if (bb->a) clReleaseMemObject(bb->a);
    if (bb->b) clReleaseMemObject(bb->b);
    if (bb->c) clReleaseMemObject(bb->c);
}

static clt_status run_shape(clt__worker *w, const bench_bufs *bb, const clt_gemm_shape *s)
{
    size_t lda = s->trans_a ? s->m : s->k, ldb = s->trans_b ? s->k : s->n;
    clt__trans ta = s->trans_a ? CLT__TRANS : CLT__NOTRANS, tb = s->trans_b ? CLT__TRANS : CLT__NOTRANS;
    switch (bb->kernel) {
    case CLT_GEMM_CLBLAST:
        return clt__sgemm_clblast(w, ta, tb, s->m, s->n, s->k, 1.0f, bb->a, 0, lda, bb->b, 0, ldb,
                                  0.0f, bb->c, 0, s->n);
    case CLT_GEMM_CLTRAIN:
        return clt__sgemm_own(w, ta, tb, s->m, s->n, s->k, 1.0f, bb->a, 0, lda, bb->b, 0, ldb,
                              0.0f, bb->c, 0, s->n);
    default:
        return clt__sgemm(w, ta, tb, s->m, s->n, s->k, 1.0f, bb->a, 0, lda, bb->b, 0, ldb, 0.0f,
                          bb->c, 0, s->n);
    }
}

/* Seconds per call of shape s: the best of `iters` timed calls after one untimed one (which
 * compiles when the parameters are new: CLBlast's first call of a parameter set). */
static clt_status time_shape(clt__worker *w, const bench_bufs *bb, const clt_gemm_shape *s,
                             int iters, double *out)
{
    clt_status st = run_shape(w, bb, s);
    if (st == CLT_OK) CLT_CL_TRY(clt__worker_name(w), clFinish(w->queue));
    double best = 1e30;
    for (int i = 0; i < iters && st == CLT_OK; i++) {
        double t0 = clt__now();
        st = run_shape(w, bb, s);
        if (st == CLT_OK) CLT_CL_TRY(clt__worker_name(w), clFinish(w->queue));
        double dt = clt__now() - t0;
        if (dt < best) best = dt;
    }
    *out = best;
    return st;
}

static double shapes_flops(const clt_gemm_shape *s, int n)
{
    double f = 0;
    for (int i = 0; i < n; i++) f += 2.0 * (double)s[i].m * (double)s[i].n * (double)s[i].k;
    return f;
}

/* GFLOPS over all shapes (total flops / total seconds); 0 when a call failed. */
static double measure(clt__worker *w, const bench_bufs *bb, int iters)
{
    double total = 0;
    for (int i = 0; i < bb->nshapes; i++) {
        double t;
        if (time_shape(w, bb, &bb->shapes[i], iters, &t) != CLT_OK) return 0;
        total += t;
    }
    return shapes_flops(bb->shapes, bb->nshapes) / total / 1e9;
}

static size_t pick(uint64_t *rng, const size_t *vals, size_t n) { return vals[clt__splitmix64(rng) % n]; }

static void random_params(uint64_t *rng, size_t *p)
{
    static const size_t wg[] = {16, 32, 64, 128}, kwg[] = {16, 32}, dim[] = {2, 4, 8, 16},
                        kwi[] = {2, 8}, vw[] = {1, 2, 4, 8, 16}, bit[] = {0, 1};
    p[CLT__XG_GEMMK] = 0;
    p[CLT__XG_KREG] = 1;
    p[CLT__XG_MWG] = pick(rng, wg, 4);
    p[CLT__XG_NWG] = pick(rng, wg, 4);
    p[CLT__XG_KWG] = pick(rng, kwg, 2);
    p[CLT__XG_MDIMC] = pick(rng, dim, 4);
    p[CLT__XG_NDIMC] = pick(rng, dim, 4);
    p[CLT__XG_MDIMA] = clt__splitmix64(rng) % 2 ? p[CLT__XG_MDIMC] : pick(rng, dim, 4);
    p[CLT__XG_NDIMB] = clt__splitmix64(rng) % 2 ? p[CLT__XG_NDIMC] : pick(rng, dim, 4);
    p[CLT__XG_KWI] = pick(rng, kwi, 2);
    p[CLT__XG_VWM] = pick(rng, vw, 5);
    p[CLT__XG_VWN] = pick(rng, vw, 5);
    p[CLT__XG_SA] = pick(rng, bit, 2);
    p[CLT__XG_SB] = pick(rng, bit, 2);
    p[CLT__XG_STRM] = pick(rng, bit, 2);
    p[CLT__XG_STRN] = pick(rng, bit, 2);
}

/* One parameter of best changed to a neighbouring value: a local step. */
static void neighbour(uint64_t *rng, const size_t *best, size_t *p)
{
    memcpy(p, best, CLT__XGEMM_NPARAMS * sizeof *p);
    static const int tunable[] = {CLT__XG_KWG, CLT__XG_KWI, CLT__XG_MDIMA, CLT__XG_MDIMC,
                                  CLT__XG_MWG, CLT__XG_NDIMB, CLT__XG_NDIMC, CLT__XG_NWG,
                                  CLT__XG_SA, CLT__XG_SB, CLT__XG_STRM, CLT__XG_STRN,
                                  CLT__XG_VWM, CLT__XG_VWN};
    for (int tries = 0; tries < 2; tries++) {
        int i = tunable[clt__splitmix64(rng) % 14];
        if (i == CLT__XG_SA || i == CLT__XG_SB || i == CLT__XG_STRM || i == CLT__XG_STRN) p[i] ^= 1;
        else p[i] = clt__splitmix64(rng) % 2 ? p[i] * 2 : (p[i] > 1 ? p[i] / 2 : 2);
    }
}

/* Starting points that measured well on PoCL's CPU device (issue 10): wide vectors along N,
 * no local memory, small work-groups. Tried first on CPUs; GPUs start from random points. */
static const size_t cpu_starts[][CLT__XGEMM_NPARAMS] = {
    {0, 1, 32, 8, 4, 4, 32, 4, 4, 128, 0, 0, 1, 1, 8, 16},
    {0, 1, 32, 8, 4, 4, 32, 4, 4, 64, 0, 0, 1, 1, 8, 8},
    {0, 1, 16, 16, 4, 4, 32, 4, 4, 64, 0, 0, 1, 1, 8, 16},
};

typedef struct {
    double budget_s;
    uint64_t seed;
    clt_gemm_shape shapes[16];
    int nshapes;
    clt_tune_result *res;
    clt__gemm_tuning best;
} tune_args;

static clt_status tune_task(clt__worker *w, void *arg)
{
    tune_args *a = arg;
    clt_tune_result *r = a->res;
    bench_bufs bb = {0};
    bb.kernel = CLT_GEMM_CLBLAST;   /* the parameters searched are CLBlast's */
    clt_status st = bufs_make(w, &bb, a->shapes, a->nshapes);
    if (st != CLT_OK) {
        bufs_free(&bb);
        return st;
    }
    double t0 = clt__now();
    /* CLBlast's parameters first (database or defaults): what tuning has to beat. */
    r->default_gflops = measure(w, &bb, 2);
    /* the closing phase times three direct-kernel thresholds, each a new program for CLBlast
     * (the threshold is one of its parameters): about three candidates' time, reserved */
    double per = clt__now() - t0;
    if (r->default_gflops <= 0) {
        bufs_free(&bb);
        return clt__fail(CLT_ERR_BLAS, "SGEMM with CLBlast's own parameters failed on device %d "
                         "'%s': %s", w->index, clt__worker_name(w), clt_last_error());
    }
    size_t local = w->dev->info.local_mem_bytes, maxwg = w->dev->info.max_work_group_size;
    const char *rn[] = {"XGEMM_MIN_INDIRECT_SIZE"};
    size_t always_indirect = 1;
    /* every shape through the Xgemm kernel while its parameters are searched */
    st = clt__blas_override(w, "GemmRoutine", 1, rn, &always_indirect);
    double best = 0;
    size_t bestp[CLT__XGEMM_NPARAMS] = {0};
    uint64_t rng = a->seed;
    int ncpu = (w->dev->info.type & CLT_DEVICE_CPU) ? 3 : 0;
    for (int c = 0; st == CLT_OK && clt__now() - t0 + 3 * per < a->budget_s && c < 100000; c++) {
        size_t p[CLT__XGEMM_NPARAMS];
        if (c < ncpu) memcpy(p, cpu_starts[c], sizeof p);
        else if (best > 0 && clt__splitmix64(&rng) % 2) neighbour(&rng, bestp, p);
        else random_params(&rng, p);
        if (!clt__xgemm_valid(p, local, maxwg)) {
            c--;   /* not a candidate: costs nothing */
            continue;
        }
        r->candidates++;
        double g = 0, c0 = clt__now();
        if (clt__blas_override(w, "Xgemm", CLT__XGEMM_NPARAMS, clt__xgemm_names, p) == CLT_OK)
            g = measure(w, &bb, 2);
        clt__error_clear();
        if (clt__now() - c0 > per) per = clt__now() - c0;
        if (g <= 0) r->failed++;
        clt__log(CLT_LOG_INFO, "tune device %d: candidate %d: %.1f GFLOPS", w->index, r->candidates, g);
        if (g > best) {
            best = g;
            memcpy(bestp, p, sizeof p);
        }
    }
    memset(&a->best, 0, sizeof a->best);
    a->best.default_gflops = r->default_gflops;
    if (st == CLT_OK && best > 0) {
        /* which shapes go to the direct kernel: the threshold on cbrt(m n k) */
        st = clt__blas_override(w, "Xgemm", CLT__XGEMM_NPARAMS, clt__xgemm_names, bestp);
        static const size_t thresholds[] = {1, 128, 256};
        size_t best_t = 1;
        double best_g = 0;
        for (int i = 0; st == CLT_OK && i < 3; i++) {
            st = clt__blas_override(w, "GemmRoutine", 1, rn, &thresholds[i]);
            double g = st == CLT_OK ? measure(w, &bb, 2) : 0;
            if (g > best_g) {
                best_g = g;
                best_t = thresholds[i];
            }
        }
        if (st == CLT_OK) st = clt__blas_override(w, "GemmRoutine", 1, rn, &best_t);
        best = best_g;
        /* kept only when clearly better than CLBlast's own (noise is a few percent) */
        if (best > 1.05 * r->default_gflops) {
            a->best.has_xgemm = a->best.has_routine = 1;
            memcpy(a->best.xgemm, bestp, sizeof bestp);
            a->best.min_indirect = best_t;
        }
    }
    a->best.tuned_gflops = a->best.has_xgemm ? best : r->default_gflops;
    bufs_free(&bb);
    return st;
}

static clt_status check_device(clt_runtime *rt, int device, const char *fn)
{
    if (!rt) return clt__fail(CLT_ERR_INVALID_ARG, "%s: runtime is NULL", fn);
    if (device < 0 || device >= rt->nworkers)
        return clt__fail(CLT_ERR_INVALID_ARG, "%s: device %d out of range (runtime has %d)", fn,
                         device, rt->nworkers);
    return CLT_OK;
}

clt_tune_options clt_tune_options_default(void)
{
    clt_tune_options o = {0};
    o.struct_size = sizeof o;
    o.budget_s = 120;
    o.seed = 1;
    o.batch = 256;
    return o;
}

clt_status clt_gemm_tune(clt_runtime *rt, int device, const clt_tune_options *o, clt_tune_result *out)
{
    clt_status st = check_device(rt, device, "clt_gemm_tune");
    if (st != CLT_OK) return st;
    if (!out) return clt__fail(CLT_ERR_INVALID_ARG, "clt_gemm_tune: result is NULL");
    memset(out, 0, sizeof *out);
    clt_tune_options d = clt_tune_options_default();
    st = clt__options_read(&d, o, sizeof d, CLT__TUNE_OPTIONS_V1, "clt_gemm_tune", "clt_tune_options");
    if (st != CLT_OK) return st;
    o = &d;
    if (!(o->budget_s >= 0 && o->budget_s <= 86400) || o->batch == 0 || o->batch > 65536)
        return clt__fail(CLT_ERR_INVALID_ARG, "clt_gemm_tune: budget %.0f s (0..86400) or batch "
                         "%zu (1..65536) out of range", o->budget_s, o->batch);
    tune_args *a = calloc(1, sizeof *a);
    if (!a) return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    a->budget_s = o->budget_s;
    a->seed = o->seed ? o->seed : 1;
    a->nshapes = clt_gemm_seed_shapes(o->batch, a->shapes, 16);
    a->res = out;
    st = clt__run_on(rt, &device, 1, tune_task, a, 0);
    clt__worker *w = &rt->workers[device];
    char dir[4096], name[64];
    char *text = NULL;
    if (st == CLT_OK && !clt__tuning_path(&w->dev->info, dir, sizeof dir, name, sizeof name))
        st = clt__fail(CLT_ERR_IO, "no cache folder: set CLT_CACHE_DIR, XDG_CACHE_HOME or HOME");
    if (st == CLT_OK) st = clt__tuning_format(&w->dev->info, &a->best, &text);
    if (st == CLT_OK) st = clt__cache_write(dir, name, text, strlen(text));
    if (st == CLT_OK) {
        out->stored = a->best.has_xgemm;
        out->tuned_gflops = a->best.tuned_gflops;
        snprintf(out->path, sizeof out->path, "%s/%s", dir, name);
    }
    free(text);
    free(a);
    return st;
}

typedef struct {
    int applied;
} load_args;

static clt_status load_task(clt__worker *w, void *arg)
{
    return clt__tuning_load(w, &((load_args *)arg)->applied);
}

clt_status clt_gemm_tuning_load(clt_runtime *rt, int device, int *applied)
{
    clt_status st = check_device(rt, device, "clt_gemm_tuning_load");
    if (st != CLT_OK) return st;
    load_args a = {0};
    st = clt__run_on(rt, &device, 1, load_task, &a, 0);
    if (applied) *applied = a.applied;
    return st;
}

typedef struct {
    const clt_gemm_shape *s;
    clt_gemm_kernel kernel;
    int iters;
    double seconds;
} time_args;

static clt_status time_task(clt__worker *w, void *arg)
{
    time_args *a = arg;
    bench_bufs bb = {0};
    bb.kernel = a->kernel;
    clt_status st = bufs_make(w, &bb, a->s, 1);
    if (st == CLT_OK) st = time_shape(w, &bb, a->s, a->iters, &a->seconds);
    bufs_free(&bb);
    return st;
}

clt_status clt_gemm_time(clt_runtime *rt, int device, const clt_gemm_shape *s,
                         clt_gemm_kernel kernel, int iters, double *seconds)
{
    clt_status st = check_device(rt, device, "clt_gemm_time");
    if (st != CLT_OK) return st;
    if (!s || !seconds) return clt__fail(CLT_ERR_INVALID_ARG, "clt_gemm_time: shape or result is NULL");
    if (iters < 1 || iters > 100000 || !s->m || !s->n || !s->k || s->m > (1u << 20) ||
        s->n > (1u << 20) || s->k > (1u << 20))
        return clt__fail(CLT_ERR_INVALID_ARG, "clt_gemm_time: iters %d (1..100000) or shape "
                         "%zux%zux%zu (1..2^20 each) out of range", iters, s->m, s->n, s->k);
    if (kernel != CLT_GEMM_AUTO && kernel != CLT_GEMM_CLBLAST && kernel != CLT_GEMM_CLTRAIN)
        return clt__fail(CLT_ERR_INVALID_ARG, "clt_gemm_time: unknown kernel choice %d", (int)kernel);
    time_args a = {s, kernel, iters, 0};
    st = clt__run_on(rt, &device, 1, time_task, &a, 0);
    *seconds = a.seconds;
    return st;
}

int clt_gemm_uses_own_kernel(clt_runtime *rt, int device, const clt_gemm_shape *s)
{
    if (!rt || device < 0 || device >= rt->nworkers || !s) return 0;
    return clt__own_gemm_covers(&rt->workers[device], s->trans_a ? CLT__TRANS : CLT__NOTRANS,
                                s->trans_b ? CLT__TRANS : CLT__NOTRANS, s->m, s->n, s->k);
}
