#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tessera::serve {

struct HttpRequest {
  std::string method;    // "GET", "POST", …
  std::string path;      // URL-decoded path, without the query string
  std::string raw_path;  // path as sent (still %-encoded), for routes with encoded segments
  std::vector<std::pair<std::string, std::string>> query;  // URL-decoded, in order
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // Path parameters filled by the router, e.g. {"view","user_stats"} for /v1/features/{view}/…
  std::vector<std::pair<std::string, std::string>> params;

  // First value of a query parameter / path parameter / header (case-insensitive), or nullptr.
  const std::string* Query(std::string_view name) const;
  const std::string* Param(std::string_view name) const;
  const std::string* Header(std::string_view name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;

  // {"error":"<message>"} with `status`.
  static HttpResponse Error(int status, std::string_view message);
  static HttpResponse Json(int status, std::string body);
};

// Completes a request; may be called from any thread, exactly once (later calls are ignored;
// copies share one completion). Called inline from the handler, the response is written without
// a thread hop. If every copy is destroyed without a call, the client gets 500. After Stop() a
// call is a no-op, so a Responder may safely outlive the server.
using Responder = std::function<void(HttpResponse)>;
// Handles one request. Must not block for long: a handler that waits (e.g. for an fsync) keeps
// the Responder and returns, then responds later from another thread.
using Handler = std::function<void(HttpRequest&&, Responder)>;

struct HttpServerOptions {
  std::string address = "127.0.0.1";
  uint16_t port = 0;                               // 0 = pick a free port (see HttpServer::port())
  int threads = 2;                                 // I/O threads
  size_t max_body_bytes = size_t{64} << 20;        // larger bodies get 413
  std::chrono::milliseconds read_timeout{30'000};  // a request must arrive within this
  std::chrono::milliseconds idle_timeout{60'000};  // keep-alive connections idle longer close
  size_t max_header_bytes = size_t{16} << 10;      // larger request headers get 431
};

// A small HTTP/1.1 server (Boost.Beast over Asio): keep-alive, pipelining-safe, bounded bodies
// (413), timeouts, and a router with path templates like "/v1/features/{view}/{key}" and exact
// paths. Unknown paths get 404, a known path with another method 405, always as JSON errors.
// Exceptions never escape into Asio: a throwing handler yields 500.
//
// Details of the contract:
// - Routing matches the raw (%-encoded) path segment by segment; a `{param}` matches one
//   non-empty segment and is %-decoded on its own, so "a%2Fb" arrives as the key "a/b". '+' is
//   literal in paths and a space in query strings. The first registered route that matches the
//   path and method wins; 405 responses carry an Allow header.
// - One request per connection is in flight: pipelined requests wait in the read buffer and
//   are answered in order. The handler runs on an I/O thread (on the connection's strand).
// - Timeouts: a fresh connection must deliver a full request within read_timeout; a keep-alive
//   connection may idle up to idle_timeout before its next request starts, which then has
//   read_timeout to arrive. A timed-out connection is closed without a response. Writing a
//   response may take max(read_timeout, idle_timeout). No timer runs while a handler works.
// - Bodies over max_body_bytes (declared or chunked) get 413; a request line over
//   max_header_bytes 414, a longer header 431; unparseable requests 400; these close the
//   connection after the response.
// - Request bodies with "Content-Encoding: gzip" are decompressed before the handler sees them,
//   bounded by max_body_bytes (413 beyond it: a gzip bomb never grows memory past it); corrupt
//   gzip is 400 and any other encoding but "identity" 415.
// - Query parameters a route does not accept get 400 (see Route()).
// - "Expect: 100-continue" is answered before the body is read.
// - Stop() closes every connection, including ones whose handler has not responded yet (their
//   Responders become no-ops). A handler that keeps its Responder forever without calling it
//   keeps that one connection open (no timer) until its Responder is dropped (500) or
//   Stop(); it never blocks Stop().
//
// Thread safety: Route() and set_observer() before Start(); Start(), Stop() and port() from any
// thread.
class HttpServer {
 public:
  explicit HttpServer(HttpServerOptions options);
  ~HttpServer();  // stops and joins
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Registers `handler` for `method` and `path_template`. `route_name` labels metrics (defaults
  // to the template). `query_params` are the query parameters the route accepts: a request with
  // any other gets 400 naming it and listing these (a misspelt `?batchid=` must not be silently
  // ignored). A GET route also answers HEAD (same status and headers, no body) unless a HEAD
  // route for the same path is registered. REQUIRES: before Start().
  void Route(std::string method, std::string path_template, Handler handler,
             std::string route_name = "", std::vector<std::string> query_params = {});

  // Binds and starts the I/O threads. Errors (address in use, bad address) name the address.
  absl::Status Start();
  // Stops accepting, closes connections, joins threads. Idempotent. No handler runs after it
  // returns. REQUIRES: not called from a handler (an I/O thread cannot join itself).
  void Stop();

  uint16_t port() const;

  // Called after every response with (route_name or "unmatched", method, status, seconds), on
  // an I/O thread, where method is one of GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS or
  // "other" (whatever a client sends, so labels built from these arguments stay bounded), once the
  // response is written (or failed to write). `seconds` runs from the complete request to the
  // written response. Must be cheap and thread-safe; exceptions are swallowed. REQUIRES: before
  // Start().
  void set_observer(std::function<void(std::string_view route, std::string_view method, int status,
                                       double seconds)>
                        fn);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tessera::serve
