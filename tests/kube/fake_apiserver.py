#!/usr/bin/env python3
"""A strict, in-memory Kubernetes API server for Tessera's integration tests.

No kube-apiserver can run on the build machines, so the operator (src/workspaces) and its C++
tests talk to this one. It is small but strict: where it implements something, it tries to
answer exactly like a real kube-apiserver (v1.32) would — status codes, Status bodies, messages —
so that code which works here works against a real cluster. Where it does not implement
something, it says so below and, where possible, refuses loudly instead of pretending.

Usage:
  fake_apiserver.py [--host 127.0.0.1] [--port 0] [--tls-dir DIR] [--token TOKEN]
                    [--bookmark-interval 1.0] [--history 1000] [--namespace-create-on-demand]
When ready it prints exactly one line, `listening on http://127.0.0.1:PORT` (https with
--tls-dir), and serves until SIGTERM/SIGINT.

Covered (mirrors kube-apiserver):
- JSON REST for /api/v1/... and /apis/{group}/{version}/..., namespaced and cluster-scoped,
  all-namespaces lists, the `/status` subresource for the kinds that have one, legacy
  `/watch/` paths, discovery (/api, /apis, /api/v1, /apis/{g}, /apis/{g}/{v}), /version,
  /healthz, /livez, /readyz. Kinds: see RESOURCE_TYPES; unknown ones are 404.
- One global resourceVersion counter; uid, creationTimestamp, generation (bumped only when
  something outside metadata and status changes); no-op writes change nothing (same
  resourceVersion, no watch event), like the real server.
- Create (201; AlreadyExists 409; generateName; DNS name rules per kind; label, annotation,
  finalizer and ownerReference validation 422; namespace must exist, 404, unless
  --namespace-create-on-demand; resourceVersion set on create 422; status dropped on create for
  kinds with a status subresource).
- Update (PUT; resourceVersion precondition 409 with the real message; status ignored on the
  main resource and everything but status ignored on /status).
- PATCH: merge (RFC 7386), JSON patch (RFC 6902: add, remove, replace, move, copy, test),
  strategic merge patch for built-in kinds (merge keys, `$patch: delete|replace`,
  `$deleteFromPrimitiveList`; 415 for custom resources as in real k8s) and server-side apply
  (application/apply-patch+yaml, YAML or JSON; no fieldManager is 422 Invalid on
  PatchOptions, as in real k8s) with managedFields (FieldsV1), conflicts (409, real message), force, removal of fields a manager stops applying, shared ownership, apply
  creating the object, apply to /status. Non-apply writes record `Update` entries and take
  ownership of the fields they change. resourceVersion preconditions work for every patch type.
- Delete: finalizers (deletionTimestamp set, object kept; removing the last finalizer deletes
  it; new finalizers forbidden while deleting), DeleteOptions preconditions (uid,
  resourceVersion), propagationPolicy Background/Orphan, owner-reference garbage collection
  (synchronous and recursive; a dependent that still has another live owner only loses the
  dangling reference), deletecollection.
- List: sorted by namespace/name, label selectors (=, ==, !=, in, notin, exists, !exists, gt,
  lt), field selectors (metadata.name, metadata.namespace and the few per-kind fields real k8s
  supports for pods, events, secrets, namespaces), limit/continue with consistent snapshots (410
  Expired once the snapshot is compacted away), resourceVersion + resourceVersionMatch
  (NotOlderThan, Exact; 504 "Too large resource version").
- Watch: chunked newline-delimited JSON, one flush per event; RV ""/"0" = synthetic ADDED for
  everything first, RV=N = history after N, too-old N = HTTP 200 plus one ERROR event (410
  Expired); selectors applied per event including the real transitions (an object that starts
  matching is ADDED, one that stops matching is DELETED); bookmarks; timeoutSeconds (default
  300-600 s, random like the real 1800-3600 s); the stream ends when the history it still needs
  is compacted (ERROR 410) or /fake/close-watches is called.
- Auth: bearer token and, with TLS, client certificates signed by the generated CA (401 Status
  otherwise). /healthz, /livez, /readyz and /version are public like with anonymous auth, but
  a wrong bearer token is still 401 there.
- Test-only endpoints (not in real k8s): POST /fake/compact, GET|DELETE /fake/requests,
  POST /fake/reset, POST /fake/close-watches[?abrupt=true].

Not covered (differences from a real kube-apiserver):
- No schemas, defaulting or admission: objects are stored as sent (no default protocol,
  imagePullPolicy, ...), unknown fields are kept, no CRD OpenAPI validation, no webhooks, no
  RBAC (every authenticated user can do everything), no quotas, no controllers (Deployments
  never get pods, pods never run).
- Server-side apply knows list and map semantics by field name, not by schema, for every kind:
  containers, initContainers, ephemeralContainers, env, volumes, imagePullSecrets,
  resourceClaims by name; volumeMounts by mountPath; volumeDevices by devicePath; hostAliases by
  ip; ports by containerPort+protocol or port+protocol (protocol defaults to TCP for the key);
  conditions by type; ownerReferences by uid; finalizers as a set; selector and nodeSelector
  as atomic maps; every other list is atomic (volumeClaimTemplates too, like real k8s). A list
  whose items lack a key or repeat one is treated as atomic. `.` entries are only written for
  list items (real k8s also writes them for maps created by Update operations). Fields that
  become empty maps after a manager stops applying their last child are removed. Managers'
  apiVersions are not converted. Clients cannot overwrite metadata.managedFields.
- Namespace deletion does not delete the namespace's contents. Foreground deletion behaves like
  Background; Orphan with pending finalizers is not remembered. Garbage collection is
  synchronous (real k8s does it asynchronously in kube-controller-manager).
- No dryRun (400), no protobuf/CBOR (415), no Table output, no sendInitialEvents, no
  field-selector watch on single-object GETs, no /scale, /log, /exec, /eviction, /binding;
  graceful pod deletion is immediate (no grace period).
- Every kind gets metadata.generation (real k8s only sets it for some built-in kinds and all
  custom resources).
"""

from __future__ import annotations

import argparse
import base64
import copy
import http.server
import ipaddress
import json
import os
import random
import re
import select
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterable
from urllib.parse import parse_qs, urlsplit

import yaml

KUBE_VERSION = {"major": "1", "minor": "32", "gitVersion": "v1.32.0", "gitCommit": "fake",
                "gitTreeState": "clean", "buildDate": "2024-12-11T00:00:00Z",
                "goVersion": "go1.23.4", "compiler": "gc", "platform": "linux/amd64"}

# --------------------------------------------------------------------------------------------
# Resource types
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    status_subresource: bool = False
    builtin: bool = True            # False: a custom resource (no strategic merge patch)
    name_rule: str = "subdomain"    # "subdomain" | "label" (RFC 1123) | "dns1035"
    returns_deleted_object: bool = False  # DELETE answers with the object, not a Status
    field_labels: tuple[str, ...] = ()    # field selector labels beyond metadata.name/namespace

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> tuple[str, str]:
        return (self.group, self.plural)

    @property
    def resource(self) -> str:
        """`workspaces.workspaces.tessera.dev`, or `pods` for the core group (used in messages)."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def qualified_kind(self) -> str:
        return f"{self.kind}.{self.group}" if self.group else self.kind

    @property
    def singular(self) -> str:
        return self.kind.lower()


_POD_FIELDS = ("spec.nodeName", "spec.restartPolicy", "spec.schedulerName",
               "spec.serviceAccountName", "spec.hostNetwork", "status.phase", "status.podIP",
               "status.nominatedNodeName")
_EVENT_FIELDS = ("involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
                 "involvedObject.uid", "involvedObject.apiVersion",
                 "involvedObject.resourceVersion", "involvedObject.fieldPath", "reason",
                 "reportingComponent", "source", "type")

RESOURCE_TYPES: tuple[ResourceType, ...] = (
    ResourceType("", "v1", "pods", "Pod", status_subresource=True, returns_deleted_object=True,
                 field_labels=_POD_FIELDS),
    ResourceType("", "v1", "services", "Service", status_subresource=True, name_rule="dns1035",
                 returns_deleted_object=True),
    ResourceType("", "v1", "events", "Event", field_labels=_EVENT_FIELDS),
    ResourceType("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim",
                 status_subresource=True),
    ResourceType("", "v1", "configmaps", "ConfigMap"),
    ResourceType("", "v1", "secrets", "Secret", field_labels=("type",)),
    ResourceType("", "v1", "serviceaccounts", "ServiceAccount", returns_deleted_object=True),
    ResourceType("", "v1", "namespaces", "Namespace", namespaced=False,
                 status_subresource=True, name_rule="label", field_labels=("status.phase",)),
    ResourceType("", "v1", "nodes", "Node", namespaced=False, status_subresource=True),
    ResourceType("apps", "v1", "statefulsets", "StatefulSet", status_subresource=True),
    ResourceType("apps", "v1", "deployments", "Deployment", status_subresource=True),
    ResourceType("coordination.k8s.io", "v1", "leases", "Lease"),
    ResourceType("events.k8s.io", "v1", "events", "Event"),
    ResourceType("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget",
                 status_subresource=True),
    # Istio's and KubeRay's CRDs declare a status subresource; WorkspaceTemplate has none
    # (deploy/workspaces/crds).
    ResourceType("networking.istio.io", "v1beta1", "virtualservices", "VirtualService",
                 status_subresource=True, builtin=False),
    ResourceType("networking.istio.io", "v1beta1", "gateways", "Gateway",
                 status_subresource=True, builtin=False),
    ResourceType("security.istio.io", "v1beta1", "authorizationpolicies", "AuthorizationPolicy",
                 status_subresource=True, builtin=False),
    ResourceType("ray.io", "v1", "rayclusters", "RayCluster", status_subresource=True,
                 builtin=False),
    ResourceType("workspaces.tessera.dev", "v1alpha1", "workspaces", "Workspace",
                 status_subresource=True, builtin=False),
    ResourceType("workspaces.tessera.dev", "v1alpha1", "workspacetemplates", "WorkspaceTemplate",
                 builtin=False),
)

TYPES_BY_PATH = {(t.group, t.version, t.plural): t for t in RESOURCE_TYPES}
TYPES_BY_KEY = {t.key: t for t in RESOURCE_TYPES}
NAMESPACES = TYPES_BY_PATH[("", "v1", "namespaces")]
INITIAL_NAMESPACES = ("default", "kube-node-lease", "kube-public", "kube-system")

# --------------------------------------------------------------------------------------------
# Errors and Status bodies
# --------------------------------------------------------------------------------------------


class ApiError(Exception):
    """An error answered with a metav1.Status body."""

    def __init__(self, code: int, reason: str, message: str, details: dict | None = None,
                 extra: dict | None = None):
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message
        self.details, self.extra = details, extra or {}

    def status(self) -> dict:
        body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": self.message, "reason": self.reason}
        if self.details is not None:
            body["details"] = self.details
        body["code"] = self.code
        body.update(self.extra)
        return body


def _details(rt: ResourceType | None, name: str | None, kind: str | None = None) -> dict:
    d: dict[str, Any] = {}
    if name:
        d["name"] = name
    if rt is not None:
        if rt.group:
            d["group"] = rt.group
        d["kind"] = kind or rt.plural
    return d


def not_found(rt: ResourceType, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{rt.resource} "{name}" not found', _details(rt, name))


def no_such_resource() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def already_exists(rt: ResourceType, name: str) -> ApiError:
    return ApiError(409, "AlreadyExists", f'{rt.resource} "{name}" already exists',
                    _details(rt, name))


def conflict(rt: ResourceType, name: str, why: str) -> ApiError:
    return ApiError(409, "Conflict", f'Operation cannot be fulfilled on {rt.resource} "{name}": {why}',
                    _details(rt, name))


MODIFIED_MSG = "the object has been modified; please apply your changes to the latest version and try again"


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def method_not_allowed() -> ApiError:
    return ApiError(405, "MethodNotAllowed",
                    "the server does not allow this method on the requested resource", {})


def unsupported_media_type(accepted: Iterable[str]) -> ApiError:
    return ApiError(415, "UnsupportedMediaType",
                    "the body of the request was in an unknown format - accepted media types "
                    "include: " + ", ".join(accepted), {})


def gone_expired(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


@dataclass
class FieldError:
    field: str
    kind: str         # "Invalid value" | "Required value" | "Forbidden" | "Too long"
    detail: str
    value: Any = None

    @property
    def reason(self) -> str:
        return {"Invalid value": "FieldValueInvalid", "Required value": "FieldValueRequired",
                "Forbidden": "FieldValueForbidden", "Too long": "FieldValueTooLong"}[self.kind]

    def body(self) -> str:
        if self.kind == "Invalid value":
            return f"Invalid value: {json.dumps(self.value)}: {self.detail}"
        return f"{self.kind}: {self.detail}"

    def __str__(self) -> str:
        return f"{self.field}: {self.body()}"


def invalid(qualified_kind: str, name: str, errs: list[FieldError], group: str,
            kind: str) -> ApiError:
    """422 Invalid with the message shape of apimachinery's errors.NewInvalid."""
    joined = str(errs[0]) if len(errs) == 1 else "[" + ", ".join(str(e) for e in errs) + "]"
    details: dict[str, Any] = {"name": name} if name else {}
    if group:
        details["group"] = group
    details["kind"] = kind
    details["causes"] = [{"reason": e.reason, "message": e.body(), "field": e.field} for e in errs]
    return ApiError(422, "Invalid", f'{qualified_kind} "{name}" is invalid: {joined}', details)


