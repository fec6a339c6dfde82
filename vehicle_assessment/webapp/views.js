// Pieces of an assessment shared by the Assessment and Review pages. Data in, DOM nodes out.
import { alertBox, h, label, money, percent, statusBadge, when } from "./dom.js";
import { mediaIndex } from "./media.js";

export const FINAL_STATUSES = new Set(["COMPLETED", "NEEDS_PHOTOS", "FAILED", "INCOMPLETE"]);

export function isUntrained(assessment) {
  return Boolean(assessment.encoder?.untrained) || assessment.warnings.some((w) => w.startsWith("untrained encoder"));
}

/** Warnings a reader must not miss: at the top, in words, role=alert. */
export function warnings(assessment) {
  const boxes = [];
  if (isUntrained(assessment)) {
    boxes.push(
      alertBox(
        "danger",
        h("strong", {}, "Untrained encoder: "),
        "the photo verdicts come from a model with random weights and are not meaningful. Do not use this value.",
      ),
    );
  }
  if (assessment.valuation?.provisional) {
    boxes.push(
      alertBox("warn", h("strong", {}, "Provisional value: "), "some photos wait for a person's review; the value may change."),
    );
  }
  if (assessment.status === "FAILED") {
    boxes.push(alertBox("danger", h("strong", {}, "Failed"), ` at ${assessment.failed_step ?? "an unknown step"}: ${assessment.failure_reason ?? "no reason recorded"}`));
  }
  if (assessment.status === "NEEDS_PHOTOS") {
    boxes.push(alertBox("warn", h("strong", {}, "New photos needed: "), "no photo could be assessed."));
  }
  if (assessment.status === "INCOMPLETE") {
    boxes.push(alertBox("warn", h("strong", {}, "Incomplete: "), "the upload window passed before all photos arrived."));
  }
  const other = assessment.warnings.filter((w) => !w.startsWith("untrained encoder"));
  if (other.length) boxes.push(alertBox("info", h("ul", {}, other.map((w) => h("li", {}, w)))));
  if (assessment.review_reasons.length) {
    boxes.push(alertBox("info", h("strong", {}, "Needs review: "), h("ul", {}, assessment.review_reasons.map((r) => h("li", {}, r)))));
  }
  return h("div", { class: "warnings", id: "warnings" }, boxes);
}

function facts(pairs) {
  return h(
    "dl",
    { class: "facts" },
    pairs.filter(([, value]) => value !== null && value !== undefined && value !== "").map(([name, value]) => [h("dt", {}, name), h("dd", {}, value)]),
  );
}

export function vehicleFacts(assessment) {
  const vehicle = assessment.vehicle ?? {};
  const inputs = assessment.inputs;
  return h(
    "section",
    { "aria-labelledby": "vehicle-title", class: "card" },
    h("h2", { id: "vehicle-title" }, "Vehicle"),
    facts([
      ["VIN", h("span", { class: "mono" }, assessment.vin)],
      ["Vehicle", [vehicle.model_year, vehicle.make, vehicle.model, vehicle.trim].filter(Boolean).join(" ") || "not decoded"],
      ["Body", vehicle.body_class],
      ["Powertrain", vehicle.powertrain?.replace(/_/g, " ")],
      ["Fuel", vehicle.fuel_type_primary],
      ["Base price", vehicle.base_price_usd ? money(vehicle.base_price_usd) : null],
      ["Colour", inputs.color],
      ["Mileage", inputs.mileage === null || inputs.mileage === undefined ? null : `${inputs.mileage.toLocaleString("en-US")} mi`],
      ["Estimate", inputs.estimate_usd ? money(inputs.estimate_usd) : null],
      ["Decoded from", vehicle.source],
      ["Status", statusBadge(assessment.status)],
      ["Created", when(assessment.created_at)],
      ["Encoder", assessment.encoder ? `${assessment.encoder.model_name}${assessment.encoder.untrained ? " (UNTRAINED)" : ""}` : null],
    ]),
  );
}

