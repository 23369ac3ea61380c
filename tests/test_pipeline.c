/* Model parallelism: the schedule generator (every micro-batch forward and backward once per
 * stage, 1F1B's bound on live micro-batches, no deadlock), the partitioner, the transfer links
 * in both context modes (chunked, out of order, timeout, abort), and the seed MLP trained with
 * the seed's placement under every schedule against one-device training: losses, parameters,
 * gradients and predictions within 1e-5 relative; zero bubble with 1F1B's bits (2 and 3 stages,
 * fewer and more micro-batches than stages, hybrid); activation memory per schedule (1F1B below
 * GPipe, zero bubble 1F1B's) and micro-batches in reused slots (naive gives 1f1b's bits, by pairs;
 * GPipe one device's); hybrid (two pipelines) the same way;
 * a device failing mid-step. Then placement and parameter errors. */
#include "internal.h"
#include "ref.h"
#include "tap.h"

#include <math.h>

/* ---- schedules ---------------------------------------------------------------------------- */

/* Every stage runs each forward and backward once, backwards in order; the micro-batches alive
 * on a stage at once (from its forward to its backward, or when split to the WGRAD that covers
 * it) fit its slots, and without split reach the schedule's bound. Split: BWD, then SEND_GRAD
 * (not on stage 0); a WGRAD only right after the BWD (and send) of its group's last micro-batch,
 * or under zero bubble anywhere after it and before the next BWD; the WGRADs cover every
 * micro-batch once, in order, in groups of clt__pipeline_wgroup. */
static void check_schedule_shape(clt_pipeline_schedule kind, int S, const int *stage_dev, int ndev, int M, int split)
{
    clt__schedule *sc;
    if (!ok_status(clt__schedule_build(&sc, kind, S, stage_dev, ndev, M, 1, split), "%s%s, %d stages, %d micro-batches: built",
                   clt_pipeline_schedule_name(kind), split ? " split" : "", S, M))
        return;
    bool good = true;
    int worst_live = 0, group = clt__pipeline_wgroup(kind, M);
    for (int s = 0; s < S; s++) {
        int fwd = 0, bwd = 0, covered = 0, live = 0, most = 0, next_bwd = 0;
        int after = -1;   /* ops of this stage since its last BWD, -1 before any */
        for (int d = 0; d < ndev; d++)
            for (size_t i = 0; i < sc->nops[d]; i++) {
                clt__op op = sc->ops[d][i];
                if (op.stage != s) continue;
                good &= d == stage_dev[s];
                after += after >= 0;
                if (op.kind == CLT__OP_FWD) fwd++, live++;
                if (op.kind == CLT__OP_BWD) {
                    good &= op.mb == next_bwd++;   /* backwards in micro-batch order */
                    bwd++, live -= !split;
                    after = 0;
                }
                if (split && s > 0 && after == 1) good &= op.kind == CLT__OP_SEND_GRAD && op.mb == next_bwd - 1;
                if (op.kind == CLT__OP_WGRAD) {
                    int end = op.mb + op.mbs;
                    int right_after = s > 0 ? 2 : 1;
                    good &= split && (kind == CLT_PIPELINE_ZB ? after >= right_after : after == right_after) &&
                            op.mb == covered && end == next_bwd && (op.mbs == group || end == M);
                    covered = end, live -= op.mbs;
                }
                if (live > most) most = live;
            }
        good &= fwd == M && bwd == M && covered == (split ? M : 0);
        int bound = kind == CLT_PIPELINE_NAIVE ? 1 : kind == CLT_PIPELINE_GPIPE ? M : (S - s < M ? S - s : M);
        int slots, gslots, slots1, gslots1;
        clt__pipeline_slots(kind, S, s, M, split, &slots, &gslots);
        clt__pipeline_slots(CLT_PIPELINE_1F1B, S, s, M, split, &slots1, &gslots1);
        if (kind == CLT_PIPELINE_ZB && (slots > slots1 + 1 || gslots > gslots1)) {
            diag("zb: stage %d has %d slots and %d of gout, 1f1b %d and %d", s, slots, gslots, slots1, gslots1);
            good = false;
        }
        if ((!split && most != bound) || most > slots) {
            diag("stage %d holds %d micro-batches at once, expected %d (slots %d)", s, most, bound, slots);
            good = false;
        }
        if (most > worst_live) worst_live = most;
    }
    ok(good, "%s%s, %d stages on %d devices, %d micro-batches: every stage runs each forward and "
       "backward once, backwards in order%s, at most %d micro-batches alive on a stage",
       clt_pipeline_schedule_name(kind), split ? " split" : "", S, ndev, M,
       split ? ", each sent before the weight gradients of its group" : "", worst_live);
    clt__schedule_free(sc);
}

