#include "source/format/ndjson_decoder.h"

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/time_util.h"

namespace tessera::source {
namespace {

using ::testing::HasSubstr;

// Column indexes of the test schema.
constexpr int kUser = 0;
constexpr int kN = 1;
constexpr int kD = 2;
constexpr int kB = 3;
constexpr int kTs = 4;
constexpr int kT2 = 5;

std::vector<ColumnDef> Schema() {
  return {{"user", DataType::kString}, {"n", DataType::kInt64},      {"d", DataType::kDouble},
          {"b", DataType::kBool},      {"ts", DataType::kTimestamp}, {"t2", DataType::kTimestamp}};
}

struct Reject {
  int64_t line_number;
  std::string reason;
  std::string line;
};

struct Result {
  RowBatch batch;
  DecodeStats stats;
  std::vector<Reject> rejects;
  int64_t physical_lines = 0;
};

Result DecodeAll(std::string_view data, int64_t first_line = 1) {
  Result r;
  NdjsonDecoder decoder(Schema(), kTs);
  Chunk chunk;
  chunk.Assign(data);
  r.physical_lines = decoder.Decode(chunk, first_line, &r.batch, &r.stats, [&](const Rejection& j) {
    r.rejects.push_back({j.line_number, j.reason, std::string(j.line)});
  });
  return r;
}

// One row with `fields` (JSON members) plus a valid event time.
Result DecodeRow(std::string_view fields) {
  std::string line = fmt::format("{{\"ts\":1000{}{}}}\n", fields.empty() ? "" : ",", fields);
  return DecodeAll(line);
}

void ExpectCounts(const Result& r, int64_t lines, int64_t rows, int64_t rejected,
                  int64_t field_errors) {
  EXPECT_EQ(r.stats.lines, lines);
  EXPECT_EQ(r.stats.rows, rows);
  EXPECT_EQ(r.stats.rejected, rejected);
  EXPECT_EQ(r.stats.field_errors, field_errors);
  EXPECT_EQ(static_cast<int64_t>(r.batch.num_rows), rows);
  EXPECT_EQ(static_cast<int64_t>(r.batch.event_time_ms.size()), rows);
  EXPECT_EQ(static_cast<int64_t>(r.rejects.size()), rejected);
  for (const Column& c : r.batch.columns) EXPECT_EQ(static_cast<int64_t>(c.size()), rows);
}

TEST(NdjsonDecoderTest, DecodesEveryTypeIntoColumns) {
  Result r = DecodeAll(
      R"({"user":"ann","n":42,"d":1.5,"b":true,"ts":1700000000123,"t2":"2026-11-24T05:41:00Z"})"
      "\n"
      R"({"user":"bob","n":-7,"d":-2,"b":false,"ts":"2026-11-24T05:41:00.5Z"})"
      "\n");
  ExpectCounts(r, 2, 2, 0, 0);
  const RowBatch& b = r.batch;
  ASSERT_EQ(b.columns.size(), 6u);
  EXPECT_EQ(b.columns[kUser].type, DataType::kString);
  EXPECT_EQ(b.columns[kTs].type, DataType::kTimestamp);
  EXPECT_EQ(b.columns[kUser].GetValue(0), Value::String("ann"));
  EXPECT_EQ(b.columns[kN].GetValue(0), Value::Int64(42));
  EXPECT_EQ(b.columns[kD].GetValue(0), Value::Double(1.5));
  EXPECT_EQ(b.columns[kB].GetValue(0), Value::Bool(true));
  EXPECT_EQ(b.columns[kTs].GetValue(0), Value::Timestamp(1700000000123));
  EXPECT_EQ(b.columns[kT2].GetValue(0),
            Value::Timestamp(*ParseRfc3339Millis("2026-11-24T05:41:00Z")));
  EXPECT_EQ(b.event_time_ms[0], 1700000000123);
  EXPECT_EQ(b.columns[kUser].GetValue(1), Value::String("bob"));
  EXPECT_EQ(b.columns[kN].GetValue(1), Value::Int64(-7));
  EXPECT_EQ(b.columns[kD].GetValue(1), Value::Double(-2.0));
  EXPECT_EQ(b.columns[kB].GetValue(1), Value::Bool(false));
  EXPECT_TRUE(b.columns[kT2].IsNull(1));
  EXPECT_EQ(b.event_time_ms[1], *ParseRfc3339Millis("2026-11-24T05:41:00.500Z"));
}

TEST(NdjsonDecoderTest, EventTimeForms) {
  const int64_t base = *ParseRfc3339Millis("2026-11-24T05:41:00Z");
  Result r = DecodeAll(
      "{\"ts\":0}\n"
      "{\"ts\":-1500}\n"
      "{\"ts\":1234.9}\n"
      "{\"ts\":-1234.9}\n"
      "{\"ts\":1.7e12}\n"
      "{\"ts\":1700000000000.123456789012345}\n"
      "{\"ts\":\"2026-11-24T05:41:00Z\"}\n"
      "{\"ts\":\"2026-11-24T05:41:00.123456789Z\"}\n"
      "{\"ts\":\"2026-11-24T06:41:00+01:00\"}\n"
      "{\"ts\":\"2026-11-24T00:11:00.250-05:30\"}\n");
  ExpectCounts(r, 10, 10, 0, 0);
  const std::vector<int64_t> want = {
      0, -1500, 1234, -1234, 1700000000000, 1700000000000, base, base + 123, base, base + 250};
  EXPECT_EQ(r.batch.event_time_ms, want);
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(r.batch.columns[kTs].GetValue(i), Value::Timestamp(want[i]));
  }
}

TEST(NdjsonDecoderTest, RejectsRowsWithoutValidEventTime) {
  Result r = DecodeAll(
      "{\"user\":\"a\"}\n"                     // 1 missing
      "{\"ts\":null}\n"                        // 2 null
      "{\"ts\":true}\n"                        // 3 wrong type
      "{\"ts\":\"yesterday\"}\n"               // 4 unparseable
      "{\"ts\":[1]}\n"                         // 5 array
      "{\"ts\":{\"ms\":1}}\n"                  // 6 object
      "{\"ts\":1e300}\n"                       // 7 out of range
      "{\"ts\":99999999999999999999}\n"        // 8 beyond int64
      "{\"ts\":18446744073709551615}\n"        // 9 uint64
      "{\"ts\":\"2026-13-01T00:00:00Z\"}\n"    // 10 bad month
      "{\"ts\":\"2026-11-24T05:41:00\"}\n"     // 11 no zone
      "{\"ts\":1e400}\n"                       // 12 beyond double
      "{\"ts\":9999999999999999}\n"            // 13 past year 9999
      "{\"ts\":\"2026-11-24T05:41:00Z\"}\n");  // 14 ok
  ExpectCounts(r, 14, 1, 13, 0);
  ASSERT_EQ(r.rejects.size(), 13u);
  EXPECT_EQ(r.rejects[0].reason, "line 1: missing event-time field 'ts'");
  EXPECT_EQ(r.rejects[1].reason,
            "line 2: field 'ts': expected epoch milliseconds or an RFC 3339 string, got null");
  EXPECT_EQ(r.rejects[2].reason,
            "line 3: field 'ts': expected epoch milliseconds or an RFC 3339 string, got true");
  EXPECT_EQ(r.rejects[2].line, "{\"ts\":true}");
  EXPECT_EQ(r.rejects[2].line_number, 3);
  EXPECT_THAT(r.rejects[3].reason, HasSubstr("got \"yesterday\""));
  EXPECT_THAT(r.rejects[4].reason, HasSubstr("got an array"));
  EXPECT_THAT(r.rejects[5].reason, HasSubstr("got an object"));
  EXPECT_THAT(r.rejects[6].reason, HasSubstr("got 1e300 (out of range)"));
  EXPECT_THAT(r.rejects[11].reason, HasSubstr("got 1e400 (out of range)"));
  for (const Reject& j : r.rejects) EXPECT_THAT(j.reason, HasSubstr("'ts'"));
}

TEST(NdjsonDecoderTest, BigintFitsAndMisfits) {
  struct Case {
    const char* json;
    bool valid;
    int64_t value;
  };
  const Case cases[] = {
      {"0", true, 0},
      {"-0", true, 0},
      {"9223372036854775807", true, INT64_MAX},
      {"-9223372036854775808", true, INT64_MIN},
      {"1.0", true, 1},
      {"-0.0", true, 0},
      {"1e3", true, 1000},
      {"2.5e1", true, 25},
      {"1.5", false, 0},
      {"-9223372036.854775808", false, 0},  // > 19 significant digits
      {"9223372036854775808", false, 0},
      {"-9223372036854775809", false, 0},
      {"1e19", false, 0},
      {"99999999999999999999999", false, 0},
      {"1e400", false, 0},
      {"\"5\"", false, 0},
      {"true", false, 0},
      {"[1]", false, 0},
      {"{\"a\":1}", false, 0},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.json);
    Result r = DecodeRow(fmt::format("\"n\":{}", c.json));
    ExpectCounts(r, 1, 1, 0, c.valid ? 0 : 1);
    if (c.valid) {
      EXPECT_EQ(r.batch.columns[kN].GetValue(0), Value::Int64(c.value));
    } else {
      EXPECT_TRUE(r.batch.columns[kN].IsNull(0));
    }
  }
}

