#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "agg/aggregate.h"
#include "common/arena.h"
#include "common/column.h"
#include "sql/expr.h"
#include "sql/plan.h"

namespace tessera::engine {

// Evaluates one view over a decoded batch of its source's rows: the WHERE, each row's entity
// key (stored form, engine/entity_key.h) and the aggregate arguments. The one evaluation that
// live ingestion, backfills and training sets share, so they agree row for row.
//
// Not thread-safe: one per (thread, view).
class ViewRowPrep {
 public:
  enum RowStatus : uint8_t { kFiltered = 0, kAggregate = 1, kNullKey = 2, kKeyTooLong = 3 };

  explicit ViewRowPrep(const sql::ViewDef& view);

  // Evaluates the view over `rows` (n rows of the source's columns). Keys longer than
  // max_key_bytes are kKeyTooLong; `key_prefix` (a writer-slot tag, or empty) is prepended to
  // every other key after that check. Keys and strings the expressions make live in *arena:
  // valid until it is reset.
  void Prepare(std::span<const Column> rows, size_t n, Arena* arena, std::string_view key_prefix,
               size_t max_key_bytes);

  // Per row of the last Prepare(): its RowStatus, and for kAggregate rows the key and its
  // Hash64. arg_columns[a] is tile-layout slot a's argument column (null for COUNT(*) and the
  // engine's slots, engine/catalog_store.h: MakeTileLayout).
  const std::vector<uint8_t>& status() const { return status_; }
  const std::vector<std::string_view>& key() const { return key_; }
  const std::vector<uint64_t>& key_hash() const { return key_hash_; }
  const std::vector<const Column*>& arg_columns() const { return arg_columns_; }
  // Tile-layout slot a's argument columns: arg_columns()[a] and, for SUM_BY(x, bucket), the
  // bucket's.
  agg::AggArgs args(size_t a) const { return {arg_columns_[a], arg2_columns_[a]}; }

 private:
  std::unique_ptr<sql::ExprEvaluator> where_;
  std::vector<std::unique_ptr<sql::ExprEvaluator>> keys_;
  std::vector<std::unique_ptr<sql::ExprEvaluator>> args_;  // null for COUNT(*)
  std::vector<const Column*> arg_columns_;
  std::vector<std::unique_ptr<sql::ExprEvaluator>> args2_;  // null but for SUM_BY
  std::vector<const Column*> arg2_columns_;                 // per slot, like arg_columns_
  std::vector<uint8_t> status_;
  std::vector<std::string_view> key_;
  std::vector<uint64_t> key_hash_;
  std::vector<const Column*> key_columns_;
  std::string key_buffer_;
  std::string part_buffer_;
};

}  // namespace tessera::engine
