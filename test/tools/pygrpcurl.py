#!/usr/bin/python3
"""A strict, independent gRPC reflection client that mimics grpcurl (Debian python3-grpcio/-protobuf).

  pygrpcurl.py [flags] HOST:PORT list [SERVICE]
  pygrpcurl.py [flags] HOST:PORT describe [SYMBOL]
  pygrpcurl.py [flags] [-d JSON] HOST:PORT SERVICE/METHOD      (unary and server streaming)
  flags: -plaintext -d JSON|@ -H 'name: value' -max-time S -connect-timeout S -emit-defaults
         -cacert F -cert F -key F -servername NAME

Strict: every FileDescriptorProto the server reflects goes into a fresh DescriptorPool (pool.Add and
a lookup that forces the build), its dependencies fetched by file name. A descriptor grpcurl and
protoc would reject (bad map entry names, missing imports, unresolved types) fails here too.
Debian's grpcio has no grpc_reflection module: the reflection messages are built below from
descriptor_pb2. On an RPC error: "ERROR:\n  Code: NotFound\n  Message: ..." on stderr, exit 1.
"""
import argparse
import functools
import signal
import sys

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory

F = descriptor_pb2.FieldDescriptorProto


def _message_class(pool, full_name):
    desc = pool.FindMessageTypeByName(full_name)
    if hasattr(message_factory, 'GetMessageClass'):  # protobuf >= 4.22
        return message_factory.GetMessageClass(desc)
    return message_factory.MessageFactory(pool).GetPrototype(desc)


@functools.lru_cache(maxsize=None)
def reflection_messages(version):
    """(request class, response class) of grpc.reflection.<version>, built without generated code."""
    pkg = 'grpc.reflection.' + version
    fdp = descriptor_pb2.FileDescriptorProto(name='grpc/reflection/%s/reflection.proto' % version,
                                             package=pkg, syntax='proto3')

    def msg(name, fields, oneof=None):
        m = fdp.message_type.add(name=name)
        if oneof:
            m.oneof_decl.add(name=oneof)
        for fname, num, ftype, tname, repeated, in_oneof in fields:
            f = m.field.add(name=fname, number=num, type=ftype,
                            label=F.LABEL_REPEATED if repeated else F.LABEL_OPTIONAL)
            if tname:
                f.type_name = '.%s.%s' % (pkg, tname)
            if in_oneof:
                f.oneof_index = 0
    S, B, I, M = F.TYPE_STRING, F.TYPE_BYTES, F.TYPE_INT32, F.TYPE_MESSAGE
    msg('ExtensionRequest', [('containing_type', 1, S, None, False, False), ('extension_number', 2, I, None, False, False)])
    msg('ServerReflectionRequest', [
        ('host', 1, S, None, False, False), ('file_by_filename', 3, S, None, False, True),
        ('file_containing_symbol', 4, S, None, False, True),
        ('file_containing_extension', 5, M, 'ExtensionRequest', False, True),
        ('all_extension_numbers_of_type', 6, S, None, False, True), ('list_services', 7, S, None, False, True)],
        'message_request')
    msg('FileDescriptorResponse', [('file_descriptor_proto', 1, B, None, True, False)])
    msg('ExtensionNumberResponse', [('base_type_name', 1, S, None, False, False), ('extension_number', 2, I, None, True, False)])
    msg('ServiceResponse', [('name', 1, S, None, False, False)])
    msg('ListServiceResponse', [('service', 1, M, 'ServiceResponse', True, False)])
    msg('ErrorResponse', [('error_code', 1, I, None, False, False), ('error_message', 2, S, None, False, False)])
    msg('ServerReflectionResponse', [
        ('valid_host', 1, S, None, False, False), ('original_request', 2, M, 'ServerReflectionRequest', False, False),
        ('file_descriptor_response', 4, M, 'FileDescriptorResponse', False, True),
        ('all_extension_numbers_response', 5, M, 'ExtensionNumberResponse', False, True),
        ('list_services_response', 6, M, 'ListServiceResponse', False, True),
        ('error_response', 7, M, 'ErrorResponse', False, True)], 'message_response')
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return _message_class(pool, pkg + '.ServerReflectionRequest'), _message_class(pool, pkg + '.ServerReflectionResponse')


class Fatal(Exception):
    pass


class RpcFailure(Exception):
    def __init__(self, code_name, message):
        super().__init__(message)
        self.code_name, self.message = code_name, message


def go_code_name(code):
    """grpcurl prints Go's code names: NOT_FOUND -> NotFound, OK -> OK."""
    special = {'OK': 'OK', 'CANCELLED': 'Canceled'}
    return special.get(code) or ''.join(p.capitalize() for p in code.split('_'))


