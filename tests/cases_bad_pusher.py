"""Bad-input rows for the Pusher (tests/test_bad_inputs.py): parameters out of range stop the run before
anything runs. Disk-full, read-only and kill cases of the push itself are in tests/test_pusher.py and
tests/test_faults.py (fault points ``Pusher.copy``, ``Pusher.renamed``, ``Pusher.models_config``)."""

from __future__ import annotations

from bad_input_case import Case

CASES = [
    Case("pusher keeps no version", "sentiment", args=("--set", "pusher.keep_versions=0"), exit_code=2,
         message=r"config key 'pusher\.keep_versions' must be >= 1, got 0"),
    Case("pusher keeps negative versions", "tagging", args=("--set", "pusher.keep_versions=-2"), exit_code=2,
         message=r"config key 'pusher\.keep_versions' must be >= 1, got -2"),
]
