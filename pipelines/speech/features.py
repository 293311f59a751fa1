"""Speech features: audio -> normalized log-mel frames, transcript -> character ids. Core TF ops only, so
the same graph runs in the Transform (Beam) and inside every serving signature.

``audio`` is a WAV file's bytes (what a client sends) or the path of a WAV file the process can read (what
the examples hold, so they stay small): a value that starts with ``RIFF`` is decoded as it is, anything
else is read as a file first. The serving signatures accept bytes only (model.wav_bytes_only), and the
Evaluator and InfraValidator send the files' bytes (the task's request_features).
The WAV must be 16-bit PCM at 16 kHz (``tf.audio.decode_wav``; another rate
fails an assertion that names it); channels are averaged to mono.

Log-mel: 25 ms Hann windows every 10 ms, a 512-point FFT, ``N_MELS`` triangular mel filters from
``LOWER_HZ`` to ``UPPER_HZ`` over the magnitude spectrum, then log(x + ``LOG_OFFSET``), optionally smoothed
through its first cepstral coefficients (``cepstra``: a speaker's pitch harmonics go). Each utterance's
own mean per mel bin is subtracted (cepstral mean normalization: a microphone's, a channel's or a voice's
fixed spectral tilt is a constant in the log domain), then the per-bin mean and variance over every frame of
the train split (tensorflow-transform analyzers) normalize the frames. ``log_mel_numpy`` is the NumPy twin
the tests pin this graph to.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

SAMPLE_RATE = 16000
FRAME_LENGTH = 400  # 25 ms
FRAME_STEP = 160  # 10 ms
FFT_LENGTH = 512
N_MELS = 40
LOWER_HZ, UPPER_HZ = 20.0, 7600.0
LOG_OFFSET = 1e-6

AUDIO_KEY = "audio"
TRANSCRIPT_KEY = "transcript"
FRAMES_KEY = "frames"  # normalized log-mel, flattened to frames * N_MELS values
LABELS_KEY = "labels"  # character ids, 1..V (0 pads labels and is the CTC blank)
VOCABULARY = "chars"
WORDS = "words"


def wav_bytes(audio: tf.Tensor) -> tf.Tensor:
    """One scalar string: WAV bytes as they are, or a path's file contents."""
    return tf.cond(tf.equal(tf.strings.substr(audio, 0, 4), "RIFF"), lambda: audio, lambda: tf.io.read_file(audio))


def decode_one(audio: tf.Tensor) -> tf.Tensor:
    """WAV bytes or path -> mono float waveform in [-1, 1]; asserts 16 kHz."""
    waveform, rate = tf.audio.decode_wav(wav_bytes(audio))
    check = tf.debugging.assert_equal(rate, SAMPLE_RATE, message="audio must be sampled at 16000 Hz; convert it "
                                      "with `sox IN.wav -r 16000 -b 16 OUT.wav`; sample rate received")
    with tf.control_dependencies([check]):
        return tf.reduce_mean(waveform, axis=1)


def decode_audio(audio: tf.Tensor) -> tf.RaggedTensor:
    """[batch] WAV bytes or paths -> ragged [batch, (samples)] mono waveforms."""
    return tf.map_fn(decode_one, audio, fn_output_signature=tf.RaggedTensorSpec([None], tf.float32, ragged_rank=0))


