#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "sql/plan.h"
#include "store/tile_store.h"
#include "tile/tile_layout.h"

namespace tessera::engine {

// A view ready to run: its bound definition, its persistent id (the prefix of its tiles in the
// store) and its tile layout. Immutable; shared by ingestion and serving threads.
struct ViewRuntime {
  const sql::ViewDef* def = nullptr;
  const sql::SourceDef* source = nullptr;
  uint32_t id = 0;
  std::unique_ptr<tile::TileLayout> layout;
};

// The DataLoss error for a stored tile of `view` that failed to decode with `cause`.
absl::Status UnreadableTile(const ViewRuntime& view, std::string_view key, int64_t start_ms,
                            const absl::Status& cause);

// The catalog a DB directory keeps: every CREATE statement ever registered, as SQL text, plus
// the id of each view. Stored in the TileStore's metadata, so `tessera get` needs no SQL.
//
// Metadata keys (store/meta_keys.h):
//   catalog/stmt/<8-digit sequence>  -> the statement's SQL text, in registration order
//   catalog/view/<lower-case name>   -> the view's id (decimal)
//   catalog/next_view_id             -> next id to hand out (decimal)
//   format_version                   -> storage format (decimal; absent = 1). Load() refuses a
//                                       newer format, and a format-1 DB with composite keys.
class CatalogStore {
 public:
  // Loads the catalog of `store` (empty if none was ever registered).
  static absl::StatusOr<std::unique_ptr<CatalogStore>> Load(store::TileStore* store);

  // Registers the sources and views of `script`. A statement whose object already exists with
  // the same definition is a no-op; one that exists with a different definition is an error
  // (FailedPrecondition) naming the object, since its stored tiles would no longer match.
  // Returns the names of the views the script defines.
  absl::StatusOr<std::vector<std::string>> Register(std::string_view script);

  const sql::Catalog& catalog() const { return catalog_; }
  // REQUIRES: the view exists in the catalog. Valid until the next Register().
  const ViewRuntime* FindView(std::string_view name) const;
  const std::vector<std::unique_ptr<ViewRuntime>>& views() const { return views_; }

 private:
  explicit CatalogStore(store::TileStore* store) : store_(store) {}
  absl::Status Rebuild(const std::vector<std::string>& statements,
                       const std::vector<std::pair<std::string, uint32_t>>& view_ids);

  store::TileStore* store_;
  std::vector<std::string> statements_;
  std::vector<std::pair<std::string, uint32_t>> view_ids_;  // lower-case name -> id
  uint32_t next_view_id_ = 1;
  bool format_recorded_ = false;  // the store holds format_version = the current format
  sql::Catalog catalog_;
  std::vector<std::unique_ptr<ViewRuntime>> views_;
};

// Builds the tile layout of a bound view: its aggregate functions in slot order (slot i is
// view.aggregates[i]), then the engine's slots (tile::EngineSlot), kEngineSlots of them:
//   NewestEventTimeSlot(view)  agg::AggKind::kNewestEventTime: the newest event time of the
//                              tile's rows (the "meta" of a read: FeatureResult); tiles written
//                              before it existed read as "unknown".
// Engine slots take no argument column (ViewRowPrep::arg_columns() is null there) and are never
// features: FeatureFinalizer finalizes them with the rest, no feature refers to them.
absl::StatusOr<std::unique_ptr<tile::TileLayout>> MakeTileLayout(const sql::ViewDef& view);

inline constexpr size_t kEngineSlots = 1;
inline size_t NewestEventTimeSlot(const sql::ViewDef& view) { return view.aggregates.size(); }

}  // namespace tessera::engine
