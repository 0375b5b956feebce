#include "engine/backfill.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/errors.h"
#include "common/status_macros.h"
#include "common/value.h"
#include "engine/input_progress.h"
#include "source/connector_options.h"
#include "source/dead_letter/dead_letter.h"
#include "store/meta_keys.h"

namespace tessera::engine {
namespace {

inline bool IsBlankChar(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

std::string HeadHash(const std::string& head, uint64_t offset) {
  ContentHash h;
  h.Update(std::string_view(head).substr(0, std::min<uint64_t>(offset, kHeadBytes)));
  return h.Hex();
}

// One input of this run.
struct InputRun {
  std::string path;
  bool started = false;  // matched against the DB's records (happens when its turn comes)
  bool skipped = false;  // all of its content was already in the tiles
  InputProgress record;  // what the checkpoints write: how far this run's tiles reach
  ContentHash hash;      // of [0, record.offset)
  std::string head;      // its first bytes, up to kHeadBytes (of those seen so far)
  bool dirty = false;    // record changed since the last checkpoint
};

// Hands out the chunks of the input files in order. When an input's turn comes, it is compared
// with the DB's progress records and with the inputs before it in this run (see input_progress.h)
// and starts after the longest committed prefix of its content; it is skipped if that is all of
// it. Each input of the run gets a record of its own, so a record once written only ever grows
// with the same content: an input seen before (e.g. the shorter, older version of a grown file)
// still finds its own.
class FileChunkSource final : public Source {
 public:
  FileChunkSource(const std::vector<std::string>& paths, StoredInputProgress stored,
                  size_t chunk_bytes)
      : stored_(std::move(stored)), chunk_bytes_(chunk_bytes) {
    inputs_.resize(paths.size());
    for (size_t i = 0; i < paths.size(); ++i) inputs_[i].path = paths[i];
    next_seq_ = stored_.next_seq;
    for (const InputProgress& p : stored_.records) has_legacy_ = has_legacy_ || p.legacy();
  }

  absl::StatusOr<Next> NextChunk(source::Chunk* chunk, source::ChunkOrigin* origin) override {
    while (current_ < inputs_.size()) {
      InputRun& in = inputs_[current_];
      if (!in.started) {
        TESSERA_RETURN_IF_ERROR(Start(current_));
        if (in.skipped) {
          ++current_;
          continue;
        }
      }
      if (reader_ == nullptr) {
        source::LineReaderOptions ro;
        ro.chunk_bytes = chunk_bytes_;
        TESSERA_ASSIGN_OR_RETURN(reader_,
                                 source::LineReader::Open(in.path, in.record.offset - tail_, ro));
      }
      TESSERA_ASSIGN_OR_RETURN(bool more, reader_->Next(chunk));
      if (!more) {
        in.record.done = true;
        in.dirty = true;
        reader_.reset();
        ++current_;
        continue;
      }
      if (tail_ > 0 && !ResumeInsideLine(in, chunk)) continue;
      Account(in, *chunk, &origin->first_line);
      origin->input = in.path;
      return Next::kChunk;
    }
    return Next::kEnd;
  }

  void AddCheckpoint(store::WriteBatch* batch) override {
    for (InputRun& in : inputs_) {
      if (!in.dirty) continue;
      in.dirty = false;
      if (in.record.offset == 0) continue;  // says nothing
      in.record.hash = in.hash.Hex();
      in.record.head_hash = HeadHash(in.head, in.record.offset);
      batch->meta.emplace_back(in.record.key, EncodeInputProgress(in.record));
    }
    for (std::string& key : legacy_deletes_) batch->meta_deletes.push_back(std::move(key));
    legacy_deletes_.clear();
  }

  uint64_t bytes() const { return bytes_; }
  int skipped() const { return skipped_; }
  int resumed() const { return resumed_; }

 private:
  // Finds where input `i` starts.
  absl::Status Start(size_t i) {
    InputRun& in = inputs_[i];
    in.started = true;
    std::vector<const InputProgress*> candidates;
    for (const InputProgress& p : stored_.records) candidates.push_back(&p);
    // The inputs before it in this run, as their records stand now (handed out = will be
    // committed with the same checkpoint or an earlier one).
    std::vector<InputProgress> earlier;
    earlier.reserve(i);
    for (size_t j = 0; j < i; ++j) {
      const InputRun& e = inputs_[j];
      if (e.record.offset == 0) continue;
      InputProgress p = e.record;
      p.legacy_fingerprint.clear();
      p.hash = e.hash.Hex();
      p.head_hash = HeadHash(e.head, p.offset);
      earlier.push_back(std::move(p));
    }
    for (const InputProgress& p : earlier) candidates.push_back(&p);
    std::string fingerprint;
    if (has_legacy_) {
      TESSERA_ASSIGN_OR_RETURN(fingerprint, FingerprintStoredBytes(in.path));
    }
    TESSERA_ASSIGN_OR_RETURN(PrefixMatch match,
                             MatchCommittedPrefix(in.path, candidates, fingerprint));
    in.record.key = store::meta::InputProgressKey(next_seq_++);
    in.record.path = in.path;
    tail_ = 0;
    if (match.record == nullptr) return absl::OkStatus();
    const InputProgress& m = *match.record;
    in.record.offset = m.offset;
    in.record.lines = m.lines;
    in.hash = match.hash;
    in.head = std::move(match.head);
    if (m.legacy()) {
      // Rewritten in this format (at the next checkpoint, with the old record deleted).
      legacy_deletes_.push_back(m.key);
      in.dirty = true;
    }
    if (match.whole) {
      in.skipped = true;
      in.record.done = true;
      ++skipped_;
      return absl::OkStatus();
    }
    if (m.offset > 0) ++resumed_;
    tail_ = match.tail;
    return absl::OkStatus();
  }

  // The first chunk of an input resumed after an unterminated last line of `tail_` bytes (the
  // reader starts at that line). If the line's continuation is blank (typically just its '\n'),
  // the line is what was counted: it is dropped here. Otherwise it was cut mid-way (and
  // rejected, or counted as a row if the cut left a complete object): it is decoded again in
  // full. Returns false if nothing of the chunk is left.
  bool ResumeInsideLine(InputRun& in, source::Chunk* chunk) {
    const uint64_t tail = tail_;
    tail_ = 0;
    const std::string_view data = chunk->view();
    const size_t nl = data.find('\n');
    const size_t line_end = nl == std::string_view::npos ? data.size() : nl;
    const std::string_view continuation = data.substr(tail, line_end - tail);
    if (!std::all_of(continuation.begin(), continuation.end(), IsBlankChar)) {
      --in.record.lines;  // that line is counted again below
      return true;
    }
    const size_t drop = nl == std::string_view::npos ? data.size() : nl + 1;
    const uint64_t offset = chunk->offset() + drop;
    in.hash.Update(data.substr(tail, drop - tail));
    in.record.offset = offset;
    in.dirty = true;
    if (drop == data.size()) return false;
    const std::string rest(data.substr(drop));
    chunk->Assign(rest, offset);
    return true;
  }

  void Account(InputRun& in, const source::Chunk& chunk, int64_t* first_line) {
    const std::string_view data = chunk.view();
    const uint64_t start = chunk.offset();
    // Bytes before record.offset (the start of a re-read line) are hashed already.
    in.hash.Update(data.substr(in.record.offset - start));
    if (in.head.size() < kHeadBytes && chunk.end_offset() > in.head.size()) {
      const uint64_t from = in.head.size();
      const uint64_t to = std::min<uint64_t>(chunk.end_offset(), kHeadBytes);
      in.head.append(data.substr(from - start, to - from));
    }
    *first_line = in.record.lines + 1;
    in.record.lines += static_cast<int64_t>(std::count(data.begin(), data.end(), '\n'));
    if (!data.empty() && data.back() != '\n') ++in.record.lines;
    in.record.offset = chunk.end_offset();
    in.dirty = true;
    bytes_ += data.size();
  }

  StoredInputProgress stored_;
  size_t chunk_bytes_;
  std::vector<InputRun> inputs_;
  uint64_t next_seq_ = 0;
  bool has_legacy_ = false;
  std::vector<std::string> legacy_deletes_;
  size_t current_ = 0;
  uint64_t tail_ = 0;  // the current input resumes inside its last committed line (see Start)
  std::unique_ptr<source::LineReader> reader_;
  uint64_t bytes_ = 0;
  int skipped_ = 0;
  int resumed_ = 0;
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

absl::Status CheckBackfillInputs(const std::vector<std::string>& inputs) {
  if (inputs.empty()) return InvalidArgument("backfill: no input files given");
  for (const std::string& path : inputs) {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) {
      const int err = errno;
      if (err == ENOENT) return NotFound("input '{}': no such file", path);
      return FailedPrecondition("input '{}': {}", path, std::strerror(err));
    }
    if (S_ISDIR(st.st_mode)) {
      return InvalidArgument(
          "input '{}' is a directory; --input takes NDJSON files (list them, e.g. '{}/*.ndjson')",
          path, path);
    }
    if (!S_ISREG(st.st_mode)) {
      return InvalidArgument(
          "input '{}' is not a regular file (backfill reads each input twice "
          "at most: once to compare it with the DB, once to replay it)",
          path);
    }
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      const int err = errno;
      return FailedPrecondition("input '{}': cannot open it for reading: {}", path,
                                std::strerror(err));
    }
    ::close(fd);
  }
  return absl::OkStatus();
}

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
  TESSERA_RETURN_IF_ERROR(CheckBackfillInputs(options.inputs));
  TESSERA_ASSIGN_OR_RETURN(const sql::SourceDef* source, PickSource(*catalog, options.source));
  std::vector<const ViewRuntime*> views;
  for (const auto& v : catalog->views()) {
    if (v->source == source) views.push_back(v.get());
  }

