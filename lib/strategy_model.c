/* Model parallelism: the layers in stages (runs of consecutive layers on one device, from
 * clt_model_place or partitioned automatically), activations sent forward and gradients back
 * through lib/transfer.c links, micro-batches run by a schedule (lib/pipeline.c) that every
 * device interprets on its own worker, all devices at once.
 *
 * Each stage is a clt__net with room for only the micro-batches its schedule can have in flight
 * there: `slots` of mrows rows each (mrows: the largest micro-batch), micro-batch m in slot
 * m % slots of every activation and saved-state buffer. Naive: 1 slot; GPipe: M; 1F1B: S - s on
 * stage s, plus one for the first of a pair of micro-batches whose weight gradients wait for the
 * second's backward (rounded up to even: a pair sits in adjacent slots); zero bubble: 1F1B's
 * (its pairs' weight gradients wait, but never past a forward that needs their slot). The
 * gradient for the previous stage (gout) is the source of a send, and a direct link's receiver
 * copies it later on its own queue, so it gets the slots that make a reuse wait for that copy
 * through the schedule's own dependencies: naive 2, GPipe M, 1F1B and zero bubble S - s + 1
 * (stage s - 1 sends micro-batch m + slots only after receiving m's gradient). Activations are safe the same way: a stage
 * reuses a slot after its backward (and weight gradients), which waits for the next stage's
 * gradient, which comes after that stage's copy. A forward-only call has no backwards to order
 * reuse, so it runs in rounds of at most the fewest slots of any stage, every queue drained in
 * between. The staging of host-staged links keeps a row per sample of the batch (host memory).
 * The loss scales every micro-batch by 1/(whole batch), and gradients accumulate in micro-batch
 * order, so the update is the whole batch's; a row's result does not depend on where in a buffer
 * it sits (dropout hashes its row in the batch, not in the buffer), so the bits depend only on
 * how the weight gradients' passes group the rows (one device's under GPipe with equal
 * micro-batches).
 *
 * Hybrid: P copies of the pipeline (on P times its devices) each take a share of the batch;
 * before the update, the copies of each stage all-reduce their gradients (lib/collective.c,
 * a group per stage), and after it pipeline 0's new parameters and optimizer state replace the
 * other copies' (devices of other vendors may round the same update apart), so every stage has
 * one version of its parameters.
 *
 * A head tied to the token embedding (clt_lm_head(V, 1)) may sit on a later stage than the
 * embedding, as Megatron-LM's first and last stages share the word embeddings: the head's net
 * keeps a copy of the weight (clt__net.tie_w). Every call, stage 0 sends the copy the current
 * weight before the schedule runs; a training call's head writes its gradient into the copy's
 * (tie_g, zeroed first), which after the pipeline goes to stage 0 and is added to the
 * embedding's gradient, before the copies' all-reduce and the norm. The optimizer updates the
 * embedding only; the copy is never a parameter of its own.
 *
 * A step runs in two phases on every device in use, with the host deciding in between (loss,
 * gradient norm, NaN check) so no stage updates unless all can. */
#include "pipeline_exec.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int S, P;               /* stages of a pipeline; pipelines (hybrid: P > 1) */
    clt__pipe_stage *st;    /* st[p * S + k]: stage k of pipeline p */
    size_t rows;            /* rows of a pipeline's share of the batch: max_batch / P, rounded up */
    size_t mrows;           /* rows of its largest micro-batch: rows / micro_batches, rounded up */
    int round;              /* forward only: micro-batches per round, the fewest slots of a stage */
    int ndev, ndev1;        /* devices in use; per pipeline */
    int *devs;              /* runtime device of each device in use; pipeline p's are
                             * devs[p * ndev1 ..], in the order of pipeline 0's */
    int *stage_cdev;        /* stage k -> pipeline 0's device in use, for the schedule */
    clt__xfer_group *g;
    clt__comm **comms;      /* hybrid: comms[k], stage k's copies; NULL with one pipeline */
    uint32_t tag;           /* numbers the pipeline runs, so links never mix two runs */
    clt__schedule **sched[2];  /* [train][p]: the last built (rebuilt when the micro-batches change) */
    int tie_stage;          /* the stage of a head tied to stage 0's embedding; 0: none apart */
    clt__link **tie_fwd;    /* per pipeline, when the tied head's stage is on another device than
                             * stage 0: the embedding's weight to the head's copy */
    clt__link **tie_back;   /* and the copy's gradient back to stage 0 */
    cl_mem *tie_in;         /* per pipeline, on stage 0's device: the gradient received */
} model_state;

/* ---- one device's part of a step: its instruction list (lib/pipeline_exec.c) ---------------- */

typedef struct {
    clt__pipe_job pj;               /* the executor's part */
    clt_trainer *t;
    model_state *s;
    int p;                          /* the pipeline */
    int first_micro, update;
    float lr, gscale;
    double sumsq;
} dev_job;