static void check_schedules(void)
{
    const int seed[] = {0, 1, 0}, three[] = {0, 1, 2}, four[] = {0, 1, 0, 1}, one[] = {0};
    clt__schedule *sc;
    const int two[] = {0, 1}, four_on_four[] = {0, 1, 2, 3};
    for (int k = CLT_PIPELINE_NAIVE; k <= CLT_PIPELINE_ZB; k++) {
        clt_pipeline_schedule kind = (clt_pipeline_schedule)k;
        for (int split = 0; split < 2; split++) {
            check_schedule_shape(kind, 3, seed, 2, 1, split);
            check_schedule_shape(kind, 3, seed, 2, 4, split);
            check_schedule_shape(kind, 3, three, 3, 5, split);
            check_schedule_shape(kind, 4, four, 2, 8, split);
            check_schedule_shape(kind, 1, one, 1, 3, split);
            check_schedule_shape(kind, 2, two, 2, 8, split);
            check_schedule_shape(kind, 2, two, 2, 3, split);
            check_schedule_shape(kind, 4, four_on_four, 4, 11, split);
        }
    }
    /* zero bubble, 2 stages, 4 micro-batches: stage 0 sends forward 3 before the weight
     * gradients of 0 and 1 (1f1b: after them), which fill the wait for 2's gradient; the last
     * stage needs those slots for its next forward (2 of them), so runs them as 1f1b does */
    static const char *const zb_want[2] = {
        "FWD0 SEND_ACT0 FWD1 SEND_ACT1 RECV_GRAD0 BWD0 FWD2 SEND_ACT2 RECV_GRAD1 BWD1 FWD3 SEND_ACT3 WGRAD0+2 "
        "RECV_GRAD2 BWD2 RECV_GRAD3 BWD3 WGRAD2+2",
        "RECV_ACT0 FWD0 BWD0 SEND_GRAD0 RECV_ACT1 FWD1 BWD1 SEND_GRAD1 WGRAD0+2 RECV_ACT2 FWD2 BWD2 SEND_GRAD2 "
        "RECV_ACT3 FWD3 BWD3 SEND_GRAD3 WGRAD2+2"};
    if (ok_status(clt__schedule_build(&sc, CLT_PIPELINE_ZB, 2, two, 2, 4, 1, 1), "zb schedule")) {
        for (int d = 0; d < 2; d++) {
            char got[512] = "";
            for (size_t i = 0; i < sc->nops[d]; i++) {
                char one_op[32], mbs[8] = "";
                clt__op op = sc->ops[d][i];
                if (op.kind == CLT__OP_WGRAD) snprintf(mbs, sizeof mbs, "+%d", op.mbs);
                snprintf(one_op, sizeof one_op, "%s%s%d%s", i ? " " : "", clt__op_name(op.kind), op.mb, mbs);
                strncat(got, one_op, sizeof got - strlen(got) - 1);
            }
            ok(!strcmp(got, zb_want[d]), "zb, 2 stages, 4 micro-batches, stage %d: %s", d, got);
        }
        clt__schedule_free(sc);
    }
    /* the seed's list on device 0 for one micro-batch, written out, whole and split */
    static const char *const want[2] = {
        "FWD(0) SEND_ACT(0) RECV_ACT(2) FWD(2) BWD(2) SEND_GRAD(2) RECV_GRAD(0) BWD(0)",
        "FWD(0) SEND_ACT(0) RECV_ACT(2) FWD(2) BWD(2) SEND_GRAD(2) WGRAD(2) RECV_GRAD(0) BWD(0) WGRAD(0)"};
    for (int split = 0; split < 2; split++) {
        if (!ok_status(clt__schedule_build(&sc, CLT_PIPELINE_NAIVE, 3, seed, 2, 1, 1, split), "seed schedule"))
            continue;
        char got[256] = "";
        for (size_t i = 0; i < sc->nops[0]; i++) {
            char one_op[32];
            snprintf(one_op, sizeof one_op, "%s%s(%d)", i ? " " : "", clt__op_name(sc->ops[0][i].kind), sc->ops[0][i].stage);
            strncat(got, one_op, sizeof got - strlen(got) - 1);
        }
        ok(!strcmp(got, want[split]), "the seed's device 0 runs fc1, sends, runs fc4 and the loss, sends back%s, "
           "then fc1's backward: %s", split ? " before fc4's weight gradients" : "", got);
        clt__schedule_free(sc);
    }
    if (ok_status(clt__schedule_build(&sc, CLT_PIPELINE_GPIPE, 3, seed, 2, 2, 0, 0), "forward-only schedule")) {
        size_t outputs = 0, bwd = 0;
        for (int d = 0; d < 2; d++)
            for (size_t i = 0; i < sc->nops[d]; i++)
                outputs += sc->ops[d][i].kind == CLT__OP_OUTPUT, bwd += sc->ops[d][i].kind == CLT__OP_BWD;
        ok(outputs == 2 && bwd == 0, "forward only: an OUTPUT per micro-batch, no backward");
        clt__schedule_free(sc);
    }
    ok_error(clt__schedule_build(&sc, (clt_pipeline_schedule)9, 3, seed, 2, 2, 1, 0), CLT_ERR_INVALID_ARG,
             "unknown pipeline schedule 9", "the generator refuses an unknown schedule");
}

static void check_partition(void)
{
    /* six equal layers; device 1 takes twice as long per layer */
    double cost[12], mem[6], cap[2] = {1e9, 1e9};
    for (int i = 0; i < 6; i++) cost[i] = 1.0, cost[6 + i] = 2.0, mem[i] = 100;
    int dev[6];
    ok_status(clt__partition(6, 2, cost, mem, cap, NULL, dev), "partition by speed");
    ok(dev[0] == 0 && dev[3] == 0 && dev[4] == 1 && dev[5] == 1,
       "the device twice as fast gets twice the layers (4 and 2): %d %d %d %d %d %d", dev[0], dev[1],
       dev[2], dev[3], dev[4], dev[5]);
    for (int i = 0; i < 6; i++) cost[6 + i] = 1.0;
    cap[0] = 250;   /* device 0 holds two layers at most */
    ok_status(clt__partition(6, 2, cost, mem, cap, NULL, dev), "partition within memory");
    ok(dev[1] == 0 && dev[2] == 1 && dev[5] == 1, "a small device gets what fits (2 layers), the other the rest");
    cap[0] = cap[1] = 250;
    ok_error(clt__partition(6, 2, cost, mem, cap, NULL, dev), CLT_ERR_OUT_OF_DEVICE_MEMORY, "do not fit",
             "a model that fits nowhere is refused");
}

/* A runtime on `spec` in a context mode; NULL (and a failed test point) when it cannot open. */
static clt_runtime *open_runtime(const char *spec, clt_context_mode mode, const char *mname)
{
    clt_runtime_options o = clt_runtime_options_default();
    o.devices = spec;
    o.context_mode = mode;
    clt_runtime *rt = NULL;
    if (!ok_status(clt_runtime_create_ex(&rt, &o), "runtime '%s', %s", spec, mname)) return NULL;
    return rt;
}

/* ---- transfer links ------------------------------------------------------------------------ */

typedef struct {
    clt__link *l;
    cl_mem buf;
    size_t at, count;
    uint32_t tag;
    int slot;
    float *check;     /* receiver: read back here after the copy */
} link_job;

static clt_status send_task(clt__worker *w, void *arg)
{
    (void)w;
    link_job *j = arg;
    return clt__link_send(j->l, j->tag, j->slot, j->at, (clt__view){j->buf, j->at}, j->count);
}

static clt_status recv_task(clt__worker *w, void *arg)
{
    link_job *j = arg;
    clt_status st = clt__link_recv(j->l, j->tag, j->slot, j->at, (clt__view){j->buf, j->at}, j->count);
    if (st == CLT_OK && clEnqueueReadBuffer(w->queue, j->buf, CL_TRUE, j->at * 4, j->count * 4, j->check, 0, NULL, NULL))
        st = CLT_ERR_OPENCL;
    clFinish(w->queue);
    return st;
}

typedef struct {
    size_t n;
    const float *init;
    cl_mem buf;
} buf_job;

static clt_status make_buf(clt__worker *w, void *arg)
{
    buf_job *j = arg;
    clt_status st = clt__alloc(w, j->n, "test buffer", &j->buf);
    if (st == CLT_OK && clEnqueueWriteBuffer(w->queue, j->buf, CL_TRUE, 0, j->n * 4, j->init, 0, NULL, NULL))
        st = CLT_ERR_OPENCL;
    return st;
}

