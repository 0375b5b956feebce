#include "source/kafka/kafka_source.h"

#include <fmt/format.h>
#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <charconv>
#include <cstring>

#include "common/errors.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "source/connector_options.h"
#include "source/format/message_line.h"
#include "source/source_env.h"
#include "store/meta_keys.h"
#include "store/slot_store.h"

namespace tessera::source {

// librdkafka's rebalance callback (C linkage-compatible signature).
void KafkaRebalanceCallback(rd_kafka_t* rk, int err, rd_kafka_topic_partition_list_t* partitions,
                            void* opaque) {
  static_cast<KafkaSource*>(opaque)->OnRebalance(err, partitions);
}

namespace {

constexpr int kPollMs = 100;
constexpr size_t kPollBatch = 1024;
constexpr int kFullPollMs = 1000;  // how often a full buffer still polls (one message)
constexpr int64_t kMetricsEveryMs = 500;
constexpr int kCommittedTimeoutMs = 10'000;
constexpr int kCommittedAttempts = 6;
// Bytes a buffered message counts besides its value and key (librdkafka's message, our queue).
constexpr size_t kMessageOverheadBytes = 256;
constexpr int kWatermarkQueryTimeoutMs = 10'000;

// What a buffered message counts against KafkaOptions::max_buffered_bytes.
size_t BufferedBytes(const rd_kafka_message_t* m) {
  return m->len + m->key_len + kMessageOverheadBytes;
}

void RebalanceTrampoline(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t* partitions, void* opaque) {
  KafkaRebalanceCallback(rk, static_cast<int>(err), partitions, opaque);
}

absl::StatusOr<int64_t> ParseOffset(std::string_view v, std::string_view key) {
  int64_t offset = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), offset);
  if (ec != std::errc() || p != v.data() + v.size() || offset < 0) {
    return DataLoss("corrupt Kafka offset '{}' stored under '{}'", v, key);
  }
  return offset;
}

}  // namespace

absl::StatusOr<KafkaOptions> KafkaOptions::FromSource(const sql::SourceDef& source) {
  TESSERA_RETURN_IF_ERROR(ValidateSourceOptions(source));
  KafkaOptions o;
  o.topic = FindOption(source, "topic").value_or("");
  o.bootstrap_servers = FindOption(source, "properties.bootstrap.servers").value_or("");
  o.group_id = FindOption(source, "properties.group.id").value_or("");
  const std::string mode = FindOption(source, "scan.startup.mode").value_or("group-offsets");
  o.startup = mode == "earliest-offset" ? Startup::kEarliest
              : mode == "latest-offset" ? Startup::kLatest
                                        : Startup::kGroupOffsets;
  if (std::optional<std::string> idle = FindOption(source, "scan.watermark.idle-timeout")) {
    TESSERA_ASSIGN_OR_RETURN(o.idle_timeout_ms,
                             ParseDurationOption(source, "scan.watermark.idle-timeout", *idle));
  }
  for (const auto& [key, value] : source.options) {
    if (key.rfind("properties.", 0) != 0) continue;
    if (key == "properties.bootstrap.servers" || key == "properties.group.id") continue;
    o.properties.emplace_back(key.substr(11), value);
  }
  return o;
}

absl::StatusOr<std::unique_ptr<KafkaSource>> KafkaSource::Create(const sql::SourceDef& source,
                                                                 const SourceEnv& env) {
  TESSERA_ASSIGN_OR_RETURN(KafkaOptions options, KafkaOptions::FromSource(source));
  return Create(source.name, std::move(options), env.store, env.clock, env.metrics);
}

absl::StatusOr<std::unique_ptr<KafkaSource>> KafkaSource::Create(std::string source_name,
                                                                 KafkaOptions options,
                                                                 store::TileStore* store,
                                                                 const Clock* clock,
                                                                 MetricsRegistry* metrics) {
  std::unique_ptr<KafkaSource> s(
      new KafkaSource(std::move(source_name), std::move(options), store, clock, metrics));
  TESSERA_RETURN_IF_ERROR(s->Start());
  return s;
}

KafkaSource::KafkaSource(std::string source_name, KafkaOptions options, store::TileStore* store,
                         const Clock* clock, MetricsRegistry* metrics)
    : source_name_(std::move(source_name)),
      options_(std::move(options)),
      store_(store),
      slots_(store->slots()),
      clock_(clock),
      metrics_(metrics) {}

