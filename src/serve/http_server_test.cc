#include "serve/http_server.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <zlib.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/test_compress.h"
#include "serve/test_http_client.h"

namespace tessera::serve {
namespace {

using namespace std::chrono_literals;

std::string Describe(const HttpRequest& req) {
  std::string s = fmt::format("{} path={} raw={}", req.method, req.path, req.raw_path);
  for (const auto& [k, v] : req.params) s += fmt::format(" param:{}={}", k, v);
  for (const auto& [k, v] : req.query) s += fmt::format(" query:{}={}", k, v);
  return s;
}

// Hands responders to the test thread, which completes them later.
class Parked {
 public:
  void Park(std::string tag, Responder r) {
    std::lock_guard lock(mu_);
    parked_.emplace_back(std::move(tag), std::move(r));
    cv_.notify_all();
  }
  // Waits for `n` parked requests and returns them (in arrival order).
  std::vector<std::pair<std::string, Responder>> Take(size_t n) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, 5s, [&] { return parked_.size() >= n; });
    return std::exchange(parked_, {});
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::pair<std::string, Responder>> parked_;
};

class HttpServerTest : public ::testing::Test {
 protected:
  void StartServer(HttpServerOptions options = {}) {
    server_ = std::make_unique<HttpServer>(std::move(options));
    auto echo = [](HttpRequest&& req, Responder respond) {
      HttpResponse r;
      r.content_type = "text/plain";
      r.body = Describe(req);
      respond(std::move(r));
    };
    server_->Route("GET", "/v1/features/{view}/{key}", echo, "get_features");
    server_->Route("GET", "/healthz", echo);
    server_->Route("GET", "/q", echo, "", {"a", "b", "c", "d", "e=", "f", "i"});
    server_->Route("POST", "/v1/features:batchGet", [](HttpRequest&& req, Responder respond) {
      respond(HttpResponse::Json(200, "{\"echo\":" + std::to_string(req.body.size()) + "}"));
    });
    server_->Route("POST", "/echo", [](HttpRequest&& req, Responder respond) {
      HttpResponse r;
      r.content_type = "application/octet-stream";
      r.body = std::move(req.body);
      r.headers.emplace_back("X-Method", req.method);
      respond(std::move(r));
    });
    server_->Route("DELETE", "/healthz", echo);
    server_->Route("GET", "/later",
                   [this](HttpRequest&& req, Responder respond) {
                     const std::string* tag = req.Query("tag");
                     parked_.Park(tag ? *tag : "", std::move(respond));
                   },
                   "", {"tag"});
    server_->Route("GET", "/async",
                   [](HttpRequest&& req, Responder respond) {
                     int ms = std::stoi(*req.Query("ms"));
                     std::string id = *req.Query("id");
                     std::thread([ms, id, respond = std::move(respond)] {
                       std::this_thread::sleep_for(std::chrono::milliseconds(ms));
                       respond(HttpResponse::Json(200, "{\"id\":" + id + "}"));
                     }).detach();
                   },
                   "", {"ms", "id"});
    server_->Route("GET", "/throw",
                   [](HttpRequest&&, Responder) -> void { throw std::runtime_error("boom"); });
    server_->Route("GET", "/drop", [](HttpRequest&&, Responder) {});
    server_->Route("GET", "/twice", [](HttpRequest&&, Responder respond) {
      respond(HttpResponse::Json(201, "{}"));
      respond(HttpResponse::Json(202, "{}"));
    });
    server_->Route("GET", "/headers", [](HttpRequest&& req, Responder respond) {
      const std::string* ua = req.Header("x-custom-header");
      respond(HttpResponse::Json(200, ua ? *ua : "none"));
    });
    server_->set_observer(
        [this](std::string_view route, std::string_view method, int status, double seconds) {
          std::lock_guard lock(observed_mu_);
          observed_.push_back(std::string(route) + " " + std::string(method) + " " +
                              std::to_string(status));
          EXPECT_GE(seconds, 0);
        });
    ASSERT_TRUE(server_->Start().ok());
    ASSERT_NE(server_->port(), 0);
  }

  std::vector<std::string> Observed() {
    std::lock_guard lock(observed_mu_);
    return observed_;
  }

  uint16_t port() const { return server_->port(); }