static void check_links(clt_context_mode mode)
{
    const char *mname = mode == CLT_CONTEXT_PER_PLATFORM ? "shared context" : "a context per device";
    clt_runtime *rt = open_runtime(test_spec_n(2), mode, mname);
    if (!rt) return;
    enum { N = 4567 + 300 };
    float *a = malloc(N * 4), *zero = calloc(N, 4), *got = malloc(N * 4);
    for (int i = 0; i < N; i++) a[i] = (float)i * 0.5f - 7.0f;
    buf_job src = {N, a, NULL}, dst = {N, zero, NULL};
    clt__xfer_group *g;
    clt__link *l;
    clt__xfer_group_create(&g, 0.3);
    clt__worker *w0 = &rt->workers[0], *w1 = &rt->workers[1];
    if (clt__worker_call(w0, make_buf, &src) != CLT_OK || clt__worker_call(w1, make_buf, &dst) != CLT_OK ||
        clt__link_create(&l, g, w0, w1, N, 4, 1000) != CLT_OK) {
        ok(0, "link setup: %s", clt_last_error());
        goto out;
    }
    ok(clt__link_direct(l) == (mode == CLT_CONTEXT_PER_PLATFORM), "%s: the link %s", mname,
       mode == CLT_CONTEXT_PER_PLATFORM ? "copies inside the context" : "goes through host staging");
    /* two messages, received in the opposite order, the first over five chunks */
    link_job s1 = {l, src.buf, 300, 4567, 1, 0, NULL}, s2 = {l, src.buf, 0, 300, 1, 1, NULL};
    link_job r1 = {l, dst.buf, 300, 4567, 1, 0, got + 300}, r2 = {l, dst.buf, 0, 300, 1, 1, got};
    clt__task ts1, ts2, tr1, tr2;
    clt__worker_submit(w1, &tr2, recv_task, &r2);   /* waits for a message not sent yet */
    clt__worker_submit(w1, &tr1, recv_task, &r1);
    clt__worker_submit(w0, &ts1, send_task, &s1);
    clt__worker_submit(w0, &ts2, send_task, &s2);
    clt_status st = clt__worker_wait(w0, &ts1);
    if (st == CLT_OK) st = clt__worker_wait(w0, &ts2);
    clt_status rs = clt__worker_wait(w1, &tr2);
    if (rs == CLT_OK) rs = clt__worker_wait(w1, &tr1);
    ok(st == CLT_OK && rs == CLT_OK, "%s: two messages sent and received (%s)", mname, st || rs ? clt_last_error() : "ok");
    ok(!memcmp(got, a, N * 4), "%s: 4567 floats in 5 chunks and 300 more arrive intact, each at its offset", mname);

    /* the next call's tag: a receiver without a sender times out, naming both devices */
    link_job r3 = {l, dst.buf, 0, 10, 2, 0, got};
    double t0 = clt__now();
    ok_error(clt__worker_call(w1, recv_task, &r3), CLT_ERR_TIMEOUT, "sent nothing", "%s: a receive with no send times out", mname);
    ok(clt__now() - t0 < 5.0, "%s: after the group's timeout (0.3 s), not later", mname);
    /* an abort wakes a waiting receiver at once, with the failing device's message */
    clt__xfer_group_destroy(g);
    clt__xfer_group_create(&g, 30);
    clt__link_destroy(l);
    clt__link_create(&l, g, w0, w1, N, 4, 1000);
    link_job r4 = {l, dst.buf, 0, 10, 3, 0, got};
    clt__task tr4;
    t0 = clt__now();
    clt__worker_submit(w1, &tr4, recv_task, &r4);
    clt__xfer_group_abort(g, 0, CLT_ERR_OPENCL, "the sender broke");
    ok_error(clt__worker_wait(w1, &tr4), CLT_ERR_ABORTED, "the sender broke", "%s: an abort stops the receiver", mname);
    ok(clt__now() - t0 < 5.0, "%s: at once, not after the 30 s timeout", mname);
    clt__xfer_group_reset(g);
    link_job s5 = {l, src.buf, 0, 10, 4, 0, NULL}, r5 = {l, dst.buf, 0, 10, 4, 0, got};
    memset(got, 0, 40);
    ok(clt__worker_call(w0, send_task, &s5) == CLT_OK && clt__worker_call(w1, recv_task, &r5) == CLT_OK &&
           !memcmp(got, a, 40),
       "%s: after a reset the link works again", mname);
out:
    clt__link_destroy(l);
    clt__xfer_group_destroy(g);
    if (src.buf) clReleaseMemObject(src.buf);
    if (dst.buf) clReleaseMemObject(dst.buf);
    free(a), free(zero), free(got);
    clt_runtime_destroy(rt);
}

/* ---- the seed MLP: model parallel against one device ------------------------------------ */

enum { STEPS = 5, MAXB = 16 };
static const int *sizes = ref_seed_sizes;
static float *init_w[4], *init_b[4];
static float *xs[STEPS];
static int32_t ys[STEPS][MAXB];

static void make_data(void)
{
    ref_rng rng = {7};   /* as tests/test_trainer.c's seed MLP */
    for (int i = 0; i < 4; i++) {
        size_t nw = (size_t)sizes[i + 1] * (size_t)sizes[i];
        init_w[i] = malloc(nw * 4);
        init_b[i] = malloc((size_t)sizes[i + 1] * 4);
        double bound = 1.0 / sqrt((double)sizes[i]);
        ref_fill(&rng, init_w[i], nw, bound);
        ref_fill(&rng, init_b[i], (size_t)sizes[i + 1], bound);
    }
    for (int s = 0; s < STEPS; s++) {
        xs[s] = malloc(MAXB * 1024 * 4);
        ref_fill(&rng, xs[s], MAXB * 1024, 1.0);
        for (int i = 0; i < MAXB; i++) ys[s][i] = (int32_t)((ref_next(&rng) >> 33) % 10);
    }
}

/* The seed MLP's layers: 0 fc1, 1 relu, 2 fc2, 3 relu, 4 fc3, 5 relu, 6 fc4. */
typedef enum {
    PLACE_NONE,        /* automatic partitioning */
    PLACE_SEED,        /* ModelParallelNN: fc1 on 0; fc2, fc3 on 1; fc4 on 0 */
    PLACE_THREE,       /* three stages on three devices */
    PLACE_ACT_ONLY,    /* fc1 on 0; the ReLU alone on 1; the rest on 2 */
    PLACE_SEVEN        /* one layer per device: seven devices */
} placement;

