// The sandbox page: draws each person's chat with the bot from /api/state, keeps it fresh from
// the /api/events stream, and turns typing and button presses into /api/* calls.
// Plain browser JavaScript, no build step and no external resources.
"use strict";

const ROLE_COLOURS = {
  resident: "#e17076", maintenance: "#f2994a", environment: "#4caf50", security: "#5c6bc0",
  service: "#26a69a", supervisor: "#ab47bc", manager: "#3390ec",
};

const state = {
  tz: "Asia/Shanghai",
  bot: { name: "物业助手" },
  chats: new Map(),       // user_id -> {data, el, rendered: Map(message id -> {key, el}), ...}
  order: [],
  focused: null,
};

// Controls draw their own icons (SVG): an office PC without an emoji font still shows them.
const ICONS = {
  attach: '<svg viewBox="0 0 24 24" width="22" height="22" aria-hidden="true"><path fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" d="M21 11.5l-8.5 8.5a5.5 5.5 0 01-7.8-7.8l9-9a3.7 3.7 0 015.2 5.2l-9 9a1.8 1.8 0 01-2.6-2.6l8.3-8.3"/></svg>',
  keyboard: '<svg viewBox="0 0 24 24" width="22" height="22" aria-hidden="true"><rect x="2.5" y="6" width="19" height="12" rx="2" fill="none" stroke="currentColor" stroke-width="1.8"/><path stroke="currentColor" stroke-width="1.8" stroke-linecap="round" d="M6 10h.01M9.5 10h.01M13 10h.01M16.5 10h.01M7.5 14h9"/></svg>',
  send: '<svg viewBox="0 0 24 24" width="18" height="18" aria-hidden="true"><path fill="currentColor" d="M3 20.5l18-8.5L3 3.5 3 10l12 2-12 2z"/></svg>',
};

