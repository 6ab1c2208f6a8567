/* Live push: the server says when a line (or the alerts) changed, the page refreshes at once
 * (components/push.py places the hooks, api/live.py serves the events).
 *
 * Each `.live-push` hook names a dcc.Interval (`data-tick`), the lines it shows
 * (`data-lines`) and whether it shows alerts (`data-alerts`). The page opens one
 * EventSource on /api/live/events for all its hooks' lines (and the alerts when a hook
 * wants them). A `change` advances the Interval of every hook showing a changed line by
 * one, so the refresh callbacks and panel gates run exactly as on a timer tick. While the
 * stream is up the Intervals are disabled; while it is down (or the server says its feed
 * cannot read Redis) they run every `data-refresh-ms` again and the hooks' notes are shown.
 *
 * A tick is not advanced while a callback request is still on its way (dash-renderer
 * would drop the older of two requests of one callback, which the server computes all
 * the same: under a fast stream a slow screen would never get an answer), nor more often
 * than MIN_GAP_MS; changes meanwhile are folded into the next tick, which goes as soon as
 * the answers are in (it reads the newest data).
 */
(function () {
  var MIN_GAP_MS = 50;
  var MAX_HOLD_MS = 8000;   /* a request pending this long (lost?) no longer holds a tick back */
  var REOPEN_MS = 5000;     /* after the server refused the stream (503, push off) */
  var ALERTS = '~alerts';   /* the alerts' channel in `change` events (store/live_feed.py) */
  var inFlight = 0;
  var hooks = {};           /* key -> hook state */
  var conn = {key: null, source: null, lastId: null, reopen: null};
  var state = window.oeePush = {hooks: hooks, ticks: 0, changes: 0, conn: conn};

  /* Count the callback requests on their way (dash-renderer uses fetch). */
  if (window.fetch && !window.fetch.oeePushWrapped) {
    var original = window.fetch;
    var wrapped = function (input, init) {
      var url = typeof input === 'string' ? input : (input && input.url) || '';
      if (url.indexOf('_dash-update-component') < 0) { return original.apply(this, arguments); }
      inFlight += 1;
      var done = function () { inFlight = Math.max(0, inFlight - 1); };
      var p = original.apply(this, arguments);
      p.then(done, done);
      return p;
    };
    wrapped.oeePushWrapped = true;
    window.fetch = wrapped;
  }

  function base() {
    try { return JSON.parse(document.getElementById('_dash-config').textContent).requests_pathname_prefix || '/'; }
    catch (e) { return '/'; }
  }

  function setProps(id, props) {
    var dc = window.dash_clientside;
    if (dc && dc.set_props) { try { dc.set_props(id, props); return true; } catch (e) { return false; } }
    return false;
  }

  function intervalsOf(id) {
    var api = window.dash_component_api;
    if (!api || !api.getLayout) { return 0; }
    try {
      var c = api.getLayout(id);
      var props = c && c.props ? c.props : c;
      return (props && props.n_intervals) || 0;
    } catch (e) { return 0; }
  }

  function show(h, up) {
    if (h.up === up) { return; }
    h.up = up;
    h.el.dataset.state = up ? 'up' : 'down';
    if (h.note) { h.el.classList.toggle('d-none', up); }
    setProps(h.tick, up ? {disabled: true} : {disabled: false, interval: h.refreshMs});
  }

  function tick(h) {
    h.timer = null;
    if (!h.open) { return; }
    var now = Date.now();
    var wait = Math.max(0, h.last + MIN_GAP_MS - now);
    if (!wait && inFlight > 0 && now - h.heldSince < MAX_HOLD_MS) { wait = 50; }
    if (wait) { h.timer = setTimeout(function () { tick(h); }, wait); return; }
    h.last = now;
    h.heldSince = Infinity;
    state.ticks += 1;
    setProps(h.tick, {n_intervals: intervalsOf(h.tick) + 1});
  }

  function changed(h) {
    state.changes += 1;
    if (h.heldSince === Infinity) { h.heldSince = Date.now(); }
    if (!h.timer) { tick(h); }
  }

  function shows(h, channel) {
    return channel === ALERTS ? h.alerts : h.lines.indexOf(channel) >= 0;
  }

  function each(fn) { Object.keys(hooks).forEach(function (k) { fn(hooks[k]); }); }

  function parse(e) {
    try { return JSON.parse(e.data) || {}; } catch (err) { return {}; }
  }

  /* What the page's one stream must follow: every hook's lines, and the alerts if asked. */
  function wanted() {
    var lines = {}, alerts = false;
    each(function (h) {
      h.lines.forEach(function (l) { lines[l] = true; });
      alerts = alerts || h.alerts;
    });
    var list = Object.keys(lines).sort();
    if (!list.length && !alerts) { return null; }
    return {lines: list, alerts: alerts, key: list.join(',') + (alerts ? '|alerts' : '')};
  }

  function disconnect() {
    if (conn.source) { conn.source.close(); }
    clearTimeout(conn.reopen);
    conn.source = null;
    conn.key = null;
  }

  function connect(want) {
    disconnect();
    conn.key = want.key;
    if (!window.EventSource) { each(function (h) { show(h, false); }); return; }
    var query = [];
    if (want.lines.length) { query.push('line=' + encodeURIComponent(want.lines.join(','))); }
    if (want.alerts) { query.push('alerts=1'); }
    if (conn.lastId) { query.push('last_event_id=' + encodeURIComponent(conn.lastId)); }
    var source = conn.source = new EventSource(base() + 'api/live/events?' + query.join('&'));
    var remember = function (e) { if (e.lastEventId) { conn.lastId = e.lastEventId; } };
    source.addEventListener('hello', function (e) {
      remember(e);
      var up = parse(e).up !== false;
      each(function (h) {
        if (h.up === false && up) { changed(h); }  /* back: catch up once */
        show(h, up);
      });
    });
    source.addEventListener('change', function (e) {
      remember(e);
      var lines = (parse(e).lines || []).map(function (c) { return c.line; });
      each(function (h) {
        if (lines.some(function (l) { return shows(h, l); })) { changed(h); }
      });
    });
    source.addEventListener('status', function (e) {
      var up = Boolean(parse(e).up);
      each(function (h) {
        if (up) { changed(h); }
        show(h, up);
      });
    });
    source.onerror = function () {
      each(function (h) { show(h, false); });
      if (source.readyState === 2 && conn.source === source) {  /* refused: the browser will not retry by itself */
        source.close();
        conn.reopen = setTimeout(function () { conn.key = null; scan(); }, REOPEN_MS);
      }
    };
  }

  function close(h) {
    h.open = false;
    clearTimeout(h.timer);
  }

  function scan() {
    var seen = {};
    var els = document.querySelectorAll('.live-push[data-tick]');
    for (var i = 0; i < els.length; i++) {
      var el = els[i];
      var key = el.dataset.tick + '|' + (el.dataset.lines || '') + '|' + (el.dataset.alerts || '');
      seen[key] = true;
      var h = hooks[key];
      if (h && h.el === el) { continue; }
      if (h) { close(h); }
      hooks[key] = {
        el: el, tick: el.dataset.tick, lines: (el.dataset.lines || '').split(',').filter(Boolean),
        alerts: el.dataset.alerts === '1', note: el.dataset.note !== '0',
        refreshMs: parseInt(el.dataset.refreshMs, 10) || 2000,
        open: true, up: null, last: 0, heldSince: Infinity, timer: null
      };
    }
    Object.keys(hooks).forEach(function (k) {
      if (!seen[k]) { close(hooks[k]); delete hooks[k]; }
    });
    var want = wanted();
    if (!want) { disconnect(); return; }
    if (want.key !== conn.key) { connect(want); return; }
    /* the same stream: a new hook takes the stream's state (up or down) at once */
    var up = null;
    each(function (h) { if (h.up !== null && up === null) { up = h.up; } });
    if (up !== null) { each(function (h) { show(h, up); }); }
  }

  function start() {
    scan();
    var pending = null;  /* page changes come in bursts: look once per burst */
    new MutationObserver(function () {
      if (!pending) { pending = setTimeout(function () { pending = null; scan(); }, 50); }
    }).observe(document.body, {childList: true, subtree: true});
    window.addEventListener('pagehide', function () {
      each(close);
      disconnect();
    });
  }

  if (document.readyState === 'loading') { document.addEventListener('DOMContentLoaded', start); }
  else { start(); }
})();
