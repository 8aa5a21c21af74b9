// drivers_layer.js: the ops map's drivers, drawn on a canvas of their own stacked on the
// MapLibre map (under its markers), so that drivers moving at every animation frame never
// make the map itself repaint. A MapLibre repaint redraws every layer (roads, shard ranges,
// heat, trips): on software WebGL (no GPU) that is hundreds of milliseconds a frame, and a
// GeoJSON source rebuilt with every driver adds its worker round trip on top. Here the
// per-frame work is one pass over the drivers into typed arrays and one path per state.
//
// Positions come from MapLibre's own projection (map.project), so panning, zooming and
// resizing follow the map exactly; the layer redraws on every animation frame while drivers
// glide or the camera moves, and not at all when nothing changes.
//
// Pure parts (exported for the unit test): glide() (where a driver is between two stream
// frames) and radiusAt() (the dot's size by zoom, as the MapLibre layer had it).

/** Where a driver is drawn at `now`: from his previous position to the new one over one
 * stream period (ms), linearly, then still. Writes [lon, lat] into out. */
export function glide(d, now, periodMs, out) {
  const k = periodMs > 0 ? Math.min(1, Math.max(0, (now - d.movedAt) / periodMs)) : 1;
  out[0] = d.prevLon + (d.lon - d.prevLon) * k;
  out[1] = d.prevLat + (d.lat - d.prevLat) * k;
  return k < 1;
}

/** The dot's radius in CSS pixels at a zoom: 2 px at zoom 11 to 5 px at zoom 15, clamped. */
export function radiusAt(zoom) {
  const z = Math.min(15, Math.max(11, zoom));
  return 2 + ((z - 11) / 4) * 3;
}

export class DriversLayer {
  /**
   * @param {import('maplibre-gl').Map} map
   * @param {string[]} states the stream's state names, in order (OpsCity.states)
   * @param {Record<string, string>} colors state name -> CSS colour
   */
  constructor(map, states, colors) {
    this.map = map;
    this.colors = colors;
    this.setStates(states);
    this.canvas = document.createElement('canvas');
    this.canvas.className = 'drivers-layer';
    Object.assign(this.canvas.style, { position: 'absolute', left: '0', top: '0', pointerEvents: 'none' });
    // above the map's canvas, below the markers (shard labels) MapLibre adds after it
    map.getCanvas().insertAdjacentElement('afterend', this.canvas);
    this.ctx = this.canvas.getContext('2d');
    this.cap = 0;
    this.grow(4096);
    this.n = 0; // drivers in the arrays
    this.drawn = 0; // drivers inside the view at the last draw
    this.draws = 0;
    this.drawMs = []; // the cost of the last draws (ms), for the bench and the panel
    this.dirty = true;
    this.lastGlide = false;
    this.resize();
    map.on('resize', () => this.resize());
    map.on('move', () => (this.dirty = true));
  }

  setStates(states) {
    this.states = states;
    this.stateColors = states.map((s) => this.colors[s] || '#fff');
    this.dirty = true;
  }

  grow(n) {
    this.cap = Math.max(n, this.cap * 2);
    this.x = new Float32Array(this.cap); // screen position, CSS px
    this.y = new Float32Array(this.cap);
    this.s = new Uint8Array(this.cap); // state index
  }

  resize() {
    const c = this.map.getCanvas();
    const dpr = window.devicePixelRatio || 1;
    this.w = c.clientWidth;
    this.h = c.clientHeight;
    this.canvas.width = Math.round(this.w * dpr);
    this.canvas.height = Math.round(this.h * dpr);
    this.canvas.style.width = `${this.w}px`;
    this.canvas.style.height = `${this.h}px`;
    this.ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    this.dirty = true;
  }

  /** The stream changed the drivers: draw at the next frame. */
  touch() {
    this.dirty = true;
  }

  /**
   * One animation frame: project every driver of the city (a Map of OpsDriver) at `now`
   * and draw, if anything can have changed. Returns whether it drew.
   */
  frame(drivers, now, periodMs) {
    if (!this.dirty && !this.lastGlide) return false;
    const t0 = performance.now();
    if (drivers.size > this.cap) this.grow(drivers.size);
    const map = this.map;
    const at = [0, 0];
    const pt = { lng: 0, lat: 0 };
    const index = new Map(this.states.map((s, i) => [s, i]));
    let i = 0;
    let gliding = false;
    for (const d of drivers.values()) {
      gliding = glide(d, now, periodMs, at) || gliding;
      pt.lng = at[0];
      pt.lat = at[1];
      const p = map.project(pt);
      this.x[i] = p.x;
      this.y[i] = p.y;
      this.s[i] = index.get(d.state) ?? 0;
      i++;
    }
    this.n = i;
    this.draw();
    this.dirty = false;
    this.lastGlide = gliding;
    this.drawMs.push(performance.now() - t0);
    if (this.drawMs.length > 300) this.drawMs.shift();
    return true;
  }

  draw() {
    const g = this.ctx;
    const r = radiusAt(this.map.getZoom());
    const pad = r + 1;
    g.clearRect(0, 0, this.w, this.h);
    let drawn = 0;
    for (let k = 0; k < this.stateColors.length; k++) {
      g.beginPath();
      let any = false;
      for (let i = 0; i < this.n; i++) {
        if (this.s[i] !== k) continue;
        const x = this.x[i], y = this.y[i];
        if (x < -pad || y < -pad || x > this.w + pad || y > this.h + pad) continue;
        g.moveTo(x + r, y);
        g.arc(x, y, r, 0, 2 * Math.PI);
        any = true;
        drawn++;
      }
      if (any) {
        g.fillStyle = this.stateColors[k];
        g.fill();
      }
    }
    this.drawn = drawn;
    this.draws++;
  }

  /** Pixels of the layer that are not transparent (for the browser test: drawn, not held). */
  paintedPixels() {
    const { width, height } = this.canvas;
    if (!width || !height) return 0;
    const px = this.ctx.getImageData(0, 0, width, height).data;
    let n = 0;
    for (let i = 3; i < px.length; i += 4) if (px[i]) n++;
    return n;
  }
}