static clt_status finish(clt__worker *w, const char *what)
{
    cl_int err = clFinish(w->queue);
    return err == CL_SUCCESS ? CLT_OK : clt__fail_cl(err, clt__worker_name(w), what);
}

/* The tied head's copy of the embedding's weight (see the top): from stage 0 to the head's stage
 * of this pipeline, before its schedule; a training call's copy gradient starts at zero. */
static clt_status tie_weight(clt__worker *w, dev_job *j)
{
    model_state *s = j->s;
    clt__pipe_stage *e = &j->pj.st[0], *h = &j->pj.st[s->tie_stage];
    size_t n = h->net->tie_count;
    clt__view src = {e->net->params, 0};   /* the embedding is layer 0: its weight comes first */
    clt_status st = CLT_OK;
    if (e->dev == w->index)
        st = h->dev == w->index ? clt__copy(w, src, (clt__view){h->net->tie_w, 0}, n)
                                : clt__link_send(s->tie_fwd[j->p], j->pj.tag, 0, 0, src, n);
    if (st == CLT_OK && h->dev == w->index && e->dev != w->index)
        st = clt__link_recv(s->tie_fwd[j->p], j->pj.tag, 0, 0, (clt__view){h->net->tie_w, 0}, n);
    if (st == CLT_OK && h->dev == w->index && j->pj.train) st = clt__zero(w, (clt__view){h->net->tie_g, 0}, n);
    return st;
}

/* After the schedule of a training call: the head's gradient added to the embedding's. */
static clt_status tie_grad(clt__worker *w, dev_job *j)
{
    model_state *s = j->s;
    clt__pipe_stage *e = &j->pj.st[0], *h = &j->pj.st[s->tie_stage];
    cl_ulong n = h->net->tie_count, off = 0;
    clt_status st = CLT_OK;
    if (h->dev == w->index && e->dev != w->index)
        st = clt__link_send(s->tie_back[j->p], j->pj.tag, 0, 0, (clt__view){h->net->tie_g, 0}, n);
    if (st != CLT_OK || e->dev != w->index) return st;
    cl_mem g = h->dev == w->index ? h->net->tie_g : s->tie_in[j->p];
    if (h->dev != w->index) st = clt__link_recv(s->tie_back[j->p], j->pj.tag, 0, 0, (clt__view){g, 0}, n);
    cl_mem eg = e->net->grads;
    if (st == CLT_OK)
        st = CLT_LAUNCH(w, "sequence", "add", n, CLT_ARG(n), CLT_ARG(eg), CLT_ARG(off), CLT_ARG(g), CLT_ARG(off),
                        CLT_ARG(eg), CLT_ARG(off));
    /* a call without an update ends here: the copy it read is the head's until this finishes */
    return st == CLT_OK ? finish(w, "adding the tied head's gradient") : st;
}

/* Phase A (and forward-only calls): the device's list, then with an update coming the sum of
 * squares of its stages' gradients. */
static clt_status phase_a_body(clt__worker *w, dev_job *j)
{
    clt_status st = j->first_micro ? clt__pipe_zero_grads(w, &j->pj) : CLT_OK;
    bool tie = j->s->tie_stage && j->pj.sched;
    if (st == CLT_OK && tie) st = tie_weight(w, j);
    if (st == CLT_OK) st = clt__pipe_run(w, &j->pj);
    if (st == CLT_OK && tie && j->pj.train) st = tie_grad(w, j);
    bool norm = j->t->p.clip_norm > 0.0f || j->t->p.check_numerics;
    if (st == CLT_OK && j->update) st = clt__pipe_reduce(w, &j->pj, norm && !j->p, NULL, &j->sumsq);
    return st;
}

/* A failing device aborts the links, so no other waits for what it will never send; the
 * uploads read the caller's arrays asynchronously, so the queue drains on every exit. */
static clt_status failed(clt__worker *w, dev_job *j, clt_status st)
{
    clt__xfer_group_abort(j->s->g, w->index, st, clt_last_error());
    for (int k = 0; j->s->comms && k < j->s->S; k++)
        clt__comm_abort(j->s->comms[k], w->index, st, clt_last_error());
    clFinish(w->queue);
    return st;
}

static clt_status phase_a(clt__worker *w, void *arg)
{
    clt_status st = phase_a_body(w, arg);
    return st == CLT_OK ? st : failed(w, arg, st);
}

/* Phase B: the optimizer on every stage of the device; hybrid: then pipeline 0's update of each
 * stage replaces its copies' (clt__net_share_update: one version of every parameter, whatever
 * the vendors), stage by stage in the same order on every device, as the gradients were summed. */
