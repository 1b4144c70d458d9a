"""Parsing of seed lists such as '0-63,100,120-127'."""

from __future__ import annotations


def parse_int_list(spec: str | int | list[int] | tuple[int, ...]) -> list[int]:
    """Parse '0-3,7,10-11' (inclusive ranges) into [0, 1, 2, 3, 7, 10, 11]."""
    if isinstance(spec, int):
        return [spec]
    if isinstance(spec, (list, tuple)):
        return [int(v) for v in spec]
    out: list[int] = []
    for part in str(spec).split(","):
        part = part.strip()
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        try:
            if sep:
                a, b = int(lo), int(hi)
                if b < a:
                    raise ValueError
                out.extend(range(a, b + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise ValueError(
                f"seeds: expected a list like '0-63,100,120-127', found {spec!r} (bad part {part!r})"
            ) from None
    if not out:
        raise ValueError(f"seeds: expected at least one seed, found {spec!r}")
    return out
