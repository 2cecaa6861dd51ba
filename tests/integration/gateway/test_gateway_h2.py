"""coffer-gateway's HTTP/2 front (h2c, prior knowledge): the same answers
as HTTP/1.1 through the same pipeline, many requests multiplexed on few
connections, and a client that resets a stream or leaves while its call is
in flight costs nothing but that request.

Driven by curl --http2-prior-knowledge and h2load against the stack's
gateway (COFFER_HTTP2), by gateways of the test's own in front of a fake
coffer-api (gw_testlib.FakeUpstream), and by a few raw HTTP/2 frames
written here (for what curl cannot do: reset a stream mid-call, send
garbage)."""
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import unittest

import gw_testlib as t
from h2wire import (ACK, DATA, END_HEADERS, END_STREAM, GOAWAY, HEADERS, PREFACE, RST_STREAM, SETTINGS, block,
                    frame)

HTTP = os.environ.get('COFFER_HTTP', '')
HTTP2 = os.environ.get('COFFER_HTTP2', '')


def request_headers(path, extra=()):
    return block([(':method', 'GET'), (':scheme', 'http'), (':path', path), (':authority', 'test')] + list(extra))


class RawH2:
    """A bare HTTP/2 connection: frames in, frame headers out."""

    def __init__(self, url):
        host, port = re.match(r'http://([^:]+):(\d+)', url).groups()
        self.sock = socket.create_connection((host, int(port)), timeout=10)
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


if __name__ == '__main__':
    unittest.main(verbosity=2)
