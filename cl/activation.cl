/* Elementwise activations, forward and backward. `kind` picks the function (the same numbers as
 * clt_layer_kind); alpha is LeakyReLU's negative slope. Buffers come with element offsets.
 * NaN stays NaN as in PyTorch. ReLU is written as PyTorch's threshold, x <= 0 ? 0 : x, which
 * lets NaN through (NaN <= 0 is false; `x > 0 ? x : 0` and fmax make it 0): relu(NaN) = NaN, and
 * the backward passes dy at a NaN input, as threshold_backward does. The other kinds carry NaN
 * through their arithmetic; LeakyReLU's backward at NaN is alpha * dy, as PyTorch's. */
#pragma OPENCL FP_CONTRACT OFF   /* the same bits on every vendor; fma() where fusing is meant */
#define KIND_RELU 6
#define KIND_LEAKY_RELU 7
#define KIND_GELU 8
#define KIND_TANH 9
#define KIND_SIGMOID 10
#define KIND_GELU_TANH 13
#define GELU_K 0.7978845608028654f   /* sqrt(2 / pi) */
#define GELU_A 0.044715f

/* y = f(x) */
__kernel void act_forward(const ulong n, const int kind, const float alpha,
                          __global const float *x, const ulong xo,
                          __global float *y, const ulong yo)
{
    const size_t i = get_global_id(0);
    if (i >= n) return;
    const float v = x[xo + i];
    float r;
    switch (kind) {
    case KIND_RELU: r = v <= 0.0f ? 0.0f : v; break;
    case KIND_LEAKY_RELU: r = v > 0.0f ? v : alpha * v; break;
    case KIND_GELU: r = 0.5f * v * (1.0f + erf(v * M_SQRT1_2_F)); break;
    case KIND_TANH: r = tanh(v); break;
    case KIND_GELU_TANH: r = 0.5f * v * (1.0f + tanh(GELU_K * (v + GELU_A * v * v * v))); break;
    default: r = 1.0f / (1.0f + exp(-v)); break;   /* sigmoid */
    }
    y[yo + i] = r;
}

/* dx = dy * f'(x), from the input x and the output y of the forward pass. */
__kernel void act_backward(const ulong n, const int kind, const float alpha,
                           __global const float *x, const ulong xo,
                           __global const float *y, const ulong yo,
                           __global const float *dy, const ulong dyo,
                           __global float *dx, const ulong dxo)
{
    const size_t i = get_global_id(0);
    if (i >= n) return;
    const float g = dy[dyo + i];
    float r;
    switch (kind) {
    case KIND_RELU: r = x[xo + i] <= 0.0f ? 0.0f : g; break;
    case KIND_LEAKY_RELU: r = x[xo + i] > 0.0f ? g : alpha * g; break;
    case KIND_GELU: {
        const float v = x[xo + i];
        const float cdf = 0.5f * (1.0f + erf(v * M_SQRT1_2_F));
        const float pdf = exp(-0.5f * v * v) * (M_2_SQRTPI_F * M_SQRT1_2_F * 0.5f);
        r = g * (cdf + v * pdf);
        break;
    }
    case KIND_TANH: { const float t = y[yo + i]; r = g * (1.0f - t * t); break; }
    case KIND_GELU_TANH: {
        const float v = x[xo + i], v2 = v * v;
        const float t = tanh(GELU_K * (v + GELU_A * v2 * v));
        r = g * (0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * GELU_K * (1.0f + 3.0f * GELU_A * v2));
        break;
    }
    default: { const float s = y[yo + i]; r = g * s * (1.0f - s); break; }
    }
    dx[dxo + i] = r;
}
