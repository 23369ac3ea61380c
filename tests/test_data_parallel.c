/* Data parallelism: training on 2 and 3 devices (equal, uneven and measured splits, shared and
 * separate contexts) gives the losses and parameters of one device training on the whole batch;
 * replicas stay bitwise identical; tiny batches; gradient accumulation equals one big step.
 * Tolerance: |got - ref| <= 1e-6 + 1e-5*|ref|. */
#include "internal.h"
#include "ref.h"
#include "tap.h"

#include <math.h>

#define ATOL 1e-6
#define RTOL 1e-5
#define STEPS 5
#define BATCH 16
#define NPARAMS (1024 * 512 + 512 + 512 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10)

static int with_dropout;   /* the seed MLP with dropout(0.2) after the first ReLU */

static clt_model *seed_mlp(void) { return ref_seed_mlp(with_dropout ? 0.2f : 0.0f); }

/* Inputs and labels of the STEPS batches (the same for every run). */
static float xs[STEPS][BATCH * 1024];
static int32_t ys[STEPS][BATCH];

static void make_data(void) { ref_seed_batches(xs[0], ys[0], STEPS, BATCH); }

typedef struct {
    float loss[STEPS];
    float *params;   /* flat, nparams */
    size_t counts[8];
} run_result;

/* Trains STEPS steps; `micro` > 1 splits each batch into that many accumulation steps. */
static clt_status train(const char *spec, clt_context_mode mode, clt_train_params p, int micro,
                        run_result *out)
{
    clt_runtime_options o = clt_runtime_options_default();
    o.devices = spec;
    o.context_mode = mode;
    clt_runtime *rt = NULL;
    clt_trainer *t = NULL;
    clt_model *m = seed_mlp();
    p.accumulation = micro;
    p.max_batch = BATCH;
    clt_status st = clt_runtime_create_ex(&rt, &o);
    if (st == CLT_OK) st = clt_trainer_create(&t, rt, m, &p);
    for (int s = 0; s < STEPS && st == CLT_OK; s++) {
        size_t b = BATCH / (size_t)micro;
        double sum = 0;
        for (int k = 0; k < micro && st == CLT_OK; k++) {
            float l;
            st = clt_trainer_step(t, xs[s] + (size_t)k * b * 1024, ys[s] + (size_t)k * b, b, &l);
            sum += l;
        }
        out->loss[s] = (float)(sum / micro);
    }
    if (st == CLT_OK) st = clt_trainer_split(t, out->counts, 8);
    size_t np = clt_model_param_count(m);
    out->params = malloc(np * sizeof(float));
    for (int l = 0; l < clt_model_layer_count(m) && st == CLT_OK; l++) {
        if (m->layers[l].desc.kind != CLT_LAYER_LINEAR) continue;
        clt_shape ws, bs;
        clt_model_param_shape(m, l, "weight", &ws);
        clt_model_param_shape(m, l, "bias", &bs);
        size_t off = m->layers[l].param_off;
        st = clt_trainer_get_param(t, l, "weight", out->params + off, clt_shape_numel(ws));
        if (st == CLT_OK)
            st = clt_trainer_get_param(t, l, "bias", out->params + off + clt_shape_numel(ws), clt_shape_numel(bs));
    }
    if (st != CLT_OK) diag("training on '%s': %s", spec, clt_last_error());
    clt_trainer_destroy(t);
    clt_model_destroy(m);
    clt_runtime_destroy(rt);
    return st;
}

static void compare_tol(const run_result *ref, const run_result *got, const char *what, double atol)
{
    ok_close(got->loss, ref->loss, STEPS, ATOL, RTOL, what);
    char w2[160];
    snprintf(w2, sizeof w2, "%s: parameters after %d steps", what, STEPS);
    ok_close(got->params, ref->params, NPARAMS, atol, RTOL, w2);
}

static void compare(const run_result *ref, const run_result *got, const char *what)
{
    compare_tol(ref, got, what, ATOL);
}

/* Each update's gradient buckets and how many overlapped backward. */
static int upd_buckets[16], upd_overlapped[16], nupd;

static void bucket_cb(const clt_step_info *info, void *user)
{
    (void)user;
    if (info->updated && nupd < 16) upd_buckets[nupd] = info->buckets, upd_overlapped[nupd++] = info->buckets_overlapped;
}

