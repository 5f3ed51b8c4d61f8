/* gis-grid map pages: overview, supervisor, worker, planner.
 *
 * One script for the four pages (body[data-page]). Everything it loads comes
 * from this app: maplibre-gl.js from /assets, tiles from /tiles, data from the
 * JSON API with the user's bearer token. The token comes once in the URL
 * fragment (#token=…, never sent to a server log) or from the login form, and
 * is kept in this browser's localStorage.
 */
(() => {
  'use strict';

  const PAGE = document.body.dataset.page;
  const TOKEN_KEY = 'gis-grid-token';
  const LANG_KEY = 'gis-grid-lang';
  const LEVELS = ['community', 'area', 'courtyard', 'building', 'unit'];
  // where each grid level starts to be drawn, and how
  const LEVEL_STYLE = {
    community: { color: '#17324d', width: 3.0, minzoom: 0 },
    area: { color: '#d9480f', width: 2.2, minzoom: 12 },
    courtyard: { color: '#2b8a3e', width: 1.4, minzoom: 14 },
    building: { color: '#868e96', width: 0.8, minzoom: 14, fill: '#ddd6c8' },
    unit: { color: '#7048e8', width: 0.6, minzoom: 17 },
  };
  const OPEN = ['reported', 'dispatched', 'handled'];

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
    version: ['版本', 'Version'], none: ['无', 'none'], fallback: ['（上级兜底）', '(falls back to the parent)'],
  };
  const CATEGORIES = {
    environment: ['市容环境', 'Environment'], advertising: ['宣传广告', 'Advertising'],
    construction: ['施工管理', 'Construction'], street_order: ['街面秩序', 'Street order'],
    emergency: ['突发事件', 'Emergency'], dispute: ['矛盾纠纷', 'Disputes'],
    public_order: ['治安', 'Public order'], property: ['物业', 'Property'], other: ['其他', 'Other'],
  };
  const ROLES = {
    community_head: ['社区网格长', 'Community head'], grid_worker: ['网格员', 'Grid worker'],
    building_head: ['楼长', 'Building head'], unit_head: ['单元长', 'Unit head'],
  };

  let lang = localStorage.getItem(LANG_KEY) || ((navigator.language || 'zh').startsWith('zh') ? 'zh' : 'en');
  const t = (k) => (T[k] || [k, k])[lang === 'zh' ? 0 : 1];
  const both = (k) => (T[k] ? `${T[k][0]} ${T[k][1]}` : k);
  const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
  const el = (id) => document.getElementById(id);

  if (location.hash.startsWith('#token=')) {
    localStorage.setItem(TOKEN_KEY, decodeURIComponent(location.hash.slice(7)));
    history.replaceState(null, '', location.pathname + location.search);
  }
  const token = () => localStorage.getItem(TOKEN_KEY);

  async function api(path, opts = {}) {
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
      <span class="who">${me ? esc(`${me.name} · ${me.role}`) : ''}</span>
      <button id="lang">${lang === 'zh' ? 'English' : '中文'}</button>
      ${me ? `<button id="logout">${t('logout')}</button>` : ''}`;
    el('lang').onclick = () => { localStorage.setItem(LANG_KEY, lang === 'zh' ? 'en' : 'zh'); location.reload(); };
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

  const tileUrl = (layer, params) => `${location.origin}/tiles/${layer}/{z}/{x}/{y}.pbf${params ? `?${params}` : ''}`;

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

  function addGrids(map, levels, version) {
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
    }
  }

  function addStreets(map, layers) {
    if (!layers.includes('streets')) return;
    map.addSource('streets', { type: 'vector', tiles: [tileUrl('streets')], minzoom: 12, maxzoom: 18 });
    map.addLayer({
      id: 'streets-line', type: 'line', source: 'streets', 'source-layer': 'streets', minzoom: 12,
      paint: { 'line-color': '#ffffff', 'line-width': ['interpolate', ['linear'], ['zoom'], 12, 1, 18, 10] },
    }, map.getLayer('community-fill') ? 'community-fill' : undefined);
  }

  function addPoints(map, layer, color, params, minzoom = 13) {
    map.addSource(layer, { type: 'vector', tiles: [tileUrl(layer, params)], minzoom, maxzoom: 18 });
    map.addLayer({
      id: `${layer}-bins`, type: 'fill', source: layer, 'source-layer': layer, filter: ['has', 'count'],
      paint: { 'fill-color': color, 'fill-opacity': ['interpolate', ['linear'], ['get', 'count'], 1, 0.15, 50, 0.8] },
    });
    map.addLayer({
      id: `${layer}-points`, type: 'circle', source: layer, 'source-layer': layer, filter: ['!', ['has', 'count']],
      paint: { 'circle-color': color, 'circle-radius': 3.5, 'circle-stroke-color': '#fff', 'circle-stroke-width': 0.8 },
    });
  }

  function addLines(map, layer, color, minzoom = 13) {
    map.addSource(layer, { type: 'vector', tiles: [tileUrl(layer)], minzoom, maxzoom: 18 });
    map.addLayer({ id: `${layer}-fill`, type: 'fill', source: layer, 'source-layer': layer, filter: ['==', ['geometry-type'], 'Polygon'], paint: { 'fill-color': color, 'fill-opacity': 0.25 } });
    map.addLayer({ id: `${layer}-line`, type: 'line', source: layer, 'source-layer': layer, paint: { 'line-color': color, 'line-width': 1.5 } });
  }

  function setVisible(map, prefix, on) {
    for (const layer of map.getStyle().layers) {
      if (layer.id.startsWith(`${prefix}-`)) map.setLayoutProperty(layer.id, 'visibility', on ? 'visible' : 'none');
    }
  }

  /** The deepest grid under a click among the drawn grid levels. */
  function gridAt(map, point, levels = LEVELS) {
    const ids = levels.map((l) => `${l}-fill`).filter((id) => map.getLayer(id) && map.getLayoutProperty(id, 'visibility') !== 'none');
    const found = map.queryRenderedFeatures(point, { layers: ids });
    found.sort((a, b) => String(b.properties.code).length - String(a.properties.code).length);
    return found.length ? found[0].properties : null;
  }

  function staffRows(staff) {
    if (!staff || !staff.length) return `<tr><td colspan="2">${t('none')}</td></tr>`;
    return staff.map((s) => `<tr><td>${esc((ROLES[s.role] || [s.role, s.role])[lang === 'zh' ? 0 : 1])}</td>
      <td>${esc(s.name)} <a href="tel:${esc(s.phone)}">${esc(s.phone || '')}</a></td></tr>`).join('');
  }

  async function showGrid(map, lngLat, code) {
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

  // -- pages ---------------------------------------------------------------------------

  async function start() {
    if (!token()) { login(); return; }
    const me = await api('/me');
    bar(me);
    const collections = (await api('/collections')).collections;
    const layers = collections.filter((c) => c.kind === 'layer').map((c) => c.id);
    const community = await api('/collections/community');
    const box = community.extent && community.extent.spatial.bbox[0];
    const map = newMap(box ? [[box[0], box[1]], [box[2], box[3]]] : null);
    window.gisGrid = { map, me, layers, ready: false };
    await new Promise((resolve) => map.on('load', resolve));
    const pages = { overview, supervisor, worker, planner };
    await pages[PAGE](map, me, layers);
    window.gisGrid.ready = true;
  }

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
    const communities = await api('/collections/community/items?limit=50');
    el('panel').innerHTML = `<h2>${t('overview')}</h2>
      <h3>${t('layers')}</h3>${toggles.map((l) => `<label><input type="checkbox" data-layer="${l}" checked> ${both(l)}</label>`).join('')}
      <h3>${t('community')}</h3><table><tr><th>${t('name')}</th><th>${t('households')}</th><th>${t('residents')}</th></tr>
      ${communities.features.map((f) => `<tr><td>${esc(f.properties.name)}</td><td>${esc(f.properties.households)}</td><td>${esc(f.properties.residents)}</td></tr>`).join('')}</table>
      ${communities.numberMatched > 50 ? `<p class="muted">+${communities.numberMatched - 50}</p>` : ''}
      <p class="muted">${t('click_grid')}</p>
      <div class="legend">${extras.filter((e) => layers.includes(e[0])).map(([l, color]) => `<div><span style="background:${color}"></span>${both(l)}${l === 'incidents' ? ` (${t('open_incidents')})` : ''}</div>`).join('')}</div>`;
    el('panel').querySelectorAll('input[data-layer]').forEach((box) => {
      box.onchange = () => setVisible(map, box.dataset.layer, box.checked);
    });
    map.on('click', async (e) => {
      const g = gridAt(map, e.point);
      if (g) window.gisGrid.popup = await showGrid(map, e.lngLat, g.code);
    });
  }

  async function supervisor(map, me, layers) {
    addGrids(map, ['community', 'area', 'courtyard']);
    addStreets(map, layers);
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
          <table>${s.spots.features.slice(0, 12).map((f) => `<tr><td>${esc(f.properties.spot === 'hot' ? t('hot') : t('cold'))} ${esc(f.properties.trend || '')}</td>
          <td>${esc(f.properties.incidents)}</td><td>${esc(f.properties.grid_code)}<br>${esc(f.properties.staff_name)} ${esc(f.properties.staff_phone || '')}</td></tr>`).join('')}</table>`;
      } else el('spots').innerHTML = `<p class="problem">${esc(spots.reason.message)}</p>`;
      if (overdue.status === 'fulfilled') {
        const o = overdue.value;
        map.getSource('overdue').setData(o.holes);
        el('overdue').innerHTML = `<p class="muted">${o.summary.overdue} / ${o.summary.open} ${t('open_incidents')}</p>
          <table>${o.holes.features.slice(0, 15).map((f) => `<tr><td>${esc(f.properties.id)}<br>${esc((CATEGORIES[f.properties.category] || [f.properties.category])[0])}</td>
          <td>${esc(f.properties.overdue_hours)} ${t('hours')}</td><td>${esc(f.properties.grid_code)}<br>${esc(f.properties.staff_name)} ${esc(f.properties.staff_phone || '')}</td></tr>`).join('')}</table>`;
      } else el('overdue').innerHTML = `<p class="problem">${esc(overdue.reason.message)}</p>`;
      window.gisGrid.analysed = mine;
    };
    ['since', 'until', 'category'].forEach((id) => { el(id).onchange = refresh; });
    map.on('click', async (e) => {
      const g = gridAt(map, e.point, ['community', 'area', 'courtyard']);
      if (g) await showGrid(map, e.lngLat, g.code);
    });
    refresh();
  }

  async function worker(map, me, layers) {
    addGrids(map, LEVELS);
    addStreets(map, layers);
    if (layers.includes('cctv')) addPoints(map, 'cctv', '#1c7ed6', '');
    if (layers.includes('lighting')) addPoints(map, 'lighting', '#f59f00', '');
    if (layers.includes('incidents')) addPoints(map, 'incidents', '#e03131', OPEN.map((s) => `status=${s}`).join('&'));
    map.addSource('mine', { type: 'geojson', data: { type: 'FeatureCollection', features: [] } });
    map.addLayer({ id: 'mine-line', type: 'line', source: 'mine', paint: { 'line-color': '#f03e3e', 'line-width': 4 } });
    el('panel').innerHTML = `<h2>${t('worker')}</h2>
      <form id="find"><input id="q" placeholder="${esc(t('search_staff'))}"> <button class="action">${t('search')}</button></form>
      <div id="found"></div><div id="cover"></div><p class="muted">${t('tap_map')}</p><div id="here"></div>`;
    const cover = async (staffId) => {
      const c = await api(`/staff/${encodeURIComponent(staffId)}`);
      const tops = c.grids.map((g) => g.code).filter((code, _, all) => !all.some((o) => o !== code && code.startsWith(o)));
      const summaries = await Promise.all(tops.map((code) => api(`/grids/${code}/summary`)));
      const open = await Promise.all(tops.map((code) => api(`/collections/incidents/items?under=${code}&limit=20&${OPEN.map((s) => `status=${s}`).join('&')}`).catch(() => null)));
      const holes = await Promise.all(tops.map((code) => api(`/analysis/holes/lighting?under=${code}&level=${c.grids.find((g) => g.code === code).level}`).catch(() => null)));
      el('cover').innerHTML = `<h3>${esc(c.name)} · ${esc((ROLES[c.role] || [c.role_zh])[0])} · ${esc(c.phone)}</h3>
        <table><tr><th>${t('households')}</th><td>${c.households}</td></tr><tr><th>${t('residents')}</th><td>${c.residents ?? ''}</td></tr>
        ${LEVELS.filter((l) => c.counts[l]).map((l) => `<tr><th>${t(l)}</th><td>${c.counts[l]}</td></tr>`).join('')}</table>
        <h3>${t('my_grids')}</h3>${summaries.map((s, i) => `<div data-grid="${esc(s.code)}"><b>${esc(s.name)}</b> <span class="muted">${esc(s.code)}</span>
          <table><tr><th>${t('cameras')}</th><td>${s.cctv ?? ''}</td></tr><tr><th>${t('lamps')}</th><td>${s.lighting ?? ''}</td></tr>
          <tr><th>${t('coverage_pct')}</th><td>${s.coverage_pct == null ? '' : `${s.coverage_pct}%`}</td></tr>
          <tr><th>${t('dark_m')}</th><td>${holes[i] ? `${holes[i].summary.dark_m} m` : ''}</td></tr>
          <tr><th>${t('open_incidents')}</th><td>${s.open_incidents ?? ''} (${t('overdue_incidents')} ${s.overdue_incidents ?? 0})</td></tr></table>
          <ul>${open[i] ? open[i].features.map((f) => `<li>${esc(f.properties.id)} ${esc((CATEGORIES[f.properties.category] || [f.properties.category])[0])} · ${esc(f.properties.status)} · ${esc(String(f.properties.reported_at).slice(0, 16))}</li>`).join('') : ''}</ul></div>`).join('')}`;
      const shapes = await Promise.all(tops.map((code) => api(`/grids/${code}`)));
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
      el('found').innerHTML = found.length ? `<ul>${found.map((s) => `<li><a href="#" data-staff="${esc(s.staff_id)}">${esc(s.name)}</a> ${esc(s.staff_id)} · ${esc((ROLES[s.role] || [s.role])[0])}</li>`).join('')}</ul>` : `<p class="muted">${t('none')}</p>`;
      el('found').querySelectorAll('a[data-staff]').forEach((a) => { a.onclick = (ev) => { ev.preventDefault(); cover(a.dataset.staff); }; });
    };
    map.on('click', async (e) => {
      try {
        const r = await api(`/lookup?lon=${e.lngLat.lng}&lat=${e.lngLat.lat}`);
        el('here').innerHTML = `<table>${r.grids.map((g) => `<tr><th>${t(g.level)}</th><td>${esc(g.name)}<br>${(g.staff || []).map((s) => `${esc(s.name)} ${esc(s.phone || '')}`).join('<br>')}</td></tr>`).join('')}</table>`;
        const g = gridAt(map, e.point);
        if (g) await showGrid(map, e.lngLat, g.code);
      } catch (err) { el('here').innerHTML = `<p class="problem">${esc(err.message)}</p>`; }
    });
    if (me.staff_id) await cover(me.staff_id);
  }

  async function planner(map, me, layers) {
    let version = Date.now();
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
    el('panel').innerHTML = `<h2>${t('planner')}</h2>
      <label>${both('pick_level')} <select id="level">${['area', 'courtyard', 'building'].map((l) => `<option value="${l}">${t(l)}</option>`).join('')}</select></label>
      <label><input type="checkbox" id="take"> ${both('take')}</label>
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
      el('log').innerHTML = `<table>${log.slice(-8).reverse().map((r) => `<tr><td>${r.id}</td><td>${esc(r.operation)}</td><td>${esc(r.summary)}</td><td class="muted">${esc(r.author)}</td></tr>`).join('')}</table>`;
    };
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
          : r.problems.map((p) => `<p class="problem">⚠ ${esc(p.message)}</p>`).join('');
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
    const reloadTiles = () => {
      version = Date.now();
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
        reloadTiles();
        await begin(code);
      } catch (err) {
        el('result').innerHTML = `<p class="problem">${err.status === 409 ? `${t('stale')}: ` : ''}${esc(err.message)}</p>`;
      }
    };
    el('undo').onclick = async () => {
      if (!community) return;
      try {
        const r = await api(`/communities/${community}/undo`, { method: 'POST' });
        el('result').innerHTML = `<p class="ok">${esc(r.operation)} → ${t('saved')} ${r.revision}</p>`;
        reloadTiles();
        if (edit.code) await begin(edit.code);
        showLog();
      } catch (err) { el('result').innerHTML = `<p class="problem">${esc(err.message)}</p>`; }
    };
    window.gisGrid.begin = begin;
  }

  start().catch((err) => {
    if (!el('panel').innerHTML) el('panel').innerHTML = `<p class="problem">${esc(err.message)}</p>`;
    console.error(err);
  });
})();