static clt_status phase_b(clt__worker *w, void *arg)
{
    dev_job *j = arg;
    model_state *s = j->s;
    clt_trainer *t = j->t;
    clt_status st = CLT_OK;
    double t0 = clt__now();
    for (int k = 0; k < s->P * s->S && st == CLT_OK; k++) {
        clt__net *n = s->st[k].net;
        if (s->st[k].dev == w->index) st = clt__net_update_begin(n);   /* all or nothing */
        if (s->st[k].dev == w->index && st == CLT_OK) st = clt__fault_point(w, CLT__FAULT_OPTIMIZER, 1, "the optimizer");
        if (s->st[k].dev == w->index && st == CLT_OK)
            st = clt__net_optimizer_step(n, &t->p.optim, t->p.decay, j->lr, t->steps + 1, j->gscale, 0, n->nparams,
                                         (clt__view){n->grads, 0});
    }
    clt__pipe_stage *mine = j->pj.st;
    for (int k = 0; k < s->S && st == CLT_OK; k++)
        if (mine[k].dev == w->index && mine[k].copies)
            st = clt__net_share_update(mine[k].net, mine[k].copies, 0, mine[k].net->nparams, 0, NULL);
    if (st == CLT_OK) st = finish(w, "finishing the update");
    clt__worker_span(w, "optimizer", t0, clt__now());
    clt__worker_collect(w);
    return st == CLT_OK ? st : failed(w, j, st);
}

/* With verify_replicas (hybrid): the copies of every stage hold pipeline 0's bits. */
static clt_status verify(clt_trainer *t, model_state *s)
{
    clt_status st = CLT_OK;
    for (int k = 0; k < s->S && st == CLT_OK; k++) {
        const clt__pipe_stage *a = &s->st[k];
        size_t np = a->net->nparams;
        float *ref = malloc((np ? np : 1) * sizeof *ref), *got = malloc((np ? np : 1) * sizeof *got);
        st = ref && got ? CLT_OK : clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
        if (st == CLT_OK) st = clt__buffer_io(&t->rt->workers[a->dev], a->net->params, 0, np, ref, 0);
        for (int p = 1; p < s->P && st == CLT_OK; p++) {
            const clt__pipe_stage *b = &s->st[p * s->S + k];
            st = clt__buffer_io(&t->rt->workers[b->dev], b->net->params, 0, np, got, 0);
            for (size_t i = 0; i < np && st == CLT_OK; i++)
                if (memcmp(&ref[i], &got[i], sizeof(float)))
                    st = clt__fail(CLT_ERR_STATE, "replica check after step %ld: stage %d's parameter %zu is "
                                   "%.9g on device %d (pipeline %d), %.9g on device %d (pipeline 0)",
                                   t->steps + 1, k, i, (double)got[i], b->dev, p, (double)ref[i],
                                   a->dev);
        }
        free(ref), free(got);
    }
    return st;
}

/* After a failed update: every stage of the device keeps the last good step. */
static clt_status undo(clt__worker *w, void *arg)
{
    dev_job *j = arg;
    clt_status st = CLT_OK;
    for (int k = 0; k < j->s->P * j->s->S; k++)
        if (j->s->st[k].dev == w->index) {
            clt_status one = clt__net_discard(j->s->st[k].net);
            if (st == CLT_OK) st = one;
        }
    (void)w;
    return st;
}

/* Runs fn on every device in use at once. The error reported is a device's own failure rather
 * than another's CLT_ERR_ABORTED; after a failure the links are reset for the next call. */
static clt_status run_devices(clt_trainer *t, model_state *s, clt__task_fn fn, dev_job *jobs)
{
    clt_status st = clt__run_on(t->rt, s->devs, s->ndev, fn, jobs, sizeof *jobs);
    if (st != CLT_OK) {   /* links and groups start clean for the next step */
        clt__xfer_group_reset(s->g);
        for (int k = 0; s->comms && k < s->S; k++) clt__comm_reset(s->comms[k]);
    }
    return st;
}

static bool split_backward(const clt_trainer *t) { return clt__pipe_split(t->p.pipeline); }

/* One pipeline run over a batch: the batch split between the pipelines, each share into
 * micro-batches, a schedule per pipeline, one job per device. The run takes each share's
 * micro-batches [m0, m0 + mcap); *more says whether any pipeline has some after those. */
static clt_status run_pipeline(clt_trainer *t, const clt__batch *b, int train, size_t m0, size_t mcap,
                               dev_job **jobs_out, clt__pipe_share **rows_out, bool *more)
{
    model_state *s = t->state;
    dev_job *jobs = calloc((size_t)s->ndev, sizeof *jobs);
    clt__pipe_share *sh = NULL;
    clt_status st = clt__pipe_shares(b->batch, s->P, t->p.micro_batches, m0, mcap, &sh, more);
    *jobs_out = jobs, *rows_out = sh;
    if (st == CLT_OK && !jobs) st = clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    uint32_t tag = ++s->tag;
    for (int p = 0; p < s->P && st == CLT_OK; p++) {
        const clt__schedule *sched = NULL;
        if (sh[p].M)   /* built once per micro-batch count */
            st = clt__schedule_cached(&s->sched[train ? 1 : 0][p], t->p.pipeline, s->S, s->stage_cdev, s->ndev1,
                                      sh[p].M, train, split_backward(t), &sched);
        for (int c = 0; c < s->ndev1; c++) {
            clt__pipe_job pj = {.kind = &clt__stage_net, .st = &s->st[p * s->S], .S = s->S, .sched = sched,
                                .sdev = c, .b = b, .share = sh[p], .mrows = s->mrows, .tag = tag, .train = train,
                                .split = split_backward(t), .loss = t->p.loss,
                                .loss_scale = clt__loss_grad_scale(t, b->batch), .seed = clt__step_seed(t),
                                .read_out = true};
            jobs[p * s->ndev1 + c] = (dev_job){.pj = pj, .t = t, .s = s, .p = p, .gscale = 1.0f};
        }
    }
    return st;
}

