// Validate Kubernetes manifests against Istio's published CRD schemas.
//
// Driven by scripts/check-manifests.py (which reads the YAML); not meant to be run by hand:
//     node scripts/check-manifests.mjs SCHEMA_DIR < docs.json
// where docs.json is [{"source": "...", "index": N, "doc": {...}}, ...] and SCHEMA_DIR holds the
// node_modules installed from istio/schema/package-lock.json (make check-manifests does it).
//
// The schemas come from the npm package @kubernetes-models/istio (pinned in istio/schema/), generated
// from Istio's own CRD file (istio/istio manifests/charts/base/files/crd-all.gen.yaml) — nothing here
// is hand-written.  Two checks per Istio resource:
//   1. the CRD's openAPIV3Schema (types, enums, required fields, patterns, ranges), with the package's
//      JSON-schema validators (ajv, compiled from that schema);
//   2. unknown fields, as `kubectl apply` (strict field validation, the default) refuses them: every
//      field must exist in the same schema, read from the package's generated type declarations with
//      the TypeScript compiler; free-form members (pluginConfig, x-kubernetes-preserve-unknown-fields)
//      accept anything.
// Prints one line per problem and one "ok" line per valid resource; exit status 1 on any problem.

import { createRequire } from "node:module";
import { existsSync, readFileSync, unlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const schemaDir = path.resolve(process.argv[2] || ".cache/istio-schema");
const pkgDir = path.join(schemaDir, "node_modules", "@kubernetes-models", "istio");
if (!existsSync(pkgDir)) {
  console.error(`check-manifests: ${pkgDir} is missing: run \`make check-manifests\` (it installs istio/schema/)`);
  process.exit(2);
}
const pkgVersion = JSON.parse(readFileSync(path.join(pkgDir, "package.json"), "utf8")).version;
const docs = JSON.parse(readFileSync(0, "utf8"));

// ---------------------------------------------------------------- which model validates a document

function modelFile(doc) {
  if (!doc || typeof doc !== "object" || typeof doc.apiVersion !== "string" || typeof doc.kind !== "string") {
    return { skip: "no apiVersion/kind" };
  }
  const [group, version] = doc.apiVersion.includes("/") ? doc.apiVersion.split("/") : ["", doc.apiVersion];
  if (!group.endsWith("istio.io")) return { skip: `${doc.apiVersion} ${doc.kind} is not an Istio resource` };
  const rel = path.join(group, version, `${doc.kind}.js`);
  const file = path.join(pkgDir, rel);
  if (!/^[A-Za-z0-9.]+$/.test(group + version + doc.kind) || !existsSync(file)) {
    return { error: `apiVersion ${doc.apiVersion} kind ${doc.kind}: no such Istio resource in the CRDs` };
  }
  return { file, rel: rel.replace(/\.js$/, ""), group, version };
}

// ---------------------------------------------------------------- paths and messages

function pointerToPath(pointer) {
  if (!pointer) return "(document)";
  return pointer
    .split("/")
    .slice(1)
    .map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"))
    .reduce((acc, seg) => (/^\d+$/.test(seg) ? `${acc}[${seg}]` : acc ? `${acc}.${seg}` : seg), "");
}

function joinPath(base, key) {
  if (typeof key === "number") return `${base}[${key}]`;
  const k = /^[A-Za-z_$][\w$-]*$/.test(key) ? key : JSON.stringify(key);
  return base ? `${base}.${k}` : k;
}

function schemaMessage(err) {
  let where = pointerToPath(err.instancePath);
  let msg = err.message || err.keyword;
  if (err.keyword === "required" && err.params && err.params.missingProperty) {
    where = joinPath(err.instancePath ? pointerToPath(err.instancePath) : "", err.params.missingProperty);
    msg = "required field is missing";
  } else if (err.keyword === "enum" && err.params && err.params.allowedValues) {
    msg = `must be one of ${err.params.allowedValues.join(", ")}`;
  }
  return `${where}: ${msg}`;
}

function distance(a, b) {
  a = a.toLowerCase();
  b = b.toLowerCase();
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++)
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
  return d[a.length][b.length];
}

function unknownFieldMessage(where, key, known) {
  const best = known.map((k) => [distance(key, k), k]).sort((x, y) => x[0] - y[0])[0];
  const hint = best && best[0] <= Math.max(2, Math.floor(key.length / 3)) ? ` (did you mean "${best[1]}"?)` : "";
  const list = known.length <= 12 ? `; known: ${known.join(", ")}` : "";
  return `${where}: unknown field "${key}"${hint}${list}`;
}

// ---------------------------------------------------------------- unknown fields (TypeScript types)

let tsCtx = null;

