"""Evidence sentences and the extractive answer.

The passages an answer is built from are split into sentences (with character offsets into the
passage text, so a client can highlight them), and each sentence is scored against the question by
a weighted sum of four signals:

- ``dense``: cosine of the question and the sentence under the bi-encoder (the index's own encoder);
- ``bm25``: BM25 of the question over the candidate sentences as a small corpus, scaled to [0, 1];
- ``overlap``: the share of the question's (stemmed, stop-word-free) terms the sentence holds;
- ``title_overlap``: the same over the sentence and its passage's title together (a sentence that says
  "It is caused by ..." names its subject only in the title);
- ``rank``: 1 / rank of the sentence's passage in the search result;
- ``answer_type``: 1 when the sentence holds what the question's wording asks for (a frequency for
  "how often", a date or season for "when", a number for "how many", a cause for "why", a capitalised
  name for "who" and "where"), else 0.

The best sentence is the extractive answer, returned before any generation, with its citation; when
the question's wording says what kind of thing it asks for, the answer is the span of that kind in
it, and of two or more such candidates the generator (where it can score) helps choose. Whether
the passages answer the question at all is a separate score, the question's *relevance*: the best
``dense`` of any sentence plus the best ``title_overlap`` of any sentence (a question the documents
do not cover matches no sentence in meaning and few in words). Below ``min_relevance`` the answer
says nothing was found instead of guessing. Weights were chosen on a dev part of squad-dev
(``python -m eval.benchmarks.evidence``), the threshold with off-topic questions as well (questions
the corpus does not answer).
"""

from __future__ import annotations

import bisect
import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from rag.bm25.analysis import analyze
from rag.encoders.base import Encoder
from rag.types import Passage

NOT_FOUND = "I did not find an answer to this in the documents."
# a sentence ends at . ! or ? (closing quotes/brackets allowed) before whitespace and a capital,
# digit or opening quote; or at a line break
_END = re.compile(r"(?<=[.!?])[\"'”’)\]]*\s+(?=[\"'“‘(\[]?[A-Z0-9])|\n+")
_ABBREV = re.compile(r"(?:\b(?:[A-Z]|Mr|Mrs|Ms|Dr|Prof|St|Mt|Jr|Sr|vs|etc|e\.g|i\.e|approx|No|Fig|Vol|U\.S|U\.K|Inc|Ltd|Co)\.)$")


_HOW_MUCH = (r"\bhow (many|much|long|far|old|large|big|tall|high|deep|wide|hot|cold|warm|heavy|fast|soon)\b|"
             r"\bwhat (?:\w+ ){0,3}?(temperature|size|depth|height|distance|length|width|weight|speed|ph|age|population|ratio|"
             r"extent|cost|price)\b")
_MONTHS = "january|february|march|april|may|june|july|august|september|october|november|december"
# (question pattern, what a sentence that answers it contains)
_ANSWER_TYPE_SOURCES = [
    (r"\bhow (often|frequently)\b", r"\b(once|twice|every|daily|weekly|monthly|yearly|annually|times? (a|per)|per (day|week|month|year))\b"),
    (r"\b(when|what (year|month|day|date|time|season|century|decade))\b",
     rf"\b(\d{{3,4}}s?|{_MONTHS}|spring|summer|autumn|fall|winter|century|decade|morning|evening|night|before|after|during|until)\b"),
    (rf"{_HOW_MUCH}|\bwhat (percentage|number|amount)\b",
     r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|twelve|twenty|hundred|thousand|million|billion|dozen|half)\b"),
    (r"\bwhy\b|\bwhat (causes|caused|leads|led)\b|\bcause of\b", r"\b(because|cause[sd]?|due to|result(s|ed)? (in|from)|leads? to|since|so that)\b"),
    (r"\b(who|whom|whose|where|which (city|country|person|company|team))\b", r"(?<!^)(?<![.!?]\s)\b[A-Z][a-z]+"),
]
_ANSWER_TYPES = [(re.compile(q, re.I), re.compile(a, re.I if "A-Z" not in a else 0)) for q, a in _ANSWER_TYPE_SOURCES]


def answer_type_match(question: str, sentence: str) -> float:
    """1.0 when the sentence contains the kind of thing the question asks for (see _ANSWER_TYPES)."""
    return float(any(q.search(question) and a.search(sentence) for q, a in _ANSWER_TYPES))


