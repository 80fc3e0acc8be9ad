// Finding the function's handler from the handler string, as Lambda's Node.js runtime does:
// `dir/sub/module.path.to.fn` → module `module` under `<task root>/dir/sub`, export `path.to.fn`.
// The module file is tried as extensionless, .js (CommonJS unless the nearest package.json says
// "type": "module"), .mjs, then .cjs, and last as a package name resolved from the task root.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { HandlerNotFound, ImportModuleError, MalformedHandlerName, UserCodeSyntaxError } from './errors.mjs';

// Resolved from the entry file, so "Require stack" names /var/runtime/index.mjs as on Lambda.
const require = createRequire(new URL('./index.mjs', import.meta.url));

function splitHandler(full) {
  if (full.includes('..')) {
    throw new MalformedHandlerName(
      `'${full}' is not a valid handler name. Use absolute paths when specifying root directories in handler names.`,
    );
  }
  const base = path.basename(full);
  const moduleRoot = full.substring(0, full.indexOf(base));
  const match = base.match(/^([^.]*)\.(.*)$/);
  if (!match) throw new MalformedHandlerName('Bad handler');
  return { moduleRoot, module: match[1], exportPath: match[2] };
}

function requireIfExists(file) {
  return fs.existsSync(file) ? require(file) : undefined;
}

async function importIfExists(file) {
  return fs.existsSync(file) ? import(pathToFileURL(file).href) : undefined;
}

function packageTypeIsModule(folder) {
  // The nearest package.json decides; a node_modules directory or the root ends the search.
  for (let dir = folder; !dir.endsWith('/node_modules'); dir = path.dirname(dir)) {
    const pj = path.join(dir, 'package.json');
    if (fs.existsSync(pj)) {
      try {
        return JSON.parse(fs.readFileSync(pj, 'utf8'))?.type === 'module';
      } catch (e) {
        console.warn(`${pj} cannot be read, it will be ignored for ES module detection purposes.`, e);
        return false;
      }
    }
    if (dir === '/') break;
  }
  return false;
}

async function loadModule(taskRoot, moduleRoot, module) {
  const base = path.resolve(taskRoot, moduleRoot, module);
  const extensionless = requireIfExists(base);
  if (extensionless) return extensionless;
  const esm = packageTypeIsModule(path.dirname(base));
  if (!esm) {
    const cjs = requireIfExists(`${base}.js`);
    if (cjs) return cjs;
  }
  const loaded = (esm && (await importIfExists(`${base}.js`))) ||
    (await importIfExists(`${base}.mjs`)) ||
    requireIfExists(`${base}.cjs`);
  if (loaded) return loaded;
  // A package name (e.g. a handler in node_modules), resolved from the task root.
  return require(require.resolve(module, { paths: [taskRoot, moduleRoot] }));
}

/** The handler function for `full` (e.g. "index.handler"); throws Runtime.* errors otherwise. */
export async function loadHandler(taskRoot, full) {
  const { moduleRoot, module, exportPath } = splitHandler(full);
  let app;
  try {
    app = await loadModule(taskRoot, moduleRoot, module);
  } catch (e) {
    if (e instanceof SyntaxError) {
      const err = new UserCodeSyntaxError(String(e));
      err.stack = e.stack;
      throw err;
    }
    // Only require()'s code: an ES module's missing import stays a plain Error, as on Lambda.
    if (e?.code === 'MODULE_NOT_FOUND') throw new ImportModuleError(String(e));
    throw e;
  }
  const fn = exportPath.split('.').reduce((obj, key) => obj && obj[key], app);
  if (!fn) throw new HandlerNotFound(`${full} is undefined or not exported`);
  if (typeof fn !== 'function') throw new HandlerNotFound(`${full} is not a function`);
  return fn;
}
