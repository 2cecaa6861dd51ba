"""coffer-gateway's HTTP/2 front against bad input, frame by frame: one
table row per kind of malformed or hostile client (truncated frames,
frames on the wrong stream, bad HPACK, malformed requests, floods, a body
over the limit). For each the gateway answers precisely (GOAWAY with the
right error code, RST_STREAM, or a 4xx google.rpc.Status JSON), does not
crash, and a normal request on a new connection afterwards gets 200.

Needs no stack: a gateway of the test's own (gw_testlib.Gateway, HTTP/2
on) in front of a fake coffer-api (gw_testlib.FakeUpstream). Error codes:
RFC 9113 section 7; the rules each row breaks: the section named in it.
TLS_CASES: what a TLS port (tls.cert set) gets instead of a proper
handshake; each closes that connection and nothing else."""
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import tempfile
import time
import unittest

import gw_testlib as t
from h2wire import (ACK, CONTINUATION, DATA, END_HEADERS, END_STREAM, GOAWAY, HEADERS, PING, PREFACE, PRIORITY,
                    PUSH_PROMISE, RST_STREAM, SETTINGS, WINDOW_UPDATE, block, frame, hpack_int, hpack_read_int, literal,
                    settings)

PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR = 0x1, 0x2, 0x3
STREAM_CLOSED, FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL, COMPRESSION_ERROR = 0x5, 0x6, 0x7, 0x8, 0x9
MAX_BODY = 2048

# -- frames and HPACK (h2wire) -------------------------------------------------------------


def request(path='/v1/system/info', method='GET', scheme='http', extra=()):
    return block([(':method', method), (':scheme', scheme), (':path', path), (':authority', 'test')] + list(extra))


# The huffman codes of the digits (RFC 7541 appendix B): enough to read :status.
_HUFF_DIGITS = {(0x0, 5): '0', (0x1, 5): '1', (0x2, 5): '2', (0x19, 6): '3', (0x1a, 6): '4', (0x1b, 6): '5',
                (0x1c, 6): '6', (0x1d, 6): '7', (0x1e, 6): '8', (0x1f, 6): '9'}
_STATIC_STATUS = {8: '200', 9: '204', 10: '206', 11: '304', 12: '400', 13: '404', 14: '500'}


def _huff_digits(data):
    out, code, n = '', 0, 0
    bits = ''.join(format(b, '08b') for b in data)
    for i, bit in enumerate(bits):
        code, n = (code << 1) | int(bit), n + 1
        if (code, n) in _HUFF_DIGITS:
            out, code, n = out + _HUFF_DIGITS[(code, n)], 0, 0
        elif n > 6:
            return None
    return out if n < 8 and code == (1 << n) - 1 else None  # padding: the EOS prefix


_read_int = hpack_read_int


def _read_str(buf, pos):
    huff = bool(buf[pos] & 0x80)
    n, pos = _read_int(buf, pos, 7)
    return (huff, buf[pos:pos + n]), pos + n


def response_status(hblock):
    """The :status of a response header block the gateway wrote. We send
    SETTINGS_HEADER_TABLE_SIZE 0 first, so its blocks index only the static
    table; values may be Huffman-coded (digits decoded here)."""
    pos = 0
    while pos < len(hblock):
        b = hblock[pos]
        if b & 0x80:  # indexed field
            idx, pos = _read_int(hblock, pos, 7)
            if idx in _STATIC_STATUS:
                return _STATIC_STATUS[idx]
            continue
        if b & 0xe0 == 0x20:  # dynamic table size update
            _, pos = _read_int(hblock, pos, 5)
            continue
        idx, pos = _read_int(hblock, pos, 6 if b & 0x40 else 4)
        name = None
        if idx == 0:
            name, pos = _read_str(hblock, pos)
        (huff, value), pos = _read_str(hblock, pos)
        if 8 <= idx <= 14 or name == (False, b':status'):
            return _huff_digits(value) if huff else value.decode()
    return None


# -- a raw connection ---------------------------------------------------------------------------

