/* The trainer against PyTorch: losses, every optimizer over several steps, clipping, and the
 * seed MLP (1024-512-256-128-10) trained 5 steps with SGD and momentum; then schedules, changing
 * batch sizes, evaluation, and bad input that must leave the model unchanged. */
#include "internal.h"
#include "ref.h"
#include "tap.h"

#include <math.h>

static clt_runtime *rt;

/* ---- losses, through a net of one flatten layer (identity) ------------------------------- */

typedef struct {
    clt_model *m;
    clt_loss loss;
    const float *z, *targets;
    const int32_t *labels;
    size_t B, C;
    float scale;
    double sum;
    float *dz;
    size_t correct;
} loss_job;

/* in -> Linear(hidden) -> act -> Linear(out): the small model several checks train. */
static clt_model *mlp2(int in, int hidden, clt_layer_desc act, int out)
{
    clt_model *m;
    clt_model_create(&m, clt_shape1(in));
    clt_model_add(m, clt_linear(hidden));
    clt_model_add(m, act);
    clt_model_add(m, clt_linear(out));
    return m;
}

static clt_status loss_task(clt__worker *w, void *arg)
{
    loss_job *j = arg;
    clt__net *n;
    clt_status st = clt__net_create(w, j->m, 0, 0, j->B, 1, &n);
    if (st != CLT_OK) return st;
    clEnqueueWriteBuffer(w->queue, n->input, CL_TRUE, 0, j->B * j->C * 4, j->z, 0, NULL, NULL);
    if (j->labels) clEnqueueWriteBuffer(w->queue, n->labels, CL_TRUE, 0, j->B * 4, j->labels, 0, NULL, NULL);
    if (j->targets) clEnqueueWriteBuffer(w->queue, n->targets, CL_TRUE, 0, j->B * j->C * 4, j->targets, 0, NULL, NULL);
    st = clt__net_forward(n, j->B, 1, 0);
    if (st == CLT_OK) st = clt__net_loss(n, j->loss, j->B, j->scale, 1, &j->sum, &j->correct);
    if (st == CLT_OK)
        clEnqueueReadBuffer(w->queue, n->gbuf[0], CL_TRUE, 0, j->B * j->C * 4, j->dz, 0, NULL, NULL);
    clt__net_destroy(n);
    return st;
}

static void check_losses(void)
{
    ref_file f;
    if (ok(ref_load(&f, "cross_entropy") == 0, "cross-entropy reference loads")) {
        const ref_entry *z = ref_get(&f, "z"), *lab = ref_get(&f, "labels"), *loss = ref_get(&f, "loss"), *dz = ref_get(&f, "dz");
        size_t B = (size_t)z->dims[0], C = (size_t)z->dims[1];
        int32_t labels[16];
        for (size_t i = 0; i < B; i++) labels[i] = (int32_t)lab->data[i];
        clt_model *m;
        clt_model_create(&m, clt_shape1((int)C));
        clt_model_add(m, clt_flatten());
        float got[64];
        for (int d = 0; d < clt_runtime_device_count(rt); d++) {
            loss_job j = {m, CLT_LOSS_CROSS_ENTROPY, z->data, NULL, labels, B, C, 1.0f / (float)B, 0, got, 0};
            ok_status(clt__worker_call(&rt->workers[d], loss_task, &j), "cross-entropy on device %d", d);
            float mean = (float)(j.sum / (double)B);
            ok_close(&mean, loss->data, 1, 1e-6, 1e-5, "cross-entropy loss matches PyTorch");
            ok_close(got, dz->data, B * C, 1e-6, 1e-5, "cross-entropy gradient matches PyTorch");
        }
        clt_model_destroy(m);
        ref_free(&f);
    }
    if (ok(ref_load(&f, "mse") == 0, "MSE reference loads")) {
        const ref_entry *y = ref_get(&f, "y"), *t = ref_get(&f, "t"), *loss = ref_get(&f, "loss"), *dy = ref_get(&f, "dy");
        size_t B = (size_t)y->dims[0], C = (size_t)y->dims[1];
        clt_model *m;
        clt_model_create(&m, clt_shape1((int)C));
        clt_model_add(m, clt_flatten());
        float got[64];
        loss_job j = {m, CLT_LOSS_MSE, y->data, t->data, NULL, B, C, 1.0f / (float)(B * C), 0, got, 0};
        ok_status(clt__worker_call(&rt->workers[0], loss_task, &j), "MSE on device 0");
        float mean = (float)(j.sum / (double)(B * C));
        ok_close(&mean, loss->data, 1, 1e-6, 1e-5, "MSE loss matches PyTorch");
        ok_close(got, dy->data, B * C, 1e-6, 1e-5, "MSE gradient matches PyTorch");
        clt_model_destroy(m);
        ref_free(&f);
    }
}

