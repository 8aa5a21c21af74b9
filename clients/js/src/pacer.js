// pacer.js: client-side pacing under the gateway's rate limits (docs/protocol.md, Limits):
// a token bucket per message class, kept a little below the gateway's (90% of the rate,
// one token less of burst) so clock jitter never earns a rate_limited. Messages wait in a
// queue per class; a message with a coalesce key replaces a queued one with the same key
// (a newer location makes the older, unsent one pointless). The clock is injectable.

export class Bucket {
  /** @param {number} ratePerS @param {number} burst @param {() => number} now */
  constructor(ratePerS, burst, now) {
    this.rate = ratePerS;
    this.burst = burst;
    this.tokens = burst;
    this.now = now;
    this.t = now();
  }

  _refill() {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.t) / 1000) * this.rate);
    this.t = t;
  }

  /** Take a token if there is one. */
  take() {
    this._refill();
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return true;
    }
    return false;
  }

  /** Milliseconds until a token is there. */
  waitMs() {
    this._refill();
    return this.tokens >= 1 ? 0 : Math.ceil(((1 - this.tokens) / this.rate) * 1000);
  }
}

/** The gateway's defaults (MERIDIAN_GW_*), per role and class. */
export const GATEWAY_LIMITS = {
  driver: { location: { rate: 5, burst: 10 }, control: { rate: 2, burst: 5 } },
  rider: { control: { rate: 2, burst: 5 } },
  ops: { control: { rate: 1, burst: 5 } },
};

/** Our buckets: a margin below the gateway's. @param {{rate: number, burst: number}} l */
export function paced(l) {
  return { rate: l.rate * 0.9, burst: Math.max(1, l.burst - 1) };
}
