#include "engine/feature_reader.h"

#include <algorithm>
#include <limits>
#include <memory>
#include <optional>
#include <span>

#include "common/column.h"
#include "common/errors.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "common/time_util.h"
#include "engine/entity_key.h"
#include "engine/fetched_tiles.h"
#include "engine/lifetime.h"
#include "engine/retention.h"
#include "sql/expr.h"
#include "tile/ladder.h"
#include "tile/tile_layout.h"
#include "tile/tile_math.h"

namespace tessera::engine {

absl::StatusOr<std::vector<WindowSpec>> ParseWindows(std::string_view list, int64_t tile_ms) {
  std::vector<WindowSpec> out;
  size_t start = 0;
  while (start <= list.size()) {
    size_t comma = list.find(',', start);
    if (comma == std::string_view::npos) comma = list.size();
    std::string_view item = list.substr(start, comma - start);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (item.empty()) {
      return InvalidArgument("empty window in '{}': expected a list like 5m,1h,6h,1d", list);
    }
    int64_t ms = kLifetimeWindowMs;
    if (!EqualsIgnoreCase(item, "all")) {
      absl::StatusOr<int64_t> parsed = ParseDurationMillis(item);
      if (!parsed.ok()) {
        return InvalidArgument("{}, or 'all' for the lifetime window",
                               StatusMessage(parsed.status()));
      }
      ms = *parsed;
      TESSERA_RETURN_IF_ERROR(tile::ValidateWindow(ms, tile_ms));
    }
    const std::string name = ms == kLifetimeWindowMs ? "all" : std::string(item);
    for (const WindowSpec& w : out) {
      if (w.name == name) return InvalidArgument("window '{}' is listed twice in '{}'", item, list);
    }
    if (out.size() == kMaxWindowsPerRead) {
      return InvalidArgument("more than {} windows in '{}'", kMaxWindowsPerRead, list);
    }
    out.push_back(WindowSpec{name, ms});
    start = comma + 1;
  }
  return out;
}

int64_t WindowFrom(const WindowSpec& w, int64_t at_ms, int64_t tile_ms) {
  if (w.lifetime()) return kMinTimestampMs;
  return tile::ComputeWindow(at_ms, w.length_ms, tile_ms).from_ms;
}

namespace {

using Ranges = std::vector<std::pair<int64_t, int64_t>>;

// `ranges` sorted, with overlapping or touching ranges joined.
Ranges Coalesce(Ranges ranges) {
  std::sort(ranges.begin(), ranges.end());
  Ranges out;
  for (const auto& r : ranges) {
    if (!out.empty() && r.first <= out.back().second) {
      out.back().second = std::max(out.back().second, r.second);
    } else {
      out.push_back(r);
    }
  }
  return out;
}

// Index of a resolution in per-resolution arrays: day, hour, base.
size_t ResolutionIndex(store::Resolution r) {
  return r == store::Resolution::kDay ? 0 : r == store::Resolution::kHour ? 1 : 2;
}

}  // namespace

// Everything a read needs besides its inputs and result, kept across the reads of a context.
struct FeatureReader::Context::State {
  // What the blocks and the finalizer below are laid out for, and the store of `scanner`.
  const ViewRuntime* view = nullptr;
  store::TileStore* store = nullptr;
  std::optional<tile::OwnedBlock> acc;
  std::vector<std::unique_ptr<tile::OwnedBlock>> open_blocks;  // per window, reset per read
  std::vector<std::byte*> open_data;                           // their data()
  std::optional<FeatureFinalizer> finalizer;
  // Reads without a snapshot (no open tiles) share it; made by the first of them.
  std::unique_ptr<store::TileScanner> scanner;
  // Reads paired with open tiles share one per store snapshot (the open tiles' snapshot changes
  // only at a flush): the last one, and the snapshot it reads (kept alive here).
  std::shared_ptr<const store::StoreSnapshot> snapshot;
  std::unique_ptr<store::TileScanner> snapshot_scanner;
  FetchedTiles fetched[3];  // day, hour, base
  FetchedTiles& Fetched(store::Resolution r) { return fetched[ResolutionIndex(r)]; }
  // Every stored tile of the key in the read's extent, of all resolutions, read with one
  // ScanSpan when there are at most kMaxSpanTiles of them holding at most kMaxSpanBytes (a
  // typical key's); Fetch then takes its tiles from here. `span_valid` is false when the key
  // has more (each resolution is then scanned over the ranges it needs only).
  static constexpr size_t kMaxSpanTiles = 64;
  static constexpr size_t kMaxSpanBytes = 16 << 10;  // a heavy key's sketches stop it early
  bool span_valid = false;
  FetchedTiles span[3];  // day, hour, base
  FetchedTiles& Span(store::Resolution r) { return span[ResolutionIndex(r)]; }
  // Per part of the read (FeatureReader::MergeWindows): the ranges of each resolution it merges.
  std::vector<Ranges> rollup_ranges[2];  // [0] day, [1] hour
  std::vector<Ranges> base_ranges;

