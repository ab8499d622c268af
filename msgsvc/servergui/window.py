"""The server's Tk (ttk) window: a thin view over :class:`ServerPresenter`."""

from __future__ import annotations

import tkinter
from collections.abc import Callable
from functools import partial
from tkinter import messagebox, ttk

from msgsvc.servergui.presenter import COLUMNS, ServerPresenter, removal_question
from msgsvc.servergui.rooms import BANS_LIFTED_BY, ROOM_COLUMNS, RoomRows, deletion_question

_HEADINGS = {
    "name": ("Username", 130),
    "state": ("State", 90),
    "front": ("Via", 45),
    "node": ("Node", 150),
    "password": ("Password", 80),
    "queued": ("Waiting", 70),
    "first_seen": ("First seen", 140),
    "last_seen": ("Last seen", 140),
    "address": ("Address", 150),
    "connected": ("Connected for", 130),
    "sessions": ("Sessions", 70),
}
_ROOM_HEADINGS = {
    "room": ("Room / member / ban", 180),  # the tree's own column: members and bans under their room
    "members": ("Members / state", 135),
    "modes": ("Modes / role / by", 140),
    "topic": ("Topic", 270),
    "founder": ("Founder", 90),
    "created": ("Created / banned", 150),
}


class ServerWindow:
    """Header, the username log's and the rooms' tables (a tab each), event pane and operator controls."""

    def __init__(self, root: tkinter.Tk) -> None:
        self.root = root
        self.presenter: ServerPresenter | None = None
        root.title("msgsvc server")
        root.geometry("1240x640")  # every column, the Node column of a service of several too
        root.minsize(640, 400)
        outer = ttk.Frame(root, padding=8)
        outer.pack(fill="both", expand=True)
        self.header = ttk.Label(outer, text="", font=("TkDefaultFont", 11, "bold"))
        self.header.pack(anchor="w")

        panes = ttk.PanedWindow(outer, orient="vertical")
        panes.pack(fill="both", expand=True, pady=(8, 0))
        self.tabs = ttk.Notebook(panes)
        table = ttk.Frame(self.tabs)
        self.table = ttk.Treeview(table, columns=COLUMNS, show="headings", selectmode="extended", height=12)
        for column in COLUMNS:
            label, width = _HEADINGS[column]
            self.table.heading(column, text=label, command=partial(self._sort, column))
            self.table.column(column, width=width, stretch=column in ("name", "address"))
        self.table.tag_configure("online", foreground="#1b5e20")
        self.table.tag_configure("offline", foreground="#777777")
        scroll = ttk.Scrollbar(table, command=self.table.yview)
        self.table.configure(yscrollcommand=scroll.set)
        scroll.pack(side="right", fill="y")
        self.table.pack(fill="both", expand=True)
        self.tabs.add(table, text="Users")
        self.tabs.add(self._rooms_tab(self.tabs), text="Rooms")
        panes.add(self.tabs, weight=3)

        events = ttk.Frame(panes)
        ttk.Label(events, text="Events").pack(anchor="w", pady=(6, 0))
        self.events = tkinter.Listbox(events, height=8, activestyle="none")
        self.events.pack(fill="both", expand=True)
        panes.add(events, weight=1)

        controls = ttk.Frame(outer)
        controls.pack(fill="x", pady=(8, 0))
        ttk.Label(controls, text="Reason").grid(row=0, column=0, sticky="w")
        self.reason = ttk.Entry(controls)
        self.reason.grid(row=0, column=1, sticky="ew", padx=6)
        # A user's row: every session of it; a session's row (under a user with several): that one.
        self.kick_button = ttk.Button(controls, text="Disconnect selected", command=self._kick)
        self.kick_button.grid(row=0, column=2, sticky="ew")
        self.reset_button = ttk.Button(controls, text="Remove password of selected user", command=self._reset)
        self.reset_button.grid(row=0, column=3, sticky="ew", padx=(6, 0))
        ttk.Label(controls, text="Notice").grid(row=1, column=0, sticky="w", pady=(6, 0))
        self.notice = ttk.Entry(controls)
        self.notice.grid(row=1, column=1, sticky="ew", padx=6, pady=(6, 0))
        self.notice.bind("<Return>", lambda _e: self._notice())
        self.notice_button = ttk.Button(controls, text="Send notice to everyone", command=self._notice)
        self.notice_button.grid(row=1, column=2, sticky="ew", pady=(6, 0))
        self.remove_button = ttk.Button(
            controls, text="Remove selected names from the log…", command=self._remove
        )
        self.remove_button.grid(row=1, column=3, sticky="ew", padx=(6, 0), pady=(6, 0))
        controls.columnconfigure(1, weight=1)
        #: asks the operator (title, question) to confirm; a dialog, replaced by the tests
        self.confirm: Callable[[str, str], bool] = lambda title, question: messagebox.askyesno(
            title, question, parent=root
        )

    def _rooms_tab(self, parent: ttk.Notebook) -> ttk.Frame:
        """Each room, its members and bans under it; the operator's buttons for a room and a member."""
        tab = ttk.Frame(parent)
        buttons = ttk.Frame(tab)
        buttons.pack(side="bottom", fill="x", pady=(6, 0))
        self.delete_room_button = ttk.Button(buttons, text="Delete selected room…", command=self._delete_room)
        self.delete_room_button.pack(side="left")
        self.remove_member_button = ttk.Button(
            buttons, text="Remove selected member from its room", command=self._remove_member
        )
        self.remove_member_button.pack(side="left", padx=(6, 0))
        self.bans_note = ttk.Label(buttons, text=BANS_LIFTED_BY, foreground="#555555")
        self.bans_note.pack(side="left", padx=(12, 0))
        self.rooms = ttk.Treeview(tab, columns=ROOM_COLUMNS[1:], selectmode="browse", height=12)
        for column in ROOM_COLUMNS:
            label, width = _ROOM_HEADINGS[column]
            tree_column = "#0" if column == "room" else column
            self.rooms.heading(tree_column, text=label, anchor="w")
            self.rooms.column(tree_column, width=width, stretch=column == "topic")
        self.rooms.tag_configure("room", font=("TkDefaultFont", 10, "bold"))
        self.rooms.tag_configure("online", foreground="#1b5e20")
        self.rooms.tag_configure("offline", foreground="#777777")
        self.rooms.tag_configure("banned", foreground="#b71c1c")
        scroll = ttk.Scrollbar(tab, command=self.rooms.yview)
        self.rooms.configure(yscrollcommand=scroll.set)
        scroll.pack(side="right", fill="y")
        self.rooms.pack(fill="both", expand=True)
        return tab

    def bind(self, presenter: ServerPresenter) -> None:
        self.presenter = presenter
        self.table.configure(displaycolumns=presenter.columns)

    # -- ServerView ----------------------------------------------------------

    def show_header(self, text: str) -> None:
        self.header.configure(text=text)

    def show_rows(self, rows: list[tuple[str, tuple[str, ...]]]) -> None:
        selected = self.table.selection()
        self.table.delete(*self.table.get_children())
        for row_id, cells in rows:
            self.table.insert("", "end", iid=row_id, values=cells, tags=(self._tag(cells),))
        self.table.selection_set([s for s in selected if self.table.exists(s)])

    def put_row(self, row_id: str, cells: tuple[str, ...], index: int) -> None:
        if self.table.exists(row_id):
            self.table.item(row_id, values=cells, tags=(self._tag(cells),))
            if self.table.index(row_id) != index:
                self.table.move(row_id, "", index)
        else:
            self.table.insert("", index, iid=row_id, values=cells, tags=(self._tag(cells),))

    def set_cell(self, row_id: str, column: str, text: str) -> None:
        self.table.set(row_id, column, text)

    def show_sessions(self, row_id: str, rows: list[tuple[str, tuple[str, ...]]]) -> None:
        selected = self.table.selection()
        self.table.delete(*self.table.get_children(row_id))
        for session_id, cells in rows:
            self.table.insert(row_id, "end", iid=session_id, values=cells, tags=("online",))
        self.table.item(row_id, open=bool(rows))
        self.table.selection_set([s for s in selected if self.table.exists(s)])

    def delete_row(self, row_id: str) -> None:
        self.table.delete(row_id)

    def show_rooms(self, rooms: list[RoomRows]) -> None:
        self.rooms.delete(*self.rooms.get_children())
        for rows in rooms:
            self.put_room(rows, len(self.rooms.get_children()))

    def put_room(self, rows: RoomRows, index: int) -> None:
        (room_id, cells), members, bans = rows
        selected = self.rooms.selection()
        if self.rooms.exists(room_id):
            self.rooms.item(room_id, text=cells[0], values=cells[1:])
            self.rooms.delete(*self.rooms.get_children(room_id))
            if self.rooms.index(room_id) != index:
                self.rooms.move(room_id, "", index)
        else:
            self.rooms.insert("", index, iid=room_id, text=cells[0], values=cells[1:], tags=("room",), open=True)
        for member_id, member in members:
            self.rooms.insert(
                room_id, "end", iid=member_id, text=member[0], values=member[1:], tags=(self._tag(member),)
            )
        for ban_id, ban in bans:
            self.rooms.insert(room_id, "end", iid=ban_id, text=ban[0], values=ban[1:], tags=("banned",))
        self.rooms.selection_set([s for s in selected if self.rooms.exists(s)])

    def delete_room(self, row_id: str) -> None:
        self.rooms.delete(row_id)

    def add_event(self, text: str, keep: int) -> None:
        at_end = self.events.yview()[1] >= 0.999
        self.events.insert("end", text)
        excess = self.events.size() - keep
        if excess > 0:
            self.events.delete(0, excess - 1)
        if at_end:
            self.events.see("end")

    # -- the operator --------------------------------------------------------

    def _sort(self, column: str) -> None:
        assert self.presenter is not None
        self.presenter.sort(column)

    def _selected_names(self) -> list[str]:
        return [str(self.table.set(row, "name")) for row in self.table.selection()]

    def _selected_name(self) -> str:
        """The one selected name ("" for none, or several: disconnecting and resets are one at a time)."""
        names = self._selected_names()
        return names[0] if len(names) == 1 else ""

    def _kick(self) -> None:
        assert self.presenter is not None
        selected = self.table.selection()
        row = str(selected[0]) if len(selected) == 1 else ""
        if self.presenter.kick_row(self._selected_name(), row, self.reason.get()):
            self.reason.delete(0, "end")

    def _reset(self) -> None:
        assert self.presenter is not None
        if self.presenter.reset(self._selected_name(), self.reason.get()):
            self.reason.delete(0, "end")

    def _remove(self) -> None:
        assert self.presenter is not None
        names = self._selected_names()
        if names and self.reason.get().strip():
            if not self.confirm("Remove from the log", removal_question(names)):
                return
        if self.presenter.remove(names, self.reason.get()):
            self.reason.delete(0, "end")

    def _selected_room(self) -> tuple[str, str, str]:
        """The selected room's row id and name, and the selected member's name ("" for none: a room's or
        a ban's row)."""
        selected = self.rooms.selection()
        if not selected:
            return "", "", ""
        row = selected[0]
        room = self.rooms.parent(row) or row
        member = self.rooms.item(row, "text") if room != row and not self._banned(row) else ""
        return room, str(self.rooms.item(room, "text")), str(member)

    def _banned(self, row: str) -> bool:
        return "banned" in self.rooms.item(row, "tags")

    def _delete_room(self) -> None:
        assert self.presenter is not None
        row, room, _ = self._selected_room()
        if room and self.reason.get().strip():
            members = [r for r in self.rooms.get_children(row) if not self._banned(r)]
            if not self.confirm("Delete a room", deletion_question(room, len(members))):
                return
        if self.presenter.rooms.delete(room, self.reason.get()):
            self.reason.delete(0, "end")

    def _remove_member(self) -> None:
        assert self.presenter is not None
        _, room, member = self._selected_room()
        if self.presenter.rooms.remove_member(room, member, self.reason.get()):
            self.reason.delete(0, "end")

    def _notice(self) -> None:
        assert self.presenter is not None
        if self.presenter.notice(self.notice.get()):
            self.notice.delete(0, "end")

    @staticmethod
    def _tag(cells: tuple[str, ...]) -> str:
        return "online" if cells[1].startswith("●") else "offline"
