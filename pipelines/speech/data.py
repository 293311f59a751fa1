"""Speech data: spoken digit strings synthesized with espeak-ng and flite through sox, and the reader that
turns a manifest of WAV files and transcripts (the synthesized one or the user's) into records.

Synthesis. Each utterance is 3-8 digit words ("four one nine seven") spoken by an espeak-ng English voice
with a voice variant (``en-us+f3``), a speed (words per minute) and a pitch, piped through sox to 16 kHz
16-bit mono with a tempo change and a gain, and optionally mixed with white noise at a stated SNR. The
training voices use one set of variants; the ``espeak_heldout`` test set uses variants never trained on,
and the ``flite`` test set the flite voices (kal, kal16, awb, rms, slt), a different synthesizer
altogether. Utterances are made in parallel (one espeak/flite + sox pipe per worker) into a folder named
after a hash of the synthesis settings; ``manifest.jsonl`` is written last, so a folder with a manifest is
complete and is reused as it is.

The reader. A manifest is a JSONL or CSV file with at least ``path`` (relative to the manifest's folder,
or absolute) and ``transcript``; a folder stands for its ``manifest.jsonl`` or ``manifest.csv``. Other
columns (``test_set``, ``voice``, ``speed``, ...) become features; a ``split`` column (train / eval /
test) places the utterance, else a hash of its path does (80/10/10). Every WAV is checked before
anything is written: a file that is missing, not a RIFF/WAVE file, truncated (fewer sample bytes than its
header announces), not 16-bit PCM, not 16 kHz (rejected, not resampled: the serving graph reads 16 kHz
only; the message gives the sox command that converts it) or silent stops the run with its path, and so
does a transcript with characters outside ``ALPHABET``. Stereo (any channel count) is accepted: the
feature graph mixes it down to mono.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import shutil
import subprocess
import tempfile
import time
import wave
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from rnnpipe.components.example_gen import manifest_rows
from rnnpipe.errors import DataError

SAMPLE_RATE = 16000
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
# What a transcript may contain after lower-casing (runs of whitespace become one space).
ALPHABET = frozenset("abcdefghijklmnopqrstuvwxyz' ")
MANIFEST = "manifest.jsonl"
MANIFEST_NAMES = (MANIFEST, "manifest.csv")
SPLITS = ("train", "eval", "test")
# A file whose peak stays below this fraction of full scale (about -60 dBFS) holds no speech.
SILENCE_PEAK = 1e-3
CONVERT = "sox IN.wav -r 16000 -b 16 OUT.wav"

ESPEAK_VOICES = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029")
TRAIN_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "f1", "f2", "f3", "klatt", "klatt2", "Andy", "Annie", "Denis",
                  "Gene", "Lee", "Linda", "Mario", "Michael", "Paul", "Storm", "Zac", "david", "robert")
HELDOUT_VARIANTS = ("m6", "f4", "klatt3", "Alicia", "Jacky", "steph")
FLITE_VOICES = ("kal", "kal16", "awb", "rms", "slt")
SYNTHESIS_VERSION = 3  # part of the cache key: 2 added pitch shifts and band limits, 3 dropped the dither


@dataclass(frozen=True)
class Utterance:
    """One utterance to synthesize: who says which digits how."""

    id: str
    engine: str  # espeak | flite
    voice: str
    digits: tuple[int, ...]
    speed: int  # espeak words per minute before the tempo change (flite: its default rate, 170)
    pitch: int
    tempo: float
    gain_db: float
    snr_db: float | None
    split: str
    test_set: str
    pitch_cents: int = 0  # sox pitch shift: moves the formants too, as another speaker's vocal tract would
    lowpass_hz: int = 0  # 0 = full band; else band-limited as a telephone or an 8 kHz voice (flite's kal) is

    @property
    def transcript(self) -> str:
        return " ".join(DIGITS[d] for d in self.digits)

    @property
    def rate(self) -> int:
        """Effective words per minute: what the speed buckets slice by."""
        return round(self.speed * self.tempo)


def speed_bucket(rate: float) -> str:
    return "slow" if rate < 150 else "normal" if rate <= 190 else "fast"


def plan(utterances: int, heldout: int, flite: int, *, seed: int = 0, min_digits: int = 3, max_digits: int = 8,
         noise_fraction: float = 0.3, snr_db: tuple[float, float] = (10.0, 30.0), pitch_shift_cents: int = 0,
         band_limit_fraction: float = 0.0, eval_fraction: float = 0.1) -> list[Utterance]:
    """The utterances to synthesize: ``utterances`` by training voices (a share of them the eval split),
    ``heldout`` by held-out espeak variants and ``flite`` by flite voices (the test split). Training voices
    are also shifted by up to ``pitch_shift_cents`` and a ``band_limit_fraction`` of them low-passed at
    3-5 kHz: espeak's few voices, made more like other speakers and channels; the test sets are left as made."""
    rng = random.Random(seed)

    def one(i: int, engine: str, voice: str, split: str, test_set: str) -> Utterance:
        digits = tuple(rng.randrange(10) for _ in range(rng.randint(min_digits, max_digits)))
        noisy = rng.random() < noise_fraction
        train = test_set == "espeak_train"
        band_limited = train and rng.random() < band_limit_fraction
        return Utterance(
            id=f"{test_set}-{i:05d}", engine=engine, voice=voice, digits=digits,
            speed=rng.randint(120, 220) if engine == "espeak" else 170, pitch=rng.randint(20, 80),
            tempo=round(rng.uniform(0.9, 1.1), 3), gain_db=round(rng.uniform(-8.0, 0.0), 1),
            snr_db=round(rng.uniform(*snr_db), 1) if noisy else None,
            pitch_cents=rng.randint(-pitch_shift_cents, pitch_shift_cents) if train else 0,
            lowpass_hz=rng.randint(3000, 5000) if band_limited else 0, split=split, test_set=test_set)

    out = []
    for i in range(utterances):
        voice = f"{rng.choice(ESPEAK_VOICES)}+{rng.choice(TRAIN_VARIANTS)}"
        out.append(one(i, "espeak", voice, "eval" if rng.random() < eval_fraction else "train", "espeak_train"))
    for i in range(heldout):
        voice = f"{rng.choice(ESPEAK_VOICES)}+{rng.choice(HELDOUT_VARIANTS)}"
        out.append(one(i, "espeak", voice, "test", "espeak_heldout"))
    for i in range(flite):
        out.append(one(i, "flite", FLITE_VOICES[i % len(FLITE_VOICES)], "test", "flite"))
    return out


