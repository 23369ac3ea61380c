/* The MPI layer under the collectives: a runtime that spans the processes of a communicator.
 * Each local device r gets a "lane", a duplicate of the communicator joining device r of every
 * process, on which its worker thread runs the cross-process step of a hierarchical collective;
 * one more duplicate carries the host-side exchanges of the data-parallel trainer (losses,
 * gradient norms, outputs). Worker threads call MPI at once: MPI_THREAD_MULTIPLE is required.
 *
 * Every wait is bounded: a call is non-blocking (MPI_Iallreduce, ...) and polled with
 * MPI_Testsome until it completes or the timeout passes. With it go "arrival tokens", one tiny
 * message to every peer carrying the call's number, so that a process that never reaches the
 * call is named in the others' CLT_ERR_TIMEOUT (and one that reached a different call is
 * caught at once). A timed-out call leaves MPI requests that can never be freed: the layer then
 * refuses every later call.
 *
 * This file alone calls MPI, and it is built into its own library, libcltrain-mpi (only when
 * configure finds MPI), so that libcltrain never loads libmpi: the core calls the layer through
 * the table at the end (clt__mpi_ops, lib/internal.h).
 *
 * When every process runs on one node (MPI_Comm_split_type says so), a lane's all-reduce goes
 * through an MPI-3 shared window instead of MPI's messages: each process copies its vector
 * into its part of the window, reduces one slice of everyone's (processes in rank order, so
 * the bits are the same everywhere), and copies every reduced slice out; processes meet at
 * arrival counters in another shared window (bounded waits naming a late process). Two halves
 * of the window alternate between calls, so a call's writes never meet the last call's reads.
 * CLT_MPI_SHM=0 turns it off (docs/PERFORMANCE.md compares the two). */
#include "internal.h"

#include <mpi.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cltrain_mpi.h"

static const clt__mpi_ops layer_ops;   /* the core's view of this file, at the end */

#define HOST_NAME 64
#define TOKEN_TAG 7
#define HOST_TIMEOUT 300.0   /* the trainer's exchanges and the runtime's creation */

/* A lane's shared-memory all-reduce: every process's part of the data window is two halves of
 * cap floats, its part of the flag window one arrival counter. */
typedef struct {
    MPI_Win data, flags;
    float **base;              /* base[q]: process q's part of the data window */
    _Atomic uint64_t **arrived;   /* arrived[q]: the syncs process q has reached */
    size_t cap;
    uint64_t syncs;            /* this process's */
    uint32_t calls;
} shm_lane;

struct clt__mpi {
    int rank, size;
    int nlanes;
    MPI_Comm host;             /* the trainer's host-side exchanges, on the calling thread */
    MPI_Comm *lanes;           /* lane r: device r of every process */
    shm_lane *shm;             /* per lane when every process shares this node, else NULL */
    uint32_t *seq;             /* calls made per lane; [nlanes]: the host comm's */
    char (*hosts)[HOST_NAME];  /* each process's processor name, for messages */
    MPI_Op op_max, op_min;
    atomic_bool broken;
    char broken_msg[512];
};

static int layer_size(const clt__mpi *m) { return m->size; }
static int layer_rank(const clt__mpi *m) { return m->rank; }

static clt_status fail_mpi(int rc, const char *what)
{
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) snprintf(msg, sizeof msg, "error %d", rc);
    return clt__fail(CLT_ERR_STATE, "%s: MPI error: %s", what, msg);
}

/* The MAX and MIN of lib/collective.c (a NaN wins), as MPI user ops: inout = in op inout. */
static void op_max(void *in, void *inout, int *len, MPI_Datatype *type)
{
    (void)type;
    const float *a = in;
    float *b = inout;
    for (int i = 0; i < *len; i++) b[i] = a[i] > b[i] || a[i] != a[i] ? a[i] : b[i];
}

static void op_min(void *in, void *inout, int *len, MPI_Datatype *type)
{
    (void)type;
    const float *a = in;
    float *b = inout;
    for (int i = 0; i < *len; i++) b[i] = a[i] < b[i] || a[i] != a[i] ? a[i] : b[i];
}

/* Waits for reqs[0..nreq), of which the first `ntok` receive the peers' tokens (peer of token
 * k: tok_peer[k]), polling so that the wait is bounded. On a timeout the layer is broken. */
