/* gis-grid map page: incident heat and Gi* hot spots with time and category filters, overdue cases. */
import {
  CATEGORIES, t, both, esc, el, api, tileUrl, addGrids, addStreets, gridAt, showGrid, label, placeOf, run,
} from './map.js';
import { caseList, indicatorTable } from './cases.js';

async function supervisor(map, me, layers) {
  addGrids(map, ['community', 'area', 'courtyard']);
  addStreets(map, layers);
  const areas = await api('/collections/area/items?limit=10000');
  const areaNames = Object.fromEntries(areas.features.map((f) => [f.properties.code, f.properties.name]));
  const where = (p) => `<span title="${esc(p.grid_code)}">${esc(placeOf(areaNames, p))}</span>`;
  const filters = () => {
    const p = new URLSearchParams();
    const since = el('since').value; const until = el('until').value;
    if (since || until) p.set('datetime', `${since || '..'}/${until ? `${until}T23:59:59` : '..'}`);
    const c = el('category').value;
    if (c) p.set('category', c);
    return p;
  };
  el('panel').innerHTML = `<h2>${t('supervisor')}</h2>
    <label>${both('since')} <input type="date" id="since"></label>
    <label>${both('until')} <input type="date" id="until"></label>
    <label>${both('category')} <select id="category"><option value="">${t('all')}</option>
    ${Object.entries(CATEGORIES).map(([k, v]) => `<option value="${k}">${v[0]} ${v[1]}</option>`).join('')}</select></label>
    <h3>${t('hotspots')}</h3><div id="spots" class="muted">${t('computing')}</div>
    <h3>${t('case_list')}</h3>
    <div class="tabs" id="case-tabs"><button data-q="status=open" class="here">${t('status_open')}</button><button data-q="overdue=true">${t('status_overdue')}</button><button data-q="status=open&escalated=true">${t('status_escalated')}</button><button data-q="status=closed&status=rejected">${t('status_closed')}</button></div>
    <div id="case"></div><div id="cases" class="muted">${t('computing')}</div>
    <h3>${t('indicators')}</h3><div id="indicators" class="muted">${t('computing')}</div>
    <h3>${t('overdue')}</h3><div id="overdue" class="muted">${t('computing')}</div>`;
  map.addSource('incidents', { type: 'vector', tiles: [tileUrl('incidents')], minzoom: 10, maxzoom: 18 });
  map.addLayer({
    id: 'heat', type: 'heatmap', source: 'incidents', 'source-layer': 'incidents', filter: ['!', ['has', 'count']],
    paint: {
      'heatmap-radius': ['interpolate', ['linear'], ['zoom'], 13, 6, 18, 30],
      'heatmap-intensity': ['interpolate', ['linear'], ['zoom'], 13, 0.05, 16, 0.15, 18, 0.5],
      'heatmap-opacity': 0.75,
    },
  });
  map.addLayer({
    id: 'heat-bins', type: 'fill', source: 'incidents', 'source-layer': 'incidents', filter: ['has', 'count'],
    paint: { 'fill-color': ['interpolate', ['linear'], ['get', 'count'], 1, '#fee5d9', 20, '#fb6a4a', 200, '#a50f15'], 'fill-opacity': 0.7 },
  });
  map.addSource('spots', { type: 'geojson', data: { type: 'FeatureCollection', features: [] } });
  map.addLayer({
    id: 'spots-fill', type: 'fill', source: 'spots',
    paint: { 'fill-color': ['match', ['get', 'spot'], 'hot', '#e03131', '#1971c2'], 'fill-opacity': 0.35 },
  });
  map.addLayer({ id: 'spots-line', type: 'line', source: 'spots', paint: { 'line-color': ['match', ['get', 'spot'], 'hot', '#c92a2a', '#1864ab'], 'line-width': 1.5 } });
  map.addSource('overdue', { type: 'geojson', data: { type: 'FeatureCollection', features: [] } });
  map.addLayer({ id: 'overdue-points', type: 'circle', source: 'overdue', paint: { 'circle-color': '#000', 'circle-radius': 4, 'circle-stroke-color': '#ffd43b', 'circle-stroke-width': 2 } });
  let generation = 0;
  let heatUrl = tileUrl('incidents');
  const refresh = async () => {
    const p = filters();
    generation += 1;
    const mine = generation;
    const url = tileUrl('incidents', p.toString());
    if (url !== heatUrl) map.getSource('incidents').setTiles([url]);
    heatUrl = url;
    window.gisGrid.heatParams = p.toString();
    el('spots').textContent = t('computing');
    el('overdue').textContent = t('computing');
    const q = new URLSearchParams();
    if (el('since').value) q.set('since', el('since').value);
    if (el('until').value) q.set('until', `${el('until').value}T23:59:59`);
    const spotsQuery = new URLSearchParams(q);
    if (p.get('category')) spotsQuery.set('category', p.get('category'));
    const [spots, overdue] = await Promise.allSettled([
      api(`/analysis/hotspots?${spotsQuery}`), api(`/analysis/holes/incidents?${spotsQuery}`),
    ]);
    if (mine !== generation) return;
    if (spots.status === 'fulfilled') {
      const s = spots.value;
      map.getSource('spots').setData(s.spots);
      el('spots').innerHTML = `<p class="muted">${esc(s.summary.since.slice(0, 10))} → ${esc(s.summary.until.slice(0, 10))}:
        ${s.summary.incidents} ${t('incidents')}, ${s.summary.hot} ${t('hot')}, ${s.summary.cold} ${t('cold')}, PAI ${esc(s.summary.pai)}</p>
        <table>${s.spots.features.slice(0, 12).map((f) => `<tr><td>${esc(f.properties.spot === 'hot' ? t('hot') : t('cold'))} ${esc(f.properties.trend ? t(f.properties.trend) : '')}</td>
        <td>${esc(f.properties.incidents)}</td><td>${where(f.properties)}<br>${esc(f.properties.staff_name)} ${esc(f.properties.staff_phone || '')}</td></tr>`).join('')}</table>`;
    } else el('spots').innerHTML = `<p class="problem">${esc(spots.reason.message)}</p>`;
    if (overdue.status === 'fulfilled') {
      const o = overdue.value;
      map.getSource('overdue').setData(o.holes);
      el('overdue').innerHTML = `<p class="muted">${o.summary.overdue} / ${o.summary.open} ${t('open_incidents')}</p>
        <table>${o.holes.features.slice(0, 15).map((f) => `<tr><td>${esc(f.properties.id)}<br>${esc(label(CATEGORIES, f.properties.category))}</td>
        <td>${esc(f.properties.overdue_hours)} ${t('hours')}</td><td>${where(f.properties)}<br>${esc(f.properties.staff_name)} ${esc(f.properties.staff_phone || '')}</td></tr>`).join('')}</table>`;
    } else el('overdue').innerHTML = `<p class="problem">${esc(overdue.reason.message)}</p>`;
    window.gisGrid.analysed = mine;
  };
  ['since', 'until', 'category'].forEach((id) => { el(id).onchange = refresh; });
  map.addSource('case', { type: 'geojson', data: { type: 'FeatureCollection', features: [] } });
  map.addLayer({ id: 'case-point', type: 'circle', source: 'case', paint: { 'circle-color': '#c92a2a', 'circle-radius': 8, 'circle-stroke-color': '#fff', 'circle-stroke-width': 2 } });
  let caseQuery = 'status=open';
  const pick = (c) => {
    map.getSource('case').setData({ type: 'FeatureCollection', features: [{ type: 'Feature', properties: {}, geometry: { type: 'Point', coordinates: [c.lon, c.lat] } }] });
    map.easeTo({ center: [c.lon, c.lat], zoom: Math.max(map.getZoom(), 16), duration: 0 });
    el('case').scrollIntoView({ block: 'start' });
  };
  const cases = caseList('cases', 'case', me, () => {
    const c = el('category').value;
    return `${caseQuery}${c ? `&category=${c}` : ''}`;
  }, pick);
  el('case-tabs').querySelectorAll('button').forEach((b) => {
    b.onclick = () => {
      el('case-tabs').querySelectorAll('button').forEach((o) => o.classList.toggle('here', o === b));
      caseQuery = b.dataset.q;
      cases();
    };
  });
  el('category').addEventListener('change', () => cases());
  await Promise.allSettled([cases(), indicatorTable('indicators')]);
  map.on('click', async (e) => {
    const g = gridAt(map, e.point, ['community', 'area', 'courtyard']);
    if (g) await showGrid(map, e.lngLat, g.code);
  });
  refresh();
}

run(supervisor);
