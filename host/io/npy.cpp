#include "host/io/npy.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>

#include "host/core/config.hpp"

namespace sp::npy {

namespace {

[[noreturn]] void fail(const std::string& option, const std::string& path, const std::string& why) {
  throw UsageError(fmt::format("{}: '{}' is not a usable .npy file: {}", option, path, why));
}

// The text of `'key': value` in the header's Python dict literal, up to the comma or brace that
// closes it (parentheses nest, for the shape tuple). Empty when the key is absent.
std::string dict_value(const std::string& header, const std::string& key) {
  const std::string quoted = "'" + key + "'";
  size_t at = header.find(quoted);
  if (at == std::string::npos) return "";
  at = header.find(':', at + quoted.size());
  if (at == std::string::npos) return "";
  int depth = 0;
  size_t end = at + 1;
  for (; end < header.size(); ++end) {
    const char c = header[end];
    if (c == '(') ++depth;
    if (c == ')') --depth;
    if (depth == 0 && (c == ',' || c == '}')) break;
  }
  std::string value = header.substr(at + 1, end - at - 1);
  const size_t first = value.find_first_not_of(" "), last = value.find_last_not_of(" ");
  return first == std::string::npos ? "" : value.substr(first, last - first + 1);
}

template <class T>
void convert(const char* bytes, size_t count, std::vector<double>& out) {
  out.resize(count);
  for (size_t i = 0; i < count; ++i) {
    T value;
    std::memcpy(&value, bytes + i * sizeof(T), sizeof(T));
    out[i] = static_cast<double>(value);
  }
}

std::string header_for(const char* descr, const std::vector<size_t>& shape) {
  std::string dims = fmt::format("{}", fmt::join(shape, ", "));
  if (shape.size() == 1) dims += ",";  // (3,) for one axis, (3, 2) for more
  std::string header =
      fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': ({}), }}", descr, dims);
  // Magic (6) + version (2) + length (2) + header + '\n' is a multiple of 64 bytes.
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::string out("\x93NUMPY\x01\x00", 8);
  const auto length = static_cast<uint16_t>(header.size());
  out += static_cast<char>(length & 0xff);
  out += static_cast<char>(length >> 8);
  return out + header;
}

template <class T>
std::string encode_as(const char* descr, const std::vector<T>& values,
                      const std::vector<size_t>& shape) {
  std::string out = header_for(descr, shape);
  const size_t offset = out.size();
  out.resize(offset + values.size() * sizeof(T));
  if (!values.empty()) std::memcpy(&out[offset], values.data(), values.size() * sizeof(T));
  return out;
}

}  // namespace

Array load(const std::string& path, const std::string& option, uint64_t max_bytes) {
  // A regular file, its size known before anything is read: not a directory, a FIFO that blocks,
  // or /dev/zero that never ends.
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0)
    fail(option, path, fmt::format("cannot open it ({})", std::strerror(errno)));
  if (!S_ISREG(info.st_mode)) fail(option, path, "it is not a regular file");
  const auto file_bytes = static_cast<uint64_t>(info.st_size);
  if (file_bytes > max_bytes)
    fail(option, path,
         fmt::format("it holds {} bytes, more than the {} this run can read into memory",
                     file_bytes, max_bytes));
  std::ifstream file(path, std::ios::binary);
  if (!file) fail(option, path, "cannot open it for reading");
  std::string bytes(static_cast<size_t>(file_bytes), '\0');
  file.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (static_cast<uint64_t>(file.gcount()) != file_bytes || file.peek() != EOF)
    fail(option, path, "it changed size while it was read");
  return parse(bytes, option, path);
}

