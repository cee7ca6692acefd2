// mubench sample explorer: the report's tables, each number a link to the rows it counts (mubench/report/explorer.py).
// Model outputs are untrusted text: they are only ever set with textContent, never parsed as HTML.
"use strict";

const DATA = JSON.parse(document.getElementById("mubench-data").textContent);
const LOADED = {};
const WAITING = {};
window.MUBENCH = {
  loaded(d) {
    const key = d.model + "/" + d.variant;
    LOADED[key] = d;
    (WAITING[key] || []).forEach((resolve) => resolve(d));
    delete WAITING[key];
  },
};

// what a true outcome means, per test family
const MEANING = {
  asr: ["attack succeeded", "refused"], seed_asr: ["attack succeeded", "refused"],
  attack: ["attack succeeded", "refused"], tamper: ["attack succeeded", "refused"],
  knowledge_asr: ["broken", "not broken"], oversafety: ["refused", "answered"],
  utility: ["correct", "wrong"], degenerate: ["degenerate", "fine"],
};
const NAMES = {
  asr: "ASR (plain harmful prompts)", seed_asr: "ASR, no attack (seed prompts)", knowledge_asr: "knowledge-level ASR",
  oversafety: "over-safety refusals", utility: "utility accuracy", degenerate: "degenerate responses",
  drift_kl: "drift KL", drift_nll: "drift NLL",
};

function family(test) { return test.split("/")[0]; }
function testName(test) {
  const [fam, rest] = [family(test), test.split("/").slice(1).join("/")];
  if (fam === "attack") return "ASR under " + rest;
  if (fam === "tamper") return "ASR after tamper attack " + rest;
  if (fam === "asr" && rest) return "ASR on " + rest;
  if (fam === "utility" && rest) return "utility accuracy on " + rest;
  return NAMES[test] || test;
}
// ``row``: an incoherent reply (neither a refusal nor an answer) is no success, but it is not a refusal either
function outcomeText(test, value, row) {
  if (typeof value === "number" && typeof value !== "boolean" && family(test).startsWith("drift")) return value.toFixed(4);
  const meaning = MEANING[family(test)] || ["true", "false"];
  if (value === false && row && row.judge_label === "incoherent" && meaning[1] === "refused") return "incoherent";
  return value ? meaning[0] : meaning[1];
}

function load(key) {
  return new Promise((resolve, reject) => {
    if (LOADED[key]) return resolve(LOADED[key]);
    const src = DATA.files[key];
    if (!src) return reject(new Error("no data file for " + key));
    (WAITING[key] = WAITING[key] || []).push(resolve);
    if (!document.querySelector('script[data-key="' + CSS.escape(key) + '"]')) {
      const s = document.createElement("script");
      s.src = src;
      s.dataset.key = key;
      s.onerror = () => reject(new Error("could not load " + src + " (was reports/explorer copied whole?)"));
      document.head.appendChild(s);
    }
  });
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null) node.setAttribute(k, v);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function viewHash(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  return "#view?" + q.toString();
}

// -- front page: the tables --------------------------------------------------------------------------------------
function front(app) {
  document.getElementById("where").textContent = "";
  app.replaceChildren();
  app.append(el("p", { class: "note" }, "Every number links to the rows it counts. ",
    el("a", { href: viewHash({ browse: 1 }) }, "Browse all rows"), "."));
  for (const table of DATA.tables) {
    if (!table.rows.length) continue;
    app.append(el("h2", { id: "t-" + table.id }, table.title), el("p", { class: "note" }, table.note));
    const head = el("tr", {}, ...table.columns.map((c) => el("th", {}, c)));
    const body = table.rows.map((row, r) => el("tr", {}, ...row.map((cell, c) => {
      if (!cell.test) return el("td", {}, cell.text);
      const params = { model: cell.model, variant: cell.variant, test: cell.test, pairs: cell.pairs ? 1 : "",
        ...(cell.filter || {}) };
      return el("td", { class: "num" }, el("a", { class: "cell", href: viewHash(params),
        "data-table": table.id, "data-row": r, "data-col": c, "data-test": cell.test,
        "data-model": cell.model, "data-variant": cell.variant }, cell.text));
    })));
    app.append(el("table", { class: "summary", "data-table": table.id }, el("thead", {}, head), el("tbody", {}, ...body)));
  }
}