/* NaN in a row of the outputs: that row's loss and its gradient NaN, as PyTorch's (log_softmax
 * of a row with NaN is all NaN), the other rows' finite; and the accuracy's argmax is
 * torch.argmax's, the NaN the largest. Every device. */
static void check_loss_nan(void)
{
    clt_model *m;
    clt_model_create(&m, clt_shape1(3));
    clt_model_add(m, clt_flatten());
    const float z[6] = {0.5f, NAN, 2.0f, 1.0f, 3.0f, -1.0f}, y[6] = {0.5f, 1.0f, 2.0f, 1.0f, NAN, -1.0f};
    const float t[6] = {0, 0, 1, 0, 1, 0};
    const int32_t labels[2] = {1, 1};
    float got[6];
    char what[64];
    for (int d = 0; d < clt_runtime_device_count(rt); d++) {
        loss_job j = {m, CLT_LOSS_CROSS_ENTROPY, z, NULL, labels, 2, 3, 0.5f, 0, got, 0};
        if (ok_status(clt__worker_call(&rt->workers[d], loss_task, &j), "cross-entropy with a NaN on device %d", d)) {
            ok(isnan(j.sum), "device %d: the cross-entropy of a row holding NaN is NaN (%g)", d, j.sum);
            snprintf(what, sizeof what, "device %d: the cross-entropy gradient", d);
            ok_nan_where(got, "NNN...", what);
            ok(j.correct == 2, "device %d: the row's NaN is its argmax, as torch.argmax's (%zu of 2 right)", d, j.correct);
        }
        loss_job k = {m, CLT_LOSS_MSE, y, t, NULL, 2, 3, 1.0f / 6, 0, got, 0};
        if (ok_status(clt__worker_call(&rt->workers[d], loss_task, &k), "MSE with a NaN on device %d", d)) {
            ok(isnan(k.sum), "device %d: the MSE of a row holding NaN is NaN (%g)", d, k.sum);
            snprintf(what, sizeof what, "device %d: the MSE gradient", d);
            ok_nan_where(got, "....N.", what);
            ok(k.correct == 2, "device %d: MSE's argmax is torch.argmax's too (%zu of 2 right)", d, k.correct);
        }
    }
    clt_model_destroy(m);
}

/* The sum of squares behind clipping, over 40 gradients (32 in its 16 vector lanes, 8 after):
 * NaN in either part makes it NaN, Inf Inf, as torch.linalg.vector_norm. */
typedef struct {
    clt_model *m;
    long bad;       /* element set to `value`, the rest 1 */
    float value;
    double sumsq;
} sumsq_job;

static clt_status sumsq_task(clt__worker *w, void *arg)
{
    sumsq_job *j = arg;
    clt__net *n;
    clt_status st = clt__net_create(w, j->m, 0, 0, 1, 1, &n);
    if (st != CLT_OK) return st;
    float g[40];
    for (int i = 0; i < 40; i++) g[i] = 1.0f;
    if (j->bad >= 0) g[j->bad] = j->value;
    cl_int e = clEnqueueWriteBuffer(w->queue, n->grads, CL_TRUE, 0, sizeof g, g, 0, NULL, NULL);
    st = e ? clt__fail_cl(e, clt__worker_name(w), "writing the gradients")
           : clt__net_sumsq(n, (clt__view){n->grads, 0}, 40, &j->sumsq);
    clt__net_destroy(n);
    return st;
}

static void check_sumsq_nan(void)
{
    clt_model *m;
    clt_model_create(&m, clt_shape1(7));
    clt_model_add(m, clt_linear(5));   /* 35 weights and 5 biases */
    for (int d = 0; d < clt_runtime_device_count(rt); d++) {
        sumsq_job plain = {m, -1, 0, 0}, lane = {m, 5, NAN, 0}, tail = {m, 37, NAN, 0}, inf = {m, 3, INFINITY, 0};
        sumsq_job *all[] = {&plain, &lane, &tail, &inf};
        bool ran = true;
        for (int i = 0; i < 4; i++) ran &= clt__worker_call(&rt->workers[d], sumsq_task, all[i]) == CLT_OK;
        if (!ok(ran, "device %d: four sums of squares", d)) continue;
        ok(plain.sumsq == 40.0 && isnan(lane.sumsq) && isnan(tail.sumsq) && isinf(inf.sumsq),
           "device %d: the sum of squares is 40, NaN with a NaN in the vector lanes or after them, Inf "
           "with an Inf (%g %g %g %g)", d, plain.sumsq, lane.sumsq, tail.sumsq, inf.sumsq);
    }
    clt_model_destroy(m);
}

