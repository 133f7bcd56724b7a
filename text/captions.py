"""Caption text as the caption corpora store it: lowercase words, no punctuation, single spaces."""

from __future__ import annotations

import re
import string

_DROP_APOSTROPHES = str.maketrans("", "", "'")
_PUNCTUATION = re.compile(f"[{re.escape(string.punctuation)}]")


def clean_caption(text: str) -> str:
    """Lowercase, drop apostrophes ("bird's" -> "birds"), turn other punctuation into spaces, collapse whitespace
    ("" if nothing is left)."""
    return " ".join(_PUNCTUATION.sub(" ", text.lower().translate(_DROP_APOSTROPHES)).split())
