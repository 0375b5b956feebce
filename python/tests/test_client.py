"""The Python client against a real `tessera run`, and training_set against `tessera
training-set`, both checked with a brute force over the generated events.

    TESSERA_BIN=build/release/apps/tessera /usr/bin/python3 -m unittest discover -s python/tests -v

The binary is found like tessera.find_binary() does ($TESSERA_BIN, PATH, the source tree's
release build). The server runs on a free loopback port (tests/e2e/harness.py) and is stopped,
and its temporary directory removed, even when a test fails. pandas tests need pandas (Debian's
/usr/bin/python3 has python3-pandas).
"""
import datetime as dt
import decimal
import http.server
import json
import math
import os
import random
import shutil
import socket
import sys
import tempfile
import threading
import time
import unittest
from pathlib import Path
from typing import Any, Dict, List
from unittest import mock

sys.dont_write_bytecode = True
REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "python"))
sys.path.insert(0, str(REPO / "tests" / "e2e"))

import harness  # noqa: E402
import tessera  # noqa: E402
from tessera import TesseraError  # noqa: E402

try:
    import pandas as pd
except ImportError:
    pd = None
needs_pandas = unittest.skipIf(pd is None, "pandas is not installed (use /usr/bin/python3)")

SQL = """
CREATE SOURCE plays (
  user_id STRING, device STRING, track STRING, ms BIGINT, ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '1' HOUR
) WITH (connector = 'http', format = 'json');

CREATE FEATURE VIEW user_stats AS
SELECT user_id, COUNT(*) AS plays, SUM(ms) AS total_ms, MAX(ms) AS max_ms,
       LAST_K(track, 3) AS recent
FROM plays GROUP BY user_id;

CREATE FEATURE VIEW device_stats AS
SELECT user_id, device, COUNT(*) AS plays, SUM(ms) AS total_ms
FROM plays GROUP BY user_id, device;
"""
TILE = 5 * 60 * 1000
HOUR = 12 * TILE
WINDOWS = {"5m": TILE, "1h": HOUR, "6h": 6 * HOUR}
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
USERS = ["u%d" % i for i in range(12)] + ["s/l ash é", "p|q\\r"]  # '|', '\\' in a 1-column key
DEVICES = ["web", "a|b", "x\\y"]
USER_FEATURES = ["plays", "total_ms", "max_ms", "recent"]
DEVICE_FEATURES = ["plays", "total_ms"]


