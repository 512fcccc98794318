/* Parvis agenda widget for commune websites.
 *   <script src="https://…/embed/agenda.js" data-commune="labege" data-limit="10" async></script>
 * Renders the upcoming published events of the commune (data-commune: slugs, comma-separated; optional
 * data-category, data-limit) in a shadow root, so the host page's styles neither leak in nor out. Reads the
 * public GraphQL of the gateway it was loaded from (/embed/graphql, CORS). No cookies, no dependencies. */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script) { return; }
  var origin = new URL(script.src, document.baseURI).origin;
  var communes = (script.getAttribute("data-commune") || "").split(",").map(function (s) { return s.trim(); }).filter(Boolean);
  var limit = Math.min(50, parseInt(script.getAttribute("data-limit") || "10", 10) || 10);
  var host = document.createElement("div");
  host.className = "parvis-agenda";
  script.parentNode.insertBefore(host, script.nextSibling);
  var root = host.attachShadow ? host.attachShadow({ mode: "open" }) : host;
  var QUERY = "query($f: EventFilter, $n: Int!) { categories { slug name } " +
    "events(filter: $f, first: $n) { totalCount edges { node { id title startsAt endsAt allDay url status " +
    "commune { name } location { place } categoryName organizer { name } } } } }";
  var state = { category: script.getAttribute("data-category") || "", text: "" };
  var fmt = new Intl.DateTimeFormat("fr-FR", { weekday: "long", day: "numeric", month: "long", hour: "2-digit",
    minute: "2-digit", timeZone: "Europe/Paris" });
  var STATUS = { cancelled: "Annulé", postponed: "Reporté", full: "Complet", rescheduled: "Nouvelle date",
    moved_online: "En ligne" };

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text != null) { node.textContent = text; }
    return node;
  }

  function load() {
    var filter = { communes: communes, from: new Date().toISOString() };
    if (state.category) { filter.categories = [state.category]; }
    if (state.text) { filter.text = state.text; }
    return fetch(origin + "/embed/graphql", {
      method: "POST", headers: { "content-type": "application/json" }, credentials: "omit",
      body: JSON.stringify({ query: QUERY, variables: { f: filter, n: limit } })
    }).then(function (r) { return r.json(); });
  }

  var style = el("style", {}, ":host{all:initial;display:block;font:14px/1.4 system-ui,sans-serif;color:#1b1b1b}" +
    "form{display:flex;gap:.5em;margin-bottom:.5em}select,input{font:inherit;padding:.2em}" +
    "ul{list-style:none;margin:0;padding:0}li{border-bottom:1px solid #ddd;padding:.4em 0}" +
    "a{color:#0b4f9c}.when{font-size:.9em;color:#444}.status{font-weight:bold;color:#a00;margin-left:.4em}" +
    ".cancelled a{text-decoration:line-through}.more{margin-top:.4em;font-size:.9em}");
  var form = el("form", { role: "search", "aria-label": "Filtrer l'agenda" });
  var select = el("select", { "aria-label": "Catégorie", name: "category" });
  var input = el("input", { type: "search", name: "text", placeholder: "Rechercher", "aria-label": "Rechercher" });
  var list = el("ul", { "aria-live": "polite" });
  var more = el("p", { "class": "more" });
  form.appendChild(select); form.appendChild(input);
  root.appendChild(style); root.appendChild(form); root.appendChild(list); root.appendChild(more);

  function render(body) {
    if (!body || !body.data) {
      // A mistake in the page's settings (an unknown data-commune, say) is said as the server says it.
      var error = body && body.errors && body.errors[0];
      var mistake = error && error.extensions && error.extensions.code === "BAD_USER_INPUT";
      list.replaceChildren(el("li", { role: "alert" }, mistake ? error.message : "L'agenda est momentanément indisponible."));
      host.setAttribute("data-state", mistake ? "error" : "unavailable");
      return;
    }
    if (select.options.length === 0) {
      select.appendChild(el("option", { value: "" }, "Toutes les catégories"));
      body.data.categories.forEach(function (c) { select.appendChild(el("option", { value: c.slug }, c.name)); });
      select.value = state.category;
    }
    var items = body.data.events.edges.map(function (e) { return e.node; });
    list.replaceChildren.apply(list, items.length ? items.map(function (ev) {
      var li = el("li", { "class": "event" + (ev.status === "CANCELLED" ? " cancelled" : ""), "data-id": ev.id });
      var a = el("a", { href: origin + ev.url, target: "_top" }, ev.title);
      li.appendChild(a);
      var label = STATUS[(ev.status || "").toLowerCase()];
      if (label) { li.appendChild(el("span", { "class": "status" }, label)); }
      var where = [ev.location.place, ev.commune.name].filter(Boolean).join(", ");
      li.appendChild(el("div", { "class": "when" }, fmt.format(new Date(ev.startsAt)) + " · " + where +
        " · " + ev.categoryName));
      return li;
    }) : [el("li", {}, "Aucun événement à venir.")]);
    var q = communes.length ? "?commune=" + encodeURIComponent(communes.join(",")) : "";
    more.replaceChildren(el("a", { href: origin + "/agenda.ics" + q }, "S'abonner (iCal)"),
      document.createTextNode(" · "), el("a", { href: origin + "/agenda/print" + q, target: "_blank" }, "Version imprimable"));
    host.setAttribute("data-state", "ready");
    host.setAttribute("data-count", String(items.length));
  }

  function refresh() { load().then(render, function () { render(null); }); }
  select.addEventListener("change", function () { state.category = select.value; refresh(); });
  var timer = null;
  input.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(function () { state.text = input.value.trim(); refresh(); }, 250);
  });
  form.addEventListener("submit", function (e) { e.preventDefault(); });
  refresh();
})();
