// The contribute page's "type rows" grid: "Add a row" appends an empty line (a copy of the <template>) and
// focuses it; a line's "Remove" takes it out and focuses the line that took its place. Lines are numbered
// again after each change, so inputs stay `row-<i>-<column>` in order and their labels and the "Row" column
// say the number the server's messages use. Without JavaScript the buttons stay hidden and the grid keeps
// the lines the server drew.
(() => {
  "use strict";
  const grid = document.getElementById("typed-rows");
  const template = document.getElementById("typed-row-template");
  const add = document.getElementById("add-typed-row");
  if (!grid || !template || !add) return;
  const body = grid.tBodies[0];
  const max = Number(grid.dataset.max) || 20;
  const lines = () => Array.from(body.querySelectorAll("tr[data-typed-row]"));
  const firstField = (line) => line.querySelector("input, select");

  function renumber() {
    const all = lines();
    all.forEach((line, i) => {
      line.querySelector("[data-row-number]").textContent = String(i + 1);
      line.querySelectorAll("[data-column]").forEach((field) => {
        field.name = `row-${i}-${field.dataset.column}`;
        field.setAttribute("aria-label", `Row ${i + 1} ${field.dataset.column}`);
      });
      const remove = line.querySelector("[data-remove-row]");
      remove.setAttribute("aria-label", `Remove row ${i + 1}`);
      remove.hidden = all.length < 2; // one line always stays
    });
    add.hidden = false;
    add.disabled = all.length >= max;
  }

  add.addEventListener("click", () => {
    if (lines().length >= max) return;
    body.appendChild(template.content.firstElementChild.cloneNode(true));
    renumber();
    firstField(lines().at(-1)).focus();
  });

  body.addEventListener("click", (event) => {
    const remove = event.target.closest("[data-remove-row]");
    if (!remove) return;
    const all = lines();
    const at = all.indexOf(remove.closest("tr"));
    if (at < 0 || all.length < 2) return;
    all[at].remove();
    renumber();
    const next = lines()[Math.min(at, lines().length - 1)];
    firstField(next).focus();
  });

  renumber();
})();
