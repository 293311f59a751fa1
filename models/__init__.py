"""Keras 3 recurrent layers and model builders of rnnpipe.

Imports only Keras, TensorFlow and NumPy, so the layers are usable without
the rest of rnnpipe. Importing this package registers every layer with Keras
serialization under the package name "rnnpipe".
"""

from .attention import AdditiveAttention, MultiplicativeAttention
from .bias import Bias
from .cells import GRUCell, LSTMCell, SimpleRNNCell
from .characters import CharacterCNN
from .classifier import build_sequence_classifier
from .crnn import BlankPaddedFrames, FrameMask, LineAugmentation, ZeroPaddedColumns, build_crnn
from .ctc import (
    CTCLoss,
    FrequencyWarp,
    SpecAugment,
    build_ctc_recognizer,
    build_speech_recognizer,
    ctc_batch_cost,
    ctc_beam_search_decode,
    ctc_decode_dense,
    ctc_greedy_decode,
)
from .ctc_lexicon import ctc_lexicon_decode
from .diagnostics import GradientDiagnostics
from .ensemble import mean_ensemble
from .forecaster import (  # noqa: F401
    AutoregressiveRNN,
    CorrectionShare,
    SeasonalDifference,
    SeasonalNaive,
    build_forecaster,
    choose_correction_share,
    inverse_error_weights,
)
from .language_model import *  # noqa: F401, F403  (public: LanguageModel, build_language_model, generate, ...)
from .lexical import LexicalBias, ibm1_expected_counts, keep_top_k, normalize_rows
from .losses import SparseCategoricalCrossentropyWithSmoothing, with_label_smoothing
from .optimizers import make_optimizer, warm_up_moving_average
from .pooling import MaskedMaxPooling1D, MaskedMeanPooling1D
from .recurrent import GRU, LSTM, SimpleRNN
from .seq2seq import Seq2Seq, build_seq2seq, check_decoding_penalty
from .smoothing import HoltWinters
from .tagger import build_sequence_tagger
from .theta import Theta, theta_forecast

__all__ = [
    "AdditiveAttention",
    "Bias",
    "BlankPaddedFrames",
    "CharacterCNN",
    "CTCLoss",
    "FrameMask",
    "LineAugmentation",
    "FrequencyWarp",
    "SpecAugment",
    "ZeroPaddedColumns",
    "GRU",
    "LSTM",
    "GRUCell",
    "GradientDiagnostics",
    "HoltWinters",
    "LSTMCell",
    "LexicalBias",
    "MaskedMaxPooling1D",
    "MaskedMeanPooling1D",
    "MultiplicativeAttention",
    "Seq2Seq",
    "SimpleRNN",
    "SimpleRNNCell",
    "SparseCategoricalCrossentropyWithSmoothing",
    "Theta",
    "theta_forecast",
    "build_crnn",
    "mean_ensemble",
    "build_ctc_recognizer",
    "build_seq2seq",
    "build_sequence_classifier",
    "build_sequence_tagger",
    "build_speech_recognizer",
    "check_decoding_penalty",
    "ibm1_expected_counts",
    "inverse_error_weights",
    "keep_top_k",
    "normalize_rows",
    "ctc_batch_cost",
    "ctc_beam_search_decode",
    "ctc_decode_dense",
    "ctc_greedy_decode",
    "ctc_lexicon_decode",
    "make_optimizer",
    "warm_up_moving_average",
    "with_label_smoothing",
]
