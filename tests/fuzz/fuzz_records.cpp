// fuzz_records — libFuzzer target for the records a resume or a merge reads back from a run
// directory (docs/run-directory.md): a sweep's sweep.json (sweep_from_identity), a chunk's
// chunk.json (chunk_record_problem), the record of the files superpose wrote (.superpose.files,
// parse_ledger), and the group and axes inside sweep.json. Any bytes must end in a value or a
// reason (std::runtime_error from the readers that throw): never a crash, a sanitizer report,
// another exception — and a sweep that reads back must describe itself exactly.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>

#include "host/io/run_dir.hpp"
#include "host/sweep/sweep.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 1 << 16) return 0;
  const std::string text(reinterpret_cast<const char*>(data), size);
  const sp::Ledger ledger = sp::parse_ledger(text);
  for (const auto& file : ledger.files)
    if (file.first.empty() || file.first.find('/') != std::string::npos ||
        file.second.xxh3.size() != 16)
      std::abort();
  const nlohmann::json record = nlohmann::json::parse(text, nullptr, false);
  if (record.is_discarded()) return 0;
  std::vector<std::pair<std::string, sp::FileDigest>> files;
  if (sp::chunk_record_problem(record, 0, 4, "0123456789abcdef", "float32", true, &files).empty() &&
      files.empty())
    std::abort();  // a trusted record lists its results.csv at least
  try {
    const sp::SweepSpec spec = sp::sweep_from_identity(record);
    if (spec.model_count() < 1 || spec.model_count() > 100'000'000) std::abort();
    nlohmann::json again = sp::sweep_identity(spec, record["command"].get<std::string>(),
                                              record["arithmetic"].get<std::string>());
    again["version"] = record["version"];
    if (again != record) std::abort();  // what reads back is exactly what was written
  } catch (const std::runtime_error&) {
  }
  try {
    sp::group_from_json(record);
  } catch (const std::runtime_error&) {
  }
  try {
    sp::axis_from_json(record);
  } catch (const std::runtime_error&) {
  }
  return 0;
}
