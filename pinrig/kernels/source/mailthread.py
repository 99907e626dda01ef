"""A thread as a list archive serves it → the patches of one revision of one series.

An mbox from lore (or `b4 mbox`, or a mail client's save, or a directory of .eml files) holds a
cover letter `[PATCH vN 0/M]`, patches `[PATCH vN k/M]`, replies (reviews, acks, "Re: …" with the
patch quoted), sometimes several revisions of the series and resends. This module reads the mails
(MIME: quoted-printable, base64, 8bit, RFC 2047 encoded names, via the stdlib `email` package),
groups the patches by revision, picks one (the newest complete revision, or the one asked for),
and collects the trailers (Reviewed-by:, Acked-by:, Tested-by: …) that replies gave each patch.

Nothing here knows what a diff is: the caller passes `has_diff(body) -> bool`.
"""
from __future__ import annotations

import email
import email.policy
import email.utils
import re
from dataclasses import dataclass, field
from typing import Callable, Optional

from pinrig.errors import UserError

_MBOX_FROM_RE = re.compile(r"^From \S+.*\d{4}\s*$")
_REPLY_RE = re.compile(r"^\s*((re|aw|sv|fwd?)\s*:\s*)+", re.I)
_BRACKETS_RE = re.compile(r"^\s*\[([^\]]*)\]\s*")
TRAILER_RE = re.compile(
    r"^(Reviewed-by|Acked-by|Tested-by|Reported-by|Suggested-by|Co-developed-by|Signed-off-by|"
    r"Closes|Fixes|Link|Cc|Nacked-by|Reported-and-tested-by)\s*:\s*(\S.*)$", re.I)
# trailers a reply gives a patch (a reviewer's Signed-off-by or Cc in a reply is not one)
REPLY_TRAILERS = ("reviewed-by", "acked-by", "tested-by", "reported-by", "suggested-by",
                  "nacked-by", "reported-and-tested-by")


@dataclass(frozen=True)
class Mail:
    index: int                # 1-based position in the input (for messages)
    origin: str               # "FILE (message 3)" or the .eml path
    msgid: str                # without <>
    parent: str               # In-Reply-To (else the last References entry), without <>
    subject: str              # decoded, with its prefixes
    title: str                # the subject without Re:/[PATCH …] prefixes
    author: str               # decoded "Name <addr>"
    date: str                 # the Date: header as sent
    when: float               # Date: as a timestamp (0 when unreadable)
    body: str                 # decoded text (quoted-printable/base64 undone)
    is_reply: bool            # "Re: …"
    version: int              # vN (1 when the subject has none)
    num: Optional[int]        # k of k/M (None when unnumbered)
    total: Optional[int]      # M of k/M
    tags: tuple = ()          # other words in the brackets: PATCH, RFC, RESEND, net-next …
    has_diff: bool = False

    @property
    def label(self) -> str:
        n = f" {self.num}/{self.total}" if self.num is not None else ""
        return f"v{self.version}{n}"


@dataclass(frozen=True)
class Selection:
    revision: int
    patches: tuple            # Mail… in apply order
    cover: Optional[Mail]
    notes: tuple              # what was found and why this revision (for reports)
    trailers: dict = field(default_factory=dict)   # msgid → (trailer line…) from replies
    revisions: tuple = ()     # (version, have, total) for every revision seen


# ---------------------------------------------------------------------------- reading

def split_mbox(text: str) -> list:
    """mbox text → message texts. Accepts mboxo/mboxrd ('From ' separators, '>From' unescaped) and
    a single message without a From line (a `git format-patch` file or a saved mail)."""
    lines = text.splitlines(keepends=True)
    msgs: list[list[str]] = []
    cur: list[str] = []
    prev_blank = True
    for line in lines:
        if prev_blank and _MBOX_FROM_RE.match(line.rstrip("\n")):
            if cur:
                msgs.append(cur)
            cur = []
        else:
            if re.match(r"^>+From ", line):
                line = line[1:]
            cur.append(line)
        prev_blank = not line.strip()
    if cur:
        msgs.append(cur)
    return ["".join(m) for m in msgs if "".join(m).strip()]


def is_mbox_start(text: str) -> bool:
    return bool(_MBOX_FROM_RE.match(text.split("\n", 1)[0]))


def body_of(msg) -> str:
    """The text of a message: every text/* part (and attached patches) decoded, in order."""
    if msg.is_multipart():
        parts = []
        for part in msg.walk():
            if part.is_multipart():
                continue
            ctype = part.get_content_type()
            name = (part.get_filename() or "").lower()
            if ctype == "text/html":
                continue
            if ctype.startswith("text/") or name.endswith((".patch", ".diff")) \
                    or ctype == "application/octet-stream":
                parts.append(decode_part(part))
        return "\n".join(parts)
    return decode_part(msg)


