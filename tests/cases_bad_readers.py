"""Bad-input cases for the readers (tests/test_bad_inputs.py runs them): each stops in ExampleGen, before
anything is written, with a message naming the file and line (and byte offset), the key or the path.

A UTF-8 BOM, ids such as ``258_8`` and a text that is a number are not bad input: test_example_gen.py checks
that they are read as they are.
"""

from __future__ import annotations

from bad_input_case import Case

REVIEWS = '{"id": "1", "source": "movie", "text": "a fine film", "label": 1}\n'
SERIES = "timestamp,value\n" + "".join(f"2001-01-{d:02d},{d}.5\n" for d in range(1, 4))  # lines 2-4
# Own series need the window settings (no preset applies to data.path).
WINDOW = ("--set", "data.history=4", "--set", "data.horizon=2", "--set", "data.season=1")
TOKEN = "1\tev\tev\tNOUN\t_\t_\t0\troot\t_\t_\n"
TEXTS = ("--set", "data.holdout_every=3")  # three works make train, eval and test

CASES = [
    # sentiment, JSONL
    Case("sentiment-jsonl-not-utf8", "sentiment",
         {"reviews.jsonl": REVIEWS.encode() * 2 + b'{"id": "3", "source": "movie", "text": "caf\xe9", "label": 1}\n'},
         "reviews.jsonl", message=r"reviews\.jsonl:3: not valid UTF-8 at byte offset 175 \(0xe9\); re-save the file "
                                  r"as UTF-8"),
    Case("sentiment-jsonl-corrupt-line", "sentiment", {"reviews.jsonl": REVIEWS + '{"id": "2", "text": "cut\n'},
         "reviews.jsonl", message=r"reviews\.jsonl:2: not valid JSON"),
    Case("sentiment-jsonl-empty", "sentiment", {"reviews.jsonl": "\n\n"}, "reviews.jsonl",
         message=r"reviews\.jsonl: no records; the dataset is empty"),
    Case("sentiment-missing-file", "sentiment", {}, "absent.jsonl", message=r"data not found: \S*absent\.jsonl"),
    Case("sentiment-directory-as-data-path", "sentiment", {"folder.jsonl/": ""}, "folder.jsonl",
         message=r"folder\.jsonl: is a directory; data\.path must name a \.jsonl, \.csv or text file"),
    Case("sentiment-jsonl-declared-type", "sentiment",
         {"reviews.jsonl": REVIEWS + REVIEWS.replace('"a fine film"', "10")}, "reviews.jsonl",
         message=r"reviews\.jsonl:2: field 'text' is 10, not a string \(example_gen\.column_types "
                 r"declares 'text: string'\)"),
    # sentiment, CSV
    Case("sentiment-csv-column-count", "sentiment", {"reviews.csv": "id,source,text,label\n1,movie,fine,1\n"
                                                                   "2,movie,too, many,0\n"},
         "reviews.csv", message=r"reviews\.csv:3: expected 4 columns \(id, source, text, label\), got 5"),
    Case("sentiment-csv-declared-type", "sentiment", {"reviews.csv": "id,source,text,label\n1,movie,fine,1\n"
                                                                    "2,movie,dull,pos\n"},
         "reviews.csv", message=r"reviews\.csv:3: column 'label' is 'pos', not an int \(example_gen\.column_types "
                                r"declares 'label: int'\)"),
    Case("sentiment-csv-not-utf8", "sentiment", {"reviews.csv": b"id,source,text,label\n1,movie,na\xefve,1\n"},
         "reviews.csv", message=r"reviews\.csv:2: not valid UTF-8 at byte offset 31 \(0xef\)"),
    # forecasting, CSV
    Case("forecasting-inf-in-series", "forecasting", {"series.csv": SERIES + "2001-01-04,inf\n"}, "series.csv",
         args=WINDOW, message=r"series\.csv:5: column 'value' is 'inf', not a finite number; only empty or NaN "
                              r"cells count as missing"),
    Case("forecasting-nan-with-missing-reject", "forecasting", {"series.csv": SERIES + "2001-01-04,NaN\n"},
         "series.csv", args=(*WINDOW, "--set", "data.missing=reject"),
         message=r"series\.csv:5: column 'value' is 'NaN', a missing value; data\.missing is 'reject'"),
    Case("forecasting-unsorted-timestamps", "forecasting", {"series.csv": SERIES + "2001-01-02,7\n"}, "series.csv",
         args=WINDOW, message=r"series\.csv:5: timestamp '2001-01-02' does not come after '2001-01-03' \(line 4\)"),
    Case("forecasting-not-utf8", "forecasting", {"series.csv": SERIES.encode() + b"2001-01-04,\xa04\n"},
         "series.csv", args=WINDOW, message=r"series\.csv:5: not valid UTF-8 at byte offset 72 \(0xa0\)"),
    Case("forecasting-directory-as-data-path", "forecasting", {"series/": ""}, "series", args=WINDOW,
         message=r"series: is a directory; data\.path must name a CSV file"),
    # tagging, CoNLL-U
    Case("tagging-conllu-column-count", "tagging", {"bad.conllu": "# sent_id = s1\n" + TOKEN.replace("\t", " ", 3)},
         "bad.conllu", message=r"bad\.conllu:2: expected 10 tab-separated columns \(ID FORM .*\), got 7"),
    Case("tagging-conllu-missing-tag", "tagging", {"bad.conllu": "# sent_id = s1\n" + TOKEN.replace("NOUN", "_")},
         "bad.conllu", message=r"bad\.conllu:2: token 'ev' has no UPOS tag"),
    Case("tagging-conllu-not-utf8", "tagging",
         {"bad.conllu": b"# sent_id = s1\n1\tg\xf6z\tg\xf6z\tNOUN\t_\t_\t0\troot\t_\t_\n"}, "bad.conllu",
         message=r"bad\.conllu:2: not valid UTF-8 at byte offset 18 \(0xf6\)"),
    # textgen, a folder of text files
    Case("textgen-folder-not-utf8", "textgen", {"texts/a.txt": "To be.\n", "texts/b.txt": b"Or not\nto b\xe9.\n",
                                                "texts/c.txt": "That is.\n"},
         "texts", args=TEXTS, message=r"texts/b\.txt:2: not valid UTF-8 at byte offset 11 \(0xe9\)"),
    Case("textgen-folder-without-texts", "textgen", {"texts/notes.md": "no texts here\n"}, "texts", args=TEXTS,
         message=r"texts: no \.txt files in this folder"),
]
