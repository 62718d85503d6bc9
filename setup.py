"""Build script for fastrnn's Cython kernels (fastrnn/kernels/_cython/*.pyx).

Metadata lives in pyproject.toml; this file only declares the compiled extensions.
OpenMP is used when the compiler accepts ``-fopenmp`` and skipped otherwise, so the build also
succeeds on a compiler without it (the kernels then run single-threaded). On x86-64 the time loops
are compiled a second time with AVX2 and FMA (``_recurrences_avx2``), when the compiler accepts those
flags; ``fastrnn.kernels._cython`` imports that module on CPUs that run it, so one wheel runs
everywhere and fast where it can.
"""
import glob
import os
import platform
import sys
import tempfile

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


AVX2_SUFFIX = "_avx2"  # modules compiled with AVX2_FLAGS as well as the common ones
AVX2_FLAGS = ["-mavx2", "-mfma"]


def _compiler_accepts(compiler, *flags):
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as fh:
            fh.write("int main(void) { return 0; }\n")
        try:
            compiler.compile([src], output_dir=tmp, extra_postargs=list(flags))
        except Exception:
            return False
    return True


class BuildExtWithOptionalOpenMP(build_ext):
    def build_extensions(self):
        openmp = sys.platform != "win32" and _compiler_accepts(self.compiler, "-fopenmp")
        native = os.environ.get("FASTRNN_NATIVE") == "1"  # local builds only: not portable
        x86_64 = platform.machine().lower() in ("x86_64", "amd64")
        avx2 = x86_64 and sys.platform != "win32" and _compiler_accepts(self.compiler, *AVX2_FLAGS)
        if not avx2:  # the portable module alone; it runs everywhere
            self.extensions = [ext for ext in self.extensions if not ext.name.endswith(AVX2_SUFFIX)]
        for ext in self.extensions:
            # -g0: no debug symbols (they made the extension ten times larger)
            ext.extra_compile_args += ["-O3", "-g0"] + (["-march=native"] if native else [])
            if ext.name.endswith(AVX2_SUFFIX):
                ext.extra_compile_args += AVX2_FLAGS
            if openmp:
                ext.extra_compile_args.append("-fopenmp")
                ext.extra_link_args.append("-fopenmp")
        super().build_extensions()


def _extensions():
    sources = sorted(glob.glob(os.path.join("fastrnn", "kernels", "_cython", "*.pyx")))
    if not sources:
        return []
    from Cython.Build import cythonize

    # Typed memoryviews only (no cimport of numpy), so the build needs neither NumPy nor its headers.
    exts = [Extension("fastrnn.kernels._cython." + os.path.splitext(os.path.basename(src))[0], [src])
            for src in sources]
    return cythonize(exts, language_level=3,
                     compiler_directives={"boundscheck": False, "wraparound": False,
                                          "cdivision": True, "initializedcheck": False})


setup(ext_modules=_extensions(), cmdclass={"build_ext": BuildExtWithOptionalOpenMP})
