// fleetcam's media console: plain ES module, no build step, only the public REST API and MQTT
// over WebSocket with the user's token. Every user-provided string is rendered with
// textContent (never innerHTML), so names and attributes cannot inject markup.
import { t } from "/console/texts.js";

const state = { token: null, cfg: null, info: null, device: null, month: null, day: null,
                filters: { channel: "", type: "" }, files: [], cursor: null, mqtt: null,
                commands: new Map(), streams: [] };

// -- small DOM helpers -------------------------------------------------------------------------
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "text") node.textContent = v;
    else if (k === "style") Object.assign(node.style, v);  // CSSOM: allowed by the CSP
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c);
  return node;
}
const $ = (id) => document.getElementById(id);
function show(...nodes) { const m = $("main"); m.replaceChildren(...nodes); }
function toast(msg) {
  const box = $("toast"); box.textContent = msg; box.hidden = false;
  clearTimeout(toast.timer); toast.timer = setTimeout(() => { box.hidden = true; }, 4000);
}
function fail(msg) { show(el("p", { class: "error", role: "alert", text: msg })); }
const pad = (n) => String(n).padStart(2, "0");
function fmtLocal(sec) { const d = new Date(sec * 1000); return d.toLocaleString(); }
function fmtIn(sec, tz) {
  try { return new Date(sec * 1000).toLocaleString(undefined, { timeZone: tz, timeZoneName: "short" }); }
  catch { return new Date(sec * 1000).toUTCString(); }
}

// -- API ---------------------------------------------------------------------------------------
class ApiError extends Error { constructor(status, reason) { super(reason); this.status = status; } }
async function api(path, { method = "GET", body, data } = {}) {
  let url = path;
  if (data !== undefined) url += (url.includes("?") ? "&" : "?") + "data=" + encodeURIComponent(JSON.stringify(data));
  const headers = {};
  if (state.token) headers.Authorization = "FlespiToken " + state.token;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  let json = null;
  try { json = await r.json(); } catch { json = null; }
  if (!r.ok) {
    const reason = json?.errors?.[0]?.reason || json?.detail || r.statusText;
    throw new ApiError(r.status, reason);
  }
  return json;
}
function mediaUrl(f, extra = "") {
  // private files need the token; browsers cannot send headers for <img>/<video>
  const q = new URLSearchParams(extra);
  if (f.shared === false && state.token) q.set("token", state.token);
  const s = q.toString();
  return `/media/${f.uuid}${s ? "?" + s : ""}`;
}

// -- permissions (the token's ACL, as /auth/info gives it) -------------------------------------
function can(method, submodule = null, deviceId = state.device?.id) {
  const access = state.info?.access || {};
  if (access.type === 1 || access.type === 0 || access.type === undefined) return true;
  for (const entry of access.acl || []) {
    if (entry.uri !== "gw/devices") continue;
    if (entry.ids !== "all" && Array.isArray(entry.ids) && !entry.ids.includes(deviceId)) continue;
    if (submodule === null) { if ((entry.methods || []).includes(method)) return true; continue; }
    const sub = (entry.submodules || []).find((s) => s.name === submodule);
    if (sub && (sub.methods || []).includes(method)) return true;
  }
  return false;
}

// -- boot ---------------------------------------------------------------------------------------
async function boot() {
  const params = new URLSearchParams(location.search);
  const fromUrl = params.get("token");
  if (fromUrl) {
    sessionStorage.setItem("fleetcam.token", fromUrl);
    params.delete("token");  // never left in the address bar, history or a shared screenshot
    history.replaceState(null, "", location.pathname + (params.toString() ? "?" + params : ""));
  }
  state.token = sessionStorage.getItem("fleetcam.token");
  $("dialog-close").textContent = t("close");
  try { state.cfg = await (await fetch("/console/config.json")).json(); } catch { state.cfg = { prefix: "fleetcam" }; }
  const file = params.get("file");
  if (file) return fileMode(file);
  if (!state.token) return fail(t("noToken"));
  try { state.info = (await api("/auth/info")).result[0]; }
  catch (e) { return fail(e.status === 401 ? t("badToken") : t("error", { reason: e.message })); }
  const device = params.get("device");
  if (device) return openDevice(Number(device));
  return deviceList();
}

