// Feeds arbitrary bytes to the NDJSON decoder with a fixed schema, both unpadded (copied into
// the decoder's padded scratch buffer) and through a padded Chunk, and checks the invariants
// that must hold for any input:
//   lines == rows + rejected, every column and event_time_ms hold exactly num_rows entries,
//   both entry points agree, and every event time is in the accepted range.
//   build/fuzz/fuzz/ndjson_decoder_fuzz -max_total_time=60

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "source/format/line_reader.h"
#include "source/format/ndjson_decoder.h"

namespace {

using tessera::ColumnDef;
using tessera::DataType;
using tessera::RowBatch;
using tessera::source::Chunk;
using tessera::source::DecodeStats;
using tessera::source::NdjsonDecoder;
using tessera::source::Rejection;

void Check(bool ok) {
  if (!ok) std::abort();
}

void CheckBatch(const RowBatch& batch, const DecodeStats& stats) {
  Check(stats.lines == stats.rows + stats.rejected);
  Check(static_cast<int64_t>(batch.num_rows) == stats.rows);
  Check(batch.event_time_ms.size() == batch.num_rows);
  for (const auto& column : batch.columns) Check(column.size() == batch.num_rows);
  for (int64_t t : batch.event_time_ms) {
    Check(t >= tessera::source::kMinTimestampMs && t <= tessera::source::kMaxTimestampMs);
  }
  for (size_t row = 0; row < batch.num_rows; ++row) {
    for (const auto& column : batch.columns) (void)column.GetValue(row);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static NdjsonDecoder* decoder = new NdjsonDecoder({{"user", DataType::kString},
                                                     {"n", DataType::kInt64},
                                                     {"d", DataType::kDouble},
                                                     {"b", DataType::kBool},
                                                     {"ts", DataType::kTimestamp},
                                                     {"t2", DataType::kTimestamp}},
                                                    4);
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  RowBatch unpadded;
  DecodeStats unpadded_stats;
  int64_t rejections = 0;
  const int64_t lines =
      decoder->Decode(input, 0, 1, &unpadded, &unpadded_stats, [&](const Rejection& r) {
        Check(!r.reason.empty());
        Check(r.line_number >= 1 && r.line_number <= static_cast<int64_t>(size));
        ++rejections;
      });
  CheckBatch(unpadded, unpadded_stats);
  Check(rejections == unpadded_stats.rejected);
  Check(lines >= unpadded_stats.lines);

  Chunk chunk;
  chunk.Assign(input);
  RowBatch padded;
  DecodeStats padded_stats;
  Check(decoder->Decode(chunk, 1, &padded, &padded_stats) == lines);
  CheckBatch(padded, padded_stats);
  Check(padded_stats.rows == unpadded_stats.rows);
  Check(padded_stats.rejected == unpadded_stats.rejected);
  Check(padded_stats.field_errors == unpadded_stats.field_errors);
  Check(padded.event_time_ms == unpadded.event_time_ms);
  return 0;
}
