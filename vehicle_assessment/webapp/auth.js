// Sign-in. On AWS: the Cognito hosted UI, authorization code grant with PKCE (S256). A local `serve`
// bound beyond localhost: its token, typed once. Locally on loopback: none.
// Tokens live in sessionStorage (this tab only, gone when it closes); nothing in cookies or localStorage.
// https://docs.aws.amazon.com/cognito/latest/developerguide/authorization-endpoint.html
// https://docs.aws.amazon.com/cognito/latest/developerguide/token-endpoint.html

const TOKEN_KEY = "vda.tokens";
const PENDING_KEY = "vda.pkce";
// Renew a little before the token expires, so a request does not carry one that dies on the way.
const EXPIRY_MARGIN_MS = 60_000;

function base64url(bytes) {
  let text = "";
  for (const byte of bytes) text += String.fromCharCode(byte);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function randomString(byteCount) {
  return base64url(crypto.getRandomValues(new Uint8Array(byteCount)));
}

async function challengeFor(verifier) {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  return base64url(new Uint8Array(digest));
}

function storedTokens() {
  try {
    const tokens = JSON.parse(sessionStorage.getItem(TOKEN_KEY) ?? "null");
    return tokens && tokens.expires_at > Date.now() + EXPIRY_MARGIN_MS ? tokens : null;
  } catch {
    sessionStorage.removeItem(TOKEN_KEY);
    return null;
  }
}

function claimsOf(jwt) {
  try {
    const payload = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(payload));
  } catch {
    return {};
  }
}

export class Session {
  constructor(signIn, cognito) {
    this.mode = signIn; // "none" | "token" | "cognito"
    this.auth = cognito;
  }

  get required() {
    return this.mode !== "none";
  }

  /** The access token, or null when signed out (or when no sign-in is configured). */
  accessToken() {
    return this.required ? storedTokens()?.access_token ?? null : null;
  }

  username() {
    if (!this.required) return "local user";
    const tokens = storedTokens();
    if (!tokens) return null;
    return this.mode === "token" ? "token holder" : claimsOf(tokens.access_token).username ?? "signed in";
  }

  /** Keeps a local server's token (mode "token") for this tab. */
  useToken(token) {
    // The server's token does not expire; the tab forgets it when it closes.
    const forTheTab = Date.now() + 24 * 3600 * 1000;
    sessionStorage.setItem(TOKEN_KEY, JSON.stringify({ access_token: token, expires_at: forTheTab }));
  }

  /** Finishes a redirect from the hosted UI (?code=&state=) if this page load is one. */
  async completeSignIn() {
    if (this.mode !== "cognito") return;
    const params = new URLSearchParams(location.search);
    const code = params.get("code");
    const error = params.get("error");
    if (!code && !error) return;
    const pending = JSON.parse(sessionStorage.getItem(PENDING_KEY) ?? "null");
    sessionStorage.removeItem(PENDING_KEY);
    // Drop code/state from the address bar whatever happens: a code is single-use.
    history.replaceState(null, "", location.pathname + (pending?.hash ?? location.hash));
    if (error) throw new Error(`sign-in failed: ${params.get("error_description") ?? error}`);
    if (!pending || pending.state !== params.get("state")) {
      throw new Error("sign-in failed: the answer does not belong to this tab's sign-in (state mismatch)");
    }
    const response = await fetch(`${this.auth.domain}/oauth2/token`, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({
        grant_type: "authorization_code",
        client_id: this.auth.client_id,
        code,
        redirect_uri: this.auth.redirect_uri,
        code_verifier: pending.verifier,
      }),
    });
    if (!response.ok) throw new Error(`sign-in failed: the token endpoint answered HTTP ${response.status}`);
    const tokens = await response.json();
    sessionStorage.setItem(
      TOKEN_KEY,
      JSON.stringify({
        access_token: tokens.access_token,
        id_token: tokens.id_token,
        expires_at: Date.now() + Number(tokens.expires_in) * 1000,
      }),
    );
  }

  /** Goes to the hosted UI; comes back to redirect_uri with ?code=. */
  async signIn() {
    const verifier = randomString(48);
    const state = randomString(24);
    sessionStorage.setItem(PENDING_KEY, JSON.stringify({ verifier, state, hash: location.hash }));
    const query = new URLSearchParams({
      response_type: "code",
      client_id: this.auth.client_id,
      redirect_uri: this.auth.redirect_uri,
      scope: (this.auth.scopes ?? ["openid", "email", "profile"]).join(" "),
      state,
      code_challenge_method: "S256",
      code_challenge: await challengeFor(verifier),
    });
    location.assign(`${this.auth.domain}/oauth2/authorize?${query}`);
  }

  signOut() {
    sessionStorage.removeItem(TOKEN_KEY);
    if (this.mode !== "cognito") {
      location.reload();
      return;
    }
    const query = new URLSearchParams({
      client_id: this.auth.client_id,
      logout_uri: this.auth.logout_uri ?? this.auth.redirect_uri,
    });
    location.assign(`${this.auth.domain}/logout?${query}`);
  }

  forget() {
    sessionStorage.removeItem(TOKEN_KEY);
  }
}
