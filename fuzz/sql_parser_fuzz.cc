// libFuzzer entry point for the SQL front end: arbitrary bytes through the lexer, parser and
// binder. Any input must yield a Catalog or an InvalidArgument, never a crash, hang or leak.
// Plans that bind are also explained, and each bound expression is evaluated over one all-NULL
// row, so rendering and the evaluator's compiler see fuzzed plans too.

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "common/arena.h"
#include "common/column.h"
#include "sql/expr.h"
#include "sql/plan.h"

namespace {

void EvaluateOnNullRow(const tessera::sql::Expr& expr, std::vector<tessera::Column>& columns,
                       tessera::Arena* arena) {
  tessera::sql::ExprEvaluator evaluator(expr);
  evaluator.Evaluate(columns, 1, arena);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view script(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<tessera::sql::Catalog> catalog = tessera::sql::ParseCatalog(script);
  if (!catalog.ok()) return 0;
  tessera::Arena arena;
  for (const tessera::sql::SourceDef& source : catalog->sources) {
    (void)tessera::sql::Explain(source);
    (void)tessera::sql::ParseCatalog(source.sql);
  }
  for (const tessera::sql::ViewDef& view : catalog->views) {
    (void)tessera::sql::Explain(view);
    const tessera::sql::SourceDef* source = catalog->FindSource(view.source);
    if (source == nullptr) continue;
    std::vector<tessera::Column> row(source->columns.size());
    for (size_t i = 0; i < row.size(); ++i) row[i].Reset(source->columns[i].type, 1);
    if (view.where) EvaluateOnNullRow(*view.where, row, &arena);
    for (const auto& key : view.keys) EvaluateOnNullRow(*key, row, &arena);
    for (const auto& agg : view.aggregates) {
      if (agg.arg) EvaluateOnNullRow(*agg.arg, row, &arena);
      if (agg.arg2) EvaluateOnNullRow(*agg.arg2, row, &arena);
    }
    std::vector<tessera::Column> slots(view.aggregates.size());
    for (size_t i = 0; i < slots.size(); ++i) {
      tessera::DataType t = view.aggregates[i].result_type;
      slots[i].Reset(tessera::IsNested(t) ? tessera::DataType::kNull : t, 1);
    }
    for (const auto& feature : view.features) EvaluateOnNullRow(*feature.expr, slots, &arena);
  }
  return 0;
}
