#!/usr/bin/python3
"""coffer-gateway's own gRPC client (gw_ucl: gRPC over HTTP/2 on nghttp2)
seen from the wire, against a raw HTTP/2 upstream written here that
answers each call the way the call asks (metadata x-mode): a normal
answer, a status in trailers or trailers-only, an HTTP error without
grpc-status, RST_STREAM REFUSED_STREAM, GOAWAY, a dropped connection, an
oversized or malformed message, or no answer at all. It checks what
the gateway answers its client, and what reached the upstream: a call the
server refused unprocessed is sent again (same target, then the next),
a call that may have run is never sent again.

Each behaviour is driven through both fronts, which run calls on
different loops: HTTP/1.1 (libmicrohttpd; the upstreams' own loop
thread) and HTTP/2 (h2c; the front's event loop). Then the real
coffer-api of the stack: failover to it, and ~2,000 concurrent HTTP/2
requests through the stack's gateway.

The upstream decodes the gateway's requests (full HPACK with Huffman
coding, RFC 7541: nghttp2 and the gRPC C core of the health checks both
Huffman-code and index) and answers with h2wire's literal fields."""
import base64
import json
import os
import re
import socket
import struct
import threading
import time
import unittest
import uuid

import gw_testlib as t
from h2wire import (ACK, CONTINUATION, DATA, END_HEADERS, END_STREAM, GOAWAY, HEADERS, PADDED, PING, PREFACE,
                    PRIO, RST_STREAM, SETTINGS, WINDOW_UPDATE, block, frame, hpack_read_int, settings)

t.require_stack()

HTTP2 = os.environ.get('COFFER_HTTP2', '')
REAL_API = os.environ.get('COFFER_GRPC', '')
REAL_API_UNIX = os.environ.get('COFFER_GRPC_UNIX', '')

NO_ERROR, REFUSED_STREAM, CANCEL = 0x0, 0x7, 0x8
HEALTH = '/grpc.health.v1.Health/Check'
GET_INFO = '/coffer.v1.SystemService/GetInfo'
MAX_MESSAGE = 1024  # upstream.max_message_bytes of the raw upstream's gateway

# -- HPACK decoding (RFC 7541) ------------------------------------------------------------------

_STATIC = [(':authority', ''), (':method', 'GET'), (':method', 'POST'), (':path', '/'), (':path', '/index.html'),
           (':scheme', 'http'), (':scheme', 'https'), (':status', '200'), (':status', '204'), (':status', '206'),
           (':status', '304'), (':status', '400'), (':status', '404'), (':status', '500'), ('accept-charset', ''),
           ('accept-encoding', 'gzip, deflate'), ('accept-language', ''), ('accept-ranges', ''), ('accept', ''),
           ('access-control-allow-origin', ''), ('age', ''), ('allow', ''), ('authorization', ''),
           ('cache-control', ''), ('content-disposition', ''), ('content-encoding', ''), ('content-language', ''),
           ('content-length', ''), ('content-location', ''), ('content-range', ''), ('content-type', ''),
           ('cookie', ''), ('date', ''), ('etag', ''), ('expect', ''), ('expires', ''), ('from', ''), ('host', ''),
           ('if-match', ''), ('if-modified-since', ''), ('if-none-match', ''), ('if-range', ''),
           ('if-unmodified-since', ''), ('last-modified', ''), ('link', ''), ('location', ''), ('max-forwards', ''),
           ('proxy-authenticate', ''), ('proxy-authorization', ''), ('range', ''), ('referer', ''), ('refresh', ''),
           ('retry-after', ''), ('server', ''), ('set-cookie', ''), ('strict-transport-security', ''),
           ('transfer-encoding', ''), ('user-agent', ''), ('vary', ''), ('via', ''), ('www-authenticate', '')]

# The Huffman code (appendix B) is canonical: the code lengths of symbols
# 0..256 (EOS) determine it. One letter per symbol: 'A' is 5 bits, 'B' 6, ...
_HUFF_LENGTHS = ('ISXXXXXXXTZXXZXXXXXXXXZXXXXXXXXXBFFHIBDGFFDGDBBBAAABBBBBBBCDKBHFIBCCCCCCCCCCCCCCCCCCCCCCDCDIOIJBKAB'
                 'ABABBBACCBBBABCBAABCCCCCKGJIXPRPPRRRSRSSSSSTSTTRSTSSSSQRSRSSTRQPRRSSQSRRTQRSSQQRQSRSSPRRRSRRSVVPORSR'
                 'UVVVWWVTUOQVWWVWTQQVVXWWWPTPQRQQSRRUUTTVSVWVVWWWWWXWWWWWVZ')


def _huffman_table():
    lengths = [ord(c) - ord('A') + 5 for c in _HUFF_LENGTHS]
    assert len(lengths) == 257
    table, code, prev = {}, -1, 0
    for sym in sorted(range(257), key=lambda s: (lengths[s], s)):
        code = (code + 1) << (lengths[sym] - prev)
        prev = lengths[sym]
        table[(lengths[sym], code)] = sym
    assert table[(5, 0x0)] == ord('0') and table[(6, 0x19)] == ord('3') and table[(30, 0x3fffffff)] == 256
    return table


_HUFF = _huffman_table()
_huff_cache = {}


def huffman_decode(data):
    if data in _huff_cache:
        return _huff_cache[data]
    out, code, n = bytearray(), 0, 0
    for byte in data:
        for i in range(7, -1, -1):
            code, n = (code << 1) | ((byte >> i) & 1), n + 1
            sym = _HUFF.get((n, code))
            if sym is not None:
                if sym == 256:
                    raise ValueError('EOS in a Huffman string')
                out.append(sym)
                code, n = 0, 0
    if n > 7 or code != (1 << n) - 1:
        raise ValueError('bad Huffman padding')
    if len(_huff_cache) < 10000:
        _huff_cache[data] = bytes(out)
    return bytes(out)


