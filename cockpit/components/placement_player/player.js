// The placement player (see cockpit/components/player.py for the bundle it receives).
// Speaks Streamlit's component protocol (v1) with plain postMessage: componentReady, render, setFrameHeight,
// setComponentValue. Frames are kept here; the page sends only the new ones, so playback never waits on Python.
"use strict";

const Q16 = 65535;
const CELL = "rgba(11, 92, 173, 0.55)";
const CELL_AFTER = "rgba(11, 92, 173, 0.8)";
const GHOST = "rgba(120, 130, 145, 0.28)";
const MOVE = "rgba(232, 89, 12, 0.85)";
const IO = "#d9480f";
const DIE = "#1b2330";
const HPWL_C = "#0b5cad";
const OVF_C = "#d9480f";
const MAX_MOVE_LINES = 4000;

const S = {
  key: null, base: null, frames: [], stage: null, stages: [], curves: null, live: false, done: false,
  idx: 0, playing: false, mode: "idle", pace: 0.5, stageDwell: 1, userPace: false, liveFps: 8, lastStep: 0,
  autoplay: false, autoplayed: false, userHeld: false, pendingReplay: false, lastAsk: 0,
  advances: [], advanceModes: [], draws: [], drawModes: [], vt: [], lastBatch: 0, batchMs: 1000, lag: 1100, lastU: -1, lastDraw: 0, drawMs: [], height: 0, luts: {},
};
window.__player = S; // read by tests and the fps measurement

const $ = (id) => document.getElementById(id);
const root = $("player");

function send(type, payload) {
  window.parent.postMessage(Object.assign({ isStreamlitMessage: true, type: type }, payload || {}), "*");
}

// ------------------------------------------------------------------ decoding
function bytes(s) {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}
function u16(s) { const b = bytes(s); return new Uint16Array(b.buffer, 0, b.length >> 1); }
function map8(m) { return m ? { ny: m.shape[0], nx: m.shape[1], q: bytes(m.q), img: null } : null; }

function decodeFrame(f) {
  return { it: f.it, hpwl: f.hpwl, overflow: f.overflow, x: u16(f.x), y: u16(f.y),
           density: map8(f.density), rudy: map8(f.rudy) };
}

function lut(scale) {
  // 256 RGBA entries interpolated between the scale's stops (the same stops Plotly uses on the other pages)
  if (S.luts[scale.quantity]) return S.luts[scale.quantity];
  const stops = scale.stops.map(([p, c]) => [p, parseInt(c.slice(1, 3), 16), parseInt(c.slice(3, 5), 16),
                                             parseInt(c.slice(5, 7), 16)]);
  const out = new Uint8ClampedArray(256 * 4);
  for (let i = 0; i < 256; i++) {
    const t = i / 255;
    let k = 0;
    while (k < stops.length - 2 && t > stops[k + 1][0]) k++;
    const [p0, r0, g0, b0] = stops[k], [p1, r1, g1, b1] = stops[k + 1];
    const u = p1 > p0 ? Math.min(1, Math.max(0, (t - p0) / (p1 - p0))) : 0;
    out[4 * i] = r0 + u * (r1 - r0); out[4 * i + 1] = g0 + u * (g1 - g0); out[4 * i + 2] = b0 + u * (b1 - b0);
    out[4 * i + 3] = 255;
  }
  S.luts[scale.quantity] = out;
  return out;
}

function mapImage(m, scale) {
  if (m.img) return m.img;
  const c = document.createElement("canvas");
  c.width = m.nx; c.height = m.ny;
  const ctx = c.getContext("2d");
  const im = ctx.createImageData(m.nx, m.ny);
  const L = lut(scale);
  for (let r = 0; r < m.ny; r++) {          // row 0 is the bottom bin row; images start at the top
    const dst = (m.ny - 1 - r) * m.nx;
    for (let j = 0; j < m.nx; j++) {
      const v = m.q[r * m.nx + j] * 4, o = (dst + j) * 4;
      im.data[o] = L[v]; im.data[o + 1] = L[v + 1]; im.data[o + 2] = L[v + 2]; im.data[o + 3] = 255;
    }
  }
  ctx.putImageData(im, 0, 0);
  m.img = c;
  return c;
}

