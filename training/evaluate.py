"""`aduan evaluate`: a bundle's predictions on labelled data, through the serving path.

The model is scored with `model.predict.predict_proba` and `abstains`, the same
calls that `predict` (and so the CLI and the API) use. With `baseline=True`
the TF-IDF + LinearSVC peer is trained on the bundle's own training rows
(reloaded and checked against the fingerprint in bundle.json) and scored on
the same rows with the same metrics, side by side.

Writes `metrics.json`, `report.md` and PNG plots. Complaint text appears only
as redacted snippets (`data.text.snippet`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
from sklearn.metrics import f1_score, precision_recall_fscore_support

from data.directory import Directory
from data.load import Complaints
from data.schema import DataError
from data.text import redact, snippet
from model.bundle import Bundle
from model.predict import HeadResult, abstains, predict_proba, route_head
from training.baseline import TfidfBaseline
from training.metrics import head_metrics
from training.routing import label_types
from training.routing_eval import ROUTED_TOP, office_probabilities, routing_metrics
from training.splits import load_training_data

log = logging.getLogger("aduan.evaluate")

FREQUENT_MIN = 20  # "frequent" labels: at least this many training rows
N_MISCLASSIFIED = 15


@dataclass
class Scored:
    """One system's calibrated probabilities for one head on the evaluation rows."""

    labels: list[str]
    probs: np.ndarray
    abstain: np.ndarray | None = None


def training_split(bundle: Bundle) -> tuple[Complaints, Complaints]:
    """Reload the rows a bundle was trained and calibrated on, checked by fingerprint."""
    record = bundle.training.get("data", {})
    load = record.get("load")
    if not load:
        raise DataError(
            "the bundle does not record how its training data was loaded (`aduan train` "
            "records it; the demo bundle and `bundle init` do not), so its training rows "
            "cannot be read again"
        )
    cfg = bundle.training["config"]
    settings = SimpleNamespace(
        labels=cfg["labels"], split=cfg["split"], dev_fraction=cfg["dev_fraction"], seed=cfg["seed"]
    )
    train, dev = load_training_data(load, settings)
    trained_on = train
    if bundle.router is not None and load.get("directory"):
        # the head learned types; the flat peer learns the offices themselves
        trained_on = label_types(train, bundle.routing.head, bundle.router.directory)
    if trained_on.fingerprint()["sha256"] != record["train"]["sha256"]:
        raise DataError(
            f"{load['source']}: the training rows differ from those the bundle was trained on "
            "(fingerprint mismatch); the baseline would not be a fair peer"
        )
    return train, dev


