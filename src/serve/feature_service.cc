#include "serve/feature_service.h"

#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "absl/cleanup/cleanup.h"
#include "common/errors.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "common/time_util.h"
#include "common/value.h"
#include "engine/entity_key.h"
#include "engine/watermark.h"
#include "sql/plan.h"

namespace tessera::serve {
namespace {

int HttpStatusFor(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAlreadyExists:
      return 409;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kResourceExhausted:
      return 503;
    default:
      return 500;
  }
}

HttpResponse FromStatus(const absl::Status& s) {
  return HttpResponse::Error(HttpStatusFor(s), StatusMessage(s));
}

}  // namespace

FeatureService::FeatureService(const engine::CatalogStore* catalog, store::TileStore* store,
                               MetricsRegistry* metrics, const Clock* clock, Options options)
    : catalog_(catalog, [](const engine::CatalogStore*) {}),  // not owned
      store_(store),
      metrics_(metrics),
      clock_(clock),
      options_(options),
      pending_ingest_(options_.max_pending_ingest_bytes),
      pending_reads_(options_.max_pending_read_bytes) {
  static std::atomic<uint64_t> instances{0};
  instance_id_ = instances.fetch_add(1) + 1;
  tiles_per_request_ = metrics_->GetHistogram("tessera_serve_tiles_read",
                                              "Tiles merged per feature read (stored and open)", {},
                                              {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000});
  read_seconds_ = metrics_->GetHistogram(
      "tessera_feature_read_seconds",
      "Engine time of one key's read (store scans + open tiles + finalize), all windows");
  ingest_refused_ = metrics_->GetCounter(
      "tessera_ingest_refused_total",
      "POST /v1/ingest answered 503 + Retry-After: too many bytes queued or the pipeline over "
      "its memory limit");
  ingest_pool_ = std::make_unique<TaskPool>(options_.ingest_threads);
  if (options_.read_threads > 0) read_pool_ = std::make_unique<TaskPool>(options_.read_threads);
}

FeatureService::~FeatureService() { Shutdown(); }

void FeatureService::Shutdown() {
  ingest_pool_->Stop();
  if (read_pool_ != nullptr) read_pool_->Stop();
}

void FeatureService::SetCatalog(std::shared_ptr<const engine::CatalogStore> catalog) {
  {
    MutexLock lock(&catalog_mu_);
    catalog_ = std::move(catalog);
  }
  std::vector<std::unique_ptr<PooledContext>> stale;  // destroyed outside the lock
  MutexLock lock(&contexts_mu_);
  stale.swap(contexts_);
}

std::shared_ptr<const engine::CatalogStore> FeatureService::catalog() const {
  MutexLock lock(&catalog_mu_);
  return catalog_;
}

void FeatureService::SetReadinessCheck(std::function<absl::Status()> check) {
  readiness_check_ = std::move(check);
}

HttpResponse FeatureService::Readiness() const {
  if (!ready_.load()) return HttpResponse::Error(503, "not ready: still starting");
  if (readiness_check_) {
    absl::Status s = readiness_check_();
    if (!s.ok()) return HttpResponse::Error(503, "not ready: " + StatusMessage(s));
  }
  return HttpResponse::Json(200, R"({"status":"ready"})");
}

void FeatureService::SetOpenTiles(const engine::ViewRuntime* view, engine::OpenTileSource* open) {
  open_tiles_[view] = open;
}

void FeatureService::SetWatermark(const engine::ViewRuntime* view,
                                  std::function<int64_t()> watermark_ms) {
  if (watermark_ms) watermarks_[view] = std::move(watermark_ms);
}

absl::StatusOr<std::optional<int64_t>> FeatureService::WatermarkOf(
    const engine::ViewRuntime& view) const {
  int64_t ms = engine::Watermark::kNone;
  if (auto live = watermarks_.find(&view); live != watermarks_.end()) {
    ms = live->second();
  } else {
    TESSERA_ASSIGN_OR_RETURN(
        ms, engine::Watermark::LoadCommitted(store_, view.source->name, view.source->lateness_ms));
  }
  if (ms == engine::Watermark::kNone) return std::nullopt;
  return ms;
}

