"""Block Kit rendering: pure functions from delivery rows to Slack messages.

Every string that came from an ERP is escaped (``&``, ``<``, ``>``) so
data can never ping ``@channel``, mention a user or forge a link, and every Block Kit limit is
enforced here by truncating with an ellipsis *before* the blocks are built; slack_sdk's model
validation (``to_dict``) then acts as a backstop.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
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

__all__ = ["Message", "Notice", "render", "render_one", "render_digest", "render_reply", "render_archive", "render_summary", "coded", "escape", "preview", "EVENT_TYPE", "SOURCE_NAMES"]

EVENT_TYPE = "erp_notification_posted"  # Slack asks for <resource>_<past tense action>
SOURCE_NAMES = {"syspro": "SYSPRO", "gp": "Dynamics GP", "summary": "Scheduled summary"}

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


_NO_NAMES: Mapping[tuple[str, str], str] = MappingProxyType({})


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
    mentions: Sequence[str]  # from the routing rule's ``notify``, never from the ERP


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


def mention(target: str) -> str:
    """Slack's markup for one configured ``notify`` target (validated at load: U…/W…, S…, @here,
    @channel); the only place a message's mention markup comes from."""
    if target in ("@here", "@channel"):
        return f"<!{target[1:]}>"
    if target.startswith("S"):
        return f"<!subteam^{target}>"
    return f"<@{target}>"


def _mentions(notices: Sequence[Notice]) -> str:
    targets = dict.fromkeys(t for n in notices for t in n.mentions)
    return " ".join(mention(t) for t in targets)


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


def _on_hold(notice: Notice) -> bool:
    """The document is on hold (the ERP's hold flag, decoded to Yes/No by the entity's labels)."""
    return str(notice.fields.get("hold", "")).strip().lower() in ("yes", "y", "true", "1")


def _shown(notice: Notice, name: str, kind: str, currency: str) -> str:
    """A field as a person reads it; a supplier invoice whose balance has reached zero is "Paid"."""
    value = notice.fields.get(name)
    if name == "balance" and value not in (None, ""):
        try:
            if Decimal(str(value)) == 0 and Decimal(str(notice.fields.get("amount") or 0)) != 0:
                return "Paid"
        except InvalidOperation:
            pass
    return _fmt(value, kind, currency)


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


def _kind_of(name: str, entity: Entity | None) -> str:
    """How to show a field the template has no slot for: decimals are amounts in the document's
    currency (quantities apart), dates are dates."""
    kind = entity.types.get(name, "str") if entity is not None else "str"
    if kind == "decimal":
        return "qty" if name == "quantity" else "money"
    return "date" if kind in ("date", "datetime") else "text"


def _changes_text(notice: Notice, template: Template, entity: Entity | None) -> str:
    labels = {s.field: (s.label, s.format) for s in template.slots}
    currency = _currency(notice, entity)
    parts = []
    for name, old, new in notice.changes:
        label, kind = labels.get(name, (name.replace("_", " ").capitalize(), _kind_of(name, entity)))
        before = escape(_fmt(old, kind, currency)) or "—"
        after = escape(_fmt(new, kind, currency)) or "—"
        parts.append(f"*{escape(label)}*: {before} → {after}")
    return "\n".join(parts)


