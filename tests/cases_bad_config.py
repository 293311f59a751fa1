"""Bad-configuration cases (tests/test_bad_inputs.py runs them): a numeric parameter out of its range, an unknown
key or a wrong type stops the run with exit code 2 when the pipeline is built, before any stage runs, with a
message naming the config key. The ranges are the steps' ``Param(min=..., max=...)`` (components/*.py).
"""

from __future__ import annotations

from bad_input_case import Case


def _range(app: str, key: str, value: str, message: str) -> Case:
    """``--set key=value`` must name ``key`` and say which values it takes."""
    return Case(f"config-{app}-{key}={value}", app, args=("--set", f"{key}={value}"), exit_code=2,
                message=rf"config key '{key.replace('.', '[.]')}' {message}")


CASES = [
    _range("sentiment", "trainer.epochs", "-1", r"must be >= 1, got -1\b"),
    _range("forecasting", "trainer.epochs", "0", r"must be >= 1, got 0\b"),
    _range("tagging", "trainer.batch_size", "0", r"must be >= 1, got 0\b"),
    _range("sentiment", "trainer.learning_rate", "-1", r"must be > 0, got -1"),
    _range("sentiment", "trainer.patience", "-1", r"must be >= 0, got -1\b"),
    _range("sentiment", "trainer.steps_per_epoch", "0", r"must be >= 1, got 0\b"),
    _range("sentiment", "trainer.lr_schedule", "linear",
           r"must be one of 'constant', 'cosine', 'plateau', got 'linear'"),
    _range("sentiment", "example_validator.max_js", "1.5", r"must be >= 0 and <= 1, got 1\.5"),  # a fraction
    _range("sentiment", "evaluator.max_regression", "-0.1", r"must be >= 0, got -0\.1"),
    _range("textgen", "infra_validator.timeout_s", "0", r"must be > 0, got 0\b"),
    Case("config-file-epochs-zero", "sentiment", {"my.yaml": "trainer:\n  epochs: 0\n"},
         args=("--config", "{work}/my.yaml"), exit_code=2,
         message=r"config key 'trainer[.]epochs' must be >= 1, got 0\b"),
    Case("config-file-unknown-key", "sentiment", {"my.yaml": "trainer:\n  epoch: 3\n"},
         args=("--config", "{work}/my.yaml"), exit_code=2,
         message=r"{work}/my[.]yaml: unknown config key 'trainer[.]epoch'; did you mean 'trainer[.]epochs'"),
    Case("config-learning-rate-not-a-number", "sentiment", args=("--set", "trainer.learning_rate=fast"),
         exit_code=2, message=r"'trainer[.]learning_rate' must be of type float .*got str 'fast'"),
    # An application's preprocessing settings, checked against what its preprocessing_fn declares
    # (``preprocessing_fn.config_params``) when the pipeline is built, before Beam starts.
    _range("sentiment", "transform.vocab_size", "0", r"must be >= 1, got 0\b"),
    _range("tagging", "transform.char_vocab_size", "-3", r"must be >= 1, got -3\b"),
]