CODE_BY_NUMBER = {c.value[0]: c.name for c in grpc.StatusCode}


class Reflector:
    """Asks the server's reflection service (v1, else v1alpha) and loads its files into a strict pool."""

    def __init__(self, channel, metadata, timeout):
        self.channel, self.metadata, self.timeout = channel, metadata, timeout
        self.versions = ['v1', 'v1alpha']
        self.pool = descriptor_pool.DescriptorPool()
        self.protos = {}  # file name -> FileDescriptorProto (as reflected), also for comments

    def ask(self, **field):
        while True:
            version = self.versions[0]
            req_cls, resp_cls = reflection_messages(version)
            call = self.channel.stream_stream('/grpc.reflection.%s.ServerReflection/ServerReflectionInfo' % version,
                                              request_serializer=req_cls.SerializeToString,
                                              response_deserializer=resp_cls.FromString)
            try:
                resp = next(iter(call(iter([req_cls(**field)]), metadata=self.metadata, timeout=self.timeout)))
            except grpc.RpcError as e:
                if e.code() == grpc.StatusCode.UNIMPLEMENTED and len(self.versions) > 1:
                    self.versions.pop(0)
                    continue
                raise
            if resp.WhichOneof('message_response') == 'error_response':
                err = resp.error_response
                raise RpcFailure(go_code_name(CODE_BY_NUMBER.get(err.error_code, 'UNKNOWN')), err.error_message)
            return resp

    def services(self):
        return sorted(s.name for s in self.ask(list_services='*').list_services_response.service)

    def _take(self, resp):
        for raw in resp.file_descriptor_response.file_descriptor_proto:
            fdp = descriptor_pb2.FileDescriptorProto.FromString(raw)
            self.protos.setdefault(fdp.name, fdp)

    def _load(self, name, chain=()):
        try:
            self.pool.FindFileByName(name)
            return
        except KeyError:
            pass
        if name in chain:
            raise Fatal('import cycle: %s' % ' -> '.join(chain + (name,)))
        if name not in self.protos:
            try:
                self._take(self.ask(file_by_filename=name))
            except RpcFailure:
                if not name.startswith('google/protobuf/'):
                    raise
            if name not in self.protos:  # well-known types the server does not serve, as grpcurl does
                self.protos[name] = builtin_file(name, chain)
        fdp = self.protos[name]
        for dep in fdp.dependency:
            self._load(dep, chain + (name,))
        try:
            self.pool.Add(fdp)
            self.pool.FindFileByName(name)  # the pure-python pool builds lazily: force it
        except Exception as e:  # TypeError from the C++ pool, others from the python one
            raise Fatal('server sent an invalid descriptor for %s: %s' % (name, e))

    def load_symbol(self, symbol):
        try:
            resp = self.ask(file_containing_symbol=symbol)
        except RpcFailure as e:
            raise Fatal('Failed to resolve symbol "%s": %s' % (symbol, e.message))
        self._take(resp)
        first = descriptor_pb2.FileDescriptorProto.FromString(resp.file_descriptor_response.file_descriptor_proto[0])
        self._load(first.name)
        return first.name


def builtin_file(name, chain):
    import importlib
    try:
        mod = importlib.import_module(name[:-len('.proto')].replace('/', '.') + '_pb2')
    except ImportError:
        raise Fatal('missing dependency %s (imported by %s): the server does not serve it' % (name, chain[-1] if chain else '?'))
    fdp = descriptor_pb2.FileDescriptorProto()
    mod.DESCRIPTOR.CopyToProto(fdp)
    return fdp


# ------------------------------------------------------------------ describe: a grpcurl-like proto text
# Layout and comments come from the reflected FileDescriptorProto (source_code_info paths); type
# names from the pool's linked descriptors, fully qualified as grpcurl prints them.
SCALAR = {getattr(F, n): n[5:].lower() for n in dir(F) if n.startswith('TYPE_')}


def comments(fdp, path, indent):
    for loc in fdp.source_code_info.location:
        if tuple(loc.path) == tuple(path) and loc.leading_comments:
            return ''.join('%s//%s\n' % (indent, l) for l in loc.leading_comments.rstrip('\n').split('\n'))
    return ''


def type_of(fd):
    if fd.message_type is not None:
        mt = fd.message_type
        if mt.GetOptions().map_entry:
            return 'map<%s, %s>' % (type_of(mt.fields_by_name['key']), type_of(mt.fields_by_name['value']))
        return '.' + mt.full_name
    if fd.enum_type is not None:
        return '.' + fd.enum_type.full_name
    return SCALAR[fd.type]