// ------------------------------------------------------------------ protocol
function reset(key) {
  S.key = key; S.base = null; S.frames = []; S.stage = null; S.stages = []; S.curves = null; S.idx = 0; S.playing = false;
  S.mode = "idle"; S.userHeld = false; S.autoplayed = false; S.pendingReplay = false; S.advances = []; S.advanceModes = []; S.vt = []; S.lastBatch = 0; S.batchMs = 1000; S.lag = 1100; S.lastDraw = 0; S.lastU = -1; S.luts = {};
}

function askResend() {
  const now = performance.now();
  if (now - S.lastAsk < 1500) return;
  S.lastAsk = now;
  send("streamlit:setComponentValue", { value: { resend: Date.now() + Math.random() }, dataType: "json" });
}

function onRender(a) {
  if (!a || !a.run_key) return;
  if (a.run_key !== S.key) reset(a.run_key);
  if (a.base) { S.base = a.base; S.base.wq = a.base.w ? u16(a.base.w) : null; S.base.hq = a.base.h ? u16(a.base.h) : null;
                S.base.io = a.base.io ? { x: u16(a.base.io.x), y: u16(a.base.io.y) } : null; legends(); }
  if (!S.base || a.start > S.frames.length) { askResend(); return; }   // a gap: ask for everything again
  const had = S.frames.length;
  for (let i = 0; i < a.frames.length; i++) S.frames[a.start + i] = decodeFrame(a.frames[i]);
  spread(had, performance.now());
  if (a.stage) {   // the stages after global placement, each its own picture (legal, detailed; or one "final")
    S.stage = { info: a.stage };
    S.stages = (a.stage.steps || []).map((e) => ({ name: e.name, label: e.label, hpwl: e.hpwl, x: u16(e.x),
                                                    y: u16(e.y), density: map8(e.density) }));
    stageButtons();
  }
  if (a.curves) S.curves = a.curves;
  S.live = !!a.live; S.done = !!a.done; S.liveFps = a.live_fps || 8; S.stageDwell = a.stage_dwell || 1; S.autoplay = !!a.autoplay;
  if (!S.userPace && a.pace) { S.pace = a.pace; $("pace").value = a.pace; paceText(); }
  if (S.live) {
    if (S.mode !== "live" && !S.userHeld) { S.mode = "live"; S.playing = true; S.lastStep = performance.now(); }
  } else if (S.mode === "live") {
    S.pendingReplay = S.done && S.autoplay;   // show the last live frames first, then replay by itself
  } else if (S.mode === "idle") {
    S.mode = "replay";
    if (S.done && S.autoplay && !S.autoplayed) { startReplay(); }
    else { S.idx = count() - 1; }              // an old run: show its end, Play replays it
  }
  controls();
  if (!(S.mode === "live" && S.playing)) draw();   // live: the playback loop draws (gliding, no jump back)
}

window.addEventListener("message", (e) => {
  const d = e.data;
  if (d && d.type === "streamlit:render") onRender(d.args);
});

// ------------------------------------------------------------------ playback
function count() { return S.frames.length + S.stages.length; }
function stageAt(i) { return i >= S.frames.length ? S.stages[i - S.frames.length] || null : null; }

function startReplay() {
  S.autoplayed = true; S.pendingReplay = false; S.mode = "replay"; S.idx = 0; S.playing = true;
  S.lastStep = performance.now(); controls();
}

