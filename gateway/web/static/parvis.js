/* Parvis: what a little script adds where it helps; every page works without it. */
(function () {
  "use strict";
  // An error summary takes the focus, so that a screen reader says it first.
  var summary = document.querySelector("[data-focus]");
  if (summary) { summary.focus(); }
  // "Copier": copies a text (a kiosk's provisioning link) to the clipboard.
  document.querySelectorAll("[data-copy]").forEach(function (button) {
    button.hidden = false;
    button.addEventListener("click", function () {
      var source = document.getElementById(button.getAttribute("data-copy"));
      if (!source || !navigator.clipboard) { return; }
      navigator.clipboard.writeText(source.textContent.trim()).then(function () {
        var status = document.getElementById(button.getAttribute("data-copy") + "-status");
        if (status) { status.textContent = "Lien copié."; }
      });
    });
  });
  // Live figures: a region marked data-refresh="seconds" is fetched again from the same page and replaced.
  document.querySelectorAll("[data-refresh][id]").forEach(function (region) {
    var every = Math.max(10, parseInt(region.getAttribute("data-refresh"), 10) || 30) * 1000;
    setInterval(function () {
      if (document.hidden) { return; }
      fetch(window.location.href, { credentials: "same-origin" }).then(function (response) {
        return response.ok ? response.text() : null;
      }).then(function (html) {
        if (!html) { return; }
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById(region.id);
        if (fresh) { region.innerHTML = fresh.innerHTML; }
      }).catch(function () {});
    }, every);
  });
  // A budget ballot's running total, live as boxes are ticked (the server computes it on "Vérifier mon vote").
  var euros = new Intl.NumberFormat("fr-FR", { style: "currency", currency: "EUR" });
  document.querySelectorAll("form[data-ballot] fieldset").forEach(function (fieldset) {
    var total = fieldset.querySelector("[data-total]");
    if (!total) { return; }
    fieldset.addEventListener("change", function () {
      var spent = 0, count = 0;
      fieldset.querySelectorAll("input[type=checkbox]:checked").forEach(function (box) {
        spent += parseInt(box.getAttribute("data-price"), 10) || 0;
        count += 1;
      });
      var amount = parseInt(total.getAttribute("data-amount"), 10), max = parseInt(total.getAttribute("data-max"), 10);
      if (total.getAttribute("data-knapsack")) {
        var left = amount - spent;
        total.textContent = "Total choisi : " + euros.format(spent / 100) + " sur " + euros.format(amount / 100) +
          " · " + (left >= 0 ? "reste " + euros.format(left / 100) : "dépassement de " + euros.format(-left / 100));
      } else {
        var s = count > 1 ? "s" : "";
        total.textContent = count + " projet" + s + " choisi" + s + (max ? " sur " + max + " au plus · " +
          (max - count >= 0 ? "reste " + (max - count) : (count - max) + " de trop") : "");
      }
    });
  });
}());