def invalid_object(rt: ResourceType, name: str, errs: list[FieldError]) -> ApiError:
    return invalid(rt.qualified_kind, name, errs, rt.group, rt.kind)


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------

MISSING = object()


def now_rfc3339() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def canon(value: Any) -> str:
    """Type-exact comparison key for JSON values (True != 1, 1 != 1.0)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def meta(obj: dict) -> dict:
    return obj.setdefault("metadata", {})


def obj_rv(obj: dict) -> str:
    return obj.get("metadata", {}).get("resourceVersion", "")


_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1035_RE = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_QNAME_RE = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

_SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                  "characters, '-' or '.', and must start and end with an alphanumeric character "
                  "(e.g. 'example.com', regex used for validation is "
                  "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
_LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or "
              "'-', and must start and end with an alphanumeric character (e.g. 'my-name',  or "
              "'123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
_DNS1035_MSG = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
                "start with an alphabetic character, and end with an alphanumeric character "
                "(e.g. 'my-name',  or 'abc-123', regex used for validation is "
                "'[a-z]([-a-z0-9]*[a-z0-9])?')")
_QNAME_MSG = ("name part must consist of alphanumeric characters, '-', '_' or '.', and must "
              "start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or "
              "'123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
_LABEL_VALUE_MSG = ("a valid label must be an empty string or consist of alphanumeric characters, "
                    "'-', '_' or '.', and must start and end with an alphanumeric character (e.g. "
                    "'MyValue',  or 'my_value',  or '12345', regex used for validation is "
                    "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")


def validate_name(rule: str, name: str, path: str = "metadata.name") -> list[FieldError]:
    regex, msg, limit = {"subdomain": (_SUBDOMAIN_RE, _SUBDOMAIN_MSG, 253),
                         "label": (_LABEL_RE, _LABEL_MSG, 63),
                         "dns1035": (_DNS1035_RE, _DNS1035_MSG, 63)}[rule]
    errs = []
    if len(name) > limit:
        errs.append(FieldError(path, "Invalid value", f"must be no more than {limit} characters",
                               name))
    if not regex.match(name):
        errs.append(FieldError(path, "Invalid value", msg, name))
    return errs


def validate_qualified_name(value: str, path: str) -> list[FieldError]:
    """A label/annotation key or finalizer: optional DNS-subdomain prefix, '/', short name."""
    prefix, _, short = value.rpartition("/")
    if "/" in value and not prefix:
        return [FieldError(path, "Invalid value", "prefix part must be non-empty", value)]
    errs = []
    if prefix and (len(prefix) > 253 or not _SUBDOMAIN_RE.match(prefix)):
        errs.append(FieldError(path, "Invalid value", "prefix part " + _SUBDOMAIN_MSG, value))
    if not short:
        errs.append(FieldError(path, "Invalid value", "name part must be non-empty", value))
    elif len(short) > 63:
        errs.append(FieldError(path, "Invalid value",
                               "name part must be no more than 63 characters", value))
    elif not _QNAME_RE.match(short):
        errs.append(FieldError(path, "Invalid value", _QNAME_MSG, value))
    return errs


def validate_metadata(md: dict) -> list[FieldError]:
    """Validation of ObjectMeta that real k8s applies to every kind (types checked earlier)."""
    errs: list[FieldError] = []
    for key, value in (md.get("labels") or {}).items():
        errs += validate_qualified_name(key, "metadata.labels")
        if len(value) > 63:
            errs.append(FieldError("metadata.labels", "Invalid value",
                                   "must be no more than 63 characters", value))
        elif not _LABEL_VALUE_RE.match(value):
            errs.append(FieldError("metadata.labels", "Invalid value", _LABEL_VALUE_MSG, value))
    annotations = md.get("annotations") or {}
    for key in annotations:
        errs += validate_qualified_name(key.lower(), "metadata.annotations")
    if sum(len(k) + len(v) for k, v in annotations.items()) > 256 * 1024:
        errs.append(FieldError("metadata.annotations", "Too long",
                               "must have at most 262144 bytes"))
    for i, fin in enumerate(md.get("finalizers") or []):
        errs += validate_qualified_name(fin, f"metadata.finalizers[{i}]")
    for i, ref in enumerate(md.get("ownerReferences") or []):
        for f in ("apiVersion", "kind", "name", "uid"):
            if not ref.get(f):
                errs.append(FieldError(f"metadata.ownerReferences[{i}].{f}", "Required value",
                                       f"{f} must not be empty" if f == "uid" else f"{f} must be set"))
    return errs


def check_metadata_types(obj: dict) -> None:
    """Decoding errors real k8s answers with 400 (wrong JSON types in ObjectMeta)."""
    md = obj.get("metadata", {})
    if not isinstance(md, dict):
        raise bad_request("metadata: must be an object")
    for f in ("name", "namespace", "generateName", "resourceVersion", "uid"):
        if f in md and md[f] is not None and not isinstance(md[f], str):
            raise bad_request(f"json: cannot unmarshal {type(md[f]).__name__} into Go struct "
                              f"field ObjectMeta.metadata.{f} of type string")
    for f in ("labels", "annotations"):
        v = md.get(f)
        if v is None:
            continue
        if not isinstance(v, dict) or not all(isinstance(x, str) for x in v.values()):
            raise bad_request(f"json: cannot unmarshal into Go struct field ObjectMeta.metadata.{f} "
                              "of type map[string]string")
    fins = md.get("finalizers")
    if fins is not None and (not isinstance(fins, list) or not all(isinstance(f, str) for f in fins)):
        raise bad_request("json: cannot unmarshal into Go struct field ObjectMeta.metadata.finalizers "
                          "of type []string")
    refs = md.get("ownerReferences")
    if refs is not None and (not isinstance(refs, list) or not all(isinstance(r, dict) for r in refs)):
        raise bad_request("json: cannot unmarshal into Go struct field "
                          "ObjectMeta.metadata.ownerReferences of type []v1.OwnerReference")


def check_type_meta(rt: ResourceType, obj: Any) -> None:
    """apiVersion and kind must be present and match the URL (400 otherwise)."""
    if not isinstance(obj, dict):
        raise bad_request("the object provided is not a JSON object")
    if not obj.get("kind"):
        raise bad_request(f"Object 'Kind' is missing in '{canon(obj)[:200]}'")
    if not obj.get("apiVersion"):
        raise bad_request(f"Object 'apiVersion' is missing in '{canon(obj)[:200]}'")
    if obj["apiVersion"] != rt.api_version:
        raise bad_request(f"the API version in the data ({obj['apiVersion']}) does not match the "
                          f"expected API version ({rt.api_version})")
    if obj["kind"] != rt.kind:
        raise bad_request(f"the object provided is unrecognized (must be of type {rt.kind}): "
                          f"kind \"{obj['kind']}\"")
    check_metadata_types(obj)


# --------------------------------------------------------------------------------------------
# Label and field selectors
# --------------------------------------------------------------------------------------------

Requirement = tuple[str, str, tuple[str, ...]]   # (key, op, values)


def _split_top_level(text: str) -> list[str]:
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


_SET_RE = re.compile(r"^\s*([^\s!=<>(),]+)\s+(in|notin)\s*\(([^()]*)\)\s*$")
_OP_RE = re.compile(r"^\s*([^\s!=<>(),]+)\s*(==|=|!=|>|<)\s*([^\s!=<>(),]*)\s*$")
_EXISTS_RE = re.compile(r"^\s*(!?)\s*([^\s!=<>(),]+)\s*$")


def parse_label_selector(text: str) -> list[Requirement]:
    """The labels.Parse grammar; errors are 400 like the real server's."""
    reqs: list[Requirement] = []
    if not text.strip():
        return reqs
    for part in _split_top_level(text):
        m = _SET_RE.match(part)
        if m:
            values = tuple(v.strip() for v in m.group(3).split(",")) if m.group(3).strip() else ()
            req: Requirement = (m.group(1), m.group(2), values)
        elif (m := _OP_RE.match(part)):
            op = {"=": "=", "==": "=", "!=": "!=", ">": "gt", "<": "lt"}[m.group(2)]
            req = (m.group(1), op, (m.group(3),))
        elif (m := _EXISTS_RE.match(part)):
            req = (m.group(2), "!" if m.group(1) else "exists", ())
        else:
            raise bad_request(f"unable to parse requirement: found '{part.strip()}', expected: "
                              "identifier, '=', '==', '!=', 'in', 'notin', '!'")
        key, op, values = req
        errs = validate_qualified_name(key, "key")
        if op in ("gt", "lt"):
            if not re.match(r"^-?\d+$", values[0]):
                errs.append(FieldError("values", "Invalid value", "for 'Gt', 'Lt' operators, "
                                       "the value must be an integer", values[0]))
        else:
            for v in values:
                if len(v) > 63 or not _LABEL_VALUE_RE.match(v):
                    errs.append(FieldError("values[0]", "Invalid value", _LABEL_VALUE_MSG, v))
        if op in ("in", "notin") and not values:
            errs.append(FieldError("values", "Required value",
                                   "for 'in', 'notin' operators, values set can't be empty"))
        if errs:
            raise bad_request(f"unable to parse requirement: {errs[0]}")
        reqs.append(req)
    return reqs


