#include "common/file_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/errors.h"

namespace tessera {
namespace {

absl::Status ErrnoStatus(const std::string& path, int err) {
  if (err == ENOENT) return NotFound("{}: {}", path, std::strerror(err));
  return FailedPrecondition("{}: {}", path, std::strerror(err));
}

}  // namespace

absl::StatusOr<std::string> ReadFileToString(const std::string& path, uint64_t offset) {
  int fd = -1;
  do {
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return ErrnoStatus(path, errno);
  std::string out;
  struct stat st;
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && static_cast<uint64_t>(st.st_size) > offset) {
    out.reserve(static_cast<size_t>(static_cast<uint64_t>(st.st_size) - offset));
  }
  // read(), not pread(): pipes and process substitutions ("--sql <(…)") are files too.
  if (offset > 0 && ::lseek(fd, static_cast<off_t>(offset), SEEK_SET) < 0) {
    const int err = errno;
    ::close(fd);
    return ErrnoStatus(path, err);
  }
  char buf[64 * 1024];
  while (true) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return ErrnoStatus(path, err);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

}  // namespace tessera
