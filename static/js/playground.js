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

  function showReceipt(lineage) {
    $("pg-receipt-empty").hidden = true;
    $("pg-receipt-body").hidden = false;
    window.LineageOpen.show($("pg-fee"), lineage.fee);
    const link = $("pg-receipt-link");
    if (lineage.receipt_url) {
      link.href = lineage.receipt_url;
      link.textContent = lineage.receipt_id.slice(0, 8);
    } else {
      link.removeAttribute("href");
      link.textContent = lineage.receipt_status === "queued" ? "being computed" : "not available (index not built)";
    }
    receiptShown += 1;
    const queued = lineage.receipt_status === "queued" && lineage.receipt_id && !(lineage.contributors || []).length;
    showShares(lineage.contributors || [], lineage.top_rows || [],
               queued ? "Being computed: who is credited appears here in a few seconds."
                 : lineage.receipt_id ? NO_SHARES : "No receipt for this answer.");
    showCitations(lineage.citations || []);
    if (queued) awaitReceipt(lineage.receipt_id, receiptShown);
  }

  const NO_SHARES = "No contributor's influence rose above the noise floor; the contributors' part of the fee " +
    "goes to the rows that trained the model.";
  let receiptShown = 0;  // which answer's receipt is on screen: a later answer stops the wait for an earlier one

  function showShares(contributors, topRows, emptyText) {
    const bars = $("pg-contributors"), rows = $("pg-rows");
    bars.replaceChildren();
    rows.replaceChildren();
    for (const c of contributors) {
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
    if (!contributors.length) {
      const none = document.createElement("p");
      none.className = "muted";
      none.textContent = emptyText;
      bars.append(none);
    }
    for (const r of topRows) {
      const li = document.createElement("li");
      li.textContent = typeof r === "string" ? r : [r.row_id || r.uid || r.row, r.score !== undefined ? "score " + Number(r.score).toFixed(3) : "", r.text || ""].filter(Boolean).join(" · ");
      rows.append(li);
    }
  }

  // A queued receipt is stored by the attribution worker seconds after the answer: ask the receipts API (202
  // receipt_pending until then, Retry-After in seconds) and show its shares, named as the receipt page names them.
  async function awaitReceipt(receiptId, shown) {
    const url = form.dataset.receiptsApi + encodeURIComponent(receiptId) + "/";
    for (let attempt = 0; attempt < 30 && shown === receiptShown; attempt++) {
      let response = null;
      try {
        response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
      } catch (err) { response = null; }
      if (shown !== receiptShown) return;
      if (response && response.status === 200) {
        const receipt = await response.json();
        const names = receipt.contributor_names || {};
        const contributors = Object.entries(receipt.contributor_shares_ppm || {})
          .map(([id, ppm]) => ({ name: names[id] || "user " + id, share_ppm: ppm }))
          .sort((a, b) => b.share_ppm - a.share_ppm);
        if (shown === receiptShown) showShares(contributors, receipt.top_rows || [], NO_SHARES);
        return;
      }
      if (!response || response.status !== 202) break;
      const wait = Math.min(Number(response.headers.get("Retry-After")) || 2, 10);
      await new Promise((resolve) => setTimeout(resolve, wait * 1000));
    }
    if (shown === receiptShown) {
      showShares([], [], "The receipt is not ready yet: open it to see who is credited.");
    }
  }

  // A retrieval app's answer cites passages as [1], [2]: list them as footnotes, each with its document, anchor,
  // Datanet version and contributor (lineage.citations).
  function showCitations(citations) {
    const list = $("pg-citations");
    list.replaceChildren();
    $("pg-sources").hidden = !citations.length;
    for (const c of citations) {
      const item = document.createElement("li");
      item.id = "pg-cite-" + c.number;
      item.dataset.passage = c.passage_id;
      const where = "\u201c" + c.document + "\u201d" + (c.anchor ? ", " + c.anchor : "");
      item.textContent = "[" + c.number + "] " + where + " \u00b7 " + c.datanet_name + " v" + c.datanet_version +
        " \u00b7 " + c.contributor + " \u00b7 score " + Number(c.score).toFixed(3);
      if (c.quote) {
        const quote = document.createElement("q");
        quote.textContent = c.quote;
        item.append(" ", quote);
      }
      list.append(item);
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
    $("pg-sources").hidden = true;
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
          if (chunk.usage) meta.textContent = chunk.usage.prompt_tokens + (chunk.usage.prompt_tokens === 1 ? " token" : " tokens") + " in, " + chunk.usage.completion_tokens + " out";
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
