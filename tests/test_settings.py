import pytest
from pydantic import ValidationError

from rag.settings import BM25Backend, load_settings


def test_defaults(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    s = load_settings()
    assert s.bm25.backend is BM25Backend.lucene and (s.bm25.k1, s.bm25.b) == (0.9, 0.4)
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
