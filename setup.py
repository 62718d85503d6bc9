"""Build script for fastrnn's Cython kernels (fastrnn/kernels/_cython/*.pyx).

Metadata lives in pyproject.toml; this file only declares the compiled extensions.
OpenMP is used when the compiler accepts ``-fopenmp`` and skipped otherwise, so the build also
succeeds on a compiler without it (the kernels then run single-threaded).
"""
import glob
import os
import sys
import tempfile

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


def _compiler_accepts(compiler, flag):
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as fh:
            fh.write("int main(void) { return 0; }\n")
        try:
            compiler.compile([src], output_dir=tmp, extra_postargs=[flag])
        except Exception:
            return False
    return True


class BuildExtWithOptionalOpenMP(build_ext):
    def build_extensions(self):
        openmp = sys.platform != "win32" and _compiler_accepts(self.compiler, "-fopenmp")
        native = os.environ.get("FASTRNN_NATIVE") == "1"  # local builds only: not portable
        for ext in self.extensions:
            # -g0: no debug symbols (they made the extension ten times larger)
            ext.extra_compile_args += ["-O3", "-g0"] + (["-march=native"] if native else [])
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