// Live frames come in batches (the page sends about once a second). Each new frame gets a time on an even
// spread over the time since the previous batch, and the player shows the frame of LIVE_LAG_MS ago, gliding
// between two frames: the picture moves at the placer's own pace, without stop-and-go, one batch behind it.
// The lag follows the time between batches (about a second; more on a busy server).
const CATCH_UP = 12;   // a player that joins late glides through only the last frames of a batch
function spread(had, now) {
  const n = S.frames.length;
  if (n <= had) return;
  const gap = S.lastBatch ? now - S.lastBatch : 1000;
  S.batchMs = S.lastBatch ? 0.6 * S.batchMs + 0.4 * gap : 1000;
  S.lag = Math.max(600, Math.min(4000, 1.2 * S.batchMs));
  const period = Math.max(200, Math.min(4000, gap));
  S.lastBatch = now;
  const first = Math.max(had, n - CATCH_UP);
  for (let i = had; i < first; i++) S.vt[i] = now - period - 4000;   // already in the past: skipped
  for (let i = first; i < n; i++) S.vt[i] = now - period + ((i - first + 1) / (n - first)) * period;
}

function step(now) {
  if (!S.playing) return;
  if (S.mode === "live") {
    const target = now - S.lag, n = S.frames.length;
    let i = S.idx;
    while (i + 1 < n && S.vt[i + 1] <= target) i++;
    if (i === n - 1 && i === S.idx) {   // at the newest frame: wait for more, or replay once placement has ended
      if (!S.lastDraw) draw();            // (the very first frame is drawn at once)
      if (!S.live) {
        if (S.pendingReplay) startReplay();
        else { S.playing = false; S.mode = "replay"; S.idx = count() - 1; draw(); controls(); }   // the result
      }
      return;
    }
    // Glide pictures between two frames: at most liveFps a second, and on a busy machine (slow draws) at most a
    // fifth of the time, leaving the CPU to the placer that makes the frames; a new frame is drawn as it comes.
    const lastMs = S.drawMs.length ? S.drawMs[S.drawMs.length - 1] : 0;
    if (i === S.idx && now - S.lastDraw < Math.max(1000 / S.liveFps, 5 * lastMs)) return;
    const u = i + 1 < n ? Math.max(0, Math.min(1, (target - S.vt[i]) / Math.max(1, S.vt[i + 1] - S.vt[i]))) : 0;
    if (i === S.idx && Math.abs(u - S.lastU) < 0.01) return;   // nothing new to show
    if (i !== S.idx) {
      S.idx = i;
      S.advances.push(now); S.advanceModes.push(S.mode);
      controls();
    }
    S.lastU = u;
    draw(u);
    return;
  }
  const interval = S.pace * 1000 * (stageAt(S.idx) ? S.stageDwell : 1);   // a stage stays longer
  if (now - S.lastStep < interval) return;
  if (S.idx >= count() - 1) { S.playing = false; controls(); return; }
  S.idx += 1;
  // keep the cadence (a late tick does not push every later frame back), but never run ahead after a stall
  S.lastStep = now - S.lastStep < 2 * interval ? S.lastStep + interval : now;
  S.advances.push(now); S.advanceModes.push(S.mode);   // for tests and the fps measurement
  if (S.advances.length > 2000) { S.advances.splice(0, 1000); S.advanceModes.splice(0, 1000); }
  draw();
  controls();
}

let lastRaf = 0;
function loop(now) { lastRaf = performance.now(); step(now); requestAnimationFrame(loop); }
requestAnimationFrame(loop);
// A hidden or throttled iframe gets no animation frames: a timer keeps the player going (and its counter true).
setInterval(() => { if (performance.now() - lastRaf > 250) step(performance.now()); }, 50);

