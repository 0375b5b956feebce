#include "store/bigtable/bigtable_tile_store.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <exception>
#include <set>
#include <utility>

#include "common/errors.h"
#include "common/status_macros.h"
#include "store/bigtable/bigtable_client.h"
#include "store/bigtable/bigtable_util.h"
#include "store/key_codec.h"

namespace tessera::store {

namespace pb = ::google::bigtable::v2;
namespace admin = ::google::bigtable::admin::v2;
namespace bs = bigtable_schema;

namespace {

// Runs `body`, turning any exception (allocation failures, or one thrown by a caller's callback)
// into an Internal status so none crosses the store boundary.
template <typename Fn>
auto Guard(std::string_view op, const BigtableUri& uri, Fn&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const std::exception& e) {
    return Internal("Bigtable {} of {} threw: {}", op, uri.ToString(), e.what());
  } catch (...) {
    return Internal("Bigtable {} of {} threw a non-standard exception", op, uri.ToString());
  }
}

// ---- Filters and mutations ----------------------------------------------------------------

pb::RowFilter Chain(std::vector<pb::RowFilter> filters) {
  if (filters.size() == 1) return std::move(filters[0]);
  pb::RowFilter f;
  for (pb::RowFilter& sub : filters) *f.mutable_chain()->add_filters() = std::move(sub);
  return f;
}

pb::RowFilter LatestCellOnly() {
  pb::RowFilter f;
  f.set_cells_per_column_limit_filter(1);
  return f;
}

pb::RowFilter StripValues() {
  pb::RowFilter f;
  f.set_strip_value_transformer(true);
  return f;
}

// Columns of `family` whose qualifier is in [start, end) (end "" = no upper bound).
pb::RowFilter ColumnsFrom(std::string_view family, std::string_view start, std::string_view end) {
  pb::RowFilter f;
  pb::ColumnRange* r = f.mutable_column_range_filter();
  r->set_family_name(std::string(family));
  r->set_start_qualifier_closed(std::string(start));
  if (!end.empty()) r->set_end_qualifier_open(std::string(end));
  return f;
}

// The one column family:qualifier.
pb::RowFilter Column(std::string_view family, std::string_view qualifier) {
  pb::RowFilter f;
  pb::ColumnRange* r = f.mutable_column_range_filter();
  r->set_family_name(std::string(family));
  r->set_start_qualifier_closed(std::string(qualifier));
  r->set_end_qualifier_closed(std::string(qualifier));
  return f;
}

pb::RowFilter ValueEquals(std::string_view value) {
  pb::RowFilter f;
  f.mutable_value_range_filter()->set_start_value_closed(std::string(value));
  f.mutable_value_range_filter()->set_end_value_closed(std::string(value));
  return f;
}

// The tile cells of `slot` (qualifier = slot + 8 bytes) and, when the slot is a prefix of other
// slots' names, theirs (callers check the qualifier's length); null = every cell (slot "").
std::optional<pb::RowFilter> SlotColumns(std::string_view slot) {
  if (slot.empty()) return std::nullopt;
  const std::string end = PrefixSuccessor(slot);
  pb::RowFilter f;
  *f.mutable_interleave()->add_filters() = ColumnsFrom(bs::kBaseFamily, slot, end);
  *f.mutable_interleave()->add_filters() = ColumnsFrom(bs::kRollupFamily, slot, end);
  return f;
}

pb::Mutation SetCell(std::string_view family, std::string qualifier, int64_t timestamp_micros,
                     std::string value) {
  pb::Mutation m;
  pb::Mutation::SetCell* c = m.mutable_set_cell();
  c->set_family_name(std::string(family));
  c->set_column_qualifier(std::move(qualifier));
  c->set_timestamp_micros(timestamp_micros);
  c->set_value(std::move(value));
  return m;
}

pb::Mutation DeleteColumn(std::string_view family, std::string qualifier) {
  pb::Mutation m;
  m.mutable_delete_from_column()->set_family_name(std::string(family));
  m.mutable_delete_from_column()->set_column_qualifier(std::move(qualifier));
  return m;
}

pb::RowSet RowKeys(const std::vector<std::string>& keys, size_t begin, size_t end) {
  pb::RowSet rows;
  for (size_t i = begin; i < end; ++i) rows.add_row_keys(keys[i]);
  return rows;
}

// All slot rows: ['s', 't').
pb::RowSet SlotRows() {
  pb::RowSet rows;
  pb::RowRange* r = rows.add_row_ranges();
  r->set_start_key_closed(std::string(1, bs::kSlotRowPrefix));
  r->set_end_key_open(std::string(1, static_cast<char>(bs::kSlotRowPrefix + 1)));
  return rows;
}

// ---- URI ------------------------------------------------------------------------------------

bool AllOf(std::string_view s, bool (*ok)(char)) { return std::all_of(s.begin(), s.end(), ok); }
bool IsAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

}  // namespace

std::string BigtableUri::InstanceName() const {
  return fmt::format("projects/{}/instances/{}", project, instance);
}
std::string BigtableUri::TableName() const {
  return fmt::format("{}/tables/{}", InstanceName(), table);
}
std::string BigtableUri::ToString() const {
  return fmt::format("bigtable://{}/{}/{}", project, instance, table);
}