/* The progress callback keeps what it is told (the arrays are valid during the call only). */
static clt_step_info last_info[2];
static size_t last_samples[3];
static double last_busy[3];

static void progress_cb(const clt_step_info *info, void *user)
{
    int *calls = user;
    if (*calls < 2) last_info[*calls] = *info;
    for (int d = 0; d < info->devices && d < 3; d++) last_samples[d] = info->samples[d], last_busy[d] = info->busy[d];
    (*calls)++;
}

/* A small CNN (Conv2d, ReLU, Flatten, LayerNorm, Linear: every layer kind with parameters) for
 * CNN_STEPS updates of accumulation `micro` on `spec`: its losses and all its parameters. The
 * first backward of each update writes the gradients instead of adding to zeroed ones, and a
 * device given no rows zeroes them: both must give the update of one device. */
#define CNN_STEPS 3
#define CNN_BATCH 12
#define CNN_IN (2 * 6 * 6)
static clt_status train_cnn(const char *spec, clt_train_params p, int micro, const float *weights,
                            float *losses, float **params, size_t *np)
{
    clt_model *m = NULL;
    clt_status st = clt_model_create(&m, clt_shape3(2, 6, 6));
    clt_layer_desc layers[] = {clt_conv2d(3, 3, 1, 1), clt_relu(), clt_flatten(), clt_layernorm(1e-5f),
                               clt_linear(5)};
    for (size_t i = 0; i < sizeof layers / sizeof layers[0] && st == CLT_OK; i++) st = clt_model_add(m, layers[i]);
    static float x[CNN_STEPS][CNN_BATCH * CNN_IN];
    static int32_t y[CNN_STEPS][CNN_BATCH];
    unsigned seed = 7;
    for (int s = 0; s < CNN_STEPS; s++)
        for (int i = 0; i < CNN_BATCH * CNN_IN; i++) {
            seed = seed * 1664525u + 1013904223u;
            x[s][i] = (float)((seed >> 8) & 0xffff) / 32768.0f - 1.0f;
            if (i < CNN_BATCH) y[s][i] = (int32_t)((seed >> 20) % 5);
        }
    p.accumulation = micro;
    /* every step's shares were warmed up at create (max_batch rows and the equal share): PoCL
     * 3.1 can abort when a device compiles a new size while another runs (docs/DEVICES.md, Limits) */
    p.max_batch = CNN_BATCH / (size_t)micro;
    p.split_weights = weights;
    if (weights) p.split = CLT_SPLIT_WEIGHTS;
    clt_runtime *rt = NULL;
    clt_trainer *t = NULL;
    if (st == CLT_OK) st = clt_runtime_create(&rt, spec);
    if (st == CLT_OK) st = clt_trainer_create(&t, rt, m, &p);
    for (int s = 0; s < CNN_STEPS && st == CLT_OK; s++) {
        size_t b = CNN_BATCH / (size_t)micro;
        double sum = 0;
        for (int k = 0; k < micro && st == CLT_OK; k++) {
            float l;
            st = clt_trainer_step(t, x[s] + (size_t)k * b * CNN_IN, y[s] + (size_t)k * b, b, &l);
            sum += l;
        }
        losses[s] = (float)(sum / micro);
    }
    *np = m ? clt_model_param_count(m) : 0;
    *params = calloc(*np ? *np : 1, sizeof(float));
    for (int l = 0; m && l < clt_model_layer_count(m) && st == CLT_OK; l++) {
        clt_shape ws, bs;
        if (clt_model_param_shape(m, l, "weight", &ws) != CLT_OK) {
            clt__error_clear();
            continue;   /* no parameters */
        }
        clt_model_param_shape(m, l, "bias", &bs);
        size_t off = m->layers[l].param_off;
        st = clt_trainer_get_param(t, l, "weight", *params + off, clt_shape_numel(ws));
        if (st == CLT_OK)
            st = clt_trainer_get_param(t, l, "bias", *params + off + clt_shape_numel(ws), clt_shape_numel(bs));
    }
    if (st != CLT_OK) diag("CNN on '%s': %s", spec, clt_last_error());
    clt_trainer_destroy(t);
    clt_model_destroy(m);
    clt_runtime_destroy(rt);
    return st;
}

