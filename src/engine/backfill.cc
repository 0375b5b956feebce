#include "engine/backfill.h"

#include <fmt/format.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "common/errors.h"
#include "common/status_macros.h"
#include "common/value.h"

namespace tessera::engine {
namespace {

absl::StatusOr<std::string> FingerprintFile(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return NotFound("cannot open input '{}': {}", path, std::strerror(errno));
  XXH3_state_t* state = XXH3_createState();
  XXH3_128bits_reset(state);
  std::vector<char> buf(1 << 20);
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0)
    XXH3_128bits_update(state, buf.data(), n);
  bool failed = std::ferror(f) != 0;
  std::fclose(f);
  XXH128_hash_t h = XXH3_128bits_digest(state);
  XXH3_freeState(state);
  if (failed) return DataLoss("error reading input '{}'", path);
  return fmt::format("{:016x}{:016x}", h.high64, h.low64);
}

struct FileState {
  std::string path;
  std::string fingerprint;
  uint64_t offset = 0;  // uncompressed bytes whose lines are in the tiles
  int64_t lines = 0;    // lines before `offset`
  bool done = false;
  bool dirty = false;  // changed since the last checkpoint
};

std::string FileMetaKey(const std::string& fingerprint) { return "file/" + fingerprint; }

std::string FileMetaValue(const FileState& f) {
  nlohmann::json j = {{"path", f.path}, {"offset", f.offset}, {"lines", f.lines}, {"done", f.done}};
  return j.dump();
}

// Hands out the chunks of the input files in order, tracking how far each file got.
class FileChunkSource final : public ChunkSource {
 public:
  FileChunkSource(std::vector<FileState> files, size_t chunk_bytes)
      : files_(std::move(files)), chunk_bytes_(chunk_bytes) {}

  absl::StatusOr<Next> NextChunk(source::Chunk* chunk, int64_t* first_line,
                                 std::string* input_name) override {
    while (current_ < files_.size()) {
      FileState& f = files_[current_];
      if (f.done) {
        ++current_;
        continue;
      }
      if (reader_ == nullptr) {
        source::LineReaderOptions ro;
        ro.chunk_bytes = chunk_bytes_;
        TESSERA_ASSIGN_OR_RETURN(reader_, source::LineReader::Open(f.path, f.offset, ro));
      }
      TESSERA_ASSIGN_OR_RETURN(bool more, reader_->Next(chunk));
      if (!more) {
        f.done = true;
        f.dirty = true;
        reader_.reset();
        ++current_;
        continue;
      }
      std::string_view data = chunk->view();
      *first_line = f.lines + 1;
      *input_name = f.path;
      f.lines += static_cast<int64_t>(std::count(data.begin(), data.end(), '\n'));
      if (!data.empty() && data.back() != '\n') ++f.lines;
      f.offset = chunk->end_offset();
      f.dirty = true;
      bytes_ += data.size();
      return Next::kChunk;
    }
    return Next::kEnd;
  }

  void AddCheckpoint(store::WriteBatch* batch) override {
    for (FileState& f : files_) {
      if (!f.dirty) continue;
      batch->meta.emplace_back(FileMetaKey(f.fingerprint), FileMetaValue(f));
      f.dirty = false;
    }
  }

  uint64_t bytes() const { return bytes_; }

 private:
  std::vector<FileState> files_;
  size_t chunk_bytes_;
  size_t current_ = 0;
  std::unique_ptr<source::LineReader> reader_;
  uint64_t bytes_ = 0;
};

absl::StatusOr<const sql::SourceDef*> PickSource(const CatalogStore& catalog,
                                                 const std::string& name) {
  const sql::Catalog& c = catalog.catalog();
  if (!name.empty()) {
    const sql::SourceDef* s = c.FindSource(name);
    if (s == nullptr) return NotFound("no source named '{}' in the catalog", name);
    return s;
  }
  const sql::SourceDef* only = nullptr;
  for (const auto& v : catalog.views()) {
    if (only != nullptr && only != v->source) {
      return InvalidArgument(
          "the views read from several sources ('{}', '{}'); say which one the input files "
          "belong to with --source",
          only->name, v->source->name);
    }
    only = v->source;
  }
  if (only == nullptr) return FailedPrecondition("the catalog has no feature view to backfill");
  return only;
}

}  // namespace

