"""Training sets: `tessera training-set` run by the local binary, read into pandas."""
import datetime as dt
import json
import math
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

from tessera import _values as v
from tessera.errors import TesseraError

PathLike = Union[str, "os.PathLike[str]"]

_ROW = "__tessera_spine_row__"
_REPO = Path(__file__).resolve().parents[2]
# The release build beside this package, when it is imported from the source tree.
_SOURCE_TREE_BINARY = (_REPO / "build" / "release" / "apps" / "tessera"
                       if (_REPO / "CMakeLists.txt").is_file() and (_REPO / "python").is_dir()
                       else None)


def find_binary(binary: Optional[PathLike] = None) -> str:
    """The `tessera` binary: `binary`, else $TESSERA_BIN, else `tessera` on PATH, else the
    release build of the source tree this package lives in. TesseraError naming what was
    tried when there is none."""
    env = os.environ.get("TESSERA_BIN") or None
    for given, what in ((binary, "binary="), (env, "TESSERA_BIN")):
        if given is not None:
            path = os.fspath(given)
            if os.path.isfile(path) and os.access(path, os.X_OK):
                return path
            raise TesseraError(f"{what} {path!r} is not an executable file")
    on_path = shutil.which("tessera")
    if on_path:
        return on_path
    if _SOURCE_TREE_BINARY is not None and os.access(_SOURCE_TREE_BINARY, os.X_OK):
        return str(_SOURCE_TREE_BINARY)
    build = f" or build {_SOURCE_TREE_BINARY} (`make`)" if _SOURCE_TREE_BINARY else ""
    raise TesseraError("cannot find the tessera binary: pass binary=…, set TESSERA_BIN, or put "
                       f"`tessera` on PATH{build}")


def training_set(sql: PathLike, events: Union[PathLike, Sequence[PathLike]], spine: Any,
                 views: Union[str, Sequence[str]], windows: Union[str, Sequence[str]], *,
                 spine_time: str = "ts", skip_bad_spine: bool = False,
                 binary: Optional[PathLike] = None) -> Any:
    """Point-in-time features for every row of `spine`, as a pandas DataFrame.

    Runs `tessera training-set`: for spine time t and window W a feature covers the events of
    the row's key with align_down(t - W, tile) <= ts < t, so nothing at or after t leaks in.

    `sql`: a .sql file, or SQL text (holding CREATE). `events`: NDJSON file(s), replayed in the
    order given. `spine`: an .ndjson/.csv file (optionally .gz/.zst) or a DataFrame, holding
    the views' key columns (named as in their GROUP BY), the time column `spine_time` (epoch ms
    or RFC 3339; datetimes in a DataFrame, naive = UTC) and any other columns. `views`,
    `windows`: lists or comma strings. A spine row with a missing or bad time is an error unless
    `skip_bad_spine`.

    Returns one row per spine row, in spine order: the spine's columns (for a DataFrame spine,
    its own rows with their index and dtypes), then `{view}__{feature}__{window}` columns;
    `df.attrs["tessera"]` holds the command's JSON summary. Without rows (an empty spine, or
    every row skipped) the feature columns are there all the same, empty. Raises TesseraError
    with the command's error text when it fails.

    A DataFrame spine is not handed to the binary whole: only the views' key columns (their
    names read from `tessera explain`), the time column and a row number are written, so the
    other columns may hold anything (dates, Decimals, inf, objects) and come back untouched.
    """
    pd = v.import_pandas()
    tessera = find_binary(binary)
    event_paths = [events] if isinstance(events, (str, os.PathLike)) else list(events)
    if not event_paths:
        raise ValueError("events: expected at least one file")
    view_names = v.names_list(views, "views")
    window_names = v.names_list(windows, "windows")
    is_frame = isinstance(spine, pd.DataFrame)
    with tempfile.TemporaryDirectory(prefix="tessera-training-") as tmp:
        sql_path = _sql_file(sql, tmp)
        plan: Optional[Dict[str, _View]] = None
        written: List[str] = []
        if is_frame:
            plan = _explain(sql_path, binary=tessera)
            written = _write_spine(pd, spine, plan, view_names, window_names, spine_time,
                                   os.path.join(tmp, "spine.ndjson"))
            spine_path = os.path.join(tmp, "spine.ndjson")
        else:
            spine_path = os.fspath(spine)
        out_path = os.path.join(tmp, "out.ndjson")
        cmd = _command(tessera, sql_path, event_paths, spine_path, view_names, window_names,
                       out_path, spine_time, skip_bad_spine)
        try:
            summary = _run(cmd)
        except TesseraError as e:
            if not is_frame:
                raise
            raise TesseraError(_frame_error(str(e), spine_path, spine)) from None
        columns, n_rows = _read_ndjson(out_path)
        if n_rows == 0:
            if plan is None:
                plan = _explain(sql_path, binary=tessera)
            columns = _empty_features(tessera, tmp, sql_path, plan, view_names, window_names,
                                      spine_time)
    if not is_frame:
        df = _typed_frame(pd, columns) if n_rows == 0 else v.frame(columns)
        df.attrs["tessera"] = summary
        return df
    positions = columns.pop(_ROW, [])
    for name in written:
        columns.pop(name, None)
    _check_no_clash(spine.columns, columns)
    base = spine.iloc[positions]
    features = _typed_frame(pd, columns) if n_rows == 0 else v.frame(columns)
    df = pd.concat([base.reset_index(drop=True), features], axis=1)
    df.index = base.index
    df.attrs["tessera"] = summary
    return df


