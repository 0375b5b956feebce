#include "source/http/log_chunk_source.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/errors.h"
#include "source/format/ndjson_decoder.h"
#include "store/memory/memory_tile_store.h"

namespace tessera::source {
namespace {

constexpr char kSource[] = "ev";
const std::vector<ColumnDef> kColumns = {
    {"user", DataType::kString}, {"v", DataType::kInt64}, {"ts", DataType::kTimestamp}};
constexpr int kTimeColumn = 2;

// An entry of `n` lines with v = first, first + 1, …
std::string Entry(int64_t first, int n, int64_t ts = 1000) {
  std::string out;
  for (int i = 0; i < n; ++i) {
    out += fmt::format(R"({{"user":"u{}","v":{},"ts":{}}})", first + i, first + i, ts) + "\n";
  }
  return out;
}

// What HTTP ingest offers for an entry: its lines decoded.
std::unique_ptr<DecodedRows> Decoded(std::string_view payload) {
  NdjsonDecoder decoder(kColumns, kTimeColumn);
  auto rows = std::make_unique<DecodedRows>();
  decoder.Decode(payload, 0, 1, &rows->batch, &rows->stats);
  for (int64_t ts : rows->batch.event_time_ms) {
    rows->max_event_time_ms = std::max(rows->max_event_time_ms, ts);
  }
  return rows;
}

// What the pipeline took: the v of every row in order, and how each chunk arrived.
struct Taken {
  std::vector<int64_t> v;
  DecodeStats stats;
  std::vector<std::string> chunks;  // "decoded 1..3" or "raw 4..4"
};

// Takes chunks until the source is idle (or ends), decoding the raw ones as the pipeline does.
void Consume(LogChunkSource* source, Taken* out) {
  NdjsonDecoder decoder(kColumns, kTimeColumn);
  while (true) {
    Chunk chunk;
    ChunkOrigin origin;
    absl::StatusOr<Source::Next> next = source->NextChunk(&chunk, &origin);
    ASSERT_TRUE(next.ok()) << next.status();
    if (*next != Source::Next::kChunk) return;
    RowBatch scratch;
    const RowBatch* rows = &scratch;
    const std::string entries = origin.input.substr(origin.input.find("entries ") + 8);
    if (origin.decoded != nullptr) {
      EXPECT_TRUE(chunk.empty());
      rows = &origin.decoded->batch;
      out->stats += origin.decoded->stats;
      out->chunks.push_back("decoded " + entries);
    } else {
      decoder.Decode(chunk, origin.first_line, &scratch, &out->stats);
      out->chunks.push_back("raw " + entries);
    }
    for (size_t r = 0; r < rows->num_rows; ++r) out->v.push_back(rows->columns[1].i64[r]);
  }
}

std::vector<int64_t> Range(int64_t first, int64_t last) {
  std::vector<int64_t> out;
  for (int64_t v = first; v <= last; ++v) out.push_back(v);
  return out;
}

// Forwards to a log and counts the entries Read hands out; `during_read` runs inside each Read
// (before it reads), to place a concurrent event exactly there.
class CountingLog final : public store::EventLog {
 public:
  explicit CountingLog(store::EventLog* base) : base_(base) {}
  using store::EventLog::Append;
  absl::StatusOr<store::AppendResult> Append(std::string_view source, std::string_view batch_id,
                                             std::string_view payload, int64_t accepted,
                                             int64_t rejected,
                                             std::string_view annotation) override {
    return base_->Append(source, batch_id, payload, accepted, rejected, annotation);
  }
  absl::Status Read(std::string_view source, uint64_t after_seq, size_t max_bytes,
                    const std::function<void(uint64_t, std::string_view)>& fn) override {
    if (during_read) during_read();
    return base_->Read(source, after_seq, max_bytes, [&](uint64_t seq, std::string_view p) {
      ++entries_read;
      fn(seq, p);
    });
  }
  absl::StatusOr<uint64_t> LastSeq(std::string_view source) override {
    return base_->LastSeq(source);
  }
  absl::Status Trim(std::string_view source, uint64_t up_to_seq) override {
    return base_->Trim(source, up_to_seq);
  }

