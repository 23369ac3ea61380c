/* Data parallelism (and, with one rank, plain one-device training). Every rank holds a replica
 * of the whole model; a step splits the batch between the ranks, each runs forward and backward
 * on its share with the loss scaled by 1/global batch, so the sum of the ranks' gradients is the
 * gradient of the whole batch. The update is sharded (ZeRO stage 1):
 *
 *   reduce-scatter the gradients   rank r owns the sum of shard r
 *   optimizer on shard r           with that shard's optimizer state only
 *   all-gather the parameters      every rank gets every shard
 *
 * This moves the same bytes as an all-reduce, and every parameter is computed on exactly one
 * device, so replicas stay bitwise identical even across vendors whose division or sqrt round
 * differently. A step runs in two phases on all workers at once, with the host deciding in
 * between (losses, gradient norm, NaN check) so no rank updates unless all can. */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int n;                  /* ranks */
    int *dev;               /* runtime device of rank r */
    clt__net **nets;
    size_t shard;           /* parameters per rank; nets are padded to n * shard */
    clt__comm *comm;        /* NULL with one rank */
    clt_collective_options copts;
    /* the split */
    double *weights;        /* relative speed or given weight per rank */
    size_t *counts;         /* samples of the last step per rank */
    double *win_time, *win_samples;   /* CLT_SPLIT_AUTO's measuring window */
    double *last_seconds;             /* compute seconds of the last step per rank */
    int win_steps;
    int measured;           /* auto: windows completed */
} data_state;

/* ---- the split ------------------------------------------------------------------------------ */

/* counts[r] = batch * w_r / sum(w), rounded so they add up to batch: floors first, then the
 * largest remainders (ties to the lower rank). Deterministic for given weights. */
static void split_batch(const data_state *s, size_t batch, size_t *counts)
{
    double sum = 0;
    for (int r = 0; r < s->n; r++) sum += s->weights[r];
    size_t given = 0;
    double *rem = malloc((size_t)s->n * sizeof *rem);
    for (int r = 0; r < s->n; r++) {
        double share = sum > 0 ? (double)batch * s->weights[r] / sum : (double)batch / s->n;
        counts[r] = (size_t)floor(share);
        if (rem) rem[r] = share - (double)counts[r];
        given += counts[r];
    }
    while (given < batch) {
        int best = 0;
        for (int r = 1; r < s->n; r++)
            if (rem && rem[r] > rem[best]) best = r;
        counts[best]++;
        if (rem) rem[best] = -1;
        given++;
    }
    free(rem);
}

/* CLT_SPLIT_AUTO: after a window of steps, weights become each rank's measured samples/s. The
 * first window is one step long (after a warm-up step), later ones rebalance_every steps. */
static void auto_rebalance(clt_trainer *t, data_state *s)
{
    if (t->p.split != CLT_SPLIT_AUTO || s->n == 1) return;
    int want = s->measured == 0 ? 1 : (t->p.rebalance_every ? t->p.rebalance_every : 20);
    if (++s->win_steps < want) return;
    for (int r = 0; r < s->n; r++)
        if (s->win_samples[r] > 0 && s->win_time[r] > 0) s->weights[r] = s->win_samples[r] / s->win_time[r];
    clt__log(CLT_LOG_INFO, "data parallel: batch split re-measured after %d step(s)", s->win_steps);
    memset(s->win_time, 0, (size_t)s->n * sizeof *s->win_time);
    memset(s->win_samples, 0, (size_t)s->n * sizeof *s->win_samples);
    s->win_steps = 0;
    s->measured++;
}

/* ---- per-rank tasks ------------------------------------------------------------------------- */

typedef struct {
    clt_trainer *t;
    data_state *s;
    int rank;
    const clt__batch *b;
    size_t start, count;    /* this rank's rows of the batch */
    int update, first_micro;
    float lr, gscale;
    double loss_sum, sumsq, seconds;
    float *out;             /* forward: the caller's output rows */
    size_t correct;         /* rows whose largest output is the right class */
} rank_job;