/* torch.nn.utils.clip_grad_norm_ with a NaN norm scales every gradient by NaN (torch.clamp
 * keeps it), with an Inf norm by 0; check_numerics off, so nothing stops the step. */
static void check_clip_nan(void)
{
    clt_model *m;
    clt_model_create(&m, clt_shape1(2));
    clt_model_add(m, clt_linear(2));
    clt_train_params p = clt_train_params_default();
    p.clip_norm = 1.0f;
    p.check_numerics = 0;
    clt_trainer *t;
    if (ok_status(clt_trainer_create(&t, rt, m, &p), "trainer clipping at 1, without numeric checks")) {
        float nan_scale = 0, inf_scale = 1, scale = 0;
        ok_status(clt__grad_scale(t, 1.0, NAN, &nan_scale), "the clip factor of a NaN norm");
        ok_status(clt__grad_scale(t, 1.0, INFINITY, &inf_scale), "the clip factor of an Inf norm");
        ok_status(clt__grad_scale(t, 1.0, 4.0, &scale), "the clip factor of norm 2");
        ok(isnan(nan_scale) && inf_scale == 0.0f && scale == (float)(1.0 / (2.0 + 1e-6)),
           "clipping scales by NaN, 0 and 1/(2 + 1e-6), as torch's clip_grad_norm_ (%g %g %g)",
           nan_scale, inf_scale, scale);
        clt_trainer_destroy(t);
    }
    clt_model_destroy(m);
}

/* One NaN in a batch, check_numerics off: as in PyTorch, predict gives NaN in that row's
 * outputs (ReLU keeps it, fused with its Linear or not), the step's loss is NaN and every fc1
 * weight is NaN after the update. Nothing may look finite. Every device. */
static void check_nan_end_to_end(void)
{
    clt_model *m = mlp2(8, 16, clt_relu(), 3);
    enum { N = 4 };
    float x[N * 8], out[N * 3], w[16 * 8];
    const int32_t y[N] = {0, 1, 2, 0};
    ref_rng rng = {17};
    ref_fill(&rng, x, N * 8, 1.0);
    x[2 * 8 + 3] = NAN;
    for (int d = 0; d < clt_runtime_device_count(rt); d++) {
        clt_train_params p = clt_train_params_default();
        p.device = d;
        p.max_batch = N;
        p.check_numerics = 0;
        p.optim = clt_sgd(0.1f, 0, 0, 0);
        clt_trainer *t;
        if (!ok_status(clt_trainer_create(&t, rt, m, &p), "device %d: trainer without numeric checks", d)) continue;
        char what[64];
        snprintf(what, sizeof what, "device %d: predict's outputs", d);
        if (ok_status(clt_trainer_predict(t, x, N, out), "device %d: predict a batch with a NaN in row 2", d))
            ok_nan_where(out, "......NNN...", what);
        float loss = 0;
        if (ok_status(clt_trainer_step(t, x, y, N, &loss), "device %d: a step on that batch", d))
            ok(isnan(loss), "device %d: the step's loss is %g, as PyTorch's", d, loss);
        bool all_nan = clt_trainer_get_param(t, 0, "weight", w, 16 * 8) == CLT_OK;
        for (int i = 0; i < 16 * 8; i++) all_nan &= isnan(w[i]);
        ok(all_nan, "device %d: every fc1 weight is NaN after the update, as PyTorch's", d);
        clt_trainer_destroy(t);
    }
    clt_model_destroy(m);

    /* evaluate's accuracy: the argmax of a row with a NaN is that NaN (torch.argmax) */
    clt_model_create(&m, clt_shape1(3));
    clt_model_add(m, clt_relu());
    const float z[6] = {0.5f, NAN, 2.0f, 1.0f, 3.0f, 0.0f};
    const int32_t labels[2] = {1, 1};
    clt_train_params p = clt_train_params_default();
    p.max_batch = 2;
    clt_trainer *t;
    if (ok_status(clt_trainer_create(&t, rt, m, &p), "trainer of one ReLU")) {
        float loss = 0, acc = 0;
        ok_status(clt_trainer_evaluate(t, z, labels, 2, &loss, &acc), "evaluate rows with a NaN");
        ok(isnan(loss) && acc == 1.0f, "evaluate: loss %g (NaN) and accuracy %g (1: the NaN is the argmax)",
           loss, acc);
        clt_trainer_destroy(t);
    }
    clt_model_destroy(m);
}