absl::Status KafkaSource::Start() {
  char errstr[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  std::vector<std::pair<std::string, std::string>> settings = {
      {"bootstrap.servers", options_.bootstrap_servers},
      {"group.id", options_.group_id},
      {"client.id", "tessera-" + source_name_},
      {"enable.auto.commit", "false"},
      {"enable.auto.offset.store", "false"},
      {"enable.partition.eof", "true"},
      // A member killed with SIGKILL holds its partitions until its session times out, and a
      // restarted process waits that long for them: 6 s (the brokers' default minimum) instead
      // of librdkafka's 45 s. Heartbeats come from librdkafka's own thread, so a slow flush
      // does not expire the session.
      {"session.timeout.ms", "6000"},
      {"heartbeat.interval.ms", "1000"},
      // Where a partition goes when its offset is out of range (deleted by retention) or, with
      // 'group-offsets', when the group has none: never skip data silently ('latest-offset'
      // only applies to partitions new to both the DB and the group).
      {"auto.offset.reset", "earliest"},
      // librdkafka's prefetch: up to 128 MiB of values or 1M messages. Where its queue is full
      // its fetcher stops and looks again only later, so at librdkafka's defaults (100k
      // messages, 64 MiB) a consumer catching up on a backlog waited for fetches: 0.46M rows/s
      // on the mock cluster against 1.6M with these (docs/PERFORMANCE.md, Kafka ingest).
      {"queued.min.messages", "1000000"},
      {"queued.max.messages.kbytes", "131072"},
      // Eager (librdkafka's default, "range,roundrobin"), not cooperative-sticky: with
      // librdkafka < 2.10 an offset commit that meets a cooperative rebalance makes the member
      // lose its assignment (librdkafka #4059), so the revoked partitions' offsets are never
      // committed and their next owner reads again what this member read.
  };
  settings.insert(settings.end(), options_.properties.begin(), options_.properties.end());
  for (const auto& [key, value] : settings) {
    if (rd_kafka_conf_set(conf, key.c_str(), value.c_str(), errstr, sizeof errstr) !=
        RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      return InvalidArgument("source '{}': Kafka property '{}' = '{}': {}", source_name_, key,
                             value, errstr);
    }
  }
  rd_kafka_conf_set_opaque(conf, this);
  rd_kafka_conf_set_rebalance_cb(conf, RebalanceTrampoline);
  rk_ = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
  if (rk_ == nullptr) {
    rd_kafka_conf_destroy(conf);
    return InvalidArgument("source '{}': cannot create a Kafka consumer: {}", source_name_, errstr);
  }
  rd_kafka_poll_set_consumer(rk_);
  consumer_queue_ = rd_kafka_queue_get_consumer(rk_);
  rd_kafka_topic_partition_list_t* topics = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(topics, options_.topic.c_str(), RD_KAFKA_PARTITION_UA);
  const rd_kafka_resp_err_t err = rd_kafka_subscribe(rk_, topics);
  rd_kafka_topic_partition_list_destroy(topics);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Internal("source '{}': cannot subscribe to Kafka topic '{}': {}", source_name_,
                    options_.topic, rd_kafka_err2str(err));
  }
  poller_ = std::thread([this] { PollLoop(); });
  return absl::OkStatus();
}

KafkaSource::~KafkaSource() {
  {
    // Under mu_, so a revocation between checking its condition and waiting cannot miss it.
    std::lock_guard<std::mutex> lock(mu_);
    closing_.store(true);
    stop_.store(true);
  }
  commit_cv_.notify_all();
  room_cv_.notify_all();
  if (poller_.joinable()) poller_.join();
  if (consumer_queue_ != nullptr) rd_kafka_queue_destroy(consumer_queue_);
  if (rk_ != nullptr) {
    rd_kafka_consumer_close(rk_);  // runs the revocation callback (closing_: no waiting)
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto& [id, p] : partitions_) {
        for (rd_kafka_message_t* m : p.queue) rd_kafka_message_destroy(m);
        p.queue.clear();
      }
    }
    rd_kafka_destroy(rk_);
  }
}