class HpackDecoder:
    """One direction of a connection: the static and dynamic tables."""

    def __init__(self):
        self.dynamic = []  # newest first
        self.size = 0
        self.max_size = 4096

    @staticmethod
    def _int(buf, pos, prefix_bits):
        return hpack_read_int(buf, pos, prefix_bits)

    def _str(self, buf, pos):
        huff = buf[pos] & 0x80
        n, pos = self._int(buf, pos, 7)
        raw = bytes(buf[pos:pos + n])
        if len(raw) != n:
            raise ValueError('a string runs past the block')
        return (huffman_decode(raw) if huff else raw).decode('latin-1'), pos + n

    def _entry(self, idx):
        if 1 <= idx <= len(_STATIC):
            return _STATIC[idx - 1]
        return self.dynamic[idx - len(_STATIC) - 1]

    def _evict(self):
        while self.size > self.max_size:
            name, value = self.dynamic.pop()
            self.size -= len(name) + len(value) + 32

    def decode(self, buf):
        fields, pos = [], 0
        while pos < len(buf):
            b = buf[pos]
            if b & 0x80:  # indexed
                idx, pos = self._int(buf, pos, 7)
                fields.append(self._entry(idx))
            elif b & 0xe0 == 0x20:  # dynamic table size update
                self.max_size, pos = self._int(buf, pos, 5)
                self._evict()
            else:  # literal: with incremental indexing (01), without (0000) or never indexed (0001)
                indexing = bool(b & 0x40)
                idx, pos = self._int(buf, pos, 6 if indexing else 4)
                if idx:
                    name = self._entry(idx)[0]
                else:
                    name, pos = self._str(buf, pos)
                value, pos = self._str(buf, pos)
                fields.append((name, value))
                if indexing:
                    self.dynamic.insert(0, (name, value))
                    self.size += len(name) + len(value) + 32
                    self._evict()
        return fields


# -- protobuf and gRPC framing for the answers ---------------------------------------------------

def grpc_frame(msg, flag=0, length=None):
    return bytes([flag]) + struct.pack('>I', len(msg) if length is None else length) + msg


def get_info_response(version_len):
    """A GetInfoResponse with version (field 1) of version_len 'v's."""
    v = b'v' * version_len
    n, varint = len(v), b''
    while True:
        b, n = n & 0x7f, n >> 7
        varint += bytes([b | (0x80 if n else 0)])
        if not n:
            break
    return b'\x0a' + varint + v


# grpc-message as a server percent-encodes it (a malformed escape and a
# lone % at the end are kept as they are).
PCT_MESSAGE, PCT_DECODED = 'caf%C3%A9 is 100%25 d%C3%B6ne %zz 5%', 'café is 100% döne %zz 5%'


def _details_b64():
    """google.rpc.Status with RetryInfo 7s, base64 without its padding."""
    for pad in range(3):
        raw = t.status_details(14, 'retry later' + '!' * pad, retry_seconds=7)
        if len(raw) % 3:
            enc = base64.b64encode(raw).decode()
            assert enc.endswith('=')
            return enc.rstrip('=')
    raise AssertionError('unreachable')


DETAILS_B64 = _details_b64()

# -- a raw HTTP/2 upstream -------------------------------------------------------------------------


