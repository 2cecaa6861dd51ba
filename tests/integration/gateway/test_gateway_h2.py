"""coffer-gateway's HTTP/2 front (h2c, prior knowledge): the same answers
as HTTP/1.1 through the same pipeline, many requests multiplexed on few
connections, and a client that resets a stream or leaves while its call is
in flight costs nothing but that request. With tls.cert and tls.key the
same port serves TLS with ALPN h2 only (TlsH2Test).

Driven by curl --http2-prior-knowledge and h2load against the stack's
gateway (COFFER_HTTP2), by gateways of the test's own in front of a fake
coffer-api (gw_testlib.FakeUpstream), and by a few raw HTTP/2 frames
written here (for what curl cannot do: reset a stream mid-call, send
garbage)."""
import json
import os
import re
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import gw_testlib as t
from h2wire import (ACK, DATA, END_HEADERS, END_STREAM, GOAWAY, HEADERS, PREFACE, RST_STREAM, SETTINGS,
                    WINDOW_UPDATE, block, frame, settings)

HTTP = os.environ.get('COFFER_HTTP', '')
HTTP2 = os.environ.get('COFFER_HTTP2', '')


def request_headers(path, extra=()):
    return block([(':method', 'GET'), (':scheme', 'http'), (':path', path), (':authority', 'test')] + list(extra))


class RawH2:
    """A bare HTTP/2 connection: frames in, frame headers out."""

    def __init__(self, url, rcvbuf=None):
        host, port = re.match(r'(https?)://([^:]+):(\d+)', url).groups()[1:]
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:  # before connect: a small TCP window
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(10)
        sock.connect((host, int(port)))
        if url.startswith('https://'):  # TLS, ALPN h2
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
            ctx.set_alpn_protocols(['h2'])
            sock = ctx.wrap_socket(sock)
        self.sock = sock
        self.buf = b''

    def send(self, data):
        self.sock.sendall(data)

    def start(self):
        self.send(PREFACE + frame(SETTINGS, 0, 0))

    def frames(self, until, timeout=10):
        """Reads frames until until(ftype, flags, stream) is true; returns them."""
        got = []
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            while len(self.buf) >= 9:
                n = int.from_bytes(self.buf[:3], 'big')
                if len(self.buf) < 9 + n:
                    break
                ftype, flags = self.buf[3], self.buf[4]
                stream = int.from_bytes(self.buf[5:9], 'big') & 0x7fffffff
                payload = self.buf[9:9 + n]
                self.buf = self.buf[9 + n:]
                got.append((ftype, flags, stream, payload))
                if ftype == SETTINGS and not flags & ACK:
                    self.send(frame(SETTINGS, ACK, 0))
                if until(ftype, flags, stream):
                    return got
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            self.buf += chunk
        return got

    def close(self):
        self.sock.close()