$("play").addEventListener("click", () => {
  if (S.playing) { S.playing = false; S.userHeld = S.live; }
  else if (S.live) { S.mode = "live"; S.playing = true; S.userHeld = false; S.lastStep = performance.now(); }
  else {
    if (S.idx >= count() - 1) S.idx = 0;
    S.mode = "replay"; S.playing = true; S.autoplayed = true; S.pendingReplay = false; S.lastStep = performance.now();
    draw();
  }
  controls();
});
$("slider").addEventListener("input", (e) => {
  S.playing = false; S.pendingReplay = false; S.userHeld = S.live; if (S.mode === "live") S.mode = "replay";
  S.idx = Math.max(0, Math.min(count() - 1, parseInt(e.target.value, 10) || 0)); draw(); controls();
});
function stageButtons() {
  // jump to the end of global placement, or to a stage after it
  const el = $("stage-btns");
  if (!S.stages.length) { el.innerHTML = ""; return; }
  const names = { global: "Global", legal: "Legal", detailed: "Detailed", final: "Legal + detailed" };
  el.innerHTML = `<span class="lbl">Stages:</span>` + ["global"].concat(S.stages.map((e) => e.name))
    .map((n, k) => `<button type="button" data-go="${k}" aria-label="Show stage ${names[n]}">${names[n]}</button>`)
    .join(`<span class="arrow">→</span>`);
  for (const b of el.querySelectorAll("button")) {
    b.addEventListener("click", () => {
      S.playing = false; S.pendingReplay = false; S.userHeld = S.live; if (S.mode === "live") S.mode = "replay";
      S.idx = S.frames.length - 1 + parseInt(b.dataset.go, 10); draw(); controls();
    });
  }
}
function paceText() { $("pace-text").textContent = `${Number(S.pace).toFixed(2)} s / frame`; }
$("pace").addEventListener("input", (e) => { S.pace = parseFloat(e.target.value); S.userPace = true; paceText(); });

function controls() {
  const n = count();
  const sl = $("slider");
  sl.max = String(Math.max(0, n - 1));
  sl.value = String(S.idx);
  $("play").innerHTML = S.playing ? "&#10074;&#10074; Pause" : "&#9654; Play";
  $("play").setAttribute("aria-label", S.playing ? "Pause" : "Play");
  const badge = $("badge");
  badge.className = "badge" + (S.mode === "live" ? " live" : "");
  badge.textContent = S.mode === "live" ? "● live" : S.playing ? "replay" : S.mode === "idle" ? "waiting" : "paused";
  root.dataset.frame = String(S.idx);
  root.dataset.frames = String(n);
  root.dataset.mode = S.mode;
  root.dataset.playing = S.playing ? "1" : "0";
}

// ------------------------------------------------------------------ drawing
function fmt(v, d) { return v === null || v === undefined ? "–" : Number(v).toLocaleString("en-US", { maximumFractionDigits: d || 0 }); }

function legends() {
  const b = S.base;
  $("lg-cells").innerHTML =
    `<span class="key"><span class="sw" style="background:${CELL}"></span>cells (${fmt(b.drawn)} drawn of ${fmt(b.cells)})</span>` +
    `<span class="key"><span class="sw" style="background:${IO}"></span>I/O pins</span>` +
    `<span class="key">axes in µm</span>`;
  for (const q of ["density", "rudy"]) {
    const s = b.scales[q];
    const grad = s.stops.map(([p, c]) => `${c} ${(100 * p).toFixed(1)}%`).join(", ");
    const el = $("lg-" + q);
    el.dataset.zmin = String(s.zmin); el.dataset.zmax = String(s.zmax); el.dataset.quantity = s.quantity;
    el.innerHTML = `<div class="grad" style="background: linear-gradient(to right, ${grad})"></div>` +
      `<div class="ends"><span class="zmin">${s.zmin}</span><span class="zmax">≥ ${s.zmax}</span></div>` +
      `<div class="unit">${s.unit} · one fixed scale for the whole run</div>`;
  }
}

