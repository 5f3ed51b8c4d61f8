/* gis-grid map page: the weekly review for leadership — the report's content on a live map, any week. */
import {
  t, tr, esc, el, api, label, lang, CATEGORIES, addGrids, addStreets, legendEntry, run,
} from './map.js';

const HOT = '#e03131';
const HOT_EDGE = '#a51111';
const COLD = '#1971c2';
const HOLE = { cctv: '#1c7ed6', dark_street: '#212529', cleaning_uncleaned: '#15aabf', cleaning_overdue: '#15aabf', no_staff: '#ae3ec9' };
const CATEGORY_COLOURS = ['#1c7ed6', '#f59f00', '#7048e8', '#2b8a3e', '#e03131', '#d9480f', '#0c8599', '#ae3ec9', '#868e96'];
const RATES = ['closure_rate', 'on_time_rate'];
const UP = ['closed', 'closure_rate', 'on_time_rate', 'mean_satisfaction'];
const EMPTY = { type: 'FeatureCollection', features: [] };
/** Holes are lettered (A, B …), hot spots numbered: both sit on one map. */
const letter = (i) => String.fromCharCode(65 + i);

const num = (v, key) => {
  if (v === null || v === undefined) return '—';
  if (RATES.includes(key)) return `${(100 * v).toFixed(1)}%`;
  if (key === 'mean_satisfaction') return Number(v).toFixed(2);
  return Number(v).toLocaleString();
};
const person = (name, phone, fallback) => (name ? `${esc(name)} <a class="tel" href="tel:${esc(phone || '')}">${esc(phone || '')}</a>${fallback === true ? ' *' : ''}` : '');

function change(now, before, key) {
  if (now === null || now === undefined || before === null || before === undefined) return ['—', 'flat'];
  const d = Number(now) - Number(before);
  let text;
  if (RATES.includes(key)) text = `${d >= 0 ? '+' : ''}${(100 * d).toFixed(1)} ${tr('points')}`;
  else if (key === 'mean_satisfaction') text = `${d >= 0 ? '+' : ''}${d.toFixed(2)}`;
  else text = `${d >= 0 ? '+' : ''}${d.toLocaleString()}`;
  if (Math.abs(d) < 1e-9 || !(UP.includes(key) || key === 'overdue')) return [text, 'flat'];
  const good = (d > 0) === UP.includes(key);
  return [text, good ? 'good' : 'bad'];
}

/** Twelve weeks as a line, this week as a red dot (inline SVG). */
function spark(values) {
  const w = 120; const h = 26;
  const ys = values.map((v) => (v === null || v === undefined ? null : Number(v)));
  const known = ys.filter((v) => v !== null);
  if (!known.length) return '';
  const lo = Math.min(...known); const hi = Math.max(...known); const span = hi - lo || 1;
  const x = (i) => (i * (w - 6)) / Math.max(ys.length - 1, 1) + 3;
  const y = (v) => h - 3 - ((v - lo) * (h - 6)) / span;
  const pts = ys.map((v, i) => (v === null ? null : `${x(i).toFixed(1)},${y(v).toFixed(1)}`)).filter(Boolean).join(' ');
  const last = ys[ys.length - 1];
  return `<svg class="spark" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" aria-hidden="true"><polyline fill="none" stroke="#343a40" stroke-width="1.2" points="${pts}"/>
    ${last === null ? '' : `<circle cx="${x(ys.length - 1)}" cy="${y(last)}" r="2.6" fill="${HOT}"/>`}</svg>`;
}