TEST(NdjsonDecoderTest, DoubleFitsAndMisfits) {
  struct Case {
    const char* json;
    bool valid;
    double value;
  };
  const Case cases[] = {
      {"1", true, 1.0},
      {"-2.5", true, -2.5},
      {"1e-3", true, 0.001},
      {"12.34567890123456789", true, 12.34567890123456789},
      {"1.7976931348623157e308", true, 1.7976931348623157e308},
      {"18446744073709551615", true, 18446744073709551615.0},
      {"100000000000000000000", true, 1e20},
      {"1e400", false, 0},
      {"\"1.5\"", false, 0},
      {"false", false, 0},
      {"[]", false, 0},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.json);
    Result r = DecodeRow(fmt::format("\"d\":{}", c.json));
    ExpectCounts(r, 1, 1, 0, c.valid ? 0 : 1);
    if (c.valid) {
      EXPECT_EQ(r.batch.columns[kD].GetValue(0), Value::Double(c.value));
    } else {
      EXPECT_TRUE(r.batch.columns[kD].IsNull(0));
    }
  }
}

TEST(NdjsonDecoderTest, BooleanStringTimestampMisfits) {
  struct Case {
    std::string fields;
    int column;
    bool valid;
  };
  const Case cases[] = {
      {"\"b\":true", kB, true},
      {"\"b\":false", kB, true},
      {"\"b\":1", kB, false},
      {"\"b\":\"true\"", kB, false},
      {"\"b\":{}", kB, false},
      {"\"user\":\"\"", kUser, true},
      {"\"user\":1", kUser, false},
      {"\"user\":true", kUser, false},
      {"\"user\":[\"a\"]", kUser, false},
      {"\"user\":{\"a\":\"b\"}", kUser, false},
      {"\"t2\":5", kT2, true},
      {"\"t2\":\"2026-01-01T00:00:00+02:00\"", kT2, true},
      {"\"t2\":\"soon\"", kT2, false},
      {"\"t2\":false", kT2, false},
      {"\"t2\":1e300", kT2, false},
      {"\"t2\":[]", kT2, false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.fields);
    Result r = DecodeRow(c.fields);
    ExpectCounts(r, 1, 1, 0, c.valid ? 0 : 1);
    EXPECT_EQ(!r.batch.columns[c.column].IsNull(0), c.valid);
  }
  Result r = DecodeRow("\"b\":true,\"user\":\"\"");
  EXPECT_EQ(r.batch.columns[kB].GetValue(0), Value::Bool(true));
  EXPECT_EQ(r.batch.columns[kUser].GetValue(0), Value::String(""));
}

