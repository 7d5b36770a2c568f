// The small program salve's npm plugin runs inside an image, with the image's
// own node: `node -e <this file> MODE ARGS...`.
//
//   edit FILE EDITS         apply salve's edits to a package.json (see `edit`)
//   snapshot ROOT OUT       write every copy under ROOT/node_modules to OUT
//   compare ROOT BEFORE TARGETS
//                           compare the tree now with BEFORE (see `compare`)
//   versions ROOT NAME FROM...
//                           print the versions of NAME that the copies at the
//                           FROM locations load ("" is ROOT itself), distinct
//                           and sorted, as Node's require would find them
//   fixed ROOT LOCATION TARGET
//                           print "fixed" when nothing is left at LOCATION or
//                           what is there is at TARGET or later
//   stage-lock ROOT DIR     copy ROOT's package.json, lockfile and .npmrc to DIR
//   forget FILE             remove FILE if it exists
//   dry-run ROOT DIR EDITS WATCH NPM-ARGS...
//                           on a copy of ROOT's package.json and lockfile in DIR,
//                           apply EDITS, run `npm install --package-lock-only
//                           NPM-ARGS...`, and print, for each name in the JSON
//                           list WATCH, the copies the new lockfile holds and
//                           what requires each (see `dryRun`)
//
// A location is a copy's path relative to ROOT (`node_modules/a/node_modules/b`).
// Node resolves `require('b')` from `a` at the nearest node_modules up the
// tree; `resolve` below does the same on a listing.
'use strict';
const fs = require('fs');
const path = require('path');
const childProcess = require('child_process');

const [mode, ...args] = process.argv.slice(1);

function fail(message) {
  console.error(message);
  process.exit(1);
}

// --- package.json edits ------------------------------------------------------

// EDITS is a JSON object:
//
//   {"specs": [["dependencies", "express", "^4.19.2"], ...],
//    "overrides": [[["qs@6.7.0"], "6.7.3"], [["express@4.17.1", "qs"], "6.7.3"], ...],
//    "remove": ["devDependencies"]}
//
// `specs` replace a dependency's spec in the named section; `overrides` set a
// value at a key path under the top-level `overrides` object, creating it (as
// the last key) when missing; `remove` deletes top-level fields. The file is
// edited as it is when the step runs, so that the tasks of one project compose
// in order. Indentation, line endings, a byte-order mark, a final newline and
// key order are kept, as npm itself keeps them when it saves package.json.
function edit(file, edits) {
  let text = fs.readFileSync(file, 'utf8');
  const bom = text.startsWith('\uFEFF') ? '\uFEFF' : '';
  text = text.slice(bom.length);
  const indent = (text.match(/^([ \t]+)\S/m) || [null, '  '])[1];
  const newline = text.includes('\r\n') ? '\r\n' : '\n';
  const finalNewline = /\n$/.test(text) ? newline : '';
  const manifest = JSON.parse(text);

  function section(parent, key, what) {
    if (parent[key] === undefined) parent[key] = {};
    const value = parent[key];
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      fail(file + ': ' + what + ' is not an object');
    }
    return value;
  }

  for (const [field, name, spec] of edits.specs || []) {
    const deps = manifest[field];
    if (!deps || typeof deps[name] !== 'string') fail(file + ': ' + field + '.' + name + ' is missing');
    deps[name] = spec;
  }
  for (const [keys, value] of edits.overrides || []) {
    let at = section(manifest, 'overrides', 'overrides');
    for (const key of keys.slice(0, -1)) {
      // A string rule for a parent key overrides the parent itself; keep it as
      // the object form's "." entry.
      if (typeof at[key] === 'string') at[key] = { '.': at[key] };
      at = section(at, key, 'overrides.' + key);
    }
    at[keys[keys.length - 1]] = value;
  }
  for (const key of edits.remove || []) delete manifest[key];

  const out = JSON.stringify(manifest, null, indent).replace(/\n/g, newline);
  fs.writeFileSync(file, bom + out + finalNewline);
}

// --- trees -------------------------------------------------------------------

function readManifest(dir) {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
  } catch (e) {
    return null;
  }
}

function needsOf(manifest) {
  return Object.keys(Object.assign({}, manifest.peerDependencies, manifest.dependencies,
    manifest.optionalDependencies));
}

