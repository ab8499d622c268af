// The msgsvc page: the line protocol (docs/protocol.rst) over a WebSocket, one line a text message.
// Message text is only ever set as textContent, never parsed as HTML.
"use strict";

const REFUSALS = new Set([
  "USERNAME_TAKEN", "USERNAME_INVALID", "SERVER_FULL", "AUTH_REQUIRED", "AUTH_FAILED",
  "PASSWORD_INVALID", "SERVER_ERROR", "RATE_LIMITED", "SESSIONS_FULL",
]);
const PASSWORD_CODES = new Set(["AUTH_REQUIRED", "AUTH_FAILED", "PASSWORD_INVALID"]);
const SESSIONS_FULL = "{name} is connected on as many devices as this server allows at once. Log out on one of them " +
  "(or close it), then connect again.";
const BACKOFF_MAX = 30; // seconds between reconnect attempts, at most
const VERSION = 13; // the protocol version the page speaks; a version 8 server refuses VERSION, then it speaks 8
const MAX_CONVERSATIONS = 100; // CONVERSATION lines an answer holds at most (the protocol's limit): more are left out
const READ_EVERY = 1000; // ms between two READ of the page at least (conversations read meanwhile share one)
const MAX_UNREAD = 100; // the most unread messages a CONVERSATION line counts (the server's cap)
const MESSAGE_ID = /^[0-7][0-9A-HJKMNP-TV-Z]{25}$/; // a message id, as READ and CONVERSATION give positions
const MAX_PARTICIPANTS = 33; // a direct conversation's names at most: a sender and 32 recipients
const NAME_KEY = /^[a-z][a-z0-9_.-]{0,31}$/; // a username in lower case, as the server names conversations
const USERNAME = /^[A-Za-z][A-Za-z0-9_.-]{0,31}$/;
const ROOM = /^#[A-Za-z][A-Za-z0-9_.-]{0,31}$/; // a room's name (version 11)
const MASK = /^[^\x00-\x20,!\x7f]+![^\x00-\x20,!@\x7f]+@[^\x00-\x20,!@\x7f]+$/; // a ban: nick!user@host (version 12)
const MAX_LISTED = 1000; // MEMBER lines of an answer, ROOMINFO lines of a list, kept at most
const ROOM_MODES = {
  i: "invite only", k: "key needed", l: "member limit", m: "moderated", n: "no messages from outside", s: "secret",
  t: "topic locked",
};
// How a refused room command is said: "Cannot join #dev: ...".
const ROOM_VERBS = {
  JOIN: "Cannot join", PART: "Cannot leave", TOPIC: "No topic for", INVITE: "Cannot invite to", KICK: "Cannot kick from",
  MODE: "Cannot change the modes of", MEMBERS: "Cannot list the members of", ROOMS: "Cannot list",
};

const $ = (id) => document.getElementById(id);

// -- the wire ------------------------------------------------------------

/** A line as {verb, params}: the trailing parameter (after " :") is the last param. */
function parseLine(line) {
  let trailing = null;
  const at = line.indexOf(" :");
  if (at >= 0) {
    trailing = line.slice(at + 2);
    line = line.slice(0, at);
  }
  const params = line.split(" ").filter((p) => p !== "");
  const verb = (params.shift() || "").toUpperCase();
  if (trailing !== null) params.push(trailing);
  return { verb, params };
}

function loopback(host) {
  return host === "localhost" || host === "[::1]" || /^127\./.test(host);
}

// -- showing things --------------------------------------------------------

function clock(date) {
  return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
}

/** When a delayed message was sent: "17:02" today, "yesterday 17:02", or the date. */
function describeTime(date, now) {
  const day = (d) => new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime();
  const days = Math.round((day(now) - day(date)) / 86400000);
  if (days === 0) return clock(date);
  if (days === 1) return `yesterday ${clock(date)}`;
  return `${date.toLocaleDateString([], { year: "numeric", month: "short", day: "numeric" })} ${clock(date)}`;
}

/** A day separator's words: "Today", "Yesterday", "3 December" (with the year if not this one). */
function dayLabel(date, now) {
  const day = (d) => new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime();
  const days = Math.round((day(now) - day(date)) / 86400000);
  if (days === 0) return "Today";
  if (days === 1) return "Yesterday";
  const month = date.toLocaleDateString([], { month: "long" });
  const year = date.getFullYear() === now.getFullYear() ? "" : ` ${date.getFullYear()}`;
  return `${date.getDate()} ${month}${year}`;
}

function dayKey(date) {
  return `${date.getFullYear()}-${date.getMonth()}-${date.getDate()}`;
}

/** Whether ``conversation`` (as the server names it) is one ``me`` can be in: a hostile server's odd names are left out. */
function readable(conversation, me) {
  if (typeof conversation !== "string") return false;
  if (ROOM.test(conversation)) return conversation === conversation.toLowerCase();
  const keys = conversation.split(",");
  return keys.length <= MAX_PARTICIPANTS && keys.every((key) => NAME_KEY.test(key)) && keys.includes(me.toLowerCase());
}

/** The conversation a message of ``sender`` to ``group`` is of, as the server names it, for the user ``me``. */
function conversationOf(me, sender, kind, group) {
  if (kind === "broadcast") return "#all";
  if (kind === "room") return group[0].toLowerCase();
  return [...new Set([me, sender, ...group].map((name) => name.toLowerCase()))].sort().join(",");
}

function membersOf(count) {
  return `${count} member${count === 1 ? "" : "s"}`;
}

function joinNames(names) {
  if (names.length <= 1) return names.join("");
  return `${names.slice(0, -1).join(", ")} and ${names[names.length - 1]}`;
}

// -- the session ------------------------------------------------------------

class Session {
  constructor() {
    this.socket = null;
    this.name = "";        // as typed, then as the server spells it
    this.password = "";    // kept in memory for reconnecting, never stored
    this.welcomed = false; // this connection got WELCOME
    this.everWelcomed = false;
    this.refused = false;  // this connection's HELLO was refused
    this.leaving = false;  // the user logged out
    this.bye = "";
    this.users = new Map(); // key (lower case) -> {name, online, protected}
    this.readingLog = null; // the username log being received
    this.pending = [];      // what each awaited answer (SENT, PROTECTED, ERROR) is for, in order
    this.shownDelayed = new Set();
    this.shownIds = new Set(); // message ids shown (MSG, SENT, DELAYED, HISTMSG): each once
    this.version = 8;       // what the server answered to VERSION
    this.historyDays = 0;   // 0: no history on this connection
    this.catchingUp = false; // the login's catch-up of #all is coming
    this.histories = new Map(); // conversation -> {oldest: id or "*", more, loading, refused: text or ""}
    this.batch = null;      // the page of history being received: {oldest, count, anchor}
    this.listing = null;    // the CONVERSATION lines of the answer coming: [{conversation, at}]
    this.conversations = []; // this user's recent conversations, newest first: [{conversation, at}]
    this.listed = false;    // this connection's list came: messages move their conversations in it
    // Version 10, per conversation: messages of others unread, this account's read position, the newest id known (of
    // anyone, and of others), the newest id of others shown.
    this.unread = new Map();
    this.reads = new Map();
    this.newest = new Map();
    this.newestOther = new Map();
    this.shownOther = new Map();
    this.told = new Map(); // the read positions the server knows (said, or told by it)
    this.readAt = -Infinity; // when READ was last said (ms)
    this.readTimer = null; // READ to say, READ_EVERY after the last
    this.pageLastId = 0;
    this.awayHeading = null;
    this.awayShown = false;
    this.lastReceived = null;
    this.talking = new Set(); // names (lower case) messages went to or came from
    this.attempt = 0;
    this.timer = null;
    this.warnedClear = false;
    // Version 11: this user's rooms, by key: {name, topic, modes, members: Map key -> {name, online, op, voice} or null}.
    this.rooms = new Map();
    this.openRoom = ""; // the key of the room open, or ""
    this.memberLines = []; // the MEMBER lines of the answer coming
    this.roomLines = []; // the ROOMINFO lines of the answer coming
    this.banLines = []; // the BAN lines of the answer coming
  }