/* ---- optimizers: Linear(6, 4), 4 steps, weights after each -------------------------------- */

static void check_optimizer(const char *name, clt_optimizer o, float clip)
{
    char file[64];
    snprintf(file, sizeof file, "optim_%s", name);
    ref_file f;
    if (!ok(ref_load(&f, file) == 0, "%s reference loads", file)) return;
    clt_model *m;
    clt_model_create(&m, clt_shape1(6));
    clt_model_add(m, clt_linear(4));
    clt_train_params p = clt_train_params_default();
    p.optim = o;
    p.clip_norm = clip;
    p.max_batch = 8;
    for (int d = 0; d < clt_runtime_device_count(rt); d++) {
        p.device = d;
        clt_trainer *t;
        if (!ok_status(clt_trainer_create(&t, rt, m, &p), "%s: trainer on device %d", name, d)) continue;
        clt_trainer_set_param(t, 0, "weight", ref_get(&f, "w0")->data, 24);
        clt_trainer_set_param(t, 0, "bias", ref_get(&f, "b0")->data, 4);
        bool good = true;
        for (int s = 0; s < 4 && good; s++) {
            char key[16];
            snprintf(key, sizeof key, "x%d", s);
            const ref_entry *x = ref_get(&f, key);
            snprintf(key, sizeof key, "labels%d", s);
            const ref_entry *lab = ref_get(&f, key);
            int32_t labels[5];
            for (int i = 0; i < 5; i++) labels[i] = (int32_t)lab->data[i];
            float loss, wgot[24], bgot[4];
            good &= clt_trainer_step(t, x->data, labels, 5, &loss) == CLT_OK;
            snprintf(key, sizeof key, "loss%d", s);
            good &= tap_first_mismatch(&loss, ref_get(&f, key)->data, 1, 1e-6, 1e-5) < 0;
            clt_trainer_get_param(t, 0, "weight", wgot, 24);
            clt_trainer_get_param(t, 0, "bias", bgot, 4);
            snprintf(key, sizeof key, "w%d", s + 1);
            long bad = tap_first_mismatch(wgot, ref_get(&f, key)->data, 24, 1e-6, 1e-5);
            snprintf(key, sizeof key, "b%d", s + 1);
            bad = bad >= 0 ? bad : tap_first_mismatch(bgot, ref_get(&f, key)->data, 4, 1e-6, 1e-5);
            if (bad >= 0 || !good) diag("%s: step %d differs from PyTorch (%s)", name, s + 1, clt_last_error());
            good &= bad < 0;
        }
        ok(good, "%s on device %d: losses and parameters match PyTorch for 4 steps (1e-6 + 1e-5*|ref|)", name, d);
        ok(clt_trainer_step_count(t) == 4, "%s: 4 steps counted", name);
        clt_trainer_destroy(t);
    }
    clt_model_destroy(m);
    ref_free(&f);
}

/* ---- the seed MLP end to end ----------------------------------------------------------- */

