"""Sealed keys: tampered blobs, blobs presented with another owner id or
address, and KEK rotation: rotate-kek, Rewrap of every key, retire-kek of
the old version; then old-version blobs are refused (UNKNOWN_KEK) and the
rewrapped ones sign for the same addresses."""
import os
import re
import unittest

import signerlib as L

PAYEE = bytes.fromhex("70997970c51812dc3a010c7d01b50e0d17dc79c8")


class Blobs(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = L.Daemon(name="keys")
        cls.d.start()
        cls.c = L.Client(cls.d.sock)
        cls.key = cls.c.generate_key("owner-a")
        cls.other = cls.c.generate_key("owner-a")

    @classmethod
    def tearDownClass(cls):
        cls.c.close()
        cls.d.cleanup()

    def bad(self, r, rule, code="ERROR_CODE_BAD_KEY"):
        self.assertEqual(L.error_of(r), (code, rule), r)

    def test_generated(self):
        self.assertEqual(len(self.key.address), 20)
        self.assertEqual(len(self.key.blob), 77)
        self.assertEqual(self.key.blob[0], 1)
        self.assertEqual(int.from_bytes(self.key.blob[1:5], "big"), 1)
        self.assertEqual(self.key.kek_version, 1)
        self.assertNotEqual(self.key.address, self.other.address)

    def test_tampered_blob(self):
        for i in (0, 2, 4, 10, 30, 50, 76):
            blob = bytearray(self.key.blob)
            blob[i] ^= 0x01
            r = self.c.sign_1559(self.key, blob=bytes(blob), to=PAYEE, nonce=i)
            code, rule = L.error_of(r)
            if i == 0:
                self.assertEqual(rule, "key.format")
            elif i <= 4:
                self.assertIn(code, ("ERROR_CODE_UNKNOWN_KEK", "ERROR_CODE_BAD_KEY"))
            else:
                self.bad(r, "key.does_not_open")
        blob = bytearray(self.key.blob)
        blob[40] ^= 0x80
        self.bad(self.c.sign_message(L.Key(self.key.address, bytes(blob), "owner-a"), b"x"), "key.does_not_open")
        self.bad(self.c.rewrap(self.key, blob=bytes(blob)), "key.does_not_open")

    def test_other_owner(self):
        self.bad(self.c.sign_1559(self.key, owner="owner-b", to=PAYEE, nonce=100), "key.does_not_open")
        self.bad(self.c.sign_message(self.key, b"m", owner="owner-b"), "key.does_not_open")
        self.bad(self.c.rewrap(self.key, owner="owner-b"), "key.does_not_open")

    def test_other_address(self):
        self.bad(self.c.sign_1559(self.key, address=self.other.address, to=PAYEE, nonce=101), "key.does_not_open")
        self.bad(self.c.sign_1559(self.key, blob=self.other.blob, to=PAYEE, nonce=102), "key.does_not_open")

    def test_refusals_audited_and_nothing_signed(self):
        self.c.sign_1559(self.key, owner="owner-b", to=PAYEE, nonce=103)
        line = self.d.audit_lines()[-1]
        self.assertEqual(line["decision"], "error")
        self.assertEqual(line["code"], "BAD_KEY")
        self.assertNotIn("tx_hash", line)
        # The refused request reserved nothing: the same nonce still signs.
        self.assertEqual(L.kind(self.c.sign_1559(self.key, to=PAYEE, nonce=103)), "sign_transaction")


class Rotation(unittest.TestCase):
    def test_rotate_rewrap_retire(self):
        with L.Daemon(name="rotate") as d:
            d.start()
            c = L.Client(d.sock)
            keys = [c.generate_key("owner-%d" % (i % 2)) for i in range(4)]
            st = c.status().status
            self.assertEqual(list(st.kek_versions), [1])
            self.assertEqual(st.current_kek_version, 1)
            c.close()

            out = d.cli("rotate-kek", "--ring", d.ring).stdout
            self.assertIn("kek version 2 added", out)
            self.assertEqual(oct(os.stat(d.ring).st_mode & 0o777), "0o400")
            d.restart()
            c = L.Client(d.sock)
            st = c.status().status
            self.assertEqual(list(st.kek_versions), [1, 2])
            self.assertEqual(st.current_kek_version, 2)
            # old blobs still open; new keys are sealed under 2
            self.assertEqual(L.kind(c.sign_1559(keys[0], to=PAYEE, nonce=1)), "sign_transaction")
            fresh = c.generate_key("owner-0")
            self.assertEqual(fresh.kek_version, 2)
            # Rewrap every key
            rewrapped = []
            for k in keys:
                r = c.rewrap(k)
                self.assertEqual(L.kind(r), "rewrap", r)
                self.assertEqual(r.rewrap.kek_version, 2)
                self.assertEqual(int.from_bytes(r.rewrap.sealed_key[1:5], "big"), 2)
                self.assertNotEqual(r.rewrap.sealed_key, k.blob)
                rewrapped.append(L.Key(k.address, r.rewrap.sealed_key, k.owner, 2))
            # the audit log shows every rewrap with its source version
            lines = [l for l in d.audit_lines() if l.get("op") == "rewrap"]
            self.assertEqual(len(lines), 4)
            self.assertTrue(all(l["from_kek_version"] == 1 and l["kek_version"] == 2 for l in lines))
            c.close()

            out = d.cli("retire-kek", "--ring", d.ring, "2", check=False)
            self.assertNotEqual(out.returncode, 0)  # the current version cannot go
            out = d.cli("retire-kek", "--ring", d.ring, "1").stdout
            self.assertIn("retired", out)
            d.restart()
            c = L.Client(d.sock)
            st = c.status().status
            self.assertEqual(list(st.kek_versions), [2])
            for i, (old, new) in enumerate(zip(keys, rewrapped)):
                r = c.sign_1559(old, to=PAYEE, nonce=10 + i)
                self.assertEqual(L.error_of(r), ("ERROR_CODE_UNKNOWN_KEK", "key.unknown_kek"), r)
                self.assertEqual(L.error_of(c.rewrap(old)), ("ERROR_CODE_UNKNOWN_KEK", "key.unknown_kek"))
                r = c.sign_1559(new, to=PAYEE, nonce=10 + i)
                self.assertEqual(L.kind(r), "sign_transaction", r)
                self.assertEqual(L.cast_decode_tx(r.sign_transaction.raw_tx)["signer"].lower(), old.hex,
                                 "the rewrapped blob holds the same key")
            self.assertEqual(L.kind(c.sign_message(fresh, b"still fine")), "sign_message")
            c.close()
            d.stop()
            self.assertEqual(d.audit_verify().returncode, 0)


class RingCli(unittest.TestCase):
    def test_init_refuses_overwrite_and_passphrase_is_reproducible(self):
        with L.Daemon(name="ringcli") as d:
            r = d.cli("init", "--ring", d.ring, check=False)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("already exists", r.stderr)
            env = dict(os.environ, DEV_PASS="correct horse battery staple")
            a, b = os.path.join(d.dir, "a.ring"), os.path.join(d.dir, "b.ring")
            for p in (a, b):
                L.run([L.signer_bin(), "init", "--ring", p, "--passphrase-env", "DEV_PASS"], env=env)
            ka = re.findall(r"^key .*$", open(a).read(), re.M)
            kb = re.findall(r"^key .*$", open(b).read(), re.M)
            self.assertEqual(ka, kb)
            self.assertIn("argon2id", ka[0])
            kr = re.findall(r"^key .*$", open(d.ring).read(), re.M)
            self.assertIn("random", kr[0])
            # an edited ring is refused
            text = open(a).read().replace("current 1", "current 1 ")
            os.chmod(a, 0o600)
            open(a, "w").write(text)
            os.chmod(a, 0o400)
            r = d.cli("rotate-kek", "--ring", a, check=False)
            self.assertNotEqual(r.returncode, 0)
            for sub in ("init", "rotate-kek", "retire-kek", "serve", "status", "audit-verify", "policy-check"):
                h = d.cli(sub, "--help")
                self.assertIn("usage: coffer-signer " + sub, h.stdout)


if __name__ == "__main__":
    L.main()
