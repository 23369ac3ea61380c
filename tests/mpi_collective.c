/* Collectives across the processes of an MPI job (run by tests/test_mpi.sh under mpirun -np 2
 * and 3): a runtime with opts.mpi spans every process's devices; the hierarchical all-reduce
 * (SUM, AVG, MAX, MIN; in place and out of place; mapped and staged rings; one chunk and
 * many) against a reference computed by every process from the global inputs, with identical
 * bits on every device of every process; reduce-scatter and all-gather with block d * P + p on
 * device d of process p; a broadcast refused; a process that skips a call named in the others'
 * CLT_ERR_TIMEOUT. With --thread-level: MPI initialised with less than MPI_THREAD_MULTIPLE is
 * refused with a clear message.
 *
 * Every process checks its own devices; the verdict of a check is the AND over processes, and
 * process 0 prints the TAP. Small integers stored as floats make every reduction order exact
 * (atol 0, rtol 0); one run on random floats compares within atol 1e-5 + rtol 1e-5. */
#include "internal.h"
#include "mpi_tap.h"

#include "cltrain_mpi.h"

typedef struct {
    cl_mem buf;
    float *host;
    size_t floats;
    int write;
} io_job;

static clt_status io_task(clt__worker *w, void *arg)
{
    io_job *j = arg;
    cl_int err = j->write ? clEnqueueWriteBuffer(w->queue, j->buf, CL_TRUE, 0, j->floats * 4, j->host, 0, NULL, NULL)
                          : clEnqueueReadBuffer(w->queue, j->buf, CL_TRUE, 0, j->floats * 4, j->host, 0, NULL, NULL);
    return err == CL_SUCCESS ? CLT_OK : clt__fail_cl(err, clt__worker_name(w), "test io");
}

static void io_all(clt_runtime *rt, cl_mem *bufs, float **host, size_t floats, int write)
{
    int n = clt_runtime_device_count(rt);
    io_job jobs[16];
    for (int d = 0; d < n; d++) jobs[d] = (io_job){bufs[d], host[d], floats, write};
    if (clt__runtime_parallel(rt, io_task, jobs, sizeof jobs[0]) != CLT_OK)
        printf("# io_all: %s\n", clt_last_error());
}

