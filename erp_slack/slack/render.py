"""Block Kit rendering: pure functions from delivery rows to Slack messages.

Every string that came from an ERP is escaped (``&``, ``<``, ``>``) so
data can never ping ``@channel``, mention a user or forge a link, and every Block Kit limit is
enforced here by truncating with an ellipsis *before* the blocks are built; slack_sdk's model
validation (``to_dict``) then acts as a backstop.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping, Protocol, Sequence
from urllib.parse import quote, urlsplit

from slack_sdk.models.blocks import (
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from erp_slack.model import Entity
from erp_slack.slack.templates import TEMPLATES, Template

__all__ = ["Message", "Notice", "render", "render_one", "render_digest", "escape", "preview", "EVENT_TYPE", "SOURCE_NAMES"]

EVENT_TYPE = "erp_notification_posted"  # Slack asks for <resource>_<past tense action>
SOURCE_NAMES = {"syspro": "SYSPRO", "gp": "Dynamics GP"}

HEADER_MAX = HeaderBlock.text_max_length  # 150
SECTION_MAX = SectionBlock.text_max_length  # 3000
FIELD_MAX = 2000  # per section field; slack_sdk does not check it
FIELDS_MAX = SectionBlock.fields_max_length  # 10
TEXT_MAX = 3000  # top-level fallback text; Slack suggests ≤ 4,000
TOTAL_MAX = 10_000  # cumulative block text: Slack rejects ~12–13k, keep a margin
LINE_MAX = 300  # one digest line
DIGEST_MAX = 25  # records per digest message: 25 × LINE_MAX stays under TOTAL_MAX
# One record's message: header (150) + fields + changes + remarks + footer ≤ TOTAL_MAX.
_NOTE_MAX = 1500  # "what changed" and remarks sections, each
_FOOTER_MAX = 400  # the context line, and a link
_FIELDS_BUDGET = TOTAL_MAX - HEADER_MAX - 2 * _NOTE_MAX - 2 * _FOOTER_MAX - 250  # label markup slack


class Notice(Protocol):
    """What the renderer needs of a delivery (``store.Delivery`` satisfies it)."""

    uid: str
    source: str
    company: str
    entity: str
    record_key: str
    event: str
    fields: Mapping[str, Any]
    changes: Sequence[Sequence[Any]]


@dataclass(frozen=True)
class Message:
    """One chat.postMessage payload."""

    text: str
    blocks: list[dict[str, Any]]
    metadata: dict[str, Any]

    def as_kwargs(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "blocks": self.blocks,
            "metadata": self.metadata,
            "unfurl_links": False,
            "unfurl_media": False,
        }


# --- text safety --------------------------------------------------------------------------


def escape(value: Any) -> str:
    """Slack's three control characters as entities; ``&`` first."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_PARTIAL_ENTITY = re.compile(r"&[a-z]{0,3}$")
