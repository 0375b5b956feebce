#include "source/pubsub/pubsub_source.h"

#include <fmt/format.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <cstdio>
#include <random>

#include "common/errors.h"
#include "common/status_macros.h"
#include "pubsub.grpc.pb.h"
#include "source/connector_options.h"
#include "source/format/message_line.h"
#include "source/source_env.h"

namespace tessera::source {

namespace pb = ::google::pubsub::v1;

namespace {

constexpr std::string_view kDefaultTarget = "pubsub.googleapis.com:443";
// Ack ids per request, at most (Google's clients use the same bound; ack ids are ~100-200 bytes,
// so a request stays well under the API's request size limit).
constexpr size_t kIdsPerRequest = 2500;
constexpr auto kWriterTick = std::chrono::milliseconds(200);
constexpr int64_t kMetricsEveryMs = 500;
// How often held messages are checked for a deadline extension (one is due once half its deadline
// has passed, so it is extended at least 4 s before it runs out).
constexpr int64_t kLeaseScanEveryMs = 1000;
constexpr int64_t kMinBackoffMs = 100;
constexpr int64_t kMaxBackoffMs = 10'000;
// How long a stopping source waits for the server to end the half-closed stream.
constexpr auto kCloseTimeout = std::chrono::seconds(2);

// Errors that retrying the same request cannot fix: the source fails with the server's message.
bool Permanent(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::NOT_FOUND:
    case grpc::StatusCode::PERMISSION_DENIED:
    case grpc::StatusCode::UNAUTHENTICATED:
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::UNIMPLEMENTED:
      return true;
    default:
      return false;
  }
}

std::string RandomHex() {
  std::random_device rd;
  return fmt::format("{:08x}{:08x}", rd(), rd());
}

}  // namespace

// One StreamingPull call. `ready` is set once the initial request went out: only then may the
// writer send acks on it; `half_closed` once WritesDone() was called (by the writer's last pass,
// or by the reader when the source stopped before the stream was ready). Both guarded by the
// source's mu_; writes on `rw` happen under its write_mu_.
struct PubSubSource::Stream {
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReaderWriter<pb::StreamingPullRequest, pb::StreamingPullResponse>> rw;
  bool ready = false;
  bool half_closed = false;
};

struct PubSubSource::Grpc {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<pb::Subscriber::Stub> stub;
};

absl::StatusOr<PubSubOptions> PubSubOptions::FromSource(const sql::SourceDef& source,
                                                        std::string_view emulator_host) {
  TESSERA_RETURN_IF_ERROR(ValidateSourceOptions(source));
  PubSubOptions o;
  TESSERA_ASSIGN_OR_RETURN(
      PubSubSubscription sub,
      ParsePubSubSubscription(source, FindOption(source, "project").value_or("")));
  o.subscription = sub.path;
  if (std::optional<std::string> endpoint = FindOption(source, "endpoint")) {
    std::string_view e = *endpoint;
    o.plaintext = e.starts_with("http://");
    if (e.starts_with("http://")) e.remove_prefix(7);
    if (e.starts_with("https://")) e.remove_prefix(8);
    o.target = std::string(e);
  } else if (!emulator_host.empty()) {
    o.target = std::string(emulator_host);
    o.plaintext = true;
  } else {
    o.target = std::string(kDefaultTarget);
  }
  auto int_option = [&](std::string_view key, int64_t* out) -> absl::Status {
    if (std::optional<std::string> v = FindOption(source, key)) {
      TESSERA_ASSIGN_OR_RETURN(*out, ParsePositiveIntOption(source, key, *v));
    }
    return absl::OkStatus();
  };
  TESSERA_RETURN_IF_ERROR(int_option("max-outstanding-messages", &o.max_outstanding_messages));
  TESSERA_RETURN_IF_ERROR(int_option("max-outstanding-bytes", &o.max_outstanding_bytes));
  int64_t streams = o.streams;
  TESSERA_RETURN_IF_ERROR(int_option("streams", &streams));
  o.streams = static_cast<int>(streams);
  int64_t max_ids = static_cast<int64_t>(o.dedup.max_ids);
  TESSERA_RETURN_IF_ERROR(int_option("dedup-max-messages", &max_ids));
  o.dedup.max_ids = static_cast<size_t>(max_ids);
  if (std::optional<std::string> v = FindOption(source, "ack-deadline")) {
    TESSERA_ASSIGN_OR_RETURN(int64_t ms, ParseDurationOption(source, "ack-deadline", *v));
    o.ack_deadline_s = static_cast<int>(ms / 1000);
  }
  if (std::optional<std::string> v = FindOption(source, "dedup-window")) {
    TESSERA_ASSIGN_OR_RETURN(o.dedup.window_ms, ParseDurationOption(source, "dedup-window", *v));
  }
  return o;
}

