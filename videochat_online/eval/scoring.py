"""Which option a free-form reply chooses, under two rules (pure functions; docs/evaluation.md compares them):
`extract_option`, the project's strict rule ("Not sure" does not choose "No"), and `published_choice`, the
published evaluation's `mcq_acc`; and `self_contradicting`, a reply whose letter and text name different options.
"""

from __future__ import annotations

import re

LETTERS = "ABCDE"

_LEADING = re.compile(r"^\s*(?:\(([A-E])\)|([A-E])(?:[.):]|\s*$))")
_STATED = re.compile(r"(?:answer|option)\s*(?:is|:)?\s*[:\-]?\s*\(?([A-E])\b(?!')")
_LONE = re.compile(r"(?<![A-Za-z'])([A-E])(?![A-Za-z'])")
_ARTICLE = re.compile(r"\bA(?= (?!or\b|and\b)[a-z])")  # "A dog ...": the article, not option A ("A or B" stays)
_WORDS = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def _words(text: str) -> list[str]:
    return _WORDS.findall(text.lower())


def _contains_words(words: list[str], part: list[str]) -> bool:
    """Whether `part` occurs in `words` as a run of whole words."""
    n = len(part)
    return n > 0 and any(words[i:i + n] == part for i in range(len(words) - n + 1))


def extract_option(reply: str, candidates: list[str]) -> str | None:
    """The option letter a reply chooses under the strict rule, or None. In order: a leading "(A)" / "A." / "A)" /
    "A:" / a bare "A"; "the answer is (B)" forms; a candidate's text as the whole reply; a candidate's text as
    whole words of the reply, when exactly one matches after dropping any whose words lie inside another match;
    a lone capital letter, if exactly one valid letter stands alone (the article "A" excepted)."""
    valid = LETTERS[: len(candidates)]
    text = reply.strip()
    match = _LEADING.match(text)
    if match and (match.group(1) or match.group(2)) in valid:
        return match.group(1) or match.group(2)
    match = _STATED.search(text)
    if match and match.group(1) in valid:
        return match.group(1)
    reply_words = _words(text)
    options = [_words(c) for c in candidates]
    if reply_words and reply_words in options and options.count(reply_words) == 1:
        return LETTERS[options.index(reply_words)]
    named = [i for i, words in enumerate(options) if _contains_words(reply_words, words)]
    named = [i for i in named if not any(j != i and _contains_words(options[j], options[i]) for j in named)]
    if len(named) == 1:
        return LETTERS[named[0]]
    lone = {m for m in _LONE.findall(_ARTICLE.sub(" ", text)) if m in valid}
    return lone.pop() if len(lone) == 1 else None


def self_contradicting(reply: str, candidates: list[str]) -> bool:
    """Whether a reply's leading letter and its text choose different options ("(B) Yes" where B is "No"): the
    text after the letter, read alone, names exactly one option (as whole words), and not the letter's. Both
    scoring rules follow the letter."""
    text = reply.strip()
    match = _LEADING.match(text)
    valid = LETTERS[: len(candidates)]
    if not match:
        return False
    letter, rest = match.group(1) or match.group(2), _words(text[match.end():])
    options = [_words(c) for c in candidates]
    named = [i for i, words in enumerate(options) if _contains_words(rest, words)]
    named = [i for i in named if not any(j != i and _contains_words(options[j], options[i]) for j in named)]
    return len(named) == 1 and (letter not in valid or LETTERS[named[0]] != letter)


# The published rule
_OPTION_FIRST = re.compile(r"^([A-E])\.\s*(.+)$", re.IGNORECASE)
_PERIOD = re.compile(r"(?!<=\d)(\.)(?!\d)")  # as published: a period not followed by a digit
_DIGIT_COMMA = re.compile(r"(\d)(,)(\d)")
_PUNCTUATION = [";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",",
                "?", "!"]
_ANY_LETTER = re.compile(r"\b([A-E])\b", re.IGNORECASE)


def _strip_punctuation(text: str) -> str:
    """Each punctuation mark: deleted where it touches a space (or the text has a digit comma), else a space."""
    out = text
    keep_together = _DIGIT_COMMA.search(text) is not None
    for mark in _PUNCTUATION:
        touches_space = mark + " " in text or " " + mark in text
        out = out.replace(mark, "" if touches_space or keep_together else " ")
    return _PERIOD.sub("", out)


def published_choice(reply: str) -> str:
    """What the published `mcq_acc` reads from a reply: an upper-case letter, or the normalised text."""
    match = _OPTION_FIRST.match(reply.strip())
    if match:
        return match.group(1).upper()
    text = reply.replace("\n", " ").replace("\t", " ").strip()
    text = _strip_punctuation(text).strip("'").strip('"').strip(")").strip("(").strip().lower()
    match = _ANY_LETTER.search(text)
    return match.group(1).upper() if match else text

