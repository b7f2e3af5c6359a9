"""Where models converted once (the generator's transformers folder, ONNX exports) are kept."""

from pathlib import Path

DEFAULT_CACHE = Path.home() / ".cache" / "rag-search" / "models"
