/* Collectives: all-reduce (SUM, AVG, MAX, MIN; in place and out of place), broadcast,
 * reduce-scatter and all-gather against a CPU reference on 1, 2, 3 and 5 devices in both context
 * modes; identical bits on every device and on every run; two runtimes used at once; the
 * internal per-rank calls from inside worker tasks on a sub-range; argument errors; and a device
 * failing mid-collective, which must stop every rank within a bounded time.
 *
 * Inputs are small integers stored as floats, so every reduction order gives the exact result
 * and the reference is compared bit for bit (atol 0, rtol 0); one run on random floats checks
 * against the reference within atol 1e-5 + rtol 1e-5. */
#include "internal.h"
#include "tap.h"

#include <pthread.h>

static const size_t COUNTS[] = {0, 1, 7, 1000, (1u << 20) + 3};
#define NCOUNTS (sizeof COUNTS / sizeof COUNTS[0])
static const char *const OP_NAMES[] = {"SUM", "AVG", "MAX", "MIN"};

/* ---- device buffers through the workers ------------------------------------------------------ */

typedef struct {
    cl_mem buf;
    float *host;
    size_t floats;
    int write;
} io_job;

static clt_status io_task(clt__worker *w, void *arg)
{
    io_job *j = arg;
    if (!j->floats) return CLT_OK;
    cl_int err = j->write ? clEnqueueWriteBuffer(w->queue, j->buf, CL_TRUE, 0, j->floats * 4, j->host, 0, NULL, NULL)
                          : clEnqueueReadBuffer(w->queue, j->buf, CL_TRUE, 0, j->floats * 4, j->host, 0, NULL, NULL);
    return err == CL_SUCCESS ? CLT_OK : clt__fail_cl(err, clt__worker_name(w), "test io");
}

/* Copies host[d] to (write) or from bufs[d] on every device. */
static void io_all(clt_runtime *rt, cl_mem *bufs, float **host, size_t floats, int write)
{
    int n = clt_runtime_device_count(rt);
    io_job jobs[16];
    for (int d = 0; d < n; d++) jobs[d] = (io_job){bufs[d], host[d], floats, write};
    clt_status st = clt__runtime_parallel(rt, io_task, jobs, sizeof jobs[0]);
    if (st != CLT_OK) diag("io_all: %s", clt_last_error());
}

static void make_bufs(clt_runtime *rt, cl_mem *bufs, size_t floats)
{
    for (int d = 0; d < clt_runtime_device_count(rt); d++)
        bufs[d] = clCreateBuffer(clt_runtime_context(rt, d), CL_MEM_READ_WRITE,
                                 (floats ? floats : 1) * 4, NULL, NULL);
}

static void free_bufs(clt_runtime *rt, cl_mem *bufs)
{
    for (int d = 0; d < clt_runtime_device_count(rt); d++) clReleaseMemObject(bufs[d]);
}

/* Exact small integers, different per device and element, some negative. */
static float value(int d, size_t i) { return (float)((long)((i * 7 + (size_t)d * 13) % 101) - 50); }

static float reduce_ref(clt_op op, const float *v, int n)
{
    float acc = v[0];
    for (int d = 1; d < n; d++) {
        if (op == CLT_OP_MAX) acc = v[d] > acc ? v[d] : acc;
        else if (op == CLT_OP_MIN) acc = v[d] < acc ? v[d] : acc;
        else acc += v[d];
    }
    return op == CLT_OP_AVG ? acc / (float)n : acc;
}

typedef struct {
    int n;
    float *in[16], *out[16];   /* host copies, `cap` floats each */
    cl_mem a[16], b[16];       /* device buffers of `cap` floats */
    size_t cap;
} bench;

static void bench_init(bench *B, clt_runtime *rt, size_t cap)
{
    B->n = clt_runtime_device_count(rt);
    B->cap = cap;
    for (int d = 0; d < B->n; d++) {
        B->in[d] = malloc(cap * 4);
        B->out[d] = malloc(cap * 4);
    }
    make_bufs(rt, B->a, cap);
    make_bufs(rt, B->b, cap);
}