void FeatureService::AddIngest(std::shared_ptr<source::HttpConnector> connector) {
  const std::string name = connector->source_name();
  Labels labels = {{"source", name}};
  IngestTarget t{
      std::move(connector),
      metrics_->GetCounter("tessera_ingest_accepted_rows_total",
                           "Rows acknowledged durable by POST /v1/ingest", labels),
      metrics_->GetCounter("tessera_ingest_rejected_rows_total", "Rows rejected by POST /v1/ingest",
                           labels),
      metrics_->GetCounter("tessera_ingest_late_rows_total",
                           "Rows POST /v1/ingest answered as late (not appended)", labels)};
  ingest_.emplace(ToLowerAscii(name), std::move(t));
}

void FeatureService::RegisterRoutes(HttpServer* server) {
  server->Route("GET", "/v1/features/{view}/{key}",
                [this](HttpRequest&& req, Responder done) { done(GetFeatures(req)); }, "features",
                {"windows", "at", "meta"});
  server->Route(
      "POST", "/v1/features:batchGet",
      [this](HttpRequest&& req, Responder done) {
        if (read_pool_ == nullptr) return done(BatchGet(req));
        QueueBatchGet(std::move(req), std::move(done));
      },
      "batchGet");
  server->Route(
      "GET", "/v1/views", [this](HttpRequest&&, Responder done) { done(ListViews()); }, "views");
  if (options_.read_only) {
    // 405 rather than 503: a 503 invites the client to retry here, but this process will never
    // accept events; 405 with an empty Allow says this resource allows no method on this server
    // (RFC 9110 §10.2.1: "temporarily disabled by configuration"), and the message says where
    // events go. Not 404: the route exists, on the writer.
    server->Route(
        "POST", "/v1/ingest/{source}",
        [](HttpRequest&&, Responder done) {
          HttpResponse r = HttpResponse::Error(
              405,
              "this is a read-only `tessera serve` server: it does not accept events; POST them "
              "to /v1/ingest/{source} of the `tessera run` process that writes this DB");
          r.headers.emplace_back("Allow", "");
          done(std::move(r));
        },
        "ingest", {"batch_id", "wait"});
  } else {
    server->Route("POST", "/v1/ingest/{source}",
                  [this](HttpRequest&& req, Responder done) { Ingest(std::move(req), done); },
                  "ingest", {"batch_id", "wait"});
  }
  server->Route("GET", "/healthz", [](HttpRequest&&, Responder done) {
    done(HttpResponse::Json(200, R"({"status":"ok"})"));
  });
  server->Route("GET", "/readyz", [this](HttpRequest&&, Responder done) { done(Readiness()); });
  server->Route("GET", "/metrics", [this](HttpRequest&&, Responder done) {
    HttpResponse r;
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    r.body = metrics_->RenderPrometheus();
    done(std::move(r));
  });
  // Every label is bounded: route names are the fixed ones above (or "unmatched"), the server
  // maps methods to a fixed set (or "other"), and statuses are the few the server and these
  // handlers produce. Nothing a client sends becomes a label value as is.
  server->set_observer(
      [this](std::string_view route, std::string_view method, int status, double seconds) {
        // The registry lookup builds label strings and takes its lock: each I/O thread remembers
        // the few series it has seen instead (a handful: bounded labels, see above).
        struct Seen {
          uint64_t service;  // instance_id_: never reused, unlike an address
          std::string route;
          std::string method;
          int status;
          Histogram* histogram;
        };
        thread_local std::vector<Seen> seen;
        for (const Seen& s : seen) {
          if (s.service == instance_id_ && s.status == status && s.route == route &&
              s.method == method) {
            s.histogram->Observe(seconds);
            return;
          }
        }
        Histogram* h = metrics_->GetHistogram("tessera_http_request_seconds",
                                              "HTTP request latency by route and status",
                                              {{"route", std::string(route)},
                                               {"method", std::string(method)},
                                               {"status", std::to_string(status)}});
        constexpr size_t kMaxSeen = 64;  // several services in one process (tests): start over
        if (seen.size() == kMaxSeen) seen.clear();
        seen.push_back(Seen{instance_id_, std::string(route), std::string(method), status, h});
        h->Observe(seconds);
      });
}

