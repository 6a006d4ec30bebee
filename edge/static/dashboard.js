// The federation dashboard: polls /v1/federation/dashboard every second and redraws.
// No framework and no CDN: the edge serves this file, and every value goes into the page as text.
"use strict";

const DATA = "/v1/federation/dashboard";
const EVERY_MS = 1000;
const FLOW_HOLD_MS = 6000; // a flow seen in one beat stays drawn (fading) a few beats
const SVG = "http://www.w3.org/2000/svg";
const KEY = "spillover-admin-key";
const seenFlows = new Map(); // "source>target" -> {flow, at}

function takeKeyFromFragment() {
  // /dashboard#key=sk_... : the fragment never reaches a server or its logs; drop it at once.
  const m = location.hash.match(/^#key=(.+)$/);
  if (m) {
    sessionStorage.setItem(KEY, decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname);
  }
}

function el(tag, attrs, text) {
  const node = tag.startsWith("svg:")
    ? document.createElementNS(SVG, tag.slice(4))
    : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function project(lat, lon) {
  return [lon + 180, 90 - lat]; // equirectangular, the projection of world.svg
}

function ms(v) {
  return v >= 1000 ? (v / 1000).toFixed(1) + " s" : Math.round(v) + " ms";
}

function totals(region) {
  const t = { ready: 0, desired: 0, busy: 0, slots: 0, queued: 0, oldest: 0 };
  for (const a of region.apps) {
    t.ready += a.ready_replicas;
    t.desired += a.desired_replicas;
    t.busy += a.busy_slots;
    t.slots += a.slots;
    t.queued += a.queue_depth;
    t.oldest = Math.max(t.oldest, a.oldest_wait_ms);
  }
  return t;
}

function drawRegions(regions) {
  const layer = document.getElementById("regions");
  layer.replaceChildren();
  for (const r of regions) {
    if (r.lat === null || r.lon === null) continue;
    const [x, y] = project(r.lat, r.lon);
    const t = totals(r);
    const g = el("svg:g", { class: "region", "data-region": r.name, "data-status": r.status });
    g.append(el("svg:circle", { class: "region-dot " + r.status, cx: x, cy: y, r: 2.4 }));
    g.append(el("svg:text", { class: "region-label", x: x + 3.5, y: y - 1 }, r.name));
    const load = `${r.status} · ${t.busy}/${t.slots} busy · ${t.queued} queued`;
    g.append(el("svg:text", { class: "region-load", x: x + 3.5, y: y + 3 }, load));
    layer.append(g);
  }
}

function drawFlows(data) {
  const now = Date.now();
  for (const f of data.flows) seenFlows.set(f.source + ">" + f.target, { flow: f, at: now });
  const where = new Map(
    data.regions.filter((r) => r.lat !== null).map((r) => [r.name, project(r.lat, r.lon)]),
  );
  const layer = document.getElementById("flows");
  layer.replaceChildren();
  for (const [key, { flow, at }] of seenFlows) {
    const age = now - at;
    if (age > FLOW_HOLD_MS) {
      seenFlows.delete(key);
      continue;
    }
    const a = where.get(flow.source);
    const b = where.get(flow.target);
    if (!a || !b) continue;
    // A curve bending to the left of its direction: A->B and B->A do not overlap.
    const [dx, dy] = [b[0] - a[0], b[1] - a[1]];
    const len = Math.hypot(dx, dy) || 1;
    const [ux, uy] = [dx / len, dy / len];
    const start = [a[0] + ux * 3.5, a[1] + uy * 3.5];
    const end = [b[0] - ux * 3.5, b[1] - uy * 3.5];
    const bend = Math.min(25, len * 0.2);
    const c = [(a[0] + b[0]) / 2 + uy * bend, (a[1] + b[1]) / 2 - ux * bend];
    const live = age <= EVERY_MS * 2.5;
    const rate = live ? flow.rate.toFixed(1) + "/s" : "…";
    const g = el("svg:g", {
      class: "flow-group",
      "data-source": flow.source,
      "data-target": flow.target,
      opacity: (1 - (age / FLOW_HOLD_MS) * 0.7).toFixed(2),
    });
    g.append(
      el("svg:path", {
        class: "flow",
        d: `M${start[0]},${start[1]} Q${c[0]},${c[1]} ${end[0]},${end[1]}`,
        "stroke-width": Math.min(2.2, 0.6 + Math.log1p(flow.rate) * 0.5).toFixed(2),
        "marker-end": "url(#arrowhead)",
      }),
    );
    const mid = [(start[0] + 2 * c[0] + end[0]) / 4, (start[1] + 2 * c[1] + end[1]) / 4];
    g.append(el("svg:text", { class: "flow-label", x: mid[0], y: mid[1] - 1 }, rate));
    layer.append(g);
  }
}

function drawTable(regions) {
  const body = document.querySelector("#region-table tbody");
  body.replaceChildren();
  for (const r of regions) {
    const apps = r.apps.length ? r.apps : [null];
    for (const a of apps) {
      const tr = el("tr", { "data-region": r.name });
      tr.append(el("td", {}, r.name), el("td", { class: "status " + r.status }, r.status));
      if (a === null) {
        for (let i = 0; i < 5; i++) tr.append(el("td", {}, "–"));
      } else {
        tr.append(
          el("td", {}, a.app),
          el("td", {}, `${a.ready_replicas}/${a.desired_replicas}`),
          el("td", {}, `${a.busy_slots}/${a.slots - a.busy_slots}`),
          el("td", {}, String(a.queue_depth)),
          el("td", {}, ms(a.oldest_wait_ms)),
        );
      }
      body.append(tr);
    }
  }
}

function drawDecisions(decisions) {
  const body = document.querySelector("#decisions tbody");
  body.replaceChildren();
  if (!decisions.length) {
    const tr = el("tr");
    tr.append(el("td", { colspan: 5, class: "meta" }, "no change of desired replicas seen yet"));
    body.append(tr);
  }
  for (const d of decisions) {
    const tr = el("tr");
    tr.append(
      el("td", {}, new Date(d.at).toLocaleTimeString()),
      el("td", {}, d.region),
      el("td", {}, d.app),
      el("td", {}, `${d.from} → ${d.to}`),
      el("td", {}, d.reason || "–"),
    );
    body.append(tr);
  }
}

function drawHeader(data) {
  const status = document.getElementById("status");
  status.textContent = data.status;
  status.className = "badge " + data.status;
  const e = data.etcd;
  document.getElementById("etcd").textContent = e.healthy
    ? `etcd healthy · ${e.members} member(s) · leader ${e.leader || "–"}`
    : "etcd UNHEALTHY";
  document.getElementById("updated").textContent =
    "updated " + new Date(data.at).toLocaleTimeString();
  const g = data.geoip;
  document.getElementById("geoip").textContent = g
    ? `GeoIP: ${g.type}, built ${g.built}${g.stale ? " (over a year old)" : ""}.`
    : "GeoIP: no database; clients home in the edge's region.";
  const edges = document.getElementById("edges");
  edges.replaceChildren(
    ...(data.edges.length
      ? data.edges.map((x) => el("li", {}, `${x.id} (${x.region})`))
      : [el("li", { class: "meta" }, "none")]),
  );
}

function problem(text) {
  const box = document.getElementById("problem");
  box.hidden = !text;
  box.textContent = text || "";
}

async function poll() {
  const key = sessionStorage.getItem(KEY);
  const headers = key ? { Authorization: "Bearer " + key } : {};
  let response;
  try {
    response = await fetch(DATA, { headers, cache: "no-store" });
  } catch (err) {
    problem("The edge does not answer; retrying.");
    return;
  }
  if (response.status === 401 || response.status === 403) {
    document.getElementById("login").hidden = false;
    problem(key ? "That key is not an admin key of this federation." : "");
    return;
  }
  if (!response.ok) {
    problem(`The edge answered ${response.status}; retrying.`);
    return;
  }
  const data = await response.json();
  document.getElementById("login").hidden = true;
  problem("");
  drawHeader(data);
  drawRegions(data.regions);
  drawFlows(data);
  drawTable(data.regions);
  drawDecisions(data.decisions);
}

function loop() {
  poll().finally(() => setTimeout(loop, EVERY_MS));
}

document.addEventListener("DOMContentLoaded", () => {
  takeKeyFromFragment();
  document.getElementById("login").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY, document.getElementById("key").value.trim());
    poll();
  });
  loop();
});
