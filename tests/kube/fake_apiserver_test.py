#!/usr/bin/env python3
"""Tests of tests/kube/fake_apiserver.py, over real HTTP(S) against server subprocesses.

Every strict behaviour the operator relies on has a test here that fails if the behaviour is
wrong: resourceVersion/generation bookkeeping, preconditions and their 409s, status
subresources, the patch flavours, server-side apply ownership (conflicts, force, removal of
dropped fields, shared ownership, Update managers), finalizers and garbage collection, list
selectors and pagination, watch semantics (history replay, 410 as an ERROR event, bookmarks,
timeouts, selector transitions, closing), auth (token, client certificates), TLS material and
the kubeconfig, and the /fake/ control endpoints.

Usage: fake_apiserver_test.py [unittest options]
"""
import http.client
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import uuid
from collections import namedtuple
from urllib.parse import urlencode

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(HERE, "fake_apiserver.py")
TOKEN = "test-token-123"
UA = "tessera-test/1.0 (linux)"

WS_API = "workspaces.tessera.dev/v1alpha1"
Resp = namedtuple("Resp", "status body headers")


class ServerProcess:
    """fake_apiserver.py as a subprocess on a free port."""

    def __init__(self, *args: str):
        self.proc = subprocess.Popen([sys.executable, SERVER, "--port", "0", *args],
                                     stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        m = re.fullmatch(r"listening on (https?)://127\.0\.0\.1:(\d+)\n", line)
        if not m:
            self.proc.kill()
            raise RuntimeError(f"unexpected first line from the server: {line!r}")
        self.scheme, self.port = m.group(1), int(m.group(2))

    def stop(self) -> int:
        self.proc.terminate()
        try:
            return self.proc.wait(timeout=10)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.stdout.close()


class Client:
    """One keep-alive connection; every request goes over it."""

    def __init__(self, port: int, token: str | None = TOKEN, context: ssl.SSLContext | None = None,
                 host: str = "127.0.0.1", user_agent: str = UA):
        self.port, self.token, self.context, self.host, self.ua = port, token, context, host, user_agent
        self.conn = self._connect()

    def _connect(self) -> http.client.HTTPConnection:
        if self.context is not None:
            return http.client.HTTPSConnection(self.host, self.port, timeout=10,
                                               context=self.context)
        return http.client.HTTPConnection(self.host, self.port, timeout=10)

    def call(self, method: str, path: str, body=None, ctype: str = "application/json",
             params: dict | None = None, raw: bytes | str | None = None,
             headers: dict | None = None) -> Resp:
        if params:
            path += "?" + urlencode(params)
        hdrs = {"User-Agent": self.ua}
        if self.token is not None:
            hdrs["Authorization"] = f"Bearer {self.token}"
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        if data is not None:
            hdrs["Content-Type"] = ctype
        hdrs.update(headers or {})
        self.conn.request(method, path, body=data, headers=hdrs)
        resp = self.conn.getresponse()
        payload = resp.read()
        try:
            parsed = json.loads(payload)
        except ValueError:
            parsed = payload.decode()
        return Resp(resp.status, parsed, resp.headers)

    def get(self, path, **kw):
        return self.call("GET", path, **kw)

    def post(self, path, body, **kw):
        return self.call("POST", path, body, **kw)

    def put(self, path, body, **kw):
        return self.call("PUT", path, body, **kw)

    def delete(self, path, body=None, **kw):
        return self.call("DELETE", path, body, **kw)

    def merge(self, path, patch, **kw):
        return self.call("PATCH", path, patch, ctype="application/merge-patch+json", **kw)

    def apply(self, path, obj, manager, force=None, raw=None, **kw):
        params = {"fieldManager": manager}
        if force is not None:
            params["force"] = "true" if force else "false"
        return self.call("PATCH", path, obj, ctype="application/apply-patch+yaml",
                         params=params, raw=raw, **kw)

    def close(self):
        self.conn.close()


class Watch:
    """A watch stream read line by line (http.client undoes the chunked encoding)."""

    def __init__(self, port: int, path: str, params: dict, token: str | None = TOKEN):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        params = dict(params, watch="true")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.conn.request("GET", path + "?" + urlencode(params), headers=headers)
        self.resp = self.conn.getresponse()

    def next(self, timeout: float = 5.0) -> dict | None:
        """The next event; None at the end of the stream; raises socket.timeout if none comes."""
        self.conn.sock.settimeout(timeout)
        line = self.resp.readline()
        return json.loads(line) if line else None

    def next_non_bookmark(self, timeout: float = 5.0) -> dict | None:
        while True:
            ev = self.next(timeout)
            if ev is None or ev["type"] != "BOOKMARK":
                return ev

    def close(self):
        self.conn.close()


def workspace(name: str, owner: str = "alice", **extra) -> dict:
    obj = {"apiVersion": WS_API, "kind": "Workspace", "metadata": {"name": name},
           "spec": {"owner": owner}}
    obj.update(extra)
    return obj


def configmap(name: str, data: dict | None = None, **md) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, **md},
            "data": data or {"k": "v"}}


def deployment(name: str, replicas: int = 1, image: str = "app:1") -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "app", "image": image}]}}}}


def ws_path(ns: str, name: str = "", sub: str = "") -> str:
    p = f"/apis/{WS_API}/namespaces/{ns}/workspaces"
    return p + (f"/{name}" if name else "") + (f"/{sub}" if sub else "")


def cm_path(ns: str, name: str = "") -> str:
    return f"/api/v1/namespaces/{ns}/configmaps" + (f"/{name}" if name else "")


def dep_path(ns: str, name: str = "", sub: str = "") -> str:
    p = f"/apis/apps/v1/namespaces/{ns}/deployments"
    return p + (f"/{name}" if name else "") + (f"/{sub}" if sub else "")


def managed(obj: dict, manager: str, operation: str = "Apply", subresource: str = "") -> dict | None:
    for e in obj["metadata"].get("managedFields", []):
        if (e["manager"], e["operation"], e.get("subresource", "")) == (manager, operation, subresource):
            return e
    return None


class ApiTestCase(unittest.TestCase):
    server_args: tuple[str, ...] = ("--token", TOKEN, "--bookmark-interval", "0.2")

    @classmethod
    def setUpClass(cls):
        cls.server = ServerProcess(*cls.server_args)
        cls.port = cls.server.port
        cls._ns_counter = 0

    @classmethod
    def tearDownClass(cls):
        code = cls.server.stop()
        assert code == 0, f"server exited with {code} on SIGTERM"

    def setUp(self):
        self.c = Client(self.port)

    def tearDown(self):
        self.c.close()

    def ok(self, resp: Resp, code: int = 200) -> dict:
        self.assertEqual(resp.status, code, resp.body)
        return resp.body

    def status_error(self, resp: Resp, code: int, reason: str) -> dict:
        self.assertEqual(resp.status, code, resp.body)
        body = resp.body
        self.assertEqual(body["kind"], "Status")
        self.assertEqual(body["apiVersion"], "v1")
        self.assertEqual(body["status"], "Failure")
        self.assertEqual(body["reason"], reason)
        self.assertEqual(body["code"], code)
        self.assertIn("message", body)
        return body

    def client(self, **kw) -> Client:
        c = Client(self.port, **kw)
        self.addCleanup(c.close)
        return c

    def namespace(self) -> str:
        type(self)._ns_counter += 1
        name = f"t{type(self)._ns_counter}-{uuid.uuid4().hex[:6]}"
        self.ok(self.c.post("/api/v1/namespaces",
                            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}), 201)
        return name

    def current_rv(self) -> int:
        return int(self.ok(self.c.get("/api/v1/namespaces"))["metadata"]["resourceVersion"])


