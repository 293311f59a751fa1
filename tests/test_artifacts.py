"""Artifact types (rnnpipe/artifacts.py): what a writer wrote, the reader returns; a missing or damaged file is an
error naming its path; blessings carry a BLESSED / NOT_BLESSED marker."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tensorflow_metadata.proto.v0 import schema_pb2

from rnnpipe import artifacts
from rnnpipe.artifacts import (
    ArtifactError,
    ExampleAnomalies,
    Examples,
    ExamplesInfo,
    ExampleStatistics,
    InfraBlessing,
    ModelBlessing,
    ModelEvaluation,
    ModelRun,
    PushedModel,
    Schema,
)
from rnnpipe.dsl import Artifact
from rnnpipe.errors import DataError

ROOT = Path(__file__).resolve().parent.parent


def test_examples_info_round_trip_and_layout(tmp_path: Path) -> None:
    info = ExamplesInfo({"train": 8, "test": 2}, {"text": "bytes", "label": "int"}, "/data/reviews-3.jsonl", 3,
                        {"source": "/data/reviews-2.jsonl", "counts": {"train": 7, "test": 1}})
    Examples.write_info(tmp_path, info)
    art = Artifact("examples", Examples.TYPE, str(tmp_path))
    assert Examples.read_info(art) == info and Examples.read_info(art).splits == ["train", "test"]
    assert Examples.file_pattern(art, "test") == str(tmp_path / "Split-test" / "*.tfrecord.gz")
    assert Examples.previous_span(art) == tmp_path / "PreviousSpan"
    # What older tests and artifacts wrote (counts only) still reads, with defaults.
    (tmp_path / Examples.INFO).write_text('{"counts": {"train": 1}}')
    assert Examples.read_info(tmp_path) == ExamplesInfo({"train": 1})


def test_a_missing_or_damaged_file_is_an_error_naming_its_path(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match=re.escape(str(tmp_path / "splits.json")) + r".*re-run the step"):
        Examples.read_info(tmp_path)
    (tmp_path / "splits.json").write_text("{not json")
    with pytest.raises(DataError, match=re.escape(str(tmp_path / "splits.json")) + " is not valid JSON"):
        Examples.read_info(tmp_path)
    (tmp_path / "splits.json").write_text('{"kinds": {}}')
    with pytest.raises(ArtifactError, match="has no 'counts' per split"):
        Examples.read_info(tmp_path)
    for read in (PushedModel.read, ModelEvaluation.read, ExampleAnomalies.read, ModelRun.read_history):
        with pytest.raises(ArtifactError, match=re.escape(str(tmp_path))):
            read(tmp_path)
    with pytest.raises(ArtifactError, match=f"schema file not found: {re.escape(str(tmp_path / 'schema.pbtxt'))}"):
        Schema.read(tmp_path)
    (tmp_path / "statistics").mkdir()
    with pytest.raises(ArtifactError, match=r"statistics holds no <split>\.json file"):
        ExampleStatistics.read(tmp_path / "statistics")


@pytest.mark.parametrize("kind", [ModelBlessing, InfraBlessing])
def test_blessings_write_a_marker_and_the_reasons(tmp_path: Path, kind: type) -> None:
    yes, no = tmp_path / "yes", tmp_path / "no"
    yes.mkdir(), no.mkdir()
    assert kind.write(yes, True, [], {"accuracy": 0.9}) == yes / "BLESSED"
    kind.write(no, False, ["accuracy 0.4 < threshold 0.5", "does not beat the baseline"])
    assert sorted(p.name for p in yes.iterdir()) == sorted(["BLESSED", kind.FILE])
    assert sorted(p.name for p in no.iterdir()) == sorted(["NOT_BLESSED", kind.FILE])
    blessed, refused = kind.read(yes), kind.read(no)
    assert (blessed.blessed, blessed.reasons, blessed.details) == (True, [], {"accuracy": 0.9})
    assert (refused.blessed, refused.reasons) == (False, ["accuracy 0.4 < threshold 0.5", "does not beat the baseline"])
    with pytest.raises(ValueError, match="no reasons against it"):
        kind.write(tmp_path, True, ["a reason"])


def test_the_marker_is_the_verdict_and_a_blessing_without_one_is_an_error(tmp_path: Path) -> None:
    ModelBlessing.write(tmp_path, True, [])
    (tmp_path / "NOT_BLESSED").touch()
    with pytest.raises(ArtifactError, match=f"{re.escape(str(tmp_path))} has both a BLESSED and a NOT_BLESSED"):
        ModelBlessing.read(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ArtifactError, match=re.escape(str(empty / "blessing.json")) + " is missing"):
        ModelBlessing.read(empty)
    # A blessing written before markers existed (the InfraValidator's had one 'reason') reads by its JSON.
    (empty / InfraBlessing.FILE).write_text('{"blessed": false, "reason": "did not load"}')
    old = InfraBlessing.read(empty)
    assert (old.blessed, old.reasons) == (False, ["did not load"])
    (empty / InfraBlessing.FILE).write_text('{"reasons": []}')
    with pytest.raises(ArtifactError, match="no BLESSED or NOT_BLESSED marker"):
        InfraBlessing.read(empty)


def test_pushed_model_record_round_trip(tmp_path: Path) -> None:
    PushedModel.write_pushed(tmp_path, version=3, path=tmp_path / "serving" / "3", model_name="demo",
                             model_fingerprint="abc", registry_version=2)
    assert PushedModel.read(tmp_path) == {"pushed": True, "version": 3, "path": str(tmp_path / "serving" / "3"),
                                          "model_name": "demo", "model_fingerprint": "abc", "registry_version": 2}
    PushedModel.write_not_pushed(tmp_path, ["not blessed"], same_as_version=1)
    assert PushedModel.read(tmp_path) == {"pushed": False, "reasons": ["not blessed"], "same_as_version": 1}
    PushedModel.write_not_pushed(tmp_path, ["not blessed"])
    assert "same_as_version" not in PushedModel.read(tmp_path)


def test_statistics_schema_anomalies_and_evaluation_round_trip(tmp_path: Path) -> None:
    stats = {"num_examples": 3, "features": {"text": {"type": "BYTES", "top_values": [["é", 2]]}}}
    ExampleStatistics.write(tmp_path, "train", stats)
    ExampleStatistics.write(tmp_path, "previous_span-train", {"num_examples": 1, "features": {}})
    hashes = np.arange(6, dtype=np.uint64).reshape(3, 2)
    ExampleStatistics.write_hashes(tmp_path, "train", ["label", "text"], hashes)
    ExampleStatistics.write_hashes(tmp_path, "previous_span-train", ["text"], hashes[:, :1])
    assert ExampleStatistics.read(tmp_path) == {"previous_span-train": {"num_examples": 1, "features": {}},
                                                "train": stats}
    [(split, (names, matrix))] = ExampleStatistics.read_hashes(tmp_path).items()  # the previous span's: not read
    assert split == "train" and names == ["label", "text"] and matrix.dtype == np.uint64
    np.testing.assert_array_equal(matrix, hashes)

    schema = schema_pb2.Schema()
    schema.feature.add(name="label", type=schema_pb2.INT).int_domain.max = 1
    assert Schema.write(tmp_path, schema) == tmp_path / "schema.pbtxt"
    assert Schema.read(Artifact("schema", Schema.TYPE, str(tmp_path))) == schema
    assert Schema.read(tmp_path / "schema.pbtxt") == schema  # a user's own schema file
    (tmp_path / "schema.pbtxt").write_text("feature { nme: 'x' }")
    with pytest.raises(ArtifactError, match="schema.pbtxt: not a valid tensorflow-metadata Schema text proto"):
        Schema.read(tmp_path)

    anomalies = [{"kind": "SKEW", "split": "eval", "feature": "text", "blocking": False, "key": None}]
    ExampleAnomalies.write(tmp_path, anomalies)
    assert ExampleAnomalies.read(tmp_path) == anomalies
    evaluation = {"overall": {"model": {"accuracy": 0.75}}, "slices": {}}
    assert ModelEvaluation.read(ModelEvaluation.write(tmp_path, evaluation).parent) == evaluation


def test_importing_the_contracts_imports_no_framework() -> None:
    code = ("import sys, rnnpipe.artifacts, rnnpipe.context; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'numpy', 'mlflow', 'apache_beam', "
            "'keras', 'tensorflow_metadata'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_no_stage_opens_another_stages_file_by_name() -> None:
    """Every artifact file name lives in rnnpipe/artifacts.py; stages and applications use the types' methods."""
    names = {value for cls in vars(artifacts).values() if isinstance(cls, type)
             for key, value in vars(cls).items() if key.isupper() and isinstance(value, str) and "." in value[1:]}
    assert {"splits.json", "blessing.json", "infra_blessing.json", "pushed.json", "schema.pbtxt"} <= names
    offenders = [f"{path.relative_to(ROOT)}:{i}: {name}"
                 for path in [*ROOT.glob("components/*.py"), *ROOT.glob("pipelines/*/*.py")]
                 for i, line in enumerate(path.read_text().splitlines(), 1) for name in names
                 if (f'"{name}"' in line or f"'{name}'" in line) and "with_name(" not in line]  # not a package file
    assert offenders == []


