/* CLT_PARALLEL_AUTO: the parallel mode chosen by trying it. Each candidate is created as the
 * caller would create it and run for a few steps of the largest batch on random data; the
 * fastest one that ran wins. Trying is what the alternatives come to on devices of different
 * kinds: a model of each device's speed, of every link (one context, host staging, PCIe or
 * not) and of each mode's overlap would have to be measured anyway, and would still miss what
 * a real step shows (a kernel slow at one shape, a driver serialising queues). The trials cost
 * a trainer creation (its warm-up) and a quarter of a second of steps per candidate, and again
 * for the candidates close to the fastest, once.
 *
 * This file sits above the trainer: it calls clt_trainer_create for each concrete mode
 * (clt__trainer_create_mode) and the public step calls; nothing below calls into it. */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define UNTIMED_STEPS 3    /* first-use costs; a measured split's first re-measure (after its
                            * second step) and the warm-up of the shares it then takes */
#define MIN_STEPS 5        /* timed steps of a try, at least */
#define MIN_SECONDS 0.25   /* and at least this long */
#define MAX_STEPS 200
#define CLOSE 1.25         /* tried again: the candidates within this factor of the fastest */

typedef struct {
    float *x;              /* (max_batch, input numel) floats, or token ids stored as int32 */
    int32_t *labels;       /* (max_batch, positions) */
    float *targets;        /* MSE: (max_batch, output numel) */
} trial_data;

static void free_data(trial_data *d) { free(d->x), free(d->labels), free(d->targets); }

/* Random inputs in [-0.5, 0.5) (token ids below the vocabulary), labels below the classes, MSE
 * targets in [-0.5, 0.5): the step's time does not depend on the values. */
static clt_status make_data(const clt_model *m, const clt_train_params *p, trial_data *d)
{
    size_t B = p->max_batch, in = m->layers[0].in_numel, out = m->layers[m->nlayers - 1].out_numel;
    size_t pos = clt__model_positions(m), classes = clt__model_classes(m);
    bool tokens = clt__model_takes_tokens(m);
    size_t vocab = tokens ? (size_t)m->layers[0].desc.count : 0;
    memset(d, 0, sizeof *d);
    d->x = malloc(B * in * sizeof *d->x);
    d->labels = malloc(B * pos * sizeof *d->labels);
    d->targets = p->loss == CLT_LOSS_MSE ? malloc(B * out * sizeof *d->targets) : NULL;
    if (!d->x || !d->labels || (p->loss == CLT_LOSS_MSE && !d->targets)) {
        free_data(d);
        return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "clt_plan_parallel: out of host memory");
    }
    uint64_t r = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < B * in; i++) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        if (tokens) ((int32_t *)(void *)d->x)[i] = (int32_t)((r >> 33) % vocab);
        else d->x[i] = (float)((double)(r >> 40) / (double)(1ull << 24)) - 0.5f;
    }
    for (size_t i = 0; i < B * pos; i++) d->labels[i] = (int32_t)(i * 7 % classes);
    for (size_t i = 0; d->targets && i < B * out; i++) d->targets[i] = (float)(i % 11) / 11.0f - 0.5f;
    return CLT_OK;
}

static clt_status trial_step(clt_trainer *t, const clt_model *m, const clt_train_params *p, const trial_data *d)
{
    if (clt__model_takes_tokens(m))
        return clt_trainer_step_tokens(t, (const int32_t *)(const void *)d->x, d->labels, p->max_batch, NULL);
    if (p->loss == CLT_LOSS_MSE) return clt_trainer_step_targets(t, d->x, d->targets, p->max_batch, NULL);
    return clt_trainer_step(t, d->x, d->labels, p->max_batch, NULL);
}

/* Steps of one trainer: at least MIN_STEPS and MIN_SECONDS of them (at most MAX_STEPS); *mean
 * is the seconds a step over the whole run. The mean, not the fastest step or the median: a mode
 * whose steps differ (a measured split re-measuring every few steps, buckets that overlap in some
 * steps, an update left running into the next step) costs what its steps cost together. */
static clt_status time_steps(clt_trainer *t, const clt_model *m, const clt_train_params *p, const trial_data *d,
                             double *mean)
{
    clt_status st = CLT_OK;
    double start = clt__now();
    int n = 0;
    while (st == CLT_OK && n < MAX_STEPS && (n < MIN_STEPS || clt__now() - start < MIN_SECONDS)) {
        st = trial_step(t, m, p, d);
        n++;
    }
    *mean = (clt__now() - start) / n;
    return st;
}

