"""What the hub hands the history's store (:meth:`~msgsvc.hub.contracts.HistoryStore.append`): messages
by column, each one's conversation, id, time, sender, kind, recipients and text.

Columns of strings and floats, not the :class:`~msgsvc.hub.contracts.Message` objects: the garbage
collector tracks a Message and its recipients' tuple, not a string, so thousands of messages waiting
for the store (a reactor pass's, or a second's while an append is in flight) cost it nothing, where
as Messages each collection walked them and moved them on to be walked again (docs/performance.rst,
"The history's hand-over").  A message is let go once delivered; what it kept is its strings.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from msgsvc.hub.contracts import Kind, Message, Stored
from msgsvc.hub.conversations import conversation_key

_BROADCAST = Kind.BROADCAST  # looked up once (an enum's member looked up on its class costs)


class Kept:
    """Messages to keep, oldest first, by column (see the module).  ``recipients`` are each message's
    :attr:`~msgsvc.hub.contracts.Message.recipients` joined by commas (no name has one)."""

    def __init__(self) -> None:
        self.conversations: list[str] = []
        self.ids: list[str] = []
        self.ats: list[float] = []
        self.senders: list[str] = []
        self.kinds: list[Kind] = []
        self.recipients: list[str] = []
        self.texts: list[str] = []

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, message: Message) -> bool:
        """Add ``message`` (delivered) in its conversation; False, adding nothing, if it has none (a
        unicast or multicast that named nobody in the log)."""
        sender, kind, recipients = message.sender, message.kind, message.recipients  # each read once
        if not recipients and kind is not _BROADCAST:
            return False
        conversation = conversation_key(sender, kind, recipients)
        assert conversation is not None
        self.conversations.append(conversation)
        self.ids.append(message.id)
        self.ats.append(message.at)
        self.senders.append(sender)
        self.kinds.append(kind)
        self.recipients.append(recipients[0] if len(recipients) == 1 else ",".join(recipients))
        self.texts.append(message.text)
        return True

    @staticmethod
    def of(messages: Iterable[Message]) -> Kept:
        """``messages`` (those with a conversation), kept in this order."""
        kept = Kept()
        for message in messages:
            kept.add(message)
        return kept

    def entries(self) -> list[Stored]:
        """The entries, as the history's reads give them."""
        columns = (self.conversations, self.ids, self.ats, self.senders, self.kinds, self.recipients, self.texts)
        return [
            Stored(id, at, conversation, sender, kind, tuple(to.split(",")) if to else (), text)
            for conversation, id, at, sender, kind, to, text in zip(*columns, strict=True)
        ]

    def select(self, which: Sequence[int]) -> Kept:
        """The entries at the positions ``which``, in that order."""
        kept = Kept()
        for i in which:
            kept.conversations.append(self.conversations[i])
            kept.ids.append(self.ids[i])
            kept.ats.append(self.ats[i])
            kept.senders.append(self.senders[i])
            kept.kinds.append(self.kinds[i])
            kept.recipients.append(self.recipients[i])
            kept.texts.append(self.texts[i])
        return kept

    def extend(self, other: Kept) -> None:
        """Add ``other``'s entries after these."""
        self.conversations += other.conversations
        self.ids += other.ids
        self.ats += other.ats
        self.senders += other.senders
        self.kinds += other.kinds
        self.recipients += other.recipients
        self.texts += other.texts
