#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/clock.h"
#include "common/metrics.h"
#include "source/source.h"
#include "sql/plan.h"
#include "store/slot_store.h"
#include "store/tile_store.h"

struct rd_kafka_s;
struct rd_kafka_queue_s;
struct rd_kafka_message_s;
struct rd_kafka_topic_partition_list_s;

namespace tessera::source {

struct SourceEnv;  // source/source_env.h

// The Kafka connector's settings, from WITH (…) (Flink's option names).
struct KafkaOptions {
  std::string topic;
  std::string bootstrap_servers;  // 'properties.bootstrap.servers'
  std::string group_id;           // 'properties.group.id'
  enum class Startup { kEarliest, kLatest, kGroupOffsets };
  // Where a partition with no offset stored in the tile store starts ('scan.startup.mode').
  Startup startup = Startup::kGroupOffsets;
  // A partition caught up with its end for this long stops holding the source's watermark back
  // ('scan.watermark.idle-timeout'; 0 = never).
  int64_t idle_timeout_ms = 30'000;
  // Every other 'properties.X', passed to librdkafka as X (after ours, so they can override).
  std::vector<std::pair<std::string, std::string>> properties;
  // Target size of one chunk.
  size_t chunk_bytes = size_t{1} << 20;
  // Messages fetched but not yet handed out (each counted as value + key + 256 bytes): above
  // this the poll thread stops taking messages from librdkafka (whose own prefetch has its own
  // bounds), except one a second up to twice this, so that rebalances are served. One poll
  // may overshoot by its messages beyond the 256 bytes each counts for.
  size_t max_buffered_bytes = size_t{64} << 20;
  // How long a revocation waits for the pipeline to commit the revoked partitions' rows.
  std::chrono::milliseconds revoke_timeout{60'000};

  static absl::StatusOr<KafkaOptions> FromSource(const sql::SourceDef& source);
};

// `connector = 'kafka'`: a member of a consumer group reading every partition assigned to it
// (eager assignment, librdkafka's default "range,roundrobin", unless
// 'properties.partition.assignment.strategy' says otherwise; cooperative-sticky loses the
// assignment when a commit meets a rebalance with librdkafka < 2.10, see Start()).
//
// Exactly once into tiles: the next offset of every partition handed out is part of the
// checkpoint (store::meta::KafkaOffsetKey), written in the same atomic write as the tiles its
// messages produced. Group offsets are committed only with offsets already in the tile store
// (asynchronously after each tile commit, synchronously on revocation), so the group's offset
// of a partition says "every row before it is in the store of the member that committed it".
// Members of one group may each have their own store (one RocksDB per `tessera run`): on
// assignment a partition therefore starts at the larger of its stored offset and the group's
// committed offset (the group's is ahead when another member read the partition meanwhile),
// and only where neither exists where 'scan.startup.mode' says — like Kafka's
// auto.offset.reset, not like Flink's earliest/latest, which ignore committed offsets (to
// re-read a topic into a new DB, use a new 'properties.group.id'). On revocation the source
// drops what it fetched but did not hand out, asks the pipeline for a flush (WantsFlush), gives
// the partitions up only once the rows it handed out are committed (or after revoke_timeout),
// and commits their offsets to the group before it lets them go. Across members with separate
// stores that is exactly once for a member killed after its last group commit, and for a
// revocation where the broker accepts that commit (Kafka does while a group is preparing a
// rebalance; librdkafka's mock cluster refuses commits then). Otherwise the group stays behind
// the store: a member killed between a tile commit and the group commit that follows it, or a
// refused commit at revocation, makes the next owner read those rows again (never fewer).
// Exactly once across members in every case needs a store they share (DESIGN.md, scale-out).
//
// Each message is one line: its value with every '\n' replaced by ' ' (JSON allows whitespace
// there, and a raw newline inside a JSON string is invalid anyway); a message without a value
// becomes the line "null" and is rejected. A chunk holds messages of one partition, in offset
// order; its lane is "topic/partition" (per-partition watermarks, Source::ActiveLanes).
//
// A background thread polls the consumer (and runs the rebalance callbacks); NextChunk() takes
// from what it fetched. Metrics per partition: tessera_kafka_partition_lag,
// tessera_kafka_partition_offset, tessera_kafka_partition_rows_total,
// tessera_kafka_partition_assigned.
class KafkaSource final : public Source {
 public:
  static absl::StatusOr<std::unique_ptr<KafkaSource>> Create(const sql::SourceDef& source,
                                                             const SourceEnv& env);
  static absl::StatusOr<std::unique_ptr<KafkaSource>> Create(std::string source_name,
                                                             KafkaOptions options,
                                                             store::TileStore* store,
                                                             const Clock* clock,
                                                             MetricsRegistry* metrics);
  ~KafkaSource() override;
  KafkaSource(const KafkaSource&) = delete;
  KafkaSource& operator=(const KafkaSource&) = delete;

