/* The gate between a page's 2 s timer and its panels' server callbacks
 * (components/ranges.py, class Live).
 *
 * A panel is drawn by one callback and kept live by another. On each tick this asks the
 * server for a live update only when the panel holds a draw of the range on screen and
 * that range reaches now; past ranges never poll. When a draw has not arrived for a while
 * (a dropped request, a server error) it asks for the draw again.
 */
window.dash_clientside = window.dash_clientside || {};
window.dash_clientside.oee = Object.assign({}, window.dash_clientside.oee, {
  /* -> [pulse, redraw, wait]; viewFilter (optional): a filter that is part of the view */
  panelTick: function (n, drawn, params, wait, viewFilter) {
    var nu = window.dash_clientside.no_update;
    var same = function (a, b) {
      return Boolean(a) && Boolean(b) && (a.start || null) === (b.start || null) && (a.end || null) === (b.end || null);
    };
    var filter = viewFilter === undefined ? null : viewFilter;
    if (drawn && same(drawn.params, params) && (drawn.filter === undefined ? null : drawn.filter) === filter) {
      if (drawn.live && drawn.quiet_ms && window.dash_clientside.oee.quiet(drawn)) { return [nu, nu, wait ? null : nu]; }
      return [drawn.live ? n : nu, nu, wait ? null : nu];
    }
    var now = Date.now();
    var key = JSON.stringify([params && params.start, params && params.end, filter]);
    if (!wait || wait.key !== key) {
      return [nu, nu, {key: key, since: now}];
    }
    var after = (drawn && drawn.redraw_after_ms) || 12000;
    if (now - wait.since > after) {
      return [nu, now, {key: key, since: now}];
    }
    return [nu, nu, nu];
  },
  /* A drawn record with `quiet_ms` (the range label: it changes once a minute) is not
   * asked again until that long after this gate first saw it (the browser's clock). */
  quiet: (function () {
    var seen = {};
    return function (drawn) {
      var key = JSON.stringify(drawn);
      var now = Date.now();
      if (!(key in seen)) {
        if (Object.keys(seen).length > 32) { seen = {}; }
        seen[key] = now;
      }
      return now - seen[key] < drawn.quiet_ms;
    };
  })()
});