TEST(NdjsonDecoderTest, NullAndMissingAreNullWithoutErrors) {
  Result r = DecodeAll(
      "{\"ts\":1,\"user\":null,\"n\":null,\"d\":null,\"b\":null,\"t2\":null}\n"
      "{\"ts\":2}\n");
  ExpectCounts(r, 2, 2, 0, 0);
  for (int c : {kUser, kN, kD, kB, kT2}) {
    EXPECT_TRUE(r.batch.columns[c].IsNull(0));
    EXPECT_TRUE(r.batch.columns[c].IsNull(1));
  }
}

TEST(NdjsonDecoderTest, BlankLinesCrlfAndLineNumbers) {
  Result r = DecodeAll(
      "\n"                                 // 10 empty
      "{\"ts\":1}\r\n"                     // 11
      "   \t \r\n"                         // 12 whitespace only
      "\r\n"                               // 13
      "  {\"ts\":2,\"user\":\"x\"}  \r\n"  // 14 surrounding blanks are fine
      "{\"ts\":\n"                         // 15 broken
      "{\"ts\":3}",                        // 16 no final newline
      /*first_line=*/10);
  ExpectCounts(r, 4, 3, 1, 0);
  EXPECT_EQ(r.physical_lines, 7);
  EXPECT_EQ(r.batch.event_time_ms, (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(r.batch.columns[kUser].GetValue(1), Value::String("x"));
  ASSERT_EQ(r.rejects.size(), 1u);
  EXPECT_EQ(r.rejects[0].line_number, 15);
  EXPECT_EQ(r.rejects[0].line, "{\"ts\":");
  EXPECT_THAT(r.rejects[0].reason, HasSubstr("line 15: invalid JSON"));

  Result crlf = DecodeAll("{\"ts\":1,\"user\":\"a\"}\r\n{\"ts\":2}\r");
  ExpectCounts(crlf, 2, 2, 0, 0);
  EXPECT_EQ(crlf.batch.columns[kUser].GetValue(0), Value::String("a"));
}

TEST(NdjsonDecoderTest, RejectsMalformedAndNonObjectLines) {
  const std::vector<std::string> bad = {
      "{\"ts\":1",
      "{\"ts\":1,}",
      "{\"ts\" 1}",
      "{ts:1}",
      "not json",
      "{\"ts\":1} x",
      "{\"ts\":1}{\"ts\":2}",
      "{\"ts\":1}}",
      "{\"ts\":1}]",
      "[{\"ts\":1}]",
      "[]",
      "123",
      "\"str\"",
      "null",
      "true",
      "{\"ts\":1,\"x\":tru}",
      "{\"ts\":1,\"x\":nul}",
      "{\"ts\":1,\"x\":[1 2]}",
      "{\"ts\":1,\"x\":[1}",
      "{\"ts\":1,\"x\":{]}",
      "{\"ts\":1,\"x\":{\"a\":1]}",
      "{\"ts\":1,\"x\":\"\\q\"}",
      "{\"ts\":1,\"x\":01}",
      "{\"ts\":1,\"x\":1.}",
      "{\"ts\":1,\"x\":-}",
      "{\"ts\":1,\"x\":1.5x}",
      "{\"ts\":1,\"n\":tru}",
      "{\"ts\":1,\"n\":1.2.3}",
      "{\"ts\":1,\"user\":\"\\u12\"}",
      "{\"ts\":1,\"user\":[1,]}",
      "{\"ts\":1,\"x\":\"a\tb\"}",      // raw control character in a string
      "{\"ts\":1,\"x\":\"\xff\xfe\"}",  // invalid UTF-8
      "{\"ts\":1,\"\\x\":1}",           // invalid escape in a key
      "{\"ts\":1,\"x\":{\"\\x\":1}}",   // ... in a nested key
      "{\"ts\":tru}",
      "{\"ts\":12abc}",
      "{\"ts\":\"2026-11-24T05:41:00Z}",
      "{\"ts\":1,\"x\":[[[[[]]]]}",
      "\x01",
      "{\"ts\":1}\x01",
  };
  std::string data;
  for (const std::string& line : bad) data += line + "\n";
  Result r = DecodeAll(data);
  ExpectCounts(r, static_cast<int64_t>(bad.size()), 0, static_cast<int64_t>(bad.size()), 0);
  for (size_t i = 0; i < r.rejects.size(); ++i) {
    EXPECT_EQ(r.rejects[i].line, bad[i]);
    EXPECT_EQ(r.rejects[i].line_number, static_cast<int64_t>(i + 1));
    EXPECT_THAT(r.rejects[i].reason, HasSubstr(fmt::format("line {}: ", i + 1)));
  }
  EXPECT_EQ(r.rejects[9].reason, "line 10: expected a JSON object, got an array");
  EXPECT_EQ(r.rejects[11].reason, "line 12: expected a JSON object, got a number");
  EXPECT_EQ(r.rejects[5].reason, "line 6: unexpected content after the JSON object at byte 10: x");
  EXPECT_THAT(r.rejects[6].reason, HasSubstr("unexpected content after the JSON object"));
  EXPECT_THAT(r.rejects[0].reason, HasSubstr("invalid JSON"));
}

TEST(NdjsonDecoderTest, TrailingContentAfterAnObjectHasAClearReason) {
  const std::vector<std::string> bad = {
      R"({"ts":1} xyz)",
      R"({"ts":1,"user":"a}b"}  {"ts":2})",
      R"(  {"ts":1,"x":[{"y":"]"}]}x)",
      R"({"ts":1}})",
      R"({"ts":1},)",
  };
  std::string data;
  for (const std::string& line : bad) data += line + "\n";
  Result r = DecodeAll(data);
  ExpectCounts(r, 5, 0, 5, 0);
  EXPECT_EQ(r.rejects[0].reason,
            "line 1: unexpected content after the JSON object at byte 10: xyz");
  EXPECT_EQ(r.rejects[1].reason,
            R"(line 2: unexpected content after the JSON object at byte 24: {"ts":2})");
  EXPECT_EQ(r.rejects[2].reason, "line 3: unexpected content after the JSON object at byte 27: x");
  EXPECT_THAT(r.rejects[3].reason, HasSubstr("unexpected content after the JSON object"));
  EXPECT_THAT(r.rejects[4].reason, HasSubstr("unexpected content after the JSON object"));
  // A malformed object followed by content is reported as the malformed object.
  Result m = DecodeAll(R"({"ts":1,"x":tru} xyz)"
                       "\n");
  ExpectCounts(m, 1, 0, 1, 0);
  EXPECT_THAT(m.rejects[0].reason, HasSubstr("invalid JSON"));
  // Trailing blanks are fine.
  ExpectCounts(DecodeAll("{\"ts\":1} \t \r\n"), 1, 1, 0, 0);
}

