// PubSubSource against an in-process fake Subscriber service (gRPC on a loopback port): the
// protocol the connector speaks — acks only after Committed(), redeliveries dropped by the dedup
// window (committed, in flight, buffered), the window across a restart, deadline extensions,
// nacks and the half-close on shutdown, permanent errors. The real emulator is exercised by
// tests/e2e/pubsub_e2e_test.py.
#include "source/pubsub/pubsub_source.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "common/errors.h"
#include "common/metrics.h"
#include "common/mutex.h"
#include "pubsub.grpc.pb.h"
#include "store/memory/memory_tile_store.h"

namespace tessera::source {
namespace {

namespace pb = ::google::pubsub::v1;
using namespace std::chrono_literals;

constexpr char kSub[] = "projects/proj/subscriptions/plays-sub";

// A Subscriber whose StreamingPull records every request and sends what the test tells it to.
class FakeSubscriber final : public pb::Subscriber::Service {
 public:
  struct Msg {
    std::string id;
    std::string ack_id;
    std::string data;
  };

  grpc::Status StreamingPull(grpc::ServerContext* context,
                             grpc::ServerReaderWriter<pb::StreamingPullResponse,
                                                      pb::StreamingPullRequest>* stream) override {
    pb::StreamingPullRequest req;
    if (!stream->Read(&req)) return grpc::Status::CANCELLED;
    {
      MutexLock lock(&mu_);
      first_ = req;
      if (fail_ != grpc::StatusCode::OK) return grpc::Status(fail_, "subscription is gone");
      stream_ = stream;
      ++opened_;
      cv_.NotifyAll();
    }
    while (stream->Read(&req)) {
      MutexLock lock(&mu_);
      for (const std::string& id : req.ack_ids()) acks_.push_back(id);
      for (int i = 0; i < req.modify_deadline_ack_ids_size(); ++i) {
        (req.modify_deadline_seconds(i) == 0 ? nacks_ : extensions_)
            .push_back(req.modify_deadline_ack_ids(i));
      }
      cv_.NotifyAll();
    }
    MutexLock lock(&mu_);
    stream_ = nullptr;
    ++half_closed_;
    cv_.NotifyAll();
    return grpc::Status::OK;
  }

  void Send(const std::vector<Msg>& msgs) {
    pb::StreamingPullResponse resp;
    for (const Msg& m : msgs) {
      pb::ReceivedMessage* rm = resp.add_received_messages();
      rm->set_ack_id(m.ack_id);
      rm->mutable_message()->set_message_id(m.id);
      rm->mutable_message()->set_data(m.data);
    }
    MutexLock lock(&mu_);
    ASSERT_NE(stream_, nullptr);
    ASSERT_TRUE(stream_->Write(resp));
  }

  // Waits (up to 10 s) until `done` holds over the recorded state.
  bool WaitUntil(const std::function<bool()>& done) {
    MutexLock lock(&mu_);
    return cv_.WaitFor(&mu_, 10s, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return done(); });
  }

  // Recorded state; read under WaitUntil or after the fact.
  std::vector<std::string> acks() {
    MutexLock lock(&mu_);
    return acks_;
  }
  std::vector<std::string> nacks() {
    MutexLock lock(&mu_);
    return nacks_;
  }
  std::vector<std::string> extensions() {
    MutexLock lock(&mu_);
    return extensions_;
  }
  pb::StreamingPullRequest first() {
    MutexLock lock(&mu_);
    return first_;
  }
  void set_fail(grpc::StatusCode code) {
    MutexLock lock(&mu_);
    fail_ = code;
  }

  Mutex mu_;
  CondVar cv_;
  int opened_ ABSL_GUARDED_BY(mu_) = 0;
  int half_closed_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::string> acks_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> nacks_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> extensions_ ABSL_GUARDED_BY(mu_);