class _View(NamedTuple):
    keys: List[str]      # the GROUP BY names: the spine columns its keys are looked up by
    features: List[str]  # its feature columns, in order


_TYPE = r"(?:NULL|BOOLEAN|BIGINT|DOUBLE|STRING|TIMESTAMP|LIST|\?)"
_NAMED = re.compile(r"    (.+?) " + _TYPE + r" = ")


def _explain(sql: PathLike, *, binary: Optional[PathLike] = None) -> Dict[str, "_View"]:
    """The feature views of a .sql file as `tessera explain --sql` binds them:
    {view: (keys, features)}, the key and feature column names in order. TesseraError with the
    binary's message when the SQL does not bind."""
    p = subprocess.run([find_binary(binary), "explain", "--sql", os.fspath(sql)],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       errors="replace")
    if p.returncode != 0:
        raise TesseraError(p.stderr.strip() or p.stdout.strip()
                           or f"tessera explain exited with status {p.returncode}")
    return _parse_explain(p.stdout)


def _parse_explain(text: str) -> Dict[str, "_View"]:
    """Parses the layout of src/sql/explain.cc (stable: golden tests compare it):

        FEATURE VIEW name
          source: plays, tile: 5m
          keys:
            name TYPE = <expression>
          aggregates:
            $0 COUNT(*) -> BIGINT
          features:
            name TYPE = <expression>

    A name is what comes before the first " TYPE = " of its line (names may hold spaces)."""
    views: Dict[str, _View] = {}
    view: Optional[_View] = None
    section: Optional[List[str]] = None
    for line in text.splitlines():
        if not line.startswith(" "):  # SOURCE …, FEATURE VIEW …, or the blank line between
            view, section = None, None
            if line.startswith("FEATURE VIEW "):
                view = _View([], [])
                views[line[len("FEATURE VIEW "):]] = view
        elif view is not None and not line.startswith("    "):
            section = {"  keys:": view.keys, "  features:": view.features}.get(line.rstrip())
        elif section is not None:
            m = _NAMED.match(line)
            if m:
                section.append(m.group(1))
    return views


def _command(tessera: str, sql_path: str, event_paths: Sequence[PathLike], spine_path: str,
             views: List[str], windows: List[str], out_path: str, spine_time: str,
             skip_bad_spine: bool) -> List[str]:
    cmd = [tessera, "training-set", "--sql", sql_path, "--input"]
    cmd += [os.fspath(p) for p in event_paths]
    cmd += ["--spine", spine_path, "--views", ",".join(views), "--windows", ",".join(windows),
            "--out", out_path]
    if spine_time != "ts":
        cmd += ["--spine-time", spine_time]
    if skip_bad_spine:
        cmd.append("--skip-bad-spine")
    return cmd


def _sql_file(sql: PathLike, tmp: str) -> str:
    if isinstance(sql, os.PathLike) or os.path.exists(sql):
        path = os.fspath(sql)
        if not os.path.isfile(path):
            raise ValueError(f"sql: {path!r} is not a file")
        return path
    if not re.search(r"\bcreate\s", sql, re.IGNORECASE):
        raise ValueError(f"sql: {sql[:100]!r} is neither an existing file nor SQL text "
                         "(CREATE SOURCE … / CREATE FEATURE VIEW …)")
    path = os.path.join(tmp, "views.sql")
    with open(path, "w", encoding="utf-8") as f:
        f.write(sql)
    return path