def labels_match(reqs: list[Requirement], labels: dict) -> bool:
    for key, op, values in reqs:
        present = key in labels
        value = labels.get(key)
        if op == "=" and not (present and value == values[0]):
            return False
        if op == "!=" and present and value == values[0]:
            return False
        if op == "in" and not (present and value in values):
            return False
        if op == "notin" and present and value in values:
            return False
        if op == "exists" and not present:
            return False
        if op == "!" and present:
            return False
        if op in ("gt", "lt"):
            try:
                n = int(value) if present else None
            except ValueError:
                return False
            if n is None or (op == "gt" and not n > int(values[0])) or \
                    (op == "lt" and not n < int(values[0])):
                return False
    return True


def _unescape_field_value(v: str) -> str:
    return re.sub(r"\\(.)", r"\1", v)


def parse_field_selector(rt: ResourceType, text: str) -> list[tuple[str, str, str]]:
    terms: list[tuple[str, str, str]] = []
    if not text.strip():
        return terms
    for part in re.split(r"(?<!\\),", text):
        m = re.match(r"^\s*([^=!]+?)\s*(==|=|!=)\s*(.*?)\s*$", part)
        if not m:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
        label, op, value = m.group(1), m.group(2), _unescape_field_value(m.group(3))
        if label not in ("metadata.name", "metadata.namespace") + rt.field_labels:
            raise bad_request(f"field label not supported: {label}" if rt.builtin else
                              f'"{label}" is not a known field selector: only '
                              '"metadata.name", "metadata.namespace"')
        terms.append((label, "!=" if op == "!=" else "=", value))
    return terms


def _field_value(obj: dict, label: str) -> str:
    cur: Any = obj
    for part in label.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return ""
        cur = cur[part]
    if isinstance(cur, bool):
        return "true" if cur else "false"
    if isinstance(cur, dict) and label == "source":
        return cur.get("component", "")
    return "" if cur is None else str(cur)


def fields_match(terms: list[tuple[str, str, str]], obj: dict) -> bool:
    for label, op, value in terms:
        actual = _field_value(obj, label)
        if (op == "=") != (actual == value):
            return False
    return True


@dataclass
class Filter:
    """Which objects a list or watch wants: namespace, label and field selectors."""
    namespace: str | None = None
    labels: list[Requirement] = field(default_factory=list)
    fields: list[tuple[str, str, str]] = field(default_factory=list)

    def matches(self, obj: dict) -> bool:
        md = obj.get("metadata", {})
        if self.namespace is not None and md.get("namespace", "") != self.namespace:
            return False
        return labels_match(self.labels, md.get("labels") or {}) and fields_match(self.fields, obj)

    @property
    def has_selectors(self) -> bool:
        return bool(self.labels or self.fields)


# --------------------------------------------------------------------------------------------
# Patches: JSON merge patch, JSON patch, strategic merge patch
# --------------------------------------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


class PatchFailed(Exception):
    pass


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchFailed(f'JSON pointer must start with "/": "{path}"')
    return [t.replace("~1", "/").replace("~0", "~") for t in path[1:].split("/")]


def _index(token: str, length: int, allow_end: bool) -> int:
    if token == "-" and allow_end:
        return length
    if not re.match(r"^(0|[1-9][0-9]*)$", token):
        raise PatchFailed(f"invalid array index: {token}")
    i = int(token)
    if i > length or (i == length and not allow_end):
        raise PatchFailed(f"array index out of bounds: {i}")
    return i


def _resolve(doc: Any, tokens: list[str], path: str) -> Any:
    cur = doc
    for t in tokens:
        if isinstance(cur, dict) and t in cur:
            cur = cur[t]
        elif isinstance(cur, list):
            cur = cur[_index(t, len(cur), False)]
        else:
            raise PatchFailed(f'doc is missing path: "{path}": missing value')
    return cur


def _add(doc: Any, path: str, value: Any) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return value
    parent = _resolve(doc, tokens[:-1], path)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(last, len(parent), True), value)
    else:
        raise PatchFailed(f'doc is missing path: "{path}": missing value')
    return doc


def _remove(doc: Any, path: str) -> tuple[Any, Any]:
    tokens = _pointer(path)
    if not tokens:
        raise PatchFailed("unable to remove the whole document")
    parent = _resolve(doc, tokens[:-1], path)
    last = tokens[-1]
    if isinstance(parent, dict) and last in parent:
        return doc, parent.pop(last)
    if isinstance(parent, list):
        return doc, parent.pop(_index(last, len(parent), False))
    raise PatchFailed(f'Unable to remove nonexistent key: {last}: missing value')


def validate_json_patch(ops: Any) -> None:
    """Malformed RFC 6902 patches are 400 BadRequest (before the object is looked at)."""
    if not isinstance(ops, list):
        raise bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    for op in ops:
        if not isinstance(op, dict) or not isinstance(op.get("op"), str) or \
                not isinstance(op.get("path"), str):
            raise bad_request(f"invalid JSON patch operation: {canon(op)}")
        if op["op"] not in ("add", "remove", "replace", "move", "copy", "test"):
            raise bad_request(f"Unexpected kind: {op['op']}")
        if op["op"] in ("add", "replace", "test") and "value" not in op:
            raise bad_request(f"missing value in {op['op']} operation")
        if op["op"] in ("move", "copy") and not isinstance(op.get("from"), str):
            raise bad_request(f"missing from in {op['op']} operation")


def json_patch(doc: Any, ops: list) -> Any:
    """RFC 6902 on a validated patch; a failing operation raises PatchFailed (422)."""
    for op in ops:
        kind, path = op["op"], op["path"]
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(op["value"]))
        elif kind == "remove":
            doc, _ = _remove(doc, path)
        elif kind == "replace":
            tokens = _pointer(path)
            _resolve(doc, tokens, path)     # must exist
            if tokens:
                doc, _ = _remove(doc, path)
            doc = _add(doc, path, copy.deepcopy(op["value"]))
        elif kind == "move":
            doc, value = _remove(doc, op["from"])
            doc = _add(doc, path, value)
        elif kind == "copy":
            doc = _add(doc, path, copy.deepcopy(_resolve(doc, _pointer(op["from"]), op["from"])))
        elif kind == "test":
            try:
                actual = _resolve(doc, _pointer(path), path)
            except PatchFailed:
                actual = MISSING
            if actual is MISSING or canon(actual) != canon(op["value"]):
                raise PatchFailed(f"testing value {path} failed: test failed")
    return doc


SMP_MERGE_KEYS = {"containers": "name", "initContainers": "name", "ephemeralContainers": "name",
                  "env": "name", "volumes": "name", "volumeMounts": "mountPath",
                  "volumeDevices": "devicePath", "imagePullSecrets": "name", "conditions": "type",
                  "ownerReferences": "uid", "hostAliases": "ip", "resourceClaims": "name"}
SMP_PRIMITIVE_MERGE = {"finalizers"}
_DELETE = object()


