/* The small kernels around the GEMMs of Linear and Conv2d: bias broadcast and bias gradients.
 * Reductions loop in a fixed order (no atomics), so results are the same bits every run. */
#pragma OPENCL FP_CONTRACT OFF   /* the same bits on every vendor; fma() where fusing is meant */

/* y[r, c] += b[c] for a (rows, cols) matrix. */
__kernel void bias_add_rows(const ulong rows, const ulong cols,
                            __global float *y, const ulong yo,
                            __global const float *b, const ulong bo)
{
    const size_t i = get_global_id(0);
    if (i >= rows * cols) return;
    y[yo + i] += b[bo + i % cols];
}

/* db[c] += sum over rows of dy[r, c] (acc 0: db[c] = the sum): 16 columns per work-item, each
 * summed over the rows in order, as one column per work-item did (the same bits) but with
 * vector loads along the rows: the column-wise loop took ~0.7 ns per element on PoCL. */
__kernel void colsum_acc(const ulong rows, const ulong cols,
                         __global const float *dy, const ulong dyo,
                         __global float *db, const ulong dbo, const int acc)
{
    const size_t c0 = get_global_id(0) * 16;
    if (c0 >= cols) return;
    if (c0 + 16 <= cols) {
        float16 s = (float16)(0.0f);
        for (size_t r = 0; r < rows; r++) s += vload16(0, dy + dyo + r * cols + c0);
        vstore16(acc ? vload16(0, db + dbo + c0) + s : s, 0, db + dbo + c0);
        return;
    }
    for (size_t c = c0; c < cols; c++) {
        float s = 0.0f;
        for (size_t r = 0; r < rows; r++) s += dy[dyo + r * cols + c];
        db[dbo + c] = acc ? db[dbo + c] + s : s;
    }
}

/* db[r] += sum over columns of m[r, c] (acc 0: db[r] = the sum; one work-item per row). */
__kernel void rowsum_acc(const ulong rows, const ulong cols,
                         __global const float *m, const ulong mo,
                         __global float *db, const ulong dbo, const int acc)
{
    const size_t r = get_global_id(0);
    if (r >= rows) return;
    float s = 0.0f;
    for (size_t c = 0; c < cols; c++) s += m[mo + r * cols + c];
    db[dbo + r] = acc ? db[dbo + r] + s : s;
}
