// Meridian's JavaScript client: connectDriver / connectRider for the apps, connectOps for
// the live city stream. ES module for browsers and Node >= 18 (Node uses npm ws).

import { DriverClient } from './driver.js';
import { RiderClient } from './rider.js';
import { OpsClient, OpsCity } from './ops.js';

export { DriverClient, RiderClient, OpsClient, OpsCity };
export { MeridianError, ERROR_CODES, PROTOCOL_ERRORS, CLIENT_ERRORS } from './errors.js';
export { GATEWAY_LIMITS } from './pacer.js';
export { decodeGeohash } from './geohash.js';

/**
 * Connect a driver; resolves once the connection is open.
 * @param {import('./client.js').ConnectOptions} opts
 * @returns {Promise<DriverClient>}
 */
export function connectDriver(opts) {
  return new DriverClient(opts).connect();
}

/**
 * Connect a rider; resolves once the connection is open.
 * @param {import('./client.js').ConnectOptions} opts
 * @returns {Promise<RiderClient>}
 */
export function connectRider(opts) {
  return new RiderClient(opts).connect();
}

/**
 * Connect to the ops stream (/v1/ops, an ops token); client.city is the live city.
 * @param {import('./ops.js').OpsOptions} opts
 * @returns {Promise<OpsClient>}
 */
export function connectOps(opts) {
  return new OpsClient(opts).connect();
}