def _run(cmd: list[str], stdin: bytes | None, what: str) -> bytes:
    try:
        proc = subprocess.run(cmd, input=stdin, capture_output=True, timeout=120)
    except FileNotFoundError:
        package = {"espeak-ng": "espeak-ng", "flite": "flite", "sox": "sox"}[cmd[0]]
        raise DataError(f"{cmd[0]} not found: install the Debian package {package} (`make system-deps`), "
                        "or point data.path at your own manifest of WAV files") from None
    if proc.returncode != 0:
        raise DataError(f"{what}: `{' '.join(cmd[:3])} ...` failed: {proc.stderr.decode(errors='replace')[-500:]}")
    return proc.stdout


def synthesize_one(u: Utterance, path: Path) -> float:
    """Writes ``u`` as a 16 kHz 16-bit mono WAV at ``path``; returns its duration in seconds."""
    if u.engine == "espeak":
        # espeak-ng's --stdout WAV header announces a bogus length: sox reads the stream, not the header.
        raw = _run(["espeak-ng", "-v", u.voice, "-s", str(u.speed), "-p", str(u.pitch), "--stdout", u.transcript],
                   None, u.id)
    else:
        with tempfile.NamedTemporaryFile(suffix=".wav") as tmp:
            _run(["flite", "-voice", u.voice, "-t", u.transcript, "-o", tmp.name], None, u.id)
            raw = Path(tmp.name).read_bytes()
    effects = (["pitch", str(u.pitch_cents)] if u.pitch_cents else []) + (
        ["lowpass", str(u.lowpass_hz)] if u.lowpass_hz else [])
    # -D: sox dithers with a fresh random seed on every call by default, so the same utterance gave other bytes
    # each time (and PocketSphinx, at times, other words).
    pcm = _run(["sox", "-D", "-t", "wav", "-", "-t", "raw", "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16",
                "-e", "signed", "-", *effects, "tempo", str(u.tempo), "gain", str(u.gain_db), "pad", "0.1", "0.1"],
               raw, u.id)
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    if u.snr_db is not None:
        rng = np.random.default_rng(int(hashlib.sha256(u.id.encode()).hexdigest()[:8], 16))
        power = np.mean(samples ** 2) if samples.size else 0.0
        samples = samples + rng.normal(0.0, np.sqrt(power / 10 ** (u.snr_db / 10)), samples.shape)
    write_wav(path, np.clip(samples, -32768, 32767).astype("<i2"))
    return len(samples) / SAMPLE_RATE