// -- one file without a token ------------------------------------------------------------------
async function fileMode(uuid) {
  if (!/^[0-9a-f]{32}$/.test(uuid)) return fail(t("notFound", { what: uuid }));
  const r = await fetch(`/media/${uuid}?preview=json`);
  if (r.ok) {
    const f = await r.json();
    if (f.meta?.type === "mediastream" || (f.url && f.url.endsWith(".m3u8"))) {  // a stream's uuid
      show(el("h1", { text: t("stream") }), livePlayer(f.url));
      return;
    }
    show(el("h1", { text: f.name }), playerFor(f));
    return;
  }
  // a live stream's uuid answers with its playlist
  const head = await fetch(`/media/${uuid}`, { method: "GET" });
  const type = head.headers.get("content-type") || "";
  if (head.ok && type.includes("mpegurl")) {
    show(el("h1", { text: t("stream") }), livePlayer(`/media/${uuid}`));
    return;
  }
  fail(t("notFound", { what: uuid }));
}

// -- devices ------------------------------------------------------------------------------------
async function deviceList() {
  let devices;
  try { devices = (await api("/gw/devices/all", { data: { fields: "id,name,ident,connected" } })).result; }
  catch (e) { return fail(e.status === 401 ? t("badToken") : t("error", { reason: e.message })); }
  if (!devices.length) return fail(t("noDevices"));
  crumbs([]);
  show(el("h1", { text: t("devices") }), el("ul", {}, devices.map((d) => el("li", {},
    el("a", { href: `?device=${d.id}`, onclick: (ev) => { ev.preventDefault(); history.pushState(null, "", `?device=${d.id}`); openDevice(d.id); } },
      `${d.name || d.ident} `),
    el("span", { class: "muted", text: `#${d.id} · ${d.connected ? t("online") : t("offline")}` })))));
}

function crumbs(items) {
  const nav = $("crumbs");
  nav.replaceChildren(...[[t("devices"), "?"], ...items].map(([label, href]) =>
    el("a", { href, onclick: (ev) => { ev.preventDefault(); history.pushState(null, "", href); route(); } }, label)));
}

async function openDevice(id) {
  let d;
  try { d = (await api(`/gw/devices/${id}`)).result[0]; }
  catch (e) {
    if (e.status === 401) return fail(t("badToken"));
    if (e.status === 403 || e.status === 404) return fail(t("otherDevice", { id }));
    return fail(t("error", { reason: e.message }));
  }
  state.device = d;
  const now = new Date();
  state.month = { y: now.getFullYear(), m: now.getMonth() };
  state.day = new Date(now.getFullYear(), now.getMonth(), now.getDate());
  crumbs([[d.name || d.ident, `?device=${id}`]]);
  const layout = el("div", { class: "grid" },
    el("div", {},
      el("section", { class: "card", id: "cal-card" }),
      el("section", { class: "card", id: "actions" }),
      el("section", { class: "card", id: "streams" }),
      el("section", { class: "card", id: "queue" })),
    el("div", {},
      el("section", { class: "card player", id: "player", "aria-live": "polite" }),
      el("section", { class: "card", id: "timeline-card" }),
      el("section", { class: "card", id: "files-card" })));
  show(el("h1", {}, d.name || d.ident, " ",
    el("small", { class: "muted", id: "conn", text: d.connected ? t("online") : t("offline") })), layout);
  renderActions();
  await Promise.all([renderCalendar(), loadDay(), loadStreams(), loadQueue()]);
  connectMqtt();
}

