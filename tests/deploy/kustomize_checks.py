"""What the kustomize render tests (kustomize_test.py, features_kustomize_test.py) share:
rendering, finding objects, selectors, and a list of failed checks reported at the end."""
import subprocess

import yaml

FAILURES = []


def check(ok, message):
    """Records a failed check and goes on, so one run reports every problem."""
    if not ok:
        FAILURES.append(message)
    return ok


def render(path):
    out = subprocess.run(["kubectl", "kustomize", path], check=True, capture_output=True,
                         text=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def of_kind(docs, kind):
    return [d for d in docs if d["kind"] == kind]


def one(docs, kind, name):
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def selects(match_labels, labels):
    """A matchLabels selector (non-empty) selects an object with these labels."""
    return bool(match_labels) and all(labels.get(k) == v for k, v in match_labels.items())


def report():
    """Prints every failed check; returns the exit code (1 if any failed)."""
    for f in FAILURES:
        print(f"FAIL: {f}")
    if FAILURES:
        print(f"{len(FAILURES)} failed")
        return 1
    return 0
