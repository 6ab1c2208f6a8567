/* Client-side callbacks: wall rotation and the connection watchdog.
 *
 * They run in the browser so a wall keeps rotating and can say "no data since HH:MM"
 * while the server is unreachable (restart, network drop); when answers come back
 * the server callbacks fill the numbers in again, no reload needed. When the callbacks
 * are late but the server answers /api/health, the banner says what it is doing instead
 * ("catching up history (n %)" while the rollup worker works through a backlog): a
 * screen never claims the server is down when it answers.
 */

/* plotly.js for dcc.Graph: the vendored partial bundle (components/delivery.py), not the
 * full 4.8 MB one. dash-renderer sets window._dashPlotlyJSURL at start; this keeps ours. */
(function () {
  var me = document.currentScript && document.currentScript.src;
  if (!me) { return; }
  var url = me.replace(/dashboard\.js(\?.*)?$/, 'vendor/plotly-finance-4.1.0.min.js');
  try {
    Object.defineProperty(window, '_dashPlotlyJSURL', {
      configurable: true, get: function () { return url; }, set: function () {}
    });
  } catch (e) { /* keep Dash's default */ }
})();

/* What /api/health last said, asked for only while callbacks are late. */
var oeeHealth = {asked: 0, answered: 0, ok: null, lag: null, maxLag: null, catchingUp: false};

/* A banner text in the page's language: components/i18n.py client_texts() puts them in the
 * view store (wall, overview) or the status line's data-texts; {name} placeholders filled. */
function oeeT(texts, key, fallback, args) {
  var text = (texts && texts[key]) || fallback;
  Object.keys(args || {}).forEach(function (k) { text = text.split('{' + k + '}').join(args[k]); });
  return text;
}

/* The rollup worker is catching up when a line's closed minutes lag this far behind. */
var CATCHING_UP_LAG_S = 300;
/* A server that takes longer than this for /api/health is taken as not answering. */
var HEALTH_TIMEOUT_MS = 20000;

/* Every `everyMs` at most: 2 s while callbacks are late or the worker catches up, else 10 s. */
function oeeAskHealth(everyMs) {
  var now = Date.now();
  if (oeeHealth.pending || now - oeeHealth.asked < everyMs) { return; }
  oeeHealth.asked = now;
  oeeHealth.pending = true;
  var base = '/';
  try { base = JSON.parse(document.getElementById('_dash-config').textContent).requests_pathname_prefix; }
  catch (e) { /* the root */ }
  var ctrl = window.AbortController ? new AbortController() : null;
  var timer = setTimeout(function () { if (ctrl) { ctrl.abort(); } }, HEALTH_TIMEOUT_MS);
  fetch(base + 'api/health', {cache: 'no-store', signal: ctrl ? ctrl.signal : undefined})
    .then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (h) { h.status = r.status; return h; });
    })
    .then(function (h) {
      oeeHealth.answered = Date.now();
      oeeHealth.ok = true;
      oeeHealth.dbDown = h.redis ? h.redis.ok === false : h.status >= 500;
      var lags = (h.lines || []).map(function (l) {
        var w = l.worker || {};
        return Math.max(w.closed_lag_s || 0, w.undelivered_s || 0);
      });
      var lag = lags.length ? Math.max.apply(null, lags) : 0;
      var losses = (h.lines || []).map(function (l) { return l.data_loss; }).filter(Boolean);
      oeeHealth.lost = losses.length ? {
        from: Math.min.apply(null, losses.map(function (d) { return d.from || d.detected || 0; })),
        to: Math.max.apply(null, losses.map(function (d) { return d.to || d.detected || 0; }))
      } : null;
      oeeHealth.lag = lag;
      oeeHealth.catchingUp = lag > CATCHING_UP_LAG_S;
      oeeHealth.maxLag = oeeHealth.catchingUp ? Math.max(oeeHealth.maxLag || 0, lag) : null;
    })
    .catch(function () { oeeHealth.ok = false; oeeHealth.catchingUp = false; })
    .then(function () { clearTimeout(timer); oeeHealth.pending = false; });
}

/* A time as the plant reads it (its time zone), with the date when asked. */
function oeeClock(ts, view, withDate) {
  try {
    var options = {timeZone: view.tz, hour: '2-digit', minute: '2-digit', hour12: false};
    if (withDate) { options.month = '2-digit'; options.day = '2-digit'; }
    return new Intl.DateTimeFormat('en-GB', options).format(new Date(ts * 1000));
  } catch (e) {
    return new Date(ts * 1000).toISOString().slice(withDate ? 5 : 11, 16).replace('T', ' ');
  }
}

/* Progress of the catch-up, from the largest lag seen since this page opened. */
function oeeCatchUpPercent(lag, maxLag) {
  if (!maxLag || maxLag <= CATCHING_UP_LAG_S) { return 0; }
  var done = (maxLag - lag) / (maxLag - CATCHING_UP_LAG_S);
  return Math.max(0, Math.min(99, Math.floor(done * 100)));
}