class RawConn:
    """One connection accepted by RawUpstream, read and answered on its own thread."""

    def __init__(self, srv, sock, cid):
        self.srv, self.sock, self.cid = srv, sock, cid
        self.dec = HpackDecoder()
        self.wlock = threading.Lock()
        self.streams = {}   # id -> {'headers': [...], 'body': bytes}
        self.pending = None  # (stream, flags, block) of a header block awaiting CONTINUATION
        self.done = False   # we ended the connection (GOAWAY or close)

    def send(self, data):
        with self.wlock:
            try:
                self.sock.sendall(data)
            except OSError:
                pass

    def _read(self, n):
        out = b''
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise EOFError
            out += chunk
        return out

    def run(self):
        try:
            self.send(settings((0x3, self.srv.max_streams)))  # MAX_CONCURRENT_STREAMS
            if self._read(len(PREFACE)) != PREFACE:
                return
            while True:
                hd = self._read(9)
                n = int.from_bytes(hd[:3], 'big')
                self._frame(hd[3], hd[4], int.from_bytes(hd[5:9], 'big') & 0x7fffffff, self._read(n))
        except (OSError, EOFError, ValueError, IndexError):
            pass
        finally:
            try:
                self.sock.close()
            except OSError:
                pass

    def _frame(self, ftype, flags, sid, payload):
        if ftype == SETTINGS and not flags & ACK:
            self.send(frame(SETTINGS, ACK, 0))
        elif ftype == PING and not flags & ACK:
            self.send(frame(PING, ACK, 0, payload))
        elif ftype == RST_STREAM:
            self.srv._note_rst(self, sid, struct.unpack('>I', payload)[0])
        elif ftype == HEADERS:
            if flags & PADDED:
                payload = payload[1:len(payload) - payload[0]]
            if flags & PRIO:
                payload = payload[5:]
            self.pending = (sid, flags, payload)
            if flags & END_HEADERS:
                self._headers_done()
        elif ftype == CONTINUATION and self.pending:
            self.pending = (self.pending[0], self.pending[1], self.pending[2] + payload)
            if flags & END_HEADERS:
                self._headers_done()
        elif ftype == DATA:
            if flags & PADDED:
                payload = payload[1:len(payload) - payload[0]]
            st = self.streams.setdefault(sid, {'headers': [], 'body': b''})
            if payload:  # the window back at once: the connection's always (RFC 9113 6.9), the stream's if wanted
                inc = struct.pack('>I', len(payload))
                want = not flags & END_STREAM and not st.get('answered')
                self.send(frame(WINDOW_UPDATE, 0, 0, inc) + (frame(WINDOW_UPDATE, 0, sid, inc) if want else b''))
            if st.get('answered'):
                return  # answered early: the rest of the body is not wanted
            st['body'] += payload
            if flags & END_STREAM:
                self._request(sid)

    def _headers_done(self):
        sid, flags, blk = self.pending
        self.pending = None
        fields = self.dec.decode(blk)  # always: the dynamic table must follow every block
        st = self.streams.setdefault(sid, {'headers': [], 'body': b''})
        st['headers'] += fields
        if flags & END_STREAM:
            self._request(sid)
        elif ('x-mode', 'early') in fields and not self.done:
            # A server that answers before the request's end (RFC 9113
            # 8.1): the status, then RST_STREAM NO_ERROR, and no window
            # for the rest of the body.
            st['answered'] = True
            self.srv._handle(self, sid, st['headers'], b'')

    def _request(self, sid):
        st = self.streams.pop(sid)
        if not self.done:
            self.srv._handle(self, sid, st['headers'], st['body'])

    # -- answers --

    def headers(self, sid, fields, end=False):
        self.send(frame(HEADERS, END_HEADERS | (END_STREAM if end else 0), sid, block(fields)))

    def data(self, sid, payload, end=False):
        chunks = [payload[i:i + 16384] for i in range(0, len(payload), 16384)] or [b'']
        for i, c in enumerate(chunks):
            self.send(frame(DATA, END_STREAM if end and i == len(chunks) - 1 else 0, sid, c))

    def answer(self, sid, body, status='0', message='', head_md=(), trailers=True):
        self.headers(sid, [(':status', '200'), ('content-type', 'application/grpc')] + list(head_md))
        self.data(sid, body, end=not trailers)
        if trailers:
            self.headers(sid, [('grpc-status', status), ('grpc-message', message)], end=True)

    def goaway(self, last, code=NO_ERROR):
        """GOAWAY, then no more writing: the gateway closes when its streams are done."""
        self.done = True
        self.send(frame(GOAWAY, 0, 0, struct.pack('>II', last, code)))
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def drop(self):
        self.done = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class RawUpstream:
    """A coffer-api stand-in speaking raw HTTP/2 on 127.0.0.1:0. Health
    checks (the gRPC C core's, on their own connection) are answered
    SERVING; every other call is recorded and answered as its metadata
    x-mode says (self.force, when set, overrides it for every call):
      ok                GetInfoResponse (x-size: version of that many bytes)
      status            trailers-only: grpc-status x-code, a percent-encoded
                        grpc-message, grpc-status-details-bin (unpadded)
      status-late       headers, an empty message, then trailers with
                        grpc-status x-code and the same message and details
      http              :status x-http, text/plain, no grpc-status
      refuse            RST_STREAM REFUSED_STREAM for the first x-refuse
                        arrivals of x-id (default: all), then ok
      goaway            the first x-times (default 1) arrivals of x-id: GOAWAY
                        with last_stream_id 0 (below the stream), no answer;
                        then ok
      ok-then-goaway    ok, then GOAWAY(last = the stream) and close (a
                        server going away between calls)
      ok-then-close     ok, then the connection closed without a GOAWAY
      delay             ok after x-delay-ms
      early             as soon as the request's headers are in: trailers-only
                        RESOURCE_EXHAUSTED and RST_STREAM NO_ERROR
      goaway-covering   GOAWAY with last_stream_id = the stream, then the
                        connection is closed without an answer
      group-goaway      holds the calls of x-id on a connection until x-n of
                        them are there, then GOAWAY(0) for all; then ok
      close             closes the connection after reading the request (after
                        x-delay-ms, if given)
      rst-after-headers response headers, then RST_STREAM REFUSED_STREAM
      big               x-size bytes of message, then (x-hang absent) trailers
      compressed, short, two, empty, no-status, not-protobuf: bad framing
      hang              never answers
    """

    def __init__(self, max_streams=1000):
        self.max_streams = max_streams
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(('127.0.0.1', 0))
        self.lsock.listen(128)
        self.port = self.lsock.getsockname()[1]
        self.target = '127.0.0.1:%d' % self.port
        self.lock = threading.Lock()
        self.conns = []
        self.calls = []     # {'conn', 'stream', 'path', 'headers', 'body'}
        self.rsts = []      # (conn id, stream, error code) the gateway sent
        self.rst_at = {}    # (conn id, stream) -> when
        self.arrivals = {}  # x-id -> count
        self.held = {}      # (conn id, x-id) -> [stream]
        self.health = 0
        self.force = None
        self.accepting = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                sock, _ = self.lsock.accept()
            except OSError:
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                conn = RawConn(self, sock, len(self.conns))
                self.conns.append(conn)
            threading.Thread(target=conn.run, daemon=True).start()

    def stop_listening(self):
        """Later connects are refused; the connections made stay up. (A
        close alone would leave the socket listening while the accept
        thread is blocked in accept(); shutdown wakes it.)"""
        try:
            self.lsock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.lsock.close()

    def close(self):
        self.stop_listening()
        for c in list(self.conns):
            c.drop()

    # -- what reached us --

    def calls_of(self, xid):
        with self.lock:
            return [c for c in self.calls if c['headers'].get('x-id') == xid]

    def rst_for(self, call):
        with self.lock:
            return [code for cid, sid, code in self.rsts if cid == call['conn'] and sid == call['stream']]

    def _note_rst(self, conn, sid, code):
        with self.lock:
            self.rsts.append((conn.cid, sid, code))
            self.rst_at[(conn.cid, sid)] = time.monotonic()

    # -- answers --

    def _handle(self, conn, sid, fields, body):
        hdr = {}
        for k, v in fields:
            hdr.setdefault(k, v)
        if hdr.get(':path') == HEALTH:
            with self.lock:
                self.health += 1
            conn.answer(sid, grpc_frame(b'\x08\x01'))
            return
        xid = hdr.get('x-id', '')
        with self.lock:
            self.calls.append({'conn': conn.cid, 'stream': sid, 'path': hdr.get(':path'), 'headers': hdr,
                               'body': body, 'fields': fields, 'at': time.monotonic()})
            self.arrivals[xid] = n = self.arrivals.get(xid, 0) + 1
        mode = self.force or hdr.get('x-mode', 'ok')
        size = int(hdr.get('x-size', '0'))
        if mode == 'refuse' and n <= int(hdr.get('x-refuse', '1000')):
            conn.send(frame(RST_STREAM, 0, sid, struct.pack('>I', REFUSED_STREAM)))
        elif mode == 'goaway' and n <= int(hdr.get('x-times', '1')):
            conn.goaway(0)
        elif mode == 'goaway-covering':
            conn.goaway(sid)
            time.sleep(0.05)
            conn.drop()
        elif mode == 'group-goaway' and n <= int(hdr['x-n']):
            with self.lock:
                held = self.held.setdefault((conn.cid, xid), [])
                held.append(sid)
                full = len(held) == int(hdr['x-n'])
            if full:
                conn.goaway(0)
        elif mode == 'close':
            if hdr.get('x-delay-ms'):
                threading.Timer(int(hdr['x-delay-ms']) / 1000.0, conn.drop).start()
            else:
                conn.drop()
        elif mode == 'status':
            conn.headers(sid, [(':status', '200'), ('content-type', 'application/grpc'),
                               ('grpc-status', hdr.get('x-code', '2')), ('grpc-message', PCT_MESSAGE),
                               ('grpc-status-details-bin', DETAILS_B64)], end=True)
        elif mode == 'status-late':
            conn.headers(sid, [(':status', '200'), ('content-type', 'application/grpc'), ('x-raw', 'late')])
            conn.headers(sid, [('grpc-status', hdr.get('x-code', '2')), ('grpc-message', PCT_MESSAGE),
                               ('grpc-status-details-bin', DETAILS_B64)], end=True)
        elif mode == 'http':
            conn.headers(sid, [(':status', hdr.get('x-http', '503')), ('content-type', 'text/plain')])
            conn.data(sid, b'not gRPC', end=True)
        elif mode == 'rst-after-headers':
            conn.headers(sid, [(':status', '200'), ('content-type', 'application/grpc')])
            conn.send(frame(RST_STREAM, 0, sid, struct.pack('>I', REFUSED_STREAM)))
        elif mode == 'big':
            msg = get_info_response(size)
            if hdr.get('x-hang'):
                conn.headers(sid, [(':status', '200'), ('content-type', 'application/grpc')])
                conn.data(sid, grpc_frame(msg))
            else:
                conn.answer(sid, grpc_frame(msg))
        elif mode == 'compressed':
            conn.answer(sid, grpc_frame(b'', flag=1))
        elif mode == 'short':
            conn.answer(sid, grpc_frame(b'\x0a\x01v', length=10))
        elif mode == 'two':
            conn.answer(sid, grpc_frame(b'') + grpc_frame(b''))
        elif mode == 'empty':
            conn.answer(sid, b'')
        elif mode == 'no-status':
            conn.answer(sid, grpc_frame(b''), trailers=False)
        elif mode == 'not-protobuf':
            conn.answer(sid, grpc_frame(b'\xff\xff\xff'))
        elif mode == 'hang':
            pass
        elif mode == 'early':
            conn.headers(sid, [(':status', '200'), ('content-type', 'application/grpc'), ('grpc-status', '8'),
                               ('grpc-message', 'too big for me')], end=True)
            conn.send(frame(RST_STREAM, 0, sid, struct.pack('>I', NO_ERROR)))
        elif mode == 'delay':
            threading.Timer(int(hdr['x-delay-ms']) / 1000.0, conn.answer, (sid, grpc_frame(b''))).start()
        elif mode in ('ok-then-goaway', 'ok-then-close'):
            conn.answer(sid, grpc_frame(b''))
            if mode == 'ok-then-goaway':
                conn.goaway(sid)
            time.sleep(0.02)
            conn.drop()
        else:
            conn.answer(sid, grpc_frame(get_info_response(size)), head_md=[('x-raw', 'yes')])