def _smp_key(name: str, items: list) -> str | None:
    if name == "ports":
        dicts = [i for i in items if isinstance(i, dict) and i.get("$patch") is None]
        return "containerPort" if any("containerPort" in i for i in dicts) else "port"
    return SMP_MERGE_KEYS.get(name)


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """The subset of strategic merge patch that built-in kinds use (see the module docstring)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return _DELETE
    if directive is not None:
        raise bad_request(f"Unknown patch type: {directive}")
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if k.startswith("$setElementOrder/") or k == "$retainKeys":
            continue
        if k.startswith("$deleteFromPrimitiveList/"):
            name = k.split("/", 1)[1]
            out[name] = [x for x in out.get(name) or [] if x not in (v or [])]
            continue
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict):
            merged = strategic_merge_patch(out.get(k), v)
            if merged is _DELETE:
                out.pop(k, None)
            else:
                out[k] = merged
        elif isinstance(v, list):
            out[k] = _smp_list(k, out.get(k), v)
        else:
            out[k] = v
    return out


def _smp_list(name: str, current: Any, patch: list) -> list:
    current = current if isinstance(current, list) else []
    if name in SMP_PRIMITIVE_MERGE:
        return list(current) + [x for x in patch if x not in current]
    key = _smp_key(name, patch)
    if key is None:
        return copy.deepcopy(patch)
    if any(isinstance(i, dict) and i.get("$patch") == "replace" for i in patch):
        return [copy.deepcopy(i) for i in patch if not (isinstance(i, dict) and "$patch" in i)]
    out = [copy.deepcopy(i) for i in current]
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            raise bad_request(f"map: {canon(item)} does not contain declared merge key: {key}")
        idx = next((i for i, cur in enumerate(out)
                    if isinstance(cur, dict) and cur.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            if idx is not None:
                del out[idx]
            continue
        merged = strategic_merge_patch(out[idx] if idx is not None else {}, item)
        if idx is None:
            out.append(merged)
        else:
            out[idx] = merged
    return out


# --------------------------------------------------------------------------------------------
# Server-side apply: field sets (FieldsV1), merging, conflicts
# --------------------------------------------------------------------------------------------
#
# A field set is a Python set of paths; a path is a tuple of FieldsV1 path elements kept in
# their encoded form: 'f:name' (a map key), 'k:{"name":"x"}' (an associative-list item),
# 'v:"x"' (a set item). A set holds leaves (scalars, atomic lists and maps, empty maps) and
# list items; it never holds plain map paths.

FieldPath = tuple[str, ...]

ASSOCIATIVE_LIST_KEYS: dict[str, tuple[str, ...]] = {
    "containers": ("name",), "initContainers": ("name",), "ephemeralContainers": ("name",),
    "env": ("name",), "volumes": ("name",), "volumeMounts": ("mountPath",),
    "volumeDevices": ("devicePath",), "imagePullSecrets": ("name",),
    "resourceClaims": ("name",), "hostAliases": ("ip",), "conditions": ("type",),
    "ownerReferences": ("uid",),
}
SET_LISTS = {"finalizers"}
ATOMIC_MAPS = {"selector", "nodeSelector"}
KEY_DEFAULTS = {"protocol": "TCP"}
# ObjectMeta fields the server owns; never part of a field set (like stripmeta.go).
SERVER_METADATA = ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields",
                   "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds")
UNTRACKED_METADATA = SERVER_METADATA + ("name", "namespace")


def _list_keys(name: str | None, items: list) -> tuple[str, ...] | None:
    if name == "ports":
        if all(isinstance(i, dict) and "containerPort" in i for i in items):
            return ("containerPort", "protocol")
        if all(isinstance(i, dict) and "port" in i for i in items):
            return ("port", "protocol")
        return None
    return ASSOCIATIVE_LIST_KEYS.get(name or "")


def _item_key(keys: tuple[str, ...], item: Any) -> dict | None:
    if not isinstance(item, dict):
        return None
    out = {}
    for k in keys:
        if k in item:
            out[k] = item[k]
        elif k in KEY_DEFAULTS:
            out[k] = KEY_DEFAULTS[k]
        else:
            return None
    return out


def _key_element(key: dict) -> str:
    return "k:" + json.dumps(key, sort_keys=True, separators=(",", ":"))


def _value_element(value: Any) -> str:
    return "v:" + json.dumps(value, separators=(",", ":"))


def list_semantics(name: str | None, items: list) -> tuple[str, tuple[str, ...]]:
    """('set', ()), ('map', keys) or ('atomic', ()) for a list field called `name`."""
    if name in SET_LISTS and all(isinstance(i, (str, int, float, bool)) for i in items) and \
            len({canon(i) for i in items}) == len(items):
        return ("set", ())
    keys = _list_keys(name, items)
    if keys:
        elems = [_item_key(keys, i) for i in items]
        if all(e is not None for e in elems) and \
                len({_key_element(e) for e in elems}) == len(elems):  # type: ignore[arg-type]
            return ("map", keys)
    return ("atomic", ())


def item_element(semantics: tuple[str, tuple[str, ...]], item: Any) -> str:
    if semantics[0] == "set":
        return _value_element(item)
    return _key_element(_item_key(semantics[1], item))  # type: ignore[arg-type]


def _collect(value: Any, name: str | None, prefix: FieldPath, out: set[FieldPath]) -> None:
    if isinstance(value, dict) and value and name not in ATOMIC_MAPS:
        for k, v in value.items():
            _collect(v, k, prefix + ("f:" + k,), out)
    elif isinstance(value, list) and value:
        sem = list_semantics(name, value)
        if sem[0] == "atomic":
            out.add(prefix)
            return
        for item in value:
            ipath = prefix + (item_element(sem, item),)
            out.add(ipath)
            if sem[0] == "map":
                for k, v in item.items():
                    _collect(v, k, ipath + ("f:" + k,), out)
    else:
        out.add(prefix)


def scoped_view(obj: dict, scope: str) -> dict:
    """The part of `obj` that field ownership tracks in `scope` ("all" | "main" | "status")."""
    out: dict = {}
    for k, v in obj.items():
        if k in ("apiVersion", "kind"):
            continue
        if k == "metadata":
            if scope == "status" or not isinstance(v, dict):
                continue
            md = {mk: mv for mk, mv in v.items() if mk not in UNTRACKED_METADATA}
            if md:
                out["metadata"] = md
            continue
        if (k == "status") != (scope == "status") and scope != "all":
            continue
        out[k] = v
    return out


def field_set(obj: dict, scope: str) -> set[FieldPath]:
    out: set[FieldPath] = set()
    for k, v in scoped_view(obj, scope).items():
        _collect(v, k, ("f:" + k,), out)
    return out


def get_path(root: Any, path: FieldPath) -> Any:
    cur = root
    for el in path:
        if el.startswith("f:"):
            if not isinstance(cur, dict) or el[2:] not in cur:
                return MISSING
            cur = cur[el[2:]]
        elif el.startswith("k:"):
            key = json.loads(el[2:])
            if not isinstance(cur, list):
                return MISSING
            cur = next((i for i in cur if _item_key(tuple(key), i) == key), MISSING)
            if cur is MISSING:
                return MISSING
        elif el.startswith("v:"):
            value = json.loads(el[2:])
            if not isinstance(cur, list) or not any(canon(i) == canon(value) for i in cur):
                return MISSING
            cur = value
        else:
            return MISSING
    return cur


def compare(old: dict | None, new: dict, scope: str) -> tuple[set[FieldPath], set[FieldPath]]:
    """(changed, removed): leaves/items added or whose value changed, and ones that are gone."""
    old_set = field_set(old, scope) if old is not None else set()
    new_set = field_set(new, scope)
    changed = set()
    for p in new_set:
        if p not in old_set:
            changed.add(p)
        elif not p[-1].startswith(("k:", "v:")) and \
                canon(get_path(old, p)) != canon(get_path(new, p)):
            changed.add(p)
    return changed, old_set - new_set


def _element_order(el: str) -> tuple[int, str]:
    return ({"f": 0, "k": 1, "v": 2, "i": 3}.get(el[0], 4), el)


def encode_fields(paths: set[FieldPath]) -> dict:
    tree: dict = {}
    for p in paths:
        node = tree
        for el in p:
            node = node.setdefault(el, {})

    def enc(node: dict, prefix: FieldPath) -> dict:
        out: dict = {}
        if prefix in paths and node:
            out["."] = {}
        for el in sorted(node, key=_element_order):
            out[el] = enc(node[el], prefix + (el,))
        return out
    return enc(tree, ())


def decode_fields(fields: Any, prefix: FieldPath = ()) -> set[FieldPath]:
    out: set[FieldPath] = set()
    if not isinstance(fields, dict):
        return out
    for el, sub in fields.items():
        if el == ".":
            out.add(prefix)
        elif not sub:
            out.add(prefix + (el,))
        else:
            out |= decode_fields(sub, prefix + (el,))
    return out


def path_string(path: FieldPath) -> str:
    """fieldpath.Path.String(): .spec.containers[name="app"].image"""
    s = ""
    for el in path:
        if el.startswith("f:"):
            s += "." + el[2:]
        elif el.startswith("k:"):
            key = json.loads(el[2:])
            s += "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in key.items()) + "]"
        elif el.startswith("v:"):
            s += "[=" + el[2:] + "]"
    return s


def merge_applied(live: Any, applied: Any, name: str | None = None) -> Any:
    """Merges an applied configuration into the live value (maps and keyed lists recursively)."""
    if isinstance(applied, dict) and isinstance(live, dict) and name not in ATOMIC_MAPS:
        out = dict(live)
        for k, v in applied.items():
            if v is None:
                out.pop(k, None)
            elif k in live:
                out[k] = merge_applied(live[k], v, k)
            else:
                out[k] = copy.deepcopy(v)
        return out
    if isinstance(applied, list) and isinstance(live, list) and applied and live:
        sem, live_sem = list_semantics(name, applied), list_semantics(name, live)
        if sem[0] == "set" and live_sem[0] == "set":
            seen = {canon(i) for i in live}
            return list(live) + [copy.deepcopy(i) for i in applied if canon(i) not in seen]
        if sem[0] == "map" and live_sem == sem:
            out = list(live)
            index = {item_element(sem, item): i for i, item in enumerate(live)}
            for item in applied:
                el = item_element(sem, item)
                if el in index:
                    out[index[el]] = merge_applied(live[index[el]], item, None)
                else:
                    out.append(copy.deepcopy(item))
            return out
    return copy.deepcopy(applied)


def remove_path(root: dict, path: FieldPath, keep: Callable[[FieldPath], bool]) -> None:
    """Removes the leaf or item at `path`, then maps/lists it leaves empty unless keep(them)."""
    chain: list[tuple[Any, Any]] = []   # (container, accessor) for each element of path
    cur: Any = root
    for el in path:
        if el.startswith("f:"):
            if not isinstance(cur, dict) or el[2:] not in cur:
                return
            acc: Any = el[2:]
        else:
            if not isinstance(cur, list):
                return
            if el.startswith("k:"):
                key = json.loads(el[2:])
                acc = next((i for i, it in enumerate(cur) if _item_key(tuple(key), it) == key), None)
            else:
                value = canon(json.loads(el[2:]))
                acc = next((i for i, it in enumerate(cur) if canon(it) == value), None)
            if acc is None:
                return
        chain.append((cur, acc))
        cur = cur[acc]
    for depth in range(len(chain) - 1, -1, -1):
        container, acc = chain[depth]
        if depth < len(chain) - 1:
            child = container[acc]
            if child or keep(path[:depth + 1]):
                return
        del container[acc]


@dataclass
class ManagedEntry:
    manager: str
    operation: str             # "Apply" | "Update"
    api_version: str
    time: str
    fields: set[FieldPath]
    subresource: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.manager, self.operation, self.subresource)

    def describe(self) -> str:
        """printManager() from k8s.io/apiserver/pkg/endpoints/handlers/fieldmanager."""
        s = json.dumps(self.manager)
        if self.subresource:
            s += f" with subresource {json.dumps(self.subresource)}"
        if self.operation == "Update":
            s += f" using {self.api_version}"
        return s

    def encode(self) -> dict:
        out = {"manager": self.manager, "operation": self.operation,
               "apiVersion": self.api_version, "time": self.time, "fieldsType": "FieldsV1",
               "fieldsV1": encode_fields(self.fields)}
        if self.subresource:
            out["subresource"] = self.subresource
        return out


def decode_managed(obj: dict | None) -> list[ManagedEntry]:
    entries = []
    for e in (obj or {}).get("metadata", {}).get("managedFields") or []:
        entries.append(ManagedEntry(e.get("manager", ""), e.get("operation", "Update"),
                                    e.get("apiVersion", ""), e.get("time", ""),
                                    decode_fields(e.get("fieldsV1")), e.get("subresource", "")))
    return entries


def encode_managed(entries: list[ManagedEntry], old: dict | None) -> list[dict]:
    """Drops empty entries; keeps the old timestamp of entries whose fields did not change."""
    before = {e.key: e for e in decode_managed(old)}
    out = []
    for e in entries:
        if not e.fields:
            continue
        prev = before.get(e.key)
        if prev is not None and prev.fields == e.fields and prev.api_version == e.api_version:
            e.time = prev.time
        elif prev is not None:
            e.time = now_rfc3339()
        out.append(e.encode())
    return out


def apply_conflict_error(conflicts: list[tuple[ManagedEntry, FieldPath]]) -> ApiError:
    """The 409 of k8s.io/apiserver's internal.NewConflictError."""
    if len(conflicts) == 1:
        e, p = conflicts[0]
        message = f"Apply failed with 1 conflict: conflict with {e.describe()}: {path_string(p)}"
    else:
        by_manager: dict[str, list[str]] = {}
        for e, p in conflicts:
            by_manager.setdefault(e.describe(), []).append(path_string(p))
        lines = []
        for m in sorted(by_manager):
            lines.append(f"conflicts with {m}:")
            lines += [f"- {p}" for p in by_manager[m]]
        message = f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)
    causes = [{"reason": "FieldManagerConflict", "message": f"conflict with {e.describe()}",
               "field": path_string(p)} for e, p in conflicts]
    return ApiError(409, "Conflict", message, {"causes": causes})


def track_update(entries: list[ManagedEntry], manager: str, subresource: str, api_version: str,
                 old: dict | None, new: dict, scope: str) -> None:
    """A non-apply write: `manager` takes the fields it changed; removed fields lose owners."""
    changed, removed = compare(old, new, scope)
    mine = next((e for e in entries if e.key == (manager, "Update", subresource)), None)
    if changed and mine is None:
        mine = ManagedEntry(manager, "Update", api_version, now_rfc3339(), set(), subresource)
        entries.append(mine)
    for e in entries:
        e.fields -= removed
        if e is not mine:
            e.fields -= changed
    if mine is not None:
        mine.fields |= changed
        mine.api_version = api_version if changed else mine.api_version


def prune_entries(entries: list[ManagedEntry], obj: dict) -> None:
    """Nobody owns a field that does not exist."""
    existing = field_set(obj, "all")
    for e in entries:
        e.fields &= existing


# --------------------------------------------------------------------------------------------
# Storage
# --------------------------------------------------------------------------------------------


