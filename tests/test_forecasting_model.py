"""build_forecaster and AutoregressiveRNN: shapes, learning, serialization, tracing, argument checks."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from rnnpipe.models import (
    GRU,
    LSTM,
    AutoregressiveRNN,
    CorrectionShare,
    SeasonalDifference,
    SeasonalNaive,
    SimpleRNN,
    build_forecaster,
    choose_correction_share,
    inverse_error_weights,
)


def _sine_windows(n: int, history: int, horizon: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Windows of noisy sines with random phase and period 8..16: the next values follow from the past."""
    t = np.arange(history + horizon)
    period = rng.uniform(8, 16, size=(n, 1))
    series = np.sin(2 * np.pi * t[None, :] / period + rng.uniform(0, 2 * np.pi, size=(n, 1)))
    series += rng.normal(scale=0.05, size=series.shape)
    return series[:, :history, None].astype("float32"), series[:, history:].astype("float32")


@pytest.mark.parametrize(("cell", "strategy", "layer_type", "num_layers"), [
    ("gru", "direct", GRU, 1),
    ("lstm", "autoregressive", LSTM, 2),
    ("simple_rnn", "direct", SimpleRNN, 2),
])
def test_shapes_and_rnnpipe_layers(cell: str, strategy: str, layer_type: type, num_layers: int) -> None:
    model = build_forecaster(20, 5, cell=cell, units=6, num_layers=num_layers, strategy=strategy,
                             highway_length=10, recurrent_length=12)
    out = model(np.zeros((3, 20, 1), "float32"))
    assert tuple(out.shape) == (3, 5)
    found = [la for la in model._flatten_layers() if isinstance(la, layer_type)]
    assert len(found) == num_layers
    assert {la.name for la in model.layers} >= {"recurrent_window", "highway_window", "highway_flat", "highway"}


def test_the_rnn_reads_only_the_recurrent_window() -> None:
    keras.utils.set_random_seed(0)
    model = build_forecaster(16, 3, units=4, recurrent_length=6)
    x = np.random.default_rng(0).normal(size=(2, 16, 1)).astype("float32")
    changed = x.copy()
    changed[:, :10] = 5.0  # outside the last 6 steps, and no highway: no effect
    np.testing.assert_allclose(np.asarray(model(changed)), np.asarray(model(x)), atol=1e-6)
    changed[:, -1] += 1.0
    assert not np.allclose(np.asarray(model(changed)), np.asarray(model(x)))


@pytest.mark.parametrize("strategy", ["direct", "autoregressive"])
def test_learns_to_continue_sines(strategy: str) -> None:
    keras.utils.set_random_seed(1)
    rng = np.random.default_rng(1)
    x, y = _sine_windows(256, 24, 6, rng)
    x_test, y_test = _sine_windows(128, 24, 6, rng)
    model = build_forecaster(24, 6, units=16, strategy=strategy)
    model.compile(keras.optimizers.Adam(0.01), loss="mae")
    before = model.evaluate(x_test, y_test, verbose=0)
    model.fit(x, y, epochs=6, batch_size=32, verbose=0)
    after = model.evaluate(x_test, y_test, verbose=0)
    # Repeating the last value (naive) is the bar a forecaster of a sine must clear.
    naive = float(np.abs(y_test - x_test[:, -1:, 0]).mean())
    assert after < 0.5 * naive < before, (before, after, naive)


@pytest.mark.parametrize("strategy", ["direct", "autoregressive"])
def test_keras_file_round_trip_gives_identical_outputs(tmp_path, strategy: str) -> None:
    extra = {"seasonal_difference": True, "highway_l2": 0.01} if strategy == "direct" else {}
    model = build_forecaster(12, 4, cell="lstm", units=5, num_layers=2, strategy=strategy, dropout=0.1,
                             highway_length=6, seasonal_skip=3, **extra)
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(scale=0.3, size=w.shape) for w in model.get_weights()])
    x = rng.normal(size=(3, 12, 1)).astype("float32")
    expected = np.asarray(model(x))
    model.save(tmp_path / "forecaster.keras")
    loaded = keras.models.load_model(tmp_path / "forecaster.keras")
    np.testing.assert_array_equal(np.asarray(loaded(x)), expected)
    assert [type(la) for la in loaded.layers] == [type(la) for la in model.layers]


