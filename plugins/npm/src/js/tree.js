// Lists the package copies of an npm tree and compares two listings.
//
// salve's npm plugin runs it inside the image with `node -e <this file> MODE ...`:
//
//   snapshot ROOT OUT       write every copy under ROOT/node_modules to OUT
//   compare ROOT BEFORE TARGETS
//                           compare the tree now with BEFORE. TARGETS is a JSON
//                           list of {name, location, version, dependents}: the
//                           copy that was meant to move, the version it was
//                           meant to reach, and the locations that required it.
//                           Exits 1 listing every target a dependent does not
//                           see at its version, and every change that is
//                           neither a target nor something a target needs.
//   versions ROOT NAME FROM...
//                           print the versions of NAME that the copies at the
//                           FROM locations load ("" is ROOT itself), distinct
//                           and sorted, as Node's require would find them
//   stage-lock ROOT DIR     copy ROOT's package.json, lockfile and .npmrc to DIR
//   forget FILE             remove FILE if it exists
//
// A location is a copy's path relative to ROOT (`node_modules/a/node_modules/b`).
// Node resolves `require('b')` from `a` at the nearest node_modules up the
// tree; `resolve` below does the same on a listing.
'use strict';
const fs = require('fs');
const path = require('path');

const [mode, ...args] = process.argv.slice(1);

function readManifest(dir) {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
  } catch (e) {
    return null;
  }
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
    const needs = Object.assign({}, manifest.peerDependencies, manifest.dependencies,
      manifest.optionalDependencies);
    copies[location] = { name: manifest.name, version: manifest.version, needs: Object.keys(needs) };
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

function compare(root, beforeFile, targetsText) {
  const before = JSON.parse(fs.readFileSync(beforeFile, 'utf8'));
  const targets = JSON.parse(targetsText);
  const after = walk(root, '', {});
  const problems = [];
  const allowed = new Set();
  for (const t of targets) {
    for (const l of closure(before, [t.location])) allowed.add(l);
    const reached = [t.location];
    for (const from of t.dependents) {
      if (from && !after[from]) continue; // the dependent itself moved away
      const found = resolve(after, from, t.name);
      const copy = found && after[found];
      if (!copy || copy.version !== t.version) {
        problems.push((from || '(root)') + ' loads ' + describe(copy) + ' instead of ' +
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
  if (problems.length) {
    console.log('unintended results in ' + root + ':\n  ' + problems.join('\n  '));
    process.exit(1);
  }
  console.log(changed + ' copies changed in ' + root + ', each a target or something one needs');
}

if (mode === 'snapshot') {
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
} else if (mode === 'stage-lock') {
  const [root, dir] = args;
  fs.mkdirSync(dir, { recursive: true });
  for (const file of ['package.json', 'npm-shrinkwrap.json', 'package-lock.json', '.npmrc']) {
    if (fs.existsSync(path.join(root, file))) {
      fs.copyFileSync(path.join(root, file), path.join(dir, file));
    }
  }
} else if (mode === 'forget') {
  try {
    fs.unlinkSync(args[0]);
  } catch (e) {
    if (e.code !== 'ENOENT') throw e;
  }
} else {
  console.error('unknown mode ' + mode);
  process.exit(2);
}