KafkaSource::Partition& KafkaSource::PartitionLocked(int32_t id) {
  auto [it, added] = partitions_.try_emplace(id);
  Partition& p = it->second;
  if (added) {
    p.id = id;
    p.lane = PartitionLane(id);
    p.input = fmt::format("kafka topic '{}' partition {}", options_.topic, id);
    if (metrics_ != nullptr) {
      const Labels labels = {
          {"source", source_name_}, {"topic", options_.topic}, {"partition", std::to_string(id)}};
      p.lag = metrics_->GetGauge("tessera_kafka_partition_lag",
                                 "Messages in the partition after the last one handed to the "
                                 "pipeline (0 when not assigned to this process)",
                                 labels);
      p.offset = metrics_->GetGauge(
          "tessera_kafka_partition_offset",
          "Next offset of the partition stored in the tile store with the tiles (committed)",
          labels);
      p.assigned_gauge =
          metrics_->GetGauge("tessera_kafka_partition_assigned",
                             "1 while the partition is assigned to this process, else 0", labels);
      p.rows_total =
          metrics_->GetCounter("tessera_kafka_partition_rows_total",
                               "Messages of the partition handed to the pipeline", labels);
    }
  }
  return p;
}

void KafkaSource::PollLoop() {
  // Backpressure by not polling: pausing the partitions instead would make librdkafka drop what
  // it prefetched and fetch it again on resume (on the mock cluster that held the rate at a
  // fifth of what the pipeline takes). While the buffer is over its cap, librdkafka's own
  // prefetch queue fills to its bounds (queued.max.messages.kbytes, queued.min.messages) and
  // fetching stops there. A full buffer still takes one message per kFullPollMs, up to twice
  // its cap, so rebalance callbacks run; a member whose pipeline takes nothing at all for
  // max.poll.interval.ms is then rightly evicted from the group.
  rd_kafka_message_t* batch[kPollBatch];
  while (!stop_.load()) {
    size_t want = kPollBatch;
    {
      std::unique_lock<std::mutex> lock(mu_);
      const size_t cap = options_.max_buffered_bytes;
      const bool room = room_cv_.wait_for(lock, std::chrono::milliseconds(kFullPollMs),
                                          [&] { return stop_.load() || buffered_bytes_ <= cap; });
      if (stop_.load()) break;
      // Each message counts at least kMessageOverheadBytes: no more than fit under the cap.
      want =
          room ? std::clamp<size_t>((cap - buffered_bytes_) / kMessageOverheadBytes, 1, kPollBatch)
               : (buffered_bytes_ < 2 * cap ? 1 : 0);
    }
    if (want > 0) {
      // Up to `want` messages (and events); rebalance callbacks are served here too.
      const ssize_t n = rd_kafka_consume_batch_queue(consumer_queue_, kPollMs, batch, want);
      for (ssize_t i = 0; i < n; ++i) OnMessage(batch[i]);
    }
    const int64_t now = clock_->NowMillis();
    if (now - last_metrics_ms_ >= kMetricsEveryMs) {
      last_metrics_ms_ = now;
      PublishMetrics();
    }
  }
}

void KafkaSource::OnMessage(rd_kafka_message_t* m) {
  if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    std::lock_guard<std::mutex> lock(mu_);
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      auto it = partitions_.find(m->partition);
      if (it != partitions_.end() && !it->second.caught_up) {
        it->second.caught_up = true;
        it->second.caught_up_since_ms = clock_->NowMillis();
      }
    } else if (m->err == RD_KAFKA_RESP_ERR__FATAL) {
      char reason[512];
      rd_kafka_fatal_error(rk_, reason, sizeof reason);
      if (error_.ok()) {
        error_ = Internal("source '{}': fatal Kafka error: {}", source_name_, reason);
      }
      data_cv_.notify_all();
    }
    // Other errors (a broker down, a topic not there yet) are retried by librdkafka.
    rd_kafka_message_destroy(m);
    return;
  }
  std::lock_guard<std::mutex> lock(mu_);
  auto it = partitions_.find(m->partition);
  if (it == partitions_.end() || !it->second.assigned || it->second.revoking) {
    rd_kafka_message_destroy(m);
    return;
  }
  Partition& p = it->second;
  const int64_t expected = p.queue.empty() ? p.handed_next : p.queue.back()->offset + 1;
  if (expected >= 0 && m->offset < expected) {  // already had it (a refetch after a seek)
    rd_kafka_message_destroy(m);
    return;
  }
  p.queue.push_back(m);
  p.caught_up = false;
  buffered_bytes_ += BufferedBytes(m);
  data_cv_.notify_one();
}

