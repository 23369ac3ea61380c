/* The trainer: the public facade over a model on the runtime's devices. It validates every
 * argument on the calling thread, then runs the step as one task on the device's worker. */
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct clt_trainer {
    clt_runtime *rt;
    clt_model *model;         /* the trainer's own copy */
    clt_train_params p;
    clt__worker *w;
    clt__net *net;
    long steps;               /* completed steps */
    float *onehot;            /* (max_batch, classes) for MSE with labels */
};

clt_optimizer clt_sgd(float lr, float momentum, float weight_decay, int nesterov)
{
    clt_optimizer o;
    memset(&o, 0, sizeof o);
    o.kind = CLT_OPTIM_SGD;
    o.lr = lr;
    o.momentum = momentum;
    o.weight_decay = weight_decay;
    o.nesterov = nesterov;
    o.beta1 = 0.9f, o.beta2 = 0.999f, o.eps = 1e-8f;
    return o;
}

clt_optimizer clt_adam(float lr)
{
    clt_optimizer o = clt_sgd(lr, 0, 0, 0);
    o.kind = CLT_OPTIM_ADAM;
    return o;
}

clt_optimizer clt_adamw(float lr, float weight_decay)
{
    clt_optimizer o = clt_adam(lr);
    o.kind = CLT_OPTIM_ADAMW;
    o.weight_decay = weight_decay;
    return o;
}

clt_train_params clt_train_params_default(void)
{
    clt_train_params p;
    memset(&p, 0, sizeof p);
    p.loss = CLT_LOSS_CROSS_ENTROPY;
    p.optim = clt_sgd(0.01f, 0.0f, 0.0f, 0);
    p.schedule.kind = CLT_SCHED_CONSTANT;
    p.schedule.gamma = 0.1f;
    p.max_batch = 256;
    p.seed = 1;
    p.device = 0;
    p.check_numerics = 1;
    return p;
}

static clt_status check_params(const clt_train_params *p, const clt_runtime *rt)
{
    const clt_optimizer *o = &p->optim;
    if (p->loss != CLT_LOSS_CROSS_ENTROPY && p->loss != CLT_LOSS_MSE)
        return clt__fail(CLT_ERR_INVALID_ARG, "unknown loss %d", (int)p->loss);
    if (o->kind != CLT_OPTIM_SGD && o->kind != CLT_OPTIM_ADAM && o->kind != CLT_OPTIM_ADAMW)
        return clt__fail(CLT_ERR_INVALID_ARG, "unknown optimizer %d", (int)o->kind);
    if (!(o->lr >= 0.0f) || !isfinite(o->lr))
        return clt__fail(CLT_ERR_INVALID_ARG, "learning rate %g must be finite and >= 0", (double)o->lr);
    if (!(o->momentum >= 0.0f) || !(o->weight_decay >= 0.0f) || !isfinite(o->weight_decay) ||
        !isfinite(o->momentum))
        return clt__fail(CLT_ERR_INVALID_ARG, "momentum %g and weight decay %g must be >= 0",
                         (double)o->momentum, (double)o->weight_decay);
    if (o->nesterov && (o->momentum <= 0.0f || o->dampening != 0.0f))
        return clt__fail(CLT_ERR_INVALID_ARG, "Nesterov momentum needs momentum > 0 and zero "
                         "dampening (as in PyTorch)");
    if (o->kind != CLT_OPTIM_SGD &&
        !(o->beta1 >= 0.0f && o->beta1 < 1.0f && o->beta2 >= 0.0f && o->beta2 < 1.0f && o->eps > 0.0f))
        return clt__fail(CLT_ERR_INVALID_ARG, "Adam needs betas in [0, 1) and eps > 0 (got %g, %g, %g)",
                         (double)o->beta1, (double)o->beta2, (double)o->eps);
    const clt_schedule *s = &p->schedule;
    if (s->kind != CLT_SCHED_CONSTANT && s->kind != CLT_SCHED_STEP && s->kind != CLT_SCHED_COSINE)
        return clt__fail(CLT_ERR_INVALID_ARG, "unknown learning-rate schedule %d", (int)s->kind);
    if (s->kind == CLT_SCHED_STEP && (s->step_size <= 0 || !(s->gamma > 0.0f)))
        return clt__fail(CLT_ERR_INVALID_ARG, "step schedule needs step_size > 0 and gamma > 0");
    if (s->kind == CLT_SCHED_COSINE && s->total_steps <= s->warmup_steps)
        return clt__fail(CLT_ERR_INVALID_ARG, "cosine schedule needs total_steps (%ld) > warmup_steps (%ld)",
                         s->total_steps, s->warmup_steps);
    if (s->warmup_steps < 0) return clt__fail(CLT_ERR_INVALID_ARG, "warmup_steps is negative");
    if (!(p->clip_norm >= 0.0f)) return clt__fail(CLT_ERR_INVALID_ARG, "clip_norm must be >= 0");
    if (p->max_batch == 0 || p->max_batch > (1u << 24))
        return clt__fail(CLT_ERR_INVALID_ARG, "max_batch %zu must be in 1..2^24", p->max_batch);
    if (p->device < 0 || p->device >= rt->nworkers)
        return clt__fail(CLT_ERR_INVALID_ARG, "device %d out of range (the runtime has %d)",
                         p->device, rt->nworkers);
    return CLT_OK;
}

