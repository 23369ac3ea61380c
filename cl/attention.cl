/* Causal multi-head self-attention over (B, T, 3C) rows of Q, K and V side by side (nanoGPT's
 * c_attn output), H heads of D = C / H features: head h of Q is columns h*D .. h*D+D-1, of K the
 * same plus C, of V plus 2C. Forward keeps the attention weights P (B, H, T, T), zero above the
 * diagonal; dropout on them, when the layer has it, is dropout.cl's kernel between the two passes
 * (its mask kept beside P). The output is (B, T, C), the heads side by side.
 *
 * Every kernel gives one work-item a position of one head (b, h, t) and walks the positions it
 * attends to, D features at a time in float8 vectors (what CPU implementations turn into SIMD;
 * a scalar tail for D not a multiple of 8). Every sum runs in a fixed order in one work-item:
 * the same bits on every run. */
#pragma OPENCL FP_CONTRACT OFF   /* the same bits on every vendor; fma() where fusing is meant */

/* The work-item's (b, h, t) and the start of its batch row in qkv. */
#define HEAD_INDEX                                                            \
    const size_t g = get_global_id(0);                                        \
    if (g >= (size_t)B * H * T) return;                                       \
    const uint t = g % T, h = (g / T) % H, b = g / ((size_t)T * H);           \
    const uint D = C / H, S = 3 * C; /* features per head, qkv's row stride */ \
    __global const float *x = qkv + qo + (size_t)b * T * S + h * D;

/* a . b over n floats, in float8 chunks then one at a time. */
static float dot(__global const float *a, __global const float *b, const uint n)
{
    float8 acc = (float8)(0.0f);
    uint d = 0;
    for (; d + 8 <= n; d += 8) acc += vload8(0, a + d) * vload8(0, b + d);
    float s = ((acc.s0 + acc.s1) + (acc.s2 + acc.s3)) + ((acc.s4 + acc.s5) + (acc.s6 + acc.s7));
    for (; d < n; d++) s += a[d] * b[d];
    return s;
}

/* out[0..n) = scale * sum over r of w[r * wstride] * rows[r * rstride .. + n), r in [r0, r1). */
static void weighted_rows(__global const float *w, const uint wstride, __global const float *rows,
                          const uint rstride, const uint r0, const uint r1, const float scale,
                          const uint n, __global float *out)
{
    uint d = 0;
    for (; d + 8 <= n; d += 8) {
        float8 acc = (float8)(0.0f);
        for (uint r = r0; r < r1; r++) acc += w[(size_t)r * wstride] * vload8(0, rows + (size_t)r * rstride + d);
        vstore8(acc * scale, 0, out + d);
    }
    for (; d < n; d++) {
        float acc = 0.0f;
        for (uint r = r0; r < r1; r++) acc += w[(size_t)r * wstride] * rows[(size_t)r * rstride + d];
        out[d] = acc * scale;
    }
}

/* P[b, h, t, :] = softmax_j<=t (q_t . k_j * scale). */
__kernel void attn_weights(const uint B, const uint T, const uint C, const uint H, const float scale,
                           __global const float *qkv, const ulong qo,
                           __global float *p, const ulong po)
{
    HEAD_INDEX
    __global float *row = p + po + g * T;
    float m = -INFINITY;
    for (uint j = 0; j <= t; j++) {
        const float s = dot(x + (size_t)t * S, x + (size_t)j * S + C, D) * scale;
        row[j] = s;
        m = fmax(m, s);
    }
    float sum = 0.0f;
    for (uint j = 0; j <= t; j++) {
        const float e = exp(row[j] - m);
        row[j] = e;
        sum += e;
    }
    const float inv = 1.0f / sum;
    for (uint j = 0; j <= t; j++) row[j] *= inv;
    for (uint j = t + 1; j < T; j++) row[j] = 0.0f;
}

/* y[b, t, h*D ..] = sum_j<=t w[b, h, t, j] v_j, w the (dropped-out) weights. */
__kernel void attn_values(const uint B, const uint T, const uint C, const uint H,
                          __global const float *qkv, const ulong qo,
                          __global const float *w, const ulong wo,
                          __global float *y, const ulong yo)
{
    HEAD_INDEX
    weighted_rows(w + wo + g * T, 1, x + 2 * C, S, 0, t + 1, 1.0f, D,
                  y + yo + ((size_t)b * T + t) * C + h * D);
}

/* The softmax's input gradient: with dW = dy_t . v_j (times the dropout mask, when given),
 * dS_tj = P_tj (dW_tj - sum_k P_tk dW_tk), written to ds (B, H, T, T), zero above the diagonal. */
__kernel void attn_backward_scores(const uint B, const uint T, const uint C, const uint H,
                                   __global const float *qkv, const ulong qo,
                                   __global const float *p, const ulong po,
                                   __global const float *mask, const ulong mo, const int masked,
                                   __global const float *dy, const ulong dyo,
                                   __global float *ds, const ulong dso)
{
    HEAD_INDEX
    __global const float *gy = dy + dyo + ((size_t)b * T + t) * C + h * D;
    __global const float *prow = p + po + g * T;
    __global float *row = ds + dso + g * T;
    float sum = 0.0f;
    for (uint j = 0; j <= t; j++) {
        float s = dot(gy, x + (size_t)j * S + 2 * C, D);
        if (masked) s *= mask[mo + g * T + j];
        row[j] = s;
        sum += prow[j] * s;
    }
    for (uint j = 0; j <= t; j++) row[j] = prow[j] * (row[j] - sum);
    for (uint j = t + 1; j < T; j++) row[j] = 0.0f;
}

/* The input gradient (B, T, 3C), a position of a head per work-item:
 *   dq_t = scale sum_j<=t dS_tj k_j,   dk_t = scale sum_i>=t dS_it q_i,   dv_t = sum_i>=t w_it dy_i
 * with w the weights the forward used (P, times the mask under dropout, in scratch `w`). */
__kernel void attn_backward_input(const uint B, const uint T, const uint C, const uint H,
                                  const float scale,
                                  __global const float *qkv, const ulong qo,
                                  __global const float *w, const ulong wo,
                                  __global const float *ds, const ulong dso,
                                  __global const float *dy, const ulong dyo,
                                  __global float *dx, const ulong dxo)
{
    HEAD_INDEX
    const size_t head = ((size_t)b * H + h) * T * T;   /* (b, h, 0, 0) of the weights and dS */
    __global float *out = dx + dxo + ((size_t)b * T + t) * S + h * D;
    weighted_rows(ds + dso + head + (size_t)t * T, 1, x + C, S, 0, t + 1, scale, D, out);
    weighted_rows(ds + dso + head + t, T, x, S, t, T, scale, D, out + C);
    weighted_rows(w + wo + head + t, T, dy + dyo + (size_t)b * T * C + h * D, C, t, T, 1.0f, D, out + 2 * C);
}