def test_anomalies_are_also_written_as_a_tensorflow_metadata_proto(tmp_path: Path) -> None:
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    ExampleAnomalies.write(tmp_path, [
        {"split": "eval", "feature": "score", "kind": "SKEW", "detail": "JS 0.3 > 0.1", "blocking": False},
        {"split": "test", "feature": "label", "kind": "OUT_OF_DOMAIN", "detail": "values [0, 2]", "blocking": True},
        {"split": "eval", "feature": "label", "kind": "NON_FINITE", "detail": "1 NaN", "blocking": False},
    ])
    proto = text_format.Parse((tmp_path / ExampleAnomalies.PROTO).read_text(), anomalies_pb2.Anomalies())
    score, label = proto.anomaly_info["score"], proto.anomaly_info["label"]
    assert score.severity == anomalies_pb2.AnomalyInfo.WARNING and score.short_description == "SKEW"
    assert label.severity == anomalies_pb2.AnomalyInfo.ERROR and label.short_description == "Multiple errors"
    assert [r.type for r in label.reason] == [anomalies_pb2.AnomalyInfo.ENUM_TYPE_UNEXPECTED_STRING_VALUES,
                                              anomalies_pb2.AnomalyInfo.FLOAT_TYPE_HAS_NAN]
    assert "split 'test': values [0, 2]" in label.description