void KafkaSource::OnRebalance(int err, rd_kafka_topic_partition_list_t* partitions) {
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    Assign(partitions);
  } else {
    Revoke(partitions);
  }
}

void KafkaSource::Assign(rd_kafka_topic_partition_list_t* partitions) {
  absl::Status failed;
  // The offsets the group committed: every row before one is in the tile store of the member
  // that committed it (this one or another, with its own store).
  std::map<int32_t, int64_t> group;
  {
    rd_kafka_topic_partition_list_t* committed = rd_kafka_topic_partition_list_copy(partitions);
    // A coordinator moving (a broker restart) makes the lookup time out for a while: retry.
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR__TIMED_OUT;
    for (int attempt = 0;
         attempt < kCommittedAttempts && err != RD_KAFKA_RESP_ERR_NO_ERROR && !stop_.load();
         ++attempt) {
      err = rd_kafka_committed(rk_, committed, kCommittedTimeoutMs);
    }
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      failed = Unavailable("source '{}': cannot read the committed offsets of group '{}': {}",
                           source_name_, options_.group_id, rd_kafka_err2str(err));
    } else {
      for (int i = 0; i < committed->cnt; ++i) {
        const rd_kafka_topic_partition_t& tp = committed->elems[i];
        if (tp.err == RD_KAFKA_RESP_ERR_NO_ERROR && tp.offset >= 0) {
          group[tp.partition] = tp.offset;
        }
      }
    }
    rd_kafka_topic_partition_list_destroy(committed);
  }
  for (int i = 0; i < partitions->cnt; ++i) {
    rd_kafka_topic_partition_t& tp = partitions->elems[i];
    const std::string key = store::meta::KafkaOffsetKey(source_name_, tp.topic, tp.partition);
    absl::Status read;
    if (slots_ != nullptr) {
      std::lock_guard<std::mutex> lock(mu_);
      const Partition& p = PartitionLocked(tp.partition);
      if (p.handed_next > p.committed_next) {
        // Rows of the partition are in the open tiles but not committed: this member lost the
        // partition without a revocation (a pause longer than the session timeout) or gave it
        // up after revoke_timeout. Another owner may have committed them since, and they cannot
        // be kept apart from what it committed. So the slot is NOT claimed again: the pipeline
        // stops, and its last flush commits them under the old claim only if nobody claimed
        // the slot meanwhile (otherwise that commit is fenced).
        read = Aborted(
            "source '{}': partition {} was assigned again while {} of its rows were not "
            "committed (the partition was lost, e.g. after a pause longer than the session "
            "timeout); restarting from the committed offset",
            source_name_, tp.partition, p.handed_next - p.committed_next);
      }
    }
    int64_t stored = -1;
    absl::StatusOr<std::optional<std::string>> value = std::optional<std::string>();
    if (read.ok()) value = ReadStoredOffset(tp.partition, key);
    if (read.ok()) read = value.status();
    if (read.ok() && slots_ != nullptr) {
      std::lock_guard<std::mutex> lock(mu_);
      claimed_lanes_.push_back(PartitionLane(tp.partition));
    }
    if (read.ok() && value->has_value()) {
      absl::StatusOr<int64_t> parsed = ParseOffset(**value, key);
      read = parsed.status();
      if (parsed.ok()) stored = *parsed;
    }
    if (!read.ok()) {
      // Leave the partition unassigned here (its messages are dropped) and fail the source: a
      // checkpoint written now must not replace the offset that could not be read.
      failed = read;
      tp.offset = RD_KAFKA_OFFSET_INVALID;
      continue;
    }
    // A partition new to the DB and the group starts at a concrete offset, handed out as "read
    // up to here", so the next checkpoint stores it even before its first message: a restart
    // then resumes there instead of resolving 'latest' again and skipping what came between.
    int64_t fresh_start = -1;
    if (options_.startup != KafkaOptions::Startup::kGroupOffsets) {
      int64_t low = 0, high = 0;
      if (rd_kafka_query_watermark_offsets(rk_, tp.topic, tp.partition, &low, &high,
                                           kWatermarkQueryTimeoutMs) ==
          RD_KAFKA_RESP_ERR_NO_ERROR) {
        fresh_start = options_.startup == KafkaOptions::Startup::kEarliest ? low : high;
      }
    }
    std::lock_guard<std::mutex> lock(mu_);
    Partition& p = PartitionLocked(tp.partition);
    p.assigned = true;
    p.revoking = false;
    p.caught_up = false;
    p.committed_next = std::max(p.committed_next, stored);
    if (p.offset != nullptr && p.committed_next >= 0) {
      p.offset->Set(static_cast<double>(p.committed_next));
    }
    if (p.assigned_gauge != nullptr) p.assigned_gauge->Set(1);
    // Rows handed out but not yet committed are in the open tiles: continue after them. Rows
    // before the group's offset are in another member's store when it is ahead of ours.
    auto g = group.find(tp.partition);
    p.group_next = g == group.end() ? -1 : g->second;
    int64_t start = std::max({stored, p.handed_next, p.group_next});
    if (start < 0) start = fresh_start;
    if (start >= 0) {
      tp.offset = start;
      p.handed_next = start;
    } else {
      tp.offset = options_.startup == KafkaOptions::Startup::kEarliest ? RD_KAFKA_OFFSET_BEGINNING
                  : options_.startup == KafkaOptions::Startup::kLatest
                      ? RD_KAFKA_OFFSET_END
                      : RD_KAFKA_OFFSET_INVALID;  // the group's committed offset
    }
  }
  rd_kafka_error_t* error = nullptr;
  rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
  if (std::strcmp(rd_kafka_rebalance_protocol(rk_), "COOPERATIVE") == 0) {
    error = rd_kafka_incremental_assign(rk_, partitions);
  } else {
    err = rd_kafka_assign(rk_, partitions);
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (error != nullptr) {
    failed = Internal("source '{}': Kafka assignment failed: {}", source_name_,
                      rd_kafka_error_string(error));
    rd_kafka_error_destroy(error);
  } else if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    failed =
        Internal("source '{}': Kafka assignment failed: {}", source_name_, rd_kafka_err2str(err));
  }
  if (!failed.ok() && error_.ok()) error_ = failed;
  data_cv_.notify_all();
}

