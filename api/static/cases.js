/* gis-grid map pages: cases — a list with time left and owners, a case's timeline, its next steps as buttons. */
import { CATEGORIES, t, tf, esc, el, api, label, when } from './map.js';

/** Steps each role may take (as the server checks them): the page offers only these. */
const MAY = {
  admin: ['accept', 'reject', 'dispatch', 'handle', 'verify', 'rework', 'close', 'extend', 'suspend', 'resume', 'reopen', 'escalate'],
  supervisor: ['accept', 'reject', 'dispatch', 'handle', 'verify', 'rework', 'close', 'extend', 'suspend', 'resume', 'reopen', 'escalate'],
  grid_worker: ['handle', 'verify', 'rework'],
};
/** What a step asks for before it is sent. */
const ASKS = {
  reject: ['note!'], rework: ['note!'], suspend: ['note!'], reopen: ['note!'],
  dispatch: ['assignee', 'department'], handle: ['note', 'photo'], close: ['satisfaction'], extend: ['hours!', 'note'],
};
const FIELD = {
  note: ['note', 'text'], photo: ['photo', 'url'], assignee: ['assignee', 'text'], department: ['department', 'text'],
  satisfaction: ['satisfaction', 'number'], hours: ['hours_to_add', 'number'],
};

/** Time left as a person reads it: "3h20 left" or "late by 1.5 d". */
export function timeLeft(hours) {
  if (hours === null || hours === undefined) return '';
  const a = Math.abs(hours);
  const text = a >= 24 ? tf('span_days', { d: (a / 24).toFixed(1) })
    : tf('span_hours', { h: Math.floor(a), m: String(Math.round((a % 1) * 60)).padStart(2, '0') });
  return hours < 0 ? `<span class="late">${t('late_by')} ${text}</span>` : `${t('left')} ${text}`;
}

export function ownerText(owner) {
  if (!owner) return '';
  const person = owner.staff_name || t('none');
  const phone = owner.phone ? ` <a class="tel" href="tel:${esc(owner.phone)}">${esc(owner.phone)}</a>` : '';
  const place = owner.level === 'street' ? t('street') : (owner.name || owner.code);
  return `${esc(person)}${phone} · <span title="${esc(owner.code)}">${esc(place)}</span>`;
}

/** One case as a list row: category, status, time left, owner; a click opens it. */
function row(c) {
  const flags = [
    c.escalation ? `<span class="tag">${t('escalated')} ×${c.escalation}</span>` : '',
    c.reworks ? `<span class="tag">${t('reworked')} ×${c.reworks}</span>` : '',
    c.duplicate_of ? `<span class="tag">${t('duplicate')} ${esc(c.duplicate_of)}</span>` : '',
  ].join('');
  return `<li class="case ${c.overdue ? 'overdue' : ''}" data-case="${esc(c.id)}">
    <b>${esc(label(CATEGORIES, c.category))}</b> · ${esc(t(c.status))} · ${timeLeft(c.hours_left)} ${flags}
    <br><span class="muted"><span class="nowrap">${esc(when(c.reported_at))}</span> · ${esc(c.id)}</span> · ${ownerText(c.owner)}</li>`;
}

/**
 * A list of cases in `box` (an element id) from `/cases?query`, paged; a click shows the case in `detail`.
 * Returns a function that reloads it.
 */
export function caseList(box, detail, me, query, onPick) {
  let offset = 0;
  const load = async (more = false) => {
    offset = more ? offset + 30 : 0;
    const found = await api(`/cases?${query()}&limit=30&offset=${offset}`);
    const items = found.cases.map(row).join('');
    const list = more ? el(box).querySelector('ul') : null;
    if (list) list.insertAdjacentHTML('beforeend', items);
    else el(box).innerHTML = found.total ? `<ul class="cases">${items}</ul>` : `<p class="muted">${t('no_cases')}</p>`;
    const shown = Math.min(found.total, offset + found.cases.length);
    el(box).querySelector('.count')?.remove();
    el(box).insertAdjacentHTML('beforeend', `<p class="muted count">${shown} / ${found.total}
      ${shown < found.total ? `<button class="action more">${t('more')}</button>` : ''}</p>`);
    el(box).querySelector('.more')?.addEventListener('click', () => load(true));
    el(box).querySelectorAll('li.case').forEach((li) => {
      li.onclick = () => showCase(detail, li.dataset.case, me, () => load(), onPick);
    });
    window.gisGrid.cases = found;
    return found;
  };
  return load;
}

