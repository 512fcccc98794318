/* Parvis satisfaction kiosk: offline-first voting client (no build step).
   Votes get a UUID on the press and wait in IndexedDB; a sender posts them in batches of up to 100 with
   exponential backoff, and removes a vote only once the server says accepted, duplicate or rejected.
   Provisioning: open /kiosk#token=<kiosk token> once; the token is kept in localStorage. */
(function () {
  "use strict";
  const APP_VERSION = "1.0.0";
  const BATCH = 100;
  const HEARTBEAT_MS = 60000;
  const FOLLOW_UP_MS = 10000;
  const params = new URLSearchParams(location.search);
  const THANKS_MS = Number(params.get("thanks")) || 2500;
  const SCALES = {
    4: [["Très satisfait", "r-very-good", 1], ["Satisfait", "r-good", 0.5], ["Insatisfait", "r-bad", -0.5],
        ["Très insatisfait", "r-very-bad", -1]],
    5: [["Très satisfait", "r-very-good", 1], ["Satisfait", "r-good", 0.5], ["Neutre", "r-neutral", 0],
        ["Insatisfait", "r-bad", -0.5], ["Très insatisfait", "r-very-bad", -1]],
  };

  // -- provisioning ---------------------------------------------------------------------------------
  const hash = new URLSearchParams(location.hash.slice(1));
  if (hash.get("token")) {
    localStorage.setItem("parvis.kiosk.token", hash.get("token"));
    history.replaceState(null, "", location.pathname + location.search);
  }
  const token = localStorage.getItem("parvis.kiosk.token");
  let config = JSON.parse(localStorage.getItem("parvis.kiosk.config") || "null");

  // -- IndexedDB queue ------------------------------------------------------------------------------
  function openDb() {
    return new Promise((resolve, reject) => {
      const req = indexedDB.open("parvis-kiosk", 1);
      req.onupgradeneeded = () => req.result.createObjectStore("votes", { keyPath: "id" });
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
  }
  const dbReady = openDb();
  async function tx(mode, fn) {
    const db = await dbReady;
    return new Promise((resolve, reject) => {
      const t = db.transaction("votes", mode);
      const store = t.objectStore("votes");
      let result;
      Promise.resolve(fn(store)).then((r) => { result = r; });
      t.oncomplete = () => resolve(result);
      t.onerror = () => reject(t.error);
      t.onabort = () => reject(t.error);
    });
  }
  const req = (r) => new Promise((resolve, reject) => { r.onsuccess = () => resolve(r.result); r.onerror = () => reject(r.error); });
  const putVote = (vote) => tx("readwrite", (s) => { s.put(vote); });
  const allVotes = () => tx("readonly", (s) => req(s.getAll()));
  const removeVotes = (ids) => tx("readwrite", (s) => { ids.forEach((id) => s.delete(id)); });
  const countVotes = () => tx("readonly", (s) => req(s.count()));

  function uuid() {
    if (crypto.randomUUID) return crypto.randomUUID();
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40; b[8] = (b[8] & 0x3f) | 0x80;
    const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  // -- GraphQL --------------------------------------------------------------------------------------
  async function graphql(query, variables) {
    const response = await fetch("/graphql", {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
      body: JSON.stringify({ query, variables }),
    });
    if (response.status >= 500) throw new Error(`HTTP ${response.status}`);
    return response.json();
  }
  const SUBMIT = "mutation($votes: [KioskVoteInput!]!) { submitKioskVotes(votes: $votes) { accepted duplicates rejected { id reason } } }";
  const HEARTBEAT = "mutation($b: Float, $q: Int, $v: String) { kioskHeartbeat(battery: $b, queueLength: $q, appVersion: $v) " +
    "{ id name siteName question scale comments followUp { question choices } } }";

  // -- sender with exponential backoff --------------------------------------------------------------
  let backoff = 1000;
  let timer = null;
  let sending = false;
  function schedule(ms) {
    clearTimeout(timer);
    timer = setTimeout(send, ms);
  }
  async function send() {
    if (sending || !token) return;
    sending = true;
    let again = 0;
    try {
      const now = Date.now();
      const ready = (await allVotes())
        .filter((v) => !v.hold || now - v.queuedAt > FOLLOW_UP_MS + 5000)
        .sort((a, b) => a.queuedAt - b.queuedAt);
      if (ready.length) {
        const batch = ready.slice(0, BATCH).map((v) => ({ id: v.id, rating: v.rating, pressedAt: v.pressedAt,
          followUp: v.followUp || null, comment: v.comment || null }));
        const body = await graphql(SUBMIT, { votes: batch });
        if (!body.data || !body.data.submitKioskVotes) {
          throw new Error((body.errors && body.errors[0] && body.errors[0].message) || "réponse inattendue");
        }
        const r = body.data.submitKioskVotes;
        // Accepted and duplicates are stored on the server; rejected ones would never be: all may go.
        await removeVotes([...r.accepted, ...r.duplicates, ...r.rejected.map((x) => x.id)]);
        backoff = 1000;
        again = ready.length > batch.length ? 50 : 0;
      }
    } catch (err) {
      // Offline or server away: nothing is shown to the public; try later, waiting longer each time.
      again = backoff + Math.floor(Math.random() * 500);
      backoff = Math.min(backoff * 2, 60000);
    } finally {
      sending = false;
    }
    if (again) schedule(again);
  }
  window.addEventListener("online", () => { backoff = 1000; schedule(100); });

  async function heartbeat() {
    if (!token) return;
    try {
      let battery = null;
      if (navigator.getBattery) {
        try { battery = Math.round((await navigator.getBattery()).level * 100); } catch (e) { battery = null; }
      }
      const body = await graphql(HEARTBEAT, { b: battery, q: await countVotes(), v: APP_VERSION });
      if (body.data && body.data.kioskHeartbeat) {
        config = body.data.kioskHeartbeat;
        localStorage.setItem("parvis.kiosk.config", JSON.stringify(config));
        render();
      }
    } catch (err) { /* offline: the cached settings stay */ }
  }

  // -- screens --------------------------------------------------------------------------------------
  const $ = (id) => document.getElementById(id);
  function face(mood) {
    const mouth = mood >= 1 ? "M28 58 Q50 84 72 58" : mood > 0 ? "M30 62 Q50 74 70 62" :
      mood === 0 ? "M30 66 L70 66" : mood > -1 ? "M30 70 Q50 60 70 70" : "M28 74 Q50 52 72 74";
    return `<svg viewBox="0 0 100 100" aria-hidden="true" focusable="false"><circle cx="50" cy="50" r="46" fill="#fff" ` +
      `stroke="#111" stroke-width="4"/><circle cx="35" cy="40" r="6" fill="#111"/><circle cx="65" cy="40" r="6" ` +
      `fill="#111"/><path d="${mouth}" stroke="#111" stroke-width="6" fill="none" stroke-linecap="round"/></svg>`;
  }
  function render() {
    const provisioned = Boolean(token);
    $("unprovisioned").hidden = provisioned;
    $("vote").hidden = !provisioned || !$("follow-up").hidden;
    if (!provisioned) return;
    const scale = (config && config.scale) || 4;
    $("question").textContent = (config && config.question) || "Êtes-vous satisfait de votre visite ?";
    $("site-name").textContent = (config && config.siteName) || "";
    const buttons = $("buttons");
    if (buttons.dataset.scale !== String(scale)) {
      buttons.dataset.scale = String(scale);
      buttons.innerHTML = "";
      SCALES[scale].forEach(([label, cls, mood], i) => {
        const b = document.createElement("button");
        b.type = "button";
        b.className = `rate ${cls}`;
        b.dataset.rating = String(i + 1);
        b.innerHTML = `${face(mood)}<span>${label}</span>`;
        b.addEventListener("click", () => press(i + 1, scale));
        buttons.appendChild(b);
      });
    }
  }
  let thanksTimer = null;
  function thank() {
    const t = $("thanks");
    t.textContent = "Merci pour votre avis !";
    t.classList.add("show");
    clearTimeout(thanksTimer);
    thanksTimer = setTimeout(() => { t.classList.remove("show"); t.textContent = ""; }, THANKS_MS);
  }
  let followUpTimer = null;
  async function press(rating, scale) {
    const negative = rating > Math.floor(scale / 2) + (scale % 2);
    const followUp = negative && config && config.followUp;
    const vote = { id: uuid(), rating, pressedAt: new Date().toISOString(), queuedAt: Date.now(), hold: Boolean(followUp) };
    await putVote(vote);
    if (followUp) {
      askFollowUp(vote, followUp);
    } else {
      thank();
      schedule(300);
    }
  }
  function askFollowUp(vote, followUp) {
    $("follow-up-question").textContent = followUp.question;
    const choices = $("choices");
    choices.innerHTML = "";
    const done = async (choice) => {
      clearTimeout(followUpTimer);
      vote.hold = false;
      if (choice) vote.followUp = choice;
      await putVote(vote);
      $("follow-up").hidden = true;
      render();
      thank();
      schedule(300);
    };
    followUp.choices.forEach((choice) => {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "choice";
      b.textContent = choice;
      b.addEventListener("click", () => done(choice));
      choices.appendChild(b);
    });
    $("skip").onclick = () => done(null);
    $("follow-up").hidden = false;
    $("vote").hidden = true;
    const first = choices.querySelector("button");
    if (first) first.focus();
    followUpTimer = setTimeout(() => done(null), FOLLOW_UP_MS);
  }

  // -- start ----------------------------------------------------------------------------------------
  render();
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("/kiosk/sw.js", { scope: "/kiosk" }).catch(() => {});
  }
  heartbeat();
  setInterval(heartbeat, HEARTBEAT_MS);
  schedule(500);
  setInterval(() => { if (!timer) schedule(0); }, 30000);
  window.parvisKiosk = { queueLength: countVotes, flush: () => { backoff = 1000; return send(); } };
})();
