"""Bits per character on held-out works, beside character n-gram baselines fitted on the train split,
and samples of generated text at several temperatures.

The model's bits come from the SavedModel's ``score`` signature (the Evaluator calls it on the raw test
records). The baselines score exactly the same characters: in each record, positions from
``max(context_chars, 1)`` on, each given the characters before it in the record (at least
``eval_context`` of them, more than any n-gram order here looks at). Characters never seen in training
are one out-of-vocabulary symbol for the baselines, as they are one id for the model.

* ``unigram``: add-one smoothed character frequencies;
* ``bigram``: interpolated Kneser-Ney, order 2;
* ``kn<N>`` (``ngram_order``, e.g. 5): interpolated Kneser-Ney of a higher order, the strong classical
  reference a recurrent model has to approach.

With ``adapt_rate``, the model also scores each held-out work as one document through the ``score_adaptive``
signature, its output layer adapting as it reads (``bpc_adaptive``, beside ``bpc``; the n-gram peers stay
static, so the gate and the peers compare ``bpc``).
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from rnnpipe.errors import ConfigError

OOV = "\uffff"


class CharNgram:
    """Character n-gram model: add-one unigram for ``order=1``, interpolated Kneser-Ney for ``order >= 2``
    (per-order discounts D = n1 / (n1 + 2 n2), continuation counts for the lower orders, the unigram
    level interpolated with a uniform distribution over the vocabulary plus one unknown symbol)."""

    def __init__(self, texts: Iterable[str], order: int) -> None:
        if order < 1:
            raise ValueError(f"n-gram order must be >= 1, got {order}")
        texts = list(texts)
        self.order = order
        self.vocab = {c for t in texts for c in t}
        self.size = len(self.vocab) + 1  # + the unknown symbol
        raw = [Counter() for _ in range(order + 1)]  # raw[k]: counts of k-grams
        for t in texts:
            for k in range(1, order + 1):
                raw[k].update(t[i:i + k] for i in range(len(t) - k + 1))
        self.total = sum(raw[1].values())
        self.unigram = raw[1]
        # a[k]: the counts the level-k estimate uses: raw at the top order, continuation counts below it
        # (how many distinct characters precede the k-gram), which is what makes Kneser-Ney good for backoff.
        self.a: list[dict[str, int]] = [{} for _ in range(order + 1)]
        self.a[order] = dict(raw[order])
        for k in range(1, order):
            cont: Counter = Counter()
            for gram in raw[k + 1]:
                cont[gram[1:]] += 1
            self.a[k] = dict(cont)
        self.discount = [0.0] * (order + 1)
        self.ctx_total: list[dict[str, int]] = [{} for _ in range(order + 1)]
        self.ctx_types: list[dict[str, int]] = [{} for _ in range(order + 1)]
        for k in range(1, order + 1):
            values = list(self.a[k].values())
            n1, n2 = values.count(1), values.count(2)
            self.discount[k] = n1 / (n1 + 2 * n2) if n1 + 2 * n2 else 0.5
            total, types = defaultdict(int), defaultdict(int)
            for gram, count in self.a[k].items():
                total[gram[:-1]] += count
                types[gram[:-1]] += 1
            self.ctx_total[k], self.ctx_types[k] = dict(total), dict(types)

    def prob(self, history: str, char: str) -> float:
        """P(char | history); only the last ``order - 1`` characters of the history matter."""
        char = char if char in self.vocab else OOV
        if self.order == 1:
            return (self.unigram.get(char, 0) + 1) / (self.total + self.size)
        p = 1.0 / self.size
        for k in range(1, self.order + 1):
            if k > 1 and len(history) < k - 1:
                break
            context = history[len(history) - (k - 1):] if k > 1 else ""
            total = self.ctx_total[k].get(context)
            if not total:
                continue  # unseen context: keep the lower-order estimate
            d = self.discount[k]
            p = (max(self.a[k].get(context + char, 0) - d, 0.0) + d * self.ctx_types[k][context] * p) / total
        return p

    def bits(self, text: str, first: int) -> tuple[float, int]:
        """(sum of -log2 P, count) over the characters of ``text`` from position ``first`` on."""
        keep = self.order - 1
        total = 0.0
        for i in range(first, len(text)):
            total -= math.log2(self.prob(text[max(0, i - keep):i], text[i]))
        return total, max(0, len(text) - first)


def work_texts(records: list[dict]) -> dict[str, str]:
    """Each work's text, rebuilt from its chunks (ordered by ``start``, each without its overlap)."""
    parts: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for r in records:
        parts[r["work"]].append((int(r["start"]), r["text"][int(r["context_chars"]):]))
    return {work: "".join(text for _, text in sorted(chunks)) for work, chunks in parts.items()}


