/* cltrain bench: benchmarks. `dispatch` measures the host cost of handing work to the device
 * worker threads (one device, and all at once), the overhead every training step pays. */
#include "commands.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static clt_status nothing(void *user, const clt_device_ctx *d)
{
    (void)d;
    (*(volatile long *)user)++;
    return CLT_OK;
}

static clt_status finish(void *user, const clt_device_ctx *d)
{
    (void)user;
    return clFinish(d->queue) == CL_SUCCESS ? CLT_OK : CLT_ERR_OPENCL;
}

static int bench_dispatch(const char *spec, int iters, int json)
{
    clt_runtime *rt;
    clt_status st = clt_runtime_create(&rt, spec);
    if (st != CLT_OK) return tool_fail("opening devices", st);
    int nd = clt_runtime_device_count(rt);
    volatile long counter = 0;
    /* warm-up */
    for (int i = 0; i < 100; i++) clt_runtime_exec(rt, 0, nothing, (void *)&counter);

    double t0 = now();
    for (int i = 0; i < iters && st == CLT_OK; i++) st = clt_runtime_exec(rt, 0, nothing, (void *)&counter);
    double one = (now() - t0) / iters;
    t0 = now();
    for (int i = 0; i < iters && st == CLT_OK; i++) st = clt_runtime_exec_all(rt, nothing, (void *)&counter);
    double all = (now() - t0) / iters;
    t0 = now();
    for (int i = 0; i < iters && st == CLT_OK; i++) st = clt_runtime_exec_all(rt, finish, NULL);
    double fin = (now() - t0) / iters;
    clt_runtime_destroy(rt);
    if (st != CLT_OK) return tool_fail("dispatching", st);
    if (json)
        printf("{\"bench\":\"dispatch\",\"devices\":%d,\"iters\":%d,\"exec_one_us\":%.2f,"
               "\"exec_all_us\":%.2f,\"exec_all_clfinish_us\":%.2f}\n",
               nd, iters, one * 1e6, all * 1e6, fin * 1e6);
    else
        printf("dispatch, %d device%s, %d iterations:\n"
               "  exec on one device (round trip)      %8.2f us\n"
               "  exec on all devices at once          %8.2f us\n"
               "  exec on all, each calling clFinish   %8.2f us\n",
               nd, nd == 1 ? "" : "s", iters, one * 1e6, all * 1e6, fin * 1e6);
    return 0;
}

int cmd_bench(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: cltrain bench dispatch [--devices SPEC] [--iters N] [--json]\n");
        return 2;
    }
    const char *what = argv[1], *spec = NULL;
    int iters = 20000, json = 0;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--devices") && i + 1 < argc) spec = argv[++i];
        else if (!strcmp(argv[i], "--iters") && i + 1 < argc) iters = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--json")) json = 1;
        else {
            fprintf(stderr, "cltrain bench: unknown option '%s'\n", argv[i]);
            return 2;
        }
    }
    if (iters < 1) {
        fprintf(stderr, "cltrain bench: --iters must be at least 1\n");
        return 2;
    }
    if (!strcmp(what, "dispatch")) return bench_dispatch(spec, iters, json);
    fprintf(stderr, "cltrain bench: unknown benchmark '%s' (known: dispatch)\n", what);
    return 2;
}
