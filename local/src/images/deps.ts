// Which installed packages an image needs (pure): the packages its sources import, and
// everything those need, resolved through package-lock.json as Node resolves them. The node
// image needs neither @kubernetes/client-node (about 66 MB) nor js-yaml; the operator needs
// no SMTP library.

/** One entry of package-lock.json's `packages` (lockfileVersion 2/3). */
export interface LockPackage {
  dev?: boolean;
  optional?: boolean;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
}

// Import forms, each anchored so that ordinary code (`rename(obj, 'from', '_from')`) never
// matches: a statement that starts a line (`import … from 'x'`, `export … from 'x'`, also
// over several lines, `import 'x'`), a dynamic `import('x')`, `require('x')`, `require.resolve('x')`.
const IMPORT_FORMS = [
  /^\s*(?:import|export)\b[^;'"`]*?\bfrom\s*['"]([^'"\n]+)['"]/gm,
  /^\s*import\s*['"]([^'"\n]+)['"]/gm,
  /\bimport\s*\(\s*['"]([^'"\n]+)['"]\s*\)/g,
  /\brequire(?:\.resolve)?\s*\(\s*['"]([^'"\n]+)['"]\s*\)/g,
];
const PACKAGE_SPECIFIER = /^(?:@[a-z0-9][\w.~-]*\/)?[a-z0-9][\w.~-]*(?:\/.*)?$/i;

/** The npm package names that TypeScript/JavaScript source text imports (not node:, not relative). */
export function bareImports(source: string): string[] {
  const names = new Set<string>();
  for (const form of IMPORT_FORMS) {
    for (const m of source.matchAll(form)) {
      const spec = m[1];
      if (spec.startsWith('node:') || !PACKAGE_SPECIFIER.test(spec)) continue;
      const parts = spec.split('/');
      names.add(spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]);
    }
  }
  return [...names].sort();
}

/** Where Node finds package `name` required from the package installed at `from` ('' = the app). */
export function resolveInLock(packages: Record<string, LockPackage>, from: string, name: string): string | undefined {
  let dir = from;
  for (;;) {
    const candidate = `${dir ? `${dir}/` : ''}node_modules/${name}`;
    if (packages[candidate]) return candidate;
    if (!dir) return undefined;
    // up one node_modules level: a/node_modules/b -> a
    const cut = dir.lastIndexOf('/node_modules/');
    dir = cut < 0 ? '' : dir.slice(0, cut);
  }
}

/**
 * The lock paths (`node_modules/a`, `node_modules/a/node_modules/b`) needed to run code that
 * imports `roots`. A root or a required dependency missing from the lock is an error;
 * a missing optional or peer dependency is not (npm may not have installed it).
 */
export function dependencyClosure(packages: Record<string, LockPackage>, roots: string[]): string[] {
  const needed = new Set<string>();
  const queue: string[] = [];
  for (const root of roots) {
    const path = resolveInLock(packages, '', root);
    if (!path) throw new Error(`${root} is imported but not in package-lock.json`);
    queue.push(path);
  }
  while (queue.length > 0) {
    const path = queue.pop()!;
    if (needed.has(path)) continue;
    needed.add(path);
    const pkg = packages[path];
    const wanted: Array<[string, boolean]> = [
      ...Object.keys(pkg.dependencies ?? {}).map((n) => [n, true] as [string, boolean]),
      ...Object.keys(pkg.optionalDependencies ?? {}).map((n) => [n, false] as [string, boolean]),
      ...Object.keys(pkg.peerDependencies ?? {}).map((n) => [n, false] as [string, boolean]),
    ];
    for (const [name, required] of wanted) {
      const dep = resolveInLock(packages, path, name);
      if (dep) queue.push(dep);
      else if (required) throw new Error(`${path} needs ${name}, which is not in package-lock.json`);
    }
  }
  return [...needed].sort();
}
