#include "offline/csv.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "common/errors.h"

namespace tessera::offline {
namespace {

using ::testing::ElementsAre;
using Record = std::vector<std::string>;

struct Parsed {
  std::vector<Record> records;
  std::vector<int64_t> lines;  // line() after each record
};

absl::StatusOr<Parsed> ReadAll(std::string_view data) {
  CsvReader reader(data);
  Parsed parsed;
  Record fields;
  while (true) {
    absl::StatusOr<bool> more = reader.Next(&fields);
    if (!more.ok()) return more.status();
    if (!*more) break;
    parsed.records.push_back(fields);
    parsed.lines.push_back(reader.line());
  }
  return parsed;
}

std::vector<Record> Records(std::string_view data) {
  absl::StatusOr<Parsed> parsed = ReadAll(data);
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  return parsed.ok() ? parsed->records : std::vector<Record>{};
}

std::string ErrorOf(std::string_view data) {
  absl::StatusOr<Parsed> parsed = ReadAll(data);
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << parsed.status();
  return StatusMessage(parsed.status());
}

TEST(CsvReaderTest, ReadsRecordsAndFields) {
  CsvReader reader("id,name\n1,ann\n2,bob");
  Record fields;
  EXPECT_EQ(reader.line(), 0);
  ASSERT_TRUE(reader.Next(&fields).value());
  EXPECT_THAT(fields, ElementsAre("id", "name"));
  EXPECT_EQ(reader.line(), 1);
  ASSERT_TRUE(reader.Next(&fields).value());
  EXPECT_THAT(fields, ElementsAre("1", "ann"));
  ASSERT_TRUE(reader.Next(&fields).value());
  EXPECT_THAT(fields, ElementsAre("2", "bob"));
  EXPECT_EQ(reader.line(), 3);
  EXPECT_FALSE(reader.Next(&fields).value());
  EXPECT_FALSE(reader.Next(&fields).value());
}

TEST(CsvReaderTest, EmptyFieldsAndRaggedRecords) {
  EXPECT_THAT(Records(",\na,,b,\n,x"),
              ElementsAre(Record{"", ""}, Record{"a", "", "b", ""}, Record{"", "x"}));
  EXPECT_THAT(Records("a,b,c\nd\n"), ElementsAre(Record{"a", "b", "c"}, Record{"d"}));
  EXPECT_TRUE(Records("").empty());
}

TEST(CsvReaderTest, QuotedFields) {
  EXPECT_THAT(Records(R"("a,b","say ""hi""",plain,"")"),
              ElementsAre(Record{"a,b", R"(say "hi")", "plain", ""}));
  EXPECT_THAT(Records("\"\"\n\"\",\"\"\n"), ElementsAre(Record{""}, Record{"", ""}));
  EXPECT_THAT(Records("\"\"\"\"\n"), ElementsAre(Record{"\""}));
  EXPECT_THAT(Records("\"x\""), ElementsAre(Record{"x"}));
}

TEST(CsvReaderTest, UnquotedFieldsAreReturnedAsWritten) {
  EXPECT_THAT(Records(" a , b \n"), ElementsAre(Record{" a ", " b "}));
  EXPECT_THAT(Records("a\"b,c\"\n"), ElementsAre(Record{"a\"b", "c\""}));
  EXPECT_THAT(Records(" \"x\",y\n"), ElementsAre(Record{" \"x\"", "y"}));
  EXPECT_THAT(Records("\t\n"), ElementsAre(Record{"\t"}));
}

TEST(CsvReaderTest, LineEnds) {
  EXPECT_THAT(Records("a,b\r\nc,d\r\n"), ElementsAre(Record{"a", "b"}, Record{"c", "d"}));
  EXPECT_THAT(Records("\"a\"\r\n\"b\",\r\n"), ElementsAre(Record{"a"}, Record{"b", ""}));
  // A CR not before LF stays in an unquoted field, except as the very last byte.
  EXPECT_THAT(Records("a\rb,c\r\r\n"), ElementsAre(Record{"a\rb", "c\r"}));
  EXPECT_THAT(Records("a,b\r"), ElementsAre(Record{"a", "b"}));
  EXPECT_THAT(Records("\"a\"\r"), ElementsAre(Record{"a"}));
}

TEST(CsvReaderTest, QuotedFieldsSpanLinesAndLineNumbersFollow) {
  absl::StatusOr<Parsed> parsed =
      ReadAll("id,text\n1,\"two\nlines\"\n2,\"crlf\r\ninside\"\r\n3,\"\n\n\",x\n4,end\n");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_THAT(parsed->records, ElementsAre(Record{"id", "text"}, Record{"1", "two\nlines"},
                                           Record{"2", "crlf\r\ninside"}, Record{"3", "\n\n", "x"},
                                           Record{"4", "end"}));
  EXPECT_THAT(parsed->lines, ElementsAre(1, 2, 4, 6, 9));
  EXPECT_EQ(ErrorOf("\"a\nb\",\"c\nd\"x\n"),
            "line 3, column 3: 'x' after the closing quote of the field starting at line 2, "
            "column 4; expected ',' or the end of the record");
}

TEST(CsvReaderTest, SkipsBlankLines) {
  absl::StatusOr<Parsed> parsed = ReadAll("\n\r\na\n\n\r\n\nb\n\n\r");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_THAT(parsed->records, ElementsAre(Record{"a"}, Record{"b"}));
  EXPECT_THAT(parsed->lines, ElementsAre(3, 7));
  EXPECT_TRUE(Records("\n\n\r\n").empty());
}

TEST(CsvReaderTest, SkipsAByteOrderMarkAtTheStartOnly) {
  EXPECT_THAT(Records("\xEF\xBB\xBFid,v\n\xEF\xBB\xBFx,1\n"),
              ElementsAre(Record{"id", "v"}, Record{"\xEF\xBB\xBFx", "1"}));
  EXPECT_THAT(Records("\xEF\xBB\xBF\"q\"\n"), ElementsAre(Record{"q"}));
  EXPECT_TRUE(Records("\xEF\xBB\xBF").empty());
  EXPECT_TRUE(Records("\xEF\xBB\xBF\r\n").empty());
  EXPECT_EQ(ErrorOf("\xEF\xBB\xBF\"open"),
            "line 1: unterminated quoted field starting at column 1");
}

TEST(CsvReaderTest, ErrorsSayWhatAndWhere) {
  EXPECT_EQ(ErrorOf("1\n2\n3\n4\n5\n6\nabcdefghij,\"unterminated\nrest\n"),
            "line 7: unterminated quoted field starting at column 12");
  EXPECT_EQ(ErrorOf("\"a\"\"\n"), "line 1: unterminated quoted field starting at column 1");
  EXPECT_EQ(ErrorOf("a,b\nc,\"d\"x\n"),
            "line 2, column 6: 'x' after the closing quote of the field starting at line 2, "
            "column 3; expected ',' or the end of the record");
  EXPECT_EQ(ErrorOf("\"d\" ,e\n"),
            "line 1, column 4: ' ' after the closing quote of the field starting at line 1, "
            "column 1; expected ',' or the end of the record");
  EXPECT_EQ(ErrorOf("\"d\"\rx\n"),
            "line 1, column 4: byte 0x0d after the closing quote of the field starting at line 1, "
            "column 1; expected ',' or the end of the record");
}

TEST(CsvReaderTest, RecordsBeforeAnErrorAreReturnedAndTheErrorSticks) {
  CsvReader reader("ok,1\nbad,\"x\"y\nok,2\n");
  Record fields;
  ASSERT_TRUE(reader.Next(&fields).value());
  EXPECT_THAT(fields, ElementsAre("ok", "1"));
  const absl::StatusOr<bool> first = reader.Next(&fields);
  EXPECT_EQ(first.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(reader.Next(&fields).status(), first.status());
}

std::string Field(std::string_view value) {
  std::string out;
  AppendCsvField(value, &out);
  return out;
}

TEST(AppendCsvFieldTest, QuotesOnlyWhenNeeded) {
  EXPECT_EQ(Field(""), "");
  EXPECT_EQ(Field("plain"), "plain");
  EXPECT_EQ(Field("in side"), "in side");
  EXPECT_EQ(Field("caf\xC3\xA9\t"), "caf\xC3\xA9\t");
  EXPECT_EQ(Field("a,b"), "\"a,b\"");
  EXPECT_EQ(Field("say \"hi\""), "\"say \"\"hi\"\"\"");
  EXPECT_EQ(Field("\""), "\"\"\"\"");
  EXPECT_EQ(Field("two\nlines"), "\"two\nlines\"");
  EXPECT_EQ(Field("cr\r"), "\"cr\r\"");
  EXPECT_EQ(Field(" lead"), "\" lead\"");
  EXPECT_EQ(Field("trail "), "\"trail \"");
  EXPECT_EQ(Field(" "), "\" \"");
  EXPECT_EQ(Field("\xEF\xBB\xBFx"), "\"\xEF\xBB\xBFx\"");
  EXPECT_EQ(Field("x\xEF\xBB\xBF"), "x\xEF\xBB\xBF");
  std::string out = "x,";
  AppendCsvField("y", &out);
  EXPECT_EQ(out, "x,y");
}

// Random records through AppendCsvField and back through CsvReader: the same fields, and line()
// is where each record starts.
TEST(CsvRoundTripTest, RandomRecords) {
  const std::vector<std::string> pieces = {"a", "b", " ", ",", "\"", "\r", "\n", "\xEF\xBB\xBF"};
  std::mt19937 rng(20240601);
  for (int iteration = 0; iteration < 2000; ++iteration) {
    std::vector<Record> records(rng() % 6);
    for (Record& record : records) {
      record.resize(1 + rng() % 5);
      for (std::string& field : record) {
        const size_t length = rng() % 3 == 0 ? 0 : rng() % 8;
        for (size_t i = 0; i < length; ++i) field += pieces[rng() % pieces.size()];
      }
      // One empty field is written as a blank line, which reads as no record.
      if (record.size() == 1 && record[0].empty()) record[0] = "a";
    }
    std::string text;
    std::vector<int64_t> lines;
    for (const Record& record : records) {
      lines.push_back(1 + std::count(text.begin(), text.end(), '\n'));
      for (size_t i = 0; i < record.size(); ++i) {
        if (i > 0) text.push_back(',');
        AppendCsvField(record[i], &text);
      }
      text += rng() % 2 == 0 ? "\n" : "\r\n";
    }
    if (rng() % 4 == 0 && !text.empty()) text.pop_back();  // drop the last LF
    absl::StatusOr<Parsed> parsed = ReadAll(text);
    ASSERT_TRUE(parsed.ok()) << parsed.status() << " reading " << testing::PrintToString(text);
    ASSERT_EQ(parsed->records, records) << testing::PrintToString(text);
    ASSERT_EQ(parsed->lines, lines) << testing::PrintToString(text);
  }
}

}  // namespace
}  // namespace tessera::offline
