#include "store/memory/memory_slot_store.h"

#include <fmt/format.h>

#include <algorithm>
#include <iterator>
#include <utility>

#include "common/status_macros.h"
#include "store/key_codec.h"

namespace tessera::store {

namespace {

using TileId = std::tuple<uint32_t, std::string, uint8_t, int64_t>;

constexpr uint64_t kMaxN = 0xffffffffu;
constexpr uint64_t kMaxGeneration = 0xffffffffu;

TileId IdOf(const TileKey& k) {
  return TileId(k.view_id, k.entity_key, static_cast<uint8_t>(k.resolution), k.start_ms);
}

template <typename Tables>
class MemorySlotSnapshot final : public StoreSnapshot {
 public:
  explicit MemorySlotSnapshot(Tables tables) : tables(std::move(tables)) {}
  const Tables tables;
};

// The newest valid cell of `versions` under `row` (null: the slot has no row), or null.
template <typename Versions, typename SlotRow>
const std::string* NewestValid(const Versions& versions, const SlotRow* row) {
  if (row == nullptr) return nullptr;
  for (auto it = versions.rbegin(); it != versions.rend(); ++it) {
    auto committed = row->committed.find(it->first >> 32);
    if (committed != row->committed.end() && committed->second >= (it->first & kMaxN)) {
      return &it->second;
    }
  }
  return nullptr;
}

template <typename Tables>
const typename Tables::mapped_type* Find(const Tables& map, std::string_view key) {
  auto it = map.find(key);
  return it == map.end() ? nullptr : &it->second;
}

}  // namespace

std::shared_ptr<const StoreSnapshot> MemorySlotTileStore::GetSnapshot() {
  ReaderMutexLock lock(&state_->mu_);
  return std::make_shared<MemorySlotSnapshot<MemorySlotState::Tables>>(state_->tables_);
}

absl::Status MemorySlotTileStore::ScanAt(const StoreSnapshot* snapshot, uint32_t view_id,
                                         std::string_view entity_key, Resolution resolution,
                                         int64_t from_ms, int64_t to_ms,
                                         const std::function<void(int64_t, std::string_view)>& fn) {
  if (from_ms >= to_ms) return absl::OkStatus();
  std::vector<std::pair<int64_t, std::string>> found;
  {
    ReaderMutexLock lock(&state_->mu_);
    const MemorySlotState::Tables& tables =
        snapshot != nullptr
            ? static_cast<const MemorySlotSnapshot<MemorySlotState::Tables>*>(snapshot)->tables
            : state_->tables_;
    const auto res = static_cast<uint8_t>(resolution);
    TileId lower(view_id, std::string(entity_key), res, from_ms);
    for (auto it = tables.cells.lower_bound(lower); it != tables.cells.end(); ++it) {
      const auto& [view, key, r, start] = it->first;
      if (view != view_id || key != entity_key || r != res || start >= to_ms) break;
      for (const auto& [slot, versions] : it->second) {
        if (const std::string* cell = NewestValid(versions, Find(tables.slots, slot))) {
          found.emplace_back(start, *cell);
        }
      }
    }
  }
  for (const auto& [start, bytes] : found) fn(start, bytes);
  return absl::OkStatus();
}

absl::Status MemorySlotTileStore::MultiGet(const std::vector<TileKey>& keys,
                                           std::vector<std::optional<std::string>>* values) {
  return MultiGetSlot("", keys, values);
}

absl::Status MemorySlotTileStore::MultiGetSlot(std::string_view slot,
                                               const std::vector<TileKey>& keys,
                                               std::vector<std::optional<std::string>>* values) {
  values->assign(keys.size(), std::nullopt);
  ReaderMutexLock lock(&state_->mu_);
  const MemorySlotState::SlotRow* row = Find(state_->tables_.slots, slot);
  if (row == nullptr) return absl::OkStatus();
  for (size_t i = 0; i < keys.size(); ++i) {
    auto tile = state_->tables_.cells.find(IdOf(keys[i]));
    if (tile == state_->tables_.cells.end()) continue;
    const MemorySlotState::Versions* versions = Find(tile->second, slot);
    if (versions == nullptr) continue;
    if (const std::string* cell = NewestValid(*versions, row)) (*values)[i] = *cell;
  }
  return absl::OkStatus();
}

absl::Status MemorySlotTileStore::Write(const WriteBatch& batch) {
  MutexLock write_lock(&write_mu_);
  absl::Status status;
  for (int attempt = 0; attempt < kMaxWriteAttempts; ++attempt) {
    bool claimed;
    {
      MutexLock lock(&claims_mu_);
      claimed = claims_.contains("");
    }
    if (!claimed) {
      absl::StatusOr<SlotClaim> claim = ClaimSlot("");
      if (!claim.ok()) return claim.status();
    }
    bool fenced = false;
    status = Commit("", batch, &fenced);
    if (!fenced) return status;
  }
  return absl::AbortedError(fmt::format("Write: the default slot was fenced {} times in a row: {}",
                                        kMaxWriteAttempts, std::string(status.message())));
}

absl::StatusOr<std::optional<std::string>> MemorySlotTileStore::GetMeta(std::string_view key) {
  ReaderMutexLock lock(&state_->mu_);
  for (const auto& [slot, row] : state_->tables_.slots) {
    auto it = row.meta.find(key);
    if (it != row.meta.end()) return std::optional<std::string>(it->second);
  }
  return std::optional<std::string>();
}

absl::Status MemorySlotTileStore::ScanMeta(
    std::string_view prefix, const std::function<void(std::string_view, std::string_view)>& fn) {
  std::map<std::string, std::string, std::less<>> found;
  {
    ReaderMutexLock lock(&state_->mu_);
    for (const auto& [slot, row] : state_->tables_.slots) {
      for (auto it = row.meta.lower_bound(prefix); it != row.meta.end(); ++it) {
        if (!std::string_view(it->first).starts_with(prefix)) break;
        found.emplace(it->first, it->second);  // the first slot in name order wins
      }
    }
  }
  for (const auto& [key, value] : found) fn(key, value);
  return absl::OkStatus();
}

absl::StatusOr<SlotClaim> MemorySlotTileStore::ClaimSlot(std::string_view slot) {
  MutexLock claims_lock(&claims_mu_);
  SlotClaim claim;
  claim.slot = std::string(slot);
  {
    WriterMutexLock lock(&state_->mu_);
    auto& slots = state_->tables_.slots;
    auto it = slots.find(slot);
    if (it == slots.end()) it = slots.emplace(std::string(slot), MemorySlotState::SlotRow()).first;
    MemorySlotState::SlotRow& row = it->second;
    if (row.generation >= kMaxGeneration) {
      return absl::ResourceExhaustedError(
          fmt::format("slot '{}': no generation left to claim", slot));
    }
    claim.generation = ++row.generation;
    claim.meta.assign(row.meta.begin(), row.meta.end());
  }
  claims_.insert_or_assign(std::string(slot), Claim{claim.generation, 1});
  return claim;
}

absl::Status MemorySlotTileStore::CommitSlot(std::string_view slot, const WriteBatch& batch) {
  return Commit(slot, batch, nullptr);
}

void MemorySlotTileStore::DropClaim(std::string_view slot, uint64_t generation) {
  MutexLock lock(&claims_mu_);
  auto it = claims_.find(slot);
  if (it != claims_.end() && it->second.generation == generation) claims_.erase(it);
}

absl::Status MemorySlotTileStore::Commit(std::string_view slot, const WriteBatch& batch,
                                         bool* fenced) {
  if (fenced != nullptr) *fenced = false;
  if (!batch.tile_runs.empty()) {
    TESSERA_ASSIGN_OR_RETURN(WriteBatch expanded, ExpandTileRuns(batch));
    return Commit(slot, expanded, fenced);
  }
  uint64_t generation;
  uint64_t n;
  std::optional<std::pair<CommitFault, absl::Status>> fault;
  std::function<void(std::string_view)> hook;
  {
    MutexLock lock(&claims_mu_);
    auto it = claims_.find(slot);
    if (it == claims_.end()) {
      return absl::FailedPreconditionError(
          fmt::format("slot '{}' is not claimed by this store (ClaimSlot first)", slot));
    }
    generation = it->second.generation;
    if (it->second.next_n > kMaxN) {
      claims_.erase(it);
      return absl::ResourceExhaustedError(fmt::format(
          "slot '{}': generation {} has no commit left; claim it again", slot, generation));
    }
    n = it->second.next_n++;
    fault = std::exchange(fault_, std::nullopt);
    hook = before_commit_hook_;
  }
  const uint64_t version = generation << 32 | n;
  auto fail = [&](absl::Status status) {
    DropClaim(slot, generation);
    return status;
  };

  // The cells: visible to nobody until the commit row says `generation` committed `n`.
  size_t cells_to_write = batch.tiles.size();
  if (fault.has_value() && fault->first == CommitFault::kDuringCells) cells_to_write /= 2;
  {
    WriterMutexLock lock(&state_->mu_);
    MemorySlotState::Tables& tables = state_->tables_;
    const MemorySlotState::SlotRow* row = Find(tables.slots, slot);
    for (size_t i = 0; i < cells_to_write; ++i) {
      const auto& [key, bytes] = batch.tiles[i];
      MemorySlotState::TileCells& tile = tables.cells[IdOf(key)];
      auto cells = tile.find(slot);
      if (cells == tile.end())
        cells = tile.emplace(std::string(slot), MemorySlotState::Versions()).first;
      MemorySlotState::Versions& versions = cells->second;
      // Keep the newest valid cell (what a reader uses until the commit) and anything newer
      // than `version` (a newer owner's); drop the rest, superseded or garbage.
      const std::string* keep = NewestValid(versions, row);
      for (auto v = versions.begin(); v != versions.end() && v->first < version;) {
        v = &v->second == keep ? std::next(v) : versions.erase(v);
      }
      versions.insert_or_assign(version, bytes);
    }
  }
  if (fault.has_value() && fault->first != CommitFault::kAfterCommitRow) {
    return fail(fault->second);
  }
  if (hook) hook(slot);

  // The commit row: one conditional single-row write.
  uint64_t current_generation = 0;
  {
    WriterMutexLock lock(&state_->mu_);
    MemorySlotState::SlotRow& row = state_->tables_.slots[std::string(slot)];
    current_generation = row.generation;
    if (current_generation == generation) {
      row.committed[generation] = n;
      for (const auto& [key, value] : batch.meta) row.meta.insert_or_assign(key, value);
      for (const std::string& key : batch.meta_deletes) {
        auto it = row.meta.find(key);
        if (it != row.meta.end()) row.meta.erase(it);
      }
    }
  }
  if (current_generation != generation) {
    if (fenced != nullptr) *fenced = true;
    return fail(
        absl::FailedPreconditionError(fmt::format("slot '{}' fenced: claimed with generation {}, "
                                                  "now generation {} (another owner claimed it)",
                                                  slot, generation, current_generation)));
  }
  if (fault.has_value()) return fail(fault->second);
  return absl::OkStatus();
}

void MemorySlotTileStore::FailNextCommit(CommitFault where, absl::Status status) {
  MutexLock lock(&claims_mu_);
  fault_.emplace(where, std::move(status));
}

void MemorySlotTileStore::SetBeforeCommitHook(std::function<void(std::string_view slot)> hook) {
  MutexLock lock(&claims_mu_);
  before_commit_hook_ = std::move(hook);
}

size_t MemorySlotTileStore::cell_count() const {
  ReaderMutexLock lock(&state_->mu_);
  size_t count = 0;
  for (const auto& [id, tile] : state_->tables_.cells) {
    for (const auto& [slot, versions] : tile) count += versions.size();
  }
  return count;
}

}  // namespace tessera::store