// Every copy under `dir/node_modules`, recursively, by location.
function walk(dir, location, copies) {
  const modules = path.join(dir, 'node_modules');
  let names;
  try {
    names = fs.readdirSync(modules).sort();
  } catch (e) {
    return copies;
  }
  for (const name of names) {
    if (name.startsWith('.')) continue; // .bin, .package-lock.json, .cache
    if (name.startsWith('@')) {
      let scoped = [];
      try {
        scoped = fs.readdirSync(path.join(modules, name)).sort();
      } catch (e) {}
      for (const sub of scoped) visit(modules, name + '/' + sub, location, copies);
    } else {
      visit(modules, name, location, copies);
    }
  }
  return copies;
}

function visit(modules, name, parent, copies) {
  const dir = path.join(modules, name);
  const location = (parent ? parent + '/' : '') + 'node_modules/' + name;
  const stat = fs.lstatSync(dir);
  if (stat.isSymbolicLink()) {
    copies[location] = { link: fs.readlinkSync(dir) };
    return;
  }
  if (!stat.isDirectory()) return;
  const manifest = readManifest(dir);
  if (manifest) {
    copies[location] = { name: manifest.name, version: manifest.version, needs: needsOf(manifest) };
  }
  walk(dir, location, copies);
}

function parentOf(location) {
  const cut = location.lastIndexOf('/node_modules/');
  return cut < 0 ? '' : location.slice(0, cut);
}

function resolve(copies, from, name) {
  for (let at = from; ; at = parentOf(at)) {
    const candidate = (at ? at + '/' : '') + 'node_modules/' + name;
    if (copies[candidate] && !copies[candidate].link) return candidate;
    if (!at) return null;
  }
}

// The locations `starts` need, themselves included, following dependencies.
function closure(copies, starts) {
  const seen = new Set();
  const queue = starts.filter((l) => l && copies[l]);
  while (queue.length) {
    const location = queue.pop();
    if (seen.has(location)) continue;
    seen.add(location);
    for (const need of copies[location].needs || []) {
      const found = resolve(copies, location, need);
      if (found && !seen.has(found)) queue.push(found);
    }
  }
  return seen;
}

function describe(copy) {
  if (!copy) return '(none)';
  if (copy.link) return 'a link to ' + copy.link;
  return copy.name + '@' + copy.version;
}

// TARGETS is a JSON list of {name, location, version, dependents}: the copy
// meant to move, the version it was meant to reach, and the copies that
// required it ({location, version}; location "" is the root). Every dependent
// still at that version must load the target version; every change must be a
// target or something one needs (its dependency closure, before or after).
// Exits 1 listing what is wrong.
function compare(root, beforeFile, targetsText) {
  const before = JSON.parse(fs.readFileSync(beforeFile, 'utf8'));
  const targets = JSON.parse(targetsText);
  const after = walk(root, '', {});
  const problems = [];
  const allowed = new Set();
  for (const t of targets) {
    for (const l of closure(before, [t.location])) allowed.add(l);
    const reached = [t.location];
    for (const d of t.dependents) {
      // A dependent that moved itself requires what its new version needs.
      if (d.location && (!after[d.location] || after[d.location].version !== d.version)) continue;
      const found = resolve(after, d.location, t.name);
      const copy = found && after[found];
      if (!copy || copy.version !== t.version) {
        problems.push((d.location || '(root)') + ' loads ' + describe(copy) + ' instead of ' +
          t.name + '@' + t.version);
      }
      reached.push(found);
    }
    for (const l of closure(after, reached)) allowed.add(l);
  }
  let changed = 0;
  for (const location of new Set([...Object.keys(before), ...Object.keys(after)])) {
    const a = describe(before[location]);
    const b = describe(after[location]);
    if (a === b) continue;
    changed++;
    if (!allowed.has(location)) problems.push(location + ': ' + a + ' -> ' + b);
  }
  if (problems.length) fail('unintended results in ' + root + ':\n  ' + problems.join('\n  '));
  console.log(changed + ' copies changed in ' + root + ', each a target or something one needs');
}

// Semver precedence, enough for versions npm installed: numeric
// major.minor.patch, then a release after its pre-releases.
function older(a, b) {
  const parse = (v) => {
    const [core, pre] = String(v).replace(/^v/, '').split('+')[0].split(/-(.*)/s);
    return { nums: core.split('.').map(Number), pre };
  };
  const x = parse(a);
  const y = parse(b);
  for (let i = 0; i < 3; i++) {
    if ((x.nums[i] || 0) !== (y.nums[i] || 0)) return (x.nums[i] || 0) < (y.nums[i] || 0);
  }
  if (x.pre === undefined || y.pre === undefined) return x.pre !== undefined && y.pre === undefined;
  const xs = x.pre.split('.');
  const ys = y.pre.split('.');
  for (let i = 0; i < Math.max(xs.length, ys.length); i++) {
    if (xs[i] === undefined) return true;
    if (ys[i] === undefined) return false;
    const xn = /^\d+$/.test(xs[i]);
    const yn = /^\d+$/.test(ys[i]);
    if (xs[i] === ys[i]) continue;
    if (xn && yn) return Number(xs[i]) < Number(ys[i]);
    if (xn !== yn) return xn;
    return xs[i] < ys[i];
  }
  return false;
}