_WHAT_NOUN = (r"\b(?:what|which)\s+(?!(?:is|was|are|were|did|does|do|has|had|have|can|could|would|will|should|may|might|"
              r"kind|type|sort|other|else|happened)\b)([a-z]+)\b")
# "what was the first battle?", "what was the fort ... named?": a name holding the noun ("Battle of Jumonville Glen")
_WHAT_IS_NOUN = r"\bwhat\s+(?:is|was|are|were)\s+(?:the\s+)?(?:first\s+|last\s+|main\s+)?([a-z]+)\b"
_NAME = r"[A-Z][\w'’.-]*(?:\s+(?:(?:of|de|du|la|le|von|van|der|den|da|di|the|and|&)\s+)*[A-Z][\w'’.-]*)*"
_SCALE = r"(?:\s?(?:%|percent|per cent|million|billion|trillion|thousand|hundred))?"
_NUMBER_WORD = (r"(?:(?:twen|thir|for|fif|six|seven|eigh|nine)ty(?:[- ](?:one|two|three|four|five|six|seven|eight|nine))?|"
                r"(?:thir|four|fif|six|seven|eigh|nine)teen|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|"
                r"hundred|thousand|dozen|half)")
# a quantity's unit, kept with its number ("2.5 cm", "45,000 pounds", "seven years") unless the question names it
_UNIT = (r"(?:\s?(?P<unit>(?-i:°\s?[CF]|degrees?(?: (?:Celsius|Fahrenheit))?|mm|cm|km|m|metres?|meters?|(?:kilo|centi|milli)met(?:re|er)s?|"
         r"inch(?:es)?|feet|foot|ft|yards?|miles?|mph|acres?|hectares?|square (?:miles|kilomet(?:re|er)s|met(?:re|er)s|feet)|kg|"
         r"grams?|kilograms?|tonnes?|tons?|pounds?|lbs?|ounces?|oz|seconds?|minutes?|hours?|days?|weeks?|months?|years?|decades?|"
         r"centuries|dollars?|euros?|cents?))\b)?")
_NUMBER = rf"(?:[$£€]?\d[\d,.]*|\b{_NUMBER_WORD}\b)"
# a bound is kept with its number ("above 10 degrees") unless the question says it ("below what temperature")
_QUANTITY = (rf"(?P<bound>about |around |approximately |roughly |nearly |over |more than |less than |almost |above |below |under |"
             rf"at least |at most |up to )?"
             rf"{_NUMBER}{_SCALE}(?:\s?(?:[–-]|to|or)\s?{_NUMBER}{_SCALE})?{_UNIT}")
_YEAR = re.compile(r"^(?:1\d{3}|20\d{2})s?(?:\s?[–-]\s?\d{2,4})?$")  # a year or decade answers "when", not "how many"
# (question pattern, span pattern): the short answer inside a sentence, for questions whose wording
# says what kind of thing is asked for; other questions get the whole sentence
_SPAN_SOURCES = [
    (r"\bhow (often|frequently)\b",
     r"\b(?:(?:once|twice|\w+ times) (?:a|per|every) \w+|every (?:\w+ )?(?:to \w+ )?(?:day|week|month|year|season)s?"
     r"|daily|weekly|monthly|yearly|annually)\b"),
    (r"\b(when|what (year|month|day|date|time|season|century|decade)|in what year)\b",
     rf"\b(?:(?:early |late |mid-?)?(?:{_MONTHS})(?: \d{{1,2}})?(?:,? \d{{3,4}})?|\d{{1,2}} (?:{_MONTHS})(?: \d{{3,4}})?"
     r"|(?:the )?\d{1,2}(?:st|nd|rd|th)(?: and \d{1,2}(?:st|nd|rd|th))? centur(?:y|ies)|\d{3,4}s?(?:\s?[–-]\s?\d{2,4})?"
     r"|(?:early |late )?(?:spring|summer|autumn|fall|winter))\b"),
    (rf"{_HOW_MUCH}|\bwhat (percentage|number|amount|proportion)\b",
     _QUANTITY),
    (r"\b(who|whom|whose)\b|\bwhich (person|man|woman|king|company|team|group|organization|scientist)\b", _NAME),
    (r"\bwhere\b|\bwhich (city|country|state|region|river|place|continent)\b|\bin what (city|country|state|region)\b", _NAME),
    # "what fort", "which company": a name, best one holding the noun asked for ("Fort Duquesne")
    (_WHAT_NOUN, _NAME),
    (_WHAT_IS_NOUN, _NAME),
]
_SPANS = [(re.compile(q, re.I), re.compile(a, re.I if "A-Z" not in a else 0)) for q, a in _SPAN_SOURCES]
_WHO_WHERE = re.compile(r"\b(?:who|whom|whose|where)\b", re.I)
# a capitalised run is not a name when it starts with a function word ("Though the British") or is a
# month or weekday ("in May", for a who question)
_LEAD = re.compile(r"^(?:(?:The|A|An|In|On|At|By|For|From|To|Of|With|As|After|Before|During|Though|Although|While|When|"
                   r"Where|Since|Because|If|But|And|Or|However|Following|Under|Its|His|Her|Their|This|That|These|Those|"
                   r"It|He|She|They|According)\b\s*)+")