class BasicsTest(ApiTestCase):
    def test_health_version_and_discovery(self):
        anon = self.client(token=None)
        r = anon.get("/healthz")
        self.assertEqual((r.status, r.body), (200, "ok"))
        self.assertEqual(anon.get("/version").body["gitVersion"], "v1.32.0")
        wrong = self.client(token="wrong")
        self.status_error(wrong.get("/healthz"), 401, "Unauthorized")
        groups = {g["name"] for g in self.ok(self.c.get("/apis"))["groups"]}
        self.assertTrue({"apps", "coordination.k8s.io", "workspaces.tessera.dev", "ray.io"} <= groups)
        names = {r["name"] for r in self.ok(self.c.get(f"/apis/{WS_API}"))["resources"]}
        self.assertEqual(names, {"workspaces", "workspaces/status", "workspacetemplates"})
        core = {r["name"] for r in self.ok(self.c.get("/api/v1"))["resources"]}
        self.assertIn("pods/status", core)
        self.assertNotIn("configmaps/status", core)

    def test_token_auth(self):
        for token in (None, "wrong"):
            body = self.status_error(self.client(token=token).get("/api/v1/namespaces"),
                                     401, "Unauthorized")
            self.assertEqual(body["message"], "Unauthorized")
            self.status_error(self.client(token=token).get("/fake/requests"), 401,
                              "Unauthorized")
        self.ok(self.c.get("/api/v1/namespaces"))

    def test_unknown_resources_and_subresources_are_404(self):
        ns = self.namespace()
        for path in ("/apis/example.com/v1/namespaces/default/things",
                     "/api/v1/namespaces/default/widgets",
                     "/apis/apps/v2/namespaces/default/deployments",
                     cm_path(ns, "x") + "/status",
                     f"/apis/{WS_API}/namespaces/{ns}/workspacetemplates/x/status",
                     ws_path(ns, "x", "scale")):
            body = self.status_error(self.c.get(path), 404, "NotFound")
            self.assertEqual(body["message"], "the server could not find the requested resource")
        body = self.status_error(self.c.get(ws_path(ns, "missing")), 404, "NotFound")
        self.assertEqual(body["message"], 'workspaces.workspaces.tessera.dev "missing" not found')
        self.assertEqual(body["details"], {"name": "missing", "group": "workspaces.tessera.dev",
                                           "kind": "workspaces"})
        body = self.status_error(self.c.get(cm_path(ns, "missing")), 404, "NotFound")
        self.assertEqual(body["message"], 'configmaps "missing" not found')

    def test_method_not_allowed(self):
        ns = self.namespace()
        self.ok(self.c.post(ws_path(ns), workspace("w")), 201)
        self.status_error(self.c.post(ws_path(ns, "w"), workspace("w")), 405, "MethodNotAllowed")
        self.status_error(self.c.put(ws_path(ns), workspace("w")), 405, "MethodNotAllowed")
        self.status_error(self.c.delete(ws_path(ns, "w", "status")), 405, "MethodNotAllowed")
        self.status_error(self.c.post(f"/apis/{WS_API}/workspaces", workspace("w")), 405,
                          "MethodNotAllowed")

    def test_keep_alive_yaml_and_chunked_request_bodies(self):
        ns = self.namespace()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        hdrs = {"Authorization": f"Bearer {TOKEN}"}
        conn.request("GET", "/healthz", headers=hdrs)
        first = conn.getresponse()
        first.read()
        sock = conn.sock
        body = yaml.safe_dump(configmap("from-yaml")).encode()
        conn.request("POST", cm_path(ns), body=iter([body[:10], body[10:]]),
                     headers={**hdrs, "Content-Type": "application/yaml"}, encode_chunked=True)
        created = conn.getresponse()
        self.assertEqual(created.status, 201, created.read())
        created.read()
        self.assertIs(conn.sock, sock, "the server closed a keep-alive connection")
        self.assertEqual(self.ok(self.c.get(cm_path(ns, "from-yaml")))["data"], {"k": "v"})
        conn.close()


