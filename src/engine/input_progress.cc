#include "engine/input_progress.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "common/errors.h"
#include "common/status_macros.h"
#include "source/format/line_reader.h"
#include "store/meta_keys.h"

namespace tessera::engine {

struct ContentHash::State {
  XXH3_state_t xxh;
};

ContentHash::ContentHash() : state_(std::make_unique<State>()) { XXH3_128bits_reset(&state_->xxh); }
ContentHash::~ContentHash() = default;
ContentHash::ContentHash(const ContentHash& other)
    : state_(std::make_unique<State>()), size_(other.size_) {
  XXH3_copyState(&state_->xxh, &other.state_->xxh);
}
ContentHash& ContentHash::operator=(const ContentHash& other) {
  if (this != &other) {
    XXH3_copyState(&state_->xxh, &other.state_->xxh);
    size_ = other.size_;
  }
  return *this;
}

void ContentHash::Update(std::string_view bytes) {
  if (bytes.empty()) return;
  XXH3_128bits_update(&state_->xxh, bytes.data(), bytes.size());
  size_ += bytes.size();
}

std::string ContentHash::Hex() const {
  const XXH128_hash_t h = XXH3_128bits_digest(&state_->xxh);  // leaves the state as it is
  return fmt::format("{:016x}{:016x}", h.high64, h.low64);
}

namespace {

namespace meta = store::meta;

std::string HashOf(std::string_view bytes) {
  ContentHash h;
  h.Update(bytes);
  return h.Hex();
}

}  // namespace

std::string EncodeInputProgress(const InputProgress& p) {
  nlohmann::json j = {{"path", p.path}, {"offset", p.offset},       {"lines", p.lines},
                      {"hash", p.hash}, {"head_hash", p.head_hash}, {"done", p.done}};
  return j.dump();
}

absl::StatusOr<StoredInputProgress> LoadInputProgress(store::TileStore* store) {
  StoredInputProgress out;
  absl::Status bad;
  auto corrupt = [&](std::string_view key, std::string_view why) {
    if (bad.ok()) {
      bad = DataLoss("corrupt backfill progress record '{}' in the DB: {}", key, why);
    }
  };
  TESSERA_RETURN_IF_ERROR(store->ScanMeta(meta::kInputProgressPrefix, [&](std::string_view key,
                                                                          std::string_view value) {
    InputProgress p;
    p.key = std::string(key);
    const std::optional<uint64_t> seq = meta::ParseInputProgressKey(key);
    if (!seq.has_value()) return corrupt(key, "bad record number");
    out.next_seq = std::max(out.next_seq, *seq + 1);
    nlohmann::json j = nlohmann::json::parse(value, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object() || !j.contains("offset") || !j["offset"].is_number() ||
        !j.contains("hash") || !j["hash"].is_string() || !j.contains("head_hash") ||
        !j["head_hash"].is_string() || !j.contains("lines") || !j["lines"].is_number()) {
      return corrupt(key, "missing or mistyped fields");
    }
    p.path = j.value("path", "");
    p.offset = j["offset"].get<uint64_t>();
    p.lines = j["lines"].get<int64_t>();
    p.hash = j["hash"].get<std::string>();
    p.head_hash = j["head_hash"].get<std::string>();
    p.done = j.value("done", false);
    out.records.push_back(std::move(p));
  }));
  TESSERA_RETURN_IF_ERROR(bad);
  // The previous format: "file/<fingerprint of the stored bytes>" = {path, offset, lines, done}.
  TESSERA_RETURN_IF_ERROR(store->ScanMeta(
      meta::kLegacyInputProgressPrefix, [&](std::string_view key, std::string_view value) {
        InputProgress p;
        p.key = std::string(key);
        p.legacy_fingerprint = std::string(key.substr(meta::kLegacyInputProgressPrefix.size()));
        nlohmann::json j = nlohmann::json::parse(value, nullptr, /*allow_exceptions=*/false);
        if (p.legacy_fingerprint.empty() || j.is_discarded() || !j.is_object() ||
            !j.contains("offset") || !j["offset"].is_number() || !j.contains("done")) {
          return corrupt(key, "not a progress record of the previous format");
        }
        p.path = j.value("path", "");
        p.offset = j["offset"].get<uint64_t>();
        p.lines = j.value("lines", int64_t{0});
        p.done = j["done"].is_boolean() && j["done"].get<bool>();
        out.records.push_back(std::move(p));
      }));
  TESSERA_RETURN_IF_ERROR(bad);
  return out;
}

absl::StatusOr<std::string> FingerprintStoredBytes(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return NotFound("cannot open input '{}': {}", path, std::strerror(errno));
  ContentHash h;
  std::vector<char> buf(1 << 20);
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) h.Update({buf.data(), n});
  const bool failed = std::ferror(f) != 0;
  std::fclose(f);
  if (failed) return DataLoss("error reading input '{}'", path);
  return h.Hex();
}