void KafkaSource::Revoke(rd_kafka_topic_partition_list_t* partitions) {
  {
    std::unique_lock<std::mutex> lock(mu_);
    std::vector<Partition*> revoked;
    for (int i = 0; i < partitions->cnt; ++i) {
      auto it = partitions_.find(partitions->elems[i].partition);
      if (it == partitions_.end()) continue;
      Partition& p = it->second;
      p.revoking = true;
      for (rd_kafka_message_t* m : p.queue) {
        buffered_bytes_ -= BufferedBytes(m);
        rd_kafka_message_destroy(m);
      }
      p.queue.clear();
      revoked.push_back(&p);
    }
    auto uncommitted = [&] {
      for (const Partition* p : revoked) {
        if (p->handed_next > p->committed_next) return true;
      }
      return false;
    };
    if (uncommitted() && !closing_.load()) {
      // The rows handed out must be in the store before another member may read the partition.
      flush_wanted_.store(true);
      data_cv_.notify_all();
      commit_cv_.wait_for(lock, options_.revoke_timeout,
                          [&] { return !uncommitted() || closing_.load(); });
    }
    // The next owner starts at the group's offset when its own store has none (or an older
    // one): commit ours now, synchronously, before the partitions are released. The commits after
    // each flush are asynchronous and skip partitions no longer assigned.
    if (!rd_kafka_assignment_lost(rk_)) {
      rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(8);
      for (const Partition* p : revoked) {
        if (p->committed_next > p->group_next) {
          rd_kafka_topic_partition_list_add(list, options_.topic.c_str(), p->id)->offset =
              p->committed_next;
        }
      }
      if (list->cnt > 0) {
        lock.unlock();
        const rd_kafka_resp_err_t err = rd_kafka_commit(rk_, list, /*async=*/0);
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
          fmt::print(stderr,
                     "tessera: source '{}': committing the offsets of {} revoked Kafka "
                     "partition(s) to group '{}' failed ({}): their next owner may read again "
                     "what this process read since its last commit\n",
                     source_name_, list->cnt, options_.group_id, rd_kafka_err2str(err));
        }
        lock.lock();
      }
      rd_kafka_topic_partition_list_destroy(list);
    }
    for (Partition* p : revoked) {
      p->assigned = false;
      p->revoking = false;
      p->caught_up = false;
      if (p->lag != nullptr) p->lag->Set(0);
      if (p->assigned_gauge != nullptr) p->assigned_gauge->Set(0);
    }
  }
  if (std::strcmp(rd_kafka_rebalance_protocol(rk_), "COOPERATIVE") == 0) {
    rd_kafka_error_t* error = rd_kafka_incremental_unassign(rk_, partitions);
    if (error != nullptr) rd_kafka_error_destroy(error);
  } else {
    rd_kafka_assign(rk_, nullptr);
  }
}

