/* Timelines: every kernel and transfer of every device, from OpenCL profiling events moved onto
 * the host clock, plus host-side phases, written as Chrome trace event JSON (chrome://tracing,
 * Perfetto). Recording needs profiling queues; with it off no event is even asked for. */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* On the worker: device-clock to host-clock offset. A marker's end lies between the host times
 * before its enqueue and after clFinish; the midpoint is the estimate (error under half that
 * window, microseconds on a CPU device). The best of a few tries is kept. */
clt_status clt__trace_calibrate(clt__worker *w, void *arg)
{
    (void)arg;
    double best_window = 1e9, offset = 0;
    for (int i = 0; i < 5; i++) {
        cl_event ev;
        double h0 = clt__now();
        cl_int err = clEnqueueMarkerWithWaitList(w->queue, 0, NULL, &ev);
        if (err == CL_SUCCESS) err = clFinish(w->queue);
        double h1 = clt__now();
        cl_ulong end = 0;
        if (err == CL_SUCCESS)
            err = clGetEventProfilingInfo(ev, CL_PROFILING_COMMAND_END, sizeof end, &end, NULL);
        clReleaseEvent(ev);
        if (err != CL_SUCCESS) return clt__fail_cl(err, clt__worker_name(w), "aligning the device clock");
        if (h1 - h0 < best_window) {
            best_window = h1 - h0;
            offset = 0.5 * (h0 + h1) - 1e-9 * (double)end;
        }
    }
    clt__worker_collect(w);   /* events before this point keep the old (absent) timeline */
    clt__trace_buf *b = calloc(1, sizeof *b);
    if (!b) return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    b->offset = offset;
    free(w->trace ? w->trace->ev : NULL);
    free(w->trace);
    w->trace = b;
    clt__log(CLT_LOG_DEBUG, "trace: device %d clock aligned within %.1f us", w->index, 0.5e6 * best_window);
    return CLT_OK;
}

clt_status clt__trace_drain(clt__worker *w, void *arg)
{
    (void)arg;
    cl_int err = clFinish(w->queue);
    if (err != CL_SUCCESS) return clt__fail_cl(err, clt__worker_name(w), "clFinish");
    clt__worker_collect(w);
    return CLT_OK;
}

static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fprintf(f, "\\%c", *s);
        else if ((unsigned char)*s < 0x20) fprintf(f, "\\u%04x", *s);
        else fputc(*s, f);
    }
    fputc('"', f);
}

clt_status clt__trace_write_json(const clt__worker *workers, int n, double t0, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) return clt__fail(CLT_ERR_IO, "cannot write the timeline %s: %s", path, strerror(errno));
    static const char *const cats[] = {"kernel", "transfer", "mark", "host"};
    fprintf(f, "{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n");
    fprintf(f, "{\"ph\":\"M\",\"pid\":1,\"name\":\"process_name\",\"args\":{\"name\":\"cltrain\"}}");
    size_t dropped = 0;
    for (int d = 0; d < n; d++) {
        const clt__worker *w = &workers[d];
        /* each device: its queue on one row, its worker thread's host phases on the next */
        char label[256];
        snprintf(label, sizeof label, "device %d: %s", d, w->dev->info.name);
        fprintf(f, ",\n{\"ph\":\"M\",\"pid\":1,\"tid\":%d,\"name\":\"thread_name\",\"args\":{\"name\":", 2 * d);
        json_string(f, label);
        fprintf(f, "}}");
        snprintf(label, sizeof label, "device %d host thread", d);
        fprintf(f, ",\n{\"ph\":\"M\",\"pid\":1,\"tid\":%d,\"name\":\"thread_name\",\"args\":{\"name\":", 2 * d + 1);
        json_string(f, label);
        fprintf(f, "}}");
        if (!w->trace) continue;
        dropped += w->trace->dropped;
        for (size_t i = 0; i < w->trace->n; i++) {
            const clt__trace_event *e = &w->trace->ev[i];
            fprintf(f, ",\n{\"ph\":\"X\",\"pid\":1,\"tid\":%d,\"cat\":\"%s\",\"name\":", 2 * d + (e->cat == CLT__EV_HOST),
                    cats[e->cat]);
            json_string(f, e->name);
            fprintf(f, ",\"ts\":%.3f,\"dur\":%.3f}", 1e6 * (e->ts - t0), 1e6 * e->dur);
        }
    }
    fprintf(f, "\n]}\n");
    bool bad = ferror(f) != 0;
    if (fclose(f) != 0) bad = true;
    if (bad) return clt__fail(CLT_ERR_IO, "writing the timeline %s failed", path);
    if (dropped)
        clt__log(CLT_LOG_WARN, "trace: %zu events past the limit of 2^20 a device were dropped", dropped);
    return CLT_OK;
}
