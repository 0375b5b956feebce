#include "source/format/decoded_rows.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/test_row_batch.h"

namespace tessera::source {
namespace {

const std::vector<ColumnDef> kColumns = {{"user", DataType::kString},
                                         {"v", DataType::kInt64},
                                         {"x", DataType::kDouble},
                                         {"ts", DataType::kTimestamp}};

DecodedRows Decode(const std::string& ndjson) {
  NdjsonDecoder decoder(kColumns, 3);
  DecodedRows rows;
  decoder.Decode(ndjson, 0, 1, &rows.batch, &rows.stats);
  for (int64_t ts : rows.batch.event_time_ms) {
    rows.max_event_time_ms = std::max(rows.max_event_time_ms, ts);
  }
  return rows;
}

using test_util::ExpectSameRows;

const std::string kFirst =
    "{\"user\":\"alice\",\"v\":1,\"x\":0.5,\"ts\":1000}\n"
    "{\"user\":\"bob\",\"v\":\"no\",\"ts\":2000}\n";
const std::string kSecond =
    "{\"user\":\"carol\",\"v\":3,\"x\":1.5,\"ts\":1500}\n"
    "{\"user\":null,\"v\":4,\"ts\":3000}\n"
    "{\"user\":\"dave\",\"ts\":2500}\n";

TEST(DecodedRows, AppendEqualsDecodingTheLinesTogether) {
  DecodedRows joined = Decode(kFirst);
  joined.Append(Decode(kSecond));
  const DecodedRows whole = Decode(kFirst + kSecond);
  ExpectSameRows(joined.batch, whole.batch);
  EXPECT_EQ(joined.stats.lines, whole.stats.lines);
  EXPECT_EQ(joined.stats.rows, whole.stats.rows);
  EXPECT_EQ(joined.stats.field_errors, whole.stats.field_errors);
  EXPECT_EQ(joined.max_event_time_ms, 3000);
  EXPECT_EQ(joined.arenas.size(), 1u);  // the second batch's strings stay where they are
}

TEST(DecodedRows, AppendToEmptyTakesTheOther) {
  DecodedRows rows;
  rows.Append(Decode(kSecond));
  ExpectSameRows(rows.batch, Decode(kSecond).batch);
  EXPECT_EQ(rows.stats.rows, 3);
  EXPECT_EQ(rows.max_event_time_ms, 3000);
}

TEST(DecodedRows, KeepRowsDropsInOrder) {
  DecodedRows rows = Decode(kFirst + kSecond);
  const std::vector<uint8_t> keep = {1, 0, 1, 0, 1};
  rows.KeepRows(keep);
  const DecodedRows expected = Decode(
      "{\"user\":\"alice\",\"v\":1,\"x\":0.5,\"ts\":1000}\n"
      "{\"user\":\"carol\",\"v\":3,\"x\":1.5,\"ts\":1500}\n"
      "{\"user\":\"dave\",\"ts\":2500}\n");
  ExpectSameRows(rows.batch, expected.batch);
  EXPECT_EQ(rows.max_event_time_ms, 2500);
}

TEST(DecodedRows, MemoryBytesCountsColumnsAndStrings) {
  DecodedRows small = Decode(kFirst);
  DecodedRows big = Decode(kFirst);
  for (int i = 0; i < 100; ++i) big.Append(Decode(kSecond));
  EXPECT_GT(small.MemoryBytes(), sizeof(DecodedRows));
  EXPECT_GT(big.MemoryBytes(), small.MemoryBytes() + 300 * (1 + 8 + 8 + 8));
}

}  // namespace
}  // namespace tessera::source
