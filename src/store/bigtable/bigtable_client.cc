#include "store/bigtable/bigtable_client.h"

#include <fmt/format.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <optional>
#include <random>
#include <thread>
#include <utility>

#include "common/errors.h"
#include "common/mutex.h"
#include "store/bigtable/bigtable_util.h"

namespace tessera::store {

namespace pb = ::google::bigtable::v2;
namespace admin = ::google::bigtable::admin::v2;

namespace {

constexpr std::string_view kDefaultDataTarget = "bigtable.googleapis.com:443";
constexpr std::string_view kDefaultAdminTarget = "bigtableadmin.googleapis.com:443";
// Bigtable refuses a MutateRows request with more mutations than this.
constexpr size_t kMaxMutationsPerRequest = 100'000;

struct Target {
  std::string address;
  bool plaintext = false;
};

Target ParseTarget(std::string_view endpoint) {
  if (endpoint.starts_with("http://")) return {std::string(endpoint.substr(7)), true};
  if (endpoint.starts_with("https://")) return {std::string(endpoint.substr(8)), false};
  return {std::string(endpoint), false};
}

std::string EmulatorHost() {
  const char* host = std::getenv("BIGTABLE_EMULATOR_HOST");
  return host == nullptr ? std::string() : std::string(host);
}

Target DataTarget(const BigtableOptions& o) {
  if (!o.endpoint.empty()) return ParseTarget(o.endpoint);
  if (std::string emulator = EmulatorHost(); !emulator.empty()) return {emulator, true};
  return {std::string(kDefaultDataTarget), false};
}

Target AdminTarget(const BigtableOptions& o) {
  if (!o.admin_endpoint.empty()) return ParseTarget(o.admin_endpoint);
  if (!o.endpoint.empty()) {
    Target data = ParseTarget(o.endpoint);
    if (data.plaintext) return data;
    return {std::string(kDefaultAdminTarget), false};
  }
  if (std::string emulator = EmulatorHost(); !emulator.empty()) return {emulator, true};
  return {std::string(kDefaultAdminTarget), false};
}

std::string Describe(const Target& t) {
  return fmt::format("{} ({})", t.address, t.plaintext ? "plaintext" : "TLS");
}

absl::StatusCode CodeOf(const grpc::Status& s) {
  return static_cast<absl::StatusCode>(static_cast<int>(s.error_code()));
}

std::chrono::system_clock::time_point DeadlineAfter(int64_t ms) {
  return std::chrono::system_clock::now() + std::chrono::milliseconds(std::max<int64_t>(ms, 1));
}

// Deterministic per thread, different across threads and processes.
std::mt19937_64& Rng() {
  thread_local std::mt19937_64 rng(std::random_device{}());
  return rng;
}

// Parses CellChunks into whole rows (the ReadRows protocol of bigtable.proto).
class ChunkParser {
 public:
  // Adds one chunk; sets *done when it completes a row.
  absl::Status Add(const pb::ReadRowsResponse::CellChunk& c, std::optional<BigtableRow>* done) {
    if (c.reset_row()) {
      Reset();
      return absl::OkStatus();
    }
    if (!c.row_key().empty()) {
      if (in_row_ && c.row_key() != row_.key) {
        return DataLoss("ReadRows: a chunk of row {} arrived before row {} was committed",
                        PrintableKey(c.row_key()), PrintableKey(row_.key));
      }
      if (!in_row_) {
        row_.key = c.row_key();
        in_row_ = true;
      }
    } else if (!in_row_) {
      return DataLoss("ReadRows: a chunk without a row key outside a row");
    }
    if (!in_value_) {
      if (c.has_family_name()) family_ = c.family_name().value();
      if (c.has_qualifier()) qualifier_ = c.qualifier().value();
      cell_.family = family_;
      cell_.qualifier = qualifier_;
      cell_.timestamp_micros = c.timestamp_micros();
      cell_.value.clear();
      if (c.value_size() > 0) cell_.value.reserve(static_cast<size_t>(c.value_size()));
    }
    cell_.value += c.value();
    in_value_ = c.value_size() > 0;
    if (!in_value_) row_.cells.push_back(std::move(cell_));
    if (c.commit_row()) {
      if (in_value_)
        return DataLoss("ReadRows: row {} committed inside a split cell", PrintableKey(row_.key));
      done->emplace(std::move(row_));
      Reset();
    }
    return absl::OkStatus();
  }

  bool in_row() const { return in_row_; }

