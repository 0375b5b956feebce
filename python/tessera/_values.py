"""Conversions shared by the client and training_set: keys, times, windows, DataFrames."""
import datetime as dt
import numbers
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

Part = Union[str, int, float, bool]
Key = Union[Part, Tuple[Part, ...], List[Part]]
At = Union[None, int, str, dt.datetime]
Windows = Union[None, str, Sequence[str]]

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def part_text(part: Part) -> str:
    """One key value as the server renders it: strings as they are, integers in decimal,
    booleans as true/false, doubles in shortest round-trip form."""
    if isinstance(part, str):
        return part
    if isinstance(part, bool):
        return "true" if part else "false"
    if isinstance(part, numbers.Integral):
        return str(int(part))
    if isinstance(part, numbers.Real):
        return repr(float(part))
    raise TypeError(f"key part {part!r}: expected str, int, float or bool")


def key_parts(key: Key) -> Union[str, List[str]]:
    """A key for batchGet: a string in text form, or the parts of a composite key."""
    if isinstance(key, (tuple, list)):
        return [part_text(p) for p in key]
    return part_text(key)


def is_one_key(keys: Any) -> bool:
    """Whether `keys` is one key (a value or a tuple of parts) rather than a list of keys."""
    return isinstance(keys, (str, bytes, tuple)) or not isinstance(keys, Iterable)


def millis(t: dt.datetime) -> int:
    """Epoch milliseconds of `t` (naive = UTC), rounded down."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    return (t - _EPOCH) // dt.timedelta(milliseconds=1)


def rfc3339(t: dt.datetime) -> str:
    """`t` (naive = UTC) in RFC 3339 with milliseconds, e.g. 2026-01-01T07:00:00.123Z."""
    if t.tzinfo is not None:
        t = t.astimezone(dt.timezone.utc)
    return (f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:"
            f"{t.second:02d}.{t.microsecond // 1000:03d}Z")


def at_value(at: At) -> Union[None, int, str]:
    """`at` as the API takes it: None (the server's now), epoch ms, or RFC 3339 text."""
    if at is None or isinstance(at, str):
        return at
    if isinstance(at, dt.datetime):
        return rfc3339(at)
    if isinstance(at, numbers.Integral) and not isinstance(at, bool):
        return int(at)
    raise TypeError(f"at: expected None, epoch milliseconds (int), a datetime or an RFC 3339 "
                    f"string, got {at!r}")


def windows_list(windows: Windows) -> Optional[List[str]]:
    """`windows` as a list ("5m,1h" or ["5m", "1h"]); None for the server's default."""
    if windows is None:
        return None
    if isinstance(windows, str):
        return [w.strip() for w in windows.split(",") if w.strip()]
    return [str(w) for w in windows]


def names_list(names: Union[str, Sequence[str]], what: str) -> List[str]:
    """A list given as a comma string or a sequence of strings; at least one."""
    out = windows_list(names) or []
    if not out:
        raise ValueError(f"{what}: expected at least one name")
    return out


def import_pandas() -> Any:
    """The pandas module, or ImportError saying how to install it."""
    try:
        import pandas
    except ImportError as e:
        raise ImportError("tessera: DataFrames need pandas; install it with "
                          "`apt-get install python3-pandas` (or `pip install pandas`)") from e
    return pandas


def frame(columns: Dict[str, List[Any]]) -> Any:
    """A DataFrame of `columns` in their order. JSON null becomes NaN in numeric columns and in
    columns that are all null (as pandas reads CSV), None elsewhere; lists stay lists."""
    pd = import_pandas()
    data = {}
    for name, values in columns.items():
        s = pd.Series(values, dtype=None if values else "float64")
        if s.dtype == object and s.isna().all():
            s = s.astype("float64")
        data[name] = s
    return pd.DataFrame(data, columns=list(columns))


def feature_columns(results: Sequence[Dict[str, Any]]) -> Dict[str, List[Any]]:
    """The columns of feature answers: key, at, then `{view}__{feature}__{window}` for every
    feature (in the view's order) and every window (in the requested order)."""
    columns: Dict[str, List[Any]] = {"key": [], "at": []}
    cells: List[Tuple[str, str]] = []
    if results:
        view = results[0]["view"]
        windows = results[0]["windows"]
        for feature in next(iter(windows.values()), {}):
            for window in windows:
                columns[f"{view}__{feature}__{window}"] = []
                cells.append((window, feature))
    names = list(columns)[2:]
    meta = bool(results) and "meta" in results[0]
    if meta:  # answers asked with meta=True: the freshness of each, per view
        for field in ("newest_event_time", "watermark"):
            columns[f"{view}__{field}"] = []
    for r in results:
        columns["key"].append(r["key"])
        columns["at"].append(r["at"])
        for name, (window, feature) in zip(names, cells):
            columns[name].append(r["windows"][window][feature])
        if meta:
            for field in ("newest_event_time", "watermark"):
                columns[f"{view}__{field}"].append(r.get("meta", {}).get(field))
    return columns

