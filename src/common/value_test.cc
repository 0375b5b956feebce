#include "common/value.h"

#include <gtest/gtest.h>

#include <cmath>

#include "common/column.h"

namespace tessera {
namespace {

TEST(Value, JsonRendering) {
  EXPECT_EQ(Value().ToJson(), "null");
  EXPECT_EQ(Value::Null(DataType::kInt64).ToJson(), "null");
  EXPECT_EQ(Value::Bool(true).ToJson(), "true");
  EXPECT_EQ(Value::Int64(-42).ToJson(), "-42");
  EXPECT_EQ(Value::Double(0.1).ToJson(), "0.1");
  EXPECT_EQ(Value::Double(std::nan("")).ToJson(), "null");
  EXPECT_EQ(Value::Double(INFINITY).ToJson(), "null");
  EXPECT_EQ(Value::String("a\"b\\c\n\x01").ToJson(), "\"a\\\"b\\\\c\\n\\u0001\"");
  EXPECT_EQ(Value::Timestamp(1767225600123).ToJson(), "\"2026-01-01T00:00:00.123Z\"");
  EXPECT_EQ(Value::List({Value::String("x"), Value::Int64(1), Value()}).ToJson(), "[\"x\",1,null]");
  EXPECT_EQ(Value::List({}).ToJson(), "[]");
}

TEST(Value, SqlRendering) {
  EXPECT_EQ(Value::String("it's").ToString(), "'it''s'");
  EXPECT_EQ(Value().ToString(), "NULL");
  EXPECT_EQ(Value::Timestamp(0).ToString(), "TIMESTAMP '1970-01-01T00:00:00.000Z'");
}

TEST(Value, EqualityIncludesType) {
  EXPECT_EQ(Value::Int64(1), Value::Int64(1));
  EXPECT_FALSE(Value::Int64(1) == Value::Timestamp(1));
  EXPECT_FALSE(Value::Null(DataType::kInt64) == Value::Null(DataType::kDouble));
}

TEST(Column, GetSetRoundTripsEveryType) {
  Arena arena;
  const Value values[] = {Value::Bool(false), Value::Int64(7), Value::Double(2.5),
                          Value::String("hello"), Value::Timestamp(123)};
  for (const Value& v : values) {
    Column c;
    c.Reset(v.type(), 2);
    c.SetValue(0, v, &arena);
    EXPECT_EQ(c.GetValue(0), v);
    EXPECT_TRUE(c.GetValue(1).is_null());
    EXPECT_EQ(c.GetValue(1).type(), v.type());
  }
}

TEST(Arena, KeepsMemoryStableAndReusesBlocks) {
  Arena arena(64);
  std::string_view a = arena.Copy("first");
  std::string big(1000, 'x');
  std::string_view b = arena.Copy(big);  // larger than a block: its own block
  EXPECT_EQ(a, "first");
  EXPECT_EQ(b, big);
  size_t reserved = arena.bytes_reserved();
  arena.Reset();
  EXPECT_EQ(arena.bytes_used(), 0u);
  arena.Copy("again");
  EXPECT_EQ(arena.bytes_reserved(), reserved);
}

}  // namespace
}  // namespace tessera
