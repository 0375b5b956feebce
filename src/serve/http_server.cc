#include "serve/http_server.h"

#include <fmt/format.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstdio>
#include <limits>
#include <optional>
#include <thread>
#include <unordered_map>

#include "common/errors.h"
#include "common/json_string.h"
#include "common/mutex.h"
#include "common/strings.h"

namespace tessera::serve {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
// Concrete executor types (no type-erased any_io_executor on the per-request path).
using Strand = net::strand<net::io_context::executor_type>;
using Socket = net::basic_stream_socket<tcp, Strand>;
using Clock = std::chrono::steady_clock;

// ---------------------------------------------------------------------------------------------
// Request / response helpers

namespace {

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

const std::string* FindFirst(const std::vector<std::pair<std::string, std::string>>& kv,
                             std::string_view name) {
  for (const auto& [k, v] : kv) {
    if (k == name) return &v;
  }
  return nullptr;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// %XX decoding; a malformed escape is kept literally. With `plus_is_space` (query strings,
// application/x-www-form-urlencoded) '+' decodes to ' '.
std::string PercentDecode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '%' && i + 2 < s.size()) {
      int hi = HexValue(s[i + 1]);
      int lo = HexValue(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
        continue;
      }
    }
    out += (plus_is_space && c == '+') ? ' ' : c;
  }
  return out;
}

void ParseQuery(std::string_view q, std::vector<std::pair<std::string, std::string>>* out) {
  while (!q.empty()) {
    size_t amp = q.find('&');
    std::string_view part = q.substr(0, amp);
    q = amp == std::string_view::npos ? std::string_view() : q.substr(amp + 1);
    if (part.empty()) continue;
    size_t eq = part.find('=');
    if (eq == std::string_view::npos) {
      out->emplace_back(PercentDecode(part, true), std::string());
    } else {
      out->emplace_back(PercentDecode(part.substr(0, eq), true),
                        PercentDecode(part.substr(eq + 1), true));
    }
  }
}

// Bounded label values for the observer: a client picks the method token freely, so every
// unknown one collapses into "other" (one series each for the standard methods, never one per
// string a client sends).
std::string_view MetricMethod(std::string_view method) {
  static constexpr std::string_view kKnown[] = {"GET",    "HEAD",  "POST",   "PUT",
                                                "DELETE", "PATCH", "OPTIONS"};
  for (std::string_view known : kKnown) {
    if (method == known) return known;
  }
  return "other";
}

enum class GunzipResult { kOk, kTooLarge, kMalformed };

// Inflates the gzip data `in` (one or more concatenated members, as `gzip -c a b` writes) into
// `out`. Stops as soon as the output would exceed `max_bytes`, so a small "gzip bomb" costs at
// most max_bytes plus one chunk of memory.
GunzipResult GunzipBounded(std::string_view in, size_t max_bytes, std::string* out,
                           std::string* error) {
  constexpr size_t kChunk = size_t{64} << 10;
  out->clear();
  z_stream zs{};
  if (inflateInit2(&zs, 15 + 16) != Z_OK) {  // 15 + 16: a gzip wrapper, 32 KiB window
    *error = "cannot initialize zlib";
    return GunzipResult::kMalformed;
  }
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(std::min<size_t>(in.size(), std::numeric_limits<uInt>::max()));
  size_t fed = zs.avail_in;
  GunzipResult result = GunzipResult::kOk;
  for (;;) {
    if (out->size() > max_bytes) {
      result = GunzipResult::kTooLarge;
      break;
    }
    const size_t old = out->size();
    const size_t room = std::min(kChunk, max_bytes + 1 - old);  // one byte over detects overflow
    out->resize(old + room);
    zs.next_out = reinterpret_cast<Bytef*>(out->data() + old);
    zs.avail_out = static_cast<uInt>(room);
    if (zs.avail_in == 0 && fed < in.size()) {
      const size_t more = std::min<size_t>(in.size() - fed, std::numeric_limits<uInt>::max());
      zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data() + fed));
      zs.avail_in = static_cast<uInt>(more);
      fed += more;
    }
    const int rc = inflate(&zs, Z_NO_FLUSH);
    out->resize(old + room - zs.avail_out);
    if (rc == Z_STREAM_END) {
      if (zs.avail_in == 0 && fed == in.size()) break;  // done
      if (inflateReset(&zs) != Z_OK) {                  // another member follows
        *error = "cannot reset zlib";
        result = GunzipResult::kMalformed;
        break;
      }
      continue;
    }
    if (rc == Z_OK) continue;
    if (rc == Z_BUF_ERROR && zs.avail_out != 0) {
      *error = "the gzip data is truncated";
      result = GunzipResult::kMalformed;
      break;
    }
    if (rc == Z_BUF_ERROR) continue;
    *error = zs.msg != nullptr ? zs.msg : "corrupt gzip data";
    result = GunzipResult::kMalformed;
    break;
  }
  inflateEnd(&zs);
  if (result == GunzipResult::kOk && out->size() > max_bytes) result = GunzipResult::kTooLarge;
  if (result != GunzipResult::kOk) {
    out->clear();
    out->shrink_to_fit();
  }
  return result;
}

