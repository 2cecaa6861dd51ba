"""Resource limits per connection and overall: a peer that never reads its
answers stops being read (server.conn_queue_bytes, server.queue_bytes) and
is closed once idle (server.idle_timeout); a peer that sends half a frame
and stalls is a protocol violation after server.frame_timeout; an idle
connection is closed. Other peers keep being served throughout."""
import socket
import struct
import threading
import time
import unittest

import signerlib as L

BLOB = bytes.fromhex("b10bb10bb10bb10bb10bb10bb10bb10bb10bb10b")
PAYEE = bytes.fromhex("70997970c51812dc3a010c7d01b50e0d17dc79c8")

POLICY = {
    "version": 1,
    "chains": [{
        "chain_id": 31337,
        "native": {"max_value": "1000", "daily_limit": "1000000", "any_recipient": True},
        "contracts": [{"address": L.hx(BLOB), "label": "blob",
                       "calls": [{"function": "store(bytes)", "args": ["any"]}]}],
    }],
}

# answers are counted in bytes whatever their number
CONF = ("server.max_pipeline = 4096\n"
        "server.idle_timeout = 2s\n"
        "server.frame_timeout = 1s\n")


def big_calldata():
    """store(bytes) with 32000 bytes: a ~32 KiB request and answer."""
    return bytes.fromhex(L.cast("calldata", "store(bytes)", "0x" + "ab" * 32000).stdout.strip()[2:])


def audited(d, prefix):
    return [l for l in d.audit_lines() if l.get("trace_id", "").startswith(prefix)]


class NeverReads(unittest.TestCase):
    """The peer pipelines large requests and never reads an answer."""

    def flood(self, d, key, data, prefix, n=200):
        """Sends n identical large SignTransaction frames on a fresh
        connection without reading; returns (connection, thread, result),
        result["error"] set once the daemon closes on us."""
        c = L.Client(d.sock, free_gas=True)
        frames = []
        for i in range(n):
            tx = L.pb.Eip1559Tx(chain_id=31337, nonce=0, max_priority_fee_per_gas=L.u256(0),
                                max_fee_per_gas=L.u256(0), gas_limit=100000, to=BLOB, value=L.u256(0),
                                data=data)
            req = L.pb.Request(version=1, request_id=1000 + i, trace_id="%s-%d" % (prefix, i),
                               sign_transaction=L.pb.SignTransactionRequest(
                                   sealed_key=key.blob, address=key.address, owner_id=key.owner, eip1559=tx))
            p = req.SerializeToString()
            frames.append(struct.pack(">I", len(p)) + p)
        result = {}

        def send():
            c.s.settimeout(30)
            try:
                for f in frames:
                    c.s.sendall(f)
                result["sent_all"] = True
            except OSError as e:
                result["error"] = e

        t = threading.Thread(target=send)
        t.start()
        return c, t, result

    def settle(self, d, prefix, seconds=1.0):
        """The number of audited requests once it stops growing."""
        last, since = -1, time.time()
        while time.time() - since < seconds:
            n = len(audited(d, prefix))
            if n != last:
                last, since = n, time.time()
            time.sleep(0.1)
        return last

    def test_per_connection_budget_then_idle_close(self):
        with L.Daemon(policy=POLICY, name="noread", extra_conf=CONF + "server.conn_queue_bytes = 65540\n") as d:
            d.start()
            with L.Client(d.sock, free_gas=True) as good:
                key = good.generate_key("noread-owner")
                data = big_calldata()
                c, t, result = self.flood(d, key, data, "flood")
                processed = self.settle(d, "flood")
                print("\n  200 requests of ~32 KiB pipelined, none read: %d processed before the daemon "
                      "stopped reading" % processed)
                # ~7 answers fill the socket buffer (~210 KiB), the 64 KiB budget
                # holds ~2-3 more; without the budget all 200 would be read
                self.assertGreater(processed, 0)
                self.assertLess(processed, 20)
                # others are served meanwhile
                for n in range(3):
                    self.assertEqual(L.kind(good.sign_1559(key, nonce=n + 1, to=PAYEE)), "sign_transaction")
                # idle (no byte either way): closed after server.idle_timeout
                t.join(15)
                self.assertFalse(t.is_alive(), "the daemon closed the connection that does not read")
                self.assertIn("error", result)
                self.assertTrue(c.is_closed(timeout=5))
                c.close()
                self.assertEqual(len(audited(d, "flood")), processed, "nothing more was read")
            self.assertIsNone(d.proc.poll())
            d.stop()
            self.assertEqual(d.audit_verify().returncode, 0)

    def test_global_budget(self):
        conf = CONF + "server.queue_bytes = 200000\n"
        with L.Daemon(policy=POLICY, name="noreadall", extra_conf=conf) as d:
            d.start()
            with L.Client(d.sock, free_gas=True) as good:
                key = good.generate_key("noreadall-owner")
            data = big_calldata()
            floods = [self.flood(d, key, data, "all%d" % i) for i in range(3)]
            total = sum(self.settle(d, "all%d" % i, 0.5) for i in range(3))
            print("\n  3 connections x 200 requests, none read: %d processed in all" % total)
            # ~7 in each socket buffer, ~200 KB (~6 answers) queued in all
            self.assertLess(total, 45)
            # once the idle ones are closed (2 s), a new peer is served
            with L.Client(d.sock, free_gas=True) as late:
                late.s.settimeout(15)
                self.assertEqual(L.kind(late.status()), "status")
            for c, t, _ in floods:
                t.join(15)
                self.assertFalse(t.is_alive())
                c.close()
            self.assertIsNone(d.proc.poll())


