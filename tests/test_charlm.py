"""fastrnn.CharLM, the character-level language model: gradients, state carry, learning, sampling,
input checks, pickling and the ``generate`` command."""
import math
import os
import pickle
import subprocess
import sys
import time

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning, NotFittedError

import fastrnn
from fastrnn.charlm import CharLM, _log_softmax, evaluation_windows
from fastrnn.datasets import load_shakespeare

PATTERN = "the cat sat on the mat. " * 40


def tiny_model(cell="lstm", dtype="float64", text=PATTERN, **params):
    """A CharLM fitted for one short epoch: real weights and vocabulary, ready for exact checks."""
    settings = dict(cell=cell, hidden_size=6, num_layers=2, embedding_size=5, seq_len=8, batch_size=3,
                    max_epochs=1, dtype=dtype, random_state=0)
    settings.update(params)
    return CharLM(**settings).fit(text)


def chunk_loss(model, x, y, state):
    """Mean cross-entropy (nats) of one chunk, forward only; returns (loss, state)."""
    logits, state = model._forward(x, state, need_grad=False)
    log_p = _log_softmax(logits)
    return -log_p[np.arange(len(log_p)), y.reshape(-1)].mean(), state


def random_chunk(model, batch=3, steps=7, seed=1):
    """Class indices x, y (batch, steps) and a non-zero initial state, as a carried state would be."""
    rng = np.random.default_rng(seed)
    V = len(model.vocabulary_)
    x, y = rng.integers(0, V, (batch, steps)), rng.integers(0, V, (batch, steps))
    h, c = model._zero_state(batch)
    h = rng.uniform(-0.5, 0.5, h.shape)
    c = None if c is None else rng.uniform(-0.5, 0.5, c.shape)
    return x, y, (h, c)


# ---------------------------------------------------------------- gradients
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_gradients_match_finite_differences(cell):
    # The whole model (embedding + 2-layer stack + head + softmax cross-entropy) in float64 against
    # central differences on 4 random entries of every parameter; tolerance 1e-6 relative to the
    # largest gradient entry of the tensor, far above the O(eps^2) ~ 1e-12 truncation error.
    model = tiny_model(cell)
    x, y, state = random_chunk(model)
    model._loss_and_grads(x, y, state)
    grads = {k: v.copy() for k, v in model._gradients().items()}
    params = model._parameters()
    assert set(grads) == set(params)
    rng = np.random.default_rng(0)
    eps = 1e-6
    for name, value in params.items():
        scale = max(np.abs(grads[name]).max(), 1e-8)
        for flat in rng.choice(value.size, size=min(4, value.size), replace=False):
            index = np.unravel_index(flat, value.shape)
            original = value[index]
            value[index] = original + eps
            plus, _ = chunk_loss(model, x, y, state)
            value[index] = original - eps
            minus, _ = chunk_loss(model, x, y, state)
            value[index] = original
            numeric = (plus - minus) / (2 * eps)
            assert abs(numeric - grads[name][index]) <= 1e-6 * scale, (name, index, numeric, grads[name][index])


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_gradients_match_pytorch(cell):
    # The same model in PyTorch (nn.Embedding -> nn.LSTM/GRU(batch_first) -> nn.Linear, mean
    # cross-entropy), same float64 weights and initial state: the loss and every gradient agree to
    # rtol 1e-9 / atol 1e-12 (float64 rounding differences only).
    torch = pytest.importorskip("torch")
    model = tiny_model(cell)
    x, y, state = random_chunk(model, batch=4, steps=9)
    loss, _ = model._loss_and_grads(x, y, state)
    grads = model._gradients()

    V, E, H, L = len(model.vocabulary_), model.embedding_size, model.hidden_size, model.num_layers
    net = torch.nn.ModuleDict({"embedding": torch.nn.Embedding(V, E),
                               "rnn": getattr(torch.nn, cell.upper())(E, H, num_layers=L, batch_first=True),
                               "head": torch.nn.Linear(H, V)}).double()
    net.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    h0 = torch.from_numpy(state[0])
    initial = (h0, torch.from_numpy(state[1])) if cell == "lstm" else h0
    out, _ = net["rnn"](net["embedding"](torch.from_numpy(x)), initial)
    logits = net["head"](out)
    torch_loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), torch.from_numpy(y).reshape(-1))
    torch_loss.backward()
    assert loss == pytest.approx(torch_loss.item(), rel=1e-12)
    for name, param in net.named_parameters():
        np.testing.assert_allclose(grads[name], param.grad.numpy(), rtol=1e-9, atol=1e-12, err_msg=name)