static clt_model *seed_model(placement how)
{
    clt_model *m = ref_seed_mlp(0);
    switch (how) {
    case PLACE_NONE: break;
    case PLACE_SEED:
        clt_model_place(m, 0, 1, 0);
        clt_model_place(m, 2, 5, 1);
        clt_model_place(m, 6, 6, 0);
        break;
    case PLACE_THREE:
        clt_model_place(m, 0, 1, 0);
        clt_model_place(m, 2, 3, 1);
        clt_model_place(m, 4, 6, 2);
        break;
    case PLACE_ACT_ONLY:
        clt_model_place(m, 0, 0, 0);
        clt_model_place(m, 1, 1, 1);
        clt_model_place(m, 2, 6, 2);
        break;
    case PLACE_SEVEN:
        for (int i = 0; i < 7; i++) clt_model_place(m, i, i, i);
        break;
    }
    return m;
}

/* What a run produced: the loss of every step, the parameters and gradients at the end, and
 * predictions of the first step's inputs. */
typedef struct {
    float loss[STEPS];
    float *params[8], *grads[8];
    float pred[MAXB * 10];
    float eval_loss;
    bool good;
} run_result;

static void result_free(run_result *r)
{
    for (int i = 0; i < 8; i++) free(r->params[i]), free(r->grads[i]);
}

static bool train(clt_runtime *rt, clt_model *m, const clt_train_params *p, size_t batch, run_result *r)
{
    memset(r, 0, sizeof *r);
    clt_trainer *t;
    clt_status st = clt_trainer_create(&t, rt, m, p);
    for (int i = 0; i < 4 && st == CLT_OK; i++) {
        st = clt_trainer_set_param(t, 2 * i, "weight", init_w[i], (size_t)sizes[i + 1] * (size_t)sizes[i]);
        if (st == CLT_OK) st = clt_trainer_set_param(t, 2 * i, "bias", init_b[i], (size_t)sizes[i + 1]);
    }
    for (int s = 0; s < STEPS && st == CLT_OK; s++) st = clt_trainer_step(t, xs[s], ys[s], batch, &r->loss[s]);
    for (int i = 0; i < 4 && st == CLT_OK; i++) {
        size_t nw = (size_t)sizes[i + 1] * (size_t)sizes[i], nb = (size_t)sizes[i + 1];
        r->params[2 * i] = malloc(nw * 4), r->params[2 * i + 1] = malloc(nb * 4);
        r->grads[2 * i] = malloc(nw * 4), r->grads[2 * i + 1] = malloc(nb * 4);
        st = clt_trainer_get_param(t, 2 * i, "weight", r->params[2 * i], nw);
        if (st == CLT_OK) st = clt_trainer_get_param(t, 2 * i, "bias", r->params[2 * i + 1], nb);
        if (st == CLT_OK) st = clt_trainer_get_grad(t, 2 * i, "weight", r->grads[2 * i], nw);
        if (st == CLT_OK) st = clt_trainer_get_grad(t, 2 * i, "bias", r->grads[2 * i + 1], nb);
    }
    if (st == CLT_OK) st = clt_trainer_predict(t, xs[0], batch, r->pred);
    if (st == CLT_OK) st = clt_trainer_evaluate(t, xs[1], ys[1], MAXB, &r->eval_loss, NULL);
    if (st != CLT_OK) diag("training failed: %s: %s", clt_status_name(st), clt_last_error());
    clt_trainer_destroy(t);
    return r->good = st == CLT_OK;
}

#define RTOL 1e-5
#define ATOL 1e-7

static void compare(const run_result *ref, const run_result *got, size_t batch, const char *what)
{
    if (!ok(got->good, "%s: trains 5 steps, predicts and evaluates", what)) return;
    long bad = tap_first_mismatch(got->loss, ref->loss, STEPS, 0, RTOL);
    if (bad >= 0) diag("step %ld: loss %.9g, one device %.9g", bad + 1, got->loss[bad], ref->loss[bad]);
    ok(bad < 0, "%s: the 5 losses match one device's within %g relative", what, RTOL);
    bool params = true, grads = true;
    double worst = 0;
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 2; k++) {
            size_t n = k ? (size_t)sizes[i + 1] : (size_t)sizes[i + 1] * (size_t)sizes[i];
            const float *a = got->params[2 * i + k], *b = ref->params[2 * i + k];
            params &= tap_first_mismatch(a, b, n, ATOL, RTOL) < 0;
            grads &= tap_first_mismatch(got->grads[2 * i + k], ref->grads[2 * i + k], n, ATOL, RTOL) < 0;
            for (size_t j = 0; j < n; j++)
                if (fabs(a[j] - b[j]) > worst) worst = fabs(a[j] - b[j]);
        }
    ok(params, "%s: every parameter after 5 steps matches (%g + %g*|ref|; largest difference %.3g)", what, ATOL,
       RTOL, worst);
    ok(grads, "%s: the last step's gradients match", what);
    ok(tap_first_mismatch(got->pred, ref->pred, batch * 10, 1e-6, RTOL) < 0 &&
           tap_first_mismatch(&got->eval_loss, &ref->eval_loss, 1, 0, RTOL) < 0,
       "%s: predict and evaluate match", what);
}

/* Trains with p and holds the result to ref: "MODE, WHAT, SCHEDULE, M micro-batches". */
static void check_against(clt_runtime *rt, clt_model *m, clt_train_params p, clt_pipeline_schedule kind,
                          int micro, size_t batch, const run_result *ref, const char *mode, const char *what)
{
    char full[200];
    snprintf(full, sizeof full, "%s, %s, %s, %d micro-batches", mode, what, clt_pipeline_schedule_name(kind), micro);
    p.pipeline = kind;
    p.micro_batches = micro;
    run_result got;
    train(rt, m, &p, batch, &got);
    compare(ref, &got, batch, full);
    result_free(&got);
}

static bool same_bits(const run_result *a, const run_result *b)
{
    if (!a->good || !b->good) return false;
    for (int s = 0; s < STEPS; s++)
        if (memcmp(&a->loss[s], &b->loss[s], 4)) {
            diag("step %d's loss differs: %.9g and %.9g", s + 1, a->loss[s], b->loss[s]);
            return false;
        }
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 2; k++) {
            size_t n = k ? (size_t)sizes[i + 1] : (size_t)sizes[i + 1] * (size_t)sizes[i];
            for (size_t j = 0; j < n; j++)
                if (memcmp(&a->params[2 * i + k][j], &b->params[2 * i + k][j], 4)) {
                    diag("fc%d's %s[%zu] differs: %.9g and %.9g", i + 1, k ? "bias" : "weight", j,
                         a->params[2 * i + k][j], b->params[2 * i + k][j]);
                    return false;
                }
        }
    return true;
}

