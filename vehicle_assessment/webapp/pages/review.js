// Review: per photo the reviewer's decision; after saving, the new valuation and descriptions.
// Descriptions can be regenerated (style, creativity, language) or edited by hand.
import { alertBox, errorText, h, money, replaceChildren } from "../dom.js";
import { loadMedia } from "../media.js";
import { FINAL_STATUSES, descriptionsSection, otherPhotoLoader, photoFigure, valuationBreakdown, warnings } from "../views.js";

const DAMAGE_TYPES = ["dent", "scratch", "broken"];
const SEVERITIES = ["minor", "moderate", "severe"];
const STYLES = ["standard", "auctioneer"];
// The API's limits (domain/limits.py): MAX_REVIEW_NOTE_CHARS, MAX_DESCRIPTION_CHARS.
const MAX_NOTE_CHARS = 1000;
const MAX_DESCRIPTION_CHARS = 4000;
// Above this creativity (the model's temperature) the text may state things the facts do not say.
const CREATIVITY_WARNING_FROM = 0.3;

function reviewable(photo) {
  return photo.status !== "duplicate";
}

function select(name, values, selected, attributes = {}) {
  return h("select", { name, ...attributes }, values.map((v) => h("option", { value: v, selected: v === selected }, v)));
}

function reviewForm(photo, onSave) {
  const last = photo.reviews.length ? photo.reviews[photo.reviews.length - 1] : null;
  const start = last ?? photo.verdict ?? { damaged: false, damage_type: "none", severity: "none" };
  const prefix = `review-${photo.photo_id}`;
  const typeSelect = select("damage_type", DAMAGE_TYPES, start.damaged ? start.damage_type : "dent", { id: `${prefix}-type` });
  const severitySelect = select("severity", SEVERITIES, start.damaged ? start.severity : "minor", { id: `${prefix}-severity` });
  const status = h("div", { class: "form-status", role: "status", "aria-live": "polite" });
  const syncDamaged = (form) => {
    const damaged = form.elements.damaged.value === "yes";
    typeSelect.disabled = !damaged;
    severitySelect.disabled = !damaged;
  };
  const form = h(
    "form",
    {
      class: "review-form",
      "data-photo-id": photo.photo_id,
      "aria-label": `Review of ${photo.filename}`,
      onchange: (event) => syncDamaged(event.currentTarget),
      onsubmit: async (event) => {
        event.preventDefault();
        const data = new FormData(form);
        const damaged = data.get("damaged") === "yes";
        const body = {
          damaged,
          damage_type: damaged ? data.get("damage_type") : "none",
          severity: damaged ? data.get("severity") : "none",
          as_reference: data.get("as_reference") === "on",
        };
        const note = String(data.get("note") ?? "").trim();
        if (note) body.note = note;
        const button = form.querySelector("button[type=submit]");
        button.disabled = true;
        replaceChildren(status, "Saving…");
        try {
          await onSave(photo, body);
        } catch (error) {
          button.disabled = false;
          replaceChildren(status, alertBox("error", errorText(error)));
        }
      },
    },
    h(
      "fieldset",
      {},
      h("legend", {}, "Is the car damaged in this photo?"),
      h("label", { class: "check" }, h("input", { type: "radio", name: "damaged", value: "yes", checked: start.damaged }), " damaged"),
      h("label", { class: "check" }, h("input", { type: "radio", name: "damaged", value: "no", checked: !start.damaged }), " not damaged"),
    ),
    h("label", { for: `${prefix}-type` }, "Damage type"),
    typeSelect,
    h("label", { for: `${prefix}-severity` }, "Severity"),
    severitySelect,
    h("label", { for: `${prefix}-note` }, "Note (optional)"),
    h("textarea", { id: `${prefix}-note`, name: "note", rows: 2, maxlength: MAX_NOTE_CHARS }),
    h("label", { class: "check" }, h("input", { type: "checkbox", name: "as_reference" }), " use this photo as a reference (with this label)"),
    h("button", { type: "submit", class: "primary" }, "Save review"),
    status,
  );
  syncDamaged(form);
  return form;
}

