/* LayerNorm over each sample's D features with affine weight and bias, as PyTorch's
 * nn.LayerNorm(sample shape). Forward keeps each row's mean and 1/std for backward. */
#pragma OPENCL FP_CONTRACT OFF   /* the same bits on every vendor; fma() where fusing is meant */

__kernel void layernorm_forward(const uint B, const uint D, const float eps,
                                __global const float *x, const ulong xo,
                                __global float *y, const ulong yo,
                                __global const float *w, const ulong wo,
                                __global const float *bias, const ulong bo,
                                __global float *stats, const ulong so)
{
    const size_t b = get_global_id(0);
    if (b >= B) return;
    __global const float *r = x + xo + b * D;
    float mean = 0.0f;
    for (uint j = 0; j < D; j++) mean += r[j];
    mean /= (float)D;
    float var = 0.0f;
    for (uint j = 0; j < D; j++) { const float d = r[j] - mean; var += d * d; }
    var /= (float)D;
    const float rstd = 1.0f / sqrt(var + eps);
    for (uint j = 0; j < D; j++) y[yo + b * D + j] = (r[j] - mean) * rstd * w[wo + j] + bias[bo + j];
    stats[so + 2 * b] = mean;
    stats[so + 2 * b + 1] = rstd;
}

/* dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * w. One work-item per row. */
__kernel void layernorm_backward_input(const uint B, const uint D,
                                       __global const float *x, const ulong xo,
                                       __global const float *dy, const ulong dyo,
                                       __global const float *w, const ulong wo,
                                       __global const float *stats, const ulong so,
                                       __global float *dx, const ulong dxo)
{
    const size_t b = get_global_id(0);
    if (b >= B) return;
    const float mean = stats[so + 2 * b], rstd = stats[so + 2 * b + 1];
    float sg = 0.0f, sgx = 0.0f;
    for (uint j = 0; j < D; j++) {
        const float g = dy[dyo + b * D + j] * w[wo + j];
        const float xh = (x[xo + b * D + j] - mean) * rstd;
        sg += g;
        sgx += g * xh;
    }
    sg /= (float)D;
    sgx /= (float)D;
    for (uint j = 0; j < D; j++) {
        const float g = dy[dyo + b * D + j] * w[wo + j];
        const float xh = (x[xo + b * D + j] - mean) * rstd;
        dx[dxo + b * D + j] = rstd * (g - sg - xh * sgx);
    }
}

/* dw[j] += sum_b dy[b, j] * xhat[b, j]; db[j] += sum_b dy[b, j]. One work-item per feature. */
__kernel void layernorm_backward_params(const uint B, const uint D,
                                        __global const float *x, const ulong xo,
                                        __global const float *dy, const ulong dyo,
                                        __global const float *stats, const ulong so,
                                        __global float *dw, const ulong dwo,
                                        __global float *db, const ulong dbo, const int acc)
{
    const size_t j = get_global_id(0);
    if (j >= D) return;
    float sw = 0.0f, sb = 0.0f;
    for (uint b = 0; b < B; b++) {
        const float g = dy[dyo + b * D + j];
        sw += g * (x[xo + b * D + j] - stats[so + 2 * b]) * stats[so + 2 * b + 1];
        sb += g;
    }
    dw[dwo + j] = acc ? dw[dwo + j] + sw : sw;   /* acc 0: the first pass of an update */
    db[dbo + j] = acc ? db[dbo + j] + sb : sb;
}
