"""Translation metrics with sacrebleu (corpus BLEU and chrF, overall and per source-length bucket) beside
two baselines scored on the same test pairs:

* ``copy``: the source sentence as its own translation (names, numbers and punctuation carry over);
* ``lexical``: word for word, each source word replaced by the target word most strongly associated
  with it on the train pairs (Dice coefficient of co-occurrence in a pair; case-folded, the target
  word written in its commonest form), unknown words copied.

The gate's ``baseline`` is the better by chrF of the ``gate_baselines`` (both by default), so blessing
needs chrF above both. Also: the
WordPiece vocabulary sizes and the share of unknown pieces on the test split, a sample table of
translations (MLflow's table JSON and Markdown) and attention heatmaps (PNG) for fixed test sentences.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import sacrebleu

from rnnpipe.components.metrics import length_bucket
from rnnpipe.errors import ConfigError

from .data import SOURCE_KEY, TARGET_KEY

_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def words(text: str) -> list[str]:
    """Words and punctuation marks, for the lexical baseline."""
    return _WORD.findall(text)


def scores(hypotheses: list[str], references: list[str]) -> dict[str, float]:
    """Corpus BLEU and chrF (sacrebleu defaults: 13a tokenization, chrF with character 6-grams, beta 2)."""
    if not hypotheses:
        return {"bleu": float("nan"), "chrf": float("nan"), "count": 0}
    return {"bleu": float(sacrebleu.corpus_bleu(hypotheses, [references]).score),
            "chrf": float(sacrebleu.corpus_chrf(hypotheses, [references]).score), "count": len(hypotheses)}


class LexicalTranslator:
    """Word-for-word translation by the Dice coefficient ``2 c(s, t) / (c(s) + c(t))`` over sentence pairs,
    where c counts the pairs a (case-folded) word occurs in."""

    def __init__(self, pairs: Iterable[tuple[str, str]], min_count: int = 2) -> None:
        source_count: Counter = Counter()
        target_count: Counter = Counter()
        joint: dict[str, Counter] = defaultdict(Counter)
        forms: dict[str, Counter] = defaultdict(Counter)
        for source, target in pairs:
            src = {w.lower() for w in words(source)}
            tgt_words = words(target)
            for w in tgt_words:
                forms[w.lower()][w] += 1
            tgt = {w.lower() for w in tgt_words}
            source_count.update(src)
            target_count.update(tgt)
            for s in src:
                joint[s].update(tgt)
        self.table: dict[str, str] = {}
        for s, together in joint.items():
            if source_count[s] < min_count:
                continue
            best = max(together, key=lambda t: (2 * together[t] / (source_count[s] + target_count[t]), t))
            self.table[s] = forms[best].most_common(1)[0][0]

    def translate(self, sentence: str) -> str:
        out = [self.table.get(w.lower(), w) for w in words(sentence)]
        return re.sub(r" ([.,;:!?)])", r"\1", " ".join(out))


def _summary(model: list[str], peers: dict[str, list[str]], refs: list[str], idx: np.ndarray) -> dict:
    pick = lambda xs: [xs[i] for i in idx]  # noqa: E731
    out = {"model": scores(pick(model), pick(refs))}
    out.update({name: scores(pick(hyps), pick(refs)) for name, hyps in peers.items()})
    return out


def unknown_share(model_dir: str, records: list[dict]) -> dict[str, float]:
    """Vocabulary sizes and the share of unknown pieces when the test sentences are tokenized by the
    model's own tokenizers (the vocabularies are assets of the SavedModel)."""
    import tensorflow as tf

    from .features import SOURCE_VOCABULARY, TARGET_VOCABULARY, UNK_ID, tokenize, wordpiece_tokenizer

    out = {}
    for side, key, name in (("source", SOURCE_KEY, SOURCE_VOCABULARY), ("target", TARGET_KEY, TARGET_VOCABULARY)):
        path = Path(model_dir) / "assets" / name
        ids = tokenize(wordpiece_tokenizer(str(path)), tf.constant([r[key] for r in records])).flat_values.numpy()
        out[f"{side}_vocab_size"] = float(len(path.read_text(encoding="utf-8").splitlines()))
        out[f"{side}_unk_share"] = float(np.mean(ids == UNK_ID)) if ids.size else float("nan")
    return out


