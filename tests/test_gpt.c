/* A small GPT (clt_model_create_gpt) trained end to end against PyTorch (tests/data/gpt_adamw.ref,
 * nanoGPT's model written out in tests/gen_reference.py from the same weights and batches), on
 * every test device; data parallel against one device; bad token ids and targets; sampling; and
 * the model checks that refuse bad configurations and residual blocks. */
#include "ref.h"
#include "scratch.h"
#include "tap.h"

#include <math.h>

/* The model and run of gen_reference.py's GPT and gpt() */
#define VOCAB 13
#define BLOCK 32
#define LAYERS 2
#define HEADS 4
#define EMBD 64
#define BATCH 4
#define STEPS 10
#define DP_STEPS 5
/* against PyTorch: |got - ref| <= ATOL + RTOL*|ref| for the losses and every parameter. Adam
 * moves every parameter by up to lr a step whatever its gradient's size, so a parameter near
 * zero whose gradient is small carries the rounding of its sums as a move of its own: ATOL is
 * 3e-4 of the largest move 10 steps make (lr 1e-3), the rest is held to 1e-4 relative. */
#define ATOL 3e-6
#define RTOL 1e-4
/* data parallel against one device, after DP_STEPS: other sums of the batch's rows, rounded
 * otherwise, which Adam's m / sqrt(v) amplifies where a gradient nearly cancels (1e-6 measured on
 * one PoCL device kind). On devices of other implementations (PoCL and rusticl: other exp, tanh)
 * such an element moved 1.75e-6 in 5 steps: DP_ATOL_MIXED, 1e-3 of the most 5 steps move one. */
#define DP_ATOL 1e-6
#define DP_ATOL_MIXED (1e-3 * DP_STEPS * 1e-3)
#define DP_RTOL 1e-5

/* Weight decay on matrices only (p.decay = CLT_DECAY_MATRICES), as nanoGPT's two param groups
 * in the reference (GPT_DECAY_MATRICES_ONLY in tests/gen_reference.py). */

static clt_model *gpt_model(void)
{
    clt_gpt_config c = clt_gpt_config_default();
    c.vocab = VOCAB;
    c.block = BLOCK;
    c.layers = LAYERS;
    c.heads = HEADS;
    c.embd = EMBD;
    c.dropout = 0.0f;
    c.tied = 1;
    clt_model *m = NULL;
    return clt_model_create_gpt(&m, &c) == CLT_OK ? m : NULL;
}

static clt_train_params gpt_params(void)
{
    clt_train_params p = clt_train_params_default();
    p.optim = clt_adamw(1e-3f, 0.1f);
    p.optim.beta1 = 0.9f;
    p.optim.beta2 = 0.95f;
    p.optim.eps = 1e-8f;
    p.max_batch = BATCH;
    p.decay = CLT_DECAY_MATRICES;
    return p;
}

/* gpt_params for a parallel mode, with every replica checked after each step */
static clt_train_params parallel_params(clt_parallel mode)
{
    clt_train_params p = gpt_params();
    p.parallel = mode;
    p.verify_replicas = 1;
    return p;
}

/* Every parameter of the model in its flat layout: (layer, name) and where it lies. */
typedef struct {
    int layer;
    const char *name;
    size_t off, count;
} param_ref;

static int gpt_layout(const clt_model *m, param_ref *out, int cap)
{
    int n = 0;
    size_t off = 0;
    const char *names[2] = {"weight", "bias"};
    for (int i = 0; i < clt_model_layer_count(m); i++)
        for (int k = 0; k < 2; k++) {
            clt_shape s;
            if (clt_model_param_shape(m, i, names[k], &s) != CLT_OK) continue;
            if (n < cap) out[n] = (param_ref){i, names[k], off, clt_shape_numel(s)};
            off += clt_shape_numel(s);
            n++;
        }
    return n;
}

/* The initial parameters as gen_reference.py's gpt_layout draws them (seed 61): per parameter,
 * offset + U[-scale, scale), LayerNorm weights offset 1, Linear weights scale 1/sqrt(fan in). */
static void gpt_init(const clt_model *m, const param_ref *pr, int np, float *params)
{
    ref_rng r = {61};
    for (int i = 0; i < np; i++) {
        clt_shape s;
        clt_model_param_shape(m, pr[i].layer, pr[i].name, &s);
        double scale = 0.1;
        float offset = 0.0f;
        bool linear = s.rank == 2 && pr[i].layer > 1;
        if (linear) scale = 1.0 / sqrt((double)s.dims[1]);
        else if (s.rank == 1 && !strcmp(pr[i].name, "weight")) offset = 1.0f;   /* LayerNorm */
        float *p = params + pr[i].off;
        ref_fill(&r, p, pr[i].count, scale);
        if (offset != 0.0f)
            for (size_t j = 0; j < pr[i].count; j++) p[j] = offset + p[j];
    }
}

/* The batches of gen_reference.py's gpt() (seed 62): per step (BATCH, BLOCK + 1) ids, the
 * inputs the first BLOCK, the targets the last BLOCK. */
static void gpt_batches(int32_t *tokens, int32_t *targets)
{
    ref_rng r = {62};
    for (int s = 0; s < STEPS; s++)
        for (int b = 0; b < BATCH; b++) {
            int32_t seq[BLOCK + 1];
            for (int t = 0; t <= BLOCK; t++) seq[t] = (int32_t)((ref_next(&r) >> 33) % VOCAB);
            size_t row = ((size_t)s * BATCH + (size_t)b) * BLOCK;
            memcpy(tokens + row, seq, BLOCK * sizeof *seq);
            memcpy(targets + row, seq + 1, BLOCK * sizeof *seq);
        }
}

#define MAX_PARAMS 64
static param_ref layout[MAX_PARAMS];
static int nlayout;
static size_t nparams;
static float *init;
static int32_t tokens[STEPS * BATCH * BLOCK], targets[STEPS * BATCH * BLOCK];

static clt_status set_all(clt_trainer *t, const float *params)
{
    clt_status st = CLT_OK;
    for (int i = 0; i < nlayout && st == CLT_OK; i++)
        st = clt_trainer_set_param(t, layout[i].layer, layout[i].name, params + layout[i].off, layout[i].count);
    return st;
}

static clt_status get_all(clt_trainer *t, float *params)
{
    clt_status st = CLT_OK;
    for (int i = 0; i < nlayout && st == CLT_OK; i++)
        st = clt_trainer_get_param(t, layout[i].layer, layout[i].name, params + layout[i].off, layout[i].count);
    return st;
}

/* A trainer on spec, with the reference's weights or (from set) a checkpoint's, and steps
 * first..first+steps-1 of the batches, their losses in losses; the caller closes it
 * (close_trained) whatever this returns. */
typedef struct {
    clt_runtime *rt;
    clt_model *m;
    clt_trainer *t;
} trained;