class StackH2Test(unittest.TestCase):
    """Against the stack's gateway and coffer-api."""

    @classmethod
    def setUpClass(cls):
        t.require_stack()
        if not HTTP2:
            print('the stack has no HTTP/2 front (COFFER_HTTP2)', file=sys.stderr)
            sys.exit(1)

    def test_same_answer_as_http1(self):
        r2 = t.curl('GET', HTTP2 + '/v1/system/info', http2=True, headers={'X-Request-Id': 'h2-test-1'})
        r1 = t.curl('GET', HTTP + '/v1/system/info')
        self.assertEqual(r2.status, 200, r2)
        self.assertEqual(r2.headers.get('content-type'), 'application/json')
        self.assertEqual(r2.headers.get('x-request-id'), 'h2-test-1')
        self.assertEqual(int(r2.headers.get('content-length')), len(r2.body.encode()))
        self.assertEqual(sorted(r2.json().keys()), sorted(r1.json().keys()))
        self.assertEqual(r2.json()['version'], r1.json()['version'])
        generated = t.curl('GET', HTTP2 + '/v1/system/info', http2=True).headers.get('x-request-id', '')
        self.assertRegex(generated, r'^gw-[0-9a-f]{8}-[0-9a-f]{10,}$')

    def test_errors_map_as_on_http1(self):
        r = t.curl('GET', HTTP2 + '/v1/no/such/route', http2=True)
        self.assertEqual(r.status, 404, r)
        self.assertEqual(r.json()['code'], 5)
        self.assertIn('no route for GET /v1/no/such/route', r.json()['message'])
        r = t.curl('POST', HTTP2 + '/v1/system/diagnose-database', body={}, http2=True)
        self.assertEqual(r.status, 401, r)
        self.assertEqual(r.headers.get('www-authenticate'), 'Bearer realm="coffer"')
        self.assertEqual(r.json()['code'], 16)
        r = t.curl('POST', HTTP2 + '/v1/system/diagnose-database', body='{"x": ', http2=True,
                   headers={'Authorization': 'Bearer ' + os.environ.get('COFFER_ADMIN_TOKEN', '')})
        self.assertEqual(r.status, 400, r)
        self.assertEqual(r.json()['code'], 3)
        r = t.curl('DELETE', HTTP2 + '/v1/system/info', http2=True)
        self.assertEqual(r.status, 405, r)
        self.assertIn('GET', r.headers.get('allow', ''))
        r = t.curl('GET', HTTP2 + '/healthz', http2=True)
        self.assertEqual((r.status, r.json()), (200, {'status': 'ok'}))

    def test_multiplexed_load(self):
        if not shutil.which('h2load'):
            self.fail('h2load (nghttp2-client) is missing: scripts/install-deps installs it')
        out = subprocess.run(['h2load', '-n', '3000', '-c', '3', '-m', '50', '-t', '1',
                              HTTP2 + '/v1/system/info'], capture_output=True, text=True, timeout=120).stdout
        m = re.search(r'requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded', out)
        self.assertIsNotNone(m, out)
        self.assertEqual((m.group(1), m.group(3)), ('3000', '3000'), out)
        self.assertIn('status codes: 3000 2xx', out)
        # Every connection of h2load was HTTP/2 (no fallback to HTTP/1.1).
        self.assertIn('h2', re.search(r'Application protocol: (\S+)', out).group(1))

    def test_garbage_closes_only_that_connection(self):
        raw = RawH2(HTTP2)
        raw.send(b'GET / HTTP/1.1\r\nHost: x\r\n\r\n' + b'\xff' * 64)
        got = raw.frames(lambda ft, fl, st: ft == GOAWAY)
        raw.close()
        self.assertTrue(any(f[0] == GOAWAY for f in got) or not got, got)
        r = t.curl('GET', HTTP2 + '/v1/system/info', http2=True)
        self.assertEqual(r.status, 200, r)

    def test_oversized_headers_are_431(self):
        r = t.curl('GET', HTTP2 + '/v1/system/info', http2=True, headers={'X-Big': 'x' * 20000})
        self.assertEqual(r.status, 431, r)
        self.assertEqual(r.json()['code'], 8)
        self.assertIn('larger than 16384 bytes', r.json()['message'])
        self.assertRegex(r.headers.get('x-request-id', ''), r'^gw-')
        self.assertEqual(t.curl('GET', HTTP2 + '/v1/system/info', http2=True).status, 200)