  url() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${location.host}/ws`;
  }

  connect() {
    clearTimeout(this.timer);
    this.timer = null;
    if (this.socket) { // a connection still being made: this one replaces it
      const old = this.socket;
      this.socket = null;
      old.close();
    }
    this.welcomed = false;
    this.refused = false;
    this.leaving = false;
    this.bye = "";
    this.pending = [{ what: "version" }];
    this.version = 8;
    this.historyDays = 0;
    this.catchingUp = false;
    this.histories.clear(); // asked again on this connection: what was missed while away fills in
    this.batch = null;
    this.listed = false;
    ui.renderHistory();
    this.awayHeading = null; // the "While you were away:" entry of this connection
    this.awayShown = false;
    ui.status(`Connecting to ${location.host} as ${this.name}…`);
    const socket = new WebSocket(this.url());
    this.socket = socket;
    socket.onopen = () => {
      this.send(`VERSION ${VERSION}`);
      this.send(this.password ? `HELLO ${this.name} :${this.password}` : `HELLO ${this.name}`);
    };
    socket.onmessage = (event) => {
      if (socket === this.socket && typeof event.data === "string") this.line(event.data);
    };
    socket.onclose = () => {
      if (socket === this.socket) this.closed();
    };
  }

  send(line) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) {
      this.socket.send(line);
      return true;
    }
    return false;
  }

  logout() {
    this.leaving = true;
    clearTimeout(this.timer);
    this.timer = null;
    if (!this.send("QUIT :logged out") && this.socket) this.socket.close();
    this.socket = null;
    this.password = "";
    ui.showLogin("", "username");
    ui.status("Not connected");
  }

  closed() {
    this.socket = null;
    ui.setOnline(false);
    if (this.leaving || this.refused) return;
    if (!this.everWelcomed) {
      ui.showLogin(this.bye || `Could not connect to ${location.host}.`, "username");
      ui.status("Not connected");
      return;
    }
    const why = this.bye ? `: ${this.bye}` : "";
    if (this.welcomed) { // once per lost connection, not once per failed attempt
      for (const user of this.users.values()) user.online = false;
      ui.renderUsers();
      ui.system(`Disconnected${why}`);
    }
    const wait = Math.min(BACKOFF_MAX, 2 ** this.attempt) * (0.75 + Math.random() / 2);
    this.attempt += 1;
    ui.status(`Disconnected${why}. Reconnecting in ${Math.round(wait)} s…`, true);
    this.timer = setTimeout(() => this.connect(), wait * 1000);
  }

  line(text) {
    const { verb, params } = parseLine(text);
    const handler = HANDLERS[verb];
    if (handler) handler(this, params); // verbs a later version adds are ignored
  }

  // What the user does.

  /** Send a message; the entry that shows it (its receipt comes with SENT), or null if not connected. */
  sendMessage(kind, recipients, text) {
    const line = kind === "broadcast" ? `BROADCAST :${text}` : `SEND ${recipients.join(",")} :${text}`;
    if (!this.send(line)) return null;
    for (const name of recipients) this.talking.add(name.toLowerCase());
    const item = ui.mine(kind, recipients, text);
    this.pending.push({ what: "send", item, kind, recipients });
    return item;
  }

  /** Names a message came from or went to, this user's aside. */
  talkedWith(names) {
    const me = this.name.toLowerCase();
    for (const name of names) if (name.toLowerCase() !== me) this.talking.add(name.toLowerCase());
  }

  /** A message of ``conversation`` at ``at``: it goes to the top of the list, once the list came (or the rooms'),
   *  unless it is a direct one of a name that keeps none. */
  heard(conversation, at) {
    const unkept = !ROOM.test(conversation) && !this.historyOpen(conversation); // a direct one kept by none
    if (!this.listed || isNaN(at) || unkept || !readable(conversation, this.name)) return;
    const known = this.conversations.find((c) => c.conversation === conversation);
    const others = this.conversations.filter((c) => c !== known);
    const newest = { conversation, at: known && known.at > at ? known.at : at };
    this.conversations = [...others, newest].sort((a, b) => b.at - a.at).slice(0, MAX_CONVERSATIONS);
    ui.renderConversations();
  }

  /** Whether this connection says READ: version 10, history kept, a protected name. */
  keepsReads() {
    const me = this.users.get(this.name.toLowerCase());
    return this.version >= 10 && this.historyOpen("#all") && Boolean(me && me.protected);
  }

  /** A message with ``id`` of ``conversation`` is shown (``live``: not of the history): counted unread if live, of
   *  others and newer than what the server counted; read if the user looks at its conversation. */
  arrived(conversation, id, mine, live) {
    if (!id || !MESSAGE_ID.test(id) || !readable(conversation, this.name)) return;
    if (id > (this.newest.get(conversation) || "")) {
      this.newest.set(conversation, id);
      if (!mine && live && this.keepsReads() && id > (this.reads.get(conversation) || "")) {
        this.unread.set(conversation, (this.unread.get(conversation) || 0) + 1);
      }
    }
    if (!mine) {
      if (id > (this.newestOther.get(conversation) || "")) this.newestOther.set(conversation, id);
      if (id > (this.shownOther.get(conversation) || "")) this.shownOther.set(conversation, id);
    }
    this.markRead();
    if (this.listed) ui.renderConversations();
  }

  /** The page is in sight and has the focus: what it shows of the open conversation is read. */
  looking() {
    return document.visibilityState === "visible" && document.hasFocus();
  }

  /** Read the open conversation up to the newest message of others it shows, and tell the server. */
  markRead() {
    if (!this.welcomed || !this.keepsReads() || !this.looking()) return;
    const conversation = ui.openConversation();
    const newest = this.shownOther.get(conversation);
    if (!newest || newest <= (this.reads.get(conversation) || "")) return;
    this.moved(conversation, newest);
    if (this.listed) ui.renderConversations();
    this.tellReads();
  }

  /** Say READ for each conversation read further than the server knows: at once, or READ_EVERY after the last, so
   *  messages that come fast do not make the page flood the server. */
  tellReads() {
    if (this.readTimer !== null) return;
    const wait = this.readAt + READ_EVERY - Date.now();
    if (wait > 0) {
      this.readTimer = setTimeout(() => {
        this.readTimer = null;
        this.tellReads();
      }, wait);
      return;
    }
    this.readAt = Date.now();
    for (const [conversation, position] of this.reads) {
      if (position > (this.told.get(conversation) || "") && this.send(`READ ${conversation} ${position}`)) {
        this.told.set(conversation, position);
        this.pending.push({ what: "read" });
      }
    }
  }

  /** The account read ``conversation`` up to ``position``: nothing of others after it known, nothing unread. */
  moved(conversation, position) {
    if (position > (this.reads.get(conversation) || "")) this.reads.set(conversation, position);
    if (this.reads.get(conversation) >= (this.newestOther.get(conversation) || "")) this.unread.set(conversation, 0);
  }

  /** Whether this connection can read ``conversation``'s history (a direct one needs a protected name). */
  historyOpen(conversation) {
    if (this.version < 9 || !this.historyDays || !this.welcomed) return false;
    if (ROOM.test(conversation)) return true; // #all and the rooms: their members read them
    const me = this.users.get(this.name.toLowerCase());
    return Boolean(me && me.protected);
  }

  /** Ask for the page of ``conversation``'s history before what is shown of it (the latest, first). */
  loadHistory(conversation) {
    const known = this.histories.get(conversation) || { oldest: "*", more: true, loading: false, refused: "" };
    this.histories.set(conversation, known);
    if (known.loading || !known.more || known.refused || !this.historyOpen(conversation)) return;
    if (!this.send(`HISTORY ${conversation} ${known.oldest}`)) return;
    known.loading = true;
    $("conversation").setAttribute("aria-live", "off"); // a page of history is not read out message by message
    this.pending.push({ what: "history", conversation });
    ui.renderHistory();
  }

  /** A message with ``id`` is to be shown: false if it was shown already (then it is not again). */
  firstTime(id) {
    if (!id || id === "-") return true;
    if (this.shownIds.has(id)) return false;
    this.shownIds.add(id);
    return true;
  }

  /** Send a room command (version 11), its answer awaited; false if not connected. */
  roomCommand(verb, room, line) {
    if (this.version < 11) {
      ui.warning("This server has no rooms (it speaks an older version of the protocol).");
      return false;
    }
    if (!this.send(line)) return false;
    this.pending.push({ what: "room", verb, room });
    return true;
  }

  /** The room command awaited first, taken if ``verb`` answers it about ``room``. */
  answered(verbs, room) {
    const asked = this.pending[0];
    if (!asked || asked.what !== "room" || !verbs.includes(asked.verb)) return null;
    if (asked.room.toLowerCase() !== room.toLowerCase()) return null;
    return this.pending.shift();
  }

  /** The room ``name`` is this user's: known, and in the list of conversations. */
  inRoom(name) {
    const key = name.toLowerCase();
    if (!this.rooms.has(key)) this.rooms.set(key, { name, topic: "", modes: "", members: null });
    if (!this.conversations.some((c) => c.conversation === key)) {
      this.conversations.push({ conversation: key, at: new Date(0) });
    }
    this.listed = true;
    ui.renderConversations();
    return this.rooms.get(key);
  }

  /** The room ``key`` is no longer this user's: forgotten, and everyone's conversation opened if it was open. */
  leftRoom(key, said) {
    if (!this.rooms.delete(key)) return;
    ui.system(said);
    this.conversations = this.conversations.filter((c) => c.conversation !== key);
    if (this.openRoom === key) ui.address("broadcast", []);
    ui.renderConversations();
  }

  setPassword(password) {
    if (!this.send(`PASSWORD :${password}`)) return false;
    this.pending.push({ what: "password", password });
    return true;
  }
}

const HANDLERS = {
  WELCOME(s, [name]) {
    if (name.toLowerCase() !== s.name.toLowerCase()) s.talking.clear();
    for (const kept of [s.unread, s.reads, s.newest, s.newestOther, s.shownOther, s.told]) kept.clear();
    s.name = name;
    s.welcomed = true;
    s.everWelcomed = true;
    s.attempt = 0;
    ui.showChat();
    ui.status(`Connected to ${location.host} as ${name}`);
    ui.system(`Connected to ${location.host} as ${name}`);
    ui.setOnline(true);
    s.catchingUp = s.version >= 9 && s.historyDays > 0;
    if (!s.catchingUp) ui.renderHistory();
    else if (s.send("CONVERSATIONS")) s.pending.push({ what: "conversations" });
    s.rooms.clear(); // this user's rooms come again, with the answer to ROOMS mine
    s.conversations = s.conversations.filter((c) => c.conversation === "#all" || !ROOM.test(c.conversation));
    if (s.version >= 11 && s.send("ROOMS mine")) s.pending.push({ what: "room", verb: "ROOMS", room: "", mine: true });
    $("join-room").hidden = s.version < 11;
    if (s.version >= 11) $("recent").hidden = false;
    ui.renderRoom();
  },
  VERSION(s, [version, days]) {
    const asked = s.pending[0];
    if (asked && asked.what === "version") s.pending.shift();
    s.version = Number(version) || 8;
    s.historyDays = Number(days) || 0;
  },
  USER(s, [name, state, ...flags]) {
    if (s.readingLog === null) s.readingLog = new Map();
    s.readingLog.set(name.toLowerCase(), { name, online: state === "online", protected: flags.includes("protected") });
  },
  ENDUSERS(s) {
    s.users = s.readingLog || new Map();
    s.readingLog = null;
    ui.renderUsers();
  },
  JOINED(s, [name]) {
    const user = s.users.get(name.toLowerCase());
    if (user) user.online = true;
    else s.users.set(name.toLowerCase(), { name, online: true, protected: false });
    ui.renderUsers();
    ui.presence(name, `${name} is online`);
  },
  LEFT(s, [name]) {
    const user = s.users.get(name.toLowerCase());
    if (user) user.online = false;
    ui.renderUsers();
    ui.presence(name, `${name} went offline`);
  },
  ACCOUNT(s, [name, state]) {
    const user = s.users.get(name.toLowerCase());
    const protectedNow = state === "protected";
    if (!user || user.protected === protectedNow) return; // this user's own PASSWORD: PROTECTED told it
    user.protected = protectedNow;
    ui.renderUsers();
    if (user.name.toLowerCase() === s.name.toLowerCase() && !protectedNow) {
      s.password = ""; // a reconnect must not claim the name again with the password the operator removed
      ui.warning(`${user.name} is no longer protected: set a password again to keep it yours.`);
    }
  },
  REMOVED(s, [name]) {
    if (s.users.delete(name.toLowerCase())) ui.renderUsers();
    ui.system(`${name} was removed from the username log`);
  },
  MSG(s, params) {
    const [sender, kind, recipients] = params;
    const text = params[params.length - 1];
    const [id, time] = params.length >= 6 ? params.slice(3, 5) : [null, null];
    if (!s.firstTime(id)) return; // in the history already
    const group = recipients === "*" ? [] : recipients.split(",");
    if (kind === "room" && !ROOM.test(group[0] || "")) return; // a room's message names its room
    const mine = sender.toLowerCase() === s.name.toLowerCase() && s.version >= 10; // sent from another session
    if (mine) {
      ui.mine(kind, group, text, time ? new Date(time) : new Date(), id);
    } else {
      s.lastReceived = { sender, kind, group };
      ui.message(time ? new Date(time) : new Date(), sender, kind, group, text, false, id);
    }
    if (kind !== "room") s.talkedWith([sender, ...group]);
    const conversation = conversationOf(s.name, sender, kind, group);
    s.heard(conversation, time ? new Date(time) : new Date());
    s.arrived(conversation, id, mine, true);
  },
  DELAYED(s, params) {
    const [id, time, sender, kind, recipients] = params;
    const text = params[params.length - 1];
    const messageId = params.length >= 7 ? params[5] : null;
    s.pageLastId = Number(id);
    if (s.shownDelayed.has(id)) return; // shown before the connection dropped
    s.shownDelayed.add(id);
    if (!s.firstTime(messageId)) return; // in the history already
    if (!s.awayHeading) s.awayHeading = ui.system("While you were away:");
    const group = recipients.split(",");
    if (kind === "room" && !ROOM.test(group[0])) return; // a room's message names its room
    s.lastReceived = { sender, kind, group };
    s.talkedWith([sender, ...group]);
    ui.message(new Date(time), sender, kind, group, text, true, messageId);
    const conversation = conversationOf(s.name, sender, kind, group);
    s.heard(conversation, new Date(time));
    s.arrived(conversation, messageId, false, true);
  },
  HISTMSG(s, [conversation, sender, kind, recipients, id, time, text]) {
    if (!s.batch) s.batch = { oldest: id, count: 0, anchor: ui.anchor() };
    s.batch.count += 1;
    if (!s.firstTime(id)) return;
    const group = recipients === "*" ? [] : recipients.split(",");
    ui.history(new Date(time), sender, kind, group, text, id, conversation);
    s.arrived(conversation, id, sender.toLowerCase() === s.name.toLowerCase(), false);
  },
  CONVERSATION(s, [conversation, id, time, unread, read]) {
    if (s.listing === null) s.listing = [];
    const at = new Date(time);
    const known = s.listing.some((c) => c.conversation === conversation);
    const count = unread === undefined ? 0 : Number(unread);
    const position = read === undefined || read === "-" ? "" : read;
    if (!(Number.isInteger(count) && count >= 0) || (position && !MESSAGE_ID.test(position))) return;
    if (s.listing.length < MAX_CONVERSATIONS && !known && !isNaN(at) && readable(conversation, s.name)) {
      s.listing.push({ conversation, at, id, unread: Math.min(count, MAX_UNREAD), read: position });
    }
  },
  ENDCONVERSATIONS(s) {
    const listing = s.listing || [];
    s.listing = null;
    if (!s.pending.length || s.pending[0].what !== "conversations") return; // not asked for
    s.pending.shift();
    s.catchingUp = false;
    s.conversations = listing.map(({ conversation, at }) => ({ conversation, at }));
    if (s.version >= 10) {
      for (const { conversation, id, unread, read } of listing) {
        if (MESSAGE_ID.test(id) && id > (s.newest.get(conversation) || "")) s.newest.set(conversation, id);
        // This page may have read further since the answer was written (its READ came after).
        const kept = s.reads.get(conversation) || "";
        const ahead = kept > read && kept >= (s.newestOther.get(conversation) || "");
        s.unread.set(conversation, ahead ? 0 : unread);
        if (read > kept) s.reads.set(conversation, read);
        if (read > (s.told.get(conversation) || "")) s.told.set(conversation, read);
      }
    }
    s.listed = true;
    ui.renderConversations();
  },
  ENDHISTORY(s, [conversation, count, end]) {
    const batch = s.batch;
    s.batch = null;
    const asked = s.pending[0];
    if (s.catchingUp && !(asked && asked.what === "history")) {
      // The login's, unasked (version 9: #all's; 10: #all's, then those with unread messages, up to the answer to
      // CONVERSATIONS): a conversation's latest page still comes when it is opened.
      if (s.version < 10) s.catchingUp = false;
    } else {
      const asked = s.pending.shift();
      const key = asked && asked.what === "history" ? asked.conversation : conversation;
      const known = s.histories.get(key) || { oldest: "*", more: true, loading: false, refused: "" };
      s.histories.set(key, known);
      known.loading = false;
      known.more = end === "more";
      if (batch) known.oldest = batch.oldest;
    }
    ui.historyShown(batch ? batch.anchor : null, Number(count) || 0);
  },
  ENDDELAYED(s) {
    if (s.pageLastId) s.send(`ACK ${s.pageLastId}`);
    s.pageLastId = 0;
    if (s.awayHeading && !s.awayShown) {
      s.awayShown = true;
      ui.keepInView(s.awayHeading);
    }
  },
  SENT(s, [delivered, offline, queued, id, time]) {
    const sent = s.pending.shift();
    if (!sent || sent.what !== "send") return;
    s.heard(conversationOf(s.name, s.name, sent.kind, sent.recipients), time ? new Date(time) : new Date());
    if (id) {
      s.firstTime(id); // the history shows it as this entry, not again
      sent.item.dataset.id = id;
    }
    const names = (field) => (field && field !== "-" ? field.split(",") : []);
    const later = names(queued);
    const absent = names(offline).filter((n) => !later.includes(n));
    const unknown = absent.filter((n) => !s.users.has(n.toLowerCase()));
    const missed = absent.filter((n) => s.users.has(n.toLowerCase()));
    ui.receipt(sent.item, `delivered to ${Number(delivered) || "nobody"}`);
    if (later.length) ui.system(`not connected, will get it when back: ${later.join(", ")}`);
    if (missed.length) ui.warning(`not connected, did not get it: ${missed.join(", ")}`);
    if (unknown.length) ui.warning(`no such user: ${unknown.join(", ")}`);
  },
  PROTECTED(s) {
    const asked = s.pending.shift();
    if (asked && asked.what === "password") s.password = asked.password;
    const me = s.users.get(s.name.toLowerCase());
    if (me) me.protected = true;
    ui.renderUsers();
    ui.passwordDone();
    ui.system(`${s.name} is protected by your password`);
  },
  NOTICE(s, [text]) {
    ui.notice(text);
  },
  READ(s, [conversation, position]) {
    if (s.version < 10) return;
    if (s.pending.length && s.pending[0].what === "read") s.pending.shift(); // the answer, or another session's
    if (!MESSAGE_ID.test(position || "") || !readable(conversation, s.name) || !s.keepsReads()) return;
    if (position > (s.told.get(conversation) || "")) s.told.set(conversation, position);
    s.moved(conversation, position);
    if (s.listed) ui.renderConversations();
  },
  // Version 11: rooms. A line naming no room, or no user, is left out.
  ROOM(s, [room, , modes, topic]) {
    if (s.version < 11 || !ROOM.test(room || "") || room.toLowerCase() === "#all") return;
    const known = s.inRoom(room);
    known.modes = (modes || "").replace(/^\+/, "");
    known.topic = topic || "";
  },
  MEMBER(s, [room, name, state, ...marks]) {
    if (s.version < 11 || !USERNAME.test(name || "") || s.memberLines.length >= MAX_LISTED) return;
    s.memberLines.push({ name, online: state === "online", op: marks.includes("op"), voice: marks.includes("voice") });
  },
  ENDMEMBERS(s, [room]) {
    const lines = s.memberLines;
    s.memberLines = [];
    if (s.version < 11 || !ROOM.test(room || "")) return;
    const key = room.toLowerCase();
    const asked = s.answered(["JOIN", "MEMBERS"], room);
    if (key === "#all" || (!s.rooms.has(key) && !(asked && asked.verb === "JOIN"))) return;
    const known = s.inRoom(room);
    known.members = new Map(lines.map((m) => [m.name.toLowerCase(), m]));
    if (asked && asked.verb === "JOIN") {
      ui.system(`You are in ${known.name} (${membersOf(lines.length)}).${known.topic ? ` Topic: ${known.topic}` : ""}`);
      ui.openRoom(key);
    } else {
      ui.renderRoom();
    }
  },
  ENTERED(s, [room, name, ...marks]) {
    if (s.version < 11 || !ROOM.test(room || "") || !USERNAME.test(name || "")) return;
    const key = room.toLowerCase();
    if (key === "#all") return; // everyone is in it: JOINED says who came
    if (name.toLowerCase() === s.name.toLowerCase()) {
      if (!s.rooms.has(key)) { // joined from another session of this account
        s.inRoom(room);
        s.roomCommand("MEMBERS", room, `MEMBERS ${room}`);
      }
      return;
    }
    const known = s.rooms.get(key);
    if (!known) return;
    const member = { name, online: true, op: marks.includes("op"), voice: marks.includes("voice") };
    if (known.members) known.members.set(name.toLowerCase(), member);
    ui.system(`${name} joined ${known.name}`);
    ui.renderRoom();
  },
  PARTED(s, [room, name, reason]) {
    if (s.version < 11 || !ROOM.test(room || "") || !USERNAME.test(name || "")) return;
    const key = room.toLowerCase();
    const why = reason ? ` (${reason})` : "";
    if (name.toLowerCase() === s.name.toLowerCase()) {
      s.answered(["PART"], room);
      s.leftRoom(key, `You left ${room}${why}`);
    } else if (s.rooms.has(key)) {
      ui.memberGone(key, name, `${name} left ${s.rooms.get(key).name}${why}`);
    }
  },
  KICKED(s, [room, name, by, reason]) {
    if (s.version < 11 || !ROOM.test(room || "") || !USERNAME.test(name || "") || !USERNAME.test(by || "")) return;
    const key = room.toLowerCase();
    const why = reason ? `: ${reason}` : "";
    if (by.toLowerCase() === s.name.toLowerCase()) s.answered(["KICK"], room);
    if (name.toLowerCase() === s.name.toLowerCase()) s.leftRoom(key, `${by} removed you from ${room}${why}`);
    else if (s.rooms.has(key)) ui.memberGone(key, name, `${by} removed ${name} from ${s.rooms.get(key).name}${why}`);
  },
  TOPIC(s, [room, by, , topic]) {
    if (s.version < 11 || !ROOM.test(room || "")) return;
    s.answered(["TOPIC"], room);
    const known = s.rooms.get(room.toLowerCase());
    if (!known) return;
    known.topic = topic || "";
    const who = by && by !== "-" && USERNAME.test(by) ? by : "";
    if (known.topic) ui.system(`${who || "Someone"} set the topic of ${known.name}: ${known.topic}`);
    else ui.system(`${who || "Someone"} cleared the topic of ${known.name}`);
    ui.renderRoom();
  },
  MODE(s, [room, by, changes, ...args]) {
    if (s.version < 11 || !ROOM.test(room || "") || typeof changes !== "string") return;
    if (by !== "-" && !USERNAME.test(by || "")) return;
    s.answered(["MODE"], room);
    const known = s.rooms.get(room.toLowerCase());
    if (!known) return;
    if (by === "-") {
      known.modes = changes.replace(/^\+/, "");
      const said = [...known.modes].map((m) => ROOM_MODES[m] || m).join(", ") || "none";
      ui.system(`Modes of ${known.name}: +${known.modes} (${said})`);
    } else {
      ui.applyModes(known, changes, args);
      ui.system(`${by} set ${[changes, ...args].join(" ")} in ${known.name}`);
    }
    ui.renderRoom();
  },
  INVITED(s, [room, name]) {
    if (s.version < 11 || !ROOM.test(room || "") || !USERNAME.test(name || "")) return;
    s.answered(["INVITE"], room);
    ui.system(`You invited ${name} to ${room}.`);
  },
  INVITATION(s, [room, by]) {
    if (s.version < 11 || !ROOM.test(room || "") || !USERNAME.test(by || "")) return;
    ui.notice(`${by} invites you to ${room}: join it to accept.`);
  },
  ROOMGONE(s, [room, reason]) {
    if (s.version < 11 || !ROOM.test(room || "")) return;
    s.leftRoom(room.toLowerCase(), `${room} is no longer yours${reason ? `: ${reason}` : "."}`);
  },
  BAN(s, [room, mask, by]) {
    if (s.version < 11 || !(s.version < 12 ? USERNAME : MASK).test(mask || "") || !USERNAME.test(by || "")) return;
    if (s.banLines.length < MAX_LISTED) s.banLines.push(`${mask} (by ${by})`);
  },
  ENDBANS(s, [room]) {
    const lines = s.banLines;
    s.banLines = [];
    if (s.version < 11 || !ROOM.test(room || "")) return;
    s.answered(["MODE"], room);
    ui.system(lines.length ? `Banned from ${room}: ${lines.join(", ")}` : `Nobody is banned from ${room}.`);
  },
  ROOMINFO(s, [room, members, topic]) {
    const count = Number(members);
    if (s.version < 11 || !ROOM.test(room || "") || !Number.isInteger(count) || count < 0) return;
    if (s.roomLines.length < MAX_LISTED) s.roomLines.push({ room, members: count, topic: topic || "" });
  },
  ENDROOMS(s) {
    const lines = s.roomLines;
    s.roomLines = [];
    if (s.version < 11) return;
    const asked = s.answered(["ROOMS"], "");
    if (!asked) return;
    if (asked.mine) {
      for (const { room, topic } of lines) if (room.toLowerCase() !== "#all") s.inRoom(room).topic = topic;
      if (!s.conversations.some((c) => c.conversation === "#all")) s.conversations.push({ conversation: "#all", at: new Date(0) });
      s.listed = true;
      ui.renderConversations();
      return;
    }
    ui.system(lines.length ? `Rooms (${lines.length}):` : "No rooms yet: join one to create it.");
    for (const { room, members, topic } of lines) ui.system(`${room}, ${membersOf(members)}${topic ? `: ${topic}` : ""}`);
  },
  PING(s, [token]) {
    s.send(token === undefined ? "PONG" : `PONG :${token}`);
  },
  BYE(s, [reason]) {
    s.bye = reason || "";
  },
  ERROR(s, [code, text]) {
    if (!s.welcomed && REFUSALS.has(code)) {
      s.refused = true;
      if (PASSWORD_CODES.has(code)) s.password = "";
      // The server keeps the connection after SERVER_ERROR, for another HELLO: the user retries from the form.
      if (code === "SERVER_ERROR" && s.socket) s.socket.close();
      const why = code === "SESSIONS_FULL" ? SESSIONS_FULL.replace("{name}", s.name) : text;
      ui.showLogin(why, PASSWORD_CODES.has(code) ? "password" : "username");
      ui.status("Not connected");
      return;
    }
    const asked = s.pending.shift();
    if (asked && asked.what === "version") {
      s.version = 8; // a version 8 server: no history on this connection
    } else if (asked && asked.what === "history") {
      const known = s.histories.get(asked.conversation);
      known.loading = false;
      known.refused = text || code;
      ui.renderHistory();
    } else if (asked && asked.what === "conversations") {
      s.catchingUp = false;
      ui.warning(`Your conversations cannot be listed now: ${text}`);
    } else if (asked && asked.what === "read") {
      // the position stays the page's; the server keeps the next one said
    } else if (asked && asked.what === "room") {
      ui.warning(`${ROOM_VERBS[asked.verb]} ${asked.room || "the rooms"}: ${text} (${code})`);
    } else if (asked && asked.what === "password") {
      ui.passwordError(text);
    } else if (asked && asked.what === "send") {
      ui.receipt(asked.item, "not sent");
      ui.warning(`not sent: ${text}`);
      ui.composeError(text);
    } else {
      ui.warning(text);
    }
  },
};

// -- the page --------------------------------------------------------------

const session = new Session();

const ui = {
  kind() {
    return document.querySelector('input[name="kind"]:checked').value;
  },

  status(text, reconnecting = false) {
    $("status").textContent = text;
    $("chat-reconnect").hidden = !reconnecting;
  },

  showLogin(error, focus) {
    $("chat").hidden = true;
    $("account").hidden = true;
    $("password-panel").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = error;
    $("username").value = session.name;
    const field = $(focus);
    field.focus();
    field.select();
  },

  showChat() {
    $("login").hidden = true;
    $("chat").hidden = false;
    $("account").hidden = false;
    $("login-error").textContent = "";
    $("message").focus();
  },

  setOnline(online) {
    for (const id of ["send", "message", "protect"]) $(id).disabled = !online;
    $("reply-all").disabled = !online || !session.lastReceived;
  },

  renderUsers() {
    const kind = ui.kind();
    const list = $("users");
    const chosen = new Set(ui.recipients());
    list.replaceChildren();
    const users = [...session.users.values()].sort((a, b) => a.name.toLowerCase().localeCompare(b.name.toLowerCase()));
    users.forEach((user, index) => {
      const item = document.createElement("li");
      item.className = user.online ? "online" : "offline";
      const input = document.createElement("input");
      input.type = kind === "multicast" ? "checkbox" : "radio";
      input.name = "recipient";
      input.id = `recipient-${index}`;
      input.value = user.name;
      input.checked = chosen.has(user.name);
      const label = document.createElement("label");
      label.htmlFor = input.id;
      label.textContent = user.name;
      const state = document.createElement("span");
      state.className = "state";
      state.id = `recipient-state-${index}`;
      const notes = [user.online ? "online" : "offline"];
      if (user.protected) notes.push("protected");
      if (user.name.toLowerCase() === session.name.toLowerCase()) notes.push("you");
      state.textContent = notes.join(", ");
      input.setAttribute("aria-describedby", state.id);
      item.append(input, label, state);
      list.append(item);
    });
    $("recipients").disabled = kind === "broadcast";
    $("recipients-legend").textContent =
      kind === "broadcast" ? "Recipients: everyone online" : kind === "multicast" ? "Recipients" : "Recipient";
    ui.summarize();
    const me = session.users.get(session.name.toLowerCase());
    $("protect").textContent = me && me.protected ? "Change password…" : "Protect my name…";
    $("password-title").textContent = me && me.protected ? "Change password" : "Protect my name";
    ui.renderHistory();
  },

  /** The username log's toggle (at a phone's width) says whom a message goes to, and how many are online. */
  summarize() {
    const picked = ui.kind() === "broadcast" ? "everyone" : ui.recipients().join(", ") || "nobody yet";
    const online = [...session.users.values()].filter((u) => u.online).length;
    $("people-summary").textContent = `To ${picked} · ${online} online`;
  },

  recipients() {
    return [...document.querySelectorAll('#users input[name="recipient"]:checked')].map((i) => i.value);
  },

  item(className, time, text, label, id) {
    const item = document.createElement("li");
    item.className = className;
    item.dataset.at = String(time.getTime());
    if (id) item.dataset.id = id;
    const when = document.createElement("time");
    when.dateTime = time.toISOString();
    when.textContent = label || clock(time);
    const body = document.createElement("span");
    body.className = "text";
    body.textContent = text;
    item.append(when, " ", body);
    return item;
  },

  entry(className, time, text, label, id) {
    const item = ui.item(className, time, text, label, id);
    const log = $("conversation");
    const last = log.lastElementChild; // an entry: a day separator is never last
    log.append(item);
    if (last && dayKey(new Date(Number(last.dataset.at))) !== dayKey(time)) ui.days();
    if (ui.pinned) ui.toBottom();
    else $("new-messages").hidden = false;
    return item;
  },

  /** A message from the history, put in its place in time among what the conversation shows; one from before
   *  the first live entry is "earlier": shown only while its conversation is open (see ``filter``). */
  history(time, sender, kind, group, text, id, conversation) {
    const me = session.name.toLowerCase();
    let words;
    if (sender.toLowerCase() === me) {
      words = `you to ${kind === "broadcast" ? "everyone" : group.join(", ")}: ${text}`;
    } else {
      words = ui.said(sender, kind, group, text);
    }
    const item = ui.item(`history ${sender.toLowerCase() === me ? "mine" : `message ${kind}`}`, time, words, null, id);
    const at = time.getTime();
    const later = [...$("conversation").children].find(
      (li) => !li.classList.contains("day") &&
        (Number(li.dataset.at) > at || (Number(li.dataset.at) === at && (li.dataset.id || "") > id)),
    );
    item.dataset.conversation = conversation;
    $("conversation").insertBefore(item, later || null);
    const firstLive = $("conversation").querySelector("li:not(.history):not(.day):not(.gap)");
    if (!firstLive || item.compareDocumentPosition(firstLive) & Node.DOCUMENT_POSITION_FOLLOWING) {
      item.classList.add("earlier");
    }
  },

  /** Before the first live entry the log has only the history pages asked for, conversation by conversation: it
   *  shows the open conversation's alone, and a line where everything since the login starts says so. */
  filter() {
    const log = $("conversation");
    const open = ui.openConversation();
    for (const old of log.querySelectorAll("li.gap")) old.remove();
    const earlier = [...log.querySelectorAll("li.earlier")];
    for (const li of earlier) li.hidden = li.dataset.conversation !== open;
    const shown = earlier.filter((li) => !li.hidden);
    if (!shown.length) return;
    const gap = document.createElement("li");
    gap.className = "gap";
    gap.textContent = `Above: earlier messages ${ui.inWords(open)} only. Below: all since you logged in.`;
    shown[shown.length - 1].after(gap);
  },

  /** A conversation as a reader says it: "to everyone", "with bob and carol", "with yourself". */
  inWords(conversation) {
    if (conversation === "#all") return "to everyone";
    return ROOM.test(conversation) ? `in ${ui.who(conversation)}` : `with ${ui.who(conversation)}`;
  },

  /** With whom a conversation is: "everyone", "bob and carol" (as the log spells them), "yourself". */
  who(conversation) {
    if (conversation === "#all") return "everyone";
    if (ROOM.test(conversation)) return (session.rooms.get(conversation) || { name: conversation }).name;
    const me = session.name.toLowerCase();
    const others = conversation.split(",").filter((key) => key !== me);
    const spelled = others.map((key) => (session.users.get(key) || { name: key }).name);
    return joinNames(spelled) || "yourself";
  },

  /** The recent conversations, newest first, each a button that opens it; the open one marked (a focused one keeps
   *  the focus). */
  renderConversations() {
    const open = ui.openConversation();
    const now = new Date();
    const focused = document.activeElement.closest("#conversations button");
    $("conversations").replaceChildren(...session.conversations.map(({ conversation, at }) => {
      const button = document.createElement("button");
      button.type = "button";
      button.dataset.conversation = conversation;
      const who = document.createElement("span");
      who.textContent = ui.who(conversation);
      const when = document.createElement("time");
      const known = at.getTime() > 0; // a room with no message known has no time
      when.dateTime = known ? at.toISOString() : "";
      when.textContent = known ? describeTime(at, now) : "";
      button.append(who, when);
      const unread = session.unread.get(conversation) || 0;
      if (unread) {
        const count = document.createElement("span");
        count.className = "unread";
        count.textContent = `${unread} unread`;
        button.append(count);
      }
      // Its accessible name: the room's or the people's name, and its unread count.
      const name = conversation === "#all" ? "#all, everyone" : ui.who(conversation);
      button.setAttribute("aria-label", `${name}, ${unread} unread${known ? `, ${when.textContent}` : ""}`);
      if (conversation === open) button.setAttribute("aria-current", "true");
      const item = document.createElement("li");
      item.append(button);
      return item;
    }));
    $("recent").hidden = !session.conversations.length && session.version < 11;
    const again = focused && [...$("conversations").querySelectorAll("button")].find(
      (button) => button.dataset.conversation === focused.dataset.conversation,
    );
    if (again) again.focus();
  },

  /** Address ``kind`` to ``keys`` (names in any case) in the compose form: what Reply all and the list do. */
  address(kind, keys) {
    session.openRoom = "";
    $(`kind-${kind}`).checked = true;
    ui.renderUsers();
    for (const input of document.querySelectorAll('#users input[name="recipient"]')) {
      input.checked = keys.includes(input.value.toLowerCase());
    }
    ui.renderUsers();
    ui.opened();
    $("message").focus();
  },

  /** Open a conversation of the list: addressed, and its history shown. */
  openListed(conversation) {
    if (ROOM.test(conversation) && conversation !== "#all") {
      ui.openRoom(conversation);
      return;
    }
    if (conversation === "#all") {
      ui.address("broadcast", []);
      return;
    }
    const me = session.name.toLowerCase();
    const others = conversation.split(",").filter((key) => key !== me);
    const keys = others.length ? others : [me];
    ui.address(keys.length > 1 ? "multicast" : "unicast", keys);
  },

  /** Where the reader is: the first entry in sight and how far below the log's top it is. */
  anchor() {
    const log = $("conversation");
    if (ui.pinned) return null;
    const first = [...log.children].find((li) => !li.hidden && li.offsetTop + li.offsetHeight > log.scrollTop);
    return first ? { item: first, offset: first.offsetTop - log.scrollTop } : null;
  },

  /** A page of history is in: day separators, the reader kept where it was, the button and what it says. */
  historyShown(anchor, count) {
    const log = $("conversation");
    ui.filter();
    ui.days();
    if (ui.pinned) ui.toBottom();
    else if (anchor) log.scrollTop = anchor.item.offsetTop - anchor.offset;
    const button = $("load-earlier");
    const hadFocus = document.activeElement === button;
    ui.renderHistory(count ? `${count} earlier ${count === 1 ? "message" : "messages"} loaded.` : "");
    if (hadFocus && button.hidden) log.focus(); // the start: the reader goes on in the log
  },

  /** Day separators ("Today", "Yesterday", "3 December") before each day's first entry; none on a log of today only. */
  days() {
    const log = $("conversation");
    for (const old of log.querySelectorAll("li.day")) old.remove();
    const now = new Date();
    let previous = dayKey(now);
    let first = true;
    for (const li of [...log.children].filter((child) => !child.hidden && child.className !== "gap")) {
      const time = new Date(Number(li.dataset.at));
      const key = dayKey(time);
      if (key !== previous || (first && key !== dayKey(now))) {
        const day = document.createElement("li");
        day.className = "day";
        day.textContent = dayLabel(time, now);
        log.insertBefore(day, li);
      }
      previous = key;
      first = false;
    }
  },

  /** The conversation open in the compose form: #all for a broadcast or nobody picked, else the picked and this user. */
  openConversation() {
    if (session.openRoom && session.rooms.has(session.openRoom)) return session.openRoom;
    const picked = ui.kind() === "broadcast" ? [] : ui.recipients();
    if (!picked.length) return "#all";
    const keys = new Set([session.name.toLowerCase(), ...picked.map((n) => n.toLowerCase())]);
    return [...keys].sort().join(",");
  },

  /** The open conversation's "Load earlier messages" button, and the note beside it. */
  renderHistory(said = "") {
    const button = $("load-earlier");
    const note = $("history-note");
    const row = $("history");
    if (![...session.histories.values()].some((known) => known.loading)) {
      $("conversation").setAttribute("aria-live", "polite"); // what comes live is read out again
    }
    if (!session.welcomed || session.version < 9) {
      row.hidden = true;
      return;
    }
    row.hidden = false;
    const conversation = ui.openConversation();
    const known = session.histories.get(conversation);
    let words = said;
    if (!session.historyDays) words = "This server keeps no history.";
    else if (known && known.refused) words = known.refused;
    else if (!session.historyOpen(conversation)) words = "Protect your name to keep the history of your conversations.";
    else if (known && !known.more && !known.loading) words = `${said} This is the start of the conversation.`.trim();
    button.hidden = !session.historyOpen(conversation) || Boolean(known && (known.refused || !known.more));
    note.textContent = words;
  },

  /** The open conversation changed: show its history, the first time. */
  opened() {
    const conversation = ui.openConversation();
    ui.renderRoom();
    if (!session.histories.has(conversation)) session.loadHistory(conversation);
    ui.renderHistory();
    ui.renderConversations();
    ui.filter();
    ui.days();
    if (ui.pinned) ui.toBottom();
    session.markRead();
  },

  earlier() {
    session.loadHistory(ui.openConversation());
  },

  // The conversation follows what comes (through resizes too) unless the user scrolled up to read:
  // then "New messages" says there is more below.
  pinned: true,

  atBottom() {
    const log = $("conversation");
    return log.scrollHeight - log.scrollTop - log.clientHeight < 24;
  },

  toBottom() {
    const log = $("conversation");
    log.scrollTop = log.scrollHeight;
    ui.pinned = true;
    $("new-messages").hidden = true;
  },

  scrolled() {
    ui.pinned = ui.atBottom();
    if (ui.pinned) $("new-messages").hidden = true;
    const log = $("conversation");
    if (log.scrollTop < 2 && log.scrollHeight > log.clientHeight && !$("load-earlier").hidden) ui.earlier();
  },

  /** Bring ``item`` to the top of the conversation if it is out of sight above. */
  keepInView(item) {
    const log = $("conversation");
    if (item.offsetTop >= log.scrollTop) return;
    log.scrollTop = item.offsetTop;
    ui.pinned = ui.atBottom();
    $("new-messages").hidden = ui.pinned;
  },

  /** How a message this user sent went: "delivered to 2", "not sent". */
  receipt(item, text) {
    if (!item) return;
    const note = document.createElement("span");
    note.className = "receipt";
    note.textContent = text;
    item.append(note);
    if (ui.pinned) ui.toBottom();
  },

  /** Someone came or went: said in the conversation only for the people this user talks with (messages to or
   *  from them, or picked as recipients); the list shows everyone's. */
  presence(name, text) {
    const key = name.toLowerCase();
    if (session.talking.has(key) || ui.recipients().some((n) => n.toLowerCase() === key)) ui.system(text);
  },

  /** Whom a message to this user went to, in words: "everyone", "you", "you and carol". */
  to(kind, group) {
    const me = session.name.toLowerCase();
    if (kind === "broadcast") return "everyone";
    if (kind === "room") return group[0];
    if (kind === "unicast") return "you";
    return joinNames(["you", ...group.filter((n) => n.toLowerCase() !== me)]);
  },

  /** How a message to this user reads: "bob to you: hi", "bob in #dev: hi". */
  said(sender, kind, group, text) {
    return `${sender} ${kind === "room" ? "in" : "to"} ${ui.to(kind, group)}: ${text}`;
  },

  message(time, sender, kind, group, text, delayed, id) {
    const label = delayed ? describeTime(time, new Date()) : null;
    ui.entry(`message ${kind}${delayed ? " delayed" : ""}`, time, ui.said(sender, kind, group, text), label, id);
    $("reply-all").disabled = !session.welcomed;
  },

  /** A message this user sent: from this page (its receipt comes with SENT), or from another session (``id``). */
  mine(kind, recipients, text, time = new Date(), id = undefined) {
    const to = kind === "broadcast" ? "everyone" : recipients.join(", ");
    return ui.entry("mine", time, `you to ${to}: ${text}`, null, id);
  },

  system(text) {
    return ui.entry("system", new Date(), text);
  },

  warning(text) {
    ui.entry("warning", new Date(), text);
  },

  notice(text) {
    ui.entry("notice", new Date(), `Server notice: ${text}`);
  },

  /** Open the room ``key``: written to, its history, members and topic shown. */
  openRoom(key) {
    const known = session.rooms.get(key);
    if (!known) return;
    session.openRoom = key;
    if (!known.members) session.roomCommand("MEMBERS", known.name, `MEMBERS ${known.name}`);
    ui.opened();
    $("message").focus();
  },

  /** The open room's name, members count and modes, topic, members (operators first), and an operator's form. */
  renderRoom() {
    const key = ui.openConversation();
    const known = session.rooms.get(key);
    // The open conversation's log is named after it.
    $("conversation-title").textContent = key === "#all" ? "#all (everyone)" : ui.who(key);
    $("room").hidden = !known;
    $("message-label").textContent = known ? `Message to ${known.name}` : "Message";
    if (!known) return;
    const members = [...(known.members || new Map()).values()].sort(
      (a, b) => (b.op - a.op) || (b.voice - a.voice) || a.name.toLowerCase().localeCompare(b.name.toLowerCase()),
    );
    const modes = [...known.modes].map((m) => ROOM_MODES[m] || m).join(", ");
    $("room-title").textContent = `${known.name} · ${membersOf(members.length)}${modes ? ` · ${modes}` : ""}`;
    $("room-topic").textContent = known.topic ? `Topic: ${known.topic}` : "No topic";
    $("room-members").replaceChildren(...members.map((member) => {
      const item = document.createElement("li");
      item.className = member.online ? "online" : "offline";
      const role = member.op ? ", operator" : member.voice ? ", voice" : "";
      item.textContent = `${member.op ? "@" : member.voice ? "+" : ""}${member.name}`;
      item.setAttribute("aria-label", `${member.name}, ${member.online ? "online" : "offline"}${role}`);
      return item;
    }));
    const me = known.members && known.members.get(session.name.toLowerCase());
    $("operator").hidden = !(me && me.op);
    $("compose-error").textContent = "";
    $("people-summary").textContent = `To ${known.name}`;
  },

  /** ``name`` left the room ``key`` (or was removed): said, and the members shown again. */
  memberGone(key, name, said) {
    const known = session.rooms.get(key);
    if (known.members) known.members.delete(name.toLowerCase());
    ui.system(said);
    ui.renderRoom();
  },

  /** Apply "+i-m", "+o bob"... to what is known of a room (bans are not kept here). */
  applyModes(known, changes, args) {
    let adding = true;
    const rest = [...args];
    for (const letter of changes) {
      if (letter === "+" || letter === "-") {
        adding = letter === "+";
        continue;
      }
      const arg = "ovb".includes(letter) || (adding && "kl".includes(letter)) ? rest.shift() || "" : "";
      const member = known.members && known.members.get(arg.toLowerCase());
      if ((letter === "o" || letter === "v") && member) {
        member[letter === "o" ? "op" : "voice"] = adding;
      } else if (ROOM_MODES[letter]) {
        const modes = new Set(known.modes);
        if (adding) modes.add(letter);
        else modes.delete(letter);
        known.modes = [...modes].sort().join("");
      }
    }
  },

  composeError(text) {
    $("compose-error").textContent = text;
  },

  passwordDone() {
    $("password-panel").hidden = true;
    $("new-password").value = "";
    $("new-password-again").value = "";
    $("message").focus();
  },

  passwordError(text) {
    $("password-error").textContent = text;
    $("password-panel").hidden = false;
    $("new-password").focus();
  },
};

function onLogin(event) {
  event.preventDefault();
  const name = $("username").value.trim();
  const password = $("password").value;
  if (!name) {
    ui.showLogin("Type a username.", "username");
    return;
  }
  if (/\s/.test(name)) {
    session.name = name;
    ui.showLogin("A username cannot hold spaces.", "username");
    return;
  }
  if (password && location.protocol === "http:" && !loopback(location.hostname) && !session.warnedClear) {
    session.warnedClear = true;
    $("login-error").textContent =
      "This page is not encrypted (http): your password would cross the network in the clear. " +
      "Ask for an https address, or press Log in again to send it anyway.";
    return;
  }
  session.name = name;
  session.password = password;
  $("password").value = "";
  session.everWelcomed = false;
  session.attempt = 0;
  session.connect();
}

function onSend(event) {
  event.preventDefault();
  const kind = ui.kind();
  const text = $("message").value;
  const recipients = ui.recipients();
  ui.composeError("");
  if (!text.trim()) {
    ui.composeError("Type a message first.");
    return;
  }
  const room = session.rooms.get(ui.openConversation());
  if (room) {
    if (session.sendMessage("room", [room.name], text)) $("message").value = "";
    else ui.composeError("Not connected: the message was not sent.");
    $("message").focus();
    return;
  }
  if (kind === "unicast" && recipients.length !== 1) {
    ui.composeError("Pick the recipient in the username log.");
    return;
  }
  if (kind === "multicast" && recipients.length < 1) {
    ui.composeError("Pick the recipients in the username log.");
    return;
  }
  if (session.sendMessage(kind, recipients, text)) {
    $("message").value = "";
  } else {
    ui.composeError("Not connected: the message was not sent.");
  }
  $("message").focus();
}

function onReplyAll() {
  const last = session.lastReceived;
  if (!last) return;
  const me = session.name.toLowerCase();
  if (last.kind === "broadcast") {
    ui.address("broadcast", []);
    return;
  }
  if (last.kind === "room") {
    ui.openRoom(last.group[0].toLowerCase());
    return;
  }
  const sender = last.sender.toLowerCase();
  const keys = [sender, ...last.group.map((n) => n.toLowerCase()).filter((key) => key !== me && key !== sender)];
  ui.address(keys.length > 1 ? "multicast" : "unicast", keys);
}

function onJoin(event) {
  event.preventDefault();
  let room = $("room-name").value.trim();
  if (room && !room.startsWith("#")) room = `#${room}`;
  if (!ROOM.test(room)) {
    ui.warning("A room's name is # and 1-32 letters, digits, _ . or -, a letter first.");
    $("room-name").focus();
    return;
  }
  if (room.toLowerCase() === "#all") ui.address("broadcast", []);
  else if (!session.roomCommand("JOIN", room, `JOIN ${room}`)) return;
  $("room-name").value = "";
  $("join-form").hidden = true;
  $("join-room").setAttribute("aria-expanded", "false");
}

