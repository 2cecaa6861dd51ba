"""Process-level test helpers for coffer-signer (Python stdlib + the
Debian protobuf runtime; run with /usr/bin/python3).

The signer's messages are compiled from proto/coffer/signer/v1/signer.proto
with grpc_tools.protoc at import time, so the tests speak the protocol
through an implementation we did not write.

Daemon(...) starts a private signer (own state dir, socket, ring, policy)
under /tmp; Client(path) speaks the framing of API.md."""

import grp
import json
import os
import pwd
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.environ.get("COFFER_SOURCE_ROOT") or os.path.abspath(os.path.join(HERE, "..", "..", ".."))
CAST = os.environ.get("CAST") or os.path.join(ROOT, ".deps", "node", "node_modules", ".bin", "cast")
SIGNER_USER = "coffer-signer"

_pb_dir = tempfile.mkdtemp(prefix="coffer-signer-pb.")
subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I" + os.path.join(ROOT, "proto"),
                "--python_out=" + _pb_dir, os.path.join(ROOT, "proto", "coffer", "signer", "v1", "signer.proto")],
               check=True)
sys.path.insert(0, _pb_dir)
from coffer.signer.v1 import signer_pb2 as pb  # noqa: E402
import atexit  # noqa: E402
atexit.register(shutil.rmtree, _pb_dir, True)


def signer_bin():
    b = os.environ.get("COFFER_SIGNER_BIN")
    if not b:
        raise SystemExit("COFFER_SIGNER_BIN is not set (meson passes it)")
    return b


def u256(n):
    return int(n).to_bytes(32, "big")


def hx(b):
    return "0x" + bytes(b).hex()


def addr(text):
    t = text[2:] if text.startswith("0x") else text
    b = bytes.fromhex(t)
    assert len(b) == 20
    return b


def ci_mode():
    return os.environ.get("CI") == "true"


def run(args, check=True, **kw):
    r = subprocess.run(args, capture_output=True, text=True, **kw)
    if check and r.returncode != 0:
        raise AssertionError("%s failed (%d):\n%s\n%s" % (args, r.returncode, r.stdout, r.stderr))
    return r


# --------------------------------------------------------------------------- daemon

DEFAULT_POLICY = {
    "version": 1,
    "messages": {"allow": True, "max_bytes": 1024},
    "chains": [{
        "chain_id": 31337,
        "max_gas_limit": 3000000,
        "max_fee_per_gas": "1000000000000",
        "native": {"max_value": "1000000000000000000", "daily_limit": "100000000000000000000",
                   "any_recipient": True},
    }],
}


