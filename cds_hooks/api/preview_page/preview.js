// The card preview page: pick a fixture scenario, call the hook through /preview/evaluate, and show the cards as an
// EHR shows them. The DOM is built with textContent; only card detail becomes HTML, through renderMarkdown, which
// escapes everything first.
"use strict";

const INDICATOR_LABELS = { critical: "Critical", warning: "Warning", info: "Info" };
const state = { listing: null, drafts: [], selections: new Set(), addedOrders: 0, runs: 0 };
const $ = (id) => document.getElementById(id);
const reference = (resource) => `${resource.resourceType}/${resource.id}`;
const clone = (value) => JSON.parse(JSON.stringify(value));
const cardId = (card) => ((card.source || {}).topic || {}).code || "";

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function option(value, text) {
  const node = element("option", null, text);
  node.value = value;
  return node;
}

function externalLink(label, url) {
  // Only http(s) links: a card must never be able to run script in this page.
  if (!/^https?:\/\//i.test(url || "")) return element("span", null, label);
  const link = element("a", null, label);
  link.href = url;
  link.target = "_blank";
  link.rel = "noopener noreferrer";
  return link;
}

// One line a clinician recognises for a draft or suggested resource.
function describeResource(resource) {
  if (resource.resourceType === "MedicationRequest") return describeMedicationRequest(resource);
  const concept = resource.code || {};
  return [resource.resourceType, concept.text || ((concept.coding || [])[0] || {}).display].filter(Boolean).join(" · ");
}

function describeMedicationRequest(order) {
  const medication = order.medicationCodeableConcept || {};
  const name = medication.text || ((medication.coding || [])[0] || {}).display
    || (order.medicationReference || {}).display || "medication";
  const dosage = (order.dosageInstruction || [])[0] || {};
  const doses = (dosage.doseAndRate || []).map((rate) => rate.doseQuantity).filter(Boolean)
    .map((quantity) => `${quantity.value} ${quantity.unit || quantity.code || ""}`.trim());
  const dose = doses.length ? doses[0] + (doses.length > 1 ? ` (${doses.slice(1).join(", ")})` : "") : dosage.text;
  const route = dosage.route && (dosage.route.text || ((dosage.route.coding || [])[0] || {}).display);
  const repeat = (dosage.timing || {}).repeat || {};
  const every = repeat.period ? `every ${repeat.period} ${repeat.periodUnit || ""}`.trim() : "";
  const count = repeat.count ? `× ${repeat.count}` : "";
  const start = (repeat.boundsPeriod || {}).start ? `from ${repeat.boundsPeriod.start}` : "";
  return ["MedicationRequest", name, dose, route, every, count, start].filter(Boolean).join(" · ");
}

async function start() {
  try {
    const response = await fetch("preview/scenarios");
    state.listing = await response.json();
  } catch (error) {
    setStatus(`The scenarios could not be loaded: ${error.message}`, "error");
    return;
  }
  fillChoices();
  $("scenario").addEventListener("change", () => applyScenario(selectedScenario()));
  $("patient").addEventListener("change", run);
  $("hook").addEventListener("change", () => { renderDrafts(); run(); });
  $("add-order").addEventListener("click", addChosenOrder);
  $("use-json").addEventListener("click", useJson);
  $("run").addEventListener("click", run);
  const wanted = decodeURIComponent(location.hash.slice(1));
  const first = state.listing.scenarios.find((scenario) => scenario.name === wanted) || state.listing.scenarios[0];
  $("scenario").value = first.name;
  applyScenario(first);
}

function fillChoices() {
  const byTopic = new Map();
  for (const scenario of state.listing.scenarios) {
    const topic = scenario.name.split("-")[0];
    if (!byTopic.has(topic)) byTopic.set(topic, element("optgroup"));
    const group = byTopic.get(topic);
    group.label = topic;
    group.append(option(scenario.name, scenario.name.slice(topic.length + 1).replaceAll("-", " ")
      + (scenario.kind && scenario.kind !== "fire" ? ` (${scenario.kind})` : "")));
  }
  $("scenario").replaceChildren(...byTopic.values());
  $("patient").replaceChildren(...state.listing.patients.map((fixture) => option(fixture.name, fixture.name)));
  $("hook").replaceChildren(...state.listing.hooks.map((hook) => option(hook, hook)));
  const orders = state.listing.orders.map((order, index) => ({ index, text: describeResource(order).replace(/^MedicationRequest · /, "") }));
  orders.sort((a, b) => a.text.localeCompare(b.text));
  $("order-choice").replaceChildren(...orders.map(({ index, text }) => option(String(index), text)));
}

function selectedScenario() {
  return state.listing.scenarios.find((scenario) => scenario.name === $("scenario").value);
}

function applyScenario(scenario) {
  history.replaceState(null, "", `#${encodeURIComponent(scenario.name)}`);
  $("patient").value = scenario.patient;
  $("hook").value = scenario.hook;
  state.drafts = clone(scenario.draftOrders);
  state.selections = new Set(scenario.selections || state.drafts.map(reference));
  $("scenario-description").textContent = scenario.description;
  $("scenario-expect").textContent = describeExpectation(scenario);
  renderDrafts();
  run();
}

function describeExpectation(scenario) {
  const expect = scenario.expect;
  const parts = [];
  if (expect.empty) parts.push("no cards at all");
  for (const wanted of expect.cards) parts.push(wanted.indicator ? `${wanted.card} (${wanted.indicator})` : wanted.card);
  const expected = parts.length ? `Expected: ${parts.join(", ")}.` : "";
  const absent = expect.absent.length ? ` Must not show: ${expect.absent.join(", ")}.` : "";
  return (scenario.kind ? `Case kind: ${scenario.kind}. ` : "") + expected + absent;
}

function renderDrafts() {
  const hook = $("hook").value;
  $("orders-section").hidden = hook === "patient-view";
  const list = $("draft-orders");
  list.replaceChildren();
  if (!state.drafts.length) list.append(element("li", "empty", "No draft orders"));
  for (const order of state.drafts) {
    const row = element("li", "draft-order");
    row.dataset.reference = reference(order);
    if (hook === "order-select") {
      const selected = element("input");
      selected.type = "checkbox";
      selected.checked = state.selections.has(reference(order));
      selected.title = "Selected: the order-select hook checks selected orders; the others are context";
      selected.setAttribute("aria-label", `Select ${reference(order)}`);
      selected.addEventListener("change", () => {
        if (selected.checked) state.selections.add(reference(order)); else state.selections.delete(reference(order));
        run();
      });
      row.append(selected);
    }
    row.append(element("span", "order-text", describeResource(order).replace(/^MedicationRequest · /, "")));
    const remove = element("button", "remove", "×");
    remove.type = "button";
    remove.title = "Remove this draft order";
    remove.setAttribute("aria-label", `Remove ${reference(order)}`);
    remove.addEventListener("click", () => {
      state.drafts = state.drafts.filter((other) => other !== order);
      state.selections.delete(reference(order));
      renderDrafts();
      run();
    });
    row.append(remove);
    list.append(row);
  }
  $("orders-json").value = JSON.stringify(state.drafts, null, 2);
}

function addDraft(resource) {
  const draft = { ...clone(resource), id: resource.id && !state.drafts.some((o) => o.id === resource.id) ? resource.id : `preview-${++state.addedOrders}` };
  state.drafts.push(draft);
  state.selections.add(reference(draft));
}

function addChosenOrder() {
  const chosen = state.listing.orders[Number($("order-choice").value)];
  addDraft({ ...chosen, id: undefined });
  renderDrafts();
  run();
}

function useJson() {
  let drafts;
  try {
    drafts = JSON.parse($("orders-json").value);
    if (!Array.isArray(drafts)) throw new Error("give a JSON array of FHIR resources");
  } catch (error) {
    setStatus(`The draft orders are not valid JSON: ${error.message}`, "error");
    return;
  }
  state.drafts = drafts;
  state.selections = new Set(drafts.map(reference));
  renderDrafts();
  run();
}

function applyActions(actions) {
  for (const action of actions || []) {
    if (action.type === "delete") {
      state.drafts = state.drafts.filter((order) => reference(order) !== action.resourceId);
      state.selections.delete(action.resourceId);
    } else if (action.type === "create" && action.resource) {
      addDraft(action.resource);
    } else if (action.type === "update" && action.resource) {
      state.drafts = state.drafts.map((order) => (reference(order) === reference(action.resource) ? clone(action.resource) : order));
    }
  }
  renderDrafts();
}

async function run() {
  const runNumber = ++state.runs;
  const hook = $("hook").value;
  const request = { patient: $("patient").value, hook, draftOrders: state.drafts };
  if (hook === "order-select") request.selections = state.drafts.map(reference).filter((ref) => state.selections.has(ref));
  renderBanner();
  setStatus("Calling the service…", "busy");
  $("cards").replaceChildren();
  $("response-json").textContent = "";
  let response;
  let result;
  try {
    response = await fetch("preview/evaluate", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(request),
    });
    result = await response.json();
  } catch (error) {
    if (runNumber === state.runs) setStatus(`The service could not be reached: ${error.message}`, "error");
    return;
  }
  if (runNumber !== state.runs) return; // a later run has started: its answer is the one to show
  if (!response.ok) {
    setStatus(`${response.status} ${result.error || ""}: ${result.message || ""}`, "error", result.details);
    $("response-json").textContent = JSON.stringify(result, null, 2);
    return;
  }
  renderResponse(result.service, hook, result.response);
}