static size_t out_numel(const clt_trainer *t) { return t->model->layers[t->model->nlayers - 1].out_numel; }

/* Uploads this rank's rows and runs forward (and the loss when labels or targets are given). */
static clt_status rank_forward(rank_job *j, clt__worker *w, int training, int want_grad)
{
    clt_trainer *t = j->t;
    clt__net *n = j->s->nets[j->rank];
    const clt__batch *b = j->b;
    (void)w;
    clt_status st = clt__net_upload_rows(n, b, j->start, j->count);
    n->row0 = j->start;
    if (st == CLT_OK) st = clt__net_forward(n, j->count, training, clt__step_seed(t));
    if (st == CLT_OK && (b->labels || b->targets))
        st = clt__net_loss(n, t->p.loss, j->count, clt__loss_grad_scale(t, b->batch), want_grad,
                           &j->loss_sum, &j->correct);
    return st;
}

/* Phase A: forward and backward of this rank's rows (gradients accumulate); with an update
 * coming, the reduce-scatter of the gradients and the sum of squares of this rank's shard. */
static clt_status phase_a_body(clt__worker *w, rank_job *j)
{
    clt_trainer *t = j->t;
    data_state *s = j->s;
    clt__net *n = s->nets[j->rank];
    clt_status st = CLT_OK;
    double t0 = clt__now();
    if (j->first_micro) st = clt__zero(w, (clt__view){n->grads, 0}, n->padded);
    if (st == CLT_OK && j->count) {
        st = rank_forward(j, w, 1, 1);
        if (st == CLT_OK)
            st = clt__net_backward(n, j->count, (clt__view){n->gbuf[0], 0}, (clt__view){NULL, 0},
                                   clt__step_seed(t));
    }
    if (st == CLT_OK) {
        cl_int err = clFinish(w->queue);
        if (err != CL_SUCCESS) st = clt__fail_cl(err, clt__worker_name(w), "finishing backward");
    }
    if (j->count) clt__worker_throttle(w, clt__now() - t0);
    j->seconds = clt__now() - t0;
    clt__worker_span(w, "forward + backward", t0, t0 + j->seconds);
    if (st != CLT_OK || !j->update) return st;
    size_t off = (size_t)j->rank * s->shard;
    /* In place: rank r's summed shard lands where its own shard of the gradients was. */
    double t1 = clt__now();
    if (s->comm)
        st = clt__comm_reduce_scatter(s->comm, w, n->grads, 0, n->grads, off, s->shard, CLT_OP_SUM,
                                      &s->copts);
    double t2 = clt__now();
    if (s->comm) clt__worker_span(w, "reduce-scatter gradients", t1, t2);
    if (st == CLT_OK && (t->p.clip_norm > 0.0f || t->p.check_numerics))
        st = clt__net_sumsq(n, (clt__view){n->grads, off}, s->shard, &j->sumsq);
    clt__worker_span(w, "gradient norm", t2, clt__now());
    return st;
}

/* Phase B: the optimizer on this rank's shard, then the all-gather of the parameters. */
static clt_status phase_b_body(clt__worker *w, rank_job *j)
{
    clt_trainer *t = j->t;
    data_state *s = j->s;
    clt__net *n = s->nets[j->rank];
    size_t off = (size_t)j->rank * s->shard;
    double t0 = clt__now();
    clt_status st = clt__net_optimizer_step(n, &t->p.optim, j->lr, t->steps + 1, j->gscale, off,
                                            s->shard, (clt__view){n->grads, off});
    if (st == CLT_OK) {
        cl_int err = clFinish(w->queue);
        if (err != CL_SUCCESS) st = clt__fail_cl(err, clt__worker_name(w), "finishing the update");
    }
    double t1 = clt__now();
    clt__worker_span(w, "optimizer (own shard)", t0, t1);
    if (st == CLT_OK && s->comm)
        st = clt__comm_all_gather(s->comm, w, n->params, off, n->params, 0, s->shard, &s->copts);
    if (s->comm) clt__worker_span(w, "all-gather parameters", t1, clt__now());
    if (st == CLT_OK) {
        cl_int err = clFinish(w->queue);
        if (err != CL_SUCCESS) st = clt__fail_cl(err, clt__worker_name(w), "finishing the update");
        clt__worker_collect(w);
    }
    return st;
}