def render_one(
    notice: Notice, entity: Entity | None, *, batch_uid: str, names: Mapping[tuple[str, str], str] = _NO_NAMES,
    living: bool = False, earlier: str | None = None,
) -> Message:
    """One record, one message: header, up to ten fields, what changed, and the source line.

    ``living``: the document's living message as it now stands (no "Updated:" and no "what
    changed": the thread says that). ``earlier``: the permalink of the document's previous
    living message, which Slack would no longer let us edit.
    """
    template = _template(notice, entity)
    currency = _currency(notice, entity)
    word = "" if living else _EVENT_WORD.get(notice.event, "")
    headline = _fill(template.headline, notice, template, entity)
    title = f"{word}: {headline}" if word and notice.event != "created" else headline
    # plain_text is shown as it is (Slack parses no markup in it), so "&" stays "&" where a reader
    # sees it ("ACME & Sons", not "ACME &amp; Sons"); "<" and ">" are still defused, belt and braces.
    plain = title.replace("<", "&lt;").replace(">", "&gt;")
    blocks: list[Any] = [HeaderBlock(text=PlainTextObject(text=clip(plain, HEADER_MAX), emoji=False))]
    shown = [(slot, _shown(notice, slot.field, slot.format, currency)) for slot in template.slots]
    shown = [(slot, value) for slot, value in shown if value][:FIELDS_MAX]
    if _on_hold(notice):
        # What a clerk must not miss: right under the header, and first in the notification.
        blocks.append(SectionBlock(text=MarkdownTextObject(text=":warning: *On hold*", verbatim=True)))
        title = f"On hold · {title}"
    # Every part has its own limit, and together they stay under the message's total text
    # budget (TOTAL_MAX): the fields share what the header, changes, remarks and footer leave.
    per_field = min(FIELD_MAX, _FIELDS_BUDGET // max(1, len(shown)))
    fields = [
        MarkdownTextObject(text=f"*{slot.label}*\n{clip(escape(value), per_field - len(slot.label) - 4)}", verbatim=True)
        for slot, value in shown
    ]
    if fields:
        blocks.append(SectionBlock(fields=fields))
    if notice.changes and not living:
        changed = _changes_text(notice, template, entity)
        if changed:
            blocks.append(SectionBlock(text=MarkdownTextObject(text=clip("*What changed*\n" + changed, _NOTE_MAX), verbatim=True)))
    remarks = notice.fields.get("remarks")
    if remarks:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=clip(escape(remarks), _NOTE_MAX), verbatim=True)))
    context = [MarkdownTextObject(text=clip(_source_line(notice, entity, names), _FOOTER_MAX), verbatim=True)]
    link = _link(notice, entity)
    if link:
        context.append(MarkdownTextObject(text=link, verbatim=True))
    before = safe_link(earlier, "earlier message") if earlier else None
    if before:
        context.append(MarkdownTextObject(text=f"Continues an {before}", verbatim=True))
    blocks.append(ContextBlock(elements=context))
    text = clip(f"{template.emoji} {escape(title)}", TEXT_MAX)
    return _message(*_notify([notice], text, blocks), _metadata([notice], batch_uid))


def render_reply(notice: Notice, entity: Entity | None, *, batch_uid: str) -> Message:
    """A thread reply under a document's living message: what changed, in one line
    ("*Status*: Released → Received · *Received*: 1 → 2"), with the rule's mentions."""
    template = _template(notice, entity)
    changed = _changes_text(notice, template, entity).replace("\n", " · ")
    line = changed or _EVENT_WORD.get(notice.event, "Updated")
    blocks: list[Any] = [SectionBlock(text=MarkdownTextObject(text=clip(line, SECTION_MAX), verbatim=True))]
    text = clip(f"{template.emoji} {line}", TEXT_MAX)
    return _message(*_notify([notice], text, blocks), _metadata([notice], batch_uid))


def render_digest(
    notices: Sequence[Notice], entities: Mapping[tuple[str, str], Entity], *, batch_uid: str,
    names: Mapping[tuple[str, str], str] = _NO_NAMES, threads: Mapping[str, str] = _NO_NAMES,
) -> Message:
    """Several records of one channel in one message: a header, then one line per record;
    ``threads`` maps a delivery's uid to its document's living message (the line links it)."""
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
        line, summary = _digest_line(n, entities, threads)
        lines.append(line)
        summaries.append(summary)
    blocks += _sections(lines)
    totals = _totals(notices, entities)
    if totals:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=clip(f"*Total* {escape(totals)}", SECTION_MAX),
                                                           verbatim=True)))
    blocks.append(DividerBlock())
    first = notices[0]
    blocks.append(ContextBlock(elements=[MarkdownTextObject(text=_source_line(first, entities.get((first.source, first.entity)), names, digest=True), verbatim=True)]))
    more = " …" if len(summaries) > 5 else ""
    text = clip(f"{title}: " + "; ".join(summaries[:5]) + more, TEXT_MAX)
    return _message(*_notify(notices, text, blocks), _metadata(notices, batch_uid))


def _digest_line(n: Notice, entities: Mapping[tuple[str, str], Entity], threads: Mapping[str, str], *,
                 events: bool = True) -> tuple[str, str]:
    """One record as a digest line (and its summary alone, for the notification text); without
    ``events`` the line says where the document stands, not what last happened to it."""
    entity = entities.get((n.source, n.entity))
    template = _template(n, entity)
    word = _EVENT_WORD.get(n.event, "")
    summary = escape(_fill(template.summary, n, template, entity))
    tag = f" _{word.lower()}_" if events and n.event != "created" else ""
    if _on_hold(n):
        tag += " · *on hold*"
    elif _shown(n, "balance", "money", "") == "Paid":
        tag += " · paid"
    due = _fmt(n.fields.get("due_date"), "date", "")
    line = summary
    if due and "{due_date}" not in template.summary:
        line += f" · due {escape(due)}"  # what a clerk sorts a list of invoices by
    if events and n.changes and n.event != "created":
        tag += " — " + _changes_text(n, template, entity).replace("\n", "; ")
    thread = safe_link(threads[n.uid], "thread") if n.uid in threads else None
    room = LINE_MAX - (len(thread) + 3 if thread else 0)
    return clip(f"{template.emoji} {line}{tag}", room) + (f" · {thread}" if thread else ""), summary


