"""Training sets: `tessera training-set` run by the local binary, read into pandas."""
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

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
    the views' key columns, the time column `spine_time` (epoch ms or RFC 3339; datetimes in a
    DataFrame, naive = UTC) and any other columns. `views`, `windows`: lists or comma strings.
    A spine row with a missing or bad time is an error unless `skip_bad_spine`.

    Returns one row per spine row, in spine order: the spine's columns (for a DataFrame spine,
    its own rows with their index and dtypes), then `{view}__{feature}__{window}` columns;
    `df.attrs["tessera"]` holds the command's JSON summary. Raises TesseraError with the
    command's error text when it fails.
    """
    pd = v.import_pandas()
    tessera = find_binary(binary)
    event_paths = [events] if isinstance(events, (str, os.PathLike)) else list(events)
    if not event_paths:
        raise ValueError("events: expected at least one file")
    with tempfile.TemporaryDirectory(prefix="tessera-training-") as tmp:
        cmd = [tessera, "training-set", "--sql", _sql_file(sql, tmp), "--input"]
        cmd += [os.fspath(p) for p in event_paths]
        is_frame = isinstance(spine, pd.DataFrame)
        if is_frame:
            spine_path = os.path.join(tmp, "spine.ndjson")
            _write_spine(pd, spine, spine_path)
        else:
            spine_path = os.fspath(spine)
        out_path = os.path.join(tmp, "out.ndjson")
        cmd += ["--spine", spine_path, "--views", ",".join(v.names_list(views, "views")),
                "--windows", ",".join(v.names_list(windows, "windows")), "--out", out_path]
        if spine_time != "ts":
            cmd += ["--spine-time", spine_time]
        if skip_bad_spine:
            cmd.append("--skip-bad-spine")
        summary = _run(cmd)
        columns = _read_ndjson(out_path)
    if is_frame:
        base = spine.iloc[columns.pop(_ROW, [])]
        features = v.frame({k: vals for k, vals in columns.items() if k not in spine.columns})
        df = pd.concat([base.reset_index(drop=True), features], axis=1)
        df.index = base.index
    else:
        df = v.frame(columns)
    df.attrs["tessera"] = summary
    return df


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


def _read_ndjson(path: str) -> Dict[str, List[Any]]:
    """The columns of an NDJSON file, in order of first appearance (absent cells: None)."""
    columns: Dict[str, List[Any]] = {}
    n = 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            row = json.loads(line)
            for name, value in row.items():
                if name not in columns:
                    columns[name] = [None] * n
                columns[name].append(value)
            n += 1
            for values in columns.values():
                if len(values) < n:
                    values.append(None)
    return columns


def _write_spine(pd: Any, spine: Any, path: str) -> None:
    """Writes a DataFrame spine as NDJSON with the extra column _ROW (its row number):
    datetimes as epoch ms (naive = UTC), NaN/NaT/None as null."""
    names = list(spine.columns) + [_ROW]
    if not all(isinstance(c, str) for c in names) or len(set(names)) != len(names):
        raise ValueError(f"spine: column names must be unique strings (and not {_ROW!r})")
    cols = [_json_column(pd, spine.iloc[:, i]) for i in range(spine.shape[1])]
    cols.append(range(len(spine)))
    with open(path, "w", encoding="utf-8") as f:
        for row in zip(*cols):
            f.write(json.dumps(dict(zip(names, row)), allow_nan=False))
            f.write("\n")


def _json_column(pd: Any, s: Any) -> List[Any]:
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        if getattr(s.dt, "tz", None) is not None:
            s = s.dt.tz_convert("UTC").dt.tz_localize(None)
        ms = (s.values.astype("datetime64[ns]").view("int64") // 1_000_000).tolist()
        return [None if missing else m for m, missing in zip(ms, s.isna().tolist())]
    if s.dtype.kind in "iub" and not pd.api.types.is_extension_array_dtype(s.dtype):
        return s.tolist()
    return [_json_cell(pd, x) for x in s.astype(object).tolist()]


def _json_cell(pd: Any, x: Any) -> Any:
    import numpy as np

    if isinstance(x, np.generic):
        x = pd.Timestamp(x) if isinstance(x, np.datetime64) else x.item()
    if isinstance(x, (list, tuple, np.ndarray)):
        return [_json_cell(pd, y) for y in list(x)]
    if x is None or isinstance(x, str):
        return x
    if pd.api.types.is_scalar(x) and pd.isna(x):
        return None
    if isinstance(x, dt.datetime):
        return v.millis(x)
    return x