// --- the dry run -------------------------------------------------------------

// The copies a lockfile (version 2 or 3) holds, in the listing form `walk`
// gives.
function fromLockfile(file) {
  const lock = JSON.parse(fs.readFileSync(file, 'utf8'));
  const copies = {};
  for (const [location, entry] of Object.entries(lock.packages || {})) {
    if (!location || entry.link) continue;
    const name = entry.name || location.slice(location.lastIndexOf('node_modules/') + 13);
    copies[location] = { name, version: entry.version, needs: needsOf(entry) };
  }
  return copies;
}

// Prints {"copies": [{name, location, version, dependents: [{location, name,
// version}]}]} for every copy of a watched name in the lockfile npm writes
// after EDITS, without touching ROOT or its node_modules.
function dryRun(root, dir, editsText, watchText, npmArgs) {
  fs.mkdirSync(dir, { recursive: true });
  for (const file of ['package.json', 'npm-shrinkwrap.json', 'package-lock.json', '.npmrc']) {
    if (fs.existsSync(path.join(root, file))) fs.copyFileSync(path.join(root, file), path.join(dir, file));
  }
  edit(path.join(dir, 'package.json'), JSON.parse(editsText));
  const run = childProcess.spawnSync('npm', ['install', '--package-lock-only', ...npmArgs], {
    cwd: dir,
    encoding: 'utf8',
  });
  if (run.status !== 0) fail('npm install --package-lock-only failed:\n' + run.stdout + run.stderr);
  const lockfile = ['npm-shrinkwrap.json', 'package-lock.json']
    .map((f) => path.join(dir, f))
    .find((f) => fs.existsSync(f));
  const copies = fromLockfile(lockfile);
  const rootManifest = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
  copies[''] = { name: rootManifest.name, version: rootManifest.version,
    needs: needsOf(rootManifest).concat(Object.keys(rootManifest.devDependencies || {})) };
  const watch = new Set(JSON.parse(watchText));
  const out = [];
  for (const [location, copy] of Object.entries(copies)) {
    if (!location || !watch.has(copy.name)) continue;
    const dependents = [];
    for (const [from, other] of Object.entries(copies)) {
      if (other.needs.some((n) => n === location.slice(location.lastIndexOf('node_modules/') + 13) &&
          resolve(copies, from, n) === location)) {
        dependents.push({ location: from, name: other.name, version: other.version });
      }
    }
    out.push({ name: copy.name, location, version: copy.version, dependents });
  }
  console.log(JSON.stringify({ copies: out }));
}

// --- modes -------------------------------------------------------------------

if (mode === 'edit') {
  edit(args[0], JSON.parse(args[1]));
} else if (mode === 'snapshot') {
  const [root, out] = args;
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, JSON.stringify(walk(root, '', {})));
} else if (mode === 'compare') {
  compare(...args);
} else if (mode === 'versions') {
  const [root, name, ...froms] = args;
  const copies = walk(root, '', {});
  const seen = new Set(froms.map((from) => {
    const found = resolve(copies, from, name);
    return found ? copies[found].version : '(none)';
  }));
  console.log([...seen].sort().join(' '));
} else if (mode === 'fixed') {
  const [root, location, target] = args;
  const copy = walk(root, '', {})[location];
  console.log(!copy || copy.link || !older(copy.version, target) ? 'fixed' : 'still ' + describe(copy));
} else if (mode === 'stage-lock') {
  const [root, dir] = args;
  fs.mkdirSync(dir, { recursive: true });
  for (const file of ['package.json', 'npm-shrinkwrap.json', 'package-lock.json', '.npmrc']) {
    if (fs.existsSync(path.join(root, file))) fs.copyFileSync(path.join(root, file), path.join(dir, file));
  }
} else if (mode === 'forget') {
  try {
    fs.unlinkSync(args[0]);
  } catch (e) {
    if (e.code !== 'ENOENT') throw e;
  }
} else if (mode === 'dry-run') {
  const [root, dir, edits, watch, ...npmArgs] = args;
  dryRun(root, dir, edits, watch, npmArgs);
} else {
  fail('unknown mode ' + mode);
}