  Parked parked_;
  std::mutex observed_mu_;
  std::vector<std::string> observed_;
  std::unique_ptr<HttpServer> server_;
};

TEST_F(HttpServerTest, RoutesWithParamsAndEncodedSegments) {
  StartServer();
  Client c(port());
  ASSERT_TRUE(c.connected());
  auto r = c.Get("/v1/features/user_stats/alice");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->Header("content-type"), "text/plain");
  EXPECT_EQ(r->body,
            "GET path=/v1/features/user_stats/alice raw=/v1/features/user_stats/alice "
            "param:view=user_stats param:key=alice");

  r = c.Get("/v1/features/v/a%2Fb%20c+d");  // encoded '/' stays in the key; '+' literal in paths
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body,
            "GET path=/v1/features/v/a/b c+d raw=/v1/features/v/a%2Fb%20c+d param:view=v "
            "param:key=a/b c+d");

  r = c.Get("/v1/features/v/u1%7Cde");  // composite key "u1|de", encoded
  ASSERT_TRUE(r);
  EXPECT_NE(r->body.find("param:key=u1|de"), std::string::npos) << r->body;
  r = c.Get("/v1/features/v/u1|de");  // and sent raw
  ASSERT_TRUE(r);
  EXPECT_NE(r->body.find("param:key=u1|de"), std::string::npos) << r->body;

  r = c.Get("/%68ealthz");  // literal segments compare decoded
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);

  r = c.Post("/v1/features:batchGet", "{\"keys\":[1,2]}");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->Header("content-type"), "application/json");
  EXPECT_EQ(r->body, "{\"echo\":14}");

  // Too few / too many segments, and an empty parameter, do not match.
  for (const char* target :
       {"/v1/features/v", "/v1/features/v/k/extra", "/v1/features/v/", "/healthz/", "/nope"}) {
    r = c.Get(target);
    ASSERT_TRUE(r) << target;
    EXPECT_EQ(r->status, 404) << target;
  }
}

TEST_F(HttpServerTest, QueryStringDecoding) {
  StartServer();
  Client c(port());
  auto r = c.Get("/q?a=1&b=x+y%20z&c&&a=2&d=%2B%26&e%3D=v&f=%zz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body,
            "GET path=/q raw=/q query:a=1 query:b=x y z query:c= query:a=2 query:d=+& "
            "query:e==v query:f=%zz");
}

TEST_F(HttpServerTest, RequestAccessorsAndHeaders) {
  HttpRequest req;
  req.query = {{"a", "1"}, {"a", "2"}};
  req.params = {{"view", "v"}};
  req.headers = {{"Content-Type", "text/plain"}};
  ASSERT_NE(req.Query("a"), nullptr);
  EXPECT_EQ(*req.Query("a"), "1");
  EXPECT_EQ(req.Query("b"), nullptr);
  EXPECT_EQ(*req.Param("view"), "v");
  EXPECT_EQ(*req.Header("content-type"), "text/plain");
  EXPECT_EQ(req.Header("content-length"), nullptr);
  EXPECT_EQ(HttpResponse::Error(400, "bad \"key\"\n\x01").body,
            "{\"error\":\"bad \\\"key\\\"\\n\\u0001\"}");

  StartServer();
  Client c(port());
  ASSERT_TRUE(c.Send("GET /headers HTTP/1.1\r\nHost: t\r\nX-Custom-Header: hello\r\n\r\n"));
  auto r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "hello");
}

TEST_F(HttpServerTest, KeepAliveServesManyRequestsOnOneConnection) {
  StartServer();
  Client c(port());
  for (int i = 0; i < 50; ++i) {
    auto r = c.Get("/q?i=" + std::to_string(i));
    ASSERT_TRUE(r) << i;
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, "GET path=/q raw=/q query:i=" + std::to_string(i));
    EXPECT_NE(r->Header("connection"), "close");
  }
}

TEST_F(HttpServerTest, ConnectionCloseAndHttp10) {
  StartServer();
  {
    Client c(port());
    ASSERT_TRUE(c.Send("GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"));
    auto r = c.Read();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->Header("connection"), "close");
    EXPECT_TRUE(c.WaitClosed());
  }
  {
    Client c(port());
    ASSERT_TRUE(c.Send("GET /healthz HTTP/1.0\r\n\r\n"));
    auto r = c.Read();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_TRUE(c.WaitClosed());
  }
}

