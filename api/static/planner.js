/* gis-grid map page: drag a grid's corners, every change checked at once, save as a version, undo. */
import {
  LEVELS, t, tf, tOr, lang, esc, el, api, tileUrl, addGrids, addStreets, gridAt, run, legendEntry,
} from './map.js';

/** A problem in the page's language: from the catalogue by its kind, the server's words otherwise. */
function problemText(p) {
  const key = `problem_${p.kind}`;
  if (tOr(key, null) === null) return p.message;
  const codes = p.codes || [];
  const area = p.area_m2 === null || p.area_m2 === undefined ? '' : Math.round(p.area_m2).toLocaleString(lang === 'zh' ? 'zh-CN' : 'en');
  return tf(key, { code: codes[0] || '', other: codes[codes.length - 1] || '', codes: codes.join(', '), area });
}

async function planner(map, me, layers) {
  // grid tiles named by the grids' generation: the browser keeps them until the grids change
  let version = window.gisGrid.gridGeneration;
  addGrids(map, LEVELS, version);
  addStreets(map, layers);
  const empty = { type: 'FeatureCollection', features: [] };
  map.addSource('edit', { type: 'geojson', data: empty });
  map.addSource('vertices', { type: 'geojson', data: empty });
  map.addSource('problems', { type: 'geojson', data: empty });
  map.addLayer({ id: 'edit-fill', type: 'fill', source: 'edit', paint: { 'fill-color': '#fab005', 'fill-opacity': 0.25 } });
  map.addLayer({ id: 'edit-line', type: 'line', source: 'edit', paint: { 'line-color': '#e67700', 'line-width': 2.5 } });
  map.addLayer({ id: 'problems-fill', type: 'fill', source: 'problems', paint: { 'fill-color': '#e03131', 'fill-opacity': 0.55 } });
  map.addLayer({ id: 'problems-line', type: 'line', source: 'problems', paint: { 'line-color': '#c92a2a', 'line-width': 2 } });
  map.addLayer({ id: 'vertices', type: 'circle', source: 'vertices', paint: { 'circle-radius': 6, 'circle-color': '#fff', 'circle-stroke-color': '#e67700', 'circle-stroke-width': 2 } });
  legendEntry({ id: 'edit', rows: [{ kind: 'fill', color: '#fab00540', outline: '#e67700', label: t('editing') }] });
  legendEntry({ id: 'vertices', rows: [{ kind: 'circle', color: '#fff', stroke: '#e67700', label: t('vertex') }] });
  legendEntry({ id: 'problems', rows: [{ kind: 'fill', color: '#e031318c', outline: '#c92a2a', label: t('problem_area') }] });
  el('panel').innerHTML = `<h2>${t('planner')}</h2>
    <label>${t('pick_level')} <select id="level">${['area', 'courtyard', 'building'].map((l) => `<option value="${l}">${t(l)}</option>`).join('')}</select></label>
    <label><input type="checkbox" id="take"> ${t('take')}</label>
    <p class="muted">${t('edit_hint')}</p>
    <div id="editing"></div><div id="check"></div>
    <button class="action" id="save" disabled>${t('save')}</button><button class="action" id="cancel" disabled>${t('cancel')}</button>
    <div id="result"></div>
    <h3>${t('revisions')}</h3><button class="action" id="undo">${t('undo')}</button><div id="log"></div>`;
  const edit = { code: null, version: null, ring: null, problems: [], ok: false, checks: 0 };
  window.gisGrid.edit = edit;
  let community = null;
  const draw = () => {
    const data = edit.ring ? { type: 'Feature', properties: {}, geometry: { type: 'Polygon', coordinates: [edit.ring] } } : empty;
    map.getSource('edit').setData(data);
    map.getSource('vertices').setData({
      type: 'FeatureCollection',
      features: (edit.ring || []).slice(0, -1).map((p, i) => ({ type: 'Feature', properties: { i }, geometry: { type: 'Point', coordinates: p } })),
    });
  };
  const showLog = async () => {
    if (!community) return;
    const log = (await api(`/communities/${community}/revisions`)).revisions || [];
    latest = log.length ? log[log.length - 1].id : null; // what this planner sees as the latest
    el('log').innerHTML = `<table>${log.slice(-8).reverse().map((r) => `<tr><td>${r.id}</td><td>${esc(tOr(`op_${r.operation}`, r.operation))}</td><td>${esc(r.summary)}</td><td class="muted">${esc(r.author)}</td></tr>`).join('')}</table>`;
  };
  let latest = null;
  let timer = null;
  const check = () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      const body = { geometry: { type: 'Polygon', coordinates: [edit.ring] }, version: edit.version, take: el('take').checked };
      let r;
      try {
        r = await api(`/grids/${edit.code}/outline/check`, { method: 'POST', body: JSON.stringify(body) });
      } catch (err) {
        r = { ok: false, problems: [{ kind: 'error', message: err.message, geometry: null }] };
      }
      edit.problems = r.problems;
      edit.ok = r.ok;
      edit.checks += 1;
      map.getSource('problems').setData({
        type: 'FeatureCollection',
        features: r.problems.filter((p) => p.geometry).map((p) => ({ type: 'Feature', properties: { kind: p.kind }, geometry: p.geometry })),
      });
      el('check').innerHTML = r.ok ? `<p class="ok">${t('check_ok')}</p>`
        : r.problems.map((p) => `<p class="problem" data-kind="${esc(p.kind)}">⚠ ${esc(problemText(p))}</p>`).join('');
      el('save').disabled = !r.ok;
    }, 250);
  };
  const begin = async (code) => {
    const g = await api(`/grids/${code}`);
    const geom = g.grid.geometry;
    const polys = geom.type === 'Polygon' ? [geom.coordinates] : geom.coordinates;
    if (polys.length !== 1) { el('editing').innerHTML = `<p class="problem">${t('not_editable')}</p>`; return; }
    community = code.slice(0, 12);
    Object.assign(edit, { code, version: g.grid.properties.version, ring: polys[0][0].map((p) => [p[0], p[1]]), problems: [], ok: false });
    el('editing').innerHTML = `<p><b>${esc(g.grid.properties.name)}</b> ${esc(code)} · ${t('version')} ${edit.version}</p>`;
    el('check').innerHTML = '';
    el('result').innerHTML = '';
    el('save').disabled = true;
    el('cancel').disabled = false;
    map.getSource('problems').setData(empty);
    draw();
    showLog();
  };
  edit.setRing = (ring) => { edit.ring = ring; draw(); check(); };
  let dragging = null;
  map.on('mousedown', 'vertices', (e) => {
    e.preventDefault();
    dragging = e.features[0].properties.i;
    map.dragPan.disable();
  });
  map.on('mousemove', (e) => {
    if (dragging === null) return;
    const p = [e.lngLat.lng, e.lngLat.lat];
    edit.ring[dragging] = p;
    if (dragging === 0) edit.ring[edit.ring.length - 1] = p;
    draw();
  });
  map.on('mouseup', () => {
    if (dragging === null) return;
    dragging = null;
    map.dragPan.enable();
    check();
  });
  map.on('click', async (e) => {
    if (edit.code && map.queryRenderedFeatures(e.point, { layers: ['vertices'] }).length) return;
    if (edit.code) return;
    const level = el('level').value;
    const g = gridAt(map, e.point, [level]);
    if (g) await begin(g.code);
  });
  el('take').onchange = () => { if (edit.code) check(); };
  el('cancel').onclick = () => {
    Object.assign(edit, { code: null, ring: null, problems: [], ok: false });
    draw();
    map.getSource('problems').setData(empty);
    el('editing').innerHTML = ''; el('check').innerHTML = '';
    el('save').disabled = true; el('cancel').disabled = true;
  };
  const reloadTiles = async () => {
    version = (await api('/collections')).gridGeneration;
    window.gisGrid.gridGeneration = version;
    for (const level of LEVELS) map.getSource(level).setTiles([tileUrl(level, `v=${version}`)]);
  };
  el('save').onclick = async () => {
    if (!edit.ok) return;
    el('save').disabled = true;
    try {
      const r = await api(`/grids/${edit.code}/outline`, {
        method: 'PUT',
        body: JSON.stringify({ geometry: { type: 'Polygon', coordinates: [edit.ring] }, version: edit.version, take: el('take').checked }),
      });
      el('result').innerHTML = `<p class="ok">${t('saved')} ${r.revision}: ${esc([...r.updated, ...r.inserted].join(', '))}</p>`;
      const code = edit.code;
      await reloadTiles();
      await begin(code);
    } catch (err) {
      el('result').innerHTML = `<p class="problem">${err.status === 409 ? `${t('stale')}: ` : ''}${esc(err.message)}</p>`;
    }
  };
  el('undo').onclick = async () => {
    if (!community) return;
    try {
      if (latest === null) await showLog();
      // names the revision it undoes: another planner's newer change is refused, not reverted
      const r = await api(`/communities/${community}/undo`, { method: 'POST', body: JSON.stringify({ revision: latest }) });
      el('result').innerHTML = `<p class="ok">${esc(tOr(`op_${r.operation}`, r.operation))} → ${t('saved')} ${r.revision}</p>`;
      await reloadTiles();
      if (edit.code) await begin(edit.code);
      showLog();
    } catch (err) {
      el('result').innerHTML = `<p class="problem">${err.status === 409 ? `${t('stale')}: ` : ''}${esc(err.message)}</p>`;
      showLog();
    }
  };
  window.gisGrid.begin = begin;
}

run(planner);