_NOT_NAME = re.compile(rf"^(?:{_MONTHS}|monday|tuesday|wednesday|thursday|friday|saturday|sunday)$", re.I)
# "who built X?": the builder is the sentence's subject, before the shared verb ("who did X build?" is not)
_SUBJECT_WHO = re.compile(r"^\s*who\s+(?!(?:is|was|are|were|did|does|do|has|had|will|would|can|could)\b)(\w+)", re.I)
# "who did Dinwiddie order to go?": the one ordered is the name after the verb
_OBJECT_WHO = re.compile(r"^\s*(?i:who|whom)\s+(?i:did|does|do|had|has|will|would)\s+[A-Z][\w'’.-]*(?:\s+[A-Z][\w'’.-]*)*\s+(\w+)")
_PLACE_PREPOSITION = re.compile(r"\b(?:in|at|to|on|near|from|along|into|across|towards?|through)\s+(?:the\s+)?$")
_WORD = re.compile(r"\w+")


#: words a question and a sentence share without saying anything about the answer's place
_FUNCTION_WORDS = frozenset("what when where which while whom whose that this there these those their them then than were "
                            "been have does with from into about also only".split())
# a nationality used as an adjective ("French forces") names no one: not a "who" or "where" answer
_DEMONYM = re.compile(r"^(?:[A-Z][a-z]+(?:ish|ese|ian|ean|an|ch|ic|i)|Dutch|Greek|Thai|Swiss|Native)$")


@dataclass
class _Candidate:
    """A typed span under consideration: its closeness score, offsets and first/last word numbers."""

    close: float
    start: int
    end: int
    first: int
    last: int


def _stems(text: str) -> set[str]:
    return set(analyze(text))


def _doer_and_object_bonus(question: str, sentence: str, words: list[re.Match], stems: list[set[str]],
                            found: list[_Candidate]) -> None:
    """+1 closeness (in place) for the doer of "who <verb> ...?" (the last name before the verb,
    skipping an aside between commas just before it: "Gist, acting for Virginia, explored") and for
    the object of "who did X <verb>?" (the first name after the verb). ``stems``: each word's."""
    if doer := _SUBJECT_WHO.search(question):
        verb, after = _stems(doer.group(1)), False
    elif obj := _OBJECT_WHO.search(question):
        verb, after = _stems(obj.group(1)), True
    else:
        return
    for v, w in enumerate(words):
        if not stems[v] & verb:
            continue
        if after:
            chosen = [f for f in found if f.first > v]
            if chosen:
                min(chosen, key=lambda f: f.first).close += 1.0
            continue
        head = sentence[:w.start()].rstrip()
        aside = head.rfind(",", 0, len(head) - 1) if head.endswith(",") else len(head)
        chosen = [f for f in found if f.last < v and f.end <= aside]
        if chosen:
            max(chosen, key=lambda f: f.last).close += 1.0


