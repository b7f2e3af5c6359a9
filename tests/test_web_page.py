"""The web page at / in headless Chromium (Debian's, driven by Playwright): ask, watch the answer
stream in, see the cited passage highlighted beside it."""

import os

import pytest

from indexer.sources import open_source
from rag.encoders.hashing import HashEncoder
from rag.generators.echo import EchoGenerator
from rag.reader import IndexReader
from rag.search import Searcher
from rag.settings import Settings
from service import create_app
from service.screenshot import CHROMIUM, FLAGS
from tests.conftest import SAMPLE, make_job, running_server

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not os.path.exists(CHROMIUM):
        msg = "Debian's chromium is not installed (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    d = tmp_path_factory.mktemp("idx")
    enc = HashEncoder(dim=256)
    make_job(d, enc, chunk={"enabled": False}).run(open_source(SAMPLE))
    # the hashing encoder's evidence scores are not on MiniLM's scale: no abstention threshold
    app = create_app(Settings(index_dir=d, auth={"enabled": False}, answer={"evidence": {"min_relevance": -1e9}}),
                     searcher_factory=lambda: Searcher(IndexReader(d), enc),
                     generator_factory=lambda: EchoGenerator(delay_s=0.05), encoder_factory=lambda: enc)
    with running_server(app) as url:
        yield url


def test_page_streams_an_answer_with_cited_passages(server, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page()
        page.goto(server)
        # a question without a typed answer: the small model copies words of the best sentence, streamed
        # in; the answer shown is those words as they stand in the cited passage
        page.fill("#q", "What causes blossom end rot?")
        page.click("#go")
        page.wait_for_function("document.querySelector('#answer').textContent.length > 0")
        page.wait_for_selector(".passage.cited", timeout=15_000)
        generated = page.text_content("#answer").strip()
        answer = page.text_content("#extractive strong")
        assert generated and answer == generated
        cited = page.query_selector(".passage.cited")
        assert "Blossom end rot" in cited.text_content() and f"[{cited.get_attribute('data-number')}]" in page.text_content("#extractive")
        assert "tokens/s" in page.text_content("#meta")
        best = page.query_selector(".passage.cited mark:not(.ev)")  # its sentence is marked in its passage
        assert best is not None and answer in best.text_content()
        # a question whose wording says what it asks for: the span, at once, no generation
        page.fill("#q", "How often should I water a snake plant in winter?")
        page.click("#go")
        page.wait_for_function("document.querySelector('#extractive strong') && "
                               "document.querySelector('#extractive strong').textContent === 'once a month'")
        page.wait_for_selector(".passage.cited", timeout=15_000)
        assert "Snake plant care" in page.text_content(".passage.cited") and page.text_content("#answer") == ""
        page.screenshot(path=str(tmp_path / "page.png"))
        assert (tmp_path / "page.png").stat().st_size > 10_000
        browser.close()


def test_upload_a_pdf_then_ask_it_and_see_the_page_cited(server, tmp_path):
    from playwright.sync_api import sync_playwright

    from tests.test_documents import pdf

    report = pdf(tmp_path / "quokka-report.pdf", ["Cover page of the island survey.",
                                                  "The quokka census on Rottnest Island counted 412 animals in March."])
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page()
        page.goto(server)
        page.set_input_files("#files", str(report))
        page.wait_for_selector("#uploads .state.done", timeout=30_000)
        assert "indexed" in page.text_content("#uploads") and "quokka-report.pdf" in page.text_content("#uploads")
        page.wait_for_timeout(1200)  # the searcher looks for the new generation once a second
        page.fill("#q", "What did the quokka census on Rottnest Island count?")
        page.click("#go")
        page.wait_for_selector(".passage.cited", timeout=15_000)
        cited = page.query_selector(".passage.cited")
        assert "quokka-report.pdf" in cited.text_content() and "p. 2" in cited.text_content()
        assert "p. 2" in page.text_content("#extractive .label")
        browser.close()
