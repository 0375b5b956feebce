// The `tessera` command line: backfill, get, explain, preview, run, serve, store, training-set,
// ws.
#include <absl/strings/str_split.h>
#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/errors.h"
#include "common/file_util.h"
#include "common/json_string.h"
#include "common/net_util.h"
#include "common/signals.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "common/time_util.h"
#include "engine/backfill.h"
#include "engine/catalog_store.h"
#include "engine/entity_key.h"
#include "engine/feature_reader.h"
#include "engine/live_runtime.h"
#include "engine/retention.h"
#include "engine/watermark.h"
#include "offline/preview.h"
#include "offline/training_set.h"
#include "serve/console.h"
#include "serve/db_follower.h"
#include "serve/feature_service.h"
#include "serve/http_server.h"
#include "source/connector_options.h"
#include "sql/plan.h"
#include "store/bigtable/bigtable_tile_store.h"
#include "store/rocksdb/rocksdb_tile_store.h"
#include "workspaces/cli/ws_cli.h"

namespace tessera {
namespace {

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (!text.ok()) return NotFound("cannot read '{}': {}", path, StatusMessage(text.status()));
  return text;
}

int Fail(const absl::Status& s) {
  std::string msg = StatusMessage(s);
  fmt::print(stderr, "tessera: error: {}\n", msg);
  return s.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
}

// Renders backfill progress on one terminal line.
class ProgressLine {
 public:
  explicit ProgressLine(const Clock* clock) : clock_(clock), start_ns_(clock->MonotonicNanos()) {}
  void Update(int64_t rows, uint64_t bytes, uint64_t total_bytes, bool flushing) {
    int64_t now = clock_->MonotonicNanos();
    if (!flushing && now - last_ns_ < 250'000'000) return;
    last_ns_ = now;
    double secs = static_cast<double>(now - start_ns_) / 1e9;
    double rate = secs > 0 ? rows / secs : 0;
    std::string eta = "?";
    if (total_bytes > 0 && bytes > 0 && bytes <= total_bytes && secs > 0) {
      double remaining = secs * static_cast<double>(total_bytes - bytes) / bytes;
      eta = fmt::format("{:.0f}s", remaining);
    }
    fmt::print(stderr, "\r{} rows  {:.0f} rows/s  {:.1f} MB  {}   ", rows, rate, bytes / 1e6,
               flushing ? "writing tiles…" : "ETA " + eta);
    std::fflush(stderr);
    shown_ = true;
  }
  void Done() {
    if (shown_) fmt::print(stderr, "\n");
  }

