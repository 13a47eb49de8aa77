/**
 * gRPC server reflection (v1 and v1alpha), serving the exact FileDescriptorProtos that
 * protoc compiled from proto/ (proto/descriptors.binpb, `npm run proto`), comments
 * included, so `grpcurl describe` shows the contract's documentation.
 *
 * Why not @grpc/reflection: 1.0.4 rebuilds descriptors from proto-loader's output, which
 * loses comments, dependency lists and map-entry names, so strict clients reject them
 * as soon as a file imports another or has a map field (grpc/grpc-node#2958, #3034).
 */
import * as grpc from '@grpc/grpc-js';
import descriptor from 'protobufjs/ext/descriptor';
import { logger } from './log';

const log = logger('reflection');

interface FileEntry {
  name: string;
  bytes: Buffer;
  deps: string[];
}

export class DescriptorIndex {
  readonly files = new Map<string, FileEntry>();
  private readonly symbols = new Map<string, string>(); // fully qualified symbol -> file name
  readonly services: string[] = [];

  constructor(set: Buffer) {
    for (const bytes of splitFileDescriptorSet(set)) {
      const fdp = (descriptor as any).FileDescriptorProto.decode(bytes);
      const name = fdp.name as string;
      this.files.set(name, { name, bytes, deps: fdp.dependency ?? [] });
      const pkg = fdp.package ? `${fdp.package}.` : '';
      const addMessages = (prefix: string, msgs: any[]) => {
        for (const m of msgs ?? []) {
          const full = `${prefix}${m.name}`;
          this.symbols.set(full, name);
          for (const f of m.field ?? []) this.symbols.set(`${full}.${f.name}`, name);
          for (const e of m.enumType ?? []) this.symbols.set(`${full}.${e.name}`, name);
          addMessages(`${full}.`, m.nestedType);
        }
      };
      addMessages(pkg, fdp.messageType);
      for (const e of fdp.enumType ?? []) this.symbols.set(`${pkg}${e.name}`, name);
      for (const s of fdp.service ?? []) {
        const full = `${pkg}${s.name}`;
        this.symbols.set(full, name);
        this.services.push(full);
        for (const m of s.method ?? []) this.symbols.set(`${full}.${m.name}`, name);
      }
    }
  }

  fileOf(symbol: string): string | undefined {
    return this.symbols.get(symbol.replace(/^\./, ''));
  }

  /** The file and everything it imports, each once, the file first. */
  withDeps(fileName: string): Buffer[] {
    const out: Buffer[] = [];
    const seen = new Set<string>();
    const visit = (n: string) => {
      if (seen.has(n)) return;
      seen.add(n);
      const f = this.files.get(n);
      if (!f) return;
      out.push(f.bytes);
      f.deps.forEach(visit);
    };
    visit(fileName);
    return out;
  }
}

/** A FileDescriptorSet is `repeated FileDescriptorProto file = 1`: split it without re-encoding. */
export function splitFileDescriptorSet(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let i = 0;
  const varint = () => {
    let v = 0;
    let shift = 0;
    for (;;) {
      const b = buf[i++];
      v += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return v;
      shift += 7;
    }
  };
  while (i < buf.length) {
    const tag = varint();
    if (tag !== 0x0a) throw new Error(`unexpected field tag ${tag} in a FileDescriptorSet`);
    const len = varint();
    out.push(buf.subarray(i, i + len));
    i += len;
  }
  return out;
}

/** Adds grpc.reflection.v1 and v1alpha ServerReflection to a server. */
export function addReflection(server: grpc.Server, index: DescriptorIndex, reflectionPackages: { v1: any; v1alpha: any }, servedServices: string[]): void {
  const handler = (call: grpc.ServerDuplexStream<any, any>) => {
    call.on('data', (req: any) => {
      try {
        call.write(answer(index, req, servedServices));
      } catch (err) {
        log.error('reflection request failed', { error: err });
        call.write({ valid_host: req?.host ?? '', original_request: req, error_response: { error_code: grpc.status.INTERNAL, error_message: String((err as Error)?.message ?? err) } });
      }
    });
    call.on('end', () => call.end());
    call.on('error', () => {});
  };
  server.addService(reflectionPackages.v1.ServerReflection.service, { ServerReflectionInfo: handler });
  server.addService(reflectionPackages.v1alpha.ServerReflection.service, { ServerReflectionInfo: handler });
}

function answer(index: DescriptorIndex, req: any, served: string[]): any {
  const base = { valid_host: req.host ?? '', original_request: req };
  const notFound = (what: string) => ({ ...base, error_response: { error_code: grpc.status.NOT_FOUND, error_message: what } });
  switch (req.message_request) {
    case 'list_services':
      return { ...base, list_services_response: { service: served.map((name) => ({ name })) } };
    case 'file_by_filename': {
      const f = req.file_by_filename as string;
      return index.files.has(f) ? { ...base, file_descriptor_response: { file_descriptor_proto: index.withDeps(f) } } : notFound(`no file named ${f}`);
    }
    case 'file_containing_symbol': {
      const f = index.fileOf(req.file_containing_symbol);
      return f ? { ...base, file_descriptor_response: { file_descriptor_proto: index.withDeps(f) } } : notFound(`no symbol named ${req.file_containing_symbol}`);
    }
    case 'file_containing_extension':
      return notFound('this server defines no extensions');
    case 'all_extension_numbers_of_type': {
      const t = req.all_extension_numbers_of_type as string;
      return index.fileOf(t) ? { ...base, all_extension_numbers_response: { base_type_name: t, extension_number: [] } } : notFound(`no type named ${t}`);
    }
    default:
      return { ...base, error_response: { error_code: grpc.status.INVALID_ARGUMENT, error_message: 'empty reflection request' } };
  }
}
