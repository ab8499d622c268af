"""The terminal client on prompt_toolkit, over Twisted's asyncio reactor.

Messages are printed above the input line, which keeps what the user was
typing; Tab completes commands and usernames, Up and Down recall earlier
lines.  Everything it shows and decides is in :class:`~msgsvc.client.text.TextView`.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

from prompt_toolkit import PromptSession, print_formatted_text
from prompt_toolkit.application import get_app_or_none
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.filters import Condition
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.styles import Style

from msgsvc.client.text import Fragments, TextView, word_before

STYLE = Style.from_dict(
    {
        "time": "#8a8a8a",
        "sent": "#8a8a8a",
        "info": "#5f87af",
        "day": "#8a8a8a bold",
        "warning": "#d7875f",
        "error": "#ff5f5f bold",
        "notice": "#d75fd7 bold",
        "group": "#87afd7",
        "broadcast": "#87d787",
        "online": "#5fd75f",
        "offline": "#8a8a8a",
        "sender.0": "#ffaf00 bold",
        "sender.1": "#5fd7ff bold",
        "sender.2": "#d787ff bold",
        "sender.3": "#87d700 bold",
        "sender.4": "#ff8787 bold",
        "sender.5": "#00d7af bold",
    }
)


def show(fragments: Fragments) -> None:
    """Print one line above the prompt (or plainly, once it is gone)."""
    print_formatted_text(FormattedText(fragments), style=STYLE)


def columns() -> int:
    """The terminal's width."""
    return shutil.get_terminal_size().columns


def refresh() -> None:
    """Draw the prompt again: the view's state has changed."""
    app = get_app_or_none()
    if app is not None:
        app.invalidate()


class ViewCompleter(Completer):
    """Tab completion from :meth:`TextView.completions`."""

    def __init__(self, view: TextView) -> None:
        self._view = view

    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterator[Completion]:
        before = document.text_before_cursor
        start = -len(word_before(before))
        for candidate in self._view.completions(before):
            yield Completion(candidate, start_position=start, display=candidate.rstrip())


class ChatHistory(InMemoryHistory):
    """The lines Up and Down recall: only those the view says may be kept (never a password)."""

    def __init__(self, view: TextView) -> None:
        super().__init__()
        self._view = view

    def append_string(self, string: str) -> None:
        if self._view.keeps_input():
            super().append_string(string)


class Terminal:
    """Reads lines for a :class:`TextView` until it calls :meth:`stop`."""

    def __init__(self, view: TextView) -> None:
        self._view = view
        self._stopped = False
        self._completer = ViewCompleter(view)
        keys = KeyBindings()
        keys.add("tab")(self._tab)
        for key in ("up", "down", "c-p", "c-n"):  # no history in a password (nor into one)
            keys.add(key, filter=Condition(view.hides_input))(lambda _event: None)
        # One session for every prompt: whether the line is masked and kept is asked of the view
        # as it stands when drawn and when Enter is pressed, for a server's answer may turn the
        # line being typed into a password.
        self.session: PromptSession[str] = PromptSession(
            history=ChatHistory(view),
            completer=self._completer,
            key_bindings=keys,
            complete_while_typing=False,
            is_password=Condition(view.hides_input),
            style=STYLE,
            reserve_space_for_menu=4,
        )

    def _tab(self, event: KeyPressEvent) -> None:
        """Complete a single candidate at once, so an Enter right behind the Tab sends it whole
        (prompt_toolkit's own completion runs later, as a task); several open the menu."""
        buffer = event.current_buffer
        if buffer.complete_state is not None:
            buffer.complete_next()
            return
        found = list(
            self._completer.get_completions(buffer.document, CompleteEvent(completion_requested=True))
        )
        if len(found) == 1:
            buffer.apply_completion(found[0])
        elif found:
            buffer.start_completion(insert_common_part=True)

    async def run(self) -> None:
        """Prompt, hand each line to the view, until stopped or the input ends (Ctrl-D)."""
        while not self._stopped:
            try:
                text = await self.session.prompt_async(self._view.prompt)
            except KeyboardInterrupt:
                self._view.interrupt()
                continue
            except EOFError:
                text = "/quit"
            self._view.line(text)

    def stop(self) -> None:
        """Prompt no more (called from the view, between two prompts)."""
        self._stopped = True
