// Short-lived links to an assessment's photos, audio and its neighbours' reference copies, from
// GET /assessments/{id}/media (presigned S3 GETs on AWS, signed /media/ URLs locally). Never a public bucket.

export function mediaIndex(media) {
  const byKey = (items, key) => new Map((items ?? []).map((item) => [item[key], item.url]));
  const photos = byKey(media?.photos, "photo_id");
  const audio = new Map((media?.audio ?? []).map((item) => [`${item.style}/${item.language}`, item.url]));
  const references = byKey(media?.references, "sha256");
  return {
    photo: (photoId) => photos.get(photoId) ?? null,
    audio: (style, language) => audio.get(`${style}/${language}`) ?? null,
    reference: (sha256) => (sha256 ? references.get(sha256) ?? null : null),
  };
}

export async function loadMedia(api, assessmentId) {
  return mediaIndex(await api.media(assessmentId));
}