/* Creates o's trainer, runs UNTIMED_STEPS, then time_steps; o->step_seconds
 * keeps the faster of that and what an earlier try found (a try is slowed by load from elsewhere,
 * never sped up). Statuses that say the mode does not
 * fit this model or these devices go to o->status and return CLT_OK; anything else (a device
 * failing) is returned. */
static clt_status try_option(clt_runtime *rt, const clt_model *m, const trial_data *d, clt_plan_option *o)
{
    clt_trainer *t = NULL;
    double mean = 0;
    clt_status st = clt__trainer_create_mode(&t, rt, m, &o->params);
    for (int i = 0; i < UNTIMED_STEPS && st == CLT_OK; i++) st = trial_step(t, m, &o->params, d);
    if (st == CLT_OK) st = time_steps(t, m, &o->params, d, &mean);
    clt_trainer_destroy(t);
    o->status = st;
    if (st == CLT_OK) {
        if (o->step_seconds <= 0 || mean < o->step_seconds) o->step_seconds = mean;
        clt__log(CLT_LOG_INFO, "plan: %s: %.2f ms a step of %zu", o->what, 1e3 * o->step_seconds,
                 o->params.max_batch);
        return CLT_OK;
    }
    o->step_seconds = 0;
    clt__log(CLT_LOG_INFO, "plan: %s: cannot run: %s", o->what, clt_last_error());
    if (st == CLT_ERR_UNSUPPORTED || st == CLT_ERR_INVALID_ARG || st == CLT_ERR_SHAPE ||
        st == CLT_ERR_OUT_OF_DEVICE_MEMORY || st == CLT_ERR_OUT_OF_HOST_MEMORY) {
        clt__error_clear();
        return CLT_OK;
    }
    return st;
}