std::string BackfillSummary::ToJson() const {
  nlohmann::json j;
  j["read"] = counters.lines;
  j["rows"] = counters.rows;
  j["rejected"] = counters.rejected;
  j["late"] = counters.late;
  j["future"] = counters.future;
  j["field_errors"] = counters.field_errors;
  int64_t null_key = 0;
  nlohmann::json views_json = nlohmann::json::object();
  for (const auto& [name, v] : views) {
    null_key += v.null_key;
    views_json[name] = {{"rows_in", v.rows_in},
                        {"filtered", v.filtered},
                        {"null_key", v.null_key},
                        {"key_too_long", v.key_too_long},
                        {"aggregated", v.aggregated}};
  }
  j["null_key"] = null_key;
  j["source"] = source;
  j["views"] = views_json;
  j["files"] = files;
  j["files_skipped"] = files_skipped;
  j["files_resumed"] = files_resumed;
  j["tiles_written"] = flush.base_tiles + flush.rollup_tiles;
  j["base_tiles_written"] = flush.base_tiles;
  j["rollup_tiles_written"] = flush.rollup_tiles;
  j["flushes"] = flush.flushes;
  j["flush_build_seconds"] = std::round(flush.build_seconds * 1000) / 1000;
  j["flush_commit_seconds"] = std::round(flush.commit_seconds * 1000) / 1000;
  j["seconds"] = std::round(seconds * 1000) / 1000;
  j["rows_per_second"] = seconds > 0 ? std::llround(counters.lines / seconds) : 0;
  j["threads"] = threads;
  return j.dump();
}

absl::StatusOr<BackfillSummary> RunBackfill(store::TileStore* store, CatalogStore* catalog,
                                            const BackfillOptions& options) {
  const int64_t t0 = options.clock->MonotonicNanos();
  TESSERA_ASSIGN_OR_RETURN(const sql::SourceDef* source, PickSource(*catalog, options.source));
  std::vector<const ViewRuntime*> views;
  for (const auto& v : catalog->views()) {
    if (v->source == source) views.push_back(v.get());
  }

  BackfillSummary summary;
  summary.source = source->name;
  std::vector<FileState> files;
  uint64_t total_bytes = 0;
  std::vector<std::string> seen;
  for (const std::string& path : options.inputs) {
    TESSERA_ASSIGN_OR_RETURN(std::string fp, FingerprintFile(path));
    ++summary.files;
    if (std::find(seen.begin(), seen.end(), fp) != seen.end()) {
      ++summary.files_skipped;
      continue;
    }
    seen.push_back(fp);
    FileState f;
    f.path = path;
    f.fingerprint = fp;
    TESSERA_ASSIGN_OR_RETURN(std::optional<std::string> meta, store->GetMeta(FileMetaKey(fp)));
    if (meta.has_value()) {
      nlohmann::json j = nlohmann::json::parse(*meta, nullptr, /*allow_exceptions=*/false);
      if (j.is_discarded() || !j.contains("offset") || !j.contains("done")) {
        return DataLoss("corrupt progress record for input '{}' in the DB", path);
      }
      f.done = j["done"].get<bool>();
      f.offset = j["offset"].get<uint64_t>();
      f.lines = j.value("lines", int64_t{0});
      if (f.done) {
        ++summary.files_skipped;
        continue;
      }
      ++summary.files_resumed;
    }
    std::error_code ec;
    uint64_t size = std::filesystem::file_size(path, ec);
    if (!ec) total_bytes += size > f.offset ? size - f.offset : 0;
    files.push_back(std::move(f));
  }

  FileChunkSource input(std::move(files), options.chunk_bytes);
  PipelineOptions pipeline_options = options.pipeline;
  pipeline_options.max_future_ms = options.max_future_ms.value_or(
      source->max_future_ms.value_or(sql::kDefaultBackfillMaxFutureMs));
  IngestPipeline pipeline(*source, views, store, pipeline_options);
  TESSERA_RETURN_IF_ERROR(pipeline.Init());

  std::FILE* dead_letter = nullptr;
  if (!options.dead_letter_path.empty()) {
    dead_letter = std::fopen(options.dead_letter_path.c_str(), "ab");
    if (dead_letter == nullptr) {
      return InvalidArgument("cannot open dead-letter file '{}': {}", options.dead_letter_path,
                             std::strerror(errno));
    }
    pipeline.set_reject_sink([dead_letter](std::string_view input, int64_t line,
                                           std::string_view reason, std::string_view raw) {
      std::string out = "{\"input\":";
      AppendJsonString(input, &out);
      out += fmt::format(",\"line\":{},\"reason\":", line);
      AppendJsonString(reason, &out);
      out += ",\"raw\":";
      AppendJsonString(raw, &out);
      out += "}\n";
      std::fwrite(out.data(), 1, out.size(), dead_letter);
    });
  }
  if (options.progress) {
    pipeline.set_progress([&](const SourceCounters& c, bool flushing) {
      options.progress(c.lines, input.bytes(), total_bytes, flushing);
    });
  }
  absl::Status run = pipeline.Run(&input);
  if (dead_letter != nullptr) std::fclose(dead_letter);
  TESSERA_RETURN_IF_ERROR(run);

  summary.counters = pipeline.source_counters();
  for (size_t i = 0; i < views.size(); ++i) {
    summary.views.emplace_back(views[i]->def->name, pipeline.view_counters()[i]);
  }
  summary.flush = pipeline.flush_stats();
  summary.threads = pipeline.threads();
  summary.seconds = static_cast<double>(options.clock->MonotonicNanos() - t0) / 1e9;
  return summary;
}

}  // namespace tessera::engine
