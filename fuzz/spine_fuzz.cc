// Spine::Read on arbitrary bytes, as NDJSON and as CSV: it returns a spine or an error, never
// crashes, and every row it keeps has a time in range and re-renders in both output formats.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "common/time_util.h"
#include "offline/spine.h"

namespace {

std::string TempPath(const char* suffix) {
  return "/tmp/spine_fuzz_" + std::to_string(getpid()) + suffix;
}

void Check(const std::string& path, const uint8_t* data, size_t size, bool skip) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) std::abort();
  if (size > 0 && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
  tessera::offline::SpineOptions options;
  options.skip_bad_rows = skip;
  options.views.push_back({{"k"}, {tessera::DataType::kString}});
  options.views.push_back({{"a", "b"}, {tessera::DataType::kInt64, tessera::DataType::kTimestamp}});
  absl::StatusOr<tessera::offline::Spine> spine = tessera::offline::Spine::Read(path, options);
  if (!spine.ok()) return;
  for (size_t row = 0; row < spine->size(); ++row) {
    if (spine->time(row) < tessera::kMinTimestampMs ||
        spine->time(row) > tessera::kMaxTimestampMs) {
      std::abort();
    }
    std::string out;
    spine->AppendColumns(row, tessera::offline::TableFormat::kNdjson, &out);
    spine->AppendColumns(row, tessera::offline::TableFormat::kCsv, &out);
    (void)spine->key(0, row);
    (void)spine->key(1, row);
  }
}

void RemoveTempFiles() {
  std::remove(TempPath(".ndjson").c_str());
  std::remove(TempPath(".csv").c_str());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string ndjson = TempPath(".ndjson");
  static const std::string csv = TempPath(".csv");
  static const int registered = std::atexit(RemoveTempFiles);
  (void)registered;
  const bool skip = size > 0 && (data[0] & 1);
  Check(ndjson, data, size, skip);
  Check(csv, data, size, skip);
  return 0;
}
