// KafkaSource against librdkafka's in-process mock cluster (a real protocol peer: the consumer
// speaks the Kafka protocol to it over loopback), with the pipeline's checkpoint protocol
// driven by hand: take chunks, AddCheckpoint, write to the store, Committed.
#include "source/kafka/kafka_source.h"

// GCC 12 at -O3 reports a false -Wrestrict inside std::string copies here (GCC bug 105329).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wrestrict"
#endif

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <map>
#include <set>
#include <string>
#include <thread>

#include "store/memory/memory_tile_store.h"
#include "store/meta_keys.h"

namespace tessera::source {
namespace {

constexpr int kPartitions = 4;
constexpr std::string_view kTopic = "plays";

// A mock cluster with topic "plays" and a producer on it.
class MockCluster {
 public:
  MockCluster() {
    char errstr[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof errstr);
    host_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    cluster_ = rd_kafka_mock_cluster_new(host_, 3);
    rd_kafka_mock_topic_create(cluster_, "plays", kPartitions, 1);
    bootstrap_ = rd_kafka_mock_cluster_bootstraps(cluster_);
    rd_kafka_conf_t* pconf = rd_kafka_conf_new();
    rd_kafka_conf_set(pconf, "bootstrap.servers", bootstrap_.c_str(), errstr, sizeof errstr);
    rd_kafka_conf_set(pconf, "log_level", "3", errstr, sizeof errstr);
    producer_ = rd_kafka_new(RD_KAFKA_PRODUCER, pconf, errstr, sizeof errstr);
  }
  ~MockCluster() {
    rd_kafka_destroy(producer_);
    rd_kafka_mock_cluster_destroy(cluster_);
    rd_kafka_destroy(host_);
  }

