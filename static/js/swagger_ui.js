/* Lineage's additions to Swagger UI (templates/api/swagger_ui.html; drf-spectacular's init script still starts it).
 * Each fixes something axe-core reports on the library's own markup:
 *
 * - nested-interactive: each operation's summary is a <button> that opens it, and with deep linking on Swagger UI
 *   puts an <a> to the operation's #fragment inside it: one control inside another, which screen readers announce
 *   badly. The path is drawn as plain text there. Deep linking itself stays: opening an operation still sets the
 *   URL's fragment, a URL with one opens that operation, and the tag headings keep their links.
 * - scrollable-region-focusable: code samples and responses are <pre> blocks that scroll; a keyboard user must be
 *   able to reach them to scroll, so each is focusable and named.
 * - label: the request body's <textarea> ("Try it out") has no label; it gets one.
 * - button-name: the authorization dialog's close button holds only an icon hidden from screen readers; the icon
 *   is shown to them as "Close".
 *
 * The plugin joins the library's by wrapping SwaggerUIBundle, which the init script calls after this file runs. */
(function () {
  "use strict";
  const libraryBundle = window.SwaggerUIBundle;
  if (typeof libraryBundle !== "function") {
    return;  // the bundle failed to load: Swagger UI cannot start either way
  }

  const accessibleMarkup = () => ({
    wrapComponents: {
      OperationSummaryPath: (Original, system) => (props) =>
        system.React.createElement(Original, {
          ...props,
          operationProps: props.operationProps.set("isDeepLinkingEnabled", false),
        }),

      HighlightCode: (Original, system) => (props) => {
        const { React } = system;
        const box = React.useRef(null);
        React.useEffect(() => {
          box.current.querySelectorAll("pre").forEach((pre) => {
            pre.tabIndex = 0;
            pre.setAttribute("role", "region");
            pre.setAttribute("aria-label", "Code sample");
          });
        });
        return React.createElement("div", { ref: box, className: "lineage-code" }, React.createElement(Original, props));
      },

      CloseIcon: (Original, system) => (props) =>
        system.React.createElement(Original, { ...props, "aria-hidden": "false", role: "img", "aria-label": "Close" }),

      TextArea: (Original, system) => (props) => {
        const body = String(props.className || "").includes("body-param__text");
        const label = props["aria-label"] || (body ? "Request body" : props.placeholder || "Value");
        return system.React.createElement(Original, { ...props, "aria-label": label });
      },
    },
  });

  const lineageBundle = (config) =>
    libraryBundle({ ...config, plugins: [...(config.plugins || []), accessibleMarkup] });
  window.SwaggerUIBundle = Object.assign(lineageBundle, libraryBundle);
})();
