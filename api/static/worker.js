/* gis-grid map page: 'what do I cover?' — a grid worker's grids, cameras, lamps, open cases; tap for the grid chain. */
import {
  LEVELS, OPEN, ROLES, t, esc, el, api, addGrids, addStreets, addPoints, gridAt, showGrid, label, run, legendEntry,
} from './map.js';
import { caseList } from './cases.js';

async function worker(map, me, layers) {
  addGrids(map, LEVELS);
  addStreets(map, layers);
  if (layers.includes('cctv')) addPoints(map, 'cctv', '#1c7ed6', '');
  if (layers.includes('lighting')) addPoints(map, 'lighting', '#f59f00', '');
  if (layers.includes('incidents')) addPoints(map, 'incidents', '#e03131', OPEN.map((s) => `status=${s}`).join('&'));
  map.addSource('mine', { type: 'geojson', data: { type: 'FeatureCollection', features: [] } });
  map.addLayer({ id: 'mine-line', type: 'line', source: 'mine', paint: { 'line-color': '#f03e3e', 'line-width': 4 } });
  map.addSource('case', { type: 'geojson', data: { type: 'FeatureCollection', features: [] } });
  map.addLayer({ id: 'case-point', type: 'circle', source: 'case', paint: { 'circle-color': '#c92a2a', 'circle-radius': 8, 'circle-stroke-color': '#fff', 'circle-stroke-width': 2 } });
  legendEntry({ id: 'case', rows: [{ kind: 'circle', color: '#c92a2a', label: t('selected_case') }] });
  legendEntry({ id: 'mine', rows: [{ kind: 'line', color: '#f03e3e', width: 4, label: t('mine') }] });
  // the answer to a tap comes first, right under the map (on a phone: in view without scrolling)
  el('panel').innerHTML = `<div id="here" class="here-card"><p class="muted">${t('tap_map')}</p></div>
    <h2>${t('worker')}</h2>
    <h3>${t('my_cases')}</h3><div id="case"></div><div id="cases" class="muted">${t('computing')}</div>
    <form id="find"><input id="q" placeholder="${esc(t('search_staff'))}"> <button class="action">${t('search')}</button></form>
    <div id="found"></div><div id="cover"></div>`;
  const cover = async (staffId) => {
    const c = await api(`/staff/${encodeURIComponent(staffId)}`);
    const tops = c.grids.map((g) => g.code).filter((code, _, all) => !all.some((o) => o !== code && code.startsWith(o)));
    // the facts, dark streets and outlines of each grid, all asked at once
    const [summaries, holes, shapes] = await Promise.all([
      Promise.all(tops.map((code) => api(`/grids/${code}/summary`))),
      Promise.all(tops.map((code) => api(`/analysis/holes/lighting?under=${code}&level=${c.grids.find((g) => g.code === code).level}`).catch(() => null))),
      Promise.all(tops.map((code) => api(`/grids/${code}`))),
    ]);
    el('cover').innerHTML = `<h3>${esc(c.name)} · ${esc(label(ROLES, c.role))} · ${esc(c.phone)}</h3>
      <table><tr><th>${t('households')}</th><td>${c.households}</td></tr><tr><th>${t('residents')}</th><td>${c.residents ?? ''}</td></tr>
      ${LEVELS.filter((l) => c.counts[l]).map((l) => `<tr><th>${t(l)}</th><td>${c.counts[l]}</td></tr>`).join('')}</table>
      <h3>${t('my_grids')}</h3>${summaries.map((s, i) => `<div data-grid="${esc(s.code)}"><b>${esc(s.name)}</b> <span class="muted">${esc(s.code)}</span>
        <table><tr><th>${t('cameras')}</th><td>${s.cctv ?? ''}</td></tr><tr><th>${t('lamps')}</th><td>${s.lighting ?? ''}</td></tr>
        <tr><th>${t('coverage_pct')}</th><td>${s.coverage_pct == null ? '' : `${s.coverage_pct}%`}</td></tr>
        <tr><th>${t('dark_m')}</th><td>${holes[i] ? `${holes[i].summary.dark_m} m` : ''}</td></tr>
        <tr><th>${t('open_incidents')}</th><td>${s.open_incidents ?? ''} (${t('overdue_incidents')} ${s.overdue_incidents ?? 0})</td></tr></table></div>`).join('')}`;
    const features = shapes.map((s) => s.grid);
    map.getSource('mine').setData({ type: 'FeatureCollection', features });
    const b = new maplibregl.LngLatBounds();
    features.forEach((f) => (f.geometry.type === 'Polygon' ? [f.geometry.coordinates] : f.geometry.coordinates).forEach((poly) => poly[0].forEach((p) => b.extend(p))));
    if (!b.isEmpty()) map.fitBounds(b, { padding: 40, duration: 0 });
    window.gisGrid.covered = c;
  };
  el('find').onsubmit = async (e) => {
    e.preventDefault();
    const found = (await api(`/staff?q=${encodeURIComponent(el('q').value)}`)).staff;
    el('found').innerHTML = found.length ? `<ul>${found.map((s) => `<li><a href="#" data-staff="${esc(s.staff_id)}">${esc(s.name)}</a> ${esc(s.staff_id)} · ${esc(label(ROLES, s.role))}</li>`).join('')}</ul>` : `<p class="muted">${t('none')}</p>`;
    el('found').querySelectorAll('a[data-staff]').forEach((a) => { a.onclick = (ev) => { ev.preventDefault(); cover(a.dataset.staff); }; });
  };
  map.on('click', async (e) => {
    try {
      const r = await api(`/lookup?lon=${e.lngLat.lng}&lat=${e.lngLat.lat}`);
      el('here').innerHTML = r.grids.length ? `<table>${r.grids.map((g) => `<tr><th>${t(g.level)}</th><td><b>${esc(g.name)}</b> <span class="muted">${esc(g.code)}</span>
        ${(g.staff || []).map((s) => `<br>${esc(label(ROLES, s.role))} ${esc(s.name)} ${s.phone ? `<a class="tel" href="tel:${esc(s.phone)}">${esc(s.phone)}</a>` : ''}`).join('')}</td></tr>`).join('')}</table>`
        : `<p class="muted">${t('outside')}</p>`;
      el('here').scrollIntoView({ block: 'nearest' });
      // a phone shows the answer under the map; a desk also gets the grid's facts on the map
      const g = window.innerWidth > 700 ? gridAt(map, e.point) : null;
      if (g) await showGrid(map, e.lngLat, g.code);
    } catch (err) { el('here').innerHTML = `<p class="problem">${esc(err.message)}</p>`; }
  });
  const pick = (c) => {
    map.getSource('case').setData({ type: 'FeatureCollection', features: [{ type: 'Feature', properties: {}, geometry: { type: 'Point', coordinates: [c.lon, c.lat] } }] });
    map.easeTo({ center: [c.lon, c.lat], zoom: Math.max(map.getZoom(), 17), duration: 0 });
    el('case').scrollIntoView({ block: 'start' });
  };
  const cases = caseList('cases', 'case', me, () => 'status=open', pick);
  await Promise.all([cases(), me.staff_id ? cover(me.staff_id) : null]);
}

run(worker);
