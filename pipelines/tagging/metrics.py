"""Tagging metrics for the Evaluator: token accuracy, accuracy on out-of-vocabulary tokens, per-tag F1,
beside the most-frequent-tag baseline (each word's most frequent tag in the train split; the overall most
frequent tag for a word the train split never had) and, with ``peers: [crf]``, a CRF fit on the train split."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import numpy as np

from rnnpipe.components.metrics import PredictionsWriter, length_bucket
from rnnpipe.components.peers import check_peers, crf_tagger_predictions
from rnnpipe.components.plots import plot_confusion_matrix

DEFAULTS = {"slice_keys": ["source"], "length_edges": [8, 16, 32], "sample_size": 200, "peers": []}
PEERS = ("crf",)  # components.peers: a linear-chain CRF on word-shape, affix and neighbour features


def as_list(value: Any) -> list:
    """A record's list field (example_to_dict gives a one-element list as a scalar)."""
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


class MostFrequentTag:
    """The baseline tagger: each word's most frequent train tag (ties: the tag most frequent overall)."""

    def __init__(self, train_records: list[dict]) -> None:
        per_word: dict[str, Counter] = defaultdict(Counter)
        overall: Counter = Counter()
        for r in train_records:
            for token, tag in zip(as_list(r["tokens"]), as_list(r["tags"]), strict=True):
                per_word[token][tag] += 1
                overall[tag] += 1
        if not overall:
            raise ValueError("the train split has no tagged tokens")
        rank = {tag: i for i, (tag, _) in enumerate(overall.most_common())}
        self.default = overall.most_common(1)[0][0]
        self.vocabulary = set(per_word)
        self.best = {w: min(c, key=lambda t, c=c: (-c[t], rank[t])) for w, c in per_word.items()}

    def __call__(self, tokens: list[str]) -> list[str]:
        return [self.best.get(t, self.default) for t in tokens]


def tag_metrics(gold: list[str], predicted: list[str], oov: list[bool], tags: list[str]) -> dict[str, float]:
    """Token accuracy, in- and out-of-vocabulary accuracy, OOV rate, macro and per-tag F1."""
    n = len(gold)
    if n == 0:
        return {"count": 0, "accuracy": float("nan")}
    g, p, o = np.array(gold, dtype=object), np.array(predicted, dtype=object), np.array(oov, dtype=bool)
    right = g == p
    out = {"count": n, "accuracy": float(right.mean()), "oov_rate": float(o.mean()),
           "oov_accuracy": float(right[o].mean()) if o.any() else float("nan"),
           "iv_accuracy": float(right[~o].mean()) if (~o).any() else float("nan")}
    f1s = []
    for tag in tags:
        tp = float(np.sum(right & (g == tag)))
        gold_n, pred_n = float(np.sum(g == tag)), float(np.sum(p == tag))
        if gold_n == 0 and pred_n == 0:
            continue
        f1 = 2 * tp / (gold_n + pred_n)
        out[f"f1_{tag}"] = f1
        if gold_n > 0:
            f1s.append(f1)
    out["macro_f1"] = float(np.mean(f1s)) if f1s else float("nan")
    return out