function sizeCanvas(c, w, h) {
  const dpr = window.devicePixelRatio || 1;
  const W = Math.round(w * dpr), H = Math.round(h * dpr);
  if (c.width !== W || c.height !== H) { c.width = W; c.height = H; c.style.height = h + "px"; }
  const ctx = c.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  return ctx;
}

function geometry(c) {
  // the box (um) fitted into the panel width; the same transform for all three panels
  const [x0, y0, x1, y1] = S.base.box;
  const w = c.parentElement.clientWidth || 300;
  const aspect = (y1 - y0) / Math.max(x1 - x0, 1e-9);
  const h = Math.max(120, Math.min(w * aspect, 560));
  const pad = 6;
  const sc = Math.min((w - 2 * pad) / (x1 - x0), (h - 2 * pad) / (y1 - y0));
  const ox = (w - sc * (x1 - x0)) / 2, oy = (h - sc * (y1 - y0)) / 2;
  return { w, h, sc, X: (um) => ox + (um - x0) * sc, Y: (um) => h - oy - (um - y0) * sc,
           qx: (q) => ox + (q / Q16) * (x1 - x0) * sc, qy: (q) => h - oy - (q / Q16) * (y1 - y0) * sc,
           qw: (q) => (q / Q16) * (x1 - x0) * sc, qh: (q) => (q / Q16) * (y1 - y0) * sc };
}

function outline(ctx, g) {
  const [x0, y0, x1, y1] = S.base.box, [c0, d0, c1, d1] = S.base.core;
  ctx.strokeStyle = "#c9d1db"; ctx.lineWidth = 1;
  ctx.strokeRect(g.X(c0), g.Y(d1), (c1 - c0) * g.sc, (d1 - d0) * g.sc);
  ctx.strokeStyle = DIE; ctx.lineWidth = 1.5;
  ctx.strokeRect(g.X(x0), g.Y(y1), (x1 - x0) * g.sc, (y1 - y0) * g.sc);
}

function cells(ctx, g, xs, ys, colour, xb, yb, u) {
  // xb, yb, u: the next frame and how far towards it (0..1) the cells are drawn
  const wq = S.base.wq, hq = S.base.hq, n = xs.length, tween = xb && u > 0;
  ctx.fillStyle = colour;
  ctx.beginPath();
  for (let i = 0; i < n; i++) {
    const w = wq ? Math.max(1, g.qw(wq[i])) : 2, h = hq ? Math.max(1, g.qh(hq[i])) : 2;
    const x = tween ? xs[i] + u * (xb[i] - xs[i]) : xs[i], y = tween ? ys[i] + u * (yb[i] - ys[i]) : ys[i];
    ctx.rect(g.qx(x), g.qy(y) - h, w, h);
  }
  ctx.fill();
}

function drawCells(f, st, next, u) {
  // st: a stage after global placement (legal, detailed, final): the stage before it in grey, each cell's move
  const c = $("c-cells"), g = geometry(c), ctx = sizeCanvas(c, g.w, g.h);
  ctx.fillStyle = "#fafbfc"; ctx.fillRect(0, 0, g.w, g.h);
  outline(ctx, g);
  if (st) {
    const k = S.stages.indexOf(st), prev = k > 0 ? S.stages[k - 1] : S.frames[S.frames.length - 1];
    cells(ctx, g, prev.x, prev.y, GHOST);
    cells(ctx, g, st.x, st.y, CELL_AFTER);
    const wq = S.base.wq, hq = S.base.hq, n = st.x.length, every = Math.max(1, Math.ceil(n / MAX_MOVE_LINES));
    ctx.strokeStyle = MOVE; ctx.lineWidth = 1; ctx.beginPath();
    for (let i = 0; i < n; i += every) {   // each cell's move, centre to centre, over both
      if (prev.x[i] === st.x[i] && prev.y[i] === st.y[i]) continue;
      const dw = wq ? g.qw(wq[i]) / 2 : 1, dh = hq ? g.qh(hq[i]) / 2 : 1;
      ctx.moveTo(g.qx(prev.x[i]) + dw, g.qy(prev.y[i]) - dh);
      ctx.lineTo(g.qx(st.x[i]) + dw, g.qy(st.y[i]) - dh);
    }
    ctx.stroke();
  } else {
    cells(ctx, g, f.x, f.y, CELL, next && next.x, next && next.y, u);
  }
  const io = S.base.io;
  if (io) {
    ctx.fillStyle = IO;
    for (let i = 0; i < io.x.length; i++) {
      const x = g.qx(io.x[i]), y = g.qy(io.y[i]);
      ctx.beginPath(); ctx.moveTo(x, y - 4); ctx.lineTo(x + 4, y); ctx.lineTo(x, y + 4); ctx.lineTo(x - 4, y); ctx.fill();
    }
  }
}

