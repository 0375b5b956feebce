#include "store/tile_store.h"

namespace tessera::store {
namespace {

// TileStore's default scanner: every scan is one ScanAt of the store.
class ScanAtScanner final : public TileScanner {
 public:
  ScanAtScanner(TileStore* store, const StoreSnapshot* snapshot)
      : store_(store), snapshot_(snapshot) {}

  absl::Status Scan(uint32_t view_id, std::string_view entity_key, Resolution resolution,
                    int64_t from_ms, int64_t to_ms,
                    absl::FunctionRef<void(int64_t, std::string_view)> fn) override {
    return store_->ScanAt(snapshot_, view_id, entity_key, resolution, from_ms, to_ms,
                          [fn](int64_t start, std::string_view bytes) { fn(start, bytes); });
  }

 private:
  TileStore* store_;
  const StoreSnapshot* snapshot_;
};

}  // namespace

absl::Status TileScanner::ScanSpan(
    uint32_t view_id, std::string_view entity_key, Resolution first, Resolution last,
    int64_t from_ms, int64_t to_ms,
    absl::FunctionRef<bool(Resolution, int64_t, std::string_view)> fn) {
  bool more = true;
  for (auto r = static_cast<uint8_t>(first); more && r <= static_cast<uint8_t>(last); ++r) {
    const auto res = static_cast<Resolution>(r);
    absl::Status s =
        Scan(view_id, entity_key, res, from_ms, to_ms, [&](int64_t start, std::string_view b) {
          if (more) more = fn(res, start, b);
        });
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

std::unique_ptr<TileScanner> TileStore::NewScanner(const StoreSnapshot* snapshot, ScanOrder) {
  return std::make_unique<ScanAtScanner>(this, snapshot);
}

absl::StatusOr<std::unique_ptr<ViewCursor>> TileStore::NewViewCursor(uint32_t, const EntityRange&) {
  return absl::UnimplementedError("this store has no view cursors");
}

absl::Status TileStore::DeleteViewTiles(uint32_t, uint32_t) {
  return absl::UnimplementedError("this store cannot delete a view's tiles");
}

}  // namespace tessera::store