/* The learning rate of step `step` (0-based): warmup, then the schedule. */
static float schedule_lr(const clt_train_params *p, long step)
{
    const clt_schedule *s = &p->schedule;
    double lr = p->optim.lr;
    if (s->warmup_steps > 0 && step < s->warmup_steps) return (float)(lr * (double)(step + 1) / (double)s->warmup_steps);
    long t = step - s->warmup_steps;
    switch (s->kind) {
    case CLT_SCHED_STEP: return (float)(lr * pow((double)s->gamma, (double)(t / s->step_size)));
    case CLT_SCHED_COSINE: {
        double T = (double)(s->total_steps - s->warmup_steps), tt = t < T ? (double)t : T;
        return (float)(s->min_lr + (lr - s->min_lr) * 0.5 * (1.0 + cos(M_PI * tt / T)));
    }
    default: return (float)lr;
    }
}

static clt_status create_task(clt__worker *w, void *arg)
{
    clt_trainer *t = arg;
    const clt_model *m = t->model;
    clt_status st = clt__net_create(w, m, 0, m->nlayers - 1, t->p.max_batch, &t->net);
    if (st != CLT_OK) return st;
    float *init = malloc((m->nparams ? m->nparams : 1) * sizeof *init);
    if (!init) return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory (%zu parameters)", m->nparams);
    clt__model_init_params(m, t->p.seed, init);
    cl_int err = m->nparams ? clEnqueueWriteBuffer(w->queue, t->net->params, CL_TRUE, 0,
                                                   m->nparams * sizeof(float), init, 0, NULL, NULL)
                            : CL_SUCCESS;
    free(init);
    if (err != CL_SUCCESS) return clt__fail_cl(err, clt__worker_name(w), "uploading the parameters");
    return CLT_OK;
}

static clt_status destroy_task(clt__worker *w, void *arg)
{
    (void)w;
    clt__net_destroy(arg);
    return CLT_OK;
}

clt_status clt_trainer_create(clt_trainer **out, clt_runtime *rt, const clt_model *m,
                              const clt_train_params *params)
{
    if (!out) return clt__fail(CLT_ERR_INVALID_ARG, "clt_trainer_create: out is NULL");
    *out = NULL;
    if (!rt || !m) return clt__fail(CLT_ERR_INVALID_ARG, "clt_trainer_create: %s is NULL", !rt ? "runtime" : "model");
    if (m->nlayers == 0) return clt__fail(CLT_ERR_INVALID_ARG, "clt_trainer_create: the model has no layer");
    clt_train_params p = params ? *params : clt_train_params_default();
    clt_status st = check_params(&p, rt);
    if (st != CLT_OK) return st;

    clt_trainer *t = calloc(1, sizeof *t);
    if (!t) return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    t->rt = rt;
    t->p = p;
    t->w = &rt->workers[p.device];
    st = clt__model_clone(m, &t->model);
    if (st == CLT_OK) st = clt__worker_call(t->w, create_task, t);
    if (st != CLT_OK) {
        clt_trainer_destroy(t);
        return st;
    }
    *out = t;
    return CLT_OK;
}

void clt_trainer_destroy(clt_trainer *t)
{
    if (!t) return;
    if (t->net) {
        char keep[512];   /* destroy must not disturb the caller's last error */
        snprintf(keep, sizeof keep, "%s", clt_last_error());
        clt__worker_call(t->w, destroy_task, t->net);
        clt__error_set_message(keep);
    }
    clt_model_destroy(t->model);
    free(t->onehot);
    free(t);
}

long clt_trainer_step_count(const clt_trainer *t) { return t ? t->steps : 0; }
float clt_trainer_lr(const clt_trainer *t) { return t ? schedule_lr(&t->p, t->steps) : 0.0f; }

static size_t out_numel(const clt_trainer *t) { return t->model->layers[t->model->nlayers - 1].out_numel; }
static size_t in_numel(const clt_trainer *t) { return clt_shape_numel(t->model->input); }

