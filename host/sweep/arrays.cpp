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

npy::Array read_sweep_array(const std::string& path, const std::string& option) {
  // Read whole and converted to double: it may take a quarter of the memory there is.
  return npy::load(path, option, available_memory_bytes() / 4);
}

SweepSpec::Array make_sweep_array(npy::Array file, const std::string& option,
                                  const std::vector<size_t>& sweep_shape,
                                  const std::vector<std::string>& axis_names,
                                  const std::vector<size_t>& model_shape) {
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
  validate_floats(file.values, option);  // every value, not only the first model's
  SweepSpec::Array array;
  array.shape = file.shape;
  array.model_rank = k;
  array.digest = digest_text(std::string(reinterpret_cast<const char*>(file.values.data()),
                                         file.values.size() * sizeof(double)));
  // One shared slice for each index of the leading dimensions: the models that broadcast to it
  // share it (a chunk of many models holds one copy, not one each).
  size_t slices = 1, per_slice = 1;
  for (size_t d = 0; d < leading; ++d) slices *= file.shape[d];
  for (size_t d = leading; d < file.shape.size(); ++d) per_slice *= file.shape[d];
  array.slices.reserve(slices);
  for (size_t i = 0; i < slices; ++i) {
    const auto first = file.values.begin() + static_cast<std::ptrdiff_t>(i * per_slice);
    array.slices.push_back(std::make_shared<const std::vector<double>>(
        first, first + static_cast<std::ptrdiff_t>(per_slice)));
  }
  return array;
}

std::shared_ptr<const std::vector<double>> slice_of(const SweepSpec::Array& array,
                                                    const std::vector<size_t>& sweep_shape,
                                                    int64_t id) {
  // The model's index along each sweep axis (row-major ids), then the array's leading
  // dimensions right-aligned to the last axes: index 0 where the array's dimension is 1.
  const size_t lead = array.shape.size() - array.model_rank;
  std::vector<size_t> index(sweep_shape.size());
  int64_t rest = id;
  for (size_t d = sweep_shape.size(); d > 0; --d) {
    index[d - 1] = static_cast<size_t>(rest % static_cast<int64_t>(sweep_shape[d - 1]));
    rest /= static_cast<int64_t>(sweep_shape[d - 1]);
  }
  size_t slice = 0;
  for (size_t d = 0; d < lead; ++d) {
    const size_t axis = sweep_shape.size() - lead + d;
    slice = slice * array.shape[d] + (array.shape[d] == 1 ? 0 : index[axis]);
  }
  return array.slices.at(slice);
}

}  // namespace sp
