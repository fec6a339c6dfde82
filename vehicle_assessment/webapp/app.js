// The review web app: hash routes over the REST API. No build step; ES modules only.
import { Api, SignInNeeded } from "./api.js";
import { Session } from "./auth.js";
import { loadConfig } from "./config.js";
import { alertBox, errorText, h, replaceChildren } from "./dom.js";
import * as assessmentPage from "./pages/assessment.js";
import * as listPage from "./pages/assessments.js";
import * as newPage from "./pages/new.js";
import * as reviewPage from "./pages/review.js";

const ROUTES = [
  { pattern: /^\/?$/, page: listPage },
  { pattern: /^\/new$/, page: newPage },
  { pattern: /^\/assessments\/([A-Za-z0-9-]+)$/, page: assessmentPage },
  { pattern: /^\/assessments\/([A-Za-z0-9-]+)\/review$/, page: reviewPage },
];

let navigation = 0;

function currentPath() {
  const hash = location.hash.replace(/^#/, "");
  const [path, query = ""] = hash.split("?");
  return { path: path || "/", query: new URLSearchParams(query) };
}

async function route(api, session) {
  const main = document.getElementById("main");
  const token = ++navigation;
  // What the last page said about itself (e.g. data-status) does not describe the next one.
  delete main.dataset.status;
  const { path, query } = currentPath();
  const match = ROUTES.map((r) => ({ r, m: path.match(r.pattern) })).find(({ m }) => m);
  markCurrentLink(path);
  if (!match) {
    replaceChildren(main, h("h1", {}, "Not found"), h("p", {}, "No page here. ", h("a", { href: "#/" }, "All assessments")));
    return;
  }
  const context = {
    api,
    session,
    main,
    params: match.m.slice(1).map(decodeURIComponent),
    query,
    isCurrent: () => token === navigation,
  };
  try {
    await match.r.page.render(context);
  } catch (error) {
    if (!context.isCurrent()) return;
    if (error instanceof SignInNeeded) {
      showSignIn(main, session);
      return;
    }
    console.warn("page failed", error);
    replaceChildren(main, h("h1", {}, "Something went wrong"), alertBox("error", errorText(error)));
  }
  if (context.isCurrent()) main.querySelector("h1")?.setAttribute("tabindex", "-1");
  if (context.isCurrent() && document.activeElement === document.body) main.querySelector("h1")?.focus();
}

function markCurrentLink(path) {
  for (const link of document.querySelectorAll(".site-header nav a")) {
    const target = link.getAttribute("href").replace(/^#/, "");
    if (target === path) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

function showSignIn(main, session) {
  if (session.mode === "token") {
    const form = h(
      "form",
      {
        onsubmit: (event) => {
          event.preventDefault();
          session.useToken(form.elements.token.value.trim());
          window.dispatchEvent(new HashChangeEvent("hashchange"));
        },
      },
      h("label", { for: "token" }, "Token"),
      h("input", { id: "token", name: "token", type: "password", required: true, autocomplete: "off" }),
      h("button", { type: "submit", class: "primary" }, "Continue"),
    );
    replaceChildren(
      main,
      h("h1", {}, "Token needed"),
      h("p", {}, "This server is reachable beyond this computer: type the token it printed when it started."),
      form,
    );
    renderSession(session);
    return;
  }
  replaceChildren(
    main,
    h("h1", {}, "Sign in"),
    h("p", {}, "Assessments are visible to signed-in yard staff and appraisers only."),
    h("button", { type: "button", class: "primary", onclick: () => session.signIn() }, "Sign in"),
  );
  renderSession(session);
}

function renderSession(session) {
  const area = document.getElementById("session");
  const name = session.username();
  if (!session.required) {
    replaceChildren(area, h("span", { class: "muted" }, "Local mode: no sign-in"));
  } else if (name) {
    replaceChildren(
      area,
      h("span", {}, name),
      " ",
      h("button", { type: "button", class: "link", onclick: () => session.signOut() }, "Sign out"),
    );
  } else if (session.mode === "cognito") {
    replaceChildren(area, h("button", { type: "button", class: "link", onclick: () => session.signIn() }, "Sign in"));
  } else {
    replaceChildren(area);
  }
}

async function start() {
  const main = document.getElementById("main");
  let config;
  let session;
  try {
    config = await loadConfig();
    session = new Session(config.signIn, config.cognito);
    await session.completeSignIn();
  } catch (error) {
    console.warn("start failed", error);
    replaceChildren(main, h("h1", {}, "The page cannot start"), alertBox("error", errorText(error)));
    return;
  }
  const api = new Api(config.apiBaseUrl, session);
  renderSession(session);
  window.addEventListener("hashchange", () => route(api, session));
  await route(api, session);
}

start();
