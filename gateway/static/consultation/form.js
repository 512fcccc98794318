/* Parvis: answering a survey or a consultation on its public page (no build step).
   Sign-in: an emailed code (requestLoginCode / verifyLoginCode), or #token=<citizen token>; the token is kept in
   localStorage. A question shows when its display conditions hold on the answers shown before it; answers go through
   GraphQL (saveResponse, submitResponse) and a refusal is shown next to the question it names. */
(function () {
  "use strict";
  const form = document.getElementById("answer-form");
  if (!form) return;
  const consultation = form.dataset.consultation;
  const secret = form.dataset.secret === "true";
  const hash = new URLSearchParams(location.hash.slice(1));
  if (hash.get("token")) {
    localStorage.setItem("parvis.citizen.token", hash.get("token"));
    history.replaceState(null, "", location.pathname + location.search);
  }
  const $ = (id) => document.getElementById(id);
  const fieldsets = Array.from(form.querySelectorAll("fieldset[data-question]"));

  async function graphql(query, variables) {
    const token = localStorage.getItem("parvis.citizen.token");
    const headers = { "Content-Type": "application/json" };
    if (token) headers.Authorization = "Bearer " + token;
    const res = await fetch("/graphql", { method: "POST", headers, body: JSON.stringify({ query, variables }) });
    return res.json();
  }

  // -- sign-in ------------------------------------------------------------------------------------------
  function signedIn() {
    $("signin").hidden = true;
    form.hidden = false;
    refresh();
  }
  if (localStorage.getItem("parvis.citizen.token")) signedIn();
  $("signin-send").addEventListener("click", async () => {
    const r = await graphql("mutation($e: String!) { requestLoginCode(email: $e) { sent } }", { e: $("signin-email").value });
    $("signin-status").textContent = r.errors ? r.errors[0].message : "Un code vous a été envoyé : saisissez-le ci-dessous.";
    if (!r.errors) { $("signin-code-step").hidden = false; $("signin-code").focus(); }
  });
  $("signin-verify").addEventListener("click", async () => {
    const r = await graphql("mutation($e: String!, $c: String!) { verifyLoginCode(email: $e, code: $c) { token } }",
      { e: $("signin-email").value, c: $("signin-code").value });
    if (r.errors) { $("signin-status").textContent = r.errors[0].message; return; }
    localStorage.setItem("parvis.citizen.token", r.data.verifyLoginCode.token);
    signedIn();
  });

  // -- answers --------------------------------------------------------------------------------------------
  function answerOf(fs) {
    const qid = fs.dataset.question, type = fs.dataset.type, name = "q-" + qid;
    const checked = (n) => Array.from(form.querySelectorAll(`input[name="${CSS.escape(n)}"]:checked`)).map((i) => i.value);
    if (type === "SECTION") return null;
    if (type === "SHORT_TEXT" || type === "LONG_TEXT") {
      const v = fs.querySelector("input, textarea").value.trim();
      return v ? { questionId: qid, text: v } : null;
    }
    if (type === "RATING") {
      const v = checked(name);
      return v.length ? { questionId: qid, rating: Number(v[0]) } : null;
    }
    if (type === "RANKING") {
      const picks = Array.from(fs.querySelectorAll("select")).filter((s) => s.value)
        .sort((a, b) => Number(a.value) - Number(b.value)).map((s) => s.dataset.option);
      return picks.length ? { questionId: qid, choices: picks } : null;
    }
    if (type === "MATRIX_SINGLE" || type === "MATRIX_MULTIPLE") {
      const rows = [];
      fs.querySelectorAll("tbody tr").forEach((tr) => {
        const inputs = Array.from(tr.querySelectorAll("input:checked"));
        if (inputs.length) rows.push({ rowId: inputs[0].name.slice(name.length + 1), choices: inputs.map((i) => i.value) });
      });
      return rows.length ? { questionId: qid, rows } : null;
    }
    const choices = checked(name);
    if (!choices.length) return null;
    const answer = { questionId: qid, choices };
    const other = form.querySelector(`input[name="${CSS.escape(name + "-other")}"]`);
    if (other && other.value.trim()) answer.otherText = other.value.trim();
    return answer;
  }

  function holds(condition, answer) {
    if (!answer) return false;
    const values = answer.rating !== undefined ? [String(answer.rating)] : (answer.choices || []);
    return condition.operator === "DIFFERS" ? !values.includes(condition.value) : values.includes(condition.value);
  }

  function refresh() {
    const shown = {};
    fieldsets.forEach((fs) => {
      const conditions = JSON.parse(fs.dataset.conditions || "[]");
      const visible = conditions.every((c) => holds(c, shown[c.question_id]));
      fs.hidden = !visible;
      if (visible) shown[fs.dataset.question] = answerOf(fs);
    });
    return shown;
  }
  form.addEventListener("change", refresh);

  function answers() {
    return fieldsets.filter((fs) => !fs.hidden).map(answerOf).filter(Boolean);
  }

  function showErrors(errors) {
    fieldsets.forEach((fs) => { $("q-" + fs.dataset.question + "-error").textContent = ""; });
    const first = errors[0];
    const field = first.extensions && first.extensions.field;
    const target = field && $("q-" + field + "-error");
    if (target) {
      target.textContent = first.message;
      const fs = $("q-" + field);
      const input = fs.querySelector("input, select, textarea");
      (input || fs).focus();
    }
    $("form-status").textContent = first.message;
  }

  $("save-draft").addEventListener("click", async () => {
    const r = await graphql("mutation($c: ID!, $a: [AnswerInput!]!) { saveResponse(consultationId: $c, answers: $a) { status } }",
      { c: consultation, a: answers() });
    if (r.errors) showErrors(r.errors); else $("form-status").textContent = "Brouillon enregistré.";
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const r = await graphql("mutation($c: ID!, $a: [AnswerInput!]!) { submitResponse(consultationId: $c, answers: $a) { status receiptCode } }",
      { c: consultation, a: answers() });
    if (r.errors) { showErrors(r.errors); return; }
    form.hidden = true;
    const done = $("done");
    const receipt = r.data.submitResponse.receiptCode;
    $("done-text").textContent = receipt
      ? "Votre code de reçu : " + receipt + ". Notez-le : après la publication des résultats, il vous permettra de vérifier que votre bulletin a été compté tel quel."
      : (secret ? "Votre vote est définitif." : "Vous pourrez modifier vos réponses jusqu'à la clôture.");
    done.hidden = false;
    done.focus();
  });
})();
