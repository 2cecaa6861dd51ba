#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_gw_h2 (tests/fuzz/corpus/gw_h2/): what
HTTP/2 clients send to coffer-gateway's h2c front, frame by frame
(RFC 9113), headers in HPACK without Huffman coding (RFC 7541).

The target's input format: byte 0, bit 0 set, the target sends the client
preface itself; then the bytes the client writes. Most seeds set it; a
few carry their own preface (or none) to keep the preface check fuzzed.

    tests/fuzz/gen_gw_h2_corpus.py [DIR]   (default: the corpus directory)
"""
import os
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'integration', 'gateway'))
# Frames and HPACK, shared with the gateway's HTTP/2 tests.
from h2wire import (ACK, CONTINUATION, DATA, END_HEADERS, END_STREAM, GOAWAY, HEADERS, PADDED, PING,  # noqa: E402
                    PREFACE, PRIO, PRIORITY, RST_STREAM, SETTINGS, WINDOW_UPDATE, frame, hpack_int, literal, settings,
                    write_seeds)

AUTO_PREFACE, OWN_BYTES = b'\x01', b'\x00'


def indexed(i):
    return hpack_int(i, 7, 0x80)


def request(method, path, extra=()):
    return b''.join(literal(k, v) for k, v in
                    [(':method', method), (':scheme', 'http'), (':path', path), (':authority', 'gw')] + list(extra))


START = settings((0x2, 0), (0x4, 65535), (0x3, 100)) + frame(SETTINGS, ACK, 0)


def seeds():
    get_info = request('GET', '/v1/system/info')
    body = b'{"detail":"fuzz"}'
    post = request('POST', '/v1/system/diagnose-database',
                   [('content-type', 'application/json'), ('content-length', str(len(body))),
                    ('authorization', 'Bearer x')])
    yield 'get_info', AUTO_PREFACE + START + frame(HEADERS, END_STREAM | END_HEADERS, 1, get_info)
    yield 'healthz_readyz', AUTO_PREFACE + START + \
        frame(HEADERS, END_STREAM | END_HEADERS, 1, request('GET', '/healthz')) + \
        frame(HEADERS, END_STREAM | END_HEADERS, 3, request('GET', '/readyz'))
    yield 'metrics', AUTO_PREFACE + START + frame(HEADERS, END_STREAM | END_HEADERS, 1, request('GET', '/metrics'))
    # A large reply: flow control and output above one DATA frame.
    yield 'openapi', AUTO_PREFACE + settings((0x4, 1024)) + \
        frame(HEADERS, END_STREAM | END_HEADERS, 1, request('GET', '/openapi.json')) + \
        frame(WINDOW_UPDATE, 0, 1, struct.pack('>I', 4096)) + frame(WINDOW_UPDATE, 0, 0, struct.pack('>I', 4096))
    yield 'post_data', AUTO_PREFACE + START + frame(HEADERS, END_HEADERS, 1, post) + \
        frame(DATA, 0, 1, body[:7]) + frame(DATA, END_STREAM, 1, body[7:])
    yield 'post_padded', AUTO_PREFACE + START + \
        frame(HEADERS, END_HEADERS | PADDED | PRIO, 1, b'\x04' + struct.pack('>IB', 0, 15) + post + b'\0' * 4) + \
        frame(DATA, END_STREAM | PADDED, 1, b'\x03' + body + b'\0' * 3)
    yield 'post_trailers', AUTO_PREFACE + START + frame(HEADERS, END_HEADERS, 1, post) + \
        frame(DATA, 0, 1, body) + frame(HEADERS, END_STREAM | END_HEADERS, 1, literal('x-trailer', 'yes'))
    yield 'post_too_large', AUTO_PREFACE + START + frame(HEADERS, END_HEADERS, 1, post) + \
        b''.join(frame(DATA, 0, 1, b'x' * 1500) for _ in range(3)) + frame(DATA, END_STREAM, 1, b'x')
    yield 'reset_mid_request', AUTO_PREFACE + START + frame(HEADERS, END_HEADERS, 1, post) + \
        frame(DATA, 0, 1, body[:5]) + frame(RST_STREAM, 0, 1, struct.pack('>I', 8)) + \
        frame(HEADERS, END_STREAM | END_HEADERS, 3, get_info)
    yield 'reset_after_request', AUTO_PREFACE + START + frame(HEADERS, END_STREAM | END_HEADERS, 1, get_info) + \
        frame(RST_STREAM, 0, 1, struct.pack('>I', 8))
    yield 'continuation', AUTO_PREFACE + START + frame(HEADERS, END_STREAM, 1, get_info[:20]) + \
        frame(CONTINUATION, 0, 1, get_info[20:40]) + frame(CONTINUATION, END_HEADERS, 1, get_info[40:])
    # Indexed fields (static table) and the dynamic table across requests.
    first = indexed(2) + indexed(6) + literal(':path', '/v1/system/info', index=True) + \
        literal(':authority', 'gw', index=True) + literal('x-request-id', 'fuzz-1', index=True)
    again = indexed(2) + indexed(6) + indexed(64) + indexed(63) + indexed(62)
    yield 'hpack_dynamic', AUTO_PREFACE + START + frame(HEADERS, END_STREAM | END_HEADERS, 1, first) + \
        frame(HEADERS, END_STREAM | END_HEADERS, 3, again) + \
        frame(HEADERS, END_STREAM | END_HEADERS, 5, hpack_int(0, 5, 0x20) + indexed(2) + indexed(6) +
              indexed(4) + literal(':authority', 'gw'))
    yield 'metadata_query', AUTO_PREFACE + START + frame(HEADERS, END_STREAM | END_HEADERS, 1, request(
        'GET', '/v1/system/info?x=1&y=%20',
        [('grpc-timeout', '50m'), ('grpc-metadata-x-test', 'v'), ('idempotency-key', 'k-1'),
         ('x-request-id', 'fuzz-2')]))
    yield 'errors_404_405', AUTO_PREFACE + START + \
        frame(HEADERS, END_STREAM | END_HEADERS, 1, request('GET', '/v1/no/such')) + \
        frame(HEADERS, END_STREAM | END_HEADERS, 3, request('DELETE', '/v1/system/info')) + \
        frame(HEADERS, END_STREAM | END_HEADERS, 5, request('GET', '/v1/%zz'))
    yield 'control_frames', AUTO_PREFACE + START + frame(PING, 0, 0, b'12345678') + \
        frame(PRIORITY, 0, 3, struct.pack('>IB', 1, 200)) + frame(WINDOW_UPDATE, 0, 0, struct.pack('>I', 1 << 20)) + \
        frame(HEADERS, END_STREAM | END_HEADERS, 1, get_info) + frame(GOAWAY, 0, 0, struct.pack('>II', 1, 0))
    yield 'connect_no_path', AUTO_PREFACE + START + frame(HEADERS, END_STREAM | END_HEADERS, 1, b''.join(
        literal(k, v) for k, v in [(':method', 'CONNECT'), (':authority', 'gw:443')]))
    # Each stream reset right after its HEADERS (CVE-2023-44487): past max_streams calls, refused.
    yield 'rapid_reset', AUTO_PREFACE + START + b''.join(
        frame(HEADERS, END_STREAM | END_HEADERS, s, get_info) + frame(RST_STREAM, 0, s, struct.pack('>I', 8))
        for s in range(1, 48, 2))
    yield 'many_streams', AUTO_PREFACE + START + b''.join(
        frame(HEADERS, END_STREAM | END_HEADERS, s, request('GET', '/healthz' if s % 4 == 1 else '/v1/system/info'))
        for s in range(1, 40, 2))
    # Protocol errors (GOAWAY or RST_STREAM).
    yield 'headers_stream0', AUTO_PREFACE + START + frame(HEADERS, END_STREAM | END_HEADERS, 0, get_info)
    yield 'even_stream', AUTO_PREFACE + START + frame(HEADERS, END_STREAM | END_HEADERS, 2, get_info)
    yield 'bad_hpack_index', AUTO_PREFACE + START + frame(HEADERS, END_STREAM | END_HEADERS, 1, indexed(120))
    yield 'uppercase_name', AUTO_PREFACE + START + frame(HEADERS, END_STREAM | END_HEADERS, 1,
                                                         request('GET', '/healthz', [('X-Upper', '1')]))
    yield 'settings_bad_len', AUTO_PREFACE + frame(SETTINGS, 0, 0, b'\0\0\0')
    # Their own preface, or none.
    yield 'own_preface', OWN_BYTES + PREFACE + START + frame(HEADERS, END_STREAM | END_HEADERS, 1, get_info)
    yield 'http1', OWN_BYTES + b'GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n'
    yield 'http1_upgrade', OWN_BYTES + b'GET / HTTP/1.1\r\nHost: gw\r\nConnection: Upgrade, HTTP2-Settings\r\n' \
        b'Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n'


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                             'corpus', 'gw_h2')
    write_seeds(seeds(), out)


if __name__ == '__main__':
    main()