absl::StatusOr<std::unique_ptr<PubSubSource>> PubSubSource::Create(const sql::SourceDef& source,
                                                                   const SourceEnv& env) {
  const char* emulator = std::getenv("PUBSUB_EMULATOR_HOST");
  TESSERA_ASSIGN_OR_RETURN(PubSubOptions options,
                           PubSubOptions::FromSource(source, emulator == nullptr ? "" : emulator));
  return Create(source.name, std::move(options), env.store, env.clock, env.metrics);
}

absl::StatusOr<std::unique_ptr<PubSubSource>> PubSubSource::Create(std::string source_name,
                                                                   PubSubOptions options,
                                                                   store::TileStore* store,
                                                                   const Clock* clock,
                                                                   MetricsRegistry* metrics) {
  TESSERA_ASSIGN_OR_RETURN(
      DedupWindow dedup, DedupWindow::Load(store, source_name, options.subscription, options.dedup,
                                           clock->NowMillis()));
  auto g = std::make_unique<Grpc>();
  std::shared_ptr<grpc::ChannelCredentials> creds;
  if (options.plaintext) {
    creds = grpc::InsecureChannelCredentials();
  } else {
    creds = grpc::GoogleDefaultCredentials();
    if (creds == nullptr) {
      return Unauthenticated(
          "source '{}': no Google default credentials for Pub/Sub at '{}' (set "
          "GOOGLE_APPLICATION_CREDENTIALS or run on GCP; for an emulator set PUBSUB_EMULATOR_HOST "
          "or 'endpoint' = 'http://host:port')",
          source_name, options.target);
    }
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);  // a StreamingPullResponse may exceed gRPC's 4 MiB default
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 30'000);
  g->channel = grpc::CreateCustomChannel(options.target, creds, args);
  g->stub = pb::Subscriber::NewStub(g->channel);
  std::unique_ptr<PubSubSource> s(new PubSubSource(std::move(source_name), std::move(options),
                                                   clock, metrics, std::move(dedup), std::move(g)));
  {
    MutexLock lock(&s->mu_);
    s->PublishMetrics();  // the window loaded, before the first tick
  }
  for (int i = 0; i < s->options_.streams; ++i) {
    s->readers_.emplace_back([p = s.get(), i] { p->ReadLoop(i); });
  }
  s->writer_ = std::thread([p = s.get()] { p->WriteLoop(); });
  return s;
}