def decode_part(part) -> str:
    payload = part.get_payload(decode=True)
    if payload is None:
        return str(part.get_payload())
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, errors="surrogateescape")
    except LookupError:
        return payload.decode("utf-8", errors="surrogateescape")


def _header(msg, name: str) -> str:
    try:
        value = msg.get(name)
    except (ValueError, TypeError, IndexError):     # a header email cannot parse: keep it raw
        value = None
        for k, v in msg.raw_items():
            if k.lower() == name.lower():
                value = v
    return " ".join(str(value or "").split())


def _ids(text: str) -> list:
    return re.findall(r"<([^<>\s]+)>", text) or ([text.strip()] if text.strip() else [])


def parse_subject(subject: str) -> tuple:
    """'Re: [PATCH v3 02/12] mm/gup: x' → (is_reply, version, num, total, tags, title)."""
    s = " ".join(subject.split())
    m = _REPLY_RE.match(s)
    is_reply = bool(m)
    if m:
        s = s[m.end():]
    version, num, total, tags = 1, None, None, []
    while True:
        m = _BRACKETS_RE.match(s)
        if not m:
            break
        for word in m.group(1).split():
            mv = re.fullmatch(r"(?:PATCH|RFC)?v(\d+)", word, re.I)     # v2, PATCHv2, RFCv3
            if mv:
                version = int(mv.group(1))
            elif re.fullmatch(r"\d+/\d+", word):
                a, b = word.split("/")
                num, total = int(a), int(b)
            else:
                tags.append(word)
        s = s[m.end():]
        r = _REPLY_RE.match(s)             # "[PATCH] Re: …" happens too
        if r:
            is_reply = True
            s = s[r.end():]
    return is_reply, version, num, total, tuple(tags), s.strip()


def _when(date: str) -> float:
    try:
        return email.utils.parsedate_to_datetime(date).timestamp() if date else 0.0
    except (TypeError, ValueError, IndexError, OverflowError):
        return 0.0


def read_mail(raw: bytes, index: int, origin: str, has_diff: Callable[[str], bool]) -> Mail:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    subject = _header(msg, "Subject")
    if not msg.keys():                       # not a mail at all: a bare diff
        body, subject = raw.decode("utf-8", errors="surrogateescape"), ""
    else:
        body = body_of(msg)
    body = body.rstrip("\n") + "\n"          # how the mail was stored does not change it
    is_reply, version, num, total, tags, title = parse_subject(subject)
    parent = _ids(_header(msg, "In-Reply-To"))
    refs = _ids(_header(msg, "References"))
    date = _header(msg, "Date")
    return Mail(index=index, origin=origin, msgid=(_ids(_header(msg, "Message-ID")) or [""])[0],
                parent=(parent or refs or [""])[-1] if not parent else parent[0],
                subject=subject, title=title, author=_header(msg, "From"), date=date,
                when=_when(date), body=body, is_reply=is_reply, version=version, num=num,
                total=total, tags=tags, has_diff=has_diff(body))


def read_mbox(data: bytes, origin: str, has_diff: Callable[[str], bool]) -> list:
    text = data.decode("utf-8", errors="surrogateescape")
    return [read_mail(m.encode("utf-8", "surrogateescape"), i, f"{origin} (message {i})", has_diff)
            for i, m in enumerate(split_mbox(text), 1)]


# ---------------------------------------------------------------------------- picking

def reply_trailers(body: str) -> tuple:
    """Trailer lines a reply gives (not quoted, not in a patch it quotes)."""
    out = []
    for line in body.splitlines():
        if line.startswith(">"):
            continue
        m = TRAILER_RE.match(line.strip())
        if m and m.group(1).lower() in REPLY_TRAILERS:
            out.append(f"{_canon(m.group(1))}: {m.group(2).strip()}")
    return tuple(dict.fromkeys(out))


def _canon(key: str) -> str:
    return key[:1].upper() + key[1:].lower()          # "ACKED-BY" → "Acked-by"


def _fmt(nums) -> str:
    return ", ".join(str(n) for n in sorted(nums))


