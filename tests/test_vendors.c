/* Every parallel mode on devices of several OpenCL implementations in one process, on a model
 * small enough for a simulator (Oclgrind interprets every kernel): data parallelism with equal,
 * weighted and measured splits, pipelines across platforms under every schedule (zero bubble
 * included) with hybrid copies, tensor groups and tensor x data groups, each with
 * verify_replicas on every step and against one device; and a checkpoint written on all of them
 * loaded on one.
 *
 * Its devices are the suite's (CLT_TEST_DEVICES, else every device). CI runs it on PoCL,
 * Oclgrind and rusticl at once (.ci/run's mixed stage); on one implementation it is the same
 * test on fewer kinds. A configuration of more devices than the spec names repeats one, never
 * Oclgrind's (it allows one device per process). */
#include "tap.h"

#include <stdint.h>
#include <unistd.h>


#define BATCH 12
#define STEPS 3
#define IN 12

static float xs[STEPS][BATCH * IN];
static int32_t ys[STEPS][BATCH];

/* A spec of n devices: the selection's own first, then repeats of those that may be opened
 * twice (never Oclgrind's: it runs one kernel at a time per process). NULL when they cannot
 * make n. */
static const char *spec_of(int n, char *buf)
{
    int e[TEST_MAX_DEVICES], k = 0, nd = test_ndev(), reps = 0;
    for (int i = 0; i < nd && k < n; i++) e[k++] = i;
    for (int i = 0; i < nd; i++) reps += !test_is_oclgrind(i);
    if (k < n && !reps) return NULL;
    for (int i = 0; k < n; i = (i + 1) % nd)
        if (!test_is_oclgrind(i)) e[k++] = i;
    return test_spec_of(buf, n, e);
}

/* 12 -> 16 -> GELU -> 8 -> LayerNorm -> 8 -> ReLU -> 8 -> GELU -> 4: a column/row-parallel pair
 * with GELU (erf: each implementation rounds its own), a replicated LayerNorm, a second pair, and
 * a replicated Linear (cltrain's own GEMM on CPU devices, CLBlast on the others: another order of
 * summation), so a tensor group of several vendors computes its replicated layers apart. */
static clt_model *small_mlp(void)
{
    clt_model *m = NULL;
    clt_model_create(&m, clt_shape1(IN));
    clt_model_add(m, clt_linear(16));
    clt_model_add(m, clt_gelu());
    clt_model_add(m, clt_linear(8));
    clt_model_add(m, clt_layernorm(1e-5f));
    clt_model_add(m, clt_linear(8));
    clt_model_add(m, clt_relu());
    clt_model_add(m, clt_linear(8));
    clt_model_add(m, clt_gelu());
    clt_model_add(m, clt_linear(4));
    return m;
}

typedef struct {
    float loss[STEPS];
    float *params;
    size_t np;
} run_result;

static clt_status read_params(clt_trainer *t, const clt_model *m, float *out)
{
    clt_status st = CLT_OK;
    size_t at = 0;
    for (int l = 0; l < clt_model_layer_count(m) && st == CLT_OK; l++) {
        const char *names[2] = {"weight", "bias"};
        for (int k = 0; k < 2 && st == CLT_OK; k++) {
            clt_shape s;
            if (clt_model_param_shape(m, l, names[k], &s) != CLT_OK) continue;
            size_t c = clt_shape_numel(s);
            st = clt_trainer_get_param(t, l, names[k], out + at, c);
            at += c;
        }
    }
    return st;
}

/* STEPS steps on spec; optional placement per layer (-1: none). Writes the checkpoint to
 * `save` when given. */
static clt_status train(const char *spec, clt_train_params p, const int *place, const char *save,
                        run_result *r)
{
    clt_runtime *rt = NULL;
    clt_trainer *t = NULL;
    clt_model *m = small_mlp();
    for (int l = 0; place && l < clt_model_layer_count(m); l++) clt_model_place(m, l, l, place[l]);
    r->np = clt_model_param_count(m);
    r->params = calloc(r->np, sizeof(float));
    p.max_batch = BATCH;
    clt_status st = clt_runtime_create(&rt, spec);
    if (st == CLT_OK) st = clt_trainer_create(&t, rt, m, &p);
    for (int s = 0; s < STEPS && st == CLT_OK; s++) st = clt_trainer_step(t, xs[s], ys[s], BATCH, &r->loss[s]);
    if (st == CLT_OK) st = read_params(t, m, r->params);
    if (st == CLT_OK && save) st = clt_trainer_save(t, save);
    clt_trainer_destroy(t);
    clt_runtime_destroy(rt);
    clt_model_destroy(m);
    return st;
}

static void compare(const run_result *ref, const run_result *got, const char *what)
{
    ok(tap_first_mismatch(got->loss, ref->loss, STEPS, 1e-5, 1e-5) < 0,
       "%s: losses (%d values within 1e-05 + 1e-05*|ref|)", what, STEPS);
    long i = tap_first_mismatch(got->params, ref->params, ref->np, 1e-5, 1e-5);
    if (i >= 0) diag("%s: parameter %ld is %.9g, one device %.9g", what, i, got->params[i], ref->params[i]);
    ok(i < 0, "%s: parameters (%zu values within 1e-05 + 1e-05*|ref|)", what, ref->np);
}

