#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "google/bigtable/admin/v2/bigtable_table_admin.grpc.pb.h"
#include "google/bigtable/v2/bigtable.grpc.pb.h"
#include "store/bigtable/bigtable_tile_store.h"

// The gRPC calls of the Bigtable store, with retries, deadlines and metrics: a thin layer over
// the generated stubs that speaks absl::Status and whole rows. Internal to src/store/bigtable.
namespace tessera::store {

// One cell of a row read with ReadRows (or returned by ReadModifyWriteRow).
struct BigtableCell {
  std::string family;
  std::string qualifier;
  int64_t timestamp_micros = 0;
  std::string value;
};

// One complete row: its cells in the server's order (family, then qualifier, then newest first).
struct BigtableRow {
  std::string key;
  std::vector<BigtableCell> cells;
};

// Whether a status code is worth retrying (UNAVAILABLE, DEADLINE_EXCEEDED, ABORTED).
bool IsRetryableBigtableCode(absl::StatusCode code);

// Thread-safe: every method may be called concurrently (gRPC stubs are).
class BigtableClient {
 public:
  // Channels to the data and admin endpoints chosen by `options` (see BigtableOptions). Fails
  // when TLS is needed and no Google default credentials are found. Connects lazily.
  static absl::StatusOr<std::unique_ptr<BigtableClient>> Create(const BigtableUri& uri,
                                                                const BigtableOptions& options);
  ~BigtableClient();
  BigtableClient(const BigtableClient&) = delete;
  BigtableClient& operator=(const BigtableClient&) = delete;

  const std::string& table_name() const { return table_name_; }
  // "host:port (plaintext)" or "host:port (TLS)" of the data endpoint, for messages.
  const std::string& data_target() const { return data_target_; }

  // Calls on_row for every row of `rows` that `filter` (null: none) leaves a cell in, in key
  // order, each row whole. A retried stream resumes after the last row delivered, so no row is
  // delivered twice. An empty `rows` (no keys, no ranges) reads nothing (not the whole table).
  // An error from on_row stops the read and is returned.
  absl::Status ReadRows(const google::bigtable::v2::RowSet& rows,
                        const google::bigtable::v2::RowFilter* filter,
                        const std::function<absl::Status(BigtableRow&&)>& on_row);

  // Applies every entry (each atomically), in requests of at most max_rows_per_request rows and
  // about max_request_bytes, up to max_parallel_requests at once. Entries whose status is
  // retryable are sent again (alone with the other failed ones) until they succeed or the retry
  // budget is spent. REQUIRES: the mutations are idempotent (explicit timestamps).
  absl::Status MutateRows(std::vector<google::bigtable::v2::MutateRowsRequest::Entry> entries);

  struct CheckAndMutateResult {
    bool predicate_matched = false;
    // An earlier attempt ended with an unknown outcome (it may have applied the mutations, after
    // which the predicate may no longer match). Only then is `predicate_matched == false`
    // ambiguous.
    bool retried_after_unknown_outcome = false;
  };
  // CheckAndMutateRow with true_mutations only, retried on retryable codes.
  absl::StatusOr<CheckAndMutateResult> CheckAndMutateRow(
      std::string_view row_key, const google::bigtable::v2::RowFilter& predicate,
      std::vector<google::bigtable::v2::Mutation> true_mutations);

  // ReadModifyWriteRow, retried on retryable codes (REQUIRES: a retry applying the rules twice
  // is acceptable, as for a generation bump). Returns the modified cells.
  absl::StatusOr<BigtableRow> ReadModifyWriteRow(
      std::string_view row_key, std::vector<google::bigtable::v2::ReadModifyWriteRule> rules);

  // Table admin (the admin endpoint). NotFound / AlreadyExists pass through with their codes.
  absl::StatusOr<google::bigtable::admin::v2::Table> GetTable();
  absl::StatusOr<google::bigtable::admin::v2::Table> CreateTable(
      const std::string& instance_name, const std::string& table_id,
      const google::bigtable::admin::v2::Table& table);
  absl::StatusOr<google::bigtable::admin::v2::Table> ModifyColumnFamilies(
      std::vector<google::bigtable::admin::v2::ModifyColumnFamiliesRequest::Modification> mods);
  absl::Status DeleteTable();

 private:
  struct Metrics;
  struct Retrier;

  BigtableClient(const BigtableUri& uri, const BigtableOptions& options);
  // One MutateRows request (entries[i] for i in `indexes`), retried for its failed entries.
  absl::Status MutateBatch(const std::vector<google::bigtable::v2::MutateRowsRequest::Entry>& all,
                           std::vector<size_t> indexes);
  // Runs a unary call with retries. `call` makes one attempt with the given context.
  absl::Status Unary(std::string_view method, bool admin,
                     const std::function<grpc::Status(grpc::ClientContext*)>& call,
                     bool* retried_after_unknown_outcome = nullptr);

  const std::string table_name_;
  const BigtableOptions options_;
  const Clock* const clock_;
  std::string data_target_;
  bool emulator_read_workaround_ = false;
  std::string admin_target_;
  std::shared_ptr<grpc::Channel> data_channel_;
  std::shared_ptr<grpc::Channel> admin_channel_;
  std::unique_ptr<google::bigtable::v2::Bigtable::Stub> data_;
  std::unique_ptr<google::bigtable::admin::v2::BigtableTableAdmin::Stub> admin_;
  std::unique_ptr<Metrics> metrics_;
};

}  // namespace tessera::store
