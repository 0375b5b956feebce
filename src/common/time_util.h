#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace tessera {

inline constexpr int64_t kMillisPerSecond = 1000;
inline constexpr int64_t kMillisPerMinute = 60 * kMillisPerSecond;
inline constexpr int64_t kMillisPerHour = 60 * kMillisPerMinute;
inline constexpr int64_t kMillisPerDay = 24 * kMillisPerHour;

// Earliest and latest instants Tessera accepts anywhere (event times, `at`): 0000-01-01T00:00Z
// .. 9999-12-31T23:59:59.999Z, the range RFC 3339 can write. Keeping every time inside it, and
// every duration at or below kMaxDurationMs, keeps all window arithmetic far from int64 limits.
inline constexpr int64_t kMinTimestampMs = -62167219200000;
inline constexpr int64_t kMaxTimestampMs = 253402300799999;
// Longest duration accepted (windows, lateness, intervals): 100 years of 365 days.
inline constexpr int64_t kMaxDurationMs = int64_t{36500} * kMillisPerDay;

// A max-future of this: event times may be any distance ahead of the clock.
inline constexpr int64_t kNoFutureBound = std::numeric_limits<int64_t>::max();

// The latest event time accepted at `now_ms` when rows may be at most `max_future_ms` ahead of
// the clock (kNoFutureBound: no bound); never beyond kMaxTimestampMs.
// REQUIRES: max_future_ms <= kMaxDurationMs or == kNoFutureBound.
inline int64_t LatestAcceptedEventTime(int64_t now_ms, int64_t max_future_ms) {
  if (max_future_ms == kNoFutureBound) return kMaxTimestampMs;
  return std::min(kMaxTimestampMs, now_ms + max_future_ms);
}

// Parses an RFC 3339 timestamp ("2026-11-24T05:41:00Z", "…T05:41:00.123+01:00", a space instead
// of 'T' is accepted, fraction up to nanoseconds and truncated to milliseconds) into epoch
// milliseconds. Returns nullopt for anything else. Hot path: no allocation.
std::optional<int64_t> ParseRfc3339Millis(std::string_view s);

// "2026-11-24T05:41:00.123Z" (always UTC, always milliseconds).
std::string FormatRfc3339Millis(int64_t epoch_ms);

// A point in time given by a user: RFC 3339 or an integer of epoch milliseconds, inside
// [kMinTimestampMs, kMaxTimestampMs]. The error names the input and the accepted forms/range.
absl::StatusOr<int64_t> ParseTimePoint(std::string_view s);

// Durations like "5m", "1h", "90s", "7d", "2w", "500ms" (a positive integer and a unit in
// ms, s, m, h, d, w), at most kMaxDurationMs. Error names the input and what is accepted.
absl::StatusOr<int64_t> ParseDurationMillis(std::string_view s);

// Shortest exact rendering with the largest unit that divides: 300000 -> "5m".
std::string FormatDurationMillis(int64_t ms);

// Floor division alignment that is correct for negative times.
inline int64_t AlignDown(int64_t t, int64_t unit) {
  int64_t q = t / unit;
  if ((t % unit) != 0 && t < 0) --q;
  return q * unit;
}

}  // namespace tessera
