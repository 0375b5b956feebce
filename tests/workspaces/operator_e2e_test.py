#!/usr/bin/env python3
"""End to end against a real Kubernetes API server: two tessera-operator replicas authenticated
as the operator's ServiceAccount with exactly the RBAC we ship, and the `tessera ws` CLI as the
users alice and bob, on kube-apiserver 1.20.2 + etcd + kube-controller-manager (garbage
collector, namespaces, service-account tokens) from tests/kube/cluster.py.

What it checks (each step fails the test if the behaviour is wrong):
  - leader election on a real Lease: exactly one replica writes (the audit log attributes every
    request to a replica by its User-Agent);
  - `tessera ws create` as alice → finalizer, then StatefulSet (which a 1.20 server accepts: the
    operator sends no field it does not know), Service, VirtualService, AuthorizationPolicy and
    RayCluster, applied with server-side apply and owned by the workspace; status, Events;
  - the cluster "comes up" (the test writes the StatefulSet's and RayCluster's status, since no
    kubelet runs) → Ready; `open`, `describe` (with events), `list` as alice;
  - a Ready workspace whose activity is checked every 500 ms costs nothing: in a quiet window the
    operator makes no write and no GET (the audit log says so);
  - stop/start;
  - idle culling that sees real work (stand-ins for code-server, the activity agent and the Ray
    dashboard): a running Ray job keeps the workspace; then the warning (condition IdleWarning,
    Event IdleSoon, a notice to the IDE); typing avoids the cull (counted); then the cull, with
    each signal's last activity in condition Culled;
  - a foreign edit of the Service (port 80 → 81, still named "http") that makes every apply
    invalid is recovered: one port 80 again, Event ChildReplaced, never Failed;
  - a child deleted by someone else is re-created;
  - the API server restarted: watches break, re-watching gets 410, the operator relists and
    goes on;
  - a missing CRD (RayCluster) → Failed with a message naming the CRD; recovered once the CRD is
    back;
  - RBAC for users: alice manages hers in team-a; bob's in team-b she can neither list, read,
    stop nor delete;
  - failover: the leader is killed; the standby leads within the lease and reconciles;
  - delete: the AuthorizationPolicy stays until the IDE pod (owned by the StatefulSet, held by a
    finalizer here) is gone; then the workspace goes (real garbage collection);
  - the whole run: zero 403s for the operator's ServiceAccount;
  - /metrics.

Usage: operator_e2e_test.py TESSERA_OPERATOR TESSERA SOURCE_DIR
Exits 77 (skipped) when the API server is not installed (scripts/install-kube-apiserver.sh).
"""

import copy
import datetime as dt
import http.client
import http.server
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

OPERATOR, TESSERA, SOURCE_DIR = sys.argv[1], sys.argv[2], sys.argv[3]
sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "kube"))
import cluster as kube  # noqa: E402

NS, NS_B = "team-a", "team-b"
OPERATOR_SA = "system:serviceaccount:tessera-system:tessera-operator"
LEASE_SECONDS = 3.0
WRITE_VERBS = ("create", "update", "patch", "delete", "deletecollection")


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def ws_path(name="", ns=NS):
    base = f"/apis/workspaces.tessera.dev/v1alpha1/namespaces/{ns}/workspaces"
    return f"{base}/{name}" if name else base


def child_paths(ns=NS):
    return {
        "StatefulSet": f"/apis/apps/v1/namespaces/{ns}/statefulsets/ws-{{}}",
        "Service": f"/api/v1/namespaces/{ns}/services/ws-{{}}",
        "VirtualService":
            f"/apis/networking.istio.io/v1beta1/namespaces/{ns}/virtualservices/ws-{{}}",
        "AuthorizationPolicy":
            f"/apis/security.istio.io/v1beta1/namespaces/{ns}/authorizationpolicies/ws-{{}}",
        "RayCluster": f"/apis/ray.io/v1/namespaces/{ns}/rayclusters/ws-{{}}",
    }


CHILD_PATHS = child_paths()