/** An operator's form: its button says what the words are (a topic, a name to invite or kick, modes). */
function onOperator(event) {
  event.preventDefault();
  const known = session.rooms.get(ui.openConversation());
  if (!known) return;
  const text = $("operator-text").value.trim();
  const [first, ...rest] = text.split(/\s+/).filter(Boolean);
  const act = event.submitter ? event.submitter.value : "topic";
  const room = known.name;
  let sent = false;
  if (act === "topic") {
    sent = session.roomCommand("TOPIC", room, `TOPIC ${room} :${text}`);
  } else if ((act === "invite" || act === "kick") && USERNAME.test(first || "")) {
    const line = act === "invite" ? `INVITE ${room} ${first}` : `KICK ${room} ${first}${rest.length ? ` :${rest.join(" ")}` : ""}`;
    sent = session.roomCommand(act.toUpperCase(), room, line);
  } else if (act === "mode" && /^[+-]?[a-z]+([+-][a-z]+)*$/.test(first || "") && !rest.some((w) => w.startsWith(":"))) {
    sent = session.roomCommand("MODE", room, `MODE ${room} ${[first, ...rest].join(" ")}`);
  } else {
    ui.warning(act === "mode" ? "Modes: +i, -m, +k KEY, +l 20, +o NAME, -v NAME, +b MASK." : "Type a name first.");
  }
  if (sent) $("operator-text").value = "";
}

