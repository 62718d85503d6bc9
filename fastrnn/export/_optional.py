"""Import an optional dependency, or say exactly what to install."""
import importlib

_EXTRA = {"onnx": "onnx", "skl2onnx": "onnx", "torch": "torch"}


def require(module, purpose):
    """Return the imported ``module``; raise ImportError naming the pip command when it is missing."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(f"{purpose} needs the optional package {module!r}: pip install "
                          f"\"fastrnn[{_EXTRA[module]}]\" (or pip install {module})") from error
