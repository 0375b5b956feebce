#include "source/file/follow_source.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <thread>
#include <utility>

#include "common/errors.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "store/meta_keys.h"

namespace tessera::source {
namespace {

namespace fs = std::filesystem;

// Names of compressed formats: refused rather than followed (see the class comment).
bool LooksCompressedByName(std::string_view path) {
  for (std::string_view ext : {".gz", ".gzip", ".zst", ".zstd", ".bz2", ".xz", ".lz4", ".zip"}) {
    if (path.ends_with(ext)) return true;
  }
  return false;
}

bool IsFollowedName(std::string_view name) {
  if (name.empty() || name[0] == '.') return false;
  return name.ends_with(".ndjson") || name.ends_with(".json") || name.ends_with(".jsonl");
}

std::string ErrnoText(int err) { return std::strerror(err); }

// Reads up to n bytes at `offset`; returns how many (fewer only at end of file).
absl::StatusOr<size_t> PreadFully(int fd, const std::string& path, char* dst, size_t n,
                                  uint64_t offset) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::pread(fd, dst + got, n - got, static_cast<off_t>(offset + got));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      return Internal("{}: read failed at byte {}: {}", path, offset + got, ErrnoText(errno));
    }
    if (r == 0) break;
    got += static_cast<size_t>(r);
  }
  return got;
}

}  // namespace

absl::StatusOr<std::unique_ptr<FollowChunkSource>> FollowChunkSource::Create(
    store::TileStore* meta, std::string source, std::string path, FollowOptions options) {
  if (options.chunk_bytes == 0) options.chunk_bytes = 1;
  if (options.max_line_bytes == 0) options.max_line_bytes = 1;
  if (options.poll_interval.count() <= 0) options.poll_interval = std::chrono::milliseconds(1);
  if (path.empty()) return InvalidArgument("source '{}': the file connector needs a path", source);
  std::error_code ec;
  fs::path abs = fs::absolute(fs::path(path), ec);
  if (ec) return InvalidArgument("source '{}': bad path '{}': {}", source, path, ec.message());
  std::string abs_path = abs.lexically_normal().string();
  while (abs_path.size() > 1 && abs_path.back() == '/') abs_path.pop_back();

  struct stat st;
  if (::stat(abs_path.c_str(), &st) != 0) {
    const int err = errno;
    if (err == ENOENT) {
      return NotFound("source '{}': {}: no such file or directory", source, abs_path);
    }
    return FailedPrecondition("source '{}': {}: {}", source, abs_path, ErrnoText(err));
  }
  const bool directory = S_ISDIR(st.st_mode);
  if (!directory && !S_ISREG(st.st_mode)) {
    return FailedPrecondition(
        "source '{}': {} is neither a regular file nor a directory (use connector = 'stdin' for "
        "pipes)",
        source, abs_path);
  }
  if (!directory && LooksCompressedByName(abs_path)) {
    return FailedPrecondition(
        "source '{}': {} is compressed; compressed files cannot be followed (replay them with "
        "`tessera backfill`)",
        source, abs_path);
  }

  std::unique_ptr<FollowChunkSource> s(
      new FollowChunkSource(std::move(source), abs_path, directory, options));
  // Stored offsets of this source: the file itself, or the files directly in the directory. The
  // prefix also matches sources named "<source>/…", hence the parse.
  absl::Status bad;
  TESSERA_RETURN_IF_ERROR(meta->ScanMeta(
      store::meta::FollowOffsetPrefix(s->source_),
      [&](std::string_view key, std::string_view value) {
        const std::optional<store::meta::FollowOffset> parsed =
            store::meta::ParseFollowOffsetKey(key);
        if (!parsed.has_value() || parsed->source != s->source_) return;
        std::string file(parsed->path);
        const bool mine =
            directory ? fs::path(file).parent_path().string() == abs_path : file == abs_path;
        if (!mine || !bad.ok()) return;
        uint64_t offset = 0;
        auto [p, e] = std::from_chars(value.data(), value.data() + value.size(), offset);
        if (e != std::errc() || p != value.data() + value.size()) {
          bad =
              DataLoss("source '{}': corrupt stored offset for {}: '{}'", s->source_, file, value);
          return;
        }
        s->stored_[file] = offset;
      }));
  TESSERA_RETURN_IF_ERROR(bad);

  if (directory) {
    TESSERA_RETURN_IF_ERROR(s->ScanDirectory().status());
  } else {
    FileState f;
    f.path = abs_path;
    auto it = s->stored_.find(abs_path);
    if (it != s->stored_.end()) f.offset = f.resumed_from = it->second;
    s->files_.push_back(std::move(f));
  }
  return s;
}