PubSubSource::PubSubSource(std::string source_name, PubSubOptions options, const Clock* clock,
                           MetricsRegistry* metrics, DedupWindow dedup, std::unique_ptr<Grpc> grpc)
    : source_name_(std::move(source_name)),
      options_(std::move(options)),
      clock_(clock),
      input_(fmt::format("pubsub subscription '{}'", options_.subscription)),
      client_id_(fmt::format("tessera-{}-{}", source_name_, RandomHex())),
      grpc_(std::move(grpc)),
      dedup_(std::move(dedup)) {
  streams_.assign(static_cast<size_t>(options_.streams), nullptr);
  if (metrics != nullptr) {
    const Labels labels = {{"source", source_name_}, {"subscription", options_.subscription}};
    received_ = metrics->GetCounter("tessera_pubsub_messages_received_total",
                                    "Messages received on the StreamingPull stream, duplicates "
                                    "included",
                                    labels);
    acks_ = metrics->GetCounter(
        "tessera_pubsub_acks_total",
        "Ack ids sent: messages acknowledged once their rows were durable in the tiles", labels);
    extensions_ = metrics->GetCounter(
        "tessera_pubsub_deadline_extensions_total",
        "Ack deadline extensions sent for messages held longer than half the ack deadline", labels);
    dropped_ = metrics->GetCounter(
        "tessera_pubsub_redeliveries_dropped_total",
        "Messages dropped because their id was in the dedup window (redeliveries, duplicates)",
        labels);
    reconnects_ = metrics->GetCounter("tessera_pubsub_stream_reconnects_total",
                                      "StreamingPull streams that ended and were reopened", labels);
    outstanding_ = metrics->GetGauge(
        "tessera_pubsub_outstanding_messages",
        "Messages received and not yet acknowledged (buffered, or waiting for their flush)",
        labels);
    window_size_ = metrics->GetGauge("tessera_pubsub_dedup_window_messages",
                                     "Message ids in the dedup window", labels);
    window_age_ = metrics->GetGauge(
        "tessera_pubsub_dedup_window_age_seconds",
        "Running time since the oldest flush whose ids the dedup window still holds", labels);
  }
}

PubSubSource::~PubSubSource() {
  {
    MutexLock lock(&mu_);
    // Hand back what the pipeline never got (and whatever was handed out but not committed, which
    // a clean stop does not leave), so it is redelivered now instead of after its deadline.
    for (const Message& m : buffer_) {
      nack_.insert(nack_.end(), m.ack_ids.begin(), m.ack_ids.end());
    }
    for (const std::vector<Lease>* v : {&handed_, &checkpoint_}) {
      for (const Lease& l : *v) nack_.push_back(l.ack_id);
    }
    buffer_.clear();
    buffered_.clear();
    handed_.clear();
    checkpoint_.clear();
    stop_.store(true);
  }
  writer_cv_.NotifyAll();
  space_cv_.NotifyAll();
  data_cv_.NotifyAll();
  // The writer sends the last acks and the nacks, then half-closes the stream; the server then
  // ends it, which ends the reader. A stream cancelled instead (RST_STREAM) is one the emulator
  // does not clean up: it keeps delivering to it, so its messages are only redelivered after
  // their deadline. Cancel only if the server does not end the streams in time.
  if (writer_.joinable()) writer_.join();
  {
    MutexLock lock(&mu_);
    const size_t n = readers_.size();
    auto all_done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return readers_done_ == n; };
    if (!reader_done_cv_.WaitFor(&mu_, kCloseTimeout, all_done)) {
      for (Stream* stream : streams_) {
        if (stream != nullptr) stream->context.TryCancel();
      }
    }
  }
  for (std::thread& t : readers_) t.join();
}

void PubSubSource::ReadLoop(int index) {
  ReadStreams(index);
  MutexLock lock(&mu_);
  ++readers_done_;
  reader_done_cv_.NotifyAll();
}

void PubSubSource::ReadStreams(int index) {
  int64_t backoff_ms = kMinBackoffMs;
  while (true) {
    {
      MutexLock lock(&mu_);
      if (stop_.load()) break;
    }
    auto stream = std::make_unique<Stream>();
    stream->rw = grpc_->stub->StreamingPull(&stream->context);
    {
      MutexLock lock(&mu_);
      streams_[index] = stream.get();  // from now on the destructor can cancel it
    }
    bool received = false;
    const absl::Status status = RunStream(stream.get(), &received);
    {
      // No write may be running on the stream when it goes: the writer holds write_mu_ while it
      // uses streams_.
      MutexLock w(&write_mu_);
      MutexLock lock(&mu_);
      streams_[index] = nullptr;
    }
    stream.reset();
    if (stop_.load()) break;
    if (received) backoff_ms = kMinBackoffMs;
    if (Permanent(static_cast<grpc::StatusCode>(status.code()))) {
      // `tessera run` reports a failed pipeline only when it stops: say it now.
      std::fprintf(stderr, "tessera: %s; the source stops\n",
                   std::string(status.message()).c_str());
      MutexLock lock(&mu_);
      if (error_.ok()) error_ = status;
      data_cv_.NotifyAll();
      return;
    }
    if (reconnects_ != nullptr) reconnects_->Inc();
    if (status.ok()) {
      std::fprintf(stderr,
                   "tessera: source '%s': the server ended the Pub/Sub stream on '%s'; reopening "
                   "it in %lld ms\n",
                   source_name_.c_str(), options_.subscription.c_str(),
                   static_cast<long long>(backoff_ms));
    } else {
      std::fprintf(stderr, "tessera: %s; reopening the stream in %lld ms\n",
                   std::string(status.message()).c_str(), static_cast<long long>(backoff_ms));
    }
    MutexLock lock(&mu_);
    space_cv_.WaitFor(&mu_, std::chrono::milliseconds(backoff_ms),
                      [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_.load(); });
    backoff_ms = std::min(backoff_ms * 2, kMaxBackoffMs);
  }
}

