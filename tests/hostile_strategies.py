"""Hypothesis strategies for hostile input: text with lone surrogates, NUL, controls and bidi overrides, JSON of any
shape, times at and past the edges, and CloudEvent-ish objects built from them."""

from __future__ import annotations

import os
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st

# Characters that broke something once, or could: surrogates (lone from JSON), NUL, ESC, bidi, line separators.
NASTY = ["\ud800", "\udbff", "\udc00", "\udfff", "\x00", "\x1b", "\r", "\u202e", "\u2028", "\x85", "\ufffd", "\ufeff"]
CHARACTERS = st.one_of(st.characters(), st.sampled_from(NASTY), st.sampled_from("æøåÆØÅ文\U0001f600"))
TEXT = st.text(CHARACTERS, max_size=24)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=16,
)

RFC3339_LIKE = st.builds(
    "{:04d}-{:02d}-{:02d}{}{:02d}:{:02d}:{:02d}{}{}".format,
    st.integers(0, 9999),
    st.integers(0, 13),
    st.integers(0, 32),
    st.sampled_from(["T", "t", " "]),
    st.integers(0, 25),
    st.integers(0, 61),
    st.integers(0, 61),
    st.sampled_from(["", ".4", ".4380391", ".123456789", ".1234567890"]),
    st.one_of(
        st.sampled_from(["Z", "z", ""]),
        st.builds("{}{:02d}:{:02d}".format, st.sampled_from("+-"), st.integers(0, 24), st.integers(0, 60)),
    ),
)
"""Strings shaped like RFC 3339 timestamps, each part sometimes out of its range."""
TIMES = st.one_of(
    RFC3339_LIKE,
    st.sampled_from(["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+01:00", "2024-04-19T07:22:19.4380391Z"]),
    TEXT,
    JSON_VALUES,
)
ATTRIBUTE_NAMES = st.one_of(st.from_regex(r"[a-z0-9]{1,10}", fullmatch=True), TEXT)
MUTATED = ["specversion", "id", "source", "type", "time", "subject", "resource", "resourceinstance", "data",
           "datacontenttype", "alternativesubject"]  # fmt: skip


@st.composite
def cloud_events(draw: st.DrawFn) -> dict[str, Any]:
    """A CloudEvent as Altinn sends it (fresh id, `data` of any shape), then one to three attributes dropped,
    replaced by any JSON (a `time` by any time-like text), or tainted with nasty characters somewhere in their
    text; and maybe an extension attribute of any name and value."""
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": str(draw(st.uuids())),
        "source": "https://platform.tt02.altinn.no/correspondence/api/v1/correspondence",
        "type": "no.altinn.correspondence.correspondencepublished",
        "time": "2024-04-19T07:22:19.4380391Z",
        "subject": "urn:altinn:organization:identifier-no:312345678",
        "resource": "urn:altinn:resource:fuzz",
        "resourceinstance": str(draw(st.uuids())),
        "data": draw(JSON_VALUES),
    }
    for name in draw(st.lists(st.sampled_from(MUTATED), min_size=1, max_size=3, unique=True)):
        how = draw(st.sampled_from(["drop", "replace", "taint", "taint"]))
        if how == "drop":
            event.pop(name, None)
        elif how == "replace":
            event[name] = draw(TIMES if name == "time" else JSON_VALUES)
        else:
            text = str(event.get(name, ""))
            at = draw(st.integers(0, len(text)))
            event[name] = text[:at] + draw(st.text(st.sampled_from(NASTY), min_size=1, max_size=3)) + text[at:]
    if draw(st.booleans()):
        event.update(draw(st.dictionaries(ATTRIBUTE_NAMES, JSON_VALUES, max_size=2)))
    return event


def examples(in_test: int, share: float = 1.0) -> int:
    """How many examples a costly property takes: `in_test` under `make test`'s profile (a sample of a few
    seconds), else `share` of the loaded profile's number (`make fuzz`: FUZZ_EXAMPLES)."""
    if os.environ.get("HYPOTHESIS_PROFILE", "test") == "test":
        return in_test
    return max(in_test, int(settings().max_examples * share))
