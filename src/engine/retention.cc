#include "engine/retention.h"

#include <optional>
#include <string>

#include "common/errors.h"
#include "common/status_macros.h"
#include "store/meta_keys.h"

namespace tessera::engine {

absl::Status ValidateBaseRetention(int64_t ms) {
  if (ms == 0) return absl::OkStatus();
  if (ms < kMinBaseRetentionMs || ms > kMaxDurationMs || ms % kMillisPerHour != 0) {
    return InvalidArgument(
        "base-tile retention {} ms is not allowed: use 0 (keep base tiles forever) or a whole "
        "number of hours from {} to {} (e.g. 30d)",
        ms, FormatDurationMillis(kMinBaseRetentionMs), FormatDurationMillis(kMaxDurationMs));
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> LoadBaseRetention(store::TileStore* store) {
  TESSERA_ASSIGN_OR_RETURN(std::optional<std::string> value,
                           store->GetMeta(store::meta::kBaseRetentionKey));
  if (!value.has_value()) return 0;
  const std::optional<int64_t> ms = store::meta::ParseBaseRetentionValue(*value);
  if (!ms.has_value() || !ValidateBaseRetention(*ms).ok()) {
    return DataLoss(
        "metadata {} holds '{}', which is not a base-tile retention (decimal milliseconds: 0, or "
        "a whole number of hours of at least {})",
        store::meta::kBaseRetentionKey, *value, FormatDurationMillis(kMinBaseRetentionMs));
  }
  return *ms;
}

absl::Status SetBaseRetention(store::TileStore* store, int64_t ms) {
  TESSERA_RETURN_IF_ERROR(ValidateBaseRetention(ms));
  TESSERA_ASSIGN_OR_RETURN(int64_t current, LoadBaseRetention(store));
  if (ms == current) return absl::OkStatus();
  if (current != 0 && (ms == 0 || ms > current)) {
    return FailedPrecondition(
        "base-tile retention is {}; it can be lowered but not {} ({} asked): base tiles older "
        "than {} may already be deleted, and reads would then miss their rows. Backfill into a "
        "new DB to keep more",
        FormatDurationMillis(current), ms == 0 ? "removed" : "raised",
        ms == 0 ? std::string("0") : FormatDurationMillis(ms), FormatDurationMillis(current));
  }
  store::WriteBatch batch;
  batch.meta.emplace_back(std::string(store::meta::kBaseRetentionKey), std::to_string(ms));
  return store->Write(batch);
}

}  // namespace tessera::engine
