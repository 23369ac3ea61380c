/* Timelines: a data-parallel run on every device and a model-parallel pipeline on two write
 * Chrome trace JSON whose events cover every device (kernels, transfers, host phases), lie
 * inside the run, and nest properly on each row; without a timeline nothing is recorded; bad
 * calls are refused. Both runs also check the accuracy the progress report gives. */
#include "internal.h"
#include "tap.h"

#include <unistd.h>

typedef struct {
    int tid;
    char cat[16];
    double ts, dur;
} ev;

/* Reads back the file this library wrote: one event per line. */
static int read_events(const char *path, ev **out, int *nout, int *balanced)
{
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[1024];
    int n = 0, cap = 0, opens = 0, closes = 0;
    ev *e = NULL;
    while (fgets(line, sizeof line, f)) {
        for (char *p = line; *p; p++) opens += *p == '{' || *p == '[', closes += *p == '}' || *p == ']';
        ev x;
        char *q = strstr(line, "\"ph\":\"X\"");
        if (!q) continue;
        char *ts = strstr(line, "\"ts\":"), *cat = strstr(line, "\"cat\":\"");
        if (sscanf(q, "\"ph\":\"X\",\"pid\":1,\"tid\":%d", &x.tid) != 1 || !ts || !cat ||
            sscanf(ts, "\"ts\":%lf,\"dur\":%lf", &x.ts, &x.dur) != 2 || sscanf(cat, "\"cat\":\"%15[a-z]", x.cat) != 1) {
            fclose(f);
            free(e);
            return -2;
        }
        if (n == cap) e = realloc(e, (size_t)(cap = cap ? cap * 2 : 256) * sizeof *e);
        e[n++] = x;
    }
    fclose(f);
    *out = e;
    *nout = n;
    *balanced = opens == closes;
    return 0;
}

static int by_start(const void *a, const void *b)
{
    const ev *x = a, *y = b;
    return x->tid != y->tid ? x->tid - y->tid : (x->ts < y->ts ? -1 : x->ts > y->ts ? 1 : (x->dur > y->dur ? -1 : x->dur < y->dur));
}

/* Keeps the first report (its arrays are not kept). */
static void keep_first(const clt_step_info *info, void *user)
{
    clt_step_info *first = user;
    if (!first->step) *first = *info;
}

/* Trains 3 steps of m with p on the devices of `spec` while recording a timeline, then checks
 * it: every device has kernels (at least min_kernels), uploads and host phases (at least
 * min_host), every event lies within the run, and events nest on each row. */
static void check_run(const char *what, const char *spec, clt_model *m, clt_train_params p,
                      int min_kernels, int min_host)
{
    char path[] = "/tmp/clt-trace-XXXXXX";
    int fd = mkstemp(path);
    ok(fd >= 0, "%s: a temporary file for the timeline", what);
    close(fd);
    float x[24 * 64] = {0};
    int32_t y[24] = {0};
    for (int i = 0; i < 24 * 64; i++) x[i] = (float)(i % 7) * 0.1f;
    for (int i = 0; i < 24; i++) y[i] = i % 10;

    clt_runtime_options o = clt_runtime_options_default();
    o.devices = spec;
    o.trace_path = path;
    clt_runtime *rt;
    clt_trainer *t;
    int ndev = 0;
    double t0 = clt__now(), t1 = t0;
    if (ok_status(clt_runtime_create_ex(&rt, &o), "%s: runtime recording a timeline", what)) {
        ndev = clt_runtime_device_count(rt);
        if (ok_status(clt_trainer_create(&t, rt, m, &p), "%s: trainer", what)) {
            /* the first step's report counts the rows predict (the same parameters) gets right */
            float out[24 * 10];
            size_t want = 0;
            clt_step_info first = {0};
            ok_status(clt_trainer_predict(t, x, 24, out), "%s: predict before training", what);
            for (int i = 0; i < 24; i++) {
                int best = 0;
                for (int c = 1; c < 10; c++)
                    if (out[i * 10 + c] > out[i * 10 + best]) best = c;
                want += best == y[i];
            }
            clt_trainer_set_progress(t, keep_first, &first);
            bool stepped = true;
            for (int s = 0; s < 3; s++) stepped &= clt_trainer_step(t, x, y, 24, NULL) == CLT_OK;
            ok(stepped, "%s: 3 steps", what);
            ok(first.step == 1 && first.correct == want && first.accuracy == (float)((double)want / 24.0),
               "%s: the first step reports the %zu of 24 rows predict got right (%zu, %.4f)", what, want,
               first.correct, (double)first.accuracy);
            clt_trainer_destroy(t);
        }
        t1 = clt__now();
        clt_runtime_destroy(rt);   /* writes the file */
    }
    ev *e = NULL;
    int n = 0, balanced = 0;
    int read = read_events(path, &e, &n, &balanced);
    ok(read == 0 && n > 0, "%s: the timeline reads back (%d events)", what, n);
    ok(balanced, "%s: its braces and brackets balance", what);
    bool every = ndev > 0;
    for (int d = 0; d < ndev; d++) {
        int kernels = 0, transfers = 0, host = 0;
        for (int i = 0; i < n; i++) {
            if (e[i].tid == 2 * d && !strcmp(e[i].cat, "kernel")) kernels++;
            if (e[i].tid == 2 * d && !strcmp(e[i].cat, "transfer")) transfers++;
            if (e[i].tid == 2 * d + 1 && !strcmp(e[i].cat, "host")) host++;
        }
        if (!(kernels >= min_kernels && transfers >= 3 && host >= min_host)) {
            diag("device %d: %d kernels, %d transfers, %d host phases", d, kernels, transfers, host);
            every = false;
        }
    }
    ok(every, "%s: every device has its kernels, transfers and host phases for 3 steps", what);
    bool inside = true;
    double span = 1e6 * (t1 - t0) + 1e5;   /* microseconds, with slack for clock alignment */
    for (int i = 0; i < n; i++) inside &= e[i].ts >= -1e5 && e[i].dur >= 0 && e[i].ts + e[i].dur <= span + 1e6;
    ok(inside, "%s: every event lies within the run", what);
    qsort(e, (size_t)n, sizeof *e, by_start);
    bool nested = true;
    /* on each row, an event starting inside another ends inside it too (1 us of rounding) */
    for (int i = 0; i < n && nested; i++)
        for (int j = i + 1; j < n && e[j].tid == e[i].tid && e[j].ts < e[i].ts + e[i].dur - 1.0; j++)
            if (e[j].ts + e[j].dur > e[i].ts + e[i].dur + 1.0) {
                diag("row %d: [%.1f +%.1f] overlaps [%.1f +%.1f]", e[i].tid, e[i].ts, e[i].dur, e[j].ts, e[j].dur);
                nested = false;
                break;
            }
    ok(nested, "%s: events on each row nest properly", what);
    free(e);
    unlink(path);
}

