"""Seq2Seq (fastrnn.nn), the forecaster and translator estimators, and make_dates.

Gradient tolerance: float64 model, central differences with step 1e-6; the norm-wise relative error
max|analytic - numeric| / max|numeric| must be below 1e-6 (observed: about 3e-8).
"""
import concurrent.futures
import datetime
import functools
import multiprocessing
import pickle
import re
import time
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning

import fastrnn
from fastrnn.datasets import make_dates
from fastrnn.datasets.dates import FORMATS
from fastrnn.nn import Seq2Seq
from fastrnn.seq2seq import Seq2SeqForecaster, Seq2SeqTranslator, sunspot_horizon_table

MIXED_SEED = 8  # with 5 steps and ratio 0.5 this seed forces steps [1, 1, 0, 1, 0]: three decoder segments


def small_model(cell="lstm", tokens=False, **kwargs):
    return Seq2Seq(2, 6 if tokens else 2, 5, cell=cell, embedding_dim=3 if tokens else None, dtype=np.float64,
                   backend="reference", random_state=1, **kwargs)


def small_problem(model, seed=0, batch=3, source_steps=5, target_steps=5):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, source_steps, model.input_size))
    lengths = np.array([source_steps, 3, 4][:batch])
    if model.tokens:
        target, start = rng.integers(0, model.output_size, (batch, target_steps)), 1
    else:
        target = rng.standard_normal((batch, target_steps, model.output_size))
        start = rng.standard_normal((batch, model.output_size))
    return x, lengths, target, start


def relative_error(actual, expected):
    return float(np.max(np.abs(actual - expected)) / max(float(np.max(np.abs(expected))), 1e-12))


@pytest.mark.parametrize("cell, tokens, ratio, extra", [
    ("lstm", False, 1.0, {}),                                               # teacher-forced path
    ("lstm", False, 0.0, {}),                                               # through own predictions
    ("lstm", False, 0.5, dict(num_layers=2, decoder_layers=1, bidirectional=True)),  # mixed segments
    ("gru", False, 0.5, dict(num_layers=2)),
    ("gru", True, 0.0, {}),                                                 # tokens: arg-max inputs
    ("lstm", True, 0.5, {}),
    # the context (encoder's final top-layer h) appended at every step; through the bridge and both directions
    ("lstm", False, 0.5, dict(decoder_input="previous+context", num_layers=2, decoder_layers=1, bidirectional=True)),
    ("gru", False, 0.0, dict(decoder_input="previous+context")),
    ("gru", True, 0.5, dict(decoder_input="previous+context")),
    ("lstm", False, 0.0, dict(decoder_input="context", num_layers=2)),        # no feedback: one fused call
])
def test_gradients_match_finite_differences(cell, tokens, ratio, extra):
    model = small_model(cell, tokens, **extra)
    x, lengths, target, start = small_problem(model)
    weights = np.random.default_rng(5).standard_normal((3, 5, model.output_size))

    def loss():
        z = model.forward(x, target, lengths, start, ratio, rng=MIXED_SEED, need_grad=False)
        return float(np.sum(z * weights))

    model.forward(x, target, lengths, start, ratio, rng=MIXED_SEED)
    if ratio == 0.5:
        assert model.last_teacher_forced.tolist() == [True, True, False, True, False]
    grad_x = model.backward(weights)
    assert set(model.grads) == set(model.params)
    eps = 1e-6
    for name, value in list(model.params.items()) + [("x", x)]:
        numeric = np.zeros_like(value)
        for index in np.ndindex(value.shape):
            old = value[index]
            value[index] = old + eps
            plus = loss()
            value[index] = old - eps
            minus = loss()
            value[index] = old
            numeric[index] = (plus - minus) / (2 * eps)
        analytic = grad_x if name == "x" else model.grads[name]
        assert relative_error(analytic, numeric) < 1e-6, name


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_backward_without_the_input_gradient_gives_the_same_parameter_gradients(cell):
    model = small_model(cell, num_layers=2, decoder_layers=1)
    x, lengths, target, start = small_problem(model)
    weights = np.random.default_rng(5).standard_normal((3, 5, model.output_size))
    model.forward(x, target, lengths, start, 0.5, rng=MIXED_SEED)
    assert model.backward(weights).shape == x.shape
    full = {name: g.copy() for name, g in model.grads.items()}
    model.forward(x, target, lengths, start, 0.5, rng=MIXED_SEED)
    assert model.backward(weights, need_input_grad=False) is None
    for name, g in model.grads.items():
        np.testing.assert_array_equal(g, full[name], err_msg=name)


