"""HTTP client of `tessera run` / `tessera serve` (routes of src/serve/feature_service.h)."""
import datetime as dt
import http.client
import json
import socket
import threading
import urllib.parse
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from tessera import _values as v
from tessera.errors import TesseraError

_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
          ConnectionAbortedError)


class Client:
    """Features of one Tessera server.

    One keep-alive connection, shared by the calls of all threads (they take turns). Every
    failure raises TesseraError: with the HTTP status and the server's error text, or, when no
    answer came, with the URL and what failed (refused, timed out, …).
    """

    def __init__(self, url: str, timeout: float = 10.0, *, max_batch_keys: int = 10000) -> None:
        """`url` like http://127.0.0.1:8080 (a path prefix is kept); `timeout` in seconds per
        socket operation; batchGet requests carry at most `max_batch_keys` keys (the server's
        limit), larger ones are split."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"url: expected http(s)://host:port, got {url!r}")
        if max_batch_keys < 1:
            raise ValueError("max_batch_keys: expected at least 1")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.max_batch_keys = max_batch_keys
        self._https = parts.scheme == "https"
        self._host, self._port = parts.hostname, parts.port
        self._prefix = parts.path.rstrip("/")
        self._conn: Optional[http.client.HTTPConnection] = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"tessera.Client({self.url!r})"

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Closes the connection (the next call opens a new one)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # Features

    def get(self, view: str, keys: Any, windows: v.Windows = None, at: v.At = None,
            as_frame: bool = False, meta: bool = False) -> Any:
        """Features of `view` for one key or a list of keys.

        A key is a value (text form for composite keys: parts joined by '|', '|' and '\\' in a
        part escaped by '\\') or a tuple of the parts of a composite key; a list (or any other
        iterable but a tuple) is a list of keys, whose elements may be tuples or lists of parts.
        `windows`: "5m,1h" or ["5m", "1h"] (None: the server's default). `at`: None (the
        server's now), epoch ms, a datetime (naive = UTC) or RFC 3339 text. `meta`: each answer
        also carries "meta": {"newest_event_time", "watermark"} (RFC 3339 or None), so that an
        empty answer can be told from a stale one.
        Returns the answer of one key as a dict ({"view", "key", "at", "windows": {window:
        {feature: value}}}), a list of them for a list of keys, or with `as_frame` a DataFrame
        with one row per key (see `frame`).
        """
        if as_frame:
            v.import_pandas()
        if not v.is_one_key(keys):
            return self.batch_get(view, keys, windows, at, as_frame, meta)
        # A tuple goes as its parts (batchGet), which the server checks against the view's key
        # columns: as text, ("a|b",) would be the key (a, b) of a 2-column view and ("a", "b")
        # the key "a|b" of a 1-column one. An empty key cannot be a path segment.
        if isinstance(keys, tuple) or v.part_text(keys) == "":
            results = self.batch_get(view, [keys], windows, at, meta=meta)
            return self.frame(results) if as_frame else results[0]
        text = v.part_text(keys)
        query = {}
        ws = v.windows_list(windows)
        if ws is not None:
            query["windows"] = ",".join(ws)
        at_value = v.at_value(at)
        if at_value is not None:
            query["at"] = str(at_value)
        if meta:
            query["meta"] = "true"
        path = "/v1/features/%s/%s" % (urllib.parse.quote(view, safe=""),
                                       urllib.parse.quote(text, safe=""))
        if query:
            path += "?" + urllib.parse.urlencode(query, quote_via=urllib.parse.quote)
        result = self._call("GET", path)
        if not _is_answer(result):
            raise TesseraError(f"GET {self.url}{path}: expected a feature answer, got "
                               f"{json.dumps(result)[:200]}", 200)
        return self.frame([result]) if as_frame else result

    def batch_get(self, view: str, keys: Any, windows: v.Windows = None, at: v.At = None,
                  as_frame: bool = False, meta: bool = False) -> Any:
        """Features of `view` for `keys` (a list; one key is taken as a list of one) with
        POST /v1/features:batchGet, in order. Lists longer than `max_batch_keys` are sent in
        several requests; all of them read at the same `at` (without `at`, the first answer's).
        Arguments and answers as in `get`."""
        if as_frame:
            v.import_pandas()
        if v.is_one_key(keys):
            keys = [keys]
        wire = [v.key_parts(k) for k in keys]
        body: Dict[str, Any] = {"view": view}
        ws = v.windows_list(windows)
        if ws is not None:
            body["windows"] = ws
        at_value = v.at_value(at)
        if at_value is not None:
            body["at"] = at_value
        if meta:
            body["meta"] = True
        results: List[Dict[str, Any]] = []
        for start in range(0, len(wire), self.max_batch_keys):
            body["keys"] = wire[start:start + self.max_batch_keys]
            answer = self._call("POST", "/v1/features:batchGet", body)
            got = answer.get("results") if isinstance(answer, dict) else None
            if not isinstance(got, list) or len(got) != len(body["keys"]) \
                    or not all(_is_answer(r) for r in got):
                raise TesseraError(f"POST {self.url}/v1/features:batchGet: expected "
                                   f"{{\"results\": [{len(body['keys'])} answers]}}, got "
                                   f"{json.dumps(answer)[:200]}", 200)
            results.extend(got)
            if "at" not in body and results:
                body["at"] = results[0]["at"]
        return self.frame(results) if as_frame else results

    @staticmethod
    def frame(results: Sequence[Mapping[str, Any]]) -> Any:
        """Feature answers as a pandas DataFrame: one row per answer with the columns `key`,
        `at` (the server's RFC 3339 text), then `{view}__{feature}__{window}` (each feature in
        the view's order, each window in the requested order) — the names of `tessera
        training-set` columns. Nulls are NaN in numeric columns; LAST_K/TOP_K stay lists."""
        return v.frame(v.feature_columns(list(results)))

    # Catalog, health, ingest

    def views(self) -> Dict[str, Any]:
        """The catalog: {"views": [{name, source, tile, keys, features, sql}], "sources": […]}."""
        return self._call("GET", "/v1/views")

    def healthy(self) -> bool:
        """Whether the server answers /healthz with 200 (False when it cannot be reached)."""
        return self._probe("/healthz")

    def ready(self) -> bool:
        """Whether the server answers /readyz with 200 (False when it cannot be reached)."""
        return self._probe("/readyz")

    def ingest(self, source: str, rows: Union[str, bytes, Iterable[Mapping[str, Any]]],
               batch_id: Optional[str] = None, wait: Optional[str] = None) -> Dict[str, Any]:
        """Posts events to an http source: `rows` is NDJSON text or an iterable of dicts
        (datetimes become RFC 3339). `batch_id` makes a retry idempotent; `wait` is "visible"
        (the server's default) or "durable". Returns the server's counts ({"accepted", …})."""
        if isinstance(rows, str):
            body = rows.encode()
        elif isinstance(rows, bytes):
            body = rows
        else:
            body = "".join(json.dumps(r, default=_json_default) + "\n" for r in rows).encode()
        query = {k: val for k, val in (("batch_id", batch_id), ("wait", wait)) if val is not None}
        path = "/v1/ingest/" + urllib.parse.quote(source, safe="")
        if query:
            path += "?" + urllib.parse.urlencode(query, quote_via=urllib.parse.quote)
        return self._call("POST", path, body, content_type="application/x-ndjson",
                          retry=batch_id is not None)

    # Transport

    def _probe(self, path: str) -> bool:
        try:
            return self._send("GET", path, None, "", retry=True)[0] == 200
        except TesseraError:
            return False

    def _call(self, method: str, path: str, body: Any = None,
              content_type: str = "application/json", retry: bool = True) -> Any:
        if body is not None and not isinstance(body, bytes):
            body = json.dumps(body).encode()
        status, data = self._send(method, path, body, content_type, retry)
        text = data.decode("utf-8", errors="replace")
        try:
            parsed = json.loads(text) if text else None
        except ValueError:
            parsed = None
        if status >= 400:
            if isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
                raise TesseraError(parsed["error"], status)
            raise TesseraError(f"{method} {self.url}{path}: HTTP {status}: {text[:1000]}", status)
        if parsed is None:
            raise TesseraError(f"{method} {self.url}{path}: expected JSON, got {text[:200]!r}",
                               status)
        return parsed

    def _send(self, method: str, path: str, body: Optional[bytes], content_type: str,
              retry: bool) -> Tuple[int, bytes]:
        headers = {"Content-Type": content_type} if body is not None else {}
        with self._lock:
            for attempt in (0, 1):
                reused = self._conn is not None
                if self._conn is None:
                    cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
                    self._conn = cls(self._host, self._port, timeout=self.timeout)
                try:
                    self._conn.request(method, self._prefix + path, body=body, headers=headers)
                    response = self._conn.getresponse()
                    data = response.read()
                    if response.will_close:
                        self._conn.close()
                        self._conn = None
                    return response.status, data
                except BaseException as e:
                    self._conn.close()
                    self._conn = None
                    if not isinstance(e, Exception):
                        raise
                    if attempt == 0 and reused and retry and isinstance(e, _STALE):
                        continue  # the server closed the idle keep-alive connection
                    where = f"{method} {self.url}{path}"
                    raise TesseraError(f"{where}: {_reason(e, self.timeout)}") from e
        raise AssertionError("unreachable")


def _is_answer(r: Any) -> bool:
    """Whether `r` looks like the features of one key: {"view", "key", "at", "windows": {}}."""
    return (isinstance(r, dict) and isinstance(r.get("windows"), dict)
            and all(name in r for name in ("view", "key", "at")))


def _reason(e: Exception, timeout: float) -> str:
    if isinstance(e, socket.timeout):
        return f"no answer within {timeout:g} s"
    if isinstance(e, ConnectionRefusedError):
        return "connection refused (is the server running on this address?)"
    if isinstance(e, socket.gaierror):
        return f"cannot resolve the host name ({e.strerror or e})"
    if isinstance(e, http.client.RemoteDisconnected):
        return "the server closed the connection without answering"
    return f"{type(e).__name__}: {e}"


def _json_default(x: Any) -> Any:
    if isinstance(x, dt.datetime):
        return v.rfc3339(x)
    raise TypeError(f"cannot write {type(x).__name__} {x!r} as JSON")