static clt_status open_trained(trained *o, const char *spec, clt_train_params p, const char *from, int first,
                               int steps, float *losses)
{
    memset(o, 0, sizeof *o);
    o->m = gpt_model();
    clt_status st = o->m ? clt_runtime_create(&o->rt, spec) : CLT_ERR_INVALID_ARG;
    if (st == CLT_OK) st = clt_trainer_create(&o->t, o->rt, o->m, &p);
    if (st == CLT_OK) st = from ? clt_trainer_load(o->t, from) : set_all(o->t, init);
    for (int s = first; s < first + steps && st == CLT_OK; s++)
        st = clt_trainer_step_tokens(o->t, tokens + (size_t)s * BATCH * BLOCK, targets + (size_t)s * BATCH * BLOCK,
                                     BATCH, &losses[s - first]);
    return st;
}

static void close_trained(trained *o)
{
    clt_trainer_destroy(o->t);
    clt_runtime_destroy(o->rt);
    clt_model_destroy(o->m);
}

/* A trainer on spec with the reference's weights, trained `steps` steps; its losses and final
 * parameters (nparams floats) written out, its split of the last step in counts (3). */
static clt_status train(const char *spec, clt_train_params p, int steps, float *losses, float *params,
                        size_t *counts)
{
    trained o;
    clt_status st = open_trained(&o, spec, p, NULL, 0, steps, losses);
    clt_trainer *t = o.t;
    if (st == CLT_OK) st = get_all(t, params);
    if (st == CLT_OK && counts) {
        memset(counts, 0, 3 * sizeof *counts);
        if (p.parallel == CLT_PARALLEL_DATA) st = clt_trainer_split(t, counts, clt_runtime_device_count(o.rt));
    }
    close_trained(&o);
    return st;
}

/* Whether element i of the flat parameters is a key bias (c_attn's bias, features C..2C-1):
 * softmax does not change when every score of a row moves by q . b_k, so its gradient is zero but
 * for rounding, and Adam turns rounding into steps of up to lr. Those elements are compared
 * within KEY_BIAS_ATOL (STEPS updates of at most about lr each, both sides), the rest within
 * atol + rtol*|ref|; check_key_bias_gradient checks the zero. */
#define KEY_BIAS_ATOL (2.0 * STEPS * 1e-3)

static bool key_bias(size_t i)
{
    for (int k = 0; k < nlayout; k++)
        if ((layout[k].layer - 4) % 12 == 0 && !strcmp(layout[k].name, "bias") &&
            i >= layout[k].off + EMBD && i < layout[k].off + 2 * EMBD)
            return true;
    return false;
}

static bool params_close(const float *got, const float *ref, double atol, double rtol, const char *what)
{
    size_t bad = 0, first = 0, keys = 0;
    for (size_t i = 0; i < nparams; i++) {
        double d = fabs((double)got[i] - (double)ref[i]);
        bool k = key_bias(i);
        keys += k;
        if (!(d <= (k ? KEY_BIAS_ATOL : atol + rtol * fabs((double)ref[i]))) && !bad++) first = i;
    }
    double worst = 0;
    for (size_t i = 0; i < nparams; i++)
        if (!key_bias(i)) worst = fmax(worst, fabs((double)got[i] - (double)ref[i]));
    diag("%s: largest absolute difference %.3g", what, worst);
    if (bad) diag("%s: %zu mismatches, the first element %zu: %.9g, reference %.9g", what, bad, first, got[first], ref[first]);
    return ok(!bad, "%s (%zu values within %g + %g*|ref|, the %zu key biases within %g)", what, nparams - keys, atol,
              rtol, keys, KEY_BIAS_ATOL);
}

/* The largest |got - ref| / |ref| over n values (ref 0: the absolute difference), and where;
 * over the parameters, the key biases left out. */
static double max_rel(const float *got, const float *ref, size_t n, size_t *at)
{
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        if (n == nparams && key_bias(i)) continue;
        double d = fabs((double)got[i] - (double)ref[i]), r = fabs((double)ref[i]);
        double rel = r > 0 ? d / r : d;
        if (rel > worst) worst = rel, *at = i;
    }
    return worst;
}

/* 10 AdamW steps on every device against PyTorch: the losses and every parameter. */
static void check_reference(float *dp_base, float *dp_losses)
{
    ref_file f;
    if (!ok(ref_load(&f, "gpt_adamw") == 0, "gpt_adamw: reference file loads")) return;
    float *want = calloc(nparams, 4), want_loss[STEPS], got_loss[STEPS];
    bool have = true;
    for (int s = 0; s < STEPS && have; s++) {
        char key[32];
        snprintf(key, sizeof key, "loss%d", s);
        const ref_entry *e = ref_get(&f, key);
        if ((have = e && e->n == 1)) want_loss[s] = e->data[0];
    }
    for (int i = 0; i < nlayout && have; i++) {
        char key[64];
        snprintf(key, sizeof key, "%d.%s", layout[i].layer, layout[i].name);
        const ref_entry *e = ref_get(&f, key);
        if ((have = e && e->n == layout[i].count)) memcpy(want + layout[i].off, e->data, e->n * 4);
    }
    if (ok(have, "gpt_adamw: the reference holds the %d losses and the model's %d parameter tensors (%zu values)",
           STEPS, nlayout, nparams)) {
        float *got = malloc(nparams * 4);
        for (int d = 0; d < test_ndev(); d++) {
            char spec[TEST_SPEC_CAP];
            int e[1] = {d};
            test_spec_of(spec, 1, e);
            if (!ok_status(train(spec, gpt_params(), STEPS, got_loss, got, NULL),
                           "device %d (%s): %d AdamW steps of the GPT", d, test_device(d)->name, STEPS))
                continue;
            char what[128];
            snprintf(what, sizeof what, "device %d: the %d losses match PyTorch's", d, STEPS);
            ok_close(got_loss, want_loss, STEPS, ATOL, RTOL, what);
            snprintf(what, sizeof what, "device %d: every parameter after %d steps matches PyTorch's", d, STEPS);
            params_close(got, want, ATOL, RTOL, what);
            size_t a0 = 0, a1 = 0;
            double r0 = max_rel(got_loss, want_loss, STEPS, &a0), r1 = max_rel(got, want, nparams, &a1);
            diag("device %d: largest relative difference: losses %.3g, parameters %.3g (element %zu, %.6g in PyTorch)",
                 d, r0, r1, a1, want[a1]);
        }
        free(got);
    }
    /* one device's DP_STEPS, for the data-parallel runs */
    ok_status(train(test_spec_one(), gpt_params(), DP_STEPS, dp_losses, dp_base, NULL),
              "device 0: %d steps, the base of the data-parallel comparisons", DP_STEPS);
    free(want);
    ref_free(&f);
}