def test_decoder_starts_from_the_encoders_top_layer_states():
    model = Seq2Seq(2, 2, 5, num_layers=2, decoder_layers=1, dtype=np.float64, backend="reference", random_state=3)
    x, lengths, target, start = small_problem(model)
    z = model.forward(x, target, lengths, start, teacher_forcing_ratio=1.0, need_grad=False)
    _, h_n, c_n = model.encoder.forward(x, lengths, need_grad=False)
    inputs = np.concatenate([start[:, None], target[:, :-1]], axis=1)
    out, _, _ = model.decoder.forward(inputs, None, h_n[1:], c_n[1:], need_grad=False)
    expected = out @ model.head.params["weight"].T + model.head.params["bias"]
    np.testing.assert_allclose(z, expected, rtol=1e-12, atol=1e-12)
    # the state is taken at each source's own end: padding beyond a length changes nothing
    x_padded = x.copy()
    x_padded[1, 3:] = 100.0
    np.testing.assert_allclose(model.forward(x_padded, target, lengths, start, need_grad=False), z, atol=1e-12)


def test_context_is_the_encoders_final_top_layer_state_at_every_step():
    model = Seq2Seq(2, 2, 5, num_layers=2, decoder_layers=1, decoder_input="previous+context", dtype=np.float64,
                    backend="reference", random_state=3)
    x, lengths, target, start = small_problem(model)
    z = model.forward(x, target, lengths, start, teacher_forcing_ratio=1.0, need_grad=False)
    _, h_n, c_n = model.encoder.forward(x, lengths, need_grad=False)
    previous = np.concatenate([start[:, None], target[:, :-1]], axis=1)
    inputs = np.concatenate([previous, np.repeat(h_n[1][:, None], 5, axis=1)], axis=2)
    out, _, _ = model.decoder.forward(inputs, None, h_n[1:], c_n[1:], need_grad=False)
    np.testing.assert_allclose(z, out @ model.head.params["weight"].T + model.head.params["bias"], atol=1e-12)
    # without feedback the decoder reads the context alone: targets and start are never read
    alone = Seq2Seq(2, 2, 5, decoder_input="context", dtype=np.float64, backend="reference", random_state=3)
    assert alone.decoder.input_size == 5 and model.decoder.input_size == 7
    z = alone.forward(x, target, lengths, start, teacher_forcing_ratio=1.0, need_grad=False)
    np.testing.assert_array_equal(z, alone.forward(x, target + 1.0, lengths, -start, 1.0, need_grad=False))
    np.testing.assert_allclose(z, alone.generate(x, 5, lengths), atol=1e-12)


def test_bidirectional_encoder_states_are_summed_per_layer():
    model = Seq2Seq(2, 2, 5, num_layers=2, bidirectional=True, cell="gru", dtype=np.float64, backend="reference",
                    random_state=4)
    x, lengths, target, start = small_problem(model)
    z = model.forward(x, target, lengths, start, need_grad=False)
    _, h_n = model.encoder.forward(x, lengths, need_grad=False)
    h0 = h_n.reshape(2, 2, 3, 5).sum(axis=1)  # (layers, directions, batch, hidden) summed over directions
    inputs = np.concatenate([start[:, None], target[:, :-1]], axis=1)
    out, _ = model.decoder.forward(inputs, None, h0, need_grad=False)
    np.testing.assert_allclose(z, out @ model.head.params["weight"].T + model.head.params["bias"], atol=1e-12)