# ---------------------------------------------------------------- state carry
def test_state_carried_across_chunks_equals_one_pass():
    model = tiny_model("lstm")
    x, y, state = random_chunk(model, batch=3, steps=12)
    whole, _ = chunk_loss(model, x, y, state)
    first, carried = chunk_loss(model, x[:, :5], y[:, :5], state)
    second, _ = chunk_loss(model, x[:, 5:], y[:, 5:], carried)
    assert (5 * first + 7 * second) / 12 == pytest.approx(whole, rel=1e-12)
    # training steps carry the state the same way (forward part of the training loss)
    loss_a, carried = model._loss_and_grads(x[:, :5], y[:, :5], state)
    loss_b, _ = model._loss_and_grads(x[:, 5:], y[:, 5:], carried)
    assert (5 * loss_a + 7 * loss_b) / 12 == pytest.approx(whole, rel=1e-12)


def test_predict_log_proba_continues_from_a_state_and_score_matches_it():
    model = tiny_model("gru", dtype="float32")
    text = PATTERN[:150]
    whole = model.predict_log_proba(text)
    assert whole.shape == (150, len(model.vocabulary_))
    np.testing.assert_allclose(np.exp(whole).sum(axis=1), 1.0, rtol=1e-5)
    head, state = model.predict_log_proba(text[:61], return_state=True)
    tail = model.predict_log_proba(text[61:], state=state)
    np.testing.assert_allclose(np.concatenate([head, tail]), whole, rtol=1e-5, atol=1e-5)
    # score = mean -log2 p of each character after the first: exact for a text short enough to be
    # read as one stream (< 4 * seq_len), close for one read as overlapping parallel streams
    ids = np.array([model.vocabulary_.index(c) for c in text])
    sequential = -whole[np.arange(149), ids[1:]] / math.log(2)
    assert model.score(text[:30]) == pytest.approx(sequential[:29].mean(), rel=1e-5)
    assert model.score(text) == pytest.approx(sequential.mean(), abs=0.01)
    assert model.bits_per_character(text) == model.score(text)


@pytest.mark.parametrize("n,context", [(2, 5), (50, 10), (1001, 8), (10_000, 100), (98_439, 100)])
def test_evaluation_windows_score_every_character_once_with_context(n, context):
    starts, width, mask = evaluation_windows(n, context)
    assert mask.sum() == n - 1 and starts.min() >= 0 and starts.max() + width <= n - 1
    positions = starts[:, None] + 1 + np.arange(width)[None, :]
    scored = positions[mask > 0]
    assert sorted(scored) == list(range(1, n))
    read = np.broadcast_to(np.arange(1, width + 1)[None, :], mask.shape)   # characters read in the stream
    context_seen = read[mask > 0]
    assert np.all(context_seen >= np.minimum(context, scored))
    assert mask.size <= 1.25 * n + width


# ---------------------------------------------------------------- learning
def test_learns_real_structure_beyond_the_unigram_baseline():
    text = load_shakespeare(["hamlet"])["hamlet"]
    train, validation = text[:120_000], text[120_000:140_000]
    model = CharLM(hidden_size=128, num_layers=1, embedding_size=32, seq_len=64, batch_size=32,
                   learning_rate=5e-3, max_epochs=50, max_time=12.0, validation_interval=40,
                   vocabulary=text, random_state=0)
    start = time.perf_counter()
    model.fit(train, validation)
    assert time.perf_counter() - start < 12.0 + 3.0           # the time budget holds
    # unigram baseline: the validation text's cross-entropy under the training characters' frequencies
    counts = np.array([train.count(c) for c in model.vocabulary_], dtype=float) + 0.5
    log2_p = np.log2(counts / counts.sum())
    unigram = -np.mean([log2_p[model.vocabulary_.index(c)] for c in validation[1:]])
    assert 4.0 < unigram < 5.0
    bpc = model.score(validation)
    assert bpc == pytest.approx(model.validation_bpc_[-1], abs=0.02)
    assert bpc < unigram - 0.7, (bpc, unigram, model.n_iter_)
    assert len(model.loss_curve_) == len(model.validation_bpc_) >= 2
    assert model.loss_curve_[-1] < model.loss_curve_[0]


