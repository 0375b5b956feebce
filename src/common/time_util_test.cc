#include "common/time_util.h"

#include <gtest/gtest.h>

namespace tessera {
namespace {

TEST(Rfc3339, ParsesUtcOffsetsAndFractions) {
  EXPECT_EQ(ParseRfc3339Millis("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(ParseRfc3339Millis("2026-01-01T00:00:00Z"), 1767225600000);
  EXPECT_EQ(ParseRfc3339Millis("2026-01-01T00:00:00.123Z"), 1767225600123);
  EXPECT_EQ(ParseRfc3339Millis("2026-01-01T00:00:00.123456789Z"), 1767225600123);
  EXPECT_EQ(ParseRfc3339Millis("2026-01-01T01:00:00+01:00"), 1767225600000);
  EXPECT_EQ(ParseRfc3339Millis("2025-12-31T19:00:00-05:00"), 1767225600000);
  EXPECT_EQ(ParseRfc3339Millis("2026-01-01 00:00:00z"), 1767225600000);
  EXPECT_EQ(ParseRfc3339Millis("1969-12-31T23:59:59.999Z"), -1);
  EXPECT_EQ(ParseRfc3339Millis("2024-02-29T00:00:00Z"), 1709164800000);
}

TEST(Rfc3339, RejectsMalformed) {
  for (const char* bad :
       {"", "2026-01-01", "2026-01-01T00:00:00", "2026-13-01T00:00:00Z", "2026-02-29T00:00:00Z",
        "2026-01-01T24:00:00Z", "2026-01-01T00:00:00.Z", "2026-01-01T00:00:00+1:00",
        "2026-01-01T00:00:00Zjunk", "yesterday", "2026-01-01T00:00:00.1234567891Z"}) {
    EXPECT_FALSE(ParseRfc3339Millis(bad).has_value()) << bad;
  }
}

TEST(Rfc3339, FormatRoundTrips) {
  for (int64_t ms : {int64_t{0}, int64_t{-1}, int64_t{1767225600123}, int64_t{-62135596800000},
                     int64_t{253402300799999}}) {
    EXPECT_EQ(ParseRfc3339Millis(FormatRfc3339Millis(ms)), ms) << ms;
  }
  EXPECT_EQ(FormatRfc3339Millis(1767225600123), "2026-01-01T00:00:00.123Z");
  EXPECT_EQ(FormatRfc3339Millis(-1), "1969-12-31T23:59:59.999Z");
  EXPECT_EQ(FormatRfc3339Millis(-62167219200000), "0000-01-01T00:00:00.000Z");
  EXPECT_EQ(FormatRfc3339Millis(253402300799999), "9999-12-31T23:59:59.999Z");
  // Outside four-digit years: as printf's %04lld writes them.
  EXPECT_EQ(FormatRfc3339Millis(253402300800000), "10000-01-01T00:00:00.000Z");
  EXPECT_EQ(FormatRfc3339Millis(-62167219200001), "-001-12-31T23:59:59.999Z");
}

TEST(TimePoint, AcceptsEpochMillisOrRfc3339) {
  EXPECT_EQ(*ParseTimePoint("1767225600000"), 1767225600000);
  EXPECT_EQ(*ParseTimePoint("-5"), -5);
  EXPECT_EQ(*ParseTimePoint("2026-01-01T00:00:00Z"), 1767225600000);
  absl::StatusOr<int64_t> bad = ParseTimePoint("noon");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(std::string(bad.status().message()).find("expected RFC 3339"), std::string::npos);
}

// `at=9223372036854775807` once answered with year -292275055: out of range is an error.
TEST(TimePoint, RejectsTimesOutsideTheSupportedRange) {
  EXPECT_EQ(*ParseTimePoint("253402300799999"), kMaxTimestampMs);
  EXPECT_EQ(*ParseTimePoint("-62167219200000"), kMinTimestampMs);
  for (const char* bad : {"253402300800000", "-62167219200001", "9223372036854775807",
                          "-9223372036854775808", "99999999999999999999"}) {
    absl::StatusOr<int64_t> t = ParseTimePoint(bad);
    ASSERT_FALSE(t.ok()) << bad;
    EXPECT_NE(std::string(t.status().message()).find("out of range"), std::string::npos)
        << t.status();
  }
}

TEST(Duration, IsBoundedSoWindowArithmeticCannotOverflow) {
  EXPECT_EQ(*ParseDurationMillis("36500d"), kMaxDurationMs);
  for (const char* bad : {"36501d", "1099511627776w", "9223372036854775807ms"}) {
    absl::StatusOr<int64_t> d = ParseDurationMillis(bad);
    ASSERT_FALSE(d.ok()) << bad;
    EXPECT_NE(std::string(d.status().message()).find("too long"), std::string::npos) << bad;
  }
}

TEST(Duration, ParsesUnits) {
  EXPECT_EQ(*ParseDurationMillis("500ms"), 500);
  EXPECT_EQ(*ParseDurationMillis("90s"), 90'000);
  EXPECT_EQ(*ParseDurationMillis("5m"), 5 * kMillisPerMinute);
  EXPECT_EQ(*ParseDurationMillis("6h"), 6 * kMillisPerHour);
  EXPECT_EQ(*ParseDurationMillis("7d"), 7 * kMillisPerDay);
  EXPECT_EQ(*ParseDurationMillis("2w"), 14 * kMillisPerDay);
  for (const char* bad : {"", "m", "5", "0m", "-5m", "5x", "5 m", "1.5h", "99999999999999999d"}) {
    EXPECT_FALSE(ParseDurationMillis(bad).ok()) << bad;
  }
}

TEST(Duration, FormatsWithLargestUnit) {
  EXPECT_EQ(FormatDurationMillis(5 * kMillisPerMinute), "5m");
  EXPECT_EQ(FormatDurationMillis(kMillisPerHour), "1h");
  EXPECT_EQ(FormatDurationMillis(7 * kMillisPerDay), "7d");
  EXPECT_EQ(FormatDurationMillis(90'000), "90s");
  EXPECT_EQ(FormatDurationMillis(1500), "1500ms");
}

TEST(AlignDown, FloorsNegativeTimes) {
  EXPECT_EQ(AlignDown(0, 300), 0);
  EXPECT_EQ(AlignDown(299, 300), 0);
  EXPECT_EQ(AlignDown(-1, 300), -300);
  EXPECT_EQ(AlignDown(-300, 300), -300);
}

}  // namespace
}  // namespace tessera