TEST_F(HttpServerTest, ErrorsAreJson) {
  HttpServerOptions opt;
  opt.max_body_bytes = 1024;
  opt.max_header_bytes = 2048;
  StartServer(opt);
  {
    Client c(port());
    auto r = c.Get("/missing%2Fthing");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 404);
    EXPECT_EQ(r->Header("content-type"), "application/json");
    EXPECT_EQ(r->body, "{\"error\":\"no route for /missing/thing\"}");
    // 404 and 405 keep the connection usable.
    r = c.Post("/healthz", "x");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 405);
    EXPECT_EQ(r->Header("allow"), "GET, HEAD, DELETE");
    EXPECT_EQ(r->body,
              "{\"error\":\"method POST not allowed for /healthz (allowed: GET, HEAD, DELETE)\"}");
    r = c.Get("/throw");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 500);
    EXPECT_EQ(r->body, "{\"error\":\"internal error: boom\"}");
    r = c.Get("/drop");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 500);
    EXPECT_EQ(r->body, "{\"error\":\"handler dropped the request without responding\"}");
    r = c.Get("/twice");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 201);
    r = c.Get("/healthz");  // the ignored second response did not desynchronize the stream
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
  }
  {
    Client c(port());  // declared body too large: 413 before the body is read, then close
    ASSERT_TRUE(c.Send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n" +
                       std::string(5000, 'x')));
    auto r = c.Read();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 413);
    EXPECT_EQ(r->body, "{\"error\":\"request body exceeds 1024 bytes\"}");
    EXPECT_EQ(r->Header("connection"), "close");
    EXPECT_TRUE(c.WaitClosed());
  }
  {
    Client c(port());  // chunked body growing past the limit
    std::string chunk(600, 'y');
    ASSERT_TRUE(c.Send("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" +
                       std::string("258\r\n") + chunk + "\r\n258\r\n" + chunk + "\r\n0\r\n\r\n"));
    auto r = c.Read();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 413);
  }
  {
    Client c(port());
    ASSERT_TRUE(c.Send("GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + std::string(4000, 'h') +
                       "\r\n\r\n"));
    auto r = c.Read();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 431);
    EXPECT_EQ(r->body,
              "{\"error\":\"request header (request line and fields) exceeds 2048 bytes\"}");
  }
  {
    Client c(port());
    ASSERT_TRUE(c.Send("THIS IS NOT HTTP\r\n\r\n"));
    auto r = c.Read();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400);
    EXPECT_NE(r->body.find("malformed HTTP request"), std::string::npos) << r->body;
    EXPECT_TRUE(c.WaitClosed());
  }
}

TEST_F(HttpServerTest, ChunkedBodiesAndExpectContinue) {
  StartServer();
  Client c(port());
  ASSERT_TRUE(
      c.Send("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
             "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"));
  auto r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "hello world");
  EXPECT_EQ(r->Header("x-method"), "POST");

  ASSERT_TRUE(c.Send(
      "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"));
  auto cont = c.Read();
  ASSERT_TRUE(cont);
  EXPECT_EQ(cont->status, 100);
  ASSERT_TRUE(c.Send("data"));
  r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "data");
}

