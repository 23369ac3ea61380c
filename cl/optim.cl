/* Optimizers on flat parameter buffers, with PyTorch's semantics (torch.optim, single-tensor
 * code path), and the sum of squares behind gradient clipping. gscale multiplies the gradient
 * first (clipping); it is 1 when clipping is off. Out of place: the parameters and state are
 * read from p, buf (m, v) and the new ones written to pn, bufn (mn, vn), which may be the same
 * buffers (an update in place); an update that fails part-way leaves the old ones intact. The
 * state is read and written from element so: a caller that splits its range into runs (weight
 * decay on some tensors only) launches once per run on the same state arrays. */
#pragma OPENCL FP_CONTRACT OFF   /* the same bits on every vendor; fma() where fusing is meant */

__kernel void sgd_step(const ulong n, __global const float *p, const ulong po, __global float *pn,
                       __global const float *g, const ulong go,
                       __global const float *buf, __global float *bufn, const ulong so, const float lr,
                       const float momentum, const float dampening, const float weight_decay,
                       const int nesterov, const int first_step, const float gscale)
{
    const size_t i = get_global_id(0);
    if (i >= n) return;
    const float w = p[po + i];
    float d = g[go + i] * gscale;
    if (weight_decay != 0.0f) d += weight_decay * w;
    if (momentum != 0.0f) {
        const float b = first_step ? d : momentum * buf[so + i] + (1.0f - dampening) * d;
        bufn[so + i] = b;
        d = nesterov ? d + momentum * b : b;
    }
    pn[po + i] = w - lr * d;
}

/* Adam (decoupled = 0, weight decay as L2) and AdamW (decoupled = 1). bc1 = 1 - beta1^t,
 * bc2_sqrt = sqrt(1 - beta2^t), computed on the host in double. */
__kernel void adam_step(const ulong n, __global const float *p, const ulong po, __global float *pn,
                        __global const float *g, const ulong go, __global const float *m,
                        __global const float *v, __global float *mn, __global float *vn,
                        const ulong so, const float lr, const float beta1,
                        const float beta2, const float eps, const float weight_decay,
                        const int decoupled, const float bc1, const float bc2_sqrt,
                        const float gscale)
{
    const size_t i = get_global_id(0);
    if (i >= n) return;
    float d = g[go + i] * gscale;
    float w = p[po + i];
    if (decoupled) w *= 1.0f - lr * weight_decay;
    else if (weight_decay != 0.0f) d += weight_decay * w;
    const float mi = beta1 * m[so + i] + (1.0f - beta1) * d;
    const float vi = beta2 * v[so + i] + (1.0f - beta2) * d * d;
    mn[so + i] = mi;
    vn[so + i] = vi;
    const float denom = sqrt(vi) / bc2_sqrt + eps;
    pn[po + i] = w - (lr / bc1) * (mi / denom);
}

/* partial[k] = sum of x[xo + i]^2 over the k-th slice of `per` elements, in a fixed order: 16
 * lanes (element i to lane i % 16 of the slice) added pairwise at the end, then the slice's
 * last (per % 16) elements. The same bits on every device for the same slice; 16 running sums
 * instead of one (a chain of dependent adds) made it about 10x faster on PoCL. */
__kernel void sumsq_partial(const ulong n, const ulong per, __global const float *x,
                            const ulong xo, __global float *partial)
{
    const size_t k = get_global_id(0);
    const size_t start = k * per;
    if (start >= n) return;
    const size_t end = min((size_t)n, (size_t)(start + per));
    float16 acc = (float16)(0.0f);
    size_t i = start;
    for (; i + 16 <= end; i += 16) {
        const float16 v = vload16(0, x + xo + i);
        acc = fma(v, v, acc);
    }
    const float8 a8 = acc.lo + acc.hi;
    const float4 a4 = a8.lo + a8.hi;
    const float2 a2 = a4.lo + a4.hi;
    float s = a2.x + a2.y;
    for (; i < end; i++) s += x[xo + i] * x[xo + i];
    partial[k] = s;
}
