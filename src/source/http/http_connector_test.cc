#include "source/http/http_connector.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/test_row_batch.h"
#include "source/format/ndjson_decoder.h"
#include "store/memory/memory_tile_store.h"

namespace tessera::source {
namespace {

constexpr char kSource[] = "ev";
constexpr int64_t kNow = 1'767'225'600'000;  // 2026-01-01T00:00:00Z
constexpr int64_t kLateness = 60'000;
const std::vector<ColumnDef> kColumns = {
    {"user", DataType::kString}, {"v", DataType::kInt64}, {"ts", DataType::kTimestamp}};
constexpr int kTimeColumn = 2;

std::string Line(int64_t v, int64_t ts) {
  return fmt::format(R"({{"user":"u{}","v":{},"ts":{}}})", v, v, ts);
}

using test_util::ExpectSameRows;

void ExpectSameStats(const DecodeStats& a, const DecodeStats& b) {
  EXPECT_EQ(a.lines, b.lines);
  EXPECT_EQ(a.rows, b.rows);
  EXPECT_EQ(a.rejected, b.rejected);
  EXPECT_EQ(a.field_errors, b.field_errors);
  EXPECT_EQ(a.future, b.future);
}

class HttpConnectorTest : public ::testing::Test {
 protected:
  std::shared_ptr<HttpConnector> Open(MetricsRegistry* metrics = nullptr) {
    HttpConnectorOptions o;
    o.ingest.columns = kColumns;
    o.ingest.time_column = kTimeColumn;
    o.ingest.lateness_ms = kLateness;
    o.ingest.max_future_ms = 300'000;
    o.ingest.clock = &clock_;
    o.metrics = metrics;
    auto c = HttpConnector::Create(&store_, &store_, kSource, o);
    EXPECT_TRUE(c.ok()) << c.status();
    return std::move(c).value();
  }

