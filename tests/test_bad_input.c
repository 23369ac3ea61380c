/* Bad input across the public API: every function with NULL, zero, a negative size passed as
 * size_t, and mismatched arguments. Each call must return an error (or, for the functions that
 * return a value, the documented empty value) and never crash. */
#include "tap.h"

#include <stdint.h>

#define NEG ((size_t)-1)   /* a negative size as it arrives through size_t */

/* A call that must fail, with any error status. */
#define refused(call, what)                                                                     \
    ({                                                                                          \
        clt_status st_ = (call);                                                                \
        ok(st_ != CLT_OK, "%s: %s (%s)", what, clt_status_name(st_), clt_last_error());          \
    })

static clt_status noop(const clt_device_ctx *d, void *user)
{
    (void)user, (void)d;
    return CLT_OK;
}

int main(void)
{
    tap_require_device();

    /* ---- errors and logging ---- */
    ok(clt_status_str((clt_status)12345) != NULL && clt_status_name((clt_status)12345) != NULL,
       "status strings of an unknown status are not NULL");
    ok(clt_cl_error_name(-99999) != NULL && clt_version() != NULL, "an unknown OpenCL error has a name");
    clt_log_set_callback(NULL, CLT_LOG_ERROR, NULL);
    ok(1, "clt_log_set_callback(NULL) is fine");

    /* ---- data sets ---- */
    clt_dataset *d = (clt_dataset *)1;
    float x[64] = {0};
    int32_t y[8] = {0};
    uint32_t order[8];
    clt_dataset_options o = clt_dataset_options_default();
    refused(clt_dataset_from_arrays(NULL, x, y, 4, clt_shape1(2), 2), "from_arrays: NULL out");
    refused(clt_dataset_from_arrays(&d, NULL, y, 4, clt_shape1(2), 2), "from_arrays: NULL x");
    ok(d == NULL, "a failed from_arrays leaves *out NULL");
    refused(clt_dataset_from_arrays(&d, x, NULL, 4, clt_shape1(2), 2), "from_arrays: NULL labels");
    refused(clt_dataset_from_arrays(&d, x, y, 0, clt_shape1(2), 2), "from_arrays: n 0");
    refused(clt_dataset_from_arrays(&d, x, y, NEG, clt_shape1(2), 2), "from_arrays: n negative");
    refused(clt_dataset_from_arrays(&d, x, y, 4, clt_shape1(0), 2), "from_arrays: empty shape");
    refused(clt_dataset_from_arrays(&d, x, y, 4, clt_shape1(-3), 2), "from_arrays: negative dimension");
    refused(clt_dataset_from_arrays(&d, x, y, 4, clt_shape1(2), 0), "from_arrays: 0 classes");
    y[1] = 5;
    refused(clt_dataset_from_arrays(&d, x, y, 4, clt_shape1(2), 2), "from_arrays: a label past the classes");
    y[1] = 0;
    refused(clt_dataset_load_idx(NULL, "a", "b", &o), "load_idx: NULL out");
    refused(clt_dataset_load_idx(&d, NULL, "b", &o), "load_idx: NULL images path");
    refused(clt_dataset_load_idx(&d, "a", NULL, &o), "load_idx: NULL labels path");
    refused(clt_dataset_load_idx(&d, "", "", &o), "load_idx: empty paths");
    refused(clt_dataset_load_fashion_mnist(NULL, NULL, "/nonexistent", &o), "load_fashion_mnist: NULL outs");
    clt_dataset *test = NULL;
    refused(clt_dataset_load_fashion_mnist(&d, &test, "/nonexistent", &o), "load_fashion_mnist: a missing folder");
    refused(clt_dataset_synthetic(NULL, 4, clt_shape1(2), 2, 1), "synthetic: NULL out");
    refused(clt_dataset_synthetic(&d, 0, clt_shape1(2), 2, 1), "synthetic: n 0");
    refused(clt_dataset_synthetic(&d, NEG, clt_shape1(2), 2, 1), "synthetic: n negative");
    refused(clt_dataset_synthetic(&d, 4, clt_shape1(2), -1, 1), "synthetic: negative classes");
    clt_dataset_destroy(NULL);
    ok(clt_dataset_size(NULL) == 0 && clt_dataset_shape(NULL).rank == 0 && clt_dataset_classes(NULL) == 0 &&
           clt_dataset_inputs(NULL) == NULL && clt_dataset_labels(NULL) == NULL,
       "data set getters on NULL give empty values");
    refused(clt_dataset_shuffle(NULL, 4, 1), "shuffle: NULL order");
    refused(clt_dataset_shuffle(order, 0, 1), "shuffle: n 0");
    refused(clt_dataset_shuffle(order, NEG, 1), "shuffle: n negative");
    if (ok_status(clt_dataset_synthetic(&d, 8, clt_shape1(2), 2, 1), "a small data set")) {
        refused(clt_dataset_batch(NULL, NULL, 0, 1, x, y), "batch: NULL data set");
        refused(clt_dataset_batch(d, NULL, 0, 1, NULL, y), "batch: NULL x");
        refused(clt_dataset_batch(d, NULL, 0, 0, x, y), "batch: count 0");
        refused(clt_dataset_batch(d, NULL, 0, NEG, x, y), "batch: count negative");
        refused(clt_dataset_batch(d, NULL, NEG, 1, x, y), "batch: start negative");
        refused(clt_dataset_batch(d, NULL, 6, 4, x, y), "batch: past the end");
        order[0] = 99;
        refused(clt_dataset_batch(d, order, 0, 1, x, y), "batch: an order entry past the end");
        clt_dataset_destroy(d);
    }

    /* ---- devices and runtimes ---- */
    size_t count;
    int idx[4];
    refused(clt_devices_list(NULL, 0, NULL), "devices_list: NULL count");
    refused(clt_devices_select("all", idx, 4, NULL), "devices_select: NULL count");
    refused(clt_devices_select("no-such-device-name", idx, 4, &count), "devices_select: a spec that selects nothing");
    refused(clt_devices_select("9:9", idx, 4, &count), "devices_select: a device that does not exist");
    refused(clt_devices_select(",,", idx, 4, &count), "devices_select: an empty entry");
    clt_runtime *rt = (clt_runtime *)1;
    refused(clt_runtime_create(NULL, "all"), "runtime_create: NULL out");
    refused(clt_runtime_create(&rt, "no-such-device-name"), "runtime_create: a spec that selects nothing");
    ok(rt == NULL, "a failed runtime_create leaves *out NULL");
    if (ok_status(clt_runtime_create_ex(&rt, NULL), "runtime_create_ex: NULL options are the defaults"))
        clt_runtime_destroy(rt);
    refused(clt_runtime_create_ex(NULL, NULL), "runtime_create_ex: NULL out");
    clt_runtime_options ro = clt_runtime_options_default();
    ro.context_mode = (clt_context_mode)7;
    ro.devices = test_spec_all();
    refused(clt_runtime_create_ex(&rt, &ro), "runtime_create_ex: an unknown context mode");
    clt_runtime_destroy(NULL);
    ok(clt_runtime_device_count(NULL) == 0 && clt_runtime_context(NULL, 0) == NULL, "runtime getters on NULL");
    clt_device_info info;
    clt_device_stats stats;
    cl_program prog;
    refused(clt_runtime_device_info(NULL, 0, &info), "device_info: NULL runtime");
    refused(clt_runtime_device_stats(NULL, 0, &stats, 0), "device_stats: NULL runtime");
    refused(clt_runtime_exec(NULL, 0, noop, NULL), "exec: NULL runtime");
    refused(clt_runtime_exec_all(NULL, noop, NULL), "exec_all: NULL runtime");
    refused(clt_runtime_build(NULL, 0, "kernel void k(void) {}", "", &prog), "build: NULL runtime");
    if (!ok_status(clt_runtime_create(&rt, test_spec_all()), "a runtime")) return tap_done();
    int nd = clt_runtime_device_count(rt);
    refused(clt_runtime_device_info(rt, -1, &info), "device_info: device -1");
    refused(clt_runtime_device_info(rt, nd, &info), "device_info: device past the end");
    refused(clt_runtime_device_info(rt, 0, NULL), "device_info: NULL out");
    ok(clt_runtime_context(rt, -1) == NULL && clt_runtime_context(rt, nd) == NULL, "context: devices out of range give NULL");
    refused(clt_runtime_device_stats(rt, 0, NULL, 0), "device_stats: NULL out");
    refused(clt_runtime_device_stats(rt, -1, &stats, 0), "device_stats: device -1");
    refused(clt_runtime_exec(rt, 0, NULL, NULL), "exec: NULL function");
    refused(clt_runtime_exec(rt, nd, noop, NULL), "exec: device past the end");
    refused(clt_runtime_exec_all(rt, NULL, NULL), "exec_all: NULL function");
    refused(clt_runtime_build(rt, 0, NULL, "", &prog), "build: NULL source");
    refused(clt_runtime_build(rt, 0, "kernel void k(void) {}", "", NULL), "build: NULL out");
    refused(clt_runtime_build(rt, -1, "kernel void k(void) {}", "", &prog), "build: device -1");
    refused(clt_runtime_build(rt, 0, "this is not OpenCL C", "", &prog), "build: source that does not compile");

    /* ---- collectives ---- */
    cl_mem bufs[16] = {NULL};
    cl_int err;
    for (int i = 0; i < nd && i < 16; i++)
        bufs[i] = clCreateBuffer(clt_runtime_context(rt, i), CL_MEM_READ_WRITE, 64 * sizeof(float), NULL, &err);
    refused(clt_allreduce(NULL, bufs, NULL, 4, CLT_OP_SUM, NULL), "allreduce: NULL runtime");
    refused(clt_allreduce(rt, NULL, NULL, 4, CLT_OP_SUM, NULL), "allreduce: NULL buffers");
    refused(clt_allreduce(rt, bufs, NULL, NEG, CLT_OP_SUM, NULL), "allreduce: count negative");
    refused(clt_allreduce(rt, bufs, NULL, 1000, CLT_OP_SUM, NULL), "allreduce: count past the buffers");
    refused(clt_allreduce(rt, bufs, NULL, 4, (clt_op)9, NULL), "allreduce: an unknown op");
    refused(clt_broadcast(NULL, bufs, 4, 0, NULL), "broadcast: NULL runtime");
    refused(clt_broadcast(rt, NULL, 4, 0, NULL), "broadcast: NULL buffers");
    refused(clt_broadcast(rt, bufs, 4, nd, NULL), "broadcast: root past the end");
    refused(clt_broadcast(rt, bufs, 4, -1, NULL), "broadcast: root -1");
    refused(clt_broadcast(rt, bufs, NEG, 0, NULL), "broadcast: count negative");
    refused(clt_reduce_scatter(NULL, bufs, NULL, 4, CLT_OP_SUM, NULL), "reduce_scatter: NULL runtime");
    refused(clt_reduce_scatter(rt, NULL, NULL, 4, CLT_OP_SUM, NULL), "reduce_scatter: NULL buffers");
    refused(clt_reduce_scatter(rt, bufs, NULL, NEG, CLT_OP_SUM, NULL), "reduce_scatter: count negative");
    /* 64 floats a buffer: n * (64 / n + 1) passes the end on any number of devices */
    refused(clt_reduce_scatter(rt, bufs, NULL, (size_t)(64 / nd + 1), CLT_OP_SUM, NULL),
            "reduce_scatter: n * count past the buffers");
    refused(clt_all_gather(NULL, bufs, NULL, 4, NULL), "all_gather: NULL runtime");
    refused(clt_all_gather(rt, NULL, NULL, 4, NULL), "all_gather: NULL buffers");
    refused(clt_all_gather(rt, bufs, NULL, NEG, NULL), "all_gather: count negative");
    clt_collective_options co = clt_collective_options_default();
    co.algo = (clt_algo)42;
    refused(clt_allreduce(rt, bufs, NULL, 4, CLT_OP_SUM, &co), "allreduce: an unknown algorithm");
    co = clt_collective_options_default();
    co.timeout_s = -1;
    refused(clt_allreduce(rt, bufs, NULL, 4, CLT_OP_SUM, &co), "allreduce: a negative timeout");
    for (int i = 0; i < nd && i < 16; i++)
        if (bufs[i]) clReleaseMemObject(bufs[i]);

    /* ---- models ---- */
    clt_model *m = (clt_model *)1;
    clt_shape shape;
    refused(clt_model_create(NULL, clt_shape1(4)), "model_create: NULL out");
    refused(clt_model_create(&m, clt_shape1(0)), "model_create: an empty input");
    ok(m == NULL, "a failed model_create leaves *out NULL");
    clt_shape bad_rank = {9, {1, 1, 1, 1}};
    refused(clt_model_create(&m, bad_rank), "model_create: rank 9");
    refused(clt_model_add(NULL, clt_relu()), "model_add: NULL model");
    clt_model_destroy(NULL);
    ok(clt_model_layer_count(NULL) == 0 && clt_model_param_count(NULL) == 0 &&
           clt_model_input_shape(NULL).rank == 0 && clt_model_output_shape(NULL, 0).rank == 0 &&
           clt_model_describe(NULL) != NULL,
       "model getters on NULL give empty values");
    refused(clt_model_param_shape(NULL, 0, "weight", &shape), "param_shape: NULL model");
    clt_model_create(&m, clt_shape1(4));
    refused(clt_model_add(m, clt_linear(0)), "model_add: linear with 0 outputs");
    refused(clt_model_add(m, clt_linear(-5)), "model_add: linear with -5 outputs");
    refused(clt_model_add(m, clt_conv2d(4, 3, 1, 0)), "model_add: a conv on a vector");
    refused(clt_model_add(m, clt_dropout(1.5f)), "model_add: dropout 1.5");
    clt_layer_desc weird = clt_relu();
    weird.kind = (clt_layer_kind)99;
    refused(clt_model_add(m, weird), "model_add: an unknown kind");
    ok(clt_model_layer_count(m) == 0, "and none of them was added");
    clt_model_add(m, clt_linear(3));
    ok(clt_model_output_shape(m, 5).rank == 0 && clt_model_output_shape(m, -7).rank == 0, "output_shape: layers out of range");
    refused(clt_model_param_shape(m, 0, NULL, &shape), "param_shape: NULL name");
    refused(clt_model_param_shape(m, 0, "weight", NULL), "param_shape: NULL out");
    refused(clt_model_param_shape(m, 3, "weight", &shape), "param_shape: a layer out of range");
    refused(clt_model_param_shape(m, 0, "nope", &shape), "param_shape: an unknown name");

    /* ---- trainers (the step, predict and parameter checks are in test_trainer) ---- */
    clt_train_params p = clt_train_params_default();
    p.max_batch = 4;
    clt_trainer *t = (clt_trainer *)1;
    refused(clt_trainer_create(NULL, rt, m, &p), "trainer_create: NULL out");
    refused(clt_trainer_create(&t, rt, NULL, &p), "trainer_create: NULL model");
    ok(t == NULL, "a failed trainer_create leaves *out NULL");
    p.max_batch = NEG;
    refused(clt_trainer_create(&t, rt, m, &p), "trainer_create: max_batch negative");
    p = clt_train_params_default();
    p.parallel = CLT_PARALLEL_DATA;
    p.split = CLT_SPLIT_WEIGHTS;
    refused(clt_trainer_create(&t, rt, m, &p), "trainer_create: split weights missing");
    p = clt_train_params_default();
    p.accumulation = 0;
    refused(clt_trainer_create(&t, rt, m, &p), "trainer_create: accumulation 0");
    p = clt_train_params_default();
    p.elastic = 1;
    refused(clt_trainer_create(&t, rt, m, &p), "trainer_create: elastic without data parallelism");
    p = clt_train_params_default();
    p.clip_norm = NAN;
    refused(clt_trainer_create(&t, rt, m, &p), "trainer_create: a NaN clip norm");
    /* each split belongs to its mode: one set for another would do nothing */
    p = clt_train_params_default();
    p.parallel = CLT_PARALLEL_TENSOR;
    p.split = CLT_SPLIT_AUTO;
    ok_error(clt_trainer_create(&t, rt, m, &p), CLT_ERR_INVALID_ARG, "tensor_split",
             "trainer_create: the data split in tensor parallelism points at tensor_split");
    p = clt_train_params_default();
    p.parallel = CLT_PARALLEL_DATA;
    p.tensor_split = CLT_SPLIT_AUTO;
    ok_error(clt_trainer_create(&t, rt, m, &p), CLT_ERR_INVALID_ARG, "needs parallel = CLT_PARALLEL_TENSOR",
             "trainer_create: tensor_split outside tensor parallelism");
    /* Option structs must come from their _default(): struct_size says which version they are. */
    p = clt_train_params_default();
    ok(p.struct_size == sizeof p, "train_params_default sets struct_size (%zu)", p.struct_size);
    p.struct_size = 0;
    ok_error(clt_trainer_create(&t, rt, m, &p), CLT_ERR_INVALID_ARG,
             "clt_train_params.struct_size is 0, not a size this library knows", "trainer_create: struct_size 0");
    p.struct_size = sizeof p + 8;
    ok_error(clt_trainer_create(&t, rt, m, &p), CLT_ERR_INVALID_ARG, "start from clt_train_params_default()",
             "trainer_create: a struct_size larger than the library knows");
    p.struct_size = 4;
    ok_error(clt_trainer_create(&t, rt, m, &p), CLT_ERR_INVALID_ARG, "struct_size is 4",
             "trainer_create: a struct_size smaller than the first version");
    clt_runtime *rt2 = (clt_runtime *)1;
    clt_runtime_options zo = clt_runtime_options_default();
    zo.devices = test_spec_all();
    zo.struct_size = 0;
    ok_error(clt_runtime_create_ex(&rt2, &zo), CLT_ERR_INVALID_ARG,
             "clt_runtime_options.struct_size is 0, not a size this library knows (",
             "runtime_create_ex: struct_size 0");
    ok(rt2 == NULL, "... and *out is NULL");
    zo.struct_size = clt_runtime_options_default().struct_size;
    if (ok_status(clt_runtime_create_ex(&rt2, &zo), "runtime_create_ex: the same options from _default()"))
        ok(clt_runtime_device_count(rt2) == nd, "... open the %d devices", nd);
    clt_runtime_destroy(rt2);
    clt_dataset_options dso = clt_dataset_options_default();
    dso.struct_size = 0;
    clt_dataset *ds = NULL;
    ok_error(clt_dataset_load_idx(&ds, "images", "labels", &dso), CLT_ERR_INVALID_ARG,
             "start from clt_dataset_options_default()", "dataset_load_idx: struct_size 0");
    clt_tune_options tuo = clt_tune_options_default();
    tuo.struct_size = 0;
    clt_tune_result tres;
    ok_error(clt_gemm_tune(rt, 0, &tuo, &tres), CLT_ERR_INVALID_ARG,
             "clt_gemm_tune: clt_tune_options.struct_size is 0", "gemm_tune: struct_size 0");
    co = clt_collective_options_default();
    co.struct_size = 0;
    ok_error(clt_allreduce(rt, NULL, NULL, 4, CLT_OP_SUM, &co), CLT_ERR_INVALID_ARG,
             "clt_allreduce: clt_collective_options.struct_size is 0", "allreduce: struct_size 0");
    co = clt_collective_options_default();
    ok_error(clt_allreduce(rt, NULL, NULL, 4, CLT_OP_SUM, &co), CLT_ERR_INVALID_ARG, "NULL",
             "allreduce: options from _default() pass, the NULL buffers are what is refused");

    p = clt_train_params_default();
    p.max_batch = 4;
    if (ok_status(clt_trainer_create(&t, rt, m, &p), "a trainer")) {
        size_t counts[4];
        float out[12];
        refused(clt_trainer_step_targets(t, x, NULL, 2, NULL), "step_targets: NULL targets");
        refused(clt_trainer_step_targets(t, x, x, NEG, NULL), "step_targets: batch negative");
        refused(clt_trainer_predict(t, x, NEG, out), "predict: batch negative");
        refused(clt_trainer_predict(t, x, 0, out), "predict: batch 0");
        refused(clt_trainer_evaluate(t, x, y, NEG, NULL, NULL), "evaluate: n negative (refused before a label is read)");
        refused(clt_trainer_evaluate(t, x, NULL, 2, NULL, NULL), "evaluate: NULL labels");
        refused(clt_trainer_get_grad(t, 0, "weight", out, NEG), "get_grad: count negative");
        refused(clt_trainer_get_param(t, 0, "weight", out, 0), "get_param: count 0");
        refused(clt_trainer_get_param(t, 0, NULL, out, 12), "get_param: NULL name");
        refused(clt_trainer_split(t, NULL, 1), "split: NULL counts");
        refused(clt_trainer_split(t, counts, 0), "split: n 0");
        refused(clt_trainer_split(t, counts, -1), "split: n negative");
        refused(clt_trainer_split(NULL, counts, 1), "split: NULL trainer");
        int dropped[2] = {-7, -7};
        ok(clt_trainer_dropped_devices(t, NULL, 5) == 0 && clt_trainer_dropped_devices(t, dropped, -1) == 0 &&
           dropped[0] == -7, "dropped_devices: a NULL array with cap 5, a negative cap: nothing written");
        clt_trainer_destroy(t);
    }
    ok(clt_trainer_step_count(NULL) == 0 && clt_trainer_lr(NULL) == 0.0f, "trainer getters on NULL");
    refused(clt_trainer_evaluate(NULL, x, y, 2, NULL, NULL), "evaluate: NULL trainer");
    refused(clt_trainer_predict(NULL, x, 2, x), "predict: NULL trainer");
    refused(clt_trainer_get_param(NULL, 0, "weight", x, 12), "get_param: NULL trainer");
    refused(clt_trainer_save(NULL, "x"), "save: NULL trainer");
    refused(clt_trainer_load(NULL, "x"), "load: NULL trainer");
    clt_model_destroy(m);
    clt_runtime_destroy(rt);
    return tap_done();
}