def generate_events(rng: random.Random, n: int) -> List[Dict[str, Any]]:
    """Events in event-time order (no late rows), unique times over 6 hours from T0; 10% of
    `ms` are NULL; half of the times are RFC 3339 text."""
    events, t = [], T0
    for _ in range(n):
        t += rng.randint(1, 2 * 6 * HOUR // n)
        events.append({"user_id": rng.choice(USERS), "device": rng.choice(DEVICES),
                       "track": "t%d" % rng.randint(0, 30),
                       "ms": None if rng.random() < 0.1 else rng.randint(0, 300_000),
                       "ts": t if rng.random() < 0.5 else harness.rfc3339(t)})
    return events


def event_time(e: Dict[str, Any]) -> int:
    return e["ts"] if isinstance(e["ts"], int) else harness.parse_ts(e["ts"])


def expected(events: List[Dict[str, Any]], view: str, key: tuple, at: int,
             window: str) -> Dict[str, Any]:
    """Brute force: the rows of `key` with align_down(at - W, 5m) <= ts < at."""
    lo = (at - WINDOWS[window]) // TILE * TILE
    key_cols = ["user_id"] if view == "user_stats" else ["user_id", "device"]
    rows = [e for e in events if tuple(e[c] for c in key_cols) == key
            and lo <= event_time(e) < at]
    ms = [e["ms"] for e in rows if e["ms"] is not None]
    out = {"plays": len(rows), "total_ms": sum(ms) if ms else None}
    if view == "user_stats":
        out["max_ms"] = max(ms) if ms else None
        out["recent"] = [e["track"] for e in sorted(rows, key=event_time, reverse=True)[:3]]
    return out


def same(got: Any, want: Any) -> bool:
    """Equality of a DataFrame cell and a JSON value (null is None or NaN)."""
    if want is None:
        return got is None or (isinstance(got, float) and math.isnan(got))
    if isinstance(want, list):
        return list(got) == want
    return got == want


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Fixture:
    """One `tessera run` with the generated events ingested, shared by the tests."""
    tmp: str
    server: Any
    url: str
    events: List[Dict[str, Any]]
    sql_path: str
    events_path: str


def setUpModule() -> None:
    Fixture.tmp = tempfile.mkdtemp(prefix="tessera-python-test-")
    unittest.addModuleCleanup(shutil.rmtree, Fixture.tmp, ignore_errors=True)
    Fixture.sql_path = os.path.join(Fixture.tmp, "views.sql")
    Path(Fixture.sql_path).write_text(SQL)
    Fixture.events = generate_events(random.Random(11), 1500)
    Fixture.events_path = os.path.join(Fixture.tmp, "events.ndjson")
    with open(Fixture.events_path, "w") as f:
        for e in Fixture.events:
            f.write(json.dumps(e) + "\n")
    server = harness.Server(tessera.find_binary(), Fixture.sql_path,
                            os.path.join(Fixture.tmp, "db"), os.path.join(Fixture.tmp, "run.log"))
    try:
        server.start()
    except SystemExit as e:  # the harness's way to fail; unittest needs an exception
        raise RuntimeError(str(e)) from None
    unittest.addModuleCleanup(server.kill)
    Fixture.server = server
    Fixture.url = "http://%s:%d" % (server.host, server.port)
    client = tessera.Client(Fixture.url)
    deadline = time.monotonic() + 30
    while not client.ready():
        if time.monotonic() > deadline:
            raise RuntimeError("/readyz not 200 within 30 s; log:\n" + server.log_tail())
        time.sleep(0.05)
    for i in range(0, len(Fixture.events), 500):
        answer = client.ingest("plays", Fixture.events[i:i + 500], batch_id="b%d" % i)
        if answer["accepted"] != len(Fixture.events[i:i + 500]):
            raise RuntimeError("ingest: %r" % answer)
    client.close()


# Tile-aligned read times (an `at` inside a tile is the training set's business).
ATS = [T0 - TILE, T0 + TILE, T0 + 37 * TILE, T0 + 3 * HOUR, T0 + 6 * HOUR + 2 * TILE, T0 + 8 * HOUR]


class ClientTest(unittest.TestCase):
    def setUp(self) -> None:
        self.client = tessera.Client(Fixture.url)
        self.addCleanup(self.client.close)

    def check(self, result: Dict[str, Any], view: str, key: tuple, at: int,
              windows: List[str]) -> None:
        where = "%s %r at %d" % (view, key, at)
        self.assertEqual(result["view"], view)
        self.assertEqual(result["at"], harness.rfc3339(at), where)
        self.assertEqual(list(result["windows"]), windows, where)
        for w in windows:
            self.assertEqual(result["windows"][w], expected(Fixture.events, view, key, at, w),
                             "%s window %s" % (where, w))

    def test_get_one_key(self) -> None:
        for user in USERS + ["nobody"]:
            for at in ATS:
                r = self.client.get("user_stats", user, windows=["5m", "1h", "6h"], at=at)
                self.assertEqual(r["key"], user)
                self.check(r, "user_stats", (user,), at, ["5m", "1h", "6h"])

    def test_windows_as_text_and_default(self) -> None:
        r = self.client.get("user_stats", "u1", windows="1h, 6h", at=ATS[3])
        self.check(r, "user_stats", ("u1",), ATS[3], ["1h", "6h"])
        self.assertEqual(list(self.client.get("user_stats", "u1")["windows"]),
                         ["5m", "1h", "6h", "1d"])

    def test_composite_keys(self) -> None:
        at = ATS[4]
        for user in ["u1", "s/l ash é"]:
            for device in DEVICES:
                text = user + "|" + device.replace("\\", "\\\\").replace("|", "\\|")
                for key in [(user, device), text]:
                    r = self.client.get("device_stats", key, windows="6h", at=at)
                    self.assertEqual(r["key"], text)
                    self.check(r, "device_stats", (user, device), at, ["6h"])

    def test_list_of_keys(self) -> None:
        keys = ["u3", ("u1", "a|b"), ["u2", "x\\y"], "u1|web", ("nobody", "web")]
        got = self.client.get("device_stats", keys[1:], windows=["1h", "6h"], at=ATS[3])
        self.assertIsInstance(got, list)
        self.assertEqual([r["key"] for r in got], ["u1|a\\|b", "u2|x\\\\y", "u1|web", "nobody|web"])
        for r, key in zip(got, [("u1", "a|b"), ("u2", "x\\y"), ("u1", "web"), ("nobody", "web")]):
            self.check(r, "device_stats", key, ATS[3], ["1h", "6h"])
        self.assertEqual(self.client.get("user_stats", (u for u in ["u3", "u4"]), at=ATS[3]),
                         self.client.batch_get("user_stats", ["u3", "u4"], at=ATS[3]))
        self.assertEqual(self.client.get("user_stats", [], at=ATS[3]), [])

    def test_batch_get(self) -> None:
        keys = USERS + ["nobody"]
        for at in ATS:
            got = self.client.batch_get("user_stats", keys, windows=["5m", "6h"], at=at)
            self.assertEqual([r["key"] for r in got], keys)
            for r, user in zip(got, keys):
                self.check(r, "user_stats", (user,), at, ["5m", "6h"])
        one = self.client.batch_get("user_stats", "u1", at=ATS[2])
        self.assertEqual(one, [self.client.get("user_stats", "u1", at=ATS[2])])

    def test_meta(self) -> None:
        at = ATS[3]
        plain = self.client.get("user_stats", "u1", windows="1h,all", at=at)
        with_meta = self.client.get("user_stats", "u1", windows="1h,all", at=at, meta=True)
        self.assertNotIn("meta", plain)
        self.assertEqual({k: v for k, v in with_meta.items() if k != "meta"}, plain)
        self.assertEqual(set(with_meta["meta"]), {"newest_event_time", "watermark"})
        self.assertIsNotNone(with_meta["meta"]["watermark"])
        # The newest row an `all` answer includes: the newest event of u1 before the head tile's
        # end (the brute force's rows).
        rows = [e for e in Fixture.events if e.get("user_id") == "u1"]
        head = -((-at) // harness.TILE) * harness.TILE
        newest = max((event_time(e) for e in rows if event_time(e) < head), default=None)
        self.assertEqual(with_meta["meta"]["newest_event_time"],
                         None if newest is None else harness.rfc3339(newest))
        batch = self.client.batch_get("user_stats", ["u1", "nobody"], windows="1h", at=at,
                                      meta=True)
        self.assertEqual(batch[0]["meta"]["watermark"], with_meta["meta"]["watermark"])
        self.assertIsNone(batch[1]["meta"]["newest_event_time"])
        if pd is not None:
            frame = self.client.get("user_stats", ["u1", "nobody"], windows="1h", at=at,
                                    as_frame=True, meta=True)
            self.assertIn("user_stats__watermark", frame.columns)
            self.assertIn("user_stats__newest_event_time", frame.columns)

    def test_batch_get_splits_large_lists(self) -> None:
        keys = (USERS * 3)[:31]
        whole = self.client.batch_get("user_stats", keys, windows="1h", at=ATS[3])
        small = tessera.Client(Fixture.url, max_batch_keys=4)
        self.addCleanup(small.close)
        self.assertEqual(small.batch_get("user_stats", keys, windows="1h", at=ATS[3]), whole)
        # Without `at`, every chunk reads at the first chunk's `at`.
        now = small.batch_get("user_stats", keys, windows="1h")
        self.assertEqual(len({r["at"] for r in now}), 1, now[:2])
        # Over the server's limit of 10000 keys per request.
        many = ["k%d" % i for i in range(10001)] + ["u1"]
        got = self.client.batch_get("user_stats", many, windows="1h", at=ATS[3])
        self.assertEqual([r["key"] for r in got], many)
        self.assertEqual(got[-1], self.client.get("user_stats", "u1", windows="1h", at=ATS[3]))
        self.assertEqual(got[0]["windows"]["1h"],
                         {"plays": 0, "total_ms": None, "max_ms": None, "recent": []})

    def test_at_forms(self) -> None:
        at = T0 + 4 * HOUR
        when = dt.datetime(2026, 1, 1, 4, 0, 0)
        forms = [at, when, when.replace(tzinfo=dt.timezone.utc),
                 dt.datetime(2026, 1, 1, 6, 0, tzinfo=dt.timezone(dt.timedelta(hours=2))),
                 "2026-01-01T04:00:00Z", "2026-01-01T05:30:00+01:30", str(at)]
        want = self.client.get("user_stats", "u5", windows="1h,6h", at=at)
        self.check(want, "user_stats", ("u5",), at, ["1h", "6h"])
        for form in forms:
            self.assertEqual(self.client.get("user_stats", "u5", windows="1h,6h", at=form), want,
                             repr(form))
            self.assertEqual(self.client.batch_get("user_stats", ["u5"], "1h,6h", at=form),
                             [want], repr(form))
        odd = self.client.get("user_stats", "u5", windows="1h",
                              at=dt.datetime(2026, 1, 1, 4, 0, 0, 123999))
        self.assertEqual(odd["at"], "2026-01-01T04:00:00.123Z")
        for bad in [1.5, True, dt.date(2026, 1, 1)]:
            with self.assertRaises(TypeError):
                self.client.get("user_stats", "u5", at=bad)

    @needs_pandas
    def test_as_frame(self) -> None:
        keys = USERS + ["nobody"]
        windows = ["5m", "1h", "6h"]
        results = self.client.get("user_stats", keys, windows=windows, at=ATS[3])
        df = self.client.get("user_stats", keys, windows=windows, at=ATS[3], as_frame=True)
        names = ["user_stats__%s__%s" % (f, w) for f in USER_FEATURES for w in windows]
        self.assertEqual(list(df.columns), ["key", "at"] + names)
        self.assertEqual(len(df), len(keys))
        for i, r in enumerate(results):
            self.assertEqual(df["key"][i], r["key"])
            self.assertEqual(df["at"][i], r["at"])
            for f in USER_FEATURES:
                for w in windows:
                    got, want = df["user_stats__%s__%s" % (f, w)][i], r["windows"][w][f]
                    self.assertTrue(same(got, want), (r["key"], f, w, got, want))
        self.assertEqual(df["user_stats__plays__6h"].dtype.kind, "i")
        self.assertEqual(df["user_stats__total_ms__5m"].dtype.kind, "f")
        one = self.client.get("device_stats", ("u1", "a|b"), windows="1h", at=ATS[3],
                              as_frame=True)
        self.assertEqual(list(one.columns),
                         ["key", "at", "device_stats__plays__1h", "device_stats__total_ms__1h"])
        self.assertEqual(one["key"].tolist(), ["u1|a\\|b"])
        batch = self.client.batch_get("user_stats", keys, windows=windows, at=ATS[3],
                                      as_frame=True)
        self.assertTrue(batch.equals(df))

    def test_as_frame_without_pandas(self) -> None:
        with mock.patch.dict(sys.modules, {"pandas": None}):
            with self.assertRaisesRegex(ImportError, "python3-pandas"):
                self.client.get("user_stats", "u1", as_frame=True)

    def test_unknown_view(self) -> None:
        for call in [lambda: self.client.get("nope", "u1"),
                     lambda: self.client.get("nope", ["u1", "u2"]),
                     lambda: self.client.batch_get("nope", ["u1"])]:
            with self.assertRaises(TesseraError) as e:
                call()
            self.assertEqual(e.exception.status, 404)
            self.assertEqual(str(e.exception), "no view named 'nope'")

    def test_bad_requests(self) -> None:
        cases = [
            (lambda: self.client.get("user_stats", "u1", windows="7x"), "parameter 'windows'"),
            (lambda: self.client.batch_get("user_stats", ["u1"], windows=["1h", "7x"]),
             "parameter 'windows'"),
            (lambda: self.client.get("user_stats", "u1", at="yesterday"), "parameter 'at'"),
            (lambda: self.client.get("device_stats", "u1", windows="1h"), "key"),
            (lambda: self.client.batch_get("device_stats", [("u1", "web", "x")]), "keys"),
        ]
        for call, words in cases:
            with self.assertRaises(TesseraError) as e:
                call()
            self.assertEqual(e.exception.status, 400, str(e.exception))
            self.assertIn(words, str(e.exception))
        with self.assertRaises(TesseraError) as e:
            self.client.get("user_stats", "u1", windows="7x")
        self.assertIn("invalid duration '7x'", str(e.exception))

    def test_tuple_keys_are_checked_by_the_server(self) -> None:
        at = ATS[3]
        # A tuple is the parts of a key: the server checks their number against the view's key
        # columns, so ("u1|web",) is not (u1, web) and ("u1", "web") not the key "u1|web".
        for view, key in [("device_stats", ("u1|web",)), ("device_stats", ("u1|a\\|b",)),
                          ("user_stats", ("u1", "web")), ("device_stats", ("u1", "web", "x"))]:
            for call in [lambda: self.client.get(view, key, windows="1h", at=at),
                         lambda: self.client.get(view, key, windows="1h", at=at, as_frame=True),
                         lambda: self.client.batch_get(view, [key], windows="1h", at=at)]:
                with self.assertRaises(TesseraError) as e:
                    call()
                self.assertEqual(e.exception.status, 400, (view, key))
                self.assertIn("key has %d part(s) but the view has" % len(key), str(e.exception))
        # One part for a 1-column view is the value itself, '|' and '\\' included.
        for user in ["u1", "p|q\\r", "nobody|x"]:
            got = self.client.get("user_stats", (user,), windows="1h,6h", at=at)
            self.assertEqual(got, self.client.get("user_stats", user, windows="1h,6h", at=at))
            self.assertEqual(got["key"], user)
            self.check(got, "user_stats", (user,), at, ["1h", "6h"])
        self.assertGreater(expected(Fixture.events, "user_stats", ("p|q\\r",), at, "6h")["plays"],
                           0)
        got = self.client.get("device_stats", ("u1", "a|b"), windows="1h", at=at)
        self.assertEqual(got["key"], "u1|a\\|b")
        self.check(got, "device_stats", ("u1", "a|b"), at, ["1h"])

    def test_malformed_answers(self) -> None:
        """An answer of the wrong shape is a TesseraError (not a KeyError, IndexError, …)."""
        answers = {"/v1/features:batchGet": b'{"items": []}'}

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                body = answers.get(self.path.split("?")[0], b'{"view": "v"}')
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self.do_GET()

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        fake = tessera.Client("http://127.0.0.1:%d" % server.server_address[1], timeout=5)
        self.addCleanup(fake.close)
        good = json.dumps(self.client.get("user_stats", "u1", windows="1h", at=ATS[3])).encode()
        for body in [b'{"items": []}', b'[]', b'{"results": {}}', b'{"results": []}',
                     b'{"results": [' + good + b', ' + good + b']}', b'{"results": [1]}',
                     b'{"results": [{"view": "user_stats"}]}']:
            answers["/v1/features:batchGet"] = body
            for call in [lambda: fake.batch_get("user_stats", ["u1"]),
                         lambda: fake.get("user_stats", ["u1"], as_frame=True),
                         lambda: fake.get("user_stats", ("u1",))]:
                with self.assertRaises(TesseraError) as e:
                    call()
                self.assertIn("batchGet: expected", str(e.exception))
                self.assertIn(body.decode()[:20], str(e.exception))
        answers["/v1/features:batchGet"] = b'{"results": [' + good + b']}'
        self.assertEqual(fake.batch_get("user_stats", ["u1"]), [json.loads(good)])
        for body in [b'{"view": "v"}', b'[1, 2]', b'"text"']:
            answers["/v1/features/user_stats/u1"] = body
            with self.assertRaisesRegex(TesseraError, "expected a feature answer"):
                fake.get("user_stats", "u1")
        answers["/v1/features/user_stats/u1"] = good
        self.assertEqual(fake.get("user_stats", "u1"), json.loads(good))

    def test_connection_refused(self) -> None:
        url = "http://127.0.0.1:%d" % free_port()
        down = tessera.Client(url, timeout=2)
        with self.assertRaises(TesseraError) as e:
            down.get("user_stats", "u1")
        self.assertIsNone(e.exception.status)
        self.assertIn(url + "/v1/features/user_stats/u1", str(e.exception))
        self.assertIn("refused", str(e.exception))
        with self.assertRaises(TesseraError):
            down.batch_get("user_stats", ["u1"])
        self.assertFalse(down.healthy())
        self.assertFalse(down.ready())

    def test_catalog_health_and_reconnect(self) -> None:
        views = self.client.views()
        self.assertEqual(sorted(v["name"] for v in views["views"]),
                         ["device_stats", "user_stats"])
        user_stats = [v for v in views["views"] if v["name"] == "user_stats"][0]
        self.assertEqual([f["name"] for f in user_stats["features"]], USER_FEATURES)
        self.assertTrue(self.client.healthy())
        self.assertTrue(self.client.ready())
        before = self.client.get("user_stats", "u1", at=ATS[3])
        self.client._conn.sock.shutdown(socket.SHUT_RDWR)  # as if the server closed it
        self.assertEqual(self.client.get("user_stats", "u1", at=ATS[3]), before)
        with self.assertRaises(ValueError):
            tessera.Client("127.0.0.1:8080")

    def test_ingest_is_idempotent_with_batch_id(self) -> None:
        again = self.client.ingest("plays", Fixture.events[:500], batch_id="b0")
        self.assertTrue(again.get("duplicate"), again)
        with self.assertRaises(TesseraError) as e:
            self.client.ingest("nope", "{}\n")
        self.assertEqual(e.exception.status, 404)


@needs_pandas
class TrainingSetTest(unittest.TestCase):
    """`tessera training-set` through tessera.training_set (needs the subcommand)."""

    def spine(self, rng: random.Random, n: int) -> "pd.DataFrame":
        rows = []
        for i in range(n):
            t = T0 + rng.randint(-HOUR, 7 * HOUR)
            rows.append({"user_id": rng.choice(USERS + ["nobody"]), "device": rng.choice(DEVICES),
                         "ts": pd.Timestamp(t, unit="ms"), "label": rng.randint(0, 1),
                         "weight": float("nan") if i % 7 == 0 else rng.random()})
        rows.append({"user_id": "u1", "device": "web", "ts": pd.Timestamp(ATS[3], unit="ms"),
                     "label": 1, "weight": 1.0})
        df = pd.DataFrame(rows)
        df.index = [1000 + 3 * i for i in range(len(df))]
        return df

    def check_features(self, df: "pd.DataFrame", keys: List[tuple], times: List[int],
                       windows: List[str]) -> None:
        for i, (key, t) in enumerate(zip(keys, times)):
            for view, features, k in [("user_stats", USER_FEATURES, key[:1]),
                                      ("device_stats", DEVICE_FEATURES, key)]:
                for w in windows:
                    want = expected(Fixture.events, view, k, t, w)
                    for f in features:
                        got = df["%s__%s__%s" % (view, f, w)].iloc[i]
                        self.assertTrue(same(got, want[f]),
                                        "row %d %s %r at %d %s %s: got %r want %r"
                                        % (i, view, k, t, f, w, got, want[f]))

    def test_dataframe_spine(self) -> None:
        spine = self.spine(random.Random(5), 300)
        windows = ["5m", "1h", "6h"]
        df = tessera.training_set(SQL, Fixture.events_path, spine, ["user_stats", "device_stats"],
                                  "5m,1h,6h")
        names = ["%s__%s__%s" % (v, f, w) for v, fs in [("user_stats", USER_FEATURES),
                                                        ("device_stats", DEVICE_FEATURES)]
                 for f in fs for w in windows]
        self.assertEqual(list(df.columns), list(spine.columns) + names)
        self.assertEqual(df.index.tolist(), spine.index.tolist())
        self.assertTrue(df[list(spine.columns)].equals(spine))
        self.assertIsInstance(df.attrs["tessera"], dict)
        times = [ts.value // 1_000_000 for ts in spine["ts"]]
        self.check_features(df, list(zip(spine["user_id"], spine["device"])), times, windows)
        # The same column names and values as an online read of the same events.
        online = tessera.Client(Fixture.url)
        self.addCleanup(online.close)
        row = online.get("user_stats", "u1", windows=windows, at=ATS[3], as_frame=True)
        last = df.iloc[[-1]].reset_index(drop=True)
        features = [c for c in row.columns if c.startswith("user_stats__")]
        self.assertEqual(features, [c for c in df.columns if c.startswith("user_stats__")])
        for c in features:
            self.assertTrue(same(last[c][0], row[c][0]), c)

    def test_file_spine(self) -> None:
        rng = random.Random(6)
        path = os.path.join(Fixture.tmp, "spine.ndjson")
        rows = []
        for i in range(200):
            t = T0 + rng.randint(0, 7 * HOUR)
            rows.append({"user_id": rng.choice(USERS), "device": rng.choice(DEVICES),
                         "ts": t if i % 2 else harness.rfc3339(t), "label": i % 3, "row": i})
        with open(path, "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
        df = tessera.training_set(Fixture.sql_path, [Fixture.events_path], path,
                                  "user_stats,device_stats", ["1h", "6h"])
        self.assertEqual(list(df.columns)[:5], ["user_id", "device", "ts", "label", "row"])
        self.assertEqual(df["row"].tolist(), list(range(200)))
        self.assertEqual(df["ts"].tolist(), [r["ts"] for r in rows])
        self.check_features(df, [(r["user_id"], r["device"]) for r in rows],
                            [event_time(r) for r in rows], ["1h", "6h"])

    def test_errors(self) -> None:
        spine = self.spine(random.Random(7), 5)
        with self.assertRaises(TesseraError) as e:
            tessera.training_set(SQL, Fixture.events_path, spine, "nope", "1h")
        self.assertIn("nope", str(e.exception))
        self.assertIsNone(e.exception.status)
        bad = spine.copy()
        bad.loc[bad.index[2], "ts"] = pd.NaT
        with self.assertRaises(TesseraError):
            tessera.training_set(SQL, Fixture.events_path, bad, "user_stats", "1h")
        skipped = tessera.training_set(SQL, Fixture.events_path, bad, "user_stats", "1h",
                                       skip_bad_spine=True)
        self.assertEqual(skipped.index.tolist(), spine.index.drop(bad.index[2]).tolist())


@needs_pandas
class SpineFrameTest(unittest.TestCase):
    """What of a DataFrame spine goes to the binary, and spines without rows."""
    windows = ["5m", "1h", "6h"]
    names = ["%s__%s__%s" % (v, f, w) for v, fs in [("user_stats", USER_FEATURES),
                                                    ("device_stats", DEVICE_FEATURES)]
             for f in fs for w in ["5m", "1h", "6h"]]

    def spine(self, n: int) -> "pd.DataFrame":
        rng = random.Random(8)
        times = [T0 + rng.randint(0, 7 * HOUR) for _ in range(n)]
        return pd.DataFrame({"user_id": [rng.choice(USERS) for _ in range(n)],
                             "device": [rng.choice(DEVICES) for _ in range(n)],
                             "ts": pd.to_datetime(times, unit="ms")},
                            index=pd.Index(["r%d" % i for i in range(n)], name="rid"))

    def test_pass_through_columns_of_any_type(self) -> None:
        spine = self.spine(40)
        n = len(spine)
        spine["date"] = [dt.date(2026, 1, 1 + i % 28) for i in range(n)]
        spine["decimal"] = [decimal.Decimal("1.5") * i for i in range(n)]
        spine["timedelta"] = pd.to_timedelta(range(n), unit="s")
        spine["period"] = pd.period_range("2026-01", periods=n, freq="M")
        spine["inf"] = [math.inf, -math.inf, math.nan, 1.0] * (n // 4)
        spine["object"] = [{"a": i} if i % 2 else object() for i in range(n)]
        spine["category"] = pd.Categorical(["x", "y"] * (n // 2))
        spine[7] = range(n)  # not a string name
        spine["nullable"] = pd.array([None if i % 3 else i for i in range(n)], dtype="Int64")
        df = tessera.training_set(SQL, Fixture.events_path, spine, ["user_stats", "device_stats"],
                                  self.windows)
        self.assertEqual(list(df.columns), list(spine.columns) + self.names)
        self.assertEqual(df.index.tolist(), spine.index.tolist())
        self.assertTrue(df[list(spine.columns)].equals(spine))
        self.assertEqual(df["object"].tolist(), spine["object"].tolist())  # the same objects
        self.assertTrue((df.dtypes[:len(spine.columns)] == spine.dtypes).all())
        times = [ts.value // 1_000_000 for ts in spine["ts"]]
        TrainingSetTest.check_features(self, df, list(zip(spine["user_id"], spine["device"])),
                                       times, self.windows)

    def test_only_key_and_time_columns_are_written(self) -> None:
        from tessera import training

        spine = self.spine(5)
        spine["label"] = [dt.date(2026, 1, 1)] * 5
        spine["extra"] = range(5)
        written: List[List[str]] = []
        real = training._write_spine

        def spy(*args: Any) -> List[str]:
            written.append(real(*args))
            with open(args[-1]) as f:
                written.append(list(json.loads(f.readline())))
            return written[0]

        with mock.patch.object(training, "_write_spine", spy):
            tessera.training_set(SQL, Fixture.events_path, spine, "device_stats", "1h")
        self.assertEqual(written, [["user_id", "device", "ts"],
                                   ["user_id", "device", "ts", "__tessera_spine_row__"]])

    def test_key_column_names_are_the_group_by_names(self) -> None:
        sql = SQL + """
CREATE FEATURE VIEW "by listener" AS
SELECT LOWER(user_id) AS "Listener Id", COUNT(*) AS "plays BIGINT = x", SUM(ms) AS total_ms
FROM plays GROUP BY LOWER(user_id);
"""
        spine = self.spine(30).rename(columns={"user_id": "Listener Id"})
        spine["when"] = [dt.date(2026, 1, 1)] * len(spine)  # may hold anything
        df = tessera.training_set(sql, Fixture.events_path, spine, "by listener", "1h,6h")
        self.assertEqual(list(df.columns)[len(spine.columns):],
                         ["by listener__plays BIGINT = x__1h", "by listener__plays BIGINT = x__6h",
                          "by listener__total_ms__1h", "by listener__total_ms__6h"])
        for i, (user, ts) in enumerate(zip(spine["Listener Id"], spine["ts"])):
            want = expected(Fixture.events, "user_stats", (user,), ts.value // 10**6, "6h")
            self.assertEqual(df["by listener__plays BIGINT = x__6h"].iloc[i], want["plays"])
        from tessera.training import _parse_explain

        golden = (REPO / "src" / "sql" / "testdata" / "case_insensitive.out").read_text()
        self.assertEqual({k: tuple(v) for k, v in _parse_explain(golden).items()},
                         {"spend": (["uid"], ["total", "Max Select"])})

    def test_bad_key_and_time_columns(self) -> None:
        spine = self.spine(6)
        with self.assertRaises(TesseraError) as e:
            tessera.training_set(SQL, Fixture.events_path, spine.drop(columns="device"),
                                 "user_stats,device_stats", "1h")
        message = str(e.exception)
        self.assertIn("the spine DataFrame has no column 'device'", message)
        self.assertNotIn(tempfile.gettempdir(), message)
        bad = spine.copy()
        bad.loc["r3", "ts"] = pd.NaT
        with self.assertRaisesRegex(TesseraError, "spine DataFrame row 3 \\(index 'r3'\\): no "
                                    "time in column 'ts'.*skip_bad_spine=True"):
            tessera.training_set(SQL, Fixture.events_path, bad, "user_stats", "1h")
        for column, value in [("user_id", decimal.Decimal(1)), ("device", dt.date(2026, 1, 1)),
                              ("ts", dt.date(2026, 1, 1)), ("user_id", math.inf)]:
            bad = spine.astype({column: object})
            bad.loc["r2", column] = value
            with self.assertRaisesRegex(ValueError, "spine column '%s': cannot write" % column):
                tessera.training_set(SQL, Fixture.events_path, bad, "device_stats", "1h")
        clash = spine.assign(user_stats__plays__1h=1)
        with self.assertRaisesRegex(TesseraError, "two columns named 'user_stats__plays__1h'"):
            tessera.training_set(SQL, Fixture.events_path, clash, "user_stats", "1h")

    def test_spine_without_rows(self) -> None:
        full = tessera.training_set(SQL, Fixture.events_path, self.spine(20),
                                    ["user_stats", "device_stats"], self.windows)
        spine = self.spine(20).iloc[:0]
        spine["label"] = pd.Series([], dtype="int64")
        df = tessera.training_set(SQL, Fixture.events_path, spine, ["user_stats", "device_stats"],
                                  self.windows)
        self.assertEqual(len(df), 0)
        self.assertEqual(list(df.columns), list(spine.columns) + self.names)
        self.assertEqual(df.index.name, "rid")
        self.assertTrue((df.dtypes[:len(spine.columns)] == spine.dtypes).all())
        self.assertEqual(df.attrs["tessera"]["spine_rows"], 0)
        for name in ["user_stats__plays__1h", "user_stats__total_ms__5m",
                     "user_stats__recent__6h"]:
            self.assertEqual(df[name].dtype, full[name].dtype, name)
        # Every row skipped: the same columns.
        bad = self.spine(3)
        bad["ts"] = pd.NaT
        df = tessera.training_set(SQL, Fixture.events_path, bad, "user_stats", "1h",
                                  skip_bad_spine=True)
        self.assertEqual(list(df.columns), ["user_id", "device", "ts", "user_stats__plays__1h",
                                            "user_stats__total_ms__1h", "user_stats__max_ms__1h",
                                            "user_stats__recent__1h"])
        self.assertEqual((len(df), df.attrs["tessera"]["spine_rows_skipped"]), (0, 3))
        # A spine file without rows: the feature columns.
        path = os.path.join(Fixture.tmp, "empty-spine.ndjson")
        Path(path).write_text("")
        df = tessera.training_set(SQL, Fixture.events_path, path, "device_stats", "60m,6h")
        self.assertEqual(list(df.columns), ["device_stats__plays__60m", "device_stats__plays__6h",
                                            "device_stats__total_ms__60m",
                                            "device_stats__total_ms__6h"])
        self.assertEqual(len(df), 0)
        # The binary's errors all the same.
        with self.assertRaisesRegex(TesseraError, "no view 'nope'"):
            tessera.training_set(SQL, Fixture.events_path, spine, "nope", "1h")
        with self.assertRaisesRegex(TesseraError, "window '1h' is listed twice"):
            tessera.training_set(SQL, Fixture.events_path, spine, "user_stats", "1h,1h")


class BinaryLookupTest(unittest.TestCase):
    def test_lookup_order_and_errors(self) -> None:
        with self.assertRaisesRegex(TesseraError, "binary= '/nonexistent/tessera'"):
            tessera.find_binary("/nonexistent/tessera")
        with mock.patch.dict(os.environ, {"TESSERA_BIN": "/nonexistent/t2"}):
            with self.assertRaisesRegex(TesseraError, "TESSERA_BIN '/nonexistent/t2'"):
                tessera.find_binary()
        real = tessera.find_binary()
        self.assertEqual(tessera.find_binary(real), real)

    @needs_pandas
    def test_sql_neither_file_nor_text(self) -> None:
        with self.assertRaisesRegex(ValueError, "neither an existing file nor SQL"):
            tessera.training_set("create_views.sql", "events.ndjson", "spine.ndjson", "v", "1h")


if __name__ == "__main__":
    unittest.main()
