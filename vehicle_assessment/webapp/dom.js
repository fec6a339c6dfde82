// Building the page from data without ever parsing it as HTML: every text goes through
// textContent / createTextNode, so a VIN, colour, note or description cannot inject markup.

/**
 * h("a", {href: "#/x", class: "c", onclick: fn}, "text", childNode, [more])
 * Attributes are set with setAttribute (never innerHTML); functions under "on*" become listeners.
 */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2), value);
    } else if (name === "value" || name === "checked" || name === "selected") {
      element[name] = value;
    } else {
      element.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(element, children);
  return element;
}

export function append(parent, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return parent;
}

export function replaceChildren(parent, ...children) {
  parent.replaceChildren();
  return append(parent, children);
}

const usd = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD", maximumFractionDigits: 0 });

export function money(amount) {
  return amount === null || amount === undefined ? "unknown" : usd.format(amount);
}

export function percent(share, digits = 1) {
  return share === null || share === undefined ? "–" : `${(share * 100).toFixed(digits)} %`;
}

export function when(iso) {
  if (!iso) return "–";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleString();
}

export function label({ damaged, damage_type, severity }) {
  return damaged ? `${damage_type}, ${severity}` : "undamaged";
}

/** A status in words, with a class for colour (and the word itself, never colour alone). */
export function statusBadge(status) {
  return h("span", { class: `badge status-${String(status).toLowerCase()}` }, status);
}

export function alertBox(kind, ...children) {
  // role=alert for problems (read out at once), role=status for the rest.
  return h("div", { class: `notice notice-${kind}`, role: kind === "info" ? "status" : "alert" }, ...children);
}

export function errorText(error) {
  return error instanceof Error ? error.message : String(error);
}