static clt_status wait_reqs(clt__mpi *m, const char *what, uint32_t call, MPI_Request *reqs,
                            int nreq, const int *tok_peer, const uint32_t *tok_val, int ntok,
                            double timeout)
{
    double t0 = clt__now();
    int *idx = malloc((size_t)nreq * sizeof *idx);
    if (!idx) return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    int left = nreq, spins = 0;
    clt_status st = CLT_OK;
    while (left > 0) {
        int done = 0;
        int rc = MPI_Testsome(nreq, reqs, &done, idx, MPI_STATUSES_IGNORE);
        if (rc != MPI_SUCCESS) {
            st = fail_mpi(rc, what);
            break;
        }
        if (done == MPI_UNDEFINED) break;   /* every request inactive */
        left -= done;
        for (int i = 0; i < done; i++)
            if (idx[i] < ntok && tok_val[idx[i]] != call) {
                int q = tok_peer[idx[i]];
                st = clt__fail(CLT_ERR_STATE,
                               "%s on process %d (%s): process %d (%s) is at its call %u of this "
                               "kind, this one at %u: the processes do not make the same calls",
                               what, m->rank, m->hosts[m->rank], q, m->hosts[q],
                               (unsigned)tok_val[idx[i]], (unsigned)call);
            }
        if (st != CLT_OK) break;
        if (left == 0) break;
        if (done == 0 && ++spins > 64) sched_yield();   /* leave the core to a peer */
        if (clt__now() - t0 > timeout) {
            char late[256] = "";
            size_t len = 0;
            for (int k = 0; k < ntok; k++)
                if (reqs[k] != MPI_REQUEST_NULL && len < sizeof late - 32)
                    len += (size_t)snprintf(late + len, sizeof late - len, "%s%d (%s)",
                                            len ? ", " : "", tok_peer[k], m->hosts[tok_peer[k]]);
            if (!tok_val)
                st = clt__fail(CLT_ERR_TIMEOUT, "%s on process %d (%s): the other processes did "
                               "not join within %g s", what, m->rank, m->hosts[m->rank], timeout);
            else if (len)
                st = clt__fail(CLT_ERR_TIMEOUT,
                               "%s on process %d (%s): process(es) %s did not reach call %u "
                               "within %g s (stopped, hung or died)",
                               what, m->rank, m->hosts[m->rank], late, (unsigned)call, timeout);
            else
                st = clt__fail(CLT_ERR_TIMEOUT,
                               "%s on process %d (%s): every process reached call %u but it did "
                               "not complete within %g s",
                               what, m->rank, m->hosts[m->rank], (unsigned)call, timeout);
            snprintf(m->broken_msg, sizeof m->broken_msg, "%s", clt_last_error());
            atomic_store(&m->broken, true);
            break;
        }
    }
    free(idx);
    return st;
}

typedef struct {
    MPI_Request *reqs;
    int *peer;
    uint32_t *val;          /* the tokens received */
    uint32_t mine;
    int ntok;
} tokens;

/* Posts this call's tokens on comm: receives from every peer first, then the sends; the
 * collective's request goes at reqs[2 * (size - 1)]. */
static clt_status tokens_post(clt__mpi *m, MPI_Comm comm, uint32_t call, tokens *t, const char *what)
{
    int peers = m->size - 1;
    t->reqs = malloc((size_t)(2 * peers + 1) * sizeof *t->reqs);
    t->peer = malloc((size_t)(peers ? peers : 1) * sizeof *t->peer);
    t->val = malloc((size_t)(peers ? peers : 1) * sizeof *t->val);
    t->mine = call;
    t->ntok = peers;
    if (!t->reqs || !t->peer || !t->val) return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    for (int i = 0; i < 2 * peers + 1; i++) t->reqs[i] = MPI_REQUEST_NULL;
    int k = 0, rc = MPI_SUCCESS;
    for (int q = 0; q < m->size && rc == MPI_SUCCESS; q++) {
        if (q == m->rank) continue;
        t->peer[k] = q;
        rc = MPI_Irecv(&t->val[k], 1, MPI_UINT32_T, q, TOKEN_TAG, comm, &t->reqs[k]);
        k++;
    }
    for (int q = 0; q < m->size && rc == MPI_SUCCESS; q++) {
        if (q == m->rank) continue;
        rc = MPI_Isend(&t->mine, 1, MPI_UINT32_T, q, TOKEN_TAG, comm, &t->reqs[k++]);
    }
    return rc == MPI_SUCCESS ? CLT_OK : fail_mpi(rc, what);
}