static clt_status model_step(clt_trainer *t, const clt__batch *b, int update, float lr, double *loss,
                             size_t *correct)
{
    model_state *s = t->state;
    dev_job *jobs;
    clt__pipe_share *rows;
    bool more;
    clt_status st = run_pipeline(t, b, 1, 0, (size_t)t->p.micro_batches, &jobs, &rows, &more);
    for (int d = 0; d < s->ndev && st == CLT_OK; d++)
        jobs[d].first_micro = t->micro == 0, jobs[d].update = update, jobs[d].lr = lr;
    if (st == CLT_OK) st = run_devices(t, s, phase_a, jobs);
    double loss_sum = 0, sumsq = 0;
    *correct = 0;
    for (int d = 0; jobs && d < s->ndev; d++)
        loss_sum += jobs[d].pj.loss_sum, sumsq += jobs[d].sumsq, *correct += jobs[d].pj.correct;
    *loss = clt__loss_mean(t, loss_sum, b->batch);
    float gscale = 1.0f;
    if (st == CLT_OK && t->p.check_numerics && !isfinite(*loss))
        st = clt__grad_scale(t, *loss, 0, &gscale);   /* says which: the loss */
    if (st == CLT_OK && update) {
        st = clt__grad_scale(t, *loss, sumsq, &gscale);
        for (int d = 0; d < s->ndev; d++) jobs[d].gscale = gscale;
        if (st == CLT_OK) st = run_devices(t, s, phase_b, jobs);
        if (st != CLT_OK && st != CLT_ERR_NUMERIC) {   /* some stages may have updated: undo them */
            char keep[512];
            snprintf(keep, sizeof keep, "%s", clt_last_error());
            clt__run_on(t->rt, s->devs, s->ndev, undo, jobs, sizeof *jobs);
            clt__error_set_message(keep);
        }
        for (int k = 0; k < s->P * s->S && st == CLT_OK; k++) clt__net_commit(s->st[k].net);
        if (st == CLT_OK && t->p.verify_replicas && s->P > 1) st = verify(t, s);
    }
    free(jobs), free(rows);
    return st;
}

/* In rounds of s->round micro-batches (see the top); each device's loss sum carries on from
 * round to round, so the sum is the one a single run would add up. */
static clt_status model_forward(clt_trainer *t, const clt__batch *b, float *out, double *loss_sum)
{
    model_state *s = t->state;
    double *sums = calloc((size_t)s->ndev, sizeof *sums);
    clt_status st = sums ? CLT_OK : clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    bool more = true;
    for (size_t m0 = 0; more && st == CLT_OK; m0 += (size_t)s->round) {
        dev_job *jobs;
        clt__pipe_share *rows;
        st = run_pipeline(t, b, 0, m0, (size_t)s->round, &jobs, &rows, &more);
        for (int d = 0; d < s->ndev && st == CLT_OK; d++) jobs[d].pj.out = out, jobs[d].pj.loss_sum = sums[d];
        if (st == CLT_OK) st = run_devices(t, s, phase_a, jobs);
        for (int d = 0; jobs && d < s->ndev && st == CLT_OK; d++) sums[d] = jobs[d].pj.loss_sum;
        free(jobs), free(rows);
    }
    *loss_sum = 0;
    for (int d = 0; sums && d < s->ndev; d++) *loss_sum += sums[d];
    free(sums);
    return st;
}

/* ---- parameters ------------------------------------------------------------------------- */

/* Every parameter lives in exactly one stage: each stage serves its part of the range, of its
 * parameters (array -1), their gradients (-2) or optimizer state array 0 or 1 (a stage's
 * update covers all its parameters). Reads from pipeline 0, writes to every copy. */
static clt_status stages_io(clt_trainer *t, int array, size_t off, size_t count, float *host, int write)
{
    model_state *s = t->state;
    clt_status st = CLT_OK;
    for (int k = 0; k < (write ? s->P : 1) * s->S && st == CLT_OK; k++) {
        clt__net *n = s->st[k].net;
        size_t lo = off > n->param_base ? off : n->param_base;
        size_t hi = off + count < n->param_base + n->nparams ? off + count : n->param_base + n->nparams;
        if (lo >= hi) continue;
        if (array >= 0)
            st = clt__net_state_io(n, array, n->nparams, lo - n->param_base, hi - lo, host + (lo - off), write);
        else
            st = clt__buffer_io(&t->rt->workers[s->st[k].dev], array == -2 ? n->grads : n->params,
                                lo - n->param_base, hi - lo, host + (lo - off), write);
    }
    return st;
}

