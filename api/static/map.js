/* gis-grid map pages: what the four pages share (the frame, sign-in, the API, the map).
 *
 * An ES module served as it is (no bundler, no CDN). Each page is a module of
 * its own (overview.js, supervisor.js, worker.js, planner.js) that imports
 * this one and calls run(page). Everything loaded comes from this app:
 * maplibre-gl.js from /assets (a classic script: the global maplibregl),
 * tiles from /tiles, data from the JSON API with the user's bearer token. The
 * token comes once in the URL fragment (#token=…, never sent to a server log)
 * or from the login form, and is kept in this browser's localStorage.
 */

export const PAGE = document.body.dataset.page;
const TOKEN_KEY = 'gis-grid-token';
const LANG_KEY = 'gis-grid-lang';
export const LEVELS = ['community', 'area', 'courtyard', 'building', 'unit'];
// where each grid level starts to be drawn, and how
const LEVEL_STYLE = {
  community: { color: '#17324d', width: 3.0, minzoom: 0 },
  area: { color: '#d9480f', width: 2.2, minzoom: 12 },
  courtyard: { color: '#2b8a3e', width: 1.4, minzoom: 14 },
  building: { color: '#868e96', width: 0.8, minzoom: 14, fill: '#ddd6c8' },
  unit: { color: '#7048e8', width: 0.6, minzoom: 17 },
};
export const OPEN = ['reported', 'accepted', 'dispatched', 'handled', 'verified', 'suspended'];

// every word the pages show, [zh, en] per key: one catalogue (messages.json), loaded once
const CATALOGUE = await (await fetch('/static/messages.json')).json();
const T = CATALOGUE.messages;
export const CATEGORIES = CATALOGUE.categories;
/** Sign-in roles (who uses the system), as the bar shows them. */
export const ACCESS = CATALOGUE.access_roles;
/** Staff roles on the grids (网格长, 网格员 …). */
export const ROLES = CATALOGUE.staff_roles;

export const lang = localStorage.getItem(LANG_KEY) || ((navigator.language || 'zh').startsWith('zh') ? 'zh' : 'en');
document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
export const t = (k) => (T[k] || [k, k])[lang === 'zh' ? 0 : 1];
/** The catalogue's words for a key, or `fallback` (the server's words) when it has none. */
export const tOr = (k, fallback) => (T[k] ? t(k) : fallback);
/** A message with {placeholders} filled: tf('overdue_of_open', { a: 3, b: 9 }). */
export const tf = (k, values) => t(k).replace(/\{(\w+)\}/g, (m, name) => (name in values ? String(values[name]) : m));
/** A word of the weekly review (the catalogue's ``review`` section), with its values filled in. */
export const tr = (k, values = {}) => ((CATALOGUE.review || {})[k] || [k, k])[lang === 'zh' ? 0 : 1]
  .replace(/\{(\w+)\}/g, (m, name) => (name in values ? String(values[name]) : m));
export const both = (k) => (T[k] ? `${T[k][0]} ${T[k][1]}` : k);
/** A key's label in the page's language from a table of [zh, en] pairs (the key itself if unknown). */
export const label = (table, key) => (table[key] || [key, key])[lang === 'zh' ? 0 : 1];
/** Where an analysis row is, by names: the area's name, then the grid's level and serial. */
export function placeOf(areaNames, p) {
  const area = areaNames[p.area_code] || p.area_code || p.community_code || '';
  if (!p.grid_code || p.grid_code === p.area_code || p.grid_level === 'community') return area;
  const serial = String(p.grid_code).slice(p.grid_level === 'unit' ? -2 : -3).replace(/^0+/, '');
  return `${area} · ${t(p.grid_level)} ${serial}`;
}
/** An ISO time as people read it: date and minutes. */
export const when = (iso) => String(iso ?? '').slice(0, 16).replace('T', ' ');
export const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
export const el = (id) => document.getElementById(id);

