"""The lexicon-constrained CTC decoder against a brute force over every word sequence."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from rnnpipe.models import ctc_greedy_decode, ctc_lexicon_decode

BLANK, SEP = 0, 3
LEXICON = [[1], [1, 2], [2, 2], [2, 1, 2]]  # "a", "ab", "bb" (a repeat needs a blank between), "bab"


def best_path_score(log_probs: np.ndarray, labels: list[int]) -> float:
    """The best CTC frame path's log probability for one label sequence (Viterbi over blank-interleaved labels)."""
    extended = [BLANK]
    for label in labels:
        extended += [label, BLANK]
    score = np.full(len(extended), -np.inf)
    score[0] = log_probs[0, BLANK]
    if len(extended) > 1:
        score[1] = log_probs[0, extended[1]]
    for frame in log_probs[1:]:
        previous = score.copy()
        for s, label in enumerate(extended):
            options = [previous[s]] + ([previous[s - 1]] if s >= 1 else [])
            if s >= 2 and label != BLANK and label != extended[s - 2]:
                options.append(previous[s - 2])
            score[s] = max(options) + frame[label]
    return float(max(score[-1], score[-2] if len(extended) > 1 else -np.inf))


def brute_force(log_probs: np.ndarray, max_words: int, penalty: float) -> tuple[float, list[int]]:
    best = (best_path_score(log_probs, []), [])
    for n in range(1, max_words + 1):
        for words in itertools.product(range(len(LEXICON)), repeat=n):
            labels = [label for w in words for label in [*LEXICON[w], SEP]][:-1]
            # A trailing separator is allowed: the same words.
            score = max(best_path_score(log_probs, labels), best_path_score(log_probs, [*labels, SEP]))
            best = max(best, (score - penalty * n, list(words)), key=lambda item: item[0])
    return best


@pytest.mark.parametrize("penalty", [0.0, 2.0])
def test_the_decoded_words_are_the_best_scoring_word_sequence(penalty: float) -> None:
    rng = np.random.default_rng(7)
    frames = 9  # at most 4 words fit in 9 frames ("a_a_a_a"), so the brute force up to 4 words is exhaustive
    logits = rng.normal(size=(4, frames + 3, 4)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    lengths = np.array([frames, frames - 2, 5, frames])
    decoded = ctc_lexicon_decode(probs.astype("float32"), lengths, lexicon=LEXICON, separator=SEP,
                                 blank_index=BLANK, word_penalty=penalty).numpy()
    for row, length in enumerate(lengths):
        log_probs = np.log(np.maximum(probs[row, :length], 1e-7))
        score, words = brute_force(log_probs, 4, penalty)
        got = [int(w) for w in decoded[row] if w >= 0]
        assert got == words, (row, got, words, score)


def test_a_misspelled_greedy_path_decodes_to_lexicon_words_and_a_silent_row_to_nothing() -> None:
    # Frames spell "ba_b a": greedy reads "bab a"... with a weak "b" before the space, so "ba a" is not a word.
    probs = np.full((2, 6, 4), 0.02, "float32")
    for frame, (label, p) in enumerate([(2, 0.9), (1, 0.9), (0, 0.5), (0, 0.5), (SEP, 0.9), (1, 0.9)]):
        probs[0, frame, label] = p
    probs[0, 3, 2] = 0.45
    probs[1, :, BLANK] = 0.94
    assert ctc_greedy_decode(probs, blank_index=BLANK)[0] == [2, 1, SEP, 1]  # "ba a": "ba" is no word
    decoded = ctc_lexicon_decode(probs, [6, 6], lexicon=LEXICON, separator=SEP, blank_index=BLANK).numpy()
    assert decoded.tolist() == [[3, 0], [-1, -1]]  # "bab a"; the all-blank row says nothing


def test_padding_frames_and_zero_length_rows_change_nothing() -> None:
    rng = np.random.default_rng(3)
    probs = rng.dirichlet(np.ones(4), size=(2, 7)).astype("float32")
    alone = ctc_lexicon_decode(probs[:1, :5], lexicon=LEXICON, separator=SEP, blank_index=BLANK).numpy()
    padded = np.concatenate([probs, rng.dirichlet(np.ones(4), size=(2, 4)).astype("float32")], axis=1)
    batch = ctc_lexicon_decode(padded, [5, 0], lexicon=LEXICON, separator=SEP, blank_index=BLANK).numpy()
    assert batch[0, : alone.shape[1]].tolist() == alone[0].tolist() and (batch[0, alone.shape[1]:] == -1).all()
    assert (batch[1] == -1).all()
    empty = ctc_lexicon_decode(np.zeros((1, 0, 4), "float32"), lexicon=LEXICON, separator=SEP, blank_index=BLANK)
    assert empty.numpy().size == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"separator": BLANK}, "other than the blank"),
        ({"lexicon": [[1, SEP]]}, r"nor the separator \(3\). Received: \[1, 3\]"),
        ({"lexicon": [[]]}, "non-empty list of label ids"),
        ({"lexicon": []}, "non-empty list of label id lists"),
        ({"word_penalty": float("nan")}, "finite number"),
    ],
)
def test_bad_arguments_say_what_was_expected(kwargs: dict, message: str) -> None:
    arguments = {"lexicon": LEXICON, "separator": SEP, "blank_index": BLANK, **kwargs}
    with pytest.raises(ValueError, match=message):
        ctc_lexicon_decode(np.full((1, 3, 4), 0.25, "float32"), **arguments)