FollowChunkSource::~FollowChunkSource() { CloseFd(); }

void FollowChunkSource::CloseFd() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  fd_path_.clear();
}

int64_t FollowChunkSource::offset(std::string_view absolute_path) const {
  for (const FileState& f : files_) {
    if (f.path == absolute_path) return static_cast<int64_t>(f.offset);
  }
  return -1;
}

absl::StatusOr<bool> FollowChunkSource::ScanDirectory() {
  std::error_code ec;
  std::vector<std::string> found;
  for (fs::directory_iterator it(path_, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (!IsFollowedName(name)) continue;
    std::error_code type_ec;
    if (!it->is_regular_file(type_ec) || type_ec) continue;
    found.push_back(it->path().lexically_normal().string());
  }
  if (ec) {
    return FailedPrecondition("source '{}': cannot list directory {}: {}", source_, path_,
                              ec.message());
  }
  bool added = false;
  for (std::string& path : found) {
    auto pos =
        std::lower_bound(files_.begin(), files_.end(), path,
                         [](const FileState& f, const std::string& p) { return f.path < p; });
    if (pos != files_.end() && pos->path == path) continue;
    FileState f;
    auto stored = stored_.find(path);
    if (stored != stored_.end()) {
      f.offset = f.resumed_from = stored->second;
      stored_.erase(stored);
    }
    f.path = std::move(path);
    files_.insert(pos, std::move(f));
    added = true;
  }
  return added;
}

absl::StatusOr<bool> FollowChunkSource::ReadFrom(FileState* f, Chunk* chunk) {
  struct stat st;
  if (::stat(f->path.c_str(), &st) != 0) {
    const int err = errno;
    if (err == ENOENT && directory_) return false;  // removed from the directory: nothing new
    if (err == ENOENT) {
      return FailedPrecondition(
          "source '{}': followed file {} no longer exists (rotation by rename is not supported; "
          "follow a directory of files instead)",
          source_, f->path);
    }
    return FailedPrecondition("source '{}': {}: {}", source_, f->path, ErrnoText(err));
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (f->have_identity && (st.st_dev != f->dev || st.st_ino != f->ino)) {
    return FailedPrecondition(
        "source '{}': followed file {} was replaced by another file; rotation in place is not "
        "supported (write new files into a followed directory instead)",
        source_, f->path);
  }
  if (size < f->offset) {
    return FailedPrecondition(
        "source '{}': followed file {} shrank to {} bytes but {} bytes were already ingested "
        "(truncated or rotated in place, which is not supported); files may only grow",
        source_, f->path, size, f->offset);
  }
  if (size == f->offset || size <= f->no_newline_until) return false;

  if (fd_path_ != f->path) {
    CloseFd();
    int fd;
    do {
      fd = ::open(f->path.c_str(), O_RDONLY | O_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
      const int err = errno;
      if (err == ENOENT && directory_) return false;
      return FailedPrecondition("source '{}': cannot open {}: {}", source_, f->path,
                                ErrnoText(err));
    }
    struct stat fst;
    if (::fstat(fd, &fst) != 0) {
      const int err = errno;
      ::close(fd);
      return Internal("source '{}': cannot stat {}: {}", source_, f->path, ErrnoText(err));
    }
    if (f->have_identity && (fst.st_dev != f->dev || fst.st_ino != f->ino)) {
      ::close(fd);
      return FailedPrecondition(
          "source '{}': followed file {} was replaced by another file; rotation in place is not "
          "supported (write new files into a followed directory instead)",
          source_, f->path);
    }
    f->have_identity = true;
    f->dev = fst.st_dev;
    f->ino = fst.st_ino;
    fd_ = fd;
    fd_path_ = f->path;
  }

  if (!f->magic_checked) {
    char magic[4];
    TESSERA_ASSIGN_OR_RETURN(size_t n, PreadFully(fd_, f->path, magic, sizeof(magic), 0));
    const auto* m = reinterpret_cast<const unsigned char*>(magic);
    const bool gzip = n >= 2 && m[0] == 0x1f && m[1] == 0x8b;
    const bool zstd = n >= 4 && m[0] == 0x28 && m[1] == 0xb5 && m[2] == 0x2f && m[3] == 0xfd;
    if (gzip || zstd || LooksCompressedByName(f->path)) {
      return FailedPrecondition(
          "source '{}': {} is compressed; compressed files cannot be followed (replay them with "
          "`tessera backfill`)",
          source_, f->path);
    }
    // A file of fewer than 4 bytes is checked again once it has grown.
    f->magic_checked = n == sizeof(magic);
  }

  // Read from the offset until the data holds a '\n' (or the line limit is passed).
  const uint64_t available = size - f->offset;
  size_t target = options_.chunk_bytes;
  size_t have = 0;
  size_t scanned = 0;
  for (;;) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(target, available));
    if (buffer_.size() < want) buffer_.resize(want);
    TESSERA_ASSIGN_OR_RETURN(
        size_t got, PreadFully(fd_, f->path, buffer_.data() + have, want - have, f->offset + have));
    have += got;
    const char* last_nl = nullptr;
    if (have > scanned) {
      last_nl = static_cast<const char*>(memrchr(buffer_.data() + scanned, '\n', have - scanned));
    }
    if (last_nl != nullptr) {
      const size_t end = static_cast<size_t>(last_nl - buffer_.data()) + 1;
      chunk->Assign(std::string_view(buffer_.data(), end), f->offset);
      f->offset += end;
      f->dirty = true;
      return true;
    }
    if (have > options_.max_line_bytes) {
      return ResourceExhausted(
          "source '{}': {}: line starting at byte {} is longer than the limit of {} bytes", source_,
          f->path, f->offset, options_.max_line_bytes);
    }
    if (have < want || have == available) {
      // Everything there is ends in a partial line: wait until the file grows past it.
      f->no_newline_until = f->offset + have;
      return false;
    }
    scanned = have;
    target = std::min(std::max(target * 2, target + 1), options_.max_line_bytes + 1);
  }
}

absl::StatusOr<Source::Next> FollowChunkSource::NextChunk(Chunk* chunk, ChunkOrigin* origin) {
  for (int pass = 0; pass < 2; ++pass) {
    for (FileState& f : files_) {
      TESSERA_ASSIGN_OR_RETURN(bool got, ReadFrom(&f, chunk));
      if (!got) continue;
      origin->first_line = f.lines + 1;
      origin->input = f.resumed_from == 0
                          ? f.path
                          : fmt::format("{} (lines counted from byte {})", f.path, f.resumed_from);
      std::string_view data = chunk->view();
      f.lines += static_cast<int64_t>(CountNewlines(data));
      return Next::kChunk;
    }
    // Caught up with every known file: look for new ones once.
    if (!directory_) break;
    TESSERA_ASSIGN_OR_RETURN(bool added, ScanDirectory());
    if (!added) break;
  }
  return Next::kIdle;
}

bool FollowChunkSource::HasNewData() {
  if (directory_) {
    absl::StatusOr<bool> added = ScanDirectory();
    if (!added.ok() || *added) return true;  // let NextChunk() report the error
  }
  for (const FileState& f : files_) {
    struct stat st;
    if (::stat(f.path.c_str(), &st) != 0) {
      if (errno == ENOENT && directory_) continue;
      return true;  // NextChunk() reports it
    }
    const uint64_t size = static_cast<uint64_t>(st.st_size);
    if (size != f.offset && size > f.no_newline_until) return true;
    if (f.have_identity && (st.st_dev != f.dev || st.st_ino != f.ino)) return true;
  }
  return false;
}

void FollowChunkSource::WaitForData(std::chrono::milliseconds max_wait) {
  // Pacing only (no logic depends on the time), so the steady clock is used directly.
  const auto deadline = std::chrono::steady_clock::now() + max_wait;
  for (;;) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return;
    std::this_thread::sleep_for(
        std::min<std::chrono::steady_clock::duration>(options_.poll_interval, deadline - now));
    if (HasNewData()) return;
  }
}

void FollowChunkSource::AddCheckpoint(store::WriteBatch* batch) {
  for (FileState& f : files_) {
    if (!f.dirty) continue;
    batch->meta.emplace_back(store::meta::FollowOffsetKey(source_, f.path),
                             std::to_string(f.offset));
    f.dirty = false;
  }
}

}  // namespace tessera::source
