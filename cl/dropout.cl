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

/* Dropout on attention weights (B, H, T, T) that are heads h0 .. h0+H-1 of the model's Hg:
 * element (b, h, t) of a row draws as element ((row0 + b) Hg + h0 + h) TT + t of the whole
 * batch's (B, Hg, T, T) weights, so a head draws the same mask on whichever device holds it
 * (tensor parallelism splits attention by heads); with h0 = 0 and Hg = H these are
 * dropout_forward's draws with first = row0 H TT. */
__kernel void dropout_heads_forward(const ulong n, const float p, const ulong seed, const ulong row0,
                                    const uint H, const uint Hg, const uint h0, const ulong TT,
                                    __global const float *x, const ulong xo,
                                    __global float *y, const ulong yo,
                                    __global float *mask, const ulong mo)
{
    const size_t i = get_global_id(0);
    if (i >= n) return;
    const ulong per = (ulong)H * TT, b = i / per, h = (i % per) / TT, e = i % TT;
    const ulong at = ((row0 + b) * Hg + h0 + h) * TT + e;
    const ulong r = mix64(seed + 0x9E3779B97F4A7C15UL * (at + 1));
    const float u = (float)(r >> 40) * (1.0f / 16777216.0f);   /* 24 bits, [0, 1) */
    const float m = u >= p ? 1.0f / (1.0f - p) : 0.0f;
    mask[mo + i] = m;
    y[yo + i] = x[xo + i] * m;
}