 private:
  pb::StreamingPullRequest first_ ABSL_GUARDED_BY(mu_);
  grpc::StatusCode fail_ ABSL_GUARDED_BY(mu_) = grpc::StatusCode::OK;
  grpc::ServerReaderWriter<pb::StreamingPullResponse, pb::StreamingPullRequest>* stream_
      ABSL_GUARDED_BY(mu_) = nullptr;
};

class PubSubSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&fake_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
  }
  void TearDown() override { server_->Shutdown(std::chrono::system_clock::now() + 1s); }

  std::unique_ptr<PubSubSource> Open() {
    PubSubOptions o;
    o.subscription = kSub;
    o.target = "127.0.0.1:" + std::to_string(port_);
    o.plaintext = true;
    o.ack_deadline_s = 10;
    o.max_outstanding_messages = 1000;
    const int before = Opened();
    absl::StatusOr<std::unique_ptr<PubSubSource>> s =
        PubSubSource::Create("plays", o, &store_, &clock_, &metrics_);
    EXPECT_TRUE(s.ok()) << s.status();
    if (!s.ok()) return nullptr;
    EXPECT_TRUE(
        fake_.WaitUntil([&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return fake_.opened_ > before; }));
    return *std::move(s);
  }
  // Waits (up to 10 s) until metric `name` is `value`; returns its last value.
  int64_t WaitMetric(std::string_view name, int64_t value) {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (Metric(name) != value && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(5ms);
    }
    return Metric(name);
  }
  // Waits until the source has received `n` messages in all.
  void WaitReceived(int64_t n) {
    ASSERT_EQ(WaitMetric("tessera_pubsub_messages_received_total", n), n);
  }
  int Opened() {
    MutexLock lock(&fake_.mu_);
    return fake_.opened_;
  }

  // Takes what the source has buffered (waits for it to arrive): the lines and their ids.
  std::pair<std::string, std::vector<std::string>> Take(PubSubSource* s, size_t lines) {
    std::string text;
    std::vector<std::string> ids;
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (ids.size() < lines && std::chrono::steady_clock::now() < deadline) {
      Chunk chunk;
      ChunkOrigin origin;
      absl::StatusOr<Source::Next> next = s->NextChunk(&chunk, &origin);
      EXPECT_TRUE(next.ok()) << next.status();
      if (!next.ok()) break;
      if (*next == Source::Next::kChunk) {
        text += chunk.view();
        ids.insert(ids.end(), origin.ids.begin(), origin.ids.end());
        EXPECT_EQ(origin.input, "pubsub subscription 'projects/proj/subscriptions/plays-sub'");
        EXPECT_EQ(origin.lane, "");
      } else {
        s->WaitForData(20ms);
      }
    }
    return {text, ids};
  }
  // What the pipeline does at a flush: checkpoint into the batch, write it, then Committed().
  void Flush(PubSubSource* s) {
    store::WriteBatch batch;
    s->AddCheckpoint(&batch);
    ASSERT_TRUE(store_.Write(batch).ok());
    s->Committed();
  }
  int64_t Metric(std::string_view name) {
    const std::string text = metrics_.RenderPrometheus();
    const std::string prefix =
        fmt::format("{}{{source=\"plays\",subscription=\"{}\"}} ", name, kSub);
    const size_t at = text.find(prefix);
    if (at == std::string::npos) return -1;
    return std::stoll(text.substr(at + prefix.size()));
  }

  FakeSubscriber fake_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  store::MemoryTileStore store_;
  FakeClock clock_{1'767'225'600'000};
  MetricsRegistry metrics_;
};

TEST_F(PubSubSourceTest, OpensTheStreamWithTheSubscriptionDeadlineAndFlowControl) {
  auto s = Open();
  ASSERT_NE(s, nullptr);
  const pb::StreamingPullRequest first = fake_.first();
  EXPECT_EQ(first.subscription(), kSub);
  EXPECT_EQ(first.stream_ack_deadline_seconds(), 10);
  EXPECT_EQ(first.max_outstanding_messages(), 1000);
  EXPECT_FALSE(first.client_id().empty());
}

TEST_F(PubSubSourceTest, AcksOnlyAfterTheFlushIsDurable) {
  auto s = Open();
  ASSERT_NE(s, nullptr);
  fake_.Send({{"1", "a1", "{\"x\":1}"}, {"2", "a2", "{\"x\":\n2}"}, {"3", "a3", ""}});
  auto [text, ids] = Take(s.get(), 3);
  EXPECT_EQ(text, "{\"x\":1}\n{\"x\": 2}\nnull\n");
  EXPECT_EQ(ids, (std::vector<std::string>{"1", "2", "3"}));
  std::this_thread::sleep_for(300ms);  // more than a writer tick
  EXPECT_TRUE(fake_.acks().empty()) << "acked before the rows were durable";
  EXPECT_EQ(Metric("tessera_pubsub_outstanding_messages"), 3);
  store::WriteBatch batch;
  s->AddCheckpoint(&batch);
  std::this_thread::sleep_for(300ms);
  EXPECT_TRUE(fake_.acks().empty()) << "acked before the checkpoint was written";
  ASSERT_TRUE(store_.Write(batch).ok());
  s->Committed();
  ASSERT_TRUE(
      fake_.WaitUntil([&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return fake_.acks_.size() == 3; }));
  EXPECT_EQ(fake_.acks(), (std::vector<std::string>{"a1", "a2", "a3"}));
  EXPECT_EQ(WaitMetric("tessera_pubsub_acks_total", 3), 3);
  EXPECT_EQ(WaitMetric("tessera_pubsub_outstanding_messages", 0), 0);
}