static void tokens_free(tokens *t)
{
    free(t->reqs), free(t->peer), free(t->val);
}

static clt_status check_usable(clt__mpi *m, const char *what)
{
    if (atomic_load(&m->broken))
        return clt__fail(CLT_ERR_ABORTED, "%s: the runtime's MPI layer stopped after an earlier "
                         "failure (%s)", what, m->broken_msg);
    return CLT_OK;
}

/* Runs one non-blocking collective `start` on comm with tokens, bounded by timeout. */
typedef int (*start_fn)(void *arg, MPI_Comm comm, MPI_Request *req);

static clt_status run_bounded(clt__mpi *m, MPI_Comm comm, uint32_t *seq, const char *what,
                              start_fn start, void *arg, double timeout)
{
    clt_status st = check_usable(m, what);
    if (st != CLT_OK) return st;
    uint32_t call = ++*seq;
    tokens t = {0};
    st = tokens_post(m, comm, call, &t, what);
    int nreq = 2 * t.ntok + 1;
    if (st == CLT_OK) {
        int rc = start(arg, comm, &t.reqs[nreq - 1]);
        if (rc != MPI_SUCCESS) st = fail_mpi(rc, what);
    }
    /* Even after a failure the posted requests are waited for (or the layer is broken). */
    if (t.reqs) {
        clt_status w = wait_reqs(m, what, call, t.reqs, nreq, t.peer, t.val, t.ntok, timeout);
        if (st == CLT_OK) st = w;
    }
    if (st != CLT_OK && !atomic_load(&m->broken)) {
        snprintf(m->broken_msg, sizeof m->broken_msg, "%s", clt_last_error());
        atomic_store(&m->broken, true);   /* the peers' state is unknown: stop here too */
    }
    tokens_free(&t);
    return st;
}

/* ---- the cross-process steps of the collectives -------------------------------------------- */

typedef struct {
    const void *send;
    void *recv;
    int count;
    MPI_Datatype type;
    MPI_Op op;
} coll_args;

static int start_allreduce(void *arg, MPI_Comm comm, MPI_Request *req)
{
    coll_args *a = arg;
    return MPI_Iallreduce(a->send, a->recv, a->count, a->type, a->op, comm, req);
}

static int start_reduce_scatter(void *arg, MPI_Comm comm, MPI_Request *req)
{
    coll_args *a = arg;
    return MPI_Ireduce_scatter_block(MPI_IN_PLACE, a->recv, a->count, MPI_FLOAT, a->op, comm, req);
}

static int start_all_gather(void *arg, MPI_Comm comm, MPI_Request *req)
{
    coll_args *a = arg;
    return MPI_Iallgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, a->recv, a->count, a->type, comm, req);
}

static clt_status lane_check(clt__mpi *m, int lane, size_t count, const char *what)
{
    CLT_ASSERT(lane >= 0 && lane < m->nlanes, CLT_ERR_STATE);
    if (count > (size_t)INT32_MAX)
        return clt__fail(CLT_ERR_INVALID_ARG, "%s: %zu floats per process exceed MPI's int count",
                         what, count);
    return CLT_OK;
}

/* ---- the shared-memory all-reduce (every process on one node) ------------------------------- */

static clt_status shm_fail(clt__mpi *m, clt_status st)
{
    snprintf(m->broken_msg, sizeof m->broken_msg, "%s", clt_last_error());
    atomic_store(&m->broken, true);
    return st;
}

/* Every process of the lane reaches the same point: this one's counter goes up, then each
 * other's is awaited, for at most `timeout` seconds (the late one is named). */
