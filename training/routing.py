"""Training a routed agency head: office labels become types through the directory.

`aduan train --directory FILE` maps every agency label of the training data
to its office's type (`data.directory.Directory.lookup`), trains the head on
types, and stores the directory, the region table and the deployment scope in
the bundle (`model.routing`), so `predict` answers with concrete offices.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence

from data.directory import Directory, label_key
from data.load import Complaints
from data.schema import DataError
from model.bundle import Bundle
from model.predict import preprocess
from model.regions import Gazetteer, RegionsError, RegionTable
from model.routing import Exemplars, Router, scope_codes
from training.build_directory import region_files


def read_regions(paths: Sequence[str | os.PathLike[str]] | None) -> RegionTable:
    """The region table from `--regions` files or folders (default: the shared tables)."""
    try:
        return RegionTable.read(*region_files([str(p) for p in paths] if paths else None))
    except RegionsError as exc:
        raise DataError(str(exc)) from exc


def build_router(
    directory: str | os.PathLike[str],
    regions: Sequence[str | os.PathLike[str]] | None = None,
    scope: Sequence[str] = (),
) -> Router:
    """A router over a directory file and region tables, limited to `scope`.

    A scoped router keeps only the scope's part of the region table (and the
    regions the directory's offices name), which keeps bundles small.
    """
    table = read_regions(regions)
    offices = Directory.read(directory, regions=table)
    codes = scope_codes(table, scope)
    if codes:
        keep = set(codes) | {o.region_code for o in offices.offices if o.region_code}
        table = table.subset(keep)
    return Router(offices, Gazetteer(table, scope=codes))


def label_types(data: Complaints, head: str, directory: Directory) -> Complaints:
    """`data` with the `head` labels replaced by their offices' types.

    Raises a DataError naming the labels the directory lacks (label strings
    are office names, not personal data).
    """
    types: list[str | None] = []
    missing: Counter[str] = Counter()
    for label in data.labels(head):
        if label is None or not label_key(label):
            types.append(None)  # unlabelled, or a label with no letters or digits (".")
            continue
        office = directory.lookup(label)
        if office is None:
            missing[label] += 1
            types.append(None)
        else:
            types.append(office.type)
    if missing:
        shown = ", ".join(repr(k) for k, _ in missing.most_common(5))
        raise DataError(
            f"{data.source}: {len(missing)} {head} label(s) on {sum(missing.values())} rows are "
            f"not offices of the directory {directory.source} (e.g. {shown}); add them (as a "
            "name or an alias) or rebuild it with python -m training.build_directory"
        )
    return data.with_labels(head, types)


def attach(bundle: Bundle, head: str, router: Router, train: Complaints) -> None:
    """Route the trained head through `router`; every type it predicts must have an office.

    `train` holds the training rows with their office labels (before
    `label_types`): their counts per office share a type among offices the
    region cannot tell apart, and the rows of types with several offices are
    embedded with the bundle's encoder as the router's exemplars.
    """
    orphan = router.types_without_offices(bundle.head_specs[head].labels)
    if orphan:
        raise DataError(
            f"{len(orphan)} type(s) of head {head!r} have no office in scope in "
            f"{router.directory.source} (e.g. {orphan[0]!r}); widen --scope or add offices"
        )
    offices = [router.directory.lookup(v) if v else None for v in train.labels(head)]
    counts = Counter(o.id for o in offices if o is not None)
    texts = train.texts()
    voters = [
        (texts[i], o) for i, o in enumerate(offices) if o and len(router.offices_of(o.type)) > 1
    ]
    exemplars = None
    if voters:
        clean = preprocess(bundle, [t for t, _ in voters])
        vectors = bundle.encoder.embed(clean, batch_size=32)
        exemplars = Exemplars(vectors, tuple(o.id for _, o in voters))
    routed = Router(
        router.directory, router.gazetteer, office_counts=dict(counts), exemplars=exemplars
    )
    bundle.set_router(head, routed)
