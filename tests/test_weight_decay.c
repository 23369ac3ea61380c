/* Weight decay on matrices only (clt_train_params.decay = CLT_DECAY_MATRICES) against PyTorch's
 * param groups as nanoGPT's configure_optimizers makes them, for AdamW, Adam and SGD, in every
 * parallel mode; a GPT's embeddings decayed and its LayerNorms not; CLT_DECAY_ALL gives the
 * bits and the launches of a caller without the field; an unknown decay is refused. */
#include "internal.h"
#include "ref.h"
#include "tap.h"

#include <math.h>

/* Linear(5, 6), LayerNorm(6), Linear(6, 6), ReLU, Linear(6, 4), as tests/gen_reference.py's
 * weight_decay(): 118 parameters in 8 tensors (Linear weights of rank 2; biases and LayerNorm
 * of rank 1), so 3 data-parallel shards of 40 start and end inside tensors and the last holds
 * 2 elements of padding. */
enum { BATCH = 7, STEPS = 4 };
static const int param_layers[] = {0, 1, 2, 4};

static clt_model *decay_model(clt_parallel mode)
{
    clt_model *m;
    clt_model_create(&m, clt_shape1(5));
    clt_model_add(m, clt_linear(6));
    clt_model_add(m, clt_layernorm(1e-5f));
    clt_model_add(m, clt_linear(6));
    clt_model_add(m, clt_relu());
    clt_model_add(m, clt_linear(4));
    if (mode == CLT_PARALLEL_MODEL) {   /* three stages, one a device */
        clt_model_place(m, 0, 1, 0);
        clt_model_place(m, 2, 3, 1);
        clt_model_place(m, 4, 4, 2);
    }
    return m;
}

/* The parameter `name` of layer l, as the reference names it ("init.2.weight"). */
static const ref_entry *param_ref(const ref_file *f, const char *when, int l, const char *name)
{
    char key[48];
    snprintf(key, sizeof key, "%s.%d.%s", when, l, name);
    return ref_get(f, key);
}

/* Sets the reference's initial parameters, then trains its 4 batches; *losses_ok says whether
 * each step's loss is PyTorch's. */
static clt_status train_ref(clt_trainer *t, const ref_file *f, bool *losses_ok)
{
    static const char *const names[] = {"weight", "bias"};
    clt_status st = CLT_OK;
    for (size_t i = 0; i < sizeof param_layers / sizeof *param_layers && st == CLT_OK; i++)
        for (int k = 0; k < 2 && st == CLT_OK; k++) {
            const ref_entry *e = param_ref(f, "init", param_layers[i], names[k]);
            st = e ? clt_trainer_set_param(t, param_layers[i], names[k], e->data, e->n) : CLT_ERR_FORMAT;
        }
    *losses_ok = true;
    for (int s = 0; s < STEPS && st == CLT_OK; s++) {
        char key[16];
        snprintf(key, sizeof key, "x%d", s);
        const ref_entry *x = ref_get(f, key);
        snprintf(key, sizeof key, "labels%d", s);
        const ref_entry *lab = ref_get(f, key);
        snprintf(key, sizeof key, "loss%d", s);
        const ref_entry *want = ref_get(f, key);
        if (!x || !lab || !want) return CLT_ERR_FORMAT;
        int32_t labels[BATCH];
        for (int i = 0; i < BATCH; i++) labels[i] = (int32_t)lab->data[i];
        float loss;
        st = clt_trainer_step(t, x->data, labels, BATCH, &loss);
        if (st == CLT_OK && tap_first_mismatch(&loss, want->data, 1, 1e-6, 1e-5) >= 0) {
            diag("step %d: loss %.9g, PyTorch %.9g", s + 1, loss, want->data[0]);
            *losses_ok = false;
        }
    }
    return st;
}

/* Every parameter of t against the reference's final ones, 1e-6 + 1e-5*|ref|. */
static void check_final(clt_trainer *t, const ref_file *f, const char *what)
{
    static const char *const names[] = {"weight", "bias"};
    for (size_t i = 0; i < sizeof param_layers / sizeof *param_layers; i++)
        for (int k = 0; k < 2; k++) {
            int l = param_layers[i];
            const ref_entry *e = param_ref(f, "final", l, names[k]);
            float got[64];
            char msg[256];
            snprintf(msg, sizeof msg, "%s: layer %d's %s after %d steps is PyTorch's", what, l, names[k], STEPS);
            if (!e || e->n > 64 || clt_trainer_get_param(t, l, names[k], got, e->n) != CLT_OK) {
                ok(0, "%s (%s)", msg, clt_last_error());
                continue;
            }
            ok_close(got, e->data, e->n, 1e-6, 1e-5, msg);
        }
}

typedef struct {
    const char *ref;        /* tests/data/decay_REF.ref */
    clt_optimizer optim;
} optim_case;

