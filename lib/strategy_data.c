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
 * between (losses, gradient norm, NaN check) so no rank updates unless all can.
 *
 * The reduce-scatter runs in buckets of whole layers, from the last layer back (the order
 * backward produces gradients): backward is queued whole with a marker after each bucket's
 * lowest layer, and the worker reduce-scatters bucket k on the device's second queue as soon
 * as its marker completes, while the first queue computes the layers before it. A bucket's
 * segment r is its part of shard r, so ownership, the optimizer state and the order every sum
 * is taken in are those of the unbucketed reduce-scatter: any bucket size gives the same bits.
 *
 * Under MPI the ranks are the n devices of each of the P processes: global rank p * n + r takes
 * the rows of the global batch that rank would take in one process with n * P devices (every
 * process passes the same global batch and uploads only its own rows), and owns shard
 * r * P + p, the block the hierarchical reduce-scatter leaves on it. The host's decisions use
 * every process's numbers, gathered and added in the one-process order. Gradients are then
 * reduce-scattered in one bucket, after backward (the hierarchical reduce-scatter is whole). */
#include "internal.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    int n;                  /* ranks in this process */
    int procs, proc;        /* MPI: processes and this one's rank; 1 and 0 without */
    int G;                  /* ranks in all: n * procs */
    clt__mpi *mpi;
    const clt__mpi_ops *mpi_ops;   /* with mpi */
    int *dev;               /* runtime device of rank r */
    clt__net **nets;
    size_t shard;           /* parameters per rank; nets are padded to G * shard */
    clt__comm *comm;        /* NULL with one rank */
    clt_collective_options copts;
    /* the split */
    double *weights;        /* relative speed or given weight per global rank */
    size_t *counts;         /* samples of the last step per global rank */
    double *win_time, *win_samples;   /* CLT_SPLIT_AUTO's measuring window */
    double *last_seconds;             /* compute seconds of the last step per rank */
    int win_steps;
    int measured;           /* auto: windows completed */
    /* gradient buckets, k = 0 first (the last layers) */
    int nbuckets;
    int *bucket_layer;      /* bucket k's lowest layer with parameters: after its backward the
                             * bucket's gradients are complete */
    size_t *bucket_bounds;  /* (n + 1) per bucket: rank r's segment of bucket k is
                             * [bounds[r], bounds[r + 1]), the bucket's part of shard r */
    int overlapped;         /* buckets of the last update whose reduce-scatter began while
                             * backward was still running on some rank (the most of any rank) */
    int used_buckets;       /* buckets of the last update */
    int unoverlapped_updates;   /* bucketed updates in a row where no bucket overlapped */
    /* elastic: a host copy of the optimizer state of the last good update (nparams floats per
     * array), what a dropped device's shard is rebuilt from; each rank reads its own shard into
     * `pending` after its update, and a step that succeeds everywhere makes it the copy */
    float *hstate[2], *pending[2];
    int nstate;
    bool hstale;            /* the devices' state was written: read it again before a step */
    /* the shares (rows) each local rank has run a warm-up step at: a step runs only those */
    size_t **warm;
    size_t *nwarm;
} data_state;

/* After this many bucketed updates without any overlap, one bucket: the device runs its
 * commands only when the host waits for them (PoCL's 'basic' driver runs them on the waiting
 * thread) or backward is too short to hide anything, and every bucket costs a barrier. */
#define NO_OVERLAP_UPDATES 4

/* ---- the split ------------------------------------------------------------------------------ */

/* counts[r] = batch * w_r / sum(w), rounded so they add up to batch: in whole granules of
 * `granule` rows, floors first, then the largest remainders (ties to the lower rank); the rows
 * short of a granule (batch % granule) go to the largest remainder left. Deterministic for
 * given weights; with granule 1, the nearest split. */
static void split_rows(const data_state *s, size_t batch, size_t granule, size_t *counts)
{
    double sum = 0;
    for (int r = 0; r < s->G; r++) sum += s->weights[r];
    size_t given = 0, units = batch / granule;
    double *rem = malloc((size_t)s->G * sizeof *rem);
    for (int r = 0; r < s->G; r++) {
        double share = sum > 0 ? (double)batch * s->weights[r] / sum : (double)batch / s->G;
        counts[r] = (size_t)floor(share / (double)granule);
        if (rem) rem[r] = share - (double)(counts[r] * granule);
        given += counts[r];
    }
    while (given < units) {
        int best = 0;
        for (int r = 1; r < s->G; r++)
            if (rem && rem[r] > rem[best]) best = r;
        counts[best]++;
        if (rem) rem[best] = granule > 1 ? rem[best] - (double)granule : -1;
        given++;
    }
    for (int r = 0; r < s->G; r++) counts[r] *= granule;
    if (batch % granule) {
        int best = 0;
        for (int r = 1; r < s->G; r++)
            if (rem && rem[r] > rem[best]) best = r;
        counts[best] += batch % granule;
    }
    free(rem);
}

/* CLT_SPLIT_AUTO's granule: a measured split moves in steps of it, so that one wavering
 * between two speeds gives a few shares (each warmed up once, warm_shares) rather than a new
 * one every re-measurement, and shares of 16 rows fill cltrain's GEMM block (no padding, the
 * fused bias and ReLU). At most batch / 32: a share is then within batch / 64 of its speed's. */
static size_t split_granule(const clt_trainer *t, const data_state *s, size_t batch)
{
    if (t->p.split != CLT_SPLIT_AUTO || s->n == 1) return 1;
    size_t g = 16;
    while (g > 1 && g * 32 > batch) g /= 2;
    return g;
}

