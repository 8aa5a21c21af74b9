// ops.js: the ops stream (/v1/ops, docs/protocol.md "Ops stream"): OpsCity applies its
// messages (delta-coded drivers by slot, trips, shard ranges, hot cells, stats) to a model
// of the city that a map can draw; OpsClient keeps the connection (reconnecting like the
// app clients; a new connection starts from a fresh hello, so the city is reset).

import { Connection } from './client.js';

/** @typedef {import('../types/protocol').OpsServerMessage} OpsServerMessage */
/** @typedef {import('../types/protocol').OpsStats} OpsStats */
/** @typedef {import('../types/protocol').OpsShards} OpsShards */
/** @typedef {import('../types/protocol').OpsHot} OpsHot */
/** @typedef {import('../types/protocol').OpsConfig} OpsConfig */

/** @typedef {{id: string, lat: number, lon: number, state: string, movedAt: number, prevLat: number, prevLon: number}} OpsDriver */
/** @typedef {{id: string, state: string, shard: number, seq: number, pickup?: [number, number], dropoff?: [number, number], driver?: string, endedAt?: number}} OpsTrip */

const ENDED = new Set(['completed', 'cancelled', 'no_driver']);

export class OpsCity {
  constructor() {
    /** @type {Map<number, OpsDriver>} drivers by slot */
    this.drivers = new Map();
    /** @type {Map<string, OpsTrip>} */
    this.trips = new Map();
    /** @type {OpsShards | null} */
    this.shards = null;
    /** @type {OpsHot['cells']} */
    this.hot = [];
    /** @type {OpsStats | null} */
    this.stats = null;
    this.states = ['available', 'offered', 'pickup', 'on_trip', 'offline'];
    this.e5 = 100000;
    this.frames = 0;
    this.bytes = 0;
    /** @type {[number, number, number, number] | null} */
    this.bounds = null;
  }

  /** Forget everything (a new connection starts from its hello). */
  reset() {
    Object.assign(this, new OpsCity());
  }

  /**
   * Apply one message. Returns what changed: 'drivers', 'trips', 'shards', 'hot', 'stats',
   * 'hello' or null.
   * @param {OpsServerMessage} m @param {number} [now] ms
   */
  apply(m, now = Date.now()) {
    switch (m.type) {
      case 'hello':
        this.reset();
        this.e5 = m.e5;
        this.states = m.states;
        this.bounds = /** @type {[number, number, number, number]} */ (m.bounds);
        return 'hello';
      case 'drivers': {
        for (const slot of m.del || []) this.drivers.delete(slot);
        for (const [slot, id, lat, lon, s] of m.add || []) {
          const old = this.drivers.get(slot);
          const same = old && old.id === id;
          this.drivers.set(slot, {
            id, lat: lat / this.e5, lon: lon / this.e5, state: this.states[s] || 'available', movedAt: now,
            prevLat: same ? old.lat : lat / this.e5, prevLon: same ? old.lon : lon / this.e5,
          });
        }
        const mv = m.move || [];
        if (mv.length % 3) throw new RangeError('ops: drivers.move is not made of triples');
        let slot = 0;
        for (let i = 0; i < mv.length; i += 3) {
          slot += mv[i];
          const d = this.drivers.get(slot);
          if (!d) throw new RangeError(`ops: a move for slot ${slot}, which was never added`);
          d.prevLat = d.lat;
          d.prevLon = d.lon;
          d.lat = Math.round(d.lat * this.e5 + mv[i + 1]) / this.e5;
          d.lon = Math.round(d.lon * this.e5 + mv[i + 2]) / this.e5;
          d.movedAt = now;
        }
        if (m.n !== undefined) this.frames++;
        return 'drivers';
      }
      case 'trips':
        for (const t of m.trips) {
          const known = this.trips.get(t.id);
          if (known && known.seq > t.seq) continue;
          this.trips.set(t.id, { ...t, endedAt: ENDED.has(t.state) ? now : undefined });
        }
        return 'trips';
      case 'shards':
        this.shards = m;
        return 'shards';
      case 'hot':
        this.hot = m.cells;
        return 'hot';
      case 'stats':
        this.stats = m;
        return 'stats';
      default:
        return null;
    }
  }

  /** Drop trips that ended more than lingerMs ago. @param {number} now @param {number} [lingerMs] */
  expire(now, lingerMs = 5000) {
    for (const [id, t] of this.trips) if (t.endedAt !== undefined && now - t.endedAt > lingerMs) this.trips.delete(id);
  }

  /** Drivers by state name. */
  countByState() {
    /** @type {Record<string, number>} */
    const out = {};
    for (const d of this.drivers.values()) out[d.state] = (out[d.state] || 0) + 1;
    return out;
  }
}

/** @typedef {import('./client.js').ConnectOptions & {periodMs?: number, budgetBps?: number}} OpsOptions */

export class OpsClient extends Connection {
  /** @param {OpsOptions} opts */
  constructor(opts) {
    super('ops', opts);
    this.city = new OpsCity();
    this.on('open', () => {
      this.city.reset();
      if (opts.periodMs || opts.budgetBps) {
        /** @type {OpsConfig} */
        const msg = { type: 'config' };
        if (opts.periodMs) msg.period_ms = opts.periodMs;
        if (opts.budgetBps) msg.budget_bps = opts.budgetBps;
        this.config(msg).catch((e) => this.emit('error', e));
      }
    });
  }

  /** Change this connection's period / budget. @param {OpsConfig} msg */
  config(msg) {
    return this._send('control', { ...msg, type: 'config' });
  }

  /** @param {string} text */
  _onText(text) {
    let m;
    try {
      m = JSON.parse(text);
    } catch {
      return;
    }
    this.city.bytes += text.length;
    if (m.type === 'ack' || m.type === 'error') {
      super._onText(text);
      return;
    }
    const what = this.city.apply(m);
    if (what) this.emit(what, m);
    this.emit('message', m);
  }
}