absl::StatusOr<Source::Next> KafkaSource::NextChunk(Chunk* chunk, ChunkOrigin* origin) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!error_.ok()) return error_;
  if (partitions_.empty()) return Next::kIdle;
  // Round-robin over the partitions, starting after the last one served.
  auto it = partitions_.lower_bound(next_pick_);
  Partition* p = nullptr;
  for (size_t n = 0; n < partitions_.size(); ++n, ++it) {
    if (it == partitions_.end()) it = partitions_.begin();
    if (it->second.assigned && !it->second.revoking && !it->second.queue.empty()) {
      p = &it->second;
      break;
    }
  }
  if (p == nullptr) return Next::kIdle;
  scratch_.clear();
  origin->offsets.clear();
  int64_t last = -1;
  while (!p->queue.empty() && (scratch_.empty() || scratch_.size() < options_.chunk_bytes)) {
    rd_kafka_message_t* m = p->queue.front();
    p->queue.pop_front();
    AppendMessageLine(m->payload == nullptr
                          ? std::string_view()
                          : std::string_view(static_cast<const char*>(m->payload), m->len),
                      &scratch_);
    origin->offsets.push_back(m->offset);
    last = m->offset;
    buffered_bytes_ -= BufferedBytes(m);
    rd_kafka_message_destroy(m);
  }
  room_cv_.notify_one();
  const int64_t n = static_cast<int64_t>(origin->offsets.size());
  origin->input = p->input;
  origin->lane = p->lane;
  origin->partition = p->id;
  origin->first_line = 1;
  p->handed_next = last + 1;
  if (p->rows_total != nullptr) p->rows_total->Inc(n);
  next_pick_ = p->id + 1;
  chunk->Assign(scratch_, 0);
  return Next::kChunk;
}

void KafkaSource::WaitForData(std::chrono::milliseconds max_wait) {
  std::unique_lock<std::mutex> lock(mu_);
  data_cv_.wait_for(lock, max_wait, [&] {
    if (!error_.ok() || flush_wanted_.load()) return true;
    for (const auto& [id, p] : partitions_) {
      if (p.assigned && !p.revoking && !p.queue.empty()) return true;
    }
    return false;
  });
}

absl::StatusOr<std::optional<std::string>> KafkaSource::ReadStoredOffset(int32_t partition,
                                                                         const std::string& key) {
  if (slots_ == nullptr) return store_->GetMeta(key);
  // The claim fences the partition's earlier owner before its committed offset is read, so
  // that offset is final: nobody else can commit the slot any more.
  absl::StatusOr<store::SlotClaim> claim =
      slots_->ClaimSlot(store::SlotName(ToLowerAscii(source_name_), PartitionLane(partition)));
  if (!claim.ok()) return claim.status();
  for (const auto& [k, v] : claim->meta) {
    if (k == key) return std::optional<std::string>(v);
  }
  return std::optional<std::string>();
}

std::optional<std::string> KafkaSource::CheckpointLane(std::string_view meta_key) const {
  const std::string prefix = store::meta::KafkaOffsetKey(source_name_, options_.topic, 0);
  const std::string_view stem = std::string_view(prefix).substr(0, prefix.size() - 1);
  if (!meta_key.starts_with(stem)) return std::nullopt;
  int32_t partition = 0;
  const std::string_view digits = meta_key.substr(stem.size());
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), partition);
  if (ec != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
  return PartitionLane(partition);
}

