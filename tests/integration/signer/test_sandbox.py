"""The running daemon is confined as DESIGN.md §1 requires, as the kernel
reports it in /proc: non-root ids, no capabilities, no-new-privs, seccomp
filter mode, not dumpable, no core dumps, chrooted into its state dir,
holding no file but its audit log and ledger; and it keeps serving a full
workload under that filter."""
import os
import pwd
import stat
import threading
import unittest

import signerlib as L


def proc_status(pid):
    with open("/proc/%d/status" % pid) as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


class Confinement:
    """Checks shared by the private daemon and the stack's."""

    def check_confined(self, pid, state_dir=None, label=""):
        st = proc_status(pid)
        signer = pwd.getpwnam(L.SIGNER_USER)
        print("\n%s /proc/%d/status:" % (label, pid))
        for k in ("Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp"):
            print("  %s:\t%s" % (k, st.get(k)))
        uids = st["Uid"].split()
        self.assertEqual(uids, [str(signer.pw_uid)] * 4, "every uid is coffer-signer's")
        self.assertNotIn("0", uids)
        self.assertEqual(st["Gid"].split(), [str(signer.pw_gid)] * 4)
        self.assertEqual(st["CapEff"], "0000000000000000")
        self.assertEqual(st["CapPrm"], "0000000000000000")
        self.assertEqual(st["CapBnd"], "0000000000000000")
        self.assertEqual(st["CapAmb"], "0000000000000000")
        self.assertEqual(st["NoNewPrivs"], "1")
        self.assertEqual(st["Seccomp"], "2")
        # Every task (thread), not only the main one: capability sets,
        # no-new-privs and seccomp are per thread.
        tids = os.listdir("/proc/%d/task" % pid)
        self.assertGreaterEqual(len(tids), 3, "main, journal and loop threads")
        print("  tasks: %s" % " ".join(sorted(tids, key=int)))
        for tid in tids:
            with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
                t = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
            for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
                self.assertEqual(t[k], "0000000000000000", "task %s %s" % (tid, k))
            self.assertEqual(t["NoNewPrivs"], "1", "task %s" % tid)
            self.assertEqual(t["Seccomp"], "2", "task %s" % tid)
            self.assertEqual(t["Uid"].split(), [str(signer.pw_uid)] * 4, "task %s" % tid)
        # Not dumpable: the kernel then gives the process's /proc files to root.
        owner = os.stat("/proc/%d/status" % pid).st_uid
        print("  /proc/%d/status owner uid: %d (process uid %d): dumpable off" % (pid, owner, signer.pw_uid))
        self.assertEqual(owner, 0)
        with open("/proc/%d/limits" % pid) as f:
            core = [l for l in f if l.startswith("Max core file size")][0].split()
        print("  %s" % " ".join(core))
        self.assertEqual(core[4:6], ["0", "0"])
        root = os.readlink("/proc/%d/root" % pid)
        print("  root: %s" % root)
        if state_dir:
            self.assertEqual(os.path.realpath(root), os.path.realpath(state_dir))
        files = []
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            except OSError:
                continue
            if target.startswith("/") and not target.startswith("/dev/"):
                files.append(target)
        print("  open files: %s" % sorted(files))
        # Only the audit log and the ledger (plus whatever stdout/stderr are).
        for f in files:
            base = os.path.basename(f)
            if base in ("ledger",) or base.endswith("audit.log"):
                continue
            fd_is_stdio = any(os.readlink("/proc/%d/fd/%d" % (pid, n)) == f for n in (1, 2)
                              if os.path.exists("/proc/%d/fd/%d" % (pid, n)))
            self.assertTrue(fd_is_stdio, "unexpected open file %s" % f)


