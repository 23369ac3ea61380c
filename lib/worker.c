/* One host thread per runtime device: it owns the device's queue and kernels, and runs the
 * tasks other threads submit to it, in order. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static _Thread_local clt__worker *self;

clt__worker *clt__worker_self(void) { return self; }

static void run_task(clt__worker *w, clt__task *t)
{
    clt__error_clear();
    t->status = t->fn(w, t->arg);
    if (t->status != CLT_OK) {
        const char *msg = clt_last_error();
        t->message = strdup(*msg ? msg : clt_status_str(t->status));
    }
}

static void *worker_main(void *arg)
{
    clt__worker *w = arg;
    self = w;
    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (!w->head && !w->stop) pthread_cond_wait(&w->wake, &w->lock);
        clt__task *t = w->head;
        if (!t) break;   /* stop asked and nothing left */
        w->head = t->next;
        if (!w->head) w->tail = NULL;
        pthread_mutex_unlock(&w->lock);

        run_task(w, t);

        pthread_mutex_lock(&w->lock);
        t->done = true;
        pthread_cond_broadcast(&w->done);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

void clt__worker_submit(clt__worker *w, clt__task *t, clt__task_fn fn, void *arg)
{
    t->fn = fn;
    t->arg = arg;
    t->status = CLT_OK;
    t->message = NULL;
    t->done = false;
    t->next = NULL;
    if (self == w) {   /* a task submitting to its own worker would wait on itself forever */
        run_task(w, t);
        t->done = true;
        return;
    }
    pthread_mutex_lock(&w->lock);
    if (w->tail)
        w->tail->next = t;
    else
        w->head = t;
    w->tail = t;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
}

clt_status clt__worker_wait(clt__worker *w, clt__task *t)
{
    /* always under the lock, even when done already: the lock is what orders the worker's
     * writes (status, message, what the task wrote to its argument) before this thread's reads
     * (ThreadSanitizer found the unlocked shortcut) */
    pthread_mutex_lock(&w->lock);
    while (!t->done) pthread_cond_wait(&w->done, &w->lock);
    pthread_mutex_unlock(&w->lock);
    if (t->status != CLT_OK) {
        clt__error_set_message(t->message ? t->message : clt_status_str(t->status));
        free(t->message);
        t->message = NULL;
    }
    return t->status;
}

clt_status clt__worker_call(clt__worker *w, clt__task_fn fn, void *arg)
{
    clt__task t;
    clt__worker_submit(w, &t, fn, arg);
    return clt__worker_wait(w, &t);
}

/* Reads this worker's factor from CLT_SLOW_DEVICES ("1:2.5,3:4"); malformed entries are
 * ignored with a warning: it is a benchmarking aid, not an interface. */
static double slowdown_for(int index)
{
    const char *e = getenv("CLT_SLOW_DEVICES");
    double f = 1.0;
    for (const char *p = e; p && *p;) {
        int d;
        double v;
        int used = 0;
        if (sscanf(p, "%d:%lf%n", &d, &v, &used) == 2 && v >= 1.0 && v < 1000.0) {
            if (d == index) f = v;
        } else {
            clt__log(CLT_LOG_WARN, "CLT_SLOW_DEVICES: cannot read '%s' (want D:F with F >= 1)", p);
            break;
        }
        p += used;
        if (*p == ',') p++;
    }
    if (f > 1.0) clt__log(CLT_LOG_INFO, "device %d is slowed %.2f times (CLT_SLOW_DEVICES)", index, f);
    return f;
}

typedef struct {
    bool profiling;
} start_args;

static clt_status worker_init(clt__worker *w, void *arg)
{
    const start_args *a = arg;
    cl_int err;
    cl_command_queue_properties props = a->profiling ? CL_QUEUE_PROFILING_ENABLE : 0;
    w->queue = clCreateCommandQueue(w->context, w->dev->device, props, &err);
    if (err != CL_SUCCESS) {
        w->queue = NULL;
        return clt__fail_cl(err, clt__worker_name(w), "clCreateCommandQueue");
    }
    w->profiling = a->profiling;
    w->slowdown = slowdown_for(w->index);
    const char *clock = getenv("CLT_SLOW_CLOCK");
    w->row_clock = clock && !strcmp(clock, "rows");
    return w->hooks && w->hooks->init ? w->hooks->init(w, NULL) : CLT_OK;
}

