#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/clock.h"
#include "common/metrics.h"
#include "common/mutex.h"
#include "source/pubsub/dedup_window.h"
#include "source/source.h"
#include "sql/plan.h"
#include "store/tile_store.h"

namespace google::pubsub::v1 {
class StreamingPullResponse;
}  // namespace google::pubsub::v1

namespace tessera::source {

struct SourceEnv;  // source/source_env.h

// The Pub/Sub connector's settings, from WITH (…).
struct PubSubOptions {
  // "projects/<project>/subscriptions/<id>" ('project' + 'subscription', or a full path there).
  std::string subscription;
  // gRPC target: 'endpoint' if given, else $PUBSUB_EMULATOR_HOST, else pubsub.googleapis.com:443.
  std::string target;
  // Plaintext without credentials ('http://…' endpoints and PUBSUB_EMULATOR_HOST, like Google's
  // own clients); otherwise TLS with Google's default credentials.
  bool plaintext = false;
  // Server-side flow control of the stream ('max-outstanding-messages' / '-bytes'): messages
  // delivered and not yet acknowledged, at most. Messages are acknowledged only after a flush, so
  // this bounds what one flush interval can carry; the source asks for an early flush
  // (WantsFlush) when half of it waits for one. The source also stops reading the stream while
  // its own buffer holds this much, should a server not honour the limits.
  int64_t max_outstanding_messages = 50'000;
  int64_t max_outstanding_bytes = int64_t{128} << 20;
  // The stream's ack deadline ('ack-deadline', 10 to 600 s). Messages held longer (buffered, or
  // handed out and waiting for their flush) get it extended every third of it, so a slow flush
  // never lets them be redelivered. It is also how soon messages the process held when it died
  // are redelivered.
  int ack_deadline_s = 60;
  // StreamingPull streams opened in parallel ('streams'). One stream carries about 10 MB/s on
  // Pub/Sub (the emulator: 2,000 messages/s); more streams, more throughput. Acks and deadline
  // extensions go on any open stream (Pub/Sub takes ack ids from any stream of the
  // subscription); the flow-control limits are split between the streams.
  int streams = 1;
  DedupOptions dedup;  // 'dedup-window' (default 10m), 'dedup-max-messages' (default 2,000,000)
  // Target size of one chunk.
  size_t chunk_bytes = size_t{1} << 20;

  // `emulator_host` is $PUBSUB_EMULATOR_HOST ("" when unset): the caller reads the environment.
  static absl::StatusOr<PubSubOptions> FromSource(const sql::SourceDef& source,
                                                  std::string_view emulator_host);
};

// `connector = 'pubsub'`: StreamingPull streams on a subscription ('streams', default 1; gRPC,
// each reconnecting with backoff while the error is retryable; NOT_FOUND, PERMISSION_DENIED,
// UNAUTHENTICATED and INVALID_ARGUMENT fail the source with the server's message).
//
// Each message is one line (source/format/message_line.h: '\n' becomes ' ', no data becomes the
// rejected line "null"); attributes, ordering keys and publish times are not read. Pub/Sub has
// no partitions and does not order messages (ordering keys order per key only): the source is
// one watermark lane, and disorder beyond the source's lateness makes rows late like any other.
// Redelivered messages arrive after newer ones, so the lateness should cover 'ack-deadline'
// plus a restart.
//
// Exactly once into tiles, within the dedup window:
//   * A message is acknowledged only after the flush holding its rows is durable (Committed()).
//     If the process dies first, Pub/Sub redelivers it after its ack deadline, and since its rows
//     were never written it counts once then.
//   * The ids of the messages handed out are checkpointed with the tiles (DedupWindow, one
//     segment per flush, in the same atomic write). A message whose id is in the window when it
//     arrives — a redelivery after a crash between the flush and the ack, an ack Pub/Sub lost, or
//     Pub/Sub's own at-least-once duplicates — is dropped and acknowledged (after the flush that
//     holds the first copy, if that is still pending), and counted in
//     tessera_pubsub_redeliveries_dropped_total.
//   * Hence: every published message counts exactly once, provided a redelivery of an id
//     already in the tiles arrives within 'dedup-window' of running time after the flush that
//     committed it and while it is among the newest 'dedup-max-messages' ids. A redelivery later
//     than that counts twice. Dedup is by message id: a publisher that retries a publish gets a
//     new id for the same data, and both copies count (Pub/Sub's own exactly-once delivery does
//     not cover that either). Changing the source's 'subscription' starts an empty window.
//
// Threads: a reader thread per stream owns it (connects, reads messages into the shared bounded
// buffer, drops duplicates); a writer thread sends acks, deadline extensions and, at shutdown,
// nacks of messages never handed out. NextChunk() takes from the buffer.
//
// Metrics (labels source, subscription): tessera_pubsub_messages_received_total,
// tessera_pubsub_outstanding_messages (received, not yet acknowledged),
// tessera_pubsub_acks_total, tessera_pubsub_deadline_extensions_total,
// tessera_pubsub_redeliveries_dropped_total, tessera_pubsub_dedup_window_messages,
// tessera_pubsub_dedup_window_age_seconds, tessera_pubsub_stream_reconnects_total.
class PubSubSource final : public Source {
 public:
  static absl::StatusOr<std::unique_ptr<PubSubSource>> Create(const sql::SourceDef& source,
                                                              const SourceEnv& env);
  static absl::StatusOr<std::unique_ptr<PubSubSource>> Create(std::string source_name,
                                                              PubSubOptions options,
                                                              store::TileStore* store,
                                                              const Clock* clock,
                                                              MetricsRegistry* metrics);
  // Stops the threads; nacks the messages buffered and not handed out (so they are redelivered
  // at once, not after their deadline) and sends the acks of the last commit.
  ~PubSubSource() override;
  PubSubSource(const PubSubSource&) = delete;
  PubSubSource& operator=(const PubSubSource&) = delete;

