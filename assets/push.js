/* Live push: the server says when a line changed, the page refreshes at once
 * (components/push.py places the hook, api/live.py serves the events).
 *
 * For each `.live-push` hook on the page: one EventSource on /api/live/events for its
 * lines. A `change` advances the page's own dcc.Interval (`data-tick`) by one, so the
 * refresh callbacks and panel gates run exactly as on a timer tick. While the stream is
 * up the Interval is disabled; while it is down (or the server says its feed cannot read
 * Redis) the Interval runs every `data-refresh-ms` again and the hook's note is shown.
 *
 * A tick is not advanced while a callback request is still on its way (dash-renderer
 * would drop the older of two requests of one callback, which the server computes all
 * the same: under a fast stream a slow screen would never get an answer), nor more often
 * than MIN_GAP_MS; changes meanwhile are folded into the next tick, which goes as soon as
 * the answers are in (it reads the newest data).
 */
(function () {
  var MIN_GAP_MS = 100;
  var MAX_HOLD_MS = 8000;   /* a request pending this long (lost?) no longer holds a tick back */
  var REOPEN_MS = 5000;     /* after the server refused the stream (503, push off) */
  var inFlight = 0;
  var hooks = {};           /* key -> hook state */
  var state = window.oeePush = {hooks: hooks, ticks: 0, changes: 0};

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
    h.el.classList.toggle('d-none', up);
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

  function connect(h) {
    if (!h.open || !window.EventSource) { show(h, false); return; }
    var url = base() + 'api/live/events?line=' + encodeURIComponent(h.lines);
    if (h.lastId) { url += '&last_event_id=' + encodeURIComponent(h.lastId); }
    var source = h.source = new EventSource(url);
    var remember = function (e) { if (e.lastEventId) { h.lastId = e.lastEventId; } };
    source.addEventListener('hello', function (e) {
      remember(e);
      var msg = {};
      try { msg = JSON.parse(e.data); } catch (err) { msg = {}; }
      if (h.up === false && msg.up !== false) { changed(h); }  /* back: catch up once */
      show(h, msg.up !== false);
    });
    source.addEventListener('change', function (e) {
      remember(e);
      changed(h);
    });
    source.addEventListener('status', function (e) {
      var msg = {};
      try { msg = JSON.parse(e.data); } catch (err) { msg = {}; }
      if (msg.up) { changed(h); }
      show(h, Boolean(msg.up));
    });
    source.onerror = function () {
      show(h, false);
      if (source.readyState === 2 && h.open) {  /* refused: the browser will not retry by itself */
        source.close();
        h.reopen = setTimeout(function () { connect(h); }, REOPEN_MS);
      }
    };
  }

  function close(h) {
    h.open = false;
    if (h.source) { h.source.close(); }
    clearTimeout(h.timer);
    clearTimeout(h.reopen);
  }

  function scan() {
    var seen = {};
    var els = document.querySelectorAll('.live-push[data-tick]');
    for (var i = 0; i < els.length; i++) {
      var el = els[i];
      var key = el.dataset.tick + '|' + el.dataset.lines;
      seen[key] = true;
      var h = hooks[key];
      if (h && h.el === el) { continue; }
      if (h) { close(h); }
      h = hooks[key] = {
        el: el, tick: el.dataset.tick, lines: el.dataset.lines,
        refreshMs: parseInt(el.dataset.refreshMs, 10) || 2000,
        open: true, up: null, last: 0, heldSince: Infinity, timer: null, source: null, lastId: null
      };
      connect(h);
    }
    Object.keys(hooks).forEach(function (k) {
      if (!seen[k]) { close(hooks[k]); delete hooks[k]; }
    });
  }

  function start() {
    scan();
    var pending = null;  /* page changes come in bursts: look once per burst */
    new MutationObserver(function () {
      if (!pending) { pending = setTimeout(function () { pending = null; scan(); }, 50); }
    }).observe(document.body, {childList: true, subtree: true});
    window.addEventListener('pagehide', function () {
      Object.keys(hooks).forEach(function (k) { close(hooks[k]); });
    });
  }

  if (document.readyState === 'loading') { document.addEventListener('DOMContentLoaded', start); }
  else { start(); }
})();
