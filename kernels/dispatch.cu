// dispatch.cu — the dispatcher (docs/design.md, "Kernel mappings"): the host's calls
// (kernels/fused_step.cuh) routed to the chunk's mapping's kernels, looked up by the mapping in
// the table SP_MAPPINGS lists (kernels/mapping.hpp). The choice of mapping itself is
// kernels/mapping.cpp's; each mapping's kernels are in kernels/mapping_<family>.cu.
#include "kernels/mapping_kernels.cuh"

namespace sp::cuda {

const MappingKernels& kernels_of(Mapping mapping) {
  switch (mapping) {
#define SP_MAPPING_CASE(id, n, m, groups, hidden, own) \
  case Mapping::id:                                    \
    return kernels_##id;
    SP_MAPPINGS(SP_MAPPING_CASE)
#undef SP_MAPPING_CASE
  }
  return kernels_global;
}

// Every file's kernels probed: each is its own compilation unit.
const char* kernel_image_error() {
  if (const char* error = evaluate_image_error()) return error;
  for (const MappingRow& row : kMappingRows)
    if (const char* error = kernels_of(row.mapping).image_error()) return error;
  return nullptr;
}

bool rows_fit_on_chip(Mapping mapping, int n, int train_rows) {
  return kernels_of(mapping).rows_fit_on_chip(n, train_rows);
}

size_t scratch_floats_per_model(int n, int m, int train_rows, Mapping mapping) {
  return kernels_of(mapping).scratch_floats(n, m, train_rows);
}

void launch_train_steps(const DeviceChunk& d, int first_step, int count, void* stream) {
  if (d.models == 0 || count == 0) return;
  kernels_of(d.mapping).train(d, first_step, count, static_cast<cudaStream_t>(stream));
}

TrainKernelInfo train_kernel_info(Mapping mapping, bool rows_on_chip, int n, int train_rows,
                                  int count) {
  DeviceChunk d;
  d.mapping = mapping;
  d.rows_on_chip = rows_on_chip;
  d.train_rows = train_rows;
  d.n = n;
  return kernels_of(mapping).info(d, count);
}

void launch_evaluate(const DeviceChunk& d, bool fresh_rows, int row_offset, int rows, float* out,
                     void* stream) {
  if (d.models == 0) return;
  kernels_of(d.mapping).evaluate(d, fresh_rows, row_offset, rows, out,
                                 static_cast<cudaStream_t>(stream));
}

}  // namespace sp::cuda