  // Produces `n` messages "{"i":k}" for k in [first, first + n) to partition k % kPartitions.
  void Produce(int first, int n) {
    for (int k = first; k < first + n; ++k) {
      const std::string value = fmt::format(R"({{"i":{}}})", k);
      ASSERT_EQ(rd_kafka_producev(producer_, RD_KAFKA_V_TOPIC("plays"),
                                  RD_KAFKA_V_PARTITION(k % kPartitions),
                                  RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
                RD_KAFKA_RESP_ERR_NO_ERROR);
    }
    ASSERT_EQ(rd_kafka_flush(producer_, 10'000), RD_KAFKA_RESP_ERR_NO_ERROR);
  }

  const std::string& bootstrap() const { return bootstrap_; }

 private:
  rd_kafka_t* host_ = nullptr;
  rd_kafka_mock_cluster_t* cluster_ = nullptr;
  rd_kafka_t* producer_ = nullptr;
  std::string bootstrap_;
};

KafkaOptions Options(const MockCluster& cluster) {
  KafkaOptions o;
  o.topic = std::string(kTopic);
  o.bootstrap_servers = cluster.bootstrap();
  o.group_id = "g";
  o.startup = KafkaOptions::Startup::kEarliest;
  o.properties = {
      {"log_level", "3"}, {"session.timeout.ms", "6000"}, {"heartbeat.interval.ms", "500"}};
  o.revoke_timeout = std::chrono::milliseconds(20'000);
  return o;
}

// Drives sources like pipelines: takes chunks, records the values, and commits whenever a
// source wants a flush or `commit_every` chunks were taken.
struct Driver {
  explicit Driver(store::MemoryTileStore* s) : store(s) {}
  store::MemoryTileStore* store;
  std::multiset<int> seen;  // values of "i" handed out and committed
  std::multiset<int> pending;

  void Commit(KafkaSource* src) {
    store::WriteBatch batch;
    src->AddCheckpoint(&batch);
    ASSERT_TRUE(store->Write(batch).ok());
    src->Committed();
    seen.insert(pending.begin(), pending.end());
    pending.clear();
  }

  // Takes what `src` has; returns the number of lines.
  int Take(KafkaSource* src) {
    int lines = 0;
    Chunk chunk;
    ChunkOrigin origin;
    for (;;) {
      origin.Reset();
      absl::StatusOr<Source::Next> next = src->NextChunk(&chunk, &origin);
      EXPECT_TRUE(next.ok()) << next.status();
      if (!next.ok() || *next != Source::Next::kChunk) break;
      std::string_view data = chunk.view();
      EXPECT_EQ(origin.lane.rfind("plays/", 0), 0u);
      EXPECT_EQ(static_cast<size_t>(std::count(data.begin(), data.end(), '\n')),
                origin.offsets.size());
      for (size_t pos = 0; pos < data.size();) {
        const size_t nl = data.find('\n', pos);
        std::string_view line = data.substr(pos, nl - pos);
        int value = -1;
        const size_t digits = line.find_first_of("0123456789");
        if (digits != std::string_view::npos) {
          std::from_chars(line.data() + digits, line.data() + line.size(), value);
        }
        pending.insert(value);
        pos = nl + 1;
        ++lines;
      }
    }
    return lines;
  }
};

// Runs `step` until `done` or the deadline.
template <typename Step, typename Done>
bool Until(Step step, Done done, std::chrono::seconds limit = std::chrono::seconds(30)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    step();
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

TEST(KafkaSource, ReadsEveryPartitionAndResumesAtTheStoredOffsets) {
  MockCluster cluster;
  cluster.Produce(0, 400);
  store::MemoryTileStore store;
  Driver d(&store);
  {
    auto src =
        KafkaSource::Create("plays", Options(cluster), &store, SystemClock::Default(), nullptr);
    ASSERT_TRUE(src.ok()) << src.status();
    ASSERT_TRUE(Until([&] { d.Take(src->get()); }, [&] { return d.pending.size() >= 400; }));
    d.Commit(src->get());
    // Handed out after the last commit: not in the checkpoint, so read again after a restart.
    cluster.Produce(400, 40);
    ASSERT_TRUE(Until([&] { d.Take(src->get()); }, [&] { return d.pending.size() >= 40; }));
    d.pending.clear();  // "crash": these rows never reached the store
  }
  EXPECT_EQ(d.seen.size(), 400u);
  int64_t stored = 0;
  for (int p = 0; p < kPartitions; ++p) {
    auto v = store.GetMeta(store::meta::KafkaOffsetKey("plays", "plays", p));
    ASSERT_TRUE(v.ok() && v->has_value()) << p;
    stored += std::stoll(**v);
  }
  EXPECT_EQ(stored, 400);

  auto again =
      KafkaSource::Create("plays", Options(cluster), &store, SystemClock::Default(), nullptr);
  ASSERT_TRUE(again.ok());
  ASSERT_TRUE(Until([&] { d.Take(again->get()); }, [&] { return d.pending.size() >= 40; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  d.Take(again->get());
  d.Commit(again->get());
  ASSERT_EQ(d.seen.size(), 440u);
  for (int k = 0; k < 440; ++k) EXPECT_EQ(d.seen.count(k), 1u) << k;
}

TEST(KafkaSource, RevocationWaitsForTheCommitSoASecondMemberContinuesExactly) {
  MockCluster cluster;
  cluster.Produce(0, 200);
  store::MemoryTileStore store;  // shared: the second member resumes at the first one's offsets
  Driver d(&store);
  auto a = KafkaSource::Create("plays", Options(cluster), &store, SystemClock::Default(), nullptr);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(Until([&] { d.Take(a->get()); }, [&] { return d.pending.size() >= 200; }));
  // Uncommitted rows are in "open tiles" when the second member joins: A must flush first.
  auto created =
      KafkaSource::Create("plays", Options(cluster), &store, SystemClock::Default(), nullptr);
  ASSERT_TRUE(created.ok());
  std::unique_ptr<KafkaSource> b = std::move(*created);
  bool flushed_on_request = false;
  ASSERT_TRUE(Until(
      [&] {
        d.Take(a->get());
        if (a->get()->WantsFlush()) {
          flushed_on_request = true;
          d.Commit(a->get());
        }
      },
      [&] { return b != nullptr && !b->Assigned().empty() && a->get()->Assigned().size() < 4; }));
  EXPECT_TRUE(flushed_on_request);
  EXPECT_TRUE(d.pending.empty());
  cluster.Produce(200, 200);
  ASSERT_TRUE(Until(
      [&] {
        d.Take(a->get());
        d.Take(b.get());
        d.Commit(a->get());
        d.Commit(b.get());
      },
      [&] { return d.seen.size() >= 400; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  d.Take(a->get());
  d.Take(b.get());
  d.Commit(a->get());
  d.Commit(b.get());
  std::set<int32_t> all;
  for (int32_t p : a->get()->Assigned()) all.insert(p);
  for (int32_t p : b->Assigned()) EXPECT_TRUE(all.insert(p).second) << "assigned twice: " << p;
  EXPECT_EQ(all.size(), static_cast<size_t>(kPartitions));
  ASSERT_EQ(d.seen.size(), 400u);
  for (int k = 0; k < 400; ++k) EXPECT_EQ(d.seen.count(k), 1u) << k;
}

constexpr int kFullMessages = 3'000;  // ~0.8 MB as the buffer counts them
constexpr size_t kSmallBuffer = 8 << 10;

// A source whose buffer, capped at kSmallBuffer, went over its cap: it fetched from `cluster`
// (which holds kFullMessages) and nothing was taken. Null (and a test failure) otherwise.
std::unique_ptr<KafkaSource> StartWithFullBuffer(const MockCluster& cluster,
                                                 store::MemoryTileStore* store) {
  KafkaOptions options = Options(cluster);
  options.max_buffered_bytes = kSmallBuffer;
  auto src = KafkaSource::Create("plays", options, store, SystemClock::Default(), nullptr);
  EXPECT_TRUE(src.ok()) << src.status();
  if (!src.ok()) return nullptr;
  const bool full = Until([] {}, [&] { return (*src)->BufferedMessageBytes() > kSmallBuffer; });
  EXPECT_TRUE(full);
  return full ? std::move(*src) : nullptr;
}

// Every message "i" of [0, n) was committed exactly once.
void ExpectEachOnce(const Driver& d, int n) {
  ASSERT_EQ(d.seen.size(), static_cast<size_t>(n));
  for (int k = 0; k < n; ++k) EXPECT_EQ(d.seen.count(k), 1u) << k;
}

TEST(KafkaSource, AFullBufferStopsTakingMessagesAndLosesNone) {
  MockCluster cluster;
  cluster.Produce(0, kFullMessages);
  store::MemoryTileStore store;
  Driver d(&store);
  std::unique_ptr<KafkaSource> src = StartWithFullBuffer(cluster, &store);
  ASSERT_NE(src, nullptr);
  // Over the cap the poll thread takes no more than fit under it (each counting at least 256
  // bytes), then one message a second up to twice the cap.
  constexpr size_t kMessageBytes = 300;  // a value of <= 12 bytes plus the per-message overhead
  const size_t bound = 2 * kSmallBuffer + kMessageBytes;
  EXPECT_LE(src->BufferedMessageBytes(), bound);
  std::this_thread::sleep_for(std::chrono::milliseconds(3'000));
  EXPECT_LE(src->BufferedMessageBytes(), bound);

  ASSERT_TRUE(Until([&] { d.Take(src.get()); }, [&] { return d.pending.size() >= kFullMessages; }));
  d.Commit(src.get());
  ExpectEachOnce(d, kFullMessages);
}

TEST(KafkaSource, ARebalanceReachesAMemberWhoseBufferIsFull) {
  MockCluster cluster;
  cluster.Produce(0, kFullMessages);
  store::MemoryTileStore store;  // shared: the second member resumes at the first one's offsets
  Driver d(&store);
  std::unique_ptr<KafkaSource> a = StartWithFullBuffer(cluster, &store);
  ASSERT_NE(a, nullptr);
  // A's pipeline takes nothing while B joins: A must still serve the rebalance (its full buffer
  // polls one message a second), or the group waits for max.poll.interval.ms (5 minutes).
  auto created =
      KafkaSource::Create("plays", Options(cluster), &store, SystemClock::Default(), nullptr);
  ASSERT_TRUE(created.ok());
  std::unique_ptr<KafkaSource> b = std::move(*created);
  ASSERT_TRUE(Until(
      [&] {
        if (a->WantsFlush()) d.Commit(a.get());
      },
      [&] { return !b->Assigned().empty() && a->Assigned().size() < kPartitions; }));
  ASSERT_TRUE(Until(
      [&] {
        d.Take(a.get());
        d.Take(b.get());
        d.Commit(a.get());
        d.Commit(b.get());
      },
      [&] { return d.seen.size() >= kFullMessages; }));
  ExpectEachOnce(d, kFullMessages);
}

TEST(KafkaSource, IdlePartitionsLeaveTheActiveLanes) {
  MockCluster cluster;
  store::MemoryTileStore store;
  KafkaOptions o = Options(cluster);
  o.idle_timeout_ms = 1000;
  auto src = KafkaSource::Create("plays", o, &store, SystemClock::Default(), nullptr);
  ASSERT_TRUE(src.ok());
  Driver d(&store);
  std::vector<std::string> active;
  // Assigned and caught up (empty) partitions go idle after the timeout.
  ASSERT_TRUE(Until([&] { (*src)->ActiveLanes(&active); },
                    [&] { return (*src)->Assigned().size() == kPartitions && active.empty(); }));
  cluster.Produce(1, 1);  // partition 1 gets a message: active again
  ASSERT_TRUE(Until([&] { d.Take(src->get()); }, [&] { return d.pending.size() == 1; }));
  (*src)->ActiveLanes(&active);
  EXPECT_EQ(active, std::vector<std::string>{"plays/1"});
}

}  // namespace
}  // namespace tessera::source
