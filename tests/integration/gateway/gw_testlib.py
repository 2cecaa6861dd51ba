"""Helpers for coffer-gateway's integration tests: a curl-driven HTTP
client, throwaway gateways of the tests' own, and a fake coffer-api (a
Python grpcio server answering any method with the status a test asks for:
a test double for coffer-api's error paths, not product code).

Environment (meson test / scripts/test): COFFER_BUILD_ROOT, and from
stack.env COFFER_HTTP, COFFER_GRPC, COFFER_ADMIN_TOKEN."""
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent import futures

import grpc


def require_stack():
    """Exits 77 (meson: skipped) without a stack, 1 under CI=true."""
    if os.environ.get('COFFER_HTTP') and os.environ.get('COFFER_GRPC'):
        return
    print('no stack with a gateway: run through scripts/test or source a stack.env', file=sys.stderr)
    sys.exit(1 if os.environ.get('CI') == 'true' else 77)


def gateway_binary():
    return os.path.join(os.environ['COFFER_BUILD_ROOT'], 'gateway', 'coffer-gateway')


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # lower-case name -> value (last one wins)
        self.body = body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return 'HTTP %d %r %r' % (self.status, self.headers, self.body[:300])


def curl(method, url, body=None, headers=None, timeout=30, http2=False, extra=()):
    """One request through curl. body: bytes, str or a JSON-able object.
    http2: cleartext HTTP/2 with prior knowledge (the gateway's h2c front);
    extra: more curl arguments (['-k', '--http2'] for its TLS front)."""
    argv = ['curl', '-sS', '-i', '--max-time', str(timeout), '-X', method, url, '-H', 'Expect:'] + list(extra)
    if http2:
        argv.append('--http2-prior-knowledge')
    for k, v in (headers or {}).items():
        argv += ['-H', '%s: %s' % (k, v)]
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else (body if isinstance(body, str) else json.dumps(body)).encode()
        argv += ['--data-binary', '@-']
        if not any(k.lower() == 'content-type' for k in (headers or {})):
            argv += ['-H', 'Content-Type: application/json']
    r = subprocess.run(argv, input=data, capture_output=True, timeout=timeout + 5)
    if r.returncode != 0:
        raise RuntimeError('curl failed: %s' % r.stderr.decode(errors='replace'))
    raw = r.stdout
    # Skip interim responses (100 Continue).
    while raw.startswith(b'HTTP/1.1 100'):
        raw = raw.split(b'\r\n\r\n', 1)[1]
    head, _, rest = raw.partition(b'\r\n\r\n')
    lines = head.decode('latin-1').split('\r\n')
    status = int(lines[0].split()[1])
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(':')
        hdrs[k.strip().lower()] = v.strip()
    return Response(status, hdrs, rest.decode('utf-8', errors='replace'))


def wait_until(pred, timeout, step=0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


def self_signed_cert(directory):
    """A throwaway P-256 certificate for CN=localhost and its key, as PEM
    files in directory (for tls.cert and tls.key); returns their paths."""
    cert, key = os.path.join(directory, 'cert.pem'), os.path.join(directory, 'key.pem')
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256',
                    '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost'],
                   check=True, capture_output=True)
    return cert, key