/* Global device g = p * n + d. Exact small integers, or pseudo-random floats. */
static float value(int g, size_t i, bool random)
{
    if (!random) return (float)((long)((i * 7 + (size_t)g * 13) % 101) - 50);
    uint64_t s = (uint64_t)g * 1000003u + i;
    return (float)((double)(clt__splitmix64(&s) >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static double reduce_ref(clt_op op, size_t i, int G, bool random)
{
    double acc = value(0, i, random);
    for (int g = 1; g < G; g++) {
        double v = value(g, i, random);
        if (op == CLT_OP_MAX) acc = v > acc ? v : acc;
        else if (op == CLT_OP_MIN) acc = v < acc ? v : acc;
        else acc += v;
    }
    /* AVG: the sum (exact for integers) rounded to float, then divided in float as the library
     * does, so the integer runs still compare exactly */
    return op == CLT_OP_AVG ? (double)((float)acc / (float)G) : acc;
}

static const char *const OP_NAMES[] = {"SUM", "AVG", "MAX", "MIN"};

/* All-reduce of count floats; checks the reference and that every device of every process
 * holds the same bits (a checksum of the bits, gathered). */
static void check_allreduce(clt_runtime *rt, size_t count, clt_op op, bool in_place, bool random,
                            clt_algo algo, size_t chunk_bytes)
{
    int n = clt_runtime_device_count(rt), G = n * P;
    cl_mem a[16], b[16];
    float *host[16];
    for (int d = 0; d < n; d++) {
        a[d] = clCreateBuffer(clt_runtime_context(rt, d), CL_MEM_READ_WRITE, count * 4, NULL, NULL);
        b[d] = clCreateBuffer(clt_runtime_context(rt, d), CL_MEM_READ_WRITE, count * 4, NULL, NULL);
        host[d] = malloc(count * 4);
        for (size_t i = 0; i < count; i++) host[d][i] = value(me * n + d, i, random);
    }
    io_all(rt, a, host, count, 1);
    clt_collective_options o = clt_collective_options_default();
    o.algo = algo;
    o.chunk_bytes = chunk_bytes;
    clt_status st = clt_allreduce(rt, a, in_place ? NULL : b, count, op, &o);
    if (st != CLT_OK) printf("# process %d: %s\n", me, clt_last_error());
    io_all(rt, in_place ? a : b, host, count, 0);
    bool good = st == CLT_OK, same = true;
    double atol = random ? 1e-5 : 0, rtol = random ? 1e-5 : 0;
    for (int d = 0; d < n && good; d++)
        for (size_t i = 0; i < count; i++) {
            double ref = reduce_ref(op, i, G, random), got = host[d][i];
            if (!(fabs(got - ref) <= atol + rtol * fabs(ref))) {
                printf("# process %d device %d [%zu]: %.9g, want %.9g\n", me, d, i, got, ref);
                good = false;
                break;
            }
        }
    /* the same bits everywhere: each device against device d of process 0 */
    for (int d = 0; d < n; d++) same &= same_everywhere(host[d], count);
    for (int d = 1; d < n; d++) same &= memcmp(host[0], host[d], count * 4) == 0;
    all_ok(good, "all-reduce %s of %zu floats over %d processes x %d devices (%s, %s%s%s)",
           OP_NAMES[op], count, P, n, in_place ? "in place" : "out of place",
           algo == CLT_ALGO_RING_STAGED ? "staged ring" : "auto", random ? ", random floats" : "",
           chunk_bytes ? ", 4 KiB chunks" : "");
    all_ok(same, "  ... the same bits on every device of every process");
    for (int d = 0; d < n; d++) clReleaseMemObject(a[d]), clReleaseMemObject(b[d]), free(host[d]);
}

/* Reduce-scatter then all-gather, in place, count floats per device: device d of process p
 * gets block d * P + p of the sum, and the gather puts every block back in its place. */
static void check_scatter_gather(clt_runtime *rt, size_t count)
{
    int n = clt_runtime_device_count(rt), G = n * P;
    size_t total = (size_t)G * count;
    cl_mem a[16];
    float *host[16];
    for (int d = 0; d < n; d++) {
        a[d] = clCreateBuffer(clt_runtime_context(rt, d), CL_MEM_READ_WRITE, total * 4, NULL, NULL);
        host[d] = malloc(total * 4);
        for (size_t i = 0; i < total; i++) host[d][i] = value(me * n + d, i, false);
    }
    io_all(rt, a, host, total, 1);
    clt_status st = clt_reduce_scatter(rt, a, NULL, count, CLT_OP_SUM, NULL);
    if (st != CLT_OK) printf("# process %d: %s\n", me, clt_last_error());
    io_all(rt, a, host, total, 0);
    bool good = st == CLT_OK;
    for (int d = 0; d < n && good; d++) {
        size_t blk = (size_t)d * (size_t)P + (size_t)me;
        for (size_t i = blk * count; i < (blk + 1) * count && good; i++)
            if (host[d][i] != (float)reduce_ref(CLT_OP_SUM, i, G, false)) {
                printf("# process %d device %d [%zu]: %g\n", me, d, i, (double)host[d][i]);
                good = false;
            }
    }
    all_ok(good, "reduce-scatter of %zu floats per device: device d of process p holds block "
           "d*P+p", count);
    st = clt_all_gather(rt, NULL, a, count, NULL);
    if (st != CLT_OK) printf("# process %d: %s\n", me, clt_last_error());
    io_all(rt, a, host, total, 0);
    good = st == CLT_OK;
    for (int d = 0; d < n && good; d++)
        for (size_t i = 0; i < total && good; i++)
            if (host[d][i] != (float)reduce_ref(CLT_OP_SUM, i, G, false)) {
                printf("# process %d device %d [%zu]: %g\n", me, d, i, (double)host[d][i]);
                good = false;
            }
    all_ok(good, "all-gather of the scattered sums: every device of every process holds all %d "
           "blocks", G);
    for (int d = 0; d < n; d++) clReleaseMemObject(a[d]), free(host[d]);
}

static int thread_level_test(int argc, char **argv)
{
    int provided;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &provided);
    MPI_Comm_size(MPI_COMM_WORLD, &P);
    MPI_Comm_rank(MPI_COMM_WORLD, &me);
    if (me == 0) printf("1..2\n");
    clt_runtime *rt = NULL;
    clt_status st = clt_runtime_create_mpi(&rt, NULL, MPI_COMM_WORLD);
    bool good = st == CLT_ERR_UNSUPPORTED && strstr(clt_last_error(), "MPI_THREAD_MULTIPLE");
    if (!good) printf("# %s: %s\n", clt_status_name(st), clt_last_error());
    all_ok(good && !rt, "MPI initialised with MPI_THREAD_SERIALIZED: CLT_ERR_UNSUPPORTED naming "
           "MPI_THREAD_MULTIPLE");
    st = clt_runtime_create_mpi(&rt, NULL, MPI_COMM_NULL);
    all_ok(st == CLT_ERR_UNSUPPORTED && !rt, "  ... checked before anything else");
    clt_runtime_destroy(rt);
    MPI_Finalize();
    return tap_failed != 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "--thread-level")) return thread_level_test(argc, argv);
    clt_runtime_options ro = clt_runtime_options_default();
    ro.mpi = 1;   /* the library initialises MPI itself */
    ro.devices = test_spec_all();   /* each process's devices: the test selection */
    clt_runtime *rt = NULL;
    clt_status st = clt_runtime_create_ex(&rt, &ro);
    if (st == CLT_ERR_DEVICE_NOT_FOUND) {
        printf("1..0 # SKIP no OpenCL device\n");
        return 77;
    }
    MPI_Comm_size(MPI_COMM_WORLD, &P);
    MPI_Comm_rank(MPI_COMM_WORLD, &me);
    if (me == 0) printf("1..41\n");
    if (st != CLT_OK) printf("# process %d: %s\n", me, clt_last_error());
    int provided = 0;
    MPI_Query_thread(&provided);
    all_ok(st == CLT_OK && provided == MPI_THREAD_MULTIPLE,
           "opts.mpi: MPI initialised by the library with MPI_THREAD_MULTIPLE, runtime created");
    if (st != CLT_OK) return 1;
    all_ok(clt_runtime_process_count(rt) == P && clt_runtime_process_rank(rt) == me,
           "the runtime spans %d processes; this one's rank is MPI's", P);

    /* 1: the vector split over fewer floats than devices; 5: a few each; 100003: odd; 300001
     * with 4 KiB chunks: many chunks per segment. */
    const size_t counts[] = {1, 5, 100003};
    for (size_t c = 0; c < 3; c++)
        for (int op = 0; op < 4; op++)
            check_allreduce(rt, counts[c], (clt_op)op, op % 2 == 0, false, CLT_ALGO_AUTO, 0);
    check_allreduce(rt, 300001, CLT_OP_SUM, true, false, CLT_ALGO_AUTO, 4096);
    check_allreduce(rt, 300001, CLT_OP_AVG, false, false, CLT_ALGO_RING_STAGED, 4096);
    check_allreduce(rt, 100003, CLT_OP_SUM, true, true, CLT_ALGO_AUTO, 0);
    check_allreduce(rt, 100003, CLT_OP_SUM, false, true, CLT_ALGO_RING_STAGED, 0);
    check_scatter_gather(rt, 1001);

    int n = clt_runtime_device_count(rt);
    cl_mem a[16];
    for (int d = 0; d < n; d++)
        a[d] = clCreateBuffer(clt_runtime_context(rt, d), CL_MEM_READ_WRITE, 4096, NULL, NULL);
    st = clt_broadcast(rt, a, 16, 0, NULL);
    all_ok(st == CLT_ERR_UNSUPPORTED && strstr(clt_last_error(), "cross processes"),
           "a broadcast under MPI: CLT_ERR_UNSUPPORTED, saying why");
    clt_collective_options o = clt_collective_options_default();
    o.algo = CLT_ALGO_NAIVE;
    st = clt_allreduce(rt, a, NULL, 16, CLT_OP_SUM, &o);
    all_ok(st == CLT_ERR_UNSUPPORTED, "CLT_ALGO_NAIVE under MPI: CLT_ERR_UNSUPPORTED");

    /* The last process skips a call: the others time out naming it, then refuse further calls. */
    o = clt_collective_options_default();
    o.timeout_s = 2.0;
    char want[64];
    snprintf(want, sizeof want, "process(es) %d (", P - 1);
    bool good = true;
    double t0 = MPI_Wtime();
    if (me != P - 1) {
        st = clt_allreduce(rt, a, NULL, 1024, CLT_OP_SUM, &o);
        good = st == CLT_ERR_TIMEOUT && strstr(clt_last_error(), want);
        if (!good) printf("# process %d: %s: %s\n", me, clt_status_name(st), clt_last_error());
    }
    double waited = MPI_Wtime() - t0;
    all_ok(good, "a process that skips an all-reduce is named in the others' CLT_ERR_TIMEOUT");
    all_ok(me == P - 1 || waited < 30.0, "  ... within a bounded time (%.1f s for a 2 s timeout)", waited);
    good = true;
    if (me != P - 1) {
        st = clt_allreduce(rt, a, NULL, 1024, CLT_OP_SUM, &o);
        good = st == CLT_ERR_ABORTED && strstr(clt_last_error(), "earlier failure");
        if (!good) printf("# process %d: %s: %s\n", me, clt_status_name(st), clt_last_error());
    }
    all_ok(good, "  ... and the runtime then refuses collectives (CLT_ERR_ABORTED, saying why)");
    for (int d = 0; d < n; d++) clReleaseMemObject(a[d]);
    clt_runtime_destroy(rt);
    return tap_failed != 0;
}
