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
  const communities = await api('/collections/community/items?limit=50');
  el('panel').innerHTML = `<h2>${t('overview')}</h2>
    <h3>${t('layers')}</h3>${toggles.map((l) => `<label><input type="checkbox" data-layer="${l}" checked> ${t(l)}</label>`).join('')}
    <h3>${t('community')}</h3><table><tr><th>${t('name')}</th><th>${t('households')}</th><th>${t('residents')}</th></tr>
    ${communities.features.map((f) => `<tr><td>${esc(f.properties.name)}</td><td>${esc(f.properties.households)}</td><td>${esc(f.properties.residents)}</td></tr>`).join('')}</table>
    ${communities.numberMatched > 50 ? `<p class="muted">+${communities.numberMatched - 50}</p>` : ''}
    <p class="muted">${t('click_grid')}</p>`;
  el('panel').querySelectorAll('input[data-layer]').forEach((box) => {
    box.onchange = () => setVisible(map, box.dataset.layer, box.checked);
  });
  map.on('click', async (e) => {
    const g = gridAt(map, e.point);
    if (g) window.gisGrid.popup = await showGrid(map, e.lngLat, g.code);
  });
}

run(overview);