def tls_client_hello(alpn=('h2',)):
    """The first flight of a real TLS client (its ClientHello), as bytes."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(list(alpn))
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname='localhost')
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def read_until_closed(sock, timeout):
    """What the peer sends until it closes (or timeout); (bytes, closed)."""
    got = b''
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        sock.settimeout(max(end - time.monotonic(), 0.01))
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return got, False
        except ConnectionResetError:
            return got, True
        if not chunk:
            return got, True
        got += chunk
    return got, False


class Gateway:
    """A coffer-gateway of the test's own on a kernel-chosen port. .url is
    its HTTP/1.1 front as http:// whatever its TLS; .h2url its HTTP/2
    front (None when http2.listen is unset), https:// when tls.cert is set
    (both ports then serve TLS)."""

    def __init__(self, upstreams, settings=None):
        self.dir = tempfile.mkdtemp(prefix='coffer-gw-test-')
        conf = {'http.listen': '127.0.0.1:0', 'upstream.targets': ','.join(upstreams),
                'upstream.health_interval': '200ms', 'upstream.health_timeout': '500ms'}
        conf.update(settings or {})
        self.conf_path = os.path.join(self.dir, 'gw.conf')
        with open(self.conf_path, 'w') as f:
            for k, v in conf.items():
                f.write('%s = %s\n' % (k, v))
        self.log_path = os.path.join(self.dir, 'gw.log')
        self.log = open(self.log_path, 'w')
        env = {k: v for k, v in os.environ.items() if not k.startswith('COFFER_')}
        self.proc = subprocess.Popen([gateway_binary(), 'serve', '--config', self.conf_path],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=env)
        port = wait_until(self._port, 30)
        if not port:
            self.close()
            raise RuntimeError('coffer-gateway did not start:\n' + self.log_text())
        self.url = 'http://127.0.0.1:%d' % port
        m = re.search(r'event=serve\.listening port=\d+ http2_port=(\d+)', self.log_text())
        scheme = 'https' if 'tls.cert' in conf else 'http'
        self.h2url = '%s://127.0.0.1:%s' % (scheme, m.group(1)) if m else None

    def _port(self):
        if self.proc.poll() is not None:
            raise RuntimeError('coffer-gateway exited %s:\n%s' % (self.proc.returncode, self.log_text()))
        m = re.search(r'event=serve\.listening port=(\d+)', self.log_text())
        return int(m.group(1)) if m else None

    def log_text(self):
        with open(self.log_path, errors='replace') as f:
            return f.read()

    def close(self):
        """Stops the gateway (SIGTERM); returns its exit status and keeps
        its log in .final_log (sanitizer reports included)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        self.final_log = self.log_text()
        shutil.rmtree(self.dir, ignore_errors=True)
        return self.proc.returncode


# -- a fake coffer-api ---------------------------------------------------------------------

def _varint(n):
    out = b''
    while True:
        b = n & 0x7f
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def _field(num, wire, payload):
    key = _varint((num << 3) | wire)
    if wire == 0:
        return key + _varint(payload)
    return key + _varint(len(payload)) + payload


def status_details(code, message, retry_seconds=None, extra_any=None):
    """A serialized google.rpc.Status (for grpc-status-details-bin), with a
    google.rpc.RetryInfo detail when retry_seconds is given."""
    out = _field(1, 0, code) + _field(2, 2, message.encode())
    if retry_seconds is not None:
        duration = _field(1, 0, retry_seconds)
        retry_info = _field(1, 2, duration)
        any_msg = _field(1, 2, b'type.googleapis.com/google.rpc.RetryInfo') + _field(2, 2, retry_info)
        out += _field(3, 2, any_msg)
    if extra_any is not None:
        out += _field(3, 2, extra_any)
    return out


class FakeUpstream:
    """Answers every method. Health/Check: SERVING. Other methods, driven by
    request metadata (a test sends it as Grpc-Metadata-* headers):
      x-test-code: N      end with status N (0: OK with an empty message)
      x-test-retry: S     add grpc-status-details-bin with RetryInfo S seconds
      x-test-echo: 1      end INVALID_ARGUMENT with the received metadata, the
                          deadline left and the request bytes (hex) as a JSON message
      x-test-sleep-ms: N  first sleep N ms (deadline and disconnect tests)
      x-test-pad: N       end OK with a message whose field 2 is N bytes of 'p'
                          (a big answer; a string for IngestProviderWebhookResponse)
    Every call is counted in .calls[path], and its request bytes kept in
    .requests[path] (the last one); .slept counts the calls that finished
    their sleep."""

    def __init__(self, default_code=None):
        self.default_code = default_code
        self.calls = {}
        self.requests = {}
        self.slept = 0
        self.lock = threading.Lock()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=64))
        self.server.add_generic_rpc_handlers((self,))
        self.port = self.server.add_insecure_port('127.0.0.1:0')
        self.target = '127.0.0.1:%d' % self.port
        self.server.start()

    def service(self, details):
        path = details.method
        return grpc.unary_unary_rpc_method_handler(lambda req, ctx: self._handle(path, req, ctx))

    def _handle(self, path, req, ctx):
        if path == '/grpc.health.v1.Health/Check':
            return b'\x08\x01'
        with self.lock:
            self.calls[path] = self.calls.get(path, 0) + 1
            self.requests[path] = req
        md = dict(ctx.invocation_metadata())
        if md.get('x-test-sleep-ms'):
            time.sleep(int(md['x-test-sleep-ms']) / 1000.0)
            with self.lock:
                self.slept += 1
        if md.get('x-test-echo'):
            info = {'metadata': {k: v for k, v in md.items() if not k.endswith('-bin')},
                    'time_remaining': ctx.time_remaining(), 'request_hex': req.hex(), 'path': path}
            ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, json.dumps(info))
        if md.get('x-test-pad'):
            return _field(2, 2, b'p' * int(md['x-test-pad']))
        code = int(md.get('x-test-code', self.default_code if self.default_code is not None else 0))
        if code == 0:
            ctx.send_initial_metadata((('x-test-seen', 'yes'),))
            return b''
        trailers = []
        if md.get('x-test-retry'):
            trailers.append(('grpc-status-details-bin',
                             status_details(code, 'test status %d' % code, int(md['x-test-retry']))))
        if trailers:
            ctx.set_trailing_metadata(tuple(trailers))
        status = [s for s in grpc.StatusCode if s.value[0] == code][0]
        ctx.abort(status, 'test status %d' % code)

    def close(self):
        self.server.stop(0)


