/* Collectives across a runtime's devices over pinned host staging: a ring reduce-scatter and
 * all-gather (and a broadcast chain) run by the device worker threads themselves, a naive
 * baseline, and the public calls that dispatch them.
 *
 * Each rank (worker) owns one staging buffer (CL_MEM_ALLOC_HOST_PTR, kept mapped) that holds
 * the whole vector. Ranks only ever read their left neighbour's staging (the naive baseline
 * aside) and tell each other how far they are through a progress counter each: the high 32
 * bits number the rank's calls, the low 32 count the (step, chunk) units it has finished. */
#include "internal.h"

#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHUNK_BYTES_DEFAULT ((size_t)1 << 20)
#define TIMEOUT_DEFAULT 60.0
#define MPI_TIMEOUT_DEFAULT 300.0 /* across processes, one may still be compiling kernels */
#define MAX_EVENTS 65536          /* in-flight host copies per rank and call */
#define UNITS_DONE 0xFFFFFFFFu    /* a rank's progress once its call has finished */
#define NAIVE_SLAB 16384          /* floats reduced across all ranks at a time, for the cache */
/* CLT_ALGO_AUTO's all-reduces up to this size take the direct path: latency-bound sizes (the
 * activations of tensor parallelism) where one exchange beats the ring's 2(n-1) steps; see
 * docs/PERFORMANCE.md for the measurement behind it. */
#define DIRECT_BYTES ((size_t)32 << 10)

typedef struct {
    _Alignas(64) _Atomic uint64_t progress;   /* call << 32 | units; release/acquire */
    pthread_mutex_t lock;                     /* with cv: sleeping on this rank's progress */
    pthread_cond_t cv;
    /* Written only by the rank's own thread; other ranks read them after seeing progress. */
    cl_mem staging;
    float *host;                              /* staging, mapped */
    size_t cap;                               /* bytes */
    uint32_t call;                            /* calls this rank has entered */
    const float *src;                         /* mapped ring: the input and the result, */
    float *dst;                               /* indexed like the whole vector */
} rank_state;

struct clt__comm {
    clt_runtime *rt;
    int n;
    clt__worker **members;        /* rank r's worker */
    bool unified;                 /* every device shares host memory: the ring maps buffers */
    rank_state *ranks;
    atomic_bool aborted;
    pthread_mutex_t abort_lock;   /* only on failure: guards the three fields below */
    int abort_rank;
    clt_status abort_status;
    char abort_msg[1024];
    /* Under MPI (the runtime's whole group only): the processes, each with n ranks; rank r
     * also runs the cross-process step of its segment on lane r. */
    clt__mpi *mpi;
    const clt__mpi_ops *mpi_ops;
    int procs, proc;
};

static int mod(int a, int n) { return ((a % n) + n) % n; }

/* ---- the group ------------------------------------------------------------------------------ */

clt_status clt__comm_create(clt__comm **out, clt_runtime *rt)
{
    clt_status st = clt__comm_create_group(out, rt, NULL, rt->nworkers);
    if (st == CLT_OK && rt->mpi) {
        (*out)->mpi = rt->mpi;
        (*out)->mpi_ops = rt->mpi_ops;
        (*out)->procs = rt->mpi_ops->size(rt->mpi);
        (*out)->proc = rt->mpi_ops->rank(rt->mpi);
    }
    return st;
}

clt_status clt__comm_create_group(clt__comm **out, clt_runtime *rt, const int *devices, int n)
{
    *out = NULL;
    CLT_ASSERT(n > 0, CLT_ERR_STATE);
    clt__comm *c = calloc(1, sizeof *c);
    rank_state *ranks = aligned_alloc(_Alignof(rank_state), (size_t)n * sizeof *ranks);
    clt__worker **members = calloc((size_t)n, sizeof *members);
    if (!c || !ranks || !members) {
        free(c);
        free(ranks);
        free(members);
        return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    }
    for (int i = 0; i < n; i++) members[i] = &rt->workers[devices ? devices[i] : i];
    memset(ranks, 0, (size_t)n * sizeof *ranks);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);   /* timeouts immune to clock changes */
    for (int i = 0; i < n; i++) {
        atomic_init(&ranks[i].progress, 0);
        pthread_mutex_init(&ranks[i].lock, NULL);
        pthread_cond_init(&ranks[i].cv, &attr);
    }
    pthread_condattr_destroy(&attr);
    c->rt = rt;
    c->n = n;
    c->members = members;
    c->unified = true;
    for (int i = 0; i < n; i++) c->unified &= members[i]->dev->info.unified_memory != 0;
    c->ranks = ranks;
    atomic_init(&c->aborted, false);
    pthread_mutex_init(&c->abort_lock, NULL);
    c->procs = 1;
    *out = c;
    return CLT_OK;
}

static void release_staging(clt__worker *w, rank_state *r)
{
    if (!r->staging) return;
    cl_command_queue q = clt__worker_comm_queue(w);
    clEnqueueUnmapMemObject(q, r->staging, r->host, 0, NULL, NULL);
    clFinish(q);
    clReleaseMemObject(r->staging);
    r->staging = NULL;
    r->host = NULL;
    r->cap = 0;
}

static clt_status release_task(clt__worker *w, void *arg)
{
    release_staging(w, arg);
    return CLT_OK;
}

void clt__comm_destroy(clt__comm *c)
{
    if (!c) return;
    for (int i = 0; i < c->n; i++) {
        if (c->ranks[i].staging)   /* unmapping needs the worker's queue, so its thread */
            clt__worker_call(c->members[i], release_task, &c->ranks[i]);
        pthread_mutex_destroy(&c->ranks[i].lock);
        pthread_cond_destroy(&c->ranks[i].cv);
    }
    pthread_mutex_destroy(&c->abort_lock);
    free(c->ranks);
    free(c->members);
    free(c);
}

void clt__comm_reset(clt__comm *c)
{
    for (int i = 0; i < c->n; i++) {
        atomic_store(&c->ranks[i].progress, 0);
        c->ranks[i].call = 0;
    }
    atomic_store(&c->aborted, false);
}

clt_status clt__runtime_comm(clt_runtime *rt, clt__comm **out)
{
    if (!rt->comm) {
        clt_status st = clt__comm_create(&rt->comm, rt);
        if (st != CLT_OK) return st;
        rt->comm_destroy = clt__comm_destroy;
    }
    *out = rt->comm;
    return CLT_OK;
}

/* ---- one rank's part in one call ------------------------------------------------------------ */

typedef struct {
    clt__comm *c;
    clt__worker *w;
    cl_command_queue q;      /* the worker's queue for collectives (clt__worker_comm_queue) */
    int me, n;
    uint64_t tag;            /* this call's number << 32 */
    double timeout;
    clt_algo algo;
    size_t chunk_bytes;
    const char *what;        /* "all-reduce", for messages */
    cl_event *ev;            /* pending device-to-host copies */
    size_t nev;
    cl_mem mapped[2];        /* mapped ring: the buffers this rank mapped, and where */
    void *mapped_at[2];
} rank_run;

