#include "store/rocksdb/base_retention_filter.h"

#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/slice.h>

#include <optional>
#include <string>

#include "common/time_util.h"
#include "store/key_codec.h"
#include "store/rocksdb/rocksdb_util.h"
#include "store/tile_store.h"

namespace tessera::store::rocksdb_internal {

class BaseRetentionFilter final : public rocksdb::CompactionFilter {
 public:
  // Drops base tiles starting before `expired_before` (a UTC day start) whose hour rollup is
  // stored.
  BaseRetentionFilter(BaseRetentionFilterFactory* factory, int64_t expired_before)
      : factory_(factory), expired_before_(expired_before) {}

  Decision FilterV2(int /*level*/, const rocksdb::Slice& key, ValueType value_type,
                    const rocksdb::Slice& /*existing_value*/, std::string* /*new_value*/,
                    std::string* /*skip_until*/) const override {
    if (value_type != ValueType::kValue) return Decision::kKeep;
    const std::string_view k = View(key);
    if (k.empty() || k[0] != kTileNamespace) return Decision::kKeep;
    const std::optional<size_t> prefix_len = TilePrefixLength(k);
    if (!prefix_len.has_value() || k.size() != *prefix_len + kStartMsBytes ||
        static_cast<uint8_t>(k[*prefix_len - 1]) != static_cast<uint8_t>(Resolution::kBase)) {
      return Decision::kKeep;
    }
    const int64_t start = DecodeTileStart(k);
    if (start < kMinTimestampMs || start >= expired_before_) return Decision::kKeep;
    // The covering hour rollup's key: the same prefix with resolution hour.
    hour_key_.assign(k.data(), *prefix_len - 1);
    hour_key_.push_back(static_cast<char>(Resolution::kHour));
    AppendTileStart(AlignDown(start, kMillisPerHour), &hour_key_);
    if (hour_key_ != last_hour_key_) {  // base tiles of one hour come one after another
      last_hour_key_ = hour_key_;
      last_covered_ = RollupStored(hour_key_);
    }
    if (!last_covered_) return Decision::kKeep;
    factory_->dropped_.fetch_add(1, std::memory_order_relaxed);
    return Decision::kRemove;
  }

  const char* Name() const override { return "tessera.BaseRetention"; }

 private:
  // True only when a Get at the latest state finds `key`; any error keeps the tile.
  bool RollupStored(const std::string& key) const {
    rocksdb::DB* db = factory_->db_.load(std::memory_order_acquire);
    if (db == nullptr) return false;
    try {
      rocksdb::ReadOptions ro;
      ro.fill_cache = false;  // a compaction's lookups must not evict what readers use
      rocksdb::PinnableSlice value;
      return db->Get(ro, db->DefaultColumnFamily(), key, &value).ok();
    } catch (...) {  // RocksDB is not exception-safe: nothing may cross back into it
      return false;
    }
  }

  BaseRetentionFilterFactory* const factory_;
  const int64_t expired_before_;
  // Single-threaded per filter (one compaction), hence mutable state in a const method.
  mutable std::string hour_key_;
  mutable std::string last_hour_key_;
  mutable bool last_covered_ = false;
};

std::unique_ptr<rocksdb::CompactionFilter> BaseRetentionFilterFactory::CreateCompactionFilter(
    const rocksdb::CompactionFilter::Context& /*context*/) {
  const int64_t retention = retention_ms();
  if (retention <= 0 || retention > kMaxDurationMs ||
      db_.load(std::memory_order_acquire) == nullptr) {
    return nullptr;
  }
  const int64_t cutoff = clock_->NowMillis() - retention - kRetentionClockSlackMs;
  if (cutoff < kMinTimestampMs) return nullptr;
  return std::make_unique<BaseRetentionFilter>(this, AlignDown(cutoff, kMillisPerDay));
}

}  // namespace tessera::store::rocksdb_internal