static clt_status shm_sync(clt__mpi *m, shm_lane *s, uint32_t call, double timeout)
{
    uint64_t e = ++s->syncs;
    atomic_store_explicit(s->arrived[m->rank], e, memory_order_release);
    double t0 = clt__now();
    for (int q = 0; q < m->size; q++) {
        int spins = 0;
        while (atomic_load_explicit(s->arrived[q], memory_order_acquire) < e) {
            if (++spins < 256) continue;
            sched_yield();   /* leave the core to the process we wait for */
            if ((spins & 255) == 0 && clt__now() - t0 > timeout)
                return shm_fail(m, clt__fail(CLT_ERR_TIMEOUT,
                                             "shared-memory all-reduce on process %d (%s): "
                                             "process(es) %d (%s) did not reach call %u within %g s "
                                             "(stopped, hung or died)", m->rank,
                                             m->hosts[m->rank], q, m->hosts[q], (unsigned)call,
                                             timeout));
        }
    }
    return CLT_OK;
}

static void free_data_window(shm_lane *s)
{
    if (s->cap) MPI_Win_free(&s->data);
    s->cap = 0;
}

/* Makes every process's halves hold at least count floats (a collective over the lane, at the
 * same call everywhere: every process passes the same count). */
static clt_status shm_reserve(clt__mpi *m, int lane, size_t count)
{
    shm_lane *s = &m->shm[lane];
    if (s->cap >= count) return CLT_OK;
    free_data_window(s);
    size_t want = (count + 4095) & ~(size_t)4095;
    float *mine;
    int rc = MPI_Win_allocate_shared((MPI_Aint)(2 * want * sizeof(float)), sizeof(float),
                                     MPI_INFO_NULL, m->lanes[lane], &mine, &s->data);
    if (rc != MPI_SUCCESS)
        return shm_fail(m, fail_mpi(rc, "MPI_Win_allocate_shared (shared-memory all-reduce)"));
    for (int q = 0; q < m->size; q++) {
        MPI_Aint size;
        int unit;
        MPI_Win_shared_query(s->data, q, &size, &unit, &s->base[q]);
    }
    s->cap = want;
    return CLT_OK;
}

static void shm_combine(float *out, const float *const *in, int n, size_t lo, size_t hi, clt_op op)
{
    for (size_t i = lo; i < hi; i++) {
        float acc = in[0][i];
        for (int q = 1; q < n; q++) {
            float v = in[q][i];
            if (op == CLT_OP_MAX) acc = v > acc || v != v ? v : acc;
            else if (op == CLT_OP_MIN) acc = v < acc || v != v ? v : acc;
            else acc += v;
        }
        out[i] = acc;
    }
}

static clt_status shm_allreduce(clt__mpi *m, int lane, const float *send, float *recv,
                                size_t count, clt_op op, double timeout)
{
    shm_lane *s = &m->shm[lane];
    uint32_t call = ++s->calls;
    clt_status st = CLT_OK;
    if (s->cap < count) {   /* everyone alive and past the last call's reads: then regrow */
        st = shm_sync(m, s, call, timeout);
        if (st == CLT_OK) st = shm_reserve(m, lane, count);
        if (st != CLT_OK) return st;
    }
    size_t half = (call & 1) ? s->cap : 0;
    float *stack[64];
    float **parts = m->size <= 64 ? stack : malloc((size_t)m->size * sizeof *parts);
    if (!parts) return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    for (int q = 0; q < m->size; q++) parts[q] = s->base[q] + half;
    float *mine = parts[m->rank];
    memcpy(mine, send, count * sizeof(float));
    st = shm_sync(m, s, call, timeout);
    /* this process's slice of everyone's, written over its own copy (only it reads that) */
    size_t q0 = count / (size_t)m->size, rem = count % (size_t)m->size;
#define SLICE_LO(p) ((size_t)(p) * q0 + ((size_t)(p) < rem ? (size_t)(p) : rem))
    if (st == CLT_OK)
        shm_combine(mine, (const float *const *)parts, m->size, SLICE_LO(m->rank),
                    SLICE_LO(m->rank + 1), op);
    if (st == CLT_OK) st = shm_sync(m, s, call, timeout);
    for (int q = 0; q < m->size && st == CLT_OK; q++)
        memcpy(recv + SLICE_LO(q), parts[q] + SLICE_LO(q), (SLICE_LO(q + 1) - SLICE_LO(q)) * sizeof(float));
#undef SLICE_LO
    if (parts != stack) free(parts);
    return st;
}

static MPI_Op mpi_op(const clt__mpi *m, clt_op op)
{
    return op == CLT_OP_MAX ? m->op_max : op == CLT_OP_MIN ? m->op_min : MPI_SUM;
}

