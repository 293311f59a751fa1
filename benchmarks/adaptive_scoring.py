"""The cost of adaptive scoring (``models.adaptive_token_log_probs``, the textgen ``score_adaptive`` signature)
against static scoring (``token_log_probs``) and against dynamic evaluation of every weight (a gradient of the
whole model per segment, Krause et al., 2018), measured in the same run on the textgen default's shapes (a
512-unit GRU over 86 characters, steps of 50) with random weights: speed does not depend on what was learnt.

Batch 1 is one document per call (how a user scores a text); batch 4 the Evaluator's four test works.

    .venv/bin/python benchmarks/adaptive_scoring.py [--chars 5000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _timing import best_of  # noqa: E402  (benchmarks/ is the script's folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chars", type=int, default=5000, help="characters per document")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import tensorflow as tf

    from rnnpipe.models import adaptive_token_log_probs, build_language_model, token_log_probs

    vocab, segment, rate = 86, 50, 0.1
    model = build_language_model(vocab, embedding_dim=64, cell="gru", units=512, bptt=segment)
    static = tf.function(lambda ids: token_log_probs(model, ids), autograph=False)
    adaptive = tf.function(lambda ids: adaptive_token_log_probs(model, ids, rate, segment=segment), autograph=False)
    weights = model.trainable_weights
    start = [tf.identity(w) for w in weights]

    @tf.function(autograph=False)
    def whole_model_step(x: tf.Tensor, y: tf.Tensor, state: tuple) -> tuple:
        with tf.GradientTape() as tape:
            logits, new_state = model(x, initial_state=list(state), return_state=True)
            loss = tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits)
            mean = tf.reduce_mean(loss)
        for w, g in zip(weights, tape.gradient(mean, weights), strict=True):
            w.assign_sub(rate * tf.convert_to_tensor(g))
        return -loss, tuple(new_state)

    def whole_model(ids: np.ndarray) -> np.ndarray:
        # One set of weights for the batch: a fair cost for batch 1 only (rows would need a model each).
        state, out = tuple(model.zero_state(ids.shape[0])), []
        for s in range(0, ids.shape[1] - 1, segment):
            x, y = ids[:, s:s + segment], ids[:, s + 1:s + segment + 1]
            log_probs, state = whole_model_step(tf.constant(x[:, :y.shape[1]]), tf.constant(y), state)
            out.append(log_probs)
        for w, w0 in zip(weights, start, strict=True):
            w.assign(w0)
        return np.concatenate(out, 1)

    print(f"{'batch':>5} {'chars':>6} {'static s':>9} {'adaptive s':>11} {'ratio':>6} {'all weights s':>14} "
          f"{'ratio':>6}")
    for batch in (1, 4):
        ids = np.random.default_rng(batch).integers(1, vocab, (batch, args.chars + 1)).astype(np.int32)
        assert np.allclose(adaptive_token_log_probs(model, ids[:1, :201], 0.0, segment=segment),
                           token_log_probs(model, ids[:1, :201]), atol=1e-4)
        t_static = best_of(lambda ids=ids: static(tf.constant(ids)).numpy(), args.repeats)
        t_adaptive = best_of(lambda ids=ids: adaptive(tf.constant(ids)).numpy(), args.repeats)
        row = f"{batch:>5} {args.chars:>6} {t_static:>9.2f} {t_adaptive:>11.2f} {t_adaptive / t_static:>6.2f}"
        if batch == 1:
            t_whole = best_of(lambda ids=ids: whole_model(ids), args.repeats)
            row += f" {t_whole:>14.2f} {t_whole / t_static:>6.2f}"
        print(row, flush=True)


if __name__ == "__main__":
    main()
