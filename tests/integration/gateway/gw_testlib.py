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
import subprocess
import sys
import tempfile
import threading
import time
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


def curl(method, url, body=None, headers=None, timeout=30):
    """One request through curl. body: bytes, str or a JSON-able object."""
    argv = ['curl', '-sS', '-i', '--max-time', str(timeout), '-X', method, url, '-H', 'Expect:']
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


class Gateway:
    """A coffer-gateway of the test's own on a kernel-chosen port."""

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

    def _port(self):
        if self.proc.poll() is not None:
            raise RuntimeError('coffer-gateway exited %s:\n%s' % (self.proc.returncode, self.log_text()))
        m = re.search(r'event=serve\.listening port=(\d+)', self.log_text())
        return int(m.group(1)) if m else None

    def log_text(self):
        with open(self.log_path) as f:
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
    Every call is counted in .calls[path]; .slept counts the calls that
    finished their sleep."""

    def __init__(self, default_code=None):
        self.default_code = default_code
        self.calls = {}
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
        md = dict(ctx.invocation_metadata())
        if md.get('x-test-sleep-ms'):
            time.sleep(int(md['x-test-sleep-ms']) / 1000.0)
            with self.lock:
                self.slept += 1
        if md.get('x-test-echo'):
            info = {'metadata': {k: v for k, v in md.items() if not k.endswith('-bin')},
                    'time_remaining': ctx.time_remaining(), 'request_hex': req.hex(), 'path': path}
            ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, json.dumps(info))
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
