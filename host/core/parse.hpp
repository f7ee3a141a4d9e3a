// parse.hpp — the one grammar of the numbers, whole numbers and lists that options take, shared by
// every command (the command line's validators, train's per-feature lists, sweep's axes): decimal
// only (no hex, no inf or nan), finite, no empty list items; every error names the option.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sp {

// "" when `text` is a finite decimal number (then *value holds it), else why not.
std::string real_problem(const std::string& text, double* value);
// "" when `text` is a whole decimal number in [lo, hi] (then *digits holds it without leading
// zeros, and *value), else why not.
std::string whole_problem(const std::string& text, long double lo, long double hi,
                          std::string* digits = nullptr, long double* value = nullptr);

// The same as UsageError naming `option` (and `whole`, the option's full text, where it differs).
double parse_real(const std::string& text, const std::string& option,
                  const std::string& whole = "");
int64_t parse_whole(const std::string& text, const std::string& option, long double lo,
                    long double hi, const std::string& whole = "");
// a,b,c (one item or more, spaces around items ignored): reals, or whole numbers where `integers`.
std::vector<double> parse_list(const std::string& text, const std::string& option,
                               bool integers = false);

std::string trim(const std::string& text);
std::vector<std::string> split(const std::string& text, char delimiter);  // items trimmed

}  // namespace sp
