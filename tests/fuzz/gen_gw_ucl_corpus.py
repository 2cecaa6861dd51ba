#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_gw_ucl (tests/fuzz/corpus/gw_ucl/): what
a gRPC server (coffer-api) sends back to the gateway's own client, frame by
frame (RFC 9113), headers in HPACK without Huffman coding (RFC 7541), as
gRPC over HTTP/2 (github.com/grpc/grpc doc/PROTOCOL-HTTP2.md) frames it.

The target's input format: byte 0 chooses the calls (bits 0-1: how many,
1 + value % 3; two bits per call from bit 2: its deadline, none, 300 ms,
1 ms, 5 ms); the rest is what the server writes on each connection, where
each of the first two PAUSE tokens is a wait instead, until the calls with
a 1 or 5 ms deadline have ended (their deadlines pass there). The calls'
streams are 1, 3, 5.

    tests/fuzz/gen_gw_ucl_corpus.py [DIR]   (default: the corpus directory)
"""
import base64
import os
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'integration', 'gateway'))
# Frames and HPACK, shared with the gateway's HTTP/2 tests.
from h2wire import (ACK, CONTINUATION, DATA, END_HEADERS, END_STREAM, GOAWAY, HEADERS, PADDED, PING,  # noqa: E402
                    PUSH_PROMISE, RST_STREAM, SETTINGS, WINDOW_UPDATE, frame, hpack_int, literal, settings,
                    write_seeds)

NO_DEADLINE, D300MS, D1MS, D5MS = 0, 1, 2, 3
PAUSE = b'PAUSE'
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, REFUSED_STREAM, CANCEL, ENHANCE_YOUR_CALM = 0x0, 0x1, 0x2, 0x7, 0x8, 0xb


def calls(n=1, deadlines=()):
    """Byte 0: n calls (1..3), each with its deadline (NO_DEADLINE...)."""
    b = n - 1
    for i, d in enumerate(deadlines):
        b |= d << (2 + 2 * i)
    return bytes([b])


# ---- protobuf (the few wire types GetInfoResponse needs) ----

def varint(v):
    out = bytearray()
    while True:
        b = v & 0x7f
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def pb_varint(field, v):
    return varint(field << 3) + varint(v)


def pb_bytes(field, b):
    b = b.encode() if isinstance(b, str) else b
    return varint(field << 3 | 2) + varint(len(b)) + b


def component(name, status, detail='', latency_us=0):
    return pb_bytes(1, name) + pb_varint(2, status) + pb_bytes(3, detail) + pb_varint(4, latency_us)


# coffer.v1.GetInfoResponse: version, commit, uptime_seconds, components, schema_version.
GET_INFO = pb_bytes(1, '0.1.0') + pb_bytes(2, '0123456789ab') + pb_varint(3, 86400) + \
    pb_bytes(4, component('db', 1, '', 350)) + pb_bytes(4, component('signer', 2, 'connection refused', 0)) + \
    pb_varint(5, 12)


def grpc_message(payload, flag=0, length=None):
    """A length-prefixed message (the 5-byte prefix: flag, big-endian length)."""
    return bytes([flag]) + struct.pack('>I', len(payload) if length is None else length) + payload


# ---- HTTP/2 ----

def indexed(i):
    return hpack_int(i, 7, 0x80)


def fields(pairs):
    return b''.join(literal(k, v) for k, v in pairs)


# The server's preface (its SETTINGS) and the ACK of the client's.
START = settings((0x3, 100), (0x4, 65535), (0x5, 16384)) + frame(SETTINGS, ACK, 0)

RESPONSE_HEADERS = fields([(':status', '200'), ('content-type', 'application/grpc')])


def trailers(status, message=None, extra=()):
    pairs = [('grpc-status', status)] + ([('grpc-message', message)] if message is not None else []) + list(extra)
    return fields(pairs)


def answer(stream, payload=GET_INFO, status='0', headers=RESPONSE_HEADERS):
    """A whole unary answer: headers, one message, trailers."""
    return frame(HEADERS, END_HEADERS, stream, headers) + frame(DATA, 0, stream, grpc_message(payload)) + \
        frame(HEADERS, END_STREAM | END_HEADERS, stream, trailers(status))


def trailers_only(stream, status, message=None, extra=(), http='200'):
    return frame(HEADERS, END_STREAM | END_HEADERS, stream, fields(
        [(':status', http), ('content-type', 'application/grpc')]) + trailers(status, message, extra))


def rst(stream, code):
    return frame(RST_STREAM, 0, stream, struct.pack('>I', code))


def goaway(last, code=NO_ERROR, debug=b''):
    return frame(GOAWAY, 0, 0, struct.pack('>II', last, code) + debug)


def seeds():
    ok = answer(1)
    # Answers.
    yield 'ok_unary', calls(1) + START + ok
    yield 'ok_three_calls', calls(3) + START + answer(1) + answer(3) + answer(5)
    yield 'ok_three_interleaved', calls(3, (D300MS, NO_DEADLINE, D300MS)) + START + \
        frame(HEADERS, END_HEADERS, 5, RESPONSE_HEADERS) + frame(HEADERS, END_HEADERS, 1, RESPONSE_HEADERS) + \
        frame(DATA, 0, 1, grpc_message(GET_INFO)[:7]) + frame(DATA, 0, 5, grpc_message(GET_INFO)) + \
        frame(DATA, 0, 1, grpc_message(GET_INFO)[7:]) + answer(3) + \
        frame(HEADERS, END_STREAM | END_HEADERS, 5, trailers('0')) + \
        frame(HEADERS, END_STREAM | END_HEADERS, 1, trailers('0'))
    yield 'ok_deadline_300ms', calls(1, (D300MS,)) + START + ok
    yield 'ok_deadline_1ms', calls(2, (D1MS, D5MS)) + START + ok + answer(3)
    # Deadlines that pass while the streams are open: the streams are reset
    # and detached, and what the server still sends for them is dropped.
    yield 'deadline_before_answer', calls(3, (D1MS, D5MS, NO_DEADLINE)) + START + PAUSE + \
        answer(1) + answer(3) + answer(5)
    yield 'deadline_mid_answer', calls(2, (D1MS, D300MS)) + START + frame(HEADERS, END_HEADERS, 1, RESPONSE_HEADERS) + \
        frame(DATA, 0, 1, grpc_message(GET_INFO)[:20]) + PAUSE + frame(DATA, 0, 1, grpc_message(GET_INFO)[20:]) + \
        frame(HEADERS, END_STREAM | END_HEADERS, 1, trailers('0')) + answer(3)
    yield 'deadline_then_oversize', calls(2, (D5MS, D5MS)) + START + frame(HEADERS, END_HEADERS, 1, RESPONSE_HEADERS) + \
        PAUSE + frame(DATA, 0, 1, grpc_message(pb_bytes(1, 'v' * 5000))) + rst(3, REFUSED_STREAM) + PAUSE + goaway(0)
    yield 'deadline_then_goaway', calls(3, (D5MS, NO_DEADLINE, D1MS)) + START + PAUSE + goaway(1) + answer(1) + \
        answer(3) + answer(5)
    yield 'ok_empty_message', calls(1) + START + answer(1, payload=b'')
    yield 'ok_metadata', calls(1) + START + frame(HEADERS, END_HEADERS, 1, RESPONSE_HEADERS + fields(
        [('x-request-id', 'r-1'), ('x-trace-bin', base64.b64encode(b'\x00\x01\xff').decode().rstrip('='))])) + \
        frame(DATA, 0, 1, grpc_message(GET_INFO)) + \
        frame(HEADERS, END_STREAM | END_HEADERS, 1, trailers('0', '', [('x-after', 'yes')]))
    # Indexed fields (:status 200 is static entry 8) and the dynamic table across streams.
    dyn = indexed(8) + literal('content-type', 'application/grpc', index=True)
    yield 'hpack_dynamic', calls(2) + START + \
        frame(HEADERS, END_HEADERS, 1, dyn) + frame(DATA, 0, 1, grpc_message(GET_INFO)) + \
        frame(HEADERS, END_STREAM | END_HEADERS, 1, literal('grpc-status', '0', index=True)) + \
        frame(HEADERS, END_HEADERS, 3, indexed(8) + indexed(63)) + frame(DATA, 0, 3, grpc_message(GET_INFO)) + \
        frame(HEADERS, END_STREAM | END_HEADERS, 3, indexed(62))
    yield 'continuation', calls(1) + START + frame(HEADERS, 0, 1, RESPONSE_HEADERS[:10]) + \
        frame(CONTINUATION, END_HEADERS, 1, RESPONSE_HEADERS[10:]) + frame(DATA, 0, 1, grpc_message(GET_INFO)) + \
        frame(HEADERS, END_STREAM, 1, trailers('0')[:5]) + frame(CONTINUATION, END_HEADERS, 1, trailers('0')[5:])
    yield 'padded', calls(1) + START + \
        frame(HEADERS, END_HEADERS | PADDED, 1, b'\x03' + RESPONSE_HEADERS + b'\0' * 3) + \
        frame(DATA, PADDED, 1, b'\x02' + grpc_message(GET_INFO) + b'\0\0') + \
        frame(HEADERS, END_STREAM | END_HEADERS, 1, trailers('0'))
    yield 'data_split', calls(1) + START + frame(HEADERS, END_HEADERS, 1, RESPONSE_HEADERS) + b''.join(
        frame(DATA, 0, 1, bytes([b])) for b in grpc_message(GET_INFO)) + \
        frame(HEADERS, END_STREAM | END_HEADERS, 1, trailers('0'))
    # Errors with a grpc-status.
    yield 'trailers_only_not_found', calls(1) + START + trailers_only(1, '5', 'not%20found')
    yield 'status_details_bin', calls(1) + START + trailers_only(1, '3', 'bad%20request%3A%20%E2%82%AC', [
        ('grpc-status-details-bin', base64.b64encode(pb_varint(1, 3) + pb_bytes(2, 'bad')).decode().rstrip('='))])
    yield 'details_bin_invalid', calls(1) + START + trailers_only(1, '13', '%', [('grpc-status-details-bin', '!!*')])
    yield 'status_unparsable', calls(3) + START + trailers_only(1, '17') + trailers_only(3, '007', '%zz%4') + \
        trailers_only(5, '-1', 'x%2')
    # A status in the response's headers is not the call's when the stream is then reset.
    yield 'status_in_headers_then_reset', calls(1) + START + \
        frame(HEADERS, END_HEADERS, 1, RESPONSE_HEADERS + trailers('0')) + frame(DATA, 0, 1, grpc_message(GET_INFO)) + \
        rst(1, INTERNAL_ERROR)
    # A field nghttp2 rejects (uppercase) in the trailers: the client resets the stream.
    yield 'bad_trailer_field', calls(1) + START + frame(HEADERS, END_HEADERS, 1, RESPONSE_HEADERS) + \
        frame(DATA, 0, 1, grpc_message(GET_INFO)) + \
        frame(HEADERS, END_STREAM | END_HEADERS, 1, trailers('0', None, [('X-Bad', '1')]))
    yield 'status_ok_no_body', calls(1) + START + trailers_only(1, '0')
    yield 'status_ok_bad_message', calls(1) + START + answer(1, payload=b'\x0a\xff\xff\xff\xff\x0f')
    yield 'status_in_headers_and_trailers', calls(1) + START + \
        frame(HEADERS, END_HEADERS, 1, RESPONSE_HEADERS + trailers('0')) + frame(DATA, 0, 1, grpc_message(GET_INFO)) + \
        frame(HEADERS, END_STREAM | END_HEADERS, 1, trailers('9', 'late'))
    # Answers without a grpc-status: the HTTP status, or the content-type, decides.
    yield 'http_503', calls(1) + START + frame(HEADERS, END_STREAM | END_HEADERS, 1, fields(
        [(':status', '503'), ('content-type', 'text/plain')]))
    yield 'http_404_body', calls(2) + START + frame(HEADERS, END_HEADERS, 1, fields(
        [(':status', '404'), ('content-type', 'text/html')])) + frame(DATA, END_STREAM, 1, b'<h1>not found</h1>') + \
        frame(HEADERS, END_STREAM | END_HEADERS, 3, fields([(':status', '429')]))
    yield 'http_200_not_grpc', calls(1) + START + frame(HEADERS, END_HEADERS, 1, fields(
        [(':status', '200'), ('content-type', 'application/json')])) + frame(DATA, END_STREAM, 1, b'{}')
    yield 'http_500_grpc_status', calls(1) + START + trailers_only(1, '14', 'overloaded', http='500')
    yield 'no_grpc_status', calls(1) + START + frame(HEADERS, END_HEADERS, 1, RESPONSE_HEADERS) + \
        frame(DATA, END_STREAM, 1, grpc_message(GET_INFO))
    yield 'informational_100', calls(1) + START + frame(HEADERS, END_HEADERS, 1, fields([(':status', '100')])) + ok
    # Framing of the message.
    yield 'compressed_flag', calls(1) + START + frame(HEADERS, END_HEADERS, 1, RESPONSE_HEADERS) + \
        frame(DATA, 0, 1, grpc_message(b'', flag=1)) + frame(HEADERS, END_STREAM | END_HEADERS, 1, trailers('0'))
    yield 'compressed_flag_payload', calls(1) + START + frame(HEADERS, END_HEADERS, 1, RESPONSE_HEADERS + fields(
        [('grpc-encoding', 'gzip')])) + frame(DATA, 0, 1, grpc_message(GET_INFO, flag=1)) + \
        frame(HEADERS, END_STREAM | END_HEADERS, 1, trailers('0'))
    yield 'length_says_more', calls(1) + START + frame(HEADERS, END_HEADERS, 1, RESPONSE_HEADERS) + \
        frame(DATA, 0, 1, grpc_message(GET_INFO, length=len(GET_INFO) + 10)) + \
        frame(HEADERS, END_STREAM | END_HEADERS, 1, trailers('0'))
    yield 'length_says_less', calls(1) + START + frame(HEADERS, END_HEADERS, 1, RESPONSE_HEADERS) + \
        frame(DATA, 0, 1, grpc_message(GET_INFO, length=3)) + \
        frame(HEADERS, END_STREAM | END_HEADERS, 1, trailers('0'))
    yield 'two_messages', calls(1) + START + frame(HEADERS, END_HEADERS, 1, RESPONSE_HEADERS) + \
        frame(DATA, 0, 1, grpc_message(GET_INFO) + grpc_message(GET_INFO)) + \
        frame(HEADERS, END_STREAM | END_HEADERS, 1, trailers('0'))
    yield 'prefix_cut', calls(1) + START + frame(HEADERS, END_HEADERS, 1, RESPONSE_HEADERS) + \
        frame(DATA, 0, 1, b'\0\0\0') + frame(HEADERS, END_STREAM | END_HEADERS, 1, trailers('0'))
    # Above max_message_bytes (4096): the client resets the stream.
    big = pb_bytes(1, 'v' * 5000)
    yield 'oversize', calls(2) + START + frame(HEADERS, END_HEADERS, 1, RESPONSE_HEADERS) + \
        frame(DATA, 0, 1, grpc_message(big)[:3000]) + frame(DATA, 0, 1, grpc_message(big)[3000:]) + \
        frame(HEADERS, END_STREAM | END_HEADERS, 1, trailers('0')) + answer(3)
    yield 'oversize_one_frame', calls(1) + START + frame(HEADERS, END_HEADERS, 1, RESPONSE_HEADERS) + \
        frame(DATA, 0, 1, grpc_message(big)) + frame(HEADERS, END_STREAM | END_HEADERS, 1, trailers('0'))
    # Streams reset, connections going away.
    yield 'rst_refused', calls(1) + START + rst(1, REFUSED_STREAM)
    yield 'rst_refused_then_ok', calls(2) + START + rst(1, REFUSED_STREAM) + answer(3) + answer(5)
    yield 'rst_refused_after_headers', calls(1) + START + frame(HEADERS, END_HEADERS, 1, RESPONSE_HEADERS) + \
        rst(1, REFUSED_STREAM)
    yield 'rst_cancel', calls(1) + START + rst(1, CANCEL)
    yield 'rst_codes', calls(3) + START + rst(1, NO_ERROR) + rst(3, ENHANCE_YOUR_CALM) + rst(5, 0xc)
    yield 'rst_after_data', calls(1) + START + frame(HEADERS, END_HEADERS, 1, RESPONSE_HEADERS) + \
        frame(DATA, 0, 1, grpc_message(GET_INFO)) + rst(1, INTERNAL_ERROR)
    yield 'goaway_0', calls(1) + START + goaway(0)
    yield 'goaway_0_debug', calls(3, (D300MS, D300MS, D300MS)) + START + goaway(0, ENHANCE_YOUR_CALM, b'too_many_pings')
    yield 'goaway_after_answer', calls(3) + START + ok + goaway(1) + answer(3)
    yield 'goaway_then_answer', calls(2) + START + goaway(3) + answer(1) + answer(3)
    yield 'goaway_twice', calls(3) + START + goaway(5) + answer(1) + goaway(1, PROTOCOL_ERROR) + answer(3)
    yield 'goaway_first', calls(1) + goaway(0) + START
    # Control frames.
    yield 'ping', calls(1) + START + frame(PING, 0, 0, b'12345678') + ok + frame(PING, ACK, 0, b'87654321')
    yield 'window_update', calls(1) + START + frame(WINDOW_UPDATE, 0, 0, struct.pack('>I', 1 << 20)) + \
        frame(WINDOW_UPDATE, 0, 1, struct.pack('>I', 4096)) + ok
    yield 'window_update_zero', calls(1) + START + frame(WINDOW_UPDATE, 0, 1, struct.pack('>I', 0)) + ok
    yield 'settings_midway', calls(2) + START + answer(1) + settings((0x4, 0), (0x1, 0)) + answer(3)
    yield 'settings_small_window', calls(1) + settings((0x4, 1)) + frame(SETTINGS, ACK, 0) + ok + \
        frame(WINDOW_UPDATE, 0, 1, struct.pack('>I', 100)) + frame(WINDOW_UPDATE, 0, 0, struct.pack('>I', 100))
    yield 'push_promise', calls(1) + START + frame(PUSH_PROMISE, END_HEADERS, 1, struct.pack('>I', 2) + fields(
        [(':method', 'GET'), (':path', '/'), (':scheme', 'http'), (':authority', 'x')])) + ok
    # Protocol errors, garbage and truncation.
    yield 'no_settings', calls(1) + ok
    yield 'unknown_stream', calls(1) + START + answer(7) + answer(1)
    yield 'stream_0_headers', calls(1) + START + frame(HEADERS, END_STREAM | END_HEADERS, 0, RESPONSE_HEADERS)
    yield 'bad_hpack_index', calls(1) + START + frame(HEADERS, END_HEADERS, 1, indexed(120))
    yield 'uppercase_name', calls(1) + START + trailers_only(1, '0', None, [('X-Upper', '1')])
    yield 'settings_bad_len', calls(1) + frame(SETTINGS, 0, 0, b'\0\0\0')
    yield 'garbage', calls(2) + b'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n' + bytes(range(256))
    yield 'truncated_frame', calls(1) + (START + ok)[:len(START) + 40]
    yield 'truncated_header', calls(1) + START + b'\0\0\x10\x01'
    yield 'empty', calls(1)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                             'corpus', 'gw_ucl')
    write_seeds(seeds(), out)


if __name__ == '__main__':
    main()