class Conn:
    """One HTTP/2 connection of raw frames. Collects what the gateway
    sends: GOAWAY, RST_STREAMs, and per stream the :status and body."""

    def __init__(self, url, preface=True):
        host, port = re.match(r'http://([^:]+):(\d+)', url).groups()
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.buf = b''
        self.eof = False
        self.goaway = None  # (last stream id, error code)
        self.rst = {}       # stream -> error code
        self.status = {}    # stream -> :status
        self.body = {}      # stream -> bytes
        self.ended = set()  # streams the gateway ended (END_STREAM)
        self.frames = []    # (type, flags, stream, length) of every frame
        if preface:
            self.send(PREFACE + settings((0x1, 0), (0x2, 0)))  # HEADER_TABLE_SIZE 0, ENABLE_PUSH 0

    def send(self, data):
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            self.eof = True  # the gateway closed first; what it sent is still read

    def half_close(self):
        self.sock.shutdown(socket.SHUT_WR)

    def _frame(self, ftype, flags, stream, payload):
        self.frames.append((ftype, flags, stream, len(payload)))
        if ftype == SETTINGS and not flags & ACK:
            self.send(frame(SETTINGS, ACK, 0))
        elif ftype == GOAWAY:
            self.goaway = struct.unpack('>II', payload[:8])
            self.goaway = (self.goaway[0] & 0x7fffffff, self.goaway[1])
        elif ftype == RST_STREAM:
            self.rst[stream] = struct.unpack('>I', payload)[0]
        elif ftype == HEADERS and stream not in self.status:
            self.status[stream] = response_status(payload)
        elif ftype == DATA:
            self.body[stream] = self.body.get(stream, b'') + payload
            if payload:  # give the window back, so long replies come whole
                self.send(frame(WINDOW_UPDATE, 0, 0, struct.pack('>I', len(payload))) +
                          frame(WINDOW_UPDATE, 0, stream, struct.pack('>I', len(payload))))
        if ftype in (HEADERS, DATA) and flags & END_STREAM:
            self.ended.add(stream)

    def wait(self, until, timeout=5):
        """Reads until until(self) holds, the gateway closes, or timeout."""
        end = time.monotonic() + timeout
        while not until(self):
            while len(self.buf) >= 9:
                n = int.from_bytes(self.buf[:3], 'big')
                if len(self.buf) < 9 + n:
                    break
                hd, self.buf = self.buf[:9 + n], self.buf[9 + n:]
                self._frame(hd[3], hd[4], int.from_bytes(hd[5:9], 'big') & 0x7fffffff, hd[9:])
                if until(self):
                    return True
            left = end - time.monotonic()
            if self.eof or left <= 0:
                break
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                chunk = b''
            self.eof = not chunk  # then once more round: the frames left in buf
            self.buf += chunk
        return until(self)

    def wait_closed(self, timeout=5):
        return self.wait(lambda c: c.eof and len(c.buf) < 9, timeout)

    def json(self, stream):
        return json.loads(self.body.get(stream, b'null'))

    def close(self):
        self.sock.close()


# -- the table ----------------------------------------------------------------------------------

POST_HEAD = frame(HEADERS, END_HEADERS, 1, request('/v1/system/diagnose-database', 'POST',
                                                   extra=[('content-type', 'application/json')]))


def continued(fields, size, end=True):
    """A header block cut into a HEADERS frame and CONTINUATION frames of
    size bytes, the last with END_HEADERS when end."""
    chunks = [fields[i:i + size] for i in range(0, len(fields), size)]
    out = frame(HEADERS, END_STREAM | (END_HEADERS if end and len(chunks) == 1 else 0), 1, chunks[0])
    for i, c in enumerate(chunks[1:], 2):
        out += frame(CONTINUATION, END_HEADERS if end and i == len(chunks) else 0, 1, c)
    return out


# 24 KiB of header fields in a small frame: one entry of the dynamic table, referenced 6 times.
HPACK_BOMB = request() + b'\x40' + hpack_int(5, 7) + b'x-big' + hpack_int(4000, 7) + b'v' * 4000 + \
    hpack_int(62, 7, 0x80) * 5
