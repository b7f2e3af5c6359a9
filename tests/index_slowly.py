"""Run the indexing job with a slow fake encoder, for the SIGKILL tests:
python tests/index_slowly.py SOURCE INDEX_DIR [milvus]"""

import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from indexer.sources import open_source  # noqa: E402
from rag.encoders.hashing import HashEncoder  # noqa: E402
from rag.milvus import MilvusSettings  # noqa: E402
from tests.conftest import make_job  # noqa: E402


class SlowHashEncoder(HashEncoder):
    def _encode(self, texts, batch_size, progress):
        time.sleep(0.002 * len(texts))
        return super()._encode(texts, batch_size, progress)


def run_slowly(source: Path, index_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    """This script in a child process, to the end."""
    return subprocess.run([sys.executable, __file__, str(source), str(index_dir), *extra], capture_output=True, text=True)


def kill_then_resume(source: Path, index_dir: Path, full_s: float, fractions: tuple[float, ...], *extra: str):
    """Start this script on ``index_dir`` once per fraction and SIGKILL it after that share of a full
    run's ``full_s`` (if still running); then run it to the end. Returns (kills, the last run)."""
    kills = 0
    for frac in fractions:
        proc = subprocess.Popen([sys.executable, __file__, str(source), str(index_dir), *extra],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(full_s * frac)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    return kills, run_slowly(source, index_dir, *extra)


if __name__ == "__main__":
    source, index_dir = Path(sys.argv[1]), Path(sys.argv[2])
    extra = {"milvus": MilvusSettings(batch=16)} if sys.argv[3:] == ["milvus"] else {}
    job = make_job(index_dir, SlowHashEncoder(), commit_every=16, write_every=8, **extra)
    s = job.run(open_source(source))
    print(s.passages_total, s.published, flush=True)
