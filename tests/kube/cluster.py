#!/usr/bin/env python3
"""A real Kubernetes control plane for tests: etcd + kube-apiserver + kube-controller-manager.

kube-apiserver and kube-controller-manager 1.20.2 come from scripts/install-kube-apiserver.sh
(built from Debian's source package into out/tools/kube-1.20.2/bin, or $TESSERA_KUBE_PREFIX/bin);
etcd is Debian's etcd-server. Everything listens on free loopback ports and lives in one
temporary directory; stop() (also on a failure) kills the processes and removes the directory;
when the Python process dies, its children die with it (setpriv --pdeathsig KILL).

What a test gets:
  - TLS with a CA of its own (ca.crt), static bearer tokens for `admin` (system:masters), and two
    users `alice` and `bob` (group tessera:users), RBAC authorization, an audit log (JSON lines,
    level Metadata, every request) — audit_events() parses it;
  - the controller manager's garbage collector, namespace controller, and service-account and
    token controllers: a ServiceAccount gets a real signed token (service_account_token());
  - kubeconfig(path, user) writes a kubeconfig for one of the users or a token;
  - request()/apply_yaml() as any user; install_workspace_crds() installs our CRDs with their
    CEL rules removed (1.20 has no x-kubernetes-validations) and minimal CRDs of our own for the
    Istio (VirtualService, AuthorizationPolicy) and KubeRay (RayCluster) kinds.

No kubelet, scheduler or StatefulSet controller runs: Pods never exist, so a test writes the
StatefulSet's status itself.

As a program (for the C++ integration tests, tests that are not Python):
    cluster.py [--dir DIR] [--crds]
prints one line `ready {json}` (url, dir, ca, kubeconfigs for admin/alice/bob, tokens) once the
server is ready, then reads commands from stdin (`restart-apiserver` → `restarted`) until stdin
closes or SIGTERM/SIGINT. When the binaries are missing it prints `skip: <why>` and exits 77.
"""

import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.parse

SOURCE_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
KUBE_VERSION = "1.20.2"
USERS = {  # name -> groups (besides system:authenticated)
    "admin": ["system:masters"],
    "alice": ["tessera:users"],
    "bob": ["tessera:users"],
}
SKIP = 77


class Missing(Exception):
    """A binary the cluster needs is not installed (the caller may skip)."""


def kube_bin_dir():
    prefix = os.environ.get("TESSERA_KUBE_PREFIX") or os.path.join(
        SOURCE_DIR, "out", "tools", f"kube-{KUBE_VERSION}")
    return os.path.join(prefix, "bin")


def find_binaries():
    bin_dir = kube_bin_dir()
    found = {}
    for name in ("kube-apiserver", "kube-controller-manager"):
        path = os.path.join(bin_dir, name)
        if not os.access(path, os.X_OK):
            raise Missing(f"{path} is missing: run scripts/install-kube-apiserver.sh")
        found[name] = path
    etcd = shutil.which("etcd") or ("/usr/bin/etcd" if os.access("/usr/bin/etcd", os.X_OK) else None)
    if etcd is None:
        raise Missing("etcd is missing: apt-get install etcd-server")
    found["etcd"] = etcd
    if shutil.which("openssl") is None:
        raise Missing("openssl is missing: apt-get install openssl")
    return found


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent(argv):
    """argv run under setpriv --pdeathsig KILL (util-linux): SIGKILL when the test process dies,
    however. (Not a preexec_fn: forking with one is unsafe once the test has threads.)"""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--", *argv] if setpriv else list(argv)


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)


def strip_cel(node):
    """Removes every x-kubernetes-validations (CEL rules, not in 1.20) from a CRD, in place.
    Returns the JSON paths of the removed rules."""
    removed = []

    def walk(n, path):
        if isinstance(n, dict):
            if "x-kubernetes-validations" in n:
                for rule in n.pop("x-kubernetes-validations"):
                    removed.append(f"{path}: {rule.get('rule')}")
            for k, v in n.items():
                walk(v, f"{path}.{k}")
        elif isinstance(n, list):
            for i, v in enumerate(n):
                walk(v, f"{path}[{i}]")

    walk(node, "")
    return removed