@pytest.fixture(scope="module")
def pattern_model():
    return CharLM(hidden_size=32, num_layers=1, embedding_size=8, seq_len=24, batch_size=8, learning_rate=1e-2,
                  max_epochs=60, random_state=0).fit(PATTERN)


# ---------------------------------------------------------------- sampling
def test_sampling_is_reproducible_and_uses_the_vocabulary(pattern_model):
    a = pattern_model.sample(200, random_state=7)
    assert a == pattern_model.sample(200, random_state=7)
    assert len(a) == 200 and set(a) <= set(pattern_model.vocabulary_)
    assert a != pattern_model.sample(200, temperature=2.0, random_state=8)
    assert pattern_model.sample(0) == ""


def test_sampling_continues_the_prime(pattern_model):
    # the model has learnt the repeated sentence: greedy decoding continues it where the prime stops
    assert pattern_model.sample(12, prime="the cat s", temperature=0) == "at on the ma"
    assert pattern_model.sample(8, prime="sat on the ", temperature=0) == "mat. the"


def test_temperature_reshapes_the_next_character_distribution(pattern_model):
    # The first sampled character follows softmax(logits / T): its empirical frequencies over 400
    # seeds match that distribution within 5 binomial standard deviations, for T = 0.5, 1 and 3.
    prime = "the c"
    log_p = pattern_model.predict_log_proba(prime)[-1].astype(np.float64)
    n = 400
    for temperature in (0.5, 1.0, 3.0):
        expected = np.exp(log_p / temperature)
        expected /= expected.sum()
        draws = [pattern_model.sample(1, prime=prime, temperature=temperature, random_state=s) for s in range(n)]
        freq = np.array([draws.count(c) for c in pattern_model.vocabulary_]) / n
        assert np.all(np.abs(freq - expected) <= 5 * np.sqrt(expected * (1 - expected) / n) + 1.0 / n), temperature
    top = pattern_model.vocabulary_[int(np.argmax(log_p))]
    assert {pattern_model.sample(1, prime=prime, temperature=0, random_state=s) for s in range(5)} == {top}


# ---------------------------------------------------------------- unknown characters and bad input
def test_unknown_characters_raise_a_value_error_naming_them(pattern_model):
    for call in (lambda: pattern_model.score("the dog"), lambda: pattern_model.sample(5, prime="Zebra"),
                 lambda: pattern_model.predict_log_proba("the cat!")):
        with pytest.raises(ValueError, match="outside the model's vocabulary"):
            call()
    with pytest.raises(ValueError, match=r"'Z'"):
        pattern_model.sample(5, prime="Zebra")
    model = CharLM(hidden_size=4, num_layers=1, max_epochs=1)
    with pytest.raises(ValueError, match=r"validation_text .*'!'"):
        model.fit(PATTERN, validation_text="the mat!")
    assert not hasattr(model, "vocabulary_")                     # nothing half-fitted
    # the documented way out: a vocabulary that includes them
    model.set_params(vocabulary=PATTERN + "!").fit(PATTERN, validation_text="the mat!")
    assert "!" in model.vocabulary_ and np.isfinite(model.validation_bpc_[-1])


@pytest.mark.parametrize("params,error,match", [
    (dict(cell="lstmx"), ValueError, "cell must be one of"),
    (dict(hidden_size=0), ValueError, "hidden_size must be a positive integer"),
    (dict(seq_len=2.5), ValueError, "seq_len must be a positive integer"),
    (dict(batch_size=True), ValueError, "batch_size must be a positive integer"),
    (dict(dropout=1.0), ValueError, r"dropout must be in \[0, 1\)"),
    (dict(learning_rate=-1.0), ValueError, "learning_rate must be positive"),
    (dict(learning_rate="fast"), TypeError, "learning_rate must be a number"),
    (dict(clip_grad_norm=0), ValueError, "clip_grad_norm must be positive or None"),
    (dict(max_time=0), ValueError, "max_time must be a positive number"),
    (dict(validation_interval=0), ValueError, "validation_interval must be a positive integer"),
    (dict(dtype="float16"), ValueError, "dtype must be"),
    (dict(vocabulary=["a", "b"]), TypeError, "vocabulary must be None or a non-empty string"),
])
def test_bad_parameters_are_rejected_at_fit(params, error, match):
    with pytest.raises(error, match=match):
        CharLM(**params).fit(PATTERN)


