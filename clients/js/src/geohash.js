// geohash.js: decode a geohash string into its cell [min_lat, min_lon, max_lat, max_lon].

const B32 = '0123456789bcdefghjkmnpqrstuvwxyz';

/** @param {string} gh @returns {[number, number, number, number]} */
export function decodeGeohash(gh) {
  let minLat = -90, maxLat = 90, minLon = -180, maxLon = 180;
  let even = true;
  for (const ch of gh) {
    const v = B32.indexOf(ch);
    if (v < 0) throw new RangeError(`geohash: bad character ${ch} in ${gh}`);
    for (let bit = 4; bit >= 0; bit--) {
      const on = (v >> bit) & 1;
      if (even) {
        const mid = (minLon + maxLon) / 2;
        if (on) minLon = mid; else maxLon = mid;
      } else {
        const mid = (minLat + maxLat) / 2;
        if (on) minLat = mid; else maxLat = mid;
      }
      even = !even;
    }
  }
  return [minLat, minLon, maxLat, maxLon];
}