/** Incidents per week stacked by category (inline SVG), this week outlined. */
function bars(categories) {
  const weeks = categories.weeks; const keys = Object.keys(categories.counts);
  const totals = weeks.map((_, i) => keys.reduce((s, k) => s + categories.counts[k][i], 0));
  const top = Math.max(1, ...totals); const w = 300; const h = 110; const bw = w / weeks.length;
  let out = '';
  weeks.forEach((week, i) => {
    let y = h - 14;
    keys.forEach((k, j) => {
      const v = categories.counts[k][i]; if (!v) return;
      const bh = (v / top) * (h - 24); y -= bh;
      out += `<rect x="${(i * bw + 2).toFixed(1)}" y="${y.toFixed(1)}" width="${(bw - 4).toFixed(1)}" height="${bh.toFixed(1)}" fill="${CATEGORY_COLOURS[j % 9]}"><title>${esc(label(CATEGORIES, k))} ${v}</title></rect>`;
    });
    out += `<text x="${(i * bw + bw / 2).toFixed(1)}" y="${h - 2}" font-size="8" text-anchor="middle" fill="#6b7c8d">${esc(week.split('-')[1])}</text>`;
  });
  const i = weeks.length - 1;
  out += `<rect x="${(i * bw + 1).toFixed(1)}" y="${(h - 14 - (totals[i] / top) * (h - 24)).toFixed(1)}" width="${(bw - 2).toFixed(1)}" height="${((totals[i] / top) * (h - 24)).toFixed(1)}" fill="none" stroke="#212529"/>`;
  const keyRow = keys.filter((k) => categories.counts[k].some(Boolean))
    .map((k) => `<span class="key"><span style="background:${CATEGORY_COLOURS[keys.indexOf(k) % 9]}"></span>${esc(label(CATEGORIES, k))}</span>`).join('');
  return `<svg class="bars" viewBox="0 0 ${w} ${h}" role="img" aria-label="${esc(tr('s_trends'))}">${out}</svg><div class="keys">${keyRow}</div>`;
}

function centre(geometry) {
  if (!geometry) return null;
  const b = new maplibregl.LngLatBounds();
  const walk = (c) => (typeof c[0] === 'number' ? b.extend(c) : c.forEach(walk));
  walk(geometry.coordinates);
  return b.getCenter();
}

async function download(path, name) {
  const token = localStorage.getItem('gis-grid-token');
  const r = await fetch(path, { headers: { Authorization: `Bearer ${token}`, 'Accept-Language': lang === 'zh' ? 'zh-CN' : 'en' } });
  if (!r.ok) throw new Error((await r.json()).detail || r.statusText);
  const a = document.createElement('a');
  a.href = URL.createObjectURL(await r.blob());
  a.download = name;
  document.body.appendChild(a);
  a.click();
  setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
}

