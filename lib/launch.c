/* Kernel launches and device allocations on a worker, with errors that name the device. */
#include "internal.h"

clt_status clt__launch(clt__worker *w, const char *source, const char *kernel, size_t global,
                       const clt__arg *args, int nargs)
{
    if (global == 0) return CLT_OK;
    cl_kernel k;
    clt_status st = clt__kernel_get(w, source, NULL, kernel, &k);
    if (st != CLT_OK) return st;
    for (int i = 0; i < nargs; i++) {
        cl_int err = clSetKernelArg(k, (cl_uint)i, args[i].size, args[i].value);
        if (err != CL_SUCCESS)
            return clt__fail(clt__status_from_cl(err), "setting argument %d of kernel %s on device "
                             "%d '%s': %s", i, kernel, w->index, clt__worker_name(w),
                             clt_cl_error_name(err));
    }
    /* The work-group size comes from the device and kernel limits, never a vendor constant. */
    size_t local = 64, kmax = 0;
    if (clGetKernelWorkGroupInfo(k, w->dev->device, CL_KERNEL_WORK_GROUP_SIZE, sizeof kmax, &kmax,
                                 NULL) == CL_SUCCESS && kmax && kmax < local)
        local = kmax;
    if (w->dev->info.max_work_group_size && w->dev->info.max_work_group_size < local)
        local = w->dev->info.max_work_group_size;
    size_t rounded = (global + local - 1) / local * local;
    cl_int err = clEnqueueNDRangeKernel(w->queue, k, 1, NULL, &rounded, &local, 0, NULL,
                                        clt__worker_event(w));
    if (err == CL_SUCCESS) {
        clt__worker_record_named(w, CLT__EV_KERNEL, kernel);
        clt__kernel_launched(w, k, 1, &rounded, &local);
    }
    if (err != CL_SUCCESS)
        return clt__fail(clt__status_from_cl(err), "launching kernel %s (%zu work-items) on device "
                         "%d '%s': %s", kernel, global, w->index, clt__worker_name(w),
                         clt_cl_error_name(err));
    return CLT_OK;
}

clt_status clt__alloc(clt__worker *w, size_t n, const char *what, cl_mem *out)
{
    size_t bytes = (n ? n : 1) * sizeof(float);
    if (w->dev->info.max_alloc_bytes && bytes > w->dev->info.max_alloc_bytes)
        return clt__fail(CLT_ERR_OUT_OF_DEVICE_MEMORY, "%s needs %zu bytes on device %d '%s', more "
                         "than its largest allocation (%llu bytes)", what, bytes, w->index,
                         clt__worker_name(w), (unsigned long long)w->dev->info.max_alloc_bytes);
    cl_int err;
    *out = clCreateBuffer(w->context, CL_MEM_READ_WRITE, bytes, NULL, &err);
    if (err != CL_SUCCESS) {
        *out = NULL;
        return clt__fail(clt__status_from_cl(err), "allocating %zu bytes for %s on device %d '%s': "
                         "%s", bytes, what, w->index, clt__worker_name(w), clt_cl_error_name(err));
    }
    return CLT_OK;
}

clt_status clt__copy(clt__worker *w, clt__view src, clt__view dst, size_t n)
{
    if (n == 0 || (src.mem == dst.mem && src.off == dst.off)) return CLT_OK;
    cl_int err = clEnqueueCopyBuffer(w->queue, src.mem, dst.mem, src.off * sizeof(float),
                                     dst.off * sizeof(float), n * sizeof(float), 0, NULL, NULL);
    return err == CL_SUCCESS ? CLT_OK : clt__fail_cl(err, clt__worker_name(w), "clEnqueueCopyBuffer");
}

clt_status clt__zero(clt__worker *w, clt__view v, size_t n)
{
    if (n == 0) return CLT_OK;
    float zero = 0.0f;
    cl_int err = clEnqueueFillBuffer(w->queue, v.mem, &zero, sizeof zero, v.off * sizeof(float),
                                     n * sizeof(float), 0, NULL, NULL);
    return err == CL_SUCCESS ? CLT_OK : clt__fail_cl(err, clt__worker_name(w), "clEnqueueFillBuffer");
}
