#include "engine/catalog_store.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>

#include "agg/aggregate.h"
#include "common/errors.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "common/time_util.h"
#include "source/connector_options.h"
#include "store/meta_keys.h"

namespace tessera::engine {

absl::Status UnreadableTile(const ViewRuntime& view, std::string_view key, int64_t start_ms,
                            const absl::Status& cause) {
  return DataLoss("stored tile of view '{}' key '{}' at {} is unreadable: {}", view.def->name, key,
                  FormatRfc3339Millis(start_ms), StatusMessage(cause));
}

namespace {

namespace meta = store::meta;

// The DB's storage format (meta::kFormatVersionKey; docs/storage_format.md). 1 (no entry):
// composite keys were stored as the parts joined by '|', which is ambiguous; 2: parts are
// length-prefixed (engine/entity_key.h).
constexpr uint32_t kFormatVersion = 2;

bool ParseU32(std::string_view s, uint32_t* out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

}  // namespace

absl::StatusOr<std::unique_ptr<tile::TileLayout>> MakeTileLayout(const sql::ViewDef& view) {
  std::vector<std::unique_ptr<agg::AggregateFunction>> aggs;
  for (const sql::AggregateCall& call : view.aggregates) {
    DataType arg_type = call.arg ? call.arg->type : DataType::kNull;
    DataType arg2_type = call.arg2 ? call.arg2->type : DataType::kNull;
    TESSERA_ASSIGN_OR_RETURN(auto fn,
                             agg::MakeAggregate(call.kind, arg_type, arg2_type, call.params));
    aggs.push_back(std::move(fn));
  }
  std::vector<tile::EngineSlot> engine;
  TESSERA_ASSIGN_OR_RETURN(auto newest,
                           agg::MakeAggregate(agg::AggKind::kNewestEventTime, DataType::kNull, {}));
  engine.push_back(tile::EngineSlot{std::move(newest), agg::NewestEventTimeUnknownEncoding()});
  static_assert(kEngineSlots == 1, "MakeTileLayout makes every engine slot");
  return std::make_unique<tile::TileLayout>(std::move(aggs), std::move(engine));
}

absl::StatusOr<std::unique_ptr<CatalogStore>> CatalogStore::Load(store::TileStore* store) {
  std::unique_ptr<CatalogStore> cs(new CatalogStore(store));
  std::vector<std::string> statements;
  TESSERA_RETURN_IF_ERROR(
      store->ScanMeta(meta::kCatalogStatementPrefix,
                      [&](std::string_view, std::string_view v) { statements.emplace_back(v); }));
  std::vector<std::pair<std::string, uint32_t>> ids;
  absl::Status bad;
  TESSERA_RETURN_IF_ERROR(
      store->ScanMeta(meta::kCatalogViewIdPrefix, [&](std::string_view k, std::string_view v) {
        uint32_t id = 0;
        if (!ParseU32(v, &id)) bad = DataLoss("catalog entry '{}' has a bad view id", k);
        ids.emplace_back(std::string(*meta::ParseCatalogViewIdKey(k)), id);
      }));
  TESSERA_RETURN_IF_ERROR(bad);
  TESSERA_ASSIGN_OR_RETURN(std::optional<std::string> next,
                           store->GetMeta(meta::kCatalogNextViewIdKey));
  if (next.has_value() && !ParseU32(*next, &cs->next_view_id_)) {
    return DataLoss("catalog entry '{}' is corrupt", meta::kCatalogNextViewIdKey);
  }
  TESSERA_RETURN_IF_ERROR(cs->Rebuild(statements, ids));
  TESSERA_ASSIGN_OR_RETURN(std::optional<std::string> format,
                           store->GetMeta(meta::kFormatVersionKey));
  uint32_t version = 1;
  if (format.has_value() && !ParseU32(*format, &version)) {
    return DataLoss("catalog entry '{}' is corrupt: '{}'", meta::kFormatVersionKey, *format);
  }
  if (version > kFormatVersion) {
    return FailedPrecondition(
        "this DB has storage format {}, written by a newer Tessera; this build reads formats 1 "
        "to {}",
        version, kFormatVersion);
  }
  if (version < 2 && !statements.empty()) {
    // Format 1 differs only in how composite keys are stored: a DB without composite-key views
    // reads the same; the first write of the catalog records format 2.
    for (const auto& v : cs->views_) {
      if (v->def->keys.size() > 1) {
        return FailedPrecondition(
            "this DB has storage format 1, in which the parts of composite keys were joined by "
            "'|' so that ('a|b','c') and ('a','b|c') shared tiles; view '{}' has a composite key. "
            "Rebuild it: backfill the events into a new --db with this build",
            v->def->name);
      }
    }
  }
  cs->format_recorded_ = version == kFormatVersion;
  return cs;
}

absl::Status CatalogStore::Rebuild(const std::vector<std::string>& statements,
                                   const std::vector<std::pair<std::string, uint32_t>>& ids) {
  sql::Catalog catalog;
  for (const std::string& stmt : statements) {
    absl::Status s = sql::AddStatements(stmt, &catalog);
    if (!s.ok()) {
      return DataLoss("the DB's stored catalog no longer parses ({}): {}", StatusMessage(s), stmt);
    }
  }
  std::vector<std::unique_ptr<ViewRuntime>> views;
  for (const sql::ViewDef& v : catalog.views) {
    auto it = std::find_if(ids.begin(), ids.end(),
                           [&](const auto& p) { return p.first == ToLowerAscii(v.name); });
    if (it == ids.end()) return DataLoss("view '{}' has no id in the DB's catalog", v.name);
    auto rt = std::make_unique<ViewRuntime>();
    rt->def = &v;
    rt->source = catalog.FindSource(v.source);
    rt->id = it->second;
    TESSERA_ASSIGN_OR_RETURN(rt->layout, MakeTileLayout(v));
    views.push_back(std::move(rt));
  }
  statements_ = statements;
  view_ids_ = ids;
  catalog_ = std::move(catalog);
  // Re-point the runtimes at the moved catalog (vector moves keep element addresses).
  views_ = std::move(views);
  return absl::OkStatus();
}

const ViewRuntime* CatalogStore::FindView(std::string_view name) const {
  std::string lower = ToLowerAscii(name);
  for (const auto& v : views_) {
    if (ToLowerAscii(v->def->name) == lower) return v.get();
  }
  return nullptr;
}

absl::StatusOr<std::vector<std::string>> CatalogStore::Register(std::string_view script) {
  TESSERA_ASSIGN_OR_RETURN(sql::Catalog incoming, sql::ParseCatalog(script));
  std::vector<std::string> new_statements;
  std::vector<std::string> view_names;
  for (const sql::SourceDef& s : incoming.sources) {
    TESSERA_RETURN_IF_ERROR(source::ValidateSourceOptions(s, source::OptionCheck::kDefinition));
    const sql::SourceDef* existing = catalog_.FindSource(s.name);
    if (existing == nullptr) {
      new_statements.push_back(s.sql);
    } else if (sql::Explain(*existing) != sql::Explain(s)) {
      return FailedPrecondition(
          "source '{}' already exists in this DB with a different definition; tiles built from "
          "it would not match. Use a new name or a new --db.\nin DB:\n{}\ngiven:\n{}",
          s.name, sql::Explain(*existing), sql::Explain(s));
    }
  }
  for (const sql::ViewDef& v : incoming.views) {
    view_names.push_back(v.name);
    const sql::ViewDef* existing = catalog_.FindView(v.name);
    if (existing == nullptr) {
      new_statements.push_back(v.sql);
    } else if (sql::Explain(*existing) != sql::Explain(v)) {
      return FailedPrecondition(
          "view '{}' already exists in this DB with a different definition; its stored tiles "
          "would not match. Use a new view name or a new --db.\nin DB:\n{}\ngiven:\n{}",
          v.name, sql::Explain(*existing), sql::Explain(v));
    }
  }
  if (new_statements.empty()) return view_names;

  std::vector<std::string> statements = statements_;
  std::vector<std::pair<std::string, uint32_t>> ids = view_ids_;
  uint32_t next_id = next_view_id_;
  store::WriteBatch batch;
  for (const std::string& stmt : new_statements) {
    batch.meta.emplace_back(meta::CatalogStatementKey(statements.size()), stmt);
    statements.push_back(stmt);
  }
  for (const sql::ViewDef& v : incoming.views) {
    if (catalog_.FindView(v.name) != nullptr) continue;
    ids.emplace_back(ToLowerAscii(v.name), next_id);
    batch.meta.emplace_back(meta::CatalogViewIdKey(v.name), std::to_string(next_id));
    ++next_id;
  }
  batch.meta.emplace_back(std::string(meta::kCatalogNextViewIdKey), std::to_string(next_id));
  if (!format_recorded_) {
    batch.meta.emplace_back(std::string(meta::kFormatVersionKey), std::to_string(kFormatVersion));
  }
  // Validate before persisting: the combined catalog must bind.
  std::vector<std::string> stored_statements = statements_;
  std::vector<std::pair<std::string, uint32_t>> stored_ids = view_ids_;
  TESSERA_RETURN_IF_ERROR(Rebuild(statements, ids));
  if (absl::Status written = store_->Write(batch); !written.ok()) {
    // Back to what the DB holds, or a later Register() would hand out the same view id again.
    TESSERA_RETURN_IF_ERROR(Rebuild(stored_statements, stored_ids));
    return written;
  }
  next_view_id_ = next_id;
  format_recorded_ = true;
  return view_names;
}

}  // namespace tessera::engine
