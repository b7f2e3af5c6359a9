import pytest
from pydantic import ValidationError

from rag.settings import BM25Backend, load_settings


def test_defaults(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    s = load_settings()
    assert s.bm25.backend is BM25Backend.bm25s and (s.bm25.k1, s.bm25.b) == (0.9, 0.4)
    assert s.db_url.startswith("sqlite:///") and s.db_url.endswith("data/index/rag.db")


def test_precedence_cli_over_env_over_dotenv(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("RAG_BM25__K1=1.1\nRAG_BM25__B=0.5\nRAG_DENSE__EF_SEARCH=64\n")
    monkeypatch.setenv("RAG_BM25__K1", "1.2")
    s = load_settings({"bm25": {"k1": 1.5, "b": None}})
    assert s.bm25.k1 == 1.5  # CLI
    assert s.bm25.b == 0.5  # .env (CLI gave None)
    assert s.dense.ef_search == 64
    assert load_settings().bm25.k1 == 1.2  # env over .env


def test_invalid_enum_lists_valid_values(monkeypatch):
    monkeypatch.setenv("RAG_BM25__BACKEND", "elastic")
    with pytest.raises(ValidationError, match="lucene.*rank_bm25"):
        load_settings()


def test_the_old_abstention_threshold_is_refused_not_ignored(monkeypatch, tmp_path):
    """answer.evidence.min_score was on another score's scale: a user who set it is told what replaced it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RAG_ANSWER__EVIDENCE__MIN_SCORE", "1.2")
    with pytest.raises(ValidationError, match="min_relevance"):
        load_settings()
    monkeypatch.delenv("RAG_ANSWER__EVIDENCE__MIN_SCORE")
    assert load_settings({"answer": {"evidence": {"min_relevance": 0.5}}}).answer.evidence.min_relevance == 0.5


def test_tuned_file_sits_below_env_and_cli(monkeypatch, tmp_path):
    import json

    monkeypatch.chdir(tmp_path)
    (tmp_path / "idx").mkdir()
    (tmp_path / "idx" / "tuned.json").write_text(json.dumps({"retrieval": {"fusion": "rrf", "rrf_k": 20, "weight": 0.3}}))
    monkeypatch.setenv("RAG_INDEX_DIR", str(tmp_path / "idx"))
    monkeypatch.setenv("RAG_RETRIEVAL__WEIGHT", "0.7")
    s = load_settings()
    assert s.retrieval.fusion.value == "rrf" and s.retrieval.rrf_k == 20  # from the tuned file
    assert s.retrieval.weight == 0.7  # env wins over the tuned file
    assert load_settings({"retrieval": {"rrf_k": 5}}).retrieval.rrf_k == 5  # CLI wins
    assert load_settings({"index_dir": tmp_path / "elsewhere"}).retrieval.fusion.value == "convex"


def test_the_generator_dtype_is_checked_and_reaches_the_generator(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RAG_GENERATOR__DTYPE", "int4")
    with pytest.raises(ValidationError, match="bfloat16"):
        load_settings()
    monkeypatch.setenv("RAG_GENERATOR__DTYPE", "float32")
    assert load_settings().generator.spec().dtype == "float32"
    monkeypatch.setenv("RAG_GENERATOR__PACK_WEIGHTS", "false")
    from rag.factory import make_generator

    gen = make_generator(load_settings())  # the model loads lazily: not here
    assert (gen._dtype_arg, gen._pack_arg) == ("float32", False)