/* Stops every rank of the group: the first failure is the one reported. */
static void comm_abort(clt__comm *c, int rank, clt_status st, const char *msg)
{
    pthread_mutex_lock(&c->abort_lock);
    if (!atomic_load(&c->aborted)) {
        c->abort_rank = rank;
        c->abort_status = st;
        snprintf(c->abort_msg, sizeof c->abort_msg, "%s", msg);
        atomic_store(&c->aborted, true);
    }
    pthread_mutex_unlock(&c->abort_lock);
    for (int i = 0; i < c->n; i++) {   /* each sleeper rechecks the flag under its lock */
        pthread_mutex_lock(&c->ranks[i].lock);
        pthread_cond_broadcast(&c->ranks[i].cv);
        pthread_mutex_unlock(&c->ranks[i].lock);
    }
}

void clt__comm_abort(clt__comm *c, int device, clt_status st, const char *msg)
{
    int rank = -1;
    for (int r = 0; r < c->n; r++)
        if (c->members[r]->index == device) rank = r;
    char full[sizeof c->abort_msg];
    snprintf(full, sizeof full, "device %d: %s", device, msg);
    comm_abort(c, rank, st, rank < 0 ? full : msg);
}

static const char *rank_name(const clt__comm *c, int rank)
{
    return clt__worker_name(c->members[rank]);
}

static clt_status aborted_error(const rank_run *x)
{
    clt__comm *c = x->c;
    char msg[sizeof c->abort_msg];
    pthread_mutex_lock(&c->abort_lock);
    int who = c->abort_rank;
    memcpy(msg, c->abort_msg, sizeof msg);
    pthread_mutex_unlock(&c->abort_lock);
    if (who < 0)   /* stopped from outside the group (clt__comm_abort) */
        return clt__fail(CLT_ERR_ABORTED, "%s on device %d (%s) stopped: %s", x->what,
                         c->members[x->me]->index, rank_name(c, x->me), msg);
    return clt__fail(CLT_ERR_ABORTED, "%s on device %d (%s) stopped: device %d (%s) failed: %s",
                     x->what, c->members[x->me]->index, rank_name(c, x->me), c->members[who]->index,
                     rank_name(c, who), msg);
}

/* Waits until rank `peer` has reached `target` in this call, the group aborts, or the timeout. */
static clt_status wait_peer(rank_run *x, int peer, uint64_t target)
{
    rank_state *p = &x->c->ranks[peer];
    if (atomic_load_explicit(&p->progress, memory_order_acquire) >= target) return CLT_OK;
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    double whole = floor(x->timeout);
    until.tv_sec += (time_t)whole;
    until.tv_nsec += (long)((x->timeout - whole) * 1e9);
    if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
    int rc = 0;
    bool reached;
    double t0 = x->w->trace ? clt__now() : 0;
    pthread_mutex_lock(&p->lock);
    while (!(reached = atomic_load_explicit(&p->progress, memory_order_acquire) >= target) &&
           !atomic_load(&x->c->aborted) && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&p->cv, &p->lock, &until);
    pthread_mutex_unlock(&p->lock);
    if (x->w->trace) clt__worker_span(x->w, "ring: waiting for a neighbour", t0, clt__now());
    if (reached) return CLT_OK;
    if (atomic_load(&x->c->aborted)) return aborted_error(x);
    uint32_t units = (uint32_t)target;
    return clt__fail(CLT_ERR_TIMEOUT,
                     "%s on device %d (%s): device %d (%s) made no progress for %g s (waited for "
                     "%s of call %u)",
                     x->what, x->c->members[x->me]->index, rank_name(x->c, x->me),
                     x->c->members[peer]->index, rank_name(x->c, peer),
                     x->timeout, units == UNITS_DONE ? "the end" : "a step",
                     (unsigned)(target >> 32));
}

/* Publishes that this rank has finished `units` of this call. */
static clt_status post(rank_run *x, uint32_t units)
{
    clt_status st = clt__fault_point(x->w, CLT__FAULT_ALLREDUCE, units, x->what);
    if (st != CLT_OK) return st;
    rank_state *r = &x->c->ranks[x->me];
    pthread_mutex_lock(&r->lock);
    atomic_store_explicit(&r->progress, x->tag | units, memory_order_release);
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->lock);
    return CLT_OK;
}

static clt_status ensure_staging(clt__worker *w, rank_state *r, size_t bytes)
{
    if (r->cap >= bytes) return CLT_OK;
    release_staging(w, r);
    size_t want = (bytes + 65535) & ~(size_t)65535;
    cl_int err;
    cl_mem m = clCreateBuffer(w->context, CL_MEM_READ_WRITE | CL_MEM_ALLOC_HOST_PTR, want, NULL,
                              &err);
    if (err != CL_SUCCESS)
        return clt__fail_cl(err, clt__worker_name(w), "clCreateBuffer (collective staging)");
    void *p = clEnqueueMapBuffer(clt__worker_comm_queue(w), m, CL_TRUE, CL_MAP_READ | CL_MAP_WRITE, 0, want, 0,
                                 NULL, NULL, &err);
    if (err != CL_SUCCESS) {
        clReleaseMemObject(m);
        return clt__fail_cl(err, clt__worker_name(w), "clEnqueueMapBuffer (collective staging)");
    }
    r->staging = m;
    r->host = p;
    r->cap = want;
    return CLT_OK;
}

/* Enters a call: numbers it, sizes this rank's staging. Always followed by run_end. */
static clt_status run_begin(rank_run *x, clt__comm *c, clt__worker *w,
                            const clt_collective_options *o, const char *what, size_t bytes,
                            size_t nev)
{
    memset(x, 0, sizeof *x);
    x->c = c;
    x->w = w;
    x->q = clt__worker_comm_queue(w);
    x->n = c->n;
    x->what = what;
    x->algo = o && o->algo != CLT_ALGO_AUTO ? o->algo : CLT_ALGO_RING;
    x->chunk_bytes = o && o->chunk_bytes ? o->chunk_bytes : CHUNK_BYTES_DEFAULT;
    x->timeout = o && o->timeout_s > 0 ? o->timeout_s
                 : c->mpi                    ? MPI_TIMEOUT_DEFAULT
                                             : TIMEOUT_DEFAULT;
    x->me = -1;
    for (int r = 0; r < c->n; r++)
        if (c->members[r] == w) x->me = r;
    if (x->me < 0) {
        return clt__fail(CLT_ERR_INVALID_ARG, "%s: worker %d is not a rank of this group", what,
                         w->index);
    }
    if (atomic_load(&c->aborted)) return aborted_error(x);
    rank_state *r = &c->ranks[x->me];
    x->tag = (uint64_t)++r->call << 32;
    x->ev = calloc(nev, sizeof *x->ev);
    if (!x->ev) return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    x->nev = nev;
    /* Safe to resize: every peer finished reading it before the last call returned. */
    return ensure_staging(w, r, bytes);
}

/* Leaves a call: waits for this rank's commands, then for every rank to finish, so that all
 * return CLT_OK or all return an error and no peer still reads this rank's staging. */
