/* Causal multi-head self-attention over (B, T, 3C) rows of Q, K and V side by side (nanoGPT's
 * c_attn output), H heads of D = C / H features: head h of Q is columns h*D .. h*D+D-1, of K the
 * same plus C, of V plus 2C. Forward keeps the attention weights P (B, H, T, T), zero above the
 * diagonal; dropout on them, when the layer has it, is dropout.cl's kernel between the two passes
 * (its mask kept beside P). The output is (B, T, C), the heads side by side. Every sum runs in a
 * fixed order in one work-item: the same bits on every run. */
#pragma OPENCL FP_CONTRACT OFF   /* the same bits on every vendor; fma() where fusing is meant */

/* P[b, h, i, :] = softmax_j<=i (q_i . k_j * scale), one work-item per (b, h, i). */
__kernel void attn_weights(const uint B, const uint T, const uint C, const uint H, const float scale,
                           __global const float *qkv, const ulong qo,
                           __global float *p, const ulong po)
{
    const size_t g = get_global_id(0);
    if (g >= (size_t)B * H * T) return;
    const uint i = g % T, h = (g / T) % H, b = g / ((size_t)T * H);
    const uint D = C / H;
    __global const float *q = qkv + qo + ((size_t)b * T + i) * 3 * C + h * D;
    __global float *row = p + po + g * T;
    float m = -INFINITY;
    for (uint j = 0; j <= i; j++) {
        __global const float *k = qkv + qo + ((size_t)b * T + j) * 3 * C + C + h * D;
        float s = 0.0f;
        for (uint d = 0; d < D; d++) s += q[d] * k[d];
        s *= scale;
        row[j] = s;
        m = fmax(m, s);
    }
    float sum = 0.0f;
    for (uint j = 0; j <= i; j++) {
        const float e = exp(row[j] - m);
        row[j] = e;
        sum += e;
    }
    const float inv = 1.0f / sum;
    for (uint j = 0; j <= i; j++) row[j] *= inv;
    for (uint j = i + 1; j < T; j++) row[j] = 0.0f;
}

/* y[b, i, h*D + d] = sum_j<=i w[b, h, i, j] v_j[h*D + d], w the (dropped-out) weights. */
__kernel void attn_values(const uint B, const uint T, const uint C, const uint H,
                          __global const float *qkv, const ulong qo,
                          __global const float *w, const ulong wo,
                          __global float *y, const ulong yo)
{
    const size_t g = get_global_id(0);
    if (g >= (size_t)B * T * C) return;
    const uint c = g % C, i = (g / C) % T, b = g / ((size_t)C * T);
    const uint D = C / H, h = c / D;
    __global const float *row = w + wo + (((size_t)b * H + h) * T + i) * T;
    __global const float *v = qkv + qo + (size_t)b * T * 3 * C + 2 * C + c;
    float s = 0.0f;
    for (uint j = 0; j <= i; j++) s += row[j] * v[(size_t)j * 3 * C];
    y[yo + g] = s;
}

/* The softmax's input gradient, one work-item per (b, h, i): with dW = dy_i . v_j (times the
 * dropout mask, when given), dS_ij = P_ij (dW_ij - sum_k P_ik dW_ik), written to ds (B, H, T, T),
 * zero above the diagonal. */
__kernel void attn_backward_scores(const uint B, const uint T, const uint C, const uint H,
                                   __global const float *qkv, const ulong qo,
                                   __global const float *p, const ulong po,
                                   __global const float *mask, const ulong mo, const int masked,
                                   __global const float *dy, const ulong dyo,
                                   __global float *ds, const ulong dso)
{
    const size_t g = get_global_id(0);
    if (g >= (size_t)B * H * T) return;
    const uint i = g % T, h = (g / T) % H, b = g / ((size_t)T * H);
    const uint D = C / H;
    __global const float *gy = dy + dyo + ((size_t)b * T + i) * C + h * D;
    __global const float *prow = p + po + g * T;
    __global float *row = ds + dso + g * T;
    float dot = 0.0f;
    for (uint j = 0; j <= i; j++) {
        __global const float *v = qkv + qo + ((size_t)b * T + j) * 3 * C + 2 * C + h * D;
        float s = 0.0f;
        for (uint d = 0; d < D; d++) s += gy[d] * v[d];
        if (masked) s *= mask[mo + g * T + j];
        row[j] = s;
        dot += prow[j] * s;
    }
    for (uint j = 0; j <= i; j++) row[j] = prow[j] * (row[j] - dot);
    for (uint j = i + 1; j < T; j++) row[j] = 0.0f;
}

/* The input gradient (B, T, 3C), one work-item per element:
 *   dq_i = scale sum_j<=i dS_ij k_j,   dk_j = scale sum_i>=j dS_ij q_i,   dv_j = sum_i>=j w_ij dy_i
 * with w the weights the forward used (P, times the mask under dropout). */
__kernel void attn_backward_input(const uint B, const uint T, const uint C, const uint H,
                                  const float scale,
                                  __global const float *qkv, const ulong qo,
                                  __global const float *p, const ulong po,
                                  __global const float *mask, const ulong mo, const int masked,
                                  __global const float *ds, const ulong dso,
                                  __global const float *dy, const ulong dyo,
                                  __global float *dx, const ulong dxo)
{
    const size_t g = get_global_id(0);
    if (g >= (size_t)B * T * 3 * C) return;
    const uint c3 = g % (3 * C), t = (g / (3 * C)) % T, b = g / ((size_t)3 * C * T);
    const uint part = c3 / C, c = c3 % C, D = C / H, h = c / D;
    const size_t head = ((size_t)b * H + h) * T;   /* row (b, h, 0) of P and dS */
    __global const float *x = qkv + qo + (size_t)b * T * 3 * C;
    float s = 0.0f;
    if (part == 0) {          /* dq_t: row t of dS against k */
        for (uint j = 0; j <= t; j++) s += ds[dso + (head + t) * T + j] * x[(size_t)j * 3 * C + C + c];
        s *= scale;
    } else if (part == 1) {   /* dk_t: column t of dS against q */
        for (uint i = t; i < T; i++) s += ds[dso + (head + i) * T + t] * x[(size_t)i * 3 * C + c];
        s *= scale;
    } else {                  /* dv_t: column t of the weights against dy */
        for (uint i = t; i < T; i++) {
            float w = p[po + (head + i) * T + t];
            if (masked) w *= mask[mo + (head + i) * T + t];
            s += w * dy[dyo + ((size_t)b * T + i) * C + c];
        }
    }
    dx[dxo + g] = s;
}
