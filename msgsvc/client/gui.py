"""The client's Tk (ttk) window: a thin view over :class:`ChatPresenter`."""

from __future__ import annotations

import time
import tkinter
from collections.abc import Callable
from functools import partial
from tkinter import ttk

from msgsvc.client.presenter import (
    ROOM_MODES,
    ChatPresenter,
    ConversationItem,
    Entry,
    Field,
    RoomItem,
    UserItem,
    members_of,
)
from msgsvc.hub.contracts import Kind

_STYLES = {
    "direct": {"foreground": "#000000"},
    "group": {"foreground": "#1d4e89"},
    "broadcast": {"foreground": "#2e6b30"},
    "notice": {"foreground": "#6a1b9a"},
    "sent": {"foreground": "#555555"},
    "warning": {"foreground": "#9a5b00"},
    "error": {"foreground": "#b00020"},
    "info": {"foreground": "#777777"},
}
_MODES = [
    (Kind.UNICAST, "Unicast", "u"),
    (Kind.MULTICAST, "Multicast", "m"),
    (Kind.BROADCAST, "Broadcast", "b"),
]
# Broadcast and a room need no recipients: a click there is undone by show_mode (and leaves the room).
_SELECT = {
    Kind.UNICAST: tkinter.BROWSE,
    Kind.MULTICAST: tkinter.MULTIPLE,
    Kind.BROADCAST: tkinter.BROWSE,
    Kind.ROOM: tkinter.BROWSE,
}