window.dash_clientside = Object.assign({}, window.dash_clientside, {
  oee: {
    /* One style per tile: with ?rotate=N only the current line's tile is shown. */
    rotate: function (n, view) {
      var ids = (view && view.lines) || [];
      if (!view || !view.rotate || ids.length < 2) {
        return ids.map(function () { return {}; });
      }
      var current = (n || 0) % ids.length;
      return ids.map(function (_, i) { return i === current ? {} : {display: 'none'}; });
    },

    /* When did an answer from the server last arrive (browser clock, ms). */
    seen: function (lastOk) {
      return lastOk ? Date.now() : window.dash_clientside.no_update;
    },

    /* The line and machine pages' status line: what /api/health says about the figures. */
    pageStatus: function (n, view) {
      oeeAskHealth(oeeHealth.catchingUp ? 2000 : 10000);
      var status = document.getElementById('range-status');
      var tz = (status && status.dataset && status.dataset.tz) || undefined;  /* the plant's time zone */
      var texts = null;
      try { texts = JSON.parse((status && status.dataset && status.dataset.texts) || 'null'); } catch (e) { texts = null; }
      if (oeeHealth.catchingUp) {
        var pct = oeeCatchUpPercent(oeeHealth.lag, oeeHealth.maxLag);
        return [oeeT(texts, 'catching_up', 'catching up history ({pct} %) \u2014 figures fill in as it goes', {pct: pct}),
                'wall-banner catching-up'];
      }
      if (oeeHealth.lost) {
        var v = {tz: tz};
        return [oeeT(texts, 'lost', 'Redis lost data: figures from {from} to {to} are incomplete (see /api/health)',
                     {from: oeeClock(oeeHealth.lost.from, v, true), to: oeeClock(oeeHealth.lost.to, v, true)}),
                'wall-banner data-lost'];
      }
      return ['', 'wall-banner d-none'];
    },

    /* Banner text, banner class, root class. When callbacks are late, ask /api/health:
     * an answer means the server is up (catching up, or slow), no answer means it is down. */
    watchdog: function (n, lastSeen, lastOk, view) {
      var base = (view && view.root_class) || 'wall';
      var texts = view && view.texts;
      var limit = (view && view.offline_after_ms) || 7000;
      var waited = lastSeen ? Date.now() - lastSeen : (n || 0) * ((view && view.refresh_ms) || 2000);
      oeeAskHealth(waited > limit / 2 || oeeHealth.catchingUp ? 2000 : 10000);
      var fresh = oeeHealth.answered && (oeeHealth.pending || Date.now() - oeeHealth.answered < 2 * limit);
      if (oeeHealth.catchingUp && fresh) {
        var pct = oeeCatchUpPercent(oeeHealth.lag, oeeHealth.maxLag);
        return [oeeT(texts, 'catching_up', 'catching up history ({pct} %) \u2014 figures fill in as it goes', {pct: pct}),
                'wall-banner catching-up', base + ' catching-up'];
      }
      if (oeeHealth.lost && fresh && waited <= limit) {
        /* The rollup worker found its bookkeeping gone: Redis lost data. Say so instead of
         * showing short figures as if they were whole. */
        return [oeeT(texts, 'lost', 'Redis lost data: figures from {from} to {to} are incomplete (see /api/health)',
                     {from: oeeClock(oeeHealth.lost.from, view, true), to: oeeClock(oeeHealth.lost.to, view, true)}),
                'wall-banner data-lost', base];
      }
      if (waited <= limit) {
        return ['', 'wall-banner d-none', base];
      }
      var answering = oeeHealth.ok && fresh;
      var text = oeeT(texts, 'no_data', 'no data');
      if (lastOk && lastOk.at) {
        try {
          var fmt = new Intl.DateTimeFormat('en-GB', {
            timeZone: view.tz, hour: '2-digit', minute: '2-digit', hour12: false
          });
          text = oeeT(texts, 'no_data_since', 'no data since {time}', {time: fmt.format(new Date(lastOk.at * 1000))});
        } catch (e) {
          text = oeeT(texts, 'no_data_since', 'no data since {time}',
                      {time: new Date(lastOk.at * 1000).toTimeString().slice(0, 5)});
        }
      }
      if (answering && oeeHealth.dbDown) {
        return [text + ' \u2014 ' + oeeT(texts, 'db_down', 'the server answers, its database does not; retrying'),
                'wall-banner', base + ' offline'];
      }
      if (answering) {
        return [text + ' \u2014 ' + oeeT(texts, 'busy', 'server busy, waiting for figures'), 'wall-banner catching-up',
                base + ' catching-up'];
      }
      if (oeeHealth.pending && oeeHealth.ok !== false) {
        return [text + ' \u2014 ' + oeeT(texts, 'waiting', 'waiting for the server'), 'wall-banner catching-up',
                base + ' catching-up'];
      }
      return [text + ' \u2014 ' + oeeT(texts, 'down', 'server not answering, retrying'), 'wall-banner', base + ' offline'];
    }
  }
});
