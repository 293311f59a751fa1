"""Artifact types: what each kind of artifact directory holds, with the one reader and writer of every file
that a stage other than its producer reads (TFX's artifact types, without the proto plumbing).

A stage never opens another stage's file by name: it calls ``ModelBlessing.read(inputs["blessing"])``, not
``inputs["blessing"].path("blessing.json")``. Each class's ``TYPE`` is the type name that components declare in
``INPUTS``/``OUTPUTS``. Readers take an ``Artifact`` (anything with a ``uri``) or a directory path, and a missing
file is an ``ArtifactError`` naming its path. Only the standard library is imported here; a reader that needs
NumPy, TensorFlow or tensorflow-metadata imports it when called, so the CLI stays fast.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from .errors import DataError


class ArtifactError(DataError):
    """An artifact directory lacks a file its type promises, or holds one that cannot be read."""


def _root(where: Any) -> Path:
    """The directory of an ``Artifact`` (its ``uri``) or a path."""
    return Path(getattr(where, "uri", where))


def _require(path: Path, type_name: str) -> Path:
    if not path.exists():
        raise ArtifactError(f"{type_name} artifact: {path} is missing; re-run the step that wrote it "
                            "(rnnpipe run APP --from STEP)")
    return path


def _read_json(path: Path, type_name: str) -> Any:
    try:
        return json.loads(_require(path, type_name).read_text(encoding="utf-8"))
    except ValueError as e:
        raise ArtifactError(f"{type_name} artifact: {path} is not valid JSON ({e}); re-run the step that wrote "
                            "it") from None


def _write_json(path: Path, data: Any, indent: int | None = 1) -> Path:
    path.write_text(json.dumps(data, indent=indent, ensure_ascii=False), encoding="utf-8")
    return path


# --- Examples ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ExamplesInfo:
    """What ExampleGen wrote (``splits.json``): records per split, feature kinds, the source file and its span;
    ``previous_span`` ({"source", "counts"}) when the span before the latest was written too (drift checks)."""

    counts: dict[str, int]
    kinds: dict[str, str] = field(default_factory=dict)
    source: str = ""
    span: int | None = None
    previous_span: dict | None = None
    source_pattern: str = ""  # the configured source (with {SPAN}); ``source`` is the file it resolved to

    @property
    def splits(self) -> list[str]:
        return list(self.counts)

    @property
    def data_source(self) -> dict:
        """What a model trained on these examples was trained on: the source as configured and its fields.
        A served model with another data source is no champion for a candidate (another dataset)."""
        return {"pattern": self.source_pattern or self.source, "fields": dict(sorted(self.kinds.items()))}

    def to_json(self) -> dict:
        out = {"counts": self.counts, "kinds": self.kinds, "source": self.source, "span": self.span,
               "source_pattern": self.source_pattern}
        if self.previous_span is not None:
            out["previous_span"] = self.previous_span
        return out


class Examples:
    """tf.Example shards per split (``Split-<name>/*.tfrecord.gz``, the previous span under ``PreviousSpan/``)
    and ``splits.json`` (``ExamplesInfo``). Transform's transformed examples have the same layout."""

    TYPE: ClassVar[str] = "Examples"
    INFO: ClassVar[str] = "splits.json"
    RECORD_SUFFIX: ClassVar[str] = ".tfrecord.gz"
    PREVIOUS_SPAN: ClassVar[str] = "PreviousSpan"

    @staticmethod
    def split_dir(where: Any, split: str) -> Path:
        return _root(where) / f"Split-{split}"

    @classmethod
    def file_pattern(cls, where: Any, split: str) -> str:
        return str(cls.split_dir(where, split) / f"*{cls.RECORD_SUFFIX}")

    @classmethod
    def shard_paths(cls, where: Any, split: str) -> list[str]:
        return sorted(str(p) for p in cls.split_dir(where, split).glob(f"*{cls.RECORD_SUFFIX}"))

    @classmethod
    def previous_span(cls, where: Any) -> Path:
        """The root of the previous span's examples (same layout)."""
        return _root(where) / cls.PREVIOUS_SPAN

    @classmethod
    def write_info(cls, where: Any, info: ExamplesInfo) -> Path:
        return _write_json(_root(where) / cls.INFO, info.to_json())

    @classmethod
    def read_info(cls, where: Any) -> ExamplesInfo:
        path = _root(where) / cls.INFO
        data = _read_json(path, cls.TYPE)
        if not isinstance(data, dict) or not isinstance(data.get("counts"), dict):
            raise ArtifactError(f"{cls.TYPE} artifact: {path} has no 'counts' per split")
        return ExamplesInfo(data["counts"], data.get("kinds", {}), data.get("source", ""), data.get("span"),
                            data.get("previous_span"), data.get("source_pattern", ""))


# --- Statistics, schema, anomalies -----------------------------------------------------------------------------

class ExampleStatistics:
    """Per split ``<split>.json`` (the statistics) and ``<split>.hashes.npz`` (per-record, per-feature content
    hashes); the previous span's splits are named ``previous_span-<split>``."""

    TYPE: ClassVar[str] = "ExampleStatistics"
    SUFFIX: ClassVar[str] = ".json"
    HASHES_SUFFIX: ClassVar[str] = ".hashes.npz"
    PREVIOUS_PREFIX: ClassVar[str] = "previous_span-"
    PROTO: ClassVar[str] = "FeatureStats.pb"  # every split's DatasetFeatureStatistics, for TFDV and Facets

    @classmethod
    def write_proto(cls, where: Any, proto: Any) -> Path:
        """Writes a tensorflow-metadata DatasetFeatureStatisticsList (binary), as TFDV's load_stats_binary reads."""
        path = _root(where) / cls.PROTO
        path.write_bytes(proto.SerializeToString())
        return path

    @classmethod
    def split_file(cls, where: Any, name: str) -> Path:
        return _root(where) / f"{name}{cls.SUFFIX}"

    @classmethod
    def write(cls, where: Any, name: str, stats: dict) -> Path:
        return _write_json(cls.split_file(where, name), stats, indent=None)

    @classmethod
    def read(cls, where: Any) -> dict[str, dict]:
        """Every split's statistics by name (the previous span's under ``previous_span-<split>``)."""
        root = _root(where)
        files = sorted(root.glob(f"*{cls.SUFFIX}"))
        if not files:
            raise ArtifactError(f"{cls.TYPE} artifact {root} holds no <split>{cls.SUFFIX} file; re-run StatisticsGen")
        return {p.name[:-len(cls.SUFFIX)]: _read_json(p, cls.TYPE) for p in files}

    @classmethod
    def write_hashes(cls, where: Any, split: str, names: list[str], hashes: Any) -> Path:
        import numpy as np

        path = _root(where) / f"{split}{cls.HASHES_SUFFIX}"
        np.savez(path, names=np.array(names, dtype=str), hashes=hashes)
        return path

    @classmethod
    def read_hashes(cls, where: Any) -> dict[str, tuple[list[str], Any]]:
        """The content hashes (feature names, uint64 matrix) of every current split (not the previous span's);
        {} for statistics written before hashes were kept."""
        import numpy as np

        out = {}
        for p in sorted(_root(where).glob(f"*{cls.HASHES_SUFFIX}")):
            split = p.name[:-len(cls.HASHES_SUFFIX)]
            if not split.startswith(cls.PREVIOUS_PREFIX):
                with np.load(p) as data:
                    out[split] = (list(data["names"]), data["hashes"])
        return out


class Schema:
    """A tensorflow-metadata Schema as a text proto, ``schema.pbtxt``."""

    TYPE: ClassVar[str] = "Schema"
    FILE: ClassVar[str] = "schema.pbtxt"

    @classmethod
    def path(cls, where: Any) -> Path:
        return _root(where) / cls.FILE

    @classmethod
    def read(cls, where: Any) -> Any:
        """The ``schema_pb2.Schema`` of an artifact, a directory, or a schema file of the user's own."""
        from google.protobuf import text_format
        from tensorflow_metadata.proto.v0 import schema_pb2

        path = _root(where)
        if path.is_dir():
            path = path / cls.FILE
        if not path.is_file():
            raise ArtifactError(f"schema file not found: {path}")
        try:
            return text_format.Parse(path.read_text(encoding="utf-8"), schema_pb2.Schema())
        except text_format.ParseError as e:
            raise ArtifactError(f"{path}: not a valid tensorflow-metadata Schema text proto: {e}") from None

    @classmethod
    def write(cls, where: Any, schema: Any) -> Path:
        from google.protobuf import text_format

        path = cls.path(where)
        path.write_text(text_format.MessageToString(schema), encoding="utf-8")
        return path


class ExampleAnomalies:
    """The ExampleValidator's report, ``anomalies.json``: a list of anomalies (kind, split, feature, detail,
    blocking, the config key that relaxes it)."""

    TYPE: ClassVar[str] = "ExampleAnomalies"
    FILE: ClassVar[str] = "anomalies.json"
    PROTO: ClassVar[str] = "anomalies.pbtxt"  # tensorflow-metadata Anomalies, as TFDV's load_anomalies_text reads
    # rnnpipe's kinds as the closest tensorflow-metadata anomaly types (UNKNOWN_TYPE for the rest)
    PROTO_TYPES: ClassVar[dict[str, str]] = {
        "MISSING_FEATURE": "SCHEMA_MISSING_COLUMN", "NEW_FEATURE": "SCHEMA_NEW_COLUMN",
        "FEATURE_MISSING_TOO_OFTEN": "FEATURE_TYPE_LOW_FRACTION_PRESENT",
        "OUT_OF_DOMAIN": "ENUM_TYPE_UNEXPECTED_STRING_VALUES", "WRONG_TYPE": "UNEXPECTED_DATA_TYPE",
        "SKEW": "COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH", "DRIFT": "COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH",
        "EMPTY_SPLIT": "DATASET_LOW_NUM_EXAMPLES", "NON_FINITE": "FLOAT_TYPE_HAS_NAN",
    }

    @classmethod
    def write(cls, where: Any, anomalies: list[dict]) -> Path:
        (_root(where) / cls.PROTO).write_text(cls.to_proto_text(anomalies))
        return _write_json(_root(where) / cls.FILE, anomalies)

    @classmethod
    def to_proto_text(cls, anomalies: list[dict]) -> str:
        """The anomalies as a tensorflow-metadata ``Anomalies`` text proto, one AnomalyInfo per feature."""
        from google.protobuf import text_format
        from tensorflow_metadata.proto.v0 import anomalies_pb2

        out = anomalies_pb2.Anomalies(anomaly_name_format=anomalies_pb2.Anomalies.SERIALIZED_PATH)
        for a in anomalies:
            info = out.anomaly_info[a["feature"]]
            if a.get("blocking", True):  # a feature's severity is its worst anomaly's
                info.severity = anomalies_pb2.AnomalyInfo.ERROR
            elif info.severity != anomalies_pb2.AnomalyInfo.ERROR:
                info.severity = anomalies_pb2.AnomalyInfo.WARNING
            info.path.step[:] = [a["feature"]]
            kind, where = a.get("kind", "UNKNOWN"), f"split '{a.get('split', '*')}': {a.get('detail', '')}"
            info.description = f"{info.description}; {where}" if info.description else where
            info.short_description = kind if not info.short_description else "Multiple errors"
            info.reason.add(type=anomalies_pb2.AnomalyInfo.Type.Value(cls.PROTO_TYPES.get(kind, "UNKNOWN_TYPE")),
                            short_description=kind, description=where)
        return text_format.MessageToString(out)

    @classmethod
    def read(cls, where: Any) -> list[dict]:
        return _read_json(_root(where) / cls.FILE, cls.TYPE)


# --- Transform and model -------------------------------------------------------------------------------------------

class TransformGraph:
    """tf.Transform's output directory (``transform_fn/``, ``transformed_metadata/``, the raw schema)."""

    TYPE: ClassVar[str] = "TransformGraph"
    GRAPH_DIR: ClassVar[str] = "transform_fn"  # tft.TFTransformOutput.TRANSFORM_FN_DIR
    RAW_METADATA_DIR: ClassVar[str] = "metadata"  # tft.TFTransformOutput.RAW_METADATA_DIR

    @classmethod
    def raw_metadata_dir(cls, where: Any) -> Path:
        return _root(where) / cls.RAW_METADATA_DIR

    @classmethod
    def load(cls, where: Any) -> Any:
        """The ``tft.TFTransformOutput`` of the artifact."""
        _require(_root(where) / cls.GRAPH_DIR, cls.TYPE)
        import tensorflow_transform as tft

        return tft.TFTransformOutput(str(_root(where)))


class Model:
    """The exported SavedModel whose serving signature takes raw inputs (what TF Serving loads)."""

    TYPE: ClassVar[str] = "Model"
    SAVED_MODEL: ClassVar[str] = "saved_model.pb"
    MLFLOW_PATH: ClassVar[str] = "serving_model"  # where the Trainer logs it in the MLflow run

    @classmethod
    def saved_model(cls, where: Any) -> Path:
        """``saved_model.pb``, which must exist."""
        return _require(_root(where) / cls.SAVED_MODEL, cls.TYPE)

    @classmethod
    def read_proto(cls, where: Any) -> Any:
        """The ``SavedModel`` proto, read without loading the model (no custom ops needed)."""
        from tensorflow.core.protobuf import saved_model_pb2

        return saved_model_pb2.SavedModel.FromString(cls.saved_model(where).read_bytes())


class ModelRun:
    """The Trainer's Keras side: ``model.keras`` (the trained model, without the transform graph) and
    ``history.json`` (metric name -> value per epoch)."""

    TYPE: ClassVar[str] = "ModelRun"
    KERAS_FILE: ClassVar[str] = "model.keras"
    HISTORY: ClassVar[str] = "history.json"
    WARM_START: ClassVar[str] = "warm_start.json"  # {"from", "version", "digest" of the starting weights}

    @classmethod
    def write(cls, where: Any, model: Any, history: dict[str, list[float]], warm_start: dict | None = None) -> None:
        model.save(_root(where) / cls.KERAS_FILE)
        _write_json(_root(where) / cls.HISTORY, history)
        if warm_start is not None:
            _write_json(_root(where) / cls.WARM_START, warm_start)

    @classmethod
    def read_warm_start(cls, where: Any) -> dict | None:
        """Where a warm-started model's weights came from; None for one trained from scratch."""
        path = _root(where) / cls.WARM_START
        return _read_json(path, cls.TYPE) if path.exists() else None

    @classmethod
    def read_history(cls, where: Any) -> dict[str, list[float]]:
        return _read_json(_root(where) / cls.HISTORY, cls.TYPE)


class HyperParameters:
    """The Tuner's choice: ``best_hyperparameters.json`` with ``model`` (keys of the model section) and
    ``trainer`` (learning rate, clipping) values, the ``objective`` and every trial's values and score."""

    TYPE: ClassVar[str] = "HyperParameters"
    FILE: ClassVar[str] = "best_hyperparameters.json"

    @classmethod
    def write(cls, where: Any, best: dict) -> Path:
        return _write_json(_root(where) / cls.FILE, best)

    @classmethod
    def read(cls, where: Any) -> dict:
        return _read_json(_root(where) / cls.FILE, cls.TYPE)


class WordEmbeddings:
    """The EmbeddingPretrainer's vectors: ``vectors.npz`` holding ``ids`` (token ids as the Transform assigns them)
    and ``vectors`` (one row per id), and ``embeddings.json`` (``layer``: the model's embedding layer they start,
    ``dim``, the corpus and its counts)."""

    TYPE: ClassVar[str] = "WordEmbeddings"
    VECTORS: ClassVar[str] = "vectors.npz"
    INFO: ClassVar[str] = "embeddings.json"

    @classmethod
    def write(cls, where: Any, ids: Any, vectors: Any, info: dict) -> None:
        import numpy as np

        np.savez(_root(where) / cls.VECTORS, ids=ids, vectors=vectors)
        _write_json(_root(where) / cls.INFO, info)

    @classmethod
    def read(cls, where: Any) -> tuple[Any, Any, dict]:
        """``(ids, vectors, info)``."""
        import numpy as np

        with np.load(_require(_root(where) / cls.VECTORS, cls.TYPE)) as data:
            ids, vectors = data["ids"], data["vectors"]
        return ids, vectors, _read_json(_root(where) / cls.INFO, cls.TYPE)


class ModelEvaluation:
    """The Evaluator's metrics, ``evaluation.json``: overall and per slice for the model, its baseline and peers,
    and the champion's primary metric."""

    TYPE: ClassVar[str] = "ModelEvaluation"
    FILE: ClassVar[str] = "evaluation.json"
    # The gate's primary metric in a step's metrics, for any application: `rnnpipe run` and `runs` print these.
    PRIMARY_KEYS: ClassVar[tuple[str, ...]] = ("primary_metric", "higher_is_better", "primary_value",
                                               "primary_baseline", "primary_champion")

    @classmethod
    def primary_summary(cls, evaluation: dict, primary: str, higher_is_better: bool) -> dict[str, Any]:
        """The PRIMARY_KEYS: the metric's name, direction, and the candidate's, the baseline's and the champion's
        values (None: no baseline, no comparable champion, or not finite)."""
        overall, champion = evaluation["overall"], evaluation.get("champion")
        values = (overall["model"].get(primary), overall.get("baseline", {}).get(primary),
                  None if champion is None else champion[primary])
        finite = [float(v) if isinstance(v, int | float) and math.isfinite(v) else None for v in values]
        return dict(zip(cls.PRIMARY_KEYS, [primary, bool(higher_is_better), *finite], strict=True))

    @classmethod
    def path(cls, where: Any) -> Path:
        return _root(where) / cls.FILE

    @classmethod
    def write(cls, where: Any, evaluation: dict) -> Path:
        return _write_json(cls.path(where), evaluation)

    @classmethod
    def read(cls, where: Any) -> dict:
        return _read_json(cls.path(where), cls.TYPE)


# --- Blessings and the push -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Blessing:
    """A verdict and why: ``reasons`` is empty when blessed; ``details`` is what the validator measured."""

    blessed: bool
    reasons: list[str]
    details: dict = field(default_factory=dict)


class _BlessingType:
    """TFX's habit: an empty ``BLESSED`` or ``NOT_BLESSED`` marker, written last, plus a JSON with the reasons
    and the details. The marker is the verdict (a directory with both is an error); a blessing written before
    markers existed is read by the JSON's ``blessed``."""

    TYPE: ClassVar[str]
    FILE: ClassVar[str]
    DETAILS: ClassVar[str]  # the JSON key of the details
    BLESSED: ClassVar[str] = "BLESSED"
    NOT_BLESSED: ClassVar[str] = "NOT_BLESSED"

    @classmethod
    def _write(cls, where: Any, blessed: bool, reasons: list[str], details: dict) -> Path:
        root = _root(where)
        if blessed and reasons:
            raise ValueError(f"{cls.TYPE}: a blessing has no reasons against it, got {reasons}")
        _write_json(root / cls.FILE, {"blessed": blessed, "reasons": list(reasons), cls.DETAILS: details})
        marker = root / (cls.BLESSED if blessed else cls.NOT_BLESSED)
        marker.touch()
        return marker

    @classmethod
    def read(cls, where: Any) -> Blessing:
        root = _root(where)
        blessed, not_blessed = (root / cls.BLESSED).exists(), (root / cls.NOT_BLESSED).exists()
        if blessed and not_blessed:
            raise ArtifactError(f"{cls.TYPE} artifact {root} has both a {cls.BLESSED} and a {cls.NOT_BLESSED} "
                                "marker; re-run the step that wrote it")
        data = _read_json(root / cls.FILE, cls.TYPE)
        if not isinstance(data, dict) or not (blessed or not_blessed or isinstance(data.get("blessed"), bool)):
            raise ArtifactError(f"{cls.TYPE} artifact {root} has no {cls.BLESSED} or {cls.NOT_BLESSED} marker and "
                                f"{root / cls.FILE} no verdict; re-run the step that wrote it")
        verdict = blessed or (not not_blessed and data["blessed"])
        reasons = data.get("reasons") or ([data["reason"]] if data.get("reason") else [])  # older: one reason
        return Blessing(verdict, list(reasons), data.get(cls.DETAILS, {}))


class ModelBlessing(_BlessingType):
    """The Evaluator's verdict (``blessing.json`` + marker): thresholds, baseline, champion."""

    TYPE: ClassVar[str] = "ModelBlessing"
    FILE: ClassVar[str] = "blessing.json"
    DETAILS: ClassVar[str] = "evaluation"

    @classmethod
    def write(cls, where: Any, blessed: bool, reasons: list[str], evaluation_summary: dict | None = None) -> Path:
        return cls._write(where, blessed, reasons, evaluation_summary or {})


class InfraBlessing(_BlessingType):
    """The InfraValidator's verdict (``infra_blessing.json`` + marker) and the warmup requests TF Serving replays
    (``tf_serving_warmup_requests``, which the Pusher copies into ``assets.extra/``)."""

    TYPE: ClassVar[str] = "InfraBlessing"
    FILE: ClassVar[str] = "infra_blessing.json"
    DETAILS: ClassVar[str] = "report"
    WARMUP_FILE: ClassVar[str] = "tf_serving_warmup_requests"  # the name TF Serving looks for

    @classmethod
    def write(cls, where: Any, blessed: bool, reasons: list[str], report: dict | None = None) -> Path:
        return cls._write(where, blessed, reasons, report or {})

    @classmethod
    def warmup_path(cls, where: Any) -> Path:
        return _root(where) / cls.WARMUP_FILE


class PushedModel:
    """The Pusher's record, ``pushed.json``: {"pushed": true, "version", "path", "model_name",
    "model_fingerprint", "registry_version"} or {"pushed": false, "reasons", ["same_as_version"]}."""

    TYPE: ClassVar[str] = "PushedModel"
    FILE: ClassVar[str] = "pushed.json"

    @classmethod
    def path(cls, where: Any) -> Path:
        return _root(where) / cls.FILE

    @classmethod
    def write_pushed(cls, where: Any, *, version: int, path: str | Path, model_name: str, model_fingerprint: str,
                     registry_version: int) -> Path:
        return _write_json(cls.path(where), {
            "pushed": True, "version": version, "path": str(path), "model_name": model_name,
            "model_fingerprint": model_fingerprint, "registry_version": registry_version}, indent=None)

    @classmethod
    def write_not_pushed(cls, where: Any, reasons: list[str], same_as_version: int | None = None) -> Path:
        record: dict[str, Any] = {"pushed": False, "reasons": list(reasons)}
        if same_as_version is not None:
            record["same_as_version"] = same_as_version
        return _write_json(cls.path(where), record, indent=None)

    @classmethod
    def read(cls, where: Any) -> dict:
        return _read_json(cls.path(where), cls.TYPE)