/* Data parallel on 2 and 3 devices, every split, within DP_* of one device, replicas checked. */
static void check_data_parallel(const float *base, const float *base_losses)
{
    static const float w31[] = {3, 1}, w124[] = {1, 2, 4};
    const struct {
        int n;
        clt_split split;
        const float *weights;
        size_t bucket_bytes;   /* 0: the default */
        const char *what;
    } cases[] = {
        {2, CLT_SPLIT_EQUAL, NULL, 0, "2 devices, equal split"},
        {2, CLT_SPLIT_WEIGHTS, w31, 0, "2 devices, weights 3:1"},
        {3, CLT_SPLIT_EQUAL, NULL, 0, "3 devices, equal split"},
        {3, CLT_SPLIT_WEIGHTS, w124, 0, "3 devices, weights 1:2:4"},
        /* measured on the row clock with device 1 slowed 3x (tests/test_data_parallel.c) */
        {3, CLT_SPLIT_AUTO, NULL, 0, "3 devices, auto split, device 1 slowed 3x"},
        /* the default bucket holds the whole model (412 KB): buckets of 16 KiB reduce the head's
         * share of the tied table only with the embedding's, the first layer, last */
        {3, CLT_SPLIT_EQUAL, NULL, 16384, "3 devices, equal split, 16 KiB buckets"},
    };
    float *got = malloc(nparams * 4), losses[DP_STEPS];
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        clt_train_params p = parallel_params(CLT_PARALLEL_DATA);
        p.split = cases[c].split;
        p.split_weights = cases[c].weights;
        p.rebalance_every = 1;
        if (cases[c].bucket_bytes) p.bucket_bytes = cases[c].bucket_bytes;
        size_t counts[3];
        if (p.split == CLT_SPLIT_AUTO) setenv("CLT_SLOW_DEVICES", "1:3", 1), setenv("CLT_SLOW_CLOCK", "rows", 1);
        clt_status st = train(test_spec_n(cases[c].n), p, DP_STEPS, losses, got, counts);
        unsetenv("CLT_SLOW_DEVICES"), unsetenv("CLT_SLOW_CLOCK");
        if (!ok_status(st, "%s: %d steps, replicas verified after each", cases[c].what, DP_STEPS)) continue;
        char what[160];
        snprintf(what, sizeof what, "%s: the losses match one device's", cases[c].what);
        ok_close(losses, base_losses, DP_STEPS, DP_ATOL, DP_RTOL, what);
        snprintf(what, sizeof what, "%s: the parameters match one device's", cases[c].what);
        params_close(got, base, test_devices_alike(cases[c].n) ? DP_ATOL : DP_ATOL_MIXED, DP_RTOL, what);
        size_t at = 0;
        double rel = max_rel(got, base, nparams, &at);
        diag("%s: split %zu/%zu/%zu, largest relative difference %.3g (element %zu)", cases[c].what, counts[0],
             counts[1], counts[2], rel, at);
        ok(counts[0] + counts[1] + counts[2] == BATCH, "%s: the split covers the batch of %d", cases[c].what, BATCH);
        if (p.split == CLT_SPLIT_AUTO)
            ok(counts[1] < counts[0] && counts[1] < counts[2], "%s: the slowed device takes the fewest rows",
               cases[c].what);
    }
    free(got);
}

/* Tensor parallel against one device, after DP_STEPS: c_proj's and the MLP's row-parallel
 * outputs are sums of partial GEMMs, added in another order than one device's, which Adam
 * amplifies where a gradient nearly cancels, as for data parallel (1.5e-6 measured on 2 PoCL
 * devices, 3.5e-6 on 3 with 1 + 1 + 2 heads, 4.1e-6 on 2 PoCL and a rusticl device): TP_ATOL
 * is 1e-5 of a parameter on any devices, the losses and logits held to the same. */
#define TP_ATOL 1e-5
#define TP_RTOL 1e-5
#define GEN 12

/* layer numbers of block b's c_attn (the attention and c_proj follow) and c_fc (GELU, c_proj) */
static int c_attn_of(int b) { return 4 + 12 * b; }
static int c_fc_of(int b) { return 10 + 12 * b; }

/* A tensor trainer on spec, DP_STEPS steps from the reference's weights: its losses, final
 * parameters, logits on the first batch and a greedy continuation; heads (devices, per block 0
 * of c_attn) its slices as counts of heads, checked to be the same in every block. */
static clt_status tp_train(const char *spec, clt_train_params p, int ndev, float *losses, float *params,
                           float *logits, int32_t *gen, int *heads, int *fc)
{
    trained tr;
    clt_status st = open_trained(&tr, spec, p, NULL, 0, DP_STEPS, losses);
    clt_trainer *t = tr.t;
    if (st == CLT_OK) st = get_all(t, params);
    if (st == CLT_OK) st = clt_trainer_predict_tokens(t, tokens, BATCH, logits);
    int32_t prompt[3] = {1, 5, 2};
    clt_generate_options o = clt_generate_options_default();
    o.temperature = 0.0f;
    if (st == CLT_OK) st = clt_trainer_generate(t, prompt, 3, GEN, &o, gen);
    /* every block sliced alike: c_attn, attention and c_proj by the same heads, the MLP pair */
    for (int d = 0; d < ndev && heads && st == CLT_OK; d++) {
        heads[d] = fc[d] = -1;
        for (int b = 0; b < LAYERS && st == CLT_OK; b++) {
            clt_slice_kind k[6];
            int first[6], count[6];
            for (int i = 0; i < 6 && st == CLT_OK; i++)
                st = clt_trainer_tensor_slice(t, i < 3 ? c_attn_of(b) + i : c_fc_of(b) + i - 3, d, &k[i], &first[i],
                                              &count[i]);
            bool kinds = k[0] == CLT_SLICE_COLUMN && k[1] == CLT_SLICE_ELEMENTWISE && k[2] == CLT_SLICE_ROW &&
                         k[3] == CLT_SLICE_COLUMN && k[4] == CLT_SLICE_ELEMENTWISE && k[5] == CLT_SLICE_ROW;
            bool same = first[0] == first[1] && first[1] == first[2] && count[0] == count[1] && count[1] == count[2] &&
                        first[3] == first[4] && first[4] == first[5] && count[3] == count[4] && count[4] == count[5];
            int h = count[0] % (EMBD / HEADS) || first[0] % (EMBD / HEADS) ? -2 : count[0] / (EMBD / HEADS);
            if (st == CLT_OK && (!kinds || !same || (b && (h != heads[d] || count[3] != fc[d])))) heads[d] = -3;
            else if (st == CLT_OK && !b) heads[d] = h, fc[d] = count[3];
        }
    }
    clt_slice_kind k;
    int first, count;
    if (st == CLT_OK && heads) {   /* LayerNorm, embeddings and the head replicated */
        const int rep[] = {0, 1, 3, 2 + 12 * LAYERS, 3 + 12 * LAYERS};
        for (size_t i = 0; i < sizeof rep / sizeof rep[0] && st == CLT_OK; i++) {
            st = clt_trainer_tensor_slice(t, rep[i], ndev - 1, &k, &first, &count);
            if (st == CLT_OK && (k != CLT_SLICE_REPLICATED || first != 0)) heads[0] = -4;
        }
    }
    close_trained(&tr);
    return st;
}

