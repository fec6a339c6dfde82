// config.json, next to index.html: where the API is and how to sign in.
//   local `serve`:  {"api_base_url": "http://127.0.0.1:8000", "mode": "local", "sign_in": "none"}
//                   ("token" when serve is bound beyond localhost: the page asks for its token once)
//   AWS (the CDK app writes it): {"api_base_url": "https://.../v1/", "mode": "aws", "sign_in": "cognito",
//     "cognito": {"domain": "https://x.auth.region.amazoncognito.com", "client_id": "...",
//                 "redirect_uri": "https://site/", "logout_uri": "https://site/", "scopes": [...]}}

const SIGN_IN_MODES = new Set(["none", "token", "cognito"]);

export async function loadConfig() {
  const response = await fetch("config.json", { cache: "no-store" });
  if (!response.ok) throw new Error(`config.json could not be read (HTTP ${response.status})`);
  const config = await response.json();
  if (typeof config.api_base_url !== "string") throw new Error("config.json has no api_base_url");
  if (!SIGN_IN_MODES.has(config.sign_in)) throw new Error(`config.json: unknown sign_in ${JSON.stringify(config.sign_in)}`);
  if (config.sign_in === "cognito") {
    for (const key of ["domain", "client_id", "redirect_uri"]) {
      if (typeof config.cognito?.[key] !== "string" || !config.cognito[key]) {
        throw new Error(`config.json: cognito.${key} is missing`);
      }
    }
  }
  return {
    apiBaseUrl: config.api_base_url.replace(/\/+$/, ""),
    mode: config.mode ?? "aws",
    signIn: config.sign_in,
    cognito: config.cognito ?? null,
  };
}