# What Slack's formatter would turn into a link on its own: a scheme, or a bare www. host.
_LINKABLE = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*):(?=//)|\b(www)\.")


def unlinked(text: str) -> str:
    """ERP text that Slack cannot turn into a live link: a zero-width space after a scheme's
    colon (``https:\u200b//``) and after ``www``, so a supplier name carrying a URL stays text."""
    return _LINKABLE.sub(lambda m: (m.group(1) + ":\u200b") if m.group(1) else m.group(2) + "\u200b.", text)


def fallback(message: Message) -> Message:
    """The message as plain text, for when Slack refused its blocks: one section whose text is
    shown verbatim (no auto-linking, no mentions parsed) and links in the ERP text defused, with
    the same metadata so reconciliation still finds it."""
    text = unlinked(message.text)
    section = SectionBlock(text=MarkdownTextObject(text=clip(text, SECTION_MAX), verbatim=True))
    return Message(text=clip(text, TEXT_MAX), blocks=[section.to_dict()], metadata=message.metadata)


def clip(text: str, limit: int) -> str:
    """Cut escaped text to ``limit`` characters with an ellipsis, never inside an entity."""
    if len(text) <= limit:
        return text
    cut = _PARTIAL_ENTITY.sub("", text[: limit - 1])
    return cut + "…"


def safe_link(url: str, label: str) -> str | None:
    """A ``<url|label>`` link we build ourselves: http(s) only, label escaped."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    clean = quote(url, safe=":/?&=#%.,-_~+;@!$'()*")
    return f"<{clean}|{escape(label).replace('|', '¦')}>"


# --- value formatting ---------------------------------------------------------------------


def _money(value: Any, currency: str) -> str:
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    text = f"{d:,.2f}"
    if currency and not currency.isalpha():  # a symbol such as "$" sits next to the number
        return f"-{currency}{text[1:]}" if text.startswith("-") else f"{currency}{text}"
    return f"{currency} {text}".strip()


def _qty(value: Any) -> str:
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    return f"{d.normalize():f}" if d == d.to_integral() else f"{d.normalize():f}"


def _fmt(value: Any, kind: str, currency: str) -> str:
    if value is None or value == "":
        return ""
    if kind == "money":
        return _money(value, currency)
    if kind == "qty":
        return _qty(value)
    if kind == "date":
        return value.isoformat() if isinstance(value, date) else str(value)[:10]
    if kind == "int":
        try:
            return str(int(Decimal(str(value))))
        except (InvalidOperation, ValueError):
            return str(value)
    return str(value)


# A headline that names a party falls back to its code when the name is unknown.
_FALLBACK = {"supplier_name": "supplier", "vendor_name": "vendor"}


class _Fields(dict):
    """Format-string lookup: a missing field shows its fallback, else '?', instead of raising."""

    def __missing__(self, key: str) -> str:
        fallback = _FALLBACK.get(key)
        return self[fallback] if fallback and fallback in self else "?"


def _fill(fmt: str, notice: Notice, template: Template, entity: Entity | None) -> str:
    currency = _currency(notice, entity)
    values = _Fields()
    kinds = {s.field: s.format for s in template.slots}
    for k, v in notice.fields.items():
        if v is not None and v != "":
            values[k] = _fmt(v, kinds.get(k, "text"), currency)
    return fmt.format_map(values)


def _currency(notice: Notice, entity: Entity | None) -> str:
    if entity is not None and entity.currency_field:
        cur = notice.fields.get(entity.currency_field)
        if cur:
            return str(cur)
    return entity.default_currency if entity is not None else ""


# --- messages -----------------------------------------------------------------------------

_EVENT_WORD = {"created": "New", "updated": "Updated", "status_change": "Status changed"}


def _template(notice: Notice, entity: Entity | None) -> Template:
    return TEMPLATES[entity.template] if entity is not None else TEMPLATES["supplier_invoice"]


def _metadata(notices: Sequence[Notice], batch_uid: str) -> dict[str, Any]:
    # Read back by reconciliation after an ambiguous failure (send.py); no secrets, no PII.
    return {
        "event_type": EVENT_TYPE,
        "event_payload": {"batch": batch_uid, "deliveries": [n.uid for n in notices], "schema_version": 1},
    }


def _changes_text(notice: Notice, template: Template, entity: Entity | None) -> str:
    labels = {s.field: (s.label, s.format) for s in template.slots}
    currency = _currency(notice, entity)
    parts = []
    for name, old, new in notice.changes:
        label, kind = labels.get(name, (name.replace("_", " ").capitalize(), "text"))
        before = escape(_fmt(old, kind, currency)) or "—"
        after = escape(_fmt(new, kind, currency)) or "—"
        parts.append(f"*{escape(label)}*: {before} → {after}")
    return "\n".join(parts)


def render_one(notice: Notice, entity: Entity | None, *, batch_uid: str) -> Message:
    """One record, one message: header, up to ten fields, what changed, and the source line."""
    template = _template(notice, entity)
    currency = _currency(notice, entity)
    word = _EVENT_WORD.get(notice.event, "")
    headline = _fill(template.headline, notice, template, entity)
    title = f"{word}: {headline}" if word and notice.event != "created" else headline
    blocks: list[Any] = [HeaderBlock(text=PlainTextObject(text=clip(escape(title), HEADER_MAX), emoji=False))]
    shown = [(slot, _fmt(notice.fields.get(slot.field), slot.format, currency)) for slot in template.slots]
    shown = [(slot, value) for slot, value in shown if value][:FIELDS_MAX]
    # Every part has its own limit, and together they stay under the message's total text
    # budget (TOTAL_MAX): the fields share what the header, changes, remarks and footer leave.
    per_field = min(FIELD_MAX, _FIELDS_BUDGET // max(1, len(shown)))
    fields = [
        MarkdownTextObject(text=f"*{slot.label}*\n{clip(escape(value), per_field - len(slot.label) - 4)}", verbatim=True)
        for slot, value in shown
    ]
    if fields:
        blocks.append(SectionBlock(fields=fields))
    if notice.changes:
        changed = _changes_text(notice, template, entity)
        if changed:
            blocks.append(SectionBlock(text=MarkdownTextObject(text=clip("*What changed*\n" + changed, _NOTE_MAX), verbatim=True)))
    remarks = notice.fields.get("remarks")
    if remarks:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=clip(escape(remarks), _NOTE_MAX), verbatim=True)))
    context = [MarkdownTextObject(text=clip(_source_line(notice, entity), _FOOTER_MAX), verbatim=True)]
    link = _link(notice, entity)
    if link:
        context.append(MarkdownTextObject(text=link, verbatim=True))
    blocks.append(ContextBlock(elements=context))
    text = clip(f"{template.emoji} {escape(title)}", TEXT_MAX)
    return _message(text, blocks, _metadata([notice], batch_uid))


def render_digest(notices: Sequence[Notice], entities: Mapping[tuple[str, str], Entity], *, batch_uid: str) -> Message:
    """Several records of one channel in one message: a header, then one line per record."""
    if not notices:
        raise ValueError("a digest needs at least one record")
    if len(notices) > DIGEST_MAX:
        raise ValueError(f"a digest carries at most {DIGEST_MAX} records")
    nouns = {(_template(n, entities.get((n.source, n.entity))).plural) for n in notices}
    noun = nouns.pop() if len(nouns) == 1 else "ERP updates"
    title = f"{len(notices)} {noun}"
    blocks: list[Any] = [HeaderBlock(text=PlainTextObject(text=clip(title, HEADER_MAX), emoji=False))]
    lines, summaries = [], []
    for n in notices:
        entity = entities.get((n.source, n.entity))
        template = _template(n, entity)
        word = _EVENT_WORD.get(n.event, "")
        summary = escape(_fill(template.summary, n, template, entity))
        summaries.append(summary)
        tag = f" _{word.lower()}_" if n.event != "created" else ""
        if n.changes and n.event != "created":
            tag += " — " + _changes_text(n, template, entity).replace("\n", "; ")
        lines.append(clip(f"{template.emoji} {summary}{tag}", LINE_MAX))
    chunk: list[str] = []
    for line in lines:
        if chunk and sum(len(x) + 1 for x in chunk) + len(line) > SECTION_MAX - 10:
            blocks.append(SectionBlock(text=MarkdownTextObject(text="\n".join(chunk), verbatim=True)))
            chunk = []
        chunk.append(line)
    blocks.append(SectionBlock(text=MarkdownTextObject(text="\n".join(chunk), verbatim=True)))
    blocks.append(DividerBlock())
    first = notices[0]
    blocks.append(ContextBlock(elements=[MarkdownTextObject(text=_source_line(first, entities.get((first.source, first.entity)), digest=True), verbatim=True)]))
    more = " …" if len(summaries) > 5 else ""
    text = clip(f"{title}: " + "; ".join(summaries[:5]) + more, TEXT_MAX)
    return _message(text, blocks, _metadata(notices, batch_uid))


def render(notices: Sequence[Notice], entities: Mapping[tuple[str, str], Entity], *, batch_uid: str) -> Message:
    """One message for one record, a digest for several."""
    if len(notices) == 1:
        n = notices[0]
        return render_one(n, entities.get((n.source, n.entity)), batch_uid=batch_uid)
    return render_digest(notices, entities, batch_uid=batch_uid)


def _source_line(notice: Notice, entity: Entity | None, *, digest: bool = False) -> str:
    system = SOURCE_NAMES.get(notice.source, notice.source)
    what = "" if digest or entity is None else f" · {escape(entity.title)} {escape(notice.record_key.replace('|', ' / '))}"
    return clip(f"{system} · company {escape(notice.company)}{what}", 2000)


def _link(notice: Notice, entity: Entity | None) -> str | None:
    if entity is None or not entity.link:
        return None
    try:
        url = entity.link.format_map({k: quote(str(v), safe="") for k, v in notice.fields.items() if v is not None})
    except (KeyError, ValueError):
        return None
    return safe_link(url, f"Open in {SOURCE_NAMES.get(notice.source, notice.source)}")


def _message(text: str, blocks: list[Any], metadata: dict[str, Any]) -> Message:
    dicts = [b.to_dict() for b in blocks]  # slack_sdk validates its own limits here
    return Message(text=text or "ERP notification", blocks=dicts, metadata=metadata)


def render_alert(title: str, body: str, *, ok: bool) -> Message:
    """An operational alert for the ops channel (failure or recovery); ``body`` is escaped."""
    emoji = ":white_check_mark:" if ok else ":rotating_light:"
    blocks = [
        HeaderBlock(text=PlainTextObject(text=clip(f"{title}", HEADER_MAX), emoji=False)),
        SectionBlock(text=MarkdownTextObject(text=clip(escape(body), SECTION_MAX), verbatim=True)),
    ]
    metadata = {"event_type": "erp_alert_raised" if not ok else "erp_alert_cleared", "event_payload": {"schema_version": 1}}
    return _message(clip(f"{emoji} {escape(title)}", TEXT_MAX), blocks, metadata)


_MRKDWN = re.compile(r"<([^|<>]+)\|([^<>]+)>")


def preview(blocks: Sequence[Mapping[str, Any]], *, width: int = 72) -> str:
    """A Block Kit message as plain text, roughly as Slack lays it out: the header, each
    section's text and fields (two to a line), context lines, dividers. For the demo and docs."""
    from html import unescape

    def plain(text: str) -> str:
        return unescape(_MRKDWN.sub(r"\2", text)).replace("*", "")

    out: list[str] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "header":
            title = plain(block["text"]["text"])
            out += [title, "=" * min(width, len(title))]
        elif kind == "section":
            if block.get("text"):
                out.append(plain(block["text"]["text"]))
            fields = [plain(f["text"]).replace("\n", ": ", 1) for f in block.get("fields", [])]
            for i in range(0, len(fields), 2):
                pair = fields[i:i + 2]
                out.append("  " + ("   ".join([pair[0].ljust(width // 2 - 4), pair[1]]) if len(pair) == 2
                                      else pair[0]))
        elif kind == "context":
            out.append("  " + " · ".join(plain(e.get("text", "")) for e in block.get("elements", [])))
        elif kind == "divider":
            out.append("-" * width)
    return "\n".join(out)
