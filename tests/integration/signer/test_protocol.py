"""The socket protocol: pipelined requests, many connections, and
connections that misbehave (malformed, truncated, oversized, zero-length
frames; unknown operations; wrong field sizes; a peer with the wrong uid)
are closed and audited while every other connection keeps being served."""
import os
import socket
import struct
import subprocess
import threading
import time
import unittest

import signerlib as L

PAYEE = bytes.fromhex("70997970c51812dc3a010c7d01b50e0d17dc79c8")


class Protocol(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # 0666 so that a client under another uid reaches the peer check
        cls.d = L.Daemon(name="proto", socket_mode="0666", threads=2)
        cls.d.start()
        cls.good = L.Client(cls.d.sock)
        cls.key = cls.good.generate_key("proto-owner")
        cls.nonce = 0

    @classmethod
    def tearDownClass(cls):
        cls.good.close()
        cls.d.cleanup()

    def next_nonce(self):
        Protocol.nonce += 1
        return Protocol.nonce

    def still_serving(self):
        """The long-lived connection opened before the abuse still works."""
        r = self.good.sign_1559(self.key, nonce=self.next_nonce(), to=PAYEE)
        self.assertEqual(L.kind(r), "sign_transaction")
        self.assertIsNone(self.d.proc.poll())

    def violation(self, payload_or_raw, raw=False, expect_answer=True):
        with L.Client(self.d.sock) as c:
            if raw:
                c.send_raw(payload_or_raw)
            else:
                c.send_frame(payload_or_raw)
            if expect_answer:
                r = c.recv_response()
                self.assertIsNotNone(r, "an Error answer before closing")
                self.assertEqual(L.error_of(r), ("ERROR_CODE_BAD_REQUEST", "protocol"), r)
                self.assertIn("protocol violation" if not raw else "framing", r.error.message)
            self.assertTrue(c.is_closed(), "the daemon closes a connection after a protocol violation")
        self.still_serving()
        return r if expect_answer else None

    def test_pipelined(self):
        with L.Client(self.d.sock) as c:
            key = c.generate_key("pipeline-owner")
            reqs = []
            base = 0  # a fresh key: its nonces start near 0 (max_nonce_gap)
            for i in range(200):
                if i % 10 == 0:
                    reqs.append(c.request(status=L.pb.StatusRequest()))
                else:
                    tx = L.pb.Eip1559Tx(chain_id=31337, nonce=base + i, max_priority_fee_per_gas=L.u256(1),
                                        max_fee_per_gas=L.u256(2), gas_limit=21000, to=PAYEE, value=L.u256(0))
                    reqs.append(c.request(sign_transaction=L.pb.SignTransactionRequest(
                        sealed_key=key.blob, address=key.address, owner_id=key.owner, eip1559=tx)))
            blob = b"".join(struct.pack(">I", len(p)) + p for p in (r.SerializeToString() for r in reqs))
            c.send_raw(blob)  # one write, 200 frames
            for req in reqs:
                r = c.recv_response()
                self.assertEqual(r.request_id, req.request_id, "answers in request order")
                self.assertIn(L.kind(r), ("status", "sign_transaction"))

    def test_many_connections(self):
        errors = []

        def work(t):
            try:
                with L.Client(self.d.sock) as c:
                    key = c.generate_key("many-%d" % t)
                    for i in range(15):
                        r = c.sign_1559(key, nonce=i, to=PAYEE)
                        assert L.kind(r) == "sign_transaction", r
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))

        threads = [threading.Thread(target=work, args=(t,)) for t in range(24)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])

    def test_garbage(self):
        self.violation(b"\xff\xff\xff\xff\x0f")

    def test_unknown_operation(self):
        # field 20 (an operation this version does not know), empty message
        req = L.pb.Request(version=1, request_id=4242, trace_id="x").SerializeToString() + b"\xa2\x01\x00"
        r = self.violation(req)
        self.assertEqual(r.request_id, 4242)
        self.assertIn("unknown field", r.error.message)

    def test_wrong_sizes(self):
        c = L.Client(self.d.sock)
        base = dict(sealed_key=self.key.blob, address=self.key.address, owner_id=self.key.owner)
        cases = [
            dict(base, sealed_key=self.key.blob[:-1]),
            dict(base, address=self.key.address + b"\x00"),
        ]
        for st in cases:
            tx = L.pb.Eip1559Tx(chain_id=31337, max_priority_fee_per_gas=L.u256(1), max_fee_per_gas=L.u256(2),
                                gas_limit=21000, to=PAYEE, value=L.u256(0))
            self.violation(c.request(sign_transaction=L.pb.SignTransactionRequest(eip1559=tx, **st)).SerializeToString())
        tx = L.pb.Eip1559Tx(chain_id=31337, max_priority_fee_per_gas=L.u256(1), max_fee_per_gas=b"\x01" * 31,
                            gas_limit=21000, to=PAYEE, value=L.u256(0))
        self.violation(c.request(sign_transaction=L.pb.SignTransactionRequest(eip1559=tx, **base)).SerializeToString())
        tx = L.pb.LegacyTx(chain_id=31337, gas_price=L.u256(1), gas_limit=21000, to=PAYEE[:19], value=L.u256(0))
        self.violation(c.request(sign_transaction=L.pb.SignTransactionRequest(legacy=tx, **base)).SerializeToString())
        self.violation(L.pb.Request(version=9, request_id=1, status=L.pb.StatusRequest()).SerializeToString())
        self.violation(L.pb.Request(version=1, request_id=0, status=L.pb.StatusRequest()).SerializeToString())
        self.violation(L.pb.Request(version=1, request_id=1).SerializeToString())
        c.close()

    def test_oversized_and_zero_length(self):
        r = self.violation(struct.pack(">I", 65537), raw=True)
        self.assertEqual(r.request_id, 0)
        self.violation(struct.pack(">I", 0xFFFFFFFF), raw=True)
        self.violation(struct.pack(">I", 0), raw=True)

    def test_truncated(self):
        with L.Client(self.d.sock) as c:
            c.send_raw(struct.pack(">I", 100) + b"\x08\x01")
            c.s.shutdown(socket.SHUT_WR)  # the peer is done: inside a frame
            self.assertIsNone(c.recv_frame())
        with L.Client(self.d.sock) as c:
            c.send_raw(b"\x00\x00")  # half a header, then close
        self.still_serving()
        deadline = time.time() + 5
        while time.time() < deadline:
            lines = [l for l in self.d.audit_lines() if l.get("event") == "protocol_violation"
                     and "inside a frame" in l.get("detail", "")]
            if len(lines) >= 2:
                break
            time.sleep(0.05)
        self.assertGreaterEqual(len(lines), 2)

    def test_violation_after_pipelined_frames(self):
        """Frames that arrive with a framing violation in the same read are
        all answered, in order, before the violation's answer and the close
        (each of them is signed and audited: its answer must not be lost)."""
        for bad in (struct.pack(">I", 0), struct.pack(">I", 65537)):
            with L.Client(self.d.sock) as c:
                reqs = [c.request(status=L.pb.StatusRequest()) for _ in range(3)]
                tx = L.pb.Eip1559Tx(chain_id=31337, nonce=self.next_nonce(), max_priority_fee_per_gas=L.u256(0),
                                    max_fee_per_gas=L.u256(0), gas_limit=21000, to=PAYEE, value=L.u256(0))
                reqs.append(c.request(sign_transaction=L.pb.SignTransactionRequest(
                    sealed_key=self.key.blob, address=self.key.address, owner_id=self.key.owner, eip1559=tx)))
                blob = b"".join(struct.pack(">I", len(p)) + p for p in (r.SerializeToString() for r in reqs))
                c.send_raw(blob + bad)  # one write: one wake-up of the daemon
                for req in reqs:
                    r = c.recv_response()
                    self.assertIsNotNone(r, "answer to request %d lost" % req.request_id)
                    self.assertEqual(r.request_id, req.request_id, "answers in order, the violation's last")
                    self.assertIn(L.kind(r), ("status", "sign_transaction"), r)
                r = c.recv_response()
                self.assertEqual(L.error_of(r), ("ERROR_CODE_BAD_REQUEST", "protocol"), r)
                self.assertEqual(r.request_id, 0)
                self.assertTrue(c.is_closed())
        self.still_serving()

    def test_stalled_peer_does_not_block_others(self):
        with L.Client(self.d.sock) as stalled:
            stalled.send_raw(struct.pack(">I", 500) + b"\x08")  # and never the rest
            for _ in range(5):
                self.still_serving()
            with L.Client(self.d.sock) as c:
                self.assertEqual(L.kind(c.status()), "status")

    def test_wrong_peer_uid(self):
        code = (
            "import socket,struct,sys\n"
            "s=socket.socket(socket.AF_UNIX); s.settimeout(10); s.connect(sys.argv[1])\n"
            "req=bytes.fromhex(sys.argv[2])\n"
            "try:\n"
            "    s.sendall(struct.pack('>I',len(req))+req)\n"
            "    d=s.recv(100)\n"
            "except (ConnectionResetError, BrokenPipeError):\n"
            "    d=b''\n"
            "print('ANSWER' if d else 'CLOSED')\n")
        req = L.pb.Request(version=1, request_id=777, status=L.pb.StatusRequest()).SerializeToString()
        r = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "/usr/bin/python3", "-c",
                            code, self.d.sock, req.hex()], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.stdout.strip(), "CLOSED", r.stdout + r.stderr)
        deadline = time.time() + 5
        while time.time() < deadline:
            denied = [l for l in self.d.audit_lines() if l.get("event") == "peer_denied"]
            if denied:
                break
            time.sleep(0.05)
        self.assertTrue(denied)
        self.assertEqual(denied[-1]["uid"], 65534)
        self.assertEqual(denied[-1]["rule"], "peer.uid")
        self.still_serving()

    def test_zz_audit_and_status(self):
        self.assertEqual(L.kind(self.good.status()), "status")
        self.d.stop()
        r = self.d.audit_verify()
        self.assertEqual(r.returncode, 0, r.stdout)
        events = [l["event"] for l in self.d.audit_lines()]
        self.assertGreaterEqual(events.count("protocol_violation"), 10)
        self.d.start()


if __name__ == "__main__":
    L.main()
