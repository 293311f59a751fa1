"""Keras 3 recurrent layers and model builders of rnnpipe.

Imports only Keras, TensorFlow and NumPy, so the layers are usable without
the rest of rnnpipe. Importing this package registers every layer with Keras
serialization under the package name "rnnpipe".
"""

from .cells import GRUCell, LSTMCell, SimpleRNNCell
from .classifier import build_sequence_classifier
from .pooling import MaskedMaxPooling1D, MaskedMeanPooling1D
from .recurrent import GRU, LSTM, SimpleRNN

__all__ = [
    "GRU",
    "LSTM",
    "GRUCell",
    "LSTMCell",
    "MaskedMaxPooling1D",
    "MaskedMeanPooling1D",
    "SimpleRNN",
    "SimpleRNNCell",
    "build_sequence_classifier",
]
