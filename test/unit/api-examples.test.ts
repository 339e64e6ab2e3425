// The public API's JSDoc examples are code: every method of the façade and of the handles it
// returns has one, and each compiles against the real types (an option or method renamed in
// src/ fails here, not in a reader's editor). The examples are compiled as the bodies of async
// functions, beside declarations of the helpers they call (sendInvoice, writeReport, …).
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
const PUBLIC_FILES = ['src/types.ts', 'src/client.ts', 'src/error-brand.ts'];
/** The façade and the handles it returns: each of their methods needs an example. */
const DOCUMENTED = ['PgFence', 'Lease', 'AdvisoryLock', 'Reaper'];

const HELPERS = `
interface Db {
  jobs: { id: number; state: string };
  accounts: { id: number; balance: number };
}
declare const fence: PgFence;
declare const db: Kysely<Db>;
declare const lease: Lease;
declare const leases: Lease[];
declare const id: number;
declare const balance: number;
declare const chunks: string[];
declare function sendInvoice(id: number, options: { signal: AbortSignal }): Promise<boolean>;
declare function importChunk(chunk: string, options: { fencingToken: bigint }): Promise<void>;
declare function writeReport(options: { fencingToken: bigint; signal: AbortSignal }): Promise<void>;
declare function rebuildIndex(options: { signal: AbortSignal }): Promise<void>;
declare function rebuildCache(options: { signal: AbortSignal }): Promise<void>;
declare function cleanup(options: { signal: AbortSignal }): Promise<void>;
declare function syncCrm(options: { fencingToken: bigint }): Promise<void>;
declare function transfer(...args: unknown[]): Promise<void>;
declare function runScheduler(options: { signal: AbortSignal; fencingToken: bigint }): Promise<void>;
declare function migrateData(): Promise<void>;
void [createPgFence, isLockError, fence, db, lease, leases, id, balance, chunks];
`;

function sourceOf(file: string): ts.SourceFile {
  const path = join(root, file);
  return ts.createSourceFile(path, readFileSync(path, 'utf8'), ts.ScriptTarget.Latest, true);
}

/** The ```ts blocks of every @example tag in `file`. */
function examplesIn(file: string): { where: string; code: string }[] {
  const source = sourceOf(file);
  const found: { where: string; code: string }[] = [];
  const visit = (node: ts.Node): void => {
    for (const tag of ts.getJSDocTags(node)) {
      if (tag.tagName.text !== 'example') continue;
      const text = ts.getTextOfJSDocComment(tag.comment) ?? '';
      const match = /```ts\n([\s\S]*?)```/.exec(text);
      const name = (node as { name?: ts.Node }).name?.getText(source) ?? '?';
      found.push({ where: `${file} ${name}`, code: match?.[1] ?? '' });
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

const parsedFiles = new Map<string, ts.SourceFile>();

function compile(examples: { where: string; code: string }[]): string[] {
  // Named imports merged per module ('pgfence' is src/), so two examples may import one name.
  const named = new Map<string, Set<string>>([
    ['kysely', new Set(['type Kysely'])],
    ['../../src/index.js', new Set(['createPgFence', 'isLockError', 'type Lease', 'type PgFence'])],
  ]);
  const imports = new Set<string>();
  const bodies = examples.map(({ where, code }, i) => {
    const lines = code.split('\n');
    for (const line of lines.filter((l) => l.startsWith('import '))) {
      const match = /^import \{ (.*) \} from '(.*)';$/.exec(line);
      if (!match) {
        imports.add(line);
        continue;
      }
      const from = match[2] === 'pgfence' ? '../../src/index.js' : match[2]!;
      const names = named.get(from) ?? new Set<string>();
      for (const name of match[1]!.split(', ')) names.add(name);
      named.set(from, names);
    }
    const body = lines.filter((l) => !l.startsWith('import ')).join('\n');
    return `// ${where}\nexport async function example${i}(): Promise<void> {\n${body}\n}\n`;
  });
  for (const [from, names] of named)
    imports.add(`import { ${[...names].join(', ')} } from '${from}';`);
  const text = [...imports, HELPERS, ...bodies].join('\n');
  const virtual = join(root, 'test/unit/__api-examples__.ts');
  const config = ts.getParsedCommandLineOfConfigFile(
    join(root, 'tsconfig.json'),
    {},
    { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => {} },
  )!;
  const options = { ...config.options, noEmit: true, noUnusedLocals: true };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (name, language, ...rest) => {
    if (name === virtual) return ts.createSourceFile(name, text, language);
    // src/ and the typings parsed once for every compile of this file.
    let parsed = parsedFiles.get(name);
    if (!parsed) {
      parsed = getSourceFile(name, language, ...rest);
      if (parsed) parsedFiles.set(name, parsed);
    }
    return parsed;
  };
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (name) => name === virtual || fileExists(name);
  const program = ts.createProgram([virtual], options, host);
  const lines = text.split('\n');
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const message = ts.flattenDiagnosticMessageText(d.messageText, '\n');
    if (d.file?.fileName !== virtual || d.start === undefined) return message;
    const { line } = d.file.getLineAndCharacterOfPosition(d.start);
    const where = lines
      .slice(0, line)
      .reverse()
      .find((l) => l.startsWith('// '));
    return `${where?.slice(3)}: ${lines[line]!.trim()}: ${message}`;
  });
}

describe('the API examples', () => {
  it('document every method of the façade and its handles', () => {
    const source = sourceOf('src/types.ts');
    const missing: string[] = [];
    let methods = 0;
    source.forEachChild((node) => {
      if (!ts.isInterfaceDeclaration(node) || !DOCUMENTED.includes(node.name.text)) return;
      for (const member of node.members) {
        if (!ts.isMethodSignature(member)) continue;
        methods += 1;
        if (!ts.getJSDocTags(member).some((tag) => tag.tagName.text === 'example')) {
          missing.push(`${node.name.text}.${member.name.getText(source)}`);
        }
      }
    });
    expect(missing).toEqual([]);
    // The interfaces were found: the façade alone has some twenty methods.
    expect(methods).toBeGreaterThan(DOCUMENTED.length * 2);
  });

  // One program for the examples and two wrong ones beside them (compiling is the slow part):
  // the wrong ones must fail, so a check that passes cannot be one that sees nothing.
  const PROBES = [
    { where: 'probe: an option that does not exist', code: "await fence.lease('k', { ttl: 1 });" },
    { where: 'probe: a method that does not exist', code: "await fence.acquire('k');" },
  ];
  let errors: string[] | undefined;
  const compiled = () => (errors ??= compile([...PUBLIC_FILES.flatMap(examplesIn), ...PROBES]));

  it('compile against the real types', () => {
    const examples = PUBLIC_FILES.flatMap(examplesIn);
    expect(examples.filter((e) => e.code.trim() === '').map((e) => e.where)).toEqual([]);
    expect(compiled().filter((e) => !e.startsWith('probe:'))).toEqual([]);
  });

  it('would catch an example that names an option or a method the API does not have', () => {
    const probes = compiled().filter((e) => e.startsWith('probe:'));
    expect(probes).toHaveLength(2);
    expect(probes[0]).toMatch(/'ttl' does not exist/);
    expect(probes[1]).toMatch(/'acquire' does not exist/);
  });
});
