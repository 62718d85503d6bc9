"""Character-level language model, fastrnn vs PyTorch at equal wall-clock time; prints a Markdown table.

    python bench/charlm.py [--minutes 2] [--threads 2] [--cell lstm] [--hidden-size 256] [--num-layers 2]
                           [--embedding-size 64] [--seq-len 100] [--batch-size 64] [--learning-rate 2e-3]
                           [--seed 0] [--validation-play tempest] [--markdown-out FILE]

Both systems train the same model — embedding, recurrent stack, linear head, softmax cross-entropy —
on the shipped Shakespeare plays except the validation play, from the same initial weights (those
``fastrnn.CharLM(random_state=seed)`` draws), on the same data order (``batch_size`` contiguous
streams, ``seq_len`` characters per step, the hidden state carried across steps and detached, reset
each epoch), with Adam, the same learning rate and global gradient-norm clipping at 5, for the same
training time on the same number of threads (``fastrnn.set_num_threads`` + BLAS, and
``torch.set_num_threads``). Each system runs in its own process (PyTorch bundles its own libgomp,
see ``bench/peers.py --isolate``) after a few warm-up steps on a copy of the model. Afterwards both
score the validation play with the same procedure (``fastrnn.charlm.evaluation_windows``), which is
not counted in the training time. "chars/s" counts predicted characters per second of training;
"chars per CPU-second" divides by the process's CPU time instead, which is steadier on a machine
shared with other work (PyTorch's OpenMP workers wait passively by default here, so idle workers do not
burn CPU time, and fastrnn's spin only briefly, see fastrnn/kernels/_openmp.py; ``--torch-wait-policy
default`` gives PyTorch its own spinning default).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

SYSTEMS = ("fastrnn", "torch")
WARMUP_STEPS = 3


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=2.0, help="training time of each system")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cell", choices=("lstm", "gru"), default="lstm")
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--num-layers", type=int, default=2)
    parser.add_argument("--embedding-size", type=int, default=64)
    parser.add_argument("--seq-len", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--validation-play", default="tempest")
    parser.add_argument("--torch-wait-policy", choices=("passive", "default"), default="passive",
                        help="OMP_WAIT_POLICY of the PyTorch process: 'passive' (idle workers sleep) "
                             "or PyTorch's default (spinning workers, slow on a busy machine)")
    parser.add_argument("--markdown-out", default=None)
    parser.add_argument("--only-system", choices=SYSTEMS, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--json-out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.threads < 1:
        raise SystemExit("--minutes must be positive and --threads at least 1")
    return args


def texts(validation_play):
    """``(training text, validation text)``: the other plays joined by blank lines, and the held-out one."""
    from fastrnn.datasets import PLAYS, load_shakespeare

    if validation_play not in PLAYS:
        raise SystemExit(f"--validation-play must be one of {', '.join(PLAYS)}")
    plays = load_shakespeare()
    train = "\n\n".join(text for name, text in plays.items() if name != validation_play)
    return train, plays[validation_play]


def make_model(args):
    from fastrnn import CharLM
    from fastrnn.datasets import load_shakespeare

    return CharLM(cell=args.cell, hidden_size=args.hidden_size, num_layers=args.num_layers, seq_len=args.seq_len,
                  batch_size=args.batch_size, embedding_size=args.embedding_size, learning_rate=args.learning_rate,
                  clip_grad_norm=5.0, max_epochs=10 ** 6, max_time=args.minutes * 60, random_state=args.seed,
                  vocabulary="".join(load_shakespeare().values()))  # the validation play has 3 characters more


# ---------------------------------------------------------------- fastrnn
def run_fastrnn(args):
    import fastrnn
    from threadpoolctl import threadpool_limits

    fastrnn.set_num_threads(args.threads)
    threadpool_limits(args.threads, user_api="blas")
    train, validation = texts(args.validation_play)
    warm = make_model(args).set_params(max_epochs=1)
    warm.fit(train[:args.batch_size * args.seq_len * WARMUP_STEPS + 1])   # loads the compiled kernels
    load, cpu = os.getloadavg()[0], time.process_time()
    model = make_model(args).fit(train)
    cpu = time.process_time() - cpu
    start = time.perf_counter()
    bpc = model.score(validation)
    return dict(steps=model.n_iter_, chars=model.n_chars_trained_, seconds=model.fit_time_, cpu_seconds=cpu, bpc=bpc,
                score_seconds=time.perf_counter() - start, load=(load, os.getloadavg()[0]))


# ---------------------------------------------------------------- PyTorch
def run_torch(args):
    import torch

    from fastrnn.charlm import evaluation_windows
    from sklearn.utils import check_random_state

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    train, validation = texts(args.validation_play)
    reference = make_model(args)
    vocabulary = "".join(sorted(set(reference.vocabulary)))
    reference._build(vocabulary, check_random_state(args.seed))   # the initial weights CharLM.fit starts from
    initial = {k: torch.from_numpy(v) for k, v in reference.state_dict().items()}
    ids = torch.from_numpy(reference._encode(train, "text"))
    val_ids = reference._encode(validation, "validation text")

    def build():
        model = TorchCharLM(args.cell, len(vocabulary), args.embedding_size, args.hidden_size, args.num_layers)
        model.load_state_dict(initial)
        return model, torch.optim.Adam(model.parameters(), lr=args.learning_rate)

    B = max(1, min(args.batch_size, (len(ids) - 1) // args.seq_len))
    per_stream = (len(ids) - 1) // B
    inputs = ids[:B * per_stream].reshape(B, per_stream)
    targets = ids[1:B * per_stream + 1].reshape(B, per_stream)

    def train_steps(model, optimizer, deadline=None, max_steps=None):
        steps = chars = 0
        last_step = 0.0
        while True:
            state = None
            for t0 in range(0, per_stream, args.seq_len):
                if (max_steps is not None and steps >= max_steps) or \
                        (deadline is not None and time.perf_counter() + last_step >= deadline):
                    return steps, chars
                step_start = time.perf_counter()
                x, y = inputs[:, t0:t0 + args.seq_len], targets[:, t0:t0 + args.seq_len]
                logits, state = model(x, state)
                state = tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()
                loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
                optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
                optimizer.step()
                if not torch.isfinite(loss):
                    raise RuntimeError("PyTorch training diverged")
                steps += 1
                chars += x.numel()
                last_step = time.perf_counter() - step_start

    train_steps(*build(), max_steps=WARMUP_STEPS)
    model, optimizer = build()
    load, cpu = os.getloadavg()[0], time.process_time()
    start = time.perf_counter()
    steps, chars = train_steps(model, optimizer, deadline=start + args.minutes * 60)
    seconds = time.perf_counter() - start
    cpu = time.process_time() - cpu

    score_start = time.perf_counter()
    starts, width, mask = evaluation_windows(len(val_ids), args.seq_len)
    windows = torch.from_numpy(val_ids[starts[:, None] + np.arange(width + 1)[None, :]])
    total, state = 0.0, None
    with torch.no_grad():
        for t0 in range(0, width, 256):
            stop = min(t0 + 256, width)
            logits, state = model(windows[:, t0:stop], state)
            log_p = torch.log_softmax(logits, dim=-1)
            picked = log_p.gather(-1, windows[:, t0 + 1:stop + 1, None])[..., 0].double().numpy()
            total -= float((picked * mask[:, t0:stop]).sum())
    bpc = total / (len(val_ids) - 1) / np.log(2.0)
    return dict(steps=steps, chars=chars, seconds=seconds, cpu_seconds=cpu, bpc=bpc,
                score_seconds=time.perf_counter() - score_start, load=(load, os.getloadavg()[0]))


def TorchCharLM(cell, vocab_size, embedding_size, hidden_size, num_layers):
    """The PyTorch twin of :class:`fastrnn.CharLM`: modules ``embedding``, ``rnn`` and ``head``, so the
    parameter names match ``CharLM.state_dict()``. ``forward(x (B, T) int64, state)`` returns
    ``(logits (B, T, V), state)``."""
    import torch

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = torch.nn.Embedding(vocab_size, embedding_size)
            layer = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
            self.rnn = layer(embedding_size, hidden_size, num_layers=num_layers, batch_first=True)
            self.head = torch.nn.Linear(hidden_size, vocab_size)

        def forward(self, x, state=None):
            out, state = self.rnn(self.embedding(x), state)
            return self.head(out), state

    return Model()


# ---------------------------------------------------------------- driver
def run_isolated(argv, args, system):
    """Run this script for one ``system`` in a fresh process; returns its result dict."""
    env = dict(os.environ)
    if system == "torch" and args.torch_wait_policy == "passive":
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        argv = [os.path.abspath(__file__), *argv, "--only-system", system, "--json-out", out.name]
        proc = subprocess.run([sys.executable, *argv], env=env)
        if proc.returncode != 0:
            raise SystemExit(f"the {system} run failed (exit code {proc.returncode})")
        with open(out.name) as fh:
            return json.load(fh)


def render(args, results):
    fr, pt = results["fastrnn"], results["torch"]
    lines = [f"Character-level LM on Shakespeare ({args.cell.upper()}, {args.num_layers}x{args.hidden_size}, "
             f"embedding {args.embedding_size}, batch {args.batch_size} x seq_len {args.seq_len}, Adam lr "
             f"{args.learning_rate}, clip 5; {args.minutes:g} min of training each on {args.threads} threads; "
             f"validation: {args.validation_play}; PyTorch OMP_WAIT_POLICY: {args.torch_wait_policy})", "",
             "| system | steps | characters trained | chars/s | chars per CPU-second | validation bpc "
             "| load average (start → end) |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for name, r in (("fastrnn", fr), ("PyTorch", pt)):
        lines.append(f"| {name} | {r['steps']} | {r['chars']:,} | {r['chars'] / r['seconds']:,.0f} | "
                     f"{r['chars'] / r['cpu_seconds']:,.0f} | {r['bpc']:.3f} | "
                     f"{r['load'][0]:.1f} → {r['load'][1]:.1f} |")
    ratio = (fr["chars"] / fr["seconds"]) / (pt["chars"] / pt["seconds"])
    cpu_ratio = (fr["chars"] / fr["cpu_seconds"]) / (pt["chars"] / pt["cpu_seconds"])
    lines.append(f"| fastrnn / PyTorch | | | {ratio:.2f}x | {cpu_ratio:.2f}x | {fr['bpc'] - pt['bpc']:+.3f} | |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.only_system:
        result = (run_fastrnn if args.only_system == "fastrnn" else run_torch)(args)
        with open(args.json_out, "w") as fh:
            json.dump(result, fh)
        return 0
    results = {}
    for system in SYSTEMS:
        print(f"training {system} for {args.minutes:g} min ...", file=sys.stderr, flush=True)
        results[system] = run_isolated(argv, args, system)
    table = render(args, results)
    print(table)
    if args.markdown_out:
        with open(args.markdown_out, "w") as fh:
            fh.write(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