/* Tensor parallel on 2 and 3 devices, even and uneven heads, by weights and measured, and 2
 * groups of 2 (tensor x data): within TP_* of one device, replicas checked after every step, the
 * same predictions and greedy text. */
static void check_tensor_parallel(const float *base, const float *base_losses)
{
    static const float w31[] = {3, 1}, w124[] = {1, 2, 4}, w118[] = {1, 1, 8}, w31x2[] = {3, 1, 3, 1};
    const struct {
        int n, group;
        clt_split split;
        const float *weights;
        int heads[4], fc[4];   /* per device: heads of each block, c_fc's outputs */
        const char *what;
    } cases[] = {
        {2, 0, CLT_SPLIT_EQUAL, NULL, {2, 2}, {128, 128}, "2 devices, 2 + 2 heads"},
        {2, 0, CLT_SPLIT_WEIGHTS, w31, {3, 1}, {192, 64}, "2 devices, weights 3:1, 3 + 1 heads"},
        {3, 0, CLT_SPLIT_EQUAL, NULL, {2, 1, 1}, {86, 85, 85}, "3 devices, 2 + 1 + 1 heads"},
        {3, 0, CLT_SPLIT_WEIGHTS, w124, {1, 1, 2}, {37, 73, 146}, "3 devices, weights 1:2:4, 1 + 1 + 2 heads"},
        /* by the weights 0 + 0 + 4 (0.4, 0.4, 3.2): a head each, the fourth by the weights */
        {3, 0, CLT_SPLIT_WEIGHTS, w118, {1, 1, 2}, {26, 25, 205}, "3 devices, weights 1:1:8, 1 + 1 + 2 heads"},
        {2, 0, CLT_SPLIT_AUTO, NULL, {3, 1}, {192, 64}, "2 devices, auto split, device 1 slowed 3x"},
        {4, 2, CLT_SPLIT_WEIGHTS, w31x2, {3, 1, 3, 1}, {192, 64, 192, 64},
         "4 devices = 2 groups of 2 (tensor x data), weights 3:1"},
    };
    /* one device's logits and greedy text from the same parameters */
    float *logits1 = malloc((size_t)BATCH * BLOCK * VOCAB * 4), *logits = malloc((size_t)BATCH * BLOCK * VOCAB * 4);
    float *got = malloc(nparams * 4), losses[DP_STEPS], lbase[DP_STEPS];
    int32_t gen1[3 + GEN], gen[3 + GEN];
    clt_train_params p1 = gpt_params();
    if (!ok_status(tp_train(test_spec_one(), p1, 1, lbase, got, logits1, gen1, NULL, NULL),
                   "one device: %d steps, its logits and %d greedy tokens", DP_STEPS, GEN))
        goto done;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        clt_train_params p = parallel_params(CLT_PARALLEL_TENSOR);
        p.tensor_group = cases[c].group;
        p.tensor_split = cases[c].split;
        p.tensor_split_weights = cases[c].weights;
        int heads[4], fc[4];
        if (p.tensor_split == CLT_SPLIT_AUTO) setenv("CLT_SLOW_DEVICES", "1:3", 1), setenv("CLT_SLOW_CLOCK", "rows", 1);
        clt_status st = tp_train(test_spec_n(cases[c].n), p, cases[c].n, losses, got, logits, gen, heads, fc);
        unsetenv("CLT_SLOW_DEVICES"), unsetenv("CLT_SLOW_CLOCK");
        if (!ok_status(st, "%s: %d steps, replicas verified after each", cases[c].what, DP_STEPS)) continue;
        char what[160];
        snprintf(what, sizeof what, "%s: the losses match one device's", cases[c].what);
        ok_close(losses, base_losses, DP_STEPS, TP_ATOL, TP_RTOL, what);
        snprintf(what, sizeof what, "%s: the parameters match one device's", cases[c].what);
        params_close(got, base, TP_ATOL, TP_RTOL, what);
        snprintf(what, sizeof what, "%s: the logits match one device's", cases[c].what);
        ok_close(logits, logits1, (size_t)BATCH * BLOCK * VOCAB, TP_ATOL, TP_RTOL, what);
        ok(!memcmp(gen, gen1, sizeof gen), "%s: %d greedy tokens as one device's", cases[c].what, GEN);
        bool slices = heads[0] >= 0;
        for (int d = 0; d < cases[c].n; d++) slices &= heads[d] == cases[c].heads[d] && fc[d] == cases[c].fc[d];
        ok(slices, "%s: every block's attention by heads %d/%d/%d/%d, c_fc by %d/%d/%d/%d outputs; LayerNorm, "
           "embeddings and head replicated", cases[c].what, heads[0], heads[1], cases[c].n > 2 ? heads[2] : 0,
           cases[c].n > 3 ? heads[3] : 0, fc[0], fc[1], cases[c].n > 2 ? fc[2] : 0, cases[c].n > 3 ? fc[3] : 0);
        size_t at = 0;
        diag("%s: largest relative difference %.3g (element %zu)", cases[c].what, max_rel(got, base, nparams, &at), at);
    }
done:
    free(logits1), free(logits), free(got);
}

/* A checkpoint of one device's DP_STEPS loaded into a tensor trainer of 2 devices (3 + 1 heads:
 * its slices of the parameters and of Adam's moments, c_attn's rows permuted) that steps once
 * more as one device does; its checkpoint loaded by one device holds the same bits. */
static void check_tensor_checkpoint(void)
{
    static const float w31[] = {3, 1};
    char dir[256];
    if (!test_scratch_dir(dir, sizeof dir, "tpgpt")) return;
    const char *one = test_path(dir, "one.ckpt"), *two = test_path(dir, "two.ckpt");
    float losses[DP_STEPS], l1, l2;
    float *want = malloc(nparams * 4), *got = malloc(nparams * 4), *back = malloc(nparams * 4);
    trained a, b, c;
    clt_status st = open_trained(&a, test_spec_one(), gpt_params(), NULL, 0, DP_STEPS, losses);
    if (st == CLT_OK) st = clt_trainer_save(a.t, one);
    if (st == CLT_OK) st = clt_trainer_step_tokens(a.t, tokens + DP_STEPS * BATCH * BLOCK,
                                                   targets + DP_STEPS * BATCH * BLOCK, BATCH, &l1);
    if (st == CLT_OK) st = get_all(a.t, want);
    ok_status(st, "one device: %d steps, a checkpoint, one step more", DP_STEPS);
    clt_train_params p = parallel_params(CLT_PARALLEL_TENSOR);
    p.tensor_split = CLT_SPLIT_WEIGHTS;
    p.tensor_split_weights = w31;
    st = open_trained(&b, test_spec_n(2), p, one, DP_STEPS, 1, &l2);
    if (st == CLT_OK) st = get_all(b.t, got);
    if (st == CLT_OK) st = clt_trainer_save(b.t, two);
    if (ok_status(st, "2 devices (3 + 1 heads): the checkpoint loaded, the step after it, a checkpoint")) {
        ok_close(&l2, &l1, 1, TP_ATOL, TP_RTOL, "the loss of the step after the checkpoint as one device's");
        params_close(got, want, TP_ATOL, TP_RTOL,
                     "the parameters after it as one device's (the moments were sliced as the weights)");
        st = open_trained(&c, test_spec_one(), gpt_params(), two, 0, 0, NULL);
        if (st == CLT_OK) st = get_all(c.t, back);
        if (ok_status(st, "one device loads the tensor trainer's checkpoint"))
            ok(!memcmp(back, got, nparams * 4), "and holds the tensor trainer's parameters, bit for bit");
        close_trained(&c);
    }
    close_trained(&a), close_trained(&b);
    remove(one), remove(two), remove(dir);
    free(want), free(got), free(back);
}

