// Small behaviours shared by every page. htmx itself comes from django-htmx; the CSRF header is
// set on <body hx-headers>. Keyboard shortcuts: elements with data-shortcut="k" are clicked on "k".
document.addEventListener("keydown", (event) => {
  const target = event.target;
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (target.closest("input, textarea, select, [contenteditable]")) return;
  const button = document.querySelector(`[data-shortcut="${CSS.escape(event.key)}"]`);
  if (button) { event.preventDefault(); button.click(); }
});
// Copy buttons: <button data-copy="#id">.
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const source = document.querySelector(button.dataset.copy);
  if (source && navigator.clipboard) navigator.clipboard.writeText(source.textContent.trim());
});