# -- the stack's gateway: retries, routes, shapes, the test chain ----------------------------

def curl_patient(method, url, body=None, headers=None, timeout=120, patience=120):
    """curl() that waits out rate limits the way a client should: a 429 is
    retried after its Retry-After (the suites share the stack's buckets, the
    operator's `execute` class holds 10 calls a minute). Send an
    Idempotency-Key with writes so that a retry is safe."""
    end = time.monotonic() + patience
    while True:
        r = curl(method, url, body=body, headers=headers, timeout=timeout)
        if r.status != 429 or time.monotonic() > end:
            return r
        try:
            wait = int(r.headers.get('retry-after', '1'))
        except ValueError:
            wait = 1
        time.sleep(min(max(wait, 1), 10))


class OpenApiRoutes:
    """The routes /openapi.json lists, as (METHOD, template) pairs, and the
    template a concrete request path is served by (the most literal one,
    as the gateway chooses)."""

    def __init__(self, doc):
        self.routes = set()
        self._rx = []
        for tmpl, ops in doc['paths'].items():
            parts = re.split(r'(\{[^}]+\})', tmpl)
            rx = ''.join('[^/]+' if p.startswith('{') else re.escape(p) for p in parts)
            literal = sum(len(p) for p in parts if not p.startswith('{'))
            for m in ops:
                if m.lower() in ('get', 'post', 'put', 'patch', 'delete'):
                    self.routes.add((m.upper(), tmpl))
                    self._rx.append((m.upper(), re.compile('^' + rx + '$'), literal, tmpl))

    def match(self, method, path):
        path = path.split('?', 1)[0]
        best = None
        for m, rx, literal, tmpl in self._rx:
            if m == method and rx.match(path) and (best is None or literal > best[0]):
                best = (literal, tmpl)
        return best[1] if best else None


_DECIMAL = re.compile(r'^(0|[1-9][0-9]*)$')
_SIGNED = re.compile(r'^(0|-?[1-9][0-9]*)$')
_TS = re.compile(r'^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{3}|\.[0-9]{6}|\.[0-9]{9})?Z$')
_ADDR = re.compile(r'^0x[0-9a-fA-F]{40}$')
_HASH = re.compile(r'^0x[0-9a-f]{64}$')


def _num(v):
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) or v in ('NaN', 'Infinity', '-Infinity')