@dataclass
class WatchEvent:
    rv: int
    key: tuple[str, str]
    type: str               # ADDED | MODIFIED | DELETED
    obj: dict               # the object after the event (for DELETED: its final state)
    prev: dict | None       # the object before the event


class Store:
    """All objects, the global resourceVersion and the event history, behind one lock.

    Thread safety: every public method takes `self._cond`'s lock, so writes are serialized
    (e.g. exactly one of several concurrent PUTs with the same resourceVersion wins). Stored
    objects are never mutated after they are committed; readers may serialize them without the
    lock.
    """

    def __init__(self, history_limit: int = 1000, namespace_on_demand: bool = False):
        self._cond = threading.Condition(threading.RLock())
        self._history_limit = max(0, history_limit)
        self._namespace_on_demand = namespace_on_demand
        self._rv = 0
        self._closed = False
        self.close_abrupt = False
        self.watch_epoch = 0
        with self._cond:
            self._reset_locked()

    # -- bookkeeping ---------------------------------------------------------------------

    def _reset_locked(self) -> None:
        self._objects: dict[tuple[str, str], dict[tuple[str, str], dict]] = {}
        self._by_uid: dict[str, tuple[ResourceType, str, str]] = {}
        self._history: deque[WatchEvent] = deque()
        self._compacted = self._rv     # watches/lists from an RV below this get 410
        self.watch_epoch += 1
        for ns in INITIAL_NAMESPACES:
            self._create_namespace(ns)
        self._cond.notify_all()

    def reset(self) -> None:
        """Forgets every object and all history; resourceVersions keep growing."""
        with self._cond:
            self._reset_locked()

    def compact(self) -> int:
        with self._cond:
            self._history.clear()
            self._compacted = self._rv
            self._cond.notify_all()
            return self._rv

    def close_watches(self, abrupt: bool = False) -> None:
        with self._cond:
            self.close_abrupt = abrupt
            self.watch_epoch += 1
            self._cond.notify_all()

    def shutdown(self) -> None:
        with self._cond:
            self._closed = True
            self.watch_epoch += 1
            self._cond.notify_all()

    @property
    def resource_version(self) -> int:
        with self._cond:
            return self._rv

    def _bucket(self, rt: ResourceType) -> dict[tuple[str, str], dict]:
        return self._objects.setdefault(rt.key, {})

    def _commit(self, rt: ResourceType, type_: str, obj: dict, prev: dict | None) -> dict:
        """Stores `obj` (now owned by the store) with the next resourceVersion."""
        self._rv += 1
        md = obj["metadata"]
        md["resourceVersion"] = str(self._rv)
        key = (md.get("namespace", ""), md["name"])
        if type_ == "DELETED":
            self._bucket(rt).pop(key, None)
            self._by_uid.pop(md["uid"], None)
        else:
            self._bucket(rt)[key] = obj
            self._by_uid[md["uid"]] = (rt, key[0], key[1])
        if self._history_limit == 0:
            self._compacted = self._rv
        else:
            self._history.append(WatchEvent(self._rv, rt.key, type_, obj, prev))
            while len(self._history) > self._history_limit:
                self._compacted = self._history.popleft().rv
        self._cond.notify_all()
        return obj

    def _create_namespace(self, name: str) -> dict:
        obj = {"apiVersion": "v1", "kind": "Namespace",
               "metadata": {"name": name, "uid": str(uuid.uuid4()),
                            "creationTimestamp": now_rfc3339(), "generation": 1,
                            "labels": {"kubernetes.io/metadata.name": name}},
               "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}
        return self._commit(NAMESPACES, "ADDED", obj, None)

    def _get_locked(self, rt: ResourceType, ns: str, name: str) -> dict:
        obj = self._bucket(rt).get((ns, name))
        if obj is None:
            raise not_found(rt, name)
        return obj

    # -- reads ---------------------------------------------------------------------------

    def get(self, rt: ResourceType, ns: str, name: str) -> dict:
        with self._cond:
            return self._get_locked(rt, ns, name)

    def _objects_at(self, rt: ResourceType, rv: int) -> dict[tuple[str, str], dict]:
        """The objects of `rt` as of resourceVersion `rv` (requires rv >= self._compacted)."""
        objs = dict(self._bucket(rt))
        for ev in reversed(self._history):
            if ev.rv <= rv:
                break
            if ev.key != rt.key:
                continue
            md = ev.obj["metadata"]
            k = (md.get("namespace", ""), md["name"])
            if ev.type == "ADDED":
                objs.pop(k, None)
            else:
                objs[k] = ev.prev  # type: ignore[assignment]
        return objs

    def list(self, rt: ResourceType, flt: Filter, limit: int, continue_token: str,
             rv_param: str | None, rv_match: str) -> dict:
        with self._cond:
            start_after = None
            if continue_token:
                snapshot, start_after = _decode_continue(continue_token)
                if snapshot < self._compacted:
                    raise gone_expired(
                        "The provided continue parameter is too old to display a consistent "
                        "list result. You can start a new list without the continue parameter.")
            elif rv_param and rv_match == "Exact":
                snapshot = _parse_rv(rv_param)
                if snapshot < self._compacted:
                    raise gone_expired(f"too old resource version: {snapshot} ({self._compacted})")
                if snapshot > self._rv:
                    raise too_large_rv(snapshot, self._rv)
            else:
                if rv_param and rv_param != "0":
                    wanted = _parse_rv(rv_param)
                    deadline = time.monotonic() + 3
                    while wanted > self._rv and time.monotonic() < deadline:
                        self._cond.wait(deadline - time.monotonic())
                    if wanted > self._rv:
                        raise too_large_rv(wanted, self._rv)
                snapshot = self._rv
            objs = self._objects_at(rt, snapshot)
        keys = sorted(k for k, o in objs.items() if flt.matches(o))
        if start_after is not None:
            keys = [k for k in keys if k > start_after]
        list_meta: dict[str, Any] = {"resourceVersion": str(snapshot)}
        if limit and len(keys) > limit:
            list_meta["continue"] = _encode_continue(snapshot, keys[limit - 1])
            if not flt.has_selectors:
                list_meta["remainingItemCount"] = len(keys) - limit
            keys = keys[:limit]
        return {"kind": rt.kind + "List", "apiVersion": rt.api_version, "metadata": list_meta,
                "items": [objs[k] for k in keys]}

    # -- watches -------------------------------------------------------------------------

    def watch_begin(self, rt: ResourceType, flt: Filter, rv_param: str | None
                    ) -> tuple[list[tuple[str, dict]], int, int]:
        """(initial events, cursor, epoch). Raises ApiError 410 if rv_param is compacted."""
        with self._cond:
            if not rv_param or rv_param == "0":
                objs = self._bucket(rt)
                initial = [("ADDED", objs[k]) for k in sorted(objs) if flt.matches(objs[k])]
                return initial, self._rv, self.watch_epoch
            rv = _parse_rv(rv_param)
            if rv < self._compacted:
                raise gone_expired(f"too old resource version: {rv} ({self._compacted})")
            return [], rv, self.watch_epoch

    def watch_wait(self, cursor: int, epoch: int, timeout: float
                   ) -> tuple[list[WatchEvent], int, str]:
        """Events after `cursor`: (events, new cursor, "ok" | "idle" | "expired" | "closed")."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if self.watch_epoch != epoch or self._closed:
                    return [], cursor, "closed"
                if cursor < self._compacted:
                    return [], cursor, "expired"
                if self._rv > cursor:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return [], cursor, "idle"
                self._cond.wait(remaining)
            events = []
            for ev in reversed(self._history):
                if ev.rv <= cursor:
                    break
                events.append(ev)
            events.reverse()
            return events, self._rv, "ok"

    @property
    def compacted(self) -> int:
        with self._cond:
            return self._compacted

    # -- writes --------------------------------------------------------------------------

    def _check_namespace(self, rt: ResourceType, ns: str) -> None:
        if not rt.namespaced:
            return
        existing = self._bucket(NAMESPACES).get(("", ns))
        if existing is None:
            if not self._namespace_on_demand:
                raise not_found(NAMESPACES, ns)
            self._create_namespace(ns)
        elif existing["metadata"].get("deletionTimestamp"):
            raise ApiError(403, "Forbidden",
                           f'{rt.resource} "{ns}" is forbidden: unable to create new content in '
                           f"namespace {ns} because it is being terminated",
                           _details(rt, ns))

    def _prepare_new(self, rt: ResourceType, ns: str, obj: dict) -> dict:
        """System metadata for a new object; validates the name (generateName applied)."""
        md = meta(obj)
        if md.get("resourceVersion"):
            raise invalid_object(rt, md.get("name", ""), [FieldError(
                "metadata.resourceVersion", "Invalid value",
                "resourceVersion should not be set on objects to be created",
                md["resourceVersion"])])
        if not md.get("name"):
            base = md.get("generateName")
            if not base:
                raise invalid_object(rt, "", [FieldError(
                    "metadata.name", "Required value", "name or generateName is required")])
            base = base[:58]
            for _ in range(16):
                name = base + "".join(random.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))
                if (ns, name) not in self._bucket(rt):
                    break
            md["name"] = name
        errs = validate_name(rt.name_rule, md["name"])
        errs += validate_metadata(md)
        if errs:
            raise invalid_object(rt, md["name"], errs)
        for f in SERVER_METADATA:
            md.pop(f, None)
        if rt.namespaced:
            md["namespace"] = ns
        else:
            md.pop("namespace", None)
        md["uid"] = str(uuid.uuid4())
        md["creationTimestamp"] = now_rfc3339()
        md["generation"] = 1
        if rt.status_subresource:
            obj.pop("status", None)
        if rt is NAMESPACES:                # what the namespace strategy and admission add
            md.setdefault("labels", {})["kubernetes.io/metadata.name"] = md["name"]
            obj["status"] = {"phase": "Active"}
        return obj

    def create(self, rt: ResourceType, ns: str, body: dict, manager: str) -> dict:
        with self._cond:
            obj = copy.deepcopy(body)
            md = meta(obj)
            if rt.namespaced and md.get("namespace") and md["namespace"] != ns:
                raise bad_request("the namespace of the provided object does not match the "
                                  "namespace sent on the request")
            self._prepare_new(rt, ns, obj)
            if (ns, md["name"]) in self._bucket(rt):
                raise already_exists(rt, md["name"])
            self._check_namespace(rt, ns)
            scope = "main" if rt.status_subresource else "all"
            entries = [ManagedEntry(manager, "Update", rt.api_version, now_rfc3339(),
                                    field_set(obj, scope))]
            md["managedFields"] = encode_managed(entries, None)
            if not md["managedFields"]:
                del md["managedFields"]
            return self._commit(rt, "ADDED", obj, None)

    def update(self, rt: ResourceType, ns: str, name: str, subresource: str, body: dict,
               manager: str) -> dict:
        with self._cond:
            old = self._get_locked(rt, ns, name)
            check_preconditions(rt, old, body)
            return self._update_locked(rt, old, body, subresource, manager)

    def patch(self, rt: ResourceType, ns: str, name: str, subresource: str,
              patcher: Callable[[dict], Any], manager: str) -> dict:
        """Non-apply PATCH: `patcher` maps a copy of the live object to the patched one."""
        with self._cond:
            old = self._get_locked(rt, ns, name)
            try:
                patched = patcher(copy.deepcopy(old))
            except PatchFailed as e:
                raise ApiError(422, "Invalid", str(e)) from None
            check_type_meta(rt, patched)
            check_identity(rt, patched, ns, name)
            # A resourceVersion or uid left in the patched object is a precondition.
            check_preconditions(rt, old, patched)
            return self._update_locked(rt, old, patched, subresource, manager)

    def _update_locked(self, rt: ResourceType, old: dict, body: dict, subresource: str,
                       manager: str) -> dict:
        scope = "status" if subresource == "status" else ("main" if rt.status_subresource else "all")
        if scope == "status":
            new = copy.deepcopy(old)
            if "status" in body:
                new["status"] = copy.deepcopy(body["status"])
            else:
                new.pop("status", None)
        else:
            new = copy.deepcopy(body)
            if scope == "main":
                if "status" in old:
                    new["status"] = copy.deepcopy(old["status"])
                else:
                    new.pop("status", None)
            md = meta(new)
            for f in SERVER_METADATA + ("name", "namespace"):
                md.pop(f, None)
                if f in old["metadata"]:
                    md[f] = old["metadata"][f]
        entries = decode_managed(old)
        track_update(entries, manager, subresource, rt.api_version, old, new, scope)
        return self._finish_update_locked(rt, old, new, entries)

    def _finish_update_locked(self, rt: ResourceType, old: dict, new: dict,
                              entries: list[ManagedEntry]) -> dict:
        """Validation, generation, managedFields, no-op detection, finalizer-driven deletion."""
        md, old_md = meta(new), old["metadata"]
        name = old_md["name"]
        if old_md.get("deletionTimestamp"):
            added = [f for f in md.get("finalizers") or [] if f not in (old_md.get("finalizers") or [])]
            if added:
                raise invalid_object(rt, name, [FieldError(
                    "metadata.finalizers", "Forbidden",
                    "no new finalizers can be added if the object is being deleted, found new "
                    f"finalizers []string{{{', '.join(json.dumps(f) for f in added)}}}")])
        errs = validate_metadata(md)
        if errs:
            raise invalid_object(rt, name, errs)
        if not md.get("finalizers"):
            md.pop("finalizers", None)
        if not md.get("ownerReferences"):
            md.pop("ownerReferences", None)
        if _spec_view(old) != _spec_view(new):
            md["generation"] = old_md.get("generation", 0) + 1
        prune_entries(entries, new)
        md["managedFields"] = encode_managed(entries, old)
        if not md["managedFields"]:
            del md["managedFields"]
        if canon(new) == canon(old):
            return old                           # a no-op: no new resourceVersion, no event
        if old_md.get("deletionTimestamp") and not md.get("finalizers"):
            return self._delete_now(rt, new, old, "Background")
        return self._commit(rt, "MODIFIED", new, old)

    def apply(self, rt: ResourceType, ns: str, name: str, subresource: str, body: dict,
              manager: str, force: bool) -> tuple[dict, bool]:
        """Server-side apply. Returns (object, created)."""
        with self._cond:
            check_type_meta(rt, body)
            cfg = copy.deepcopy(body)
            md = meta(cfg)
            if md.get("name", name) != name:
                raise bad_request(f"the name of the object ({md['name']}) does not match the "
                                  f"name on the URL ({name})")
            if rt.namespaced and md.get("namespace", ns) != ns:
                raise bad_request("the namespace of the provided object does not match the "
                                  "namespace sent on the request")
            precondition = md.get("resourceVersion")
            for f in SERVER_METADATA:
                md.pop(f, None)
            md["name"] = name
            if rt.namespaced:
                md["namespace"] = ns
            scope = "status" if subresource == "status" else ("main" if rt.status_subresource else "all")
            if scope == "status":
                cfg = {"apiVersion": cfg["apiVersion"], "kind": cfg["kind"],
                       "metadata": {k: v for k, v in md.items() if k in ("name", "namespace")},
                       **({"status": cfg["status"]} if "status" in cfg else {})}
            elif scope == "main":
                cfg.pop("status", None)
            applied = field_set(cfg, scope)
            old = self._bucket(rt).get((ns, name))
            if old is None:
                if subresource:
                    raise not_found(rt, name)
                if precondition:
                    raise conflict(rt, name, MODIFIED_MSG)
                obj = self._prepare_new(rt, ns, cfg)
                self._check_namespace(rt, ns)
                entries = [ManagedEntry(manager, "Apply", rt.api_version, now_rfc3339(), applied)]
                obj["metadata"]["managedFields"] = encode_managed(entries, None)
                if not obj["metadata"]["managedFields"]:
                    del obj["metadata"]["managedFields"]
                return self._commit(rt, "ADDED", obj, None), True
            if precondition and precondition != obj_rv(old):
                raise conflict(rt, name, MODIFIED_MSG)
            merged = merge_applied(old, cfg)
            changed, removed = compare(old, merged, scope)
            entries = decode_managed(old)
            me = (manager, "Apply", subresource)
            conflicts = [(e, p) for e in entries if e.key != me
                         for p in sorted(e.fields & (changed | removed))]
            if conflicts and not force:
                raise apply_conflict_error(conflicts)
            for e, p in conflicts:
                e.fields.discard(p)
            mine = next((e for e in entries if e.key == me), None)
            if mine is None:
                mine = ManagedEntry(manager, "Apply", rt.api_version, now_rfc3339(), set(),
                                    subresource)
                entries.append(mine)
            previously, mine.fields, mine.api_version = mine.fields, set(applied), rt.api_version
            owned_by_others = {p[:i] for e in entries if e is not mine
                               for p in e.fields for i in range(1, len(p) + 1)}
            owned_by_anyone = set().union(*(e.fields for e in entries))
            for p in sorted(previously - applied, key=len, reverse=True):
                if len(p) >= 2 and p[-2].startswith("k:") and p[-1][2:] in json.loads(p[-2][2:]):
                    continue                    # a key field goes only with its item
                if p not in owned_by_others:
                    remove_path(merged, p, lambda q: q in owned_by_anyone)
            return self._finish_update_locked(rt, old, merged, entries), False

    def delete(self, rt: ResourceType, ns: str, name: str, options: dict) -> tuple[dict, bool]:
        """Returns (object, deleted now)."""
        with self._cond:
            old = self._get_locked(rt, ns, name)
            pre = options.get("preconditions") or {}
            if pre.get("uid") and pre["uid"] != old["metadata"]["uid"]:
                raise conflict(rt, name, f"Precondition failed: UID in precondition: {pre['uid']}, "
                                         f"UID in object meta: {old['metadata']['uid']}")
            if pre.get("resourceVersion") and pre["resourceVersion"] != obj_rv(old):
                raise conflict(rt, name, "Precondition failed: ResourceVersion in precondition: "
                                         f"{pre['resourceVersion']}, ResourceVersion in object meta: "
                                         f"{obj_rv(old)}")
            return self._request_delete(rt, old, options.get("propagationPolicy") or "Background")

    def delete_collection(self, rt: ResourceType, flt: Filter, options: dict) -> dict:
        with self._cond:
            objs = self._bucket(rt)
            victims = [objs[k] for k in sorted(objs) if flt.matches(objs[k])]
            out = []
            for v in victims:
                md = v["metadata"]
                current = self._bucket(rt).get((md.get("namespace", ""), md["name"]))
                if current is not None:
                    out.append(self._request_delete(rt, current,
                                                    options.get("propagationPolicy") or "Background")[0])
            return {"kind": rt.kind + "List", "apiVersion": rt.api_version,
                    "metadata": {"resourceVersion": str(self._rv)}, "items": out}

    def _request_delete(self, rt: ResourceType, old: dict, propagation: str) -> tuple[dict, bool]:
        if old["metadata"].get("finalizers"):
            if old["metadata"].get("deletionTimestamp"):
                return old, False
            new = copy.deepcopy(old)
            new["metadata"]["deletionTimestamp"] = now_rfc3339()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            return self._commit(rt, "MODIFIED", new, old), False
        return self._delete_now(rt, copy.deepcopy(old), old, propagation), True

    def _delete_now(self, rt: ResourceType, final: dict, old: dict, propagation: str) -> dict:
        deleted = self._commit(rt, "DELETED", final, old)
        self._collect_garbage(deleted["metadata"]["uid"], orphan=propagation == "Orphan")
        return deleted

    def _collect_garbage(self, owner_uid: str, orphan: bool) -> None:
        """Deletes (or with orphan, releases) every object owned by `owner_uid`."""
        dependents = [(TYPES_BY_KEY[key], obj) for key, bucket in list(self._objects.items())
                      for obj in list(bucket.values())
                      if any(r.get("uid") == owner_uid
                             for r in obj["metadata"].get("ownerReferences") or [])]
        for rt, obj in dependents:
            md = obj["metadata"]
            current = self._bucket(rt).get((md.get("namespace", ""), md["name"]))
            if current is None or current["metadata"]["uid"] != md["uid"]:
                continue
            refs = current["metadata"].get("ownerReferences") or []
            alive = [r for r in refs if r.get("uid") != owner_uid and r.get("uid") in self._by_uid]
            if orphan or alive:
                new = copy.deepcopy(current)
                new["metadata"]["ownerReferences"] = [r for r in refs if r.get("uid") != owner_uid]
                entries = decode_managed(current)
                track_update(entries, "generic-garbage-collector", "", rt.api_version, current,
                             new, "main" if rt.status_subresource else "all")
                self._finish_update_locked(rt, current, new, entries)
            else:
                self._request_delete(rt, current, "Background")


def check_preconditions(rt: ResourceType, old: dict, new: dict) -> None:
    """metadata.uid and metadata.resourceVersion of an update are preconditions (409)."""
    md, old_md = new.get("metadata", {}), old["metadata"]
    if md.get("uid") and md["uid"] != old_md["uid"]:
        raise conflict(rt, old_md["name"], f"Precondition failed: UID in precondition: {md['uid']}, "
                                           f"UID in object meta: {old_md['uid']}")
    if md.get("resourceVersion") and md["resourceVersion"] != old_md["resourceVersion"]:
        raise conflict(rt, old_md["name"], MODIFIED_MSG)


def check_identity(rt: ResourceType, obj: dict, ns: str, name: str) -> None:
    md = obj.get("metadata", {})
    if md.get("name") != name:
        raise bad_request(f"the name of the object ({md.get('name', '')}) does not match the "
                          f"name on the URL ({name})")
    if rt.namespaced and md.get("namespace") and md["namespace"] != ns:
        raise bad_request("the namespace of the provided object does not match the namespace "
                          "sent on the request")


def _spec_view(obj: dict) -> str:
    return canon({k: v for k, v in obj.items() if k not in ("metadata", "status")})


def _parse_rv(value: str) -> int:
    if not re.match(r"^\d+$", value):
        raise bad_request(f'invalid resource version "{value}"')
    return int(value)


def too_large_rv(wanted: int, current: int) -> ApiError:
    return ApiError(504, "Timeout", f"Too large resource version: {wanted}, current: {current}",
                    {"causes": [{"reason": "ResourceVersionTooLarge",
                                 "message": "Too large resource version"}],
                     "retryAfterSeconds": 1})


def _encode_continue(rv: int, last: tuple[str, str]) -> str:
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": list(last)})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_continue(token: str) -> tuple[int, tuple[str, str]]:
    try:
        raw = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if raw.get("v") != "meta.k8s.io/v1":
            raise ValueError("version")
        return int(raw["rv"]), (str(raw["start"][0]), str(raw["start"][1]))
    except (ValueError, KeyError, IndexError, TypeError):
        raise bad_request("continue key is not valid: incorrect encoded start resourceVersion "
                          "(version meta.k8s.io/v1)") from None


# --------------------------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------------------------


@dataclass
class Route:
    rt: ResourceType
    namespace: str | None
    name: str | None
    subresource: str
    watch_path: bool


def parse_resource_path(path: str) -> Route:
    segs = [s for s in path.split("/") if s]
    if len(segs) >= 2 and segs[0] == "api":
        group, version, rest = "", segs[1], segs[2:]
    elif len(segs) >= 3 and segs[0] == "apis":
        group, version, rest = segs[1], segs[2], segs[3:]
    else:
        raise no_such_resource()
    watch_path = bool(rest) and rest[0] == "watch"
    if watch_path:
        rest = rest[1:]
    if not rest:
        raise no_such_resource()
    ns = None
    if rest[0] == "namespaces" and len(rest) >= 3 and not (len(rest) == 3 and rest[2] in
                                                           ("status", "finalize")):
        ns, rest = rest[1], rest[2:]
    if len(rest) > 3:
        raise no_such_resource()
    rt = TYPES_BY_PATH.get((group, version, rest[0]))
    if rt is None or (ns is not None and not rt.namespaced):
        raise no_such_resource()
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else ""
    if rt.namespaced and ns is None and name is not None:
        raise no_such_resource()
    if sub and not (sub == "status" and rt.status_subresource):
        raise no_such_resource()
    if watch_path and sub:
        raise no_such_resource()
    return Route(rt, ns, name, sub, watch_path)


def _discovery_resources(group: str, version: str) -> dict:
    resources = []
    for t in RESOURCE_TYPES:
        if (t.group, t.version) != (group, version):
            continue
        verbs = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
        resources.append({"name": t.plural, "singularName": t.singular, "namespaced": t.namespaced,
                          "kind": t.kind, "verbs": verbs})
        if t.status_subresource:
            resources.append({"name": t.plural + "/status", "singularName": "",
                              "namespaced": t.namespaced, "kind": t.kind,
                              "verbs": ["get", "patch", "update"]})
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
            "resources": resources}


def _api_groups() -> list[dict]:
    groups: dict[str, list[str]] = {}
    for t in RESOURCE_TYPES:
        if t.group and t.version not in groups.setdefault(t.group, []):
            groups[t.group].append(t.version)
    return [{"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v} for v in vs],
             "preferredVersion": {"groupVersion": f"{g}/{vs[0]}", "version": vs[0]}}
            for g, vs in groups.items()]


class FakeApiServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], store: Store, token: str | None,
                 ssl_context: ssl.SSLContext | None, bookmark_interval: float):
        self.store = store
        self.token = token
        self.ssl_context = ssl_context
        self.bookmark_interval = bookmark_interval
        self.request_log: deque[dict] = deque(maxlen=1000)
        self.log_lock = threading.Lock()
        super().__init__(address, ApiHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (ssl.SSLError, ConnectionError, TimeoutError, OSError)):
            return                          # failed handshakes, clients that went away
        super().handle_error(request, client_address)


class ApiHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FakeApiServer

    def version_string(self) -> str:
        return "fake-kube-apiserver"

    def setup(self) -> None:
        if self.server.ssl_context is not None:
            self.request.settimeout(10)     # the handshake runs here, in the worker thread
            self.request = self.server.ssl_context.wrap_socket(self.request, server_side=True)
            self.request.settimeout(None)
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        if os.environ.get("FAKE_APISERVER_VERBOSE"):
            super().log_message(format, *args)

    # -- plumbing ------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def send_response(self, code: int, message: str | None = None) -> None:
        super().send_response(code, message)
        url = urlsplit(getattr(self, "path", "") or "")
        if url.path == "/fake/requests":
            return
        headers = getattr(self, "headers", None) or {}
        entry = {"time": now_rfc3339(), "method": self.command, "path": url.path,
                 "query": url.query, "contentType": headers.get("Content-Type", ""),
                 "userAgent": headers.get("User-Agent", ""), "status": code}
        with self.server.log_lock:
            self.server.request_log.append(entry)

    def _send_json(self, code: int, body: Any, headers: dict | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _send_text(self, code: int, text: str) -> None:
        data = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _authenticated(self) -> bool:
        token = self.server.token
        if token is None:
            return True
        if self.server.ssl_context is not None and self.connection.getpeercert():
            return True                     # a client certificate signed by our CA
        auth = self.headers.get("Authorization", "")
        return auth == f"Bearer {token}"

    def _field_manager(self, params: dict[str, str]) -> str:
        manager = params.get("fieldManager")
        if manager is None:
            manager = self.headers.get("User-Agent", "").split("/", 1)[0]
        return manager[:128]

    # -- dispatch ------------------------------------------------------------------------

    def _dispatch(self) -> None:
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            return
        url = urlsplit(self.path)
        params = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        try:
            public = url.path in ("/healthz", "/livez", "/readyz", "/version") and \
                "Authorization" not in self.headers
            if not public and not self._authenticated():
                raise ApiError(401, "Unauthorized", "Unauthorized")
            self._route(url.path, params, body)
        except ApiError as e:
            self._send_json(e.code, e.status())
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self.close_connection = True
        except Exception as e:  # noqa: BLE001 - answer like the apiserver's panic handler
            import traceback
            traceback.print_exc()
            self._send_json(500, ApiError(500, "InternalError",
                                          f"Internal error occurred: {e}").status())

    def _route(self, path: str, params: dict[str, str], body: bytes) -> None:
        method = self.command
        if path in ("/healthz", "/livez", "/readyz"):
            if method not in ("GET", "HEAD"):
                raise method_not_allowed()
            return self._send_text(200, "ok")
        if path == "/version":
            return self._send_json(200, KUBE_VERSION)
        if path.startswith("/fake/"):
            return self._fake(path, params)
        if method not in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            raise method_not_allowed()
        segs = [s for s in path.split("/") if s]
        if method == "GET" and (segs in (["api"], ["apis"], ["api", "v1"]) or
                                (segs[:1] == ["apis"] and len(segs) in (2, 3))):
            return self._discovery(segs)
        route = parse_resource_path(path)
        if "dryRun" in params:
            raise bad_request("dryRun is not supported by the fake apiserver")
        if method == "GET":
            if route.name is not None and not route.watch_path:
                return self._send_json(200, self.server.store.get(route.rt, route.namespace or "",
                                                                  route.name))
            if route.watch_path or params.get("watch") in ("true", "1"):
                return self._watch(route, params)
            return self._list(route, params)
        if method == "POST":
            if route.name is not None or (route.rt.namespaced and route.namespace is None):
                raise method_not_allowed()
            obj = self._decode_body(body, ("application/json", "application/yaml"))
            check_type_meta(route.rt, obj)
            created = self.server.store.create(route.rt, route.namespace or "", obj,
                                               self._field_manager(params))
            return self._send_json(201, created)
        if method == "PUT":
            if route.name is None:
                raise method_not_allowed()
            obj = self._decode_body(body, ("application/json", "application/yaml"))
            check_type_meta(route.rt, obj)
            check_identity(route.rt, obj, route.namespace or "", route.name)
            return self._send_json(200, self.server.store.update(
                route.rt, route.namespace or "", route.name, route.subresource, obj,
                self._field_manager(params)))
        if method == "PATCH":
            if route.name is None:
                raise method_not_allowed()
            return self._patch(route, params, body)
        if method == "DELETE":
            if route.subresource:
                raise method_not_allowed()
            options = self._delete_options(params, body)
            if route.name is None:
                flt = self._filter(route, params)
                return self._send_json(200, self.server.store.delete_collection(route.rt, flt,
                                                                                options))
            obj, deleted = self.server.store.delete(route.rt, route.namespace or "", route.name,
                                                    options)
            if deleted and not route.rt.returns_deleted_object:
                details = _details(route.rt, route.name)
                details["uid"] = obj["metadata"]["uid"]
                return self._send_json(200, {"kind": "Status", "apiVersion": "v1",
                                             "metadata": {}, "status": "Success",
                                             "details": details})
            return self._send_json(200, obj)

    def _decode_body(self, body: bytes, accepted: tuple[str, ...]) -> Any:
        ctype = self.headers.get("Content-Type", "").split(";")[0].strip().lower() or accepted[0]
        if ctype not in accepted:
            raise unsupported_media_type(accepted)
        try:
            text = body.decode("utf-8")
            if ctype.endswith("json"):
                return json.loads(text)
            try:
                return json.loads(text)
            except ValueError:
                return yaml.safe_load(text)
        except (ValueError, yaml.YAMLError) as e:
            raise bad_request(f"couldn't get version/kind; json parse error: {e}") from None

    def _delete_options(self, params: dict[str, str], body: bytes) -> dict:
        options: dict = {}
        if body.strip():
            try:
                options = json.loads(body)
            except ValueError as e:
                raise bad_request(f"couldn't decode DeleteOptions: {e}") from None
            if not isinstance(options, dict):
                raise bad_request("DeleteOptions must be a JSON object")
        if "propagationPolicy" in params:
            options["propagationPolicy"] = params["propagationPolicy"]
        policy = options.get("propagationPolicy")
        if policy not in (None, "Orphan", "Background", "Foreground"):
            raise invalid("DeleteOptions.meta.k8s.io", "", [FieldError(
                "propagationPolicy", "Invalid value",
                'supported values: "Foreground", "Background", "Orphan"', policy)],
                "meta.k8s.io", "DeleteOptions")
        return options

    def _filter(self, route: Route, params: dict[str, str]) -> Filter:
        return Filter(route.namespace, parse_label_selector(params.get("labelSelector", "")),
                      parse_field_selector(route.rt, params.get("fieldSelector", "")))

    def _list(self, route: Route, params: dict[str, str]) -> None:
        flt = self._filter(route, params)
        try:
            limit = int(params.get("limit") or 0)
            if limit < 0:
                raise ValueError
        except ValueError:
            raise bad_request(f"invalid limit: {params.get('limit')}") from None
        cont = params.get("continue", "")
        rv, match = params.get("resourceVersion"), params.get("resourceVersionMatch", "")
        if cont and rv:
            raise bad_request("specifying resource version is not allowed when using continue")
        if match and not rv:
            raise bad_request("resourceVersionMatch is forbidden unless resourceVersion is provided")
        if match not in ("", "NotOlderThan", "Exact"):
            raise bad_request(f'resourceVersionMatch "{match}" is not supported')
        if match == "Exact" and rv == "0":
            raise bad_request('resourceVersionMatch "exact" is forbidden for resourceVersion "0"')
        self._send_json(200, self.server.store.list(route.rt, flt, limit, cont, rv, match))

    def _patch(self, route: Route, params: dict[str, str], body: bytes) -> None:
        ctype = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        rt, ns, name = route.rt, route.namespace or "", route.name or ""
        accepted = ["application/json-patch+json", "application/merge-patch+json",
                    "application/apply-patch+yaml"]
        if rt.builtin:
            accepted.insert(2, "application/strategic-merge-patch+json")
        if ctype not in accepted:
            raise unsupported_media_type(accepted)
        manager = params.get("fieldManager")
        errs = []
        if ctype == "application/apply-patch+yaml":
            if not manager:
                errs.append(FieldError("fieldManager", "Required value", "is required for apply patch"))
        elif "force" in params:
            errs.append(FieldError("force", "Forbidden", "may not be specified for non-apply patch"))
        if manager and len(manager) > 128:
            errs.append(FieldError("fieldManager", "Too long", "may not be more than 128 characters"))
        if errs:
            raise invalid("PatchOptions.meta.k8s.io", "", errs, "meta.k8s.io", "PatchOptions")
        try:
            text = body.decode("utf-8")
            if ctype == "application/apply-patch+yaml":
                try:
                    patch = json.loads(text)
                except ValueError:
                    patch = yaml.safe_load(text)
            else:
                patch = json.loads(text)
        except (ValueError, yaml.YAMLError) as e:
            raise bad_request(f"error decoding patch: {e}") from None
        store = self.server.store
        if ctype == "application/apply-patch+yaml":
            force = params.get("force", "false")
            if force not in ("true", "false"):
                raise bad_request(f'invalid value for force: "{force}"')
            obj, created = store.apply(rt, ns, name, route.subresource, patch, manager or "",
                                       force == "true")
            return self._send_json(201 if created else 200, obj)
        if ctype == "application/json-patch+json":
            validate_json_patch(patch)
            patcher: Callable[[dict], Any] = lambda obj: json_patch(obj, patch)
        else:
            if not isinstance(patch, dict):
                raise bad_request("the patch must be a JSON object")
            fn = merge_patch if ctype == "application/merge-patch+json" else strategic_merge_patch
            patcher = lambda obj: fn(obj, patch)  # noqa: E731
        self._send_json(200, store.patch(rt, ns, name, route.subresource, patcher,
                                         self._field_manager(params)))

    # -- watch ---------------------------------------------------------------------------

    def _watch(self, route: Route, params: dict[str, str]) -> None:
        rt, store = route.rt, self.server.store
        flt = self._filter(route, params)
        if route.name is not None:           # /watch/namespaces/ns/plural/name
            flt.fields.append(("metadata.name", "=", route.name))
        bookmarks = params.get("allowWatchBookmarks") in ("true", "1")
        try:
            timeout = float(params["timeoutSeconds"]) if params.get("timeoutSeconds") else \
                300.0 * (1 + random.random())
        except ValueError:
            raise bad_request(f"invalid timeoutSeconds: {params['timeoutSeconds']}") from None
        try:
            initial, cursor, epoch = store.watch_begin(rt, flt, params.get("resourceVersion"))
            error = None
        except ApiError as e:
            if e.code != 410:
                raise
            initial, cursor, epoch, error = [], 0, 0, e
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        try:
            if error is not None:
                self._event("ERROR", error.status())
                return self._end_stream()
            for type_, obj in initial:
                self._event(type_, obj)
            deadline = time.monotonic() + timeout
            next_bookmark = time.monotonic() + self.server.bookmark_interval
            while True:
                now = time.monotonic()
                if now >= deadline:
                    return self._end_stream()
                wait = min(deadline - now, 1.0)
                if bookmarks:
                    wait = max(0.0, min(wait, next_bookmark - now))
                events, cursor, state = store.watch_wait(cursor, epoch, wait)
                for ev in events:
                    out = _filter_event(ev, rt, flt)
                    if out is not None:
                        self._event(*out)
                if state == "expired":
                    self._event("ERROR", gone_expired(
                        f"too old resource version: {cursor} ({store.compacted})").status())
                    return self._end_stream()
                if state == "closed":
                    if store.close_abrupt:
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                    return self._end_stream()
                if bookmarks and time.monotonic() >= next_bookmark:
                    self._event("BOOKMARK", {"kind": rt.kind, "apiVersion": rt.api_version,
                                             "metadata": {"resourceVersion": str(cursor)}})
                    next_bookmark = time.monotonic() + self.server.bookmark_interval
                if state == "idle" and self._client_gone():
                    self.close_connection = True
                    return
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            self.close_connection = True

    def _event(self, type_: str, obj: dict) -> None:
        data = json.dumps({"type": type_, "object": obj}).encode() + b"\n"
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _client_gone(self) -> bool:
        if self.server.ssl_context is not None:
            return False                    # detected on the next write instead
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    # -- discovery and test endpoints ----------------------------------------------------

    def _discovery(self, segs: list[str]) -> None:
        if segs == ["api"]:
            return self._send_json(200, {"kind": "APIVersions", "versions": ["v1"],
                                         "serverAddressByClientCIDRs": []})
        if segs == ["api", "v1"]:
            return self._send_json(200, _discovery_resources("", "v1"))
        groups = _api_groups()
        if segs == ["apis"]:
            return self._send_json(200, {"kind": "APIGroupList", "apiVersion": "v1",
                                         "groups": groups})
        group = next((g for g in groups if g["name"] == segs[1]), None)
        if group is None:
            raise no_such_resource()
        if len(segs) == 2:
            return self._send_json(200, {"kind": "APIGroup", "apiVersion": "v1", **group})
        if not any(v["version"] == segs[2] for v in group["versions"]):
            raise no_such_resource()
        return self._send_json(200, _discovery_resources(segs[1], segs[2]))

    def _fake(self, path: str, params: dict[str, str]) -> None:
        store, method = self.server.store, self.command
        if path == "/fake/compact" and method == "POST":
            return self._send_json(200, {"compactedResourceVersion": str(store.compact())})
        if path == "/fake/reset" and method == "POST":
            store.reset()
            with self.server.log_lock:
                self.server.request_log.clear()
            return self._send_json(200, {"resourceVersion": str(store.resource_version)})
        if path == "/fake/close-watches" and method == "POST":
            store.close_watches(abrupt=params.get("abrupt") in ("true", "1"))
            return self._send_json(200, {})
        if path == "/fake/requests" and method == "GET":
            with self.server.log_lock:
                items = list(self.server.request_log)
            return self._send_json(200, {"kind": "RequestLog", "items": items})
        if path == "/fake/requests" and method == "DELETE":
            with self.server.log_lock:
                self.server.request_log.clear()
            return self._send_json(200, {})
        raise no_such_resource()


def _filter_event(ev: WatchEvent, rt: ResourceType, flt: Filter) -> tuple[str, dict] | None:
    """What a watcher with `flt` sees of `ev` (the cacher's convertToWatchEvent)."""
    if ev.key != rt.key:
        return None
    cur = flt.matches(ev.obj)
    if ev.type == "ADDED":
        return ("ADDED", ev.obj) if cur else None
    if ev.type == "DELETED":
        return ("DELETED", ev.obj) if cur or (ev.prev is not None and flt.matches(ev.prev)) else None
    old = ev.prev is not None and flt.matches(ev.prev)
    if cur and old:
        return ("MODIFIED", ev.obj)
    if cur:
        return ("ADDED", ev.obj)
    if old:
        gone = copy.deepcopy(ev.prev)
        gone["metadata"]["resourceVersion"] = ev.obj["metadata"]["resourceVersion"]
        return ("DELETED", gone)
    return None


# --------------------------------------------------------------------------------------------
# TLS material and kubeconfig
# --------------------------------------------------------------------------------------------


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)


def generate_tls(directory: str, host: str) -> None:
    """CA, server (IP SAN 127.0.0.1 + DNS localhost) and client (O=system:masters) certs."""
    os.makedirs(directory, exist_ok=True)
    p = lambda name: os.path.join(directory, name)  # noqa: E731
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", p("ca.key"),
             "-out", p("ca.crt"), "-days", "3650", "-subj", "/CN=tessera-fake-apiserver-ca",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    sans = ["IP:127.0.0.1", "DNS:localhost"]
    if host not in ("127.0.0.1", "localhost", "", "0.0.0.0", "::"):
        try:
            ipaddress.ip_address(host)
            sans.append(f"IP:{host}")
        except ValueError:
            sans.append(f"DNS:{host}")
    leaves = {"server": ("/CN=fake-kube-apiserver", "serverAuth", "subjectAltName=" + ",".join(sans)),
              "client": ("/O=system:masters/CN=tessera-test", "clientAuth", "")}
    for name, (subject, usage, san) in leaves.items():
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", p(f"{name}.key"),
                 "-out", p(f"{name}.csr"), "-subj", subject)
        ext = p(f"{name}.ext")
        with open(ext, "w") as f:
            f.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                    f"extendedKeyUsage={usage}\n" + (san + "\n" if san else ""))
        _openssl("x509", "-req", "-in", p(f"{name}.csr"), "-CA", p("ca.crt"), "-CAkey", p("ca.key"),
                 "-set_serial", str(random.getrandbits(63)), "-days", "3650", "-sha256",
                 "-extfile", ext, "-out", p(f"{name}.crt"))
        os.remove(p(f"{name}.csr"))
        os.remove(ext)


