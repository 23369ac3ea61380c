/* Data parallelism across the processes of an MPI job (run by tests/test_mpi.sh under mpirun):
 * P processes of n devices each, every one passing the same global batches, train the seed MLP
 * (with dropout) as one process with n * P devices does: the same losses and parameters (within
 * atol 1e-6 + rtol 1e-5, and bit for bit with 2 devices in all, where the sums meet in the same
 * order), the same gradients read back, the same predictions; every process holds the same bits.
 * Modes that do not cross processes are refused. MPI is initialised here (MPI_THREAD_MULTIPLE)
 * and the runtime made with clt_runtime_create_mpi; process 0 trains the one-process reference
 * first, on a runtime that opens its device n * P times. */
#include "internal.h"
#include "ref.h"
#include "mpi_tap.h"

#include <time.h>

#include "cltrain_mpi.h"

#define ATOL 1e-6
#define RTOL 1e-5
#define STEPS 4
#define BATCH 16

static float xs[STEPS][BATCH * 1024];
static int32_t ys[STEPS][BATCH];

typedef struct {
    float loss[STEPS];
    float *params, *grads;   /* flat, nparams */
    float *pred;             /* (BATCH, 10) of the first batch, after training */
} run_result;

/* Reads every linear layer's weight and bias (get: params or gradients). */
static clt_status read_flat(clt_trainer *t, const clt_model *m, float *out, int grads)
{
    clt_status st = CLT_OK;
    for (int l = 0; l < clt_model_layer_count(m) && st == CLT_OK; l++) {
        if (m->layers[l].desc.kind != CLT_LAYER_LINEAR) continue;
        clt_shape ws, bs;
        clt_model_param_shape(m, l, "weight", &ws);
        clt_model_param_shape(m, l, "bias", &bs);
        float *w = out + m->layers[l].param_off, *b = w + clt_shape_numel(ws);
        st = grads ? clt_trainer_get_grad(t, l, "weight", w, clt_shape_numel(ws))
                   : clt_trainer_get_param(t, l, "weight", w, clt_shape_numel(ws));
        if (st == CLT_OK)
            st = grads ? clt_trainer_get_grad(t, l, "bias", b, clt_shape_numel(bs))
                       : clt_trainer_get_param(t, l, "bias", b, clt_shape_numel(bs));
    }
    return st;
}

static clt_train_params params(void)
{
    clt_train_params p = clt_train_params_default();
    p.optim = clt_adamw(1e-3f, 0.01f);
    p.seed = 5;
    p.parallel = CLT_PARALLEL_DATA;
    p.verify_replicas = 1;   /* the devices of each process hold the same bits after each step */
    p.max_batch = BATCH;
    p.clip_norm = 1.0f;      /* the gradient norm gathered from every process */
    return p;
}

static clt_status train(clt_runtime *rt, const clt_model *m, run_result *out)
{
    clt_train_params p = params();
    clt_trainer *t = NULL;
    size_t np = clt_model_param_count(m);
    out->params = malloc(np * sizeof(float));
    out->grads = malloc(np * sizeof(float));
    out->pred = malloc(BATCH * 10 * sizeof(float));
    clt_status st = clt_trainer_create(&t, rt, m, &p);
    for (int s = 0; s < STEPS && st == CLT_OK; s++)
        st = clt_trainer_step(t, xs[s], ys[s], BATCH, &out->loss[s]);
    if (st == CLT_OK) st = read_flat(t, m, out->params, 0);
    if (st == CLT_OK) st = read_flat(t, m, out->grads, 1);
    if (st == CLT_OK) st = clt_trainer_predict(t, xs[0], BATCH, out->pred);
    if (st != CLT_OK) printf("# process %d: %s\n", me, clt_last_error());
    clt_trainer_destroy(t);
    return st;
}

/* Waits for the others without spinning on the core that process 0's reference run needs. */
static void quiet_barrier(void)
{
    MPI_Request req;
    MPI_Ibarrier(MPI_COMM_WORLD, &req);
    int done = 0;
    while (!done) {
        MPI_Test(&req, &done, MPI_STATUS_IGNORE);
        if (!done) nanosleep(&(struct timespec){0, 5000000}, NULL);
    }
}

static bool close_all(const float *got, const float *ref, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++)
        if (!(fabs((double)got[i] - ref[i]) <= ATOL + RTOL * fabs((double)ref[i]))) {
            printf("# process %d: %s[%zu] is %.9g, reference %.9g\n", me, what, i, (double)got[i],
                   (double)ref[i]);
            return false;
        }
    return true;
}


