#!/usr/bin/env python3
"""End to end: two tessera-operator replicas and the `tessera ws` CLI against the strict fake
Kubernetes API server (tests/kube/fake_apiserver.py), over TLS with a kubeconfig.

What it checks (each step fails the test if the behaviour is wrong):
  - leader election: exactly one replica acts (the fake server's request log attributes every
    write to a replica by its User-Agent); the standby makes no writes;
  - `tessera ws create` → finalizer, then StatefulSet, Service, VirtualService,
    AuthorizationPolicy and RayCluster applied with server-side apply, owned by the workspace;
    status Starting, Events recorded;
  - the cluster "comes up" (the test writes the StatefulSet and RayCluster status as their
    controllers would) → phase Ready with URL; `tessera ws open` prints it; `describe` shows
    conditions and events; `list` shows it;
  - `stop` → replicas 0 and RayCluster suspended, phase Stopped; `start` → replicas 1 again;
  - idle culling: code-server's /healthz (a stand-in HTTP server here) reports an old
    lastHeartbeat → the operator stops the workspace, annotates it, records "Culled";
  - resilience: history compacted and watches cut (410 Gone on re-watch) → the operator relists
    and keeps reconciling;
  - failover: the leader is killed with SIGKILL; the standby takes over within the lease time and
    reconciles a new workspace;
  - `delete` → children deleted by the finalizer, then the workspace is gone;
  - /metrics: workspaces by phase, starts/stops/culls, time to ready, reconcile latency.

Usage: operator_e2e_test.py TESSERA_OPERATOR TESSERA SOURCE_DIR
"""

import http.client
import http.server
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

OPERATOR, TESSERA, SOURCE_DIR = sys.argv[1], sys.argv[2], sys.argv[3]
FAKE = os.path.join(SOURCE_DIR, "tests", "kube", "fake_apiserver.py")
NS = "team-a"
LEASE_SECONDS = 3.0


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Api:
    """A minimal client of the fake API server (the test's own view of the cluster)."""

    def __init__(self, url, tls_dir, token):
        u = urllib.parse.urlparse(url)
        self.host, self.port = u.hostname, u.port
        self.ctx = ssl.create_default_context(cafile=os.path.join(tls_dir, "ca.crt"))
        self.token = token

    def call(self, method, path, body=None, content_type="application/json", ok=(200, 201)):
        conn = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=10)
        headers = {"Authorization": f"Bearer {self.token}", "User-Agent": "e2e-test/1"}
        data = None
        if body is not None:
            data = body if isinstance(body, (bytes, str)) else json.dumps(body)
            headers["Content-Type"] = content_type
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
        conn.close()
        out = json.loads(raw) if raw and raw[:1] in (b"{", b"[") else raw
        if ok is not None and resp.status not in ok:
            raise AssertionError(f"{method} {path} -> {resp.status}: {raw[:500]!r}")
        return resp.status, out

    def get(self, path):
        status, obj = self.call("GET", path, ok=None)
        return obj if status == 200 else None


def wait_for(what, fn, timeout=20.0, interval=0.1):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def ws_path(name=""):
    base = f"/apis/workspaces.tessera.dev/v1alpha1/namespaces/{NS}/workspaces"
    return f"{base}/{name}" if name else base


CHILD_PATHS = {
    "StatefulSet": f"/apis/apps/v1/namespaces/{NS}/statefulsets/ws-{{}}",
    "Service": f"/api/v1/namespaces/{NS}/services/ws-{{}}",
    "VirtualService": f"/apis/networking.istio.io/v1beta1/namespaces/{NS}/virtualservices/ws-{{}}",
    "AuthorizationPolicy":
        f"/apis/security.istio.io/v1beta1/namespaces/{NS}/authorizationpolicies/ws-{{}}",
    "RayCluster": f"/apis/ray.io/v1/namespaces/{NS}/rayclusters/ws-{{}}",
}


