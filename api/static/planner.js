/* gis-grid planner page: split, merge, move and redraw on the map with the workload balance live
 * beside it; a rebalancing proposal beside the current grids; the revision history with diffs.
 *
 * Every tool previews first: the page sends the edit to /planner/preview, which runs it as a dry
 * run (checked by the store exactly as a save, then rolled back) and answers with the new grids and
 * the figures of the grids that changed; the panel recomputes the deviations of the others from the
 * new target. Saving sends the same edit to the edit routes with the versions the planner saw, so a
 * change someone else saved first is refused with their name.
 */
import {
  LEVELS, t, tf, tOr, lang, esc, el, api, tileUrl, addGrids, addStreets, gridAt, run, legendEntry, label, ROLES, when,
  setVisible,
} from './map.js';

const EMPTY = { type: 'FeatureCollection', features: [] };
const TOOLS = ['split', 'merge', 'move', 'redraw', 'rebalance'];
// workload weights a planner chooses between (households; or households and recent incidents)
const WEIGHTS = { households: 'households=1', incidents: 'households=1,incidents=0.2', heavy: 'households=1,incidents=1' };
// deviation from the target: blue under, red over, white on target
const DEVIATION_COLOURS = ['interpolate', ['linear'], ['coalesce', ['get', 'deviation'], 0],
  -0.3, '#2166ac', -0.1, '#92c5de', 0, '#f7f7f7', 0.1, '#f4a582', 0.3, '#b2182b'];

/** A UTC stamp of the revision log in this browser's time, as people read it. */
const localTime = (iso) => {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return when(iso);
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
};
const pct = (x) => (x === null || x === undefined ? '—' : `${(100 * x).toFixed(1)}%`);
const signed = (x) => (x === null || x === undefined ? '—' : `${x > 0 ? '+' : ''}${(100 * x).toFixed(1)}%`);
const num = (x) => (x === null || x === undefined ? '—' : Number(x).toLocaleString(lang === 'zh' ? 'zh-CN' : 'en'));

/** A problem in the page's language: from the catalogue by its kind, the server's words otherwise. */
function problemText(p) {
  const key = `problem_${p.kind}`;
  if (tOr(key, null) === null) return p.message;
  const codes = p.codes || [];
  const area = p.area_m2 === null || p.area_m2 === undefined ? '' : Math.round(p.area_m2).toLocaleString(lang === 'zh' ? 'zh-CN' : 'en');
  return tf(key, { code: codes[0] || '', other: codes[codes.length - 1] || '', codes: codes.join(', '), area });
}

function ringsOf(geometry) {
  return geometry.type === 'Polygon' ? [geometry.coordinates] : geometry.coordinates;
}