  absl::StatusOr<Next> NextChunk(Chunk* chunk, ChunkOrigin* origin) override;
  void WaitForData(std::chrono::milliseconds max_wait) override;
  void AddCheckpoint(store::WriteBatch* batch) override;
  void Committed() override;
  bool WantsFlush() override;
  bool ActiveLanes(std::vector<std::string>* active) override;
  bool ClaimsSlots() const override { return slots_ != nullptr; }
  void TakeClaimedLanes(std::vector<std::string>* lanes) override;
  bool SlotLost(const std::string& lane) override;
  std::optional<std::string> CheckpointLane(std::string_view meta_key) const override;

  // Partitions currently assigned (for tests).
  std::vector<int32_t> Assigned() const;
  // Bytes of messages fetched but not handed out, as counted against max_buffered_bytes (for
  // tests).
  size_t BufferedMessageBytes() const;

 private:
  struct Partition {
    int32_t id = 0;
    std::string lane;
    std::string input;  // "kafka topic 'T' partition P"
    bool assigned = false;
    bool revoking = false;
    std::deque<rd_kafka_message_s*> queue;  // fetched, not handed out
    int64_t handed_next = -1;               // after the last message handed out; -1: none yet
    int64_t checkpoint_next = -1;           // in the checkpoint being written
    int64_t committed_next = -1;            // in the tile store
    int64_t group_next = -1;  // the group's committed offset at assignment (never committed below)
    bool caught_up = false;   // the fetcher reached the end of the partition
    int64_t caught_up_since_ms = 0;
    Gauge* lag = nullptr;
    Gauge* offset = nullptr;
    Gauge* assigned_gauge = nullptr;
    Counter* rows_total = nullptr;
  };

  KafkaSource(std::string source_name, KafkaOptions options, store::TileStore* store,
              const Clock* clock, MetricsRegistry* metrics);
  absl::Status Start();
  std::string PartitionLane(int32_t partition) const {
    return options_.topic + "/" + std::to_string(partition);
  }
  // The partition's stored next offset. With writer slots, claims the partition's slot first.
  absl::StatusOr<std::optional<std::string>> ReadStoredOffset(int32_t partition,
                                                              const std::string& key);
  void PollLoop();
  void OnRebalance(int err, rd_kafka_topic_partition_list_s* partitions);
  void Assign(rd_kafka_topic_partition_list_s* partitions);
  void Revoke(rd_kafka_topic_partition_list_s* partitions);
  void OnMessage(rd_kafka_message_s* m);
  void PublishMetrics();
  Partition& PartitionLocked(int32_t id);
  void CommitGroupOffsets();

  friend void KafkaRebalanceCallback(rd_kafka_s*, int, rd_kafka_topic_partition_list_s*, void*);

  const std::string source_name_;
  const KafkaOptions options_;
  store::TileStore* const store_;
  // Non-null: each partition is a writer slot, claimed on assignment.
  store::SlotStore* const slots_;
  const Clock* const clock_;
  MetricsRegistry* const metrics_;

  rd_kafka_s* rk_ = nullptr;
  rd_kafka_queue_s* consumer_queue_ = nullptr;  // the consumer's queue, polled in batches
  std::thread poller_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> closing_{false};
  std::atomic<bool> flush_wanted_{false};

  mutable std::mutex mu_;
  std::condition_variable data_cv_;    // a message arrived, a flush is wanted, or an error
  std::condition_variable commit_cv_;  // Committed() ran
  std::condition_variable room_cv_;    // another thread than the poller lowered buffered_bytes_
  std::map<int32_t, Partition> partitions_;
  size_t buffered_bytes_ = 0;
  absl::Status error_;
  int32_t next_pick_ = 0;                   // round-robin start for NextChunk
  std::vector<std::string> claimed_lanes_;  // slots claimed since TakeClaimedLanes
  std::string scratch_;
  int64_t last_metrics_ms_ = 0;
};

}  // namespace tessera::source
