// tstam serve: the page. Uses the same HTTP API as any script (see /docs): GET /api/model and
// /api/samples at start; POST /api/jobs with the video (upload progress from the browser), then
// GET /api/jobs/{id} every 250 ms for the stages, and the result with its pictures.
"use strict";

const $ = (sel) => document.querySelector(sel);
const POLL_MS = 250;
let model = null;
let running = false;

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") e.textContent = v; else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

function fmt(p) { return p.toFixed(3); }
function secs(s) { return s == null ? "" : s < 1 ? `${(s * 1000).toFixed(0)} ms` : `${s.toFixed(2)} s`; }

async function getJSON(url) {
  const r = await fetch(url, { cache: "no-store" });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.detail || `${url}: HTTP ${r.status}`);
  return body;
}

// ---- the model and the samples ----------------------------------------------------------------

function kvTable(rows) {
  const t = el("table", { class: "kv" });
  for (const [k, v] of rows) t.append(el("tr", {}, el("th", { text: k }), el("td", { text: v })));
  return t;
}

function renderModel(m) {
  const box = $("#model-info");
  const streams = el("div", { class: "streams" });
  for (const [name, s] of Object.entries(m.streams)) {
    const c = s.model_config, pre = s.preprocess;
    const rows = [
      ["file", s.file],
      ["backbone", `BN-Inception x${c.width_mult}, ${c.se_blocks.length ? "with" : "no"} SE`],
      ["head", `${c.head}, ${c.num_heads} spatial heads`],
      ["input", `${c.input_size}x${c.input_size} crops of ${s.data.resize.join("x")} frames, ` +
                `${s.data.test_frames} snippets x ${c.new_length ?? (name === "flow" ? 5 : 1)} frame(s)`],
      ["normalise", `${pre.channel_order}, x${pre.scale}, mean ${pre.mean.join("/")}, std ${pre.std.join("/")}`],
    ];
    if (s.flow) rows.push(["flow", `${s.flow.algorithm}, bound ${s.flow.bound}`]);
    streams.append(el("div", {}, el("h3", { text: `${name} stream` }), kvTable(rows)));
  }
  const w = Object.entries(m.weights).map(([k, v]) => `${k} ${v}`).join(" : ");
  box.replaceChildren(streams, kvTable([
    ["fusion", w + " (weighted mean of probabilities)"],
    ["classes", String(m.classes.length)],
    ["server", `${m.limits.workers} worker(s), queue ${m.limits.queue}, ${m.limits.torch_threads} torch thread(s), ` +
               `uploads up to ${(m.limits.max_upload_bytes / 2 ** 20).toFixed(0)} MB`],
    ["tstam", m.tstam],
  ]));
  $("#classes-title").textContent = `classes (${m.classes.length})`;
  $("#classes").replaceChildren(...m.classes.map((c) => el("li", { text: c })));
  $("#limit").textContent = `.avi, .mp4, .webm, .mkv, ... up to ${(m.limits.max_upload_bytes / 2 ** 20).toFixed(0)} MB`;
  $("#crops").value = String(m.defaults.crops);
  $("#top-k").value = String(m.defaults.top_k);
  $("#w-rgb").value = m.weights.rgb ?? 1;
  $("#w-flow").value = m.weights.flow ?? 3;
  $("#w-rgb").disabled = !("rgb" in m.streams);
  $("#w-flow").disabled = !("flow" in m.streams);
}

function renderSamples(samples) {
  if (!samples.length) return;
  const list = $("#sample-list");
  for (const s of samples) {
    const b = el("button", { class: "chip", type: "button", "data-sample": s.name },
      s.label || s.name, el("small", { text: s.about + (s.label && !s.in_model ? "; not a class of this model" : "") }));
    b.addEventListener("click", async () => {
      if (running) return;
      try {
        const r = await fetch(s.url);
        if (!r.ok) throw new Error(`${s.url}: HTTP ${r.status}`);
        submit(new File([await r.blob()], s.name));
      } catch (e) { showError(String(e.message || e)); }
    });
    list.append(b);
  }
  $("#samples").hidden = false;
}

// ---- a job: upload, stages, result ------------------------------------------------------------

function expectedStages() {
  const st = ["upload", "queue", "decode"];
  if (model && "rgb" in model.streams) st.push("model rgb");
  if (model && "flow" in model.streams) st.push("flow flow", "model flow");
  st.push("pictures");
  return st;
}

function stageKey(s) { return s.stream && s.name !== "decode" ? `${s.name} ${s.stream}` : s.name; }

function renderStages(job, uploadFraction) {
  const seen = new Map((job ? job.stages : []).map((s) => [stageKey(s), s]));
  const items = expectedStages().map((key) => {
    const s = seen.get(key);
    const [name, stream] = key.split(" ");
    const label = name === "model" ? `model (${stream})` : name;
    const bar = el("progress", { max: "1" });
    let cls = "";
    if (s && s.seconds != null) { cls = "done"; bar.value = 1; }
    else if (s || (key === "upload" && uploadFraction != null)) {
      cls = "active";
      if (key === "upload" && uploadFraction != null && uploadFraction < 1) bar.value = uploadFraction;
      else bar.removeAttribute("value");  // indeterminate: running
    } else bar.value = 0;
    return el("li", { class: cls, "data-stage": key }, el("span", { class: "name", text: label }), bar,
      el("span", { class: "secs", text: s ? secs(s.seconds) : "" }));
  });
  $("#stages").replaceChildren(...items);
}