class CreateTest(ApiTestCase):
    def test_create_sets_server_metadata(self):
        ns = self.namespace()
        before = self.current_rv()
        obj = self.ok(self.c.post(ws_path(ns), workspace("w", status={"phase": "Ready"},
                                                         metadata={"name": "w", "uid": "mine",
                                                                   "generation": 7})), 201)
        md = obj["metadata"]
        self.assertRegex(md["uid"], r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
        self.assertNotEqual(md["uid"], "mine")
        self.assertRegex(md["creationTimestamp"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertEqual(md["generation"], 1)
        self.assertEqual(md["namespace"], ns)
        self.assertIsInstance(md["resourceVersion"], str)
        self.assertEqual(int(md["resourceVersion"]), before + 1)
        self.assertNotIn("status", obj, "status is dropped on create when it is a subresource")
        entry = managed(obj, "tessera-test", "Update")
        self.assertIsNotNone(entry, md["managedFields"])
        self.assertEqual(entry["fieldsType"], "FieldsV1")
        self.assertEqual(entry["apiVersion"], WS_API)
        self.assertEqual(entry["fieldsV1"], {"f:spec": {"f:owner": {}}})
        self.assertEqual(self.ok(self.c.get(ws_path(ns, "w"))), obj)
        named = self.ok(self.c.post(ws_path(ns), workspace("x"), params={"fieldManager": "op"}), 201)
        self.assertIsNotNone(managed(named, "op", "Update"))

    def test_create_errors(self):
        ns = self.namespace()
        self.ok(self.c.post(ws_path(ns), workspace("w")), 201)
        body = self.status_error(self.c.post(ws_path(ns), workspace("w")), 409, "AlreadyExists")
        self.assertEqual(body["message"], 'workspaces.workspaces.tessera.dev "w" already exists')
        body = self.status_error(self.c.post(ws_path(ns), workspace("Bad_Name")), 422, "Invalid")
        self.assertTrue(body["message"].startswith(
            'Workspace.workspaces.tessera.dev "Bad_Name" is invalid: metadata.name: Invalid value: '
            '"Bad_Name": a lowercase RFC 1123 subdomain'), body["message"])
        self.assertEqual(body["details"]["causes"][0]["field"], "metadata.name")
        body = self.status_error(self.c.post(ws_path(ns), workspace("")), 422, "Invalid")
        self.assertIn("name or generateName is required", body["message"])
        rv = workspace("r")
        rv["metadata"]["resourceVersion"] = "5"
        body = self.status_error(self.c.post(ws_path(ns), rv), 422, "Invalid")
        self.assertIn("resourceVersion should not be set on objects to be created", body["message"])
        self.status_error(self.c.post(ws_path(ns), dict(workspace("k"), kind="Other")), 400,
                          "BadRequest")
        self.status_error(self.c.post(ws_path(ns), dict(workspace("k"), apiVersion="v1")), 400,
                          "BadRequest")
        self.status_error(self.c.post(ws_path(ns), {"metadata": {"name": "k"}}), 400, "BadRequest")
        wrong_ns = workspace("k")
        wrong_ns["metadata"]["namespace"] = "elsewhere"
        self.status_error(self.c.post(ws_path(ns), wrong_ns), 400, "BadRequest")
        body = self.status_error(self.c.post(ws_path("no-such-ns"), workspace("k")), 404,
                                 "NotFound")
        self.assertEqual(body["message"], 'namespaces "no-such-ns" not found')
        bad_label = workspace("l")
        bad_label["metadata"]["labels"] = {"app": "not valid!"}
        self.status_error(self.c.post(ws_path(ns), bad_label), 422, "Invalid")
        self.status_error(self.c.post(ws_path(ns), None, raw="{not json"), 400, "BadRequest")
        svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "1svc"}, "spec": {}}
        self.status_error(self.c.post(f"/api/v1/namespaces/{ns}/services", svc), 422, "Invalid")
        self.status_error(self.c.post(ws_path(ns), workspace("k"), ctype="text/plain"), 415,
                          "UnsupportedMediaType")
        self.status_error(self.c.get(ws_path(ns, "k")), 404, "NotFound")

    def test_generate_name(self):
        ns = self.namespace()
        obj = workspace("")
        obj["metadata"] = {"generateName": "ws-"}
        names = {self.ok(self.c.post(ws_path(ns), obj), 201)["metadata"]["name"] for _ in range(3)}
        self.assertEqual(len(names), 3)
        for n in names:
            self.assertRegex(n, r"^ws-[a-z0-9]{5}$")

    def test_resource_versions_are_global_and_increasing(self):
        ns = self.namespace()
        writes = [(self.c.post(ws_path(ns), workspace("a")), 201),
                  (self.c.post(cm_path(ns), configmap("b")), 201),
                  (self.c.merge(ws_path(ns, "a"), {"spec": {"owner": "bob"}}), 200),
                  (self.c.post(dep_path(ns), deployment("d")), 201)]
        rvs = [int(self.ok(r, code)["metadata"]["resourceVersion"]) for r, code in writes]
        self.assertEqual(rvs, sorted(rvs))
        self.assertEqual(len(set(rvs)), 4)
        self.assertEqual(self.current_rv(), rvs[-1])
        listed = self.ok(self.c.get(ws_path(ns)))
        self.assertEqual(listed["metadata"]["resourceVersion"], str(rvs[-1]))


class UpdateTest(ApiTestCase):
    def test_put_resource_version_precondition(self):
        ns = self.namespace()
        obj = self.ok(self.c.post(ws_path(ns), workspace("w")), 201)
        stale = json.loads(json.dumps(obj))
        obj["spec"]["owner"] = "bob"
        updated = self.ok(self.c.put(ws_path(ns, "w"), obj))
        self.assertGreater(int(updated["metadata"]["resourceVersion"]),
                           int(obj["metadata"]["resourceVersion"]))
        stale["spec"]["owner"] = "carol"
        body = self.status_error(self.c.put(ws_path(ns, "w"), stale), 409, "Conflict")
        self.assertEqual(body["message"],
                         'Operation cannot be fulfilled on workspaces.workspaces.tessera.dev "w": '
                         "the object has been modified; please apply your changes to the latest "
                         "version and try again")
        self.assertEqual(body["details"], {"name": "w", "group": "workspaces.tessera.dev",
                                           "kind": "workspaces"})
        del stale["metadata"]["resourceVersion"]
        self.assertEqual(self.ok(self.c.put(ws_path(ns, "w"), stale))["spec"]["owner"], "carol")
        self.status_error(self.c.put(ws_path(ns, "nope"), workspace("nope")), 404, "NotFound")
        self.status_error(self.c.put(ws_path(ns, "w"), workspace("other")), 400, "BadRequest")
        wrong_uid = self.ok(self.c.get(ws_path(ns, "w")))
        wrong_uid["metadata"]["uid"] = str(uuid.uuid4())
        self.status_error(self.c.put(ws_path(ns, "w"), wrong_uid), 409, "Conflict")

    def test_generation_and_status_subresource(self):
        ns = self.namespace()
        obj = self.ok(self.c.post(ws_path(ns), workspace("w")), 201)
        obj["status"] = {"phase": "Ready"}
        st = self.ok(self.c.put(ws_path(ns, "w", "status"), obj))
        self.assertEqual(st["status"], {"phase": "Ready"})
        self.assertEqual(st["metadata"]["generation"], 1, "a status write bumped generation")
        st["spec"]["owner"] = "ignored-on-status"
        st["metadata"]["labels"] = {"ignored": "yes"}
        st["status"]["phase"] = "Stopping"
        st2 = self.ok(self.c.put(ws_path(ns, "w", "status"), st))
        self.assertEqual(st2["spec"]["owner"], "alice")
        self.assertNotIn("labels", st2["metadata"])
        self.assertEqual(st2["status"]["phase"], "Stopping")
        self.assertEqual(st2["metadata"]["generation"], 1)
        self.status_error(self.c.put(ws_path(ns, "w", "status"), st), 409, "Conflict")
        # The main resource ignores status and bumps generation only for spec changes.
        st2["status"] = {"phase": "Failed"}
        st2["spec"]["owner"] = "bob"
        main = self.ok(self.c.put(ws_path(ns, "w"), st2))
        self.assertEqual(main["status"], {"phase": "Stopping"})
        self.assertEqual(main["metadata"]["generation"], 2)
        main["metadata"]["labels"] = {"team": "ml"}
        labelled = self.ok(self.c.put(ws_path(ns, "w"), main))
        self.assertEqual(labelled["metadata"]["generation"], 2, "a metadata change bumped generation")
        self.assertNotEqual(labelled["metadata"]["resourceVersion"], main["metadata"]["resourceVersion"])
        patched = self.ok(self.c.merge(ws_path(ns, "w", "status"), {"status": {"url": "http://x"}}))
        self.assertEqual(patched["status"], {"phase": "Stopping", "url": "http://x"})
        self.assertEqual(patched["metadata"]["generation"], 2)
        status_entry = managed(patched, "tessera-test", "Update", "status")
        self.assertIsNotNone(status_entry)
        self.assertEqual(status_entry["fieldsV1"], {"f:status": {"f:phase": {}, "f:url": {}}})
        # A kind without a status subresource stores status like any field.
        cm = self.ok(self.c.post(cm_path(ns), configmap("c")), 201)
        self.status_error(self.c.put(cm_path(ns, "c") + "/status", cm), 404, "NotFound")

    def test_noop_writes_change_nothing(self):
        ns = self.namespace()
        obj = self.ok(self.c.post(ws_path(ns), workspace("w")), 201)
        w = Watch(self.port, ws_path(ns), {"resourceVersion": obj["metadata"]["resourceVersion"]})
        same = self.ok(self.c.put(ws_path(ns, "w"), obj))
        self.assertEqual(same["metadata"]["resourceVersion"], obj["metadata"]["resourceVersion"])
        self.assertEqual(same, obj)
        self.ok(self.c.merge(ws_path(ns, "w"), {"spec": {"owner": "alice"}}))
        changed = self.ok(self.c.merge(ws_path(ns, "w"), {"spec": {"owner": "bob"}}))
        ev = w.next()
        self.assertEqual(ev["type"], "MODIFIED")
        self.assertEqual(ev["object"]["metadata"]["resourceVersion"],
                         changed["metadata"]["resourceVersion"])
        w.close()


class PatchTest(ApiTestCase):
    def test_merge_patch(self):
        ns = self.namespace()
        obj = self.ok(self.c.post(ws_path(ns), workspace("w", metadata={
            "name": "w", "labels": {"a": "1", "b": "2"}})), 201)
        patched = self.ok(self.c.merge(ws_path(ns, "w"), {
            "metadata": {"labels": {"a": None, "c": "3"}}, "spec": {"image": "x"}}))
        self.assertEqual(patched["metadata"]["labels"], {"b": "2", "c": "3"})
        self.assertEqual(patched["spec"], {"owner": "alice", "image": "x"})
        self.assertEqual(patched["metadata"]["generation"], 2)
        body = self.status_error(self.c.merge(ws_path(ns, "w"), {
            "metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]},
            "spec": {"owner": "z"}}), 409, "Conflict")
        self.assertIn("the object has been modified", body["message"])
        ok = self.ok(self.c.merge(ws_path(ns, "w"), {
            "metadata": {"resourceVersion": patched["metadata"]["resourceVersion"]},
            "spec": {"owner": "z"}}))
        self.assertEqual(ok["spec"]["owner"], "z")
        self.status_error(self.c.merge(ws_path(ns, "nope"), {"spec": {}}), 404, "NotFound")
        self.status_error(self.c.call("PATCH", ws_path(ns, "w"), {"spec": {}}, ctype="application/json"),
                          415, "UnsupportedMediaType")
        self.status_error(self.c.merge(ws_path(ns, "w"), {"kind": "Other"}), 400, "BadRequest")
        body = self.status_error(self.c.merge(ws_path(ns, "w"), {"spec": {}},
                                              params={"force": "true"}), 422, "Invalid")
        self.assertIn("force: Forbidden: may not be specified for non-apply patch", body["message"])

    def test_json_patch(self):
        ns = self.namespace()
        self.ok(self.c.post(cm_path(ns), configmap("c", {"a": "1", "b": "2"})), 201)

        def jp(ops):
            return self.c.call("PATCH", cm_path(ns, "c"), ops, ctype="application/json-patch+json")
        out = self.ok(jp([{"op": "add", "path": "/data/c", "value": "3"},
                          {"op": "replace", "path": "/data/a", "value": "one"},
                          {"op": "remove", "path": "/data/b"},
                          {"op": "test", "path": "/data/c", "value": "3"},
                          {"op": "copy", "from": "/data/c", "path": "/data/d"},
                          {"op": "move", "from": "/data/d", "path": "/data/e~1f"},
                          {"op": "add", "path": "/metadata/finalizers", "value": ["x.io/a"]},
                          {"op": "add", "path": "/metadata/finalizers/-", "value": "x.io/b"}]))
        self.assertEqual(out["data"], {"a": "one", "c": "3", "e/f": "3"})
        self.assertEqual(out["metadata"]["finalizers"], ["x.io/a", "x.io/b"])
        body = self.status_error(jp([{"op": "replace", "path": "/data/a", "value": "two"},
                                     {"op": "test", "path": "/data/a", "value": "nope"}]), 422, "Invalid")
        self.assertIn("test", body["message"])
        self.assertEqual(self.ok(self.c.get(cm_path(ns, "c")))["data"]["a"], "one")
        self.status_error(jp([{"op": "remove", "path": "/data/missing"}]), 422, "Invalid")
        self.status_error(jp({"op": "add"}), 400, "BadRequest")
        self.status_error(jp([{"op": "frobnicate", "path": "/data"}]), 400, "BadRequest")
        rv = out["metadata"]["resourceVersion"]
        self.status_error(jp([{"op": "replace", "path": "/metadata/resourceVersion", "value": "1"},
                              {"op": "replace", "path": "/data/a", "value": "x"}]), 409, "Conflict")
        self.ok(jp([{"op": "test", "path": "/metadata/resourceVersion", "value": rv},
                    {"op": "replace", "path": "/data/a", "value": "x"}]))

    def test_strategic_merge_patch(self):
        ns = self.namespace()
        dep = deployment("d")
        dep["spec"]["template"]["spec"]["containers"].append({"name": "side", "image": "side:1"})
        dep["metadata"]["finalizers"] = ["x.io/a"]
        self.ok(self.c.post(dep_path(ns), dep), 201)
        out = self.ok(self.c.call("PATCH", dep_path(ns, "d"), {
            "metadata": {"finalizers": ["x.io/b"]},
            "spec": {"template": {"spec": {"containers": [
                {"name": "app", "image": "app:2"},
                {"name": "side", "$patch": "delete"},
                {"name": "new", "image": "new:1"}]}}}},
            ctype="application/strategic-merge-patch+json"))
        self.assertEqual(out["spec"]["template"]["spec"]["containers"],
                         [{"name": "app", "image": "app:2"}, {"name": "new", "image": "new:1"}])
        self.assertEqual(out["metadata"]["finalizers"], ["x.io/a", "x.io/b"])
        self.ok(self.c.post(ws_path(ns), workspace("w")), 201)
        self.status_error(self.c.call("PATCH", ws_path(ns, "w"), {"spec": {}},
                                      ctype="application/strategic-merge-patch+json"),
                          415, "UnsupportedMediaType")


class ApplyTest(ApiTestCase):
    def test_apply_requires_field_manager(self):
        ns = self.namespace()
        r = self.c.call("PATCH", ws_path(ns, "w"), workspace("w"), ctype="application/apply-patch+yaml")
        body = self.status_error(r, 422, "Invalid")
        self.assertEqual(body["message"], 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: '
                                          "Required value: is required for apply patch")
        self.status_error(self.c.get(ws_path(ns, "w")), 404, "NotFound")

    def test_apply_creates_with_fieldsv1(self):
        ns = self.namespace()
        text = f"""
apiVersion: {WS_API}
kind: Workspace
metadata:
  name: w
  labels: {{app: demo}}
  finalizers: [workspaces.tessera.dev/cleanup]
spec:
  owner: alice
  args: [a, b]
  containers:
  - name: main
    image: img:1
    env:
    - {{name: A, value: "1"}}
    ports:
    - {{containerPort: 8888}}
status:
  phase: Ready
"""
        obj = self.ok(self.c.apply(ws_path(ns, "w"), None, "tessera-operator", raw=text), 201)
        self.assertEqual(obj["metadata"]["generation"], 1)
        self.assertEqual(obj["metadata"]["finalizers"], ["workspaces.tessera.dev/cleanup"])
        self.assertNotIn("status", obj)
        self.assertEqual(len(obj["metadata"]["managedFields"]), 1)
        entry = managed(obj, "tessera-operator")
        self.assertEqual(entry["apiVersion"], WS_API)
        self.assertEqual(entry["fieldsV1"], {
            "f:metadata": {"f:finalizers": {'v:"workspaces.tessera.dev/cleanup"': {}},
                           "f:labels": {"f:app": {}}},
            "f:spec": {"f:args": {}, "f:owner": {}, "f:containers": {'k:{"name":"main"}': {
                ".": {}, "f:name": {}, "f:image": {},
                "f:env": {'k:{"name":"A"}': {".": {}, "f:name": {}, "f:value": {}}},
                "f:ports": {'k:{"containerPort":8888,"protocol":"TCP"}': {
                    ".": {}, "f:containerPort": {}}}}}}})
        again = self.ok(self.c.apply(ws_path(ns, "w"), None, "tessera-operator", raw=text))
        self.assertEqual(again["metadata"]["resourceVersion"], obj["metadata"]["resourceVersion"],
                         "re-applying the same configuration must be a no-op")

    def test_apply_conflict_and_force(self):
        ns = self.namespace()
        self.ok(self.c.apply(dep_path(ns, "d"), deployment("d", replicas=1), "a"), 201)
        body = self.status_error(self.c.apply(dep_path(ns, "d"), deployment("d", replicas=2), "b"),
                                 409, "Conflict")
        self.assertEqual(body["message"],
                         'Apply failed with 1 conflict: conflict with "a": .spec.replicas')
        self.assertEqual(body["details"]["causes"], [{"reason": "FieldManagerConflict",
                                                      "message": 'conflict with "a"',
                                                      "field": ".spec.replicas"}])
        self.status_error(self.c.apply(dep_path(ns, "d"), deployment("d", replicas=2), "b",
                                       force=False), 409, "Conflict")
        out = self.ok(self.c.apply(dep_path(ns, "d"), deployment("d", replicas=2), "b", force=True))
        self.assertEqual(out["spec"]["replicas"], 2)
        self.assertIn("f:replicas", managed(out, "b")["fieldsV1"]["f:spec"])
        self.assertNotIn("f:replicas", managed(out, "a")["fieldsV1"]["f:spec"])
        self.assertIn("f:selector", managed(out, "a")["fieldsV1"]["f:spec"], "shared fields stay")
        # a and b share the image (both applied app:1); b alone owns replicas now.
        body = self.status_error(self.c.apply(dep_path(ns, "d"), deployment("d", 3, "app:9"), "c"),
                                 409, "Conflict")
        self.assertEqual(body["message"],
                         'Apply failed with 3 conflicts: conflicts with "a":\n'
                         '- .spec.template.spec.containers[name="app"].image\n'
                         'conflicts with "b":\n- .spec.replicas\n'
                         '- .spec.template.spec.containers[name="app"].image')

    def test_apply_conflict_with_update_manager(self):
        ns = self.namespace()
        self.ok(self.c.apply(dep_path(ns, "d"), deployment("d", replicas=1), "op"), 201)
        edited = self.ok(self.c.merge(dep_path(ns, "d"), {"spec": {"replicas": 5}},
                                      params={"fieldManager": "kubectl-edit"}))
        self.assertEqual(managed(edited, "kubectl-edit", "Update")["fieldsV1"],
                         {"f:spec": {"f:replicas": {}}})
        self.assertNotIn("f:replicas", managed(edited, "op")["fieldsV1"]["f:spec"],
                         "an Update must take ownership of the fields it changed")
        body = self.status_error(self.c.apply(dep_path(ns, "d"), deployment("d", replicas=1), "op"),
                                 409, "Conflict")
        self.assertEqual(body["message"], 'Apply failed with 1 conflict: conflict with '
                                          '"kubectl-edit" using apps/v1: .spec.replicas')
        # Applying the live value is not a conflict: it shares ownership.
        shared = self.ok(self.c.apply(dep_path(ns, "d"), deployment("d", replicas=5), "op"))
        self.assertIn("f:replicas", managed(shared, "op")["fieldsV1"]["f:spec"])
        self.assertIn("f:replicas", managed(shared, "kubectl-edit", "Update")["fieldsV1"]["f:spec"])

    def test_apply_removes_fields_it_no_longer_applies(self):
        ns = self.namespace()
        full = workspace("w", metadata={"name": "w", "labels": {"x": "1", "y": "2"}})
        full["spec"].update({"image": "i", "containers": [{"name": "c1", "image": "1"},
                                                          {"name": "c2", "image": "2"}]})
        self.ok(self.c.apply(ws_path(ns, "w"), full, "op"), 201)
        self.ok(self.c.merge(ws_path(ns, "w"), {"metadata": {"labels": {"z": "3"}}}))
        slim = workspace("w", metadata={"name": "w", "labels": {"x": "1"}})
        slim["spec"]["containers"] = [{"name": "c1", "image": "1"}]
        out = self.ok(self.c.apply(ws_path(ns, "w"), slim, "op"))
        self.assertEqual(out["metadata"]["labels"], {"x": "1", "z": "3"},
                         "only the applier's dropped label goes; another manager's stays")
        self.assertEqual(out["spec"], {"owner": "alice", "containers": [{"name": "c1", "image": "1"}]})
        self.assertEqual(out["metadata"]["generation"], 2)
        # Shared ownership: a field another manager also applied survives until both drop it.
        self.ok(self.c.apply(ws_path(ns, "w"), workspace("w", owner="alice"), "other"))
        out = self.ok(self.c.apply(ws_path(ns, "w"), {"apiVersion": WS_API, "kind": "Workspace",
                                                      "metadata": {"name": "w"}}, "op"))
        self.assertEqual(out["spec"], {"owner": "alice"})
        out = self.ok(self.c.apply(ws_path(ns, "w"), {"apiVersion": WS_API, "kind": "Workspace",
                                                      "metadata": {"name": "w"}}, "other"))
        self.assertNotIn("spec", out)
        self.assertIsNone(managed(out, "other"), "empty managedFields entries are dropped")

    def test_apply_status_subresource(self):
        ns = self.namespace()
        self.ok(self.c.apply(ws_path(ns, "w"), workspace("w", status={"phase": "Ready"}), "op"), 201)
        self.assertNotIn("status", self.ok(self.c.get(ws_path(ns, "w"))))
        st = {"apiVersion": WS_API, "kind": "Workspace", "metadata": {"name": "w"},
              "spec": {"owner": "ignored"},
              "status": {"phase": "Ready", "conditions": [{"type": "Ready", "status": "True"}]}}
        out = self.ok(self.c.apply(ws_path(ns, "w", "status"), st, "op-status"))
        self.assertEqual(out["spec"], {"owner": "alice"})
        self.assertEqual(out["status"]["phase"], "Ready")
        self.assertEqual(out["metadata"]["generation"], 1)
        entry = managed(out, "op-status", "Apply", "status")
        self.assertEqual(entry["fieldsV1"], {"f:status": {"f:phase": {}, "f:conditions": {
            'k:{"type":"Ready"}': {".": {}, "f:type": {}, "f:status": {}}}}})
        st["status"] = {"phase": "Ready"}
        out = self.ok(self.c.apply(ws_path(ns, "w", "status"), st, "op-status"))
        self.assertEqual(out["status"], {"phase": "Ready"})
        st["metadata"]["name"] = "nope"
        self.status_error(self.c.apply(ws_path(ns, "nope", "status"), st, "op-status"), 404,
                          "NotFound")

    def test_apply_rejects_mismatched_identity(self):
        ns = self.namespace()
        self.status_error(self.c.apply(ws_path(ns, "w"), workspace("other"), "op"), 400, "BadRequest")
        wrong = workspace("w")
        wrong["metadata"]["namespace"] = "elsewhere"
        self.status_error(self.c.apply(ws_path(ns, "w"), wrong, "op"), 400, "BadRequest")
        self.status_error(self.c.apply(ws_path(ns, "w"), dict(workspace("w"), kind="X"), "op"), 400,
                          "BadRequest")
        self.status_error(self.c.apply(ws_path(ns, "w"), None, "op", raw="- not\n- a map\n"), 400,
                          "BadRequest")
        self.status_error(self.c.get(ws_path(ns, "w")), 404, "NotFound")


class DeleteTest(ApiTestCase):
    def test_delete_without_finalizers(self):
        ns = self.namespace()
        obj = self.ok(self.c.post(ws_path(ns), workspace("w")), 201)
        w = Watch(self.port, ws_path(ns), {"resourceVersion": obj["metadata"]["resourceVersion"]})
        body = self.ok(self.c.delete(ws_path(ns, "w")))
        self.assertEqual(body, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                "status": "Success", "details": {
                                    "name": "w", "group": "workspaces.tessera.dev",
                                    "kind": "workspaces", "uid": obj["metadata"]["uid"]}})
        self.status_error(self.c.get(ws_path(ns, "w")), 404, "NotFound")
        ev = w.next()
        self.assertEqual(ev["type"], "DELETED")
        self.assertGreater(int(ev["object"]["metadata"]["resourceVersion"]),
                           int(obj["metadata"]["resourceVersion"]))
        w.close()
        self.status_error(self.c.delete(ws_path(ns, "w")), 404, "NotFound")
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
               "spec": {"containers": [{"name": "c", "image": "i"}]}}
        self.ok(self.c.post(f"/api/v1/namespaces/{ns}/pods", pod), 201)
        self.assertEqual(self.ok(self.c.delete(f"/api/v1/namespaces/{ns}/pods/p"))["kind"], "Pod")

    def test_finalizers(self):
        ns = self.namespace()
        obj = self.ok(self.c.post(ws_path(ns), workspace("w", metadata={
            "name": "w", "finalizers": ["workspaces.tessera.dev/cleanup"]})), 201)
        w = Watch(self.port, ws_path(ns), {"resourceVersion": obj["metadata"]["resourceVersion"]})
        deleting = self.ok(self.c.delete(ws_path(ns, "w")))
        self.assertRegex(deleting["metadata"]["deletionTimestamp"], r"Z$")
        self.assertEqual(deleting["metadata"]["deletionGracePeriodSeconds"], 0)
        self.assertEqual(self.ok(self.c.get(ws_path(ns, "w"))), deleting)
        ev = w.next()
        self.assertEqual((ev["type"], ev["object"]["metadata"]["resourceVersion"]),
                         ("MODIFIED", deleting["metadata"]["resourceVersion"]))
        self.assertEqual(self.ok(self.c.delete(ws_path(ns, "w"))), deleting, "a second delete is a no-op")
        body = self.status_error(self.c.merge(ws_path(ns, "w"), {"metadata": {"finalizers": [
            "workspaces.tessera.dev/cleanup", "x.io/new"]}}), 422, "Invalid")
        self.assertIn("no new finalizers can be added if the object is being deleted", body["message"])
        # Updates still work while deleting; removing the last finalizer deletes.
        self.ok(self.c.merge(ws_path(ns, "w"), {"spec": {"owner": "bob"}}))
        self.assertEqual(w.next()["type"], "MODIFIED")
        last = self.ok(self.c.merge(ws_path(ns, "w"), {"metadata": {"finalizers": None}}))
        self.assertNotIn("finalizers", last["metadata"])
        self.status_error(self.c.get(ws_path(ns, "w")), 404, "NotFound")
        ev = w.next()
        self.assertEqual(ev["type"], "DELETED")
        self.assertEqual(ev["object"]["spec"]["owner"], "bob")
        w.close()

    def test_delete_preconditions(self):
        ns = self.namespace()
        obj = self.ok(self.c.post(cm_path(ns), configmap("c")), 201)
        body = self.status_error(self.c.delete(cm_path(ns, "c"), {"preconditions": {"uid": "nope"}}),
                                 409, "Conflict")
        self.assertIn("Precondition failed: UID in precondition: nope", body["message"])
        self.status_error(self.c.delete(cm_path(ns, "c"), {"preconditions": {"resourceVersion": "1"}}),
                          409, "Conflict")
        self.ok(self.c.get(cm_path(ns, "c")))
        self.ok(self.c.delete(cm_path(ns, "c"), {"kind": "DeleteOptions", "apiVersion": "v1",
                                                 "preconditions": {
                                                     "uid": obj["metadata"]["uid"],
                                                     "resourceVersion": obj["metadata"]["resourceVersion"]}}))
        self.status_error(self.c.get(cm_path(ns, "c")), 404, "NotFound")

    def _owned(self, owner: dict, **extra) -> dict:
        ref = {"apiVersion": owner["apiVersion"], "kind": owner["kind"],
               "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
               "controller": True, "blockOwnerDeletion": True}
        return {"name": extra.pop("name"), "ownerReferences": [ref], **extra}

    def test_garbage_collection(self):
        ns = self.namespace()
        ws = self.ok(self.c.post(ws_path(ns), workspace("w")), 201)
        other = self.ok(self.c.post(cm_path(ns), configmap("keeper")), 201)
        sts = {"apiVersion": "apps/v1", "kind": "StatefulSet",
               "metadata": self._owned(ws, name="w"), "spec": {"replicas": 1}}
        sts = self.ok(self.c.post(f"/apis/apps/v1/namespaces/{ns}/statefulsets", sts), 201)
        grandchild = configmap("grandchild")
        grandchild["metadata"] = self._owned(sts, name="grandchild")
        self.ok(self.c.post(cm_path(ns), grandchild), 201)
        pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
               "metadata": self._owned(ws, name="data", finalizers=["kubernetes.io/pvc-protection"]),
               "spec": {}}
        self.ok(self.c.post(f"/api/v1/namespaces/{ns}/persistentvolumeclaims", pvc), 201)
        shared = configmap("shared")
        shared["metadata"] = self._owned(ws, name="shared")
        shared["metadata"]["ownerReferences"].append(self._owned(other, name="x")["ownerReferences"][0])
        self.ok(self.c.post(cm_path(ns), shared), 201)
        unrelated = self.ok(self.c.post(cm_path(ns), configmap("unrelated")), 201)

        self.ok(self.c.delete(ws_path(ns, "w")))
        self.status_error(self.c.get(f"/apis/apps/v1/namespaces/{ns}/statefulsets/w"), 404, "NotFound")
        self.status_error(self.c.get(cm_path(ns, "grandchild")), 404, "NotFound")
        claim = self.ok(self.c.get(f"/api/v1/namespaces/{ns}/persistentvolumeclaims/data"))
        self.assertIn("deletionTimestamp", claim["metadata"], "a dependent's finalizers are honoured")
        kept = self.ok(self.c.get(cm_path(ns, "shared")))
        self.assertEqual([r["uid"] for r in kept["metadata"]["ownerReferences"]],
                         [other["metadata"]["uid"]], "a dependent with a live owner only loses the ref")
        self.assertEqual(self.ok(self.c.get(cm_path(ns, "unrelated"))), unrelated)

    def test_orphan_propagation(self):
        ns = self.namespace()
        owner = self.ok(self.c.post(cm_path(ns), configmap("owner")), 201)
        dep = configmap("dep")
        dep["metadata"] = self._owned(owner, name="dep")
        self.ok(self.c.post(cm_path(ns), dep), 201)
        self.ok(self.c.delete(cm_path(ns, "owner"), params={"propagationPolicy": "Orphan"}))
        survivor = self.ok(self.c.get(cm_path(ns, "dep")))
        self.assertNotIn("ownerReferences", survivor["metadata"])
        self.status_error(self.c.delete(cm_path(ns, "dep"), params={"propagationPolicy": "Sideways"}),
                          422, "Invalid")