void FeatureService::TakeIdleContexts(int64_t now_ns,
                                      std::vector<std::unique_ptr<PooledContext>>* out) {
  size_t idle = 0;
  while (idle < contexts_.size() && now_ns - contexts_[idle]->returned_ns >= kMaxPooledIdleNanos) {
    ++idle;
  }
  for (size_t i = 0; i < idle; ++i) out->push_back(std::move(contexts_[i]));
  contexts_.erase(contexts_.begin(), contexts_.begin() + static_cast<std::ptrdiff_t>(idle));
}

void FeatureService::QueueBatchGet(HttpRequest&& req, Responder done) {
  const size_t bytes = req.body.size();
  size_t pending = 0;
  // `done` is copied into the task: if the pool refuses it, the original still answers. An
  // exception becomes a 500, as on an I/O thread.
  switch (read_pool_->PostWithin(
      &pending_reads_, bytes,
      [this, req = std::move(req), done] {
        try {
          done(BatchGet(req));
        } catch (const std::exception& e) {
          done(HttpResponse::Error(500, fmt::format("internal error: {}", e.what())));
        } catch (...) {
          done(HttpResponse::Error(500, "internal error"));
        }
      },
      &pending)) {
    case TaskPool::Posted::kYes:
      return;
    case TaskPool::Posted::kOverBudget: {
      HttpResponse r = HttpResponse::Error(
          503, fmt::format("server busy: {} MiB of batchGet bodies are queued (limit {} MiB)",
                           pending >> 20, options_.max_pending_read_bytes >> 20));
      r.headers.emplace_back("Retry-After", "1");
      return done(std::move(r));
    }
    case TaskPool::Posted::kStopped:
      return done(HttpResponse::Error(503, "shutting down"));
  }
}

std::unique_ptr<FeatureService::PooledContext> FeatureService::TakeContext(
    const std::shared_ptr<const engine::CatalogStore>& catalog) {
  std::vector<std::unique_ptr<PooledContext>> stale;  // destroyed outside the lock
  {
    MutexLock lock(&contexts_mu_);
    TakeIdleContexts(clock_->MonotonicNanos(), &stale);
    if (!contexts_.empty() && contexts_.back()->catalog == catalog) {
      std::unique_ptr<PooledContext> c = std::move(contexts_.back());
      contexts_.pop_back();
      return c;
    }
  }
  auto c = std::make_unique<PooledContext>();
  c->catalog = catalog;
  return c;
}

void FeatureService::ReturnContext(std::unique_ptr<PooledContext> context) {
  const std::shared_ptr<const engine::CatalogStore> current = catalog();
  std::vector<std::unique_ptr<PooledContext>> stale;  // destroyed outside the lock
  stale.push_back(std::move(context));
  MutexLock lock(&contexts_mu_);
  const int64_t now = clock_->MonotonicNanos();
  TakeIdleContexts(now, &stale);
  // A context of a replaced catalog is dropped (its views may go with the catalog).
  if (stale.front()->catalog == current && contexts_.size() < kMaxPooledContexts) {
    stale.front()->returned_ns = now;
    contexts_.push_back(std::move(stale.front()));
  }
}

void FeatureService::ReleaseIdleContexts() {
  std::vector<std::unique_ptr<PooledContext>> stale;  // destroyed outside the lock
  MutexLock lock(&contexts_mu_);
  TakeIdleContexts(clock_->MonotonicNanos(), &stale);
}