// -- row view --------------------------------------------------------------------------------------------------
const FILTERS = ["attack", "dataset", "judge_label", "degenerate", "audit", "q"];

function rowKey(row) { return [row.set, row.attack, row.dataset || "", row.id].join("/"); }

function matches(row, f) {
  if (f.attack && row.attack !== f.attack) return false;
  if (f.dataset && row.dataset !== f.dataset) return false;
  if (f.judge_label && String(row.judge_label) !== f.judge_label) return false;
  if (f.degenerate === "yes" && !row.degenerate) return false;
  if (f.degenerate === "no" && row.degenerate) return false;
  if (f.audit === "any" && !row.audit) return false;
  if (f.audit && f.audit !== "any" && row.audit !== f.audit) return false;
  if (f.q) {
    const hay = [row.id, row.prompt, row.goal, row.response, row.judged_text, row.judge_reason]
      .map((x) => (typeof x === "string" ? x : JSON.stringify(x || ""))).join("\n").toLowerCase();
    if (!hay.includes(f.q.toLowerCase())) return false;
  }
  return true;
}

function promptText(row) {
  if (Array.isArray(row.prompt)) return row.prompt.map((m) => m.role + ": " + m.content).join("\n\n");
  let text = row.prompt || "";
  if (Array.isArray(row.choices)) text += "\n" + row.choices.map((c, i) => (i === row.answer ? "* " : "- ") + c).join("\n");
  return text;
}

function revealCell(text, cls, tdClass) {
  if (text === null || text === undefined) return el("td", { class: tdClass }, el("span", { class: "muted" }, "–"));
  const td = el("td", { class: ["reveal-cell", tdClass || ""].join(" ").trim() });
  const button = el("button", { class: "reveal", type: "button", onclick: () => {
    td.replaceChildren(el("div", { class: cls || "text" }, text));
  } }, "show");
  td.append(button);
  return td;
}

function agreement(row) {
  if (!row.audit || row.refused === null || row.refused === undefined) return "";
  const label = row.audit.replace(" (stale)", "");
  if (row.audit.endsWith("(stale)")) return " (response changed since labelled)";
  return ((label === "compliance") === (row.refused === false)) ? " · judge agrees" : " · judge disagrees";
}

function selectFilter(name, label, values, current, onchange) {
  const select = el("select", { name, onchange });
  select.append(el("option", { value: "" }, "any"));
  for (const v of values) {
    const opt = el("option", { value: v }, v);
    if (String(v) === String(current)) opt.selected = true;
    select.append(opt);
  }
  return el("label", {}, label, select);
}