// Splits "/a/b/c" into {"a","b","c"} (views into `path`). "/" yields {""}.
void SplitPath(std::string_view path, std::vector<std::string_view>* out) {
  out->clear();
  if (!path.empty() && path.front() == '/') path.remove_prefix(1);
  for (;;) {
    size_t slash = path.find('/');
    out->push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
}

}  // namespace

const std::string* HttpRequest::Query(std::string_view name) const {
  return FindFirst(query, name);
}

const std::string* HttpRequest::Param(std::string_view name) const {
  return FindFirst(params, name);
}

const std::string* HttpRequest::Header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (EqualsIgnoreCase(k, name)) return &v;
  }
  return nullptr;
}

HttpResponse HttpResponse::Error(int status, std::string_view message) {
  HttpResponse r;
  r.status = status;
  r.body.reserve(message.size() + 16);
  r.body += "{\"error\":";
  AppendJsonString(message, &r.body);
  r.body += '}';
  return r;
}

HttpResponse HttpResponse::Json(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

// ---------------------------------------------------------------------------------------------
// Server internals

namespace {

constexpr size_t kFirstReadBytes = 4096;
constexpr std::chrono::milliseconds kMaxLinger{2000};
constexpr std::string_view kUnmatched = "unmatched";

using Observer =
    std::function<void(std::string_view route, std::string_view method, int status, double)>;

struct RouteEntry {
  struct Segment {
    std::string text;  // literal text, or the parameter name
    bool param = false;
  };
  std::string method;
  std::vector<Segment> segments;
  Handler handler;
  std::string name;
  std::vector<std::string> query_params;  // the accepted ones; any other is a 400
};

// Shared with every Responder, so it outlives the server. `stopped` (under `mu`) tells late
// Responders that the I/O threads are gone and nothing may be posted any more.
struct SharedState {
  Mutex mu;
  bool stopped ABSL_GUARDED_BY(mu) = false;
};

class Connection;

// What connections need from the server. Lives inside HttpServer::Impl; every Connection is
// destroyed in Stop(), before the Core.
struct Core {
  HttpServerOptions options;
  std::vector<RouteEntry> routes;
  Observer observer;
  std::shared_ptr<SharedState> state = std::make_shared<SharedState>();

  Mutex connections_mu;
  // Strong references: a connection waiting for its handler has no pending I/O, so this map is
  // what keeps it alive. Responders only hold weak references.
  std::unordered_map<Connection*, std::shared_ptr<Connection>> connections
      ABSL_GUARDED_BY(connections_mu);
};

// The connection whose handler is running on this thread (set around the handler call), so a
// Responder invoked inline writes directly instead of hopping through the executor.
thread_local Connection* tls_dispatching = nullptr;

// One outstanding request's completion. Shared by all copies of its Responder; the first call
// wins. Dropping every copy without calling answers 500.
class ResponseSlot {
 public:
  ResponseSlot(std::weak_ptr<Connection> conn, Connection* raw, std::shared_ptr<SharedState> state)
      : conn_(std::move(conn)), raw_(raw), state_(std::move(state)) {}
  ~ResponseSlot() {
    if (!done_.load(std::memory_order_relaxed)) {
      Deliver(HttpResponse::Error(500, "handler dropped the request without responding"));
    }
  }
  ResponseSlot(const ResponseSlot&) = delete;
  ResponseSlot& operator=(const ResponseSlot&) = delete;

  void Deliver(HttpResponse response);

 private:
  std::weak_ptr<Connection> conn_;
  Connection* raw_;  // identity only; dereferenced only when tls_dispatching == raw_
  std::shared_ptr<SharedState> state_;
  std::atomic<bool> done_{false};
};

// One accepted socket. All members are touched only on the connection's strand (or, in Stop(),
// on the stopping thread once the I/O threads are joined).
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(Core* core, Strand strand) : core_(core), socket_(strand), timer_(strand) {}

  Socket& socket() { return socket_; }

  void Start() {
    net::dispatch(socket_.get_executor(), [self = shared_from_this()] { self->ReadRequest(); });
  }

  // Stop(): close without touching the registry. REQUIRES: no I/O thread runs.
  void CloseForStop() {
    closed_ = true;
    beast::error_code ec;
    socket_.close(ec);
    timer_.cancel();
  }

  // On the strand: writes the response for the outstanding request.
  void Respond(HttpResponse r);

  Strand executor() { return socket_.get_executor(); }

 private:
  void ReadRequest();
  void OnFirstBytes(beast::error_code ec, size_t n);
  void ReadHeader();
  void OnHeader(beast::error_code ec);
  void ReadBody();
  void OnBody(beast::error_code ec);
  void Dispatch();
  // Serializes res_ (status line, fields, body) into out_.
  void SerializeResponse();
  void OnWrite(beast::error_code ec);
  // Answers a request the server itself rejects; `close` ends the connection afterwards.
  void Reject(int status, std::string_view message, bool close);
  // Maps a read error to a rejection or a silent close.
  void OnReadError(beast::error_code ec);
  void Linger();
  void DoLingerRead();
  void Finish();

  // Deadlines. One lazily re-armed timer per connection instead of one timer per I/O operation:
  // moving the deadline later is a plain store (no syscall); the timer, which never expires
  // after the deadline, re-arms itself when it fires early. At the deadline the socket is
  // closed, so the pending operation fails and the connection finishes.
  void SetDeadline(std::chrono::milliseconds timeout);
  void ClearDeadline() { deadline_ = Clock::time_point::max(); }
  void ArmTimer(Clock::time_point at);
  void OnTimer(beast::error_code ec, uint64_t generation);

  Core* core_;
  Socket socket_;
  net::steady_timer timer_;
  Clock::time_point deadline_ = Clock::time_point::max();
  Clock::time_point timer_expiry_;
  bool timer_armed_ = false;
  uint64_t timer_generation_ = 0;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> res_;
  std::string out_;  // res_ serialized; the bytes being written
  bool first_request_ = true;
  bool waiting_ = false;  // a request is dispatched and not answered yet
  bool closed_ = false;
  bool keep_alive_ = true;
  unsigned version_ = 11;
  int status_ = 0;
  std::string_view route_name_ = kUnmatched;  // points into a RouteEntry or kUnmatched
  std::string method_;                        // MetricMethod() of the request's method
  bool head_ = false;  // a HEAD request: the response goes out without its body
  std::chrono::steady_clock::time_point start_;
  std::vector<std::string_view> segments_;  // scratch for routing
};

void ResponseSlot::Deliver(HttpResponse response) {
  if (done_.exchange(true, std::memory_order_acq_rel)) return;
  if (tls_dispatching == raw_) {
    // Inline from the handler: we are on the connection's strand and it is alive.
    raw_->Respond(std::move(response));
    return;
  }
  // From elsewhere. Take the strong reference only under the lock and only while the server
  // runs, so a connection is never destroyed (or posted to) after Stop() tore the I/O down.
  MutexLock lock(&state_->mu);
  if (state_->stopped) return;
  std::shared_ptr<Connection> conn = conn_.lock();
  if (conn == nullptr) return;
  auto ex = conn->executor();
  net::post(ex, [conn = std::move(conn), r = std::move(response)]() mutable {
    conn->Respond(std::move(r));
  });
}

void Connection::SetDeadline(std::chrono::milliseconds timeout) {
  deadline_ = Clock::now() + timeout;
  if (!timer_armed_ || timer_expiry_ > deadline_) ArmTimer(deadline_);
}

void Connection::ArmTimer(Clock::time_point at) {
  timer_armed_ = true;
  timer_expiry_ = at;
  uint64_t generation = ++timer_generation_;  // a replaced wait completes as stale
  timer_.expires_at(at);
  timer_.async_wait([self = shared_from_this(), generation](beast::error_code ec) {
    self->OnTimer(ec, generation);
  });
}

void Connection::OnTimer(beast::error_code ec, uint64_t generation) {
  if (generation != timer_generation_) return;
  timer_armed_ = false;
  if (ec || closed_ || deadline_ == Clock::time_point::max()) return;
  if (Clock::now() < deadline_) return ArmTimer(deadline_);
  // Timed out: closing fails the pending read or write, whose handler finishes the connection.
  closed_ = true;
  beast::error_code ignored;
  socket_.close(ignored);
}

void Connection::ReadRequest() {
  if (closed_) return Finish();
  parser_.emplace();
  parser_->body_limit(core_->options.max_body_bytes);
  parser_->header_limit(static_cast<uint32_t>(
      std::min<size_t>(core_->options.max_header_bytes, std::numeric_limits<uint32_t>::max())));
  if (buffer_.size() > 0) return ReadHeader();  // pipelined bytes already here
  // Waiting for the next request: the idle timeout applies until its first byte (the read
  // timeout for a fresh connection), then the read timeout for the rest.
  SetDeadline(first_request_ ? core_->options.read_timeout : core_->options.idle_timeout);
  socket_.async_read_some(
      buffer_.prepare(kFirstReadBytes),
      [self = shared_from_this()](beast::error_code ec, size_t n) { self->OnFirstBytes(ec, n); });
}

void Connection::OnFirstBytes(beast::error_code ec, size_t n) {
  if (ec || closed_) return Finish();  // EOF, timeout, reset or Stop(): nothing to answer
  buffer_.commit(n);
  ReadHeader();
}

void Connection::ReadHeader() {
  if (closed_) return Finish();
  // The whole header usually arrives with the first bytes. Parsing it here, instead of through
  // async_read_header (whose immediate completion is posted to the shared scheduler and wakes
  // another I/O thread), saves a cross-thread hand-off per request. The parser needs the whole
  // header at once: with part of it, put() consumes nothing and asks for more.
  if (buffer_.size() > 0) {
    beast::error_code ec;
    while (!parser_->is_header_done() && buffer_.size() > 0) {
      const size_t used = parser_->put(buffer_.data(), ec);
      buffer_.consume(used);
      if (ec || used == 0) break;
    }
    if (ec && ec != http::error::need_more) return OnReadError(ec);
    if (parser_->is_header_done()) return OnHeader({});
  }
  SetDeadline(core_->options.read_timeout);
  http::async_read_header(
      socket_, buffer_, *parser_,
      [self = shared_from_this()](beast::error_code ec, size_t) { self->OnHeader(ec); });
}

void Connection::OnReadError(beast::error_code ec) {
  if (closed_ || ec == net::error::operation_aborted) {
    return Finish();
  }
  if (ec == http::error::body_limit) {
    return Reject(413, fmt::format("request body exceeds {} bytes", core_->options.max_body_bytes),
                  true);
  }
  if (ec == http::error::header_limit) {
    // The limit covers the request line and the header fields. When the request line alone
    // does not fit (the parser, which consumes the request line before the fields, has no
    // target yet), the URL is what is too long: 414 tells the client which part to shorten.
    if (!parser_ || parser_->get().target().empty()) {
      return Reject(414,
                    fmt::format("request line (method and URL) exceeds {} bytes",
                                core_->options.max_header_bytes),
                    true);
    }
    return Reject(431,
                  fmt::format("request header (request line and fields) exceeds {} bytes",
                              core_->options.max_header_bytes),
                  true);
  }
  if (ec.category() == http::make_error_code(http::error::end_of_stream).category() &&
      ec != http::error::end_of_stream && ec != http::error::partial_message) {
    return Reject(400, fmt::format("malformed HTTP request: {}", ec.message()), true);
  }
  Finish();  // the peer went away (EOF mid-request, reset)
}

void Connection::OnHeader(beast::error_code ec) {
  if (ec || closed_) return OnReadError(ec);
  auto& msg = parser_->get();
  if (auto cl = parser_->content_length(); cl && *cl > core_->options.max_body_bytes) {
    return Reject(413, fmt::format("request body exceeds {} bytes", core_->options.max_body_bytes),
                  true);
  }
  if (parser_->is_done()) return Dispatch();
  auto expect = msg.find(http::field::expect);
  if (expect != msg.end() && EqualsIgnoreCase(expect->value(), "100-continue")) {
    static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
    SetDeadline(core_->options.read_timeout);
    net::async_write(socket_, net::buffer(kContinue.data(), kContinue.size()),
                     [self = shared_from_this()](beast::error_code ec, size_t) {
                       if (ec) return self->Finish();
                       self->ReadBody();
                     });
    return;
  }
  ReadBody();
}

void Connection::ReadBody() {
  if (closed_) return Finish();
  SetDeadline(core_->options.read_timeout);
  http::async_read(socket_, buffer_, *parser_,
                   [self = shared_from_this()](beast::error_code ec, size_t) { self->OnBody(ec); });
}

void Connection::OnBody(beast::error_code ec) {
  if (ec || closed_) return OnReadError(ec);
  Dispatch();
}

void Connection::Dispatch() {
  ClearDeadline();  // the handler may take its time; no I/O is pending meanwhile
  start_ = std::chrono::steady_clock::now();
  http::request<http::string_body> msg = parser_->release();
  parser_.reset();
  keep_alive_ = msg.keep_alive();
  version_ = msg.version();

  HttpRequest req;
  req.method = std::string(msg.method_string());
  method_ = std::string(MetricMethod(req.method));
  head_ = req.method == "HEAD";
  std::string_view target = msg.target();
  if (!target.empty() && target.front() != '/') {
    // absolute-form ("http://host/path?q"): keep the path and query
    size_t scheme = target.find("://");
    if (scheme != std::string_view::npos) {
      size_t slash = target.find('/', scheme + 3);
      target = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
    }
  }
  target = target.substr(0, target.find('#'));
  size_t qmark = target.find('?');
  std::string_view raw_path = target.substr(0, qmark);
  req.raw_path = std::string(raw_path);
  req.path = PercentDecode(raw_path, false);
  if (qmark != std::string_view::npos) ParseQuery(target.substr(qmark + 1), &req.query);
  req.headers.reserve(8);
  for (const auto& field : msg) {
    req.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
  }
  req.body = std::move(msg.body());

  // Route on the raw path, segment by segment, so an encoded '/' stays inside its segment.
  SplitPath(raw_path, &segments_);
  const RouteEntry* match = nullptr;
  const RouteEntry* get_for_head = nullptr;  // HEAD falls back to the path's GET route
  std::string allow;
  for (const RouteEntry& route : core_->routes) {
    if (route.segments.size() != segments_.size()) continue;
    bool ok = true;
    for (size_t i = 0; i < segments_.size() && ok; ++i) {
      const RouteEntry::Segment& seg = route.segments[i];
      if (seg.param) {
        ok = !segments_[i].empty();
      } else if (segments_[i].find('%') == std::string_view::npos) {
        ok = segments_[i] == seg.text;
      } else {
        ok = PercentDecode(segments_[i], false) == seg.text;
      }
    }
    if (!ok) continue;
    if (route.method == req.method) {
      match = &route;
      break;
    }
    if (head_ && route.method == "GET" && get_for_head == nullptr) get_for_head = &route;
    if (allow.find(route.method) == std::string::npos) {
      if (!allow.empty()) allow += ", ";
      allow += route.method;
      if (route.method == "GET" && allow.find("HEAD") == std::string::npos) allow += ", HEAD";
    }
  }
  if (match == nullptr) match = get_for_head;
  waiting_ = true;
  if (match == nullptr) {
    route_name_ = kUnmatched;
    if (allow.empty()) {
      Respond(HttpResponse::Error(404, fmt::format("no route for {}", req.path)));
    } else {
      HttpResponse r = HttpResponse::Error(
          405,
          fmt::format("method {} not allowed for {} (allowed: {})", req.method, req.path, allow));
      r.headers.emplace_back("Allow", std::move(allow));
      Respond(std::move(r));
    }
    return;
  }
  route_name_ = match->name;
  for (const auto& [name, value] : req.query) {
    if (std::find(match->query_params.begin(), match->query_params.end(), name) ==
        match->query_params.end()) {
      std::string accepted;
      for (const std::string& p : match->query_params) {
        accepted += (accepted.empty() ? "" : ", ") + p;
      }
      Respond(HttpResponse::Error(400, fmt::format("unknown query parameter '{}' (accepted: {})",
                                                   name, accepted.empty() ? "none" : accepted)));
      return;
    }
  }
  if (const std::string* encoding = req.Header("Content-Encoding")) {
    const std::string_view enc = Trim(*encoding);
    if (EqualsIgnoreCase(enc, "gzip") || EqualsIgnoreCase(enc, "x-gzip")) {
      if (!req.body.empty()) {
        std::string decoded, error;
        switch (GunzipBounded(req.body, core_->options.max_body_bytes, &decoded, &error)) {
          case GunzipResult::kOk:
            req.body = std::move(decoded);
            break;
          case GunzipResult::kTooLarge:
            Respond(
                HttpResponse::Error(413, fmt::format("decompressed request body exceeds {} bytes",
                                                     core_->options.max_body_bytes)));
            return;
          case GunzipResult::kMalformed:
            Respond(HttpResponse::Error(
                400, fmt::format("body is not valid gzip (Content-Encoding: gzip): {}", error)));
            return;
        }
      }
    } else if (!enc.empty() && !EqualsIgnoreCase(enc, "identity")) {
      HttpResponse r = HttpResponse::Error(
          415, fmt::format("Content-Encoding '{}' is not supported: send the body uncompressed "
                           "or with Content-Encoding: gzip",
                           enc));
      r.headers.emplace_back("Accept-Encoding", "gzip, identity");
      Respond(std::move(r));
      return;
    }
  }
  for (size_t i = 0; i < segments_.size(); ++i) {
    if (match->segments[i].param) {
      req.params.emplace_back(match->segments[i].text, PercentDecode(segments_[i], false));
    }
  }

  auto slot = std::make_shared<ResponseSlot>(weak_from_this(), this, core_->state);
  Connection* prev = tls_dispatching;
  tls_dispatching = this;
  try {
    match->handler(std::move(req), [slot](HttpResponse r) { slot->Deliver(std::move(r)); });
  } catch (const std::exception& e) {
    slot->Deliver(HttpResponse::Error(500, fmt::format("internal error: {}", e.what())));
  } catch (...) {
    slot->Deliver(HttpResponse::Error(500, "internal error"));
  }
  slot.reset();  // if the handler dropped its Responder, the 500 goes out inline here
  tls_dispatching = prev;
}

void Connection::Respond(HttpResponse r) {
  if (closed_ || !waiting_) return;
  waiting_ = false;
  status_ = (r.status >= 100 && r.status <= 999) ? r.status : 500;
  res_ = http::response<http::string_body>();
  res_.version(version_);
  res_.result(static_cast<unsigned>(status_));
  if (!r.content_type.empty()) res_.set(http::field::content_type, r.content_type);
  for (auto& [name, value] : r.headers) res_.insert(name, value);
  const size_t body_bytes = r.body.size();
  if (!head_) res_.body() = std::move(r.body);
  keep_alive_ = keep_alive_ && res_.keep_alive();
  res_.keep_alive(keep_alive_);
  res_.prepare_payload();
  // HEAD: the headers GET would send (Content-Length included), no body.
  if (head_) res_.content_length(body_bytes);
  SetDeadline(std::max(core_->options.idle_timeout, core_->options.read_timeout));
  // One non-blocking send of the whole response first: it almost always fits the socket
  // buffer, and finishing here avoids the posted completion of an async write. What is left
  // (a large body, a slow reader) goes out asynchronously.
  SerializeResponse();
  std::string().swap(res_.body());  // out_ has it now
  beast::error_code ec;
  const size_t sent = socket_.write_some(net::buffer(out_), ec);
  if (ec == net::error::would_block || (!ec && sent < out_.size())) {
    net::async_write(
        socket_, net::buffer(out_.data() + sent, out_.size() - sent),
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnWrite(ec); });
    return;
  }
  if (buffer_.size() == 0) return OnWrite(ec);
  // Pipelined requests are waiting: continue through the scheduler so that a long pipeline
  // cannot nest Dispatch -> Respond -> OnWrite -> Dispatch on the stack.
  net::post(socket_.get_executor(), [self = shared_from_this(), ec] { self->OnWrite(ec); });
}

