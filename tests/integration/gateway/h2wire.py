"""HTTP/2 frames (RFC 9113) and HPACK fields without Huffman coding
(RFC 7541), written by hand for the tests and the fuzz seeds that talk to
coffer-gateway's h2c front below what curl and h2load let one do."""
import os
import struct

PREFACE = b'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS, PADDED, PRIO = 0x1, 0x1, 0x4, 0x8, 0x20


def frame(ftype, flags, stream, payload=b''):
    return struct.pack('>I', len(payload))[1:] + bytes([ftype, flags]) + struct.pack('>I', stream) + payload


def hpack_int(value, prefix_bits, first=0):
    """An HPACK integer (5.1) with the pattern bits of its first byte."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = bytearray([first | limit])
    value -= limit
    while value >= 128:
        out.append((value & 0x7f) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def write_seeds(seeds, out):
    """Writes each (name, bytes) of seeds as a file in directory out (a
    fuzz target's seed corpus), creating it when needed."""
    os.makedirs(out, exist_ok=True)
    for name, data in seeds:
        with open(os.path.join(out, name), 'wb') as f:
            f.write(data)


def hpack_read_int(buf, pos, prefix_bits):
    """Decodes an HPACK integer (5.1) at buf[pos]: (value, next position)."""
    limit = (1 << prefix_bits) - 1
    v = buf[pos] & limit
    pos += 1
    if v < limit:
        return v, pos
    m = 0
    while True:
        b = buf[pos]
        pos += 1
        v += (b & 0x7f) << m
        m += 7
        if not b & 0x80:
            return v, pos


def hpack_str(s):
    s = s.encode() if isinstance(s, str) else s
    return hpack_int(len(s), 7) + s


def literal(name, value, index=False):
    """A literal field with a new name: without indexing (6.2.2), or with
    incremental indexing (6.2.1, enters the dynamic table)."""
    return (b'\x40' if index else b'\x00') + hpack_str(name) + hpack_str(value)


def block(fields):
    return b''.join(literal(k, v) for k, v in fields)


def settings(*pairs):
    return frame(SETTINGS, 0, 0, b''.join(struct.pack('>HI', k, v) for k, v in pairs))