static clt_status model_param_io(clt_trainer *t, size_t off, size_t count, float *host, int write, int grads)
{
    return stages_io(t, grads ? -2 : -1, off, count, host, write);
}

static clt_status model_state_io(clt_trainer *t, int which, size_t off, size_t count, float *host, int write)
{
    return stages_io(t, which, off, count, host, write);
}

/* ---- placement ------------------------------------------------------------------------------ */

typedef struct {
    const clt_model *m;
    size_t batch;
    const bool *cut_ok;   /* clt__model_cuts */
    double *cost;         /* (nlayers) seconds of forward + backward */
} measure_job;

/* One layer at a time on this device, with zeros (the time does not depend on the values):
 * one warm-up run (it builds the kernels), then the fastest of three (the least disturbed by
 * whatever else the machine runs). */
static clt_status measure_task(clt__worker *w, void *arg)
{
    measure_job *j = arg;
    clt_status st = CLT_OK;
    /* layers a pipeline cannot cut apart (a residual block) are timed together, as the first's */
    for (int i = 0, end; i < j->m->nlayers && st == CLT_OK; i = end + 1) {
        for (end = i; !j->cut_ok[end + 1]; end++) j->cost[end + 1] = 0;
        clt__net *n;
        st = clt__net_create(w, j->m, i, end, j->batch, 1, &n);
        if (st != CLT_OK) break;
        st = clt__zero(w, (clt__view){n->input, 0}, j->m->layers[i].in_numel * j->batch);
        if (st == CLT_OK) st = clt__zero(w, (clt__view){n->gbuf[0], 0}, n->gbuf_cap);
        j->cost[i] = 1e30;
        for (int rep = 0; rep < 4 && st == CLT_OK; rep++) {
            double t0 = clt__now();
            st = clt__net_forward(n, j->batch, 1, 0);
            if (st == CLT_OK)
                st = clt__net_backward(n, j->batch, (clt__view){n->gbuf[0], 0}, (clt__view){n->gbuf[1], 0}, 0);
            if (st == CLT_OK) st = finish(w, "measuring a layer");
            if (rep > 0 && clt__now() - t0 < j->cost[i]) j->cost[i] = clt__now() - t0;
        }
        clt__net_destroy(n);
    }
    return st;
}

/* Bytes a layer needs on a device: parameters, gradients and two optimizer states; its output,
 * saved state and gradient rows; its input rows (a stage's first layer holds them). */
static double layer_bytes(const clt__layer *l, size_t batch, bool split)
{
    double np = (double)(l->w_count + l->b_count), B = (double)batch;
    size_t kept = split && clt__layer_splits(l) ? l->out_numel : 0;   /* the output gradient kept */
    return 4.0 * (4 * np + B * (double)(l->in_numel + 2 * l->out_numel + kept + l->saved_per_sample));
}

/* Over the first N devices (a pipeline's). */
static clt_status auto_place(clt_trainer *t, int N, int *device_of)
{
    const clt_model *m = t->model;
    int L = m->nlayers;
    if (N == 1) {
        for (int i = 0; i < L; i++) device_of[i] = 0;
        return CLT_OK;
    }
    size_t probe = t->p.max_batch < 256 ? t->p.max_batch : 256;
    double *cost = calloc((size_t)N * (size_t)L, sizeof *cost), *mem = calloc((size_t)L, sizeof *mem);
    double *cap = calloc((size_t)N, sizeof *cap);
    bool *cut_ok = calloc((size_t)L + 1, sizeof *cut_ok);
    clt_status st = cost && mem && cap && cut_ok ? CLT_OK : clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    if (st == CLT_OK) clt__model_cuts(m, cut_ok);
    /* one device at a time, so devices sharing a host do not slow each other's figures */
    for (int d = 0; d < N && st == CLT_OK; d++) {
        measure_job j = {m, probe, cut_ok, cost + (size_t)d * (size_t)L};
        st = clt__worker_call(&t->rt->workers[d], measure_task, &j);
        cap[d] = 0.9 * (double)t->rt->workers[d].dev->info.global_mem_bytes;
    }
    for (int i = 0; i < L && st == CLT_OK; i++) mem[i] = layer_bytes(&m->layers[i], t->p.max_batch, split_backward(t));
    if (st == CLT_OK) st = clt__partition(L, N, cost, mem, cap, cut_ok, device_of);
    if (st == CLT_OK && clt__log_enabled(CLT_LOG_INFO))
        for (int i = 0; i < L; i++)
            clt__log(CLT_LOG_INFO, "model parallel: layer %d (%s) on device %d (measured %.3f ms there)", i,
                     clt__layer_kind_name(m->layers[i].desc.kind), device_of[i],
                     1e3 * cost[(size_t)device_of[i] * (size_t)L + (size_t)i]);
    free(cost), free(mem), free(cap), free(cut_ok);
    return st;
}