# Kinds of JSON values in proto3 JSON as the gateway writes it (docs/gateway.md).
KINDS = {
    'string': lambda v: isinstance(v, str),
    'int64': lambda v: isinstance(v, str) and _SIGNED.match(v) is not None,  # 64-bit integers: JSON strings
    'int': lambda v: isinstance(v, int) and not isinstance(v, bool),
    'bool': lambda v: isinstance(v, bool),
    'list': lambda v: isinstance(v, list),
    'object': lambda v: isinstance(v, dict),
    'enum': lambda v: isinstance(v, str) and re.match(r'^[A-Z][A-Z0-9_]*$', v) is not None,
    'double': _num,
    'decimal': lambda v: isinstance(v, str) and _DECIMAL.match(v) is not None,        # amounts, shares, WAD
    'decimal?': lambda v: v == '' or (isinstance(v, str) and _DECIMAL.match(v) is not None),  # "" until set
    'signed': lambda v: isinstance(v, str) and _SIGNED.match(v) is not None,         # yield after a loss
    'timestamp': lambda v: isinstance(v, str) and _TS.match(v) is not None,
    'timestamp?': lambda v: v is None or (isinstance(v, str) and _TS.match(v) is not None),  # unset: null
    'address': lambda v: isinstance(v, str) and _ADDR.match(v) is not None,
    'address?': lambda v: v == '' or (isinstance(v, str) and _ADDR.match(v) is not None),
    'hash?': lambda v: v == '' or (isinstance(v, str) and _HASH.match(v) is not None),
    'strmap': lambda v: isinstance(v, dict) and all(isinstance(x, str) for x in v.values()),
    'strings': lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
}


def shape_errors(obj, shape, where='$'):
    """What is wrong with obj against shape: a kind name (KINDS), a dict
    (an object with exactly these keys: every field is written,
    lowerCamelCase), or [shape] (a list whose items all have that shape)."""
    if isinstance(shape, dict):
        if not isinstance(obj, dict):
            return ['%s: %r is not an object' % (where, obj)]
        errs = []
        if set(obj) != set(shape):
            errs.append('%s: keys %s, want %s (missing %s, extra %s)' % (
                where, sorted(obj), sorted(shape), sorted(set(shape) - set(obj)), sorted(set(obj) - set(shape))))
        for k, sub in shape.items():
            if k in obj:
                errs += shape_errors(obj[k], sub, '%s.%s' % (where, k))
        return errs
    if isinstance(shape, list):
        if not isinstance(obj, list):
            return ['%s: %r is not a list' % (where, obj)]
        errs = []
        for i, item in enumerate(obj):
            errs += shape_errors(item, shape[0], '%s[%d]' % (where, i))
        return errs
    return [] if KINDS[shape](obj) else ['%s: %r is not %s' % (where, obj, shape)]


# The gRPC codes each HTTP error status may carry (docs/gateway.md "Errors").
HTTP_CODES = {400: {3, 9, 11}, 401: {16}, 403: {7}, 404: {5}, 405: {12}, 409: {6, 10}, 413: {8}, 429: {8},
              499: {1}, 500: {2, 13, 15}, 501: {12}, 503: {14}, 504: {4}}


class Anvil:
    """JSON-RPC to the stack's anvil (COFFER_EVM_RPC, loopback). Its first
    development account is unlocked: it funds wallets and, as the test
    USDC's deployer, mints it (docs/test-chain.md)."""
    FUNDER = '0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266'

    def __init__(self, url):
        self.url = url
        self.n = 0

    def rpc(self, method, params=()):
        self.n += 1
        body = json.dumps({'jsonrpc': '2.0', 'id': self.n, 'method': method, 'params': list(params)}).encode()
        req = urllib.request.Request(self.url, body, {'content-type': 'application/json'})
        with urllib.request.urlopen(req, timeout=30) as r:
            ans = json.loads(r.read())
        if 'error' in ans:
            raise AssertionError('anvil %s: %s' % (method, ans['error']))
        return ans['result']

    def send(self, to, data='0x', value=0):
        h = self.rpc('eth_sendTransaction', [{'from': self.FUNDER, 'to': to, 'data': data, 'value': hex(value)}])
        rc = wait_until(lambda: self.rpc('eth_getTransactionReceipt', [h]), 20, 0.05)
        assert rc and rc['status'] == '0x1', rc
        return rc

    def mint(self, token, to, amount):
        return self.send(token, '0x40c10f19' + '0' * 24 + to[2:].lower() + '%064x' % amount)

    def balance_of(self, token, who):
        return int(self.rpc('eth_call', [{'to': token, 'data': '0x70a08231' + '0' * 24 + who[2:].lower()},
                                         'latest']), 16)

    def mine(self, n=1):
        for _ in range(n):
            self.rpc('evm_mine')
