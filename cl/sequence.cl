/* Sequence layers: token and position embeddings, and the residual add. Rows are positions:
 * a batch of B sequences of T positions is B x T rows. Every sum runs in a fixed order in one
 * work-item: the same bits on every run, with no atomics. */
#pragma OPENCL FP_CONTRACT OFF   /* the same bits on every vendor; fma() where fusing is meant */

/* y[r, :] = table[ids[r], :] for n rows of C features. */
__kernel void embedding_forward(const ulong n, const uint C, __global const int *ids, const ulong io,
                                __global const float *table, const ulong to,
                                __global float *y, const ulong yo)
{
    const size_t g = get_global_id(0);
    if (g >= n * C) return;
    const size_t r = g / C, c = g % C;
    y[yo + g] = table[to + (size_t)ids[io + r] * C + c];
}

/* dtable[ids[r], c] += dy[r, c] over the n rows in order, one work-item per feature c (acc 0:
 * the rows the ids name are written, the rest zeroed first by the host). */
__kernel void embedding_backward(const ulong n, const uint C, __global const int *ids, const ulong io,
                                 __global const float *dy, const ulong dyo,
                                 __global float *dtable, const ulong dto)
{
    const size_t c = get_global_id(0);
    if (c >= C) return;
    for (size_t r = 0; r < n; r++) dtable[dto + (size_t)ids[io + r] * C + c] += dy[dyo + r * C + c];
}

/* y = x + table, the table (T, C) repeated over the B sequences. */
__kernel void position_forward(const uint B, const uint TC, __global const float *x, const ulong xo,
                               __global const float *table, const ulong to,
                               __global float *y, const ulong yo)
{
    const size_t g = get_global_id(0);
    if (g >= (size_t)B * TC) return;
    y[yo + g] = x[xo + g] + table[to + g % TC];
}

/* dtable (+)= sum over the B sequences of dy, one work-item per table element. */
__kernel void position_backward(const uint B, const uint TC, __global const float *dy, const ulong dyo,
                                __global float *dtable, const ulong dto, const int acc)
{
    const size_t e = get_global_id(0);
    if (e >= TC) return;
    float s = acc ? dtable[dto + e] : 0.0f;
    for (uint b = 0; b < B; b++) s += dy[dyo + (size_t)b * TC + e];
    dtable[dto + e] = s;
}

/* z = x + y (the residual's add, forward and backward). */
__kernel void add(const ulong n, __global const float *x, const ulong xo,
                  __global const float *y, const ulong yo, __global float *z, const ulong zo)
{
    const size_t i = get_global_id(0);
    if (i >= n) return;
    z[zo + i] = x[xo + i] + y[yo + i];
}