def _sections(lines: Sequence[str]) -> list[Any]:
    """Lines as few sections as Slack's section limit allows."""
    sections, chunk = [], []
    for line in lines:
        if chunk and sum(len(x) + 1 for x in chunk) + len(line) > SECTION_MAX - 10:
            sections.append(SectionBlock(text=MarkdownTextObject(text="\n".join(chunk), verbatim=True)))
            chunk = []
        chunk.append(line)
    sections.append(SectionBlock(text=MarkdownTextObject(text="\n".join(chunk), verbatim=True)))
    return sections


def _totals(notices: Sequence[Notice], entities: Mapping[tuple[str, str], Entity]) -> str:
    """The digest's amounts summed per currency ("EUR 12,400.50 · USD 300.00"), never across
    currencies; empty when no record has an amount."""
    sums: dict[str, Decimal] = {}
    for n in notices:
        entity = entities.get((n.source, n.entity))
        if entity is None or not entity.amount_field:
            continue
        try:
            amount = Decimal(str(n.fields.get(entity.amount_field)))
        except (InvalidOperation, ValueError):
            continue
        if amount.is_finite():
            currency = _currency(n, entity)
            sums[currency] = sums.get(currency, Decimal(0)) + amount
    return " · ".join(_money(total, currency) for currency, total in sorted(sums.items()))


def render(
    notices: Sequence[Notice], entities: Mapping[tuple[str, str], Entity], *, batch_uid: str,
    names: Mapping[tuple[str, str], str] = _NO_NAMES, threads: Mapping[str, str] = _NO_NAMES,
    earlier: str | None = None,
) -> Message:
    """One message for one record, a digest for several; ``names`` says what to call a company
    ((source, company) -> name), else it is shown as configured."""
    if len(notices) == 1:
        n = notices[0]
        return render_one(n, entities.get((n.source, n.entity)), batch_uid=batch_uid, names=names, earlier=earlier)
    return render_digest(notices, entities, batch_uid=batch_uid, names=names, threads=threads)


def _notify(notices: Sequence[Notice], text: str, blocks: list[Any]) -> tuple[str, list[Any]]:
    """The configured mentions, first in the notification text (what a push shows) and as a line
    under the header; nothing when the rule notifies nobody."""
    who = _mentions(notices)
    if not who:
        return text, blocks
    line = SectionBlock(text=MarkdownTextObject(text=f"cc {who}", verbatim=True))
    return clip(f"{who} {text}", TEXT_MAX), [blocks[0], line, *blocks[1:]]


def _source_line(
    notice: Notice, entity: Entity | None, names: Mapping[tuple[str, str], str] = _NO_NAMES, *, digest: bool = False,
) -> str:
    system = SOURCE_NAMES.get(notice.source, notice.source)
    what = "" if digest or entity is None else f" · {escape(entity.title)} {escape(notice.record_key.replace('|', ' / '))}"
    name = names.get((notice.source, notice.company))
    company = f"{escape(name)} ({escape(notice.company)})" if name and name != notice.company else escape(notice.company)
    return clip(f"{system} · company {company}{what}", 2000)


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


ARCHIVE_EVENT = "erp_archive_thread_opened"


def render_archive(
    *, source: str, company: str, label: str, uid: str, replies: Sequence[Notice],
    entities: Mapping[tuple[str, str], Entity], closed: bool, names: Mapping[tuple[str, str], str] = _NO_NAMES,
) -> Message:
    """A period's archive parent: per kind of document, how many replies the thread holds and
    their totals per currency; "closed" once the period has ended. ``uid`` goes in the metadata,
    so a parent whose post was not recorded is found in the channel instead of posted again."""
    groups: dict[str, list[Notice]] = {}
    for n in replies:
        groups.setdefault(n.entity, []).append(n)
    nouns = {e: _template(ns[0], entities.get((ns[0].source, e))).plural for e, ns in groups.items()}
    what = next(iter(nouns.values())) if len(nouns) == 1 else "postings"
    name = names.get((source, company))
    who = name if name and name != company else company
    title = f"{what[:1].upper()}{what[1:]} · {label} · {who}"
    blocks: list[Any] = [HeaderBlock(text=PlainTextObject(text=clip(title.replace("<", "&lt;").replace(">", "&gt;"),
                                                                    HEADER_MAX), emoji=False))]
    lines = []
    for entity, ns in groups.items():
        totals = _totals(ns, entities)
        noun = nouns[entity][:1].upper() + nouns[entity][1:]
        lines.append(f"*{escape(noun)}*: {len(ns)}" + (f" · {escape(totals)}" if totals else ""))
    body = "\n".join(lines) if lines else "Nothing yet: each posting of the period is a reply in this thread."
    blocks.append(SectionBlock(text=MarkdownTextObject(text=clip(body, SECTION_MAX), verbatim=True)))
    state = ":lock: *Closed* · final totals" if closed else "Open · totals so far"
    system = SOURCE_NAMES.get(source, source)
    blocks.append(ContextBlock(elements=[MarkdownTextObject(
        text=clip(f"{state} · {escape(system)} · company {escape(who)} · each posting is a reply in this thread",
                  _FOOTER_MAX), verbatim=True)]))
    metadata = {"event_type": ARCHIVE_EVENT, "event_payload": {"batch": uid, "schema_version": 1}}
    return _message(clip(f":card_index_dividers: {escape(title)}", TEXT_MAX), blocks, metadata)


