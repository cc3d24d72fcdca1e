/* safehold review console: keyboard shortcuts, the reveal timer, small helpers.
   No framework, no build step; htmx does the requests. */
(function () {
  "use strict";

  var timers = new WeakMap();

  function typing(el) {
    if (!el) return false;
    var tag = el.tagName;
    if (tag === "INPUT") {
      var type = (el.getAttribute("type") || "text").toLowerCase();
      return ["radio", "checkbox", "button", "submit", "reset", "range"].indexOf(type) < 0;
    }
    return el.isContentEditable || tag === "TEXTAREA" || tag === "SELECT";
  }

  /* --- reveal: count down, then blur again ------------------------------------------ */

  function reblur(fig) {
    if (!fig || !fig.classList.contains("is-revealed")) return;
    var t = timers.get(fig);
    if (t) { clearInterval(t); timers.delete(fig); }
    // Blur at once on the client (the signed URL expires on the server anyway) ...
    fig.querySelectorAll("img[data-blurred-src]").forEach(function (img) {
      img.src = img.getAttribute("data-blurred-src");
      img.classList.remove("revealed");
      img.classList.add("blurred");
    });
    fig.classList.remove("is-revealed");
    // ... then fetch the blurred figure with its Reveal button.
    var url = fig.getAttribute("data-figure-url");
    if (url && window.htmx) {
      window.htmx.ajax("GET", url, { target: "#" + fig.id, swap: "outerHTML" });
    }
  }

  function startTimer(fig) {
    if (timers.has(fig)) return;
    var expires = parseInt(fig.getAttribute("data-expires"), 10) * 1000;
    var total = parseInt(fig.getAttribute("data-reveal-seconds"), 10) * 1000;
    // Trust the shorter of the server's expiry and the configured duration from now.
    var end = Math.min(expires || Infinity, Date.now() + (total || 15000));
    var out = fig.querySelector("[data-countdown]");
    var tick = function () {
      var left = Math.max(0, Math.ceil((end - Date.now()) / 1000));
      if (out) out.textContent = String(left);
      if (left <= 0) reblur(fig);
    };
    tick();
    timers.set(fig, setInterval(tick, 250));
  }

  function scan(root) {
    (root || document).querySelectorAll("figure.media.is-revealed").forEach(startTimer);
  }

  document.addEventListener("htmx:load", function (e) { scan(e.detail.elt.parentNode || document); });
  document.addEventListener("DOMContentLoaded", function () { scan(document); });

  document.addEventListener("click", function (e) {
    var btn = e.target.closest("[data-reblur]");
    if (btn) reblur(btn.closest("figure.media"));
  });

  /* --- confirmations and live outputs ------------------------------------------------ */

  document.addEventListener("submit", function (e) {
    var form = e.target;
    var msg = form.getAttribute && form.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) e.preventDefault();
  });

  document.addEventListener("input", function (e) {
    var id = e.target.getAttribute && e.target.getAttribute("data-output");
    if (id) {
      var out = document.getElementById(id);
      if (out) out.textContent = e.target.value;
    }
  });

  /* --- inline errors in complaint panels ---------------------------------------------- */

  // A panel action that fails answers 409/422 with the panel and its message
  // (X-Inline-Error): swap it like a success. Other errors inside such a panel (403,
  // a form field refused) show their message in the panel's error slot.
  document.addEventListener("htmx:beforeSwap", function (e) {
    var d = e.detail;
    if (!d.isError || !d.target || !d.target.closest) return;
    var box = d.target.closest("[data-inline-errors]");
    if (!box) return;
    if (d.xhr.getResponseHeader("X-Inline-Error")) {
      d.shouldSwap = true;
      d.isError = false;
      return;
    }
    var slot = box.querySelector("[data-error-slot]");
    if (slot && d.xhr.status !== 401) {
      slot.innerHTML = d.serverResponse;
      d.shouldSwap = false;
    }
  });

  /* --- keyboard shortcuts --------------------------------------------------------------- */

  function items() { return Array.prototype.slice.call(document.querySelectorAll("article.item")); }

  function currentItem() {
    return document.querySelector("article.item[aria-current='true']") || items()[0] || null;
  }

  function selectItem(step) {
    var all = items();
    if (!all.length) return;
    var i = all.indexOf(currentItem());
    var next = all[Math.max(0, Math.min(all.length - 1, i + step))];
    all.forEach(function (a) { a.removeAttribute("aria-current"); });
    next.setAttribute("aria-current", "true");
    next.focus({ preventScroll: true });
    next.scrollIntoView({ block: "nearest" });
  }

  function chooseAction(n) {
    var radio = document.querySelector("#decide-form input[name=action][data-key='" + n + "']");
    if (!radio) return false;
    radio.checked = true;
    radio.dispatchEvent(new Event("change", { bubbles: true }));
    radio.focus();
    return true;
  }

  var pendingG = false;

  document.addEventListener("keydown", function (e) {
    // Ctrl/Cmd+Enter submits the decision form from anywhere in it (or on the page), and
    // any other form marked data-ctrl-enter (complaint panel, notices) from inside it.
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      var own = e.target.closest && e.target.closest("form[data-ctrl-enter]");
      if (own) {
        e.preventDefault();
        if (own.reportValidity()) own.requestSubmit();
        return;
      }
      var form = document.getElementById("decide-form");
      if (form && (!typing(e.target) || form.contains(e.target))) {
        e.preventDefault();
        if (form.reportValidity()) form.requestSubmit();
      }
      return;
    }
    if (e.key === "Escape") {
      var open = document.querySelector("figure.media.is-revealed");
      if (open) { reblur(open); e.preventDefault(); }
      return;
    }
    if (e.ctrlKey || e.metaKey || e.altKey || typing(e.target)) return;
    var dialog = document.getElementById("help");
    if (dialog && dialog.open) return;

    if (pendingG) {
      pendingG = false;
      if (e.key === "q") { window.location.href = "/ui/"; e.preventDefault(); }
      if (e.key === "c") { window.location.href = "/ui/complaints"; e.preventDefault(); }
      if (e.key === "n") { window.location.href = "/ui/notices"; e.preventDefault(); }
      return;
    }
    switch (e.key) {
      case "?":
        if (dialog && dialog.showModal) { dialog.showModal(); e.preventDefault(); }
        break;
      case "r": {
        var item = currentItem();
        var btn = item && item.querySelector("[data-reveal]");
        if (btn) { btn.click(); e.preventDefault(); }
        break;
      }
      case "b": {
        var it = currentItem();
        var fig = it && it.querySelector("figure.media.is-revealed");
        if (fig) { reblur(fig); e.preventDefault(); }
        break;
      }
      case "j": selectItem(1); e.preventDefault(); break;
      case "k": selectItem(-1); e.preventDefault(); break;
      case "1": case "2": case "3": case "4": case "5":
        if (chooseAction(e.key)) e.preventDefault();
        break;
      case "c": {
        var c = document.getElementById("comment-body");
        if (c) { c.focus(); e.preventDefault(); }
        break;
      }
      case "m": {
        var m = document.querySelector("textarea[data-shortcut='m']");
        if (m) { m.focus(); m.scrollIntoView({ block: "center" }); e.preventDefault(); }
        break;
      }
      case "n": {
        var nf = document.getElementById("next-form") || document.querySelector("form[action='/ui/next']");
        if (nf) { nf.requestSubmit(); e.preventDefault(); }
        break;
      }
      case "g": pendingG = true; setTimeout(function () { pendingG = false; }, 1500); break;
      default: break;
    }
  });
})();
