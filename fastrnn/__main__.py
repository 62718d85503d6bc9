"""Command line (``python -m fastrnn ...``, or ``fastrnn ...`` once installed): ``demo [--plots DIR]``,
``generate --minutes M`` (a character-level model of Shakespeare) and ``info``."""
import argparse
import sys
import time


def main(argv=None):
    parser = argparse.ArgumentParser(prog="fastrnn", description="fastrnn command line")
    commands = parser.add_subparsers(dest="command", required=True)
    demo_parser = commands.add_parser("demo", help="forecast sunspots (LSTM) and classify Japanese vowels (GRU), "
                                                   "each beside a naive baseline")
    demo_parser.add_argument("--plots", metavar="DIR", default=None,
                             help="also write the pictures (learning curves, forecast, confusion matrix) as PNG "
                                  "files into DIR (needs matplotlib: pip install \"fastrnn[plot]\")")
    commands.add_parser("info", help="show the version, available backends and threading")
    generate = commands.add_parser("generate", help="train a character-level language model on Shakespeare "
                                                    "for a few minutes, then print samples")
    generate.add_argument("--minutes", type=float, default=2.0,
                          help="training time budget in minutes, validation included (fractions allowed)")
    generate.add_argument("--cell", choices=("lstm", "gru", "rnn"), default="lstm")
    generate.add_argument("--hidden-size", type=int, default=256)
    generate.add_argument("--num-layers", type=int, default=2)
    generate.add_argument("--seed", type=int, default=0, help="initial weights and samples")
    generate.add_argument("--validation-play", default="tempest", help="the held-out play")
    generate.add_argument("--eval-every", type=int, default=20, help="training steps between progress lines")
    generate.add_argument("--length", type=int, default=400, help="characters per sample")
    args = parser.parse_args(argv)
    import fastrnn

    if args.command == "generate":
        if not args.minutes > 0 or args.length < 0 or args.eval_every < 1:
            parser.error("--minutes must be positive, --length non-negative and --eval-every at least 1")
        from fastrnn.charlm import shakespeare_demo
        try:
            shakespeare_demo(args.minutes, cell=args.cell, hidden_size=args.hidden_size, num_layers=args.num_layers,
                             seed=args.seed, validation_play=args.validation_play,
                             validation_interval=args.eval_every, n_chars=args.length)
        except ValueError as exc:
            parser.error(str(exc))
        return 0

    if args.command == "info":
        print(f"fastrnn {fastrnn.__version__}; backends available: {', '.join(fastrnn.available_backends())}; "
              f"default: {fastrnn.get_default_backend()}; kernel threads: {fastrnn.get_num_threads()}")
        if "numba" in fastrnn.available_backends():
            import numba

            from fastrnn.kernels._numba import _vector_width
            print(f"numba {numba.__version__}; threading layer: {numba.config.THREADING_LAYER}; "
                  f"vectors: {_vector_width.describe()}")
        if "cython" in fastrnn.available_backends():
            from fastrnn.kernels._cython import BUILD, openmp_enabled, runnable_builds
            print(f"Cython kernels built with OpenMP: {openmp_enabled()}; build in use: {BUILD} "
                  f"(runnable here: {', '.join(runnable_builds())})")
        from fastrnn.kernels import allocator_policy, waiting_policy
        print(f"OpenMP workers between calls: {waiting_policy()}")
        print(f"C heap between calls: {allocator_policy()}")
        from fastrnn.kernels import _gemm
        print(f"float32 GEMMs outside the time loops: {_gemm.describe()}")
        return 0
    from fastrnn import demo

    start = time.perf_counter()
    print(f"fastrnn {fastrnn.__version__} demo (backend: {fastrnn.get_default_backend()})\n")
    if args.plots is not None:
        try:
            import matplotlib  # noqa: F401  (fail before training, not after)
        except ImportError:
            parser.error('--plots needs matplotlib: pip install "fastrnn[plot]"')
    demo.run(plots=args.plots)
    print(f"total time {time.perf_counter() - start:.1f} s (first run includes compiling the kernels)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