absl::Status FeatureService::ReadKeys(const std::shared_ptr<const engine::CatalogStore>& catalog,
                                      const engine::ViewRuntime& view,
                                      const std::vector<std::string>& keys,
                                      std::string_view windows, const std::string* at, bool meta,
                                      std::string* out) {
  int64_t at_ms = clock_->NowMillis();
  if (at != nullptr) {
    absl::StatusOr<int64_t> parsed = ParseTimePoint(*at);
    if (!parsed.ok()) return InvalidArgument("parameter 'at': {}", StatusMessage(parsed.status()));
    at_ms = *parsed;
  }
  absl::StatusOr<std::vector<engine::WindowSpec>> specs =
      engine::ParseWindows(windows, view.def->tile_ms);
  if (!specs.ok()) {
    return InvalidArgument("parameter 'windows': {}", StatusMessage(specs.status()));
  }
  std::optional<engine::FeatureResult::Meta> result_meta;
  if (meta) {
    // Before the reads: every row the watermark speaks for is in what they then read.
    TESSERA_ASSIGN_OR_RETURN(std::optional<int64_t> watermark, WatermarkOf(view));
    result_meta = engine::FeatureResult::Meta{.watermark_ms = watermark};
  }
  auto open = open_tiles_.find(&view);
  engine::FeatureReader reader(&view, store_,
                               engine::FeatureReaderOptions{
                                   .open_tiles = open == open_tiles_.end() ? nullptr : open->second,
                                   .base_retention_ms = base_retention_ms_.load(),
                                   .clock = clock_,
                               });
  // The request's keys share one store cursor, which sees every write finished before now.
  std::unique_ptr<PooledContext> pooled = TakeContext(catalog);
  pooled->context.Refresh();
  absl::Cleanup give_back = [&] { ReturnContext(std::move(pooled)); };
  for (size_t i = 0; i < keys.size(); ++i) {
    const int64_t t0 = clock_->MonotonicNanos();
    absl::StatusOr<engine::FeatureResult> r = reader.Read(keys[i], at_ms, *specs, &pooled->context);
    read_seconds_->Observe(static_cast<double>(clock_->MonotonicNanos() - t0) / 1e9);
    if (!r.ok()) return r.status();
    tiles_per_request_->Observe(static_cast<double>(r->tiles_read));
    if (i > 0) out->push_back(',');
    r->meta = result_meta;
    r->AppendJson(*view.def, out);
    if (out->size() > options_.max_response_bytes) {
      return InvalidArgument(
          "the answer passed {} MiB after {} of {} keys: ask for fewer keys or windows at a time",
          options_.max_response_bytes >> 20, i + 1, keys.size());
    }
  }
  return absl::OkStatus();
}

HttpResponse FeatureService::GetFeatures(const HttpRequest& req) {
  const std::string* view_name = req.Param("view");
  const std::string* key = req.Param("key");
  const std::shared_ptr<const engine::CatalogStore> catalog = this->catalog();
  const engine::ViewRuntime* view = catalog->FindView(*view_name);
  if (view == nullptr)
    return HttpResponse::Error(404, fmt::format("no view named '{}'", *view_name));
  const std::string* windows = req.Query("windows");
  bool meta = false;
  if (const std::string* m = req.Query("meta")) {
    if (*m == "true") {
      meta = true;
    } else if (*m != "false") {
      return HttpResponse::Error(
          400, fmt::format("parameter 'meta': expected true (add the answer's newest event time "
                           "and the watermark) or false (the default), got '{}'",
                           *m));
    }
  }
  absl::StatusOr<std::string> stored = engine::StoredKeyFromText(*key, view->def->keys.size());
  if (!stored.ok()) return HttpResponse::Error(400, StatusMessage(stored.status()));
  std::string out;
  absl::Status s =
      ReadKeys(catalog, *view, {*std::move(stored)}, windows ? *windows : options_.default_windows,
               req.Query("at"), meta, &out);
  if (!s.ok()) return FromStatus(s);
  return HttpResponse::Json(200, std::move(out));
}

