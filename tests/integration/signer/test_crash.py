"""kill -9 during a burst of signing, twice. After each restart the audit
chain verifies, the velocity ledger holds at least everything that was
acknowledged (and at most what was in flight on top), and every
acknowledged nonce re-signs identically and refuses another payload."""
import os
import threading
import time
import unittest

import signerlib as L

PAYEE = bytes.fromhex("70997970c51812dc3a010c7d01b50e0d17dc79c8")
LIMIT = 10 ** 9
THREADS = 4

POLICY = {
    "version": 1,
    # nonces jump to 100000, 500000, 900000 below; fees are zero (Client
    # free_gas) so that only value counts against the limit
    "chains": [{"chain_id": 31337, "max_nonce_gap": 1000000,
                "native": {"max_value": str(LIMIT), "daily_limit": str(LIMIT), "any_recipient": True}}],
}


class Crash(unittest.TestCase):
    def burst_then_kill(self, d, key, first_nonce, run_for):
        """THREADS connections sign value-1 transfers with distinct nonces
        until the daemon is killed; returns {nonce: raw_tx} acknowledged."""
        acked = {}
        lock = threading.Lock()
        stop = threading.Event()

        def work(t):
            n = first_nonce + t
            try:
                with L.Client(d.sock, timeout=10, free_gas=True) as c:
                    while not stop.is_set():
                        r = c.sign_1559(key, nonce=n, to=PAYEE, value=1)
                        if L.kind(r) != "sign_transaction":
                            break
                        with lock:
                            acked[n] = r.sign_transaction.raw_tx
                        n += THREADS
            except (OSError, AssertionError):
                pass  # the daemon died under us

        threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
        for t in threads:
            t.start()
        time.sleep(run_for)
        d.kill9()
        stop.set()
        for t in threads:
            t.join(30)
        return acked

    def ledger_used(self, c, key, nonce, at_least, slack):
        """How much of the day's limit the ledger holds for key, knowing it
        is in [at_least, at_least + slack]: spend all but at_least + slack
        in one transaction, then 1 at a time until the limit refuses."""
        big = LIMIT - at_least - slack
        r = c.sign_1559(key, nonce=nonce, to=PAYEE, value=big)
        self.assertEqual(L.kind(r), "sign_transaction", "the ledger holds more than acknowledged + in flight")
        k = 0
        while True:
            nonce += 1
            r = c.sign_1559(key, nonce=nonce, to=PAYEE, value=1)
            if L.kind(r) != "sign_transaction":
                self.assertEqual(L.error_of(r), ("ERROR_CODE_POLICY_DENIED", "velocity.daily_limit"), r)
                break
            k += 1
            self.assertLessEqual(k, slack)
        # used + big + k == LIMIT
        return LIMIT - big - k

    def check_after_restart(self, d, key, acked, spent_before):
        r = d.audit_verify()
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        print("\n  " + r.stdout.strip().replace("\n", "\n  "))
        with L.Client(d.sock, free_gas=True) as c:
            # every acknowledged signature is remembered: same payload, same signature
            for n, raw in sorted(acked.items())[:: max(1, len(acked) // 50)]:
                r = c.sign_1559(key, nonce=n, to=PAYEE, value=1)
                self.assertEqual(L.kind(r), "sign_transaction", r)
                self.assertEqual(r.sign_transaction.raw_tx, raw)
                r = c.sign_1559(key, nonce=n, to=PAYEE, value=2)
                self.assertEqual(L.error_of(r), ("ERROR_CODE_DOUBLE_SIGN", "nonce.double_sign"))
        lines = d.audit_lines()
        allowed = [l for l in lines if l.get("op") == "sign_transaction" and l.get("decision") == "allow"
                   and not l.get("resign")]
        self.assertGreaterEqual(len(allowed), spent_before + len(acked))
        starts = [l for l in lines if l.get("event") == "start"]
        return starts[-1]

    def test_kill9_during_burst(self):
        with L.Daemon(policy=POLICY, name="crash", threads=2) as d:
            d.start()
            with L.Client(d.sock, free_gas=True) as c:
                key = c.generate_key("crash-owner")
            acked1 = self.burst_then_kill(d, key, 0, 0.6)
            self.assertGreater(len(acked1), 20, "the burst got going before the kill")
            d.start()
            start = self.check_after_restart(d, key, acked1, 0)
            print("  after kill 1: %d acknowledged; start line: ledger_records=%s audit_torn_bytes=%s"
                  % (len(acked1), start.get("ledger_records"), start.get("audit_torn_bytes")))

            # second crash, continuing after the first burst's nonces
            acked2 = self.burst_then_kill(d, key, 100000, 0.6)
            self.assertGreater(len(acked2), 20)
            d.start()
            self.check_after_restart(d, key, acked2, len(acked1))

            # velocity intact: what is left of the day's limit matches what
            # was acknowledged, give or take what was in flight at each kill
            acked = len(acked1) + len(acked2)
            with L.Client(d.sock, free_gas=True) as c:
                used = self.ledger_used(c, key, 500000, acked, 2 * THREADS)
            print("  limit %d, acknowledged %d, ledger holds %d" % (LIMIT, acked, used))
            self.assertGreaterEqual(used, acked, "nothing acknowledged was forgotten")
            self.assertLessEqual(used, acked + 2 * THREADS, "at most the in-flight requests on top")
            d.restart()
            with L.Client(d.sock, free_gas=True) as c:
                r = c.sign_1559(key, nonce=900000, to=PAYEE, value=1)
                self.assertEqual(L.error_of(r), ("ERROR_CODE_POLICY_DENIED", "velocity.daily_limit"))
            d.stop()
            self.assertEqual(d.audit_verify().returncode, 0)

    def test_truncated_audit_refused(self):
        """Lines removed from the end of the audit log (which a hash chain
        alone cannot show) are caught against the ledger's record."""
        with L.Daemon(policy=POLICY, name="trunc") as d:
            d.start()
            with L.Client(d.sock, free_gas=True) as c:
                key = c.generate_key("trunc-owner")
                for n in range(5):
                    self.assertEqual(L.kind(c.sign_1559(key, nonce=n, to=PAYEE, value=1)), "sign_transaction")
                for n in range(5, 10):
                    self.assertEqual(L.kind(c.sign_1559(key, nonce=n, to=PAYEE, value=1)), "sign_transaction")
            d.stop()
            with open(d.audit_path) as f:
                lines = f.readlines()
            with open(d.audit_path, "w") as f:
                f.writelines(lines[:4])
            self.assertEqual(d.audit_verify().returncode, 0, "the shortened chain is itself intact")
            d.start(wait=False)
            d.proc.wait(20)
            self.assertNotEqual(d.proc.returncode, 0)
            self.assertIn("lines were removed", d.read_log())

    def test_tail_cut_refused(self):
        """Only the last lines cut off (the final request and the stop
        line): the ledger marks the head after every flush and at stop, so
        even that is caught."""
        with L.Daemon(policy=POLICY, name="tailcut") as d:
            d.start()
            with L.Client(d.sock, free_gas=True) as c:
                key = c.generate_key("tail-owner")
                for n in range(3):
                    self.assertEqual(L.kind(c.sign_1559(key, nonce=n, to=PAYEE, value=1)), "sign_transaction")
                self.assertEqual(L.kind(c.status()), "status")
            d.stop()
            with open(d.audit_path) as f:
                lines = f.readlines()
            self.assertIn('"event":"stop"', lines[-1])
            for cut in (1, 2):
                with open(d.audit_path, "w") as f:
                    f.writelines(lines[:-cut])
                self.assertEqual(d.audit_verify().returncode, 0, "the shortened chain is itself intact")
                out = d.start_refused()
                self.assertIn("lines were removed", out)
            with open(d.audit_path, "w") as f:
                f.writelines(lines)
            d.start()  # the whole log: fine

    def test_ledger_loss_refused(self):
        """A deleted (or markless) ledger beside an audit log with activity
        would reopen every signed nonce: refused unless the operator says
        --accept-ledger-loss, which is audited."""
        with L.Daemon(policy=POLICY, name="ledgerloss") as d:
            d.start()
            with L.Client(d.sock, free_gas=True) as c:
                key = c.generate_key("loss-owner")
                self.assertEqual(L.kind(c.sign_1559(key, nonce=7, to=PAYEE, value=1)), "sign_transaction")
            d.stop()
            ledger = os.path.join(d.state, "ledger")
            os.unlink(ledger)
            out = d.start_refused()
            self.assertIn("the ledger is missing", out)
            self.assertIn("--accept-ledger-loss", out)
            # a ledger without any record of the audit head: the same
            with open(ledger, "wb") as f:
                f.write(b"COFFER-LEDGER v1\n")
            out = d.start_refused()
            self.assertIn("has no record of the log's head", out)
            # the operator accepts the loss: started, and it is on the record
            d.start(args=["--accept-ledger-loss"])
            lines = d.audit_lines()
            accepted = [l for l in lines if l.get("event") == "ledger_loss_accepted"]
            self.assertEqual(len(accepted), 1)
            self.assertEqual(accepted[0]["rule"], "ledger.lost")
            self.assertEqual(lines[lines.index(accepted[0]) + 1]["event"], "start")
            d.stop()
            # from now on the new ledger records the head: a plain start works
            d.start()
            d.stop()
            self.assertEqual(d.audit_verify().returncode, 0)

    def test_huge_nonces(self):
        """Nonces up to 2^64-2 are requests like any other (refused here by
        the policy); their audit lines verify, so the next start works.
        2^64-1 is a protocol violation (EIP-2681)."""
        with L.Daemon(policy=POLICY, name="hugenonce") as d:
            d.start()
            with L.Client(d.sock, free_gas=True) as c:
                key = c.generate_key("huge-owner")
                for n in (2 ** 63, 2 ** 64 - 2):
                    r = c.sign_1559(key, nonce=n, to=PAYEE, value=1)
                    self.assertEqual(L.error_of(r), ("ERROR_CODE_POLICY_DENIED", "nonce.too_far_ahead"), r)
                    r = c.sign_1559(key, chain_id=1, nonce=n, to=PAYEE, value=1)
                    self.assertEqual(L.error_of(r), ("ERROR_CODE_POLICY_DENIED", "chain.not_allowed"), r)
            with L.Client(d.sock, free_gas=True) as c:
                r = c.sign_1559(key, nonce=2 ** 64 - 1, to=PAYEE, value=1)
                self.assertEqual(L.error_of(r), ("ERROR_CODE_BAD_REQUEST", "protocol"), r)
                self.assertIn("EIP-2681", r.error.message)
            d.stop()
            self.assertEqual(d.audit_verify().returncode, 0, d.audit_verify().stdout)
            nonces = [l["nonce"] for l in d.audit_lines() if "nonce" in l]
            self.assertIn(str(2 ** 63), nonces)
            self.assertIn(str(2 ** 64 - 2), nonces)
            d.start()  # the log is not "damaged"
            with L.Client(d.sock, free_gas=True) as c:
                self.assertEqual(L.kind(c.sign_1559(key, nonce=0, to=PAYEE, value=1)), "sign_transaction")

    def test_edited_audit_refused(self):
        with L.Daemon(policy=POLICY, name="edit") as d:
            d.start()
            with L.Client(d.sock, free_gas=True) as c:
                key = c.generate_key("edit-owner")
                c.sign_1559(key, nonce=1, to=PAYEE, value=1)
            d.stop()
            with open(d.audit_path) as f:
                text = f.read()
            with open(d.audit_path, "w") as f:
                f.write(text.replace('"value":"1"', '"value":"0"', 1))
            r = d.audit_verify()
            self.assertEqual(r.returncode, 1)
            self.assertIn("line 4:", r.stdout)  # start, status, generate_key, then the edited one
            d.start(wait=False)
            d.proc.wait(20)
            self.assertNotEqual(d.proc.returncode, 0)
            self.assertIn("damaged at line 4", d.read_log())


class Replacement(unittest.TestCase):
    """Fee replacement through the daemon: accepted bump, refused bumps and
    payloads, the limit, the extra gas counted once, audit lines, and the
    ledger across a clean restart and a kill -9."""

    POLICY = {"version": 1,
              "chains": [{"chain_id": 31337, "max_fee_per_gas": "1000000000000",
                          "replacement": {"min_bump_pct": 10, "max_replacements": 3},
                          "native": {"max_value": "1000", "daily_limit": "100000000000000000",
                                     "any_recipient": True}}]}

    def test_replacement(self):
        G = 10 ** 9
        with L.Daemon(self.POLICY, name="repl") as d:
            d.start()
            with L.Client(d.sock) as c:
                key = c.generate_key("repl-owner")
                first = c.sign_1559(key, nonce=0, to=PAYEE, value=7, max_fee=2 * G, prio=1 * G)
                self.assertEqual(L.kind(first), "sign_transaction", first)
                # below +10 % on either fee
                r = c.sign_1559(key, nonce=0, to=PAYEE, value=7, max_fee=2 * G + G // 10, prio=G + G // 10)
                self.assertEqual(L.error_of(r), ("ERROR_CODE_POLICY_DENIED", "nonce.replacement_underpriced"))
                r = c.sign_1559(key, nonce=0, to=PAYEE, value=7, max_fee=3 * G, prio=G)
                self.assertEqual(L.error_of(r), ("ERROR_CODE_POLICY_DENIED", "nonce.replacement_underpriced"))
                # another payload: value, to, data, gas limit
                for kw in ({"value": 8}, {"to": b"\x22" * 20, "value": 7},
                           {"value": 7, "gas_limit": 30000}):
                    args = dict(to=PAYEE, max_fee=3 * G, prio=2 * G)
                    args.update(kw)
                    r = c.sign_1559(key, nonce=0, **args)
                    self.assertEqual(L.error_of(r), ("ERROR_CODE_DOUBLE_SIGN", "nonce.double_sign"), kw)
                # exactly +10 % on both: accepted, a new hash
                second = c.sign_1559(key, nonce=0, to=PAYEE, value=7, max_fee=2 * G + G // 5, prio=G + G // 10)
                self.assertEqual(L.kind(second), "sign_transaction", second)
                self.assertNotEqual(second.sign_transaction.tx_hash, first.sign_transaction.tx_hash)
                again = c.sign_1559(key, nonce=0, to=PAYEE, value=7, max_fee=2 * G + G // 5, prio=G + G // 10)
                self.assertEqual(again.sign_transaction.tx_hash, second.sign_transaction.tx_hash)
                old = c.sign_1559(key, nonce=0, to=PAYEE, value=7, max_fee=2 * G, prio=1 * G)
                self.assertEqual(L.error_of(old), ("ERROR_CODE_POLICY_DENIED", "nonce.replacement_underpriced"))
                third = c.sign_1559(key, nonce=0, to=PAYEE, value=7, max_fee=3 * G, prio=2 * G)
                self.assertEqual(L.kind(third), "sign_transaction", third)
                # legacy on another nonce: gas_price only
                self.assertEqual(L.kind(c.sign_legacy(key, nonce=1, to=PAYEE, gas_price=G)), "sign_transaction")
                r = c.sign_legacy(key, nonce=1, to=PAYEE, gas_price=G + G // 20)
                self.assertEqual(L.error_of(r), ("ERROR_CODE_POLICY_DENIED", "nonce.replacement_underpriced"))
                self.assertEqual(L.kind(c.sign_legacy(key, nonce=1, to=PAYEE, gas_price=2 * G)), "sign_transaction")
            lines = [x for x in d.audit_lines() if x.get("op") == "sign_transaction"]
            allowed = [x for x in lines if x["decision"] == "allow" and x.get("nonce") == "0"]
            self.assertEqual([x.get("replacement") for x in allowed], [None, 1, None, 2])
            self.assertTrue(any(x.get("rule") == "nonce.replacement_underpriced" for x in lines))

            d.restart()  # a clean restart: the ledger remembers the last fees and the count
            with L.Client(d.sock) as c:
                r = c.sign_1559(key, nonce=0, to=PAYEE, value=7, max_fee=3 * G, prio=2 * G)
                self.assertEqual(r.sign_transaction.tx_hash, third.sign_transaction.tx_hash)
                r = c.sign_1559(key, nonce=0, to=PAYEE, value=7, max_fee=3 * G + G // 5, prio=2 * G + G // 5)
                self.assertEqual(L.error_of(r), ("ERROR_CODE_POLICY_DENIED", "nonce.replacement_underpriced"))
                fourth = c.sign_1559(key, nonce=0, to=PAYEE, value=7, max_fee=4 * G, prio=3 * G)
                self.assertEqual(L.kind(fourth), "sign_transaction", fourth)
            d.kill9()  # the acknowledged replacement is on disk
            d.start()
            with L.Client(d.sock) as c:
                r = c.sign_1559(key, nonce=0, to=PAYEE, value=7, max_fee=4 * G, prio=3 * G)
                self.assertEqual(r.sign_transaction.tx_hash, fourth.sign_transaction.tx_hash)
                r = c.sign_1559(key, nonce=0, to=PAYEE, value=7, max_fee=9 * G, prio=8 * G)
                self.assertEqual(L.error_of(r), ("ERROR_CODE_POLICY_DENIED", "nonce.replacement_limit"))
            d.audit_verify()


if __name__ == "__main__":
    L.main()