/* Zero bubble moves only the weight gradients' passes, never what they sum: 1F1B's bits and
 * predictions, for any micro-batch count. */
static void check_zb_bits(clt_runtime *rt, clt_model *m, clt_train_params p, int micro, size_t batch,
                          const char *mode, const char *what)
{
    run_result f1b, zb;
    p.micro_batches = micro;
    p.pipeline = CLT_PIPELINE_1F1B;
    train(rt, m, &p, batch, &f1b);
    p.pipeline = CLT_PIPELINE_ZB;
    train(rt, m, &p, batch, &zb);
    ok(same_bits(&f1b, &zb) && !memcmp(f1b.pred, zb.pred, batch * 10 * sizeof(float)),
       "%s, %s, %d micro-batches: zb gives 1f1b's bits and predictions", mode, what, micro);
    result_free(&f1b), result_free(&zb);
}

static void check_equivalence(clt_context_mode mode)
{
    const char *mname = mode == CLT_CONTEXT_PER_PLATFORM ? "shared context" : "context per device";
    clt_runtime *rt = open_runtime(test_spec_n(3), mode, mname);
    if (!rt) return;
    clt_model *plain = seed_model(PLACE_NONE), *seed = seed_model(PLACE_SEED), *three = seed_model(PLACE_THREE);
    clt_model *act_only = seed_model(PLACE_ACT_ONLY);
    clt_train_params p = clt_train_params_default();
    p.optim = clt_sgd(0.05f, 0.9f, 0.0f, 0);
    p.max_batch = MAXB;
    run_result ref, got, f1b4;
    train(rt, plain, &p, MAXB, &ref);
    ok(ref.good, "%s: one-device reference", mname);

    p.parallel = CLT_PARALLEL_MODEL;
    char what[160];
    for (int k = CLT_PIPELINE_NAIVE; k <= CLT_PIPELINE_ZB; k++) {
        p.pipeline = (clt_pipeline_schedule)k;
        p.micro_batches = k == CLT_PIPELINE_NAIVE ? 1 : 4;
        snprintf(what, sizeof what, "%s, seed placement, %s, %d micro-batches", mname,
                 clt_pipeline_schedule_name(p.pipeline), p.micro_batches);
        train(rt, seed, &p, MAXB, &got);
        compare(&ref, &got, MAXB, what);
        /* GPipe computes the weight gradients of its 4 equal micro-batches in one pass over
         * their rows, as one device does */
        if (k < CLT_PIPELINE_1F1B) ok(same_bits(&ref, &got), "%s: the same bits as one device", what);
        if (k == CLT_PIPELINE_ZB) ok(same_bits(&f1b4, &got), "%s: the same bits as 1f1b", what);
        if (k == CLT_PIPELINE_1F1B) f1b4 = got;
        else result_free(&got);
    }
    /* the weight gradients' passes set the summation order, not the schedule: 1F1B computes
     * them by pairs of micro-batches, so naive with 2 gives the bits of 1f1b with 4 */
    p.pipeline = CLT_PIPELINE_NAIVE;
    p.micro_batches = 2;
    train(rt, seed, &p, MAXB, &got);
    ok(same_bits(&f1b4, &got), "%s: naive with 2 micro-batches gives 1f1b's bits with 4", mname);
    result_free(&got), result_free(&f1b4);

    /* 3 stages on 3 devices; micro-batches that do not divide the batch */
    check_against(rt, three, p, CLT_PIPELINE_1F1B, 5, MAXB, &ref, mname, "3 stages on 3 devices, a batch of 16");
    check_against(rt, three, p, CLT_PIPELINE_ZB, 5, MAXB, &ref, mname, "3 stages on 3 devices, a batch of 16");
    /* zero bubble against 1f1b: fewer, as many and more micro-batches than stages */
    clt_model *two = seed_model(PLACE_NONE);
    clt_model_place(two, 0, 3, 0);   /* fc1, fc2 on 0; fc3, fc4 on 1 */
    clt_model_place(two, 4, 6, 1);
    for (int micro = 1; micro <= 8; micro += micro < 3 ? 1 : micro == 3 ? 2 : 3)   /* 1 2 3 5 8 */
        check_zb_bits(rt, two, p, micro, MAXB, mname, "2 stages on 2 devices");
    for (int micro = 2; micro <= 7; micro += micro == 2 ? 2 : 3)   /* 2 4 7 */
        check_zb_bits(rt, three, p, micro, MAXB, mname, "3 stages on 3 devices");
    check_zb_bits(rt, seed, p, 5, MAXB, mname, "seed placement (3 stages on 2 devices)");
    check_against(rt, two, p, CLT_PIPELINE_ZB, 8, MAXB, &ref, mname, "2 stages on 2 devices, a batch of 16");
    clt_model_destroy(two);
    check_against(rt, plain, p, CLT_PIPELINE_GPIPE, 3, MAXB, &ref, mname, "automatic partition, a batch of 16");
    /* a stage with no parameters: its gradients pass through, it has nothing to update */
    check_against(rt, act_only, p, CLT_PIPELINE_1F1B, 4, MAXB, &ref, mname,
                  "a stage holding only the ReLU, a batch of 16");
    check_against(rt, act_only, p, CLT_PIPELINE_NAIVE, 1, MAXB, &ref, mname,
                  "a stage holding only the ReLU, a batch of 16");
    result_free(&ref);

    /* a batch smaller than the micro-batch count: 3 samples, 8 micro-batches */
    clt_train_params p1 = p;
    p1.parallel = CLT_PARALLEL_NONE;
    train(rt, plain, &p1, 3, &ref);
    check_against(rt, seed, p, CLT_PIPELINE_1F1B, 8, 3, &ref, mname, "seed placement, a batch of 3");
    check_against(rt, seed, p, CLT_PIPELINE_ZB, 8, 3, &ref, mname, "seed placement, a batch of 3");
    result_free(&ref);

    /* accumulation over calls and micro-batches within them */
    p1.accumulation = 2;
    train(rt, plain, &p1, MAXB, &ref);
    p.accumulation = 2;
    check_against(rt, seed, p, CLT_PIPELINE_GPIPE, 2, MAXB, &ref, mname, "seed placement, accumulation 2");
    result_free(&ref);

    clt_model_destroy(plain), clt_model_destroy(seed), clt_model_destroy(three);
    clt_model_destroy(act_only);
    clt_runtime_destroy(rt);
}

