/* Client-side callbacks: wall rotation and the connection watchdog.
 *
 * They run in the browser so a wall keeps rotating and can say "no data since HH:MM"
 * while the server is unreachable (restart, network drop); when answers come back
 * the server callbacks fill the numbers in again, no reload needed.
 */
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

    /* Banner text, banner class, root class. Offline when no answer for a while. */
    watchdog: function (n, lastSeen, lastOk, view) {
      var base = (view && view.root_class) || 'wall';
      var limit = (view && view.offline_after_ms) || 7000;
      var waited = lastSeen ? Date.now() - lastSeen : (n || 0) * ((view && view.refresh_ms) || 2000);
      if (waited <= limit) {
        return ['', 'wall-banner d-none', base];
      }
      var text = 'no data';
      if (lastOk && lastOk.at) {
        try {
          var fmt = new Intl.DateTimeFormat('en-GB', {
            timeZone: view.tz, hour: '2-digit', minute: '2-digit', hour12: false
          });
          text = 'no data since ' + fmt.format(new Date(lastOk.at * 1000));
        } catch (e) {
          text = 'no data since ' + new Date(lastOk.at * 1000).toTimeString().slice(0, 5);
        }
      }
      return [text + ' \u2014 server not answering, retrying', 'wall-banner', base + ' offline'];
    }
  }
});