if (location.hash.startsWith('#token=')) {
  localStorage.setItem(TOKEN_KEY, decodeURIComponent(location.hash.slice(7)));
  history.replaceState(null, '', location.pathname + location.search);
}
const token = () => localStorage.getItem(TOKEN_KEY);

export async function api(path, opts = {}) {
  // refusals come back in the page's language where the catalogue has the words
  const headers = { Authorization: `Bearer ${token()}`, 'Accept-Language': lang === 'zh' ? 'zh-CN' : 'en' };
  if (opts.body) headers['Content-Type'] = 'application/json';
  const r = await fetch(path, { ...opts, headers });
  const type = r.headers.get('content-type') || '';
  const body = type.includes('json') ? await r.json() : await r.text();
  if (r.status === 401) { login(body.detail); throw new Error(body.detail); }
  if (!r.ok) {
    const e = new Error((body && body.detail) || r.statusText);
    e.status = r.status;
    throw e;
  }
  return body;
}

// -- page frame --------------------------------------------------------------------

function bar(me) {
  // the weekly review is for the roles that read every grid; a grid worker's bar stays short on a phone
  const reads = !me || ['admin', 'planner', 'supervisor', 'leadership'].includes(me.role);
  const links = ['overview', ...(reads ? ['review'] : []), 'supervisor', 'worker', 'planner']
    .map((p) => `<a href="/map/${p}" class="${p === PAGE ? 'here' : ''}">${t(p)}</a>`).join('');
  document.title = `${t(PAGE)} · gis-grid`;
  el('bar').innerHTML = `<span class="brand">${t('brand')}</span>${links}
    <span class="who">${me ? esc(`${me.name} · ${label(ACCESS, me.role)}`) : ''}</span>
    <span class="lang" role="group" aria-label="语言 Language">${[['zh', '中文'], ['en', 'EN']].map(([code, name]) => `<button data-lang="${code}"
      class="${code === lang ? 'here' : ''}" aria-pressed="${code === lang}" lang="${code}">${name}</button>`).join('')}</span>
    ${me ? `<button id="logout">${t('logout')}</button>` : ''}`;
  el('bar').querySelectorAll('button[data-lang]').forEach((b) => {
    b.onclick = () => { if (b.dataset.lang !== lang) { localStorage.setItem(LANG_KEY, b.dataset.lang); location.reload(); } };
  });
  if (me) el('logout').onclick = () => { localStorage.removeItem(TOKEN_KEY); location.reload(); };
}

function login(message) {
  bar(null);
  el('panel').innerHTML = '';
  el('map').innerHTML = `<form class="login" id="login"><h2>${both('login')}</h2>
    ${message ? `<p class="problem">${esc(message)}</p>` : ''}
    <label>${both('token')}<input id="token" autocomplete="off"></label>
    <button class="action">${t('login')}</button><p class="muted">${esc(t('token_hint'))}</p></form>`;
  el('login').onsubmit = (e) => {
    e.preventDefault();
    localStorage.setItem(TOKEN_KEY, el('token').value.trim());
    location.reload();
  };
}

// -- the map -------------------------------------------------------------------------

export const tileUrl = (layer, params) => `${location.origin}/tiles/${layer}/{z}/{x}/{y}.pbf${params ? `?${params}` : ''}`;

function newMap(bounds) {
  const map = new maplibregl.Map({
    container: 'map',
    style: { version: 8, sources: {}, layers: [{ id: 'background', type: 'background', paint: { 'background-color': '#f4f1ea' } }] },
    bounds: bounds || [[73, 18], [135, 54]],
    fitBoundsOptions: { padding: 30 },
    maxZoom: 20,
    attributionControl: false,
    transformRequest: (url) => (url.startsWith(location.origin)
      ? { url, headers: { Authorization: `Bearer ${token()}` } } : { url }),
  });
  map.addControl(new maplibregl.NavigationControl({ showCompass: false }));
  map.addControl(new maplibregl.ScaleControl());
  return map;
}