static clt_status layer_allreduce(clt__mpi *m, int lane, const float *send, float *recv, size_t count,
                              clt_op op, double timeout)
{
    static const char what[] = "cross-process all-reduce";
    CLT_ASSERT(lane >= 0 && lane < m->nlanes, CLT_ERR_STATE);
    if (count == 0) return CLT_OK;   /* the lane's segment is empty in every process alike */
    if (m->shm) {
        clt_status st = check_usable(m, what);
        return st == CLT_OK ? shm_allreduce(m, lane, send, recv, count, op, timeout) : st;
    }
    MPI_Op mop = mpi_op(m, op);
    const size_t piece = (size_t)1 << 30;   /* MPI counts are ints */
    clt_status st = CLT_OK;
    for (size_t o = 0; o < count && st == CLT_OK; o += piece) {
        size_t len = count - o < piece ? count - o : piece;
        coll_args a = {send == recv ? MPI_IN_PLACE : (const void *)(send + o), recv + o, (int)len,
                       MPI_FLOAT, mop};
        st = run_bounded(m, m->lanes[lane], &m->seq[lane], what, start_allreduce, &a, timeout);
    }
    return st;
}


static clt_status layer_reduce_scatter(clt__mpi *m, int lane, float *buf, size_t count, clt_op op,
                                   double timeout)
{
    static const char what[] = "cross-process reduce-scatter";
    clt_status st = lane_check(m, lane, count, what);
    if (st != CLT_OK) return st;
    coll_args a = {NULL, buf, (int)count, MPI_FLOAT, mpi_op(m, op)};
    return run_bounded(m, m->lanes[lane], &m->seq[lane], what, start_reduce_scatter, &a, timeout);
}

static clt_status layer_all_gather(clt__mpi *m, int lane, float *buf, size_t count, double timeout)
{
    static const char what[] = "cross-process all-gather";
    clt_status st = lane_check(m, lane, count, what);
    if (st != CLT_OK) return st;
    coll_args a = {NULL, buf, (int)count, MPI_FLOAT, MPI_SUM};
    return run_bounded(m, m->lanes[lane], &m->seq[lane], what, start_all_gather, &a, timeout);
}

/* ---- the trainer's host-side exchanges ------------------------------------------------------ */

static clt_status layer_gather_doubles(clt__mpi *m, const double *mine, int k, double *all)
{
    memcpy(all + (size_t)m->rank * (size_t)k, mine, (size_t)k * sizeof *all);
    coll_args a = {NULL, all, k, MPI_DOUBLE, MPI_SUM};
    return run_bounded(m, m->host, &m->seq[m->nlanes], "exchanging losses across processes",
                       start_all_gather, &a, HOST_TIMEOUT);
}

static clt_status layer_sum_floats(clt__mpi *m, float *buf, size_t count)
{
    const size_t piece = (size_t)1 << 30;   /* MPI counts are ints */
    clt_status st = CLT_OK;
    for (size_t o = 0; o < count && st == CLT_OK; o += piece) {
        coll_args a = {MPI_IN_PLACE, buf + o, (int)(count - o < piece ? count - o : piece),
                       MPI_FLOAT, MPI_SUM};
        st = run_bounded(m, m->host, &m->seq[m->nlanes], "adding parts across processes",
                         start_allreduce, &a, HOST_TIMEOUT);
    }
    return st;
}

typedef struct {
    float *buf;
    int *counts, *displs;
} rows_args;

static int start_rows(void *arg, MPI_Comm comm, MPI_Request *req)
{
    rows_args *a = arg;
    return MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, a->buf, a->counts, a->displs,
                           MPI_FLOAT, comm, req);
}

static clt_status layer_gather_rows(clt__mpi *m, float *buf, const size_t *counts)
{
    static const char what[] = "gathering outputs across processes";
    int *c = malloc((size_t)m->size * sizeof *c), *d = malloc((size_t)m->size * sizeof *d);
    clt_status st = c && d ? CLT_OK : clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    size_t at = 0;
    for (int q = 0; q < m->size && st == CLT_OK; q++) {
        if (counts[q] > (size_t)INT32_MAX || at > (size_t)INT32_MAX)
            st = clt__fail(CLT_ERR_INVALID_ARG, "%s: more floats than MPI's int counts", what);
        else
            c[q] = (int)counts[q], d[q] = (int)at;
        at += counts[q];
    }
    rows_args a = {buf, c, d};
    if (st == CLT_OK)
        st = run_bounded(m, m->host, &m->seq[m->nlanes], what, start_rows, &a, HOST_TIMEOUT);
    free(c), free(d);
    return st;
}

