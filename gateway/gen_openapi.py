#!/usr/bin/env python3
"""Generates the gateway's OpenAPI 3.0 document from the google.api.http
annotations of the API's descriptor set (the same source as the routes):
one operation per binding (additional_bindings included), path and query
parameters, request bodies, responses, and component schemas written as
the proto3 JSON mapping writes messages (lowerCamelCase, 64-bit integers as
strings, enums by name, well-known types in their JSON forms). Errors are
google.rpc.Status."""
import argparse
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import protoset  # noqa: E402

SCALARS = {
    'double': {'type': 'number', 'format': 'double'},
    'float': {'type': 'number', 'format': 'float'},
    'int64': {'type': 'string', 'format': 'int64'},
    'uint64': {'type': 'string', 'format': 'uint64'},
    'sint64': {'type': 'string', 'format': 'int64'},
    'fixed64': {'type': 'string', 'format': 'uint64'},
    'sfixed64': {'type': 'string', 'format': 'int64'},
    'int32': {'type': 'integer', 'format': 'int32'},
    'sint32': {'type': 'integer', 'format': 'int32'},
    'sfixed32': {'type': 'integer', 'format': 'int32'},
    'uint32': {'type': 'integer', 'format': 'int64', 'minimum': 0},
    'fixed32': {'type': 'integer', 'format': 'int64', 'minimum': 0},
    'bool': {'type': 'boolean'},
    'string': {'type': 'string'},
    'bytes': {'type': 'string', 'format': 'byte'},
}
WKT = {
    'google.protobuf.Timestamp': {'type': 'string', 'format': 'date-time'},
    'google.protobuf.Duration': {'type': 'string', 'example': '1.5s'},
    'google.protobuf.FieldMask': {'type': 'string'},
    'google.protobuf.Empty': {'type': 'object'},
    'google.protobuf.Struct': {'type': 'object', 'additionalProperties': {}},
    'google.protobuf.Value': {},
    'google.protobuf.ListValue': {'type': 'array', 'items': {}},
    'google.protobuf.DoubleValue': {'type': 'number', 'format': 'double', 'nullable': True},
    'google.protobuf.FloatValue': {'type': 'number', 'format': 'float', 'nullable': True},
    'google.protobuf.Int64Value': {'type': 'string', 'format': 'int64', 'nullable': True},
    'google.protobuf.UInt64Value': {'type': 'string', 'format': 'uint64', 'nullable': True},
    'google.protobuf.Int32Value': {'type': 'integer', 'format': 'int32', 'nullable': True},
    'google.protobuf.UInt32Value': {'type': 'integer', 'format': 'int64', 'nullable': True},
    'google.protobuf.BoolValue': {'type': 'boolean', 'nullable': True},
    'google.protobuf.StringValue': {'type': 'string', 'nullable': True},
    'google.protobuf.BytesValue': {'type': 'string', 'format': 'byte', 'nullable': True},
    'google.protobuf.Any': {'type': 'object', 'properties': {'@type': {'type': 'string'}},
                            'additionalProperties': {}},
}
STATUS = {
    'type': 'object',
    'description': 'google.rpc.Status: the gRPC status code (google.rpc.Code), a message for '
                   'people, and details (google.rpc error details such as RetryInfo, with "@type").',
    'properties': {
        'code': {'type': 'integer', 'format': 'int32'},
        'message': {'type': 'string'},
        'details': {'type': 'array', 'items': WKT['google.protobuf.Any']},
    },
}


class Gen:
    def __init__(self, ps):
        self.ps = ps
        self.schemas = {}

    def ref(self, name):
        if name in WKT:
            return dict(WKT[name])
        if name not in self.schemas:
            self.schemas[name] = None  # placeholder against cycles
            self.schemas[name] = self.message_schema(name)
        return {'$ref': '#/components/schemas/' + name}

    def field_schema(self, f):
        t = protoset.TYPE_NAMES[f['type']]
        if t == 'message':
            msg = self.ps['messages'].get(f['type_name'])
            if msg and msg['map_entry'] and f['label'] == protoset.LABEL_REPEATED:
                vf = [x for x in msg['fields'] if x['number'] == 2][0]
                return {'type': 'object', 'additionalProperties': self.field_schema(vf)}
            s = self.ref(f['type_name'])
        elif t == 'enum':
            e = self.ps['enums'][f['type_name']]
            s = {'type': 'string', 'enum': [v['name'] for v in e['values']]}
        else:
            s = dict(SCALARS[t])
        if f['label'] == protoset.LABEL_REPEATED:
            return {'type': 'array', 'items': s}
        return s

    def message_schema(self, name):
        msg = self.ps['messages'][name]
        props = {}
        for f in msg['fields']:
            props[f['json_name'] or protoset.json_name(f['name'])] = self.field_schema(f)
        return {'type': 'object', 'properties': props}

    def field_by_path(self, msg_name, path):
        msg = self.ps['messages'][msg_name]
        f = None
        for part in path.split('.'):
            f = [x for x in msg['fields'] if x['name'] == part][0]
            if f['type'] == 11:
                msg = self.ps['messages'].get(f['type_name'], msg)
        return f

    def query_params(self, msg_name, bound, prefix='', depth=0):
        out = []
        if depth > 3:
            return out
        msg = self.ps['messages'][msg_name]
        for f in msg['fields']:
            path = prefix + f['name']
            if path in bound:
                continue
            t = protoset.TYPE_NAMES[f['type']]
            if t == 'message':
                sub = self.ps['messages'].get(f['type_name'])
                if f['type_name'] in WKT and f['type_name'] not in (
                        'google.protobuf.Struct', 'google.protobuf.ListValue', 'google.protobuf.Any',
                        'google.protobuf.Empty', 'google.protobuf.Value'):
                    out.append((path, self.field_schema(f)))
                elif sub and not sub['map_entry'] and f['label'] != protoset.LABEL_REPEATED:
                    out.extend(self.query_params(f['type_name'], bound, path + '.', depth + 1))
                continue
            out.append((path, self.field_schema(f)))
        return out