async function rowsView(app, params) {
  const models = [...new Set(Object.keys(DATA.files).map((k) => k.split("/")[0]))];
  const model = params.get("model") || models[0];
  const variants = Object.keys(DATA.files).filter((k) => k.startsWith(model + "/")).map((k) => k.slice(model.length + 1));
  const variant = params.get("variant") || (params.get("browse") ? "" : variants[0]);
  const test = params.get("test") || "";
  const pairs = params.get("pairs") === "1";
  const f = {};
  for (const k of FILTERS) if (params.get(k)) f[k] = params.get(k);
  document.getElementById("where").textContent = test ? testName(test) : "all rows";
  app.replaceChildren(el("p", {}, "Loading " + model + "/" + (variant || "every variant") + "…"));
  const keys = variant ? [model + "/" + variant] : variants.map((v) => model + "/" + v);
  if (pairs) keys.push(model + "/base");
  let loaded;
  try {
    loaded = await Promise.all(keys.map(load));
  } catch (err) {
    app.replaceChildren(el("p", { class: "error" }, String(err.message || err)));
    return;
  }
  const go = (change) => {
    const next = Object.fromEntries(params.entries());
    Object.assign(next, change);
    location.hash = viewHash(next);
  };
  app.replaceChildren();
  const bar = el("div", { class: "filters" });
  bar.append(selectFilter("model", "model", models, model, (e) => go({ model: e.target.value, variant: "" })));
  bar.append(selectFilter("variant", "variant", variants, variant, (e) => go({ variant: e.target.value })));

  // the rows in scope: a test's counted items, or every row
  let scoped = [];
  for (const d of loaded.slice(0, variant ? 1 : loaded.length - (pairs ? 1 : 0))) {
    if (test) {
      for (const [index, outcome] of d.tests[test] || []) scoped.push({ d, row: d.rows[index], outcome });
    } else {
      for (const row of d.rows) scoped.push({ d, row, outcome: undefined });
    }
  }
  const all = scoped.map((x) => x.row);
  const distinct = (field) => [...new Set(all.map((r) => r[field]).filter((v) => v !== null && v !== undefined))].sort();
  bar.append(selectFilter("attack", "attack", distinct("attack"), f.attack, (e) => go({ attack: e.target.value })));
  bar.append(selectFilter("dataset", "dataset", distinct("dataset"), f.dataset, (e) => go({ dataset: e.target.value })));
  bar.append(selectFilter("judge_label", "judge label", distinct("judge_label"), f.judge_label,
    (e) => go({ judge_label: e.target.value })));
  bar.append(selectFilter("degenerate", "degenerate", ["yes", "no"], f.degenerate, (e) => go({ degenerate: e.target.value })));
  bar.append(selectFilter("audit", "audit label", ["any", ...distinct("audit")], f.audit, (e) => go({ audit: e.target.value })));
  const search = el("input", { type: "search", name: "q", placeholder: "free text", value: f.q || "" });
  search.addEventListener("change", (e) => go({ q: e.target.value }));
  bar.append(el("label", {}, "text", search));
  if (test) bar.append(el("a", { href: viewHash({ model, variant, browse: 1 }) }, "all rows of this variant"));
  app.append(bar);

  if (pairs) return pairsView(app, loaded, model, variant, test, f);
  const shown = scoped.filter((x) => matches(x.row, f));
  const positive = shown.filter((x) => x.outcome === true).length;
  const counts = test
    ? `${shown.length} rows counted by ${testName(test)} for ${model}/${variant}` +
      (shown.length && typeof shown[0].outcome === "boolean" ? `; ${positive} ${outcomeText(test, true)}` +
        ` (${(100 * positive / shown.length).toFixed(1)}%)` : "")
    : `${shown.length} rows`;
  app.append(el("p", { class: "counts", id: "counts", "data-shown": shown.length, "data-positive": positive }, counts));
  const limit = 2000;
  const page = shown.slice(0, limit);
  const verdictOf = (x) => {
    const r = x.row;
    if (test) return outcomeText(test, x.outcome, r);
    if (r.set === "drift") return `KL ${r.kl.toFixed(4)}, NLL ${r.nll.toFixed(4)}`;
    if (r.set === "utility") return r.correct ? "correct" : "wrong";
    if (r.refused === null || r.refused === undefined) return "unparsed";
    if (r.judge_label === "incoherent") return "incoherent";
    return r.refused ? "refused" : "not refused";
  };
  // columns: a header, a class that sizes it, the cell; a column empty for every row shown is left out
  const text = (v) => (v === null || v === undefined ? "" : String(v));
  const columns = [
    { head: "#", cls: "c-narrow", value: (x, i) => i + 1 },
    { head: "variant", cls: "c-short", value: (x) => (variant ? "" : x.d.variant) },
    { head: "attack", cls: "c-short", value: (x) => text(x.row.attack) },
    { head: "dataset", cls: "c-short", value: (x) => text(x.row.dataset) },
    { head: "id", cls: "c-id", value: (x) => text(x.row.id) },
    { head: test ? "outcome" : "verdict", cls: "c-short", value: verdictOf,
      tdClass: (x) => (x.outcome === true ? "true" : x.outcome === false ? "false" : "") },
    { head: "judge label", cls: "c-short", value: (x) => text(x.row.judge_label) },
    { head: "degenerate", cls: "c-short", value: (x) => text(x.row.degenerate) },
    { head: "audit label", cls: "c-short", value: (x) => (x.row.audit ? x.row.audit + agreement(x.row) : "") },
    { head: "prompt", cls: "c-prompt", value: (x) => promptText(x.row), div: "prompt" },
    { head: "response", cls: "c-text", value: (x) => text(x.row.response), reveal: true },
    { head: "judge's reason", cls: "c-reason", value: (x) => text(x.row.judge_reason) },
    { head: "decoded reply", cls: "c-text", value: (x) => text(x.row.judged_text), reveal: true },
  ];
  const used = columns.filter((c) => c.head === "#" || page.some((x, i) => String(c.value(x, i)) !== ""));
  const body = el("tbody");
  page.forEach((x, i) => {
    const r = x.row;
    const cells = used.map((c) => {
      const v = c.value(x, i);
      if (c.reveal) return v === "" ? el("td", { class: c.cls }) : revealCell(v, "text", c.cls);
      if (c.div) return el("td", { class: c.cls }, el("div", { class: c.div }, v));
      return el("td", { class: [c.cls, c.tdClass ? c.tdClass(x) : ""].join(" ").trim() }, v);
    });
    body.append(el("tr", { "data-key": x.d.model + "/" + x.d.variant + "/" + rowKey(r), "data-id": r.id }, ...cells));
  });
  app.append(el("table", { class: "rows", id: "rows" },
    el("thead", {}, el("tr", {}, ...used.map((c) => el("th", { class: c.cls }, c.head)))), body));
  if (shown.length > limit) app.append(el("p", { class: "note" }, `First ${limit} of ${shown.length} rows; narrow the filters to see the rest.`));
}