static void bench_free(bench *B, clt_runtime *rt)
{
    for (int d = 0; d < B->n; d++) free(B->in[d]), free(B->out[d]);
    free_bufs(rt, B->a);
    free_bufs(rt, B->b);
}

/* The first `floats` of every device's result equal ref and each other, bit for bit. */
static bool same_bits(bench *B, const float *ref, size_t floats, const char *what)
{
    bool good = true;
    for (int d = 0; d < B->n && good; d++) {
        long i = tap_first_mismatch(B->out[d], ref, floats, 0, 0);
        if (i < 0 && floats && memcmp(B->out[d], ref, floats * 4)) i = 0;   /* -0.0 vs 0.0 */
        if (i >= 0) {
            diag("%s: device %d element %ld is %.9g, reference %.9g", what, d, i, B->out[d][i], ref[i]);
            good = false;
        }
    }
    return ok(good, "%s: %d devices hold the reference, bit for bit", what, B->n);
}

/* ---- the collectives against the reference ------------------------------------------------- */

static void check_allreduce(clt_runtime *rt, bench *B, size_t count, clt_op op, int in_place,
                            const clt_collective_options *o, const char *cfg)
{
    int n = B->n;
    for (int d = 0; d < n; d++)
        for (size_t i = 0; i < count; i++) B->in[d][i] = value(d, i);
    io_all(rt, B->a, B->in, count, 1);
    char what[200];
    snprintf(what, sizeof what, "%s: allreduce %s count %zu %s%s", cfg, OP_NAMES[op], count,
             in_place ? "in place" : "out of place",
             !o ? "" : o->algo == CLT_ALGO_NAIVE ? " naive" : o->algo == CLT_ALGO_RING_STAGED ? " staged"
             : o->algo == CLT_ALGO_DIRECT ? " direct" : " small chunks");
    clt_status st = clt_allreduce(rt, B->a, in_place ? NULL : B->b, count, op, o);
    if (!ok(st == CLT_OK, "%s returns CLT_OK", what)) {
        diag("%s: %s", clt_status_name(st), clt_last_error());
        return;
    }
    io_all(rt, in_place ? B->a : B->b, B->out, count, 0);
    float *ref = malloc((count ? count : 1) * 4), v[16];
    for (size_t i = 0; i < count; i++) {
        for (int d = 0; d < n; d++) v[d] = value(d, i);
        ref[i] = reduce_ref(op, v, n);
    }
    same_bits(B, ref, count, what);
    free(ref);
}

static void check_reduce_scatter(clt_runtime *rt, bench *B, size_t count, clt_op op, int in_place,
                                 const clt_collective_options *o, const char *cfg)
{
    int n = B->n;
    size_t total = (size_t)n * count;
    for (int d = 0; d < n; d++)
        for (size_t i = 0; i < total; i++) B->in[d][i] = value(d, i);
    io_all(rt, B->a, B->in, total, 1);
    char what[200];
    snprintf(what, sizeof what, "%s: reduce_scatter %s count %zu %s%s", cfg, OP_NAMES[op], count,
             in_place ? "in place" : "out of place", o ? " staged" : "");
    clt_status st = clt_reduce_scatter(rt, B->a, in_place ? NULL : B->b, count, op, o);
    if (!ok(st == CLT_OK, "%s returns CLT_OK", what)) {
        diag("%s: %s", clt_status_name(st), clt_last_error());
        return;
    }
    io_all(rt, in_place ? B->a : B->b, B->out, in_place ? total : count, 0);
    bool good = true;
    float v[16];
    for (int d = 0; d < n && good; d++) {
        const float *got = B->out[d] + (in_place ? (size_t)d * count : 0);
        for (size_t i = 0; i < count && good; i++) {
            for (int e = 0; e < n; e++) v[e] = value(e, (size_t)d * count + i);
            float want = reduce_ref(op, v, n);
            if (memcmp(&got[i], &want, 4)) {
                diag("%s: device %d element %zu is %.9g, reference %.9g", what, d, i, got[i], want);
                good = false;
            }
        }
        /* In place, the other blocks keep the input. */
        for (size_t i = 0; in_place && i < total && good; i++)
            if (i / count != (size_t)d && B->out[d][i] != value(d, i)) good = false;
    }
    ok(good, "%s: each device holds its block of the reduction, bit for bit", what);
}

