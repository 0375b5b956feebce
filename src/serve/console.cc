#include "serve/console.h"

#include <absl/strings/str_split.h>
#include <fmt/format.h>

#include <string>
#include <vector>

#include "common/json_string.h"
#include "serve/embedded_file.h"

namespace tessera::serve {

Console::Console(const MetricsRegistry* metrics, const Clock* clock, Options options)
    : metrics_(metrics), clock_(clock), options_(options), history_(options.history) {}

Console::~Console() { Stop(); }

void Console::Start() {
  MutexLock lock(&mu_);
  if (sampler_.joinable() || stopping_) return;
  sampler_ = std::thread([this] {
    auto stopping = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; };
    while (true) {
      SampleNow();
      MutexLock lock(&mu_);
      if (wake_.WaitFor(&mu_, options_.interval, stopping)) return;
    }
  });
}

void Console::Stop() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  wake_.NotifyAll();
  if (sampler_.joinable()) sampler_.join();
}

void Console::SampleNow() { history_.Record(clock_->NowMillis(), metrics_->Snapshot()); }

void Console::AddRejects(std::string source, std::shared_ptr<const source::RecentRejects> rejects) {
  rejects_.emplace_back(std::move(source), std::move(rejects));
}

namespace {

HttpResponse ServeFile(std::string_view name) {
  for (const EmbeddedFile& f : ConsoleFiles()) {
    if (f.name != name) continue;
    HttpResponse r;
    r.body = std::string(f.bytes);
    if (name.ends_with(".html")) {
      r.content_type = "text/html; charset=utf-8";
    } else if (name.ends_with(".js")) {
      r.content_type = "text/javascript; charset=utf-8";
    } else {
      r.content_type = "text/css; charset=utf-8";
    }
    // The files change only with the binary; an HTML page revalidates on each load.
    r.headers.emplace_back("Cache-Control", "no-cache");
    return r;
  }
  return HttpResponse::Error(404, "no console file " + JsonString(name));
}

}  // namespace

void Console::RegisterRoutes(HttpServer* server) {
  server->Route(
      "GET", "/", [](HttpRequest&&, Responder done) { done(ServeFile("index.html")); }, "console");
  server->Route(
      "GET", "/console/{file}",
      [](HttpRequest&& request, Responder done) { done(ServeFile(*request.Param("file"))); },
      "console_file");
  server->Route(
      "GET", "/v1/console/rejects", [this](HttpRequest&&, Responder done) { done(Rejects()); },
      "console_rejects");
  server->Route("GET", "/v1/console/history",
                [this](HttpRequest&& request, Responder done) { done(History(request)); },
                "console_history", {"families"});
}

HttpResponse Console::History(const HttpRequest& request) const {
  std::vector<std::string> families;
  // Unknown parameters got 400 from the server (the route accepts `families` only).
  for (const auto& [name, value] : request.query) {
    for (absl::string_view f : absl::StrSplit(value, ',', absl::SkipEmpty())) {
      families.emplace_back(f);
    }
  }
  return HttpResponse::Json(200, history_.ToJson(families));
}

HttpResponse Console::Rejects() const {
  std::string out = "{\"sources\":[";
  for (size_t i = 0; i < rejects_.size(); ++i) {
    if (i > 0) out += ',';
    out += "{\"source\":";
    AppendJsonString(rejects_[i].first, &out);
    out += fmt::format(",\"total\":{},\"recent\":", rejects_[i].second->total());
    out += rejects_[i].second->ToJson();
    out += '}';
  }
  out += "]}";
  return HttpResponse::Json(200, std::move(out));
}

}  // namespace tessera::serve
