// shapes.js: the ops map's shard ranges as few, merged shapes (pure; unit-tested by
// tests/web/ops_shapes.test.mjs). The stream sends each range as the geohash cells of one
// precision that tile it (hundreds for a city); drawn one box each, every cell's outline is
// a feature of its own. Here a shard's cells become:
//   - one fill feature: a MultiPolygon of the row runs (cells side by side in a row merged
//     into one rectangle);
//   - one outline feature: a MultiLineString of the edges no other cell of the same shard
//     shares (the shard's border, holes included), collinear neighbours joined into one
//     segment;
// and a move in progress becomes one dashed outline of the cells in its range, the same way.
// Cells of one precision align exactly (their bounds are halvings of the world, exact in
// binary floating point), so shared edges compare equal.

/** A cell is in a moving range when its geohash is in [start, end) (range keys compare as
 * strings, like the shard map's own lookup; '' and '~' are the world's ends). */
export const inRange = (gh, m) => m.start <= gh && (m.end === '~' || gh < m.end);

const key = (x) => x.toFixed(9);

/** Rectangles [minLat, minLon, maxLat, maxLon] -> one MultiPolygon's coordinates, cells
 * side by side in a row merged. */
export function rowRuns(boxes) {
  const rows = new Map();
  for (const b of boxes) {
    const k = `${key(b[0])}/${key(b[2])}`;
    if (!rows.has(k)) rows.set(k, []);
    rows.get(k).push(b);
  }
  const polys = [];
  for (const row of rows.values()) {
    row.sort((p, q) => p[1] - q[1]);
    let cur = null;
    for (const b of row) {
      if (cur && key(cur[3]) === key(b[1])) cur[3] = b[3];
      else {
        if (cur) polys.push(cur);
        cur = [...b];
      }
    }
    if (cur) polys.push(cur);
  }
  return polys.map(([a, b, c, d]) => [[[b, a], [d, a], [d, c], [b, c], [b, a]]]);
}

/** Rectangles -> the border of their union as a MultiLineString's coordinates: every edge
 * that exactly one rectangle has, collinear touching edges joined. */
export function border(boxes) {
  const edges = new Map(); // edge key -> [count, horizontal, fixed, from, to]
  const add = (horizontal, fixed, from, to) => {
    const k = `${horizontal ? 'h' : 'v'}${key(fixed)}:${key(from)}:${key(to)}`;
    const e = edges.get(k);
    if (e) e[0]++;
    else edges.set(k, [1, horizontal, fixed, from, to]);
  };
  for (const [a, b, c, d] of boxes) {
    add(true, a, b, d); // south
    add(true, c, b, d); // north
    add(false, b, a, c); // west
    add(false, d, a, c); // east
  }
  const lines = new Map(); // the line an edge lies on -> [from, to][]
  for (const [count, horizontal, fixed, from, to] of edges.values()) {
    if (count !== 1) continue;
    const k = `${horizontal ? 'h' : 'v'}${key(fixed)}`;
    if (!lines.has(k)) lines.set(k, { horizontal, fixed, spans: [] });
    lines.get(k).spans.push([from, to]);
  }
  const out = [];
  for (const { horizontal, fixed, spans } of lines.values()) {
    spans.sort((p, q) => p[0] - q[0]);
    let cur = null;
    const flush = () => {
      if (!cur) return;
      out.push(horizontal ? [[cur[0], fixed], [cur[1], fixed]] : [[fixed, cur[0]], [fixed, cur[1]]]);
    };
    for (const s of spans) {
      if (cur && key(cur[1]) === key(s[0])) cur[1] = s[1];
      else {
        flush();
        cur = [...s];
      }
    }
    flush();
  }
  return out;
}

/**
 * The shard ranges of an OpsShards message as map features.
 * @param {{shard: number, cells: string[]}[]} ranges
 * @param {{start: string, end: string}[]} moves
 * @param {(gh: string) => [number, number, number, number]} decode geohash -> [minLat, minLon, maxLat, maxLon]
 * @param {(shard: number) => string} color
 * @returns {{fill: object[], outline: object[], moving: object[], labels: {shard: number, at: [number, number]}[], moveAt: ([number, number] | null)[], cells: number}}
 */
export function shardShapes(ranges, moves, decode, color) {
  const byShard = new Map(); // shard -> boxes
  const movingBoxes = moves.map(() => []);
  let cells = 0;
  for (const r of ranges) {
    if (!byShard.has(r.shard)) byShard.set(r.shard, []);
    const boxes = byShard.get(r.shard);
    for (const gh of r.cells) {
      const box = decode(gh);
      boxes.push(box);
      cells++;
      moves.forEach((m, i) => inRange(gh, m) && movingBoxes[i].push(box));
    }
  }
  const middle = (boxes) => {
    if (!boxes.length) return null;
    let lat = 0, lon = 0;
    for (const [a, b, c, d] of boxes) {
      lat += (a + c) / 2;
      lon += (b + d) / 2;
    }
    return [lon / boxes.length, lat / boxes.length];
  };
  const fill = [], outline = [], labels = [];
  for (const [shard, boxes] of [...byShard].sort((p, q) => p[0] - q[0])) {
    if (!boxes.length) continue;
    const props = { shard, color: color(shard), cells: boxes.length };
    fill.push({ type: 'Feature', properties: props, geometry: { type: 'MultiPolygon', coordinates: rowRuns(boxes) } });
    outline.push({ type: 'Feature', properties: props, geometry: { type: 'MultiLineString', coordinates: border(boxes) } });
    labels.push({ shard, at: middle(boxes) });
  }
  const moving = [];
  movingBoxes.forEach((boxes, i) => {
    if (boxes.length) {
      moving.push({ type: 'Feature', properties: { move: i, cells: boxes.length }, geometry: { type: 'MultiLineString', coordinates: border(boxes) } });
    }
  });
  return { fill, outline, moving, labels, moveAt: movingBoxes.map(middle), cells };
}
