/* gis-grid map page: the overview for leadership — every level and layer, a grid's facts on click. */
import {
  LEVELS, OPEN, t, esc, el, api, addGrids, addStreets, addPoints, addLines, setVisible, gridAt, showGrid, run,
} from './map.js';

async function overview(map, me, layers) {
  addGrids(map, LEVELS);
  addStreets(map, layers);
  const extras = [['cleaning', '#15aabf', 'lines'], ['lighting', '#f59f00', 'points'], ['cctv', '#1c7ed6', 'points'], ['incidents', '#e03131', 'points']];
  for (const [layer, color, kind] of extras) {
    if (!layers.includes(layer)) continue;
    if (kind === 'points') addPoints(map, layer, color, layer === 'incidents' ? OPEN.map((s) => `status=${s}`).join('&') : '');
    else addLines(map, layer, color);
  }
  const toggles = [...LEVELS, ...extras.map((e) => e[0]).filter((l) => layers.includes(l)), ...(layers.includes('streets') ? ['streets'] : [])];
  const [communities, areas, ind] = await Promise.all([
    api('/collections/community/items?limit=50'),
    api('/collections/area/items?limit=10000'),
    api('/indicators?by=area').catch(() => null),
  ]);
  // each area's people and how its cases go: the ones with cases late now first
  const byArea = Object.fromEntries(((ind && ind.rows) || []).map((r) => [r.code, r]));
  const pct = (v) => (v === null || v === undefined ? '' : `${Math.round(v * 100)}%`);
  const rows = areas.features.map((f) => ({ ...f.properties, ...(byArea[f.properties.code] || {}) }))
    .sort((a, b) => (b.overdue || 0) - (a.overdue || 0) || (b.reported || 0) - (a.reported || 0));
  el('panel').innerHTML = `<h2>${t('overview')}</h2>
    <h3>${t('layers')}</h3>${toggles.map((l) => `<label><input type="checkbox" data-layer="${l}" checked> ${t(l)}</label>`).join('')}
    <h3>${t('community')}</h3><table><tr><th>${t('name')}</th><th>${t('households')}</th><th>${t('residents')}</th></tr>
    ${communities.features.map((f) => `<tr><td>${esc(f.properties.name)}</td><td>${esc(f.properties.households)}</td><td>${esc(f.properties.residents)}</td></tr>`).join('')}</table>
    ${communities.numberMatched > 50 ? `<p class="muted">+${communities.numberMatched - 50}</p>` : ''}
    <h3>${t('area')} · ${t('indicators')}</h3>
    <table class="areas"><tr><th>${t('name')}</th><th>${t('households')}</th><th>${t('reported_n')}</th><th>${t('on_time')}</th><th>${t('late_now')}</th></tr>
    ${rows.map((r) => `<tr data-area="${esc(r.code)}"><td title="${esc(r.code)}">${esc(r.name)}</td><td>${esc(r.households)}</td>
      <td>${r.reported ?? ''}</td><td>${pct(r.on_time_rate)}</td><td class="${r.overdue ? 'late' : ''}">${r.overdue ?? ''}</td></tr>`).join('')}</table>
    <p class="muted">${t('click_grid')}</p>`;
  // a row shows its area on the map
  const shapes = Object.fromEntries(areas.features.map((f) => [f.properties.code, f.geometry]));
  el('panel').querySelectorAll('tr[data-area]').forEach((tr) => {
    tr.onclick = () => {
      const g = shapes[tr.dataset.area];
      const b = new maplibregl.LngLatBounds();
      (g.type === 'Polygon' ? [g.coordinates] : g.coordinates).forEach((poly) => poly[0].forEach((pt) => b.extend(pt)));
      map.fitBounds(b, { padding: 40, duration: 0 });
    };
  });
  el('panel').querySelectorAll('input[data-layer]').forEach((box) => {
    box.onchange = () => setVisible(map, box.dataset.layer, box.checked);
  });
  map.on('click', async (e) => {
    const g = gridAt(map, e.point);
    if (g) window.gisGrid.popup = await showGrid(map, e.lngLat, g.code);
  });
}

run(overview);