class ListTest(ApiTestCase):
    def _seed(self) -> tuple[str, str]:
        a, b = self.namespace(), self.namespace()
        labels = {"w1": {"app": "x", "tier": "web"}, "w2": {"app": "y"}, "w3": {"app": "x"},
                  "w0": {"env": "prod", "rank": "7"}}
        for ns in (b, a):
            for name in ("w3", "w1", "w2", "w0"):
                self.ok(self.c.post(ws_path(ns), workspace(name, metadata={
                    "name": name, "labels": labels[name]})), 201)
        return a, b

    def names(self, resp: Resp) -> list[str]:
        return [f'{i["metadata"]["namespace"]}/{i["metadata"]["name"]}' for i in self.ok(resp)["items"]]

    def test_list_sorting_selectors(self):
        a, b = self._seed()
        listed = self.ok(self.c.get(ws_path(a)))
        self.assertEqual(listed["kind"], "WorkspaceList")
        self.assertEqual(listed["apiVersion"], WS_API)
        self.assertEqual(listed["metadata"]["resourceVersion"], str(self.current_rv()))
        self.assertEqual(self.names(self.c.get(ws_path(a))), [f"{a}/w0", f"{a}/w1", f"{a}/w2", f"{a}/w3"])
        every = self.names(self.c.get(f"/apis/{WS_API}/workspaces"))
        mine = [n for n in every if n.split("/")[0] in (a, b)]
        self.assertEqual(mine, sorted(mine))
        self.assertEqual(len(mine), 8)
        cases = {"app=x": ["w1", "w3"], "app==x": ["w1", "w3"], "app!=x": ["w0", "w2"],
                 "app": ["w1", "w2", "w3"], "!app": ["w0"], "app in (x, y)": ["w1", "w2", "w3"],
                 "app notin (x)": ["w0", "w2"], "app=x,tier=web": ["w1"], "app=x,!tier": ["w3"],
                 "rank>5": ["w0"], "rank<5": [], "app in (x,y),tier notin (web)": ["w2", "w3"]}
        for sel, want in cases.items():
            got = self.names(self.c.get(ws_path(a), params={"labelSelector": sel}))
            self.assertEqual(got, [f"{a}/{n}" for n in want], sel)
        for bad in ("app=", "a b", "app in x", "Bad Key=1", "app=x)"):
            r = self.c.get(ws_path(a), params={"labelSelector": bad})
            if bad == "app=":   # an empty value is valid (matches an empty label)
                self.ok(r)
                continue
            self.status_error(r, 400, "BadRequest")
        fields = f"metadata.namespace={b},metadata.name!=w1"
        self.assertEqual(self.names(self.c.get(f"/apis/{WS_API}/workspaces",
                                               params={"fieldSelector": fields})),
                         [f"{b}/w0", f"{b}/w2", f"{b}/w3"])
        self.assertEqual(self.names(self.c.get(ws_path(a), params={"fieldSelector": "metadata.name==w2"})),
                         [f"{a}/w2"])
        self.status_error(self.c.get(ws_path(a), params={"fieldSelector": "spec.owner=alice"}), 400,
                          "BadRequest")

    def test_pagination_is_a_consistent_snapshot(self):
        a, b = self._seed()
        p1 = self.ok(self.c.get(ws_path(a), params={"limit": 2}))
        self.assertEqual([i["metadata"]["name"] for i in p1["items"]], ["w0", "w1"])
        self.assertEqual(p1["metadata"]["remainingItemCount"], 2)
        snapshot = p1["metadata"]["resourceVersion"]
        # Changes after the first page are not visible in the following pages.
        self.ok(self.c.post(ws_path(a), workspace("w25")), 201)
        self.ok(self.c.merge(ws_path(a, "w2"), {"spec": {"owner": "changed"}}))
        self.ok(self.c.delete(ws_path(a, "w3")))
        p2 = self.ok(self.c.get(ws_path(a), params={"limit": 2, "continue": p1["metadata"]["continue"]}))
        self.assertEqual([i["metadata"]["name"] for i in p2["items"]], ["w2", "w3"])
        self.assertEqual(p2["items"][0]["spec"]["owner"], "alice")
        self.assertEqual(p2["metadata"]["resourceVersion"], snapshot)
        self.assertNotIn("continue", p2["metadata"])
        self.status_error(self.c.get(ws_path(a), params={"continue": "garbage"}), 400, "BadRequest")
        self.status_error(self.c.get(ws_path(a), params={"continue": p1["metadata"]["continue"],
                                                         "resourceVersion": "5"}), 400, "BadRequest")
        sel = self.ok(self.c.get(ws_path(b), params={"limit": 1, "labelSelector": "app=x"}))
        self.assertEqual([i["metadata"]["name"] for i in sel["items"]], ["w1"])
        self.assertNotIn("remainingItemCount", sel["metadata"])
        rest = self.ok(self.c.get(ws_path(b), params={"limit": 1, "labelSelector": "app=x",
                                                      "continue": sel["metadata"]["continue"]}))
        self.assertEqual([i["metadata"]["name"] for i in rest["items"]], ["w3"])

    def test_exact_resource_version_and_expired_continue(self):
        ns = self.namespace()
        old = self.ok(self.c.post(cm_path(ns), configmap("a", {"v": "1"})), 201)
        self.ok(self.c.post(cm_path(ns), configmap("b")), 201)
        self.ok(self.c.merge(cm_path(ns, "a"), {"data": {"v": "2"}}))
        rv = old["metadata"]["resourceVersion"]
        exact = self.ok(self.c.get(cm_path(ns), params={"resourceVersion": rv,
                                                        "resourceVersionMatch": "Exact"}))
        self.assertEqual([(i["metadata"]["name"], i["data"]) for i in exact["items"]], [("a", {"v": "1"})])
        self.assertEqual(exact["metadata"]["resourceVersion"], rv)
        self.ok(self.c.get(cm_path(ns), params={"resourceVersion": rv}))   # NotOlderThan
        too_large = self.c.get(cm_path(ns), params={"resourceVersion": str(self.current_rv() + 1000),
                                                    "resourceVersionMatch": "Exact"})
        self.status_error(too_large, 504, "Timeout")
        page = self.ok(self.c.get(cm_path(ns), params={"limit": 1}))
        self.ok(self.c.post("/fake/compact", None))
        # The latest state survives a compaction, so a snapshot at the current RV still works.
        self.ok(self.c.get(cm_path(ns), params={"limit": 1, "continue": page["metadata"]["continue"]}))
        page = self.ok(self.c.get(cm_path(ns), params={"limit": 1}))
        self.ok(self.c.post(cm_path(ns), configmap("c")), 201)
        self.ok(self.c.post("/fake/compact", None))
        expired = self.c.get(cm_path(ns), params={"limit": 1,
                                                  "continue": page["metadata"]["continue"]})
        body = self.status_error(expired, 410, "Expired")
        self.assertIn("continue parameter is too old", body["message"])
        self.status_error(self.c.get(cm_path(ns), params={"resourceVersion": rv,
                                                          "resourceVersionMatch": "Exact"}), 410, "Expired")