/* Uploads read the caller's arrays asynchronously: on every exit the queue is drained before
 * the caller gets its memory back. */
static clt_status phase_a(clt__worker *w, void *arg)
{
    clt_status st = phase_a_body(w, arg);
    if (st != CLT_OK) clFinish(w->queue);
    return st;
}

static clt_status phase_b(clt__worker *w, void *arg)
{
    clt_status st = phase_b_body(w, arg);
    if (st != CLT_OK) clFinish(w->queue);
    return st;
}

static clt_status forward_task(clt__worker *w, void *arg)
{
    rank_job *j = arg;
    clt_status st = j->count ? rank_forward(j, w, 0, 0) : CLT_OK;
    if (st == CLT_OK && j->count) {
        clt__view o = clt__net_output(j->s->nets[j->rank]);
        size_t C = out_numel(j->t);
        cl_int err = clEnqueueReadBuffer(w->queue, o.mem, CL_TRUE, o.off * sizeof(float),
                                         j->count * C * sizeof(float), j->out + j->start * C, 0, NULL, NULL);
        if (err != CL_SUCCESS) st = clt__fail_cl(err, clt__worker_name(w), "reading the outputs");
    }
    if (st != CLT_OK) clFinish(w->queue);
    return st;
}

/* Runs fn on every rank's worker at once; after a failure the group is reset for the next call
 * (clt__run_on reports a rank's own error over the others' CLT_ERR_ABORTED). */
static clt_status run_ranks(clt_trainer *t, data_state *s, clt__task_fn fn, rank_job *jobs)
{
    clt_status st = clt__run_on(t->rt, s->dev, s->n, fn, jobs, sizeof *jobs);
    if (st != CLT_OK && s->comm) clt__comm_reset(s->comm);
    return st;
}

/* ---- the strategy ------------------------------------------------------------------------- */

typedef struct {
    clt_trainer *t;
    data_state *s;
    int rank;
    const clt_model *m;
    size_t max_batch;
    const float *init;
} create_job;

/* One step over `rows` rows of zeros with learning rate 0 on this rank alone, then everything
 * it touched back to zero. It compiles every kernel a step uses (CLBlast picks kernels by size)
 * while no other device runs: PoCL 3.1's CPU driver can abort (pocl_release_dlhandle_cache)
 * when one device compiles a kernel while another runs one. */
static clt_status warm_up(clt__worker *w, clt_trainer *t, data_state *s, int rank, size_t rows)
{
    clt__net *n = s->nets[rank];
    size_t off = (size_t)rank * s->shard;
    clt_status st = clt__net_zero_batch(n, rows);
    if (st == CLT_OK) st = clt__net_forward(n, rows, 1, 0);
    double unused;
    if (st == CLT_OK) st = clt__net_loss(n, t->p.loss, rows, 1.0f, 1, &unused, NULL);
    if (st == CLT_OK)
        st = clt__net_backward(n, rows, (clt__view){n->gbuf[0], 0}, (clt__view){NULL, 0}, 0);
    if (st == CLT_OK) st = clt__zero(w, (clt__view){n->grads, 0}, n->padded);
    if (st == CLT_OK) st = clt__net_sumsq(n, (clt__view){n->grads, off}, s->shard, &unused);
    if (st == CLT_OK) st = clt__net_warm_optimizer(n, &t->p.optim, off, s->shard);
    return st;
}