/* ---- a step ----------------------------------------------------------------------------- */

typedef struct {
    clt_trainer *t;
    const float *x;
    const int32_t *labels;    /* cross-entropy */
    const float *targets;     /* MSE */
    size_t batch;
    double loss;
} step_args;

static clt_status upload(clt__worker *w, cl_mem dst, const void *src, size_t bytes, const char *what)
{
    cl_int err = clEnqueueWriteBuffer(w->queue, dst, CL_FALSE, 0, bytes, src, 0, NULL,
                                      clt__worker_event(w));
    if (err != CL_SUCCESS) return clt__fail_cl(err, clt__worker_name(w), what);
    clt__worker_record(w, CLT__EV_TRANSFER);
    return CLT_OK;
}

static clt_status step_body(clt__worker *w, step_args *a);

/* Uploads read the caller's arrays asynchronously: on every exit, the queue is drained before the
 * caller gets its memory back. */
static clt_status step_task(clt__worker *w, void *arg)
{
    clt_status st = step_body(w, arg);
    if (st != CLT_OK) clFinish(w->queue);
    return st;
}

static clt_status step_body(clt__worker *w, step_args *a)
{
    clt_trainer *t = a->t;
    clt__net *n = t->net;
    size_t B = a->batch, C = out_numel(t);
    uint64_t seed = t->p.seed ^ (0x9E3779B97F4A7C15ull * (uint64_t)(t->steps + 1));
    clt_status st = upload(w, n->input, a->x, B * in_numel(t) * sizeof(float), "uploading the batch");
    if (st == CLT_OK && a->labels) st = upload(w, n->labels, a->labels, B * sizeof(int32_t), "uploading labels");
    if (st == CLT_OK && a->targets) st = upload(w, n->targets, a->targets, B * C * sizeof(float), "uploading targets");
    if (st == CLT_OK) st = clt__zero(w, (clt__view){n->grads, 0}, n->nparams);
    if (st == CLT_OK) st = clt__net_forward(n, B, 1, seed);
    float scale = t->p.loss == CLT_LOSS_MSE ? 1.0f / (float)(B * C) : 1.0f / (float)B;
    double sum = 0;
    if (st == CLT_OK) st = clt__net_loss(n, t->p.loss, B, scale, 1, &sum);
    if (st != CLT_OK) return st;
    a->loss = sum * (t->p.loss == CLT_LOSS_MSE ? 1.0 / (double)(B * C) : 1.0 / (double)B);
    if (t->p.check_numerics && !isfinite(a->loss))
        return clt__fail(CLT_ERR_NUMERIC, "the loss is %g at step %ld: the parameters were not "
                         "updated", a->loss, t->steps + 1);
    st = clt__net_backward(n, B, (clt__view){n->gbuf[0], 0}, (clt__view){NULL, 0}, seed);
    if (st != CLT_OK) return st;

    float gscale = 1.0f;
    if (t->p.clip_norm > 0.0f || t->p.check_numerics) {
        double ss;
        st = clt__net_grad_sumsq(n, &ss);
        if (st != CLT_OK) return st;
        double norm = sqrt(ss);
        if (!isfinite(norm))
            return clt__fail(CLT_ERR_NUMERIC, "the gradients hold NaN or Inf at step %ld: the "
                             "parameters were not updated", t->steps + 1);
        /* torch.nn.utils.clip_grad_norm_: coefficient max_norm / (norm + 1e-6), capped at 1 */
        if (t->p.clip_norm > 0.0f) {
            double c = (double)t->p.clip_norm / (norm + 1e-6);
            if (c < 1.0) gscale = (float)c;
        }
    }
    float lr = schedule_lr(&t->p, t->steps);
    st = clt__net_optimizer_step(n, &t->p.optim, lr, t->steps + 1, gscale);
    if (st == CLT_OK) {
        cl_int err = clFinish(w->queue);
        if (err != CL_SUCCESS) return clt__fail_cl(err, clt__worker_name(w), "finishing the step");
        clt__worker_collect(w);
    }
    return st;
}

static clt_status check_batch(const clt_trainer *t, const float *x, size_t batch, const char *fn)
{
    if (!t) return clt__fail(CLT_ERR_INVALID_ARG, "%s: trainer is NULL", fn);
    if (!x) return clt__fail(CLT_ERR_INVALID_ARG, "%s: inputs are NULL", fn);
    if (batch == 0 || batch > t->p.max_batch)
        return clt__fail(CLT_ERR_INVALID_ARG, "%s: batch %zu is not in 1..max_batch (%zu)", fn,
                         batch, t->p.max_batch);
    return CLT_OK;
}