/* Every run of layers on one device (a stage) can be a net of its own: no residual block cut
 * in two (a tied head may be apart from its embedding: its net keeps a copy). */
static clt_status check_stages(const clt_model *m, const int *device_of)
{
    clt_status st = CLT_OK;
    for (int i = 0, end; i < m->nlayers && st == CLT_OK; i = end + 1) {
        for (end = i; end + 1 < m->nlayers && device_of[end + 1] == device_of[i]; end++) continue;
        st = clt__model_check_blocks(m, i, end, true, "clt_trainer_create (model parallel placement)");
    }
    return st;
}

/* Pipeline 0's placement: the user's, checked against the runtime, or an automatic one over
 * runtime devices / pipelines. *span is how many devices a pipeline spans. */
static clt_status placement(clt_trainer *t, int *device_of, int *span)
{
    const clt_model *m = t->model;
    int placed = 0, P = t->p.pipelines;
    for (int i = 0; i < m->nlayers; i++) placed += m->layers[i].device >= 0;
    *span = t->rt->nworkers / P;
    if (!placed) return auto_place(t, *span, device_of);
    *span = 0;
    for (int i = 0; i < m->nlayers; i++) {
        const clt__layer *l = &m->layers[i];
        if (l->device < 0)
            return clt__fail(CLT_ERR_INVALID_ARG, "clt_trainer_create: layer %d (%s) is not placed: "
                             "place every layer with clt_model_place, or none for automatic "
                             "partitioning", i, clt__layer_kind_name(l->desc.kind));
        if (l->device >= t->rt->nworkers)
            return clt__fail(CLT_ERR_INVALID_ARG, "clt_trainer_create: layer %d (%s) is placed on "
                             "device %d, but the runtime has %d device%s", i,
                             clt__layer_kind_name(l->desc.kind), l->device, t->rt->nworkers,
                             t->rt->nworkers == 1 ? "" : "s");
        device_of[i] = l->device;
        if (l->device + 1 > *span) *span = l->device + 1;
    }
    if (*span * P > t->rt->nworkers)
        return clt__fail(CLT_ERR_INVALID_ARG, "clt_trainer_create: %d pipelines of a placement on "
                         "devices 0..%d need %d devices, but the runtime has %d", P, *span - 1,
                         *span * P, t->rt->nworkers);
    return check_stages(m, device_of);
}

/* ---- create and destroy ----------------------------------------------------------------- */

typedef struct {
    clt_trainer *t;
    clt__pipe_stage *g;
    int first, last;
    size_t mrows;   /* rows of a slot */
    const float *init;
    size_t tie_floats;   /* stage 0 whose tied head is on another device: the gradient's floats */
    cl_mem *tie_in;      /* where that buffer goes */
    bool tie_add;        /* stage 0 whose tied head is on another stage */
} create_job;

/* One forward, loss, backward, sum of squares and optimizer step (learning rate 0) over `rows`
 * rows of zeros, then everything it touched back to zero. It compiles every kernel a step uses
 * (CLBlast picks kernels by size) while no other device runs: PoCL 3.1's CPU driver can abort
 * (pocl_release_dlhandle_cache) when one device compiles a kernel while another runs one. */
static clt_status warm_up(clt__worker *w, clt_trainer *t, clt__pipe_stage *g, int first, int last, size_t rows,
                          const create_job *j)
{
    clt__net *n = g->net;
    double unused;
    clt_status st = clt__pipe_warm_up(w, &clt__stage_net, NULL, g, first == 0, last == t->model->nlayers - 1, rows,
                                      split_backward(t), t->p.loss);
    if (st == CLT_OK && j->tie_add) {   /* the add of the tied head's gradient, on zeros */
        cl_ulong c = t->model->layers[0].w_count, off = 0;
        cl_mem y = j->tie_in && *j->tie_in ? *j->tie_in : n->grads;
        st = CLT_LAUNCH(w, "sequence", "add", c, CLT_ARG(c), CLT_ARG(n->grads), CLT_ARG(off), CLT_ARG(y),
                        CLT_ARG(off), CLT_ARG(n->grads), CLT_ARG(off));
    }
    if (st == CLT_OK && n->nparams) st = clt__net_sumsq(n, (clt__view){n->grads, 0}, n->nparams, &unused);
    if (st == CLT_OK && n->nparams) return clt__net_warm_optimizer(n, &t->p.optim, 0, n->nparams);
    return st == CLT_OK ? finish(w, "warming up") : st;
}