# -- helpers ------------------------------------------------------------------------------------

FRONTS = ('http1', 'h2')


def new_id():
    return uuid.uuid4().hex[:12]


def call(gw, front, mode='ok', timeout=None, **md):
    """GET /v1/system/info through one front with metadata x-mode=mode and
    md (x_id='a' -> Grpc-Metadata-X-Id: a). Returns (response, seconds)."""
    headers = {'Grpc-Metadata-X-Mode': mode}
    for k, v in md.items():
        headers['Grpc-Metadata-' + k.replace('_', '-')] = str(v)
    if timeout:
        headers['Grpc-Timeout'] = timeout
    url = (gw.url if front == 'http1' else gw.h2url) + '/v1/system/info'
    t0 = time.monotonic()
    r = t.curl('GET', url, headers=headers, http2=(front == 'h2'), timeout=20)
    return r, time.monotonic() - t0


def metric(gw, name):
    m = re.search(r'^%s (\d+)$' % re.escape(name), t.curl('GET', gw.url + '/metrics').body, re.M)
    return int(m.group(1)) if m else None


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def stop_gateway(test, gw):
    rc = gw.close()
    test.assertEqual(rc, 0, gw.final_log[-3000:])
    test.assertNotIn('AddressSanitizer', gw.final_log)
    test.assertNotIn('runtime error:', gw.final_log)


GW_SETTINGS = {'http2.listen': '127.0.0.1:0', 'upstream.health_interval': '30s',
               'upstream.max_message_bytes': str(MAX_MESSAGE)}

# -- against the raw upstream ----------------------------------------------------------------------


