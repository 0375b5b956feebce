#include "source/dead_letter/dead_letter.h"

#include <fmt/format.h>
#include <librdkafka/rdkafka.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "common/clock.h"
#include "common/errors.h"
#include "common/json_string.h"
#include "source/connector_options.h"

namespace tessera::source {
namespace {

constexpr std::string_view kFileScheme = "file://";
constexpr std::string_view kKafkaScheme = "kafka://";

class FileSink final : public DeadLetterSink {
 public:
  // Line-buffered: a record reaches the file when it is written, not when a later one comes.
  FileSink(std::string source, std::string path, std::FILE* f)
      : DeadLetterSink(std::move(source)), path_(std::move(path)), f_(f) {
    std::setvbuf(f_, nullptr, _IOLBF, size_t{1} << 16);
  }
  ~FileSink() override { std::fclose(f_); }

 private:
  bool Deliver(std::string record) override {
    record.push_back('\n');
    if (std::fwrite(record.data(), 1, record.size(), f_) != record.size()) {
      Warn(fmt::format("cannot write dead-letter file '{}': {}", path_, std::strerror(errno)));
      return false;
    }
    return true;
  }

  const std::string path_;
  std::FILE* const f_;
};

class KafkaSink final : public DeadLetterSink {
 public:
  KafkaSink(std::string source, std::string topic, rd_kafka_t* producer)
      : DeadLetterSink(std::move(source)), topic_(std::move(topic)), producer_(producer) {}
  ~KafkaSink() override {
    rd_kafka_flush(producer_, 10'000);
    rd_kafka_destroy(producer_);
  }

 private:
  bool Deliver(std::string record) override {
    const rd_kafka_resp_err_t err =
        rd_kafka_producev(producer_, RD_KAFKA_V_TOPIC(topic_.c_str()),
                          RD_KAFKA_V_KEY(const_cast<char*>(source_.data()), source_.size()),
                          RD_KAFKA_V_VALUE(record.data(), record.size()),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    rd_kafka_poll(producer_, 0);  // serve delivery reports
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      Warn(fmt::format("cannot produce to dead-letter topic '{}': {}", topic_,
                       rd_kafka_err2str(err)));
      return false;
    }
    return true;
  }

  const std::string topic_;
  rd_kafka_t* const producer_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<DeadLetterSink>> DeadLetterSink::Create(
    std::string_view uri, const sql::SourceDef& source) {
  if (uri.substr(0, kFileScheme.size()) == kFileScheme) {
    const std::string path(uri.substr(kFileScheme.size()));
    if (path.empty())
      return InvalidArgument("source '{}': dead-letter '{}' has no path", source.name, uri);
    std::FILE* f = std::fopen(path.c_str(), "ab");
    if (f == nullptr) {
      return InvalidArgument("source '{}': cannot open dead-letter file '{}': {}", source.name,
                             path, std::strerror(errno));
    }
    return std::unique_ptr<DeadLetterSink>(new FileSink(source.name, path, f));
  }
  if (uri.substr(0, kKafkaScheme.size()) == kKafkaScheme) {
    std::string_view rest = uri.substr(kKafkaScheme.size());
    std::string brokers;
    std::string topic;
    if (const size_t slash = rest.rfind('/'); slash != std::string_view::npos) {
      brokers = std::string(rest.substr(0, slash));
      topic = std::string(rest.substr(slash + 1));
    } else {
      topic = std::string(rest);
      if (ConnectorOf(source) == "kafka") {
        brokers = FindOption(source, "properties.bootstrap.servers").value_or("");
      }
    }
    if (topic.empty() || brokers.empty()) {
      return InvalidArgument(
          "source '{}': dead-letter '{}' needs a topic and brokers: 'kafka://topic' (a Kafka "
          "source's own brokers) or 'kafka://host:port,host:port/topic'",
          source.name, uri);
    }
    char errstr[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    for (const auto& [key, value] : std::vector<std::pair<std::string, std::string>>{
             {"bootstrap.servers", brokers},
             {"client.id", "tessera-dead-letter-" + source.name},
             {"linger.ms", "50"}}) {
      if (rd_kafka_conf_set(conf, key.c_str(), value.c_str(), errstr, sizeof errstr) !=
          RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        return InvalidArgument("source '{}': dead-letter producer '{}' = '{}': {}", source.name,
                               key, value, errstr);
      }
    }
    rd_kafka_t* producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (producer == nullptr) {
      rd_kafka_conf_destroy(conf);
      return InvalidArgument("source '{}': cannot create the dead-letter producer: {}", source.name,
                             errstr);
    }
    return std::unique_ptr<DeadLetterSink>(new KafkaSink(source.name, topic, producer));
  }
  return InvalidArgument(
      "source '{}': dead-letter '{}' is not valid; expected 'file:///path', 'kafka://topic' or "
      "'kafka://host:port/topic'",
      source.name, uri);
}

void DeadLetterSink::Write(const ChunkOrigin& origin, const Rejection& rejection) {
  if (Deliver(Record(source_, origin, rejection))) {
    written_.fetch_add(1, std::memory_order_relaxed);
  } else {
    failed_.fetch_add(1, std::memory_order_relaxed);
  }
}

void DeadLetterSink::Warn(std::string_view what) {
  const int64_t now = SystemClock::Default()->MonotonicNanos();
  if (last_warning_ns_ != 0 && now - last_warning_ns_ < 60'000'000'000) return;
  last_warning_ns_ = now;
  fmt::print(stderr, "tessera: warning: source '{}': {} (dead letters are being lost)\n", source_,
             what);
}

std::string DeadLetterSink::Record(std::string_view source, const ChunkOrigin& origin,
                                   const Rejection& rejection) {
  std::string out = "{\"source\":";
  AppendJsonString(source, &out);
  out += ",\"input\":";
  AppendJsonString(origin.input, &out);
  const int64_t index = rejection.line_number - origin.first_line;
  const bool in_table = index >= 0;
  if (in_table && static_cast<size_t>(index) < origin.offsets.size()) {
    if (origin.partition >= 0) out += fmt::format(",\"partition\":{}", origin.partition);
    out += fmt::format(",\"offset\":{}", origin.offsets[index]);
  } else if (in_table && static_cast<size_t>(index) < origin.ids.size()) {
    out += ",\"message_id\":";
    AppendJsonString(origin.ids[index], &out);
  } else {
    out += fmt::format(",\"line\":{}", rejection.line_number);
  }
  // The fields above say where.
  out += ",\"reason\":";
  AppendJsonString(ReasonWithoutLine(rejection), &out);
  out += ",\"raw\":";
  AppendJsonString(rejection.line, &out);
  out += "}";
  return out;
}

}  // namespace tessera::source