static void split_batch(const clt_trainer *t, const data_state *s, size_t batch, size_t *counts)
{
    split_rows(s, batch, split_granule(t, s, batch), counts);
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

/* The global rank of local rank r (its rows of the batch), and where its shard starts. */
static int global_rank(const data_state *s, int r) { return s->proc * s->n + r; }

static size_t shard_off(const data_state *s, int r)
{
    return ((size_t)r * (size_t)s->procs + (size_t)s->proc) * s->shard;
}

/* Shard k of the flat numbering: whether it lives in this process, and on which local rank. */
static bool shard_here(const data_state *s, size_t k, int *local)
{
    *local = (int)(k / (size_t)s->procs);
    return (int)(k % (size_t)s->procs) == s->proc;
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
    int overlapped;         /* buckets reduce-scattered before this rank's backward ended */
    clt_status st;          /* this rank's own result (set on failure) */
    unsigned long late;     /* what the worker's program cache made in this phase (none) */
} rank_job;

static size_t out_numel(const clt_trainer *t) { return t->model->layers[t->model->nlayers - 1].out_numel; }

/* Uploads this rank's rows and runs forward (and the loss when labels or targets are given). */
static clt_status rank_forward(rank_job *j, clt__worker *w, int training, int want_grad)
{
    clt_trainer *t = j->t;
    clt__net *n = j->s->nets[j->rank];
    const clt__batch *b = j->b;
    clt_status st = clt__net_upload_rows(n, b, j->start, j->count);
    n->row0 = j->start;
    if (st == CLT_OK) st = clt__fault_point(w, CLT__FAULT_FORWARD, 1, "the forward");
    if (st == CLT_OK) st = clt__net_forward(n, j->count, training, clt__step_seed(t));
    if (st == CLT_OK && (b->labels || b->targets))
        st = clt__net_loss(n, t->p.loss, j->count, clt__loss_grad_scale(t, b->batch), want_grad,
                           &j->loss_sum, &j->correct);
    return st;
}

/* Backward's hook: a marker after each bucket's lowest layer, flushed so the device starts. */
typedef struct {
    const data_state *s;
    clt__worker *w;
    cl_event *ev;
    int next;               /* the next bucket to mark */
} mark_ctx;

static clt_status mark_bucket(void *user, int layer)
{
    mark_ctx *m = user;
    if (m->next >= m->s->nbuckets || layer != m->s->bucket_layer[m->next]) return CLT_OK;
    cl_int err = clEnqueueMarkerWithWaitList(m->w->queue, 0, NULL, &m->ev[m->next]);
    if (err == CL_SUCCESS) err = clFlush(m->w->queue);
    if (err != CL_SUCCESS) return clt__fail_cl(err, clt__worker_name(m->w), "marking a gradient bucket");
    m->next++;
    return CLT_OK;
}

/* When backward ended on the device, from the last bucket's marker (its callback runs on a
 * driver thread, maybe after clWaitForEvents returned). */
typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t cv;
    double at;              /* clt__now() at completion; 0 until then */
} done_time;

static void CL_CALLBACK backward_done(cl_event ev, cl_int status, void *user)
{
    (void)ev, (void)status;
    done_time *d = user;
    pthread_mutex_lock(&d->lock);
    d->at = clt__now();
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->lock);
}

/* After the event completed: the time the callback saw, waiting for it up to 10 s. Frees d,
 * unless the callback has not come by then (it may still write to d: leaked, with a warning). */
static double done_wait(done_time *d)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    pthread_mutex_lock(&d->lock);
    int rc = 0;
    while (d->at == 0 && rc != ETIMEDOUT) rc = pthread_cond_timedwait(&d->cv, &d->lock, &until);
    double at = d->at;
    pthread_mutex_unlock(&d->lock);
    if (at == 0) {
        clt__log(CLT_LOG_WARN, "data parallel: the OpenCL driver did not call an event callback of "
                               "a completed event within 10 s");
        return clt__now();
    }
    pthread_mutex_destroy(&d->lock);
    pthread_cond_destroy(&d->cv);
    free(d);
    return at;
}

/* Backward queued whole, each bucket reduce-scattered on the second queue once its marker
 * completes. Sets j->seconds to the compute time (to the end of backward on the device). */
static clt_status backward_buckets(clt__worker *w, rank_job *j, double t0)
{
    data_state *s = j->s;
    clt__net *n = s->nets[j->rank];
    int nb = s->nbuckets;
    cl_event stack[16];
    cl_event *ev = nb <= 16 ? stack : calloc((size_t)nb, sizeof *ev);
    if (!ev) return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    memset(ev, 0, (size_t)nb * sizeof *ev);
    done_time *done = NULL;
    cl_command_queue side;
    clt_status st = clt__worker_side_queue(w, &side);
    if (st == CLT_OK && j->count) {
        mark_ctx m = {s, w, ev, 0};
        st = clt__net_backward_hook(n, 0, j->count, (clt__view){n->gbuf[0], 0}, (clt__view){NULL, 0},
                                    clt__step_seed(j->t), mark_bucket, &m);
        done = st == CLT_OK && ev[nb - 1] ? calloc(1, sizeof *done) : NULL;
        if (done) {
            pthread_mutex_init(&done->lock, NULL);
            pthread_cond_init(&done->cv, NULL);
            if (clSetEventCallback(ev[nb - 1], CL_COMPLETE, backward_done, done) != CL_SUCCESS) {
                pthread_mutex_destroy(&done->lock);
                pthread_cond_destroy(&done->cv);
                free(done);
                done = NULL;
            }
        }
    }
    double t_end = t0;
    /* Queue order: bucket k's reduce-scatter runs on the side queue only once everything the
     * main queue holds before it has completed: its marker, behind the backward of the bucket's
     * layers, or where there is none (a rank without rows has no backward and no markers, only
     * the zero fill of its gradients) the whole main queue. Nothing else orders the two queues,
     * and implementations that run a device's queues concurrently (GPUs, rusticl) would read
     * gradients not yet written. The main queue's later layers write other buckets. */
    w->comm_queue = side;
    for (int k = 0; k < nb && st == CLT_OK; k++) {
        cl_int err = ev[k] ? clWaitForEvents(1, &ev[k]) : clFinish(w->queue);
        if (err != CL_SUCCESS) {
            st = clt__fail_cl(err, clt__worker_name(w), "backward");
            break;
        }
        if (k == nb - 1 && j->count) {   /* backward has ended */
            t_end = done ? done_wait(done) : clt__now();
            done = NULL;
            clt__worker_throttle(w, t_end - t0);
            t_end = clt__now();   /* the slowdown counts, as in the one-bucket path */
            clt__worker_span(w, "forward + backward", t0, t_end);
        } else if (ev[nb - 1]) {
            cl_int status = CL_COMPLETE;
            clGetEventInfo(ev[nb - 1], CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof status, &status, NULL);
            if (status != CL_COMPLETE) j->overlapped++;
        }
        double t1 = clt__now();
        st = clt__comm_reduce_scatter_v(s->comm, w, n->grads, 0,
                                        s->bucket_bounds + (size_t)k * (size_t)(s->n + 1), CLT_OP_SUM,
                                        &s->copts);
        clt__worker_span(w, "reduce-scatter gradient bucket", t1, clt__now());
    }
    w->comm_queue = NULL;
    if (st != CLT_OK) clFinish(side);
    cl_int err = clFinish(w->queue);
    if (err != CL_SUCCESS && st == CLT_OK) st = clt__fail_cl(err, clt__worker_name(w), "finishing backward");
    if (done) done_wait(done);   /* a failure before the end: the callback must be done with it */
    for (int k = 0; k < nb; k++)
        if (ev[k]) clReleaseEvent(ev[k]);
    if (ev != stack) free(ev);
    j->seconds = clt__worker_seconds(w, t_end - t0, j->count);
    return st;
}

