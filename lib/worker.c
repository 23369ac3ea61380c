/* One host thread per runtime device: it owns the device's queue and kernels, and runs the
 * tasks other threads submit to it, in order. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

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
    if (!t->done) {
        pthread_mutex_lock(&w->lock);
        while (!t->done) pthread_cond_wait(&w->done, &w->lock);
        pthread_mutex_unlock(&w->lock);
    }
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
    w->programs = clt__program_cache_create();
    if (!w->programs) return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    return CLT_OK;
}

static clt_status worker_fini(clt__worker *w, void *arg)
{
    (void)arg;
    clt__program_cache_destroy(w->programs);
    w->programs = NULL;
    if (w->queue) {
        clFinish(w->queue);
        clReleaseCommandQueue(w->queue);
        w->queue = NULL;
    }
    return CLT_OK;
}

clt_status clt__worker_start(clt__worker *w, int index, const clt__device *dev, cl_context context,
                             bool profiling)
{
    memset(w, 0, sizeof *w);
    w->index = index;
    w->dev = dev;
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
