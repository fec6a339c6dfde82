// config.json, next to index.html: where the API is and how to sign in.
//   {"api_base_url": "https://.../v1", "auth": null}                       local `serve`: no sign-in
//   {"api_base_url": "...", "auth": {"cognito_domain": "https://x.auth.region.amazoncognito.com",
//     "client_id": "...", "redirect_uri": "https://site/", "logout_uri": "https://site/",
//     "scopes": ["openid", "email", "profile"]}}                              AWS: Cognito hosted UI

export async function loadConfig() {
  const response = await fetch("config.json", { cache: "no-store" });
  if (!response.ok) throw new Error(`config.json could not be read (HTTP ${response.status})`);
  const config = await response.json();
  if (typeof config.api_base_url !== "string") throw new Error("config.json has no api_base_url");
  const auth = config.auth ?? null;
  if (auth !== null) {
    for (const key of ["cognito_domain", "client_id", "redirect_uri"]) {
      if (typeof auth[key] !== "string" || !auth[key]) throw new Error(`config.json auth has no ${key}`);
    }
  }
  return { apiBaseUrl: config.api_base_url.replace(/\/+$/, ""), auth };
}