TEST(NdjsonDecoderTest, ByteOrderMarkStartsTheInputOnly) {
  const std::string bom = "\xEF\xBB\xBF";
  Result r = DecodeAll(bom + R"({"ts":1,"user":"a"})"
                             "\n"
                             R"({"ts":2})"
                             "\n");
  ExpectCounts(r, 2, 2, 0, 0);
  EXPECT_EQ(r.batch.columns[kUser].str[0], "a");
  // A BOM alone on the first line is a blank line; without a newline at all, still accepted.
  ExpectCounts(DecodeAll(bom + "\n"
                               R"({"ts":1})"),
               1, 1, 0, 0);
  ExpectCounts(DecodeAll(bom + R"({"ts":1})"), 1, 1, 0, 0);
  // Unpadded input (HTTP bodies) takes the same path.
  NdjsonDecoder decoder(Schema(), kTs);
  RowBatch batch;
  DecodeStats stats;
  const std::string body = bom + R"({"ts":5})";
  decoder.Decode(body, /*padding_available=*/0, /*first_line_number=*/1, &batch, &stats);
  EXPECT_EQ(stats.rows, 1);
  EXPECT_EQ(stats.rejected, 0);
  // Anywhere else it is a rejected line that says why.
  Result mid = DecodeAll(R"({"ts":1})"
                         "\n" +
                         bom +
                         R"({"ts":2})"
                         "\n");
  ExpectCounts(mid, 2, 1, 1, 0);
  EXPECT_EQ(mid.rejects[0].reason,
            "line 2: a UTF-8 byte order mark (BOM) is only allowed at the start of the input");
  // A chunk that does not start the input (first line 7) keeps it too.
  Result later = DecodeAll(bom + R"({"ts":1})"
                                 "\n",
                           7);
  ExpectCounts(later, 1, 0, 1, 0);
}