function drawMap(id, m, scale, next, u) {
  const c = $(id), g = geometry(c), ctx = sizeCanvas(c, g.w, g.h);
  ctx.fillStyle = "#fafbfc"; ctx.fillRect(0, 0, g.w, g.h);
  const [c0, d0, c1, d1] = S.base.core;
  ctx.imageSmoothingEnabled = false;
  if (m) ctx.drawImage(mapImage(m, scale), g.X(c0), g.Y(d1), (c1 - c0) * g.sc, (d1 - d0) * g.sc);
  if (m && next && u > 0) {   // between two live frames: the next map fades in
    ctx.globalAlpha = u;
    ctx.drawImage(mapImage(next, scale), g.X(c0), g.Y(d1), (c1 - c0) * g.sc, (d1 - d0) * g.sc);
    ctx.globalAlpha = 1;
  }
  outline(ctx, g);
}

function curveData() {
  if (S.curves) return { it: S.curves.iteration, hpwl: S.curves.hpwl, ov: S.curves.overflow };
  return { it: S.frames.map((f) => f.it), hpwl: S.frames.map((f) => f.hpwl), ov: S.frames.map((f) => f.overflow) };
}

function drawCurves(f, st) {
  const c = $("c-curves"), w = c.parentElement.clientWidth || 600, h = 170, ctx = sizeCanvas(c, w, h);
  ctx.clearRect(0, 0, w, h);
  const d = curveData();
  if (!d.it.length) return;
  const L = 84, R = 40, T = 22, B = 26, pw = w - L - R, ph = h - T - B;
  const itMax = Math.max(1, d.it[d.it.length - 1]);
  let hMax = 0; for (const v of d.hpwl) if (v > hMax) hMax = v;
  for (const e of S.stages) if (e.hpwl) hMax = Math.max(hMax, e.hpwl);
  hMax = hMax * 1.08 || 1;
  const X = (it) => L + (it / itMax) * pw, YH = (v) => T + ph - (v / hMax) * ph, YO = (v) => T + ph - (Math.min(v, 1.05) / 1.05) * ph;
  ctx.fillStyle = "#fafbfc"; ctx.fillRect(L, T, pw, ph);
  ctx.strokeStyle = "#c9d1db"; ctx.lineWidth = 1; ctx.strokeRect(L, T, pw, ph);
  ctx.font = "12px sans-serif"; ctx.fillStyle = "#3b4a5c";
  ctx.textAlign = "right"; ctx.fillText(fmt(hMax) + " µm", L - 4, T + 10); ctx.fillText("0", L - 4, T + ph);
  ctx.textAlign = "left"; ctx.fillText("1.0", L + pw + 4, YO(1) + 4); ctx.fillText("0", L + pw + 4, T + ph);
  ctx.textAlign = "center"; ctx.fillText("iteration", L + pw / 2, h - 6);
  ctx.fillText("0", L, T + ph + 14); ctx.fillText(String(itMax), L + pw, T + ph + 14);
  ctx.textAlign = "left";
  ctx.fillStyle = HPWL_C; ctx.fillText("— HPWL (µm, left)", L + 6, T - 7);
  ctx.fillStyle = OVF_C; ctx.fillText("··· overflow (right)", L + 150, T - 7);
  const line = (ys, Y, colour, dash) => {
    ctx.strokeStyle = colour; ctx.lineWidth = 2.5; ctx.setLineDash(dash); ctx.beginPath();
    for (let i = 0; i < d.it.length; i++) { const x = X(d.it[i]), y = Y(ys[i]); if (i) ctx.lineTo(x, y); else ctx.moveTo(x, y); }
    ctx.stroke(); ctx.setLineDash([]);
  };
  line(d.hpwl, YH, HPWL_C, []);
  line(d.ov, YO, OVF_C, [3, 4]);
  // the moving marker: where the picture above is on the curves
  const it = f.it, x = X(it);
  ctx.strokeStyle = "#555"; ctx.lineWidth = 1; ctx.setLineDash([4, 3]);
  ctx.beginPath(); ctx.moveTo(x, T); ctx.lineTo(x, T + ph); ctx.stroke(); ctx.setLineDash([]);
  const dot = (y, colour) => { ctx.fillStyle = colour; ctx.beginPath(); ctx.arc(x, y, 5, 0, 2 * Math.PI); ctx.fill(); };
  dot(YH(f.hpwl), HPWL_C); dot(YO(f.overflow), OVF_C);
  if (st) {   // the stages after global placement: their HPWL at the end of the curve, the one shown larger
    ctx.textAlign = "right";
    for (const e of S.stages.slice(0, S.stages.indexOf(st) + 1)) {
      if (!e.hpwl) continue;
      const y = YH(e.hpwl), here = e === st;
      ctx.fillStyle = here ? "#2b8a3e" : "rgba(43, 138, 62, 0.45)";
      ctx.beginPath(); ctx.arc(x, y, here ? 6 : 4, 0, 2 * Math.PI); ctx.fill();
      if (here) ctx.fillText(e.name === "final" ? "legal + detailed" : e.name, x - 8, y - 6);
    }
    ctx.textAlign = "left";
  }
}

