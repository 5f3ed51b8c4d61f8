/* gis-grid map page: incident heat and Gi* hot spots with time and category filters, overdue cases. */
import {
  CATEGORIES, t, tf, esc, el, api, tileUrl, addGrids, addStreets, gridAt, showGrid, label, placeOf, run, legendEntry, when,
} from './map.js';

// one colour language: hot red, cold blue; a hot spot's trend is its outline on red, not another hue
const HOT = '#e03131';
const HOT_EDGE = '#a51111';
const COLD = '#1971c2';
const HEAT = ['#fee5d9', '#fb6a4a', '#a50f15'];

/** Hot-spot cells grouped by the grid they lie in: one row per grid, most incidents first. */
export function spotRows(features) {
  const groups = new Map();
  for (const f of features) {
    const p = f.properties;
    const key = p.grid_code || p.area_code || p.community_code || p.unit;
    const g = groups.get(key) || { p, cells: 0, incidents: 0, z: 0, hot: 0, cold: 0, new: 0, persistent: 0, fading: 0 };
    g.cells += 1;
    g.incidents += Number(p.incidents) || 0;
    g.z = Math.max(g.z, Math.abs(Number(p.z) || 0));
    if (p.spot === 'hot' || p.spot === 'cold') g[p.spot] += 1;
    if (p.trend) g[p.trend] += 1;
    groups.set(key, g);
  }
  return [...groups.values()].sort((a, b) => b.incidents - a.incidents || b.z - a.z);
}
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
    <div class="window" id="window">${t('window')}: <button data-days="7">${t('last_7')}</button><button data-days="28">${t('last_28')}</button><button data-days="84">${t('last_84')}</button></div>
    <label>${t('since')} <input type="date" id="since"></label>
    <label>${t('until')} <input type="date" id="until"></label>
    <label>${t('category')} <select id="category"><option value="">${t('all')}</option>
    ${Object.keys(CATEGORIES).map((k) => `<option value="${k}">${esc(label(CATEGORIES, k))}</option>`).join('')}</select></label>
    <p class="muted" id="windows"></p>
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
      'heatmap-intensity': ['interpolate', ['linear'], ['zoom'], 13, 0.15, 16, 0.45, 18, 1.2],
      'heatmap-opacity': 0.75,
      // the legend's reds, clear where there is nothing (a blue low end would read as cold)
      'heatmap-color': ['interpolate', ['linear'], ['heatmap-density'], 0, 'rgba(254,229,217,0)', 0.15, HEAT[0], 0.5, HEAT[1], 1, HEAT[2]],
    },
  });
  map.addLayer({
    id: 'heat-bins', type: 'fill', source: 'incidents', 'source-layer': 'incidents', filter: ['has', 'count'],
    paint: { 'fill-color': ['interpolate', ['linear'], ['get', 'count'], 1, HEAT[0], 20, HEAT[1], 200, HEAT[2]], 'fill-opacity': 0.7 },
  });
  legendEntry({ id: 'heat', rows: [{ kind: 'gradient', colors: HEAT, label: `${t('heat')} (${t('heat_low')} → ${t('heat_high')})` }] });
  map.addSource('spots', { type: 'geojson', data: { type: 'FeatureCollection', features: [] } });
  // fill: hot red, cold blue, nothing for a fading spot (no longer significant)
  map.addLayer({
    id: 'spots-fill', type: 'fill', source: 'spots', filter: ['in', ['get', 'spot'], ['literal', ['hot', 'cold']]],
    paint: { 'fill-color': ['match', ['get', 'spot'], 'hot', HOT, COLD], 'fill-opacity': 0.35 },
  });
  // outline: the trend, in the spot's own colour (a fading spot keeps the hot red, dashed)
  map.addLayer({
    id: 'spots-line', type: 'line', source: 'spots', filter: ['!=', ['get', 'trend'], 'fading'],
    paint: {
      'line-color': ['match', ['get', 'spot'], 'cold', COLD, HOT_EDGE],
      'line-width': ['match', ['get', 'trend'], 'new', 3.5, 1.2],
    },
  });
  map.addLayer({
    id: 'spots-fading', type: 'line', source: 'spots', filter: ['==', ['get', 'trend'], 'fading'],
    paint: { 'line-color': HOT_EDGE, 'line-width': 2, 'line-dasharray': [2, 1.5] },
  });
  legendEntry({
    id: 'spots',
    rows: [
      { kind: 'fill', color: `${HOT}59`, outline: HOT_EDGE, label: t('hot_spot') },
      { kind: 'fill', color: `${COLD}59`, outline: COLD, label: t('cold_spot') },
      { kind: 'line', color: HOT_EDGE, width: 3.5, label: t('trend_new') },
      { kind: 'line', color: HOT_EDGE, width: 1.2, label: t('trend_persistent') },
      { kind: 'dash', color: HOT_EDGE, width: 2, label: t('trend_fading') },
    ],
  });
  // overdue cases clustered: a circle with the count where they crowd, a dot where one stands alone
  map.addSource('overdue', { type: 'geojson', data: { type: 'FeatureCollection', features: [] }, cluster: true, clusterRadius: 36, clusterMaxZoom: 18 });
  map.addLayer({
    id: 'overdue-clusters', type: 'circle', source: 'overdue', filter: ['has', 'point_count'],
    paint: {
      'circle-color': '#212529', 'circle-opacity': 0.85, 'circle-stroke-color': '#ffd43b', 'circle-stroke-width': 2,
      'circle-radius': ['interpolate', ['linear'], ['get', 'point_count'], 2, 10, 20, 16, 200, 26],
    },
  });
  map.addLayer({ id: 'overdue-points', type: 'circle', source: 'overdue', filter: ['!', ['has', 'point_count']], paint: { 'circle-color': '#212529', 'circle-radius': 4, 'circle-stroke-color': '#ffd43b', 'circle-stroke-width': 2 } });
  legendEntry({ id: 'overdue', rows: [{ kind: 'circle', color: '#212529', stroke: '#ffd43b', label: t('overdue_cluster') }] });
  // the counts on the clusters: page elements (the map has no font files to draw text with)
  const counts = new Map();
  const drawCounts = () => {
    const seen = new Set();
    for (const f of map.querySourceFeatures('overdue', { filter: ['has', 'point_count'] })) {
      const id = f.properties.cluster_id;
      if (seen.has(id)) continue;
      seen.add(id);
      if (!counts.has(id)) {
        const div = document.createElement('div');
        div.className = 'cluster-count';
        div.textContent = f.properties.point_count;
        counts.set(id, new maplibregl.Marker({ element: div }).setLngLat(f.geometry.coordinates).addTo(map));
      }
    }
    for (const [id, marker] of counts) if (!seen.has(id)) { marker.remove(); counts.delete(id); }
  };
  map.on('moveend', drawCounts);
  map.on('sourcedata', (e) => { if (e.sourceId === 'overdue' && e.isSourceLoaded) drawCounts(); });
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
    // hot and cold are classified on Gi*'s z (FDR): the permutation p-values, which the map
    // does not show, would cost seconds of compiling on a fresh server
    const spotsOnly = new URLSearchParams(spotsQuery);
    spotsOnly.set('permutations', '0');
    const [spots, overdue] = await Promise.allSettled([
      api(`/analysis/hotspots?${spotsOnly}`), api(`/analysis/holes/incidents?${spotsQuery}`),
    ]);
    if (mine !== generation) return;
    if (spots.status === 'fulfilled') {
      const s = spots.value;
      const sum = s.summary;
      // the heat shows the hot spots' own window: the first time, the one the server picked
      if (!el('since').value && !el('until').value) {
        const exact = tileUrl('incidents', new URLSearchParams({ datetime: `${sum.since}/${sum.until}`, ...(p.get('category') ? { category: p.get('category') } : {}) }).toString());
        map.getSource('incidents').setTiles([exact]);
        heatUrl = exact;
        window.gisGrid.heatParams = new URL(exact.replace(/[{}]/g, '')).search.slice(1);
        el('since').value = sum.since.slice(0, 10);
        el('until').value = sum.until.slice(0, 10);
      }
      el('windows').innerHTML = `${esc(tf('spots_window', { a: when(sum.since), b: when(sum.until) }))}<br>${esc(t('heat_window'))}`;
      map.getSource('spots').setData(s.spots);
      const rows = spotRows(s.spots.features).slice(0, 12);
      const trends = (g) => ['new', 'persistent', 'fading'].filter((k) => g[k]).map((k) => `${t(k)} ${g[k]}`).join(' · ');
      el('spots').innerHTML = `<p class="muted">${esc(tf('spot_summary', { n: sum.incidents, hot: sum.hot, cold: sum.cold, new: sum.new, persistent: sum.persistent, fading: sum.fading, pai: sum.pai }))}</p>
        ${rows.length ? `<table class="spot-rows">${rows.map((g) => `<tr class="${g.hot ? 'hot' : g.cold ? 'cold' : 'fading'}"><td class="nowrap"><span class="dot ${g.hot ? 'hot' : g.cold ? 'cold' : 'fading'}"></span><b>${g.incidents}</b></td>
        <td>${where(g.p)}<br><span class="muted">${g.cells} ${t(g.cells === 1 ? 'cell' : 'cells')}${trends(g) ? ` · ${esc(trends(g))}` : ''}</span></td>
        <td>${esc(g.p.staff_name || '')}<br><a href="tel:${esc(g.p.staff_phone || '')}">${esc(g.p.staff_phone || '')}</a></td></tr>`).join('')}</table>` : `<p class="muted">${t('no_spots')}</p>`}`;
    } else el('spots').innerHTML = `<p class="problem">${esc(spots.reason.message)}</p>`;
    if (overdue.status === 'fulfilled') {
      const o = overdue.value;
      map.getSource('overdue').setData(o.holes);
      el('overdue').innerHTML = `<p class="muted">${esc(tf('overdue_of_open', { a: o.summary.overdue, b: o.summary.open }))}</p>
        <table>${o.holes.features.slice(0, 15).map((f) => `<tr><td>${esc(label(CATEGORIES, f.properties.category))}<br><span class="muted">${esc(f.properties.id)}</span></td>
        <td class="nowrap">${esc(f.properties.overdue_hours)} ${t('hours')}</td><td>${where(f.properties)}<br>${esc(f.properties.staff_name)} ${esc(f.properties.staff_phone || '')}</td></tr>`).join('')}</table>`;
    } else el('overdue').innerHTML = `<p class="problem">${esc(overdue.reason.message)}</p>`;
    window.gisGrid.analysed = mine;
  };
  ['since', 'until', 'category'].forEach((id) => { el(id).onchange = () => { markWindow(); refresh(); }; });
  // the window buttons set both dates (ending at the last day shown, or today): heat and hot spots follow
  const markWindow = (days) => el('window').querySelectorAll('button').forEach((b) => b.classList.toggle('here', String(days) === b.dataset.days));
  el('window').querySelectorAll('button').forEach((b) => {
    b.onclick = () => {
      const end = el('until').value ? new Date(`${el('until').value}T00:00:00Z`) : new Date();
      const start = new Date(end.getTime() - (Number(b.dataset.days) - 1) * 86400000);
      el('until').value = end.toISOString().slice(0, 10);
      el('since').value = start.toISOString().slice(0, 10);
      markWindow(b.dataset.days);
      refresh();
    };
  });
  map.addSource('case', { type: 'geojson', data: { type: 'FeatureCollection', features: [] } });
  map.addLayer({ id: 'case-point', type: 'circle', source: 'case', paint: { 'circle-color': '#c92a2a', 'circle-radius': 8, 'circle-stroke-color': '#fff', 'circle-stroke-width': 2 } });
  legendEntry({ id: 'case', rows: [{ kind: 'circle', color: '#c92a2a', label: t('selected_case') }] });
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
  map.on('click', async (e) => {
    const g = gridAt(map, e.point, ['community', 'area', 'courtyard']);
    if (g) await showGrid(map, e.lngLat, g.code);
  });
  // everything at once: the analysis, the case list and the indicators
  refresh();
  await Promise.allSettled([cases(), indicatorTable('indicators')]);
}

run(supervisor);