/* Profiled commands: an event slot is handed out, then kept with its kind until collected. */
cl_event *clt__worker_event(clt__worker *w)
{
    if (!w->profiling) return NULL;
    if (w->nevents == w->events_cap) {
        clt__worker_collect(w);   /* bounded memory: fold finished events in first */
        if (w->nevents == w->events_cap) {
            size_t nc = w->events_cap ? w->events_cap * 2 : 256;
            cl_event *e = realloc(w->events, nc * sizeof *e);
            if (!e) return NULL;
            w->events = e;
            int *k = realloc(w->event_kinds, nc * sizeof *k);
            if (!k) return NULL;
            w->event_kinds = k;
            const char **nm = realloc(w->event_names, nc * sizeof *nm);
            if (!nm) return NULL;
            w->event_names = nm;
            w->events_cap = nc;
        }
    }
    w->events[w->nevents] = NULL;
    return &w->events[w->nevents];
}

void clt__worker_record_named(clt__worker *w, int kind, const char *name)
{
    if (!w->profiling || w->nevents == w->events_cap || !w->events[w->nevents]) return;
    w->event_names[w->nevents] = name;
    w->event_kinds[w->nevents++] = kind;
}

void clt__worker_record(clt__worker *w, int kind)
{
    clt__worker_record_named(w, kind, kind == CLT__EV_TRANSFER ? "transfer" : "kernel");
}

/* Appends to the timeline, up to a million events a device (then counts what it drops). */
static void trace_push(clt__worker *w, const char *name, int cat, double ts, double dur)
{
    clt__trace_buf *b = w->trace;
    if (b->n == b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 4096;
        clt__trace_event *e = nc <= (1u << 20) ? realloc(b->ev, nc * sizeof *e) : NULL;
        if (!e) {
            b->dropped++;
            return;
        }
        b->ev = e;
        b->cap = nc;
    }
    b->ev[b->n++] = (clt__trace_event){name, cat, ts, dur};
}

void clt__worker_span(clt__worker *w, const char *name, double t0, double t1)
{
    if (w->trace) trace_push(w, name, CLT__EV_HOST, t0, t1 - t0);
}

void clt__worker_mark(clt__worker *w)
{
    if (!w->profiling) return;
    if (clEnqueueMarkerWithWaitList(w->queue, 0, NULL, clt__worker_event(w)) == CL_SUCCESS)
        clt__worker_record(w, CLT__EV_MARK);
}

static bool profile_times(cl_event e, cl_ulong *t0, cl_ulong *t1)
{
    return clGetEventProfilingInfo(e, CL_PROFILING_COMMAND_START, sizeof *t0, t0, NULL) == CL_SUCCESS &&
           clGetEventProfilingInfo(e, CL_PROFILING_COMMAND_END, sizeof *t1, t1, NULL) == CL_SUCCESS &&
           *t1 >= *t0;
}

void clt__worker_collect(clt__worker *w)
{
    if (w->nevents == 0) return;   /* profiling off: the arrays may not even exist */
    size_t done = 0;
    cl_ulong span_start = 0;
    /* The queue runs in order: stop at the first command not complete, keep it and the rest. */
    for (; done < w->nevents; done++) {
        cl_int status = CL_QUEUED;
        clGetEventInfo(w->events[done], CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof status, &status, NULL);
        if (status > CL_COMPLETE) break;
        int kind = w->event_kinds[done];
        if (kind == CLT__EV_MARK && done + 1 == w->nevents) break;   /* its kernel is not here yet */
        cl_ulong t0, t1;
        if (status == CL_COMPLETE && profile_times(w->events[done], &t0, &t1)) {
            if (kind == CLT__EV_MARK) {
                span_start = t1;
            } else {
                if (span_start && span_start <= t1) t0 = span_start;
                span_start = 0;
                double s = 1e-9 * (double)(t1 - t0);
                if (kind == CLT__EV_KERNEL) w->stats.kernels++, w->stats.kernel_s += s;
                else w->stats.transfers++, w->stats.transfer_s += s;
                if (w->trace)
                    trace_push(w, w->event_names[done], kind, 1e-9 * (double)t0 + w->trace->offset, s);
            }
        }
        clReleaseEvent(w->events[done]);
    }
    memmove(w->events, w->events + done, (w->nevents - done) * sizeof *w->events);
    memmove(w->event_kinds, w->event_kinds + done, (w->nevents - done) * sizeof *w->event_kinds);
    memmove(w->event_names, w->event_names + done, (w->nevents - done) * sizeof *w->event_names);
    w->nevents -= done;
}

