/* Wall sound (components/alerts_panel.py): with ?sound=1 on the wall's URL, a short beep
 * every 2 s while an urgent alert flashes unacknowledged. Web Audio, no media file. A
 * kiosk browser must allow sound without a click: Chromium/Chrome
 * --autoplay-policy=no-user-gesture-required (README "Alerts"). */
(function () {
  var ctx = null;
  function beep() {
    try {
      ctx = ctx || new (window.AudioContext || window.webkitAudioContext)();
      var osc = ctx.createOscillator(), gain = ctx.createGain();
      osc.frequency.value = 880;
      gain.gain.value = 0.2;
      osc.connect(gain);
      gain.connect(ctx.destination);
      osc.start();
      osc.stop(ctx.currentTime + 0.25);
    } catch (e) { /* no audio: the wall still flashes */ }
  }
  setInterval(function () {
    var wall = document.getElementById('alerts-wall');
    if (wall && wall.getAttribute('data-sound') === '1' && wall.className.indexOf('wall-alerts-flashing') >= 0) {
      beep();
    }
  }, 2000);
})();