async function review(map, me, layers) {
  addGrids(map, ['community', 'area', 'courtyard']);
  addStreets(map, layers);
  map.addSource('holes', { type: 'geojson', data: EMPTY });
  map.addSource('spots', { type: 'geojson', data: EMPTY });
  map.addLayer({ id: 'holes-fill', type: 'fill', source: 'holes', filter: ['in', ['get', 'kind'], ['literal', ['cctv', 'cleaning_uncleaned']]], paint: { 'fill-color': ['match', ['get', 'kind'], 'cctv', HOLE.cctv, HOLE.cleaning_uncleaned], 'fill-opacity': 0.16 } });
  map.addLayer({ id: 'holes-line', type: 'line', source: 'holes', filter: ['in', ['get', 'kind'], ['literal', ['dark_street', 'cleaning_overdue']]], paint: { 'line-color': ['match', ['get', 'kind'], 'dark_street', HOLE.dark_street, HOLE.cleaning_overdue], 'line-width': ['match', ['get', 'kind'], 'dark_street', 4, 2] } });
  map.addLayer({ id: 'holes-dash', type: 'line', source: 'holes', filter: ['==', ['get', 'kind'], 'no_staff'], paint: { 'line-color': HOLE.no_staff, 'line-width': 2, 'line-dasharray': [2, 1] } });
  map.addLayer({ id: 'spots-fill', type: 'fill', source: 'spots', filter: ['in', ['get', 'spot'], ['literal', ['hot', 'cold']]], paint: { 'fill-color': ['match', ['get', 'spot'], 'hot', HOT, COLD], 'fill-opacity': 0.7 } });
  map.addLayer({ id: 'spots-line', type: 'line', source: 'spots', filter: ['in', ['get', 'trend'], ['literal', ['new', 'persistent']]], paint: { 'line-color': HOT_EDGE, 'line-width': ['match', ['get', 'trend'], 'new', 3, 1] } });
  map.addLayer({ id: 'spots-fading', type: 'line', source: 'spots', filter: ['==', ['get', 'trend'], 'fading'], paint: { 'line-color': HOT_EDGE, 'line-width': 1.5, 'line-dasharray': [2, 2] } });
  legendEntry({ id: 'spots', rows: [
    { kind: 'fill', color: HOT, label: t('hot_spot') }, { kind: 'fill', color: COLD, label: t('cold_spot') },
    { kind: 'fill', color: HOT, outline: HOT_EDGE, outlineWidth: 3, label: t('trend_new') },
    { kind: 'fill', color: HOT, outline: HOT_EDGE, outlineWidth: 1, label: t('trend_persistent') },
    { kind: 'dash', color: HOT_EDGE, label: t('trend_fading') }] });
  legendEntry({ id: 'holes', rows: [
    { kind: 'fill', color: `${HOLE.cctv}40`, outline: HOLE.cctv, label: tr('hole_cctv') },
    { kind: 'line', color: HOLE.dark_street, width: 4, label: tr('hole_dark_street') },
    { kind: 'fill', color: `${HOLE.cleaning_uncleaned}50`, outline: HOLE.cleaning_uncleaned, label: tr('hole_cleaning_uncleaned') },
    { kind: 'line', color: HOLE.no_staff, width: 2, label: tr('hole_no_staff') }] });

  const communities = await api('/collections/community/items?limit=1000');
  const query = new URLSearchParams(location.search);
  const state = { week: query.get('week') || 'last', community: query.get('community') || '' };
  const only = communities.features.length === 1;
  el('panel').innerHTML = `<h2>${t('review')}</h2>
    <label>${tr('week')} <input type="week" id="week"></label>
    ${only ? '' : `<label>${tr('community')} <select id="community"><option value="">${esc(tr('all_place', { n: communities.features.length }))}</option>
      ${communities.features.map((f) => `<option value="${esc(f.properties.code)}">${esc(f.properties.name)}</option>`).join('')}</select></label>`}
    <div class="downloads"><button class="action" id="pdf">PDF</button> <button class="action" id="html">HTML</button></div>
    <div id="review-body" class="muted">${t('computing')}</div>`;
  if (!only) el('community').value = state.community;
  const markers = [];
  let shown = null;

  const fly = (lngLat) => { if (lngLat) map.flyTo({ center: lngLat, zoom: 17.5, duration: 0 }); };
  const numbered = (lngLat, n, colour, offset = [0, 0]) => {
    const m = document.createElement('div');
    m.className = 'num-marker'; m.textContent = n; m.style.background = colour;
    markers.push(new maplibregl.Marker({ element: m, offset }).setLngLat(lngLat).addTo(map));
  };

  const draw = (r) => {
    shown = r;
    markers.splice(0).forEach((m) => m.remove());
    el('week').value = r.week;
    map.getSource('spots').setData(r.spots || EMPTY);
    map.getSource('holes').setData(r.holes || EMPTY);
    const now = r.headline.this_week; const before = r.headline.last_week;
    const cards = ['reported', 'closed', 'overdue', 'closure_rate', 'on_time_rate', 'mean_satisfaction'].map((k) => {
      const [text, tone] = change(now[k], before[k], k);
      return `<div class="card" data-key="${k}"><div class="muted">${esc(tr(`h_${k}`))}</div><div class="value">${num(now[k], k)}</div>
        <div class="${tone}">${esc(tr('vs_last_week'))} ${esc(text)}</div>${spark(r.weeks.map((w) => w[k]))}</div>`;
    }).join('');
    // each hot-spot row is numbered on the map at its busiest cell
    const spotAt = {};
    for (const f of (r.spots ? r.spots.features : []).slice().sort((a, b) => b.properties.incidents - a.properties.incidents)) {
      const p = f.properties;
      for (const code of [p.courtyard_code, p.area_code, p.community_code]) {
        if (code && !spotAt[code]) spotAt[code] = centre(f.geometry);
      }
    }
    const hot = r.hotspots.slice(0, 10);
    hot.forEach((g, i) => { if (spotAt[g.grid_code]) numbered(spotAt[g.grid_code], i + 1, g.hot ? HOT_EDGE : g.cold ? COLD : '#868e96'); });
    const holes = r.holes ? r.holes.features.slice(0, 10) : [];
    const trends = (g) => ['new', 'persistent', 'fading'].filter((k) => g[k]).map((k) => `${t(k)} ${g[k]}`).join(' · ');
    const s = r.hotspot_summary;
    const caseRows = (rows, overdue) => rows.slice(0, 10).map((c) => `<tr data-lon="${c.lon}" data-lat="${c.lat}"><td>${esc(c.id)}<br><span class="muted">${esc(label(CATEGORIES, c.category))} · ${esc(t(c.status))}</span></td>
      <td class="nowrap">${overdue ? `${c.overdue_hours} ${tr('hours')}` : esc(tr('escalations', { n: c.escalation }))}</td>
      <td>${overdue ? person(c.staff_name, c.staff_phone, c.staff_fallback) : `${esc(c.owner_name || c.owner_code || '')}<br>${person(c.staff_name, c.staff_phone)}`}</td></tr>`).join('');
    const rankable = r.ranking.filter((g) => g.rank !== null);
    const few = r.ranking.length - rankable.length;
    const ranked = rankable.length > 10 ? [...rankable.slice(0, 5), null, ...rankable.slice(-5)] : rankable;
    el('review-body').className = '';
    el('review-body').innerHTML = `
      <p class="muted">${esc(r.start.slice(0, 10))} – ${esc(r.end.slice(0, 10))} · ${esc(tr('as_of'))} ${esc(r.as_of.slice(0, 16).replace('T', ' '))}</p>
      ${r.in_progress ? `<p class="note">${esc(tr('in_progress', { as_of: r.as_of.slice(0, 16).replace('T', ' ') }))}</p>` : ''}
      ${r.empty ? `<p class="note" id="empty">${esc(tr('empty_week'))}</p>` : ''}
      <h3>${esc(tr('s_headline'))}</h3><div class="cards">${cards}</div>
      <h3>${esc(tr('s_trends'))}</h3>${bars(r.categories)}
      ${r.rises.filter((x) => x.change > 0).slice(0, 3).map((x) => `<div>${esc(label(CATEGORIES, x.category))} <b>${x.this_week}</b> <span class="bad">+${x.change}</span> <span class="muted">(${esc(tr('four_week_mean'))} ${x.before})</span></div>`).join('')}
      <h3>${esc(tr('s_hotspots'))}</h3>
      <p class="muted">${s ? esc(tr('hot_summary', { n: s.incidents, hot: s.hot, cold: s.cold, new: s.new, persistent: s.persistent, fading: s.fading, captured: s.captured_pct, area: s.area_pct, pai: s.pai })) : esc(r.hotspot_note || '')}</p>
      ${hot.length ? `<table class="spot-rows">${hot.map((g, i) => `<tr data-code="${esc(g.grid_code)}"><td><span class="num ${g.hot ? 'hot' : g.cold ? 'cold' : 'fading'}">${i + 1}</span></td>
        <td>${esc(g.name || g.grid_code)}<br><span class="muted">${g.cells} ${t(g.cells === 1 ? 'cell' : 'cells')}${trends(g) ? ` · ${esc(trends(g))}` : ''}</span></td>
        <td class="nowrap"><b>${g.incidents}</b></td><td>${person(g.staff_name, g.staff_phone, g.staff_fallback)}</td></tr>`).join('')}</table>` : `<p class="muted">${esc(tr('no_spots'))}</p>`}
      <h3>${esc(tr('s_holes'))}</h3>
      ${holes.length ? `<table class="hole-rows">${holes.map((f, i) => { const p = f.properties; return `<tr data-hole="${i}"><td><span class="num">${letter(i)}</span></td>
        <td>${esc(tr(`hole_${p.kind}`))}<br><span class="muted">${esc([p.zone, p.street, p.name || p.grid_code].filter((v) => v).join(' · '))}</span></td>
        <td class="nowrap">${p.incidents ?? '—'}</td><td>${person(p.staff_name, p.staff_phone, p.staff_fallback)}</td></tr>`; }).join('')}</table>` : `<p class="muted">${esc(tr('no_holes'))}</p>`}
      <h3>${esc(tr('overdue_title', { n: r.overdue.length, as_of: r.as_of.slice(0, 16).replace('T', ' ') }))}</h3>
      ${r.overdue.length ? `<table class="case-rows">${caseRows(r.overdue, true)}</table>` : `<p class="muted">${esc(tr('no_overdue'))}</p>`}
      <h3>${esc(tr('escalated_title', { n: r.escalated.length }))}</h3>
      ${r.escalated.length ? `<table class="case-rows">${caseRows(r.escalated, false)}</table>` : `<p class="muted">${esc(tr('no_escalated'))}</p>`}
      <h3>${esc(tr('ranking_title', { n: r.ranking.length }))}</h3>
      <p class="muted">${esc(tr('ranking_note', { n: 5 }))}${few ? ` ${esc(tr('ranking_few', { n: few, m: 5 }))}` : ''}</p>
      ${rankable.length ? `<table class="ranking"><tr><th>#</th><th>${esc(tr('grid'))}</th><th>${esc(tr('reported'))}</th><th>${esc(tr('h_on_time_rate'))}</th><th>${esc(tr('h_overdue'))}</th></tr>
        ${ranked.map((g) => (g ? `<tr><td>${g.rank}</td><td>${esc(g.name)}<br><span class="muted">${person(g.staff_name, g.staff_phone)}</span></td><td>${g.reported}</td><td>${num(g.on_time_rate, 'on_time_rate')}</td><td>${g.overdue}</td></tr>` : '<tr><td colspan="5" class="muted">…</td></tr>')).join('')}</table>` : `<p class="muted">${esc(tr('no_ranking'))}</p>`}
      <h3>${esc(tr('s_changes'))}</h3>
      ${r.changes.length ? `<ul>${r.changes.map((c) => `<li>${esc(tr('change_line', { community: c.community_name || c.community_code, n: c.revisions, grids: Object.entries(c.grids).map(([k, n]) => `${tr(`g_${k}`)} ${n}`).join('、') || '—', buildings: c.buildings_moved, households: c.households_moved, staff: c.staff.length }))}</li>`).join('')}</ul>` : `<p class="muted">${esc(tr('no_revisions'))}</p>`}
      ${r.staff_changes.length ? `<p>${esc(tr('staff_title', { n: r.staff_changes.length }))}</p><ul>${r.staff_changes.slice(0, 10).map((c) => `<li>${esc(c.date)} ${esc(tr(`staff_${c.change}`))} ${esc(c.name)} · ${esc(c.grid_name || c.grid_code)}</li>`).join('')}</ul>` : `<p class="muted">${esc(tr('no_staff_changes'))}</p>`}`;
    // a hole's letter beside its grid's name, which sits at the same place
    holes.forEach((f, i) => { const c = centre(f.geometry); if (c) numbered(c, letter(i), '#343a40', [-34, -16]); });
    el('review-body').querySelectorAll('tr[data-code]').forEach((tr_) => { tr_.onclick = () => fly(spotAt[tr_.dataset.code]); });
    el('review-body').querySelectorAll('tr[data-hole]').forEach((tr_) => { tr_.onclick = () => fly(centre(holes[Number(tr_.dataset.hole)].geometry)); });
    el('review-body').querySelectorAll('tr[data-lon]').forEach((tr_) => { tr_.onclick = () => fly([Number(tr_.dataset.lon), Number(tr_.dataset.lat)]); });
    window.gisGrid.review = r;
  };

  const path = (suffix) => {
    const p = new URLSearchParams();
    if (state.community) p.set('community', state.community);
    return `/api/review/${state.week}.${suffix}${p.toString() ? `?${p}` : ''}`;
  };
  const load = async () => {
    el('review-body').className = 'muted';
    el('review-body').textContent = t('computing');
    try {
      draw(await api(path('json')));
      const p = new URLSearchParams({ week: shown.week });
      if (state.community) p.set('community', state.community);
      history.replaceState(null, '', `${location.pathname}?${p}${location.hash}`);
    } catch (err) {
      el('review-body').innerHTML = `<p class="problem">${esc(err.message)}</p>`;
    }
  };
  el('week').onchange = () => { if (el('week').value) { state.week = el('week').value; load(); } };
  if (!only) el('community').onchange = () => { state.community = el('community').value; load(); };
  const save = (suffix) => async () => {
    const name = `review-${state.community || (shown && shown.scope.code) || 'all'}-${shown ? shown.week : state.week}.${suffix}`;
    try { await download(`${path(suffix)}${path(suffix).includes('?') ? '&' : '?'}lang=${lang}`, name); } catch (err) {
      el('review-body').insertAdjacentHTML('afterbegin', `<p class="problem">${esc(err.message)}</p>`);
    }
  };
  el('pdf').onclick = save('pdf');
  el('html').onclick = save('html');
  await load();
}

run(review);