static void check_seed_mlp(void)
{
    ref_file f;
    if (!ok(ref_load(&f, "seed_mlp_sgd") == 0, "seed MLP reference loads")) return;
    const int *sizes = ref_seed_sizes;
    clt_model *m = ref_seed_mlp(0);
    ok(clt_model_param_count(m) == 1024 * 512 + 512 + 512 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10,
       "the seed MLP has %zu parameters", clt_model_param_count(m));
    clt_train_params p = clt_train_params_default();
    p.optim = clt_sgd(0.05f, 0.9f, 0.0f, 0);
    p.max_batch = 16;
    clt_trainer *t;
    if (!ok_status(clt_trainer_create(&t, rt, m, &p), "seed MLP trainer")) goto out;
    ref_rng rng = {7};
    for (int i = 0; i < 4; i++) {
        size_t nw = (size_t)sizes[i + 1] * (size_t)sizes[i];
        float *w = malloc(nw * 4), b[512];
        double bound = 1.0 / sqrt((double)sizes[i]);
        ref_fill(&rng, w, nw, bound);
        ref_fill(&rng, b, (size_t)sizes[i + 1], bound);
        clt_trainer_set_param(t, 2 * i, "weight", w, nw);
        clt_trainer_set_param(t, 2 * i, "bias", b, (size_t)sizes[i + 1]);
        free(w);
    }
    float *x = malloc(16 * 1024 * 4);
    bool losses_ok = true;
    for (int s = 0; s < 5; s++) {
        ref_fill(&rng, x, 16 * 1024, 1.0);
        int32_t labels[16];
        for (int i = 0; i < 16; i++) labels[i] = (int32_t)((ref_next(&rng) >> 33) % 10);
        float loss;
        ok_status(clt_trainer_step(t, x, labels, 16, &loss), "seed MLP step %d", s + 1);
        char key[16];
        snprintf(key, sizeof key, "loss%d", s);
        const ref_entry *want = ref_get(&f, key);
        if (tap_first_mismatch(&loss, want->data, 1, 0, 1e-4) >= 0) {
            diag("step %d: loss %.7g, PyTorch %.7g", s + 1, loss, want->data[0]);
            losses_ok = false;
        }
    }
    free(x);
    ok(losses_ok, "seed MLP: the 5 losses match PyTorch to 1e-4 relative");
    for (int i = 0; i < 4; i++) {
        char key[48], what[96];
        size_t nw = (size_t)sizes[i + 1] * (size_t)sizes[i];
        float *w = malloc(nw * 4), b[512];
        clt_trainer_get_param(t, 2 * i, "weight", w, nw);
        clt_trainer_get_param(t, 2 * i, "bias", b, (size_t)sizes[i + 1]);
        if (i < 2) {
            snprintf(key, sizeof key, "fc%d.weight.index", i + 1);
            const ref_entry *idx = ref_get(&f, key);
            snprintf(key, sizeof key, "fc%d.weight.sample", i + 1);
            const ref_entry *val = ref_get(&f, key);
            float *sample = malloc(idx->n * 4);
            for (size_t k = 0; k < idx->n; k++) sample[k] = w[(size_t)idx->data[k]];
            snprintf(what, sizeof what, "seed MLP fc%d weights after 5 steps (every 101st)", i + 1);
            ok_close(sample, val->data, idx->n, 1e-6, 1e-4, what);
            free(sample);
        } else {
            snprintf(key, sizeof key, "fc%d.weight", i + 1);
            snprintf(what, sizeof what, "seed MLP fc%d weights after 5 steps", i + 1);
            ok_close(w, ref_get(&f, key)->data, nw, 1e-6, 1e-4, what);
        }
        snprintf(key, sizeof key, "fc%d.bias", i + 1);
        snprintf(what, sizeof what, "seed MLP fc%d bias after 5 steps", i + 1);
        ok_close(b, ref_get(&f, key)->data, (size_t)sizes[i + 1], 1e-6, 1e-4, what);
        free(w);
    }
    clt_trainer_destroy(t);
out:
    clt_model_destroy(m);
    ref_free(&f);
}

/* ---- schedules ------------------------------------------------------------------------- */

static float lr_at(clt_train_params p, long step)
{
    clt_model *m;
    clt_model_create(&m, clt_shape1(2));
    clt_model_add(m, clt_linear(2));
    clt_trainer *t;
    float lr = NAN;
    if (clt_trainer_create(&t, rt, m, &p) == CLT_OK) {
        float x[2] = {1, 2};
        int32_t y[1] = {1};
        for (long s = 0; s < step; s++) clt_trainer_step(t, x, y, 1, NULL);
        lr = clt_trainer_lr(t);
        clt_trainer_destroy(t);
    }
    clt_model_destroy(m);
    return lr;
}

static void check_schedules(void)
{
    clt_train_params p = clt_train_params_default();
    p.max_batch = 1;
    p.optim.lr = 0.1f;
    ok(lr_at(p, 0) == 0.1f && lr_at(p, 5) == 0.1f, "constant schedule");
    p.schedule.kind = CLT_SCHED_STEP;
    p.schedule.step_size = 3;
    p.schedule.gamma = 0.5f;
    ok(fabsf(lr_at(p, 2) - 0.1f) < 1e-7f && fabsf(lr_at(p, 3) - 0.05f) < 1e-7f && fabsf(lr_at(p, 7) - 0.025f) < 1e-7f,
       "step schedule halves every 3 steps");
    p.schedule.kind = CLT_SCHED_COSINE;
    p.schedule.total_steps = 10;
    p.schedule.min_lr = 0.0f;
    ok(fabsf(lr_at(p, 0) - 0.1f) < 1e-7f && fabsf(lr_at(p, 5) - 0.05f) < 1e-6f && fabsf(lr_at(p, 10)) < 1e-7f &&
           fabsf(lr_at(p, 12)) < 1e-7f,
       "cosine schedule from 0.1 to 0 over 10 steps, then stays at min_lr");
    p.schedule.kind = CLT_SCHED_CONSTANT;
    p.schedule.warmup_steps = 4;
    ok(fabsf(lr_at(p, 0) - 0.025f) < 1e-7f && fabsf(lr_at(p, 3) - 0.1f) < 1e-7f && fabsf(lr_at(p, 6) - 0.1f) < 1e-7f,
       "linear warmup over 4 steps");
}