absl::Status PubSubSource::RunStream(Stream* stream, bool* received) {
  pb::StreamingPullRequest first;
  first.set_subscription(options_.subscription);
  first.set_stream_ack_deadline_seconds(options_.ack_deadline_s);
  first.set_client_id(client_id_);
  // The limits are the source's: each stream gets its share.
  first.set_max_outstanding_messages(
      std::max<int64_t>(1, options_.max_outstanding_messages / options_.streams));
  first.set_max_outstanding_bytes(
      std::max<int64_t>(1, options_.max_outstanding_bytes / options_.streams));
  if (stream->rw->Write(first)) {
    {
      // Stopping already: the writer's last pass may have missed this stream; half-close it.
      MutexLock w(&write_mu_);
      bool close_now = false;
      {
        MutexLock lock(&mu_);
        stream->ready = true;
        close_now = stop_.load() && !stream->half_closed;
        stream->half_closed = stream->half_closed || close_now;
      }
      if (close_now) stream->rw->WritesDone();
    }
    writer_cv_.NotifyAll();  // acks queued while there was no stream
    pb::StreamingPullResponse response;
    while (stream->rw->Read(&response)) {
      // Stopping: what still comes after the nacks were sent is left to its deadline.
      if (stop_.load()) continue;
      *received = true;
      OnMessages(&response);
      // Our own bound, should the server not honour the flow control.
      MutexLock lock(&mu_);
      space_cv_.Wait(&mu_, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stop_.load() ||
               (static_cast<int64_t>(buffer_.size()) < options_.max_outstanding_messages &&
                static_cast<int64_t>(buffered_bytes_) < options_.max_outstanding_bytes);
      });
    }
  }
  const grpc::Status st = stream->rw->Finish();
  if (st.ok() || st.error_code() == grpc::StatusCode::CANCELLED) return absl::OkStatus();
  // gRPC's codes are absl's.
  return absl::Status(
      static_cast<absl::StatusCode>(st.error_code()),
      fmt::format("source '{}': Pub/Sub StreamingPull on '{}' at '{}': {}", source_name_,
                  options_.subscription, options_.target, st.error_message()));
}

void PubSubSource::OnMessages(pb::StreamingPullResponse* response) {
  MutexLock lock(&mu_);
  const int64_t lease_until = clock_->NowMillis() + int64_t{options_.ack_deadline_s} * 1000;
  bool ack_now = false;
  unacked_ += response->received_messages_size();
  if (outstanding_ != nullptr) outstanding_->Set(static_cast<double>(unacked_));
  for (pb::ReceivedMessage& rm : *response->mutable_received_messages()) {
    if (received_ != nullptr) received_->Inc();
    const std::string& id = rm.message().message_id();
    if (!id.empty() && dedup_.Contains(id)) {
      if (dropped_ != nullptr) dropped_->Inc();
      if (inflight_.contains(id)) {
        // The first copy's rows are in no durable flush yet: ack after the next one.
        handed_.push_back(Lease{rm.ack_id(), id, lease_until, 0});
      } else {
        ack_.push_back(rm.ack_id());
        ack_now = true;
      }
      continue;
    }
    if (!id.empty()) {
      auto it = buffered_.find(id);
      if (it != buffered_.end()) {
        if (dropped_ != nullptr) dropped_->Inc();
        it->second->ack_ids.push_back(rm.ack_id());
        continue;
      }
    }
    Message& m = buffer_.emplace_back();
    m.id = id;
    m.ack_ids.push_back(std::move(*rm.mutable_ack_id()));
    m.data.swap(*rm.mutable_message()->mutable_data());  // no copy of the payload
    m.lease_until_ms = lease_until;
    buffered_bytes_ += m.data.size();
    if (!id.empty()) buffered_.emplace(id, &m);
  }
  data_cv_.NotifyAll();
  if (ack_now) writer_cv_.NotifyAll();
}

