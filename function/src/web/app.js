"use strict";
// The page of a pkgsum repository: every value comes from a package, so
// it is only ever set as text (textContent) or, for links, checked first.
// The packages are in the runs' scripts beside the page (site/STEM.js,
// which call pkgsumTable); a run's DESCRIPTIONs and DEPENDS are in
// site/STEM.details.js, loaded when one of its packages is opened.
const $ = (id) => document.getElementById(id);
const meta = JSON.parse($("meta").textContent);
const LIMIT = 500;
// pkgsum's own names only: nothing from a package becomes a script's URL.
const STEM = /^[0-9]{1,20}-[0-9a-f]{16}$/;
const runs = (meta.runs || []).filter((s) => typeof s === "string" && STEM.test(s));
const tables = new Array(runs.length);
const details = new Array(runs.length);
let all = [];
let byFile = new Map();
const byBase = new Map();
const vulnerable = new Map();
for (const v of meta.vulnerabilities || []) {
  if (!vulnerable.has(v.file)) vulnerable.set(v.file, []);
  vulnerable.get(v.file).push(v);
}

// Which run a script is: the element running it says.
function runOf() {
  const script = document.currentScript;
  const i = script ? Number(script.dataset.run) : NaN;
  return Number.isInteger(i) && i >= 0 && i < runs.length ? i : -1;
}
window.pkgsumTable = (rows) => {
  const i = runOf();
  if (i >= 0 && Array.isArray(rows) && !tables[i]) tables[i] = rows;
};
window.pkgsumDetails = (list) => {
  const i = runOf();
  if (i >= 0 && Array.isArray(list) && !details[i]) details[i] = list;
};
// Adds run `i`'s script of `suffix`; `done` runs once it ran or failed.
function load(i, suffix, done) {
  const script = document.createElement("script");
  script.dataset.run = String(i);
  script.src = "site/" + runs[i] + suffix;
  script.onload = () => done(true);
  script.onerror = () => done(false);
  document.body.append(script);
}

function build() {
  all = [];
  tables.forEach((rows, r) => {
    (rows || []).forEach((p, i) => {
      if (!p || typeof p !== "object") return;
      const name = String(p.n || "");
      p.f = typeof p.f === "string" ? p.f : name + ".tgz";
      const dash = name.lastIndexOf("-");
      p.base = dash > 0 ? name.slice(0, dash) : name;
      p.version = dash > 0 ? name.slice(dash + 1) : "";
      p.name = name;
      p.key = [name, p.c, p.p, p.l, p.a].join(" ").toLowerCase();
      p.r = r;
      p.i = i;
      all.push(p);
    });
  });
  byFile = new Map(all.map((p) => [p.f, p]));
  for (const p of all) {
    if (!byBase.has(p.base)) byBase.set(p.base, []);
    byBase.get(p.base).push(p);
  }
}