/* Phase A: forward and backward of this rank's rows (gradients accumulate); with an update
 * coming, the reduce-scatter of the gradients (in buckets, overlapping backward) and the sum of
 * squares of this rank's shard. */
static clt_status phase_a_body(clt__worker *w, rank_job *j)
{
    clt_trainer *t = j->t;
    data_state *s = j->s;
    clt__net *n = s->nets[j->rank];
    clt_status st = CLT_OK;
    double t0 = clt__now();
    /* The first backward of an update writes the gradients rather than adding to them (no
     * zeroing pass over the whole buffer: a fixed cost of every replica); a rank without rows
     * this step runs no backward, so its gradients are zeroed. */
    n->grads_fresh = j->first_micro && j->count;
    if (j->first_micro && !j->count) st = clt__zero(w, (clt__view){n->grads, 0}, n->padded);
    if (st == CLT_OK && j->count) st = rank_forward(j, w, 1, 1);
    if (st == CLT_OK && j->count) st = clt__fault_point(w, CLT__FAULT_BACKWARD, 1, "the backward");
    if (st != CLT_OK) return st;
    size_t off = shard_off(s, j->rank);
    if (j->update && s->comm && s->nbuckets > 1) {
        st = backward_buckets(w, j, t0);
    } else {
        if (j->count)
            st = clt__net_backward(n, j->count, (clt__view){n->gbuf[0], 0}, (clt__view){NULL, 0},
                                   clt__step_seed(t));
        if (st == CLT_OK) {
            cl_int err = clFinish(w->queue);
            if (err != CL_SUCCESS) st = clt__fail_cl(err, clt__worker_name(w), "finishing backward");
        }
        if (j->count) clt__worker_throttle(w, clt__now() - t0);
        double t_end = clt__now();
        j->seconds = clt__worker_seconds(w, t_end - t0, j->count);
        clt__worker_span(w, "forward + backward", t0, t_end);
        if (st == CLT_OK && j->update && s->comm) {   /* one bucket, on the one queue */
            /* In place: this rank's summed shard lands where its own shard of the gradients was
             * (hierarchically across the processes under MPI). */
            double t1 = clt__now();
            st = clt__comm_reduce_scatter(s->comm, w, n->grads, 0, n->grads, off, s->shard, CLT_OP_SUM,
                                          &s->copts);
            clt__worker_span(w, "reduce-scatter gradients", t1, clt__now());
        }
    }
    if (st != CLT_OK || !j->update) return st;
    double t2 = clt__now();
    if (t->p.clip_norm > 0.0f || t->p.check_numerics)
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
    size_t off = shard_off(s, j->rank);
    double t0 = clt__now();
    clt_status st = clt__net_update_begin(n);   /* into params_next: all or nothing */
    if (st == CLT_OK) st = clt__fault_point(w, CLT__FAULT_OPTIMIZER, 1, "the optimizer");
    if (st == CLT_OK)
        st = clt__net_optimizer_step(n, &t->p.optim, t->p.decay, j->lr, t->steps + 1, j->gscale, off, s->shard,
                                     (clt__view){n->grads, off});
    if (st == CLT_OK) {
        cl_int err = clFinish(w->queue);
        if (err != CL_SUCCESS) st = clt__fail_cl(err, clt__worker_name(w), "finishing the update");
    }
    /* elastic: this rank's shard of the new state, to the host */
    size_t np = t->model->nparams, mine = off < np ? (np - off < s->shard ? np - off : s->shard) : 0;
    for (int i = 0; i < s->nstate && st == CLT_OK && mine; i++)
        st = clt__buffer_io(w, clt__net_new_state(n, i), 0, mine, s->pending[i] + off, 0);
    double t1 = clt__now();
    clt__worker_span(w, "optimizer (own shard)", t0, t1);
    if (st == CLT_OK && s->comm)
        st = clt__comm_all_gather(s->comm, w, n->params_next, off, n->params_next, 0, s->shard, &s->copts);
    if (s->comm) clt__worker_span(w, "all-gather parameters", t1, clt__now());
    if (st == CLT_OK) {
        cl_int err = clFinish(w->queue);
        if (err != CL_SUCCESS) st = clt__fail_cl(err, clt__worker_name(w), "finishing the update");
        clt__worker_collect(w);
    }
    return st;
}

/* A rank failing outside a collective aborts the group, so no other waits for it there until
 * the timeout; uploads read the caller's arrays asynchronously: on every exit the queue is
 * drained before the caller gets its memory back. */
static clt_status failed(clt__worker *w, rank_job *j, clt_status st)
{
    j->st = st;
    if (st != CLT_ERR_ABORTED && j->s->comm) clt__comm_abort(j->s->comm, w->index, st, clt_last_error());
    clFinish(w->queue);
    return st;
}