static clt_status create_rank(clt__worker *w, void *arg)
{
    create_job *j = arg;
    clt__net *n;
    clt_status st = clt__net_create(w, j->m, 0, j->m->nlayers - 1, j->max_batch, (size_t)j->s->n, &n);
    if (st != CLT_OK) return st;
    j->s->nets[j->rank] = n;
    if (n->nparams) {
        cl_int err = clEnqueueWriteBuffer(w->queue, n->params, CL_TRUE, 0, n->nparams * sizeof(float),
                                          j->init, 0, NULL, NULL);
        if (err != CL_SUCCESS) return clt__fail_cl(err, clt__worker_name(w), "uploading the parameters");
    }
    /* the largest share a rank can get, and the equal share */
    size_t share = (j->max_batch + (size_t)j->s->n - 1) / (size_t)j->s->n;
    st = warm_up(w, j->t, j->s, j->rank, j->max_batch);
    if (st == CLT_OK && share != j->max_batch) st = warm_up(w, j->t, j->s, j->rank, share);
    return st;
}

static void data_destroy(clt_trainer *t)
{
    data_state *s = t->state;
    if (!s) return;
    if (s->comm) clt__comm_destroy(s->comm);
    for (int r = 0; r < s->n && s->nets; r++)
        if (s->nets[r]) clt__worker_call(&t->rt->workers[s->dev[r]], clt__net_destroy_task, s->nets[r]);
    free(s->nets), free(s->dev), free(s->weights), free(s->counts);
    free(s->win_time), free(s->win_samples), free(s->last_seconds);
    free(s);
    t->state = NULL;
}

/* The initial parameters are the same host array on every rank: the broadcast from device 0
 * that a replica set starts with, without a round trip through device 0. */
static clt_status data_create(clt_trainer *t, const float *init)
{
    data_state *s = calloc(1, sizeof *s);
    if (!s) return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    t->state = s;
    bool data = t->p.parallel == CLT_PARALLEL_DATA;
    s->n = data ? t->rt->nworkers : 1;
    int n = s->n;
    s->dev = calloc((size_t)n, sizeof *s->dev);
    s->nets = calloc((size_t)n, sizeof *s->nets);
    s->weights = calloc((size_t)n, sizeof *s->weights);
    s->counts = calloc((size_t)n, sizeof *s->counts);
    s->win_time = calloc((size_t)n, sizeof *s->win_time);
    s->win_samples = calloc((size_t)n, sizeof *s->win_samples);
    s->last_seconds = calloc((size_t)n, sizeof *s->last_seconds);
    create_job *jobs = calloc((size_t)n, sizeof *jobs);
    if (!s->dev || !s->nets || !s->weights || !s->counts || !s->win_time || !s->win_samples ||
        !s->last_seconds || !jobs) {
        free(jobs);
        return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    }
    for (int r = 0; r < n; r++) {
        s->dev[r] = data ? r : t->p.device;
        s->weights[r] = (data && t->p.split == CLT_SPLIT_WEIGHTS) ? t->p.split_weights[r] : 1.0;
    }
    s->shard = (t->model->nparams + (size_t)n - 1) / (size_t)n;
    s->copts = clt_collective_options_default();
    clt_status st = CLT_OK;
    for (int r = 0; r < n; r++) jobs[r] = (create_job){t, s, r, t->model, t->p.max_batch, init};
    /* one rank at a time: each allocates its own buffers, and a failure stops the rest */
    for (int r = 0; r < n && st == CLT_OK; r++)
        st = clt__worker_call(&t->rt->workers[s->dev[r]], create_rank, &jobs[r]);
    free(jobs);
    if (st == CLT_OK && n > 1) st = clt__comm_create(&s->comm, t->rt);
    return st;
}