typedef struct {
    clt_parallel mode;
    int devices;
    int elastic;
    const char *what;
} mode_case;

static void check_against_torch(const optim_case *oc, const mode_case *mc)
{
    char file[48], what[128];
    snprintf(file, sizeof file, "decay_%s", oc->ref);
    snprintf(what, sizeof what, "%s, matrices decayed, %s", oc->ref, mc->what);
    if (mc->devices > 1 && !test_parallel_ok(mc->devices)) {
        skip(TEST_NO_PARALLEL, "%s", what);
        return;
    }
    ref_file f;
    if (!ok(ref_load(&f, file) == 0, "%s reference loads", file)) return;
    clt_model *m = decay_model(mc->mode);
    clt_runtime *rt = NULL;
    clt_trainer *t = NULL;
    clt_train_params p = clt_train_params_default();
    p.optim = oc->optim;
    p.decay = CLT_DECAY_MATRICES;
    p.max_batch = BATCH;
    p.parallel = mc->mode;
    p.elastic = mc->elastic;
    bool losses_ok = false;
    if (ok_status(clt_runtime_create(&rt, test_spec_n(mc->devices)), "%s: runtime", what) &&
        ok_status(clt_trainer_create(&t, rt, m, &p), "%s: trainer", what) &&
        ok_status(train_ref(t, &f, &losses_ok), "%s: %d steps", what, STEPS)) {
        ok(losses_ok, "%s: the %d losses are PyTorch's", what, STEPS);
        check_final(t, &f, what);
        if (mc->mode == CLT_PARALLEL_TENSOR) {   /* the decay runs split slices, not only whole layers */
            clt_slice_kind k2 = CLT_SLICE_REPLICATED, k4 = CLT_SLICE_REPLICATED;
            int first, n2 = 0, n4 = 0;
            bool got = clt_trainer_tensor_slice(t, 2, 1, &k2, &first, &n2) == CLT_OK &&
                       clt_trainer_tensor_slice(t, 4, 1, &k4, &first, &n4) == CLT_OK;
            ok(got && k2 == CLT_SLICE_COLUMN && n2 == 2 && k4 == CLT_SLICE_ROW && n4 == 2,
               "%s: device 1 holds 2 of layer 2's 6 rows and 2 of layer 4's 6 columns (kinds %d %d, "
               "counts %d %d)", what, (int)k2, (int)k4, n2, n4);
        }
    }
    clt_trainer_destroy(t);
    clt_runtime_destroy(rt);
    clt_model_destroy(m);
    ref_free(&f);
}

/* Every parameter of t into out (the model's flat layout). */
static clt_status read_all(clt_trainer *t, const clt_model *m, float *out)
{
    clt_status st = CLT_OK;
    for (int l = 0; l < clt_model_layer_count(m) && st == CLT_OK; l++)
        for (int k = 0; k < 2 && st == CLT_OK; k++) {
            size_t off, n;
            if (clt__model_find_param(m, l, k ? "bias" : "weight", &off, &n) == CLT_OK)
                st = clt_trainer_get_param(t, l, k ? "bias" : "weight", out + off, n);
        }
    return st;
}

/* "N device(s)[, data parallel]" after prefix into what (64 bytes); false, with a TAP skip, where
 * those devices cannot run kernels at once. */
static bool devices_label(char *what, const char *prefix, int devices)
{
    snprintf(what, 64, "%s%d device%s", prefix, devices, devices > 1 ? "s, data parallel" : "");
    if (devices > 1 && !test_parallel_ok(devices)) {
        skip(TEST_NO_PARALLEL, "%s", what);
        return false;
    }
    return true;
}

/* Trains 4 steps of AdamW (weight decay 0.1) from the trainer's own initialisation on p's
 * devices; writes every parameter (118) and the kernels launched by the steps. */
static clt_status train_bits(clt_runtime *rt, const clt_train_params *p, float *params, unsigned long long *kernels)
{
    clt_model *m = decay_model(p->parallel);
    clt_trainer *t = NULL;
    clt_status st = clt_trainer_create(&t, rt, m, p);
    ref_rng rng = {99};
    float x[BATCH * 5];
    int32_t y[BATCH];
    clt_device_stats s;
    if (st == CLT_OK) st = clt_runtime_device_stats(rt, 0, &s, 1);   /* reset: the steps' kernels only */
    for (int k = 0; k < STEPS && st == CLT_OK; k++) {
        ref_fill(&rng, x, BATCH * 5, 1.0);
        for (int i = 0; i < BATCH; i++) y[i] = (int32_t)((ref_next(&rng) >> 33) % 4);
        st = clt_trainer_step(t, x, y, BATCH, NULL);
    }
    if (st == CLT_OK) st = clt_runtime_device_stats(rt, 0, &s, 0);
    if (st == CLT_OK) *kernels = (unsigned long long)s.kernels;
    if (st == CLT_OK) st = read_all(t, m, params);
    clt_trainer_destroy(t);
    clt_model_destroy(m);
    return st;
}