// -- the legend: one entry per drawn layer (keyed by the layer id's first word) ------------

const LEGEND = new Map();
let legendBox = null;
let legendMap = null;

/** What each drawn layer means: `{ id, rows: [{ kind, color, label, … }] }`, shown while it is visible. */
export function legendEntry(item) {
  LEGEND.set(item.id, item);
  drawLegend();
}

function swatch(r) {
  const style = {
    line: `height:0;border-top:${r.width || 2}px solid ${r.color};margin-top:7px`,
    street: `height:${r.height || 6}px;background:${r.color};border:1px solid #b8b2a6;margin-top:${Math.max(0, 6 - (r.height || 6) / 2)}px`,
    dash: `height:0;border-top:${r.width || 2}px dashed ${r.color};margin-top:7px`,
    fill: `background:${r.color};border:${r.outlineWidth || 1}px solid ${r.outline || r.color}`,
    circle: `background:${r.color};border-radius:50%;border:2px solid ${r.stroke || '#fff'}`,
    gradient: `background:linear-gradient(90deg,${(r.colors || []).join(',')})`,
  }[r.kind];
  return `<div class="legend-row"><span class="sw ${r.kind}" style="${style}"></span>${esc(r.label)}</div>`;
}

/** The keys of the layers now drawn (not hidden) on the map. */
export function visibleKeys(map) {
  return new Set(map.getStyle().layers
    .filter((l) => l.type !== 'background' && (l.layout || {}).visibility !== 'none')
    .map((l) => l.id.split('-')[0]));
}

function drawLegend() {
  if (!legendBox || !legendMap || !legendMap.getStyle()) return;
  const shown = visibleKeys(legendMap);
  const items = [...LEGEND.values()].filter((i) => shown.has(i.id));
  const open = legendBox.querySelector('details') ? legendBox.querySelector('details').open : window.innerWidth > 700;
  legendBox.innerHTML = `<details ${open ? 'open' : ''}><summary>${t('legend')}</summary>${items.map((i) => `<div data-legend="${esc(i.id)}">${i.rows.map(swatch).join('')}</div>`).join('')}</details>`;
}

function addLegend(map) {
  legendMap = map;
  legendBox = document.createElement('div');
  legendBox.className = 'maplibregl-ctrl legend-box';
  legendBox.id = 'legend';
  map.addControl({ onAdd: () => legendBox, onRemove: () => legendBox.remove() }, 'bottom-left');
  drawLegend();
}

/** Grid borders above every fill (cleaning zones, heat, hot spots): a border is never hidden. */
export function gridLinesOnTop(map) {
  for (const level of LEVELS) if (map.getLayer(`${level}-line`)) map.moveLayer(`${level}-line`);
}

export function addGrids(map, levels, version = window.gisGrid.gridGeneration) {
  const params = version !== undefined && version !== null ? `v=${version}` : '';
  for (const level of levels) {
    const s = LEVEL_STYLE[level];
    map.addSource(level, { type: 'vector', tiles: [tileUrl(level, params)], minzoom: s.minzoom, maxzoom: 18 });
    map.addLayer({
      id: `${level}-fill`, type: 'fill', source: level, 'source-layer': level, minzoom: s.minzoom,
      paint: { 'fill-color': s.fill || s.color, 'fill-opacity': s.fill ? 0.9 : 0.0 },
    });
    map.addLayer({
      id: `${level}-line`, type: 'line', source: level, 'source-layer': level, minzoom: s.minzoom,
      paint: { 'line-color': s.color, 'line-width': s.width },
    });
    legendEntry({
      id: level,
      rows: [s.fill ? { kind: 'fill', color: s.fill, outline: s.color, label: t(level) }
        : { kind: 'line', color: s.color, width: s.width, label: t(level) }],
    });
  }
}