function typesFor(targets) {
  // One program for every model the documents need.
  const require = createRequire(path.join(schemaDir, "package.json"));
  const ts = require("typescript");
  const entry = path.join(schemaDir, `check-manifests-types-${process.pid}.ts`);
  const lines = targets.map(
    (t, i) => `import type { I${t.kind} as T${i} } from "@kubernetes-models/istio/${t.rel}";\nexport type Doc${i} = T${i};`,
  );
  writeFileSync(entry, lines.join("\n") + "\n");
  const program = ts.createProgram([entry], {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    types: [],
  });
  const checker = program.getTypeChecker();
  const source = program.getSourceFile(entry);
  unlinkSync(entry);
  const byIndex = new Map();
  source.forEachChild((node) => {
    if (ts.isTypeAliasDeclaration(node) && node.name.text.startsWith("Doc")) {
      byIndex.set(Number(node.name.text.slice(3)), checker.getTypeAtLocation(node.name));
    }
  });
  const missing = targets.filter((_, i) => !byIndex.has(i) || byIndex.get(i).flags & ts.TypeFlags.Any);
  if (missing.length) throw new Error(`cannot read the type declarations of ${missing.map((m) => m.rel).join(", ")}`);
  tsCtx = { ts, checker, types: byIndex };
  return tsCtx;
}

function walkUnknown(value, type, where, out) {
  const { ts, checker } = tsCtx;
  if (value === null || typeof value !== "object" || !type) return;
  const parts = (type.isUnion() ? type.types : [type]).filter(
    (t) => !(t.flags & (ts.TypeFlags.Undefined | ts.TypeFlags.Null)),
  );
  if (parts.some((t) => t.flags & (ts.TypeFlags.Any | ts.TypeFlags.Unknown))) return;
  if (Array.isArray(value)) {
    const arr = parts.find((t) => checker.isArrayType(t));
    if (!arr) return; // a type mismatch: the schema check reports it
    const elem = checker.getTypeArguments(arr)[0];
    value.forEach((v, i) => walkUnknown(v, elem, joinPath(where, i), out));
    return;
  }
  const objs = parts.filter((t) => t.flags & ts.TypeFlags.Object && !checker.isArrayType(t));
  if (!objs.length) return;
  const index = objs.map((t) => checker.getIndexTypeOfType(t, ts.IndexKind.String)).find(Boolean);
  const props = new Map();
  for (const t of objs) for (const p of checker.getPropertiesOfType(t)) if (!props.has(p.name)) props.set(p.name, p);
  if (!index && props.size === 0) return; // `{}`: free-form (pluginConfig, preserve-unknown-fields)
  for (const [key, v] of Object.entries(value)) {
    const p = props.get(key);
    if (p) walkUnknown(v, checker.getTypeOfSymbol(p), joinPath(where, key), out);
    else if (index) walkUnknown(v, index, joinPath(where, key), out);
    else out.push(unknownFieldMessage(joinPath(where, key), key, [...props.keys()]));
  }
}

// ---------------------------------------------------------------- main

const plan = docs.map((d) => ({ ...d, model: modelFile(d.doc) }));
const targets = [];
for (const p of plan) {
  if (p.model.file && !targets.some((t) => t.rel === p.model.rel)) targets.push({ rel: p.model.rel, kind: p.doc.kind });
}
if (targets.length) typesFor(targets);

let failed = 0;
let checked = 0;
for (const p of plan) {
  const meta = (p.doc && p.doc.metadata) || {};
  const label = `${p.source}: document ${p.index}` + (p.doc && p.doc.kind ? ` (${p.doc.kind} ${meta.namespace ? meta.namespace + "/" : ""}${meta.name || "?"})` : "");
  if (p.model.skip) {
    console.log(`${label}: skipped, ${p.model.skip}`);
    continue;
  }
  if (p.model.error) {
    console.log(`${label}: ${p.model.error}`);
    failed++;
    continue;
  }
  checked++;
  const problems = [];
  const mod = await import(pathToFileURL(p.model.file).href);
  const Model = mod[p.doc.kind];
  try {
    new Model(p.doc).validate();
  } catch (e) {
    if (!Array.isArray(e.errors)) throw e;
    for (const err of e.errors) problems.push(schemaMessage(err));
  }
  const t = tsCtx.types.get(targets.findIndex((x) => x.rel === p.model.rel));
  walkUnknown(p.doc, t, "", problems);
  if (!meta.name) problems.push("metadata.name: required field is missing");
  if (problems.length) {
    failed++;
    for (const msg of [...new Set(problems)]) console.log(`${label}: ${msg}`);
  } else {
    console.log(`${label}: ok (${p.doc.apiVersion} ${p.doc.kind})`);
  }
}
console.log(
  `check-manifests: ${checked} Istio resource(s) checked against @kubernetes-models/istio@${pkgVersion} ` +
    `(Istio CRD schemas): ${failed ? failed + " invalid" : "all valid"}`,
);
process.exit(failed ? 1 : 0);