class StandIns:
    """Stands in for what runs inside a workspace (no Pods run here): code-server's /healthz,
    the activity agent and the Ray dashboard, keyed by "namespace/name":
      GET  /{ns}/{name}/healthz                 {"lastHeartbeat": beats[key]}
      GET  /agent/{ns}/{name}/activity          terminal input at terminal[key], CPU/GPU idle
      POST /agent/{ns}/{name}/notice            recorded in notices[key]
      GET  /ray/{ns}/{name}/api/jobs/           jobs[key] (default: none)
      GET  /ray/{ns}/{name}/nodes?view=summary  two idle Ray nodes
    """

    def __init__(self):
        self.beats, self.terminal, self.jobs, self.notices = {}, {}, {}, {}
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def answer(self, code, body):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                path = self.path.split("?")[0]
                parts = path.strip("/").split("/")
                with outer.lock:
                    if len(parts) == 3 and parts[2] == "healthz" and "/".join(parts[:2]) in \
                            outer.beats:
                        return self.answer(200, {"status": "alive",
                                                 "lastHeartbeat": outer.beats["/".join(parts[:2])]})
                    if len(parts) == 4 and parts[0] == "agent" and parts[3] == "activity":
                        key = "/".join(parts[1:3])
                        return self.answer(200, {
                            "terminal": {"last_input_ms": outer.terminal.get(key, 0), "ttys": 1},
                            "cpu": {"last_active_ms": 0, "cores": 0.01},
                            "gpu": {"available": False}})
                    if len(parts) >= 4 and parts[0] == "ray":
                        key = "/".join(parts[1:3])
                        if parts[3:] == ["api", "jobs"]:
                            return self.answer(200, outer.jobs.get(key, []))
                        if parts[3:] == ["nodes"]:
                            return self.answer(200, {"result": True, "data": {"summary": [
                                {"cpu": 2.0, "gpus": []}, {"cpu": 1.0, "gpus": []}]}})
                self.answer(404, {"error": "not found"})

            def do_POST(self):
                parts = self.path.strip("/").split("/")
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if len(parts) == 4 and parts[0] == "agent" and parts[3] == "notice":
                    with outer.lock:
                        outer.notices.setdefault("/".join(parts[1:3]), []).append(
                            json.loads(body)["message"])
                    return self.answer(200, {"terminals": 1})
                self.answer(404, {"error": "not found"})

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def set(self, table, key, value):
        with self.lock:
            getattr(self, table)[key] = value


class Replica:
    def __init__(self, identity, kubeconfig, standins_url, tmp):
        self.identity = identity
        self.log_path = os.path.join(tmp, f"{identity}.log")
        self.log_file = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            [OPERATOR, "--kubeconfig", kubeconfig, "--leader-elect",
             "--lease-namespace", "tessera-system", "--identity", identity,
             "--lease-duration", f"{int(LEASE_SECONDS * 1000)}ms", "--renew-deadline", "2000ms",
             "--retry-period", "250ms", "--metrics-addr", "127.0.0.1:0",
             "--heartbeat-url", standins_url + "/{namespace}/{name}/healthz",
             "--agent-image", "tessera/tessera:dev",
             "--agent-url", standins_url + "/agent/{namespace}/{name}",
             "--ray-dashboard-url", standins_url + "/ray/{namespace}/{name}",
             "--activity-check-interval", "500ms", "--idle-warning", "2s",
             "--base-url", "https://ws.example.com"],
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


def operator_requests(c, since=None):
    """The operator's requests in the audit log (after the `since` index)."""
    events = c.audit_events()
    return [e for e in events[since or 0:] if e["user"] == OPERATOR_SA]