def coverage_curve(conf: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Precision of the most confident `coverage` share of rows, for every coverage."""
    order = np.argsort(-conf, kind="stable")
    hits = np.cumsum(correct[order])
    n = np.arange(1, len(conf) + 1)
    return n / len(conf), hits / n


def precision_at_coverage(conf: np.ndarray, correct: np.ndarray, coverage: float) -> float:
    if len(conf) == 0:
        return 0.0
    cov, prec = coverage_curve(conf, correct)
    return float(prec[min(len(prec) - 1, int(np.ceil(coverage * len(conf))) - 1)])


def coverage_at_precision(conf: np.ndarray, correct: np.ndarray, precision: float) -> float:
    if len(conf) == 0:
        return 0.0
    cov, prec = coverage_curve(conf, correct)
    ok = np.flatnonzero(prec >= precision)
    return float(cov[ok[-1]]) if len(ok) else 0.0


def score_head(
    scored: Scored,
    gold: list[str],
    train_counts: dict[str, int],
    texts: list[str] | None = None,
    ids: list[str] | None = None,
) -> dict[str, Any]:
    """Every metric of one head for one system; `gold` holds only labelled rows."""
    pos = {label: i for i, label in enumerate(scored.labels)}
    gold_idx = np.array([pos.get(g, -1) for g in gold])
    probs = scored.probs
    metrics = head_metrics(probs, gold_idx)
    pred = [scored.labels[i] for i in probs.argmax(axis=1)]
    conf = probs.max(axis=1)
    correct = np.array([p == g for p, g in zip(pred, gold, strict=True)])
    frequent = sorted(label for label, n in train_counts.items() if n >= FREQUENT_MIN)
    frequent_in_gold = [label for label in frequent if label in set(gold)]
    metrics["macro_f1_frequent"] = (
        float(f1_score(gold, pred, labels=frequent_in_gold, average="macro", zero_division=0))
        if frequent_in_gold
        else None
    )
    metrics["n_frequent_labels"] = len(frequent_in_gold)
    metrics["precision_at_80_coverage"] = precision_at_coverage(conf, correct, 0.80)
    metrics["coverage_at_95_precision"] = coverage_at_precision(conf, correct, 0.95)
    if scored.abstain is not None:
        answered = ~scored.abstain
        metrics["abstain_rate"] = float(scored.abstain.mean()) if len(gold) else 0.0
        metrics["precision_when_answering"] = (
            float(correct[answered].mean()) if answered.any() else None
        )
    labels_seen = sorted(set(gold) | set(pred))
    p, r, f, s = precision_recall_fscore_support(gold, pred, labels=labels_seen, zero_division=0)
    metrics["per_label"] = sorted(
        (
            {
                "label": redact(label),  # labels pasted from complaints may hold personal data
                "train_count": train_counts.get(label, 0),
                "support": int(s[i]),
                "precision": float(p[i]),
                "recall": float(r[i]),
                "f1": float(f[i]),
            }  # fmt: skip
            for i, label in enumerate(labels_seen)
        ),
        key=lambda row: (-row["support"], row["label"]),
    )
    if texts is not None and ids is not None:
        wrong = [i for i in np.argsort(-conf, kind="stable") if not correct[i]]
        metrics["misclassified"] = [
            {
                "id": ids[i],
                "gold": redact(gold[i]),
                "predicted": redact(pred[i]),
                "score": round(float(conf[i]), 4),
                "snippet": snippet(texts[i], 200),
            }  # fmt: skip
            for i in wrong[:N_MISCLASSIFIED]
        ]
    metrics["_curves"] = {"conf": conf, "correct": correct, "gold": gold, "pred": pred}
    return metrics


def evaluate(
    bundle: Bundle,
    data: Complaints,
    *,
    baseline: bool = False,
    batch_size: int = 64,
) -> dict[str, Any]:
    """Metrics per head for the bundle (and the TF-IDF peer), on labelled `data`."""
    heads = [h for h in bundle.head_specs if h in data.label_columns]
    if not heads:
        raise DataError(
            f"{data.source}: none of the bundle's heads ({', '.join(bundle.head_specs)}) "
            "is a label column of the evaluation data"
        )
    heads = [h for h in heads if any(v is not None for v in data.labels(h))]
    if not heads:
        raise DataError(f"{data.source}: no row has a label for any of the bundle's heads")
    texts, ids = data.texts(), data.ids()
    embeddings, probs = predict_proba(bundle, texts, batch_size=batch_size)
    peer: TfidfBaseline | None = None
    peer_probs: dict[str, np.ndarray] = {}
    with_dev = bool(bundle.training.get("refit_with_dev"))  # as the bundle's final fit
    if baseline:
        train, dev = training_split(bundle)
        peer = TfidfBaseline().fit(
            train.texts(),
            {h: train.labels(h) for h in heads},
            dev.texts(),
            {h: dev.labels(h) for h in heads},
            refit_with_dev=with_dev,
        )
        peer_probs = peer.predict_proba(texts)
    train_counts = bundle.training.get("data", {}).get("train", {}).get("label_counts", {})
    result: dict[str, Any] = {
        "bundle": {
            "version": bundle.version,
            "path": str(bundle.path or ""),
            "refit_with_dev": bundle.training.get("refit_with_dev", {}),
        },
        "data": {
            "source": data.source,
            "rows": len(data),
            "fingerprint": data.fingerprint()["sha256"],
        },
        "heads": {},
    }
    for h in heads:
        values = data.labels(h)
        rows = [i for i, v in enumerate(values) if v is not None]
        gold = [str(values[i]) for i in rows]
        counts = train_counts.get(h, {})
        routed: list[HeadResult] = []
        peer_scored = Scored(peer.labels(h), peer_probs[h][rows]) if peer is not None else None
        if h == bundle.routing.head and bundle.router is not None:
            # The head learned types: score offices, compared by office (an alias
            # spelling of a gold label is that office), counted from the bundle.
            directory = bundle.router.directory
            locations = data.locations()
            routed = route_head(
                bundle, probs[h][rows], [texts[i] for i in rows],
                [locations[i] for i in rows], top_k=ROUTED_TOP, embeddings=embeddings[rows],
            )  # fmt: skip
            offices = [o.name for o in directory.offices]
            office_probs, abstain = office_probabilities(routed, offices)
            ours = Scored(offices, office_probs, abstain)
            gold = [office_name(directory, g) for g in gold]
            counts = {o.name: bundle.routing.office_counts.get(o.id, 0) for o in directory.offices}
            if peer_scored is not None:
                peer_scored = by_office(peer_scored, directory)
        else:
            top = probs[h][rows].max(axis=1)
            ours = Scored(bundle.head_specs[h].labels, probs[h][rows], abstains(bundle, h, top))
        entry = {
            "n": len(rows),
            "aduan": score_head(
                ours, gold, counts, [texts[i] for i in rows], [ids[i] for i in rows]
            ),
        }
        if peer_scored is not None:
            entry["baseline"] = score_head(peer_scored, gold, counts)
        if routed:
            entry["routing"] = _routing_entry(bundle, routed, gold, peer, peer_probs, h, rows)
        result["heads"][h] = entry
    if peer is not None:
        result["baseline"] = {
            "name": TfidfBaseline.name,
            "trained_on": "the bundle's training rows"
            + (" (temperature fitted on dev, then refitted with the dev rows)" if with_dev else ""),
        }
    return result


def office_name(directory: Directory, label: str) -> str:
    """The directory's name for the office a label names (the label itself if none)."""
    office = directory.lookup(label)
    return office.name if office is not None else label


def by_office(scored: Scored, directory: Directory) -> Scored:
    """`scored` with labels that name one office (aliases) merged under its name."""
    names = [office_name(directory, label) for label in scored.labels]
    merged = list(dict.fromkeys(names))
    pos = {name: i for i, name in enumerate(merged)}
    probs = np.zeros((len(scored.probs), len(merged)), dtype=scored.probs.dtype)
    for j, name in enumerate(names):
        probs[:, pos[name]] += scored.probs[:, j]
    return Scored(merged, probs, scored.abstain)


def _routing_entry(
    bundle: Bundle,
    routed: list[HeadResult],
    gold: list[str],
    peer: TfidfBaseline | None,
    peer_probs: dict[str, np.ndarray],
    head: str,
    rows: list[int],
) -> dict[str, Any]:
    """Exact office, type and region accuracy for the routed head (and the flat peer)."""
    assert bundle.router is not None
    directory = bundle.router.directory
    region = [r.region or {} for r in routed]
    out = {
        "aduan": routing_metrics(
            [r.top[0].label if r.top else None for r in routed],
            gold,
            directory,
            regions=[x.get("code") for x in region],
            region_sources=[x.get("source", "none") for x in region],
        )
    }
    if peer is not None:
        labels = peer.labels(head)
        out["baseline"] = routing_metrics(
            [labels[j] for j in peer_probs[head][rows].argmax(axis=1)], gold, directory
        )
    return out


SUMMARY_KEYS = [
    ("accuracy", "accuracy"),
    ("top3_accuracy", "top-3 accuracy"),
    ("macro_f1", "macro-F1"),
    ("weighted_f1", "weighted F1"),
    ("macro_f1_frequent", f"macro-F1, labels with >= {FREQUENT_MIN} training rows"),
    ("ece", "expected calibration error"),
    ("precision_at_80_coverage", "precision at 80% coverage"),
    ("coverage_at_95_precision", "coverage at 95% precision"),
    ("abstain_rate", "abstain rate (bundle threshold)"),
    ("precision_when_answering", "precision when not abstaining"),
]


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def routing_table(routing: dict[str, Any]) -> list[str]:
    """Markdown lines: exact office and type accuracy by office level, and regions."""
    systems = {"aduan": routing["aduan"]}
    if "baseline" in routing:
        systems["flat tfidf+linearsvc"] = routing["baseline"]
    lines = [
        "",
        "Routing (gold offices from the directory; local = kelurahan/desa or kecamatan offices):",
        "",
        "| metric | " + " | ".join(systems) + " |",
        "|---|" + "---:|" * len(systems),
    ]
    for part, name in (("", "all"), ("local_offices", "local"), ("other_offices", "other")):
        for key, what in (("exact_office_accuracy", "exact office"), ("type_accuracy", "type")):
            cells = [m.get(part, {}).get(key) if part else m.get(key) for m in systems.values()]
            n = routing["aduan"][part]["n"] if part else routing["aduan"]["n"]
            lines.append(
                f"| {what} accuracy, {name} ({n}) | " + " | ".join(map(_fmt, cells)) + " |"
            )
    region = routing["aduan"].get("region")
    if region:
        lines += [
            "",
            f"Region resolved for {_fmt(region['resolved'])} of complaints; correct (within the "
            f"gold office's region) for {_fmt(region['correct'])} of the "
            f"{region['n_gold_with_region']} whose gold office has a region. Evidence: "
            + ", ".join(f"{k} {v}" for k, v in sorted(region["sources"].items()))
            + ".",
        ]
    return lines


def write_outputs(result: dict[str, Any], out_dir: str | Path) -> Path:
    """metrics.json, report.md and the PNG plots into `out_dir`."""
    from training.plots import confusion_plot, coverage_plot, reliability_plot

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lines = [
        "# aduan evaluation",
        "",
        f"- bundle: `{result['bundle']['version']}` ({result['bundle']['path']})",
        f"- data: `{result['data']['source']}`, {result['data']['rows']} rows",
    ]
    refit = result["bundle"].get("refit_with_dev")
    if refit:
        lines.append(
            f"- the bundle's final fit took in its {refit['dev_rows']} dev rows once dev had "
            "chosen (lexical companion, routed exemplars)"
        )
    if "baseline" in result:
        peer = result["baseline"]
        lines.append(f"- peer: {peer['name']}, trained on {peer['trained_on']}")
    for h, entry in result["heads"].items():
        systems = {"aduan": entry["aduan"]}
        if "baseline" in entry:
            systems["tfidf+linearsvc"] = entry["baseline"]
        curves = {name: m.pop("_curves") for name, m in systems.items()}
        reliability_plot(curves, out / f"{h}-reliability.png", title=f"{h}: reliability")
        coverage_plot(curves, out / f"{h}-coverage.png", title=f"{h}: precision vs coverage")
        confusion_plot(curves["aduan"], out / f"{h}-confusion.png", title=f"{h}: confusion (aduan)")
        lines += ["", f"## {h} ({entry['n']} labelled rows)", ""]
        lines.append("| metric | " + " | ".join(systems) + " |")
        lines.append("|---|" + "---:|" * len(systems))
        for key, name in SUMMARY_KEYS:
            lines.append(
                f"| {name} | " + " | ".join(_fmt(m.get(key)) for m in systems.values()) + " |"
            )
        if "routing" in entry:
            lines += routing_table(entry["routing"])
        lines += [
            "",
            f"![reliability]({h}-reliability.png) ![coverage]({h}-coverage.png)",
            f"![confusion]({h}-confusion.png)",
            "",
            "Per label (aduan, the 30 most frequent in the evaluation data):",
            "",
            "| label | train rows | support | precision | recall | F1 |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for row in entry["aduan"]["per_label"][:30]:
            lines.append(
                f"| {row['label']} | {row['train_count']} | {row['support']} | "
                f"{row['precision']:.3f} | {row['recall']:.3f} | {row['f1']:.3f} |"
            )
        lines += ["", "Most confident mistakes (redacted snippets):", ""]
        for m in entry["aduan"].get("misclassified", []):
            lines.append(
                f"- `{m['id']}` gold **{m['gold']}**, predicted {m['predicted']} "
                f"({m['score']:.2f}): {m['snippet']}"
            )
    (out / "metrics.json").write_text(
        json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    (out / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out
