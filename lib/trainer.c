/* The trainer: the public facade over a model on the runtime's devices. It validates every
 * argument on the calling thread, keeps the step count and the learning-rate schedule, and
 * hands the work to a strategy (lib/strategy_*.c): one device, data or model parallel. */
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


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
    p.struct_size = sizeof p;
    p.loss = CLT_LOSS_CROSS_ENTROPY;
    p.optim = clt_sgd(0.01f, 0.0f, 0.0f, 0);
    p.schedule.kind = CLT_SCHED_CONSTANT;
    p.schedule.gamma = 0.1f;
    p.max_batch = 256;
    p.seed = 1;
    p.device = 0;
    p.check_numerics = 1;
    p.accumulation = 1;
    p.parallel = CLT_PARALLEL_NONE;
    p.split = CLT_SPLIT_EQUAL;
    p.tensor_split = CLT_SPLIT_EQUAL;
    p.rebalance_every = 20;
    p.bucket_bytes = (size_t)512 << 10;
    p.micro_batches = 1;
    p.pipeline = CLT_PIPELINE_NAIVE;
    p.pipelines = 1;
    p.decay = CLT_DECAY_ALL;
    return p;
}

static clt_status check_schedule(const clt_schedule *s)
{
    if (s->kind != CLT_SCHED_CONSTANT && s->kind != CLT_SCHED_STEP && s->kind != CLT_SCHED_COSINE)
        return clt__fail(CLT_ERR_INVALID_ARG, "unknown learning-rate schedule %d", (int)s->kind);
    if (s->kind == CLT_SCHED_STEP && (s->step_size <= 0 || !(s->gamma > 0.0f) || !isfinite(s->gamma)))
        return clt__fail(CLT_ERR_INVALID_ARG, "step schedule needs step_size > 0 and a finite gamma > 0");
    if (s->kind == CLT_SCHED_COSINE && s->total_steps <= s->warmup_steps)
        return clt__fail(CLT_ERR_INVALID_ARG, "cosine schedule needs total_steps (%ld) > warmup_steps (%ld)",
                         s->total_steps, s->warmup_steps);
    if (s->kind == CLT_SCHED_COSINE && (!(s->min_lr >= 0.0f) || !isfinite(s->min_lr)))
        return clt__fail(CLT_ERR_INVALID_ARG, "cosine schedule needs a finite min_lr >= 0 (got %g)",
                         (double)s->min_lr);
    if (s->warmup_steps < 0) return clt__fail(CLT_ERR_INVALID_ARG, "warmup_steps is negative");
    return CLT_OK;
}

clt_status clt__check_hyper(const clt_train_params *p)
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
    if (p->decay != CLT_DECAY_ALL && p->decay != CLT_DECAY_MATRICES)
        return clt__fail(CLT_ERR_INVALID_ARG, "clt_train_params.decay %d is unknown (CLT_DECAY_ALL %d, "
                         "CLT_DECAY_MATRICES %d)", (int)p->decay, CLT_DECAY_ALL, CLT_DECAY_MATRICES);
    clt_status st = check_schedule(&p->schedule);
    if (st != CLT_OK) return st;
    if (!(p->clip_norm >= 0.0f) || !isfinite(p->clip_norm))
        return clt__fail(CLT_ERR_INVALID_ARG, "clip_norm must be finite and >= 0");
    if (p->accumulation < 1 || p->accumulation > 65536)
        return clt__fail(CLT_ERR_INVALID_ARG, "accumulation %d must be in 1..65536", p->accumulation);
    return CLT_OK;
}

