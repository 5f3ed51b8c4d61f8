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

const T = {
  overview: ['网格总览', 'Overview'],
  supervisor: ['事件热力与热点', 'Incidents & hot spots'],
  worker: ['我的网格', 'My grids'],
  planner: ['网格规划', 'Grid planning'],
  community: ['社区', 'Community'], area: ['片区', 'Area'], courtyard: ['院落', 'Courtyard'],
  building: ['楼栋', 'Building'], unit: ['单元', 'Unit'],
  incidents: ['事件', 'Incidents'], cctv: ['视频监控', 'CCTV'], lighting: ['路灯', 'Street lamps'],
  cleaning: ['保洁区域', 'Cleaning zones'], streets: ['道路', 'Streets'],
  layers: ['图层', 'Layers'], grids: ['网格', 'Grids'],
  code: ['编码', 'Code'], name: ['名称', 'Name'], level: ['层级', 'Level'],
  households: ['户数', 'Households'], residents: ['人口', 'Residents'],
  staff: ['负责人', 'Responsible'], phone: ['电话', 'Phone'],
  open_incidents: ['未结事件', 'Open incidents'], overdue_incidents: ['超时事件', 'Overdue incidents'],
  coverage_pct: ['监控覆盖率', 'CCTV coverage'], cameras: ['摄像头', 'Cameras'], lamps: ['路灯', 'Lamps'],
  click_grid: ['点击地图上的网格查看详情', 'Click a grid on the map for its details'],
  login: ['登录', 'Sign in'], token: ['访问令牌', 'Access token'],
  token_hint: ['令牌由管理员用 gis-grid user add 发放；演示库的令牌由 python3 dev.py demo 打印。',
    "Tokens are issued by an admin with 'gis-grid user add'; the demo's are printed by 'python3 dev.py demo'."],
  logout: ['退出', 'Sign out'],
  since: ['起始', 'From'], until: ['截止', 'Until'], category: ['类别', 'Category'], all: ['全部', 'All'],
  heat: ['事件热力', 'Incident heat'], hotspots: ['热点（Gi*）', 'Hot spots (Gi*)'],
  computing: ['计算中…', 'Computing…'], hot: ['热点', 'hot'], cold: ['冷点', 'cold'],
  overdue: ['超时未处理', 'Overdue cases'], hours: ['小时', 'h'],
  search_staff: ['按姓名或工号查找', 'Find by name or staff id'], search: ['查找', 'Find'],
  my_grids: ['负责网格', 'Grids covered'], tap_map: ['点击地图查询该点所属网格', 'Tap the map: which grids is this point in?'],
  holes: ['盲区', 'Holes'], dark_m: ['无照明路段', 'Dark street length'],
  pick_level: ['编辑层级', 'Level to edit'], take: ['允许占用相邻网格（相邻网格让出）', 'Take ground from neighbours'],
  edit_hint: ['点击网格开始编辑，拖动顶点修改边界；每次修改都会实时校验。',
    'Click a grid to edit it and drag its corners; every change is checked at once.'],
  check_ok: ['校验通过，可以保存', 'No problems: ready to save'],
  save: ['保存新版本', 'Save as a new version'], cancel: ['取消', 'Cancel'], undo: ['撤销上次修改', 'Undo the last change'],
  saved: ['已保存为修订', 'Saved as revision'], stale: ['已被他人修改', 'Changed by someone else'],
  revisions: ['修订记录', 'Revisions'], not_editable: ['多块组成的网格不能在此编辑', 'A grid of several parts cannot be edited here'],
  reported: ['已上报', 'reported'], accepted: ['已立案', 'accepted'], rejected: ['不予立案', 'rejected'],
  dispatched: ['已派遣', 'dispatched'], handled: ['已处置', 'handled'], verified: ['已核查', 'verified'],
  closed: ['已结案', 'closed'], suspended: ['已挂起', 'suspended'],
  report: ['上报', 'Report'], accept: ['立案', 'Accept'], reject: ['不予立案', 'Reject'], dispatch: ['派遣', 'Dispatch'],
  handle: ['处置', 'Handle'], verify: ['核查通过', 'Verify'], rework: ['返工', 'Rework'], close: ['结案', 'Close'],
  extend: ['延期', 'Extend'], suspend: ['挂起', 'Suspend'], resume: ['恢复', 'Resume'], reopen: ['重办', 'Reopen'],
  escalate: ['升级', 'Escalate'],
  cases: ['案件', 'Cases'], my_cases: ['我网格的案件', 'Cases in my grids'], case_list: ['案件办理', 'Case handling'],
  left: ['剩余', 'left'], late_by: ['已超时', 'late by'], due: ['时限', 'Due'], owner: ['责任人', 'Owner'],
  timeline: ['办理过程', 'Timeline'], note: ['说明', 'Note'], hours_to_add: ['延长小时数', 'Hours to add'],
  satisfaction: ['满意度（1–5）', 'Satisfaction (1–5)'], assignee: ['承办人工号', 'Assignee staff id'],
  department: ['承办部门', 'Department'], photo: ['照片链接', 'Photo URL'], confirm: ['确定', 'Confirm'],
  escalated: ['已升级', 'escalated'], reworked: ['返工', 'reworked'], duplicate: ['疑似重复', 'possible duplicate of'],
  outside: ['网格外', 'outside every grid'], more: ['更多', 'More'], of: ['共', 'of'],
  status_open: ['未结', 'Open'], status_overdue: ['已超时', 'Overdue'], status_all: ['全部', 'All'],
  status_escalated: ['已升级', 'Escalated'], status_closed: ['已结案', 'Closed'],
  indicators: ['考核指标（近28天）', 'Indicators (last 28 days)'], export_csv: ['导出 CSV', 'Export CSV'],
  reported_n: ['上报', 'Reported'], closure: ['结案率', 'Closed'], on_time: ['按时率', 'On time'],
  rework_rate: ['返工率', 'Rework'], escalation_rate: ['升级率', 'Escalated'], late_now: ['超时', 'Late'],
  sat: ['满意度', 'Satisfaction'], reload: ['重新载入', 'Reload'], done: ['已办理', 'Done'],
  street: ['街道', 'Street office'], no_cases: ['没有案件', 'No cases'],
  new: ['新出现', 'new'], persistent: ['持续', 'persistent'], fading: ['消退', 'fading'],
  version: ['版本', 'Version'], none: ['无', 'none'], fallback: ['（上级兜底）', '(falls back to the parent)'],
  legend: ['图例', 'Legend'], heat_low: ['少', 'few'], heat_high: ['多', 'many'],
  hot_spot: ['热点（显著偏高）', 'Hot spot (significantly high)'], cold_spot: ['冷点（显著偏低）', 'Cold spot (significantly low)'],
  trend_new: ['新出现：粗边框', 'New: thick outline'], trend_persistent: ['持续：细边框', 'Persistent: thin outline'],
  trend_fading: ['消退：虚线框（已不显著）', 'Fading: dashed outline (no longer significant)'],
  overdue_cluster: ['超时案件（圆内为件数）', 'Overdue cases (number in the circle)'],
  window: ['时段', 'Window'], last_7: ['近7天', 'Last 7 days'], last_28: ['近28天', 'Last 28 days'], last_84: ['近12周', 'Last 12 weeks'],
  spots_window: ['热点：{a} 至 {b}，对比之前同样长的时段', 'Hot spots: {a} to {b}, against the same length before'],
  heat_window: ['热力：同一时段的事件', 'Heat: the incidents of the same window'],
  cell: ['格', 'cell'], cells: ['格', 'cells'], overdue_of_open: ['超时 {a} 件，未结 {b} 件', '{a} overdue of {b} open'],
  spot_summary: ['{n} 件事件 · 热点 {hot} · 冷点 {cold} · 新出现 {new} · 持续 {persistent} · 消退 {fading} · PAI {pai}',
    '{n} incidents · {hot} hot · {cold} cold · {new} new · {persistent} persistent · {fading} fading · PAI {pai}'],
  selected_case: ['选中的案件', 'The case shown'], mine: ['本人负责的网格', 'Grids I cover'],
  editing: ['正在编辑的网格', 'The grid being edited'], vertex: ['可拖动的顶点', 'A corner to drag'],
  problem_area: ['校验问题（重叠或缺口）', 'A problem found (overlap or gap)'],
  no_spots: ['该时段没有显著的热点或冷点', 'No significant hot or cold spots in this window'],
  cases_count: ['{a} 件', '{a}'], streets_named: ['道路', 'Streets'], buildings: ['楼栋', 'Buildings'],
};
export const CATEGORIES = {
  environment: ['市容环境', 'Environment'], advertising: ['宣传广告', 'Advertising'],
  construction: ['施工管理', 'Construction'], street_order: ['街面秩序', 'Street order'],
  emergency: ['突发事件', 'Emergency'], dispute: ['矛盾纠纷', 'Disputes'],
  public_order: ['治安', 'Public order'], property: ['物业', 'Property'], other: ['其他', 'Other'],
};
/** Sign-in roles (who uses the system), as the bar shows them. */
export const ACCESS = {
  admin: ['管理员', 'Admin'], supervisor: ['监督员', 'Supervisor'], planner: ['规划员', 'Planner'], leadership: ['领导', 'Leadership'],
  grid_worker: ['网格员', 'Grid worker'], reporter: ['上报渠道', 'Reporting channel'],
};
export const ROLES = {
  community_head: ['社区网格长', 'Community head'], grid_worker: ['网格员', 'Grid worker'],
  building_head: ['楼长', 'Building head'], unit_head: ['单元长', 'Unit head'],
};

