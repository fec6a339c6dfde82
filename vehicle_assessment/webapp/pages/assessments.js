// Assessments: newest first, filtered by status / VIN / needs review; and the review queue.
import { h, money, replaceChildren, statusBadge, when } from "../dom.js";

const STATUSES = ["AWAITING_PHOTOS", "PROCESSING", "COMPLETED", "NEEDS_PHOTOS", "FAILED", "INCOMPLETE"];
const PAGE_SIZE = 25;
const QUEUE_SIZE = 50;
const REASON_TEXT = {
  low_confidence: "low confidence",
  possible_reuse: "possible reuse",
  rejected_photo: "rejected photo",
};

function assessmentLink(id, text) {
  return h("a", { href: `#/assessments/${encodeURIComponent(id)}` }, text ?? id);
}

function filtersForm(query) {
  const status = query.get("status") ?? "";
  return h(
    "form",
    {
      class: "filters",
      "aria-label": "Filter assessments",
      onsubmit: (event) => {
        event.preventDefault();
        const data = new FormData(event.target);
        const next = new URLSearchParams();
        for (const name of ["status", "vin"]) if (data.get(name)) next.set(name, String(data.get(name)).trim());
        if (data.get("needs_review")) next.set("needs_review", "true");
        location.hash = `#/?${next}`;
      },
    },
    h(
      "label",
      {},
      "Status ",
      h(
        "select",
        { name: "status" },
        h("option", { value: "" }, "any"),
        STATUSES.map((s) => h("option", { value: s, selected: s === status }, s)),
      ),
    ),
    h("label", {}, "VIN ", h("input", { name: "vin", value: query.get("vin") ?? "", maxlength: 40, autocomplete: "off", spellcheck: "false" })),
    h("label", { class: "check" }, h("input", { type: "checkbox", name: "needs_review", checked: query.get("needs_review") === "true" }), " needs review"),
    h("button", { type: "submit" }, "Filter"),
  );
}

function summaryRow(item) {
  return h(
    "tr",
    { "data-assessment-id": item.assessment_id },
    h("td", {}, assessmentLink(item.assessment_id, when(item.created_at))),
    h("td", { class: "mono" }, item.vin ?? ""),
    h("td", {}, statusBadge(item.status)),
    h("td", { class: "num" }, money(item.adjusted_value_usd)),
    h("td", {}, item.needs_review ? h("span", { class: "badge warn" }, "needs review") : "–"),
  );
}

function assessmentTable(items) {
  return h(
    "div",
    { class: "table-scroll" },
    h(
      "table",
      { class: "list", id: "assessment-list" },
      h("caption", { class: "visually-hidden" }, "Assessments, newest first"),
      h("thead", {}, h("tr", {}, ["Created", "VIN", "Status", "Adjusted value", "Review"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, items.map(summaryRow)),
    ),
  );
}

function queueSection(entries) {
  if (!entries.length) return h("p", { class: "muted" }, "Nothing waits for review.");
  return h(
    "ol",
    { class: "queue", id: "review-queue" },
    entries.map((entry) =>
      h(
        "li",
        {},
        h("a", { href: `#/assessments/${encodeURIComponent(entry.assessment_id)}/review` }, entry.vin),
        " ",
        statusBadge(entry.status),
        h("span", { class: "muted" }, ` waiting since ${when(entry.waiting_since)}`),
        h(
          "ul",
          {},
          Object.entries(entry.photos).map(([photoId, reasons]) =>
            h("li", {}, h("span", { class: "mono" }, photoId), ": ", reasons.map((r) => REASON_TEXT[r] ?? r).join(", ")),
          ),
        ),
      ),
    ),
  );
}

export async function render({ api, main, query, isCurrent }) {
  const filters = {
    status: query.get("status") || undefined,
    vin: query.get("vin") || undefined,
    needsReview: query.get("needs_review") === "true",
    limit: PAGE_SIZE,
  };
  const [page, queue] = await Promise.all([api.listAssessments(filters), api.reviewQueue(QUEUE_SIZE)]);
  if (!isCurrent()) return;
  const listArea = h("div", {}, page.assessments.length ? assessmentTable(page.assessments) : h("p", { class: "muted" }, "No assessment matches."));
  const more = h("div", { class: "more" });
  let next = page.next_token ?? null;
  const showMore = () => {
    replaceChildren(more);
    if (!next) return;
    more.append(
      h(
        "button",
        {
          type: "button",
          onclick: async (event) => {
            event.target.disabled = true;
            const further = await api.listAssessments({ ...filters, next });
            next = further.next_token ?? null;
            listArea.querySelector("tbody")?.append(...further.assessments.map(summaryRow));
            showMore();
          },
        },
        "Show older",
      ),
    );
  };
  showMore();
  replaceChildren(
    main,
    h("h1", {}, "Assessments"),
    h("p", {}, h("a", { class: "button primary", href: "#/new" }, "New assessment")),
    h("section", { "aria-labelledby": "queue-title" }, h("h2", { id: "queue-title" }, "Review queue (oldest first)"), queueSection(queue.entries)),
    h("section", { "aria-labelledby": "list-title" }, h("h2", { id: "list-title" }, "All assessments (newest first)"), filtersForm(query), listArea, more),
  );
}