TEST_F(PubSubSourceTest, RedeliveriesAreDroppedAndAckedOnceTheFirstCopyIsDurable) {
  auto s = Open();
  ASSERT_NE(s, nullptr);
  fake_.Send({{"1", "a1", "{}"}, {"2", "a2", "{}"}});
  EXPECT_EQ(Take(s.get(), 2).second.size(), 2u);
  Flush(s.get());
  ASSERT_TRUE(
      fake_.WaitUntil([&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return fake_.acks_.size() == 2; }));

  // In flight: "3" handed out, not yet flushed, then redelivered with a new ack id.
  fake_.Send({{"3", "a3", "{}"}});
  EXPECT_EQ(Take(s.get(), 1).second, std::vector<std::string>{"3"});
  // Buffered: "4" arrives twice before the pipeline takes it.
  // Committed: "1" comes back.
  fake_.Send({{"3", "a3-again", "{}"},
              {"4", "a4", "{}"},
              {"4", "a4-again", "{}"},
              {"1", "a1-again", "{}"}});
  // The committed one is acked at once, without a flush.
  ASSERT_TRUE(
      fake_.WaitUntil([&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return fake_.acks_.size() == 3; }));
  EXPECT_EQ(fake_.acks().back(), "a1-again");
  EXPECT_EQ(Take(s.get(), 1).second, std::vector<std::string>{"4"});  // once
  Chunk chunk;
  ChunkOrigin origin;
  EXPECT_EQ(*s->NextChunk(&chunk, &origin), Source::Next::kIdle);
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(fake_.acks().size(), 3u);  // "3" and "4" wait for their flush
  Flush(s.get());
  ASSERT_TRUE(
      fake_.WaitUntil([&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return fake_.acks_.size() == 7; }));
  std::vector<std::string> acks = fake_.acks();
  std::sort(acks.begin() + 3, acks.end());
  EXPECT_EQ(acks,
            (std::vector<std::string>{"a1", "a2", "a1-again", "a3", "a3-again", "a4", "a4-again"}));
  EXPECT_EQ(Metric("tessera_pubsub_redeliveries_dropped_total"), 3);
  EXPECT_EQ(Metric("tessera_pubsub_messages_received_total"), 7);
}

TEST_F(PubSubSourceTest, TheWindowSurvivesARestartButUnflushedIdsDoNot) {
  {
    auto s = Open();
    ASSERT_NE(s, nullptr);
    fake_.Send({{"1", "a1", "{}"}});
    EXPECT_EQ(Take(s.get(), 1).second.size(), 1u);
    Flush(s.get());
    fake_.Send({{"2", "a2", "{}"}});
    EXPECT_EQ(Take(s.get(), 1).second.size(), 1u);  // handed out, never flushed: a crash
  }
  auto again = Open();
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(Metric("tessera_pubsub_dedup_window_messages"), 1);
  fake_.Send({{"1", "a1-again", "{}"}, {"2", "a2-again", "{}"}});
  EXPECT_EQ(Take(again.get(), 1).second, std::vector<std::string>{"2"});  // counted again
  ASSERT_TRUE(fake_.WaitUntil([&]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return std::find(fake_.acks_.begin(), fake_.acks_.end(), "a1-again") != fake_.acks_.end();
  }));
}