/* ---- batches, evaluation, bad input ---------------------------------------------------- */

static void check_training_and_bad_input(void)
{
    clt_model *m = mlp2(8, 16, clt_tanh(), 3);
    clt_train_params p = clt_train_params_default();
    p.optim = clt_adam(0.02f);
    p.max_batch = 32;
    clt_trainer *t;
    if (!ok_status(clt_trainer_create(&t, rt, m, &p), "small classifier trainer")) return;
    /* three separable classes: the label is the index of the largest of the first 3 inputs */
    enum { N = 96 };
    float x[N * 8];
    int32_t y[N];
    ref_rng rng = {5};
    ref_fill(&rng, x, N * 8, 1.0);
    for (int i = 0; i < N; i++) {
        int best = 0;
        for (int c = 1; c < 3; c++)
            if (x[i * 8 + c] > x[i * 8 + best]) best = c;
        y[i] = best;
    }
    float loss0, acc0, loss1, acc1;
    ok_status(clt_trainer_evaluate(t, x, y, N, &loss0, &acc0), "evaluate before training");
    bool steps_ok = true;
    for (int e = 0; e < 200; e++) {
        size_t b = (size_t)(e % 3 == 0 ? 32 : e % 3 == 1 ? 7 : 1);   /* the batch size changes */
        size_t start = (size_t)(e * 13) % (N - b);
        steps_ok &= clt_trainer_step(t, x + start * 8, y + start, b, NULL) == CLT_OK;
    }
    ok(steps_ok, "200 steps with batch sizes 32, 7 and 1 in turn");
    ok_status(clt_trainer_evaluate(t, x, y, N, &loss1, &acc1), "evaluate after training");
    ok(loss1 < loss0 && acc1 >= 0.9f, "training learns: loss %.3f -> %.3f, accuracy %.2f -> %.2f", loss0, loss1, acc0, acc1);
    float out[5 * 3];
    ok_status(clt_trainer_predict(t, x, 5, out), "predict 5 samples");
    int agree = 0;
    for (int i = 0; i < 5; i++) {
        int best = 0;
        for (int c = 1; c < 3; c++)
            if (out[i * 3 + c] > out[i * 3 + best]) best = c;
        agree += best == y[i];
    }
    ok(agree >= 4, "predictions agree with the labels (%d of 5)", agree);

    /* bad input: an error, and the model unchanged */
    float w_before[16 * 8], w_after[16 * 8];
    clt_trainer_get_param(t, 0, "weight", w_before, 128);
    long steps = clt_trainer_step_count(t);
    int32_t bad_labels[2] = {1, 3};
    ok_error(clt_trainer_step(t, x, bad_labels, 2, NULL), CLT_ERR_INVALID_ARG, "label 3 of sample 1",
             "a label out of range is refused, naming it");
    int32_t neg[1] = {-1};
    ok_error(clt_trainer_step(t, x, neg, 1, NULL), CLT_ERR_INVALID_ARG, "label -1", "a negative label");
    ok_error(clt_trainer_step(t, x, y, 0, NULL), CLT_ERR_INVALID_ARG, "batch 0", "batch 0");
    ok_error(clt_trainer_step(t, x, y, 33, NULL), CLT_ERR_INVALID_ARG, "max_batch (32)", "a batch over max_batch");
    ok_error(clt_trainer_step(t, x, y, (size_t)-1, NULL), CLT_ERR_INVALID_ARG, "batch", "a negative size as size_t");
    ok_error(clt_trainer_step(t, NULL, y, 2, NULL), CLT_ERR_INVALID_ARG, "inputs are NULL", "NULL inputs");
    ok_error(clt_trainer_step(t, x, NULL, 2, NULL), CLT_ERR_INVALID_ARG, "labels are NULL", "NULL labels");
    ok_error(clt_trainer_step(NULL, x, y, 2, NULL), CLT_ERR_INVALID_ARG, "trainer is NULL", "NULL trainer");
    ok_error(clt_trainer_step_targets(t, x, x, 2, NULL), CLT_ERR_INVALID_ARG, "MSE", "targets with cross-entropy");
    float nan_x[8] = {NAN, 0, 0, 0, 0, 0, 0, 0};
    int32_t one[1] = {0};
    ok_error(clt_trainer_step(t, nan_x, one, 1, NULL), CLT_ERR_NUMERIC, "not updated", "a NaN input is caught before the update");
    clt_trainer_get_param(t, 0, "weight", w_after, 128);
    ok(!memcmp(w_before, w_after, sizeof w_before) && clt_trainer_step_count(t) == steps,
       "after all of these the parameters and step count are unchanged");
    ok_error(clt_trainer_get_param(t, 1, "weight", w_after, 128), CLT_ERR_INVALID_ARG, "has no parameter 'weight'",
             "a layer without parameters");
    ok_error(clt_trainer_get_param(t, 0, "gamma", w_after, 128), CLT_ERR_INVALID_ARG, "'gamma'", "an unknown name");
    ok_error(clt_trainer_get_param(t, 9, "weight", w_after, 128), CLT_ERR_INVALID_ARG, "out of range", "a layer out of range");
    ok_error(clt_trainer_get_param(t, 0, "weight", w_after, 100), CLT_ERR_SHAPE, "128 elements", "a wrong count");
    ok_error(clt_trainer_set_param(t, 0, "weight", NULL, 128), CLT_ERR_INVALID_ARG, "NULL", "NULL values");
    w_before[5] = INFINITY;
    ok_error(clt_trainer_set_param(t, 0, "weight", w_before, 128), CLT_ERR_NUMERIC, "element 5", "an infinite value");
    ok_error(clt_trainer_evaluate(t, x, y, 0, NULL, NULL), CLT_ERR_INVALID_ARG, "n = 0", "evaluate on no sample");
    ok_error(clt_trainer_predict(t, x, 2, NULL), CLT_ERR_INVALID_ARG, "out is NULL", "predict into NULL");
    clt_trainer_destroy(t);

    clt_trainer *t2 = (clt_trainer *)1;
    ok_error(clt_trainer_create(&t2, NULL, m, &p), CLT_ERR_INVALID_ARG, "runtime is NULL", "trainer without runtime");
    ok(t2 == NULL, "a failed create leaves *out NULL");
    p.device = 99;
    ok_error(clt_trainer_create(&t2, rt, m, &p), CLT_ERR_INVALID_ARG, "device 99", "a device out of range");
    p = clt_train_params_default();
    p.optim.lr = -1;
    ok_error(clt_trainer_create(&t2, rt, m, &p), CLT_ERR_INVALID_ARG, "learning rate", "a negative learning rate");
    p = clt_train_params_default();
    p.optim = clt_sgd(0.1f, 0.0f, 0.0f, 1);
    ok_error(clt_trainer_create(&t2, rt, m, &p), CLT_ERR_INVALID_ARG, "Nesterov", "Nesterov without momentum");
    p = clt_train_params_default();
    p.max_batch = 0;
    ok_error(clt_trainer_create(&t2, rt, m, &p), CLT_ERR_INVALID_ARG, "max_batch", "max_batch 0");
    clt_model *empty;
    clt_model_create(&empty, clt_shape1(3));
    ok_error(clt_trainer_create(&t2, rt, empty, NULL), CLT_ERR_INVALID_ARG, "no layer", "a model without layers");
    clt_model_destroy(empty);
    clt_model_destroy(m);
    clt_trainer_destroy(NULL);
}

