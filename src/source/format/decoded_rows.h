#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include "common/arena.h"
#include "common/column.h"
#include "source/format/ndjson_decoder.h"

namespace tessera::source {

// Lines a connector has already decoded with the source's NdjsonDecoder, handed to the ingest
// pipeline with their chunk (ChunkOrigin::decoded) so it does not decode them a second time.
// HTTP ingest decodes every body to validate it before appending it to the event log; the rows
// it appended travel to the pipeline this way when the pipeline reaches their log entry.
//
// Contract: `batch` and `stats` are exactly what NdjsonDecoder::Decode() would produce for the
// chunk's lines (with the pipeline's future bound): same rows in line order, same counters. A
// source that cannot guarantee that hands out the raw lines instead.
//
// Not thread-safe; moved between threads as a whole (unique_ptr).
struct DecodedRows {
  RowBatch batch;     // the rows, in line order; strings in batch.arena or in `arenas`
  DecodeStats stats;  // what decoding the lines would have counted
  // Largest event time in `batch` (min() when empty): a source checks it against the
  // pipeline's future bound before handing the rows out.
  int64_t max_event_time_ms = std::numeric_limits<int64_t>::min();
  // Hold the strings of rows appended from other DecodedRows (Append).
  std::vector<Arena> arenas;

  // Appends the rows of `other` after this one's, adding up the counters; takes over its arenas
  // so the appended strings stay valid. REQUIRES: both were decoded with the same schema.
  void Append(DecodedRows&& other);

  // Keeps only the rows r with keep[r] != 0, in order (strings stay where they are).
  // `stats` is left to the caller, who knows what the dropped rows counted.
  // REQUIRES: keep.size() == batch.num_rows.
  void KeepRows(std::span<const uint8_t> keep);

  // Heap bytes held: column vectors and event times (capacity) and arena blocks (reserved).
  // What a holder of offered-but-not-taken rows adds up against its bound.
  size_t MemoryBytes() const;
};

}  // namespace tessera::source