absl::StatusOr<BigtableUri> ParseBigtableUri(std::string_view uri) {
  constexpr std::string_view kScheme = "bigtable://";
  auto bad = [&](std::string_view why) {
    return InvalidArgument(
        "invalid Bigtable URI '{}': {} (expected bigtable://PROJECT/INSTANCE/TABLE)", uri, why);
  };
  if (!uri.starts_with(kScheme)) return bad("it must start with bigtable://");
  std::vector<std::string_view> parts;
  std::string_view rest = uri.substr(kScheme.size());
  while (true) {
    const size_t slash = rest.find('/');
    parts.push_back(rest.substr(0, slash));
    if (slash == std::string_view::npos) break;
    rest.remove_prefix(slash + 1);
  }
  if (parts.size() != 3) {
    return bad(fmt::format("it has {} part{} after bigtable://, not 3", parts.size(),
                           parts.size() == 1 ? "" : "s"));
  }
  const char* names[] = {"PROJECT", "INSTANCE", "TABLE"};
  for (size_t i = 0; i < 3; ++i) {
    if (parts[i].empty()) return bad(fmt::format("{} is empty", names[i]));
  }
  if (!AllOf(parts[0], [](char c) { return IsAlnum(c) || c == '-' || c == '.' || c == ':'; })) {
    return bad("PROJECT may only hold letters, digits, '-', '.' and ':'");
  }
  if (!AllOf(parts[1], [](char c) { return IsAlnum(c) || c == '-' || c == '_'; })) {
    return bad("INSTANCE may only hold letters, digits, '-' and '_'");
  }
  if (parts[2].size() > 50 || !(IsAlnum(parts[2][0]) || parts[2][0] == '_') ||
      !AllOf(parts[2], [](char c) { return IsAlnum(c) || c == '-' || c == '_' || c == '.'; })) {
    return bad("TABLE must match [_a-zA-Z0-9][-_.a-zA-Z0-9]* and have at most 50 characters");
  }
  return BigtableUri{std::string(parts[0]), std::string(parts[1]), std::string(parts[2])};
}

// ---- Reads ----------------------------------------------------------------------------------

// A snapshot: the commit state at GetSnapshot.
class BigtableTileStore::Snapshot final : public StoreSnapshot {
 public:
  Snapshot(const BigtableTileStore* store, std::shared_ptr<const CommitState> state)
      : store(store), state(std::move(state)) {}
  const BigtableTileStore* const store;
  const std::shared_ptr<const CommitState> state;
};

struct BigtableTileStore::ReadPlan {
  // Reads the rows (all of them: may be called again for a consistent re-read).
  std::function<absl::Status(std::vector<BigtableRow>*)> read;
  // Only this slot's cells count (MultiGet*); nullopt = every slot (Scan).
  std::optional<std::string_view> only_slot;
  const CommitState* pinned = nullptr;

  // Results: the rows, and per row the picked (slot, value) pairs, slots in name order (views
  // into `rows`).
  std::vector<BigtableRow> rows;
  std::vector<std::vector<std::pair<std::string_view, const std::string*>>> picked;
  // Slots with cells newer than the state (uncommitted, or committed after the state was read).
  std::set<std::string, std::less<>> newer_slots;
  // Some (tile, slot) has no valid cell but two newer ones: its valid cell was deleted during the
  // read (the slot wrote the tile twice), so the state is older than the rows.
  bool missing = false;

  enum class Cell { kValid, kGarbage, kNewer };
  static Cell Classify(const CommitState& state, std::string_view slot, uint64_t version) {
    auto it = state.find(slot);
    if (it == state.end()) return Cell::kNewer;
    const uint64_t g = bs::GenerationOf(version);
    auto c = it->second.committed.find(g);
    if (c != it->second.committed.end() && bs::CountOf(version) <= c->second) return Cell::kValid;
    // A generation older than the slot's current one can commit no more: its state is final.
    return g < it->second.generation ? Cell::kGarbage : Cell::kNewer;
  }

  void Evaluate(const CommitState& state) {
    picked.assign(rows.size(), {});
    newer_slots.clear();
    missing = false;
    struct Best {
      const std::string* value = nullptr;
      uint64_t version = 0;
      int newer = 0;
    };
    for (size_t i = 0; i < rows.size(); ++i) {
      std::map<std::string_view, Best> by_slot;
      for (const BigtableCell& cell : rows[i].cells) {
        std::optional<bs::SlotVersion> sv = bs::ParseTileQualifier(cell.qualifier);
        if (!sv.has_value() || (only_slot.has_value() && sv->slot != *only_slot)) continue;
        Best& b = by_slot[sv->slot];
        switch (Classify(state, sv->slot, sv->version)) {
          case Cell::kValid:
            if (b.value == nullptr || sv->version > b.version) {
              b.value = &cell.value;
              b.version = sv->version;
            }
            break;
          case Cell::kNewer:
            ++b.newer;
            break;
          case Cell::kGarbage:
            break;
        }
      }
      for (const auto& [slot, b] : by_slot) {
        if (b.value != nullptr) picked[i].emplace_back(slot, b.value);
        if (b.newer > 0) newer_slots.emplace(slot);
        if (b.value == nullptr && b.newer >= 2) missing = true;
      }
    }
  }
};

absl::Status BigtableTileStore::ReadConsistent(ReadPlan* plan) {
  if (plan->pinned != nullptr) {
    TESSERA_RETURN_IF_ERROR(plan->read(&plan->rows));
    plan->Evaluate(*plan->pinned);
    return absl::OkStatus();
  }
  TESSERA_ASSIGN_OR_RETURN(CachedState state, State(/*force=*/false));
  for (int attempt = 0;; ++attempt) {
    plan->rows.clear();
    TESSERA_RETURN_IF_ERROR(plan->read(&plan->rows));
    plan->Evaluate(*state.state);
    // The first read checks whether the cells it found newer than the state were committed
    // meanwhile; later reads ran after a fresh state, so only deleted cells make them retry.
    if (!plan->missing && (attempt > 0 || plan->newer_slots.empty())) return absl::OkStatus();
    if (attempt >= options_.max_read_restarts) {
      if (!plan->missing) return absl::OkStatus();
      return Aborted(
          "Bigtable read of {}: a tile's valid cell was deleted during the read (its slot rewrote "
          "it several times meanwhile), {} times in a row; retry",
          uri_.ToString(), attempt + 1);
    }
    TESSERA_ASSIGN_OR_RETURN(CachedState fresh, State(/*force=*/true));
    if (!plan->missing) {
      bool same = true;
      for (const std::string& slot : plan->newer_slots) {
        auto a = state.state->find(slot);
        auto b = fresh.state->find(slot);
        const bool a_has = a != state.state->end();
        const bool b_has = b != fresh.state->end();
        if (a_has != b_has || (a_has && !(a->second == b->second))) {
          same = false;
          break;
        }
      }
      // Nothing those slots committed since: the newer cells are uncommitted, and this
      // evaluation is the one under the fresh state too.
      if (same) return absl::OkStatus();
    }
    state = std::move(fresh);
  }
}

