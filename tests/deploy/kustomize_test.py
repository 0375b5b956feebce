#!/usr/bin/env python3
"""`kubectl kustomize deploy/workspaces` (and deploy/workspaces/examples) render, and what they
render is what the operator, the CLI and the cluster rely on:

  - the Workspace CRDs: v1alpha1 served and stored, OpenAPI schemas, the status subresource,
    printer columns;
  - every kind of the install is there;
  - RBAC is least privilege: no wildcards, no Secrets, leases only through a namespaced Role
    limited to the operator's Lease, yet every verb the operator needs on the children the
    renderer produces (src/workspaces/operator/testdata/*.json, the renderer's golden files);
  - the operator Deployment runs 2 replicas spread over nodes, the PodDisruptionBudget selects
    its pods, probes and the metrics Service point at real ports;
  - NetworkPolicies select the pods they mean: the operator's, and in a workspace namespace the
    IDE and Ray pods exactly as the renderer labels them;
  - the Gateway, the VirtualServices the renderer binds to it and the operator identity its
    AuthorizationPolicies admit agree with the manifests;
  - the example WorkspaceTemplate and Workspace validate against the CRD schemas.

Exits 77 (skipped) when kubectl is not installed."""
import glob
import json
import os
import re
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kustomize_checks import check, of_kind, one, render, report, selects  # noqa: E402

ROOT = sys.argv[1]
OPERATOR_NS = "tessera-system"


def goldens():
    """The renderer's golden outputs: lists of child objects, one list per case."""
    paths = sorted(glob.glob(f"{ROOT}/src/workspaces/operator/testdata/*.json"))
    assert paths, "no renderer goldens in src/workspaces/operator/testdata"
    cases = {}
    for p in paths:
        with open(p) as f:
            cases[os.path.basename(p)] = json.load(f)
    return cases


# ---- CRDs -----------------------------------------------------------------------------------