/* With verify_replicas: every rank's parameters must equal rank 0's, bit for bit. */
static clt_status verify(clt_trainer *t, data_state *s)
{
    size_t np = t->model->nparams;
    float *ref = malloc((np ? np : 1) * sizeof *ref), *other = malloc((np ? np : 1) * sizeof *other);
    clt_status st = ref && other ? CLT_OK : clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    for (int r = 0; r < s->n && st == CLT_OK; r++) {
        st = clt__buffer_io(&t->rt->workers[s->dev[r]], s->nets[r]->params, 0, np, r ? other : ref, 0);
        if (st != CLT_OK || r == 0 || !memcmp(ref, other, np * sizeof(float))) continue;
        for (size_t i = 0; i < np; i++)
            if (memcmp(&ref[i], &other[i], sizeof(float))) {
                st = clt__fail(CLT_ERR_STATE, "replica check after step %ld: device %d's parameter "
                               "%zu is %.9g, device %d's is %.9g", t->steps + 1, s->dev[r], i,
                               (double)other[i], s->dev[0], (double)ref[i]);
                break;
            }
    }
    free(ref), free(other);
    return st;
}

static clt_status data_step(clt_trainer *t, const clt__batch *b, int update, float lr, double *loss,
                            size_t *correct)
{
    data_state *s = t->state;
    int n = s->n;
    rank_job stack[16];
    rank_job *jobs = n <= 16 ? stack : calloc((size_t)n, sizeof *jobs);
    if (!jobs) return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    split_batch(s, b->batch, s->counts);
    size_t start = 0;
    for (int r = 0; r < n; r++) {
        jobs[r] = (rank_job){t, s, r, b, start, s->counts[r], update, t->micro == 0, lr, 1.0f, 0, 0, 0, NULL, 0};
        start += s->counts[r];
    }
    clt_status st = run_ranks(t, s, phase_a, jobs);
    double loss_sum = 0, sumsq = 0;
    *correct = 0;
    for (int r = 0; r < n; r++) loss_sum += jobs[r].loss_sum, sumsq += jobs[r].sumsq, *correct += jobs[r].correct;
    *loss = clt__loss_mean(t, loss_sum, b->batch);
    if (st == CLT_OK && t->p.check_numerics && !isfinite(*loss))
        st = clt__grad_scale(t, *loss, 0, &jobs[0].gscale);   /* says which: the loss */
    if (st == CLT_OK && update) {
        float gscale;
        st = clt__grad_scale(t, *loss, sumsq, &gscale);
        for (int r = 0; r < n; r++) jobs[r].gscale = gscale;
        if (st == CLT_OK) st = run_ranks(t, s, phase_b, jobs);
        if (st == CLT_OK && t->p.verify_replicas && n > 1) st = verify(t, s);
    }
    if (st == CLT_OK)
        for (int r = 0; r < n; r++) {
            s->last_seconds[r] = jobs[r].count ? jobs[r].seconds : 0.0;
            if (jobs[r].count) s->win_time[r] += jobs[r].seconds, s->win_samples[r] += (double)jobs[r].count;
        }
    if (st == CLT_OK && update) auto_rebalance(t, s);
    if (jobs != stack) free(jobs);
    return st;
}

static clt_status data_forward(clt_trainer *t, const clt__batch *b, float *out, double *loss_sum)
{
    data_state *s = t->state;
    int n = s->n;
    rank_job stack[16];
    rank_job *jobs = n <= 16 ? stack : calloc((size_t)n, sizeof *jobs);
    if (!jobs) return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    size_t *counts = calloc((size_t)n, sizeof *counts);
    if (!counts) {
        if (jobs != stack) free(jobs);
        return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    }
    split_batch(s, b->batch, counts);
    size_t start = 0;
    for (int r = 0; r < n; r++) {
        jobs[r] = (rank_job){t, s, r, b, start, counts[r], 0, 0, 0, 1.0f, 0, 0, 0, out, 0};
        start += counts[r];
    }
    clt_status st = run_ranks(t, s, forward_task, jobs);
    *loss_sum = 0;
    for (int r = 0; r < n; r++) *loss_sum += jobs[r].loss_sum;
    free(counts);
    if (jobs != stack) free(jobs);
    return st;
}