/* 64 -> linear 32, relu -> linear 10 */
static clt_model *small_mlp(void)
{
    clt_model *m;
    clt_model_create(&m, clt_shape1(64));
    clt_model_add(m, clt_linear(32));
    clt_model_add(m, clt_relu());
    clt_model_add(m, clt_linear(10));
    return m;
}

int main(void)
{
    tap_require_device();
    clt_model *m = small_mlp();
    clt_train_params p = clt_train_params_default();
    p.parallel = CLT_PARALLEL_DATA;
    p.max_batch = 24;
    check_run("data parallel", test_spec_all(), m, p, 3 * 8, 3);

    /* two stages on two devices (one device opened twice where the selection has one), 4 micro-batches
     * through GPipe: per step and device at least 4 forwards, 4 backwards and 4 receives on the
     * host row, and 4 forwards and 4 backwards of kernels */
    clt_model *mp = small_mlp();
    clt_model_place(mp, 0, 1, 0);
    clt_model_place(mp, 2, 2, 1);
    clt_train_params q = clt_train_params_default();
    q.parallel = CLT_PARALLEL_MODEL;
    q.max_batch = 24;
    q.micro_batches = 4;
    q.pipeline = CLT_PIPELINE_GPIPE;
    check_run("model parallel, gpipe, 4 micro-batches", test_spec_n(2), mp, q, 3 * 8, 3 * 12);
    clt_model_destroy(mp);

    char path[] = "/tmp/clt-trace-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    unlink(path);
    clt_runtime_options o = clt_runtime_options_default();
    clt_runtime *rt;
    /* no timeline: writing one is refused; bad arguments */
    if (clt_runtime_create(&rt, test_spec_one()) == CLT_OK) {
        ok_error(clt_runtime_trace_write(rt, path), CLT_ERR_STATE, "no timeline", "writing without recording");
        ok_error(clt_runtime_trace_write(rt, NULL), CLT_ERR_INVALID_ARG, "path is NULL", "a NULL path");
        clt_runtime_destroy(rt);
    }
    ok(access(path, F_OK) != 0, "nothing was written without a timeline");
    o.devices = test_spec_one();
    o.trace_path = "/nonexistent-dir/trace.json";
    if (clt_runtime_create_ex(&rt, &o) == CLT_OK) {
        ok_error(clt_runtime_trace_write(rt, o.trace_path), CLT_ERR_IO, "/nonexistent-dir/trace.json",
                 "an unwritable path names itself");
        clt_runtime_destroy(rt);   /* logs, does not crash */
    }
    clt_model_destroy(m);
    return tap_done();
}