def check_crds(docs):
    crds = {d["spec"]["names"]["kind"]: d for d in of_kind(docs, "CustomResourceDefinition")}
    assert set(crds) >= {"Workspace", "WorkspaceTemplate"}, sorted(crds)
    for kind, crd in crds.items():
        assert crd["spec"]["group"] == "workspaces.tessera.dev", kind
        (version,) = crd["spec"]["versions"]
        assert version["name"] == "v1alpha1" and version["served"] and version["storage"], kind
        schema = version["schema"]["openAPIV3Schema"]
        assert "spec" in schema["properties"], kind
        assert version["additionalPrinterColumns"], kind
    ws = crds["Workspace"]["spec"]["versions"][0]
    assert ws["subresources"] == {"status": {}}
    spec = ws["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    for field in ("owner", "template", "image", "resources", "ray", "home", "idleTimeout",
                  "stopped"):
        assert field in spec, field
    # The home volume's claim template is immutable in the StatefulSet: so is spec.home.
    assert any(v.get("rule") == "self == oldSelf"
               for v in spec["home"].get("x-kubernetes-validations", [])), spec["home"]
    status = ws["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    # Everything the operator writes must be in the schema, or the API server prunes it and
    # every reconcile would write it again.
    for field in ("phase", "url", "conditions", "observedGeneration", "readySince",
                  "startingSince", "lastActivityTime"):
        assert field in status, field
    tmpl = crds["WorkspaceTemplate"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for field in ("image", "resources", "initCommands", "extensions", "env", "extraContainers"):
        assert field in tmpl["properties"]["spec"]["properties"], field
    return {kind: crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
            for kind, crd in crds.items()}


# ---- Kinds ----------------------------------------------------------------------------------

def check_kinds(docs):
    kinds = {d["kind"] for d in docs}
    for kind in ("Namespace", "CustomResourceDefinition", "ServiceAccount", "ClusterRole",
                 "ClusterRoleBinding", "Role", "RoleBinding", "Deployment", "Service",
                 "PodDisruptionBudget", "NetworkPolicy", "Gateway", "AuthorizationPolicy"):
        check(kind in kinds, f"no {kind} in deploy/workspaces")
    check(any(d["metadata"]["name"] == OPERATOR_NS for d in of_kind(docs, "Namespace")),
          f"no Namespace {OPERATOR_NS}")
    for d in docs:
        if d["kind"] in ("Namespace", "CustomResourceDefinition", "ClusterRole",
                         "ClusterRoleBinding"):
            continue
        check(d["metadata"].get("namespace") in (OPERATOR_NS, "istio-system"),
              f"{d['kind']} {d['metadata']['name']} has no namespace")


# ---- RBAC -----------------------------------------------------------------------------------

def plural(kind):
    k = kind.lower()
    return k[:-1] + "ies" if k.endswith("y") else k + "s"


def granted(rules, group, resource, verb):
    return any(group in r.get("apiGroups", []) and resource in r.get("resources", [])
               and verb in r.get("verbs", []) and not r.get("resourceNames")
               for r in rules)


def check_rbac(docs, cases):
    roles = of_kind(docs, "ClusterRole") + of_kind(docs, "Role")
    for role in roles:
        where = f"{role['kind']} {role['metadata']['name']}"
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
                check("*" not in rule.get(field, []), f"{where}: wildcard in {field}: {rule}")
            check(not rule.get("nonResourceURLs"), f"{where}: nonResourceURLs: {rule}")
            for resource in rule.get("resources", []):
                check(resource.split("/")[0] not in ("secrets", "configmaps", "serviceaccounts",
                                                     "clusterroles", "roles", "rolebindings",
                                                     "clusterrolebindings"),
                      f"{where}: grants {resource}")
            for verb in ("escalate", "bind", "impersonate", "deletecollection"):
                check(verb not in rule.get("verbs", []), f"{where}: grants {verb}")

    cluster_roles = {r["metadata"]["name"]: r for r in of_kind(docs, "ClusterRole")}
    check(set(cluster_roles) == {"tessera-operator", "tessera-workspace-user",
                                 "tessera-workspace-admin"}, f"ClusterRoles {sorted(cluster_roles)}")
    cluster_role = cluster_roles["tessera-operator"]
    rules = cluster_role["rules"]
    check(not any("leases" in r.get("resources", []) for r in rules),
          "leases granted cluster-wide; they belong in the namespaced Role")
    check(not granted(rules, "workspaces.tessera.dev", "workspaces", "delete"),
          "the operator must not delete Workspaces")
    check(not granted(rules, "", "persistentvolumeclaims", "create"),
          "PVCs are created by the StatefulSet controller, not the operator")
    check(granted(rules, "", "persistentvolumeclaims", "delete"),
          "the operator's finalizer deletes the home volume (the StatefulSet retains it)")

    # Exactly what the operator uses (issue 14: nothing more). Every child kind the renderer
    # produces: informers (list, watch), a live get before the caches sync, server-side apply
    # (patch; when it creates, the API server also checks create), delete. Its own API, the IDE pod, the home volume, events.
    needed = {("workspaces.tessera.dev", "workspaces", v)
              for v in ("get", "list", "watch", "patch")}
    needed |= {("workspaces.tessera.dev", "workspaces/status", "patch"),
               ("workspaces.tessera.dev", "workspaces/finalizers", "update")}
    needed |= {("workspaces.tessera.dev", "workspacetemplates", v)
               for v in ("get", "list", "watch")}
    needed |= {("", "pods", v) for v in ("get", "delete")}
    needed |= {("", "persistentvolumeclaims", v) for v in ("get", "delete")}
    needed |= {("", "events", "create")}
    child_kinds = set()
    for children in cases.values():
        for c in children:
            group = c["apiVersion"].rpartition("/")[0]
            child_kinds.add((group, plural(c["kind"])))
    check(len(child_kinds) == 5, f"expected 5 child kinds in the goldens, got {child_kinds}")
    for group, resource in sorted(child_kinds):
        needed |= {(group, resource, v)
                   for v in ("get", "list", "watch", "create", "patch", "delete")}
    grants = {(g, res, v) for r in rules for g in r.get("apiGroups", [])
              for res in r.get("resources", []) for v in r.get("verbs", [])}
    check(grants == needed, f"operator ClusterRole: missing {sorted(needed - grants)}, "
          f"more than used {sorted(grants - needed)}")

    # Users: their workspaces and what `tessera ws` reads, nothing on the children.
    for name, extra in (("tessera-workspace-user", set()),
                        ("tessera-workspace-admin", {("workspacetemplates", v) for v in
                                                     ("create", "update", "patch", "delete")}
                         | {("workspaces", "update")})):
        r = cluster_roles[name]["rules"]
        want = {("workspaces", v) for v in ("get", "list", "watch", "create", "patch", "delete")}
        want |= {("workspacetemplates", v) for v in ("get", "list", "watch")} | extra
        got = {(res, v) for rule in r if "workspaces.tessera.dev" in rule.get("apiGroups", [])
               for res in rule.get("resources", []) for v in rule.get("verbs", [])}
        check(got == want, f"{name}: {sorted(got ^ want)}")
        check(granted(r, "", "events", "list"), f"{name}: `tessera ws describe` lists events")
        for group, resource in child_kinds:
            check(not any(granted(r, group, resource, v) for v in ("get", "patch", "delete")),
                  f"{name} grants {resource}")

    (role,) = of_kind(docs, "Role")
    check(role["metadata"]["namespace"] == OPERATOR_NS, "the leader-election Role's namespace")
    for rule in role["rules"]:
        check(rule["resources"] == ["leases"] and rule["apiGroups"] == ["coordination.k8s.io"],
              f"the namespaced Role grants more than leases: {rule}")
        check(set(rule["verbs"]) <= {"get", "create", "update"}, f"lease verbs: {rule}")
        if set(rule["verbs"]) - {"create"}:
            check(rule.get("resourceNames") == ["tessera-operator"],
                  f"lease get/update must be limited to the operator's Lease: {rule}")
    role_rules = role["rules"]
    for verb in ("get", "update"):
        check(any(verb in r["verbs"] and r.get("resourceNames") for r in role_rules),
              f"no {verb} on the Lease")
    check(any("create" in r["verbs"] for r in role_rules), "no create on leases")

    (sa,) = of_kind(docs, "ServiceAccount")
    subject = {"kind": "ServiceAccount", "name": sa["metadata"]["name"],
               "namespace": sa["metadata"]["namespace"]}
    (crb,) = of_kind(docs, "ClusterRoleBinding")
    check(crb["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                             "name": cluster_role["metadata"]["name"]}, "ClusterRoleBinding ref")
    check(crb["subjects"] == [subject], f"ClusterRoleBinding subjects {crb['subjects']}")
    (rb,) = of_kind(docs, "RoleBinding")
    check(rb["metadata"]["namespace"] == OPERATOR_NS and rb["subjects"] == [subject]
          and rb["roleRef"]["kind"] == "Role"
          and rb["roleRef"]["name"] == role["metadata"]["name"], "RoleBinding")
    return sa


# ---- Operator Deployment, PDB, metrics Service ----------------------------------------------

def check_operator(docs, sa, cases):
    deploy = one(docs, "Deployment", "tessera-operator")
    spec = deploy["spec"]
    pod = spec["template"]
    labels = pod["metadata"]["labels"]
    check(spec["replicas"] == 2, f"operator replicas {spec['replicas']}, want 2")
    check(selects(spec["selector"]["matchLabels"], labels), "Deployment selector vs pod labels")
    check(pod["spec"]["serviceAccountName"] == sa["metadata"]["name"], "serviceAccountName")
    anti = pod["spec"].get("affinity", {}).get("podAntiAffinity", {})
    terms = anti.get("preferredDuringSchedulingIgnoredDuringExecution", [])
    check(any(t["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
              and selects(t["podAffinityTerm"]["labelSelector"]["matchLabels"], labels)
              for t in terms), "no preferred pod anti-affinity across nodes")

    (pdb,) = of_kind(docs, "PodDisruptionBudget")
    check(pdb["metadata"]["namespace"] == deploy["metadata"]["namespace"], "PDB namespace")
    check(selects(pdb["spec"]["selector"]["matchLabels"], labels),
          "PDB selector does not match the operator pods")
    check(pdb["spec"].get("minAvailable") == 1, "PDB minAvailable should be 1")

    (c,) = pod["spec"]["containers"]
    args = c["args"]
    check("--leader-elect" in args, "operator without --leader-elect")
    check("--metrics-addr" in args and args[args.index("--metrics-addr") + 1] == "0.0.0.0:9090",
          "metrics address")
    env = {e["name"]: e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
           for e in c["env"]}
    check(env.get("POD_NAME") == "metadata.name", "POD_NAME from the downward API")
    check(env.get("POD_NAMESPACE") == "metadata.namespace", "POD_NAMESPACE from the downward API")
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    for probe in ("readinessProbe", "livenessProbe"):
        get = c.get(probe, {}).get("httpGet", {})
        check(get.get("path") == "/healthz" and get.get("port") in ports, f"{probe}")
    check(c["resources"].get("requests") and c["resources"].get("limits"), "resources")
    sc = c["securityContext"]
    check(sc.get("readOnlyRootFilesystem") is True, "read-only root filesystem")
    check(sc.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation")
    check(pod["spec"]["securityContext"].get("runAsNonRoot") is True, "runAsNonRoot")
    metrics = one(docs, "Service", "tessera-operator-metrics")
    check(selects(metrics["spec"]["selector"], labels), "metrics Service selector")
    (mp,) = metrics["spec"]["ports"]
    check(mp["port"] == 9090 and ports.get(mp["targetPort"]) == 9090, "metrics Service port")

    # The renderer's AuthorizationPolicies admit the operator (the idle culler) by this identity.
    principal = f"cluster.local/ns/{deploy['metadata']['namespace']}/sa/{sa['metadata']['name']}"
    for name, children in cases.items():
        (ap,) = [x for x in children if x["kind"] == "AuthorizationPolicy"]
        principals = [p for r in ap["spec"]["rules"] for f in r.get("from", [])
                      for p in f["source"].get("principals", [])]
        check(principal in principals, f"{name}: AuthorizationPolicy does not admit {principal}")
    check(labels.get("sidecar.istio.io/inject") == "true",
          "the operator needs a sidecar for its mTLS identity")
    return deploy


# ---- Gateway --------------------------------------------------------------------------------

def check_gateway(docs, deploy, cases):
    gw = one(docs, "Gateway", "tessera-gateway")
    check(gw["apiVersion"] == "networking.istio.io/v1beta1", "Gateway apiVersion")
    check(gw["spec"]["selector"] == {"istio": "ingressgateway"}, "Gateway selector")
    https = [s for s in gw["spec"]["servers"] if s["port"]["protocol"] == "HTTPS"]
    check(len(https) == 1 and https[0]["port"]["number"] == 443
          and https[0]["tls"].get("credentialName"), "HTTPS 443 with a credentialName")
    ref = f"{gw['metadata']['namespace']}/{gw['metadata']['name']}"
    args = deploy["spec"]["template"]["spec"]["containers"][0]["args"]
    check("--gateway" in args and args[args.index("--gateway") + 1] == ref, "--gateway arg")
    authz = [p for p in of_kind(docs, "AuthorizationPolicy")
             if p["metadata"]["namespace"] == gw["metadata"]["namespace"]]
    check(len(authz) == 1 and authz[0]["spec"]["action"] == "CUSTOM"
          and selects(authz[0]["spec"]["selector"]["matchLabels"], gw["spec"]["selector"]),
          "ext_authz (CUSTOM) AuthorizationPolicy on the gateway pods")
    authz_paths = [p for r in authz[0]["spec"]["rules"] for t in r["to"]
                   for p in t["operation"]["paths"]] if authz else []
    for name, children in cases.items():
        (vs,) = [x for x in children if x["kind"] == "VirtualService"]
        check(vs["spec"]["gateways"] == [ref], f"{name}: VirtualService gateway")
        for route in vs["spec"]["http"]:
            for m in route["match"]:
                uri = m["uri"].get("prefix") or m["uri"].get("exact")
                check(any(uri.startswith(p.rstrip("*")) for p in authz_paths),
                      f"{name}: {uri} is not behind the gateway's authentication")
    return gw


# ---- NetworkPolicies ------------------------------------------------------------------------

def agent_port(cases):
    """The activity agent's port in the renderer's goldens (its sidecar is named "activity")."""
    ports = {p["containerPort"] for children in cases.values() for c in children
             if c["kind"] == "StatefulSet"
             for ct in c["spec"]["template"]["spec"]["containers"] if ct["name"] == "activity"
             for p in ct["ports"]}
    assert len(ports) == 1, ports
    return ports.pop()


def ide_and_ray_pod_labels(cases):
    ide, ray = [], []
    for children in cases.values():
        for c in children:
            if c["kind"] == "StatefulSet":
                ide.append(c["spec"]["template"]["metadata"]["labels"])
                port = c["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"]
            if c["kind"] == "RayCluster":
                ray.append(c["spec"]["headGroupSpec"]["template"]["metadata"]["labels"])
                for g in c["spec"]["workerGroupSpecs"]:
                    ray.append(g["template"]["metadata"]["labels"])
    assert ide and ray
    return ide, ray, port


def peer_allows(peer, ns_name, labels, same_namespace):
    """Does one NetworkPolicy `from`/`to` peer admit a pod with these labels in ns_name?"""
    if "ipBlock" in peer:
        return False
    ns_sel = peer.get("namespaceSelector")
    if ns_sel is None:
        ns_ok = same_namespace
    else:
        ml = ns_sel.get("matchLabels", {})
        ns_ok = all({"kubernetes.io/metadata.name": ns_name}.get(k) == v for k, v in ml.items())
    pod_sel = peer.get("podSelector", {}).get("matchLabels", {})
    return ns_ok and all(labels.get(k) == v for k, v in pod_sel.items())


def allowed_ports(rules, key, ns_name, labels, same_namespace):
    """Ports (None = all) a policy's ingress/egress rules open to/from such a pod."""
    ports = set()
    for r in rules:
        peers = r.get(key)
        if peers is not None and not any(peer_allows(p, ns_name, labels, same_namespace)
                                          for p in peers):
            continue
        if "ports" not in r:
            return None
        ports |= {p["port"] for p in r["ports"]}
    return ports


def check_network_policies(docs, example_docs, deploy, gw, cases):
    op_labels = deploy["spec"]["template"]["metadata"]["labels"]
    ops = [p for p in of_kind(docs, "NetworkPolicy") if p["metadata"]["namespace"] == OPERATOR_NS]
    check(len(ops) == 1, "one NetworkPolicy in tessera-system")
    if ops:
        spec = ops[0]["spec"]
        check(selects(spec["podSelector"]["matchLabels"], op_labels),
              "tessera-system NetworkPolicy does not select the operator pods")
        check(set(spec["policyTypes"]) == {"Ingress", "Egress"}, "operator policyTypes")
        (rule,) = spec["ingress"]
        check([p["port"] for p in rule["ports"]] == [9090], "operator ingress: only metrics")
        check(rule["from"] == [{"namespaceSelector": {"matchLabels": {
            "kubernetes.io/metadata.name": "monitoring"}}}], "operator ingress: only monitoring")
        egress = spec["egress"]
        check(any(p["port"] == 53 for r in egress for p in r.get("ports", [])), "egress to DNS")
        check(any({443, 6443} <= {p["port"] for p in r.get("ports", [])} for r in egress),
              "egress to the API server")

    ide_labels, ray_labels, ide_port = ide_and_ray_pod_labels(cases)
    agent = agent_port(cases)
    if ops:
        ports = allowed_ports(ops[0]["spec"]["egress"], "to", "team-a", ide_labels[0], False)
        check(ports is not None and {ide_port, agent} <= ports,
              f"operator egress to the IDE ports {ide_port}, {agent} (idle culler)")
        ports = allowed_ports(ops[0]["spec"]["egress"], "to", "team-a", ray_labels[0], False)
        check(ports is not None and 8265 in ports, "operator egress to the Ray dashboard")

    ns = [d["metadata"]["name"] for d in of_kind(example_docs, "Namespace")]
    check(ns == ["team-a"], f"example namespace {ns}")
    policies = of_kind(example_docs, "NetworkPolicy")
    check(all(p["metadata"]["namespace"] == "team-a" for p in policies),
          "workspace-namespace policies take the namespace of the kustomization")
    ide_pols = [p for p in policies if any(selects(p["spec"]["podSelector"]["matchLabels"], l)
                                           for l in ide_labels)]
    ray_pols = [p for p in policies if any(selects(p["spec"]["podSelector"]["matchLabels"], l)
                                           for l in ray_labels)]
    check(len(ide_pols) == 1 and all(selects(ide_pols[0]["spec"]["podSelector"]["matchLabels"], l)
                                     for l in ide_labels), "one policy selecting every IDE pod")
    check(len(ray_pols) == 1 and all(selects(ray_pols[0]["spec"]["podSelector"]["matchLabels"], l)
                                     for l in ray_labels), "one policy selecting every Ray pod")
    if len(ide_pols) != 1 or len(ray_pols) != 1:
        return
    check(ide_pols[0] is not ray_pols[0], "IDE and Ray pods need different policies")
    ide_rules, ray_rules = ide_pols[0]["spec"]["ingress"], ray_pols[0]["spec"]["ingress"]
    for pol in (ide_pols[0], ray_pols[0]):
        check(pol["spec"]["policyTypes"] == ["Ingress"], "workspace policies: ingress only")
    gateway_pod = dict(gw["spec"]["selector"])
    # IDE: the gateway and the operator on code-server's port only; the namespace's Ray pods.
    check(allowed_ports(ide_rules, "from", "istio-system", gateway_pod, False) == {ide_port},
          "IDE ingress from the gateway")
    check(allowed_ports(ide_rules, "from", OPERATOR_NS, op_labels, False) == {ide_port, agent},
          "IDE ingress from the operator: code-server and the activity agent")
    check(allowed_ports(ide_rules, "from", "team-a", ray_labels[0], True) is None,
          "IDE ingress from its Ray pods")
    for stranger_ns, stranger in (("team-b", ide_labels[0]), ("team-a", {"app": "other"}),
                                  ("istio-system", {"app": "istiod"})):
        check(allowed_ports(ide_rules, "from", stranger_ns, stranger,
                            stranger_ns == "team-a") == set(),
              f"IDE ingress open to {stranger} in {stranger_ns}")
    # Ray: the namespace's IDE and Ray pods; nothing else (not even the gateway).
    check(allowed_ports(ray_rules, "from", "team-a", ide_labels[0], True) is None,
          "Ray ingress from the IDE")
    check(allowed_ports(ray_rules, "from", "team-a", ray_labels[-1], True) is None,
          "Ray ingress between Ray pods")
    check(allowed_ports(ray_rules, "from", OPERATOR_NS, op_labels, False) == {8265},
          "Ray ingress from the operator: the dashboard only")
    for stranger_ns, stranger in (("istio-system", gateway_pod), ("team-b", ide_labels[0]),
                                  ("team-a", {"app": "other"})):
        check(allowed_ports(ray_rules, "from", stranger_ns, stranger,
                            stranger_ns == "team-a") == set(),
              f"Ray ingress open to {stranger} in {stranger_ns}")


# ---- Examples against the CRD schemas -------------------------------------------------------

def validate(schema, value, path, errors):
    """The subset of OpenAPI v3 the CRDs use: type, required, properties, items, enum,
    pattern, min/max(Length), x-kubernetes-preserve-unknown-fields."""
    t = schema.get("type")
    if t == "object":
        if not isinstance(value, dict):
            errors.append(f"{path}: not an object")
            return
        for r in schema.get("required", []):
            if r not in value:
                errors.append(f"{path}.{r}: required")
        props = schema.get("properties", {})
        for k, v in value.items():
            if k in props:
                validate(props[k], v, f"{path}.{k}", errors)
            elif not schema.get("x-kubernetes-preserve-unknown-fields") and props:
                errors.append(f"{path}.{k}: unknown field")
    elif t == "array":
        if not isinstance(value, list):
            errors.append(f"{path}: not a list")
            return
        for i, v in enumerate(value):
            validate(schema.get("items", {}), v, f"{path}[{i}]", errors)
    elif t == "string":
        if not isinstance(value, str):
            errors.append(f"{path}: not a string: {value!r}")
            return
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{path}: {value!r} does not match {schema['pattern']}")
        if len(value) < schema.get("minLength", 0) or len(value) > schema.get("maxLength", 1e9):
            errors.append(f"{path}: length")
    elif t == "integer":
        if not isinstance(value, int) or isinstance(value, bool):
            errors.append(f"{path}: not an integer: {value!r}")
            return
        if value < schema.get("minimum", -1e18) or value > schema.get("maximum", 1e18):
            errors.append(f"{path}: {value} out of range")
    elif t == "boolean" and not isinstance(value, bool):
        errors.append(f"{path}: not a boolean")
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} not in {schema['enum']}")


def check_examples(example_docs, schemas):
    for kind in ("WorkspaceTemplate", "Workspace"):
        objs = of_kind(example_docs, kind)
        check(objs, f"no example {kind}")
        for obj in objs:
            check(obj["apiVersion"] == "workspaces.tessera.dev/v1alpha1", f"{kind} apiVersion")
            errors = []
            validate(schemas[kind], obj, kind, errors)
            check(not errors, f"example {kind} {obj['metadata']['name']}: {errors}")
    # Validation must be able to fail: a template without an image is rejected.
    errors = []
    validate(schemas["WorkspaceTemplate"], {"spec": {"resources": {"gpus": 99}}}, "t", errors)
    check(any("image: required" in e for e in errors) and any("gpus" in e for e in errors),
          f"the schema check accepts an invalid template: {errors}")
    bound = {rb["roleRef"]["name"] for rb in of_kind(example_docs, "RoleBinding")
             if rb["roleRef"]["kind"] == "ClusterRole"}
    check(bound == {"tessera-workspace-user", "tessera-workspace-admin"},
          f"the example namespace binds {sorted(bound)}, not the user and admin roles")
    names = [t["metadata"]["name"] for t in of_kind(example_docs, "WorkspaceTemplate")]
    check("default" in names, "no example WorkspaceTemplate named default (spec.template default)")


def main() -> int:
    if shutil.which("kubectl") is None:
        print("kubectl not found: skipped")
        return 77
    docs = render(f"{ROOT}/deploy/workspaces")
    example_docs = render(f"{ROOT}/deploy/workspaces/examples")
    cases = goldens()
    schemas = check_crds(docs)
    check_kinds(docs)
    sa = check_rbac(docs, cases)
    deploy = check_operator(docs, sa, cases)
    gw = check_gateway(docs, deploy, cases)
    check_network_policies(docs, example_docs, deploy, gw, cases)
    check_examples(example_docs, schemas)
    if report():
        return 1
    print(f"ok: {len(docs)} objects rendered, {len(example_docs)} in the example namespace, "
          f"{len(cases)} renderer goldens cross-checked")
    return 0


if __name__ == "__main__":
    sys.exit(main())
