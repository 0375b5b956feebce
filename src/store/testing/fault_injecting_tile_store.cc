#include "store/testing/fault_injecting_tile_store.h"

#include <algorithm>

namespace tessera::store {

void FaultInjectingTileStore::FailNth(StoreOp op, int64_t n, absl::Status status) {
  std::lock_guard<std::mutex> lock(mu_);
  const size_t i = static_cast<size_t>(op);
  faults_[i].push_back(Fault{calls_[i] + n, false, std::move(status)});
}

void FaultInjectingTileStore::FailNthWriteAfterApplying(int64_t n, absl::Status status) {
  std::lock_guard<std::mutex> lock(mu_);
  const size_t i = static_cast<size_t>(StoreOp::kWrite);
  faults_[i].push_back(Fault{calls_[i] + n, true, std::move(status)});
}

void FaultInjectingTileStore::CrashAfter(int64_t n, absl::Status status) {
  std::lock_guard<std::mutex> lock(mu_);
  crash_at_total_ = total_calls_ + n;
  crash_status_ = std::move(status);
}

void FaultInjectingTileStore::Heal() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& f : faults_) f.clear();
  crash_at_total_.reset();
}

int64_t FaultInjectingTileStore::calls(StoreOp op) const {
  std::lock_guard<std::mutex> lock(mu_);
  return calls_[static_cast<size_t>(op)];
}

int64_t FaultInjectingTileStore::total_calls() const {
  std::lock_guard<std::mutex> lock(mu_);
  return total_calls_;
}

int64_t FaultInjectingTileStore::failures() const {
  std::lock_guard<std::mutex> lock(mu_);
  return failures_;
}

bool FaultInjectingTileStore::crashed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return crash_at_total_.has_value() && total_calls_ >= *crash_at_total_;
}

FaultInjectingTileStore::Verdict FaultInjectingTileStore::Decide(StoreOp op, absl::Status* status) {
  std::lock_guard<std::mutex> lock(mu_);
  const size_t i = static_cast<size_t>(op);
  const int64_t call = ++calls_[i];
  ++total_calls_;
  if (op == StoreOp::kGetSnapshot) return Verdict::kPass;  // cannot fail, changes nothing
  if (crash_at_total_.has_value() && total_calls_ > *crash_at_total_) {
    ++failures_;
    *status = crash_status_;
    return Verdict::kFail;
  }
  auto& faults = faults_[i];
  auto it =
      std::find_if(faults.begin(), faults.end(), [&](const Fault& f) { return f.at_call == call; });
  if (it == faults.end()) return Verdict::kPass;
  ++failures_;
  *status = it->status;
  const Verdict v = it->apply_first ? Verdict::kApplyThenFail : Verdict::kFail;
  faults.erase(it);
  return v;
}

absl::Status FaultInjectingTileStore::ScanAt(
    const StoreSnapshot* snapshot, uint32_t view_id, std::string_view entity_key,
    Resolution resolution, int64_t from_ms, int64_t to_ms,
    const std::function<void(int64_t, std::string_view)>& fn) {
  absl::Status injected;
  if (Decide(StoreOp::kScan, &injected) != Verdict::kPass) return injected;
  return base_->ScanAt(snapshot, view_id, entity_key, resolution, from_ms, to_ms, fn);
}

std::shared_ptr<const StoreSnapshot> FaultInjectingTileStore::GetSnapshot() {
  absl::Status ignored;
  (void)Decide(StoreOp::kGetSnapshot, &ignored);
  return base_->GetSnapshot();
}

absl::Status FaultInjectingTileStore::MultiGet(const std::vector<TileKey>& keys,
                                               std::vector<std::optional<std::string>>* values) {
  absl::Status injected;
  if (Decide(StoreOp::kMultiGet, &injected) != Verdict::kPass) return injected;
  return base_->MultiGet(keys, values);
}

absl::Status FaultInjectingTileStore::Write(const WriteBatch& batch) {
  absl::Status injected;
  switch (Decide(StoreOp::kWrite, &injected)) {
    case Verdict::kPass:
      return base_->Write(batch);
    case Verdict::kFail:
      return injected;
    case Verdict::kApplyThenFail: {
      absl::Status s = base_->Write(batch);
      return s.ok() ? injected : s;
    }
  }
  return injected;
}

absl::StatusOr<std::optional<std::string>> FaultInjectingTileStore::GetMeta(std::string_view key) {
  absl::Status injected;
  if (Decide(StoreOp::kGetMeta, &injected) != Verdict::kPass) return injected;
  return base_->GetMeta(key);
}

absl::Status FaultInjectingTileStore::ScanMeta(
    std::string_view prefix, const std::function<void(std::string_view, std::string_view)>& fn) {
  absl::Status injected;
  if (Decide(StoreOp::kScanMeta, &injected) != Verdict::kPass) return injected;
  return base_->ScanMeta(prefix, fn);
}

absl::Status FaultInjectingTileStore::Sync() {
  absl::Status injected;
  if (Decide(StoreOp::kSync, &injected) != Verdict::kPass) return injected;
  return base_->Sync();
}

absl::StatusOr<std::unique_ptr<ViewCursor>> FaultInjectingTileStore::NewViewCursor(
    uint32_t view_id, const EntityRange& range) {
  absl::Status injected;
  if (Decide(StoreOp::kScan, &injected) != Verdict::kPass) return injected;
  return base_->NewViewCursor(view_id, range);
}

absl::Status FaultInjectingTileStore::DeleteViewTiles(uint32_t first_view_id,
                                                      uint32_t last_view_id) {
  absl::Status injected;
  if (Decide(StoreOp::kDeleteViewTiles, &injected) != Verdict::kPass) return injected;
  return base_->DeleteViewTiles(first_view_id, last_view_id);
}

}  // namespace tessera::store