def span_candidates(question: str, sentence: str) -> list[_Candidate]:
    """The candidates in ``sentence`` for the short answer the question asks for, each with its closeness;
    none when the question's wording gives no type (use the whole sentence). The first pattern the
    question matches that finds any candidate gives them all. Candidates that repeat the question's own
    words are skipped; the rest are scored by closeness to the words the sentence shares with the
    question (by stem, where SQuAD-style answers sit: the sum of 1 / (1 + distance in words) over the
    shared words), with a bonus for the doer in a "who <verb>" question (the last name before that verb)
    and for a place after a preposition in a "where" question. A nationality used as an adjective
    ("French forces") is not a name; a "what fort" or "what was the first battle" question takes only a
    name that says it is one ("Fort Duquesne"). A quantity ("how many", "what was the ratio /
    population") keeps its range and unit ("2 to 5 cm") unless the question names the unit; a year or
    decade is no quantity."""
    q_words = {w.lower() for w in _WORD.findall(question)}
    q_stems = _stems(question)
    words_found = list(_WORD.finditer(sentence))
    word_starts = [m.start() for m in words_found]
    word_stems = [_stems(m.group(0)) for m in words_found]
    shared = [i for i, m in enumerate(words_found) if len(m.group(0)) > 3 and m.group(0).lower() not in _FUNCTION_WORDS and
              (m.group(0).lower() in q_words or word_stems[i] & q_stems)]
    person_or_place = _WHO_WHERE.search(question)  # "which country": "Japanese imports" does answer it
    where = "where" in question.lower()
    for q, a in _SPANS:
        if not q.search(question):
            continue
        name = a.pattern == _NAME
        noun = q.search(question) if q.pattern in (_WHAT_NOUN, _WHAT_IS_NOUN) else None
        head = _stems(noun.group(1)) if noun else set()
        found: list[_Candidate] = []
        for m in a.finditer(sentence):
            start, end = m.start(), m.end()
            if name:
                if lead := _LEAD.match(m.group(0)):
                    start += lead.end()
                if sentence[start:end].endswith(("'s", "’s")):
                    end -= 2
                if start >= end or not sentence[start].isupper() or _NOT_NAME.match(sentence[start:end]):
                    continue
                if person_or_place and _DEMONYM.match(sentence[start:end]) and re.match(r"\s+[a-z]", sentence[end:]):
                    continue
                if noun and not head & _stems(sentence[start:end]):
                    continue
            if (unit := m.groupdict().get("unit")) and {w.lower() for w in _WORD.findall(unit)} & q_words:
                end = m.start("unit")  # "how many years": "seven", not "seven years"
            if (bound := m.groupdict().get("bound")) and {w.lower() for w in _WORD.findall(bound)} & q_words:
                start = m.end("bound")  # "below what temperature": "10 degrees", not "below 10 degrees"
            words = {w.lower() for w in _WORD.findall(sentence[start:end])}
            if not words or words <= q_words:
                continue
            i = bisect.bisect_left(word_starts, start)
            j = bisect.bisect_left(word_starts, end) - 1
            close = sum(1.0 / (1 + min(abs(i - s), abs(j - s))) for s in shared if s < i or s > j)
            if name and where and _PLACE_PREPOSITION.search(sentence[max(0, start - 20):start]):
                close += 0.5
                # "slipped away and led the attack on Oswego": a place right after a shared lowercase word
                close += 0.5 * any(0 < i - s_ <= 4 and words_found[s_].group(0).islower() for s_ in shared)
            found.append(_Candidate(close, start, end, i, j))
        if a.pattern == _QUANTITY:
            # not a year, and not a number word inside a name ("the Seven Years' War")
            found = [f for f in found if not _YEAR.match(sentence[f.start:f.end].rstrip(" ,.;:"))
                     and not (f.start and sentence[f.start].isupper())]
        if not found:
            continue
        if name:
            _doer_and_object_bonus(question, sentence, words_found, word_stems, found)
        for f in found:
            while f.end > f.start and sentence[f.end - 1] in " ,.;:":
                f.end -= 1
        return found
    return []


def answer_span(question: str, sentence: str) -> tuple[int, int] | None:
    """(start, end) of the closest candidate (see :func:`span_candidates`), or None."""
    found = span_candidates(question, sentence)
    if not found:
        return None
    best = max(found, key=lambda f: f.close)
    return best.start, best.end


_PUNCT = re.compile(r"[^\w\s]")
_ARTICLES = re.compile(r"\b(?:a|an|the)\b")


def _norm_words(text: str) -> list[str]:
    """SQuAD's normalisation: lower case, no punctuation, no articles."""
    return _ARTICLES.sub(" ", _PUNCT.sub("", text.lower())).split()


