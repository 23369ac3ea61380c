/* cltrain bench: benchmarks. `dispatch` measures the host cost of handing work to the device
 * worker threads, the overhead every training step pays; `train` the training steps of a model;
 * `allreduce` times clt_allreduce per size like nccl-tests, next to a host memcpy of the same
 * size, and checks every result; under mpirun, across the devices of every process, next to
 * MPI's own MPI_Allreduce of host buffers of the same size over the same processes. */
#include "config.h"

#include "commands.h"

#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef CLT_HAVE_MPI
#include <mpi.h>
#endif

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static clt_status nothing(const clt_device_ctx *d, void *user)
{
    (void)d;
    (*(volatile long *)user)++;
    return CLT_OK;
}

static clt_status finish(const clt_device_ctx *d, void *user)
{
    (void)user;
    return clFinish(d->queue) == CL_SUCCESS ? CLT_OK : CLT_ERR_OPENCL;
}

static int bench_dispatch(const char *spec, int iters, int json)
{
    clt_runtime *rt;
    clt_status st = clt_runtime_create(&rt, spec);
    if (st != CLT_OK) return tool_fail(tool_opening(spec), st);
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

/* What `bench train` runs: a model, a batch, and how the devices share the work. */
typedef struct {
    const char *spec, *model;
    size_t batch;
    int steps, json;
    tool_layout lay;          /* as `cltrain train` takes it (tools/commands.h); the seed
                               * placement: tensor parallel, on tensor groups, a pipeline */
    clt_parallel parallel;    /* lay.parallel */
    int schedule;             /* clt_pipeline_schedule, or -1: one device, naive, gpipe, 1f1b, zb */
    int micro;                /* lay.micro_batches: of every schedule */
    int seed_placement;       /* lay.seed_placement */
    int tensor_group;         /* lay.tensor_group */
    int bucket_given;         /* data: bucket_bytes given, else the library's default */
    size_t bucket_bytes;      /* data: gradient bucket size */
    int rounds;               /* > 1: the configurations timed in turns (bench_train_rounds) */
    int device;               /* parallel none: the runtime device that trains (default 0) */
} train_args;

typedef struct {
    double sps, kfrac, tfrac, kernels;
    int devices;
    char name[160];
    size_t split[16];         /* data parallel: the last step's rows per device */
    uint64_t act[16];         /* activation bytes allocated per device */
    int buckets;              /* data parallel: gradient buckets per update */
    double overlapped;        /* and how many overlapped backward, on average */
    int slices[16];           /* tensor parallel: the first split layer's features per device */
    double base_sps;          /* one device's samples/s in the same run, or 0 */
    double cpu[16];           /* each device's worker thread: CPU seconds per timed step */
    double base_cpu;          /* the one-device run's, or 0 */
} train_result;

/* Sums what the steps report about the gradient buckets. */
typedef struct {
    int steps, buckets, overlapped;
} bucket_tally;

static void tally_buckets(const clt_step_info *info, void *user)
{
    bucket_tally *b = user;
    if (!info->updated) return;
    b->steps++;
    b->buckets = info->buckets;
    b->overlapped += info->buckets_overlapped;
}

/* The model of a run, placed as the arguments say (NULL after a message on error). */

static clt_model *train_model(const train_args *a, clt_parallel parallel)
{
    clt_model *m;
    int placed = (parallel == CLT_PARALLEL_MODEL || parallel == CLT_PARALLEL_TENSOR) && a->seed_placement;
    clt_status st;
    st = tool_model_build(a->model, placed, &m);
    if (st != CLT_OK && st != CLT_ERR_INVALID_ARG) tool_fail("building the model", st);
    return st == CLT_OK ? m : NULL;
}

static bool is_gpt(const train_args *a) { return !strcmp(a->model, "gpt"); }

/* A batch of random inputs in [-0.5, 0.5) and labels 0..9, the same in every run; for the GPT
 * random token ids and a target per position (x then holds int32 ids). */
static int train_data(const train_args *a, const clt_model *m, size_t batch, float **x, int32_t **y)
{
    size_t in = clt_shape_numel(clt_model_input_shape(m)), per = is_gpt(a) ? in : 1;
    *x = malloc(batch * in * sizeof **x);
    *y = malloc(batch * per * sizeof **y);
    if (!*x || !*y) {
        free(*x), free(*y);
        fprintf(stderr, "cltrain bench: out of host memory\n");
        return 0;
    }
    uint64_t rnd = 12345;
    for (size_t i = 0; i < batch * in; i++) {
        rnd = rnd * 6364136223846793005ull + 1442695040888963407ull;
        if (is_gpt(a)) ((int32_t *)(void *)*x)[i] = (int32_t)((rnd >> 33) % TOOL_GPT_VOCAB);
        else (*x)[i] = (float)(rnd >> 40) / 16777216.0f - 0.5f;
    }
    for (size_t i = 0; i < batch * per; i++) (*y)[i] = (int32_t)(is_gpt(a) ? (i * 7) % TOOL_GPT_VOCAB : i % 10);
    return 1;
}

/* Tokens a sample holds: the GPT's block, else 1. */
static double sample_tokens(const train_args *a) { return is_gpt(a) ? clt_gpt_config_default().block : 1; }

/* One step on the batch train_data made. */
static clt_status train_step(const train_args *a, clt_trainer *t, const float *x, const int32_t *y)
{
    return is_gpt(a) ? clt_trainer_step_tokens(t, (const int32_t *)(const void *)x, y, a->batch, NULL)
                     : clt_trainer_step(t, x, y, a->batch, NULL);
}

static clt_train_params train_params(const train_args *a, clt_parallel parallel, int schedule, int micro)
{
    clt_train_params p = clt_train_params_default();
    tool_layout l = a->lay;   /* this configuration's, of the comparison */
    l.parallel = (int)parallel;
    l.schedule = schedule < 0 ? CLT_PIPELINE_NAIVE : (clt_pipeline_schedule)schedule;
    l.micro_batches = micro;
    if (parallel != CLT_PARALLEL_MODEL) l.pipelines = 1;
    tool_layout_params(&l, &p);
    p.device = a->device;
    p.optim = clt_sgd(0.01f, 0.9f, 0.0f, 0);
    if (is_gpt(a)) {   /* nanoGPT's: AdamW, decay on matrices, clipping at 1 */
        p.optim = clt_adamw(1e-3f, 0.1f);
        p.optim.beta2 = 0.99f;
        p.decay = CLT_DECAY_MATRICES;
        p.clip_norm = 1.0f;
    }
    p.max_batch = a->batch;
    p.rebalance_every = 5;
    if (a->bucket_given) p.bucket_bytes = a->bucket_bytes;
    return p;
}

/* Training steps on random data after warm-up: samples/s without profiling, then the same steps
 * with profiling events to split device 0's time into kernels, transfers and the rest (host work,
 * dispatch, and in a pipeline the waits for the other devices). */
static int train_run(const train_args *a, clt_parallel parallel, int schedule, int micro, train_result *r)
{
    clt_model *m = train_model(a, parallel);
    float *x;
    int32_t *y;
    if (!m) return 2;
    if (!train_data(a, m, a->batch, &x, &y)) {
        clt_model_destroy(m);
        return 2;
    }
    size_t batch = a->batch;
    clt_train_params p = train_params(a, parallel, schedule, micro);
    clt_status st = CLT_OK;
    double wall = 0;
    clt_device_stats ds = {0};
    memset(r, 0, sizeof *r);
    for (int profiled = 0; profiled < 2 && st == CLT_OK; profiled++) {
        clt_runtime_options o = clt_runtime_options_default();
        o.devices = a->spec;
        o.profiling = profiled;
        clt_runtime *rt = NULL;
        clt_trainer *t = NULL;
        st = clt_runtime_create_ex(&rt, &o);
        if (st == CLT_OK) st = clt_trainer_create(&t, rt, m, &p);
        for (int i = 0; i < 3 && st == CLT_OK; i++) st = train_step(a, t, x, y);
        if (st == CLT_OK && profiled) st = clt_runtime_device_stats(rt, 0, &ds, 1);
        bucket_tally tally = {0, 0, 0};
        if (st == CLT_OK && !profiled) st = clt_trainer_set_progress(t, tally_buckets, &tally);
        for (int d = 0; !profiled && d < clt_runtime_device_count(rt) && d < 16 && st == CLT_OK; d++)
            st = clt_runtime_device_stats(rt, d, &ds, 1);   /* zero the worker CPU clocks */
        double t0 = now();
        for (int i = 0; i < a->steps && st == CLT_OK; i++) st = train_step(a, t, x, y);
        double dt = now() - t0;
        if (st == CLT_OK && profiled) {
            st = clt_runtime_device_stats(rt, 0, &ds, 0);
            wall = dt;
        } else if (st == CLT_OK) {
            r->sps = (double)batch * a->steps / dt;
            r->buckets = tally.buckets;
            r->overlapped = tally.steps ? (double)tally.overlapped / tally.steps : 0;
            r->devices = parallel == CLT_PARALLEL_NONE ? 1 : clt_runtime_device_count(rt);
            memset(r->split, 0, sizeof r->split);
            if (parallel == CLT_PARALLEL_DATA) clt_trainer_split(t, r->split, 16);
            clt_slice_kind k;
            for (int l = 0, f, c; parallel == CLT_PARALLEL_TENSOR && l < clt_model_layer_count(m); l++) {
                if (clt_trainer_tensor_slice(t, l, 0, &k, &f, &c) != CLT_OK || k != CLT_SLICE_COLUMN) continue;
                for (int d = 0; d < r->devices && d < 16; d++) clt_trainer_tensor_slice(t, l, d, &k, &f, &r->slices[d]);
                break;
            }
            for (int d = 0; d < r->devices && d < 16 && st == CLT_OK; d++) {
                clt_device_stats a_ds;
                st = clt_runtime_device_stats(rt, d, &a_ds, 0);
                r->act[d] = a_ds.activation_bytes;
                r->cpu[d] = a_ds.worker_cpu_s / a->steps;
            }
            clt_device_info info;
            clt_runtime_device_info(rt, 0, &info);
            snprintf(r->name, sizeof r->name, "%s", info.name);
        }
        if (st != CLT_OK) tool_fail("training steps", st);
        clt_trainer_destroy(t);
        clt_runtime_destroy(rt);
    }
    free(x), free(y);
    clt_model_destroy(m);
    if (st != CLT_OK) return 1;
    r->kfrac = ds.kernel_s / wall;
    r->tfrac = ds.transfer_s / wall;
    r->kernels = (double)ds.kernels / a->steps;
    return 0;
}

static const char *parallel_name(clt_parallel p)
{
    return p == CLT_PARALLEL_MODEL ? "model" : p == CLT_PARALLEL_DATA ? "data" : p == CLT_PARALLEL_TENSOR ? "tensor" : "none";
}

static void train_print(const train_args *a, clt_parallel parallel, int schedule, int micro, const train_result *r)
{
    /* a pipeline: model parallel, or tensor parallel with the seed placement on groups */
    int staged = parallel == CLT_PARALLEL_MODEL || (parallel == CLT_PARALLEL_TENSOR && a->seed_placement);
    const char *sched = staged ? clt_pipeline_schedule_name((clt_pipeline_schedule)schedule) : "-";
    const char *placement = !staged ? "-" : a->seed_placement ? "seed" : "auto";
    char split[256] = "";   /* data parallel: "256,256" */
    size_t len = 0;
    for (int i = 0; parallel == CLT_PARALLEL_DATA && i < r->devices && i < 16; i++)
        len += (size_t)snprintf(split + len, sizeof split - len, "%s%zu", i ? "," : "", r->split[i]);
    char slices[256] = "";  /* tensor parallel: "256,256" */
    len = 0;
    for (int i = 0; parallel == CLT_PARALLEL_TENSOR && i < r->devices && i < 16; i++)
        len += (size_t)snprintf(slices + len, sizeof slices - len, "%s%d", i ? "," : "", r->slices[i]);
    char cpu[300] = "";     /* each worker thread's CPU seconds per step: "0.110,0.111" */
    double busiest = 0, sum = 0;
    len = 0;
    for (int i = 0; i < r->devices && i < 16; i++) {
        len += (size_t)snprintf(cpu + len, sizeof cpu - len, "%s%.4f", i ? "," : "", r->cpu[i]);
        if (r->cpu[i] > busiest) busiest = r->cpu[i];
        sum += r->cpu[i];
    }
    /* The naive pipeline's devices take turns: its step is the sum of their times, not the
     * busiest one's. */
    if (parallel == CLT_PARALLEL_MODEL && schedule == CLT_PIPELINE_NAIVE) busiest = sum;
    /* the speed-up over one device measured in the same run, and the one the workers' CPU time
     * allows (what a machine with a free core per device would give, waits aside) */
    char vs[128] = "";
    if (r->base_sps > 0)
        snprintf(vs, sizeof vs, ",\"vs_one_device\":%.3f,\"cpu_bound_vs_one_device\":%.3f", r->sps / r->base_sps,
                 busiest > 0 ? r->base_cpu / busiest : 0.0);
    char act[400] = "";     /* per device: "123,456" */
    len = 0;
    for (int i = 0; i < r->devices && i < 16; i++)
        len += (size_t)snprintf(act + len, sizeof act - len, "%s%llu", i ? "," : "", (unsigned long long)r->act[i]);
    if (a->json) {
        printf("{\"bench\":\"train\",\"model\":\"%s\",\"batch\":%zu,\"steps\":%d,\"parallel\":\"%s\","
               "\"schedule\":\"%s\",\"micro_batches\":%d,\"placement\":\"%s\",\"split\":[%s],\"devices\":%d,"
               "\"device\":\"%s\",\"samples_per_s\":%.1f,\"kernel_fraction\":%.3f,"
               "\"transfer_fraction\":%.3f,\"kernels_per_step\":%.1f,\"activation_bytes\":[%s],"
               "\"buckets\":%d,\"buckets_overlapped\":%.2f,"
               "\"tensor_group\":%d,\"slices\":[%s],\"worker_cpu_s_per_step\":[%s],\"tokens_per_s\":%.1f%s}\n",
               a->model, a->batch, a->steps, parallel_name(parallel), sched,
               staged ? micro : 1, placement, split, r->devices, r->name, r->sps,
               r->kfrac, r->tfrac, r->kernels, act, r->buckets, r->overlapped,
               parallel == CLT_PARALLEL_TENSOR ? (a->tensor_group ? a->tensor_group : r->devices) : 0, slices, cpu,
               r->sps * sample_tokens(a), vs);
        return;
    }
    printf("train %s, batch %zu, %d steps on %d device%s (%s), parallel %s", a->model, a->batch, a->steps,
           r->devices, r->devices == 1 ? "" : "s", r->name, parallel_name(parallel));
    if (staged) printf(", %s schedule, %d micro-batch%s, %s placement", sched, micro, micro == 1 ? "" : "es", placement);
    if (parallel == CLT_PARALLEL_DATA)
        printf(", split %s, %d gradient bucket%s (%.2f per step began while backward ran)", split,
               r->buckets, r->buckets == 1 ? "" : "s", r->overlapped);
    printf(", activation bytes per device %s", act);
    if (parallel == CLT_PARALLEL_TENSOR) printf(", groups of %d, slices %s", a->tensor_group ? a->tensor_group : r->devices, slices);
    printf(":\n  %.1f samples/s", r->sps);
    if (is_gpt(a)) printf(" (%.0f tokens/s)", r->sps * sample_tokens(a));
    if (r->base_sps > 0)
        printf(" (%.2fx one device; the workers' CPU time allows %.2fx)", r->sps / r->base_sps,
               busiest > 0 ? r->base_cpu / busiest : 0.0);
    printf("\n  worker CPU seconds per step: %s", cpu);
    printf("\n"
           "  profiled: %.1f%% of device 0's step in kernels, %.1f%% in transfers, %.1f%% other (host, waits),\n"
           "            %.1f kernels per step\n",
           100 * r->kfrac, 100 * r->tfrac, 100 * (1 - r->kfrac - r->tfrac), r->kernels);
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

static double median(const double *v, int n)
{
    double s[64];
    memcpy(s, v, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_double);
    return n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

/* --rounds R: every configuration of the comparison (one device and data parallel; or one
 * device and the four schedules) as a trainer of its own on one runtime, timed in turns,
 * `steps` steps each, R rounds, each round starting with the next one. A burst of load on a
 * shared machine then slows every configuration of a round alike, and each ratio is taken
 * within its round; the medians are what to quote. */
static int bench_train_rounds(const train_args *a)
{
    enum { MAXC = 5, F1B = 3, ZB = 4 };   /* F1B, ZB: the 1f1b and zb configurations */
    clt_parallel par[MAXC] = {CLT_PARALLEL_NONE, a->parallel, a->parallel, a->parallel, a->parallel};
    int sched[MAXC] = {0, 0, CLT_PIPELINE_GPIPE, CLT_PIPELINE_1F1B, CLT_PIPELINE_ZB};
    int m1 = a->parallel == CLT_PARALLEL_MODEL ? a->micro : 1, micro[MAXC] = {1, m1, a->micro, a->micro, a->micro};
    int nc = a->parallel == CLT_PARALLEL_MODEL ? MAXC : 2, base = a->parallel == CLT_PARALLEL_MODEL ? 1 : 0;
    clt_model *m[MAXC] = {NULL};
    clt_trainer *t[MAXC] = {NULL};
    double sps[MAXC][64];
    float *x = NULL;
    int32_t *y = NULL;
    clt_runtime *rt = NULL;
    clt_runtime_options o = clt_runtime_options_default();
    o.devices = a->spec;
    const char *what = tool_opening(a->spec);
    clt_status st = clt_runtime_create_ex(&rt, &o);
    int rc = st == CLT_OK ? 0 : 1;
    for (int c = 0; c < nc && !rc; c++) {
        if (!(m[c] = train_model(a, par[c]))) rc = 2;
        if (!rc && !x && !train_data(a, m[c], a->batch, &x, &y)) rc = 2;
        clt_train_params p = train_params(a, par[c], sched[c], micro[c]);
        what = "creating a trainer";
        if (!rc) st = clt_trainer_create(&t[c], rt, m[c], &p);
        what = "training steps";
        for (int i = 0; i < 3 && !rc && st == CLT_OK; i++) st = train_step(a, t[c], x, y);
        if (st != CLT_OK) rc = 1;
    }
    for (int r = 0; r < a->rounds && !rc; r++)
        for (int i = 0; i < nc && !rc; i++) {
            int c = (r + i) % nc;
            double t0 = now();
            for (int k = 0; k < a->steps && st == CLT_OK; k++) st = train_step(a, t[c], x, y);
            sps[c][r] = (double)a->batch * a->steps / (now() - t0);
            if (st != CLT_OK) rc = 1;
        }
    if (st != CLT_OK) tool_fail(what, st);
    for (int c = 0; c < nc && !rc; c++) {
        double vs_one[64], vs_base[64], vs_f1b[64];
        char list[4][64 * 12];
        size_t len[4] = {0, 0, 0, 0};
        for (int r = 0; r < a->rounds; r++) {
            vs_one[r] = sps[c][r] / sps[0][r], vs_base[r] = sps[c][r] / sps[base][r];
            vs_f1b[r] = c == ZB ? sps[c][r] / sps[F1B][r] : 0;
            len[0] += (size_t)snprintf(list[0] + len[0], sizeof list[0] - len[0], "%s%.1f", r ? "," : "", sps[c][r]);
            len[1] += (size_t)snprintf(list[1] + len[1], sizeof list[1] - len[1], "%s%.3f", r ? "," : "", vs_one[r]);
            len[2] += (size_t)snprintf(list[2] + len[2], sizeof list[2] - len[2], "%s%.3f", r ? "," : "", vs_base[r]);
            len[3] += (size_t)snprintf(list[3] + len[3], sizeof list[3] - len[3], "%s%.3f", r ? "," : "", vs_f1b[r]);
        }
        int staged = par[c] == CLT_PARALLEL_MODEL;
        const char *sname = staged ? clt_pipeline_schedule_name((clt_pipeline_schedule)sched[c]) : "-";
        char vs_naive[2 * 64 * 12 + 128] = "";   /* model parallel: against naive; zb against 1f1b too */
        if (base)
            snprintf(vs_naive, sizeof vs_naive, ",\"vs_naive\":%.3f,\"vs_naive_rounds\":[%s]",
                     median(vs_base, a->rounds), list[2]);
        if (base && c == ZB)
            snprintf(vs_naive + strlen(vs_naive), sizeof vs_naive - strlen(vs_naive),
                     ",\"vs_1f1b\":%.3f,\"vs_1f1b_rounds\":[%s]", median(vs_f1b, a->rounds), list[3]);
        if (a->json)
            printf("{\"bench\":\"train_rounds\",\"model\":\"%s\",\"batch\":%zu,\"steps\":%d,\"rounds\":%d,"
                   "\"parallel\":\"%s\",\"schedule\":\"%s\",\"micro_batches\":%d,\"placement\":\"%s\","
                   "\"devices\":%d,\"samples_per_s\":%.1f,\"samples_per_s_rounds\":[%s],"
                   "\"vs_one_device\":%.3f,\"vs_one_device_rounds\":[%s],\"tokens_per_s\":%.1f%s}\n",
                   a->model, a->batch, a->steps, a->rounds, parallel_name(par[c]), sname, micro[c],
                   !staged ? "-" : a->seed_placement ? "seed" : "auto",
                   par[c] == CLT_PARALLEL_NONE ? 1 : clt_runtime_device_count(rt), median(sps[c], a->rounds),
                   list[0], median(vs_one, a->rounds), list[1], median(sps[c], a->rounds) * sample_tokens(a),
                   vs_naive);
        else {
            char tokens[48] = "";
            if (is_gpt(a)) snprintf(tokens, sizeof tokens, " (%.0f tokens/s)", median(sps[c], a->rounds) * sample_tokens(a));
            printf("%-6s %-6s %2d micro-batch%s  median %8.1f samples/s%s, %.2fx one device; rounds: %s\n",
                   parallel_name(par[c]), sname, micro[c], micro[c] == 1 ? "  " : "es", median(sps[c], a->rounds),
                   tokens, median(vs_one, a->rounds), list[0]);
        }
        if (!a->json && base && c > base)
            printf("       %s/naive per round: %s, median %.2fx\n", sname, list[2], median(vs_base, a->rounds));
        if (!a->json && base && c == ZB)
            printf("       zb/1f1b per round: %s, median %.3fx\n", list[3], median(vs_f1b, a->rounds));
    }
    for (int c = 0; c < nc; c++) clt_trainer_destroy(t[c]), clt_model_destroy(m[c]);
    clt_runtime_destroy(rt);
    free(x), free(y);
    return rc;
}

/* Data parallel, then each device training alone on the whole batch, in this run: how much of
 * the devices' summed throughput the split reaches (on unequal devices, what a split by speed
 * is for: the sum is its ceiling). */
static int bench_train_data(const train_args *a)
{
    train_result r, one;
    int rc = train_run(a, CLT_PARALLEL_DATA, 0, 1, &r);
    if (rc) return rc;
    train_print(a, CLT_PARALLEL_DATA, 0, 1, &r);
    double alone[16], sum = 0;
    int n = r.devices < 16 ? r.devices : 16;
    for (int d = 0; d < n && !rc; d++) {
        train_args b = *a;
        b.device = d;
        if (!(rc = train_run(&b, CLT_PARALLEL_NONE, 0, 1, &one))) sum += alone[d] = one.sps;
    }
    if (rc) return rc;
    char list[16 * 24];
    size_t len = 0;
    for (int d = 0; d < n; d++) len += (size_t)snprintf(list + len, sizeof list - len, "%s%.1f", d ? "," : "", alone[d]);
    if (a->json)
        printf("{\"bench\":\"train_efficiency\",\"model\":\"%s\",\"batch\":%zu,\"devices\":%d,"
               "\"samples_per_s\":%.1f,\"alone_samples_per_s\":[%s],\"sum_samples_per_s\":%.1f,"
               "\"efficiency\":%.3f}\n", a->model, a->batch, n, r.sps, list, sum, sum > 0 ? r.sps / sum : 0.0);
    else
        printf("  %.1f samples/s is %.2f of the devices' own sum, %.1f (each alone on the whole batch: %s)\n",
               r.sps, sum > 0 ? r.sps / sum : 0.0, sum, list);
    return 0;
}

static int bench_train(const train_args *a)
{
    if (a->rounds > 1) return bench_train_rounds(a);
    train_result r;
    if (a->parallel == CLT_PARALLEL_TENSOR) {
        /* one device, tensor parallel, then model parallel by layers (naive and 1f1b, both with
         * M micro-batches) on the same devices, back to back in this run */
        int rc = train_run(a, CLT_PARALLEL_NONE, 0, 1, &r);
        double base = r.sps, base_cpu = r.cpu[0];
        if (!rc) train_print(a, CLT_PARALLEL_NONE, 0, 1, &r);
        /* with the seed placement, a pipeline of tensor groups: --schedule (1f1b by default) */
        int ts = !a->seed_placement ? 0 : a->schedule < 0 ? CLT_PIPELINE_1F1B : a->schedule;
        int tm = a->seed_placement ? a->micro : 1;
        if (!rc) rc = train_run(a, CLT_PARALLEL_TENSOR, ts, tm, &r);
        r.base_sps = base, r.base_cpu = base_cpu;
        if (!rc) train_print(a, CLT_PARALLEL_TENSOR, ts, tm, &r);
        for (int s = CLT_PIPELINE_NAIVE; s <= CLT_PIPELINE_1F1B && !rc; s += CLT_PIPELINE_1F1B - CLT_PIPELINE_NAIVE) {
            rc = train_run(a, CLT_PARALLEL_MODEL, s, a->micro, &r);
            r.base_sps = base, r.base_cpu = base_cpu;
            if (!rc) train_print(a, CLT_PARALLEL_MODEL, s, a->micro, &r);
        }
        return rc;
    }
    if (a->parallel == CLT_PARALLEL_DATA) return bench_train_data(a);
    if (a->parallel != CLT_PARALLEL_MODEL || a->schedule >= 0) {
        int micro = a->parallel == CLT_PARALLEL_MODEL ? a->micro : 1;
        int rc = train_run(a, a->parallel, a->schedule < 0 ? 0 : a->schedule, micro, &r);
        if (!rc) train_print(a, a->parallel, a->schedule < 0 ? 0 : a->schedule, micro, &r);
        return rc;
    }
    /* --schedule all: one device, then each schedule with the same micro-batches, back to back
     * in this run */
    int rc = train_run(a, CLT_PARALLEL_NONE, 0, 1, &r);
    if (!rc) train_print(a, CLT_PARALLEL_NONE, 0, 1, &r);
    for (int s = CLT_PIPELINE_NAIVE; s <= CLT_PIPELINE_ZB && !rc; s++) {
        rc = train_run(a, CLT_PARALLEL_MODEL, s, a->micro, &r);
        if (!rc) train_print(a, CLT_PARALLEL_MODEL, s, a->micro, &r);
    }
    return rc;
}

/* ---- allreduce -------------------------------------------------------------------------------- */

typedef struct {
    cl_mem *bufs;
    float *host;    /* n_floats per device, device d at host + d * n_floats */
    size_t n_floats;
    int write;
} bufs_io;

static clt_status io_on_device(const clt_device_ctx *d, void *user)
{
    bufs_io *io = user;
    float *h = io->host + (size_t)d->index * io->n_floats;
    size_t bytes = io->n_floats * sizeof(float);
    cl_int err = io->write
                     ? clEnqueueWriteBuffer(d->queue, io->bufs[d->index], CL_TRUE, 0, bytes, h, 0, NULL, NULL)
                     : clEnqueueReadBuffer(d->queue, io->bufs[d->index], CL_TRUE, 0, bytes, h, 0, NULL, NULL);
    return err == CL_SUCCESS ? CLT_OK : CLT_ERR_OPENCL;
}

/* Global device d's input (process p's device r is p * n + r): small integers, so the sum is
 * exact whatever the order. */
static float input(int d, size_t i) { return (float)(i % 13) + (float)d; }

/* Seconds per host memcpy of `bytes`: the reference a host-staged collective is held to. */
static double time_memcpy(char *dst, const char *src, size_t bytes, int iters)
{
    volatile char sink = 0;
    memcpy(dst, src, bytes);
    double t0 = now();
    for (int i = 0; i < iters; i++) {
        memcpy(dst, src, bytes);
        sink ^= dst[(size_t)i % bytes];
    }
    (void)sink;
    return (now() - t0) / iters;
}

/* One thread's share of a parallel copy: iters copies of its bytes. */
typedef struct {
    char *dst;
    const char *src;
    size_t bytes;
    int iters;
} copy_share;

static void *copy_thread(void *arg)
{
    copy_share *c = arg;
    for (int i = 0; i < c->iters; i++) memcpy(c->dst, c->src, c->bytes);
    return NULL;
}

/* Seconds per copy of `bytes` by two host threads at once, each its half: what a machine's
 * memory moves when two workers copy, the ceiling of a two-device host-staged collective. */
static double time_memcpy2(char *dst, const char *src, size_t bytes, int iters)
{
    size_t half = bytes / 2 / 64 * 64;
    copy_share c[2] = {{dst, src, half, iters}, {dst + half, src + half, bytes - half, iters}};
    memcpy(dst, src, bytes);
    pthread_t th;
    double t0 = now();
    if (pthread_create(&th, NULL, copy_thread, &c[1]) != 0) return time_memcpy(dst, src, bytes, iters);
    copy_thread(&c[0]);
    pthread_join(th, NULL);
    return (now() - t0) / iters;
}

typedef struct {
    const char *spec;
    size_t min_bytes, max_bytes, chunk_bytes;
    int iters, json;
    int algos;   /* bit per clt_algo */
    int mpi;     /* a runtime over every process of the MPI job */
} allreduce_args;

/* Under MPI: the slowest process's time (every process waits for it), whether every process
 * got the right result, and MPI_Allreduce's own seconds per call on host buffers of `count`
 * floats. Without MPI: as given, and no MPI time. */
static double across(double t, int *correct)
{
#ifdef CLT_HAVE_MPI
    int init = 0;
    MPI_Initialized(&init);
    if (init) {
        double tmax = t;
        int all = *correct;
        MPI_Allreduce(&t, &tmax, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        MPI_Allreduce(correct, &all, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD);
        *correct = all;
        return tmax;
    }
#endif
    return t;
}

static double time_mpi_allreduce(float *send, float *recv, size_t count, int iters)
{
#ifdef CLT_HAVE_MPI
    for (int i = 0; i < 2; i++) MPI_Allreduce(send, recv, (int)count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = now();
    for (int i = 0; i < iters; i++) MPI_Allreduce(send, recv, (int)count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    int unused = 1;
    return across((now() - t0) / iters, &unused);
#else
    (void)send, (void)recv, (void)count, (void)iters;
    return 0;
#endif
}

static void barrier(int procs)
{
#ifdef CLT_HAVE_MPI
    if (procs > 1) MPI_Barrier(MPI_COMM_WORLD);
#else
    (void)procs;
#endif
}

static int bench_allreduce(const allreduce_args *a)
{
    clt_runtime *rt;
    clt_runtime_options ro = clt_runtime_options_default();
    ro.devices = a->spec;
    ro.mpi = a->mpi;
    clt_status st = clt_runtime_create_ex(&rt, &ro);
    if (st != CLT_OK) return tool_fail(tool_opening(a->spec), st);
    int n = clt_runtime_device_count(rt), procs = clt_runtime_process_count(rt);
    if (procs > 1 && !(a->algos & ~((1 << CLT_ALGO_NAIVE) | (1 << CLT_ALGO_DIRECT)))) {
        fprintf(stderr, "cltrain bench allreduce: --algo naive and direct do not cross processes: "
                "under MPI use ring, staged or all\n");
        clt_runtime_destroy(rt);
        return 2;
    }
    int proc = clt_runtime_process_rank(rt), G = n * procs;
    if (proc != 0 && !freopen("/dev/null", "w", stdout)) return 1;   /* process 0 reports */
    size_t max_floats = a->max_bytes / sizeof(float);
    cl_mem *send = calloc((size_t)n, sizeof *send), *recv = calloc((size_t)n, sizeof *recv);
    float *host = malloc((size_t)n * max_floats * sizeof(float));
    char *ma = malloc(a->max_bytes), *mb = malloc(a->max_bytes);
    float *mpi_send = procs > 1 ? malloc(a->max_bytes) : NULL, *mpi_recv = procs > 1 ? malloc(a->max_bytes) : NULL;
    int bad = 0;
    if (!send || !recv || !host || !ma || !mb || (procs > 1 && (!mpi_send || !mpi_recv))) {
        fprintf(stderr, "cltrain bench: out of host memory\n");
        bad = 1;
        goto out;
    }
    memset(ma, 1, a->max_bytes);
    memset(mb, 2, a->max_bytes);
    for (int d = 0; d < n && !bad; d++) {
        cl_int e1, e2;
        send[d] = clCreateBuffer(clt_runtime_context(rt, d), CL_MEM_READ_WRITE, a->max_bytes, NULL, &e1);
        recv[d] = clCreateBuffer(clt_runtime_context(rt, d), CL_MEM_READ_WRITE, a->max_bytes, NULL, &e2);
        if (e1 != CL_SUCCESS || e2 != CL_SUCCESS) {
            fprintf(stderr, "cltrain bench: cannot allocate 2 x %zu bytes on device %d\n", a->max_bytes, d);
            bad = 1;
        }
        for (size_t i = 0; i < max_floats; i++) host[(size_t)d * max_floats + i] = input(proc * n + d, i);
    }
    bufs_io io = {send, host, max_floats, 1};
    if (!bad && (st = clt_runtime_exec_all(rt, io_on_device, &io)) != CLT_OK) {
        bad = tool_fail("writing the inputs", st);
        goto out;
    }
    if (!a->json && procs == 1) {
        printf("# cltrain bench allreduce: %d device%s (%s), %d iterations after 2 warm-up, out of place\n",
               n, n == 1 ? "" : "s", a->spec ? a->spec : "default", a->iters);
        printf("# busbw = algbw * 2(n-1)/n; memcpy: one host thread copying the same bytes; memcpy2: two\n"
               "# threads at once, each half (the machine's ceiling for two workers); of2: busbw / memcpy2\n#\n");
        printf("#%12s %11s %6s %11s %11s %11s %12s %13s %5s %6s\n", "bytes", "count", "algo", "time(us)",
               "algbw(GB/s)", "busbw(GB/s)", "memcpy(GB/s)", "memcpy2(GB/s)", "of2", "check");
    } else if (!a->json) {
        printf("# cltrain bench allreduce: %d processes x %d device%s (%s) = %d devices, %d iterations "
               "after 2 warm-up, out of place, device memory to device memory\n", procs, n,
               n == 1 ? "" : "s", a->spec ? a->spec : "default", G, a->iters);
        printf("# busbw = algbw * 2(G-1)/G over the G devices; time: the slowest process's\n");
        printf("# mpi: MPI_Allreduce of host buffers of the same bytes over the %d processes, its busbw "
               "with 2(P-1)/P; ratio: MPI's time / ours\n#\n", procs);
        printf("#%12s %11s %6s %11s %11s %11s %11s %11s %6s %6s\n", "bytes", "count", "algo",
               "time(us)", "algbw(GB/s)", "busbw(GB/s)", "mpi(us)", "mpi_busbw", "ratio", "check");
    }
    for (size_t i = 0; procs > 1 && !bad && i < max_floats; i++) mpi_send[i] = input(proc, i);
    for (size_t bytes = a->min_bytes; bytes <= a->max_bytes && !bad; bytes *= 2) {
        size_t count = bytes / sizeof(float);
        double mt = time_memcpy(mb, ma, bytes, a->iters);
        double memcpy_gbps = (double)bytes / mt / 1e9;
        double memcpy2_gbps = (double)bytes / time_memcpy2(mb, ma, bytes, a->iters) / 1e9;
        double mpi_t = procs > 1 ? time_mpi_allreduce(mpi_send, mpi_recv, count, a->iters) : 0;
        for (int algo = CLT_ALGO_RING; algo <= CLT_ALGO_DIRECT && !bad; algo++) {
            if (!(a->algos & (1 << algo))) continue;
            if (procs > 1 && (algo == CLT_ALGO_NAIVE || algo == CLT_ALGO_DIRECT))
                continue;   /* they do not cross processes */
            clt_collective_options o = clt_collective_options_default();
            o.algo = (clt_algo)algo;
            o.chunk_bytes = a->chunk_bytes;
            for (int i = 0; i < 2 && st == CLT_OK; i++) st = clt_allreduce(rt, send, recv, count, CLT_OP_SUM, &o);
            barrier(procs);
            double t0 = now();
            for (int i = 0; i < a->iters && st == CLT_OK; i++)
                st = clt_allreduce(rt, send, recv, count, CLT_OP_SUM, &o);
            double t = (now() - t0) / a->iters;
            if (st != CLT_OK) {
                bad = tool_fail("clt_allreduce", st);
                break;
            }
            /* Check every device's result; then spoil it so the next size proves itself. */
            bufs_io rd = {recv, host, count, 0};
            st = clt_runtime_exec_all(rt, io_on_device, &rd);
            int correct = st == CLT_OK;
            for (int d = 0; d < n && correct; d++)
                for (size_t i = 0; i < count && correct; i++)
                    correct = host[(size_t)d * count + i] == (float)G * (float)(i % 13) + (float)(G * (G - 1) / 2);
            t = across(t, &correct);
            for (size_t i = 0; i < (size_t)n * count; i++) host[i] = NAN;
            rd.write = 1;
            if (st == CLT_OK) st = clt_runtime_exec_all(rt, io_on_device, &rd);
            double algbw = (double)bytes / t / 1e9, busbw = algbw * 2.0 * (G - 1) / G;
            const char *name = algo == CLT_ALGO_RING ? "ring" : algo == CLT_ALGO_NAIVE ? "naive"
                               : algo == CLT_ALGO_DIRECT ? "direct" : "staged";
            double mpi_busbw = procs > 1 ? (double)bytes / mpi_t / 1e9 * 2.0 * (procs - 1) / procs : 0;
            if (a->json)
                printf("{\"bench\":\"allreduce\",\"bytes\":%zu,\"count\":%zu,\"devices\":%d,\"processes\":%d,"
                       "\"algo\":\"%s\",\"iters\":%d,\"time_us\":%.2f,\"algbw_gbps\":%.3f,\"busbw_gbps\":%.3f,"
                       "\"memcpy_gbps\":%.3f,\"memcpy2_gbps\":%.3f,\"of_memcpy2\":%.3f,\"mpi_time_us\":%.2f,"
                       "\"mpi_busbw_gbps\":%.3f,\"correct\":%s}\n",
                       bytes, count, G, procs, name, a->iters, t * 1e6, algbw, busbw, memcpy_gbps,
                       memcpy2_gbps, busbw / memcpy2_gbps, mpi_t * 1e6, mpi_busbw, correct ? "true" : "false");
            else if (procs > 1)
                printf(" %12zu %11zu %6s %11.1f %11.3f %11.3f %11.1f %11.3f %6.2f %6s\n", bytes, count,
                       name, t * 1e6, algbw, busbw, mpi_t * 1e6, mpi_busbw, mpi_t / t,
                       correct ? "OK" : "WRONG");
            else
                printf(" %12zu %11zu %6s %11.1f %11.3f %11.3f %12.3f %13.3f %5.2f %6s\n", bytes, count, name,
                       t * 1e6, algbw, busbw, memcpy_gbps, memcpy2_gbps, busbw / memcpy2_gbps,
                       correct ? "OK" : "WRONG");
            fflush(stdout);
            if (!correct) bad = 1;
            if (st != CLT_OK) bad = tool_fail("reading the results", st);
        }
    }
out:
    for (int d = 0; d < n; d++) {
        if (send && send[d]) clReleaseMemObject(send[d]);
        if (recv && recv[d]) clReleaseMemObject(recv[d]);
    }
    free(send);
    free(recv);
    free(host);
    free(ma);
    free(mb);
    free(mpi_send);
    free(mpi_recv);
    clt_runtime_destroy(rt);
    return bad ? 1 : 0;
}

/* ---- bench plan: the planner's pick against every candidate run for real -------------------- */

/* clt_plan_parallel once (its short trials pick one candidate), then every candidate that ran as
 * a trainer of its own, `steps` timed steps after 3 untimed, in turns for R rounds (each round a
 * trainer per candidate, created and destroyed in turn so that no two hold the devices' memory at
 * once); the medians of the rounds' samples/s, and the pick's fraction of the fastest. */
static int bench_plan(const train_args *a)
{
    enum { MAXO = 64 };
    clt_plan_option o[MAXO];
    double sps[MAXO][64] = {{0}}, med[MAXO] = {0};
    int n = 0, chosen = -1, rc = 0;
    clt_runtime *rt = NULL;
    clt_model *m = train_model(a, CLT_PARALLEL_NONE);
    float *x = NULL;
    int32_t *y = NULL;
    clt_status st = m ? clt_runtime_create(&rt, a->spec) : CLT_ERR_INVALID_ARG;
    if (!m) rc = 2;
    else if (st != CLT_OK) rc = tool_fail(tool_opening(a->spec), st);
    else if (!train_data(a, m, a->batch, &x, &y)) rc = 2;
    clt_train_params p = train_params(a, CLT_PARALLEL_NONE, -1, 1);
    if (!rc && (st = clt_plan_parallel(rt, m, &p, o, MAXO, &n, &chosen)) != CLT_OK)
        rc = tool_fail("planning the parallel mode", st);
    if (n > MAXO) n = MAXO;
    for (int r = 0; r < a->rounds && !rc; r++)
        for (int i = 0; i < n && !rc; i++) {
            if (o[i].status != CLT_OK) continue;
            clt_trainer *t = NULL;
            st = clt_trainer_create(&t, rt, m, &o[i].params);
            for (int k = 0; k < 3 && st == CLT_OK; k++) st = train_step(a, t, x, y);
            double t0 = now();
            for (int k = 0; k < a->steps && st == CLT_OK; k++) st = train_step(a, t, x, y);
            sps[i][r] = (double)a->batch * a->steps / (now() - t0);
            clt_trainer_destroy(t);
            if (st != CLT_OK) rc = tool_fail(o[i].what, st);
        }
    int best = -1;
    for (int i = 0; i < n && !rc; i++) {
        if (o[i].status != CLT_OK) continue;
        med[i] = median(sps[i], a->rounds);
        if (best < 0 || med[i] > med[best]) best = i;
    }
    double frac = !rc && best >= 0 && chosen >= 0 ? med[chosen] / med[best] : 0;
    if (!rc && a->json) {
        printf("{\"bench\":\"plan\",\"model\":\"%s\",\"batch\":%zu,\"steps\":%d,\"rounds\":%d,\"devices\":%d,"
               "\"chosen\":%d,\"fastest\":%d,\"chosen_of_fastest\":%.4f,\"candidates\":[", a->model, a->batch,
               a->steps, a->rounds, clt_runtime_device_count(rt), chosen, best, frac);
        for (int i = 0; i < n; i++)
            printf("%s{\"what\":\"%s\",\"status\":\"%s\",\"plan_step_ms\":%.3f,\"samples_per_s\":%.1f}", i ? "," : "",
                   o[i].what, clt_status_name(o[i].status), 1e3 * o[i].step_seconds, med[i]);
        printf("]}\n");
    } else if (!rc) {
        printf("bench plan: %s, batch %zu, %d devices: the planner's trials (mean step), then each candidate "
               "%d steps x %d rounds (medians)\n", a->model, a->batch, clt_runtime_device_count(rt), a->steps,
               a->rounds);
        for (int i = 0; i < n; i++) {
            if (o[i].status != CLT_OK) {
                printf("  %-58s cannot run (%s)\n", o[i].what, clt_status_name(o[i].status));
                continue;
            }
            printf("  %-58s trial %8.2f ms/step   %10.1f samples/s%s%s\n", o[i].what, 1e3 * o[i].step_seconds,
                   med[i], i == chosen ? "  <- chosen" : "", i == best ? "  (fastest)" : "");
        }
        printf("bench plan: the pick (%s) runs at %.3f of the fastest (%s)\n", o[chosen].what, frac, o[best].what);
    }
    free(x), free(y);
    clt_model_destroy(m);
    clt_runtime_destroy(rt);
    return rc;
}

/* ---- the subcommands' options ------------------------------------------------------------ */

static int cmd_bench_dispatch(int argc, char **argv)
{
    const char *spec = NULL;
    long iters = 20000;
    int json = 0;
    tool_opt opts[] = {
        TOOL_DEVICES(&spec),
        TOOL_LONG("iters", "N", &iters, 1, 1e9, "hand-offs timed per measurement (default 20000)"),
        TOOL_JSON(&json),
        TOOL_END};
    const tool_cmd cmd = {"bench dispatch", "[OPTIONS]",
                          "The host cost of handing work to the device worker threads, the overhead every\n"
                          "training step pays: a round trip to one device, to all at once, and to all each\n"
                          "calling clFinish.",
                          NULL, opts};
    int rc = tool_parse(&cmd, argc, argv);
    if (rc >= 0) return rc;
    return bench_dispatch(spec, (int)iters, json);
}

static const char *const schedule_names[] = {"naive", "gpipe", "1f1b", "zb", "all", NULL};   /* clt_pipeline_schedule's order */
enum { SCHEDULE_ALL = 4 };

static int cmd_bench_train(int argc, char **argv)
{
    train_args ta = {NULL, NULL, 256, 20, 0, TOOL_LAYOUT_DEFAULT, CLT_PARALLEL_NONE, -1, 0, 0, 0, 0, 0, 1, 0};
    float weights[16];
    int model = 0, schedule = SCHEDULE_ALL, weights_given = 0;
    long batch = 256, steps = 20, rounds = 1;
    tool_opt opts[] = {
        TOOL_CHOICE("model", tool_model_names, &model, "the model (default seed-mlp)"),
        TOOL_LONG("batch", "N", &batch, 1, 65536, "samples per step (default 256)"),
        TOOL_LONG("steps", "N", &steps, 1, 1000000, "timed steps per configuration, after 3 untimed (default 20)"),
        TOOL_DEVICES(&ta.spec),
        TOOL_LAYOUT_OPTS(&ta.lay),
        TOOL_CHOICE("schedule", schedule_names, &schedule,
                    "model (and tensor with --placement seed): the pipeline schedule; all (the default)\n"
                    "runs one device, then naive, gpipe, 1f1b and zb (tensor: 1f1b)"),
        TOOL_GIVEN(TOOL_CUSTOM("slices", "W,W,...", weights, tool_parse_weights,
                               "tensor: slices in proportion to these weights, one per device"),
                   &weights_given),
        TOOL_GIVEN(TOOL_BYTES("bucket-bytes", "N", &ta.bucket_bytes, 0, 1e18,
                              "data: gradient bucket size (default 512K; 0: one bucket after backward)"),
                   &ta.bucket_given),
        TOOL_LONG("rounds", "R", &rounds, 1, 64,
                  "data, or model with --schedule all: every configuration timed in turns, R rounds,\n"
                  "each ratio taken within its round; the medians are what to quote (default 1)"),
        TOOL_JSON(&ta.json),
        TOOL_END};
    const tool_cmd cmd = {"bench train", "[OPTIONS]",
                          "Samples/s of training steps on random data, and the share of device 0's step in\n"
                          "kernels and transfers (from profiling events, in a second run of the same steps).",
                          "--parallel model runs one device, then naive, gpipe, 1f1b and zb in turn (--schedule\n"
                          "all, the default), every schedule with the same M micro-batches, and reports each\n"
                          "one's speed-up (with --rounds, zb's over 1f1b too). --parallel tensor runs one device, tensor parallel (groups of T devices,\n"
                          "slices in proportion to --slices, or with --split auto to each device's speed timed\n"
                          "at create; default equal), then model parallel naive and 1f1b on the same devices;\n"
                          "with --placement seed the tensor run is a pipeline of tensor groups (fc1 on group 0,\n"
                          "fc2-fc3 on group 1, fc4 on group 0; --schedule, default 1f1b, with M micro-batches).\n"
                          "Every line says what ran: parallelism, schedule, micro-batches and placement.",
                          opts};
    int rc = tool_parse(&cmd, argc, argv);
    if (rc >= 0) return rc;
    ta.model = tool_model_names[model], ta.batch = (size_t)batch, ta.steps = (int)steps, ta.rounds = (int)rounds;
    ta.lay.weights = weights_given ? weights : NULL;
    ta.parallel = (clt_parallel)ta.lay.parallel;
    ta.schedule = schedule == SCHEDULE_ALL ? -1 : schedule;
    ta.micro = (int)ta.lay.micro_batches;
    ta.seed_placement = ta.lay.seed_placement;
    ta.tensor_group = (int)ta.lay.tensor_group;
    if (ta.rounds > 1 && !(ta.parallel == CLT_PARALLEL_MODEL && ta.schedule < 0) && ta.parallel != CLT_PARALLEL_DATA)
        return tool_usage_error(&cmd, "--rounds compares data parallel with one device, or every schedule "
                                      "(--parallel model --schedule all) with one device");
    return bench_train(&ta);
}

static int cmd_bench_plan(int argc, char **argv)
{
    train_args ta = {NULL, NULL, 256, 20, 0, TOOL_LAYOUT_DEFAULT, CLT_PARALLEL_NONE, -1, 0, 0, 0, 0, 0, 3, 0};
    int model = 0;
    long batch = 256, steps = 20, rounds = 3;
    tool_opt opts[] = {
        TOOL_CHOICE("model", tool_model_names, &model, "the model (default seed-mlp)"),
        TOOL_LONG("batch", "N", &batch, 1, 65536, "samples per step (default 256)"),
        TOOL_LONG("steps", "N", &steps, 1, 1000000, "timed steps per candidate and round, after 3 untimed (default 20)"),
        TOOL_LONG("rounds", "R", &rounds, 1, 64, "rounds of every candidate in turn; medians reported (default 3)"),
        TOOL_DEVICES(&ta.spec),
        TOOL_JSON(&ta.json),
        TOOL_END};
    const tool_cmd cmd = {"bench plan", "[OPTIONS]",
                          "The parallel mode --parallel auto picks (clt_plan_parallel: every candidate tried for\n"
                          "a few steps) against every candidate run for real, R rounds in turns: the pick's\n"
                          "samples/s as a fraction of the fastest's.",
                          "CLT_SLOW_DEVICES=D:F slows device D F times, to stand for unequal devices.\n", opts};
    int rc = tool_parse(&cmd, argc, argv);
    if (rc >= 0) return rc;
    ta.model = tool_model_names[model], ta.batch = (size_t)batch, ta.steps = (int)steps, ta.rounds = (int)rounds;
    return bench_plan(&ta);
}

static int cmd_bench_allreduce(int argc, char **argv)
{
    /* Started by mpirun (Open MPI, MPICH or PMIx): the allreduce spans the job. */
    int under_mpi = getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK");
    allreduce_args ar = {NULL, 4 << 10, 64 << 20, 0, 20, 0, 0, under_mpi && clt_have_mpi()};
    static const char *const algo_names[] = {"ring", "naive", "staged", "direct", "all", NULL};
    const int algo_bits[] = {1 << CLT_ALGO_RING, 1 << CLT_ALGO_NAIVE, 1 << CLT_ALGO_RING_STAGED,
                             1 << CLT_ALGO_DIRECT};
    int algo = 4;
    long iters = 20;
    tool_opt opts[] = {
        TOOL_DEVICES(&ar.spec),
        TOOL_BYTES("min-bytes", "A", &ar.min_bytes, 4, 1e18, "the first size (default 4K)"),
        TOOL_BYTES("max-bytes", "B", &ar.max_bytes, 4, 1e18, "the last size, doubling from A (default 64M)"),
        TOOL_LONG("iters", "N", &iters, 1, 1e9, "timed calls per size, after 2 untimed (default 20)"),
        TOOL_CHOICE("algo", algo_names, &algo,
                    "staged is the ring forced through host staging; direct the small-message path\n"
                    "(each device reduces every device's copy itself); all (the default) runs the four"),
        TOOL_BYTES("chunk-bytes", "C", &ar.chunk_bytes, 0, 1e18, "the pipeline chunk (default 0: 1 MiB)"),
        TOOL_FLAG("mpi", &ar.mpi, "span every process of the MPI job (the default under mpirun)"),
        TOOL_JSON(&ar.json),
        TOOL_END};
    const tool_cmd cmd = {"bench allreduce", "[OPTIONS]",
                          "clt_allreduce per size, like nccl-tests, next to a host memcpy of the same size;\n"
                          "every result is checked. Under mpirun (or with --mpi) across every process's\n"
                          "devices, next to MPI_Allreduce of host buffers over the same processes.",
                          "Sizes take K, M, G suffixes (powers of 1024).\n", opts};
    int rc = tool_parse(&cmd, argc, argv);
    if (rc >= 0) return rc;
    if (ar.max_bytes < ar.min_bytes)
        return tool_usage_error(&cmd, "--max-bytes (%zu) is below --min-bytes (%zu)", ar.max_bytes, ar.min_bytes);
    ar.algos = 0;
    for (int i = 0; i < 4; i++)
        if (algo == 4 || algo == i) ar.algos |= algo_bits[i];
    ar.iters = (int)iters;
    return bench_allreduce(&ar);
}

static const tool_command benchmarks[] = {
    {"dispatch", cmd_bench_dispatch, "host cost of handing work to the device threads"},
    {"train", cmd_bench_train, "samples/s of training steps, and the share in kernels"},
    {"plan", cmd_bench_plan, "--parallel auto's pick against every candidate it tried, run for real"},
    {"gemm", cmd_bench_gemm, "GFLOPS of the seed MLP's GEMMs: CLBlast's, tuned, OpenBLAS"},
    {"allreduce", cmd_bench_allreduce, "clt_allreduce per size (nccl-tests style), every result checked"},
    {NULL, NULL, NULL}};

int cmd_bench(int argc, char **argv)
{
    return tool_dispatch("cltrain bench", "benchmark", benchmarks, NULL, argc, argv);
}
