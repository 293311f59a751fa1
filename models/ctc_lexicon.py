"""CTC decoding constrained to a lexicon: the best frame path through a loop of known words.

Greedy and beam-search decoding may spell words that do not exist ("fiev"). A speech recogniser with a
closed vocabulary (digits, commands, a grammar's words) instead searches only the label sequences
``word sep word sep ... word``: the Viterbi best path through the CTC topology of a word loop, as
lexicon-constrained decoders (EESEN's T o L, a keyword grammar) do. The search is a `tf.scan` over frames
with each state's few predecessors gathered, so it is O(frames x states) and runs inside a serving graph
with stock TensorFlow ops.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from .ctc import _check_int, _frame_lengths, _resolve_blank, _static_num_classes, _to_logits

__all__ = ["ctc_lexicon_decode"]

_NEVER = -1e30  # the score of a path that does not exist (finite: no inf - inf)


class _WordLoop:
    """The CTC states of ``word (sep word)*`` for the given words (label id lists), as predecessor tables.

    States: 0 is the blank before the first word, 1 the separator, 2 the blank after it; then for every word
    and every label of it, the label state and the blank state after it. Each state lists its predecessors
    (itself first) in a table padded with two pseudo-states: ``pad`` (never) and ``any_end`` (the best word
    end at the previous frame, which only the separator reads: a word can end in any of thousands of states).
    """

    def __init__(self, words: Sequence[Sequence[int]], separator: int, blank: int, word_penalty: float):
        labels = [blank, separator, blank]
        predecessors: list[list[int]] = [[0], [1], [2, 1]]
        self.word_of_start: list[int] = [-1, -1, -1]
        self.ends: list[int] = []
        starts: list[int] = []
        for index, word in enumerate(words):
            for k, label in enumerate(word):
                state = len(labels)
                labels += [label, blank]
                self.word_of_start += [index if k == 0 else -1, -1]
                if k == 0:
                    starts.append(state)
                    predecessors.append([state, 0, 1, 2])
                else:
                    # A repeated label needs the blank between: "ee" is label, blank, label.
                    previous = [state - 1] + ([state - 2] if word[k - 1] != label else [])
                    predecessors.append([state, *previous])
                predecessors.append([state + 1, state])
            self.ends += [len(labels) - 2, len(labels) - 1]
        self.size = len(labels)
        self.pad, self.any_end = self.size, self.size + 1
        predecessors[1].append(self.any_end)
        width = max(len(p) for p in predecessors)
        self.labels = np.array(labels, np.int32)
        self.predecessors = np.array([p + [self.pad] * (width - len(p)) for p in predecessors], np.int32)
        # Entering a word's first label from outside the word costs the penalty (fewer, longer words if > 0).
        self.transition_scores = np.zeros(self.predecessors.shape, np.float32)
        self.transition_scores[starts, 1:] = -word_penalty
        self.initial = np.full(self.size, _NEVER, np.float32)
        self.initial[[0, *starts]] = 0.0
        self.final = np.full(self.size, _NEVER, np.float32)
        self.final[[0, 1, 2, *self.ends]] = 0.0  # nothing said, or a last word (a trailing separator is spared)


def _encode_words(lexicon: Sequence[Sequence[int]], num_classes: int, blank: int, separator: int) -> list[list[int]]:
    if isinstance(lexicon, (str, bytes)) or not len(lexicon):
        raise ValueError(f"Argument `lexicon` must be a non-empty list of label id lists. Received: {lexicon!r}")
    words = []
    for word in lexicon:
        labels = [_check_int("lexicon word label", label) for label in word]
        if not labels or any(not 0 <= label < num_classes or label in (blank, separator) for label in labels):
            raise ValueError(
                f"Each lexicon word must be a non-empty list of label ids in [0, {num_classes - 1}], not the blank "
                f"({blank}) nor the separator ({separator}). Received: {list(word)!r}"
            )
        words.append(labels)
    return words


def ctc_lexicon_decode(
    probs_or_logits: Any,
    frame_lengths: Any = None,
    *,
    lexicon: Sequence[Sequence[int]],
    separator: int,
    blank_index: int = -1,
    from_logits: bool = False,
    word_penalty: float = 0.0,
) -> tf.Tensor:
    """The best path through a loop of the lexicon's words, as word indices `[batch, max_words]` padded with -1.

    Each of `lexicon`'s words is a list of label ids; consecutive words are joined by the `separator` label
    (a space). The decoded words are the label sequence ``w1 sep w2 sep ... wn`` (or nothing) whose best CTC
    frame path scores highest; frames at or past `frame_lengths[b]` are ignored. `word_penalty` (log domain)
    is paid per word: raise it when the decoder inserts words, lower it when it drops them.

    Example: the greedy path spells "tow" (blank 0, t 1, o 2, w 3, space 4), the lexicon knows "two" and "to".

    >>> import numpy as np
    >>> from rnnpipe.models import ctc_lexicon_decode
    >>> probs = np.full((1, 4, 5), 0.05, "float32")
    >>> probs[0, [0, 1, 2, 3], [1, 2, 3, 0]] = 0.8
    >>> ctc_lexicon_decode(probs, lexicon=[[1, 3, 2], [1, 2]], separator=4, blank_index=0).numpy().tolist()
    [[1]]
    """
    scores = tf.convert_to_tensor(probs_or_logits)
    num_classes = _static_num_classes(scores)
    blank = _resolve_blank(_check_int("blank_index", blank_index), num_classes)
    separator = _check_int("separator", separator)
    if not 0 <= separator < num_classes or separator == blank:
        raise ValueError(
            f"Argument `separator` must be a label id in [0, {num_classes - 1}] other than the blank ({blank}). "
            f"Received: separator={separator}"
        )
    if isinstance(word_penalty, bool) or not isinstance(word_penalty, (int, float)) or not np.isfinite(word_penalty):
        raise ValueError(f"Argument `word_penalty` must be a finite number. Received: word_penalty={word_penalty!r}")
    loop = _WordLoop(_encode_words(lexicon, num_classes, blank, separator), separator, blank, float(word_penalty))

    log_probs = _to_logits(scores, from_logits)
    if from_logits:
        log_probs = tf.nn.log_softmax(log_probs, axis=-1)
    lengths = _frame_lengths(scores, frame_lengths)
    # One padding frame: a batch of zero-frame rows still has a first frame to start from.
    emissions = tf.pad(tf.gather(log_probs, loop.labels, axis=-1), [[0, 0], [0, 1], [0, 0]])
    frames = tf.shape(emissions)[1]
    valid = tf.sequence_mask(lengths, frames)
    batch = tf.shape(emissions)[0]
    predecessors = tf.constant(loop.predecessors)
    flat_predecessors, width = tf.reshape(predecessors, [-1]), loop.predecessors.shape[1]
    transition_scores = tf.constant(loop.transition_scores)
    ends = tf.constant(loop.ends, tf.int32)
    identity = tf.range(loop.size, dtype=tf.int32)

    def step(carry: tuple[tf.Tensor, tf.Tensor], inputs: tuple[tf.Tensor, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
        delta, _ = carry
        emission, is_valid = inputs
        end_scores = tf.gather(delta, ends, axis=1)
        best_end = tf.gather(ends, tf.argmax(end_scores, axis=1, output_type=tf.int32))
        extended = tf.concat([delta, tf.fill([batch, 1], _NEVER), tf.reduce_max(end_scores, 1, keepdims=True)], 1)
        candidates = tf.gather(extended, predecessors, axis=1) + transition_scores  # [batch, states, width]
        choice = tf.argmax(candidates, axis=2, output_type=tf.int32)
        pointer = tf.gather(flat_predecessors, identity[None, :] * width + choice)
        pointer = tf.where(pointer == loop.any_end, best_end[:, None], pointer)
        advanced = tf.reduce_max(candidates, axis=2) + emission
        mask = is_valid[:, None]
        return tf.where(mask, advanced, delta), tf.where(mask, pointer, identity[None, :])

    first = tf.constant(loop.initial)[None, :] + emissions[:, 0]
    rest = (tf.transpose(emissions[:, 1:], [1, 0, 2]), tf.transpose(valid[:, 1:]))
    deltas, pointers = tf.scan(step, rest, initializer=(first, tf.zeros([batch, loop.size], tf.int32)))
    last_delta = tf.concat([first[None], deltas], 0)[-1]
    last_state = tf.argmax(last_delta + tf.constant(loop.final)[None, :], axis=1, output_type=tf.int32)

    def back(state: tf.Tensor, pointer: tf.Tensor) -> tf.Tensor:
        return tf.gather(pointer, state, axis=1, batch_dims=1)

    earlier = tf.scan(back, pointers, initializer=last_state, reverse=True)  # states at frames 0 .. T-2
    path = tf.transpose(tf.concat([earlier, last_state[None]], 0))  # [batch, frames]
    word = tf.gather(tf.constant(loop.word_of_start, tf.int32), path)
    entered = tf.not_equal(path, tf.pad(path[:, :-1], [[0, 0], [1, 0]], constant_values=-1))
    said = valid & entered & (word >= 0)
    ragged = tf.RaggedTensor.from_row_lengths(tf.boolean_mask(word, said), tf.reduce_sum(tf.cast(said, tf.int64), 1))
    return ragged.to_tensor(default_value=-1)