// -- calendar, day list, timeline -----------------------------------------------------------
async function renderCalendar() {
  const card = $("cal-card");
  const { y, m } = state.month;
  const first = new Date(y, m, 1), next = new Date(y, m + 1, 1);
  const counts = new Map();
  let cursor = null, seen = 0;
  try {
    do {  // counts per day: created only, a page at a time (capped: "10000+")
      const data = { from: first / 1000, to: next / 1000 - 0.001, fields: "created", count: 1000 };
      if (cursor) data.cursor = cursor;
      const r = await api(`/gw/devices/${state.device.id}/media`, { data });
      for (const f of r.result) { const k = new Date(f.created * 1000).getDate(); counts.set(k, (counts.get(k) || 0) + 1); }
      seen += r.result.length; cursor = r.next_cursor;
    } while (cursor && seen < 10000);
  } catch (e) { toast(t("error", { reason: e.message })); }
  const days = [];
  const lead = (first.getDay() + 6) % 7;
  for (let i = 0; i < lead; i++) days.push(el("span"));
  for (let d = 1; d < new Date(y, m + 1, 0).getDate() + 1; d++) {
    const selected = state.day && state.day.getFullYear() === y && state.day.getMonth() === m && state.day.getDate() === d;
    days.push(el("button", { type: "button", "aria-pressed": selected ? "true" : "false", "data-day": d,
      onclick: () => { state.day = new Date(y, m, d); renderCalendar(); loadDay(); } },
      String(d), counts.get(d) ? el("span", { class: "count", text: String(counts.get(d)) }) : null));
  }
  card.replaceChildren(
    el("h2", {}, el("button", { type: "button", "aria-label": t("prevMonth"), onclick: () => { state.month = m ? { y, m: m - 1 } : { y: y - 1, m: 11 }; renderCalendar(); } }, "‹"),
      ` ${t("months")[m]} ${y} `,
      el("button", { type: "button", "aria-label": t("nextMonth"), onclick: () => { state.month = m === 11 ? { y: y + 1, m: 0 } : { y, m: m + 1 }; renderCalendar(); } }, "›")),
    el("div", { class: "cal" }, t("weekdays").map((w) => el("span", { class: "head", text: w })), days));
}

async function loadDay(append = false) {
  const start = state.day / 1000, end = start + 86400;
  const filter = [];
  if (state.filters.channel) filter.push(`channel_id=${Number(state.filters.channel)}`);
  if (state.filters.type) filter.push(`mime=${state.filters.type === "image" ? "image/*" : "video/*"}`);
  const data = { from: start, to: end - 0.001, count: 60, reverse: true,
                 fields: "uuid,name,mime,created,size,channel_id,protected,shared,meta" };
  if (filter.length) data.filter = filter.join("&&");
  if (append && state.cursor) data.cursor = state.cursor;
  try {
    const r = await api(`/gw/devices/${state.device.id}/media`, { data });
    state.files = append ? state.files.concat(r.result) : r.result;
    state.cursor = r.next_cursor || null;
  } catch (e) { toast(t("error", { reason: e.message })); state.files = append ? state.files : []; }
  renderFiles(); renderTimeline();
}

function renderFiles() {
  const card = $("files-card");
  const dayLabel = state.day.toLocaleDateString();
  const channels = [...new Set(state.files.map((f) => f.channel_id).filter((c) => c !== null && c !== undefined))].sort();
  const chanSel = el("select", { "aria-label": t("allChannels"), onchange: (e) => { state.filters.channel = e.target.value; loadDay(); } },
    el("option", { value: "", text: t("allChannels") }),
    [1, 2, 3, 4, ...channels].filter((v, i, a) => a.indexOf(v) === i).map((c) =>
      el("option", { value: c, selected: String(c) === state.filters.channel, text: t("channel", { n: c }) })));
  const typeSel = el("select", { "aria-label": t("allTypes"), onchange: (e) => { state.filters.type = e.target.value; loadDay(); } },
    el("option", { value: "", text: t("allTypes") }),
    el("option", { value: "image", selected: state.filters.type === "image", text: t("images") }),
    el("option", { value: "video", selected: state.filters.type === "video", text: t("videos") }));
  const items = state.files.map((f) => fileItem(f));
  card.replaceChildren(...[el("h2", { text: t("filesOf", { day: dayLabel }) }), el("div", { class: "inline" }, chanSel, " ", typeSel),
    items.length ? el("ul", { class: "files", id: "file-list" }, items) : el("p", { class: "muted", text: t("noFiles") }),
    state.cursor ? el("button", { type: "button", onclick: () => loadDay(true), text: t("more") }) : null].filter(Boolean));
}