/* Activation memory: each stage holds the micro-batches its schedule can have in flight there
 * (naive 1, GPipe M, 1F1B S - s), so with 2 stages and 8 micro-batches 1F1B needs less than
 * GPipe on both devices; and the slots are reused without mixing micro-batches up. */
static void check_memory(clt_context_mode mode)
{
    const char *mname = mode == CLT_CONTEXT_PER_PLATFORM ? "shared context" : "context per device";
    clt_runtime *rt = open_runtime(test_spec_n(2), mode, mname);
    if (!rt) return;
    clt_model *plain = seed_model(PLACE_NONE), *two = seed_model(PLACE_NONE);
    clt_model_place(two, 0, 3, 0);   /* fc1, fc2 on 0; fc3, fc4 on 1 */
    clt_model_place(two, 4, 6, 1);
    clt_train_params p = clt_train_params_default();
    p.optim = clt_sgd(0.05f, 0.9f, 0.0f, 0);
    p.max_batch = MAXB;
    uint64_t bytes[4][2] = {{0}};
    clt_trainer *t = NULL;
    clt_device_stats ds;
    if (ok_status(clt_trainer_create(&t, rt, plain, &p), "%s: one-device trainer", mname)) {
        clt_runtime_device_stats(rt, 0, &ds, 0);
        /* per row: the input 1024, the outputs 512 + 512 + 256 + 256 + 128 + 128 + 10, two
         * gradient buffers of 1024 */
        uint64_t row = 4 * (1024 + 512 + 512 + 256 + 256 + 128 + 128 + 10 + 2 * 1024);
        ok(ds.activation_bytes == MAXB * row, "%s: one device reports its activation bytes (%llu, "
           "%llu expected)", mname, (unsigned long long)ds.activation_bytes, (unsigned long long)(MAXB * row));
    }
    clt_trainer_destroy(t);
    p.parallel = CLT_PARALLEL_MODEL;
    p.micro_batches = 8;
    for (int k = CLT_PIPELINE_NAIVE; k <= CLT_PIPELINE_ZB; k++) {
        p.pipeline = (clt_pipeline_schedule)k;
        t = NULL;
        if (!ok_status(clt_trainer_create(&t, rt, two, &p), "%s: 2 stages, %s, 8 micro-batches", mname,
                       clt_pipeline_schedule_name(p.pipeline)))
            continue;
        for (int d = 0; d < 2; d++) {
            clt_runtime_device_stats(rt, d, &ds, 1);
            bytes[k][d] = ds.activation_bytes;
        }
        clt_trainer_destroy(t);
    }
    clt_runtime_device_stats(rt, 0, &ds, 0);
    ok(ds.activation_bytes == 0, "%s: destroying the trainer gives its activation bytes back", mname);
    /* device 1 (the last stage: fc3 256->128, relu, fc4 128->10; 2-row slots): per row, the
     * input 256, outputs 128 + 128 + 10, no saved state, two gradient buffers of 256 and the
     * 128 of gin... gin is on stage 0; gout (256 per row) has gslots of its own; the split
     * backward keeps fc3's and fc4's output gradients (128 + 10) per row of the slots */
    uint64_t row1 = 4 * (256 + 128 + 128 + 10 + 2 * 256 + 128 + 10);
    ok(bytes[CLT_PIPELINE_GPIPE][1] == 16 * row1 + 4 * 16 * 256 && bytes[CLT_PIPELINE_1F1B][1] == 4 * row1 + 4 * 2 * 2 * 256,
       "%s: the last stage holds 8 slots of 2 rows under gpipe (%llu bytes), 2 under 1f1b (%llu: a pair's weight "
       "gradients at once), with 8 and 2 of gout, and the output gradients kept for the weight gradients", mname, (unsigned long long)bytes[CLT_PIPELINE_GPIPE][1], (unsigned long long)bytes[CLT_PIPELINE_1F1B][1]);
    bool less = true;
    for (int d = 0; d < 2; d++) {
        diag("%s: device %d: naive %llu, gpipe %llu, 1f1b %llu activation bytes", mname, d,
             (unsigned long long)bytes[0][d], (unsigned long long)bytes[1][d], (unsigned long long)bytes[2][d]);
        less &= bytes[CLT_PIPELINE_NAIVE][d] <= bytes[CLT_PIPELINE_1F1B][d] &&
                bytes[CLT_PIPELINE_1F1B][d] < bytes[CLT_PIPELINE_GPIPE][d] && bytes[CLT_PIPELINE_NAIVE][d] > 0;
    }
    ok(less, "%s: 2 stages, 8 micro-batches: 0 < naive <= 1f1b < gpipe on each device", mname);
    /* zero bubble may hold one micro-batch more per stage than 1f1b; it fits in 1f1b's slots */
    ok(bytes[CLT_PIPELINE_ZB][0] == bytes[CLT_PIPELINE_1F1B][0] && bytes[CLT_PIPELINE_ZB][1] == bytes[CLT_PIPELINE_1F1B][1],
       "%s: 2 stages, 8 micro-batches: zb holds 1f1b's activation bytes on each device (%llu and %llu)", mname,
       (unsigned long long)bytes[CLT_PIPELINE_ZB][0], (unsigned long long)bytes[CLT_PIPELINE_ZB][1]);

    /* slots reused: 8 micro-batches through 2 and 1 slots (1f1b) and 1 (naive) */
    run_result ref, gpipe8, got;
    clt_train_params p1 = p;
    p1.parallel = CLT_PARALLEL_NONE;
    train(rt, plain, &p1, MAXB, &ref);
    p.pipeline = CLT_PIPELINE_GPIPE;
    train(rt, two, &p, MAXB, &gpipe8);
    compare(&ref, &gpipe8, MAXB, "2 stages, gpipe, 8 micro-batches");
    ok(same_bits(&ref, &gpipe8) && !memcmp(ref.pred, gpipe8.pred, MAXB * 10 * sizeof(float)),
       "%s: 2 stages, gpipe with 8 micro-batches gives one device's bits and predictions", mname);
    run_result f1b8;
    p.pipeline = CLT_PIPELINE_1F1B;
    train(rt, two, &p, MAXB, &f1b8);
    p.pipeline = CLT_PIPELINE_NAIVE;
    p.micro_batches = 4;
    train(rt, two, &p, MAXB, &got);
    ok(same_bits(&f1b8, &got) && !memcmp(got.pred, f1b8.pred, MAXB * 10 * sizeof(float)),
       "%s: 2 stages, micro-batches in reused slots: naive with 4 (1 slot) gives the bits and predictions of "
       "1f1b with 8 (4 and 2 slots, by pairs)", mname);
    result_free(&got), result_free(&f1b8);
    result_free(&ref), result_free(&gpipe8);
    clt_model_destroy(plain), clt_model_destroy(two);
    clt_runtime_destroy(rt);
}