class RawUpstreamTest(unittest.TestCase):
    """One gateway in front of one RawUpstream."""

    @classmethod
    def setUpClass(cls):
        cls.up = RawUpstream()
        cls.gw = t.Gateway([cls.up.target], GW_SETTINGS)
        assert cls.gw.h2url, cls.gw.log_text()

    @classmethod
    def tearDownClass(cls):
        rc = cls.gw.close()
        cls.up.close()
        if rc != 0 or 'AddressSanitizer' in cls.gw.final_log or 'runtime error:' in cls.gw.final_log:
            raise AssertionError('coffer-gateway exited %s:\n%s' % (rc, cls.gw.final_log[-3000:]))

    def test_zz_still_serving(self):
        # Runs last (alphabetical): nothing above left the gateway broken.
        for front in FRONTS:
            r, _ = call(self.gw, front)
            self.assertEqual(r.status, 200, r)

    def test_ok_and_the_request_on_the_wire(self):
        for front in FRONTS:
            with self.subTest(front=front):
                xid = new_id()
                r, _ = call(self.gw, front, x_id=xid, x_size=5)
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.json()['version'], 'vvvvv')
                self.assertEqual(r.headers.get('grpc-metadata-x-raw'), 'yes')
                [c] = self.up.calls_of(xid)
                h = c['headers']
                self.assertEqual(c['path'], GET_INFO)
                self.assertEqual((h[':method'], h[':scheme'], h[':authority']), ('POST', 'http', self.up.target))
                self.assertEqual((h['content-type'], h['te']), ('application/grpc', 'trailers'))
                self.assertEqual(c['body'], grpc_frame(b''))  # an empty GetInfoRequest
                # No Grpc-Timeout: the default deadline (10 s) travels.
                self.assertRegex(h['grpc-timeout'], r'^\d+m$')
                self.assertTrue(9000 <= int(h['grpc-timeout'][:-1]) <= 10000, h['grpc-timeout'])
                # Pseudo-headers first (RFC 9113 8.3).
                names = [k for k, _ in c['fields']]
                self.assertEqual(names[:4], [':method', ':scheme', ':path', ':authority'])
        self.assertGreaterEqual(self.up.health, 1)

    def test_deadline_sends_grpc_timeout_and_resets_the_stream(self):
        for front in FRONTS:
            with self.subTest(front=front):
                xid = new_id()
                r, took = call(self.gw, front, 'hang', timeout='300m', x_id=xid)
                self.assertEqual(r.status, 504, r)
                self.assertEqual(r.json()['code'], 4)
                self.assertLess(took, 1.0)
                self.assertGreater(took, 0.25)
                [c] = self.up.calls_of(xid)
                self.assertRegex(c['headers']['grpc-timeout'], r'^\d+m$')
                self.assertTrue(250 <= int(c['headers']['grpc-timeout'][:-1]) <= 300, c['headers'])
                self.assertTrue(t.wait_until(lambda: self.up.rst_for(c), 1.0), 'no RST_STREAM for the stream')
                self.assertEqual(self.up.rst_for(c), [CANCEL])
                # Reset when the deadline passed, not when the gateway got round to it.
                held = self.up.rst_at[(c['conn'], c['stream'])] - c['at']
                self.assertTrue(0.2 < held < 0.6, held)

    def test_http_status_without_grpc_status(self):
        # doc/http-grpc-status-mapping.md, then grpc-gateway's gRPC -> HTTP.
        table = {400: (13, 500), 401: (16, 401), 403: (7, 403), 404: (12, 501), 429: (14, 503), 502: (14, 503),
                 503: (14, 503), 504: (14, 503), 500: (2, 500)}
        for front in FRONTS:
            for http, (code, want) in table.items():
                with self.subTest(front=front, http=http):
                    xid = new_id()
                    r, _ = call(self.gw, front, 'http', x_http=http, x_id=xid)
                    self.assertEqual(r.status, want, r)
                    self.assertEqual(r.json()['code'], code)
                    self.assertIn('%s answered HTTP %d' % (self.up.target, http), r.json()['message'])
                    self.assertEqual(len(self.up.calls_of(xid)), 1)  # it was processed: not sent again

    def test_status_message_percent_decoded_and_details(self):
        for front in FRONTS:
            for mode in ('status', 'status-late'):
                with self.subTest(front=front, mode=mode):
                    r, _ = call(self.gw, front, mode, x_code=14)
                    self.assertEqual(r.status, 503, r)
                    d = r.json()
                    self.assertEqual(d['code'], 14)
                    self.assertEqual(d['message'], PCT_DECODED)
                    self.assertEqual(d['details'], [{'@type': 'type.googleapis.com/google.rpc.RetryInfo',
                                                     'retryDelay': '7s'}])
                    self.assertEqual(r.headers.get('retry-after'), '7')
                    r, _ = call(self.gw, front, mode, x_code=7)
                    self.assertEqual((r.status, r.json()['code']), (403, 7), r)

    def test_refused_stream_is_sent_again(self):
        for front in FRONTS:
            with self.subTest(front=front):
                xid = new_id()
                r, _ = call(self.gw, front, 'refuse', x_refuse=1, x_id=xid)
                self.assertEqual(r.status, 200, r)
                self.assertEqual(len(self.up.calls_of(xid)), 2)

    def test_refused_twice_is_unavailable(self):
        for front in FRONTS:
            with self.subTest(front=front):
                xid = new_id()
                r, took = call(self.gw, front, 'refuse', x_id=xid)
                self.assertEqual(r.status, 503, r)
                self.assertEqual(r.json()['code'], 14)
                self.assertEqual(r.json()['message'],
                                 'coffer-api is unreachable: %s: the server refused the stream twice' % self.up.target)
                self.assertEqual(len(self.up.calls_of(xid)), 2)  # once more to the same target, and no more
                self.assertLess(took, 2.0)

    def test_goaway_below_the_stream_is_sent_again_on_a_new_connection(self):
        for front in FRONTS:
            with self.subTest(front=front):
                xid = new_id()
                r, _ = call(self.gw, front, 'goaway', x_id=xid)
                self.assertEqual(r.status, 200, r)
                got = self.up.calls_of(xid)
                self.assertEqual(len(got), 2)
                self.assertNotEqual(got[0]['conn'], got[1]['conn'])
                # The next call uses the new connection.
                xid2 = new_id()
                r, _ = call(self.gw, front, x_id=xid2)
                self.assertEqual(r.status, 200, r)
                self.assertEqual(self.up.calls_of(xid2)[0]['conn'], got[1]['conn'])

    def test_goaway_covering_the_stream_then_close_is_lost(self):
        for front in FRONTS:
            with self.subTest(front=front):
                xid = new_id()
                r, _ = call(self.gw, front, 'goaway-covering', x_id=xid)
                self.assertEqual(r.status, 503, r)
                self.assertEqual(r.json()['code'], 14)
                self.assertIn('was lost while the call was in flight', r.json()['message'])
                time.sleep(0.2)
                self.assertEqual(len(self.up.calls_of(xid)), 1)  # it may have run: never sent again

    def test_connection_lost_after_the_request_is_not_sent_again(self):
        for front in FRONTS:
            with self.subTest(front=front):
                xid = new_id()
                r, _ = call(self.gw, front, 'close', x_id=xid)
                self.assertEqual(r.status, 503, r)
                self.assertEqual(r.json()['code'], 14)
                self.assertEqual(r.json()['message'], 'the connection to %s was lost while the call was in flight'
                                 % self.up.target)
                time.sleep(0.2)
                self.assertEqual(len(self.up.calls_of(xid)), 1)
                r, _ = call(self.gw, front)  # a new connection for the next call
                self.assertEqual(r.status, 200, r)

    def test_reset_after_response_headers_is_not_sent_again(self):
        for front in FRONTS:
            with self.subTest(front=front):
                xid = new_id()
                r, _ = call(self.gw, front, 'rst-after-headers', x_id=xid)
                self.assertEqual(r.status, 503, r)
                self.assertIn('reset the stream (HTTP/2 error 7)', r.json()['message'])
                time.sleep(0.1)
                self.assertEqual(len(self.up.calls_of(xid)), 1)

    def test_goaway_with_several_calls_in_flight(self):
        # Three calls held on one upstream connection, then GOAWAY(0): all
        # three are sent again on one new connection and answered.
        for front in FRONTS:
            with self.subTest(front=front):
                xid = new_id()
                results = []
                ths = [threading.Thread(target=lambda: results.append(
                    call(self.gw, front, 'group-goaway', timeout='3S', x_id=xid, x_n=3)[0])) for _ in range(3)]
                for th in ths:
                    th.start()
                for th in ths:
                    th.join(10)
                self.assertEqual([r.status for r in results], [200] * 3, results)
                got = self.up.calls_of(xid)
                self.assertEqual(len(got), 6)
                first, again = {c['conn'] for c in got[:3]}, {c['conn'] for c in got[3:]}
                self.assertEqual(len(first), 1)
                self.assertEqual(len(again), 1)
                self.assertNotEqual(first, again)

    def test_goaway_on_every_connection_is_unavailable(self):
        for front in FRONTS:
            with self.subTest(front=front):
                xid = new_id()
                r, _ = call(self.gw, front, 'goaway', x_times=5, x_id=xid)
                self.assertEqual(r.status, 503, r)
                self.assertEqual(r.json()['message'],
                                 'coffer-api is unreachable: %s: the server refused the stream twice' % self.up.target)
                got = self.up.calls_of(xid)
                self.assertEqual(len(got), 2)
                self.assertNotEqual(got[0]['conn'], got[1]['conn'])

    def test_server_leaving_between_calls(self):
        # The connection goes away after an answer (with or without a
        # GOAWAY): the next call opens a new one, nothing fails.
        for front in FRONTS:
            for mode in ('ok-then-goaway', 'ok-then-close'):
                with self.subTest(front=front, mode=mode):
                    xid = new_id()
                    r, _ = call(self.gw, front, mode, x_id=xid)
                    self.assertEqual(r.status, 200, r)
                    time.sleep(0.1)
                    xid2 = new_id()
                    r, _ = call(self.gw, front, x_id=xid2)
                    self.assertEqual(r.status, 200, r)
                    self.assertNotEqual(self.up.calls_of(xid)[0]['conn'], self.up.calls_of(xid2)[0]['conn'])

    def test_large_request_body_is_flow_controlled(self):
        # 600 KB: many times the upstream's 64 KB stream window.
        body = os.urandom(300000).hex().encode()
        for front in FRONTS:
            with self.subTest(front=front):
                xid = new_id()
                url = (self.gw.url if front == 'http1' else self.gw.h2url) + '/v1/webhooks/prov-big'
                r = t.curl('POST', url, body=body, http2=(front == 'h2'),
                           headers={'Content-Type': 'application/octet-stream', 'Grpc-Metadata-X-Id': xid})
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.json(), {'accepted': False, 'eventId': ''})
                [c] = self.up.calls_of(xid)
                self.assertEqual(c['path'], '/coffer.v1.WebhookService/IngestProviderWebhook')
                self.assertEqual(int.from_bytes(c['body'][1:5], 'big'), len(c['body']) - 5)
                self.assertIn(body, c['body'])

    def test_answer_before_the_request_ends(self):
        body = b'x' * 400000  # far beyond the 64 KB window the server never opens
        for front in FRONTS:
            with self.subTest(front=front):
                xid = new_id()
                url = (self.gw.url if front == 'http1' else self.gw.h2url) + '/v1/webhooks/prov-early'
                t0 = time.monotonic()
                r = t.curl('POST', url, body=body, http2=(front == 'h2'),
                           headers={'Content-Type': 'application/octet-stream', 'Grpc-Metadata-X-Id': xid,
                                    'Grpc-Metadata-X-Mode': 'early', 'Grpc-Timeout': '3S'})
                self.assertEqual(r.status, 429, r)
                self.assertEqual(r.json()['message'], 'too big for me')
                self.assertLess(time.monotonic() - t0, 2.0)
                self.assertEqual(len(self.up.calls_of(xid)), 1)

    def test_many_calls_refused_at_once_are_all_sent_again(self):
        # 100 streams on one HTTP/2 client connection, each refused once
        # upstream: the resends happen inside one loop turn.
        host, port = re.match(r'http://([^:]+):(\d+)', self.gw.h2url).groups()
        tag = new_id()
        out = h2_burst(host, int(port), 100, '/v1/system/info', lambda i: [
            ('grpc-metadata-x-mode', 'refuse'), ('grpc-metadata-x-refuse', '1'),
            ('grpc-metadata-x-id', '%s-%d' % (tag, i))])
        self.assertEqual(sorted({v[0] for v in out.values()}), ['200'], out)
        self.assertEqual(len(out), 100)
        for i in range(100):
            self.assertEqual(len(self.up.calls_of('%s-%d' % (tag, i))), 2)

    def test_goaway_with_100_calls_in_flight(self):
        host, port = re.match(r'http://([^:]+):(\d+)', self.gw.h2url).groups()
        xid = new_id()
        out = h2_burst(host, int(port), 100, '/v1/system/info', lambda i: [
            ('grpc-metadata-x-mode', 'group-goaway'), ('grpc-metadata-x-n', '100'), ('grpc-metadata-x-id', xid),
            ('grpc-timeout', '5S')])
        self.assertEqual(sorted({v[0] for v in out.values()}), ['200'], out)
        self.assertEqual(len(out), 100)
        got = self.up.calls_of(xid)
        self.assertEqual(len(got), 200)
        self.assertEqual(len({c['conn'] for c in got[:100]}), 1)
        self.assertEqual(len({c['conn'] for c in got[100:]}), 1)
        self.assertNotEqual(got[0]['conn'], got[100]['conn'])

    def test_message_size_limit(self):
        # version of n bytes: a message of n + 3 bytes (tag and a 2-byte length).
        for front in FRONTS:
            with self.subTest(front=front):
                r, _ = call(self.gw, front, 'big', x_size=MAX_MESSAGE - 3)
                self.assertEqual(r.status, 200, r)  # exactly the limit
                self.assertEqual(len(r.json()['version']), MAX_MESSAGE - 3)
                for size in (MAX_MESSAGE - 2, 50000):
                    r, _ = call(self.gw, front, 'big', x_size=size)
                    self.assertEqual(r.status, 429, r)
                    self.assertEqual(r.json()['code'], 8)
                    self.assertEqual(r.json()['message'], 'the response from %s is larger than %d bytes'
                                     % (self.up.target, MAX_MESSAGE))
                # Too big and never finished: ended at once, and the stream reset.
                xid = new_id()
                r, took = call(self.gw, front, 'big', timeout='5S', x_size=5000, x_hang=1, x_id=xid)
                self.assertEqual(r.status, 429, r)
                self.assertLess(took, 2.0)
                [c] = self.up.calls_of(xid)
                self.assertTrue(t.wait_until(lambda: self.up.rst_for(c), 1.0))
                self.assertEqual(self.up.rst_for(c), [CANCEL])

    def test_bad_response_framing(self):
        cases = {
            'compressed': (500, 13, 'compressed (flag 1), which was not asked for'),
            'short': (500, 13, 'says 10 bytes but 3 follow'),
            'two': (500, 13, 'more than one message in a unary response'),
            'empty': (500, 13, 'the upstream sent no response message'),
            'no-status': (500, 13, 'ended the stream without a grpc-status'),
            'not-protobuf': (500, 13, 'is not a valid coffer.v1.GetInfoResponse'),
        }
        for front in FRONTS:
            for mode, (http, code, text) in cases.items():
                with self.subTest(front=front, mode=mode):
                    r, _ = call(self.gw, front, mode)
                    self.assertEqual(r.status, http, r)
                    self.assertEqual(r.json()['code'], code)
                    self.assertIn(text, r.json()['message'])
            with self.subTest(front=front, mode='200 without a gRPC content-type'):
                r, _ = call(self.gw, front, 'http', x_http=200)
                self.assertEqual((r.status, r.json()['code']), (500, 2), r)
                self.assertIn('without a gRPC content-type', r.json()['message'])


