/* Losses, fused with their gradients. One work-item per batch row; the host sums the per-row
 * losses in a fixed order. `scale` is the factor of each row's gradient (1/B for a mean over a
 * batch of B; with data parallelism, 1/global batch). Each kernel also writes loss_rows[B + b]:
 * 1 when the row's largest output (the first on ties) is the right class, else 0; the label for
 * cross-entropy, the target's largest entry for MSE (the label when the targets are one-hot).
 * "Largest" as torch.max and torch.argmax see it: NaN above every number, the first NaN on ties. */
#pragma OPENCL FP_CONTRACT OFF   /* the same bits on every vendor; fma() where fusing is meant */

/* Whether v replaces best as the running maximum (above). */
static bool above(const float v, const float best)
{
    return v > best || (isnan(v) && !isnan(best));
}

/* Softmax cross-entropy over integer labels, numerically stable (log-sum-exp around the max).
 * A label outside [0, C) gives a NaN loss instead of reading out of bounds (the host checks
 * labels before, so this is a last guard). */
__kernel void softmax_xent(const uint B, const uint C,
                           __global const float *z, const ulong zo,
                           __global const int *labels,
                           __global float *loss_rows,
                           __global float *dz, const ulong dzo,
                           const float scale, const int want_grad)
{
    const size_t b = get_global_id(0);
    if (b >= B) return;
    __global const float *row = z + zo + b * C;
    const int y = labels[b];
    float m = row[0];
    for (uint c = 1; c < C; c++) m = above(row[c], m) ? row[c] : m;
    float s = 0.0f;
    for (uint c = 0; c < C; c++) s += exp(row[c] - m);
    const float lse = m + log(s);
    if (y < 0 || (uint)y >= C) {
        loss_rows[b] = NAN;
        loss_rows[B + b] = 0.0f;
        return;
    }
    uint best = 0;
    for (uint c = 1; c < C; c++)
        if (above(row[c], row[best])) best = c;
    loss_rows[b] = lse - row[y];
    loss_rows[B + b] = best == (uint)y ? 1.0f : 0.0f;
    if (!want_grad) return;
    __global float *g = dz + dzo + b * C;
    const float inv = 1.0f / s;
    for (uint c = 0; c < C; c++) g[c] = (exp(row[c] - m) * inv - (c == (uint)y ? 1.0f : 0.0f)) * scale;
}

/* Squared error against float targets: loss_rows[b] = sum_c (y - t)^2, dy = 2 (y - t) scale. */
__kernel void mse(const uint B, const uint C,
                  __global const float *yv, const ulong yo,
                  __global const float *t,
                  __global float *loss_rows,
                  __global float *dy, const ulong dyo,
                  const float scale, const int want_grad)
{
    const size_t b = get_global_id(0);
    if (b >= B) return;
    float s = 0.0f;
    uint best = 0, want = 0;
    for (uint c = 0; c < C; c++) {
        const float d = yv[yo + b * C + c] - t[b * C + c];
        s += d * d;
        if (want_grad) dy[dyo + b * C + c] = 2.0f * d * scale;
        if (above(yv[yo + b * C + c], yv[yo + b * C + best])) best = c;
        if (above(t[b * C + c], t[b * C + want])) want = c;
    }
    loss_rows[b] = s;
    loss_rows[B + b] = best == want ? 1.0f : 0.0f;
}
