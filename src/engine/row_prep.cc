#include "engine/row_prep.h"

#include "common/hash.h"
#include "engine/catalog_store.h"
#include "engine/entity_key.h"

namespace tessera::engine {

ViewRowPrep::ViewRowPrep(const sql::ViewDef& view) {
  if (view.where) where_ = std::make_unique<sql::ExprEvaluator>(*view.where);
  for (const auto& k : view.keys) keys_.push_back(std::make_unique<sql::ExprEvaluator>(*k));
  for (const auto& a : view.aggregates) {
    args_.push_back(a.arg ? std::make_unique<sql::ExprEvaluator>(*a.arg) : nullptr);
    args2_.push_back(a.arg2 ? std::make_unique<sql::ExprEvaluator>(*a.arg2) : nullptr);
  }
  // One per tile-layout slot: the engine's slots (MakeTileLayout) take none.
  arg_columns_.resize(view.aggregates.size() + kEngineSlots, nullptr);
  arg2_columns_.resize(arg_columns_.size(), nullptr);
}

void ViewRowPrep::Prepare(std::span<const Column> cols, size_t n, Arena* arena,
                          std::string_view key_prefix, size_t max_key_bytes) {
  status_.assign(n, kAggregate);
  if (where_) {
    const Column& c = where_->Evaluate(cols, n, arena);
    for (size_t r = 0; r < n; ++r) {
      if (c.valid[r] == 0 || c.i64[r] == 0) status_[r] = kFiltered;
    }
  }
  key_.resize(n);
  key_hash_.resize(n);
  key_columns_.clear();
  for (auto& k : keys_) key_columns_.push_back(&k->Evaluate(cols, n, arena));
  const bool single_string = key_columns_.size() == 1 && key_columns_[0]->type == DataType::kString;
  for (size_t r = 0; r < n; ++r) {
    if (status_[r] != kAggregate) continue;
    bool null_key = false;
    for (const Column* kc : key_columns_) null_key |= kc->IsNull(r);
    if (null_key) {
      status_[r] = kNullKey;
      continue;
    }
    std::string_view key;
    if (single_string) {
      key = key_columns_[0]->str[r];
    } else if (key_columns_.size() == 1) {
      key_buffer_.clear();
      AppendKeyPart(*key_columns_[0], r, &key_buffer_);
      key = arena->Copy(key_buffer_);
    } else {
      key_buffer_.clear();
      for (const Column* kc : key_columns_) {
        part_buffer_.clear();
        AppendKeyPart(*kc, r, &part_buffer_);
        AppendStoredKeyPart(part_buffer_, &key_buffer_);
      }
      key = arena->Copy(key_buffer_);
    }
    if (key.size() > max_key_bytes) {
      status_[r] = kKeyTooLong;
      continue;
    }
    if (!key_prefix.empty()) {
      key_buffer_.assign(key_prefix);
      key_buffer_.append(key);
      key = arena->Copy(key_buffer_);
    }
    key_[r] = key;
    key_hash_[r] = Hash64(key);
  }
  for (size_t a = 0; a < args_.size(); ++a) {
    arg_columns_[a] = args_[a] ? &args_[a]->Evaluate(cols, n, arena) : nullptr;
    arg2_columns_[a] = args2_[a] ? &args2_[a]->Evaluate(cols, n, arena) : nullptr;
  }
}

}  // namespace tessera::engine