class OwnGatewayH2Test(unittest.TestCase):
    """A gateway of the test's own in front of a fake coffer-api that can
    be told to sleep, so calls are surely in flight."""

    def setUp(self):
        self.up = t.FakeUpstream()
        self.gw = t.Gateway([self.up.target], {'http2.listen': '127.0.0.1:0', 'http.max_body_bytes': '2048'})
        self.assertIsNotNone(self.gw.h2url, self.gw.log_text())

    def tearDown(self):
        rc = self.gw.close()
        self.up.close()
        self.assertEqual(rc, 0, self.gw.final_log[-3000:])
        self.assertNotIn('ERROR: AddressSanitizer', self.gw.final_log)
        self.assertNotIn('runtime error:', self.gw.final_log)

    def sleeping_request(self, raw, stream, ms):
        raw.send(frame(HEADERS, END_STREAM | END_HEADERS, stream,
                       request_headers('/v1/system/info', [('grpc-metadata-x-test-sleep-ms', str(ms))])))

    def test_body_over_limit_is_413(self):
        r = t.curl('POST', self.gw.h2url + '/v1/system/diagnose-database', body='{"a":"' + 'x' * 4000 + '"}',
                   http2=True)
        self.assertEqual(r.status, 413, r)
        self.assertEqual(r.json()['code'], 8)
        self.assertEqual(self.up.calls, {})

    def test_upstream_status_and_retry_after(self):
        r = t.curl('GET', self.gw.h2url + '/v1/system/info', http2=True,
                   headers={'Grpc-Metadata-X-Test-Code': '8', 'Grpc-Metadata-X-Test-Retry': '7'})
        self.assertEqual(r.status, 429, r)
        self.assertEqual(r.headers.get('retry-after'), '7')
        r = t.curl('GET', self.gw.h2url + '/v1/system/info', http2=True)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers.get('grpc-metadata-x-test-seen'), 'yes')

    def test_reset_stream_mid_call(self):
        raw = RawH2(self.gw.h2url)
        raw.start()
        self.sleeping_request(raw, 1, 400)
        time.sleep(0.1)
        raw.send(frame(RST_STREAM, 0, 1, struct.pack('>I', 8)))  # CANCEL
        # The connection goes on: a second request on it is answered.
        raw.send(frame(HEADERS, END_STREAM | END_HEADERS, 3, request_headers('/v1/system/info')))
        got = raw.frames(lambda ft, fl, st: st == 3 and fl & END_STREAM and ft in (DATA, HEADERS))
        raw.close()
        self.assertTrue(any(f[2] == 3 and f[0] == HEADERS for f in got), got)
        self.assertFalse(any(f[2] == 1 and f[0] in (HEADERS, DATA) for f in got), got)
        # The reset call ends upstream, and is logged as the client's leaving.
        self.assertTrue(t.wait_until(lambda: self.up.slept == 1, 5))
        self.assertTrue(t.wait_until(lambda: 'detail=client_gone' in self.gw.log_text(), 5), self.gw.log_text())

    def test_connection_closed_mid_call(self):
        raw = RawH2(self.gw.h2url)
        raw.start()
        for stream in (1, 3, 5):
            self.sleeping_request(raw, stream, 300)
        time.sleep(0.1)
        raw.close()
        self.assertTrue(t.wait_until(lambda: self.up.slept == 3, 5))
        self.assertTrue(t.wait_until(lambda: self.gw.log_text().count('detail=client_gone') == 3, 5),
                        self.gw.log_text())
        r = t.curl('GET', self.gw.h2url + '/v1/system/info', http2=True)
        self.assertEqual(r.status, 200, r)

    def test_sigterm_lets_streams_in_flight_finish(self):
        results = []

        def call():
            results.append(t.curl('GET', self.gw.h2url + '/v1/system/info', http2=True,
                                  headers={'Grpc-Metadata-X-Test-Sleep-Ms': '500'}))

        threads = [threading.Thread(target=call) for _ in range(5)]
        for th in threads:
            th.start()
        self.assertTrue(t.wait_until(lambda: sum(self.up.calls.values()) == 5, 5))
        self.gw.proc.send_signal(15)
        for th in threads:
            th.join(20)
        self.assertEqual([r.status for r in results], [200] * 5, results)


