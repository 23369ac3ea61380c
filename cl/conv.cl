/* Conv2d as im2col + GEMM. The column matrix is laid out (C*K*K, B*OH*OW) so one GEMM covers
 * the whole batch: out_p (OC, B*OHW) = W (OC, CKK) x col. These kernels build col, scatter it back
 * (col2im, as a gather per input pixel: no atomics, fixed order), and move between the batch-
 * major (B, OC, OHW) layout of activations and the channel-major (OC, B*OHW) layout of the GEMM. */
#pragma OPENCL FP_CONTRACT OFF   /* the same bits on every vendor; fma() where fusing is meant */

/* col[(c*K + ki)*K + kj, b*OHW + oh*OW + ow] = x[b, c, oh*S - P + ki, ow*S - P + kj] or 0.
 * One work-item per (row, b, oh) writes the OW contiguous elements of that output row: the index
 * arithmetic is paid once per row, not once per element. */
__kernel void im2col(const uint B, const uint C, const uint H, const uint W, const uint K,
                     const uint S, const uint P, const uint OH, const uint OW,
                     __global const float *x, const ulong xo, __global float *col, const ulong co)
{
    const size_t i = get_global_id(0);
    if (i >= (size_t)C * K * K * B * OH) return;
    const uint oh = i % OH, b = (i / OH) % B;
    const uint row = i / ((size_t)OH * B);
    const uint kj = row % K, ki = (row / K) % K, c = row / (K * K);
    const size_t n = (size_t)B * OH * OW;
    __global float *dst = col + co + (size_t)row * n + (size_t)b * OH * OW + (size_t)oh * OW;
    const int h = (int)(oh * S + ki) - (int)P;
    if (h < 0 || h >= (int)H) {
        for (uint ow = 0; ow < OW; ow++) dst[ow] = 0.0f;
        return;
    }
    __global const float *src = x + xo + (((size_t)b * C + c) * H + (size_t)h) * W;
    for (uint ow = 0; ow < OW; ow++) {
        const int w = (int)(ow * S + kj) - (int)P;
        dst[ow] = (w >= 0 && w < (int)W) ? src[w] : 0.0f;
    }
}

/* dx[b, c, h, w] = sum of dcol over every (ki, kj, oh, ow) that read that pixel. */
__kernel void col2im(const uint B, const uint C, const uint H, const uint W, const uint K,
                     const uint S, const uint P, const uint OH, const uint OW,
                     __global const float *dcol, const ulong dco, __global float *dx, const ulong dxo)
{
    const size_t i = get_global_id(0);
    if (i >= (size_t)B * C * H * W) return;
    const uint w = i % W, h = (i / W) % H, c = (i / ((size_t)W * H)) % C, b = i / ((size_t)W * H * C);
    const size_t n = (size_t)B * OH * OW;
    float s = 0.0f;
    for (uint ki = 0; ki < K; ki++) {
        const int th = (int)h + (int)P - (int)ki;
        if (th < 0 || th % (int)S) continue;
        const uint oh = (uint)th / S;
        if (oh >= OH) continue;
        for (uint kj = 0; kj < K; kj++) {
            const int tw = (int)w + (int)P - (int)kj;
            if (tw < 0 || tw % (int)S) continue;
            const uint ow = (uint)tw / S;
            if (ow >= OW) continue;
            s += dcol[dco + ((size_t)(c * K + ki) * K + kj) * n + (size_t)b * OH * OW + oh * OW + ow];
        }
    }
    dx[dxo + i] = s;
}

/* y[b, oc, p] = yp[oc, b*HW + p] (+ bias[oc] when has_bias). */
__kernel void conv_unpermute(const uint B, const uint OC, const uint HW,
                             __global const float *yp, const ulong ypo, __global float *y, const ulong yo,
                             __global const float *bias, const ulong bo, const int has_bias)
{
    const size_t i = get_global_id(0);
    if (i >= (size_t)B * OC * HW) return;
    const uint p = i % HW, oc = (i / HW) % OC, b = i / ((size_t)HW * OC);
    float v = yp[ypo + (size_t)oc * B * HW + (size_t)b * HW + p];
    if (has_bias) v += bias[bo + oc];
    y[yo + i] = v;
}

/* dyp[oc, b*HW + p] = dy[b, oc, p]. */
__kernel void conv_permute(const uint B, const uint OC, const uint HW,
                           __global const float *dy, const ulong dyo, __global float *dyp, const ulong dypo)
{
    const size_t i = get_global_id(0);
    if (i >= (size_t)B * OC * HW) return;
    const uint p = i % HW, oc = (i / HW) % OC, b = i / ((size_t)HW * OC);
    dyp[dypo + (size_t)oc * B * HW + (size_t)b * HW + p] = dy[dyo + i];
}