 private:
  const Clock* clock_;
  int64_t start_ns_;
  int64_t last_ns_ = 0;
  bool shown_ = false;
};

// An opened store and its catalog.
struct OpenDb {
  std::unique_ptr<store::TileStore> store;
  store::RocksDbTileStore* rocksdb = nullptr;  // when the store is a RocksDB directory
  std::unique_ptr<engine::CatalogStore> catalog;
};

bool IsBigtableUri(std::string_view location) { return location.starts_with("bigtable://"); }

// Opens the Bigtable store at `uri`; with `create_if_missing`, a table that does not exist is
// first created as `tessera store init` would (no retention), like `--db` creates a directory.
// An existing table is never changed.
absl::StatusOr<std::unique_ptr<store::TileStore>> OpenBigtable(const std::string& uri,
                                                               bool create_if_missing) {
  absl::StatusOr<std::unique_ptr<store::BigtableTileStore>> opened = store::OpenBigtableStore(uri);
  if (opened.status().code() == absl::StatusCode::kNotFound && create_if_missing) {
    TESSERA_RETURN_IF_ERROR(
        store::CreateBigtableTable(uri, store::BigtableOptions{}, /*base_retention_ms=*/0)
            .status());
    opened = store::OpenBigtableStore(uri);
  }
  if (!opened.ok()) return opened.status();
  return std::unique_ptr<store::TileStore>(std::move(*opened));
}

// Opens the store at `location` (a RocksDB directory, or bigtable://PROJECT/INSTANCE/TABLE) and
// loads its catalog; with a `sql_path`, registers that SQL first. `bulk` (a backfill) skips
// RocksDB's WAL (backfills sync at every flush instead), writes its bulk SST files uncompressed
// (compaction compresses them later), and keeps a small block cache: a backfill reads a stored
// tile back at most once per flush, so a cache would mostly hold memory.
absl::StatusOr<OpenDb> OpenDbWithCatalog(const std::string& location, const std::string& sql_path,
                                         bool read_only, bool bulk) {
  std::string sql;
  if (!sql_path.empty()) {
    TESSERA_ASSIGN_OR_RETURN(sql, ReadFile(sql_path));
  }
  OpenDb db;
  if (IsBigtableUri(location)) {
    TESSERA_ASSIGN_OR_RETURN(db.store, OpenBigtable(location, /*create_if_missing=*/!read_only));
  } else {
    store::RocksDbOptions opts;
    opts.read_only = read_only;
    opts.create_if_missing = !read_only;
    opts.disable_wal = bulk;
    if (bulk) {
      opts.block_cache_bytes = size_t{32} << 20;
      opts.compress_bulk_ingest = false;
    }
    TESSERA_ASSIGN_OR_RETURN(std::unique_ptr<store::RocksDbTileStore> rocksdb,
                             store::RocksDbTileStore::Open(location, opts));
    db.rocksdb = rocksdb.get();
    db.store = std::move(rocksdb);
  }
  TESSERA_ASSIGN_OR_RETURN(db.catalog, engine::CatalogStore::Load(db.store.get()));
  if (!sql_path.empty()) {
    absl::StatusOr<std::vector<std::string>> registered = db.catalog->Register(sql);
    if (!registered.ok()) {
      return absl::Status(registered.status().code(),
                          fmt::format("{}: {}", sql_path, StatusMessage(registered.status())));
    }
  }
  return db;
}

int RunBackfillCommand(const std::string& sql_path, const std::vector<std::string>& inputs,
                       const std::string& db, engine::BackfillOptions options, bool compact) {
  // Before the DB is opened (or created): a typo in a path must not leave an empty DB behind.
  if (absl::Status s = engine::CheckBackfillInputs(inputs); !s.ok()) return Fail(s);
  if (compact && IsBigtableUri(db)) {
    return Fail(InvalidArgument("--compact applies to a RocksDB store only, not {}", db));
  }
  auto opened = OpenDbWithCatalog(db, sql_path, /*read_only=*/false, /*bulk=*/true);
  if (!opened.ok()) return Fail(opened.status());
  store::TileStore* store = opened->store.get();
  engine::CatalogStore* catalog = opened->catalog.get();
  options.inputs = inputs;
  ProgressLine progress(SystemClock::Default());
  if (isatty(STDERR_FILENO)) {
    options.progress = [&](int64_t rows, uint64_t bytes, uint64_t total, bool flushing) {
      progress.Update(rows, bytes, total, flushing);
    };
  }
  auto summary = engine::RunBackfill(store, catalog, options);
  progress.Done();
  if (!summary.ok()) return Fail(summary.status());
  if (compact && opened->rocksdb != nullptr) {
    if (absl::Status s = opened->rocksdb->CompactAll(); !s.ok()) return Fail(s);
  }
  fmt::print("{}\n", summary->ToJson());
  return 0;
}

int RunGetCommand(const std::string& db, const std::string& view_name,
                  const std::vector<std::string>& keys, const std::string& at,
                  const std::string& windows, bool timing, bool meta) {
  auto opened = OpenDbWithCatalog(db, "", /*read_only=*/true, /*bulk=*/false);
  if (!opened.ok()) return Fail(opened.status());
  store::TileStore* store = opened->store.get();
  engine::CatalogStore* catalog = opened->catalog.get();
  const engine::ViewRuntime* view = catalog->FindView(view_name);
  if (view == nullptr) {
    std::string known;
    for (const auto& v : catalog->views()) known += (known.empty() ? "" : ", ") + v->def->name;
    return Fail(NotFound("no view named '{}' in {} (views: {})", view_name, db,
                         known.empty() ? "none" : known));
  }
  int64_t at_ms = SystemClock::Default()->NowMillis();
  if (!at.empty()) {
    auto parsed = ParseTimePoint(at);
    if (!parsed.ok()) return Fail(Annotate(parsed.status(), "--at"));
    at_ms = *parsed;
  }
  auto specs = engine::ParseWindows(windows, view->def->tile_ms);
  if (!specs.ok()) return Fail(Annotate(specs.status(), "--windows"));
  auto retention = engine::LoadBaseRetention(store);
  if (!retention.ok()) return Fail(retention.status());
  engine::FeatureReader reader(view, store,
                               engine::FeatureReaderOptions{.base_retention_ms = *retention});
  // --meta: the watermark the DB holds for the view's source (what the writer committed).
  std::optional<engine::FeatureResult::Meta> result_meta;
  if (meta) {
    auto watermark =
        engine::Watermark::LoadCommitted(store, view->source->name, view->source->lateness_ms);
    if (!watermark.ok()) return Fail(watermark.status());
    result_meta.emplace();
    if (*watermark != engine::Watermark::kNone) result_meta->watermark_ms = *watermark;
  }
  std::string out;
  const Clock* clock = SystemClock::Default();
  for (const std::string& key_text : keys) {
    auto stored = engine::StoredKeyFromText(key_text, view->def->keys.size());
    if (!stored.ok()) return Fail(Annotate(stored.status(), "--key"));
    const std::string& key = *stored;
    int64_t t0 = clock->MonotonicNanos();
    auto result = reader.Read(key, at_ms, *specs);
    int64_t first_ns = clock->MonotonicNanos() - t0;
    if (!result.ok()) return Fail(result.status());
    if (timing) {
      // Repeat to show the steady state (block cache warm) next to the first, cold read.
      std::vector<int64_t> ns;
      for (int i = 0; i < 200; ++i) {
        int64_t t = clock->MonotonicNanos();
        auto again = reader.Read(key, at_ms, *specs);
        ns.push_back(clock->MonotonicNanos() - t);
      }
      std::sort(ns.begin(), ns.end());
      fmt::print(stderr,
                 "timing key={} windows={} tiles_read={} first={:.1f}us p50={:.1f}us "
                 "p99={:.1f}us\n",
                 key_text, specs->size(), result->tiles_read, first_ns / 1e3,
                 ns[ns.size() / 2] / 1e3, ns[ns.size() * 99 / 100] / 1e3);
    }
    result->meta = result_meta;
    result->AppendJson(*view->def, &out);
    out += '\n';
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

// The catalog of a SQL file, its errors prefixed with the path.
absl::StatusOr<sql::Catalog> LoadSqlFile(const std::string& sql_path) {
  TESSERA_ASSIGN_OR_RETURN(std::string sql, ReadFile(sql_path));
  auto catalog = sql::ParseCatalog(sql);
  if (!catalog.ok()) {
    return absl::Status(catalog.status().code(),
                        fmt::format("{}: {}", sql_path, StatusMessage(catalog.status())));
  }
  return catalog;
}

int RunExplainCommand(const std::string& sql_path, const std::string& db) {
  if (!sql_path.empty()) {
    auto catalog = LoadSqlFile(sql_path);
    if (!catalog.ok()) return Fail(catalog.status());
    for (const auto& s : catalog->sources) {
      absl::Status valid = source::ValidateSourceOptions(s, source::OptionCheck::kDefinition);
      if (!valid.ok()) {
        return Fail(
            absl::Status(valid.code(), fmt::format("{}: {}", sql_path, StatusMessage(valid))));
      }
    }
    for (const auto& s : catalog->sources) fmt::print("{}\n", sql::Explain(s));
    for (const auto& v : catalog->views) fmt::print("{}\n", sql::Explain(v));
    return 0;
  }
  auto opened = OpenDbWithCatalog(db, "", /*read_only=*/true, /*bulk=*/false);
  if (!opened.ok()) return Fail(opened.status());
  engine::CatalogStore* catalog = opened->catalog.get();
  for (const auto& s : catalog->catalog().sources) fmt::print("{}\n", sql::Explain(s));
  for (const auto& v : catalog->catalog().views) fmt::print("{}\n", sql::Explain(v));
  return 0;
}

int RunPreviewCommand(const std::string& sql_path, const std::string& at,
                      offline::PreviewOptions options) {
  auto catalog = LoadSqlFile(sql_path);
  if (!catalog.ok()) return Fail(catalog.status());
  if (!at.empty()) {
    auto ms = ParseTimePoint(at);
    if (!ms.ok()) return Fail(InvalidArgument("--at: {}", StatusMessage(ms.status())));
    options.at = *ms;
  }
  auto report = offline::BuildPreview(*catalog, options);
  if (!report.ok()) return Fail(report.status());
  fmt::print("{}", *report);
  return 0;
}

int RunTrainingSetCommand(const std::string& sql_path, offline::TrainingSetOptions options) {
  auto catalog = LoadSqlFile(sql_path);
  if (!catalog.ok()) return Fail(catalog.status());
  auto summary = offline::BuildTrainingSet(*catalog, options);
  if (!summary.ok()) return Fail(summary.status());
  fmt::print("{}\n", summary->ToJson());
  return 0;
}

// --http: HOST:PORT, :PORT (all interfaces) or PORT (loopback).
absl::StatusOr<serve::HttpServerOptions> ParseListenAddress(const std::string& addr) {
  absl::StatusOr<HostPort> parsed = ParseHostPort(addr);
  if (!parsed.ok()) {
    return InvalidArgument("--http '{}': expected HOST:PORT, :PORT or PORT (0 = any free port)",
                           addr);
  }
  serve::HttpServerOptions o;
  o.address = parsed->host;
  o.port = parsed->port;
  return o;
}

// Serves HTTP until SIGINT/SIGTERM. `runtime` (optional) ingests while serving.
int ServeUntilSignal(const sigset_t& signals, serve::HttpServer* server,
                     serve::FeatureService* service, engine::LiveRuntime* runtime) {
  absl::Status started = server->Start();
  if (!started.ok()) return Fail(started);
  service->set_ready(true);
  fmt::print("{{\"listening\":\"http://{}:{}\"}}\n", "127.0.0.1", server->port());
  std::fflush(stdout);
  const int sig = WaitForSignal(signals);
  fmt::print(stderr, "tessera: {} received, flushing and stopping\n", SignalName(sig));
  service->set_ready(false);
  server->Stop();
  service->Shutdown();
  if (runtime != nullptr) {
    absl::Status s = runtime->Stop();
    if (!s.ok()) return Fail(s);
  }
  return 0;
}

int RunLiveCommand(const std::string& sql_path, const std::string& location,
                   const std::string& log_db, const std::string& http, int64_t flush_interval_ms,
                   int threads, size_t memory_mb) {
  sigset_t signals = BlockStopSignals();
  auto listen = ParseListenAddress(http);
  if (!listen.ok()) return Fail(listen.status());
  auto opened = OpenDbWithCatalog(location, sql_path, /*read_only=*/false, /*bulk=*/false);
  if (!opened.ok()) return Fail(opened.status());
  store::TileStore* store = opened->store.get();
  engine::CatalogStore* catalog = opened->catalog.get();
  // The http connector's durable log: the RocksDB store itself, or beside a Bigtable store a
  // local DB of its own (--db).
  store::EventLog* log = opened->rocksdb;
  std::unique_ptr<store::RocksDbTileStore> log_store;
  if (log == nullptr && !log_db.empty()) {
    auto local = store::RocksDbTileStore::Open(log_db, store::RocksDbOptions{});
    if (!local.ok()) return Fail(Annotate(local.status(), "--db"));
    log_store = std::move(*local);
    log = log_store.get();
  }
  MetricsRegistry metrics;
  engine::LiveOptions lo;
  lo.flush_interval_ms = flush_interval_ms;
  // A pipeline that fails (e.g. its source lost its consumer, or another worker now owns its
  // partition) stops the process, which then exits with the error instead of serving a source
  // that no longer ingests; its supervisor restarts it.
  lo.on_pipeline_failure = [](const absl::Status& s) {
    fmt::print(stderr, "tessera: error: a pipeline stopped: {}\n", StatusMessage(s));
    ::kill(::getpid(), SIGTERM);
  };
  lo.threads = threads;
  lo.memory_budget_bytes = memory_mb << 20;
  lo.metrics = &metrics;
  auto runtime = engine::LiveRuntime::Create(catalog, store, log, lo);
  if (!runtime.ok()) return Fail(runtime.status());
  serve::FeatureService service(catalog, store, &metrics, SystemClock::Default(),
                                serve::FeatureService::Options{});
  auto retention = engine::LoadBaseRetention(store);
  if (!retention.ok()) return Fail(retention.status());
  service.set_base_retention_ms(*retention);
  for (const auto& v : catalog->views()) {
    service.SetOpenTiles(v.get(), (*runtime)->OpenTilesFor(v.get()));
    service.SetWatermark(v.get(), (*runtime)->WatermarkFor(v.get()));
  }
  for (const auto& connector : (*runtime)->http_connectors()) service.AddIngest(connector);
  serve::Console console(&metrics, SystemClock::Default(), serve::Console::Options{});
  for (auto& [source, rejects] : (*runtime)->recent_rejects()) console.AddRejects(source, rejects);
  serve::HttpServer server(*listen);
  service.RegisterRoutes(&server);
  console.RegisterRoutes(&server);
  absl::Status started = (*runtime)->Start();
  if (!started.ok()) return Fail(started);
  console.Start();
  return ServeUntilSignal(signals, &server, &service, runtime->get());
}

// A directory that exists for the life of the process (removed on destruction).
class ScopedTempDir {
 public:
  static absl::StatusOr<std::unique_ptr<ScopedTempDir>> Create(std::string_view prefix) {
    std::error_code ec;
    std::filesystem::path base = std::filesystem::temp_directory_path(ec);
    if (ec) base = "/tmp";
    std::string pattern = (base / (std::string(prefix) + "XXXXXX")).string();
    if (::mkdtemp(pattern.data()) == nullptr) {
      return Internal("cannot create a temporary directory {}: {}", pattern, std::strerror(errno));
    }
    return std::unique_ptr<ScopedTempDir>(new ScopedTempDir(std::move(pattern)));
  }
  ~ScopedTempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  explicit ScopedTempDir(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

// `tessera serve`: for RocksDB, a secondary instance of the DB that follows its writer (`tessera
// run`, if any) by catching up every `refresh_interval_ms`; see serve::DbFollower for the
// staleness bound. For Bigtable, reads of the committed slots (docs/scale_out.md); the
// catalog is followed at the same interval either way.
int RunServeCommand(const std::string& location, const std::string& http,
                    const std::string& secondary_dir, int64_t refresh_interval_ms,
                    int http_threads) {
  sigset_t signals = BlockStopSignals();
  auto listen = ParseListenAddress(http);
  if (!listen.ok()) return Fail(listen.status());
  std::unique_ptr<ScopedTempDir> temp_secondary;
  std::unique_ptr<store::TileStore> owned;
  std::function<absl::Status()> catch_up;
  if (IsBigtableUri(location)) {
    // Every read sees what the writers committed (through the store's short commit-state
    // cache): there is nothing to catch up with, but the catalog is still followed.
    // Created when missing, so replicas may start before the workers.
    auto opened = OpenBigtable(location, /*create_if_missing=*/true);
    if (!opened.ok()) return Fail(opened.status());
    owned = std::move(*opened);
    catch_up = [] { return absl::OkStatus(); };
  } else {
    store::RocksDbOptions opts;
    opts.create_if_missing = false;
    if (secondary_dir.empty()) {
      auto created = ScopedTempDir::Create("tessera-serve-");
      if (!created.ok()) return Fail(created.status());
      temp_secondary = std::move(*created);
      opts.secondary_dir = temp_secondary->path();
    } else {
      opts.secondary_dir = secondary_dir;
    }
    auto opened = store::RocksDbTileStore::Open(location, opts);
    if (!opened.ok()) return Fail(opened.status());
    store::RocksDbTileStore* rocksdb = opened->get();
    catch_up = [rocksdb] { return rocksdb->CatchUp(); };
    // Before listening: a DB that fits the block cache is served warm from the first request
    // (the 140 MB high-cardinality DB of docs/PERFORMANCE.md: ~0.4 s here, instead of ~4 s of
    // slower reads while each loads its own blocks).
    absl::StatusOr<uint64_t> warmed = rocksdb->WarmBlockCache();
    if (!warmed.ok()) return Fail(warmed.status());
    owned = std::move(*opened);
  }
  store::TileStore* store = owned.get();
  auto catalog = engine::CatalogStore::Load(store);
  if (!catalog.ok()) return Fail(catalog.status());
  MetricsRegistry metrics;
  serve::FeatureService::Options service_options;
  service_options.read_only = true;
  // I/O threads answer single-key GETs inline; batchGets, which take ~100× longer, run on a
  // pool so that GETs never wait behind them. A core is left to the pool, the follower and
  // wrk-like clients on the same host: on two cores one I/O thread gave more GETs/s than two,
  // with a p99 below 0.5 ms instead of up to 2 ms (docs/PERFORMANCE.md). Bigtable reads block
  // on RPCs, so there every core gets a thread, and at least two.
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (http_threads > 0) {
    listen->threads = http_threads;
  } else {
    listen->threads = IsBigtableUri(location) ? std::max(2, cores) : std::max(1, cores - 1);
  }
  service_options.read_threads = std::max(2, cores);
  serve::FeatureService service(catalog->get(), store, &metrics, SystemClock::Default(),
                                service_options);
  serve::DbFollower::Options follow;
  follow.interval = std::chrono::milliseconds(refresh_interval_ms);
  follow.stale_after = std::max(std::chrono::milliseconds(10'000), 20 * follow.interval);
  serve::DbFollower follower(catch_up, store, &service, &metrics, SystemClock::Default(), follow);
  absl::Status init = follower.Init();
  if (!init.ok()) return Fail(init);
  serve::Console console(&metrics, SystemClock::Default(), serve::Console::Options{});
  serve::HttpServer server(*listen);
  service.RegisterRoutes(&server);
  console.RegisterRoutes(&server);
  follower.Start();
  console.Start();
  int rc = ServeUntilSignal(signals, &server, &service, nullptr);
  console.Stop();
  follower.Stop();
  return rc;
}

// `tessera store init`: creates the store (a Bigtable table with its column families, or an
// empty RocksDB directory) and sets its base-tile retention (`base_retention_ms` > 0; it can be
// lowered later, never raised or removed: engine/retention.h). Idempotent.
int RunStoreInitCommand(const std::string& location, int64_t base_retention_ms) {
  if (absl::Status valid = engine::ValidateBaseRetention(base_retention_ms); !valid.ok()) {
    return Fail(Annotate(valid, "--base-retention"));
  }
  std::string out = "{\"store\":" + JsonString(location);
  if (IsBigtableUri(location)) {
    // An existing table's retention changes (or is refused) before its GC rule follows;
    // without --base-retention it keeps the retention it has.
    int64_t retention_ms = base_retention_ms;
    auto existing = store::OpenBigtableStore(location);
    if (existing.ok()) {
      if (base_retention_ms > 0) {
        absl::Status set = engine::SetBaseRetention(existing->get(), base_retention_ms);
        if (!set.ok()) return Fail(Annotate(set, "--base-retention"));
      }
      auto stored = engine::LoadBaseRetention(existing->get());
      if (!stored.ok()) return Fail(stored.status());
      retention_ms = *stored;
    } else if (existing.status().code() != absl::StatusCode::kNotFound) {
      return Fail(existing.status());
    }
    // Bigtable's GC rule ages base cells out by their tile's start; readers trust base tiles
    // from the UTC day of now - R on (engine::BaseTilesKeptFrom), so the rule keeps a day and
    // an hour more than R.
    const int64_t gc_max_age_ms =
        retention_ms > 0 ? retention_ms + kMillisPerDay + kMillisPerHour : 0;
    auto setup = store::CreateBigtableTable(location, store::BigtableOptions{}, gc_max_age_ms);
    if (!setup.ok()) return Fail(setup.status());
    std::string changes;
    for (const std::string& c : setup->changes) {
      if (!changes.empty()) changes += ',';
      AppendJsonString(c, &changes);
    }
    out +=
        fmt::format(",\"created\":{},\"changes\":[{}]", setup->created ? "true" : "false", changes);
  }
  auto opened = OpenDbWithCatalog(location, "", /*read_only=*/false, /*bulk=*/false);
  if (!opened.ok()) return Fail(opened.status());
  if (base_retention_ms > 0) {
    absl::Status set = engine::SetBaseRetention(opened->store.get(), base_retention_ms);
    if (!set.ok()) return Fail(Annotate(set, "--base-retention"));
  }
  auto retention = engine::LoadBaseRetention(opened->store.get());
  if (!retention.ok()) return Fail(retention.status());
  out += fmt::format(",\"base_retention_ms\":{}}}\n", *retention);
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

}  // namespace
}  // namespace tessera

int main(int argc, char** argv) {
  CLI::App app{
      "Tessera: near-real-time ML features from SQL feature views, and dev workspaces (ws)"};
  app.require_subcommand(1);

  std::string sql_path, db, view, at, windows = "5m,1h,6h,1d", source, dead_letter;
  std::vector<std::string> inputs, keys;
  int threads = 0;
  size_t memory_mb = 2048;

  auto* backfill = app.add_subcommand("backfill", "Replay NDJSON files into a DB's tiles");
  backfill->add_option("--sql", sql_path, "SQL file with CREATE SOURCE / FEATURE VIEW")->required();
  backfill->add_option("--input", inputs, "NDJSON input files (plain, .gz, .zst), in order")
      ->required();
  std::string store_uri;
  const std::string kStoreHelp =
      "Tile store: bigtable://PROJECT/INSTANCE/TABLE (BIGTABLE_EMULATOR_HOST is honoured) or a "
      "RocksDB directory; instead of --db";
  auto* backfill_db = backfill->add_option("--db", db, "DB directory (created if missing)");
  backfill->add_option("--store", store_uri, kStoreHelp)->excludes(backfill_db);
  backfill->add_option("--source", source, "Source the inputs belong to (if several)");
  backfill->add_option("--dead-letter", dead_letter, "Append rejected lines here as JSON");
  backfill->add_option("--threads", threads, "Worker threads (default: one per core)");
  backfill
      ->add_option("--memory-mb", memory_mb,
                   "Memory for open tiles, their flush and the merge of spill runs")
      ->capture_default_str();
  std::string max_future;
  backfill->add_option("--max-future", max_future,
                       "Reject rows whose event time is further ahead of the clock than this "
                       "duration, or 'off' (default: the source's 'max-future', else 1d)");
  size_t chunk_kb = 1024;
  backfill->add_option("--chunk-kb", chunk_kb, "Input bytes each worker decodes per round")
      ->capture_default_str();
  bool compact = false;
  backfill->add_flag("--compact", compact,
                     "RocksDB: compact the whole DB at the end (bulk-written files are "
                     "uncompressed until compacted)");

  auto* get = app.add_subcommand("get", "Read features for keys");
  auto* get_db = get->add_option("--db", db, "DB directory");
  get->add_option("--store", store_uri, kStoreHelp)->excludes(get_db);
  get->add_option("--view", view, "Feature view")->required();
  get->add_option("--key", keys,
                  "Entity key; composite keys: parts joined by '|', a '|' or '\\' inside a part "
                  "escaped by '\\' (a\\|b|c); repeatable")
      ->required();
  get->add_option("--at", at, "Time of the read: RFC 3339 or epoch ms (default: now)");
  get->add_option("--windows", windows, "Comma-separated windows")->capture_default_str();
  bool timing = false;
  get->add_flag("--timing", timing, "Print engine read latency per key to stderr");
  bool meta = false;
  get->add_flag("--meta", meta,
                "Add \"meta\":{\"newest_event_time\",\"watermark\"} to each answer: the newest "
                "row it includes and the watermark the DB holds for the view's source");

  auto* explain = app.add_subcommand("explain", "Print the bound plan of sources and views");
  auto* explain_sql = explain->add_option("--sql", sql_path, "SQL file");
  auto* explain_db = explain->add_option("--db", db, "DB directory (its stored catalog)");
  auto* explain_store = explain->add_option("--store", store_uri, kStoreHelp);
  explain_sql->excludes(explain_db);
  explain_sql->excludes(explain_store);
  explain_db->excludes(explain_store);

  std::string http = "127.0.0.1:8080";
  std::string flush_interval = "1s";
  auto* run = app.add_subcommand("run", "Ingest live sources and serve features over HTTP");
  run->add_option("--sql", sql_path, "SQL file with CREATE SOURCE / FEATURE VIEW")->required();
  run->add_option("--db", db,
                  "DB directory (created if missing); with --store bigtable://…, a local DB "
                  "for the http connector's log only");
  run->add_option("--store", store_uri, kStoreHelp);
  run->add_option("--http", http, "Listen address HOST:PORT (port 0 = any free port)")
      ->capture_default_str();
  run->add_option("--flush-interval", flush_interval, "How often open tiles are flushed")
      ->capture_default_str();
  run->add_option("--threads", threads, "Worker threads per source (default: one per core)");
  size_t run_memory_mb = 1024;
  run->add_option("--memory-mb", run_memory_mb,
                  "Unflushed-tile memory per source (sketches included) before an early flush")
      ->capture_default_str();
  auto* serve_cmd = app.add_subcommand("serve", "Serve features of a DB over HTTP (read-only)");
  auto* serve_db = serve_cmd->add_option("--db", db, "DB directory");
  serve_cmd->add_option("--store", store_uri, kStoreHelp)->excludes(serve_db);
  serve_cmd->add_option("--http", http, "Listen address HOST:PORT")->capture_default_str();
  std::string secondary_dir, refresh_interval = "500ms";
  serve_cmd->add_option("--secondary-dir", secondary_dir,
                        "Directory for this server's RocksDB secondary instance (its info logs; "
                        "one per serve process; default: a temporary directory)");
  serve_cmd
      ->add_option("--refresh-interval", refresh_interval,
                   "How often to catch up with the DB's writer (`tessera run`); answers lag "
                   "the writer by its --flush-interval plus this")
      ->capture_default_str();
  int http_threads = 0;
  serve_cmd
      ->add_option("--http-threads", http_threads,
                   "HTTP I/O threads, which answer single-key reads inline (default: one per "
                   "core but one, at least one, for a RocksDB DB; one per core, at least two, "
                   "for Bigtable, whose reads wait on RPCs; at most 256)")
      ->check(CLI::Range(0, 256));

  auto* store_cmd = app.add_subcommand("store", "Manage a tile store");
  store_cmd->require_subcommand(1);
  auto* store_init = store_cmd->add_subcommand(
      "init", "Create the store: a Bigtable table with its column families, or a RocksDB DB");
  store_init->add_option("--store", store_uri, kStoreHelp)->required();
  std::string base_retention;
  store_init->add_option(
      "--base-retention", base_retention,
      "Delete base (e.g. 5-minute) tiles this much older than now once rolled up (at least 2d, "
      "whole hours; can be lowered later, not raised); windows reaching further back are "
      "answered from hour rollups");

  auto* training = app.add_subcommand(
      "training-set",
      "Point-in-time features for every row of a spine, from event files (no DB needed)");
  tessera::offline::TrainingSetOptions training_options;
  std::string spine_views;
  training->add_option("--sql", sql_path, "SQL file with CREATE SOURCE / FEATURE VIEW")->required();
  training
      ->add_option("--input", training_options.inputs,
                   "NDJSON event files (plain, .gz, .zst), replayed in this order")
      ->required();
  training
      ->add_option("--spine", training_options.spine,
                   "Rows to compute features for: .ndjson or .csv (header), optionally .gz "
                   "or .zst; the views' key columns, a time column and any others")
      ->required();
  training->add_option("--views", spine_views, "Comma-separated feature views (one source)")
      ->required();
  training->add_option("--windows", training_options.windows, "Comma-separated windows")
      ->capture_default_str();
  training
      ->add_option("--out", training_options.out,
                   "Output: .ndjson or .csv, optionally .gz or .zst; spine order")
      ->required();
  training
      ->add_option("--spine-time", training_options.spine_time,
                   "The spine's time column: epoch ms or RFC 3339")
      ->capture_default_str();
  training->add_flag("--skip-bad-spine", training_options.skip_bad_spine,
                     "Count and leave out spine rows with a missing or bad time or key, instead "
                     "of failing");
  training->add_option("--threads", threads, "Worker threads (default: one per core)");
  size_t training_memory_mb = 1024;
  training
      ->add_option("--memory-mb", training_memory_mb,
                   "Tile states held at once; beyond it, keys are split over more passes")
      ->capture_default_str();
  training->add_option("--max-future", max_future,
                       "As for backfill: reject rows further ahead of the clock (default: the "
                       "source's 'max-future', else 1d), or 'off'");

  auto* preview = app.add_subcommand(
      "preview",
      "A view's features for a few keys and per-feature statistics over all keys, from event "
      "files (no DB written)");
  tessera::offline::PreviewOptions preview_options;
  preview->add_option("--sql", sql_path, "SQL file with CREATE SOURCE / FEATURE VIEW")->required();
  preview
      ->add_option("--input", preview_options.inputs,
                   "NDJSON event files (plain, .gz, .zst), replayed in this order")
      ->required();
  preview->add_option("--view", preview_options.view, "Feature view")->required();
  preview->add_option("--key", preview_options.keys,
                      "Keys to show (text form, as for get; repeatable); default: the first "
                      "five keys of the events");
  preview->add_option("--at", at,
                      "Time of the features: RFC 3339 or epoch ms (default: the end of the "
                      "events, their max event time + 1 ms)");
  preview->add_option("--windows", preview_options.windows, "Comma-separated windows")
      ->capture_default_str();
  preview->add_option("--threads", threads, "Worker threads (default: one per core)");

  tessera::workspaces::cli::Action ws_action;
  tessera::workspaces::cli::AddWsCommands(&app, &ws_action);

  CLI11_PARSE(app, argc, argv);

  if (ws_action) return ws_action();

  // The store a command reads or writes: --store, else --db.
  const std::string location = store_uri.empty() ? db : store_uri;
  auto need_store = [&](CLI::App* cmd) {
    if (!location.empty()) return true;
    fmt::print(stderr, "tessera: error: {} needs --store URI or --db DIR\n", cmd->get_name());
    return false;
  };
  if (store_init->parsed()) {
    int64_t retention_ms = 0;
    if (!base_retention.empty()) {
      auto ms = tessera::ParseDurationMillis(base_retention);
      if (!ms.ok()) {
        fmt::print(stderr, "tessera: error: --base-retention: {}\n",
                   tessera::StatusMessage(ms.status()));
        return 2;
      }
      retention_ms = *ms;
    }
    return tessera::RunStoreInitCommand(location, retention_ms);
  }

  if (run->parsed()) {
    auto interval = tessera::ParseDurationMillis(flush_interval);
    if (!interval.ok()) {
      fmt::print(stderr, "tessera: error: --flush-interval: {}\n",
                 tessera::StatusMessage(interval.status()));
      return 2;
    }
    if (!need_store(run)) return 2;
    const bool bigtable = store_uri.starts_with("bigtable://");
    if (!store_uri.empty() && !db.empty() && !bigtable) {
      fmt::print(stderr, "tessera: error: run: --db is only for a Bigtable --store's http log\n");
      return 2;
    }
    return tessera::RunLiveCommand(sql_path, location, bigtable ? db : "", http, *interval, threads,
                                   run_memory_mb);
  }
  if (serve_cmd->parsed()) {
    auto interval = tessera::ParseDurationMillis(refresh_interval);
    if (!interval.ok() || *interval <= 0) {
      fmt::print(stderr, "tessera: error: --refresh-interval: {}\n",
                 interval.ok() ? std::string("must be positive")
                               : tessera::StatusMessage(interval.status()));
      return 2;
    }
    if (!need_store(serve_cmd)) return 2;
    return tessera::RunServeCommand(location, http, secondary_dir, *interval, http_threads);
  }

  // --max-future: a duration or 'off'; false (after printing the error) when it is neither.
  auto parse_max_future = [&](std::optional<int64_t>* out) {
    if (max_future == "off") {
      *out = tessera::sql::kNoFutureBound;
    } else if (!max_future.empty()) {
      auto ms = tessera::ParseDurationMillis(max_future);
      if (!ms.ok()) {
        fmt::print(stderr, "tessera: error: --max-future: {}\n",
                   tessera::StatusMessage(ms.status()));
        return false;
      }
      *out = *ms;
    }
    return true;
  };
  if (preview->parsed()) {
    if (!parse_max_future(&preview_options.max_future_ms)) return 2;
    preview_options.threads = threads;
    return tessera::RunPreviewCommand(sql_path, at, preview_options);
  }
  if (training->parsed()) {
    if (!parse_max_future(&training_options.max_future_ms)) return 2;
    for (absl::string_view name : absl::StrSplit(spine_views, ',')) {
      training_options.views.emplace_back(
          tessera::Trim(std::string_view(name.data(), name.size())));
    }
    training_options.threads = threads;
    training_options.memory_budget_bytes = training_memory_mb << 20;
    return tessera::RunTrainingSetCommand(sql_path, training_options);
  }
  if (backfill->parsed()) {
    tessera::engine::BackfillOptions options;
    options.source = source;
    options.dead_letter_path = dead_letter;
    options.pipeline.threads = threads;
    options.pipeline.memory_budget_bytes = memory_mb << 20;
    options.chunk_bytes = std::max<size_t>(chunk_kb, 4) << 10;
    if (!parse_max_future(&options.max_future_ms)) return 2;
    if (!need_store(backfill)) return 2;
    return tessera::RunBackfillCommand(sql_path, inputs, location, options, compact);
  }
  if (get->parsed()) {
    if (!need_store(get)) return 2;
    return tessera::RunGetCommand(location, view, keys, at, windows, timing, meta);
  }
  if (explain->parsed()) {
    if (sql_path.empty() && location.empty()) {
      fmt::print(stderr, "tessera: error: explain needs --sql FILE, --store URI or --db DIR\n");
      return 2;
    }
    return tessera::RunExplainCommand(sql_path, location);
  }
  return 0;
}