void PubSubSource::WriteLoop() {
  int64_t last_metrics_ms = 0;
  while (true) {
    bool final = false;
    {
      MutexLock lock(&mu_);
      writer_cv_.WaitFor(&mu_, kWriterTick, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stop_.load() || ((!ack_.empty() || !nack_.empty()) && ReadyStream() != nullptr);
      });
      final = stop_.load();
      const int64_t now = clock_->NowMillis();
      if (now - last_metrics_ms >= kMetricsEveryMs) {
        last_metrics_ms = now;
        PublishMetrics();
      }
    }
    WriteDue(final);
    if (final) return;
  }
}

void PubSubSource::WriteDue(bool final) {
  MutexLock w(&write_mu_);
  Stream* stream = nullptr;
  std::vector<std::string> acks;
  std::vector<std::string> nacks;
  std::vector<std::string> extend;
  {
    MutexLock lock(&mu_);
    stream = ReadyStream();
    if (stream == nullptr) return;  // queued for the next stream
    acks.swap(ack_);
    nacks.swap(nack_);
    const int64_t now = clock_->NowMillis();
    if (!final && now - last_lease_scan_ms_ >= kLeaseScanEveryMs) {
      last_lease_scan_ms_ = now;
      // Extend what has used half its deadline: held while a (slow) flush runs.
      const int64_t deadline_ms = int64_t{options_.ack_deadline_s} * 1000;
      const int64_t until = now + deadline_ms;
      auto due = [&](int64_t lease_until_ms) { return lease_until_ms - now < deadline_ms / 2; };
      for (Message& m : buffer_) {
        if (!due(m.lease_until_ms)) continue;
        extend.insert(extend.end(), m.ack_ids.begin(), m.ack_ids.end());
        m.lease_until_ms = until;
      }
      for (std::vector<Lease>* v : {&handed_, &checkpoint_}) {
        for (Lease& l : *v) {
          if (!due(l.until_ms)) continue;
          extend.push_back(l.ack_id);
          l.until_ms = until;
        }
      }
    }
  }
  // Ids sent so far of each list; a failed request's ids count as not sent.
  size_t a = 0, n = 0, e = 0;
  bool ok = true;
  while (ok && (a < acks.size() || n < nacks.size() || e < extend.size())) {
    pb::StreamingPullRequest req;
    size_t room = kIdsPerRequest;
    size_t a1 = a, n1 = n, e1 = e;
    for (; a1 < acks.size() && room > 0; ++a1, --room) req.add_ack_ids(acks[a1]);
    for (; n1 < nacks.size() && room > 0; ++n1, --room) {
      req.add_modify_deadline_ack_ids(nacks[n1]);
      req.add_modify_deadline_seconds(0);
    }
    for (; e1 < extend.size() && room > 0; ++e1, --room) {
      req.add_modify_deadline_ack_ids(extend[e1]);
      req.add_modify_deadline_seconds(options_.ack_deadline_s);
    }
    ok = stream->rw->Write(req);
    if (ok) {
      if (acks_ != nullptr) acks_->Inc(static_cast<int64_t>(a1 - a));
      if (extensions_ != nullptr) extensions_->Inc(static_cast<int64_t>(e1 - e));
      MutexLock lock(&mu_);
      unacked_ -= static_cast<int64_t>((a1 - a) + (n1 - n));
      if (outstanding_ != nullptr) outstanding_->Set(static_cast<double>(unacked_));
      a = a1, n = n1, e = e1;
    }
  }
  if (!ok) {
    // Ack ids stay valid across streams: send the rest on the next one (the failed request may
    // have arrived or not; acking twice is harmless). Extensions not sent are not retried: such
    // a message may be redelivered, and is then dropped as a duplicate of one in flight.
    MutexLock lock(&mu_);
    ack_.insert(ack_.end(), acks.begin() + static_cast<ptrdiff_t>(a), acks.end());
    nack_.insert(nack_.end(), nacks.begin() + static_cast<ptrdiff_t>(n), nacks.end());
  }
  if (final) {
    // Half-close every stream: the server then ends them (see the destructor).
    std::vector<Stream*> ready;
    {
      MutexLock lock(&mu_);
      for (Stream* st : streams_) {
        if (st == nullptr || !st->ready || st->half_closed) continue;
        st->half_closed = true;
        ready.push_back(st);
      }
    }
    for (Stream* st : ready) st->rw->WritesDone();
  }
}

