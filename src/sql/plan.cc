#include "sql/plan.h"

#include <utility>

#include "sql/binder.h"
#include "sql/parser.h"
#include "sql/sql_util.h"

namespace tessera::sql {

int SourceDef::FindColumn(std::string_view column) const {
  for (size_t i = 0; i < columns.size(); ++i) {
    if (EqualsIgnoreCase(columns[i].name, column)) {
      return static_cast<int>(i);
    }
  }
  return -1;
}

const SourceDef* Catalog::FindSource(std::string_view name) const {
  for (const SourceDef& s : sources) {
    if (EqualsIgnoreCase(s.name, name)) {
      return &s;
    }
  }
  return nullptr;
}

const ViewDef* Catalog::FindView(std::string_view name) const {
  for (const ViewDef& v : views) {
    if (EqualsIgnoreCase(v.name, name)) {
      return &v;
    }
  }
  return nullptr;
}

absl::Status AddStatements(std::string_view script, Catalog* catalog) {
  absl::StatusOr<std::vector<AstStatement>> statements = Parser::ParseScript(script);
  if (!statements.ok()) {
    return statements.status();
  }

  // New definitions are collected aside so `catalog` stays unchanged on error.
  Catalog added;
  auto lookup = [&](std::string_view name) -> const SourceDef* {
    if (const SourceDef* s = catalog->FindSource(name)) {
      return s;
    }
    return added.FindSource(name);
  };
  for (const AstStatement& stmt : *statements) {
    std::vector<std::string> source_names;
    for (const SourceDef& s : catalog->sources) {
      source_names.push_back(s.name);
    }
    for (const SourceDef& s : added.sources) {
      source_names.push_back(s.name);
    }
    Binder binder(lookup, std::move(source_names));
    if (stmt.kind == AstStatement::Kind::kSource) {
      if (lookup(stmt.source.name) != nullptr) {
        return ErrorAt(stmt.source.pos, "source '{}' already exists, expected a new name",
                       stmt.source.name);
      }
      absl::StatusOr<SourceDef> source = binder.BindSource(stmt);
      if (!source.ok()) {
        return source.status();
      }
      added.sources.push_back(std::move(*source));
    } else {
      if (catalog->FindView(stmt.view.name) != nullptr ||
          added.FindView(stmt.view.name) != nullptr) {
        return ErrorAt(stmt.view.pos, "view '{}' already exists, expected a new name",
                       stmt.view.name);
      }
      absl::StatusOr<ViewDef> view = binder.BindView(stmt);
      if (!view.ok()) {
        return view.status();
      }
      added.views.push_back(std::move(*view));
    }
  }
  for (SourceDef& s : added.sources) {
    catalog->sources.push_back(std::move(s));
  }
  for (ViewDef& v : added.views) {
    catalog->views.push_back(std::move(v));
  }
  return absl::OkStatus();
}

absl::StatusOr<Catalog> ParseCatalog(std::string_view script) {
  Catalog catalog;
  if (absl::Status s = AddStatements(script, &catalog); !s.ok()) {
    return s;
  }
  return catalog;
}

}  // namespace tessera::sql