export function valuationBreakdown(valuation) {
  if (!valuation) return h("section", { class: "card", id: "valuation" }, h("h2", {}, "Valuation"), h("p", { class: "muted" }, "Not valued yet."));
  const undamaged = valuation.undamaged;
  return h(
    "section",
    { "aria-labelledby": "valuation-title", class: "card", id: "valuation" },
    h("h2", { id: "valuation-title" }, "Valuation", valuation.provisional ? h("span", { class: "badge warn" }, "provisional") : null),
    facts([
      ["Undamaged value", [money(undamaged.amount_usd), h("span", { class: "muted" }, ` (${undamaged.method.replace(/_/g, " ")}: ${undamaged.reason})`)]],
    ]),
    h(
      "div",
      { class: "table-scroll" },
      h(
        "table",
        { class: "breakdown" },
        h("caption", {}, "Depreciation per photo"),
        h("thead", {}, h("tr", {}, ["Photo", "Severity", "Rate", "Counted", "Why"].map((t) => h("th", { scope: "col" }, t)))),
        h(
          "tbody",
          {},
          valuation.photos.map((p) =>
            h(
              "tr",
              { class: p.counted ? "" : "not-counted" },
              h("td", { class: "mono" }, p.photo_id),
              h("td", {}, p.severity),
              h("td", { class: "num" }, percent(p.rate)),
              h("td", {}, p.counted ? "yes" : "no"),
              h("td", {}, p.reason ?? ""),
            ),
          ),
        ),
      ),
    ),
    facts([
      ["Combined rate", h("span", { id: "combined-rate" }, percent(valuation.combined_depreciation))],
      ["Rule", valuation.rule],
      ["Adjusted value", h("strong", { id: "adjusted-value", class: "value" }, money(valuation.adjusted_value_usd))],
    ]),
    valuation.notes.length ? h("ul", { class: "notes" }, valuation.notes.map((n) => h("li", {}, n))) : null,
  );
}

function audioFor(assessment, description) {
  return assessment.audio.find((a) => a.style === description.style && a.language === description.language);
}

export function descriptionsSection(assessment, media, extra = () => null) {
  return h(
    "section",
    { "aria-labelledby": "descriptions-title", class: "card", id: "descriptions" },
    h("h2", { id: "descriptions-title" }, "Descriptions"),
    assessment.descriptions.length
      ? assessment.descriptions.map((d) => {
          const audio = audioFor(assessment, d);
          const url = media.audio(d.style, d.language);
          return h(
            "article",
            { class: "description", lang: d.language, "data-language": d.language, "data-style": d.style },
            h(
              "h3",
              {},
              `${d.style} · ${d.language}`,
              h("span", { class: "muted" }, ` version ${d.version} · ${d.written_by ? `edited by ${d.written_by}` : d.generator}`),
            ),
            d.note ? h("p", { class: "muted" }, d.note) : null,
            h("p", { class: "description-text" }, d.text),
            url
              ? h("audio", { controls: true, preload: "none", src: url, "aria-label": `Read aloud: ${d.style}, ${d.language}` })
              : h("p", { class: "muted" }, `No audio: ${audio?.reason ?? "not generated"}`),
            extra(d),
          );
        })
      : h("p", { class: "muted" }, "No description yet."),
  );
}

function qualityList(quality) {
  if (!quality) return null;
  return h(
    "ul",
    { class: "checks" },
    quality.checks.map((c) =>
      h("li", { class: `level-${c.level}` }, h("span", { class: "badge" }, c.level), ` ${c.name} ${Number(c.value).toFixed(2)}`, c.reason ? ` — ${c.reason}` : ""),
    ),
  );
}

function neighbourList(verdict, media) {
  if (!verdict?.neighbours.length) return null;
  return h(
    "div",
    {},
    h("h4", {}, "Nearest reference photos"),
    h(
      "ul",
      { class: "neighbours" },
      verdict.neighbours.map((n) => {
        const url = media.reference(n.sha256);
        return h(
          "li",
          { class: "neighbour" },
          url ? h("img", { src: url, alt: `Reference ${n.reference_id}: ${label(n.label)}`, loading: "lazy", width: 160, height: 120 }) : h("div", { class: "no-image" }, "no copy"),
          h("span", {}, label(n.label)),
          h("span", { class: "muted" }, `similarity ${Number(n.similarity).toFixed(3)}`),
        );
      }),
    ),
  );
}