HttpResponse FeatureService::BatchGet(const HttpRequest& req) {
  nlohmann::json body = nlohmann::json::parse(req.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded() || !body.is_object()) {
    return HttpResponse::Error(400,
                               "body: expected a JSON object like "
                               "{\"view\":\"v\",\"keys\":[\"k\"],\"windows\":[\"1h\"]}");
  }
  for (const auto& [field, value] : body.items()) {
    if (field != "view" && field != "keys" && field != "windows" && field != "at" &&
        field != "meta") {
      return HttpResponse::Error(
          400, fmt::format("unknown field '{}': expected view, keys, windows, at or meta",
                           field.size() > 64 ? field.substr(0, 64) + "…" : field));
    }
  }
  if (!body.contains("view") || !body["view"].is_string()) {
    return HttpResponse::Error(400, "field 'view': expected a string");
  }
  const std::string view_name = body["view"].get<std::string>();
  const std::shared_ptr<const engine::CatalogStore> catalog = this->catalog();
  const engine::ViewRuntime* view = catalog->FindView(view_name);
  if (view == nullptr)
    return HttpResponse::Error(404, fmt::format("no view named '{}'", view_name));
  if (!body.contains("keys") || !body["keys"].is_array()) {
    return HttpResponse::Error(400,
                               "field 'keys': expected an array of keys (strings in text form, "
                               "or arrays of the parts of composite keys)");
  }
  if (body["keys"].size() > options_.max_batch_keys) {
    return HttpResponse::Error(400, fmt::format("field 'keys': {} keys, at most {} per request",
                                                body["keys"].size(), options_.max_batch_keys));
  }
  const size_t num_parts = view->def->keys.size();
  std::vector<std::string> keys;
  for (size_t i = 0; i < body["keys"].size(); ++i) {
    const auto& k = body["keys"][i];
    absl::StatusOr<std::string> stored;
    if (k.is_string()) {
      stored = engine::StoredKeyFromText(k.get<std::string>(), num_parts);
    } else if (k.is_array() &&
               std::all_of(k.begin(), k.end(), [](const auto& part) { return part.is_string(); })) {
      stored = engine::StoredKeyFromParts(k.get<std::vector<std::string>>(), num_parts);
    } else {
      stored = InvalidArgument("expected a string or an array of strings");
    }
    if (!stored.ok()) {
      return HttpResponse::Error(
          400, fmt::format("field 'keys'[{}]: {}", i, StatusMessage(stored.status())));
    }
    keys.push_back(*std::move(stored));
  }
  std::string windows = options_.default_windows;
  if (body.contains("windows")) {
    const auto& w = body["windows"];
    if (w.is_string()) {
      windows = w.get<std::string>();
    } else if (w.is_array()) {
      windows.clear();
      for (const auto& item : w) {
        if (!item.is_string()) {
          return HttpResponse::Error(400, "field 'windows': expected strings like \"1h\"");
        }
        if (!windows.empty()) windows.push_back(',');
        windows += item.get<std::string>();
      }
    } else {
      return HttpResponse::Error(400, "field 'windows': expected an array like [\"1h\",\"1d\"]");
    }
  }
  std::string at;
  const std::string* at_ptr = nullptr;
  if (body.contains("at")) {
    const auto& a = body["at"];
    if (a.is_string()) {
      at = a.get<std::string>();
    } else if (a.is_number_unsigned()) {
      // Above INT64_MAX get<int64_t>() would wrap; the text is judged like the GET parameter's.
      at = std::to_string(a.get<uint64_t>());
    } else if (a.is_number_integer()) {
      at = std::to_string(a.get<int64_t>());
    } else {
      return HttpResponse::Error(400, "field 'at': expected RFC 3339 or epoch milliseconds");
    }
    at_ptr = &at;
  }
  bool meta = false;
  if (body.contains("meta")) {
    if (!body["meta"].is_boolean()) {
      return HttpResponse::Error(
          400,
          "field 'meta': expected true (add each answer's newest event time and the watermark) "
          "or false (the default)");
    }
    meta = body["meta"].get<bool>();
  }
  std::string out = "{\"results\":[";
  absl::Status s = ReadKeys(catalog, *view, keys, windows, at_ptr, meta, &out);
  if (!s.ok()) return FromStatus(s);
  out += "]}";
  return HttpResponse::Json(200, std::move(out));
}