function pct(a, b) { return a && b ? ` (${b >= a ? "+" : "−"}${Math.abs(100 * (b - a) / a).toFixed(1)} %)` : ""; }

function stageTable(st) {
  // global -> legal -> detailed: HPWL, its change, and what moved (the row on screen is marked)
  const el = $("stage-text");
  if (!S.stage) { el.innerHTML = S.done ? "" : "Legalisation and detailed placement follow when global placement ends."; return; }
  const s = S.stage.info, names = S.stages.map((e) => e.name), on = st ? st.name : "global";
  const rows = [["global", "Global placement", s.hpwl_global, null,
                 `${fmt(s.iterations)} Nesterov iterations (${fmt(s.global_s, 2)} s)`]];
  const legal = `every cell onto a row and a site: ${fmt(s.disp_mean, 2)} µm on average, ${fmt(s.disp_max, 2)} µm ` +
    `at most (${fmt(s.legalize_s, 3)} s)`;
  const det = `${fmt(s.moves)} swaps and shifts` + (s.detailed_moved !== undefined
    ? `: ${fmt(s.detailed_moved)} of ${fmt(s.movable)} cells moved, ${fmt(s.detailed_disp_max, 2)} µm at most` : "") +
    ` (${fmt(s.detailed_s, 3)} s)`;
  if (names.includes("final")) {
    rows.push(["final", "Legalisation", s.hpwl_legal, s.hpwl_global, legal]);
    if (s.moves !== null && s.moves !== undefined) rows.push(["final", "Detailed placement", s.hpwl, s.hpwl_legal, det]);
  } else {
    rows.push(["legal", "Legalisation (Tetris + Abacus)", s.hpwl_legal, s.hpwl_global, legal]);
    if (names.includes("detailed")) rows.push(["detailed", "Detailed placement", s.hpwl, s.hpwl_legal, det]);
  }
  const tr = rows.map(([n, label, h, before, what]) =>
    `<tr class="${n === on ? "on" : ""}" data-row="${n}"><td>${label}</td><td class="num">${fmt(h)}</td>` +
    `<td class="num">${before ? pct(before, h).replace(/[()]/g, "").trim() : ""}</td><td>${what}</td></tr>`).join("");
  const note = names.includes("final")
    ? `<div class="note">Legal positions were not recorded for this run (it predates stages.npz): its last picture ` +
      `shows legalisation and detailed placement together.</div>` : "";
  el.innerHTML = `<table class="stages"><thead><tr><th>stage</th><th class="num">HPWL (µm)</th>` +
    `<th class="num">change</th><th>what moved</th></tr></thead><tbody>${tr}</tbody></table>` + note;
}