  int entries_read = 0;
  std::function<void()> during_read;

 private:
  store::EventLog* base_;
};

// A log whose entries are set directly, gaps included (an append that failed after taking its
// sequence number leaves one).
class GappyLog final : public store::EventLog {
 public:
  using store::EventLog::Append;
  absl::StatusOr<store::AppendResult> Append(std::string_view, std::string_view, std::string_view,
                                             int64_t, int64_t, std::string_view) override {
    return Unimplemented("GappyLog::Append");
  }
  absl::Status Read(std::string_view, uint64_t after_seq, size_t max_bytes,
                    const std::function<void(uint64_t, std::string_view)>& fn) override {
    size_t bytes = 0;
    for (auto it = entries.upper_bound(after_seq); it != entries.end(); ++it) {
      fn(it->first, it->second);
      bytes += it->second.size();
      if (bytes >= max_bytes) break;
    }
    return absl::OkStatus();
  }
  absl::StatusOr<uint64_t> LastSeq(std::string_view) override {
    return entries.empty() ? 0 : entries.rbegin()->first;
  }
  absl::Status Trim(std::string_view, uint64_t) override { return absl::OkStatus(); }

  std::map<uint64_t, std::string> entries;
};

class LogChunkSourceTest : public ::testing::Test {
 protected:
  std::unique_ptr<LogChunkSource> Open(LogChunkSourceOptions o = {}) {
    o.entries_offered = &offered_;
    o.entries_raw = &raw_;
    auto s = LogChunkSource::Create(&log_, &store_, kSource, o);
    EXPECT_TRUE(s.ok()) << s.status();
    return std::move(s).value();
  }
  // Appends an entry of `n` lines starting at v = first; returns its payload.
  std::string Append(int64_t first, int n, int64_t ts = 1000) {
    std::string payload = Entry(first, n, ts);
    auto r = log_.Append(kSource, "", payload, n, 0);
    EXPECT_TRUE(r.ok()) << r.status();
    return payload;
  }