class ChatWindow:
    """The login form and the chat view in one top-level window."""

    def __init__(self, root: tkinter.Tk) -> None:
        self.root = root
        self.presenter: ChatPresenter | None = None
        self._on_quit: Callable[[], None] = lambda: None
        root.title("msgsvc")
        root.geometry("900x600")
        root.minsize(560, 380)
        self._build_menu()
        self._build_login()
        self._build_chat()
        self._names: list[str] = []
        self._conversations: list[str] = []  # what each line of the list of conversations opens
        self._selected: tuple[str, ...] = ()

    def bind(self, presenter: ChatPresenter, on_quit: Callable[[], None]) -> None:
        """Act for ``presenter``; ``on_quit`` runs on Quit (the menu, Ctrl+Q, closing the window)."""
        self.presenter = presenter
        self._on_quit = on_quit
        self.root.protocol("WM_DELETE_WINDOW", on_quit)
        # The open conversation is read while the window has the focus (any of its widgets).
        self.root.bind("<FocusIn>", lambda _e: presenter.look(True), add="+")
        self.root.bind("<FocusOut>", lambda _e: presenter.look(False), add="+")

    # -- building ----------------------------------------------------------

    def _build_menu(self) -> None:
        self.menu = tkinter.Menu(self.root)
        self.account_menu = tkinter.Menu(self.menu, tearoff=False)
        self.account_menu.add_command(label="Protect my name…", command=self._open_password, state="disabled")
        self.account_menu.add_command(label="Change password…", command=self._open_password, state="disabled")
        self.account_menu.add_separator()
        self.account_menu.add_command(label="Log out", command=self._log_out, state="disabled")
        self.account_menu.add_command(label="Quit", accelerator="Ctrl+Q", command=self._quit)
        self.menu.add_cascade(label="Account", menu=self.account_menu, underline=0)
        self.root.bind_all("<Control-q>", lambda _e: self._quit())
        self.root.configure(menu=self.menu)

    def _build_login(self) -> None:
        self.login_frame = ttk.Frame(self.root)
        frame = ttk.Frame(self.login_frame, padding=24)
        frame.place(relx=0.5, rely=0.1, anchor="n")
        ttk.Label(frame, text="msgsvc", font=("TkDefaultFont", 18, "bold")).grid(
            row=0, column=0, columnspan=2, pady=(0, 16), sticky="w"
        )
        ttk.Label(frame, text="Username").grid(row=1, column=0, sticky="w", padx=(0, 8), pady=4)
        self.username = ttk.Entry(frame, width=32)
        self.username.grid(row=1, column=1, sticky="ew", pady=4)
        ttk.Label(frame, text="Password").grid(row=2, column=0, sticky="w", padx=(0, 8), pady=4)
        self.password = ttk.Entry(frame, width=32, show="•")
        self.password.grid(row=2, column=1, sticky="ew", pady=4)
        ttk.Label(
            frame, text="optional: protects a new name; needed for a protected one", foreground="#777777"
        ).grid(row=3, column=1, sticky="w")
        ttk.Label(frame, text="Server").grid(row=4, column=0, sticky="w", padx=(0, 8), pady=4)
        self.server = ttk.Entry(frame, width=32)
        self.server.grid(row=4, column=1, sticky="ew", pady=4)
        ttk.Label(frame, text="tcp:HOST:PORT, or tls:HOST:PORT for TLS", foreground="#777777").grid(
            row=5, column=1, sticky="w"
        )
        self.connect_button = ttk.Button(frame, text="Connect", command=self._login)
        self.connect_button.grid(row=6, column=1, sticky="e", pady=(12, 4))
        self.problem = ttk.Label(frame, text="", foreground=_STYLES["error"]["foreground"], wraplength=420)
        self.problem.grid(row=7, column=0, columnspan=2, sticky="w", pady=(8, 0))
        self.login_status = ttk.Label(frame, text="")
        self.login_status.grid(row=8, column=0, columnspan=2, sticky="w", pady=(8, 0))
        frame.columnconfigure(1, weight=1)
        for entry in (self.username, self.password, self.server):
            entry.bind("<Return>", lambda _e: self._login())

    def _build_chat(self) -> None:
        frame = self.chat_frame = ttk.Frame(self.root, padding=8)
        top = ttk.Frame(frame)
        top.pack(fill="x")
        self.status = ttk.Label(top, text="", font=("TkDefaultFont", 11, "bold"))
        self.status.pack(side="left")
        self.reconnect_button = ttk.Button(top, text="Reconnect", command=self._reconnect)

        # "Protect my name" / "Change password": shown by the Account menu, hidden once done.
        self.password_panel = ttk.Frame(frame, padding=(0, 8, 0, 0))
        ttk.Label(self.password_panel, text="New password").pack(side="left")
        self.new_password = ttk.Entry(self.password_panel, width=20, show="•")
        self.new_password.pack(side="left", padx=(6, 12))
        ttk.Label(self.password_panel, text="Again").pack(side="left")
        self.new_password_again = ttk.Entry(self.password_panel, width=20, show="•")
        self.new_password_again.pack(side="left", padx=(6, 12))
        self.set_password_button = ttk.Button(
            self.password_panel, text="Set password", command=self._set_password
        )
        self.set_password_button.pack(side="left")
        ttk.Button(self.password_panel, text="Cancel", command=self._close_password).pack(
            side="left", padx=(6, 0)
        )
        self.password_problem = ttk.Label(
            frame, text="", foreground=_STYLES["error"]["foreground"], wraplength=760
        )
        for entry in (self.new_password, self.new_password_again):
            entry.bind("<Return>", lambda _e: self._set_password())
            entry.bind("<Escape>", lambda _e: self._close_password())
        self._top = top

        panes = ttk.PanedWindow(frame, orient="horizontal")
        panes.pack(fill="both", expand=True, pady=(8, 0))

        left = ttk.Frame(panes, padding=(0, 0, 8, 0))
        ttk.Label(left, text="Messaging option").pack(anchor="w")
        self.mode = tkinter.StringVar(self.root, value=Kind.UNICAST.value)
        self.mode_buttons = {}
        for kind, label, key in _MODES:
            button = ttk.Radiobutton(
                left,
                text=f"{label}  (Alt+{key.upper()})",
                value=kind.value,
                variable=self.mode,
                command=self._mode,
            )
            button.pack(anchor="w")
            self.mode_buttons[kind] = button
            self.root.bind_all(f"<Alt-{key}>", partial(self._alt_key, kind))
        ttk.Label(left, text="Recipients  (● online, ○ offline)").pack(anchor="w", pady=(12, 0))
        self.users = tkinter.Listbox(left, exportselection=False, width=26, activestyle="none")
        self.users.pack(fill="both", expand=True)
        self.users.bind("<<ListboxSelect>>", lambda _e: self._recipients())
        rooms = ttk.Frame(left)
        rooms.pack(fill="x", pady=(12, 0))
        self.join_button = ttk.Button(rooms, text="Join room", command=self._open_join)
        self.join_button.pack(anchor="w")
        self.join_panel = ttk.Frame(rooms)  # "Room name" and Join: shown by "Join room"
        ttk.Label(self.join_panel, text="Room name").pack(side="left")
        self.room_name = ttk.Entry(self.join_panel, width=14)
        self.room_name.pack(side="left", padx=(6, 6))
        self.room_name.bind("<Return>", lambda _e: self._join())
        self.room_name.bind("<Escape>", lambda _e: self.join_panel.pack_forget())
        ttk.Button(self.join_panel, text="Join", command=self._join).pack(side="left")
        self.recent = ttk.Frame(left)  # shown while there are conversations to list
        ttk.Label(self.recent, text="Conversations").pack(anchor="w", pady=(12, 0))
        self.conversations = tkinter.Listbox(
            self.recent, exportselection=False, width=26, height=6, activestyle="none"
        )
        self.conversations.pack(fill="x")
        self.conversations.bind("<<ListboxSelect>>", lambda _e: self._open_conversation())
        panes.add(left, weight=0)

        right = ttk.Frame(panes)
        self._build_room(right)
        log = ttk.Frame(right)
        log.pack(fill="both", expand=True)
        self.conversation = tkinter.Text(log, wrap="word", state="disabled", height=10, width=60, takefocus=0)
        self.scroll = ttk.Scrollbar(log, command=self.conversation.yview)
        self.conversation.configure(yscrollcommand=self._scrolled)
        for wheel in ("<MouseWheel>", "<Button-4>"):
            self.conversation.bind(wheel, self._wheel)
        self.scroll.pack(side="right", fill="y")
        self.conversation.pack(side="left", fill="both", expand=True)
        for style, options in _STYLES.items():
            self.conversation.tag_configure(style, **options)
        self.conversation.tag_configure("time", foreground="#999999")
        self.conversation.tag_configure("day", foreground="#777777", justify="center", spacing1=6, spacing3=2)
        self.to = ttk.Label(right, text="")
        self.to.pack(anchor="w", pady=(6, 2))
        bottom = ttk.Frame(right)
        bottom.pack(fill="x")
        self.message = ttk.Entry(bottom)
        self.message.pack(side="left", fill="x", expand=True)
        self.message.bind("<Return>", lambda _e: self._send())
        self.send_button = ttk.Button(bottom, text="Send", command=self._send)
        self.send_button.pack(side="left", padx=(6, 0))
        self.reply_button = ttk.Button(bottom, text="Reply all", command=self._reply_all, state="disabled")
        self.reply_button.pack(side="left", padx=(6, 0))
        self.root.bind_all("<Alt-r>", lambda _e: self._reply_all())
        panes.add(right, weight=1)

    def _build_room(self, right: ttk.Frame) -> None:
        """The open room: its topic and modes, its members, leaving it, an operator's actions."""
        room = self.room_frame = ttk.Frame(right, padding=(0, 0, 0, 6))  # shown while a room is open
        head = ttk.Frame(room)
        head.pack(fill="x")
        self.room_title = ttk.Label(head, text="", font=("TkDefaultFont", 11, "bold"))
        self.room_title.pack(side="left")
        ttk.Button(head, text="Leave room", command=self._part).pack(side="right")
        self.room_topic = ttk.Label(room, text="", wraplength=560)
        self.room_topic.pack(anchor="w")
        self.room_modes = ttk.Label(room, text="", foreground="#777777")
        self.room_modes.pack(anchor="w")
        self.room_members = tkinter.Listbox(room, height=4, exportselection=False, activestyle="none")
        self.room_members.pack(fill="x", pady=(4, 4))
        self.operator_panel = ttk.Frame(room)  # shown to the room's operators
        ttk.Label(self.operator_panel, text="Operator").pack(side="left")
        self.operator_text = ttk.Entry(self.operator_panel, width=14)
        self.operator_text.pack(side="left", padx=(6, 6))
        for label, act in (
            ("Set topic", self._set_topic),
            ("Invite", self._invite),
            ("Kick", self._kick),
            ("Set modes", self._set_mode),
        ):
            ttk.Button(self.operator_panel, text=label, command=act, width=0).pack(side="left", padx=(0, 2))
        self._members: list[str] = []

    # -- View --------------------------------------------------------------

    def show_login(self, username: str, server: str, problem: str, field: Field = "username") -> None:
        self.chat_frame.pack_forget()
        self._close_password()
        self.login_frame.pack(fill="both", expand=True)
        for entry, value in ((self.username, username), (self.server, server)):
            entry.delete(0, "end")
            entry.insert(0, value)
        self.problem.configure(text=f"⚠ {problem}" if problem else "")
        self.login_status.configure(text="")
        self.connect_button.state(["!disabled"])
        for index in (0, 1, 3):
            self.account_menu.entryconfigure(index, state="disabled")
        entry = {"username": self.username, "password": self.password, "server": self.server}[field]
        entry.focus_set()
        entry.select_range(0, "end")
        entry.icursor("end")

    def show_title(self, text: str) -> None:
        self.root.title(text)

    def show_password_problem(self, text: str) -> None:
        self._open_password()
        self.password_problem.configure(text=f"⚠ {text}")
        self.password_problem.pack(fill="x", after=self.password_panel)

    def show_account(self, protected: bool) -> None:
        self.account_menu.entryconfigure(0, state="disabled" if protected else "normal")
        self.account_menu.entryconfigure(1, state="normal" if protected else "disabled")

    def show_chat(self) -> None:
        self.login_frame.pack_forget()
        self.chat_frame.pack(fill="both", expand=True)
        self.account_menu.entryconfigure(3, state="normal")
        self.message.focus_set()

    def show_status(self, text: str, connected: bool) -> None:
        self.status.configure(text=text, foreground="#2e6b30" if connected else "#9a5b00")
        self.login_status.configure(text=text)
        chatting = self.chat_frame.winfo_ismapped()
        if connected or not chatting:
            self.reconnect_button.pack_forget()
        else:
            self.reconnect_button.pack(side="right")
        self.connect_button.state(["disabled"] if not chatting and not connected else ["!disabled"])
        state = ["!disabled"] if connected else ["disabled"]
        self.message.state(state)
        self.send_button.state(state)

    def show_users(self, users: list[UserItem]) -> None:
        self._names = [u.name for u in users]
        self.users.delete(0, "end")
        for index, user in enumerate(users):
            mark = "●" if user.online else "○"
            suffix = " (you)" if user.me else "" if user.online else "  offline"
            protected = "  · protected" if user.protected else ""
            self.users.insert("end", f"{mark} {user.name}{suffix}{protected}")
            self.users.itemconfigure(index, foreground="#000000" if user.online else "#888888")
        self._show_selection()

    def show_mode(self, mode: Kind, selected: tuple[str, ...]) -> None:
        self.mode.set(mode.value)
        self._selected = selected
        self.users.configure(selectmode=_SELECT[mode])
        self._show_selection()
        if mode is Kind.BROADCAST or selected:
            assert self.presenter is not None
            self.to.configure(text="To: " + self.presenter.addressees())
        else:
            self.to.configure(
                text="To: pick "
                + ("one recipient" if mode is Kind.UNICAST else "recipients")
                + " on the left"
            )

    def show_conversations(self, items: list[ConversationItem]) -> None:
        self._conversations = [item.conversation for item in items]
        self.conversations.delete(0, "end")
        for item in items:
            unread = f" · {item.unread} unread" if item.unread else ""
            self.conversations.insert("end", " · ".join(filter(None, [item.who, item.when])) + unread)
        if items:
            self.recent.pack(fill="x")
        else:
            self.recent.pack_forget()

    def show_room(self, room: RoomItem | None) -> None:
        if room is None:
            self.room_frame.pack_forget()
            return
        modes = ", ".join(ROOM_MODES.get(letter, letter) for letter in room.modes)
        self.room_title.configure(text=f"{room.name}  ·  {members_of(len(room.members))}")
        self.room_modes.configure(text=f"Modes: {modes}" if modes else "No modes")
        self.room_topic.configure(text=f"Topic: {room.topic}" if room.topic else "No topic")
        self._members = [member.name for member in room.members]
        self.room_members.delete(0, "end")
        for index, member in enumerate(room.members):
            mark = "@" if member.op else "+" if member.voice else ""
            role = "  operator" if member.op else "  voice" if member.voice else ""
            self.room_members.insert("end", f"{'●' if member.online else '○'} {mark}{member.name}{role}")
            self.room_members.itemconfigure(index, foreground="#000000" if member.online else "#888888")
        if room.operator:
            self.operator_panel.pack(fill="x")
        else:
            self.operator_panel.pack_forget()
        if not self.room_frame.winfo_ismapped():
            self.room_frame.pack(fill="x", before=self.conversation.master)

    def show_reply(self, target: str) -> None:
        self.reply_button.state(["!disabled"] if target else ["disabled"])

    def append(self, entry: Entry) -> None:
        self._put("end", entry)

    def insert(self, index: int, entry: Entry) -> None:
        self._put(f"{index + 1}.0", entry)

    def _put(self, where: str, entry: Entry) -> None:
        """Write ``entry`` as the line at ``where``: the view follows the end if it was there, else
        keeps the lines it shows in place."""
        text = self.conversation
        at_end = text.yview()[1] >= 0.999
        top = text.index("@0,0")
        text.configure(state="normal")
        if entry.style == "day":
            text.insert(where, entry.text + "\n", ("day",))
        else:
            stamp = entry.label or time.strftime("%H:%M", time.localtime(entry.when))
            text.insert(where, stamp + " ", ("time",), entry.text + "\n", (entry.style,))
        text.configure(state="disabled")
        if at_end:
            text.see("end")
        elif text.compare(where, "<=", top):
            text.yview(f"{top} + 1 lines")

    # -- what the user does -------------------------------------------------

    def _login(self) -> None:
        assert self.presenter is not None
        self.problem.configure(text="")
        self.presenter.login(self.username.get(), self.server.get(), self.password.get())

    def _open_password(self) -> None:
        self.password_panel.pack(fill="x", after=self._top)
        self.new_password.focus_set()

    def _close_password(self) -> None:
        for entry in (self.new_password, self.new_password_again):
            entry.delete(0, "end")
        self.password_panel.pack_forget()
        self.password_problem.pack_forget()
        if self.chat_frame.winfo_ismapped():
            self.message.focus_set()

    def _set_password(self) -> None:
        assert self.presenter is not None
        if self.presenter.set_password(self.new_password.get(), self.new_password_again.get()):
            self._close_password()

    def _reconnect(self) -> None:
        assert self.presenter is not None
        self.presenter.reconnect()

    def _log_out(self) -> None:
        assert self.presenter is not None
        self.presenter.log_out()

    def _quit(self) -> None:
        self._on_quit()

    def _alt_key(self, mode: Kind, _event: object) -> None:
        self._choose(mode)

    def _choose(self, mode: Kind) -> None:
        assert self.presenter is not None
        self.presenter.choose_mode(mode)

    def _mode(self) -> None:
        self._choose(Kind(self.mode.get()))

    def _recipients(self) -> None:
        assert self.presenter is not None
        chosen: tuple[int, ...] = self.users.curselection()  # type: ignore[no-untyped-call]  # typeshed leaves it untyped
        self.presenter.choose_recipients(tuple(self._names[i] for i in chosen))

    def _open_conversation(self) -> None:
        assert self.presenter is not None
        chosen: tuple[int, ...] = self.conversations.curselection()  # type: ignore[no-untyped-call]
        if chosen:
            self.presenter.open_conversation(self._conversations[chosen[0]])
            self.message.focus_set()

    def _open_join(self) -> None:
        self.join_panel.pack(fill="x", pady=(4, 0))
        self.room_name.focus_set()

    def _join(self) -> None:
        assert self.presenter is not None
        name = self.room_name.get().strip()
        if name:
            self.presenter.join(name)
            self.room_name.delete(0, "end")
            self.join_panel.pack_forget()
            self.message.focus_set()

    def _part(self) -> None:
        assert self.presenter is not None
        self.presenter.part()

    def _operator_words(self) -> list[str]:
        """What the operator typed, in words; the member picked in the list is the name if none."""
        words = self.operator_text.get().split()
        chosen: tuple[int, ...] = self.room_members.curselection()  # type: ignore[no-untyped-call]
        return words or ([self._members[chosen[0]]] if chosen else [])

    def _set_topic(self) -> None:
        assert self.presenter is not None
        self.presenter.set_topic(self.operator_text.get().strip())
        self.operator_text.delete(0, "end")

    def _invite(self) -> None:
        assert self.presenter is not None
        words = self._operator_words()
        if words:
            self.presenter.invite(words[0])
            self.operator_text.delete(0, "end")

    def _kick(self) -> None:
        assert self.presenter is not None
        words = self._operator_words()
        if words:
            self.presenter.kick(words[0], " ".join(words[1:]))
            self.operator_text.delete(0, "end")

    def _set_mode(self) -> None:
        """The modes typed (``+i``, ``+o bob``); a member picked in the list is the name after them."""
        assert self.presenter is not None
        words = self.operator_text.get().split()
        chosen: tuple[int, ...] = self.room_members.curselection()  # type: ignore[no-untyped-call]
        if words and len(words) == 1 and chosen and words[0][-1:] in "ovb":
            words.append(self._members[chosen[0]])
        self.presenter.set_mode(words[0] if words else "", tuple(words[1:]))
        self.operator_text.delete(0, "end")

    def _reply_all(self) -> None:
        assert self.presenter is not None
        if self.presenter.reply_all():
            self.message.focus_set()

    def _send(self) -> None:
        assert self.presenter is not None
        if self.presenter.send(self.message.get()):
            self.message.delete(0, "end")

    def _scrolled(self, first: float, last: float) -> None:
        """The conversation scrolled: at its top (with more than fits above), load earlier messages."""
        self.scroll.set(first, last)
        if float(first) <= 0.0 < 1.0 - float(last) and self.presenter is not None:
            self.presenter.load_earlier()

    def _wheel(self, event: tkinter.Event[tkinter.Text]) -> None:
        """The wheel turned up at the top (also when everything fits): load earlier messages."""
        if (event.num == 4 or event.delta > 0) and self.conversation.yview()[0] <= 0.0:
            assert self.presenter is not None
            self.presenter.load_earlier()

    def _show_selection(self) -> None:
        self.users.selection_clear(0, "end")
        for name in self._selected:
            if name in self._names:
                self.users.selection_set(self._names.index(name))