void clt__worker_throttle(clt__worker *w, double elapsed)
{
    if (w->slowdown <= 1.0 || elapsed <= 0 || w->row_clock) return;
    double s = elapsed * (w->slowdown - 1.0);
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

double clt__worker_seconds(const clt__worker *w, double elapsed, size_t rows)
{
    return w->row_clock ? (double)rows * w->slowdown * 1e-3 : elapsed;
}

clt_status clt__worker_side_queue(clt__worker *w, cl_command_queue *out)
{
    if (!w->side) {
        cl_int err;
        cl_command_queue_properties props = w->profiling ? CL_QUEUE_PROFILING_ENABLE : 0;
        w->side = clCreateCommandQueue(w->context, w->dev->device, props, &err);
        if (err != CL_SUCCESS) {
            w->side = NULL;
            return clt__fail_cl(err, clt__worker_name(w), "clCreateCommandQueue (second queue)");
        }
    }
    *out = w->side;
    return CLT_OK;
}

static clt_status worker_fini(clt__worker *w, void *arg)
{
    (void)arg;
    if (w->queue) clFinish(w->queue);
    clt__worker_collect(w);
    for (size_t i = 0; i < w->nevents; i++) clReleaseEvent(w->events[i]);
    free(w->events);
    free(w->event_kinds);
    free(w->event_names);
    w->event_names = NULL;
    if (w->trace) free(w->trace->ev);
    free(w->trace);
    w->trace = NULL;
    w->events = NULL;
    if (w->hooks && w->hooks->fini) w->hooks->fini(w);
    w->comm_queue = NULL;
    if (w->side) {
        clFinish(w->side);
        clReleaseCommandQueue(w->side);
        w->side = NULL;
    }
    if (w->gemm_scratch) clReleaseMemObject(w->gemm_scratch);
    w->gemm_scratch = NULL;
    if (w->queue) {
        clFinish(w->queue);
        clReleaseCommandQueue(w->queue);
        w->queue = NULL;
    }
    return CLT_OK;
}

clt_status clt__worker_start(clt__worker *w, int index, const clt__device *dev, cl_context context,
                             bool profiling, const clt__worker_hooks *hooks)
{
    memset(w, 0, sizeof *w);
    w->index = index;
    w->dev = dev;
    w->hooks = hooks;
    if (pthread_mutex_init(&w->lock, NULL)) goto fail_mutex;
    if (pthread_cond_init(&w->wake, NULL)) goto fail_wake;
    if (pthread_cond_init(&w->done, NULL)) goto fail_done;
    if (pthread_create(&w->thread, NULL, worker_main, w)) goto fail_thread;
    w->started = true;
    clRetainContext(context);
    w->context = context;

    start_args a = {profiling};
    clt_status st = clt__worker_call(w, worker_init, &a);
    if (st != CLT_OK) {
        char *msg = strdup(clt_last_error());
        clt__worker_stop(w);
        if (msg) clt__error_set_message(msg);
        free(msg);
    }
    return st;

fail_thread:
    pthread_cond_destroy(&w->done);
fail_done:
    pthread_cond_destroy(&w->wake);
fail_wake:
    pthread_mutex_destroy(&w->lock);
fail_mutex:
    return clt__fail(CLT_ERR_THREAD, "could not start the worker thread of device %d (%s)", index,
                     dev->info.name);
}

void clt__worker_stop(clt__worker *w)
{
    if (!w->started) return;
    clt__worker_call(w, worker_fini, NULL);
    pthread_mutex_lock(&w->lock);
    w->stop = true;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    pthread_cond_destroy(&w->done);
    pthread_cond_destroy(&w->wake);
    pthread_mutex_destroy(&w->lock);
    if (w->context) clReleaseContext(w->context);
    w->context = NULL;
    w->started = false;
}