function renderBanner() {
  const fixture = state.listing.patients.find((candidate) => candidate.name === $("patient").value);
  const patient = fixture.patient;
  const name = (patient.name || [])[0] || {};
  const banner = $("patient-banner");
  banner.replaceChildren(
    element("span", "patient-name", [...(name.given || []), name.family].filter(Boolean).join(" ") || patient.id),
    element("span", "patient-fact", patient.gender || "gender not recorded"),
    element("span", "patient-fact", patient.birthDate ? `born ${patient.birthDate}` : "birth date not recorded"),
    element("span", "patient-fact", `Patient/${patient.id}`),
    element("span", "patient-fixture", `fixture ${fixture.name}`),
  );
}

function setStatus(text, kind, details) {
  const status = $("status");
  status.className = `status status-${kind}`;
  status.replaceChildren(element("span", null, text));
  if (details && details.length) {
    const list = element("ul");
    list.append(...details.map((detail) => element("li", null, detail)));
    status.append(list);
  }
}

function renderResponse(service, hook, body) {
  const cards = body.cards || [];
  const counts = ["critical", "warning", "info"].map((level) => [level, cards.filter((card) => card.indicator === level).length])
    .filter(([, count]) => count).map(([level, count]) => `${count} ${level}`);
  setStatus(cards.length
    ? `${hook} → ${service}: ${cards.length} card${cards.length === 1 ? "" : "s"} (${counts.join(", ")})`
    : `${hook} → ${service}: no cards — nothing to say for this patient and these orders`, "done");
  $("cards").replaceChildren(...cards.map(renderCard));
  if (body.systemActions) $("cards").append(renderSystemActions(body.systemActions));
  $("response-json").textContent = JSON.stringify(body, null, 2);
}