static clt_status run_end(rank_run *x, clt_status st)
{
    for (size_t i = 0; i < x->nev; i++)
        if (x->ev[i]) clReleaseEvent(x->ev[i]);
    free(x->ev);
    x->ev = NULL;
    if (x->me < 0) return st;   /* not a rank: nobody waits for it */
    if (st == CLT_OK) {
        cl_int err = clFinish(x->q);
        if (err != CL_SUCCESS) st = clt__fail_cl(err, clt__worker_name(x->w), "clFinish");
    }
    if (st == CLT_OK) st = post(x, UNITS_DONE);
    for (int p = 0; p < x->n && st == CLT_OK; p++)
        if (p != x->me) st = wait_peer(x, p, x->tag | UNITS_DONE);
    if (st == CLT_OK && atomic_load(&x->c->aborted)) st = aborted_error(x);
    if (st != CLT_OK && st != CLT_ERR_ABORTED) comm_abort(x->c, x->me, st, clt_last_error());
    for (int i = 0; i < 2; i++)   /* after the barrier: no peer reads them any more */
        if (x->mapped[i]) {
            cl_int err = clEnqueueUnmapMemObject(x->q, x->mapped[i], x->mapped_at[i], 0, NULL, NULL);
            if (err != CL_SUCCESS && st == CLT_OK)
                st = clt__fail_cl(err, clt__worker_name(x->w), "clEnqueueUnmapMemObject (collective)");
        }
    if (x->mapped[0] || st != CLT_OK) {   /* nothing of ours may touch staging later */
        cl_int err = clFinish(x->q);
        if (err != CL_SUCCESS && st == CLT_OK) st = clt__fail_cl(err, clt__worker_name(x->w), "clFinish");
    }
    return st;
}

/* ---- how a vector splits into segments (one per rank) and chunks ---------------------------- */

typedef struct {
    int n;
    size_t count;     /* floats in all, split as evenly as possible when block == 0 */
    size_t block;     /* else n equal blocks of this many */
    const size_t *bounds;   /* else, when set, segment j is [bounds[j], bounds[j + 1]) - bounds[0] */
    size_t chunk;     /* floats per chunk */
    size_t nchunks;   /* per segment; the same for all so every rank counts units alike */
} layout;

static size_t seg_off(const layout *L, int j)
{
    if (L->bounds) return L->bounds[j] - L->bounds[0];
    if (L->block) return (size_t)j * L->block;
    size_t q = L->count / (size_t)L->n, rem = L->count % (size_t)L->n;
    return (size_t)j * q + ((size_t)j < rem ? (size_t)j : rem);
}

static size_t seg_len(const layout *L, int j)
{
    if (L->bounds) return L->bounds[j + 1] - L->bounds[j];
    if (L->block) return L->block;
    return L->count / (size_t)L->n + ((size_t)j < L->count % (size_t)L->n);
}

static void layout_chunks(layout *L, size_t longest, size_t chunk_bytes)
{
    size_t max_chunks = MAX_EVENTS / (size_t)L->n ? MAX_EVENTS / (size_t)L->n : 1;
    L->chunk = chunk_bytes / sizeof(float) ? chunk_bytes / sizeof(float) : 1;
    if (L->chunk < (longest + max_chunks - 1) / max_chunks)
        L->chunk = (longest + max_chunks - 1) / max_chunks;
    L->nchunks = longest ? (longest + L->chunk - 1) / L->chunk : 1;
}

static void layout_init(layout *L, int n, size_t count, size_t block, size_t chunk_bytes)
{
    L->n = n;
    L->count = count;
    L->block = block;
    L->bounds = NULL;
    layout_chunks(L, block ? block : (count + (size_t)n - 1) / (size_t)n, chunk_bytes);
}

/* Segments of any lengths, even empty ones: bounds has n + 1 increasing offsets. */
static void layout_init_bounds(layout *L, int n, const size_t *bounds, size_t chunk_bytes)
{
    size_t longest = 0;
    for (int j = 0; j < n; j++)
        if (bounds[j + 1] - bounds[j] > longest) longest = bounds[j + 1] - bounds[j];
    L->n = n;
    L->count = bounds[n] - bounds[0];
    L->block = 0;
    L->bounds = bounds;
    layout_chunks(L, longest, chunk_bytes);
}

/* Chunk c of segment j: its offset in the whole vector and its length (maybe 0). */
static size_t chunk_of(const layout *L, int j, size_t c, size_t *len)
{
    size_t len_j = seg_len(L, j), start = c * L->chunk;
    *len = start >= len_j ? 0 : (len_j - start < L->chunk ? len_j - start : L->chunk);
    return seg_off(L, j) + start;
}

/* ---- data movement and arithmetic ----------------------------------------------------------- */

/* Device to host; non-blocking with an event when ev is given. */
static clt_status d2h(rank_run *x, cl_mem buf, size_t buf_off, float *host, size_t len,
                      cl_event *ev)
{
    if (!len) return CLT_OK;
    cl_int err = clEnqueueReadBuffer(x->q, buf, ev ? CL_FALSE : CL_TRUE,
                                     buf_off * sizeof(float), len * sizeof(float), host, 0, NULL,
                                     ev);
    if (err != CL_SUCCESS)
        return clt__fail_cl(err, clt__worker_name(x->w), "clEnqueueReadBuffer (collective)");
    return CLT_OK;
}

/* Host to device, non-blocking: the host data stays put until run_end's clFinish. */
static clt_status h2d(rank_run *x, cl_mem buf, size_t buf_off, const float *host, size_t len)
{
    if (!len) return CLT_OK;
    cl_int err = clEnqueueWriteBuffer(x->q, buf, CL_FALSE, buf_off * sizeof(float),
                                      len * sizeof(float), host, 0, NULL, NULL);
    if (err != CL_SUCCESS)
        return clt__fail_cl(err, clt__worker_name(x->w), "clEnqueueWriteBuffer (collective)");
    return CLT_OK;
}

static clt_status wait_event(rank_run *x, cl_event *ev)
{
    if (!*ev) return CLT_OK;
    cl_int err = clWaitForEvents(1, ev);
    clReleaseEvent(*ev);
    *ev = NULL;
    if (err != CL_SUCCESS)
        return clt__fail_cl(err, clt__worker_name(x->w), "device-to-host copy (collective)");
    return CLT_OK;
}

/* out[i] = op(in[i], acc[i]), then divided by `div` when nonzero (AVG's last step); out may be
 * acc. A NaN in either operand gives NaN for MAX and MIN, as for SUM. */
static void combine(float *out, const float *in, const float *acc, size_t len, clt_op op,
                    float div)
{
    switch (op) {
    case CLT_OP_SUM:
    case CLT_OP_AVG:
        if (div != 0.0f)
            for (size_t i = 0; i < len; i++) out[i] = (in[i] + acc[i]) / div;
        else
            for (size_t i = 0; i < len; i++) out[i] = in[i] + acc[i];
        break;
    case CLT_OP_MAX:
        for (size_t i = 0; i < len; i++) out[i] = in[i] > acc[i] || in[i] != in[i] ? in[i] : acc[i];
        break;
    case CLT_OP_MIN:
        for (size_t i = 0; i < len; i++) out[i] = in[i] < acc[i] || in[i] != in[i] ? in[i] : acc[i];
        break;
    }
}

/* ---- the algorithms ------------------------------------------------------------------------- */

typedef enum { KIND_ALLREDUCE, KIND_REDUCE_SCATTER, KIND_ALL_GATHER, KIND_BROADCAST } kind;

typedef struct {
    bool reduce;      /* reduce-scatter phase */
    bool gather;      /* all-gather phase */
    clt_op op;
    cl_mem send;
    size_t send_off;
    bool send_all;    /* send holds every segment, else only this rank's */
    cl_mem recv;
    size_t recv_off;
    bool recv_all;    /* recv receives every segment, else only this rank's */
    int root;         /* broadcast */
} plan;

/* Where segment j's floats at vector offset `off` sit in a device buffer. */
static size_t dev_off(const layout *L, int j, size_t off, size_t base, bool all)
{
    return base + (all ? off : off - seg_off(L, j));
}

