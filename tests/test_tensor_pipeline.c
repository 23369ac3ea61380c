/* Tensor parallelism with pipeline stages: a placement names tensor groups, each stage runs
 * tensor-parallel inside its group, micro-batches go through the stages by the naive, GPipe,
 * 1F1B and zero-bubble schedules (lib/pipeline_exec.c, the model strategy's executor). 5 steps
 * of the seed MLP train like one device (losses, parameters and gradients gathered back in the
 * model's numbering, predict, evaluate); 2 stages x 2-way groups on 4 devices, the seed
 * placement (group 0 holding two stages), 3 stages of 1-device groups, one stage on a 3-way
 * group; copies of a pipeline of groups (pipelines 2: 2 x 2 stages of 1-device groups on 4
 * devices under every schedule, 2 x 2 stages x 2-way groups on 8), their replicas checked every
 * step; accumulation; slices sized by measured speed; dropout (also in copies of a model
 * pipeline); Adam with clipping; a checkpoint loads into a new pipeline and into one device; bad
 * placements (and copies needing more groups than there are) are refused naming the layer and
 * the group; a device failing anywhere
 * in a step returns its error at once and leaves the parameters as the last good step left them.
 * Tolerance: |got - ref| <= 1e-6 + 1e-5*|ref|. */
#include "seed_check.h"

#include <string.h>
#include <unistd.h>

#define ATOL SEED_ATOL
#define RTOL SEED_RTOL
#define STEPS SEED_STEPS
#define BATCH SEED_BATCH
#define NPARAMS SEED_NPARAMS

static float xs[STEPS][BATCH * 1024];
static int32_t ys[STEPS][BATCH];

/* A placement as group of each layer; -1 ends it. */
typedef struct {
    int group[9];
} placement;

static const placement two_stages = {{0, 0, 0, 0, 1, 1, 1, -1}};   /* fc1 relu fc2 relu | fc3 relu fc4 */
static const placement seed_place = {{0, 0, 1, 1, 1, 1, 0, -1}};   /* the seed's: fc1 | fc2 fc3 | fc4 */
static const placement three_stages = {{0, 0, 1, 1, 1, 1, 2, -1}};
static const placement one_stage = {{0, 0, 0, 0, 0, 0, 0, -1}};
static const placement dropout_two = {{0, 0, 0, 1, 1, 1, 1, 1, -1}};   /* fc1 relu drop | fc2 .. fc4 */

static clt_model *placed_model(float dropout, const placement *pl)
{
    clt_model *m = ref_seed_mlp(dropout);
    for (int l = 0; pl && l < 9 && pl->group[l] >= 0; l++) clt_model_place(m, l, l, pl->group[l]);
    return m;
}

static clt_status train(const char *spec, clt_train_params p, float dropout, const placement *pl, seed_result *out)
{
    clt_runtime *rt = NULL;
    clt_trainer *t = NULL;
    clt_model *m = placed_model(dropout, pl);
    p.max_batch = BATCH;
    clt_status st = clt_runtime_create(&rt, spec);
    if (st == CLT_OK) st = clt_trainer_create(&t, rt, m, &p);
    if (st == CLT_OK) st = seed_run(t, m, xs, ys, out);
    if (st != CLT_OK) diag("training on '%s': %s", spec, clt_last_error());
    clt_trainer_destroy(t);
    clt_model_destroy(m);
    clt_runtime_destroy(rt);
    return st;
}

/* Which layers the trainer split on which device: (kind, first, count) of fc1 and fc3. */
static void check_slices(const char *spec, clt_train_params p)
{
    clt_runtime *rt = NULL;
    clt_trainer *t = NULL;
    clt_model *m = placed_model(0.0f, &two_stages);
    p.max_batch = BATCH;
    clt_slice_kind k[4][2] = {{0}};
    int first[4][2] = {{0}}, count[4][2] = {{0}};
    clt_status st = clt_runtime_create(&rt, spec);
    if (st == CLT_OK) st = clt_trainer_create(&t, rt, m, &p);
    for (int d = 0; d < 4 && st == CLT_OK; d++)
        for (int i = 0; i < 2 && st == CLT_OK; i++)
            st = clt_trainer_tensor_slice(t, i ? 4 : 0, d, &k[d][i], &first[d][i], &count[d][i]);
    if (ok_status(st, "slices of fc1 and fc3 on 4 devices in 2 stages"))
        ok(k[0][0] == CLT_SLICE_COLUMN && count[0][0] == 256 && first[1][0] == 256 && k[2][1] == CLT_SLICE_COLUMN && count[2][1] == 64 &&
           first[3][1] == 64, "fc1 column-parallel in group 0 (256 + 256 outputs), fc3 in group 1 (64 + 64): "
           "%d/%d/%d, %d/%d/%d", k[0][0], count[0][0], first[1][0], k[2][1], count[2][1], first[3][1]);
    clt_trainer_destroy(t);
    clt_model_destroy(m);
    clt_runtime_destroy(rt);
}