/* ---- opening and closing ------------------------------------------------------------------- */

static bool g_we_initialised;

static void finalize_at_exit(void)
{
    int fin = 0;
    MPI_Finalized(&fin);
    if (!fin) MPI_Finalize();
}

/* A bounded vote over the host comm at close: -1 when not every process answered (one died
 * or hangs), else whether every process's layer is intact. */
static int vote_intact(clt__mpi *m)
{
    if (m->host == MPI_COMM_NULL) return -1;
    int mine = !atomic_load(&m->broken), all = 0;
    MPI_Request req;
    if (MPI_Iallreduce(&mine, &all, 1, MPI_INT, MPI_LAND, m->host, &req) != MPI_SUCCESS) return -1;
    if (wait_reqs(m, "closing the MPI layer", 0, &req, 1, NULL, NULL, 0, 30.0) != CLT_OK) return -1;
    return all;
}

static void layer_close(clt__mpi *m)
{
    if (!m) return;
    int fin = 0;
    MPI_Finalized(&fin);
    int vote = fin ? -1 : m->shm ? vote_intact(m) : !atomic_load(&m->broken);
    /* MPI_Win_free waits for every process: with all of them here the windows go, in lane order
     * (left to MPI_Finalize, they would go in each process's creation order, which the lanes'
     * threads race for). The shared path leaves no MPI request behind, even after a failure. */
    for (int r = 0; r < m->nlanes && m->shm && vote >= 0; r++) {
        free_data_window(&m->shm[r]);
        if (m->shm[r].flags != MPI_WIN_NULL) MPI_Win_free(&m->shm[r].flags);
    }
    /* a broken comm may have requests that never end */
    if (vote == 1) {
        for (int r = 0; r < m->nlanes && m->lanes; r++)
            if (m->lanes[r] != MPI_COMM_NULL) MPI_Comm_free(&m->lanes[r]);
        if (m->host != MPI_COMM_NULL) MPI_Comm_free(&m->host);
        if (m->op_max != MPI_OP_NULL) MPI_Op_free(&m->op_max);
        if (m->op_min != MPI_OP_NULL) MPI_Op_free(&m->op_min);
    }
    for (int r = 0; r < m->nlanes && m->shm; r++) free(m->shm[r].base), free(m->shm[r].arrived);
    free(m->lanes), free(m->seq), free(m->hosts), free(m->shm);
    free(m);
}

static clt_status wait_plain(clt__mpi *m, MPI_Request *reqs, int n, const char *what)
{
    /* before the processes are known, no tokens: a bounded wait on the requests alone */
    return wait_reqs(m, what, 0, reqs, n, NULL, NULL, 0, HOST_TIMEOUT);
}

/* With every process on this node: each lane's flag window (its data window comes with the
 * first call). MPI_Comm_split_type is a blocking collective; every process is known alive. */