def mel_matrix() -> tf.Tensor:
    return tf.signal.linear_to_mel_weight_matrix(N_MELS, FFT_LENGTH // 2 + 1, SAMPLE_RATE, LOWER_HZ, UPPER_HZ)


def frame_count(samples: tf.Tensor) -> tf.Tensor:
    """Frames of a waveform of ``samples`` samples (at least one: a short input is zero-padded to a frame)."""
    return tf.maximum(1 + (tf.cast(samples, tf.int64) - FRAME_LENGTH) // FRAME_STEP, 1)


def log_mel(waveforms: tf.RaggedTensor) -> tf.RaggedTensor:
    """Ragged [batch, (samples)] -> ragged [batch, (frames), N_MELS] log-mel frames."""
    lengths = waveforms.row_lengths()
    padded = waveforms.to_tensor()
    padded = tf.pad(padded, [[0, 0], [0, tf.maximum(FRAME_LENGTH - tf.shape(padded)[1], 0)]])
    stft = tf.signal.stft(padded, FRAME_LENGTH, FRAME_STEP, FFT_LENGTH, window_fn=tf.signal.hann_window)
    mel = tf.tensordot(tf.abs(stft), mel_matrix(), 1)
    return tf.RaggedTensor.from_tensor(tf.math.log(mel + LOG_OFFSET), lengths=frame_count(lengths))


def log_mel_numpy(waveform: np.ndarray) -> np.ndarray:
    """The NumPy reference of ``log_mel`` for one mono waveform: ``[frames, N_MELS]``."""
    waveform = np.pad(np.asarray(waveform, np.float64), (0, max(FRAME_LENGTH - len(waveform), 0)))
    frames = frame_count(len(waveform)).numpy()
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(FRAME_LENGTH) / FRAME_LENGTH)  # periodic Hann
    index = np.arange(FRAME_LENGTH)[None, :] + FRAME_STEP * np.arange(frames)[:, None]
    spectrum = np.abs(np.fft.rfft(waveform[index] * window, n=FFT_LENGTH))
    return np.log(spectrum @ mel_matrix().numpy().astype(np.float64) + LOG_OFFSET)


def characters(transcript: tf.Tensor) -> tf.RaggedTensor:
    return tf.strings.unicode_split(transcript, "UTF-8")


def _dense_strings(x: tf.Tensor | tf.SparseTensor) -> tf.Tensor:
    if isinstance(x, tf.SparseTensor):
        x = tf.sparse.to_dense(x, default_value="")
    return tf.reshape(x, [-1])


def smoothed(frames: tf.RaggedTensor, cepstra: int) -> tf.RaggedTensor:
    """Each log-mel frame through its first ``cepstra`` cepstral coefficients (DCT-II, the rest zeroed, then
    the inverse DCT): the spectral envelope (formants) stays, the harmonics of the speaker's pitch go."""
    coefficients = tf.signal.dct(frames.flat_values, type=2, norm="ortho")
    kept = coefficients * tf.cast(tf.range(N_MELS) < cepstra, coefficients.dtype)
    return frames.with_flat_values(tf.signal.idct(kept, type=2, norm="ortho"))


def smoothed_numpy(frames: np.ndarray, cepstra: int) -> np.ndarray:
    """The NumPy reference of ``smoothed`` for ``[frames, N_MELS]``."""
    n = np.arange(N_MELS)
    basis = np.sqrt(2 / N_MELS) * np.cos(np.pi * (2 * n[None, :] + 1) * n[:, None] / (2 * N_MELS))  # [k, n]
    basis[0] /= np.sqrt(2)  # orthonormal DCT-II: row k is the k-th cosine
    return frames @ basis[:cepstra].T @ basis[:cepstra]


def utterance_mean_removed(frames: tf.RaggedTensor) -> tf.RaggedTensor:
    """Ragged [batch, (frames), N_MELS] less each row's mean frame."""
    return frames - tf.reduce_mean(frames, axis=1, keepdims=True)


def normalized_frames(audio: tf.Tensor, utterance_mean: bool = True, cepstra: int | None = None
                      ) -> tf.RaggedTensor:
    """[batch] audio -> ragged [batch, (frames), N_MELS] log-mel (smoothed to ``cepstra`` coefficients if set,
    less each utterance's mean if ``utterance_mean``) normalized by the train split's per-bin mean and
    variance."""
    frames = log_mel(decode_audio(_dense_strings(audio)))
    if cepstra:
        frames = smoothed(frames, cepstra)
    if utterance_mean:
        frames = utterance_mean_removed(frames)
    values = frames.flat_values  # every frame of the batch: the statistics are per mel bin, over frames
    mean = tft.mean(values, reduce_instance_dims=False, name="mel_mean")
    var = tft.var(values, reduce_instance_dims=False, name="mel_var")
    return frames.with_flat_values((values - mean) * tf.math.rsqrt(var + 1e-6))


def preprocessing_fn(inputs: dict, *, utterance_mean: bool = True, cepstra: int | None = None) -> dict:
    """``frames``: normalized log-mel, flattened (``frames * N_MELS`` values per utterance); ``labels``: the
    transcript's characters through a vocabulary of the train split, shifted to 1..V (a character the
    train split never had is dropped), when the input has a transcript. The train split's words, most
    frequent first, are the ``WORDS`` vocabulary a lexicon-constrained decoder snaps to."""
    out = {FRAMES_KEY: normalized_frames(inputs[AUDIO_KEY], utterance_mean, cepstra).merge_dims(1, 2)}
    if TRANSCRIPT_KEY in inputs:
        transcripts = _dense_strings(inputs[TRANSCRIPT_KEY])
        ids = tft.compute_and_apply_vocabulary(characters(transcripts), default_value=-1,
                                               vocab_filename=VOCABULARY, name="char_vocabulary")
        out[LABELS_KEY] = tf.ragged.boolean_mask(ids, ids >= 0) + 1
        tft.vocabulary(tf.strings.split(transcripts), vocab_filename=WORDS, name="word_vocabulary")
    return out