function reuseList(photo, loadOtherPhoto) {
  if (!photo.reuse_matches.length) return null;
  return h(
    "div",
    { class: "reuse" },
    alertBox("danger", h("strong", {}, "Possible reuse: "), "this photo matches a photo of another vehicle."),
    photo.reuse_matches.map((m) => {
      const slot = h("div", { class: "reuse-other" }, h("span", { class: "muted" }, "loading the matching photo…"));
      loadOtherPhoto(m, slot);
      return h(
        "div",
        { class: "side-by-side" },
        h("div", {}, h("p", {}, "Matches (", m.kind, ", score ", String(m.score), ") VIN ", h("span", { class: "mono" }, m.vin), " in ", h("a", { href: `#/assessments/${encodeURIComponent(m.assessment_id)}` }, "that assessment"))),
        slot,
      );
    }),
  );
}

export function verdictSummary(photo) {
  const verdict = photo.verdict;
  const review = photo.reviews?.length ? photo.reviews[photo.reviews.length - 1] : null;
  return h(
    "div",
    { class: "verdict" },
    verdict
      ? h(
          "p",
          {},
          h("strong", {}, "Model: "),
          label(verdict),
          ` · confidence ${percent(verdict.confidence)} · damaged share ${percent(verdict.damaged_share)}`,
          verdict.needs_review ? h("span", { class: "badge warn" }, "needs review") : null,
          verdict.review_reason ? h("span", { class: "muted" }, ` (${verdict.review_reason})`) : null,
        )
      : null,
    review
      ? h("p", { class: "reviewed" }, h("strong", {}, "Reviewed: "), label(review), ` by ${review.reviewer}, ${when(review.reviewed_at)}`, review.note ? h("q", {}, review.note) : null)
      : null,
  );
}

export function photoFigure(photo, media, loadOtherPhoto, extra = null) {
  const url = media.photo(photo.photo_id);
  return h(
    "article",
    { class: "photo card", "data-photo-id": photo.photo_id, "aria-labelledby": `photo-${photo.photo_id}` },
    h("h3", { id: `photo-${photo.photo_id}` }, photo.filename, " ", h("span", { class: `badge photo-${photo.status}` }, photo.status)),
    h(
      "div",
      { class: "photo-body" },
      h(
        "figure",
        {},
        url ? h("img", { class: "photo-main", src: url, alt: `Photo ${photo.filename}` }) : h("div", { class: "no-image" }, "image unavailable"),
        h("figcaption", { class: "muted" }, `${photo.width ?? "?"}×${photo.height ?? "?"} · ${photo.size_bytes.toLocaleString("en-US")} bytes`),
      ),
      h(
        "div",
        { class: "photo-facts" },
        photo.reason ? alertBox("warn", photo.reason) : null,
        verdictSummary(photo),
        qualityList(photo.quality),
        reuseList(photo, loadOtherPhoto),
        extra,
      ),
    ),
    neighbourList(photo.verdict, media),
  );
}

/** Fills `slot` with the other assessment's photo a reuse match names (through its media route). */
export function otherPhotoLoader(api) {
  return (match, slot) => {
    api
      .media(match.assessment_id)
      .then((media) => {
        const url = mediaIndex(media).photo(match.photo_id);
        slot.replaceChildren(url ? h("img", { src: url, alt: `Matching photo of VIN ${match.vin}`, class: "photo-other" }) : h("span", { class: "muted" }, "the matching photo is not available"));
      })
      .catch((error) => {
        console.warn("matching photo", error);
        slot.replaceChildren(h("span", { class: "muted" }, `the matching photo could not be loaded: ${error.message}`));
      });
  };
}

export function historyList(assessment) {
  if (!assessment.history.length) return null;
  return h(
    "section",
    { class: "card", "aria-labelledby": "history-title" },
    h("h2", { id: "history-title" }, "History"),
    assessment.history_dropped ? h("p", { class: "muted" }, `${assessment.history_dropped} older entries dropped`) : null,
    h(
      "ol",
      { class: "history" },
      assessment.history.map((e) =>
        h("li", {}, h("time", { datetime: e.at }, when(e.at)), ` ${e.actor}: ${e.summary}`, e.before || e.after ? h("span", { class: "muted" }, ` (${e.before ?? "–"} → ${e.after ?? "–"})`) : null),
      ),
    ),
  );
}
