#!/usr/bin/env python3
"""deploy/grafana/features.json queries only metrics that `tessera run` exports (issue 13).

Checks the dashboard's shape (valid JSON, unique panel ids, every panel with a query), then
starts `tessera run` with an http source, posts rows (some malformed and late), reads a feature
and waits for a flush, so that every family has a series; then every `tessera_*` name in the
dashboard's queries (panels and template variables) must be on /metrics, and every label a query
groups or filters by must be on a series of that metric.

Usage: grafana_dashboard_test.py TESSERA REPO
"""
import sys

sys.dont_write_bytecode = True
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
from harness import Client, Failures, Server, report  # noqa: E402

SQL = """
CREATE SOURCE plays (user_id STRING, ms_played BIGINT, ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '1' MINUTE) WITH (connector = 'http', format = 'json');
CREATE FEATURE VIEW user_stats AS
SELECT user_id, COUNT(*) AS plays, SUM(ms_played) AS total_ms FROM plays GROUP BY user_id;
"""


def queries(dash):
    out = []
    for p in dash["panels"]:
        out += [t["expr"] for t in p.get("targets", [])]
    out += [v["query"] for v in dash["templating"]["list"] if v.get("type") == "query"]
    return out


def main():
    tessera, repo = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    failures = Failures()
    with open(os.path.join(repo, "deploy", "grafana", "features.json")) as f:
        dash = json.load(f)
    ids = [p["id"] for p in dash["panels"]]
    failures.check(len(ids) == len(set(ids)), "panel ids repeat: %s" % ids)
    for p in dash["panels"]:
        failures.check(p.get("targets"), "panel %r has no query" % p.get("title"))
    exprs = queries(dash)

    tmp = tempfile.mkdtemp(prefix="tessera-grafana-")
    server = None
    try:
        sql = os.path.join(tmp, "views.sql")
        with open(sql, "w") as f:
            f.write(SQL)
        server = Server(tessera, sql, os.path.join(tmp, "db"), os.path.join(tmp, "run.log"),
                        ["--flush-interval", "200ms"]).start()
        c = Client(server.host, server.port)
        now = int(time.time() * 1000)
        body = "\n".join(['{"user_id":"u%d","ms_played":%d,"ts":%d}' % (i % 5, i, now - 1000)
                          for i in range(50)] + ["{bad", '{"user_id":"u1","ms_played":1,"ts":%d}'
                                                 % (now - 3_600_000), '{"user_id":null,"ts":%d}'
                                                 % now, '{"user_id":"u2","ms_played":"x","ts":%d}'
                                                 % now])
        st, text = c.ingest("plays", body)
        failures.check(st == 200, "ingest: %d %s" % (st, text))
        st, _ = c.get("/v1/features/user_stats/u1")
        failures.check(st == 200, "feature read: %d" % st)
        deadline = time.monotonic() + 20
        while True:
            st, text = c.get("/metrics")
            if re.search(r"^tessera_flush_seconds_count\{[^}]*\} [1-9]", text, re.M) or \
                    time.monotonic() > deadline:
                break
            time.sleep(0.1)
        series = {}  # name -> set of label names
        for line in text.splitlines():
            m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s", line)
            if m:
                series.setdefault(m.group(1), set()).update(re.findall(r'(\w+)="', m.group(2) or ""))
        checked = set()
        for e in exprs:
            for name in set(re.findall(r"\btessera_[a-z0-9_]+", e)):
                checked.add(name)
                failures.check(name in series, "dashboard query uses %s, which /metrics does not "
                               "export: %s" % (name, e))
                if name not in series:
                    continue
                # Labels grouped by (`by (…)`) or matched (`{label=…}`), Prometheus' own aside.
                labels = set()
                for group in re.findall(r"by \(([^)]*)\)", e):
                    labels.update(x.strip() for x in group.split(","))
                for sel in re.findall(name + r"\{([^}]*)\}", e):
                    labels.update(re.findall(r"(\w+)\s*=~?", sel))
                for label in labels - {"le", "job", "instance"}:
                    failures.check(label in series[name],
                                   "%s has no label %r (query: %s)" % (name, label, e))
                m = re.search(r'route="([^"]+)"', e)
                if m:
                    failures.check(('route="%s"' % m.group(1)) in text,
                                   "no series with route=%s" % m.group(1))
        failures.check(len(checked) >= 15, "only %d metric names in the dashboard" % len(checked))
        print("dashboard: %d panels, %d queries, %d metric names, all exported by tessera run"
              % (len(dash["panels"]), len(exprs), len(checked)))
        c.close()
        server.terminate()
    finally:
        if server is not None:
            server.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    report(failures)


if __name__ == "__main__":
    main()
