/* Kiosk service worker: the app keeps loading without network (stale-while-revalidate of /kiosk files).
   Votes are not handled here: the page queues them in IndexedDB and POSTs them itself. */
const CACHE = "parvis-kiosk-v1";
const FILES = ["/kiosk", "/kiosk/app.js", "/kiosk/style.css", "/kiosk/manifest.json"];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(FILES)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(caches.keys()
    .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
    .then(() => self.clients.claim()));
});

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== location.origin || !url.pathname.startsWith("/kiosk")) {
    return; // GraphQL and anything else go to the network untouched
  }
  event.respondWith(caches.open(CACHE).then(async (cache) => {
    const cached = await cache.match(event.request, { ignoreSearch: true });
    const network = fetch(event.request).then((response) => {
      if (response.ok) cache.put(url.pathname, response.clone());
      return response;
    }).catch(() => cached);
    return cached || network;
  }));
});
