"""Reads a serialized google.protobuf.FileDescriptorSet (protoc
--include_imports --descriptor_set_out) with the standard library alone
(the build's python3 need not have the protobuf package): a small wire
decoder and the few descriptor fields the gateway's generators use,
google.api.http rules (MethodOptions extension 72295728) included."""

HTTP_RULE_EXTENSION = 72295728

# FieldDescriptorProto.Type
TYPE_NAMES = {1: 'double', 2: 'float', 3: 'int64', 4: 'uint64', 5: 'int32', 6: 'fixed64',
              7: 'fixed32', 8: 'bool', 9: 'string', 10: 'group', 11: 'message', 12: 'bytes',
              13: 'uint32', 14: 'enum', 15: 'sfixed32', 16: 'sfixed64', 17: 'sint32', 18: 'sint64'}
LABEL_REPEATED = 3


def _varint(buf, i):
    v = 0
    shift = 0
    while True:
        if i >= len(buf):
            raise ValueError('truncated varint')
        b = buf[i]
        i += 1
        v |= (b & 0x7f) << shift
        if not b & 0x80:
            return v, i
        shift += 7
        if shift > 63:
            raise ValueError('varint too long')


def fields(buf):
    """Yields (number, wire_type, value) of one message's bytes; value is an
    int for varints/fixed, bytes for length-delimited."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _varint(buf, i)
        elif wt == 1:
            v = int.from_bytes(buf[i:i + 8], 'little')
            i += 8
        elif wt == 2:
            n, i = _varint(buf, i)
            v = bytes(buf[i:i + n])
            if len(v) != n:
                raise ValueError('truncated field')
            i += n
        elif wt == 5:
            v = int.from_bytes(buf[i:i + 4], 'little')
            i += 4
        else:
            raise ValueError('unsupported wire type %d' % wt)
        yield num, wt, v


def _str(b):
    return b.decode('utf-8')


def parse_http_rule(buf):
    rule = {'method': None, 'path': None, 'body': '', 'response_body': '', 'additional_bindings': []}
    for num, _, v in fields(buf):
        if num in (2, 3, 4, 5, 6):
            rule['method'] = {2: 'GET', 3: 'PUT', 4: 'POST', 5: 'DELETE', 6: 'PATCH'}[num]
            rule['path'] = _str(v)
        elif num == 8:
            kind = path = ''
            for n2, _, v2 in fields(v):
                if n2 == 1:
                    kind = _str(v2)
                elif n2 == 2:
                    path = _str(v2)
            rule['method'] = kind.upper()
            rule['path'] = path
        elif num == 7:
            rule['body'] = _str(v)
        elif num == 12:
            rule['response_body'] = _str(v)
        elif num == 11:
            rule['additional_bindings'].append(parse_http_rule(v))
    return rule


def _field(buf):
    f = {'name': '', 'number': 0, 'label': 1, 'type': 0, 'type_name': '', 'json_name': '',
         'oneof_index': None, 'proto3_optional': False}
    for num, _, v in fields(buf):
        if num == 1:
            f['name'] = _str(v)
        elif num == 3:
            f['number'] = v
        elif num == 4:
            f['label'] = v
        elif num == 5:
            f['type'] = v
        elif num == 6:
            f['type_name'] = _str(v).lstrip('.')
        elif num == 9:
            f['oneof_index'] = v
        elif num == 10:
            f['json_name'] = _str(v)
        elif num == 17:
            f['proto3_optional'] = bool(v)
    return f


def _enum(buf, prefix):
    e = {'name': '', 'values': []}
    for num, _, v in fields(buf):
        if num == 1:
            e['name'] = _str(v)
        elif num == 2:
            val = {'name': '', 'number': 0}
            for n2, _, v2 in fields(v):
                if n2 == 1:
                    val['name'] = _str(v2)
                elif n2 == 2:
                    val['number'] = v2 - (1 << 64) if v2 >= 1 << 63 else v2
            e['values'].append(val)
    e['full_name'] = prefix + e['name']
    return e


def _message(buf, prefix, out_msgs, out_enums):
    m = {'name': '', 'fields': [], 'map_entry': False, 'oneofs': []}
    nested = []
    for num, _, v in fields(buf):
        if num == 1:
            m['name'] = _str(v)
        elif num == 2:
            m['fields'].append(_field(v))
        elif num == 3:
            nested.append(v)
        elif num == 4:
            out_enums.append(('enum', v))
        elif num == 7:
            for n2, _, v2 in fields(v):
                if n2 == 7:
                    m['map_entry'] = bool(v2)
        elif num == 8:
            for n2, _, v2 in fields(v):
                if n2 == 1:
                    m['oneofs'].append(_str(v2))
    m['full_name'] = prefix + m['name']
    pending = [x for x in out_enums if isinstance(x, tuple)]
    for p in pending:
        out_enums.remove(p)
        out_enums.append(_enum(p[1], m['full_name'] + '.'))
    out_msgs[m['full_name']] = m
    for n in nested:
        _message(n, m['full_name'] + '.', out_msgs, out_enums)
    return m


def load(path):
    """Returns {'files': [...], 'messages': {full_name: msg}, 'enums': {full_name: enum}}."""
    data = open(path, 'rb').read()
    files, messages, enums = [], {}, {}
    for num, _, fbytes in fields(data):
        if num != 1:
            continue
        f = {'name': '', 'package': '', 'services': [], 'messages': [], 'enums': []}
        raw_msgs, raw_enums, raw_svcs = [], [], []
        for n, _, v in fields(fbytes):
            if n == 1:
                f['name'] = _str(v)
            elif n == 2:
                f['package'] = _str(v)
            elif n == 4:
                raw_msgs.append(v)
            elif n == 5:
                raw_enums.append(v)
            elif n == 6:
                raw_svcs.append(v)
        prefix = f['package'] + '.' if f['package'] else ''
        file_enums = []
        for v in raw_enums:
            file_enums.append(_enum(v, prefix))
        for v in raw_msgs:
            f['messages'].append(_message(v, prefix, messages, file_enums)['full_name'])
        for e in file_enums:
            enums[e['full_name']] = e
        for v in raw_svcs:
            svc = {'name': '', 'methods': []}
            for n, _, v2 in fields(v):
                if n == 1:
                    svc['name'] = _str(v2)
                elif n == 2:
                    meth = {'name': '', 'input': '', 'output': '', 'http': None,
                            'client_streaming': False, 'server_streaming': False}
                    for n3, _, v3 in fields(v2):
                        if n3 == 1:
                            meth['name'] = _str(v3)
                        elif n3 == 2:
                            meth['input'] = _str(v3).lstrip('.')
                        elif n3 == 3:
                            meth['output'] = _str(v3).lstrip('.')
                        elif n3 == 4:
                            for n4, _, v4 in fields(v3):
                                if n4 == HTTP_RULE_EXTENSION:
                                    meth['http'] = parse_http_rule(v4)
                        elif n3 == 5:
                            meth['client_streaming'] = bool(v3)
                        elif n3 == 6:
                            meth['server_streaming'] = bool(v3)
                    svc['methods'].append(meth)
            svc['full_name'] = prefix + svc['name']
            f['services'].append(svc)
        files.append(f)
    return {'files': files, 'messages': messages, 'enums': enums}


def camel_to_lower(name):
    """protoc-c's CamelToLower: "SystemService" -> "system_service"."""
    out = ''
    for i, ch in enumerate(name):
        if ch.isupper():
            if i:
                out += '_'
            out += ch.lower()
        else:
            out += ch
    return out


def c_prefix(full_name):
    """protoc-c's FullNameToLower: "coffer.v1.SystemService" -> "coffer__v1__system_service"."""
    return '__'.join(camel_to_lower(p) for p in full_name.split('.') if p)


def json_name(name):
    out, up = '', False
    for ch in name:
        if ch == '_':
            up = True
        elif up:
            out += ch.upper()
            up = False
        else:
            out += ch
    return out