def grounded_span(text: str, sentence: str, min_f1: float = 0.9) -> tuple[int, int] | None:
    """(start, end) of the run of whole words of ``sentence`` closest to ``text`` (token F1 under
    SQuAD's normalisation), or None when even the closest scores below ``min_f1``: how a small
    model's short answer becomes a span of the evidence, or is refused as not grounded in it."""
    want = Counter(_norm_words(text))
    if not want:
        return None
    # (start, end, normalised words, may begin or end the span: not bare punctuation)
    words = [(m.start(), m.end(), _norm_words(m.group(0)), any(c.isalnum() for c in m.group(0)))
             for m in re.finditer(r"\S+", sentence)]
    size, n_words = sum(want.values()), len(text.split())
    best: tuple[tuple[float, int], int, int] | None = None
    for i in range(len(words)):
        got: Counter[str] = Counter()
        for j in range(i, min(len(words), i + size + 4)):
            got.update(words[j][2])
            common = sum((got & want).values())
            if common and words[i][3] and words[j][3]:
                p, r = common / sum(got.values()), common / size
                f1 = 2 * p * r / (p + r)
                # of equals, the one with as many words as the copy ("soil lacks", not "the soil lacks")
                key = (f1, -abs(j - i + 1 - n_words))
                if best is None or key > best[0]:
                    best = (key, words[i][0], words[j][1])
    if best is None or best[0][0] < min_f1:
        return None
    a, b = best[1], best[2]
    while b > a and sentence[b - 1] in " ,.;:!?)\"'”’":
        b -= 1
    while a < b and sentence[a] in "(\"'“‘":
        a += 1
    return (a, b) if a < b else None


@dataclass(frozen=True)
class EvidenceWeights:
    """Defaults: chosen on squad-dev's dev part (docs/results/evidence-squad.md)."""

    dense: float = 1.0
    bm25: float = 0.0
    overlap: float = 0.0
    rank: float = 0.25
    answer_type: float = 0.25
    title_overlap: float = 1.0
    #: with a generator that can score (the embedded model): a candidate span's closeness plus this
    #: times the generator's mean token log-probability of it as the answer (0: closeness alone)
    span_likelihood: float = 0.1
    #: below this relevance the extractive answer abstains: chosen with off-topic questions
    min_relevance: float = 0.7925

    def vector(self) -> np.ndarray:
        return np.array([self.dense, self.bm25, self.overlap, self.rank, self.answer_type, self.title_overlap])


def relevance(feats: np.ndarray) -> float:
    """How well the passages answer the question at all: the best sentence's dense similarity plus the
    best share of the question's terms in a sentence and its title (-inf without sentences)."""
    return float(feats[:, 0].max() + feats[:, 5].max()) if len(feats) else -math.inf


