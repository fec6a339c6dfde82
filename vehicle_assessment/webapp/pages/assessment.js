// Assessment: vehicle facts, photos with verdicts and neighbours, valuation, descriptions and audio.
// Updates itself until the assessment is final (new uploads are processed in the background).
import { h, replaceChildren, statusBadge } from "../dom.js";
import { loadMedia } from "../media.js";
import {
  FINAL_STATUSES,
  descriptionsSection,
  historyList,
  otherPhotoLoader,
  photoFigure,
  valuationBreakdown,
  vehicleFacts,
  warnings,
} from "../views.js";

const POLL_INTERVAL_MS = 2000;

function pause(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function progressNote(assessment) {
  if (FINAL_STATUSES.has(assessment.status)) return null;
  const text =
    assessment.status === "AWAITING_PHOTOS"
      ? `Waiting for photos: ${assessment.received_photos} of ${assessment.expected_photos} received.`
      : "Assessing the photos…";
  return h("p", { class: "progress-note", role: "status", "aria-live": "polite" }, h("span", { class: "spinner", "aria-hidden": "true" }), text);
}

export function renderAssessment(main, api, assessment, media) {
  const id = assessment.assessment_id;
  const finished = FINAL_STATUSES.has(assessment.status);
  replaceChildren(
    main,
    h(
      "div",
      { class: "title-row" },
      h("h1", {}, "Assessment ", h("span", { class: "mono" }, assessment.vin)),
      statusBadge(assessment.status),
      finished && assessment.photos.length
        ? h("a", { class: "button primary", href: `#/assessments/${encodeURIComponent(id)}/review` }, "Review")
        : null,
    ),
    warnings(assessment),
    progressNote(assessment),
    h("div", { class: "two-columns" }, vehicleFacts(assessment), valuationBreakdown(assessment.valuation)),
    h(
      "section",
      { "aria-labelledby": "photos-title", id: "photos" },
      h("h2", { id: "photos-title" }, "Photos"),
      assessment.photos.length
        ? assessment.photos.map((p) => photoFigure(p, media, otherPhotoLoader(api)))
        : h("p", { class: "muted" }, "No photo analysed yet."),
      assessment.rejected_uploads.length
        ? h("div", {}, h("h3", {}, "Rejected uploads"), h("ul", {}, assessment.rejected_uploads.map((r) => h("li", {}, `${r.object_key}: ${r.reason}`))))
        : null,
    ),
    descriptionsSection(assessment, media),
    historyList(assessment),
  );
  main.dataset.status = assessment.status;
}

export async function render({ api, main, params, isCurrent }) {
  const [id] = params;
  for (;;) {
    const assessment = await api.getAssessment(id);
    const media = await loadMedia(api, id);
    if (!isCurrent()) return;
    renderAssessment(main, api, assessment, media);
    if (FINAL_STATUSES.has(assessment.status)) return;
    await pause(POLL_INTERVAL_MS);
    if (!isCurrent()) return;
  }
}