function regenerateForm(assessment, onDone) {
  const creativityOutput = h("output", { for: "creativity" }, "0.0");
  const creativityWarning = h("p", { class: "notice notice-warn", role: "alert", hidden: true }, "Higher creativity may invent details that are not in the facts: read the text before using it.");
  const status = h("div", { class: "form-status", role: "status", "aria-live": "polite" });
  const languages = [...new Set(assessment.descriptions.map((d) => d.language))];
  const form = h(
    "form",
    {
      class: "regenerate-form card",
      "aria-labelledby": "regenerate-title",
      oninput: () => {
        const value = Number(form.elements.creativity.value);
        creativityOutput.value = value.toFixed(1);
        creativityWarning.hidden = value < CREATIVITY_WARNING_FROM;
      },
      onsubmit: async (event) => {
        event.preventDefault();
        const button = form.querySelector("button[type=submit]");
        button.disabled = true;
        replaceChildren(status, "Writing…");
        try {
          await onDone({
            style: form.elements.style.value,
            language: form.elements.language.value.trim().toLowerCase(),
            creativity: Number(form.elements.creativity.value),
          });
        } catch (error) {
          button.disabled = false;
          replaceChildren(status, alertBox("error", errorText(error)));
        }
      },
    },
    h("h2", { id: "regenerate-title" }, "Write a new description"),
    h("label", { for: "style" }, "Style"),
    select("style", STYLES, "standard", { id: "style" }),
    h("label", { for: "language" }, "Language (two letters)"),
    h("input", { id: "language", name: "language", value: languages[0] ?? "en", pattern: "[a-zA-Z]{2}", maxlength: 2, required: true, list: "known-languages", autocomplete: "off" }),
    h("datalist", { id: "known-languages" }, languages.map((l) => h("option", { value: l }))),
    h("label", { for: "creativity" }, "Creativity (the model's temperature) ", creativityOutput),
    h("input", { id: "creativity", name: "creativity", type: "range", min: 0, max: 1, step: 0.1, value: "0" }),
    creativityWarning,
    h("button", { type: "submit" }, "Write description"),
    status,
  );
  return form;
}

function editControl(assessmentId, description, onSaved, api) {
  const id = `edit-${description.style}-${description.language}`;
  const status = h("div", { class: "form-status", role: "status", "aria-live": "polite" });
  const form = h(
    "form",
    {
      class: "edit-form",
      onsubmit: async (event) => {
        event.preventDefault();
        replaceChildren(status, "Saving…");
        try {
          const view = await api.editDescription(assessmentId, description.language, description.style, form.elements.text.value);
          await onSaved(view, `The ${description.style}/${description.language} description was saved as version ${description.version + 1}.`);
        } catch (error) {
          replaceChildren(status, alertBox("error", errorText(error)));
        }
      },
    },
    h("label", { for: id }, "Edit the text"),
    h("textarea", { id, name: "text", rows: 5, maxlength: MAX_DESCRIPTION_CHARS, required: true, value: description.text }),
    h("button", { type: "submit" }, "Save text"),
    status,
  );
  return h("details", { class: "edit" }, h("summary", {}, "Edit by hand"), form);
}

export async function render({ api, main, params, isCurrent }) {
  const [id] = params;
  const assessment = await api.getAssessment(id);
  const media = await loadMedia(api, id);
  if (!isCurrent()) return;
  show(assessment, media, null);

  async function refresh(view, message) {
    const fresh = view ?? (await api.getAssessment(id));
    const freshMedia = await loadMedia(api, id);
    if (isCurrent()) show(fresh, freshMedia, message);
    main.querySelector("#review-result")?.focus();
  }

  function show(current, currentMedia, message) {
    const finished = FINAL_STATUSES.has(current.status);
    const save = async (photo, body) => {
      const before = current.valuation?.adjusted_value_usd ?? null;
      const view = await api.reviewPhoto(id, photo.photo_id, body);
      const after = view.valuation?.adjusted_value_usd ?? null;
      await refresh(view, [`Review of ${photo.filename} saved. Adjusted value `, h("span", { id: "value-before" }, money(before)), " → ", h("strong", { id: "value-after" }, money(after)), "."]);
    };
    const regenerate = async (request) => {
      const answer = await api.regenerateDescription(id, request);
      await refresh(null, `A new ${answer.description.style}/${answer.description.language} description was written (version ${answer.description.version}).`);
    };
    replaceChildren(
      main,
      h("h1", {}, "Review ", h("span", { class: "mono" }, current.vin)),
      h("p", {}, h("a", { href: `#/assessments/${encodeURIComponent(id)}` }, "← back to the assessment")),
      h("div", { id: "review-result", tabindex: "-1" }, message ? alertBox("info", message) : null),
      warnings(current),
      finished ? null : alertBox("warn", `This assessment is ${current.status}: it can be reviewed once it is finished.`),
      valuationBreakdown(current.valuation),
      h(
        "section",
        { "aria-labelledby": "photos-title", id: "photos" },
        h("h2", { id: "photos-title" }, "Photos"),
        current.photos.map((photo) =>
          photoFigure(photo, currentMedia, otherPhotoLoader(api), finished && reviewable(photo) ? reviewForm(photo, save) : null),
        ),
      ),
      descriptionsSection(current, currentMedia, (d) => (finished ? editControl(id, d, refresh, api) : null)),
      finished ? regenerateForm(current, regenerate) : null,
    );
  }
}
