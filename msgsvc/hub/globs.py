"""IRC masks matched in O(len(mask) * len(name)) steps: WHO's masks and the rooms' bans.  Never a
regular expression, whose backtracking a mask such as ``*a*a*a*a*a*a*b`` makes take minutes.
Interpreted, not compiled (:mod:`msgsvc.build`): its tests count the lines it runs."""

from __future__ import annotations


def glob_match(mask: str, name: str) -> bool:
    """Whether ``name`` matches the IRC ``mask`` (``*`` any run, ``?`` any one character), in
    O(len(mask) * len(name)) steps at worst, without building a regular expression."""
    m = n = 0
    star = -1  # where in the mask the last ``*`` was, and where in the name it started matching
    from_n = 0
    while n < len(name):
        if m < len(mask) and mask[m] == "*":
            star, from_n = m, n
            m += 1
        elif m < len(mask) and (mask[m] == "?" or mask[m] == name[n]):
            m += 1
            n += 1
        elif star >= 0:  # let the last ``*`` take one more character, and match on after it
            from_n += 1
            m, n = star + 1, from_n
        else:
            return False
    return all(c == "*" for c in mask[m:])