void Connection::SerializeResponse() {
  out_.clear();
  http::response_serializer<http::string_body> serializer(res_);
  beast::error_code ec;
  while (!serializer.is_done() && !ec) {
    serializer.next(ec, [&](beast::error_code&, const auto& buffers) {
      for (const auto b : beast::buffers_range_ref(buffers)) {
        out_.append(static_cast<const char*>(b.data()), b.size());
      }
      serializer.consume(beast::buffer_bytes(buffers));
    });
  }
}

void Connection::OnWrite(beast::error_code ec) {
  if (core_->observer) {
    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    try {
      core_->observer(route_name_, method_, status_, seconds);
    } catch (...) {
      // The observer is diagnostics only; never let it kill the connection.
    }
  }
  res_.body().clear();
  res_.body().shrink_to_fit();
  if (out_.capacity() > kFirstReadBytes) std::string().swap(out_);  // keep idle connections small
  if (ec || closed_) return Finish();
  if (!keep_alive_) return Linger();
  first_request_ = false;
  ReadRequest();
}

void Connection::Reject(int status, std::string_view message, bool close) {
  if (parser_ && parser_->is_header_done()) {
    version_ = parser_->get().version();
    method_ = std::string(MetricMethod(parser_->get().method_string()));
    head_ = parser_->get().method() == http::verb::head;
  } else {
    version_ = 11;
    method_ = "other";
    head_ = false;
  }
  parser_.reset();
  if (close) keep_alive_ = false;
  route_name_ = kUnmatched;
  start_ = std::chrono::steady_clock::now();
  waiting_ = true;
  Respond(HttpResponse::Error(status, message));
}

