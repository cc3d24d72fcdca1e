/* safehold portal: small progressive enhancements. Every page works without this
   file, except that forms ask for a proof-of-work when the operator turned it on.
   - copy buttons on receipts
   - focus the error summary when a form comes back with errors
   - warn before sending files that are too large together
   - proof-of-work: find a nonce so that SHA-256("challenge:nonce") starts with N
     zero bits (Web Crypto when the page is a secure context, else the small SHA-256
     below), then send the form. */
(function () {
  "use strict";

  // ------------------------------------------------------------------ SHA-256 (fallback)
  var K = new Uint32Array([
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2
  ]);
  var W = new Uint32Array(64);

  function sha256(bytes) {
    var n = bytes.length, total = ((n + 9 + 63) >> 6) << 6;
    var m = new Uint8Array(total);
    m.set(bytes); m[n] = 0x80;
    var bits = n * 8;
    m[total - 4] = bits >>> 24; m[total - 3] = (bits >>> 16) & 255; m[total - 2] = (bits >>> 8) & 255; m[total - 1] = bits & 255;
    m[total - 5] = Math.floor(n / 0x20000000) & 255;
    var h0 = 0x6a09e667, h1 = 0xbb67ae85, h2 = 0x3c6ef372, h3 = 0xa54ff53a,
        h4 = 0x510e527f, h5 = 0x9b05688c, h6 = 0x1f83d9ab, h7 = 0x5be0cd19;
    for (var off = 0; off < total; off += 64) {
      for (var i = 0; i < 16; i++) {
        var j = off + i * 4;
        W[i] = (m[j] << 24) | (m[j + 1] << 16) | (m[j + 2] << 8) | m[j + 3];
      }
      for (i = 16; i < 64; i++) {
        var x = W[i - 15], y = W[i - 2];
        var s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
        var s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
        W[i] = (W[i - 16] + s0 + W[i - 7] + s1) | 0;
      }
      var a = h0, b = h1, c = h2, d = h3, e = h4, f = h5, g = h6, h = h7;
      for (i = 0; i < 64; i++) {
        var S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
        var t1 = (h + S1 + ((e & f) ^ (~e & g)) + K[i] + W[i]) | 0;
        var S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
        var t2 = (S0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
        h = g; g = f; f = e; e = (d + t1) | 0; d = c; c = b; b = a; a = (t1 + t2) | 0;
      }
      h0 = (h0 + a) | 0; h1 = (h1 + b) | 0; h2 = (h2 + c) | 0; h3 = (h3 + d) | 0;
      h4 = (h4 + e) | 0; h5 = (h5 + f) | 0; h6 = (h6 + g) | 0; h7 = (h7 + h) | 0;
    }
    var out = new Uint8Array(32), hs = [h0, h1, h2, h3, h4, h5, h6, h7];
    for (i = 0; i < 8; i++) {
      out[i * 4] = hs[i] >>> 24; out[i * 4 + 1] = (hs[i] >>> 16) & 255;
      out[i * 4 + 2] = (hs[i] >>> 8) & 255; out[i * 4 + 3] = hs[i] & 255;
    }
    return out;
  }

  function zeroBits(digest) {
    var count = 0;
    for (var i = 0; i < digest.length; i++) {
      var v = digest[i];
      if (v === 0) { count += 8; continue; }
      while ((v & 0x80) === 0) { count++; v <<= 1; }
      return count;
    }
    return count;
  }

  function ascii(text) {
    var out = new Uint8Array(text.length);
    for (var i = 0; i < text.length; i++) out[i] = text.charCodeAt(i) & 255;
    return out;
  }

  var pauses = function () { return new Promise(function (r) { setTimeout(r, 0); }); };

  /* Resolve with the nonce (a decimal string) for `challenge` at `bits`. */
  function solve(challenge, bits) {
    var subtle = window.isSecureContext && window.crypto && window.crypto.subtle;
    var prefix = challenge + ":";
    var nonce = 0;
    if (subtle) {
      var batch = 128;
      var step = function () {
        var tries = [];
        for (var i = 0; i < batch; i++) {
          tries.push(subtle.digest("SHA-256", ascii(prefix + (nonce + i))));
        }
        return Promise.all(tries).then(function (digests) {
          for (var i = 0; i < digests.length; i++) {
            if (zeroBits(new Uint8Array(digests[i])) >= bits) return String(nonce + i);
          }
          nonce += batch;
          return step();
        });
      };
      return step();
    }
    return new Promise(function (resolve) {
      var run = function () {
        var until = Date.now() + 30;
        while (Date.now() < until) {
          for (var i = 0; i < 256; i++, nonce++) {
            if (zeroBits(sha256(ascii(prefix + nonce))) >= bits) { resolve(String(nonce)); return; }
          }
        }
        pauses().then(run);
      };
      run();
    });
  }

  window.safeholdPortal = { solve: solve, sha256: sha256, zeroBits: zeroBits };

  // ------------------------------------------------------------------ proof-of-work forms
  function powForm(form) {
    var challenge = form.querySelector("input[name=pow_challenge]");
    var nonceField = form.querySelector("input[name=pow_nonce]");
    var status = form.querySelector("[data-pow-status]");
    if (!challenge || !nonceField) return;
    var bits = parseInt(form.getAttribute("data-pow-bits") || "0", 10);
    var waiting = false;
    var done = solve(challenge.value, bits).then(function (nonce) {
      nonceField.value = nonce;
      if (waiting && status) status.textContent = status.getAttribute("data-done") || "";
      return nonce;
    }, function () {
      if (status) { status.hidden = false; status.textContent = status.getAttribute("data-failed") || ""; }
    });
    form.addEventListener("submit", function (event) {
      if (nonceField.value) return;
      event.preventDefault();
      waiting = true;
      if (status) { status.hidden = false; status.textContent = status.getAttribute("data-checking") || ""; }
      done.then(function () { if (nonceField.value) form.submit(); });
    });
  }

  // ------------------------------------------------------------------ copy buttons
  function copyButtons() {
    var buttons = document.querySelectorAll("[data-copy]");
    var live = document.querySelector("[data-copied]");
    Array.prototype.forEach.call(buttons, function (button) {
      button.hidden = false;
      button.addEventListener("click", function () {
        var source = document.getElementById(button.getAttribute("data-copy"));
        if (!source) return;
        var text = source.textContent.trim();
        var say = function (ok) {
          if (!live) return;
          live.textContent = "";
          live.textContent = live.getAttribute(ok ? "data-copied-text" : "data-copy-failed-text") || "";
        };
        var select = function () {
          var range = document.createRange();
          range.selectNodeContents(source);
          var sel = window.getSelection();
          sel.removeAllRanges();
          sel.addRange(range);
          var ok = false;
          try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
          say(ok);
        };
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(text).then(function () { say(true); }, select);
        } else {
          select();
        }
      });
    });
  }

  // ------------------------------------------------------------------ file sizes
  function fileLimits() {
    var inputs = document.querySelectorAll("input[type=file][data-max-bytes]");
    Array.prototype.forEach.call(inputs, function (input) {
      var max = parseInt(input.getAttribute("data-max-bytes") || "0", 10);
      var warning = document.getElementById(input.id + "-size");
      input.addEventListener("change", function () {
        var total = 0;
        for (var i = 0; i < input.files.length; i++) total += input.files[i].size;
        var tooBig = max > 0 && total > max;
        if (warning) warning.hidden = !tooBig;
        input.setCustomValidity(tooBig && warning ? warning.textContent : "");
        if (tooBig) input.setAttribute("aria-invalid", "true"); else input.removeAttribute("aria-invalid");
      });
    });
  }

  function start() {
    var summary = document.querySelector("[data-focus-first]");
    if (summary) summary.focus();
    copyButtons();
    fileLimits();
    Array.prototype.forEach.call(document.querySelectorAll("form[data-pow]"), powForm);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