class StalledClientH2Test(unittest.TestCase):
    """http.idle_timeout also closes HTTP/2 connections stalled by their
    client mid-request, not only idle ones."""

    def test_stalled_request_is_closed(self):
        up = t.FakeUpstream()
        gw = t.Gateway([up.target], {'http2.listen': '127.0.0.1:0', 'http.idle_timeout': '1s'})
        try:
            raw = RawH2(gw.h2url)
            raw.start()
            # A POST whose body never comes: HEADERS without END_STREAM.
            raw.send(frame(HEADERS, END_HEADERS, 1, block(
                [(':method', 'POST'), (':scheme', 'http'), (':path', '/v1/system/diagnose-database'),
                 (':authority', 'test')])))
            t0 = time.monotonic()
            got = raw.frames(lambda ft, fl, st: False, timeout=6)  # until the server closes
            waited = time.monotonic() - t0
            raw.close()
            self.assertLess(waited, 5.0, 'the stalled connection stayed open: %r' % got)
            self.assertGreater(waited, 0.9)
            self.assertEqual(up.calls, {})
            self.assertEqual(t.curl('GET', gw.h2url + '/v1/system/info', http2=True).status, 200)
        finally:
            self.assertEqual(gw.close(), 0, gw.final_log[-2000:])
            up.close()


