// driver.js: the driver app's client (/v1/driver): one method per driver message, each
// returning a promise of the gateway's ack (location: of its sending, unless ack is asked).

import { Connection } from './client.js';

/** @typedef {import('../types/protocol').DriverLocation} DriverLocation */
/** @typedef {import('../types/protocol').DriverStatus} DriverStatus */
/** @typedef {import('../types/protocol').DriverAccept} DriverAccept */
/** @typedef {import('../types/protocol').DriverDecline} DriverDecline */
/** @typedef {import('../types/protocol').DriverArrived} DriverArrived */
/** @typedef {import('../types/protocol').DriverStart} DriverStart */
/** @typedef {import('../types/protocol').DriverComplete} DriverComplete */

export class DriverClient extends Connection {
  /** @param {import('./client.js').ConnectOptions} opts */
  constructor(opts) {
    super('driver', opts);
    this.locationSeq = 0;
  }

  /**
   * Send a position. Paced under the location limit; a position still waiting to be sent is
   * replaced by a newer one. ts defaults to now, seq counts up.
   * @param {{lat: number, lon: number, heading?: number, speed_mps?: number, ts?: number, seq?: number}} p
   * @param {{ack?: boolean}} [o] ask the gateway to ack it (default: fire and forget)
   */
  location(p, o = {}) {
    /** @type {DriverLocation} */
    const msg = { type: 'location', lat: p.lat, lon: p.lon, ts: p.ts ?? this.now(), seq: p.seq ?? ++this.locationSeq };
    if (p.heading !== undefined) msg.heading = p.heading;
    if (p.speed_mps !== undefined) msg.speed_mps = p.speed_mps;
    return this._send('location', msg, { wantAck: !!o.ack, key: 'location' });
  }

  /** @param {DriverStatus['status']} status */
  status(status) {
    /** @type {DriverStatus} */
    const msg = { type: 'status', status };
    return this._send('control', msg);
  }

  /** @param {string} offer_id */
  accept(offer_id) {
    /** @type {DriverAccept} */
    const msg = { type: 'accept', offer_id };
    return this._send('control', msg);
  }

  /** @param {string} offer_id */
  decline(offer_id) {
    /** @type {DriverDecline} */
    const msg = { type: 'decline', offer_id };
    return this._send('control', msg);
  }

  /** @param {string} trip_id */
  arrived(trip_id) {
    /** @type {DriverArrived} */
    const msg = { type: 'arrived', trip_id };
    return this._send('control', msg);
  }

  /** @param {string} trip_id */
  start(trip_id) {
    /** @type {DriverStart} */
    const msg = { type: 'start', trip_id };
    return this._send('control', msg);
  }

  /** @param {string} trip_id */
  complete(trip_id) {
    /** @type {DriverComplete} */
    const msg = { type: 'complete', trip_id };
    return this._send('control', msg);
  }
}
