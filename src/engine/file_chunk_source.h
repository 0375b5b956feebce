#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/input_progress.h"
#include "source/format/line_reader.h"
#include "source/format/read_ahead_line_reader.h"
#include "source/source.h"
#include "store/tile_store.h"

namespace tessera::engine {

// The inputs of a backfill (or of a training set, which replays files as a backfill into an
// empty DB would): hands out the chunks of the input files in order. When an input's turn comes,
// it is compared with the DB's progress records and with the inputs before it in this run (see
// input_progress.h) and starts after the longest committed prefix of its content; it is skipped
// if that is all of it. Each input of the run gets a record of its own, so a record once written
// only ever grows with the same content: an input seen before (e.g. the shorter, older version of
// a grown file) still finds its own.
class FileChunkSource final : public source::Source {
 public:
  // `stored`: the DB's progress records (empty for a new DB).
  FileChunkSource(const std::vector<std::string>& paths, StoredInputProgress stored,
                  size_t chunk_bytes);

  absl::StatusOr<Next> NextChunk(source::Chunk* chunk, source::ChunkOrigin* origin) override;
  void AddCheckpoint(store::WriteBatch* batch) override;

  uint64_t bytes() const { return bytes_; }  // uncompressed bytes handed out
  int skipped() const { return skipped_; }   // inputs whose content was all committed before
  int resumed() const { return resumed_; }   // inputs that continue a committed prefix

 private:
  // One input of this run.
  struct InputRun {
    std::string path;
    bool started = false;  // matched against the DB's records (happens when its turn comes)
    bool skipped = false;  // all of its content was already in the tiles
    InputProgress record;  // what the checkpoints write: how far this run's tiles reach
    ContentHash hash;      // of [0, record.offset)
    std::string head;      // its first bytes, up to kHeadBytes (of those seen so far)
    bool dirty = false;    // record changed since the last checkpoint
  };

  // Chunks read ahead of the workers: one per worker of a two-core round, so the second worker
  // of a round does not wait for the read the first one's take started.
  static constexpr size_t kReadAhead = 2;

  // Finds where input `i` starts.
  absl::Status Start(size_t i);
  // The first chunk of an input resumed after an unterminated last line of `tail_` bytes (the
  // reader starts at that line). If the line's continuation is blank (typically just its '\n'),
  // the line is what was counted: it is dropped here. Otherwise it was cut mid-way (and
  // rejected, or counted as a row if the cut left a complete object): it is decoded again in
  // full. Returns false if nothing of the chunk is left.
  bool ResumeInsideLine(InputRun& in, source::Chunk* chunk);
  void Account(InputRun& in, const source::Chunk& chunk, int64_t* first_line);

  StoredInputProgress stored_;
  size_t chunk_bytes_;
  std::vector<InputRun> inputs_;
  uint64_t next_seq_ = 0;
  bool has_legacy_ = false;
  std::vector<std::string> legacy_deletes_;
  size_t current_ = 0;
  uint64_t tail_ = 0;  // the current input resumes inside its last committed line (see Start)
  std::unique_ptr<source::ReadAheadLineReader> reader_;  // reads the next chunk meanwhile
  uint64_t bytes_ = 0;
  int skipped_ = 0;
  int resumed_ = 0;
};

}  // namespace tessera::engine
