#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

// Google's Bigtable emulator (cbtemulator, Debian package google-cloud-cli-bigtable-emulator) as a
// child process, for tests and benchmarks that run the real store against it. Test-only.
//
// Thread-safety: one thread starts and kills it; the accessors are safe from any thread.
namespace tessera::store {

class BigtableEmulator {
 public:
  // The emulator binary: $TESSERA_CBTEMULATOR when set, else `cbtemulator` on PATH, else the
  // Cloud SDK's platform/bigtable-emulator/cbtemulator under /usr/lib/google-cloud-sdk; "" when
  // none exists.
  static std::string FindBinary();

  // Starts it on 127.0.0.1:`port` (0 = a free port the emulator picks) and returns once it
  // serves (it printed "running on"). NotFound when FindBinary() finds nothing; Unavailable
  // when it does not come up within 20 s (the message has its output). The child gets SIGKILL
  // when the starting thread exits, so a crashed test leaves no emulator behind.
  static absl::StatusOr<std::unique_ptr<BigtableEmulator>> Start(uint16_t port = 0);

  // Kill().
  ~BigtableEmulator();
  BigtableEmulator(const BigtableEmulator&) = delete;
  BigtableEmulator& operator=(const BigtableEmulator&) = delete;

  // SIGKILL and reap (the emulator keeps everything in memory: all tables are gone). Idempotent.
  void Kill();

  // "127.0.0.1:PORT".
  const std::string& host_port() const { return host_port_; }
  uint16_t port() const { return port_; }
  // "http://127.0.0.1:PORT": BigtableOptions::endpoint for a plaintext connection.
  std::string endpoint() const { return "http://" + host_port_; }
  // What it printed so far (stdout and stderr).
  std::string Output() const;

 private:
  BigtableEmulator() = default;

  pid_t pid_ = -1;
  std::string host_port_;
  uint16_t port_ = 0;
  std::string log_path_;
};

}  // namespace tessera::store