/* Hybrid: two copies of the pipeline on four devices, the batch split between them, gradients
 * all-reduced between matching stages: still one device's training. */
static void check_hybrid(clt_context_mode mode)
{
    const char *mname = mode == CLT_CONTEXT_PER_PLATFORM ? "shared context" : "context per device";
    clt_runtime *rt = open_runtime(test_spec_n(4), mode, mname);
    if (!rt) return;
    clt_model *plain = seed_model(PLACE_NONE), *seed = seed_model(PLACE_SEED);
    clt_train_params p = clt_train_params_default();
    p.optim = clt_sgd(0.05f, 0.9f, 0.0f, 0);
    p.max_batch = MAXB;
    run_result ref;
    train(rt, plain, &p, MAXB, &ref);
    clt_train_params p1 = p;
    p.parallel = CLT_PARALLEL_MODEL;
    p.pipelines = 2;
    p.verify_replicas = 1;   /* the copies of every stage hold the same bits, on any vendors */
    check_against(rt, seed, p, CLT_PIPELINE_GPIPE, 2, MAXB, &ref, mname, "hybrid: 2 pipelines of the seed placement on 4 devices");
    check_against(rt, plain, p, CLT_PIPELINE_1F1B, 3, MAXB, &ref, mname, "hybrid: 2 pipelines partitioned automatically");
    check_against(rt, seed, p, CLT_PIPELINE_ZB, 4, MAXB, &ref, mname, "hybrid: 2 pipelines of the seed placement on 4 devices");
    result_free(&ref);
    check_zb_bits(rt, seed, p, 3, MAXB, mname, "hybrid: 2 pipelines of the seed placement on 4 devices");
    check_zb_bits(rt, plain, p, 1, MAXB, mname, "hybrid: 2 pipelines partitioned automatically");
    check_zb_bits(rt, plain, p, 6, MAXB, mname, "hybrid: 2 pipelines partitioned automatically");
    train(rt, plain, &p1, 1, &ref);
    check_against(rt, seed, p, CLT_PIPELINE_1F1B, 3, 1, &ref, mname, "hybrid: a batch of 1, so the second pipeline has nothing to do");
    result_free(&ref);
    clt_model_destroy(plain), clt_model_destroy(seed);
    clt_runtime_destroy(rt);
}

/* A device failing in the middle of a step stops the others at once (they wait on its
 * messages), the step reports that device's own error, nothing is updated, and the next step
 * works. */
static void check_failure(clt_context_mode mode)
{
    const char *mname = mode == CLT_CONTEXT_PER_PLATFORM ? "shared context" : "context per device";
    clt_runtime *rt = open_runtime(test_spec_n(2), mode, mname);
    clt_trainer *t;
    clt_model *m = seed_model(PLACE_SEED);
    clt_train_params p = clt_train_params_default();
    p.parallel = CLT_PARALLEL_MODEL;
    p.pipeline = CLT_PIPELINE_1F1B;
    p.micro_batches = 4;
    p.max_batch = MAXB;
    if (!rt) goto out_model;
    if (!ok_status(clt_trainer_create(&t, rt, m, &p), "1f1b trainer, %s", mname)) goto out_rt;
    float before[10], after[10], loss;
    clt_trainer_get_param(t, 6, "bias", before, 10);
    /* device 0 breaks on its 3rd instruction (device 1 then waits for its activations); then
     * device 1 on its 6th (device 0 waits for the gradients) */
    for (int dev = 0; dev < 2; dev++) {
        clt__fault_arm(rt, &(clt__fault){dev, 0, CLT__FAULT_ANY, dev ? 6 : 3, CL_DEVICE_NOT_AVAILABLE});
        double t0 = clt__now();
        ok_error(clt_trainer_step(t, xs[0], ys[0], MAXB, &loss), CLT_ERR_DEVICE_NOT_AVAILABLE, "CLT_FAULT",
                 "%s: device %d failing mid-step gives its own error, not the other's abort", mname, dev);
        ok(clt__now() - t0 < 10.0, "%s: the other device stops at once (%.2f s), not after the timeout", mname, clt__now() - t0);
    }
    clt_trainer_get_param(t, 6, "bias", after, 10);
    ok(!memcmp(before, after, sizeof before) && clt_trainer_step_count(t) == 0, "%s: nothing was updated", mname);
    clt__fault_arm(rt, NULL);
    ok_status(clt_trainer_step(t, xs[0], ys[0], MAXB, &loss), "%s: the next step works", mname);
    clt_trainer_get_param(t, 6, "bias", after, 10);
    ok(memcmp(before, after, sizeof before) && clt_trainer_step_count(t) == 1 && isfinite(loss),
       "%s: and updates (loss %.4f)", mname, loss);
    clt_trainer_destroy(t);
out_rt:
    clt_runtime_destroy(rt);
out_model:
    clt_model_destroy(m);
}

/* ---- errors ---------------------------------------------------------------------------------- */

