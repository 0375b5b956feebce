#include "common/time_util.h"

#include <charconv>

#include "common/errors.h"

namespace tessera {
namespace {

bool Digits(std::string_view s, size_t pos, size_t n, int* out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (size_t i = 0; i < n; ++i) {
    char c = s[pos + i];
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  *out = v;
  return true;
}

// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

void CivilFromDays(int64_t z, int64_t* y, unsigned* m, unsigned* d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t yy = static_cast<int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = yy + (*m <= 2);
}

bool IsLeap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int DaysInMonth(int y, int m) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && IsLeap(y) ? 29 : kDays[m - 1];
}

}  // namespace

std::optional<int64_t> ParseRfc3339Millis(std::string_view s) {
  int year, month, day, hour, minute, second;
  if (s.size() < 20) return std::nullopt;
  if (!Digits(s, 0, 4, &year) || s[4] != '-' || !Digits(s, 5, 2, &month) || s[7] != '-' ||
      !Digits(s, 8, 2, &day)) {
    return std::nullopt;
  }
  if (s[10] != 'T' && s[10] != 't' && s[10] != ' ') return std::nullopt;
  if (!Digits(s, 11, 2, &hour) || s[13] != ':' || !Digits(s, 14, 2, &minute) || s[16] != ':' ||
      !Digits(s, 17, 2, &second)) {
    return std::nullopt;
  }
  if (month < 1 || month > 12 || day < 1 || day > DaysInMonth(year, month) || hour > 23 ||
      minute > 59 || second > 60) {
    return std::nullopt;
  }
  size_t pos = 19;
  int64_t millis = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    size_t start = pos;
    int scale = 100;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      millis += (s[pos] - '0') * scale;
      scale /= 10;
      ++pos;
    }
    if (pos == start || pos - start > 9) return std::nullopt;
  }
  if (pos >= s.size()) return std::nullopt;
  int64_t offset_min = 0;
  char z = s[pos];
  if (z == 'Z' || z == 'z') {
    ++pos;
  } else if (z == '+' || z == '-') {
    int oh, om;
    if (!Digits(s, pos + 1, 2, &oh) || pos + 3 >= s.size() || s[pos + 3] != ':' ||
        !Digits(s, pos + 4, 2, &om) || oh > 23 || om > 59) {
      return std::nullopt;
    }
    offset_min = (oh * 60 + om) * (z == '+' ? 1 : -1);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != s.size()) return std::nullopt;
  int64_t days = DaysFromCivil(year, static_cast<unsigned>(month), static_cast<unsigned>(day));
  int64_t secs = days * 86400 + hour * 3600 + minute * 60 + second - offset_min * 60;
  return secs * 1000 + millis;
}

std::string FormatRfc3339Millis(int64_t epoch_ms) {
  int64_t days = AlignDown(epoch_ms, kMillisPerDay) / kMillisPerDay;
  int64_t rem = epoch_ms - days * kMillisPerDay;
  int64_t y;
  unsigned m, d;
  CivilFromDays(days, &y, &m, &d);
  char buf[64];
  int64_t h = rem / kMillisPerHour;
  int64_t mi = (rem / kMillisPerMinute) % 60;
  int64_t s = (rem / 1000) % 60;
  int64_t ms = rem % 1000;
  if (y >= 0 && y <= 9999) {
    // The common case by hand: snprintf's format parsing was a few % of a batch read's time.
    auto put = [](char* p, int64_t v, int digits) {
      for (int i = digits - 1; i >= 0; --i, v /= 10) p[i] = static_cast<char>('0' + v % 10);
    };
    char out[] = "0000-00-00T00:00:00.000Z";
    put(out, y, 4);
    put(out + 5, m, 2);
    put(out + 8, d, 2);
    put(out + 11, h, 2);
    put(out + 14, mi, 2);
    put(out + 17, s, 2);
    put(out + 20, ms, 3);
    return std::string(out, sizeof(out) - 1);
  }
  std::snprintf(buf, sizeof(buf), "%04lld-%02u-%02uT%02lld:%02lld:%02lld.%03lldZ",
                static_cast<long long>(y), m, d, static_cast<long long>(h),
                static_cast<long long>(mi), static_cast<long long>(s), static_cast<long long>(ms));
  return buf;
}

absl::StatusOr<int64_t> ParseTimePoint(std::string_view s) {
  int64_t v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  const bool integer = !s.empty() && ptr == s.data() + s.size() &&
                       (ec == std::errc() || ec == std::errc::result_out_of_range);
  std::optional<int64_t> t;
  if (integer) {
    if (ec == std::errc()) t = v;
  } else {
    t = ParseRfc3339Millis(s);
  }
  if (integer || t.has_value()) {
    if (t.has_value() && *t >= kMinTimestampMs && *t <= kMaxTimestampMs) return *t;
    return InvalidArgument(
        "time '{}' is out of range: expected a time from 0000-01-01T00:00:00Z to "
        "9999-12-31T23:59:59.999Z (epoch milliseconds {} to {})",
        s, kMinTimestampMs, kMaxTimestampMs);
  }
  return InvalidArgument(
      "invalid time '{}': expected RFC 3339 (e.g. 2026-11-24T10:00:00Z) or epoch milliseconds", s);
}

absl::StatusOr<int64_t> ParseDurationMillis(std::string_view s) {
  size_t i = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
  int64_t n = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + i, n);
  std::string_view unit = s.substr(i);
  int64_t scale = 0;
  if (unit == "ms") scale = 1;
  if (unit == "s") scale = kMillisPerSecond;
  if (unit == "m") scale = kMillisPerMinute;
  if (unit == "h") scale = kMillisPerHour;
  if (unit == "d") scale = kMillisPerDay;
  if (unit == "w") scale = 7 * kMillisPerDay;
  if (i == 0 || (ec != std::errc() && ec != std::errc::result_out_of_range) || scale == 0 ||
      (ec == std::errc() && n <= 0)) {
    return InvalidArgument(
        "invalid duration '{}': expected a positive integer followed by ms, s, m, h, d or w "
        "(e.g. 5m, 1h, 7d)",
        s);
  }
  if (ec != std::errc() || n > kMaxDurationMs / scale) {
    return InvalidArgument("duration '{}' is too long: at most 36500d (100 years)", s);
  }
  return n * scale;
}

std::string FormatDurationMillis(int64_t ms) {
  struct Unit {
    int64_t ms;
    const char* name;
  };
  static constexpr Unit kUnits[] = {{7 * kMillisPerDay, "w"}, {kMillisPerDay, "d"},
                                    {kMillisPerHour, "h"},    {kMillisPerMinute, "m"},
                                    {kMillisPerSecond, "s"},  {1, "ms"}};
  for (const Unit& u : kUnits) {
    if (ms != 0 && ms % u.ms == 0 && u.ms != 7 * kMillisPerDay) {
      return fmt::format("{}{}", ms / u.ms, u.name);
    }
  }
  return fmt::format("{}ms", ms);
}

}  // namespace tessera