def evaluate_tagging(ev: Any) -> dict:
    """The Evaluator's metrics function (``ev`` is its EvalContext). Predictions come from the serving
    signature: ``tokens`` and ``tags`` per sentence, padded with ""; ``length`` real tokens."""
    cfg = {**DEFAULTS, **ev.config}
    records = ev.records
    served_tokens, served_tags, lengths = (ev.predictions[k] for k in ("tokens", "tags", "length"))
    gold_tags = [as_list(r["tags"]) for r in records]
    tokens = [as_list(r["tokens"]) for r in records]
    predicted, mismatched = [], 0
    for i, sentence in enumerate(tokens):
        n = int(lengths[i])
        served = [t.decode("utf-8") for t in served_tokens[i][:n]]
        mismatched += served != sentence[:n]
        # Tokens past what the model tags (a sentence longer than MAX_TOKENS) count as errors.
        predicted.append([t.decode("utf-8") for t in served_tags[i][:n]] + [""] * (len(sentence) - n))
    if ev.out_dir is None:  # scoring the champion: only overall.model is read
        train_vocab = {t for r in ev.train_records() for t in as_list(r["tokens"])}
        oov = [[t not in train_vocab for t in s] for s in tokens]
        return {"overall": {"model": tag_metrics(_flat(gold_tags), _flat(predicted), _flat(oov), [])}}

    baseline = MostFrequentTag(ev.train_records())
    base = [baseline(s) for s in tokens]
    peers = {}
    if "crf" in check_peers(cfg["peers"] or [], dict.fromkeys(PEERS)):
        train = [(as_list(r["tokens"]), as_list(r["tags"])) for r in ev.train_records()]
        peers["peer/crf"] = crf_tagger_predictions(train, tokens, ev.log)
    oov = [[t not in baseline.vocabulary for t in s] for s in tokens]
    tags = sorted({t for s in gold_tags for t in s} | {t for s in predicted for t in s if t})

    def both(idx: list[int]) -> dict:
        def pick(rows: list[list]) -> list:
            return [x for i in idx for x in rows[i]]
        return {"model": tag_metrics(pick(gold_tags), pick(predicted), pick(oov), tags),
                "baseline": tag_metrics(pick(gold_tags), pick(base), pick(oov), tags),
                **{name: tag_metrics(pick(gold_tags), pick(tagged), pick(oov), tags) for name, tagged in peers.items()}}

    everything = list(range(len(records)))
    evaluation = {"overall": both(everything), "slices": {},
                  "baseline": "most frequent train tag per word, else the most frequent tag "
                              f"'{baseline.default}'",
                  "card_metrics": ["count", "accuracy", "oov_accuracy", "iv_accuracy", "oov_rate", "macro_f1"]}
    evaluation["overall"]["model"]["sentence_accuracy"] = float(np.mean(
        [p == g for p, g in zip(predicted, gold_tags, strict=True)]))
    evaluation["overall"]["model"]["tokenization_mismatches"] = mismatched
    if mismatched:
        ev.log(f"WARNING: the serving tokenizer split {mismatched} sentences differently from their tokens")
    slicers = {key: (lambda r, key=key: str(r.get(key))) for key in cfg["slice_keys"]}
    slicers["length"] = lambda r: length_bucket(r.get("text", ""), cfg["length_edges"])
    for name, slicer in slicers.items():
        values = [slicer(r) for r in records]
        for value in sorted(set(values), key=_slice_order):
            evaluation["slices"][f"{name}:{value}"] = both([i for i, v in enumerate(values) if v == value])

    out = ev.out_dir
    names = tags + ([""] if any("" in s for s in predicted) else [])
    index = {t: i for i, t in enumerate(names)}
    matrix = np.zeros((len(names), len(names)), dtype=np.int64)
    for g, p in zip(_flat(gold_tags), _flat(predicted), strict=True):
        matrix[index[g], index[p]] += 1
    plot_confusion_matrix(matrix.tolist(), [n or "(none)" for n in names], out / "confusion_matrix.png")
    with PredictionsWriter(out, cfg["sample_size"]) as writer:
        writer.write({"sent_id": r.get("sent_id"), "tokens": tokens[i], "tags": gold_tags[i], "predicted": predicted[i],
                      "baseline": base[i], "oov": oov[i]} for i, r in enumerate(records))
    evaluation["artifacts"] = [(out / "confusion_matrix.png", "plots"), (writer.sample_path, "evaluation")]
    return evaluation


def _slice_order(value: str) -> tuple:
    """Length buckets by their lower edge ('9-16' before '17-32'), other values alphabetically."""
    head = value.split("-", 1)[0]
    return (0, int(head), value) if head.isdigit() else (1, 0, value)


def _flat(rows: list[list]) -> list:
    return [x for row in rows for x in row]