  void Prepare(const ViewRuntime* v, store::TileStore* s) {
    if (view == v && store == s) return;
    if (view != v) {
      acc.emplace(*v->layout);
      open_blocks.clear();
      finalizer.emplace(*v);
    }
    if (store != s) {
      scanner.reset();
      snapshot_scanner.reset();
      snapshot.reset();
    }
    view = v;
    store = s;
  }
};

FeatureReader::Context::Context() : state_(std::make_unique<State>()) {}
FeatureReader::Context::~Context() = default;

void FeatureReader::Context::Refresh() {
  if (state_->scanner != nullptr) state_->scanner->Refresh();
}

FeatureFinalizer::FeatureFinalizer(const ViewRuntime& view)
    : view_(view), agg_columns_(view.layout->num_slots()), agg_values_(view.layout->num_slots()) {
  for (const sql::FeatureColumn& f : view.def->features) {
    evals_.push_back(f.expr->kind == sql::Expr::Kind::kAggRef
                         ? nullptr
                         : std::make_unique<sql::ExprEvaluator>(*f.expr));
    has_exprs_ = has_exprs_ || evals_.back() != nullptr;
  }
}

FeatureFinalizer::~FeatureFinalizer() = default;

void FeatureFinalizer::Finalize(const std::byte* block, int64_t at_ms, std::vector<Value>* out) {
  const tile::TileLayout& layout = *view_.layout;
  // Finalize every slot, then evaluate the features over a one-row batch of slot values.
  for (size_t a = 0; a < layout.num_slots(); ++a) {
    agg_values_[a] = layout.agg(a).FinalizeAt(block + layout.offset(a), at_ms);
    if (!has_exprs_) continue;  // every feature is a bare aggregate: no batch to evaluate over
    const DataType t = layout.agg(a).result_type();
    if (IsNested(t)) {
      agg_columns_[a].Reset(DataType::kNull, 1);
    } else {
      agg_columns_[a].Reset(t, 1);
      agg_columns_[a].SetValue(0, agg_values_[a], &arena_);
    }
  }
  out->clear();
  const auto& features = view_.def->features;
  for (size_t f = 0; f < features.size(); ++f) {
    if (evals_[f] == nullptr) {
      out->push_back(agg_values_[features[f].expr->index]);
      continue;
    }
    const Column& c = evals_[f]->Evaluate(std::span<const Column>(agg_columns_), 1, &arena_);
    out->push_back(c.GetValue(0));
  }
  arena_.Reset();
}

absl::Status FeatureReader::Fetch(store::Resolution resolution, const std::vector<Ranges>& ranges,
                                  store::TileScanner* scanner, std::string_view key,
                                  Context::State* state, int64_t* tiles_read) const {
  FetchedTiles* out = &state->Fetched(resolution);
  out->Clear();
  if (key.size() > store_->max_entity_key_bytes()) return absl::OkStatus();  // no tile can exist
  Ranges all;
  for (const Ranges& per_window : ranges) {
    all.insert(all.end(), per_window.begin(), per_window.end());
  }
  const Ranges merged = Coalesce(std::move(all));
  for (const auto& [from, to] : merged) {
    if (state->span_valid) {
      state->Span(resolution).ForEach(from, to, [out](int64_t start, std::string_view bytes) {
        out->Add(start, bytes);
      });
      continue;
    }
    TESSERA_RETURN_IF_ERROR(
        scanner->Scan(view_->id, key, resolution, from, to,
                      [out](int64_t start, std::string_view bytes) { out->Add(start, bytes); }));
  }
  *tiles_read += static_cast<int64_t>(out->starts.size());

  return absl::OkStatus();
}

absl::StatusOr<FeatureResult> FeatureReader::Read(std::string_view key, int64_t at_ms,
                                                  const std::vector<WindowSpec>& windows) const {
  Context context;
  return Read(key, at_ms, windows, &context);
}

absl::StatusOr<FeatureResult> FeatureReader::Read(std::string_view key, int64_t at_ms,
                                                  const std::vector<WindowSpec>& windows,
                                                  Context* context) const {
  Context::State* state = context->state_.get();
  state->Prepare(view_, store_);
  if (at_ms < kMinTimestampMs || at_ms > kMaxTimestampMs) {
    return OutOfRange("at {} is outside the supported time range ({} .. {} epoch ms)", at_ms,
                      kMinTimestampMs, kMaxTimestampMs);
  }
  for (const WindowSpec& w : windows) {
    if (!w.lifetime() && (w.length_ms <= 0 || w.length_ms > kMaxDurationMs)) {
      return OutOfRange("window '{}' is outside (0, 36500d]", w.name);
    }
  }
  const sql::ViewDef& def = *view_->def;
  FeatureResult result;
  result.key = KeyText(key, def.keys.size());
  result.requested_at_ms = at_ms;
  result.at_ms = at_ms;

  // Base tiles before `kept_from` may have been deleted by the retention (engine/retention.h);
  // there the read widens the window outward to the next rollup level, so it needs rollups only:
  // the hour, or the day for views whose base tiles are hours (RocksDB keeps their base tiles,
  // but Bigtable's GC rule ages out every view's base cells alike). Every read covers the tile
  // holding `at` whole (tile::ComputeWindow); before K, the rollup unit holding it.
  int64_t kept_from = std::numeric_limits<int64_t>::min();
  const int64_t round_to = tile::HasHourRollups(def.tile_ms) ? kMillisPerHour : kMillisPerDay;
  int64_t head_to = tile::AlignUp(at_ms, def.tile_ms);
  if (options_.base_retention_ms > 0) {
    const Clock* clock = options_.clock != nullptr ? options_.clock : SystemClock::Default();
    kept_from = BaseTilesKeptFrom(clock->NowMillis(), options_.base_retention_ms);
    if (at_ms < kept_from) {
      head_to = tile::AlignUp(at_ms, round_to);
      result.at_ms = head_to;
    }
  }

  // All windows end at the same `at`, so they are nested: shortest first, each window is the
  // previous one plus the rows of [its from, the previous from). One accumulator grows through
  // them, and every tile is merged once however many windows cover it.
  // The lifetime window is read on its own (MergeWindows with `lifetime`): it starts at the
  // key's lifetime tile, whose edge may lie inside the other windows.
  std::vector<size_t> order;
  std::optional<size_t> lifetime;
  for (size_t i = 0; i < windows.size(); ++i) {
    if (windows[i].lifetime()) {
      lifetime = i;
    } else {
      order.push_back(i);
    }
  }
  const size_t n = order.size();
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return windows[a].length_ms < windows[b].length_ms; });
  result.windows.resize(windows.size());
  if (lifetime.has_value()) result.windows[*lifetime].name = windows[*lifetime].name;
  Ranges parts(n);  // parts[k]: rows window order[k] adds
  int64_t prev_from = head_to;
  for (size_t k = 0; k < n; ++k) {
    WindowResult& wr = result.windows[order[k]];
    wr.name = windows[order[k]].name;
    // The tail of the window asked for (from `at` as asked), widened outward where it reaches
    // past the retention.
    int64_t from = tile::ComputeWindow(at_ms, windows[order[k]].length_ms, def.tile_ms).from_ms;
    if (from < kept_from && AlignDown(from, round_to) != from) {
      from = AlignDown(from, round_to);
      wr.tail_from_ms = from;
    }
    parts[k] = {std::min(from, prev_from), prev_from};
    prev_from = parts[k].first;
  }
  for (int attempt = 1;; ++attempt) {
    bool consistent = true;
    if (n > 0) {
      TESSERA_ASSIGN_OR_RETURN(consistent, MergeWindows(key, parts, order, kept_from,
                                                        /*lifetime=*/false, &result, state));
    }
    if (consistent && lifetime.has_value()) {
      TESSERA_ASSIGN_OR_RETURN(
          consistent, MergeWindows(key, {{kMinTimestampMs, head_to}}, {*lifetime}, kept_from,
                                   /*lifetime=*/true, &result, state));
    }
    if (consistent) return result;
    // They may hold the state of the store before the race.
    state->scanner.reset();
    state->snapshot_scanner.reset();
    if (attempt == kMaxReadAttempts) {
      return Unavailable(
          "view {} key '{}': {} reads in a row raced the compaction that deletes base tiles past "
          "the retention (hour rollups kept appearing under the read); retry",
          def.name, result.key, attempt);
    }
  }
}

