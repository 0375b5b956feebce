// tessera-kafka-mock: a Kafka cluster without a broker, for tests, benchmarks and local runs.
//
// Hosts librdkafka's mock cluster (rdkafka_mock.h: the real Kafka protocol, produce/fetch,
// consumer groups, offset commits; data in memory only) in this process, creates the topics
// given with --topic, and prints the bootstrap address ("127.0.0.1:P,127.0.0.1:Q,…") as the
// first line of stdout, flushed, once the topics exist. Other processes on loopback (kcat,
// `tessera run`) use that address. Runs until SIGTERM or SIGINT, or, with --exit-on-stdin-eof,
// until its standard input closes (so a test that dies, even by SIGKILL, takes the cluster with
// it when it holds the pipe). Exit code 0 on a stop, 1 on a setup error.
#include <fmt/format.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <charconv>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "common/signals.h"

namespace {

struct Flags {
  int brokers = 3;
  std::vector<std::string> topics;  // NAME:PARTITIONS
  int replication = 0;              // 0: min(3, brokers)
  bool exit_on_stdin_eof = false;
};

struct TopicSpec {
  std::string name;
  int partitions = 1;
};

bool ParseTopic(const std::string& text, TopicSpec* out) {
  const size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  out->name = text.substr(0, colon);
  const char* begin = text.data() + colon + 1;
  const char* end = text.data() + text.size();
  auto [p, ec] = std::from_chars(begin, end, out->partitions);
  return ec == std::errc() && p == end && out->partitions > 0;
}

int Run(const Flags& f) {
  if (f.brokers < 1) {
    fmt::print(stderr, "tessera-kafka-mock: --brokers must be at least 1\n");
    return 1;
  }
  std::vector<TopicSpec> topics;
  for (const std::string& t : f.topics) {
    TopicSpec spec;
    if (!ParseTopic(t, &spec)) {
      fmt::print(stderr, "tessera-kafka-mock: --topic '{}': expected NAME:PARTITIONS\n", t);
      return 1;
    }
    topics.push_back(spec);
  }
  const int replication = f.replication > 0 ? f.replication : std::min(3, f.brokers);
  if (replication > f.brokers) {
    fmt::print(stderr, "tessera-kafka-mock: --replication {} exceeds --brokers {}\n", replication,
               f.brokers);
    return 1;
  }

  // Before any thread starts (librdkafka's included): the stop signals are taken by sigwait.
  const sigset_t signals = tessera::BlockStopSignals();

  char errstr[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  // The hosting handle never produces: silence its "no bootstrap.servers" notice.
  rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof errstr);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
  if (rk == nullptr) {
    rd_kafka_conf_destroy(conf);
    fmt::print(stderr, "tessera-kafka-mock: cannot create the hosting handle: {}\n", errstr);
    return 1;
  }
  rd_kafka_mock_cluster_t* cluster = rd_kafka_mock_cluster_new(rk, f.brokers);
  if (cluster == nullptr) {
    rd_kafka_destroy(rk);
    fmt::print(stderr, "tessera-kafka-mock: cannot start a mock cluster of {} brokers\n",
               f.brokers);
    return 1;
  }
  for (const TopicSpec& t : topics) {
    const rd_kafka_resp_err_t err =
        rd_kafka_mock_topic_create(cluster, t.name.c_str(), t.partitions, replication);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      fmt::print(stderr, "tessera-kafka-mock: cannot create topic '{}': {}\n", t.name,
                 rd_kafka_err2str(err));
      rd_kafka_mock_cluster_destroy(cluster);
      rd_kafka_destroy(rk);
      return 1;
    }
  }
  std::fputs(rd_kafka_mock_cluster_bootstraps(cluster), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
  fmt::print(stderr, "tessera-kafka-mock: {} brokers", f.brokers);
  for (const TopicSpec& t : topics)
    fmt::print(stderr, ", topic {} ({} partitions)", t.name, t.partitions);
  fmt::print(stderr, "\n");

  if (f.exit_on_stdin_eof) {
    // Detached: it may still block in read() when a signal ends the process.
    std::thread([] {
      char buf[4096];
      while (true) {
        const ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
        if (n == 0 || (n < 0 && errno != EINTR)) break;
      }
      kill(getpid(), SIGTERM);  // blocked everywhere: picked up by the sigwait below
    }).detach();
  }
  const int sig = tessera::WaitForSignal(signals);
  fmt::print(stderr, "tessera-kafka-mock: {}, stopping\n", tessera::SignalName(sig));
  rd_kafka_mock_cluster_destroy(cluster);
  rd_kafka_destroy(rk);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  CLI::App app{
      "tessera-kafka-mock: librdkafka's mock Kafka cluster (in memory, loopback only) for tests "
      "and local runs.\nPrints the bootstrap address as the first stdout line once the topics "
      "exist, then runs until SIGTERM/SIGINT (or, with --exit-on-stdin-eof, until stdin "
      "closes).\nExample: tessera-kafka-mock --topic plays:8 > addr &  (addr: "
      "127.0.0.1:41001,127.0.0.1:41002,127.0.0.1:41003)"};
  app.add_option("--brokers", f.brokers, "Number of brokers")->capture_default_str();
  app.add_option("--topic", f.topics, "Create topic NAME with PARTITIONS partitions (repeatable)")
      ->type_name("NAME:PARTITIONS");
  app.add_option("--replication", f.replication,
                 "Replication factor of the topics (default: min(3, brokers))");
  app.add_flag("--exit-on-stdin-eof", f.exit_on_stdin_eof,
               "Also stop when standard input reaches EOF (a test holding the pipe ends it)");
  CLI11_PARSE(app, argc, argv);
  return Run(f);
}