def test_bad_inputs_are_rejected(pattern_model):
    with pytest.raises(TypeError, match="string or a list of strings"):
        CharLM().fit(123)
    with pytest.raises(TypeError, match="decode them first"):
        CharLM().fit(b"bytes")
    with pytest.raises(ValueError, match="at least 2 characters"):
        CharLM().fit("a")
    with pytest.raises(ValueError, match="vocabulary"):
        CharLM(vocabulary="abc", max_epochs=1).fit("abcd")
    with pytest.raises(NotFittedError):
        CharLM().sample(10)
    with pytest.raises(ValueError, match="n_chars must be a non-negative integer"):
        pattern_model.sample(-1)
    with pytest.raises(ValueError, match="temperature must be a finite number >= 0"):
        pattern_model.sample(5, temperature=-0.5)
    with pytest.raises(TypeError, match="prime must be a string"):
        pattern_model.sample(5, prime=3)
    with pytest.raises(ValueError, match="at least 2 characters"):
        pattern_model.score("t")


def test_fit_accepts_a_list_of_strings_and_is_deterministic():
    a = CharLM(hidden_size=8, num_layers=1, seq_len=10, batch_size=4, max_epochs=2, random_state=3)
    b = clone(a)
    a.fit(["the cat", "sat on the mat"])
    b.fit("the cat\n\nsat on the mat")
    assert a.vocabulary_ == b.vocabulary_ and a.loss_curve_ == b.loss_curve_
    for name, value in a.state_dict().items():
        np.testing.assert_array_equal(value, b.state_dict()[name])


def test_dropout_trains_and_is_off_when_scoring():
    model = CharLM(hidden_size=16, num_layers=2, seq_len=12, batch_size=4, dropout=0.3, max_epochs=3,
                   random_state=0).fit(PATTERN)
    assert model.score(PATTERN[:100]) == model.score(PATTERN[:100])


def test_divergence_warns_and_keeps_the_last_finite_weights():
    model = CharLM(hidden_size=8, num_layers=1, seq_len=10, batch_size=4, learning_rate=1e38, clip_grad_norm=None,
                   max_epochs=20, random_state=0)
    with pytest.warns(ConvergenceWarning, match="training diverged"):
        model.fit(PATTERN)
    assert all(np.all(np.isfinite(v)) for v in model.state_dict().values())
    assert np.isfinite(model.score(PATTERN[:50]))


def test_pickle_round_trip(pattern_model):
    same = pickle.loads(pickle.dumps(pattern_model))
    assert same.score(PATTERN[:200]) == pattern_model.score(PATTERN[:200])
    assert same.sample(50, prime="the", random_state=1) == pattern_model.sample(50, prime="the", random_state=1)
    assert fastrnn.CharLM is CharLM


# ---------------------------------------------------------------- command line
def test_generate_command_trains_within_its_budget_and_prints_samples(tmp_path):
    # The budget covers training; a first-ever Numba compile (20-40 s on a fresh machine) cannot be cut
    # short, so this checks the budget on the ahead-of-time compiled kernels where they are built.
    env = dict(os.environ)
    if "cython" in fastrnn.available_backends():
        env["FASTRNN_BACKEND"] = "cython"
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "fastrnn", "generate", "--minutes", "0.1", "--hidden-size", "32",
                           "--num-layers", "1", "--seed", "1", "--length", "80", "--eval-every", "5"],
                          capture_output=True, text=True, timeout=300, env=env,
                          cwd=tmp_path)  # the installed package, not the source tree
    elapsed = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr
    assert "validation" in proc.stderr and "bpc" in proc.stderr    # progress lines
    assert "bits per character" in proc.stdout
    for temperature in ("0.5", "1"):
        assert f"sample at temperature {temperature} ---" in proc.stdout
    samples = proc.stdout.split("---\n")[1:]
    assert len(samples) == 2 and all(len(s.strip()) > 0 for s in samples)
    fit_seconds = float(proc.stdout.split(" s;")[0].split(" in ")[-1])
    assert fit_seconds <= 6.0 + 1.0                                # 0.1 min budget (+ scheduling slack)
    assert elapsed < 60
