/* Device-to-device copies for model parallelism: clEnqueueCopyBuffer inside one context,
 * otherwise through the sender's pinned host staging, chunk by chunk, each side on its own
 * worker thread (see the transfer section of internal.h for the contract). */
#include "internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHUNK_FLOATS_DEFAULT ((size_t)1 << 18)   /* 1 MiB */
#define TIMEOUT_DEFAULT 300.0

struct clt__xfer_group {
    pthread_mutex_t lock;     /* guards every link's ready[] and the abort fields */
    pthread_cond_t cv;        /* a message progressed, or the group aborted */
    double timeout;
    bool aborted;
    int abort_dev;
    clt_status abort_status;
    char abort_msg[1024];
};

struct clt__link {
    clt__xfer_group *g;
    clt__worker *from, *to;
    bool direct;              /* one context: the receiver copies from the sender's buffer */
    size_t cap, chunk;        /* floats */
    int slots;
    uint64_t *ready;          /* per slot: tag << 32 | chunks posted (direct: 1 when queued) */
    /* direct: what the receiver copies from, and the sender's marker behind the data */
    cl_mem *src_mem;
    size_t *src_off;
    cl_event *ev;
    /* staged: the sender's pinned buffer, mapped */
    cl_mem staging;
    float *host;
};

/* ---- the group ------------------------------------------------------------------------------ */

clt_status clt__xfer_group_create(clt__xfer_group **out, double timeout_s)
{
    *out = NULL;
    clt__xfer_group *g = calloc(1, sizeof *g);
    if (!g) return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->cv, &attr);
    pthread_condattr_destroy(&attr);
    g->timeout = timeout_s > 0 ? timeout_s : TIMEOUT_DEFAULT;
    *out = g;
    return CLT_OK;
}

void clt__xfer_group_destroy(clt__xfer_group *g)
{
    if (!g) return;
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->lock);
    free(g);
}

void clt__xfer_group_abort(clt__xfer_group *g, int device, clt_status st, const char *msg)
{
    pthread_mutex_lock(&g->lock);
    if (!g->aborted) {
        g->aborted = true;
        g->abort_dev = device;
        g->abort_status = st;
        snprintf(g->abort_msg, sizeof g->abort_msg, "%s", msg ? msg : clt_status_str(st));
    }
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->lock);
}

void clt__xfer_group_reset(clt__xfer_group *g)
{
    pthread_mutex_lock(&g->lock);
    g->aborted = false;
    pthread_mutex_unlock(&g->lock);
}

/* ---- links ---------------------------------------------------------------------------------- */

clt_status clt__link_create(clt__link **out, clt__xfer_group *g, clt__worker *from,
                            clt__worker *to, size_t cap, int slots, size_t chunk_floats)
{
    *out = NULL;
    CLT_ASSERT(g && from && to && slots > 0, CLT_ERR_STATE);
    clt__link *l = calloc(1, sizeof *l);
    if (!l) return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    l->g = g;
    l->from = from;
    l->to = to;
    l->direct = from->context == to->context;
    l->cap = cap;
    l->chunk = chunk_floats ? chunk_floats : CHUNK_FLOATS_DEFAULT;
    l->slots = slots;
    l->ready = calloc((size_t)slots, sizeof *l->ready);
    bool ok = l->ready != NULL;
    if (l->direct) {
        l->src_mem = calloc((size_t)slots, sizeof *l->src_mem);
        l->src_off = calloc((size_t)slots, sizeof *l->src_off);
        l->ev = calloc((size_t)slots, sizeof *l->ev);
        ok = ok && l->src_mem && l->src_off && l->ev;
    }
    if (!ok) {
        clt__link_destroy(l);
        return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    }
    *out = l;
    return CLT_OK;
}

static clt_status release_staging(clt__worker *w, void *arg)
{
    clt__link *l = arg;
    clEnqueueUnmapMemObject(w->queue, l->staging, l->host, 0, NULL, NULL);
    clFinish(w->queue);
    clReleaseMemObject(l->staging);
    l->staging = NULL;
    l->host = NULL;
    return CLT_OK;
}

