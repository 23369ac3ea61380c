/* The small kernels around the GEMMs of Linear and Conv2d: bias broadcast and bias gradients.
 * Reductions loop in a fixed order (no atomics), so results are the same bits every run. */

/* y[r, c] += b[c] for a (rows, cols) matrix. */
__kernel void bias_add_rows(const ulong rows, const ulong cols,
                            __global float *y, const ulong yo,
                            __global const float *b, const ulong bo)
{
    const size_t i = get_global_id(0);
    if (i >= rows * cols) return;
    y[yo + i] += b[bo + i % cols];
}

/* db[c] += sum over rows of dy[r, c] (one work-item per column). */
__kernel void colsum_acc(const ulong rows, const ulong cols,
                         __global const float *dy, const ulong dyo,
                         __global float *db, const ulong dbo)
{
    const size_t c = get_global_id(0);
    if (c >= cols) return;
    float s = 0.0f;
    for (size_t r = 0; r < rows; r++) s += dy[dyo + r * cols + c];
    db[dbo + c] += s;
}

/* db[r] += sum over columns of m[r, c] (one work-item per row). */
__kernel void rowsum_acc(const ulong rows, const ulong cols,
                         __global const float *m, const ulong mo,
                         __global float *db, const ulong dbo)
{
    const size_t r = get_global_id(0);
    if (r >= rows) return;
    float s = 0.0f;
    for (size_t c = 0; c < cols; c++) s += m[mo + r * cols + c];
    db[dbo + r] += s;
}
