#!/usr/bin/env python3
"""`kubectl kustomize deploy/workspaces` renders, and the Workspace CRDs carry what the
operator and CLI rely on: v1alpha1 served and stored, OpenAPI schemas, the status subresource
and printer columns. Exits 77 (skipped) when kubectl is not installed."""
import shutil
import subprocess
import sys

import yaml

ROOT = sys.argv[1]


def main() -> int:
    if shutil.which("kubectl") is None:
        print("kubectl not found: skipped")
        return 77
    out = subprocess.run(["kubectl", "kustomize", f"{ROOT}/deploy/workspaces"], check=True,
                         capture_output=True, text=True).stdout
    docs = [d for d in yaml.safe_load_all(out) if d]
    crds = {d["spec"]["names"]["kind"]: d for d in docs
            if d["kind"] == "CustomResourceDefinition"}
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
    status = ws["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    for field in ("phase", "url", "conditions", "observedGeneration"):
        assert field in status, field
    tmpl = crds["WorkspaceTemplate"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for field in ("image", "resources", "initCommands", "extensions", "env", "extraContainers"):
        assert field in tmpl["properties"]["spec"]["properties"], field
    print(f"ok: {len(docs)} objects rendered")
    return 0


if __name__ == "__main__":
    sys.exit(main())