/* Whether rank r's own segment already sits where its result goes (in place). */
static bool own_in_place(const plan *P, const layout *L, int r)
{
    size_t off = seg_off(L, r);
    return P->send == P->recv && dev_off(L, r, off, P->send_off, P->send_all) ==
                                     dev_off(L, r, off, P->recv_off, P->recv_all);
}

/* ---- across processes (MPI): the step between the in-process reduce-scatter and all-gather -- */

static void divide(float *p, size_t len, float div)
{
    for (size_t i = 0; i < len; i++) p[i] /= div;
}

/* Rank r's segment, reduced over this process's devices (in `in`, len floats), reduced over
 * the processes into `out` on lane r: all of it (all-reduce) or block `proc` of it into
 * out[0, len / procs) (reduce-scatter). AVG divides the sum by every device of every process
 * here, once, so every process computes the same bits. */
static clt_status cross_reduce(rank_run *x, const plan *P, const float *in, float *out, size_t len)
{
    clt__comm *c = x->c;
    double t0 = x->w->trace ? clt__now() : 0;
    clt_status st;
    size_t keep = len;
    if (P->gather) {
        st = c->mpi_ops->allreduce(c->mpi, x->me, in, out, len, P->op, x->timeout);
    } else {
        keep = len / (size_t)c->procs;
        if (in != out) memcpy(out, in, len * sizeof(float));
        st = c->mpi_ops->reduce_scatter(c->mpi, x->me, out, keep, P->op, x->timeout);
    }
    if (st == CLT_OK && P->op == CLT_OP_AVG) divide(out, keep, (float)(x->n * c->procs));
    if (x->w->trace) clt__worker_span(x->w, "MPI: across processes", t0, clt__now());
    return st;
}

/* All-gather under MPI: rank r's segment holds block r * procs + p of every process p. This
 * rank's block goes to the host and the segment is gathered over lane r into staging. */
static clt_status cross_gather(rank_run *x, const plan *P, const layout *L)
{
    clt__comm *c = x->c;
    size_t count = seg_len(L, x->me) / (size_t)c->procs;
    float *seg = c->ranks[x->me].host + seg_off(L, x->me);
    clt_status st = d2h(x, P->send, P->send_off, seg + (size_t)c->proc * count, count, NULL);
    double t0 = x->w->trace ? clt__now() : 0;
    if (st == CLT_OK) st = c->mpi_ops->all_gather(c->mpi, x->me, seg, count, x->timeout);
    if (x->w->trace) clt__worker_span(x->w, "MPI: across processes", t0, clt__now());
    return st;
}

/* Ring, rank r, left neighbour l = r-1. Units: block 0 is the copy to the host of the segment
 * the right neighbour needs first; reduce-scatter step s (segment r-2-s, reduced into this
 * rank's staging from l's) is block s+1, so rank r ends owning segment r; all-gather step t
 * (segment r-1-t, taken from l's staging) follows. Block b of chunk c waits for l's block b-1
 * of chunk c. The reduction of segment j runs j+1, j+2, ..., j in ring order, every time. */
static clt_status ring_run(rank_run *x, const plan *P, const layout *L)
{
    int n = x->n, r = x->me;
    size_t C = L->nchunks;
    float *mine = x->c->ranks[r].host;
    int left = mod(r - 1, n), right = mod(r + 1, n);
    const rank_state *lt = &x->c->ranks[left];
    clt_status st = CLT_OK;

    /* Every copy to the host is queued at once, in the order the segments are needed, so the
     * device copies chunk k+1 while this thread reduces chunk k. */
    int ncopy = x->c->mpi && !P->reduce ? 0 : P->send_all ? n : 1;
    if (!ncopy) st = cross_gather(x, P, L);   /* our segment, from every process */
    for (int k = 0; k < ncopy && st == CLT_OK; k++) {
        int seg = P->reduce ? mod(r - 1 - k, n) : r;
        for (size_t c = 0; c < C && st == CLT_OK; c++) {
            size_t len, off = chunk_of(L, seg, c, &len);
            st = d2h(x, P->send, dev_off(L, seg, off, P->send_off, P->send_all), mine + off, len,
                     &x->ev[(size_t)k * C + c]);
        }
    }
    clFlush(x->q);
    int first = P->reduce ? mod(r - 1, n) : r;
    bool cross = x->c->mpi != NULL;
    bool same_place = own_in_place(P, L, r) && !cross;
    for (size_t c = 0; c < C && st == CLT_OK; c++) {
        st = wait_event(x, &x->ev[c]);
        size_t len, off = chunk_of(L, first, c, &len);
        if (st == CLT_OK && !P->reduce && !same_place)   /* all-gather: our own block */
            st = h2d(x, P->recv, P->recv_off + off, mine + off, len);
        if (st == CLT_OK) st = post(x, (uint32_t)(c + 1));
    }
    uint32_t b = 1;
    for (int s = 0; P->reduce && s < n - 1 && st == CLT_OK; s++, b++) {
        int seg = mod(r - 2 - s, n);
        bool last = s == n - 2;
        float div = last && !cross && P->op == CLT_OP_AVG ? (float)n : 0.0f;
        for (size_t c = 0; c < C && st == CLT_OK; c++) {
            size_t len, off = chunk_of(L, seg, c, &len);
            st = wait_event(x, &x->ev[(size_t)(s + 1) * C + c]);
            if (st == CLT_OK) st = wait_peer(x, left, x->tag | ((b - 1) * C + c + 1));
            if (st != CLT_OK) break;
            combine(mine + off, lt->host + off, mine + off, len, P->op, div);
            if (last && !cross)
                st = h2d(x, P->recv, dev_off(L, r, off, P->recv_off, P->recv_all), mine + off, len);
            /* Under MPI the last step's result is posted once it has crossed the processes. */
            if (st == CLT_OK && !(last && cross)) st = post(x, (uint32_t)(b * C + c + 1));
        }
    }
    if (cross && P->reduce && st == CLT_OK) {
        size_t off = seg_off(L, r), len = seg_len(L, r);
        st = cross_reduce(x, P, mine + off, mine + off, len);
        if (st == CLT_OK)
            st = h2d(x, P->recv, dev_off(L, r, off, P->recv_off, P->recv_all), mine + off,
                     P->gather ? len : len / (size_t)x->c->procs);
        if (st == CLT_OK) st = post(x, (uint32_t)((size_t)n * C));   /* the last reduce block */
    }
    for (int t = 0; P->gather && t < n - 1 && st == CLT_OK; t++, b++) {
        int seg = mod(r - 1 - t, n);
        bool relay = t < n - 2;   /* the right neighbour takes this segment from us next */
        for (size_t c = 0; c < C && st == CLT_OK; c++) {
            size_t len, off = chunk_of(L, seg, c, &len);
            st = wait_peer(x, left, x->tag | ((b - 1) * C + c + 1));
            /* The right neighbour read our copy of this segment in its reduce-scatter step t. */
            if (st == CLT_OK && relay && P->reduce)
                st = wait_peer(x, right, x->tag | ((size_t)(t + 1) * C + c + 1));
            if (st != CLT_OK) break;
            if (relay) memcpy(mine + off, lt->host + off, len * sizeof(float));
            st = h2d(x, P->recv, P->recv_off + off, lt->host + off, len);
            if (st == CLT_OK) st = post(x, (uint32_t)(b * C + c + 1));
        }
    }
    return st;
}