def write_kubeconfig(directory: str, server_url: str, token: str | None) -> str:
    d = os.path.abspath(directory)
    config = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "fake", "cluster": {
            "server": server_url, "certificate-authority": os.path.join(d, "ca.crt")}}],
        "users": [
            {"name": "token", "user": {"token": token if token is not None else "unused"}},
            {"name": "certs", "user": {"client-certificate": os.path.join(d, "client.crt"),
                                       "client-key": os.path.join(d, "client.key")}}],
        "contexts": [
            {"name": "token", "context": {"cluster": "fake", "user": "token",
                                          "namespace": "default"}},
            {"name": "certs", "context": {"cluster": "fake", "user": "certs",
                                          "namespace": "default"}}],
        "current-context": "token",
        "preferences": {},
    }
    path = os.path.join(d, "kubeconfig.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(config, f, sort_keys=False)
    return path


# --------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--tls-dir", help="generate certs and kubeconfig.yaml here; serve HTTPS")
    ap.add_argument("--token", help="require 'Authorization: Bearer TOKEN' (or a client cert)")
    ap.add_argument("--bookmark-interval", type=float, default=1.0)
    ap.add_argument("--history", type=int, default=1000,
                    help="past events kept for watches; older resourceVersions get 410 Gone")
    ap.add_argument("--namespace-create-on-demand", action="store_true",
                    help="create missing namespaces instead of answering 404")
    args = ap.parse_args(argv)

    context = None
    if args.tls_dir:
        generate_tls(args.tls_dir, args.host)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(os.path.join(args.tls_dir, "server.crt"),
                                os.path.join(args.tls_dir, "server.key"))
        context.load_verify_locations(os.path.join(args.tls_dir, "ca.crt"))
        context.verify_mode = ssl.CERT_OPTIONAL
    store = Store(args.history, args.namespace_create_on_demand)
    server = FakeApiServer((args.host, args.port), store, args.token, context,
                           args.bookmark_interval)
    url = f"{'https' if context else 'http'}://{args.host}:{server.server_address[1]}"
    if args.tls_dir:
        write_kubeconfig(args.tls_dir, url, args.token)

    def stop(signum: int, frame: Any) -> None:
        store.shutdown()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"listening on {url}", flush=True)
    server.serve_forever(poll_interval=0.2)
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