TEST(NdjsonDecoderTest, AcceptsValidJsonInIgnoredFields) {
  Result r = DecodeAll(
      "{\"x\":{\"a\":[1,2.5,-3e4,true,false,null,\"s\",{\"b\":{}}],\"c\":[]},\"ts\":7}\n"
      "{\"\":1,\"ts\":8,\"y\":\"\\u00e9\\n\\\"\",\"z\":99999999999999999999999,\"w\":1e999}\n"
      "{\"ts\":9,\"x\":{\"k\\u00e9y\":0}}\n"
      " { \"ts\" : 10 , \"user\" : \"spaced\" } \n");
  ExpectCounts(r, 4, 4, 0, 0);
  EXPECT_EQ(r.batch.event_time_ms, (std::vector<int64_t>{7, 8, 9, 10}));
  EXPECT_EQ(r.batch.columns[kUser].GetValue(3), Value::String("spaced"));
}

TEST(NdjsonDecoderTest, EscapedStringsAndUnicode) {
  Result r = DecodeAll(R"({"ts":1,"user":"a\"b\\c\/d\n\t\u00e9\ud83d\ude00"})"
                       "\n"
                       "{\"ts\":2,\"user\":\"h\xc3\xa9llo \xe2\x82\xac\"}\n"
                       R"({"ts":3,"u\u0073er":"escaped key"})"
                       "\n");
  ExpectCounts(r, 3, 3, 0, 0);
  EXPECT_EQ(r.batch.columns[kUser].GetValue(0),
            Value::String("a\"b\\c/d\n\t\xc3\xa9\xf0\x9f\x98\x80"));
  EXPECT_EQ(r.batch.columns[kUser].GetValue(1), Value::String("h\xc3\xa9llo \xe2\x82\xac"));
  EXPECT_EQ(r.batch.columns[kUser].GetValue(2), Value::String("escaped key"));
}