TEST_F(HttpServerTest, HandlerRespondsLaterFromAnotherThread) {
  StartServer();
  Client a(port());
  Client b(port());
  ASSERT_TRUE(a.Send("GET /later?tag=a HTTP/1.1\r\nHost: t\r\n\r\n"));
  ASSERT_TRUE(b.Send("GET /later?tag=b HTTP/1.1\r\nHost: t\r\n\r\n"));
  std::vector<std::pair<std::string, Responder>> parked = parked_.Take(2);
  ASSERT_EQ(parked.size(), 2u);
  // Answer both from a fresh thread, b first.
  std::thread([&parked] {
    for (int i = 1; i >= 0; --i) {
      parked[i].second(HttpResponse::Json(200, "{\"tag\":\"" + parked[i].first + "\"}"));
    }
  }).join();
  for (Client* c : {&a, &b}) {
    auto r = c->Read();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
  }
  // The connections stay usable.
  auto r = a.Get("/healthz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST_F(HttpServerTest, PipelinedRequestsAreAnsweredInOrder) {
  StartServer();
  Client c(port());
  // The first request answers slowest; responses must still come back in request order.
  std::string batch;
  for (int i = 0; i < 5; ++i) {
    batch += "GET /async?id=" + std::to_string(i) + "&ms=" + std::to_string((5 - i) * 10) +
             " HTTP/1.1\r\nHost: t\r\n\r\n";
  }
  batch += "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc";
  batch += "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";
  ASSERT_TRUE(c.Send(batch));
  for (int i = 0; i < 5; ++i) {
    auto r = c.Read();
    ASSERT_TRUE(r) << i;
    EXPECT_EQ(r->body, "{\"id\":" + std::to_string(i) + "}");
  }
  auto r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "abc");
  r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

// A long pipeline arrives in few reads: each request is parsed from the buffer and answered
// with a direct send, so the server must neither nest one call per request on its stack nor
// lose order while the client is not reading (the socket buffers fill, sends go async).
TEST_F(HttpServerTest, LongPipelineWhileTheClientDoesNotRead) {
  StartServer();
  Client c(port());
  constexpr int kRequests = 20000;
  std::string batch;
  for (int i = 0; i < kRequests; ++i) {
    batch += "GET /q?i=" + std::to_string(i) + " HTTP/1.1\r\nHost: t\r\n\r\n";
  }
  std::atomic<bool> sent{false};
  std::thread sender([&] { sent = c.Send(batch); });
  std::this_thread::sleep_for(200ms);  // let the server's sends back up
  for (int i = 0; i < kRequests; ++i) {
    auto r = c.Read();
    ASSERT_TRUE(r) << i;
    ASSERT_EQ(r->body, "GET path=/q raw=/q query:i=" + std::to_string(i));
  }
  sender.join();
  EXPECT_TRUE(sent);
}

// A response larger than the socket buffers is written partly at once and the rest
// asynchronously; the header split over two sends is parsed once it is whole.
TEST_F(HttpServerTest, LargeResponsesAndSplitHeadersArriveWhole) {
  StartServer();
  Client c(port());
  std::string body(8 << 20, 'x');
  for (size_t i = 0; i < body.size(); i += 4093) body[i] = static_cast<char>('a' + i % 26);
  std::thread sender([&] {
    c.Send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\n\r\n" + body);
  });
  std::this_thread::sleep_for(200ms);  // the response waits on a full socket buffer
  auto r = c.Read();
  sender.join();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_TRUE(r->body == body);
  ASSERT_TRUE(c.Send("GET /q?i=1 HTTP/1.1\r\nHo"));
  std::this_thread::sleep_for(50ms);
  ASSERT_TRUE(c.Send("st: t\r\n\r\n"));
  r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "GET path=/q raw=/q query:i=1");
}

TEST_F(HttpServerTest, ManyConcurrentConnections) {
  HttpServerOptions opt;
  opt.threads = 2;
  StartServer(opt);
  constexpr int kThreads = 8;
  constexpr int kConnsPerThread = 25;
  constexpr int kRequests = 10;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<std::unique_ptr<Client>> clients;
      clients.reserve(kConnsPerThread);
      for (int i = 0; i < kConnsPerThread; ++i) {
        clients.push_back(std::make_unique<Client>(port()));
      }
      for (int n = 0; n < kRequests; ++n) {
        for (int i = 0; i < kConnsPerThread; ++i) {
          std::string key = std::to_string(t) + "_" + std::to_string(i) + "_" + std::to_string(n);
          clients[i]->Send("GET /v1/features/v/" + key + " HTTP/1.1\r\nHost: t\r\n\r\n");
        }
        for (int i = 0; i < kConnsPerThread; ++i) {
          std::string key = std::to_string(t) + "_" + std::to_string(i) + "_" + std::to_string(n);
          auto r = clients[i]->Read();
          if (r && r->status == 200 && r->body.ends_with("param:key=" + key)) ok.fetch_add(1);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), kThreads * kConnsPerThread * kRequests);
}

