"""What the tests of the offline queue share."""

from __future__ import annotations

#: A sender's quota and a total that a test never meets: Enqueue's sender_limit and total_limit.
ROOM = (1_000_000, 1_000_000)

#: The message id of what the tests of the queue alone enqueue (as for a message queued before ids).
NO_ID = ""
