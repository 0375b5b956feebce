#include "engine/file_chunk_source.h"

#include <algorithm>

#include "common/status_macros.h"
#include "common/strings.h"
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

}  // namespace

FileChunkSource::FileChunkSource(const std::vector<std::string>& paths, StoredInputProgress stored,
                                 size_t chunk_bytes)
    : stored_(std::move(stored)), chunk_bytes_(chunk_bytes) {
  inputs_.resize(paths.size());
  for (size_t i = 0; i < paths.size(); ++i) inputs_[i].path = paths[i];
  next_seq_ = stored_.next_seq;
  for (const InputProgress& p : stored_.records) has_legacy_ = has_legacy_ || p.legacy();
}

absl::StatusOr<source::Source::Next> FileChunkSource::NextChunk(source::Chunk* chunk,
                                                                source::ChunkOrigin* origin) {
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
      TESSERA_ASSIGN_OR_RETURN(std::unique_ptr<source::LineReader> reader,
                               source::LineReader::Open(in.path, in.record.offset - tail_, ro));
      reader_ = std::make_unique<source::ReadAheadLineReader>(std::move(reader), kReadAhead);
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

void FileChunkSource::AddCheckpoint(store::WriteBatch* batch) {
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

absl::Status FileChunkSource::Start(size_t i) {
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

bool FileChunkSource::ResumeInsideLine(InputRun& in, source::Chunk* chunk) {
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

void FileChunkSource::Account(InputRun& in, const source::Chunk& chunk, int64_t* first_line) {
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
  in.record.lines += static_cast<int64_t>(CountNewlines(data));
  if (!data.empty() && data.back() != '\n') ++in.record.lines;
  in.record.offset = chunk.end_offset();
  in.dirty = true;
  bytes_ += data.size();
}

}  // namespace tessera::engine
