"""Command line: ``python -m fastrnn demo`` (or ``fastrnn demo`` once installed)."""
import argparse
import sys
import time


def main(argv=None):
    parser = argparse.ArgumentParser(prog="fastrnn", description="fastrnn command line")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="forecast sunspots (LSTM) and classify Japanese vowels (GRU), "
                                     "each beside a naive baseline")
    commands.add_parser("info", help="show the version, available backends and threading")
    args = parser.parse_args(argv)
    import fastrnn

    if args.command == "info":
        print(f"fastrnn {fastrnn.__version__}; backends available: {', '.join(fastrnn.available_backends())}; "
              f"default: {fastrnn.get_default_backend()}; kernel threads: {fastrnn.get_num_threads()}")
        if "numba" in fastrnn.available_backends():
            import numba
            print(f"numba {numba.__version__}; threading layer: {numba.config.THREADING_LAYER}")
        if "cython" in fastrnn.available_backends():
            from fastrnn.kernels._cython import openmp_enabled
            print(f"Cython kernels built with OpenMP: {openmp_enabled()}")
        from fastrnn.kernels import waiting_policy
        print(f"OpenMP workers between calls: {waiting_policy()}")
        return 0
    from fastrnn import demo

    start = time.perf_counter()
    print(f"fastrnn {fastrnn.__version__} demo (backend: {fastrnn.get_default_backend()})\n")
    demo.run()
    print(f"total time {time.perf_counter() - start:.1f} s (first run includes compiling the kernels)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
