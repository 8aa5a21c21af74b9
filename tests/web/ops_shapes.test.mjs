// ops_shapes.test.mjs (unit, node --test; ctest test_ops_page_unit): the ops page's pure
// parts. shapes.js merges a shard's geohash cells into one fill and one outline: checked
// against the cells themselves (the border's length is the perimeter of the union, computed
// independently by counting cell edges with no same-shard neighbour; the row runs cover
// exactly the cells' area), on the ranges the gateway really sends (gw_ops_range_cells'
// tiling of Manhattan's box at precision 6, as the page gets it) and on shapes with
// holes. drivers_layer.js: a driver glides from his previous position to the new one over
// one period, and the dot's radius by zoom.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { decodeGeohash } from '../../clients/js/src/index.js';
import { border, inRange, rowRuns, shardShapes } from '../../services/gateway/web/ops/shapes.js';
import { glide, radiusAt } from '../../services/gateway/web/ops/drivers_layer.js';

const BASE32 = '0123456789bcdefghjkmnpqrstuvwxyz';
const box = [40.68, -74.05, 40.89, -73.9]; // GW_OPS_CONFIG_DEFAULT's box

// every geohash of `precision` characters whose cell meets the box, in string order
function cellsInBox(precision) {
  const out = [];
  const walk = (p) => {
    const [a, b, c, d] = decodeGeohash(p || 's');
    if (p && (c < box[0] || a > box[2] || d < box[1] || b > box[3])) return;
    if (p.length === precision) {
      out.push(p);
      return;
    }
    for (const ch of BASE32) walk(p + ch);
  };
  for (const ch of BASE32) walk(ch);
  return out.sort();
}

const lengthOf = (lines) => lines.reduce((s, [[x0, y0], [x1, y1]]) => s + Math.abs(x1 - x0) + Math.abs(y1 - y0), 0);
const areaOf = (polys) => polys.reduce((s, [[[x0, y0], [x1], [, y2]]]) => s + (x1 - x0) * (y2 - y0), 0);

// the perimeter of a set of same-precision cells: edges without a neighbour in the set
function perimeter(cells) {
  const set = new Set(cells);
  const boxes = new Map(cells.map((gh) => [gh, decodeGeohash(gh)]));
  const at = new Map([...boxes].map(([gh, [a, b]]) => [`${a.toFixed(9)},${b.toFixed(9)}`, gh]));
  let p = 0;
  for (const [, [a, b, c, d]] of boxes) {
    const h = c - a, w = d - b;
    const has = (lat, lon) => set.has(at.get(`${lat.toFixed(9)},${lon.toFixed(9)}`));
    if (!has(a - h, b)) p += w;
    if (!has(a + h, b)) p += w;
    if (!has(a, b - w)) p += h;
    if (!has(a, b + w)) p += h;
  }
  return p;
}

test('a shard\'s cells become one fill and one outline, the union\'s border and area', () => {
  const cells = cellsInBox(6);
  assert.ok(cells.length > 400, `${cells.length} cells`);
  const cut = cells[Math.floor(cells.length / 2)];
  const ranges = [
    { shard: 0, cells: cells.filter((gh) => gh < cut) },
    { shard: 1, cells: cells.filter((gh) => gh >= cut) },
  ];
  const moves = [{ start: ranges[1].cells[3], end: ranges[1].cells[9] }];
  const s = shardShapes(ranges, moves, decodeGeohash, (k) => `c${k}`);
  assert.equal(s.cells, cells.length);
  assert.equal(s.fill.length, 2);
  assert.equal(s.outline.length, 2);
  assert.deepEqual(s.labels.map((l) => l.shard), [0, 1]);
  for (const [i, r] of ranges.entries()) {
    const boxes = r.cells.map(decodeGeohash);
    const cellArea = boxes.reduce((a, [x, y, z, w]) => a + (z - x) * (w - y), 0);
    assert.ok(Math.abs(areaOf(s.fill[i].geometry.coordinates) - cellArea) < 1e-9, 'the runs cover the cells exactly');
    assert.ok(s.fill[i].geometry.coordinates.length < r.cells.length, 'cells side by side are merged');
    const lines = s.outline[i].geometry.coordinates;
    assert.ok(Math.abs(lengthOf(lines) - perimeter(r.cells)) < 1e-9, `shard ${i}: border = perimeter`);
    assert.ok(lines.length < r.cells.length, `shard ${i}: ${lines.length} segments for ${r.cells.length} cells`);
    assert.equal(s.outline[i].properties.color, `c${r.shard}`);
  }
  // the move: one dashed outline around its 6 cells, its label in their middle
  assert.equal(s.moving.length, 1);
  assert.equal(s.moving[0].properties.cells, 6);
  const mv = ranges[1].cells.slice(3, 9);
  assert.ok(Math.abs(lengthOf(s.moving[0].geometry.coordinates) - perimeter(mv)) < 1e-9);
  assert.ok(mv.every((gh) => inRange(gh, moves[0])));
  assert.ok(s.moveAt[0] && s.moveAt[0][0] > -75 && s.moveAt[0][0] < -73);
});

test('borders: a ring of cells has its hole outlined; segments are joined along a line', () => {
  // a 3 x 3 block of 1 x 1 boxes without its middle: outer 4 x 3 = 12, inner 4 x 1 = 4
  const boxes = [];
  for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) if (i !== 1 || j !== 1) boxes.push([i, j, i + 1, j + 1]);
  const lines = border(boxes);
  assert.equal(lengthOf(lines), 16);
  assert.equal(lines.length, 8, 'four outer sides, four inner ones, each one segment');
  const runs = rowRuns(boxes);
  assert.equal(runs.length, 4, 'rows 0 and 2 one run each, row 1 two');
  assert.equal(areaOf(runs), 8);
  assert.deepEqual(border([]), []);
  assert.deepEqual(shardShapes([], [], decodeGeohash, String).outline, []);
});

test('a driver glides over one period, then stays', () => {
  const d = { prevLat: 40, prevLon: -74, lat: 41, lon: -73, movedAt: 1000 };
  const at = [0, 0];
  assert.equal(glide(d, 1000, 1000, at), true);
  assert.deepEqual(at, [-74, 40]);
  glide(d, 1500, 1000, at);
  assert.deepEqual(at, [-73.5, 40.5]);
  assert.equal(glide(d, 2000, 1000, at), false);
  assert.deepEqual(at, [-73, 41]);
  assert.equal(glide(d, 900, 1000, at), true, 'a clock behind the stream: not before the start');
  assert.deepEqual(at, [-74, 40]);
  assert.equal(glide(d, 1000, 0, at), false, 'no period: at the new position');
  assert.deepEqual(at, [-73, 41]);
  assert.equal(radiusAt(11), 2);
  assert.equal(radiusAt(15), 5);
  assert.equal(radiusAt(3), 2);
  assert.equal(radiusAt(20), 5);
});
