/* A program that never asks for MPI does not load it: linked as a user's program is (the
 * public libcltrain only, through its installed header), it runs an all-reduce and finds no
 * libmpi in /proc/self/maps. In a build with MPI, opts.mpi = 1 then loads libcltrain-mpi
 * (dlopen) and runs the same all-reduce through it as a one-process MPI job.
 *
 *     tests/test_no_mpi                   (make check; tests/install.sh against an install)
 *     tests/test_no_mpi --without-layer   (tests/install.sh, with libcltrain-mpi taken away:
 *                                          opts.mpi is refused, naming the library)
 *
 * Only cltrain.h and the tests' header-only helpers: tests/install.sh builds this file against
 * an installed cltrain with pkg-config. */
#include "tap.h"

#define COUNT 1000

/* 1 when a line of /proc/self/maps names a file containing `name`, 0 when none does, -1 when
 * the maps cannot be read. */
static int mapped(const char *name)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f) return -1;
    char line[4096];
    int found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        const char *path = strchr(line, '/');
        found = path && strstr(path, name) != NULL;
    }
    fclose(f);
    return found;
}

typedef struct {
    cl_mem bufs[TEST_MAX_DEVICES];
    float *host;   /* COUNT floats per device */
} job;

static clt_status read_back(const clt_device_ctx *d, void *user)
{
    job *j = user;
    cl_int err = clEnqueueReadBuffer(d->queue, j->bufs[d->index], CL_TRUE, 0, COUNT * sizeof(float),
                                     j->host + (size_t)d->index * COUNT, 0, NULL, NULL);
    return err == CL_SUCCESS ? CLT_OK : CLT_ERR_OPENCL;
}

/* Device d starts with (d + 1) * (i % 7); after the in-place sum every device must hold
 * n(n+1)/2 * (i % 7) exactly (small integers: no rounding, atol = rtol = 0). */
static void check_allreduce(clt_runtime *rt, const char *what)
{
    int n = clt_runtime_device_count(rt);
    job j = {.host = calloc((size_t)n * COUNT, sizeof(float))};
    float start[COUNT];
    bool made = j.host && n <= TEST_MAX_DEVICES;
    for (int d = 0; d < n && made; d++) {
        for (int i = 0; i < COUNT; i++) start[i] = (float)((d + 1) * (i % 7));
        made = (j.bufs[d] = clCreateBuffer(clt_runtime_context(rt, d),
                                           CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR,
                                           sizeof start, start, NULL)) != NULL;
    }
    ok(made, "%s: a buffer on each of the %d device(s)", what, n);
    if (made) {
        ok_status(clt_allreduce(rt, j.bufs, NULL, COUNT, CLT_OP_SUM, NULL),
                  "%s: clt_allreduce over %d device(s)", what, n);
        ok_status(clt_runtime_exec_all(rt, read_back, &j), "%s: read back", what);
        long wrong = -1;
        for (int d = 0; d < n && wrong < 0; d++)
            for (int i = 0; i < COUNT && wrong < 0; i++)
                if (j.host[(size_t)d * COUNT + i] != (float)(n * (n + 1) / 2 * (i % 7)))
                    wrong = (long)d * COUNT + i;
        ok(wrong < 0, "%s: every device holds the exact sum (first wrong element: %ld)", what, wrong);
    }
    for (int d = 0; d < n; d++)
        if (j.bufs[d]) clReleaseMemObject(j.bufs[d]);
    free(j.host);
}

int main(int argc, char **argv)
{
    bool without_layer = argc > 1 && !strcmp(argv[1], "--without-layer");
    if (argc > 1 && !without_layer) {
        fprintf(stderr, "usage: test_no_mpi [--without-layer]\n");
        return 2;
    }
    tap_require_device();
    clt_runtime *rt = NULL;
    ok_status(clt_runtime_create(&rt, test_spec_all()), "a runtime on %d device(s), no MPI asked for",
              test_ndev());
    if (!rt) return tap_done();
    ok(clt_runtime_process_count(rt) == 1 && clt_runtime_process_rank(rt) == 0,
       "one process, rank 0");
    check_allreduce(rt, "without MPI");
    clt_runtime_destroy(rt);
    /* The maps are read for real: the library itself is in them. */
    ok(mapped("libcltrain.so") == 1, "/proc/self/maps is read and lists libcltrain.so");
    ok(mapped("libmpi") == 0, "no libmpi in /proc/self/maps");
    ok(mapped("libcltrain-mpi") == 0, "no libcltrain-mpi either");

    clt_runtime_options o = clt_runtime_options_default();
    o.devices = test_spec_one();
    o.mpi = 1;
    rt = (clt_runtime *)1;
    if (!clt_have_mpi()) {
        ok_error(clt_runtime_create_ex(&rt, &o), CLT_ERR_UNSUPPORTED, "--with-mpi",
                 "opts.mpi in a build without MPI: CLT_ERR_UNSUPPORTED naming configure --with-mpi");
        ok(rt == NULL, "  ... and no runtime");
    } else if (without_layer) {
        ok_error(clt_runtime_create_ex(&rt, &o), CLT_ERR_UNSUPPORTED, "libcltrain-mpi.so",
                 "opts.mpi without libcltrain-mpi installed: CLT_ERR_UNSUPPORTED naming it");
        ok(rt == NULL, "  ... and no runtime");
        ok(mapped("libmpi") == 0, "  ... and still no libmpi in /proc/self/maps");
    } else {
        /* No mpirun: MPI's singleton start, one process of one. */
        clt_status st = clt_runtime_create_ex(&rt, &o);
        if (st != CLT_OK) diag("%s: %s", clt_status_name(st), clt_last_error());
        ok(st == CLT_OK, "opts.mpi: a runtime through libcltrain-mpi, loaded for it");
        ok(mapped("libcltrain-mpi") == 1 && mapped("libmpi.so") == 1,
           "  ... libcltrain-mpi and libmpi are now in /proc/self/maps");
        if (st == CLT_OK) {
            ok(clt_runtime_process_count(rt) == 1 && clt_runtime_process_rank(rt) == 0,
               "  ... one process of one, rank 0");
            check_allreduce(rt, "under MPI");
            clt_runtime_destroy(rt);
        }
    }
    return tap_done();
}