TEST(NdjsonDecoderTest, DuplicateKeysLastOneWins) {
  Result r = DecodeAll(
      "{\"ts\":1,\"n\":\"x\",\"n\":5}\n"           // misfit then fit: 5, no error
      "{\"ts\":2,\"n\":5,\"n\":\"x\"}\n"           // fit then misfit: NULL, one error
      "{\"ts\":3,\"n\":5,\"n\":null}\n"            // NULL, no error
      "{\"ts\":4,\"n\":[],\"n\":{},\"n\":true}\n"  // one error however many misfits
      "{\"ts\":\"bad\",\"ts\":5}\n"                // accepted at 5
      "{\"ts\":5,\"ts\":\"bad\"}\n"                // rejected
      "{\"ts\":6,\"user\":\"a\",\"user\":\"b\"}\n");
  ExpectCounts(r, 7, 6, 1, 2);
  const Column& n = r.batch.columns[kN];
  EXPECT_EQ(n.GetValue(0), Value::Int64(5));
  EXPECT_TRUE(n.IsNull(1));
  EXPECT_TRUE(n.IsNull(2));
  EXPECT_TRUE(n.IsNull(3));
  EXPECT_EQ(r.batch.event_time_ms[4], 5);
  EXPECT_EQ(r.batch.columns[kUser].GetValue(5), Value::String("b"));
  EXPECT_EQ(r.rejects[0].line_number, 6);
}

TEST(NdjsonDecoderTest, FieldNamesAreCaseSensitive) {
  Result r = DecodeAll("{\"TS\":1}\n{\"ts\":1,\"User\":\"x\",\"N\":\"not checked\"}\n");
  ExpectCounts(r, 2, 1, 1, 0);
  EXPECT_TRUE(r.batch.columns[kUser].IsNull(0));
}