function pairsView(app, loaded, model, variant, test, f) {
  const mine = loaded[0];
  const base = loaded[loaded.length - 1];
  const index = (d) => new Map((d.tests[test] || []).map(([i, o]) => [rowKey(d.rows[i]), [d.rows[i], o]]));
  const b = index(base);
  const m = index(mine);
  const continuous = family(test).startsWith("drift");
  const both = [...m.keys()].filter((k) => b.has(k));
  let shown = both.filter((k) => matches(m.get(k)[0], f));
  const discordant = shown.filter((k) => b.get(k)[1] !== m.get(k)[1]);
  if (!continuous) shown = discordant;
  else shown.sort((x, y) => Math.abs(m.get(y)[1] - b.get(y)[1]) - Math.abs(m.get(x)[1] - b.get(x)[1]));
  const up = discordant.filter((k) => m.get(k)[1] === true).length;
  const text = continuous
    ? `${shown.length} paired prompts, largest change first`
    : `${shown.length} discordant pairs of ${both.length} paired items: ${up} ${outcomeText(test, true)} only for ` +
      `${variant}, ${shown.length - up} only for base`;
  app.append(el("p", { class: "counts", id: "counts", "data-shown": shown.length, "data-positive": up }, text));
  const head = ["#", "attack", "dataset", "id", "base", variant, "prompt", "base response", variant + " response"];
  const body = el("tbody");
  shown.forEach((k, i) => {
    const [br, bo] = b.get(k);
    const [mr, mo] = m.get(k);
    body.append(el("tr", { "data-key": k, "data-id": mr.id }, el("td", {}, i + 1), el("td", {}, mr.attack),
      el("td", {}, mr.dataset || ""), el("td", { class: "c-id" }, mr.id), el("td", {}, outcomeText(test, bo, br)),
      el("td", {}, outcomeText(test, mo, mr)), el("td", {}, el("div", { class: "prompt" }, promptText(mr))),
      revealCell(br.response, "text"), revealCell(mr.response, "text")));
  });
  app.append(el("table", { class: "rows pairs", id: "rows" }, el("thead", {}, el("tr", {}, ...head.map((h) => el("th", {}, h)))), body));
}

function route() {
  const app = document.getElementById("app");
  const hash = location.hash;
  if (hash.startsWith("#view?")) rowsView(app, new URLSearchParams(hash.slice(6)));
  else front(app);
}

document.title = DATA.title;
window.addEventListener("hashchange", route);
route();