// streets by their kind (OSM highway values): width at zoom 18, and the zoom they appear from
const STREET_WIDTH = ['match', ['get', 'kind'], ['motorway', 'trunk', 'primary'], 16, ['secondary', 'tertiary'], 11, ['service', 'footway', 'path', 'living_street'], 4, 7];

export function addStreets(map, layers) {
  if (!layers.includes('streets')) return;
  map.addSource('streets', { type: 'vector', tiles: [tileUrl('streets')], minzoom: 12, maxzoom: 18 });
  const below = map.getLayer('community-fill') ? 'community-fill' : undefined;
  const width = (scale) => ['interpolate', ['exponential', 1.6], ['zoom'], 12, ['*', scale * 0.12, STREET_WIDTH], 18, ['*', scale, STREET_WIDTH]];
  // a grey casing under a white road: streets read on the pale ground at every zoom
  map.addLayer({
    id: 'streets-casing', type: 'line', source: 'streets', 'source-layer': 'streets', minzoom: 12,
    layout: { 'line-cap': 'round', 'line-join': 'round' },
    paint: { 'line-color': '#b8b2a6', 'line-width': width(1.25) },
  }, below);
  map.addLayer({
    id: 'streets-line', type: 'line', source: 'streets', 'source-layer': 'streets', minzoom: 12,
    layout: { 'line-cap': 'round', 'line-join': 'round' },
    paint: { 'line-color': ['match', ['get', 'kind'], ['service', 'footway', 'path'], '#fbfaf7', '#ffffff'], 'line-width': width(1) },
  }, below);
  legendEntry({
    id: 'streets',
    rows: [
      { kind: 'street', color: '#ffffff', height: 8, label: t('street_primary') },
      { kind: 'street', color: '#ffffff', height: 5, label: t('street_secondary') },
      { kind: 'street', color: '#fbfaf7', height: 2, label: t('street_service') },
    ],
  });
}

// -- labels: names on the map, as page elements (the map has no font files of its own) --

/** Where a polygon's name goes: the centroid of its largest ring (lon, lat). */
function labelPoint(geometry) {
  const polys = geometry.type === 'Polygon' ? [geometry.coordinates] : geometry.coordinates;
  let best = null;
  for (const poly of polys) {
    const ring = poly[0];
    let a = 0; let cx = 0; let cy = 0;
    for (let i = 0, j = ring.length - 1; i < ring.length; j = i, i += 1) {
      const f = ring[j][0] * ring[i][1] - ring[i][0] * ring[j][1];
      a += f; cx += (ring[j][0] + ring[i][0]) * f; cy += (ring[j][1] + ring[i][1]) * f;
    }
    if (a && (!best || Math.abs(a) > Math.abs(best[2]))) best = [cx / (3 * a), cy / (3 * a), a];
  }
  return best ? [best[0], best[1]] : null;
}

/** Where a street's name goes: the middle of its line, and the line's angle on screen. */
function lineLabel(map, geometry) {
  const line = geometry.type === 'LineString' ? geometry.coordinates : geometry.coordinates[0];
  const mid = Math.floor((line.length - 1) / 2);
  const a = line[mid]; const b = line[Math.min(mid + 1, line.length - 1)];
  const pa = map.project(a); const pb = map.project(b);
  let angle = (Math.atan2(pb.y - pa.y, pb.x - pa.x) * 180) / Math.PI;
  if (angle > 90) angle -= 180;
  if (angle < -90) angle += 180;
  return { at: [(a[0] + b[0]) / 2, (a[1] + b[1]) / 2], angle };
}

/**
 * Names on the map by zoom: communities far out, then areas, then courtyards; street names
 * from z15 (lanes in compounds from z17). Asked for the view only, again after each move.
 */