void clt__link_destroy(clt__link *l)
{
    if (!l) return;
    if (l->staging)   /* unmapping needs the sender's queue, so its thread */
        clt__worker_call(l->from, release_staging, l);
    for (int i = 0; l->ev && i < l->slots; i++)
        if (l->ev[i]) clReleaseEvent(l->ev[i]);
    free(l->ev), free(l->src_mem), free(l->src_off), free(l->ready);
    free(l);
}

bool clt__link_direct(const clt__link *l) { return l->direct; }

static clt_status aborted_error(const clt__link *l, const char *side)
{
    clt__xfer_group *g = l->g;   /* called with g->lock held */
    return clt__fail(CLT_ERR_ABORTED, "%s on device %d (%s) stopped: device %d failed: %s", side,
                     l->to->index, clt__worker_name(l->to), g->abort_dev, g->abort_msg);
}

static void post(clt__link *l, int slot, uint64_t value)
{
    pthread_mutex_lock(&l->g->lock);
    l->ready[slot] = value;
    pthread_cond_broadcast(&l->g->cv);
    pthread_mutex_unlock(&l->g->lock);
}

/* Waits until the sender posted `target` for the slot, the group aborts, or the timeout. */
static clt_status wait_ready(clt__link *l, int slot, uint64_t target)
{
    clt__xfer_group *g = l->g;
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    double whole = floor(g->timeout);
    until.tv_sec += (time_t)whole;
    until.tv_nsec += (long)((g->timeout - whole) * 1e9);
    if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
    int rc = 0;
    clt_status st = CLT_OK;
    pthread_mutex_lock(&g->lock);
    while (l->ready[slot] < target && !g->aborted && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&g->cv, &g->lock, &until);
    if (l->ready[slot] >= target)
        st = CLT_OK;
    else if (g->aborted)
        st = aborted_error(l, "receiving");
    else
        st = clt__fail(CLT_ERR_TIMEOUT, "receiving on device %d (%s): device %d (%s) sent nothing "
                       "for %g s (message %d of call %u)", l->to->index, clt__worker_name(l->to),
                       l->from->index, clt__worker_name(l->from), g->timeout, slot,
                       (unsigned)(target >> 32));
    pthread_mutex_unlock(&g->lock);
    return st;
}

static clt_status ensure_staging(clt__link *l)
{
    if (l->staging) return CLT_OK;
    clt__worker *w = l->from;
    size_t bytes = (l->cap ? l->cap : 1) * sizeof(float);
    cl_int err;
    cl_mem m = clCreateBuffer(w->context, CL_MEM_READ_WRITE | CL_MEM_ALLOC_HOST_PTR, bytes, NULL, &err);
    if (err != CL_SUCCESS) return clt__fail_cl(err, clt__worker_name(w), "clCreateBuffer (transfer staging)");
    void *p = clEnqueueMapBuffer(w->queue, m, CL_TRUE, CL_MAP_READ | CL_MAP_WRITE, 0, bytes, 0,
                                 NULL, NULL, &err);
    if (err != CL_SUCCESS) {
        clReleaseMemObject(m);
        return clt__fail_cl(err, clt__worker_name(w), "clEnqueueMapBuffer (transfer staging)");
    }
    l->staging = m;
    l->host = p;
    return CLT_OK;
}

static clt_status check_message(const clt__link *l, int slot, size_t at, size_t count)
{
    CLT_ASSERT(slot >= 0 && slot < l->slots && at <= l->cap && count <= l->cap - at, CLT_ERR_STATE);
    return CLT_OK;
}

/* Staged send: every chunk's read is queued at once, then posted as each one lands, so the
 * device reads chunk k+1 while the receiver's worker writes chunk k. */
