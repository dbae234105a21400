"""aduan's data layer: one schema, one loader, named shared sets, reproducible splits.

Importing this package is cheap (no torch, and `datasets` only once something
is loaded), so the CLI can start quickly.
"""

from data.load import Complaints, load_complaints
from data.registry import RegisteredSet, list_datasets, resolve_dataset, shared_data_available
from data.schema import DataError
from data.splits import random_split, time_split

__all__ = [
    "Complaints",
    "DataError",
    "RegisteredSet",
    "list_datasets",
    "load_complaints",
    "random_split",
    "resolve_dataset",
    "shared_data_available",
    "time_split",
]
