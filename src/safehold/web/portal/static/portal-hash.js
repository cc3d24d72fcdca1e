/* "Hash it on your device": the browser hashes the person's own pictures and videos
   with /report/static/ondevice/hash.js (MD5 + PDQ, vPDQ for videos) and sends only
   the hashes, as JSON, to POST /report/hash. The files are never uploaded. */
const strings = JSON.parse(document.getElementById("portal-strings").textContent);
const form = document.querySelector("[data-hash-form]");
const startButton = form.querySelector("[data-hash-start]");
const progress = form.querySelector("[data-hash-progress]");
const errorBox = form.querySelector("[data-hash-error]");
const results = document.querySelector("[data-hash-results]");
const list = document.querySelector("[data-hash-list]");
const sendButton = document.querySelector("[data-hash-send]");
const resetButton = document.querySelector("[data-hash-reset]");
const done = document.querySelector("[data-hash-receipt]");
const maxItems = parseInt(form.dataset.maxItems || "20", 10);
let hashed = [];

function fill(text, values) {
  return text.replace(/\{(\w+)\}/g, (m, key) => (key in values ? String(values[key]) : m));
}

function showError(message) {
  errorBox.textContent = message;
  errorBox.hidden = !message;
}

function percentOf(p) {
  if (typeof p === "number") return Math.round(p <= 1 ? p * 100 : p);
  if (p && typeof p === "object") {
    if (typeof p.fraction === "number") return Math.round(p.fraction * 100);
    if (typeof p.progress === "number") return Math.round(p.progress <= 1 ? p.progress * 100 : p.progress);
    if (typeof p.done === "number" && p.total) return Math.round((100 * p.done) / p.total);
  }
  return null;
}

function item(result) {
  if (result.kind === "video") {
    return { md5: result.md5, vpdq: result.vpdq.map((f) => ({ frame: f.frame, timestamp: f.timestamp, pdq: f.pdq, quality: f.quality })) };
  }
  return { md5: result.md5, pdq: result.pdq, quality: result.quality };
}

function code(text) {
  const c = document.createElement("code");
  c.textContent = text;
  c.setAttribute("translate", "no");
  return c;
}

function showResults() {
  list.replaceChildren();
  for (const h of hashed) {
    const li = document.createElement("li");
    const name = document.createElement("p");
    name.className = "hash-name";
    const bdi = document.createElement("bdi");
    bdi.textContent = h.name;
    name.append(bdi, " · ", h.result.kind === "video" ? strings.video : strings.picture);
    li.append(name, code("MD5 " + h.result.md5));
    if (h.result.kind === "video") {
      const frames = h.result.vpdq || [];
      li.append(code("vPDQ · " + fill(strings.frames, { count: frames.length })));
      if (frames.length) li.append(code("PDQ " + frames[0].pdq + " …"));
    } else {
      const quality = document.createElement("p");
      quality.className = "muted small";
      quality.textContent = fill(strings.quality, { quality: h.result.quality });
      li.append(code("PDQ " + h.result.pdq), quality);
    }
    list.append(li);
  }
  results.hidden = hashed.length === 0;
}

async function main() {
  let hashFile;
  try {
    ({ hashFile } = await import("/report/static/ondevice/hash.js"));
  } catch (e) {
    document.querySelector("[data-hash-unavailable]").hidden = false;
    return;
  }
  startButton.disabled = false;

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    showError("");
    const self = form.querySelector("#consent-self").checked;
    const share = form.querySelector("#consent-share").checked;
    const kind = form.querySelector("input[name=kind]:checked");
    if (!self || !share || !kind) { showError(strings.consent); return; }
    const files = Array.from(form.querySelector("#hash-files").files || []);
    if (!files.length) { showError(strings.nofiles); return; }
    if (files.length > maxItems) { showError(fill(strings.toomany, { max: maxItems })); return; }
    startButton.disabled = true;
    hashed = [];
    results.hidden = true;
    try {
      for (const file of files) {
        const name = file.name || "";
        progress.textContent = fill(strings.hashing, { name, percent: "" });
        try {
          const result = await hashFile(file, {
            fps: 1,
            onProgress: (p) => {
              const pct = percentOf(p);
              progress.textContent = fill(strings.hashing, { name, percent: pct === null ? "" : pct + "%" });
            },
          });
          hashed.push({ name, result });
        } catch (e) {
          showError(fill(strings.failed, { name }) + (e && e.message ? " (" + e.message + ")" : ""));
          hashed = [];
          progress.textContent = "";
          return;
        }
      }
      progress.textContent = fill(strings.hashed, { count: hashed.length });
      showResults();
      sendButton.focus();
    } finally {
      startButton.disabled = false;
    }
  });

  resetButton.addEventListener("click", () => {
    hashed = [];
    results.hidden = true;
    progress.textContent = "";
    form.querySelector("#hash-files").value = "";
    form.querySelector("#hash-files").focus();
  });

  sendButton.addEventListener("click", async () => {
    showError("");
    const kind = form.querySelector("input[name=kind]:checked");
    if (!kind || !hashed.length) { showError(strings.consent); return; }
    sendButton.disabled = true;
    progress.textContent = strings.sending;
    const body = {
      kind: kind.value,
      consent: form.querySelector("#consent-self").checked && form.querySelector("#consent-share").checked,
      lang: form.dataset.lang,
      items: hashed.map((h) => item(h.result)),
    };
    try {
      if (form.dataset.powChallenge) {
        progress.textContent = strings.checking;
        const nonce = await window.safeholdPortal.solve(form.dataset.powChallenge, parseInt(form.dataset.powBits, 10));
        body.pow = { challenge: form.dataset.powChallenge, nonce };
      }
      progress.textContent = strings.sending;
      const response = await fetch("/report/hash?lang=" + encodeURIComponent(form.dataset.lang), {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": form.dataset.csrf },
        body: JSON.stringify(body),
      });
      let answer = {};
      try { answer = await response.json(); } catch (e) { answer = {}; }
      if (!response.ok) {
        showError(answer.error || strings.sendfailed);
        progress.textContent = "";
        return;
      }
      document.getElementById("receipt-number").textContent = answer.number;
      document.getElementById("receipt-secret").textContent = answer.secret;
      const notes = done.querySelector("[data-hash-notes]");
      notes.replaceChildren(...(answer.notes || []).map((n) => { const li = document.createElement("li"); li.textContent = n; return li; }));
      form.hidden = true;
      results.hidden = true;
      done.hidden = false;
      // leaving the page now would lose the receipt: language links open a new tab
      for (const a of document.querySelectorAll(".langs a")) { a.target = "_blank"; a.rel = "noopener"; }
      done.focus();
    } catch (e) {
      showError(strings.sendfailed);
      progress.textContent = "";
    } finally {
      sendButton.disabled = false;
    }
  });
}

main();
