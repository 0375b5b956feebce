// http_load: load and freshness probes for `tessera run --http` (scripts/bench_serve.sh).
//
//   http_load ingest --port P --source S --file F [--lines 10000] [--connections 4]
//             [--seconds 0] [--repeat 1] [--rate ROWS_PER_S] [--wait visible|durable]
//       Splits F (NDJSON) into bodies of --lines lines and POSTs them to /v1/ingest/S from
//       --connections keep-alive connections (each takes the next body from a shared queue).
//       Sends every body --repeat times, or loops for --seconds if > 0. Prints one JSON line:
//       rows acknowledged (sum of "accepted"), rows/s, bodies/s, request latency percentiles.
//
//   http_load fresh --port P --source S --view V [--probes 200] [--poll-us 2000]
//       Posts one event with ts = now for a never-seen key, then polls
//       GET /v1/features/V/{key}?windows=5m until its count is 1. Prints the distribution of
//       acknowledged -> visible (and sent -> visible) over the probes as one JSON line.
//
// Plain POSIX sockets and a minimal HTTP/1.1 client (Content-Length responses only), so the
// tool costs the 2-core bench machine as little CPU as possible.
#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

using SteadyClock = std::chrono::steady_clock;

// SIGTERM/SIGINT end an ingest run after the requests in flight; the summary is still printed.
std::atomic<bool> g_stop{false};
extern "C" void OnStop(int) { g_stop.store(true); }

double SecondsSince(SteadyClock::time_point t0) {
  return std::chrono::duration<double>(SteadyClock::now() - t0).count();
}

[[noreturn]] void Die(const std::string& msg) {
  fmt::print(stderr, "http_load: {}\n", msg);
  std::exit(1);
}

// One keep-alive HTTP/1.1 connection to 127.0.0.1:port.
class Conn {
 public:
  explicit Conn(int port) : port_(port) { Connect(); }
  ~Conn() {
    if (fd_ >= 0) close(fd_);
  }

  // Sends a request and reads the response. Returns the status; fills `body`.
  int Request(const std::string& method, const std::string& target, const std::string& payload,
              std::string* body) {
    std::string req = fmt::format(
        "{} {} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-ndjson\r\n"
        "Content-Length: {}\r\n\r\n",
        method, target, payload.size());
    SendAll(req.data(), req.size(), payload.empty());
    if (!payload.empty()) SendAll(payload.data(), payload.size(), true);
    return ReadResponse(body);
  }

 private:
  void Connect() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    if (fd_ < 0) Die("socket failed");
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port_));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      Die(fmt::format("connect to 127.0.0.1:{} failed: {}", port_, std::strerror(errno)));
    }
  }

  void SendAll(const char* p, size_t n, bool last) {
    (void)last;
    while (n > 0) {
      ssize_t w = send(fd_, p, n, MSG_NOSIGNAL);
      if (w <= 0) {
        if (errno == EINTR) continue;
        Die(fmt::format("send failed: {}", std::strerror(errno)));
      }
      p += w;
      n -= static_cast<size_t>(w);
    }
  }

  int ReadResponse(std::string* body) {
    // Read until the end of the headers.
    size_t header_end;
    while ((header_end = buf_.find("\r\n\r\n")) == std::string::npos) Fill();
    std::string_view head(buf_.data(), header_end);
    int status = 0;
    if (head.size() < 12 || std::sscanf(buf_.c_str() + 9, "%d", &status) != 1) {
      Die("bad response status line");
    }
    size_t length = 0;
    bool found = false;
    size_t pos = 0;
    while (pos < head.size()) {
      size_t eol = head.find("\r\n", pos);
      if (eol == std::string_view::npos) eol = head.size();
      std::string_view line = head.substr(pos, eol - pos);
      pos = eol + 2;
      if (line.size() > 15 && strncasecmp(line.data(), "content-length:", 15) == 0) {
        length = std::strtoull(std::string(line.substr(15)).c_str(), nullptr, 10);
        found = true;
      }
    }
    if (!found) Die("response without Content-Length");
    size_t total = header_end + 4 + length;
    while (buf_.size() < total) Fill();
    body->assign(buf_, header_end + 4, length);
    buf_.erase(0, total);
    return status;
  }

  void Fill() {
    char tmp[65536];
    ssize_t r = recv(fd_, tmp, sizeof(tmp), 0);
    if (r < 0 && errno == EINTR) return;
    if (r <= 0) Die("connection closed by server");
    buf_.append(tmp, static_cast<size_t>(r));
  }

  int port_;
  int fd_ = -1;
  std::string buf_;
};