class Stalls(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = L.Daemon(policy=POLICY, name="stall", extra_conf=CONF)
        cls.d.start()

    @classmethod
    def tearDownClass(cls):
        cls.d.cleanup()

    def test_half_frame_then_stall(self):
        with L.Client(self.d.sock) as c:
            t0 = time.time()
            c.send_raw(struct.pack(">I", 100) + b"\x08\x01")  # and never the rest
            c.s.settimeout(10)
            r = c.recv_response()
            waited = time.time() - t0
            self.assertIsNotNone(r, "an Error answer before closing")
            self.assertEqual(L.error_of(r), ("ERROR_CODE_BAD_REQUEST", "protocol"), r)
            self.assertIn("not completed within 1000 ms", r.error.message)
            self.assertGreaterEqual(waited, 0.9)
            self.assertLess(waited, 5)
            self.assertTrue(c.is_closed())
        lines = [l for l in self.d.audit_lines() if l.get("event") == "protocol_violation"
                 and "not completed" in l.get("detail", "")]
        self.assertEqual(len(lines), 1)

    def test_slow_drip_is_not_progress(self):
        """A byte now and then does not extend the time a frame may take."""
        with L.Client(self.d.sock) as c:
            c.send_raw(struct.pack(">I", 50))
            closed_after = None
            t0 = time.time()
            try:
                for _ in range(12):
                    time.sleep(0.4)
                    c.send_raw(b"\x00")
            except OSError:
                closed_after = time.time() - t0
            if closed_after is None:
                self.assertTrue(c.is_closed(timeout=3))
            else:
                self.assertLess(closed_after, 4)

    def test_idle_connection_closed(self):
        with L.Client(self.d.sock) as c:
            self.assertEqual(L.kind(c.status()), "status")
            t0 = time.time()
            self.assertTrue(c.is_closed(timeout=8))
            self.assertGreaterEqual(time.time() - t0, 1.9)
        # a new connection is served as ever
        with L.Client(self.d.sock) as c:
            self.assertEqual(L.kind(c.status()), "status")

    def test_zz_still_running(self):
        self.assertIsNone(self.d.proc.poll())
        self.d.stop()
        self.assertEqual(self.d.audit_verify().returncode, 0)


if __name__ == "__main__":
    L.main()