/* One configuration: trained on n devices, verify_replicas on, against the one-device run. */
static void check(int n, clt_train_params p, const int *place, const run_result *ref, const char *what)
{
    char buf[TEST_SPEC_CAP];
    const char *spec = spec_of(n, buf);
    if (!spec) {
        skip("the test devices cannot make this many without opening Oclgrind twice", "%s", what);
        return;
    }
    p.verify_replicas = 1;
    run_result r = {0};
    if (ok_status(train(spec, p, place, NULL, &r), "%s: %d steps on %s, replicas checked every step", what, STEPS, spec))
        compare(ref, &r, what);
    free(r.params);
}

int main(void)
{
    tap_require_device();
    uint64_t seed = 7;
    for (int s = 0; s < STEPS; s++)
        for (int i = 0; i < BATCH * IN; i++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            xs[s][i] = (float)((double)(seed >> 40) / (double)(1 << 24) * 2.0 - 1.0);
            if (i < BATCH) ys[s][i] = (int32_t)((seed >> 33) % 4);
        }
    const char *one = test_spec_one();
    diag("devices: %s (CLT_TEST_DEVICES, else all)", test_spec_all());

    clt_train_params base = clt_train_params_default();
    base.optim = clt_adam(0.01f);
    base.seed = 5;
    run_result ref = {0};
    if (!ok_status(train(one, base, NULL, NULL, &ref), "one device: %d Adam steps", STEPS)) return tap_done();

    clt_train_params dp = base;
    dp.parallel = CLT_PARALLEL_DATA;
    const float w121[3] = {1, 2, 1}, w301[3] = {3, 0, 1};
    check(3, dp, NULL, &ref, "data parallel, equal split");
    dp.split = CLT_SPLIT_WEIGHTS, dp.split_weights = w121;
    check(3, dp, NULL, &ref, "data parallel, weights 1:2:1");
    dp.split_weights = w301;
    check(3, dp, NULL, &ref, "data parallel, weights 3:0:1 (a device without rows)");
    dp.split = CLT_SPLIT_AUTO, dp.split_weights = NULL;
    check(3, dp, NULL, &ref, "data parallel, measured split");

    /* pipelines: three stages on three devices, then two copies of two stages */
    clt_train_params mp = base;
    mp.parallel = CLT_PARALLEL_MODEL;
    mp.micro_batches = 3;
    const int three[9] = {0, 0, 1, 1, 1, 1, 2, 2, 2}, two[9] = {0, 0, 0, 1, 1, 1, 1, 1, 1};
    const clt_pipeline_schedule sched[4] = {CLT_PIPELINE_NAIVE, CLT_PIPELINE_GPIPE, CLT_PIPELINE_1F1B, CLT_PIPELINE_ZB};
    const char *sname[4] = {"naive", "gpipe", "1f1b", "zb"};
    for (int k = 0; k < 4; k++) {
        char what[96];
        mp.pipeline = sched[k];
        snprintf(what, sizeof what, "3 stages on 3 devices, %s", sname[k]);
        check(3, mp, three, &ref, what);
    }
    mp.pipelines = 2, mp.pipeline = CLT_PIPELINE_1F1B;
    check(4, mp, two, &ref, "hybrid: 2 copies of a 2-stage 1f1b pipeline on 4 devices");
    mp.pipeline = CLT_PIPELINE_ZB;
    check(4, mp, two, &ref, "hybrid: 2 copies of a 2-stage zb pipeline on 4 devices");

    clt_train_params tp = base;
    tp.parallel = CLT_PARALLEL_TENSOR;
    check(3, tp, NULL, &ref, "tensor parallel, a group of 3");
    tp.tensor_group = 2;
    check(4, tp, NULL, &ref, "tensor x data: 2 groups of 2");

    /* a checkpoint written on every device, data parallel, loaded on one */
    char path[64];
    snprintf(path, sizeof path, "/tmp/clt-vendors-%d.ckpt", (int)getpid());
    const char *all = test_spec_all();
    dp.split = CLT_SPLIT_EQUAL;
    run_result saved = {0};
    if (ok_status(train(all, dp, NULL, path, &saved), "data parallel on %s, saved", all)) {
        clt_runtime *rt = NULL;
        clt_trainer *t = NULL;
        clt_model *m = small_mlp();
        float *got = calloc(saved.np, sizeof *got);
        clt_status st = clt_runtime_create(&rt, one);
        if (st == CLT_OK) st = clt_trainer_create(&t, rt, m, &base);
        if (st == CLT_OK) st = clt_trainer_load(t, path);
        if (st == CLT_OK) st = read_params(t, m, got);
        if (ok_status(st, "the checkpoint loaded on %s", one))
            ok(!memcmp(got, saved.params, saved.np * sizeof *got), "its parameters are the saved bits");
        free(got);
        clt_trainer_destroy(t);
        clt_runtime_destroy(rt);
        clt_model_destroy(m);
    }
    unlink(path);
    free(saved.params), free(ref.params);
    return tap_done();
}