void KafkaSource::AddCheckpoint(store::WriteBatch* batch) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [id, p] : partitions_) {
    if (p.handed_next < 0 || p.handed_next <= p.committed_next) continue;
    batch->meta.emplace_back(store::meta::KafkaOffsetKey(source_name_, options_.topic, id),
                             std::to_string(p.handed_next));
    p.checkpoint_next = p.handed_next;
  }
}

void KafkaSource::Committed() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    bool pending = false;
    for (auto& [id, p] : partitions_) {
      if (p.checkpoint_next > p.committed_next) p.committed_next = p.checkpoint_next;
      if (p.offset != nullptr && p.committed_next >= 0) {
        p.offset->Set(static_cast<double>(p.committed_next));
      }
      pending = pending || (p.revoking && p.handed_next > p.committed_next);
    }
    flush_wanted_.store(pending);
  }
  commit_cv_.notify_all();
  CommitGroupOffsets();
}

void KafkaSource::CommitGroupOffsets() {
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(8);
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [id, p] : partitions_) {
      if (!p.assigned || p.committed_next <= p.group_next) continue;
      rd_kafka_topic_partition_list_add(list, options_.topic.c_str(), id)->offset =
          p.committed_next;
    }
  }
  if (list->cnt > 0) rd_kafka_commit(rk_, list, /*async=*/1);
  rd_kafka_topic_partition_list_destroy(list);
}

bool KafkaSource::WantsFlush() { return flush_wanted_.load(); }

bool KafkaSource::SlotLost(const std::string& lane) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [id, p] : partitions_) {
      if (p.lane != lane) continue;
      fmt::print(stderr,
                 "tessera: source '{}': Kafka partition {} belongs to another worker now (this "
                 "one's commit was fenced): dropping the {} message(s) read since offset {}\n",
                 source_name_, id, std::max<int64_t>(0, p.handed_next - p.committed_next),
                 p.committed_next);
      for (rd_kafka_message_t* m : p.queue) {
        buffered_bytes_ -= BufferedBytes(m);
        rd_kafka_message_destroy(m);
      }
      p.queue.clear();
      room_cv_.notify_one();
      // Until the group assigns it again (it will: another member holds it), its messages are
      // dropped; what was handed out since the last commit belongs to the new owner.
      p.assigned = false;
      p.handed_next = p.committed_next;
      p.checkpoint_next = p.committed_next;
      if (p.lag != nullptr) p.lag->Set(0);
      if (p.assigned_gauge != nullptr) p.assigned_gauge->Set(0);
    }
  }
  commit_cv_.notify_all();  // a revocation waiting for its rows to commit need not wait
  return true;
}

void KafkaSource::TakeClaimedLanes(std::vector<std::string>* lanes) {
  std::lock_guard<std::mutex> lock(mu_);
  lanes->swap(claimed_lanes_);
  claimed_lanes_.clear();
}

bool KafkaSource::ActiveLanes(std::vector<std::string>* active) {
  active->clear();
  const int64_t now = clock_->NowMillis();
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [id, p] : partitions_) {
    if (!p.assigned) continue;
    const bool idle = options_.idle_timeout_ms > 0 && p.caught_up && p.queue.empty() &&
                      now - p.caught_up_since_ms >= options_.idle_timeout_ms;
    if (!idle) active->push_back(p.lane);
  }
  return true;
}

void KafkaSource::PublishMetrics() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [id, p] : partitions_) {
    if (p.lag == nullptr || !p.assigned) continue;
    int64_t low = 0, high = 0;
    if (rd_kafka_get_watermark_offsets(rk_, options_.topic.c_str(), id, &low, &high) !=
            RD_KAFKA_RESP_ERR_NO_ERROR ||
        high < 0) {
      continue;
    }
    const int64_t position = p.handed_next >= 0 ? p.handed_next : low;
    p.lag->Set(static_cast<double>(std::max<int64_t>(0, high - position)));
  }
}

std::vector<int32_t> KafkaSource::Assigned() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<int32_t> out;
  for (const auto& [id, p] : partitions_) {
    if (p.assigned) out.push_back(id);
  }
  return out;
}

size_t KafkaSource::BufferedMessageBytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return buffered_bytes_;
}

}  // namespace tessera::source