static void check_all_gather(clt_runtime *rt, bench *B, size_t count, int in_place,
                             const clt_collective_options *o, const char *cfg)
{
    int n = B->n;
    size_t total = (size_t)n * count;
    /* In place the input is block d of a; out of place it is a's first count floats. */
    for (int d = 0; d < n; d++)
        for (size_t i = 0; i < total; i++)
            B->in[d][i] = in_place ? (i / count == (size_t)d ? value(d, i % count) : -999.0f)
                                   : value(d, i % count);
    io_all(rt, B->a, B->in, total, 1);
    char what[200];
    snprintf(what, sizeof what, "%s: all_gather count %zu %s%s", cfg, count,
             in_place ? "in place" : "out of place", o ? " staged" : "");
    clt_status st = clt_all_gather(rt, in_place ? NULL : B->a, in_place ? B->a : B->b, count, o);
    if (!ok(st == CLT_OK, "%s returns CLT_OK", what)) {
        diag("%s: %s", clt_status_name(st), clt_last_error());
        return;
    }
    io_all(rt, in_place ? B->a : B->b, B->out, total, 0);
    float *ref = malloc((total ? total : 1) * 4);
    for (size_t i = 0; i < total; i++) ref[i] = value((int)(i / count), i % count);
    same_bits(B, ref, total, what);
    free(ref);
}

static void check_broadcast(clt_runtime *rt, bench *B, size_t count, int root, clt_algo algo,
                            const char *cfg)
{
    int n = B->n;
    for (int d = 0; d < n; d++)
        for (size_t i = 0; i < count; i++) B->in[d][i] = value(d, i);
    io_all(rt, B->a, B->in, count, 1);
    char what[200];
    snprintf(what, sizeof what, "%s: broadcast from %d count %zu%s", cfg, root, count,
             algo == CLT_ALGO_NAIVE ? " naive" : "");
    clt_collective_options o = clt_collective_options_default();
    o.algo = algo;
    o.chunk_bytes = 64 << 10;
    clt_status st = clt_broadcast(rt, B->a, count, root, &o);
    if (!ok(st == CLT_OK, "%s returns CLT_OK", what)) {
        diag("%s: %s", clt_status_name(st), clt_last_error());
        return;
    }
    io_all(rt, B->a, B->out, count, 0);
    same_bits(B, B->in[root], count, what);
}

/* Random floats (inexact sums): close to the reference, and the same bits on every device, on
 * a second run and with another chunk size. */
static void check_determinism(clt_runtime *rt, bench *B, size_t count, const char *cfg)
{
    int n = B->n;
    unsigned seed = 12345;
    double *ref = calloc(count, sizeof *ref);
    for (int d = 0; d < n; d++)
        for (size_t i = 0; i < count; i++) {
            seed = seed * 1103515245u + 12345u;
            B->in[d][i] = (float)((seed >> 8) & 0xFFFF) / 65536.0f * 2.0f - 1.0f;
            ref[i] += B->in[d][i];
        }
    io_all(rt, B->a, B->in, count, 1);
    float *first = malloc(count * 4);
    float *fref = malloc(count * 4);
    for (size_t i = 0; i < count; i++) fref[i] = (float)ref[i];
    bool same_everywhere = true, same_runs = true;
    for (int run = 0; run < 3; run++) {
        clt_collective_options o = clt_collective_options_default();
        o.chunk_bytes = run == 2 ? 4096 : 0;
        clt_status st = clt_allreduce(rt, B->a, B->b, count, CLT_OP_SUM, &o);
        if (st != CLT_OK) diag("determinism: %s", clt_last_error());
        io_all(rt, B->b, B->out, count, 0);
        if (run == 0) {
            char what[256];
            snprintf(what, sizeof what, "%s: allreduce SUM of random floats", cfg);
            ok_close(B->out[0], fref, count, 1e-5, 1e-5, what);
            memcpy(first, B->out[0], count * 4);
        }
        for (int d = 0; d < n; d++) {
            same_everywhere &= !memcmp(B->out[d], B->out[0], count * 4);
            same_runs &= !memcmp(B->out[d], first, count * 4);
        }
    }
    ok(same_everywhere, "%s: random floats give the same bits on every device", cfg);
    ok(same_runs, "%s: and the same bits on every run, whatever the chunk size", cfg);
    free(first);
    free(fref);
    free(ref);
}