TEST_F(HttpServerTest, SlowClientHitsReadTimeoutAndIdleConnectionsClose) {
  HttpServerOptions opt;
  opt.read_timeout = 200ms;
  opt.idle_timeout = 400ms;
  StartServer(opt);
  {
    Client c(port());  // starts a request and never finishes it
    auto t0 = std::chrono::steady_clock::now();
    ASSERT_TRUE(c.Send("GET /healthz HTTP/1.1\r\nHost: t\r\n"));
    EXPECT_TRUE(c.WaitClosed());
    auto elapsed = std::chrono::steady_clock::now() - t0;
    EXPECT_GE(elapsed, 150ms);
    EXPECT_LT(elapsed, 2s);
  }
  {
    Client c(port());  // a slow body is cut off too
    auto t0 = std::chrono::steady_clock::now();
    ASSERT_TRUE(c.Send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nab"));
    EXPECT_TRUE(c.WaitClosed());
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  }
  {
    Client c(port());  // a keep-alive connection survives short pauses, not the idle timeout
    ASSERT_TRUE(c.Get("/healthz"));
    std::this_thread::sleep_for(250ms);  // longer than read_timeout, shorter than idle_timeout
    auto r = c.Get("/healthz");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_TRUE(c.WaitClosed());
    auto elapsed = std::chrono::steady_clock::now() - t0;
    EXPECT_GE(elapsed, 300ms);
    EXPECT_LT(elapsed, 2s);
  }
  {
    Client c(port());  // a connection that never sends anything
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_TRUE(c.WaitClosed());
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  }
}

using test_util::Gzip;

std::optional<ClientResponse> PostEncoded(Client& c, const std::string& target,
                                          const std::string& encoding, const std::string& body) {
  if (!c.Send("POST " + target + " HTTP/1.1\r\nHost: t\r\nContent-Encoding: " + encoding +
              "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body)) {
    return std::nullopt;
  }
  return c.Read();
}

bool IsValidJson(const std::string& body) {
  return !nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false).is_discarded();
}

TEST_F(HttpServerTest, HeadAnswersEveryGetRouteWithoutABody) {
  StartServer();
  Client c(port());
  for (const char* target : {"/healthz", "/q?a=1", "/v1/features/v/k"}) {
    auto get = c.Get(target);
    ASSERT_TRUE(get) << target;
    auto head = c.Head(target);
    ASSERT_TRUE(head) << target;
    EXPECT_EQ(head->status, 200) << target;
    // The echo handler names the method: "HEAD …" is one byte longer than "GET …".
    const size_t expected = get->body.size() + (get->body.rfind("GET ", 0) == 0 ? 1 : 0);
    EXPECT_EQ(head->Header("content-length"), std::to_string(expected)) << target;
    EXPECT_EQ(head->Header("content-type"), get->Header("content-type")) << target;
  }
  // The connection is still in sync: no body bytes were sent after the HEAD responses.
  auto r = c.Get("/q?i=7");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "GET path=/q raw=/q query:i=7");
  // A path without a GET route: 405 whose Allow does not offer HEAD; errors for HEAD carry no
  // body either.
  r = c.Head("/echo");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 405);
  EXPECT_EQ(r->Header("allow"), "POST");
  r = c.Head("/nope");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  r = c.Get("/healthz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

// Client-chosen method strings never become metric labels as they are.
TEST_F(HttpServerTest, ObserverMethodsAreBounded) {
  StartServer();
  Client c(port());
  ASSERT_TRUE(c.Send("BREW /healthz HTTP/1.1\r\nHost: t\r\n\r\n"));
  auto r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 405);
  ASSERT_TRUE(c.Send("get /healthz HTTP/1.1\r\nHost: t\r\n\r\n"));
  ASSERT_TRUE(c.Read());
  ASSERT_TRUE(c.Head("/healthz"));
  ASSERT_TRUE(c.Send("OPTIONS /healthz HTTP/1.1\r\nHost: t\r\n\r\n"));
  ASSERT_TRUE(c.Read());
  for (int i = 0; i < 100 && Observed().size() < 4; ++i) std::this_thread::sleep_for(5ms);
  EXPECT_EQ(Observed(), (std::vector<std::string>{"unmatched other 405", "unmatched other 405",
                                                  "/healthz HEAD 200", "unmatched OPTIONS 405"}));
}

