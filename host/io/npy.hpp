// npy.hpp — NumPy's .npy format (version 1–3, little-endian float32/float64/int64, C order),
// enough to replay another tool's data and parameters and to write trajectories numpy.load reads.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sp::npy {

struct Array {
  std::vector<size_t> shape;
  std::vector<double> values;  // C order, converted from the file's dtype
};

// Reads FILE — a regular file of at most `max_bytes` (its size checked before it is read) —;
// throws UsageError("OPTION: ...") naming the option on any malformed input.
Array load(const std::string& path, const std::string& option, uint64_t max_bytes = UINT64_MAX);
// The same from the bytes of a .npy file (`path` only names it in messages); the fuzz target
// (tests/fuzz) calls it.
Array parse(const std::string& bytes, const std::string& option, const std::string& path);

// Serialises to .npy bytes ('<f4', '<f8' or '<i8').
std::string encode(const std::vector<float>& values, const std::vector<size_t>& shape);
std::string encode(const std::vector<double>& values, const std::vector<size_t>& shape);
std::string encode(const std::vector<int64_t>& values, const std::vector<size_t>& shape);

}  // namespace sp::npy
