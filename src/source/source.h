#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "source/format/chunk_origin.h"
#include "source/format/line_reader.h"
#include "store/tile_store.h"

namespace tessera::source {

// A connector: where an ingest pipeline's input comes from (a backfill's files, a followed file,
// stdin, the http log, Kafka, Pub/Sub). It hands out chunks of complete NDJSON lines, in stream
// order per lane, and records in the tile store's atomic flush what the tiles now hold, so a
// restart resumes exactly after it.
//
// Threading: NextChunk() is called by one worker thread at a time (the pipeline serializes it);
// every other method from the pipeline's coordinating thread, never during NextChunk().
class Source {
 public:
  enum class Next { kChunk, kIdle, kEnd };

  virtual ~Source() = default;
  // Fills `chunk` with the next lines (kChunk) and `origin` with where they came from, or says
  // there is nothing now but may be later (kIdle: live sources) or never again (kEnd).
  virtual absl::StatusOr<Next> NextChunk(Chunk* chunk, ChunkOrigin* origin) = 0;
  // After kIdle: blocks until data may be available, a flush is wanted, or `max_wait` passed.
  virtual void WaitForData(std::chrono::milliseconds max_wait) {}
  // Adds to `batch` the metadata that records "everything handed out so far is in the tiles"
  // (e.g. file offsets, a log position, partition offsets). Called at each flush, after every
  // chunk handed out was aggregated; the batch is written atomically with the tiles.
  virtual void AddCheckpoint(store::WriteBatch* batch) = 0;
  // Called after the batch of the last AddCheckpoint() is durable (e.g. to trim a log, to ack
  // messages, to let a revoked partition go).
  virtual void Committed() {}
  // Called once every chunk handed out so far is visible to reads (its rows are in the open
  // tiles or the store, or were dropped as late). Lets a source tell its producers when their
  // rows can be read (read-your-writes).
  virtual void Aggregated() {}
  // True when the source needs a flush soon, whatever the pipeline's interval or memory (e.g. a
  // Kafka partition being revoked may only be released once its rows are committed). Checked
  // once per round.
  virtual bool WantsFlush() { return false; }
  // Watermark lanes (Kafka partitions): fills `active` with the lanes whose watermarks the
  // source's watermark is the minimum of, and returns true; a lane that is idle (caught up and
  // quiet for the source's idle timeout) or no longer assigned is left out. Sources with one
  // stream return false (their one lane, "", is always active). Called once per round.
  virtual bool ActiveLanes(std::vector<std::string>* active) { return false; }

  // Stores with writer slots (store/slot_store.h, docs/scale_out.md), where each lane of a
  // source is one slot. True when the source claims the slots of its lanes itself, before it
  // reads their positions (Kafka: on assignment); otherwise the pipeline claims the slot of the
  // source's one lane "" when it starts.
  virtual bool ClaimsSlots() const { return false; }
  // Moves into `lanes` the lanes whose slots the source claimed since the last call (each claim
  // may follow commits by another owner: the pipeline re-reads their watermark lanes).
  virtual void TakeClaimedLanes(std::vector<std::string>* lanes) { lanes->clear(); }
  // The pipeline's commit of `lane`'s slot was fenced: another process owns it now (this one
  // lost the partition while paused). Returns true when the source drops the lane and carries
  // on (Kafka: it forgets what it handed out of the partition since its last commit and reads it
  // again only if the group assigns it back, from the offset committed then); false when it
  // cannot, and the pipeline stops with the error.
  virtual bool SlotLost(const std::string& lane) { return false; }
  // The lane whose slot a checkpoint entry of AddCheckpoint belongs to (Kafka: a partition's
  // offset), or nullopt for an entry of the source as a whole (lane "").
  virtual std::optional<std::string> CheckpointLane(std::string_view meta_key) const {
    return std::nullopt;
  }
};

}  // namespace tessera::source
