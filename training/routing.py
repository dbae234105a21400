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

import numpy as np

from data.directory import Directory, Office, label_key
from data.load import Complaints
from data.schema import DataError
from model.bundle import Bundle
from model.predict import embedded_probabilities, preprocess, route_head
from model.regions import Gazetteer, RegionsError, RegionTable
from model.routing import Exemplars, Router, scope_codes
from training.build_directory import region_files
from training.embedding import embed_rows, rows_embedded


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


def attach(
    bundle: Bundle,
    head: str,
    router: Router,
    train: Complaints,
    dev: Complaints | None = None,
    *,
    dev_embeddings: np.ndarray | None = None,
) -> None:
    """Route the trained head through `router`; every type it predicts must have an office.

    `train` holds the training rows with their office labels (before
    `label_types`): their counts per office share a type among offices the
    region cannot tell apart, and the rows become the router's exemplars
    (`add_exemplars`). `dev` (office labels too) decides whether the
    exemplars also vote on the type; `dev_embeddings`, when the caller has
    them, are its rows as `training.embedding.embed_rows` gives them.
    """
    orphan = router.types_without_offices(bundle.head_specs[head].labels)
    if orphan:
        raise DataError(
            f"{len(orphan)} type(s) of head {head!r} have no office in scope in "
            f"{router.directory.source} (e.g. {orphan[0]!r}); widen --scope or add offices"
        )
    bundle.set_router(head, Router(router.directory, router.gazetteer))
    add_exemplars(bundle, train, dev, dev_embeddings=dev_embeddings)


def labelled_offices(rows: Complaints, head: str, directory: Directory) -> list[tuple[int, Office]]:
    """The rows (office labels) whose `head` label is an office of `directory`: each
    row's index and its office."""
    return [
        (i, office)
        for i, label in enumerate(rows.labels(head))
        if label and (office := directory.lookup(label)) is not None
    ]


def add_exemplars(
    bundle: Bundle,
    train: Complaints,
    dev: Complaints | None = None,
    *,
    dev_embeddings: np.ndarray | None = None,
) -> dict[str, float]:
    """Embed `train`'s rows as the routed head's exemplars (`make_exemplars`), and count
    their offices; with `dev`, let it decide whether they vote on the type
    (`choose_type_votes`). Replaces any exemplars and counts the router had.

    Returns the dev figures (empty without `dev`).
    """
    router, head = bundle.router, bundle.routing.head
    assert router is not None and head
    found = labelled_offices(train, head, router.directory)
    exemplars = make_exemplars(bundle, train, found)
    counts = Counter(office.id for _, office in found)
    # New exemplars: their type votes stay off until dev chooses again.
    bundle.set_router(
        head, router.replace(exemplars=exemplars, office_counts=counts, type_votes=False)
    )
    if dev is None:
        return {}
    return choose_type_votes(bundle, dev, dev_embeddings=dev_embeddings)


def choose_type_votes(
    bundle: Bundle, dev: Complaints, *, dev_embeddings: np.ndarray | None = None
) -> dict[str, float]:
    """Turn the exemplars' type votes on if they raise exact-office accuracy on `dev`.

    Both ways are scored on the dev rows whose label is an office of the
    directory; a tie keeps them off. The bundle's routing records both figures.
    `dev_embeddings`: `dev`'s rows embedded by `embed_rows`, if already done.
    """
    router, head = bundle.router, bundle.routing.head
    assert router is not None and head
    labelled = labelled_offices(dev, head, router.directory)
    rows = [i for i, _ in labelled]
    scores: dict[str, float] = {}
    if rows and router.exemplars is not None:
        texts, locations = dev.texts(), dev.locations()
        chosen = [texts[i] for i in rows]
        embeddings = rows_embedded(bundle, texts, dev_embeddings, rows)
        probs = embedded_probabilities(bundle, preprocess(bundle, chosen), embeddings)
        for key, on in (("without", False), ("with", True)):
            bundle.router = router.replace(type_votes=on)
            routed = route_head(
                bundle, probs[head], chosen, [locations[i] for i in rows],
                top_k=1, embeddings=embeddings,
            )  # fmt: skip
            hits = [
                bool(r.top) and r.top[0].details is not None
                and r.top[0].details["id"] == office.id
                for r, (_, office) in zip(routed, labelled, strict=True)
            ]  # fmt: skip
            scores[key] = round(sum(hits) / len(hits), 4)
    on = bool(scores) and scores["with"] > scores["without"]
    bundle.set_router(head, router.replace(type_votes=on), type_votes_dev=scores)
    return scores


def add_dev_rows(
    bundle: Bundle, dev: Complaints, *, dev_embeddings: np.ndarray | None = None
) -> int:
    """Once dev has decided the type votes (`choose_type_votes`), count the dev rows'
    offices too and add those rows to the exemplars, like the training rows.

    `dev` holds office labels (before `label_types`). The dev rows are the latest
    (`--split time`), so they tell the most about which offices new complaints go
    to. Returns how many rows were added (those whose label is a directory office).
    """
    router, head = bundle.router, bundle.routing.head
    assert router is not None and head
    found = labelled_offices(dev, head, router.directory)
    if not found:
        return 0
    ids = tuple(office.id for _, office in found)
    counts = Counter(router.office_counts) + Counter(ids)
    vectors = rows_embedded(bundle, dev.texts(), dev_embeddings, [i for i, _ in found])
    old = router.exemplars
    if old is not None:
        vectors, ids = np.vstack([old.vectors, vectors]), old.office_ids + ids
    bundle.set_router(
        head,
        router.replace(office_counts=counts, exemplars=Exemplars(vectors, ids)),
        type_votes_dev=bundle.routing.type_votes_dev,  # still what chose the type votes
    )
    return len(found)


def make_exemplars(
    bundle: Bundle, train: Complaints, found: Sequence[tuple[int, Office]]
) -> Exemplars | None:
    """The training rows with an office (`found`, as `labelled_offices` gives them),
    embedded with the bundle's encoder (see `model.routing`); None when no row has one."""
    if not found:
        return None
    texts = train.texts()
    vectors = embed_rows(bundle, [texts[i] for i, _ in found])
    return Exemplars(vectors, tuple(office.id for _, office in found))
