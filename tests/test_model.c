/* Model descriptions: shape inference, parameter shapes and layout, PyTorch's initialisation
 * bounds, and layers that do not fit their input (refused, model unchanged). No device needed. */
#include "internal.h"
#include "tap.h"

#include <math.h>

static bool same_shape(clt_shape a, clt_shape b)
{
    if (a.rank != b.rank) return false;
    for (int i = 0; i < a.rank; i++)
        if (a.dims[i] != b.dims[i]) return false;
    return true;
}

int main(void)
{
    clt_model *m = NULL;
    ok_status(clt_model_create(&m, clt_shape3(1, 32, 32)), "a model on 1x32x32 images");
    ok_status(clt_model_add(m, clt_conv2d(8, 3, 1, 1)), "conv2d 8x3x3 padding 1");
    ok(same_shape(clt_model_output_shape(m, 0), clt_shape3(8, 32, 32)), "conv with padding keeps 32x32");
    ok_status(clt_model_add(m, clt_relu()), "relu");
    ok_status(clt_model_add(m, clt_maxpool2d(2, 0)), "maxpool 2 (stride defaults to the kernel)");
    ok(same_shape(clt_model_output_shape(m, 2), clt_shape3(8, 16, 16)), "pooling halves to 16x16");
    ok_status(clt_model_add(m, clt_conv2d(16, 5, 2, 0)), "conv2d 16x5x5 stride 2");
    ok(same_shape(clt_model_output_shape(m, 3), clt_shape3(16, 6, 6)), "(16 - 5)/2 + 1 = 6");
    ok_status(clt_model_add(m, clt_avgpool2d(3, 3)), "avgpool 3");
    ok_error(clt_model_add(m, clt_linear(10)), CLT_ERR_SHAPE, "add clt_flatten()", "linear on an image asks for flatten");
    ok(clt_model_layer_count(m) == 5, "the refused layer was not added");
    ok_status(clt_model_add(m, clt_flatten()), "flatten");
    ok(same_shape(clt_model_output_shape(m, -1), clt_shape1(64)), "flatten gives 16*2*2 = 64");
    ok_error(clt_model_add(m, clt_conv2d(4, 3, 1, 0)), CLT_ERR_SHAPE, "(C, H, W)", "conv on a vector");
    ok_status(clt_model_add(m, clt_layernorm(1e-5f)), "layernorm");
    ok_status(clt_model_add(m, clt_dropout(0.5f)), "dropout");
    ok_status(clt_model_add(m, clt_linear(10)), "linear 10");
    size_t want = (8 * 9 + 8) + (16 * 8 * 25 + 16) + (64 + 64) + (64 * 10 + 10);
    ok(clt_model_param_count(m) == want, "%zu parameters (want %zu)", clt_model_param_count(m), want);

    clt_shape s;
    ok_status(clt_model_param_shape(m, 3, "weight", &s), "conv weight shape");
    ok(same_shape(s, (clt_shape){4, {16, 8, 5, 5}}), "conv weight is (out, in, k, k) as in PyTorch");
    ok_status(clt_model_param_shape(m, 8, "weight", &s), "linear weight shape");
    ok(same_shape(s, (clt_shape){2, {10, 64, 0, 0}}), "linear weight is (out, in) as in PyTorch");
    ok_status(clt_model_param_shape(m, 8, "bias", &s), "linear bias shape");
    ok(same_shape(s, clt_shape1(10)), "linear bias is (out)");
    ok_error(clt_model_param_shape(m, 1, "weight", &s), CLT_ERR_INVALID_ARG, "relu", "relu has no weight");
    ok_error(clt_model_param_shape(m, 9, "weight", &s), CLT_ERR_INVALID_ARG, "out of range", "a layer past the end");
    ok_error(clt_model_param_shape(m, 0, "weight", NULL), CLT_ERR_INVALID_ARG, "NULL", "NULL out");
    const char *d = clt_model_describe(m);
    ok(strstr(d, "conv2d") && strstr(d, "(1, 32, 32) -> (8, 32, 32)") && strstr(d, "parameters"),
       "describe lists layers and shapes");

    /* initialisation: PyTorch's bounds, layernorm ones and zeros, deterministic per seed */
    float *p1 = malloc(want * 4), *p2 = malloc(want * 4), *p3 = malloc(want * 4);
    clt__model_init_params(m, 42, p1);
    clt__model_init_params(m, 42, p2);
    clt__model_init_params(m, 43, p3);
    ok(!memcmp(p1, p2, want * 4), "the same seed gives the same parameters");
    ok(memcmp(p1, p3, want * 4) != 0, "another seed gives others");
    bool in_bounds = true;
    double maxabs = 0;
    const clt__layer *lin = &m->layers[8];
    for (size_t i = 0; i < lin->w_count + lin->b_count; i++) {
        float v = p1[lin->param_off + i];
        in_bounds &= fabsf(v) <= 1.0f / sqrtf(64.0f);
        if (fabs(v) > maxabs) maxabs = fabs(v);
    }
    ok(in_bounds && maxabs > 0.9 / 8.0, "linear(64 -> 10) draws from U(-1/8, 1/8) (max |w| %.4f)", maxabs);
    const clt__layer *ln = &m->layers[6];
    bool ones = true;
    for (size_t i = 0; i < ln->w_count; i++) ones &= p1[ln->param_off + i] == 1.0f && p1[ln->param_off + ln->w_count + i] == 0.0f;
    ok(ones, "layernorm starts with weight 1 and bias 0");
    free(p1), free(p2), free(p3);
    clt_model_destroy(m);

    /* bad descriptions */
    ok_error(clt_model_create(&m, (clt_shape){1, {0}}), CLT_ERR_SHAPE, "invalid input shape", "an empty input shape");
    ok(m == NULL, "a failed create leaves *out NULL");
    ok_error(clt_model_create(&m, (clt_shape){5, {1, 1, 1, 1}}), CLT_ERR_SHAPE, "rank", "rank 5");
    ok_error(clt_model_create(NULL, clt_shape1(3)), CLT_ERR_INVALID_ARG, "out is NULL", "NULL out");
    ok_error(clt_model_add(NULL, clt_relu()), CLT_ERR_INVALID_ARG, "NULL", "adding to NULL");
    clt_model_create(&m, clt_shape3(3, 4, 4));
    ok_error(clt_model_add(m, clt_conv2d(2, 5, 1, 0)), CLT_ERR_SHAPE, "larger than the input", "a kernel larger than the input");
    ok_error(clt_model_add(m, clt_conv2d(0, 3, 1, 0)), CLT_ERR_SHAPE, "0 output channels", "zero output channels");
    ok_error(clt_model_add(m, clt_conv2d(2, 3, 0, 0)), CLT_ERR_SHAPE, "stride", "stride 0 on a conv");
    ok_error(clt_model_add(m, clt_conv2d(2, 3, 1, -1)), CLT_ERR_SHAPE, "padding", "negative padding");
    ok_error(clt_model_add(m, clt_maxpool2d(0, 1)), CLT_ERR_SHAPE, "kernel 0", "a pool with kernel 0");
    ok_error(clt_model_add(m, clt_dropout(1.0f)), CLT_ERR_INVALID_ARG, "[0, 1)", "dropout p = 1");
    ok_error(clt_model_add(m, clt_dropout(NAN)), CLT_ERR_INVALID_ARG, "[0, 1)", "dropout p = NaN");
    ok_error(clt_model_add(m, clt_layernorm(0.0f)), CLT_ERR_INVALID_ARG, "eps", "layernorm eps 0");
    ok_error(clt_model_add(m, clt_leaky_relu(INFINITY)), CLT_ERR_INVALID_ARG, "slope", "an infinite slope");
    ok_error(clt_model_add(m, (clt_layer_desc){(clt_layer_kind)77, 0, 0, 0, 0, 0, 0.0f, 0}), CLT_ERR_INVALID_ARG, "unknown layer kind", "an unknown kind");
    ok(clt_model_layer_count(m) == 0 && clt_model_param_count(m) == 0, "nothing was added");
    ok_status(clt_model_add(m, clt_flatten()), "flatten");
    ok_error(clt_model_add(m, clt_linear(-3)), CLT_ERR_SHAPE, "-3 output features", "negative features");
    clt_model_destroy(m);
    clt_model_destroy(NULL);
    ok(clt_model_layer_count(NULL) == 0 && clt_model_param_count(NULL) == 0, "NULL models count 0");
    return tap_done();
}
