"""Speech parts without a pipeline: the log-mel graph against its NumPy twin, WAV decoding (bytes or path,
stereo mixdown, the 16 kHz assertion), the manifest reader's by-path errors, synthesis, error rates, digit
confusions and the PocketSphinx peer."""

from __future__ import annotations

import dataclasses
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from rnnpipe.errors import DataError
from rnnpipe.pipelines.speech import data, features, metrics, model


def tone(seconds: float = 0.5, rate: int = 16000, channels: int = 1, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    signal = amplitude * np.sin(2 * np.pi * 440 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    samples = (signal * 32767).astype("<i2")
    return samples if channels == 1 else np.stack([samples] * channels, axis=1)


def test_log_mel_in_the_graph_matches_the_numpy_reference() -> None:
    rng = np.random.default_rng(0)
    waveforms = [rng.normal(0, 0.1, 16000).astype("float32"), (tone(0.3) / 32768).astype("float32"),
                 rng.normal(0, 0.1, 250).astype("float32")]  # shorter than one frame: one zero-padded frame
    got = features.log_mel(tf.ragged.constant(waveforms, dtype=tf.float32, ragged_rank=1))
    for waveform, frames in zip(waveforms, got, strict=True):
        expected = features.log_mel_numpy(waveform)
        assert frames.shape == expected.shape and expected.shape[1] == features.N_MELS
        np.testing.assert_allclose(frames.numpy(), expected, atol=2e-3, rtol=1e-3)
    assert [len(f) for f in got] == [98, 28, 1]
    # Each utterance less its own mean frame: a fixed gain (a constant in the log domain) leaves no trace.
    louder = features.log_mel(tf.ragged.constant([w * 4.0 for w in waveforms], dtype=tf.float32, ragged_rank=1))
    for row, loud, waveform in zip(features.utterance_mean_removed(got), features.utterance_mean_removed(louder),
                                   waveforms, strict=True):
        expected = features.log_mel_numpy(waveform)
        np.testing.assert_allclose(row.numpy(), expected - expected.mean(axis=0), atol=5e-3)
        np.testing.assert_allclose(loud.numpy(), row.numpy(), atol=5e-3)  # up to LOG_OFFSET


def test_cepstral_smoothing_keeps_the_envelope_drops_the_ripple_and_matches_numpy() -> None:
    bins = np.arange(features.N_MELS)
    envelope = np.sin(bins / 12.0)  # slow across the bins: formants
    ripple = 0.5 * np.cos(np.pi * bins * 0.8)  # fast: harmonics of the pitch
    frames = np.stack([envelope + ripple, 2 * envelope - ripple]).astype("float32")
    got = features.smoothed(tf.RaggedTensor.from_tensor(frames[None]), 13)[0].numpy()
    np.testing.assert_allclose(got, features.smoothed_numpy(frames.astype("float64"), 13), atol=1e-5)
    inner = np.abs(got - np.stack([envelope, 2 * envelope]))[:, 3:-3]  # the outermost bins bend at the edges
    assert inner.max() < 0.1 < np.abs(ripple).max()
    np.testing.assert_allclose(features.smoothed_numpy(frames, features.N_MELS), frames, atol=1e-5)  # all kept


def test_lexicon_decoding_snaps_each_word_to_the_nearest_known_word() -> None:
    words = tf.constant(["one", "nine", "seven", "five"])
    snapped = model.nearest_words(tf.constant(["nin sevn", "", "on  fiive", "xxx"]), words).numpy().tolist()
    assert snapped == [b"nine seven", b"", b"one five", b"one"]  # a tie goes to the more frequent (first) word
    assert model.nearest_words(tf.constant([], tf.string), words).numpy().tolist() == []


def test_wav_bytes_and_paths_decode_alike_and_stereo_is_mixed_down(tmp_path) -> None:
    mono, stereo = tmp_path / "mono.wav", tmp_path / "stereo.wav"
    data.write_wav(mono, tone())
    samples = tone(channels=2)
    samples[:, 1] = 0  # the mixdown is the mean of the channels
    data.write_wav(stereo, samples)
    decoded = features.decode_audio(tf.constant([mono.read_bytes(), str(mono), str(stereo)]))
    np.testing.assert_array_equal(decoded[0].numpy(), decoded[1].numpy())
    np.testing.assert_allclose(decoded[2].numpy(), decoded[0].numpy() / 2, atol=1 / 32768)


def test_the_graph_refuses_audio_at_another_rate(tmp_path) -> None:
    wav = tmp_path / "8k.wav"
    data.write_wav(wav, tone(rate=8000), rate=8000)
    with pytest.raises(tf.errors.InvalidArgumentError, match="16000 Hz"):
        features.decode_audio(tf.constant([wav.read_bytes()]))


def bad_wavs(folder) -> dict:
    good = folder / "good.wav"
    data.write_wav(good, tone())
    truncated, silent, rate, not_audio, eight_bit = (folder / f"{n}.wav" for n in
                                                     ("truncated", "silent", "rate", "text", "eight_bit"))
    truncated.write_bytes(good.read_bytes()[:-1000])
    data.write_wav(silent, np.zeros(8000, "<i2"))
    data.write_wav(rate, tone(rate=44100), rate=44100)
    not_audio.write_text("four one nine\n")
    import wave
    with wave.open(str(eight_bit), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(1)
        w.setframerate(16000)
        w.writeframes(bytes(range(256)) * 20)
    return {truncated: "truncated: its header announces 8000 frames, the file holds 7500",
            silent: "silent", rate: "sampled at 44100 Hz; 16000 Hz is expected", not_audio: "not a WAV file",
            eight_bit: "8-bit samples"}


def test_bad_wavs_are_named_by_path_with_what_to_do(tmp_path) -> None:
    for path, message in bad_wavs(tmp_path).items():
        with pytest.raises(DataError) as e:
            data.check_wav(path)
        assert str(e.value).startswith(f"{path}: ") and message in str(e.value), str(e.value)
    stereo = tmp_path / "stereo.wav"
    data.write_wav(stereo, tone(channels=2))
    assert data.check_wav(stereo) == {"channels": 2, "duration_s": 0.5}


def test_manifest_reader_resolves_paths_splits_and_names_bad_transcripts(tmp_path) -> None:
    (tmp_path / "audio").mkdir()
    for name in ("a", "b"):
        data.write_wav(tmp_path / "audio" / f"{name}.wav", tone())
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("path,transcript,split,speaker\naudio/a.wav,  Four ONE nine ,eval,ann\n"
                        f"{tmp_path / 'audio' / 'b.wav'},it's two,,bob\n")
    records = list(data.read_manifest(tmp_path))
    assert [r["audio"] for _, r in records] == [str(tmp_path / "audio" / n) for n in ("a.wav", "b.wav")]
    assert records[0][1]["transcript"] == "four one nine" and records[0][1]["split"] == "eval"
    assert records[1][1]["split"] in data.SPLITS and records[1][1]["speaker"] == "bob"
    assert records[0][0] == f"{manifest}:2"
    manifest.write_text("path,transcript\naudio/a.wav,four\naudio/b.wav,4 one\n")
    with pytest.raises(DataError, match=rf"{manifest}:3 \(.*b\.wav\): transcript '4 one' has character\(s\) '4'"):
        list(data.read_manifest(manifest))
    with pytest.raises(DataError, match="no manifest.jsonl or manifest.csv"):
        list(data.read_manifest(tmp_path / "audio"))


@pytest.mark.skipif(not (shutil.which("espeak-ng") and shutil.which("sox") and shutil.which("flite")),
                    reason="needs the Debian packages espeak-ng, sox and flite (`make system-deps`)")
def test_synthesized_utterances_are_16k_mono_and_pocketsphinx_hears_digits(tmp_path) -> None:
    planned = data.plan(6, 2, 2, seed=3, noise_fraction=0.5, pitch_shift_cents=300, band_limit_fraction=0.5)
    assert planned == data.plan(6, 2, 2, seed=3, noise_fraction=0.5, pitch_shift_cents=300,
                                band_limit_fraction=0.5)  # the cache key stands for the content
    assert {u.test_set for u in planned} == {"espeak_train", "espeak_heldout", "flite"}
    trained = [u for u in planned if u.test_set == "espeak_train"]
    assert any(u.pitch_cents for u in trained) and any(u.lowpass_hz for u in trained)
    assert all(-300 <= u.pitch_cents <= 300 for u in trained)
    assert not any(u.pitch_cents or u.lowpass_hz for u in planned if u.test_set != "espeak_train")  # as made
    assert all(u.voice.split("+")[1] in data.HELDOUT_VARIANTS for u in planned if u.test_set == "espeak_heldout")
    clean = data.Utterance("x", "espeak", "en-us+m3", (4, 1, 9, 7), 150, 50, 1.0, 0.0, None, "test", "t")
    path = tmp_path / "x.wav"
    seconds = data.synthesize_one(clean, path)
    assert data.check_wav(path) == {"channels": 1, "duration_s": round(seconds, 3)} and 1.0 < seconds < 4.0
    again = tmp_path / "again.wav"
    data.synthesize_one(clean, again)
    assert again.read_bytes() == path.read_bytes()  # no random dither: the same utterance, the same bytes
    heard = metrics.pocketsphinx_transcripts([str(path)])[0].split()  # the grammar allows digit words only
    assert heard and set(heard) <= set(data.DIGITS) and heard[0] == "four", heard
    flite = tmp_path / "f.wav"
    data.synthesize_one(data.Utterance("f", "flite", "slt", (2, 8), 170, 50, 1.0, -3.0, 20.0, "test", "t"), flite)
    assert data.check_wav(flite)["channels"] == 1
    # A band-limited utterance keeps almost no energy above its cut-off; the full-band one keeps some.
    muffled = tmp_path / "m.wav"
    data.synthesize_one(dataclasses.replace(clean, id="m", pitch_cents=-200, lowpass_hz=3000), muffled)

    def share_above(wav: Path, hz: float) -> float:
        with wave.open(str(wav)) as w:
            power = np.abs(np.fft.rfft(np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(float))) ** 2
        return power[np.fft.rfftfreq(2 * len(power) - 2, 1 / 16000) > hz].sum() / power.sum()

    assert share_above(muffled, 4000) < 0.1 * share_above(path, 4000)


def test_error_rates_and_digit_confusions() -> None:
    refs, hyps = ["one two three", "four five"], ["one too three", ""]
    rates = metrics.error_rates(refs, hyps)
    assert rates["wer"] == pytest.approx(3 / 5) and rates["sentence_accuracy"] == 0.0
    assert metrics.error_rates(refs, ["", ""])["wer"] == 1.0
    matrix, labels = metrics.digit_confusions(refs, hyps)
    at = {(labels[i], labels[j]): v for i, row in enumerate(matrix) for j, v in enumerate(row) if v}
    assert at == {("one", "one"): 1, ("two", "other"): 1, ("three", "three"): 1, ("four", "(none)"): 1,
                  ("five", "(none)"): 1}


def test_evaluate_speech_scores_each_test_set_and_speed_bucket_beside_the_empty_transcript(tmp_path) -> None:
    from rnnpipe.components.evaluator import EvalContext

    rows = [("one two", "espeak_heldout", "fast"), ("three", "espeak_heldout", "slow"),
            ("four five six", "flite", "fast"), ("seven", "flite", "slow")]
    records = [{"audio": f"/x/{i}.wav", "transcript": t, "test_set": s, "speed_bucket": b}
               for i, (t, s, b) in enumerate(rows)]
    hyps = [b"one two", b"three", b"four five", b"eleven"]
    ev = EvalContext(records, {"text": np.array(hyps)}, {"pocketsphinx": False}, tmp_path, "unused")
    evaluation = metrics.evaluate_speech(ev)
    model = evaluation["overall"]["model"]
    assert model["wer"] == pytest.approx(2 / 7) and evaluation["overall"]["baseline"]["wer"] == 1.0
    assert model["wer_espeak_heldout"] == 0.0 and model["wer_flite"] == pytest.approx(2 / 4)
    assert model["flite_espeak_wer_gap"] == pytest.approx(0.5)
    assert evaluation["slices"]["speed_bucket:slow"]["model"]["wer"] == pytest.approx(1 / 2)
    assert (tmp_path / "digit_confusions.png").stat().st_size > 1000
    champion = EvalContext(records, {"text": np.array(hyps)}, {}, None, "unused")
    assert metrics.evaluate_speech(champion)["overall"]["model"]["wer"] == pytest.approx(2 / 7)