  // Decodes log entry `seq` as the pipeline does when it reads the entry raw.
  void DecodeEntry(uint64_t seq, RowBatch* batch, DecodeStats* stats) {
    std::string payload;
    ASSERT_TRUE(store_
                    .Read(kSource, seq - 1, 1,
                          [&](uint64_t s, std::string_view p) {
                            if (s == seq) payload = std::string(p);
                          })
                    .ok());
    NdjsonDecoder decoder(kColumns, kTimeColumn);
    decoder.set_max_event_time_ms(LatestAcceptedEventTime(clock_.NowMillis(), 300'000));
    decoder.Decode(payload, 0, 1, batch, stats);
  }

  // Ingests `body` (wait=durable), then takes the next chunk as the pipeline would and checks
  // that what it hands out equals decoding the log entry. Returns whether it came decoded.
  bool IngestAndCompare(HttpConnector* c, const std::string& body, IngestResult* result = nullptr) {
    absl::StatusOr<IngestResult> r = c->Ingest("", body, IngestWait::kDurable);
    EXPECT_TRUE(r.ok()) << r.status();
    if (result != nullptr) *result = *r;
    EXPECT_GT(r->seq, 0u);
    Chunk chunk;
    ChunkOrigin origin;
    absl::StatusOr<Source::Next> next = c->consumer()->NextChunk(&chunk, &origin);
    EXPECT_TRUE(next.ok() && *next == Source::Next::kChunk);
    EXPECT_EQ(c->consumer()->position(), r->seq);
    RowBatch expected;
    DecodeStats expected_stats;
    DecodeEntry(r->seq, &expected, &expected_stats);
    EXPECT_EQ(expected_stats.rows, r->accepted);
    if (origin.decoded == nullptr) {
      RowBatch raw;
      DecodeStats raw_stats;
      NdjsonDecoder decoder(kColumns, kTimeColumn);
      decoder.Decode(chunk, origin.first_line, &raw, &raw_stats);
      ExpectSameRows(raw, expected);
      ExpectSameStats(raw_stats, expected_stats);
      return false;
    }
    EXPECT_TRUE(chunk.empty());
    ExpectSameRows(origin.decoded->batch, expected);
    ExpectSameStats(origin.decoded->stats, expected_stats);
    return true;
  }

  store::MemoryTileStore store_;
  FakeClock clock_{kNow};
};

TEST_F(HttpConnectorTest, HandsThePipelineExactlyTheRowsOfTheLogEntry) {
  auto c = Open();
  const int64_t t = kNow - 1000;
  // Plain rows.
  EXPECT_TRUE(IngestAndCompare(c.get(), Line(1, t) + "\n" + Line(2, t) + "\n" + Line(3, t)));
  // Blank, rejected, CRLF and future lines are not in the entry, nor in the rows.
  EXPECT_TRUE(
      IngestAndCompare(c.get(), Line(4, t) + "\r\n\n   \nnot json\n" + R"({"user":"x","v":1})" +
                                    "\n" + Line(5, kNow + 3'600'000) + "\n" + Line(6, t) + "\r\n"));
  // A byte order mark where the body starts, and a field that does not fit its column.
  IngestResult r;
  EXPECT_TRUE(IngestAndCompare(c.get(),
                               "\xEF\xBB\xBF" + Line(7, t) + "\n" +
                                   R"({"user":"u8","v":"eight","ts":)" + std::to_string(t) + "}\n",
                               &r));
  EXPECT_EQ(r.field_errors, 1);
  // Late rows are left out of the entry: the rows are compacted to match.
  EXPECT_TRUE(IngestAndCompare(c.get(),
                               Line(9, t - 2 * kLateness) + "\n" + Line(10, t) + "\n" +
                                   Line(11, t - 3 * kLateness) + "\n" + Line(12, t) + "\n",
                               &r));
  EXPECT_EQ(r.late, 2);
  EXPECT_EQ(r.accepted, 2);
  // Late rows and field errors together: which rows had the field errors is not known, so the
  // pipeline decodes the entry itself.
  EXPECT_FALSE(IngestAndCompare(c.get(),
                                Line(13, t - 2 * kLateness) + "\n" +
                                    R"({"user":"u14","v":"x","ts":)" + std::to_string(t) + "}\n",
                                &r));
  EXPECT_EQ(r.late, 1);
  EXPECT_EQ(r.field_errors, 1);
}

TEST_F(HttpConnectorTest, RetriesAndEmptyBodiesOfferNothing) {
  auto c = Open();
  const std::string body = Line(1, kNow) + "\n";
  auto first = c->Ingest("b-1", body, IngestWait::kDurable);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_GT(c->consumer()->offered_bytes(), 0u);
  Chunk chunk;
  ChunkOrigin origin;
  ASSERT_EQ(*c->consumer()->NextChunk(&chunk, &origin), Source::Next::kChunk);
  ASSERT_NE(origin.decoded, nullptr);

  auto retry = c->Ingest("b-1", body, IngestWait::kDurable);
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_TRUE(retry->duplicate);
  auto rejected = c->Ingest("", "nope\n", IngestWait::kDurable);
  ASSERT_TRUE(rejected.ok()) << rejected.status();
  EXPECT_EQ(rejected->seq, 0u);
  EXPECT_EQ(c->consumer()->offered_bytes(), 0u);
  EXPECT_EQ(*c->consumer()->NextChunk(&chunk, &origin), Source::Next::kIdle);
}

// Many requests append concurrently while the pipeline consumes: whichever way each entry
// arrives (handed over or read raw), the pipeline sees the rows in log order, each once.
TEST_F(HttpConnectorTest, ConcurrentIngestHandsOutRowsInLogOrder) {
  auto c = Open();
  constexpr int kThreads = 4;
  constexpr int kBodies = 150;
  std::atomic<int> producers_done{0};
  std::vector<std::thread> producers;
  producers.reserve(kThreads);
  for (int p = 0; p < kThreads; ++p) {
    producers.emplace_back([&, p] {
      std::mt19937 rng(p);
      for (int b = 0; b < kBodies; ++b) {
        std::string body;
        const int n = 1 + static_cast<int>(rng() % 20);
        for (int i = 0; i < n; ++i) {
          body += Line(int64_t{p} * 1'000'000 + b * 100 + i, kNow - 1000) + "\n";
        }
        auto r = c->Ingest("", body, IngestWait::kDurable);
        ASSERT_TRUE(r.ok()) << r.status();
      }
      ++producers_done;
    });
  }
  std::vector<int64_t> seen;
  int64_t lines = 0;
  NdjsonDecoder decoder(kColumns, kTimeColumn);
  while (true) {
    const bool done = producers_done.load() == kThreads;
    Chunk chunk;
    ChunkOrigin origin;
    absl::StatusOr<Source::Next> next = c->consumer()->NextChunk(&chunk, &origin);
    ASSERT_TRUE(next.ok()) << next.status();
    if (*next == Source::Next::kIdle) {
      if (done) break;
      c->consumer()->WaitForData(std::chrono::milliseconds(1));
      continue;
    }
    RowBatch raw;
    DecodeStats stats;
    const RowBatch* rows = &raw;
    if (origin.decoded != nullptr) {
      rows = &origin.decoded->batch;
      stats = origin.decoded->stats;
    } else {
      decoder.Decode(chunk, origin.first_line, &raw, &stats);
    }
    lines += stats.lines;
    for (size_t r = 0; r < rows->num_rows; ++r) seen.push_back(rows->columns[1].i64[r]);
  }
  for (auto& t : producers) t.join();

  std::vector<int64_t> expected;
  RowBatch all;
  DecodeStats all_stats;
  ASSERT_TRUE(store_
                  .Read(kSource, 0, std::numeric_limits<size_t>::max(),
                        [&](uint64_t, std::string_view p) {
                          RowBatch b;
                          decoder.Decode(p, 0, 1, &b, &all_stats);
                          for (size_t r = 0; r < b.num_rows; ++r) {
                            expected.push_back(b.columns[1].i64[r]);
                          }
                        })
                  .ok());
  EXPECT_EQ(seen, expected);
  EXPECT_EQ(lines, all_stats.lines);
  EXPECT_EQ(c->consumer()->position(), uint64_t{kThreads * kBodies});
  EXPECT_EQ(c->consumer()->offered_bytes(), 0u);
}

TEST_F(HttpConnectorTest, VisibleIngestAnswersOnceThePipelineAggregatedTheEntry) {
  auto c = Open();
  std::atomic<bool> answered{false};
  std::thread request([&] {
    auto r = c->Ingest("", Line(1, kNow) + "\n", IngestWait::kVisible);
    EXPECT_TRUE(r.ok()) << r.status();
    answered = true;
  });
  Chunk chunk;
  ChunkOrigin origin;
  for (int i = 0; i < 1000; ++i) {
    if (*c->consumer()->NextChunk(&chunk, &origin) == Source::Next::kChunk) break;
    c->consumer()->WaitForData(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(c->consumer()->position(), 1u);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_FALSE(answered.load());  // taken, but not yet in the open tiles
  c->consumer()->Aggregated();
  request.join();
  EXPECT_TRUE(answered.load());
  // wait=durable answers without the pipeline.
  auto durable = c->Ingest("", Line(2, kNow) + "\n", IngestWait::kDurable);
  ASSERT_TRUE(durable.ok());
  EXPECT_EQ(durable->seq, 2u);
}

TEST_F(HttpConnectorTest, PipelineStateJudgesLatenessAndOverload) {
  auto c = Open();
  EXPECT_EQ(c->OverloadReason(), "");
  std::atomic<size_t> open_bytes{0};
  c->AttachPipeline(kNow, PipelineLoad{[&] { return open_bytes.load(); }, size_t{10} << 20});
  // Rows older than the pipeline's watermark are late.
  auto r = c->Ingest("", Line(1, kNow - 2 * kLateness) + "\n", IngestWait::kDurable);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->late, 1);
  EXPECT_EQ(r->accepted, 0);
  open_bytes = size_t{20} << 20;
  EXPECT_EQ(c->OverloadReason(), "");
  open_bytes = size_t{21} << 20;
  EXPECT_EQ(c->OverloadReason(), "server busy: 21 MiB of unflushed tiles, budget 10 MiB");
  c->DetachPipeline();
  EXPECT_EQ(c->OverloadReason(), "");
}

TEST_F(HttpConnectorTest, MetricsNameTheSourceAndOutliveTheConnector) {
  MetricsRegistry metrics;
  auto c = Open(&metrics);
  ASSERT_TRUE(c->Ingest("", Line(1, kNow) + "\n", IngestWait::kDurable).ok());
  ASSERT_TRUE(c->Ingest("", Line(2, kNow) + "\n", IngestWait::kDurable).ok());
  std::string m = metrics.RenderPrometheus();
  EXPECT_NE(m.find("tessera_log_backlog_entries{source=\"ev\"} 2\n"), std::string::npos) << m;
  EXPECT_NE(m.find("tessera_log_append_seconds_count{source=\"ev\"} 2\n"), std::string::npos) << m;
  EXPECT_EQ(m.find("tessera_log_handoff_bytes{source=\"ev\"} 0\n"), std::string::npos) << m;
  Chunk chunk;
  ChunkOrigin origin;
  ASSERT_EQ(*c->consumer()->NextChunk(&chunk, &origin), Source::Next::kChunk);
  m = metrics.RenderPrometheus();
  EXPECT_NE(m.find("tessera_log_entries_consumed_total{source=\"ev\",via=\"handoff\"} 2\n"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("tessera_log_backlog_entries{source=\"ev\"} 0\n"), std::string::npos) << m;
  EXPECT_NE(m.find("tessera_log_handoff_bytes{source=\"ev\"} 0\n"), std::string::npos) << m;
  c.reset();
  m = metrics.RenderPrometheus();  // the gauges' connector is gone: they read 0
  EXPECT_NE(m.find("tessera_log_backlog_entries{source=\"ev\"} 0\n"), std::string::npos) << m;
}

}  // namespace
}  // namespace tessera::source
