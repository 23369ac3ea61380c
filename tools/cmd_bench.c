/* cltrain bench: benchmarks. `dispatch` measures the host cost of handing work to the device
 * worker threads, the overhead every training step pays; `train` the training steps of a model. */
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

/* Training steps of a named model on random data after warm-up: samples/s without profiling,
 * then the same steps with profiling events to split the step into kernels, transfers and the
 * rest (host work and dispatch). */
static int bench_train(const char *spec, const char *model, size_t batch, int steps, int json)
{
    clt_model *m;
    clt_status st = tool_model_build(model, &m);
    if (st != CLT_OK) return 2;
    size_t in = clt_shape_numel(clt_model_input_shape(m));
    float *x = malloc(batch * in * sizeof *x);
    int32_t *y = malloc(batch * sizeof *y);
    uint64_t r = 12345;
    for (size_t i = 0; i < batch * in; i++) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)(r >> 40) / 16777216.0f - 0.5f;
    }
    for (size_t i = 0; i < batch; i++) y[i] = (int32_t)(i % 10);
    clt_train_params p = clt_train_params_default();
    p.optim = clt_sgd(0.01f, 0.9f, 0.0f, 0);
    p.max_batch = batch;
    double sps = 0, wall = 0;
    clt_device_stats ds = {0, 0, 0, 0};
    int nd = 0;
    char name[160] = "";
    for (int profiled = 0; profiled < 2 && st == CLT_OK; profiled++) {
        clt_runtime_options o = clt_runtime_options_default();
        o.devices = spec;
        o.profiling = profiled;
        clt_runtime *rt = NULL;
        clt_trainer *t = NULL;
        st = clt_runtime_create_ex(&rt, &o);
        if (st == CLT_OK) st = clt_trainer_create(&t, rt, m, &p);
        for (int i = 0; i < 3 && st == CLT_OK; i++) st = clt_trainer_step(t, x, y, batch, NULL);
        if (st == CLT_OK && profiled) st = clt_runtime_device_stats(rt, 0, &ds, 1);
        double t0 = now();
        for (int i = 0; i < steps && st == CLT_OK; i++) st = clt_trainer_step(t, x, y, batch, NULL);
        double dt = now() - t0;
        if (st == CLT_OK && profiled) {
            st = clt_runtime_device_stats(rt, 0, &ds, 0);
            wall = dt;
        } else if (st == CLT_OK) {
            sps = (double)batch * steps / dt;
            nd = clt_runtime_device_count(rt);
            clt_device_info info;
            clt_runtime_device_info(rt, 0, &info);
            snprintf(name, sizeof name, "%s", info.name);
        }
        if (st != CLT_OK) tool_fail("training steps", st);
        clt_trainer_destroy(t);
        clt_runtime_destroy(rt);
    }
    free(x), free(y);
    clt_model_destroy(m);
    if (st != CLT_OK) return 1;
    double kfrac = ds.kernel_s / wall, tfrac = ds.transfer_s / wall;
    if (json)
        printf("{\"bench\":\"train\",\"model\":\"%s\",\"batch\":%zu,\"steps\":%d,\"devices\":%d,"
               "\"device\":\"%s\",\"samples_per_s\":%.1f,\"kernel_fraction\":%.3f,"
               "\"transfer_fraction\":%.3f,\"kernels_per_step\":%.1f}\n",
               model, batch, steps, nd, name, sps, kfrac, tfrac, (double)ds.kernels / steps);
    else
        printf("train %s, batch %zu, %d steps on %s:\n"
               "  %.1f samples/s\n"
               "  profiled: %.1f%% of the step in kernels, %.1f%% in transfers, %.1f%% other (host),\n"
               "            %.1f kernels per step\n",
               model, batch, steps, name, sps, 100 * kfrac, 100 * tfrac, 100 * (1 - kfrac - tfrac),
               (double)ds.kernels / steps);
    return 0;
}

int cmd_bench(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: cltrain bench dispatch [--devices SPEC] [--iters N] [--json]\n"
                        "       cltrain bench train [--model seed-mlp|cnn] [--batch N] [--steps N] [--devices SPEC] [--json]\n");
        return 2;
    }
    const char *what = argv[1], *spec = NULL, *model = "seed-mlp";
    int iters = 20000, json = 0, steps = 20;
    long batch = 256;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--devices") && i + 1 < argc) spec = argv[++i];
        else if (!strcmp(argv[i], "--iters") && i + 1 < argc) iters = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--json")) json = 1;
        else if (!strcmp(argv[i], "--model") && i + 1 < argc) model = argv[++i];
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc) batch = atol(argv[++i]);
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoi(argv[++i]);
        else {
            fprintf(stderr, "cltrain bench: unknown option '%s'\n", argv[i]);
            return 2;
        }
    }
    if (iters < 1 || steps < 1 || batch < 1 || batch > 65536) {
        fprintf(stderr, "cltrain bench: --iters and --steps must be at least 1, --batch 1..65536\n");
        return 2;
    }
    if (!strcmp(what, "dispatch")) return bench_dispatch(spec, iters, json);
    if (!strcmp(what, "train")) return bench_train(spec, model, (size_t)batch, steps, json);
    fprintf(stderr, "cltrain bench: unknown benchmark '%s' (known: dispatch, train)\n", what);
    return 2;
}
