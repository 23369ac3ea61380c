/* MaxPool2d and AvgPool2d (no padding), forward and backward. Backward gathers per input pixel
 * over the windows that contain it: no atomics, fixed order. Both kinds share one signature;
 * average pooling ignores `arg` (where max pooling keeps its argmax). */
#pragma OPENCL FP_CONTRACT OFF   /* the same bits on every vendor; fma() where fusing is meant */

/* One work-item per output element. Max keeps the first maximum (as PyTorch does) and stores its
 * position h*W + w in arg. */
__kernel void maxpool_forward(const uint B, const uint C, const uint H, const uint W,
                              const uint K, const uint S, const uint OH, const uint OW,
                              __global const float *x, const ulong xo,
                              __global float *y, const ulong yo,
                              __global float *arg, const ulong ao)
{
    const size_t i = get_global_id(0);
    if (i >= (size_t)B * C * OH * OW) return;
    const uint ow = i % OW, oh = (i / OW) % OH;
    const size_t plane = i / ((size_t)OW * OH);   /* b * C + c */
    __global const float *xp = x + xo + plane * H * W;
    float m = -INFINITY;
    uint best = oh * S * W + ow * S;
    for (uint ki = 0; ki < K; ki++)
        for (uint kj = 0; kj < K; kj++) {
            const uint pos = (oh * S + ki) * W + ow * S + kj;
            const float v = xp[pos];
            if (v > m || isnan(v)) { m = v; best = pos; }
        }
    y[yo + i] = m;
    arg[ao + i] = (float)best;
}

/* The output rows (or columns) whose window [o*S, o*S + K) contains input row h: lo..hi. */
static void windows_over(const uint h, const uint K, const uint S, const uint O, uint *lo, uint *hi)
{
    *lo = h >= K ? (h - K) / S + 1 : 0;
    *hi = min(h / S, O - 1);
}

__kernel void maxpool_backward(const uint B, const uint C, const uint H, const uint W,
                               const uint K, const uint S, const uint OH, const uint OW,
                               __global const float *dy, const ulong dyo,
                               __global const float *arg, const ulong ao,
                               __global float *dx, const ulong dxo)
{
    const size_t i = get_global_id(0);
    if (i >= (size_t)B * C * H * W) return;
    const uint w = i % W, h = (i / W) % H;
    const size_t plane = i / ((size_t)W * H);
    const uint pos = h * W + w;
    uint oh_lo, oh_hi, ow_lo, ow_hi;
    windows_over(h, K, S, OH, &oh_lo, &oh_hi);
    windows_over(w, K, S, OW, &ow_lo, &ow_hi);
    float s = 0.0f;
    for (uint oh = oh_lo; oh <= oh_hi && oh < OH; oh++)
        for (uint ow = ow_lo; ow <= ow_hi && ow < OW; ow++) {
            const size_t o = plane * OH * OW + oh * OW + ow;
            if ((uint)arg[ao + o] == pos) s += dy[dyo + o];
        }
    dx[dxo + i] = s;
}

__kernel void avgpool_forward(const uint B, const uint C, const uint H, const uint W,
                              const uint K, const uint S, const uint OH, const uint OW,
                              __global const float *x, const ulong xo,
                              __global float *y, const ulong yo,
                              __global float *arg, const ulong ao)
{
    const size_t i = get_global_id(0);
    if (i >= (size_t)B * C * OH * OW) return;
    const uint ow = i % OW, oh = (i / OW) % OH;
    const size_t plane = i / ((size_t)OW * OH);
    __global const float *xp = x + xo + plane * H * W;
    float s = 0.0f;
    for (uint ki = 0; ki < K; ki++)
        for (uint kj = 0; kj < K; kj++) s += xp[(oh * S + ki) * W + ow * S + kj];
    y[yo + i] = s / (float)(K * K);
}

__kernel void avgpool_backward(const uint B, const uint C, const uint H, const uint W,
                               const uint K, const uint S, const uint OH, const uint OW,
                               __global const float *dy, const ulong dyo,
                               __global const float *arg, const ulong ao,
                               __global float *dx, const ulong dxo)
{
    const size_t i = get_global_id(0);
    if (i >= (size_t)B * C * H * W) return;
    const uint w = i % W, h = (i / W) % H;
    const size_t plane = i / ((size_t)W * H);
    uint oh_lo, oh_hi, ow_lo, ow_hi;
    windows_over(h, K, S, OH, &oh_lo, &oh_hi);
    windows_over(w, K, S, OW, &ow_lo, &ow_hi);
    float s = 0.0f;
    for (uint oh = oh_lo; oh <= oh_hi && oh < OH; oh++)
        for (uint ow = ow_lo; ow <= ow_hi && ow < OW; ow++) s += dy[dyo + plane * OH * OW + oh * OW + ow];
    dx[dxo + i] = s / (float)(K * K);
}