# 40 KiB of header fields: 1 KiB each.
BIG_FIELDS = request() + b''.join(literal('x-big-%02d' % i, 'v' * 1000) for i in range(40))


def case(name, send, expect, half_close=False, preface=True, log=None):
    """A row: send is bytes, or a list of bytes and stream ids (wait for
    the gateway to end that stream before going on), after the preface
    and our SETTINGS (preface False: no preface, no SETTINGS); half_close:
    the client then shuts down writing; log: a regex one of the gateway's
    log lines must come to match. expect:
      ('goaway', code)              GOAWAY with that error code, then it closes
      ('rst', stream, code)         RST_STREAM on stream; the connection goes on
      ('reply', stream, http, rpc)  that HTTP status with a google.rpc.Status
                                    JSON of that code; the connection goes on
      ('ignored', stream, next)     nothing on stream; a request on stream
                                    next is answered
      ('close',)                    it closes without a word (the client's
                                    EOF cut a frame short: nothing to answer)
    Where RFC 9113 asks for a stream error, nghttp2 (the gateway's framing)
    sometimes ends the connection instead, as 5.4.1 allows: those rows say
    "connection error"."""
    return {'name': name, 'send': send if isinstance(send, list) else [send], 'expect': expect,
            'half_close': half_close, 'preface': preface, 'log': log}


def hdrs(stream, fields, flags=END_STREAM | END_HEADERS):
    return frame(HEADERS, flags, stream, fields)


CONNECT = block([(':method', 'CONNECT'), (':authority', 'test:443')])