static clt_status create_stage(clt__worker *w, void *arg)
{
    create_job *j = arg;
    const clt_model *m = j->t->model;
    size_t R = j->mrows;
    clt__pipe_stage *g = j->g;
    clt_status st = clt__net_create(w, m, j->first, j->last, (size_t)g->slots * R, 1, &g->net);
    if (st != CLT_OK) return st;
    clt__net *n = g->net;
    g->in = m->layers[j->first].in_numel;
    g->out = m->layers[j->last].out_numel;
    st = clt__pipe_stage_buffers(w, g, j->first == 0, j->last == m->nlayers - 1, R, split_backward(j->t));
    if (st == CLT_OK && j->tie_floats) st = clt__alloc(w, j->tie_floats, "the tied head's gradient", j->tie_in);
    if (st == CLT_OK && j->tie_floats) st = clt__zero(w, (clt__view){*j->tie_in, 0}, j->tie_floats);
    if (st == CLT_OK && n->nparams) {
        cl_int err = clEnqueueWriteBuffer(w->queue, n->params, CL_TRUE, 0, n->nparams * sizeof(float),
                                          j->init + n->param_base, 0, NULL, NULL);
        if (err != CL_SUCCESS) st = clt__fail_cl(err, clt__worker_name(w), "uploading the parameters");
    }
    /* every call runs micro-batches of at most R rows */
    if (st == CLT_OK) st = warm_up(w, j->t, g, j->first, j->last, R, j);
    return st;
}

static void model_destroy(clt_trainer *t)
{
    model_state *s = t->state;
    if (!s) return;
    for (int k = 0; s->comms && k < s->S; k++) clt__comm_destroy(s->comms[k]);
    for (int k = 0; s->st && k < s->P * s->S; k++) {
        clt__pipe_unlink(&s->st[k]);
        if (s->st[k].net) clt__worker_call(&t->rt->workers[s->st[k].dev], clt__pipe_stage_free, &s->st[k]);
    }
    for (int p = 0; p < s->P; p++) {
        if (s->tie_fwd) clt__link_destroy(s->tie_fwd[p]);
        if (s->tie_back) clt__link_destroy(s->tie_back[p]);
        if (s->tie_in && s->tie_in[p]) clReleaseMemObject(s->tie_in[p]);
    }
    free(s->tie_fwd), free(s->tie_back), free(s->tie_in);
    clt__xfer_group_destroy(s->g);
    for (int i = 0; i < 2; i++) {
        for (int p = 0; s->sched[i] && p < s->P; p++) clt__schedule_free(s->sched[i][p]);
        free(s->sched[i]);
    }
    free(s->st), free(s->devs), free(s->stage_cdev), free(s->comms);
    free(s);
    t->state = NULL;
}

static void log_stages(const clt_trainer *t, const model_state *s)
{
    clt__log(CLT_LOG_INFO, "model parallel: %d pipeline%s of %d stage%s on %d device%s, %s schedule, %d micro-batch%s",
             s->P, s->P == 1 ? "" : "s", s->S, s->S == 1 ? "" : "s", s->ndev, s->ndev == 1 ? "" : "s",
             clt_pipeline_schedule_name(t->p.pipeline), t->p.micro_batches, t->p.micro_batches == 1 ? "" : "es");
    for (int k = 0; k < s->P * s->S; k++)
        clt__log(CLT_LOG_INFO, "model parallel: pipeline %d stage %d: layers %d..%d on device %d (%s)%s", k / s->S,
                 k % s->S, s->st[k].net->first, s->st[k].net->last, s->st[k].dev,
                 clt__worker_name(&t->rt->workers[s->st[k].dev]),
                 s->st[k].act ? (clt__link_direct(s->st[k].act) ? ", sends by copy" : ", sends via host staging") : "");
}