/* CLT_DECAY_ALL is today's behaviour: the same bits and the same launches as a caller built
 * before the field existed (struct_size of the first version, the field past it holding
 * MATRICES, which must not be read); MATRICES launches once more per run of tensors. */
static void check_all_unchanged(int devices)
{
    char what[64];
    if (!devices_label(what, "", devices)) return;
    clt_runtime_options o = clt_runtime_options_default();
    o.devices = test_spec_n(devices);
    o.profiling = 1;
    clt_runtime *rt;
    if (!ok_status(clt_runtime_create_ex(&rt, &o), "profiled runtime of %s", what)) return;
    clt_train_params all = clt_train_params_default();
    all.optim = clt_adamw(0.02f, 0.1f);
    all.max_batch = BATCH;
    all.parallel = devices > 1 ? CLT_PARALLEL_DATA : CLT_PARALLEL_NONE;
    all.decay = CLT_DECAY_ALL;
    clt_train_params old = all, matrices = all;
    old.struct_size = CLT__TRAIN_PARAMS_V1;
    old.decay = CLT_DECAY_MATRICES;
    matrices.decay = CLT_DECAY_MATRICES;
    float pa[118], po[118], pm[118];
    unsigned long long ka = 0, ko = 0, km = 0;
    if (ok_status(train_bits(rt, &all, pa, &ka), "%s: AdamW with CLT_DECAY_ALL", what) &&
        ok_status(train_bits(rt, &old, po, &ko), "%s: AdamW from a first-version clt_train_params", what) &&
        ok_status(train_bits(rt, &matrices, pm, &km), "%s: AdamW with CLT_DECAY_MATRICES", what)) {
        ok(!memcmp(pa, po, sizeof pa), "%s: CLT_DECAY_ALL gives the bits of a caller without the field", what);
        ok(ka == ko, "%s: and the same launches (%llu, %llu)", what, ka, ko);
        /* one device: W1 | b1 LN.w LN.b | W2 | b2 | W3 | b3, 6 runs, 5 launches more a step; on
         * device 0 of three, shard [0, 40): W1 | b1 LN.w, 1 more */
        unsigned long long more = devices > 1 ? 1 : 5;
        ok(km == ka + more * STEPS, "%s: CLT_DECAY_MATRICES launches once a run of equal decay "
           "(%llu kernels, %llu with every tensor decayed)", what, km, ka);
        ok(memcmp(pa, pm, sizeof pa) != 0, "%s: and its parameters differ from CLT_DECAY_ALL's", what);
    }
    clt_runtime_destroy(rt);
}

/* A GPT's layer kinds fall out of the rank rule: after one AdamW step (lr 0.01, weight decay 0.1)
 * the token and position embeddings and the Linear weights (rank 2) hold CLT_DECAY_ALL's bits,
 * and each rank-1 tensor (biases, layernorm_last) is CLT_DECAY_ALL's plus the decoupled decay
 * it skipped, w0 * lr * wd (the LayerNorm weights start at 1, so this is not 0 for all). */