class StreamLimitTest(unittest.TestCase):
    """An upstream allowing one stream at a time: nghttp2 holds the other
    calls' streams until one closes."""

    def test_calls_wait_for_a_stream(self):
        up = RawUpstream(max_streams=1)
        gw = t.Gateway([up.target], GW_SETTINGS)
        try:
            for front in FRONTS:
                with self.subTest(front=front):
                    first, xa, xb = [], new_id(), new_id()
                    th = threading.Thread(target=lambda: first.append(
                        call(gw, front, 'delay', x_delay_ms=400, x_id=xa)[0]))
                    th.start()
                    self.assertTrue(t.wait_until(lambda: up.calls_of(xa), 2))
                    r, _ = call(gw, front, x_id=xb)  # queued behind the first, sent when it ends
                    th.join(5)
                    self.assertEqual((first[0].status, r.status), (200, 200), (first, r))
                    self.assertGreaterEqual(up.calls_of(xb)[0]['at'] - up.calls_of(xa)[0]['at'], 0.35)
                    # A queued call whose deadline passes ends without ever being sent.
                    xc, xd = new_id(), new_id()
                    th = threading.Thread(target=lambda: first.append(
                        call(gw, front, 'hang', timeout='1S', x_id=xc)[0]))
                    th.start()
                    self.assertTrue(t.wait_until(lambda: up.calls_of(xc), 2))
                    r, took = call(gw, front, timeout='300m', x_id=xd)
                    self.assertEqual(r.status, 504, r)
                    self.assertLess(took, 1.0)
                    th.join(5)
                    self.assertEqual(first[1].status, 504)
                    self.assertEqual(up.calls_of(xd), [])
                    # The stream slot is free again.
                    r, _ = call(gw, front)
                    self.assertEqual(r.status, 200, r)
                    # The connection dies with one call on it and one queued:
                    # the first may have run (503), the queued one never
                    # left and is sent again on a new connection (200).
                    xe, xf, first = new_id(), new_id(), []
                    th = threading.Thread(target=lambda: first.append(
                        call(gw, front, 'close', x_delay_ms=300, x_id=xe)[0]))
                    th.start()
                    self.assertTrue(t.wait_until(lambda: up.calls_of(xe), 2))
                    r, _ = call(gw, front, x_id=xf)
                    th.join(5)
                    self.assertEqual(first[0].status, 503, first)
                    self.assertIn('was lost', first[0].json()['message'])
                    self.assertEqual(r.status, 200, r)
                    self.assertEqual(len(up.calls_of(xe)), 1)
                    [f] = up.calls_of(xf)
                    self.assertNotEqual(f['conn'], up.calls_of(xe)[0]['conn'])
        finally:
            stop_gateway(self, gw)
            up.close()