/* Every parameter of a trainer's model, layer by layer, weight then bias, into out. */
static clt_status params_io(clt_trainer *t, const clt_model *m, float *host, bool write)
{
    static const char *const names[2] = {"weight", "bias"};
    clt_status st = CLT_OK;
    size_t at = 0;
    for (int l = 0; l < clt_model_layer_count(m) && st == CLT_OK; l++)
        for (int k = 0; k < 2 && st == CLT_OK; k++) {
            clt_shape sh;
            if (clt_model_param_shape(m, l, names[k], &sh) != CLT_OK) continue;
            st = write ? clt_trainer_set_param(t, l, names[k], host + at, clt_shape_numel(sh))
                       : clt_trainer_get_param(t, l, names[k], host + at, clt_shape_numel(sh));
            at += clt_shape_numel(sh);
        }
    return st;
}

static clt_status all_params(clt_trainer *t, const clt_model *m, float *out) { return params_io(t, m, out, false); }

/* Dropout everywhere (after the embeddings, on the attention weights, after each c_proj), tensor
 * parallel on 2 devices with 3 + 1 heads against one device from the same seed: every head draws
 * its attention mask as the model's head it is, whichever device holds it, so the steps agree. */
static void check_tensor_dropout(void)
{
    clt_gpt_config c = clt_gpt_config_default();
    c.vocab = VOCAB, c.block = BLOCK, c.layers = LAYERS, c.heads = HEADS, c.embd = EMBD, c.dropout = 0.1f;
    clt_model *m = NULL;
    if (!ok_status(clt_model_create_gpt(&m, &c), "a GPT with dropout 0.1")) return;
    size_t np = clt_model_param_count(m);
    float *want = malloc(np * sizeof *want), *got = malloc(np * sizeof *got), lw[DP_STEPS], lg[DP_STEPS];
    static const float w31[] = {3, 1};
    bool good = want && got;
    for (int tp = 0; tp < 2 && good; tp++) {
        clt_runtime *rt = NULL;
        clt_trainer *t = NULL;
        clt_train_params p = tp ? parallel_params(CLT_PARALLEL_TENSOR) : gpt_params();
        if (tp) p.tensor_split = CLT_SPLIT_WEIGHTS, p.tensor_split_weights = w31;
        good = clt_runtime_create(&rt, tp ? test_spec_n(2) : test_spec_one()) == CLT_OK &&
               clt_trainer_create(&t, rt, m, &p) == CLT_OK;
        for (int i = 0; i < DP_STEPS && good; i++)
            good = clt_trainer_step_tokens(t, tokens, targets, BATCH, tp ? &lg[i] : &lw[i]) == CLT_OK;
        good = good && all_params(t, m, tp ? got : want) == CLT_OK;
        if (!ok(good, "dropout 0.1, %s: %d steps", tp ? "tensor parallel, 3 + 1 heads" : "one device", DP_STEPS))
            diag("%s", clt_last_error());
        clt_trainer_destroy(t);
        clt_runtime_destroy(rt);
    }
    if (good) {
        ok_close(lg, lw, DP_STEPS, TP_ATOL, TP_RTOL, "dropout 0.1, tensor parallel: the losses match one device's");
        size_t at = 0;
        double rel = max_rel(got, want, np, &at);
        int bad = 0;
        for (size_t i = 0; i < np; i++) bad += !(fabs(got[i] - want[i]) <= TP_ATOL + TP_RTOL * fabs(want[i]));
        ok(bad == 0, "dropout 0.1, tensor parallel: every parameter matches one device's (%d of %zu outside; "
           "largest relative difference %.3g)", bad, np, rel);
        /* a mask drawn per device would differ from one device's at the first step */
        ok(lg[0] == lw[0] || fabs(lg[0] - lw[0]) <= TP_ATOL, "dropout 0.1: the first step's loss %.9g on both",
           (double)lg[0]);
    }
    free(want), free(got);
    clt_model_destroy(m);
}

/* Pipelines of blocks, of a GPT with an untied head and of one whose head shares the token
 * embedding's weight (the head's stage keeps a copy, its gradient added to the embedding's on
 * stage 0): partitioned by the trainer (never inside a residual block) under every schedule, as
 * 3 stages placed at block boundaries, with the tied head's stage on the embedding's device, and
 * as 2 copies of a 2-stage pipeline; untied, with tensor parallelism too, as 2 stages of 2-way
 * groups (attention split by heads) under every schedule and as 2 copies of 2 stages of 1-device
 * groups (tensor parallelism keeps a tied head with its embedding); each against one device from
 * the same seed after DP_STEPS steps, then the trained pipeline's predictions against one
 * device's from the same weights; a placement cutting a block is refused naming it. */