function renderCard(card) {
  const node = element("article", `card card-${card.indicator}`);
  node.dataset.card = cardId(card);
  const header = element("header", "card-header");
  header.append(element("span", `indicator indicator-${card.indicator}`, INDICATOR_LABELS[card.indicator] || card.indicator),
    element("h2", "summary", card.summary));
  node.append(header);

  const body = element("div", "card-body");
  if (card.detail) {
    const detail = element("div", "detail");
    detail.innerHTML = renderMarkdown(card.detail);
    body.append(detail);
  }
  const source = element("p", "source", "Source: ");
  source.append(externalLink(card.source.label, card.source.url));
  body.append(source);
  if (card.links && card.links.length) {
    const links = element("p", "links", "Further reading: ");
    card.links.forEach((link, index) => links.append(...(index ? [" · "] : []), externalLink(link.label, link.url)));
    body.append(links);
  }
  if (card.suggestions && card.suggestions.length) body.append(renderSuggestions(card));
  node.append(body);
  if (card.overrideReasons && card.overrideReasons.length) node.append(renderOverride(node, card.overrideReasons));
  node.append(element("p", "card-id", `card ${cardId(card)}`));
  return node;
}

function renderSuggestions(card) {
  const box = element("div", "suggestions");
  box.append(element("h3", null, card.selectionBehavior === "any" ? "Suggestions" : "Suggestions (choose at most one)"));
  for (const suggestion of card.suggestions) {
    const button = element("button", "suggestion", suggestion.label);
    button.type = "button";
    button.setAttribute("aria-expanded", "false");
    if (suggestion.isRecommended) button.append(element("span", "recommended", "Recommended"));
    const panel = renderSuggestionActions(suggestion);
    panel.hidden = true;
    button.addEventListener("click", () => {
      panel.hidden = !panel.hidden;
      button.setAttribute("aria-expanded", String(!panel.hidden));
    });
    box.append(button, panel);
  }
  return box;
}

