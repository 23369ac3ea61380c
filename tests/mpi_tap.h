/* TAP for the MPI tests: every process checks its own devices, a check's verdict is the AND
 * over processes, and process 0 prints it. */
#ifndef CLT_MPI_TAP_H
#define CLT_MPI_TAP_H

#include <mpi.h>

#include "tap.h"

static int P, me;   /* processes and this one's rank in MPI_COMM_WORLD */

__attribute__((format(printf, 2, 3))) static bool all_ok(bool mine, const char *fmt, ...)
{
    int v = mine, all = 0;
    MPI_Allreduce(&v, &all, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD);
    char desc[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(desc, sizeof desc, fmt, ap);
    va_end(ap);
    if (me == 0) return ok(all != 0, "%s", desc);
    return all != 0;
}

/* Whether every process holds the bits process 0 holds (n floats). */
static bool same_everywhere(const float *v, size_t n)
{
    float *r0 = malloc((n ? n : 1) * sizeof *r0);
    if (me == 0) memcpy(r0, v, n * sizeof *r0);
    MPI_Bcast(r0, (int)n, MPI_FLOAT, 0, MPI_COMM_WORLD);
    bool same = memcmp(r0, v, n * sizeof *r0) == 0;
    free(r0);
    return same;
}

#endif