def test_autoregressive_layer_config_and_registration() -> None:
    layer = AutoregressiveRNN(7, cell="simple_rnn", units=3, num_layers=2, dropout=0.2, recurrent_dropout=0.1)
    config = layer.get_config()
    args = ["horizon", "cell", "units", "num_layers", "dropout", "recurrent_dropout"]
    assert {k: config[k] for k in args} == {"horizon": 7, "cell": "simple_rnn", "units": 3, "num_layers": 2,
                                            "dropout": 0.2, "recurrent_dropout": 0.1}
    assert AutoregressiveRNN.from_config(config).get_config() == config
    assert keras.saving.get_registered_name(AutoregressiveRNN) == "rnnpipe>AutoregressiveRNN"


def test_seasonal_skip_adds_last_seasons_values() -> None:
    history = np.arange(2 * 7, dtype="float32").reshape(2, 7, 1)
    # Horizon longer than the season: whole seasons back.
    np.testing.assert_array_equal(SeasonalNaive(3, 7)(history).numpy()[0], [4, 5, 6, 4, 5, 6, 4])
    np.testing.assert_array_equal(SeasonalNaive(1, 2)(history).numpy()[1], [13, 13])
    config = SeasonalNaive(3, 7, name="s").get_config()
    assert (config["season"], config["horizon"]) == (3, 7)
    assert keras.saving.get_registered_name(SeasonalNaive) == "rnnpipe>SeasonalNaive"
    # With every weight at zero, the forecaster is exactly seasonal-naive: training learns the correction.
    model = build_forecaster(7, 4, units=3, highway_length=7, seasonal_skip=3)
    model.set_weights([np.zeros_like(w) for w in model.get_weights()])
    np.testing.assert_array_equal(np.asarray(model(history)), SeasonalNaive(3, 4)(history).numpy())
    with pytest.raises(ValueError, match=r"static time of at least season=9 steps.*input_shape=\(2, 7, 1\)"):
        SeasonalNaive(9, 2)(history)


def test_a_base_forecast_is_an_input_the_network_starts_as_and_learns_to_correct() -> None:
    rng = np.random.default_rng(0)
    history = rng.normal(size=(64, 12, 1)).astype("float32")
    base = rng.normal(size=(64, 3)).astype("float32")
    model = build_forecaster(12, 3, units=4, base_forecast=True, season=4, seasonal_difference=True)
    inputs = {"history": history, "base": base}
    np.testing.assert_allclose(np.asarray(model(inputs)), base, atol=1e-6)  # untrained: the base forecast
    # The truth is the base plus the window's last value: the correction is learnt from the window.
    truth = base + history[:, -1, :]
    model.compile(optimizer=keras.optimizers.Adam(0.03), loss="mae")
    before = float(np.abs(np.asarray(model(inputs)) - truth).mean())
    model.fit(inputs, truth, epochs=60, batch_size=16, verbose=0)
    assert float(np.abs(np.asarray(model(inputs)) - truth).mean()) < 0.5 * before


def test_the_correction_share_chosen_on_held_out_windows_keeps_only_a_correction_that_helps_there() -> None:
    rng = np.random.default_rng(1)
    history = rng.normal(size=(48, 12, 1)).astype("float32")
    base = rng.normal(size=(48, 3)).astype("float32")
    model = build_forecaster(12, 3, units=4, base_forecast=True)
    direct = model.get_layer("direct")
    direct.set_weights([np.full_like(w, 0.2) for w in direct.get_weights()])  # a correction of 0.2 + ...
    inputs = {"history": history, "base": base}
    correction = np.asarray(model(inputs)) - base
    batches = [({"history": history[i:i + 16], "base": base[i:i + 16]}, t) for i, t in
               ((i, (base + 0.5 * correction)[i:i + 16]) for i in range(0, 48, 16))]
    chosen = choose_correction_share(model, batches)
    assert chosen["correction_share"] == 0.5 and chosen["eval_mae_chosen"] < 1e-5 < chosen["eval_mae_trained"]
    np.testing.assert_allclose(np.asarray(model(inputs)), base + 0.5 * correction, atol=1e-5)
    # Held-out truth that is the base forecast itself: none of the correction is kept.
    assert choose_correction_share(model, [(inputs, base)])["correction_share"] == 0.0
    # Three windows of horizon 3 span five values, under two horizons: too few to judge even an exact correction.
    few = choose_correction_share(model, [({"history": history[:3], "base": base[:3]}, (base + correction)[:3])])
    assert few["correction_share"] == 0.0 and few["eval_horizons"] == pytest.approx(5 / 3)
    assert few["eval_mae_trained"] < 1e-5 < few["eval_mae_chosen"]
    assert choose_correction_share(model, [({"history": history[:4], "base": base[:4]}, (base + correction)[:4])]
                                   )["correction_share"] == 1.0  # four windows span two horizons
    # The whole correction right on 28 windows and the wrong way on 20: lower error on average than none, but
    # within one standard error of it, so none is kept.
    sign = np.where(np.arange(48) % 12 < 7, 1.0, -1.0).astype("float32")[:, None]
    chosen = choose_correction_share(model, [(inputs, base + sign * correction)])
    assert chosen["correction_share"] == 0.0 and chosen["eval_mae_trained"] < chosen["eval_mae_base"]
    np.testing.assert_allclose(np.asarray(model(inputs)), base, atol=1e-6)
    assert model.get_layer("correction_share").get_config()["share"] == 1.0  # the initial share; the weight moved
    assert keras.saving.get_registered_name(CorrectionShare) == "rnnpipe>CorrectionShare"
    with pytest.raises(ValueError, match=r"`share` must be a number >= 0. Received: share=-1"):
        CorrectionShare(-1)


