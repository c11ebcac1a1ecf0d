// Review queue: "j" moves to the next row, "k" to the previous one. The current row is focused and
// outlined (Tab then reaches its label picker and buttons); it stays current when htmx swaps it after an
// accept or a reject. Keys typed into a text field, a picker or a search box are left alone.
(() => {
  "use strict";
  const TYPING = "input:not([type=checkbox]):not([type=radio]), textarea, select, [contenteditable]";
  let currentId = null;

  const rows = () => Array.from(document.querySelectorAll("#queue tr[data-record]"));

  function mark(row, focus) {
    rows().forEach((r) => { r.classList.remove("is-current"); r.removeAttribute("aria-current"); });
    if (!row) return;
    row.classList.add("is-current");
    row.setAttribute("aria-current", "true");
    currentId = row.dataset.record;
    if (focus) {
      row.focus({preventScroll: true});
      row.scrollIntoView({block: "nearest"});
    }
  }

  function move(step) {
    const all = rows();
    if (!all.length) return;
    const from = all.findIndex((r) => r.dataset.record === currentId);
    const to = from < 0 ? (step > 0 ? 0 : all.length - 1) : Math.min(all.length - 1, Math.max(0, from + step));
    mark(all[to], true);
  }

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || (event.key !== "j" && event.key !== "k")) return;
    if (!document.getElementById("queue") || event.target.closest(TYPING)) return;
    event.preventDefault();
    move(event.key === "j" ? 1 : -1);
  });

  // A click inside a row makes it the current one, so j/k carry on from there.
  document.addEventListener("focusin", (event) => {
    const row = event.target.closest && event.target.closest("#queue tr[data-record]");
    if (row && row.dataset.record !== currentId) mark(row, false);
  });

  // htmx replaced a row (or the whole queue): the current row stays current, and takes the focus back
  // when the button that had it was swapped away.
  document.addEventListener("htmx:afterSettle", () => {
    if (currentId === null) return;
    const row = document.querySelector(`#queue tr[data-record="${CSS.escape(currentId)}"]`);
    mark(row, Boolean(row) && (!document.activeElement || document.activeElement === document.body));
  });
})();