static clt_status check_labels(const clt_trainer *t, const int32_t *labels, size_t n, const char *fn)
{
    if (!labels) return clt__fail(CLT_ERR_INVALID_ARG, "%s: labels are NULL", fn);
    int32_t classes = (int32_t)out_numel(t);
    for (size_t i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= classes)
            return clt__fail(CLT_ERR_INVALID_ARG, "%s: label %d of sample %zu is outside 0..%d (the "
                             "model has %d outputs)", fn, (int)labels[i], i, (int)classes - 1, (int)classes);
    return CLT_OK;
}

static clt_status run_step(clt_trainer *t, step_args *a, float *loss)
{
    clt_status st = clt__worker_call(t->w, step_task, a);
    if (st != CLT_OK) return st;
    t->steps++;
    if (loss) *loss = (float)a->loss;
    return CLT_OK;
}

clt_status clt_trainer_step(clt_trainer *t, const float *x, const int32_t *labels, size_t batch,
                            float *loss)
{
    clt_status st = check_batch(t, x, batch, "clt_trainer_step");
    if (st == CLT_OK) st = check_labels(t, labels, batch, "clt_trainer_step");
    if (st != CLT_OK) return st;
    step_args a = {t, x, labels, NULL, batch, 0};
    if (t->p.loss == CLT_LOSS_MSE) {
        /* MSE against one-hot targets of the labels */
        size_t C = out_numel(t);
        if (!t->onehot && !(t->onehot = malloc(t->p.max_batch * C * sizeof(float))))
            return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
        memset(t->onehot, 0, batch * C * sizeof(float));
        for (size_t i = 0; i < batch; i++) t->onehot[i * C + (size_t)labels[i]] = 1.0f;
        a.targets = t->onehot;
    }
    return run_step(t, &a, loss);
}

clt_status clt_trainer_step_targets(clt_trainer *t, const float *x, const float *targets,
                                    size_t batch, float *loss)
{
    clt_status st = check_batch(t, x, batch, "clt_trainer_step_targets");
    if (st != CLT_OK) return st;
    if (!targets) return clt__fail(CLT_ERR_INVALID_ARG, "clt_trainer_step_targets: targets are NULL");
    if (t->p.loss != CLT_LOSS_MSE)
        return clt__fail(CLT_ERR_INVALID_ARG, "clt_trainer_step_targets needs the MSE loss; "
                         "cross-entropy takes labels (clt_trainer_step)");
    step_args a = {t, x, NULL, targets, batch, 0};
    return run_step(t, &a, loss);
}

/* ---- forward only ------------------------------------------------------------------------- */

typedef struct {
    clt_trainer *t;
    const float *x;
    const int32_t *labels;   /* evaluate: also the loss */
    size_t batch;
    float *out;              /* (batch, C) */
    double loss_sum;
} forward_args;

static clt_status forward_task(clt__worker *w, void *arg)
{
    forward_args *a = arg;
    clt__net *n = a->t->net;
    size_t C = out_numel(a->t);
    clt_status st = upload(w, n->input, a->x, a->batch * in_numel(a->t) * sizeof(float), "uploading the batch");
    if (st == CLT_OK && a->labels)
        st = upload(w, n->labels, a->labels, a->batch * sizeof(int32_t), "uploading labels");
    if (st == CLT_OK) st = clt__net_forward(n, a->batch, 0, 0);
    if (st == CLT_OK && a->labels) {
        if (a->t->p.loss == CLT_LOSS_MSE) {
            for (size_t i = 0; i < a->batch * C; i++) a->out[i] = 0.0f;
            for (size_t i = 0; i < a->batch; i++) a->out[i * C + (size_t)a->labels[i]] = 1.0f;
            st = upload(w, n->targets, a->out, a->batch * C * sizeof(float), "uploading targets");
        }
        if (st == CLT_OK) st = clt__net_loss(n, a->t->p.loss, a->batch, 0.0f, 0, &a->loss_sum);
    }
    if (st != CLT_OK) {
        clFinish(w->queue);
        return st;
    }
    clt__view o = clt__net_output(n);
    cl_int err = clEnqueueReadBuffer(w->queue, o.mem, CL_TRUE, o.off * sizeof(float),
                                     a->batch * C * sizeof(float), a->out, 0, NULL, NULL);
    return err == CL_SUCCESS ? CLT_OK : clt__fail_cl(err, clt__worker_name(w), "reading the outputs");
}