class ConnectTest(unittest.TestCase):
    """A target whose listen queue is full: the kernel drops the SYNs, so
    connecting neither succeeds nor fails until the connect timeout
    (upstream.health_timeout)."""

    def test_deadline_while_connecting_and_connect_timeout(self):
        ls = socket.socket()
        ls.bind(('127.0.0.1', 0))
        ls.listen(0)
        fillers = []
        for _ in range(4):
            c = socket.socket()
            c.setblocking(False)
            c.connect_ex(ls.getsockname())
            fillers.append(c)
        time.sleep(0.05)
        probe = socket.socket()
        probe.settimeout(0.3)
        dropped = False
        try:
            probe.connect(ls.getsockname())
        except socket.timeout:
            dropped = True
        finally:
            probe.close()
        if not dropped:
            for c in fillers:
                c.close()
            ls.close()
            self.skipTest('this kernel does not drop SYNs to a full listen queue')
        target = '127.0.0.1:%d' % ls.getsockname()[1]
        gw = t.Gateway([target], {'http2.listen': '127.0.0.1:0', 'upstream.health_interval': '30s',
                                  'upstream.health_timeout': '600ms'})
        try:
            for front in FRONTS:
                with self.subTest(front=front):
                    # The call's deadline passes while it waits for the connection.
                    r, took = call(gw, front, timeout='200m')
                    self.assertEqual(r.status, 504, r)
                    self.assertLess(took, 0.5)
                    # The next one waits for the same connection, until its connect timeout.
                    r, took = call(gw, front)
                    self.assertEqual(r.status, 503, r)
                    self.assertEqual(r.json()['message'], 'coffer-api is unreachable: %s: connect: timed out' % target)
                    self.assertLess(took, 1.0)
        finally:
            stop_gateway(self, gw)
            for c in fillers:
                c.close()
            ls.close()


# -- failover between targets ----------------------------------------------------------------------


class FailoverTest(unittest.TestCase):

    def test_target_gone_since_its_health_check_fails_over(self):
        a, b = RawUpstream(), RawUpstream()
        gw = t.Gateway([a.target, b.target], GW_SETTINGS)
        try:
            a.stop_listening()  # healthy at its last check; connects are refused now
            xid = new_id()
            r, _ = call(gw, 'http1', x_id=xid)  # the first call starts at the first target
            self.assertEqual(r.status, 200, r)
            self.assertEqual(len(b.calls_of(xid)), 1)
            self.assertEqual(a.calls, [])
            self.assertEqual(metric(gw, 'coffer_gateway_upstream_failovers_total'), 1)
            ready = {u['target']: u for u in t.curl('GET', gw.url + '/readyz').json()['upstreams']}
            self.assertFalse(ready[a.target]['healthy'])
            self.assertTrue(ready[b.target]['healthy'])
            # Known down now: later calls go to b first, on both fronts.
            for front in FRONTS:
                r, _ = call(gw, front)
                self.assertEqual(r.status, 200, r)
            self.assertEqual(metric(gw, 'coffer_gateway_upstream_failovers_total'), 1)
        finally:
            stop_gateway(self, gw)
            a.close()
            b.close()

    def test_refused_twice_moves_to_the_next_target(self):
        a, b = RawUpstream(), RawUpstream()
        a.force = 'refuse'
        gw = t.Gateway([a.target, b.target], GW_SETTINGS)
        try:
            n = 6
            for i in range(n):
                r, _ = call(gw, FRONTS[i % 2])
                self.assertEqual(r.status, 200, r)
            # Round robin: the calls that started at a were refused there twice, then went to b.
            started_at_a = len(a.calls) // 2
            self.assertEqual(len(a.calls) % 2, 0)
            self.assertGreaterEqual(started_at_a, 1)
            self.assertEqual(len(b.calls), n)
            self.assertEqual(metric(gw, 'coffer_gateway_upstream_failovers_total'), started_at_a)
        finally:
            stop_gateway(self, gw)
            a.close()
            b.close()

    def test_nothing_reachable(self):
        dead1, dead2 = '127.0.0.1:%d' % free_port(), '127.0.0.1:%d' % free_port()
        gw = t.Gateway([dead1, dead2], GW_SETTINGS)
        try:
            for front in FRONTS:
                for _ in range(2):  # the second inside the targets' retry pause
                    r, took = call(gw, front)
                    self.assertEqual(r.status, 503, r)
                    self.assertEqual(r.json()['code'], 14)
                    self.assertRegex(r.json()['message'],
                                     r'^coffer-api is unreachable: 127\.0\.0\.1:\d+: connect: Connection refused$')
                    self.assertLess(took, 1.0)
        finally:
            stop_gateway(self, gw)