TEST_F(HttpServerTest, UnknownQueryParametersAreNamed) {
  StartServer();
  Client c(port());
  auto r = c.Get("/later?tga=x");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(r->body, "{\"error\":\"unknown query parameter 'tga' (accepted: tag)\"}");
  r = c.Get("/healthz?verbose=1");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(r->body, "{\"error\":\"unknown query parameter 'verbose' (accepted: none)\"}");
  r = c.Get("/async?ms=0&id=3");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  // A parameter name with invalid UTF-8 still gives valid JSON.
  r = c.Get("/healthz?%FF%FE=1");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_TRUE(IsValidJson(r->body)) << r->body;
}

TEST_F(HttpServerTest, ErrorMessagesWithInvalidUtf8AreValidJson) {
  StartServer();
  Client c(port());
  auto r = c.Get("/no%FFroute/%C3");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  EXPECT_TRUE(IsValidJson(r->body)) << r->body;
  EXPECT_EQ(nlohmann::json::parse(r->body)["error"],
            "no route for /no\xef\xbf\xbdroute/\xef\xbf\xbd");
  EXPECT_EQ(HttpResponse::Error(400, "key '\xff\xfe'").body,
            "{\"error\":\"key '\\ufffd\\ufffd'\"}");
}

TEST_F(HttpServerTest, GzipBodiesAreDecodedWithinTheBodyLimit) {
  HttpServerOptions opt;
  opt.max_body_bytes = 256 << 10;
  StartServer(opt);
  Client c(port());
  const std::string text = "{\"user\":\"u1\",\"v\":1}\n";
  std::string body;
  for (int i = 0; i < 5000; ++i) body += text;  // 100 KB: under the limit
  auto r = PostEncoded(c, "/echo", "gzip", Gzip(body));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, body);
  // Concatenated members (gzip a b > c) and case-insensitive names.
  r = PostEncoded(c, "/echo", " GZip ", Gzip("first\n") + Gzip("second\n"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "first\nsecond\n");
  r = PostEncoded(c, "/echo", "identity", "plain");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "plain");

  // A bomb: 100 MB of zeros in ~100 KB of gzip (deflate's best ratio is ~1:1000). Rejected as soon
  // as the output passes the limit, with the limit named; the connection stays usable.
  const std::string bomb = Gzip(std::string(size_t{100} << 20, '\0'), 9);
  ASSERT_LT(bomb.size(), opt.max_body_bytes);
  r = PostEncoded(c, "/echo", "gzip", bomb);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
  EXPECT_EQ(r->body, "{\"error\":\"decompressed request body exceeds 262144 bytes\"}");
  // Exactly the limit is fine; one byte more is not.
  r = PostEncoded(c, "/echo", "gzip", Gzip(std::string(opt.max_body_bytes, 'a')));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body.size(), opt.max_body_bytes);
  r = PostEncoded(c, "/echo", "gzip", Gzip(std::string(opt.max_body_bytes + 1, 'a')));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);

  // Corrupt and truncated gzip: 400.
  r = PostEncoded(c, "/echo", "gzip", "definitely not gzip");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("not valid gzip"), std::string::npos) << r->body;
  const std::string whole = Gzip(body);
  r = PostEncoded(c, "/echo", "gzip", whole.substr(0, whole.size() / 2));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("truncated"), std::string::npos) << r->body;

  // Any other encoding: 415 naming it.
  r = PostEncoded(c, "/echo", "br", "xx");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 415);
  EXPECT_EQ(r->Header("accept-encoding"), "gzip, identity");
  EXPECT_EQ(r->body,
            "{\"error\":\"Content-Encoding 'br' is not supported: send the body uncompressed or "
            "with Content-Encoding: gzip\"}");
  r = c.Get("/healthz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

// The default 16 KiB header limit fits a 4 KiB key sent fully %-encoded (12 KiB); longer URLs
// get 414 and long header fields 431, both as JSON.
TEST_F(HttpServerTest, LongKeysFitAndTooLongUrlsGet414) {
  StartServer();
  std::string encoded;
  for (int i = 0; i < 4096; ++i) encoded += "%C3";  // 4 KiB of bytes, 12 KiB on the wire
  {
    Client c(port());
    auto r = c.Get("/v1/features/v/" + encoded);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body.size(), std::string("GET path=/v1/features/v/").size() + 4096 +
                                  std::string(" raw=/v1/features/v/").size() + encoded.size() +
                                  std::string(" param:view=v param:key=").size() + 4096);
  }
  {
    Client c(port());
    auto r = c.Get("/v1/features/v/" + std::string(20000, 'k'));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 414);
    EXPECT_EQ(r->Header("content-type"), "application/json");
    EXPECT_EQ(r->body, "{\"error\":\"request line (method and URL) exceeds 16384 bytes\"}");
    EXPECT_TRUE(c.WaitClosed());
  }
  {
    Client c(port());
    ASSERT_TRUE(c.Send("GET /healthz HTTP/1.1\r\nHost: t\r\nCookie: " + std::string(20000, 'c') +
                       "\r\n\r\n"));
    auto r = c.Read();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 431);
    EXPECT_TRUE(IsValidJson(r->body)) << r->body;
  }
}