function fileItem(f) {
  const isVideo = (f.mime || "").startsWith("video/");
  const li = el("li", { "data-uuid": f.uuid });
  li.append(el("button", { class: "open", type: "button", "aria-label": f.name, onclick: () => play(f) },
      el("img", { src: mediaUrl(f, "preview=jpeg"), alt: f.name, loading: "lazy" })),
    el("div", { class: "meta" }, el("span", { class: "name", text: f.name }), el("br"),
      el("span", { class: "when", text: `${new Date(f.created * 1000).toLocaleTimeString()}${isVideo && f.meta?.duration ? ` · ${Math.round(f.meta.duration)} s` : ""}${f.channel_id ? ` · ch ${f.channel_id}` : ""}` })));
  const acts = el("div", { class: "acts" });
  if (can("PUT", "media")) {
    acts.append(el("button", { type: "button", onclick: () => update(f, { protected: !f.protected }), text: f.protected ? t("unprotect") : t("protect") }),
      el("button", { type: "button", onclick: () => renameFile(f), text: t("rename") }),
      el("button", { type: "button", onclick: () => annotate(f), text: t("annotate") }));
  }
  acts.append(el("button", { type: "button", onclick: () => shareDialog(f), text: t("share") }));
  if (can("DELETE", "media")) acts.append(el("button", { type: "button", onclick: () => removeFile(f), text: t("remove") }));
  li.append(acts);
  return li;
}

async function renderTimeline() {
  const card = $("timeline-card");
  const start = state.day / 1000;
  const bar = el("div", { class: "timeline", role: "img", "aria-label": t("timeline", { day: state.day.toLocaleDateString() }) });
  const at = (sec) => `${Math.max(0, Math.min(100, ((sec - start) / 86400) * 100))}%`;
  for (const f of state.files) {
    const kind = (f.mime || "").startsWith("video/") ? "video" : "image";
    const width = kind === "video" && f.meta?.duration ? `${(f.meta.duration / 86400) * 100}%` : "3px";
    bar.append(el("span", { class: `f-${kind}`, style: { left: at(f.created), width }, title: f.name }));
  }
  card.replaceChildren(el("h2", { text: t("timeline", { day: state.day.toLocaleDateString() }) }), bar);
  // DVR ranges of the device's channels (streams named {device}-{channel}), when recorded
  for (const ch of [1, 2, 3, 4]) {
    const name = `${state.device.id}-${ch}`;
    let ranges;
    try {
      const r = await fetch(`/${name}/ranges.json?token=${encodeURIComponent(state.token || "")}`);
      if (!r.ok) continue;
      ranges = (await r.json()).ranges || [];
    } catch { continue; }
    for (const rg of ranges) {
      if (rg.closed_at < start || rg.opened_at > start + 86400) continue;
      const width = `${((Math.min(rg.closed_at, start + 86400) - Math.max(rg.opened_at, start)) / 86400) * 100}%`;
      const span = el("span", { class: "dvr", style: { left: at(rg.opened_at), width }, title: `${t("dvr")} ${name}` });
      span.addEventListener("click", (ev) => {
        const rect = bar.getBoundingClientRect();
        // a pixel of the day is minutes: keep the clicked time inside the range
        const clicked = Math.floor(start + ((ev.clientX - rect.left) / rect.width) * 86400);
        const from = Math.max(Math.ceil(rg.opened_at), Math.min(clicked, Math.floor(rg.closed_at) - 1));
        const tok = state.token ? `?token=${encodeURIComponent(state.token)}` : "";
        const dur = Math.max(1, Math.min(600, Math.floor(rg.closed_at - from)));
        const status = el("span", { class: "muted", "aria-live": "polite" });
        const mark = el("button", { type: "button", id: "mark-episode", text: t("episode"), onclick: async () => {
          const id = Date.now() * 1000 + Math.floor(Math.random() * 1000);  // Flussonic: an integer
          try {
            await api(`/streamer/api/v3/episodes/${encodeURIComponent(id)}`, { method: "PUT",
              body: { media: name, opened_at: from * 1000, closed_at: (from + dur) * 1000, episode_type: "console" } });
            status.textContent = `✓ ${id}`;
          } catch (e) { toast(t("error", { reason: e.message })); }
        } });
        $("player").replaceChildren(el("h2", { text: `${t("dvr")} · ${name}` }),
          livePlayer(`/${name}/index-${from}-${dur}.m3u8${tok}`, from),
          el("div", { class: "inline" },
            el("a", { href: `/${name}/archive-${from}-${dur}.mp4${tok}`, download: `${name}-${from}.mp4`, id: "dvr-download", text: t("exportRange") }),
            " ", mark, " ", status));
      });
      bar.append(span);
    }
  }
}