async function planner(map, me, layers) {
  let version = window.gisGrid.gridGeneration;
  addGrids(map, LEVELS, version);
  addStreets(map, layers);
  for (const id of ['balance', 'preview', 'problems', 'sketch', 'vertices', 'moved', 'before', 'picked']) {
    map.addSource(id, { type: 'geojson', data: EMPTY });
  }
  map.addLayer({ id: 'balance-fill', type: 'fill', source: 'balance', paint: { 'fill-color': DEVIATION_COLOURS, 'fill-opacity': 0.55 } });
  map.addLayer({ id: 'balance-line', type: 'line', source: 'balance', paint: { 'line-color': '#37506a', 'line-width': 1.6 } });
  map.addLayer({ id: 'picked-line', type: 'line', source: 'picked', paint: { 'line-color': '#1c7ed6', 'line-width': 4 } });
  map.addLayer({ id: 'moved-fill', type: 'fill', source: 'moved', paint: { 'fill-color': '#f08c00', 'fill-opacity': 0.8 } });
  map.addLayer({ id: 'before-line', type: 'line', source: 'before', paint: { 'line-color': '#495057', 'line-width': 2, 'line-dasharray': [1, 1.5] } });
  map.addLayer({ id: 'preview-fill', type: 'fill', source: 'preview', paint: { 'fill-color': DEVIATION_COLOURS, 'fill-opacity': 0.75 } });
  map.addLayer({ id: 'preview-line', type: 'line', source: 'preview', paint: { 'line-color': '#5f3dc4', 'line-width': 3, 'line-dasharray': [2, 1.5] } });
  map.addLayer({ id: 'problems-fill', type: 'fill', source: 'problems', filter: ['==', ['geometry-type'], 'Polygon'], paint: { 'fill-color': '#e03131', 'fill-opacity': 0.55 } });
  map.addLayer({ id: 'problems-line', type: 'line', source: 'problems', paint: { 'line-color': '#c92a2a', 'line-width': 2.5 } });
  map.addLayer({ id: 'sketch-line', type: 'line', source: 'sketch', filter: ['==', ['geometry-type'], 'LineString'], paint: { 'line-color': '#5f3dc4', 'line-width': 2.5 } });
  map.addLayer({ id: 'sketch-points', type: 'circle', source: 'sketch', filter: ['==', ['geometry-type'], 'Point'], paint: { 'circle-radius': 4, 'circle-color': '#5f3dc4' } });
  map.addLayer({ id: 'vertices', type: 'circle', source: 'vertices', paint: { 'circle-radius': 6, 'circle-color': '#fff', 'circle-stroke-color': '#e67700', 'circle-stroke-width': 2 } });
  legendEntry({ id: 'balance', rows: [{ kind: 'gradient', colors: ['#2166ac', '#92c5de', '#f7f7f7', '#f4a582', '#b2182b'], label: t('deviation_scale') }] });
  // the layers an edit draws: shown (with their legend) only while they hold something
  legendEntry({ id: 'preview', rows: [{ kind: 'dash', color: '#5f3dc4', width: 3, label: t('preview_grids') }] });
  legendEntry({ id: 'picked', rows: [{ kind: 'line', color: '#1c7ed6', width: 4, label: t('picked') }] });
  legendEntry({ id: 'sketch', rows: [{ kind: 'line', color: '#5f3dc4', width: 2.5, label: t('split_line') }] });
  legendEntry({ id: 'moved', rows: [{ kind: 'fill', color: '#f08c00', label: t('moved_buildings') }] });
  legendEntry({ id: 'before', rows: [{ kind: 'dash', color: '#495057', width: 2, label: t('before_revision') }] });
  legendEntry({ id: 'problems', rows: [{ kind: 'fill', color: '#e031318c', outline: '#c92a2a', label: t('problem_area') }] });
  legendEntry({ id: 'vertices', rows: [{ kind: 'circle', color: '#fff', stroke: '#e67700', label: t('vertex') }] });
  const TRANSIENT = ['preview', 'picked', 'sketch', 'moved', 'before', 'problems', 'vertices'];
  for (const layer of map.getStyle().layers) {
    if (TRANSIENT.includes(layer.id.split('-')[0])) map.setLayoutProperty(layer.id, 'visibility', 'none');
  }
  const setData = (id, data) => {
    map.getSource(id).setData(data);
    if (TRANSIENT.includes(id)) setVisible(map, id, Boolean(data.features && data.features.length));
  };

  const communities = (await api('/collections/community/items?limit=500')).features.map((f) => f.properties);
  el('panel').innerHTML = `<h2>${t('planner')}</h2>
    <div class="row"><label>${t('community')} <select id="community">${communities.map((c) => `<option value="${esc(c.code)}">${esc(c.name)}</option>`).join('')}</select></label>
    <label>${t('pick_level')} <select id="level">${['area', 'courtyard'].map((l) => `<option value="${l}">${t(l)}</option>`).join('')}</select></label>
    <label>${t('workload_is')} <select id="weights">${Object.keys(WEIGHTS).map((k) => `<option value="${k}">${t(`weights_${k}`)}</option>`).join('')}</select></label></div>
    <div class="tools" role="group" aria-label="${esc(t('tools'))}">${TOOLS.map((k) => `<button data-tool="${k}" title="${esc(t(`hint_${k}`))}">${t(`tool_${k}`)}</button>`).join('')}</div>
    <p class="muted" id="hint"></p>
    <div id="tool-options"></div>
    <div id="check"></div>
    <div id="staff-choice"></div>
    <button class="action" id="save" disabled>${t('save')}</button><button class="action" id="cancel" disabled>${t('cancel')}</button>
    <div id="result"></div>
    <h3>${t('balance')}</h3><div id="figures"></div><div id="balance"></div>
    <h3>${t('revisions')}</h3><button class="action" id="undo">${t('undo')}</button>
    <label>${t('boundaries_on')} <input type="date" id="as-of"> <button class="link" id="as-of-clear">${t('today')}</button></label>
    <div id="log"></div>`;

  // the page's state, visible to tests as gisGrid.planner (and gisGrid.edit for the redraw)
  const S = {
    community: communities.length ? communities[0].code : null,
    level: 'area',
    weights: WEIGHTS.households,
    tool: null,
    panel: null, // /planner/balance
    preview: null, // the last /planner/preview answer
    body: null, // the edit previewed (what Save sends)
    picked: [], // codes picked on the map (merge: the grids; move: the atoms; split/redraw: the grid)
    target: null, // move: the grid taking the atoms
    line: [], // split: the points drawn
    moved: 0, // households moved by the revisions saved on this page
    previews: 0,
    proposal: null,
    latest: null,
  };
  const edit = { code: null, version: null, ring: null, problems: [], ok: false, checks: 0 };
  window.gisGrid.planner = S;
  window.gisGrid.edit = edit;

  const versionOf = (code) => {
    const row = (S.panel ? S.panel.rows : []).find((r) => r.code === code);
    return row ? row.version : undefined;
  };
  const rowsByCode = () => new Map((S.panel ? S.panel.rows : []).map((r) => [r.code, r]));

  // -- the balance panel: the level's grids, and a preview's figures in place ----------------------
  const drawBalance = () => {
    if (!S.panel) return;
    const p = S.preview && S.preview.ok ? S.preview : null;
    const changed = new Map(p ? p.rows.map((r) => [r.code, r]) : []);
    const removed = new Set(p ? p.removed : []);
    const groups = { ...S.panel.groups, ...(p ? p.groups : {}) };
    const rows = [];
    for (const r of S.panel.rows) {
      const g = groups[r.parent];
      if (changed.has(r.code)) rows.push({ ...changed.get(r.code), was: r, state: 'changed' });
      else if (removed.has(r.code)) rows.push({ ...r, state: 'removed' });
      else {
        // the others keep their figures; only the target (and so their deviation) moves
        const deviation = g && g.target > 0 ? (r.workload - g.target) / g.target : 0;
        rows.push({ ...r, deviation, state: p && g !== S.panel.groups[r.parent] ? 'recomputed' : '' });
      }
    }
    for (const [code, r] of changed) if (!rowsByCode().has(code)) rows.push({ ...r, state: 'added' });
    rows.sort((a, b) => (a.code < b.code ? -1 : 1));
    // the group shown: the parent being edited, else each parent
    const shownParents = p ? Object.keys(p.groups) : Object.keys(groups);
    el('figures').innerHTML = shownParents.map((parent) => {
      const g = groups[parent];
      const before = S.panel.groups[parent];
      const name = parent === S.community || !g.name ? '' : `${esc(g.name)} · `;
      return g ? `<p class="figures" data-parent="${esc(parent)}">${name}${t('max_deviation')} <b id="max-dev-${esc(parent)}" class="max-dev">${pct(g.max_deviation)}</b>
        ${p && before ? `<span class="muted">(${t('now')} ${pct(before.max_deviation)})</span>` : ''}
        · ${t('grids_n')} <b class="k">${g.k}</b> · ${t('target')} <b class="target">${num(g.target)}</b>
        · ${t('pp_mean')} ${g.polsby_popper_mean} ${g.contiguous ? '' : `· <span class="problem">${t('not_contiguous')}</span>`}</p>` : '';
    }).join('') + `<p class="figures">${t('households_moved')}: ${t('this_edit')} <b id="moved-now">${num(p ? p.households_moved : 0)}</b>
      · ${t('this_session')} <b id="moved-session">${num(S.moved)}</b></p>`;
    const visible = p ? rows.filter((r) => shownParents.includes(r.parent || r.code.slice(0, r.code.length - 3))) : rows;
    // the workload column only when it counts more than households (else it repeats them)
    const wl = S.weights !== WEIGHTS.households;
    el('balance').innerHTML = `<table class="balance"><tr><th>${t('grid')}</th><th>${t('households')}</th>${wl ? `<th>${t('workload')}</th>` : ''}
      <th>${t('deviation')}</th><th title="Polsby–Popper">${t('compactness')}</th><th>${t('staff')}</th></tr>
      ${visible.map((r) => `<tr data-code="${esc(r.code)}" class="${r.state || ''} ${Math.abs(r.deviation) > 0.1 ? 'off' : ''}">
        <td>${esc(r.name)}<br><span class="muted">${esc(r.code.slice(-3))}</span></td>
        <td class="hh">${num(r.households)}${r.was && r.was.households !== r.households ? `<br><span class="muted">${num(r.was.households)}</span>` : ''}</td>
        ${wl ? `<td class="wl">${num(r.workload)}</td>` : ''}
        <td class="dev">${r.state === 'removed' ? '—' : signed(r.deviation)}</td>
        <td>${r.polsby_popper}${r.contiguous ? '' : ' <span class="problem" title="' + esc(t('not_contiguous')) + '">⚠</span>'}</td>
        <td>${(r.staff || []).map((s) => esc(s.name)).join('、') || `<span class="problem">${t('nobody')}</span>`}</td></tr>`).join('')}</table>`;
    // the map: each grid coloured by its deviation (the preview's grids dashed over it)
    const dev = new Map(rows.map((r) => [r.code, r.deviation]));
    const features = S.panel.grids.features.filter((f) => !removed.has(f.properties.code))
      .map((f) => ({ ...f, properties: { ...f.properties, deviation: dev.get(f.properties.code) ?? f.properties.deviation } }));
    setData('balance', { type: 'FeatureCollection', features: p ? features.filter((f) => !changed.has(f.properties.code)) : features });
    setData('preview', p ? p.grids : EMPTY);
  };

  const loadPanel = async () => {
    if (!S.community) return;
    S.panel = await api(`/planner/balance?community=${S.community}&level=${S.level}&weights=${encodeURIComponent(S.weights)}`);
    drawBalance();
  };

  const showLog = async () => {
    if (!S.community) return;
    const log = (await api(`/communities/${S.community}/revisions`)).revisions || [];
    S.latest = log.length ? log[log.length - 1].id : null;
    el('log').innerHTML = `<table class="log">${log.slice(-10).reverse().map((r) => `<tr data-revision="${r.id}">
      <td>${r.id}</td><td>${esc(tOr(`op_${r.operation}`, r.operation))}<br><span class="muted">${esc(r.author || '—')} · ${esc(localTime(r.created_at))}</span></td>
      <td><button class="link" data-diff="${r.id}">${t('show_diff')}</button>${r.id !== S.latest ? `<button class="link" data-restore="${r.id}">${t('restore_to')}</button>` : ''}</td></tr>`).join('')}</table>
      <div id="diff"></div>`;
    el('log').querySelectorAll('[data-diff]').forEach((b) => { b.onclick = () => showDiff(Number(b.dataset.diff)); });
    el('log').querySelectorAll('[data-restore]').forEach((b) => { b.onclick = () => restoreTo(Number(b.dataset.restore)); });
  };

  // -- picking on the map ---------------------------------------------------------------------------
  const drawPicked = () => {
    const codes = new Set([...S.picked, ...(S.target ? [S.target] : [])]);
    const fromPanel = S.panel ? S.panel.grids.features.filter((f) => codes.has(f.properties.code)) : [];
    const atoms = S.atomShapes ? [...S.atomShapes.values()] : [];
    setData('picked', { type: 'FeatureCollection', features: [...fromPanel, ...atoms] });
    setData('sketch', {
      type: 'FeatureCollection',
      features: [
        ...(S.line.length > 1 ? [{ type: 'Feature', properties: {}, geometry: { type: 'LineString', coordinates: S.line } }] : []),
        ...S.line.map((p) => ({ type: 'Feature', properties: {}, geometry: { type: 'Point', coordinates: p } })),
      ],
    });
    setData('vertices', {
      type: 'FeatureCollection',
      features: (edit.ring || []).slice(0, -1).map((p, i) => ({ type: 'Feature', properties: { i }, geometry: { type: 'Point', coordinates: p } })),
    });
  };

  const clearEdit = () => {
    Object.assign(S, { preview: null, body: null, picked: [], target: null, line: [], atomShapes: new Map() });
    Object.assign(edit, { code: null, version: null, ring: null, problems: [], ok: false });
    for (const id of ['problems', 'moved', 'before']) map.getSource(id).setData(EMPTY);
    el('check').innerHTML = ''; el('staff-choice').innerHTML = '';
    el('save').disabled = true; el('cancel').disabled = true;
    drawPicked(); drawBalance();
  };

  const setTool = (tool) => {
    clearEdit();
    S.tool = tool;
    el('panel').querySelectorAll('[data-tool]').forEach((b) => b.classList.toggle('here', b.dataset.tool === tool));
    el('hint').textContent = tool ? t(`hint_${tool}`) : t('hint_pick_tool');
    el('tool-options').innerHTML = {
      split: `<button class="action" id="clear-line">${t('clear_line')}</button>`,
      redraw: `<label><input type="checkbox" id="take"> ${t('take')}</label>`,
      rebalance: `<label>${t('k_grids')} <input id="k" type="number" min="1" max="200" value="${S.panel ? Object.values(S.panel.groups)[0].k : 8}"></label>
        <label>${t('tolerance')} <input id="tolerance" type="number" min="0" max="50" step="0.5" value="5"> %</label>
        <button class="action" id="propose">${t('propose')}</button><div id="proposal"></div>`,
    }[tool] || '';
    if (tool === 'split') el('clear-line').onclick = () => { S.line = []; S.preview = null; drawPicked(); drawBalance(); el('check').innerHTML = ''; el('save').disabled = true; };
    if (tool === 'redraw') el('take').onchange = () => { if (edit.code) preview(); };
    if (tool === 'rebalance') el('propose').onclick = propose;
    map.doubleClickZoom[tool === 'split' ? 'disable' : 'enable']();
    // a proposal is accepted or discarded in its own box: the edit buttons stand aside
    for (const id of ['save', 'cancel']) el(id).hidden = tool === 'rebalance';
  };

  // -- previews -------------------------------------------------------------------------------------
  let asked = 0;
  const preview = async () => {
    const body = editBody();
    if (!body) return;
    const mine = ++asked;
    el('save').disabled = true;
    el('cancel').disabled = false;
    el('check').innerHTML = `<p class="muted">${t('checking')}</p>`;
    let r;
    try {
      r = await api('/planner/preview', { method: 'POST', body: JSON.stringify({ ...body, weights: S.weights }) });
    } catch (err) {
      r = { ok: false, problems: [{ kind: 'error', message: err.message, codes: [], geometry: null }] };
    }
    if (mine !== asked) return; // a newer edit is being previewed
    S.preview = r; S.body = body; S.previews += 1;
    edit.problems = r.problems; edit.ok = r.ok; edit.checks += 1;
    setData('problems', {
      type: 'FeatureCollection',
      features: r.problems.filter((p) => p.geometry).map((p) => ({ type: 'Feature', properties: { kind: p.kind }, geometry: p.geometry })),
    });
    // grids a refusal names (a line through courtyards) are outlined red too
    if (!r.ok) {
      const named = new Set(r.problems.flatMap((p) => p.codes || []));
      const shapes = map.queryRenderedFeatures({ layers: ['courtyard-fill', 'building-fill', 'balance-fill'] })
        .filter((f) => named.has(f.properties.code) && !r.problems.some((p) => p.geometry));
      if (shapes.length) setData('problems', { type: 'FeatureCollection', features: shapes.map((f) => ({ type: 'Feature', properties: {}, geometry: f.geometry })) });
    }
    setData('moved', EMPTY);
    el('check').innerHTML = r.ok
      ? `<p class="ok">${t('check_ok')} <span class="muted">(${r.ms} ms)</span></p>`
      : r.problems.map((p) => `<p class="problem" data-kind="${esc(p.kind)}">⚠ ${esc(problemText(p))}</p>`).join('')
        + (r.stale ? `<button class="action" id="reload">${t('reload')}</button>` : '');
    if (r.stale) el('reload').onclick = reload;
    el('save').disabled = !r.ok;
    staffChoice();
    drawBalance();
  };

  /** What the tool in hand would send (null: not enough picked yet). */
  const editBody = () => {
    const v = (codes) => Object.fromEntries(codes.map((c) => [c, versionOf(c) ?? S.atomVersions.get(c)]));
    if (S.tool === 'split' && S.picked.length === 1 && S.line.length >= 2) {
      return { operation: 'split', code: S.picked[0], line: { type: 'LineString', coordinates: S.line }, version: versionOf(S.picked[0]) };
    }
    if (S.tool === 'merge' && S.picked.length >= 2) return { operation: 'merge', codes: [...S.picked], versions: v(S.picked) };
    if (S.tool === 'move' && S.target && S.picked.length) {
      return { operation: 'move', atoms: [...S.picked], to: S.target, versions: v([...S.picked, S.target]) };
    }
    if (S.tool === 'redraw' && edit.code) {
      return { operation: 'redraw', code: edit.code, geometry: { type: 'Polygon', coordinates: [edit.ring] }, version: edit.version, take: el('take').checked };
    }
    return null;
  };

  /** A split asks who takes each new grid; a merge asks who keeps the merged one. */
  const staffChoice = async () => {
    const r = S.preview;
    el('staff-choice').innerHTML = '';
    if (!r || !r.ok) return;
    if (S.body.operation === 'split' && r.unstaffed.length) {
      const people = await staffOf();
      el('staff-choice').innerHTML = r.unstaffed.map((code) => `<label>${tf('who_takes', { code: code.slice(-3) })}
        <select data-assign="${esc(code)}"><option value="">${t('nobody_yet')}</option>
        ${people.map((p) => `<option value="${esc(p.staff_id)}">${esc(p.name)} · ${esc(label(ROLES, p.role))}</option>`).join('')}</select></label>`).join('');
    }
    if (S.body.operation === 'merge') {
      const kept = r.rows[0];
      el('staff-choice').innerHTML = `<p>${t('who_keeps')}</p>${(kept.staff || []).map((s) => `<label><input type="checkbox" data-keep="${esc(s.staff_id)}" checked> ${esc(s.name)}</label>`).join('')}`;
    }
  };
  const staffOf = async () => (S.panel ? S.panel.people : []);

  // -- the map's clicks and drags -------------------------------------------------------------------
  S.atomShapes = new Map();
  S.atomVersions = new Map();
  map.on('click', async (e) => {
    if (!S.tool || S.tool === 'rebalance') return;
    if (S.tool === 'redraw' && edit.code) return;
    const grid = map.queryRenderedFeatures(e.point, { layers: ['balance-fill'] })[0];
    const code = grid ? grid.properties.code : null;
    if (S.tool === 'split') {
      if (!S.picked.length) { if (code) { S.picked = [code]; drawPicked(); el('hint').textContent = t('hint_split_line'); } return; }
      S.line.push([e.lngLat.lng, e.lngLat.lat]);
      drawPicked();
      if (S.line.length >= 2) preview();
      return;
    }
    if (S.tool === 'merge') {
      if (!code) return;
      S.picked = S.picked.includes(code) ? S.picked.filter((c) => c !== code) : [...S.picked, code];
      drawPicked();
      if (S.picked.length >= 2) preview(); else { S.preview = null; drawBalance(); el('check').innerHTML = ''; }
      return;
    }
    if (S.tool === 'move') {
      if (!S.target) { if (code) { S.target = code; drawPicked(); el('hint').textContent = t('hint_move_atoms'); } return; }
      const atomLevel = S.level === 'area' ? 'courtyard' : 'building';
      const atom = gridAt(map, e.point, [atomLevel]);
      if (!atom || String(atom.code).startsWith(S.target)) return;
      const a = String(atom.code);
      if (S.picked.includes(a)) { S.picked = S.picked.filter((c) => c !== a); S.atomShapes.delete(a); }
      else {
        S.picked = [...S.picked, a];
        const found = await api(`/grids/${a}`);
        S.atomShapes.set(a, found.grid);
        S.atomVersions.set(a, found.grid.properties.version);
      }
      drawPicked();
      if (S.picked.length) preview();
      return;
    }
    if (S.tool === 'redraw' && code) begin(code);
  });

  const begin = async (code) => {
    const g = await api(`/grids/${code}`);
    const polys = ringsOf(g.grid.geometry);
    if (polys.length !== 1) { el('check').innerHTML = `<p class="problem">${t('not_editable')}</p>`; return; }
    Object.assign(edit, { code, version: g.grid.properties.version, ring: polys[0][0].map((p) => [p[0], p[1]]), problems: [], ok: false });
    S.picked = [code];
    el('hint').textContent = t('edit_hint');
    el('cancel').disabled = false;
    drawPicked();
  };
  edit.setRing = (ring) => { edit.ring = ring; drawPicked(); preview(); };
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
    drawPicked();
  });
  map.on('mouseup', () => {
    if (dragging === null) return;
    dragging = null;
    map.dragPan.enable();
    preview();
  });

  // -- saving, undoing, reloading -------------------------------------------------------------------
  const reloadTiles = async () => {
    version = (await api('/collections')).gridGeneration;
    window.gisGrid.gridGeneration = version;
    for (const level of LEVELS) map.getSource(level).setTiles([tileUrl(level, `v=${version}`)]);
  };
  const reload = async () => {
    await reloadTiles();
    const tool = S.tool;
    await loadPanel();
    setTool(tool);
    await showLog();
  };
  const refused = (err) => {
    el('result').innerHTML = `<p class="problem" data-status="${err.status || ''}">${err.status === 409 ? `${t('stale')}: ` : ''}${esc(err.message)}</p>`
      + (err.status === 409 ? `<button class="action" id="reload-after">${t('reload')}</button>` : '');
    if (err.status === 409) el('reload-after').onclick = reload;
  };
  el('save').onclick = async () => {
    const b = S.body;
    if (!S.preview || !S.preview.ok || !b) return;
    el('save').disabled = true;
    try {
      let r;
      if (b.operation === 'split') {
        const assign = {};
        el('staff-choice').querySelectorAll('[data-assign]').forEach((s) => { if (s.value) assign[s.dataset.assign] = [s.value]; });
        r = await api(`/grids/${b.code}/split`, { method: 'POST', body: JSON.stringify({ line: b.line, version: b.version, assign: Object.keys(assign).length ? assign : null }) });
      } else if (b.operation === 'merge') {
        const keep = [...el('staff-choice').querySelectorAll('[data-keep]')].filter((c) => c.checked).map((c) => c.dataset.keep);
        r = await api('/grids/merge', { method: 'POST', body: JSON.stringify({ codes: b.codes, versions: b.versions, keep_staff: keep }) });
      } else if (b.operation === 'move') {
        r = await api('/grids/move', { method: 'POST', body: JSON.stringify({ atoms: b.atoms, to: b.to, versions: b.versions }) });
      } else {
        r = await api(`/grids/${b.code}/outline`, { method: 'PUT', body: JSON.stringify({ geometry: b.geometry, version: b.version, take: b.take }) });
      }
      S.moved += S.preview.households_moved || 0;
      el('result').innerHTML = `<p class="ok" data-revision="${r.revision}">${t('saved')} ${r.revision} · ${esc(tOr(`op_${r.operation}`, r.operation))}</p>`;
      await reload();
      window.gisGrid.saved = r.revision;
    } catch (err) {
      refused(err);
      el('save').disabled = false;
    }
  };
  el('cancel').onclick = () => { clearEdit(); setTool(S.tool); };
  el('undo').onclick = async () => {
    if (!S.community) return;
    try {
      if (S.latest === null) await showLog();
      // names the revision it undoes: another planner's newer change is refused, not reverted
      const r = await api(`/communities/${S.community}/undo`, { method: 'POST', body: JSON.stringify({ revision: S.latest }) });
      el('result').innerHTML = `<p class="ok" data-revision="${r.revision}">${t('op_undo')} → ${t('saved')} ${r.revision}</p>`;
      await reload();
      window.gisGrid.saved = r.revision;
    } catch (err) {
      refused(err);
      showLog();
    }
  };
  const restoreTo = async (revision) => {
    if (!window.confirm(tf('confirm_restore', { revision }))) return;
    try {
      const r = await api(`/communities/${S.community}/restore`, { method: 'POST', body: JSON.stringify({ revision }) });
      el('result').innerHTML = `<p class="ok" data-revision="${r.revision}">${t('op_restore')} ${revision} → ${t('saved')} ${r.revision}</p>`;
      await reload();
    } catch (err) { refused(err); }
  };
  const showDiff = async (revision) => {
    const d = await api(`/communities/${S.community}/revisions/${revision}/changes`);
    setData('before', d.before);
    setData('preview', d.after);
    setData('moved', d.buildings);
    const counts = d.grids.reduce((acc, g) => { acc[g.change] = (acc[g.change] || 0) + 1; return acc; }, {});
    el('diff').innerHTML = `<div class="here-card" data-diff="${revision}"><b>${t('revision')} ${revision}</b>:
      ${Object.entries(counts).map(([k, n]) => `${tOr(`change_${k}`, k)} ${n}`).join(' · ') || t('nothing_changed')}
      · ${t('households_moved')} <b>${num(d.households_moved)}</b> · ${t('staff')} ${d.staff.length}</div>`;
    const all = [...d.before.features, ...d.after.features];
    if (all.length) fitTo(all);
  };
  const fitTo = (features) => {
    let b = null;
    for (const f of features) for (const poly of ringsOf(f.geometry)) for (const [x, y] of poly[0]) {
      b = b ? [Math.min(b[0], x), Math.min(b[1], y), Math.max(b[2], x), Math.max(b[3], y)] : [x, y, x, y];
    }
    if (b) map.fitBounds([[b[0], b[1]], [b[2], b[3]]], { padding: 60, maxZoom: 17.5, duration: 0 });
  };

  // -- rebalancing: the proposal beside the current grids ---------------------------------------------
  const propose = async () => {
    const parent = S.level === 'area' ? S.community : (S.picked[0] || S.panel.rows[0].code).slice(0, 15);
    el('proposal').innerHTML = `<p class="muted">${t('proposing')}</p>`;
    let m;
    try {
      m = await api('/rebalance', { method: 'POST', body: JSON.stringify({ parent, k: Number(el('k').value), tolerance: Number(el('tolerance').value) / 100, weights: S.weights }) });
    } catch (err) { el('proposal').innerHTML = `<p class="problem">${esc(err.message)}</p>`; return; }
    const p = await api(`/planner/proposals/${m.proposal}`);
    S.proposal = { metrics: m, ...p };
    const now = S.panel.groups[parent] || {};
    const rows = [
      ['grids_n', now.k, m.k, (x) => x],
      ['max_deviation', now.max_deviation, m.max_deviation, pct],
      ['households_moved', 0, m.households_moved, num],
      ['pp_mean', now.polsby_popper_mean, m.polsby_popper_mean, (x) => (x === undefined ? '—' : Number(x).toFixed(3))],
      ['contiguous', now.contiguous, m.contiguous, (x) => (x ? '✓' : '✗')],
    ];
    el('proposal').innerHTML = `<table class="compare" data-proposal="${m.proposal}"><tr><th></th><th>${t('now')}</th><th>${t('proposal')}</th></tr>
      ${rows.map(([k, a, b, f]) => `<tr data-figure="${k}"><th>${t(k)}</th><td>${f(a)}</td><td class="proposed">${f(b)}</td></tr>`).join('')}</table>
      ${m.within_tolerance ? '' : `<p class="problem">${esc((m.notes || []).join(' '))}</p>`}
      <button class="action" id="accept">${t('accept_proposal')}</button><button class="action" id="discard">${t('discard')}</button>`;
    beside(p);
    fitTo([...p.before.features, ...p.after.features]);
    el('accept').onclick = async () => {
      try {
        const r = await api(`/proposals/${m.proposal}/accept`, { method: 'POST' });
        S.moved += m.households_moved;
        el('result').innerHTML = `<p class="ok" data-revision="${r.revision}">${t('saved')} ${r.revision} · ${t('op_rebalance')}</p>`;
        closeBeside();
        await reload();
        window.gisGrid.saved = r.revision;
      } catch (err) { refused(err); }
    };
    el('discard').onclick = async () => {
      await api(`/proposals/${m.proposal}/discard`, { method: 'POST' });
      closeBeside();
      el('proposal').innerHTML = `<p class="muted">${t('discarded')}</p>`;
    };
  };

  // a second map beside the first, moving with it: the proposal's grids and the buildings it moves
  let second = null;
  let follow = null; // the main map's handler that moves the second with it
  const beside = (p) => {
    closeBeside();
    const box = document.createElement('div');
    box.id = 'beside';
    el('map').parentNode.appendChild(box);
    document.body.classList.add('two-maps');
    map.resize();
    second = new maplibregl.Map({
      container: 'beside',
      style: { version: 8, sources: {}, layers: [{ id: 'background', type: 'background', paint: { 'background-color': '#f4f1ea' } }] },
      bounds: map.getBounds(), attributionControl: false, interactive: true,
      transformRequest: (url) => (url.startsWith(location.origin) ? { url, headers: authHeader() } : { url }),
    });
    second.on('load', () => {
      second.addSource('building', { type: 'vector', tiles: [tileUrl('building', `v=${version}`)], minzoom: 14, maxzoom: 18 });
      second.addLayer({ id: 'building-fill', type: 'fill', source: 'building', 'source-layer': 'building', paint: { 'fill-color': '#ddd6c8' } });
      second.addSource('after', { type: 'geojson', data: p.after });
      second.addSource('moved', { type: 'geojson', data: p.buildings });
      second.addLayer({ id: 'after-fill', type: 'fill', source: 'after', paint: { 'fill-color': '#e5dbff', 'fill-opacity': 0.5 } });
      second.addLayer({ id: 'moved-fill', type: 'fill', source: 'moved', paint: { 'fill-color': '#f08c00', 'fill-opacity': 0.85 } });
      second.addLayer({ id: 'after-line', type: 'line', source: 'after', paint: { 'line-color': '#5f3dc4', 'line-width': 2.5 } });
      const caption = document.createElement('div');
      caption.className = 'maplibregl-ctrl caption';
      caption.textContent = `${t('proposal')} #${p.proposal.id} · ${t('moved_buildings')} ${p.buildings.features.length}`;
      second.addControl({ onAdd: () => caption, onRemove: () => caption.remove() }, 'top-left');
      window.gisGrid.beside = second;
    });
    const sync = (from, to) => () => { if (!from._syncing) { to._syncing = true; to.jumpTo({ center: from.getCenter(), zoom: from.getZoom() }); to._syncing = false; } };
    follow = sync(map, second);
    map.on('move', follow);
    second.on('move', sync(second, map));
    setData('moved', p.buildings);
  };
  const authHeader = () => ({ Authorization: `Bearer ${localStorage.getItem('gis-grid-token')}` });
  const closeBeside = () => {
    if (follow) { map.off('move', follow); follow = null; }
    if (second) { second.remove(); second = null; window.gisGrid.beside = null; }
    const box = el('beside');
    if (box) box.remove();
    document.body.classList.remove('two-maps');
    map.resize();
  };

  // -- the controls ---------------------------------------------------------------------------------
  el('panel').querySelectorAll('[data-tool]').forEach((b) => { b.onclick = () => setTool(b.dataset.tool === S.tool ? null : b.dataset.tool); });
  el('community').onchange = async () => { S.community = el('community').value; await loadPanel(); setTool(S.tool); showLog(); };
  el('level').onchange = async () => { S.level = el('level').value; await loadPanel(); setTool(S.tool); };
  el('weights').onchange = async () => { S.weights = WEIGHTS[el('weights').value]; await loadPanel(); if (S.body) preview(); };
  // the grids as they were on a day: the tiles ask for ?at= (the panel stays on today's grids)
  const asOf = (day) => {
    for (const level of LEVELS) map.getSource(level).setTiles([tileUrl(level, day ? `at=${day}` : `v=${version}`)]);
    setVisible(map, 'balance', !day);
    document.body.classList.toggle('as-of', Boolean(day));
    el('hint').textContent = day ? tf('showing_as_of', { day }) : (S.tool ? t(`hint_${S.tool}`) : t('hint_pick_tool'));
    window.gisGrid.asOf = day || null;
  };
  el('as-of').onchange = () => asOf(el('as-of').value);
  el('as-of-clear').onclick = () => { el('as-of').value = ''; asOf(null); };
  window.gisGrid.begin = begin;
  window.gisGrid.preview = preview;
  setTool(null);
  await loadPanel();
  await showLog();
}

run(planner);