/* A timeline of one step shows each instruction of every group, and the tensor all-reduces. */
static void timeline(const char *spec, clt_train_params p)
{
    char path[] = "/tmp/clt-tpipe-trace-XXXXXX";
    int fd = mkstemp(path);
    if (fd >= 0) close(fd);
    clt_runtime_options o = clt_runtime_options_default();
    o.devices = spec;
    o.trace_path = path;
    clt_runtime *rt = NULL;
    clt_trainer *t = NULL;
    clt_model *m = placed_model(0.0f, &two_stages);
    p.max_batch = BATCH;
    clt_status st = clt_runtime_create_ex(&rt, &o);
    if (st == CLT_OK) st = clt_trainer_create(&t, rt, m, &p);
    if (st == CLT_OK) st = clt_trainer_step(t, xs[0], ys[0], BATCH, NULL);
    clt_trainer_destroy(t);
    clt_runtime_destroy(rt);   /* writes the file */
    clt_model_destroy(m);
    static char text[1 << 22];
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
    if (f) fclose(f);
    text[n] = 0;
    if (ok_status(st, "timeline: one step in 2 stages recorded"))
        ok(strstr(text, "\"forward mb 1\"") && strstr(text, "\"wait for activations mb 1\"") &&
           strstr(text, "\"send gradients mb 1\"") && strstr(text, "\"tensor all-reduce\""),
           "timeline: the instructions of micro-batch 1 and the tensor all-reduces are on it (%zu bytes)", n);
    remove(path);
}

/* A device failing at `op` in the second update: the step returns the lost-device status within
 * a bound, every parameter is the bits the first update left, and the next step works. */
static void fault(const char *spec, clt_train_params p, int device, int op, const char *what)
{
    clt_runtime *rt = NULL;
    clt_trainer *t = NULL;
    clt_model *m = placed_model(0.0f, &two_stages);
    static float before[NPARAMS], after[NPARAMS];
    p.max_batch = BATCH;
    clt_status st = clt_runtime_create(&rt, spec);
    if (st == CLT_OK) st = clt_trainer_create(&t, rt, m, &p);
    if (st == CLT_OK) st = clt_trainer_step(t, xs[0], ys[0], BATCH, NULL);
    if (st == CLT_OK) st = seed_gather(t, m, before, 0);
    if (ok_status(st, "%s: a good step first", what)) {
        clt__fault_arm(rt, &(clt__fault){device, 2, op, 0, CL_DEVICE_NOT_AVAILABLE});
        double t0 = clt__now();
        ok_error(clt_trainer_step(t, xs[1], ys[1], BATCH, NULL), CLT_ERR_DEVICE_NOT_AVAILABLE, "CLT_FAULT",
                 "%s: the step returns the lost device's status", what);
        double took = clt__now() - t0;
        ok(took < 10.0, "%s: every device stopped within %.2f s (the waits' timeouts are minutes)", what, took);
        clt__fault_arm(rt, NULL);
        st = seed_gather(t, m, after, 0);
        ok(st == CLT_OK && !memcmp(before, after, sizeof before) && clt_trainer_step_count(t) == 1,
           "%s: the parameters are the bits of the last good step", what);
        float l;
        ok_status(clt_trainer_step(t, xs[1], ys[1], BATCH, &l), "%s: the next step works", what);
        ok(isfinite(l) && clt_trainer_step_count(t) == 2, "%s: and it is the second update (loss %g)", what, (double)l);
    }
    clt__fault_arm(rt, NULL);
    clt_trainer_destroy(t);
    clt_model_destroy(m);
    clt_runtime_destroy(rt);
}

