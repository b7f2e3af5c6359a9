"""`rag train --rounds`: the loop, its stopping rule, resuming and its refusals (a fake round trainer),
and one real two-round run on the sample corpus."""

import json
import subprocess
import sys

import pytest

from rag.errors import InputError
from rag.settings import Settings
from tests.conftest import SAMPLE
from training.mining import MiningSettings
from training.rounds import parse_rounds, run_rounds

RAG = [sys.executable, "-m", "service"]


class FakeRounds:
    """Writes what run_training publishes; dev nDCG@10 after each round comes from ``scores``."""

    def __init__(self, scores, dev_queries=40, fail_at=None):
        self.scores, self.dev_queries, self.fail_at, self.calls = scores, dev_queries, fail_at, []

    def __call__(self, settings, dataset, output, mine_settings=None, **kw):
        k = int(output.name.removeprefix("round-"))
        self.calls.append((settings.encoder.model, mine_settings))
        if self.fail_at == k:
            self.fail_at = None
            raise KeyboardInterrupt("killed")
        output.mkdir(parents=True)
        before = self.scores[k - 2] if k > 1 else 0.5
        report = {"dev_queries": self.dev_queries, "metrics_before": {"cosine_ndcg@10": before},
                  "metrics_after": {"cosine_ndcg@10": self.scores[k - 1]}, "steps": 3, "seconds": 1.0, "peak_rss_mb": 10.0}
        (output / "training_report.json").write_text(json.dumps(report))
        (output / "README.md").write_text(f"# round {k}\n")
        (output / "weights.bin").write_text(str(k))


def test_auto_stops_when_a_round_stops_helping_and_keeps_the_best(tmp_path):
    fake = FakeRounds([0.60, 0.65, 0.651, 0.70])
    r = run_rounds(Settings(), SAMPLE, tmp_path / "m", None, max_rounds=5, min_gain=0.002,
                   mine_settings=MiningSettings(dense=False), train=fake, sources=("bootstrap",))
    assert [x["round"] for x in r.rounds] == [1, 2, 3] and r.best_round == 3 and "round 3" in r.stopped_because
    assert (tmp_path / "m" / "weights.bin").read_text() == "3"
    assert json.loads((tmp_path / "m" / "rounds.json").read_text())["best_round"] == 3
    assert "| 2 | 0.6000 | 0.6500 |" in (tmp_path / "m" / "README.md").read_text()
    # round 1 mines as asked; later rounds with BM25 and the model being trained, from the last round
    assert fake.calls[0] == (None, MiningSettings(dense=False))
    assert fake.calls[1][0].endswith("round-1") and fake.calls[1][1].dense and fake.calls[2][0].endswith("round-2")
    assert not (tmp_path / ".m.rounds").exists()


def test_a_fixed_number_keeps_the_best_even_if_a_later_round_is_worse(tmp_path):
    r = run_rounds(Settings(), SAMPLE, tmp_path / "m", 3, train=FakeRounds([0.6, 0.7, 0.65]), sources=("bootstrap",))
    assert len(r.rounds) == 3 and r.best_round == 2 and (tmp_path / "m" / "weights.bin").read_text() == "2"


def test_a_run_killed_between_rounds_resumes_at_the_next_round(tmp_path):
    fake = FakeRounds([0.6, 0.7], fail_at=2)
    with pytest.raises(KeyboardInterrupt):
        run_rounds(Settings(), SAMPLE, tmp_path / "m", 2, train=fake, sources=("bootstrap",))
    assert not (tmp_path / "m").exists() and (tmp_path / ".m.rounds" / "round-1" / "training_report.json").is_file()
    r = run_rounds(Settings(), SAMPLE, tmp_path / "m", 2, train=fake, sources=("bootstrap",))
    assert len(fake.calls) == 3 and fake.calls[2][0].endswith("round-1")  # round 1 was not trained again
    assert r.best_round == 2


def test_refusals_name_what_is_wrong(tmp_path):
    for bad in ("0", "-1", "some"):
        with pytest.raises(InputError, match="--rounds"):
            parse_rounds(bad)
    assert parse_rounds("auto") is None and parse_rounds("3") == 3
    with pytest.raises(InputError, match="dev split has 3 queries"):
        run_rounds(Settings(), SAMPLE, tmp_path / "a", None, train=FakeRounds([0.6], dev_queries=3), sources=("bootstrap",))
    with pytest.raises(InputError, match="at least 20"):  # known from the qrels before any training
        run_rounds(Settings(), SAMPLE, tmp_path / "b", None, train=FakeRounds([0.6]), split="dev", dev_fraction=0.1)
    r = subprocess.run([*RAG, "train", "--dataset", str(SAMPLE), "--output", str(tmp_path / "c"), "--rounds", "0"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "at least one round" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_two_real_rounds_on_the_sample_corpus(tmp_path):
    out = tmp_path / "model"
    r = subprocess.run([*RAG, "train", "--dataset", str(SAMPLE), "--split", "dev", "--output", str(out), "--rounds", "2",
                        "--batch-size", "8", "--max-seq-length", "64", "--dev-fraction", "0.25", "--window", "10",
                        "--cache-dir", str(tmp_path / "cache"), "--no-progress"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    rounds = json.loads((out / "rounds.json").read_text())
    assert [x["round"] for x in rounds["rounds"]] == [1, 2]
    assert rounds["rounds"][1]["dev_ndcg@10_before"] == rounds["rounds"][0]["dev_ndcg@10_after"]  # same dev set, same model
    assert (out / "config.json").is_file() and (out / "hard_negatives.jsonl").is_file()
    assert "round 2:" in r.stdout and "kept round" in r.stdout