/* A phase on one rank, counting what the worker's program cache made meanwhile (j->late). */
static clt_status run_phase(clt__worker *w, rank_job *j, clt_status (*body)(clt__worker *, rank_job *))
{
    clt__program_counts before = clt__program_made(w);
    clt_status st = body(w, j);
    j->late = clt__program_made_since(w, before);
    return st == CLT_OK ? st : failed(w, j, st);
}

static clt_status phase_a(clt__worker *w, void *arg) { return run_phase(w, arg, phase_a_body); }

static clt_status phase_b(clt__worker *w, void *arg) { return run_phase(w, arg, phase_b_body); }

static clt_status forward_body(clt__worker *w, rank_job *j)
{
    clt_status st = j->count ? rank_forward(j, w, 0, 0) : CLT_OK;
    if (st == CLT_OK && j->count) {
        clt__view o = clt__net_output(j->s->nets[j->rank]);
        size_t C = out_numel(j->t);
        cl_int err = clEnqueueReadBuffer(w->queue, o.mem, CL_TRUE, o.off * sizeof(float),
                                         j->count * C * sizeof(float), j->out + j->start * C, 0, NULL, NULL);
        if (err != CL_SUCCESS) st = clt__fail_cl(err, clt__worker_name(w), "reading the outputs");
    }
    return st;
}

static clt_status forward_task(clt__worker *w, void *arg) { return run_phase(w, arg, forward_body); }

/* After a phase on several devices: what their caches made during it. Nothing, unless a
 * warm-up missed a kernel the phase ran at its size. */