# -- the real coffer-api -------------------------------------------------------------------------------


class RealApiTest(unittest.TestCase):

    def test_failover_to_the_real_api(self):
        self.assertTrue(REAL_API, 'COFFER_GRPC is not set')
        version = t.curl('GET', os.environ['COFFER_HTTP'] + '/v1/system/info').json()['version']
        self.assertTrue(version)
        gone = RawUpstream()
        targets = ['127.0.0.1:1', gone.target, REAL_API] + ([REAL_API_UNIX] if REAL_API_UNIX else [])
        gw = t.Gateway(targets, {'http2.listen': '127.0.0.1:0', 'upstream.health_interval': '30s'})
        try:
            gone.stop_listening()
            for front in FRONTS:
                for _ in range(3):
                    r, _ = call(gw, front)
                    self.assertEqual(r.status, 200, r)
                    self.assertEqual(r.json()['version'], version)
            # The first call started at `gone` (healthy at its check), found
            # it refusing connections and moved on. 127.0.0.1:1 was known
            # down from the start: calls try it after the healthy targets
            # only, so alone in front of the real API it never moves the
            # counter.
            self.assertEqual(metric(gw, 'coffer_gateway_upstream_failovers_total'), 1)
            ready = {u['target']: u['healthy'] for u in t.curl('GET', gw.url + '/readyz').json()['upstreams']}
            self.assertEqual((ready['127.0.0.1:1'], ready[gone.target], ready[REAL_API]), (False, False, True))
        finally:
            stop_gateway(self, gw)
            gone.close()

    def test_refusing_target_in_front_of_the_real_api(self):
        refuser = RawUpstream()
        refuser.force = 'refuse'
        gw = t.Gateway([refuser.target, REAL_API], {'upstream.health_interval': '30s'})
        try:
            for _ in range(4):
                r, _ = call(gw, 'http1')
                self.assertEqual(r.status, 200, r)
            self.assertGreaterEqual(len(refuser.calls), 2)
            self.assertEqual(metric(gw, 'coffer_gateway_upstream_failovers_total'), len(refuser.calls) // 2)
        finally:
            stop_gateway(self, gw)
            refuser.close()

    def test_2000_concurrent_http2_requests_through_the_stack(self):
        self.assertTrue(HTTP2, 'the stack has no HTTP/2 front (COFFER_HTTP2)')
        host, port = re.match(r'http://([^:]+):(\d+)', HTTP2).groups()
        n_conns, per_conn = 16, 125  # under http2.max_streams (128) per connection
        results = [None] * n_conns

        def run(i):
            results[i] = h2_burst(host, int(port), per_conn, '/v1/system/info')

        t0 = time.monotonic()
        ths = [threading.Thread(target=run, args=(i,)) for i in range(n_conns)]
        for th in ths:
            th.start()
        for th in ths:
            th.join(60)
        took = time.monotonic() - t0
        statuses = {}
        versions = set()
        for res in results:
            self.assertIsNotNone(res)
            for status, body in res.values():
                statuses[status] = statuses.get(status, 0) + 1
                if status == '200':
                    versions.add(json.loads(body)['version'])
        self.assertEqual(statuses, {'200': n_conns * per_conn})
        self.assertEqual(len(versions), 1)
        self.assertLess(took, 30)


def h2_burst(host, port, n, path, extra=lambda i: []):
    """n GET requests on one HTTP/2 connection (request i with the header
    fields extra(i)), all sent before any answer is read. Returns
    {stream: (:status, body)}."""
    sock = socket.create_connection((host, port), timeout=30)
    try:
        reqs = [frame(HEADERS, END_STREAM | END_HEADERS, 1 + 2 * i, block(
            [(':method', 'GET'), (':scheme', 'http'), (':path', path), (':authority', 'test')] + extra(i)))
            for i in range(n)]
        sock.sendall(PREFACE + settings((0x4, 1 << 24)) + frame(WINDOW_UPDATE, 0, 0, struct.pack('>I', 1 << 24)) +
                     b''.join(reqs))
        dec = HpackDecoder()
        out, body, buf = {}, {}, b''
        while len(out) < n:
            chunk = sock.recv(1 << 16)
            if not chunk:
                break
            buf += chunk
            while len(buf) >= 9:
                ln = int.from_bytes(buf[:3], 'big')
                if len(buf) < 9 + ln:
                    break
                ftype, flags, sid, payload = buf[3], buf[4], int.from_bytes(buf[5:9], 'big') & 0x7fffffff, \
                    buf[9:9 + ln]
                buf = buf[9 + ln:]
                if ftype == SETTINGS and not flags & ACK:
                    sock.sendall(frame(SETTINGS, ACK, 0))
                elif ftype == HEADERS:
                    fields = dict(dec.decode(payload))  # the gateway's blocks fit one frame
                    if ':status' in fields:
                        body[sid] = [fields[':status'], b'']
                elif ftype == DATA:
                    body[sid][1] += payload
                elif ftype == RST_STREAM:
                    out[sid] = ('rst %d' % struct.unpack('>I', payload)[0], b'')
                elif ftype == GOAWAY:
                    return out
                if ftype in (HEADERS, DATA) and flags & END_STREAM and sid in body:
                    out[sid] = tuple(body.pop(sid))
        return out
    finally:
        sock.close()


if __name__ == '__main__':
    unittest.main(verbosity=2)