  store::MemoryTileStore store_;
  CountingLog log_{&store_};
  Counter offered_;
  Counter raw_;
};

TEST_F(LogChunkSourceTest, WithoutOffersEntriesAreReadAndDecodedAsBefore) {
  auto source = Open();
  Append(1, 3);
  Append(4, 2);
  Taken t;
  Consume(source.get(), &t);
  EXPECT_EQ(t.v, Range(1, 5));
  EXPECT_EQ(t.chunks, (std::vector<std::string>{"raw 1..2"}));
  EXPECT_EQ(t.stats.lines, 5);
  EXPECT_EQ(t.stats.rows, 5);
  EXPECT_EQ(source->position(), 2u);
  EXPECT_EQ(raw_.Value(), 2);
  EXPECT_EQ(offered_.Value(), 0);
}

TEST_F(LogChunkSourceTest, OfferedEntriesAreHandedOutWithoutReadingTheLog) {
  auto source = Open();
  for (int e = 0; e < 3; ++e) source->Offer(e + 1, Decoded(Append(e * 10 + 1, 10)));
  EXPECT_GT(source->offered_bytes(), 0u);
  const int read_before = log_.entries_read;
  Taken t;
  Consume(source.get(), &t);
  EXPECT_EQ(t.v, Range(1, 30));
  // Consecutive offered entries come as one chunk, and nothing was read from the log.
  EXPECT_EQ(t.chunks, (std::vector<std::string>{"decoded 1..3"}));
  EXPECT_EQ(log_.entries_read, read_before);
  EXPECT_EQ(t.stats.lines, 30);
  EXPECT_EQ(t.stats.rows, 30);
  EXPECT_EQ(source->position(), 3u);
  EXPECT_EQ(source->offered_bytes(), 0u);
  EXPECT_EQ(offered_.Value(), 3);
  EXPECT_EQ(raw_.Value(), 0);
}

TEST_F(LogChunkSourceTest, RawReadsStopBeforeTheNextOfferedEntry) {
  auto source = Open();
  Append(1, 2);
  source->Offer(2, Decoded(Append(3, 2)));
  Append(5, 2);
  source->Offer(4, Decoded(Append(7, 2)));
  Taken t;
  Consume(source.get(), &t);
  EXPECT_EQ(t.v, Range(1, 8));
  EXPECT_EQ(t.chunks,
            (std::vector<std::string>{"raw 1..1", "decoded 2..2", "raw 3..3", "decoded 4..4"}));
  EXPECT_EQ(offered_.Value(), 2);
  EXPECT_EQ(raw_.Value(), 2);
}

TEST_F(LogChunkSourceTest, OffersArrivingOutOfOrderAreHandedOutInLogOrder) {
  auto source = Open();
  const std::string e1 = Append(1, 3);
  const std::string e2 = Append(4, 3);
  const std::string e3 = Append(7, 3);
  // Concurrent requests finish their appends in any order.
  source->Offer(3, Decoded(e3));
  source->Offer(2, Decoded(e2));
  Taken t;
  Consume(source.get(), &t);      // entry 1 is not offered yet: read raw, up to entry 2
  source->Offer(1, Decoded(e1));  // too late: dropped at once
  Consume(source.get(), &t);
  EXPECT_EQ(t.v, Range(1, 9));
  EXPECT_EQ(t.chunks, (std::vector<std::string>{"raw 1..1", "decoded 2..3"}));
  EXPECT_EQ(source->offered_bytes(), 0u);
}

// The race the hand-off must survive: the pipeline reads an entry from the log before the
// request that appended it offers its rows. The rows are dropped, never handed out twice.
TEST_F(LogChunkSourceTest, AnOfferForAnEntryAlreadyReadIsDropped) {
  auto source = Open();
  const std::string e1 = Append(1, 3);
  Taken t;
  Consume(source.get(), &t);
  source->Offer(1, Decoded(e1));
  EXPECT_EQ(source->offered_bytes(), 0u);
  Consume(source.get(), &t);
  EXPECT_EQ(t.v, Range(1, 3));
  EXPECT_EQ(t.chunks, (std::vector<std::string>{"raw 1..1"}));
}

TEST_F(LogChunkSourceTest, AnOfferArrivingDuringTheRawReadOfItsEntryIsDropped) {
  auto source = Open();
  const std::string e1 = Append(1, 3);
  const std::string e2 = Append(4, 3);
  // Both offers land while the pipeline is reading entries 1 and 2 raw.
  bool offered = false;
  log_.during_read = [&] {
    if (offered) return;
    offered = true;
    source->Offer(1, Decoded(e1));
    source->Offer(2, Decoded(e2));
  };
  Taken t;
  Consume(source.get(), &t);
  EXPECT_EQ(t.v, Range(1, 6));
  EXPECT_EQ(t.chunks, (std::vector<std::string>{"raw 1..2"}));
  EXPECT_EQ(source->offered_bytes(), 0u);  // nothing left behind for entries already read
  const std::string e3 = Append(7, 1);
  source->Offer(3, Decoded(e3));
  Consume(source.get(), &t);
  EXPECT_EQ(t.chunks, (std::vector<std::string>{"raw 1..2", "decoded 3..3"}));
}

TEST_F(LogChunkSourceTest, RestartReadsTheUncommittedEntriesRaw) {
  {
    LogChunkSourceOptions o;
    o.chunk_bytes = 1;  // one entry per chunk
    auto source = Open(o);
    for (int e = 0; e < 3; ++e) source->Offer(e + 1, Decoded(Append(e * 2 + 1, 2)));
    // The pipeline takes entry 1 and commits it with its tiles; then the process dies with the
    // rows of entries 2 and 3 offered but not taken.
    Chunk chunk;
    ChunkOrigin origin;
    ASSERT_EQ(*source->NextChunk(&chunk, &origin), Source::Next::kChunk);
    ASSERT_NE(origin.decoded, nullptr);
    EXPECT_EQ(origin.decoded->batch.num_rows, 2u);
    store::WriteBatch batch;
    source->AddCheckpoint(&batch);
    ASSERT_TRUE(store_.Write(batch).ok());
    source->Committed();
  }
  auto restarted = Open();
  EXPECT_EQ(restarted->position(), 1u);
  Taken t;
  Consume(restarted.get(), &t);
  EXPECT_EQ(t.v, Range(3, 6));
  EXPECT_EQ(t.chunks, (std::vector<std::string>{"raw 2..3"}));
}

TEST_F(LogChunkSourceTest, OfferedBytesAreBoundedAndDroppedOnClose) {
  const size_t one = Decoded(Entry(1, 10))->MemoryBytes();
  LogChunkSourceOptions o;
  o.max_offered_bytes = 2 * one + one / 2;  // room for two entries' rows
  auto source = Open(o);
  for (int e = 0; e < 5; ++e) source->Offer(e + 1, Decoded(Append(e * 10 + 1, 10)));
  EXPECT_LE(source->offered_bytes(), o.max_offered_bytes);
  EXPECT_GT(source->offered_bytes(), one);  // two entries fit
  Taken t;
  Consume(source.get(), &t);
  EXPECT_EQ(t.v, Range(1, 50));
  EXPECT_EQ(t.chunks, (std::vector<std::string>{"decoded 1..2", "raw 3..5"}));

  source->Offer(6, Decoded(Append(51, 10)));
  EXPECT_GT(source->offered_bytes(), 0u);
  source->Close();
  EXPECT_EQ(source->offered_bytes(), 0u);
  source->Offer(7, Decoded(Append(61, 10)));
  EXPECT_EQ(source->offered_bytes(), 0u);
  Consume(source.get(), &t);  // drains the log, then ends
  EXPECT_EQ(t.v, Range(1, 70));
  Chunk chunk;
  ChunkOrigin origin;
  EXPECT_EQ(*source->NextChunk(&chunk, &origin), Source::Next::kEnd);
}

TEST(LogChunkSourceGaps, StepsOverEntriesThatWereNeverWritten) {
  store::MemoryTileStore meta;
  GappyLog log;
  log.entries[2] = Entry(1, 2);
  log.entries[3] = Entry(3, 2);
  log.entries[5] = Entry(5, 2);
  log.entries[6] = Entry(7, 2);
  auto source = std::move(LogChunkSource::Create(&log, &meta, kSource)).value();
  source->Offer(2, Decoded(log.entries[2]));
  source->Offer(3, Decoded(log.entries[3]));
  source->Offer(6, Decoded(log.entries[6]));
  Taken t;
  Consume(source.get(), &t);
  EXPECT_EQ(t.v, Range(1, 8));
  EXPECT_EQ(t.chunks, (std::vector<std::string>{"decoded 2..3", "raw 4..5", "decoded 6..6"}));
  EXPECT_EQ(source->position(), 6u);
}

TEST_F(LogChunkSourceTest, RowsPastThePipelinesFutureBoundAreReadRaw) {
  FakeClock clock(1'000'000);
  LogChunkSourceOptions o;
  o.clock = &clock;
  o.max_future_ms = 1000;
  auto source = Open(o);
  source->Offer(1, Decoded(Append(1, 2, /*ts=*/1'000'500)));
  Taken t;
  Consume(source.get(), &t);
  // The clock went back: the pipeline's decoder would now reject these rows, so it decodes them.
  source->Offer(2, Decoded(Append(3, 2, /*ts=*/1'000'500)));
  clock.SetMillis(999'000);
  Consume(source.get(), &t);
  EXPECT_EQ(t.chunks, (std::vector<std::string>{"decoded 1..1", "raw 2..2"}));
  EXPECT_EQ(t.v, Range(1, 4));  // (this test's decoder has no future bound; the pipeline's has)
}

}  // namespace
}  // namespace tessera::source