static void count_late(clt_trainer *t, const data_state *s, const rank_job *jobs)
{
    for (int r = 0; r < s->n && s->n > 1; r++)
        if (jobs[r].late) {
            t->late_kernels += jobs[r].late;
            clt__log(CLT_LOG_WARN, "data parallel: device %d built or first launched %lu kernel "
                     "shape(s) at %zu rows while %d devices ran: its warm-up missed them (PoCL 3.1 "
                     "can abort then)", s->dev[r], jobs[r].late, jobs[r].count, s->n);
        }
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

/* Forward, loss and backward over `rows` rows of zeros: every kernel a step of that share
 * runs, at the sizes it runs them. */
static clt_status warm_rows(clt_trainer *t, clt__net *n, size_t rows)
{
    clt_status st = clt__net_zero_batch(n, rows);
    if (st == CLT_OK) st = clt__net_forward(n, rows, 1, 0);
    double unused;
    if (st == CLT_OK) st = clt__net_loss(n, t->p.loss, rows, 1.0f, 1, &unused, NULL);
    if (st == CLT_OK)
        st = clt__net_backward(n, rows, (clt__view){n->gbuf[0], 0}, (clt__view){NULL, 0}, 0);
    return st;
}

static bool is_warm(const data_state *s, int rank, size_t rows)
{
    for (size_t i = 0; i < s->nwarm[rank]; i++)
        if (s->warm[rank][i] == rows) return true;
    return false;
}

static clt_status note_warm(data_state *s, int rank, size_t rows)
{
    if (is_warm(s, rank, rows)) return CLT_OK;
    size_t *g = realloc(s->warm[rank], (s->nwarm[rank] + 1) * sizeof *g);
    if (!g) return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    s->warm[rank] = g;
    g[s->nwarm[rank]++] = rows;
    return CLT_OK;
}

/* One step over `rows` rows of zeros with learning rate 0 on this rank alone, then everything
 * it touched back to zero. It compiles every kernel a step uses (CLBlast picks kernels by size)
 * while no other device runs: PoCL 3.1's CPU driver can abort (pocl_release_dlhandle_cache)
 * when one device compiles a kernel, or first runs one with a wider grid, while another runs
 * it (clt__program_made). */
static clt_status warm_up(clt__worker *w, clt_trainer *t, data_state *s, int rank, size_t rows)
{
    clt__net *n = s->nets[rank];
    size_t off = shard_off(s, rank);
    clt_status st = warm_rows(t, n, rows);
    if (st == CLT_OK) st = clt__zero(w, (clt__view){n->grads, 0}, n->padded);
    double unused;
    if (st == CLT_OK) st = clt__net_sumsq(n, (clt__view){n->grads, off}, s->shard, &unused);
    if (st == CLT_OK) st = clt__net_warm_optimizer(n, &t->p.optim, off, s->shard);
    if (st == CLT_OK) st = note_warm(s, rank, rows);
    return st;
}

typedef struct {
    clt_trainer *t;
    data_state *s;
    int rank;
    size_t rows;
    bool keep_grads;
} warm_job;

/* A share this rank has not run before, warmed up between steps while the other devices are
 * idle (the optimizer's kernels and sizes do not depend on the share: warmed at create). With
 * keep_grads the gradients are put back after: they are still to be used (accumulation, or
 * the last update's, which a forward-only call must not change). */
static clt_status warm_share(clt__worker *w, void *arg)
{
    warm_job *j = arg;
    clt__net *n = j->s->nets[j->rank];
    cl_mem keep = NULL;
    clt_status st = CLT_OK;
    if (j->keep_grads) {
        st = clt__alloc(w, n->padded, "a copy of the gradients (warming up a new share)", &keep);
        if (st == CLT_OK) st = clt__copy(w, (clt__view){n->grads, 0}, (clt__view){keep, 0}, n->padded);
    }
    if (st == CLT_OK) st = warm_rows(j->t, n, j->rows);
    if (st == CLT_OK && keep) st = clt__copy(w, (clt__view){keep, 0}, (clt__view){n->grads, 0}, n->padded);
    cl_int err = clFinish(w->queue);
    if (err != CL_SUCCESS && st == CLT_OK) st = clt__fail_cl(err, clt__worker_name(w), "warming up a new share");
    if (keep) clReleaseMemObject(keep);
    if (st == CLT_OK) st = note_warm(j->s, j->rank, j->rows);
    return st;
}

/* Every local rank's share of `counts` that it has not run yet, warmed up before the step,
 * one rank at a time; *failed names the rank that failed. With one device nothing runs beside
 * it: its first step at a size warms itself up. */
static clt_status warm_shares(clt_trainer *t, data_state *s, const size_t *counts, bool keep_grads,
                              int *failed)
{
    for (int r = 0; r < s->n && s->n > 1; r++) {
        size_t rows = counts[global_rank(s, r)];
        if (!rows || is_warm(s, r, rows)) continue;
        clt__log(CLT_LOG_INFO, "data parallel: device %d warms up for a share of %zu rows", s->dev[r], rows);
        warm_job j = {t, s, r, rows, keep_grads};
        clt_status st = clt__worker_call(&t->rt->workers[s->dev[r]], warm_share, &j);
        if (st != CLT_OK) {
            *failed = r;
            return st;
        }
    }
    return CLT_OK;
}

static clt_status create_rank(clt__worker *w, void *arg)
{
    create_job *j = arg;
    clt__net *n;
    clt_status st = clt__net_create(w, j->m, 0, j->m->nlayers - 1, j->max_batch, (size_t)j->s->G, &n);
    if (st != CLT_OK) return st;
    j->s->nets[j->rank] = n;
    if (n->nparams) {
        cl_int err = clEnqueueWriteBuffer(w->queue, n->params, CL_TRUE, 0, n->nparams * sizeof(float),
                                          j->init, 0, NULL, NULL);
        if (err != CL_SUCCESS) return clt__fail_cl(err, clt__worker_name(w), "uploading the parameters");
    }
    /* the largest share a rank can get, the equal share, and this rank's share of max_batch
     * under the split's weights (user-given ones stay: a 3:1 split of 16 runs 12 and 4 rows) */
    size_t share = (j->max_batch + (size_t)j->s->G - 1) / (size_t)j->s->G, mine = share;
    size_t *counts = calloc((size_t)j->s->G, sizeof *counts);
    if (counts) {
        split_batch(j->t, j->s, j->max_batch, counts);
        mine = counts[global_rank(j->s, j->rank)];
        free(counts);
    }
    st = warm_up(w, j->t, j->s, j->rank, j->max_batch);
    if (st == CLT_OK && share != j->max_batch) st = warm_up(w, j->t, j->s, j->rank, share);
    if (st == CLT_OK && mine && mine != share && mine != j->max_batch)
        st = warm_up(w, j->t, j->s, j->rank, mine);
    return st;
}

/* The group and every replica (their devices' buffers); the host side stays. */
static void destroy_ranks(clt_trainer *t, data_state *s)
{
    if (s->comm) clt__comm_destroy(s->comm);
    s->comm = NULL;
    for (int r = 0; r < s->n && s->nets; r++)
        if (s->nets[r]) clt__worker_call(&t->rt->workers[s->dev[r]], clt__net_destroy_task, s->nets[r]);
    for (int r = 0; r < s->n && s->nets; r++) s->nets[r] = NULL;
    for (int r = 0; r < s->n && s->warm; r++) {   /* new replicas warm up again */
        free(s->warm[r]);
        s->warm[r] = NULL;
        s->nwarm[r] = 0;
    }
}

static void data_destroy(clt_trainer *t)
{
    data_state *s = t->state;
    if (!s) return;
    destroy_ranks(t, s);
    for (int i = 0; i < 2; i++) free(s->hstate[i]), free(s->pending[i]);
    free(s->nets), free(s->dev), free(s->weights), free(s->counts);
    free(s->win_time), free(s->win_samples), free(s->last_seconds);
    free(s->bucket_layer), free(s->bucket_bounds);
    free(s->warm), free(s->nwarm);
    free(s);
    t->state = NULL;
}

/* Buckets of whole layers from the last layer back, each at least bucket_bytes (the first
 * layers' may be smaller); bucket k spans flat [lo_k, hi_k) with hi_0 the padded end and the
 * last bucket starting at 0, so the buckets cover every shard. */
static clt_status make_buckets(clt_trainer *t, data_state *s, size_t bucket_bytes)
{
    const clt_model *m = t->model;
    size_t per = bucket_bytes / sizeof(float), in = 0;
    int n = s->n, nb = 0, *lowest = calloc((size_t)m->nlayers + 1, sizeof *lowest);
    size_t *bounds = calloc((size_t)(m->nlayers + 1) * (size_t)(n + 1), sizeof *bounds);
    if (!lowest || !bounds) {
        free(lowest), free(bounds);
        return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    }
    int last_with = -1;
    for (int i = m->nlayers - 1; i >= 0; i--) {
        size_t np = m->layers[i].w_count + m->layers[i].b_count;
        if (!np) continue;
        in += np;
        last_with = i;
        if (per && in >= per) lowest[nb++] = i, in = 0;
    }
    if (in) lowest[nb++] = last_with;   /* the rest, down to the first layer with parameters */
    size_t hi = (size_t)n * s->shard;
    for (int k = 0; k < nb; k++) {
        size_t lo = k == nb - 1 ? 0 : m->layers[lowest[k]].param_off;
        size_t *b = bounds + (size_t)k * (size_t)(n + 1);
        for (int r = 0; r <= n; r++) {
            size_t at = (size_t)r * s->shard;
            b[r] = at < lo ? lo : at > hi ? hi : at;
        }
        hi = lo;
    }
    free(s->bucket_layer), free(s->bucket_bounds);
    s->nbuckets = nb;
    s->bucket_layer = lowest;
    s->bucket_bounds = bounds;
    if (n > 1 && clt__log_enabled(CLT_LOG_INFO))
        clt__log(CLT_LOG_INFO, "data parallel: %d gradient bucket%s of at least %zu bytes", nb,
                 nb == 1 ? "" : "s", bucket_bytes);
    return CLT_OK;
}

/* The replicas on s->dev[0..n), one rank at a time (each allocates its own buffers, and a
 * failure stops the rest), from the host parameters `init`, and their group. */
static clt_status build_ranks(clt_trainer *t, data_state *s, const float *init)
{
    int n = s->n;
    create_job *jobs = calloc((size_t)n, sizeof *jobs);
    if (!jobs) return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    s->G = n * s->procs;
    s->shard = (t->model->nparams + (size_t)s->G - 1) / (size_t)s->G;
    clt_status st = CLT_OK;
    for (int r = 0; r < n; r++) jobs[r] = (create_job){t, s, r, t->model, t->p.max_batch, init};
    for (int r = 0; r < n && st == CLT_OK; r++)
        st = clt__worker_call(&t->rt->workers[s->dev[r]], create_rank, &jobs[r]);
    free(jobs);
    /* under MPI the runtime's whole group, which the MPI layer joins across the processes */
    if (st == CLT_OK && s->G > 1)
        st = s->mpi ? clt__comm_create(&s->comm, t->rt) : clt__comm_create_group(&s->comm, t->rt, s->dev, n);
    s->unoverlapped_updates = 0;
    if (st == CLT_OK) st = make_buckets(t, s, s->mpi ? 0 : t->p.bucket_bytes);
    return st;
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
    s->mpi = t->rt->mpi;   /* the facade allows only CLT_PARALLEL_DATA under MPI */
    s->mpi_ops = t->rt->mpi_ops;
    s->procs = clt_runtime_process_count(t->rt);
    s->proc = clt_runtime_process_rank(t->rt);
    s->G = s->n * s->procs;
    int n = s->n;
    s->dev = calloc((size_t)n, sizeof *s->dev);
    s->nets = calloc((size_t)n, sizeof *s->nets);
    s->weights = calloc((size_t)s->G, sizeof *s->weights);
    s->counts = calloc((size_t)s->G, sizeof *s->counts);
    s->win_time = calloc((size_t)n, sizeof *s->win_time);
    s->win_samples = calloc((size_t)n, sizeof *s->win_samples);
    s->last_seconds = calloc((size_t)n, sizeof *s->last_seconds);
    s->warm = calloc((size_t)n, sizeof *s->warm);
    s->nwarm = calloc((size_t)n, sizeof *s->nwarm);
    size_t np = t->model->nparams ? t->model->nparams : 1;
    s->nstate = t->p.elastic && n > 1 ? clt__optim_state_arrays(&t->p.optim) : 0;
    s->hstale = true;
    bool host_ok = true;
    for (int i = 0; i < s->nstate; i++)
        host_ok &= (s->hstate[i] = calloc(np, sizeof(float))) && (s->pending[i] = calloc(np, sizeof(float)));
    if (!s->dev || !s->nets || !s->weights || !s->counts || !s->win_time || !s->win_samples ||
        !s->last_seconds || !s->warm || !s->nwarm || !host_ok)
        return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    for (int r = 0; r < n; r++) s->dev[r] = data ? r : t->p.device;
    for (int g = 0; g < s->G; g++)   /* weights only without MPI: then G == n */
        s->weights[g] = (data && t->p.split == CLT_SPLIT_WEIGHTS) ? t->p.split_weights[g] : 1.0;
    s->copts = clt_collective_options_default();
    return build_ranks(t, s, init);
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

static clt_status data_state_io(clt_trainer *t, int which, size_t off, size_t count, float *host,
                                int write);

/* The statuses a lost device gives: what elastic mode drops a device for. */
static bool device_lost(clt_status st)
{
    return st == CLT_ERR_DEVICE_NOT_AVAILABLE || st == CLT_ERR_OUT_OF_RESOURCES;
}

/* Elastic: rank f's device is gone. The replicas start again on the others, from the last good
 * state: the parameters of a surviving rank (after a failed update, undone) and the host copy of
 * the optimizer state; the batch then splits between n - 1 ranks, the update into n - 1 shards. */
static clt_status drop_rank(clt_trainer *t, data_state *s, int f)
{
    size_t np = t->model->nparams;
    int keep = f == 0 ? 1 : 0, dev = s->dev[f];
    int *dropped = realloc(t->dropped, (size_t)(t->ndropped + 1) * sizeof *dropped);
    if (dropped) t->dropped = dropped;
    float *params = malloc((np ? np : 1) * sizeof *params);
    if (!params || !dropped) {
        free(params);
        return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    }
    clt_status st = clt__buffer_io(&t->rt->workers[s->dev[keep]], s->nets[keep]->params, 0, np, params, 0);
    if (st == CLT_OK) {
        destroy_ranks(t, s);
        for (int r = f; r + 1 < s->n; r++) s->dev[r] = s->dev[r + 1], s->weights[r] = s->weights[r + 1];
        s->n--;
        memset(s->counts, 0, (size_t)(s->n + 1) * sizeof *s->counts);
        memset(s->last_seconds, 0, (size_t)(s->n + 1) * sizeof *s->last_seconds);
        memset(s->win_time, 0, (size_t)s->n * sizeof *s->win_time);
        memset(s->win_samples, 0, (size_t)s->n * sizeof *s->win_samples);
        s->win_steps = s->measured = 0;
        t->dropped[t->ndropped++] = dev;
        st = build_ranks(t, s, params);
    }
    for (int i = 0; i < s->nstate && st == CLT_OK; i++) st = data_state_io(t, i, 0, np, s->hstate[i], 1);
    s->hstale = false;   /* what was just written is the copy */
    if (s->n == 1) s->nstate = 0;
    free(params);
    if (st == CLT_OK)
        clt__log(CLT_LOG_WARN, "elastic: device %d dropped at step %ld; training goes on with %d device%s",
                 dev, t->steps + 1, s->n, s->n == 1 ? "" : "s");
    return st;
}

/* The first row of this process's share of the batch (global ranks before its first). */
static size_t first_row(const data_state *s, const size_t *counts)
{
    size_t start = 0;
    for (int g = 0; g < global_rank(s, 0); g++) start += counts[g];
    return start;
}

/* Every rank's k numbers (vals: this process's n * k) into all (G * k, global rank order),
 * gathered from every process under MPI together with whether each failed: a process that
 * failed makes the others fail too, naming it. Returns st, or the gathering's failure. */
static clt_status gather_ranks(const data_state *s, const double *vals, int k, clt_status st,
                               double *all)
{
    size_t nk = (size_t)s->n * (size_t)k;
    if (!s->mpi) {
        memcpy(all, vals, nk * sizeof *all);
        return st;
    }
    double *mine = malloc((nk + 1) * sizeof *mine);
    double *got = malloc((size_t)s->procs * (nk + 1) * sizeof *got);
    clt_status gst = mine && got ? CLT_OK : clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    if (gst == CLT_OK) {
        memcpy(mine, vals, nk * sizeof *mine);
        mine[nk] = st != CLT_OK;
        gst = s->mpi_ops->gather_doubles(s->mpi, mine, (int)(nk + 1), got);
    }
    for (int q = 0; q < s->procs && gst == CLT_OK; q++) {
        memcpy(all + (size_t)q * nk, got + (size_t)q * (nk + 1), nk * sizeof *all);
        if (got[(size_t)q * (nk + 1) + nk] != 0 && q != s->proc && st == CLT_OK)
            st = clt__fail(CLT_ERR_ABORTED, "MPI process %d failed in this step (its own error "
                           "says why); this one, %d, stops too", q, s->proc);
    }
    free(mine), free(got);
    return st != CLT_OK ? st : gst;
}

/* Sum over the processes of count floats of host, where each process filled in the parts it
 * holds and zeros elsewhere (x + 0 is x: the parts arrive unchanged). */
static clt_status sum_parts(const data_state *s, float *host, size_t count, clt_status st)
{
    if (!s->mpi || st != CLT_OK) return st;
    return s->mpi_ops->sum_floats(s->mpi, host, count);
}

static clt_status data_step(clt_trainer *t, const clt__batch *b, int update, float lr, double *loss,
                            size_t *correct)
{
    data_state *s = t->state;
    int n = s->n;
    size_t np = t->model->nparams;
    clt_status st = CLT_OK;
    for (int i = 0; i < s->nstate && s->hstale && st == CLT_OK; i++)
        st = data_state_io(t, i, 0, np, s->hstate[i], 0);
    if (st != CLT_OK) return st;
    s->hstale = false;
    rank_job stack[16];
    rank_job *jobs = n <= 16 ? stack : calloc((size_t)n, sizeof *jobs);
    double *vals = malloc((size_t)n * 3 * sizeof *vals), *all = malloc((size_t)s->G * 3 * sizeof *all);
    if (!jobs || !vals || !all) {
        if (jobs != stack) free(jobs);
        free(vals), free(all);
        return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    }
    split_batch(t, s, b->batch, s->counts);
    size_t start = first_row(s, s->counts);
    for (int r = 0; r < n; r++) {
        size_t count = s->counts[global_rank(s, r)];
        jobs[r] = (rank_job){t, s, r, b, start, count, update, t->micro == 0, lr, 1.0f, 0, 0, 0, NULL, 0, 0, CLT_OK, 0};
        start += count;
    }
    int wfail = -1;
    st = warm_shares(t, s, s->counts, t->micro != 0, &wfail);
    if (st == CLT_OK) st = run_ranks(t, s, phase_a, jobs);
    else jobs[wfail].st = st;
    count_late(t, s, jobs);
    for (int r = 0; r < n; r++)
        vals[3 * r] = jobs[r].loss_sum, vals[3 * r + 1] = jobs[r].sumsq, vals[3 * r + 2] = (double)jobs[r].correct;
    st = gather_ranks(s, vals, 3, st, all);
    /* Losses in row order, squares in shard order (shard k: local rank k / P of process k % P),
     * as one process with every device adds them. */
    double loss_sum = 0, sumsq = 0;
    *correct = 0;
    for (int g = 0; g < s->G; g++) loss_sum += all[3 * g], *correct += (size_t)all[3 * g + 2];
    for (int k = 0; k < s->G; k++) sumsq += all[3 * ((k % s->procs) * n + k / s->procs) + 1];
    free(vals), free(all);
    *loss = clt__loss_mean(t, loss_sum, b->batch);
    if (st == CLT_OK && t->p.check_numerics && !isfinite(*loss))
        st = clt__grad_scale(t, *loss, 0, &jobs[0].gscale);   /* says which: the loss */
    if (st == CLT_OK && update) {
        float gscale;
        st = clt__grad_scale(t, *loss, sumsq, &gscale);
        for (int r = 0; r < n; r++) jobs[r].gscale = gscale;
        if (st == CLT_OK) {
            st = run_ranks(t, s, phase_b, jobs);
            count_late(t, s, jobs);
        }
        if (st != CLT_OK && st != CLT_ERR_NUMERIC) {
            /* some ranks may have updated: all back to the last good step (a lost device's own
             * undo may fail too; its error is the one reported) */
            clt__nets_undo(t->rt, s->dev, s->nets, n);
        }
        if (st == CLT_OK) clt__nets_commit(s->nets, n);
        if (st == CLT_OK && t->p.verify_replicas && n > 1) st = verify(t, s);
        for (int i = 0; i < s->nstate && st == CLT_OK; i++) {   /* the new state is the copy */
            float *tmp = s->hstate[i];
            s->hstate[i] = s->pending[i], s->pending[i] = tmp;
        }
    }
    int lost = -1;
    for (int r = 0; r < n && st != CLT_OK; r++)
        if (lost < 0 && device_lost(jobs[r].st)) lost = r;
    if (st == CLT_OK)
        for (int r = 0; r < n; r++) {
            s->last_seconds[r] = jobs[r].count ? jobs[r].seconds : 0.0;   /* this process's */
            if (jobs[r].count) s->win_time[r] += jobs[r].seconds, s->win_samples[r] += (double)jobs[r].count;
        }
    if (st == CLT_OK && update) {
        s->overlapped = 0;
        s->used_buckets = s->nbuckets;
        for (int r = 0; r < n; r++)
            if (jobs[r].overlapped > s->overlapped) s->overlapped = jobs[r].overlapped;
        if (s->nbuckets > 1) {
            s->unoverlapped_updates = s->overlapped ? 0 : s->unoverlapped_updates + 1;
            if (s->unoverlapped_updates == NO_OVERLAP_UPDATES) {
                clt__log(CLT_LOG_INFO, "data parallel: no gradient bucket overlapped backward in "
                                       "%d updates: one bucket from now on", NO_OVERLAP_UPDATES);
                if (make_buckets(t, s, 0) != CLT_OK) clt__error_clear();   /* kept as they were */
            }
        }
        auto_rebalance(t, s);
    }
    if (jobs != stack) free(jobs);
    if (st == CLT_OK || !t->p.elastic || n < 2 || lost < 0) return st;

    /* elastic: drop the lost device; the step runs again on the others unless gradients of
     * earlier accumulation steps were lost with it */
    char why[512];
    snprintf(why, sizeof why, "%s", clt_last_error());
    int dev = s->dev[lost];
    clt_status dst = drop_rank(t, s, lost);
    if (dst != CLT_OK) return dst;
    if (t->micro == 0) return data_step(t, b, update, lr, loss, correct);
    return clt__fail(st, "%s; elastic: device %d was dropped and training goes on with %d devices, but the "
                     "gradients accumulated since the last update were lost with it: this step is not "
                     "retried", why, dev, s->n);
}

static clt_status data_forward(clt_trainer *t, const clt__batch *b, float *out, double *loss_sum)
{
    data_state *s = t->state;
    int n = s->n;
    rank_job stack[16];
    rank_job *jobs = n <= 16 ? stack : calloc((size_t)n, sizeof *jobs);
    if (!jobs) return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    size_t *counts = calloc((size_t)s->G, sizeof *counts);
    size_t *rows = calloc((size_t)s->procs, sizeof *rows);
    double *vals = malloc((size_t)n * sizeof *vals), *all = malloc((size_t)s->G * sizeof *all);
    if (!counts || !rows || !vals || !all) {
        if (jobs != stack) free(jobs);
        free(counts), free(rows), free(vals), free(all);
        return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    }
    split_batch(t, s, b->batch, counts);
    size_t start = first_row(s, counts);
    for (int r = 0; r < n; r++) {
        size_t count = counts[global_rank(s, r)];
        jobs[r] = (rank_job){t, s, r, b, start, count, 0, 0, 0, 1.0f, 0, 0, 0, out, 0, 0, CLT_OK, 0};
        start += count;
    }
    int wfail = -1;
    clt_status st = warm_shares(t, s, counts, true, &wfail);
    if (st == CLT_OK) {
        st = run_ranks(t, s, forward_task, jobs);
        count_late(t, s, jobs);
    }
    for (int r = 0; r < n; r++) vals[r] = jobs[r].loss_sum;
    st = gather_ranks(s, vals, 1, st, all);
    *loss_sum = 0;
    for (int g = 0; g < s->G; g++) *loss_sum += all[g];
    /* Under MPI every process gets every output row: process q's follow those before it. */
    for (int g = 0; g < s->G; g++) rows[g / n] += counts[g] * out_numel(t);
    if (st == CLT_OK && s->mpi) st = s->mpi_ops->gather_rows(s->mpi, out, rows);
    free(counts), free(rows), free(vals), free(all);
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
    /* Under MPI each process reads the shards it holds, and the sum over processes fills in
     * the rest: every process must make this call. */
    for (size_t done = 0; done < count && st == CLT_OK;) {
        size_t at = off + done;
        size_t k = s->G == 1 ? 0 : at / s->shard;
        int r;
        bool here = shard_here(s, k, &r);
        size_t end = s->G == 1 ? off + count : (k + 1) * s->shard;
        size_t take = end - at < count - done ? end - at : count - done;
        if (here)
            st = clt__buffer_io(&t->rt->workers[s->dev[r]], s->nets[r]->grads, at, take, host + done, 0);
        else
            memset(host + done, 0, take * sizeof *host);
        done += take;
    }
    return sum_parts(s, host, count, st);
}

/* Optimizer state: the rank owning shard k keeps elements [k * shard, (k + 1) * shard) of each
 * array. Under MPI a write keeps the parts this process holds, and a read is summed over the
 * processes as for gradients: every process must make the call. */
static clt_status data_state_io(clt_trainer *t, int which, size_t off, size_t count, float *host,
                                int write)
{
    data_state *s = t->state;
    clt_status st = CLT_OK;
    if (write) s->hstale = true;
    for (size_t done = 0; done < count && st == CLT_OK;) {
        size_t at = off + done;
        size_t k = at / s->shard;
        int r;
        bool here = shard_here(s, k, &r);
        size_t end = (k + 1) * s->shard;
        size_t take = end - at < count - done ? end - at : count - done;
        if (here)
            st = clt__net_state_io(s->nets[r], which, s->shard, at - k * s->shard, take, host + done, write);
        else if (!write)
            memset(host + done, 0, take * sizeof *host);
        done += take;
    }
    return write ? st : sum_parts(s, host, count, st);
}

static clt_status data_split(const clt_trainer *t, size_t *counts, int n)
{
    const data_state *s = t->state;
    for (int i = 0; i < n; i++) counts[i] = 0;
    for (int r = 0; r < s->n; r++)
        if (s->dev[r] < n) counts[s->dev[r]] = s->counts[global_rank(s, r)];
    return CLT_OK;
}

static void data_busy(const clt_trainer *t, double *seconds, int n)
{
    const data_state *s = t->state;
    for (int i = 0; i < n; i++) seconds[i] = 0;
    for (int r = 0; r < s->n; r++)
        if (s->dev[r] < n) seconds[s->dev[r]] = s->last_seconds[r];
}

static void data_buckets(const clt_trainer *t, int *buckets, int *overlapped)
{
    const data_state *s = t->state;
    *buckets = s->comm ? s->used_buckets : 0;
    *overlapped = s->comm ? s->overlapped : 0;
}

const clt__strategy_ops clt__strategy_data = {
    "data parallel", data_create, data_destroy, data_step, data_forward, data_param_io, data_split,
    data_state_io, data_busy, data_buckets,
};