/* Parameters: read from rank 0, written to every rank. Gradients of the last update: the summed
 * shard r sits on rank r (with one rank, the whole gradient). */
static clt_status data_param_io(clt_trainer *t, size_t off, size_t count, float *host, int write, int grads)
{
    data_state *s = t->state;
    clt_status st = CLT_OK;
    if (!grads) {
        for (int r = 0; r < (write ? s->n : 1) && st == CLT_OK; r++) {
            st = clt__buffer_io(&t->rt->workers[s->dev[r]], s->nets[r]->params, off, count, host, write);
        }
        return st;
    }
    for (size_t done = 0; done < count && st == CLT_OK;) {
        size_t at = off + done;
        int r = s->n == 1 ? 0 : (int)(at / s->shard);
        size_t end = s->n == 1 ? off + count : ((size_t)r + 1) * s->shard;
        size_t take = end - at < count - done ? end - at : count - done;
        st = clt__buffer_io(&t->rt->workers[s->dev[r]], s->nets[r]->grads, at, take, host + done, 0);
        done += take;
    }
    return st;
}

typedef struct {
    data_state *s;
    clt__net *n;
    int which;
    size_t off, count;      /* within this rank's shard */
    float *host;
    int write;
} state_job;

/* On rank r's worker: its shard's slice of a state array, made (zeroed) on a first write. */
static clt_status state_task(clt__worker *w, void *arg)
{
    state_job *j = arg;
    clt__net *n = j->n;
    if (!n->opt[j->which]) {
        if (!j->write) {
            memset(j->host, 0, j->count * sizeof(float));
            return CLT_OK;
        }
        cl_mem buf = NULL;
        clt_status st = clt__alloc(w, j->s->shard, "optimizer state", &buf);
        if (st == CLT_OK) st = clt__zero(w, (clt__view){buf, 0}, j->s->shard);
        if (st != CLT_OK) {
            if (buf) clReleaseMemObject(buf);
            return st;
        }
        n->opt[j->which] = buf;
        n->opt_count = j->s->shard;
    }
    return clt__buffer_io(w, n->opt[j->which], j->off, j->count, j->host, j->write);
}

/* Optimizer state: rank r keeps elements [r * shard, (r + 1) * shard) of each array. */
static clt_status data_state_io(clt_trainer *t, int which, size_t off, size_t count, float *host,
                                int write)
{
    data_state *s = t->state;
    clt_status st = CLT_OK;
    for (size_t done = 0; done < count && st == CLT_OK;) {
        size_t at = off + done;
        int r = (int)(at / s->shard);
        size_t end = ((size_t)r + 1) * s->shard;
        size_t take = end - at < count - done ? end - at : count - done;
        state_job j = {s, s->nets[r], which, at - (size_t)r * s->shard, take, host + done, write};
        st = clt__worker_call(&t->rt->workers[s->dev[r]], state_task, &j);
        done += take;
    }
    return st;
}

static clt_status data_split(const clt_trainer *t, size_t *counts, int n)
{
    const data_state *s = t->state;
    for (int i = 0; i < n; i++) counts[i] = 0;
    for (int r = 0; r < s->n; r++)
        if (s->dev[r] < n) counts[s->dev[r]] = s->counts[r];
    return CLT_OK;
}

static void data_busy(const clt_trainer *t, double *seconds, int n)
{
    const data_state *s = t->state;
    for (int i = 0; i < n; i++) seconds[i] = 0;
    for (int r = 0; r < s->n; r++)
        if (s->dev[r] < n) seconds[s->dev[r]] = s->last_seconds[r];
}

const clt__strategy_ops clt__strategy_data = {
    "data parallel", data_create, data_destroy, data_step, data_forward, data_param_io, data_split,
    data_state_io, data_busy,
};
