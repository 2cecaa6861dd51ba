"""Refusals by policy, end to end through the daemon: disallowed chain,
target, selector, recipient, spender, value; velocity limits that hold
across a restart; double signs. Every refusal names its rule, in the
answer and in the audit log."""
import unittest

import signerlib as L

TOKEN = bytes.fromhex("5fbdb2315678afecb367f032d93f642f64180aa3")
POOL = bytes.fromhex("e7f1725e7734ce288f8367e1bb143e90bb3f0512")
PAYEE = bytes.fromhex("70997970c51812dc3a010c7d01b50e0d17dc79c8")
STRANGER = b"\x99" * 20

POLICY = {
    "version": 1,
    "messages": {"allow": True, "max_bytes": 1024},
    "chains": [{
        "chain_id": 31337,
        "max_gas_limit": 300000,
        "max_fee_per_gas": "100000000000",
        "max_nonce_gap": 20000,
        "native": {"max_value": "1000", "daily_limit": "2500", "recipients": ["self", L.hx(PAYEE)]},
        "contracts": [
            {"address": L.hx(TOKEN), "label": "usdc", "daily_limit": "1000",
             "erc20": {"transfer_to": [L.hx(PAYEE)], "transfer_to_any": True,
                       "approve_spenders": [L.hx(POOL)]}},
            {"address": L.hx(POOL), "label": "pool",
             "calls": [{"function": "withdraw(address,uint256,address)", "args": ["any", "any", "self"]}]},
        ],
    }, {
        # gas alone against the native limit; the default max_nonce_gap (1024)
        "chain_id": 31338,
        "max_fee_per_gas": "1000",
        "native": {"max_value": "0", "daily_limit": "100000", "any_recipient": True},
    }],
}


def calldata(sig, *args):
    return bytes.fromhex(L.cast("calldata", sig, *args).stdout.strip()[2:])