// pkg_install's dewey order (lib/dewey.c): numbers, `.` and `_` as 0,
// alpha -3, beta -2, pre and rc -1, pl 0, a letter as 0 and its code,
// `nb` the revision; shorter versions padded with zeros.
function dewey(version) {
  const parts = [];
  let revision = 0;
  let s = version;
  while (s.length) {
    let m;
    if ((m = /^[0-9]+/.exec(s))) { parts.push(Number(m[0])); s = s.slice(m[0].length); }
    else if (s[0] === "." || s[0] === "_") { parts.push(0); s = s.slice(1); }
    else if ((m = /^nb([0-9]*)/.exec(s))) { revision = Number(m[1] || 0); s = s.slice(m[0].length); }
    else if (s.startsWith("alpha")) { parts.push(-3); s = s.slice(5); }
    else if (s.startsWith("beta")) { parts.push(-2); s = s.slice(4); }
    else if (s.startsWith("pre")) { parts.push(-1); s = s.slice(3); }
    else if (s.startsWith("rc")) { parts.push(-1); s = s.slice(2); }
    else if (s.startsWith("pl")) { parts.push(0); s = s.slice(2); }
    else if (/^[A-Za-z]/.test(s)) { parts.push(0, s.charCodeAt(0)); s = s.slice(1); }
    else s = s.slice(1);
  }
  return { parts, revision };
}
function compare(a, b) {
  const x = dewey(a), y = dewey(b);
  for (let i = 0; i < Math.max(x.parts.length, y.parts.length); i++) {
    const d = (x.parts[i] || 0) - (y.parts[i] || 0);
    if (d) return Math.sign(d);
  }
  return Math.sign(x.revision - y.revision);
}
// A pattern's alternatives: `{a,b}` expanded, at most 64.
function alternatives(pattern) {
  const open = pattern.indexOf("{");
  if (open < 0) return [pattern];
  let depth = 0, close = -1;
  for (let i = open; i < pattern.length; i++) {
    if (pattern[i] === "{") depth++;
    else if (pattern[i] === "}" && --depth === 0) { close = i; break; }
  }
  if (close < 0) return [pattern];
  const inner = pattern.slice(open + 1, close), choices = [];
  depth = 0;
  let start = 0;
  for (let i = 0; i <= inner.length; i++) {
    if (i === inner.length || (inner[i] === "," && depth === 0)) { choices.push(inner.slice(start, i)); start = i + 1; }
    else if (inner[i] === "{") depth++;
    else if (inner[i] === "}") depth--;
  }
  const out = [];
  for (const c of choices) {
    for (const rest of alternatives(pattern.slice(0, open) + c + pattern.slice(close + 1))) {
      if (out.length < 64) out.push(rest);
    }
  }
  return out;
}
function glob(pattern) {
  const re = pattern.replace(/[.+^$()|\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".");
  try { return new RegExp("^" + re + "$"); } catch { return null; }
}
// Whether the package satisfies one alternative, as pkg_match decides.
function matchesOne(pattern, p) {
  const op = pattern.search(/[<>]/);
  if (op > 0) {
    if (pattern.slice(0, op) !== p.base) return false;
    const tests = pattern.slice(op).match(/[<>]=?[^<>]+/g) || [];
    return tests.every((t) => {
      const eq = t[1] === "=", v = t.slice(eq ? 2 : 1), c = compare(p.version, v);
      return t[0] === ">" ? (eq ? c >= 0 : c > 0) : (eq ? c <= 0 : c < 0);
    });
  }
  if (/[*?[]/.test(pattern)) { const re = glob(pattern); return re ? re.test(p.name) : false; }
  return pattern === p.name;
}
// The newest package here that satisfies `pattern`, as pkg_add picks.
function satisfier(pattern) {
  let best = null;
  for (const alt of alternatives(pattern)) {
    const base = alt.split(/[<>*?[]/)[0].replace(/-$/, "");
    const candidates = /[*?[]/.test(alt) && !/[<>]/.test(alt) ? all : (byBase.get(base) || byBase.get(alt.replace(/-[^-]*$/, "")) || []);
    for (const p of candidates) {
      if (matchesOne(alt, p) && (!best || compare(p.version, best.version) > 0)) best = p;
    }
  }
  return best;
}

function el(tag, text, attrs) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  return node;
}
function safeUrl(url) { return /^https?:\/\//i.test(url || "") ? url : null; }
function size(bytes) {
  const n = Number(bytes);
  if (!Number.isFinite(n)) return "";
  return n < 1024 ? n + " B" : n < 1048576 ? (n / 1024).toFixed(1) + " KiB" : (n / 1048576).toFixed(1) + " MiB";
}
function row(p) {
  const tr = el("tr", undefined, { "data-file": p.f });
  const name = el("td");
  name.append(el("a", p.base, { href: "#p=" + encodeURIComponent(p.f) }));
  if (vulnerable.has(p.f)) name.append(el("span", " ⚠", { class: "warn", title: "named in pkg-vulnerabilities" }));
  tr.append(name, el("td", p.version), el("td", p.c), el("td", size(p.s), { class: "num" }),
    el("td", p.d), el("td", p.p), el("td", p.l), el("td", p.a));
  if (meta.signatures) tr.append(el("td", p.v || ""));
  return tr;
}
function filter(query) {
  const started = performance.now();
  const words = query.toLowerCase().split(/\s+/).filter(Boolean);
  const hits = words.length ? all.filter((p) => words.every((w) => p.key.includes(w))) : all;
  const body = document.createElement("tbody");
  for (const p of hits.slice(0, LIMIT)) body.append(row(p));
  $("rows").replaceWith(body);
  body.id = "rows";
  $("count").textContent = hits.length > LIMIT
    ? `${hits.length} packages match; the first ${LIMIT} are shown (type more to narrow)`
    : `${hits.length} of ${all.length} packages`;
  document.body.dataset.rows = String(Math.min(hits.length, LIMIT));
  document.body.dataset.matches = String(hits.length);
  document.body.dataset.filterMs = (performance.now() - started).toFixed(1);
}
let showing = null;
function detail(file) {
  showing = file;
  const box = $("detail");
  box.replaceChildren();
  delete box.dataset.ready;
  const p = byFile.get(file);
  if (!p) { box.hidden = true; return; }
  box.hidden = false;
  box.append(el("h2", p.name), el("p", p.c));
  const more = details[p.r];
  if (!more) {
    box.append(el("p", "Loading the description…", { class: "missing" }));
    load(p.r, ".details.js", (ok) => {
      if (showing !== file) return;
      if (!ok) { box.lastChild.textContent = "The description could not be loaded: reload the page."; box.dataset.ready = "failed"; return; }
      if (showing === file) detail(file);
    });
    return;
  }
  const d = more[p.i] && typeof more[p.i] === "object" ? more[p.i] : {};
  const dl = el("dl");
  const add = (term, value) => { if (value) { dl.append(el("dt", term)); const dd = el("dd"); dd.append(value); dl.append(dd); } };
  add("File", el("a", p.f, { href: encodeURIComponent(p.f), class: "file" }));
  const home = safeUrl(d.h);
  add("Homepage", home ? el("a", d.h, { href: home, rel: "noopener noreferrer", class: "home" }) : d.h ? document.createTextNode(d.h) : null);
  add("PKGPATH", document.createTextNode(p.p || ""));
  add("Built", document.createTextNode(p.d || ""));
  if (p.v) add("Signature", document.createTextNode(p.v));
  if (Array.isArray(d.D) && d.D.length) {
    const list = el("ul", undefined, { class: "depends" });
    for (const dep of d.D) {
      const item = el("li");
      const found = satisfier(String(dep));
      if (found) item.append(el("a", dep, { href: "#p=" + encodeURIComponent(found.f), title: found.name }), el("span", " → " + found.name));
      else item.append(el("span", dep), el("span", " (satisfied by no package here)", { class: "missing" }));
      list.append(item);
    }
    add("Depends on", list);
  }
  for (const v of vulnerable.get(p.f) || []) {
    const link = safeUrl(v.url);
    add("Vulnerability", link ? el("a", v.type + ": " + v.url, { href: link, rel: "noopener noreferrer" }) : document.createTextNode(v.type));
  }
  box.append(dl, el("pre", d.x || ""));
  box.dataset.ready = "1";
}
function route() {
  const params = new URLSearchParams(location.hash.slice(1));
  if (params.has("q")) { $("q").value = params.get("q"); filter($("q").value); }
  detail(params.get("p"));
}

const updated = meta.updated ? new Date(meta.updated * 1000).toISOString().replace("T", " ").slice(0, 16) + " UTC" : "never";
$("url").textContent = new URL(".", location.href).href;
if (meta.signatures) $("packages").classList.add("signed");
for (const c of meta.changes || []) {
  const when = new Date(c.time * 1000).toISOString().slice(0, 16).replace("T", " ");
  const parts = [];
  if (c.added && c.added.length) parts.push("added " + c.added.join(", "));
  if (c.removed && c.removed.length) parts.push("removed " + c.removed.join(", "));
  if (c.replaced && c.replaced.length) parts.push("replaced " + c.replaced.join(", "));
  if (c.more) parts.push(`and ${c.more} more`);
  if (c.note) parts.push(c.note);
  $("changes").append(el("li", `generation ${c.generation}, ${when}: ${parts.join("; ") || "no change listed"}`));
}
const findings = meta.vulnerabilities || [];
$("vulncount").textContent = meta.vulnerabilities_checked
  ? `${findings.length} packages named in pkg-vulnerabilities (as of ${new Date(meta.vulnerabilities_checked * 1000).toISOString().slice(0, 10)})`
  : "no pkg-vulnerabilities file is published here";
for (const v of findings) {
  const item = el("li");
  item.append(el("a", v.pkgname, { href: "#p=" + encodeURIComponent(v.file) }), el("span", ` ${v.type} `));
  const link = safeUrl(v.url);
  if (link) item.append(el("a", v.url, { href: link, rel: "noopener noreferrer" }));
  $("vulns").append(item);
}

// Once every run's table ran (or failed): the list, the filter, the
// detail the address names.
function start(failed) {
  build();
  const missing = failed ? ` · ${failed} of ${runs.length} parts could not be loaded: reload the page` : "";
  $("summary").textContent = `${all.length} packages · generation ${meta.generation} · updated ${updated}${missing}`;
  $("q").addEventListener("input", () => filter($("q").value));
  window.addEventListener("hashchange", route);
  filter("");
  route();
  document.body.dataset.ready = (performance.now()).toFixed(1);
}
// When the page first painted, for the benchmark (it may come before or
// after the rows).
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    if (entry.name === "first-contentful-paint") document.body.dataset.paintMs = entry.startTime.toFixed(1);
  }
}).observe({ type: "paint", buffered: true });
let pending = runs.length, failed = 0;
if (!pending) start(0);
runs.forEach((_, i) => load(i, ".js", (ok) => {
  if (!ok) failed++;
  if (--pending === 0) start(failed);
}));