function showError(msg) {
  $("#progress").hidden = false;
  const e = $("#error");
  e.textContent = msg;
  e.hidden = false;
  running = false;
}

function formData(file) {
  const fd = new FormData();
  fd.append("file", file, file.name);
  fd.append("crops", $("#crops").value);
  fd.append("top_k", $("#top-k").value || "5");
  if (model && Object.keys(model.streams).length > 1) fd.append("weights", `${$("#w-rgb").value},${$("#w-flow").value}`);
  fd.append("pictures", "true");
  return fd;
}

function submit(file) {
  if (running) return;
  running = true;
  $("#error").hidden = true;
  $("#result").hidden = true;
  $("#progress").hidden = false;
  $("#job-name").textContent = file.name;
  renderStages(null, 0);
  const xhr = new XMLHttpRequest();
  xhr.open("POST", "/api/jobs");
  xhr.upload.onprogress = (ev) => { if (ev.lengthComputable) renderStages(null, ev.loaded / ev.total); };
  xhr.onload = () => {
    let body = {};
    try { body = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
    if (xhr.status === 202) { renderStages(body); setTimeout(() => poll(body.id), POLL_MS); return; }
    const retry = xhr.getResponseHeader("Retry-After");
    showError(`${xhr.status}: ${body.detail || xhr.statusText}` + (retry ? ` (try again in ${retry} s)` : ""));
  };
  xhr.onerror = () => showError("the upload failed: the server did not answer");
  xhr.send(formData(file));
}

async function poll(id) {
  let job;
  try { job = await getJSON(`/api/jobs/${encodeURIComponent(id)}`); } catch (e) { showError(String(e.message || e)); return; }
  renderStages(job);
  if (job.state === "done") { running = false; renderResult(job.result); }
  else if (job.state === "failed") showError(`${job.status}: ${job.error}`);
  else setTimeout(() => poll(id), POLL_MS);
}

function topTable(title, classes, probs, k, stream) {
  const order = probs.map((p, i) => [p, i]).sort((a, b) => b[0] - a[0] || a[1] - b[1]).slice(0, k);
  const t = el("table", { class: "topk", "data-stream": stream }, el("caption", { text: title }));
  const body = el("tbody");
  order.forEach(([p, i], rank) => {
    const fill = el("span");
    fill.style.width = `${(100 * p).toFixed(1)}%`;
    body.append(el("tr", {}, el("td", { text: String(rank + 1) }), el("td", { class: "cls", text: classes[i] }),
      el("td", { class: "p" }, el("div", { class: "bar" }, fill, el("b", { text: fmt(p) })))));
  });
  t.append(el("thead", {}, el("tr", {}, el("th", { text: "#" }), el("th", { text: "class" }),
    el("th", { text: "probability" }))), body);
  return t;
}

function renderResult(r) {
  const k = r.top.length;
  const streams = Object.keys(r.probabilities).filter((n) => n !== "fused");
  const w = Object.entries(r.weights).map(([n, v]) => `${n} ${v}`).join(" : ");
  $("#top1").textContent = `${r.label} (${fmt(r.top[0].probability)})`;
  $("#summary").textContent = `${r.video}: ${r.num_frames} frames decoded, ${r.frame_indices.length} snippets, ` +
    `${r.job.crops} crop(s) each` + (streams.length > 1 ? `, fused ${w}` : "");
  const tables = [];
  if (streams.length > 1) tables.push(topTable(`fused (${w})`, r.classes, r.probabilities.fused, k, "fused"));
  for (const s of streams) tables.push(topTable(s, r.classes, r.probabilities[s], k, s));
  $("#tables").replaceChildren(...tables);
  const pics = r.pictures || {};
  const png = pics["attention.png"], gif = pics["animation.gif"];
  $("#attention").src = png || "";
  $("#attention-link").href = png || "#";
  $("#animation").src = gif || "";
  $("#animation").parentElement.hidden = !gif;
  const rows = [];
  for (const s of r.job.stages) rows.push([s.name === "model" ? `model (${s.stream})` : s.name, secs(s.seconds)]);
  rows.push(["total (server)", secs(r.job.seconds)]);
  $("#timings").replaceChildren(...kvTable(rows).children);
  $("#result").hidden = false;
}

// ---- start ------------------------------------------------------------------------------------

function wireInput() {
  const drop = $("#drop"), input = $("#file");
  input.addEventListener("click", () => { input.value = ""; });  // so that choosing the same file again is a change
  input.addEventListener("change", () => { if (input.files.length) submit(input.files[0]); });
  for (const ev of ["dragenter", "dragover"]) drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.add("over"); });
  for (const ev of ["dragleave", "drop"]) drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.remove("over"); });
  drop.addEventListener("drop", (e) => { if (e.dataTransfer.files.length) submit(e.dataTransfer.files[0]); });
}

async function init() {
  $("#origin").textContent = location.origin;
  wireInput();
  try {
    model = await getJSON("/api/model");
    renderModel(model);
    renderSamples(await getJSON("/api/samples"));
  } catch (e) { showError(`cannot reach the server: ${e.message || e}`); }
  document.body.dataset.ready = "1";
}

init();