absl::StatusOr<bool> FeatureReader::MergeWindows(std::string_view key, const Ranges& parts,
                                                 const std::vector<size_t>& order,
                                                 int64_t kept_from, bool lifetime,
                                                 FeatureResult* result,
                                                 Context::State* state) const {
  const sql::ViewDef& def = *view_->def;
  const tile::TileLayout& layout = *view_->layout;
  const size_t n = parts.size();
  std::shared_ptr<const store::StoreSnapshot> snapshot;

  // Unflushed tiles first (one consistent view with the store snapshot they come with).
  bool has_open = false;
  if (options_.open_tiles != nullptr) {
    has_open = true;
    while (state->open_blocks.size() < n) {
      state->open_blocks.push_back(std::make_unique<tile::OwnedBlock>(layout));
    }
    state->open_data.clear();
    for (size_t k = 0; k < n; ++k) {
      state->open_blocks[k]->Reset();
      state->open_data.push_back(state->open_blocks[k]->data());
    }
    snapshot = options_.open_tiles->MergeOpenTiles(*view_, key, parts, state->open_data,
                                                   &result->tiles_read);
  }
  store::TileScanner* scanner;
  if (snapshot != nullptr) {
    if (state->snapshot_scanner == nullptr || state->snapshot != snapshot) {
      state->snapshot_scanner.reset();  // before the snapshot it reads is released
      state->snapshot = snapshot;
      state->snapshot_scanner = store_->NewScanner(snapshot.get(), store::ScanOrder::kRandom);
    }
    scanner = state->snapshot_scanner.get();
  } else {
    if (state->scanner == nullptr) {
      state->scanner = store_->NewScanner(nullptr, store::ScanOrder::kRandom);
    }
    scanner = state->scanner.get();
  }

  // The lifetime window: the key's lifetime tile covers the stored rows before its edge, so the
  // store is read from there (from the start of time without a tile, or for an `at` before it).
  // A slot store has one cell per writer slot, each with every row of its slot (edge
  // kLifetimeEdgeAll): usable when no stored row is at or after the head (engine/lifetime.h).
  Ranges stored_parts = parts;
  std::vector<std::string> lifetime_tiles;
  if (lifetime && key.size() <= store_->max_entity_key_bytes()) {
    std::vector<std::string> cells;
    TESSERA_RETURN_IF_ERROR(scanner->Scan(
        view_->id, key, store::Resolution::kLifetime, kLifetimeTileStart, kLifetimeTileStart + 1,
        [&](int64_t, std::string_view bytes) { cells.emplace_back(bytes); }));
    result->tiles_read += static_cast<int64_t>(cells.size());
    int64_t edge = 0;
    for (std::string& cell : cells) {
      std::string_view tile;
      int64_t cell_edge = 0;
      absl::Status s = DecodeLifetimeTile(cell, &cell_edge, &tile);
      if (s.ok() && &cell != &cells.front() && cell_edge != edge) {
        s = DataLoss("lifetime cells with the edges {} and {}", edge, cell_edge);
      }
      if (!s.ok()) return UnreadableTile(*view_, key, kLifetimeTileStart, s);
      edge = cell_edge;
      cell.erase(0, cell.size() - tile.size());
    }
    const int64_t head = parts[0].second;
    bool usable = !cells.empty() && edge <= head;
    if (!cells.empty() && edge == kLifetimeEdgeAll) {
      bool newer = head < kept_from;  // base tiles there may be gone: cannot tell
      if (!newer) {
        TESSERA_RETURN_IF_ERROR(scanner->Scan(view_->id, key, store::Resolution::kBase, head,
                                              kMaxTimestampMs + 1,
                                              [&](int64_t, std::string_view) { newer = true; }));
      }
      usable = !newer;
      edge = head;
    }
    if (usable) {
      stored_parts[0].first = edge;
      lifetime_tiles = std::move(cells);
    }
  }

  // Plan: each part's cover. Each resolution is fetched once, over the union of what the parts
  // need (they are adjacent): a handful of seeks of one store cursor per read.
  std::vector<Ranges>(&rollup_ranges)[2] = state->rollup_ranges;
  std::vector<Ranges>& base_ranges = state->base_ranges;
  for (auto* per_part : {&rollup_ranges[0], &rollup_ranges[1], &base_ranges}) {
    per_part->resize(n);
    for (Ranges& r : *per_part) r.clear();
  }
  for (size_t k = 0; k < n; ++k) {
    for (const tile::TileRange& r :
         tile::CoverWindow(stored_parts[k].first, stored_parts[k].second, def.tile_ms)) {
      const std::pair<int64_t, int64_t> range(r.from_ms, r.to_ms);
      switch (r.resolution) {
        case store::Resolution::kDay:
          rollup_ranges[0][k].push_back(range);
          break;
        case store::Resolution::kHour:
          rollup_ranges[1][k].push_back(range);
          break;
        case store::Resolution::kBase:
          base_ranges[k].push_back(range);
          break;
        case store::Resolution::kLifetime:  // CoverWindow covers with ladder tiles only
          break;
      }
    }
  }
  // Every tile the read may need starts inside the extent of these ranges (a day's missing hours
  // and an hour's missing base tiles lie inside it): read them all at once when they are few.
  state->span_valid = false;
  int64_t span_from = std::numeric_limits<int64_t>::max();
  int64_t span_to = std::numeric_limits<int64_t>::min();
  for (auto* per_part : {&rollup_ranges[0], &rollup_ranges[1], &base_ranges}) {
    for (const Ranges& ranges : *per_part) {
      for (const auto& [from, to] : ranges) {
        span_from = std::min(span_from, from);
        span_to = std::max(span_to, to);
      }
    }
  }
  if (span_from < span_to && key.size() <= store_->max_entity_key_bytes()) {
    for (FetchedTiles& t : state->span) t.Clear();
    size_t seen = 0;
    size_t span_bytes = 0;
    TESSERA_RETURN_IF_ERROR(scanner->ScanSpan(
        view_->id, key, store::Resolution::kBase, store::Resolution::kDay, span_from, span_to,
        [&](store::Resolution res, int64_t start, std::string_view bytes) {
          span_bytes += bytes.size();
          if (++seen > Context::State::kMaxSpanTiles ||
              span_bytes > Context::State::kMaxSpanBytes) {
            return false;
          }
          state->Span(res).Add(start, bytes);
          return true;
        }));
    state->span_valid =
        seen <= Context::State::kMaxSpanTiles && span_bytes <= Context::State::kMaxSpanBytes;
  }

  const store::Resolution kRollups[2] = {store::Resolution::kDay, store::Resolution::kHour};
  for (int r = 0; r < 2; ++r) {
    TESSERA_RETURN_IF_ERROR(
        Fetch(kRollups[r], rollup_ranges[r], scanner, key, state, &result->tiles_read));
    // Where a rollup is absent (its slot is still open, or it would cover a single tile), the
    // next finer level is read instead: a day's hours (fetched next), an hour's base tiles.
    const FetchedTiles& fetched = state->fetched[r];
    const int64_t unit = tile::ResolutionMillis(kRollups[r], def.tile_ms);
    const bool to_hours =
        tile::ChildResolution(kRollups[r], def.tile_ms) == store::Resolution::kHour;
    for (size_t k = 0; k < n; ++k) {
      Ranges& finer = to_hours ? rollup_ranges[1][k] : base_ranges[k];
      for (const auto& [from, to] : rollup_ranges[r][k]) {
        int64_t cursor = from;
        fetched.ForEach(from, to, [&](int64_t start, std::string_view) {
          if (start > cursor) finer.emplace_back(cursor, start);
          cursor = start + unit;
        });
        if (cursor < to) finer.emplace_back(cursor, to);
      }
    }
  }
  TESSERA_RETURN_IF_ERROR(
      Fetch(store::Resolution::kBase, base_ranges, scanner, key, state, &result->tiles_read));

  // Base tiles read before `kept_from` are whole hours whose rollup the read did not see. A
  // retention compaction drops a base tile only after its hour rollup is stored, and rollups are
  // never deleted: so if none of those hours has a rollup now (after the base tiles were read),
  // no base tile the read needed was missing.
  if (kept_from != std::numeric_limits<int64_t>::min()) {
    Ranges expired;
    for (const Ranges& per_window : base_ranges) {
      for (const auto& [from, to] : per_window) {
        if (from < kept_from) expired.emplace_back(from, std::min(to, kept_from));
      }
    }
    expired = Coalesce(std::move(expired));
    bool raced = false;
    for (const auto& range : expired) {
      const int64_t from = range.first;
      TESSERA_RETURN_IF_ERROR(store_->Scan(view_->id, key, store::Resolution::kHour,
                                           AlignDown(from, kMillisPerHour), range.second,
                                           [&](int64_t start, std::string_view) {
                                             if (start + kMillisPerHour > from) raced = true;
                                           }));
      if (raced) return false;
    }
  }

  tile::OwnedBlock& acc = *state->acc;
  absl::Status decode_error;
  auto merge = [&](int64_t start, std::string_view bytes) {
    if (!decode_error.ok()) return;
    absl::Status s = layout.MergeSerialized(bytes, acc.data());
    if (!s.ok()) decode_error = UnreadableTile(*view_, key, start, s);
  };
  acc.Reset();
  const size_t newest_slot = NewestEventTimeSlot(def);
  auto newest_of_acc = [&] {
    return layout.agg(newest_slot).Finalize(acc.data() + layout.offset(newest_slot));
  };
  // The lifetime call: the newest of the rows from the edge on (all newer than the lifetime
  // tile's), so that a lifetime tile folded from tiles of an older build, whose newest time is
  // unknown, does not hide a known newest row.
  Value newest_from_edge;
  for (size_t k = 0; k < n; ++k) {
    for (int r = 0; r < 2; ++r) {
      for (const auto& [from, to] : rollup_ranges[r][k]) state->fetched[r].ForEach(from, to, merge);
    }
    for (const auto& [from, to] : base_ranges[k]) state->fetched[2].ForEach(from, to, merge);
    TESSERA_RETURN_IF_ERROR(decode_error);
    if (has_open) layout.Merge(acc.data(), state->open_blocks[k]->data());
    if (!lifetime_tiles.empty()) {
      newest_from_edge = newest_of_acc();
      for (const std::string& tile : lifetime_tiles) {
        absl::Status s = layout.MergeSerialized(tile, acc.data());
        if (!s.ok()) return UnreadableTile(*view_, key, kLifetimeTileStart, s);
      }
    }
    state->finalizer->Finalize(acc.data(), result->at_ms, &result->windows[order[k]].features);
  }
  // `acc` holds the longest window now: every row the answer includes (the lifetime window's
  // call, which comes last, holds every other window's rows too and so replaces this). NULL
  // from the edge on is no row there or unknown; either way the whole answer's value is right.
  const Value newest = newest_from_edge.is_null() ? newest_of_acc() : newest_from_edge;
  result->newest_event_time_ms =
      newest.is_null() ? std::nullopt : std::optional<int64_t>(newest.int64());
  return true;
}

