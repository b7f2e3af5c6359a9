"""The batch indexing job: sources -> chunks -> SQL store -> BM25 + dense indexes (atomic publish)."""