/* Appends a candidate: the caller's parameters with the mode's fields set. */
static clt_plan_option *add(clt_plan_option *all, int *n, const clt_train_params *base, clt_parallel mode,
                            const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static clt_plan_option *add(clt_plan_option *all, int *n, const clt_train_params *base, clt_parallel mode,
                            const char *fmt, ...)
{
    clt_plan_option *o = &all[(*n)++];
    memset(o, 0, sizeof *o);
    o->params = *base;
    o->params.parallel = mode;
    o->params.split_weights = o->params.tensor_split_weights = NULL;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(o->what, sizeof o->what, fmt, ap);
    va_end(ap);
    return o;
}

/* The most candidates() lists for rt: N alone, 2 data, 2 tensor, 2 pipelines, 1 of copies. */
static int max_candidates(const clt_runtime *rt) { return 2 * rt->nworkers + 8; }

/* Every candidate for N devices (see cltrain.h), into all (room for max_candidates). */
static int candidates(const clt_runtime *rt, const clt_train_params *p, clt_plan_option *all)
{
    int N = rt->nworkers, n = 0;
    size_t B = p->max_batch;
    for (int d = 0; d < N; d++) add(all, &n, p, CLT_PARALLEL_NONE, "one device (%d)", d)->params.device = d;
    if (N < 2) return n;
    add(all, &n, p, CLT_PARALLEL_DATA, "data parallel, equal shares")->params.split = CLT_SPLIT_EQUAL;
    add(all, &n, p, CLT_PARALLEL_DATA, "data parallel, shares by measured speed")->params.split = CLT_SPLIT_AUTO;
    if (rt->mpi || p->elastic) return n;
    clt_plan_option *o = add(all, &n, p, CLT_PARALLEL_TENSOR, "tensor parallel, %d devices", N);
    o->params.tensor_group = N, o->params.tensor_split = CLT_SPLIT_AUTO;
    if (N >= 4 && N % 2 == 0) {
        o = add(all, &n, p, CLT_PARALLEL_TENSOR, "tensor parallel, %d groups of 2", N / 2);
        o->params.tensor_group = 2, o->params.tensor_split = CLT_SPLIT_AUTO;
    }
    for (int per = 2; per <= 4; per += 2) {
        int M = per * N;
        if ((size_t)M > B) break;
        o = add(all, &n, p, CLT_PARALLEL_MODEL, "pipeline of %d stages, 1f1b, %d micro-batches", N, M);
        o->params.pipeline = CLT_PIPELINE_1F1B, o->params.micro_batches = M, o->params.pipelines = 1;
    }
    if (N >= 4 && N % 2 == 0 && (size_t)N <= B) {
        o = add(all, &n, p, CLT_PARALLEL_MODEL, "2 copies of a pipeline of %d stages, 1f1b, %d micro-batches",
                N / 2, N);
        o->params.pipeline = CLT_PIPELINE_1F1B, o->params.micro_batches = N, o->params.pipelines = 2;
    }
    return n;
}

clt_status clt_plan_parallel(clt_runtime *rt, const clt_model *m, const clt_train_params *params,
                             clt_plan_option *options, int cap, int *count, int *chosen)
{
    if (count) *count = 0;
    if (chosen) *chosen = -1;
    if (!rt || !m || !params || !count || !chosen || (!options && cap > 0) || cap < 0)
        return clt__fail(CLT_ERR_INVALID_ARG, "clt_plan_parallel: %s", !rt ? "runtime is NULL" : !m ? "model is NULL"
                         : !params ? "params is NULL" : !count || !chosen ? "count and chosen are needed"
                         : "options is NULL or cap is negative");
    if (m->nlayers == 0) return clt__fail(CLT_ERR_INVALID_ARG, "clt_plan_parallel: the model has no layer");
    for (int i = 0; i < m->nlayers; i++)
        if (m->layers[i].device >= 0)
            return clt__fail(CLT_ERR_INVALID_ARG, "clt_plan_parallel: layer %d is placed (clt_model_place): "
                             "the planner chooses placements itself; leave the model unplaced", i);
    clt_train_params p = clt_train_params_default();
    clt_status st = clt__options_read(&p, params, sizeof p, CLT__TRAIN_PARAMS_V1, "clt_plan_parallel",
                                      "clt_train_params");
    if (st != CLT_OK) return st;
    clt_plan_option *all = calloc((size_t)max_candidates(rt), sizeof *all);
    trial_data d;
    if (!all) return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "clt_plan_parallel: out of host memory");
    st = make_data(m, &p, &d);
    int n = st == CLT_OK ? candidates(rt, &p, all) : 0, best = -1;
    for (int i = 0; i < n && st == CLT_OK; i++) {
        st = try_option(rt, m, &d, &all[i]);
        if (st == CLT_OK && all[i].status == CLT_OK && (best < 0 || all[i].step_seconds < all[best].step_seconds))
            best = i;
    }
    /* the close ones again, each keeping its faster figure: one try's luck decides less */
    double bar = best >= 0 ? CLOSE * all[best].step_seconds : 0;
    for (int i = 0; i < n && st == CLT_OK && best >= 0; i++)
        if (all[i].status == CLT_OK && all[i].step_seconds <= bar) st = try_option(rt, m, &d, &all[i]);
    best = -1;
    for (int i = 0; i < n && st == CLT_OK; i++)
        if (all[i].status == CLT_OK && (best < 0 || all[i].step_seconds < all[best].step_seconds)) best = i;
    for (int i = 0; i < n && i < cap; i++) options[i] = all[i];
    *count = n;
    *chosen = st == CLT_OK ? best : -1;
    if (st == CLT_OK && best < 0) {
        st = all[0].status;
        clt__fail(st, "clt_plan_parallel: no candidate could run; the first (%s) failed with %s", all[0].what,
                  clt_status_name(st));
    }
    if (st == CLT_OK)
        clt__log(CLT_LOG_INFO, "plan: chose %s (%.2f ms a step)", all[best].what, 1e3 * all[best].step_seconds);
    free_data(&d);
    free(all);
    return st;
}

clt_status clt_trainer_create(clt_trainer **out, clt_runtime *rt, const clt_model *m,
                              const clt_train_params *params)
{
    if (!params || params->struct_size < CLT__END_OF(clt_train_params, parallel) ||
        params->parallel != CLT_PARALLEL_AUTO)
        return clt__trainer_create_mode(out, rt, m, params);
    if (!out) return clt__fail(CLT_ERR_INVALID_ARG, "clt_trainer_create: out is NULL");
    *out = NULL;
    int count, chosen, cap = rt ? max_candidates(rt) : 0;
    clt_plan_option *o = calloc((size_t)(cap ? cap : 1), sizeof *o);
    if (!o) return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "clt_trainer_create: out of host memory");
    clt_status st = clt_plan_parallel(rt, m, params, o, cap, &count, &chosen);
    if (st == CLT_OK) st = clt__trainer_create_mode(out, rt, m, &o[chosen].params);
    free(o);
    return st;
}
