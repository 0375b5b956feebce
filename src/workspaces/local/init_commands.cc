#include "workspaces/local/init_commands.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <string.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>

#include "common/errors.h"
#include "common/hash.h"
#include "workspaces/local/child_process.h"

namespace tessera::workspaces::local {
namespace {

// The first line of a command, shortened, for messages and the ledger's human-readable column.
std::string Summary(std::string_view command) {
  std::string_view first = command.substr(0, command.find('\n'));
  std::string s(first.substr(0, 72));
  if (s.size() < command.size()) s += " …";
  return s;
}

}  // namespace

std::string InitCommandLedger::Key(std::string_view command) {
  return fmt::format("{:016x}", Hash64(command));
}

absl::Status InitCommandLedger::Load() {
  done_.clear();
  std::ifstream in(path_);
  if (!in) {
    if (errno == ENOENT) return absl::OkStatus();
    return FailedPrecondition("cannot read {}: {}", path_, strerror(errno));
  }
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    done_.insert(line.substr(0, line.find(' ')));
  }
  return absl::OkStatus();
}

bool InitCommandLedger::Done(std::string_view command) const {
  return done_.contains(Key(command));
}

absl::Status InitCommandLedger::Record(std::string_view command) {
  int fd = open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) return FailedPrecondition("cannot write {}: {}", path_, strerror(errno));
  std::string line;
  if (lseek(fd, 0, SEEK_END) == 0) {
    line = "# initCommands that ran here (hash of the command text); delete a line to re-run\n";
  }
  line += fmt::format("{} {}\n", Key(command), Summary(command));
  ssize_t n = write(fd, line.data(), line.size());
  int write_errno = errno;
  bool synced = fsync(fd) == 0;
  close(fd);
  if (n != static_cast<ssize_t>(line.size()) || !synced) {
    return DataLoss("cannot write {}: {}", path_, strerror(write_errno));
  }
  done_.insert(Key(command));
  return absl::OkStatus();
}

absl::Status RunInitCommands(const std::vector<std::string>& commands,
                             const InitCommandOptions& options) {
  if (commands.empty()) return absl::OkStatus();
  InitCommandLedger ledger(options.ledger_path);
  if (absl::Status s = ledger.Load(); !s.ok()) return s;
  for (size_t i = 0; i < commands.size(); ++i) {
    const std::string& command = commands[i];
    if (ledger.Done(command)) {
      fmt::print(stderr, "tessera: initCommands[{}] already ran here, skipped: {}\n", i,
                 Summary(command));
      continue;
    }
    fmt::print(stderr, "tessera: initCommands[{}]: {}\n", i, Summary(command));
    std::fflush(stderr);
    ChildProcess child;
    // Same process group as tessera: a Ctrl-C on the terminal interrupts a hanging command.
    SpawnOptions spawn{.argv = {options.shell, "-c", "set -e\n" + command},
                       .env = options.env,
                       .cwd = options.dir,
                       .output_path = "",
                       .stdout_to_stderr = true,
                       .new_process_group = false,
                       .parent_death_signal = 0};
    if (absl::Status s = child.Start(spawn); !s.ok()) return s;
    if (child.Wait() != 0) {
      return FailedPrecondition(
          "initCommands[{}] {} (it ran with sh -c and `set -e` in {}): {}\nFix the command or "
          "the folder and run `tessera ws up --local` again: commands that succeeded are not "
          "run again",
          i, child.DescribeExit(), options.dir, Summary(command));
    }
    if (absl::Status s = ledger.Record(command); !s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace tessera::workspaces::local