  absl::StatusOr<Next> NextChunk(Chunk* chunk, ChunkOrigin* origin) override;
  void WaitForData(std::chrono::milliseconds max_wait) override;
  void AddCheckpoint(store::WriteBatch* batch) override;
  void Committed() override;
  bool WantsFlush() override;

 private:
  struct Grpc;    // the channel and stub
  struct Stream;  // the context and reader-writer of one StreamingPull call
  struct Message {
    std::string id;
    std::vector<std::string> ack_ids;  // more than one after redeliveries while buffered
    std::string data;
    int64_t lease_until_ms = 0;  // when its ack deadline (as last extended) runs out
  };
  // An ack id handed out (or a duplicate's, acknowledged with the first copy's flush).
  struct Lease {
    std::string ack_id;
    std::string id;  // the message id
    int64_t until_ms = 0;
    int64_t bytes = 0;  // data handed out (0 for a duplicate)
  };

  PubSubSource(std::string source_name, PubSubOptions options, const Clock* clock,
               MetricsRegistry* metrics, DedupWindow dedup, std::unique_ptr<Grpc> grpc);
  void ReadLoop(int index);     // reader thread `index`: ReadStreams(), then readers_done_
  void ReadStreams(int index);  // opens stream `index` again and again, until stopped or a
                                // permanent error
  void WriteLoop();
  // Opens the stream with its first request and reads it until it ends; its final status, with
  // gRPC's code. Sets *received when a message came.
  absl::Status RunStream(Stream* stream, bool* received);
  // Takes the messages (their strings are moved out).
  void OnMessages(google::pubsub::v1::StreamingPullResponse* response);
  // Sends the acks and nacks queued and the deadline extensions due, on the live stream (kept
  // queued while there is none). `final`: the last call, no extensions, then WritesDone.
  void WriteDue(bool final);
  void PublishMetrics() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A stream whose first request went out (acks and deadlines may go on any), or null.
  Stream* ReadyStream() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string source_name_;
  const PubSubOptions options_;
  const Clock* const clock_;
  const std::string input_;  // "pubsub subscription 'projects/…'"
  const std::string client_id_;
  const std::unique_ptr<Grpc> grpc_;

  std::vector<std::thread> readers_;  // one per stream
  std::thread writer_;
  std::atomic<bool> stop_{false};

  mutable Mutex mu_;
  CondVar data_cv_;    // a message arrived, or the source failed
  CondVar space_cv_;   // the buffer shrank, or stopping
  CondVar writer_cv_;  // acks to send, or stopping
  CondVar reader_done_cv_;
  size_t readers_done_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status error_ ABSL_GUARDED_BY(mu_);
  std::deque<Message> buffer_ ABSL_GUARDED_BY(mu_);  // received, not handed out
  absl::flat_hash_map<std::string, Message*> buffered_ ABSL_GUARDED_BY(mu_);  // by id
  size_t buffered_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  DedupWindow dedup_ ABSL_GUARDED_BY(mu_);
  // Ids handed out whose flush is not durable yet (a duplicate of one waits for that flush).
  absl::flat_hash_set<std::string> inflight_ ABSL_GUARDED_BY(mu_);
  std::vector<Lease> handed_ ABSL_GUARDED_BY(mu_);      // handed out since the last checkpoint
  std::vector<Lease> checkpoint_ ABSL_GUARDED_BY(mu_);  // in the checkpoint being written
  std::vector<std::string> ack_ ABSL_GUARDED_BY(mu_);   // to acknowledge now
  std::vector<std::string> nack_ ABSL_GUARDED_BY(mu_);  // to hand back now (deadline 0)
  int64_t handed_bytes_ ABSL_GUARDED_BY(mu_) = 0;       // data of handed_ + checkpoint_
  // Ack ids received and not yet sent back as an ack or a nack (tessera_pubsub_outstanding_
  // messages, kept current: 0 with every row served means every message is durable).
  int64_t unacked_ ABSL_GUARDED_BY(mu_) = 0;
  // The live stream of each reader (null between streams), for the writer and the destructor.
  std::vector<Stream*> streams_ ABSL_GUARDED_BY(mu_);
  // Held by the writer while it uses a stream, and by a reader to retire its stream. Order:
  // write_mu_ before mu_.
  Mutex write_mu_;
  int64_t last_lease_scan_ms_ ABSL_GUARDED_BY(write_mu_) = 0;
  std::string scratch_;  // NextChunk's lines

  // Metrics (null without a registry).
  Counter* received_ = nullptr;
  Counter* acks_ = nullptr;
  Counter* extensions_ = nullptr;
  Counter* dropped_ = nullptr;
  Counter* reconnects_ = nullptr;
  Gauge* outstanding_ = nullptr;
  Gauge* window_size_ = nullptr;
  Gauge* window_age_ = nullptr;
};

}  // namespace tessera::source