TEST(NdjsonDecoderTest, ExactCountsOnMixedInput) {
  std::string data;
  int64_t lines = 0, rows = 0, rejected = 0, field_errors = 0;
  for (int i = 0; i < 1000; ++i) {
    switch (i % 7) {
      case 0:
        data += fmt::format("{{\"user\":\"u{}\",\"n\":{},\"ts\":{}}}\n", i, i, 1000 + i);
        ++rows;
        break;
      case 1:
        data += fmt::format("{{\"user\":{},\"n\":\"{}\",\"ts\":{}}}\n", i, i, 1000 + i);
        ++rows;
        field_errors += 2;
        break;
      case 2:
        data += "\n  \n";
        lines -= 1;  // two blank lines, none counted (compensates the ++lines below)
        break;
      case 3:
        data += fmt::format("{{\"user\":\"u{}\"}}\n", i);
        ++rejected;
        break;
      case 4:
        data += "{\"ts\":1,\n";
        ++rejected;
        break;
      case 5:
        data +=
            fmt::format("{{\"ts\":\"2026-11-24T05:41:{:02}Z\",\"b\":1,\"d\":null}}\r\n", i % 60);
        ++rows;
        ++field_errors;
        break;
      case 6:
        data += "[1,2,3]\n";
        ++rejected;
        break;
    }
    ++lines;
  }
  Result r = DecodeAll(data);
  ExpectCounts(r, lines, rows, rejected, field_errors);
  EXPECT_EQ(lines, rows + rejected);
}

TEST(NdjsonDecoderTest, AppendsAcrossCallsAndReusesBuffers) {
  NdjsonDecoder decoder(Schema(), kTs);
  RowBatch batch;
  DecodeStats stats;
  const std::string data = "{\"ts\":1,\"user\":\"aaaaaaaaaaaaaaaaaaaaaa\"}\n{\"ts\":2,\"n\":3}\n";
  EXPECT_EQ(decoder.Decode(data, 0, 1, &batch, &stats), 2);
  EXPECT_EQ(decoder.Decode(data, 0, 3, &batch, &stats), 2);
  EXPECT_EQ(batch.num_rows, 4u);
  EXPECT_EQ(stats.rows, 4);
  EXPECT_EQ(batch.columns[kUser].GetValue(2), Value::String("aaaaaaaaaaaaaaaaaaaaaa"));
  EXPECT_EQ(batch.columns[kN].GetValue(3), Value::Int64(3));

  // Clear() (or ResetBatch) then Decode refills the same buffers without reallocating.
  const int64_t* i64_data = batch.columns[kN].i64.data();
  const uint8_t* valid_data = batch.columns[kUser].valid.data();
  const size_t arena_bytes = batch.arena.bytes_reserved();
  for (int round = 0; round < 3; ++round) {
    batch.Clear();
    EXPECT_EQ(decoder.Decode(data, 0, 1, &batch, &stats), 2);
    EXPECT_EQ(batch.num_rows, 2u);
    EXPECT_EQ(batch.columns[kN].size(), 2u);
    EXPECT_EQ(batch.event_time_ms, (std::vector<int64_t>{1, 2}));
    EXPECT_EQ(batch.columns[kUser].GetValue(0), Value::String("aaaaaaaaaaaaaaaaaaaaaa"));
    EXPECT_EQ(batch.columns[kN].i64.data(), i64_data);
    EXPECT_EQ(batch.columns[kUser].valid.data(), valid_data);
    EXPECT_EQ(batch.arena.bytes_reserved(), arena_bytes);
  }
  decoder.ResetBatch(&batch);
  EXPECT_EQ(batch.num_rows, 0u);
  EXPECT_EQ(batch.columns.size(), 6u);
  EXPECT_EQ(batch.columns[kD].type, DataType::kDouble);
  EXPECT_EQ(batch.columns[kD].size(), 0u);
}

TEST(NdjsonDecoderTest, StringsOutliveTheInput) {
  NdjsonDecoder decoder(Schema(), kTs);
  RowBatch batch;
  DecodeStats stats;
  {
    std::string data = "{\"ts\":1,\"user\":\"plain\"}\n{\"ts\":2,\"user\":\"esc\\u0041\"}\n";
    decoder.Decode(data, 0, 1, &batch, &stats);
    data.assign(data.size(), 'X');
  }
  decoder.Decode("{\"ts\":3,\"user\":\"other\"}", 0, 3, &batch, &stats);
  EXPECT_EQ(batch.columns[kUser].GetValue(0), Value::String("plain"));
  EXPECT_EQ(batch.columns[kUser].GetValue(1), Value::String("escA"));
  EXPECT_EQ(batch.columns[kUser].GetValue(2), Value::String("other"));
}

