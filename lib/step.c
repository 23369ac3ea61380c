/* The numbers of a training step that every strategy shares: the loss gradient's scale and the
 * loss mean for a global batch, the clipping factor and the numerics check, the step's seed.
 * Below the trainer facade, beside the strategies that call them. */
#include "internal.h"

#include <math.h>

/* What a loss sum is divided by: the batch's positions for cross-entropy (one per sample, T for
 * a sequence), every output for MSE. */
static double loss_denominator(const clt_trainer *t, size_t global_batch)
{
    double outputs = (double)t->model->layers[t->model->nlayers - 1].out_numel;
    return t->p.loss == CLT_LOSS_MSE ? (double)global_batch * outputs
                                     : (double)global_batch * (double)clt__model_positions(t->model);
}

float clt__loss_grad_scale(const clt_trainer *t, size_t global_batch)
{
    return (float)(1.0 / (loss_denominator(t, global_batch) * (double)t->p.accumulation));
}

double clt__loss_mean(const clt_trainer *t, double sum, size_t global_batch)
{
    return sum / loss_denominator(t, global_batch);
}

clt_status clt__grad_scale(const clt_trainer *t, double loss, double sumsq, float *gscale)
{
    *gscale = 1.0f;
    double norm = sqrt(sumsq);
    if (t->p.check_numerics && !isfinite(loss))
        return clt__fail(CLT_ERR_NUMERIC, "the loss is %g at step %ld: the parameters were not "
                         "updated", loss, t->steps + 1);
    if (t->p.check_numerics && !isfinite(norm))
        return clt__fail(CLT_ERR_NUMERIC, "the gradients hold NaN or Inf at step %ld: the "
                         "parameters were not updated", t->steps + 1);
    /* torch.nn.utils.clip_grad_norm_: coefficient max_norm / (norm + 1e-6), capped at 1 by
     * torch.clamp, which keeps a NaN norm's NaN: every gradient becomes NaN, as in PyTorch */
    if (t->p.clip_norm > 0.0f) {
        double c = (double)t->p.clip_norm / (norm + 1e-6);
        if (!(c >= 1.0)) *gscale = (float)c;
    }
    return CLT_OK;
}

uint64_t clt__step_seed(const clt_trainer *t)
{
    return t->p.seed ^ (0x9E3779B97F4A7C15ull * (uint64_t)(t->steps * t->p.accumulation + t->micro + 1));
}