class Daemon:
    """A private coffer-signer: own directory under /tmp (mode 0755 so other
    uids can reach the socket when socket_mode allows), ring, policy, state."""

    def __init__(self, policy=None, threads=2, peer_uids=None, socket_mode="0660", name="t",
                 extra_conf=""):
        self.dir = tempfile.mkdtemp(prefix="coffer-signer-%s." % name, dir="/tmp")
        os.chmod(self.dir, 0o755)
        self.ring = os.path.join(self.dir, "kek.ring")
        self.state = os.path.join(self.dir, "state")
        self.policy_path = os.path.join(self.dir, "policy.json")
        self.sock = os.path.join(self.dir, "signer.sock")
        self.conf = os.path.join(self.dir, "signer.conf")
        self.log = os.path.join(self.dir, "serve.log")
        self.proc = None
        run([signer_bin(), "init", "--ring", self.ring])
        os.mkdir(self.state, 0o700)
        pw = pwd.getpwnam(SIGNER_USER)
        os.chown(self.state, pw.pw_uid, pw.pw_gid)
        self.write_policy(policy or DEFAULT_POLICY)
        uids = peer_uids if peer_uids is not None else [os.getuid()]
        with open(self.conf, "w") as f:
            f.write("socket.path = %s\nsocket.mode = %s\nstate.dir = %s\nkek.ring = %s\n"
                    "policy.file = %s\npeer.uids = %s\nserver.threads = %d\n%s"
                    % (self.sock, socket_mode, self.state, self.ring, self.policy_path,
                       ",".join(str(u) for u in uids), threads, extra_conf))

    def write_policy(self, policy):
        with open(self.policy_path, "w") as f:
            json.dump(policy, f, indent=1)

    @property
    def audit_path(self):
        return os.path.join(self.state, "audit.log")

    def start(self, wait=True, args=()):
        assert self.proc is None or self.proc.poll() is not None
        env = dict(os.environ)
        # The sandboxed daemon exits with _exit(); LSan could not run there anyway.
        env["ASAN_OPTIONS"] = "detect_leaks=0:abort_on_error=0"
        logf = open(self.log, "a")
        self.proc = subprocess.Popen([signer_bin(), "serve", "--config", self.conf] + list(args), stdout=logf,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        logf.close()
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("coffer-signer exited with %s:\n%s" % (self.proc.returncode, self.read_log()))
            try:
                with Client(self.sock, timeout=2) as c:
                    r = c.status()
                    if r.WhichOneof("result") == "status":
                        return
            except (OSError, AssertionError):
                pass
            time.sleep(0.05)
        raise AssertionError("coffer-signer did not answer Status:\n" + self.read_log())

    def start_refused(self, args=(), timeout=20):
        """Starts serve expecting it to refuse; returns its output."""
        self.start(wait=False, args=args)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("coffer-signer started although it should have refused:\n" + self.read_log())
        assert self.proc.returncode != 0, self.read_log()
        return self.read_log()

    def read_log(self):
        try:
            with open(self.log) as f:
                return f.read()
        except OSError:
            return ""

    @property
    def pid(self):
        return self.proc.pid

    def stop(self, timeout=15):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("coffer-signer ignored SIGTERM")
        return self.proc.returncode if self.proc else None

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def restart(self):
        self.stop()
        return self.start()

    def cli(self, *args, check=True):
        return run([signer_bin()] + list(args), check=check)

    def audit_verify(self, path=None):
        return self.cli("audit-verify", path or self.audit_path, check=False)

    def audit_lines(self):
        with open(self.audit_path) as f:
            return [json.loads(x) for x in f if x.endswith("\n")]

    def cleanup(self):
        try:
            if self.proc and self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()


# --------------------------------------------------------------------------- client

import itertools  # noqa: E402
# Request ids unique within a test process (audit lines are looked up by them).
_request_ids = itertools.count((os.getpid() % 1000) * 1000000 + 1)


class Key:
    def __init__(self, address, blob, owner, kek_version=0):
        self.address = bytes(address)
        self.blob = bytes(blob)
        self.owner = owner
        self.kek_version = kek_version

    @property
    def hex(self):
        return hx(self.address)


class Client:
    """One connection. call() sends a Request and reads one Response.
    free_gas: transactions default to zero fees (then only their value
    counts against native.daily_limit, which also charges gas)."""

    def __init__(self, path, timeout=20, free_gas=False):
        self.free_gas = free_gas
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.s.settimeout(timeout)
            self.s.connect(path)
        except BaseException:
            self.s.close()
            raise

    def close(self):
        self.s.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send_raw(self, data):
        self.s.sendall(data)

    def send_frame(self, payload):
        self.s.sendall(struct.pack(">I", len(payload)) + payload)

    def _recv_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.s.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return buf

    def recv_frame(self):
        """The next frame's payload, or None when the daemon closed."""
        h = self._recv_exact(4)
        if h is None:
            return None
        (n,) = struct.unpack(">I", h)
        assert 0 < n <= 65536, n
        p = self._recv_exact(n)
        assert p is not None, "closed inside a frame"
        return p

    def recv_response(self):
        p = self.recv_frame()
        if p is None:
            return None
        r = pb.Response()
        r.ParseFromString(p)
        return r

    def is_closed(self, timeout=5):
        """True when the daemon closed the connection (EOF) within timeout."""
        self.s.settimeout(timeout)
        try:
            while True:
                d = self.s.recv(65536)
                if not d:
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def request(self, **op):
        rid = next(_request_ids)
        return pb.Request(version=1, request_id=rid, trace_id="test-%d" % rid, **op)

    def call(self, req):
        self.send_frame(req.SerializeToString())
        r = self.recv_response()
        assert r is not None, "signer closed the connection"
        assert r.request_id == req.request_id, (r.request_id, req.request_id)
        return r

    # typed helpers -------------------------------------------------------
    def status(self):
        return self.call(self.request(status=pb.StatusRequest()))

    def generate_key(self, owner="client-1"):
        r = self.call(self.request(generate_key=pb.GenerateKeyRequest(key_type=pb.KEY_TYPE_SECP256K1, owner_id=owner)))
        assert r.WhichOneof("result") == "generate_key", r
        g = r.generate_key
        return Key(g.address, g.sealed_key, owner, g.kek_version)

    def sign_1559(self, key, chain_id=31337, nonce=0, to=b"\x11" * 20, value=0, data=b"",
                  gas_limit=21000, max_fee=None, prio=None, access_list=(),
                  owner=None, blob=None, address=None):
        if max_fee is None:
            max_fee = 0 if self.free_gas else 2_000_000_000
        if prio is None:
            prio = 0 if self.free_gas else 1_000_000_000
        tx = pb.Eip1559Tx(chain_id=chain_id, nonce=nonce, max_priority_fee_per_gas=u256(prio),
                          max_fee_per_gas=u256(max_fee), gas_limit=gas_limit, to=to, value=u256(value),
                          data=data)
        for a, keys in access_list:
            tx.access_list.add(address=a, storage_keys=list(keys))
        st = pb.SignTransactionRequest(sealed_key=blob if blob is not None else key.blob,
                                       address=address if address is not None else key.address,
                                       owner_id=owner if owner is not None else key.owner, eip1559=tx)
        return self.call(self.request(sign_transaction=st))

    def sign_legacy(self, key, chain_id=31337, nonce=0, to=b"\x11" * 20, value=0, data=b"",
                    gas_limit=21000, gas_price=None, owner=None, blob=None):
        if gas_price is None:
            gas_price = 0 if self.free_gas else 2_000_000_000
        tx = pb.LegacyTx(chain_id=chain_id, nonce=nonce, gas_price=u256(gas_price), gas_limit=gas_limit,
                         to=to, value=u256(value), data=data)
        st = pb.SignTransactionRequest(sealed_key=blob if blob is not None else key.blob, address=key.address,
                                       owner_id=owner if owner is not None else key.owner, legacy=tx)
        return self.call(self.request(sign_transaction=st))

    def sign_message(self, key, message, owner=None):
        return self.call(self.request(sign_message=pb.SignMessageRequest(
            sealed_key=key.blob, address=key.address, owner_id=owner or key.owner, message=message)))

    def rewrap(self, key, blob=None, owner=None):
        return self.call(self.request(rewrap=pb.RewrapRequest(
            sealed_key=blob if blob is not None else key.blob, address=key.address, owner_id=owner or key.owner)))


def kind(resp):
    return resp.WhichOneof("result")


def error_of(resp):
    """(code name, rule) of an Error response, or None."""
    if kind(resp) != "error":
        return None
    return pb.ErrorCode.Name(resp.error.code), resp.error.rule


# --------------------------------------------------------------------------- cast / anvil

def cast(*args, check=True):
    return run([CAST] + list(args), check=check)


def cast_decode_tx(raw):
    out = cast("decode-tx", hx(raw)).stdout.strip()
    v = json.loads(out)
    if isinstance(v, str):
        v = json.loads(v)
    return v


def rpc(url, method, params):
    import urllib.request
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    req = urllib.request.Request(url, data=body, headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as f:
        r = json.loads(f.read())
    if "error" in r:
        raise AssertionError("%s: %s" % (method, r["error"]))
    return r["result"]


def stack_env(*keys):
    """Values from the stack environment (scripts/stack's stack.env); the
    calling test is skipped when they are absent, or fails under CI=true."""
    import unittest
    missing = [k for k in keys if not os.environ.get(k)]
    if missing:
        msg = "no stack (%s unset): run under scripts/test or after scripts/stack up" % ", ".join(missing)
        if ci_mode():
            raise AssertionError(msg)
        raise unittest.SkipTest(msg)
    return [os.environ[k] for k in keys]


def main(module_name="__main__"):
    import unittest
    prog = unittest.main(module=module_name, exit=False, verbosity=2)
    sys.exit(0 if prog.result.wasSuccessful() else 1)