 private:
  void Reset() {
    row_ = BigtableRow();
    cell_ = BigtableCell();
    family_.clear();
    qualifier_.clear();
    in_row_ = false;
    in_value_ = false;
  }

  BigtableRow row_;
  BigtableCell cell_;
  std::string family_;
  std::string qualifier_;
  bool in_row_ = false;
  bool in_value_ = false;  // the current cell's value continues in the next chunk
};

// The part of `rows` after `key` (rows already delivered are not asked for again).
pb::RowSet RowsAfter(const pb::RowSet& rows, const std::string& key) {
  pb::RowSet out;
  for (const std::string& k : rows.row_keys()) {
    if (k > key) out.add_row_keys(k);
  }
  for (const pb::RowRange& r : rows.row_ranges()) {
    if (r.end_key_case() == pb::RowRange::kEndKeyOpen && r.end_key_open() <= key) continue;
    if (r.end_key_case() == pb::RowRange::kEndKeyClosed && r.end_key_closed() <= key) continue;
    pb::RowRange* nr = out.add_row_ranges();
    *nr = r;
    const bool starts_after =
        (r.start_key_case() == pb::RowRange::kStartKeyClosed && r.start_key_closed() > key) ||
        (r.start_key_case() == pb::RowRange::kStartKeyOpen && r.start_key_open() >= key);
    if (!starts_after) nr->set_start_key_open(key);
  }
  return out;
}

}  // namespace

bool IsRetryableBigtableCode(absl::StatusCode code) {
  return code == absl::StatusCode::kUnavailable || code == absl::StatusCode::kDeadlineExceeded ||
         code == absl::StatusCode::kAborted;
}

// Request counts, retries, failures and attempt latency per method.
struct BigtableClient::Metrics {
  struct Method {
    Counter* requests = nullptr;
    Counter* retries = nullptr;
    Counter* failures = nullptr;
    Histogram* seconds = nullptr;
  };
  std::map<std::string, Method, std::less<>> methods;

  Metrics(MetricsRegistry* registry, const std::string& table) {
    for (const char* m : {"ReadRows", "MutateRows", "CheckAndMutateRow", "ReadModifyWriteRow",
                          "GetTable", "CreateTable", "ModifyColumnFamilies", "DeleteTable"}) {
      const Labels labels = {{"method", m}, {"table", table}};
      methods[m] =
          Method{registry->GetCounter("tessera_bigtable_requests_total",
                                      "Bigtable RPC attempts (retries included)", labels),
                 registry->GetCounter(
                     "tessera_bigtable_retries_total",
                     "Bigtable RPC attempts that were retries after a retryable error", labels),
                 registry->GetCounter("tessera_bigtable_failures_total",
                                      "Bigtable calls that failed after their retries", labels),
                 registry->GetHistogram("tessera_bigtable_request_seconds",
                                        "Latency of one Bigtable RPC attempt", labels)};
    }
  }

  // Records one attempt (`retry`: it follows a failed one) and how long it took.
  void Attempt(std::string_view method, bool retry, double seconds) const {
    auto it = methods.find(method);
    if (it == methods.end()) return;
    it->second.requests->Inc();
    if (retry) it->second.retries->Inc();
    it->second.seconds->Observe(seconds);
  }
  void Failure(std::string_view method) const {
    auto it = methods.find(method);
    if (it != methods.end()) it->second.failures->Inc();
  }
};

// The retry policy of one call: counts failed attempts and sleeps the backoff between them.
struct BigtableClient::Retrier {
  Retrier(const BigtableRetryOptions& options, const Clock* clock, grpc::Channel* channel)
      : options(options), clock(clock), channel(channel), start_nanos(clock->MonotonicNanos()) {}

  // After a failed attempt with `code`: sleeps the backoff and returns true when another
  // attempt should run; false when the code is not retryable or the budget is spent.
  bool ShouldRetry(absl::StatusCode code) {
    ++failed;
    if (!IsRetryableBigtableCode(code) || failed >= std::max(1, options.max_attempts)) return false;
    const int64_t elapsed_ms = (clock->MonotonicNanos() - start_nanos) / 1'000'000;
    const int64_t left_ms = options.total_timeout_ms - elapsed_ms;
    if (left_ms <= 0) return false;
    int64_t backoff = std::max<int64_t>(options.initial_backoff_ms, 1);
    for (int i = 1; i < failed && backoff < options.max_backoff_ms; ++i) backoff *= 2;
    backoff = std::min(backoff, std::max<int64_t>(options.max_backoff_ms, 1));
    std::uniform_int_distribution<int64_t> jitter(backoff / 2, backoff);
    const int64_t sleep_ms = std::min(jitter(Rng()), left_ms);
    std::this_thread::sleep_for(std::chrono::milliseconds(sleep_ms));
    // This backoff replaces gRPC's reconnect backoff (which would fail the next attempts at once
    // until its own, longer timer fires): reconnect now.
    if (code == absl::StatusCode::kUnavailable) {
      grpc::experimental::ChannelResetConnectionBackoff(channel);
    }
    return true;
  }
  bool retrying() const { return failed > 0; }