def main():
    try:
        c = kube.Cluster(crds=True)
    except kube.Missing as e:
        print(f"skipped: {e}")
        return 77
    tmp = tempfile.mkdtemp(prefix="tessera-operator-e2e-")
    replicas = []
    standins = StandIns()
    t_start = time.time()
    try:
        c.start()
        log(f"API server ready in {time.time() - t_start:.1f}s at {c.url}")
        removed = c.removed_cel
        assert len(removed) == 2, removed  # the CEL rules 1.20 cannot run (docs say which)
        for ns in ("tessera-system", NS, NS_B):
            c.create_namespace(ns)
        rbac = os.path.join(SOURCE_DIR, "deploy", "workspaces")
        c.apply_yaml(os.path.join(rbac, "rbac.yaml"))
        c.apply_yaml(os.path.join(rbac, "user-rbac.yaml"))
        # The example namespace's bindings: alice uses team-a; bob, team-b.
        for ns, user in ((NS, "alice"), (NS_B, "bob")):
            c.apply({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                     "metadata": {"name": "tessera-workspace-users", "namespace": ns},
                     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                 "name": "tessera-workspace-user"},
                     "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                                   "name": user}]})
            c.request("POST", f"/apis/workspaces.tessera.dev/v1alpha1/namespaces/{ns}/"
                      "workspacetemplates",
                      {"apiVersion": "workspaces.tessera.dev/v1alpha1",
                       "kind": "WorkspaceTemplate", "metadata": {"name": "default"},
                       "spec": {"image": "codercom/code-server:4.139.1",
                                "initCommands": ["pip install -q ray"],
                                "env": [{"name": "TEAM", "value": ns}]}})
        operator_token = c.service_account_token("tessera-system", "tessera-operator")
        operator_kubeconfig = c.kubeconfig(os.path.join(tmp, "operator.kubeconfig"),
                                           token=operator_token, name="tessera-operator")
        kubeconfigs = {u: c.kubeconfig(os.path.join(tmp, f"{u}.kubeconfig"), u)
                       for u in ("alice", "bob")}

        def cli(*args, user="alice", ns=NS, ok=True):
            env = dict(os.environ, KUBECONFIG=kubeconfigs[user],
                       TESSERA_OWNER=f"{user}@example.com")
            r = subprocess.run([TESSERA, "ws", *args, "--namespace", ns], env=env,
                               capture_output=True, text=True, timeout=60,
                               stdin=subprocess.DEVNULL)
            if ok and r.returncode != 0:
                raise AssertionError(f"tessera ws {' '.join(args)} as {user} -> "
                                     f"{r.returncode}: {r.stderr}")
            return r

        def phase(name, ns=NS):
            return ((c.get(ws_path(name, ns)) or {}).get("status") or {}).get("phase")

        def set_status(path, status):
            c.merge_patch(path + "/status", {"status": status})

        # --- CLI errors a non-Kubernetes user understands, and a workspace never reconciled.
        r = cli("open", "nobody", ok=False)
        assert r.returncode == 1 and 'there is no workspace "nobody"' in r.stderr, r.stderr
        r = cli("create", "Bad_Name", ok=False)
        assert r.returncode == 1 and "lower-case letters" in r.stderr, r.stderr
        cli("create", "early")
        r = cli("open", "early", ok=False)  # no operator yet: Pending, as list says
        assert "phase Pending" in r.stderr, r.stderr
        assert re.search(r"^early\s+Pending", cli("list").stdout, re.M)
        cli("delete", "early", "--yes")

        # --- Two replicas as the operator's ServiceAccount; exactly one leads.
        replicas = [Replica("op-a", operator_kubeconfig, standins.url, tmp),
                    Replica("op-b", operator_kubeconfig, standins.url, tmp)]
        lease_path = ("/apis/coordination.k8s.io/v1/namespaces/tessera-system/leases/"
                      "tessera-operator")
        holder = c.wait_for("a lease holder", lambda: (c.get(lease_path) or {}).get(
            "spec", {}).get("holderIdentity"))
        leader = next(r for r in replicas if r.identity == holder)
        standby = next(r for r in replicas if r.identity != holder)
        log(f"leader {leader.identity}, standby {standby.identity}")
        c.wait_for("leader gauge", lambda: leader.metric("tessera_operator_is_leader") == 1)
        assert standby.metric("tessera_operator_is_leader") == 0
        assert "Kubernetes v1.20.2" in leader.log(), leader.log()

        # --- Create as alice.
        r = cli("create", "alice", "--gpus", "1", "--ray-workers", "2")
        assert 'workspace "alice" created' in r.stdout, r.stdout
        ws = c.wait_for("finalizer and status", lambda: (lambda o: o if o and o.get(
            "status", {}).get("phase") == "Starting" else None)(c.get(ws_path("alice"))))
        assert "workspaces.tessera.dev/cleanup" in ws["metadata"]["finalizers"], ws
        uid = ws["metadata"]["uid"]
        for kind, path in CHILD_PATHS.items():
            child = c.wait_for(kind, lambda p=path: c.get(p.format("alice")))
            refs = child["metadata"].get("ownerReferences", [])
            assert any(ref["uid"] == uid and ref.get("controller") for ref in refs), (kind, refs)
            managers = {f["manager"]: f["operation"] for f in child["metadata"]["managedFields"]}
            assert managers.get("tessera-operator") == "Apply", (kind, managers)
        sts = c.get(CHILD_PATHS["StatefulSet"].format("alice"))
        assert sts["spec"]["replicas"] == 1
        ide = sts["spec"]["template"]["spec"]["containers"][0]
        assert ide["resources"]["limits"]["nvidia.com/gpu"] in (1, "1"), ide["resources"]
        env_names = {e["name"]: e.get("value") for e in ide.get("env", [])}
        assert env_names.get("TEAM") == NS and "RAY_ADDRESS" in env_names, env_names
        ray = c.get(CHILD_PATHS["RayCluster"].format("alice"))
        assert ray["spec"]["workerGroupSpecs"][0]["replicas"] == 2, ray["spec"]

        # Only the leader wrote (the Lease aside, which both candidates contend for).
        writers = {e["userAgent"] for e in operator_requests(c)
                   if e["verb"] in WRITE_VERBS and e["resource"] != "leases"}
        assert any(leader.identity in w for w in writers), writers
        assert not any(standby.identity in w for w in writers), writers

        # --- The cluster comes up: the controllers would write these statuses.
        set_status(CHILD_PATHS["StatefulSet"].format("alice"), {"replicas": 1, "readyReplicas": 1})
        set_status(CHILD_PATHS["RayCluster"].format("alice"), {"state": "ready"})
        standins.set("beats", f"{NS}/alice", int(time.time() * 1000))
        c.wait_for("Ready", lambda: phase("alice") == "Ready")
        ws = c.get(ws_path("alice"))
        assert ws["status"]["url"] == f"https://ws.example.com/ws/{NS}/alice/", ws["status"]
        assert cli("open", "alice").stdout.strip() == ws["status"]["url"]
        r = cli("describe", "alice")
        for needle in ("Phase:      Ready", "IDEReady", "RayReady", "Starting"):
            assert needle in r.stdout, (needle, r.stdout)
        assert "could not read events" not in r.stdout + r.stderr, r.stdout + r.stderr
        r = cli("list")
        assert re.search(r"^alice\s+Ready\s+1\s+2w\s+alice@example.com", r.stdout, re.M), r.stdout
        c.wait_for("time to ready observed", lambda: (leader.metric(
            "tessera_workspace_time_to_ready_seconds_count") or 0) >= 1)

        # --- A Ready workspace, activity checked every 500 ms: nothing written, nothing read.
        time.sleep(1.5)  # let the last writes of the transition land
        mark = len(c.audit_events())
        time.sleep(4.0)
        quiet = [e for e in operator_requests(c, mark) if e["resource"] != "leases"
                 and e["verb"] not in ("watch", "list")]
        log(f"quiet window: {len(quiet)} non-lease requests by the operator in 4 s")
        assert not quiet, quiet[:10]

        # --- Stop and start.
        cli("stop", "alice")
        c.wait_for("replicas 0", lambda: c.get(CHILD_PATHS["StatefulSet"].format("alice"))[
            "spec"]["replicas"] == 0)
        assert c.get(CHILD_PATHS["RayCluster"].format("alice"))["spec"].get("suspend") is True
        set_status(CHILD_PATHS["StatefulSet"].format("alice"), {"replicas": 0, "readyReplicas": 0})
        c.wait_for("Stopped", lambda: phase("alice") == "Stopped")
        r = cli("open", "alice", ok=False)
        assert r.returncode == 1 and "tessera ws start alice" in r.stderr, r.stderr
        cli("start", "alice")
        c.wait_for("replicas 1", lambda: c.get(CHILD_PATHS["StatefulSet"].format("alice"))[
            "spec"]["replicas"] == 1)
        set_status(CHILD_PATHS["StatefulSet"].format("alice"), {"replicas": 1, "readyReplicas": 1})
        c.wait_for("Ready again", lambda: phase("alice") == "Ready")

        # --- A foreign edit that makes the apply invalid: port 80 → 81, still named "http".
        svc_path = CHILD_PATHS["Service"].format("alice")
        svc = c.get(svc_path)
        svc["spec"]["ports"][0]["port"] = 81
        c.request("PUT", svc_path + "?fieldManager=kubectl-edit", svc)

        def restored():
            ports = c.get(svc_path)["spec"]["ports"]
            return ports if sorted(p["port"] for p in ports) == [80, 8090] else None

        ports = c.wait_for("the Service's port restored", restored, timeout=20)
        assert sorted(p["name"] for p in ports) == ["activity", "http"], ports
        _, events = c.request("GET", f"/api/v1/namespaces/{NS}/events")
        reasons = [e["reason"] for e in events["items"] if e["involvedObject"]["name"] == "alice"]
        assert "ChildReplaced" in reasons, reasons
        assert phase("alice") == "Ready", phase("alice")

        # --- A child deleted by someone else comes back.
        ap_path = CHILD_PATHS["AuthorizationPolicy"].format("alice")
        c.request("DELETE", ap_path)
        c.wait_for("AuthorizationPolicy re-created", lambda: c.get(ap_path))

        # --- Idle culling sees real work. Heartbeat and terminal an hour old, idle timeout 4 s
        # (so the warning comes 2 s before the cull). A running Ray job keeps it alive.
        key = f"{NS}/alice"
        hour_ago = int((time.time() - 3600) * 1000)
        standins.set("beats", key, hour_ago)
        standins.set("terminal", key, hour_ago)
        job_start = int(time.time() * 1000)
        standins.set("jobs", key, [{"job_id": "train", "status": "RUNNING",
                                    "start_time": job_start}])
        c.merge_patch(ws_path("alice"), {"spec": {"idleTimeout": "4s"}}, user="alice")

        def condition(kind):
            for cond in ((c.get(ws_path("alice")) or {}).get("status") or {}).get(
                    "conditions", []):
                if cond["type"] == kind:
                    return cond
            return None

        time.sleep(6.0)
        assert not c.get(ws_path("alice"))["spec"].get("stopped"), "culled during a Ray job"
        assert (condition("IdleWarning") or {}).get("status") != "True", condition("IdleWarning")
        # The job ends: warned 2 s before the cull, in the status, an Event and the IDE.
        standins.set("jobs", key, [{"job_id": "train", "status": "SUCCEEDED",
                                    "start_time": job_start, "end_time": int(time.time() * 1000)}])
        warning = c.wait_for("the idle warning", lambda: (lambda w: w if w and w[
            "status"] == "True" else None)(condition("IdleWarning")), timeout=10)
        assert "will be stopped" in warning["message"], warning
        assert any("will be stopped in" in n for n in standins.notices.get(key, [])), \
            standins.notices
        # Someone types in a terminal: the cull is avoided.
        standins.set("terminal", key, int(time.time() * 1000))
        c.wait_for("activity resumed", lambda: (condition("IdleWarning") or {}).get(
            "reason") == "Active", timeout=10)
        assert not c.get(ws_path("alice"))["spec"].get("stopped")
        c.wait_for("cull avoided counted",
                   lambda: leader.metric("tessera_workspace_culls_avoided_total") == 1)
        # Then nobody: culled, and the status says why, signal by signal.
        ws = c.wait_for("culled", lambda: (lambda o: o if o["spec"].get("stopped") else None)(
            c.get(ws_path("alice"))), timeout=20)
        assert "workspaces.tessera.dev/culled-at" in ws["metadata"].get("annotations", {}), ws
        culled = c.wait_for("the Culled condition", lambda: condition("Culled"))
        for signal_name in ("heartbeat", "terminal", "cpu", "ray-jobs", "ray-cpu"):
            assert signal_name in culled["message"], (signal_name, culled)
        c.wait_for("cull counted", lambda: leader.metric("tessera_workspace_culls_total") == 1)
        _, events = c.request("GET", f"/api/v1/namespaces/{NS}/events")
        reasons = [e["reason"] for e in events["items"] if e["involvedObject"]["name"] == "alice"]
        for reason in ("IdleSoon", "ActivityResumed", "Culled"):
            assert reason in reasons, (reason, reasons)
        assert "Culled" in cli("describe", "alice").stdout

        # --- Telemetry: per team and user, and `tessera ws report` from the leader's /metrics.
        metrics = leader.metrics()
        for series in ('tessera_workspace_user_starts_total{kind="first",team="team-a",'
                       'user="alice@example.com"} 1',
                       'tessera_workspace_user_starts_total{kind="resume",team="team-a",'
                       'user="alice@example.com"} 1',
                       'tessera_workspace_user_culls_total{team="team-a",'
                       'user="alice@example.com"} 1',
                       'tessera_workspace_user_culls_avoided_total{team="team-a",'
                       'user="alice@example.com"} 1',
                       'tessera_workspace_first_ready_seconds_count{team="team-a"} 1',
                       'tessera_workspace_first_ray_job_seconds_count{team="team-a"} 1'):
            assert series in metrics, (series, [m for m in metrics.splitlines()
                                                if "tessera_workspace_" in m])
        r = subprocess.run([TESSERA, "ws", "report", "--metrics-url",
                            f"http://127.0.0.1:{leader.metrics_port}/metrics"],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        log("tessera ws report:\n" + r.stdout)
        row = next(line for line in r.stdout.splitlines() if "alice@example.com" in line)
        assert row.split()[-4:] == ["1", "1", "1", "1"], row  # starts, resumes, culled, avoided
        assert re.search(r"^team-a\s+\S+s\s+\S+s$", r.stdout, re.M), r.stdout  # first ready, Ray job
        # The Grafana dashboard queries only what the operator exports.
        with open(os.path.join(SOURCE_DIR, "deploy", "workspaces", "grafana-dashboard.json")) as f:
            dash = json.load(f)
        exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
        exprs += [v["query"] for v in dash["templating"]["list"] if v.get("type") == "query"]
        exported = set(re.findall(r"^(tessera_[a-z_]+)[{ ]", metrics, re.M))
        used = set(re.findall(r"\b(tessera_[a-z_]+)", " ".join(exprs)))
        assert used and used <= exported, sorted(used - exported)
        r = subprocess.run([TESSERA, "ws", "report", "--metrics-url", c.url + "/metrics",
                            "--since", "7d"], capture_output=True, text=True, timeout=30)
        assert r.returncode == 2 and "--since needs --prometheus" in r.stderr, r.stderr

        # --- The API server restarts: watches break; re-watching gets 410; relist.
        restart_began = dt.datetime.now(dt.timezone.utc)
        c.restart_apiserver()
        # kube-apiserver authorizes from its RBAC informers' caches, which a restarted server
        # fills after it starts answering: for a moment it may refuse a request the operator's
        # Role allows (a 403 that the next retry passes). That is the server, not a missing rule.
        rbac_warm_from = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=5)
        log("API server restarted")
        # A leader that could not renew within the renew deadline while the server was down
        # exits (client-go semantics); its Deployment would restart it: so does the test.
        for i, r in enumerate(replicas):
            if r.proc.poll() is not None:
                log(f"{r.identity} exited ({r.proc.returncode}) while the API server was down; "
                    "restarting it")
                replicas[i] = Replica(r.identity, operator_kubeconfig, standins.url, tmp)
        cli("create", "erin", "--no-ray")
        c.wait_for("erin reconciled after the restart",
                   lambda: c.get(CHILD_PATHS["StatefulSet"].format("erin")), timeout=30)
        time.sleep(1.0)
        assert c.get(CHILD_PATHS["RayCluster"].format("erin")) is None
        erin_deletes = [e for e in operator_requests(c) if e["verb"] == "delete"
                        and e["name"] == "ws-erin"]
        assert not erin_deletes, erin_deletes  # --no-ray: no DELETE of a RayCluster never made

        # --- A missing CRD is named, and the workspace recovers once it is back.
        ray_crd = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/rayclusters.ray.io"
        saved_crd = c.get(ray_crd)
        c.request("DELETE", ray_crd)
        c.wait_for("RayCluster CRD gone", lambda: c.get(ray_crd) is None, timeout=30)
        cli("create", "dave")
        ws = c.wait_for("dave failed", lambda: (lambda o: o if o and (o.get("status") or {}).get(
            "phase") == "Failed" else None)(c.get(ws_path("dave"))), timeout=30)
        messages = " ".join(cond.get("message", "") for cond in ws["status"]["conditions"])
        assert "rayclusters.ray.io" in messages and "CustomResourceDefinition" in messages, \
            messages
        assert "404 page not found" not in messages.replace("(HTTP 404: 404 page not found)", ""), \
            messages
        crd = {k: copy.deepcopy(saved_crd[k]) for k in ("apiVersion", "kind", "spec")}
        crd["metadata"] = {"name": "rayclusters.ray.io"}
        c.apply(crd)
        c.wait_for("dave recovered", lambda: phase("dave") == "Starting", timeout=90)

        # --- Users: bob in team-b; alice can neither see nor touch his.
        cli("create", "bob", user="bob", ns=NS_B)
        c.wait_for("bob's workspace reconciled", lambda: phase("bob", NS_B) == "Starting")
        assert "bob" not in cli("list").stdout
        for args in (("list",), ("describe", "bob"), ("stop", "bob"), ("delete", "bob", "--yes"),
                     ("open", "bob")):
            r = cli(*args, ns=NS_B, ok=False)
            assert r.returncode != 0 and "not allowed" in r.stderr, (args, r.stderr)
        assert not (c.get(ws_path("bob", NS_B))["spec"].get("stopped"))
        assert "bob" in cli("list", user="bob", ns=NS_B).stdout

        # --- Failover: kill the leader; the standby takes over within the lease.
        holder = c.wait_for("a lease holder", lambda: (c.get(lease_path) or {}).get(
            "spec", {}).get("holderIdentity"))
        leader = next(r for r in replicas if r.identity == holder)
        standby = next(r for r in replicas if r.identity != holder)
        c.wait_for("the standby running", lambda: standby.metric(
            "tessera_operator_is_leader") == 0)
        log(f"leader {leader.identity}, standby {standby.identity}")
        killed_at = time.time()
        leader.stop(signal.SIGKILL)
        c.wait_for("standby leads", lambda: (c.get(lease_path) or {}).get("spec", {}).get(
            "holderIdentity") == standby.identity, timeout=LEASE_SECONDS * 4)
        took = time.time() - killed_at
        log(f"failover took {took:.2f}s (lease {LEASE_SECONDS}s)")
        assert took < LEASE_SECONDS + 2.0, took
        cli("create", "carol", "--no-ray")
        sts = c.wait_for("carol reconciled by the new leader",
                         lambda: c.get(CHILD_PATHS["StatefulSet"].format("carol")))

        # --- Delete: the AuthorizationPolicy outlives the IDE pod. No kubelet runs, so the test
        # makes the pod the StatefulSet controller would, held by a finalizer as if terminating.
        c.request("POST", f"/api/v1/namespaces/{NS}/pods", {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "ws-carol-0", "finalizers": ["test.tessera.dev/terminating"],
                         "labels": {"workspaces.tessera.dev/workspace": "carol"},
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet",
                                              "name": "ws-carol", "uid": sts["metadata"]["uid"],
                                              "controller": True}]},
            "spec": {"containers": [{"name": "ide", "image": "x"}]}})
        cli("delete", "carol", "--yes")
        c.wait_for("carol's StatefulSet gone",
                   lambda: c.get(CHILD_PATHS["StatefulSet"].format("carol")) is None, timeout=30)
        time.sleep(2.0)
        assert c.get(CHILD_PATHS["AuthorizationPolicy"].format("carol")) is not None
        assert c.get(ws_path("carol")) is not None
        c.merge_patch(f"/api/v1/namespaces/{NS}/pods/ws-carol-0",
                      {"metadata": {"finalizers": None}})
        c.wait_for("carol gone", lambda: c.get(ws_path("carol")) is None, timeout=30)
        for kind, path in CHILD_PATHS.items():
            assert c.get(path.format("carol")) is None, kind

        # --- The whole run as the operator's ServiceAccount: nothing refused.
        def audit_time(e):
            return dt.datetime.fromisoformat(e["time"].replace("Z", "+00:00"))

        denied = [e for e in operator_requests(c) if e["code"] == 403]
        cold = [e for e in denied if restart_began <= audit_time(e) < rbac_warm_from]
        if cold:
            log(f"{len(cold)} 403(s) while the restarted API server's RBAC caches filled: "
                f"{[(e['verb'], e['resource']) for e in cold]}")
        denied = [e for e in denied if e not in cold]
        assert not denied, denied[:5]
        assert standby.metric("tessera_operator_reconcile_seconds_count") > 0
        log(f"ok in {time.time() - t_start:.1f}s; {len(operator_requests(c))} operator requests, "
            "no 403")
        return 0
    except BaseException:
        for r in replicas:
            print(f"--- {r.identity} log ---\n{r.log()}", file=sys.stderr)
        print(f"--- kube-apiserver log ---\n{c.log_tail('kube-apiserver', 2000)}", file=sys.stderr)
        raise
    finally:
        for r in replicas:
            r.stop()
        c.stop()
        standins.server.shutdown()


if __name__ == "__main__":
    sys.exit(main())
