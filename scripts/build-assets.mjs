#!/usr/bin/env node
// Build Speakup's front-end assets into speakup/static/dist (a build output, gitignored).
//
//   speakup/static/dist/speakup.css              NHS.UK frontend + app styles, compressed,
//                                                without the Frutiger @font-face
//   speakup/static/dist/nhsuk-frontend.min.js    NHS.UK frontend ES module bundle (initAll…)
//   speakup/static/dist/assets/manifest.json     web app manifest (the template's head icons)
//   speakup/static/dist/assets/images/…          favicon, touch icons, icons used by the CSS
//
// Pages must load nothing from another origin (the CSP allows only 'self'), so after
// building we scan every file in dist and exit non-zero if anything could make the
// browser fetch from elsewhere.
//
// Usage: node scripts/build-assets.mjs   (after `npm ci`)

import { cpSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, extname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import * as sass from "sass";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const nodeModules = join(root, "node_modules");
const nhsukDist = join(nodeModules, "nhsuk-frontend", "dist", "nhsuk");
const sassEntry = join(root, "speakup", "static", "src", "speakup.scss");
const outDir = join(root, "speakup", "static", "dist");

function fail(message) {
  console.error(`build-assets: ${message}`);
  process.exit(1);
}

function walk(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? walk(path) : [path];
  });
}

// --- build ----------------------------------------------------------------

function buildCss() {
  // quietDeps: deprecation warnings from inside nhsuk-frontend are theirs, not ours.
  const result = sass.compile(sassEntry, {
    loadPaths: [nodeModules],
    style: "compressed",
    sourceMap: false,
    quietDeps: true,
  });
  writeFileSync(join(outDir, "speakup.css"), result.css + "\n");
}

function copyJs() {
  // The ES module bundle (exports initAll etc.). We do not ship source maps, so drop the
  // sourceMappingURL comment rather than leave devtools asking for a missing file.
  const bundle = readFileSync(join(nhsukDist, "nhsuk-frontend.min.js"), "utf8");
  if (!/\bexport\s*\{[^}]*\binitAll\b/.test(bundle)) {
    fail("nhsuk-frontend.min.js is not the ES module bundle exporting initAll");
  }
  const stripped = bundle.replace(/\n?\/\/# sourceMappingURL=\S+\s*$/, "\n");
  writeFileSync(join(outDir, "nhsuk-frontend.min.js"), stripped);
}

function copyAssets() {
  cpSync(join(nhsukDist, "assets"), join(outDir, "assets"), { recursive: true });
}

// --- same-origin check ----------------------------------------------------

const TEXT_EXTENSIONS = new Set([".css", ".js", ".mjs", ".json", ".svg", ".html", ".txt", ".xml", ".webmanifest"]);

// XML namespace names look like URLs but are identifiers, never fetched.
const NAMESPACE_URL = /^https?:\/\/www\.w3\.org\//;

const FORBIDDEN = [
  [/@font-face/i, "an @font-face rule (fonts must not be loaded; the NHS.UK font-face is disabled)"],
  [/@import/i, "an @import"],
  [/url\(\s*["']?\s*(?:[a-z][a-z0-9+.-]*:(?!data:)|\/\/)/i, "a url() pointing at another origin"],
  [/(?:src|href|action|srcset)\s*=\s*["']?\s*(?:https?:|\/\/)/i, "an absolute src/href/action attribute"],
  [/\bimport\s*\(?\s*["'](?:https?:|\/\/)/i, "an import from another origin"],
  [/assets\.nhs\.uk|fonts\.(?:googleapis|gstatic)\.com/i, "a reference to a font host"],
];

function checkText(file, text) {
  const problems = [];
  for (const [pattern, what] of FORBIDDEN) {
    if (pattern.test(text)) problems.push(what);
  }
  // Belt and braces: any absolute http(s) URL at all, other than XML namespace names.
  for (const match of text.matchAll(/https?:\/\/[^\s"'()<>]*/gi)) {
    if (!NAMESPACE_URL.test(match[0])) problems.push(`an absolute URL: ${match[0]}`);
  }
  return problems.map((problem) => `${relative(root, file)}: ${problem}`);
}

function checkManifest(file) {
  // Every URL-valued member must be relative to our own origin.
  const isForeign = (value) => typeof value === "string" && /^(?:[a-z][a-z0-9+.-]*:|\/\/)/i.test(value);
  const problems = [];
  const visit = (value, path) => {
    if (Array.isArray(value)) value.forEach((item, index) => visit(item, `${path}[${index}]`));
    else if (value && typeof value === "object") {
      for (const [key, item] of Object.entries(value)) visit(item, `${path}.${key}`);
    } else if (isForeign(value)) problems.push(`${relative(root, file)}: ${path} is not same-origin: ${value}`);
  };
  visit(JSON.parse(readFileSync(file, "utf8")), "manifest");
  return problems;
}

function checkSameOrigin(files) {
  const problems = [];
  for (const file of files) {
    if (!TEXT_EXTENSIONS.has(extname(file))) continue;
    problems.push(...checkText(file, readFileSync(file, "utf8")));
    if (file.endsWith("manifest.json")) problems.push(...checkManifest(file));
  }
  return problems;
}

// --- main -----------------------------------------------------------------

try {
  statSync(nhsukDist);
} catch {
  fail("node_modules/nhsuk-frontend is missing: run `npm ci` first");
}

rmSync(outDir, { recursive: true, force: true });
mkdirSync(outDir, { recursive: true });

try {
  buildCss();
} catch (error) {
  fail(`Sass compilation failed:\n${error.message ?? error}`);
}
copyJs();
copyAssets();

const files = walk(outDir).sort();
const problems = checkSameOrigin(files);
if (problems.length > 0) {
  fail(`output would load from another origin:\n  ${problems.join("\n  ")}`);
}

const nhsukVersion = JSON.parse(readFileSync(join(nodeModules, "nhsuk-frontend", "package.json"), "utf8")).version;
const kib = (file) => `${(statSync(file).size / 1024).toFixed(1)} KiB`;
console.log(`build-assets: nhsuk-frontend ${nhsukVersion}, sass ${sass.info.split("\t")[1] ?? sass.info}`);
for (const file of files.filter((f) => !f.includes(`${join(outDir, "assets")}/`))) {
  console.log(`  ${relative(root, file)}  ${kib(file)}`);
}
console.log(`  ${relative(root, join(outDir, "assets"))}/  ${files.length - files.filter((f) => !f.includes(`${join(outDir, "assets")}/`)).length} files (manifest, favicon, icons)`);
console.log(`build-assets: ${files.length} files checked, no other-origin references, no @font-face`);