  const BigtableRetryOptions& options;
  const Clock* clock;
  grpc::Channel* channel;
  const int64_t start_nanos;
  int failed = 0;
};

BigtableClient::BigtableClient(const BigtableUri& uri, const BigtableOptions& options)
    : table_name_(uri.TableName()),
      options_(options),
      clock_(options.clock != nullptr ? options.clock : SystemClock::Default()) {
  if (options.metrics != nullptr) metrics_ = std::make_unique<Metrics>(options.metrics, uri.table);
}

BigtableClient::~BigtableClient() = default;

absl::StatusOr<std::unique_ptr<BigtableClient>> BigtableClient::Create(
    const BigtableUri& uri, const BigtableOptions& options) {
  std::unique_ptr<BigtableClient> c(new BigtableClient(uri, options));
  const Target data = DataTarget(options);
  const Target admin_target = AdminTarget(options);
  c->data_target_ = Describe(data);
  c->emulator_read_workaround_ = options.emulator_read_workaround.value_or(data.plaintext);
  c->admin_target_ = Describe(admin_target);
  if (data.address.empty() || admin_target.address.empty()) {
    return InvalidArgument("Bigtable {}: empty endpoint (data {}, admin {})", uri.ToString(),
                           c->data_target_, c->admin_target_);
  }
  auto channel = [&](const Target& t) -> absl::StatusOr<std::shared_ptr<grpc::Channel>> {
    std::shared_ptr<grpc::ChannelCredentials> creds;
    if (t.plaintext) {
      creds = grpc::InsecureChannelCredentials();
    } else {
      creds = grpc::GoogleDefaultCredentials();
      if (creds == nullptr) {
        return Unauthenticated(
            "Bigtable {}: no Google default credentials for {} (set "
            "GOOGLE_APPLICATION_CREDENTIALS or run on GCP; for an emulator set "
            "BIGTABLE_EMULATOR_HOST=host:port)",
            uri.ToString(), Describe(t));
      }
    }
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(-1);  // one ReadRows response may hold a large row
    args.SetMaxSendMessageSize(-1);
    args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 30'000);
    // Reconnect soon after an outage (gRPC's default backoff grows to two minutes).
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2'000);
    // A channel of its own: a new client (e.g. `store init` after an outage) connects at once
    // instead of inheriting the reconnect backoff of another client's shared subchannel.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    return grpc::CreateCustomChannel(t.address, creds, args);
  };
  absl::StatusOr<std::shared_ptr<grpc::Channel>> d = channel(data);
  if (!d.ok()) return d.status();
  c->data_channel_ = *d;
  if (admin_target.address == data.address && admin_target.plaintext == data.plaintext) {
    c->admin_channel_ = c->data_channel_;
  } else {
    absl::StatusOr<std::shared_ptr<grpc::Channel>> a = channel(admin_target);
    if (!a.ok()) return a.status();
    c->admin_channel_ = *a;
  }
  c->data_ = pb::Bigtable::NewStub(c->data_channel_);
  c->admin_ = admin::BigtableTableAdmin::NewStub(c->admin_channel_);
  return c;
}

absl::Status BigtableClient::Unary(std::string_view method, bool admin_call,
                                   const std::function<grpc::Status(grpc::ClientContext*)>& call,
                                   bool* retried_after_unknown_outcome) {
  Retrier retrier(options_.retry, clock_, admin_call ? admin_channel_.get() : data_channel_.get());
  while (true) {
    grpc::ClientContext ctx;
    ctx.set_deadline(DeadlineAfter(options_.rpc_timeout_ms));
    const int64_t t0 = clock_->MonotonicNanos();
    grpc::Status s = call(&ctx);
    if (metrics_ != nullptr) {
      metrics_->Attempt(method, retrier.retrying(), (clock_->MonotonicNanos() - t0) / 1e9);
    }
    if (s.ok()) {
      if (retried_after_unknown_outcome != nullptr) {
        *retried_after_unknown_outcome = retrier.retrying();
      }
      return absl::OkStatus();
    }
    if (!retrier.ShouldRetry(CodeOf(s))) {
      if (metrics_ != nullptr) metrics_->Failure(method);
      return absl::Status(
          CodeOf(s), fmt::format("Bigtable {} of {} at {}{}: {}", method, table_name_,
                                 admin_call ? admin_target_ : data_target_,
                                 retrier.failed > 1 ? fmt::format(" ({} attempts)", retrier.failed)
                                                    : std::string(),
                                 s.error_message()));
    }
  }
}

absl::Status BigtableClient::ReadRows(const pb::RowSet& rows, const pb::RowFilter* filter,
                                      const std::function<absl::Status(BigtableRow&&)>& on_row) {
  if (rows.row_keys_size() == 0 && rows.row_ranges_size() == 0) return absl::OkStatus();
  pb::RowSet remaining = rows;
  Retrier retrier(options_.retry, clock_, data_channel_.get());
  std::optional<std::string> last_key;
  while (true) {
    pb::ReadRowsRequest req;
    req.set_table_name(table_name_);
    req.set_app_profile_id(options_.app_profile_id);
    *req.mutable_rows() = remaining;
    if (emulator_read_workaround_) {
      pb::RowFilter::Interleave* both = req.mutable_filter()->mutable_interleave();
      if (filter != nullptr) {
        *both->add_filters() = *filter;
      } else {
        both->add_filters()->set_pass_all_filter(true);
      }
      both->add_filters()->set_block_all_filter(true);
    } else if (filter != nullptr) {
      *req.mutable_filter() = *filter;
    }
    grpc::ClientContext ctx;
    ctx.set_deadline(DeadlineAfter(options_.stream_timeout_ms));
    const int64_t t0 = clock_->MonotonicNanos();
    std::unique_ptr<grpc::ClientReader<pb::ReadRowsResponse>> reader = data_->ReadRows(&ctx, req);
    ChunkParser parser;
    pb::ReadRowsResponse resp;
    absl::Status stop;  // from on_row or the parser: ends the read without retries
    while (stop.ok() && reader->Read(&resp)) {
      for (const pb::ReadRowsResponse::CellChunk& chunk : resp.chunks()) {
        std::optional<BigtableRow> row;
        stop = parser.Add(chunk, &row);
        if (!stop.ok()) break;
        if (!row.has_value()) continue;
        if (last_key.has_value() && row->key <= *last_key) {
          stop =
              DataLoss("ReadRows of {}: row {} out of order", table_name_, PrintableKey(row->key));
          break;
        }
        std::string key = row->key;
        stop = on_row(std::move(*row));
        last_key = std::move(key);
        if (!stop.ok()) break;
      }
    }
    if (!stop.ok()) ctx.TryCancel();
    grpc::Status s = reader->Finish();
    if (metrics_ != nullptr) {
      metrics_->Attempt("ReadRows", retrier.retrying(), (clock_->MonotonicNanos() - t0) / 1e9);
    }
    if (!stop.ok()) return stop;
    if (s.ok()) {
      if (parser.in_row()) {
        return DataLoss("ReadRows of {}: the stream ended inside a row", table_name_);
      }
      return absl::OkStatus();
    }
    if (!retrier.ShouldRetry(CodeOf(s))) {
      if (metrics_ != nullptr) metrics_->Failure("ReadRows");
      return absl::Status(
          CodeOf(s), fmt::format("Bigtable ReadRows of {} at {}{}: {}", table_name_, data_target_,
                                 retrier.failed > 1 ? fmt::format(" ({} attempts)", retrier.failed)
                                                    : std::string(),
                                 s.error_message()));
    }
    if (last_key.has_value()) {
      remaining = RowsAfter(remaining, *last_key);
      if (remaining.row_keys_size() == 0 && remaining.row_ranges_size() == 0) {
        return absl::OkStatus();
      }
    }
  }
}

absl::Status BigtableClient::MutateRows(std::vector<pb::MutateRowsRequest::Entry> entries) {
  if (entries.empty()) return absl::OkStatus();
  std::vector<std::vector<size_t>> batches(1);
  size_t bytes = 0;
  size_t mutations = 0;
  for (size_t i = 0; i < entries.size(); ++i) {
    const size_t size = entries[i].ByteSizeLong();
    const size_t muts = static_cast<size_t>(entries[i].mutations_size());
    if (!batches.back().empty() &&
        (batches.back().size() >= std::max<size_t>(options_.max_rows_per_request, 1) ||
         bytes + size > options_.max_request_bytes || mutations + muts > kMaxMutationsPerRequest)) {
      batches.emplace_back();
      bytes = 0;
      mutations = 0;
    }
    batches.back().push_back(i);
    bytes += size;
    mutations += muts;
  }
  if (batches.size() == 1) return MutateBatch(entries, std::move(batches[0]));

  // Several requests at once; the first error stops the others from starting new batches.
  const size_t threads =
      std::min(batches.size(), static_cast<size_t>(std::max(1, options_.max_parallel_requests)));
  std::atomic<size_t> next{0};
  Mutex mu;
  absl::Status first_error;
  auto work = [&] {
    while (true) {
      {
        MutexLock lock(&mu);
        if (!first_error.ok()) return;
      }
      const size_t b = next.fetch_add(1);
      if (b >= batches.size()) return;
      absl::Status s = MutateBatch(entries, batches[b]);
      if (!s.ok()) {
        MutexLock lock(&mu);
        if (first_error.ok()) first_error = s;
      }
    }
  };
  std::vector<std::thread> pool;
  pool.reserve(threads - 1);
  for (size_t t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (std::thread& t : pool) t.join();
  MutexLock lock(&mu);
  return first_error;
}

absl::Status BigtableClient::MutateBatch(const std::vector<pb::MutateRowsRequest::Entry>& all,
                                         std::vector<size_t> pending) {
  Retrier retrier(options_.retry, clock_, data_channel_.get());
  while (true) {
    pb::MutateRowsRequest req;
    req.set_table_name(table_name_);
    req.set_app_profile_id(options_.app_profile_id);
    for (size_t i : pending) *req.add_entries() = all[i];
    grpc::ClientContext ctx;
    ctx.set_deadline(DeadlineAfter(options_.stream_timeout_ms));
    const int64_t t0 = clock_->MonotonicNanos();
    std::unique_ptr<grpc::ClientReader<pb::MutateRowsResponse>> reader =
        data_->MutateRows(&ctx, req);
    // Per entry of this request: its status, or nullopt when the server did not report one.
    std::vector<std::optional<std::pair<absl::StatusCode, std::string>>> results(pending.size());
    pb::MutateRowsResponse resp;
    while (reader->Read(&resp)) {
      for (const pb::MutateRowsResponse::Entry& e : resp.entries()) {
        if (e.index() < 0 || static_cast<size_t>(e.index()) >= results.size()) continue;
        results[static_cast<size_t>(e.index())].emplace(
            static_cast<absl::StatusCode>(e.status().code()), e.status().message());
      }
    }
    grpc::Status s = reader->Finish();
    if (metrics_ != nullptr) {
      metrics_->Attempt("MutateRows", retrier.retrying(), (clock_->MonotonicNanos() - t0) / 1e9);
    }
    // Entries without a status share the stream's fate (OK stream: the server lost them; retry).
    std::vector<size_t> failed;
    std::optional<std::pair<absl::StatusCode, std::string>> permanent;
    std::string permanent_key;
    absl::StatusCode retry_code = absl::StatusCode::kOk;
    std::string retry_message;
    for (size_t j = 0; j < pending.size(); ++j) {
      std::pair<absl::StatusCode, std::string> r =
          results[j].has_value() ? *results[j]
          : s.ok()               ? std::pair(absl::StatusCode::kUnavailable,
                                             std::string("no status reported for the entry"))
                                 : std::pair(CodeOf(s), s.error_message());
      if (r.first == absl::StatusCode::kOk) continue;
      failed.push_back(pending[j]);
      if (IsRetryableBigtableCode(r.first)) {
        retry_code = r.first;
        retry_message = r.second;
      } else if (!permanent.has_value()) {
        permanent = r;
        permanent_key = all[pending[j]].row_key();
      }
    }
    if (failed.empty()) return absl::OkStatus();
    if (permanent.has_value()) {
      if (metrics_ != nullptr) metrics_->Failure("MutateRows");
      return absl::Status(
          permanent->first,
          fmt::format("Bigtable MutateRows of {} at {}: row {}: {}", table_name_, data_target_,
                      PrintableKey(permanent_key), permanent->second));
    }
    if (!retrier.ShouldRetry(retry_code)) {
      if (metrics_ != nullptr) metrics_->Failure("MutateRows");
      return absl::Status(retry_code,
                          fmt::format("Bigtable MutateRows of {} at {} ({} attempts, {} of {} rows "
                                      "not written): {}",
                                      table_name_, data_target_, retrier.failed, failed.size(),
                                      pending.size(), retry_message));
    }
    pending = std::move(failed);
  }
}

absl::StatusOr<BigtableClient::CheckAndMutateResult> BigtableClient::CheckAndMutateRow(
    std::string_view row_key, const pb::RowFilter& predicate,
    std::vector<pb::Mutation> true_mutations) {
  pb::CheckAndMutateRowRequest req;
  req.set_table_name(table_name_);
  req.set_app_profile_id(options_.app_profile_id);
  req.set_row_key(std::string(row_key));
  *req.mutable_predicate_filter() = predicate;
  for (pb::Mutation& m : true_mutations) *req.add_true_mutations() = std::move(m);
  pb::CheckAndMutateRowResponse resp;
  CheckAndMutateResult result;
  absl::Status s = Unary(
      "CheckAndMutateRow", false,
      [&](grpc::ClientContext* ctx) { return data_->CheckAndMutateRow(ctx, req, &resp); },
      &result.retried_after_unknown_outcome);
  if (!s.ok()) return s;
  result.predicate_matched = resp.predicate_matched();
  return result;
}

absl::StatusOr<BigtableRow> BigtableClient::ReadModifyWriteRow(
    std::string_view row_key, std::vector<pb::ReadModifyWriteRule> rules) {
  pb::ReadModifyWriteRowRequest req;
  req.set_table_name(table_name_);
  req.set_app_profile_id(options_.app_profile_id);
  req.set_row_key(std::string(row_key));
  for (pb::ReadModifyWriteRule& r : rules) *req.add_rules() = std::move(r);
  pb::ReadModifyWriteRowResponse resp;
  absl::Status s = Unary("ReadModifyWriteRow", false, [&](grpc::ClientContext* ctx) {
    return data_->ReadModifyWriteRow(ctx, req, &resp);
  });
  if (!s.ok()) return s;
  BigtableRow row;
  row.key = resp.row().key();
  for (const pb::Family& f : resp.row().families()) {
    for (const pb::Column& c : f.columns()) {
      for (const pb::Cell& cell : c.cells()) {
        row.cells.push_back(
            BigtableCell{f.name(), c.qualifier(), cell.timestamp_micros(), cell.value()});
      }
    }
  }
  return row;
}

absl::StatusOr<admin::Table> BigtableClient::GetTable() {
  admin::GetTableRequest req;
  req.set_name(table_name_);
  req.set_view(admin::Table::SCHEMA_VIEW);
  admin::Table table;
  absl::Status s = Unary("GetTable", true, [&](grpc::ClientContext* ctx) {
    return admin_->GetTable(ctx, req, &table);
  });
  if (!s.ok()) return s;
  return table;
}

absl::StatusOr<admin::Table> BigtableClient::CreateTable(const std::string& instance_name,
                                                         const std::string& table_id,
                                                         const admin::Table& table) {
  admin::CreateTableRequest req;
  req.set_parent(instance_name);
  req.set_table_id(table_id);
  *req.mutable_table() = table;
  admin::Table created;
  absl::Status s = Unary("CreateTable", true, [&](grpc::ClientContext* ctx) {
    return admin_->CreateTable(ctx, req, &created);
  });
  if (!s.ok()) return s;
  return created;
}

absl::StatusOr<admin::Table> BigtableClient::ModifyColumnFamilies(
    std::vector<admin::ModifyColumnFamiliesRequest::Modification> mods) {
  admin::ModifyColumnFamiliesRequest req;
  req.set_name(table_name_);
  for (auto& m : mods) *req.add_modifications() = std::move(m);
  admin::Table table;
  absl::Status s = Unary("ModifyColumnFamilies", true, [&](grpc::ClientContext* ctx) {
    return admin_->ModifyColumnFamilies(ctx, req, &table);
  });
  if (!s.ok()) return s;
  return table;
}

absl::Status BigtableClient::DeleteTable() {
  admin::DeleteTableRequest req;
  req.set_name(table_name_);
  google::protobuf::Empty empty;
  return Unary("DeleteTable", true,
               [&](grpc::ClientContext* ctx) { return admin_->DeleteTable(ctx, req, &empty); });
}

}  // namespace tessera::store