class WatchTest(ApiTestCase):
    def test_initial_events_then_live_changes(self):
        ns = self.namespace()
        for n in ("b", "a"):
            self.ok(self.c.post(ws_path(ns), workspace(n)), 201)
        for rv in (None, "0"):
            params = {} if rv is None else {"resourceVersion": rv}
            w = Watch(self.port, ws_path(ns), params)
            self.assertEqual(w.resp.status, 200)
            self.assertEqual(w.resp.getheader("Transfer-Encoding"), "chunked")
            self.assertEqual(w.resp.getheader("Content-Type"), "application/json")
            self.assertEqual([(e["type"], e["object"]["metadata"]["name"]) for e in (w.next(), w.next())],
                             [("ADDED", "a"), ("ADDED", "b")])
            w.close()
        w = Watch(self.port, ws_path(ns), {})
        w.next(), w.next()
        c = self.ok(self.c.post(ws_path(ns), workspace("c")), 201)
        m = self.ok(self.c.merge(ws_path(ns, "a"), {"spec": {"owner": "z"}}))
        self.ok(self.c.post(cm_path(ns), configmap("other-kind")), 201)
        self.ok(self.c.delete(ws_path(ns, "b")))
        got = [w.next() for _ in range(3)]
        self.assertEqual([(e["type"], e["object"]["metadata"]["name"]) for e in got],
                         [("ADDED", "c"), ("MODIFIED", "a"), ("DELETED", "b")])
        self.assertEqual(got[0]["object"], c)
        self.assertEqual(got[1]["object"], m)
        w.close()

    def test_watch_from_resource_version_replays_history(self):
        ns = self.namespace()
        first = self.ok(self.c.post(ws_path(ns), workspace("a")), 201)
        self.ok(self.c.merge(ws_path(ns, "a"), {"spec": {"owner": "b"}}))
        self.ok(self.c.post(ws_path(ns), workspace("b")), 201)
        w = Watch(self.port, ws_path(ns), {"resourceVersion": first["metadata"]["resourceVersion"]})
        got = [w.next() for _ in range(2)]
        self.assertEqual([(e["type"], e["object"]["metadata"]["name"]) for e in got],
                         [("MODIFIED", "a"), ("ADDED", "b")])
        self.assertRaises(socket.timeout, w.next, 0.4)
        w.close()

    def test_too_old_resource_version_is_an_error_event(self):
        ns = self.namespace()
        obj = self.ok(self.c.post(ws_path(ns), workspace("a")), 201)
        self.ok(self.c.merge(ws_path(ns, "a"), {"spec": {"owner": "b"}}))
        compacted = int(self.ok(self.c.post("/fake/compact", None))["compactedResourceVersion"])
        rv = obj["metadata"]["resourceVersion"]
        w = Watch(self.port, ws_path(ns), {"resourceVersion": rv})
        self.assertEqual(w.resp.status, 200)
        ev = w.next()
        self.assertEqual(ev, {"type": "ERROR", "object": {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": f"too old resource version: {rv} ({compacted})", "reason": "Expired",
            "code": 410}})
        self.assertIsNone(w.next(), "the stream must end after the 410")
        w.close()
        w = Watch(self.port, ws_path(ns), {"resourceVersion": str(compacted)})
        self.ok(self.c.merge(ws_path(ns, "a"), {"spec": {"owner": "c"}}))
        self.assertEqual(w.next()["type"], "MODIFIED")
        w.close()

    def test_bookmarks(self):
        ns = self.namespace()
        obj = self.ok(self.c.post(ws_path(ns), workspace("a")), 201)
        w = Watch(self.port, ws_path(ns), {"allowWatchBookmarks": "true",
                                          "resourceVersion": obj["metadata"]["resourceVersion"]})
        self.ok(self.c.post(cm_path(ns), configmap("bump")), 201)
        current = self.current_rv()
        ev = w.next(2)
        self.assertEqual(ev, {"type": "BOOKMARK", "object": {
            "kind": "Workspace", "apiVersion": WS_API,
            "metadata": {"resourceVersion": str(current)}}})
        w.close()
        w = Watch(self.port, ws_path(ns), {"resourceVersion": obj["metadata"]["resourceVersion"]})
        self.assertRaises(socket.timeout, w.next, 0.6)   # no bookmarks unless asked for
        w.close()

    def test_timeout_seconds(self):
        ns = self.namespace()
        start = time.monotonic()
        w = Watch(self.port, ws_path(ns), {"timeoutSeconds": "1"})
        self.assertIsNone(w.next(5))
        self.assertTrue(0.9 <= time.monotonic() - start < 3, time.monotonic() - start)
        w.close()

    def test_selectors_and_transitions(self):
        ns = self.namespace()
        w = Watch(self.port, ws_path(ns), {"labelSelector": "app=x"})
        self.ok(self.c.post(ws_path(ns), workspace("a")), 201)
        self.ok(self.c.merge(ws_path(ns, "a"), {"metadata": {"labels": {"app": "x"}}}))
        ev = w.next()
        self.assertEqual((ev["type"], ev["object"]["metadata"]["labels"]), ("ADDED", {"app": "x"}))
        self.ok(self.c.merge(ws_path(ns, "a"), {"spec": {"owner": "q"}}))
        self.assertEqual(w.next()["type"], "MODIFIED")
        gone = self.ok(self.c.merge(ws_path(ns, "a"), {"metadata": {"labels": {"app": "y"}}}))
        ev = w.next()
        self.assertEqual(ev["type"], "DELETED")
        self.assertEqual(ev["object"]["metadata"]["labels"], {"app": "x"}, "the last matching state")
        self.assertEqual(ev["object"]["metadata"]["resourceVersion"], gone["metadata"]["resourceVersion"])
        w.close()
        w = Watch(self.port, f"/apis/{WS_API}/workspaces",
                  {"fieldSelector": f"metadata.name=b,metadata.namespace={ns}"})
        self.ok(self.c.post(ws_path(ns), workspace("c")), 201)
        self.ok(self.c.post(ws_path(ns), workspace("b")), 201)
        self.assertEqual(w.next()["object"]["metadata"]["name"], "b")
        w.close()
        legacy = Watch(self.port, f"/apis/{WS_API}/watch/namespaces/{ns}/workspaces", {})
        self.assertEqual([legacy.next()["object"]["metadata"]["name"] for _ in range(3)],
                         ["a", "b", "c"])
        legacy.close()

    def test_close_watches(self):
        ns = self.namespace()
        w = Watch(self.port, ws_path(ns), {})
        time.sleep(0.1)
        self.ok(self.c.post("/fake/close-watches", None))
        w.conn.sock.settimeout(3)
        self.assertEqual(w.resp.read(), b"", "a graceful close ends the chunked stream")
        w.close()
        w = Watch(self.port, ws_path(ns), {})
        time.sleep(0.1)
        self.ok(self.c.post("/fake/close-watches", None, params={"abrupt": "true"}))
        w.conn.sock.settimeout(3)
        with self.assertRaises((http.client.IncompleteRead, ConnectionError)):
            w.resp.read()    # no terminating chunk
        w.close()
        self.ok(self.c.get(ws_path(ns)))


