/* Smoke-test kernels: prove that a device builds and runs our code with -D options. */
#pragma OPENCL FP_CONTRACT OFF   /* the same bits on every vendor; fma() where fusing is meant */
#ifndef SMOKE_BIAS
#define SMOKE_BIAS 0.0f
#endif

/* y[i] = a * x[i] + y[i] + SMOKE_BIAS, for i < n. */
__kernel void smoke_axpy(const uint n, const float a, __global const float *x, __global float *y)
{
    const size_t i = get_global_id(0);
    if (i < n) y[i] = a * x[i] + y[i] + SMOKE_BIAS;
}