static clt_status model_create(clt_trainer *t, const float *init)
{
    const clt_model *m = t->model;
    int L = m->nlayers, N = t->rt->nworkers, P = t->p.pipelines, span = 1;
    model_state *s = calloc(1, sizeof *s);
    int *device_of = calloc((size_t)L, sizeof *device_of);
    if (!s || !device_of) {
        free(s), free(device_of);
        return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    }
    t->state = s;
    s->P = P;
    s->rows = (t->p.max_batch + (size_t)P - 1) / (size_t)P;
    clt_status st = placement(t, device_of, &span);
    int S = 0;
    for (int i = 0; i < L; i++) S += i == 0 || device_of[i] != device_of[i - 1];
    if (st == CLT_OK) {
        s->S = S;
        s->st = calloc((size_t)(P * S), sizeof *s->st);
        s->stage_cdev = calloc((size_t)S, sizeof *s->stage_cdev);
        s->devs = calloc((size_t)N, sizeof *s->devs);
        s->sched[0] = calloc((size_t)P, sizeof *s->sched[0]);
        s->sched[1] = calloc((size_t)P, sizeof *s->sched[1]);
        if (!s->st || !s->stage_cdev || !s->devs || !s->sched[0] || !s->sched[1])
            st = clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    }
    if (st == CLT_OK) st = clt__xfer_group_create(&s->g, 0);
    /* pipeline 0's stages and devices in use; pipeline p's are the same, span devices on */
    for (int i = 0, k = 0; i < L && st == CLT_OK; k++) {
        int last = i;
        while (last + 1 < L && device_of[last + 1] == device_of[i]) last++;
        clt__pipe_stage *g = &s->st[k];
        int cdev = -1;
        g->dev = device_of[i];
        for (int d = 0; d < s->ndev1; d++)
            if (s->devs[d] == g->dev) cdev = d;
        if (cdev < 0) s->devs[cdev = s->ndev1++] = g->dev;
        s->stage_cdev[k] = cdev;
        i = last + 1;
    }
    s->ndev = P * s->ndev1;
    for (int p = 1; p < P && st == CLT_OK; p++) {
        for (int c = 0; c < s->ndev1; c++) s->devs[p * s->ndev1 + c] = s->devs[c] + p * span;
        for (int k = 0; k < S; k++) s->st[p * S + k].dev = s->st[k].dev + p * span;
    }
    /* the slots of each stage (see the top), the same in every pipeline */
    int M = t->p.micro_batches;
    s->mrows = (s->rows + (size_t)M - 1) / (size_t)M;
    s->round = M;
    for (int k = 0; k < P * S && st == CLT_OK; k++) {
        clt__pipe_stage *g = &s->st[k];
        clt__pipeline_slots(t->p.pipeline, S, k % S, M, split_backward(t), &g->slots, &g->gslots);
        if (g->slots < s->round) s->round = g->slots;
    }
    /* a head tied to the embedding (layer 0) on a later stage */
    for (int i = 0, k = 0; i < L && st == CLT_OK; i++) {
        k += i > 0 && device_of[i] != device_of[i - 1];
        if (m->layers[i].desc.kind == CLT_LAYER_LM_HEAD && m->layers[i].tie >= 0 && k > 0) s->tie_stage = k;
    }
    size_t tie_floats = s->tie_stage && s->st[s->tie_stage].dev != s->st[0].dev ? m->layers[0].w_count : 0;
    if (st == CLT_OK && tie_floats &&
        (!(s->tie_fwd = calloc((size_t)P, sizeof *s->tie_fwd)) || !(s->tie_back = calloc((size_t)P, sizeof *s->tie_back)) ||
         !(s->tie_in = calloc((size_t)P, sizeof *s->tie_in))))
        st = clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    /* stages, one at a time: each allocates its own buffers, and a failure stops the rest */
    for (int k = 0, i = 0; k < P * S && st == CLT_OK; k++) {
        if (k % S == 0) i = 0;
        int last = i;
        while (last + 1 < L && device_of[last + 1] == device_of[i]) last++;
        bool first_of_tie = k % S == 0 && s->tie_stage;
        create_job j = {t, &s->st[k], i, last, s->mrows, init, first_of_tie ? tie_floats : 0,
                        first_of_tie && tie_floats ? &s->tie_in[k / S] : NULL, first_of_tie};
        st = clt__worker_call(&t->rt->workers[s->st[k].dev], create_stage, &j);
        i = last + 1;
    }
    for (int k = 0; k < P * S && st == CLT_OK; k++)
        if (k % S != S - 1)   /* a pipeline's last stage sends nothing forward */
            st = clt__pipe_link(&s->st[k], &s->st[k + 1], s->g, &t->rt->workers[s->st[k].dev],
                                &t->rt->workers[s->st[k + 1].dev], s->rows);
    for (int p = 0; p < P && st == CLT_OK && tie_floats; p++) {   /* the tied head's two messages */
        clt__worker *a = &t->rt->workers[s->st[p * S].dev], *b = &t->rt->workers[s->st[p * S + s->tie_stage].dev];
        st = clt__link_create(&s->tie_fwd[p], s->g, a, b, tie_floats, 1, 0);
        if (st == CLT_OK) st = clt__link_create(&s->tie_back[p], s->g, b, a, tie_floats, 1, 0);
    }
    if (st == CLT_OK && P > 1 && !(s->comms = calloc((size_t)S, sizeof *s->comms)))
        st = clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    int *members = P > 1 && st == CLT_OK ? calloc((size_t)P, sizeof *members) : NULL;
    if (P > 1 && st == CLT_OK && !members) st = clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    for (int k = 0; k < S && st == CLT_OK && P > 1; k++) {
        for (int p = 0; p < P; p++) members[p] = s->st[p * S + k].dev;
        st = clt__comm_create_group(&s->comms[k], t->rt, members, P);
        for (int p = 0; p < P && st == CLT_OK; p++) s->st[p * S + k].copies = s->comms[k];
    }
    free(members);
    if (st == CLT_OK) log_stages(t, s);
    free(device_of);
    return st;
}

/* No split (devices hold layers, not rows), no per-device busy times. */
const clt__strategy_ops clt__strategy_model = {
    "model parallel", model_create, model_destroy, model_step, model_forward, model_param_io,
    NULL, model_state_io, NULL, NULL,
};