static clt_status map_range(rank_run *x, int i, cl_mem buf, size_t off, size_t count,
                            float **out)
{
    if (count == 0) {   /* nothing to map (an empty segment): never dereferenced */
        *out = NULL;
        return CLT_OK;
    }
    cl_int err;
    void *p = clEnqueueMapBuffer(x->q, buf, CL_TRUE, CL_MAP_READ | CL_MAP_WRITE,
                                 off * sizeof(float), count * sizeof(float), 0, NULL, NULL, &err);
    if (err != CL_SUCCESS)
        return clt__fail_cl(err, clt__worker_name(x->w), "clEnqueueMapBuffer (collective)");
    x->mapped[i] = buf;
    x->mapped_at[i] = p;
    *out = p;
    return CLT_OK;
}

/* Maps send's [send_off, + send_count) and recv's [recv_off, + recv_count) for the host: one
 * mapping of the span both cover when they are the same buffer (in place). */
static clt_status map_pair(rank_run *x, const plan *P, size_t send_count, size_t recv_count,
                           float **src, float **dst)
{
    if (P->send == P->recv) {
        size_t lo = P->send_off < P->recv_off ? P->send_off : P->recv_off;
        size_t send_end = P->send_off + send_count, recv_end = P->recv_off + recv_count;
        size_t hi = send_end > recv_end ? send_end : recv_end;
        float *p;
        clt_status st = map_range(x, 0, P->send, lo, hi - lo, &p);
        if (st != CLT_OK) return st;
        *src = p + (P->send_off - lo);
        *dst = p + (P->recv_off - lo);
        return CLT_OK;
    }
    clt_status st = map_range(x, 0, P->send, P->send_off, send_count, src);
    return st == CLT_OK ? map_range(x, 1, P->recv, P->recv_off, recv_count, dst) : st;
}

/* The ring of ring_run on devices that share host memory: the device buffers are mapped (no
 * copy) and the ranks reduce from each other's input and result directly, with the same units
 * and order. An all-reduce only. */
static clt_status ring_mapped_run(rank_run *x, const plan *P, const layout *L, size_t count)
{
    int n = x->n, r = x->me, left = mod(r - 1, n), right = mod(r + 1, n);
    size_t C = L->nchunks;
    rank_state *me = &x->c->ranks[r];
    const rank_state *lt = &x->c->ranks[left];
    float *src, *dst;
    clt_status st = map_pair(x, P, count, count, &src, &dst);
    if (st != CLT_OK) return st;
    me->src = src;
    me->dst = dst;
    for (size_t c = 0; c < C && st == CLT_OK; c++) st = post(x, (uint32_t)(c + 1));
    uint32_t b = 1;
    bool cross = x->c->mpi != NULL;
    for (int s = 0; s < n - 1 && st == CLT_OK; s++, b++) {
        int seg = mod(r - 2 - s, n);
        bool last = s == n - 2;
        float div = last && !cross && P->op == CLT_OP_AVG ? (float)n : 0.0f;
        for (size_t c = 0; c < C && st == CLT_OK; c++) {
            size_t len, off = chunk_of(L, seg, c, &len);
            st = wait_peer(x, left, x->tag | ((b - 1) * C + c + 1));
            if (st != CLT_OK) break;
            combine(dst + off, (s == 0 ? lt->src : lt->dst) + off, src + off, len, P->op, div);
            if (!(last && cross)) st = post(x, (uint32_t)(b * C + c + 1));
        }
    }
    if (cross && st == CLT_OK) {   /* one device here: its input is the local "sum" */
        size_t off = seg_off(L, r);
        st = cross_reduce(x, P, (n == 1 ? src : dst) + off, dst + off, seg_len(L, r));
        if (st == CLT_OK) st = post(x, (uint32_t)((size_t)n * C));
    }
    for (int t = 0; t < n - 1 && st == CLT_OK; t++, b++) {
        int seg = mod(r - 1 - t, n);
        for (size_t c = 0; c < C && st == CLT_OK; c++) {
            size_t len, off = chunk_of(L, seg, c, &len);
            st = wait_peer(x, left, x->tag | ((b - 1) * C + c + 1));
            /* The right neighbour read our copy of this segment in its step t. */
            if (st == CLT_OK) st = wait_peer(x, right, x->tag | ((size_t)(t + 1) * C + c + 1));
            if (st != CLT_OK) break;
            memcpy(dst + off, lt->dst + off, len * sizeof(float));
            st = post(x, (uint32_t)(b * C + c + 1));
        }
    }
    return st;
}

/* The ring's reduce-scatter (in process) on devices that share host memory: the inputs are
 * read where they are (mapped), the partial sums go to the staging buffers and the last step
 * writes this rank's result into place; the same units and order of reduction as ring_run, so
 * the same bits, without copying the whole vector to the host and the result back. Only the
 * right neighbour reads this rank's input, and never its own segment, which the result may
 * overwrite (in place). */
static clt_status rs_mapped_run(rank_run *x, const plan *P, const layout *L)
{
    int n = x->n, r = x->me, left = mod(r - 1, n);
    size_t C = L->nchunks, total = seg_off(L, n - 1) + seg_len(L, n - 1), own = seg_off(L, r);
    rank_state *me = &x->c->ranks[r];
    const rank_state *lt = &x->c->ranks[left];
    float *src, *dst;
    clt_status st = map_pair(x, P, total, seg_len(L, r), &src, &dst);
    if (st != CLT_OK) return st;
    me->src = src;
    for (size_t c = 0; c < C && st == CLT_OK; c++) st = post(x, (uint32_t)(c + 1));
    uint32_t b = 1;
    for (int s = 0; s < n - 1 && st == CLT_OK; s++, b++) {
        int seg = mod(r - 2 - s, n);
        bool last = s == n - 2;
        float div = last && P->op == CLT_OP_AVG ? (float)n : 0.0f;
        for (size_t c = 0; c < C && st == CLT_OK; c++) {
            size_t len, off = chunk_of(L, seg, c, &len);
            st = wait_peer(x, left, x->tag | ((b - 1) * C + c + 1));
            if (st != CLT_OK) break;
            if (len)
                combine(last ? dst + (off - own) : me->host + off,
                        (s == 0 ? lt->src : lt->host) + off, src + off, len, P->op, div);
            st = post(x, (uint32_t)(b * C + c + 1));
        }
    }
    return st;
}

/* All-gather (in process) on devices that share host memory: each rank puts its segment in
 * place in its mapped result, then copies every other rank's straight from that rank's result;
 * one copy per segment instead of the ring's two through staging. */
static clt_status ag_mapped_run(rank_run *x, const plan *P, const layout *L)
{
    int n = x->n, r = x->me;
    size_t total = seg_off(L, n - 1) + seg_len(L, n - 1), own = seg_off(L, r);
    float *src, *dst;
    clt_status st = map_pair(x, P, seg_len(L, r), total, &src, &dst);
    if (st != CLT_OK) return st;
    if (seg_len(L, r) && src != dst + own) memmove(dst + own, src, seg_len(L, r) * sizeof(float));
    x->c->ranks[r].dst = dst;
    st = post(x, 1);
    for (int k = 1; k < n && st == CLT_OK; k++) {   /* the left neighbour first, as in the ring */
        int j = mod(r - k, n);
        st = wait_peer(x, j, x->tag | 1);
        if (st == CLT_OK && seg_len(L, j))
            memcpy(dst + seg_off(L, j), x->c->ranks[j].dst + seg_off(L, j), seg_len(L, j) * sizeof(float));
    }
    return st;
}