def _minimal_crd(group, version, kind, plural, status=True):
    """A CRD that accepts any spec and status: enough for the operator's children of kinds we do
    not ship (Istio, KubeRay)."""
    version_spec = {
        "name": version, "served": True, "storage": True,
        "schema": {"openAPIV3Schema": {
            "type": "object",
            "properties": {
                "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            }}},
    }
    if status:
        version_spec["subresources"] = {"status": {}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {"group": group, "scope": "Namespaced",
                 "names": {"kind": kind, "plural": plural, "singular": kind.lower(),
                           "listKind": kind + "List"},
                 "versions": [version_spec]},
    }


FOREIGN_CRDS = [
    _minimal_crd("networking.istio.io", "v1beta1", "VirtualService", "virtualservices"),
    _minimal_crd("security.istio.io", "v1beta1", "AuthorizationPolicy", "authorizationpolicies"),
    _minimal_crd("ray.io", "v1", "RayCluster", "rayclusters"),
]

# Where objects of the kinds tests create by manifest live: kind -> (api prefix, plural, namespaced)
_PATHS = {
    "Namespace": ("/api/v1", "namespaces", False),
    "ServiceAccount": ("/api/v1", "serviceaccounts", True),
    "Secret": ("/api/v1", "secrets", True),
    "ConfigMap": ("/api/v1", "configmaps", True),
    "Service": ("/api/v1", "services", True),
    "CustomResourceDefinition": ("/apis/apiextensions.k8s.io/v1", "customresourcedefinitions", False),
    "ClusterRole": ("/apis/rbac.authorization.k8s.io/v1", "clusterroles", False),
    "ClusterRoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "clusterrolebindings", False),
    "Role": ("/apis/rbac.authorization.k8s.io/v1", "roles", True),
    "RoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "rolebindings", True),
    "StatefulSet": ("/apis/apps/v1", "statefulsets", True),
    "Deployment": ("/apis/apps/v1", "deployments", True),
    "PodDisruptionBudget": ("/apis/policy/v1beta1", "poddisruptionbudgets", True),
    "NetworkPolicy": ("/apis/networking.k8s.io/v1", "networkpolicies", True),
    "WorkspaceTemplate": ("/apis/workspaces.tessera.dev/v1alpha1", "workspacetemplates", True),
    "Workspace": ("/apis/workspaces.tessera.dev/v1alpha1", "workspaces", True),
}


def object_path(obj, namespace=None):
    """The API path of a manifest's object (its collection when it has no name)."""
    kind = obj["kind"]
    if kind not in _PATHS:
        raise ValueError(f"cluster.py does not know where {kind} objects live; add it to _PATHS")
    prefix, plural, namespaced = _PATHS[kind]
    meta = obj.get("metadata", {})
    path = prefix
    if namespaced:
        path += f"/namespaces/{meta.get('namespace') or namespace or 'default'}"
    path += f"/{plural}"
    return path + (f"/{meta['name']}" if meta.get("name") else "")


class ApiError(Exception):
    def __init__(self, method, path, status, body):
        super().__init__(f"{method} {path} -> {status}: {str(body)[:600]}")
        self.status = status
        self.body = body


class Cluster:
    """One control plane. Use as a context manager, or start()/stop()."""

    def __init__(self, work_dir=None, audit=True, crds=False):
        """crds: install our CRDs (install_workspace_crds) before the controller manager starts,
        so its garbage collector watches Workspaces from the start (it discovers CRDs created
        later only at its next resync)."""
        self.bins = find_binaries()
        self.crds = crds
        self.removed_cel = []
        self._own_dir = work_dir is None
        self.dir = work_dir or tempfile.mkdtemp(prefix="tessera-kube-")
        os.makedirs(self.dir, exist_ok=True)
        self.audit = audit
        self.procs = {}
        self.tokens = {}
        self.url = None
        self._ctx = None

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    # --- start and stop -------------------------------------------------------------------

    def start(self, timeout=90.0):
        t0 = time.time()
        self._make_pki()
        with open(self.path("tokens.csv"), "w") as f:
            for user, groups in USERS.items():
                self.tokens[user] = os.urandom(16).hex()
                f.write(f'{self.tokens[user]},{user},{user},"{",".join(groups)}"\n')
        with open(self.path("audit-policy.yaml"), "w") as f:
            f.write("apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\n"
                    "rules:\n  - level: Metadata\n")

        etcd_client, etcd_peer = free_port(), free_port()
        self._spawn("etcd", [
            self.bins["etcd"], "--name", "test", "--data-dir", self.path("etcd"),
            "--listen-client-urls", f"http://127.0.0.1:{etcd_client}",
            "--advertise-client-urls", f"http://127.0.0.1:{etcd_client}",
            "--listen-peer-urls", f"http://127.0.0.1:{etcd_peer}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{etcd_peer}",
            "--initial-cluster", f"test=http://127.0.0.1:{etcd_peer}",
            "--unsafe-no-fsync", "--log-level", "warn"])
        self.etcd_url = f"http://127.0.0.1:{etcd_client}"

        self._apiserver_port = free_port()
        self._start_apiserver(t0 + timeout)

        self.kubeconfig(self.path("admin.kubeconfig"), "admin")
        if self.crds:
            self.removed_cel = self.install_workspace_crds()
        self._spawn("kube-controller-manager", [
            self.bins["kube-controller-manager"],
            f"--kubeconfig={self.path('admin.kubeconfig')}",
            "--controllers=garbagecollector,namespace,serviceaccount,serviceaccount-token",
            f"--service-account-private-key-file={self.path('sa.key')}",
            f"--root-ca-file={self.path('ca.crt')}",
            "--leader-elect=false", "--port=0", "--secure-port=0", "--v=0",
            "--concurrent-gc-syncs=5", "--namespace-sync-period=10s"])
        # The garbage collector needs discovery; the token controller needs the default SA.
        self.wait_for("the default ServiceAccount's token", lambda: self.service_account_token(
            "default", "default", wait=False), timeout=max(5.0, t0 + timeout - time.time()))

    def _start_apiserver(self, deadline):
        port = self._apiserver_port
        args = [
            self.bins["kube-apiserver"], f"--etcd-servers={self.etcd_url}",
            "--bind-address=127.0.0.1", f"--secure-port={port}", "--insecure-port=0",
            f"--tls-cert-file={self.path('server.crt')}",
            f"--tls-private-key-file={self.path('server.key')}",
            f"--client-ca-file={self.path('ca.crt')}",
            f"--token-auth-file={self.path('tokens.csv')}", "--anonymous-auth=false",
            f"--service-account-key-file={self.path('sa.pub')}",
            f"--service-account-signing-key-file={self.path('sa.key')}",
            "--service-account-issuer=https://kubernetes.default.svc",
            "--service-cluster-ip-range=10.0.0.0/24", "--authorization-mode=RBAC",
            "--endpoint-reconciler-type=none", "--enable-priority-and-fairness=false",
            f"--cert-dir={self.path('apiserver-certs')}", "--v=0",
        ]
        if self.audit:
            args += [f"--audit-policy-file={self.path('audit-policy.yaml')}",
                     f"--audit-log-path={self.path('audit.log')}", "--audit-log-format=json",
                     "--audit-log-mode=blocking", "--audit-log-maxsize=0"]
        self._spawn("kube-apiserver", args)
        self.url = f"https://127.0.0.1:{port}"
        self._ctx = ssl.create_default_context(cafile=self.path("ca.crt"))
        self._wait_ready(deadline)

    def restart_apiserver(self, timeout=60.0):
        """Stops kube-apiserver (SIGTERM) and starts it again on the same port and etcd: every
        watch breaks, and the new server's watch cache begins at the current revision, so a
        client that re-watches from an older resourceVersion gets 410 Gone and must relist."""
        p, log = self.procs.pop("kube-apiserver")
        p.terminate()
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        log.close()
        os.rename(self.path("kube-apiserver.log"), self.path(f"kube-apiserver.{time.time():.0f}.log"))
        self._start_apiserver(time.time() + timeout)

    def _spawn(self, name, argv):
        log = open(self.path(f"{name}.log"), "w")
        self.procs[name] = (subprocess.Popen(_die_with_parent(argv), stdout=log,
                                             stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL), log)

    def _wait_ready(self, deadline):
        last = None
        while time.time() < deadline:
            for name, (p, _) in self.procs.items():
                if p.poll() is not None:
                    raise RuntimeError(f"{name} exited with {p.returncode}:\n{self.log_tail(name)}")
            try:
                status, body = self.request("GET", "/readyz", ok=None)
                if status == 200:
                    return
                last = f"{status} {body!r:.300}"
            except (OSError, http.client.HTTPException) as e:
                last = repr(e)
            time.sleep(0.2)
        raise RuntimeError(f"kube-apiserver not ready: {last}\n{self.log_tail('kube-apiserver')}")

    def stop(self):
        for name in ("kube-controller-manager", "kube-apiserver", "etcd"):
            if name not in self.procs:
                continue
            p, log = self.procs[name]
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            log.close()
        self.procs = {}
        if self._own_dir and os.environ.get("TESSERA_KEEP_KUBE_DIR") is None:
            shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self, name, n=4000):
        try:
            with open(self.path(f"{name}.log"), errors="replace") as f:
                return f.read()[-n:]
        except OSError:
            return ""

    def _make_pki(self):
        d = self.dir
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
                 "ca.crt", "-days", "2", "-subj", "/CN=tessera-test-ca", cwd=d)
        with open(self.path("server.ext"), "w") as f:
            f.write("subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\n"
                    "extendedKeyUsage=serverAuth\n")
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out",
                 "server.csr", "-subj", "/CN=kube-apiserver", cwd=d)
        _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "server.ext",
                 cwd=d)
        # A client certificate for the admin (group system:masters), for certificate auth.
        with open(self.path("client.ext"), "w") as f:
            f.write("extendedKeyUsage=clientAuth\n")
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "admin-client.key", "-out",
                 "admin-client.csr", "-subj", "/O=system:masters/CN=admin-cert", cwd=d)
        _openssl("x509", "-req", "-in", "admin-client.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", "admin-client.crt", "-days", "2", "-extfile",
                 "client.ext", cwd=d)
        _openssl("genrsa", "-out", "sa.key", "2048", cwd=d)
        _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=d)

    # --- talking to it --------------------------------------------------------------------

    def request(self, method, path, body=None, user="admin", token=None,
                content_type="application/json", ok=(200, 201), timeout=30):
        """One HTTPS request as `user` (or with `token`). Returns (status, parsed body); raises
        ApiError when `ok` is given and the status is not in it."""
        u = urllib.parse.urlparse(self.url)
        conn = http.client.HTTPSConnection(u.hostname, u.port, context=self._ctx, timeout=timeout)
        headers = {"Authorization": f"Bearer {token or self.tokens[user]}",
                   "User-Agent": "tessera-test"}
        data = None
        if body is not None:
            data = body if isinstance(body, (bytes, str)) else json.dumps(body)
            headers["Content-Type"] = content_type
        try:
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
        finally:
            conn.close()
        try:
            out = json.loads(raw) if raw[:1] in (b"{", b"[") else raw.decode(errors="replace")
        except ValueError:
            out = raw.decode(errors="replace")
        if ok is not None and resp.status not in ok:
            raise ApiError(method, path, resp.status, out)
        return resp.status, out

    def get(self, path, user="admin"):
        status, obj = self.request("GET", path, user=user, ok=None)
        if status == 404:
            return None
        if status != 200:
            raise ApiError("GET", path, status, obj)
        return obj

    def merge_patch(self, path, patch, user="admin"):
        return self.request("PATCH", path, patch, user=user,
                            content_type="application/merge-patch+json")[1]

    def apply(self, obj, namespace=None, user="admin", manager="tessera-test"):
        """Server-side apply of one manifest object (force)."""
        path = object_path(obj, namespace)
        q = urllib.parse.urlencode({"fieldManager": manager, "force": "true"})
        return self.request("PATCH", f"{path}?{q}", obj, user=user,
                            content_type="application/apply-patch+yaml")[1]

    def apply_yaml(self, path_or_text, namespace=None, user="admin", transform=None):
        """Applies every document of a YAML file (or text); `transform(obj)` may edit each."""
        import yaml  # PyYAML (python3-yaml), as fake_apiserver.py

        text = path_or_text
        if os.path.exists(path_or_text):
            with open(path_or_text) as f:
                text = f.read()
        applied = []
        for doc in yaml.safe_load_all(text):
            if not doc:
                continue
            if transform is not None:
                transform(doc)
            applied.append(self.apply(doc, namespace=namespace, user=user))
        return applied

    def wait_for(self, what, fn, timeout=20.0, interval=0.1):
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            last = fn()
            if last:
                return last
            time.sleep(interval)
        raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")

    def create_namespace(self, name):
        self.request("POST", "/api/v1/namespaces",
                     {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
                     ok=(201, 409))

    def install_workspace_crds(self):
        """Our CRDs without CEL (returns the removed rules) plus the minimal Istio and KubeRay
        CRDs; waits until every one is Established."""
        removed = []

        def drop_cel(doc):
            removed.extend(strip_cel(doc))

        crd_dir = os.path.join(SOURCE_DIR, "deploy", "workspaces", "crds")
        names = []
        for f in sorted(os.listdir(crd_dir)):
            for doc in self.apply_yaml(os.path.join(crd_dir, f), transform=drop_cel):
                names.append(doc["metadata"]["name"])
        for crd in FOREIGN_CRDS:
            self.apply(crd)
            names.append(crd["metadata"]["name"])
        for name in names:
            self.wait_for(f"CRD {name} established", lambda n=name: any(
                c.get("type") == "Established" and c.get("status") == "True"
                for c in (self.get(
                    f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{n}") or {}).get(
                    "status", {}).get("conditions", [])))
        return removed

    def service_account_token(self, namespace, name, wait=True, timeout=30.0):
        """The token the controller manager minted for a ServiceAccount (its token Secret)."""

        def find():
            sa = self.get(f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}")
            for ref in (sa or {}).get("secrets", []):
                secret = self.get(f"/api/v1/namespaces/{namespace}/secrets/{ref['name']}")
                token = ((secret or {}).get("data") or {}).get("token")
                if token:
                    import base64
                    return base64.b64decode(token).decode()
            return None

        return self.wait_for(f"a token for {namespace}/{name}", find, timeout) if wait else find()

    def kubeconfig(self, path, user=None, token=None, name=None, certs=False):
        """Writes a kubeconfig for `user` (one of USERS), a raw `token`, or (certs=True) the
        admin's client certificate; returns `path`."""
        name = name or user or ("admin-certs" if certs else "token")
        if certs:
            credentials = {"client-certificate": self.path("admin-client.crt"),
                           "client-key": self.path("admin-client.key")}
        else:
            credentials = {"token": token or self.tokens[user]}
        with open(path, "w") as f:
            json.dump({
                "apiVersion": "v1", "kind": "Config", "current-context": name,
                "clusters": [{"name": "test", "cluster": {
                    "server": self.url, "certificate-authority": self.path("ca.crt")}}],
                "users": [{"name": name, "user": credentials}],
                "contexts": [{"name": name, "context": {"cluster": "test", "user": name}}],
            }, f)
        return path

    def audit_events(self):
        """Every audit event so far (ResponseComplete stage): dicts with user, verb, uri, code,
        resource, namespace, name, subresource, userAgent, time."""
        events = []
        try:
            with open(self.path("audit.log")) as f:
                lines = f.readlines()
        except FileNotFoundError:
            return events
        for line in lines:
            try:
                e = json.loads(line)
            except ValueError:
                continue  # a line still being written
            if e.get("stage") != "ResponseComplete":
                continue
            ref = e.get("objectRef") or {}
            events.append({
                "user": e.get("user", {}).get("username", ""),
                "verb": e.get("verb", ""), "uri": e.get("requestURI", ""),
                "code": (e.get("responseStatus") or {}).get("code", 0),
                "resource": ref.get("resource", ""), "subresource": ref.get("subresource", ""),
                "namespace": ref.get("namespace", ""), "name": ref.get("name", ""),
                "userAgent": e.get("userAgent", ""), "time": e.get("stageTimestamp", ""),
            })
        return events


def main():
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", help="work directory (default: a new temporary one, removed)")
    parser.add_argument("--crds", action="store_true",
                        help="install the workspace CRDs (without CEL) and the Istio/KubeRay ones")
    args = parser.parse_args()
    try:
        cluster = Cluster(args.dir, crds=args.crds)
    except Missing as e:
        print(f"skip: {e}", flush=True)
        return SKIP
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    with cluster:
        contexts = {}
        for user in USERS:
            contexts[user] = cluster.kubeconfig(cluster.path(f"{user}.kubeconfig"), user)
        contexts["admin-certs"] = cluster.kubeconfig(cluster.path("admin-certs.kubeconfig"),
                                                     certs=True)
        print("ready " + json.dumps({
            "url": cluster.url, "dir": cluster.dir, "ca": cluster.path("ca.crt"),
            "kubeconfigs": contexts, "tokens": cluster.tokens, "etcd": cluster.etcd_url}),
              flush=True)
        # Commands on stdin, one per line, until it closes (the parent is done or gone) or a
        # signal: `restart-apiserver` answers `restarted` once the new server is ready.
        import select
        pending = b""
        while not stop:
            r, _, _ = select.select([sys.stdin], [], [], 0.2)
            if not r:
                continue
            chunk = os.read(sys.stdin.fileno(), 4096)
            if not chunk:
                break
            pending += chunk
            while b"\n" in pending:
                command, pending = pending.split(b"\n", 1)
                if command.strip() == b"restart-apiserver":
                    cluster.restart_apiserver()
                    print("restarted", flush=True)
                elif command.strip():
                    print(f"unknown command {command!r}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