/** A case's panel: its state, owner, timeline and the buttons of the next steps this user may take. */
export async function showCase(box, id, me, reload, onPick) {
  const c = await api(`/cases/${encodeURIComponent(id)}`);
  const may = (MAY[me.role] || []).filter((s) => c.next_steps.includes(s));
  el(box).innerHTML = `<div class="case-card" data-case="${esc(c.id)}">
    <h3>${esc(label(CATEGORIES, c.category))} · ${esc(t(c.status))} <span class="muted">${esc(c.id)}</span></h3>
    <p>${timeLeft(c.hours_left)}${c.deadline ? ` <span class="muted">(${t('due')} ${esc(when(c.deadline))})</span>` : ''}</p>
    <p>${t('owner')}: ${ownerText(c.owner)}${c.department ? ` · ${esc(c.department)}` : ''}</p>
    ${c.outside ? `<p class="problem">${t('outside')}</p>` : ''}
    ${c.description ? `<p>${esc(c.description)}</p>` : ''}
    <div class="steps">${may.map((s) => `<button class="action" data-step="${s}">${t(s)}</button>`).join('')}</div>
    <form class="ask" hidden></form><p class="said"></p>
    <h3>${t('timeline')}</h3><table class="timeline">${c.timeline.map((r) => `<tr>
      <td class="nowrap">${esc(when(r.at))}</td><td>${esc(t(r.action))}${r.on_time === false ? ` <span class="late">${t('late_now')}</span>` : ''}</td>
      <td>${esc(r.actor)}${r.note ? `<br><span class="muted">${esc(r.note)}</span>` : ''}</td></tr>`).join('')}</table></div>`;
  const card = el(box).querySelector('.case-card');
  if (onPick) onPick(c);
  const said = card.querySelector('.said');
  const send = async (action, values) => {
    const body = { action, version: c.version, ...values };
    try {
      await api(`/cases/${encodeURIComponent(c.id)}/steps`, { method: 'POST', body: JSON.stringify(body) });
      await showCase(box, id, me, reload, onPick);
      if (reload) reload();
    } catch (err) {
      said.innerHTML = `<span class="problem">${esc(err.message)}</span>${err.status === 409
        ? ` <button class="action" id="reload-case">${t('reload')}</button>` : ''}`;
      card.querySelector('#reload-case')?.addEventListener('click', () => showCase(box, id, me, reload, onPick));
    }
  };
  card.querySelectorAll('button[data-step]').forEach((b) => {
    b.onclick = () => {
      const action = b.dataset.step;
      const asks = ASKS[action] || [];
      if (!asks.length) { send(action, {}); return; }
      const form = card.querySelector('form.ask');
      form.hidden = false;
      form.innerHTML = `<b>${t(action)}</b>${asks.map((a) => {
        const key = a.replace('!', ''); const [msg, type] = FIELD[key];
        return `<label>${t(msg)}${a.endsWith('!') ? ' *' : ''}<input name="${key}" type="${type}" ${a.endsWith('!') ? 'required' : ''}
          ${type === 'number' ? 'step="any" min="0"' : ''}></label>`;
      }).join('')}<button class="action">${t('confirm')}</button>`;
      form.onsubmit = (e) => {
        e.preventDefault();
        const values = {};
        for (const input of form.querySelectorAll('input')) {
          if (input.value === '') continue;
          values[input.name] = input.type === 'number' ? Number(input.value) : input.value;
        }
        form.hidden = true;
        send(action, values);
      };
    };
  });
  return c;
}

/** The indicator table per area with a CSV download (the same numbers as `gis-grid indicators`). */
export async function indicatorTable(box) {
  const d = await api('/indicators?by=area');
  const pct = (v) => (v === null || v === undefined ? '' : `${Math.round(v * 100)}%`);
  el(box).innerHTML = `<table class="indicators"><tr><th>${t('area')}</th><th>${t('reported_n')}</th><th>${t('closure')}</th>
    <th>${t('on_time')}</th><th>${t('rework_rate')}</th><th>${t('escalation_rate')}</th><th>${t('late_now')}</th><th>${t('sat')}</th></tr>
    ${d.rows.map((r) => `<tr><td title="${esc(r.code)}">${esc(r.name || r.code)}</td><td>${r.reported}</td><td>${pct(r.closure_rate)}</td>
      <td>${pct(r.on_time_rate)}</td><td>${pct(r.rework_rate)}</td><td>${pct(r.escalation_rate)}</td><td>${r.overdue}</td>
      <td>${r.mean_satisfaction ?? ''}</td></tr>`).join('')}</table>
    <p class="muted">${esc(d.from)} → ${esc(d.to)} <button class="action" id="${box}-csv">${t('export_csv')}</button></p>`;
  el(`${box}-csv`).onclick = async () => {
    const text = await api('/indicators?by=area&format=csv');
    const a = document.createElement('a');
    a.href = URL.createObjectURL(new Blob([text], { type: 'text/csv' }));
    a.download = `indicators-area-${d.from}-${d.to}.csv`;
    a.click();
  };
  return d;
}
