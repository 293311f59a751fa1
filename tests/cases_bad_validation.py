"""Bad-input cases for StatisticsGen and the ExampleValidator (tests/test_bad_inputs.py runs them): each
stops at the ExampleValidator, before Transform, with a report naming the split, the feature and the config
key that would relax the check; or, for parameters out of range, before anything runs.

What must NOT stop a run (400 clean records with a noisy field the model does not read, duplicates within a
split, NaN in a field outside the schema) is checked in tests/test_validation.py.
"""

from __future__ import annotations

import json
import math

from bad_input_case import Case

ADJECTIVES = [("wonderful", 1), ("dull", 0), ("moving", 1), ("tedious", 0), ("sharp", 1), ("clumsy", 0),
              ("charming", 1), ("hollow", 0)]


def reviews(n: int, *, label=None, score=None, repeat: int = 1, text_every: int = 1) -> str:
    """``n`` distinct sentiment records (ids 0..), each written ``repeat`` times under new ids; ``label`` and
    ``score`` (functions of the record's number) replace the defaults; every ``text_every``-th keeps its text."""
    lines = []
    for copy in range(repeat):
        for i in range(n):
            adjective, polarity = ADJECTIVES[i % len(ADJECTIVES)]
            record = {"id": str(copy * n + i), "source": "movie", "score": round(math.sin(i) * 3, 3),
                      "text": f"review {i}: a {adjective} film, scene {i % 7} and act {i % 5}",
                      "label": polarity if label is None else label(i)}
            if score is not None:
                record["score"] = score(i)
            if i % text_every:
                del record["text"]
            lines.append(json.dumps(record, allow_nan=True))
    return "\n".join(lines) + "\n"


def conllu_one_tag(n: int) -> str:
    """``n`` sentences of three tokens, every token tagged NOUN."""
    return "".join(f"# sent_id = s{i}\n1\tkedi{i}\t_\tNOUN\t_\t_\t0\troot\t_\t_\n2\tev\t_\tNOUN\t_\t_\t1\tnmod\t_\t_\n"
                   f"3\tyol{i % 9}\t_\tNOUN\t_\t_\t1\tnmod\t_\t_\n\n" for i in range(n))


REPORT = r"ExampleValidator found \d+ blocking anomal"
CASES = [
    # every record three times under new ids: eval/test sentences are train sentences (test leaks into train)
    Case("validation-every-record-three-times", "sentiment", {"reviews.jsonl": reviews(300, repeat=3)},
         "reviews.jsonl", message=REPORT + r"(.|\n)*split '(eval|test)', feature '\*': CROSS_SPLIT_DUPLICATES: \d+ of "
                                           r"\d+ records \(\d+\.\d%\) also occur in 'train' \(compared on 'label', "
                                           r"'text'\).*\[relax: example_validator\.max_cross_split_duplicates\]"),
    Case("validation-one-label-value", "sentiment", {"reviews.jsonl": reviews(300, label=lambda i: 1)},
         "reviews.jsonl", message=r"split 'train', feature 'label': SINGLE_VALUE_LABEL: every one of the \d+ train "
                                  r"examples has the label 1; the schema allows \[0, 1\]"),
    Case("validation-label-out-of-domain", "sentiment", {"reviews.jsonl": reviews(300, label=lambda i: i % 3)},
         "reviews.jsonl", message=r"feature 'label': OUT_OF_DOMAIN: values in \[0, 2\], domain \[0, 1\].*"
                                  r"\[relax: schema_gen\.curated_schema\]"),
    Case("validation-text-missing-too-often", "sentiment", {"reviews.jsonl": reviews(300, text_every=2)},
         "reviews.jsonl", message=r"feature 'text': FEATURE_MISSING_TOO_OFTEN: present in \d+\.\d% of examples.*"
                                  r"\[relax: example_validator\.max_missing_increase\]"),
    # NaN/inf in a numeric feature of the (inferred) schema, with the skew checks off
    Case("validation-nan-in-a-schema-feature", "sentiment",
         {"reviews.jsonl": reviews(300, score=lambda i: math.nan if i % 50 == 7 else float(i % 4))},
         "reviews.jsonl", args=("--set", "schema_gen.curated_schema=null", "--set", "example_validator.max_js=null",
                                "--set", "example_validator.max_linf=null"),
         message=r"feature 'score': NON_FINITE: \d+ NaN and 0 inf values \[relax: example_validator\.allow_non_finite\]"
                 r"\n      e\.g\. record \d+ of '\w+': \{.*\"score\": NaN"),
    Case("validation-inf-in-a-schema-feature", "sentiment",
         {"reviews.jsonl": reviews(300, score=lambda i: -math.inf if i == 11 else float(i % 4))},
         "reviews.jsonl", args=("--set", "schema_gen.curated_schema=null"),
         message=r"split '\w+', feature 'score': NON_FINITE: 0 NaN and 1 inf values"),
    # drift of the label between consecutive spans: 50% positive, then 95%
    Case("validation-label-drift-between-spans", "sentiment",
         {"reviews-1.jsonl": reviews(400), "reviews-2.jsonl": reviews(400, label=lambda i: int(i % 20 != 0))},
         "reviews-{SPAN}.jsonl",
         message=r"split 'train', feature 'label': DRIFT: L-infinity distance 0\.4\d+ from 'previous span'.*"
                 r"sampling allowance.*\[relax: example_validator\.max_linf\]"),
    # a tag set of one tag: nothing to learn (the inferred schema gives 'tags' a domain of one value, so this needs
    # the model's features wired: ExampleValidator(model_features=(text, tags)) or label_feature='tags')
    Case("validation-tagging-one-tag", "tagging", {"one_tag.conllu": conllu_one_tag(120)}, "one_tag.conllu",
         message=r"split 'train', feature 'tags': SINGLE_VALUE_LABEL: every one of the \d+ train examples has the "
                 r"label 'NOUN'"),
    # parameters out of range stop the run before anything runs
    Case("validation-max-js-above-one", "sentiment", args=("--set", "example_validator.max_js=1.5"), exit_code=2,
         message=r"config key 'example_validator\.max_js' must be >= 0 and <= 1, got 1\.5"),
    Case("validation-negative-duplicate-fraction", "tagging",
         args=("--set", "example_validator.max_cross_split_duplicates=-0.1"), exit_code=2,
         message=r"config key 'example_validator\.max_cross_split_duplicates' must be >= 0 and <= 1, got -0\.1"),
    Case("validation-negative-string-domain", "sentiment", args=("--set", "schema_gen.max_string_domain=-1"),
         exit_code=2, message=r"config key 'schema_gen\.max_string_domain' must be >= 0, got -1"),
]