CASES = [
    # Cut short by the client's EOF.
    case('truncated frame header (4.1: 9 octets)', hdrs(1, request())[:5], ('close',), half_close=True),
    case('truncated frame payload', hdrs(1, request())[:30], ('close',), half_close=True),
    case('truncated preface (3.4)', PREFACE[:10], ('close',), half_close=True, preface=False),
    case('not HTTP/2 at all (3.4: preface)', b'GET / HTTP/1.1\r\nHost: x\r\n\r\n' + b'\xff' * 64,
         ('goaway', PROTOCOL_ERROR), preface=False),
    # Frames on the wrong stream.
    case('HEADERS on stream 0 (6.2)', hdrs(0, request()), ('goaway', PROTOCOL_ERROR)),
    case('even stream id from a client (5.1.1)', hdrs(2, request()), ('goaway', PROTOCOL_ERROR)),
    case('stream id going down (5.1.1; nghttp2 ignores the HEADERS)', hdrs(5, request()) + hdrs(3, request()),
         ('ignored', 3, 7)),
    case('DATA on an idle stream (5.1)', frame(DATA, END_STREAM, 1, b'{}'), ('goaway', PROTOCOL_ERROR)),
    case('DATA on stream 0 (6.1)', frame(DATA, 0, 0, b'{}'), ('goaway', PROTOCOL_ERROR)),
    case('DATA after END_STREAM, call in flight (5.1: half-closed; connection error)',
         hdrs(1, request(extra=[('grpc-metadata-x-test-sleep-ms', '300')])) + frame(DATA, 0, 1, b'x'),
         ('goaway', STREAM_CLOSED)),
    case('RST_STREAM on an idle stream (6.4)', frame(RST_STREAM, 0, 1, struct.pack('>I', 8)),
         ('goaway', PROTOCOL_ERROR)),
    case('PUSH_PROMISE from a client (8.4)', frame(PUSH_PROMISE, END_HEADERS, 1, struct.pack('>I', 2) + request()),
         ('goaway', PROTOCOL_ERROR)),
    case('stream depending on itself (5.3.1; connection error)', frame(PRIORITY, 0, 1, struct.pack('>IB', 1, 16)),
         ('goaway', PROTOCOL_ERROR)),
    # Frame sizes and HPACK.
    case('huge declared frame length (4.2)',
         b'\xff\xff\xff' + bytes([HEADERS, END_HEADERS]) + struct.pack('>I', 1) + b'\0' * 64,
         ('goaway', FRAME_SIZE_ERROR)),
    case('invalid HPACK index (RFC 7541 2.3.3)', hdrs(1, hpack_int(120, 7, 0x80)), ('goaway', COMPRESSION_ERROR)),
    case('HPACK string longer than its frame (RFC 7541 5.2)', hdrs(1, b'\x00\x7f\x50abc'),
         ('goaway', COMPRESSION_ERROR)),
    # Malformed requests (8.1.1: stream errors).
    case('header name with uppercase letters (8.2.1)', hdrs(1, request(extra=[('X-Upper', '1')])),
         ('rst', 1, PROTOCOL_ERROR)),
    case('connection-specific header (8.2.2)', hdrs(1, request(extra=[('connection', 'keep-alive')])),
         ('rst', 1, PROTOCOL_ERROR)),
    case('missing :path (8.3.1)', hdrs(1, block([(':method', 'GET'), (':scheme', 'http'), (':authority', 't')])),
         ('rst', 1, PROTOCOL_ERROR)),
    case('missing :method (8.3.1)', hdrs(1, block([(':scheme', 'http'), (':path', '/healthz'), (':authority', 't')])),
         ('rst', 1, PROTOCOL_ERROR)),
    case(':path without a leading slash, http (8.3.1)', hdrs(1, request('v1/system/info')),
         ('rst', 1, PROTOCOL_ERROR)),
    case('empty :path (8.3.1)', hdrs(1, request('')), ('rst', 1, PROTOCOL_ERROR)),
    case('pseudo-header after a regular one (8.3)', hdrs(1, block(
        [(':method', 'GET'), (':scheme', 'http'), ('x-a', '1'), (':path', '/healthz'), (':authority', 't')])),
        ('rst', 1, PROTOCOL_ERROR)),
    case('body longer than content-length (8.1.1)', hdrs(1, request(
        '/v1/system/diagnose-database', 'POST', extra=[('content-length', '2')]), END_HEADERS) +
        frame(DATA, END_STREAM, 1, b'{"a":1}'), ('rst', 1, PROTOCOL_ERROR)),
    case(':method longer than any method', hdrs(1, request(method='M' * 40)), ('reply', 1, 501, 12)),
    # Requests nghttp2 passes on that the gateway answers itself.
    case(':path without a leading slash, other scheme', hdrs(1, request('v1/system/info', scheme='coffer')),
         ('reply', 1, 404, 5)),
    # A stream reused from the gateway's pool after a request to one of its
    # own routes: the access log must not name that request's route.
    case('CONNECT without :path (8.5), on a reused stream', [hdrs(1, request('/healthz')), 1, hdrs(3, CONNECT)],
         ('reply', 3, 400, 3), log=r'method=CONNECT path=- route=unmatched status=400 code=INVALID_ARGUMENT '),
    case('bad percent-encoding in the path', hdrs(1, request('/v1/users/%zz')), ('reply', 1, 400, 3)),
    case('bad Grpc-Timeout', hdrs(1, request(extra=[('grpc-timeout', 'soon')])), ('reply', 1, 400, 3)),
    case('body of bad JSON', POST_HEAD + frame(DATA, END_STREAM, 1, b'{"x": '), ('reply', 1, 400, 3)),
    case('body over http.max_body_bytes', POST_HEAD + frame(DATA, 0, 1, b'{"x":"' + b'y' * MAX_BODY) +
         frame(DATA, END_STREAM, 1, b'"}'), ('reply', 1, 413, 8)),
    # Header limits: 16 KiB of names and values (SETTINGS_MAX_HEADER_LIST_SIZE), and at most 8
    # CONTINUATION frames per header block (nghttp2 1.61, and Debian's 1.52.0-1+deb12u2).
    case('headers over 16 KiB from HPACK references', hdrs(1, HPACK_BOMB), ('reply', 1, 431, 8)),
    case('headers over 16 KiB in CONTINUATION frames', continued(BIG_FIELDS, 12000), ('reply', 1, 431, 8)),
    case('CONTINUATION flood past the 16 KiB header limit (CVE-2024-28182)', continued(BIG_FIELDS, 1024, end=False),
         ('goaway', PROTOCOL_ERROR)),
    case('CONTINUATION on another stream (6.10)', hdrs(1, request(), END_STREAM) +
         frame(CONTINUATION, END_HEADERS, 3, b''), ('goaway', PROTOCOL_ERROR)),
    case('CONTINUATION without HEADERS (6.10)', frame(CONTINUATION, END_HEADERS, 1, request()),
         ('goaway', PROTOCOL_ERROR)),
    # SETTINGS, PING, flow control.
    case('SETTINGS with a length not a multiple of 6 (6.5)', frame(SETTINGS, 0, 0, b'\0\x04\0\0'),
         ('goaway', FRAME_SIZE_ERROR)),
    case('SETTINGS ACK with a payload (6.5)', frame(SETTINGS, ACK, 0, b'\0' * 6), ('goaway', FRAME_SIZE_ERROR)),
    case('SETTINGS on a stream (6.5)', frame(SETTINGS, 0, 1), ('goaway', PROTOCOL_ERROR)),
    case('SETTINGS_INITIAL_WINDOW_SIZE over 2^31-1 (6.5.2)', settings((0x4, 0x80000000)),
         ('goaway', FLOW_CONTROL_ERROR)),
    case('PING of 7 octets (6.7)', frame(PING, 0, 0, b'1234567'), ('goaway', FRAME_SIZE_ERROR)),
    case('WINDOW_UPDATE of 0 on the connection (6.9)', frame(WINDOW_UPDATE, 0, 0, struct.pack('>I', 0)),
         ('goaway', PROTOCOL_ERROR)),
    case('WINDOW_UPDATE of 0 on a stream (6.9; connection error)',
         POST_HEAD + frame(WINDOW_UPDATE, 0, 1, struct.pack('>I', 0)), ('goaway', PROTOCOL_ERROR)),
    case('WINDOW_UPDATE past 2^31-1 (6.9.1)', frame(WINDOW_UPDATE, 0, 0, struct.pack('>I', 0x7fffffff)),
         ('goaway', FLOW_CONTROL_ERROR)),
]


