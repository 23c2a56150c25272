// The gateway's web pages: live without reload, from the control API's event stream.
//
// The server renders every section; this script follows /v1/events and, when
// what a section watches changes (its data-watch: "status:<path>",
// "devices:", "audit:<action>"), fetches that section again and patches it
// in place (focus, open <details> and typed input survive). It also runs
// the buttons and forms (each change carries the session's CSRF token), the
// copy buttons, the progress bar of an apply, the backlog bar and the live
// values of the Devices page. No library, nothing fetched from elsewhere.
(function () {
  "use strict";

  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const csrf = csrfMeta ? csrfMeta.content : "";
  const page = location.pathname;
  const BACKGROUND = { "X-Panelfast-Background": "1" };

  function toLogin() {
    location.assign("/login?next=" + encodeURIComponent(page));
  }

  function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  // -- requests ---------------------------------------------------------------

  async function call(method, url, body) {
    const headers = { "X-CSRF-Token": csrf, Accept: "application/json" };
    const init = { method, headers, credentials: "same-origin" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(url, init);
    if (response.status === 401) {
      toLogin();
      throw new Error("logged out");
    }
    let data = null;
    try {
      data = await response.json();
    } catch (_) {
      data = null;
    }
    return { ok: response.ok, status: response.status, data };
  }

  function refusal(answer) {
    const data = answer.data || {};
    let text = data.message || "The gateway refused (HTTP " + answer.status + ").";
    // A sentence starts with a capital; a setting's name ("time.mode ...") stays as it is.
    if (/^[a-z]+$/.test(text.split(" ")[0])) text = text.charAt(0).toUpperCase() + text.slice(1);
    if (data.stage) text += " (step: " + data.stage + (data.code ? ", server answer: " + data.code + " " + (data.text || "") : "") + ")";
    // "run: panelfast ..." is the command line's way; the message says it in words.
    if (data.hint && !data.hint.startsWith("run: ")) text += " What to do: " + data.hint;
    if (Array.isArray(data.issues) && data.issues.length) {
      text += " " + data.issues.map((i) => i.path + ": " + i.message).join("; ");
    }
    return text;
  }

  function say(target, text, kind) {
    if (!target) return;
    target.textContent = text;
    target.classList.toggle("result--bad", kind === "bad");
    target.classList.toggle("result--ok", kind === "ok");
  }

  // -- patching a section in place -------------------------------------------

  // Attributes this script sets, which the server's HTML never has.
  const OWN_ATTRIBUTES = new Set(["data-dirty", "data-following"]);

  function morph(from, to) {
    if (from.nodeType !== to.nodeType || from.nodeName !== to.nodeName) {
      from.replaceWith(to);
      return;
    }
    if (from.nodeType !== Node.ELEMENT_NODE) {
      if (from.nodeValue !== to.nodeValue) from.nodeValue = to.nodeValue;
      return;
    }
    if (from.hasAttribute("data-keep")) return; // filled by this script
    // An open <details> or <dialog> is the person's doing: the server's HTML never says so.
    const isDetails = from.tagName === "DETAILS" || from.tagName === "DIALOG";
    for (const { name } of Array.from(from.attributes)) {
      if (isDetails && name === "open") continue; // the person's choice
      if (OWN_ATTRIBUTES.has(name)) continue;
      if (!to.hasAttribute(name)) from.removeAttribute(name);
    }
    for (const { name, value } of Array.from(to.attributes)) {
      if (isDetails && name === "open") continue;
      if (from.getAttribute(name) !== value) from.setAttribute(name, value);
    }
    // What the person is typing or choosing stays, in the whole form (a radio group).
    if (from.tagName === "INPUT" && !from.dataset.dirty && !(from.form && from.form.dataset.dirty)) {
      if (from.type === "radio" || from.type === "checkbox") from.checked = to.hasAttribute("checked");
      else from.value = to.getAttribute("value") || "";
    }
    const before = Array.from(from.childNodes);
    const after = Array.from(to.childNodes);
    after.forEach((node, i) => {
      if (i < before.length) morph(before[i], node);
      else from.appendChild(node);
    });
    before.slice(after.length).forEach((node) => node.remove());
  }

  const fetching = new Map(); // section name -> {running, again}

  async function refresh(name) {
    const state = fetching.get(name) || { running: false, again: false };
    fetching.set(name, state);
    if (state.running) {
      state.again = true;
      return;
    }
    state.running = true;
    try {
      do {
        state.again = false;
        const response = await fetch(page + "?section=" + encodeURIComponent(name), {
          headers: BACKGROUND,
          credentials: "same-origin",
        });
        if (response.status === 401) return toLogin();
        if (!response.ok) break;
        const html = await response.text();
        const current = document.querySelector('[data-section="' + name + '"]');
        const template = document.createElement("template");
        template.innerHTML = html.trim();
        const next = template.content.firstElementChild;
        if (current && next) {
          morph(current, next);
          enhance(document.querySelector('[data-section="' + name + '"]'));
        }
        await sleep(300); // at most about three a second per section
      } while (state.again);
    } finally {
      state.running = false;
    }
  }

  // -- what each section watches ----------------------------------------------

  const topics = {};
  const keys = new Map(); // section name -> key of what it watches

  function pick(value, path) {
    if (!path) return value;
    return path.split(".").reduce((v, k) => (v == null ? v : v[k]), value);
  }

  function sections() {
    return Array.from(document.querySelectorAll("[data-section]"));
  }

  function keyOf(element) {
    const watched = (element.dataset.watch || "").split(" ").filter(Boolean);
    const parts = watched
      .filter((w) => !w.startsWith("audit:"))
      .map((w) => {
        const [topic, path] = w.split(/:(.*)/s);
        return JSON.stringify(pick(topics[topic], path));
      });
    return parts.join("\u0000");
  }

  function remember() {
    for (const element of sections()) keys.set(element.dataset.section, keyOf(element));
  }

  function changed(everything) {
    for (const element of sections()) {
      const name = element.dataset.section;
      const key = keyOf(element);
      if (everything || keys.get(name) !== key) {
        keys.set(name, key);
        refresh(name);
      }
    }
  }

  function audited(entry) {
    for (const element of sections()) {
      const watched = (element.dataset.watch || "").split(" ");
      if (watched.includes("audit:" + entry.action)) refresh(element.dataset.section);
    }
  }

  // -- the event stream -------------------------------------------------------

  const streamState = document.getElementById("stream-state");

  function streamNotice(text) {
    if (!streamState) return;
    streamState.hidden = !text;
    streamState.textContent = text || "";
  }

  function listen() {
    const source = new EventSource("/v1/events");
    // After a break (a new stream, or the browser's own reconnection), changes may
    // have been missed, audit entries too: every section is fetched again.
    let resync = listen.opened === true;
    let broken = false;
    listen.opened = true;
    source.onopen = () => {
      if (broken) resync = true;
      broken = false;
      streamNotice("");
    };
    source.addEventListener("status", (event) => {
      topics.status = JSON.parse(event.data);
      changed(resync);
      resync = false;
      followApply(topics.status.applying);
    });
    source.addEventListener("devices", (event) => {
      topics.devices = JSON.parse(event.data);
      changed(false);
    });
    source.addEventListener("audit", (event) => audited(JSON.parse(event.data)));
    source.addEventListener("applying", (event) => applyStep(JSON.parse(event.data)));
    source.onerror = async () => {
      broken = true;
      streamNotice("The connection to the gateway was lost: trying again…");
      if (source.readyState !== EventSource.CLOSED) return; // the browser retries
      source.close();
      try {
        const response = await fetch("/v1/status", { headers: BACKGROUND });
        if (response.status === 401) return toLogin();
      } catch (_) {
        /* the gateway is away: try again below */
      }
      await sleep(3000);
      listen();
    };
  }

  // -- applying a remote configuration -----------------------------------------
  // An apply often takes less than a frame: each step stays on screen a little,
  // so the person sees that a new configuration was applied, and in which sections.

  const SECTIONS = ["measurements", "alarms", "publisher"];
  const applyBox = document.getElementById("apply");
  const topStatus = document.getElementById("top-status");
  const steps = [];
  let showingApply = false;
  let lastStepAt = 0;

  function applyStep(step) {
    steps.push(step);
    lastStepAt = Date.now();
    showApply();
  }

  function followApply(applying) {
    if (applying && !showingApply) {
      const fraction =
        (SECTIONS.indexOf(applying.section) + (applying.total ? applying.done / applying.total : 1)) /
        SECTIONS.length;
      applyStep(Object.assign({ fraction }, applying));
    }
  }

  function drawStep(step) {
    const percent = Math.round(step.fraction * 100);
    const index = SECTIONS.indexOf(step.section);
    if (applyBox) {
      const bar = document.getElementById("apply-bar");
      bar.value = percent;
      bar.setAttribute("aria-valuetext", percent + "%, " + step.section);
      const now = document.getElementById("apply-now");
      now.textContent =
        step.fraction >= 1
          ? "Applied."
          : "Applying the " + step.section + ": " + step.done.toLocaleString() + " of " +
            step.total.toLocaleString() + " changes.";
      for (const item of applyBox.querySelectorAll("[data-apply-section]")) {
        const k = SECTIONS.indexOf(item.dataset.applySection);
        const stateText = item.querySelector(".step-state");
        const done = k < index || (k === index && step.done >= step.total);
        item.dataset.state = done ? "done" : k === index ? "now" : "waiting";
        stateText.textContent = done
          ? "done"
          : k === index
          ? step.done.toLocaleString() + " / " + step.total.toLocaleString()
          : "waiting";
      }
    }
  }

  async function showApply() {
    if (showingApply) return;
    showingApply = true;
    if (applyBox) applyBox.hidden = false;
    if (topStatus) topStatus.classList.add("is-applying");
    try {
      for (;;) {
        while (steps.length) {
          const step = steps.shift();
          drawStep(step);
          await sleep(step.fraction >= 1 ? 1500 : 400);
        }
        const stillApplying = topics.status && topics.status.applying;
        if (!stillApplying || Date.now() - lastStepAt > 30000) break;
        await sleep(300);
      }
    } finally {
      if (applyBox) applyBox.hidden = true;
      if (topStatus) topStatus.classList.remove("is-applying");
      showingApply = false;
    }
  }

  // -- buttons, forms, copy -----------------------------------------------------

  async function run(button) {
    const [method, url] = button.dataset.call.split(" ");
    const target = document.querySelector(button.dataset.result);
    const label = button.textContent;
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    if (button.dataset.busy) button.textContent = button.dataset.busy;
    say(target, button.dataset.busy || "…", null);
    try {
      const body = button.dataset.body ? JSON.parse(button.dataset.body) : undefined;
      const answer = await call(method, url, body);
      if (answer.ok) say(target, button.dataset.done || describe(answer.data, url), "ok");
      else say(target, refusal(answer), "bad");
    } catch (error) {
      if (error.message !== "logged out") say(target, "The gateway did not answer: " + error.message, "bad");
    } finally {
      // A confirmation pop-up closes once answered: its result is said on the page.
      const dialog = button.closest("dialog");
      if (dialog && button.hasAttribute("data-close-after") && dialog.open) dialog.close();
      button.textContent = label;
      button.removeAttribute("aria-busy");
      button.disabled = false;
      changed(true);
    }
  }

  function describe(data, url) {
    if (data && data.status === "done" && data.readback && url.startsWith("/v1/outputs/")) {
      const output = decodeURIComponent(url.slice("/v1/outputs/".length));
      return output + " is " + data.readback + " (read back from the device).";
    }
    if (data && data.connection) {
      return "Connection status: " + data.connection + (data.diagnostic ? " — " + data.diagnostic : "") + ".";
    }
    if (data && data.answer && data.server) {
      const refused = (data.refused || []).map((r) => r.address + " (" + r.code + " " + r.text + ")");
      return (
        "Test email sent by " + data.server + " to " + (data.recipients.length - refused.length) +
        " recipient(s); server answer: " + data.answer.code + " " + data.answer.text +
        (refused.length ? ". Refused: " + refused.join(", ") : "") + "."
      );
    }
    return "Done.";
  }

  async function submitMethod(form) {
    const chosen = form.querySelector('input[name="method"]:checked');
    const target = form.querySelector(".result");
    if (!chosen) return say(target, "Choose a publication method.", "bad");
    const answer = await call("PUT", "/v1/publication", { method: chosen.value });
    if (answer.ok) {
      const label = form.querySelector('input[value="' + answer.data.method + '"] ~ .choice-label');
      const name = label ? label.firstChild.textContent.trim() : answer.data.method;
      say(target, answer.data.changed ? "Publication method: " + name + "." : "Unchanged: " + name + ".", "ok");
    } else {
      say(target, refusal(answer), "bad");
    }
    clean(form);
    changed(true);
  }

  async function submitSetting(form) {
    const key = form.querySelector('[name="key"]').value.trim();
    const raw = form.querySelector('[name="value"]').value.trim();
    const target = form.querySelector(".result");
    if (!key || !raw) return say(target, "Give the setting and its new value.", "bad");
    const answer = await call("PUT", "/v1/settings/" + encodeURIComponent(key), { value: raw });
    if (answer.ok) {
      say(target, key + " is now " + JSON.stringify(answer.data.value) + ".", "ok");
      form.reset();
      clean(form);
    } else {
      say(target, refusal(answer), "bad");
    }
    refresh("settings");
  }

  async function copy(button) {
    const text = button.dataset.copy;
    let copied = false;
    try {
      await navigator.clipboard.writeText(text);
      copied = true;
    } catch (_) {
      const area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.className = "offscreen";
      document.body.appendChild(area);
      area.select();
      copied = document.execCommand("copy");
      area.remove();
    }
    const card = button.closest("[data-section]");
    const target = card ? card.querySelector(".result") : null;
    say(target, copied ? "Copied: " + text.trim().split("\n")[0] + (text.trim().includes("\n") ? " …" : "") : "Could not copy: select the text instead.", copied ? "ok" : "bad");
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-call]");
    if (button) {
      event.preventDefault();
      run(button);
      return;
    }
    const copier = event.target.closest("button[data-copy]");
    if (copier) {
      event.preventDefault();
      copy(copier);
      return;
    }
    // A confirmation pop-up: <dialog> shown modal (focus kept inside, Escape cancels).
    const opener = event.target.closest("button[data-dialog]");
    if (opener) {
      const dialog = document.querySelector(opener.dataset.dialog);
      if (dialog && !dialog.open) dialog.showModal();
      return;
    }
    const closer = event.target.closest("button[data-close]");
    if (closer) {
      const dialog = closer.closest("dialog");
      if (dialog) dialog.close();
    }
  });

  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (form.dataset.form === "method") {
      event.preventDefault();
      submitMethod(form);
    } else if (form.dataset.form === "setting") {
      event.preventDefault();
      submitSetting(form);
    }
  });

  function edited(event) {
    const input = event.target;
    if (!input.matches("input, select, textarea")) return;
    input.dataset.dirty = "1";
    if (input.form) input.form.dataset.dirty = "1";
  }
  document.addEventListener("input", edited);
  document.addEventListener("change", edited);

  function clean(form) {
    delete form.dataset.dirty;
    form.querySelectorAll("input").forEach((input) => delete input.dataset.dirty);
  }

  // -- the backlog bar ------------------------------------------------------------
  // Delivered of the largest backlog seen since the page opened.

  let backlogPeak = 0;

  function drawBacklog(section) {
    const bar = section.querySelector("#backlog-bar");
    if (!bar) return;
    const left = Number(bar.dataset.left);
    backlogPeak = Math.max(backlogPeak, left);
    const text = section.querySelector("#backlog-bar-text");
    if (backlogPeak === 0 || left === 0) {
      bar.max = 1;
      bar.value = 1;
      backlogPeak = 0;
      text.textContent = "Nothing waits: everything was delivered.";
      return;
    }
    bar.max = backlogPeak;
    bar.value = backlogPeak - left;
    text.textContent =
      (backlogPeak - left).toLocaleString() + " of " + backlogPeak.toLocaleString() +
      " samples delivered; " + left.toLocaleString() + " waiting.";
  }

  // -- live values (Devices) --------------------------------------------------------

  function formatValue(value, type, unit) {
    if (value === null || value === undefined) return "—";
    if (type === "DATETIME" && typeof value === "number") return new Date(value).toLocaleString();
    if (typeof value === "number" && !Number.isInteger(value)) {
      return value.toLocaleString(undefined, { maximumSignificantDigits: 6 });
    }
    // Without a unit an integer is an identifier (a serial number): shown as it is.
    return typeof value === "number" && unit ? value.toLocaleString() : String(value);
  }

  function formatTime(ms) {
    if (!ms) return "never";
    return new Date(ms).toLocaleTimeString();
  }

  function drawValues(body, readings) {
    const table = document.createElement("table");
    table.className = "values-table";
    table.innerHTML =
      '<thead><tr><th scope="col">Measurement</th><th scope="col" class="num">Value</th>' +
      '<th scope="col" class="read-at">Read at</th></tr></thead><tbody></tbody>';
    const rows = table.querySelector("tbody");
    for (const r of readings) {
      const row = rows.insertRow();
      const name = row.insertCell();
      name.textContent = r.name + " ";
      const id = document.createElement("span");
      id.className = "mono muted";
      id.textContent = r.id;
      name.appendChild(id);
      const value = row.insertCell();
      value.className = "num";
      value.textContent = formatValue(r.value, r.type, r.unit) + (r.value !== null && r.unit ? " " + r.unit : "");
      const readAt = row.insertCell();
      readAt.className = "read-at";
      readAt.textContent = formatTime(r.read_at_ms);
    }
    const wrap = document.createElement("div");
    wrap.className = "scroll";
    wrap.appendChild(table);
    body.replaceChildren(wrap);
  }

  async function followValues(details) {
    if (details.dataset.following) return;
    details.dataset.following = "1";
    const body = details.querySelector(".values-body");
    try {
      while (details.open && document.body.contains(details)) {
        if (!document.hidden) {
          const response = await fetch("/v1/devices/" + encodeURIComponent(details.dataset.device) + "/values", {
            headers: Object.assign({ Accept: "application/json" }, BACKGROUND),
          });
          if (response.status === 401) return toLogin();
          if (response.ok) drawValues(body, await response.json());
        }
        await sleep(2000);
      }
    } finally {
      delete details.dataset.following;
    }
  }

  document.addEventListener(
    "toggle",
    (event) => {
      const details = event.target;
      if (details.matches && details.matches("details.values") && details.open) followValues(details);
    },
    true
  );

  // -- start ---------------------------------------------------------------------

  function enhance(root) {
    if (!root) return;
    if (root.matches('[data-section="backlog"]')) drawBacklog(root);
  }

  const rendered = document.getElementById("rendered-topics");
  if (rendered) {
    Object.assign(topics, JSON.parse(rendered.textContent));
    remember();
    sections().forEach(enhance);
    listen();
  }
})();
