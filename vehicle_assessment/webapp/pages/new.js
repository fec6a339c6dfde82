// New assessment: the vehicle, photos by drag and drop (or the file picker) with previews, upload
// progress per photo through the presigned forms, then the assessment page, which updates until final.
import { uploadWithForm } from "../api.js";
import { alertBox, errorText, h, replaceChildren } from "../dom.js";

const ACCEPTED_TYPES = ["image/jpeg", "image/png", "image/webp"];
const SUGGESTED_PHOTOS = 3;
const MAX_PHOTOS = 20; // limits.MAX_EXPECTED_PHOTOS

export async function render({ api, main }) {
  const files = [];
  const previews = h("ul", { class: "previews", id: "previews" });
  const status = h("div", { class: "form-status", role: "status", "aria-live": "polite" });
  const fileInput = h("input", {
    type: "file",
    id: "photos-input",
    name: "photos",
    accept: ACCEPTED_TYPES.join(","),
    multiple: true,
    class: "visually-hidden",
    onchange: (event) => {
      addFiles(event.target.files);
      event.target.value = "";
    },
  });

  function addFiles(list) {
    const refused = [];
    for (const file of list) {
      if (!ACCEPTED_TYPES.includes(file.type)) refused.push(`${file.name}: not a JPEG, PNG or WebP photo`);
      else if (files.length >= MAX_PHOTOS) refused.push(`${file.name}: at most ${MAX_PHOTOS} photos`);
      else files.push({ file, url: URL.createObjectURL(file), progress: null });
    }
    drawPreviews();
    replaceChildren(status, refused.length ? alertBox("warn", h("ul", {}, refused.map((r) => h("li", {}, r)))) : null);
  }

  function drawPreviews() {
    replaceChildren(
      previews,
      files.map((entry, index) =>
        h(
          "li",
          { class: "preview", "data-index": index },
          h("img", { src: entry.url, alt: `Preview of ${entry.file.name}` }),
          h("span", { class: "filename" }, entry.file.name),
          h("progress", { max: 1, value: entry.progress ?? 0, "aria-label": `Upload of ${entry.file.name}` }),
          entry.progress === null
            ? h(
                "button",
                {
                  type: "button",
                  class: "link",
                  onclick: () => {
                    URL.revokeObjectURL(entry.url);
                    files.splice(index, 1);
                    drawPreviews();
                  },
                },
                `Remove ${entry.file.name}`,
              )
            : null,
        ),
      ),
    );
  }

  const dropZone = h(
    "label",
    {
      for: "photos-input",
      class: "drop-zone",
      tabindex: "0",
      onkeydown: (event) => {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          fileInput.click();
        }
      },
      ondragover: (event) => {
        event.preventDefault();
        dropZone.classList.add("dragging");
      },
      ondragleave: () => dropZone.classList.remove("dragging"),
      ondrop: (event) => {
        event.preventDefault();
        dropZone.classList.remove("dragging");
        addFiles(event.dataTransfer.files);
      },
    },
    h("strong", {}, `Drop ${SUGGESTED_PHOTOS} photos here`),
    h("span", {}, " or press Enter to choose them (JPEG, PNG or WebP)"),
  );

  const form = h(
    "form",
    {
      class: "new-form card",
      id: "new-assessment",
      onsubmit: async (event) => {
        event.preventDefault();
        if (!files.length) {
          replaceChildren(status, alertBox("error", "Add at least one photo."));
          return;
        }
        const data = new FormData(form);
        const request = { vin: String(data.get("vin")).trim(), expected_photos: files.length };
        const color = String(data.get("color") ?? "").trim();
        if (color) request.color = color;
        if (data.get("mileage")) request.mileage = Number(data.get("mileage"));
        if (data.get("estimate_usd")) request.estimate_usd = Number(data.get("estimate_usd"));
        const button = form.querySelector("button[type=submit]");
        button.disabled = true;
        try {
          replaceChildren(status, "Opening the assessment…");
          const created = await api.createAssessment(request);
          const contentTypeField = created.client_fields[0].name;
          replaceChildren(status, "Uploading the photos…");
          files.forEach((entry) => (entry.progress = 0));
          drawPreviews();
          await Promise.all(
            created.uploads.map((upload, index) =>
              uploadWithForm(upload, contentTypeField, files[index].file, (share) => {
                files[index].progress = share;
                previews.querySelectorAll("progress")[index].value = share;
              }),
            ),
          );
          for (const entry of files) URL.revokeObjectURL(entry.url);
          location.hash = `#/assessments/${encodeURIComponent(created.assessment_id)}`;
        } catch (error) {
          button.disabled = false;
          replaceChildren(status, alertBox("error", errorText(error)));
        }
      },
    },
    h("label", { for: "vin" }, "VIN (17 characters)"),
    h("input", { id: "vin", name: "vin", required: true, minlength: 17, maxlength: 17, autocomplete: "off", spellcheck: "false", class: "mono" }),
    h("label", { for: "color" }, "Colour"),
    h("input", { id: "color", name: "color", maxlength: 40 }),
    h("label", { for: "mileage" }, "Mileage (miles)"),
    h("input", { id: "mileage", name: "mileage", type: "number", min: 0, max: 2000000, step: 1, inputmode: "numeric" }),
    h("label", { for: "estimate_usd" }, "Your estimate (US dollars, optional)"),
    h("input", { id: "estimate_usd", name: "estimate_usd", type: "number", min: 1, step: "any", inputmode: "decimal" }),
    h("fieldset", {}, h("legend", {}, "Photos"), fileInput, dropZone, previews),
    h("button", { type: "submit", class: "primary" }, "Assess"),
    status,
  );
  replaceChildren(main, h("h1", {}, "New assessment"), form);
}