int64_t JsonInt(const std::string& body, const std::string& field) {
  std::string needle = "\"" + field + "\":";
  size_t p = body.find(needle);
  if (p == std::string::npos) return -1;
  return std::strtoll(body.c_str() + p + needle.size(), nullptr, 10);
}

double Pct(std::vector<double>& v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())));
  return v[i];
}

int RunIngest(int port, const std::string& source, const std::string& file, int lines,
              int connections, double seconds, int repeat, double rate, const std::string& wait) {
  std::ifstream in(file, std::ios::binary);
  if (!in) Die("cannot read " + file);
  std::vector<std::string> bodies;
  std::vector<int64_t> body_rows;
  {
    std::string line, cur;
    int n = 0;
    while (std::getline(in, line)) {
      cur += line;
      cur += '\n';
      if (++n == lines) {
        bodies.push_back(std::move(cur));
        body_rows.push_back(n);
        cur.clear();
        n = 0;
      }
    }
    if (n > 0) {
      bodies.push_back(std::move(cur));
      body_rows.push_back(n);
    }
  }
  if (bodies.empty()) Die("no lines in " + file);
  const std::string target = "/v1/ingest/" + source + (wait.empty() ? "" : "?wait=" + wait);
  std::signal(SIGTERM, OnStop);
  std::signal(SIGINT, OnStop);
  std::atomic<int64_t> next{0};
  const int64_t total = seconds > 0 ? INT64_MAX : static_cast<int64_t>(bodies.size()) * repeat;
  std::atomic<int64_t> accepted{0}, rejected{0}, sent_rows{0}, errors{0};
  std::mutex mu;
  std::vector<double> latencies;
  const auto t0 = SteadyClock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < connections; ++c) {
    threads.emplace_back([&] {
      Conn conn(port);
      std::vector<double> mine;
      std::string resp;
      for (;;) {
        int64_t i = next.fetch_add(1);
        if (i >= total) break;
        if (g_stop.load() || (seconds > 0 && SecondsSince(t0) >= seconds)) break;
        size_t b = static_cast<size_t>(i % static_cast<int64_t>(bodies.size()));
        if (rate > 0) {  // open loop: body i is due at i * lines / rate
          std::this_thread::sleep_until(
              t0 + std::chrono::duration_cast<SteadyClock::duration>(
                       std::chrono::duration<double>(static_cast<double>(i) * lines / rate)));
        }
        auto s = SteadyClock::now();
        int status = conn.Request("POST", target, bodies[b], &resp);
        mine.push_back(SecondsSince(s) * 1e3);
        sent_rows += body_rows[b];
        if (status != 200) {
          if (errors.fetch_add(1) < 3) fmt::print(stderr, "http_load: {} {}\n", status, resp);
          continue;
        }
        accepted += JsonInt(resp, "accepted");
        rejected += JsonInt(resp, "rejected");
      }
      std::lock_guard<std::mutex> lock(mu);
      latencies.insert(latencies.end(), mine.begin(), mine.end());
    });
  }
  for (auto& t : threads) t.join();
  double wall = SecondsSince(t0);
  size_t n = latencies.size();
  double p50 = Pct(latencies, 0.50), p90 = Pct(latencies, 0.90), p99 = Pct(latencies, 0.99);
  double mx = latencies.empty() ? 0 : latencies.back();
  fmt::print(
      "{{\"mode\":\"ingest\",\"connections\":{},\"lines_per_body\":{},\"requests\":{},"
      "\"errors\":{},\"rows_sent\":{},\"rows_accepted\":{},\"rows_rejected\":{},"
      "\"seconds\":{:.3f},\"rows_per_second\":{:.0f},\"requests_per_second\":{:.1f},"
      "\"latency_ms\":{{\"p50\":{:.1f},\"p90\":{:.1f},\"p99\":{:.1f},\"max\":{:.1f}}}}}\n",
      connections, lines, n, errors.load(), sent_rows.load(), accepted.load(), rejected.load(),
      wall, static_cast<double>(accepted.load()) / wall, static_cast<double>(n) / wall, p50, p90,
      p99, mx);
  return errors.load() == 0 ? 0 : 1;
}

