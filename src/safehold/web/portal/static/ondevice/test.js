// The manual check page (test.html), also driven by tests/test_ondevice_browser.py:
// every file picked is hashed with hashFile and the results are shown as JSON.

import { hashFile, runsIn } from "./hash.js";

const input = document.getElementById("files");
const fps = document.getElementById("fps");
const webgl = document.getElementById("webgl");
const status = document.getElementById("status");
const results = document.getElementById("results");

// The longest pause of the page's own event loop while hashing (a frozen page would
// show seconds here; the work runs in a worker).
let longestPause = 0;
let last = performance.now();
setInterval(() => {
  const now = performance.now();
  longestPause = Math.max(longestPause, now - last);
  last = now;
}, 20);

document.addEventListener("securitypolicyviolation", (e) => {
  const list = JSON.parse(document.body.dataset.cspViolations || "[]");
  list.push(`${e.violatedDirective} ${e.blockedURI}`);
  document.body.dataset.cspViolations = JSON.stringify(list);
});

input.addEventListener("change", async () => {
  document.body.dataset.state = "hashing";
  longestPause = 0;
  last = performance.now();
  const out = [];
  const files = Array.from(input.files || []);
  for (const [i, file] of files.entries()) {
    const start = performance.now();
    try {
      const result = await hashFile(file, {
        fps: Number(fps.value),
        webgl: webgl.checked,
        onProgress: (p) => {
          status.textContent = `${i + 1}/${files.length} ${file.name}: ${p.phase} ${Math.round(100 * p.fraction)}%`;
        },
      });
      out.push({ name: file.name, ms: Math.round(performance.now() - start), result });
    } catch (e) {
      out.push({ name: file.name, ms: Math.round(performance.now() - start), error: { code: e.code || "error", message: e.message } });
    }
  }
  status.textContent = `${files.length} file(s) hashed`;
  results.textContent = JSON.stringify({ runsIn: await runsIn(), longestPauseMs: Math.round(longestPause), files: out }, null, 1);
  document.body.dataset.state = "done";
});

document.body.dataset.state = "ready";