def _run(cmd: List[str]) -> Dict[str, Any]:
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       errors="replace")
    if p.returncode != 0:
        message = p.stderr.strip() or p.stdout.strip()
        raise TesseraError(message or f"{' '.join(cmd)} exited with status {p.returncode}")
    lines = [line for line in p.stdout.splitlines() if line.strip()]
    try:
        summary = json.loads(lines[-1])
    except (IndexError, ValueError):
        raise TesseraError(f"{cmd[0]} training-set printed no JSON summary; stdout: "
                           f"{p.stdout[-1000:]!r}") from None
    return summary


def _read_ndjson(path: str) -> Tuple[Dict[str, List[Any]], int]:
    """The columns of an NDJSON file, in order of first appearance (absent cells: None), and
    its number of rows."""
    with open(path, encoding="utf-8") as f:
        lines = [line for line in f.read().split("\n") if line.strip()]
    # One json.loads of the whole file: a call per line costs more than the binary's run.
    rows = json.loads("[" + ",".join(lines) + "]")
    del lines
    names: Dict[str, None] = {}
    for row in rows:
        if row.keys() != names.keys():
            names.update(dict.fromkeys(row))
    if all(len(row) == len(names) for row in rows):  # every row has every column
        columns = {name: [row[name] for row in rows] for name in names}
    else:
        columns = {name: [row.get(name) for row in rows] for name in names}
    return columns, len(rows)


# A spine without rows