// -- player -------------------------------------------------------------------------------------
function playerFor(f) {
  if ((f.mime || "").startsWith("image/")) return el("img", { src: mediaUrl(f), alt: f.name });
  const video = el("video", { controls: true, autoplay: true, muted: true, playsinline: true, src: mediaUrl(f) });
  const when = el("p", { class: "when", "aria-live": "off" });
  const tick = () => { when.textContent = t("recordedAt", { t: fmtLocal(f.created + (video.currentTime || 0)) }); };
  video.addEventListener("timeupdate", tick); tick();
  return el("div", {}, video, when);
}
function livePlayer(url, startSec = null) {
  const video = el("video", { controls: true, muted: true, autoplay: true, playsinline: true });
  const when = el("p", { class: "when" });
  if (window.Hls && window.Hls.isSupported()) {
    const hls = new window.Hls({ lowLatencyMode: true });
    hls.loadSource(url); hls.attachMedia(video);
    video.hls = hls;
  } else { video.src = url; }
  video.addEventListener("timeupdate", () => {
    const pdt = video.hls?.playingDate;
    if (pdt) when.textContent = t("recordedAt", { t: pdt.toLocaleString() });
    else if (startSec !== null) when.textContent = t("recordedAt", { t: fmtLocal(startSec + video.currentTime) });
  });
  return el("div", {}, video, when);
}
function play(f) {
  $("player").replaceChildren(el("h2", { text: f.name }), playerFor(f));
}

// -- file actions -------------------------------------------------------------------------------
async function update(f, changes) {
  try { await api(`/gw/devices/${state.device.id}/media`, { method: "PUT", body: { uuid: f.uuid, ...changes } }); loadDay(); }
  catch (e) { toast(t("error", { reason: e.message })); }
}
function renameFile(f) {
  const name = prompt(t("newName"), f.name);
  if (name) update(f, { name });
}
function annotate(f) {
  const raw = prompt(t("attributesJson"), "{}");
  if (!raw) return;
  try { update(f, JSON.parse(raw)); } catch (e) { toast(t("error", { reason: e.message })); }
}
async function removeFile(f) {
  if (!confirm(t("confirmDelete", { name: f.name }))) return;
  try { await api(`/gw/devices/${state.device.id}/media`, { method: "DELETE", body: { uuid: f.uuid } }); loadDay(); renderCalendar(); }
  catch (e) { toast(t("error", { reason: e.message })); }
}
function shareDialog(f) {
  const base = state.cfg?.rest || location.origin;
  const link = `${base}/media/${f.uuid}`;
  const field = (label, value) => el("label", {}, label, el("input", { readonly: true, value, onfocus: (e) => e.target.select() }));
  const out = el("div", { id: "share-expiring" });
  const hours = el("input", { type: "number", min: 1, max: 720, value: 24, "aria-label": t("expiresIn") });
  const qr = el("div", { class: "qr" });
  try {
    const code = window.qrcode(0, "M"); code.addData(link); code.make();
    qr.append(el("img", { src: code.createDataURL(4, 2), alt: t("qr") }));
  } catch { /* the QR library failed to load: the links remain */ }
  const content = el("div", {},
    field(t("link"), link), field(t("previewLink"), `${link}?preview=jpeg`), field(t("jsonLink"), `${link}?preview=json`),
    field(t("iframe"), `<iframe src="${base}/console?file=${f.uuid}" width="640" height="420" allowfullscreen></iframe>`),
    el("div", { class: "inline" }, el("label", {}, t("expiresIn"), hours),
      el("button", { type: "button", onclick: async () => {
        try {
          const r = await api(`/gw/devices/${state.device.id}/media/share`, { method: "POST",
            body: { uuid: f.uuid, expire: Math.floor(Date.now() / 1000) + Number(hours.value) * 3600 } });
          out.replaceChildren(field(t("expiring"), r.result[0].url));
        } catch (e) { toast(t("error", { reason: e.message })); }
      }, text: t("makeLink") })), out, qr);
  $("dialog-title").textContent = `${t("share")}: ${f.name}`;
  $("dialog-content").replaceChildren(content);
  $("dialog").showModal();
}