export function addLabels(map, layers) {
  const specs = [
    { id: 'community', from: 0, to: 14.8, cls: 'label-community' },
    { id: 'area', from: 14.8, to: 16.6, cls: 'label-area' },
    { id: 'courtyard', from: 16.6, to: 24, cls: 'label-courtyard' },
  ];
  if (layers.includes('streets')) specs.push({ id: 'streets', from: 15, to: 24, cls: 'label-street', line: true });
  const shown = new Map();
  let asked = 0;
  const draw = async () => {
    asked += 1;
    const mine = asked;
    const z = map.getZoom();
    const b = map.getBounds();
    const bbox = [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map((v) => v.toFixed(6)).join(',');
    const want = new Map();
    await Promise.all(specs.filter((s) => z >= s.from && z < s.to).map(async (s) => {
      const found = await api(`/collections/${s.id}/items?bbox=${bbox}&limit=400`).catch(() => null);
      if (!found) return;
      const seen = new Set();
      for (const f of found.features) {
        const name = f.properties.name;
        if (!name || !f.geometry) continue;
        if (s.line) {
          const lane = ['service', 'footway', 'path'].includes(f.properties.kind);
          if ((lane && z < 17) || seen.has(name)) continue; // one label per street in view
          seen.add(name);
          const { at, angle } = lineLabel(map, f.geometry);
          want.set(`${s.id}:${f.id ?? f.properties.id}`, { at, name, cls: s.cls, angle });
        } else {
          const at = labelPoint(f.geometry);
          if (at) want.set(`${s.id}:${f.properties.code ?? f.id}`, { at, name, cls: s.cls, angle: 0 });
        }
      }
    }));
    if (mine !== asked) return; // a newer move is being answered
    for (const [key, marker] of shown) if (!want.has(key)) { marker.remove(); shown.delete(key); }
    for (const [key, w] of want) {
      if (shown.has(key)) continue;
      const div = document.createElement('div');
      div.className = `map-label ${w.cls}`;
      div.textContent = w.name;
      if (w.angle) div.style.transform = `rotate(${w.angle.toFixed(1)}deg)`;
      const inner = document.createElement('div');
      inner.appendChild(div);
      shown.set(key, new maplibregl.Marker({ element: inner }).setLngLat(w.at).addTo(map));
    }
    window.gisGrid.labels = [...shown.keys()];
  };
  let timer = null;
  map.on('moveend', () => { clearTimeout(timer); timer = setTimeout(draw, 150); });
  return draw();
}

export function addPoints(map, layer, color, params, minzoom = 13) {
  map.addSource(layer, { type: 'vector', tiles: [tileUrl(layer, params)], minzoom, maxzoom: 18 });
  map.addLayer({
    id: `${layer}-bins`, type: 'fill', source: layer, 'source-layer': layer, filter: ['has', 'count'],
    paint: { 'fill-color': color, 'fill-opacity': ['interpolate', ['linear'], ['get', 'count'], 1, 0.15, 50, 0.8] },
  });
  map.addLayer({
    id: `${layer}-points`, type: 'circle', source: layer, 'source-layer': layer, filter: ['!', ['has', 'count']],
    paint: { 'circle-color': color, 'circle-radius': 3.5, 'circle-stroke-color': '#fff', 'circle-stroke-width': 0.8 },
  });
  const what = layer === 'incidents' && params ? t('open_incidents') : t(layer);
  legendEntry({ id: layer, rows: [{ kind: 'circle', color, label: what }] });
}

export function addLines(map, layer, color, minzoom = 13) {
  map.addSource(layer, { type: 'vector', tiles: [tileUrl(layer)], minzoom, maxzoom: 18 });
  map.addLayer({ id: `${layer}-fill`, type: 'fill', source: layer, 'source-layer': layer, filter: ['==', ['geometry-type'], 'Polygon'], paint: { 'fill-color': color, 'fill-opacity': 0.12 } });
  map.addLayer({ id: `${layer}-line`, type: 'line', source: layer, 'source-layer': layer, paint: { 'line-color': color, 'line-width': 1.5 } });
  legendEntry({ id: layer, rows: [{ kind: 'fill', color: `${color}40`, outline: color, label: t(layer) }] });
}

export function setVisible(map, prefix, on) {
  for (const layer of map.getStyle().layers) {
    if (layer.id === prefix || layer.id.startsWith(`${prefix}-`)) map.setLayoutProperty(layer.id, 'visibility', on ? 'visible' : 'none');
  }
  drawLegend();
}

/** The deepest grid under a click among the drawn grid levels. */
export function gridAt(map, point, levels = LEVELS) {
  const ids = levels.map((l) => `${l}-fill`).filter((id) => map.getLayer(id) && map.getLayoutProperty(id, 'visibility') !== 'none');
  const found = map.queryRenderedFeatures(point, { layers: ids });
  found.sort((a, b) => String(b.properties.code).length - String(a.properties.code).length);
  return found.length ? found[0].properties : null;
}

function staffRows(staff) {
  if (!staff || !staff.length) return `<tr><td colspan="2">${t('none')}</td></tr>`;
  return staff.map((s) => `<tr><td>${esc(label(ROLES, s.role))}</td>
    <td>${esc(s.name)} <a href="tel:${esc(s.phone)}">${esc(s.phone || '')}</a></td></tr>`).join('');
}

export async function showGrid(map, lngLat, code) {
  const s = await api(`/grids/${code}/summary`);
  const rows = [
    ['code', s.code], ['level', t(s.level)], ['households', s.households], ['residents', s.residents],
    ['open_incidents', s.open_incidents], ['overdue_incidents', s.overdue_incidents],
    ['cameras', s.cctv], ['lamps', s.lighting],
    ['coverage_pct', s.coverage_pct == null ? null : `${s.coverage_pct}%`],
  ].filter((r) => r[1] !== undefined && r[1] !== null);
  const html = `<div class="pop" data-code="${esc(s.code)}"><h4>${esc(s.name)}</h4><table>
    ${rows.map(([k, v]) => `<tr><th>${t(k)}</th><td>${esc(v)}</td></tr>`).join('')}
    <tr><th colspan="2">${t('staff')}</th></tr>${staffRows(s.staff)}</table></div>`;
  new maplibregl.Popup({ maxWidth: '320px' }).setLngLat(lngLat).setHTML(html).addTo(map);
  return s;
}

async function start(page) {
  if (!token()) { login(); return; }
  const me = await api('/me');
  bar(me);
  const catalog = await api('/collections');
  const collections = catalog.collections;
  const layers = collections.filter((c) => c.kind === 'layer').map((c) => c.id);
  const community = await api('/collections/community');
  const box = community.extent && community.extent.spatial.bbox[0];
  const map = newMap(box ? [[box[0], box[1]], [box[2], box[3]]] : null);
  window.gisGrid = { map, me, layers, ready: false, visibleKeys: () => visibleKeys(map), gridGeneration: catalog.gridGeneration };
  await new Promise((resolve) => map.on('load', resolve));
  await page(map, me, layers);
  gridLinesOnTop(map);
  addLegend(map);
  goToPlace(map);
  window.gisGrid.ready = true;
  addLabels(map, layers).catch((err) => console.warn('labels:', err.message));
}

/** A link into a page at a place (``#at=lon,lat,zoom``, as the weekly review's rows give): go there and mark it. */
export function goToPlace(map) {
  const found = /^#at=(-?[\d.]+),(-?[\d.]+)(?:,([\d.]+))?/.exec(location.hash);
  if (!found) return;
  const center = [Number(found[1]), Number(found[2])];
  map.jumpTo({ center, zoom: Number(found[3] || 17) });
  new maplibregl.Marker({ color: '#a51111' }).setLngLat(center).addTo(map);
}

/** Start a page: sign in, draw the frame and the map, then hand over to the page. */
export function run(page) {
  start(page).catch((err) => {
    if (!el('panel').innerHTML) el('panel').innerHTML = `<p class="problem">${esc(err.message)}</p>`;
    console.error(err);
  });
}