static clt_status shm_open_lanes(clt__mpi *m)
{
    MPI_Comm node;
    int rc = MPI_Comm_split_type(m->host, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
    if (rc != MPI_SUCCESS) return fail_mpi(rc, "MPI_Comm_split_type");
    int here = 0;
    MPI_Comm_size(node, &here);
    MPI_Comm_free(&node);
    if (here != m->size) return CLT_OK;   /* several nodes: MPI's own messages */
    m->shm = calloc((size_t)m->nlanes, sizeof *m->shm);
    if (!m->shm) return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    for (int r = 0; r < m->nlanes; r++) m->shm[r].flags = MPI_WIN_NULL;
    for (int r = 0; r < m->nlanes; r++) {
        shm_lane *s = &m->shm[r];
        s->base = calloc((size_t)m->size, sizeof *s->base);
        s->arrived = calloc((size_t)m->size, sizeof *s->arrived);
        if (!s->base || !s->arrived) return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
        _Atomic uint64_t *mine;
        rc = MPI_Win_allocate_shared(64, sizeof(uint64_t), MPI_INFO_NULL, m->lanes[r], &mine, &s->flags);
        if (rc != MPI_SUCCESS) return fail_mpi(rc, "MPI_Win_allocate_shared (arrival counters)");
        atomic_init(mine, 0);
        for (int q = 0; q < m->size; q++) {
            MPI_Aint size;
            int unit;
            MPI_Win_shared_query(s->flags, q, &size, &unit, &s->arrived[q]);
        }
    }
    /* every counter is zero before anyone counts */
    rc = MPI_Barrier(m->host);
    return rc == MPI_SUCCESS ? CLT_OK : fail_mpi(rc, "MPI_Barrier");
}

/* Joins the runtime to comm: every process's device count must match. */
static clt_status attach(clt_runtime *rt, MPI_Comm comm)
{
    static const char what[] = "clt_runtime_create (MPI)";
    int init = 0, fin = 0, level = MPI_THREAD_SINGLE;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    if (!init || fin)
        return clt__fail(CLT_ERR_UNSUPPORTED, "%s: MPI is %s", what,
                         fin ? "already finalised" : "not initialised (call MPI_Init_thread first)");
    MPI_Query_thread(&level);
    if (level < MPI_THREAD_MULTIPLE)
        return clt__fail(CLT_ERR_UNSUPPORTED,
                         "%s: MPI was initialised with thread level %d; cltrain's worker threads "
                         "call MPI at once and need MPI_THREAD_MULTIPLE (%d): pass it to "
                         "MPI_Init_thread (and use an MPI library that provides it)",
                         what, level, MPI_THREAD_MULTIPLE);
    if (comm == MPI_COMM_NULL) return clt__fail(CLT_ERR_INVALID_ARG, "%s: comm is MPI_COMM_NULL", what);
    clt__mpi *m = calloc(1, sizeof *m);
    if (!m) return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    m->host = MPI_COMM_NULL;
    m->op_max = m->op_min = MPI_OP_NULL;
    atomic_init(&m->broken, false);
    MPI_Comm_rank(comm, &m->rank);
    MPI_Comm_size(comm, &m->size);
    int n = rt->nworkers;
    m->nlanes = n;
    m->lanes = malloc((size_t)n * sizeof *m->lanes);
    m->seq = calloc((size_t)n + 1, sizeof *m->seq);
    m->hosts = calloc((size_t)m->size, sizeof *m->hosts);
    int *ndev = calloc(2 * (size_t)m->size, sizeof *ndev);   /* devices, shared memory wanted */
    clt_status st = m->lanes && m->seq && m->hosts && ndev
                        ? CLT_OK
                        : clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    for (int r = 0; r < n && m->lanes; r++) m->lanes[r] = MPI_COMM_NULL;
    rt->mpi = m;   /* clt_runtime_destroy closes it, even half made */
    rt->mpi_ops = &layer_ops;
    if (st != CLT_OK) {
        free(ndev);
        return st;
    }
    char name[MPI_MAX_PROCESSOR_NAME];
    int len = 0;
    MPI_Get_processor_name(name, &len);
    name[HOST_NAME - 1] = '\0';   /* kept short for messages */
    memcpy(m->hosts[m->rank], name, strlen(name) + 1);
    const char *shm_env = getenv("CLT_MPI_SHM");
    ndev[2 * m->rank] = n;
    ndev[2 * m->rank + 1] = !(shm_env && !strcmp(shm_env, "0"));
    MPI_Request reqs[2];
    int rc = MPI_Iallgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, ndev, 2, MPI_INT, comm, &reqs[0]);
    if (rc == MPI_SUCCESS)
        rc = MPI_Iallgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, m->hosts, HOST_NAME, MPI_CHAR,
                            comm, &reqs[1]);
    if (rc != MPI_SUCCESS) st = fail_mpi(rc, what);
    if (st == CLT_OK) st = wait_plain(m, reqs, 2, what);
    bool shm_wanted = true;
    for (int q = 0; q < m->size && st == CLT_OK; q++) {
        shm_wanted &= ndev[2 * q + 1] != 0;
        if (ndev[2 * q] != n)
            st = clt__fail(CLT_ERR_INVALID_ARG,
                           "%s: process %d (%s) opened %d device(s), process %d (%s) %d: every "
                           "process needs the same number", what, q, m->hosts[q], ndev[2 * q],
                           m->rank, m->hosts[m->rank], n);
    }
    free(ndev);
    /* One duplicate per lane and one for the host: the calls on each never meet another's. */
    MPI_Request *dup = st == CLT_OK ? malloc((size_t)(n + 1) * sizeof *dup) : NULL;
    if (st == CLT_OK && !dup) st = clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    int posted = 0;
    for (int r = 0; r <= n && st == CLT_OK; r++) {
        rc = MPI_Comm_idup(comm, r < n ? &m->lanes[r] : &m->host, &dup[r]);
        if (rc != MPI_SUCCESS) st = fail_mpi(rc, what);
        else posted++;
    }
    if (posted) {
        clt_status w = wait_plain(m, dup, posted, what);
        if (st == CLT_OK) st = w;
    }
    free(dup);
    for (int r = 0; r < n && st == CLT_OK; r++) MPI_Comm_set_errhandler(m->lanes[r], MPI_ERRORS_RETURN);
    if (st == CLT_OK) MPI_Comm_set_errhandler(m->host, MPI_ERRORS_RETURN);
    if (st == CLT_OK && (MPI_Op_create(op_max, 1, &m->op_max) != MPI_SUCCESS ||
                         MPI_Op_create(op_min, 1, &m->op_min) != MPI_SUCCESS))
        st = clt__fail(CLT_ERR_STATE, "%s: MPI_Op_create failed", what);
    if (st == CLT_OK && shm_wanted && m->size > 1) st = shm_open_lanes(m);
    if (st == CLT_OK)
        clt__log(CLT_LOG_INFO, "MPI: process %d of %d (%s), %d device(s) each, all-reduce %s", m->rank,
                 m->size, m->hosts[m->rank], n, m->shm ? "through shared memory" : "by MPI");
    return st;
}