// ---- small helpers --------------------------------------------------------------------------
const $ = (sel, root = document) => root.querySelector(sel);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "html") node.innerHTML = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function esc(text) {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

async function api(path, body, options = {}) {
  const init = { method: body === undefined ? "GET" : "POST", headers: {} };
  if (body instanceof FormData) init.body = body;
  else if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(path, init);
  let data = null;
  try { data = await response.json(); } catch (_) { /* not JSON */ }
  if (!response.ok) {
    const message = (data && data.error) || `请求失败(${response.status})`;
    if (!options.quiet) toast(message, true);
    throw new Error(message);
  }
  return data;
}

function toast(text, error = false) {
  const node = el("div", { class: "toast" + (error ? " error" : "") }, text);
  $("#toasts").append(node);
  setTimeout(() => node.remove(), 4200);
}

function formatSize(bytes) {
  if (!bytes && bytes !== 0) return "";
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

let timeFormat, dayFormat;
function makeFormats() {
  timeFormat = new Intl.DateTimeFormat("zh-CN", { timeZone: state.tz, hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
  dayFormat = new Intl.DateTimeFormat("zh-CN", { timeZone: state.tz, month: "long", day: "numeric", weekday: "short" });
}
makeFormats();

// ---- Telegram formatting: entities (UTF-16 offsets, which JavaScript strings use too) ----------
function renderText(text, entities) {
  const list = (entities || []).filter((e) => e.length > 0)
    .slice().sort((a, b) => a.offset - b.offset || b.length - a.length);

  function build(start, end, items) {
    let out = "";
    let pos = start;
    let i = 0;
    while (i < items.length) {
      const e = items[i];
      if (e.offset < pos) { i++; continue; } // overlapping the previous one: Telegram never sends that
      const stop = Math.min(e.offset + e.length, end);
      out += esc(text.slice(pos, e.offset));
      const inner = [];
      let j = i + 1;
      while (j < items.length && items[j].offset < stop) inner.push(items[j++]);
      out += wrap(e, build(e.offset, stop, inner), text.slice(e.offset, stop));
      pos = stop;
      i = j;
    }
    return out + esc(text.slice(pos, end));
  }
  return build(0, text.length, list);
}

function safeUrl(url) {
  return /^(https?:|tg:|mailto:|tel:)/i.test(url) ? url : null;
}

function wrap(entity, inner, raw) {
  switch (entity.type) {
    case "bold": return `<b>${inner}</b>`;
    case "italic": return `<i>${inner}</i>`;
    case "underline": return `<u>${inner}</u>`;
    case "strikethrough": return `<s>${inner}</s>`;
    case "spoiler": return `<span class="spoiler" title="点击显示">${inner}</span>`;
    case "code": return `<code>${inner}</code>`;
    case "pre": return `<pre><code>${inner}</code></pre>`;
    case "blockquote": case "expandable_blockquote": return `<blockquote>${inner}</blockquote>`;
    case "text_link": {
      const url = safeUrl(entity.url || "");
      return url ? `<a href="${esc(url)}" target="_blank" rel="noopener">${inner}</a>` : inner;
    }
    case "url": {
      const url = safeUrl(/^[a-z]+:/i.test(raw) ? raw : `http://${raw}`);
      return url ? `<a href="${esc(url)}" target="_blank" rel="noopener">${inner}</a>` : inner;
    }
    case "email": return `<a href="mailto:${esc(raw)}">${inner}</a>`;
    case "phone_number": return `<a href="tel:${esc(raw.replace(/\s/g, ""))}">${inner}</a>`;
    case "bot_command": return `<span class="cmd" data-cmd="${esc(raw)}" title="点击发送">${inner}</span>`;
    default: return inner;
  }
}

// ---- chats ----------------------------------------------------------------------------------
function avatar(chat) {
  return el("div", { class: "avatar", style: `background:${ROLE_COLOURS[chat.role] || "#888"}` }, chat.name.slice(0, 1));
}

function buildChat(data) {
  const id = data.user_id;
  const colour = ROLE_COLOURS[data.role] || "#888";
  const input = el("input", { type: "text", placeholder: "输入消息…", autocomplete: "off", enterkeyhint: "send",
    "aria-label": `以${data.name}的身份输入消息` });
  const status = el("div", { class: "status" }, `与「${state.bot.name}」的对话`);
  const messages = el("div", { class: "messages" });
  const rkb = el("div", { class: "rkb", hidden: true });
  const kbToggle = el("button", { type: "button", class: "icon-btn kb-toggle", title: "显示/隐藏菜单键盘",
    "aria-label": "显示/隐藏菜单键盘", hidden: true, html: ICONS.keyboard });
  const attachMenu = el("div", { class: "popover attach-menu", hidden: true },
    el("button", { type: "button", class: "pick-photo" }, "📷", el("span", {}, "选择照片…")),
    el("button", { type: "button", class: "sample-photo" }, "🖼️", el("span", {}, "发送示例照片")));
  const cmdMenu = el("div", { class: "popover cmd-menu", hidden: true },
    data.commands.map((c) => el("button", { type: "button", dataset: { cmd: c.command } },
      el("b", {}, c.command), el("span", { class: "desc" }, c.description))));
  const form = el("form", { class: "composer" },
    el("button", { type: "button", class: "icon-btn attach", title: "发送照片", "aria-label": "发送照片", html: ICONS.attach }),
    el("button", { type: "button", class: "icon-btn cmd-btn", title: "命令菜单", "aria-label": "命令菜单" }, "/"),
    input, kbToggle,
    el("button", { type: "submit", class: "send", "aria-label": "发送", html: ICONS.send + "<span>发送</span>" }));
  const node = el("section", { class: "chat", dataset: { chat: id, role: data.role }, "aria-label": `${data.name}的聊天` },
    el("header", { class: "chat-head" }, avatar(data),
      el("div", { class: "who" },
        el("div", { class: "name" }, data.name,
          el("span", { class: "role-chip", style: `background:${colour}` }, data.role_label)),
        status)),
    el("div", { class: "hint" }, data.hint),
    messages, rkb, form, attachMenu, cmdMenu);

  const chat = { id, data, el: node, messages, rkb, input, status, kbToggle, attachMenu, cmdMenu,
    rendered: new Map(), hiddenKeyboard: null, unread: 0, seen: 0, loading: false, dirty: false };

  form.addEventListener("submit", (event) => { event.preventDefault(); sendText(chat); });
  $(".attach", form).addEventListener("click", () => togglePopover(chat, attachMenu));
  $(".cmd-btn", form).addEventListener("click", () => togglePopover(chat, cmdMenu));
  kbToggle.addEventListener("click", () => {
    const kb = chat.data.reply_keyboard;
    chat.hiddenKeyboard = rkb.hidden ? null : kb && kb.message_id;
    drawReplyKeyboard(chat);
  });
  $(".pick-photo", attachMenu).addEventListener("click", () => { attachMenu.hidden = true; pickPhoto(chat); });
  $(".sample-photo", attachMenu).addEventListener("click", () => { attachMenu.hidden = true; sendPhoto(chat, null); });
  cmdMenu.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-cmd]");
    if (!button) return;
    cmdMenu.hidden = true;
    send(chat, button.dataset.cmd);
  });
  messages.addEventListener("click", (event) => onMessageClick(chat, event));
  node.addEventListener("focusin", () => setFocus(id, false));
  return chat;
}

function togglePopover(chat, menu) {
  const open = menu.hidden;
  chat.attachMenu.hidden = true;
  chat.cmdMenu.hidden = true;
  menu.hidden = !open;
}

document.addEventListener("click", (event) => {
  if (event.target.closest(".popover, .attach, .cmd-btn")) return;
  document.querySelectorAll(".popover").forEach((p) => { p.hidden = true; });
});

function onMessageClick(chat, event) {
  const spoiler = event.target.closest(".spoiler");
  if (spoiler) { spoiler.classList.toggle("shown"); return; }
  const command = event.target.closest(".cmd");
  if (command) { send(chat, command.dataset.cmd); return; }
  const button = event.target.closest("button[data-callback]");
  if (button) press(chat, Number(button.dataset.message), button.dataset.callback, button);
}

function messageKey(m) {
  return JSON.stringify(m);
}

function drawMessage(m) {
  const bubble = el("div", { class: "bubble" });
  if (m.reply_to) bubble.append(el("div", { class: "quote" }, m.reply_to.text || "消息"));
  if (m.photo) {
    const src = `/files/${encodeURIComponent(m.photo.file_id)}`;
    bubble.append(el("a", { class: "photo", href: src, target: "_blank", rel: "noopener" },
      el("img", { src, alt: "照片", loading: "lazy", width: m.photo.width, height: m.photo.height })));
  }
  if (m.media) {
    const icons = { document: "📄", video: "🎬", audio: "🎵", voice: "🎤", animation: "🎞️", sticker: m.media.emoji || "🙂" };
    const name = m.media.file_name || { video: "视频", audio: "音频", voice: "语音消息", sticker: "贴纸", animation: "动图" }[m.media.kind] || "文件";
    const href = `/files/${encodeURIComponent(m.media.file_id)}`;
    bubble.append(el("a", { class: "file", href, download: m.media.kind === "document" ? name : null, target: "_blank", rel: "noopener" },
      el("span", { class: "file-icon" }, m.media.kind === "document" && /\.xlsx?$/i.test(name) ? "📊" : icons[m.media.kind] || "📄"),
      el("span", {}, el("div", { class: "file-name" }, name),
        el("div", { class: "file-size" }, [formatSize(m.media.size), m.media.kind === "document" ? "点击下载" : ""].filter(Boolean).join(" · ")))));
  }
  if (m.contact) {
    bubble.append(el("div", { class: "card" }, el("span", { class: "file-icon" }, "👤"),
      el("span", {}, el("div", { class: "file-name" }, [m.contact.first_name, m.contact.last_name].filter(Boolean).join(" ")),
        el("div", { class: "file-size" }, m.contact.phone_number))));
  }
  if (m.location) {
    bubble.append(el("div", { class: "card" }, el("span", { class: "file-icon" }, "📍"),
      el("span", {}, el("div", { class: "file-name" }, "位置"),
        el("div", { class: "file-size" }, `${m.location.latitude.toFixed(4)}, ${m.location.longitude.toFixed(4)}`))));
  }
  const meta = el("span", { class: "meta" }, (m.edited ? "已编辑 " : "") + timeFormat.format(new Date(m.date * 1000)));
  if (m.text) {
    const text = el("div", { class: "text", html: renderText(m.text, m.entities) });
    text.append(meta);
    bubble.append(text);
  } else {
    bubble.append(meta);
  }
  const row = el("div", { class: "row " + (m.out ? "in" : "out"), dataset: { id: m.id } }, bubble);
  if (m.inline_keyboard) {
    row.append(el("div", { class: "ikb" }, m.inline_keyboard.map((buttons) =>
      el("div", { class: "ikb-row" }, buttons.map((b) => {
        if (b.data) return el("button", { type: "button", dataset: { callback: b.data, message: m.id } }, b.text);
        const url = b.url && safeUrl(b.url);
        return url ? el("a", { href: url, target: "_blank", rel: "noopener" }, b.text + " ↗")
          : el("button", { type: "button", disabled: true }, b.text);
      })))));
  }
  return row;
}

function dayLabel(date) {
  return dayFormat.format(new Date(date * 1000));
}

function renderChat(chat, data) {
  chat.data = data;
  const box = chat.messages;
  const nearBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  const seen = new Set();
  let previousDay = null;
  let cursor = null; // last node placed, to keep the DOM in message order
  const place = (node) => {
    const next = cursor ? cursor.nextSibling : box.firstChild;
    if (next !== node) box.insertBefore(node, next);
    cursor = node;
  };
  let incoming = 0;
  for (const m of data.messages) {
    const day = dayLabel(m.date);
    if (day !== previousDay) {
      const dayKey = `day:${day}`;
      seen.add(dayKey);
      let entry = chat.rendered.get(dayKey);
      if (!entry) {
        entry = { key: dayKey, el: el("div", { class: "day" }, day) };
        chat.rendered.set(dayKey, entry);
      }
      place(entry.el);
      previousDay = day;
    }
    const key = messageKey(m);
    seen.add(m.id);
    let entry = chat.rendered.get(m.id);
    if (!entry || entry.key !== key) {
      const node = drawMessage(m);
      if (entry) entry.el.replaceWith(node);
      entry = { key, el: node };
      chat.rendered.set(m.id, entry);
    }
    place(entry.el);
    if (m.out) incoming++;
  }
  for (const [id, entry] of chat.rendered) {
    if (!seen.has(id)) { entry.el.remove(); chat.rendered.delete(id); }
  }
  drawReplyKeyboard(chat);
  if (nearBottom || chat.stickToBottom) box.scrollTop = box.scrollHeight;
  chat.stickToBottom = false;
  // Unread: bot messages that arrived while this chat was out of view.
  if (!chat.initialised || isVisible(chat)) { chat.seen = incoming; chat.initialised = true; }
  chat.unread = Math.max(0, incoming - chat.seen);
  drawTabs();
}

function drawReplyKeyboard(chat) {
  const kb = chat.data.reply_keyboard;
  chat.kbToggle.hidden = !kb;
  const hide = !kb || chat.hiddenKeyboard === kb.message_id;
  chat.kbToggle.classList.toggle("on", !hide);
  chat.rkb.hidden = hide;
  if (kb) chat.input.placeholder = kb.placeholder || "输入消息…";
  const signature = kb ? JSON.stringify(kb) : "";
  if (chat.rkbSignature === signature) return;
  chat.rkbSignature = signature;
  chat.rkb.replaceChildren(...(kb ? kb.rows.map((row) => el("div", { class: "rkb-row" }, row.map((b) =>
    el("button", { type: "button", class: b.contact ? "contact" : null, onclick: () => pressReply(chat, b) }, b.text)))) : []));
}

async function refreshChat(id) {
  const chat = state.chats.get(id);
  if (!chat) return;
  if (chat.loading) { chat.dirty = true; return; }
  chat.loading = true;
  try {
    renderChat(chat, await api(`/api/chats/${id}`, undefined, { quiet: true }));
  } catch (_) {
    /* the stream reconnects and reloads everything */
  } finally {
    chat.loading = false;
    if (chat.dirty) { chat.dirty = false; refreshChat(id); }
  }
}

// ---- acting as a person ---------------------------------------------------------------------
async function send(chat, text) {
  chat.stickToBottom = true;
  try {
    await api("/api/send", { user_id: chat.id, text });
  } finally {
    refreshChat(chat.id);
  }
}

async function sendText(chat) {
  const text = chat.input.value.trim();
  if (!text) return;
  chat.input.value = "";
  await send(chat, text);
}

function pickPhoto(chat) {
  const input = $("#file-input");
  input.value = "";
  input.onchange = () => { if (input.files && input.files[0]) sendPhoto(chat, input.files[0]); };
  input.click();
}

async function sendPhoto(chat, file) {
  // Like Telegram: whatever is typed in the input goes along as the photo's caption.
  const caption = chat.input.value.trim();
  chat.input.value = "";
  chat.stickToBottom = true;
  try {
    if (file) {
      const form = new FormData();
      form.append("user_id", String(chat.id));
      form.append("caption", caption);
      form.append("file", file);
      await api("/api/photo", form);
    } else {
      await api("/api/photo", { user_id: chat.id, caption });
    }
  } finally {
    refreshChat(chat.id);
  }
}

async function pressReply(chat, button) {
  const kb = chat.data.reply_keyboard;
  if (kb && kb.one_time) chat.hiddenKeyboard = kb.message_id;
  chat.stickToBottom = true;
  try {
    await api("/api/reply-button", { user_id: chat.id, text: button.text });
  } finally {
    refreshChat(chat.id);
  }
}

async function press(chat, messageId, data, button) {
  button.classList.add("pending");
  try {
    await api("/api/press", { user_id: chat.id, message_id: messageId, data });
  } finally {
    setTimeout(() => button.classList.remove("pending"), 400);
  }
}

function showCallbackAnswer(chat, answer) {
  if (!answer || !answer.text) return;
  if (answer.show_alert) {
    const back = el("div", { class: "alert-back" },
      el("div", { class: "alert", role: "alertdialog" }, el("p", {}, answer.text),
        el("button", { type: "button", onclick: () => back.remove() }, "确定")));
    chat.el.append(back);
    $("button", back).focus();
  } else {
    const node = el("div", { class: "chat-toast", role: "status" }, answer.text);
    chat.el.append(node);
    setTimeout(() => node.remove(), 2700);
  }
}

function showTyping(chat) {
  chat.status.textContent = "正在输入…";
  chat.status.classList.add("typing");
  clearTimeout(chat.typingTimer);
  chat.typingTimer = setTimeout(() => {
    chat.status.textContent = `与「${state.bot.name}」的对话`;
    chat.status.classList.remove("typing");
  }, 4000);
}

// ---- tabs, focus and visibility -------------------------------------------------------------
function isVisible(chat) {
  const box = $("#chats").getBoundingClientRect();
  const r = chat.el.getBoundingClientRect();
  const overlap = Math.min(r.right, box.right) - Math.max(r.left, box.left);
  return overlap > r.width * 0.6;
}

function drawTabs() {
  const tabs = $("#tabs");
  tabs.replaceChildren(...state.order.map((id) => {
    const chat = state.chats.get(id);
    return el("button", { type: "button", class: "tab" + (state.focused === id ? " active" : ""),
      dataset: { tab: id }, onclick: () => setFocus(id, true) },
    avatar(chat.data), el("span", {}, chat.data.name), el("span", { class: "tab-role" }, chat.data.role_label),
    chat.unread ? el("span", { class: "badge" }, chat.unread) : null);
  }));
}

function setFocus(id, scroll) {
  const chat = state.chats.get(id);
  if (!chat) return;
  state.focused = id;
  for (const other of state.chats.values()) other.el.classList.toggle("focus", other === chat);
  if (scroll) chat.el.scrollIntoView({ behavior: "smooth", inline: "start", block: "nearest" });
  chat.seen += chat.unread;
  chat.unread = 0;
  drawTabs();
  const tab = $(`.tab[data-tab="${id}"]`);
  if (tab) tab.scrollIntoView({ block: "nearest", inline: "nearest" });
}

let scrollTimer = null;
function onChatsScroll() {
  // On a phone the swipe decides which chat is "open": mark it read and highlight its tab.
  clearTimeout(scrollTimer);
  scrollTimer = setTimeout(() => {
    let changed = false;
    for (const chat of state.chats.values()) {
      if (chat.unread && isVisible(chat)) { chat.seen += chat.unread; chat.unread = 0; changed = true; }
    }
    if (window.matchMedia("(max-width: 720px)").matches) {
      const visible = state.order.find((id) => isVisible(state.chats.get(id)));
      if (visible && visible !== state.focused) { state.focused = visible; changed = true; }
    }
    if (changed) drawTabs();
  }, 120);
}

// ---- the clock ------------------------------------------------------------------------------
function drawClock(clock) {
  $("#clock-time").textContent = clock.label;
  $("#clock-time").dataset.time = clock.time;
  const summary = $("#ff-summary");
  summary.textContent = `到 ${clock.summary_time}`;
  summary.dataset.advance = clock.summary_time;
}

async function fastForward(step) {
  const buttons = document.querySelectorAll(".ff button");
  buttons.forEach((b) => { b.disabled = true; });
  try {
    const result = await api("/api/clock", { advance: step });
    drawClock(result);
    toast(`已快进到 ${result.label}` + (result.fired ? `,触发 ${result.fired} 项定时任务` : ""));
  } catch (_) {
    /* toast shown by api() */
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
  }
}

// ---- start-up and the live stream -------------------------------------------------------------
async function loadAll() {
  const data = await api("/api/state", undefined, { quiet: true });
  state.tz = data.clock.tz || state.tz;
  state.bot = data.bot;
  makeFormats();
  drawClock(data.clock);
  const box = $("#chats");
  for (const chatData of data.chats) {
    let chat = state.chats.get(chatData.user_id);
    if (!chat) {
      chat = buildChat(chatData);
      state.chats.set(chatData.user_id, chat);
      state.order.push(chatData.user_id);
      box.append(chat.el);
    }
    renderChat(chat, chatData);
  }
  if (state.focused === null && state.order.length) setFocus(state.order[0], false);
}

function connect() {
  const source = new EventSource("/api/events");
  source.addEventListener("hello", () => { loadAll().catch(() => {}); });
  source.onmessage = (message) => {
    let event;
    try { event = JSON.parse(message.data); } catch (_) { return; }
    if (event.type === "clock") { drawClock(event); return; }
    const chat = state.chats.get(event.chat_id);
    if (!chat) return;
    if (event.type === "callback_answered") showCallbackAnswer(chat, event.callback);
    else if (event.type === "chat_action") showTyping(chat);
    else refreshChat(chat.id);
  };
  // EventSource reconnects by itself; "hello" then reloads everything that was missed.
}

function setupGuide() {
  const guide = $("#guide");
  if (localStorage.getItem("wuye-sandbox-guide") !== "closed") guide.hidden = false;
  // On a phone the steps start folded: the chat needs the room; one tap unfolds them.
  if (window.matchMedia("(max-width: 720px)").matches) $("#guide-details").open = false;
  $("#guide-close").addEventListener("click", () => {
    guide.hidden = true;
    localStorage.setItem("wuye-sandbox-guide", "closed");
  });
}

document.querySelectorAll(".ff button").forEach((b) => b.addEventListener("click", () => fastForward(b.dataset.advance)));
$("#chats").addEventListener("scroll", onChatsScroll, { passive: true });
setupGuide();
loadAll().catch(() => toast("无法连接沙盒,请确认 wuye run 仍在运行", true)).finally(connect);