def _bpc(bits: float, chars: int) -> dict[str, float]:
    return {"bpc": bits / chars if chars else float("nan"), "chars": int(chars)}


def generate_samples(model_dir: str, prompts: list[str], temperatures: list[float], length: int) -> list[dict]:
    """Text generated by the exported ``serving_default`` signature, one sample per prompt and temperature."""
    import tensorflow as tf

    from rnnpipe.components.evaluator import load_serving_model

    fn = load_serving_model(model_dir).signatures["serving_default"]
    samples = []
    for temperature in temperatures:
        out = fn(text=tf.constant(prompts), length=tf.fill([len(prompts)], length),
                 temperature=tf.fill([len(prompts)], float(temperature)))
        for prompt, text in zip(prompts, out["generated"].numpy(), strict=True):
            samples.append({"temperature": float(temperature), "prompt": prompt, "generated": text.decode("utf-8")})
    return samples


def samples_markdown(samples: list[dict]) -> str:
    lines = ["# Samples", "", "Generated by the exported model (`serving_default`) after each prompt.", ""]
    for s in samples:
        lines += [f"## temperature {s['temperature']}", "", "```", s["prompt"] + s["generated"], "```", ""]
    return "\n".join(lines)


def adaptive_bits(model_dir: str, texts: dict[str, str], rate: float, batch_size: int = 8) -> dict[str, float]:
    """work -> bits of all its characters but the first under the exported ``score_adaptive`` signature, each
    work read as one document (the output layer adapts to it as it goes; see ``models.adaptive_token_log_probs``)."""
    import tensorflow as tf

    from rnnpipe.components.evaluator import load_serving_model
    from rnnpipe.models._validation import check_non_negative_float

    try:
        rate = check_non_negative_float("adapt_rate", rate)
    except ValueError:
        raise ConfigError(f"evaluator.metrics.adapt_rate must be a number >= 0 (finite: the output layer's learning "
                          f"rate while it reads a work; null = off), got {rate!r}") from None
    fn = load_serving_model(model_dir).signatures["score_adaptive"]
    works = sorted(texts, key=lambda w: len(texts[w]))  # like lengths together: less padding per batch
    bits = {}
    for i in range(0, len(works), batch_size):
        batch = works[i:i + batch_size]
        out = fn(text=tf.constant([texts[w] for w in batch]), context_chars=tf.zeros([len(batch)], tf.int32),
                 rate=tf.fill([len(batch)], float(rate)))
        for work, b, n in zip(batch, out["bits"].numpy(), out["chars"].numpy(), strict=True):
            if n != len(texts[work]) - 1:
                raise ValueError(f"work {work}: score_adaptive scored {n} characters of {len(texts[work]) - 1}")
            bits[work] = float(b)
    return bits


