#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "source/format/decoded_rows.h"

namespace tessera::source {

// Where the lines of one chunk came from: for rejection messages, dead letters and per-lane
// watermarks.
struct ChunkOrigin {
  // Names the input in messages, e.g. "events.ndjson", "kafka topic 'plays' partition 3".
  std::string input;
  // Number of the chunk's first line in `input` (1-based): the decoder numbers lines from it.
  int64_t first_line = 1;
  // The watermark lane of the chunk's rows (Source::ActiveLanes), e.g. "plays/3"; "" for
  // sources with one stream.
  std::string lane;
  // Kafka: the partition the chunk came from; -1 otherwise.
  int32_t partition = -1;
  // Message sources: the position of each line of the chunk, by index from first_line. At most
  // one is filled; when both are empty the line number is the position.
  std::vector<int64_t> offsets;  // Kafka offsets
  std::vector<std::string> ids;  // Pub/Sub message ids
  // Set when the source hands out the chunk's lines already decoded (the chunk is then empty):
  // the pipeline takes these rows and counters instead of decoding. Owned here until Reset().
  std::unique_ptr<DecodedRows> decoded;

  void Reset() {
    input.clear();
    first_line = 1;
    lane.clear();
    partition = -1;
    offsets.clear();
    ids.clear();
    decoded.reset();
  }
};

}  // namespace tessera::source