def test_held_out_windows_mix_theta_and_holt_winters_of_the_window_and_theta_of_the_series_into_the_base() -> None:
    rng = np.random.default_rng(2)
    t = np.arange(24, dtype="float32")
    history = (rng.normal(size=(32, 1)) + 0.3 * t + np.sin(2 * np.pi * t / 4)).astype("float32")[..., None]
    base = rng.normal(size=(32, 4)).astype("float32")
    series = (base + rng.normal(size=(32, 4))).astype("float32")  # Theta of the whole series, made outside
    model = build_forecaster(24, 4, units=4, base_forecast=True, base_alternative=4, series_theta=True)
    inputs = {"history": history, "base": base, "series_theta": series}
    np.testing.assert_allclose(np.asarray(model(inputs)), base, atol=1e-6)  # trained as the base's correction
    theta = np.asarray(model.get_layer("theta")(history))
    alternative = np.asarray(model.get_layer("alternative")(history))
    alternatives = {"theta_share": theta, "alternative_share": alternative, "series_theta_share": series}

    def weights(forecasts: list, truths: list) -> np.ndarray:  # the inverse eighth power of the errors
        inverse = np.array([np.mean([np.abs(f - y).mean() for y in truths]) ** -8 for f in forecasts])
        return inverse / inverse.sum()

    def expected(eval_truth: np.ndarray, train_truths: tuple = ()) -> dict:
        among = weights(list(alternatives.values()), [eval_truth, *train_truths])
        mix = sum(w * f for w, f in zip(among, alternatives.values(), strict=True))
        # Against the base: the mean of the weights on the eval windows alone and on all held-out windows.
        eval_only, pooled = (weights([base, mix], truths)[1] for truths in ([eval_truth], [eval_truth, *train_truths]))
        against_base = (eval_only + pooled) / 2
        return {n: against_base * w for n, w in zip(alternatives, among, strict=True)}

    truth = 0.3 * theta + 0.7 * base
    chosen = choose_correction_share(model, [(inputs, truth)])
    for name, share in expected(truth).items():
        assert chosen[name] == pytest.approx(share, rel=1e-3, abs=1e-6)
    served = base + sum(chosen[n] * (f - base) for n, f in alternatives.items())
    np.testing.assert_allclose(np.asarray(model(inputs)), served, atol=1e-4)
    assert chosen["eval_mae_base"] == pytest.approx(np.abs(base - truth).mean(), rel=1e-5)
    # A forecast (all but) without error takes all the weight.
    chosen = choose_correction_share(model, [(inputs, series)])
    assert chosen["series_theta_share"] == pytest.approx(1.0) and chosen["theta_share"] < 1e-6
    assert chosen["correction_share"] == 0.0
    np.testing.assert_allclose(np.asarray(model(inputs)), series, atol=1e-4)
    assert choose_correction_share(model, [(inputs, base)])["theta_share"] == 0.0
    # A forecast with no finite error (NaN forecasts) gets no weight.
    np.testing.assert_allclose(inverse_error_weights([1.0, float("nan"), 1.0]), [0.5, 0.0, 0.5])
    assert inverse_error_weights([float("nan"), float("inf")]).tolist() == [1.0, 0.0]
    # The training windows join the weights among the alternatives, and only half of the weight against the
    # base (its parameters were fitted there): three where the base alone is right do not outvote an eval split
    # where Holt-Winters is.
    chosen = choose_correction_share(model, [(inputs, alternative)], alternative_batches=[(inputs, base)] * 3)
    for name, share in expected(alternative, (base,) * 3).items():
        assert chosen[name] == pytest.approx(share, rel=1e-3, abs=1e-6)
    mix = sum(chosen[n] * f for n, f in alternatives.items()) / sum(chosen[n] for n in alternatives)
    pooled = weights([base, mix], [alternative, base, base, base])[1]
    assert sum(chosen[n] for n in alternatives) > 0.2 > 0.1 > pooled
    with pytest.raises(ValueError, match=r"`base_alternative` must be an integer in \[0, history_length / 2 = 12\], "
                                         r"and 0 without base_forecast"):
        build_forecaster(24, 4, base_alternative=4)