/* n devices of the test selection (tests/devices.h), cycling when it has fewer: a selection
 * spanning platforms runs every collective across them. */
static void spec_for(int n, char *spec, size_t cap) { snprintf(spec, cap, "%s", test_spec_n(n)); }

static void check_config(int n, clt_context_mode mode, bool full)
{
    char spec[TEST_SPEC_CAP], cfg[160];
    spec_for(n, spec, sizeof spec);
    snprintf(cfg, sizeof cfg, "%d device%s (%.60s, %s)", n, n == 1 ? "" : "s", spec,
             mode == CLT_CONTEXT_PER_DEVICE ? "per-device contexts" : "per-platform contexts");
    clt_runtime_options ro = clt_runtime_options_default();
    ro.devices = spec;
    ro.context_mode = mode;
    clt_runtime *rt = NULL;
    if (!ok_status(clt_runtime_create_ex(&rt, &ro), "%s: runtime", cfg)) return;
    bench B;
    size_t big_count = COUNTS[NCOUNTS - 1];
    bench_init(&B, rt, full ? (size_t)n * big_count : big_count + 1000 * (size_t)n);
    clt_collective_options small = clt_collective_options_default(), naive = small, staged = small,
                           direct = small;
    direct.algo = CLT_ALGO_DIRECT;   /* what AUTO takes for small vectors, here at every size */
    small.chunk_bytes = 64 << 10;   /* many chunks in flight */
    naive.algo = CLT_ALGO_NAIVE;
    staged.algo = CLT_ALGO_RING_STAGED;   /* CPU devices share host memory: the ring maps */
    staged.chunk_bytes = 64 << 10;
    for (size_t k = 0; k < NCOUNTS; k++) {
        size_t count = COUNTS[k];
        bool big = count > 100000;
        for (int op = 0; op < 4; op++) {
            if (big && !full && op != CLT_OP_AVG) continue;
            check_allreduce(rt, &B, count, (clt_op)op, op % 2, big ? &small : NULL, cfg);
        }
        if (full || !big) check_allreduce(rt, &B, count, CLT_OP_SUM, 0, &naive, cfg);
        check_allreduce(rt, &B, count, big ? CLT_OP_SUM : CLT_OP_AVG, 1, &direct, cfg);
        if (!big) check_allreduce(rt, &B, count, CLT_OP_MIN, 0, &direct, cfg);
        check_allreduce(rt, &B, count, big ? CLT_OP_AVG : CLT_OP_MAX, 0, &staged, cfg);
        check_allreduce(rt, &B, count, CLT_OP_MIN, 1, &staged, cfg);
        if (big && !full) continue;
        /* CPU devices share host memory: the default maps the buffers, staged copies through
         * the host; both give the reference's bits */
        check_reduce_scatter(rt, &B, count, k % 2 ? CLT_OP_SUM : CLT_OP_MAX, 0, NULL, cfg);
        check_reduce_scatter(rt, &B, count, CLT_OP_AVG, 1, NULL, cfg);
        check_reduce_scatter(rt, &B, count, CLT_OP_SUM, k % 2, &staged, cfg);
        check_all_gather(rt, &B, count, 0, NULL, cfg);
        check_all_gather(rt, &B, count, 1, NULL, cfg);
        check_all_gather(rt, &B, count, k % 2, &staged, cfg);
        check_broadcast(rt, &B, count, n - 1, CLT_ALGO_RING, cfg);
        check_broadcast(rt, &B, count, 0, CLT_ALGO_NAIVE, cfg);
    }
    check_determinism(rt, &B, 100003, cfg);
    bench_free(&B, rt);
    clt_runtime_destroy(rt);
}

/* ---- two runtimes at once -------------------------------------------------------------------- */