class TlsH2Test(unittest.TestCase):
    """tls.cert and tls.key set: the HTTP/2 port serves TLS (the same
    certificate as HTTP/1.1) and HTTP/2 only, negotiated by ALPN "h2"."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix='coffer-gw-h2tls-')
        cls.cert, cls.key = t.self_signed_cert(cls.dir)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def setUp(self):
        self.up = t.FakeUpstream()
        self.gw = None

    def start(self, **settings):
        conf = {'http2.listen': '127.0.0.1:0', 'tls.cert': self.cert, 'tls.key': self.key}
        conf.update(settings)
        self.gw = t.Gateway([self.up.target], conf)
        self.assertIsNotNone(self.gw.h2url, self.gw.log_text())
        self.assertTrue(self.gw.h2url.startswith('https://'), self.gw.h2url)
        self.port = int(self.gw.h2url.rsplit(':', 1)[1])
        return self.gw

    def tearDown(self):
        if self.gw:
            rc = self.gw.close()
            log = self.gw.final_log
            self.assertEqual(rc, 0, log[-3000:])
            self.assertNotIn('Sanitizer', log)
            self.assertNotIn('runtime error:', log)
            # Both ports serve TLS: the old warning about a cleartext h2c port is gone.
            self.assertNotIn('serve.h2c_cleartext', log)
            self.assertRegex(log, r'event=serve\.listening port=\d+ http2_port=\d+ tls=on ')
        self.up.close()

    def tls_curl(self, method, path, **kw):
        return t.curl(method, self.gw.h2url + path, extra=['-k', '--http2'], **kw)

    def assert_serving(self):
        r = subprocess.run(['curl', '-sk', '--http2', '-o', '-', '-w', '\n%{http_code} %{http_version}',
                            self.gw.h2url + '/v1/system/info'], capture_output=True, timeout=30)
        body, _, tail = r.stdout.decode().rpartition('\n')
        self.assertEqual((r.returncode, tail), (0, '200 2'), r)
        return json.loads(body)

    def test_curl_gets_h2_over_tls(self):
        self.start()
        info = self.assert_serving()
        self.assertIn('version', info)  # GetInfoResponse: every field written
        self.assertEqual(self.up.calls.get('/coffer.v1.SystemService/GetInfo'), 1, self.up.calls)
        r = self.tls_curl('GET', '/v1/system/info', headers={'X-Request-Id': 'h2-tls-1'})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers.get('x-request-id'), 'h2-tls-1')
        self.assertEqual(r.headers.get('content-type'), 'application/json')
        # tls.cert's certificate, negotiated h2, TLS 1.2 or later.
        with open(self.cert, 'rb') as f:
            want = ssl.PEM_cert_to_DER_cert(f.read().decode())
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        ctx.set_alpn_protocols(['h2'])
        with ctx.wrap_socket(socket.create_connection(('127.0.0.1', self.port), timeout=10)) as s:
            self.assertEqual(s.selected_alpn_protocol(), 'h2')
            self.assertIn(s.version(), ('TLSv1.2', 'TLSv1.3'))
            self.assertEqual(s.getpeercert(binary_form=True), want)

    def test_multiplexed_load_over_tls(self):
        if not shutil.which('h2load'):
            self.fail('h2load (nghttp2-client) is missing: scripts/install-deps installs it')
        self.start()
        out = subprocess.run(['h2load', '-n', '500', '-c', '2', '-m', '10', '-t', '1',
                              self.gw.h2url + '/v1/system/info'], capture_output=True, text=True, timeout=120).stdout
        m = re.search(r'requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded', out)
        self.assertIsNotNone(m, out)
        self.assertEqual((m.group(1), m.group(3)), ('500', '500'), out)
        self.assertIn('status codes: 500 2xx', out)
        self.assertEqual(re.search(r'Application protocol: (\S+)', out).group(1), 'h2', out)
        self.assertRegex(out, r'TLS Protocol: TLSv1\.[23]')
        self.assertEqual(self.up.calls.get('/coffer.v1.SystemService/GetInfo'), 500, self.up.calls)

    def test_client_without_h2_fails_the_handshake(self):
        self.start(**{'log.level': 'debug'})
        # ALPN http/1.1 only: refused in the handshake with no_application_protocol.
        r = subprocess.run(['curl', '-sSk', '--http1.1', '-i', self.gw.h2url + '/v1/system/info'],
                           capture_output=True, timeout=30)
        self.assertNotEqual(r.returncode, 0, r)
        self.assertNotIn(b'HTTP/', r.stdout)
        self.assertIn(b'no application protocol', r.stderr)
        # No ALPN at all: the handshake ends, then the connection does, before any HTTP/2.
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        got, closed = b'', False
        try:
            with ctx.wrap_socket(socket.create_connection(('127.0.0.1', self.port), timeout=10)) as s:
                self.assertIsNone(s.selected_alpn_protocol())
                got, closed = t.read_until_closed(s, 5)
        except (ssl.SSLError, ConnectionResetError):
            closed = True  # refused in the handshake: just as good
        self.assertTrue(closed)
        self.assertEqual(got, b'')  # not even our SETTINGS
        self.assertTrue(t.wait_until(lambda: 'reason=no_alpn_h2' in self.gw.log_text(), 5), self.gw.log_text())
        self.assertIn('event=http2.tls_handshake_failed', self.gw.log_text())
        self.assertEqual(self.up.calls, {})
        self.assert_serving()

    def test_cleartext_client_fails(self):
        self.start()
        r = subprocess.run(['curl', '-sS', '--http2-prior-knowledge', '--max-time', '10',
                            self.gw.h2url.replace('https://', 'http://') + '/v1/system/info'],
                           capture_output=True, timeout=30)
        self.assertNotEqual(r.returncode, 0, r)
        self.assertEqual(r.stdout, b'')
        # Raw: the HTTP/2 preface is no ClientHello; no HTTP/2 frame comes back, and the socket closes.
        s = socket.create_connection(('127.0.0.1', self.port), timeout=10)
        s.sendall(PREFACE + frame(SETTINGS, 0, 0) + frame(HEADERS, END_STREAM | END_HEADERS, 1,
                                                          request_headers('/v1/system/info')))
        got, closed = t.read_until_closed(s, 5)
        s.close()
        self.assertTrue(closed, got)
        self.assertTrue(got == b'' or got[0] == 0x15, got)  # nothing, or a TLS alert record
        self.assertEqual(self.up.calls, {})
        self.assert_serving()

    def test_unfinished_handshakes_are_closed(self):
        self.start(**{'http.idle_timeout': '1s'})
        # One connects and says nothing; one sends its ClientHello, gets the
        # server's flight and never sends its Finished.
        silent = socket.create_connection(('127.0.0.1', self.port), timeout=10)
        stuck = socket.create_connection(('127.0.0.1', self.port), timeout=10)
        stuck.sendall(t.tls_client_hello())
        t0 = time.monotonic()
        flight, stuck_closed = t.read_until_closed(stuck, 6)
        stuck_waited = time.monotonic() - t0
        got, silent_closed = t.read_until_closed(silent, 6)
        silent_waited = time.monotonic() - t0
        stuck.close()
        silent.close()
        self.assertTrue(flight.startswith(b'\x16\x03'), flight[:16])  # the server's handshake records
        self.assertTrue(stuck_closed, 'the half-done handshake stayed open')
        self.assertTrue(silent_closed, 'the silent connection stayed open')
        self.assertEqual(got, b'')
        self.assertGreater(stuck_waited, 0.9)
        self.assertLess(stuck_waited, 4.0)
        self.assertLess(silent_waited, 4.0)
        self.assert_serving()

    def test_slow_reader_gets_whole_replies(self):
        # A client that reads nothing for a while, with a small TCP window:
        # the gateway's TLS writes meet a full socket (GnuTLS keeps the record
        # it made) and go on when it drains. Every byte arrives, once, in order.
        self.start()
        raw = RawH2(self.gw.h2url, rcvbuf=4096)
        win = 2 ** 31 - 1
        raw.send(PREFACE + settings((0x4, win)) + frame(WINDOW_UPDATE, 0, 0, struct.pack('>I', win - 65535)))
        pad = {1: 3000000, 3: 3000000, 5: 2500000}
        for stream, n in pad.items():
            raw.send(frame(HEADERS, END_STREAM | END_HEADERS, stream, block(
                [(':method', 'POST'), (':scheme', 'https'), (':path', '/v1/webhooks/acme'), (':authority', 'test'),
                 ('content-type', 'application/octet-stream'), ('grpc-metadata-x-test-pad', str(n))])))
        self.assertTrue(t.wait_until(lambda: sum(self.up.calls.values()) == len(pad), 5), self.up.calls)
        time.sleep(1.0)  # the replies are made; the gateway's socket fills up
        ended = set()

        def until(ftype, flags, stream):
            if ftype == DATA and flags & END_STREAM:
                ended.add(stream)
            return ended == set(pad) or ftype == GOAWAY

        got = raw.frames(until, timeout=30)
        raw.close()
        bodies = {stream: b'' for stream in pad}
        for ftype, _, stream, payload in got:
            self.assertNotIn(ftype, (GOAWAY, RST_STREAM), got[-3:])
            if ftype == DATA:
                bodies[stream] += payload
        for stream, n in pad.items():
            self.assertEqual(json.loads(bodies[stream])['eventId'], 'p' * n)

    def test_big_request_and_reply_over_tls(self):
        self.start()
        body = os.urandom(200 * 1024)
        # A slow reader (rate-limited curl): TLS writes meet a full socket and are resumed.
        r = self.tls_curl('POST', '/v1/webhooks/acme', body=body, timeout=60,
                          headers={'Content-Type': 'application/octet-stream', 'Grpc-Metadata-X-Test-Pad': '1000000'})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.up.calls.get('/coffer.v1.WebhookService/IngestProviderWebhook'), 1, self.up.calls)
        self.assertIn(body, self.up.requests['/coffer.v1.WebhookService/IngestProviderWebhook'])
        reply = r.json()
        self.assertEqual(reply['eventId'], 'p' * 1000000)
        self.assertEqual(int(r.headers.get('content-length')), len(r.body.encode()))
        out = subprocess.run(['curl', '-sk', '--http2', '--limit-rate', '2M', '-o', '-', '-X', 'POST',
                              '-H', 'Content-Type: application/octet-stream',
                              '-H', 'Grpc-Metadata-X-Test-Pad: 3000000', '--data-binary', '@-',
                              self.gw.h2url + '/v1/webhooks/acme'], input=body, capture_output=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(json.loads(out.stdout)['eventId'], 'p' * 3000000)


if __name__ == '__main__':
    unittest.main(verbosity=2)
