/* Tensor parallelism: the seed MLP with its Linear layers split over 2 and 3 devices (even, and
 * uneven by weights or by measured speed), and over 2 groups of 2 (tensor x data), trains like
 * one device: the same losses, parameters and gradients gathered back in the model's numbering; replicated state and outputs
 * are the same bits on every device (verify_replicas); predict and evaluate agree; checkpoints
 * go on with the same losses; bad settings are refused with clear messages.
 * Tolerance: |got - ref| <= 1e-6 + 1e-5*|ref|. */
#include "seed_check.h"

#define ATOL SEED_ATOL
#define RTOL SEED_RTOL
#define STEPS SEED_STEPS
#define BATCH SEED_BATCH

static float xs[STEPS][BATCH * 1024];
static int32_t ys[STEPS][BATCH];

static void make_data(void) { ref_seed_batches(xs[0], ys[0], STEPS, BATCH); }

typedef struct {
    seed_result r;
    clt_slice_kind kind[3], kind2[3];   /* fc1's and fc2's kind on devices 0..2 */
    int slice[3][2];           /* fc1's (first, count) on devices 0..2 */
    int slice2[3][2];          /* fc2's */
} run_result;

static clt_status train(const char *spec, clt_train_params p, run_result *out)
{
    clt_runtime *rt = NULL;
    clt_trainer *t = NULL;
    clt_model *m = ref_seed_mlp(0.0f);
    p.max_batch = BATCH;
    clt_status st = clt_runtime_create(&rt, spec);
    if (st == CLT_OK) st = clt_trainer_create(&t, rt, m, &p);
    if (st == CLT_OK) st = seed_run(t, m, xs, ys, &out->r);
    memset(out->slice, 0, sizeof out->slice);
    memset(out->slice2, 0, sizeof out->slice2);
    memset(out->kind, 0, sizeof out->kind);
    memset(out->kind2, 0, sizeof out->kind2);
    for (int d = 0; d < clt_runtime_device_count(rt) && d < 3 && st == CLT_OK && p.parallel == CLT_PARALLEL_TENSOR; d++) {
        st = clt_trainer_tensor_slice(t, 0, d, &out->kind[d], &out->slice[d][0], &out->slice[d][1]);
        if (st == CLT_OK) st = clt_trainer_tensor_slice(t, 2, d, &out->kind2[d], &out->slice2[d][0], &out->slice2[d][1]);
    }
    if (st != CLT_OK) diag("training on '%s': %s", spec, clt_last_error());
    clt_trainer_destroy(t);
    clt_model_destroy(m);
    clt_runtime_destroy(rt);
    return st;
}

static void compare(const run_result *ref, const run_result *got, const char *what, double patol)
{
    seed_compare(&ref->r, &got->r, what, patol);
}

/* A model with what cannot be split: Linear, GELU, Linear (a pair), LayerNorm, Linear (left
 * alone, replicated), trained 3 steps on one device and on `spec`. */
static void odd_model(const char *spec, clt_train_params p, const char *what)
{
    float loss[2][3], params[2][64 * 1024 + 64 + 37 * 64 + 37 + 2 * 37 + 10 * 37 + 10];
    size_t np = 0;
    for (int k = 0; k < 2; k++) {
        clt_model *m = NULL;
        clt_model_create(&m, clt_shape1(1024));
        clt_model_add(m, clt_linear(64));
        clt_model_add(m, clt_gelu());
        clt_model_add(m, clt_linear(37));
        clt_model_add(m, clt_layernorm(1e-5f));
        clt_model_add(m, clt_linear(10));
        np = clt_model_param_count(m);
        clt_runtime *rt = NULL;
        clt_trainer *t = NULL;
        clt_train_params q = p;
        if (!k) q.parallel = CLT_PARALLEL_NONE, q.verify_replicas = 0;
        q.max_batch = BATCH;
        clt_status st = clt_runtime_create(&rt, k ? spec : test_spec_one());
        if (st == CLT_OK) st = clt_trainer_create(&t, rt, m, &q);
        for (int s = 0; s < 3 && st == CLT_OK; s++) st = clt_trainer_step(t, xs[s], ys[s], BATCH, &loss[k][s]);
        for (int l = 0; l < 5 && st == CLT_OK; l++) {
            const clt__layer *L = &m->layers[l];
            if (L->w_count) st = clt_trainer_get_param(t, l, "weight", params[k] + L->param_off, L->w_count);
            if (st == CLT_OK && L->b_count)
                st = clt_trainer_get_param(t, l, "bias", params[k] + L->param_off + L->w_count, L->b_count);
        }
        clt_slice_kind kinds[5] = {0};
        int first, count;
        for (int l = 0; k && l < 5 && st == CLT_OK; l++) st = clt_trainer_tensor_slice(t, l, 1, &kinds[l], &first, &count);
        if (k && st == CLT_OK)
            ok(kinds[0] == CLT_SLICE_COLUMN && kinds[1] == CLT_SLICE_ELEMENTWISE && kinds[2] == CLT_SLICE_ROW &&
                   kinds[3] == CLT_SLICE_REPLICATED && kinds[4] == CLT_SLICE_REPLICATED,
               "%s: linear column, gelu on the slice, linear row, layernorm and the last linear "
               "replicated (%d %d %d %d %d)", what, kinds[0], kinds[1], kinds[2], kinds[3], kinds[4]);
        ok_status(st, "%s: 3 steps on %s", what, k ? spec : "one device");
        clt_trainer_destroy(t);
        clt_runtime_destroy(rt);
        clt_model_destroy(m);
    }
    ok_close(loss[1], loss[0], 3, ATOL, RTOL, what);
    ok_close(params[1], params[0], np, ATOL, RTOL, what);
}