static clt_status check_params(const clt_train_params *p, const clt_runtime *rt)
{
    clt_status st = clt__check_hyper(p);
    if (st != CLT_OK) return st;
    if (p->max_batch == 0 || p->max_batch > (1u << 24))
        return clt__fail(CLT_ERR_INVALID_ARG, "max_batch %zu must be in 1..2^24", p->max_batch);
    if (p->device < 0 || p->device >= rt->nworkers)
        return clt__fail(CLT_ERR_INVALID_ARG, "device %d out of range (the runtime has %d)",
                         p->device, rt->nworkers);
    if (p->parallel != CLT_PARALLEL_NONE && p->parallel != CLT_PARALLEL_DATA &&
        p->parallel != CLT_PARALLEL_MODEL && p->parallel != CLT_PARALLEL_TENSOR)
        return clt__fail(CLT_ERR_INVALID_ARG, "unknown parallel mode %d", (int)p->parallel);
    if (p->tensor_group < 0 || p->tensor_group > rt->nworkers ||
        (p->tensor_group && rt->nworkers % p->tensor_group))
        return clt__fail(CLT_ERR_INVALID_ARG, "tensor_group %d must divide the runtime's %d devices "
                         "(0: all of them in one group)", p->tensor_group, rt->nworkers);
    if (p->split != CLT_SPLIT_EQUAL && p->split != CLT_SPLIT_WEIGHTS && p->split != CLT_SPLIT_AUTO)
        return clt__fail(CLT_ERR_INVALID_ARG, "unknown batch split %d", (int)p->split);
    if (p->parallel == CLT_PARALLEL_DATA && p->split == CLT_SPLIT_WEIGHTS) {
        if (!p->split_weights)
            return clt__fail(CLT_ERR_INVALID_ARG, "CLT_SPLIT_WEIGHTS needs split_weights (one per device)");
        double sum = 0;
        for (int i = 0; i < rt->nworkers; i++) {
            if (!(p->split_weights[i] >= 0.0f) || !isfinite(p->split_weights[i]))
                return clt__fail(CLT_ERR_INVALID_ARG, "split weight %d (%g) must be finite and >= 0",
                                 i, (double)p->split_weights[i]);
            sum += p->split_weights[i];
        }
        if (!(sum > 0)) return clt__fail(CLT_ERR_INVALID_ARG, "the split weights add up to 0");
    }
    if (p->elastic && p->parallel != CLT_PARALLEL_DATA)
        return clt__fail(CLT_ERR_INVALID_ARG, "elastic mode needs data parallelism (CLT_PARALLEL_DATA): a "
                         "pipeline cannot train without one of its stages");
    if (rt->mpi && p->parallel != CLT_PARALLEL_DATA)
        return clt__fail(CLT_ERR_UNSUPPORTED, "a runtime spanning MPI processes trains data "
                         "parallel only (CLT_PARALLEL_DATA): this mode would not cross processes");
    if (rt->mpi && p->elastic)
        return clt__fail(CLT_ERR_UNSUPPORTED, "elastic mode does not cross MPI processes: a lost "
                         "device would leave the other processes' groups waiting for it");
    if (rt->mpi && p->split != CLT_SPLIT_EQUAL)
        return clt__fail(CLT_ERR_UNSUPPORTED, "under MPI the batch is split in equal shares "
                         "(CLT_SPLIT_EQUAL): weighted and measured splits do not cross processes");
    if (p->tensor_split != CLT_SPLIT_EQUAL && p->tensor_split != CLT_SPLIT_WEIGHTS && p->tensor_split != CLT_SPLIT_AUTO)
        return clt__fail(CLT_ERR_INVALID_ARG, "unknown tensor split %d", (int)p->tensor_split);
    /* each split belongs to one mode: one set for the other would do nothing, silently */
    if (p->parallel == CLT_PARALLEL_TENSOR && p->split != CLT_SPLIT_EQUAL)
        return clt__fail(CLT_ERR_INVALID_ARG, "split is data parallelism's batch split: tensor "
                         "parallelism sizes its slices by tensor_split and tensor_split_weights");
    if (p->parallel != CLT_PARALLEL_TENSOR && p->tensor_split != CLT_SPLIT_EQUAL)
        return clt__fail(CLT_ERR_INVALID_ARG, "tensor_split sizes tensor-parallel slices: it needs "
                         "parallel = CLT_PARALLEL_TENSOR");
    if (p->parallel == CLT_PARALLEL_TENSOR && p->tensor_split == CLT_SPLIT_WEIGHTS) {
        if (!p->tensor_split_weights)
            return clt__fail(CLT_ERR_INVALID_ARG, "CLT_SPLIT_WEIGHTS needs tensor_split_weights (one per device)");
        int T = p->tensor_group ? p->tensor_group : rt->nworkers;
        for (int i = 0; i < rt->nworkers; i++) {
            const float *w = p->tensor_split_weights;
            if (!(w[i] > 0.0f) || !isfinite(w[i]))
                return clt__fail(CLT_ERR_INVALID_ARG, "tensor split weight %d (%g) must be finite and > 0: "
                                 "every device of a tensor-parallel group holds a slice", i, (double)w[i]);
            if (w[i] != w[i % T])
                return clt__fail(CLT_ERR_INVALID_ARG, "tensor split weight %d (%g) differs from weight %d "
                                 "(%g): every tensor-parallel group needs the same weights, since "
                                 "matching slices sum their gradients", i, (double)w[i], i % T, (double)w[i % T]);
        }
    }
    if (p->rebalance_every < 0) return clt__fail(CLT_ERR_INVALID_ARG, "rebalance_every is negative");
    if (p->micro_batches < 1 || p->micro_batches > 65536)
        return clt__fail(CLT_ERR_INVALID_ARG, "micro_batches %d must be in 1..65536", p->micro_batches);
    if (p->pipeline != CLT_PIPELINE_NAIVE && p->pipeline != CLT_PIPELINE_GPIPE && p->pipeline != CLT_PIPELINE_1F1B &&
        p->pipeline != CLT_PIPELINE_ZB)
        return clt__fail(CLT_ERR_INVALID_ARG, "unknown pipeline schedule %d (naive %d, gpipe %d, 1f1b %d, zb %d)",
                         (int)p->pipeline, CLT_PIPELINE_NAIVE, CLT_PIPELINE_GPIPE, CLT_PIPELINE_1F1B,
                         CLT_PIPELINE_ZB);
    if (p->pipelines < 1 || p->pipelines > rt->nworkers)
        return clt__fail(CLT_ERR_INVALID_ARG, "pipelines %d must be in 1..%d (the runtime's devices)",
                         p->pipelines, rt->nworkers);
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

clt_status clt__trainer_create_mode(clt_trainer **out, clt_runtime *rt, const clt_model *m,
                                    const clt_train_params *params)
{
    if (!out) return clt__fail(CLT_ERR_INVALID_ARG, "clt_trainer_create: out is NULL");
    *out = NULL;
    if (!rt || !m) return clt__fail(CLT_ERR_INVALID_ARG, "clt_trainer_create: %s is NULL", !rt ? "runtime" : "model");
    if (m->nlayers == 0) return clt__fail(CLT_ERR_INVALID_ARG, "clt_trainer_create: the model has no layer");
    clt_status mst = clt__model_check_range(m, 0, m->nlayers - 1, "clt_trainer_create");
    if (mst != CLT_OK) return mst;
    clt_train_params p = clt_train_params_default();
    clt_status st = clt__options_read(&p, params, sizeof p, CLT__TRAIN_PARAMS_V1, "clt_trainer_create",
                                      "clt_train_params");
    if (st == CLT_OK) st = check_params(&p, rt);
    if (st == CLT_OK) st = clt__fault_reload(rt);
    if (st != CLT_OK) return st;

    clt_trainer *t = calloc(1, sizeof *t);
    float *init = NULL;
    if (!t) return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    t->rt = rt;
    t->p = p;
    t->p.split_weights = NULL;   /* the caller's array is not ours to keep: strategies copy it */
    t->ops = p.parallel == CLT_PARALLEL_MODEL    ? &clt__strategy_model
             : p.parallel == CLT_PARALLEL_TENSOR ? &clt__strategy_tensor
                                                 : &clt__strategy_data;
    st = clt__model_clone(m, &t->model);
    if (st == CLT_OK && !(init = malloc((m->nparams ? m->nparams : 1) * sizeof *init)))
        st = clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory (%zu parameters)", m->nparams);
    if (st == CLT_OK) {
        clt__model_init_params(m, p.seed, init);
        t->p.split_weights = p.split_weights;   /* readable during create only */
        st = t->ops->create(t, init);
        t->p.split_weights = NULL;
    }
    free(init);
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
    if (t->state) {
        char keep[512];   /* destroy must not disturb the caller's last error */
        snprintf(keep, sizeof keep, "%s", clt_last_error());
        t->ops->destroy(t);
        clt__error_set_message(keep);
    }
    clt_model_destroy(t->model);
    free(t->onehot);
    free(t->vocab);
    free(t->info_samples);
    free(t->info_busy);
    free(t->dropped);
    free(t);
}

int clt_trainer_dropped_devices(const clt_trainer *t, int *devices, int cap)
{
    if (!t) return 0;
    for (int i = 0; devices && i < cap && i < t->ndropped; i++) devices[i] = t->dropped[i];
    return t->ndropped;
}

long clt_trainer_step_count(const clt_trainer *t) { return t ? t->steps : 0; }
clt_parallel clt_trainer_parallel(const clt_trainer *t) { return t ? t->p.parallel : CLT_PARALLEL_NONE; }
float clt_trainer_lr(const clt_trainer *t) { return t ? schedule_lr(&t->p, t->steps) : 0.0f; }

clt_status clt_trainer_schedule(const clt_trainer *t, clt_schedule *out)
{
    if (!t || !out)
        return clt__fail(CLT_ERR_INVALID_ARG, "clt_trainer_schedule: %s is NULL", !t ? "trainer" : "out");
    *out = t->p.schedule;
    return CLT_OK;
}

clt_status clt_trainer_set_schedule(clt_trainer *t, const clt_schedule *s)
{
    if (!t || !s)
        return clt__fail(CLT_ERR_INVALID_ARG, "clt_trainer_set_schedule: %s is NULL", !t ? "trainer" : "schedule");
    clt_status st = check_schedule(s);
    if (st != CLT_OK) return st;
    t->p.schedule = *s;
    return CLT_OK;
}

clt_status clt_trainer_split(const clt_trainer *t, size_t *counts, int n)
{
    if (!t || !counts || n < 1) return clt__fail(CLT_ERR_INVALID_ARG, "clt_trainer_split: %s",
                                                 !t ? "trainer is NULL" : !counts ? "counts is NULL" : "n < 1");
    if (!t->ops->split) return clt__fail(CLT_ERR_UNSUPPORTED, "the %s strategy has no batch split", t->ops->name);
    return t->ops->split(t, counts, n);
}

static size_t out_numel(const clt_trainer *t) { return t->model->layers[t->model->nlayers - 1].out_numel; }
static size_t in_numel(const clt_trainer *t) { return clt_shape_numel(t->model->input); }

/* ---- a step ----------------------------------------------------------------------------- */

/* The inputs of a call fn that takes token ids (tokens) or floats: the kind the model takes, and
 * batch in 1..max_batch. */
static clt_status check_batch(const clt_trainer *t, const void *x, size_t batch, bool tokens, const char *fn)
{
    if (!t) return clt__fail(CLT_ERR_INVALID_ARG, "%s: trainer is NULL", fn);
    if (!x) return clt__fail(CLT_ERR_INVALID_ARG, "%s: inputs are NULL", fn);
    if (batch == 0 || batch > t->p.max_batch)
        return clt__fail(CLT_ERR_INVALID_ARG, "%s: batch %zu is not in 1..max_batch (%zu)", fn,
                         batch, t->p.max_batch);
    if (tokens != clt__model_takes_tokens(t->model))
        return clt__fail(CLT_ERR_INVALID_ARG, tokens ? "%s: the model takes float inputs (its first "
                         "layer is not an embedding): call %.*s" : "%s: the model takes token ids "
                         "(it starts with an embedding): call %.*s_tokens", fn,
                         (int)(strlen(fn) - (tokens ? 7 : 0)), fn);
    return CLT_OK;
}

/* Ids of n rows of `per` positions each in [0, limit); `what` names them in the message. */
static clt_status check_ids(const int32_t *ids, size_t n, size_t per, int32_t limit, const char *fn,
                            const char *what, const char *why)
{
    if (!ids) return clt__fail(CLT_ERR_INVALID_ARG, "%s: %ss are NULL", fn, what);
    for (size_t i = 0; i < n * per; i++)
        if (ids[i] < 0 || ids[i] >= limit) {
            if (per == 1)
                return clt__fail(CLT_ERR_INVALID_ARG, "%s: %s %d of sample %zu is outside 0..%d (%s)",
                                 fn, what, (int)ids[i], i, (int)limit - 1, why);
            return clt__fail(CLT_ERR_INVALID_ARG, "%s: %s %d of row %zu, position %zu is outside "
                             "0..%d (%s)", fn, what, (int)ids[i], i / per, i % per, (int)limit - 1, why);
        }
    return CLT_OK;
}

static clt_status check_labels(const clt_trainer *t, const int32_t *labels, size_t n, bool tokens,
                               const char *fn)
{
    size_t P = clt__model_positions(t->model);
    return check_ids(labels, n, P, (int32_t)clt__model_classes(t->model), fn, tokens ? "target" : "label",
                     "the model's outputs");
}

static clt_status check_tokens(const clt_trainer *t, const int32_t *tokens, size_t n, const char *fn)
{
    const clt__layer *e = &t->model->layers[0];
    return check_ids(tokens, n, e->rows, e->desc.count, fn, "token", "the embedding's vocabulary");
}

/* MSE against one-hot targets of the labels, in the trainer's buffer. */
static clt_status onehot(clt_trainer *t, const int32_t *labels, size_t batch, const float **out)
{
    size_t C = clt__model_classes(t->model), rows = batch * clt__model_positions(t->model);
    if (!t->onehot && !(t->onehot = malloc(t->p.max_batch * out_numel(t) * sizeof(float))))
        return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    memset(t->onehot, 0, rows * C * sizeof(float));
    for (size_t i = 0; i < rows; i++) t->onehot[i * C + (size_t)labels[i]] = 1.0f;
    *out = t->onehot;
    return CLT_OK;
}

/* Hands the step's figures to the progress callback. */
static void report(clt_trainer *t, const clt__batch *b, int update, float lr, double loss,
                   size_t correct, double seconds)
{
    int n = t->rt->nworkers;
    if (!t->info_samples) t->info_samples = calloc((size_t)n, sizeof *t->info_samples);
    if (!t->info_busy) t->info_busy = calloc((size_t)n, sizeof *t->info_busy);
    if (!t->info_samples || !t->info_busy) return;   /* no memory: skip this report */
    if (!t->ops->split || t->ops->split(t, t->info_samples, n) != CLT_OK)
        memset(t->info_samples, 0, (size_t)n * sizeof *t->info_samples);
    if (t->ops->busy) t->ops->busy(t, t->info_busy, n);
    else memset(t->info_busy, 0, (size_t)n * sizeof *t->info_busy);
    for (int d = 0; d < n; d++) t->info_busy[d] = seconds > 0 ? fmin(1.0, t->info_busy[d] / seconds) : 0;
    clt_step_info info = {t->steps, update, (float)loss, lr, b->batch, seconds, n,
                          t->info_samples, t->info_busy, 0, NAN, 0, 0};
    if (update && t->ops->buckets) t->ops->buckets(t, &info.buckets, &info.buckets_overlapped);
    if (b->labels) {   /* clt_trainer_step_targets' targets have no class */
        info.correct = correct;
        info.accuracy = (float)((double)correct /
                                ((double)b->batch * (double)clt__model_positions(t->model)));
    }
    t->progress(&info, t->progress_user);
}

clt_status clt_trainer_set_progress(clt_trainer *t, clt_progress_fn fn, void *user)
{
    if (!t) return clt__fail(CLT_ERR_INVALID_ARG, "clt_trainer_set_progress: trainer is NULL");
    t->progress = fn;
    t->progress_user = user;
    return CLT_OK;
}

static clt_status run_step(clt_trainer *t, const clt__batch *b, float *loss)
{
    int update = t->micro + 1 == t->p.accumulation;
    double l = 0, t0 = clt__now();
    size_t correct = 0;
    float lr = schedule_lr(&t->p, t->steps);
    clt__fault_set_step(t->rt, t->steps + 1);
    clt_status st = t->ops->step(t, b, update, lr, &l, &correct);
    clt__fault_set_step(t->rt, 0);
    if (st != CLT_OK) {
        t->micro = 0;   /* a failed step drops the gradients accumulated so far */
        return st;
    }
    if (update) {
        t->steps++;
        t->micro = 0;
    } else {
        t->micro++;
    }
    if (loss) *loss = (float)l;
    if (t->progress) report(t, b, update, lr, l, correct, clt__now() - t0);
    return CLT_OK;
}

/* A step on x (floats, or token ids carried in the float buffers bit for bit) and labels. */
static clt_status labelled_step(clt_trainer *t, const void *x, const int32_t *labels, size_t batch,
                                float *loss, bool tokens, const char *fn)
{
    clt_status st = check_batch(t, x, batch, tokens, fn);
    if (st == CLT_OK && tokens) st = check_tokens(t, x, batch, fn);
    if (st == CLT_OK) st = check_labels(t, labels, batch, tokens, fn);
    if (st != CLT_OK) return st;
    clt__batch b = {x, labels, NULL, batch};
    if (t->p.loss == CLT_LOSS_MSE && (st = onehot(t, labels, batch, &b.targets)) != CLT_OK) return st;
    return run_step(t, &b, loss);
}

clt_status clt_trainer_step(clt_trainer *t, const float *x, const int32_t *labels, size_t batch,
                            float *loss)
{
    return labelled_step(t, x, labels, batch, loss, false, "clt_trainer_step");
}

clt_status clt_trainer_step_tokens(clt_trainer *t, const int32_t *tokens, const int32_t *targets,
                                   size_t batch, float *loss)
{
    return labelled_step(t, tokens, targets, batch, loss, true, "clt_trainer_step_tokens");
}

clt_status clt_trainer_step_targets(clt_trainer *t, const float *x, const float *targets,
                                    size_t batch, float *loss)
{
    clt_status st = check_batch(t, x, batch, false, "clt_trainer_step_targets");
    if (st != CLT_OK) return st;
    if (!targets) return clt__fail(CLT_ERR_INVALID_ARG, "clt_trainer_step_targets: targets are NULL");
    if (t->p.loss != CLT_LOSS_MSE)
        return clt__fail(CLT_ERR_INVALID_ARG, "clt_trainer_step_targets needs the MSE loss; "
                         "cross-entropy takes labels (clt_trainer_step)");
    clt__batch b = {x, NULL, targets, batch};
    return run_step(t, &b, loss);
}

/* ---- forward only ------------------------------------------------------------------------- */

static clt_status predict(clt_trainer *t, const void *x, size_t batch, float *out, bool tokens,
                          const char *fn)
{
    clt_status st = check_batch(t, x, batch, tokens, fn);
    if (st == CLT_OK && tokens) st = check_tokens(t, x, batch, fn);
    if (st != CLT_OK) return st;
    if (!out) return clt__fail(CLT_ERR_INVALID_ARG, "%s: out is NULL", fn);
    clt__batch b = {x, NULL, NULL, batch};
    double unused;
    return t->ops->forward(t, &b, out, &unused);
}

clt_status clt_trainer_predict(clt_trainer *t, const float *x, size_t batch, float *out)
{
    return predict(t, x, batch, out, false, "clt_trainer_predict");
}

clt_status clt_trainer_predict_tokens(clt_trainer *t, const int32_t *tokens, size_t batch, float *out)
{
    return predict(t, tokens, batch, out, true, "clt_trainer_predict_tokens");
}

/* The first largest entry of a row, as torch.argmax (the first NaN is the largest). */
static size_t argmax(const float *row, size_t C)
{
    size_t best = 0;
    for (size_t c = 1; c < C; c++)
        if (row[c] > row[best] || (isnan(row[c]) && !isnan(row[best]))) best = c;
    return best;
}

static clt_status evaluate(clt_trainer *t, const void *x, const int32_t *labels, size_t n,
                           float *loss, float *accuracy, bool tokens, const char *fn)
{
    clt_status st = check_batch(t, x, 1, tokens, fn);   /* the inputs' kind; n is checked below */
    if (st != CLT_OK) return st;
    if (n == 0) return clt__fail(CLT_ERR_INVALID_ARG, "%s: no sample (n = 0)", fn);
    /* n is checked before a label is read: a size that cannot be an array's (a negative number
     * passed as size_t) must not walk the labels past their end. */
    if (n > SIZE_MAX / (in_numel(t) * sizeof(float)) || n > UINT32_MAX)
        return clt__fail(CLT_ERR_INVALID_ARG, "%s: n = %zu samples cannot be an array's length (a "
                         "negative number as size_t?)", fn, n);
    if (tokens) st = check_tokens(t, x, n, fn);
    if (st == CLT_OK) st = check_labels(t, labels, n, tokens, fn);
    if (st != CLT_OK) return st;
    size_t C = clt__model_classes(t->model), P = clt__model_positions(t->model);
    size_t in = in_numel(t), B = t->p.max_batch;
    float *out = malloc(B * P * C * sizeof *out);
    if (!out) return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    double loss_sum = 0;
    size_t correct = 0;
    for (size_t start = 0; start < n && st == CLT_OK; start += B) {
        size_t bn = n - start < B ? n - start : B;
        const void *xs = tokens ? (const void *)((const int32_t *)x + start * in)
                                : (const void *)((const float *)x + start * in);
        clt__batch b = {xs, labels + start * P, NULL, bn};
        if (t->p.loss == CLT_LOSS_MSE && (st = onehot(t, b.labels, bn, &b.targets)) != CLT_OK) break;
        double part = 0;
        st = t->ops->forward(t, &b, out, &part);
        loss_sum += part;
        for (size_t i = 0; i < bn * P && st == CLT_OK; i++)
            correct += argmax(out + i * C, C) == (size_t)labels[start * P + i];
    }
    free(out);
    if (st != CLT_OK) return st;
    if (loss) *loss = (float)(clt__loss_mean(t, loss_sum, n));
    if (accuracy) *accuracy = (float)((double)correct / ((double)n * (double)P));
    return CLT_OK;
}

clt_status clt_trainer_evaluate(clt_trainer *t, const float *x, const int32_t *labels, size_t n,
                                float *loss, float *accuracy)
{
    return evaluate(t, x, labels, n, loss, accuracy, false, "clt_trainer_evaluate");
}

clt_status clt_trainer_evaluate_tokens(clt_trainer *t, const int32_t *tokens, const int32_t *targets,
                                       size_t n, float *loss, float *accuracy)
{
    return evaluate(t, tokens, targets, n, loss, accuracy, true, "clt_trainer_evaluate_tokens");
}

/* ---- sampling ------------------------------------------------------------------------------ */

clt_generate_options clt_generate_options_default(void)
{
    clt_generate_options o = {sizeof(clt_generate_options), 1.0f, 0, 1};
    return o;
}

/* One draw from softmax(logits / temperature) over the top_k largest (ties: the lower id first),
 * with 53-bit uniforms from the generator. */
static int32_t sample(const float *logits, size_t V, float temperature, int top_k, uint64_t *rng,
                      double *p, uint32_t *order)
{
    if (temperature == 0.0f) return (int32_t)argmax(logits, V);
    size_t k = top_k > 0 && (size_t)top_k < V ? (size_t)top_k : V;
    for (size_t i = 0; i < V; i++) order[i] = (uint32_t)i;
    /* partial selection sort of the k largest: V is a vocabulary, k small or V */
    if (k < V)
        for (size_t i = 0; i < k; i++) {
            size_t best = i;
            for (size_t j = i + 1; j < V; j++)
                if (logits[order[j]] > logits[order[best]]) best = j;
            uint32_t tmp = order[i];
            order[i] = order[best];
            order[best] = tmp;
        }
    double mx = -INFINITY, sum = 0;
    for (size_t i = 0; i < k; i++) mx = fmax(mx, (double)logits[order[i]]);
    for (size_t i = 0; i < k; i++) sum += p[i] = exp(((double)logits[order[i]] - mx) / (double)temperature);
    double u = (double)(clt__splitmix64(rng) >> 11) * (1.0 / 9007199254740992.0) * sum;
    for (size_t i = 0; i < k; i++) {
        if (u < p[i]) return (int32_t)order[i];
        u -= p[i];
    }
    return (int32_t)order[k - 1];
}

clt_status clt_trainer_generate(clt_trainer *t, const int32_t *prompt, size_t n, size_t tokens,
                                const clt_generate_options *opts, int32_t *out)
{
    const char *fn = "clt_trainer_generate";
    if (!t || !prompt || !out)
        return clt__fail(CLT_ERR_INVALID_ARG, "%s: %s is NULL", fn, !t ? "trainer" : !prompt ? "prompt" : "out");
    clt_generate_options o = clt_generate_options_default();
    clt_status st = clt__options_read(&o, opts, sizeof o, CLT__GENERATE_OPTIONS_V1, fn, "clt_generate_options");
    if (st != CLT_OK) return st;
    if (!clt__model_takes_tokens(t->model) || clt__model_positions(t->model) != t->model->layers[0].rows ||
        clt__model_classes(t->model) != (size_t)t->model->layers[0].desc.count)
        return clt__fail(CLT_ERR_INVALID_ARG, "%s: the model is not a language model (token ids "
                         "in, (time, vocabulary) logits out)", fn);
    if (!(o.temperature >= 0.0f) || !isfinite(o.temperature) || o.top_k < 0)
        return clt__fail(CLT_ERR_INVALID_ARG, "%s: temperature %g (>= 0) or top_k %d (>= 0) out of "
                         "range", fn, (double)o.temperature, o.top_k);
    if (n == 0 || n > SIZE_MAX / 8 || tokens > SIZE_MAX / 8)
        return clt__fail(CLT_ERR_INVALID_ARG, "%s: the prompt has %zu tokens (1 at least)", fn, n);
    size_t T = t->model->layers[0].rows, V = clt__model_classes(t->model);
    st = check_ids(prompt, 1, n, (int32_t)V, fn, "token", "the embedding's vocabulary");
    if (st != CLT_OK) return st;
    float *logits = malloc(T * V * sizeof *logits);
    double *p = malloc(V * sizeof *p);
    uint32_t *order = malloc(V * sizeof *order);
    int32_t *ctx = calloc(T, sizeof *ctx);
    if (!logits || !p || !order || !ctx) st = clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    memmove(out, prompt, n * sizeof *out);
    uint64_t rng = o.seed;
    for (size_t i = 0; i < tokens && st == CLT_OK; i++) {
        /* the last T ids at positions 0..len-1; causal attention makes the rest irrelevant */
        size_t have = n + i, len = have < T ? have : T;
        memcpy(ctx, out + have - len, len * sizeof *ctx);
        memset(ctx + len, 0, (T - len) * sizeof *ctx);
        clt__batch b = {(const float *)(const void *)ctx, NULL, NULL, 1};
        double unused;
        st = t->ops->forward(t, &b, logits, &unused);
        if (st == CLT_OK) out[have] = sample(logits + (len - 1) * V, V, o.temperature, o.top_k, &rng, p, order);
    }
    free(logits), free(p), free(order), free(ctx);
    return st;
}

/* ---- parameters ------------------------------------------------------------------------- */

static clt_status param_io(clt_trainer *t, int layer, const char *name, float *host, size_t count,
                           int write, int grads, const char *fn)
{
    if (!t || !host) return clt__fail(CLT_ERR_INVALID_ARG, "%s: %s is NULL", fn, !t ? "trainer" : "the array");
    size_t off, n;
    clt_status st = clt__model_find_param(t->model, layer, name, &off, &n);
    if (st != CLT_OK) return st;
    if (count != n)
        return clt__fail(CLT_ERR_SHAPE, "%s: layer %d's %s has %zu elements, not %zu", fn, layer, name, n, count);
    if (write)
        for (size_t i = 0; i < n; i++)
            if (!isfinite(host[i]))
                return clt__fail(CLT_ERR_NUMERIC, "%s: element %zu of layer %d's %s is not finite", fn, i, layer, name);
    return t->ops->param_io(t, off, n, host, write, grads);
}

clt_status clt_trainer_get_param(clt_trainer *t, int layer, const char *name, float *out, size_t count)
{
    return param_io(t, layer, name, out, count, 0, 0, "clt_trainer_get_param");
}

clt_status clt_trainer_set_param(clt_trainer *t, int layer, const char *name, const float *in, size_t count)
{
    return param_io(t, layer, name, (float *)in, count, 1, 0, "clt_trainer_set_param");
}

clt_status clt_trainer_get_grad(clt_trainer *t, int layer, const char *name, float *out, size_t count)
{
    return param_io(t, layer, name, out, count, 0, 1, "clt_trainer_get_grad");
}