  BackfillSummary summary;
  summary.source = source->name;
  summary.files = static_cast<int>(options.inputs.size());
  uint64_t total_bytes = 0;
  for (const std::string& path : options.inputs) {
    std::error_code ec;
    const uint64_t size = std::filesystem::file_size(path, ec);
    if (!ec) total_bytes += size;
  }
  TESSERA_RETURN_IF_ERROR(ClaimSourceSlot(store, *source));
  TESSERA_ASSIGN_OR_RETURN(StoredInputProgress stored, LoadInputProgress(store));
  FileChunkSource input(options.inputs, std::move(stored), options.chunk_bytes);
  PipelineOptions pipeline_options = options.pipeline;
  pipeline_options.max_future_ms = options.max_future_ms.value_or(
      source->max_future_ms.value_or(sql::kDefaultBackfillMaxFutureMs));
  IngestPipeline pipeline(*source, views, store, pipeline_options);
  TESSERA_RETURN_IF_ERROR(pipeline.Init());

  // --dead-letter FILE, else the source's WITH ('dead-letter' = …).
  std::unique_ptr<source::DeadLetterSink> dead_letter;
  if (!options.dead_letter_path.empty()) {
    TESSERA_ASSIGN_OR_RETURN(
        dead_letter, source::DeadLetterSink::Create("file://" + options.dead_letter_path, *source));
  } else if (std::optional<std::string> uri = source::FindOption(*source, "dead-letter")) {
    TESSERA_ASSIGN_OR_RETURN(dead_letter, source::DeadLetterSink::Create(*uri, *source));
  }
  if (dead_letter != nullptr) {
    pipeline.set_reject_sink(
        [sink = dead_letter.get()](const source::ChunkOrigin& origin, const source::Rejection& r) {
          sink->Write(origin, r);
        });
  }
  if (options.progress) {
    pipeline.set_progress([&](const SourceCounters& c, bool flushing) {
      options.progress(c.lines, input.bytes(), total_bytes, flushing);
    });
  }
  absl::Status run = pipeline.Run(&input);
  dead_letter.reset();
  TESSERA_RETURN_IF_ERROR(run);

  summary.counters = pipeline.source_counters();
  for (size_t i = 0; i < views.size(); ++i) {
    summary.views.emplace_back(views[i]->def->name, pipeline.view_counters()[i]);
  }
  summary.files_skipped = input.skipped();
  summary.files_resumed = input.resumed();
  summary.flush = pipeline.flush_stats();
  summary.threads = pipeline.threads();
  summary.seconds = static_cast<double>(options.clock->MonotonicNanos() - t0) / 1e9;
  return summary;
}

}  // namespace tessera::engine