/* The baseline: everyone copies to the host, rank 0 reduces all of it, everyone copies the
 * result from rank 0's staging (an all-gather takes each block from its owner). */
static clt_status naive_run(rank_run *x, const plan *P, const layout *L)
{
    int n = x->n, r = x->me;
    rank_state *ranks = x->c->ranks;
    float *mine = ranks[r].host;
    size_t total = seg_off(L, n - 1) + seg_len(L, n - 1);
    clt_status st = P->send_all ? d2h(x, P->send, P->send_off, mine, total, NULL)
                                : d2h(x, P->send, P->send_off, mine + seg_off(L, r), seg_len(L, r), NULL);
    if (st == CLT_OK) st = post(x, 1);
    if (st == CLT_OK && P->reduce) {
        if (r == 0) {
            for (int p = 1; p < n && st == CLT_OK; p++) st = wait_peer(x, p, x->tag | 1);
            for (size_t o = 0; o < total && st == CLT_OK; o += NAIVE_SLAB) {
                size_t len = total - o < NAIVE_SLAB ? total - o : NAIVE_SLAB;
                for (int p = 1; p < n; p++)
                    combine(mine + o, ranks[p].host + o, mine + o, len, P->op,
                            p == n - 1 && P->op == CLT_OP_AVG ? (float)n : 0.0f);
            }
            if (st == CLT_OK) st = post(x, 2);
        } else {
            st = wait_peer(x, 0, x->tag | 2);
        }
    }
    bool same_place = own_in_place(P, L, r);
    for (int j = 0; j < n && st == CLT_OK; j++) {
        if (!P->recv_all && j != r) continue;
        int from = P->reduce ? 0 : j;
        if (from == r && !P->reduce && same_place) continue;
        if (from != r && !P->reduce) st = wait_peer(x, from, x->tag | 1);
        if (st == CLT_OK)
            st = h2d(x, P->recv, dev_off(L, j, seg_off(L, j), P->recv_off, P->recv_all),
                     ranks[from].host + seg_off(L, j), seg_len(L, j));
    }
    return st;
}

/* Small all-reduces: every rank copies its vector to its staging, waits for all the others,
 * then reduces every rank's staging itself, in rank order, into the second half of its own
 * staging and writes that back: one exchange instead of the ring's 2(n-1) dependent steps, the
 * reduction done n times over (cheap at these sizes). Every rank adds in the same order, so all
 * get the same bits. */
static clt_status direct_run(rank_run *x, const plan *P, size_t count)
{
    int n = x->n, r = x->me;
    rank_state *ranks = x->c->ranks;
    float *acc = ranks[r].host + count;
    clt_status st = d2h(x, P->send, P->send_off, ranks[r].host, count, NULL);
    if (st == CLT_OK) st = post(x, 1);
    for (int p = 0; p < n && st == CLT_OK; p++)
        if (p != r) st = wait_peer(x, p, x->tag | 1);
    if (st != CLT_OK) return st;
    memcpy(acc, ranks[0].host, count * sizeof(float));
    for (int p = 1; p < n; p++)
        combine(acc, ranks[p].host, acc, count, P->op, p == n - 1 && P->op == CLT_OP_AVG ? (float)n : 0.0f);
    st = h2d(x, P->recv, P->recv_off, acc, count);
    return st == CLT_OK ? post(x, 2) : st;   /* unit 2: reduced (the fault hook counts it) */
}

/* Broadcast: a chain from the root around the ring, chunk by chunk (ring), or every rank
 * copying from the root's staging (naive). One segment: layout with n = 1. */
static clt_status broadcast_run(rank_run *x, const plan *P, const layout *L)
{
    int n = x->n, r = x->me, d = mod(r - P->root, n);
    rank_state *ranks = x->c->ranks;
    float *mine = ranks[r].host;
    int from = x->algo == CLT_ALGO_NAIVE ? P->root : mod(r - 1, n);
    clt_status st = CLT_OK;
    if (d == 0) {
        for (size_t c = 0; c < L->nchunks && st == CLT_OK; c++) {
            size_t len, off = chunk_of(L, 0, c, &len);
            st = d2h(x, P->send, P->send_off + off, mine + off, len, &x->ev[c]);
        }
        clFlush(x->q);
        for (size_t c = 0; c < L->nchunks && st == CLT_OK; c++) {
            st = wait_event(x, &x->ev[c]);
            if (st == CLT_OK) st = post(x, (uint32_t)(c + 1));
        }
        return st;
    }
    for (size_t c = 0; c < L->nchunks && st == CLT_OK; c++) {
        size_t len, off = chunk_of(L, 0, c, &len);
        st = wait_peer(x, from, x->tag | (c + 1));
        if (st != CLT_OK) break;
        if (x->algo != CLT_ALGO_NAIVE && d < n - 1)   /* the next in the chain reads ours */
            memcpy(mine + off, ranks[from].host + off, len * sizeof(float));
        st = h2d(x, P->send, P->send_off + off, ranks[from].host + off, len);
        if (st == CLT_OK) st = post(x, (uint32_t)(c + 1));
    }
    return st;
}

/* One device: a copy on the device, or nothing in place. */
static clt_status local_copy(clt__worker *w, cl_mem src, size_t src_off, cl_mem dst,
                             size_t dst_off, size_t count)
{
    if (src == dst && src_off == dst_off) return CLT_OK;
    cl_command_queue q = clt__worker_comm_queue(w);
    cl_int err = clEnqueueCopyBuffer(q, src, dst, src_off * sizeof(float),
                                     dst_off * sizeof(float), count * sizeof(float), 0, NULL, NULL);
    if (err == CL_SUCCESS) err = clFinish(q);
    if (err != CL_SUCCESS) return clt__fail_cl(err, clt__worker_name(w), "clEnqueueCopyBuffer");
    return CLT_OK;
}

/* bounds (reduce-scatter only, else NULL): the segments' own lengths, see layout_init_bounds. */
static clt_status run_collective(clt__comm *c, clt__worker *w, const clt_collective_options *o,
                                 kind k, const plan *P, size_t count, const size_t *bounds)
{
    static const char *const names[] = {"all-reduce", "reduce-scatter", "all-gather", "broadcast"};
    int n = c->n;
    rank_run x;
    layout L;
    size_t chunk_bytes = o && o->chunk_bytes ? o->chunk_bytes : CHUNK_BYTES_DEFAULT;
    /* Under MPI a reduce-scatter's or all-gather's segment r holds device r's block of every
     * process: procs blocks. */
    size_t block = (size_t)c->procs * count;
    if (k == KIND_BROADCAST)
        layout_init(&L, 1, count, 0, chunk_bytes);
    else if (bounds)
        layout_init_bounds(&L, n, bounds, chunk_bytes);
    else
        layout_init(&L, n, k == KIND_ALLREDUCE ? count : (size_t)n * block,
                    k == KIND_ALLREDUCE ? 0 : block, chunk_bytes);
    size_t total = seg_off(&L, L.n - 1) + seg_len(&L, L.n - 1);
    /* (not across MPI processes: there the ring's segments carry the cross-process step) */
    bool direct = k == KIND_ALLREDUCE && !c->mpi &&
                  (o && o->algo != CLT_ALGO_AUTO ? o->algo == CLT_ALGO_DIRECT
                                                 : total * sizeof(float) <= DIRECT_BYTES);
    clt_status st = run_begin(&x, c, w, o, names[k], (direct ? 2 : 1) * total * sizeof(float),
                              (size_t)L.n * L.nchunks);
    if (st == CLT_OK) {
        if (direct)
            st = direct_run(&x, P, count);
        else if (k == KIND_BROADCAST)
            st = broadcast_run(&x, P, &L);
        else if (x.algo == CLT_ALGO_NAIVE && !c->mpi)
            st = naive_run(&x, P, &L);
        else if (k == KIND_ALLREDUCE && x.algo == CLT_ALGO_RING && c->unified)
            st = ring_mapped_run(&x, P, &L, count);
        else if (k == KIND_REDUCE_SCATTER && x.algo == CLT_ALGO_RING && c->unified && !c->mpi)
            st = rs_mapped_run(&x, P, &L);
        else if (k == KIND_ALL_GATHER && x.algo == CLT_ALGO_RING && c->unified && !c->mpi)
            st = ag_mapped_run(&x, P, &L);
        else
            st = ring_run(&x, P, &L);
    }
    return run_end(&x, st);
}