typedef struct {
    const char *spec;
    int good;
} concurrent_job;

static void *concurrent_main(void *arg)
{
    concurrent_job *j = arg;
    clt_runtime *rt;
    if (clt_runtime_create(&rt, j->spec) != CLT_OK) return NULL;
    bench B;
    size_t count = 50001;
    bench_init(&B, rt, count);
    int n = B.n, good = 1;
    for (int it = 0; it < 15 && good; it++) {
        for (int d = 0; d < n; d++)
            for (size_t i = 0; i < count; i++) B.in[d][i] = value(d + it, i);
        io_all(rt, B.a, B.in, count, 1);
        good = clt_allreduce(rt, B.a, NULL, count, CLT_OP_SUM, NULL) == CLT_OK;
        io_all(rt, B.a, B.out, count, 0);
        for (int d = 0; d < n && good; d++)
            for (size_t i = 0; i < count && good; i++) {
                float s = 0;
                for (int e = 0; e < n; e++) s += value(e + it, i);
                good = B.out[d][i] == s;
            }
    }
    bench_free(&B, rt);
    clt_runtime_destroy(rt);
    j->good = good;
    return NULL;
}

/* ---- the internal per-rank calls, from inside worker tasks ---------------------------------- */

typedef struct {
    clt__comm *c;
    cl_mem buf;
    size_t off, count;
    clt_collective_options o;
    int skip;          /* this rank does not take part */
    clt_status st;
    char msg[512];
    double seconds;
} rank_job;

static clt_status rank_allreduce(clt__worker *w, void *arg)
{
    rank_job *j = arg;
    double t0 = clt__now();
    j->st = j->skip ? CLT_OK
                    : clt__comm_allreduce(j->c, w, j->buf, j->off, j->buf, j->off, j->count,
                                          CLT_OP_SUM, &j->o);
    j->seconds = clt__now() - t0;
    snprintf(j->msg, sizeof j->msg, "%s", clt_last_error());
    return CLT_OK;   /* the statuses are checked one by one */
}

static void run_ranks(clt_runtime *rt, rank_job *jobs)
{
    clt__runtime_parallel(rt, rank_allreduce, jobs, sizeof *jobs);
}