def test_seasonal_difference_channel_feeds_the_rnn() -> None:
    history = np.random.default_rng(0).normal(size=(2, 12, 1)).astype("float32")
    diff = SeasonalDifference(4)(history).numpy()
    np.testing.assert_allclose(diff, history[:, 4:] - history[:, :-4])
    assert SeasonalDifference(4).get_config()["season"] == 4
    assert keras.saving.get_registered_name(SeasonalDifference) == "rnnpipe>SeasonalDifference"
    model = build_forecaster(12, 3, units=4, seasonal_skip=4, seasonal_difference=True, recurrent_length=5)
    assert model.get_layer("gru_0").input.shape == (None, 5, 2)  # the last 5 values and their differences
    # Only the last 5 steps and the 5 steps a season before them reach the RNN (no highway here).
    changed = history.copy()
    changed[:, :3] += 3.0
    np.testing.assert_allclose(np.asarray(model(changed)), np.asarray(model(history)), atol=1e-6)
    changed[:, 3] += 3.0
    assert not np.allclose(np.asarray(model(changed)), np.asarray(model(history)))


def test_autoregressive_decoding_feeds_predictions_back() -> None:
    """Step h+1 equals one more cell step on prediction h: rebuild it by hand from the layer's parts."""
    keras.utils.set_random_seed(3)
    layer = AutoregressiveRNN(3, cell="gru", units=4)
    x = np.random.default_rng(3).normal(size=(2, 9, 1)).astype("float32")
    out = np.asarray(layer(x))
    encoder, head = layer.encoders[0], layer.head
    seq, state = encoder(x)
    first = head(seq[:, -1])
    step, _ = encoder.cell.recurrent_step(encoder.cell.project_inputs(first), [state])
    np.testing.assert_allclose(out[:, :1], np.asarray(first), atol=1e-6)
    np.testing.assert_allclose(out[:, 1:2], np.asarray(head(step)), atol=1e-6)