class Heartbeats:
    """Stands in for code-server's /healthz: GET /{namespace}/{name}/healthz."""

    def __init__(self):
        self.beats = {}
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                parts = self.path.strip("/").split("/")
                key = "/".join(parts[:2])
                if len(parts) != 3 or parts[2] != "healthz" or key not in outer.beats:
                    self.send_response(404)
                    self.end_headers()
                    return
                body = json.dumps({"status": "alive", "lastHeartbeat": outer.beats[key]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


class Replica:
    def __init__(self, identity, kubeconfig, heartbeat_url, tmp):
        self.identity = identity
        self.log_path = os.path.join(tmp, f"{identity}.log")
        self.log_file = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [OPERATOR, "--kubeconfig", kubeconfig, "--leader-elect",
             "--lease-namespace", "tessera-system", "--identity", identity,
             "--lease-duration", f"{int(LEASE_SECONDS * 1000)}ms", "--renew-deadline", "2000ms",
             "--retry-period", "250ms", "--metrics-addr", "127.0.0.1:0",
             "--heartbeat-url", heartbeat_url + "/{namespace}/{name}/healthz",
             "--activity-check-interval", "500ms", "--base-url", "https://ws.example.com"],
            stdout=subprocess.PIPE, stderr=self.log_file, text=True)
        line = self.proc.stdout.readline()
        m = re.search(r"metrics on http://([0-9.]+):(\d+)", line)
        if not m:
            raise AssertionError(f"{identity}: no metrics address in {line!r}; log: {self.log()}")
        self.metrics_port = int(m.group(2))
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()

    def metrics(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.metrics_port, timeout=5)
        conn.request("GET", "/metrics")
        body = conn.getresponse().read().decode()
        conn.close()
        return body

    def metric(self, name, labels=""):
        pattern = re.escape(name) + (re.escape("{" + labels + "}") if labels else "") + r" (\S+)"
        m = re.search(r"^" + pattern + r"$", self.metrics(), re.M)
        return float(m.group(1)) if m else None

    def log(self):
        with open(self.log_path) as f:
            return f.read()[-3000:]

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def main():
    tmp = tempfile.mkdtemp(prefix="tessera-operator-e2e-")
    tls = os.path.join(tmp, "tls")
    token = "e2e-token"
    fake = subprocess.Popen(
        [sys.executable, FAKE, "--port", "0", "--tls-dir", tls, "--token", token,
         "--bookmark-interval", "0.3"], stdout=subprocess.PIPE, text=True)
    replicas = []
    heartbeats = Heartbeats()
    try:
        line = fake.stdout.readline()
        m = re.search(r"listening on (https://\S+)", line)
        assert m, f"fake API server did not start: {line!r}"
        api = Api(m.group(1), tls, token)
        kubeconfig = os.path.join(tls, "kubeconfig.yaml")
        env = dict(os.environ, KUBECONFIG=kubeconfig, TESSERA_OWNER="alice@example.com")

        def cli(*args, ok=True):
            r = subprocess.run([TESSERA, "ws", *args, "--namespace", NS], env=env,
                               capture_output=True, text=True, timeout=60)
            if ok and r.returncode != 0:
                raise AssertionError(f"tessera ws {' '.join(args)} -> {r.returncode}: {r.stderr}")
            return r

        for ns in (NS, "tessera-system"):
            api.call("POST", "/api/v1/namespaces",
                     {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        # A team template, as an administrator would create it.
        api.call("POST", f"/apis/workspaces.tessera.dev/v1alpha1/namespaces/{NS}/workspacetemplates",
                 {"apiVersion": "workspaces.tessera.dev/v1alpha1", "kind": "WorkspaceTemplate",
                  "metadata": {"name": "default", "namespace": NS},
                  "spec": {"image": "codercom/code-server:4.139.1",
                           "initCommands": ["pip install -q ray"],
                           "env": [{"name": "TEAM", "value": "a"}]}})

        # --- CLI errors a non-Kubernetes user understands.
        r = cli("open", "nobody", ok=False)
        assert r.returncode == 1 and 'there is no workspace "nobody"' in r.stderr, r.stderr
        r = cli("create", "Bad_Name", ok=False)
        assert r.returncode == 1 and "lower-case letters" in r.stderr, r.stderr
        bad_env = dict(env, KUBECONFIG=os.path.join(tmp, "missing.yaml"))
        r = subprocess.run([TESSERA, "ws", "list"], env=bad_env, capture_output=True, text=True)
        assert r.returncode == 1 and "missing.yaml" in r.stderr, r.stderr

        # --- Two replicas; exactly one leads.
        replicas = [Replica("op-a", kubeconfig, heartbeats.url, tmp),
                    Replica("op-b", kubeconfig, heartbeats.url, tmp)]
        lease_path = "/apis/coordination.k8s.io/v1/namespaces/tessera-system/leases/tessera-operator"
        lease = wait_for("a lease holder", lambda: (api.get(lease_path) or {}).get(
            "spec", {}).get("holderIdentity"))
        leader = next(r for r in replicas if r.identity == lease)
        standby = next(r for r in replicas if r.identity != lease)
        log(f"leader {leader.identity}, standby {standby.identity}")
        wait_for("leader gauge", lambda: leader.metric("tessera_operator_is_leader") == 1)
        assert standby.metric("tessera_operator_is_leader") == 0

        # --- Create through the CLI.
        r = cli("create", "alice", "--gpus", "1", "--ray-workers", "2")
        assert 'workspace "alice" created' in r.stdout, r.stdout
        ws = wait_for("finalizer and status", lambda: (lambda o: o if o and o.get(
            "status", {}).get("phase") == "Starting" else None)(api.get(ws_path("alice"))))
        assert "workspaces.tessera.dev/cleanup" in ws["metadata"]["finalizers"], ws
        uid = ws["metadata"]["uid"]
        for kind, path in CHILD_PATHS.items():
            child = wait_for(kind, lambda: api.get(path.format("alice")))
            refs = child["metadata"].get("ownerReferences", [])
            assert any(ref["uid"] == uid and ref.get("controller") for ref in refs), (kind, refs)
            managers = {f["manager"]: f["operation"] for f in child["metadata"]["managedFields"]}
            assert managers.get("tessera-operator") == "Apply", (kind, managers)
        sts = api.get(CHILD_PATHS["StatefulSet"].format("alice"))
        assert sts["spec"]["replicas"] == 1
        ide = sts["spec"]["template"]["spec"]["containers"][0]
        assert ide["resources"]["limits"]["nvidia.com/gpu"] in (1, "1"), ide["resources"]
        env_names = {e["name"]: e.get("value") for e in ide.get("env", [])}
        assert env_names.get("TEAM") == "a" and "RAY_ADDRESS" in env_names, env_names
        ray = api.get(CHILD_PATHS["RayCluster"].format("alice"))
        assert ray["spec"]["workerGroupSpecs"][0]["replicas"] == 2, ray["spec"]

        # Only the leader wrote anything (but the Lease, which both candidates contend for).
        _, requests = api.call("GET", "/fake/requests")
        writers = {q.get("userAgent", "") for q in requests["items"]
                   if q["method"] in ("POST", "PUT", "PATCH", "DELETE")
                   and "/leases" not in q["path"]}
        assert any(leader.identity in w for w in writers), writers
        assert not any(standby.identity in w for w in writers), writers

        # --- The cluster comes up: controllers would write these statuses.
        api.call("PATCH", CHILD_PATHS["StatefulSet"].format("alice") + "/status",
                 {"status": {"replicas": 1, "readyReplicas": 1}},
                 "application/merge-patch+json")
        api.call("PATCH", CHILD_PATHS["RayCluster"].format("alice") + "/status",
                 {"status": {"state": "ready"}}, "application/merge-patch+json")
        heartbeats.beats[f"{NS}/alice"] = int(time.time() * 1000)
        ws = wait_for("Ready", lambda: (lambda o: o if o and o.get("status", {}).get(
            "phase") == "Ready" else None)(api.get(ws_path("alice"))))
        assert ws["status"]["url"] == f"https://ws.example.com/ws/{NS}/alice/", ws["status"]
        r = cli("open", "alice")
        assert r.stdout.strip() == ws["status"]["url"], r.stdout
        r = cli("describe", "alice")
        for needle in ("Phase:      Ready", "Ready", "IDEReady", "RayReady", "Starting"):
            assert needle in r.stdout, (needle, r.stdout)
        r = cli("list")
        assert re.search(r"^alice\s+Ready\s+1\s+2w\s+alice@example.com", r.stdout, re.M), r.stdout
        wait_for("time to ready observed", lambda: (leader.metric(
            "tessera_workspace_time_to_ready_seconds_count") or 0) >= 1)
        assert leader.metric("tessera_workspaces", 'phase="Ready"') == 1

        # --- Stop and start.
        cli("stop", "alice")
        wait_for("replicas 0", lambda: api.get(CHILD_PATHS["StatefulSet"].format("alice"))[
            "spec"]["replicas"] == 0)
        assert api.get(CHILD_PATHS["RayCluster"].format("alice"))["spec"].get("suspend") is True
        api.call("PATCH", CHILD_PATHS["StatefulSet"].format("alice") + "/status",
                 {"status": {"replicas": 0, "readyReplicas": 0}}, "application/merge-patch+json")
        wait_for("Stopped", lambda: api.get(ws_path("alice"))["status"]["phase"] == "Stopped")
        r = cli("open", "alice", ok=False)
        assert r.returncode == 1 and "tessera ws start alice" in r.stderr, r.stderr
        cli("start", "alice")
        wait_for("replicas 1", lambda: api.get(CHILD_PATHS["StatefulSet"].format("alice"))[
            "spec"]["replicas"] == 1)
        api.call("PATCH", CHILD_PATHS["StatefulSet"].format("alice") + "/status",
                 {"status": {"replicas": 1, "readyReplicas": 1}}, "application/merge-patch+json")
        wait_for("Ready again", lambda: api.get(ws_path("alice"))["status"]["phase"] == "Ready")
        assert leader.metric("tessera_workspace_stops_total") >= 1

        # --- Idle culling: the last heartbeat an hour ago, an idle timeout of 2 s. The IDE has
        # been up for a few seconds, which counts as activity; two seconds later it is idle.
        heartbeats.beats[f"{NS}/alice"] = int((time.time() - 3600) * 1000)
        api.call("PATCH", ws_path("alice"), {"spec": {"idleTimeout": "2s"}},
                 "application/merge-patch+json")
        ws = wait_for("culled", lambda: (lambda o: o if o["spec"].get("stopped") else None)(
            api.get(ws_path("alice"))), timeout=15)
        assert "workspaces.tessera.dev/culled-at" in ws["metadata"].get("annotations", {}), ws
        wait_for("cull counted", lambda: leader.metric("tessera_workspace_culls_total") == 1)
        _, events = api.call("GET", f"/api/v1/namespaces/{NS}/events")
        reasons = [e["reason"] for e in events["items"] if e["involvedObject"]["name"] == "alice"]
        for reason in ("Starting", "Ready", "Stopped", "Culled"):
            assert reason in reasons, (reason, reasons)

        # --- Watches cut and history compacted: re-watching gets 410; the operator relists.
        api.call("POST", "/fake/compact", {})
        api.call("POST", "/fake/close-watches", {})
        cli("create", "bob", "--no-ray")
        wait_for("bob reconciled after a relist",
                 lambda: api.get(CHILD_PATHS["StatefulSet"].format("bob")))
        assert api.get(CHILD_PATHS["RayCluster"].format("bob")) is None

        # --- Failover: kill the leader; the standby takes over within the lease time.
        killed_at = time.time()
        leader.stop(signal.SIGKILL)
        wait_for("standby leads", lambda: (api.get(lease_path) or {}).get("spec", {}).get(
            "holderIdentity") == standby.identity, timeout=LEASE_SECONDS * 4)
        took = time.time() - killed_at
        log(f"failover took {took:.2f}s (lease {LEASE_SECONDS}s)")
        assert took < LEASE_SECONDS + 2.0, took
        cli("create", "carol")
        wait_for("carol reconciled by the new leader",
                 lambda: api.get(CHILD_PATHS["StatefulSet"].format("carol")))

        # --- Delete: the finalizer removes the children, then the workspace goes.
        r = subprocess.run([TESSERA, "ws", "delete", "carol", "--namespace", NS], env=env,
                           capture_output=True, text=True, stdin=subprocess.DEVNULL)
        assert r.returncode == 2 and "--yes" in r.stderr, r.stderr
        cli("delete", "carol", "--yes")
        wait_for("carol gone", lambda: api.get(ws_path("carol")) is None)
        for kind, path in CHILD_PATHS.items():
            assert api.get(path.format("carol")) is None, kind
        assert standby.metric("tessera_operator_reconcile_seconds_count") > 0
        log("ok")
        return 0
    except BaseException:
        for r in replicas:
            print(f"--- {r.identity} log ---\n{r.log()}", file=sys.stderr)
        raise
    finally:
        for r in replicas:
            r.stop()
        fake.terminate()
        fake.wait(timeout=10)
        heartbeats.server.shutdown()


if __name__ == "__main__":
    sys.exit(main())
