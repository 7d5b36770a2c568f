// Applies salve's edits to a package.json, keeping its formatting.
//
// Run by salve's npm plugin inside the image, with
// `node -e <this file> FILE EDITS`, where EDITS is a JSON object:
//
//   {"specs": [["dependencies", "express", "^4.19.2"], ...],
//    "overrides": [[["qs@6.7.0"], "6.7.3"], [["express@4.17.1", "qs"], "6.7.3"], ...],
//    "remove": ["devDependencies"]}
//
// `specs` replace a dependency's spec in the named section; `overrides` set
// a value at a key path under the top-level `overrides` object, creating it
// (as the last key) when missing; `remove` deletes top-level fields. The edits are applied to the file as it is
// when the step runs, so that the tasks of one project compose in order.
// Indentation, line endings, a byte-order mark, a final newline and key
// order are kept, as npm itself keeps them when it saves package.json.
'use strict';
const fs = require('fs');

const [file, editsText] = process.argv.slice(1);
const edits = JSON.parse(editsText);
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
    console.error(file + ': ' + what + ' is not an object');
    process.exit(1);
  }
  return value;
}

for (const [field, name, spec] of edits.specs || []) {
  const deps = manifest[field];
  if (!deps || typeof deps[name] !== 'string') {
    console.error(file + ': ' + field + '.' + name + ' is missing');
    process.exit(1);
  }
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