TEST(NdjsonDecoderTest, UnpaddedAndPaddedInputAgree) {
  const std::string data =
      "{\"ts\":1,\"user\":\"a\"}\n{\"ts\":2,\"user\":\"b\",\"n\":\"x\"}\nbad\n{\"ts\":3}";
  NdjsonDecoder decoder(Schema(), kTs);
  RowBatch a, b;
  DecodeStats sa, sb;
  EXPECT_EQ(decoder.Decode(data, 0, 1, &a, &sa), 4);
  Chunk chunk;
  chunk.Assign(data);
  EXPECT_EQ(decoder.Decode(chunk, 1, &b, &sb), 4);
  EXPECT_EQ(sa.rows, 3);
  EXPECT_EQ(sa.rows, sb.rows);
  EXPECT_EQ(sa.rejected, sb.rejected);
  EXPECT_EQ(sa.field_errors, sb.field_errors);
  EXPECT_EQ(a.event_time_ms, b.event_time_ms);
}

TEST(NdjsonDecoderTest, EmptyInput) {
  Result r = DecodeAll("");
  ExpectCounts(r, 0, 0, 0, 0);
  EXPECT_EQ(r.physical_lines, 0);
  EXPECT_EQ(r.batch.columns.size(), 6u);
}

TEST(NdjsonDecoderTest, DeepNestingDoesNotCrash) {
  std::string deep = "{\"ts\":1,\"x\":";
  for (int i = 0; i < 5000; ++i) deep += '[';
  for (int i = 0; i < 5000; ++i) deep += ']';
  deep += "}\n";
  Result r = DecodeAll(deep + deep.substr(0, 3000) + "\n");
  EXPECT_EQ(r.stats.lines, 2);
  EXPECT_EQ(r.stats.rows + r.stats.rejected, 2);
  EXPECT_EQ(r.stats.rejected, 2);  // too deep, and truncated
}

TEST(NdjsonDecoderTest, CreateValidatesTheSchema) {
  EXPECT_TRUE(NdjsonDecoder::Create(Schema(), kTs).ok());
  EXPECT_FALSE(NdjsonDecoder::Create(Schema(), 6).ok());
  EXPECT_FALSE(NdjsonDecoder::Create(Schema(), -1).ok());
  EXPECT_FALSE(NdjsonDecoder::Create(Schema(), kN).ok());
  std::vector<ColumnDef> dup = Schema();
  dup.push_back({"n", DataType::kString});
  EXPECT_FALSE(NdjsonDecoder::Create(dup, kTs).ok());

  // A decoder without a valid time column rejects everything instead of crashing.
  NdjsonDecoder broken(Schema(), 99);
  RowBatch batch;
  DecodeStats stats;
  std::string reason;
  broken.Decode("{\"ts\":1}\n", 0, 1, &batch, &stats,
                [&](const Rejection& r) { reason = r.reason; });
  EXPECT_EQ(stats.rejected, 1);
  EXPECT_THAT(reason, HasSubstr("no TIMESTAMP event-time column"));
}

TEST(NdjsonDecoderTest, ManyColumnsLookUp) {
  std::vector<ColumnDef> cols;
  std::string line = "{";
  for (int i = 0; i < 40; ++i) {
    cols.push_back({fmt::format("col_{}", i), DataType::kInt64});
    line += fmt::format("\"col_{}\":{},", i, i * 10);
  }
  cols.push_back({"ts", DataType::kTimestamp});
  line += "\"ts\":5}";
  NdjsonDecoder decoder(cols, 40);
  RowBatch batch;
  DecodeStats stats;
  decoder.Decode(line, 0, 1, &batch, &stats);
  ASSERT_EQ(stats.rows, 1);
  for (int i = 0; i < 40; ++i) EXPECT_EQ(batch.columns[i].GetValue(0), Value::Int64(i * 10));
}

TEST(NdjsonDecoderTest, StatsAdd) {
  DecodeStats a{1, 2, 3, 4};
  a += DecodeStats{10, 20, 30, 40};
  EXPECT_EQ(a.lines, 11);
  EXPECT_EQ(a.rows, 22);
  EXPECT_EQ(a.rejected, 33);
  EXPECT_EQ(a.field_errors, 44);
}

}  // namespace
}  // namespace tessera::source