class LeaseTest(ApiTestCase):
    def test_concurrent_puts_exactly_one_wins(self):
        ns = self.namespace()
        path = f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases"
        lease = self.ok(self.c.post(path, {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                                           "metadata": {"name": "leader"}, "spec": {}}), 201)
        for round_ in range(3):
            current = self.ok(self.c.get(f"{path}/leader"))
            barrier = threading.Barrier(8)
            results = []

            def contender(i):
                c = Client(self.port)
                body = json.loads(json.dumps(current))
                # A new renewTime each round, as in real leader election: re-sending the
                # identical lease would be a no-op update, which succeeds without a new RV.
                body["spec"] = {"holderIdentity": f"candidate-{i}", "leaseDurationSeconds": 15,
                                "renewTime": f"2026-01-01T00:00:0{round_}.{i:06d}Z"}
                barrier.wait()
                results.append(c.put(f"{path}/leader", body).status)
                c.close()
            threads = [threading.Thread(target=contender, args=(i,)) for i in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            self.assertEqual(sorted(results), [200] + [409] * 7)
        self.assertNotEqual(self.ok(self.c.get(f"{path}/leader"))["metadata"]["resourceVersion"],
                            lease["metadata"]["resourceVersion"])


class ControlTest(ApiTestCase):
    def test_request_log(self):
        ns = self.namespace()
        self.ok(self.c.call("DELETE", "/fake/requests"))
        self.ok(self.c.apply(ws_path(ns, "w"), workspace("w"), "tessera-operator", force=True), 201)
        self.c.get(ws_path(ns, "nope"))
        log = self.ok(self.c.get("/fake/requests"))["items"]
        self.assertEqual([(e["method"], e["path"], e["status"]) for e in log],
                         [("PATCH", ws_path(ns, "w"), 201), ("GET", ws_path(ns, "nope"), 404)])
        self.assertEqual(log[0]["contentType"], "application/apply-patch+yaml")
        self.assertEqual(log[0]["userAgent"], UA)
        self.assertIn("fieldManager=tessera-operator", log[0]["query"])

    def test_reset(self):
        ns = self.namespace()
        self.ok(self.c.post(ws_path(ns), workspace("w")), 201)
        before = self.current_rv()
        self.ok(self.c.post("/fake/reset", None))
        self.status_error(self.c.get(f"/api/v1/namespaces/{ns}"), 404, "NotFound")
        names = [n["metadata"]["name"] for n in self.ok(self.c.get("/api/v1/namespaces"))["items"]]
        self.assertEqual(names, ["default", "kube-node-lease", "kube-public", "kube-system"])
        self.assertGreater(self.current_rv(), before, "resourceVersions never go back")
        self.assertEqual(self.ok(self.c.get(f"/apis/{WS_API}/workspaces"))["items"], [])


class SmallHistoryTest(ApiTestCase):
    server_args = ("--history", "5", "--namespace-create-on-demand")

    def setUp(self):
        self.c = Client(self.port, token=None)

    def test_history_limit_and_namespace_on_demand(self):
        obj = self.ok(self.c.post(cm_path("fresh"), configmap("c0")), 201)
        self.ok(self.c.get("/api/v1/namespaces/fresh"))
        start = int(obj["metadata"]["resourceVersion"])
        for i in range(1, 10):
            self.ok(self.c.post(cm_path("fresh"), configmap(f"c{i}")), 201)
        current = self.current_rv()
        self.assertEqual(current, start + 9)
        w = Watch(self.port, cm_path("fresh"), {"resourceVersion": str(start)}, token=None)
        ev = w.next()
        self.assertEqual((ev["type"], ev["object"]["code"], ev["object"]["reason"]),
                         ("ERROR", 410, "Expired"))
        self.assertEqual(ev["object"]["message"], f"too old resource version: {start} ({current - 5})")
        w.close()
        w = Watch(self.port, cm_path("fresh"), {"resourceVersion": str(current - 5)}, token=None)
        self.assertEqual([w.next()["object"]["metadata"]["name"] for _ in range(5)],
                         ["c5", "c6", "c7", "c8", "c9"])
        w.close()


class TlsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="fake-apiserver-tls-")
        cls.server = ServerProcess("--tls-dir", cls.dir, "--token", TOKEN)
        cls.port = cls.server.port

    @classmethod
    def tearDownClass(cls):
        code = cls.server.stop()
        shutil.rmtree(cls.dir, ignore_errors=True)
        assert code == 0, f"server exited with {code} on SIGTERM"

    def context(self, cert: bool) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=os.path.join(self.dir, "ca.crt"))
        if cert:
            ctx.load_cert_chain(os.path.join(self.dir, "client.crt"), os.path.join(self.dir, "client.key"))
        return ctx

    def test_files_and_kubeconfig(self):
        self.assertEqual(self.server.scheme, "https")
        for f in ("ca.crt", "ca.key", "server.crt", "server.key", "client.crt", "client.key"):
            self.assertTrue(os.path.getsize(os.path.join(self.dir, f)) > 0, f)
        subject = subprocess.run(["openssl", "x509", "-noout", "-subject", "-in",
                                  os.path.join(self.dir, "client.crt")],
                                 capture_output=True, text=True, check=True).stdout
        self.assertIn("O = system:masters", subject)
        self.assertIn("CN = tessera-test", subject)
        with open(os.path.join(self.dir, "kubeconfig.yaml")) as f:
            kc = yaml.safe_load(f)
        self.assertEqual(kc["current-context"], "token")
        contexts = {c["name"]: c["context"] for c in kc["contexts"]}
        self.assertEqual(set(contexts), {"token", "certs"})
        users = {u["name"]: u["user"] for u in kc["users"]}
        self.assertEqual(users[contexts["token"]["user"]], {"token": TOKEN})
        certs_user = users[contexts["certs"]["user"]]
        self.assertTrue(os.path.isfile(certs_user["client-certificate"]))
        self.assertTrue(os.path.isfile(certs_user["client-key"]))
        cluster = kc["clusters"][0]["cluster"]
        self.assertEqual(cluster["server"], f"https://127.0.0.1:{self.port}")
        self.assertTrue(os.path.isfile(cluster["certificate-authority"]))

    def test_client_certificate_and_token_auth(self):
        for host in ("127.0.0.1", "localhost"):   # IP SAN and DNS SAN, hostname checked
            c = Client(self.port, token=None, context=self.context(cert=True), host=host)
            self.assertEqual(c.get("/api/v1/namespaces").status, 200)
            name = "via-cert-" + host.replace(".", "-")
            self.assertEqual(c.post(cm_path("default"), configmap(name)).status, 201)
            c.close()
        c = Client(self.port, token=None, context=self.context(cert=False))
        r = c.get("/api/v1/namespaces")
        self.assertEqual((r.status, r.body["reason"]), (401, "Unauthorized"))
        c.close()
        c = Client(self.port, token=TOKEN, context=self.context(cert=False))
        self.assertEqual(c.get("/api/v1/namespaces").status, 200)
        c.close()

    def test_foreign_client_certificate_is_rejected(self):
        d = tempfile.mkdtemp(prefix="foreign-")
        try:
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                            "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=evil",
                            "-keyout", os.path.join(d, "k.pem"), "-out", os.path.join(d, "c.pem")],
                           check=True, capture_output=True)
            ctx = ssl.create_default_context(cafile=os.path.join(self.dir, "ca.crt"))
            ctx.load_cert_chain(os.path.join(d, "c.pem"), os.path.join(d, "k.pem"))
            c = Client(self.port, token=TOKEN, context=ctx)
            with self.assertRaises((ssl.SSLError, ConnectionError)):
                c.get("/api/v1/namespaces")
            c.close()
        finally:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