// -- device actions -----------------------------------------------------------------------------
function renderActions() {
  const box = $("actions");
  box.replaceChildren(el("h2", { text: t("commands") }));
  const channel = el("input", { type: "number", min: 1, max: 16, value: 1, "aria-label": t("channel", { n: "" }) });
  if (can("POST", "commands-queue") || can("POST", "commands")) {
    box.append(el("form", { class: "inline", onsubmit: (e) => { e.preventDefault(); queue("take_photo", { channel: Number(channel.value) }); } },
      el("label", {}, t("channel", { n: "" }), channel), el("button", { class: "primary", id: "take-photo", text: t("takePhoto") })));
    const from = el("input", { type: "datetime-local", step: 1, id: "video-from" });
    const now = new Date(Date.now() - 120000);
    from.value = `${now.getFullYear()}-${pad(now.getMonth() + 1)}-${pad(now.getDate())}T${pad(now.getHours())}:${pad(now.getMinutes())}:${pad(now.getSeconds())}`;
    const tz = state.device?.metadata?.timezone || "UTC";
    const devTime = el("span", { class: "muted" });
    const sync = () => { const s = new Date(from.value).getTime() / 1000; devTime.textContent = t("deviceTime", { t: fmtIn(s, tz) }); };
    from.addEventListener("input", sync); sync();
    const dur = el("input", { type: "number", min: 1, max: 3600, value: 10, id: "video-duration" });
    const vchan = el("input", { type: "number", min: 1, max: 16, value: 1, id: "video-channel" });
    box.append(el("form", { class: "inline", onsubmit: (e) => {
      e.preventDefault();
      queue("request_video", { channel: Number(vchan.value), from: Math.floor(new Date(from.value).getTime() / 1000), duration: Number(dur.value) });
    } }, el("label", {}, t("channel", { n: "" }), vchan), el("label", {}, t("from"), from), el("label", {}, t("duration"), dur),
      el("button", { class: "primary", id: "request-video", text: t("requestVideo") }), devTime));
  }
  if (can("POST", "commands")) {
    const lchan = el("input", { type: "number", min: 1, max: 16, value: 1, id: "live-channel" });
    box.append(el("form", { class: "inline", onsubmit: async (e) => {
      e.preventDefault();
      try {
        const r = await api(`/gw/devices/${state.device.id}/commands`, { method: "POST",
          body: [{ name: "start_videostream", properties: { channel: Number(lchan.value) }, timeout: 30 }] });
        const res = r.result[0];
        if (!res.executed) throw new Error(JSON.stringify(res.response));
        $("player").replaceChildren(el("h2", { text: t("live") }), livePlayer(res.response.hls || res.response.url));
        loadStreams();
      } catch (err) { toast(t("error", { reason: err.message })); }
    } }, el("label", {}, t("channel", { n: "" }), lchan), el("button", { class: "primary", id: "start-live", text: t("startLive") })));
  }
  box.append(el("ul", { class: "progress", id: "progress" }));
}

async function queue(name, properties) {
  try {
    const r = await api(`/gw/devices/${state.device.id}/commands-queue`, { method: "POST", body: [{ name, properties, ttl: 600 }] });
    for (const c of r.result) progress(c.id, name, "queued");
    loadQueue();
  } catch (e) { toast(t("error", { reason: e.message })); }
}
function progress(id, name, stateName, extra = "") {
  let item = document.querySelector(`#progress li[data-id="${id}"]`);
  if (!item) { item = el("li", { "data-id": id }); $("progress")?.prepend(item); }
  item.textContent = t("progress", { name, state: t(stateName) }) + (extra ? ` · ${extra}` : "");
  item.dataset.state = stateName;
}