static void check_errors(void)
{
    clt_runtime *rt;
    if (!ok_status(clt_runtime_create(&rt, test_spec_n(2)), "runtime of two devices")) return;
    clt_model *m = seed_model(PLACE_NONE);
    ok_status(clt_model_place(m, 0, 3, 0), "layers 0..3 on device 0");
    ok_error(clt_model_place(m, 2, 4, 1), CLT_ERR_INVALID_ARG, "layer 2 (linear) is already placed on device 0",
             "overlapping ranges are refused, naming the layer");
    ok(clt_model_placement(m, 4) == -1, "and change nothing (layer 4 is still unplaced)");
    ok_error(clt_model_place(m, 1, 1, 0), CLT_ERR_INVALID_ARG, "already placed", "a layer placed twice");
    ok_error(clt_model_place(m, 5, 7, 0), CLT_ERR_INVALID_ARG, "0..6", "a range past the last layer");
    ok_error(clt_model_place(m, 5, 4, 0), CLT_ERR_INVALID_ARG, "not a range", "a reversed range");
    ok_error(clt_model_place(m, -1, 4, 0), CLT_ERR_INVALID_ARG, "not a range", "a negative first layer");
    ok_error(clt_model_place(m, 4, 4, -2), CLT_ERR_INVALID_ARG, "device -2", "a negative device");
    ok_error(clt_model_place(NULL, 0, 0, 0), CLT_ERR_INVALID_ARG, "NULL", "a NULL model");
    ok(clt_model_placement(m, 3) == 0 && clt_model_placement(m, 9) == -1, "clt_model_placement reads it back");
    clt_train_params p = clt_train_params_default();
    p.parallel = CLT_PARALLEL_MODEL;
    p.max_batch = 8;
    clt_trainer *t = (clt_trainer *)1;
    ok_error(clt_trainer_create(&t, rt, m, &p), CLT_ERR_INVALID_ARG, "layer 4 (linear) is not placed",
             "a layer placed nowhere is refused at create");
    ok(t == NULL, "and leaves no trainer");
    ok_status(clt_model_place(m, 4, 6, 2), "layers 4..6 on device 2");
    ok_error(clt_trainer_create(&t, rt, m, &p), CLT_ERR_INVALID_ARG, "placed on device 2, but the runtime has 2 devices",
             "a device the runtime does not have");
    p.parallel = CLT_PARALLEL_NONE;
    ok_status(clt_trainer_create(&t, rt, m, &p), "without model parallelism the placement is ignored");
    clt_trainer_destroy(t);
    /* Stages may share a device (the seed's fc1 and fc4 stages both run on device 0), so the
     * stage count itself is not bounded by the device count; what is an error is a placement
     * whose stages need more devices than the runtime has. */
    clt_model *seven = seed_model(PLACE_SEVEN);
    p.parallel = CLT_PARALLEL_MODEL;
    t = (clt_trainer *)1;
    ok_error(clt_trainer_create(&t, rt, seven, &p), CLT_ERR_INVALID_ARG,
             "layer 2 (linear) is placed on device 2, but the runtime has 2 devices",
             "seven stages on seven devices, with a runtime of two, is refused at create");
    ok(t == NULL, "and leaves no trainer");
    clt_model_destroy(seven);
    p.parallel = CLT_PARALLEL_NONE;
    ok_status(clt_trainer_create(&t, rt, m, &p), "the runtime is still usable after the refusals");
    clt_trainer_destroy(t);
    clt_model_destroy(m);
    m = seed_model(PLACE_SEED);
    p.parallel = CLT_PARALLEL_MODEL;
    p.pipelines = 2;
    ok_error(clt_trainer_create(&t, rt, m, &p), CLT_ERR_INVALID_ARG, "2 pipelines of a placement on devices 0..1 need 4 devices",
             "two pipelines of a two-device placement on two devices");
    p.pipelines = 0;
    ok_error(clt_trainer_create(&t, rt, m, &p), CLT_ERR_INVALID_ARG, "pipelines 0", "zero pipelines");
    p.pipelines = 3;
    ok_error(clt_trainer_create(&t, rt, m, &p), CLT_ERR_INVALID_ARG, "1..2", "more pipelines than devices");
    p.pipelines = 1;
    p.parallel = CLT_PARALLEL_NONE;
    t = NULL;
    clt_trainer_destroy(t);
    clt_model_destroy(m);

    m = seed_model(PLACE_SEED);
    p.parallel = CLT_PARALLEL_MODEL;
    p.pipeline = (clt_pipeline_schedule)4;
    ok_error(clt_trainer_create(&t, rt, m, &p), CLT_ERR_INVALID_ARG, "unknown pipeline schedule 4", "a bad schedule value");
    p.pipeline = (clt_pipeline_schedule)-1;
    ok_error(clt_trainer_create(&t, rt, m, &p), CLT_ERR_INVALID_ARG, "unknown pipeline schedule", "a negative schedule value");
    p.pipeline = CLT_PIPELINE_GPIPE;
    p.micro_batches = 0;
    ok_error(clt_trainer_create(&t, rt, m, &p), CLT_ERR_INVALID_ARG, "micro_batches 0", "zero micro-batches");
    p.micro_batches = 70000;
    ok_error(clt_trainer_create(&t, rt, m, &p), CLT_ERR_INVALID_ARG, "1..65536", "too many micro-batches");
    clt_pipeline_schedule s = CLT_PIPELINE_NAIVE;
    ok(clt_pipeline_schedule_parse("GPipe", &s) == CLT_OK && s == CLT_PIPELINE_GPIPE &&
           clt_pipeline_schedule_parse("1f1b", &s) == CLT_OK && s == CLT_PIPELINE_1F1B &&
           clt_pipeline_schedule_parse("naive", &s) == CLT_OK && s == CLT_PIPELINE_NAIVE &&
           clt_pipeline_schedule_parse("ZB", &s) == CLT_OK && s == CLT_PIPELINE_ZB &&
           !strcmp(clt_pipeline_schedule_name(CLT_PIPELINE_ZB), "zb"),
       "schedule names parse, in any case");
    ok_error(clt_pipeline_schedule_parse("zigzag", &s), CLT_ERR_INVALID_ARG, "known: naive, gpipe, 1f1b, zb",
             "an unknown schedule name lists the known ones");
    ok_error(clt_pipeline_schedule_parse("gpip", &s), CLT_ERR_INVALID_ARG, "'gpip'", "a prefix is not a name");
    ok_error(clt_pipeline_schedule_parse(NULL, &s), CLT_ERR_INVALID_ARG, "NULL", "a NULL name");
    ok(!strcmp(clt_pipeline_schedule_name((clt_pipeline_schedule)7), "unknown"), "an unknown value has no name");
    clt_model_destroy(m);
    clt_runtime_destroy(rt);
}

int main(void)
{
    check_schedules();
    check_partition();
    tap_require_device();
    make_data();
    check_links(CLT_CONTEXT_PER_PLATFORM);
    check_links(CLT_CONTEXT_PER_DEVICE);
    check_equivalence(CLT_CONTEXT_PER_PLATFORM);
    check_equivalence(CLT_CONTEXT_PER_DEVICE);
    check_memory(CLT_CONTEXT_PER_PLATFORM);
    check_memory(CLT_CONTEXT_PER_DEVICE);
    check_hybrid(CLT_CONTEXT_PER_PLATFORM);
    check_hybrid(CLT_CONTEXT_PER_DEVICE);
    check_failure(CLT_CONTEXT_PER_PLATFORM);
    check_failure(CLT_CONTEXT_PER_DEVICE);
    check_errors();
    for (int i = 0; i < 4; i++) free(init_w[i]), free(init_b[i]);
    for (int s = 0; s < STEPS; s++) free(xs[s]);
    return tap_done();
}
