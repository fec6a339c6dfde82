// The REST API (functions/openapi.json), and nothing else: every read and write of the page goes here.

export class ApiError extends Error {
  constructor(status, body) {
    const details = (body?.errors ?? []).map((e) => `${(e.loc ?? []).join(".")}: ${e.msg}`);
    super([body?.message ?? `HTTP ${status}`, ...details].join(" — "));
    this.status = status;
    this.body = body;
  }
}

export class SignInNeeded extends Error {
  constructor() {
    super("Sign in to continue.");
  }
}

export class Api {
  constructor(baseUrl, session) {
    this.baseUrl = baseUrl;
    this.session = session;
  }

  async request(method, path, { query, body } = {}) {
    const url = new URL(this.baseUrl + path, location.href);
    for (const [name, value] of Object.entries(query ?? {})) {
      if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, String(value));
    }
    const headers = {};
    const token = this.session.accessToken();
    if (this.session.required && !token) throw new SignInNeeded();
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
    if (response.status === 401 && this.session.required) {
      this.session.forget();
      throw new SignInNeeded();
    }
    const text = await response.text();
    let parsed = null;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      parsed = { message: `HTTP ${response.status}: the answer is not JSON` };
    }
    if (!response.ok) throw new ApiError(response.status, parsed);
    return parsed;
  }

  listAssessments({ status, vin, needsReview, limit, next } = {}) {
    return this.request("GET", "/assessments", {
      query: { status, vin, needs_review: needsReview ? "true" : undefined, limit, next },
    });
  }

  reviewQueue(limit) {
    return this.request("GET", "/reviews", { query: { limit } });
  }

  getAssessment(id) {
    return this.request("GET", `/assessments/${encodeURIComponent(id)}`);
  }

  media(id) {
    return this.request("GET", `/assessments/${encodeURIComponent(id)}/media`);
  }

  createAssessment(request) {
    return this.request("POST", "/assessments", { body: request });
  }

  reviewPhoto(id, photoId, review) {
    const path = `/assessments/${encodeURIComponent(id)}/photos/${encodeURIComponent(photoId)}/review`;
    return this.request("PUT", path, { body: review });
  }

  regenerateDescription(id, { style, language, creativity }) {
    return this.request("POST", `/assessments/${encodeURIComponent(id)}/descriptions`, {
      body: { style, language, creativity },
    });
  }

  editDescription(id, language, style, text) {
    return this.request("PUT", `/assessments/${encodeURIComponent(id)}/descriptions/${encodeURIComponent(language)}`, {
      query: { style },
      body: { text },
    });
  }
}

/**
 * POSTs one photo with its presigned form (fields in the given order, then the client fields, the
 * file last: S3 ignores fields after it). XMLHttpRequest, because fetch reports no upload progress.
 */
export function uploadWithForm(upload, contentTypeField, file, onProgress) {
  const form = new FormData();
  for (const [name, value] of Object.entries(upload.fields)) form.append(name, value);
  form.append(contentTypeField, file.type);
  form.append("file", file);
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("POST", upload.url);
    request.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    });
    request.addEventListener("load", () => {
      if (request.status >= 200 && request.status < 300) {
        onProgress(1);
        resolve();
      } else {
        reject(new Error(`upload of ${file.name} refused (HTTP ${request.status})`));
      }
    });
    request.addEventListener("error", () => reject(new Error(`upload of ${file.name} failed (network)`)));
    request.send(form);
  });
}