static void check_gpt(int devices)
{
    char what[64];
    if (!devices_label(what, "GPT on ", devices)) return;
    clt_gpt_config g = clt_gpt_config_default();
    g.vocab = 11, g.block = 6, g.layers = 1, g.heads = 2, g.embd = 8;
    clt_model *m;
    clt_runtime *rt;
    if (!ok_status(clt_model_create_gpt(&m, &g), "%s: the model", what)) return;
    if (!ok_status(clt_runtime_create(&rt, test_spec_n(devices)), "%s: runtime", what)) {
        clt_model_destroy(m);
        return;
    }
    enum { N = 3 * 6, CAP = 4096 };
    int32_t x[N], y[N];
    for (int k = 0; k < N; k++) x[k] = (k * 7 + 3) % 11, y[k] = (x[k] + 1) % 11;
    clt_train_params p = clt_train_params_default();
    p.optim = clt_adamw(0.01f, 0.1f);
    p.max_batch = 3;
    p.parallel = devices > 1 ? CLT_PARALLEL_DATA : CLT_PARALLEL_NONE;
    clt_trainer *t[2] = {NULL, NULL};
    bool good = true;
    for (int k = 0; k < 2 && good; k++) {
        p.decay = k ? CLT_DECAY_MATRICES : CLT_DECAY_ALL;
        good = clt_trainer_create(&t[k], rt, m, &p) == CLT_OK;
    }
    /* every tensor in the flat layout: before the step, then after it without and with decay */
    size_t total = clt_model_param_count(m);
    float *w0 = malloc(CAP * sizeof *w0), *wa = malloc(CAP * sizeof *wa), *wm = malloc(CAP * sizeof *wm);
    good = good && total <= CAP && read_all(t[0], m, w0) == CLT_OK;
    for (int i = 0; i < 2 && good; i++) good = clt_trainer_step_tokens(t[i], x, y, 3, NULL) == CLT_OK;
    good = good && read_all(t[0], m, wa) == CLT_OK && read_all(t[1], m, wm) == CLT_OK;
    size_t decayed = 0, plain = 0, plain_moved = 0;
    for (int l = 0; l < clt_model_layer_count(m) && good; l++)
        for (int k = 0; k < 2 && good; k++) {
            const char *name = k ? "bias" : "weight";
            clt_shape sh;
            size_t off, n;
            if (clt_model_param_shape(m, l, name, &sh) != CLT_OK) continue;   /* none, or tied */
            clt__model_find_param(m, l, name, &off, &n);
            if (sh.rank >= 2) {
                decayed++;
                if (memcmp(wa + off, wm + off, n * sizeof *wa)) {
                    diag("%s: layer %d's %s (rank %d) is not CLT_DECAY_ALL's", what, l, name, sh.rank);
                    good = false;
                }
                continue;
            }
            plain++;
            for (size_t i = off; i < off + n && good; i++) {
                double skipped = (double)w0[i] * 0.01 * 0.1, d = (double)wm[i] - (double)wa[i];
                plain_moved += skipped != 0.0;
                if (!(fabs(d - skipped) <= 1e-6 + 1e-3 * fabs(skipped))) {
                    diag("%s: layer %d's %s element %zu: %.9g, CLT_DECAY_ALL %.9g, initially %.9g", what,
                         l, name, i - off, wm[i], wa[i], w0[i]);
                    good = false;
                }
            }
        }
    ok(good && decayed >= 5 && plain >= 5 && plain_moved > 0,
       "%s: CLT_DECAY_MATRICES decays its %zu tensors of rank 2 (embeddings, Linear weights) as "
       "CLT_DECAY_ALL does, and skips its %zu of rank 1 (%zu elements nonzero at the start): %s", what,
       decayed, plain, plain_moved, good ? "yes" : "no");
    free(w0), free(wa), free(wm);
    clt_trainer_destroy(t[0]);
    clt_trainer_destroy(t[1]);
    clt_runtime_destroy(rt);
    clt_model_destroy(m);
}

static void check_bad_decay(void)
{
    clt_runtime *rt;
    if (!ok_status(clt_runtime_create(&rt, test_spec_one()), "runtime for the bad decay")) return;
    clt_model *m = decay_model(CLT_PARALLEL_NONE);
    clt_train_params p = clt_train_params_default();
    ok(p.decay == CLT_DECAY_ALL, "the default decay is CLT_DECAY_ALL");
    clt_trainer *t = (clt_trainer *)1;
    p.decay = (clt_decay)2;
    ok_error(clt_trainer_create(&t, rt, m, &p), CLT_ERR_INVALID_ARG, "clt_train_params.decay 2",
             "decay 2 is refused, naming the field");
    ok(t == NULL, "and no trainer is made");
    p.decay = (clt_decay)-1;
    ok_error(clt_trainer_create(&t, rt, m, &p), CLT_ERR_INVALID_ARG, "clt_train_params.decay -1",
             "decay -1 is refused, naming the field");
    clt_model_destroy(m);
    clt_runtime_destroy(rt);
}

int main(void)
{
    tap_require_device();
    clt_optimizer adam = clt_adam(0.02f);
    adam.weight_decay = 0.01f;
    const optim_case optims[] = {
        {"adamw", clt_adamw(0.02f, 0.1f)},
        {"adam", adam},
        {"sgd", clt_sgd(0.1f, 0.9f, 0.05f, 0)},
    };
    const mode_case modes[] = {
        {CLT_PARALLEL_NONE, 1, 0, "one device"},
        {CLT_PARALLEL_DATA, 3, 0, "data parallel on 3 devices (rows 3, 2, 2; shards inside tensors)"},
        {CLT_PARALLEL_DATA, 3, 1, "elastic data parallel on 3 devices"},
        {CLT_PARALLEL_MODEL, 3, 0, "model parallel, 3 stages"},
        {CLT_PARALLEL_TENSOR, 3, 0, "tensor parallel on 3 devices (the second pair split)"},
    };
    for (size_t i = 0; i < sizeof optims / sizeof *optims; i++)
        for (size_t k = 0; k < sizeof modes / sizeof *modes; k++) check_against_torch(&optims[i], &modes[k]);
    check_all_unchanged(1);
    check_all_unchanged(3);
    check_gpt(1);
    check_gpt(3);
    check_bad_decay();
    return tap_done();
}