/* Profiling: kernels and transfers are counted only when the runtime asks for it. */
static void check_stats(void)
{
    clt_model *m = mlp2(16, 8, clt_relu(), 4);
    float x[4 * 16] = {0};
    int32_t y[4] = {0, 1, 2, 3};
    for (int profiled = 0; profiled < 2; profiled++) {
        clt_runtime_options o = clt_runtime_options_default();
        o.devices = test_spec_one();
        o.profiling = profiled;
        clt_runtime *r;
        clt_trainer *t;
        clt_device_stats s;
        if (clt_runtime_create_ex(&r, &o) != CLT_OK || clt_trainer_create(&t, r, m, NULL) != CLT_OK) {
            ok(0, "runtime and trainer for the profiling check: %s", clt_last_error());
            continue;
        }
        clt_trainer_step(t, x, y, 4, NULL);
        ok_status(clt_runtime_device_stats(r, 0, &s, 1), "device stats (profiling %d)", profiled);
        if (profiled)
            ok(s.kernels >= 10 && s.kernel_s > 0 && s.transfers >= 2 && s.transfer_s >= 0,
               "a profiled step counts its kernels (%llu, %.6f s) and transfers (%llu)",
               (unsigned long long)s.kernels, s.kernel_s, (unsigned long long)s.transfers);
        else
            ok(s.kernels == 0 && s.transfers == 0, "without profiling nothing is counted");
        /* the worker built the kernels on its thread, on any device (PoCL's 'basic' runs them there too) */
        ok(s.worker_cpu_s > 0 && s.worker_cpu_s < 3600, "the worker thread's CPU time is counted (%.3f s)",
           s.worker_cpu_s);
        clt_runtime_device_stats(r, 0, &s, 0);
        ok(s.kernels == 0 && s.kernel_s == 0, "reset zeroes the totals");
        ok(s.worker_cpu_s >= 0 && s.worker_cpu_s < 0.5, "and the worker CPU clock (%.4f s since)", s.worker_cpu_s);
        ok_error(clt_runtime_device_stats(r, 1, &s, 0), CLT_ERR_INVALID_ARG, "out of range", "stats of a device out of range");
        clt_trainer_destroy(t);
        clt_runtime_destroy(r);
    }
    clt_model_destroy(m);
}