absl::StatusOr<BigtableTileStore::CachedState> BigtableTileStore::State(bool force) {
  const int64_t now = clock_->MonotonicNanos();
  if (!force) {
    MutexLock lock(&cache_mu_);
    if (cache_.state != nullptr &&
        now - cache_.fetched_nanos < options_.commit_state_cache_ms * 1'000'000) {
      return cache_;
    }
  }
  CommitState fresh;
  const pb::RowFilter filter = Chain({ColumnsFrom(bs::kSlotFamily, "", ""), LatestCellOnly()});
  absl::Status s = client_->ReadRows(SlotRows(), &filter, [&](BigtableRow&& row) {
    SlotCommits& c = fresh[row.key.substr(1)];
    for (const BigtableCell& cell : row.cells) {
      if (cell.family != bs::kSlotFamily) continue;
      std::optional<uint64_t> value = bs::ParseBigEndian64(cell.value);
      if (!value.has_value()) continue;
      if (cell.qualifier == bs::kGenerationColumn) {
        c.generation = *value;
      } else if (cell.qualifier.size() == 9 && cell.qualifier[0] == bs::kCommitColumnPrefix) {
        c.committed[*bs::ParseBigEndian64(std::string_view(cell.qualifier).substr(1))] = *value;
      }
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return Annotate(s, "reading the slots' commit state");
  return MergeState(fresh, now);
}

BigtableTileStore::CachedState BigtableTileStore::MergeState(const CommitState& fresh,
                                                             int64_t fetched_nanos) {
  MutexLock lock(&cache_mu_);
  auto merged = cache_.state != nullptr ? std::make_shared<CommitState>(*cache_.state)
                                        : std::make_shared<CommitState>();
  for (const auto& [slot, c] : fresh) {
    SlotCommits& m = (*merged)[slot];
    m.generation = std::max(m.generation, c.generation);
    for (const auto& [g, n] : c.committed) m.committed[g] = std::max(m.committed[g], n);
  }
  cache_.state = std::move(merged);
  cache_.fetched_nanos = std::max(cache_.fetched_nanos, fetched_nanos);
  return cache_;
}

void BigtableTileStore::MergeSlot(std::string_view slot, const SlotCommits& commits) {
  MutexLock lock(&cache_mu_);
  if (cache_.state == nullptr) return;  // the first read fetches everything anyway
  auto merged = std::make_shared<CommitState>(*cache_.state);
  SlotCommits& m = (*merged)[std::string(slot)];
  m.generation = std::max(m.generation, commits.generation);
  for (const auto& [g, n] : commits.committed) m.committed[g] = std::max(m.committed[g], n);
  cache_.state = std::move(merged);
}

std::shared_ptr<const StoreSnapshot> BigtableTileStore::GetSnapshot() {
  absl::StatusOr<CachedState> state = State(/*force=*/false);
  // The interface cannot fail here: without a readable state the snapshot pins nothing, and
  // reads through it read the current state (and fail the same way if Bigtable is still down).
  return std::make_shared<Snapshot>(this, state.ok() ? state->state : nullptr);
}

absl::Status BigtableTileStore::ScanAt(const StoreSnapshot* snapshot, uint32_t view_id,
                                       std::string_view entity_key, Resolution resolution,
                                       int64_t from_ms, int64_t to_ms,
                                       const std::function<void(int64_t, std::string_view)>& fn) {
  if (from_ms >= to_ms) return absl::OkStatus();
  return Guard("Scan", uri_, [&]() -> absl::Status {
    ReadPlan plan;
    if (snapshot != nullptr) {
      const auto* snap = dynamic_cast<const Snapshot*>(snapshot);
      if (snap == nullptr || snap->store != this) {
        return InvalidArgument("Bigtable Scan of {}: the snapshot is not from this store",
                               uri_.ToString());
      }
      plan.pinned = snap->state.get();  // null: the state was unreadable at GetSnapshot
    }
    const std::string prefix = EncodeTilePrefix(view_id, entity_key, resolution);
    pb::RowSet rows;
    pb::RowRange* range = rows.add_row_ranges();
    range->set_start_key_closed(EncodeTileKey(view_id, entity_key, resolution, from_ms));
    range->set_end_key_open(EncodeTileKey(view_id, entity_key, resolution, to_ms));
    plan.read = [&](std::vector<BigtableRow>* out) {
      return client_->ReadRows(rows, nullptr, [&](BigtableRow&& row) {
        if (row.key.size() != prefix.size() + kStartMsBytes || !row.key.starts_with(prefix)) {
          return DataLoss("Bigtable Scan of {}: unexpected row {} inside a tile range",
                          uri_.ToString(), PrintableKey(row.key));
        }
        out->push_back(std::move(row));
        return absl::OkStatus();
      });
    };
    TESSERA_RETURN_IF_ERROR(ReadConsistent(&plan));
    for (size_t i = 0; i < plan.rows.size(); ++i) {
      const int64_t start = DecodeTileStart(plan.rows[i].key);
      for (const auto& [slot, value] : plan.picked[i]) fn(start, *value);
    }
    return absl::OkStatus();
  });
}

absl::Status BigtableTileStore::MultiGet(const std::vector<TileKey>& keys,
                                         std::vector<std::optional<std::string>>* values) {
  return Guard("MultiGet", uri_, [&] { return MultiGetShared("", keys, values); });
}

namespace {

// The distinct encoded keys of `keys`, sorted, and for each input its index among them.
std::vector<std::string> UniqueKeys(const std::vector<TileKey>& keys, std::vector<size_t>* index) {
  std::vector<std::string> encoded;
  encoded.reserve(keys.size());
  for (const TileKey& k : keys) encoded.push_back(EncodeTileKey(k));
  std::vector<std::string> unique = encoded;
  std::sort(unique.begin(), unique.end());
  unique.erase(std::unique(unique.begin(), unique.end()), unique.end());
  index->clear();
  for (const std::string& e : encoded) {
    index->push_back(
        static_cast<size_t>(std::lower_bound(unique.begin(), unique.end(), e) - unique.begin()));
  }
  return unique;
}

}  // namespace

absl::Status BigtableTileStore::MultiGetShared(std::string_view slot,
                                               const std::vector<TileKey>& keys,
                                               std::vector<std::optional<std::string>>* values) {
  values->assign(keys.size(), std::nullopt);
  if (keys.empty()) return absl::OkStatus();
  std::vector<size_t> index;
  const std::vector<std::string> unique = UniqueKeys(keys, &index);
  const std::optional<pb::RowFilter> filter = SlotColumns(slot);
  ReadPlan plan;
  plan.only_slot = slot;
  plan.read = [&](std::vector<BigtableRow>* out) -> absl::Status {
    const size_t step = std::max<size_t>(options_.max_keys_per_read, 1);
    for (size_t b = 0; b < unique.size(); b += step) {
      TESSERA_RETURN_IF_ERROR(
          client_->ReadRows(RowKeys(unique, b, std::min(unique.size(), b + step)),
                            filter.has_value() ? &*filter : nullptr, [&](BigtableRow&& row) {
                              out->push_back(std::move(row));
                              return absl::OkStatus();
                            }));
    }
    return absl::OkStatus();
  };
  TESSERA_RETURN_IF_ERROR(ReadConsistent(&plan));
  std::map<std::string_view, const std::string*> found;
  for (size_t i = 0; i < plan.rows.size(); ++i) {
    if (!plan.picked[i].empty()) found[plan.rows[i].key] = plan.picked[i].front().second;
  }
  for (size_t i = 0; i < keys.size(); ++i) {
    auto it = found.find(unique[index[i]]);
    if (it != found.end()) (*values)[i] = *it->second;
  }
  return absl::OkStatus();
}

namespace {

enum class OwnedCell { kValid, kGarbage, kNewer };

// Validity of one of the slot's own cells as its owner knows it (exactly: older generations are
// final since the claim, and the owner's own commits are its own).
template <typename OwnerT>
OwnedCell ClassifyOwned(const OwnerT& owner, uint64_t version) {
  const uint64_t g = bs::GenerationOf(version);
  const uint64_t n = bs::CountOf(version);
  if (g == owner.generation)
    return n <= owner.committed_n ? OwnedCell::kValid : OwnedCell::kGarbage;
  if (g > owner.generation) return OwnedCell::kNewer;
  auto it = owner.older_committed.find(g);
  return it != owner.older_committed.end() && n <= it->second ? OwnedCell::kValid
                                                              : OwnedCell::kGarbage;
}

// The newest `count` of `versions` valid for `owner`, newest first.
template <typename OwnerT>
std::vector<uint64_t> NewestValid(const OwnerT& owner, std::vector<uint64_t> versions,
                                  size_t count) {
  std::vector<uint64_t> valid;
  for (uint64_t v : versions) {
    if (ClassifyOwned(owner, v) == OwnedCell::kValid) valid.push_back(v);
  }
  std::sort(valid.rbegin(), valid.rend());
  if (valid.size() > count) valid.resize(count);
  return valid;
}

// The slot's versions in `row` (qualifier = slot + 8 bytes exactly).
std::vector<uint64_t> SlotVersions(const BigtableRow& row, std::string_view slot) {
  std::vector<uint64_t> out;
  for (const BigtableCell& cell : row.cells) {
    std::optional<bs::SlotVersion> sv = bs::ParseTileQualifier(cell.qualifier);
    if (sv.has_value() && sv->slot == slot) out.push_back(sv->version);
  }
  return out;
}

}  // namespace

absl::Status BigtableTileStore::MultiGetSlot(std::string_view slot,
                                             const std::vector<TileKey>& keys,
                                             std::vector<std::optional<std::string>>* values) {
  return Guard("MultiGetSlot", uri_, [&]() -> absl::Status {
    SlotEntry* entry = Entry(slot);
    MutexLock lock(&entry->mu);
    if (entry->owner.has_value()) {
      bool fenced = false;
      TESSERA_RETURN_IF_ERROR(MultiGetOwned(slot, &*entry->owner, keys, values, &fenced));
      if (!fenced) return absl::OkStatus();
      // A newer generation wrote some of these tiles: this object is fenced without knowing
      // yet, and only the readers' commit state says what is valid now.
    }
    lock.Unlock();
    return MultiGetShared(slot, keys, values);
  });
}

absl::Status BigtableTileStore::MultiGetOwned(std::string_view slot, Owner* owner,
                                              const std::vector<TileKey>& keys,
                                              std::vector<std::optional<std::string>>* values,
                                              bool* fenced) {
  *fenced = false;
  values->assign(keys.size(), std::nullopt);
  if (keys.empty()) return absl::OkStatus();
  std::vector<size_t> index;
  const std::vector<std::string> unique = UniqueKeys(keys, &index);
  const std::optional<pb::RowFilter> filter = SlotColumns(slot);
  if (owner->versions.size() + unique.size() > options_.max_remembered_tiles) {
    owner->versions.clear();
  }
  std::map<std::string, std::string, std::less<>> found;
  const size_t step = std::max<size_t>(options_.max_keys_per_read, 1);
  for (size_t b = 0; b < unique.size(); b += step) {
    const size_t e = std::min(unique.size(), b + step);
    // Rows without a cell of the slot hold no version of it.
    for (size_t i = b; i < e; ++i) owner->versions[unique[i]].clear();
    TESSERA_RETURN_IF_ERROR(client_->ReadRows(
        RowKeys(unique, b, e), filter.has_value() ? &*filter : nullptr,
        [&](BigtableRow&& row) -> absl::Status {
          std::vector<uint64_t> versions = SlotVersions(row, slot);
          for (uint64_t v : versions) {
            if (bs::GenerationOf(v) > owner->generation) *fenced = true;
          }
          if (std::vector<uint64_t> best = NewestValid(*owner, versions, 1); !best.empty()) {
            for (BigtableCell& cell : row.cells) {
              std::optional<bs::SlotVersion> sv = bs::ParseTileQualifier(cell.qualifier);
              if (sv.has_value() && sv->slot == slot && sv->version == best[0]) {
                found[row.key] = std::move(cell.value);
                break;
              }
            }
          }
          owner->versions[row.key] = std::move(versions);
          return absl::OkStatus();
        }));
  }
  for (size_t i = 0; i < keys.size(); ++i) {
    auto it = found.find(unique[index[i]]);
    if (it != found.end()) (*values)[i] = it->second;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<std::string>> BigtableTileStore::GetMeta(std::string_view key) {
  return Guard("GetMeta", uri_, [&]() -> absl::StatusOr<std::optional<std::string>> {
    const pb::RowFilter filter = Chain({Column(bs::kMetaFamily, key), LatestCellOnly()});
    std::optional<std::string> value;
    // Rows arrive in key order, so the default slot's row ("s") comes first.
    absl::Status s = client_->ReadRows(SlotRows(), &filter, [&](BigtableRow&& row) {
      for (BigtableCell& cell : row.cells) {
        if (!value.has_value() && cell.family == bs::kMetaFamily && cell.qualifier == key) {
          value = std::move(cell.value);
        }
      }
      return absl::OkStatus();
    });
    if (!s.ok()) return Annotate(s, "GetMeta");
    return value;
  });
}

absl::Status BigtableTileStore::ScanMeta(
    std::string_view prefix, const std::function<void(std::string_view, std::string_view)>& fn) {
  return Guard("ScanMeta", uri_, [&]() -> absl::Status {
    const pb::RowFilter filter =
        Chain({ColumnsFrom(bs::kMetaFamily, prefix, PrefixSuccessor(prefix)), LatestCellOnly()});
    std::map<std::string, std::string> meta;
    absl::Status s = client_->ReadRows(SlotRows(), &filter, [&](BigtableRow&& row) {
      for (BigtableCell& cell : row.cells) {
        if (cell.family == bs::kMetaFamily && cell.qualifier.starts_with(prefix)) {
          meta.try_emplace(std::move(cell.qualifier), std::move(cell.value));
        }
      }
      return absl::OkStatus();
    });
    if (!s.ok()) return Annotate(s, "ScanMeta");
    for (const auto& [k, v] : meta) fn(k, v);
    return absl::OkStatus();
  });
}

// ---- Slots ----------------------------------------------------------------------------------

BigtableTileStore::SlotEntry* BigtableTileStore::Entry(std::string_view slot) {
  MutexLock lock(&slots_mu_);
  auto it = slots_.find(slot);
  if (it == slots_.end())
    it = slots_.emplace(std::string(slot), std::make_unique<SlotEntry>()).first;
  return it->second.get();
}

std::optional<uint64_t> BigtableTileStore::ClaimedGeneration(std::string_view slot) {
  SlotEntry* entry = Entry(slot);
  MutexLock lock(&entry->mu);
  if (!entry->owner.has_value()) return std::nullopt;
  return entry->owner->generation;
}

absl::StatusOr<SlotClaim> BigtableTileStore::ClaimSlot(std::string_view slot) {
  return Guard("ClaimSlot", uri_, [&]() -> absl::StatusOr<SlotClaim> {
    SlotEntry* entry = Entry(slot);
    MutexLock lock(&entry->mu);
    return ClaimLocked(slot, entry);
  });
}

absl::StatusOr<SlotClaim> BigtableTileStore::ClaimLocked(std::string_view slot, SlotEntry* entry) {
  entry->owner.reset();
  const std::string row_key = bs::SlotRowKey(slot);
  auto where = [&] { return fmt::format("ClaimSlot of slot '{}' in {}", slot, uri_.ToString()); };
  pb::ReadModifyWriteRule bump;
  bump.set_family_name(std::string(bs::kSlotFamily));
  bump.set_column_qualifier(std::string(bs::kGenerationColumn));
  bump.set_increment_amount(1);
  absl::StatusOr<BigtableRow> bumped = client_->ReadModifyWriteRow(row_key, {bump});
  if (!bumped.ok()) return Annotate(bumped.status(), where());
  std::optional<uint64_t> generation;
  for (const BigtableCell& cell : bumped->cells) {
    if (cell.family == bs::kSlotFamily && cell.qualifier == bs::kGenerationColumn) {
      generation = bs::ParseBigEndian64(cell.value);
    }
  }
  if (!generation.has_value() || *generation == 0 || *generation > 0xffffffffu) {
    return Internal("{}: ReadModifyWriteRow returned no valid generation", where());
  }

  // The slot row after the bump: every older generation's commits are final now.
  SlotCommits commits;
  SlotClaim claim;
  claim.slot = std::string(slot);
  claim.generation = *generation;
  pb::RowSet rows;
  rows.add_row_keys(row_key);
  const pb::RowFilter latest = LatestCellOnly();
  absl::Status s = client_->ReadRows(rows, &latest, [&](BigtableRow&& row) {
    for (BigtableCell& cell : row.cells) {
      if (cell.family == bs::kMetaFamily) {
        claim.meta.emplace_back(std::move(cell.qualifier), std::move(cell.value));
        continue;
      }
      if (cell.family != bs::kSlotFamily) continue;
      std::optional<uint64_t> value = bs::ParseBigEndian64(cell.value);
      if (!value.has_value()) continue;
      if (cell.qualifier == bs::kGenerationColumn) {
        commits.generation = *value;
      } else if (cell.qualifier.size() == 9 && cell.qualifier[0] == bs::kCommitColumnPrefix) {
        commits.committed[*bs::ParseBigEndian64(std::string_view(cell.qualifier).substr(1))] =
            *value;
      }
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return Annotate(s, where());
  if (commits.generation != *generation) {
    return FailedPrecondition(
        "{}: fenced: another owner claimed the slot at the same time (generation {} after our "
        "{})",
        where(), commits.generation, *generation);
  }
  std::sort(claim.meta.begin(), claim.meta.end());
  Owner owner;
  owner.generation = *generation;
  for (const auto& [g, n] : commits.committed) {
    if (g < *generation) owner.older_committed[g] = n;
    if (g == *generation) owner.committed_n = n;
  }
  entry->owner = std::move(owner);
  MergeSlot(slot, commits);
  return claim;
}

absl::Status BigtableTileStore::CommitSlot(std::string_view slot, const WriteBatch& batch) {
  return Guard("CommitSlot", uri_, [&] {
    bool fenced = false;
    return Commit(slot, batch, &fenced);
  });
}

void BigtableTileStore::SetTestHooks(TestHooks hooks) {
  MutexLock lock(&hooks_mu_);
  hooks_ = std::move(hooks);
}

absl::Status BigtableTileStore::Commit(std::string_view slot, const WriteBatch& batch,
                                       bool* fenced) {
  *fenced = false;
  if (!batch.tile_runs.empty()) {
    TESSERA_ASSIGN_OR_RETURN(WriteBatch expanded, ExpandTileRuns(batch));
    return Commit(slot, expanded, fenced);
  }
  SlotEntry* entry = Entry(slot);
  MutexLock lock(&entry->mu);
  if (!entry->owner.has_value()) {
    return FailedPrecondition(
        "CommitSlot of slot '{}' in {}: this store holds no claim of the slot (ClaimSlot first; "
        "a failed or fenced commit drops the claim)",
        slot, uri_.ToString());
  }
  TestHooks hooks;
  {
    MutexLock hooks_lock(&hooks_mu_);
    hooks = hooks_;
  }
  absl::StatusOr<PendingCommit> pending = WriteCells(slot, &*entry->owner, batch);
  absl::Status s = pending.status();
  if (s.ok() && hooks.before_commit_row) {
    const uint64_t generation = entry->owner->generation;
    lock.Unlock();  // the hook may use the store
    s = hooks.before_commit_row(slot);
    lock.Lock();
    if (s.ok() && (!entry->owner.has_value() || entry->owner->generation != generation)) {
      *fenced = true;
      s = FailedPrecondition(
          "CommitSlot of slot '{}' in {}: fenced: the slot was claimed again through this store "
          "during the commit",
          slot, uri_.ToString());
    }
  }
  if (s.ok()) s = CommitRow(slot, &*entry->owner, *pending, batch, fenced);
  if (s.ok() && hooks.after_commit_row) s = hooks.after_commit_row(slot);
  // Whatever failed, the claim is dropped: a generation that may have left uncommitted cells
  // behind never commits again (so they stay invalid forever).
  if (!s.ok()) entry->owner.reset();
  return s;
}

absl::StatusOr<BigtableTileStore::PendingCommit> BigtableTileStore::WriteCells(
    std::string_view slot, Owner* owner, const WriteBatch& batch) {
  PendingCommit p;
  p.generation = owner->generation;
  p.n = owner->committed_n + 1;
  const uint64_t g = p.generation;
  auto where = [&] {
    return fmt::format("CommitSlot of slot '{}' in {} (version {}:{})", slot, uri_.ToString(), g,
                       p.n);
  };
  if (p.n > 0xffffffffu) {
    return ResourceExhausted("{}: the generation has used all its versions; claim the slot again",
                             where());
  }
  const uint64_t version = bs::MakeVersion(g, p.n);

  // The batch's tiles, the last entry of a key winning.
  struct TileWrite {
    const TileKey* tile;
    const std::string* value;
  };
  std::vector<TileWrite> writes;
  {
    std::map<std::string, size_t, std::less<>> index;
    for (const auto& [tile, bytes] : batch.tiles) {
      std::string key = EncodeTileKey(tile);
      auto [it, inserted] = index.emplace(key, writes.size());
      if (inserted) {
        writes.push_back(TileWrite{&tile, &bytes});
        p.keys.push_back(std::move(key));
      } else {
        writes[it->second] = TileWrite{&tile, &bytes};
      }
    }
  }

  // Which of the slot's versions the rows hold: remembered, or read now.
  if (owner->versions.size() + writes.size() > options_.max_remembered_tiles) {
    owner->versions.clear();
  }
  std::vector<std::string> unknown;
  for (const std::string& key : p.keys) {
    if (!owner->versions.contains(key)) unknown.push_back(key);
  }
  if (!unknown.empty()) {
    std::sort(unknown.begin(), unknown.end());
    std::optional<pb::RowFilter> columns = SlotColumns(slot);
    const pb::RowFilter filter =
        columns.has_value() ? Chain({*columns, StripValues()}) : StripValues();
    const size_t step = std::max<size_t>(options_.max_keys_per_read, 1);
    for (size_t b = 0; b < unknown.size(); b += step) {
      const size_t e = std::min(unknown.size(), b + step);
      for (size_t i = b; i < e; ++i) owner->versions[unknown[i]].clear();
      absl::Status s = client_->ReadRows(RowKeys(unknown, b, e), &filter, [&](BigtableRow&& row) {
        owner->versions[row.key] = SlotVersions(row, slot);
        return absl::OkStatus();
      });
      if (!s.ok()) return Annotate(s, fmt::format("{}: reading the rows' versions", where()));
    }
  }

  // The cells, each with the deletes of the versions it supersedes: every cell of this or an
  // older generation except the newest 1 + superseded_cells_kept valid ones.
  std::vector<pb::MutateRowsRequest::Entry> entries;
  entries.reserve(writes.size());
  p.kept.resize(writes.size());
  for (size_t i = 0; i < writes.size(); ++i) {
    const TileWrite& w = writes[i];
    const std::string_view family = bs::FamilyOf(w.tile->resolution);
    const std::vector<uint64_t>& have = owner->versions[p.keys[i]];
    const std::vector<uint64_t> keep = NewestValid(
        *owner, have, 1 + static_cast<size_t>(std::max(0, options_.superseded_cells_kept)));
    pb::MutateRowsRequest::Entry& e = entries.emplace_back();
    e.set_row_key(p.keys[i]);
    for (uint64_t v : have) {
      if (v == version) continue;
      if (bs::GenerationOf(v) > g || std::find(keep.begin(), keep.end(), v) != keep.end()) {
        p.kept[i].push_back(v);
        continue;
      }
      *e.add_mutations() = DeleteColumn(family, bs::TileQualifier(slot, v));
    }
    *e.add_mutations() = SetCell(family, bs::TileQualifier(slot, version),
                                 bs::TileTimestampMicros(w.tile->start_ms), *w.value);
    p.kept[i].push_back(version);
  }
  absl::Status s = client_->MutateRows(std::move(entries));
  if (!s.ok()) return Annotate(s, fmt::format("{}: writing the tile cells", where()));
  return p;
}

absl::Status BigtableTileStore::CommitRow(std::string_view slot, Owner* owner,
                                          const PendingCommit& p, const WriteBatch& batch,
                                          bool* fenced) {
  const uint64_t g = p.generation;
  const uint64_t n = p.n;
  auto where = [&] {
    return fmt::format("CommitSlot of slot '{}' in {} (version {}:{})", slot, uri_.ToString(), g,
                       n);
  };
  const pb::RowFilter predicate = Chain({Column(bs::kSlotFamily, bs::kGenerationColumn),
                                         LatestCellOnly(), ValueEquals(bs::BigEndian64(g))});
  std::vector<pb::Mutation> mutations;
  mutations.reserve(1 + batch.meta.size() + batch.meta_deletes.size());
  mutations.push_back(SetCell(bs::kSlotFamily, bs::CommitColumn(g), 0, bs::BigEndian64(n)));
  for (const auto& [key, value] : batch.meta) {
    mutations.push_back(SetCell(bs::kMetaFamily, key, 0, value));
  }
  for (const std::string& key : batch.meta_deletes) {
    mutations.push_back(DeleteColumn(bs::kMetaFamily, key));
  }
  const std::string row_key = bs::SlotRowKey(slot);
  absl::StatusOr<BigtableClient::CheckAndMutateResult> result =
      client_->CheckAndMutateRow(row_key, predicate, std::move(mutations));
  if (!result.ok()) {
    return Annotate(result.status(), fmt::format("{}: committing (outcome unknown)", where()));
  }
  bool committed = result->predicate_matched;
  if (!committed && result->retried_after_unknown_outcome) {
    // An earlier attempt may have committed before another owner's claim made the predicate
    // false: our own commit column tells (nobody else writes it).
    pb::RowSet rows;
    rows.add_row_keys(row_key);
    const pb::RowFilter filter =
        Chain({Column(bs::kSlotFamily, bs::CommitColumn(g)), LatestCellOnly()});
    absl::Status rs = client_->ReadRows(rows, &filter, [&](BigtableRow&& row) {
      for (const BigtableCell& cell : row.cells) {
        if (bs::ParseBigEndian64(cell.value) == n) committed = true;
      }
      return absl::OkStatus();
    });
    if (!rs.ok()) return Annotate(rs, fmt::format("{}: checking a retried commit", where()));
  }
  if (!committed) {
    *fenced = true;
    return FailedPrecondition(
        "{}: fenced: another owner claimed the slot after generation {}; nothing of this flush "
        "becomes visible",
        where(), g);
  }
  owner->committed_n = n;
  // Forgotten after each commit: the next flush reads the tiles it merges into first
  // (MultiGetSlot), which tells their versions again, so memory stays one flush's tiles.
  owner->versions.clear();
  SlotCommits mine;
  mine.generation = g;
  mine.committed[g] = n;
  MergeSlot(slot, mine);
  return absl::OkStatus();
}

absl::Status BigtableTileStore::Write(const WriteBatch& batch) {
  if (batch.empty()) return absl::OkStatus();
  return Guard("Write", uri_, [&]() -> absl::Status {
    MutexLock write_lock(&write_mu_);
    for (int attempt = 0;; ++attempt) {
      if (!ClaimedGeneration("").has_value()) {
        absl::StatusOr<SlotClaim> claim = ClaimSlot("");
        if (!claim.ok()) return Annotate(claim.status(), "Write (claiming the default slot)");
      }
      bool fenced = false;
      absl::Status s = Commit("", batch, &fenced);
      if (s.ok() || !fenced || attempt >= options_.write_fence_retries) return s;
    }
  });
}

// ---- Open, create ---------------------------------------------------------------------------

BigtableTileStore::BigtableTileStore(BigtableUri uri, const BigtableOptions& options,
                                     std::unique_ptr<BigtableClient> client)
    : uri_(std::move(uri)),
      options_(options),
      clock_(options.clock != nullptr ? options.clock : SystemClock::Default()),
      client_(std::move(client)) {}

BigtableTileStore::~BigtableTileStore() = default;

namespace {

constexpr std::string_view kFamilies[] = {bs::kBaseFamily, bs::kRollupFamily, bs::kSlotFamily,
                                          bs::kMetaFamily};

std::string DescribeGcRule(const admin::GcRule& rule) {
  switch (rule.rule_case()) {
    case admin::GcRule::kMaxNumVersions:
      return fmt::format("max_versions {}", rule.max_num_versions());
    case admin::GcRule::kMaxAge: {
      const int64_t ms = rule.max_age().seconds() * 1000 + rule.max_age().nanos() / 1'000'000;
      return ms % 1000 == 0 ? fmt::format("max_age {}s", ms / 1000)
                            : fmt::format("max_age {}ms", ms);
    }
    case admin::GcRule::kIntersection:
      return "an intersection rule";
    case admin::GcRule::kUnion:
      return "a union rule";
    case admin::GcRule::RULE_NOT_SET:
      break;
  }
  return "none";
}

}  // namespace

absl::StatusOr<std::unique_ptr<BigtableTileStore>> OpenBigtableStore(
    std::string_view uri_text, const BigtableOptions& options) {
  TESSERA_ASSIGN_OR_RETURN(BigtableUri uri, ParseBigtableUri(uri_text));
  TESSERA_ASSIGN_OR_RETURN(std::unique_ptr<BigtableClient> client,
                           BigtableClient::Create(uri, options));
  if (options.check_table) {
    absl::StatusOr<admin::Table> table = client->GetTable();
    if (table.status().code() == absl::StatusCode::kNotFound) {
      return NotFound(
          "Bigtable table {} does not exist (at {}): run `tessera store init --store {}`",
          uri.TableName(), client->data_target(), uri.ToString());
    }
    if (!table.ok()) return Annotate(table.status(), fmt::format("opening {}", uri.ToString()));
    std::vector<std::string> missing;
    for (std::string_view f : kFamilies) {
      if (!table->column_families().contains(std::string(f))) missing.emplace_back(f);
    }
    if (!missing.empty()) {
      return FailedPrecondition(
          "Bigtable table {} lacks column famil{} {}: run `tessera store init --store {}` (it adds "
          "them)",
          uri.TableName(), missing.size() == 1 ? "y" : "ies", fmt::join(missing, ", "),
          uri.ToString());
    }
  }
  return std::unique_ptr<BigtableTileStore>(new BigtableTileStore(uri, options, std::move(client)));
}

absl::StatusOr<BigtableTableSetup> CreateBigtableTable(std::string_view uri_text,
                                                       const BigtableOptions& options,
                                                       int64_t base_retention_ms) {
  TESSERA_ASSIGN_OR_RETURN(BigtableUri uri, ParseBigtableUri(uri_text));
  if (base_retention_ms < 0) {
    return InvalidArgument("creating {}: base retention {} ms is negative", uri.ToString(),
                           base_retention_ms);
  }
  TESSERA_ASSIGN_OR_RETURN(std::unique_ptr<BigtableClient> client,
                           BigtableClient::Create(uri, options));
  std::map<std::string, admin::ColumnFamily> want;
  {
    admin::ColumnFamily base;
    if (base_retention_ms > 0) {
      base.mutable_gc_rule()->mutable_max_age()->set_seconds(base_retention_ms / 1000);
      base.mutable_gc_rule()->mutable_max_age()->set_nanos(
          static_cast<int32_t>(base_retention_ms % 1000 * 1'000'000));
    }
    admin::ColumnFamily one_version;
    one_version.mutable_gc_rule()->set_max_num_versions(1);
    want[std::string(bs::kBaseFamily)] = base;
    want[std::string(bs::kRollupFamily)] = admin::ColumnFamily();
    want[std::string(bs::kSlotFamily)] = one_version;
    want[std::string(bs::kMetaFamily)] = one_version;
  }
  admin::Table table;
  table.set_granularity(admin::Table::MILLIS);
  for (const auto& [id, cf] : want) (*table.mutable_column_families())[id] = cf;
  absl::StatusOr<admin::Table> created = client->CreateTable(uri.InstanceName(), uri.table, table);
  BigtableTableSetup setup;
  if (created.ok()) {
    setup.created = true;
    if (base_retention_ms > 0) {
      // The emulator applies GC rules only once a family was modified, not those given at
      // CreateTable; restating the rule is a no-op on Bigtable.
      std::vector<admin::ModifyColumnFamiliesRequest::Modification> mods(1);
      mods[0].set_id(std::string(bs::kBaseFamily));
      *mods[0].mutable_update() = want[std::string(bs::kBaseFamily)];
      absl::StatusOr<admin::Table> modified = client->ModifyColumnFamilies(std::move(mods));
      if (!modified.ok()) {
        return Annotate(modified.status(),
                        fmt::format("setting the GC rule of {}", uri.ToString()));
      }
    }
    return setup;
  }
  if (created.status().code() != absl::StatusCode::kAlreadyExists) {
    return Annotate(created.status(), fmt::format("creating {}", uri.ToString()));
  }
  absl::StatusOr<admin::Table> existing = client->GetTable();
  if (!existing.ok()) {
    return Annotate(existing.status(), fmt::format("reading the existing {}", uri.ToString()));
  }
  std::vector<admin::ModifyColumnFamiliesRequest::Modification> mods;
  for (const auto& [id, cf] : want) {
    auto it = existing->column_families().find(id);
    if (it == existing->column_families().end()) {
      auto& m = mods.emplace_back();
      m.set_id(id);
      *m.mutable_create() = cf;
      setup.changes.push_back(
          fmt::format("created column family {} (GC: {})", id, DescribeGcRule(cf.gc_rule())));
    } else if (it->second.gc_rule().SerializeAsString() != cf.gc_rule().SerializeAsString()) {
      auto& m = mods.emplace_back();
      m.set_id(id);
      *m.mutable_update() = cf;
      setup.changes.push_back(fmt::format("column family {}: GC rule {} -> {}", id,
                                          DescribeGcRule(it->second.gc_rule()),
                                          DescribeGcRule(cf.gc_rule())));
    }
  }
  if (!mods.empty()) {
    absl::StatusOr<admin::Table> modified = client->ModifyColumnFamilies(std::move(mods));
    if (!modified.ok()) {
      return Annotate(modified.status(),
                      fmt::format("updating the column families of {}", uri.ToString()));
    }
  }
  return setup;
}

absl::Status DeleteBigtableTable(std::string_view uri_text, const BigtableOptions& options) {
  TESSERA_ASSIGN_OR_RETURN(BigtableUri uri, ParseBigtableUri(uri_text));
  TESSERA_ASSIGN_OR_RETURN(std::unique_ptr<BigtableClient> client,
                           BigtableClient::Create(uri, options));
  return client->DeleteTable();
}

}  // namespace tessera::store