int main(int argc, char **argv)
{
    int provided;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
    MPI_Comm_size(MPI_COMM_WORLD, &P);
    MPI_Comm_rank(MPI_COMM_WORLD, &me);
    size_t ndev = 0;
    clt_devices_list(NULL, 0, &ndev);
    if (ndev == 0) {
        if (me == 0) printf("1..0 # SKIP no OpenCL device\n");
        MPI_Finalize();
        return 77;
    }
    int n = test_ndev(), G = n * P;
    if (me == 0) printf("1..%d\n", G == 2 ? 12 : 11);
    ref_rng r = {99};
    for (int s = 0; s < STEPS; s++) {
        ref_fill(&r, xs[s], BATCH * 1024, 1.0);
        for (int i = 0; i < BATCH; i++) ys[s][i] = (int32_t)((ref_next(&r) >> 33) % 10);
    }
    clt_model *m = ref_seed_mlp(0.2f);
    size_t np = clt_model_param_count(m);

    /* the reference: one process, G devices */
    run_result ref = {0};
    clt_status st = CLT_OK;
    if (me == 0) {
        clt_runtime *rt1 = NULL;
        st = clt_runtime_create(&rt1, test_spec_repeat(G));
        if (st == CLT_OK) st = train(rt1, m, &ref);
        else printf("# reference runtime: %s\n", clt_last_error());
        clt_runtime_destroy(rt1);
    } else {
        ref.params = malloc(np * sizeof(float)), ref.grads = malloc(np * sizeof(float));
        ref.pred = malloc(BATCH * 10 * sizeof(float));
    }
    quiet_barrier();
    MPI_Bcast(ref.loss, STEPS, MPI_FLOAT, 0, MPI_COMM_WORLD);
    MPI_Bcast(ref.params, (int)np, MPI_FLOAT, 0, MPI_COMM_WORLD);
    MPI_Bcast(ref.grads, (int)np, MPI_FLOAT, 0, MPI_COMM_WORLD);
    MPI_Bcast(ref.pred, BATCH * 10, MPI_FLOAT, 0, MPI_COMM_WORLD);
    all_ok(st == CLT_OK, "reference: one process with %d devices trains %d steps", G, STEPS);

    clt_runtime *rt = NULL;
    clt_runtime_options ro = clt_runtime_options_default();
    ro.devices = test_spec_all();   /* each process's devices: the test selection */
    st = clt_runtime_create_mpi(&rt, &ro, MPI_COMM_WORLD);
    if (st != CLT_OK) printf("# process %d: %s\n", me, clt_last_error());
    all_ok(st == CLT_OK && clt_runtime_process_count(rt) == P,
           "clt_runtime_create_mpi over MPI_COMM_WORLD: %d processes x %d devices", P, n);
    if (st != CLT_OK) {
        MPI_Finalize();
        return 1;
    }
    run_result got = {0};
    st = train(rt, m, &got);
    all_ok(st == CLT_OK, "%d processes x %d devices, the same global batches: %d steps", P, n, STEPS);
    all_ok(close_all(got.loss, ref.loss, STEPS, "loss"),
           "  ... the losses of one process with %d devices", G);
    all_ok(close_all(got.params, ref.params, np, "params"), "  ... its parameters");
    all_ok(close_all(got.grads, ref.grads, np, "grads"),
           "  ... its last gradients (read back from the processes that hold each shard)");
    all_ok(close_all(got.pred, ref.pred, BATCH * 10, "pred"),
           "  ... its predictions (every process gets every row)");
    /* With 2 devices in all each sum has one order; with more the processes add in another. */
    bool bits = !memcmp(got.params, ref.params, np * 4) && !memcmp(got.loss, ref.loss, sizeof got.loss);
    if (G == 2) all_ok(bits, "  ... bit for bit with 2 devices in all (a + b is b + a)");
    all_ok(same_everywhere(got.params, np) && same_everywhere(got.loss, STEPS) &&
               same_everywhere(got.pred, BATCH * 10),
           "every process holds the same parameters, losses and predictions, bit for bit");

    clt_train_params p = params();
    p.parallel = CLT_PARALLEL_NONE;
    clt_trainer *t = NULL;
    st = clt_trainer_create(&t, rt, m, &p);
    all_ok(st == CLT_ERR_UNSUPPORTED && !t && strstr(clt_last_error(), "CLT_PARALLEL_DATA"),
           "under MPI a one-device trainer is refused (CLT_ERR_UNSUPPORTED)");
    p = params();
    p.split = CLT_SPLIT_AUTO;
    st = clt_trainer_create(&t, rt, m, &p);
    all_ok(st == CLT_ERR_UNSUPPORTED && !t, "  ... and a measured batch split");
    p = params();
    p.max_batch = 4;   /* fewer rows than devices in some runs: ranks without rows still reduce */
    st = clt_trainer_create(&t, rt, m, &p);
    float l1 = 0;
    if (st == CLT_OK) st = clt_trainer_step(t, xs[1], ys[1], 1, &l1);
    if (st != CLT_OK) printf("# process %d: %s\n", me, clt_last_error());
    all_ok(st == CLT_OK && isfinite(l1) && same_everywhere(&l1, 1),
           "a batch of one row over %d devices: a step, the same loss everywhere", G);
    clt_trainer_destroy(t);
    clt_runtime_destroy(rt);
    clt_model_destroy(m);
    free(got.params), free(got.grads), free(got.pred), free(ref.params), free(ref.grads), free(ref.pred);
    MPI_Finalize();
    return tap_failed != 0;
}
