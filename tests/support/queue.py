"""What the tests of the offline queue share."""

from __future__ import annotations

#: A sender's quota and a total that a test never meets: Enqueue's last two fields.
ROOM = (1_000_000, 1_000_000)
