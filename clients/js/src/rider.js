// rider.js: the rider app's client (/v1/rider): request, cancel, nearby.

import { Connection } from './client.js';

/** @typedef {import('../types/protocol').RiderRequest} RiderRequest */
/** @typedef {import('../types/protocol').RiderCancel} RiderCancel */
/** @typedef {import('../types/protocol').RiderNearby} RiderNearby */
/** @typedef {import('../types/protocol').DefPoint} Point */

export class RiderClient extends Connection {
  /** @param {import('./client.js').ConnectOptions} opts */
  constructor(opts) {
    super('rider', opts);
  }

  /**
   * Ask for a ride. request_id is the idempotency key (made up when not given): sending the
   * same one again never makes a second trip. Resolves with {request_id} once acked.
   * @param {{pickup: Point, dropoff: Point, request_id?: string}} r
   */
  async request(r) {
    /** @type {RiderRequest} */
    const msg = {
      type: 'request',
      request_id: r.request_id ?? this._id('req'),
      pickup: { lat: r.pickup.lat, lon: r.pickup.lon },
      dropoff: { lat: r.dropoff.lat, lon: r.dropoff.lon },
    };
    await this._send('control', msg);
    return { request_id: msg.request_id };
  }

  /** @param {string} request_id */
  cancel(request_id) {
    /** @type {RiderCancel} */
    const msg = { type: 'cancel', request_id };
    return this._send('control', msg);
  }

  /**
   * Available drivers around a point, nearest first (positions only).
   * @param {{lat: number, lon: number, radius_m: number}} q
   * @returns {Promise<Point[]>}
   */
  nearby(q) {
    /** @type {RiderNearby} */
    const msg = { type: 'nearby', lat: q.lat, lon: q.lon, radius_m: q.radius_m };
    return this._send('control', msg);
  }
}