def log_text(gw):
    """The gateway's log, bytes that are not UTF-8 escaped (gw_testlib's
    log_text would raise on them: heap bytes in an access-log line, say)."""
    with open(gw.log_path, 'rb') as f:
        return f.read().decode('utf-8', errors='backslashreplace')


class BadInputH2Test(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.up = t.FakeUpstream()
        cls.gw = t.Gateway([cls.up.target], {'http2.listen': '127.0.0.1:0',
                                             'http.max_body_bytes': str(MAX_BODY)})
        if not cls.gw.h2url:
            raise RuntimeError('no HTTP/2 front:\n' + log_text(cls.gw))

    @classmethod
    def tearDownClass(cls):
        try:
            rc = cls.gw.close()
            log = cls.gw.final_log
        except UnicodeDecodeError:  # stopped, but its log is not UTF-8
            rc, log = cls.gw.proc.returncode, log_text(cls.gw)
            shutil.rmtree(cls.gw.dir, ignore_errors=True)
        cls.up.close()
        assert rc == 0, 'coffer-gateway exited %s:\n%s' % (rc, log[-3000:])
        assert 'ERROR: AddressSanitizer' not in log and 'runtime error:' not in log, log[-3000:]

    def normal_request(self, conn=None, stream=1):
        """GET /v1/system/info: 200 with the fake upstream's (empty) GetInfoResponse."""
        own = conn is None
        c = conn or Conn(self.gw.h2url)
        c.send(frame(HEADERS, END_STREAM | END_HEADERS, stream, request()))
        c.wait(lambda x: stream in x.ended or stream in x.rst or x.goaway)
        if own:
            c.close()
        self.assertEqual((c.status.get(stream), c.rst.get(stream), c.goaway), ('200', None, None), c.frames)
        self.assertIn('version', c.json(stream))  # GetInfoResponse, every field written

    def check(self, row):
        c = Conn(self.gw.h2url, row['preface'])
        for step in row['send']:
            if isinstance(step, int):
                self.assertTrue(c.wait(lambda x: step in x.ended), c.frames)
            else:
                c.send(step)
        if row['half_close']:
            c.half_close()
        expect = row['expect']
        kind = expect[0]
        if kind == 'goaway':
            c.wait(lambda x: x.goaway is not None)
            self.assertIsNotNone(c.goaway, 'no GOAWAY; frames %r eof %r' % (c.frames, c.eof))
            self.assertEqual(c.goaway[1], expect[1], 'GOAWAY %r; frames %r' % (c.goaway, c.frames))
            self.assertTrue(c.wait_closed(), 'open after GOAWAY')
            self.assertEqual(c.status, {}, 'a reply despite the error: %r' % c.frames)
        elif kind == 'rst':
            stream = expect[1]
            c.wait(lambda x: stream in x.rst or x.goaway is not None or stream in x.ended)
            self.assertEqual((c.rst.get(stream), c.goaway), (expect[2], None), c.frames)
            self.assertNotIn(stream, c.status, c.frames)
            self.normal_request(c, stream + 2)  # the connection goes on
        elif kind == 'reply':
            stream = expect[1]
            c.wait(lambda x: stream in x.ended or stream in x.rst or x.goaway is not None)
            self.assertEqual((c.status.get(stream), c.rst, c.goaway), (str(expect[2]), {}, None), c.frames)
            body = c.json(stream)
            self.assertEqual(body['code'], expect[3], body)
            self.assertTrue(body['message'], body)
            self.normal_request(c, stream + 2)
        elif kind == 'ignored':
            stream, after = expect[1], expect[2]
            self.normal_request(c, after)
            self.assertNotIn(stream, c.status, c.frames)
            self.assertNotIn(stream, c.rst, c.frames)
        else:
            self.assertTrue(c.wait_closed(), 'still open after the client EOF: %r' % c.frames)
            self.assertEqual((c.goaway, c.rst, c.status), (None, {}, {}), c.frames)
        c.close()
        if row['log']:
            rx = re.compile(row['log'])
            self.assertTrue(t.wait_until(lambda: rx.search(log_text(self.gw)), 5),
                            'no log line matches %r; the last lines:\n%s' % (
                                row['log'], '\n'.join(log_text(self.gw).splitlines()[-8:])))

    def test_bad_input_table(self):
        for row in CASES:
            with self.subTest(row['name']):
                self.check(row)
            if self.gw.proc.poll() is not None:  # the rest would only fail to connect
                self.fail('coffer-gateway died at %r:\n%s' % (row['name'], log_text(self.gw)[-4000:]))
            with self.subTest(row['name'] + ': then a new connection'):
                self.normal_request()
        # And many streams at once on one connection.
        c = Conn(self.gw.h2url)
        c.send(b''.join(frame(HEADERS, END_STREAM | END_HEADERS, s, request()) for s in range(1, 40, 2)))
        c.wait(lambda x: len(x.ended) == 20)
        c.close()
        self.assertEqual(sorted(c.status.values()), ['200'] * 20, c.frames)

    def test_rapid_reset_is_bounded(self):
        """CVE-2023-44487: a client that resets each stream right after its
        HEADERS has no stream open in nghttp2's count, but every one of
        them started an upstream call. Calls in flight per connection stay
        within http2.max_streams: the streams past it are refused
        (RST_STREAM REFUSED_STREAM, nothing done), and the connection goes
        on once the calls ended."""
        up = t.FakeUpstream()  # its own: counts only these calls
        gw = t.Gateway([up.target], {'http2.listen': '127.0.0.1:0', 'http2.max_streams': '8'})
        try:
            c = Conn(gw.h2url)
            sleepy = request(extra=[('grpc-metadata-x-test-sleep-ms', '300')])
            c.send(b''.join(frame(HEADERS, END_STREAM | END_HEADERS, s, sleepy) +
                            frame(RST_STREAM, 0, s, struct.pack('>I', CANCEL)) for s in range(1, 80, 2)))
            c.wait(lambda x: len(x.rst) == 32 or x.goaway is not None)
            self.assertEqual((c.goaway, c.status), (None, {}), c.frames)
            self.assertEqual(c.rst, {s: REFUSED_STREAM for s in range(17, 80, 2)}, c.frames)
            self.assertTrue(t.wait_until(lambda: up.slept == 8, 5), up.slept)
            time.sleep(0.3)
            self.assertEqual(up.calls, {'/coffer.v1.SystemService/GetInfo': 8})
            self.normal_request(c, 81)
            c.close()
        finally:
            rc = gw.close()
            up.close()
        self.assertEqual(rc, 0, gw.final_log[-3000:])
        self.assertNotIn('ERROR: AddressSanitizer', gw.final_log)


# Bytes a TLS port gets instead of a handshake it can finish. Each: the
# gateway closes the connection (after a TLS alert at most; after its own
# handshake flight for a real ClientHello), logs why at debug level, and
# serves the next client.
TLS_CASES = [
    ('garbage instead of a ClientHello', lambda: b'\xff' * 64),
    ('an HTTP/2 preface (an h2c client)', lambda: PREFACE + settings((0x2, 0))),
    ('a record longer than TLS allows (RFC 8446 5.1)', lambda: b'\x16\x03\x01\xff\xff' + b'\0' * 64),
    ('a ClientHello, then application data before the handshake is done',
     lambda: t.tls_client_hello() + b'\x17\x03\x03\x00\x20' + os.urandom(32)),
    ('a ClientHello offering only http/1.1', lambda: t.tls_client_hello(('http/1.1',))),
]


class BadTlsInputH2Test(unittest.TestCase):
    def test_bad_handshakes(self):
        d = tempfile.mkdtemp(prefix='coffer-gw-h2badtls-')
        cert, key = t.self_signed_cert(d)
        up = t.FakeUpstream()
        gw = t.Gateway([up.target], {'http2.listen': '127.0.0.1:0', 'tls.cert': cert, 'tls.key': key,
                                     'log.level': 'debug'})
        try:
            port = int(gw.h2url.rsplit(':', 1)[1])
            for i, (name, data) in enumerate(TLS_CASES, 1):
                with self.subTest(name):
                    s = socket.create_connection(('127.0.0.1', port), timeout=10)
                    try:
                        s.sendall(data())
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                    got, closed = t.read_until_closed(s, 5)
                    s.close()
                    self.assertTrue(closed, 'still open: %r' % got[:32])
                    # Nothing but TLS records: handshake (0x16) or alert (0x15), never an HTTP/2 frame.
                    self.assertTrue(got == b'' or got[0] in (0x15, 0x16), got[:32])
                    self.assertTrue(t.wait_until(
                        lambda: log_text(gw).count('event=http2.tls_handshake_failed') == i, 5), log_text(gw)[-2000:])
                self.assertIsNone(gw.proc.poll(), log_text(gw)[-3000:])
                r = subprocess.run(['curl', '-sk', '--http2', '-o', '/dev/null', '-w', '%{http_code} %{http_version}',
                                    gw.h2url + '/v1/system/info'], capture_output=True, timeout=30)
                self.assertEqual(r.stdout, b'200 2', r)
            self.assertEqual(up.calls, {'/coffer.v1.SystemService/GetInfo': len(TLS_CASES)})
        finally:
            rc = gw.close()
            up.close()
            shutil.rmtree(d, ignore_errors=True)
        self.assertEqual(rc, 0, gw.final_log[-3000:])
        self.assertNotIn('ERROR: AddressSanitizer', gw.final_log)
        self.assertNotIn('runtime error:', gw.final_log)
        # Why each failed, named by GnuTLS; never key material.
        self.assertNotIn('PRIVATE KEY', gw.final_log)


if __name__ == '__main__':
    unittest.main(verbosity=2)