std::string FeatureResult::ToJson(const sql::ViewDef& view) const {
  std::string out;
  AppendJson(view, &out);
  return out;
}

void FeatureResult::AppendJson(const sql::ViewDef& view, std::string* out) const {
  *out += "{\"view\":";
  AppendJsonString(view.name, out);
  *out += ",\"key\":";
  AppendJsonString(key, out);
  *out += ",\"at\":";
  AppendJsonString(FormatRfc3339Millis(at_ms), out);
  if (requested_at_ms != at_ms) {
    *out += ",\"requested_at\":";
    AppendJsonString(FormatRfc3339Millis(requested_at_ms), out);
  }
  bool tails = false;
  for (const WindowResult& w : windows) {
    if (!w.tail_from_ms.has_value()) continue;
    *out += tails ? "," : ",\"tail_from\":{";
    tails = true;
    AppendJsonString(w.name, out);
    *out += ':';
    AppendJsonString(FormatRfc3339Millis(*w.tail_from_ms), out);
  }
  if (tails) *out += '}';
  *out += ",\"windows\":{";
  for (size_t i = 0; i < windows.size(); ++i) {
    if (i > 0) *out += ',';
    AppendJsonString(windows[i].name, out);
    *out += ":{";
    for (size_t f = 0; f < view.features.size(); ++f) {
      if (f > 0) *out += ',';
      AppendJsonString(view.features[f].name, out);
      *out += ':';
      windows[i].features[f].AppendJson(out);
    }
    *out += '}';
  }
  *out += '}';
  if (meta.has_value()) {
    auto append_time = [out](const std::optional<int64_t>& ms) {
      if (ms.has_value()) {
        AppendJsonString(FormatRfc3339Millis(*ms), out);
      } else {
        *out += "null";
      }
    };
    *out += ",\"meta\":{\"newest_event_time\":";
    append_time(newest_event_time_ms);
    *out += ",\"watermark\":";
    append_time(meta->watermark_ms);
    *out += '}';
  }
  *out += '}';
}

}  // namespace tessera::engine