static void check_pipelines(int tied)
{
    const char *name = tied ? "tied GPT" : "untied GPT";
    clt_gpt_config c = clt_gpt_config_default();
    c.vocab = VOCAB, c.block = BLOCK, c.layers = LAYERS, c.heads = HEADS, c.embd = EMBD, c.tied = tied;
    clt_model *m = NULL, *placed = NULL, *again = NULL, *halves = NULL;
    if (!ok_status(clt_model_create_gpt(&m, &c), "a %s", name) ||
        !ok_status(clt_model_create_gpt(&placed, &c), "and one to place") ||
        !ok_status(clt_model_create_gpt(&again, &c), "and one to place with a device twice") ||
        !ok_status(clt_model_create_gpt(&halves, &c), "and one to place in halves")) {
        clt_model_destroy(m), clt_model_destroy(placed), clt_model_destroy(again), clt_model_destroy(halves);
        return;
    }
    int L = clt_model_layer_count(m);
    /* embeddings and block 0 on 0, block 1 on 1, ln_f and the head on 2 (blocks are layers
     * 2..13 and 14..25); again: ln_f and the head back on device 0, a third stage */
    clt_model_place(placed, 0, 13, 0);
    clt_model_place(placed, 14, 25, 1);
    clt_model_place(placed, 26, L - 1, 2);
    clt_model_place(again, 0, 13, 0);
    clt_model_place(again, 14, 25, 1);
    clt_model_place(again, 26, L - 1, 0);
    /* tensor groups: the embeddings and block 0 on group 0, the rest on group 1 */
    clt_model_place(halves, 0, 13, 0);
    clt_model_place(halves, 14, L - 1, 1);
    size_t np = clt_model_param_count(m), nout = (size_t)BATCH * BLOCK * VOCAB;
    float *want = malloc(np * sizeof *want), *got = malloc(np * sizeof *got), lw[DP_STEPS], lg[DP_STEPS];
    float *pw = malloc(nout * sizeof *pw), *pg = malloc(nout * sizeof *pg);
    const struct {
        int devices, pipelines, micro;
        clt_pipeline_schedule schedule;
        const clt_model *model;
        const char *what;
        int tensor_group;   /* 0: model parallel; else tensor parallel (untied only) */
    } cases[] = {
        {1, 1, 1, CLT_PIPELINE_NAIVE, m, "one device", 0},
        {2, 1, 2, CLT_PIPELINE_NAIVE, m, "2 stages, naive, 2 micro-batches", 0},
        {2, 1, 4, CLT_PIPELINE_GPIPE, m, "2 stages, gpipe, 4 micro-batches", 0},
        {2, 1, 4, CLT_PIPELINE_1F1B, m, "2 stages, 1f1b, 4 micro-batches", 0},
        {2, 1, 4, CLT_PIPELINE_ZB, m, "2 stages, zb, 4 micro-batches", 0},
        {3, 1, 3, CLT_PIPELINE_1F1B, placed, "3 stages placed at block boundaries, 1f1b, 3 micro-batches", 0},
        {2, 1, 2, CLT_PIPELINE_GPIPE, again, "3 stages on 2 devices, the head's on the embedding's, gpipe", 0},
        {4, 2, 2, CLT_PIPELINE_1F1B, m, "2 copies of a 2-stage pipeline, 1f1b", 0},
        {4, 1, 2, CLT_PIPELINE_NAIVE, halves, "2 stages of 2-way tensor groups, naive, 2 micro-batches", 2},
        {4, 1, 4, CLT_PIPELINE_GPIPE, halves, "2 stages of 2-way tensor groups, gpipe, 4 micro-batches", 2},
        {4, 1, 4, CLT_PIPELINE_1F1B, halves, "2 stages of 2-way tensor groups, 1f1b, 4 micro-batches", 2},
        {4, 1, 4, CLT_PIPELINE_ZB, halves, "2 stages of 2-way tensor groups, zb, 4 micro-batches", 2},
        {4, 2, 2, CLT_PIPELINE_ZB, halves, "2 copies of 2 stages of 1-device tensor groups, zb, 2 micro-batches", 1},
    };
    bool good = want && got && pw && pg;
    for (size_t k = 0; k < sizeof cases / sizeof cases[0] && good; k++) {
        if (tied && cases[k].tensor_group) continue;
        clt_runtime *rt = NULL;
        clt_trainer *t = NULL, *one = NULL;
        clt_train_params p = gpt_params();
        if (k) {
            p.parallel = CLT_PARALLEL_MODEL;
            p.pipeline = cases[k].schedule;
            p.micro_batches = cases[k].micro;
            p.pipelines = cases[k].pipelines;
            p.verify_replicas = cases[k].pipelines > 1 || cases[k].tensor_group > 1;
        }
        if (cases[k].tensor_group) p.parallel = CLT_PARALLEL_TENSOR, p.tensor_group = cases[k].tensor_group;
        bool made = clt_runtime_create(&rt, cases[k].devices == 1 ? test_spec_one() : test_spec_n(cases[k].devices)) ==
                        CLT_OK &&
                    clt_trainer_create(&t, rt, cases[k].model, &p) == CLT_OK;
        for (int i = 0; i < DP_STEPS && made; i++)
            made = clt_trainer_step_tokens(t, tokens, targets, BATCH, k ? &lg[i] : &lw[i]) == CLT_OK;
        made = made && all_params(t, m, k ? got : want) == CLT_OK;
        if (!ok(made, "%s, %s: %d steps", name, cases[k].what, DP_STEPS)) diag("%s", clt_last_error());
        /* predictions of the pipeline, and of one device given the pipeline's weights */
        bool predicted = made && k && clt_trainer_predict_tokens(t, tokens, BATCH, pg) == CLT_OK;
        clt_trainer_destroy(t);
        clt_runtime_destroy(rt);
        if (!made) {
            good = k > 0;   /* one device is every case's reference */
            continue;
        }
        if (!k) continue;
        char what[160];
        snprintf(what, sizeof what, "%s, %s: the losses match one device's", name, cases[k].what);
        ok_close(lg, lw, DP_STEPS, TP_ATOL, TP_RTOL, what);
        int bad = 0;
        for (size_t i = 0; i < np; i++) bad += !(fabs(got[i] - want[i]) <= TP_ATOL + TP_RTOL * fabs(want[i]));
        size_t at = 0;
        ok(bad == 0, "%s, %s: every parameter matches one device's (%d of %zu outside; largest relative "
           "difference %.3g)", name, cases[k].what, bad, np, max_rel(got, want, np, &at));
        rt = NULL;
        clt_train_params p1 = gpt_params();
        predicted = predicted && clt_runtime_create(&rt, test_spec_one()) == CLT_OK &&
                    clt_trainer_create(&one, rt, m, &p1) == CLT_OK && params_io(one, m, got, true) == CLT_OK &&
                    clt_trainer_predict_tokens(one, tokens, BATCH, pw) == CLT_OK;
        if (ok(predicted, "%s, %s: predictions", name, cases[k].what)) {
            snprintf(what, sizeof what, "%s, %s: the predictions match one device's with its weights", name,
                     cases[k].what);
            ok_close(pg, pw, nout, TP_ATOL, TP_RTOL, what);
        } else {
            diag("%s", clt_last_error());
        }
        clt_trainer_destroy(one);
        clt_runtime_destroy(rt);
    }
    /* a placement that cuts block 0 (layers 2..7 are its attention half) in two */
    clt_model *cut = NULL;
    clt_runtime *rt = NULL;
    clt_trainer *t = NULL;
    if (clt_model_create_gpt(&cut, &c) == CLT_OK && clt_runtime_create(&rt, test_spec_n(2)) == CLT_OK) {
        clt_model_place(cut, 0, 4, 0);
        clt_model_place(cut, 5, L - 1, 1);
        clt_train_params p = gpt_params();
        p.parallel = CLT_PARALLEL_MODEL;
        ok_error(clt_trainer_create(&t, rt, cut, &p), CLT_ERR_INVALID_ARG, "cut the residual block of layers 2..7",
                 "%s: a placement cutting a residual block in two is refused naming it", name);
    }
    clt_trainer_destroy(t);
    clt_runtime_destroy(rt);
    clt_model_destroy(cut);
    free(want), free(got), free(pw), free(pg);
    clt_model_destroy(m), clt_model_destroy(placed), clt_model_destroy(again), clt_model_destroy(halves);
}