/* Keeps the last progress report (its arrays are not kept). */
static void keep_info(const clt_step_info *info, void *user) { *(clt_step_info *)user = *info; }

/* The accuracy in the progress report with MSE: labels (one-hot targets) count the rows whose
 * largest output is the label, as predict finds with the same parameters; plain targets have
 * no label (correct 0, accuracy NAN). */
static void check_accuracy_report(void)
{
    clt_model *m;
    clt_model_create(&m, clt_shape1(6));
    clt_model_add(m, clt_linear(4));
    clt_train_params p = clt_train_params_default();
    p.loss = CLT_LOSS_MSE;
    p.max_batch = 40;
    clt_trainer *t;
    if (!ok_status(clt_trainer_create(&t, rt, m, &p), "MSE trainer for the accuracy report")) {
        clt_model_destroy(m);
        return;
    }
    enum { N = 40 };
    float x[N * 6], out[N * 4], targets[N * 4];
    int32_t y[N];
    ref_rng rng = {11};
    ref_fill(&rng, x, N * 6, 1.0);
    ref_fill(&rng, targets, N * 4, 1.0);
    for (int i = 0; i < N; i++) y[i] = i % 4;
    size_t want = 0;
    ok_status(clt_trainer_predict(t, x, N, out), "predict before the step");
    for (int i = 0; i < N; i++) {
        int best = 0;
        for (int c = 1; c < 4; c++)
            if (out[i * 4 + c] > out[i * 4 + best]) best = c;
        want += best == y[i];
    }
    clt_step_info info = {0};
    clt_trainer_set_progress(t, keep_info, &info);
    ok_status(clt_trainer_step(t, x, y, N, NULL), "an MSE step on labels");
    ok(info.correct == want && info.accuracy == (float)((double)want / N),
       "MSE on labels: %zu of %d right, as predict says (%zu)", info.correct, N, want);
    ok_status(clt_trainer_step_targets(t, x, targets, N, NULL), "an MSE step on targets");
    ok(info.step == 2 && info.correct == 0 && isnan(info.accuracy), "MSE on targets: no accuracy (NAN)");
    clt_trainer_destroy(t);
    clt_model_destroy(m);
}

int main(void)
{
    tap_require_device();
    if (!ok_status(clt_runtime_create(&rt, test_spec_all()), "runtime on all devices")) return tap_done();
    check_losses();
    check_optimizer("sgd", clt_sgd(0.1f, 0, 0, 0), 0);
    check_optimizer("sgd_momentum_wd", clt_sgd(0.05f, 0.9f, 0.01f, 0), 0);
    check_optimizer("sgd_nesterov", clt_sgd(0.05f, 0.8f, 0, 1), 0);
    clt_optimizer adam = clt_adam(0.01f);
    adam.weight_decay = 0.001f;
    check_optimizer("adam", adam, 0);
    check_optimizer("adamw", clt_adamw(0.01f, 0.1f), 0);
    check_optimizer("sgd_clip", clt_sgd(0.1f, 0, 0, 0), 0.5f);
    check_seed_mlp();
    check_schedules();
    check_training_and_bad_input();
    check_stats();
    check_accuracy_report();
    check_loss_nan();
    check_sumsq_nan();
    check_clip_nan();
    check_nan_end_to_end();
    clt_runtime_destroy(rt);
    return tap_done();
}
