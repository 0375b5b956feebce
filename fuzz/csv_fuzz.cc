// libFuzzer entry point for the CSV reader and writer: arbitrary bytes are read record by record
// until the end or an InvalidArgument (never a crash, hang or leak). Every record read is written
// back with AppendCsvField and must read back as the same fields on the same number of lines,
// both alone and as part of all the records written one after the other.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "offline/csv.h"

namespace {

using Record = std::vector<std::string>;

void Check(bool ok) {
  if (!ok) std::abort();
}

// The records of `data` until the end or the first error.
std::vector<Record> ReadRecords(std::string_view data, std::vector<int64_t>* lines) {
  tessera::offline::CsvReader reader(data);
  std::vector<Record> records;
  Record fields;
  int64_t last_line = 0;
  while (true) {
    absl::StatusOr<bool> more = reader.Next(&fields);
    if (!more.ok()) {
      Check(more.status().code() == absl::StatusCode::kInvalidArgument);
      Check(reader.Next(&fields).status() == more.status());
      break;
    }
    if (!*more) break;
    Check(!fields.empty() && reader.line() > last_line);
    last_line = reader.line();
    records.push_back(fields);
    if (lines != nullptr) lines->push_back(reader.line());
  }
  return records;
}

void AppendRecord(const Record& record, std::string* out) {
  for (size_t i = 0; i < record.size(); ++i) {
    if (i > 0) out->push_back(',');
    tessera::offline::AppendCsvField(record[i], out);
  }
  out->push_back('\n');
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<Record> records =
      ReadRecords(std::string_view(reinterpret_cast<const char*>(data), size), nullptr);
  std::string all;
  std::vector<Record> expected;
  std::vector<int64_t> expected_lines;
  for (const Record& record : records) {
    // One empty field is written as a blank line, which is no record.
    if (record.size() == 1 && record[0].empty()) continue;
    std::string one;
    AppendRecord(record, &one);
    Check(ReadRecords(one, nullptr) == std::vector<Record>{record});
    expected.push_back(record);
    expected_lines.push_back(1 + static_cast<int64_t>(std::count(all.begin(), all.end(), '\n')));
    all += one;
  }
  std::vector<int64_t> lines;
  Check(ReadRecords(all, &lines) == expected);
  Check(lines == expected_lines);
  return 0;
}
