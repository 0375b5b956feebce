"""Python client of Tessera's features engine.

- `Client(url)`: features of `tessera run` / `tessera serve` over HTTP (dicts or DataFrames).
- `training_set(...)`: point-in-time features for a spine, computed by the local `tessera`
  binary, as a DataFrame with the same column names as `Client.get(..., as_frame=True)`.

Standard library only; pandas is imported when a DataFrame is asked for.
"""
from tessera.client import Client
from tessera.errors import TesseraError
from tessera.training import find_binary, training_set

__all__ = ["Client", "TesseraError", "find_binary", "training_set"]
__version__ = "0.1.0"