def pick(mails: list, origin: str, rev: Optional[int] = None) -> Selection:
    """The patches of one revision, in order. Default: the newest complete revision."""
    patches = [m for m in mails if m.has_diff and not m.is_reply]
    if not patches:
        quoted = sum(1 for m in mails if m.has_diff)
        why = f" ({quoted} repl{'y' if quoted == 1 else 'ies'} quoting one)" if quoted else ""
        raise UserError(f"{origin}: no patch in it (no message with a diff{why}; "
                        f"{len(mails)} message(s) read)")
    notes: list = []
    ignored_replies = sum(1 for m in mails if m.is_reply)
    by_rev: dict = {}
    for m in patches:
        by_rev.setdefault(m.version, []).append(m)
    covers = {m.version: m for m in mails if not m.is_reply and m.num == 0 and not m.has_diff}
    # per revision: {num: mail} (latest wins for resends) and the unnumbered ones
    table: dict = {}
    for v, ms in sorted(by_rev.items()):
        numbered: dict = {}
        loose = []
        totals = {m.total for m in ms if m.total}
        for m in ms:
            if m.num is None:
                loose.append(m)
                continue
            old = numbered.get(m.num)
            if old is not None:
                newer = m if (m.when, m.index) >= (old.when, old.index) else old
                if old.body != m.body:
                    notes.append(f"v{v} {m.num}/{m.total} was sent twice ({old.origin}, "
                                 f"{m.origin}): using the later one, {newer.origin}")
                m = newer
            numbered[m.num] = m
        total = max(totals) if totals else len(loose)
        if len(totals) > 1:
            notes.append(f"v{v}: patches disagree on the count ({'/'.join(map(str, sorted(totals)))})"
                         f"; taking {total}")
        if numbered and loose:
            notes.append(f"v{v}: {len(loose)} unnumbered patch(es) besides the numbered ones "
                         f"ignored ({', '.join(m.origin for m in loose)})")
        if numbered:
            missing = [k for k in range(1, total + 1) if k not in numbered]
            order = [numbered[k] for k in sorted(numbered) if k >= 1]
        else:
            missing, order = [], loose            # unnumbered only: file order
        table[v] = (order, total, missing, numbered)
    revisions = tuple((v, len(table[v][0]), table[v][1]) for v in sorted(table))
    complete = [v for v in table if not table[v][2]]
    if rev is not None:
        if rev not in table:
            have = ", ".join(f"v{v}" for v in sorted(table))
            raise UserError(f"{origin}: --rev {rev}: no revision {rev} in it (has {have})")
        chosen = rev
        why = f"v{rev} as asked (--rev {rev})"
    elif complete:
        chosen = max(complete)
        why = f"v{chosen}, the newest complete revision"
    else:
        desc = "; ".join(f"v{v} has {_fmt(table[v][3])} of {table[v][1]} "
                         f"(missing {_fmt(table[v][2])})" for v in sorted(table))
        raise UserError(f"{origin}: no complete revision of the series ({desc}); "
                        f"use --rev N to fill one from an earlier revision")
    order, total, missing, numbered = table[chosen]
    if missing:                     # a partial reroll: take the rest from earlier revisions
        filled = dict(numbered)
        for k in missing:
            for v in sorted((v for v in table if v < chosen), reverse=True):
                if table[v][1] == total and k in table[v][3]:
                    filled[k] = table[v][3][k]
                    notes.append(f"patch {k}/{total} taken from v{v} (v{chosen} has no {k}/{total})")
                    break
            else:
                raise UserError(f"{origin}: v{chosen} lacks patch {k}/{total} and no earlier "
                                f"revision of {total} patches has it")
        order = [filled[k] for k in sorted(filled) if k >= 1]
        why += " (partial reroll, completed from earlier revisions)"
    for v in sorted(table, reverse=True):
        if v == chosen:
            continue
        state = "complete" if not table[v][2] else \
            f"incomplete: {len(table[v][0])} of {table[v][1]}, missing {_fmt(table[v][2])}"
        notes.append(f"v{v} not used ({state})")
    if ignored_replies:
        notes.append(f"{ignored_replies} repl{'y' if ignored_replies == 1 else 'ies'} "
                     "(not patches) skipped")
    # trailers from replies: to a patch → that patch; to the cover letter → every patch
    by_id = {m.msgid: m for m in mails if m.msgid}
    cover = covers.get(chosen)
    trailers: dict = {}
    for m in mails:
        if m.has_diff and not m.is_reply:
            continue
        got = reply_trailers(m.body) if (m.is_reply or m.num is None) else ()
        if not got:
            continue
        target = by_id.get(m.parent)
        seen = set()
        while target is not None and target.msgid not in seen and \
                (target.is_reply or (not target.has_diff and target.num != 0)):
            seen.add(target.msgid)       # a reply to a reply: walk up to the patch or cover
            target = by_id.get(target.parent)
        if target is None:
            continue
        if cover is not None and target.msgid == cover.msgid:
            for p in order:
                trailers.setdefault(p.msgid, [])
                trailers[p.msgid] += [t for t in got if t not in trailers[p.msgid]]
        elif target.msgid in {p.msgid for p in order}:
            trailers.setdefault(target.msgid, [])
            trailers[target.msgid] += [t for t in got if t not in trailers[target.msgid]]
    notes.insert(0, f"using {why}: {len(order)} patch(es)"
                 + (f", cover letter {cover.title!r}" if cover else ""))
    return Selection(chosen, tuple(order), cover, tuple(notes),
                     {k: tuple(v) for k, v in trailers.items()}, revisions)