class Policy(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = L.Daemon(policy=POLICY, name="policy")
        cls.d.start()
        # Zero fees unless a test sets them: gas counts against the small
        # native limit of this policy (test_gas_counts has its own chain).
        cls.c = L.Client(cls.d.sock, free_gas=True)
        cls.key = cls.c.generate_key("policy-owner")
        cls.nonce = 0

    @classmethod
    def tearDownClass(cls):
        cls.c.close()
        cls.d.cleanup()

    def next_nonce(self):
        Policy.nonce += 1
        return Policy.nonce

    def denied(self, r, rule, code="ERROR_CODE_POLICY_DENIED"):
        self.assertEqual(L.error_of(r), (code, rule), r)
        self.assertTrue(r.error.message)
        line = [l for l in self.d.audit_lines() if l.get("request_id") == str(r.request_id)]
        self.assertEqual(len(line), 1)
        self.assertEqual(line[0]["decision"], "deny")
        self.assertEqual(line[0]["rule"], rule)

    def test_chain(self):
        self.denied(self.c.sign_1559(self.key, chain_id=1, nonce=self.next_nonce(), to=PAYEE), "chain.not_allowed")
        self.denied(self.c.sign_legacy(self.key, chain_id=10, nonce=self.next_nonce(), to=PAYEE), "chain.not_allowed")

    def test_target_and_selector(self):
        data = calldata("transfer(address,uint256)", L.hx(PAYEE), "1")
        self.denied(self.c.sign_1559(self.key, nonce=self.next_nonce(), to=STRANGER, data=data, gas_limit=90000),
                    "contract.not_allowed")
        data = calldata("transferFrom(address,address,uint256)", L.hx(PAYEE), L.hx(PAYEE), "1")
        self.denied(self.c.sign_1559(self.key, nonce=self.next_nonce(), to=TOKEN, data=data, gas_limit=90000),
                    "contract.selector")
        self.denied(self.c.sign_1559(self.key, nonce=self.next_nonce(), to=TOKEN, data=b"\xa9\x05\x9c", gas_limit=90000),
                    "contract.calldata")

    def test_recipient_spender_receiver(self):
        self.denied(self.c.sign_1559(self.key, nonce=self.next_nonce(), to=STRANGER, value=1), "native.recipient")
        data = calldata("approve(address,uint256)", L.hx(STRANGER), "1")
        self.denied(self.c.sign_1559(self.key, nonce=self.next_nonce(), to=TOKEN, data=data, gas_limit=90000),
                    "erc20.spender")
        ok = self.c.sign_1559(self.key, nonce=self.next_nonce(), to=TOKEN, gas_limit=90000,
                              data=calldata("approve(address,uint256)", L.hx(POOL), "1000000"))
        self.assertEqual(L.kind(ok), "sign_transaction")
        data = calldata("withdraw(address,uint256,address)", L.hx(TOKEN), "5", L.hx(STRANGER))
        self.denied(self.c.sign_1559(self.key, nonce=self.next_nonce(), to=POOL, data=data, gas_limit=90000), "call.arg")
        data = calldata("withdraw(address,uint256,address)", L.hx(TOKEN), "5", self.key.hex)
        self.assertEqual(L.kind(self.c.sign_1559(self.key, nonce=self.next_nonce(), to=POOL, data=data, gas_limit=90000)),
                         "sign_transaction")

    def test_value_and_gas(self):
        self.denied(self.c.sign_1559(self.key, nonce=self.next_nonce(), to=PAYEE, value=1001), "native.value_cap")
        self.denied(self.c.sign_1559(self.key, nonce=self.next_nonce(), to=PAYEE, gas_limit=300001), "gas.limit")
        self.denied(self.c.sign_legacy(self.key, nonce=self.next_nonce(), to=PAYEE, gas_price=100000000001), "gas.fee_cap")
        self.denied(self.c.sign_1559(self.key, nonce=self.next_nonce(), to=PAYEE, prio=3 * 10 ** 9, max_fee=2 * 10 ** 9),
                    "gas.priority_above_max")
        self.denied(self.c.sign_1559(self.key, nonce=self.next_nonce(), to=b""), "tx.contract_creation")

    def test_velocity_survives_restart(self):
        key = self.c.generate_key("velocity-owner")
        n = 0
        # native: 2500 a day, 1000 per transaction
        for v in (1000, 1000, 500):
            n += 1
            self.assertEqual(L.kind(self.c.sign_1559(key, nonce=n, to=PAYEE, value=v)), "sign_transaction")
        n += 1
        self.denied(self.c.sign_1559(key, nonce=n, to=PAYEE, value=1), "velocity.daily_limit")
        # token payouts to arbitrary addresses: bounded by the token's 1000 a day
        for amount in ("600", "400"):
            n += 1
            r = self.c.sign_1559(key, nonce=n, to=TOKEN, gas_limit=90000,
                                 data=calldata("transfer(address,uint256)", L.hx(STRANGER), amount))
            self.assertEqual(L.kind(r), "sign_transaction", r)
        n += 1
        data = calldata("transfer(address,uint256)", L.hx(PAYEE), "1")
        r = self.c.sign_1559(key, nonce=n, to=TOKEN, gas_limit=90000, data=data)
        self.denied(r, "velocity.daily_limit")
        self.assertIn("usdc", r.error.message)
        # other keys have their own limits
        other = self.c.generate_key("velocity-owner")
        self.assertEqual(L.kind(self.c.sign_1559(other, nonce=1, to=PAYEE, value=1000)), "sign_transaction")

        # restart: the ledger remembers
        Policy.c.close()
        self.d.restart()
        Policy.c = L.Client(self.d.sock, free_gas=True)
        n += 1
        self.denied(self.c.sign_1559(key, nonce=n, to=PAYEE, value=1), "velocity.daily_limit")
        n += 1
        self.denied(self.c.sign_1559(key, nonce=n, to=TOKEN, gas_limit=90000, data=data), "velocity.daily_limit")
        self.assertEqual(L.kind(self.c.sign_1559(other, nonce=2, to=PAYEE, value=1000)), "sign_transaction")
        self.denied(self.c.sign_1559(other, nonce=3, to=PAYEE, value=501), "velocity.daily_limit")
        # a denied request reserved nothing: the exact remainder still passes
        self.assertEqual(L.kind(self.c.sign_1559(other, nonce=4, to=PAYEE, value=500)), "sign_transaction")

    def test_double_sign(self):
        key = self.c.generate_key("double-owner")
        n = 500
        r1 = self.c.sign_1559(key, nonce=n, to=PAYEE, value=5)
        self.assertEqual(L.kind(r1), "sign_transaction")
        r2 = self.c.sign_1559(key, nonce=n, to=PAYEE, value=5)
        self.assertEqual(r1.sign_transaction.raw_tx, r2.sign_transaction.raw_tx, "identical payload, same signature")
        self.assertTrue(self.d.audit_lines()[-1].get("resign"))
        self.denied(self.c.sign_1559(key, nonce=n, to=PAYEE, value=6), "nonce.double_sign", "ERROR_CODE_DOUBLE_SIGN")
        self.denied(self.c.sign_legacy(key, nonce=n, to=PAYEE, value=5), "nonce.double_sign", "ERROR_CODE_DOUBLE_SIGN")
        self.denied(self.c.sign_1559(key, nonce=n, to=PAYEE, value=5, max_fee=3 * 10 ** 9), "nonce.double_sign",
                    "ERROR_CODE_DOUBLE_SIGN")
        # far below the highest nonce signed: refused as too old
        self.assertEqual(L.kind(self.c.sign_1559(key, nonce=10000, to=PAYEE)), "sign_transaction")
        self.denied(self.c.sign_1559(key, nonce=600, to=PAYEE), "nonce.too_old")

    def test_gas_counts(self):
        """gas_limit × max_fee_per_gas (legacy: gas_price) is charged to
        native.daily_limit even when no value moves."""
        key = self.c.generate_key("gas-owner")
        for n in (0, 1):  # 21000 × 2 = 42000 each
            r = self.c.sign_1559(key, chain_id=31338, nonce=n, to=PAYEE, max_fee=2, prio=1)
            self.assertEqual(L.kind(r), "sign_transaction", r)
        r = self.c.sign_1559(key, chain_id=31338, nonce=2, to=PAYEE, max_fee=2, prio=1)
        self.denied(r, "velocity.daily_limit")
        self.assertIn("native: 84000 used of daily_limit 100000", r.error.message)
        self.denied(self.c.sign_legacy(key, chain_id=31338, nonce=2, to=PAYEE, gas_price=1), "velocity.daily_limit")
        # what is left still fits: 16000 / 21000 rounds down to a zero fee
        self.assertEqual(L.kind(self.c.sign_legacy(key, chain_id=31338, nonce=3, to=PAYEE, gas_price=0)),
                         "sign_transaction")

    def test_nonce_too_far_ahead(self):
        key = self.c.generate_key("gap-owner")
        # a key that signed nothing counts from 0; default gap 1024 on 31338
        self.denied(self.c.sign_1559(key, chain_id=31338, nonce=1025, to=PAYEE), "nonce.too_far_ahead")
        self.denied(self.c.sign_1559(key, chain_id=31338, nonce=2 ** 64 - 2, to=PAYEE), "nonce.too_far_ahead")
        self.assertEqual(L.kind(self.c.sign_1559(key, chain_id=31338, nonce=1024, to=PAYEE)), "sign_transaction")
        self.assertEqual(L.kind(self.c.sign_1559(key, chain_id=31338, nonce=2048, to=PAYEE)), "sign_transaction")
        self.denied(self.c.sign_1559(key, chain_id=31338, nonce=3073, to=PAYEE), "nonce.too_far_ahead")
        # the policy's own gap on 31337 (20000); lower nonces keep working
        self.denied(self.c.sign_1559(key, nonce=20001, to=PAYEE), "nonce.too_far_ahead")
        self.assertEqual(L.kind(self.c.sign_1559(key, nonce=20000, to=PAYEE)), "sign_transaction")
        self.assertEqual(L.kind(self.c.sign_1559(key, nonce=19999, to=PAYEE)), "sign_transaction")

    def test_message_content(self):
        key = self.c.generate_key("message-owner")
        self.assertEqual(L.kind(self.c.sign_message(key, "Sign in to Coffer: café ✓".encode())), "sign_message")
        r = self.c.sign_message(key, bytes(range(200, 232)))  # 32 binary bytes: a hash to "approve"
        self.denied(r, "message.hash_like")
        self.denied(self.c.sign_message(key, b"\x00\x01binary"), "message.not_text")
        self.denied(self.c.sign_message(key, b"pay \xe2\x80\xae 0001"), "message.not_text")  # U+202E
        self.denied(self.c.sign_message(key, b"x" * 1025), "message.too_long")

    def test_zz_audit_intact(self):
        r = self.d.audit_verify()
        self.assertEqual(r.returncode, 0, r.stdout)
        for line in self.d.audit_lines():
            if line.get("decision") == "deny":
                self.assertTrue(line.get("rule"), line)
            if line.get("event") == "request":
                self.assertEqual(len(line["policy"]), 64)


class PolicyCheck(unittest.TestCase):
    def test_cli(self):
        with L.Daemon(policy=POLICY, name="pcheck") as d:
            r = d.cli("policy-check", d.policy_path)
            self.assertIn("ok, 2 chain(s); sha256 ", r.stdout)
            h = r.stdout.strip().split()[-1]
            canon = d.cli("policy-check", "--canonical", d.policy_path).stdout
            import hashlib
            self.assertEqual(hashlib.sha256(canon.encode()).hexdigest(), h)
            d.start()
            with L.Client(d.sock) as c:
                self.assertEqual(c.status().status.policy_hash.hex(), h)
            bad = dict(POLICY, extra=1)
            d.write_policy(bad)
            r = d.cli("policy-check", d.policy_path, check=False)
            self.assertEqual(r.returncode, 1)
            self.assertIn('unknown key "extra"', r.stderr)


if __name__ == "__main__":
    L.main()