absl::StatusOr<PrefixMatch> MatchCommittedPrefix(
    const std::string& path, const std::vector<const InputProgress*>& candidates,
    const std::string& stored_fingerprint) {
  PrefixMatch match;
  if (candidates.empty()) return match;
  source::LineReaderOptions ro;
  ro.chunk_bytes = 256 * 1024;
  TESSERA_ASSIGN_OR_RETURN(std::unique_ptr<source::LineReader> reader,
                           source::LineReader::Open(path, 0, ro));
  source::Chunk chunk;
  // The chunks read to get the head are kept (usually just one) and then hashed like the rest.
  std::vector<std::string> pending;
  bool eof = false;
  bool read_error = false;
  while (match.head.size() < kHeadBytes) {
    absl::StatusOr<bool> more = reader->Next(&chunk);
    if (!more.ok()) {
      read_error = true;
      break;
    }
    if (!*more) {
      eof = true;
      break;
    }
    const std::string_view data = chunk.view();
    match.head.append(data.substr(0, kHeadBytes - match.head.size()));
    pending.emplace_back(data);
  }

  // Candidates whose first bytes are this input's, by offset.
  std::multimap<uint64_t, const InputProgress*> by_offset;
  for (const InputProgress* c : candidates) {
    if (c->legacy()) {
      if (c->legacy_fingerprint == stored_fingerprint) by_offset.emplace(c->offset, c);
      continue;
    }
    const size_t head_len = static_cast<size_t>(std::min<uint64_t>(c->offset, kHeadBytes));
    if (head_len > match.head.size()) continue;
    if (HashOf(std::string_view(match.head).substr(0, head_len)) != c->head_hash) continue;
    by_offset.emplace(c->offset, c);
  }
  if (by_offset.empty()) return match;
  const uint64_t max_offset = by_offset.rbegin()->first;

  ContentHash hash;
  uint64_t pos = 0;         // bytes hashed
  uint64_t line_start = 0;  // offset just after the last '\n' before pos
  auto next = by_offset.begin();
  // Compares the candidates at offset `pos` (hash state: [0, pos)).
  auto check = [&]() {
    std::string hex;
    for (; next != by_offset.end() && next->first == pos; ++next) {
      const InputProgress* c = next->second;
      if (!c->legacy()) {
        if (hex.empty()) hex = hash.Hex();
        if (hex != c->hash) continue;
      }
      if (match.record == nullptr || c->offset > match.record->offset) {
        match.record = c;
        match.tail = pos - line_start;
        match.hash = hash;
      }
    }
  };
  // Hashes `data` (the bytes at pos), stopping at every candidate offset inside it.
  auto consume = [&](std::string_view data) {
    const uint64_t end = pos + data.size();
    while (!data.empty()) {
      check();
      const uint64_t stop =
          next != by_offset.end() && next->first <= end ? std::max(next->first, pos + 1) : end;
      const std::string_view part = data.substr(0, stop - pos);
      hash.Update(part);
      const void* nl = memrchr(part.data(), '\n', part.size());
      if (nl != nullptr) line_start = pos + (static_cast<const char*>(nl) - part.data()) + 1;
      pos = stop;
      data.remove_prefix(part.size());
    }
  };
  for (const std::string& data : pending) {
    if (pos > max_offset) break;
    consume(data);
  }
  pending.clear();
  while (!eof && !read_error && pos <= max_offset) {
    absl::StatusOr<bool> more = reader->Next(&chunk);
    if (!more.ok()) {
      read_error = true;
    } else if (!*more) {
      eof = true;
    } else {
      consume(chunk.view());
    }
  }
  if (pos <= max_offset) check();  // candidates at the very end of what was read
  // Whole: the stream ended cleanly at the matched offset (anything read past it, or an error
  // before the end, means there is more).
  match.whole = match.record != nullptr && eof && !read_error && pos == match.record->offset;
  return match;
}

}  // namespace tessera::engine
