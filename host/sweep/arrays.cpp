// arrays.cpp — a sweep's replayed arrays (sweep --init-W, --init-b, --data; SweepSpec::Array):
// one .npy file whose leading dimensions broadcast against the sweep's shape, as numpy broadcasts,
// and each model's slice of it.
#include <fmt/format.h>

#include <string>
#include <vector>

#include "host/io/npy.hpp"
#include "host/io/resources.hpp"
#include "host/io/run_dir.hpp"  // digest_text
#include "host/sweep/sweep.hpp"

namespace sp {

namespace {

std::string shape_of(const std::vector<size_t>& shape) {
  return fmt::format("({}{})", fmt::join(shape, ", "), shape.size() == 1 ? "," : "");
}

}  // namespace

SweepSpec::Array load_sweep_array(const std::string& path, const std::string& option,
                                  const std::vector<size_t>& sweep_shape,
                                  const std::vector<std::string>& axis_names,
                                  const std::vector<size_t>& model_shape) {
  // Read whole and converted to double: it may take a quarter of the memory there is.
  npy::Array file = npy::load(path, option, available_memory_bytes() / 4);
  const size_t k = model_shape.size();
  std::vector<std::string> want;
  for (size_t d = 0; d < k; ++d)
    want.push_back(model_shape[d] ? std::to_string(model_shape[d]) : "points");
  const std::string wanted = fmt::format("(..., {})", fmt::join(want, ", "));
  bool ok = file.shape.size() >= k;
  for (size_t d = 0; ok && d < k; ++d) {
    const size_t got = file.shape[file.shape.size() - k + d];
    ok = model_shape[d] ? got == model_shape[d] : got >= 1;
  }
  if (!ok)
    throw UsageError(
        fmt::format("{}: expected shape {}, got {}", option, wanted, shape_of(file.shape)));
  // The leading dimensions, right-aligned against the sweep's: each the axis's size or 1.
  const size_t leading = file.shape.size() - k;
  bool broadcasts = leading <= sweep_shape.size();
  for (size_t d = 0; broadcasts && d < leading; ++d) {
    const size_t have = file.shape[d], axis = sweep_shape[sweep_shape.size() - leading + d];
    broadcasts = have == axis || have == 1;
  }
  if (!broadcasts)
    throw UsageError(fmt::format(
        "{}: its leading dimensions {} do not broadcast against the sweep's shape {} over {} "
        "(numpy's rule, right-aligned: each the axis's size or 1); a model's own part is {}",
        option, shape_of(std::vector<size_t>(file.shape.begin(), file.shape.end() - k)),
        shape_of(sweep_shape), fmt::join(axis_names, ", "), wanted));
  for (double v : file.values)
    if (!std::isfinite(v))
      throw UsageError(fmt::format("{}: the array holds a NaN or infinite value", option));
  SweepSpec::Array array;
  array.shape = file.shape;
  array.model_rank = k;
  array.digest = digest_text(std::string(reinterpret_cast<const char*>(file.values.data()),
                                         file.values.size() * sizeof(double)));
  array.values = std::make_shared<const std::vector<double>>(std::move(file.values));
  return array;
}

std::shared_ptr<const std::vector<double>> slice_of(const SweepSpec::Array& array,
                                                    const std::vector<size_t>& sweep_shape,
                                                    size_t model_values, int64_t id) {
  // The model's index along each sweep axis (row-major ids), then the array's leading
  // dimensions right-aligned to the last axes: index 0 where the array's dimension is 1.
  const size_t lead = array.shape.size() - array.model_rank;
  std::vector<size_t> index(sweep_shape.size());
  int64_t rest = id;
  for (size_t d = sweep_shape.size(); d > 0; --d) {
    index[d - 1] = static_cast<size_t>(rest % static_cast<int64_t>(sweep_shape[d - 1]));
    rest /= static_cast<int64_t>(sweep_shape[d - 1]);
  }
  size_t offset = 0;
  for (size_t d = 0; d < lead; ++d) {
    const size_t axis = sweep_shape.size() - lead + d;
    offset = offset * array.shape[d] + (array.shape[d] == 1 ? 0 : index[axis]);
  }
  const auto first = array.values->begin() + static_cast<std::ptrdiff_t>(offset * model_values);
  return std::make_shared<const std::vector<double>>(
      first, first + static_cast<std::ptrdiff_t>(model_values));
}

}  // namespace sp