def _empty_features(tessera: str, tmp: str, sql_path: str, plan: Dict[str, "_View"],
                    views: List[str], windows: List[str], spine_time: str) -> Dict[str, List[Any]]:
    """The feature columns the binary writes for `views` and `windows`, each holding the value
    of a key never seen (0 for COUNT, null, []): one spine row with null keys at time 0 run
    against no events, its spine columns dropped."""
    keys = list(dict.fromkeys(k for name in views if name in plan for k in plan[name].keys))
    row: Dict[str, Any] = {k: None for k in keys}
    row[spine_time] = 0
    spine_path = os.path.join(tmp, "empty-spine.ndjson")
    events_path = os.path.join(tmp, "empty-events.ndjson")
    out_path = os.path.join(tmp, "empty-out.ndjson")
    with open(spine_path, "w", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")
    open(events_path, "w").close()
    _run(_command(tessera, sql_path, [events_path], spine_path, views, windows, out_path,
                  spine_time, False))
    columns, _ = _read_ndjson(out_path)
    for name in row:
        columns.pop(name, None)
    return columns


def _typed_frame(pd: Any, samples: Dict[str, List[Any]]) -> Any:
    """An empty DataFrame with the columns of `samples` (one value each): integer columns
    int64, booleans bool, lists and strings object, the rest (null, doubles) float64 — the
    dtypes the same columns get when rows hold such values."""
    def dtype(values: List[Any]) -> str:
        x = values[0] if values else None
        if isinstance(x, bool):
            return "bool"
        if isinstance(x, int):
            return "int64"
        if isinstance(x, (list, str)):
            return "object"
        return "float64"

    return pd.DataFrame({name: pd.Series([], dtype=dtype(values))
                         for name, values in samples.items()}, columns=list(samples))


# A DataFrame spine


def _check_no_clash(spine_columns: Any, features: Any) -> None:
    clash = [name for name in features if name in set(spine_columns)]
    if clash:
        raise TesseraError(f"the output would have two columns named {clash[0]!r} (the spine's "
                           "own and a view's feature); rename the spine column or the feature")


def _frame_error(message: str, spine_path: str, spine: Any) -> str:
    """The binary's error about the temporary spine file, told about the DataFrame: `line N`
    is row N - 1 (with its index label)."""
    quoted = f"spine '{spine_path}'"

    def row(m: "re.Match[str]") -> str:
        i = int(m.group(1)) - 1
        label = f" (index {spine.index[i]!r})" if 0 <= i < len(spine) else ""
        return f"spine DataFrame row {i}{label}"

    message = re.sub(re.escape(quoted) + r" line (\d+)", row, message)
    message = message.replace(quoted, "the spine DataFrame")
    return message.replace("pass --skip-bad-spine", "pass skip_bad_spine=True")


def _write_spine(pd: Any, spine: Any, plan: Dict[str, "_View"], views: List[str],
                 windows: List[str], spine_time: str, path: str) -> List[str]:
    """Writes what the binary needs of a DataFrame spine as NDJSON: the key columns of `views`
    (by their GROUP BY names, from `plan`), the time column, and _ROW (the row number) — not
    the other columns, which the result takes from the DataFrame itself. Datetimes become epoch
    ms (naive = UTC), NaN/NaT/None null. Returns the names of the spine's columns written.

    Should a view be missing from `plan` or its key columns from the DataFrame, every column
    that can be written as JSON is written instead, and the binary says what is wrong (an
    unknown view, a missing key column)."""
    if _ROW in spine.columns:
        raise ValueError(f"spine: a column may not be named {_ROW!r}")
    names = [str(c) for c in spine.columns if isinstance(c, str)]
    found = all(name in plan for name in views)
    if found:
        for view in views:
            _check_no_clash(names, [f"{view}__{f}__{w}" for f in plan[view].features
                                    for w in windows])
    wanted = list(dict.fromkeys([k for view in views if view in plan for k in plan[view].keys]
                                + [spine_time]))
    exact = found and all(k in names for k in wanted if k != spine_time)
    columns: List[str] = []
    texts: List[List[str]] = []
    for name in (wanted if exact else names):
        if name not in names:
            continue  # the time column: the binary reports (or skips) rows without a time
        at = spine.columns.get_loc(name)
        if not isinstance(at, int):
            if name not in wanted:
                continue
            raise ValueError(f"spine: column {name!r} appears more than once")
        try:
            texts.append(_json_texts(pd, spine.iloc[:, at]))
        except _NotJson as e:
            if exact or name in wanted:
                raise ValueError(f"spine column {name!r}: {e}") from None
            continue  # a column the binary does not need
        columns.append(name)
    texts.append([str(i) for i in range(len(spine))])
    prefixes = [json.dumps(name) + ":" for name in columns + [_ROW]]
    with open(path, "w", encoding="utf-8") as f:
        for cells in zip(*texts):
            f.write("{" + ",".join(p + c for p, c in zip(prefixes, cells)) + "}\n")
    return columns


class _NotJson(Exception):
    pass


_json_string = json.encoder.encode_basestring_ascii  # json.dumps of a str, without its overhead


def _json_texts(pd: Any, s: Any) -> List[str]:
    """The cells of a column as JSON text; _NotJson for a value JSON cannot hold."""
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        if getattr(s.dt, "tz", None) is not None:
            s = s.dt.tz_convert("UTC").dt.tz_localize(None)
        ms = (s.values.astype("datetime64[ns]").view("int64") // 1_000_000).tolist()
        return ["null" if missing else str(m) for m, missing in zip(ms, s.isna().tolist())]
    if not pd.api.types.is_extension_array_dtype(s.dtype):
        if s.dtype.kind == "b":
            return ["true" if x else "false" for x in s.tolist()]
        if s.dtype.kind in "iu":
            return [str(x) for x in s.tolist()]
    out = []
    for x in s.astype(object).tolist():
        if type(x) is str:
            out.append(_json_string(x))
            continue
        try:
            out.append(json.dumps(_json_cell(pd, x), allow_nan=False))
        except (TypeError, ValueError):
            raise _NotJson(f"cannot write {type(x).__name__} {x!r} as JSON (the binary reads "
                           "keys and times as strings, numbers, booleans or datetimes)") from None
    return out


def _json_cell(pd: Any, x: Any) -> Any:
    import numpy as np

    if isinstance(x, np.generic):
        x = pd.Timestamp(x) if isinstance(x, np.datetime64) else x.item()
    if isinstance(x, (list, tuple, np.ndarray)):
        return [_json_cell(pd, y) for y in list(x)]
    if x is None or isinstance(x, str):
        return x
    if isinstance(x, float) and math.isnan(x):
        return None
    if pd.api.types.is_scalar(x) and pd.isna(x):
        return None
    if isinstance(x, dt.datetime):
        return v.millis(x)
    return x