static void check_internal(void)
{
    char spec[TEST_SPEC_CAP];
    spec_for(3, spec, sizeof spec);
    clt_runtime *rt;
    if (!ok_status(clt_runtime_create(&rt, spec), "internal: runtime on %s", spec)) return;
    int n = 3;
    clt__comm *c = NULL;
    ok_status(clt__comm_create(&c, rt), "internal: a group of 3 ranks");
    bench B;
    size_t cap = 30000, off = 1234, count = 20011;
    bench_init(&B, rt, cap);
    rank_job jobs[3];

    /* A sub-range of each buffer, in place, from each worker's own task. */
    for (int d = 0; d < n; d++)
        for (size_t i = 0; i < cap; i++) B.in[d][i] = value(d, i);
    io_all(rt, B.a, B.in, cap, 1);
    for (int d = 0; d < n; d++) {
        jobs[d] = (rank_job){.c = c, .buf = B.a[d], .off = off, .count = count};
        jobs[d].o = clt_collective_options_default();
        jobs[d].o.chunk_bytes = 8192;
    }
    run_ranks(rt, jobs);
    bool all_ok = true;
    for (int d = 0; d < n; d++) all_ok &= jobs[d].st == CLT_OK;
    ok(all_ok, "internal: every rank's allreduce of a sub-range returns CLT_OK");
    io_all(rt, B.a, B.out, cap, 0);
    bool good = true;
    for (int d = 0; d < n; d++)
        for (size_t i = 0; i < cap && good; i++) {
            float want = value(d, i);
            if (i >= off && i < off + count) want = value(0, i) + value(1, i) + value(2, i);
            good = B.out[d][i] == want;
        }
    ok(good, "internal: the sub-range holds the sum, the rest is untouched");

    /* A command failing on one device at several points of the call: every rank returns an
     * error at once (the failing one its own, the others CLT_ERR_ABORTED naming it). The group
     * then refuses calls until reset. */
    /* 20011 floats in 3 segments of at most 6671, 2048 per chunk: 4 chunks, 20 units. */
    static const struct { int rank; unsigned unit; } faults[] = {{1, 1}, {2, 6}, {0, 11}, {1, 15}, {2, 19}};
    for (size_t f = 0; f < sizeof faults / sizeof faults[0]; f++) {
        int bad = faults[f].rank;
        clt__fault_arm(rt, &(clt__fault){bad, 0, CLT__FAULT_ALLREDUCE, faults[f].unit, CL_DEVICE_NOT_AVAILABLE});
        for (int d = 0; d < n; d++) jobs[d].o.timeout_s = 20;
        double t0 = clt__now();
        run_ranks(rt, jobs);
        double took = clt__now() - t0;
        bool right = jobs[bad].st == CLT_ERR_DEVICE_NOT_AVAILABLE && strstr(jobs[bad].msg, "CLT_FAULT");
        char needle[32];
        snprintf(needle, sizeof needle, "device %d", bad);
        for (int d = 0; d < n; d++) {
            if (d == bad) continue;
            right &= jobs[d].st == CLT_ERR_ABORTED && strstr(jobs[d].msg, needle) != NULL;
            if (jobs[d].st != CLT_ERR_ABORTED) diag("rank %d: %s: %s", d, clt_status_name(jobs[d].st), jobs[d].msg);
        }
        if (!right) diag("failing rank %d: %s: %s", bad, clt_status_name(jobs[bad].st), jobs[bad].msg);
        ok(right, "internal: device %d failing at unit %u: it returns its error, the others "
                  "CLT_ERR_ABORTED naming it", bad, faults[f].unit);
        ok(took < 5.0, "internal: every rank returned within %.2f s (timeout 20 s)", took);
        clt__fault_arm(rt, NULL);
        run_ranks(rt, jobs);
        ok(jobs[0].st == CLT_ERR_ABORTED && jobs[1].st == CLT_ERR_ABORTED,
           "internal: the aborted group refuses the next call");
        clt__comm_reset(c);
        run_ranks(rt, jobs);
        ok(jobs[0].st == CLT_OK && jobs[1].st == CLT_OK && jobs[2].st == CLT_OK,
           "internal: after clt__comm_reset it works again");
    }

    /* A rank that never comes: its neighbour times out naming it, the others stop too. */
    for (int d = 0; d < n; d++) jobs[d].o.timeout_s = 0.3, jobs[d].skip = d == 2;
    double t0 = clt__now();
    run_ranks(rt, jobs);
    double took = clt__now() - t0;
    /* Rank 0 waits for 2 and rank 1 for 0: either may give up first, the other then stops. */
    bool timed = (jobs[0].st == CLT_ERR_TIMEOUT && strstr(jobs[0].msg, "device 2 ")) ||
                 (jobs[1].st == CLT_ERR_TIMEOUT && strstr(jobs[1].msg, "device 0 "));
    ok(timed && strstr(jobs[0].msg, "made no progress"),
       "internal: a rank times out naming the device it waited for (rank 0: %s, rank 1: %s)",
       clt_status_name(jobs[0].st), clt_status_name(jobs[1].st));
    if (!timed) diag("rank 0: %s; rank 1: %s", jobs[0].msg, jobs[1].msg);
    ok(jobs[0].st != CLT_OK && jobs[1].st != CLT_OK, "internal: both present ranks return an error");
    ok(took < 3.0, "internal: within %.2f s (timeout 0.3 s)", took);
    clt__comm_reset(c);

    clt__comm_destroy(c);
    bench_free(&B, rt);
    clt_runtime_destroy(rt);
}

/* ---- errors ---------------------------------------------------------------------------------- */

typedef struct {
    clt_runtime *rt;
    cl_mem bufs[2];
} inside_job;

static clt_status allreduce_inside(const clt_device_ctx *d, void *user)
{
    (void)d;
    inside_job *j = user;
    return clt_allreduce(j->rt, j->bufs, NULL, 1, CLT_OP_SUM, NULL);
}