SUMMARY_EVENT = "erp_summary_posted"


def render_summary(
    *, title: str, when: str, uid: str, notices: Sequence[Notice], entities: Mapping[tuple[str, str], Entity],
    names: Mapping[tuple[str, str], str] = _NO_NAMES, threads: Mapping[str, str] = _NO_NAMES,
    limit: int = DIGEST_MAX, note: str = "",
) -> Message:
    """A scheduled summary: how many documents match, their totals per currency, and the first
    ``limit`` of them (the earliest due first), each linked to its thread where it has one.
    ``when`` is the slot people read ("09:00 Thu 3 Dec"); ``uid`` goes in the metadata, so a post
    whose answer was lost is found in the channel instead of made twice."""
    head = f"{title} · {when}"
    blocks: list[Any] = [HeaderBlock(text=PlainTextObject(text=clip(head.replace("<", "&lt;").replace(">", "&gt;"),
                                                                   HEADER_MAX), emoji=False))]
    if not notices:
        blocks.append(SectionBlock(text=MarkdownTextObject(text="Nothing to show: no document is in this state.",
                                                           verbatim=True)))
        text = f"{head}: nothing to show"
    else:
        kinds = {_template(n, entities.get((n.source, n.entity))) for n in notices}
        if len(kinds) > 1:
            noun = "document" if len(notices) == 1 else "documents"
        elif len(notices) > 1:
            noun = kinds.pop().plural
        else:
            word = kinds.pop().noun  # "Supplier invoice" reads "supplier invoice"; "GL journal entry" stays
            noun = word[:1].lower() + word[1:] if word[1:2].islower() else word
        totals = _totals(notices, entities)
        count = f"*{len(notices)}* {escape(noun)}" + (f" · *Total* {escape(totals)}" if totals else "")
        blocks.append(SectionBlock(text=MarkdownTextObject(text=clip(count, SECTION_MAX), verbatim=True)))
        ordered = sorted(notices, key=due_first)
        lines = [_digest_line(n, entities, threads, events=False)[0] for n in ordered[:limit]]
        if len(ordered) > limit:
            lines.append(f"…and {len(ordered) - limit} more")
        blocks += _sections(lines)
        text = f"{head}: {len(notices)} {noun}" + (f", {totals}" if totals else "")
    seen = list(dict.fromkeys((n.source, n.company) for n in notices))
    where = " · ".join(_source_line(_Company(s, c), None, names) for s, c in seen[:5])
    blocks.append(ContextBlock(elements=[MarkdownTextObject(
        text=clip(" · ".join(filter(None, [where, escape(note)])) or "Scheduled summary", _FOOTER_MAX),
        verbatim=True)]))
    metadata = {"event_type": SUMMARY_EVENT, "event_payload": {"batch": uid, "schema_version": 1}}
    return _message(clip(f":clipboard: {escape(text)}", TEXT_MAX), blocks, metadata)


@dataclass(frozen=True)
class _Company:
    """What a context line needs to name a company."""

    source: str
    company: str
    record_key: str = ""


def due_first(n: Notice) -> tuple[str, str]:
    """The order a summary lists documents in: earliest due first, then by key."""
    due = n.fields.get("due_date")
    return (str(due)[:10] if due else "9999", n.record_key)


def coded(notice: Any, entity: Entity | None, codes: Mapping[str, str]) -> Any:
    """The delivery as messages show it: its currency id replaced by the configured ISO code
    (the audit trail keeps the ERP's id)."""
    name = entity.currency_field if entity is not None else None
    code = codes.get(str(notice.fields.get(name))) if name else None
    return replace(notice, fields={**notice.fields, name: code}) if code and name else notice


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