TEST_F(HttpServerTest, ObserverSeesEveryResponse) {
  StartServer();
  Client c(port());
  ASSERT_TRUE(c.Get("/v1/features/v/k"));
  ASSERT_TRUE(c.Get("/nope"));
  ASSERT_TRUE(c.Post("/healthz", ""));
  ASSERT_TRUE(c.Get("/healthz"));
  // The observer runs after the write completes; give the last one a moment.
  for (int i = 0; i < 100 && Observed().size() < 4; ++i) std::this_thread::sleep_for(5ms);
  EXPECT_EQ(Observed(), (std::vector<std::string>{"get_features GET 200", "unmatched GET 404",
                                                  "unmatched POST 405", "/healthz GET 200"}));
}

TEST_F(HttpServerTest, StopClosesOpenConnectionsAndIsIdempotent) {
  StartServer();
  Client idle(port());
  ASSERT_TRUE(idle.Get("/healthz"));
  Client partial(port());
  ASSERT_TRUE(partial.Send("GET /healthz HTTP/1.1\r\n"));
  Client waiting(port());
  ASSERT_TRUE(waiting.Send("GET /later?tag=w HTTP/1.1\r\nHost: t\r\n\r\n"));
  std::vector<std::pair<std::string, Responder>> parked = parked_.Take(1);
  ASSERT_EQ(parked.size(), 1u);

  auto t0 = std::chrono::steady_clock::now();
  server_->Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
  EXPECT_TRUE(idle.WaitClosed());
  EXPECT_TRUE(partial.WaitClosed());
  EXPECT_TRUE(waiting.WaitClosed());
  // A Responder used after Stop() is a no-op, from any thread, even after the server is gone.
  parked[0].second(HttpResponse::Json(200, "{}"));
  server_->Stop();
  uint16_t old_port = port();
  server_.reset();
  Client refused(old_port);
  EXPECT_FALSE(refused.connected() && refused.Get("/healthz").has_value());
}

TEST_F(HttpServerTest, ResponderOutlivesServer) {
  StartServer();
  Client c(port());
  ASSERT_TRUE(c.Send("GET /later?tag=x HTTP/1.1\r\nHost: t\r\n\r\n"));
  std::vector<std::pair<std::string, Responder>> parked = parked_.Take(1);
  ASSERT_EQ(parked.size(), 1u);
  server_.reset();  // destructor stops
  parked[0].second(HttpResponse::Json(200, "{}"));
  parked.clear();  // dropping it after the server is gone is safe too
  EXPECT_TRUE(c.WaitClosed());
}

TEST_F(HttpServerTest, StartErrorsNameTheAddress) {
  {
    HttpServerOptions opt;
    opt.address = "not-an-ip";
    HttpServer s(opt);
    absl::Status st = s.Start();
    EXPECT_FALSE(st.ok());
    EXPECT_NE(std::string(st.message()).find("not-an-ip"), std::string::npos) << st;
  }
  StartServer();
  HttpServerOptions opt;
  opt.port = port();
  HttpServer s(opt);
  absl::Status st = s.Start();
  EXPECT_FALSE(st.ok());
  EXPECT_NE(std::string(st.message()).find("127.0.0.1:" + std::to_string(port())),
            std::string::npos)
      << st;
  EXPECT_FALSE(server_->Start().ok());  // twice
  HttpServer never_started(HttpServerOptions{});
  never_started.Stop();  // harmless
}

}  // namespace
}  // namespace tessera::serve
