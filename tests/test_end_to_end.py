"""The whole server over real TCP on loopback, with the real SQLite log."""

from __future__ import annotations

import socket

from twisted.trial.unittest import TestCase

from msgsvc.auth.accounts import NEW_NAMES
from msgsvc.state.sqlite import Database
from msgsvc.wire import Limits

from .support.loopback import LineTestClient, LoopbackServer


class EndToEndTests(TestCase):
    async def setUp(self) -> None:
        self.server = await LoopbackServer(self.mktemp()).start(self)
        self.clients = self.server.clients

    async def client(self) -> LineTestClient:
        return await self.server.client()

    async def register(self, name: str) -> tuple[LineTestClient, list[str]]:
        client = await self.client()
        client.send(f"HELLO {name}")
        return client, await client.until("ENDUSERS")

    async def test_five_clients_talk(self) -> None:
        names = ["alice", "bob", "carol", "dave", "erin"]
        clients = {}
        for i, name in enumerate(names):
            clients[name], welcome = await self.register(name)
            self.assertEqual(welcome[0], f"WELCOME {name} :welcome to msgsvc")
            self.assertEqual(
                welcome[1:], [f"USER {n} online" for n in names[: i + 1]] + [f"ENDUSERS {i + 1}"]
            )
            for earlier in names[:i]:
                self.assertEqual(await clients[earlier].line(), f"JOINED {name}")
        alice, bob, carol, dave, erin = (clients[n] for n in names)

        alice.send("SEND bob :hi bob")
        self.assertEqual(await bob.line(), "MSG alice unicast bob :hi bob")
        self.assertEqual(await alice.line(), "SENT 1 - -")

        carol.send("SEND alice,dave,ghost :lunch?")
        self.assertEqual(await carol.line(), "SENT 2 ghost -")
        for receiver in (alice, dave):
            self.assertEqual(await receiver.line(), "MSG carol multicast alice,dave :lunch?")

        erin.send("BROADCAST :hello everyone ✓")
        self.assertEqual(await erin.line(), "SENT 4 - -")
        for receiver in (alice, bob, carol, dave):
            self.assertEqual(await receiver.line(), "MSG erin broadcast * :hello everyone ✓")

        dave.send("QUIT :done")
        self.assertEqual(await dave.line(), "BYE :goodbye")
        await dave.closed
        for other in (alice, bob, carol, erin):
            self.assertEqual(await other.line(), "LEFT dave")

        bob.send("SEND dave,erin :still there?")
        self.assertEqual(await bob.line(), "SENT 1 dave -")
        self.assertEqual(await erin.line(), "MSG bob multicast dave,erin :still there?")

        # Nobody got anything else.
        for client in (alice, bob, carol, erin):
            client.send("PING :end")
            self.assertEqual(await client.line(), "PONG :end")

    async def test_taken_name_is_refused_and_may_try_again(self) -> None:
        alice, _ = await self.register("Alice")
        intruder = await self.client()
        intruder.send("HELLO ALICE")
        self.assertEqual(
            await intruder.lines(2), ["ERROR USERNAME_TAKEN :Alice is in use", "BYE :Alice is in use"]
        )
        await intruder.closed
        retry, welcome = await self.register("alice2")
        self.assertEqual(welcome[0], "WELCOME alice2 :welcome to msgsvc")
        self.assertEqual(await alice.line(), "JOINED alice2")

    async def test_a_crowd_logging_in_and_out_at_once_ends_with_one_view_everywhere(self) -> None:
        """Presence goes out in batches; every client must still end up knowing who is online."""
        self.server = await LoopbackServer(self.mktemp(), Limits(max_per_ip=100)).start(self)
        names = [f"user{i}" for i in range(NEW_NAMES.burst)]  # new names one address may add at once
        clients = [await self.client() for _ in names]
        for client, name in zip(clients, names, strict=True):
            client.send(f"HELLO {name}")  # all at once: registrations share reactor passes
        views = [apply({}, await client.until("ENDUSERS")) for client in clients]

        async def settle(clients: list[LineTestClient], views: list[dict[str, bool]]) -> None:
            for client, view in zip(clients, views, strict=True):
                client.send("PING :settled")  # answered after the news of earlier passes
                apply(view, await client.until("PONG"))

        await settle(clients, views)
        for view in views:
            self.assertEqual(view, dict.fromkeys(names, True))
        for client in clients[:10]:
            client.send("QUIT")
        for client in clients[:10]:
            await client.closed
        await settle(clients[10:], views[10:])
        for view in views[10:]:
            self.assertEqual(view, {name: i >= 10 for i, name in enumerate(names)})

    async def test_an_abrupt_disconnect_is_seen_as_leaving(self) -> None:
        alice, _ = await self.register("alice")
        bob, _ = await self.register("bob")
        await alice.line()  # JOINED bob
        bob.transport.abortConnection()
        self.assertEqual(await alice.line(), "LEFT bob")
        alice.send("SEND bob :are you there")
        self.assertEqual(await alice.line(), "SENT 0 bob -")

    async def test_every_name_is_on_disk_after_welcome(self) -> None:
        for name in ["Zed", "amy"]:
            client, _ = await self.register(name)
            client.send("QUIT")
            await client.closed
        database = Database(self.server.db_path)
        self.addCleanup(database.close)
        self.assertEqual([r.name for r in database.load()], ["Zed", "amy"])

    async def test_bad_input_spares_the_others(self) -> None:
        alice, _ = await self.register("alice")
        bob, _ = await self.register("bob")
        await alice.line()  # JOINED bob
        bob.transport.write(b"\xff\xfe\r\nSEND alice\r\nNOPE\r\n" + b"z" * 20000 + b"\r\nSEND alice :ok\r\n")
        codes = [line.split()[1] for line in await bob.lines(4)]
        self.assertEqual(codes, ["BAD_ENCODING", "BAD_SYNTAX", "UNKNOWN_COMMAND", "LINE_TOO_LONG"])
        self.assertEqual(await bob.line(), "SENT 1 - -")
        self.assertEqual(await alice.line(), "MSG bob unicast alice :ok")

    async def test_a_client_that_stops_reading_is_dropped_and_the_others_get_everything(self) -> None:
        # A server with no rate limit: the sender is meant to outrun the slow reader.
        self.server = await LoopbackServer(self.mktemp(), Limits(line_rate=1e6, line_burst=10**6, address_byte_burst=10**9)).start(self)
        sender, _ = await self.register("sender")
        fast, _ = await self.register("fast")
        slow, _ = await self.register("slow")
        await sender.until("JOINED slow")
        await fast.until("JOINED slow")
        slow.transport.pauseProducing()  # reads nothing more
        text = "x" * 4000
        count = 3000  # 12 MB: more than the loopback socket buffers and the server's 1 MiB allowance
        for _ in range(count):
            sender.send(f"BROADCAST :{text}")
        received = 0
        while received < count:
            line = await fast.line()
            if line.startswith("MSG sender broadcast"):
                self.assertEqual(line, f"MSG sender broadcast * :{text}")
                received += 1
        sent = [line for line in await sender.lines(count + 1) if line.startswith("SENT")]
        self.assertEqual(len(sent), count)
        self.assertIn("SENT 1 - -", sent)  # after the slow one was dropped
        self.assertIsNone(self.server.hub.user("slow").peer)  # type: ignore[union-attr]

    async def test_a_flooding_client_waits_and_loses_nothing(self) -> None:
        flooder, _ = await self.register("flooder")
        bob, _ = await self.register("bob")
        await flooder.until("JOINED bob")
        count = 130  # past the burst of 100: the last 30 come at 20 lines/s
        for i in range(count):
            flooder.send(f"SEND bob :{i}")
        got = [await bob.line() for _ in range(count)]
        self.assertEqual(got, [f"MSG flooder unicast bob :{i}" for i in range(count)])
        self.assertEqual(await flooder.lines(count), ["SENT 1 - -"] * count)

    async def test_accepted_connections_do_not_wait_for_nagle(self) -> None:
        await self.register("alice")
        [server_side] = self.clients.connections
        handle = server_side.transport.getHandle()
        self.assertTrue(handle.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    async def test_server_stop_says_bye(self) -> None:
        alice, _ = await self.register("alice")
        lurker = await self.client()
        await self.clients.disconnect_all("server shutting down")
        self.assertEqual(await alice.line(), "BYE :server shutting down")
        self.assertEqual(await lurker.line(), "BYE :server shutting down")
        await alice.closed
        await lurker.closed


    async def test_two_sessions_of_an_account_and_a_user_exchange(self) -> None:
        """The laptop and the phone of alice (version 10) and bob over TCP: each sees everything, once."""
        laptop = await self.client()
        laptop.send("VERSION 10")
        laptop.send("HELLO alice :alice's password")
        await laptop.until("ENDUSERS")
        bob, _ = await self.register("bob")
        self.assertEqual(await laptop.line(), "JOINED bob")
        phone = await self.client()
        phone.send("VERSION 10")
        phone.send("HELLO alice :alice's password")
        self.assertEqual((await phone.until("ENDUSERS"))[1], "WELCOME alice :welcome to msgsvc")

        phone.send("SEND bob :on my way")
        sent = (await phone.line()).split()
        self.assertEqual(sent[:4], ["SENT", "1", "-", "-"])
        self.assertEqual(await bob.line(), "MSG alice unicast bob :on my way")  # version 8: no id
        mine = (await laptop.line()).split()
        self.assertEqual(mine[:6], ["MSG", "alice", "unicast", "bob", sent[4], sent[5]])

        bob.send("SEND alice :see you")
        self.assertEqual(await bob.line(), "SENT 1 - -")
        to_laptop, to_phone = await laptop.line(), await phone.line()
        self.assertEqual(to_laptop, to_phone)
        self.assertTrue(to_laptop.startswith("MSG bob unicast alice "), to_laptop)

        phone.send("QUIT")
        await phone.closed
        laptop.send("QUIT")
        await laptop.closed
        bob.send("PING :end")
        self.assertEqual(await bob.until("PONG :end"), ["LEFT alice", "PONG :end"])  # one LEFT, for the last


def apply(view: dict[str, bool], lines: list[str]) -> dict[str, bool]:
    """A client's idea of who is online, after the server's ``USER``, ``JOINED`` and ``LEFT`` lines."""
    for line in lines:
        words = line.split()
        if words[0] == "USER":
            view[words[1]] = words[2] == "online"
        elif words[0] in ("JOINED", "LEFT"):
            view[words[1]] = words[0] == "JOINED"
    return view


class RoomsEndToEndTests(TestCase):
    """Rooms over real TCP, the line protocol's version 11, kept in the real SQLite file."""

    async def setUp(self) -> None:
        self.server = await LoopbackServer(self.mktemp(), history=True).start(self)

    async def register(self, name: str, *others: LineTestClient) -> LineTestClient:
        client = await self.server.client()
        client.send("VERSION 11")
        client.send(f"HELLO {name}")
        await client.until("ENDHISTORY")  # the catch-up of #all
        for other in others:
            self.assertEqual(await other.line(), f"JOINED {name}")
        return client

    async def test_two_create_a_room_and_talk_a_third_joins_and_the_operator_rules(self) -> None:
        alice = await self.register("alice")
        bob = await self.register("bob", alice)
        alice.send("JOIN #dev")
        room = await alice.until("ENDMEMBERS")
        self.assertRegex(room[0], r"^ROOM #dev \S+ \+nt :$")
        self.assertEqual(room[1:], ["MEMBER #dev alice online op", "ENDMEMBERS #dev 1"])
        bob.send("JOIN #DEV")
        self.assertEqual((await bob.until("ENDMEMBERS"))[-1], "ENDMEMBERS #dev 2")
        self.assertEqual(await alice.line(), "ENTERED #dev bob")

        bob.send("SEND #dev :hello, room")
        self.assertTrue((await bob.line()).startswith("SENT 1 - - "))
        self.assertRegex(await alice.line(), r"^MSG bob room #dev \S+ \S+ :hello, room$")

        carol = await self.register("carol", alice, bob)
        carol.send("JOIN #dev")
        self.assertEqual((await carol.until("ENDMEMBERS"))[-1], "ENDMEMBERS #dev 3")
        for member in (alice, bob):
            self.assertEqual(await member.line(), "ENTERED #dev carol")

        alice.send("TOPIC #dev :ship on Friday")
        topic = await alice.line()
        self.assertRegex(topic, r"^TOPIC #dev alice \S+ :ship on Friday$")
        for member in (bob, carol):
            self.assertEqual(await member.line(), topic)

        alice.send("MODE #dev +mv carol")
        self.assertEqual(await alice.line(), "MODE #dev alice +mv carol")
        for member in (bob, carol):
            self.assertEqual(await member.line(), "MODE #dev alice +mv carol")
        bob.send("SEND #dev :may I?")
        self.assertEqual(await bob.line(), "ERROR MODERATED :#dev is moderated: only its operators and voiced members speak")
        carol.send("SEND #dev :I may")
        self.assertTrue((await carol.line()).startswith("SENT 2 - - "))
        for member in (alice, bob):
            self.assertRegex(await member.line(), r"^MSG carol room #dev \S+ \S+ :I may$")

        alice.send("KICK #dev bob :quiet please")
        kicked = "KICKED #dev bob alice :quiet please"
        for member in (alice, bob, carol):
            self.assertEqual(await member.line(), kicked)
        bob.send("SEND #dev :back?")
        self.assertEqual(await bob.line(), "ERROR NOT_IN_ROOM :you are not in #dev")
        bob.send("HISTORY #dev")
        self.assertEqual(await bob.line(), "ERROR HISTORY_FORBIDDEN :you are not in that room")

        carol.send("MEMBERS #dev")
        self.assertEqual(
            await carol.until("ENDMEMBERS"),
            ["MEMBER #dev alice online op", "MEMBER #dev carol online voice", "ENDMEMBERS #dev 2"],
        )
        kept = await self.server._usernames.rooms()
        self.assertEqual([(r.name, r.topic, r.modes, sorted(r.members)) for r in kept], [("#dev", "ship on Friday", "mnt", ["alice", "carol"])])