HttpResponse FeatureService::ListViews() const {
  const std::shared_ptr<const engine::CatalogStore> catalog = this->catalog();
  nlohmann::json views = nlohmann::json::array();
  for (const auto& v : catalog->views()) {
    nlohmann::json features = nlohmann::json::array();
    for (const auto& f : v->def->features) {
      features.push_back({{"name", f.name}, {"type", std::string(DataTypeName(f.type))}});
    }
    views.push_back({{"name", v->def->name},
                     {"source", v->def->source},
                     {"tile", FormatDurationMillis(v->def->tile_ms)},
                     {"keys", v->def->key_names},
                     {"features", features},
                     {"sql", v->def->sql},
                     {"plan", sql::Explain(*v->def)}});
  }
  nlohmann::json sources = nlohmann::json::array();
  for (const auto& s : catalog->catalog().sources) {
    nlohmann::json cols = nlohmann::json::array();
    for (const auto& c : s.columns) {
      cols.push_back({{"name", c.name}, {"type", std::string(DataTypeName(c.type))}});
    }
    // WITH options as written, except librdkafka's pass-through properties (they may hold
    // keys and passwords): of those only the two every Kafka source declares are shown.
    nlohmann::json options = nlohmann::json::object();
    for (const auto& [key, value] : s.options) {
      const bool shown = !key.starts_with("properties.") || key == "properties.bootstrap.servers" ||
                         key == "properties.group.id";
      options[key] = shown ? value : "(hidden)";
    }
    sources.push_back({{"name", s.name},
                       {"columns", cols},
                       {"options", options},
                       {"lateness", FormatDurationMillis(s.lateness_ms)},
                       {"ingest", ingest_.count(ToLowerAscii(s.name)) > 0}});
  }
  // The catalog's SQL came from files; replace (never throw on) any invalid UTF-8 in it.
  return HttpResponse::Json(200,
                            nlohmann::json({{"views", views}, {"sources", sources}})
                                .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

void FeatureService::Ingest(HttpRequest&& req, Responder respond) {
  const std::string source = *req.Param("source");
  auto it = ingest_.find(ToLowerAscii(source));
  if (it == ingest_.end()) {
    respond(HttpResponse::Error(
        404, fmt::format("no source '{}' accepts HTTP ingest (needs connector = 'http')", source)));
    return;
  }
  IngestTarget* target = &it->second;
  std::string batch_id;
  if (const std::string* b = req.Query("batch_id")) batch_id = *b;
  source::IngestWait wait = source::IngestWait::kVisible;
  if (const std::string* w = req.Query("wait")) {
    if (*w == "durable") {
      wait = source::IngestWait::kDurable;
    } else if (*w != "visible") {
      respond(HttpResponse::Error(
          400,
          "parameter 'wait': expected 'visible' (the default: answer once the rows can be "
          "read) or 'durable' (answer once they are on disk)"));
      return;
    }
  }
  auto busy = [&](const std::string& reason) {
    ingest_refused_->Inc();
    HttpResponse r = HttpResponse::Error(503, reason + "; nothing was appended, retry later");
    r.headers.emplace_back("Retry-After", "1");
    respond(std::move(r));
  };
  if (std::string reason = target->connector->OverloadReason(); !reason.empty()) {
    return busy(reason);
  }
  const size_t bytes = req.body.size();
  size_t pending = 0;
  // `respond` is copied into the task: if the pool refuses it, the original still answers.
  switch (ingest_pool_->PostWithin(
      &pending_ingest_, bytes,
      [this, target, wait, batch_id = std::move(batch_id), body = std::move(req.body), respond] {
        RunIngest(target, batch_id, body, wait, respond);
      },
      &pending)) {
    case TaskPool::Posted::kYes:
      return;
    case TaskPool::Posted::kOverBudget:
      return busy(fmt::format("server busy: {} MiB of ingest bodies are queued (limit {} MiB)",
                              pending >> 20, options_.max_pending_ingest_bytes >> 20));
    case TaskPool::Posted::kStopped:
      return respond(HttpResponse::Error(503, "shutting down: not accepting events"));
  }
}

void FeatureService::RunIngest(IngestTarget* target, const std::string& batch_id,
                               const std::string& body, source::IngestWait wait,
                               const Responder& respond) {
  absl::StatusOr<source::IngestResult> r = target->connector->Ingest(batch_id, body, wait);
  if (!r.ok()) {
    respond(FromStatus(r.status()));
    return;
  }
  if (!r->duplicate) {
    target->accepted->Inc(r->accepted);
    target->rejected->Inc(r->rejected);
    target->late->Inc(r->late);
  }
  respond(HttpResponse::Json(200, r->ToJson()));
}

}  // namespace tessera::serve