clt_status clt_trainer_predict(clt_trainer *t, const float *x, size_t batch, float *out)
{
    clt_status st = check_batch(t, x, batch, "clt_trainer_predict");
    if (st != CLT_OK) return st;
    if (!out) return clt__fail(CLT_ERR_INVALID_ARG, "clt_trainer_predict: out is NULL");
    forward_args a = {t, x, NULL, batch, out, 0};
    return clt__worker_call(t->w, forward_task, &a);
}

clt_status clt_trainer_evaluate(clt_trainer *t, const float *x, const int32_t *labels, size_t n,
                                float *loss, float *accuracy)
{
    if (!t) return clt__fail(CLT_ERR_INVALID_ARG, "clt_trainer_evaluate: trainer is NULL");
    if (!x || n == 0) return clt__fail(CLT_ERR_INVALID_ARG, "clt_trainer_evaluate: %s",
                                       !x ? "inputs are NULL" : "no sample (n = 0)");
    clt_status st = check_labels(t, labels, n, "clt_trainer_evaluate");
    if (st != CLT_OK) return st;
    size_t C = out_numel(t), in = in_numel(t), B = t->p.max_batch;
    float *out = malloc(B * C * sizeof *out);
    if (!out) return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    double loss_sum = 0;
    size_t correct = 0;
    for (size_t start = 0; start < n && st == CLT_OK; start += B) {
        size_t b = n - start < B ? n - start : B;
        forward_args a = {t, x + start * in, labels + start, b, out, 0};
        st = clt__worker_call(t->w, forward_task, &a);
        loss_sum += a.loss_sum;
        for (size_t i = 0; i < b && st == CLT_OK; i++) {
            size_t best = 0;
            for (size_t c = 1; c < C; c++)
                if (out[i * C + c] > out[i * C + best]) best = c;
            correct += best == (size_t)labels[start + i];
        }
    }
    free(out);
    if (st != CLT_OK) return st;
    double denom = t->p.loss == CLT_LOSS_MSE ? (double)n * (double)C : (double)n;
    if (loss) *loss = (float)(loss_sum / denom);
    if (accuracy) *accuracy = (float)((double)correct / (double)n);
    return CLT_OK;
}

/* ---- parameters ------------------------------------------------------------------------- */

typedef struct {
    clt_trainer *t;
    cl_mem buf;
    size_t off, count;
    void *host;
    int write;
} param_args;

static clt_status param_task(clt__worker *w, void *arg)
{
    param_args *a = arg;
    size_t bytes = a->count * sizeof(float), at = (a->off - a->t->net->param_base) * sizeof(float);
    cl_int err = a->write ? clEnqueueWriteBuffer(w->queue, a->buf, CL_TRUE, at, bytes, a->host, 0, NULL, NULL)
                          : clEnqueueReadBuffer(w->queue, a->buf, CL_TRUE, at, bytes, a->host, 0, NULL, NULL);
    return err == CL_SUCCESS ? CLT_OK : clt__fail_cl(err, clt__worker_name(w), a->write ? "writing parameters" : "reading parameters");
}

static clt_status param_io(clt_trainer *t, int layer, const char *name, void *host, size_t count,
                           int write, int grads, const char *fn)
{
    if (!t || !host) return clt__fail(CLT_ERR_INVALID_ARG, "%s: %s is NULL", fn, !t ? "trainer" : "the array");
    size_t off, n;
    clt_status st = clt__model_find_param(t->model, layer, name, &off, &n);
    if (st != CLT_OK) return st;
    if (count != n)
        return clt__fail(CLT_ERR_SHAPE, "%s: layer %d's %s has %zu elements, not %zu", fn, layer, name, n, count);
    if (write) {
        const float *v = host;
        for (size_t i = 0; i < n; i++)
            if (!isfinite(v[i]))
                return clt__fail(CLT_ERR_NUMERIC, "%s: element %zu of layer %d's %s is not finite", fn, i, layer, name);
    }
    param_args a = {t, grads ? t->net->grads : t->net->params, off, n, host, write};
    return clt__worker_call(t->w, param_task, &a);
}

clt_status clt_trainer_get_param(clt_trainer *t, int layer, const char *name, float *out, size_t count)
{
    return param_io(t, layer, name, out, count, 0, 0, "clt_trainer_get_param");
}

clt_status clt_trainer_set_param(clt_trainer *t, int layer, const char *name, const float *in, size_t count)
{
    return param_io(t, layer, name, (void *)in, count, 1, 0, "clt_trainer_set_param");
}

clt_status clt_trainer_get_grad(clt_trainer *t, int layer, const char *name, float *out, size_t count)
{
    return param_io(t, layer, name, out, count, 0, 1, "clt_trainer_get_grad");
}
