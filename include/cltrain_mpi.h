/* cltrain under MPI: a runtime over a communicator of your own. Installed only by builds with
 * MPI (configure --with-mpi), with the library that holds it, libcltrain-mpi: build with
 * `cc app.c $(pkg-config --cflags --libs cltrain-mpi)` (it links libcltrain-mpi, libcltrain and
 * MPI, and puts <mpi.h> on the include path).
 *
 *     int provided;
 *     MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
 *     clt_runtime_options o = clt_runtime_options_default();
 *     o.devices = "gpu";                       // this process's own devices
 *     clt_runtime *rt;
 *     if (clt_runtime_create_mpi(&rt, &o, MPI_COMM_WORLD) != CLT_OK) ...
 *
 * The plain opts.mpi = 1 of cltrain.h does the same over MPI_COMM_WORLD without this header. */
#ifndef CLTRAIN_MPI_H
#define CLTRAIN_MPI_H

#include <mpi.h>

#include "cltrain.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A runtime spanning every process of comm (a collective call over comm: all of its processes
 * make it, each with the same number of local devices). The runtime keeps duplicates of comm,
 * so the caller may free comm afterwards; MPI must stay initialised until clt_runtime_destroy.
 * MPI must be initialised with MPI_THREAD_MULTIPLE (the devices' worker threads call MPI at
 * once): CLT_ERR_UNSUPPORTED otherwise, as when MPI is not initialised. opts->mpi is ignored. */
CLT_API clt_status clt_runtime_create_mpi(clt_runtime **out, const clt_runtime_options *opts,
                                          MPI_Comm comm);

#ifdef __cplusplus
}
#endif
#endif /* CLTRAIN_MPI_H */