function onPassword(event) {
  event.preventDefault();
  const first = $("new-password").value;
  if (first !== $("new-password-again").value) {
    ui.passwordError("The two passwords differ.");
    return;
  }
  if ([...first].length < 8) {
    ui.passwordError("A password needs at least 8 characters.");
    return;
  }
  $("password-error").textContent = "";
  if (!session.setPassword(first)) ui.passwordError("Not connected: the password was not changed.");
}

function start() {
  // The chat's "Reconnect now" sits in the status line, beside the reason.
  const again = document.createElement("button");
  again.type = "button";
  again.id = "chat-reconnect";
  again.textContent = "Reconnect now";
  again.hidden = true;
  again.addEventListener("click", () => session.connect());
  $("status").after(again);

  $("login").addEventListener("submit", onLogin);
  $("compose").addEventListener("submit", onSend);
  $("reply-all").addEventListener("click", onReplyAll);
  $("password-panel").addEventListener("submit", onPassword);
  $("join-form").addEventListener("submit", onJoin);
  $("operator").addEventListener("submit", onOperator);
  $("join-room").addEventListener("click", () => {
    const open = $("join-form").hidden;
    $("join-form").hidden = !open;
    $("join-room").setAttribute("aria-expanded", String(open));
    if (open) $("room-name").focus();
  });
  $("leave-room").addEventListener("click", () => {
    const known = session.rooms.get(ui.openConversation());
    if (known) session.roomCommand("PART", known.name, `PART ${known.name}`);
  });
  $("password-cancel").addEventListener("click", () => {
    $("password-panel").hidden = true;
    $("message").focus();
  });
  $("protect").addEventListener("click", () => {
    $("password-error").textContent = "";
    $("password-panel").hidden = false;
    $("new-password").focus();
  });
  $("logout").addEventListener("click", () => session.logout());
  $("people-toggle").addEventListener("click", () => {
    const open = $("people-toggle").getAttribute("aria-expanded") !== "true";
    $("people-toggle").setAttribute("aria-expanded", String(open));
    $("people").classList.toggle("open", open);
  });
  $("users").addEventListener("change", () => {
    session.openRoom = ""; // the seed's flow: picking recipients leaves a room
    ui.summarize();
    ui.opened();
  });
  $("load-earlier").addEventListener("click", () => ui.earlier());
  $("conversations").addEventListener("click", (event) => {
    const button = event.target.closest("button");
    if (button) ui.openListed(button.dataset.conversation);
  });
  const log = $("conversation");
  log.addEventListener("scroll", () => ui.scrolled());
  new ResizeObserver(() => {
    if (ui.pinned) ui.toBottom();
  }).observe(log);
  $("new-messages").addEventListener("click", () => ui.toBottom());
  for (const radio of document.querySelectorAll('input[name="kind"]')) {
    radio.addEventListener("change", () => {
      session.openRoom = "";
      ui.renderUsers();
      ui.opened();
    });
  }
  window.addEventListener("beforeunload", () => session.send("QUIT :closed the page"));
  // The open conversation is read while the page is in sight and has the focus.
  window.addEventListener("focus", () => session.markRead());
  document.addEventListener("visibilitychange", () => session.markRead());
  $("username").focus();
}

start();
