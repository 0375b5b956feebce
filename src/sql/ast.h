#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/types.h"
#include "common/value.h"
#include "sql/sql_util.h"

// The parse tree: what the parser produces and the binder consumes. Names are kept as written
// (resolution and typing happen in the binder); every node carries its position for errors.
namespace tessera::sql {

struct AstExpr {
  enum class Kind : uint8_t {
    kLiteral,  // literal (TIMESTAMP '…' is already a kTimestamp value)
    kColumn,   // name, optional qualifier (source name)
    kUnary,    // op: "-", "NOT"
    kBinary,   // op: "+", "-", "*", "/", "%", "||", "=", "<>", "<", "<=", ">", ">=", "AND", "OR"
    kIsNull,   // children[0]; negated: IS NOT NULL
    kIn,       // children[0] IN (children[1..]); negated: NOT IN
    kBetween,  // children[0] BETWEEN children[1] AND children[2]; negated: NOT BETWEEN
    kCase,     // [operand] (when, then)… [else]; has_operand / has_else say which are present
    kCast,     // CAST(children[0] AS cast_type)
    kCall,     // name(children…); star: COUNT(*); distinct: F(DISTINCT x)
  };

  Kind kind = Kind::kLiteral;
  Pos pos;    // of the operator / keyword / name that defines the node
  Pos start;  // of the node's first token
  Value literal;
  std::string name;       // column or function name as written; operator (upper case)
  std::string qualifier;  // kColumn: `src` in src.col, else empty
  bool negated = false;
  bool star = false;
  bool distinct = false;
  bool has_operand = false;
  bool has_else = false;
  DataType cast_type = DataType::kNull;
  int height = 1;  // 1 + the largest child height (the parser bounds it)
  std::vector<std::unique_ptr<AstExpr>> children;
};

// `key = 'value'` in WITH (…).
struct AstOption {
  std::string key;  // lower-cased
  std::string value;
  Pos pos;
};

struct AstColumnDef {
  std::string name;
  DataType type = DataType::kNull;
  Pos pos;
};

// WATERMARK FOR column AS column [- INTERVAL 'n' unit]
struct AstWatermark {
  bool present = false;
  std::string column;
  Pos pos;                // of the FOR column
  std::string of_column;  // the column after AS (must equal `column`)
  Pos of_pos;
  int64_t lateness_ms = 0;
};

struct AstSource {
  std::string name;
  Pos pos;  // of the name
  std::vector<AstColumnDef> columns;
  AstWatermark watermark;
  std::vector<AstOption> options;
};

struct AstSelectItem {
  std::unique_ptr<AstExpr> expr;
  std::string alias;  // empty when there is no AS
  Pos alias_pos;
};

struct AstView {
  std::string name;
  Pos pos;
  std::vector<AstOption> options;
  std::vector<AstSelectItem> items;
  std::string from;
  Pos from_pos;
  std::unique_ptr<AstExpr> where;
  std::vector<std::unique_ptr<AstExpr>> group_by;
  Pos group_by_pos;
};

struct AstStatement {
  enum class Kind : uint8_t { kSource, kView };
  Kind kind = Kind::kSource;
  Pos pos;
  std::string sql;  // the statement's text, exactly as written (without the `;`)
  AstSource source;
  AstView view;
};

}  // namespace tessera::sql