class OwnDaemon(Confinement, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = L.Daemon(name="sandbox", threads=3)
        cls.d.start()

    @classmethod
    def tearDownClass(cls):
        cls.d.cleanup()

    def test_1_confined(self):
        self.check_confined(self.d.pid, self.d.state, "private signer")
        mode = stat.S_IMODE(os.stat(self.d.sock).st_mode)
        self.assertEqual(mode, 0o660)
        # scripts/test also runs this file against a release build, whose
        # seccomp filter has no sanitizer entries
        want = os.environ.get("COFFER_EXPECT_SANITIZER_BUILD")
        start = [l for l in self.d.audit_lines() if l.get("event") == "start"][-1]
        print("  sanitizer_build: %s" % start["sanitizer_build"])
        if want:
            self.assertEqual(start["sanitizer_build"], want == "true")

    def test_2_survives_full_workload_under_seccomp(self):
        """Every operation, from several connections at once, with the filter
        in place (a disallowed syscall would kill the process)."""
        errors = []

        def work(t):
            try:
                with L.Client(self.d.sock) as c:
                    k = c.generate_key("owner-%d" % t)
                    for i in range(60):
                        r = c.sign_1559(k, nonce=i, value=1)
                        assert L.kind(r) == "sign_transaction", r
                    r = c.sign_legacy(k, nonce=1000)
                    assert L.kind(r) == "sign_transaction", r
                    assert L.kind(c.sign_message(k, b"hi")) == "sign_message"
                    assert L.kind(c.rewrap(k)) == "rewrap"
                    assert L.kind(c.status()) == "status"
                    r = c.sign_1559(k, chain_id=1)  # a denial path too
                    assert L.error_of(r)[1] == "chain.not_allowed"
            except Exception as e:  # noqa: BLE001
                errors.append(e)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        self.assertIsNone(self.d.proc.poll(), "the daemon died under its seccomp filter")
        self.assertEqual(proc_status(self.d.pid)["Seccomp"], "2")
        self.assertNotIn("seccomp: blocked", self.d.read_log())

    def test_3_audit_verifies(self):
        self.d.stop()
        r = self.d.audit_verify()
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.d.start()


class Refusals(unittest.TestCase):
    def test_not_root(self):
        with L.Daemon(name="notroot") as d:
            os.chmod(d.conf, 0o644)
            r = L.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", L.signer_bin(),
                       "serve", "--config", d.conf], check=False)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("must start as root", r.stderr)

    def test_exposed_ring_refused(self):
        with L.Daemon(name="exposed") as d:
            os.chmod(d.ring, 0o644)
            r = L.run([L.signer_bin(), "serve", "--config", d.conf], check=False)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("0400", r.stderr)

    def test_group_writable_state_refused(self):
        with L.Daemon(name="statedir") as d:
            os.chmod(d.state, 0o770)
            r = L.run([L.signer_bin(), "serve", "--config", d.conf], check=False)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("state.dir", r.stderr)

    def test_writable_socket_dir_refused(self):
        """Whoever can write the socket's directory could swap the socket
        (or a symlink) in while root sets its permissions."""
        with L.Daemon(name="sockdir") as d:
            os.chmod(d.dir, 0o777)
            r = L.run([L.signer_bin(), "serve", "--config", d.conf], check=False, timeout=30)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("socket directory %s must be owned by root" % d.dir, r.stderr)
            self.assertIn("not writable by group or others", r.stderr)
            os.chmod(d.dir, 0o755)
            os.chown(d.dir, 65534, 65534)
            r = L.run([L.signer_bin(), "serve", "--config", d.conf], check=False, timeout=30)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("uid 65534", r.stderr)
            self.assertFalse(os.path.exists(d.sock))
            os.chown(d.dir, 0, 0)
            # a symlink where the socket goes is never followed
            target = os.path.join(d.dir, "elsewhere")
            open(target, "w").close()
            os.symlink(target, d.sock)
            r = L.run([L.signer_bin(), "serve", "--config", d.conf], check=False, timeout=30)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("is not a socket", r.stderr)
            self.assertEqual(stat.S_IMODE(os.stat(target).st_mode), 0o644)

    def test_exposed_policy_refused(self):
        with L.Daemon(name="polmode") as d:
            os.chmod(d.policy_path, 0o664)
            r = L.run([L.signer_bin(), "serve", "--config", d.conf], check=False, timeout=30)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("not group/other-writable", r.stderr)
            os.chmod(d.policy_path, 0o644)
            link = d.policy_path + ".link"
            os.symlink(d.policy_path, link)
            with open(d.conf) as f:
                conf = f.read().replace("policy.file = %s\n" % d.policy_path, "policy.file = %s\n" % link)
            with open(d.conf, "w") as f:
                f.write(conf)
            r = L.run([L.signer_bin(), "serve", "--config", d.conf], check=False, timeout=30)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("symbolic link", r.stderr)

    def test_second_instance_on_live_socket_refused(self):
        with L.Daemon(name="twice") as d:
            d.start()
            r = L.run([L.signer_bin(), "serve", "--config", d.conf], check=False)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("another process is serving", r.stderr)
            self.assertIsNone(d.proc.poll())


class StackDaemon(Confinement, unittest.TestCase):
    def test_stack_signer_confined(self):
        pid, sock = L.stack_env("COFFER_SIGNER_PID", "COFFER_SIGNER_SOCKET")
        self.check_confined(int(pid), None, "stack signer")
        with L.Client(sock) as c:
            self.assertEqual(L.kind(c.status()), "status")


if __name__ == "__main__":
    L.main()