async function loadStreams() {
  const box = $("streams");
  let conns = [];
  try { conns = (await api(`/gw/devices/${state.device.id}/connections/all`)).result; } catch { /* no connections access */ }
  const streams = conns.filter((c) => c.meta?.mediastream);
  state.streams = streams;
  box.replaceChildren(el("h2", { text: t("streams") }));  // after the await: one list, not two
  if (!streams.length) { box.append(el("p", { class: "muted", text: t("noStreams") })); return; }
  box.append(el("ul", { id: "stream-list" }, streams.map((c) => el("li", { "data-conn": c.id },
    el("button", { type: "button", onclick: () => $("player").replaceChildren(el("h2", { text: t("live") }), livePlayer(c.meta.mediastream.hls || c.meta.mediastream.url)), text: `▶ ch ${c.meta.channel ?? c.meta.mediastream.channel ?? ""}` }),
    can("DELETE", "connections") ? el("button", { type: "button", class: "stop-live", onclick: async () => {
      try { await api(`/gw/devices/${state.device.id}/connections/${c.id}`, { method: "DELETE" }); loadStreams(); }
      catch (e) { toast(t("error", { reason: e.message })); }
    }, text: t("stopLive") }) : null))));
}

async function loadQueue() {
  const box = $("queue");
  let items = [];
  try { items = (await api(`/gw/devices/${state.device.id}/commands-queue`)).result; } catch { /* no access */ }
  box.replaceChildren(el("h2", { text: t("queue") }));
  if (!items.length) { box.append(el("p", { class: "muted", text: t("noQueue") })); return; }
  box.append(el("ul", {}, items.map((c) => el("li", {}, `${c.name} #${c.id} `,
    can("DELETE", "commands-queue") ? el("button", { type: "button", onclick: async () => {
      try { await api(`/gw/devices/${state.device.id}/commands-queue/${c.id}`, { method: "DELETE" }); loadQueue(); }
      catch (e) { toast(t("error", { reason: e.message })); }
    }, text: t("cancel") }) : null))));
}

// -- live updates over MQTT (no polling) ------------------------------------------------------
function connectMqtt() {
  if (!window.mqtt || !state.token || !state.device) return;
  const status = $("live-status");
  status.textContent = t("live_connecting");
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const url = `${scheme}://${state.cfg.mqtt_ws || location.host + "/mqtt"}`;
  const client = window.mqtt.connect(url, { protocolVersion: 5, username: `FlespiToken ${state.token}`,
    clean: true, reconnectPeriod: 5000, clientId: `console-${Math.random().toString(16).slice(2)}` });
  state.mqtt = client;
  const base = `${state.cfg.prefix}/log/gw/devices/${state.device.id}`;
  client.on("connect", () => {
    status.textContent = t("live_on");
    client.subscribe([`${base}/#`, `${state.cfg.prefix}/state/gw/devices/${state.device.id}/connections/+`], { qos: 0 });
  });
  client.on("close", () => { status.textContent = t("live_off"); });
  client.on("message", (topic, payload) => {
    let body = null;
    try { body = payload.length ? JSON.parse(new TextDecoder().decode(payload)) : null; } catch { return; }
    const rest = topic.startsWith(base + "/") ? topic.slice(base.length + 1).split("/") : [];
    if (rest[0] === "media_file_uploaded" && body) {
      const day0 = state.day / 1000;
      if (body.created >= day0 && body.created < day0 + 86400) {
        if (!state.files.some((f) => f.uuid === body.uuid)) state.files.unshift(body);
        renderFiles(); renderTimeline();
      }
      renderCalendar();
    } else if (rest[0] === "media_file_deleted" || rest[0] === "media_file_updated") {
      loadDay();
    } else if (rest[0] === "commands-queue" && rest.length >= 3 && body) {
      const id = body.id ?? body.command_id;
      const p = body.progress || body.response?.progress;
      const extra = p && p.bytes ? t("received", { bytes: `${Math.round(p.bytes / 1024)} KiB` }) : "";
      progress(id, rest[1], rest[2] in { queued: 1, sent: 1, processed: 1, canceled: 1, expired: 1 } ? rest[2] : "sent", extra);
      if (rest[2] !== "sent") loadQueue();
    } else if (rest[0] === "mediastream" || topic.includes("/connections/")) {
      loadStreams();
    }
  });
}

function route() {
  const params = new URLSearchParams(location.search);
  if (params.get("device")) return openDevice(Number(params.get("device")));
  if (state.token) return deviceList();
  return boot();
}
window.addEventListener("popstate", route);
document.addEventListener("DOMContentLoaded", boot);