TEST_F(PubSubSourceTest, HeldMessagesGetTheirDeadlinesExtended) {
  auto s = Open();
  ASSERT_NE(s, nullptr);
  fake_.Send({{"1", "a1", "{}"}, {"2", "a2", "{}"}});
  EXPECT_EQ(Take(s.get(), 1).second.size(), 2u);
  fake_.Send({{"3", "a3", "{}"}});  // stays buffered
  WaitReceived(3);
  std::this_thread::sleep_for(300ms);
  EXPECT_TRUE(fake_.extensions().empty());
  clock_.AdvanceMillis(6'000);  // past half the 10 s deadline: a slow flush
  ASSERT_TRUE(fake_.WaitUntil(
      [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return fake_.extensions_.size() == 3; }));
  std::vector<std::string> ext = fake_.extensions();
  std::sort(ext.begin(), ext.end());
  EXPECT_EQ(ext, (std::vector<std::string>{"a1", "a2", "a3"}));
  EXPECT_TRUE(fake_.acks().empty());
}

TEST_F(PubSubSourceTest, ShutdownNacksWhatWasNotHandedOutAndHalfClosesTheStream) {
  auto s = Open();
  ASSERT_NE(s, nullptr);
  fake_.Send({{"1", "a1", "{}"}});
  EXPECT_EQ(Take(s.get(), 1).second.size(), 1u);
  Flush(s.get());
  fake_.Send({{"2", "a2", "{}"}, {"3", "a3", "{}"}});
  WaitReceived(3);  // and buffered
  const auto t0 = std::chrono::steady_clock::now();
  s.reset();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1500ms) << "the server ended the stream";
  MutexLock lock(&fake_.mu_);
  EXPECT_EQ(fake_.half_closed_, 1);
  EXPECT_EQ(fake_.acks_, std::vector<std::string>{"a1"});
  std::vector<std::string> nacks = fake_.nacks_;
  std::sort(nacks.begin(), nacks.end());
  EXPECT_EQ(nacks, (std::vector<std::string>{"a2", "a3"}));
}

TEST_F(PubSubSourceTest, APermanentErrorFailsTheSourceWithTheServersMessage) {
  fake_.set_fail(grpc::StatusCode::NOT_FOUND);
  PubSubOptions o;
  o.subscription = kSub;
  o.target = "127.0.0.1:" + std::to_string(port_);
  o.plaintext = true;
  auto s = PubSubSource::Create("plays", o, &store_, &clock_, &metrics_);
  ASSERT_TRUE(s.ok()) << s.status();
  absl::Status error;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (error.ok() && std::chrono::steady_clock::now() < deadline) {
    Chunk chunk;
    ChunkOrigin origin;
    error = (*s)->NextChunk(&chunk, &origin).status();
    (*s)->WaitForData(20ms);
  }
  EXPECT_EQ(error.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(std::string(error.message()).find("subscription is gone"), std::string::npos) << error;
  EXPECT_NE(std::string(error.message()).find("source 'plays'"), std::string::npos) << error;
}

TEST(PubSubOptions, EndpointEmulatorHostOrGoogle) {
  sql::SourceDef src;
  src.name = "plays";
  src.options = {{"connector", "pubsub"}, {"project", "proj"}, {"subscription", "plays-sub"}};
  absl::StatusOr<PubSubOptions> o = PubSubOptions::FromSource(src, "");
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->subscription, "projects/proj/subscriptions/plays-sub");
  EXPECT_EQ(o->target, "pubsub.googleapis.com:443");
  EXPECT_FALSE(o->plaintext);
  EXPECT_EQ(o->ack_deadline_s, 60);
  EXPECT_EQ(o->dedup.window_ms, 10 * 60 * 1000);

  o = PubSubOptions::FromSource(src, "localhost:8085");  // PUBSUB_EMULATOR_HOST
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->target, "localhost:8085");
  EXPECT_TRUE(o->plaintext);

  src.options.emplace_back("endpoint", "http://10.0.0.1:8085");  // wins over the environment
  src.options.emplace_back("ack-deadline", "30s");
  src.options.emplace_back("dedup-window", "1h");
  src.options.emplace_back("dedup-max-messages", "1000");
  src.options.emplace_back("streams", "3");
  o = PubSubOptions::FromSource(src, "localhost:8085");
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->target, "10.0.0.1:8085");
  EXPECT_TRUE(o->plaintext);
  EXPECT_EQ(o->ack_deadline_s, 30);
  EXPECT_EQ(o->dedup.window_ms, 3'600'000);
  EXPECT_EQ(o->dedup.max_ids, 1000u);
  EXPECT_EQ(o->streams, 3);

  src.options[3].second = "europe-west1-pubsub.googleapis.com:443";
  o = PubSubOptions::FromSource(src, "");
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->target, "europe-west1-pubsub.googleapis.com:443");
  EXPECT_FALSE(o->plaintext);
}

}  // namespace
}  // namespace tessera::source