def openapi_path(tmpl):
    """'/v1/{name=projects/*}:run' -> ('/v1/{name}:run', ['name'])."""
    names = []

    def sub(m):
        names.append(m.group(1))
        return '{' + m.group(1) + '}'
    return re.sub(r'\{([A-Za-z0-9_.]+)(?:=[^}]*)?\}', sub, tmpl), names


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument('--out', required=True)
    ap.add_argument('--version', default='0.0.0')
    ap.add_argument('protoset')
    args = ap.parse_args()
    ps = protoset.load(args.protoset)
    g = Gen(ps)
    paths = {}
    tags = []
    for f in ps['files']:
        for svc in f['services']:
            for m in svc['methods']:
                if not m['http']:
                    continue
                rules = [m['http']] + m['http']['additional_bindings']
                for i, rule in enumerate(rules):
                    path, names = openapi_path(rule['path'])
                    op_id = '%s_%s' % (svc['name'], m['name']) + ('_%d' % i if i else '')
                    params = []
                    for n in names:
                        fd = g.field_by_path(m['input'], n)
                        params.append({'name': n, 'in': 'path', 'required': True, 'schema': g.field_schema(fd)})
                    body = rule['body']
                    op = {'operationId': op_id, 'tags': [svc['name']],
                          'summary': '%s.%s' % (svc['full_name'], m['name']),
                          'description': 'gRPC %s/%s' % (svc['full_name'], m['name'])}
                    if body == '*':
                        op['requestBody'] = {'required': False, 'content': {
                            'application/json': {'schema': g.ref(m['input'])}}}
                    elif body:
                        bf = g.field_by_path(m['input'], body)
                        if protoset.TYPE_NAMES[bf['type']] == 'bytes' and bf['label'] != protoset.LABEL_REPEATED:
                            op['requestBody'] = {'required': False, 'description': 'the raw body, passed on byte for byte',
                                                 'content': {'*/*': {'schema': {'type': 'string', 'format': 'binary'}}}}
                        else:
                            op['requestBody'] = {'required': False, 'content': {
                                'application/json': {'schema': g.field_schema(bf)}}}
                        for qp, schema in g.query_params(m['input'], set(names) | {body}):
                            if qp == 'headers':
                                continue
                            params.append({'name': qp, 'in': 'query', 'required': False, 'schema': schema})
                    else:
                        for qp, schema in g.query_params(m['input'], set(names)):
                            params.append({'name': qp, 'in': 'query', 'required': False, 'schema': schema})
                    if params:
                        op['parameters'] = params
                    if rule['response_body']:
                        rs = g.field_schema(g.field_by_path(m['output'], rule['response_body']))
                    else:
                        rs = g.ref(m['output'])
                    op['responses'] = {
                        '200': {'description': 'OK', 'content': {'application/json': {'schema': rs}}},
                        'default': {'description': 'An error: google.rpc.Status with the HTTP status '
                                                   'grpc-gateway uses for its code',
                                    'content': {'application/json': {
                                        'schema': {'$ref': '#/components/schemas/google.rpc.Status'}}}},
                    }
                    paths.setdefault(path, {})[rule['method'].lower()] = op
                    if svc['name'] not in [t['name'] for t in tags]:
                        tags.append({'name': svc['name'], 'description': 'gRPC service ' + svc['full_name']})
    schemas = {k: v for k, v in sorted(g.schemas.items())}
    schemas['google.rpc.Status'] = STATUS
    doc = {
        'openapi': '3.0.3',
        'info': {'title': 'Coffer API', 'version': args.version,
                 'description': 'HTTP/JSON mapping of the coffer.v1 gRPC API (coffer-gateway), generated '
                                'from the google.api.http annotations.'},
        'tags': tags,
        'paths': dict(sorted(paths.items())),
        'components': {
            'schemas': schemas,
            'securitySchemes': {'bearer': {'type': 'http', 'scheme': 'bearer',
                                           'description': 'client API key, or the operator admin token'}},
        },
        'security': [{'bearer': []}],
    }
    with open(args.out, 'w') as out:
        json.dump(doc, out, indent=1, sort_keys=False)
        out.write('\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
