"""Text from the guest, made safe for the formats the rig writes (XML, HTML, one-line messages).

The guest runs a kernel under test: its output may hold any byte. JSON escapes everything by
itself; XML 1.0 forbids some characters outright (C0 controls, lone surrogates, U+FFFE/U+FFFF),
and one forbidden character makes the whole junit.xml unreadable — for this run, every resume
and every nightly that merges it. Replace them; never lose the run over them.
"""
from __future__ import annotations

import re
from typing import Optional

_XML_FORBIDDEN = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
REPLACEMENT = "\ufffd"


def xml_text(text: Optional[object]) -> Optional[str]:
    """text with every character XML 1.0 forbids replaced by U+FFFD (None stays None)."""
    if text is None:
        return None
    return _XML_FORBIDDEN.sub(REPLACEMENT, str(text))


def one_line(text: object, limit: int = 300) -> str:
    """A single printable line (for messages, titles, reasons), at most limit characters."""
    s = " ".join(str(text).split())
    s = _XML_FORBIDDEN.sub(REPLACEMENT, s)
    return s if len(s) <= limit else s[: limit - 1] + "…"


def deep(obj: object, clean=xml_text) -> object:
    """obj with clean() applied to every string inside (dict keys included)."""
    if isinstance(obj, str):
        return clean(obj)
    if isinstance(obj, dict):
        return {deep(k, clean): deep(v, clean) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [deep(v, clean) for v in obj]
    return obj