def evaluate_bpc(ev: Any) -> dict:
    """The Evaluator's metrics function (``evaluator.metrics``) for the text-generation model."""
    cfg = ev.config
    bits = np.asarray(ev.predictions["bits"], dtype=np.float64)
    chars = np.asarray(ev.predictions["chars"], dtype=np.int64)
    works = [r["work"] for r in ev.records]
    overall = {"model": _bpc(bits.sum(), chars.sum())}
    if ev.out_dir is None:  # scoring the champion: only the model's number is read
        return {"overall": overall}

    train = work_texts(ev.train_records())
    orders = {"unigram": 1, "bigram": 2}
    if cfg.get("ngram_order"):
        orders[f"kn{cfg['ngram_order']}"] = int(cfg["ngram_order"])
    peers = {name: CharNgram(train.values(), order) for name, order in orders.items()}
    gate_peer = cfg.get("baseline", "bigram")
    if gate_peer not in peers:
        raise ConfigError(f"evaluator.metrics.baseline must be one of {sorted(peers)}, got '{gate_peer}'")
    peer_bits = {name: np.zeros(len(ev.records)) for name in peers}
    for i, r in enumerate(ev.records):
        first = max(int(r["context_chars"]), 1)
        for name, lm in peers.items():
            b, n = lm.bits(r["text"], first)
            if n != chars[i]:
                raise ValueError(f"record {i} ({r['work']}@{r['start']}): the model scored {chars[i]} characters, "
                                 f"the baseline {n}: the score signature and the records disagree")
            peer_bits[name][i] = b
    # The Kneser-Ney model of evaluator.metrics.ngram_order is a peer (peer/kn<n>); unigram and bigram are baselines.
    shown = {name: f"peer/{name}" if name.startswith("kn") else name for name in peers}
    for name in peers:
        overall[shown[name]] = _bpc(peer_bits[name].sum(), chars.sum())
    overall["baseline"] = overall[shown[gate_peer]]

    slices = {}
    for work in sorted(set(works)):
        idx = np.array([i for i, w in enumerate(works) if w == work])
        slices[f"work:{work}"] = {"model": _bpc(bits[idx].sum(), chars[idx].sum()),
                                  **{shown[name]: _bpc(peer_bits[name][idx].sum(), chars[idx].sum())
                                     for name in peers}}
        slices[f"work:{work}"]["baseline"] = slices[f"work:{work}"][shown[gate_peer]]
    rate = cfg.get("adapt_rate")
    if ev.model_dir and rate is not None:
        texts = work_texts(ev.records)
        adapted = adaptive_bits(ev.model_dir, texts, rate)
        overall["model"]["bpc_adaptive"] = sum(adapted.values()) / sum(len(t) - 1 for t in texts.values())
        for work, work_bits in adapted.items():
            slices[f"work:{work}"]["model"]["bpc_adaptive"] = work_bits / (len(texts[work]) - 1)
        ev.log(f"bits per character with the output layer adapted to each work as it is read (rate {rate:g}): "
               f"{overall['model']['bpc_adaptive']:.4f}")
    described = {1: "add-one unigram", 2: "Kneser-Ney bigram"}
    card = [m for m in ("bpc", "bpc_adaptive", "chars") if m in overall["model"]]
    result = {"overall": overall, "slices": slices, "card_metrics": card,
              "baseline": f"{described.get(orders[gate_peer], f'Kneser-Ney {orders[gate_peer]}-gram')} "
                          f"fitted on the {len(train)} train works",
              "artifacts": []}
    ev.log("bits per character on held-out works: model {:.4f}, ".format(overall["model"]["bpc"])
           + ", ".join(f"{name} {overall[shown[name]]['bpc']:.4f}" for name in peers))

    if ev.model_dir and cfg.get("sample_temperatures"):
        prompts = list(cfg.get("sample_prompts") or [])
        prompts += [r["text"][:cfg.get("sample_prompt_chars", 200)] for r in ev.records[:1]]
        samples = generate_samples(ev.model_dir, prompts, list(cfg["sample_temperatures"]),
                                   int(cfg.get("sample_length", 300)))
        path = Path(ev.out_dir) / "samples.md"
        path.write_text(samples_markdown(samples), encoding="utf-8")
        (Path(ev.out_dir) / "samples.json").write_text(json.dumps(samples, indent=1, ensure_ascii=False))
        result["artifacts"] += [(path, "samples"), (Path(ev.out_dir) / "samples.json", "samples")]
    return result
