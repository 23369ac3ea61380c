/* Dropout with inverted scaling: kept elements are multiplied by 1/(1-p). The mask comes from a
 * counter-based hash of (seed, element index in the whole batch): a sample draws the same mask
 * on whichever device computes it, run after run. `first` is this call's first element there. */
#pragma OPENCL FP_CONTRACT OFF   /* the same bits on every vendor; fma() where fusing is meant */

static ulong mix64(ulong z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
    return z ^ (z >> 31);
}

__kernel void dropout_forward(const ulong n, const float p, const ulong seed, const ulong first,
                              __global const float *x, const ulong xo,
                              __global float *y, const ulong yo,
                              __global float *mask, const ulong mo)
{
    const size_t i = get_global_id(0);
    if (i >= n) return;
    const ulong r = mix64(seed + 0x9E3779B97F4A7C15UL * (ulong)(first + i + 1));
    const float u = (float)(r >> 40) * (1.0f / 16777216.0f);   /* 24 bits, [0, 1) */
    const float m = u >= p ? 1.0f / (1.0f - p) : 0.0f;
    mask[mo + i] = m;
    y[yo + i] = x[xo + i] * m;
}

__kernel void dropout_backward(const ulong n, __global const float *dy, const ulong dyo,
                               __global const float *mask, const ulong mo,
                               __global float *dx, const ulong dxo)
{
    const size_t i = get_global_id(0);
    if (i >= n) return;
    dx[dxo + i] = dy[dyo + i] * mask[mo + i];
}