def render_field(fdp, f, fd, path, ind):
    t = type_of(fd)
    label = ''
    if f.label == F.LABEL_REPEATED and not t.startswith('map<'):
        label = 'repeated '
    elif f.label == F.LABEL_REQUIRED:
        label = 'required '
    elif f.proto3_optional or (fdp.syntax != 'proto3' and not f.HasField('oneof_index')):
        label = 'optional '
    return '%s%s%s%s %s = %d;\n' % (comments(fdp, path, ind), ind, label, t, f.name, f.number)


def render_enum(fdp, e, path, ind):
    out = '%s%senum %s {\n' % (comments(fdp, path, ind), ind, e.name)
    for i, v in enumerate(e.value):
        out += '%s%s  %s = %d;\n' % (comments(fdp, path + [2, i], ind + '  '), ind, v.name, v.number)
    return out + ind + '}\n'


def render_message(fdp, m, desc, path, ind=''):
    out = '%s%smessage %s {\n' % (comments(fdp, path, ind), ind, m.name)
    done = set()
    for i, f in enumerate(m.field):
        if f.HasField('oneof_index') and not f.proto3_optional:
            o = f.oneof_index
            if o in done:
                continue
            done.add(o)
            out += '%s%s  oneof %s {\n' % (comments(fdp, path + [8, o], ind + '  '), ind, m.oneof_decl[o].name)
            for j, g in enumerate(m.field):
                if g.HasField('oneof_index') and g.oneof_index == o and not g.proto3_optional:
                    out += render_field(fdp, g, desc.fields_by_name[g.name], path + [2, j], ind + '    ')
            out += ind + '  }\n'
        else:
            out += render_field(fdp, f, desc.fields_by_name[f.name], path + [2, i], ind + '  ')
    for i, n in enumerate(m.nested_type):
        if not n.options.map_entry:
            out += render_message(fdp, n, desc.nested_types_by_name[n.name], path + [3, i], ind + '  ')
    for i, e in enumerate(m.enum_type):
        out += render_enum(fdp, e, path + [4, i], ind + '  ')
    return out + ind + '}\n'


def render_method(fdp, md, path, ind):
    s = lambda flag: 'stream ' if flag else ''
    return '%s%srpc %s ( %s.%s ) returns ( %s.%s );\n' % (
        comments(fdp, path, ind), ind, md.name, s(md.client_streaming), md.input_type.full_name,
        s(md.server_streaming), md.output_type.full_name)


def describe(pool, fdp, symbol):
    """Finds symbol in fdp by walking its protos (the walk gives the source-info paths for comments)."""
    pkg = fdp.package + '.' if fdp.package else ''
    for i, svc in enumerate(fdp.service):
        sd = pool.FindServiceByName(pkg + svc.name)
        if symbol == sd.full_name:
            body = ''.join(render_method(fdp, sd.methods_by_name[m.name], [6, i, 2, j], '  ') for j, m in enumerate(svc.method))
            return '%s is a service:\n%sservice %s {\n%s}' % (symbol, comments(fdp, [6, i], ''), svc.name, body)
        for j, m in enumerate(svc.method):
            if symbol == sd.full_name + '.' + m.name:
                return '%s is a method:\n%s' % (symbol, render_method(fdp, sd.methods_by_name[m.name], [6, i, 2, j], '').rstrip('\n'))

    def walk(msgs, enums, prefix, path):
        for i, e in enumerate(enums):
            if symbol == prefix + e.name:
                return '%s is an enum:\n%s' % (symbol, render_enum(fdp, e, path + [4 if path else 5, i], '').rstrip('\n'))
        for i, m in enumerate(msgs):
            p = path + [3 if path else 4, i]
            desc = pool.FindMessageTypeByName(prefix + m.name)
            if symbol == desc.full_name:
                return '%s is a message:\n%s' % (symbol, render_message(fdp, m, desc, p).rstrip('\n'))
            for j, f in enumerate(m.field):
                if symbol == desc.full_name + '.' + f.name:
                    return '%s is a field:\n%s' % (symbol, render_field(fdp, f, desc.fields_by_name[f.name], p + [2, j], '').rstrip('\n'))
            found = walk(m.nested_type, m.enum_type, desc.full_name + '.', p)
            if found:
                return found
        return None
    return walk(fdp.message_type, fdp.enum_type, pkg, [])


