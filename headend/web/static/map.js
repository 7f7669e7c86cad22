// Meters on a map: Leaflet (served by the head-end) draws them over the configured base
// layer (OpenStreetMap tiles, an internal tile server, or tiles the head-end serves itself
// from a folder or an MBTiles file), or over a plain grid when there is none; without
// Leaflet a canvas draws the markers alone.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("map-data").textContent);
  var text = JSON.parse(document.getElementById("map-text").textContent);
  var el = document.getElementById("map");
  var tiles = JSON.parse(document.getElementById("map-tiles").textContent);

  function popup(m) {
    var a = document.createElement("div");
    var link = document.createElement("a");
    link.href = text.base + "/meters/" + encodeURIComponent(m.code);
    link.textContent = text.meter + " " + m.code;
    a.appendChild(link);
    [m.address, m.account && (m.account + " " + (m.subscriber || "")),
     text.last_contact + ": " + (m.last_contact_text || text.never)]
      .forEach(function (line) {
        if (!line) return;
        var d = document.createElement("div");
        d.textContent = line;
        a.appendChild(d);
      });
    return a;
  }

  function leaflet() {
    var map = L.map(el, {attributionControl: !!tiles.url, preferCanvas: false, maxZoom: tiles.maxZoom || 19});
    if (tiles.url) {
      map.attributionControl.setPrefix('<a href="https://leafletjs.com">Leaflet</a>');
      var opts = {attribution: tiles.attribution, maxZoom: tiles.maxZoom || 19,
                  // the page keeps its address to itself; tile servers such as OpenStreetMap's want the site
                  referrerPolicy: "strict-origin-when-cross-origin"};
      if (tiles.maxNativeZoom) opts.maxNativeZoom = tiles.maxNativeZoom;
      L.tileLayer(tiles.url, opts).addTo(map);
      el.classList.add("with-tiles");
    }
    var group = L.markerClusterGroup({
      showCoverageOnHover: false,
      maxClusterRadius: 40,
      disableClusteringAtZoom: 17,  // close up, every meter shows on its own
      iconCreateFunction: function (cluster) {
        return L.divIcon({html: "<span>" + cluster.getChildCount() + "</span>", className: "askue-cluster",
                          iconSize: L.point(34, 34)});
      }
    });
    data.markers.forEach(function (m) {
      var mk = L.circleMarker([m.lat, m.lon], {radius: 8, color: "#222", weight: 1, fillColor: m.color,
                                               fillOpacity: 0.95, className: "askue-marker bucket-" + m.bucket});
      mk.bindPopup(function () { return popup(m); });
      group.addLayer(mk);
    });
    map.addLayer(group);
    if (data.markers.length) {
      map.fitBounds(group.getBounds().pad(0.2), {maxZoom: Math.min(17, tiles.maxZoom || 17)});
    } else {
      // nothing has coordinates: the whole country, as the Квант-Энерго cabinet shows it
      // (Kaliningrad to Chukotka, the Caucasus to the Taymyr coast: the Arctic islands would
      // take a zoom level off in Mercator)
      map.fitBounds([[41.2, 19.6], [77.7, 180]]);
    }
    window.askueMap = map;
  }

  function canvas() {
    var c = document.createElement("canvas");
    c.width = el.clientWidth || 800;
    c.height = el.clientHeight || 520;
    el.appendChild(c);
    var g = c.getContext("2d");
    var ms = data.markers;
    if (!ms.length) return;
    var lat0 = Math.min.apply(null, ms.map(function (m) { return m.lat; }));
    var lat1 = Math.max.apply(null, ms.map(function (m) { return m.lat; }));
    var lon0 = Math.min.apply(null, ms.map(function (m) { return m.lon; }));
    var lon1 = Math.max.apply(null, ms.map(function (m) { return m.lon; }));
    var pad = 30, sx = (c.width - 2 * pad) / Math.max(lon1 - lon0, 1e-4), sy = (c.height - 2 * pad) / Math.max(lat1 - lat0, 1e-4);
    var s = Math.min(sx, sy);
    var cells = {};
    ms.forEach(function (m) {  // cluster markers closer than ~20 px
      var x = pad + (m.lon - lon0) * s, y = c.height - pad - (m.lat - lat0) * s;
      var k = Math.round(x / 20) + ":" + Math.round(y / 20);
      (cells[k] = cells[k] || []).push({x: x, y: y, m: m});
    });
    Object.keys(cells).forEach(function (k) {
      var pts = cells[k], p = pts[0];
      g.beginPath();
      if (pts.length === 1) {
        g.arc(p.x, p.y, 8, 0, 2 * Math.PI);
        g.fillStyle = p.m.color;
        g.fill();
        g.strokeStyle = "#222";
        g.stroke();
      } else {
        g.arc(p.x, p.y, 15, 0, 2 * Math.PI);
        g.fillStyle = "#fff";
        g.fill();
        g.lineWidth = 3;
        g.strokeStyle = "#4a90d9";
        g.stroke();
        g.lineWidth = 1;
        g.fillStyle = "#000";
        g.textAlign = "center";
        g.fillText(String(pts.length), p.x, p.y + 4);
      }
    });
  }

  if (window.L && L.markerClusterGroup) { leaflet(); } else { canvas(); }
})();
