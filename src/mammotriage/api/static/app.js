// Keyboard shortcuts of the reading page. The page works without this file: every action
// is a plain form; these keys only press the same buttons.
(function () {
  "use strict";

  function typing(event) {
    const tag = (event.target && event.target.tagName) || "";
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT";
  }

  function queueKeys() {
    const rows = Array.from(document.querySelectorAll('[data-testid="queue-row"]'));
    if (!rows.length) return;
    let current = 0;
    function select(index) {
      current = Math.max(0, Math.min(rows.length - 1, index));
      rows.forEach((row, i) => row.setAttribute("aria-selected", i === current ? "true" : "false"));
      rows[current].focus({ preventScroll: false });
    }
    // Back from a decision, the queue offers the next unread exam: start on its row (not on
    // a consensus exam that happens to be first).
    const next = document.querySelector('[data-testid="next-unread-form"]')
      ? rows.findIndex((row) => row.dataset.nextUnread === "true") : -1;
    select(next >= 0 ? next : 0);
    document.addEventListener("keydown", (event) => {
      if (typing(event) || event.ctrlKey || event.metaKey || event.altKey) return;
      if (event.key === "j" || event.key === "ArrowDown") { select(current + 1); event.preventDefault(); }
      else if (event.key === "k" || event.key === "ArrowUp") { select(current - 1); event.preventDefault(); }
      else if (event.key === "Enter") {
        const row = rows[current];
        const action = row.querySelector('[data-testid="claim"], [data-testid="open"]');
        if (action) { action.click(); event.preventDefault(); }
      }
    });
  }

  function examKeys() {
    const form = document.getElementById("decision-form");
    document.addEventListener("keydown", (event) => {
      if (event.ctrlKey || event.metaKey || event.altKey) return;
      if (event.key === "Escape") {
        const release = document.querySelector('[data-testid="release"]');
        if (release) release.click(); else window.location.href = "/";
        event.preventDefault();
        return;
      }
      if (typing(event) || !form) return;
      if (event.key === "r") { pick(form, "recall"); }
      else if (event.key === "n") { pick(form, "no-recall"); }
      else if (event.key === "s") {
        if (form.reportValidity()) form.requestSubmit(form.querySelector('[data-testid="decide-submit"]'));
        event.preventDefault();
      }
    });
  }

  // A finding in the list highlights its box: the view's thumbnail is re-requested with
  // ?highlight=N (the box drawn thicker, ringed in white); a second click turns it off.
  function findingLinks() {
    const links = Array.from(document.querySelectorAll('a[data-testid="finding"]'));
    links.forEach((link) => link.addEventListener("click", (event) => {
      event.preventDefault();
      const on = link.getAttribute("aria-pressed") !== "true";
      links.forEach((other) => other.setAttribute("aria-pressed", "false"));
      document.querySelectorAll('[data-testid="thumbnail"]').forEach((img) => {
        img.src = img.dataset.src;
        img.closest("figure").classList.remove("highlighted");
      });
      if (!on) return;
      link.setAttribute("aria-pressed", "true");
      const img = document.querySelector(
        '[data-testid="thumbnail"][data-index="' + link.dataset.imageIndex + '"]');
      if (!img) return;
      img.src = img.dataset.src + "?highlight=" + encodeURIComponent(link.dataset.number);
      img.closest("figure").classList.add("highlighted");
    }));
  }

  // The first of the site's decision categories with this outcome.
  function pick(form, outcome) {
    const input = form.querySelector('input[name="category"][data-outcome="' + outcome + '"]');
    if (input) input.checked = true;
  }

  // Times the server wrote in UTC (<time datetime=... data-local-time="time|datetime">),
  // shown in the reader's own time zone and locale.
  function localTimes() {
    document.querySelectorAll("time[data-local-time]").forEach((el) => {
      const when = new Date(el.getAttribute("datetime"));
      if (isNaN(when.getTime())) return;
      const options = { hour: "2-digit", minute: "2-digit", timeZoneName: "short" };
      if (el.dataset.localTime === "datetime") { options.year = "numeric"; options.month = "2-digit"; options.day = "2-digit"; }
      el.textContent = when.toLocaleString(undefined, options);
      el.title = el.getAttribute("datetime");
    });
  }

  document.addEventListener("DOMContentLoaded", localTimes);
  document.addEventListener("DOMContentLoaded", () => {
    if (document.body.classList.contains("page-exam")) findingLinks();
    if (document.body.classList.contains("page-queue")) queueKeys();
    if (document.body.classList.contains("page-exam")) examKeys();
  });
})();