clt_status clt__comm_allreduce(clt__comm *c, clt__worker *w, cl_mem send, size_t send_off,
                               cl_mem recv, size_t recv_off, size_t count, clt_op op,
                               const clt_collective_options *o)
{
    if (count == 0) return CLT_OK;
    if (c->n == 1 && !c->mpi) return local_copy(w, send, send_off, recv, recv_off, count);
    plan P = {.reduce = true, .gather = true, .op = op, .send = send, .send_off = send_off,
              .send_all = true, .recv = recv, .recv_off = recv_off, .recv_all = true};
    return run_collective(c, w, o, KIND_ALLREDUCE, &P, count, NULL);
}

clt_status clt__comm_broadcast(clt__comm *c, clt__worker *w, cl_mem buf, size_t off, size_t count,
                               int root, const clt_collective_options *o)
{
    if (count == 0 || c->n == 1) return CLT_OK;
    CLT_ASSERT(!c->mpi, CLT_ERR_STATE);   /* the public call refuses it */
    plan P = {.send = buf, .send_off = off, .recv = buf, .recv_off = off, .root = root};
    return run_collective(c, w, o, KIND_BROADCAST, &P, count, NULL);
}

clt_status clt__comm_reduce_scatter(clt__comm *c, clt__worker *w, cl_mem send, size_t send_off,
                                    cl_mem recv, size_t recv_off, size_t count, clt_op op,
                                    const clt_collective_options *o)
{
    if (count == 0) return CLT_OK;
    if (c->n == 1 && !c->mpi) return local_copy(w, send, send_off, recv, recv_off, count);
    plan P = {.reduce = true, .op = op, .send = send, .send_off = send_off, .send_all = true,
              .recv = recv, .recv_off = recv_off};
    return run_collective(c, w, o, KIND_REDUCE_SCATTER, &P, count, NULL);
}

clt_status clt__comm_reduce_scatter_v(clt__comm *c, clt__worker *w, cl_mem buf, size_t off,
                                      const size_t *bounds, clt_op op,
                                      const clt_collective_options *o)
{
    int r = -1;
    for (int i = 0; i < c->n; i++)
        if (c->members[i] == w) r = i;
    CLT_ASSERT(!c->mpi, CLT_ERR_STATE);   /* the data strategy keeps one bucket under MPI */
    if (bounds[c->n] == bounds[0] || c->n == 1) return CLT_OK;
    /* The vector starts at off + bounds[0]; this rank's sum lands where its segment was (a
     * worker outside the group gets run_begin's error). */
    plan P = {.reduce = true, .op = op, .send = buf, .send_off = off + bounds[0], .send_all = true,
              .recv = buf, .recv_off = off + bounds[r < 0 ? 0 : r]};
    return run_collective(c, w, o, KIND_REDUCE_SCATTER, &P, 0, bounds);
}

clt_status clt__comm_all_gather(clt__comm *c, clt__worker *w, cl_mem send, size_t send_off,
                                cl_mem recv, size_t recv_off, size_t count,
                                const clt_collective_options *o)
{
    if (count == 0) return CLT_OK;
    if (c->n == 1 && !c->mpi) return local_copy(w, send, send_off, recv, recv_off, count);
    /* Our block goes to recv at block w->index: seen from the vector, recv starts recv_off. */
    plan P = {.gather = true, .send = send, .send_off = send_off, .recv = recv,
              .recv_off = recv_off, .recv_all = true};
    return run_collective(c, w, o, KIND_ALL_GATHER, &P, count, NULL);
}

/* ---- the public calls: validate on the caller's thread, then one task per worker ------------ */

clt_collective_options clt_collective_options_default(void)
{
    clt_collective_options o;
    memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    o.algo = CLT_ALGO_AUTO;
    o.chunk_bytes = 0;
    o.timeout_s = 0.0;
    return o;
}

typedef struct {
    clt__comm *c;
    kind k;
    cl_mem send, recv;
    size_t send_off, recv_off, count;
    clt_op op;
    int root;
    const clt_collective_options *o;
} rank_args;

static clt_status rank_task(clt__worker *w, void *arg)
{
    const rank_args *a = arg;
    switch (a->k) {
    case KIND_ALLREDUCE:
        return clt__comm_allreduce(a->c, w, a->send, a->send_off, a->recv, a->recv_off, a->count,
                                   a->op, a->o);
    case KIND_REDUCE_SCATTER:
        return clt__comm_reduce_scatter(a->c, w, a->send, a->send_off, a->recv, a->recv_off,
                                        a->count, a->op, a->o);
    case KIND_ALL_GATHER:
        return clt__comm_all_gather(a->c, w, a->send, a->send_off, a->recv, a->recv_off,
                                    a->count, a->o);
    case KIND_BROADCAST:
        return clt__comm_broadcast(a->c, w, a->send, a->send_off, a->count, a->root, a->o);
    }
    return clt__fail(CLT_ERR_STATE, "unknown collective %d", (int)a->k);
}

/* A buffer device i may use: in its context, holding at least `floats`. */
static clt_status check_buffer(const clt_runtime *rt, const char *fn, const char *name, int i,
                               cl_mem m, size_t floats)
{
    if (!m) return clt__fail(CLT_ERR_INVALID_ARG, "%s: %s[%d] is NULL", fn, name, i);
    const clt__worker *w = &rt->workers[i];
    cl_context ctx;
    size_t size;
    cl_int err = clGetMemObjectInfo(m, CL_MEM_CONTEXT, sizeof ctx, &ctx, NULL);
    if (err == CL_SUCCESS) err = clGetMemObjectInfo(m, CL_MEM_SIZE, sizeof size, &size, NULL);
    if (err != CL_SUCCESS) {
        char what[96];
        snprintf(what, sizeof what, "%s: clGetMemObjectInfo of %s[%d]", fn, name, i);
        return clt__fail_cl(err, clt__worker_name(w), what);
    }
    if (ctx != w->context)
        return clt__fail(CLT_ERR_INVALID_CONTEXT,
                         "%s: %s[%d] was not created in the context of device %d (%s)", fn, name,
                         i, i, clt__worker_name(w));
    if (size / sizeof(float) < floats)
        return clt__fail(CLT_ERR_INVALID_BUFFER_SIZE,
                         "%s: %s[%d] holds %zu bytes, device %d needs %zu (%zu floats)", fn, name,
                         i, size, i, floats * sizeof(float), floats);
    return CLT_OK;
}