def test_traces_without_autograph_for_serving() -> None:
    model = build_forecaster(10, 4, strategy="autoregressive", units=4, num_layers=2, highway_length=10)
    fn = tf.function(lambda h: model(h, training=False), autograph=False)
    concrete = fn.get_concrete_function(tf.TensorSpec([None, 10, 1], tf.float32))
    x = np.ones((5, 10, 1), "float32")
    np.testing.assert_allclose(concrete(tf.constant(x)).numpy(), np.asarray(model(x)), atol=1e-6)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"history_length": 0}, r"`history_length` must be a positive integer.*Received: history_length=0"),
    ({"horizon": 2.5}, r"`horizon` must be a positive integer.*Received: horizon=2.5"),
    ({"cell": "transformer"}, r"`cell` must be one of 'gru', 'lstm', 'simple_rnn'.*Received: cell='transformer'"),
    ({"strategy": "recursive"}, r"`strategy` must be one of 'direct', 'autoregressive'"),
    ({"dropout": 1.0}, r"`dropout` must be a float in \[0, 1\).*Received: dropout=1.0"),
    ({"units": True}, r"`units` must be a positive integer.*Received: units=True"),
    ({"recurrent_length": 30}, r"`recurrent_length` must be at most history_length=24.*Received: recurrent_length=30"),
    ({"highway_length": -1}, r"`highway_length` must be an integer in \[0, history_length=24\].*Received: "
                             r"highway_length=-1"),
    ({"seasonal_skip": 25}, r"`seasonal_skip` must be an integer in \[0, history_length=24\].*Received: "
                            r"seasonal_skip=25"),
    ({"seasonal_difference": True}, r"seasonal_difference=True needs strategy='direct' and 0 < seasonal_skip \(or "
                                    r"holt_winters_skip or season\) < history_length=24.*Received: seasonal_skip=0"),
    ({"base_forecast": True, "seasonal_skip": 12}, r"`base_forecast` is the forecast for the network to correct: "
                                                   r"pass no skip beside it. Received: seasonal_skip=12"),
    ({"base_forecast": True, "strategy": "autoregressive"}, r"`base_forecast` needs strategy='direct'"),
    ({"season": -1}, r"`season` must be an integer >= 0. Received: season=-1"),
    ({"series_theta": True}, r"`series_theta` is a forecast to mix into the base forecast: it needs "
                             r"base_forecast=True. Received: series_theta=True, base_forecast=False"),
    ({"holt_winters_skip": 13}, r"`holt_winters_skip` must be an integer in \[0, history_length / 2 = 12\].*"
                                r"Received: holt_winters_skip=13"),
    ({"holt_winters_skip": 12, "seasonal_skip": 12}, r"pass one. Received: seasonal_skip=12, holt_winters_skip=12"),
    ({"seasonal_difference": True, "seasonal_skip": 12, "recurrent_length": 13},
     r"recurrent_length` must be at most history_length - seasonal_skip = 12.*Received: recurrent_length=13"),
    ({"seasonal_difference": 1}, r"`seasonal_difference` must be a bool.*Received: seasonal_difference=1"),
    ({"highway_l2": -0.1}, r"`highway_l2` must be a number >= 0.*Received: highway_l2=-0.1"),
    ({"strategy": "autoregressive", "num_features": 2}, r"needs num_features=1.*Received: num_features=2"),
])
def test_bad_arguments_raise_value_errors(kwargs: dict, message: str) -> None:
    args = {"history_length": 24, "horizon": 6, **kwargs}
    with pytest.raises(ValueError, match=message):
        build_forecaster(args.pop("history_length"), args.pop("horizon"), **args)


def test_autoregressive_layer_rejects_several_features() -> None:
    with pytest.raises(ValueError, match=r"history must be \[batch, time, 1\].*input_shape=\(2, 5, 3\)"):
        AutoregressiveRNN(2)(np.zeros((2, 5, 3), "float32"))


def test_the_run_summary_notes_when_held_out_windows_kept_less_than_the_networks_correction() -> None:
    from rnnpipe.pipelines.forecasting.model import share_note

    assert share_note({"correction_share": 0.0}) == (
        "the eval split kept 0% of the network's correction: the pushed model serves the ETS forecast alone")
    assert share_note({"correction_share": 0.5, "theta_share": 0.25, "alternative_share": 0.2}) == (
        "held-out windows mixed Theta of the window 25% and Holt-Winters of the window 20% into the ETS forecast, "
        "and the eval split kept 50% of the network's correction: the pushed model serves that mix")
    assert share_note({"correction_share": 0.0, "theta_share": 0.1, "alternative_share": 0.2,
                       "series_theta_share": 0.3}) == (
        "held-out windows mixed Theta of the window 10%, Holt-Winters of the window 20% and Theta of the whole "
        "series 30% into the ETS forecast, and the eval split kept 0% of the network's correction: the pushed model "
        "serves that mix")
    assert share_note({"correction_share": 0.0, "series_theta_share": 0.4}) == (
        "held-out windows mixed Theta of the whole series 40% into the ETS forecast, and the eval split kept 0% of "
        "the network's correction: the pushed model serves that mix")
    assert share_note({"correction_share": 0.0, "theta_share": 0.1, "eval_horizons": 1.75}) == (
        "held-out windows mixed Theta of the window 10% into the ETS forecast, and the eval split's values span 1.8 "
        "horizons, under the two it takes to judge the network's correction, so none of it is kept: the pushed "
        "model serves that mix")
    assert share_note({"correction_share": 0.0, "eval_horizons": 1.0}) == (
        "the eval split's values span 1 horizon, under the two it takes to judge the network's correction, so none "
        "of it is kept: the pushed model serves the ETS forecast alone")
    assert share_note({"correction_share": 0.8, "theta_share": 0.0, "alternative_share": 0.0}) is None
    assert share_note({}) is None
