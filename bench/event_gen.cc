// tessera-gen: writes a synthetic listening-event stream as NDJSON (~130 bytes a line).
//
// Keys follow a Zipf law (a few heavy users, a long tail), event time moves forward over
// --span with optional disorder inside the lateness bound, and optional late, malformed and
// NULL-bearing rows for testing. Deterministic for a given --seed.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "common/time_util.h"

namespace {

// Samples 0..n-1 with P(i) ∝ 1/(i+1)^s by inverting a precomputed CDF.
class Zipf {
 public:
  Zipf(size_t n, double s) : cdf_(n) {
    double sum = 0;
    for (size_t i = 0; i < n; ++i) {
      sum += 1.0 / std::pow(static_cast<double>(i + 1), s);
      cdf_[i] = sum;
    }
    for (double& c : cdf_) c /= sum;
  }
  template <typename Rng>
  size_t operator()(Rng& rng) {
    double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
    return static_cast<size_t>(std::lower_bound(cdf_.begin(), cdf_.end(), u) - cdf_.begin());
  }

 private:
  std::vector<double> cdf_;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Generate synthetic listening events as NDJSON"};
  int64_t events = 1'000'000;
  size_t users = 200'000;
  size_t tracks = 500'000;
  double zipf_s = 1.05;
  std::string span = "6h";
  std::string start = "2026-11-01T00:00:00Z";
  std::string out_path = "-";
  uint64_t seed = 42;
  double disorder = 0.05, late = 0.0, malformed = 0.0, nulls = 0.0;
  bool rfc3339 = false;
  app.add_option("--events", events, "Number of lines")->capture_default_str();
  app.add_option("--users", users, "Distinct user keys")->capture_default_str();
  app.add_option("--tracks", tracks, "Distinct tracks")->capture_default_str();
  app.add_option("--zipf", zipf_s, "Zipf exponent of user popularity")->capture_default_str();
  app.add_option("--span", span, "Event-time span of the stream")->capture_default_str();
  app.add_option("--start", start, "Event time of the first row")->capture_default_str();
  app.add_option("--out", out_path, "Output file ('-' = stdout)")->capture_default_str();
  app.add_option("--seed", seed, "Random seed")->capture_default_str();
  app.add_option("--disorder", disorder, "Fraction of rows moved back within 4 minutes")
      ->capture_default_str();
  app.add_option("--late", late, "Fraction of rows 1-3 hours older than the stream")
      ->capture_default_str();
  app.add_option("--malformed", malformed, "Fraction of malformed lines")->capture_default_str();
  app.add_option("--nulls", nulls, "Fraction of rows with NULL fields")->capture_default_str();
  app.add_flag("--rfc3339", rfc3339, "Write half of the timestamps as RFC 3339 strings");
  CLI11_PARSE(app, argc, argv);

  auto span_ms = tessera::ParseDurationMillis(span);
  auto start_ms = tessera::ParseTimePoint(start);
  if (!span_ms.ok() || !start_ms.ok()) {
    fmt::print(stderr, "tessera-gen: bad --span or --start\n");
    return 2;
  }
  std::FILE* out = out_path == "-" ? stdout : std::fopen(out_path.c_str(), "wb");
  if (out == nullptr) {
    fmt::print(stderr, "tessera-gen: cannot write {}\n", out_path);
    return 1;
  }
  std::mt19937_64 rng(seed);
  Zipf user_dist(users, zipf_s);
  Zipf track_dist(tracks, 0.9);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  static const char* kCountries[] = {"SE", "US", "DE", "BR", "IN", "JP", "GB", "FR"};
  std::string buf;
  buf.reserve(1 << 20);
  for (int64_t i = 0; i < events; ++i) {
    int64_t ts = *start_ms + (*span_ms * i) / std::max<int64_t>(events, 1);
    double r = unit(rng);
    if (r < malformed) {
      buf += (i % 2 == 0) ? "{\"user_id\": \"u1\", \"ts\": \n" : "not json at all\n";
    } else {
      if (unit(rng) < disorder) ts -= static_cast<int64_t>(unit(rng) * 4 * 60 * 1000);
      if (unit(rng) < late) ts -= 3600 * 1000 + static_cast<int64_t>(unit(rng) * 7200 * 1000);
      size_t u = user_dist(rng);
      size_t t = track_dist(rng);
      int64_t ms = static_cast<int64_t>(unit(rng) * 300000);
      bool skipped = unit(rng) < 0.3;
      const char* country = kCountries[rng() % 8];
      bool null_row = unit(rng) < nulls;
      std::string ts_text = (rfc3339 && (i & 1)) ? "\"" + tessera::FormatRfc3339Millis(ts) + "\""
                                                 : std::to_string(ts);
      fmt::format_to(std::back_inserter(buf),
                     "{{\"user_id\":\"user{:07d}\",\"track_id\":\"track{:08d}\",\"ms_played\":{},"
                     "\"skipped\":{},\"country\":\"{}\",\"device\":\"mobile\",\"ts\":{}}}\n",
                     u, t, null_row ? "null" : std::to_string(ms), skipped ? "true" : "false",
                     country, ts_text);
    }
    if (buf.size() > (1 << 20) - 512) {
      std::fwrite(buf.data(), 1, buf.size(), out);
      buf.clear();
    }
  }
  std::fwrite(buf.data(), 1, buf.size(), out);
  if (out != stdout) std::fclose(out);
  return 0;
}