def test_teacher_forcing_ratio_semantics():
    model = small_model()
    x, lengths, target, start = small_problem(model)
    changed = target.copy()
    changed[:, 1] += 1.0
    # ratio 1: step t reads target[t-1]; changing target[:, 1] changes step 2 on, never steps 0-1
    z1 = model.forward(x, target, lengths, start, 1.0, need_grad=False)
    z1_changed = model.forward(x, changed, lengths, start, 1.0, need_grad=False)
    np.testing.assert_array_equal(z1[:, :2], z1_changed[:, :2])
    assert not np.allclose(z1[:, 2], z1_changed[:, 2])
    assert model.last_teacher_forced.all()
    # ratio 0: the targets are never read; the output is greedy decoding
    z0 = model.forward(x, target, lengths, start, 0.0, need_grad=False)
    np.testing.assert_array_equal(z0, model.forward(x, changed, lengths, start, 0.0, need_grad=False))
    np.testing.assert_allclose(z0, model.generate(x, 5, lengths, start), atol=1e-12)
    assert model.last_teacher_forced.tolist() == [True, False, False, False, False]
    # in between: the same seed makes the same choices; steps read the truth exactly where forced
    zm = model.forward(x, target, lengths, start, 0.5, rng=MIXED_SEED, need_grad=False)
    forced = model.last_teacher_forced
    np.testing.assert_array_equal(zm, model.forward(x, target, lengths, start, 0.5, rng=MIXED_SEED, need_grad=False))
    np.testing.assert_array_equal(zm[:, :2], z1[:, :2])  # steps 0 and 1 are teacher forced under this seed
    assert not forced[2] and not np.allclose(zm[:, 2], z1[:, 2])
    draws = [model._forced_steps(400, 0.3, seed)[1:].mean() for seed in range(5)]
    assert abs(np.mean(draws) - 0.3) < 0.05
    with pytest.raises(ValueError, match="teacher_forcing_ratio"):
        model.forward(x, target, lengths, start, 1.5)


def test_greedy_decoding_is_deterministic_and_stops_at_the_end_token():
    model = small_model(tokens=True)
    x, lengths, _, _ = small_problem(model)
    first = model.generate(x, 8, lengths, start=1)
    np.testing.assert_array_equal(first, model.generate(x, 8, lengths, start=1))
    np.testing.assert_array_equal(first, pickle.loads(pickle.dumps(model)).generate(x, 8, lengths, start=1))
    end = int(first[0, 2])
    stopped = model.generate(x, 8, lengths, start=1, end_token=end)
    for row, full in zip(stopped, first):
        hits = np.flatnonzero(full == end)
        stop = hits[0] if len(hits) else 8
        np.testing.assert_array_equal(row[:stop + 1], full[:stop + 1])
        assert (row[stop:] == end).all()


def test_seq2seq_rejects_bad_configuration_and_input():
    with pytest.raises(ValueError, match="cell must be one of"):
        Seq2Seq(2, 2, 4, cell="rnn")
    with pytest.raises(ValueError, match="decoder_layers"):
        Seq2Seq(2, 2, 4, num_layers=1, decoder_layers=2)
    with pytest.raises(ValueError, match="hidden_size must be a positive integer"):
        Seq2Seq(2, 2, 0)
    with pytest.raises(ValueError, match="decoder_input must be one of"):
        Seq2Seq(2, 2, 4, decoder_input="attention")
    with pytest.raises(ValueError, match="decoder_input='context'"):
        Seq2Seq(2, 6, 4, embedding_dim=3, decoder_input="context")
    model = small_model()
    x, lengths, target, start = small_problem(model)
    with pytest.raises(ValueError, match="target must have shape"):
        model.forward(x, target[:, :, :1], lengths, start)
    with pytest.raises(ValueError, match="start must have shape"):
        model.forward(x, target, lengths, start[:, :1])
    with pytest.raises(ValueError, match="features per step"):
        model.forward(x[:, :, :1], target, lengths, start)
    with pytest.raises(RuntimeError, match="preceding forward"):
        small_model().backward(np.zeros((3, 5, 2)))
    tokens = small_model(tokens=True)
    with pytest.raises(ValueError, match="start token"):
        tokens.forward(x, np.zeros((3, 5), dtype=int), lengths)
    with pytest.raises(ValueError, match=r"token targets must lie in \[0, 6\)"):
        tokens.forward(x, np.full((3, 5), 6), lengths, start=1)


# ---------------------------------------------------------------------------------------------- estimators
def test_forecaster_against_the_naive_and_recursive_forecasts(monkeypatch):
    # All 12 seeds of sunspot_horizon_table's docstring (about 25 s single-threaded): naive 72.2, recursive one-step
    # LSTM 37.1, seq2seq 33.9. The seq2seq wins 9 of 12 seeds and never exceeds 36.0; the recursive fits range from
    # 32.8 to 44.7, so smaller seed groups can tie (seeds 6-11: 34.3 / 33.8).
    # Seeds 0-5 and 6-11 are fitted in two processes at once, a Numba thread each (a fit is the same on any
    # number of threads), and the table is the mean of the halves' means: most of a fit this small is Python.
    monkeypatch.setenv("NUMBA_NUM_THREADS", "1")
    spawn = multiprocessing.get_context("spawn")  # not fork: this process's OpenMP pool may be running
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=spawn) as pool:
        halves = list(pool.map(functools.partial(sunspot_horizon_table, n_seeds=6), (0, 6)))
    table = {name: (halves[0][name] + halves[1][name]) / 2 for name in halves[0]}
    print(table)
    assert table["seq2seq"] < 0.6 * table["naive"]
    assert table["seq2seq"] < table["recursive_lstm"] - 1.5