int RunFresh(int port, const std::string& source, const std::string& view, int probes, int poll_us,
             double timeout_s) {
  Conn post(port), get(port);
  const std::string run = fmt::format(
      "{:x}", std::chrono::system_clock::now().time_since_epoch().count() & 0xffffffffff);
  std::vector<double> ack_to_visible, send_to_visible, ack_ms;
  int timeouts = 0;
  std::string resp;
  for (int i = 0; i < probes; ++i) {
    std::string key = fmt::format("fresh-{}-{}", run, i);
    int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    std::string event = fmt::format(
        "{{\"user_id\":\"{}\",\"track_id\":\"track-fresh\",\"ms_played\":1000,"
        "\"skipped\":false,\"country\":\"SE\",\"device\":\"web\",\"ts\":{}}}\n",
        key, now_ms);
    auto t_send = SteadyClock::now();
    int status = post.Request("POST", "/v1/ingest/" + source, event, &resp);
    auto t_ack = SteadyClock::now();
    if (status != 200 || JsonInt(resp, "accepted") != 1) Die("probe ingest failed: " + resp);
    ack_ms.push_back(std::chrono::duration<double>(t_ack - t_send).count() * 1e3);
    const std::string target = fmt::format("/v1/features/{}/{}?windows=5m", view, key);
    bool seen = false;
    while (SecondsSince(t_ack) < timeout_s) {
      int s = get.Request("GET", target, "", &resp);
      if (s == 200 && resp.find("\"plays\":1") != std::string::npos) {
        seen = true;
        break;
      }
      if (s != 200) Die(fmt::format("probe GET {} -> {} {}", target, s, resp));
      std::this_thread::sleep_for(std::chrono::microseconds(poll_us));
    }
    auto t_vis = SteadyClock::now();
    if (!seen) {
      ++timeouts;
      continue;
    }
    ack_to_visible.push_back(std::chrono::duration<double>(t_vis - t_ack).count() * 1e3);
    send_to_visible.push_back(std::chrono::duration<double>(t_vis - t_send).count() * 1e3);
    // Spread the probes out a little so they sample different moments of the flush cycle.
    std::this_thread::sleep_for(std::chrono::milliseconds(20 + (i * 37) % 60));
  }
  auto mx = [](std::vector<double>& v) {
    return v.empty() ? 0.0 : *std::max_element(v.begin(), v.end());
  };
  fmt::print(
      "{{\"mode\":\"fresh\",\"probes\":{},\"timeouts\":{},\"poll_us\":{},"
      "\"ack_ms\":{{\"p50\":{:.1f},\"p99\":{:.1f},\"max\":{:.1f}}},"
      "\"ack_to_visible_ms\":{{\"p50\":{:.1f},\"p99\":{:.1f},\"max\":{:.1f}}},"
      "\"send_to_visible_ms\":{{\"p50\":{:.1f},\"p99\":{:.1f},\"max\":{:.1f}}}}}\n",
      probes, timeouts, poll_us, Pct(ack_ms, 0.5), Pct(ack_ms, 0.99), mx(ack_ms),
      Pct(ack_to_visible, 0.5), Pct(ack_to_visible, 0.99), mx(ack_to_visible),
      Pct(send_to_visible, 0.5), Pct(send_to_visible, 0.99), mx(send_to_visible));
  return timeouts == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"HTTP load and freshness probes for `tessera run`"};
  app.require_subcommand(1);
  int port = 0;
  std::string source = "plays", view = "user_listening", file;
  int lines = 10000, connections = 4, repeat = 1, probes = 200, poll_us = 2000;
  double seconds = 0, timeout_s = 10;
  auto* ingest = app.add_subcommand("ingest", "POST NDJSON bodies from concurrent connections");
  ingest->add_option("--port", port)->required();
  ingest->add_option("--source", source)->capture_default_str();
  ingest->add_option("--file", file, "NDJSON file")->required();
  ingest->add_option("--lines", lines, "Lines per body")->capture_default_str();
  ingest->add_option("--connections", connections)->capture_default_str();
  ingest->add_option("--seconds", seconds, "Loop for this long (0: send each body --repeat times)");
  ingest->add_option("--repeat", repeat)->capture_default_str();
  double rate = 0;
  ingest->add_option("--rate", rate, "Target rows/s (paced per body; 0 = as fast as acknowledged)");
  std::string wait;
  ingest->add_option("--wait", wait, "visible (server default) or durable: when answers come");
  auto* fresh = app.add_subcommand("fresh", "Acknowledged -> visible latency probes");
  fresh->add_option("--port", port)->required();
  fresh->add_option("--source", source)->capture_default_str();
  fresh->add_option("--view", view)->capture_default_str();
  fresh->add_option("--probes", probes)->capture_default_str();
  fresh->add_option("--poll-us", poll_us)->capture_default_str();
  fresh->add_option("--timeout", timeout_s, "Seconds before a probe counts as timed out");
  CLI11_PARSE(app, argc, argv);
  if (ingest->parsed()) {
    return RunIngest(port, source, file, lines, std::max(1, connections), seconds,
                     std::max(1, repeat), rate, wait);
  }
  return RunFresh(port, source, view, probes, poll_us, timeout_s);
}