static void check_cnn(void)
{
    clt_train_params p = clt_train_params_default();
    p.optim = clt_sgd(0.1f, 0.9f, 0.0f, 0);
    p.seed = 5;
    float ref_loss[CNN_STEPS], loss[CNN_STEPS];
    float *ref = NULL, *got = NULL;
    size_t np = 0;
    if (!ok_status(train_cnn(test_spec_one(), p, 1, NULL, ref_loss, &ref, &np), "CNN (conv, layernorm, linear): one device")) {
        free(ref);
        return;
    }
    p.parallel = CLT_PARALLEL_DATA;
    const float w10[2] = {1, 0};
    struct { const char *spec; int micro; const float *w; const char *what; } cases[] = {
        {test_spec_n(3), 1, NULL, "CNN on 3 devices"},
        {test_spec_n(3), 2, NULL, "CNN on 3 devices, 2 accumulation steps"},
        {test_spec_n(2), 2, w10, "CNN on 2 devices, the second without rows, 2 accumulation steps"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        size_t n2 = 0;
        if (ok_status(train_cnn(cases[c].spec, p, cases[c].micro, cases[c].w, loss, &got, &n2), "%s",
                      cases[c].what) && n2 == np) {
            ok_close(loss, ref_loss, CNN_STEPS, ATOL, RTOL, cases[c].what);
            char what[160];
            snprintf(what, sizeof what, "%s: every parameter after %d steps", cases[c].what, CNN_STEPS);
            ok_close(got, ref, np, ATOL, RTOL, what);
        }
        free(got), got = NULL;
    }
    free(ref);
}

/* ---- a measured split that keeps moving ------------------------------------------------------
 * Two devices on the row clock (CLT_SLOW_CLOCK=rows: a measurement reads rows x factor x 1 ms),
 * their factors changed before every step and the split re-measured after every step
 * (rebalance_every 1), so nearly every step gives each device a share it has not run before:
 * the trainer must train as one device does on the whole batches, follow the factors, and
 * build, create or first launch nothing while both devices run (t->late_kernels, what PoCL
 * 3.1 aborts on: docs/DEVICES.md). The factors cycle twice: the second cycle's shares are all
 * known, so it makes nothing at all, not even a warm-up. */
#define MOVE_BATCH 128
#define MOVE_CYCLE 10
#define MOVE_STEPS (2 * MOVE_CYCLE + 1)
static const double move_factors[MOVE_CYCLE][2] = {
    {1, 2}, {1, 3}, {3, 1}, {1, 1.5}, {1, 7}, {2, 1.25}, {1, 4}, {5, 1}, {1.5, 1}, {1, 1}};
static float move_x[4][MOVE_BATCH * 1024];
static int32_t move_y[4][MOVE_BATCH];

typedef struct {
    float loss[MOVE_STEPS];
    float *params;
    size_t counts[MOVE_STEPS][2];
    unsigned long late, made_cycle, made_end;   /* late kernels; what the caches made by the
                                                 * end of the first cycle, and by the end */
} move_result;

/* Every parameter, flat (the model's numbering), from the trainer's strategy. */
static clt_status flat_params(clt_trainer *t, float *out)
{
    return out ? t->ops->param_io(t, 0, NPARAMS, out, 0, 0) : CLT_ERR_OUT_OF_HOST_MEMORY;
}

static unsigned long made_total(clt_runtime *rt)
{
    unsigned long sum = 0;
    clt__program_counts none = {0, 0, 0};
    for (int d = 0; d < clt_runtime_device_count(rt); d++) sum += clt__program_made_since(&rt->workers[d], none);
    return sum;
}

static clt_status train_moving(const char *spec, clt_train_params p, move_result *r)
{
    clt_runtime *rt = NULL;
    clt_trainer *t = NULL;
    clt_model *m = seed_mlp();
    p.max_batch = MOVE_BATCH;
    clt_status st = clt_runtime_create(&rt, spec);
    if (st == CLT_OK) st = clt_trainer_create(&t, rt, m, &p);
    for (int s = 0; s < MOVE_STEPS && st == CLT_OK; s++) {
        for (int d = 0; d < clt_runtime_device_count(rt) && d < 2; d++)
            rt->workers[d].slowdown = move_factors[s % MOVE_CYCLE][d];   /* the workers are idle */
        st = clt_trainer_step(t, move_x[s % 4], move_y[s % 4], MOVE_BATCH, &r->loss[s]);
        if (st == CLT_OK) st = clt_trainer_split(t, r->counts[s], 2);
        if (s == MOVE_CYCLE) r->made_cycle = made_total(rt);
    }
    if (st == CLT_OK) {
        r->late = t->late_kernels;
        r->made_end = made_total(rt);
        r->params = malloc(NPARAMS * sizeof(float));
        st = flat_params(t, r->params);
    }
    if (st != CLT_OK) diag("moving split on '%s': %s", spec, clt_last_error());
    clt_trainer_destroy(t);
    clt_model_destroy(m);
    clt_runtime_destroy(rt);
    return st;
}

static void check_moving_split(const clt_train_params *base)
{
    ref_seed_batches(move_x[0], move_y[0], 4, MOVE_BATCH);
    move_result one = {0}, two = {0};
    if (!ok_status(train_moving(test_spec_one(), *base, &one), "moving split: one device, %d steps of %d",
                   MOVE_STEPS, MOVE_BATCH))
        return;
    clt_train_params p = *base;
    p.parallel = CLT_PARALLEL_DATA;
    p.verify_replicas = 1;
    p.split = CLT_SPLIT_AUTO;
    p.rebalance_every = 1;
    setenv("CLT_SLOW_CLOCK", "rows", 1);
    clt_status st = train_moving(test_spec_n(2), p, &two);
    unsetenv("CLT_SLOW_CLOCK");
    if (ok_status(st, "moving split: 2 devices, re-measured after each of %d steps", MOVE_STEPS)) {
        /* step s ran the split measured in step s - 1: speeds 1/f, device 0's share the multiple
         * of the granule (128 / 32 = 4 rows) nearest to 128 f1 / (f0 + f1) */
        bool follows = two.counts[0][0] == 64 && two.counts[0][1] == 64;
        int moves = 0;
        for (int s = 1; s < MOVE_STEPS; s++) {
            const double *f = move_factors[(s - 1) % MOVE_CYCLE];
            size_t want = 4 * (size_t)floor(MOVE_BATCH * f[1] / (f[0] + f[1]) / 4 + 0.5);
            if (two.counts[s][0] != want || two.counts[s][1] != MOVE_BATCH - want) {
                follows = false;
                diag("step %d: split %zu/%zu, expected %zu/%zu", s, two.counts[s][0], two.counts[s][1],
                     want, MOVE_BATCH - want);
            }
            moves += two.counts[s][0] != two.counts[s - 1][0];
        }
        ok(follows && moves >= MOVE_STEPS - 2, "moving split: every step's split follows the last "
           "step's factors (%d changes in %d steps)", moves, MOVE_STEPS - 1);
        ok_close(two.loss, one.loss, MOVE_STEPS, ATOL, RTOL, "moving split: the losses of one device");
        ok_close(two.params, one.params, NPARAMS, ATOL, RTOL, "moving split: the parameters of one device");
        ok(two.late == 0, "moving split: no step built or first launched a kernel shape on either "
           "device (%lu did)", two.late);
        ok(two.made_cycle > 0 && two.made_end == two.made_cycle, "moving split: the second cycle, "
           "every share known, made nothing (%lu made by the first cycle's end, %lu by the end)",
           two.made_cycle, two.made_end);
    }
    free(one.params), free(two.params);
}

/* Shares first seen in the middle of an accumulation, and by a forward-only call: warmed up
 * with the accumulated gradients (and the last update's) kept. */
static void check_new_shares(const clt_train_params *base)
{
    float loss[2][4], out[2][7 * 10], *params[2] = {NULL, NULL};
    unsigned long late = 1;
    for (int k = 0; k < 2; k++) {
        clt_runtime *rt = NULL;
        clt_trainer *t = NULL;
        clt_model *m = seed_mlp();
        clt_train_params p = *base;
        p.accumulation = 2;
        p.max_batch = BATCH;
        if (k) p.parallel = CLT_PARALLEL_DATA, p.verify_replicas = 1;
        clt_status st = clt_runtime_create(&rt, k ? test_spec_n(2) : test_spec_one());
        if (st == CLT_OK) st = clt_trainer_create(&t, rt, m, &p);
        /* 16 rows, then 10 (shares of 5: new), then 16 and 16 */
        const size_t rows[4] = {BATCH, 10, BATCH, BATCH};
        for (int i = 0; i < 4 && st == CLT_OK; i++) {
            st = clt_trainer_step(t, xs[i], ys[i], rows[i], &loss[k][i]);
            if (st == CLT_OK && i == 1) st = clt_trainer_predict(t, xs[4], 7, out[k]);   /* 4 and 3 */
        }
        params[k] = malloc(NPARAMS * sizeof(float));
        if (st == CLT_OK) st = flat_params(t, params[k]);
        if (k && st == CLT_OK) late = t->late_kernels;
        ok_status(st, "new shares mid-accumulation and in predict: %s", k ? "2 devices" : "one device");
        clt_trainer_destroy(t);
        clt_model_destroy(m);
        clt_runtime_destroy(rt);
    }
    if (params[0] && params[1]) {
        ok_close(out[1], out[0], 7 * 10, ATOL, RTOL, "predict of 7 rows (shares of 4 and 3 warmed up "
                 "between two accumulated steps) gives one device's outputs");
        ok_close(loss[1], loss[0], 4, ATOL, RTOL, "new shares mid-accumulation: the losses of one device");
        ok_close(params[1], params[0], NPARAMS, ATOL, RTOL, "new shares mid-accumulation: the parameters "
                 "of one device (the accumulated gradients survived the warm-ups)");
        ok(late == 0, "new shares: nothing built or first launched during the steps (%lu)", late);
    }
    free(params[0]), free(params[1]);
}

int main(void)
{
    tap_require_device();
    make_data();

    clt_train_params base = clt_train_params_default();
    base.optim = clt_sgd(0.05f, 0.9f, 1e-4f, 0);
    base.seed = 3;
    run_result single = {0};
    if (!ok_status(train(test_spec_one(), CLT_CONTEXT_PER_PLATFORM, base, 1, &single), "one device: %d steps of seed MLP", STEPS))
        return tap_done();
    check_cnn();
    check_moving_split(&base);
    check_new_shares(&base);

    clt_train_params dp = base;
    dp.parallel = CLT_PARALLEL_DATA;
    dp.verify_replicas = 1;   /* every step also checks that replicas hold the same bits */
    /* no call below passes more than BATCH rows: a trainer's warm-up runs every share of
     * max_batch, which at the default 256 took a minute a trainer on rusticl's device */
    dp.max_batch = BATCH;
    const float w121[3] = {1, 2, 1}, w31[2] = {3, 1}, w110[3] = {1, 1, 0}, w011[3] = {0, 1, 1};
    struct {
        const char *spec;
        clt_context_mode mode;
        clt_split split;
        const float *weights;
        size_t want[3];
        const char *what;
    } cases[] = {
        {test_spec_n(2), CLT_CONTEXT_PER_PLATFORM, CLT_SPLIT_EQUAL, NULL, {8, 8, 0}, "2 devices, equal split"},
        {test_spec_n(3), CLT_CONTEXT_PER_PLATFORM, CLT_SPLIT_EQUAL, NULL, {6, 5, 5}, "3 devices, equal split (16 = 6+5+5)"},
        {test_spec_n(3), CLT_CONTEXT_PER_DEVICE, CLT_SPLIT_WEIGHTS, w121, {4, 8, 4}, "3 devices, weights 1:2:1, separate contexts"},
        {test_spec_n(2), CLT_CONTEXT_PER_DEVICE, CLT_SPLIT_WEIGHTS, w31, {12, 4, 0}, "2 devices, weights 3:1"},
        /* measured on the row clock (CLT_SLOW_CLOCK=rows) with device 1 slowed 3x: the speeds
         * are 3:1:3 whatever the machine's load, so 16 rows split 7/2/7 */
        {test_spec_n(3), CLT_CONTEXT_PER_PLATFORM, CLT_SPLIT_AUTO, NULL, {7, 2, 7}, "3 devices, auto split, device 1 slowed 3x"},
        /* A rank without rows zeroes its gradients and runs no backward: its reduce-scatters on
         * the second queue must still wait for the zeroing (devices with concurrent queues). */
        {test_spec_n(3), CLT_CONTEXT_PER_PLATFORM, CLT_SPLIT_WEIGHTS, w110, {8, 8, 0}, "3 devices, weights 1:1:0 (the last without rows)"},
        {test_spec_n(3), CLT_CONTEXT_PER_DEVICE, CLT_SPLIT_WEIGHTS, w011, {0, 8, 8}, "3 devices, weights 0:1:1 (the first without rows)"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        clt_train_params p = dp;
        p.split = cases[c].split;
        p.split_weights = cases[c].weights;
        run_result r = {0};
        if (p.split == CLT_SPLIT_AUTO) setenv("CLT_SLOW_DEVICES", "1:3", 1), setenv("CLT_SLOW_CLOCK", "rows", 1);
        if (ok_status(train(cases[c].spec, cases[c].mode, p, 1, &r), "%s: %d steps", cases[c].what, STEPS)) {
            compare(&single, &r, cases[c].what);
            ok(r.counts[0] == cases[c].want[0] && r.counts[1] == cases[c].want[1] && r.counts[2] == cases[c].want[2],
               "%s: the split is %zu/%zu/%zu", cases[c].what, r.counts[0], r.counts[1], r.counts[2]);
        }
        unsetenv("CLT_SLOW_DEVICES"), unsetenv("CLT_SLOW_CLOCK");
        free(r.params);
    }

    /* Adam keeps a shard of its state per device; clipping needs the global norm. */
    clt_train_params adam = base;
    adam.optim = clt_adam(1e-3f);
    adam.clip_norm = 0.5f;
    run_result a1 = {0}, a3 = {0};
    ok_status(train(test_spec_one(), CLT_CONTEXT_PER_PLATFORM, adam, 1, &a1), "Adam with clipping on one device");
    adam.parallel = CLT_PARALLEL_DATA;
    adam.verify_replicas = 1;
    if (ok_status(train(test_spec_n(3), CLT_CONTEXT_PER_PLATFORM, adam, 1, &a3),
                  "Adam with clipping on 3 devices"))
        /* Adam divides by sqrt(v): where a gradient is nearly zero, rounding differences of the
         * split batch (summed in another order) move the update by up to lr. The parameters are
         * held to 1e-5 absolute here (1% of lr), the losses to the usual tolerance. */
        compare_tol(&a1, &a3, "Adam + clipping, 3 devices", 1e-5);
    free(a1.params), free(a3.params);

    /* Accumulation: 2 micro-steps of 8 update like one step of 16, on one and on 3 devices. */
    run_result acc1 = {0}, acc3 = {0};
    if (ok_status(train(test_spec_one(), CLT_CONTEXT_PER_PLATFORM, base, 2, &acc1), "one device, 2 accumulated micro-steps"))
        compare(&single, &acc1, "accumulation on one device");
    if (ok_status(train(test_spec_n(3), CLT_CONTEXT_PER_PLATFORM, dp, 2, &acc3), "3 devices, 2 accumulated micro-steps"))
        compare(&single, &acc3, "accumulation on 3 devices");
    free(acc1.params), free(acc3.params);

    /* Dropout: each sample draws its mask by its place in the whole batch, so a split batch
     * trains like the whole one. */
    with_dropout = 1;
    run_result d1 = {0}, d3 = {0};
    ok_status(train(test_spec_one(), CLT_CONTEXT_PER_PLATFORM, base, 1, &d1), "seed MLP with dropout on one device");
    clt_train_params dpw = dp;
    dpw.split = CLT_SPLIT_WEIGHTS;
    dpw.split_weights = w121;
    if (ok_status(train(test_spec_n(3), CLT_CONTEXT_PER_PLATFORM, dpw, 1, &d3), "with dropout on 3 devices, split 1:2:1"))
        compare(&d1, &d3, "dropout, 3 devices");
    free(d1.params), free(d3.params);
    with_dropout = 0;

    /* Batches of 1 and 2 on 3 devices: some devices get no sample and still take part. */
    {
        clt_runtime *rt;
        clt_model *m = seed_mlp();
        clt_train_params p = dp;
        p.max_batch = 4;
        clt_trainer *t = NULL;
        if (ok_status(clt_runtime_create(&rt, test_spec_n(3)), "runtime of 3 devices")) {
            ok_status(clt_trainer_create(&t, rt, m, &p), "data-parallel trainer on 3 devices");
            float l;
            ok_status(clt_trainer_step(t, xs[0], ys[0], 1, &l), "a batch of 1 on 3 devices");
            size_t counts[3];
            clt_trainer_split(t, counts, 3);
            ok(counts[0] == 1 && counts[1] == 0 && counts[2] == 0, "the one sample goes to device 0");
            ok_status(clt_trainer_step(t, xs[0], ys[0], 2, &l), "a batch of 2 on 3 devices");
            float out[4 * 10];
            ok_status(clt_trainer_predict(t, xs[1], 4, out), "predict 4 samples on 3 devices");
            float acc;
            ok_status(clt_trainer_evaluate(t, xs[1], ys[1], BATCH, NULL, &acc), "evaluate on 3 devices");
            ok_error(clt_trainer_split(t, NULL, 3), CLT_ERR_INVALID_ARG, "counts is NULL", "split into NULL");
            clt_trainer_destroy(t);
            clt_runtime_destroy(rt);
        }
        clt_model_destroy(m);
    }

    /* Progress: each step reports the split and how busy every device was. */
    {
        clt_runtime *rt;
        clt_model *m = seed_mlp();
        clt_train_params p = dp;
        p.split = CLT_SPLIT_WEIGHTS;
        p.split_weights = w121;
        p.accumulation = 2;
        clt_trainer *t = NULL;
        if (ok_status(clt_runtime_create(&rt, test_spec_n(3)), "runtime for the progress check")) {
            ok_status(clt_trainer_create(&t, rt, m, &p), "trainer reporting progress");
            ok_error(clt_trainer_set_progress(NULL, NULL, NULL), CLT_ERR_INVALID_ARG, "NULL", "progress on NULL");
            int calls = 0;
            ok_status(clt_trainer_set_progress(t, progress_cb, &calls), "set a progress callback");
            clt_trainer_step(t, xs[0], ys[0], BATCH, NULL);
            clt_trainer_step(t, xs[1], ys[1], BATCH, NULL);
            ok(calls == 2 && last_info[0].updated == 0 && last_info[1].updated == 1 && last_info[1].step == 1,
               "two calls reported: the first accumulated, the second updated (step 1)");
            ok(last_info[1].devices == 3 && last_samples[0] == 4 && last_samples[1] == 8 && last_samples[2] == 4,
               "the report gives the 4/8/4 split");
            bool busy_ok = true;
            for (int d = 0; d < 3; d++) busy_ok &= last_busy[d] > 0.0 && last_busy[d] <= 1.0;
            ok(busy_ok && last_info[1].seconds > 0 && last_info[1].batch == BATCH && isfinite(last_info[1].loss),
               "busy fractions in (0, 1], a duration, the batch and a loss (%.2f %.2f %.2f)",
               last_busy[0], last_busy[1], last_busy[2]);
            clt_trainer_set_progress(t, NULL, NULL);
            clt_trainer_step(t, xs[2], ys[2], BATCH, NULL);
            ok(calls == 2, "no report once the callback is removed");
            clt_trainer_destroy(t);
            clt_runtime_destroy(rt);
        }
        clt_model_destroy(m);
    }

    /* Gradient buckets: any bucket size gives the same bits (each bucket's segment r is its part
     * of shard r, summed in the same ring order), on 3 devices with an uneven split, a device
     * with no samples, and accumulation; the report says how many buckets there were. */
    {
        const size_t sizes[] = {0, 4, (size_t)512 << 10, (size_t)1 << 30};
        const float w310[3] = {3, 1, 0};
        run_result ref = {0}, got = {0};
        clt_train_params p = dp;
        p.split = CLT_SPLIT_WEIGHTS;
        p.split_weights = w121;
        for (int variant = 0; variant < 3; variant++) {
            const char *what = variant == 0 ? "split 1:2:1" : variant == 1 ? "split 3:1:0" : "split 1:2:1, accumulation 2";
            if (variant == 1) p.split_weights = w310;
            if (variant == 2) p.split_weights = w121;
            int micro = variant == 2 ? 2 : 1;
            for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
                p.bucket_bytes = sizes[k];
                run_result *r = k == 0 ? &ref : &got;
                memset(r, 0, sizeof *r);
                if (!ok_status(train(test_spec_n(3), CLT_CONTEXT_PER_PLATFORM, p, micro, r),
                               "3 devices, %s, buckets of %zu bytes", what, sizes[k]))
                    continue;
                if (k == 0) {
                    compare(&single, r, what);
                    continue;
                }
                ok(!memcmp(got.loss, ref.loss, sizeof ref.loss) &&
                       !memcmp(got.params, ref.params, NPARAMS * sizeof(float)),
                   "%s: buckets of %zu bytes give the bits of one bucket", what, sizes[k]);
                free(got.params);
            }
            free(ref.params);
        }
    }
    {
        clt_runtime *rt;
        clt_model *m = seed_mlp();
        clt_train_params p = dp;
        clt_trainer *t = NULL;
        if (ok_status(clt_runtime_create(&rt, test_spec_n(3)), "runtime for the bucket report")) {
            /* the seed MLP's layers hold 524800, 131328, 32896 and 1290 parameters */
            const struct { size_t bytes; int want; } b[] = {
                {0, 1}, {4, 4}, {(size_t)512 << 10, 2}, {(size_t)1 << 30, 1}, {80000, 3}};
            for (size_t k = 0; k < sizeof b / sizeof b[0]; k++) {
                p.bucket_bytes = b[k].bytes;
                int calls = 0;
                if (!ok_status(clt_trainer_create(&t, rt, m, &p), "trainer with buckets of %zu bytes", b[k].bytes))
                    continue;
                clt_trainer_set_progress(t, progress_cb, &calls);
                clt_trainer_step(t, xs[0], ys[0], BATCH, NULL);
                ok(calls == 1 && last_info[0].buckets == b[k].want &&
                       last_info[0].buckets_overlapped >= 0 && last_info[0].buckets_overlapped < b[k].want,
                   "buckets of %zu bytes: %d bucket(s) reported (%d overlapped backward)", b[k].bytes,
                   last_info[0].buckets, last_info[0].buckets_overlapped);
                clt_trainer_destroy(t);
            }
            /* Four updates in a row without overlap: one bucket from then on (the same bits). */
            p.bucket_bytes = 4;
            nupd = 0;
            if (ok_status(clt_trainer_create(&t, rt, m, &p), "trainer with a bucket per layer")) {
                clt_trainer_set_progress(t, bucket_cb, NULL);
                for (int k = 0; k < 8; k++) clt_trainer_step(t, xs[k % STEPS], ys[k % STEPS], BATCH, NULL);
                bool rule = nupd == 8;
                int run = 0;
                for (int k = 0; k < nupd; k++) {
                    int want = run >= 4 ? 1 : 4;
                    if (upd_buckets[k] != want) rule = false, diag("update %d: %d buckets, expected %d", k + 1, upd_buckets[k], want);
                    if (want == 4) run = upd_overlapped[k] ? 0 : run + 1;
                }
                ok(rule, "4 buckets until 4 updates in a row overlapped nothing, then 1 (overlapped: %d %d %d %d %d %d %d %d)",
                   upd_overlapped[0], upd_overlapped[1], upd_overlapped[2], upd_overlapped[3], upd_overlapped[4],
                   upd_overlapped[5], upd_overlapped[6], upd_overlapped[7]);
                clt_trainer_destroy(t);
            }
            p.parallel = CLT_PARALLEL_NONE;
            int calls = 0;
            if (ok_status(clt_trainer_create(&t, rt, m, &p), "one-device trainer")) {
                clt_trainer_set_progress(t, progress_cb, &calls);
                clt_trainer_step(t, xs[0], ys[0], BATCH, NULL);
                ok(calls == 1 && last_info[0].buckets == 0, "one device reports no buckets");
                clt_trainer_destroy(t);
            }
            clt_runtime_destroy(rt);
        }
        clt_model_destroy(m);
    }

    /* Bad split settings. */
    {
        clt_runtime *rt;
        clt_model *m = seed_mlp();
        clt_trainer *t = NULL;
        if (clt_runtime_create(&rt, test_spec_n(2)) == CLT_OK) {
            clt_train_params p = dp;
            p.split = CLT_SPLIT_WEIGHTS;
            ok_error(clt_trainer_create(&t, rt, m, &p), CLT_ERR_INVALID_ARG, "split_weights", "weights missing");
            const float neg[2] = {1, -1}, zero[2] = {0, 0};
            p.split_weights = neg;
            ok_error(clt_trainer_create(&t, rt, m, &p), CLT_ERR_INVALID_ARG, "split weight 1", "a negative weight");
            p.split_weights = zero;
            ok_error(clt_trainer_create(&t, rt, m, &p), CLT_ERR_INVALID_ARG, "add up to 0", "weights adding up to 0");
            p = dp;
            p.accumulation = 0;
            ok_error(clt_trainer_create(&t, rt, m, &p), CLT_ERR_INVALID_ARG, "accumulation", "accumulation 0");
            p = dp;
            p.split = (clt_split)9;
            ok_error(clt_trainer_create(&t, rt, m, &p), CLT_ERR_INVALID_ARG, "split", "an unknown split");
            clt_runtime_destroy(rt);
        }
        clt_model_destroy(m);
    }
    free(single.params);
    return tap_done();
}