@dataclass(frozen=True)
class Evidence:
    """One scored sentence: ``text == passage.text[start:end]``."""

    number: int  # the passage's number in the answer ([n])
    passage_id: str
    document_id: str
    title: str
    start: int
    end: int
    text: str
    score: float
    #: the extractive answer's short span (offsets in the passage text, inside the sentence), if any
    span_start: int | None = None
    span_end: int | None = None
    location: dict[str, Any] = field(default_factory=dict)  # the passage's place in its document ({"page": 7})

    @property
    def answer(self) -> str:
        """The short span when there is one, else the sentence."""
        if self.span_start is None or self.span_end is None:
            return self.text
        return self.text[self.span_start - self.start : self.span_end - self.start]


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence of ``text``, whitespace trimmed, empty ones dropped."""
    spans, start = [], 0
    for m in _END.finditer(text):
        if "\n" not in m.group(0) and _ABBREV.search(text[max(0, m.start() - 8) : m.start()]):
            continue  # "Dr. Smith", "e.g. roses", "U.S. Army": not a sentence end
        spans.append((start, m.start()))
        start = m.end()
    spans.append((start, len(text)))
    out = []
    for a, b in spans:
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if b > a:
            out.append((a, b))
    return out


def _bm25(query: list[str], docs: list[list[str]], k1: float = 1.2, b: float = 0.75) -> np.ndarray:
    n = len(docs)
    avg = sum(map(len, docs)) / n if n else 0.0
    df = Counter(t for d in docs for t in set(d))
    out = np.zeros(n, dtype=np.float64)
    for i, d in enumerate(docs):
        tf = Counter(d)
        for t in set(query):
            if tf[t]:
                idf = math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5))
                out[i] += idf * tf[t] * (k1 + 1) / (tf[t] + k1 * (1 - b + b * len(d) / (avg or 1)))
    return out


class EvidenceFinder:
    def __init__(self, encoder: Encoder, weights: EvidenceWeights | None = None) -> None:
        self.encoder = encoder
        self.weights = weights or EvidenceWeights()

    def features(self, question: str, passages: Sequence[Passage]) -> tuple[list[Evidence], np.ndarray]:
        """Every sentence of ``passages`` (in order) and its (dense, bm25, overlap, rank, answer_type,
        title_overlap) features."""
        sentences: list[Evidence] = []
        ranks: list[int] = []
        for n, p in enumerate(passages, start=1):
            for a, b in sentence_spans(p.text):
                sentences.append(Evidence(n, p.id, p.document_id, p.title, a, b, p.text[a:b], 0.0, location=p.location))
                ranks.append(n)
        if not sentences:
            return [], np.zeros((0, 6))
        q = self.encoder.encode_queries([question])[0]
        dense = self.encoder.encode_passages([s.text for s in sentences]) @ q
        q_terms = analyze(question)
        s_terms = [analyze(s.text) for s in sentences]
        bm25 = _bm25(q_terms, s_terms)
        bm25 = bm25 / bm25.max() if bm25.max() > 0 else bm25
        qset = set(q_terms)
        overlap = np.array([len(qset & set(t)) / len(qset) if qset else 0.0 for t in s_terms])
        rank = 1.0 / np.asarray(ranks, dtype=np.float64)
        kind = np.array([answer_type_match(question, s.text) for s in sentences])
        titles = {s.title: set(analyze(s.title)) for s in sentences}
        with_title = np.array([len(qset & (set(t) | titles[s.title])) / len(qset) if qset else 0.0
                               for s, t in zip(sentences, s_terms, strict=True)])
        return sentences, np.stack([dense, bm25, overlap, rank, kind, with_title], axis=1)

    def score(self, feats: np.ndarray, weights: EvidenceWeights | None = None) -> np.ndarray:
        return feats @ (weights or self.weights).vector() if len(feats) else np.zeros(0)

    def find(self, question: str, passages: Sequence[Passage], top: int = 3) -> Findings:
        """The ``top`` best sentences, best first, and the question's relevance to the passages."""
        sentences, feats = self.features(question, passages)
        scores = self.score(feats)
        order = np.argsort(-scores, kind="stable")[:top]
        return Findings([_with_score(sentences[i], float(scores[i])) for i in order],
                        round(relevance(feats), 4) if sentences else None)


@dataclass(frozen=True)
class Findings:
    sentences: list[Evidence]  # the best sentences, best first
    relevance: float | None  # see :func:`relevance`; None without sentences


def _with_score(e: Evidence, score: float) -> Evidence:
    return replace(e, score=round(score, 4))


#: how likely the generator finds each span as its answer to the question about a sentence (see
#: Generator.score_continuations), or None when it cannot say
SpanLikelihood = Callable[[str, "Evidence", list[str]], "list[float] | None"]


def extractive_answer(found: Findings, min_relevance: float, question: str | None = None,
                      likelihood: SpanLikelihood | None = None, weight: float = 0.0) -> Evidence | None:
    """The best sentence, or None (abstain) when there is none or the question's relevance is below
    ``min_relevance``; with ``question``, also the short span inside it that the question asks for
    (see :func:`span_candidates`). Of two or more candidate spans, with ``likelihood``, the one with the
    best closeness + ``weight`` x the generator's mean token log-probability of it as the answer."""
    if not found.sentences or found.relevance is None or found.relevance < min_relevance:
        return None
    best = found.sentences[0]
    candidates = span_candidates(question, best.text) if question else []
    if not candidates:
        return best
    score = [c.close for c in candidates]
    if likelihood is not None and weight and len(candidates) > 1:
        lm = likelihood(question or "", best, [best.text[c.start:c.end] for c in candidates])
        if lm is not None:
            score = [s_ + weight * x for s_, x in zip(score, lm, strict=True)]
    chosen = candidates[max(range(len(candidates)), key=score.__getitem__)]
    return replace(best, span_start=best.start + chosen.start, span_end=best.start + chosen.end)
