#include "host/core/parse.hpp"

#include <fmt/format.h>

#include <cmath>
#include <cstdlib>

#include "host/core/config.hpp"

namespace sp {

std::string trim(const std::string& text) {
  const size_t a = text.find_first_not_of(" \t");
  if (a == std::string::npos) return "";
  const size_t b = text.find_last_not_of(" \t");
  return text.substr(a, b - a + 1);
}

std::vector<std::string> split(const std::string& text, char delimiter) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    const size_t at = text.find(delimiter, start);
    parts.push_back(
        trim(text.substr(start, at == std::string::npos ? std::string::npos : at - start)));
    if (at == std::string::npos) return parts;
    start = at + 1;
  }
}

namespace {

// [+-]? (digits [. digits?] | . digits) ([eE] [+-]? digits)?
bool decimal_syntax(const std::string& text) {
  size_t k = 0;
  const size_t n = text.size();
  auto digits = [&] {
    const size_t start = k;
    while (k < n && text[k] >= '0' && text[k] <= '9') ++k;
    return k > start;
  };
  if (k < n && (text[k] == '+' || text[k] == '-')) ++k;
  const bool whole = digits();
  bool fraction = false;
  if (k < n && text[k] == '.') {
    ++k;
    fraction = digits();
  }
  if (!whole && !fraction) return false;
  if (k < n && (text[k] == 'e' || text[k] == 'E')) {
    ++k;
    if (k < n && (text[k] == '+' || text[k] == '-')) ++k;
    if (!digits()) return false;
  }
  return k == n;
}

}  // namespace

std::string real_problem(const std::string& text, double* value) {
  if (text.empty()) return "the value is empty";
  if (!decimal_syntax(text)) return fmt::format("'{}' is not a decimal number", text);
  const double parsed = std::strtod(text.c_str(), nullptr);
  if (!std::isfinite(parsed)) return fmt::format("'{}' is not a finite number", text);
  if (value) *value = parsed;
  return "";
}

std::string whole_problem(const std::string& text, long double lo, long double hi,
                          std::string* digits_out, long double* value_out) {
  if (text.empty()) return "the value is empty";
  std::string digits = text;
  const bool negative = digits[0] == '-';
  if (digits[0] == '-' || digits[0] == '+') digits.erase(0, 1);
  if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos)
    return fmt::format("'{}' is not a whole decimal number", text);
  digits.erase(0, std::min(digits.find_first_not_of('0'), digits.size() - 1));
  const long double value = (negative ? -1.0L : 1.0L) * std::strtold(digits.c_str(), nullptr);
  if (digits.size() > 20 || value < lo || value > hi)
    return fmt::format("{} is outside the accepted range [{}, {}]", text,
                       static_cast<long long>(lo), static_cast<unsigned long long>(hi));
  if (digits_out) *digits_out = (negative && digits != "0" ? "-" : "") + digits;
  if (value_out) *value_out = value;
  return "";
}

double parse_real(const std::string& text, const std::string& option, const std::string& whole) {
  double value = 0;
  const std::string problem = real_problem(text, &value);
  if (!problem.empty())
    throw UsageError(whole.empty() || whole == text
                         ? fmt::format("{}: {}", option, problem)
                         : fmt::format("{}: {} in '{}'", option, problem, whole));
  return value;
}

int64_t parse_whole(const std::string& text, const std::string& option, long double lo,
                    long double hi, const std::string& whole) {
  long double value = 0;
  const std::string problem = whole_problem(text, lo, hi, nullptr, &value);
  if (!problem.empty())
    throw UsageError(whole.empty() || whole == text
                         ? fmt::format("{}: {}", option, problem)
                         : fmt::format("{}: {} in '{}'", option, problem, whole));
  return static_cast<int64_t>(value);
}

std::vector<double> parse_list(const std::string& raw, const std::string& option, bool integers) {
  const std::string text = trim(raw);
  if (text.empty()) throw UsageError(fmt::format("{}: the value is empty", option));
  std::vector<double> values;
  for (const std::string& item : split(text, ',')) {
    if (item.empty())
      throw UsageError(
          fmt::format("{}: '{}' has an empty item (accepted: a value, or a list "
                      "a,b,c)",
                      option, text));
    values.push_back(integers ? static_cast<double>(parse_whole(item, option, -9007199254740992.0L,
                                                                9007199254740992.0L, text))
                              : parse_real(item, option, text));
  }
  return values;
}

}  // namespace sp