# ------------------------------------------------------------------ main
def parse_args(argv):
    ap = argparse.ArgumentParser(prog='pygrpcurl.py', allow_abbrev=False, description=__doc__.split('\n')[0])
    ap.add_argument('-plaintext', action='store_true')
    ap.add_argument('-d', dest='data', default=None)
    ap.add_argument('-H', dest='headers', action='append', default=[])
    ap.add_argument('-max-time', dest='max_time', type=float, default=None)
    ap.add_argument('-connect-timeout', dest='connect_timeout', type=float, default=10.0)
    ap.add_argument('-emit-defaults', dest='emit_defaults', action='store_true')
    for flag in ('-cacert', '-cert', '-key', '-servername'):
        ap.add_argument(flag)
    ap.add_argument('address')
    ap.add_argument('rest', nargs='+', help='list [SERVICE] | describe [SYMBOL] | SERVICE/METHOD')
    return ap.parse_args(argv)


def make_channel(a):
    if a.plaintext:
        return grpc.insecure_channel(a.address)
    read = lambda p: open(p, 'rb').read() if p else None
    creds = grpc.ssl_channel_credentials(read(a.cacert), read(a.key), read(a.cert))
    opts = [('grpc.ssl_target_name_override', a.servername)] if a.servername else []
    return grpc.secure_channel(a.address, creds, options=opts)


def to_json(msg, pool, emit_defaults):
    kw = dict(preserving_proto_field_name=True, descriptor_pool=pool)
    try:
        return json_format.MessageToJson(msg, including_default_value_fields=emit_defaults, **kw)
    except TypeError:  # protobuf >= 5.26 renamed the flag
        return json_format.MessageToJson(msg, always_print_fields_with_no_presence=emit_defaults, **kw)


def invoke(refl, channel, a, target, metadata):
    svc, sep, meth = target.rpartition('/') if '/' in target else target.rpartition('.')
    if not sep or not svc or not meth:
        raise Fatal('bad method name %r: want SERVICE/METHOD' % target)
    refl.load_symbol(svc)
    try:
        method = refl.pool.FindServiceByName(svc).methods_by_name[meth]
    except KeyError:
        raise Fatal('Failed to resolve symbol "%s": service %s has no method %s' % (target, svc, meth))
    if method.client_streaming:
        raise Fatal('%s is client streaming: not supported by pygrpcurl' % target)
    req_cls = _message_class(refl.pool, method.input_type.full_name)
    resp_cls = _message_class(refl.pool, method.output_type.full_name)
    text = a.data if a.data is not None else '{}'
    if text == '@':
        text = sys.stdin.read()
    req = req_cls()
    try:
        json_format.Parse(text or '{}', req, descriptor_pool=refl.pool)
    except json_format.ParseError as e:
        raise Fatal('Error invoking method "%s": error getting request data: %s' % (target, e))
    path = '/%s/%s' % (svc, meth)
    kw = dict(request_serializer=req_cls.SerializeToString, response_deserializer=resp_cls.FromString)
    if method.server_streaming:
        responses = channel.unary_stream(path, **kw)(req, metadata=metadata, timeout=a.max_time)
    else:
        responses = [channel.unary_unary(path, **kw)(req, metadata=metadata, timeout=a.max_time)]
    for r in responses:
        print(to_json(r, refl.pool, a.emit_defaults))
        sys.stdout.flush()


def main(argv):
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `| head` ends us quietly, as it does grpcurl
    a = parse_args(argv)
    metadata = []
    for h in a.headers:
        k, _, v = h.partition(':')
        metadata.append((k.strip().lower(), v.strip()))
    channel = make_channel(a)
    try:
        grpc.channel_ready_future(channel).result(timeout=a.connect_timeout)
    except grpc.FutureTimeoutError:
        print('Failed to dial target host "%s": context deadline exceeded' % a.address, file=sys.stderr)
        return 1
    refl = Reflector(channel, metadata, a.max_time)
    cmd, args = a.rest[0], a.rest[1:]
    try:
        if cmd == 'list' and not args:
            print('\n'.join(refl.services()))
        elif cmd == 'list':
            refl.load_symbol(args[0])
            try:
                svc = refl.pool.FindServiceByName(args[0])
            except KeyError:
                raise Fatal('Service not found: %s' % args[0])
            print('\n'.join(sorted(m.full_name for m in svc.methods)))
        elif cmd == 'describe':
            for sym in args or refl.services():
                name = refl.load_symbol(sym)
                text = describe(refl.pool, refl.protos[name], sym)
                if text is None:
                    raise Fatal('Symbol not found: %s' % sym)
                print(text)
        else:
            invoke(refl, channel, a, cmd, metadata)
    except grpc.RpcError as e:
        print('ERROR:\n  Code: %s\n  Message: %s' % (go_code_name(e.code().name), e.details()), file=sys.stderr)
        return 1
    except RpcFailure as e:
        print('ERROR:\n  Code: %s\n  Message: %s' % (e.code_name, e.message), file=sys.stderr)
        return 1
    except Fatal as e:
        print(str(e), file=sys.stderr)
        return 1
    finally:
        channel.close()
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