int main(void)
{
    tap_require_device();
    const char *three = test_spec_n(3);
    make_data();

    clt_train_params base = clt_train_params_default();
    base.optim = clt_sgd(0.05f, 0.9f, 1e-4f, 0);
    base.seed = 3;
    static run_result single, r;
    if (!ok_status(train(test_spec_one(), base, &single), "one device: %d steps of the seed MLP", STEPS)) return tap_done();

    clt_train_params tp = base;
    tp.parallel = CLT_PARALLEL_TENSOR;
    tp.verify_replicas = 1;   /* every step checks the bits that must match across devices */
    const float w121[3] = {1, 2, 1}, w31[2] = {3, 1}, w31x2[4] = {3, 1, 3, 1};
    struct {
        const char *spec;
        int group;
        const float *weights;
        int fc1[3], fc2[3];     /* fc1's slice count, fc2's (row) slice first on devices 0..2 */
        const char *what;
    } cases[] = {
        {test_spec_n(2), 0, NULL, {256, 256, 0}, {0, 256, 0}, "2 devices, even slices"},
        {three, 0, NULL, {171, 171, 170}, {0, 171, 342}, "3 devices, even slices (512 = 171+171+170)"},
        {three, 0, w121, {128, 256, 128}, {0, 128, 384}, "3 devices, slices 1:2:1"},
        {test_spec_n(2), 0, w31, {384, 128, 0}, {0, 384, 0}, "2 devices, slices 3:1"},
        {test_spec_n(4), 2, w31x2, {384, 128, 384}, {0, 384, 0}, "4 devices = 2 groups of 2 (tensor x data), slices 3:1"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        clt_train_params p = tp;
        p.tensor_group = cases[c].group;
        p.tensor_split = cases[c].weights ? CLT_SPLIT_WEIGHTS : CLT_SPLIT_EQUAL;
        p.tensor_split_weights = cases[c].weights;
        if (!ok_status(train(cases[c].spec, p, &r), "%s: %d steps, replicas checked every step", cases[c].what, STEPS))
            continue;
        compare(&single, &r, cases[c].what, ATOL);
        int nd = cases[c].spec == three || cases[c].group ? 3 : 2;
        bool good = true;
        for (int d = 0; d < nd; d++)
            good &= r.kind[d] == CLT_SLICE_COLUMN && r.slice[d][1] == cases[c].fc1[d] && r.kind2[d] == CLT_SLICE_ROW &&
                    r.slice2[d][0] == cases[c].fc2[d] && r.slice2[d][1] == cases[c].fc1[d];
        ok(good, "%s: fc1 column slices of %d/%d/%d outputs, fc2 row slices from %d/%d/%d", cases[c].what,
           r.slice[0][1], r.slice[1][1], r.slice[2][1], r.slice2[0][0], r.slice2[1][0], r.slice2[2][0]);
    }

    /* CLT_SPLIT_AUTO times each device once at create and slices by speed: with device 1 made
     * 3 times slower (CLT_SLOW_DEVICES, read when the runtime starts), device 0 gets 3/4. The
     * row clock (CLT_SLOW_CLOCK=rows) stands in for the wall clock, so what is measured is the
     * factors and never the machine's load. */
    {
        clt_train_params p = tp;
        p.tensor_split = CLT_SPLIT_AUTO;
        setenv("CLT_SLOW_DEVICES", "1:3", 1);
        setenv("CLT_SLOW_CLOCK", "rows", 1);
        if (ok_status(train(test_spec_n(2), p, &r), "measured slices, device 1 slowed 3x: %d steps", STEPS)) {
            compare(&single, &r, "measured slices", ATOL);
            ok(r.slice[0][1] == 384 && r.slice[1][1] == 128,
               "measured slices: device 0 takes 3/4 of fc1 (%d and %d of 512 outputs)", r.slice[0][1], r.slice[1][1]);
        }
        unsetenv("CLT_SLOW_DEVICES");
        unsetenv("CLT_SLOW_CLOCK");
    }

    /* Adam with clipping: the optimizer state lives with the slices; clipping needs the norm
     * of every parameter once. Adam divides by sqrt(v): a rounding difference in a gradient near
     * zero moves a parameter by up to lr, so parameters are held to 2e-5 absolute (2% of lr):
     * a column slice's weight gradient is a GEMM of another shape, whose sums CLBlast may order
     * differently. */
    clt_train_params adam = base;
    adam.optim = clt_adam(1e-3f);
    adam.clip_norm = 0.5f;
    static run_result a1;
    ok_status(train(test_spec_one(), adam, &a1), "Adam with clipping on one device");
    adam.parallel = CLT_PARALLEL_TENSOR;
    adam.verify_replicas = 1;
    if (ok_status(train(three, adam, &r), "Adam with clipping on 3 devices")) compare(&a1, &r, "Adam + clipping, 3 devices", 2e-5);

    /* SGD with clipping: its update scales with the global norm, which counts every slice and
     * every replicated parameter once (Adam's barely depends on it). */
    clt_train_params clip = base;
    clip.clip_norm = 0.5f;
    static run_result c1;
    ok_status(train(test_spec_one(), clip, &c1), "SGD with clipping on one device");
    clip.parallel = CLT_PARALLEL_TENSOR;
    clip.verify_replicas = 1;
    clip.tensor_group = 2;
    if (ok_status(train(test_spec_n(4), clip, &r), "SGD with clipping on 2 groups of 2"))
        compare(&c1, &r, "SGD + clipping, 2 groups of 2", ATOL);

    /* Layers that cannot be split are replicated. */
    clt_train_params op = tp;
    odd_model(three, op, "linear-gelu-linear-layernorm-linear on 3 devices");

    {
        clt_model *m = ref_seed_mlp(0.0f);
        seed_checkpoint(three, adam, m, xs, ys, "Adam, 3 tensor-parallel devices");
        clt_model_destroy(m);
    }

    /* A batch smaller than the groups: a group with no rows still takes part. */
    {
        clt_runtime *rt;
        clt_model *m = ref_seed_mlp(0.0f);
        clt_trainer *t = NULL;
        clt_train_params p = tp;
        p.tensor_group = 1;   /* 3 groups of 1: plain data parallelism through this strategy */
        p.max_batch = 4;
        if (ok_status(clt_runtime_create(&rt, three), "runtime of 3 devices")) {
            if (ok_status(clt_trainer_create(&t, rt, m, &p), "tensor trainer with groups of 1")) {
                float l;
                ok_status(clt_trainer_step(t, xs[0], ys[0], 2, &l), "a batch of 2 over 3 groups");
                size_t counts[3];
                ok_status(clt_trainer_split(t, counts, 3), "the split");
                ok(counts[0] == 1 && counts[1] == 1 && counts[2] == 0, "rows 1/1/0 (%zu/%zu/%zu)", counts[0], counts[1], counts[2]);
            }
            clt_trainer_destroy(t);
            clt_runtime_destroy(rt);
        }
        clt_model_destroy(m);
    }

    /* A device failing in a group's all-reduce: the step returns its error at once, the other
     * group (waiting for the gradients across groups) included, and the trainer works on. */
    {
        clt_runtime *rt;
        clt_model *m = ref_seed_mlp(0.0f);
        clt_trainer *t = NULL;
        clt_train_params p = tp;
        p.tensor_group = 2;
        p.max_batch = BATCH;
        if (ok_status(clt_runtime_create(&rt, test_spec_n(4)), "runtime of 4 devices") &&
            ok_status(clt_trainer_create(&t, rt, m, &p), "2 groups of 2 for the failure")) {
            clt__fault_arm(rt, &(clt__fault){1, 0, CLT__FAULT_ALLREDUCE, 1, CL_DEVICE_NOT_AVAILABLE});
            double t0 = clt__now();
            ok_error(clt_trainer_step(t, xs[0], ys[0], BATCH, NULL), CLT_ERR_DEVICE_NOT_AVAILABLE, "CLT_FAULT",
                     "device 1 failing in its group's all-reduce: the step returns its error");
            double took = clt__now() - t0;
            ok(took < 10.0, "every device stopped within %.2f s (the collective timeout is 60 s)", took);
            clt__fault_arm(rt, NULL);
            float l;
            ok_status(clt_trainer_step(t, xs[0], ys[0], BATCH, &l), "the next step works");
            ok(isfinite(l) && clt_trainer_step_count(t) == 1, "and it is the first update (loss %g)", (double)l);
        }
        clt_trainer_destroy(t);
        clt_runtime_destroy(rt);
        clt_model_destroy(m);
    }

    /* Bad settings. */
    {
        clt_runtime *rt;
        clt_model *m = ref_seed_mlp(0.0f);
        clt_trainer *t = NULL;
        if (ok_status(clt_runtime_create(&rt, three), "runtime for the bad settings")) {
            clt_train_params p = tp;
            p.tensor_group = 2;
            ok_error(clt_trainer_create(&t, rt, m, &p), CLT_ERR_INVALID_ARG, "tensor_group 2 must divide",
                     "tensor_group 2 on 3 devices");
            p.tensor_group = -1;
            ok_error(clt_trainer_create(&t, rt, m, &p), CLT_ERR_INVALID_ARG, "tensor_group -1", "tensor_group -1");
            p.tensor_group = 4;
            ok_error(clt_trainer_create(&t, rt, m, &p), CLT_ERR_INVALID_ARG, "tensor_group 4", "tensor_group past the devices");
            p = tp;
            p.tensor_split = CLT_SPLIT_WEIGHTS;
            ok_error(clt_trainer_create(&t, rt, m, &p), CLT_ERR_INVALID_ARG, "tensor_split_weights", "weights missing");
            const float zero[3] = {1, 0, 1}, nan3[3] = {1, NAN, 1};
            p.tensor_split_weights = zero;
            ok_error(clt_trainer_create(&t, rt, m, &p), CLT_ERR_INVALID_ARG, "split weight 1 (0) must be finite and > 0",
                     "a weight of 0 (every device needs a slice)");
            p.tensor_split_weights = nan3;
            ok_error(clt_trainer_create(&t, rt, m, &p), CLT_ERR_INVALID_ARG, "split weight 1", "a NaN weight");
            p = tp;
            p.parallel = (clt_parallel)7;
            ok_error(clt_trainer_create(&t, rt, m, &p), CLT_ERR_INVALID_ARG, "parallel mode 7", "an unknown mode");
            clt_model *placed = ref_seed_mlp(0.0f);
            clt_model_place(placed, 0, 3, 0);
            clt_model_place(placed, 4, 6, 1);
            ok_error(clt_trainer_create(&t, rt, placed, &tp), CLT_ERR_INVALID_ARG,
                     "layer 4 (linear) is placed on tensor group 1, but the runtime's 3 devices in groups of 3",
                     "a placement on 2 groups when 3 devices make one group of 3");
            clt_model_destroy(placed);
            clt_slice_kind kind;
            int first, count;
            clt_train_params dp = base;
            dp.parallel = CLT_PARALLEL_DATA;
            if (ok_status(clt_trainer_create(&t, rt, m, &dp), "a data-parallel trainer"))
                ok_error(clt_trainer_tensor_slice(t, 0, 0, &kind, &first, &count), CLT_ERR_UNSUPPORTED,
                         "not tensor parallel", "slices of a data-parallel trainer");
            clt_trainer_destroy(t);
            t = NULL;
            if (ok_status(clt_trainer_create(&t, rt, m, &tp), "a tensor-parallel trainer")) {
                ok_error(clt_trainer_tensor_slice(t, 7, 0, &kind, &first, &count), CLT_ERR_INVALID_ARG,
                         "layer 7 out of range", "slice of layer 7 of 7");
                ok_error(clt_trainer_tensor_slice(t, 0, 3, &kind, &first, &count), CLT_ERR_INVALID_ARG,
                         "device 3 out of range", "slice on device 3 of 3");
                ok_error(clt_trainer_tensor_slice(t, 0, 0, NULL, &first, &count), CLT_ERR_INVALID_ARG,
                         "kind is NULL", "slice into NULL");
                ok_error(clt_trainer_tensor_slice(NULL, 0, 0, &kind, &first, &count), CLT_ERR_INVALID_ARG,
                         "trainer is NULL", "slice of NULL");
                ok_status(clt_trainer_tensor_slice(t, 6, 2, &kind, &first, &count), "slice of fc4 on device 2");
                ok(kind == CLT_SLICE_ROW && first == 86 && count == 42, "fc4 is row-parallel: inputs 86..127 on device 2 (%d, %d, %d)",
                   kind, first, count);
            }
            clt_trainer_destroy(t);
            clt_runtime_destroy(rt);
        }
        clt_model_destroy(m);
    }
    return tap_done();
}
