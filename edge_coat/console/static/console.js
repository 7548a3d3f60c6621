// edge-coat operator console. Plain browser JavaScript (no build step); charts with uPlot, served by
// the console itself. Every value from the server is inserted as text (textContent), never as HTML.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const S = {
    session: null,       // /api/session
    tiles: new Map(),    // stream id -> tile (from /api/streams and the live feed)
    es: null,            // the EventSource
    series: null,        // stream id whose points the live feed carries
    view: null,          // the stream page's state, when shown
    list: null,          // the events page's state, when shown
  };
  const CURSOR_KEY = "edge-coat-cursor";

  // ---------------------------------------------------------------- helpers
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") e.className = v;
      else if (k === "dataset") Object.assign(e.dataset, v);
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? "" : v);
    }
    for (const kid of kids.flat()) {
      if (kid === null || kid === undefined || kid === false) continue;
      e.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
    }
    return e;
  }
  const fmt = (x, d = 2) => (x === null || x === undefined || Number.isNaN(x) ? "–" : Number(x).toFixed(d));
  function when(ts) {
    if (!ts) return "–";
    const d = new Date(ts * 1000), now = new Date();
    const t = d.toLocaleTimeString([], { hour12: false });
    return d.toDateString() === now.toDateString() ? t : `${d.toLocaleDateString()} ${t}`;
  }
  const stateClass = (s) => String(s).replace(/\s+/g, "-");

  async function api(path, opts = {}) {
    const headers = { Accept: "application/json" };
    const init = { method: opts.method || "GET", headers, credentials: "same-origin" };
    if (opts.body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(opts.body);
    }
    if (init.method !== "GET" && S.session && S.session.csrf) headers["X-CSRF-Token"] = S.session.csrf;
    const r = await fetch(path, init);
    const data = await r.json().catch(() => ({}));
    if (r.status === 401 && !opts.quiet401) showLogin();
    if (!r.ok) throw new Error(data.error || `${r.status} ${r.statusText}`);
    return data;
  }

  // ---------------------------------------------------------------- login
  function showLogin(message) {
    if (S.es) { S.es.close(); S.es = null; }
    S.session = null;
    for (const id of ["overview", "stream", "events"]) $(id).hidden = true;
    $("login").hidden = false;
    $("logout").hidden = true;
    $("who").textContent = "";
    setLive(false);
    const err = $("login-error");
    err.hidden = !message;
    err.textContent = message || "";
    $("token").focus();
  }

  async function start() {
    try {
      S.session = await api("/api/session", { quiet401: true });
    } catch (e) {
      showLogin();
      return;
    }
    $("login").hidden = true;
    $("who").textContent = S.session.name + (S.session.control ? " · control" : "") + (S.session.ack ? " · ack" : "");
    $("logout").hidden = S.session.open;
    const r = await api("/api/streams");
    for (const t of r.streams) S.tiles.set(t.stream_id, t);
    route();
  }

  $("login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const token = $("token").value;
    $("token").value = "";
    try {
      await api("/api/login", { method: "POST", body: { token }, quiet401: true });
      start();
    } catch (e) {
      showLogin("That token was not accepted.");
    }
  });
  $("logout").addEventListener("click", async () => {
    try { await api("/api/logout", { method: "POST", body: {} }); } catch (e) { /* logged out anyway */ }
    sessionStorage.removeItem(CURSOR_KEY);
    S.tiles.clear();
    showLogin();
  });

  // ---------------------------------------------------------------- live feed (server-sent events)
  function setLive(on) {
    const l = $("live");
    l.textContent = on ? "live" : "offline";
    l.classList.toggle("on", on);
  }

  function connect(series) {
    if (S.es && S.series === series) return;
    if (S.es) S.es.close();
    S.series = series;
    const q = new URLSearchParams();
    const cursor = sessionStorage.getItem(CURSOR_KEY);
    if (cursor !== null) q.set("from", cursor);
    if (series) q.set("series", series);
    if (series && S.view && S.view.pointHead) q.set("points_from", S.view.pointHead);
    const es = new EventSource(`/api/live?${q}`);
    S.es = es;
    es.onopen = () => setLive(true);
    es.onerror = () => setLive(false);
    es.addEventListener("events", (m) => {
      sessionStorage.setItem(CURSOR_KEY, m.lastEventId);
      for (const ev of JSON.parse(m.data)) onEvent(ev);
    });
    es.addEventListener("streams", (m) => {
      const seen = new Set();
      for (const t of JSON.parse(m.data)) { S.tiles.set(t.stream_id, t); seen.add(t.stream_id); }
      for (const id of [...S.tiles.keys()]) if (!seen.has(id)) S.tiles.delete(id);
      refresh();
    });
    es.addEventListener("points", (m) => { if (S.view) S.view.addPoints(JSON.parse(m.data)); });
    es.addEventListener("logout", () => showLogin("Your session ended."));
  }

  function onEvent(ev) {
    const t = S.tiles.get(ev.stream_id);
    if (t && (ev.kind === "anomaly" || ev.kind === "emotion")) {  // the tile reacts before the next status
      t.episodes = { ...(t.episodes || {}) };
      if (ev.phase === "end") delete t.episodes[ev.kind];
      else t.episodes[ev.kind] = ev.episode_id;
      t.alarm = Object.keys(t.episodes).length > 0;
    }
    if (S.view && S.view.id === ev.stream_id) S.view.addEvent(ev);
    if (S.list) S.list.live(ev);
    refresh();
  }

  function refresh() {
    if (!$("overview").hidden) renderTiles();
    if (S.view) S.view.renderHead();
    if (S.list) S.list.fillStreams();
  }

  // ---------------------------------------------------------------- routing
  function route() {
    if (!S.session) return;
    const hash = location.hash || "#/";
    const [path, query] = hash.slice(1).split("?");
    const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
    for (const id of ["overview", "stream", "events"]) $(id).hidden = true;
    for (const a of document.querySelectorAll("[data-nav]")) a.classList.remove("active");
    if (S.view) { S.view.destroy(); S.view = null; }
    S.list = null;
    if (parts[0] === "stream" && parts[1]) {
      $("stream").hidden = false;
      S.view = new StreamView(parts[1]);
      S.view.load().then(() => connect(parts[1]));
    } else if (parts[0] === "events") {
      $("events").hidden = false;
      document.querySelector("[data-nav=events]").classList.add("active");
      S.list = new EventList(new URLSearchParams(query || ""));
      S.list.load();
      connect(null);
    } else {
      $("overview").hidden = false;
      document.querySelector("[data-nav=overview]").classList.add("active");
      renderTiles();
      connect(null);
    }
  }
  window.addEventListener("hashchange", route);

  // ---------------------------------------------------------------- overview
  function readingText(t) {
    const r = t.reading;
    if (!r) return el("span", {}, "–");
    if (r.kind === "anomaly") {
      return el("span", {}, fmt(r.value), el("small", {}, r.threshold != null ? ` / ${fmt(r.threshold)} anomaly` : " anomaly"));
    }
    return el("span", {}, r.label, " ", el("small", {}, fmt(r.value)));
  }

  function renderTiles() {
    const box = $("tiles");
    const tiles = [...S.tiles.values()].sort((a, b) => a.stream_id.localeCompare(b.stream_id));
    const alarms = tiles.filter((t) => t.alarm).length;
    $("summary").textContent = `${tiles.length} stream(s) · ${alarms} with an open episode`;
    const old = new Map([...box.children].map((e) => [e.dataset.stream, e]));
    const els = tiles.map((t) => {  // tiles are updated in place: a page never loses what it points at
      const level = t.level == null ? 0 : Math.max(0, Math.min(100, (t.level + 90) / 0.9));
      const meter = el("span");
      meter.style.width = `${level}%`;
      const enr = t.enrollment || {};
      const badges = [el("span", { class: `badge ${stateClass(t.state)}` }, t.state)];
      if (t.alarm) badges.unshift(el("span", { class: "badge alarm" }, Object.keys(t.episodes).join(" + ")));
      const a = old.get(t.stream_id) || el("a", { href: `#/stream/${encodeURIComponent(t.stream_id)}` });
      a.className = `tile${t.alarm ? " alarm" : ""}`;
      Object.assign(a.dataset, { stream: t.stream_id, state: t.state, alarm: t.alarm ? "1" : "0" });
      a.replaceChildren(
        el("div", { class: "name" }, el("span", {}, t.stream_id), el("span", {}, badges)),
        el("div", { class: "reading" }, readingText(t)),
        el("div", { class: "meter", title: `input level ${fmt(t.level, 1)} dBFS` }, meter),
        el("div", { class: "meta" }, `level ${fmt(t.level, 1)} dBFS · last window ${when(t.last_window_ts)}`),
        (t.tasks || []).includes("anomaly") ? el("div", { class: "meta" }, enr.state === "enrolling"
          ? `enrolling ${enr.collected || 0}/${enr.target_windows || "?"}`
          : `profile: ${enr.state || "none"}`) : el("div", { class: "meta" }, (t.tasks || []).join(", ")));
      return a;
    });
    const same = els.length === box.children.length && els.every((e, i) => box.children[i] === e);
    if (!same) box.replaceChildren(...els);
  }

  // ---------------------------------------------------------------- stream page
  const EPISODE_FILL = { anomaly: "rgba(198,40,40,0.16)", emotion: "rgba(178,106,0,0.18)" };
  const EMOTION_COLORS = ["#1f5fa8", "#c62828", "#2e7d32", "#b26a00", "#6a1b9a", "#00838f", "#5d4037", "#455a64"];

  class StreamView {
    constructor(id) {
      this.id = id;
      this.points = [];
      this.events = new Map();  // id -> event
      this.charts = [];
      this.pointHead = 0;
      this.since = Date.now() / 1000 - S.session.timeline_s;
      this.onResize = () => this.resize();
      window.addEventListener("resize", this.onResize);
      $("stream-title").textContent = id;
      $("stream-events").tBodies[0].replaceChildren();
      $("enroll-error").hidden = true;
      const form = $("enroll-form");
      this.onEnroll = (ev) => { ev.preventDefault(); this.enroll(); };
      form.addEventListener("submit", this.onEnroll);
      $("enroll-button").disabled = !S.session.control;
      $("enroll-button").title = S.session.control ? "" : "your token may not control enrollment";
    }

    destroy() {
      window.removeEventListener("resize", this.onResize);
      $("enroll-form").removeEventListener("submit", this.onEnroll);
      for (const c of this.charts) c.destroy();
      this.charts = [];
      $("tooltip").hidden = true;
    }

    async load() {
      const enc = encodeURIComponent(this.id);
      const [status, series, evs] = await Promise.all([
        api(`/api/streams/${enc}`),
        api(`/api/streams/${enc}/series?since=${this.since}`),
        api(`/api/events?stream=${enc}&since=${this.since}&limit=1000`),
      ]);
      if (S.view !== this) return;
      S.tiles.set(this.id, { ...(S.tiles.get(this.id) || {}), ...status });
      this.points = series.points;
      this.pointHead = series.points.length ? series.points[series.points.length - 1].id : series.point_head;
      for (const ev of evs.events.reverse()) this.events.set(ev.id, ev);
      this.build();
      this.renderHead();
      this.renderEvents();
    }

    episodes(kind) {
      const out = new Map();
      const sorted = [...this.events.values()].sort((a, b) => a.id - b.id);
      for (const ev of sorted) {
        if (ev.kind !== kind) continue;
        let ep = out.get(ev.episode_id);
        if (!ep) {
          ep = { id: ev.episode_id, kind, start: ev.window_start_ts, end: null, events: [] };
          out.set(ev.episode_id, ep);
        }
        ep.start = Math.min(ep.start, ev.window_start_ts);
        if (ev.phase === "end") ep.end = ev.window_end_ts;
        ep.events.push(ev);
      }
      return [...out.values()];
    }

    data(kind) {
      const x = this.points.map((p) => p.end_ts);
      if (kind === "anomaly") {
        return [x, this.points.map((p) => (p.anomaly == null ? null : p.anomaly)),
          this.points.map((p) => (p.threshold == null ? null : p.threshold))];
      }
      if (kind === "level") return [x, this.points.map((p) => p.level)];
      return [x, ...this.emotionLabels.map((l) => this.points.map((p) => (p.emotion ? p.emotion[l] ?? null : null))),
        this.points.map((p) => (p.emotion ? p.emotion_score ?? null : null)),  // what the detector tracks
        this.points.map((p) => (p.emotion ? p.emotion_threshold ?? null : null))];
    }

    build() {
      for (const c of this.charts) c.destroy();
      this.charts = [];
      const hasAnomaly = this.points.some((p) => "anomaly" in p) || [...this.events.values()].some((e) => e.kind === "anomaly");
      const labels = new Set();
      for (const p of this.points) for (const l of Object.keys(p.emotion || {})) labels.add(l);
      this.emotionLabels = [...labels].sort();
      $("anomaly-block").hidden = !hasAnomaly;
      $("emotion-block").hidden = !this.emotionLabels.length;
      const width = this.width();
      if (hasAnomaly) {
        this.anomaly = this.chart("chart-anomaly", "anomaly", width, [
          { label: "score", stroke: "#c62828", width: 2, spanGaps: false },
          { label: "threshold", stroke: "#65707d", dash: [6, 4], width: 1 },
        ], { range: [0, 1] });
      }
      if (this.emotionLabels.length) {
        this.emotion = this.chart("chart-emotion", "emotion", width, [...this.emotionLabels.map((l, i) => (
          { label: l, stroke: EMOTION_COLORS[i % EMOTION_COLORS.length], width: 1.5 })),
        { label: "negative (smoothed)", stroke: "#1d232b", width: 2.5 },
        { label: "alert threshold", stroke: "#65707d", dash: [6, 4], width: 1 }], { range: [0, 1] });
      }
      this.level = this.chart("chart-level", "level", width, [{ label: "level dBFS", stroke: "#1f5fa8", width: 1.5 }],
        { range: [-90, 0] });
    }

    width() {
      return Math.max(280, $("stream").clientWidth - 20);
    }

    chart(elementId, kind, width, series, yScale) {
      const box = $(elementId);
      box.replaceChildren();
      const view = this;
      const opts = {
        width, height: window.innerWidth < 700 ? 160 : 200,
        scales: { x: { time: true }, y: { range: yScale.range } },
        series: [{}, ...series],
        legend: { show: true },
        cursor: { drag: { x: false, y: false } },
        hooks: {
          drawClear: [(u) => view.shade(u, kind)],
          setCursor: [(u) => view.hover(u, kind)],
        },
      };
      const u = new uPlot(opts, this.data(kind), box);
      u.kind = kind;
      this.charts.push(u);
      return u;
    }

    shade(u, kind) {
      const ctx = u.ctx;
      const { left, top, width, height } = u.bbox;
      const eps = kind === "level" ? [...this.episodes("anomaly"), ...this.episodes("emotion")] : this.episodes(kind);
      const xMax = u.scales.x.max;
      let drawn = 0;
      ctx.save();
      for (const ep of eps) {
        const x0 = Math.max(left, u.valToPos(ep.start, "x", true));
        const x1 = Math.min(left + width, u.valToPos(ep.end == null ? xMax : ep.end, "x", true));
        if (!(x1 > x0)) continue;
        ctx.fillStyle = EPISODE_FILL[ep.kind];
        ctx.fillRect(x0, top, Math.max(2, x1 - x0), height);
        drawn += 1;
        ctx.fillStyle = ep.kind === "anomaly" ? "#c62828" : "#b26a00";
        for (const ev of ep.events) {  // a tick per event at its window's start
          const xe = u.valToPos(ev.window_start_ts, "x", true);
          if (xe >= left && xe <= left + width) ctx.fillRect(xe - 1, top, 2, 8 * devicePixelRatio);
        }
      }
      ctx.restore();
      u.root.dataset.episodes = String(drawn);
    }

    hover(u, kind) {
      const tip = $("tooltip");
      if (u.cursor.left == null || u.cursor.left < 0) { tip.hidden = true; return; }
      const x = u.posToVal(u.cursor.left, "x");
      const kinds = kind === "level" ? ["anomaly", "emotion"] : [kind];
      const hits = [];
      for (const k of kinds) {
        for (const ep of this.episodes(k)) {
          if (x >= ep.start - 0.5 && x <= (ep.end == null ? Infinity : ep.end + 0.5)) hits.push(...ep.events);
        }
      }
      if (!hits.length) { tip.hidden = true; return; }
      tip.replaceChildren(...hits.slice(-4).map((ev) => eventDetail(ev)));
      const r = u.over.getBoundingClientRect();
      tip.hidden = false;
      const left = Math.min(window.innerWidth - tip.offsetWidth - 8, r.left + u.cursor.left + 14);
      tip.style.left = `${Math.max(4, left)}px`;
      tip.style.top = `${Math.max(4, r.top + (u.cursor.top || 0) - 10)}px`;
    }

    resize() {
      const width = this.width();
      for (const u of this.charts) u.setSize({ width, height: u.height });
    }

    addPoints(points) {
      const mine = points.filter((p) => p.stream_id === this.id);
      if (!mine.length) return;
      this.points.push(...mine);
      this.pointHead = mine[mine.length - 1].id;
      const since = Date.now() / 1000 - S.session.timeline_s;
      while (this.points.length && this.points[0].end_ts < since && this.points.length > 10) this.points.shift();
      const labels = new Set(this.emotionLabels);
      const hasAnomaly = !$("anomaly-block").hidden;
      if (mine.some((p) => Object.keys(p.emotion || {}).some((l) => !labels.has(l)) || ("anomaly" in p && !hasAnomaly))) {
        this.build();
        return;
      }
      this.redraw();
    }

    addEvent(ev) {
      this.events.set(ev.id, ev);
      if (ev.kind === "anomaly" && $("anomaly-block").hidden) this.build(); else this.redraw();
      this.renderEvents();
    }

    redraw() {
      for (const u of this.charts) u.setData(this.data(u.kind));
    }

    renderHead() {
      const t = S.tiles.get(this.id);
      if (!t) return;
      const badge = $("stream-state");
      badge.textContent = t.alarm ? `${t.state} · open ${Object.keys(t.episodes).join(" + ")} episode` : t.state;
      badge.className = `badge ${t.alarm ? "alarm" : stateClass(t.state)}`;
      badge.dataset.state = t.state;
      $("stream-meta").textContent = `level ${fmt(t.level, 1)} dBFS · last window ${when(t.last_window_ts)} · ${t.windows} windows`;
      $("enrollment").hidden = !(t.tasks || []).includes("anomaly");  // enrollment is the anomaly profile's
      const e = t.enrollment || {};
      const st = $("enroll-status");
      st.dataset.state = e.state || "none";
      let text = `Normal profile: ${e.state || "none"}`;
      if (e.state === "enrolling") text += ` (${e.collected || 0} of ${e.target_windows || "?"} windows)`;
      if (e.state === "ready" && e.threshold) text += ` (distance threshold ${fmt(e.threshold, 3)})`;
      if (e.message) text += ` — ${e.message}`;
      st.textContent = text;
    }

    renderEvents() {
      const rows = [...this.events.values()].sort((a, b) => b.id - a.id).slice(0, 50).map((ev) => eventRow(ev, false));
      $("stream-events").tBodies[0].replaceChildren(...rows);
    }

    async enroll() {
      const n = parseInt($("enroll-windows").value, 10);
      const err = $("enroll-error");
      err.hidden = true;
      try {
        const st = await api(`/api/streams/${encodeURIComponent(this.id)}/enrollment`, { method: "POST", body: { windows: n } });
        const t = S.tiles.get(this.id);
        if (t) { t.enrollment = st; t.state = st.state === "enrolling" ? "enrolling" : t.state; }
        this.renderHead();
      } catch (e) {
        err.textContent = e.message;
        err.hidden = false;
      }
    }
  }

  function eventDetail(ev) {
    const ev_ = ev.evidence || {};
    const dl = el("dl");
    const add = (k, v) => dl.append(el("dt", {}, k), el("dd", {}, v));
    add("time", `${when(ev.window_start_ts)} – ${when(ev.window_end_ts)}`);
    add("score", fmt(ev.score, 3));
    for (const [k, v] of Object.entries(ev_.scores || {})) if (k !== "score") add(k, fmt(v, 3));
    for (const [k, v] of Object.entries(ev_.readings || {})) add(k, fmt(v, 1));
    if ((ev_.tags || []).length) add("tags", ev_.tags.map((t) => `${t.label} ${fmt(t.score)}`).join(", "));
    if (ev_.gap_seconds) add("gap", `${fmt(ev_.gap_seconds, 1)} s`);
    if (ev_.model_name) add("model", `${ev_.model_name} ${ev_.model_version || ""}`);
    return el("div", { class: "ev" }, el("strong", {}, `${ev.kind} ${ev.phase} · #${ev.id}`), el("div", {}, ev.text), dl);
  }

  function eventTitle(ev) {  // the row's hover text: the event's evidence, one reading a line
    const e = ev.evidence || {};
    const lines = [`${ev.kind} ${ev.phase} #${ev.id}: ${ev.text}`];
    for (const [k, v] of Object.entries(e.scores || {})) lines.push(`${k}: ${fmt(v, 3)}`);
    for (const [k, v] of Object.entries(e.readings || {})) lines.push(`${k}: ${fmt(v, 1)}`);
    if ((e.tags || []).length) lines.push(`tags: ${e.tags.map((t) => `${t.label} ${fmt(t.score)}`).join(", ")}`);
    if (e.model_name) lines.push(`model: ${e.model_name} ${e.model_version || ""}`);
    return lines.join("\n");
  }

  function eventRow(ev, withAck, acks) {
    const ackCell = el("td", { class: "ack" });
    if (withAck) {
      const done = (acks || []).filter((a) => a.event_id === ev.id || ev.kind !== "ack");
      if (ev.kind === "ack") {
        ackCell.append(el("span", { class: "acked" }, `by ${(ev.evidence.details || {}).by || ""}`));
      } else if (done.length) {
        ackCell.append(el("span", { class: "acked" }, `acknowledged by ${[...new Set(done.map((a) => a.by))].join(", ")}`));
      } else if (ev.phase !== "end") {
        ackCell.append(el("button", {
          type: "button", disabled: !S.session.ack, title: S.session.ack ? "" : "your token may not acknowledge",
          dataset: { ack: ev.id },
          onclick: async (e) => {
            e.target.disabled = true;
            try {
              const a = await api(`/api/events/${ev.id}/ack`, { method: "POST", body: { note: "" } });
              ackCell.replaceChildren(el("span", { class: "acked" }, `acknowledged by ${(a.evidence.details || {}).by || S.session.name}`));
            } catch (err) {
              ackCell.replaceChildren(el("span", { class: "error" }, err.message));
            }
          },
        }, "Acknowledge"));
      }
    }
    const tr = el("tr", { class: ev.phase, dataset: { id: ev.id, kind: ev.kind } },
      el("td", { class: "num" }, ev.id),
      el("td", { class: "num" }, when(ev.window_start_ts)),
      el("td", {}, el("a", { href: `#/stream/${encodeURIComponent(ev.stream_id)}` }, ev.stream_id)),
      el("td", {}, ev.kind), el("td", {}, ev.phase), el("td", { class: "wide" }, ev.label),
      el("td", { class: "num" }, fmt(ev.score)), el("td", {}, ev.text));
    tr.title = eventTitle(ev);
    if (withAck) tr.append(ackCell);
    return tr;
  }

  // ---------------------------------------------------------------- events page
  const toLocalInput = (ts) => {
    if (!ts) return "";
    const d = new Date(ts * 1000);
    return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 19);
  };
  const fromLocalInput = (v) => (v ? String(new Date(v).getTime() / 1000) : "");

  class EventList {
    constructor(q) {
      this.q = q;  // stream, kind, since, until, before: all in the URL, so a reload shows the same page
      $("f-since").value = toLocalInput(Number(q.get("since")));
      $("f-until").value = toLocalInput(Number(q.get("until")));
      this.fillStreams();
      $("f-kind").value = q.get("kind") || "";
      $("filters").onsubmit = (ev) => { ev.preventDefault(); this.go({ before: null }); };
      $("f-clear").onclick = () => { location.hash = "#/events"; };
      $("p-newest").onclick = () => this.go({ before: null });
      $("p-older").onclick = () => this.next && this.go({ before: this.next });
    }

    fillStreams() {
      const sel = $("f-stream");
      const want = this.q.get("stream") || "";
      const ids = [...S.tiles.keys()].sort();
      if (want && !ids.includes(want)) ids.push(want);
      const have = [...sel.options].map((o) => o.value).slice(1).join(",");
      if (have !== ids.join(",")) sel.replaceChildren(el("option", { value: "" }, "all"), ...ids.map((i) => el("option", { value: i }, i)));
      sel.value = want;
    }

    go(change) {
      const q = new URLSearchParams();
      const vals = {
        stream: $("f-stream").value, kind: $("f-kind").value,
        since: fromLocalInput($("f-since").value), until: fromLocalInput($("f-until").value),
        before: this.q.get("before"), ...change,
      };
      for (const [k, v] of Object.entries(vals)) if (v) q.set(k, v);
      location.hash = `#/events${q.toString() ? "?" + q : ""}`;
    }

    async load() {
      const q = new URLSearchParams(this.q);
      q.set("limit", S.session.page_events);
      const r = await api(`/api/events?${q}`);
      if (S.list !== this) return;
      this.next = r.next_before;
      this.acks = r.acks;
      $("event-table").tBodies[0].replaceChildren(...r.events.map((ev) => eventRow(ev, true, r.acks[ev.episode_id])));
      $("p-older").disabled = !r.next_before;
      $("p-newest").disabled = !this.q.get("before");
      $("p-info").textContent = `${r.events.length} event(s)` + (this.q.get("before") ? ` before #${this.q.get("before")}` : " (newest; live)");
    }

    live(ev) {  // new events go on top of the first page when they match the filters
      if (this.q.get("before")) return;
      const stream = this.q.get("stream"), kind = this.q.get("kind");
      const since = Number(this.q.get("since")) || 0, until = Number(this.q.get("until")) || Infinity;
      if ((stream && ev.stream_id !== stream) || (kind && ev.kind !== kind)) return;
      if (ev.window_end_ts < since || ev.window_end_ts > until) return;
      const body = $("event-table").tBodies[0];
      if (body.querySelector(`tr[data-id="${ev.id}"]`)) return;
      if (ev.kind === "ack") {  // an acknowledgement marks the rows of its episode
        for (const tr of body.querySelectorAll("tr")) {
          const cell = tr.querySelector("td.ack button");
          if (cell && tr.dataset.kind === (ev.evidence.details || {}).acknowledges?.kind) {
            const id = Number(tr.dataset.id);
            if (((ev.evidence.details || {}).acknowledges || {}).event_id === id) {
              cell.parentElement.replaceChildren(el("span", { class: "acked" }, `acknowledged by ${(ev.evidence.details || {}).by}`));
            }
          }
        }
      }
      body.prepend(eventRow(ev, true, []));
      while (body.rows.length > S.session.page_events) body.deleteRow(-1);
    }
  }

  document.addEventListener("DOMContentLoaded", start);
})();