int main(void)
{
    tap_require_device();
    ref_seed_batches(xs[0], ys[0], STEPS, BATCH);
    const char *four = test_spec_n(4), *three = test_spec_n(3), *eight = test_spec_n(8);

    clt_train_params base = clt_train_params_default();
    base.optim = clt_sgd(0.05f, 0.9f, 1e-4f, 0);
    base.seed = 3;
    static seed_result single, r;
    if (!ok_status(train(test_spec_one(), base, 0.0f, NULL, &single), "one device: %d steps of the seed MLP", STEPS))
        return tap_done();

    clt_train_params tp = base;
    tp.parallel = CLT_PARALLEL_TENSOR;
    tp.verify_replicas = 1;   /* replicated layers and matching slices are checked every step */
    struct {
        const char *spec;
        int group, micro;
        clt_pipeline_schedule sched;
        int pipelines;
        const placement *pl;
        const char *what;
    } cases[] = {
        {four, 2, 2, CLT_PIPELINE_NAIVE, 1, &two_stages, "2 stages x 2-way groups, naive, 2 micro-batches"},
        {four, 2, 4, CLT_PIPELINE_NAIVE, 1, &two_stages, "2 stages x 2-way groups, naive, 4 micro-batches"},
        {four, 2, 2, CLT_PIPELINE_GPIPE, 1, &two_stages, "2 stages x 2-way groups, gpipe, 2 micro-batches"},
        {four, 2, 4, CLT_PIPELINE_GPIPE, 1, &two_stages, "2 stages x 2-way groups, gpipe, 4 micro-batches"},
        {four, 2, 2, CLT_PIPELINE_1F1B, 1, &two_stages, "2 stages x 2-way groups, 1f1b, 2 micro-batches"},
        {four, 2, 4, CLT_PIPELINE_1F1B, 1, &two_stages, "2 stages x 2-way groups, 1f1b, 4 micro-batches"},
        {four, 2, 3, CLT_PIPELINE_1F1B, 1, &seed_place, "the seed placement on 2-way groups (group 0 holds 2 stages), 1f1b, 3 micro-batches"},
        {three, 1, 4, CLT_PIPELINE_GPIPE, 1, &three_stages, "3 stages of 1-device groups, gpipe, 4 micro-batches"},
        {three, 3, 4, CLT_PIPELINE_1F1B, 1, &one_stage, "one stage on a 3-way group, 1f1b, 4 micro-batches"},
        {four, 2, 2, CLT_PIPELINE_ZB, 1, &two_stages, "2 stages x 2-way groups, zb, 2 micro-batches"},
        {four, 2, 4, CLT_PIPELINE_ZB, 1, &two_stages, "2 stages x 2-way groups, zb, 4 micro-batches"},
        {four, 2, 3, CLT_PIPELINE_ZB, 1, &seed_place, "the seed placement on 2-way groups (group 0 holds 2 stages), zb, 3 micro-batches"},
        {three, 1, 6, CLT_PIPELINE_ZB, 1, &three_stages, "3 stages of 1-device groups, zb, 6 micro-batches"},
        {four, 1, 2, CLT_PIPELINE_NAIVE, 2, &two_stages, "2 copies of 2 stages of 1-device groups, naive, 2 micro-batches"},
        {four, 1, 4, CLT_PIPELINE_GPIPE, 2, &two_stages, "2 copies of 2 stages of 1-device groups, gpipe, 4 micro-batches"},
        {four, 1, 3, CLT_PIPELINE_1F1B, 2, &two_stages, "2 copies of 2 stages of 1-device groups, 1f1b, 3 micro-batches"},
        {four, 1, 4, CLT_PIPELINE_ZB, 2, &two_stages, "2 copies of 2 stages of 1-device groups, zb, 4 micro-batches"},
        {eight, 2, 4, CLT_PIPELINE_1F1B, 2, &two_stages, "2 copies of 2 stages x 2-way groups on 8 devices, 1f1b, 4 micro-batches"},
        {eight, 2, 3, CLT_PIPELINE_ZB, 2, &seed_place, "2 copies of the seed placement on 2-way groups on 8 devices, zb, 3 micro-batches"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        clt_train_params p = tp;
        p.tensor_group = cases[c].group;
        p.micro_batches = cases[c].micro;
        p.pipeline = cases[c].sched;
        p.pipelines = cases[c].pipelines;
        if (ok_status(train(cases[c].spec, p, 0.0f, cases[c].pl, &r), "%s: %d steps", cases[c].what, STEPS))
            seed_compare(&single, &r, cases[c].what, ATOL);
    }
    {
        clt_train_params p = tp;
        p.tensor_group = 2;
        check_slices(four, p);
    }

    /* Accumulation: two steps' gradients add up before one update, through the micro-batches. */
    {
        static seed_result acc1;
        clt_train_params p = base;
        p.accumulation = 2;
        if (ok_status(train(test_spec_one(), p, 0.0f, NULL, &acc1), "accumulation 2 on one device")) {
            p = tp;
            p.accumulation = 2, p.tensor_group = 2, p.micro_batches = 2, p.pipeline = CLT_PIPELINE_GPIPE;
            if (ok_status(train(four, p, 0.0f, &two_stages, &r), "accumulation 2 in 2 stages x 2-way groups"))
                seed_compare(&acc1, &r, "accumulation 2, 2 stages x 2-way groups", ATOL);
        }
    }

    /* CLT_SPLIT_AUTO times each device once at create, over the stages it holds: with tensor
     * rank 1 of both groups made 3 times slower, tensor rank 0 gets 3/4 of every pair. The row
     * clock (CLT_SLOW_CLOCK=rows) stands in for the wall clock: the machine's load is not
     * measured. */
    {
        clt_train_params p = tp;
        p.tensor_split = CLT_SPLIT_AUTO, p.tensor_group = 2, p.micro_batches = 2;
        setenv("CLT_SLOW_DEVICES", "1:3,3:3", 1);
        setenv("CLT_SLOW_CLOCK", "rows", 1);
        clt_runtime *rt = NULL;
        clt_trainer *t = NULL;
        clt_model *m = placed_model(0.0f, &two_stages);
        clt_slice_kind k;
        int f, c0 = 0, c1 = 0, c2 = 0, c3 = 0;
        clt_status st = clt_runtime_create(&rt, four);
        if (st == CLT_OK) st = clt_trainer_create(&t, rt, m, &p);
        for (int s = 0; s < 2 && st == CLT_OK; s++) st = clt_trainer_step(t, xs[s], ys[s], BATCH, NULL);
        if (st == CLT_OK) st = clt_trainer_tensor_slice(t, 0, 0, &k, &f, &c0);
        if (st == CLT_OK) st = clt_trainer_tensor_slice(t, 0, 1, &k, &f, &c1);
        if (st == CLT_OK) st = clt_trainer_tensor_slice(t, 4, 2, &k, &f, &c2);
        if (st == CLT_OK) st = clt_trainer_tensor_slice(t, 4, 3, &k, &f, &c3);
        if (ok_status(st, "measured slices in 2 stages, devices 1 and 3 slowed 3x: 2 steps"))
            ok(c0 == 384 && c1 == 128 && c2 == 96 && c3 == 32,
               "measured slices: tensor rank 0 takes 3/4 of fc1 (%d and %d of 512) and of fc3 (%d and %d of 128)",
               c0, c1, c2, c3);
        clt_trainer_destroy(t);
        clt_model_destroy(m);
        clt_runtime_destroy(rt);
        unsetenv("CLT_SLOW_DEVICES");
        unsetenv("CLT_SLOW_CLOCK");
    }

    /* Dropout draws its mask by the row's place in the batch, whichever micro-batch and slot. */
    {
        static seed_result d1;
        clt_train_params p = base;
        if (ok_status(train(test_spec_one(), p, 0.25f, NULL, &d1), "dropout 0.25 on one device")) {
            p = tp;
            p.tensor_group = 2, p.micro_batches = 4, p.pipeline = CLT_PIPELINE_GPIPE;
            if (ok_status(train(four, p, 0.25f, &dropout_two, &r), "dropout in 2 stages x 2-way groups, gpipe, 4 micro-batches"))
                seed_compare(&d1, &r, "dropout, 2 stages x 2-way groups", ATOL);
            /* the model strategy's copies too: copy 1's rows are rows of the batch, not of its share */
            p = base;
            p.parallel = CLT_PARALLEL_MODEL, p.pipelines = 2, p.micro_batches = 2, p.pipeline = CLT_PIPELINE_1F1B;
            p.verify_replicas = 1;
            if (ok_status(train(four, p, 0.25f, &dropout_two, &r), "dropout in 2 copies of a 2-device pipeline (model parallel)"))
                seed_compare(&d1, &r, "dropout, 2 copies of a 2-device pipeline", ATOL);
        }
    }

    /* Adam with clipping: the norm counts every stage's parameters once. Parameters held to 2e-5
     * absolute, as in tests/test_tensor_parallel.c (Adam divides by sqrt(v)). */
    clt_train_params adam = base;
    adam.optim = clt_adam(1e-3f);
    adam.clip_norm = 0.5f;
    /* devices of other vendors round a gradient otherwise still (their own exp, sqrt and GEMM
     * orders): 1e-4 (10% of lr) across vendors, 2e-5 among devices of one kind */
    const double adam_atol = test_devices_alike(4) ? 2e-5 : 1e-4;
    static seed_result a1;
    if (ok_status(train(test_spec_one(), adam, 0.0f, NULL, &a1), "Adam with clipping on one device")) {
        clt_train_params p = adam;
        p.parallel = CLT_PARALLEL_TENSOR, p.verify_replicas = 1;
        p.tensor_group = 2, p.micro_batches = 4, p.pipeline = CLT_PIPELINE_1F1B;
        if (ok_status(train(four, p, 0.0f, &two_stages, &r), "Adam with clipping in 2 stages x 2-way groups"))
            seed_compare(&a1, &r, "Adam + clipping, 2 stages x 2-way groups", adam_atol);
        clt_model *m = placed_model(0.0f, &two_stages);
        seed_checkpoint(four, p, m, xs, ys, "Adam, 2 stages x 2-way groups");
        clt_model_destroy(m);
    }

    /* Bad placements. */
    {
        clt_runtime *rt = NULL;
        clt_trainer *t = NULL;
        if (ok_status(clt_runtime_create(&rt, four), "runtime of 4 devices for the bad placements")) {
            clt_train_params p = tp;
            p.tensor_group = 2;
            const placement beyond = {{0, 0, 0, 0, 2, 2, 2, -1}};
            clt_model *m = placed_model(0.0f, &beyond);
            ok_error(clt_trainer_create(&t, rt, m, &p), CLT_ERR_INVALID_ARG,
                     "layer 4 (linear) is placed on tensor group 2, but the runtime's 4 devices in groups of 2 "
                     "(tensor_group) make 2 groups", "a layer on group 2 of 2");
            clt_model_destroy(m);
            const placement partial = {{0, 0, 0, 0, -1}};
            m = placed_model(0.0f, &partial);
            ok_error(clt_trainer_create(&t, rt, m, &p), CLT_ERR_INVALID_ARG, "layer 4 (linear) is not placed",
                     "a placement leaving layers out");
            clt_model_destroy(m);
            p.tensor_group = 0;   /* one group of 4 */
            m = placed_model(0.0f, &two_stages);
            ok_error(clt_trainer_create(&t, rt, m, &p), CLT_ERR_INVALID_ARG, "make 1 group",
                     "2 stages when all 4 devices form one group");
            p.tensor_group = 2, p.pipelines = 2;
            ok_error(clt_trainer_create(&t, rt, m, &p), CLT_ERR_INVALID_ARG,
                     "2 copies of a placement on tensor groups 0..1 need 4 groups, but the runtime's 4 devices "
                     "in groups of 2 (tensor_group) make 2", "2 copies of a pipeline of 2 groups on 2 groups");
            clt_model_destroy(m);
            ok(t == NULL, "no trainer made by the refused calls");
            clt_runtime_destroy(rt);
        }
    }

    {
        clt_train_params p = tp;
        p.tensor_group = 2, p.micro_batches = 2, p.pipeline = CLT_PIPELINE_GPIPE;
        timeline(four, p);
    }

    /* Faults: in a forward of the first stage's group, in a backward of the last, in a tensor
     * all-reduce, in a copy between stages, in the update (the others had updated: undone). */
    clt_train_params f = tp;
    f.tensor_group = 2, f.micro_batches = 2, f.pipeline = CLT_PIPELINE_1F1B;
    fault(four, f, 1, CLT__FAULT_FORWARD, "device 1 failing in a forward");
    fault(four, f, 3, CLT__FAULT_BACKWARD, "device 3 failing in a backward");
    fault(four, f, 2, CLT__FAULT_ALLREDUCE, "device 2 failing in a tensor all-reduce");
    fault(four, f, 0, CLT__FAULT_COPY, "device 0 failing in a copy between stages");
    fault(four, f, 3, CLT__FAULT_OPTIMIZER, "device 3 failing in the update");
    return tap_done();
}