def write_wav(path: Path, samples: np.ndarray, rate: int = SAMPLE_RATE) -> None:
    """``samples``: int16 ``[n]`` (mono) or ``[n, channels]``."""
    channels = 1 if samples.ndim == 1 else samples.shape[1]
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.ascontiguousarray(samples, dtype="<i2").tobytes())


def dataset_folder(settings: dict) -> str:
    """The folder name of the data that ``synthesize`` makes with these settings (and this SYNTHESIS_VERSION)."""
    versioned = {**settings, "version": SYNTHESIS_VERSION}
    return f"digits-{hashlib.sha256(json.dumps(versioned, sort_keys=True).encode()).hexdigest()[:12]}"


def synthesize(dest_root: Path, *, utterances: int, heldout: int, flite: int, seed: int = 0, min_digits: int = 3,
               max_digits: int = 8, noise_fraction: float = 0.3, pitch_shift_cents: int = 0,
               band_limit_fraction: float = 0.0, workers: int | None = None,
               log: Callable[[str], None] = print) -> Path:
    """The synthesized dataset for these settings under ``dest_root`` (made once; reused when its manifest
    exists). Returns its folder, which holds ``manifest.jsonl``, ``wav/`` and ``synthesis.json`` (timing)."""
    settings = {"utterances": utterances, "heldout": heldout, "flite": flite, "seed": seed, "min_digits": min_digits,
                "max_digits": max_digits, "noise_fraction": noise_fraction, "pitch_shift_cents": pitch_shift_cents,
                "band_limit_fraction": band_limit_fraction}
    dest = dest_root / dataset_folder(settings)
    if (dest / MANIFEST).is_file():
        return dest
    dest_root.mkdir(parents=True, exist_ok=True)
    todo = plan(utterances, heldout, flite, seed=seed, min_digits=min_digits, max_digits=max_digits,
                noise_fraction=noise_fraction, pitch_shift_cents=pitch_shift_cents,
                band_limit_fraction=band_limit_fraction)
    staging = Path(tempfile.mkdtemp(dir=dest_root, prefix=f".{dest.name}-"))
    try:
        (staging / "wav").mkdir()
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
            durations = list(pool.map(lambda u: synthesize_one(u, staging / "wav" / f"{u.id}.wav"), todo))
        seconds = time.perf_counter() - start
        rows = []
        for u, duration in zip(todo, durations, strict=True):
            row = {k: v for k, v in asdict(u).items() if k not in ("id", "digits", "engine")}
            row.update(path=f"wav/{u.id}.wav", transcript=u.transcript, utterance_id=u.id, rate=u.rate,
                       speed_bucket=speed_bucket(u.rate), duration_s=round(duration, 3), engine=u.engine,
                       snr_db=-1.0 if u.snr_db is None else u.snr_db)  # -1: no noise added
            rows.append(row)
        stats = {"settings": {**settings, "version": SYNTHESIS_VERSION}, "utterances": len(todo),
                 "seconds": round(seconds, 2), "utterances_per_second": round(len(todo) / max(seconds, 1e-9), 1),
                 "audio_hours": round(sum(durations) / 3600, 3)}
        (staging / "synthesis.json").write_text(json.dumps(stats, indent=1))
        (staging / MANIFEST).write_text("".join(json.dumps(r) + "\n" for r in rows))  # last: marks it complete
        try:
            os.replace(staging, dest)
        except OSError:
            if not (dest / MANIFEST).is_file():  # another process may have finished first: its folder is as good
                raise
        log(f"synthesized {len(todo)} utterances ({stats['audio_hours']} h of audio) in {seconds:.1f}s: "
            f"{stats['utterances_per_second']} utterances/s")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest


# --- reading a manifest ------------------------------------------------------------------------------------

def manifest_file(path: Path) -> Path:
    """The manifest itself, or the ``manifest.jsonl`` / ``manifest.csv`` of a folder."""
    if not path.exists():
        raise DataError(f"speech data not found: {path}; point data.path at a manifest (CSV or JSONL with columns "
                        "path and transcript) or a folder holding manifest.jsonl or manifest.csv")
    if path.is_file():
        return path
    for name in MANIFEST_NAMES:
        if (path / name).is_file():
            return path / name
    raise DataError(f"{path}: no {' or '.join(MANIFEST_NAMES)} in this folder; write one with a row per WAV file "
                    "(columns path, transcript)")