absl::StatusOr<Source::Next> PubSubSource::NextChunk(Chunk* chunk, ChunkOrigin* origin) {
  MutexLock lock(&mu_);
  if (!error_.ok()) return error_;
  if (buffer_.empty()) return Next::kIdle;
  scratch_.clear();
  origin->ids.clear();
  while (!buffer_.empty() && (scratch_.empty() || scratch_.size() < options_.chunk_bytes)) {
    Message& m = buffer_.front();
    if (!m.id.empty()) {
      buffered_.erase(m.id);
      dedup_.Insert(m.id);  // not in the window: duplicates were dropped on arrival
      inflight_.insert(m.id);
    }
    AppendMessageLine(m.data, &scratch_);
    origin->ids.push_back(m.id);
    const int64_t bytes = static_cast<int64_t>(m.data.size());
    for (std::string& ack_id : m.ack_ids) {
      handed_.push_back(Lease{std::move(ack_id), m.id, m.lease_until_ms, bytes});
    }
    handed_bytes_ += bytes;
    buffered_bytes_ -= m.data.size();
    buffer_.pop_front();
  }
  space_cv_.NotifyAll();
  origin->input = input_;
  origin->lane.clear();
  origin->first_line = 1;
  chunk->Assign(scratch_, 0);
  return Next::kChunk;
}

void PubSubSource::WaitForData(std::chrono::milliseconds max_wait) {
  MutexLock lock(&mu_);
  data_cv_.WaitFor(&mu_, max_wait, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !buffer_.empty() || !error_.ok();
  });
}

void PubSubSource::AddCheckpoint(store::WriteBatch* batch) {
  MutexLock lock(&mu_);
  dedup_.AddCheckpoint(clock_->NowMillis(), batch);
  checkpoint_.insert(checkpoint_.end(), std::make_move_iterator(handed_.begin()),
                     std::make_move_iterator(handed_.end()));
  handed_.clear();
}

void PubSubSource::Committed() {
  {
    MutexLock lock(&mu_);
    for (Lease& l : checkpoint_) {
      inflight_.erase(l.id);
      handed_bytes_ -= l.bytes;
      ack_.push_back(std::move(l.ack_id));
    }
    checkpoint_.clear();
    PublishMetrics();
  }
  writer_cv_.NotifyAll();
}

bool PubSubSource::WantsFlush() {
  MutexLock lock(&mu_);
  // Pub/Sub sends no more once max-outstanding messages wait for their ack: flush before that.
  return static_cast<int64_t>(handed_.size()) >= options_.max_outstanding_messages / 2 ||
         handed_bytes_ >= options_.max_outstanding_bytes / 2;
}

PubSubSource::Stream* PubSubSource::ReadyStream() const {
  for (Stream* st : streams_) {
    if (st != nullptr && st->ready) return st;
  }
  return nullptr;
}

void PubSubSource::PublishMetrics() {
  if (outstanding_ == nullptr) return;
  window_size_->Set(static_cast<double>(dedup_.size()));
  window_age_->Set(static_cast<double>(dedup_.OldestAgeMs(clock_->NowMillis())) / 1000.0);
}

}  // namespace tessera::source