function lerp(a, b, u) { return a + u * (b - a); }

const TITLES = {
  legal: ["Cells: global (grey) → legal", "Density, legalised"],
  detailed: ["Cells: legal (grey) → detailed", "Density after detailed placement"],
  final: ["Cells: global (grey) → legal + detailed", "Density, legalised"],
};

function draw(u) {
  if (!S.base || !S.frames.length) return;
  const t0 = performance.now();
  const n = count();
  S.idx = Math.max(0, Math.min(S.idx, n - 1));
  const st = stageAt(S.idx);
  const f = st ? S.frames[S.frames.length - 1] : S.frames[S.idx];
  if (!f) return;
  const next = !st && u > 0 ? S.frames[S.idx + 1] : null;
  u = next ? Math.min(1, u) : 0;
  drawCells(f, st, next, u);
  drawMap("c-density", st ? st.density : f.density, S.base.scales.density, next && next.density, u);
  drawMap("c-rudy", f.rudy, S.base.scales.rudy, next && next.rudy, u);
  drawCurves(next ? { it: lerp(f.it, next.it, u), hpwl: lerp(f.hpwl, next.hpwl, u),
                      overflow: lerp(f.overflow, next.overflow, u) } : f, st);
  stageTable(st);
  const head = st ? `<b>Stage ${S.stages.indexOf(st) + 1} / ${S.stages.length} after global placement: ` +
      `${st.label}</b> · HPWL ${fmt(st.hpwl)} µm`
    : `<b>Frame ${S.idx + 1} / ${S.frames.length}</b> · iteration ${f.it} · HPWL ${fmt(f.hpwl)} µm · overflow ${f.overflow.toFixed(3)}`;
  $("status").innerHTML = head + (S.mode === "live" ? ` · the placer is running (${S.frames.length} frames so far)` : "");
  $("t-cells").textContent = st ? TITLES[st.name][0] : "Cells";
  $("t-density").textContent = st ? TITLES[st.name][1] : "Cell density";
  $("t-rudy").textContent = st ? "RUDY (end of global)" : "RUDY wire congestion";
  for (const b of $("stage-btns").querySelectorAll("button")) {
    b.classList.toggle("on", S.frames.length - 1 + parseInt(b.dataset.go, 10) === S.idx);
  }
  root.dataset.iteration = String(f.it);
  root.dataset.stage = st ? st.name : "global";
  S.lastDraw = t0;
  S.draws.push(t0); S.drawModes.push(S.mode);
  if (S.draws.length > 4000) { S.draws.splice(0, 2000); S.drawModes.splice(0, 2000); }
  S.drawMs.push(performance.now() - t0);
  if (S.drawMs.length > 500) S.drawMs.splice(0, 250);
  const h = document.documentElement.scrollHeight;
  if (h !== S.height) { S.height = h; send("streamlit:setFrameHeight", { height: h }); }
}

window.addEventListener("resize", () => { S.height = 0; draw(); });
send("streamlit:componentReady", { apiVersion: 1 });