static clt_status layer_attach_world(clt_runtime *rt)
{
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    if (fin)
        return clt__fail(CLT_ERR_UNSUPPORTED, "clt_runtime_create: opts.mpi: MPI was already "
                         "finalised in this process");
    if (!init) {
        int provided = MPI_THREAD_SINGLE;
        int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_MULTIPLE, &provided);
        if (rc != MPI_SUCCESS) return fail_mpi(rc, "clt_runtime_create: MPI_Init_thread");
        if (!g_we_initialised) atexit(finalize_at_exit);
        g_we_initialised = true;
    }
    return attach(rt, MPI_COMM_WORLD);
}

clt_status clt_runtime_create_mpi(clt_runtime **out, const clt_runtime_options *opts, MPI_Comm comm)
{
    if (!out) return clt__fail(CLT_ERR_INVALID_ARG, "clt_runtime_create_mpi: out is NULL");
    *out = NULL;
    clt_runtime_options o = clt_runtime_options_default();
    clt_status rst = clt__options_read(&o, opts, sizeof o, CLT__RUNTIME_OPTIONS_V1, "clt_runtime_create_mpi",
                                       "clt_runtime_options");
    if (rst != CLT_OK) return rst;
    o.mpi = 0;
    clt_runtime *rt;
    clt_status st = clt_runtime_create_ex(&rt, &o);
    if (st != CLT_OK) return st;
    st = attach(rt, comm);
    if (st != CLT_OK) {
        clt_runtime_destroy(rt);
        return st;
    }
    *out = rt;
    return CLT_OK;
}

static const clt__mpi_ops layer_ops = {
    .version = PACKAGE_VERSION,
    .attach_world = layer_attach_world,
    .close = layer_close,
    .size = layer_size,
    .rank = layer_rank,
    .allreduce = layer_allreduce,
    .reduce_scatter = layer_reduce_scatter,
    .all_gather = layer_all_gather,
    .gather_doubles = layer_gather_doubles,
    .gather_rows = layer_gather_rows,
    .sum_floats = layer_sum_floats,
};

const clt__mpi_ops *clt__mpi_layer(void) { return &layer_ops; }

/* Hands the table down to the runtime as soon as the layer is in the process, linked in or
 * loaded: the runtime, a layer below, never names a symbol of this one. */
__attribute__((constructor)) static void register_layer(void) { clt__mpi_register(&layer_ops); }
