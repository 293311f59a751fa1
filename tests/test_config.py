from __future__ import annotations

from pathlib import Path

import pytest

from rnnpipe.config import load_config, parse_set
from rnnpipe.errors import ConfigError

SENTIMENT = Path(__file__).resolve().parents[1] / "pipelines" / "sentiment" / "config.yaml"


def test_defaults_and_overrides_layer_in_order(tmp_path: Path) -> None:
    user = tmp_path / "user.yaml"
    user.write_text("trainer:\n  epochs: 3\n  learning_rate: 1\nmodel:\n  cell: lstm\n")
    cfg = load_config(SENTIMENT, user, ["trainer.epochs=7", "beam.options=['--direct_num_workers=2']"])
    assert cfg.trainer.epochs == 7  # --set wins over --config
    assert cfg.trainer.learning_rate == 1.0 and isinstance(cfg.trainer.learning_rate, float)
    assert cfg.model.cell == "lstm"
    assert cfg.beam.options == ["--direct_num_workers=2"]
    assert cfg.beam.runner == "DirectRunner"  # engine default kept


def test_unknown_key_names_key_and_suggests_the_closest() -> None:
    with pytest.raises(ConfigError, match=r"unknown config key 'trainer\.epoch'.*did you mean 'trainer\.epochs'"):
        load_config(SENTIMENT, None, ["trainer.epoch=3"])


def test_unknown_key_in_config_file_names_the_file(tmp_path: Path) -> None:
    user = tmp_path / "user.yaml"
    user.write_text("modle:\n  units: 8\n")
    with pytest.raises(ConfigError, match=r"user\.yaml: unknown config key 'modle'.*did you mean 'model'"):
        load_config(SENTIMENT, user)


def test_wrong_type_is_rejected_with_expected_and_received() -> None:
    with pytest.raises(ConfigError, match=r"'trainer\.epochs' must be of type int.*got str 'many'"):
        load_config(SENTIMENT, None, ["trainer.epochs=many"])
    with pytest.raises(ConfigError, match=r"'model\.bidirectional' must be of type bool"):
        load_config(SENTIMENT, None, ["model.bidirectional=3"])


def test_set_needs_key_value() -> None:
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_set("trainer.epochs")
    assert parse_set("a.b.c=[1, 2]") == {"a": {"b": {"c": [1, 2]}}}  # (b is merged key by key)


def test_missing_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found: .*nope.yaml"):
        load_config(SENTIMENT, tmp_path / "nope.yaml")


def test_mappings_inside_a_section_are_replaced_whole() -> None:
    cfg = load_config(SENTIMENT, None, ["evaluator.thresholds={macro_f1: 0.7}", "example_gen.splits={a: 1, b: 1}"])
    assert cfg.evaluator.thresholds == {"macro_f1": 0.7}
    assert cfg.example_gen.splits == {"a": 1, "b": 1}
    with pytest.raises(ConfigError, match=r"'evaluator\.thresholds' must be of type dict"):
        load_config(SENTIMENT, None, ["evaluator.thresholds=0.7"])


def test_a_dotted_key_inside_a_mapping_changes_that_key_and_keeps_the_others() -> None:
    cfg = load_config(SENTIMENT, None, ["evaluator.metrics.slice_keys=[]", "evaluator.thresholds.f1=0.5"])
    assert cfg.evaluator.metrics.slice_keys == [] and cfg.evaluator.metrics.length_edges == [8, 16, 32]
    assert cfg.evaluator.thresholds == {"accuracy": 0.6, "f1": 0.5}  # an open mapping takes a new key
    with pytest.raises(ConfigError, match=r"unknown key 'evaluator\.metrics\.lenght_edges'; "
                                          r"did you mean 'evaluator\.metrics\.length_edges'"):
        load_config(SENTIMENT, None, ["evaluator.metrics.lenght_edges=[1]"])
    with pytest.raises(ConfigError, match=r"'evaluator\.metrics\.length_edges' must be of type list"):
        load_config(SENTIMENT, None, ["evaluator.metrics.length_edges=abc"])
    with pytest.raises(ConfigError, match=r"'trainer\.epochs' is int 8, not a mapping"):
        load_config(SENTIMENT, None, ["trainer.epochs.x=1"])
