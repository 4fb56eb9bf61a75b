"""Candidates → drops with variants, applying the rules that need the whole file.

- A SKU that appears on more than one row refuses *every* such row: the file does not say
  which one is right, and LiveDrop maps each SKU to one drop (platform orders arrive by SKU).
- Within a drop, two variants with the same option values refuse both, for the same reason.
- A drop's currencies are its first variant's; a variant priced in others is refused.
- A drop's price per currency is the lowest of its variants' (the "from" price a shop
  shows); a variant whose price differs carries its own.
- The title is what the variants' titles share (Google and Meta feeds often title each variant
  "Tee - red - M"): their common words, trimmed of separators; the first variant's title when
  they share fewer than 3 characters. The image is the first variant's that has one.
"""

from __future__ import annotations

from collections import Counter, defaultdict

from server.shows.feeds.limits import Limits
from server.shows.feeds.plan import PlannedDrop, PlannedVariant, Refusal, RefusalCode
from server.shows.feeds.rows import Candidate


def _refuse(candidate: Candidate, code: RefusalCode, message: str) -> Refusal:
    return Refusal(line=candidate.line, source_id=candidate.sku, reason=code, message=message)


def assemble(candidates: list[Candidate], limits: Limits) -> tuple[list[PlannedDrop], list[Refusal]]:
    """Group candidates into drops (in order of first appearance); return them with the rows
    refused by the cross-row rules."""
    refused: list[Refusal] = []
    lines_of: dict[str, list[int]] = defaultdict(list)
    for candidate in candidates:
        lines_of[candidate.sku].append(candidate.line)
    groups: dict[str, list[Candidate]] = {}
    for candidate in candidates:
        lines = lines_of[candidate.sku]
        if len(lines) > 1:
            others = ", ".join(str(n) for n in lines if n != candidate.line)
            refused.append(
                _refuse(candidate, RefusalCode.DUPLICATE_ID, f"id {candidate.sku} is also on line(s) {others}")
            )
            continue
        groups.setdefault(candidate.group, []).append(candidate)
    drops = []
    for group, members in groups.items():
        kept = _check_group(members, limits, refused)
        if kept:
            drops.append(_drop(group, kept))
    refused.sort(key=lambda r: r.line)
    return drops, refused


def _check_group(members: list[Candidate], limits: Limits, refused: list[Refusal]) -> list[Candidate]:
    currencies = set(members[0].prices)
    combos = Counter(tuple(sorted(m.options.items())) for m in members)
    kept: list[Candidate] = []
    for member in members:
        combo = tuple(sorted(member.options.items()))
        if combos[combo] > 1:
            shown = ", ".join(f"{k}={v}" for k, v in combo) or "no options"
            refused.append(
                _refuse(member, RefusalCode.DUPLICATE_VARIANT, f"another row of {member.group} has the same {shown}")
            )
        elif set(member.prices) != currencies:
            refused.append(
                _refuse(
                    member,
                    RefusalCode.MIXED_CURRENCY,
                    f"priced in {', '.join(sorted(member.prices))}, the rest of {member.group} in "
                    f"{', '.join(sorted(currencies))}",
                )
            )
        elif len(kept) >= limits.max_variants:
            refused.append(
                _refuse(member, RefusalCode.TOO_MANY_VARIANTS, f"{member.group} has more than {limits.max_variants}")
            )
        else:
            kept.append(member)
    return kept


def _drop(group: str, members: list[Candidate]) -> PlannedDrop:
    prices = {code: min(m.prices[code] for m in members) for code in members[0].prices}
    image = next((m.image_url for m in members if m.image_url), "")
    variants = [
        PlannedVariant(
            sku=m.sku, line=m.line, options=m.options, stock=m.stock, prices=None if m.prices == prices else m.prices
        )
        for m in members
    ]
    title = drop_title([m.title for m in members])
    return PlannedDrop(group=group, title=title, image_url=image, prices=prices, variants=variants)


_TITLE_TRIM = " -\u2013\u2014/|,:;(["


def drop_title(titles: list[str]) -> str:
    """The words all ``titles`` start with, or the first title if that is under 3 characters."""
    first = titles[0]
    prefix = _common_prefix(titles)
    if prefix == first and all(t == first for t in titles):
        return first
    cut_in_word = prefix[-1:].isalnum() and any(t[len(prefix) : len(prefix) + 1].isalnum() for t in titles)
    if cut_in_word:
        prefix = prefix.rsplit(" ", 1)[0] if " " in prefix else ""
    prefix = prefix.rstrip(_TITLE_TRIM)
    return prefix if len(prefix) >= 3 else first


def _common_prefix(texts: list[str]) -> str:
    shortest = min(texts, key=len)
    for index, char in enumerate(shortest):
        if any(text[index] != char for text in texts):
            return shortest[:index]
    return shortest