def plot_attention(source_pieces: list[str], target_pieces: list[str], weights: np.ndarray, title: str,
                   path: Path) -> Path:
    from rnnpipe.components.plots import plt

    fig, ax = plt.subplots(figsize=(0.35 * len(source_pieces) + 2.5, 0.35 * len(target_pieces) + 2))
    ax.imshow(weights, cmap="viridis", aspect="auto", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(source_pieces)), source_pieces, rotation=90)
    ax.set_yticks(range(len(target_pieces)), target_pieces)
    ax.set_title(title[:80], fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def attention_heatmaps(model_dir: str, sentences: list[str], out_dir: Path) -> list[Path]:
    """One PNG per sentence from the SavedModel's ``attention`` signature."""
    import tensorflow as tf

    if not sentences:
        return []
    fn = tf.saved_model.load(model_dir).signatures["attention"]
    out = fn(source=tf.constant(sentences))
    paths = []
    for i, sentence in enumerate(sentences):
        source = [p.decode() for p in out["source_pieces"].numpy()[i] if p]
        target = [p.decode() for p in out["target_pieces"].numpy()[i] if p]
        weights = out["attention"].numpy()[i][:len(target), :len(source)]
        paths.append(plot_attention(source, target, weights, sentence, out_dir / f"attention_{i:02d}.png"))
    return paths


def evaluate_translation(ev: Any) -> dict:
    """The Evaluator's metrics function (``evaluator.metrics``) for the translation model."""
    cfg = ev.config
    refs = [r[TARGET_KEY] for r in ev.records]
    model = [t.decode("utf-8") if isinstance(t, bytes) else str(t) for t in ev.predictions["translation"]]
    overall = {"model": scores(model, refs)}
    if ev.out_dir is None:  # scoring the champion: only the model's number is read
        return {"overall": overall}

    lexical = LexicalTranslator(((r[SOURCE_KEY], r[TARGET_KEY]) for r in ev.train_records()),
                                int(cfg.get("lexical_min_count", 2)))
    peers = {"copy": [r[SOURCE_KEY] for r in ev.records],
             "lexical": [lexical.translate(r[SOURCE_KEY]) for r in ev.records]}
    overall = _summary(model, peers, refs, np.arange(len(refs)))
    gated = list(cfg.get("gate_baselines", ["copy", "lexical"]))
    unknown = [name for name in gated if name not in peers]
    if unknown or not gated:
        raise ConfigError(f"evaluator.metrics.gate_baselines must name some of {sorted(peers)}; got {gated}")
    better = max(gated, key=lambda name: overall[name]["chrf"])
    overall["baseline"] = overall[better]
    truncated = np.asarray(ev.predictions.get("truncated", np.zeros(len(refs), bool)), bool)
    overall["model"]["truncated_share"] = float(truncated.mean()) if len(truncated) else 0.0
    if ev.model_dir:
        overall["model"].update(unknown_share(ev.model_dir, ev.records))

    slices = {}
    buckets = [length_bucket(r[SOURCE_KEY], list(cfg.get("length_edges", [8, 14]))) for r in ev.records]
    for bucket in sorted(set(buckets), key=lambda b: int(b.split("-")[0])):
        idx = np.array([i for i, b in enumerate(buckets) if b == bucket])
        s = _summary(model, peers, refs, idx)
        s["baseline"] = s[better]
        slices[f"source_words:{bucket}"] = s

    ev.log("test chrF model {:.1f}, copy {:.1f}, lexical {:.1f}; BLEU model {:.1f}, copy {:.1f}, lexical {:.1f}".format(
        overall["model"]["chrf"], overall["copy"]["chrf"], overall["lexical"]["chrf"],
        overall["model"]["bleu"], overall["copy"]["bleu"], overall["lexical"]["bleu"]))
    out = Path(ev.out_dir)
    rows = [[r.get("group", ""), r[SOURCE_KEY], r[TARGET_KEY], model[i], peers["lexical"][i]]
            for i, r in enumerate(ev.records)]
    shown = rows[:: max(1, len(rows) // int(cfg.get("sample_size", 50)))][: int(cfg.get("sample_size", 50))]
    table = out / "translations_sample.json"  # the JSON layout of mlflow.log_table
    table.write_text(json.dumps({"columns": ["group", "source", "reference", "hypothesis", "lexical"], "data": shown},
                                ensure_ascii=False, indent=1), encoding="utf-8")
    markdown = out / "translations_sample.md"
    markdown.write_text("| source | reference | hypothesis |\n|---|---|---|\n" + "".join(
        f"| {s} | {ref} | {hyp} |\n" for _, s, ref, hyp, _ in shown), encoding="utf-8")
    with open(out / "translations.jsonl", "w", encoding="utf-8") as fh:
        for (group, source, reference, hypothesis, lex), cut in zip(rows, truncated.tolist(), strict=False):
            fh.write(json.dumps({"group": group, "source": source, "reference": reference, "hypothesis": hypothesis,
                                 "lexical": lex, "truncated": bool(cut)}, ensure_ascii=False) + "\n")
    artifacts = [(table, "tables"), (markdown, "evaluation"), (out / "translations.jsonl", "evaluation")]
    if ev.model_dir:
        sentences = list(cfg.get("heatmap_sentences") or [])
        sentences += [r[SOURCE_KEY] for r in ev.records[: int(cfg.get("heatmap_test_sentences", 3))]]
        artifacts += [(p, "attention") for p in attention_heatmaps(ev.model_dir, sentences, out)]
    return {"overall": overall, "slices": slices, "artifacts": artifacts,
            "card_metrics": ["count", "chrf", "bleu"],
            "baseline": f"the better by chrF of {' and '.join(gated)} ({better}); copy = the source itself, "
                        "lexical = word for word by a Dice lexicon of the train pairs"}