function renderSuggestionActions(suggestion) {
  const panel = element("div", "suggestion-actions");
  panel.append(element("p", "panel-title", "Accepting this suggestion sends these FHIR actions to the EHR:"));
  for (const action of suggestion.actions || []) {
    const row = element("div", "action");
    row.append(element("span", `action-type action-${action.type}`, action.type.toUpperCase()),
      element("span", "action-description", action.description));
    const existing = state.drafts.find((order) => reference(order) === action.resourceId);
    const target = action.resource ? describeResource(action.resource)
      : `${action.resourceId}${existing ? ` · ${describeResource(existing).replace(/^MedicationRequest · /, "")}` : ""}`;
    row.append(element("div", "action-target", target));
    if (action.resource) {
      const json = element("details", "fhir");
      json.open = true;
      json.append(element("summary", null, `${action.resource.resourceType} (FHIR JSON)`),
        element("pre", null, JSON.stringify(action.resource, null, 2)));
      row.append(json);
    }
    panel.append(row);
  }
  const apply = element("button", "apply", "Apply to the draft orders and run again");
  apply.type = "button";
  apply.addEventListener("click", () => { applyActions(suggestion.actions); run(); });
  panel.append(apply);
  return panel;
}

function renderOverride(card, reasons) {
  const box = element("footer", "override");
  box.append(element("span", "override-label", "Override reason:"));
  const note = element("p", "override-note");
  note.hidden = true;
  for (const reason of reasons) {
    const button = element("button", "reason", reason.display);
    button.type = "button";
    button.addEventListener("click", () => {
      const chosen = !button.classList.contains("chosen");
      box.querySelectorAll(".reason").forEach((other) => other.classList.remove("chosen"));
      button.classList.toggle("chosen", chosen);
      card.classList.toggle("overridden", chosen);
      note.hidden = !chosen;
      note.textContent = `Overridden. An EHR would send feedback: outcome "overridden", overrideReason ${reason.code}.`;
    });
    box.append(button);
  }
  box.append(note);
  return box;
}

function renderSystemActions(actions) {
  const box = element("section", "system-actions");
  box.append(element("h3", null, "System actions (the EHR applies these without asking)"));
  for (const action of actions) {
    const row = element("div", "action");
    row.append(element("span", `action-type action-${action.type}`, action.type.toUpperCase()),
      element("span", "action-description", action.description));
    box.append(row);
  }
  return box;
}

document.addEventListener("DOMContentLoaded", start);