def normalize_transcript(text: str, where: str) -> str:
    """Lower-cased, whitespace collapsed; a DataError naming ``where`` for characters outside ALPHABET."""
    clean = " ".join(str(text).lower().split())
    if not clean:
        raise DataError(f"{where}: empty transcript; every WAV needs what is said in it")
    bad = sorted(set(clean) - ALPHABET)
    if bad:
        raise DataError(f"{where}: transcript {text!r} has character(s) {' '.join(map(repr, bad))} outside the "
                        "alphabet (a-z, apostrophe, space); spell numbers and symbols out as words")
    return clean


def check_wav(path: Path) -> dict:
    """Channels, rate and duration of a usable WAV; a DataError naming ``path`` (and what to do) otherwise."""
    if not path.is_file():
        raise DataError(f"{path}: WAV file not found (named by the manifest)")
    raw = path.read_bytes()
    if len(raw) < 12 or raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        raise DataError(f"{path}: not a WAV file (no RIFF/WAVE header); convert it with `{CONVERT}`")
    try:
        with wave.open(io.BytesIO(raw)) as w:
            channels, width, rate, frames = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
            data = w.readframes(frames)
    except (wave.Error, EOFError) as e:
        raise DataError(f"{path}: unreadable WAV ({e}); 16-bit PCM is expected: convert it with `{CONVERT}`") from None
    if width != 2:
        raise DataError(f"{path}: {8 * width}-bit samples; 16-bit PCM is expected: convert it with `{CONVERT}`")
    if rate != SAMPLE_RATE:
        raise DataError(f"{path}: sampled at {rate} Hz; 16000 Hz is expected (not resampled here, so that training "
                        f"and serving see the same audio): convert it with `{CONVERT}`")
    if len(data) < frames * channels * width:
        raise DataError(f"{path}: truncated: its header announces {frames} frames, the file holds "
                        f"{len(data) // (channels * width)}; re-export or remove it")
    samples = np.frombuffer(data, dtype="<i2")
    if samples.size == 0 or np.abs(samples.astype(np.int32)).max() < SILENCE_PEAK * 32768:
        raise DataError(f"{path}: silent (peak below -60 dBFS over {frames / rate:.2f}s); a WAV must hold speech: "
                        "remove it or fix the recording")
    return {"channels": channels, "duration_s": round(frames / rate, 3)}


def path_split(path: str) -> str:
    bucket = int.from_bytes(hashlib.sha256(path.encode()).digest()[:8], "big") % 10
    return "test" if bucket == 9 else "eval" if bucket == 8 else "train"


def read_manifest(path: Path) -> Iterator[tuple[str, dict]]:
    """ExampleGen reader: one record per manifest row, ``audio`` the WAV's absolute path (what the feature
    graph reads), ``transcript`` normalized, ``split`` the row's or a hash of the path's, and the row's
    other columns as they are. Every WAV is checked (``check_wav``) before any record is yielded."""
    manifest = manifest_file(Path(path))
    records = []
    for where, row in manifest_rows(manifest):
        missing = [k for k in ("path", "transcript") if row.get(k) in (None, "")]
        if missing:
            raise DataError(f"{where}: missing {', '.join(missing)}; every row needs path and transcript")
        wav = Path(str(row["path"])).expanduser()
        wav = (wav if wav.is_absolute() else manifest.parent / wav).resolve()
        transcript = normalize_transcript(row["transcript"], f"{where} ({wav})")
        info = check_wav(wav)
        split = str(row.get("split") or path_split(str(row["path"])))
        if split not in SPLITS:
            raise DataError(f"{where}: split {split!r}; expected one of {', '.join(SPLITS)} (or no split column)")
        extra = {k: v for k, v in row.items() if k not in ("path", "transcript", "split") and v not in (None, "")}
        records.append((where, {**extra, "audio": str(wav), "transcript": transcript, "split": split,
                                "test_set": str(row.get("test_set") or "user"),
                                "duration_s": float(row.get("duration_s") or info["duration_s"])}))
    if not records:
        raise DataError(f"{manifest}: no rows; list one WAV file and its transcript per row")
    yield from records