static clt_status send_staged(clt__link *l, uint64_t tag, int slot, size_t at, clt__view src,
                              size_t count)
{
    clt__worker *w = l->from;
    clt_status st = ensure_staging(l);
    if (st != CLT_OK) return st;
    size_t n = (count + l->chunk - 1) / l->chunk;
    cl_event *ev = calloc(n, sizeof *ev);
    if (!ev) return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    for (size_t k = 0; k < n && st == CLT_OK; k++) {
        size_t off = k * l->chunk, len = count - off < l->chunk ? count - off : l->chunk;
        cl_int err = clEnqueueReadBuffer(w->queue, src.mem, CL_FALSE, (src.off + off) * sizeof(float),
                                         len * sizeof(float), l->host + at + off, 0, NULL, &ev[k]);
        if (err != CL_SUCCESS) st = clt__fail_cl(err, clt__worker_name(w), "clEnqueueReadBuffer (transfer)");
    }
    clFlush(w->queue);
    for (size_t k = 0; k < n; k++) {
        if (!ev[k]) continue;
        cl_int err = clWaitForEvents(1, &ev[k]);
        clReleaseEvent(ev[k]);
        if (st == CLT_OK && err != CL_SUCCESS)
            st = clt__fail_cl(err, clt__worker_name(w), "device-to-host copy (transfer)");
        if (st == CLT_OK) post(l, slot, tag | (k + 1));
    }
    free(ev);
    return st;
}

clt_status clt__link_send(clt__link *l, uint32_t tag, int slot, size_t at, clt__view src,
                          size_t count)
{
    clt_status st = check_message(l, slot, at, count);
    if (st != CLT_OK || count == 0) return st;
    uint64_t t = (uint64_t)tag << 32;
    if (!l->direct) return send_staged(l, t, slot, at, src, count);
    clt__worker *w = l->from;
    /* Queue order across the two devices: the receiver's copy waits for this marker (behind
     * the kernels that wrote src); the sender writes this slot's source again only after the
     * receiver has answered for the last message in it (a pipeline reuses a slot after that
     * micro-batch's backward, which the receiver's in-order queue runs after its copy; a
     * forward-only run drains every queue between rounds), so the last tag's copy is done. */
    if (l->ev[slot]) clReleaseEvent(l->ev[slot]);
    l->ev[slot] = NULL;
    cl_int err = clEnqueueMarkerWithWaitList(w->queue, 0, NULL, &l->ev[slot]);
    if (err == CL_SUCCESS) err = clFlush(w->queue);
    if (err != CL_SUCCESS) return clt__fail_cl(err, clt__worker_name(w), "clEnqueueMarkerWithWaitList (transfer)");
    l->src_mem[slot] = src.mem;
    l->src_off[slot] = src.off;
    post(l, slot, t | 1);   /* the lock publishes the fields above to the receiver */
    return CLT_OK;
}

clt_status clt__link_recv(clt__link *l, uint32_t tag, int slot, size_t at, clt__view dst,
                          size_t count)
{
    clt_status st = check_message(l, slot, at, count);
    if (st != CLT_OK || count == 0) return st;
    uint64_t t = (uint64_t)tag << 32;
    clt__worker *w = l->to;
    if (l->direct) {
        st = wait_ready(l, slot, t | 1);
        if (st != CLT_OK) return st;
        /* OpenCL lets a queue read another device's buffer and wait on another queue's event
         * inside one context. */
        cl_int err = clEnqueueCopyBuffer(w->queue, l->src_mem[slot], dst.mem,
                                         l->src_off[slot] * sizeof(float), dst.off * sizeof(float),
                                         count * sizeof(float), 1, &l->ev[slot], clt__worker_event(w));
        if (err != CL_SUCCESS) return clt__fail_cl(err, clt__worker_name(w), "clEnqueueCopyBuffer (transfer)");
        clt__worker_record(w, CLT__EV_TRANSFER);
        return CLT_OK;
    }
    size_t n = (count + l->chunk - 1) / l->chunk;
    for (size_t k = 0; k < n && st == CLT_OK; k++) {
        st = wait_ready(l, slot, t | (k + 1));
        if (st != CLT_OK) break;
        size_t off = k * l->chunk, len = count - off < l->chunk ? count - off : l->chunk;
        /* Non-blocking: the staging rows stay as they are until this queue has drained. */
        cl_int err = clEnqueueWriteBuffer(w->queue, dst.mem, CL_FALSE, (dst.off + off) * sizeof(float),
                                          len * sizeof(float), l->host + at + off, 0, NULL,
                                          clt__worker_event(w));
        if (err != CL_SUCCESS) st = clt__fail_cl(err, clt__worker_name(w), "clEnqueueWriteBuffer (transfer)");
        else clt__worker_record(w, CLT__EV_TRANSFER);
    }
    if (n) clFlush(w->queue);
    return st;
}