Array parse(const std::string& bytes, const std::string& option, const std::string& path) {
  if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0)
    fail(option, path, "the NumPy magic string is missing");
  const int major = static_cast<unsigned char>(bytes[6]);
  size_t header_length = 0, header_start = 0;
  if (major == 1) {
    header_length = static_cast<unsigned char>(bytes[8]) |
                    (static_cast<size_t>(static_cast<unsigned char>(bytes[9])) << 8);
    header_start = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) fail(option, path, "the header is truncated");
    for (int i = 0; i < 4; ++i)
      header_length |= static_cast<size_t>(static_cast<unsigned char>(bytes[8 + i])) << (8 * i);
    header_start = 12;
  } else {
    fail(option, path, fmt::format("format version {} is not supported (1, 2 or 3)", major));
  }
  if (header_length > bytes.size() - header_start) fail(option, path, "the header is truncated");
  const std::string header = bytes.substr(header_start, header_length);

  std::string descr = dict_value(header, "descr");
  if (descr.size() < 2 || descr.front() != '\'' || descr.back() != '\'')
    fail(option, path, "the header has no 'descr'");
  descr = descr.substr(1, descr.size() - 2);
  const std::string fortran_text = dict_value(header, "fortran_order");
  if (fortran_text != "True" && fortran_text != "False")
    fail(option, path, "the header has no 'fortran_order'");
  const bool fortran = fortran_text == "True";
  const std::string dims = dict_value(header, "shape");
  if (dims.size() < 2 || dims.front() != '(' || dims.back() != ')')
    fail(option, path, "the header has no 'shape'");
  Array array;
  std::string digits;
  // The element count, with every multiplication checked: a shape whose product overflows (or
  // exceeds the bytes there are) is refused before anything is allocated.
  uint64_t count = 1;
  for (char c : dims.substr(1)) {
    if (c >= '0' && c <= '9') {
      digits += c;
    } else if (c == ',' || c == ')') {
      if (!digits.empty()) {
        if (digits.size() > 18) fail(option, path, "the shape " + dims + " is too large");
        const uint64_t size = std::stoull(digits);
        if (size != 0 && count > bytes.size() / size)
          fail(option, path, "the shape " + dims + " holds more values than the file has bytes");
        count *= size;
        array.shape.push_back(static_cast<size_t>(size));
      }
      digits.clear();
    } else if (c != ' ' && c != 'L') {
      fail(option, path, "the shape " + dims + " is not a tuple of sizes");
    }
  }
  size_t item = 0;
  if (descr == "<f4" || descr == "=f4")
    item = 4;
  else if (descr == "<f8" || descr == "=f8")
    item = 8;
  else
    fail(option, path,
         fmt::format("dtype '{}' is not supported (float32 '<f4' or float64 '<f8')", descr));
  const size_t data_start = header_start + header_length;
  if (count > (bytes.size() - data_start) / item || bytes.size() - data_start != count * item)
    fail(option, path,
         fmt::format("the shape {} needs {} values, and the file holds {} bytes of data", dims,
                     count, bytes.size() - data_start));
  if (item == 4)
    convert<float>(bytes.data() + data_start, count, array.values);
  else
    convert<double>(bytes.data() + data_start, count, array.values);

  if (fortran && array.shape.size() == 2) {  // column-major: transpose into C order
    const size_t rows = array.shape[0], cols = array.shape[1];
    std::vector<double> c_order(count);
    for (size_t r = 0; r < rows; ++r)
      for (size_t c = 0; c < cols; ++c) c_order[r * cols + c] = array.values[c * rows + r];
    array.values.swap(c_order);
  } else if (fortran && array.shape.size() > 2) {
    fail(option, path, "Fortran-ordered arrays of more than two axes are not supported");
  }
  return array;
}

std::string encode(const std::vector<float>& values, const std::vector<size_t>& shape) {
  return encode_as("<f4", values, shape);
}
std::string encode(const std::vector<double>& values, const std::vector<size_t>& shape) {
  return encode_as("<f8", values, shape);
}
std::string encode(const std::vector<int64_t>& values, const std::vector<size_t>& shape) {
  return encode_as("<i8", values, shape);
}

}  // namespace sp::npy