export const lang = localStorage.getItem(LANG_KEY) || ((navigator.language || 'zh').startsWith('zh') ? 'zh' : 'en');
document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
export const t = (k) => (T[k] || [k, k])[lang === 'zh' ? 0 : 1];
/** A message with {placeholders} filled: tf('overdue_of_open', { a: 3, b: 9 }). */
export const tf = (k, values) => t(k).replace(/\{(\w+)\}/g, (m, name) => (name in values ? String(values[name]) : m));
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
  const headers = { Authorization: `Bearer ${token()}` };
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
  const links = ['overview', 'supervisor', 'worker', 'planner']
    .map((p) => `<a href="/map/${p}" class="${p === PAGE ? 'here' : ''}">${t(p)}</a>`).join('');
  el('bar').innerHTML = `<span class="brand">gis-grid 网格化管理</span>${links}
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
    street: `height:6px;background:${r.color};border:1px solid #adb5bd;margin-top:3px`,
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

export function addGrids(map, levels, version) {
  const params = version ? `v=${version}` : '';
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

export function addStreets(map, layers) {
  if (!layers.includes('streets')) return;
  map.addSource('streets', { type: 'vector', tiles: [tileUrl('streets')], minzoom: 12, maxzoom: 18 });
  map.addLayer({
    id: 'streets-line', type: 'line', source: 'streets', 'source-layer': 'streets', minzoom: 12,
    paint: { 'line-color': '#ffffff', 'line-width': ['interpolate', ['linear'], ['zoom'], 12, 1, 18, 10] },
  }, map.getLayer('community-fill') ? 'community-fill' : undefined);
  legendEntry({ id: 'streets', rows: [{ kind: 'street', color: '#ffffff', label: t('streets') }] });
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
  map.addLayer({ id: `${layer}-fill`, type: 'fill', source: layer, 'source-layer': layer, filter: ['==', ['geometry-type'], 'Polygon'], paint: { 'fill-color': color, 'fill-opacity': 0.25 } });
  map.addLayer({ id: `${layer}-line`, type: 'line', source: layer, 'source-layer': layer, paint: { 'line-color': color, 'line-width': 1.5 } });
  legendEntry({ id: layer, rows: [{ kind: 'fill', color: `${color}40`, outline: color, label: t(layer) }] });
}

export function setVisible(map, prefix, on) {
  for (const layer of map.getStyle().layers) {
    if (layer.id.startsWith(`${prefix}-`)) map.setLayoutProperty(layer.id, 'visibility', on ? 'visible' : 'none');
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
  const collections = (await api('/collections')).collections;
  const layers = collections.filter((c) => c.kind === 'layer').map((c) => c.id);
  const community = await api('/collections/community');
  const box = community.extent && community.extent.spatial.bbox[0];
  const map = newMap(box ? [[box[0], box[1]], [box[2], box[3]]] : null);
  window.gisGrid = { map, me, layers, ready: false, visibleKeys: () => visibleKeys(map) };
  await new Promise((resolve) => map.on('load', resolve));
  await page(map, me, layers);
  gridLinesOnTop(map);
  addLegend(map);
  window.gisGrid.ready = true;
}

/** Start a page: sign in, draw the frame and the map, then hand over to the page. */
export function run(page) {
  start(page).catch((err) => {
    if (!el('panel').innerHTML) el('panel').innerHTML = `<p class="problem">${esc(err.message)}</p>`;
    console.error(err);
  });
}
