"""Property-based requests generated from the OpenAPI document (schemathesis): valid and invalid
inputs for every operation; none may give a 5xx."""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode

from indexer.sources import open_source
from rag.encoders.hashing import HashEncoder
from rag.generators.echo import EchoGenerator
from rag.reader import IndexReader
from rag.search import Searcher
from rag.settings import Settings
from service import create_app
from tests.conftest import SAMPLE, make_job


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory):
    d = tmp_path_factory.mktemp("idx")
    enc = HashEncoder(dim=256)
    make_job(d, enc, chunk={"enabled": False}).run(open_source(SAMPLE))
    app = create_app(Settings(index_dir=d, auth={"enabled": False}, chunking={"enabled": False}),
                     searcher_factory=lambda: Searcher(IndexReader(d), enc), generator_factory=EchoGenerator,
                     encoder_factory=lambda: enc)
    return schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
def test_no_server_errors(api_schema, mode):
    operations = [r.ok() for r in api_schema.get_all_operations()]
    assert {"/v1/search", "/v1/answer", "/v1/documents", "/v1/feedback"} <= {op.path for op in operations}
    exercised = 0
    for op in operations:

        @given(case=op.as_strategy(generation_mode=mode))
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def run(case):
            case.call_and_validate(checks=[not_a_server_error])

        try:
            run()
            exercised += 1
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE  # an operation without inputs has no invalid request
    assert exercised == len(operations) if mode is GenerationMode.POSITIVE else exercised >= 5