static void check_errors(void)
{
    char spec[TEST_SPEC_CAP];
    spec_for(2, spec, sizeof spec);
    clt_runtime_options ro = clt_runtime_options_default();
    ro.devices = spec;
    ro.context_mode = CLT_CONTEXT_PER_DEVICE;
    clt_runtime *rt, *other;
    if (!ok_status(clt_runtime_create_ex(&rt, &ro), "errors: runtime on %s, per-device contexts", spec)) return;
    ok_status(clt_runtime_create(&other, test_spec_one()), "errors: a second runtime");
    bench B;
    bench_init(&B, rt, 100);
    cl_mem foreign = clCreateBuffer(clt_runtime_context(other, 0), CL_MEM_READ_WRITE, 400, NULL, NULL);
    cl_mem small = clCreateBuffer(clt_runtime_context(rt, 1), CL_MEM_READ_WRITE, 40, NULL, NULL);

    ok_error(clt_allreduce(NULL, B.a, NULL, 10, CLT_OP_SUM, NULL), CLT_ERR_INVALID_ARG, "runtime is NULL", "NULL runtime");
    ok_error(clt_allreduce(rt, NULL, NULL, 10, CLT_OP_SUM, NULL), CLT_ERR_INVALID_ARG, "array is NULL", "NULL send array");
    ok_error(clt_allreduce(rt, NULL, NULL, 0, CLT_OP_SUM, NULL), CLT_ERR_INVALID_ARG, "array is NULL", "NULL array, count 0");
    cl_mem holes[2] = {B.a[0], NULL};
    ok_error(clt_allreduce(rt, holes, NULL, 10, CLT_OP_SUM, NULL), CLT_ERR_INVALID_ARG, "send[1] is NULL", "a NULL buffer");
    ok_error(clt_allreduce(rt, B.a, holes, 10, CLT_OP_SUM, NULL), CLT_ERR_INVALID_ARG, "recv[1] is NULL", "a NULL recv buffer");
    ok_error(clt_allreduce(rt, B.a, NULL, 10, (clt_op)7, NULL), CLT_ERR_INVALID_ARG, "unknown op", "a bad op");
    ok_error(clt_reduce_scatter(rt, B.a, NULL, 10, (clt_op)-1, NULL), CLT_ERR_INVALID_ARG, "unknown op", "a bad op (reduce_scatter)");
    ok_error(clt_broadcast(rt, B.a, 10, 2, NULL), CLT_ERR_INVALID_ARG, "root 2 out of range", "a root past the end");
    ok_error(clt_broadcast(rt, B.a, 10, -1, NULL), CLT_ERR_INVALID_ARG, "root -1", "a negative root");
    cl_mem mixed[2] = {B.a[0], foreign};
    ok_error(clt_allreduce(rt, mixed, NULL, 10, CLT_OP_SUM, NULL), CLT_ERR_INVALID_CONTEXT, "device 1",
             "a buffer from another runtime's context");
    cl_mem swapped[2] = {B.a[1], B.a[0]};
    ok_error(clt_allreduce(rt, swapped, NULL, 10, CLT_OP_SUM, NULL), CLT_ERR_INVALID_CONTEXT, "send[0]",
             "buffers in each other's contexts (per-device mode)");
    ok_error(clt_all_gather(rt, B.a, swapped, 10, NULL), CLT_ERR_INVALID_CONTEXT, "recv[0]",
             "a recv buffer in another device's context");
    cl_mem tiny[2] = {B.a[0], small};
    ok_error(clt_allreduce(rt, tiny, NULL, 11, CLT_OP_SUM, NULL), CLT_ERR_INVALID_BUFFER_SIZE, "send[1] holds 40 bytes",
             "a buffer too small for count");
    ok_status(clt_allreduce(rt, tiny, NULL, 10, CLT_OP_SUM, NULL), "a buffer exactly large enough");
    ok_error(clt_reduce_scatter(rt, tiny, B.b, 6, CLT_OP_SUM, NULL), CLT_ERR_INVALID_BUFFER_SIZE, "needs 48",
             "reduce_scatter needs n*count in send");
    ok_error(clt_all_gather(rt, B.a, tiny, 6, NULL), CLT_ERR_INVALID_BUFFER_SIZE, "recv[1]",
             "all_gather needs n*count in recv");
    ok_error(clt_all_gather(rt, NULL, NULL, 6, NULL), CLT_ERR_INVALID_ARG, "NULL", "all_gather with no arrays");
    ok_status(clt_allreduce(rt, tiny, NULL, 0, CLT_OP_SUM, NULL), "count 0 with valid buffers is a no-op");
    clt_collective_options bad = clt_collective_options_default();
    bad.algo = (clt_algo)9;
    ok_error(clt_allreduce(rt, B.a, NULL, 10, CLT_OP_SUM, &bad), CLT_ERR_INVALID_ARG, "bad options", "an unknown algorithm");
    bad = clt_collective_options_default();
    bad.timeout_s = -1;
    ok_error(clt_allreduce(rt, B.a, NULL, 10, CLT_OP_SUM, &bad), CLT_ERR_INVALID_ARG, "bad options", "a negative timeout");

    /* The same buffer for two devices (one device twice in one shared context, so the context
     * check passes whatever platforms the selection spans). */
    clt_runtime *shared;
    ro.context_mode = CLT_CONTEXT_PER_PLATFORM;
    ro.devices = test_spec_repeat(2);
    ok_status(clt_runtime_create_ex(&shared, &ro), "errors: a runtime with one shared context");
    cl_mem one = clCreateBuffer(clt_runtime_context(shared, 0), CL_MEM_READ_WRITE, 400, NULL, NULL);
    cl_mem twice[2] = {one, one};
    ok_error(clt_allreduce(shared, twice, NULL, 10, CLT_OP_SUM, NULL), CLT_ERR_INVALID_ARG, "same buffer",
             "one buffer given to two devices");

    /* From inside a worker callback of the same runtime: refused, not a deadlock. */
    inside_job inside = {rt, {B.a[0], B.a[1]}};
    ok_error(clt_runtime_exec(rt, 0, allreduce_inside, &inside), CLT_ERR_STATE, "worker thread",
             "a collective called from a worker callback");

    /* A device failing mid-call through the public entry point: the failing device's error,
     * and the runtime works again afterwards. */
    clt__fault_arm(rt, &(clt__fault){1, 0, CLT__FAULT_ALLREDUCE, 2, CL_OUT_OF_RESOURCES});
    ok_error(clt_allreduce(rt, B.a, B.b, 100, CLT_OP_SUM, NULL), CLT_ERR_OUT_OF_RESOURCES, "CLT_FAULT",
             "a device failing mid-allreduce: the call returns its error");
    ok(strstr(clt_last_error(), "device 1") != NULL, "and the message names device 1");
    clt__fault_arm(rt, NULL);
    ok_status(clt_allreduce(rt, B.a, B.b, 100, CLT_OP_SUM, NULL), "the next allreduce works");

    clReleaseMemObject(one);
    clt_runtime_destroy(shared);
    clReleaseMemObject(foreign);
    clReleaseMemObject(small);
    bench_free(&B, rt);
    clt_runtime_destroy(other);
    clt_runtime_destroy(rt);
}

int main(void)
{
    tap_require_device();
    double t0 = clt__now();
    check_errors();
    check_internal();
    check_config(1, CLT_CONTEXT_PER_PLATFORM, true);
    check_config(2, CLT_CONTEXT_PER_PLATFORM, true);
    check_config(3, CLT_CONTEXT_PER_PLATFORM, true);
    check_config(5, CLT_CONTEXT_PER_PLATFORM, false);
    check_config(2, CLT_CONTEXT_PER_DEVICE, false);
    check_config(3, CLT_CONTEXT_PER_DEVICE, true);

    char spec[TEST_SPEC_CAP];
    spec_for(2, spec, sizeof spec);
    concurrent_job jobs[2] = {{spec, 0}, {spec, 0}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, concurrent_main, &jobs[i]);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    ok(jobs[0].good && jobs[1].good, "two runtimes, each all-reducing 15 times on its own thread at once");
    diag("took %.1f s", clt__now() - t0);
    return tap_done();
}
