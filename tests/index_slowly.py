"""Run the indexing job with a slow fake encoder, for the SIGKILL tests:
python tests/index_slowly.py SOURCE INDEX_DIR [milvus]"""

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


if __name__ == "__main__":
    source, index_dir = Path(sys.argv[1]), Path(sys.argv[2])
    extra = {"milvus": MilvusSettings(batch=16)} if sys.argv[3:] == ["milvus"] else {}
    job = make_job(index_dir, SlowHashEncoder(), commit_every=16, write_every=8, **extra)
    s = job.run(open_source(source))
    print(s.passages_total, s.published, flush=True)
