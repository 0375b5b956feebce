// NDJSON decode throughput: rows/s and bytes/s for ~130-byte lines with 5 schema fields.
//   build/release/bench/decode_bench --benchmark_counters_tabular=true

#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "source/format/line_reader.h"
#include "source/format/ndjson_decoder.h"

namespace tessera::source {
namespace {

std::vector<ColumnDef> PlaysSchema() {
  return {{"user_id", DataType::kString},
          {"track_id", DataType::kString},
          {"ms_played", DataType::kInt64},
          {"skipped", DataType::kBool},
          {"ts", DataType::kTimestamp}};
}

// `rows` lines of ~130 bytes: the five schema fields plus one ignored field. `rfc3339` picks
// the event-time form.
std::string MakeLines(int rows, bool rfc3339) {
  std::mt19937_64 rng(42);
  std::string out;
  out.reserve(static_cast<size_t>(rows) * 140);
  const int64_t base = 1764000000000;
  for (int i = 0; i < rows; ++i) {
    const int64_t ts = base + i * 37;
    std::string ts_json =
        rfc3339 ? fmt::format("\"2025-11-24T{:02}:{:02}:{:02}.{:03}Z\"", (i / 3600000) % 24,
                              (i / 60000) % 60, (i / 1000) % 60, i % 1000)
                : fmt::format("{}", ts);
    out += fmt::format(
        "{{\"user_id\":\"user_{:09}\",\"track_id\":\"track_{:011}\",\"ms_played\":{},"
        "\"skipped\":{},\"ts\":{},\"country\":\"SE-AB\"}}\n",
        rng() % 1000000000, rng() % 100000000000, rng() % 400000, (rng() & 1) ? "true" : "false",
        ts_json);
  }
  return out;
}

void RunDecode(benchmark::State& state, bool rfc3339) {
  constexpr int kRows = 8000;  // ~1 MiB, one chunk
  const std::string data = MakeLines(kRows, rfc3339);
  Chunk chunk;
  chunk.Assign(data);
  NdjsonDecoder decoder(PlaysSchema(), 4);
  RowBatch batch;
  DecodeStats stats;
  for (auto _ : state) {
    batch.Clear();
    decoder.Decode(chunk, 1, &batch, &stats);
    benchmark::DoNotOptimize(batch.num_rows);
  }
  if (stats.rejected != 0 || stats.field_errors != 0) state.SkipWithError("unexpected rejects");
  state.SetItemsProcessed(state.iterations() * kRows);
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(data.size()));
  state.counters["bytes_per_line"] = static_cast<double>(data.size()) / kRows;
}

void BM_DecodeEpochMillis(benchmark::State& state) { RunDecode(state, false); }
void BM_DecodeRfc3339(benchmark::State& state) { RunDecode(state, true); }
BENCHMARK(BM_DecodeEpochMillis);
BENCHMARK(BM_DecodeRfc3339);

// Line reading plus decoding from a file, as `tessera backfill` does (plain file, page cache).
void BM_ReadAndDecodeFile(benchmark::State& state) {
  constexpr int kRows = 200000;
  const std::string data = MakeLines(kRows, false);
  const std::string path =
      (std::filesystem::temp_directory_path() / fmt::format("decode_bench_{}.ndjson", getpid()))
          .string();
  {
    std::ofstream f(path, std::ios::binary);
    f.write(data.data(), static_cast<std::streamsize>(data.size()));
  }
  NdjsonDecoder decoder(PlaysSchema(), 4);
  RowBatch batch;
  Chunk chunk;
  DecodeStats stats;
  for (auto _ : state) {
    auto reader = LineReader::Open(path);
    if (!reader.ok()) {
      state.SkipWithError("open failed");
      break;
    }
    int64_t line = 1;
    for (;;) {
      absl::StatusOr<bool> more = (*reader)->Next(&chunk);
      if (!more.ok() || !*more) break;
      batch.Clear();
      line += decoder.Decode(chunk, line, &batch, &stats);
    }
  }
  std::remove(path.c_str());
  state.SetItemsProcessed(state.iterations() * kRows);
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(data.size()));
}
BENCHMARK(BM_ReadAndDecodeFile)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace tessera::source

BENCHMARK_MAIN();
