// Playground: streams a chat completion over the session (cookie + CSRF token) with fetch and a
// ReadableStream, then shows the attribution receipt carried in the last chunk's `lineage` field.
// A classifier (data-kind="classifier") labels each message on its own and takes no sampling settings; a
// chat model keeps the conversation: earlier turns stay on the page and go with each message as `messages`.
(function () {
  "use strict";
  const form = document.getElementById("playground-form");
  if (!form) return;
  const $ = (id) => document.getElementById(id);
  const answer = $("pg-answer"), error = $("pg-error"), meta = $("pg-meta");
  const send = $("pg-send"), stop = $("pg-stop"), prompt = $("pg-prompt"), model = $("pg-model");
  const conversation = $("pg-conversation"), current = $("pg-current"), question = $("pg-question");
  const KIND_HELP = {
    classifier: "A classifier: it answers each message with one of its labels, on its own.",
    chat: "A chat model: it keeps the conversation; each message is sent with the earlier turns.",
  };
  let controller = null;
  let history = [];  // the chat's finished turns, as sent: {role, content}
  let exchange = null;  // the turn on screen: {question, done}

  const kind = () => (model.selectedOptions[0] && model.selectedOptions[0].dataset.kind) || "chat";

  function applyKind() {
    const chat = kind() === "chat";
    $("pg-sampling").hidden = !chat;
    $("pg-new").hidden = !chat;
    $("pg-kind-help").textContent = KIND_HELP[chat ? "chat" : "classifier"];
    conversation.hidden = !chat || !conversation.children.length;
  }

  function turn(role, text) {
    const item = document.createElement("li");
    item.className = "turn turn-" + (role === "user" ? "user" : "assistant");
    const label = document.createElement("span");
    label.className = "turn-role";
    label.textContent = role === "user" ? "You" : "Model";
    const body = document.createElement("p");
    body.className = role === "user" ? "" : "answer-text";
    body.textContent = text;
    item.append(label, body);
    return item;
  }

  // The finished chat turn on screen moves up into the conversation before the next one starts.
  function keepFinishedTurn() {
    if (!exchange || !exchange.done || !exchange.chat) return;
    conversation.append(turn("user", exchange.question), turn("assistant", answer.textContent));
    conversation.hidden = kind() !== "chat";
  }

  function newConversation() {
    history = [];
    exchange = null;
    conversation.replaceChildren();
    conversation.hidden = true;
    current.hidden = true;
    answer.textContent = "";
    error.hidden = true;
    meta.textContent = "";
    $("pg-empty").hidden = false;
    prompt.focus();
  }

  function csrfToken() {
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  function showError(message, code) {
    error.textContent = message;
    if (code === "insufficient_quota" && form.dataset.depositUrl) {
      // The 429 says where to add credit: link it (the page explains deposits and shows the credit).
      const link = document.createElement("a");
      link.href = form.dataset.depositUrl;
      link.textContent = "Add credit";
      link.dataset.testid = "deposit-link";
      error.append(" ", link);
    }
    error.hidden = false;
  }

  // Base units (a decimal string, 18 decimals) as OPEN, exactly: "50000000000000000" -> "0.05".
  function formatOpen(baseUnits) {
    const digits = String(baseUnits || "0").replace(/^0+(?=\d)/, "").padStart(19, "0");
    const whole = digits.slice(0, -18), fraction = digits.slice(-18).replace(/0+$/, "");
    return whole + (fraction ? "." + fraction : "");
  }

  function showReceipt(lineage) {
    $("pg-receipt-empty").hidden = true;
    $("pg-receipt-body").hidden = false;
    $("pg-fee").textContent = formatOpen(lineage.fee);
    const link = $("pg-receipt-link");
    if (lineage.receipt_url) {
      link.href = lineage.receipt_url;
      link.textContent = lineage.receipt_id.slice(0, 8);
    } else {
      link.removeAttribute("href");
      link.textContent = lineage.receipt_status === "queued" ? "being computed" : "not available (index not built)";
    }
    const bars = $("pg-contributors"), rows = $("pg-rows");
    bars.replaceChildren();
    rows.replaceChildren();
    for (const c of lineage.contributors || []) {
      const row = document.createElement("div");
      row.className = "bar-row";
      const name = document.createElement("span");
      name.textContent = c.name;
      const bar = document.createElement("span");
      bar.className = "bar";
      bar.style.width = (c.share_ppm / 10000).toFixed(1) + "%";
      const value = document.createElement("span");
      value.className = "bar-value";
      value.textContent = (c.share_ppm / 10000).toFixed(1) + "%";
      row.append(name, bar, value);
      bars.append(row);
    }
    if (!(lineage.contributors || []).length) {
      const none = document.createElement("p");
      none.className = "muted";
      none.textContent = lineage.receipt_id
        ? "No contributor's influence rose above the noise floor; the contributors' part of the fee is split pro rata to rows."
        : "No receipt for this answer.";
      bars.append(none);
    }
    for (const r of lineage.top_rows || []) {
      const li = document.createElement("li");
      li.textContent = typeof r === "string" ? r : [r.row_id || r.uid || r.row, r.score !== undefined ? "score " + Number(r.score).toFixed(3) : "", r.text || ""].filter(Boolean).join(" · ");
      rows.append(li);
    }
  }

  async function run(event) {
    event.preventDefault();
    const chat = kind() === "chat";
    const text = prompt.value;
    keepFinishedTurn();
    exchange = { question: text, done: false, chat };
    question.textContent = text;
    answer.textContent = "";
    current.hidden = false;
    $("pg-empty").hidden = true;
    error.hidden = true;
    meta.textContent = "";
    $("pg-receipt-empty").hidden = false;
    $("pg-receipt-body").hidden = true;
    controller = new AbortController();
    send.disabled = true;
    stop.disabled = false;
    const body = {
      model: model.value,
      messages: chat ? [...history, { role: "user", content: text }] : [{ role: "user", content: text }],
      stream: true,
      stream_options: { include_usage: true },  // the last chunk (choices: []) carries the token counts
    };
    if (chat) {
      body.max_tokens = Number($("pg-max-tokens").value);
      body.temperature = Number($("pg-temperature").value);
    }
    let failed = false, stopped = false;
    try {
      const response = await fetch(form.dataset.endpoint, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
        body: JSON.stringify(body),
        signal: controller.signal,
      });
      if (!response.ok) {
        failed = true;
        const payload = await response.json().catch(() => ({}));
        showError((payload.error && payload.error.message) || payload.detail || "HTTP " + response.status,
                  payload.error && payload.error.code);
        return;
      }
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const line = buffer.slice(0, cut).trim();
          buffer = buffer.slice(cut + 2);
          if (!line.startsWith("data: ")) continue;
          const data = line.slice(6);
          if (data === "[DONE]") continue;
          const chunk = JSON.parse(data);
          if (chunk.error) { failed = true; showError(chunk.error.message, chunk.error.code); continue; }
          const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
          if (delta && delta.content) answer.textContent += delta.content;
          if (chunk.usage) meta.textContent = chunk.usage.prompt_tokens + " tokens in, " + chunk.usage.completion_tokens + " out";
          if (chunk.lineage) showReceipt(chunk.lineage);
        }
      }
    } catch (err) {
      if (err.name === "AbortError") stopped = true;
      else { failed = true; showError(String(err)); }
    } finally {
      send.disabled = false;
      stop.disabled = true;
      controller = null;
      // An answered turn (all of it, or what came before Stop) joins the chat's history; a refused one does
      // not, and its message stays in the box to send again.
      if (!failed && (!stopped || answer.textContent)) {
        exchange.done = true;
        if (chat) {
          history.push({ role: "user", content: text }, { role: "assistant", content: answer.textContent });
          prompt.value = "";
        }
      }
    }
  }

  form.addEventListener("submit", run);
  stop.addEventListener("click", () => controller && controller.abort());
  model.addEventListener("change", applyKind);
  $("pg-new").addEventListener("click", newConversation);
  applyKind();
})();