/* What tensor parallelism refuses in a GPT, saying what: fewer heads than devices, and a
 * placement that separates the tied head from its embedding. */
static void check_tensor_refusals(void)
{
    clt_runtime *rt = NULL;
    if (!ok_status(clt_runtime_create(&rt, test_spec_n(3)), "a runtime on 3 devices")) return;
    const struct {
        int heads;
        float dropout;
        clt_status want;
        const char *says, *what;
    } cases[] = {
        {2, 0.0f, CLT_ERR_UNSUPPORTED, "has 2 heads for the 3 devices", "2 heads on 3 devices"},
        {4, 0.0f, CLT_ERR_INVALID_ARG, "separate the head", "a placement cutting the tied head from its embedding"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        clt_gpt_config c = clt_gpt_config_default();
        c.vocab = VOCAB, c.block = BLOCK, c.layers = LAYERS, c.heads = cases[i].heads, c.embd = EMBD;
        c.dropout = cases[i].dropout;
        clt_model *m = NULL;
        clt_trainer *t = NULL;
        clt_train_params p = parallel_params(CLT_PARALLEL_TENSOR);
        if (!ok_status(clt_model_create_gpt(&m, &c), "a GPT for: %s", cases[i].what)) continue;
        if (cases[i].want == CLT_ERR_INVALID_ARG) {   /* 3 groups of one: blocks 0 and 1 on groups 0 and 1 */
            p.tensor_group = 1;
            clt_model_place(m, 0, 13, 0);
            clt_model_place(m, 14, clt_model_layer_count(m) - 1, 1);
        }
        ok_error(clt_trainer_create(&t, rt, m, &p), cases[i].want, cases[i].says, "tensor parallel refuses %s",
                 cases[i].what);
        clt_trainer_destroy(t);
        clt_model_destroy(m);
    }
    clt_runtime_destroy(rt);
}

/* Bad ids, sampling, and the model checks, on one device. */
static void check_inputs_and_sampling(void)
{
    clt_runtime *rt = NULL;
    clt_trainer *t = NULL;
    clt_model *m = gpt_model();
    clt_train_params p = gpt_params();
    if (!ok_status(clt_runtime_create(&rt, test_spec_one()), "runtime on one device") ||
        !ok_status(clt_trainer_create(&t, rt, m, &p), "a GPT trainer") || !ok_status(set_all(t, init), "its weights")) {
        clt_trainer_destroy(t), clt_runtime_destroy(rt), clt_model_destroy(m);
        return;
    }
    ok_status(clt_trainer_step_tokens(t, tokens, targets, BATCH, NULL), "one step");
    /* the key biases' gradient is rounding beside the query and value biases' */
    for (int blk = 0; blk < LAYERS; blk++) {
        float gb[3 * EMBD];
        double gq = 0, gk = 0, gv = 0;
        ok_status(clt_trainer_get_grad(t, 4 + 12 * blk, "bias", gb, 3 * EMBD), "block %d: c_attn's bias gradient", blk);
        for (int c = 0; c < EMBD; c++)
            gq = fmax(gq, fabs(gb[c])), gk = fmax(gk, fabs(gb[EMBD + c])), gv = fmax(gv, fabs(gb[2 * EMBD + c]));
        ok(gk <= 1e-4 * fmin(gq, gv) && gq > 0 && gv > 0,
           "block %d: the key bias gets no gradient (largest %.3g, query %.3g, value %.3g)", blk, gk, gq, gv);
    }
    float *before = malloc(nparams * 4), *after = malloc(nparams * 4);
    int32_t x[BATCH * BLOCK], y[BATCH * BLOCK];
    memcpy(x, tokens, sizeof x), memcpy(y, targets, sizeof y);
    get_all(t, before);
    x[1 * BLOCK + 5] = VOCAB;
    ok_error(clt_trainer_step_tokens(t, x, y, BATCH, NULL), CLT_ERR_INVALID_ARG, "row 1, position 5",
             "a token outside the vocabulary (row 1, position 5) is refused naming where");
    x[1 * BLOCK + 5] = tokens[1 * BLOCK + 5];
    y[2 * BLOCK + 3] = -1;
    ok_error(clt_trainer_step_tokens(t, x, y, BATCH, NULL), CLT_ERR_INVALID_ARG, "row 2, position 3",
             "a target outside the vocabulary (row 2, position 3) is refused naming where");
    get_all(t, after);
    ok(!memcmp(before, after, nparams * 4) && clt_trainer_step_count(t) == 1,
       "the refused steps changed nothing (the same parameters, 1 step)");

    /* sampling: a seed gives the same text; temperature 0 is the argmax of the last position */
    int32_t prompt[3] = {1, 5, 2}, a[3 + 20], b[3 + 20];
    clt_generate_options o = clt_generate_options_default();
    o.temperature = 0.9f;
    o.seed = 77;
    ok_status(clt_trainer_generate(t, prompt, 3, 20, &o, a), "generate 20 tokens, seed 77");
    ok_status(clt_trainer_generate(t, prompt, 3, 20, &o, b), "generate again");
    ok(!memcmp(a, b, sizeof a), "two calls with one seed give the same tokens");
    o.temperature = 0.0f;
    int32_t g[3 + 4], ctx[BLOCK], want[4];
    float *logits = malloc((size_t)BLOCK * VOCAB * 4);
    ok_status(clt_trainer_generate(t, prompt, 3, 4, &o, g), "generate 4 tokens at temperature 0");
    memset(ctx, 0, sizeof ctx);
    memcpy(ctx, prompt, sizeof prompt);
    bool predicted = true;
    for (int i = 0; i < 4 && predicted; i++) {
        /* the context as generate passes it: the ids so far, zeros after (causal: unread) */
        predicted = clt_trainer_predict_tokens(t, ctx, 1, logits) == CLT_OK;
        const float *row = logits + (size_t)(3 + i - 1) * VOCAB;
        int best = 0;
        for (int v = 1; v < VOCAB; v++)
            if (row[v] > row[best]) best = v;
        want[i] = ctx[3 + i] = best;
    }
    ok(predicted && !memcmp(g, prompt, sizeof prompt) && !memcmp(g + 3, want, sizeof want),
       "temperature 0 takes the argmax of predict_tokens' logits at the last position (%d %d %d %d)",
       want[0], want[1], want[2], want[3]);
    free(logits), free(before), free(after);
    clt_trainer_destroy(t);

    /* bad configurations name their field */
    const struct {
        const char *field;
        int vocab, block, layers, heads, embd, tied;
        float dropout, eps;
    } bad[] = {
        {"vocab", 0, 32, 2, 4, 64, 1, 0.0f, 1e-5f},
        {"block", 13, 0, 2, 4, 64, 1, 0.0f, 1e-5f},
        {"layers", 13, 32, 0, 4, 64, 1, 0.0f, 1e-5f},
        {"embd", 13, 32, 2, 4, 0, 1, 0.0f, 1e-5f},
        {"heads", 13, 32, 2, 3, 64, 1, 0.0f, 1e-5f},
        {"dropout", 13, 32, 2, 4, 64, 1, 1.0f, 1e-5f},
        {"tied", 13, 32, 2, 4, 64, 2, 0.0f, 1e-5f},
        {"eps", 13, 32, 2, 4, 64, 1, 0.0f, 0.0f},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        clt_gpt_config c = clt_gpt_config_default();
        c.vocab = bad[i].vocab, c.block = bad[i].block, c.layers = bad[i].layers, c.heads = bad[i].heads;
        c.embd = bad[i].embd, c.tied = bad[i].tied, c.dropout = bad[i].dropout, c.eps = bad[i].eps;
        clt_model *bm = NULL;
        ok_error(clt_model_create_gpt(&bm, &c), CLT_ERR_INVALID_ARG, bad[i].field,
                 "clt_model_create_gpt refuses a bad %s, naming it", bad[i].field);
        ok(bm == NULL, "and returns no model");
    }

    /* a residual block that changes the shape, and one never closed */
    clt_model *r = NULL;
    clt_model_create(&r, clt_shape2(7, 15));
    clt_model_add(r, clt_residual_begin());
    clt_model_add(r, clt_linear(11));
    ok_error(clt_model_add(r, clt_residual_end()), CLT_ERR_SHAPE, "residual block of layers 0..2",
             "a residual block turning (7, 15) into (7, 11) is refused at clt_model_add, naming the block");
    ok(clt_model_layer_count(r) == 2, "and its end is not added");
    clt_model_add(r, clt_linear(15));
    ok_error(clt_trainer_create(&t, rt, r, &p), CLT_ERR_INVALID_ARG, "layer 0 is never closed",
             "a residual block left open is refused at clt_trainer_create");
    clt_model_destroy(r);
    clt_runtime_destroy(rt);
    clt_model_destroy(m);
}

/* std of a layer's weight as the trainer initialised it */
static double weight_std(clt_trainer *t, const clt_model *m, int layer)
{
    clt_shape s;
    if (clt_model_param_shape(m, layer, "weight", &s) != CLT_OK) return NAN;
    size_t n = clt_shape_numel(s);
    float *w = malloc(n * 4);
    double sum = 0, sq = 0;
    if (clt_trainer_get_param(t, layer, "weight", w, n) != CLT_OK) n = 0;
    for (size_t i = 0; i < n; i++) sum += w[i], sq += (double)w[i] * w[i];
    free(w);
    return n ? sqrt(sq / (double)n - (sum / (double)n) * (sum / (double)n)) : NAN;
}

/* nanoGPT's initialisation (CLT_INIT_GPT2, clt_model_create_gpt's): N(0, 0.02), and both c_proj
 * weights N(0, 0.02 / sqrt(2 n_layer)), with dropout (a dropout between c_proj and the block's
 * end) as without. 4096 or more draws each: the sample std within 8% of the true one. */
static void check_gpt2_init(void)
{
    clt_runtime *rt = NULL;
    if (!ok_status(clt_runtime_create(&rt, test_spec_one()), "runtime for the initialisation")) return;
    for (int drop = 0; drop < 2; drop++) {
        clt_gpt_config c = clt_gpt_config_default();
        c.vocab = VOCAB, c.block = BLOCK, c.layers = LAYERS, c.heads = HEADS, c.embd = EMBD;
        c.dropout = drop ? 0.1f : 0.0f;
        clt_model *m = NULL;
        clt_trainer *t = NULL;
        clt_train_params p = gpt_params();
        p.seed = 5;
        if (!ok_status(clt_model_create_gpt(&m, &c), "a GPT, dropout %g", (double)c.dropout) ||
            !ok_status(clt_trainer_create(&t, rt, m, &p), "its trainer")) {
            clt_model_destroy(m);
            continue;
        }
        /* layer numbers: a dropout after the embeddings and after each c_proj */
        int first = 2 + drop, per = 12 + 2 * drop;
        const double proj = 0.02 / sqrt(2.0 * LAYERS);
        for (int b = 0; b < LAYERS; b++) {
            int base = first + b * per;
            const struct {
                int layer;
                double std;
                const char *what;
            } w[] = {{base + 2, 0.02, "c_attn"}, {base + 4, proj, "attention c_proj"},
                     {base + 8 + drop, 0.02, "c_fc"}, {base + 10 + drop, proj, "MLP c_proj"}};
            for (int k = 0; k < 4; k++) {
                double sd = weight_std(t, m, w[k].layer);
                ok(fabs(sd - w[k].std) <= 0.08 * w[k].std, "dropout %g, block %d: %s (layer %d) std %.4g, nanoGPT's %.4g",
                   (double)c.dropout, b, w[k].what, w[k].layer, sd, w[k].std);
            }
        }
        double e = weight_std(t, m, 0), pe = weight_std(t, m, 1);
        ok(fabs(e - 0.02) <= 0.08 * 0.02 && fabs(pe - 0.02) <= 0.08 * 0.02,
           "dropout %g: wte std %.4g and wpe std %.4g, nanoGPT's 0.02", (double)c.dropout, e, pe);
        clt_trainer_destroy(t);
        clt_model_destroy(m);
    }
    clt_runtime_destroy(rt);
}

int main(void)
{
    tap_require_device();
    clt_model *m = gpt_model();
    if (!ok(m != NULL, "clt_model_create_gpt: vocab %d, block %d, %d layers, %d heads, %d wide, tied", VOCAB,
            BLOCK, LAYERS, HEADS, EMBD))
        return tap_done();
    nlayout = gpt_layout(m, layout, MAX_PARAMS);
    nparams = clt_model_param_count(m);
    size_t sum = 0;
    for (int i = 0; i < nlayout && i < MAX_PARAMS; i++) sum += layout[i].count;
    if (!ok(nlayout <= MAX_PARAMS && sum == nparams && layout[nlayout - 1].off + layout[nlayout - 1].count == nparams,
            "the GPT's %d parameter tensors (%zu values) lie flat, layer after layer", nlayout, nparams))
        return tap_done();
    init = malloc(nparams * 4);
    gpt_init(m, layout, nlayout, init);
    gpt_batches(tokens, targets);
    clt_model_destroy(m);

    float *base = calloc(nparams, 4), base_losses[DP_STEPS];
    check_reference(base, base_losses);
    check_data_parallel(base, base_losses);
    check_tensor_parallel(base, base_losses);
    check_tensor_checkpoint();
    check_tensor_refusals();
    check_tensor_dropout();
    check_pipelines(0);
    check_pipelines(1);
    check_inputs_and_sampling();
    check_gpt2_init();
    free(base), free(init);
    return tap_done();
}