def test_forecaster_shapes_scaling_and_start_values():
    rng = np.random.default_rng(0)
    t = np.arange(400) * 0.3
    series = np.stack([np.sin(t), np.cos(t)], axis=1) * 50 + 100
    X, y = fastrnn.make_windows(series, window=10, horizon=4)              # (n, 10, 2), (n, 4, 2)
    model = Seq2SeqForecaster(hidden_size=16, max_epochs=30, random_state=0).fit(X, y)
    assert model.predict(X[:5]).shape == (5, 4, 2) and model.horizon_ == 4 and model._start_from_inputs
    assert model.score(X, y) > 0.9
    uni = Seq2SeqForecaster(hidden_size=8, max_epochs=3, start="zeros", random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        uni.fit(X[:, :, 0], y[:, :, 0] + rng.normal(size=y[:, :, 0].shape))
    assert uni.predict(X[:3, :, 0]).shape == (3, 4) and not uni._start_from_inputs


def test_window_scaling_forecasts_shapes_not_levels():
    t = np.arange(300) * 0.4
    series = np.sin(t) * (1 + t / 40) + t / 20                              # rising level and amplitude
    X, y = fastrnn.make_windows(series, window=12, horizon=3)
    params = dict(hidden_size=8, max_epochs=3, random_state=0, dtype="float64")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = Seq2SeqForecaster(**params).fit(X, y)                         # scaling="auto": by window
        affine = Seq2SeqForecaster(**params).fit(5 * X - 3, 5 * y - 3)
        global_ = Seq2SeqForecaster(scaling="global", **params).fit(X, y)
    assert model._window_scaling and not global_._window_scaling
    pred = model.predict(X)
    # a window's own mean and spread are taken out before the network and put back after it
    np.testing.assert_allclose(model.predict(X + 100.0), pred + 100.0, atol=1e-9)
    assert not np.allclose(global_.predict(X + 100.0), global_.predict(X) + 100.0, atol=1e-3)
    # the floor is a tenth of the training data's spread, so training is unit-free too
    np.testing.assert_allclose(affine.predict(5 * X - 3), 5 * pred - 3, rtol=1e-6, atol=1e-6)


def test_translator_learns_dates():
    train_sources, train_targets = make_dates(3000, random_state=0)
    test_sources, test_targets = make_dates(600, random_state=1)
    seen = set(train_sources)
    held_out = [(s, t) for s, t in zip(test_sources, test_targets) if s not in seen]
    start = time.perf_counter()
    # 25 epochs: at 15 the accuracy depended on float32 rounding (seeds 0-2 gave 0.87-0.99, and seed 0
    # 0.99 in a process that compiled the kernels but 0.88 in one loading them from Numba's cache); at 25
    # seeds 0-3 gave 0.96-0.997 either way
    model = Seq2SeqTranslator(hidden_size=128, batch_size=32, max_epochs=25, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(train_sources, train_targets)
    seconds = time.perf_counter() - start
    accuracy = model.score([s for s, _ in held_out], [t for _, t in held_out])
    print(f"date translation: {accuracy:.4f} exact match on {len(held_out)} held-out pairs, {seconds:.1f}s training")
    assert accuracy >= 0.9  # the full budget (10k pairs, 10 epochs) reaches >= 0.99: see the report
    prediction = model.predict(["Nov 25, 2026", "the 1st of March, 1999"])
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d", p) for p in prediction)


def test_make_dates_is_seeded_and_its_formats_are_valid():
    sources, targets = make_dates(600, random_state=7)
    assert (sources, targets) == make_dates(600, random_state=7)
    assert sources != make_dates(600, random_state=8)[0]
    patterns = ["%d %B %Y", "%d %b %Y", "%b %d, %Y", "%B %d, %Y", "%m/%d/%Y", "%d.%m.%y", "%A, %B %d, %Y",
                "%Y %b %d", "%a, %d %b %Y", "the %d of %B, %Y", "%b %d %Y"]
    weekdays = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
    for source, target in zip(sources, targets):
        date = datetime.date.fromisoformat(target)
        assert datetime.date(1969, 1, 1) <= date <= datetime.date(2068, 12, 31)
        plain = re.sub(r"(?<=\d)(st|nd|rd|th)\b", "", source).title().replace("The ", "the ").replace(" Of ", " of ")
        parsed = set()
        for pattern in patterns:
            try:
                parsed.add(datetime.datetime.strptime(plain, pattern).date())
            except ValueError:
                pass
        assert parsed == {date}, (source, target, parsed)
        for name in weekdays:
            if name[:3] in source:
                assert date.weekday() == weekdays.index(name)
    from fastrnn.datasets.dates import format_date
    assert format_date(datetime.date(2026, 11, 25), "weekday, month day, year") == "Wednesday, November 25, 2026"
    assert format_date(datetime.date(2026, 11, 25), "european dotted") == "25.11.26"
    assert len({s for s in sources if "the " in s}) > 0 and len(FORMATS) >= 6
    with pytest.raises(ValueError, match="n_samples must be a positive integer"):
        make_dates(0)


def test_estimators_reject_bad_parameters_and_input():
    X, y = np.zeros((10, 5)), np.zeros((10, 3))
    for params, match in ((dict(teacher_forcing_ratio=2), "teacher_forcing_ratio"),
                          (dict(hidden_size=0), "hidden_size"), (dict(cell="rnn"), "cell must be"),
                          (dict(start="first"), "start must be"), (dict(learning_rate=-1), "learning_rate"),
                          (dict(decoder_input="none"), "decoder_input must be"), (dict(scaling="minmax"), "scaling")):
        with pytest.raises(ValueError, match=match):
            Seq2SeqForecaster(**params).fit(X, y)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        Seq2SeqForecaster().fit(X, y[:5])
    with pytest.raises(ValueError, match="start='last'"):
        Seq2SeqForecaster(start="last").fit(np.zeros((10, 5, 2)), y)
    with pytest.raises(ValueError, match="scaling='window'"):
        Seq2SeqForecaster(scaling="window").fit(np.zeros((10, 5, 2)), y)
    with pytest.raises(TypeError, match="list of strings"):
        Seq2SeqTranslator().fit("abc", "def")
    with pytest.raises(TypeError, match=r"sources\[1\]"):
        Seq2SeqTranslator().fit(["a", 3], ["b", "c"])
    with pytest.raises(ValueError, match="equally long"):
        Seq2SeqTranslator().fit(["a", "b"], ["c"])
    with pytest.raises(ValueError, match="embedding_dim"):
        Seq2SeqTranslator(embedding_dim=0).fit(["a"], ["b"])


@pytest.fixture(scope="module")
def fitted():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        series = fastrnn.datasets.load_sunspots()
        X, y = fastrnn.make_windows(series, window=12, horizon=3)
        forecaster = Seq2SeqForecaster(hidden_size=8, max_epochs=2, random_state=0).fit(X, y)
        sources, targets = make_dates(200, random_state=0)
        translator = Seq2SeqTranslator(hidden_size=16, max_epochs=1, random_state=0).fit(sources, targets)
    return forecaster, X, translator, sources


def test_unknown_characters_raise_a_clear_error(fitted):
    translator = fitted[2]
    with pytest.raises(ValueError, match=r"characters not seen in fit: \['é'\]"):
        translator.predict(["25 décembre 2026"])


def test_pickle_round_trip_and_clone(fitted):
    forecaster, X, translator, sources = fitted
    for model, data in ((forecaster, X[:20]), (translator, sources[:20])):
        copy = pickle.loads(pickle.dumps(model))
        assert np.array_equal(np.asarray(copy.predict(data)), np.asarray(model.predict(data)))
        fresh = clone(model)
        assert fresh.get_params() == model.get_params() and not hasattr(fresh, "model_")
    with pytest.raises(ValueError, match="features per time step"):
        forecaster.predict(np.zeros((2, 12, 3)))


def test_top_level_names():
    assert fastrnn.Seq2SeqForecaster is Seq2SeqForecaster and fastrnn.Seq2SeqTranslator is Seq2SeqTranslator
    assert fastrnn.nn.Seq2Seq is Seq2Seq and fastrnn.datasets.make_dates is make_dates