typedef struct {
    const char *fn;
    kind k;
    cl_mem const *send, *recv;   /* recv NULL: in place */
    size_t send_floats, recv_floats;
    size_t count;
    clt_op op;
    int root;
} call_desc;

static clt_status validate(clt_runtime *rt, const call_desc *d, const clt_collective_options *o)
{
    const char *fn = d->fn;
    if (!rt) return clt__fail(CLT_ERR_INVALID_ARG, "%s: runtime is NULL", fn);
    int n = rt->nworkers;
    clt__worker *self = clt__worker_self();
    if (self && self >= rt->workers && self < rt->workers + n)
        return clt__fail(CLT_ERR_STATE,
                         "%s: called on device %d's worker thread, which the collective needs",
                         fn, self->index);
    if (!d->send) return clt__fail(CLT_ERR_INVALID_ARG, "%s: the buffer array is NULL", fn);
    if (d->k != KIND_ALL_GATHER && d->k != KIND_BROADCAST && (unsigned)d->op > CLT_OP_MIN)
        return clt__fail(CLT_ERR_INVALID_ARG, "%s: unknown op %d", fn, (int)d->op);
    if (rt->mpi && d->k == KIND_BROADCAST)
        return clt__fail(CLT_ERR_UNSUPPORTED, "%s: under MPI a broadcast does not cross processes "
                         "(use clt_allreduce, or broadcast with MPI yourself)", fn);
    if (rt->mpi && o && (o->algo == CLT_ALGO_NAIVE || o->algo == CLT_ALGO_DIRECT))
        return clt__fail(CLT_ERR_UNSUPPORTED, "%s: CLT_ALGO_%s does not cross processes", fn,
                         o->algo == CLT_ALGO_NAIVE ? "NAIVE" : "DIRECT");
    if (d->k == KIND_BROADCAST && (d->root < 0 || d->root >= n))
        return clt__fail(CLT_ERR_INVALID_ARG, "%s: root %d out of range (the runtime has %d)", fn,
                         d->root, n);
    if (o && ((unsigned)o->algo > CLT_ALGO_DIRECT || !(o->timeout_s >= 0) || isinf(o->timeout_s)))
        return clt__fail(CLT_ERR_INVALID_ARG, "%s: bad options (algo %d, timeout_s %g)", fn,
                         (int)o->algo, o->timeout_s);
    if (d->count > SIZE_MAX / sizeof(float) / (size_t)n / (size_t)clt_runtime_process_count(rt))
        return clt__fail(CLT_ERR_INVALID_ARG, "%s: count %zu is too large", fn, d->count);
    const char *sname = d->k == KIND_BROADCAST                  ? "bufs"
                        : d->k == KIND_ALL_GATHER && !d->recv ? "recv"
                                                              : "send";
    for (int i = 0; i < n; i++) {
        clt_status st = check_buffer(rt, fn, sname, i, d->send[i], d->send_floats);
        if (st == CLT_OK && d->recv) st = check_buffer(rt, fn, "recv", i, d->recv[i], d->recv_floats);
        if (st != CLT_OK) return st;
    }
    /* Two devices writing one buffer would race. */
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            if (j == i) continue;
            bool same = d->send[i] == d->send[j] || (d->recv && (d->recv[i] == d->recv[j] ||
                                                                 d->recv[i] == d->send[j]));
            if (same)
                return clt__fail(CLT_ERR_INVALID_ARG,
                                 "%s: devices %d and %d were given the same buffer", fn, i, j);
        }
    return CLT_OK;
}

static clt_status run_public(clt_runtime *rt, const call_desc *d, const clt_collective_options *opts)
{
    clt_collective_options given = clt_collective_options_default();
    clt_status st = clt__options_read(&given, opts, sizeof given, CLT__COLLECTIVE_OPTIONS_V1, d->fn,
                                      "clt_collective_options");
    if (st != CLT_OK) return st;
    const clt_collective_options *o = &given;
    st = validate(rt, d, o);
    if (st != CLT_OK || d->count == 0) return st;
    int n = rt->nworkers;
    rank_args *args = calloc((size_t)n, sizeof *args);
    if (!args) return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    pthread_mutex_lock(&rt->comm_lock);
    clt__comm *c = NULL;
    st = clt__runtime_comm(rt, &c);
    for (int i = 0; i < n && st == CLT_OK; i++) {
        rank_args *a = &args[i];
        a->c = c;
        a->k = d->k;
        a->count = d->count;
        a->op = d->op;
        a->root = d->root;
        a->o = o;
        a->send = d->send[i];
        a->recv = d->recv ? d->recv[i] : d->send[i];
        /* In place: the result (reduce-scatter) or the input (all-gather) is device i's block:
         * block i, or under MPI block i * procs + proc. */
        size_t block = (size_t)i * (size_t)c->procs + (size_t)c->proc;
        if (!d->recv && d->k == KIND_REDUCE_SCATTER) a->recv_off = block * d->count;
        if (!d->recv && d->k == KIND_ALL_GATHER) a->send_off = block * d->count;
    }
    if (st == CLT_OK) st = clt__runtime_parallel(rt, rank_task, args, sizeof *args);
    if (st != CLT_OK && c && atomic_load(&c->aborted)) {
        /* Report the failure that stopped the others, not the lowest device's CLT_ERR_ABORTED. */
        char msg[sizeof c->abort_msg + 512];
        snprintf(msg, sizeof msg, "%s: device %d (%s) failed: %s", d->fn, c->abort_rank,
                 rank_name(c, c->abort_rank), c->abort_msg);
        st = c->abort_status;
        clt__error_set_message(msg);
        clt__comm_reset(c);   /* every rank has returned */
    }
    pthread_mutex_unlock(&rt->comm_lock);
    free(args);
    return st;
}

clt_status clt_allreduce(clt_runtime *rt, cl_mem const send[], cl_mem const recv[], size_t count,
                         clt_op op, const clt_collective_options *opts)
{
    call_desc d = {"clt_allreduce", KIND_ALLREDUCE, send, recv, count, count, count, op, 0};
    return run_public(rt, &d, opts);
}

clt_status clt_broadcast(clt_runtime *rt, cl_mem const bufs[], size_t count, int root,
                         const clt_collective_options *opts)
{
    call_desc d = {"clt_broadcast", KIND_BROADCAST, bufs, NULL, count, 0, count, CLT_OP_SUM, root};
    return run_public(rt, &d, opts);
}

clt_status clt_reduce_scatter(clt_runtime *rt, cl_mem const send[], cl_mem const recv[],
                              size_t count, clt_op op, const clt_collective_options *opts)
{
    size_t n = rt ? (size_t)rt->nworkers * (size_t)clt_runtime_process_count(rt) : 1;
    call_desc d = {"clt_reduce_scatter", KIND_REDUCE_SCATTER, send, recv,
                   n * count, count, count, op, 0};
    return run_public(rt, &d, opts);
}

clt_status clt_all_gather(clt_runtime *rt, cl_mem const send[], cl_mem const recv[], size_t count,
                          const clt_collective_options *opts)
{
    /* The in-place form has only recv: validate it as the one array. */
    size_t n = rt ? (size_t)rt->nworkers * (size_t)clt_runtime_process_count(rt) : 1;
    call_desc d = {"clt_all_gather", KIND_ALL_GATHER, send ? send : recv, send ? recv : NULL,
                   send ? count : n * count, n * count, count, CLT_OP_SUM, 0};
    return run_public(rt, &d, opts);
}