// Half-close and drain what the client still sends, so unread bytes (a rejected body, requests
// pipelined after "Connection: close") do not turn our close into a reset that could destroy
// the response before the client reads it.
void Connection::Linger() {
  beast::error_code ec;
  socket_.shutdown(tcp::socket::shutdown_send, ec);
  if (ec) return Finish();
  buffer_.clear();
  SetDeadline(std::min(core_->options.read_timeout, kMaxLinger));
  DoLingerRead();
}

void Connection::DoLingerRead() {
  if (closed_) return Finish();
  socket_.async_read_some(buffer_.prepare(kFirstReadBytes),
                          [self = shared_from_this()](beast::error_code ec, size_t) {
                            if (ec) return self->Finish();
                            self->DoLingerRead();
                          });
}

void Connection::Finish() {
  auto self = shared_from_this();  // the registry may hold the last other reference
  if (!closed_) {
    closed_ = true;
    beast::error_code ec;
    socket_.shutdown(tcp::socket::shutdown_both, ec);
    socket_.close(ec);
  }
  timer_.cancel();
  MutexLock lock(&core_->connections_mu);
  core_->connections.erase(this);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// HttpServer

struct HttpServer::Impl {
  Core core;
  Mutex lifecycle_mu;
  bool started ABSL_GUARDED_BY(lifecycle_mu) = false;
  bool stopped ABSL_GUARDED_BY(lifecycle_mu) = false;
  std::unique_ptr<net::io_context> ioc;
  std::optional<tcp::acceptor> acceptor;
  std::optional<net::steady_timer> accept_retry;
  std::vector<std::thread> threads;
  std::atomic<uint16_t> port{0};

  void DoAccept() {
    auto conn = std::make_shared<Connection>(&core, net::make_strand(*ioc));
    Socket& socket = conn->socket();
    acceptor->async_accept(socket, [this, conn = std::move(conn)](beast::error_code ec) mutable {
      OnAccept(ec, std::move(conn));
    });
  }

  void OnAccept(beast::error_code ec, std::shared_ptr<Connection> conn) {
    if (ec == net::error::operation_aborted || !acceptor->is_open()) return;
    if (ec) {
      // Out of descriptors or a transient failure: back off briefly instead of spinning.
      accept_retry->expires_after(std::chrono::milliseconds(20));
      accept_retry->async_wait([this](beast::error_code wait_ec) {
        if (!wait_ec) DoAccept();
      });
      return;
    }
    beast::error_code opt_ec;
    conn->socket().set_option(tcp::no_delay(true), opt_ec);
    // Synchronous sends (Respond's first attempt) must return would_block, never wait.
    conn->socket().non_blocking(true, opt_ec);
    if (opt_ec) return DoAccept();  // cannot serve it safely: drop the connection
    {
      MutexLock lock(&core.connections_mu);
      core.connections.emplace(conn.get(), conn);
    }
    conn->Start();
    DoAccept();
  }

  void RunThread() {
    for (;;) {
      try {
        ioc->run();
        return;
      } catch (const std::exception& e) {
        std::fprintf(stderr, "http_server: exception escaped an I/O handler: %s\n", e.what());
      } catch (...) {
        std::fprintf(stderr, "http_server: unknown exception escaped an I/O handler\n");
      }
    }
  }
};

HttpServer::HttpServer(HttpServerOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->core.options = std::move(options);
}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::Route(std::string method, std::string path_template, Handler handler,
                       std::string route_name, std::vector<std::string> query_params) {
  RouteEntry route;
  route.method = std::move(method);
  route.query_params = std::move(query_params);
  route.handler = std::move(handler);
  route.name = route_name.empty() ? path_template : std::move(route_name);
  std::vector<std::string_view> parts;
  SplitPath(path_template, &parts);
  for (std::string_view part : parts) {
    RouteEntry::Segment seg;
    if (part.size() >= 2 && part.front() == '{' && part.back() == '}') {
      seg.param = true;
      seg.text = std::string(part.substr(1, part.size() - 2));
    } else {
      seg.text = std::string(part);
    }
    route.segments.push_back(std::move(seg));
  }
  impl_->core.routes.push_back(std::move(route));
}

absl::Status HttpServer::Start() {
  MutexLock lock(&impl_->lifecycle_mu);
  const HttpServerOptions& opt = impl_->core.options;
  if (impl_->started) return FailedPrecondition("HttpServer::Start called twice");
  beast::error_code ec;
  net::ip::address addr = net::ip::make_address(opt.address, ec);
  if (ec) return InvalidArgument("bad listen address '{}': {}", opt.address, ec.message());
  int threads = std::max(1, opt.threads);
  impl_->ioc = std::make_unique<net::io_context>(threads);
  tcp::endpoint endpoint(addr, opt.port);
  std::string where = fmt::format("{}:{}", opt.address, opt.port);
  impl_->acceptor.emplace(*impl_->ioc);
  impl_->acceptor->open(endpoint.protocol(), ec);
  if (ec) return Unavailable("cannot open a socket for {}: {}", where, ec.message());
  impl_->acceptor->set_option(net::socket_base::reuse_address(true), ec);
  impl_->acceptor->bind(endpoint, ec);
  if (ec) return Unavailable("cannot bind {}: {}", where, ec.message());
  impl_->acceptor->listen(net::socket_base::max_listen_connections, ec);
  if (ec) return Unavailable("cannot listen on {}: {}", where, ec.message());
  impl_->port = impl_->acceptor->local_endpoint().port();
  impl_->accept_retry.emplace(*impl_->ioc);
  impl_->started = true;
  impl_->DoAccept();
  for (int i = 0; i < threads; ++i) {
    impl_->threads.emplace_back([impl = impl_.get()] { impl->RunThread(); });
  }
  return absl::OkStatus();
}

void HttpServer::Stop() {
  MutexLock lock(&impl_->lifecycle_mu);
  if (impl_->stopped) return;
  impl_->stopped = true;
  {
    // From here on, Responders called from other threads are no-ops.
    MutexLock state_lock(&impl_->core.state->mu);
    impl_->core.state->stopped = true;
  }
  if (!impl_->started) return;
  impl_->ioc->stop();
  for (std::thread& t : impl_->threads) t.join();
  impl_->threads.clear();

  // No I/O thread runs now: close everything from here, then drain the aborted completions on
  // this thread so every connection (and its socket) dies while the io_context still exists.
  beast::error_code ec;
  impl_->acceptor->close(ec);
  impl_->accept_retry->cancel();
  std::unordered_map<Connection*, std::shared_ptr<Connection>> connections;
  {
    MutexLock conn_lock(&impl_->core.connections_mu);
    connections.swap(impl_->core.connections);
  }
  for (auto& [raw, conn] : connections) conn->CloseForStop();
  connections.clear();
  impl_->ioc->restart();
  impl_->ioc->run();
}

uint16_t HttpServer::port() const { return impl_->port.load(); }

void HttpServer::set_observer(
    std::function<void(std::string_view route, std::string_view method, int status, double seconds)>
        fn) {
  impl_->core.observer = std::move(fn);
}

}  // namespace tessera::serve
